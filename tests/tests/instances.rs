//! Several instances of one deployment (issue 13 item 2): xfed.test
//! served by processes sharing the dialback secret and one PostgreSQL
//! store, Debian's Prosody as the partner, whose DNS sends xfed.test to
//! the second instance only.
//!
//! - Two instances, dialback: alice registers with the first and writes
//!   to bob@prosody.test: the first opens the stream and sends its
//!   dialback key, Prosody verifies it with the authoritative server it
//!   finds (the second instance), which answers for a key it did not
//!   make; bob gets the message.
//! - Three instances, delivery: alice, dave and carol register with the
//!   first, second and third; bob's messages all reach the second, which
//!   forwards those for alice and carol to the instance holding their
//!   flow (`sip.path`, learnt from the store). bob watches carol (who
//!   publishes through the third, approved by the second). The third is
//!   killed while bob writes: every message is delivered or answered with
//!   an error; then carol's phone moves to the first, and bob sees her
//!   presence from there (his subscription was not lost) and reaches her.
//! - Two instances, presence: alice publishes through the first, bob
//!   subscribes and probes through the second.
//!
//! Both runtimes.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use xfed_tests::instances::deployment;
use xfed_tests::notify::alice_pidf::{AWAY_NOTE, OPEN_NOTE};
use xfed_tests::notify::{pidf_of, state, Notifies};
use xfed_tests::postgres::Postgres;
use xfed_tests::prosody::Prosody;
use xfed_tests::sip_ua::SipUa;
use xfed_tests::xmpp_client::{self, OutgoingPresence, PresenceReceived, XmppClient};
use xfed_tests::{eventually, free_port, require_peer, scrape_metrics, Instance};

const WAIT: Duration = Duration::from_secs(20);
const ALICE: &str = "alice@xfed.test";
const CAROL: &str = "carol@xfed.test";
const BOB: &str = "bob@prosody.test";

fn two_instances(bin: &str, prosody_ip: u8) {
    require_peer!(xmpp_client::check_installed());
    let Some(pg) = Postgres::start(&format!("instances-{bin}")) else {
        return;
    };
    pg.create_db("xfed");
    let d = deployment(&format!("two-{bin}"), 2, &pg, prosody_ip, false);
    let (dirs, sip_ports, options) = (&d.dirs, &d.sip_ports, d.prosody.clone());
    let prosody = require_peer!(Prosody::start(options));
    let run = ["run", "--config", "xfed.toml"];
    let mut first = Instance::start(bin, &run, &dirs[0]);
    let mut second = Instance::start(bin, &run, &dirs[1]);
    let mut bob = require_peer!(XmppClient::connect(
        "bob@prosody.test",
        "bob-secret",
        prosody.c2s_addr(),
        Duration::from_secs(60)
    ));

    let sip = ([127, 0, 0, 1], sip_ports[0]).into();
    let mut alice = SipUa::new("alice", "xfed.test", "alice-secret", sip, false);
    assert_eq!(alice.register(600), 200, "{}", first.log_text());
    let status = alice
        .message("bob@prosody.test", "from the first instance")
        .status;
    assert_eq!(status, 202, "{}\n{}", first.log_text(), second.log_text());
    bob.expect_message("alice's message", WAIT, |m| {
        m.body.as_deref() == Some("from the first instance")
    });
    // The second instance verified the first's key: Prosody asked it.
    second.wait_log(
        "dialback key for xfed.test -> prosody.test checked as authoritative server: valid",
        WAIT,
    );
    // The one store has what the first instance wrote.
    eventually("alice's binding in the shared store", WAIT, || {
        pg.query("xfed", "SELECT aor FROM bindings")
            .contains("alice@xfed.test")
    });
    assert!(first.terminate());
    assert!(second.terminate());
}

#[test]
fn two_instances_tokio() {
    two_instances("xfed", 47);
}

#[test]
fn two_instances_async_std() {
    two_instances("xfed-async-std", 48);
}

/// Every MESSAGE `ua` receives until none came for `quiet`, answered 200:
/// their bodies.
fn bodies(ua: &mut SipUa, quiet: Duration) -> Vec<String> {
    let mut got = Vec::new();
    while let Some(req) = ua.receive(200, quiet) {
        if req.method.as_str() == "MESSAGE" {
            got.push(String::from_utf8_lossy(&req.body).into_owned());
        }
    }
    got
}

