//! An in-memory network of gateways with a simulated clock, for tests and
//! benchmarks (feature `test-ca`): quinn's `Pair` and str0m's `progress()`
//! are the models. Every node gets a certificate (from a shared test CA or
//! self-signed), a policy per remote domain, and a fixed address for every
//! other node, so no DNS is involved; outputs are moved between gateways
//! until nothing moves.
//!
//! A node built with [`NodeSpec::dns`] has no fixed addresses and resolves
//! every remote domain; its queries are answered from [`Net::dns`], a table
//! of records turned into real DNS replies (hickory-proto wire format).
//!
//! Test support only: it panics when the network misbehaves.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType as WireType};

use crate::config::{Negotiation, Partners, StreamPolicy};
use crate::dns::{RecordType, Srv};
use crate::endpoint::NextHop;
use crate::event::Event;
use crate::gateway::Gateway;
use crate::ids::{ConnId, Listener};
use crate::output::Output;
use crate::tls::testing::{LeafSpec, TestCa, TestCert, NOW};
use crate::tls::{
    client_config, direct_tls_client_config, direct_tls_server_config, server_config, CallerClock,
};
use crate::xml::{parse_element, Element};
use crate::xmpp::session::{AuthMethod, S2sBounds, Settings};

/// Stream establishment timeout of every node.
pub const T_ESTABLISH: Duration = Duration::from_secs(60);
/// Time without an element after which every node closes a stream.
pub const T_INACTIVITY: Duration = Duration::from_secs(600);
/// `keepalive_interval` of every node: a partner silent this long is cut
/// off; keepalive spaces (for partners with keepalive) go every half of it.
pub const T_KEEPALIVE: Duration = Duration::from_secs(300);

/// What one read takes of a connection read again after a pause: a few
/// stanzas.
const RESUMED_READ: usize = 512;

/// How one gateway of the test network is set up.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The one local domain it serves.
    pub domain: &'static str,
    /// Its dialback secret.
    pub secret: &'static str,
    /// Policy towards every other domain (None: refuse all but listed).
    pub default_policy: Option<StreamPolicy>,
    /// Per-domain policies that override the default (None: refuse).
    pub policies: Vec<(&'static str, Option<StreamPolicy>)>,
    /// Issue the certificate from the shared CA (true) or self-sign it.
    pub ca_cert: bool,
    /// Offer and accept TLS; off, streams stay in plain text.
    pub tls: bool,
    /// No fixed address for any other node: every remote domain is resolved
    /// through DNS, answered from [`Net::dns`].
    pub dns: bool,
    /// `gateway.connection_limit`: most s2s connections at once.
    pub connection_limit: usize,
    /// `gateway.max_pending_dialback_*`, `max_routes`, `max_dns_queries`.
    pub bounds: S2sBounds,
    /// Streams one partner may hold, both directions, over all its
    /// domains.
    pub partner_connection_limit: usize,
    /// Domains that belong to another partner: (domain, partner), as
    /// `additional_domains` makes them.
    pub partner_domains: Vec<(&'static str, &'static str)>,
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
            dns: false,
            connection_limit: 100,
            bounds: S2sBounds::default(),
            partner_connection_limit: 10,
            partner_domains: Vec::new(),
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
    /// Its local domain.
    pub domain: String,
    /// The gateway under test.
    pub gw: Gateway,
    /// Its s2s (STARTTLS) listener address.
    pub addr: SocketAddr,
    /// Its direct TLS (XEP-0368) listener address.
    pub direct: SocketAddr,
    /// Everything it reported, in order.
    pub events: Vec<Event>,
    /// Stanzas it delivered to its local side.
    pub inbox: Vec<Element>,
    /// SIP datagrams the node sent: (our socket, peer, bytes).
    pub datagrams: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Store changes the node asked for, in order.
    pub persisted: Vec<crate::store::Persist>,
    /// Keep the bytes this node receives on its XMPP connections (see
    /// [`Net::record_stanzas`]).
    pub record: bool,
    /// The bytes received per connection, while `record` is on.
    pub received: HashMap<ConnId, Vec<u8>>,
    /// Its certificate (SIP over TLS uses it too).
    pub cert: TestCert,
    /// Proxy mode's next hop, as the SIP side was enabled with (a restart
    /// keeps it).
    pub next_hop: Option<NextHop>,
}

