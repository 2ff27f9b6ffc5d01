//! xfed's SIP proxy mode behind a real Kamailio (Debian's `kamailio`, 5.6,
//! a plain proxy/registrar without the xmpp module), end to end over
//! loopback, on both runtimes. Kamailio serves the SIP domain xfed.test on
//! 127.0.0.9x (`tests/peers/kamailio/kamailio.cfg`: REGISTER → location
//! table; MESSAGE for xfed.test → lookup, relay to the contact; MESSAGE for
//! another domain → relay to xfed). xfed runs `[sip] mode = "proxy"` with
//! Kamailio as `next_hop` and Kamailio's address as the only `trusted` one;
//! Prosody serves prosody.test, bob@prosody.test is a slixmpp client, and
//! xfed and Prosody federate over s2s as in `sip_interop.rs`. The SIP user
//! alice@xfed.test is on 127.0.0.1, so xfed would refuse her directly.
//!
//! - `xmpp_to_sip`: bob → alice before she registers: Kamailio has no
//!   contact and answers 404, bob gets `service-unavailable` (what a
//!   missing account gets too: no enumeration, RFC 6121 section 8.5). Alice (the `SipUa` helper) REGISTERs with Kamailio (200, no
//!   digest); bob's "hello" reaches her as a SIP MESSAGE through xfed and
//!   Kamailio: Request-URI her contact (Kamailio's lookup), From
//!   sip:bob@prosody.test, To sip:alice@xfed.test, text/plain, the body
//!   exactly, Kamailio's Via above xfed's; her 200 goes back through
//!   Kamailio to xfed and bob gets no error.
//! - `sip_to_xmpp`: sipp as alice sends a MESSAGE to sip:bob@prosody.test
//!   to Kamailio (no digest: `uac_bench_message.xml`), which relays it to
//!   xfed; xfed answers 202 once the stanza is on the s2s stream, Kamailio
//!   passes the 202 back (exactly one final response); bob receives exactly
//!   sipp's body from alice@xfed.test, once. Then a MESSAGE through
//!   Kamailio to a domain xfed does not federate with gets xfed's 404, and
//!   the same MESSAGE sent straight to xfed from 127.0.0.1 gets 403 (not
//!   trusted).
//!
//! - `mutual_tls`: xfed ⇄ Kamailio over TLS, both authenticated by
//!   certificates from the lab's CA: `next_hop` is
//!   `sip:kamailio.test:PORT;transport=tls;maddr=127.0.0.9x` and
//!   `trusted = ["kamailio.test"]` (no address: trust comes from the
//!   certificate alone). Kamailio requires xfed's client certificate and
//!   verifies it; xfed verifies Kamailio's server certificate before it
//!   sends anything. bob → alice arrives with xfed's `SIP/2.0/TLS` Via
//!   under Kamailio's; alice → bob reaches xfed over a TLS connection
//!   Kamailio opens with its client certificate, gets 202, and bob
//!   receives it. alice's own MESSAGE straight to xfed (plain TCP, no
//!   certificate) gets 403.
//!
//! - Presence, with Kamailio also the domain's presence server (Debian's
//!   `kamailio-presence-modules`: presence and presence_xml, every watcher
//!   authorized, db_text). `prosody_user_watches_sip_user`: alice
//!   PUBLISHes to Kamailio (open with a note); bob subscribes to
//!   alice@xfed.test, xfed SUBSCRIBEs to Kamailio as sip:bob@prosody.test,
//!   and Kamailio's `active` NOTIFY brings bob `subscribed` and alice
//!   available with her note; her away and closed PUBLISHes reach bob as
//!   each change; xfed restarts on its store and goes on in the same
//!   dialog (a refresh to Kamailio's Contact, no second initial SUBSCRIBE),
//!   whose NOTIFY gives bob her state again; his probe is answered from
//!   the last NOTIFY
//!   (unavailable); his unsubscribe makes xfed end its dialog with
//!   Kamailio (`Expires: 0`), and bob saw nothing else.
//!   `sip_user_watches_prosody_user`: alice SUBSCRIBEs to
//!   sip:bob@prosody.test at Kamailio, which record-routes it to xfed (200);
//!   xfed's NOTIFYs reach her through Kamailio (its Via on top, Request-URI
//!   her Contact): `pending`, `active` once bob answers `subscribed`, then
//!   PIDF with bob's dnd and note, and closed when he leaves.
//!
//! Transports: each runtime runs one direction over UDP and the other over
//! TCP (xfed ⇄ Kamailio and the SIP user ⇄ Kamailio alike); `mutual_tls`
//! runs on both runtimes with the SIP user on TCP.
//!
//! Under CI=true a missing Kamailio, Prosody, sipp or slixmpp fails the
//! test; elsewhere it prints why it skips.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use xfed_core::sip::Request;
use xfed_core::tls::testing::{LeafSpec, TestCa, TestCert};
use xfed_core::translate::presence::{Availability, Show};
use xfed_tests::kamailio::{self, Kamailio, KamailioOptions, KamailioTls};
use xfed_tests::need;
use xfed_tests::notify::alice_pidf::{AWAY_NOTE, CLOSED, OPEN_NOTE};
use xfed_tests::notify::{open, pidf_of, state, Notifies};
use xfed_tests::prosody::{prosody_for_xfed, write_dialback_certs, Prosody, Skip};
use xfed_tests::sip_ua::SipUa;
use xfed_tests::sipp::{self, bare_uri, Sipp, SippOptions, Transport, XfedSip};
use xfed_tests::xmpp_client::{self, OutgoingPresence, PresenceReceived, XmppClient};
use xfed_tests::{free_port, temp_dir, Instance};

