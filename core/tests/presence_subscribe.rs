//! A local SIP user subscribes to an XMPP contact's presence (registrar
//! mode, RFC 8048's SIP -> XMPP table), on the simulated network and
//! clock: alice's user agent SUBSCRIBEs to bob@remote.test and gets
//! NOTIFYs as bob answers and comes and goes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use xfed_core::registrar::digest::{Algorithm, Challenge};
use xfed_core::sim::{Net, NodeSpec};
use xfed_core::sip::{parse_datagram, Limits, Message, Request, Response};
use xfed_core::store::{MemoryStore, Persist, Store};
use xfed_core::xml::Element;
use xfed_core::Event;

const XFED: usize = 0;
const REMOTE: usize = 1;
const ALICE_PW: &str = "alice-password";
const BOB: &str = "bob@remote.test";
const ALICE: &str = "alice@xfed.test";
const RURI: &str = "sip:bob@remote.test";

const BASE: &str = r#"
[gateway]
domains = ["xfed.test"]
dialback_secret = "a dialback secret long enough for the tests"

[sip]
mode = "registrar"

[[sip.account]]
user = "alice"
password = "alice-password"
"#;

fn alice_ua() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 5060))
}

/// The configuration with remote.test of partner type `ty` and `sip`
/// lines added to `[sip]`.
fn config(ty: &str, sip: &str) -> String {
    let base = BASE.replace("[sip]\n", &format!("[sip]\n{sip}"));
    format!("{base}\n[[partner]]\ndomain = \"remote.test\"\ntype = \"{ty}\"\n")
}

fn network_of(toml: &str) -> Net {
    let mut remote = NodeSpec::new("remote.test");
    remote.tls = false;
    let mut net = Net::new(&[NodeSpec::new("xfed.test"), remote]);
    net.enable_sip(XFED, toml);
    net.record_stanzas(REMOTE);
    net
}

fn network() -> Net {
    network_of(&config("federated", ""))
}

