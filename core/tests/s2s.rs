//! In-memory federation: gateways wired together by a simulated network and
//! clock (quinn's `Pair` and str0m's `progress()` are the models), driving
//! every authentication path, policy refusal and failure to its outcome.

use std::time::Duration;

use xfed_core::config::Negotiation;
use xfed_core::sim::{policy, Net, NodeSpec, T_ESTABLISH};
use xfed_core::xml::{ns, parse_element, Element};
use xfed_core::xmpp::session::AuthMethod;
use xfed_core::xmpp::stanza::{self, StanzaCondition};
use xfed_core::{ConnId, Event, Listener, Output};

fn ping(from: &str, to: &str, id: &str) -> String {
    format!("<iq xmlns='jabber:server' type='get' id='{id}' from='{from}' to='{to}'><ping xmlns='urn:xmpp:ping'/></iq>")
}

/// Pings b.test from a.test and asserts the result came back.
fn assert_ping_works(net: &mut Net, a: usize, b: usize) {
    let (da, db) = (net.nodes[a].domain.clone(), net.nodes[b].domain.clone());
    net.send(a, &ping(&format!("user@{da}"), &db, "p1"));
    let got = net.nodes[a]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some("p1"));
    let got =
        got.unwrap_or_else(|| panic!("no ping answer; a:\n{}\nb:\n{}", net.dump(a), net.dump(b)));
    assert_eq!(
        got.attr("type"),
        Some("result"),
        "{got:?}\na:\n{}\nb:\n{}",
        net.dump(a),
        net.dump(b)
    );
    assert_eq!(got.attr("from"), Some(db.as_str()));
}

fn error_of(e: &Element) -> Option<StanzaCondition> {
    stanza::error_condition(e)
}

#[test]
fn dialback_over_tls_with_self_signed_certificates() {
    let mut net = Net::new(&[NodeSpec::new("a.test"), NodeSpec::new("b.test")]);
    assert_ping_works(&mut net, 0, 1);
    // b verified a's key with a (authoritative), and a verified b's.
    assert!(
        net.authenticated(1, true, "b.test", "a.test") == Some(AuthMethod::Dialback),
        "{}",
        net.dump(1)
    );
    assert!(
        net.authenticated(0, false, "a.test", "b.test") == Some(AuthMethod::Dialback),
        "{}",
        net.dump(0)
    );
    assert!(
        net.authenticated(0, true, "a.test", "b.test") == Some(AuthMethod::Dialback),
        "{}",
        net.dump(0)
    );
    // A second stanza reuses the streams.
    let conns = net.nodes[0].gw.connections();
    assert_ping_works(&mut net, 0, 1);
    assert_eq!(net.nodes[0].gw.connections(), conns);
}

#[test]
fn sasl_external_with_ca_certificates() {
    let mut a = NodeSpec::new("a.test");
    let mut b = NodeSpec::new("b.test");
    a.ca_cert = true;
    b.ca_cert = true;
    let mut net = Net::new(&[a, b]);
    assert_ping_works(&mut net, 0, 1);
    assert!(
        net.authenticated(1, true, "b.test", "a.test") == Some(AuthMethod::Sasl),
        "{}",
        net.dump(1)
    );
    assert!(
        net.authenticated(0, false, "a.test", "b.test") == Some(AuthMethod::Sasl),
        "{}",
        net.dump(0)
    );
    // b answered over a's stream (XEP-0288 bidi): one connection in all.
    assert_eq!(net.nodes[0].gw.connections(), 1, "{}", net.dump(0));
    assert_eq!(net.nodes[1].gw.connections(), 1, "{}", net.dump(1));
}

#[test]
fn dialback_answered_by_certificate_when_sasl_is_off() {
    let mut a = NodeSpec::new("a.test");
    let mut b = NodeSpec::new("b.test");
    a.ca_cert = true;
    b.ca_cert = true;
    a.default_policy = Some(policy(
        Negotiation::Required,
        Negotiation::NotSupported,
        true,
    ));
    b.default_policy = Some(policy(
        Negotiation::Required,
        Negotiation::NotSupported,
        true,
    ));
    let mut net = Net::new(&[a, b]);
    assert_ping_works(&mut net, 0, 1);
    assert!(
        net.authenticated(1, true, "b.test", "a.test") == Some(AuthMethod::DialbackByCertificate),
        "{}",
        net.dump(1)
    );
}