const WAIT: Duration = Duration::from_secs(20);

/// xfed in proxy mode behind Kamailio, Prosody and bob, all running.
struct Lab {
    name: String,
    bin: String,
    /// Declared first: dropped (killed) first.
    bob: XmppClient,
    /// `None` only while restarting.
    xfed: Option<Instance>,
    /// What earlier runs of this instance logged.
    earlier_log: String,
    kamailio: Kamailio,
    prosody: Prosody,
    sip: XfedSip,
    /// The SIP user ⇄ Kamailio over TCP, else UDP.
    tcp: bool,
    /// xfed's folder (config, certificates, store).
    dir: PathBuf,
}

impl Lab {
    /// Everything xfed, Kamailio, Prosody and bob logged, for a failure
    /// message.
    fn diagnostics(&mut self) -> String {
        let xfed = self
            .xfed
            .as_mut()
            .map(Instance::log_text)
            .unwrap_or_default();
        format!(
            "--- {} xfed:\n{}{}\n{}\n{}\n{}",
            self.name,
            self.earlier_log,
            xfed,
            self.kamailio.diagnostics(),
            self.prosody.diagnostics(),
            self.bob.diagnostics()
        )
    }

    /// Waits for an xfed log line containing `needle`.
    fn xfed_log(&mut self, needle: &str) -> String {
        self.xfed
            .as_mut()
            .expect("xfed is running")
            .wait_log(needle, WAIT)
    }

    /// Stops xfed (SIGTERM) and starts it again on the same folder,
    /// configuration and SQLite store.
    fn restart_xfed(&mut self) {
        let mut old = self.xfed.take().expect("xfed is running");
        self.earlier_log
            .push_str(&format!("{}\n--- (restart)\n", old.log_text()));
        assert!(
            old.terminate(),
            "xfed did not stop cleanly on SIGTERM\n{}",
            self.earlier_log
        );
        self.xfed = Some(Instance::start(
            &self.bin,
            &["run", "--config", "xfed.toml"],
            &self.dir,
        ));
    }

    /// Waits for a Kamailio log line containing `needle`.
    fn kamailio_log(&mut self, needle: &str) -> String {
        match self.kamailio.wait_log(needle, WAIT) {
            Ok(l) => l,
            Err(e) => panic!("{e}\n{}", self.diagnostics()),
        }
    }

    fn transport(&self) -> Transport {
        if self.tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }
}

