//! Presence in registrar mode against software we did not write, end to
//! end over loopback, on both runtimes: Debian's Prosody serves
//! prosody.test (a `federated` partner of xfed.test), a slixmpp client is
//! bob@prosody.test, and a scripted SIP user agent (`SipUa`) is alice,
//! registered with digest at xfed's registrar. xfed and Prosody federate
//! over s2s as in `sip_interop.rs`.
//!
//! - `prosody_user_watches_sip_user`: alice PUBLISHes open with a note
//!   (200 with a SIP-ETag); bob subscribes to alice@xfed.test and gets
//!   `subscribed` and alice available with the note; alice modifies her
//!   publication to away with another note, then closed, and bob sees each
//!   change. xfed stops and starts again on the same SQLite store: alice's
//!   entity-tag is still good, and her next change reaches bob (his
//!   authorization survived).
//! - `sip_user_watches_prosody_user`: alice SUBSCRIBEs to bob@prosody.test
//!   (200, NOTIFY `pending`); bob gets `subscribe` from alice@xfed.test
//!   and answers `subscribed`; alice gets NOTIFY `active`; bob goes
//!   available with show and status, then unavailable, and alice's NOTIFYs
//!   (PIDF, read with `parse_pidf`) show him open with the note, then
//!   closed (NOTIFYs are rate-limited: 5 s apart at most once). xfed
//!   stops and starts again on its store: alice's dialog goes on (no new
//!   SUBSCRIBE), and bob's next change reaches her in it.
//!
//! - `public_unverified_waits_for_the_invitation`: with prosody.test as a
//!   `public-unverified` partner, bob's subscribe to alice gets nothing
//!   (pending) until alice SUBSCRIBEs to him; then `subscribed` and her
//!   availability without her note.
//! - `operator_removes_a_contact`: alice and bob watch each other; `xfed
//!   contact list` (a second process, through the admin socket) shows the
//!   relations, `xfed contact remove` ends them: bob gets `unsubscribed`
//!   and `unsubscribe` from alice, alice's device a NOTIFY
//!   `terminated;reason=rejected`.
//!
//! Under CI=true a missing Prosody or slixmpp fails the test; elsewhere it
//! prints why it skips.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use xfed_core::sip::Response;
use xfed_core::translate::presence::{Availability, Show};
use xfed_tests::lab::{ProsodyLab, ALICE, ALICE_SECRET, BOB};
use xfed_tests::need;
use xfed_tests::notify::alice_pidf::{AWAY_NOTE, CLOSED, OPEN_NOTE};
use xfed_tests::notify::{open, pidf_of, state, Notifies};
use xfed_tests::prosody::Skip;
use xfed_tests::run_to_end;
use xfed_tests::sip_ua::SipUa;
use xfed_tests::xmpp_client::{self, OutgoingPresence, PresenceReceived};

const WAIT: Duration = Duration::from_secs(20);
/// A NOTIFY may wait for the rate limit (5 s) on top of the network.
const NOTIFY_WAIT: Duration = Duration::from_secs(30);

const AFTER_RESTART: &str = "<?xml version='1.0' encoding='UTF-8'?>\
<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:alice@xfed.test'>\
<tuple id='phone'><status><basic>open</basic></status>\
<note xml:lang='en'>After the restart</note></tuple></presence>";

type Lab = ProsodyLab;

/// alice's user agent (UDP), registered with digest.
fn alice(lab: &mut Lab) -> SipUa {
    let mut ua = SipUa::new(
        "alice",
        "xfed.test",
        ALICE_SECRET,
        lab.sip.sip_addr(),
        false,
    );
    let status = ua.register(3600);
    assert_eq!(status, 200, "alice's REGISTER\n{}", lab.diagnostics());
    lab.xfed_log("registrar: alice@xfed.test has 1 binding(s)", WAIT);
    ua
}

/// Every peer the tests need, or why not.
fn peers_installed() -> Result<(), Skip> {
    xmpp_client::check_installed()?;
    Ok(())
}

/// The lab (`ProsodyLab`), bob an interested resource (RFC 6121 section
/// 2.2), as clients are. `None`: a peer is missing and the test skips.
fn lab(bin: &str, test: &str, prosody_ip: u8) -> Option<Lab> {
    need!(peers_installed());
    let name = format!("presence-{test}-{bin}");
    let mut lab = need!(ProsodyLab::start(
        bin,
        &name,
        prosody_ip,
        Duration::from_secs(180)
    ));
    lab.bob.fetch_roster();
    Some(lab)
}

