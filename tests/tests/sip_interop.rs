//! SIP ⇄ XMPP interop, end to end over loopback, on both runtimes: sipp
//! plays the SIP user alice@xfed.test against xfed's registrar, Debian's
//! Prosody serves prosody.test, and a slixmpp client is bob@prosody.test;
//! xfed and Prosody federate over s2s (TLS with self-signed certificates,
//! dialback), as in `prosody_interop.rs`.
//!
//! alice's account is a plain `password` with `[sip] digest_algorithms =
//! ["MD5", "SHA-256"]`: sipp answers only MD5 and reads the first
//! challenge alone, so MD5 comes first.
//!
//! - `xmpp_to_sip`: bob → alice before alice registers gets
//!   `service-unavailable`; sipp REGISTERs with digest (401 offering MD5
//!   then SHA-256, then 200 to its MD5 answer);
//!   bob's "hello" reaches sipp as a SIP MESSAGE (From bob, To alice,
//!   text/plain, the body exactly), sipp answers 200 and bob gets no error;
//!   bob → nobody@xfed.test gets the same `service-unavailable` as the
//!   unregistered alice did (no account enumeration, RFC 6121 section
//!   8.5). Error and iq-result stanzas bob sends to xfed's domain are
//!   logged without their bodies, and a newline in them forges no line.
//! - `sip_to_xmpp`: sipp sends a MESSAGE as alice over TCP, is challenged
//!   (407), authenticates and gets 202; bob receives exactly that body from
//!   alice@xfed.test. Then a MESSAGE to a domain xfed does not federate with
//!   gets 404 (`remote-server-not-found`, RFC 7247 Table 2).
//! - `sip_error_reaches_xmpp`: sipp answers bob's message with 486 Busy
//!   Here; bob gets `recipient-unavailable` of type `wait` (RFC 7247
//!   Table 3).
//!
//! Under CI=true a missing Prosody, sipp or slixmpp fails the test;
//! elsewhere it prints why it skips.

use std::time::{Duration, Instant};

use xfed_tests::free_port;
use xfed_tests::lab::ProsodyLab;
use xfed_tests::need;
use xfed_tests::prosody::Skip;
use xfed_tests::sipp::{self, bare_uri, Credentials, Sipp, SippOptions, Transport};
use xfed_tests::xmpp_client;

const WAIT: Duration = Duration::from_secs(20);

type Lab = ProsodyLab;

/// Every peer the tests need, or why not.
fn peers_installed() -> Result<(), Skip> {
    sipp::binary()?;
    xmpp_client::check_installed()?;
    Ok(())
}

/// `[sip] digest_algorithms`: MD5 first, for sipp.
const DIGEST_ALGORITHMS: [&str; 2] = ["MD5", "SHA-256"];

/// The lab (`ProsodyLab`), alice's account a password offered with
/// [`DIGEST_ALGORITHMS`]. `None`: a peer is missing and the test skips.
fn lab(bin: &str, test: &str, prosody_ip: u8) -> Option<Lab> {
    need!(peers_installed());
    let name = format!("sip-{test}-{bin}");
    let credentials = Credentials::Password {
        digest_algorithms: Some(DIGEST_ALGORITHMS.map(str::to_owned).to_vec()),
    };
    Some(need!(ProsodyLab::start_with(
        bin,
        &name,
        prosody_ip,
        Duration::from_secs(120),
        &credentials
    )))
}

/// sipp as alice: REGISTERs (digest) over `transport` from `local`, then
/// answers `expect` MESSAGEs with the out-of-call scenario `oocsf`.
fn alice_uas(lab: &Lab, oocsf: &str, expect: u32, port: u16) -> Sipp {
    let mut o = SippOptions::new(
        "uas_register_receive.xml",
        lab.sip.sip_addr(),
        Transport::Udp,
    )
    .oocsf(oocsf)
    .auth("alice", "alice-secret", "xfed.test")
    .key("user", "alice")
    .key("domain", "xfed.test")
    .key("contact_params", Transport::Udp.contact_params())
    .key("expect_messages", &expect.to_string())
    .timeout(Duration::from_secs(40));
    o.local.set_port(port);
    Sipp::start(o).expect("sipp (checked before)")
}

/// The digest exchange of a REGISTER in a sipp run: 401 with challenges
/// for realm xfed.test in the order of [`DIGEST_ALGORITHMS`], then 200
/// with alice's contact.
fn assert_registered(run: &sipp::SippRun, port: u16) {
    let responses: Vec<&sipp::Traced> = run.received().filter(|m| m.status().is_some()).collect();
    let challenge = responses
        .iter()
        .find(|m| m.status() == Some(401))
        .unwrap_or_else(|| panic!("no 401 to the REGISTER\n{}", run.report()));
    let www = challenge.headers("WWW-Authenticate");
    let in_order = www.len() == DIGEST_ALGORITHMS.len()
        && www.iter().zip(DIGEST_ALGORITHMS).all(|(w, alg)| {
            w.contains("realm=\"xfed.test\"") && w.contains(&format!("algorithm={alg},"))
        });
    assert!(in_order, "401 challenges {www:?}\n{}", run.report());
    let ok = responses
        .iter()
        .find(|m| m.status() == Some(200) && m.header("CSeq") == Some("2 REGISTER"))
        .unwrap_or_else(|| panic!("no 200 to the authenticated REGISTER\n{}", run.report()));
    let contact = ok.header("Contact").unwrap_or_default();
    assert!(
        contact.contains(&format!("sip:alice@127.0.0.1:{port}")),
        "200 Contact {contact:?}\n{}",
        run.report()
    );
}

