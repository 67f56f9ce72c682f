//! Behaviour shared by every subcommand: a closed stdout pipe and early flag checks.

use std::process::Stdio;

use crate::util::{polycert, repo};

/// Run `polycert args` with stdout connected to a pipe whose reader is closed before the
/// command writes (as `polycert … | head -1` once `head` has exited); returns (exit code,
/// stderr).
fn run_into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let mut child = polycert()
        .current_dir(repo())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drop the only reader: the child's first write gets EPIPE.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn closed_stdout_pipe_exits_quietly_without_panic() {
    let proofs: Vec<String> = std::fs::read_dir(repo().join("proofs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(!proofs.is_empty());
    let mut check = vec!["--quiet", "check"];
    check.extend(proofs.iter().map(String::as_str));
    for args in [
        check,
        vec!["sign", "--alpha", "6", "--paper"],
        vec!["sign", "--alpha", "6", "--paper", "--json"],
    ] {
        let (code, stderr) = run_into_closed_pipe(&args);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "polycert {args:?}: {stderr}"
        );
        assert_eq!(code, Some(0), "polycert {args:?}: {stderr}");
    }
}

#[test]
fn report_refuses_a_bad_ckks_alpha_before_any_work() {
    let out = polycert()
        .args([
            "report",
            "--out",
            "/nonexistent/never-written",
            "--ckks-alpha",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--ckks-alpha 3") && err.contains("4..=14"),
        "{err}"
    );
}