/// The entity-tag of a successful PUBLISH.
fn etag_of(lab: &mut Lab, r: &Response, what: &str) -> String {
    if r.status != 200 {
        panic!("{what}: {r:?}\n{}", lab.diagnostics());
    }
    match r.headers.get("SIP-ETag") {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => panic!("{what}: 200 without SIP-ETag: {r:?}"),
    }
}

/// Waits for a presence from alice to bob after the first `skip` ones.
fn bob_expects(
    lab: &mut Lab,
    what: &str,
    skip: usize,
    pred: impl Fn(&PresenceReceived) -> bool,
) -> (usize, PresenceReceived) {
    match lab
        .bob
        .wait_presence(skip, WAIT, |p| p.from_bare() == ALICE && pred(p))
    {
        Some(found) => found,
        None => panic!(
            "bob got no {what} from alice within {WAIT:?}\n{}",
            lab.diagnostics()
        ),
    }
}

fn prosody_user_watches_sip_user(bin: &str, prosody_ip: u8) {
    let Some(mut lab) = lab(bin, "watch-sip", prosody_ip) else {
        return;
    };
    let mut alice = alice(&mut lab);
    let t0 = Instant::now();
    let r = alice.publish(OPEN_NOTE, None, 3600);
    let mut etag = etag_of(&mut lab, &r, "alice's first PUBLISH");
    assert_eq!(r.headers.get("Expires"), Some("3600"), "{r:?}");

    lab.bob.presence_to(ALICE, "subscribe");
    let (i, p) = bob_expects(&mut lab, "subscribed", 0, |p| {
        p.kind() == "subscribed" || p.kind() == "unsubscribed"
    });
    assert_eq!(p.kind(), "subscribed", "{p:?}\n{}", lab.diagnostics());
    let (i, p) = bob_expects(&mut lab, "availability", i + 1, |p| {
        p.kind() != "subscribed"
    });
    assert!(
        p.kind() == "available" && p.status.as_deref() == Some("In the lab") && p.show.is_none(),
        "alice as bob first sees her: {p:?}\n{}",
        lab.diagnostics()
    );
    println!(
        "{bin}: PUBLISH -> bob sees alice available in {:?}",
        t0.elapsed()
    );

    // A modification: away, another note.
    let t1 = Instant::now();
    let r = alice.publish(AWAY_NOTE, Some(&etag), 3600);
    etag = etag_of(&mut lab, &r, "alice's away PUBLISH");
    let (i, p) = bob_expects(&mut lab, "the away change", i + 1, |_| true);
    assert!(
        p.kind() == "available"
            && p.show.as_deref() == Some("away")
            && p.status.as_deref() == Some("Back at five"),
        "alice away: {p:?}\n{}",
        lab.diagnostics()
    );
    println!("{bin}: PUBLISH change -> bob in {:?}", t1.elapsed());

    // Closed: unavailable.
    let r = alice.publish(CLOSED, Some(&etag), 3600);
    etag = etag_of(&mut lab, &r, "alice's closed PUBLISH");
    let (i, p) = bob_expects(&mut lab, "the closed change", i + 1, |_| true);
    assert_eq!(p.kind(), "unavailable", "{p:?}\n{}", lab.diagnostics());

    // The same instance again, on the same SQLite store.
    let t2 = Instant::now();
    lab.restart_xfed();
    println!("{bin}: xfed restarted in {:?}", t2.elapsed());
    let r = alice.publish(AFTER_RESTART, Some(&etag), 3600);
    etag_of(
        &mut lab,
        &r,
        "alice's PUBLISH with her entity-tag after the restart",
    );
    let (i, p) = bob_expects(&mut lab, "the change after the restart", i + 1, |_| true);
    assert!(
        p.kind() == "available" && p.status.as_deref() == Some("After the restart"),
        "alice after the restart: {p:?}\n{}",
        lab.diagnostics()
    );
    println!(
        "{bin}: after the restart, PUBLISH -> bob in {:?}",
        t2.elapsed()
    );
    // bob's probe (routed by Prosody from his bare JID) gets the current
    // state.
    lab.bob.presence_to(ALICE, "probe");
    let (_, p) = bob_expects(&mut lab, "an answer to the probe", i + 1, |_| true);
    assert!(
        p.kind() == "available" && p.status.as_deref() == Some("After the restart"),
        "alice as the probe found her: {p:?}\n{}",
        lab.diagnostics()
    );
    // Nothing bob was not meant to see: one subscribed, four changes, the
    // probe's answer.
    let from_alice: Vec<String> = lab
        .bob
        .presences()
        .iter()
        .filter(|p| p.from_bare() == ALICE)
        .map(|p| p.kind().to_owned())
        .collect();
    assert_eq!(
        from_alice,
        [
            "subscribed",
            "available",
            "available",
            "unavailable",
            "available",
            "available"
        ],
        "{}",
        lab.diagnostics()
    );
}

