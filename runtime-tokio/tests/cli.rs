//! The binary's command line (this test also makes cargo build the binary
//! that the workspace's end-to-end tests in `tests/` run).

use std::process::Command;

#[test]
fn help_and_bad_arguments() {
    let bin = env!("CARGO_BIN_EXE_xfed");
    let help = Command::new(bin).arg("--help").output().expect("run");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--listen"));
    let bad = Command::new(bin)
        .args(["--listen", "not-an-address"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
}
