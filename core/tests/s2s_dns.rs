//! In-memory federation beyond fixed addresses: outbound routes found
//! through DNS (the simulated resolver of `Net::dns` answers with real DNS
//! messages), several sender domains piggybacked on one inbound stream
//! (XEP-0220 section 2.6), and the bound on stanzas waiting for a route
//! (keepalives and timeouts are in `s2s_keepalive.rs`).

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use xfed_core::config::{Negotiation, StreamPolicy};
use xfed_core::dns::RecordType;
use xfed_core::gateway::ROUTE_QUEUE_LIMIT;
use xfed_core::sim::{policy, DnsAnswer, Net, NodeSpec, Zone};
use xfed_core::xml::{parse_element, Element};
use xfed_core::xmpp::dialback_key::dialback_key;
use xfed_core::xmpp::session::AuthMethod;
use xfed_core::xmpp::stanza::{self, StanzaCondition};
use xfed_core::{ConnId, Event, Listener, Output};

fn ping(from: &str, to: &str, id: &str) -> String {
    format!("<iq xmlns='jabber:server' type='get' id='{id}' from='{from}' to='{to}'><ping xmlns='urn:xmpp:ping'/></iq>")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn error_of(e: &Element) -> Option<StanzaCondition> {
    stanza::error_condition(e)
}

/// What came back to node `i`'s local side for the stanza `id`.
fn reply<'a>(net: &'a Net, i: usize, id: &str) -> &'a Element {
    net.nodes[i]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some(id))
        .unwrap_or_else(|| panic!("nothing came back for {id}:\n{}", net.dump(i)))
}

/// Pings node `b` from node `a` and asserts the result came back.
fn assert_ping_works(net: &mut Net, a: usize, b: usize, id: &str) {
    let (da, db) = (net.nodes[a].domain.clone(), net.nodes[b].domain.clone());
    net.send(a, &ping(&format!("user@{da}"), &db, id));
    let got = reply(net, a, id);
    assert_eq!(
        got.attr("type"),
        Some("result"),
        "{got:?}\na:\n{}\nb:\n{}",
        net.dump(a),
        net.dump(b)
    );
    assert_eq!(got.attr("from"), Some(db.as_str()));
}

/// Pings from node `a` and asserts the error condition that came back.
fn assert_ping_bounces(net: &mut Net, a: usize, to: &str, id: &str, cond: StanzaCondition) {
    let da = net.nodes[a].domain.clone();
    net.send(a, &ping(&format!("user@{da}"), to, id));
    let got = reply(net, a, id);
    assert_eq!(error_of(got), Some(cond), "{got:?}\n{}", net.dump(a));
}

/// The connection node `i` logged a line containing `needle` about.
/// The first connection node `i` accepted on `listener` from `ip`.
fn accepted(net: &Net, i: usize, listener: Listener, ip: &str) -> ConnId {
    net.nodes[i]
        .events
        .iter()
        .find_map(|e| match e {
            Event::Accepted {
                conn,
                listener: l,
                peer,
            } if *l == listener && peer.ip().to_string() == ip => Some(*conn),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {listener:?} connection from {ip}:\n{}", net.dump(i)))
}

/// The candidates node `i` connected to for `domain`, in order, as
/// (address, direct TLS).
fn tried(net: &Net, i: usize, domain: &str) -> Vec<(String, bool)> {
    net.nodes[i]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Connecting {
                domain: d,
                addr,
                direct_tls,
                ..
            } if d == domain => Some((addr.to_string(), *direct_tls)),
            _ => None,
        })
        .collect()
}

/// Whether node `i`'s stream `conn` authenticated `remote` -> `local`
/// inbound by `method`.
fn inbound_by(net: &Net, i: usize, conn: ConnId, remote: &str, method: AuthMethod) -> bool {
    net.saw(i, |e| {
        matches!(e, Event::StreamAuthenticated { conn: c, inbound: true, remote: r, method: m, .. }
            if *c == conn && r == remote && *m == method)
    })
}

fn plain() -> StreamPolicy {
    policy(Negotiation::NotSupported, Negotiation::NotSupported, true)
}

fn tls_required() -> StreamPolicy {
    policy(Negotiation::Required, Negotiation::Optional, true)
}

// ---- DNS-driven routing ----

