//! The SIP side of the gateway role, in memory: two nodes (xfed.test, with
//! the built-in registrar and SIP user agents simulated by UDP datagrams,
//! and remote.test, a plain XMPP node) on a simulated network and clock.
//! Every test asserts what goes over the wire: the SIP responses and
//! requests xfed sends, and the stanzas that reach the XMPP side.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use xfed_core::registrar::digest::{Algorithm, Challenge};
use xfed_core::sim::{Net, NodeSpec, Zone};
use xfed_core::sip::{parse_datagram, Limits, Message, Request, Response};
use xfed_core::store::{Persist, Shared};
use xfed_core::xml::{ns, Element};
use xfed_core::xmpp::stanza::{self, StanzaCondition};
use xfed_core::{Event, Listener};

const XFED: usize = 0;
const REMOTE: usize = 1;

const ALICE_PW: &str = "alice-password";
const CAROL_PW: &str = "carol-password";

const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";

/// The base configuration of xfed.test; tests append `[[access]]` and
/// `[[partner]]` tables.
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

const FEDERATED: &str = r#"
[[partner]]
domain = "remote.test"
type = "federated"
"#;

fn ua(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], 5060))
}

/// Alice's phone, alice's laptop, carol's phone.
fn alice_ua() -> SocketAddr {
    ua(10)
}
fn alice_ua2() -> SocketAddr {
    ua(11)
}
fn carol_ua() -> SocketAddr {
    ua(12)
}

/// xfed.test with SIP configured by `extra` (after [`BASE`]), remote.test
/// without TLS so that what it receives can be read.
fn network(extra: &str) -> Net {
    let mut remote = NodeSpec::new("remote.test");
    remote.tls = false;
    let mut net = Net::new(&[NodeSpec::new("xfed.test"), remote]);
    net.enable_sip(XFED, &format!("{BASE}{extra}"));
    net.record_stanzas(REMOTE);
    net
}

/// As [`network`] with [`FEDERATED`], `gateway` lines added to
/// `[gateway]` and `sip` lines to `[sip]`.
fn network_with(gateway: &str, sip: &str) -> Net {
    let mut remote = NodeSpec::new("remote.test");
    remote.tls = false;
    let mut net = Net::new(&[NodeSpec::new("xfed.test"), remote]);
    let base = BASE
        .replace("[gateway]\n", &format!("[gateway]\n{gateway}"))
        .replace("[sip]\n", &format!("[sip]\n{sip}"));
    net.enable_sip(XFED, &format!("{base}{FEDERATED}"));
    net.record_stanzas(REMOTE);
    net
}

/// Unique numbers for branches, tags and CSeqs (increasing, so that a
/// registrar never sees an out-of-order request).
fn next() -> u32 {
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A request from the user agent at `from_ua`, with a correct
/// Content-Length.
#[allow(clippy::too_many_arguments)]
fn request(
    method: &str,
    ruri: &str,
    from_ua: SocketAddr,
    from: &str,
    to: &str,
    call_id: &str,
    extra: &[(&str, String)],
    body: &str,
) -> Vec<u8> {
    let n = next();
    let mut s = format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from_ua};branch=z9hG4bK-ua-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <{from}>;tag=ua{n}\r\n\
         To: <{to}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {n} {method}\r\n"
    );
    for (name, value) in extra {
        s.push_str(&format!("{name}: {value}\r\n"));
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.into_bytes()
}