impl Drop for Lab {
    /// Removes xfed's folder; with `XFED_KEEP_PEERS`, keeps it and prints
    /// every log (the peers keep theirs on a panic too).
    fn drop(&mut self) {
        if std::env::var_os("XFED_KEEP_PEERS").is_some() {
            let text = self.diagnostics();
            eprintln!("{text}\n(kept {})", self.dir.display());
        } else if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Every peer the tests need, or why not.
fn peers_installed(tls: bool, presence: bool) -> Result<(), Skip> {
    kamailio::binary()?;
    if tls {
        kamailio::tls_module()?;
    }
    if presence {
        kamailio::presence_modules()?;
    }
    sipp::binary()?;
    xmpp_client::check_installed()?;
    Ok(())
}

/// How xfed and Kamailio talk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Udp,
    Tcp,
    /// Mutually authenticated TLS, trusted by certificate name.
    Tls,
}

/// The name in Kamailio's certificate, which xfed trusts in the TLS lab.
const KAMAILIO_NAME: &str = "kamailio.test";

/// The TLS lab's certificates in `dir`: a CA (`ca.pem`, trusted by xfed,
/// Kamailio and Prosody) that issued xfed's (`cert.pem`, `key.pem`, for
/// xfed.test) and Kamailio's (`kamailio.pem`, `kamailio.key`, for
/// kamailio.test); Prosody's is self-signed (s2s stays dialback over TLS,
/// as in the other tests).
fn write_tls_certs(dir: &std::path::Path) {
    let ca = TestCa::new("xfed lab CA");
    let xfed = ca.issue(&LeafSpec::xmpp_server("xfed.test"));
    let kamailio = ca.issue(&LeafSpec::new().dns(KAMAILIO_NAME));
    let prosody = TestCert::self_signed(&LeafSpec::xmpp_server("prosody.test"));
    let files = [
        ("ca.pem", ca.cert_pem()),
        ("cert.pem", xfed.chain_pem()),
        ("key.pem", xfed.key_pem()),
        ("kamailio.pem", kamailio.chain_pem()),
        ("kamailio.key", kamailio.key_pem()),
        ("prosody.crt", prosody.chain_pem()),
        ("prosody.key", prosody.key_pem()),
    ];
    for (name, pem) in files {
        std::fs::write(dir.join(name), pem).expect("write lab certificate");
    }
}

/// Starts Prosody on 127.0.0.`prosody_ip` with user bob, Kamailio for
/// xfed.test on 127.0.0.`kamailio_ip` (with `presence`, also the domain's
/// presence server), xfed (`bin`) in proxy mode behind it over `link`,
/// and logs bob in. `None`: a peer is missing and the test skips.
fn lab(
    bin: &str,
    test: &str,
    prosody_ip: u8,
    kamailio_ip: u8,
    link: Link,
    presence: bool,
) -> Option<Lab> {
    need!(peers_installed(link == Link::Tls, presence));
    let name = format!("kamailio-{test}-{bin}");
    let dir = temp_dir(&name);
    if link == Link::Tls {
        write_tls_certs(&dir);
    } else {
        write_dialback_certs(&dir, "xfed.test", "prosody.test");
    }

    let s2s_port = free_port();
    let options = prosody_for_xfed(&dir, prosody_ip, s2s_port);

    let sip_port = free_port();
    let tls_port = free_port();
    let kamailio_ip = Ipv4Addr::new(127, 0, 0, kamailio_ip);
    let xfed_uri = match link {
        Link::Udp => format!("sip:127.0.0.1:{sip_port};transport=udp"),
        Link::Tcp => format!("sip:127.0.0.1:{sip_port};transport=tcp"),
        Link::Tls => format!("sip:127.0.0.1:{tls_port};transport=tls"),
    };
    let mut kamailio_options = KamailioOptions::new("xfed.test", kamailio_ip, &xfed_uri);
    kamailio_options.presence = presence;
    if link == Link::Tls {
        let mut tls = KamailioTls::new(
            kamailio_ip,
            dir.join("kamailio.pem"),
            dir.join("kamailio.key"),
            dir.join("ca.pem"),
        );
        tls.client_server_name = Some("xfed.test".into());
        kamailio_options.tls = Some(tls);
    }
    let (next_hop, trusted) = match link {
        Link::Udp | Link::Tcp => (
            kamailio_options.uri(link == Link::Tcp),
            kamailio_options.ip.to_string(),
        ),
        Link::Tls => (
            kamailio_options.tls_uri(KAMAILIO_NAME),
            KAMAILIO_NAME.to_owned(),
        ),
    };
    let sip = XfedSip {
        domain: "xfed.test".into(),
        s2s_port,
        sip_port,
        accounts: Vec::new(),
        trusted: vec![trusted],
        // Kamailio reaches xfed over the link's own transport.
        trust_udp: link == Link::Udp,
        partners: vec![("prosody.test".into(), options.s2s_addr())],
        partner_sasl: "not-supported",
    };
    // The registrar-mode configuration of sip_interop.rs, turned into
    // proxy mode with Kamailio as the next hop (and, for TLS, a SIP TLS
    // listener).
    let path = sipp::write_xfed_config(&dir, &sip);
    let toml = std::fs::read_to_string(&path).expect("read xfed.toml");
    let mut proxied = toml.replacen(
        "[sip]\nmode = \"registrar\"\n",
        &format!("[sip]\nmode = \"proxy\"\nnext_hop = \"{next_hop}\"\n"),
        1,
    );
    assert_ne!(proxied, toml, "no [sip] mode line in:\n{toml}");
    if link == Link::Tls {
        let listeners = format!("\"tcp:127.0.0.1:{sip_port}\"]");
        let with_tls = format!("\"tcp:127.0.0.1:{sip_port}\", \"tls:127.0.0.1:{tls_port}\"]");
        assert!(proxied.contains(&listeners), "{proxied}");
        proxied = proxied.replacen(&listeners, &with_tls, 1);
    }
    std::fs::write(&path, proxied).expect("write xfed.toml");

    let prosody = need!(Prosody::start(options));
    let kamailio = need!(Kamailio::start(kamailio_options));
    let xfed = Instance::start(bin, &["run", "--config", "xfed.toml"], &dir);
    let bob = need!(XmppClient::connect(
        "bob@prosody.test",
        "bob-secret",
        prosody.c2s_addr(),
        Duration::from_secs(120),
    ));
    Some(Lab {
        name,
        bin: bin.to_owned(),
        bob,
        xfed: Some(xfed),
        earlier_log: String::new(),
        kamailio,
        prosody,
        sip,
        tcp: link != Link::Udp,
        dir,
    })
}

fn xmpp_to_sip(bin: &str, prosody_ip: u8, kamailio_ip: u8, tcp: bool) {
    let link = if tcp { Link::Tcp } else { Link::Udp };
    let Some(mut lab) = lab(bin, "x2s", prosody_ip, kamailio_ip, link, false) else {
        return;
    };
    let kam = lab.kamailio.addr();

    // Before alice registers: Kamailio knows no contact and says 404.
    let early = lab.bob.send_chat("alice@xfed.test", "anyone there?");
    let m = lab
        .bob
        .expect_reply("error for the early message", &early, WAIT);
    let cond = m.error.as_ref().and_then(|e| e.condition.as_deref());
    assert!(
        m.is_error() && cond == Some("service-unavailable"),
        "to an unregistered user: {m:?}\n{}",
        lab.diagnostics()
    );
    assert_eq!(m.from.as_deref(), Some("alice@xfed.test"), "{m:?}");
    lab.kamailio_log("MESSAGE for sip:alice@xfed.test from 127.0.0.1");
    lab.kamailio_log("no contact, 404");
    lab.xfed_log("MESSAGE to alice@xfed.test answered 404");

    // alice registers with Kamailio (no digest there) from 127.0.0.1.
    let mut alice = SipUa::new("alice", "xfed.test", "", kam, tcp);
    let status = alice.register(300);
    assert_eq!(status, 200, "REGISTER\n{}", lab.diagnostics());
    lab.kamailio_log("REGISTER sip:alice@xfed.test");

    let t0 = Instant::now();
    let body = "hello through kamailio \u{e9}t\u{e9} <&>";
    let hello = lab.bob.send_chat("alice@xfed.test", body);
    let Some(msg) = alice.receive(200, WAIT) else {
        panic!("alice got no MESSAGE\n{}", lab.diagnostics());
    };
    println!(
        "{bin}: XMPP -> xfed -> Kamailio -> SIP MESSAGE within {:?}",
        t0.elapsed()
    );
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&msg.to_bytes()),
        lab.diagnostics()
    );
    assert_eq!(msg.method.to_string(), "MESSAGE", "{report}");
    // Kamailio's lookup replaced xfed's sip:alice@xfed.test by the contact.
    assert_eq!(msg.uri.to_string(), alice.contact(), "{report}");
    let from = msg.headers.get("From").unwrap_or_default();
    assert_eq!(bare_uri(from), "sip:bob@prosody.test", "{report}");
    let to = msg.headers.get("To").unwrap_or_default();
    assert_eq!(bare_uri(to), "sip:alice@xfed.test", "{report}");
    assert!(
        msg.headers.content_type_is("text/plain"),
        "Content-Type {:?}\n{report}",
        msg.headers.content_type()
    );
    assert_eq!(String::from_utf8_lossy(&msg.body), body, "{report}");
    // Through Kamailio: its Via on top, xfed's below.
    let vias: Vec<&str> = msg.headers.values("Via").collect();
    let transport = if tcp { "TCP" } else { "UDP" };
    assert_eq!(vias.len(), 2, "{report}");
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/{transport} {kam}")),
        "{report}"
    );
    assert!(
        vias[1].starts_with(&format!("SIP/2.0/{transport} 127.0.0.1:")),
        "{report}"
    );
    lab.kamailio_log(&format!("to {}", alice.contact()));
    lab.kamailio_log("reply 200");
    lab.xfed_log("MESSAGE to alice@xfed.test answered 200");

    // Nothing came back to bob for hello: an error after the early one
    // would be before this probe's error (one s2s stream, in order).
    let probe = lab.bob.send_chat("nobody@xfed.test", "is this thing on?");
    let m = lab
        .bob
        .expect_reply("error from nobody@xfed.test", &probe, WAIT);
    let e = m.error.clone().unwrap_or_else(|| panic!("{m:?}"));
    assert_eq!(e.condition.as_deref(), Some("service-unavailable"), "{m:?}");
    let back = lab.bob.received_with_id(&hello);
    assert!(
        back.is_empty(),
        "bob got something back for hello: {back:?}"
    );
}

