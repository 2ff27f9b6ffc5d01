//! ejabberd as the XMPP peer, end to end over loopback, on both runtimes:
//! Debian's ejabberd 23.01 serves ejabberd.test (a `federated` partner of
//! xfed.test), a slixmpp client is bob@ejabberd.test, and a scripted SIP
//! user agent (`SipUa`) is alice, registered with digest at xfed's
//! registrar. ejabberd finds xfed through its own DNS responder
//! (`tests/src/ejabberd.rs`); xfed reaches ejabberd through the partner's
//! `connect` address. Nothing touches `/etc/hosts`.
//!
//! - `im` (Server Dialback over TLS, self-signed certificates): alice's
//!   MESSAGE to bob gets 202 and bob receives its body from
//!   alice@xfed.test; bob's answer reaches alice as a SIP MESSAGE (From
//!   bob, text/plain, the body exactly); a second exchange runs over the
//!   streams already up. Both of xfed's streams were authenticated by
//!   dialback, which ejabberd verified by connecting back to xfed.test.
//!   The partner has `sasl = "optional"` (open federation's default):
//!   ejabberd offers SASL EXTERNAL even to a certificate it cannot
//!   verify, xfed tries it, gets `<failure/>` and goes on with dialback
//!   on the same stream.
//! - `ejabberd_user_watches_sip_user` (SASL EXTERNAL both ways, one test
//!   CA, dialback off on both sides): alice PUBLISHes open with a note;
//!   bob subscribes to alice@xfed.test, gets `subscribed` and alice
//!   available with the note; alice goes away with another note, then
//!   closed, and bob sees each change.
//! - `sip_user_watches_ejabberd_user` (SASL EXTERNAL): alice SUBSCRIBEs to
//!   bob (200, NOTIFY `pending`); bob gets `subscribe` from
//!   alice@xfed.test and answers `subscribed`; alice gets NOTIFY `active`;
//!   bob goes busy with a note, then logs out (ejabberd sends his
//!   unavailable), then logs in again, and alice's PIDF NOTIFYs show him
//!   open with the note, closed, and open again (NOTIFYs are at most one
//!   per 5 s).
//!
//! Under CI=true a missing ejabberd or slixmpp fails the test; elsewhere
//! it prints why it skips.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use xfed_core::sip::Response;
use xfed_core::translate::presence::{Availability, Show};
use xfed_tests::ejabberd::{ejabberd_for_xfed, write_certs, Ejabberd, S2sAuth};
use xfed_tests::need;
use xfed_tests::notify::{open, pidf_of, state, Notifies};
use xfed_tests::prosody::Skip;
use xfed_tests::sip_ua::SipUa;
use xfed_tests::sipp::{self, bare_uri, XfedSip};
use xfed_tests::xmpp_client::{self, OutgoingPresence, PresenceReceived, XmppClient};
use xfed_tests::{free_port, temp_dir, Instance};

const WAIT: Duration = Duration::from_secs(20);
/// A NOTIFY may wait for the rate limit (5 s) on top of the network.
const NOTIFY_WAIT: Duration = Duration::from_secs(30);
const ALICE: &str = "alice@xfed.test";
const BOB: &str = "bob@ejabberd.test";

const OPEN_NOTE: &str = "<?xml version='1.0' encoding='UTF-8'?>\
<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:alice@xfed.test'>\
<tuple id='phone'><status><basic>open</basic></status>\
<note xml:lang='en'>In the ejabberd lab</note></tuple></presence>";

const AWAY_NOTE: &str = "<?xml version='1.0' encoding='UTF-8'?>\
<presence xmlns='urn:ietf:params:xml:ns:pidf' \
xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' \
xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='pres:alice@xfed.test'>\
<tuple id='phone'><status><basic>open</basic></status>\
<note xml:lang='en'>Out for lunch</note></tuple>\
<dm:person id='p1'><rpid:activities><rpid:away/></rpid:activities></dm:person>\
</presence>";

const CLOSED: &str = "<?xml version='1.0' encoding='UTF-8'?>\
<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:alice@xfed.test'>\
<tuple id='phone'><status><basic>closed</basic></status></tuple></presence>";

/// xfed with the SIP side on, ejabberd and bob, all running.
struct Lab {
    name: String,
    /// Declared first: dropped (killed) first. `None` while bob is away.
    bob: Option<XmppClient>,
    xfed: Instance,
    ejabberd: Ejabberd,
    sip: XfedSip,
    auth: S2sAuth,
    _dir: PathBuf,
}

impl Lab {
    /// Everything xfed, ejabberd and bob logged, for a failure message.
    fn diagnostics(&mut self) -> String {
        let bob = self
            .bob
            .as_mut()
            .map(XmppClient::diagnostics)
            .unwrap_or_default();
        format!(
            "--- {} xfed:\n{}\n{}\n{bob}",
            self.name,
            self.xfed.log_text(),
            self.ejabberd.diagnostics(),
        )
    }

