//! Presence in registrar mode, on the simulated network and clock: local
//! SIP users PUBLISH (RFC 3903) and remote XMPP users (remote.test, under
//! the partner type each test gives it) subscribe, probe and unsubscribe
//! (RFC 6121), and get the composed state as XMPP presence.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use xfed_core::registrar::digest::{Algorithm, Challenge};
use xfed_core::sim::{Net, NodeSpec};
use xfed_core::sip::{parse_datagram, Limits, Message, Response};
use xfed_core::store::{MemoryStore, Persist, Store};
use xfed_core::xml::{ns, Element};
use xfed_core::Event;

const XFED: usize = 0;
const REMOTE: usize = 1;
const ALICE_PW: &str = "alice-password";

const BASE: &str = r#"
[gateway]
domains = ["xfed.test"]
dialback_secret = "a dialback secret long enough for the tests"

[sip]
mode = "registrar"

[[sip.account]]
user = "alice"
password = "alice-password"

[[sip.account]]
user = "carol"
password = "carol-password"
"#;

const OPEN_NOTE: &str = "<?xml version='1.0' encoding='UTF-8'?>\
<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:alice@xfed.test'>\
<tuple id='phone'><status><basic>open</basic></status>\
<note xml:lang='en'>In the lab</note></tuple></presence>";

const CLOSED: &str = "<presence xmlns='urn:ietf:params:xml:ns:pidf' \
entity='pres:alice@xfed.test'><tuple id='phone'><status><basic>closed</basic>\
</status></tuple></presence>";

fn alice_ua() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 5060))
}

/// The configuration with remote.test of partner type `ty` and `extra`
/// lines appended (after `[sip]` keys when `sip` is given).
fn config(ty: &str, sip: &str, extra: &str) -> String {
    let base = BASE.replace("[sip]\n", &format!("[sip]\n{sip}"));
    format!("{base}\n[[partner]]\ndomain = \"remote.test\"\ntype = \"{ty}\"\n{extra}")
}

fn network_of(toml: &str) -> Net {
    let mut remote = NodeSpec::new("remote.test");
    remote.tls = false;
    let mut net = Net::new(&[NodeSpec::new("xfed.test"), remote]);
    net.enable_sip(XFED, toml);
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

fn request(method: &str, ruri: &str, user: &str, extra: &[(&str, String)], body: &str) -> Vec<u8> {
    let n = next();
    let ua = alice_ua();
    let mut s = format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ua};branch=z9hG4bK-ua-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@xfed.test>;tag=ua{n}\r\n\
         To: <{ruri}>\r\n\
         Call-ID: call-{n}@ua\r\n\
         CSeq: {n} {method}\r\n"
    );
    for (name, value) in extra {
        s.push_str(&format!("{name}: {value}\r\n"));
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.into_bytes()
}

fn responses(net: &mut Net) -> Vec<Response> {
    net.take_datagrams(XFED, alice_ua())
        .iter()
        .filter_map(|d| match parse_datagram(d, &Limits::default()) {
            Ok(Message::Response(r)) => Some(r),
            _ => None,
        })
        .collect()
}

fn exchange(net: &mut Net, bytes: &[u8]) -> Response {
    net.sip_datagram(XFED, alice_ua(), bytes);
    let mut r = responses(net);
    assert_eq!(r.len(), 1, "{r:?}\n{}", net.dump(XFED));
    r.remove(0)
}

/// `method` to `ruri` as alice with `extra` headers and `body`, through
/// the digest challenge.
fn as_alice(
    net: &mut Net,
    method: &str,
    ruri: &str,
    extra: &[(&str, String)],
    body: &str,
) -> Response {
    let first = exchange(net, &request(method, ruri, "alice", extra, body));
    assert_eq!(first.status, 407, "{first:?}");
    let c = first
        .headers
        .get_all("Proxy-Authenticate")
        .filter_map(|v| Challenge::parse(v).ok())
        .find(|c| c.algorithm == Algorithm::Sha256)
        .expect("a SHA-256 challenge");
    let auth = c.answer("alice", ALICE_PW, method, ruri, "0a4f113b", 1);
    let mut headers = extra.to_vec();
    headers.push(("Proxy-Authorization", auth.header_value()));
    exchange(net, &request(method, ruri, "alice", &headers, body))
}

