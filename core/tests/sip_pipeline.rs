//! XMPP -> SIP message queues on the simulated network: several MESSAGEs
//! in flight to a user reached over TCP (`sip.max_in_flight_per_user`),
//! one at a time over UDP, sent in order; the queue bounds
//! (`sip.max_queued_per_user`, `sip.max_queued_messages`); and
//! backpressure: the s2s stream that fills a queue is left unread until it
//! drains, at most `sip.max_read_pause`, after which what does not fit
//! bounces. Every message gets exactly one outcome.

use std::net::SocketAddr;
use std::time::Duration;

use xfed_core::sim::{Net, NodeSpec};
use xfed_core::sip::{parse_datagram, Frame, Limits, Message, Request, StreamFramer};
use xfed_core::xml::Element;
use xfed_core::xmpp::stanza::{self, StanzaCondition};
use xfed_core::{ConnId, Event};

const XFED: usize = 0;
const REMOTE: usize = 1;

/// xfed.test in registrar mode, its user agents at 192.0.2.10 trusted
/// (they register without digest); remote.test federated. `{sip}` takes
/// more `[sip]` keys.
const BASE: &str = r#"
[gateway]
domains = ["xfed.test"]
dialback_secret = "a dialback secret long enough for the tests"

[sip]
mode = "registrar"
trusted = ["192.0.2.10"]
trust_udp = true
{sip}

[[sip.account]]
user = "alice"
password = "alice-password"

[[sip.account]]
user = "carol"
password = "carol-password"

[[partner]]
domain = "remote.test"
type = "federated"
"#;

fn registrar_ua() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 50_000))
}

/// Where `user`'s device listens: 192.0.2.20 for alice, .21 for carol.
fn device(user: &str) -> SocketAddr {
    let last = if user == "alice" { 20 } else { 21 };
    SocketAddr::from(([192, 0, 2, last], 5060))
}

/// xfed.test with `sip` keys, and remote.test (plain XMPP, recorded).
fn network(sip: &str) -> Net {
    let mut remote = NodeSpec::new("remote.test");
    remote.tls = false;
    let mut net = Net::new(&[NodeSpec::new("xfed.test"), remote]);
    net.enable_sip(XFED, &BASE.replace("{sip}", sip));
    net.record_stanzas(REMOTE);
    net
}

/// Registers `user`'s device, over `transport` ("tcp" or "udp"), and
/// delivers one message to it so that the s2s streams are up (before,
/// remote.test queues its stanzas and sends them in one write).
fn register(net: &mut Net, user: &str, transport: &str) {
    register_only(net, user, transport);
    burst(net, user, "warm-up", 1);
    let tcp = transport == "tcp";
    assert_eq!(answer_all(net, user, tcp), ["warm-up0"]);
}

fn register_only(net: &mut Net, user: &str, transport: &str) {
    let (ua, contact) = (registrar_ua(), device(user));
    if transport == "tcp" {
        net.listen_outside(contact);
    }
    let register = format!(
        "REGISTER sip:xfed.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ua};branch=z9hG4bK-reg-{user}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@xfed.test>;tag=r-{user}\r\n\
         To: <sip:{user}@xfed.test>\r\n\
         Call-ID: register-{user}\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:{user}@{contact};transport={transport}>\r\n\
         Expires: 3600\r\n\
         Content-Length: 0\r\n\r\n"
    );
    net.sip_datagram(XFED, ua, register.as_bytes());
    let _ = net.take_datagrams(XFED, ua);
}

/// `n` messages from bob@remote.test to `user`, ids `{prefix}0`...
fn burst(net: &mut Net, user: &str, prefix: &str, n: usize) {
    for i in 0..n {
        net.send(
            REMOTE,
            &format!(
                "<message xmlns='jabber:server' from='bob@remote.test/phone' \
                 to='{user}@xfed.test' id='{prefix}{i}' type='chat'><body>{prefix}{i}</body></message>"
            ),
        );
    }
}

/// xfed's connection to `user`'s TCP device.
fn device_conn(net: &Net, user: &str) -> ConnId {
    net.outside
        .iter()
        .find(|(_, o)| o.peer == device(user))
        .map(|((_, c), _)| *c)
        .expect("a connection to the device")
}