fn next() -> u32 {
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Alice's user agent: her SUBSCRIBE dialog's state, the NOTIFYs it got
/// (each answered `answer`).
struct Ua {
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
    answer: u16,
    notifies: Vec<Request>,
}

impl Ua {
    fn new() -> Ua {
        let n = next();
        Ua {
            call_id: format!("sub-{n}@ua"),
            from_tag: format!("ua{n}"),
            to_tag: None,
            cseq: 0,
            answer: 200,
            notifies: Vec::new(),
        }
    }

    fn request(&mut self, ruri: &str, extra: &[(&str, String)]) -> Vec<u8> {
        self.cseq += 1;
        let ua = alice_ua();
        let to_tag = self
            .to_tag
            .as_ref()
            .map_or(String::new(), |t| format!(";tag={t}"));
        let mut s = format!(
            "SUBSCRIBE {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {ua};branch=z9hG4bK-ua-{}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@xfed.test>;tag={}\r\n\
             To: <{ruri}>{to_tag}\r\n\
             Call-ID: {}\r\n\
             CSeq: {} SUBSCRIBE\r\n\
             Contact: <sip:alice@{ua}>\r\n",
            next(),
            self.from_tag,
            self.call_id,
            self.cseq,
        );
        for (name, value) in extra {
            s.push_str(&format!("{name}: {value}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s.into_bytes()
    }

    /// What came to the user agent: responses returned, NOTIFYs kept and
    /// answered (until nothing more comes).
    fn take(&mut self, net: &mut Net) -> Vec<Response> {
        let mut responses = Vec::new();
        loop {
            let datagrams = net.take_datagrams(XFED, alice_ua());
            if datagrams.is_empty() {
                return responses;
            }
            for d in datagrams {
                match parse_datagram(&d, &Limits::default()) {
                    Ok(Message::Response(r)) => responses.push(r),
                    Ok(Message::Request(req)) => self.notified(net, req),
                    Err(e) => panic!("unparsable datagram: {e:?}"),
                }
            }
        }
    }

    fn notified(&mut self, net: &mut Net, req: Request) {
        let cseq = req.headers.cseq().map(|c| c.seq).ok();
        let seen = self
            .notifies
            .iter()
            .any(|n| n.headers.cseq().map(|c| c.seq).ok() == cseq);
        if !seen {
            self.notifies.push(req.clone());
        }
        let r = req.response(self.answer, "uatag");
        net.sip_datagram(XFED, alice_ua(), &r.to_bytes());
    }

    fn exchange(&mut self, net: &mut Net, bytes: &[u8]) -> Response {
        net.sip_datagram(XFED, alice_ua(), bytes);
        let mut r = self.take(net);
        assert_eq!(r.len(), 1, "{r:?}\n{}", net.dump(XFED));
        r.remove(0)
    }

    /// A SUBSCRIBE to `ruri` with `extra` headers, through the digest
    /// challenge; the dialog's To tag is kept from a 2xx.
    fn subscribe_to(&mut self, net: &mut Net, ruri: &str, extra: &[(&str, String)]) -> Response {
        let req = self.request(ruri, extra);
        let first = self.exchange(net, &req);
        assert_eq!(first.status, 407, "{first:?}");
        let c = first
            .headers
            .get_all("Proxy-Authenticate")
            .filter_map(|v| Challenge::parse(v).ok())
            .find(|c| c.algorithm == Algorithm::Sha256)
            .expect("a SHA-256 challenge");
        let auth = c.answer("alice", ALICE_PW, "SUBSCRIBE", ruri, "0a4f113b", 1);
        let mut headers = extra.to_vec();
        headers.push(("Proxy-Authorization", auth.header_value()));
        let req = self.request(ruri, &headers);
        let r = self.exchange(net, &req);
        if (200..300).contains(&r.status) && self.to_tag.is_none() {
            self.to_tag = r.headers.to().ok().and_then(|t| t.tag().map(str::to_owned));
        }
        r
    }

    /// A presence SUBSCRIBE to bob asking for `expires` seconds.
    fn subscribe(&mut self, net: &mut Net, expires: u32) -> Response {
        let extra = [
            ("Event", "presence".to_owned()),
            ("Accept", "application/pidf+xml".to_owned()),
            ("Expires", expires.to_string()),
        ];
        self.subscribe_to(net, RURI, &extra)
    }

    /// The Subscription-State of each NOTIFY so far.
    fn states(&self) -> Vec<String> {
        self.notifies
            .iter()
            .map(|n| n.headers.get("Subscription-State").unwrap_or("").to_owned())
            .collect()
    }

    fn last(&self) -> &Request {
        self.notifies.last().expect("a NOTIFY")
    }
}

fn body(n: &Request) -> String {
    String::from_utf8_lossy(&n.body).into_owned()
}

/// The presence stanzas remote.test received for bob so far.
fn to_bob(net: &Net) -> Vec<Element> {
    net.stanzas_received(REMOTE)
        .into_iter()
        .filter(|e| e.name() == "presence" && e.attr("to") == Some(BOB))
        .collect()
}

fn kinds(stanzas: &[Element]) -> Vec<String> {
    stanzas
        .iter()
        .map(|e| e.attr("type").unwrap_or("available").to_owned())
        .collect()
}

/// Bob's server sends presence of `ty` from bob to alice.
fn bob_says(net: &mut Net, ty: &str) {
    net.send(
        REMOTE,
        &format!("<presence xmlns='jabber:server' from='{BOB}' to='{ALICE}' type='{ty}'/>"),
    );
}

/// Bob's resource `res` is available with `note`.
fn bob_available(net: &mut Net, res: &str, note: &str) {
    net.send(
        REMOTE,
        &format!(
            "<presence xmlns='jabber:server' from='{BOB}/{res}' to='{ALICE}'>\
             <show>dnd</show><status>{note}</status></presence>"
        ),
    );
}

/// Alice subscribed to bob and bob accepted: two NOTIFYs (pending,
/// active).
fn active(net: &mut Net, ua: &mut Ua) {
    let r = ua.subscribe(net, 3600);
    assert_eq!(r.status, 200, "{r:?}");
    bob_says(net, "subscribed");
    ua.take(net);
    assert_eq!(ua.notifies.len(), 2, "{:?}", ua.states());
}

#[test]
fn subscribe_gets_pending_notify_and_subscribe_goes_to_the_contact() {
    let mut net = network();
    let mut ua = Ua::new();
    let r = ua.subscribe(&mut net, 3600);
    assert_eq!(r.status, 200, "{r:?}\n{}", net.dump(XFED));
    assert_eq!(r.headers.get("Expires"), Some("3600"));
    assert!(r.headers.get("Contact").is_some(), "{r:?}");
    assert!(ua.to_tag.is_some());
    ua.take(&mut net);
    assert_eq!(ua.states(), ["pending;expires=3600"], "{}", net.dump(XFED));
    let n = ua.last();
    assert!(n.body.is_empty(), "nothing before authorization");
    assert_eq!(n.headers.get("Event"), Some("presence"));
    assert_eq!(n.uri.to_string(), format!("sip:alice@{}", alice_ua()));
    let got = to_bob(&net);
    assert_eq!(kinds(&got), ["subscribe"], "{}", net.dump(XFED));
    assert_eq!(got[0].attr("from"), Some(ALICE), "from the bare JID");
    assert!(net.saw(XFED, |e| matches!(e,
        Event::WatchAccepted { contact, refresh: false, .. } if contact == BOB)));
}

#[test]
fn subscribed_makes_the_dialog_active() {
    let mut net = network();
    let mut ua = Ua::new();
    active(&mut net, &mut ua);
    assert!(
        ua.states()[1].starts_with("active;expires="),
        "{:?}",
        ua.states()
    );
    assert!(ua.last().body.is_empty(), "no presence known yet: empty");
    assert!(net.saw(XFED, |e| matches!(
        e,
        Event::WatchAnswered {
            authorized: true,
            dialogs: 1,
            ..
        }
    )));
}

#[test]
fn contact_available_with_a_note_is_pidf_open_with_the_note() {
    let mut net = network();
    let mut ua = Ua::new();
    active(&mut net, &mut ua);
    bob_available(&mut net, "phone", "In a meeting");
    net.advance(Duration::from_secs(6));
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), 3, "{:?}", ua.states());
    let n = ua.last();
    assert_eq!(
        n.headers.get("Content-Type"),
        Some("application/pidf+xml"),
        "{n:?}"
    );
    let b = body(n);
    assert!(b.contains("<basic>open</basic>"), "{b}");
    assert!(b.contains("In a meeting"), "{b}");
    assert!(b.contains("pres:bob@remote.test"), "{b}");
    // A second resource: one document with both.
    bob_available(&mut net, "laptop", "Typing");
    net.advance(Duration::from_secs(6));
    ua.take(&mut net);
    let b = body(ua.last());
    assert!(b.contains("In a meeting") && b.contains("Typing"), "{b}");
}

#[test]
fn rapid_changes_are_coalesced() {
    let mut net = network();
    let mut ua = Ua::new();
    active(&mut net, &mut ua);
    net.advance(Duration::from_secs(10));
    bob_available(&mut net, "phone", "one");
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), 3, "the window was open");
    assert!(body(ua.last()).contains("one"));
    bob_available(&mut net, "phone", "two");
    bob_available(&mut net, "phone", "three");
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), 3, "held back by the rate limit");
    net.advance(Duration::from_secs(5));
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), 4, "{:?}", ua.states());
    let b = body(ua.last());
    assert!(b.contains("three") && !b.contains("two"), "{b}");
}

