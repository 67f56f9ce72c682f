//! Shared helpers for the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the repository, or `None` (with a printed reason) when it is absent.
pub fn shared(why: &str) -> Option<PathBuf> {
    let p = repo().join("../shared");
    if p.is_dir() {
        Some(p)
    } else {
        println!("skipped ({why}): ../shared is absent");
        None
    }
}

/// The built `polycert` binary.
pub fn polycert() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_polycert"))
}

/// Whether `python3 -c "import onnxruntime, onnx, numpy"` works (printing why a test skips
/// when it does not).
pub fn have_onnxruntime() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime, onnx, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: `python3 -c \"import onnxruntime, onnx, numpy\"` failed (pip install onnxruntime onnx numpy to run this test)");
    }
    ok
}

/// Run `cmd` to completion and return its output, failing the test with the command's stderr
/// unless it exited with status 0.
pub fn run_ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Deterministic fixture weights: `rnd(n, scale)` gives n values uniform in
/// [−scale/2, scale/2) from a 64-bit LCG started at `seed` (fixtures only, not a test oracle).
pub fn lcg_weights(seed: u64) -> impl FnMut(usize, f32) -> Vec<f32> {
    let mut s = seed;
    move |n, scale| {
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
            })
            .collect()
    }
}