/// A PUBLISH of alice's presence: `etag` to refresh or modify, `body`
/// (PIDF) or none.
fn publish(net: &mut Net, etag: Option<&str>, expires: u32, body: &str) -> Response {
    let mut extra = vec![
        ("Event", "presence".to_owned()),
        ("Expires", expires.to_string()),
    ];
    if let Some(tag) = etag {
        extra.push(("SIP-If-Match", tag.to_owned()));
    }
    if !body.is_empty() {
        extra.push(("Content-Type", "application/pidf+xml".to_owned()));
    }
    as_alice(net, "PUBLISH", "sip:alice@xfed.test", &extra, body)
}

fn published(net: &mut Net, etag: Option<&str>, expires: u32, body: &str) -> String {
    let r = publish(net, etag, expires, body);
    assert_eq!(r.status, 200, "{r:?}\n{}", net.dump(XFED));
    assert_eq!(r.headers.get("Expires"), Some(expires.to_string().as_str()));
    r.headers.get("SIP-ETag").expect("SIP-ETag").to_owned()
}

fn presence(net: &mut Net, from: &str, to: &str, ty: &str) {
    net.send(
        REMOTE,
        &format!("<presence xmlns='jabber:server' from='{from}' to='{to}' type='{ty}'/>"),
    );
}