#[test]
fn contact_unsubscribed_terminates_with_rejected() {
    let mut net = network();
    let mut ua = Ua::new();
    active(&mut net, &mut ua);
    bob_says(&mut net, "unsubscribed");
    ua.take(&mut net);
    assert_eq!(
        ua.states().last().map(String::as_str),
        Some("terminated;reason=rejected")
    );
    assert!(ua.last().body.is_empty());
    assert_eq!(net.nodes[XFED].gw.sip_tables().subscriptions, 0);
    assert_eq!(kinds(&to_bob(&net)), ["subscribe"], "nothing more to bob");
    let r = ua.subscribe(&mut net, 3600);
    assert_eq!(r.status, 481, "the dialog is gone");
}

#[test]
fn refresh_gets_200_and_the_current_state() {
    let mut net = network();
    let mut ua = Ua::new();
    active(&mut net, &mut ua);
    bob_available(&mut net, "phone", "Here");
    net.advance(Duration::from_secs(6));
    ua.take(&mut net);
    let before = ua.notifies.len();
    let r = ua.subscribe(&mut net, 1800);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.headers.get("Expires"), Some("1800"));
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), before + 1);
    assert_eq!(
        ua.states().last().map(String::as_str),
        Some("active;expires=1800")
    );
    assert!(body(ua.last()).contains("Here"));
    assert_eq!(
        kinds(&to_bob(&net)),
        ["subscribe"],
        "a refresh says nothing to XMPP"
    );
}