fn parse(bytes: &[u8]) -> Message {
    parse_datagram(bytes, &Limits::default()).unwrap_or_else(|e| {
        panic!(
            "xfed sent unparsable SIP ({e}):\n{}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// What xfed sent to `peer` since the last call: (requests, responses).
fn take(net: &mut Net, peer: SocketAddr) -> (Vec<Request>, Vec<Response>) {
    let mut reqs = Vec::new();
    let mut resps = Vec::new();
    for d in net.take_datagrams(XFED, peer) {
        match parse(&d) {
            Message::Request(r) => reqs.push(r),
            Message::Response(r) => resps.push(r),
        }
    }
    (reqs, resps)
}

/// Sends `bytes` from `peer` and returns the one response xfed answers with.
fn exchange(net: &mut Net, peer: SocketAddr, bytes: &[u8]) -> Response {
    net.sip_datagram(XFED, peer, bytes);
    let (reqs, mut resps) = take(net, peer);
    assert!(reqs.is_empty(), "unexpected requests: {reqs:?}");
    assert_eq!(resps.len(), 1, "{resps:?}\n{}", net.dump(XFED));
    resps.remove(0)
}

/// The challenges of a 401/407, in order.
fn challenges(r: &Response, header: &str) -> Vec<Challenge> {
    r.headers
        .get_all(header)
        .map(|v| Challenge::parse(v).expect("a digest challenge"))
        .collect()
}

/// Builds a request, given the credentials header (name, value) to add.
type Build<'a> = dyn Fn(Option<(&str, String)>) -> Vec<u8> + 'a;

/// Sends a request built by `build(credentials)` without credentials,
/// expects the challenge (`401`/`WWW-Authenticate` for REGISTER, `407`/
/// `Proxy-Authenticate` otherwise), answers its SHA-256 challenge as
/// `user`/`password`, and returns the final response.
fn with_digest(
    net: &mut Net,
    peer: SocketAddr,
    method: &str,
    ruri: &str,
    user: &str,
    password: &str,
    build: &Build,
) -> Response {
    let (status, challenge_header, answer_header) = if method == "REGISTER" {
        (401, "WWW-Authenticate", "Authorization")
    } else {
        (407, "Proxy-Authenticate", "Proxy-Authorization")
    };
    let first = exchange(net, peer, &build(None));
    assert_eq!(first.status, status, "{first:?}\n{}", net.dump(XFED));
    let c = challenges(&first, challenge_header)
        .into_iter()
        .find(|c| c.algorithm == Algorithm::Sha256)
        .expect("a SHA-256 challenge");
    let auth = c.answer(user, password, method, ruri, "0a4f113b", 1);
    net.sip_datagram(
        XFED,
        peer,
        &build(Some((answer_header, auth.header_value()))),
    );
    let (reqs, mut resps) = take(net, peer);
    assert!(reqs.is_empty(), "{reqs:?}");
    assert_eq!(resps.len(), 1, "{resps:?}\n{}", net.dump(XFED));
    resps.remove(0)
}

/// REGISTER of `user`'s contact at `peer` for `expires` seconds,
/// authenticated as `auth_user`/`password`.
fn register_as(
    net: &mut Net,
    peer: SocketAddr,
    user: &str,
    auth_user: &str,
    password: &str,
    expires: u32,
) -> Response {
    let aor = format!("sip:{user}@xfed.test");
    let contact = format!("<sip:{user}@{peer}>");
    let call_id = format!("reg-{user}-{peer}");
    with_digest(
        net,
        peer,
        "REGISTER",
        "sip:xfed.test",
        auth_user,
        password,
        &|auth| {
            let mut extra = vec![
                ("Contact", contact.clone()),
                ("Expires", expires.to_string()),
            ];
            extra.extend(auth);
            request(
                "REGISTER",
                "sip:xfed.test",
                peer,
                &aor,
                &aor,
                &call_id,
                &extra,
                "",
            )
        },
    )
}

fn register(net: &mut Net, peer: SocketAddr, user: &str, password: &str) -> Response {
    let r = register_as(net, peer, user, user, password, 3600);
    assert_eq!(r.status, 200, "{r:?}\n{}", net.dump(XFED));
    r
}

/// An authenticated MESSAGE from `user` at `peer` to `to`, with
/// `content_type` and `extra` headers; returns the final response.
#[allow(clippy::too_many_arguments)]
fn sip_message(
    net: &mut Net,
    peer: SocketAddr,
    user: &str,
    password: &str,
    to: &str,
    content_type: &str,
    extra: &[(&str, String)],
    body: &str,
) -> Response {
    let from = format!("sip:{user}@xfed.test");
    let call_id = format!("im-{}@ua", next());
    with_digest(net, peer, "MESSAGE", to, user, password, &|auth| {
        let mut headers: Vec<(&str, String)> = vec![("Content-Type", content_type.to_owned())];
        headers.extend(extra.iter().cloned());
        headers.extend(auth);
        request("MESSAGE", to, peer, &from, to, &call_id, &headers, body)
    })
}

/// A message from remote.test (plain XMPP) to `to`.
fn xmpp_message(net: &mut Net, from: &str, to: &str, id: &str, inner: &str) {
    net.send(
        REMOTE,
        &format!(
            "<message xmlns='jabber:server' from='{from}' to='{to}' id='{id}'>{inner}</message>"
        ),
    );
}

/// The one MESSAGE xfed sent to `peer`.
fn one_request(net: &mut Net, peer: SocketAddr) -> Request {
    let (mut reqs, resps) = take(net, peer);
    assert!(resps.is_empty(), "{resps:?}");
    assert_eq!(reqs.len(), 1, "{reqs:?}\n{}", net.dump(XFED));
    reqs.remove(0)
}

/// The user agent's answer to a request xfed sent.
fn answer(net: &mut Net, peer: SocketAddr, req: &Request, status: u16, extra: &[(&str, &str)]) {
    let mut r = req.response(status, "uas-tag");
    for (n, v) in extra {
        r.headers.push(n, *v);
    }
    net.sip_datagram(XFED, peer, &r.to_bytes());
}

/// The stanzas remote.test's inbox got with `id`.
fn inbox_with_id(net: &Net, id: &str) -> Vec<Element> {
    net.nodes[REMOTE]
        .inbox
        .iter()
        .filter(|e| e.attr("id") == Some(id))
        .cloned()
        .collect()
}

/// The one error remote.test got back for message `id`: (condition, type).
fn error_back(net: &Net, id: &str) -> (StanzaCondition, String) {
    let got = inbox_with_id(net, id);
    assert_eq!(
        got.len(),
        1,
        "{got:?}\nxfed:\n{}\nremote:\n{}",
        net.dump(XFED),
        net.dump(REMOTE)
    );
    let e = &got[0];
    assert_eq!(e.name(), "message");
    assert_eq!(e.attr("type"), Some("error"));
    assert_eq!(e.attr("to"), Some("bob@remote.test/phone"), "{e:?}");
    let cond = stanza::error_condition(e).expect("a condition");
    let ty = e
        .child(ns::SERVER, "error")
        .and_then(|x| x.attr("type"))
        .unwrap_or_default()
        .to_owned();
    (cond, ty)
}

/// The messages remote.test received over its streams.
fn messages_at_remote(net: &Net) -> Vec<Element> {
    net.stanzas_received(REMOTE)
        .into_iter()
        .filter(|e| e.name() == "message")
        .collect()
}

fn text_of(e: &Element, name: &str) -> Option<String> {
    e.child(ns::SERVER, name).map(|c| c.text().into_owned())
}

fn binding_persisted(net: &Net, contact: &str) -> bool {
    net.nodes[XFED].persisted.iter().any(|p| {
        matches!(p, Persist::InsertBinding(b) | Persist::UpdateBinding(b)
            if b.aor == "alice@xfed.test" && b.contact == contact)
    })
}

fn contacts_of(r: &Response) -> Vec<String> {
    let mut v: Vec<String> = r.headers.get_all("Contact").map(str::to_owned).collect();
    v.sort();
    v
}

// ---- 1. registrar ----

#[test]
fn register_challenge_offers_sha256_then_md5() {
    let mut net = network(FEDERATED);
    let bytes = request(
        "REGISTER",
        "sip:xfed.test",
        alice_ua(),
        "sip:alice@xfed.test",
        "sip:alice@xfed.test",
        "reg-1",
        &[("Contact", format!("<sip:alice@{}>", alice_ua()))],
        "",
    );
    let r = exchange(&mut net, alice_ua(), &bytes);
    assert_eq!((r.status, r.reason.as_str()), (401, "Unauthorized"));
    assert!(r
        .headers
        .get("To")
        .is_some_and(|t| t.starts_with("<sip:alice@xfed.test>;tag=")));
    let c = challenges(&r, "WWW-Authenticate");
    let algs: Vec<Algorithm> = c.iter().map(|c| c.algorithm).collect();
    assert_eq!(algs, [Algorithm::Sha256, Algorithm::Md5]);
    for c in &c {
        assert_eq!(c.realm, "xfed.test");
        assert!(c.offers_auth(), "{c:?}");
        assert!(!c.stale);
        assert!(!c.nonce.is_empty());
    }
    // A 401 binds nothing.
    assert!(net.nodes[XFED].persisted.is_empty());
}

/// `sip.digest_algorithms` decides which challenges REGISTER (401),
/// MESSAGE, SUBSCRIBE and PUBLISH (407) get and in which order (RFC 8760
/// section 2.3), and an answer in an algorithm it leaves out is refused.
#[test]
fn challenge_order_follows_digest_algorithms() {
    use Algorithm::{Md5, Sha256};
    let aor = "sip:alice@xfed.test";
    let register = |auth: Option<(&str, String)>| {
        let mut extra = vec![("Contact", format!("<sip:alice@{}>", alice_ua()))];
        extra.extend(auth);
        request(
            "REGISTER",
            "sip:xfed.test",
            alice_ua(),
            aor,
            aor,
            "reg-order",
            &extra,
            "",
        )
    };
    // Unauthenticated requests of each method, and the header their
    // challenges come in.
    let unauthenticated = || {
        [
            (register(None), "WWW-Authenticate"),
            (
                request(
                    "MESSAGE",
                    "sip:bob@remote.test",
                    alice_ua(),
                    aor,
                    "sip:bob@remote.test",
                    "im-order",
                    &[("Content-Type", "text/plain".to_owned())],
                    "hello",
                ),
                "Proxy-Authenticate",
            ),
            (
                request(
                    "SUBSCRIBE",
                    "sip:bob@remote.test",
                    alice_ua(),
                    aor,
                    "sip:bob@remote.test",
                    "sub-order",
                    &[
                        ("Event", "presence".to_owned()),
                        ("Contact", format!("<sip:alice@{}>", alice_ua())),
                    ],
                    "",
                ),
                "Proxy-Authenticate",
            ),
            (
                request(
                    "PUBLISH",
                    aor,
                    alice_ua(),
                    aor,
                    aor,
                    "pub-order",
                    &[("Event", "presence".to_owned())],
                    "",
                ),
                "Proxy-Authenticate",
            ),
        ]
    };
    for (sip, want) in [
        ("", &[Sha256, Md5][..]),
        (
            "digest_algorithms = [\"MD5\", \"SHA-256\"]\n",
            &[Md5, Sha256],
        ),
        ("digest_algorithms = [\"SHA-256\"]\n", &[Sha256]),
        ("digest_algorithms = [\"MD5\"]\n", &[Md5]),
    ] {
        let mut net = network_with("", sip);
        for (bytes, header) in unauthenticated() {
            let r = exchange(&mut net, alice_ua(), &bytes);
            let algs: Vec<Algorithm> = challenges(&r, header).iter().map(|c| c.algorithm).collect();
            assert_eq!(algs, want, "{sip:?}, {header} of {r:?}");
        }
        // A client taking the topmost challenge registers with it.
        let first = exchange(&mut net, alice_ua(), &register(None));
        let top = challenges(&first, "WWW-Authenticate").remove(0);
        assert_eq!(top.algorithm, want[0]);
        let auth = top.answer("alice", ALICE_PW, "REGISTER", "sip:xfed.test", "c1", 1);
        let r = exchange(
            &mut net,
            alice_ua(),
            &register(Some(("Authorization", auth.header_value()))),
        );
        assert_eq!(r.status, 200, "{sip:?}: {r:?}\n{}", net.dump(XFED));
        // An algorithm left out is refused even with the right password.
        if let [only] = want {
            let first = exchange(&mut net, alice_ua(), &register(None));
            let mut other = challenges(&first, "WWW-Authenticate").remove(0);
            other.algorithm = if *only == Md5 { Sha256 } else { Md5 };
            let auth = other.answer("alice", ALICE_PW, "REGISTER", "sip:xfed.test", "c2", 1);
            let r = exchange(
                &mut net,
                alice_ua(),
                &register(Some(("Authorization", auth.header_value()))),
            );
            assert_eq!(
                (r.status, r.reason.as_str()),
                (400, "Bad Authorization"),
                "{sip:?}"
            );
        }
    }
}

#[test]
fn register_with_digest_binds_the_contact() {
    let mut net = network(FEDERATED);
    let r = register_as(&mut net, alice_ua(), "alice", "alice", ALICE_PW, 600);
    assert_eq!(
        (r.status, r.reason.as_str()),
        (200, "OK"),
        "{}",
        net.dump(XFED)
    );
    assert_eq!(contacts_of(&r), ["<sip:alice@192.0.2.10:5060>;expires=600"]);
    assert!(r
        .headers
        .get("CSeq")
        .is_some_and(|c| c.ends_with(" REGISTER")));
    assert!(
        binding_persisted(&net, "sip:alice@192.0.2.10:5060"),
        "{:?}",
        net.nodes[XFED].persisted
    );
    assert!(net.saw(XFED, |e| matches!(e,
        Event::Registered { aor, bindings: 1, .. } if aor == "alice@xfed.test")));

    // The MD5 challenge works too (RFC 8760 keeps MD5 for old clients).
    let aor = "sip:alice@xfed.test";
    let build = |auth: Option<(&str, String)>| {
        let mut extra = vec![
            ("Contact", format!("<sip:alice@{}>", alice_ua())),
            ("Expires", "600".to_owned()),
        ];
        extra.extend(auth);
        request(
            "REGISTER",
            "sip:xfed.test",
            alice_ua(),
            aor,
            aor,
            "reg-md5",
            &extra,
            "",
        )
    };
    let first = exchange(&mut net, alice_ua(), &build(None));
    let md5 = challenges(&first, "WWW-Authenticate")
        .into_iter()
        .find(|c| c.algorithm == Algorithm::Md5)
        .unwrap();
    let auth = md5.answer("alice", ALICE_PW, "REGISTER", "sip:xfed.test", "c1", 1);
    let r = exchange(
        &mut net,
        alice_ua(),
        &build(Some(("Authorization", auth.header_value()))),
    );
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn register_with_a_wrong_password_is_forbidden() {
    let mut net = network(FEDERATED);
    let r = register_as(
        &mut net,
        alice_ua(),
        "alice",
        "alice",
        "not-the-password",
        600,
    );
    assert_eq!((r.status, r.reason.as_str()), (403, "Forbidden"));
    assert!(r.headers.get("Contact").is_none());
    assert!(net.nodes[XFED].persisted.is_empty());
    assert!(net.saw(XFED, |e| matches!(e,
        Event::SipRefused { peer, detail, .. }
        if peer.to_string() == "192.0.2.10:5060" && detail.contains("as alice@xfed.test: 403"))));
}

#[test]
fn nobody_registers_as_someone_else() {
    let mut net = network(FEDERATED);
    // Carol's own credentials, To alice.
    let r = register_as(&mut net, carol_ua(), "alice", "carol", CAROL_PW, 600);
    assert_eq!(
        (r.status, r.reason.as_str()),
        (403, "Username Does Not Match Address of Record")
    );
    assert!(net.nodes[XFED].persisted.is_empty());
    // An account that does not exist gets the same 403 as a bad password.
    let r = register_as(&mut net, carol_ua(), "mallory", "mallory", "x", 600);
    assert_eq!((r.status, r.reason.as_str()), (403, "Forbidden"));
    // A REGISTER for another domain is refused outright.
    let bytes = request(
        "REGISTER",
        "sip:elsewhere.test",
        carol_ua(),
        "sip:carol@elsewhere.test",
        "sip:carol@elsewhere.test",
        "reg-x",
        &[("Contact", format!("<sip:carol@{}>", carol_ua()))],
        "",
    );
    let r = exchange(&mut net, carol_ua(), &bytes);
    assert_eq!((r.status, r.reason.as_str()), (403, "Domain Not Served"));
}

#[test]
fn several_contacts_and_expires_zero() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    let r = register(&mut net, alice_ua2(), "alice", ALICE_PW);
    assert_eq!(
        contacts_of(&r),
        [
            "<sip:alice@192.0.2.10:5060>;expires=3600",
            "<sip:alice@192.0.2.11:5060>;expires=3600"
        ]
    );
    assert!(binding_persisted(&net, "sip:alice@192.0.2.10:5060"));
    assert!(binding_persisted(&net, "sip:alice@192.0.2.11:5060"));

    // The laptop leaves: Expires 0 removes its binding only.
    let r = register_as(&mut net, alice_ua2(), "alice", "alice", ALICE_PW, 0);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        contacts_of(&r),
        ["<sip:alice@192.0.2.10:5060>;expires=3600"]
    );
    assert!(
        net.nodes[XFED].persisted.iter().any(|p| matches!(p,
            Persist::DeleteBinding { aor, .. } if aor == "alice@xfed.test")),
        "{:?}",
        net.nodes[XFED].persisted
    );
    // Messages now go to the phone only.
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<body>hi</body>",
    );
    let req = one_request(&mut net, alice_ua());
    assert_eq!(req.uri.to_string(), "sip:alice@192.0.2.10:5060");
    assert!(take(&mut net, alice_ua2()).0.is_empty());
}

#[test]
fn bindings_expire() {
    let mut net = network(FEDERATED);
    register_as(&mut net, alice_ua(), "alice", "alice", ALICE_PW, 60);
    net.advance(Duration::from_secs(61));
    assert!(
        net.nodes[XFED].persisted.iter().any(|p| matches!(p,
            Persist::DeleteBinding { aor, .. } if aor == "alice@xfed.test")),
        "{:?}",
        net.nodes[XFED].persisted
    );
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<body>hi</body>",
    );
    assert!(take(&mut net, alice_ua()).0.is_empty());
    // Expired is as good as never registered, and as no account at all.
    assert_eq!(
        error_back(&net, "m1").0,
        StanzaCondition::ServiceUnavailable
    );
}

// ---- 2. XMPP -> SIP ----

#[test]
fn xmpp_message_becomes_a_sip_message() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<subject>Verona</subject><body xml:lang='cs'>Ahoj, Julie</body><thread>thread-42</thread>",
    );
    let req = one_request(&mut net, alice_ua());
    assert_eq!(req.method.as_str(), "MESSAGE");
    assert_eq!(req.uri.to_string(), "sip:alice@192.0.2.10:5060");
    let h = &req.headers;
    let via = h.top_via().unwrap();
    assert_eq!(via.transport(), "UDP");
    assert!(via.branch().is_some_and(|b| b.starts_with("z9hG4bK")));
    assert_eq!(h.get("Max-Forwards"), Some("70"));
    let from = h.from().unwrap();
    assert_eq!(from.uri().to_string(), "sip:bob@remote.test;gr=phone");
    assert!(from.tag().is_some_and(|t| t.len() >= 8), "{from:?}");
    let to = h.to().unwrap();
    assert_eq!(to.uri().to_string(), "sip:alice@xfed.test");
    assert_eq!(to.tag(), None);
    assert_eq!(h.call_id().unwrap(), "thread-42");
    assert_eq!(h.cseq().unwrap().seq, 1);
    assert_eq!(h.get("Subject"), Some("Verona"));
    assert_eq!(h.get("Content-Language"), Some("cs"));
    assert_eq!(h.content_type(), Some("text/plain;charset=UTF-8"));
    assert!(
        h.get("Contact").is_none(),
        "RFC 3428: no Contact in MESSAGE"
    );
    assert_eq!(req.body, b"Ahoj, Julie");

    // 200: delivered, nothing goes back to XMPP.
    answer(&mut net, alice_ua(), &req, 200, &[]);
    net.advance(Duration::from_secs(40));
    assert!(
        inbox_with_id(&net, "m1").is_empty(),
        "{:?}",
        net.nodes[REMOTE].inbox
    );
    // No retransmission after the final response.
    assert!(take(&mut net, alice_ua()).0.is_empty());
}

