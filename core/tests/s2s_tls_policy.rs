//! A partner's `tls` (Lync `TlsNegotiation`) on the wire: `not-supported`
//! means no TLS with that partner at all, in either direction, whatever
//! the peer offers or asks; `optional` uses TLS with a peer that offers it
//! and goes without with one that does not.

use std::net::IpAddr;

use xfed_core::config::Negotiation::{NotSupported, Optional, Required};
use xfed_core::sim::{policy, Net, NodeSpec, Zone};
use xfed_core::xmpp::session::AuthMethod;
use xfed_core::xmpp::stanza::{self, StanzaCondition};
use xfed_core::{Event, Listener};

fn ping(from: &str, to: &str, id: &str) -> String {
    format!("<iq xmlns='jabber:server' type='get' id='{id}' from='{from}' to='{to}'><ping xmlns='urn:xmpp:ping'/></iq>")
}

/// Pings node `b` from node `a`; the type of what came back, and its error.
fn ping_outcome(net: &mut Net, a: usize, b: usize, id: &str) -> (String, Option<StanzaCondition>) {
    let (da, db) = (net.nodes[a].domain.clone(), net.nodes[b].domain.clone());
    net.send(a, &ping(&format!("user@{da}"), &db, id));
    let got = net.nodes[a]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some(id))
        .unwrap_or_else(|| panic!("nothing came back for {id}:\n{}", net.dump(a)));
    (
        got.attr("type").unwrap_or_default().to_owned(),
        stanza::error_condition(got),
    )
}

fn assert_ping_works(net: &mut Net, a: usize, b: usize, id: &str) {
    let outcome = ping_outcome(net, a, b, id);
    assert_eq!(
        outcome.0,
        "result",
        "{outcome:?}\na:\n{}\nb:\n{}",
        net.dump(a),
        net.dump(b)
    );
}

/// Everything node `i` received on its XMPP connections since
/// `Net::record_stanzas`, as text (TLS records would show as garbage).
fn received(net: &Net, i: usize) -> String {
    let mut conns: Vec<_> = net.nodes[i].received.iter().collect();
    conns.sort_by_key(|(c, _)| **c);
    conns
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect()
}

/// Two nodes; a's policy for b has `tls = a_tls`, b's for a `b_tls`, both
/// with SASL optional and dialback; b has a certificate unless `b_cert`
/// is false. Both record what they receive.
fn pair(
    a_tls: xfed_core::config::Negotiation,
    b_tls: xfed_core::config::Negotiation,
    b_cert: bool,
) -> Net {
    let mut a = NodeSpec::new("a.test");
    a.default_policy = Some(policy(a_tls, Optional, true));
    let mut b = NodeSpec::new("b.test");
    b.default_policy = Some(policy(b_tls, Optional, true));
    b.tls = b_cert;
    let mut net = Net::new(&[a, b]);
    net.record_stanzas(0);
    net.record_stanzas(1);
    net
}

// ---- not-supported ----

#[test]
fn not_supported_means_plain_dialback_even_with_a_peer_offering_tls() {
    // b would use TLS (optional, with a certificate); a's policy for b
    // says no TLS: a neither asks for it on its stream nor offers it on
    // b's, and both streams authenticate by dialback over plain TCP.
    let mut net = pair(NotSupported, Optional, true);
    assert_ping_works(&mut net, 0, 1, "p1");
    let at_b = received(&net, 1);
    let at_a = received(&net, 0);
    assert!(
        !at_b.contains("<starttls"),
        "a asked for or offered TLS:\n{at_b}"
    );
    assert!(!at_a.contains("<proceed"), "{at_a}");
    assert!(!at_b.contains("<proceed"), "{at_b}");
    // Plain text all along: the dialback exchange and the ping are readable.
    assert!(at_b.contains("<db:result"), "{at_b}");
    assert!(at_b.contains("urn:xmpp:ping"), "{at_b}");
    assert!(at_a.contains("type='valid'"), "{at_a}");
    assert!(
        net.authenticated(1, true, "b.test", "a.test") == Some(AuthMethod::Dialback),
        "{}",
        net.dump(1)
    );
    assert!(
        net.authenticated(0, true, "a.test", "b.test") == Some(AuthMethod::Dialback),
        "{}",
        net.dump(0)
    );
}