/// A stream between a node and a peer outside the network that the test
/// plays (a SIP user agent or proxy over TCP or TLS): what the node sent
/// on it, and whether the node closed it.
#[derive(Debug)]
pub struct OutsideConn {
    /// Bytes the node sent, not yet taken.
    pub sent: Vec<u8>,
    /// The node closed it.
    pub closed: bool,
    /// The outside address.
    pub peer: SocketAddr,
}

/// The network: nodes, the links between their connections, the clock.
pub struct Net {
    /// The gateways, indexed as the tests address them.
    pub nodes: Vec<Node>,
    /// Each connection's other end: (node, conn) -> (node, conn), both ways.
    pub links: HashMap<(usize, ConnId), (usize, ConnId)>,
    /// The simulated clock every node is driven with.
    pub now: Instant,
    /// Bytes a test wants to see, per direction (node, conn).
    pub taps: HashMap<(usize, ConnId), Vec<u8>>,
    /// The resolver every node's DNS queries go to; `None` (the default)
    /// makes a DNS query a test failure.
    pub dns: Option<Zone>,
    /// The CA that issues `ca_cert` nodes' certificates, trusted by all.
    pub ca: TestCa,
    /// Addresses outside the network that accept connections
    /// ([`Net::listen_outside`]).
    pub outside_listeners: Vec<SocketAddr>,
    /// Streams with outside peers, by (node, conn).
    pub outside: HashMap<(usize, ConnId), OutsideConn>,
    /// Connections their node stopped reading (`Output::PauseReading`),
    /// by (node, conn), with the bytes that arrived for them meanwhile.
    pub paused: HashMap<(usize, ConnId), Vec<u8>>,
    /// Bytes of connections read again, handed in [`RESUMED_READ`] bytes
    /// at a time as a runtime's reads would, so that a pause can take
    /// effect again between them.
    resumed: HashMap<(usize, ConnId), Vec<u8>>,
    /// What each node was built from, for [`Net::restart_sip`].
    specs: Vec<NodeSpec>,
    addrs: Vec<(String, SocketAddr)>,
    start: Instant,
}

/// What the simulated resolver answers for one name and record type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsAnswer {
    /// SRV records (a target of `"."` is the root).
    Srv(Vec<Srv>),
    /// A or AAAA records (of the family asked).
    Addrs(Vec<IpAddr>),
    /// NXDOMAIN.
    NxDomain,
    /// SERVFAIL.
    ServFail,
    /// No reply at all: the query times out.
    Silent,
}

/// The records of the simulated DNS, and the questions asked of it.
///
/// A name with no entry for the type asked gets NODATA if it has entries
/// of another type, NXDOMAIN otherwise; negative answers carry an SOA, as
/// real ones do (RFC 2308).
#[derive(Clone, Debug, Default)]
pub struct Zone {
    entries: HashMap<(String, RecordType), DnsAnswer>,
    /// Every question received, in order: (asking node, name without the
    /// final dot, type, over TCP).
    pub asked: Vec<(usize, String, RecordType, bool)>,
}

impl Zone {
    /// An empty zone: every name is NXDOMAIN.
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Sets the answer for `name` (no final dot, case-insensitive).
    pub fn set(&mut self, name: &str, rtype: RecordType, answer: DnsAnswer) -> &mut Zone {
        self.entries
            .insert((name.to_ascii_lowercase(), rtype), answer);
        self
    }

    /// SRV records for `name`: (priority, weight, port, target).
    pub fn srv(&mut self, name: &str, records: &[(u16, u16, u16, &str)]) -> &mut Zone {
        let records = records
            .iter()
            .map(|&(priority, weight, port, target)| Srv {
                priority,
                weight,
                port,
                target: target.to_owned(),
            })
            .collect();
        self.set(name, RecordType::Srv, DnsAnswer::Srv(records))
    }