#[test]
fn expires_zero_sends_closed_final_notify_and_unavailable_not_unsubscribe() {
    let mut net = network();
    let mut ua = Ua::new();
    active(&mut net, &mut ua);
    bob_available(&mut net, "phone", "Here");
    net.advance(Duration::from_secs(6));
    let r = ua.subscribe(&mut net, 0);
    assert_eq!(r.status, 200, "{r:?}");
    ua.take(&mut net);
    assert_eq!(
        ua.states().last().map(String::as_str),
        Some("terminated;reason=timeout")
    );
    let b = body(ua.last());
    assert!(
        b.contains("<basic>closed</basic>") && !b.contains("open"),
        "{b}"
    );
    assert_eq!(kinds(&to_bob(&net)), ["subscribe", "unavailable"]);
    assert_eq!(to_bob(&net)[1].attr("from"), Some(ALICE));
    assert_eq!(net.nodes[XFED].gw.sip_tables().subscriptions, 0);
    assert!(net.saw(XFED, |e| matches!(e, Event::WatchEnded { last: true, .. })));
}

#[test]
fn another_event_package_gets_489_and_a_brief_expires_423() {
    let mut net = network();
    let mut ua = Ua::new();
    let r = ua.subscribe_to(&mut net, RURI, &[("Event", "dialog".to_owned())]);
    assert_eq!(r.status, 489, "{r:?}");
    assert_eq!(r.headers.get("Allow-Events"), Some("presence"));
    let r = ua.subscribe(&mut net, 10);
    assert_eq!((r.status, r.headers.get("Min-Expires")), (423, Some("60")));
    let r = ua.subscribe_to(
        &mut net,
        RURI,
        &[
            ("Event", "presence".to_owned()),
            ("Accept", "application/xpidf+xml".to_owned()),
        ],
    );
    assert_eq!(r.status, 406, "{r:?}");
    ua.take(&mut net);
    assert!(ua.notifies.is_empty());
    assert!(to_bob(&net).is_empty(), "nothing to XMPP");
    assert_eq!(net.nodes[XFED].gw.sip_tables().subscriptions, 0);
}

#[test]
fn beyond_max_subscriptions_gets_503() {
    let mut net = network_of(&config("federated", "max_subscriptions = 1\n"));
    let mut ua = Ua::new();
    assert_eq!(ua.subscribe(&mut net, 3600).status, 200);
    let mut other = Ua::new();
    let extra = [("Event", "presence".to_owned())];
    let r = other.subscribe_to(&mut net, "sip:dave@remote.test", &extra);
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.headers.get("Retry-After").is_some());
    assert!(net.saw(XFED, |e| matches!(
        e,
        Event::LimitReached {
            key: "sip.max_subscriptions",
            ..
        }
    )));
    assert_eq!(net.nodes[XFED].gw.sip_tables().subscriptions, 1);
}

