//! SIP TCP and TLS connections on the simulated clock: the timeouts that
//! close silent, half-finished and idle connections (`sip.handshake_timeout`,
//! `sip.request_timeout`, `sip.idle_timeout`), the flows of registered
//! user agents that stay open, and `sip.connection_limit`, which is kept
//! apart from the s2s `gateway.connection_limit` in both directions.

use std::net::SocketAddr;
use std::time::Duration;

use xfed_core::event::Refusal;
use xfed_core::sim::{Net, NodeSpec};
use xfed_core::sip::{Frame, Limits, Message, Request, Response, StreamFramer};
use xfed_core::{ConnId, Event, Listener};

const XFED: usize = 0;

/// The defaults of the three timeouts.
const HANDSHAKE: Duration = Duration::from_secs(10);
const REQUEST: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(300);
const SECOND: Duration = Duration::from_secs(1);

/// xfed.test in registrar mode; the user agent at 192.0.2.10 is trusted
/// (registers without digest, over UDP too).
const BASE: &str = r#"
[gateway]
domains = ["xfed.test"]
dialback_secret = "a dialback secret long enough for the tests"

[sip]
mode = "registrar"
trusted = ["192.0.2.10"]
trust_udp = true
"#;

/// One node, xfed.test, with SIP configured by [`BASE`] plus `extra` (more
/// `[sip]` keys) and an s2s connection limit of `s2s_limit`.
fn node(extra: &str, s2s_limit: usize) -> Net {
    let mut spec = NodeSpec::new("xfed.test");
    spec.connection_limit = s2s_limit;
    let mut net = Net::new(&[spec]);
    net.enable_sip(XFED, &format!("{BASE}{extra}"));
    net
}

fn stranger(n: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 7], 40_000 + n))
}

fn alice_ua() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 50_000))
}

fn is_closed(net: &Net, conn: ConnId) -> bool {
    net.outside.get(&(XFED, conn)).is_some_and(|o| o.closed)
}