    fn bob(&mut self) -> &mut XmppClient {
        self.bob.as_mut().expect("bob is logged in")
    }

    /// Waits for an xfed log line containing `needle`.
    fn xfed_log(&mut self, needle: &str) -> String {
        self.xfed.wait_log(needle, WAIT)
    }

    /// bob logs in to ejabberd (and fetches his roster, as clients do:
    /// an interested resource gets `subscribed` and `unsubscribed`).
    fn bob_logs_in(&mut self) {
        let mut bob = XmppClient::connect(
            BOB,
            "bob-secret",
            self.ejabberd.c2s_addr(),
            Duration::from_secs(180),
        )
        .expect("slixmpp (checked before)");
        bob.fetch_roster();
        self.bob = Some(bob);
    }

    /// alice's user agent (UDP), registered with digest.
    fn alice(&mut self) -> SipUa {
        let mut ua = SipUa::new(
            "alice",
            "xfed.test",
            "alice-secret",
            self.sip.sip_addr(),
            false,
        );
        let status = ua.register(3600);
        assert_eq!(status, 200, "alice's REGISTER\n{}", self.diagnostics());
        self.xfed_log("registrar: alice@xfed.test has 1 binding(s)");
        ua
    }

    /// xfed's log says both of its streams with ejabberd.test were
    /// authenticated the way the lab set up.
    fn assert_streams_authenticated(&mut self) {
        let method = match self.auth {
            S2sAuth::Dialback => "Dialback",
            S2sAuth::SaslExternal => "Sasl",
        };
        self.xfed_log(&format!(
            "inbound stream authenticated: ejabberd.test -> xfed.test by {method}"
        ));
        self.xfed_log(&format!(
            "outbound stream ready: xfed.test -> ejabberd.test by {method}"
        ));
    }
}

/// Every peer the tests need but ejabberd (which `Ejabberd::start`
/// checks), or why not.
fn peers_installed() -> Result<(), Skip> {
    xmpp_client::check_installed()?;
    Ok(())
}

/// Starts ejabberd on 127.0.0.`ip` with user bob, xfed (`bin`) with
/// account alice and ejabberd.test as a federated partner authenticated
/// by `auth`, and logs bob in. `None`: a peer is missing and the test
/// skips.
fn lab(bin: &str, test: &str, ip: u8, auth: S2sAuth) -> Option<Lab> {
    need!(peers_installed());
    let name = format!("ejabberd-{test}-{bin}");
    let dir = temp_dir(&name);
    write_certs(&dir, "xfed.test", "ejabberd.test", auth);

    let s2s_port = free_port();
    let options = ejabberd_for_xfed(&dir, ip, s2s_port, auth);
    let sip = XfedSip {
        domain: "xfed.test".into(),
        s2s_port,
        sip_port: free_port(),
        accounts: vec![("alice".into(), "alice-secret".into())],
        trusted: Vec::new(),
        trust_udp: false,
        partners: vec![("ejabberd.test".into(), options.s2s_addr())],
        // With dialback, `optional`, as open federation has it: xfed tries
        // the EXTERNAL that ejabberd offers, then dialback on the stream.
        partner_sasl: match auth {
            S2sAuth::Dialback => "optional",
            S2sAuth::SaslExternal => "required",
        },
    };
    sipp::write_xfed_config(&dir, &sip);
    let ejabberd = need!(Ejabberd::start(options));
    println!(
        "{name}: ejabberd up in {:?} (users registered)",
        ejabberd.startup
    );
    let xfed = Instance::start(bin, &["run", "--config", "xfed.toml"], &dir);
    let mut lab = Lab {
        name,
        bob: None,
        xfed,
        ejabberd,
        sip,
        auth,
        _dir: dir,
    };
    lab.bob_logs_in();
    Some(lab)
}

/// alice sends `body` to bob: 202, and bob receives it from her.
fn alice_to_bob(lab: &mut Lab, alice: &mut SipUa, body: &str) {
    let t0 = Instant::now();
    let r = alice.message(BOB, body);
    if r.status != 202 {
        panic!("alice's MESSAGE to bob: {r:?}\n{}", lab.diagnostics());
    }
    let got = lab
        .bob()
        .wait_message(WAIT, |m| m.body.as_deref() == Some(body));
    let Some(m) = got else {
        panic!("bob did not get {body:?}\n{}", lab.diagnostics());
    };
    assert!(!m.is_error(), "{m:?}");
    assert_eq!(m.from_bare(), ALICE, "{m:?}");
    assert_eq!(
        m.to.as_deref().map(|t| t.split('/').next()),
        Some(Some(BOB))
    );
    assert_eq!(m.message_type.as_deref(), Some("chat"), "{m:?}");
    println!("{}: SIP -> ejabberd in {:?}", lab.name, t0.elapsed());
}

