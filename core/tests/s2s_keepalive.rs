//! Lync's two clocks on an s2s stream, on the simulated clock:
//! `gateway.keepalive_interval` (`KeepAliveInterval`): a partner must send
//! something, even a single space, that often on its stream, or the stream
//! is closed with `connection-timeout`; xfed itself sends a space every
//! half interval to partners with `keepalive = true`.
//! `gateway.stream_inactivity_timeout` (`StreamInactivityTimeout`): a
//! stream that carries no element (whitespace does not count) for that
//! long is closed gracefully with `</stream:stream>` (RFC 6120 section 4.4).

use std::time::Duration;

use xfed_core::config::{Negotiation, StreamPolicy};
use xfed_core::sim::{policy, Net, NodeSpec, T_INACTIVITY, T_KEEPALIVE};
use xfed_core::xmpp::dialback_key::dialback_key;
use xfed_core::xmpp::session::CLOSE_TIMEOUT;
use xfed_core::{ConnId, Event, Listener};

const SECOND: Duration = Duration::from_secs(1);
/// How often xfed sends its keepalive space: half the interval.
const HALF: Duration = Duration::from_secs(T_KEEPALIVE.as_secs() / 2);

fn ping(from: &str, to: &str, id: &str) -> String {
    format!("<iq xmlns='jabber:server' type='get' id='{id}' from='{from}' to='{to}'><ping xmlns='urn:xmpp:ping'/></iq>")
}

/// Pings node `b` from node `a` and asserts the result came back.
fn assert_ping_works(net: &mut Net, a: usize, b: usize, id: &str) {
    let (da, db) = (net.nodes[a].domain.clone(), net.nodes[b].domain.clone());
    net.send(a, &ping(&format!("user@{da}"), &db, id));
    let got = net.nodes[a]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some(id))
        .unwrap_or_else(|| panic!("nothing came back for {id}:\n{}", net.dump(a)));
    assert_eq!(
        got.attr("type"),
        Some("result"),
        "{got:?}\na:\n{}\nb:\n{}",
        net.dump(a),
        net.dump(b)
    );
}