fn sip_user_watches_prosody_user(bin: &str, prosody_ip: u8) {
    let Some(mut lab) = lab(bin, "watch-xmpp", prosody_ip) else {
        return;
    };
    lab.bob.auto_subscriptions(false);
    let mut alice = alice(&mut lab);
    let mut notifies = Notifies::default();

    let t0 = Instant::now();
    let r = alice.subscribe(BOB, 600);
    if r.status != 200 {
        panic!("alice's SUBSCRIBE: {r:?}\n{}", lab.diagnostics());
    }
    let expires: u32 = r
        .headers
        .get("Expires")
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or_else(|| panic!("200 to SUBSCRIBE without Expires: {r:?}"));
    assert!((60..=600).contains(&expires), "granted Expires {expires}");
    let n = notifies.expect(
        &mut alice,
        "first NOTIFY",
        NOTIFY_WAIT,
        |_| true,
        || lab.diagnostics(),
    );
    assert!(
        state(&n).starts_with("pending"),
        "first NOTIFY's Subscription-State {:?}\n{}",
        state(&n),
        notifies.summary()
    );
    assert_eq!(n.headers.get("Event"), Some("presence"), "{n:?}");

    // bob is asked, from alice's bare JID, and says yes.
    let (_, p) = lab
        .bob
        .expect_presence("subscribe from alice", 0, WAIT, |p| {
            p.from_bare() == ALICE && p.kind() == "subscribe"
        });
    assert_eq!(p.from.as_deref(), Some(ALICE), "from the bare JID: {p:?}");
    lab.bob.presence_to(ALICE, "subscribed");
    notifies.expect(
        &mut alice,
        "NOTIFY active",
        NOTIFY_WAIT,
        |n| state(n).starts_with("active"),
        || lab.diagnostics(),
    );
    println!("{bin}: SUBSCRIBE -> NOTIFY active in {:?}", t0.elapsed());

    // bob busy with a note.
    let t1 = Instant::now();
    lab.bob.send_presence(&OutgoingPresence {
        show: Some("dnd".into()),
        status: Some("Writing the interop test".into()),
        ..OutgoingPresence::default()
    });
    let n = notifies.expect(
        &mut alice,
        "NOTIFY with bob's note",
        NOTIFY_WAIT,
        |n| {
            pidf_of(n).is_some_and(|p| {
                p.resources().iter().any(|r| {
                    r.notes()
                        .iter()
                        .any(|note| note.text() == "Writing the interop test")
                })
            })
        },
        || lab.diagnostics(),
    );
    println!("{bin}: bob's status -> NOTIFY in {:?}", t1.elapsed());
    assert!(state(&n).starts_with("active"), "{}", notifies.summary());
    let ctype = n.headers.get("Content-Type").unwrap_or_default();
    assert!(
        ctype
            .to_ascii_lowercase()
            .starts_with("application/pidf+xml"),
        "Content-Type {ctype:?}"
    );
    let p = pidf_of(&n).expect("a body");
    let bob_res = p
        .resources()
        .iter()
        .find(|r| !r.notes().is_empty())
        .expect("the resource with the note");
    assert!(
        matches!(
            bob_res.availability(),
            Availability::Available {
                show: Some(Show::Dnd),
                ..
            }
        ),
        "bob's resource {bob_res:?}\n{}",
        notifies.summary()
    );
    assert!(open(&p), "{}", notifies.summary());

    // bob leaves.
    let t2 = Instant::now();
    lab.bob.send_presence(&OutgoingPresence {
        presence_type: Some("unavailable".into()),
        ..OutgoingPresence::default()
    });
    let n = notifies.expect(
        &mut alice,
        "NOTIFY closed",
        NOTIFY_WAIT,
        |n| pidf_of(n).is_none_or(|p| !open(&p)),
        || lab.diagnostics(),
    );
    println!("{bin}: bob unavailable -> NOTIFY in {:?}", t2.elapsed());
    assert!(state(&n).starts_with("active"), "{}", notifies.summary());
    let p = pidf_of(&n).unwrap_or_default();
    assert!(
        p.resources()
            .iter()
            .all(|r| r.availability() == Availability::Unavailable),
        "{}",
        notifies.summary()
    );
    // xfed restarts on its store: alice's dialog goes on (no new
    // SUBSCRIBE), and bob's next change reaches her in it, its CSeq above
    // the NOTIFYs before.
    let before = notifies
        .got
        .last()
        .map_or(0, |n| n.headers.cseq().map_or(0, |c| c.seq));
    let t3 = Instant::now();
    lab.restart_xfed();
    lab.xfed_log("subscription dialog(s) restored", WAIT);
    lab.bob.send_presence(&OutgoingPresence {
        status: Some("Back after the restart".into()),
        ..OutgoingPresence::default()
    });
    let n = notifies.expect(
        &mut alice,
        "NOTIFY after the restart",
        NOTIFY_WAIT,
        |n| {
            pidf_of(n).is_some_and(|p| {
                p.resources().iter().any(|r| {
                    r.notes()
                        .iter()
                        .any(|note| note.text() == "Back after the restart")
                })
            })
        },
        || lab.diagnostics(),
    );
    println!(
        "{bin}: restart, bob available -> NOTIFY in {:?}",
        t3.elapsed()
    );
    let seq = n.headers.cseq().map_or(0, |c| c.seq);
    assert!(seq > before, "CSeq {seq} after {before}");
    let call_ids: Vec<&str> = notifies
        .got
        .iter()
        .filter_map(|n| n.headers.call_id().ok())
        .collect();
    assert!(
        call_ids.iter().all(|c| *c == call_ids[0]),
        "one dialog: {call_ids:?}"
    );
    // One dialog throughout: pending once, then active, every NOTIFY of
    // the presence package, every body PIDF.
    for (k, n) in notifies.got.iter().enumerate() {
        let want = if k == 0 { "pending" } else { "active" };
        assert!(
            state(n).starts_with(want),
            "NOTIFY {k}: {:?}\n{}",
            state(n),
            notifies.summary()
        );
        assert_eq!(n.headers.get("Event"), Some("presence"), "NOTIFY {k}");
        if !n.body.is_empty() {
            pidf_of(n);
        }
    }
}

