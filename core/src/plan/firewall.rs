//! The port summary: every rule the firewall needs for this deployment,
//! one per listener and per kind of outbound connection (Lync's "Port
//! summary - XMPP federation", with SIP, metrics and DNS added).

use std::net::SocketAddr;

use serde::Serialize;

use crate::config::{Config, FederationMode, Role, SipMode, SipTransport, StoreUrl, TrustedPeer};
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
    /// `sip`, `store`).
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
    if let Some(a) = listen
        .internal
        .filter(|_| config.gateway.role == Role::Edge)
    {
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
    if config.gateway.role == Role::Gateway {
        // The edges, or the XMPP server, federate and resolve partners.
        rules.extend(links(config));
        return with_next_hop(config, rules);
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
    with_next_hop(config, rules)
}

/// A gateway's outbound links: to each edge's internal port, or to the
/// XMPP server's component port.
fn links(config: &Config) -> Vec<Rule> {
    let outbound = |c: &crate::config::Connect, service: &'static str, why: &str| Rule {
        direction: Direction::Outbound,
        protocol: "tcp",
        address: c.host.clone(),
        port: c.port,
        service,
        needed_by: why.to_owned(),
    };
    let edges = config.internal.iter().flat_map(|i| &i.connect).map(|c| {
        outbound(
            c,
            "internal",
            "the internal link to this edge (TLS, both certificates checked)",
        )
    });
    let server = config.component.iter().map(|c| {
        outbound(
            &c.server,
            "component",
            "the XMPP server's component port (XEP-0114)",
        )
    });
    edges.chain(server).collect()
}

/// `rules` and, in proxy mode, the SIP next hop's; with several
/// instances, the other instances' SIP port and the shared store.
fn with_next_hop(config: &Config, mut rules: Vec<Rule>) -> Vec<Rule> {
    if config.sip.mode == SipMode::Proxy {
        if let Some(rule) = config.sip.next_hop.as_deref().and_then(next_hop) {
            rules.push(rule);
        }
    }
    if let Some(rule) = config
        .sip
        .path
        .as_deref()
        .and_then(|p| instances(config, p))
    {
        rules.push(rule);
    }
    if let StoreUrl::Postgres(url) = &config.store.url {
        if let Some((host, port)) = postgres_host(url.expose()) {
            rules.push(Rule {
                direction: Direction::Outbound,
                protocol: "tcp",
                address: host,
                port,
                service: "store",
                needed_by: "the shared PostgreSQL store (writes, and the connection that hears the other instances)".to_owned(),
            });
        }
    }
    rules
}

/// With `sip.path`, the rule to the other instances of the deployment
/// (the `sip.trusted` addresses), on this instance's path port and
/// transport (every instance is expected to listen alike).
fn instances(config: &Config, path: &str) -> Option<Rule> {
    let uri = crate::sip::Uri::parse(path).ok()?;
    let tcp = uri
        .transport()
        .is_some_and(|t| t.eq_ignore_ascii_case("tcp"));
    let peers: Vec<String> = config
        .sip
        .trusted
        .iter()
        .map(|p| match p {
            TrustedPeer::Address(ip) => ip.to_string(),
            TrustedPeer::Certificate(name) => name.clone(),
        })
        .collect();
    Some(Rule {
        direction: Direction::Outbound,
        protocol: if tcp { "tcp" } else { "udp" },
        address: if peers.is_empty() {
            "the other instances (none in sip.trusted yet)".to_owned()
        } else {
            peers.join(", ")
        },
        port: uri.port().unwrap_or(5060),
        service: "sip",
        needed_by: "messages for users registered at another instance of the deployment (sip.path)"
            .to_owned(),
    })
}

/// The host and port of a PostgreSQL URL, never its credentials.
fn postgres_host(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => {
            (h, p.parse().ok()?)
        }
        _ => (host_port, 5432),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), port))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Vec<(Direction, &'static str, String, u16)> {
        let config = crate::config::parse(text).expect("loads").config;
        rules(&config, SocketAddr::from(([192, 0, 2, 53], 53)))
            .into_iter()
            .map(|r| (r.direction, r.service, r.address, r.port))
            .collect()
    }

    #[test]
    fn each_role_opens_what_it_uses() {
        let edge = plan(
            "[gateway]\ndomains = [\"example.com\"]\nrole = \"edge\"\n\
             [listen]\ns2s = [\"192.0.2.1:5269\"]\ns2s_direct_tls = []\ninternal = \"10.0.0.5:23456\"\nmetrics = false\n",
        );
        assert!(edge.contains(&(Direction::Inbound, "internal", "10.0.0.5".into(), 23456)));
        assert!(edge.iter().all(|r| r.1 != "sip"), "{edge:?}");
        assert!(edge.contains(&(Direction::Outbound, "s2s", "no partner yet".into(), 5269)));
        let gateway = plan(
            "[gateway]\ndomains = [\"example.com\"]\nrole = \"gateway\"\n\
             [listen]\nsip = [\"udp:10.0.1.7:5060\"]\nmetrics = false\n\
             [internal]\nconnect = [\"edge1.example.com:23456\", \"edge2.example.com:23456\"]\n",
        );
        assert_eq!(
            gateway,
            [
                (Direction::Inbound, "sip", "10.0.1.7".into(), 5060),
                (
                    Direction::Outbound,
                    "internal",
                    "edge1.example.com".into(),
                    23456
                ),
                (
                    Direction::Outbound,
                    "internal",
                    "edge2.example.com".into(),
                    23456
                ),
            ]
        );
        // One process: `internal` is no listener of it.
        let both = plan(
            "[gateway]\ndomains = [\"example.com\"]\n[listen]\ninternal = \"10.0.0.5:23456\"\nmetrics = false\n",
        );
        assert!(both.iter().all(|r| r.1 != "internal"), "{both:?}");
    }

    #[test]
    fn several_instances_reach_each_other_and_the_store() {
        let rules = plan(
            "[gateway]\ndomains = [\"example.com\"]\ndialback_secret = \"s\"\n\
             [sip]\npath = \"sip:10.0.0.11:5062;transport=tcp\"\ntrusted = [\"10.0.0.12\"]\n\
             [store]\nurl = \"postgres://xfed:hunter2@db.example.com:5433/xfed\"\n",
        );
        assert!(
            rules.contains(&(Direction::Outbound, "sip", "10.0.0.12".into(), 5062)),
            "{rules:?}"
        );
        assert!(
            rules.contains(&(Direction::Outbound, "store", "db.example.com".into(), 5433)),
            "{rules:?}"
        );
        assert!(!format!("{rules:?}").contains("hunter2"));
        assert_eq!(postgres_host("postgresql://h/db"), Some(("h".into(), 5432)));
        assert_eq!(
            postgres_host("postgres://u@[::1]:6000/db"),
            Some(("::1".into(), 6000))
        );
    }
}