#[test]
fn dialback_without_tls_when_both_allow_it() {
    let mut a = NodeSpec::new("a.test");
    let mut b = NodeSpec::new("b.test");
    a.default_policy = Some(policy(
        Negotiation::NotSupported,
        Negotiation::NotSupported,
        true,
    ));
    b.default_policy = Some(policy(
        Negotiation::NotSupported,
        Negotiation::NotSupported,
        true,
    ));
    let mut net = Net::new(&[a, b]);
    assert_ping_works(&mut net, 0, 1);
    assert!(
        net.authenticated(1, true, "b.test", "a.test") == Some(AuthMethod::Dialback),
        "{}",
        net.dump(1)
    );
}

#[test]
fn tls_required_but_peer_without_tls_bounces() {
    let mut a = NodeSpec::new("a.test");
    a.tls = false;
    a.default_policy = Some(policy(
        Negotiation::NotSupported,
        Negotiation::NotSupported,
        true,
    ));
    let mut b = NodeSpec::new("b.test");
    b.default_policy = Some(policy(Negotiation::Required, Negotiation::Optional, true));
    let mut net = Net::new(&[a, b]);
    net.send(0, &ping("user@a.test", "b.test", "p1"));
    let got = net.nodes[0]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some("p1"))
        .expect("a bounce");
    assert_eq!(
        error_of(got),
        Some(StanzaCondition::RemoteServerTimeout),
        "{}",
        net.dump(0)
    );
    // a reads b's <required/> and gives up without trying dialback in the
    // clear, which b would refuse.
    assert!(
        net.detail_has(0, None, "peer requires TLS"),
        "{}",
        net.dump(0)
    );
}

#[test]
fn sasl_required_without_certificate_trust_bounces() {
    let mut a = NodeSpec::new("a.test");
    let b = NodeSpec::new("b.test");
    a.default_policy = Some(policy(Negotiation::Required, Negotiation::Required, false));
    let mut net = Net::new(&[a, b]);
    net.send(0, &ping("user@a.test", "b.test", "p1"));
    let got = net.nodes[0]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some("p1"))
        .expect("a bounce");
    assert_eq!(
        error_of(got),
        Some(StanzaCondition::RemoteServerTimeout),
        "{}",
        net.dump(0)
    );
}

#[test]
fn partner_not_allowed_is_refused_both_ways() {
    let a = NodeSpec::new("a.test");
    let mut b = NodeSpec::new("b.test");
    b.default_policy = None;
    let mut net = Net::new(&[a, b]);
    // b refuses a's stream; a's sender gets the bounce.
    net.send(0, &ping("user@a.test", "b.test", "p1"));
    let got = net.nodes[0]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some("p1"))
        .expect("a bounce");
    assert_eq!(error_of(got), Some(StanzaCondition::RemoteServerTimeout));
    assert!(
        net.detail_has(1, None, "not allowed to federate"),
        "{}",
        net.dump(1)
    );
    // b never routes to a: its own stanza bounces locally.
    net.send(1, &ping("user@b.test", "a.test", "p2"));
    let got = net.nodes[1]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some("p2"))
        .expect("a bounce");
    assert_eq!(error_of(got), Some(StanzaCondition::RemoteServerNotFound));
}