/// Issue 8 (scaled down here): 20,000 credential-less REGISTERs a second from spoofed UDP
/// sources took RSS to 1.5 GB, each a server transaction kept 32 s for
/// Timer J. Requests that do not authenticate are answered statelessly:
/// every one gets its challenge (or 403, or 200 to OPTIONS) and nothing
/// stays; an authenticated one is still a transaction that absorbs its
/// retransmissions.
#[test]
fn requests_that_do_not_authenticate_keep_nothing() {
    let mut net = network(FEDERATED);
    for i in 0..5_000u32 {
        let peer = SocketAddr::from(([198, 51, (i >> 8) as u8, i as u8], 5060));
        let method = if i % 10 == 0 { "OPTIONS" } else { "REGISTER" };
        let bytes = request(
            method,
            "sip:xfed.test",
            peer,
            "sip:alice@xfed.test",
            "sip:alice@xfed.test",
            &format!("flood-{i}"),
            &[("Contact", format!("<sip:alice@{peer}>"))],
            "",
        );
        net.sip_datagram(XFED, peer, &bytes);
        let (_, responses) = take(&mut net, peer);
        let want = if method == "OPTIONS" { 200 } else { 401 };
        assert_eq!(
            responses.iter().map(|r| r.status).collect::<Vec<_>>(),
            [want],
            "request {i}"
        );
    }
    assert_eq!(net.nodes[XFED].gw.sip_tables().transactions, 0);
    // A retransmission of an unauthenticated request is challenged again.
    let bytes = request(
        "REGISTER",
        "sip:xfed.test",
        alice_ua(),
        "sip:alice@xfed.test",
        "sip:alice@xfed.test",
        "again",
        &[],
        "",
    );
    for _ in 0..2 {
        assert_eq!(exchange(&mut net, alice_ua(), &bytes).status, 401);
    }
    // Authenticated work is unaffected, and its transaction is kept
    // (Timer J) until it ends.
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    assert_eq!(net.nodes[XFED].gw.sip_tables().transactions, 1);
    net.advance(Duration::from_secs(33));
    assert_eq!(net.nodes[XFED].gw.sip_tables().transactions, 0);
}

/// Issue 8: the table of server transactions is bounded
/// (`sip.max_transactions`); beyond it a new request gets 503 with
/// Retry-After, statelessly, and service comes back as they end.
#[test]
fn a_full_transaction_table_answers_503() {
    let mut net = network_with("", "max_transactions = 3\n");
    for i in 0..3 {
        let r = sip_message(
            &mut net,
            alice_ua(),
            "alice",
            ALICE_PW,
            "sip:bob@remote.test",
            "text/plain",
            &[],
            &format!("message {i}"),
        );
        assert_eq!(r.status, 202, "{}", net.dump(XFED));
    }
    assert_eq!(net.nodes[XFED].gw.sip_tables().transactions, 3);
    let options = request(
        "OPTIONS",
        "sip:xfed.test",
        carol_ua(),
        "sip:carol@xfed.test",
        "sip:xfed.test",
        "busy",
        &[],
        "",
    );
    let r = exchange(&mut net, carol_ua(), &options);
    assert_eq!(r.status, 503);
    assert_eq!(r.headers.get("Retry-After"), Some("5"));
    assert_eq!(net.nodes[XFED].gw.sip_tables().transactions, 3);
    assert!(net.saw(XFED, |e| matches!(e,
        Event::LimitReached { key: "sip.max_transactions", detail, .. } if detail.contains("3 transactions"))));
    // Timer J ends them (32 s over UDP): served again.
    net.advance(Duration::from_secs(33));
    assert_eq!(exchange(&mut net, carol_ua(), &options).status, 200);
}

/// Issue 8: a MESSAGE of 3,000 `<` is 12 KB once escaped. A stanza over
/// `max_stanza_size` would make the peer close the stream (and lose what
/// follows), so it is refused with 413; one that fits goes through whole.
#[test]
fn a_message_too_large_once_escaped_gets_413() {
    let mut net = network_with("max_stanza_size = 10000\n", "");
    let send = |net: &mut Net, body: &str| {
        sip_message(
            net,
            alice_ua(),
            "alice",
            ALICE_PW,
            "sip:bob@remote.test",
            "text/plain",
            &[],
            body,
        )
    };
    let r = send(&mut net, &"<".repeat(3_000));
    assert_eq!(r.status, 413, "{}", net.dump(XFED));
    assert!(messages_at_remote(&net).is_empty());
    let fits = "<".repeat(2_000);
    assert_eq!(send(&mut net, &fits).status, 202);
    let got = messages_at_remote(&net);
    assert_eq!(got.len(), 1);
    assert_eq!(text_of(&got[0], "body").as_deref(), Some(fits.as_str()));
}

/// Issue 8: a UDP source address can be forged, so `sip.trusted`
/// addresses are trusted over TCP and TLS only, unless `trust_udp` says
/// otherwise.
#[test]
fn trusted_addresses_are_not_trusted_over_udp_unless_configured() {
    for trust_udp in [false, true] {
        let mut net = network_with(
            "",
            &format!("trusted = [\"192.0.2.10\"]\ntrust_udp = {trust_udp}\n"),
        );
        let register = |n: u32| {
            request(
                "REGISTER",
                "sip:xfed.test",
                alice_ua(),
                "sip:alice@xfed.test",
                "sip:alice@xfed.test",
                &format!("trust-{n}"),
                &[("Contact", format!("<sip:alice@{}>", alice_ua()))],
                "",
            )
        };
        let over_udp = exchange(&mut net, alice_ua(), &register(1)).status;
        assert_eq!(
            over_udp,
            if trust_udp { 200 } else { 401 },
            "trust_udp = {trust_udp}"
        );
        let conn = net.connect_from_outside(XFED, Listener::SipTcp, alice_ua());
        net.outside_send(XFED, conn, &register(2));
        let (bytes, _) = net.outside_take(XFED, conn);
        let Message::Response(r) = parse(&bytes) else {
            panic!("no response")
        };
        assert_eq!(r.status, 200, "over TCP, trust_udp = {trust_udp}");
    }
}

/// Issue 8: password guessing is slowed down. Five wrong digests from one
/// source and it is refused (503, Retry-After) without its credentials
/// being read, even the right ones, for a minute, then two; another
/// source is served; twenty against one account from anywhere block it.
#[test]
fn failed_digests_back_off() {
    let mut net = network(FEDERATED);
    for _ in 0..5 {
        let r = register_as(&mut net, alice_ua(), "alice", "alice", "guess", 600);
        assert_eq!(r.status, 403);
    }
    let r = register_as(&mut net, alice_ua(), "alice", "alice", ALICE_PW, 600);
    assert_eq!(r.status, 503, "{}", net.dump(XFED));
    assert_eq!(r.headers.get("Retry-After"), Some("60"));
    assert!(net.saw(XFED, |e| matches!(
        e,
        Event::LimitReached {
            key: "sip.max_auth_failures",
            ..
        }
    )));
    // Carol, elsewhere, is served.
    register(&mut net, carol_ua(), "carol", CAROL_PW);
    net.advance(Duration::from_secs(61));
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    // From many sources against one account.
    for i in 0..20u8 {
        let peer = SocketAddr::from(([198, 51, 100, i], 5060));
        assert_eq!(
            register_as(&mut net, peer, "carol", "carol", "guess", 600).status,
            403
        );
    }
    let r = register_as(&mut net, carol_ua(), "carol", "carol", CAROL_PW, 600);
    assert_eq!(r.status, 503);
}

/// Issue 8: composing states are kept only for conversations that are
/// not idle, and for at most 10,000 at once, however many senders a
/// partner invents.
#[test]
fn chat_states_are_bounded() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    let composing = format!("<composing xmlns='{CHATSTATES}'/>");
    xmpp_message(
        &mut net,
        "bob@remote.test/a",
        "alice@xfed.test",
        "c0",
        &composing,
    );
    let r = one_request(&mut net, alice_ua());
    answer(&mut net, alice_ua(), &r, 200, &[]);
    assert_eq!(net.nodes[XFED].gw.sip_tables().chat_states, 1);
    // A message ends it: nothing kept.
    xmpp_message(
        &mut net,
        "bob@remote.test/a",
        "alice@xfed.test",
        "m1",
        "<body>hi</body>",
    );
    let r = one_request(&mut net, alice_ua());
    answer(&mut net, alice_ua(), &r, 200, &[]);
    assert_eq!(net.nodes[XFED].gw.sip_tables().chat_states, 0);
    for i in 0..10_050 {
        xmpp_message(
            &mut net,
            &format!("u{i}@remote.test/a"),
            "alice@xfed.test",
            &format!("c{i}"),
            &composing,
        );
        let (reqs, _) = take(&mut net, alice_ua());
        for r in reqs {
            answer(&mut net, alice_ua(), &r, 200, &[]);
        }
    }
    assert_eq!(net.nodes[XFED].gw.sip_tables().chat_states, 10_000);
}