const SRV_D: &str = "_xmpps-server._tcp.b.test";
const SRV_S: &str = "_xmpp-server._tcp.b.test";
const B_ADDR: &str = "10.0.0.2";
/// No node listens there: connections are refused.
const DEAD_ADDR: &str = "10.0.0.99";

/// a.test resolves every domain through DNS; b.test (10.0.0.2, ports 5269
/// STARTTLS and 5270 direct TLS) has fixed addresses, so it dials a.test
/// back without DNS. Both refuse anything but TLS.
fn dns_net(zone: Zone) -> Net {
    dns_net_with(zone, &[])
}

/// [`dns_net`] with more nodes (10.0.0.3 on), alike to b.test.
fn dns_net_with(zone: Zone, more: &[&'static str]) -> Net {
    let mut a = NodeSpec::new("a.test");
    a.dns = true;
    a.default_policy = Some(tls_required());
    let mut specs = vec![a];
    for d in std::iter::once(&"b.test").chain(more) {
        let mut s = NodeSpec::new(d);
        s.default_policy = Some(tls_required());
        specs.push(s);
    }
    let mut net = Net::new(&specs);
    net.dns = Some(zone);
    net
}

fn asked(net: &Net) -> Vec<(String, RecordType)> {
    net.dns.as_ref().expect("zone").asked_by(0)
}

fn asked_addresses(net: &Net) -> Vec<String> {
    asked(net)
        .into_iter()
        .filter(|(_, t)| *t != RecordType::Srv)
        .map(|(n, _)| n)
        .collect()
}

fn both_srv_asked(net: &Net) {
    let asked = asked(net);
    for name in [SRV_D, SRV_S] {
        assert!(
            asked.contains(&(name.to_owned(), RecordType::Srv)),
            "{name} not asked: {asked:?}"
        );
    }
}

#[test]
fn xmpps_server_srv_leads_to_direct_tls() {
    let mut zone = Zone::new();
    zone.srv(SRV_D, &[(0, 0, 5270, "xmpps.b.test")])
        .addr("xmpps.b.test", ip(B_ADDR));
    let mut net = dns_net(zone);
    assert_ping_works(&mut net, 0, 1, "p1");
    both_srv_asked(&net);
    // The SRV target's addresses were looked up, never the domain's.
    let addrs = asked_addresses(&net);
    assert!(addrs.iter().all(|n| n == "xmpps.b.test"), "{addrs:?}");
    assert!(!addrs.is_empty());
    assert!(
        tried(&net, 0, "b.test").contains(&("10.0.0.2:5270".into(), true)),
        "{}",
        net.dump(0)
    );
    // b's direct TLS listener took it (no STARTTLS on that port), and the
    // stream authenticated there.
    let c = accepted(&net, 1, Listener::S2sDirectTls, "10.0.0.1");
    assert!(
        inbound_by(&net, 1, c, "a.test", AuthMethod::Dialback),
        "{}",
        net.dump(1)
    );
    // The route is kept: a second stanza asks DNS nothing more.
    let n = asked(&net).len();
    assert_ping_works(&mut net, 0, 1, "p2");
    assert_eq!(asked(&net).len(), n);
}

#[test]
fn xmpp_server_srv_only_leads_to_starttls() {
    let mut zone = Zone::new();
    zone.srv(SRV_S, &[(0, 0, 5269, "xmpp.b.test")])
        .addr("xmpp.b.test", ip(B_ADDR));
    let mut net = dns_net(zone);
    assert_ping_works(&mut net, 0, 1, "p1");
    both_srv_asked(&net);
    assert!(
        tried(&net, 0, "b.test").contains(&("10.0.0.2:5269".into(), false)),
        "{}",
        net.dump(0)
    );
    assert!(
        !tried(&net, 0, "b.test").iter().any(|(_, direct)| *direct),
        "{}",
        net.dump(0)
    );
    // Both require TLS, so the stream that carried the ping did STARTTLS.
    let c = accepted(&net, 1, Listener::S2s, "10.0.0.1");
    assert!(
        inbound_by(&net, 1, c, "a.test", AuthMethod::Dialback),
        "{}",
        net.dump(1)
    );
}

#[test]
fn address_records_of_the_domain_when_there_is_no_srv() {
    // RFC 6120 section 3.2.2: no SRV at all, A/AAAA of the domain, 5269.
    let mut zone = Zone::new();
    zone.addr("b.test", ip(B_ADDR));
    let mut net = dns_net(zone);
    assert_ping_works(&mut net, 0, 1, "p1");
    assert!(
        tried(&net, 0, "b.test").contains(&("10.0.0.2:5269".into(), false)),
        "{}",
        net.dump(0)
    );
}

#[test]
fn nxdomain_everywhere_bounces_every_queued_stanza_with_remote_server_not_found() {
    let mut net = dns_net(Zone::new());
    for i in 0..3 {
        let e = parse_element(&ping("user@a.test", "b.test", &format!("q{i}"))).expect("ping");
        net.nodes[0].gw.send(e, net.now);
    }
    net.run();
    for i in 0..3 {
        let got = reply(&net, 0, &format!("q{i}"));
        assert_eq!(
            error_of(got),
            Some(StanzaCondition::RemoteServerNotFound),
            "{}",
            net.dump(0)
        );
    }
    let asked: HashSet<_> = asked(&net).into_iter().collect();
    let expected: HashSet<_> = [
        (SRV_D, RecordType::Srv),
        (SRV_S, RecordType::Srv),
        ("b.test", RecordType::A),
        ("b.test", RecordType::Aaaa),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_owned(), t))
    .collect();
    assert_eq!(asked, expected);
    assert!(tried(&net, 0, "b.test").is_empty(), "{}", net.dump(0));
    assert_eq!(net.nodes[0].gw.connections(), 0);
    assert_eq!(net.nodes[1].gw.connections(), 0);
}

