//! `xfed status` (issue 12): the running instance tells, through its
//! admin socket, its partners (policy, state, last failure), streams
//! (direction, domains, authentication, TLS version), its routes and its
//! latest failures. Two deployments (a.test, b.test: TLS required,
//! dialback, each with a registrar; a.test has a second partner whose
//! server is gone); alice at a.test writes to bob at b.test after a failed
//! registration, and to carol at the gone partner; both binaries.

use std::time::Duration;

use xfed_tests::sip_pair::{deployments, start, ua};
use xfed_tests::sip_ua::SipUa;
use xfed_tests::{free_port, run_to_end};

const WAIT: Duration = Duration::from_secs(20);

fn status(bin: &str) {
    let (a, b) = deployments(&format!("status-{bin}"));
    // A second partner of a.test whose server is gone (nothing listens
    // at its address): its route fails, and that is its last failure.
    let toml = a.dir.join("xfed.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str(&format!(
        "\n[[partner]]\ndomain = \"gone.test\"\ntype = \"federated\"\nconnect = \"127.0.0.1:{}\"\n\
         tls = \"required\"\nsasl = \"not-supported\"\ndialback = true\n",
        free_port()
    ));
    std::fs::write(&toml, text).unwrap();
    let mut xa = start(bin, &a);
    let mut xb = start(bin, &b);
    let ask = |dir: &std::path::Path| {
        let (ok, out) = run_to_end(bin, &["status", "--config", "xfed.toml"], dir, WAIT);
        assert!(ok, "xfed status failed:\n{out}");
        out
    };

    // Before any traffic: no stream, no route, no failure.
    let before = ask(&a.dir);
    assert!(before.contains("domains a.test"), "{before}");
    assert!(before.contains("streams 0"), "{before}");
    assert!(before.contains("routes 0"), "{before}");
    assert!(before.contains("failures 0"), "{before}");
    // Its partner, with the configured policy, nothing live yet.
    assert!(
        before.contains("\npartner b.test type=federated tls=required sasl=not-supported dialback=true down in=0 out=0\n"),
        "{before}"
    );
    // Our certificate (the test one: valid until 2050-01-01).
    assert!(before.contains("\ncertificate valid-until="), "{before}");

    // A failed registration (bob's password for alice) is a failure.
    let mut mallory = SipUa::new("alice", "a.test", "bob-secret", a.sip, false);
    assert_eq!(mallory.register(600), 403, "{}", xa.log_text());
    let mut alice = ua("alice", &a, false);
    let mut bob = ua("bob", &b, true);
    assert_eq!(alice.register(600), 200, "{}", xa.log_text());
    assert_eq!(bob.register(600), 200, "{}", xb.log_text());
    assert_eq!(alice.message("bob@b.test", "hello").status, 202);
    bob.receive(200, WAIT).expect("bob's MESSAGE");

    let lost = alice.message("carol@gone.test", "anyone?");
    assert_ne!(lost.status, 202, "{}", xa.log_text());

    let after = ask(&a.dir);
    let line = |needle: &str| {
        after
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}:\n{after}"))
            .to_owned()
    };
    let out = line("outbound a.test -> b.test");
    assert!(out.starts_with("stream "), "{out}");
    assert!(out.contains(" dialback "), "{out}");
    assert!(out.contains("tls=TLSv1_3"), "{out}");
    // b.test's self-signed test certificate: valid until 2050-01-01.
    assert!(out.contains("cert=valid-until=2524608000"), "{out}");
    assert!(out.contains("established"), "{out}");
    let partner = line("partner b.test ");
    // Up by its stream out (b.test's dialback verification may have
    // opened one in too).
    assert!(
        partner.contains(" up in=") && partner.ends_with(" out=1"),
        "{partner}"
    );
    let gone = line("partner gone.test ");
    assert!(gone.contains(" down in=0 out=0 last-failure-at="), "{gone}");
    assert!(gone.contains("gone.test"), "{gone}");
    let route = line("route a.test -> b.test");
    assert!(route.contains("up on stream"), "{route}");
    assert!(route.contains("0 queued"), "{route}");
    let sip = line("sip transactions=");
    assert!(sip.contains("queued-messages=0"), "{sip}");
    let failure = line("failure at=");
    assert!(failure.contains("alice"), "{failure}");
    assert!(!after.contains("failures 0"), "{after}");

    // b.test sees the same stream from its side.
    let theirs = ask(&b.dir);
    let inbound = theirs
        .lines()
        .find(|l| l.contains("inbound a.test -> b.test"))
        .unwrap_or_else(|| panic!("no inbound stream:\n{theirs}"));
    assert!(
        inbound.contains("dialback") && inbound.contains("tls=TLSv1_3"),
        "{inbound}"
    );
    assert!(
        theirs.contains("\npartner a.test type=federated tls=required sasl=not-supported dialback=true up in=1 out="),
        "{theirs}"
    );
}

#[test]
fn status_tokio() {
    status("xfed");
}

#[test]
fn status_async_std() {
    status("xfed-async-std");
}