/// One canonical form for local users (issue 8: an account spoke as
/// another through a spelling of its name): `ALICE` and `%61lice` are
/// alice, who signs with her account's name; the binding is hers and her
/// messages come from alice@xfed.test. Carol cannot be `%61lice`.
#[test]
fn spellings_of_a_user_are_one_user() {
    let mut net = network(FEDERATED);
    let r = register_as(&mut net, alice_ua(), "ALICE", "alice", ALICE_PW, 600);
    assert_eq!(r.status, 200, "{r:?}\n{}", net.dump(XFED));
    assert!(binding_persisted(
        &net,
        &format!("sip:ALICE@{}", alice_ua())
    ));
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<body>found you</body>",
    );
    let req = one_request(&mut net, alice_ua());
    answer(&mut net, alice_ua(), &req, 200, &[]);
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        "sip:bob@remote.test",
        "text/plain",
        &[],
        "from alice",
    );
    assert_eq!(r.status, 202);
    // Carol's own credentials, From a spelling of alice: refused.
    let from = "sip:%61lice@xfed.test";
    let r = with_digest(
        &mut net,
        carol_ua(),
        "MESSAGE",
        "sip:bob@remote.test",
        "carol",
        CAROL_PW,
        &|auth| {
            let mut headers: Vec<(&str, String)> = vec![("Content-Type", "text/plain".to_owned())];
            headers.extend(auth);
            request(
                "MESSAGE",
                "sip:bob@remote.test",
                carol_ua(),
                from,
                "sip:bob@remote.test",
                "im-carol@ua",
                &headers,
                "I am alice",
            )
        },
    );
    assert_eq!(r.status, 403, "{r:?}");
    let got = messages_at_remote(&net);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attr("from"), Some("alice@xfed.test"));
}

/// Lync's EnableLoggingAllMessageBodies: bodies reach the log in both
/// directions when it is on, and never otherwise.
#[test]
fn message_bodies_are_logged_only_when_configured() {
    for on in [false, true] {
        let mut net = network_with(&format!("log_message_bodies = {on}\n"), "");
        register(&mut net, alice_ua(), "alice", ALICE_PW);
        xmpp_message(
            &mut net,
            "bob@remote.test/phone",
            "alice@xfed.test",
            "m1",
            "<body>BODY-TO-SIP</body>",
        );
        let req = one_request(&mut net, alice_ua());
        answer(&mut net, alice_ua(), &req, 200, &[]);
        let r = sip_message(
            &mut net,
            alice_ua(),
            "alice",
            ALICE_PW,
            "sip:bob@remote.test",
            "text/plain",
            &[],
            "BODY-TO-XMPP",
        );
        assert_eq!(r.status, 202, "{}", net.dump(XFED));
        for body in ["BODY-TO-SIP", "BODY-TO-XMPP"] {
            let logged = net.saw(
                XFED,
                |e| matches!(e, Event::Relayed { body: Some(b), .. } if b.contains(body)),
            );
            assert_eq!(logged, on, "{body}, log_message_bodies = {on}");
        }
    }
}

#[test]
fn a_thread_that_is_no_call_id_gets_a_fresh_one() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<body>x</body><thread>has spaces in it</thread>",
    );
    let req = one_request(&mut net, alice_ua());
    let call_id = req.headers.call_id().unwrap();
    assert_ne!(call_id, "has spaces in it");
    assert!(!call_id.is_empty());
}

#[test]
fn sip_busy_becomes_an_xmpp_error() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<body>hi</body>",
    );
    let req = one_request(&mut net, alice_ua());
    answer(&mut net, alice_ua(), &req, 486, &[]);
    // RFC 7247 Table 3: 486 -> recipient-unavailable (type wait).
    assert_eq!(
        error_back(&net, "m1"),
        (StanzaCondition::RecipientUnavailable, "wait".to_owned())
    );
    let e = &inbox_with_id(&net, "m1")[0];
    assert_eq!(e.attr("from"), Some("alice@xfed.test"));

    // 415 -> not-acceptable (modify); Retry-After makes any error wait.
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m2",
        "<body>hi</body>",
    );
    let req = one_request(&mut net, alice_ua());
    answer(&mut net, alice_ua(), &req, 415, &[]);
    assert_eq!(
        error_back(&net, "m2"),
        (StanzaCondition::NotAcceptable, "modify".to_owned())
    );
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m3",
        "<body>hi</body>",
    );
    let req = one_request(&mut net, alice_ua());
    answer(&mut net, alice_ua(), &req, 503, &[("Retry-After", "30")]);
    assert_eq!(
        error_back(&net, "m3"),
        (StanzaCondition::InternalServerError, "wait".to_owned())
    );
}

#[test]
fn no_answer_times_out_after_timer_f() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<body>anyone?</body>",
    );
    let first = one_request(&mut net, alice_ua());
    // Timer E retransmits over UDP; nothing is reported before Timer F.
    net.advance(Duration::from_secs(31));
    let (again, _) = take(&mut net, alice_ua());
    assert!(!again.is_empty(), "Timer E retransmissions");
    assert!(
        again.iter().all(|r| r == &first),
        "retransmissions are identical"
    );
    assert!(inbox_with_id(&net, "m1").is_empty());
    net.advance(Duration::from_secs(2));
    // A device that never answers says no more than a missing account.
    assert_eq!(
        error_back(&net, "m1"),
        (StanzaCondition::ServiceUnavailable, "cancel".to_owned())
    );
}

/// RFC 6121 section 8.5: a remote sender cannot tell a missing account
/// from one that is offline (issue 8: accounts could be enumerated).
#[test]
fn unknown_and_unregistered_users_look_alike() {
    let mut net = network(FEDERATED);
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "nobody@xfed.test",
        "m1",
        "<body>hi</body>",
    );
    // carol has an account but no binding.
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "carol@xfed.test",
        "m2",
        "<body>hi</body>",
    );
    let error_of = |id: &str| {
        let e = inbox_with_id(&net, id);
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].child(ns::SERVER, "error").cloned().expect("an error")
    };
    assert_eq!(error_of("m1"), error_of("m2"));
    assert_eq!(
        error_back(&net, "m1"),
        (StanzaCondition::ServiceUnavailable, "cancel".to_owned())
    );
    assert!(net.nodes[XFED].datagrams.is_empty());
}

#[test]
fn one_message_in_flight_per_destination() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    for (id, body) in [("m1", "one"), ("m2", "two"), ("m3", "three")] {
        xmpp_message(
            &mut net,
            "bob@remote.test/phone",
            "alice@xfed.test",
            id,
            &format!("<body>{body}</body>"),
        );
    }
    // RFC 3428: the second waits until the first is answered.
    let r1 = one_request(&mut net, alice_ua());
    assert_eq!(r1.body, b"one");
    answer(&mut net, alice_ua(), &r1, 200, &[]);
    let r2 = one_request(&mut net, alice_ua());
    assert_eq!(r2.body, b"two");
    assert_ne!(
        r1.headers.top_via().unwrap().branch(),
        r2.headers.top_via().unwrap().branch()
    );
    // An error answer also lets the next one go, and is reported.
    answer(&mut net, alice_ua(), &r2, 480, &[]);
    assert_eq!(
        error_back(&net, "m2").0,
        StanzaCondition::ServiceUnavailable
    );
    let r3 = one_request(&mut net, alice_ua());
    assert_eq!(r3.body, b"three");
    answer(&mut net, alice_ua(), &r3, 200, &[]);
    assert!(take(&mut net, alice_ua()).0.is_empty());
    assert!(inbox_with_id(&net, "m1").is_empty());
    assert!(inbox_with_id(&net, "m3").is_empty());
}

#[test]
fn a_message_forks_to_every_device() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    register(&mut net, alice_ua2(), "alice", ALICE_PW);
    let send = |net: &mut Net, id: &str, body: &str| {
        xmpp_message(
            net,
            "bob@remote.test/phone",
            "alice@xfed.test",
            id,
            &format!("<body>{body}</body>"),
        );
    };

    // Both devices get the MESSAGE: their own Request-URI, one Call-ID,
    // a branch each.
    send(&mut net, "m1", "one");
    let phone = one_request(&mut net, alice_ua());
    let laptop = one_request(&mut net, alice_ua2());
    assert_eq!(phone.uri.to_string(), "sip:alice@192.0.2.10:5060");
    assert_eq!(laptop.uri.to_string(), "sip:alice@192.0.2.11:5060");
    assert_eq!(
        (&phone.body[..], &laptop.body[..]),
        (&b"one"[..], &b"one"[..])
    );
    assert_eq!(phone.headers.call_id().ok(), laptop.headers.call_id().ok());
    assert_ne!(
        phone.headers.top_via().unwrap().branch(),
        laptop.headers.top_via().unwrap().branch()
    );
    // The laptop's 200 settles it: the phone's later 480 is not reported.
    answer(&mut net, alice_ua2(), &laptop, 200, &[]);
    answer(&mut net, alice_ua(), &phone, 480, &[]);
    assert!(inbox_with_id(&net, "m1").is_empty());

    // Both refuse: the 6xx wins over the 4xx, whatever the order.
    send(&mut net, "m2", "two");
    let phone = one_request(&mut net, alice_ua());
    let laptop = one_request(&mut net, alice_ua2());
    answer(&mut net, alice_ua(), &phone, 486, &[]);
    assert!(
        inbox_with_id(&net, "m2").is_empty(),
        "wait for every branch"
    );
    answer(&mut net, alice_ua2(), &laptop, 603, &[]);
    let expected = xfed_core::translate::sip_to_xmpp(603, false).0;
    assert_eq!(error_back(&net, "m2").0, expected);

    // A device that never answers does not hold the next message back:
    // the phone's 200 settles m3 and m4 goes out at once, to both.
    send(&mut net, "m3", "three");
    send(&mut net, "m4", "four");
    let phone = one_request(&mut net, alice_ua());
    let laptop = one_request(&mut net, alice_ua2());
    assert_eq!(
        (&phone.body[..], &laptop.body[..]),
        (&b"three"[..], &b"three"[..])
    );
    answer(&mut net, alice_ua(), &phone, 200, &[]);
    let phone = one_request(&mut net, alice_ua());
    assert_eq!(phone.body, b"four");
    let (again, _) = take(&mut net, alice_ua2());
    let bodies: Vec<&[u8]> = again.iter().map(|r| &r.body[..]).collect();
    // The laptop gets m4 (and UDP retransmissions of m3, unanswered).
    assert!(bodies.contains(&&b"four"[..]), "{bodies:?}");
    answer(&mut net, alice_ua(), &phone, 200, &[]);
    // m3's silent branch times out later: nothing goes back to bob.
    net.advance(Duration::from_secs(40));
    assert!(inbox_with_id(&net, "m3").is_empty());
    assert!(inbox_with_id(&net, "m4").is_empty());
}

// ---- 3. SIP -> XMPP ----

