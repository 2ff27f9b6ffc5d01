//! Issue 9 (Lync correction): a partner's `connection_limit` (Lync
//! ConnectionLimit) counts every stream with any of its domains
//! (`additional_domains` too), inbound and outbound.

use xfed_core::config::Negotiation;
use xfed_core::sim::{policy, Net, NodeSpec};
use xfed_core::Event;

const A: usize = 0;
const A2: usize = 1;
const B: usize = 2;

fn ping(from: &str, to: &str, id: &str) -> String {
    format!("<iq xmlns='jabber:server' type='get' id='{id}' from='{from}' to='{to}'><ping xmlns='urn:xmpp:ping'/></iq>")
}

/// a.test and a2.test are one partner of b.test, which allows it `limit`
/// streams. Plain TCP and dialback everywhere.
fn network(limit: usize) -> Net {
    let mut specs: Vec<NodeSpec> = ["a.test", "a2.test", "b.test"]
        .into_iter()
        .map(|d| {
            let mut s = NodeSpec::new(d);
            s.default_policy = Some(policy(
                Negotiation::NotSupported,
                Negotiation::NotSupported,
                true,
            ));
            s
        })
        .collect();
    specs[B].partner_connection_limit = limit;
    specs[B].partner_domains = vec![("a2.test", "a.test")];
    Net::new(&specs)
}

fn answered(net: &Net, node: usize, id: &str) -> Option<String> {
    net.nodes[node]
        .inbox
        .iter()
        .find(|e| e.attr("id") == Some(id))
        .and_then(|e| e.attr("type").map(str::to_owned))
}

#[test]
fn streams_of_every_domain_of_a_partner_count_in_both_directions() {
    // Unbounded, each domain's ping takes two streams on b.test: the
    // sender's inbound one, and b.test's outbound one (dialback
    // verification, then its answer).
    let mut net = network(100);
    net.send(A, &ping("u@a.test", "b.test", "p1"));
    net.send(A2, &ping("u@a2.test", "b.test", "p2"));
    assert_eq!(answered(&net, A, "p1").as_deref(), Some("result"));
    assert_eq!(answered(&net, A2, "p2").as_deref(), Some("result"));
    assert_eq!(net.nodes[B].gw.s2s_connections(), 4, "{}", net.dump(B));

    // With the partner allowed 3, a2.test's outbound stream is one too
    // many: its key cannot be verified, its ping fails.
    let mut net = network(3);
    net.send(A, &ping("u@a.test", "b.test", "p1"));
    net.send(A2, &ping("u@a2.test", "b.test", "p2"));
    assert_eq!(answered(&net, A, "p1").as_deref(), Some("result"));
    assert_ne!(
        answered(&net, A2, "p2").as_deref(),
        Some("result"),
        "a2.test got through beyond its partner's limit:\n{}",
        net.dump(B)
    );
    assert!(net.saw(B, |e| matches!(
        e,
        Event::LimitReached {
            key: "partner connection_limit",
            ..
        }
    )));
    assert!(net.nodes[B].gw.s2s_connections() <= 3, "{}", net.dump(B));

    // With 2, a2.test's inbound stream is closed once authenticated.
    let mut net = network(2);
    net.send(A, &ping("u@a.test", "b.test", "p1"));
    net.send(A2, &ping("u@a2.test", "b.test", "p2"));
    assert_eq!(answered(&net, A, "p1").as_deref(), Some("result"));
    assert_ne!(answered(&net, A2, "p2").as_deref(), Some("result"));
    assert!(net.nodes[B].gw.s2s_connections() <= 2, "{}", net.dump(B));
}
