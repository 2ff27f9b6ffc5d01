//! Presence in proxy mode, on the simulated network and clock: xfed.test
//! runs `[sip] mode = "proxy"` behind a next hop at 192.0.2.50 (trusted),
//! which the test plays as the SIP domain's proxy and presence server.
//!
//! XMPP -> SIP: bob@remote.test (under the partner type each test gives
//! remote.test) subscribes to alice@xfed.test; once the partner rules
//! approve him, xfed SUBSCRIBEs to the next hop as bob, answers each
//! NOTIFY and relays its state (RFC 8048). SIP -> XMPP: alice's SUBSCRIBE
//! to bob comes through the proxy and its NOTIFYs go back through it. A
//! NOTIFY for no dialog gets 481 in both modes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use xfed_core::config::SipTransport;
use xfed_core::endpoint::NextHop;
use xfed_core::sim::{Net, NodeSpec};
use xfed_core::sip::{parse_datagram, Limits, Message, Request, Response};
use xfed_core::store::{MemoryStore, Persist, Store};
use xfed_core::xml::{ns, Element};
use xfed_core::Event;

const XFED: usize = 0;
const REMOTE: usize = 1;
const BOB: &str = "bob@remote.test";
const ALICE: &str = "alice@xfed.test";

const OPEN_NOTE: &str = "<?xml version='1.0' encoding='UTF-8'?>\
<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:alice@xfed.test'>\
<tuple id='phone'><status><basic>open</basic></status>\
<note xml:lang='en'>In the lab</note></tuple></presence>";

const TWO_DEVICES: &str = "<presence xmlns='urn:ietf:params:xml:ns:pidf' \
entity='pres:alice@xfed.test'>\
<tuple id='phone'><status><basic>open</basic></status></tuple>\
<tuple id='desk'><status><basic>open</basic></status></tuple></presence>";

const DESK_ONLY: &str = "<presence xmlns='urn:ietf:params:xml:ns:pidf' \
entity='pres:alice@xfed.test'>\
<tuple id='desk'><status><basic>open</basic></status></tuple></presence>";

/// The next hop: the SIP domain's proxy and presence server.
fn proxy() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 50], 5060))
}

/// A SIP user agent of the domain, reached through the proxy.
fn alice_ua() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 5060))
}

/// Proxy mode behind [`proxy`], remote.test of partner type `ty`, `sip`
/// lines added to `[sip]` and `extra` appended.
fn config(ty: &str, sip: &str, extra: &str) -> String {
    format!(
        r#"
[gateway]
domains = ["xfed.test"]
dialback_secret = "a dialback secret long enough for the tests"

[sip]
mode = "proxy"
next_hop = "sip:192.0.2.50:5060;transport=udp"
trusted = ["192.0.2.50"]
trust_udp = true
{sip}
[[partner]]
domain = "remote.test"
type = "{ty}"
{extra}"#
    )
}

fn network_of(toml: &str) -> Net {
    let mut remote = NodeSpec::new("remote.test");
    remote.tls = false;
    let mut net = Net::new(&[NodeSpec::new("xfed.test"), remote]);
    let hop = NextHop {
        addr: proxy(),
        transport: SipTransport::Udp,
        name: "192.0.2.50".into(),
    };
    net.enable_sip_with(XFED, toml, Some(hop));
    net.record_stanzas(REMOTE);
    net
}

fn network(ty: &str) -> Net {
    network_of(&config(ty, "", ""))
}