/// bob sends `body` to alice: it reaches her user agent as a MESSAGE.
fn bob_to_alice(lab: &mut Lab, alice: &mut SipUa, body: &str) {
    let t0 = Instant::now();
    lab.bob().send_chat(ALICE, body);
    let Some(msg) = alice.receive(200, WAIT) else {
        panic!("alice got no MESSAGE\n{}", lab.diagnostics());
    };
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&msg.to_bytes()),
        lab.diagnostics()
    );
    assert_eq!(msg.method.to_string(), "MESSAGE", "{report}");
    assert_eq!(msg.uri.to_string(), alice.contact(), "{report}");
    let from = msg.headers.get("From").unwrap_or_default();
    assert_eq!(bare_uri(from), "sip:bob@ejabberd.test", "{report}");
    let to = msg.headers.get("To").unwrap_or_default();
    assert_eq!(bare_uri(to), "sip:alice@xfed.test", "{report}");
    assert!(
        msg.headers.content_type_is("text/plain"),
        "Content-Type {:?}\n{report}",
        msg.headers.content_type()
    );
    assert_eq!(String::from_utf8_lossy(&msg.body), body, "{report}");
    println!("{}: ejabberd -> SIP in {:?}", lab.name, t0.elapsed());
}

fn im(bin: &str, ip: u8) {
    let Some(mut lab) = lab(bin, "im", ip, S2sAuth::Dialback) else {
        return;
    };
    let mut alice = lab.alice();
    alice_to_bob(
        &mut lab,
        &mut alice,
        "Hello Bob, from SIP \u{e9}t\u{e9} <&>",
    );
    bob_to_alice(&mut lab, &mut alice, "Hi Alice, from ejabberd \u{2603} <&>");
    lab.assert_streams_authenticated();
    // xfed tried the EXTERNAL ejabberd offered first, and was refused.
    lab.xfed_log("SASL EXTERNAL failed: not-authorized");
    let refused = lab.ejabberd.wait_log(
        "Failed inbound s2s EXTERNAL authentication xfed.test -> ejabberd.test",
        WAIT,
    );
    assert!(refused.is_ok(), "{}", lab.diagnostics());
    // ejabberd verified xfed's dialback keys by connecting back to
    // xfed.test, found through its DNS responder.
    let srv = lab
        .ejabberd
        .dns_queries()
        .into_iter()
        .any(|q| q.name == "_xmpp-server._tcp.xfed.test" && q.answers == 1);
    assert!(srv, "{}", lab.diagnostics());
    // Again, over the streams already up.
    alice_to_bob(&mut lab, &mut alice, "second from SIP");
    bob_to_alice(&mut lab, &mut alice, "second from ejabberd");
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
        .bob()
        .wait_presence(skip, WAIT, |p| p.from_bare() == ALICE && pred(p))
    {
        Some(found) => found,
        None => panic!(
            "bob got no {what} from alice within {WAIT:?}\n{}",
            lab.diagnostics()
        ),
    }
}

fn ejabberd_user_watches_sip_user(bin: &str, ip: u8) {
    let Some(mut lab) = lab(bin, "watch-sip", ip, S2sAuth::SaslExternal) else {
        return;
    };
    lab.bob().auto_subscriptions(false);
    let mut alice = lab.alice();
    let r = alice.publish(OPEN_NOTE, None, 3600);
    let etag = etag_of(&mut lab, &r, "alice's first PUBLISH");

    let t0 = Instant::now();
    lab.bob().presence_to(ALICE, "subscribe");
    let (i, p) = bob_expects(&mut lab, "subscribed", 0, |p| {
        p.kind() == "subscribed" || p.kind() == "unsubscribed"
    });
    assert_eq!(p.kind(), "subscribed", "{p:?}\n{}", lab.diagnostics());
    let (i, p) = bob_expects(&mut lab, "availability", i + 1, |p| {
        p.kind() != "subscribed"
    });
    assert!(
        p.kind() == "available"
            && p.status.as_deref() == Some("In the ejabberd lab")
            && p.show.is_none(),
        "alice as bob first sees her: {p:?}\n{}",
        lab.diagnostics()
    );
    println!(
        "{}: subscribe -> bob sees alice available in {:?}",
        lab.name,
        t0.elapsed()
    );

    let t1 = Instant::now();
    let r = alice.publish(AWAY_NOTE, Some(&etag), 3600);
    let etag = etag_of(&mut lab, &r, "alice's away PUBLISH");
    let (i, p) = bob_expects(&mut lab, "the away change", i + 1, |_| true);
    assert!(
        p.kind() == "available"
            && p.show.as_deref() == Some("away")
            && p.status.as_deref() == Some("Out for lunch"),
        "alice away: {p:?}\n{}",
        lab.diagnostics()
    );
    println!("{}: PUBLISH change -> bob in {:?}", lab.name, t1.elapsed());

    let r = alice.publish(CLOSED, Some(&etag), 3600);
    etag_of(&mut lab, &r, "alice's closed PUBLISH");
    let (_, p) = bob_expects(&mut lab, "the closed change", i + 1, |_| true);
    assert_eq!(p.kind(), "unavailable", "{p:?}\n{}", lab.diagnostics());
    lab.assert_streams_authenticated();
    // Nothing bob was not meant to see: subscribed and three changes.
    let from_alice: Vec<String> = lab
        .bob()
        .presences()
        .iter()
        .filter(|p| p.from_bare() == ALICE)
        .map(|p| p.kind().to_owned())
        .collect();
    assert_eq!(
        from_alice,
        ["subscribed", "available", "available", "unavailable"],
        "{}",
        lab.diagnostics()
    );
}