/// `xfed contact ...` against the running instance, in its directory.
fn contact(lab: &mut Lab, args: &[&str]) -> String {
    let mut all = vec!["contact"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", "xfed.toml"]);
    let (ok, out) = run_to_end(&lab.bin, &all, &lab.dir, WAIT);
    if !ok {
        panic!("xfed {all:?} failed:\n{out}\n{}", lab.diagnostics());
    }
    out
}

fn operator_removes_a_contact(bin: &str, prosody_ip: u8) {
    let Some(mut lab) = lab(bin, "revoke", prosody_ip) else {
        return;
    };
    lab.bob.auto_subscriptions(false);
    let mut alice = alice(&mut lab);
    let mut notifies = Notifies::default();
    // Both ways: alice watches bob (he approves), bob watches alice
    // (federated: approved by xfed).
    assert_eq!(alice.subscribe(BOB, 600).status, 200);
    lab.bob
        .expect_presence("subscribe from alice", 0, WAIT, |p| {
            p.from_bare() == ALICE && p.kind() == "subscribe"
        });
    lab.bob.presence_to(ALICE, "subscribed");
    notifies.expect(
        &mut alice,
        "NOTIFY active",
        NOTIFY_WAIT,
        |n| state(n).starts_with("active"),
        || lab.diagnostics(),
    );
    lab.bob.presence_to(ALICE, "subscribe");
    let (i, _) = bob_expects(&mut lab, "subscribed", 0, |p| p.kind() == "subscribed");

    // The socket is the owner's alone, and a hostile request is refused
    // with a reason, reading no more than the bound.
    let socket = lab.dir.join("xfed-admin.sock");
    let mode = std::fs::metadata(&socket)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", socket.display(), lab.diagnostics()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let mut raw = UnixStream::connect(&socket).expect("the admin socket");
    let _ = raw.write_all(&vec![b'x'; 100_000]);
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("error: request longer than"), "{answer}");

    let list = contact(&mut lab, &["list", ALICE]);
    for line in [
        format!("watcher {BOB} approved"),
        format!("watching {BOB} authorized dialogs=1"),
        format!("contacted {BOB}"),
    ] {
        assert!(list.contains(&line), "no {line:?} in:\n{list}");
    }
    let t0 = Instant::now();
    let out = contact(&mut lab, &["remove", ALICE, BOB]);
    assert!(
        out.contains("removed authorization, subscription, contact"),
        "{out}"
    );
    // Bob hears both ends go; alice's device hears the dialog rejected.
    bob_expects(&mut lab, "unsubscribed", i + 1, |p| {
        p.kind() == "unsubscribed"
    });
    bob_expects(&mut lab, "unsubscribe", i + 1, |p| {
        p.kind() == "unsubscribe"
    });
    notifies.expect(
        &mut alice,
        "NOTIFY rejected",
        NOTIFY_WAIT,
        |n| state(n).starts_with("terminated;reason=rejected"),
        || lab.diagnostics(),
    );
    println!(
        "{bin}: contact remove -> both sides told in {:?}",
        t0.elapsed()
    );
    let list = contact(&mut lab, &["list", ALICE]);
    assert!(!list.contains(BOB), "{list}");
    lab.xfed_log(
        "operator removed bob@prosody.test from alice@xfed.test's contacts",
        WAIT,
    );
}