fn sip_to_xmpp(bin: &str, prosody_ip: u8, kamailio_ip: u8, tcp: bool) {
    let link = if tcp { Link::Tcp } else { Link::Udp };
    let Some(mut lab) = lab(bin, "s2x", prosody_ip, kamailio_ip, link, false) else {
        return;
    };
    let kam = lab.kamailio.addr();
    let mut uac = Sipp::start(
        SippOptions::new("uac_bench_message.xml", kam, lab.transport())
            .key("ruri", "bob@prosody.test")
            .key("from_user", "alice")
            .key("domain", "xfed.test")
            .key("run", "kamailio")
            .timeout(Duration::from_secs(30)),
    )
    .expect("sipp (checked before)");
    let t0 = Instant::now();
    let run = uac.wait(Duration::from_secs(40));
    assert!(run.ok(), "{}\n{}", run.report(), lab.diagnostics());
    println!(
        "{bin}: SIP MESSAGE -> Kamailio -> xfed -> 202 in {:?}",
        t0.elapsed()
    );
    let statuses: Vec<u16> = run.received().filter_map(|m| m.status()).collect();
    assert_eq!(statuses, [202], "responses\n{}", run.report());
    let sent: Vec<&sipp::Traced> = run.sent().filter(|m| m.is_request("MESSAGE")).collect();
    let body = sent
        .first()
        .unwrap_or_else(|| panic!("sipp sent no MESSAGE\n{}", run.report()))
        .body()
        .to_string();
    assert!(body.starts_with("bench kamailio 1 "), "{}", run.report());
    lab.kamailio_log("MESSAGE for sip:bob@prosody.test from 127.0.0.1");
    lab.kamailio_log("reply 202");

    let m = lab.bob.expect_message("alice's message", WAIT, |m| {
        m.from_bare() == "alice@xfed.test"
    });
    assert!(!m.is_error(), "{m:?}");
    assert_eq!(m.body.as_deref(), Some(body.as_str()), "{m:?}");
    assert_eq!(
        m.to.as_deref().map(|t| t.split('/').next().unwrap_or(t)),
        Some("bob@prosody.test")
    );

    // A domain xfed does not federate with: xfed's 404 comes back through
    // Kamailio.
    let mut alice = SipUa::new("alice", "xfed.test", "", kam, lab.tcp);
    let r = alice.message("carol@elsewhere.test", "anyone?");
    assert_eq!(r.status, 404, "{}", lab.diagnostics());
    lab.xfed_log("bounced with remote-server-not-found; SIP 404");

    // Straight to xfed from 127.0.0.1: not Kamailio, not trusted.
    let mut direct = SipUa::new("alice", "xfed.test", "", lab.sip.sip_addr(), lab.tcp);
    let r = direct.message("bob@prosody.test", "past the proxy");
    assert_eq!(r.status, 403, "{}", lab.diagnostics());
    lab.xfed_log("not a trusted peer in proxy mode");

    // Only sipp's message reached bob, once (no retransmission delivered
    // twice).
    std::thread::sleep(Duration::from_millis(300));
    let from_alice: Vec<_> = lab
        .bob
        .received()
        .iter()
        .filter(|m| m.from_bare() == "alice@xfed.test")
        .cloned()
        .collect();
    assert_eq!(from_alice.len(), 1, "{from_alice:?}");
}