fn three_instances(bin: &str, prosody_ip: u8) {
    require_peer!(xmpp_client::check_installed());
    let Some(pg) = Postgres::start(&format!("three-{bin}")) else {
        return;
    };
    pg.create_db("xfed");
    let d = deployment(&format!("three-{bin}"), 3, &pg, prosody_ip, true);
    let prosody = require_peer!(Prosody::start(d.prosody.clone()));
    let run = ["run", "--config", "xfed.toml"];
    let mut instances: Vec<Instance> = d
        .dirs
        .iter()
        .map(|dir| Instance::start(bin, &run, dir))
        .collect();
    for i in &mut instances {
        i.wait_log("shared store: hearing the other instances' writes", WAIT);
    }
    let mut bob = require_peer!(XmppClient::connect(
        "bob@prosody.test",
        "bob-secret",
        prosody.c2s_addr(),
        Duration::from_secs(60)
    ));
    let sip = |i: usize| ([127, 0, 0, 1], d.sip_ports[i]).into();
    // alice on the first, dave on the second (where Prosody comes),
    // carol on the third.
    let mut users: Vec<SipUa> = ["alice", "dave", "carol"]
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let mut ua = SipUa::new(u, "xfed.test", &format!("{u}-secret"), sip(i), false);
            assert_eq!(ua.register(600), 200, "{u}: {}", instances[i].log_text());
            ua
        })
        .collect();
    // The second hears where alice's and carol's flows are.
    eventually("three bindings in the shared store", WAIT, || {
        pg.query(
            "xfed",
            "SELECT count(*) FROM bindings WHERE path IS NOT NULL",
        )
        .contains('3')
    });

    // One message each: dave's stays on the second, alice's and carol's
    // are forwarded.
    for (i, u) in ["alice", "dave", "carol"].iter().enumerate() {
        let body = format!("hello {u}");
        bob.send_chat(&format!("{u}@xfed.test"), &body);
        let got = users[i]
            .receive(200, WAIT)
            .unwrap_or_else(|| panic!("{u} got nothing:\n{}", instances[1].log_text()));
        assert_eq!(String::from_utf8_lossy(&got.body), body);
    }
    instances[0].wait_log("SIP MESSAGE for alice@xfed.test forwarded by", WAIT);
    instances[2].wait_log("SIP MESSAGE for carol@xfed.test forwarded by", WAIT);
    // From the third instance, carol's own stream to Prosody.
    let status = users[2].message("bob@prosody.test", "carol here").status;
    assert_eq!(status, 202, "{}", instances[2].log_text());
    bob.expect_message("carol's message", WAIT, |m| {
        m.body.as_deref() == Some("carol here")
    });
    // bob watches carol, who publishes through the third; the second
    // approves.
    let carol_doc = |doc: &str| doc.replace("pres:alice@", "pres:carol@");
    let r = users[2].publish(&carol_doc(OPEN_NOTE), None, 3600);
    assert_eq!(r.status, 200, "{}", instances[2].log_text());
    // (What the third wrote reaches the others within milliseconds; a
    // subscription before that would see carol offline until her next
    // change.)
    instances[1].wait_log(
        "shared store: 1 presence publication(s) of carol@xfed.test",
        WAIT,
    );
    bob.fetch_roster();
    bob.presence_to(CAROL, "subscribe");
    let (seen, p) = from_user(&mut bob, CAROL, "carol's presence", 0, "available");
    assert_eq!(p.status.as_deref(), Some("In the lab"), "{p:?}");

    // The third instance dies while bob writes to alice and carol: every
    // message is delivered, or comes back to bob as an error.
    const EACH: usize = 30;
    // Both answer as messages come, as user agents do.
    let listen = |mut ua: SipUa, quiet: Duration| {
        std::thread::spawn(move || {
            let got: BTreeSet<String> = bodies(&mut ua, quiet).into_iter().collect();
            got
        })
    };
    let mut users = users.into_iter();
    let (alice, _dave, carol) = (users.next(), users.next(), users.next());
    let alice = listen(alice.unwrap(), Duration::from_secs(3));
    let carol = listen(carol.unwrap(), Duration::from_secs(3));
    let mut sent = Vec::new();
    let mut third = Some(instances.remove(2));
    for n in 0..EACH {
        for u in ["alice", "carol"] {
            let body = format!("{u} {n}");
            let id = bob.send_chat(&format!("{u}@xfed.test"), &body);
            sent.push((u, id, body));
        }
        if n == EACH / 3 {
            if let Some(i) = third.take() {
                i.kill();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let alice_got = alice.join().unwrap();
    let carol_got = carol.join().unwrap();
    let deadline = Instant::now() + WAIT;
    let unanswered = |bob: &mut XmppClient| -> Vec<String> {
        let errors: BTreeSet<String> = bob
            .received()
            .iter()
            .filter(|m| m.is_error())
            .filter_map(|m| m.id.clone())
            .collect();
        sent.iter()
            .filter(|(u, id, body)| {
                let delivered = if *u == "alice" {
                    &alice_got
                } else {
                    &carol_got
                };
                !delivered.contains(body) && !errors.contains(id)
            })
            .map(|(_, _, body)| body.clone())
            .collect()
    };
    while !unanswered(&mut bob).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let lost = unanswered(&mut bob);
    assert!(
        lost.is_empty(),
        "neither delivered nor answered: {lost:?}\nsecond:\n{}",
        instances[1].log_text()
    );
    // alice's instance lives: she got every one of hers.
    assert_eq!(alice_got.len(), EACH, "{alice_got:?}");
    // carol's died: some of hers came back as errors.
    let carol_errors = bob
        .received()
        .iter()
        .filter(|m| m.is_error() && m.from.as_deref() == Some("carol@xfed.test"))
        .count();
    assert!(carol_errors > 0, "no error for carol after the kill");
    assert!(!carol_got.is_empty(), "carol got nothing before the kill");
    eprintln!(
        "three instances ({bin}): alice got {}/{EACH}, carol got {} and {carol_errors} errors came back",
        alice_got.len(),
        carol_got.len()
    );
    // Nothing of carol's lost: her phone registers with the first instead
    // and publishes there; bob's subscription, approved by the second
    // before the third died, brings him her presence from the first, and
    // his messages reach her again.
    instances[0].wait_log(
        "shared store: 1 presence authorization(s) of carol@xfed.test",
        WAIT,
    );
    let mut carol = SipUa::new("carol", "xfed.test", "carol-secret", sip(0), false);
    assert_eq!(carol.register(600), 200, "{}", instances[0].log_text());
    let r = carol.publish(&carol_doc(AWAY_NOTE), None, 3600);
    assert_eq!(r.status, 200, "{}", instances[0].log_text());
    let (_, p) = from_user(
        &mut bob,
        CAROL,
        "carol's presence after the move",
        seen + 1,
        "available",
    );
    assert_eq!(
        (p.show.as_deref(), p.status.as_deref()),
        (Some("away"), Some("Back at five")),
        "{p:?}"
    );
    bob.send_chat(CAROL, "after the move");
    let got = carol
        .receive(200, WAIT)
        .unwrap_or_else(|| panic!("carol: nothing after the move\n{}", instances[1].log_text()));
    assert_eq!(String::from_utf8_lossy(&got.body), "after the move");
    for i in instances {
        assert!(i.terminate());
    }
}

#[test]
fn three_instances_tokio() {
    three_instances("xfed", 49);
}

#[test]
fn three_instances_async_std() {
    three_instances("xfed-async-std", 50);
}

/// The next presence of `kind` from `user` to bob after the first `skip`.
fn from_user(
    bob: &mut XmppClient,
    user: &str,
    what: &str,
    skip: usize,
    kind: &str,
) -> (usize, PresenceReceived) {
    bob.wait_presence(skip, WAIT, |p| p.from_bare() == user && p.kind() == kind)
        .unwrap_or_else(|| panic!("bob: no {what}\n{}", bob.diagnostics()))
}

/// Presence served by any instance: alice registers and publishes
/// through the first; bob's subscription reaches the second (Prosody's
/// DNS), which approves it and answers with alice's presence as the
/// first took it; alice's change through the first reaches bob (the
/// first learnt of bob's authorization from the store); bob's probe, at
/// the second, is answered with the change.
fn presence_across_instances(bin: &str, prosody_ip: u8) {
    require_peer!(xmpp_client::check_installed());
    let Some(pg) = Postgres::start(&format!("presence-{bin}")) else {
        return;
    };
    pg.create_db("xfed");
    let d = deployment(&format!("presence-{bin}"), 2, &pg, prosody_ip, true);
    // The second's metrics say whether it hears the first.
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let file = d.dirs[1].join("xfed.toml");
    let toml = std::fs::read_to_string(&file).unwrap();
    let with_metrics = toml.replace("metrics = false", &format!("metrics = \"{metrics}\""));
    assert_ne!(with_metrics, toml);
    std::fs::write(&file, with_metrics).unwrap();
    let prosody = require_peer!(Prosody::start(d.prosody.clone()));
    let run = ["run", "--config", "xfed.toml"];
    let mut first = Instance::start(bin, &run, &d.dirs[0]);
    let mut second = Instance::start(bin, &run, &d.dirs[1]);
    for i in [&mut first, &mut second] {
        i.wait_log("shared store: hearing the other instances' writes", WAIT);
    }
    eventually("xfed_store_shared_up 1", WAIT, || {
        scrape_metrics(metrics)
            .lines()
            .any(|l| l == "xfed_store_shared_up 1")
    });
    let mut bob = require_peer!(XmppClient::connect(
        "bob@prosody.test",
        "bob-secret",
        prosody.c2s_addr(),
        Duration::from_secs(60)
    ));
    bob.fetch_roster();
    let sip = ([127, 0, 0, 1], d.sip_ports[0]).into();
    let mut alice = SipUa::new("alice", "xfed.test", "alice-secret", sip, false);
    assert_eq!(alice.register(600), 200, "{}", first.log_text());
    let r = alice.publish(OPEN_NOTE, None, 3600);
    assert_eq!(r.status, 200, "{}", first.log_text());
    let etag = r.headers.get("SIP-ETag").unwrap_or_default().to_owned();
    second.wait_log(
        "shared store: 1 presence publication(s) of alice@xfed.test",
        WAIT,
    );

    bob.presence_to(ALICE, "subscribe");
    let (i, _) = from_user(&mut bob, ALICE, "subscribed", 0, "subscribed");
    let (i, p) = from_user(
        &mut bob,
        ALICE,
        "alice's presence from the second",
        i + 1,
        "available",
    );
    assert_eq!(p.status.as_deref(), Some("In the lab"), "{p:?}");
    // The first hears who may see alice.
    first.wait_log(
        "shared store: 1 presence authorization(s) of alice@xfed.test",
        WAIT,
    );
    let r = alice.publish(AWAY_NOTE, Some(&etag), 3600);
    assert_eq!(r.status, 200, "{}", first.log_text());
    let (i, p) = from_user(
        &mut bob,
        ALICE,
        "alice's change from the first",
        i + 1,
        "available",
    );
    assert_eq!(
        (p.show.as_deref(), p.status.as_deref()),
        (Some("away"), Some("Back at five")),
        "{p:?}"
    );
    // A probe reaches the second, which learns the change from the store
    // (within milliseconds: probed until it says so).
    let (mut i, deadline) = (i, Instant::now() + WAIT);
    loop {
        bob.presence_to(ALICE, "probe");
        let (at, p) = from_user(&mut bob, ALICE, "the probe's answer", i + 1, "available");
        i = at;
        if p.show.as_deref() == Some("away") {
            break;
        }
        assert!(Instant::now() < deadline, "the second never learnt: {p:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The other way: alice, on the first, watches bob. Prosody's answers
    // and bob's presence reach the second, which forwards them to the
    // first, where alice's dialog is.
    bob.auto_subscriptions(false);
    let mut notifies = Notifies::default();
    let r = alice.subscribe(BOB, 600);
    assert_eq!(r.status, 200, "{r:?}\n{}", first.log_text());
    bob.expect_presence("subscribe from alice", 0, WAIT, |p| {
        p.from_bare() == ALICE && p.kind() == "subscribe"
    });
    bob.presence_to(ALICE, "subscribed");
    notifies.expect(
        &mut alice,
        "NOTIFY active",
        WAIT,
        |n| state(n).starts_with("active"),
        || {
            format!(
                "first:\n{}\nsecond:\n{}",
                first.log_text(),
                second.log_text()
            )
        },
    );
    bob.send_presence(&OutgoingPresence {
        show: Some("dnd".into()),
        status: Some("Across instances".into()),
        ..OutgoingPresence::default()
    });
    notifies.expect(
        &mut alice,
        "NOTIFY with bob's note",
        WAIT,
        |n| {
            pidf_of(n).is_some_and(|p| {
                p.resources().iter().any(|r| {
                    r.notes()
                        .iter()
                        .any(|note| note.text() == "Across instances")
                })
            })
        },
        || {
            format!(
                "first:\n{}\nsecond:\n{}",
                first.log_text(),
                second.log_text()
            )
        },
    );
    second.wait_log("no dialog here, forwarded to", WAIT);
    assert!(first.terminate());
    assert!(second.terminate());
}

#[test]
fn presence_across_instances_tokio() {
    presence_across_instances("xfed", 51);
}

#[test]
fn presence_across_instances_async_std() {
    presence_across_instances("xfed-async-std", 52);
}

/// A `public-unverified` partner across instances: alice, on the first,
/// writes to bob (the first remembers him as her contact); bob's answer
/// reaches the second, which knows from the store that alice wrote to him
/// and forwards it to her; before she wrote, the second refused him.
fn first_contact_across_instances(bin: &str, prosody_ip: u8) {
    require_peer!(xmpp_client::check_installed());
    let Some(pg) = Postgres::start(&format!("contact-{bin}")) else {
        return;
    };
    pg.create_db("xfed");
    let d = deployment(&format!("contact-{bin}"), 2, &pg, prosody_ip, true);
    for dir in &d.dirs {
        let file = dir.join("xfed.toml");
        let toml = std::fs::read_to_string(&file).unwrap();
        let unverified = toml.replace("type = \"federated\"", "type = \"public-unverified\"");
        assert_ne!(unverified, toml);
        std::fs::write(&file, unverified).unwrap();
    }
    let prosody = require_peer!(Prosody::start(d.prosody.clone()));
    let run = ["run", "--config", "xfed.toml"];
    let mut first = Instance::start(bin, &run, &d.dirs[0]);
    let mut second = Instance::start(bin, &run, &d.dirs[1]);
    for i in [&mut first, &mut second] {
        i.wait_log("shared store: hearing the other instances' writes", WAIT);
    }
    let mut bob = require_peer!(XmppClient::connect(
        BOB,
        "bob-secret",
        prosody.c2s_addr(),
        Duration::from_secs(60)
    ));
    let sip = ([127, 0, 0, 1], d.sip_ports[0]).into();
    let mut alice = SipUa::new("alice", "xfed.test", "alice-secret", sip, false);
    assert_eq!(alice.register(600), 200, "{}", first.log_text());

    // Not invited yet: refused at the second.
    let early = bob.send_chat(ALICE, "too early");
    let e = bob.expect_reply("the refusal", &early, WAIT);
    assert!(e.is_error(), "{e:?}");
    // alice writes first, through the first instance.
    let status = alice.message(BOB, "hello bob").status;
    assert_eq!(status, 202, "{}", first.log_text());
    bob.expect_message("alice's message", WAIT, |m| {
        m.body.as_deref() == Some("hello bob")
    });
    second.wait_log(
        "shared store: 1 remembered contact(s) of alice@xfed.test",
        WAIT,
    );
    bob.send_chat(ALICE, "hello alice");
    let got = alice
        .receive(200, WAIT)
        .unwrap_or_else(|| panic!("alice: no answer\n{}", second.log_text()));
    assert_eq!(String::from_utf8_lossy(&got.body), "hello alice");
    assert!(first.terminate());
    assert!(second.terminate());
}

#[test]
fn first_contact_across_instances_tokio() {
    first_contact_across_instances("xfed", 55);
}

#[test]
fn first_contact_across_instances_async_std() {
    first_contact_across_instances("xfed-async-std", 56);
}