#[test]
fn srv_target_root_is_not_found_without_address_fallback() {
    // `.` on _xmpp-server with nothing on _xmpps-server, and `.` on both:
    // the domain decidedly offers no s2s service (RFC 6120 section 3.2.1,
    // XEP-0368), so no A/AAAA lookup follows, not even of the domain.
    let only_starttls_root = {
        let mut z = Zone::new();
        z.srv(SRV_S, &[(0, 0, 0, ".")]);
        z
    };
    let both_root = {
        let mut z = Zone::new();
        z.srv(SRV_S, &[(0, 0, 0, ".")])
            .srv(SRV_D, &[(0, 0, 0, ".")]);
        z
    };
    for zone in [only_starttls_root, both_root] {
        let mut zone = zone;
        // Were the fallback taken, it would find b.
        zone.addr("b.test", ip(B_ADDR));
        let mut net = dns_net(zone);
        assert_ping_bounces(
            &mut net,
            0,
            "b.test",
            "p1",
            StanzaCondition::RemoteServerNotFound,
        );
        both_srv_asked(&net);
        assert_eq!(asked_addresses(&net), Vec::<String>::new());
        assert!(tried(&net, 0, "b.test").is_empty(), "{}", net.dump(0));
    }
}

#[test]
fn xmpps_server_root_only_turns_direct_tls_off() {
    // XEP-0368: `.` on _xmpps-server says "no direct TLS"; the
    // _xmpp-server record still leads to a STARTTLS stream.
    let mut zone = Zone::new();
    zone.srv(SRV_D, &[(0, 0, 0, ".")])
        .srv(SRV_S, &[(0, 0, 5269, "xmpp.b.test")])
        .addr("xmpp.b.test", ip(B_ADDR));
    let mut net = dns_net(zone);
    assert_ping_works(&mut net, 0, 1, "p1");
    assert!(
        tried(&net, 0, "b.test").contains(&("10.0.0.2:5269".into(), false)),
        "{}",
        net.dump(0)
    );
}

#[test]
fn srv_target_refusing_connections_is_remote_server_timeout() {
    let mut zone = Zone::new();
    zone.srv(SRV_S, &[(0, 0, 5269, "xmpp.b.test")])
        .addr("xmpp.b.test", ip(DEAD_ADDR))
        // Were the A/AAAA fallback on the domain taken, it would work.
        .addr("b.test", ip(B_ADDR));
    let mut net = dns_net(zone);
    assert_ping_bounces(
        &mut net,
        0,
        "b.test",
        "p1",
        StanzaCondition::RemoteServerTimeout,
    );
    assert!(
        net.saw(
            0,
            |e| matches!(e, Event::ConnectFailed { reason, .. } if reason == "connection refused")
        ),
        "{}",
        net.dump(0)
    );
    // RFC 6120 section 3.2.1 step 8: no fallback once SRV answered.
    let addrs = asked_addresses(&net);
    assert!(!addrs.iter().any(|n| n == "b.test"), "{addrs:?}");
    assert_eq!(net.nodes[1].gw.connections(), 0);
    assert!(
        !net.saw(1, |e| matches!(e, Event::Accepted { .. })),
        "{}",
        net.dump(1)
    );
}

