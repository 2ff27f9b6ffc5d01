//! An in-memory network of gateways with a simulated clock, for tests and
//! benchmarks (feature `test-ca`): quinn's `Pair` and str0m's `progress()`
//! are the models. Every node gets a certificate (from a shared test CA or
//! self-signed), a policy per remote domain, and a fixed address, so no DNS
//! is involved; outputs are moved between gateways until nothing moves.
//!
//! Test support only: it panics when the network misbehaves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Negotiation, StreamPolicy};
use crate::gateway::{ConnId, Gateway, Listener, LogLine, Output};
use crate::tls::testing::{LeafSpec, TestCa, TestCert, NOW};
use crate::tls::{
    client_config, direct_tls_client_config, direct_tls_server_config, server_config, CallerClock,
};
use crate::xml::{parse_element, Element};
use crate::xmpp::session::Settings;

/// Stream establishment timeout of every node.
pub const T_ESTABLISH: Duration = Duration::from_secs(60);

/// How one gateway of the test network is set up.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub domain: &'static str,
    pub secret: &'static str,
    /// Policy towards every other domain (None: refuse all but listed).
    pub default_policy: Option<StreamPolicy>,
    pub policies: Vec<(&'static str, Option<StreamPolicy>)>,
    /// Issue the certificate from the shared CA (true) or self-sign it.
    pub ca_cert: bool,
    pub tls: bool,
}

impl NodeSpec {
    /// A node that federates with anyone over TLS, SASL or dialback.
    pub fn new(domain: &'static str) -> Self {
        NodeSpec {
            domain,
            secret: "s3cr3t",
            default_policy: Some(policy(Negotiation::Optional, Negotiation::Optional, true)),
            policies: Vec::new(),
            ca_cert: false,
            tls: true,
        }
    }
}

/// A stream policy with keepalives off.
pub fn policy(tls: Negotiation, sasl: Negotiation, dialback: bool) -> StreamPolicy {
    StreamPolicy {
        tls,
        sasl,
        dialback,
        keepalive: false,
    }
}

/// One gateway of the network, with what it logged and received.
pub struct Node {
    pub domain: String,
    pub gw: Gateway,
    pub addr: SocketAddr,
    pub direct: SocketAddr,
    pub logs: Vec<LogLine>,
    pub inbox: Vec<Element>,
}

/// The network: nodes, the links between their connections, the clock.
pub struct Net {
    pub nodes: Vec<Node>,
    pub links: HashMap<(usize, ConnId), (usize, ConnId)>,
    pub now: Instant,
    /// Bytes a test wants to see, per direction (node, conn).
    pub taps: HashMap<(usize, ConnId), Vec<u8>>,
}

fn settings(
    spec: &NodeSpec,
    ca: &TestCa,
    cert: &TestCert,
    others: &[(String, SocketAddr)],
) -> Settings {
    let clock = Arc::new(CallerClock::new(NOW));
    let id = cert.identity();
    let policies: HashMap<String, Option<StreamPolicy>> = spec
        .policies
        .iter()
        .map(|(d, p)| (d.to_string(), *p))
        .collect();
    let default = spec.default_policy;
    let connect: HashMap<String, (String, u16)> = others
        .iter()
        .map(|(d, a)| (d.clone(), (a.ip().to_string(), a.port())))
        .collect();
    Settings {
        local_domains: vec![spec.domain.to_owned()],
        limits: Default::default(),
        tls_server: spec.tls.then(|| server_config(&id, clock.clone())),
        tls_client: spec.tls.then(|| client_config(&id, clock.clone())),
        tls_server_direct: spec
            .tls
            .then(|| direct_tls_server_config(&id, clock.clone())),
        tls_client_direct: spec
            .tls
            .then(|| direct_tls_client_config(&id, clock.clone())),
        clock,
        trust: Arc::new(ca.trust_anchors()),
        dialback_secret: spec.secret.to_owned(),
        establishment_timeout: T_ESTABLISH,
        inactivity_timeout: Duration::from_secs(600),
        keepalive_interval: Duration::from_secs(300),
        policy: Arc::new(move |d: &str| policies.get(d).copied().unwrap_or(default)),
        connect: Arc::new(move |d: &str| connect.get(d).cloned()),
    }
}