/// The MESSAGEs xfed sent `user`'s device since last asked.
fn sent_to(net: &mut Net, user: &str, tcp: bool) -> Vec<Request> {
    let chunks = if tcp {
        let conn = device_conn(net, user);
        vec![net.outside_take(XFED, conn).0]
    } else {
        net.take_datagrams(XFED, device(user))
    };
    let mut out = Vec::new();
    for bytes in chunks {
        if tcp {
            let mut framer = StreamFramer::new(Limits::default());
            framer.feed(&bytes);
            while let Some(frame) = framer.poll() {
                if let Ok(Frame::Message(Message::Request(r))) = frame {
                    out.push(r);
                }
            }
        } else if let Ok(Message::Request(r)) = parse_datagram(&bytes, &Limits::default()) {
            out.push(r);
        }
    }
    out
}

/// The device answers `req` 200 OK.
fn ok(net: &mut Net, user: &str, req: &Request, tcp: bool) {
    let bytes = req.response(200, "uas").to_bytes();
    if tcp {
        let conn = device_conn(net, user);
        net.outside_send(XFED, conn, &bytes);
    } else {
        net.sip_datagram(XFED, device(user), &bytes);
    }
}

fn bodies(reqs: &[Request]) -> Vec<String> {
    reqs.iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// The errors remote.test got back, as (id, condition).
fn bounces(net: &Net) -> Vec<(String, StanzaCondition)> {
    net.stanzas_received(REMOTE)
        .iter()
        .filter(|e: &&Element| e.attr("type") == Some("error"))
        .map(|e| {
            let id = e.attr("id").unwrap_or_default().to_owned();
            (id, stanza::error_condition(e).expect("a condition"))
        })
        .collect()
}

/// xfed's s2s connections that are paused now.
fn paused(net: &Net) -> usize {
    net.paused.keys().filter(|(n, _)| *n == XFED).count()
}

/// Answers every MESSAGE as it comes until none is left; the bodies in
/// the order they were sent.
fn answer_all(net: &mut Net, user: &str, tcp: bool) -> Vec<String> {
    let mut delivered = Vec::new();
    for _ in 0..10_000 {
        let reqs = sent_to(net, user, tcp);
        if reqs.is_empty() {
            return delivered;
        }
        delivered.extend(bodies(&reqs));
        for r in &reqs {
            ok(net, user, r, tcp);
        }
    }
    panic!("MESSAGEs did not stop");
}

#[test]
fn several_messages_in_flight_over_tcp_in_order() {
    let mut net = network("max_in_flight_per_user = 4");
    register(&mut net, "alice", "tcp");
    burst(&mut net, "alice", "m", 10);
    let first = sent_to(&mut net, "alice", true);
    assert_eq!(
        bodies(&first),
        ["m0", "m1", "m2", "m3"],
        "{}",
        net.dump(XFED)
    );
    // Answered out of order: each answer lets the next one go.
    ok(&mut net, "alice", &first[2], true);
    assert_eq!(bodies(&sent_to(&mut net, "alice", true)), ["m4"]);
    ok(&mut net, "alice", &first[0], true);
    ok(&mut net, "alice", &first[3], true);
    assert_eq!(bodies(&sent_to(&mut net, "alice", true)), ["m5", "m6"]);
    ok(&mut net, "alice", &first[1], true);
    let rest = answer_all(&mut net, "alice", true);
    // m4..m6 were taken above and are still unanswered: one place was
    // free, then each answer frees one.
    assert_eq!(rest, ["m7", "m8", "m9"], "{}", net.dump(XFED));
    assert!(bounces(&net).is_empty(), "{:?}", bounces(&net));
}

#[test]
fn one_message_at_a_time_over_udp_whatever_the_window() {
    let mut net = network("max_in_flight_per_user = 8");
    register(&mut net, "alice", "udp");
    burst(&mut net, "alice", "u", 5);
    let mut delivered = Vec::new();
    for _ in 0..5 {
        let reqs = sent_to(&mut net, "alice", false);
        assert_eq!(reqs.len(), 1, "{:?}", bodies(&reqs));
        delivered.extend(bodies(&reqs));
        ok(&mut net, "alice", &reqs[0], false);
    }
    assert_eq!(delivered, ["u0", "u1", "u2", "u3", "u4"]);
    assert!(sent_to(&mut net, "alice", false).is_empty());
    assert!(bounces(&net).is_empty(), "{:?}", bounces(&net));
}

/// A burst five times the queue's bound pauses the stream at half of it,
/// resumes it below a quarter, and is delivered whole and in order.
#[test]
fn a_burst_over_the_queue_bound_waits_and_is_delivered_whole() {
    let mut net = network("max_in_flight_per_user = 2\nmax_queued_per_user = 8");
    register(&mut net, "alice", "tcp");
    burst(&mut net, "alice", "b", 40);
    assert_eq!(paused(&net), 1, "{}", net.dump(XFED));
    assert!(net.nodes[XFED]
        .events
        .iter()
        .any(|e| matches!(e, Event::Detail { text, .. } if text.contains("stream paused"))));
    let tables = net.nodes[XFED].gw.sip_tables();
    assert_eq!(tables.paused_streams, 1);
    assert!(tables.queued_messages <= 8, "{tables:?}");
    let delivered = answer_all(&mut net, "alice", true);
    let expected: Vec<String> = (0..40).map(|i| format!("b{i}")).collect();
    assert_eq!(delivered, expected);
    assert_eq!(paused(&net), 0);
    assert!(bounces(&net).is_empty(), "{:?}", bounces(&net));
    assert_eq!(net.nodes[XFED].gw.sip_tables().queued_messages, 0);
}

/// A stream paused longer than `sip.max_read_pause` is read again; what
/// then does not fit the queue bounces, the rest is delivered: each
/// message has exactly one outcome.
#[test]
fn a_pause_that_runs_out_bounces_what_does_not_fit() {
    let mut net = network("max_queued_per_user = 8\nmax_read_pause = \"5s\"");
    register(&mut net, "alice", "udp");
    burst(&mut net, "alice", "p", 20);
    assert_eq!(paused(&net), 1);
    // One in flight, four waiting: the stream paused at half of 8.
    assert_eq!(net.nodes[XFED].gw.sip_tables().queued_messages, 4);
    net.advance(Duration::from_secs(4));
    assert_eq!(paused(&net), 1);
    assert!(bounces(&net).is_empty());
    net.advance(Duration::from_secs(2));
    assert_eq!(paused(&net), 0, "{}", net.dump(XFED));
    assert!(net.nodes[XFED].events.iter().any(|e| matches!(
        e,
        Event::LimitReached {
            key: "sip.max_read_pause",
            ..
        }
    )));
    // One in flight and 8 waiting; the other 11 bounced.
    let bounced = bounces(&net);
    assert_eq!(bounced.len(), 11, "{bounced:?}");
    assert!(bounced
        .iter()
        .all(|(_, c)| *c == StanzaCondition::ResourceConstraint));
    // Over UDP the one in flight was retransmitted meanwhile: each body
    // counts once.
    let mut delivered: Vec<String> = Vec::new();
    for _ in 0..20 {
        let reqs = sent_to(&mut net, "alice", false);
        let Some(r) = reqs.first() else { break };
        for body in bodies(&reqs) {
            if !delivered.contains(&body) {
                delivered.push(body);
            }
        }
        ok(&mut net, "alice", r, false);
    }
    assert_eq!(delivered.len(), 9);
    let mut outcomes: Vec<String> = delivered;
    outcomes.extend(bounced.into_iter().map(|(id, _)| id));
    outcomes.sort();
    let mut all: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    all.sort();
    assert_eq!(outcomes, all);
}

/// Without a stream to pause (the local side sends), the bounds hold:
/// per user, then over all users.
#[test]
fn the_queue_bounds_bounce_with_resource_constraint() {
    let mut net = network("max_queued_per_user = 4\nmax_queued_messages = 6");
    register_only(&mut net, "alice", "udp");
    register_only(&mut net, "carol", "udp");
    for (user, n) in [("alice", 7), ("carol", 4)] {
        for i in 0..n {
            net.send(
                XFED,
                &format!(
                    "<message xmlns='jabber:server' from='bob@remote.test/phone' \
                     to='{user}@xfed.test' id='{user}{i}'><body>x</body></message>"
                ),
            );
        }
    }
    let tables = net.nodes[XFED].gw.sip_tables();
    assert_eq!(tables.queued_messages, 6, "{tables:?}");
    assert_eq!(paused(&net), 0);
    // alice: one in flight, 4 waiting, 2 bounced (her bound); carol: one
    // in flight, 2 waiting (all of 6), 1 bounced (the total).
    let mut bounced: Vec<String> = bounces(&net).into_iter().map(|(id, _)| id).collect();
    bounced.sort();
    assert_eq!(
        bounced,
        ["alice5", "alice6", "carol3"],
        "{}",
        net.dump(XFED)
    );
}