#[test]
fn stanzas_to_local_users_get_service_unavailable() {
    let mut net = Net::new(&[NodeSpec::new("a.test"), NodeSpec::new("b.test")]);
    net.send(0, "<message xmlns='jabber:server' id='m1' from='alice@a.test' to='bob@b.test' type='chat'><body>hi</body></message>");
    let got = net.nodes[0]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some("m1"))
        .expect("an error back");
    assert_eq!(error_of(got), Some(StanzaCondition::ServiceUnavailable));
    // disco#info on the domain names the gateway.
    net.send(0, "<iq xmlns='jabber:server' type='get' id='d1' from='alice@a.test' to='b.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    let got = net.nodes[0]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some("d1"))
        .expect("disco answer");
    let q = got.child(ns::DISCO_INFO, "query").expect("query");
    assert!(q.children().any(|f| f.attr("var") == Some(ns::PING)));
}

#[test]
fn unreachable_domain_bounces_every_queued_stanza() {
    let mut net = Net::new(&[NodeSpec::new("a.test")]);
    for i in 0..3 {
        let e = parse_element(&ping("user@a.test", "nowhere.test", &format!("q{i}"))).unwrap();
        net.nodes[0].gw.send(e, net.now);
    }
    // nowhere.test has no fixed address and no DNS here: a DNS query goes
    // out; answer nothing and let the resolver time out.
    let mut queries = 0;
    while let Some(out) = net.nodes[0].gw.poll_output() {
        match out {
            Output::DnsQuery { .. } => queries += 1,
            other => net.apply(0, other),
        }
    }
    assert!(queries > 0);
    for _ in 0..10 {
        net.now += Duration::from_secs(6);
        net.nodes[0].gw.handle_timeout(net.now);
        while let Some(out) = net.nodes[0].gw.poll_output() {
            if !matches!(out, Output::DnsQuery { .. }) {
                net.apply(0, out);
            }
        }
    }
    let bounced: Vec<_> = net.nodes[0]
        .inbox
        .iter()
        .filter(|e| error_of(e) == Some(StanzaCondition::RemoteServerTimeout))
        .collect();
    assert_eq!(bounced.len(), 3, "{}", net.dump(0));
}

#[test]
fn silent_peer_times_out() {
    let mut net = Net::new(&[NodeSpec::new("a.test")]);
    let now = net.now;
    let c = net.nodes[0]
        .gw
        .accept(Listener::S2s, "10.9.9.9:1234".parse().unwrap(), now);
    net.taps.insert((0, c), Vec::new());
    net.run();
    net.advance(T_ESTABLISH + Duration::from_secs(1));
    let tap = String::from_utf8_lossy(&net.taps[&(0, c)]).into_owned();
    assert!(tap.contains("connection-timeout"), "{tap}");
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
}

fn header(from: &str, to: &str) -> String {
    format!("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='{from}' to='{to}' version='1.0'>")
}

fn plain_net() -> Net {
    let mut a = NodeSpec::new("a.test");
    let mut b = NodeSpec::new("b.test");
    a.default_policy = Some(policy(
        Negotiation::NotSupported,
        Negotiation::NotSupported,
        true,
    ));
    b.default_policy = Some(policy(
        Negotiation::NotSupported,
        Negotiation::NotSupported,
        true,
    ));
    Net::new(&[a, b])
}

#[test]
fn wrong_dialback_key_is_refused_and_the_stream_closed() {
    let mut net = plain_net();
    // An impostor claims to be a.test towards b.test with a made-up key;
    // b asks a (authoritative), which says invalid.
    let evil = RawPeer::connect(&mut net, 1);
    evil.say(&mut net, &header("a.test", "b.test"));
    evil.say(
        &mut net,
        "<db:result from='a.test' to='b.test'>0123456789abcdef</db:result>",
    );
    let heard = evil.heard(&net);
    assert!(heard.contains("type='invalid'"), "{heard}\n{}", net.dump(1));
    assert!(heard.contains("not-authorized"), "{heard}");
    // The impostor's stream never authenticated (the genuine a.test did,
    // on its own connection, while answering b's dialback).
    let evil_authenticated = net.saw(
        1,
        |e| matches!(e, Event::StreamAuthenticated { conn, .. } if *conn == evil.conn),
    );
    assert!(!evil_authenticated, "{}", net.dump(1));
}