/// A complete OPTIONS request (answered 200 without authentication).
fn options(n: u32) -> String {
    format!(
        "OPTIONS sip:xfed.test SIP/2.0\r\n\
         Via: SIP/2.0/TCP 198.51.100.7:40000;branch=z9hG4bK-opt-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:someone@elsewhere.test>;tag=o{n}\r\n\
         To: <sip:xfed.test>\r\n\
         Call-ID: options-{n}\r\n\
         CSeq: {n} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// alice's REGISTER over her TCP connection, for `expires` seconds.
fn register(n: u32, expires: u32) -> String {
    let ua = alice_ua();
    register_contact(n, &format!("sip:alice@{ua};transport=tcp"), expires)
}

/// alice's REGISTER of `contact`, for `expires` seconds.
fn register_contact(n: u32, contact: &str, expires: u32) -> String {
    let ua = alice_ua();
    format!(
        "REGISTER sip:xfed.test SIP/2.0\r\n\
         Via: SIP/2.0/TCP {ua};branch=z9hG4bK-reg-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@xfed.test>;tag=r{n}\r\n\
         To: <sip:alice@xfed.test>\r\n\
         Call-ID: register-flow\r\n\
         CSeq: {n} REGISTER\r\n\
         Contact: <{contact}>\r\n\
         Expires: {expires}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The responses in `bytes` (what xfed sent on a stream).
fn responses(bytes: &[u8]) -> Vec<Response> {
    let mut framer = StreamFramer::new(Limits::default());
    framer.feed(bytes);
    let mut out = Vec::new();
    while let Some(frame) = framer.poll() {
        if let Ok(Frame::Message(Message::Response(r))) = frame {
            out.push(r);
        }
    }
    out
}

/// The requests in `bytes` (what xfed sent on a stream).
fn requests(bytes: &[u8]) -> Vec<Request> {
    let mut framer = StreamFramer::new(Limits::default());
    framer.feed(bytes);
    let mut out = Vec::new();
    while let Some(frame) = framer.poll() {
        if let Ok(Frame::Message(Message::Request(r))) = frame {
            out.push(r);
        }
    }
    out
}

/// How node XFED closed `conn` by a timeout, which must be `key`: the
/// peer and what the connection was doing.
fn expiry(net: &Net, conn: ConnId, key: &str) -> (SocketAddr, &'static str) {
    net.nodes[XFED]
        .events
        .iter()
        .find_map(|e| match e {
            Event::SipConnectionExpired {
                conn: c,
                key: k,
                peer,
                what,
                ..
            } if *c == conn && *k == key => Some((*peer, *what)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("not closed by {key}:\n{}", net.dump(XFED)))
}

/// An s2s stream header from remote.test, as an XMPP server opens with.
const STREAM_HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    from='remote.test' to='xfed.test' version='1.0'>";

/// An outside XMPP server connects to the s2s port and opens its stream:
/// whether xfed answered with its own stream header (and kept the
/// connection).
fn s2s_is_served(net: &mut Net, from: SocketAddr) -> bool {
    let conn = net.connect_from_outside(XFED, Listener::S2s, from);
    if is_closed(net, conn) {
        return false;
    }
    net.outside_send(XFED, conn, STREAM_HEADER);
    let (sent, closed) = net.outside_take(XFED, conn);
    !closed && String::from_utf8_lossy(&sent).contains("<stream:stream")
}

#[test]
fn a_silent_tcp_connection_is_closed_after_request_timeout() {
    let mut net = node("", 100);
    let conn = net.connect_from_outside(XFED, Listener::SipTcp, stranger(1));
    net.advance(REQUEST - SECOND);
    assert!(!is_closed(&net, conn), "closed early:\n{}", net.dump(XFED));
    net.advance(2 * SECOND);
    assert!(is_closed(&net, conn), "still open:\n{}", net.dump(XFED));
    let (peer, _) = expiry(&net, conn, "sip.request_timeout");
    assert_eq!(peer.to_string(), "198.51.100.7:40001");
    assert_eq!(net.nodes[XFED].gw.connections(), 0, "closed but counted");
}

#[test]
fn a_partial_request_is_closed_after_request_timeout() {
    let full = options(1);
    let cases = [
        ("half a header section", full[..60].to_owned()),
        (
            "Content-Length larger than the body",
            full.replace(
                "Content-Length: 0\r\n\r\n",
                "Content-Length: 100\r\n\r\nhello",
            ),
        ),
        ("a lone CR", "\r".to_owned()),
    ];
    for (n, (what, bytes)) in cases.into_iter().enumerate() {
        let mut net = node("", 100);
        let conn = net.connect_from_outside(XFED, Listener::SipTcp, stranger(n as u16));
        net.advance(5 * SECOND);
        net.outside_send(XFED, conn, bytes.as_bytes());
        net.advance(REQUEST - 6 * SECOND);
        assert!(!is_closed(&net, conn), "{what}: closed early");
        net.advance(2 * SECOND);
        assert!(is_closed(&net, conn), "{what}: still open");
        expiry(&net, conn, "sip.request_timeout");
    }

    // After a complete request, a message left unfinished has the same
    // time to complete (not the idle timeout's).
    let mut net = node("", 100);
    let conn = net.connect_from_outside(XFED, Listener::SipTcp, stranger(9));
    net.outside_send(XFED, conn, options(2).as_bytes());
    let (sent, _) = net.outside_take(XFED, conn);
    let statuses: Vec<u16> = responses(&sent).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200], "{}", net.dump(XFED));
    net.advance(60 * SECOND);
    net.outside_send(XFED, conn, &options(3).as_bytes()[..80]);
    net.advance(REQUEST + SECOND);
    assert!(is_closed(&net, conn), "unfinished message kept open");
    let (_, what) = expiry(&net, conn, "sip.request_timeout");
    assert!(what.contains("unfinished"), "{what}");
}

#[test]
fn an_unfinished_tls_handshake_is_closed_after_handshake_timeout() {
    // Nothing at all, and the first bytes of a ClientHello.
    for (n, bytes) in [
        &b""[..],
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
    ]
    .into_iter()
    .enumerate()
    {
        let mut net = node("", 100);
        let conn = net.connect_from_outside(XFED, Listener::SipTls, stranger(n as u16));
        net.outside_send(XFED, conn, bytes);
        net.advance(HANDSHAKE - SECOND);
        assert!(!is_closed(&net, conn), "closed early:\n{}", net.dump(XFED));
        net.advance(2 * SECOND);
        assert!(is_closed(&net, conn), "still open:\n{}", net.dump(XFED));
        let (peer, _) = expiry(&net, conn, "sip.handshake_timeout");
        assert_eq!(peer.ip().to_string(), "198.51.100.7");
        assert_eq!(net.nodes[XFED].gw.connections(), 0);
    }
}

#[test]
fn an_idle_connection_without_binding_is_closed_after_idle_timeout() {
    let mut net = node("", 100);
    let conn = net.connect_from_outside(XFED, Listener::SipTcp, stranger(1));
    net.outside_send(XFED, conn, options(4).as_bytes());
    net.advance(IDLE - SECOND);
    assert!(!is_closed(&net, conn), "closed early:\n{}", net.dump(XFED));
    net.advance(2 * SECOND);
    assert!(is_closed(&net, conn), "still open:\n{}", net.dump(XFED));
    let (peer, _) = expiry(&net, conn, "sip.idle_timeout");
    assert_eq!(peer.to_string(), "198.51.100.7:40001");
}

#[test]
fn a_registered_flow_stays_open_while_its_binding_lives() {
    let mut net = node("", 100);
    let conn = net.connect_from_outside(XFED, Listener::SipTcp, alice_ua());
    net.outside_send(XFED, conn, register(1, 3600).as_bytes());
    let (sent, _) = net.outside_take(XFED, conn);
    let statuses: Vec<u16> = responses(&sent).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200], "{}", net.dump(XFED));

    // RFC 5626 keepalives every two minutes, well past the idle timeout:
    // each ping gets its pong and the flow stays.
    for _ in 0..6 {
        net.advance(120 * SECOND);
        net.outside_send(XFED, conn, b"\r\n\r\n");
        let (sent, closed) = net.outside_take(XFED, conn);
        assert!(!closed, "flow closed:\n{}", net.dump(XFED));
        assert_eq!(sent, b"\r\n");
    }
    // Silent far longer than the idle timeout, it lives as long as its
    // binding (an hour: now is 3,520 s).
    net.advance(2800 * SECOND);
    assert!(!is_closed(&net, conn), "{}", net.dump(XFED));
    // The binding ends at 3,600 s; from then on the connection is an
    // ordinary one, closed after the idle timeout.
    net.advance(80 * SECOND + IDLE - SECOND);
    assert!(!is_closed(&net, conn), "{}", net.dump(XFED));
    net.advance(2 * SECOND);
    assert!(is_closed(&net, conn), "flow of an expired binding kept");
    expiry(&net, conn, "sip.idle_timeout");
}

#[test]
fn sip_connections_do_not_count_against_the_s2s_limit() {
    let mut net = node("", 5);
    let sip: Vec<ConnId> = (0..5)
        .map(|n| net.connect_from_outside(XFED, Listener::SipTcp, stranger(n)))
        .collect();
    assert!(sip.iter().all(|c| !is_closed(&net, *c)));
    assert!(
        s2s_is_served(&mut net, SocketAddr::from(([203, 0, 113, 5], 5269))),
        "{}",
        net.dump(XFED)
    );
}

#[test]
fn s2s_connections_do_not_count_against_the_sip_limit() {
    let mut net = node("", 2);
    for n in 0..2 {
        assert!(s2s_is_served(
            &mut net,
            SocketAddr::from(([203, 0, 113, 5], 6000 + n))
        ));
    }
    // The s2s limit is reached: a third XMPP server is refused ...
    assert!(!s2s_is_served(
        &mut net,
        SocketAddr::from(([203, 0, 113, 5], 6002))
    ));
    // ... and SIP is served all the same.
    let conn = net.connect_from_outside(XFED, Listener::SipTcp, stranger(1));
    assert!(!is_closed(&net, conn), "{}", net.dump(XFED));
    net.outside_send(XFED, conn, options(5).as_bytes());
    let (sent, _) = net.outside_take(XFED, conn);
    assert_eq!(responses(&sent).len(), 1, "{}", net.dump(XFED));
}

#[test]
fn the_sip_connection_limit_refuses_the_newcomer_only() {
    // The default limit, 1000, with an s2s limit above it.
    let mut net = node("", 2000);
    let conns: Vec<ConnId> = (0..1000)
        .map(|n| net.connect_from_outside(XFED, Listener::SipTcp, stranger(n)))
        .collect();
    assert!(conns.iter().all(|c| !is_closed(&net, *c)));
    let extra = net.connect_from_outside(XFED, Listener::SipTls, stranger(1000));
    assert!(is_closed(&net, extra), "a 1001st SIP connection was kept");
    assert!(
        net.saw(XFED, |e| matches!(e,
            Event::ConnectionRefused { conn, peer, refusal: Refusal::Limit { key: "sip.connection_limit", limit: 1000 } }
            if *conn == extra && peer.to_string() == "198.51.100.7:41000")),
        "{}",
        net.dump(XFED)
    );
    // The others are untouched, and s2s is served.
    assert!(conns.iter().all(|c| !is_closed(&net, *c)));
    assert!(s2s_is_served(
        &mut net,
        SocketAddr::from(([203, 0, 113, 5], 5269))
    ));
}

#[test]
fn configured_timeouts_apply_and_keepalives_count_as_activity() {
    let mut net = node(
        "handshake_timeout = \"2s\"\nrequest_timeout = \"3s\"\nidle_timeout = \"20s\"\n",
        100,
    );
    let tls = net.connect_from_outside(XFED, Listener::SipTls, stranger(1));
    let silent = net.connect_from_outside(XFED, Listener::SipTcp, stranger(2));
    let pinger = net.connect_from_outside(XFED, Listener::SipTcp, stranger(3));
    net.outside_send(XFED, pinger, options(6).as_bytes());
    net.advance(Duration::from_millis(2500));
    assert!(is_closed(&net, tls) && !is_closed(&net, silent));
    net.advance(SECOND);
    assert!(is_closed(&net, silent), "{}", net.dump(XFED));
    // RFC 5626 keepalives are activity on any connection (as an OPTIONS
    // would be): a peer that keeps pinging keeps its connection.
    for _ in 0..6 {
        net.advance(15 * SECOND);
        net.outside_send(XFED, pinger, b"\r\n\r\n");
    }
    assert!(!is_closed(&net, pinger), "{}", net.dump(XFED));
    net.advance(21 * SECOND);
    assert!(is_closed(&net, pinger), "{}", net.dump(XFED));
    assert!(net.saw(XFED, |e| matches!(e,
        Event::SipConnectionExpired { conn, key: "sip.idle_timeout", after_secs: 20, .. } if *conn == pinger)));
}

#[test]
fn connections_xfed_closes_no_longer_count() {
    let mut net = node("connection_limit = 1\n", 100);
    // Lost framing (no Content-Length on a stream): 400, then closed.
    let conn = net.connect_from_outside(XFED, Listener::SipTcp, stranger(1));
    let bytes = options(7).replace("Content-Length: 0\r\n", "");
    net.outside_send(XFED, conn, bytes.as_bytes());
    let (sent, closed) = net.outside_take(XFED, conn);
    assert!(closed, "{}", net.dump(XFED));
    assert_eq!(responses(&sent)[0].status, 400);
    assert_eq!(net.nodes[XFED].gw.sip_connections(), 0);
    // So the only slot is free again.
    let next = net.connect_from_outside(XFED, Listener::SipTcp, stranger(2));
    assert!(!is_closed(&net, next), "{}", net.dump(XFED));
    let third = net.connect_from_outside(XFED, Listener::SipTcp, stranger(3));
    assert!(is_closed(&net, third), "{}", net.dump(XFED));
}

#[test]
fn outbound_connections_count_and_close_when_idle() {
    let extra =
        "connection_limit = 2\n\n[[partner]]\ndomain = \"remote.test\"\ntype = \"federated\"\n";
    let mut net = node(extra, 100);
    // alice registers over UDP a contact reached over TCP.
    let contact = SocketAddr::from(([192, 0, 2, 20], 5060));
    net.listen_outside(contact);
    let register = register_contact(2, &format!("sip:alice@{contact};transport=tcp"), 3600);
    net.sip_datagram(XFED, alice_ua(), register.as_bytes());
    assert!(
        net.saw(
            XFED,
            |e| matches!(e, Event::Registered { aor, bindings: 1, .. } if aor == "alice@xfed.test")
        ),
        "{}",
        net.dump(XFED)
    );

    // A message for her opens a connection to the contact.
    net.send(
        XFED,
        "<message xmlns='jabber:server' from='bob@remote.test/x' to='alice@xfed.test' \
         id='m1'><body>hello</body></message>",
    );
    let out = net
        .outside
        .iter()
        .find(|(_, o)| o.peer == contact)
        .map(|((_, c), _)| *c)
        .expect("a connection to the contact");
    let (sent, _) = net.outside_take(XFED, out);
    let reqs = requests(&sent);
    assert_eq!(reqs.len(), 1, "{}", net.dump(XFED));
    net.outside_send(XFED, out, &reqs[0].response(200, "c1").to_bytes());

    // It counts: with one accepted connection the limit of 2 is reached.
    let first = net.connect_from_outside(XFED, Listener::SipTcp, stranger(1));
    assert!(!is_closed(&net, first));
    let second = net.connect_from_outside(XFED, Listener::SipTcp, stranger(2));
    assert!(is_closed(&net, second), "{}", net.dump(XFED));

    // Idle, it is closed like any other.
    net.advance(IDLE + SECOND);
    assert!(is_closed(&net, out), "{}", net.dump(XFED));
    assert!(net.saw(XFED, |e| matches!(e,
        Event::SipConnectionExpired { conn, key: "sip.idle_timeout", tls: false, inbound: false, peer, .. }
        if *conn == out && peer.to_string() == "192.0.2.20:5060")));
    assert_eq!(net.nodes[XFED].gw.sip_connections(), 0);
}

/// Issue 9 (Lync correction): RFC 3428's 1,300 bytes bound a MESSAGE over
/// UDP only; over TCP a message up to `sip.max_message_size` goes through.
#[test]
fn a_message_over_1300_bytes_goes_over_tcp() {
    let extra = "\n[[partner]]\ndomain = \"remote.test\"\ntype = \"federated\"\n";
    let mut net = node(extra, 100);
    let contact = SocketAddr::from(([192, 0, 2, 20], 5060));
    net.listen_outside(contact);
    let register = register_contact(2, &format!("sip:alice@{contact};transport=tcp"), 3600);
    net.sip_datagram(XFED, alice_ua(), register.as_bytes());
    let long = "x".repeat(5000);
    net.send(
        XFED,
        &format!(
            "<message xmlns='jabber:server' from='bob@remote.test/x' to='alice@xfed.test' \
             id='big'><body>{long}</body></message>"
        ),
    );
    let out = net
        .outside
        .iter()
        .find(|(_, o)| o.peer == contact)
        .map(|((_, c), _)| *c)
        .expect("a connection to the contact");
    let (sent, _) = net.outside_take(XFED, out);
    let reqs = requests(&sent);
    assert_eq!(reqs.len(), 1, "{}", net.dump(XFED));
    assert_eq!(reqs[0].body, long.as_bytes());
    assert!(
        !net.nodes[XFED]
            .inbox
            .iter()
            .any(|e| e.attr("id") == Some("big")),
        "bounced: {:?}",
        net.nodes[XFED].inbox
    );
}