#[test]
fn sip_message_without_credentials_is_challenged() {
    let mut net = network(FEDERATED);
    let bytes = request(
        "MESSAGE",
        "sip:bob@remote.test",
        alice_ua(),
        "sip:alice@xfed.test",
        "sip:bob@remote.test",
        "im-1",
        &[("Content-Type", "text/plain".to_owned())],
        "hello",
    );
    let r = exchange(&mut net, alice_ua(), &bytes);
    assert_eq!(
        (r.status, r.reason.as_str()),
        (407, "Proxy Authentication Required")
    );
    let c = challenges(&r, "Proxy-Authenticate");
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].algorithm, Algorithm::Sha256);
    assert_eq!(c[0].realm, "xfed.test");
    assert!(messages_at_remote(&net).is_empty());
}

#[test]
fn sip_messages_reach_xmpp_as_chat_with_their_thread() {
    // type='chat' is what XMPP clients show in the conversation; RFC
    // 7572's default (normal) lands apart, or as a notification.
    let mut net = network(FEDERATED);
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        "sip:bob@remote.test",
        "text/plain",
        &[],
        "hello",
    );
    assert_eq!(r.status, 202, "{}", net.dump(XFED));
    let msgs = messages_at_remote(&net);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert_eq!(m.attr("type"), Some("chat"), "{m:?}");
    assert!(
        text_of(m, "thread").is_some_and(|t| t.starts_with("im-")),
        "{m:?}"
    );
    assert_eq!(text_of(m, "body").as_deref(), Some("hello"));
}

#[test]
fn sip_message_reaches_xmpp_and_gets_202_once_on_the_stream() {
    let mut net = network(FEDERATED);
    let ruri = "sip:bob@remote.test";
    let call_id = "call-7@ua";
    let build = |auth: Option<(&str, String)>| {
        let mut extra = vec![
            ("Content-Type", "text/plain".to_owned()),
            ("Subject", "Verona".to_owned()),
            ("Content-Language", "cs".to_owned()),
        ];
        extra.extend(auth);
        request(
            "MESSAGE",
            ruri,
            alice_ua(),
            "sip:alice@xfed.test",
            ruri,
            call_id,
            &extra,
            "Neither, fair saint",
        )
    };
    let first = exchange(&mut net, alice_ua(), &build(None));
    assert_eq!(first.status, 407);
    let c = challenges(&first, "Proxy-Authenticate").remove(0);
    let auth = c.answer("alice", ALICE_PW, "MESSAGE", ruri, "cn", 1);
    let bytes = build(Some(("Proxy-Authorization", auth.header_value())));

    // Hand the MESSAGE to xfed and move only xfed's outputs: remote.test
    // does not answer, so no stream to it can be ready.
    let (local, now) = (net.sip_addr(XFED), net.now);
    net.nodes[XFED]
        .gw
        .handle_datagram(local, alice_ua(), &bytes, now);
    let mut connected = false;
    while let Some(out) = net.nodes[XFED].gw.poll_output() {
        connected |= matches!(out, xfed_core::Output::Connect { .. });
        net.apply(XFED, out);
    }
    assert!(connected, "a route to remote.test is being set up");
    let (_, early) = take(&mut net, alice_ua());
    assert!(
        early.is_empty(),
        "no final response before the stanza is on a stream: {early:?}"
    );
    assert!(net
        .authenticated(XFED, false, "xfed.test", "remote.test")
        .is_none());

    // Now let the network run: the stream comes up, the stanza goes, 202.
    net.run();
    assert!(net
        .authenticated(XFED, false, "xfed.test", "remote.test")
        .is_some());
    let (_, resps) = take(&mut net, alice_ua());
    assert_eq!(resps.len(), 1, "{resps:?}\n{}", net.dump(XFED));
    let r = &resps[0];
    assert_eq!((r.status, r.reason.as_str()), (202, "Accepted"));
    assert!(r.body.is_empty() && r.headers.get("Contact").is_none());
    assert!(r.headers.to().unwrap().tag().is_some());
    assert_eq!(r.headers.call_id().unwrap(), call_id);

    let msgs = messages_at_remote(&net);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert_eq!(m.attr("from"), Some("alice@xfed.test"));
    assert_eq!(m.attr("to"), Some("bob@remote.test"));
    // Chat, not RFC 7572's normal: what XMPP clients show in the
    // conversation; the thread (the Call-ID) and <active/> with it.
    assert_eq!(m.attr("type"), Some("chat"));
    assert!(m.child(CHATSTATES, "active").is_some(), "{m:?}");
    assert_eq!(m.attr_ns(ns::XML, "lang"), Some("cs"));
    assert_eq!(text_of(m, "body").as_deref(), Some("Neither, fair saint"));
    assert_eq!(text_of(m, "subject").as_deref(), Some("Verona"));
    assert_eq!(text_of(m, "thread").as_deref(), Some(call_id));
    assert!(m.attr("id").is_some_and(|id| id.starts_with("sip-")));

    // remote.test has no SIP side and bounces it; the error arrives after
    // the 202 and is only logged.
    assert!(net.saw(XFED, |e| matches!(e,
        Event::MessageRefused { detail, .. }
        if detail.starts_with("XMPP error service-unavailable for stanza sip-"))));
    assert!(take(&mut net, alice_ua()).1.is_empty());

    // With the stream up, the next MESSAGE gets its 202 at once.
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        ruri,
        "text/plain",
        &[],
        "again",
    );
    assert_eq!(r.status, 202);
    let msgs = messages_at_remote(&net);
    assert_eq!(msgs.len(), 2);
    assert_eq!(text_of(&msgs[1], "body").as_deref(), Some("again"));
}

#[test]
fn sip_message_whose_route_fails_gets_the_mapped_error() {
    let mut xfed = NodeSpec::new("xfed.test");
    xfed.policies = vec![("closed.test", None)];
    let mut remote = NodeSpec::new("remote.test");
    remote.tls = false;
    let mut net = Net::new(&[xfed, remote]);
    net.enable_sip(XFED, &format!("{BASE}{FEDERATED}"));
    // unreachable.test publishes a server where nothing listens.
    let mut zone = Zone::new();
    zone.srv(
        "_xmpp-server._tcp.unreachable.test",
        &[(0, 0, 5269, "xmpp.unreachable.test")],
    )
    .addr("xmpp.unreachable.test", [10, 0, 0, 99].into());
    net.dns = Some(zone);
    // No federation with closed.test: remote-server-not-found, 404.
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        "sip:dave@closed.test",
        "text/plain",
        &[],
        "hi",
    );
    assert_eq!(
        (r.status, r.reason.as_str()),
        (404, "remote-server-not-found"),
        "{}",
        net.dump(XFED)
    );
    // A domain whose server cannot be reached: remote-server-timeout. RFC
    // 4320 forbids 408 to a non-INVITE, so no 408 either.
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        "sip:erin@unreachable.test",
        "text/plain",
        &[],
        "hi",
    );
    // 4320 forbids 408 to a non-INVITE (the transaction layer would send
    // nothing at all): 504, the gateway's timeout.
    assert_eq!(
        (r.status, r.reason.as_str()),
        (504, "remote-server-timeout"),
        "{}",
        net.dump(XFED)
    );
    assert!(net.saw(XFED, |e| matches!(e,
        Event::MessageRefused { detail, .. }
        if detail.ends_with("bounced with remote-server-timeout; SIP 504"))));
    // Issue 8: only recipients a message reached are remembered as
    // contacts (the store does not grow with every address a user tries).
    let remembered = |net: &Net| -> Vec<String> {
        net.nodes[XFED]
            .persisted
            .iter()
            .filter_map(|p| match p {
                Persist::RememberContact { remote_jid, .. } => Some(remote_jid.clone()),
                _ => None,
            })
            .collect()
    };
    assert!(remembered(&net).is_empty(), "{:?}", remembered(&net));
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        "sip:bob@remote.test",
        "text/plain",
        &[],
        "hi",
    );
    assert_eq!(r.status, 202);
    assert_eq!(remembered(&net), ["bob@remote.test"]);
}

#[test]
fn sip_message_refusals() {
    let mut net = network(FEDERATED);
    // From another user (carol's credentials, From alice): the registrar
    // refuses acting as someone else.
    let ruri = "sip:bob@remote.test";
    let build = |auth: Option<(&str, String)>| {
        let mut extra = vec![("Content-Type", "text/plain".to_owned())];
        extra.extend(auth);
        request(
            "MESSAGE",
            ruri,
            carol_ua(),
            "sip:alice@xfed.test",
            ruri,
            "im-x",
            &extra,
            "I am alice",
        )
    };
    let r = with_digest(
        &mut net,
        carol_ua(),
        "MESSAGE",
        ruri,
        "carol",
        CAROL_PW,
        &build,
    );
    assert_eq!(r.status, 403, "{r:?}");
    // From a user of another domain: 403 before any digest.
    let bytes = request(
        "MESSAGE",
        ruri,
        carol_ua(),
        "sip:mallory@evil.test",
        ruri,
        "im-y",
        &[("Content-Type", "text/plain".to_owned())],
        "hi",
    );
    let r = exchange(&mut net, carol_ua(), &bytes);
    assert_eq!((r.status, r.reason.as_str()), (403, "Not A Local User"));

    // sips: never reaches XMPP (RFC 7247 section 8).
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        "sips:bob@remote.test",
        "text/plain",
        &[],
        "secure?",
    );
    assert_eq!((r.status, r.reason.as_str()), (403, "SIPS Not Gatewayed"));

    // Unsupported body: 415 with Accept.
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        ruri,
        "text/html",
        &[],
        "<b>hi</b>",
    );
    assert_eq!(r.status, 415);
    assert_eq!(
        r.headers.get("Accept"),
        Some("text/plain, application/im-iscomposing+xml")
    );
    // A MESSAGE to a local address is not for XMPP.
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        "sip:carol@xfed.test",
        "text/plain",
        &[],
        "hi",
    );
    assert_eq!(r.status, 404);
    assert!(
        messages_at_remote(&net).is_empty(),
        "{:?}",
        messages_at_remote(&net)
    );
}

// ---- 4. chat states ----