#[test]
fn not_supported_partner_asking_for_starttls_anyway_is_refused() {
    // RFC 6120 section 5.4.2.2: STARTTLS was not offered, so the answer is
    // <failure/> and the stream ends; no TLS handshake starts.
    let mut b = NodeSpec::new("b.test");
    b.default_policy = Some(policy(NotSupported, NotSupported, true));
    let mut net = Net::new(&[NodeSpec::new("a.test"), b]);
    let conn = net.nodes[1]
        .gw
        .accept(Listener::S2s, "10.9.9.9:4000".parse().unwrap(), net.now);
    net.taps.insert((1, conn), Vec::new());
    net.run();
    let say = |net: &mut Net, text: &str| {
        let now = net.now;
        net.nodes[1].gw.handle_bytes(conn, text.as_bytes(), now);
        net.run();
    };
    say(&mut net, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.test' to='b.test' version='1.0'>");
    let heard = |net: &Net| String::from_utf8_lossy(&net.taps[&(1, conn)]).into_owned();
    let features = heard(&net);
    assert!(features.contains("<stream:features"), "{features}");
    assert!(!features.contains("starttls"), "{features}");
    say(
        &mut net,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    let after = heard(&net)[features.len()..].to_owned();
    assert!(!after.contains("<proceed"), "{after}");
    assert!(after.contains("<failure"), "{after}");
    assert!(after.ends_with("</stream:stream>"), "{after}");
    assert_eq!(net.nodes[1].gw.connections(), 0, "{}", net.dump(1));
}

#[test]
fn not_supported_partner_requiring_tls_fails_without_dialback_in_the_clear() {
    // b insists on TLS; a may not use it with b: a gives up as soon as it
    // reads b's features, instead of sending a dialback key b will refuse.
    let mut net = pair(NotSupported, Required, true);
    let (kind, cond) = ping_outcome(&mut net, 0, 1, "p1");
    assert_eq!(kind, "error");
    assert_eq!(cond, Some(StanzaCondition::RemoteServerTimeout));
    assert!(
        net.detail_has(0, None, "peer requires TLS"),
        "{}",
        net.dump(0)
    );
    let at_b = received(&net, 1);
    assert!(!at_b.contains("<starttls"), "{at_b}");
    assert!(!at_b.contains("<db:result"), "{at_b}");
}

#[test]
fn not_supported_partner_found_through_dns_is_not_dialled_with_direct_tls() {
    // b publishes a direct TLS service (XEP-0368) and a STARTTLS one; a,
    // which may not use TLS with b, dials the STARTTLS port and stays
    // plain there.
    let mut a = NodeSpec::new("a.test");
    a.dns = true;
    a.default_policy = Some(policy(NotSupported, NotSupported, true));
    let mut b = NodeSpec::new("b.test");
    b.default_policy = Some(policy(Optional, Optional, true));
    let mut net = Net::new(&[a, b]);
    let ip: IpAddr = "10.0.0.2".parse().unwrap();
    let mut zone = Zone::new();
    zone.srv("_xmpps-server._tcp.b.test", &[(0, 0, 5270, "xmpp.b.test")])
        .srv("_xmpp-server._tcp.b.test", &[(10, 0, 5269, "xmpp.b.test")])
        .addr("xmpp.b.test", ip);
    net.dns = Some(zone);
    net.record_stanzas(1);
    assert_ping_works(&mut net, 0, 1, "p1");
    assert!(
        !net.saw(0, |e| matches!(
            e,
            Event::Connecting {
                direct_tls: true,
                ..
            }
        )),
        "{}",
        net.dump(0)
    );
    assert!(
        net.saw(
            0,
            |e| matches!(e, Event::Connecting { domain, addr, direct_tls: false, .. }
            if domain == "b.test" && addr.to_string() == "10.0.0.2:5269")
        ),
        "{}",
        net.dump(0)
    );
    let at_b = received(&net, 1);
    assert!(at_b.contains("<db:result"), "{at_b}");
    assert!(!at_b.contains("<starttls"), "{at_b}");
}

// ---- optional ----

#[test]
fn optional_uses_tls_with_a_peer_that_offers_it() {
    // b requires TLS, so the ping only works if a took up b's offer.
    let mut net = pair(Optional, Required, true);
    assert_ping_works(&mut net, 0, 1, "p1");
    let at_a = received(&net, 0);
    let at_b = received(&net, 1);
    assert!(at_b.contains("<starttls"), "{at_b}");
    assert!(at_a.contains("<proceed"), "{at_a}");
    // After the handshake nothing is readable: the ping went encrypted.
    assert!(!at_b.contains("urn:xmpp:ping"), "{at_b}");
}

#[test]
fn optional_goes_without_tls_with_a_peer_that_has_none() {
    // b has no certificate and offers no TLS; a, optional, authenticates
    // by dialback over plain TCP both ways (its own offer to b unused).
    let mut net = pair(Optional, NotSupported, false);
    assert_ping_works(&mut net, 0, 1, "p1");
    let at_a = received(&net, 0);
    let at_b = received(&net, 1);
    assert!(!at_a.contains("<proceed"), "{at_a}");
    assert!(!at_b.contains("<proceed"), "{at_b}");
    assert!(at_b.contains("urn:xmpp:ping"), "{at_b}");
    assert!(
        net.authenticated(1, true, "b.test", "a.test") == Some(AuthMethod::Dialback),
        "{}",
        net.dump(1)
    );
    assert!(
        net.authenticated(0, true, "a.test", "b.test") == Some(AuthMethod::Dialback),
        "{}",
        net.dump(0)
    );
}
