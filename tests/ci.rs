//! The README's two set-up commands stay true: CI runs exactly README's test command.

use crate::util::repo;

/// The shell commands inside ```bash fences of README.md.
fn readme_commands() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            inside = line.trim() == "```bash";
            continue;
        }
        if inside && !line.trim().is_empty() {
            out.push(line.trim().to_string());
        }
    }
    out
}

#[test]
fn readme_has_exactly_two_setup_commands() {
    let cmds = readme_commands();
    assert_eq!(
        cmds.len(),
        2,
        "README must keep exactly two set-up commands, found {cmds:?}"
    );
    assert!(
        cmds[0].contains("report"),
        "first command must run the main job: {}",
        cmds[0]
    );
    assert!(
        cmds[1].contains("cargo test"),
        "second command must run the tests: {}",
        cmds[1]
    );
}

#[test]
fn ci_runs_readme_test_command() {
    let cmds = readme_commands();
    let ci = std::fs::read_to_string(repo().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == cmds[1]),
        ".ci/run must run README's test command verbatim: {}",
        cmds[1]
    );
}