#[test]
fn composing_becomes_is_composing_and_back() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    // XMPP -> SIP.
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "c1",
        &format!("<composing xmlns='{CHATSTATES}'/>"),
    );
    let req = one_request(&mut net, alice_ua());
    assert_eq!(
        req.headers.content_type(),
        Some("application/im-iscomposing+xml")
    );
    let body = String::from_utf8(req.body.clone()).unwrap();
    let status = xfed_core::translate::parse_is_composing(&body).unwrap();
    assert_eq!(status.state.as_str(), "active", "{body}");
    assert!(status.refresh.is_some_and(|r| r >= 60), "{body}");
    assert_eq!(
        req.headers.from().unwrap().uri().to_string(),
        "sip:bob@remote.test;gr=phone"
    );
    answer(&mut net, alice_ua(), &req, 200, &[]);
    // The same state again sends nothing; <paused/> makes it idle.
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "c2",
        &format!("<composing xmlns='{CHATSTATES}'/>"),
    );
    assert!(take(&mut net, alice_ua()).0.is_empty());
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "c3",
        &format!("<paused xmlns='{CHATSTATES}'/>"),
    );
    let req = one_request(&mut net, alice_ua());
    let body = String::from_utf8(req.body.clone()).unwrap();
    assert_eq!(
        xfed_core::translate::parse_is_composing(&body)
            .unwrap()
            .state
            .as_str(),
        "idle"
    );
    // A failed isComposing is not reported back as an error.
    answer(&mut net, alice_ua(), &req, 415, &[]);
    assert!(inbox_with_id(&net, "c3").is_empty());

    // SIP -> XMPP.
    let doc = "<?xml version='1.0' encoding='UTF-8'?>\n\
        <isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'>\
        <state>active</state><contenttype>text/plain</contenttype><refresh>60</refresh>\
        </isComposing>";
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        "sip:bob@remote.test",
        "application/im-iscomposing+xml",
        &[],
        doc,
    );
    assert_eq!(r.status, 202, "{}", net.dump(XFED));
    let msgs = messages_at_remote(&net);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert_eq!(m.attr("type"), Some("chat"));
    assert_eq!(m.attr("from"), Some("alice@xfed.test"));
    assert!(m.child(CHATSTATES, "composing").is_some(), "{m:?}");
    assert!(m.child(ns::SERVER, "body").is_none());
}

// ---- 5. access rules ----

const CAROL_NO_XMPP: &str = r#"
[[access]]
users = ["carol@xfed.test"]
xmpp = false

[[access]]
users = ["*@xfed.test"]
xmpp = true
"#;

#[test]
fn a_user_without_xmpp_access() {
    let mut net = network(&format!("{FEDERATED}{CAROL_NO_XMPP}"));
    register(&mut net, carol_ua(), "carol", CAROL_PW);
    let r = sip_message(
        &mut net,
        carol_ua(),
        "carol",
        CAROL_PW,
        "sip:bob@remote.test",
        "text/plain",
        &[],
        "hi",
    );
    assert_eq!((r.status, r.reason.as_str()), (403, "No XMPP Access"));
    assert!(messages_at_remote(&net).is_empty());
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "carol@xfed.test",
        "m1",
        "<body>hi carol</body>",
    );
    assert_eq!(
        error_back(&net, "m1").0,
        StanzaCondition::ServiceUnavailable
    );
    assert!(take(&mut net, carol_ua()).0.is_empty());
    // alice, matched by the second rule, may.
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        "sip:bob@remote.test",
        "text/plain",
        &[],
        "hi",
    );
    assert_eq!(r.status, 202);
}

#[test]
fn public_unverified_partner_needs_an_invitation() {
    let mut net = network(
        r#"
[[partner]]
domain = "remote.test"
type = "public-unverified"
"#,
    );
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<body>hello stranger</body>",
    );
    assert_eq!(
        error_back(&net, "m1").0,
        StanzaCondition::ServiceUnavailable
    );
    assert!(take(&mut net, alice_ua()).0.is_empty());

    // alice writes first: remembered, and persisted.
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        "sip:bob@remote.test",
        "text/plain",
        &[],
        "hi bob",
    );
    assert_eq!(r.status, 202);
    let remembered: Vec<&Persist> = net.nodes[XFED]
        .persisted
        .iter()
        .filter(|p| matches!(p, Persist::RememberContact { .. }))
        .collect();
    assert_eq!(remembered.len(), 1, "{remembered:?}");
    assert!(matches!(remembered[0],
        Persist::RememberContact { local_user, remote_jid, .. }
            if local_user == "alice@xfed.test" && remote_jid == "bob@remote.test"));

    // Now bob gets through; another user of remote.test still does not.
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m2",
        "<body>hello again</body>",
    );
    let req = one_request(&mut net, alice_ua());
    assert_eq!(req.body, b"hello again");
    answer(&mut net, alice_ua(), &req, 200, &[]);
    assert!(inbox_with_id(&net, "m2").is_empty());
    xmpp_message(
        &mut net,
        "eve@remote.test/x",
        "alice@xfed.test",
        "m3",
        "<body>me too</body>",
    );
    assert!(take(&mut net, alice_ua()).0.is_empty());
    let got = inbox_with_id(&net, "m3");
    assert_eq!(got.len(), 1);
    assert_eq!(
        stanza::error_condition(&got[0]),
        Some(StanzaCondition::ServiceUnavailable)
    );
    // A second message from alice is not written again (once a day).
    let r = sip_message(
        &mut net,
        alice_ua(),
        "alice",
        ALICE_PW,
        "sip:bob@remote.test",
        "text/plain",
        &[],
        "still there?",
    );
    assert_eq!(r.status, 202);
    let n = net.nodes[XFED]
        .persisted
        .iter()
        .filter(|p| matches!(p, Persist::RememberContact { .. }))
        .count();
    assert_eq!(n, 1);
}

// ---- 6. hostile SIP ----

const GOOD: &str = "MESSAGE sip:bob@remote.test SIP/2.0\r\n\
    Via: SIP/2.0/UDP 192.0.2.66:5060;branch=z9hG4bK-hostile\r\n\
    Max-Forwards: 70\r\n\
    From: <sip:alice@xfed.test>;tag=h1\r\n\
    To: <sip:bob@remote.test>\r\n\
    Call-ID: hostile-1\r\n\
    CSeq: 1 MESSAGE\r\n\
    Content-Type: text/plain\r\n\
    Content-Length: 5\r\n\
    \r\n\
    hello";

fn evil() -> SocketAddr {
    ua(66)
}

/// Sends hostile bytes; returns xfed's responses, after checking that
/// xfed reported refusing them with a detail containing `needle`.
fn hostile(net: &mut Net, bytes: &[u8], needle: &str) -> Vec<Response> {
    // A source gets a few reports a minute: start a fresh minute.
    net.advance(Duration::from_secs(61));
    let before = net.nodes[XFED].events.len();
    net.sip_datagram(XFED, evil(), bytes);
    let (reqs, resps) = take(net, evil());
    assert!(reqs.is_empty());
    let reported = net.nodes[XFED].events[before..]
        .iter()
        .any(|e| refusal_detail(e).is_some_and(|d| d.contains(needle)));
    assert!(reported, "no refusal with {needle:?}:\n{}", net.dump(XFED));
    resps
}

/// The detail of a refused SIP request or a limit it hit.
fn refusal_detail(e: &Event) -> Option<&str> {
    match e {
        Event::SipRefused { detail, .. } | Event::LimitReached { detail, .. } => Some(detail),
        Event::Detail { text, .. } => Some(text),
        _ => None,
    }
}

#[test]
fn hostile_datagrams_get_their_answer_and_the_node_lives() {
    let mut net = network(FEDERATED);

    // Garbage: not a request, nothing to answer.
    let r = hostile(&mut net, b"\x16\x03\x01\x00\xa5garbage\x00\xff", "dropped");
    assert!(r.is_empty(), "{r:?}");
    let r = hostile(&mut net, b"hello world", "dropped");
    assert!(r.is_empty(), "{r:?}");

    // Missing mandatory headers: no response can be built without Via,
    // From, To, Call-ID and CSeq; dropped with a log line.
    for line in [
        "Via: SIP/2.0/UDP 192.0.2.66:5060;branch=z9hG4bK-hostile\r\n",
        "From: <sip:alice@xfed.test>;tag=h1\r\n",
        "To: <sip:bob@remote.test>\r\n",
        "Call-ID: hostile-1\r\n",
        "CSeq: 1 MESSAGE\r\n",
    ] {
        let bytes = GOOD.replace(line, "");
        let r = hostile(&mut net, bytes.as_bytes(), "dropped (no response possible)");
        assert!(r.is_empty(), "{line}: {r:?}");
    }
    // Max-Forwards is not needed for a response: 400 names the problem.
    let bytes = GOOD.replace("Max-Forwards: 70\r\n", "");
    let r = hostile(&mut net, bytes.as_bytes(), "answering 400");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 400);
    assert_eq!(r[0].headers.call_id().unwrap(), "hostile-1");

    // Bad Content-Length: 400 (RFC 3261 section 18.3).
    for cl in [
        "Content-Length: abc",
        "Content-Length: 50",
        "Content-Length: -1",
    ] {
        let bytes = GOOD.replace("Content-Length: 5", cl);
        let r = hostile(&mut net, bytes.as_bytes(), "answering 400");
        assert_eq!(r.len(), 1, "{cl}");
        assert_eq!(r[0].status, 400, "{cl}");
        assert!(r[0].reason.contains("Content-Length"), "{:?}", r[0].reason);
        assert!(r[0].headers.to().unwrap().tag().is_some());
    }

    // An oversized datagram with a readable head: 513.
    let mut big = GOOD
        .replace("Content-Length: 5", "Content-Length: 70000")
        .into_bytes();
    big.resize(GOOD.len() + 70_000, b'x');
    let r = hostile(&mut net, &big, "answering 513");
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].status, r[0].reason.as_str()),
        (513, "Message Too Large")
    );

    // A header flood: the head is never read whole, so dropped.
    let flood: String = (0..200).map(|i| format!("X-Flood-{i}: y\r\n")).collect();
    let bytes = GOOD.replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{flood}"),
    );
    let r = hostile(&mut net, bytes.as_bytes(), "dropped (no response possible)");
    assert!(r.is_empty(), "{r:?}");

    // CRLF keepalives: nothing at all, not even a log line of refusal.
    let before = net.nodes[XFED].events.len();
    net.sip_datagram(XFED, evil(), b"\r\n\r\n");
    net.sip_datagram(XFED, evil(), b"\r\n");
    assert!(take(&mut net, evil()).1.is_empty());
    assert!(
        !net.nodes[XFED].events[before..]
            .iter()
            .any(|e| matches!(e, Event::SipRefused { .. })),
        "{}",
        net.dump(XFED)
    );

    // A response for no transaction: dropped, logged.
    let stray = "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-nosuch\r\n\
        From: <sip:bob@remote.test>;tag=x\r\n\
        To: <sip:alice@xfed.test>;tag=y\r\n\
        Call-ID: nosuch\r\n\
        CSeq: 1 MESSAGE\r\n\
        Content-Length: 0\r\n\r\n";
    let r = hostile(&mut net, stray.as_bytes(), "stray response dropped");
    assert!(r.is_empty());

    // A response that does not parse is dropped, not answered.
    let r = hostile(
        &mut net,
        stray
            .replace("Content-Length: 0", "Content-Length: x")
            .as_bytes(),
        "dropped",
    );
    assert!(r.is_empty());

    // An unknown SIP version and a foreign URI scheme.
    let r = hostile(
        &mut net,
        GOOD.replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1).as_bytes(),
        "SIP from",
    );
    assert!(r.iter().all(|r| r.status == 505), "{r:?}");
    let r = hostile(
        &mut net,
        GOOD.replacen("sip:bob@remote.test SIP", "http://remote.test/ SIP", 1)
            .as_bytes(),
        "answering 416",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 416);

    // An unsupported method: 405 with Allow.
    let r = hostile(
        &mut net,
        GOOD.replace("MESSAGE", "REFER").as_bytes(),
        "not supported; 405",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 405);
    assert_eq!(
        r[0].headers.get("Allow"),
        Some("REGISTER, MESSAGE, OPTIONS, PUBLISH, SUBSCRIBE, NOTIFY")
    );

    // Max-Forwards 0: 483.
    let r = exchange(
        &mut net,
        evil(),
        GOOD.replace("Max-Forwards: 70", "Max-Forwards: 0")
            .replace("hostile-1", "hostile-2")
            .replace("z9hG4bK-hostile", "z9hG4bK-hostile-2")
            .as_bytes(),
    );
    assert_eq!(r.status, 483);

    // And the node still works.
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<body>still alive</body>",
    );
    let req = one_request(&mut net, alice_ua());
    assert_eq!(req.body, b"still alive");
}