#[test]
fn dns_failure_is_remote_server_timeout() {
    // SERVFAIL on the SRV lookups, after the retry: no fallback either,
    // which could bypass a record the resolver failed to deliver.
    let mut zone = Zone::new();
    zone.set(SRV_S, RecordType::Srv, DnsAnswer::ServFail)
        .set(SRV_D, RecordType::Srv, DnsAnswer::ServFail)
        .addr("b.test", ip(B_ADDR));
    let mut net = dns_net(zone);
    assert_ping_bounces(
        &mut net,
        0,
        "b.test",
        "p1",
        StanzaCondition::RemoteServerTimeout,
    );
    assert_eq!(asked_addresses(&net), Vec::<String>::new());
    assert_eq!(
        asked(&net).len(),
        4,
        "each SRV query sent twice: {:?}",
        asked(&net)
    );
}

#[test]
fn silent_resolver_times_out_on_the_simulated_clock() {
    let mut zone = Zone::new();
    zone.set(SRV_S, RecordType::Srv, DnsAnswer::Silent).set(
        SRV_D,
        RecordType::Srv,
        DnsAnswer::Silent,
    );
    let mut net = dns_net(zone);
    net.send(0, &ping("user@a.test", "b.test", "p1"));
    assert!(net.nodes[0].inbox.is_empty(), "{}", net.dump(0));
    // 5 s per query and one retry: 10 s.
    net.advance(Duration::from_secs(5));
    assert!(net.nodes[0].inbox.is_empty(), "{}", net.dump(0));
    net.advance(Duration::from_secs(5));
    let got = reply(&net, 0, "p1");
    assert_eq!(error_of(got), Some(StanzaCondition::RemoteServerTimeout));
}

#[test]
fn second_srv_target_is_tried_when_the_first_refuses() {
    // The better target has two addresses, both refused; then the next
    // target works.
    let mut zone = Zone::new();
    zone.srv(
        SRV_S,
        &[(10, 0, 5269, "dead.b.test"), (20, 0, 5269, "xmpp.b.test")],
    )
    .addr("dead.b.test", ip(DEAD_ADDR))
    .addr("dead.b.test", ip("2001:db8::dead"))
    .addr("xmpp.b.test", ip(B_ADDR));
    let mut net = dns_net(zone);
    assert_ping_works(&mut net, 0, 1, "p1");
    let tried = tried(&net, 0, "b.test");
    let tried: Vec<&str> = tried.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        tried,
        ["[2001:db8::dead]:5269", "10.0.0.99:5269", "10.0.0.2:5269"],
        "{}",
        net.dump(0)
    );
    assert!(
        net.detail_has(0, None, "trying the next address"),
        "{}",
        net.dump(0)
    );
}

#[test]
fn refused_direct_tls_falls_back_to_the_starttls_record() {
    // At equal priority direct TLS is tried first; its target refuses, the
    // _xmpp-server record then carries the stream.
    let mut zone = Zone::new();
    zone.srv(SRV_D, &[(0, 0, 5270, "dead.b.test")])
        .srv(SRV_S, &[(0, 0, 5269, "xmpp.b.test")])
        .addr("dead.b.test", ip(DEAD_ADDR))
        .addr("xmpp.b.test", ip(B_ADDR));
    let mut net = dns_net(zone);
    assert_ping_works(&mut net, 0, 1, "p1");
    assert_eq!(
        tried(&net, 0, "b.test"),
        [
            ("10.0.0.99:5270".into(), true),
            ("10.0.0.2:5269".into(), false)
        ],
        "{}",
        net.dump(0)
    );
}