fn xmpp_to_sip(bin: &str, prosody_ip: u8) {
    let Some(mut lab) = lab(bin, "x2s", prosody_ip) else {
        return;
    };
    // Before alice registers: known account, no contact.
    let early = lab.bob.send_chat("alice@xfed.test", "anyone there?");
    let m = lab
        .bob
        .expect_reply("error for the early message", &early, WAIT);
    let early_error = m.error.clone();
    let cond = early_error.as_ref().and_then(|e| e.condition.as_deref());
    assert!(
        m.is_error() && cond == Some("service-unavailable"),
        "to an unregistered account: {m:?}\n{}",
        lab.diagnostics()
    );
    assert_eq!(m.from.as_deref(), Some("alice@xfed.test"), "{m:?}");

    let port = free_port();
    let mut uas = alice_uas(&lab, "uas_receive_message.xml", 1, port);
    lab.xfed_log("registrar: alice@xfed.test has 1 binding(s)", WAIT);
    let t0 = Instant::now();
    let hello = lab.bob.send_chat("alice@xfed.test", "hello");
    let run = uas.wait(Duration::from_secs(45));
    assert!(run.ok(), "{}\n{}", run.report(), lab.diagnostics());
    println!(
        "{bin}: XMPP -> SIP MESSAGE answered within {:?}",
        t0.elapsed()
    );
    assert_registered(&run, port);
    let messages: Vec<&sipp::Traced> = run.received().filter(|m| m.is_request("MESSAGE")).collect();
    assert_eq!(messages.len(), 1, "{}", run.report());
    let msg = messages[0];
    assert_eq!(
        msg.start_line(),
        format!("MESSAGE sip:alice@127.0.0.1:{port} SIP/2.0"),
        "{}",
        run.report()
    );
    assert_eq!(
        bare_uri(msg.header("From").unwrap_or_default()),
        "sip:bob@prosody.test",
        "{}",
        run.report()
    );
    assert_eq!(
        bare_uri(msg.header("To").unwrap_or_default()),
        "sip:alice@xfed.test",
        "{}",
        run.report()
    );
    let ctype = msg.header("Content-Type").unwrap_or_default();
    assert!(
        ctype.to_ascii_lowercase().starts_with("text/plain"),
        "Content-Type {ctype:?}\n{}",
        run.report()
    );
    assert_eq!(msg.body(), "hello", "{}", run.report());
    assert!(
        run.sent()
            .any(|m| m.status() == Some(200) && m.header("CSeq") == Some("1 MESSAGE")),
        "{}",
        run.report()
    );
    lab.xfed_log("answered 200", WAIT);

    // An unknown user; its error also comes after any error about "hello"
    // (one s2s stream, in order), so none came if none is there now.
    let lost = lab.bob.send_chat("nobody@xfed.test", "is this thing on?");
    let m = lab
        .bob
        .expect_reply("error from nobody@xfed.test", &lost, WAIT);
    let e = m.error.clone().unwrap_or_else(|| panic!("{m:?}"));
    assert!(m.is_error(), "{m:?}");
    // Exactly what the unregistered account answered: nothing to tell
    // a missing account from an offline one.
    assert_eq!(Some(&e), early_error.as_ref(), "{m:?}");
    assert_eq!(e.condition.as_deref(), Some("service-unavailable"), "{m:?}");
    assert_eq!(e.error_type.as_deref(), Some("cancel"), "{m:?}");
    assert_eq!(m.from.as_deref(), Some("nobody@xfed.test"), "{m:?}");
    let errors = lab.bob.received_with_id(&hello);
    assert!(
        errors.is_empty(),
        "bob got something back for hello: {errors:?}"
    );

    // Replies addressed to the gateway itself are logged, but never
    // their content, and nothing a peer writes starts a log line.
    lab.bob.send_raw(
        "<message type='error' to='xfed.test' id='leak-1'><body>SECRET-1\nFORGED line</body>\
         <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    );
    lab.bob.send_raw(
        "<iq type='result' to='xfed.test' id='leak-2&#10;FORGED id'><query xmlns='jabber:iq:version'>\
         <name>SECRET-2</name></query></iq>",
    );
    lab.xfed_log("leak-2", WAIT);
    let log = lab.xfed().log_text();
    assert!(log.contains("leak-1"), "{log}");
    assert!(!log.contains("SECRET"), "a body reached the log:\n{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a peer forged a log line:\n{log}"
    );
}

fn sip_to_xmpp(bin: &str, prosody_ip: u8) {
    let Some(mut lab) = lab(bin, "s2x", prosody_ip) else {
        return;
    };
    let body = "hello from sip \u{e9}t\u{e9} <&>";
    let mut uac = Sipp::start(
        SippOptions::new("uac_message.xml", lab.sip.sip_addr(), Transport::Tcp)
            .auth("alice", "alice-secret", "bob@prosody.test")
            .key("ruri", "bob@prosody.test")
            .key("from_user", "alice")
            .key("domain", "xfed.test")
            .key("body", body),
    )
    .expect("sipp (checked before)");
    let t0 = Instant::now();
    let run = uac.wait(Duration::from_secs(45));
    assert!(run.ok(), "{}\n{}", run.report(), lab.diagnostics());
    println!("{bin}: SIP MESSAGE -> 202 in {:?}", t0.elapsed());
    let statuses: Vec<u16> = run.received().filter_map(|m| m.status()).collect();
    assert!(
        statuses.contains(&407) && statuses.last() == Some(&202),
        "responses {statuses:?}\n{}",
        run.report()
    );
    let m = lab.bob.expect_message("alice's message", WAIT, |m| {
        m.from_bare() == "alice@xfed.test"
    });
    assert!(!m.is_error(), "{m:?}");
    assert_eq!(m.body.as_deref(), Some(body), "{m:?}");
    assert_eq!(
        m.to.as_deref().map(|t| t.split('/').next().unwrap_or(t)),
        Some("bob@prosody.test")
    );

    // A domain that is no partner (federation = allow-list).
    let mut uac = Sipp::start(
        SippOptions::new("uac_message_error.xml", lab.sip.sip_addr(), Transport::Udp)
            .auth("alice", "alice-secret", "carol@elsewhere.test")
            .key("ruri", "carol@elsewhere.test")
            .key("from_user", "alice")
            .key("domain", "xfed.test")
            .key("body", "anyone?"),
    )
    .expect("sipp (checked before)");
    let run = uac.wait(Duration::from_secs(45));
    assert!(run.ok(), "{}\n{}", run.report(), lab.diagnostics());
    let statuses: Vec<u16> = run.received().filter_map(|m| m.status()).collect();
    assert_eq!(
        statuses.last(),
        Some(&404),
        "responses {statuses:?}\n{}",
        run.report()
    );
    lab.xfed_log("bounced with remote-server-not-found; SIP 404", WAIT);
    // Only the one message reached bob.
    let from_alice = lab
        .bob
        .received()
        .iter()
        .filter(|m| m.from_bare() == "alice@xfed.test")
        .count();
    assert_eq!(from_alice, 1);
}

fn sip_error_reaches_xmpp(bin: &str, prosody_ip: u8) {
    let Some(mut lab) = lab(bin, "err", prosody_ip) else {
        return;
    };
    let port = free_port();
    let mut uas = alice_uas(&lab, "uas_receive_message_busy.xml", 1, port);
    lab.xfed_log("registrar: alice@xfed.test has 1 binding(s)", WAIT);
    let id = lab.bob.send_chat("alice@xfed.test", "are you busy?");
    let run = uas.wait(Duration::from_secs(45));
    assert!(run.ok(), "{}\n{}", run.report(), lab.diagnostics());
    assert!(
        run.sent()
            .any(|m| m.status() == Some(486) && m.header("CSeq") == Some("1 MESSAGE")),
        "{}",
        run.report()
    );
    let m = lab
        .bob
        .expect_reply("error for the busy message", &id, WAIT);
    let e = m.error.clone().unwrap_or_else(|| panic!("{m:?}"));
    assert!(m.is_error(), "{m:?}");
    assert_eq!(
        e.condition.as_deref(),
        Some("recipient-unavailable"),
        "{m:?}"
    );
    assert_eq!(e.error_type.as_deref(), Some("wait"), "{m:?}");
    assert_eq!(m.from.as_deref(), Some("alice@xfed.test"), "{m:?}");
    lab.xfed_log("answered 486", WAIT);
}

#[test]
fn xmpp_to_sip_tokio() {
    xmpp_to_sip("xfed", 61);
}

#[test]
fn xmpp_to_sip_async_std() {
    xmpp_to_sip("xfed-async-std", 62);
}

#[test]
fn sip_to_xmpp_tokio() {
    sip_to_xmpp("xfed", 63);
}

#[test]
fn sip_to_xmpp_async_std() {
    sip_to_xmpp("xfed-async-std", 64);
}

#[test]
fn sip_error_reaches_xmpp_tokio() {
    sip_error_reaches_xmpp("xfed", 65);
}

#[test]
fn sip_error_reaches_xmpp_async_std() {
    sip_error_reaches_xmpp("xfed-async-std", 66);
}
