//! Reload without dropping anything (issue 12 item 3): SIGHUP and `xfed
//! reload` read the configuration file again. Two deployments (a.test,
//! b.test, each the other's partner, TLS and dialback, registrars), both
//! binaries:
//!
//! - a partner added to b.test: applied, the stream from a.test stays up
//!   and carries the next message;
//! - a file that does not parse, and one that changes the local domains:
//!   refused with the reason, the running configuration stays;
//! - a renewed certificate: the next stream presents it;
//! - listeners moved (s2s and metrics): the new ports answer, the old ones
//!   are closed;
//! - a.test removed from b.test's partners: its stream is closed with
//!   `policy-violation`, which a.test reports, and no new one is allowed.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use xfed_core::tls::testing::{LeafSpec, TestCert};
use xfed_tests::sip_pair::{deployments, say, start, ua, Side};
use xfed_tests::{eventually, free_port, is_listening, read_to_close, run_to_end, Instance};

const WAIT: Duration = Duration::from_secs(20);
/// notAfter of the certificate b.test is given on reload.
const RENEWED_UNTIL: u64 = 2_500_000_000;

fn config(side: &Side) -> String {
    std::fs::read_to_string(side.dir.join("xfed.toml")).unwrap()
}

fn write(side: &Side, toml: &str) {
    std::fs::write(side.dir.join("xfed.toml"), toml).unwrap();
}

/// `xfed reload` on `dir`'s instance: success and what it printed.
fn reload(bin: &str, dir: &Path) -> (bool, String) {
    run_to_end(bin, &["reload", "--config", "xfed.toml"], dir, WAIT)
}

fn status(bin: &str, dir: &Path) -> String {
    let (ok, out) = run_to_end(bin, &["status", "--config", "xfed.toml"], dir, WAIT);
    assert!(ok, "xfed status failed:\n{out}");
    out
}

fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    use std::io::Write;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    Some(read_to_close(&mut s))
}