/// prosody.test as a `public-unverified` partner: bob's subscription to
/// alice waits, unanswered, until alice adds him (her SUBSCRIBE to him is
/// the invitation); then he sees her availability, never her note.
fn public_unverified_waits_for_the_invitation(bin: &str, prosody_ip: u8) {
    let Some(mut lab) = lab(bin, "unverified", prosody_ip) else {
        return;
    };
    let path = lab.dir.join("xfed.toml");
    let toml = std::fs::read_to_string(&path).expect("xfed.toml");
    let unverified = toml.replace("type = \"federated\"", "type = \"public-unverified\"");
    assert_ne!(toml, unverified);
    std::fs::write(&path, unverified).expect("xfed.toml");
    lab.restart_xfed();
    lab.bob.auto_subscriptions(false);
    let mut alice = alice(&mut lab);
    let r = alice.publish(OPEN_NOTE, None, 3600);
    etag_of(&mut lab, &r, "alice's PUBLISH");

    lab.bob.presence_to(ALICE, "subscribe");
    lab.xfed_log(
        "presence: bob@prosody.test asks to see alice@xfed.test; pending",
        WAIT,
    );
    // Nothing at all reaches bob while it is pending.
    std::thread::sleep(Duration::from_secs(2));
    let seen = lab
        .bob
        .presences()
        .iter()
        .filter(|p| p.from_bare() == ALICE)
        .count();
    if seen != 0 {
        let got = format!("{:?}", lab.bob.presences());
        panic!("bob saw alice while pending: {got}\n{}", lab.diagnostics());
    }

    assert_eq!(alice.subscribe(BOB, 600).status, 200);
    let (i, p) = bob_expects(&mut lab, "subscribed", 0, |p| p.kind() != "subscribe");
    assert_eq!(p.kind(), "subscribed", "{p:?}\n{}", lab.diagnostics());
    let (_, p) = bob_expects(&mut lab, "alice's availability", i + 1, |p| {
        p.kind() != "subscribe"
    });
    assert!(
        p.kind() == "available" && p.status.is_none(),
        "availability without the note: {p:?}\n{}",
        lab.diagnostics()
    );
}

#[test]
fn public_unverified_waits_for_the_invitation_tokio() {
    public_unverified_waits_for_the_invitation("xfed", 77);
}

#[test]
fn public_unverified_waits_for_the_invitation_async_std() {
    public_unverified_waits_for_the_invitation("xfed-async-std", 78);
}

#[test]
fn operator_removes_a_contact_tokio() {
    operator_removes_a_contact("xfed", 89);
}

#[test]
fn operator_removes_a_contact_async_std() {
    operator_removes_a_contact("xfed-async-std", 90);
}

#[test]
fn prosody_user_watches_sip_user_tokio() {
    prosody_user_watches_sip_user("xfed", 71);
}

#[test]
fn prosody_user_watches_sip_user_async_std() {
    prosody_user_watches_sip_user("xfed-async-std", 72);
}

#[test]
fn sip_user_watches_prosody_user_tokio() {
    sip_user_watches_prosody_user("xfed", 73);
}

#[test]
fn sip_user_watches_prosody_user_async_std() {
    sip_user_watches_prosody_user("xfed-async-std", 74);
}