fn mutual_tls(bin: &str, prosody_ip: u8, kamailio_ip: u8) {
    let Some(mut lab) = lab(bin, "tls", prosody_ip, kamailio_ip, Link::Tls, false) else {
        return;
    };
    let kam = lab.kamailio.addr();
    let kam_tls = lab.kamailio.tls_addr().expect("Kamailio's TLS listener");

    // alice registers with Kamailio (plain TCP: the user side).
    let mut alice = SipUa::new("alice", "xfed.test", "", kam, true);
    assert_eq!(alice.register(300), 200, "REGISTER\n{}", lab.diagnostics());

    // bob -> xfed -> TLS -> Kamailio -> alice.
    let body = "over mutual TLS";
    let hello = lab.bob.send_chat("alice@xfed.test", body);
    let Some(msg) = alice.receive(200, WAIT) else {
        panic!("alice got no MESSAGE\n{}", lab.diagnostics());
    };
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&msg.to_bytes()),
        lab.diagnostics()
    );
    assert_eq!(String::from_utf8_lossy(&msg.body), body, "{report}");
    assert_eq!(
        bare_uri(msg.headers.get("From").unwrap_or_default()),
        "sip:bob@prosody.test"
    );
    let vias: Vec<&str> = msg.headers.values("Via").collect();
    assert_eq!(vias.len(), 2, "{report}");
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/TCP {kam}")),
        "{report}"
    );
    assert!(vias[1].starts_with("SIP/2.0/TLS 127.0.0.1:"), "{report}");
    lab.xfed_log(&format!(
        "SIP TLS to {KAMAILIO_NAME} at {kam_tls}: certificate verified"
    ));
    lab.xfed_log("MESSAGE to alice@xfed.test answered 200");

    // alice -> Kamailio -> TLS (Kamailio's client certificate) -> xfed -> bob.
    let r = alice.message("bob@prosody.test", "and back over TLS");
    assert_eq!(r.status, 202, "{}", lab.diagnostics());
    let m = lab.bob.expect_message("alice's message", WAIT, |m| {
        m.from_bare() == "alice@xfed.test"
    });
    assert_eq!(m.body.as_deref(), Some("and back over TLS"), "{m:?}");
    lab.xfed_log(&format!("certificate proves trusted peer {KAMAILIO_NAME}"));

    // Straight to xfed over TCP from 127.0.0.1: no certificate, no
    // trusted address.
    let mut direct = SipUa::new("alice", "xfed.test", "", lab.sip.sip_addr(), true);
    let r = direct.message("bob@prosody.test", "past the proxy");
    assert_eq!(r.status, 403, "{}", lab.diagnostics());
    lab.xfed_log("not a trusted peer in proxy mode");

    // Nothing came back to bob for hello.
    let back = lab.bob.received_with_id(&hello);
    assert!(
        back.is_empty(),
        "bob got something back for hello: {back:?}"
    );
}