/// Node `i`'s outbound stream to `remote`, once authenticated.
fn outbound_to(net: &Net, i: usize, remote: &str) -> ConnId {
    net.nodes[i]
        .events
        .iter()
        .find_map(|e| match e {
            Event::StreamAuthenticated {
                conn,
                inbound: false,
                remote: r,
                ..
            } if r == remote => Some(*conn),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no outbound stream to {remote}:\n{}", net.dump(i)))
}

/// Plain TCP and dialback, keepalives as `keepalive` says.
fn plain(keepalive: bool) -> StreamPolicy {
    StreamPolicy {
        keepalive,
        ..policy(Negotiation::NotSupported, Negotiation::NotSupported, true)
    }
}

/// Nodes federating over plain TCP with dialback, each with `keepalive`
/// towards everyone.
fn plain_net(domains: &[&'static str], keepalive: bool) -> Net {
    let specs: Vec<NodeSpec> = domains
        .iter()
        .map(|d| {
            let mut s = NodeSpec::new(d);
            s.default_policy = Some(plain(keepalive));
            s
        })
        .collect();
    Net::new(&specs)
}

/// a.test and b.test with `keepalive` towards each other; a pings b, and
/// the tap of a's outbound stream to b is returned, empty.
fn established(keepalive: bool) -> (Net, ConnId) {
    let mut net = plain_net(&["a.test", "b.test"], keepalive);
    assert_ping_works(&mut net, 0, 1, "p1");
    let out = outbound_to(&net, 0, "b.test");
    net.taps.insert((0, out), Vec::new());
    (net, out)
}

fn tapped(net: &Net, node: usize, conn: ConnId) -> String {
    String::from_utf8_lossy(&net.taps[&(node, conn)]).into_owned()
}

/// A scripted peer speaking raw XML (no TLS) to one gateway connection.
struct RawPeer {
    node: usize,
    conn: ConnId,
}

impl RawPeer {
    fn connect(net: &mut Net, node: usize) -> RawPeer {
        let now = net.now;
        let conn = net.nodes[node]
            .gw
            .accept(Listener::S2s, "10.9.9.9:4000".parse().unwrap(), now);
        net.taps.insert((node, conn), Vec::new());
        net.run();
        RawPeer { node, conn }
    }

    /// Connects to node 1 (b.test) as a.test and authenticates by
    /// dialback (node 0, a.test, confirms the key).
    fn authenticated(net: &mut Net) -> RawPeer {
        let peer = RawPeer::connect(net, 1);
        peer.say(net, &header("a.test", "b.test"));
        let key = dialback_key("s3cr3t", "b.test", "a.test", &peer.stream_id(net));
        peer.say(
            net,
            &format!("<db:result from='a.test' to='b.test'>{key}</db:result>"),
        );
        assert!(peer.is_authenticated(net, "a.test"), "{}", net.dump(1));
        peer
    }

    fn say(&self, net: &mut Net, text: &str) {
        let now = net.now;
        net.nodes[self.node]
            .gw
            .handle_bytes(self.conn, text.as_bytes(), now);
        net.run();
    }

    fn heard(&self, net: &Net) -> String {
        String::from_utf8_lossy(&net.taps[&(self.node, self.conn)]).into_owned()
    }

    /// The stream id the gateway issued in its response header.
    fn stream_id(&self, net: &Net) -> String {
        let heard = self.heard(net);
        let start = heard.find(" id='").expect("response header with id") + 5;
        let len = heard[start..].find('\'').expect("closing quote");
        heard[start..start + len].to_owned()
    }

    /// Whether the gateway reported detail containing `needle` about
    /// this connection (its closing reason included).
    fn logged(&self, net: &Net, needle: &str) -> bool {
        net.detail_has(self.node, Some(self.conn), needle)
    }

    /// Whether the gateway authenticated `remote` on this stream.
    fn is_authenticated(&self, net: &Net, remote: &str) -> bool {
        net.saw(self.node, |e| {
            matches!(e, Event::StreamAuthenticated { conn, inbound: true, remote: r, .. }
                if *conn == self.conn && r == remote)
        })
    }
}

fn header(from: &str, to: &str) -> String {
    format!("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='{from}' to='{to}' version='1.0'>")
}

// ---- our keepalives ----

#[test]
fn whitespace_keepalive_every_half_interval_on_an_idle_outbound_stream() {
    let (mut net, out) = established(true);
    net.advance(HALF - SECOND);
    assert_eq!(tapped(&net, 0, out), "");
    net.advance(SECOND);
    // RFC 6120 section 4.6.1: one space, nothing else.
    assert_eq!(tapped(&net, 0, out), " ", "{}", net.dump(0));
    // The peer took it in its stride: the same streams carry on.
    let conns = (net.nodes[0].gw.connections(), net.nodes[1].gw.connections());
    assert!(!net.detail_has(1, None, "stream error"), "{}", net.dump(1));
    assert_ping_works(&mut net, 0, 1, "p2");
    assert_eq!(
        (net.nodes[0].gw.connections(), net.nodes[1].gw.connections()),
        conns
    );
    // The stanza reset the keepalive clock.
    let before = tapped(&net, 0, out).len();
    net.advance(HALF - SECOND);
    assert_eq!(tapped(&net, 0, out).len(), before);
    net.advance(SECOND);
    assert_eq!(tapped(&net, 0, out).len(), before + 1);
}

#[test]
fn keepalives_on_an_inbound_stream_from_a_keepalive_partner() {
    // The partner's domain is known from the stream header's `from`: its
    // inbound stream gets our spaces too.
    let mut net = plain_net(&["a.test", "b.test"], true);
    let peer = RawPeer::authenticated(&mut net);
    let before = peer.heard(&net);
    net.advance(HALF - SECOND);
    assert_eq!(peer.heard(&net), before);
    net.advance(SECOND);
    assert_eq!(&peer.heard(&net)[before.len()..], " ", "{}", net.dump(1));
}

#[test]
fn no_keepalive_when_the_policy_says_so() {
    let (mut net, out) = established(false);
    net.advance(T_KEEPALIVE - SECOND);
    assert_eq!(tapped(&net, 0, out), "", "{}", net.dump(0));
}

// ---- the partner's keepalives: KeepAliveInterval ----

#[test]
fn a_partner_silent_for_the_keepalive_interval_gets_connection_timeout() {
    let mut net = plain_net(&["a.test", "b.test"], false);
    let peer = RawPeer::authenticated(&mut net);
    let before = peer.heard(&net);
    net.advance(T_KEEPALIVE - SECOND);
    assert_eq!(peer.heard(&net), before, "{}", net.dump(1));
    net.advance(SECOND);
    let heard = peer.heard(&net);
    let tail = &heard[before.len()..];
    assert!(
        tail.contains("<connection-timeout"),
        "{tail}\n{}",
        net.dump(1)
    );
    assert!(tail.ends_with("</stream:stream>"), "{tail}");
    assert!(
        net.saw(
            1,
            |e| matches!(e, Event::StreamClosed { conn, .. } if *conn == peer.conn)
        ),
        "{}",
        net.dump(1)
    );
}

#[test]
fn whitespace_from_the_partner_is_enough_to_stay_connected() {
    let mut net = plain_net(&["a.test", "b.test"], false);
    let peer = RawPeer::authenticated(&mut net);
    let before = peer.heard(&net);
    // Twice just under the interval: 598 s, short of the inactivity
    // timeout too.
    for _ in 0..2 {
        net.advance(T_KEEPALIVE - SECOND);
        peer.say(&mut net, " ");
    }
    assert_eq!(peer.heard(&net), before, "{}", net.dump(1));
}

// ---- StreamInactivityTimeout ----

#[test]
fn whitespace_does_not_keep_a_stream_active() {
    // The partner sends a space every 100 s and nothing else: it is alive
    // (no connection-timeout), but the stream is idle and closed
    // gracefully once the inactivity timeout passes after its last
    // element (the dialback request).
    let mut net = plain_net(&["a.test", "b.test"], false);
    let peer = RawPeer::authenticated(&mut net);
    let before = peer.heard(&net);
    let step = Duration::from_secs(100);
    let mut waited = Duration::ZERO;
    while waited + step < T_INACTIVITY {
        net.advance(step);
        peer.say(&mut net, " ");
        waited += step;
    }
    net.advance(T_INACTIVITY - waited - SECOND);
    assert_eq!(peer.heard(&net), before, "{}", net.dump(1));
    net.advance(SECOND);
    let heard = peer.heard(&net);
    assert_eq!(
        &heard[before.len()..],
        "</stream:stream>",
        "{}",
        net.dump(1)
    );
    assert!(peer.logged(&net, "inactivity timeout"), "{}", net.dump(1));
    // A peer that never closes its side is dropped after CLOSE_TIMEOUT.
    net.advance(CLOSE_TIMEOUT);
    assert!(
        peer.logged(&net, "peer did not close its stream"),
        "{}",
        net.dump(1)
    );
}

#[test]
fn idle_streams_between_keepalive_partners_close_gracefully_after_the_inactivity_timeout() {
    let (mut net, out) = established(true);
    net.advance(T_INACTIVITY - SECOND);
    // Only keepalive spaces went out, and no stream timed out.
    assert_eq!(tapped(&net, 0, out).trim(), "", "{}", net.dump(0));
    assert!(
        !net.detail_has(0, None, "connection-timeout"),
        "{}",
        net.dump(0)
    );
    assert!(
        !net.detail_has(1, None, "connection-timeout"),
        "{}",
        net.dump(1)
    );
    net.advance(SECOND);
    // RFC 6120 section 4.4: a plain closing tag, no stream error.
    assert_eq!(
        tapped(&net, 0, out).trim_start(),
        "</stream:stream>",
        "{}",
        net.dump(0)
    );
    assert!(
        net.detail_has(0, Some(out), "inactivity timeout"),
        "{}",
        net.dump(0)
    );
    assert!(!net.detail_has(0, None, "stream error"), "{}", net.dump(0));
    assert!(!net.detail_has(1, None, "stream error"), "{}", net.dump(1));
    // Every stream of the pair was as idle; all are gone, and the next
    // stanza opens new ones.
    assert_eq!(net.nodes[0].gw.connections(), 0, "{}", net.dump(0));
    assert_eq!(net.nodes[1].gw.connections(), 0, "{}", net.dump(1));
    assert_ping_works(&mut net, 0, 1, "p2");
}

#[test]
fn a_busy_outbound_stream_is_not_idle() {
    // a sends a stanza every 100 s on its outbound stream to b; b (plain
    // TCP, so no bidi) never sends on that stream after dialback, which is
    // normal: the silence check is for streams the partner sends on, and
    // the stream is in use, so not inactive either.
    let (mut net, out) = established(false);
    for i in 0..8 {
        net.advance(Duration::from_secs(100));
        assert_ping_works(&mut net, 0, 1, &format!("busy{i}"));
    }
    assert!(
        !tapped(&net, 0, out).contains("</stream:stream>"),
        "{}",
        net.dump(0)
    );
    assert!(
        !net.detail_has(0, None, "inactivity timeout"),
        "{}",
        net.dump(0)
    );
    assert!(
        !net.detail_has(0, None, "connection-timeout"),
        "{}",
        net.dump(0)
    );
    assert!(
        !net.detail_has(1, None, "connection-timeout"),
        "{}",
        net.dump(1)
    );
}