#[test]
fn a_notify_answered_481_ends_the_dialog() {
    let mut net = network();
    let mut ua = Ua::new();
    assert_eq!(ua.subscribe(&mut net, 3600).status, 200);
    ua.take(&mut net);
    ua.answer = 481;
    bob_says(&mut net, "subscribed");
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), 2);
    assert_eq!(net.nodes[XFED].gw.sip_tables().subscriptions, 0);
    assert!(net.saw(XFED, |e| matches!(e,
        Event::WatchEnded { why, .. } if why.contains("481"))));
    bob_available(&mut net, "phone", "Here");
    net.advance(Duration::from_secs(10));
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), 2, "no NOTIFY after the dialog ended");
}

#[test]
fn the_users_subscribe_invites_a_public_unverified_watcher() {
    let mut net = network_of(&config("public-unverified", ""));
    bob_says(&mut net, "subscribe");
    assert!(to_bob(&net).is_empty(), "pending");
    let mut ua = Ua::new();
    assert_eq!(ua.subscribe(&mut net, 3600).status, 200);
    let got = kinds(&to_bob(&net));
    assert_eq!(
        got,
        ["subscribe", "subscribed", "unavailable"],
        "{}",
        net.dump(XFED)
    );
}

#[test]
fn the_contacts_own_subscribe_is_approved_after_the_users() {
    let mut net = network_of(&config("public-unverified", ""));
    let mut ua = Ua::new();
    assert_eq!(ua.subscribe(&mut net, 3600).status, 200);
    bob_says(&mut net, "subscribe");
    let got = kinds(&to_bob(&net));
    assert_eq!(
        got,
        ["subscribe", "subscribed", "unavailable"],
        "{}",
        net.dump(XFED)
    );
}

/// What xfed asked its store to keep, applied to a fresh store.
fn stored(net: &Net) -> MemoryStore {
    let mut store = MemoryStore::new();
    store
        .apply(&net.nodes[XFED].persisted)
        .expect("the store applies");
    store
}

fn cseq(n: &Request) -> u32 {
    n.headers.cseq().expect("CSeq").seq
}

#[test]
fn a_restart_continues_the_dialog_and_probes_the_contact_again() {
    let toml = config("federated", "");
    let mut net = network_of(&toml);
    let mut ua = Ua::new();
    active(&mut net, &mut ua);
    bob_available(&mut net, "phone", "Here");
    net.advance(Duration::from_secs(6));
    ua.take(&mut net);
    let last = cseq(ua.last());
    let mut store = stored(&net);
    assert_eq!(store.load_dialogs().expect("dialogs").len(), 1);

    net.advance(Duration::from_secs(30));
    net.restart_sip(XFED, &toml, &mut store);
    assert!(net.saw(XFED, |e| matches!(
        e,
        Event::DialogsRestored {
            restored: 1,
            dropped: 0
        }
    )));
    assert_eq!(net.nodes[XFED].gw.sip_tables().subscriptions, 1);
    let probe = to_bob(&net).pop().expect("a probe to bob");
    assert_eq!(
        (probe.attr("type"), probe.attr("from")),
        (Some("probe"), Some(ALICE)),
        "{}",
        net.dump(XFED)
    );
    ua.take(&mut net);
    let before = ua.notifies.len();
    assert!(before > 0);

    // Bob's answer to the probe reaches alice in her old dialog, its CSeq
    // above every NOTIFY sent before the restart.
    bob_available(&mut net, "laptop", "Back again");
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), before + 1, "{}", net.dump(XFED));
    let n = ua.last();
    assert_eq!(n.headers.call_id().ok(), Some(ua.call_id.as_str()));
    assert!(cseq(n) > last, "{} after {last}", cseq(n));
    assert!(body(n).contains("Back again"), "{}", body(n));
    assert!(n
        .headers
        .get("Subscription-State")
        .unwrap_or("")
        .starts_with("active"));

    // Her refresh is one of the dialog: 200, not 481.
    let r = ua.subscribe(&mut net, 3600);
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn a_dialog_that_expired_while_down_is_dropped_and_deleted() {
    let toml = config("federated", "");
    let mut net = network_of(&toml);
    let mut ua = Ua::new();
    let r = ua.subscribe(&mut net, 60);
    assert_eq!(r.status, 200, "{r:?}");
    let mut store = stored(&net);
    net.advance(Duration::from_secs(61));
    let persisted = net.nodes[XFED].persisted.len();
    net.restart_sip(XFED, &toml, &mut store);
    assert!(net.saw(XFED, |e| matches!(
        e,
        Event::DialogsRestored {
            restored: 0,
            dropped: 1
        }
    )));
    assert_eq!(net.nodes[XFED].gw.sip_tables().subscriptions, 0);
    let deleted = net.nodes[XFED].persisted[persisted..]
        .iter()
        .any(|p| matches!(p, Persist::DeleteDialog { call_id, .. } if *call_id == ua.call_id));
    assert!(deleted, "{:?}", net.nodes[XFED].persisted);
    let r = ua.subscribe(&mut net, 3600);
    assert_eq!(r.status, 481, "{r:?}");
}