const ALICE: &str = "alice@xfed.test";
const BOB: &str = "bob@prosody.test";

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

/// The entity-tag of alice's successful PUBLISH to Kamailio.
fn etag_of(lab: &mut Lab, r: &xfed_core::sip::Response, what: &str) -> String {
    match (r.status, r.headers.get("SIP-ETag")) {
        (200, Some(t)) if !t.is_empty() => t.to_owned(),
        _ => panic!("{what}: {r:?}\n{}", lab.diagnostics()),
    }
}

/// Presence with Kamailio as the SIP domain's presence server: alice
/// PUBLISHes to Kamailio; bob subscribes to her through xfed, which
/// SUBSCRIBEs to Kamailio as bob; each change of alice reaches bob, also
/// after xfed restarts (the same dialog goes on); his probe is answered
/// from the last NOTIFY; his unsubscribe ends xfed's dialog with Kamailio
/// (Expires 0).
fn prosody_user_watches_sip_user(bin: &str, prosody_ip: u8, kamailio_ip: u8, tcp: bool) {
    let link = if tcp { Link::Tcp } else { Link::Udp };
    let Some(mut lab) = lab(bin, "watch-sip", prosody_ip, kamailio_ip, link, true) else {
        return;
    };
    lab.bob.fetch_roster();
    let kam = lab.kamailio.addr();
    let mut alice = SipUa::new("alice", "xfed.test", "", kam, tcp);
    let r = alice.publish(OPEN_NOTE, None, 600);
    let etag = etag_of(&mut lab, &r, "alice's first PUBLISH");
    lab.kamailio_log("presence PUBLISH for sip:alice@xfed.test");

    let t0 = Instant::now();
    lab.bob.presence_to(ALICE, "subscribe");
    let (i, p) = bob_expects(&mut lab, "subscribed", 0, |p| {
        p.kind() == "subscribed" || p.kind() == "unsubscribed"
    });
    assert_eq!(p.kind(), "subscribed", "{p:?}\n{}", lab.diagnostics());
    let (i, p) = bob_expects(&mut lab, "alice available", i + 1, |p| {
        p.kind() != "subscribed"
    });
    assert!(
        p.kind() == "available" && p.status.as_deref() == Some("In the lab"),
        "alice as bob first sees her: {p:?}\n{}",
        lab.diagnostics()
    );
    println!(
        "{bin}: subscribe -> xfed -> Kamailio -> NOTIFY -> bob sees alice in {:?}",
        t0.elapsed()
    );
    // xfed subscribed as bob, and Kamailio's NOTIFY came back to it.
    lab.kamailio_log("presence SUBSCRIBE for sip:alice@xfed.test from sip:bob@prosody.test");
    lab.xfed_log("NOTIFY about alice@xfed.test for bob@prosody.test: active");

    let t1 = Instant::now();
    let r = alice.publish(AWAY_NOTE, Some(&etag), 600);
    let etag = etag_of(&mut lab, &r, "alice's away PUBLISH");
    let (i, p) = bob_expects(&mut lab, "the away change", i + 1, |_| true);
    assert!(
        p.kind() == "available"
            && p.show.as_deref() == Some("away")
            && p.status.as_deref() == Some("Back at five"),
        "alice away: {p:?}\n{}",
        lab.diagnostics()
    );
    println!(
        "{bin}: PUBLISH -> Kamailio -> xfed -> bob in {:?}",
        t1.elapsed()
    );

    // xfed restarts on its SQLite store: it goes on in its dialog with
    // Kamailio, refreshed at once, and the refresh's NOTIFY brings alice's
    // state again.
    let t2 = Instant::now();
    lab.restart_xfed();
    lab.xfed_log("1 subscription dialog(s) restored");
    let (i, p) = bob_expects(&mut lab, "alice's state after the restart", i + 1, |_| true);
    assert!(
        p.kind() == "available" && p.show.as_deref() == Some("away"),
        "alice after the restart: {p:?}\n{}",
        lab.diagnostics()
    );
    println!(
        "{bin}: restart -> refresh -> bob has alice again in {:?}",
        t2.elapsed()
    );
    // In the same dialog: the refresh went to Kamailio's Contact, and
    // Kamailio never saw a second initial SUBSCRIBE.
    lab.kamailio_log(&format!("presence SUBSCRIBE for sip:{kam}"));
    let initial = "presence SUBSCRIBE for sip:alice@xfed.test from sip:bob@prosody.test";
    let log = lab.kamailio.log_text();
    assert_eq!(log.matches(initial).count(), 1, "{}", lab.diagnostics());

    let r = alice.publish(CLOSED, Some(&etag), 600);
    etag_of(&mut lab, &r, "alice's closed PUBLISH");
    let (i, p) = bob_expects(&mut lab, "the closed change", i + 1, |_| true);
    assert_eq!(p.kind(), "unavailable", "{p:?}\n{}", lab.diagnostics());

    // bob's probe: answered by xfed from Kamailio's last NOTIFY.
    lab.bob.presence_to(ALICE, "probe");
    let (i, p) = bob_expects(&mut lab, "an answer to the probe", i + 1, |_| true);
    assert_eq!(p.kind(), "unavailable", "{p:?}\n{}", lab.diagnostics());

    // bob unsubscribes: xfed drops the authorization and ends its dialog
    // with Kamailio (Prosody keeps xfed's `unsubscribed` from bob: his
    // roster no longer has alice, RFC 6121 section 3.2.3).
    lab.bob.presence_to(ALICE, "unsubscribe");
    lab.xfed_log("bob@prosody.test no longer sees alice@xfed.test");
    lab.kamailio_log("from sip:bob@prosody.test at 127.0.0.1");
    lab.kamailio_log("Expires 0");
    assert_eq!(lab.bob.presences().len(), i + 1, "{}", lab.diagnostics());
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
            "available",
            "unavailable",
            "unavailable"
        ],
        "{}",
        lab.diagnostics()
    );
}