    /// Adds an address record (A or AAAA by family) for `name`.
    pub fn addr(&mut self, name: &str, ip: IpAddr) -> &mut Zone {
        let rtype = if ip.is_ipv4() {
            RecordType::A
        } else {
            RecordType::Aaaa
        };
        let entry = self
            .entries
            .entry((name.to_ascii_lowercase(), rtype))
            .or_insert(DnsAnswer::Addrs(Vec::new()));
        match entry {
            DnsAnswer::Addrs(addrs) => addrs.push(ip),
            other => *other = DnsAnswer::Addrs(vec![ip]),
        }
        self
    }

    /// The (name, type) questions node `node` asked, in order.
    pub fn asked_by(&self, node: usize) -> Vec<(String, RecordType)> {
        self.asked
            .iter()
            .filter(|(n, ..)| *n == node)
            .map(|(_, name, t, _)| (name.clone(), *t))
            .collect()
    }

    /// The reply to a query message from node `node`, or `None` for no
    /// reply (silence, or bytes that are not a query).
    pub fn reply(&mut self, node: usize, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let msg = Message::from_vec(query).ok()?;
        let question = msg.queries.first()?.clone();
        let rtype = match question.query_type() {
            WireType::A => RecordType::A,
            WireType::AAAA => RecordType::Aaaa,
            WireType::SRV => RecordType::Srv,
            _ => return None,
        };
        let qname = question
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        self.asked.push((node, qname.clone(), rtype, tcp));
        let answer = match self.entries.get(&(qname.clone(), rtype)) {
            Some(a) => a.clone(),
            // NODATA: the name exists with other types.
            None if self.entries.keys().any(|(n, _)| *n == qname) => DnsAnswer::Addrs(Vec::new()),
            None => DnsAnswer::NxDomain,
        };
        let owner = question.name().clone();
        let mut r = Message::response(msg.metadata.id, OpCode::Query);
        r.metadata.recursion_desired = true;
        r.metadata.recursion_available = true;
        r.add_query(question);
        let records: Vec<Record> = match answer {
            DnsAnswer::Silent => return None,
            DnsAnswer::ServFail => {
                r.metadata.response_code = ResponseCode::ServFail;
                Vec::new()
            }
            DnsAnswer::NxDomain => {
                r.metadata.response_code = ResponseCode::NXDomain;
                Vec::new()
            }
            DnsAnswer::Srv(srvs) => srvs
                .iter()
                .map(|s| {
                    let target = dns_name(&s.target)?;
                    let srv = SRV::new(s.priority, s.weight, s.port, target);
                    Some(Record::from_rdata(owner.clone(), 300, RData::SRV(srv)))
                })
                .collect::<Option<_>>()?,
            DnsAnswer::Addrs(addrs) => addrs
                .iter()
                .filter_map(|ip| match (ip, rtype) {
                    (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(*v4))),
                    (IpAddr::V6(v6), RecordType::Aaaa) => Some(RData::AAAA(AAAA(*v6))),
                    _ => None,
                })
                .map(|rdata| Record::from_rdata(owner.clone(), 300, rdata))
                .collect(),
        };
        if records.is_empty() && r.metadata.response_code != ResponseCode::ServFail {
            let soa = SOA::new(
                dns_name("ns.test")?,
                dns_name("hostmaster.test")?,
                1,
                3600,
                600,
                86400,
                300,
            );
            r.add_authority(Record::from_rdata(dns_name("test")?, 300, RData::SOA(soa)));
        }
        r.add_answers(records);
        r.to_vec().ok()
    }
}

/// A fully qualified name from `host` (no final dot), `"."` for the root.
fn dns_name(host: &str) -> Option<Name> {
    if host == "." {
        return Some(Name::root());
    }
    Name::from_ascii(format!("{host}.")).ok()
}

