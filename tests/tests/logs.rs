//! What xfed's logs say about messages (issue 12, logs): a message body is
//! never logged, even at debug, unless `gateway.log_message_bodies` is on,
//! and then only at debug; `--log-format json` writes one JSON object per
//! line. Two deployments (a.test, b.test) with their registrars; alice at
//! a.test writes to bob at b.test; both binaries.

use std::time::Duration;

use xfed_tests::sip_pair::{deployments, ua, Side};
use xfed_tests::Instance;

const WAIT: Duration = Duration::from_secs(20);
const BODY: &str = "body-7f3a-never-in-the-log";

/// Turns `gateway.log_message_bodies` on in `side`'s configuration.
fn log_bodies(side: &Side) {
    let path = side.dir.join("xfed.toml");
    let toml = std::fs::read_to_string(&path).expect("xfed.toml");
    assert!(toml.contains("[gateway]\n"), "{toml}");
    let toml = toml.replacen("[gateway]\n", "[gateway]\nlog_message_bodies = true\n", 1);
    std::fs::write(&path, toml).expect("write xfed.toml");
}

/// Starts both sides (b.test with `--log-format json`), has alice write
/// `BODY` to bob, and returns both instances once bob has it.
fn exchange(bin: &str, a: &Side, b: &Side) -> (Instance, Instance) {
    let mut xa = Instance::start(bin, &["run", "--config", "xfed.toml"], &a.dir);
    let mut xb = Instance::start(
        bin,
        &["--log-format", "json", "run", "--config", "xfed.toml"],
        &b.dir,
    );
    let mut alice = ua("alice", a, false);
    let mut bob = ua("bob", b, true);
    assert_eq!(alice.register(600), 200, "{}", xa.log_text());
    assert_eq!(bob.register(600), 200, "{}", xb.log_text());
    assert_eq!(
        alice.message("bob@b.test", BODY).status,
        202,
        "{}",
        xa.log_text()
    );
    let got = bob.receive(200, WAIT).expect("bob's MESSAGE");
    assert_eq!(got.body, BODY.as_bytes());
    // Both have logged the message (without its body, by default).
    xa.wait_log("relayed", WAIT);
    xb.wait_log("relayed", WAIT);
    (xa, xb)
}

fn bodies(bin: &str) {
    // By default (and the tests log at debug): the message is logged,
    // its body nowhere.
    let (a, b) = deployments(&format!("logs-{bin}"));
    let (mut xa, mut xb) = exchange(bin, &a, &b);
    for (x, name) in [(&mut xa, "a.test"), (&mut xb, "b.test")] {
        let text = x.log_text();
        assert!(!text.contains(BODY), "{name} logged the body:\n{text}");
    }
    // b.test wrote JSON: one object per line, with its level and fields.
    let json = xb.log_text();
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l.starts_with('{') && l.ends_with('}') && l.contains("\"level\":"),
            "not a JSON log line: {l}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("\"event\":\"relayed\"")),
        "no relayed event in the JSON log:\n{json}"
    );
    drop((xa, xb));

    // With log_message_bodies on a.test: its debug line has the body,
    // no line above debug has it; b.test (off) still has none.
    let (a, b) = deployments(&format!("logs-bodies-{bin}"));
    log_bodies(&a);
    let (mut xa, mut xb) = exchange(bin, &a, &b);
    let text = xa.log_text();
    let with_body: Vec<&str> = text.lines().filter(|l| l.contains(BODY)).collect();
    assert!(
        !with_body.is_empty(),
        "a.test did not log the body:\n{text}"
    );
    for l in &with_body {
        assert!(l.contains("DEBUG"), "a body above debug: {l}");
    }
    assert!(!xb.log_text().contains(BODY), "b.test logged the body");
}

#[test]
fn bodies_tokio() {
    bodies("xfed");
}

#[test]
fn bodies_async_std() {
    bodies("xfed-async-std");
}