/// The presence stanzas remote.test received for `to` so far.
fn presences_to(net: &Net, to: &str) -> Vec<Element> {
    net.stanzas_received(REMOTE)
        .into_iter()
        .filter(|e| e.name() == "presence" && e.attr("to") == Some(to))
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

const BOB: &str = "bob@remote.test";
const ALICE: &str = "alice@xfed.test";

#[test]
fn publish_then_federated_subscribe_sees_open_and_note() {
    let mut net = network("federated");
    let tag = published(&mut net, None, 3600, OPEN_NOTE);
    assert!(net.nodes[XFED]
        .persisted
        .iter()
        .any(|p| matches!(p, Persist::PutPublication(s) if s.aor == ALICE && s.etag == tag)));

    presence(&mut net, BOB, ALICE, "subscribe");
    let got = presences_to(&net, BOB);
    assert_eq!(
        kinds(&got),
        ["subscribed", "available"],
        "{}",
        net.dump(XFED)
    );
    assert_eq!(got[1].attr("from"), Some(ALICE));
    assert_eq!(status_of(&got[1]).as_deref(), Some("In the lab"));
    assert!(net.saw(
        XFED,
        |e| matches!(e, Event::SubscriptionApproved { watcher, .. } if watcher == BOB)
    ));
    assert!(net.nodes[XFED]
        .persisted
        .iter()
        .any(|p| matches!(p, Persist::PutAuthorization(a) if a.approved && a.remote_jid == BOB)));

    // A second watcher; a change is translated once for both.
    presence(&mut net, "dave@remote.test", ALICE, "subscribe");
    published(&mut net, Some(&tag), 3600, CLOSED);
    let bob = presences_to(&net, BOB);
    assert_eq!(kinds(&bob), ["subscribed", "available", "unavailable"]);
    assert_eq!(
        kinds(&presences_to(&net, "dave@remote.test"))
            .last()
            .map(String::as_str),
        Some("unavailable")
    );
    assert!(
        net.saw(XFED, |e| matches!(
            e,
            Event::PresenceSent {
                watchers: 2,
                translations: 1,
                available: false,
                ..
            }
        )),
        "{}",
        net.dump(XFED)
    );
}

#[test]
fn public_verified_sees_availability_without_note() {
    let mut net = network("public-verified");
    published(&mut net, None, 3600, OPEN_NOTE);
    presence(&mut net, BOB, ALICE, "subscribe");
    let got = presences_to(&net, BOB);
    assert_eq!(kinds(&got), ["subscribed", "available"]);
    assert_eq!(status_of(&got[1]), None, "{got:?}");
}

#[test]
fn public_unverified_waits_until_the_user_writes() {
    let mut net = network("public-unverified");
    published(&mut net, None, 3600, OPEN_NOTE);
    presence(&mut net, BOB, ALICE, "subscribe");
    presence(&mut net, BOB, ALICE, "probe");
    assert!(
        presences_to(&net, BOB).is_empty(),
        "{:?}",
        presences_to(&net, BOB)
    );
    assert!(net.saw(
        XFED,
        |e| matches!(e, Event::SubscriptionPending { watcher, .. } if watcher == BOB)
    ));
    assert!(net.nodes[XFED]
        .persisted
        .iter()
        .any(|p| matches!(p, Persist::PutAuthorization(a) if !a.approved && a.remote_jid == BOB)));

    let r = as_alice(
        &mut net,
        "MESSAGE",
        "sip:bob@remote.test",
        &[("Content-Type", "text/plain".to_owned())],
        "hi bob",
    );
    assert_eq!(r.status, 202, "{}", net.dump(XFED));
    let got = presences_to(&net, BOB);
    assert_eq!(
        kinds(&got),
        ["subscribed", "available"],
        "{}",
        net.dump(XFED)
    );
    assert_eq!(status_of(&got[1]), None, "public-unverified sees no note");
}

#[test]
fn expiry_of_a_publication_sends_unavailable() {
    let mut net = network("federated");
    published(&mut net, None, 60, OPEN_NOTE);
    presence(&mut net, BOB, ALICE, "subscribe");
    assert_eq!(kinds(&presences_to(&net, BOB)), ["subscribed", "available"]);
    net.advance(Duration::from_secs(59));
    assert_eq!(presences_to(&net, BOB).len(), 2, "not before it expires");
    net.advance(Duration::from_secs(2));
    assert_eq!(
        kinds(&presences_to(&net, BOB)),
        ["subscribed", "available", "unavailable"],
        "{}",
        net.dump(XFED)
    );
    assert!(net.nodes[XFED]
        .persisted
        .iter()
        .any(|p| matches!(p, Persist::DeletePublication { aor, .. } if aor == ALICE)));
}

/// baresip 1.0's document: open, an empty RPID person, no note.
const BARESIP_OPEN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\r\n\
<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\r\n\
    xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"\r\n\
    xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\"\r\n\
    entity=\"sip:alice@xfed.test\">\r\n\
  <dm:person id=\"p4159\"><rpid:activities/></dm:person>\r\n\
  <tuple id=\"t4109\">\r\n\
    <status>\r\n\
      <basic>open</basic>\r\n\
    </status>\r\n\
    <contact>sip:alice@xfed.test</contact>\r\n\
  </tuple>\r\n\
</presence>\r\n";

/// Watchers hear of changes only. baresip 1.0 PUBLISHes twice when it
/// starts (a timer and the REGISTER's success), both initial, and keeps
/// the second entity-tag: the first publication lives, unrefreshed, until
/// it expires. Neither the second PUBLISH, nor that expiry, nor a
/// modification to the same document changes what a watcher sees, so
/// none of them sends a presence; a real change still does, and the
/// expiry of a closed publication after it does not.
#[test]
fn watchers_hear_only_changes() {
    let mut net = network("federated");
    presence(&mut net, BOB, ALICE, "subscribe");
    assert_eq!(
        kinds(&presences_to(&net, BOB)),
        ["subscribed", "unavailable"]
    );
    published(&mut net, None, 60, BARESIP_OPEN);
    let kept = published(&mut net, None, 120, BARESIP_OPEN);
    assert_eq!(
        kinds(&presences_to(&net, BOB)),
        ["subscribed", "unavailable", "available"],
        "the second device says the same\n{}",
        net.dump(XFED)
    );
    net.advance(Duration::from_secs(61));
    assert!(net.nodes[XFED]
        .persisted
        .iter()
        .any(|p| matches!(p, Persist::DeletePublication { aor, .. } if aor == ALICE)));
    let kept = published(&mut net, Some(&kept), 120, BARESIP_OPEN);
    assert_eq!(
        kinds(&presences_to(&net, BOB)),
        ["subscribed", "unavailable", "available"],
        "the first expired, the second modified to the same\n{}",
        net.dump(XFED)
    );
    published(&mut net, Some(&kept), 60, CLOSED);
    net.advance(Duration::from_secs(61));
    assert_eq!(
        kinds(&presences_to(&net, BOB)),
        ["subscribed", "unavailable", "available", "unavailable"],
        "{}",
        net.dump(XFED)
    );
}

#[test]
fn unsubscribe_stops_updates() {
    let mut net = network("federated");
    let tag = published(&mut net, None, 3600, OPEN_NOTE);
    presence(&mut net, BOB, ALICE, "subscribe");
    presence(&mut net, BOB, ALICE, "unsubscribe");
    let got = presences_to(&net, BOB);
    assert_eq!(
        kinds(&got),
        ["subscribed", "available", "unavailable", "unsubscribed"]
    );
    assert!(net.nodes[XFED].persisted.iter().any(|p| matches!(p,
        Persist::DeleteAuthorization { remote_jid, .. } if remote_jid == BOB)));
    published(&mut net, Some(&tag), 3600, CLOSED);
    assert_eq!(
        presences_to(&net, BOB).len(),
        4,
        "no presence after unsubscribe"
    );
    presence(&mut net, BOB, ALICE, "probe");
    assert_eq!(
        kinds(&presences_to(&net, BOB)).last().map(String::as_str),
        Some("unsubscribed")
    );
}

#[test]
fn restart_keeps_the_authorization_and_the_publication() {
    let toml = config("federated", "", "");
    let mut net = network_of(&toml);
    let tag = published(&mut net, None, 3600, OPEN_NOTE);
    presence(&mut net, BOB, ALICE, "subscribe");
    let mut store = MemoryStore::new();
    store.apply(&net.nodes[XFED].persisted).expect("store");

    net.advance(Duration::from_secs(10));
    net.restart_sip(XFED, &toml, &mut store);
    let before = presences_to(&net, BOB).len();
    presence(&mut net, BOB, ALICE, "probe");
    let got = presences_to(&net, BOB);
    assert_eq!(got.len(), before + 1, "{}", net.dump(XFED));
    assert_eq!(got[before].attr("type"), None);
    assert_eq!(status_of(&got[before]).as_deref(), Some("In the lab"));
    // The publication's entity-tag is still good, and bob still watches.
    published(&mut net, Some(&tag), 3600, CLOSED);
    assert_eq!(
        kinds(&presences_to(&net, BOB)).last().map(String::as_str),
        Some("unavailable")
    );
}

#[test]
fn publish_with_an_unknown_etag_gets_412() {
    let mut net = network("federated");
    published(&mut net, None, 3600, OPEN_NOTE);
    let r = publish(&mut net, Some("no-such-tag"), 3600, "");
    assert_eq!(r.status, 412, "{r:?}");
    let r = publish(&mut net, None, 10, OPEN_NOTE);
    assert_eq!((r.status, r.headers.get("Min-Expires")), (423, Some("60")));
    let r = as_alice(
        &mut net,
        "PUBLISH",
        "sip:alice@xfed.test",
        &[("Event", "dialog".to_owned())],
        "",
    );
    assert_eq!(r.status, 489);
    let r = exchange(
        &mut net,
        &request("OPTIONS", "sip:xfed.test", "alice", &[], ""),
    );
    assert!(
        r.headers
            .get("Allow")
            .is_some_and(|a| a.contains("PUBLISH")),
        "{r:?}"
    );
}

#[test]
fn a_user_without_xmpp_access_is_unsubscribed() {
    let toml = config(
        "federated",
        "",
        "[[access]]\nusers = [\"alice@*\"]\nxmpp = true\n",
    );
    let mut net = network_of(&toml);
    presence(&mut net, BOB, "carol@xfed.test", "subscribe");
    presence(&mut net, BOB, "nobody@xfed.test", "subscribe");
    let carol = presences_to(&net, BOB);
    assert_eq!(
        kinds(&carol),
        ["unsubscribed", "unsubscribed"],
        "same answer for both"
    );
    assert_eq!(net.nodes[XFED].gw.sip_tables().watchers, 0);
}

#[test]
fn a_subscription_storm_from_one_domain_stays_bounded() {
    let toml = config("public-unverified", "max_watchers = 5\n", "");
    let mut net = network_of(&toml);
    published(&mut net, None, 3600, OPEN_NOTE);
    for i in 0..200 {
        presence(&mut net, &format!("u{i}@remote.test"), ALICE, "subscribe");
    }
    assert_eq!(net.nodes[XFED].gw.sip_tables().watchers, 5);
    let errors = net
        .stanzas_received(REMOTE)
        .into_iter()
        .filter(|e| e.name() == "presence" && e.attr("type") == Some("error"))
        .count();
    assert_eq!(errors, 195, "every refusal answered");
    let refused = net.nodes[XFED]
        .events
        .iter()
        .filter(|e| matches!(e, Event::SubscriptionRefused { limit: true, .. }))
        .count();
    assert!((1..=20).contains(&refused), "{refused} warnings logged");
    // The rest are counted, in the line before the domain's next one.
    net.advance(Duration::from_secs(61));
    presence(&mut net, "late@remote.test", ALICE, "subscribe");
    assert!(net.saw(
        XFED,
        |e| matches!(e, Event::Suppressed { count, .. } if *count >= 170)
    ));
}