/// `sip.max_message_size` is what the parser enforces: a 6,000-byte
/// MESSAGE, well within the default, is refused under a 4 KiB setting.
#[test]
fn configured_message_size_limit_applies() {
    let body = "x".repeat(6000);
    let bytes = GOOD
        .replace(
            "Content-Length: 5",
            &format!("Content-Length: {}", body.len()),
        )
        .replace("\r\n\r\nhello", &format!("\r\n\r\n{body}"));
    let mut net = network(FEDERATED);
    net.sip_datagram(XFED, evil(), bytes.as_bytes());
    let (_, resps) = take(&mut net, evil());
    assert!(
        resps.iter().all(|r| r.status != 513),
        "64 KiB by default: {resps:?}"
    );

    let mut net = Net::new(&[NodeSpec::new("xfed.test"), {
        let mut remote = NodeSpec::new("remote.test");
        remote.tls = false;
        remote
    }]);
    net.enable_sip(
        XFED,
        &BASE.replace("[sip]\n", "[sip]\nmax_message_size = \"4KiB\"\n"),
    );
    let r = hostile(&mut net, bytes.as_bytes(), "answering 513");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 513);
}

/// Issue 8: garbage and failed digests from one source cost a few log
/// lines a minute, however many arrive; the next line says how many were
/// suppressed. Every one is still answered.
#[test]
fn a_flooding_source_gets_a_few_log_lines() {
    let mut net = network(FEDERATED);
    let lines = |net: &Net| {
        net.nodes[XFED]
            .events
            .iter()
            .filter(|e| matches!(e, Event::SipRefused { peer, .. } if *peer == evil()))
            .count()
    };
    // Without Max-Forwards: answered 400, and logged.
    let bad = GOOD.replace("Max-Forwards: 70\r\n", "");
    for _ in 0..1_000 {
        net.sip_datagram(XFED, evil(), bad.as_bytes());
    }
    assert!(lines(&net) <= 20, "{}", net.dump(XFED));
    let (_, answers) = take(&mut net, evil());
    assert_eq!(
        answers.len(),
        1_000,
        "every datagram that can be answered is"
    );
    net.advance(Duration::from_secs(61));
    net.sip_datagram(XFED, evil(), bad.as_bytes());
    assert!(
        net.saw(XFED, |e| matches!(e, Event::Suppressed { .. })),
        "{}",
        net.dump(XFED)
    );
    assert!(lines(&net) <= 21);
}

/// A retransmitted request that authenticated gets the very same answer
/// (its server transaction absorbs it; it is not registered twice, nor
/// refused as a replayed nonce count). One that did not authenticate is
/// answered statelessly: challenged again.
#[test]
fn retransmitted_requests_get_the_same_answer() {
    let mut net = network(FEDERATED);
    let last = std::cell::RefCell::new(Vec::new());
    let contact = format!("<sip:alice@{}>", alice_ua());
    let ok = with_digest(
        &mut net,
        alice_ua(),
        "REGISTER",
        "sip:xfed.test",
        "alice",
        ALICE_PW,
        &|auth| {
            let mut extra = vec![("Contact", contact.clone())];
            extra.extend(auth);
            let bytes = request(
                "REGISTER",
                "sip:xfed.test",
                alice_ua(),
                "sip:alice@xfed.test",
                "sip:alice@xfed.test",
                "reg-rt",
                &extra,
                "",
            );
            *last.borrow_mut() = bytes.clone();
            bytes
        },
    );
    assert_eq!(ok.status, 200);
    let again = exchange(&mut net, alice_ua(), &last.borrow());
    assert_eq!(ok, again, "the server transaction resends its response");
    let unauthenticated = request(
        "REGISTER",
        "sip:xfed.test",
        alice_ua(),
        "sip:alice@xfed.test",
        "sip:alice@xfed.test",
        "reg-rt2",
        &[],
        "",
    );
    for _ in 0..2 {
        assert_eq!(exchange(&mut net, alice_ua(), &unauthenticated).status, 401);
    }
}

// ---- more edges ----

#[test]
fn is_composing_stops_after_415() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    let composing = format!("<composing xmlns='{CHATSTATES}'/>");
    let paused = format!("<paused xmlns='{CHATSTATES}'/>");
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "c1",
        &composing,
    );
    let req = one_request(&mut net, alice_ua());
    answer(&mut net, alice_ua(), &req, 415, &[("Accept", "text/plain")]);
    // RFC 3994 section 6: after a 415, no more isComposing to that
    // recipient (MUST).
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "c2",
        &paused,
    );
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "c3",
        &composing,
    );
    assert!(
        take(&mut net, alice_ua()).0.is_empty(),
        "isComposing sent after a 415"
    );
    // Content still goes.
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<body>typed</body>",
    );
    let req = one_request(&mut net, alice_ua());
    assert_eq!(req.body, b"typed");
    assert!(
        net.nodes[REMOTE].inbox.is_empty(),
        "{:?}",
        net.nodes[REMOTE].inbox
    );
}

#[test]
fn a_retransmitted_message_is_delivered_once() {
    let mut net = network(FEDERATED);
    let ruri = "sip:bob@remote.test";
    let build = |auth: Option<(&str, String)>| {
        let mut extra = vec![("Content-Type", "text/plain".to_owned())];
        extra.extend(auth);
        request(
            "MESSAGE",
            ruri,
            alice_ua(),
            "sip:alice@xfed.test",
            ruri,
            "dup-1",
            &extra,
            "only once",
        )
    };
    let first = exchange(&mut net, alice_ua(), &build(None));
    let c = challenges(&first, "Proxy-Authenticate").remove(0);
    let auth = c.answer("alice", ALICE_PW, "MESSAGE", ruri, "cn", 1);
    let bytes = build(Some(("Proxy-Authorization", auth.header_value())));
    let r1 = exchange(&mut net, alice_ua(), &bytes);
    assert_eq!(r1.status, 202);
    // The UA missed the 202 and retransmits: the same 202, no new stanza.
    let r2 = exchange(&mut net, alice_ua(), &bytes);
    assert_eq!(r1, r2);
    assert_eq!(messages_at_remote(&net).len(), 1);
}

#[test]
fn xmpp_messages_sip_cannot_take() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    // Over RFC 3428's 1300 bytes: policy-violation.
    let long = "x".repeat(1400);
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "big",
        &format!("<body>{long}</body>"),
    );
    assert_eq!(error_back(&net, "big").0, StanzaCondition::PolicyViolation);
    // groupchat: service-unavailable; an iq: service-unavailable.
    net.send(
        REMOTE,
        "<message xmlns='jabber:server' type='groupchat' from='bob@remote.test/phone' to='alice@xfed.test' id='gc'><body>room</body></message>",
    );
    assert_eq!(
        error_back(&net, "gc").0,
        StanzaCondition::ServiceUnavailable
    );
    net.send(
        REMOTE,
        "<iq xmlns='jabber:server' type='get' from='bob@remote.test/phone' to='alice@xfed.test' id='q1'><query xmlns='jabber:iq:version'/></iq>",
    );
    let got = inbox_with_id(&net, "q1");
    assert_eq!(got.len(), 1, "{}", net.dump(XFED));
    assert_eq!(got[0].attr("type"), Some("error"));
    assert_eq!(
        stanza::error_condition(&got[0]),
        Some(StanzaCondition::ServiceUnavailable)
    );
    // Nothing reached alice's phone.
    assert!(take(&mut net, alice_ua()).0.is_empty());
}

#[test]
fn a_slow_route_gets_100_trying_then_its_answer() {
    let mut net = network(FEDERATED);
    let mut zone = Zone::new();
    zone.set(
        "_xmpp-server._tcp.slow.test",
        xfed_core::dns::RecordType::Srv,
        xfed_core::sim::DnsAnswer::Silent,
    );
    net.dns = Some(zone);
    let ruri = "sip:frank@slow.test";
    let build = |auth: Option<(&str, String)>| {
        let mut extra = vec![("Content-Type", "text/plain".to_owned())];
        extra.extend(auth);
        request(
            "MESSAGE",
            ruri,
            alice_ua(),
            "sip:alice@xfed.test",
            ruri,
            "slow-1",
            &extra,
            "are you there",
        )
    };
    let first = exchange(&mut net, alice_ua(), &build(None));
    let c = challenges(&first, "Proxy-Authenticate").remove(0);
    let auth = c.answer("alice", ALICE_PW, "MESSAGE", ruri, "cn", 1);
    net.sip_datagram(
        XFED,
        alice_ua(),
        &build(Some(("Proxy-Authorization", auth.header_value()))),
    );
    assert!(take(&mut net, alice_ua()).1.is_empty());
    // RFC 4320: 100 Trying once the client's Timer E would reach T2.
    net.advance(Duration::from_secs(4));
    let (_, resps) = take(&mut net, alice_ua());
    assert_eq!(
        resps.iter().map(|r| r.status).collect::<Vec<_>>(),
        [100],
        "{}",
        net.dump(XFED)
    );
    // The final answer comes before the client's Timer F (32 s).
    net.advance(Duration::from_secs(27));
    let (_, resps) = take(&mut net, alice_ua());
    let finals: Vec<u16> = resps
        .iter()
        .map(|r| r.status)
        .filter(|s| *s >= 200)
        .collect();
    assert_eq!(finals, [504], "{resps:?}\n{}", net.dump(XFED));
    assert!(net.saw(XFED, |e| matches!(e,
        Event::MessageRefused { detail, .. }
        if detail.ends_with("bounced with remote-server-timeout; SIP 504"))));
}