#[test]
fn stanza_before_authentication_is_not_authorized() {
    let mut net = plain_net();
    let evil = RawPeer::connect(&mut net, 1);
    evil.say(&mut net, &header("a.test", "b.test"));
    evil.say(
        &mut net,
        "<message from='x@a.test' to='y@b.test'><body>early</body></message>",
    );
    assert!(
        evil.heard(&net).contains("<not-authorized"),
        "{}",
        evil.heard(&net)
    );
}

#[test]
fn unsolicited_dialback_answers_are_ignored() {
    let mut net = plain_net();
    let evil = RawPeer::connect(&mut net, 1);
    evil.say(&mut net, &header("a.test", "b.test"));
    evil.say(&mut net, "<db:verify from='a.test' to='b.test' id='x' type='valid'/><db:result from='a.test' to='b.test' type='valid'/>");
    evil.say(
        &mut net,
        "<message from='x@a.test' to='y@b.test'><body>sneaky</body></message>",
    );
    assert!(net.detail_has(1, None, "unsolicited"), "{}", net.dump(1));
    assert!(
        evil.heard(&net).contains("<not-authorized"),
        "{}",
        evil.heard(&net)
    );
}

#[test]
fn spoofed_from_gets_invalid_from() {
    let mut net = plain_net();
    // a.test authenticates properly to b.test first.
    assert_ping_works(&mut net, 0, 1);
    // Then something on a's authenticated stream claims another domain.
    let (&(_, conn), _) = net
        .links
        .iter()
        .find(|((n, c), _)| {
            *n == 1
                && net.saw(1, |e| {
                    matches!(e, Event::StreamAuthenticated { conn, inbound: true, remote, .. }
                        if conn == c && remote == "a.test")
                })
        })
        .map(|(k, v)| (v, k))
        .expect("a's inbound stream on b");
    let b_conn = net.links[&(0, conn)].1;
    let now = net.now;
    net.nodes[1].gw.handle_bytes(
        b_conn,
        b"<message from='mallory@evil.test' to='bob@b.test'><body>spoof</body></message>",
        now,
    );
    net.run();
    assert!(net.detail_has(1, None, "invalid-from"), "{}", net.dump(1));
}

#[test]
fn authoritative_role_answers_db_verify() {
    let mut net = plain_net();
    let peer = RawPeer::connect(&mut net, 0);
    peer.say(&mut net, &header("b.test", "a.test"));
    let key = xfed_core::xmpp::dialback_key::dialback_key("s3cr3t", "b.test", "a.test", "SID1");
    peer.say(
        &mut net,
        &format!("<db:verify from='b.test' to='a.test' id='SID1'>{key}</db:verify>"),
    );
    peer.say(
        &mut net,
        "<db:verify from='b.test' to='a.test' id='SID2'>00</db:verify>",
    );
    peer.say(
        &mut net,
        "<db:verify from='b.test' to='zzz.test' id='SID3'>00</db:verify>",
    );
    let heard = peer.heard(&net);
    assert!(heard.contains("id='SID1' type='valid'"), "{heard}");
    assert!(heard.contains("id='SID2' type='invalid'"), "{heard}");
    assert!(heard.contains("item-not-found"), "{heard}");
}

#[test]
fn hostile_xml_gets_its_stream_error_and_other_streams_carry_on() {
    let mut net = plain_net();
    assert_ping_works(&mut net, 0, 1);
    let evil = RawPeer::connect(&mut net, 1);
    evil.say(&mut net, &header("a.test", "b.test"));
    evil.say(&mut net, "<!DOCTYPE x [<!ENTITY a 'b'>]>");
    assert!(
        evil.heard(&net).contains("<restricted-xml"),
        "{}",
        evil.heard(&net)
    );
    let evil2 = RawPeer::connect(&mut net, 1);
    evil2.say(&mut net, &header("a.test", "nothere.test"));
    assert!(
        evil2.heard(&net).contains("<host-unknown"),
        "{}",
        evil2.heard(&net)
    );
    // The genuine streams still work.
    assert_ping_works(&mut net, 0, 1);
}