impl Net {
    /// Builds the nodes; addresses are 10.0.0.N:5269 (STARTTLS) and :5270.
    pub fn new(specs: &[NodeSpec]) -> Net {
        let ca = TestCa::new("xfed test CA");
        let now = Instant::now();
        let addrs: Vec<(String, SocketAddr)> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    s.domain.to_owned(),
                    SocketAddr::from(([10, 0, 0, i as u8 + 1], 5269)),
                )
            })
            .collect();
        let nodes = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let leaf = LeafSpec::xmpp_server(spec.domain);
                let cert = if spec.ca_cert {
                    ca.issue(&leaf)
                } else {
                    TestCert::self_signed(&leaf)
                };
                let settings = settings(spec, &ca, &cert, &addrs);
                let mut seed = [0u8; 32];
                seed[0] = i as u8;
                Node {
                    domain: spec.domain.to_owned(),
                    gw: Gateway::new(settings, seed, now, NOW, 100, 10),
                    addr: addrs[i].1,
                    direct: SocketAddr::from(([10, 0, 0, i as u8 + 1], 5270)),
                    logs: Vec::new(),
                    inbox: Vec::new(),
                }
            })
            .collect();
        Net {
            nodes,
            links: HashMap::new(),
            now,
            taps: HashMap::new(),
        }
    }

    /// Moves outputs between gateways until nothing moves.
    pub fn run(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(out) = self.nodes[i].gw.poll_output() {
                    moved = true;
                    self.apply(i, out);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Carries out one output of node `i`.
    pub fn apply(&mut self, i: usize, out: Output) {
        let now = self.now;
        match out {
            Output::Transmit { conn, bytes } => {
                if let Some(tap) = self.taps.get_mut(&(i, conn)) {
                    tap.extend_from_slice(&bytes);
                }
                if let Some(&(j, c)) = self.links.get(&(i, conn)) {
                    self.nodes[j].gw.handle_bytes(c, &bytes, now);
                }
            }
            Output::Connect { conn, addr } => {
                let target = self
                    .nodes
                    .iter()
                    .position(|n| n.addr == addr || n.direct == addr);
                match target {
                    Some(j) => {
                        let listener = if self.nodes[j].direct == addr {
                            Listener::S2sDirectTls
                        } else {
                            Listener::S2s
                        };
                        let from = self.nodes[i].addr;
                        let c = self.nodes[j].gw.accept(listener, from, now);
                        self.links.insert((i, conn), (j, c));
                        self.links.insert((j, c), (i, conn));
                        self.nodes[i].gw.handle_connected(conn, now);
                    }
                    None => self.nodes[i]
                        .gw
                        .handle_connect_failed(conn, "connection refused", now),
                }
            }
            Output::Close { conn } => {
                if let Some((j, c)) = self.links.remove(&(i, conn)) {
                    self.links.remove(&(j, c));
                    self.nodes[j].gw.handle_closed(c, now);
                }
            }
            Output::DnsQuery { .. } => {
                panic!("unexpected DNS query: every domain has a fixed address here")
            }
            Output::Stanza(e) => self.nodes[i].inbox.push(e),
            Output::Log(l) => self.nodes[i].logs.push(l),
        }
    }

    /// Moves the clock and runs the timers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        for n in &mut self.nodes {
            n.gw.handle_timeout(self.now);
        }
        self.run();
    }

    /// Sends a stanza from node `i`'s local side.
    pub fn send(&mut self, i: usize, stanza: &str) {
        let e = parse_element(stanza).expect("test stanza");
        self.nodes[i].gw.send(e, self.now);
        self.run();
    }

    /// Whether node `i` logged something containing `needle`.
    pub fn log_has(&self, i: usize, needle: &str) -> bool {
        self.nodes[i]
            .logs
            .iter()
            .any(|l| l.message.contains(needle))
    }

    /// Node `i`'s log, for assertion messages.
    pub fn dump(&self, i: usize) -> String {
        self.nodes[i]
            .logs
            .iter()
            .map(|l| format!("{:?} {:?} {}", l.level, l.conn, l.message))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
