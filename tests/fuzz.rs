//! Issue 16, hostile input: a bounded proptest fuzz suite for every parser (ONNX, IDX, CIFAR,
//! coefficient files in text and JSON, certificate files). Each property feeds mutated bytes of
//! valid seeds (the shared models when present, plus small ones built here) and asserts: no
//! panic, no hang (every input parsed in well under a second), and an error that names the
//! file and the place. Deterministic tests cover declared sizes far beyond the data (the
//! parser must refuse them before allocating) and non-finite ONNX weights.
//!
//! Case counts (total ≥ 10,000) are fixed so that CI runs them in release mode within a few
//! minutes on 2 cores; `POLYCERT_FUZZ_SCALE` multiplies them for longer local runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use polycert::certify::{read_coeff_files, read_poly_json, Basis};
use polycert::nn::proto::{data_type, ModelProto, TensorProto};
use polycert::nn::{import_onnx_bytes, Dataset, NnError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use prost::Message;

use crate::util::{repo, shared};

/// Per-input time limit (release build; the slowest valid seed parses in milliseconds).
const SLOW: Duration = Duration::from_secs(2);

fn scale() -> u32 {
    std::env::var("POLYCERT_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn config(cases: u32) -> Config {
    Config {
        cases: cases * scale(),
        failure_persistence: None,
        ..Config::default()
    }
}

/// One byte-level mutation: overwrite, insert, delete a range, duplicate a range, or set a
/// run of bytes to an extreme value (0x00 / 0xff / 0x7f, which makes varints and counts huge).
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Extreme(usize, usize, u8),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Mutation::Set(p, v)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Mutation::Insert(p, v)),
        1 => (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        1 => (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
        2 => (any::<usize>(), 1usize..9, prop::sample::select(vec![0u8, 0xff, 0x7f]))
            .prop_map(|(p, n, v)| Mutation::Extreme(p, n, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in muts {
        let len = b.len().max(1);
        match *m {
            Mutation::Set(p, v) => {
                if let Some(x) = b.get_mut(p % len) {
                    *x = v;
                }
            }
            Mutation::Insert(p, v) => b.insert(p % (b.len() + 1), v),
            Mutation::Delete(p, n) => {
                let s = p % len;
                let e = (s + n).min(b.len());
                if s < e {
                    b.drain(s..e);
                }
            }
            Mutation::Duplicate(p, n) => {
                let s = p % len;
                let e = (s + n).min(b.len());
                if s < e {
                    let chunk = b[s..e].to_vec();
                    b.splice(e..e, chunk);
                }
            }
            Mutation::Extreme(p, n, v) => {
                let s = p % len;
                for x in b.iter_mut().skip(s).take(n) {
                    *x = v;
                }
            }
            Mutation::Truncate(p) => b.truncate(p % len),
        }
    }
    b
}

/// Run `f` on `cases` mutated versions of the seeds; every call must return within [`SLOW`].
fn fuzz(name: &str, seeds: &[Vec<u8>], cases: u32, f: impl Fn(&[u8])) {
    let mut runner = TestRunner::new_with_rng(
        config(cases),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strat = (0..seeds.len(), prop::collection::vec(mutation(), 1..6));
    runner
        .run(&strat, |(i, muts)| {
            let bytes = apply(&seeds[i], &muts);
            let t = Instant::now();
            f(&bytes);
            let dt = t.elapsed();
            prop_assert!(dt < SLOW, "{name}: input took {dt:?}");
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------- ONNX

fn onnx_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        crate::nn::all_ops_model(true).encode_to_vec(),
        crate::nn::all_ops_model(false).encode_to_vec(),
    ];
    if let Some(dir) = shared("fuzzing the shared models") {
        for m in [
            "mnist_cnn_small.onnx",
            "mnist_cnn_small_maxpool.onnx",
            "resnet20_cifar10.onnx",
        ] {
            if let Ok(b) = std::fs::read(dir.join("models").join(m)) {
                seeds.push(b);
            }
        }
    }
    seeds
}

fn onnx_error_names_place(e: &NnError) -> bool {
    let s = e.to_string();
    match e {
        NnError::Decode { .. } => s.contains("fuzz.onnx"),
        _ => {
            s.contains("node")
                || s.contains("input")
                || s.contains("preprocessing")
                || s.contains("fuzz.onnx")
        }
    }
}

#[test]
fn fuzz_onnx_import_never_panics() {
    let seeds = onnx_seeds();
    fuzz("onnx", &seeds, 3000, |b| {
        if let Err(e) = import_onnx_bytes(b, "fuzz.onnx") {
            assert!(onnx_error_names_place(&e), "unclear error: {e}");
        }
    });
}

fn first_initializer(m: &mut ModelProto) -> &mut TensorProto {
    m.graph.as_mut().unwrap().initializer.first_mut().unwrap()
}

/// Declared shapes far larger than the data: refused with an error naming the tensor or the
/// input, at once (no allocation sized by the declaration).
#[test]
fn declared_shapes_far_beyond_the_data_are_refused() {
    for dims in [
        vec![1i64 << 40, 1 << 40],
        vec![1 << 62, 4],
        vec![i64::MAX, i64::MAX, 2],
    ] {
        let mut m = crate::nn::all_ops_model(true);
        let name = first_initializer(&mut m).name.clone();
        first_initializer(&mut m).dims = dims.clone();
        let t = Instant::now();
        let e = import_onnx_bytes(&m.encode_to_vec(), "big.onnx")
            .unwrap_err()
            .to_string();
        assert!(t.elapsed() < SLOW);
        assert!(
            e.contains("initializer") && e.contains(&name),
            "{dims:?}: {e}"
        );
    }
    for dims in [
        [Some(1i64), Some(2), Some(1 << 40), Some(1 << 40)],
        [Some(1), Some(2), Some(i64::MAX), Some(8)],
    ] {
        let mut m = crate::nn::all_ops_model(true);
        m.graph.as_mut().unwrap().input = vec![crate::nn::vinfo("x", &dims)];
        let t = Instant::now();
        let r = import_onnx_bytes(&m.encode_to_vec(), "big.onnx");
        assert!(t.elapsed() < SLOW);
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("x"), "input {dims:?}: {e}");
    }
}

/// Non-finite weights (NaN, ±∞, and doubles beyond f32 range) are an error naming the
/// initializer and the element (issue 16; they used to run and print NaN).
#[test]
fn non_finite_onnx_weights_are_refused_naming_the_initializer() {
    for (raw, bad) in [
        (true, f32::NAN),
        (false, f32::INFINITY),
        (true, f32::NEG_INFINITY),
    ] {
        let mut m = crate::nn::all_ops_model(raw);
        let t = first_initializer(&mut m);
        let name = t.name.clone();
        if raw {
            t.raw_data[4..8].copy_from_slice(&bad.to_le_bytes());
        } else {
            t.float_data[1] = bad;
        }
        let e = import_onnx_bytes(&m.encode_to_vec(), "nan.onnx")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("initializer")
                && e.contains(&name)
                && e.contains("element 1")
                && e.contains("not finite"),
            "{e}"
        );
    }
    let mut m = crate::nn::all_ops_model(true);
    let t = first_initializer(&mut m);
    let n = t.raw_data.len() / 4;
    t.data_type = data_type::DOUBLE;
    t.raw_data = (0..n)
        .flat_map(|i| if i == 2 { 1e300f64 } else { 0.5 }.to_le_bytes())
        .collect();
    let e = import_onnx_bytes(&m.encode_to_vec(), "big.onnx")
        .unwrap_err()
        .to_string();
    assert!(e.contains("element 2") && e.contains("not finite"), "{e}");
}

// ---------------------------------------------------------------- IDX and CIFAR

fn idx_pair(n: u32, rows: u32, cols: u32) -> (Vec<u8>, Vec<u8>) {
    let mut img = vec![0, 0, 8, 3];
    for v in [n, rows, cols] {
        img.extend_from_slice(&v.to_be_bytes());
    }
    img.extend((0..n * rows * cols).map(|i| (i * 37 % 256) as u8));
    let mut lab = vec![0, 0, 8, 1];
    lab.extend_from_slice(&n.to_be_bytes());
    lab.extend((0..n).map(|i| (i % 10) as u8));
    (img, lab)
}

#[test]
fn fuzz_idx_and_cifar_never_panic() {
    let (img, lab) = idx_pair(3, 5, 4);
    let ip = Path::new("fuzz-images-idx3-ubyte");
    let lp = Path::new("fuzz-labels-idx1-ubyte");
    let named = |e: &NnError| {
        let s = e.to_string();
        s.contains("fuzz-images") || s.contains("fuzz-labels") || s.contains("fuzz.bin")
    };
    assert!(Dataset::from_mnist_bytes(ip, &img, lp, &lab).is_ok());
    fuzz("idx images", std::slice::from_ref(&img), 1500, |b| {
        if let Err(e) = Dataset::from_mnist_bytes(ip, b, lp, &lab) {
            assert!(named(&e), "{e}");
        }
    });
    fuzz("idx labels", std::slice::from_ref(&lab), 500, |b| {
        if let Err(e) = Dataset::from_mnist_bytes(ip, &img, lp, b) {
            assert!(named(&e), "{e}");
        }
    });
    let mut cifar = Vec::new();
    for r in 0..2u8 {
        cifar.push(r + 3);
        cifar.extend((0..3072u32).map(|i| (i % 251) as u8));
    }
    let cp = Path::new("fuzz.bin");
    assert!(Dataset::from_cifar_bytes(cp, &cifar).is_ok());
    fuzz("cifar", &[cifar], 1000, |b| {
        if let Err(e) = Dataset::from_cifar_bytes(cp, b) {
            assert!(named(&e), "{e}");
        }
    });
}

/// IDX headers that declare far more images than the file holds are refused before any
/// allocation (the count product would otherwise overflow or ask for terabytes).
#[test]
fn idx_headers_declaring_huge_counts_are_refused() {
    let (mut img, lab) = idx_pair(1, 2, 2);
    for (n, r, c) in [
        (u32::MAX, u32::MAX, u32::MAX),
        (1 << 31, 1 << 20, 1 << 20),
        (1, u32::MAX, 3),
    ] {
        img[4..8].copy_from_slice(&n.to_be_bytes());
        img[8..12].copy_from_slice(&r.to_be_bytes());
        img[12..16].copy_from_slice(&c.to_be_bytes());
        let e = Dataset::from_mnist_bytes(Path::new("big-idx"), &img, Path::new("l"), &lab)
            .unwrap_err()
            .to_string();
        assert!(e.contains("big-idx") && e.contains("implies"), "{e}");
    }
}

// ---------------------------------------------------------------- coefficient files

fn text_seeds() -> Vec<Vec<u8>> {
    let cert = std::fs::read_to_string(repo().join("proofs/table1-alpha04.json")).unwrap();
    let c = polycert::proof::decode("a4", &cert).unwrap();
    let mut lines = Vec::new();
    for comp in &c.components {
        for v in comp {
            lines.push("1e-46".to_string());
            lines.push(v.clone());
        }
    }
    vec![
        (lines.join("\n") + "\n").into_bytes(),
        b"0\n1.5\n0\n-0.5\n0\n1.5\n0\n-0.5\n".to_vec(),
    ]
}

#[test]
fn fuzz_coefficient_text_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = text_seeds();
    let degs: Vec<u32> = polycert::proof::decode(
        "a4",
        &std::fs::read_to_string(repo().join("proofs/table1-alpha04.json")).unwrap(),
    )
    .unwrap()
    .components
    .iter()
    .map(|c| 2 * c.len() as u32 - 1)
    .collect();
    let deg = dir.path().join("fuzz.deg");
    let deg_text = degs
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let coef = dir.path().join("fuzz.coef");
    let cheb = Basis::Chebyshev {
        lo: rug::Rational::from(-2),
        hi: rug::Rational::from(2),
    };
    let check = |deg_bytes: &[u8], coef_bytes: &[u8], basis: &Basis| {
        std::fs::write(&deg, deg_bytes).unwrap();
        std::fs::write(&coef, coef_bytes).unwrap();
        if let Err(e) = read_coeff_files(&deg, &coef, basis) {
            let s = e.to_string();
            assert!(
                s.contains("fuzz.deg:") || s.contains("fuzz.coef:") || s.contains("component"),
                "{s}"
            );
        }
    };
    fuzz("coefficient text", &seeds, 1200, |b| {
        let basis = if b.len() % 3 == 0 {
            &cheb
        } else {
            &Basis::Power
        };
        check(deg_text.as_bytes(), b, basis);
    });
    fuzz(
        "degree text",
        &[deg_text.clone().into_bytes(), b"3\n3\n".to_vec()],
        300,
        |b| {
            check(b, &seeds[0], &Basis::Power);
        },
    );
}

fn poly_json_seed() -> Vec<u8> {
    let v = serde_json::json!({
        "format": "polycert-poly/1",
        "convention": "standard",
        "components": [
            {"basis": "power", "coeffs": ["1e-46", "1.5", "0", "-0.5"]},
            {"basis": "chebyshev", "interval": ["-1.25", "1.25"], "degree": 3,
             "coeffs": ["0", "1.171875", "0", "-0.1953125"], "coeffs_f64": [0.0, 1.171875, 0.0, -0.1953125]}
        ]
    });
    serde_json::to_vec_pretty(&v).unwrap()
}

#[test]
fn fuzz_coefficient_json_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("fuzz-poly.json");
    let seed = poly_json_seed();
    std::fs::write(&f, &seed).unwrap();
    assert!(read_poly_json(&f).is_ok());
    fuzz("poly json", &[seed], 1500, |b| {
        std::fs::write(&f, b).unwrap();
        if let Err(e) = read_poly_json(&f) {
            assert!(e.to_string().contains("fuzz-poly.json:"), "{e}");
        }
    });
}

// ---------------------------------------------------------------- certificate files

#[test]
fn fuzz_certificate_files_never_panic() {
    let p: PathBuf = repo().join("proofs/table1-alpha04.json");
    let seed = std::fs::read(&p).unwrap();
    fuzz("certificate", &[seed], 1500, |b| {
        let text = String::from_utf8_lossy(b);
        match polycert::proof::decode("fuzz-cert.json", &text) {
            Ok(mut c) => {
                // Re-seal the digest half of the time, so the checker's claim checks run too.
                if b.len() % 2 == 0 {
                    c.digest = polycert::proof::digest_of(&c).unwrap();
                }
                if let Err(e) = polycert::proof::check_certificate("fuzz-cert.json", &c) {
                    assert!(e.to_string().contains("fuzz-cert.json"), "{e}");
                }
            }
            Err(e) => assert!(e.to_string().starts_with("fuzz-cert.json:"), "{e}"),
        }
    });
}