#[test]
fn candidate_refusing_the_stream_is_skipped_too() {
    // The better target answers TCP but is another server (c.test), which
    // refuses a stream for b.test (host-unknown); the next target works.
    let mut zone = Zone::new();
    zone.srv(
        SRV_S,
        &[(10, 0, 5269, "other.b.test"), (20, 0, 5269, "xmpp.b.test")],
    )
    .addr("other.b.test", ip("10.0.0.3"))
    .addr("xmpp.b.test", ip(B_ADDR));
    let mut net = dns_net_with(zone, &["c.test"]);
    assert_ping_works(&mut net, 0, 1, "p1");
    assert!(net.detail_has(2, None, "host-unknown"), "{}", net.dump(2));
    assert!(
        net.detail_has(0, None, "trying the next address"),
        "{}",
        net.dump(0)
    );
}

// ---- raw peers ----

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

    /// Whether the gateway logged `needle` about this connection.
    /// Whether the gateway authenticated `remote` on this stream.
    fn authenticated(&self, net: &Net, remote: &str) -> bool {
        net.saw(self.node, |e| {
            matches!(e, Event::StreamAuthenticated { conn, inbound: true, remote: r, .. }
                if *conn == self.conn && r == remote)
        })
    }
}

fn header(from: &str, to: &str) -> String {
    format!("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='{from}' to='{to}' version='1.0'>")
}