/// The next new NOTIFY to alice that matches `pred` (xfed holds the
/// NOTIFYs of one dialog 5 s apart at most once).
fn next_notify(
    lab: &mut Lab,
    alice: &mut SipUa,
    got: &mut Notifies,
    what: &str,
    pred: impl Fn(&Request) -> bool,
) -> Request {
    let wait = WAIT + Duration::from_secs(10);
    got.expect(alice, what, wait, pred, || lab.diagnostics())
}

/// A SIP user's SUBSCRIBE to a Prosody user through Kamailio: Kamailio
/// record-routes it to xfed; xfed's NOTIFYs come back through Kamailio
/// (its Via on top): pending, active once bob says `subscribed`, then
/// bob's status and his departure as PIDF.
fn sip_user_watches_prosody_user(bin: &str, prosody_ip: u8, kamailio_ip: u8, tcp: bool) {
    let link = if tcp { Link::Tcp } else { Link::Udp };
    let Some(mut lab) = lab(bin, "watch-xmpp", prosody_ip, kamailio_ip, link, true) else {
        return;
    };
    lab.bob.auto_subscriptions(false);
    let kam = lab.kamailio.addr();
    let mut alice = SipUa::new("alice", "xfed.test", "", kam, tcp);
    let mut got = Notifies::default();

    let t0 = Instant::now();
    let r = alice.subscribe(BOB, 600);
    assert_eq!(
        r.status,
        200,
        "alice's SUBSCRIBE: {r:?}\n{}",
        lab.diagnostics()
    );
    lab.kamailio_log("SUBSCRIBE for sip:bob@prosody.test from 127.0.0.1");
    let n = next_notify(&mut lab, &mut alice, &mut got, "NOTIFY pending", |_| true);
    assert!(state(&n).starts_with("pending"), "{n:?}");
    let vias: Vec<&str> = n.headers.values("Via").collect();
    let transport = if tcp { "TCP" } else { "UDP" };
    assert_eq!(vias.len(), 2, "through Kamailio: {n:?}");
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/{transport} {kam}")),
        "{vias:?}"
    );
    assert_eq!(n.uri.to_string(), alice.contact(), "to her Contact");

    let (_, p) = lab
        .bob
        .expect_presence("subscribe from alice", 0, WAIT, |p| {
            p.from_bare() == ALICE && p.kind() == "subscribe"
        });
    assert_eq!(p.from.as_deref(), Some(ALICE), "{p:?}");
    lab.bob.presence_to(ALICE, "subscribed");
    next_notify(&mut lab, &mut alice, &mut got, "NOTIFY active", |n| {
        state(n).starts_with("active")
    });
    println!(
        "{bin}: SUBSCRIBE via Kamailio -> NOTIFY active in {:?}",
        t0.elapsed()
    );

    lab.bob.send_presence(&OutgoingPresence {
        show: Some("dnd".into()),
        status: Some("Behind the proxy".into()),
        ..OutgoingPresence::default()
    });
    let n = next_notify(
        &mut lab,
        &mut alice,
        &mut got,
        "NOTIFY with bob's note",
        |n| {
            pidf_of(n).is_some_and(|p| {
                p.resources()
                    .iter()
                    .any(|r| r.notes().iter().any(|x| x.text() == "Behind the proxy"))
            })
        },
    );
    let p = pidf_of(&n).expect("a body");
    assert!(open(&p), "{n:?}");
    assert!(
        p.resources().iter().any(|r| matches!(
            r.availability(),
            Availability::Available {
                show: Some(Show::Dnd),
                ..
            }
        )),
        "{p:?}"
    );

    lab.bob.send_presence(&OutgoingPresence {
        presence_type: Some("unavailable".into()),
        ..OutgoingPresence::default()
    });
    next_notify(&mut lab, &mut alice, &mut got, "NOTIFY closed", |n| {
        pidf_of(n).is_none_or(|p| !open(&p))
    });
    lab.kamailio_log("in-dialog NOTIFY");
    for (k, n) in got.got.iter().enumerate() {
        let want = if k == 0 { "pending" } else { "active" };
        assert!(state(n).starts_with(want), "NOTIFY {k}: {}", got.summary());
    }
}