fn reload_suite(bin: &str) {
    let (a, b) = deployments(&format!("reload-{bin}"));
    let metrics = free_port();
    write(
        &b,
        &config(&b).replace(
            "metrics = false",
            &format!("metrics = \"127.0.0.1:{metrics}\""),
        ),
    );
    let mut xa = start(bin, &a);
    let mut xb = start(bin, &b);
    let mut alice = ua("alice", &a, false);
    let mut bob = ua("bob", &b, true);
    assert_eq!(alice.register(600), 200, "{}", xa.log_text());
    assert_eq!(bob.register(600), 200, "{}", xb.log_text());
    say(&mut alice, "bob@b.test", &mut bob, "before any reload");
    let inbound = |xb_dir: &Path| {
        status(bin, xb_dir)
            .lines()
            .filter(|l| l.starts_with("stream ") && l.contains("inbound a.test -> b.test"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let first = inbound(&b.dir);
    assert_eq!(first.len(), 1, "{first:?}");

    // A partner added, by SIGHUP: applied; a.test's stream stays.
    let with_c = format!(
        "{}\n[[partner]]\ndomain = \"c.test\"\ntype = \"federated\"\n",
        config(&b)
    );
    write(&b, &with_c);
    xb.hangup();
    let line = xb.wait_log("configuration reloaded", WAIT);
    assert!(line.contains("partner c.test added"), "{line}");
    assert!(line.contains("0 stream(s) closed"), "{line}");
    say(&mut alice, "bob@b.test", &mut bob, "after adding c.test");
    assert_eq!(
        inbound(&b.dir),
        first,
        "the stream from a.test was replaced"
    );

    // A file that does not parse: refused, with where.
    write(&b, &format!("{with_c}\n[gateway\n"));
    let (ok, out) = reload(bin, &b.dir);
    assert!(!ok, "a broken file was accepted:\n{out}");
    assert!(out.contains("xfed.toml"), "{out}");
    // Another local domain: refused until a restart.
    write(
        &b,
        &with_c.replace(
            "domains = [\"b.test\"]",
            "domains = [\"b.test\", \"d.test\"]",
        ),
    );
    let (ok, out) = reload(bin, &b.dir);
    assert!(!ok && out.contains("gateway.domains"), "{out}");
    xb.wait_log("reload refused", WAIT);
    say(
        &mut alice,
        "bob@b.test",
        &mut bob,
        "after the refused reloads",
    );

    // A new certificate for b.test (valid until 2049-03-22 rather than
    // 2050): new streams get it. a.test restarted opens a new one, and
    // tells what b.test presented.
    let renewed =
        TestCert::self_signed(&LeafSpec::xmpp_server("b.test").valid(1_700_000_000, RENEWED_UNTIL));
    write(&b, &with_c);
    std::fs::write(b.dir.join("cert.pem"), renewed.chain_pem()).unwrap();
    std::fs::write(b.dir.join("key.pem"), renewed.key_pem()).unwrap();
    let (ok, out) = reload(bin, &b.dir);
    assert!(
        ok && out.contains("certificate, key and trust read again"),
        "{out}"
    );
    // b.test's own status tells its new expiry.
    let ours = status(bin, &b.dir);
    assert!(
        ours.contains(&format!("\ncertificate valid-until={RENEWED_UNTIL}\n")),
        "{ours}"
    );
    assert!(xa.terminate());
    xa = start(bin, &a);
    assert_eq!(alice.register(600), 200, "{}", xa.log_text());
    say(
        &mut alice,
        "bob@b.test",
        &mut bob,
        "over a stream with the renewed certificate",
    );
    let theirs = status(bin, &a.dir);
    assert!(
        theirs.contains(&format!("cert=valid-until={RENEWED_UNTIL}")),
        "{theirs}"
    );

    // Listeners moved: the new ports answer, the old ones are gone.
    let (s2s, metrics2) = (free_port(), free_port());
    let moved = with_c
        .replace(
            &format!("127.0.0.1:{}\"]\ns2s_direct", b.s2s),
            &format!("127.0.0.1:{s2s}\"]\ns2s_direct"),
        )
        .replace(
            &format!("127.0.0.1:{metrics}"),
            &format!("127.0.0.1:{metrics2}"),
        );
    assert_ne!(moved, with_c);
    write(&b, &moved);
    let (ok, out) = reload(bin, &b.dir);
    assert!(ok, "{out}\n{}", xb.log_text());
    assert!(out.contains("[listen] addresses changed"), "{out}");
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    assert!(is_listening(addr(s2s)), "new s2s port not listening");
    eventually("the old s2s port closed", WAIT, || {
        !is_listening(addr(b.s2s))
    });
    let page = scrape(metrics2).expect("the new metrics port answers");
    assert!(page.contains("xfed_"), "{page}");
    eventually("the old metrics port closed", WAIT, || {
        scrape(metrics).is_none()
    });
    // The SIP listeners did not move: bob's flow is the one he registered.
    say(&mut alice, "bob@b.test", &mut bob, "after moving listeners");

    // a.test no longer a partner of b.test (and the s2s listener back
    // where a.test looks for it): its stream goes with policy-violation,
    // and it cannot come back.
    let without_a = cut_partner(&with_c, "a.test");
    write(&b, &without_a);
    let (ok, out) = reload(bin, &b.dir);
    assert!(ok, "{out}");
    assert!(out.contains("partner a.test removed"), "{out}");
    let line = xb.wait_log("partner a.test removed", WAIT);
    assert!(!line.contains(" 0 stream(s) closed"), "{line}");
    xa.wait_log("policy-violation", WAIT);
    eventually("a.test's streams gone from b.test", WAIT, || {
        inbound(&b.dir).is_empty()
    });
    assert!(is_listening(addr(b.s2s)), "the s2s port did not come back");
    let refused = alice.message("bob@b.test", "refused").status;
    assert!(refused >= 400, "{refused}\n{}", xa.log_text());
    assert!(
        bob.receive(200, Duration::from_secs(3)).is_none(),
        "a message crossed from a domain no longer a partner"
    );
    let _ = xa.log_text();
    finish(xa, xb);
}

/// `toml` without the `[[partner]]` table of `domain`.
fn cut_partner(toml: &str, domain: &str) -> String {
    let head = format!("[[partner]]\ndomain = \"{domain}\"");
    let start = toml.find(&head).expect("the partner's table");
    let end = toml[start + 1..]
        .find("\n[")
        .map_or(toml.len(), |i| start + 1 + i + 1);
    format!("{}{}", &toml[..start], &toml[end..])
}

fn finish(xa: Instance, xb: Instance) {
    assert!(xa.terminate());
    assert!(xb.terminate());
}

#[test]
fn reload_tokio() {
    reload_suite("xfed");
}

#[test]
fn reload_async_std() {
    reload_suite("xfed-async-std");
}