#[test]
fn an_ended_dialog_leaves_the_store() {
    let mut net = network();
    let mut ua = Ua::new();
    active(&mut net, &mut ua);
    assert_eq!(stored(&net).load_dialogs().expect("dialogs").len(), 1);
    let d = &stored(&net).load_dialogs().expect("dialogs")[0];
    assert!(d.dialog.active, "{d:?}");
    assert_eq!((d.local_user.as_str(), d.remote_jid.as_str()), (ALICE, BOB));
    assert_eq!(ua.subscribe(&mut net, 0).status, 200);
    assert!(stored(&net).load_dialogs().expect("dialogs").is_empty());
}

#[test]
fn subscription_refresh_interval_caps_the_grant_and_paces_probes() {
    let toml = config("federated", "").replace(
        "[gateway]\n",
        "[gateway]\nsubscription_refresh_interval = \"30m\"\n",
    );
    let mut net = network_of(&toml);
    let mut ua = Ua::new();
    let r = ua.subscribe(&mut net, 3600);
    assert_eq!(r.headers.get("Expires"), Some("1800"), "{r:?}");
    bob_says(&mut net, "subscribed");
    ua.take(&mut net);
    // A refresh within the interval asks bob nothing; one after it
    // probes him again.
    net.advance(Duration::from_secs(900));
    assert_eq!(ua.subscribe(&mut net, 1800).status, 200);
    assert_eq!(kinds(&to_bob(&net)), ["subscribe"]);
    net.advance(Duration::from_secs(901));
    assert_eq!(ua.subscribe(&mut net, 1800).status, 200);
    assert_eq!(kinds(&to_bob(&net)), ["subscribe", "probe"]);
}

#[test]
fn a_fetch_probes_the_contact_only_when_nothing_is_known() {
    let mut net = network();
    let mut fetch = Ua::new();
    assert_eq!(fetch.subscribe(&mut net, 0).status, 200);
    fetch.take(&mut net);
    assert_eq!(
        fetch.states(),
        ["terminated;reason=timeout"],
        "one final NOTIFY"
    );
    assert_eq!(kinds(&to_bob(&net)), ["probe"], "{}", net.dump(XFED));
    assert_eq!(net.nodes[XFED].gw.sip_tables().subscriptions, 0);

    // With a dialog that knows bob's presence, a fetch is answered from it.
    let mut ua = Ua::new();
    active(&mut net, &mut ua);
    bob_available(&mut net, "phone", "Here");
    let mut fetch = Ua::new();
    assert_eq!(fetch.subscribe(&mut net, 0).status, 200);
    fetch.take(&mut net);
    assert!(
        body(fetch.last()).contains("Here"),
        "{}",
        body(fetch.last())
    );
    assert_eq!(kinds(&to_bob(&net)), ["probe", "subscribe"]);
}

