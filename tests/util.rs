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
