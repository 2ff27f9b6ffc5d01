//! What one unauthenticated peer can make the s2s side hold (issue 8,
//! defect 2): dialback requests pending per stream and per originating
//! domain, routes, DNS queries in flight (`[gateway]`
//! `max_pending_dialback_per_stream`, `max_pending_dialback_per_domain`,
//! `max_routes`, `max_dns_queries`); senders that are IP literals; and
//! what a closed stream leaves behind. All on the simulated clock, with
//! the peer played raw over plain TCP.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use xfed_core::config::Negotiation;
use xfed_core::dns::RecordType;
use xfed_core::sim::{policy, DnsAnswer, Net, NodeSpec, Zone};
use xfed_core::xml::{parse_element, Element};
use xfed_core::xmpp::session::S2sBounds;
use xfed_core::xmpp::stanza::{self, StanzaCondition};
use xfed_core::{ConnId, Event, Level, Listener};

const SECOND: Duration = Duration::from_secs(1);
const A: usize = 0;
const B: usize = 1;

/// A scripted peer speaking raw XML (no TLS) to node `node`.
struct RawPeer {
    node: usize,
    conn: ConnId,
}

impl RawPeer {
    /// Connects, opens a stream claiming `from`, and reads the features.
    fn open(net: &mut Net, node: usize, from: &str) -> RawPeer {
        let now = net.now;
        let peer: SocketAddr = "10.9.9.9:4000".parse().expect("address");
        let conn = net.nodes[node].gw.accept(Listener::S2s, peer, now);
        net.taps.insert((node, conn), Vec::new());
        net.run();
        let p = RawPeer { node, conn };
        let to = net.nodes[node].domain.clone();
        p.say(net, &format!("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='{from}' to='{to}' version='1.0'>"));
        p
    }

    fn say(&self, net: &mut Net, text: &str) {
        let now = net.now;
        net.nodes[self.node]
            .gw
            .handle_bytes(self.conn, text.as_bytes(), now);
        net.run();
    }

    /// Asks to be verified as each of `senders`, in one read.
    fn claim(&self, net: &mut Net, senders: &[String]) {
        let to = net.nodes[self.node].domain.clone();
        let text: String = senders
            .iter()
            .map(|s| format!("<db:result from='{s}' to='{to}'>00ff</db:result>"))
            .collect();
        self.say(net, &text);
    }

    /// The peer closes the TCP connection.
    fn hang_up(&self, net: &mut Net) {
        let now = net.now;
        net.nodes[self.node].gw.handle_closed(self.conn, now);
        net.run();
    }

    fn heard(&self, net: &Net) -> String {
        String::from_utf8_lossy(&net.taps[&(self.node, self.conn)]).into_owned()
    }

    /// The dialback errors heard: (their `to`, the condition).
    fn errors(&self, net: &Net) -> Vec<(String, Option<StanzaCondition>)> {
        let heard = self.heard(net);
        let mut out = Vec::new();
        let mut rest = heard.as_str();
        while let Some(start) = rest.find("<db:result") {
            let Some(len) = rest[start..].find("</db:result>") else {
                break;
            };
            let xml = rest[start..start + len + 12].replacen(
                "<db:result",
                "<db:result xmlns='jabber:server' xmlns:db='jabber:server:dialback'",
                1,
            );
            let e: Element = parse_element(&xml).expect("db:result");
            if e.attr("type") == Some("error") {
                let to = e.attr("to").unwrap_or_default().to_owned();
                out.push((to, stanza::error_condition(&e)));
            }
            rest = &rest[start + len + 12..];
        }
        out
    }

    /// How many dialback errors with `cond` were heard.
    fn refused_with(&self, net: &Net, cond: StanzaCondition) -> usize {
        self.errors(net)
            .iter()
            .filter(|(_, c)| *c == Some(cond))
            .count()
    }

