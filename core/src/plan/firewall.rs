//! The port summary: every rule the firewall needs for this deployment,
//! one per listener and per kind of outbound connection (Lync's "Port
//! summary - XMPP federation", with SIP, metrics and DNS added).

use std::net::SocketAddr;

use serde::Serialize;

use crate::config::{Config, FederationMode, SipMode, SipTransport};
use crate::dns::DEFAULT_PORT;

/// Which way connections go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Others connect to xfed.
    Inbound,
    /// xfed connects to others.
    Outbound,
}

/// One firewall rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Inbound or outbound.
    pub direction: Direction,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// Inbound: the local address (`0.0.0.0` is every interface);
    /// outbound: who is reached.
    pub address: String,
    /// The port (the destination port both ways).
    pub port: u16,
    /// The listener key (`s2s`, `s2s_direct_tls`, `sip`, `internal`,
    /// `metrics`) or, outbound, what the connection is (`s2s`, `dns`,
    /// `sip`).
    pub service: &'static str,
    /// Who needs the rule, and why.
    pub needed_by: String,
}

impl Rule {
    /// An inbound rule for a listener.
    pub fn inbound(
        protocol: &'static str,
        addr: SocketAddr,
        service: &'static str,
        why: &str,
    ) -> Rule {
        Rule {
            direction: Direction::Inbound,
            protocol,
            address: addr.ip().to_string(),
            port: addr.port(),
            service,
            needed_by: why.to_owned(),
        }
    }
}

/// Whom outbound s2s reaches: the partners by name, or anyone.
fn partners(config: &Config) -> String {
    let names: Vec<&str> = config.partners.iter().flat_map(|p| p.domains()).collect();
    match config.gateway.federation {
        FederationMode::AllowList if names.is_empty() => "no partner yet".to_owned(),
        FederationMode::AllowList => names.join(", "),
        FederationMode::Open | FederationMode::DenyList => "any XMPP server".to_owned(),
    }
}

/// The rules, inbound first in the order of `[listen]`, then outbound.
pub fn rules(config: &Config, resolver: SocketAddr) -> Vec<Rule> {
    let listen = &config.listen;
    let mut rules = Vec::new();
    for a in &listen.s2s {
        rules.push(Rule::inbound(
            "tcp",
            *a,
            "s2s",
            "partners' XMPP servers (STARTTLS); dialback needs it open too",
        ));
    }
    for a in &listen.s2s_direct_tls {
        rules.push(Rule::inbound(
            "tcp",
            *a,
            "s2s_direct_tls",
            "partners' XMPP servers with direct TLS (XEP-0368)",
        ));
    }
    for l in &listen.sip {
        let (protocol, why) = match l.transport {
            SipTransport::Tcp => ("tcp", "SIP user agents and proxies over TCP"),
            SipTransport::Udp => ("udp", "SIP user agents and proxies over UDP"),
            SipTransport::Tls => ("tcp", "SIP user agents and proxies over TLS"),
        };
        rules.push(Rule::inbound(protocol, l.addr, "sip", why));
    }
    if let Some(a) = listen.internal {
        rules.push(Rule::inbound(
            "tcp",
            a,
            "internal",
            "the gateway role's link to this edge (internal network only)",
        ));
    }
    if let Some(a) = listen.metrics {
        rules.push(Rule::inbound(
            "tcp",
            a,
            "metrics",
            "Prometheus scrapes and the status page (internal network only)",
        ));
    }
    let to = partners(config);
    let mut ports = vec![DEFAULT_PORT, DEFAULT_PORT + 1];
    for p in &config.partners {
        if let Some(c) = &p.connect {
            if !ports.contains(&c.port) {
                ports.push(c.port);
            }
        }
    }
    for port in ports {
        let why = match port {
            DEFAULT_PORT => "streams to partners (STARTTLS); other ports as their SRV records say",
            p if p == DEFAULT_PORT + 1 => "streams to partners with direct TLS (XEP-0368)",
            _ => "streams to a partner's fixed address (connect)",
        };
        rules.push(Rule {
            direction: Direction::Outbound,
            protocol: "tcp",
            address: to.clone(),
            port,
            service: "s2s",
            needed_by: why.to_owned(),
        });
    }
    for protocol in ["udp", "tcp"] {
        rules.push(Rule {
            direction: Direction::Outbound,
            protocol,
            address: resolver.ip().to_string(),
            port: resolver.port(),
            service: "dns",
            needed_by: "SRV and A/AAAA lookups of partners (the resolver of /etc/resolv.conf)"
                .to_owned(),
        });
    }
    if config.sip.mode == SipMode::Proxy {
        if let Some(rule) = config.sip.next_hop.as_deref().and_then(next_hop) {
            rules.push(rule);
        }
    }
    rules
}

/// The rule for `sip.next_hop` in proxy mode: its transport and port
/// (5060, or 5061 over TLS, when the URI has none).
fn next_hop(hop: &str) -> Option<Rule> {
    let uri = crate::sip::Uri::parse(hop).ok()?;
    let tls = uri.scheme() == crate::sip::Scheme::Sips
        || uri
            .transport()
            .is_some_and(|t| t.eq_ignore_ascii_case("tls"));
    let udp = !tls
        && !uri
            .transport()
            .is_some_and(|t| t.eq_ignore_ascii_case("tcp"));
    Some(Rule {
        direction: Direction::Outbound,
        protocol: if udp { "udp" } else { "tcp" },
        address: hop.to_owned(),
        port: uri.port().unwrap_or(if tls { 5061 } else { 5060 }),
        service: "sip",
        needed_by: "requests for local users go to the SIP next hop".to_owned(),
    })
}