/// A node's view of the other domains: its [`NodeSpec`]'s policies, and
/// the other nodes' addresses in place of DNS.
#[derive(Debug)]
struct SimPartners {
    policies: HashMap<String, Option<StreamPolicy>>,
    default: Option<StreamPolicy>,
    connect: HashMap<String, (String, u16)>,
    connection_limit: usize,
    partner_domains: HashMap<String, String>,
}

impl Partners for SimPartners {
    fn policy(&self, domain: &str) -> Option<StreamPolicy> {
        self.policies.get(domain).copied().unwrap_or(self.default)
    }

    fn connect(&self, domain: &str) -> Option<(String, u16)> {
        self.connect.get(domain).cloned()
    }

    fn connection_limit(&self, _: &str) -> usize {
        self.connection_limit
    }

    fn partner_of(&self, domain: &str) -> String {
        self.partner_domains
            .get(domain)
            .cloned()
            .unwrap_or_else(|| domain.to_owned())
    }
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
        .filter(|_| !spec.dns)
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
        inactivity_timeout: T_INACTIVITY,
        keepalive_interval: T_KEEPALIVE,
        partners: Arc::new(SimPartners {
            policies,
            default,
            connect,
            connection_limit: spec.partner_connection_limit,
            partner_domains: spec
                .partner_domains
                .iter()
                .map(|(d, p)| (d.to_string(), p.to_string()))
                .collect(),
        }),
        bounds: spec.bounds,
        reading: crate::xmpp::session::Reading::Trees,
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
                    gw: Gateway::with_settings(settings, seed, now, NOW, spec.connection_limit),
                    addr: addrs[i].1,
                    direct: SocketAddr::from(([10, 0, 0, i as u8 + 1], 5270)),
                    events: Vec::new(),
                    inbox: Vec::new(),
                    datagrams: Vec::new(),
                    persisted: Vec::new(),
                    record: false,
                    received: HashMap::new(),
                    cert,
                    next_hop: None,
                }
            })
            .collect();
        Net {
            nodes,
            links: HashMap::new(),
            now,
            taps: HashMap::new(),
            dns: None,
            ca,
            outside_listeners: Vec::new(),
            outside: HashMap::new(),
            paused: HashMap::new(),
            resumed: HashMap::new(),
            specs: specs.to_vec(),
            addrs,
            start: now,
        }
    }

    /// Moves outputs between gateways until nothing moves.
    pub fn run(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(out) = self.nodes[i].gw.poll_output() {
                    moved = true;
                    self.apply(i, out);
                }
            }
            if !moved && !self.read_resumed() {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Hands in the next read of a connection read again after a pause;
    /// `false` when there is none.
    fn read_resumed(&mut self) -> bool {
        let Some(&(i, conn)) = self.resumed.keys().min() else {
            return false;
        };
        let Some(mut held) = self.resumed.remove(&(i, conn)) else {
            return false;
        };
        let rest = held.split_off(held.len().min(RESUMED_READ));
        if !rest.is_empty() {
            self.resumed.insert((i, conn), rest);
        }
        let now = self.now;
        self.nodes[i].gw.handle_bytes(conn, &held, now);
        true
    }

    /// Carries out one output of node `i`.
    pub fn apply(&mut self, i: usize, out: Output) {
        let now = self.now;
        match out {
            Output::Transmit { conn, bytes } => {
                if let Some(tap) = self.taps.get_mut(&(i, conn)) {
                    tap.extend_from_slice(&bytes);
                }
                if let Some(o) = self.outside.get_mut(&(i, conn)) {
                    o.sent.extend_from_slice(&bytes);
                }
                if let Some(&(j, c)) = self.links.get(&(i, conn)) {
                    if self.nodes[j].record {
                        self.nodes[j]
                            .received
                            .entry(c)
                            .or_default()
                            .extend_from_slice(&bytes);
                    }
                    let held = match self.paused.get_mut(&(j, c)) {
                        Some(held) => Some(held),
                        None => self.resumed.get_mut(&(j, c)),
                    };
                    match held {
                        Some(held) => held.extend_from_slice(&bytes),
                        None => self.nodes[j].gw.handle_bytes(c, &bytes, now),
                    }
                }
            }
            Output::PauseReading { conn } => {
                let held = self.resumed.remove(&(i, conn)).unwrap_or_default();
                self.paused.entry((i, conn)).or_default().extend(held);
            }
            Output::ResumeReading { conn } => {
                if let Some(held) = self.paused.remove(&(i, conn)) {
                    if !held.is_empty() {
                        self.resumed.insert((i, conn), held);
                    }
                }
            }
            Output::Connect { conn, addr } => {
                let target = self
                    .nodes
                    .iter()
                    .position(|n| n.addr == addr || n.direct == addr);
                if self.outside_listeners.contains(&addr) {
                    self.outside.insert(
                        (i, conn),
                        OutsideConn {
                            sent: Vec::new(),
                            closed: false,
                            peer: addr,
                        },
                    );
                    self.nodes[i].gw.handle_connected(conn, now);
                    return;
                }
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
                if let Some(o) = self.outside.get_mut(&(i, conn)) {
                    o.closed = true;
                }
                if let Some((j, c)) = self.links.remove(&(i, conn)) {
                    self.links.remove(&(j, c));
                    self.nodes[j].gw.handle_closed(c, now);
                }
            }
            Output::DnsQuery {
                query, bytes, tcp, ..
            } => {
                let zone = self
                    .dns
                    .as_mut()
                    .expect("unexpected DNS query: every domain has a fixed address here");
                if let Some(reply) = zone.reply(i, &bytes, tcp) {
                    self.nodes[i].gw.handle_dns(query, &reply, now);
                }
            }
            Output::Stanza(e) => self.nodes[i].inbox.push(e),
            Output::Datagram { local, peer, bytes } => {
                self.nodes[i].datagrams.push((local, peer, bytes))
            }
            Output::Persist(changes) => self.nodes[i].persisted.extend(changes),
            Output::Event(e) => self.nodes[i].events.push(e),
        }
    }

    /// Moves the clock on by `d`, running every timer at the time it is
    /// due, in order, as a runtime sleeping until `poll_timeout` does (a
    /// deadline already past fires again at once), then the network.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        for _ in 0..100_000 {
            let next = self.nodes.iter().filter_map(|n| n.gw.poll_timeout()).min();
            let Some(due) = next.filter(|t| *t <= until) else {
                self.now = until;
                self.run();
                return;
            };
            self.now = self.now.max(due);
            let now = self.now;
            for n in &mut self.nodes {
                if n.gw.poll_timeout().is_some_and(|t| t <= now) {
                    n.gw.handle_timeout(now);
                }
            }
            self.run();
        }
        panic!("timers did not settle");
    }

    /// Turns node `i` into an XMPP-SIP gateway configured by `toml` (a
    /// whole configuration file; only `[sip]`, `[[access]]` and
    /// `[[partner]]` types matter here), with one SIP UDP socket at
    /// [`Net::sip_addr`].
    pub fn enable_sip(&mut self, i: usize, toml: &str) {
        self.enable_sip_with(i, toml, None);
    }

    /// [`Net::enable_sip`] with proxy mode's next hop (the configuration's
    /// `next_hop` is not resolved here). SIP over TLS presents the node's
    /// certificate and trusts [`Net::ca`].
    pub fn enable_sip_with(&mut self, i: usize, toml: &str, next_hop: Option<NextHop>) {
        self.enable_sip_stored(i, toml, next_hop, Default::default());
    }

    fn enable_sip_stored(
        &mut self,
        i: usize,
        toml: &str,
        next_hop: Option<NextHop>,
        stored: crate::store::Stored,
    ) {
        let config = crate::config::parse(toml)
            .expect("test configuration")
            .config;
        let clock = Arc::new(CallerClock::new(NOW));
        let id = self.nodes[i].cert.identity();
        let settings = crate::endpoint::SipSettings {
            udp: vec![self.sip_addr(i)],
            tls_server: Some(server_config(&id, clock.clone())),
            tls_client: Some(client_config(&id, clock)),
            trust: Arc::new(self.ca.trust_anchors()),
            next_hop: next_hop.clone(),
            log_message_bodies: config.gateway.log_message_bodies,
        };
        self.nodes[i].next_hop = next_hop;
        let now = self.now;
        self.nodes[i]
            .gw
            .enable_sip(&config, settings, b"digest key", stored, now);
        self.run();
    }

    /// Restarts node `i`: a new gateway (its connections end, as their
    /// peers see) whose SIP side is configured by `toml` and loaded with
    /// what `store` kept, as a host does at start.
    pub fn restart_sip(&mut self, i: usize, toml: &str, store: &mut dyn crate::store::Store) {
        let now = self.now;
        let ends: Vec<(usize, ConnId)> = self
            .links
            .iter()
            .filter(|((n, _), _)| *n == i)
            .map(|(_, other)| *other)
            .collect();
        self.links.retain(|(n, _), (m, _)| *n != i && *m != i);
        self.outside.retain(|(n, _), _| *n != i);
        for (j, c) in ends {
            self.nodes[j].gw.handle_closed(c, now);
        }
        let spec = self.specs[i].clone();
        let settings = settings(&spec, &self.ca, &self.nodes[i].cert, &self.addrs);
        let mut seed = [0u8; 32];
        seed[0] = i as u8;
        seed[1] = 1;
        let unix = NOW + now.saturating_duration_since(self.start).as_secs();
        self.nodes[i].gw = Gateway::with_settings(settings, seed, now, unix, spec.connection_limit);
        let stored = store.load_all().expect("the store loads");
        let next_hop = self.nodes[i].next_hop.clone();
        self.enable_sip_stored(i, toml, next_hop, stored);
    }

    /// Node `i`'s SIP UDP socket: 10.0.0.N:5060.
    pub fn sip_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.nodes[i].addr.ip(), 5060)
    }

    /// A SIP datagram from `peer` to node `i`'s SIP socket.
    pub fn sip_datagram(&mut self, i: usize, peer: SocketAddr, bytes: &[u8]) {
        let (local, now) = (self.sip_addr(i), self.now);
        self.nodes[i].gw.handle_datagram(local, peer, bytes, now);
        self.run();
    }

    /// Makes connections to `addr` succeed: they become outside streams
    /// the test plays the other end of.
    pub fn listen_outside(&mut self, addr: SocketAddr) {
        self.outside_listeners.push(addr);
    }

    /// An outside peer at `from` connects to node `i`'s `listener`.
    pub fn connect_from_outside(
        &mut self,
        i: usize,
        listener: Listener,
        from: SocketAddr,
    ) -> ConnId {
        let now = self.now;
        let conn = self.nodes[i].gw.accept(listener, from, now);
        self.outside.insert(
            (i, conn),
            OutsideConn {
                sent: Vec::new(),
                closed: false,
                peer: from,
            },
        );
        self.run();
        conn
    }

    /// The outside streams node `i` opened, oldest first.
    pub fn outside_conns(&self, i: usize) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self
            .outside
            .keys()
            .filter(|(n, _)| *n == i)
            .map(|(_, c)| *c)
            .collect();
        conns.sort();
        conns
    }

    /// Bytes from the outside peer on node `i`'s stream `conn`.
    pub fn outside_send(&mut self, i: usize, conn: ConnId, bytes: &[u8]) {
        let now = self.now;
        self.nodes[i].gw.handle_bytes(conn, bytes, now);
        self.run();
    }

    /// Takes what node `i` sent on the outside stream `conn`, and whether
    /// it closed it.
    pub fn outside_take(&mut self, i: usize, conn: ConnId) -> (Vec<u8>, bool) {
        match self.outside.get_mut(&(i, conn)) {
            Some(o) => (std::mem::take(&mut o.sent), o.closed),
            None => (Vec::new(), false),
        }
    }

    /// Takes the SIP datagrams node `i` sent to `peer`.
    pub fn take_datagrams(&mut self, i: usize, peer: SocketAddr) -> Vec<Vec<u8>> {
        let (to_peer, rest) = std::mem::take(&mut self.nodes[i].datagrams)
            .into_iter()
            .partition(|(_, p, _)| *p == peer);
        self.nodes[i].datagrams = rest;
        to_peer.into_iter().map(|(_, _, b)| b).collect()
    }

    /// Sends a stanza from node `i`'s local side.
    pub fn send(&mut self, i: usize, stanza: &str) {
        let e = parse_element(stanza).expect("test stanza");
        self.nodes[i].gw.send(e, self.now);
        self.run();
    }

    /// An operator's request line to node `i` (the admin socket's), and
    /// what it set in motion.
    pub fn admin(&mut self, i: usize, line: &str) -> crate::admin::Reply {
        let reply = match crate::admin::Request::parse(line) {
            Ok(request) => self.nodes[i].gw.admin(&request, self.now),
            Err(e) => crate::admin::Reply::error(e),
        };
        self.run();
        reply
    }

    /// Records what node `i` receives on its XMPP connections from now on,
    /// for [`Net::stanzas_received`]. The stanzas of a plain XMPP node are
    /// otherwise invisible: without a SIP side it answers messages for its
    /// users `service-unavailable`. Only plaintext streams can be read, so
    /// the node needs `NodeSpec::tls = false`.
    pub fn record_stanzas(&mut self, i: usize) {
        self.nodes[i].record = true;
    }

    /// The stanzas (message, presence, iq in `jabber:server`) node `i`
    /// received on its XMPP connections since [`Net::record_stanzas`], per
    /// connection in connection order.
    pub fn stanzas_received(&self, i: usize) -> Vec<Element> {
        let mut conns: Vec<_> = self.nodes[i].received.iter().collect();
        conns.sort_by_key(|(c, _)| **c);
        let mut out = Vec::new();
        for (_, bytes) in conns {
            let mut reader = crate::xml::Reader::new(crate::xml::Limits::default());
            reader.feed_all(bytes);
            while let Some(Ok(event)) = reader.poll() {
                if let crate::xml::Event::Stanza(e) = event {
                    let stanza = e.ns() == crate::xml::ns::SERVER
                        && matches!(e.name(), "message" | "presence" | "iq");
                    if stanza {
                        out.push(e);
                    }
                }
            }
        }
        out
    }

    /// Whether node `i` reported an event that `matches`.
    pub fn saw(&self, i: usize, matches: impl Fn(&Event) -> bool) -> bool {
        self.nodes[i].events.iter().any(matches)
    }

    /// How node `i` authenticated the pair `local`/`remote` on a stream of
    /// that direction, if it did.
    pub fn authenticated(
        &self,
        i: usize,
        inbound: bool,
        local: &str,
        remote: &str,
    ) -> Option<AuthMethod> {
        self.nodes[i].events.iter().find_map(|e| match e {
            Event::StreamAuthenticated {
                inbound: dir,
                local: l,
                remote: r,
                method,
                ..
            } if *dir == inbound && l == local && r == remote => Some(*method),
            _ => None,
        })
    }

    /// Whether node `i` reported detail about connection `conn` (any, when
    /// `None`) whose text contains `needle`: for protocol details that
    /// have no event of their own (stream errors, dialback steps).
    pub fn detail_has(&self, i: usize, conn: Option<ConnId>, needle: &str) -> bool {
        self.saw(i, |e| {
            let text = match e {
                Event::Detail { text, .. } => text,
                Event::StreamClosed { reason, .. } | Event::StreamFailed { reason, .. } => reason,
                _ => return false,
            };
            conn.is_none_or(|want| e.conn() == Some(want)) && text.contains(needle)
        })
    }

    /// Node `i`'s events as its log would show them, for assertion
    /// messages.
    pub fn dump(&self, i: usize) -> String {
        self.nodes[i]
            .events
            .iter()
            .map(|e| format!("{:?} {:?} {}: {e}", e.level(), e.conn(), e.kind()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