    /// The warnings about this stream.
    fn warnings<'a>(&self, net: &'a Net) -> Vec<&'a Event> {
        net.nodes[self.node]
            .events
            .iter()
            .filter(|e| e.conn() == Some(self.conn) && e.level() == Level::Warn)
            .collect()
    }

    /// Why dialback requests on this stream were refused.
    fn refusals(&self, net: &Net) -> Vec<String> {
        self.warnings(net)
            .into_iter()
            .filter_map(|e| match e {
                Event::DialbackRefused { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

fn plain() -> xfed_core::config::StreamPolicy {
    policy(Negotiation::NotSupported, Negotiation::NotSupported, true)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// `n` distinct domains an attacker claims.
fn evil(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("d{i}.evil.test")).collect()
}

/// Makes the resolver silent for `domain`'s SRV records: its lookups hold
/// a query until they time out, as an attacker's own name servers would.
fn silence(zone: &mut Zone, domain: &str) {
    for service in ["_xmpp-server", "_xmpps-server"] {
        zone.set(
            &format!("{service}._tcp.{domain}"),
            RecordType::Srv,
            DnsAnswer::Silent,
        );
    }
}

/// a.test (node 0, with `bounds`) finds every domain through DNS; b.test
/// (node 1) is a legitimate peer that reaches a.test at its fixed address
/// and is found by a.test through its A record. The `silent` domains'
/// DNS never answers. Plain TCP and dialback everywhere; a's own policy
/// has TLS optional, not "not-supported", so that its routes look up both
/// SRV records (the direct TLS one is skipped for a partner that gets no
/// TLS).
fn net(bounds: S2sBounds, silent: &[String]) -> Net {
    let mut a = NodeSpec::new("a.test");
    a.dns = true;
    a.default_policy = Some(policy(
        Negotiation::Optional,
        Negotiation::NotSupported,
        true,
    ));
    a.bounds = bounds;
    let mut b = NodeSpec::new("b.test");
    b.default_policy = Some(plain());
    let mut net = Net::new(&[a, b]);
    let mut zone = Zone::new();
    zone.addr("b.test", ip("10.0.0.2"));
    for d in silent {
        silence(&mut zone, d);
    }
    net.dns = Some(zone);
    net
}

fn dns_asked(net: &Net) -> usize {
    net.dns.as_ref().expect("zone").asked_by(A).len()
}

/// b.test pings a.test, which needs a.test to verify b.test's dialback
/// key (DNS, a route, a `db:verify`) and answer over its own route.
fn assert_legit_peer_served(net: &mut Net, id: &str) {
    net.send(
        B,
        &format!("<iq xmlns='jabber:server' type='get' id='{id}' from='bob@b.test' to='a.test'><ping xmlns='urn:xmpp:ping'/></iq>"),
    );
    let got = net.nodes[B]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some(id))
        .unwrap_or_else(|| panic!("no answer to {id}:\n{}", net.dump(A)));
    assert_eq!(got.attr("type"), Some("result"), "{got:?}\n{}", net.dump(A));
}

fn bounds(per_stream: usize, per_domain: usize, routes: usize, dns: usize) -> S2sBounds {
    S2sBounds {
        max_pending_dialback_per_stream: per_stream,
        max_pending_dialback_per_domain: per_domain,
        max_routes: routes,
        max_dns_queries: dns,
        ..S2sBounds::default()
    }
}

#[test]
fn a_thousand_db_results_on_one_stream_start_ten_verifications_and_b_is_still_served() {
    let claimed = evil(1000);
    let mut net = net(S2sBounds::default(), &claimed);
    let attacker = RawPeer::open(&mut net, A, "d0.evil.test");
    attacker.claim(&mut net, &claimed);

    // Ten verifications (the default per stream), each with its route and
    // its two SRV queries; nothing dialled.
    let gw = &net.nodes[A].gw;
    assert_eq!(gw.pending_dialback(), 10, "{}", net.dump(A));
    assert_eq!(gw.routes(), 10);
    assert_eq!(gw.dns_queries(), 20);
    assert_eq!(dns_asked(&net), 20);
    assert_eq!(gw.s2s_connections(), 1);
    // The other 990 are refused at once with a dialback error (XEP-0220
    // section 2.4), and the stream stays open.
    assert_eq!(
        attacker.refused_with(&net, StanzaCondition::ResourceConstraint),
        990,
        "{}",
        attacker.heard(&net)
    );
    assert!(!attacker.heard(&net).contains("stream:error"));
    // Logged, but not 990 times.
    let refusals = attacker.refusals(&net);
    assert!(
        refusals
            .iter()
            .any(|w| w.contains("gateway.max_pending_dialback_per_stream")),
        "{refusals:?}"
    );
    let warnings = attacker.warnings(&net);
    assert!(warnings.len() <= 20, "{warnings:?}");

    // Meanwhile a legitimate peer's dialback goes through.
    assert_legit_peer_served(&mut net, "ping-1");

    // When the attacker's DNS times out, its verifications fail and
    // nothing of them is left; b.test's route stays.
    net.advance(11 * SECOND);
    let gw = &net.nodes[A].gw;
    assert_eq!(gw.pending_dialback(), 0, "{}", net.dump(A));
    assert_eq!(gw.routes(), 1);
    assert_eq!(gw.dns_queries(), 0);
    assert_eq!(
        attacker.refused_with(&net, StanzaCondition::RemoteServerTimeout),
        10
    );
    // A second wave is bounded the same way.
    let again = evil(1000);
    attacker.claim(&mut net, &again[500..]);
    assert_eq!(net.nodes[A].gw.pending_dialback(), 10);
    assert_eq!(
        attacker.refused_with(&net, StanzaCondition::ResourceConstraint),
        990 + 490
    );
    // Still one window of gateway.log_lines_per_source (20) for it all,
    // and the count of the rest when the stream goes.
    assert!(attacker.warnings(&net).len() <= 20, "{}", net.dump(A));
    attacker.hang_up(&mut net);
    let last = attacker.warnings(&net);
    assert!(
        matches!(last.last(), Some(Event::Suppressed { count, .. }) if *count > 0),
        "{last:?}"
    );
    assert_eq!(net.nodes[A].gw.pending_dialback(), 0);
    assert_eq!(net.nodes[A].gw.routes(), 1);
}

#[test]
fn dns_queries_in_flight_never_exceed_max_dns_queries() {
    let claimed = evil(100);
    let mut net = net(bounds(1000, 20, 1000, 8), &claimed);
    let attacker = RawPeer::open(&mut net, A, "d0.evil.test");
    attacker.claim(&mut net, &claimed);
    assert_eq!(net.nodes[A].gw.pending_dialback(), 100);
    assert_eq!(net.nodes[A].gw.dns_queries(), 8, "{}", net.dump(A));
    assert_eq!(dns_asked(&net), 8);
    assert!(
        net.saw(
            A,
            |e| matches!(e, Event::LimitReached { key, .. } if *key == "gateway.max_dns_queries")
        ),
        "{}",
        net.dump(A)
    );

    // Second by second: never more than 8 out; a lookup that waited 10 s
    // for a slot fails as a DNS timeout, and everything ends in 20 s.
    for _ in 0..20 {
        net.advance(SECOND);
        assert!(net.nodes[A].gw.dns_queries() <= 8, "{}", net.dump(A));
    }
    let gw = &net.nodes[A].gw;
    assert_eq!(gw.pending_dialback(), 0, "{}", net.dump(A));
    assert_eq!(gw.routes(), 0);
    assert_eq!(gw.dns_queries(), 0);
    assert_eq!(
        attacker.refused_with(&net, StanzaCondition::RemoteServerTimeout),
        100,
        "{}",
        attacker.heard(&net)
    );
    // Once the resolver is free again, b.test is served.
    assert_legit_peer_served(&mut net, "ping-2");
}

#[test]
fn max_routes_refuses_verifications_and_bounces_stanzas_beyond_it() {
    let claimed = evil(50);
    let mut net = net(bounds(1000, 20, 5, 100), &claimed);
    let attacker = RawPeer::open(&mut net, A, "d0.evil.test");
    attacker.claim(&mut net, &claimed);
    let gw = &net.nodes[A].gw;
    assert_eq!(gw.routes(), 5, "{}", net.dump(A));
    assert_eq!(gw.pending_dialback(), 5);
    assert_eq!(dns_asked(&net), 10);
    assert_eq!(
        attacker.refused_with(&net, StanzaCondition::ResourceConstraint),
        45
    );
    assert!(
        attacker
            .refusals(&net)
            .iter()
            .any(|w| w.contains("gateway.max_routes")),
        "{}",
        net.dump(A)
    );
    // A stanza of a local user that needs a new route is bounced.
    net.send(
        A,
        "<message xmlns='jabber:server' id='m1' from='alice@a.test' to='bob@c.test'><body>hi</body></message>",
    );
    let got = net.nodes[A]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some("m1"))
        .unwrap_or_else(|| panic!("m1 not bounced:\n{}", net.dump(A)));
    assert_eq!(
        stanza::error_condition(got),
        Some(StanzaCondition::ResourceConstraint)
    );
    assert_eq!(net.nodes[A].gw.routes(), 5);
}

#[test]
fn ip_literal_senders_and_foreign_targets_are_refused_without_dns_or_connect() {
    let mut net = net(S2sBounds::default(), &[]);
    let attacker = RawPeer::open(&mut net, A, "x.evil.test");
    // 10.0.0.2 is b.test's address: verifying "10.0.0.2" would dial it.
    attacker.say(
        &mut net,
        "<db:result from='10.0.0.2' to='a.test'>00ff</db:result>\
         <db:result from='[2001:db8::1]' to='a.test'>00ff</db:result>\
         <db:result from='bad domain!' to='a.test'>00ff</db:result>\
         <db:result from='x.evil.test' to='elsewhere.test'>00ff</db:result>",
    );
    let errors = attacker.errors(&net);
    assert_eq!(
        errors,
        [
            ("10.0.0.2".to_owned(), Some(StanzaCondition::NotAcceptable)),
            (
                "[2001:db8::1]".to_owned(),
                Some(StanzaCondition::NotAcceptable)
            ),
            (
                "bad domain!".to_owned(),
                Some(StanzaCondition::NotAcceptable)
            ),
            (
                "x.evil.test".to_owned(),
                Some(StanzaCondition::ItemNotFound)
            ),
        ],
        "{}",
        attacker.heard(&net)
    );
    assert!(!attacker.heard(&net).contains("stream:error"));
    assert_eq!(dns_asked(&net), 0);
    assert_eq!(net.nodes[A].gw.routes(), 0);
    assert_eq!(net.nodes[A].gw.pending_dialback(), 0);
    assert_eq!(net.nodes[A].gw.s2s_connections(), 1, "{}", net.dump(A));
    assert_eq!(net.nodes[B].gw.s2s_connections(), 0, "{}", net.dump(B));
    let refusals = attacker.refusals(&net);
    for needle in ["10.0.0.2", "2001:db8::1", "IP literal", "not served here"] {
        assert!(
            refusals.iter().any(|w| w.contains(needle)),
            "no refusal with {needle:?}: {refusals:?}"
        );
    }
}

#[test]
fn pending_verifications_per_domain_are_bounded_across_streams() {
    let victim = vec!["victim.test".to_owned()];
    let mut net = net(bounds(10, 2, 1000, 100), &victim);
    let peers: Vec<RawPeer> = (0..3)
        .map(|_| RawPeer::open(&mut net, A, "victim.test"))
        .collect();
    for p in &peers {
        p.claim(&mut net, &victim);
    }
    assert_eq!(net.nodes[A].gw.pending_dialback(), 2, "{}", net.dump(A));
    assert!(peers[0].errors(&net).is_empty());
    assert!(peers[1].errors(&net).is_empty());
    assert_eq!(
        peers[2].errors(&net),
        [(
            "victim.test".to_owned(),
            Some(StanzaCondition::ResourceConstraint)
        )]
    );
    assert!(
        peers[2]
            .refusals(&net)
            .iter()
            .any(|w| w.contains("gateway.max_pending_dialback_per_domain")),
        "{}",
        net.dump(A)
    );
    // One route, whatever the number of streams claiming the domain.
    assert_eq!(net.nodes[A].gw.routes(), 1);
    // A stream that goes away gives its place back.
    peers[0].hang_up(&mut net);
    assert_eq!(net.nodes[A].gw.pending_dialback(), 1);
    let fourth = RawPeer::open(&mut net, A, "victim.test");
    fourth.claim(&mut net, &victim);
    assert!(fourth.errors(&net).is_empty(), "{}", fourth.heard(&net));
    assert_eq!(net.nodes[A].gw.pending_dialback(), 2);
}

#[test]
fn a_closed_stream_leaves_no_verification_route_or_connection_behind() {
    let mut claimed = evil(9);
    // One more whose server accepts TCP and then says nothing: the
    // verification waits on an outbound stream being set up.
    claimed.push("slow.evil.test".to_owned());
    let mut net = net(S2sBounds::default(), &claimed[..9]);
    if let Some(zone) = net.dns.as_mut() {
        zone.addr("slow.evil.test", ip("10.0.5.5"));
    }
    net.listen_outside("10.0.5.5:5269".parse().expect("address"));
    let attacker = RawPeer::open(&mut net, A, "d0.evil.test");
    attacker.claim(&mut net, &claimed);
    let gw = &net.nodes[A].gw;
    assert_eq!(gw.pending_dialback(), 10, "{}", net.dump(A));
    assert_eq!(gw.routes(), 10);
    assert_eq!(gw.s2s_connections(), 2);
    let slow = net.outside_conns(A);
    assert_eq!(slow.len(), 1);

    attacker.hang_up(&mut net);
    let gw = &net.nodes[A].gw;
    assert_eq!(gw.pending_dialback(), 0, "{}", net.dump(A));
    assert_eq!(gw.routes(), 0);
    assert_eq!(gw.s2s_connections(), 0);
    assert!(net.outside[&(A, slow[0])].closed, "{}", net.dump(A));
    // The queries already sent stay counted until the runtime drops them
    // with their timeout; then nothing is left.
    assert_eq!(gw.dns_queries(), 18);
    net.advance(6 * SECOND);
    assert_eq!(net.nodes[A].gw.dns_queries(), 0);
    // 9 silent lookups' SRV queries, and slow.evil.test's four answered
    // ones; none was sent again.
    assert_eq!(dns_asked(&net), 18 + 4);
}
