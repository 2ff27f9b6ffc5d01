//! Full s2s handshakes per second in memory: TCP-less, but real TLS
//! (rustls, ECDSA P-256 certificates), stream negotiation and Server
//! Dialback with its verification round trip, on two gateways driven by
//! the simulated network of `xfed_core::sim`.
//!
//! Each round is one ping from a.test to b.test on a fresh pair of
//! gateways: two authenticated TLS connections (a's to b, and b's to a for
//! the dialback verification), so a round counts as two handshakes.
//! Certificates are made before timing starts.
//! Run with `cargo bench -p xfed-core --bench s2s_handshake`.

use std::time::Instant;

use xfed_core::config::Negotiation;
use xfed_core::sim::{policy, Net, NodeSpec};

const ROUNDS: usize = 200;

fn nets(sasl: bool) -> Vec<Net> {
    (0..ROUNDS)
        .map(|_| {
            let mut a = NodeSpec::new("a.test");
            let mut b = NodeSpec::new("b.test");
            if sasl {
                a.ca_cert = true;
                b.ca_cert = true;
            } else {
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
            }
            Net::new(&[a, b])
        })
        .collect()
}

fn run(what: &str, mut nets: Vec<Net>, per_round: usize) {
    let start = Instant::now();
    for (i, net) in nets.iter_mut().enumerate() {
        net.send(
            0,
            &format!("<iq xmlns='jabber:server' type='get' id='p{i}' from='u@a.test' to='b.test'><ping xmlns='urn:xmpp:ping'/></iq>"),
        );
        assert!(
            net.nodes[0]
                .inbox
                .iter()
                .any(|e| e.attr("type") == Some("result")),
            "ping failed:\n{}",
            net.dump(0)
        );
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{what}: {:.0} handshakes/s ({} rounds of {per_round} authenticated TLS connections in {:.2} s, {:.2} ms per round)",
        (ROUNDS * per_round) as f64 / secs,
        ROUNDS,
        secs,
        secs * 1000.0 / ROUNDS as f64
    );
}

fn main() {
    run("TLS + dialback", nets(false), 2);
    // With SASL EXTERNAL and bidi the answer comes back on the same stream.
    run("TLS + SASL EXTERNAL", nets(true), 1);
}