fn sip_user_watches_ejabberd_user(bin: &str, ip: u8) {
    let Some(mut lab) = lab(bin, "watch-xmpp", ip, S2sAuth::SaslExternal) else {
        return;
    };
    lab.bob().auto_subscriptions(false);
    let mut alice = lab.alice();
    let mut notifies = Notifies::default();

    let t0 = Instant::now();
    let r = alice.subscribe(BOB, 600);
    if r.status != 200 {
        panic!("alice's SUBSCRIBE: {r:?}\n{}", lab.diagnostics());
    }
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
        .bob()
        .expect_presence("subscribe from alice", 0, WAIT, |p| {
            p.from_bare() == ALICE && p.kind() == "subscribe"
        });
    assert_eq!(p.from.as_deref(), Some(ALICE), "from the bare JID: {p:?}");
    lab.bob().presence_to(ALICE, "subscribed");
    notifies.expect(
        &mut alice,
        "NOTIFY active",
        NOTIFY_WAIT,
        |n| state(n).starts_with("active"),
        || lab.diagnostics(),
    );
    println!(
        "{}: SUBSCRIBE -> NOTIFY active in {:?}",
        lab.name,
        t0.elapsed()
    );

    // bob comes: busy, with a note.
    let t1 = Instant::now();
    lab.bob().send_presence(&OutgoingPresence {
        show: Some("dnd".into()),
        status: Some("Testing ejabberd".into()),
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
                        .any(|note| note.text() == "Testing ejabberd")
                })
            })
        },
        || lab.diagnostics(),
    );
    println!("{}: bob's status -> NOTIFY in {:?}", lab.name, t1.elapsed());
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

    // bob goes: his client logs out, ejabberd tells his contacts.
    let t2 = Instant::now();
    if let Some(bob) = lab.bob.take() {
        bob.quit();
    }
    let n = notifies.expect(
        &mut alice,
        "NOTIFY closed",
        NOTIFY_WAIT,
        |n| pidf_of(n).is_none_or(|p| !open(&p)),
        || lab.diagnostics(),
    );
    println!(
        "{}: bob logged out -> NOTIFY in {:?}",
        lab.name,
        t2.elapsed()
    );
    let p = pidf_of(&n).unwrap_or_default();
    assert!(
        p.resources()
            .iter()
            .all(|r| r.availability() == Availability::Unavailable),
        "{}",
        notifies.summary()
    );

    // bob comes back: ejabberd sends his initial presence to alice.
    let t3 = Instant::now();
    lab.bob_logs_in();
    notifies.expect(
        &mut alice,
        "NOTIFY open again",
        NOTIFY_WAIT,
        |n| pidf_of(n).is_some_and(|p| open(&p)),
        || lab.diagnostics(),
    );
    println!(
        "{}: bob logged in again -> NOTIFY in {:?}",
        lab.name,
        t3.elapsed()
    );
    lab.assert_streams_authenticated();
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

#[test]
fn im_tokio() {
    im("xfed", 81);
}

#[test]
fn im_async_std() {
    im("xfed-async-std", 82);
}

#[test]
fn ejabberd_user_watches_sip_user_tokio() {
    ejabberd_user_watches_sip_user("xfed", 83);
}

#[test]
fn ejabberd_user_watches_sip_user_async_std() {
    ejabberd_user_watches_sip_user("xfed-async-std", 84);
}

#[test]
fn sip_user_watches_ejabberd_user_tokio() {
    sip_user_watches_ejabberd_user("xfed", 85);
}

#[test]
fn sip_user_watches_ejabberd_user_async_std() {
    sip_user_watches_ejabberd_user("xfed-async-std", 86);
}
