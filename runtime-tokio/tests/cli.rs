//! The binary's command line (this test also makes cargo build the binary
//! that the workspace's end-to-end tests in `tests/` run).

use std::process::Command;

#[test]
fn help_and_bad_arguments() {
    let bin = env!("CARGO_BIN_EXE_xfed");
    let help = Command::new(bin).arg("--help").output().expect("run");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for command in ["run", "check", "ping"] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
    }
    let no_config = Command::new(bin).arg("run").output().expect("run");
    assert!(!no_config.status.success());
    let missing = Command::new(bin)
        .args(["check", "--config", "/nonexistent/xfed.toml"])
        .output()
        .expect("run");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}