#[test]
fn the_operator_lists_and_removes_a_contact_both_ways() {
    let mut net = network();
    let mut ua = Ua::new();
    active(&mut net, &mut ua);
    bob_says(&mut net, "subscribe");
    assert_eq!(
        kinds(&to_bob(&net)),
        ["subscribe", "subscribed", "unavailable"]
    );
    let list = net.admin(XFED, &format!("contact list {ALICE}"));
    assert!(list.ok, "{list:?}");
    assert_eq!(
        list.lines,
        [
            format!("watcher {BOB} approved"),
            format!("watching {BOB} authorized dialogs=1"),
            format!("contacted {BOB} at={}", contacted_at(&net)),
        ]
    );

    let persisted = net.nodes[XFED].persisted.len();
    let r = net.admin(XFED, &format!("contact remove {ALICE} {BOB}"));
    assert_eq!(
        r.lines,
        ["removed authorization, subscription, contact"],
        "{r:?}"
    );
    // Bob hears that alice's authorization and subscription are gone;
    // alice's device hears that the dialog was rejected.
    assert_eq!(
        kinds(&to_bob(&net)),
        [
            "subscribe",
            "subscribed",
            "unavailable",
            "unsubscribed",
            "unsubscribe"
        ]
    );
    ua.take(&mut net);
    assert_eq!(
        ua.states().last().map(String::as_str),
        Some("terminated;reason=rejected")
    );
    let changes = &net.nodes[XFED].persisted[persisted..];
    assert!(changes
        .iter()
        .any(|p| matches!(p, Persist::DeleteAuthorization { .. })));
    assert!(changes
        .iter()
        .any(|p| matches!(p, Persist::DeleteDialog { .. })));
    assert!(changes
        .iter()
        .any(|p| matches!(p, Persist::ForgetContact { .. })));
    assert!(net.saw(XFED, |e| matches!(e, Event::ContactRemoved { .. })));
    assert_eq!(net.nodes[XFED].gw.sip_tables().subscriptions, 0);
    assert_eq!(net.nodes[XFED].gw.sip_tables().watchers, 0);
    assert!(net
        .admin(XFED, &format!("contact list {ALICE}"))
        .lines
        .is_empty());
    let again = net.admin(XFED, &format!("contact remove {ALICE} {BOB}"));
    assert!(
        !again.ok && again.lines[0].contains("no contact"),
        "{again:?}"
    );
    // Bob's probe now finds no authorization.
    bob_says(&mut net, "probe");
    assert_eq!(
        kinds(&to_bob(&net)).last().map(String::as_str),
        Some("unsubscribed")
    );
}

#[test]
fn a_bad_admin_request_says_why() {
    let mut net = network();
    let r = net.admin(XFED, "contact list alice");
    assert!(!r.ok && r.lines[0].contains("bare JID"), "{r:?}");
    let r = net.admin(XFED, "contact remove alice@xfed.test");
    assert!(!r.ok && r.lines[0].contains("unknown request"), "{r:?}");
}

/// When xfed remembered that alice wrote to bob.
fn contacted_at(net: &Net) -> u64 {
    net.nodes[XFED]
        .persisted
        .iter()
        .find_map(|p| match p {
            Persist::RememberContact { at_unix, .. } => Some(*at_unix),
            _ => None,
        })
        .expect("a remembered contact")
}

#[test]
fn the_first_change_after_active_is_not_held_back() {
    let mut net = network();
    let mut ua = Ua::new();
    assert_eq!(ua.subscribe(&mut net, 3600).status, 200);
    // Prosody says `unavailable` when asked, before bob's answer.
    bob_says(&mut net, "unavailable");
    bob_says(&mut net, "subscribed");
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), 2, "{:?}", ua.states());
    // Right after `active`, bob's presence goes out at once; the next
    // change waits for the window.
    bob_available(&mut net, "phone", "Here");
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), 3, "{:?}", ua.states());
    assert!(body(ua.last()).contains("Here"), "{}", body(ua.last()));
    bob_available(&mut net, "phone", "Still here");
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), 3, "rate-limited");
    net.advance(Duration::from_secs(5));
    ua.take(&mut net);
    assert_eq!(ua.notifies.len(), 4);
    assert!(body(ua.last()).contains("Still here"));
}