/// Nodes federating over plain TCP with dialback, all with the default
/// secret of the sim.
fn plain_net(domains: &[&'static str]) -> Net {
    let specs: Vec<NodeSpec> = domains
        .iter()
        .map(|d| {
            let mut s = NodeSpec::new(d);
            s.default_policy = Some(plain());
            s
        })
        .collect();
    Net::new(&specs)
}

fn message(from: &str, to: &str, id: &str) -> String {
    format!("<message xmlns='jabber:server' id='{id}' from='{from}' to='{to}' type='chat'><body>hi</body></message>")
}

// ---- several domain pairs on one inbound stream ----

#[test]
fn piggybacked_sender_domains_are_verified_each_and_only_they_pass() {
    // One stream to b.test carries dialback for a.test and c.test (both
    // real nodes, sharing the secret the keys are made with).
    let mut net = plain_net(&["a.test", "b.test", "c.test"]);
    let peer = RawPeer::connect(&mut net, 1);
    peer.say(&mut net, &header("a.test", "b.test"));
    let sid = peer.stream_id(&net);
    let key_a = dialback_key("s3cr3t", "b.test", "a.test", &sid);
    let key_c = dialback_key("s3cr3t", "b.test", "c.test", &sid);
    peer.say(
        &mut net,
        &format!("<db:result from='a.test' to='b.test'>{key_a}</db:result><db:result from='c.test' to='b.test'>{key_c}</db:result>"),
    );
    let heard = peer.heard(&net);
    for sender in ["a.test", "c.test"] {
        assert!(
            heard.contains(&format!("from='b.test' to='{sender}' type='valid'")),
            "{sender} not valid: {heard}\n{}",
            net.dump(1)
        );
        assert!(peer.authenticated(&net, sender), "{}", net.dump(1));
    }
    // Each key was checked with its own authoritative server.
    for (node, sender) in [(0, "a.test"), (2, "c.test")] {
        assert!(
            net.detail_has(1, None, &format!("verifying dialback key of {sender}")),
            "{}",
            net.dump(1)
        );
        assert!(
            net.detail_has(1, None, &format!("new route b.test -> {sender}")),
            "{}",
            net.dump(1)
        );
        assert!(net.nodes[node].gw.connections() > 0, "{}", net.dump(node));
    }
    // A stanza from each verified sender is accepted: b answers each (no
    // local delivery yet), and the answer reaches the sender's own node.
    peer.say(&mut net, &message("alice@a.test", "bob@b.test", "m-a"));
    peer.say(&mut net, &message("carol@c.test", "bob@b.test", "m-c"));
    for (node, id) in [(0, "m-a"), (2, "m-c")] {
        let got = reply(&net, node, id);
        assert_eq!(error_of(got), Some(StanzaCondition::ServiceUnavailable));
        assert_eq!(got.attr("from"), Some("bob@b.test"));
    }
    assert!(
        !peer.heard(&net).contains("stream:error"),
        "{}",
        peer.heard(&net)
    );
    // A third sender never verified on this stream is refused.
    peer.say(&mut net, &message("mallory@d.test", "bob@b.test", "m-d"));
    let heard = peer.heard(&net);
    assert!(heard.contains("<invalid-from"), "{heard}");
    assert!(heard.ends_with("</stream:stream>"), "{heard}");
}

#[test]
fn a_failing_piggybacked_pair_leaves_the_verified_one_in_place() {
    // XEP-0220 section 2.4: only the first pair failing closes the stream.
    let mut net = plain_net(&["a.test", "b.test", "c.test"]);
    let peer = RawPeer::connect(&mut net, 1);
    peer.say(&mut net, &header("a.test", "b.test"));
    let sid = peer.stream_id(&net);
    let key_a = dialback_key("s3cr3t", "b.test", "a.test", &sid);
    peer.say(
        &mut net,
        &format!("<db:result from='a.test' to='b.test'>{key_a}</db:result>"),
    );
    peer.say(
        &mut net,
        "<db:result from='c.test' to='b.test'>0123456789abcdef</db:result>",
    );
    let heard = peer.heard(&net);
    assert!(
        heard.contains("from='b.test' to='a.test' type='valid'"),
        "{heard}"
    );
    assert!(
        heard.contains("from='b.test' to='c.test' type='invalid'"),
        "{heard}"
    );
    assert!(!heard.contains("stream:error"), "{heard}");
    peer.say(&mut net, &message("alice@a.test", "bob@b.test", "m-a"));
    assert_eq!(
        error_of(reply(&net, 0, "m-a")),
        Some(StanzaCondition::ServiceUnavailable)
    );
    peer.say(&mut net, &message("carol@c.test", "bob@b.test", "m-c"));
    assert!(
        peer.heard(&net).contains("<invalid-from"),
        "{}",
        peer.heard(&net)
    );
}

// ---- dialback verification over a route found through DNS ----

const SRV_A: &str = "_xmpp-server._tcp.a.test";

/// b.test finds every domain through DNS; a raw peer claims a.test towards
/// it with a correct key, so b must reach a.test's authoritative server.
/// c.test serves only itself.
fn verify_through_dns(zone: Zone) -> (Net, RawPeer) {
    let specs: Vec<NodeSpec> = ["a.test", "b.test", "c.test"]
        .into_iter()
        .map(|d| {
            let mut s = NodeSpec::new(d);
            s.default_policy = Some(plain());
            s.dns = d == "b.test";
            s
        })
        .collect();
    let mut net = Net::new(&specs);
    net.dns = Some(zone);
    let peer = RawPeer::connect(&mut net, 1);
    peer.say(&mut net, &header("a.test", "b.test"));
    let key = dialback_key("s3cr3t", "b.test", "a.test", &peer.stream_id(&net));
    peer.say(
        &mut net,
        &format!("<db:result from='a.test' to='b.test'>{key}</db:result>"),
    );
    (net, peer)
}

#[test]
fn verification_follows_the_candidates_of_the_authoritative_server() {
    // The first address refuses TCP, the second is a server that refuses
    // the stream, the third is a.test: the db:verify waits for it.
    let mut zone = Zone::new();
    zone.srv(
        SRV_A,
        &[
            (10, 0, 5269, "dead.a.test"),
            (20, 0, 5269, "other.a.test"),
            (30, 0, 5269, "xmpp.a.test"),
        ],
    )
    .addr("dead.a.test", ip(DEAD_ADDR))
    .addr("other.a.test", ip("10.0.0.3"))
    .addr("xmpp.a.test", ip("10.0.0.1"));
    let (net, peer) = verify_through_dns(zone);
    let heard = peer.heard(&net);
    assert!(
        heard.contains("from='b.test' to='a.test' type='valid'"),
        "{heard}\n{}",
        net.dump(1)
    );
    assert!(peer.authenticated(&net, "a.test"), "{}", net.dump(1));
    assert!(net.detail_has(2, None, "host-unknown"), "{}", net.dump(2));
}

/// The `<db:result type='error'>` the peer heard, as an element in the
/// stream's namespaces.
fn dialback_error(heard: &str) -> Element {
    let at = heard
        .find("type='error'")
        .unwrap_or_else(|| panic!("no dialback error in {heard}"));
    let start = heard[..at].rfind("<db:result").expect("db:result");
    let end = heard[start..].find("</db:result>").expect("end") + start + 12;
    let xml = heard[start..end].replacen(
        "<db:result",
        "<db:result xmlns='jabber:server' xmlns:db='jabber:server:dialback'",
        1,
    );
    parse_element(&xml).expect("db:result")
}

#[test]
fn verification_fails_at_once_when_the_authoritative_server_refuses() {
    // XEP-0220 section 2.4: the Receiving Server could not connect; the
    // request gets its error now, not the establishment timeout, and the
    // stream stays open.
    let mut zone = Zone::new();
    zone.srv(SRV_A, &[(10, 0, 5269, "dead.a.test")])
        .addr("dead.a.test", ip(DEAD_ADDR));
    let (mut net, peer) = verify_through_dns(zone);
    let heard = peer.heard(&net);
    let e = dialback_error(&heard);
    assert_eq!(e.attr("type"), Some("error"), "{heard}\n{}", net.dump(1));
    assert_eq!(e.attr("from"), Some("b.test"));
    assert_eq!(e.attr("to"), Some("a.test"));
    assert_eq!(error_of(&e), Some(StanzaCondition::RemoteServerTimeout));
    assert!(!heard.contains("stream:error"), "{heard}");
    // Nothing was left waiting: the establishment timeout finds only the
    // unauthenticated stream itself.
    net.advance(xfed_core::sim::T_ESTABLISH);
    assert!(
        peer.heard(&net).contains("<connection-timeout"),
        "{}",
        peer.heard(&net)
    );
}

#[test]
fn verification_fails_when_the_authoritative_domain_is_not_in_dns() {
    let (net, peer) = verify_through_dns(Zone::new());
    let e = dialback_error(&peer.heard(&net));
    assert_eq!(error_of(&e), Some(StanzaCondition::RemoteServerNotFound));
}

// ---- the route queue ----

#[test]
fn route_queue_is_bounded_and_the_rest_delivered_once_ready() {
    let mut net = plain_net(&["a.test", "b.test"]);
    let total = ROUTE_QUEUE_LIMIT + 5;
    for i in 0..total {
        let e = parse_element(&ping("user@a.test", "b.test", &format!("q{i}"))).expect("ping");
        net.nodes[0].gw.send(e, net.now);
    }
    // Before the network moves at all, the excess is already bounced.
    let mut pending = Vec::new();
    let mut bounced = Vec::new();
    while let Some(out) = net.nodes[0].gw.poll_output() {
        match out {
            Output::Stanza(e) => bounced.push(e),
            other => pending.push(other),
        }
    }
    let ids: Vec<&str> = bounced.iter().filter_map(|e| e.attr("id")).collect();
    let expected: Vec<String> = (ROUTE_QUEUE_LIMIT..total)
        .map(|i| format!("q{i}"))
        .collect();
    assert_eq!(ids, expected);
    assert!(bounced
        .iter()
        .all(|e| error_of(e) == Some(StanzaCondition::ResourceConstraint)));
    for out in pending {
        net.apply(0, out);
    }
    net.run();
    // The queued ones all went through, in order, once the route was up.
    let results: Vec<&str> = net.nodes[0]
        .inbox
        .iter()
        .filter(|e| e.attr("type") == Some("result"))
        .filter_map(|e| e.attr("id"))
        .collect();
    let expected: Vec<String> = (0..ROUTE_QUEUE_LIMIT).map(|i| format!("q{i}")).collect();
    assert_eq!(results, expected, "{}", net.dump(0));
    assert!(net.nodes[0].inbox.iter().all(|e| error_of(e).is_none()));
    // The queue is free again.
    assert_ping_works(&mut net, 0, 1, "after");
}

#[test]
fn a_domain_dns_cannot_carry_is_bounced_not_lost() {
    // A valid JID domain longer than a DNS name may be (255 octets): its
    // resolution ends as soon as it starts, and the stanza that created
    // the route must still be answered.
    let label = "x".repeat(60);
    let long = format!("{label}.{label}.{label}.{label}.{label}.test");
    let mut net = dns_net(Zone::new());
    assert_ping_bounces(
        &mut net,
        0,
        &long,
        "p-long",
        StanzaCondition::RemoteServerNotFound,
    );
    assert!(asked(&net).is_empty());
    assert_eq!(net.nodes[0].gw.routes(), 0);
}