#[test]
fn register_limits_stale_nonces_and_star() {
    let mut net = network(FEDERATED);
    // Too brief: 423 with Min-Expires.
    let r = register_as(&mut net, alice_ua(), "alice", "alice", ALICE_PW, 30);
    assert_eq!((r.status, r.reason.as_str()), (423, "Interval Too Brief"));
    assert_eq!(r.headers.get("Min-Expires"), Some("60"));
    assert!(net.nodes[XFED].persisted.is_empty());

    // A right answer to an old nonce: challenged again with stale=true.
    let aor = "sip:alice@xfed.test";
    let build = |auth: Option<(&str, String)>| {
        let mut extra = vec![
            ("Contact", format!("<sip:alice@{}>", alice_ua())),
            ("Expires", "600".to_owned()),
        ];
        extra.extend(auth);
        request(
            "REGISTER",
            "sip:xfed.test",
            alice_ua(),
            aor,
            aor,
            "reg-stale",
            &extra,
            "",
        )
    };
    let first = exchange(&mut net, alice_ua(), &build(None));
    let c = challenges(&first, "WWW-Authenticate").remove(0);
    net.advance(Duration::from_secs(3600));
    let auth = c.answer("alice", ALICE_PW, "REGISTER", "sip:xfed.test", "c1", 1);
    let r = exchange(
        &mut net,
        alice_ua(),
        &build(Some(("Authorization", auth.header_value()))),
    );
    assert_eq!(r.status, 401, "{r:?}");
    let again = challenges(&r, "WWW-Authenticate");
    assert!(again.iter().all(|c| c.stale), "{again:?}");

    // Two devices, then `Contact: *` with Expires 0 removes both.
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    register(&mut net, alice_ua2(), "alice", ALICE_PW);
    let star = |auth: Option<(&str, String)>| {
        let mut extra = vec![("Contact", "*".to_owned()), ("Expires", "0".to_owned())];
        extra.extend(auth);
        request(
            "REGISTER",
            "sip:xfed.test",
            alice_ua(),
            aor,
            aor,
            "reg-star",
            &extra,
            "",
        )
    };
    let r = with_digest(
        &mut net,
        alice_ua(),
        "REGISTER",
        "sip:xfed.test",
        "alice",
        ALICE_PW,
        &star,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.headers.get("Contact").is_none(), "{r:?}");
    let deletes = net.nodes[XFED]
        .persisted
        .iter()
        .filter(|p| matches!(p, Persist::DeleteBinding { aor, .. } if aor == "alice@xfed.test"))
        .count();
    assert_eq!(deletes, 2, "{:?}", net.nodes[XFED].persisted);
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<body>hi</body>",
    );
    assert_eq!(
        error_back(&net, "m1").0,
        StanzaCondition::ServiceUnavailable
    );
}

#[test]
fn addresses_are_escaped_both_ways() {
    let mut net = network(FEDERATED);
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    // RFC 7247 section 6: \27 is ', non-ASCII is percent-encoded.
    xmpp_message(
        &mut net,
        "o\\27malley@remote.test",
        "alice@xfed.test",
        "a1",
        "<body>top o' the morning</body>",
    );
    let req = one_request(&mut net, alice_ua());
    assert_eq!(
        req.headers.from().unwrap().uri().to_string(),
        "sip:o'malley@remote.test"
    );
    answer(&mut net, alice_ua(), &req, 200, &[]);
    xmpp_message(
        &mut net,
        "tsch\u{fc}ss@remote.test",
        "alice@xfed.test",
        "a2",
        "<body>servus</body>",
    );
    let req = one_request(&mut net, alice_ua());
    assert_eq!(
        req.headers.from().unwrap().uri().to_string(),
        "sip:tsch%C3%BCss@remote.test"
    );
    answer(&mut net, alice_ua(), &req, 200, &[]);

    // And back.
    for (uri, jid) in [
        ("sip:o'malley@remote.test", "o\\27malley@remote.test"),
        ("sip:tsch%C3%BCss@remote.test", "tsch\u{fc}ss@remote.test"),
    ] {
        let r = sip_message(
            &mut net,
            alice_ua(),
            "alice",
            ALICE_PW,
            uri,
            "text/plain",
            &[],
            "hi",
        );
        assert_eq!(r.status, 202, "{uri}: {r:?}\n{}", net.dump(XFED));
        let last = messages_at_remote(&net).pop().unwrap();
        assert_eq!(last.attr("to"), Some(jid));
    }
}

#[test]
fn sip_message_bodies_xfed_refuses() {
    let mut net = network(FEDERATED);
    let ruri = "sip:bob@remote.test";
    let cases: [(&str, &str, u16); 4] = [
        ("text/plain; charset=ISO-8859-1", "caf\u{e9}", 415),
        ("text/plain", "", 400),
        ("application/im-iscomposing+xml", "<isComposing", 400),
        ("message/sipfrag", "SIP/2.0 200 OK", 415),
    ];
    for (ct, body, status) in cases {
        let r = sip_message(&mut net, alice_ua(), "alice", ALICE_PW, ruri, ct, &[], body);
        assert_eq!(r.status, status, "{ct} {body:?}: {r:?}");
        if status == 415 {
            assert!(r.headers.get("Accept").is_some());
        }
    }
    assert!(messages_at_remote(&net).is_empty());
}

#[test]
fn with_no_partner_entry_remote_users_need_an_invitation() {
    // Open federation admits unknown domains as public-unverified.
    let mut net = network("");
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "alice@xfed.test",
        "m1",
        "<body>hello</body>",
    );
    assert_eq!(
        error_back(&net, "m1").0,
        StanzaCondition::ServiceUnavailable
    );
    assert!(take(&mut net, alice_ua()).0.is_empty());
}

#[test]
fn responses_go_to_the_source_not_to_a_forged_via() {
    let mut net = network(FEDERATED);
    let victim = SocketAddr::from(([203, 0, 113, 5], 5060));
    let bytes = GOOD.replace("192.0.2.66:5060", &victim.to_string());
    net.sip_datagram(XFED, evil(), bytes.as_bytes());
    let (_, resps) = take(&mut net, evil());
    assert_eq!(
        resps.iter().map(|r| r.status).collect::<Vec<_>>(),
        [407],
        "{}",
        net.dump(XFED)
    );
    assert!(net.take_datagrams(XFED, victim).is_empty());
}

// ---- several instances of one deployment ----

/// What another instance of the deployment (192.0.2.99, trusted, its
/// `sip.path`) forwards for a user registered here is delivered to her
/// and her answer goes back; the same from a peer not trusted is
/// refused; a user whose flow the other instance holds (as the shared
/// store said) is reached through it, and its failure reaches the XMPP
/// sender.
#[test]
fn instances_forward_to_the_one_holding_the_flow() {
    let other = SocketAddr::from(([192, 0, 2, 99], 5060));
    let mut net = network_with(
        "",
        "path = \"sip:192.0.2.1:5060\"\ntrusted = [\"192.0.2.99\"]\ntrust_udp = true\n",
    );
    register(&mut net, alice_ua(), "alice", ALICE_PW);
    let forwarded = |call_id: &str, from_ua: SocketAddr| {
        request(
            "MESSAGE",
            "sip:alice@xfed.test",
            from_ua,
            "sip:bob@remote.test",
            "sip:alice@xfed.test",
            call_id,
            &[("Content-Type", "text/plain".into())],
            "through the other",
        )
    };
    net.sip_datagram(XFED, other, &forwarded("fwd-1@other", other));
    let m = one_request(&mut net, alice_ua());
    assert_eq!(m.uri.to_string(), "sip:alice@192.0.2.10:5060");
    assert_eq!(m.body, b"through the other");
    let from = m.headers.from().unwrap();
    assert_eq!(from.uri().to_string(), "sip:bob@remote.test");
    assert!(take(&mut net, other).1.is_empty(), "answered before alice");
    answer(&mut net, alice_ua(), &m, 200, &[]);
    let (_, answers) = take(&mut net, other);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].status, 200);
    // Nothing went to XMPP: the other instance's sender is told by it.
    assert!(net.nodes[REMOTE].inbox.is_empty());

    // From a peer not trusted: not a local user's message, 403.
    let stranger = SocketAddr::from(([192, 0, 2, 98], 5060));
    let r = exchange(&mut net, stranger, &forwarded("fwd-2@stranger", stranger));
    assert_eq!(r.status, 403);
    assert!(take(&mut net, alice_ua()).0.is_empty());

    // carol registered through the other instance.
    let carol = xfed_core::store::Binding {
        aor: "carol@xfed.test".into(),
        contact: "sip:carol@192.0.2.30:5060".into(),
        expires_at: u64::from(u32::MAX),
        q: None,
        call_id: "reg-carol".into(),
        cseq: 1,
        instance: None,
        reg_id: None,
        path: Some("sip:192.0.2.99:5060".into()),
    };
    let now = net.now;
    net.nodes[XFED].gw.shared(
        Shared::Bindings(Some("carol@xfed.test".into()), vec![carol]),
        now,
    );
    net.run();
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "carol@xfed.test",
        "m1",
        "<body>to carol</body>",
    );
    let f = one_request(&mut net, other);
    assert_eq!(f.uri.to_string(), "sip:carol@xfed.test");
    assert_eq!(f.body, b"to carol");
    assert!(take(&mut net, carol_ua()).0.is_empty(), "not to her flow");
    // Her contact's presence, with no dialog here, goes where her flow is,
    // as the stanza itself.
    net.send(
        REMOTE,
        "<presence xmlns='jabber:server' from='bob@remote.test/phone' to='carol@xfed.test'><status>out</status></presence>",
    );
    let p = one_request(&mut net, other);
    assert_eq!(p.uri.to_string(), "sip:carol@xfed.test");
    assert_eq!(p.headers.content_type(), Some("application/xmpp+xml"));
    let carried = xfed_core::xml::parse_element(std::str::from_utf8(&p.body).unwrap()).unwrap();
    assert_eq!(carried.attr("from"), Some("bob@remote.test/phone"));
    answer(&mut net, other, &p, 200, &[]);
    // What the other instance forwards for alice, who watches nobody here:
    // 481; something not a presence: 400.
    let stanza = |body: &str| {
        request(
            "MESSAGE",
            "sip:alice@xfed.test",
            other,
            "sip:bob@remote.test",
            "sip:alice@xfed.test",
            &format!("p-{}@other", next()),
            &[("Content-Type", "application/xmpp+xml".into())],
            body,
        )
    };
    let r = exchange(
        &mut net,
        other,
        &stanza("<presence xmlns='jabber:server' from='bob@remote.test' to='alice@xfed.test'/>"),
    );
    assert_eq!(r.status, 481);
    let r = exchange(&mut net, other, &stanza("<message xmlns='jabber:server'/>"));
    assert_eq!(r.status, 400);
    let r = exchange(&mut net, other, &stanza("<presence"));
    assert_eq!(r.status, 400);
    // As from her own flow: a 480 conceals whether she exists.
    answer(&mut net, other, &f, 480, &[]);
    assert_eq!(
        error_back(&net, "m1").0,
        StanzaCondition::ServiceUnavailable
    );
    // The store says she is gone: nothing to forward to any more.
    net.nodes[XFED].gw.shared(
        Shared::Bindings(Some("carol@xfed.test".into()), Vec::new()),
        now,
    );
    net.run();
    xmpp_message(
        &mut net,
        "bob@remote.test/phone",
        "carol@xfed.test",
        "m2",
        "<body>again</body>",
    );
    assert!(take(&mut net, other).0.is_empty());
    assert_eq!(
        error_back(&net, "m2").0,
        StanzaCondition::ServiceUnavailable
    );
}