fn next() -> u32 {
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// What xfed sent to `peer`: requests and responses.
fn from_xfed(net: &mut Net, peer: SocketAddr) -> (Vec<Request>, Vec<Response>) {
    let mut requests = Vec::new();
    let mut responses = Vec::new();
    for d in net.take_datagrams(XFED, peer) {
        match parse_datagram(&d, &Limits::default()) {
            Ok(Message::Request(r)) => requests.push(r),
            Ok(Message::Response(r)) => responses.push(r),
            Err(e) => panic!("unparsable datagram: {e:?}"),
        }
    }
    (requests, responses)
}

/// The responses xfed sent to `peer` (its requests stay for
/// [`requests_to_proxy`]).
fn responses(net: &mut Net, peer: SocketAddr) -> Vec<Response> {
    let mut out = Vec::new();
    let mut keep = Vec::new();
    for (local, to, bytes) in std::mem::take(&mut net.nodes[XFED].datagrams) {
        if to != peer || !bytes.starts_with(b"SIP/2.0 ") {
            keep.push((local, to, bytes));
            continue;
        }
        match parse_datagram(&bytes, &Limits::default()) {
            Ok(Message::Response(r)) => out.push(r),
            other => panic!("unparsable response: {other:?}"),
        }
    }
    net.nodes[XFED].datagrams = keep;
    out
}

/// The requests xfed sent to the proxy (each once: retransmissions are
/// dropped by Via branch).
fn requests_to_proxy(net: &mut Net) -> Vec<Request> {
    let (mut requests, _) = from_xfed(net, proxy());
    let mut seen = Vec::new();
    requests.retain(|r| {
        let branch = r.headers.get("Via").unwrap_or("").to_owned();
        let new = !seen.contains(&branch);
        seen.push(branch);
        new
    });
    requests
}

fn subscribes(net: &mut Net) -> Vec<Request> {
    requests_to_proxy(net)
        .into_iter()
        .filter(|r| r.method.as_str() == "SUBSCRIBE")
        .collect()
}

/// The one SUBSCRIBE xfed sent since the last look.
fn the_subscribe(net: &mut Net) -> Request {
    let mut s = subscribes(net);
    assert_eq!(s.len(), 1, "{s:?}\n{}", net.dump(XFED));
    s.remove(0)
}

/// The proxy answers a SUBSCRIBE: `status` (a 2xx with To tag `ps`,
/// Expires and Contact), and `extra` headers.
fn answer(net: &mut Net, req: &Request, status: u16, extra: &[(&str, &str)]) {
    let mut r = req.response(status, "ps");
    if (200..300).contains(&status) {
        let expires = req.headers.get("Expires").unwrap_or("3600").to_owned();
        r.headers.push("Expires", expires);
        r.headers.push("Contact", "<sip:presence@192.0.2.50:5060>");
    }
    for (name, value) in extra {
        r.headers.push(name, *value);
    }
    net.sip_datagram(XFED, proxy(), &r.to_bytes());
}

/// The presence server's side of one dialog: the SUBSCRIBE it accepted,
/// and its CSeq.
struct Dialog {
    subscribe: Request,
    cseq: u32,
}

impl Dialog {
    /// Accepts the one SUBSCRIBE xfed sent since the last look (200).
    fn next(net: &mut Net) -> Dialog {
        let s = the_subscribe(net);
        Dialog::accept(net, s)
    }

    /// Accepts `subscribe` (200).
    fn accept(net: &mut Net, subscribe: Request) -> Dialog {
        answer(net, &subscribe, 200, &[]);
        Dialog { subscribe, cseq: 0 }
    }

    /// A NOTIFY in the dialog with `state` and `body` (PIDF; empty: none),
    /// from `from`; xfed's response.
    fn notify_from(
        &mut self,
        net: &mut Net,
        from: SocketAddr,
        state: &str,
        body: &str,
    ) -> Response {
        self.cseq += 1;
        let s = &self.subscribe;
        let contact = s.headers.contacts().expect("Contact")[0].clone();
        let ruri = match contact {
            xfed_core::sip::Contact::Addr(a) => a.uri().to_string(),
            _ => panic!("Contact *"),
        };
        let to = s.headers.get("From").expect("From");
        let from_uri = s.headers.to().expect("To").uri().to_string();
        let call_id = s.headers.call_id().expect("Call-ID");
        let n = next();
        let mut text = format!(
            "NOTIFY {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {from};branch=z9hG4bK-ps-{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <{from_uri}>;tag=ps\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {} NOTIFY\r\n\
             Contact: <sip:presence@192.0.2.50:5060>\r\n\
             Event: presence\r\n\
             Subscription-State: {state}\r\n",
            self.cseq
        );
        if !body.is_empty() {
            text.push_str("Content-Type: application/pidf+xml\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        net.sip_datagram(XFED, from, text.as_bytes());
        let mut r = responses(net, from);
        assert_eq!(r.len(), 1, "{r:?}\n{}", net.dump(XFED));
        r.remove(0)
    }

    /// A NOTIFY from the proxy, answered 200.
    fn notify(&mut self, net: &mut Net, state: &str, body: &str) {
        let r = self.notify_from(net, proxy(), state, body);
        assert_eq!(r.status, 200, "{r:?}\n{}", net.dump(XFED));
    }

    fn call_id(&self) -> String {
        self.subscribe.headers.call_id().unwrap().to_owned()
    }
}

fn presence(net: &mut Net, ty: &str) {
    net.send(
        REMOTE,
        &format!("<presence xmlns='jabber:server' from='{BOB}' to='{ALICE}' type='{ty}'/>"),
    );
}

/// The presence stanzas bob's server received so far.
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

fn status_of(e: &Element) -> Option<String> {
    e.child(ns::SERVER, "status").map(|s| s.text().into_owned())
}

fn deleted(net: &Net) -> bool {
    net.nodes[XFED].persisted.iter().any(|p| {
        matches!(p, Persist::DeleteAuthorization { local_user, remote_jid }
            if local_user == ALICE && remote_jid == BOB)
    })
}

/// bob subscribed, xfed's SUBSCRIBE accepted and NOTIFY active with
/// `body`: the dialog.
fn watching(net: &mut Net, body: &str) -> Dialog {
    presence(net, "subscribe");
    let mut d = Dialog::next(net);
    d.notify(net, "active;expires=3600", body);
    d
}

#[test]
fn approved_subscribe_becomes_a_subscribe_to_the_next_hop() {
    let mut net = network("federated");
    presence(&mut net, "subscribe");
    let s = the_subscribe(&mut net);
    let dump = format!("{s:?}\n{}", net.dump(XFED));
    assert_eq!(s.uri.to_string(), "sip:alice@xfed.test", "{dump}");
    assert_eq!(
        s.headers.to().unwrap().uri().to_string(),
        "sip:alice@xfed.test"
    );
    assert!(s.headers.to().unwrap().tag().is_none(), "{dump}");
    let from = s.headers.from().unwrap();
    assert_eq!(from.uri().to_string(), "sip:bob@remote.test", "{dump}");
    assert!(from.tag().is_some());
    assert_eq!(s.headers.get("Event"), Some("presence"));
    assert_eq!(s.headers.get("Accept"), Some("application/pidf+xml"));
    assert_eq!(s.headers.get("Expires"), Some("3600"));
    assert!(s.headers.get("Contact").is_some(), "{dump}");
    assert!(s
        .headers
        .get("Via")
        .unwrap()
        .starts_with("SIP/2.0/UDP 10.0.0.1:5060"));
    assert!(net.nodes[XFED].persisted.iter().any(|p| matches!(p,
        Persist::PutAuthorization(a) if a.approved && a.remote_jid == BOB)));
    assert!(
        to_bob(&net).is_empty(),
        "nothing before the presence server says active"
    );

    let mut d = Dialog::accept(&mut net, s);
    d.notify(&mut net, "pending;expires=3600", "");
    assert!(to_bob(&net).is_empty(), "pending says nothing (RFC 8048)");

    d.notify(&mut net, "active;expires=3600", OPEN_NOTE);
    let got = to_bob(&net);
    assert_eq!(
        kinds(&got),
        ["subscribed", "available"],
        "{}",
        net.dump(XFED)
    );
    assert_eq!(got[0].attr("from"), Some(ALICE));
    assert_eq!(got[1].attr("from"), Some("alice@xfed.test/phone"));
    assert_eq!(
        status_of(&got[1]).as_deref(),
        Some("In the lab"),
        "federated: notes"
    );
    assert_eq!(net.nodes[XFED].gw.sip_tables().upstream, 1);
    assert!(net.saw(
        XFED,
        |e| matches!(e, Event::PresenceNotified { watcher, .. } if watcher == BOB)
    ));
}

#[test]
fn public_verified_sees_availability_without_notes() {
    let mut net = network("public-verified");
    watching(&mut net, OPEN_NOTE);
    let got = to_bob(&net);
    assert_eq!(
        kinds(&got),
        ["subscribed", "available"],
        "{}",
        net.dump(XFED)
    );
    assert_eq!(status_of(&got[1]), None, "public-verified: no notes");
}

#[test]
fn public_unverified_waits_for_the_users_message() {
    let mut net = network("public-unverified");
    presence(&mut net, "subscribe");
    assert!(subscribes(&mut net).is_empty(), "pending: no SUBSCRIBE");
    assert!(net.saw(XFED, |e| matches!(e, Event::SubscriptionPending { .. })));
    // alice writes to bob through the proxy: the invitation.
    let n = next();
    let ua = alice_ua();
    let body = "hello";
    let message = format!(
        "MESSAGE sip:{BOB} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK-px-{n}\r\n\
         Via: SIP/2.0/UDP {ua};branch=z9hG4bK-ua-{n}\r\n\
         Max-Forwards: 69\r\n\
         From: <sip:{ALICE}>;tag=a{n}\r\n\
         To: <sip:{BOB}>\r\n\
         Call-ID: msg-{n}@ua\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    net.sip_datagram(XFED, proxy(), message.as_bytes());
    let (mut requests, r) = from_xfed(&mut net, proxy());
    assert!(
        r.iter().any(|r| r.status == 202),
        "{r:?}\n{}",
        net.dump(XFED)
    );
    assert_eq!(requests.len(), 1, "{requests:?}");
    let mut d = Dialog::accept(&mut net, requests.remove(0));
    d.notify(&mut net, "active;expires=3600", OPEN_NOTE);
    assert_eq!(kinds(&to_bob(&net)), ["subscribed", "available"]);
}

#[test]
fn no_xmpp_access_is_unsubscribed_without_a_subscribe() {
    let extra = "[[access]]\nusers = [\"alice@xfed.test\"]\nxmpp = false\n";
    let mut net = network_of(&config("federated", "", extra));
    presence(&mut net, "subscribe");
    assert!(subscribes(&mut net).is_empty());
    assert_eq!(kinds(&to_bob(&net)), ["unsubscribed"]);
}

#[test]
fn probe_is_answered_from_the_last_notify() {
    let mut net = network("federated");
    presence(&mut net, "subscribe");
    let mut d = Dialog::next(&mut net);
    d.notify(&mut net, "pending;expires=3600", "");
    presence(&mut net, "probe");
    assert!(to_bob(&net).is_empty(), "not active yet: nothing");
    d.notify(&mut net, "active;expires=3600", OPEN_NOTE);
    assert_eq!(to_bob(&net).len(), 2);
    presence(&mut net, "probe");
    let got = to_bob(&net);
    assert_eq!(kinds(&got), ["subscribed", "available", "available"]);
    assert_eq!(status_of(&got[2]).as_deref(), Some("In the lab"));
    assert!(
        subscribes(&mut net).is_empty(),
        "answered from what is known"
    );
}

#[test]
fn a_notify_that_changes_nothing_sends_nothing_and_a_vanished_device_goes_unavailable() {
    let mut net = network("federated");
    let mut d = watching(&mut net, TWO_DEVICES);
    assert_eq!(
        kinds(&to_bob(&net)),
        ["subscribed", "available", "available"]
    );
    d.notify(&mut net, "active;expires=3000", TWO_DEVICES);
    assert_eq!(to_bob(&net).len(), 3, "the same state: nothing new");
    d.notify(&mut net, "active;expires=3000", DESK_ONLY);
    let got = to_bob(&net);
    let late: Vec<(Option<&str>, String)> = got[3..]
        .iter()
        .map(|e| {
            (
                e.attr("from"),
                e.attr("type").unwrap_or("available").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        late,
        [
            (Some("alice@xfed.test/phone"), "unavailable".to_owned()),
            (Some("alice@xfed.test/desk"), "available".to_owned()),
        ]
    );
    // No body: nothing known, closed (RFC 8048).
    d.notify(&mut net, "active;expires=3000", "");
    let got = to_bob(&net);
    let late: Vec<(Option<&str>, String)> = got[5..]
        .iter()
        .map(|e| {
            (
                e.attr("from"),
                e.attr("type").unwrap_or("available").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        late,
        [
            (Some("alice@xfed.test/desk"), "unavailable".to_owned()),
            (Some(ALICE), "unavailable".to_owned()),
        ]
    );
}

#[test]
fn unsubscribe_ends_the_dialog_with_expires_zero() {
    let mut net = network("federated");
    let mut d = watching(&mut net, OPEN_NOTE);
    presence(&mut net, "unsubscribe");
    let s = the_subscribe(&mut net);
    assert_eq!(s.headers.get("Expires"), Some("0"));
    assert_eq!(s.headers.call_id().unwrap(), d.call_id(), "in the dialog");
    assert_eq!(s.headers.to().unwrap().tag(), Some("ps"));
    assert_eq!(s.headers.cseq().unwrap().seq, 2);
    assert_eq!(
        kinds(&to_bob(&net)),
        ["subscribed", "available", "unavailable", "unsubscribed"]
    );
    assert!(deleted(&net));
    answer(&mut net, &s, 200, &[]);
    d.notify(&mut net, "terminated;reason=timeout", "");
    assert_eq!(net.nodes[XFED].gw.sip_tables().subscriptions, 0);
    assert_eq!(net.nodes[XFED].gw.sip_tables().upstream, 0);
    assert_eq!(to_bob(&net).len(), 4, "nothing after");
    net.advance(Duration::from_secs(7200));
    assert!(subscribes(&mut net).is_empty(), "no new dialog");
}

#[test]
fn the_operator_removing_the_watcher_ends_the_dialog_upstream() {
    let mut net = network("federated");
    let mut d = watching(&mut net, OPEN_NOTE);
    let r = net.admin(XFED, "contact remove alice@xfed.test bob@remote.test");
    assert_eq!(r.lines, ["removed authorization"], "{r:?}");
    let s = the_subscribe(&mut net);
    assert_eq!(s.headers.get("Expires"), Some("0"));
    assert_eq!(s.headers.call_id().unwrap(), d.call_id(), "in the dialog");
    assert_eq!(
        kinds(&to_bob(&net)),
        ["subscribed", "available", "unavailable", "unsubscribed"]
    );
    assert!(deleted(&net));
    answer(&mut net, &s, 200, &[]);
    d.notify(&mut net, "terminated;reason=timeout", "");
    assert_eq!(net.nodes[XFED].gw.sip_tables().upstream, 0);
}

#[test]
fn refusals_revoke_the_authorization() {
    for status in [403, 489, 603] {
        let mut net = network("federated");
        presence(&mut net, "subscribe");
        let s = the_subscribe(&mut net);
        answer(&mut net, &s, status, &[]);
        assert_eq!(kinds(&to_bob(&net)), ["unsubscribed"], "{status}");
        assert!(deleted(&net), "{status}");
        assert!(
            net.saw(XFED, |e| matches!(e, Event::UpstreamEnded { then, .. }
            if then.contains("revoked")))
        );
        net.advance(Duration::from_secs(7200));
        assert!(
            subscribes(&mut net).is_empty(),
            "{status}: no new SUBSCRIBE"
        );
        assert_eq!(net.nodes[XFED].gw.sip_tables().upstream, 0);
        // A probe now: no authorization.
        presence(&mut net, "probe");
        assert_eq!(kinds(&to_bob(&net)), ["unsubscribed", "unsubscribed"]);
    }
}

#[test]
fn notify_rejected_revokes_the_authorization() {
    let mut net = network("federated");
    let mut d = watching(&mut net, OPEN_NOTE);
    d.notify(&mut net, "terminated;reason=rejected", "");
    assert_eq!(
        kinds(&to_bob(&net)),
        ["subscribed", "available", "unavailable", "unsubscribed"]
    );
    assert!(deleted(&net));
    net.advance(Duration::from_secs(120));
    assert!(subscribes(&mut net).is_empty());
}

#[test]
fn deactivated_and_timeout_subscribe_again_at_once() {
    for reason in ["deactivated", "timeout"] {
        let mut net = network("federated");
        let mut d = watching(&mut net, OPEN_NOTE);
        d.notify(&mut net, &format!("terminated;reason={reason}"), "");
        let s = the_subscribe(&mut net);
        assert_ne!(
            s.headers.call_id().unwrap(),
            d.call_id(),
            "{reason}: a new dialog"
        );
        assert!(s.headers.to().unwrap().tag().is_none());
        assert!(!deleted(&net));
        let mut d2 = Dialog::accept(&mut net, s);
        d2.notify(&mut net, "active;expires=3600", TWO_DEVICES);
        assert_eq!(
            kinds(&to_bob(&net)),
            ["subscribed", "available", "available", "available"],
            "{reason}: no second subscribed\n{}",
            net.dump(XFED)
        );
    }
}

#[test]
fn the_dialog_is_refreshed_before_it_expires() {
    let mut net = network("federated");
    let d = watching(&mut net, OPEN_NOTE);
    // 90% of 3600 s.
    net.advance(Duration::from_secs(3230));
    assert!(subscribes(&mut net).is_empty(), "too early");
    net.advance(Duration::from_secs(20));
    let s = the_subscribe(&mut net);
    assert_eq!(s.headers.call_id().unwrap(), d.call_id());
    assert_eq!(s.headers.get("Expires"), Some("3600"));
    assert_eq!(s.headers.cseq().unwrap().seq, 2);
    // The refresh target is the 200's Contact.
    assert_eq!(s.uri.to_string(), "sip:presence@192.0.2.50:5060");
    answer(&mut net, &s, 200, &[]);
    net.advance(Duration::from_secs(3000));
    assert!(subscribes(&mut net).is_empty());
}

#[test]
fn a_failed_subscribe_is_retried_after_retry_after() {
    let mut net = network("federated");
    presence(&mut net, "subscribe");
    let s = the_subscribe(&mut net);
    answer(&mut net, &s, 503, &[("Retry-After", "20")]);
    net.advance(Duration::from_secs(19));
    assert!(subscribes(&mut net).is_empty());
    net.advance(Duration::from_secs(2));
    let again = the_subscribe(&mut net);
    assert_ne!(
        again.headers.call_id().unwrap(),
        s.headers.call_id().unwrap()
    );
    assert!(to_bob(&net).is_empty(), "a transient failure says nothing");
    assert!(!deleted(&net));
}

#[test]
fn no_such_user_is_not_retried_until_a_probe() {
    let mut net = network("federated");
    presence(&mut net, "subscribe");
    let s = the_subscribe(&mut net);
    answer(&mut net, &s, 404, &[]);
    net.advance(Duration::from_secs(600));
    assert!(subscribes(&mut net).is_empty());
    assert!(!deleted(&net), "the authorization stays");
    presence(&mut net, "probe");
    assert_eq!(subscribes(&mut net).len(), 1, "a probe tries again");
}

#[test]
fn notify_refusals() {
    let mut net = network("federated");
    let mut d = watching(&mut net, OPEN_NOTE);
    // From an address that is not the trusted proxy: 403.
    let r = d.notify_from(&mut net, alice_ua(), "active;expires=3600", DESK_ONLY);
    assert_eq!(r.status, 403, "{r:?}");
    // Unknown dialog: 481.
    let text = String::from_utf8(d.subscribe.to_bytes())
        .unwrap()
        .replace(&d.call_id(), "no-such-call");
    let Ok(Message::Request(subscribe)) = parse_datagram(text.as_bytes(), &Limits::default())
    else {
        panic!("{text}")
    };
    let mut stray = Dialog {
        subscribe,
        cseq: 10,
    };
    let r = stray.notify_from(&mut net, proxy(), "active;expires=3600", DESK_ONLY);
    assert_eq!(r.status, 481, "{r:?}");
    // A body that is not PIDF: 415, nothing relayed.
    let n = to_bob(&net).len();
    let r = d.notify_from(&mut net, proxy(), "active;expires=3600", "<nope/>");
    assert_eq!(r.status, 415, "{r:?}");
    assert_eq!(to_bob(&net).len(), n);
    assert!(net.saw(
        XFED,
        |e| matches!(e, Event::SipRefused { detail, .. } if detail.contains("481"))
    ));
}

#[test]
fn a_notify_for_no_dialog_gets_481_in_registrar_mode() {
    let toml = r#"
[gateway]
domains = ["xfed.test"]
dialback_secret = "a dialback secret long enough for the tests"
"#;
    let mut net = Net::new(&[NodeSpec::new("xfed.test")]);
    net.enable_sip(XFED, toml);
    let ua = alice_ua();
    let notify = format!(
        "NOTIFY sip:xfed.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ua};branch=z9hG4bK-stray\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:carol@elsewhere.test>;tag=x\r\n\
         To: <sip:alice@xfed.test>;tag=y\r\n\
         Call-ID: stray@ua\r\n\
         CSeq: 1 NOTIFY\r\n\
         Event: presence\r\n\
         Subscription-State: active;expires=60\r\n\
         Content-Length: 0\r\n\r\n"
    );
    net.sip_datagram(XFED, ua, notify.as_bytes());
    let (_, r) = from_xfed(&mut net, ua);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].status, 481, "{r:?}");
}

#[test]
fn the_bound_per_remote_domain_holds() {
    let mut net = network_of(&config("federated", "max_watchers = 1\n", ""));
    presence(&mut net, "subscribe");
    assert_eq!(subscribes(&mut net).len(), 1);
    net.send(
        REMOTE,
        "<presence xmlns='jabber:server' from='dave@remote.test' \
         to='carol@xfed.test' type='subscribe' id='s2'/>",
    );
    assert!(subscribes(&mut net).is_empty(), "beyond the bound");
    let errors: Vec<Element> = net
        .stanzas_received(REMOTE)
        .into_iter()
        .filter(|e| e.attr("to") == Some("dave@remote.test"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].attr("type"), Some("error"));
    let text = String::from_utf8_lossy(&errors[0].to_bytes()).into_owned();
    assert!(text.contains("resource-constraint"), "{text}");
}

/// xfed restarts on what it persisted.
fn restarted(net: &mut Net, toml: &str) {
    let mut store = MemoryStore::new();
    store.apply(&net.nodes[XFED].persisted).expect("store");
    net.advance(Duration::from_secs(10));
    // What the old process still sent (retransmissions) is of no interest.
    net.take_datagrams(XFED, proxy());
    net.restart_sip(XFED, toml, &mut store);
}

#[test]
fn restart_goes_on_in_the_same_dialog_refreshed_at_once() {
    let toml = config("federated", "", "");
    let mut net = network_of(&toml);
    let mut d = watching(&mut net, OPEN_NOTE);
    assert!(net.nodes[XFED].persisted.iter().any(|p| matches!(p,
        Persist::PutDialog(s) if s.remote_jid == BOB && s.dialog.call_id == d.call_id())));
    restarted(&mut net, &toml);
    // A refresh in the saved dialog, for the state missed meanwhile.
    let s = the_subscribe(&mut net);
    assert_eq!(
        s.headers.call_id().unwrap(),
        d.call_id(),
        "{}",
        net.dump(XFED)
    );
    assert_eq!(s.headers.to().unwrap().tag(), Some("ps"));
    assert_eq!(s.headers.get("Expires"), Some("3600"));
    assert!(s.headers.cseq().unwrap().seq >= 2);
    assert_eq!(s.uri.to_string(), "sip:presence@192.0.2.50:5060");
    answer(&mut net, &s, 200, &[]);
    d.notify(&mut net, "active;expires=3590", DESK_ONLY);
    let got = to_bob(&net);
    assert_eq!(
        kinds(&got),
        ["subscribed", "available", "subscribed", "available"],
        "{}",
        net.dump(XFED)
    );
    assert_eq!(got[3].attr("from"), Some("alice@xfed.test/desk"));
    assert_eq!(net.nodes[XFED].gw.sip_tables().subscriptions, 1);
    // bob unsubscribes: the dialog ends and its record goes.
    presence(&mut net, "unsubscribe");
    let s = the_subscribe(&mut net);
    answer(&mut net, &s, 200, &[]);
    d.notify(&mut net, "terminated;reason=timeout", "");
    assert!(net.nodes[XFED].persisted.iter().any(|p| matches!(p,
        Persist::DeleteDialog { call_id, .. } if *call_id == d.call_id())));
}

#[test]
fn restart_subscribes_afresh_when_the_presence_server_forgot_the_dialog() {
    let toml = config("federated", "", "");
    let mut net = network_of(&toml);
    let d = watching(&mut net, OPEN_NOTE);
    restarted(&mut net, &toml);
    let s = the_subscribe(&mut net);
    assert_eq!(s.headers.call_id().unwrap(), d.call_id());
    answer(&mut net, &s, 481, &[]);
    let fresh = the_subscribe(&mut net);
    assert_ne!(fresh.headers.call_id().unwrap(), d.call_id());
    assert!(fresh.headers.to().unwrap().tag().is_none());
    assert!(!deleted(&net), "the authorization stays");
}

#[test]
fn restart_without_a_saved_dialog_subscribes_for_the_stored_authorization() {
    let toml = config("federated", "", "");
    let mut net = network_of(&toml);
    presence(&mut net, "subscribe");
    the_subscribe(&mut net); // never answered: nothing to save
    assert!(!net.nodes[XFED]
        .persisted
        .iter()
        .any(|p| matches!(p, Persist::PutDialog(_))));
    restarted(&mut net, &toml);
    let s = the_subscribe(&mut net);
    assert!(s.headers.to().unwrap().tag().is_none(), "a new dialog");
    let mut d = Dialog::accept(&mut net, s);
    d.notify(&mut net, "active;expires=3600", OPEN_NOTE);
    assert_eq!(kinds(&to_bob(&net)), ["subscribed", "available"]);
}

// ---- SIP -> XMPP through the proxy ----

/// alice's SUBSCRIBE to bob as the proxy relays it (its Via on top, a
/// Record-Route), from `from`.
fn relayed_subscribe(from: SocketAddr, expires: u32) -> String {
    let n = next();
    let ua = alice_ua();
    format!(
        "SUBSCRIBE sip:{BOB} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK-px-{n}\r\n\
         Via: SIP/2.0/UDP {ua};branch=z9hG4bK-ua-{n}\r\n\
         Record-Route: <sip:192.0.2.50;lr>\r\n\
         Max-Forwards: 69\r\n\
         From: <sip:{ALICE}>;tag=ua{n}\r\n\
         To: <sip:{BOB}>\r\n\
         Call-ID: sub-{n}-{from}@ua\r\n\
         CSeq: 1 SUBSCRIBE\r\n\
         Contact: <sip:alice@{ua}>\r\n\
         Event: presence\r\n\
         Accept: application/pidf+xml\r\n\
         Expires: {expires}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_sip_users_subscribe_comes_through_the_proxy_and_notifies_go_back_through_it() {
    let mut net = network("federated");
    net.sip_datagram(XFED, proxy(), relayed_subscribe(proxy(), 600).as_bytes());
    let (notifies, r) = from_xfed(&mut net, proxy());
    assert_eq!(r.len(), 1, "{r:?}\n{}", net.dump(XFED));
    assert_eq!(r[0].status, 200, "{r:?}");
    assert_eq!(r[0].headers.get("Expires"), Some("600"));
    assert_eq!(notifies.len(), 1, "{notifies:?}\n{}", net.dump(XFED));
    let n = &notifies[0];
    assert_eq!(n.method.as_str(), "NOTIFY");
    assert_eq!(
        n.uri.to_string(),
        format!("sip:alice@{}", alice_ua()),
        "to her Contact"
    );
    assert_eq!(
        n.headers.get("Route"),
        Some("<sip:192.0.2.50;lr>"),
        "the route set"
    );
    assert!(n
        .headers
        .get("Subscription-State")
        .unwrap()
        .starts_with("pending"));
    assert!(
        net.take_datagrams(XFED, alice_ua()).is_empty(),
        "never around the proxy"
    );
    assert_eq!(kinds(&to_bob(&net)), ["subscribe"]);
    // bob accepts: NOTIFY active, through the proxy.
    net.send(
        REMOTE,
        &format!("<presence xmlns='jabber:server' from='{BOB}' to='{ALICE}' type='subscribed'/>"),
    );
    let (notifies, _) = from_xfed(&mut net, proxy());
    let states: Vec<&str> = notifies
        .iter()
        .filter_map(|n| n.headers.get("Subscription-State"))
        .collect();
    assert!(states.iter().any(|s| s.starts_with("active")), "{states:?}");
}

#[test]
fn a_subscribe_straight_from_a_user_agent_gets_403() {
    let mut net = network("federated");
    net.sip_datagram(
        XFED,
        alice_ua(),
        relayed_subscribe(alice_ua(), 600).as_bytes(),
    );
    let (_, r) = from_xfed(&mut net, alice_ua());
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].status, 403);
    assert!(to_bob(&net).is_empty());
}