#[test]
fn prosody_user_watches_sip_user_tokio_udp() {
    prosody_user_watches_sip_user("xfed", 101, 105, false);
}

#[test]
fn prosody_user_watches_sip_user_async_std_tcp() {
    prosody_user_watches_sip_user("xfed-async-std", 102, 106, true);
}

#[test]
fn sip_user_watches_prosody_user_tokio_tcp() {
    sip_user_watches_prosody_user("xfed", 103, 107, true);
}

#[test]
fn sip_user_watches_prosody_user_async_std_udp() {
    sip_user_watches_prosody_user("xfed-async-std", 104, 108, false);
}

#[test]
fn mutual_tls_tokio() {
    mutual_tls("xfed", 85, 95);
}

#[test]
fn mutual_tls_async_std() {
    mutual_tls("xfed-async-std", 86, 96);
}

#[test]
fn xmpp_to_sip_tokio_udp() {
    xmpp_to_sip("xfed", 81, 91, false);
}

#[test]
fn xmpp_to_sip_async_std_tcp() {
    xmpp_to_sip("xfed-async-std", 82, 92, true);
}

#[test]
fn sip_to_xmpp_tokio_tcp() {
    sip_to_xmpp("xfed", 83, 93, true);
}

#[test]
fn sip_to_xmpp_async_std_udp() {
    sip_to_xmpp("xfed-async-std", 84, 94, false);
}
