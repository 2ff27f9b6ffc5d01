//! The DNS summary: the records to publish for each local domain (Lync's
//! "DNS summary - XMPP federation", with XEP-0368's `_xmpps-server`).

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::config::Config;

/// One record to publish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The owner name, without the final dot.
    pub name: String,
    /// `SRV`, `A` or `AAAA`.
    #[serde(rename = "type")]
    pub rtype: &'static str,
    /// SRV priority.
    pub priority: Option<u16>,
    /// SRV weight.
    pub weight: Option<u16>,
    /// SRV port.
    pub port: Option<u16>,
    /// SRV target, or the address (`<...>` when only the operator knows
    /// it: a listener on every interface).
    pub value: String,
}

/// The SRV services xfed's listeners answer, with the listeners' kind.
pub const STARTTLS_SERVICE: &str = "_xmpp-server._tcp";
/// XEP-0368 direct TLS.
pub const DIRECT_TLS_SERVICE: &str = "_xmpps-server._tcp";

fn ports(addrs: &[SocketAddr]) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    for a in addrs {
        if !ports.contains(&a.port()) {
            ports.push(a.port());
        }
    }
    ports
}

fn srv(service: &str, domain: &str, port: u16, host: &str) -> Record {
    Record {
        name: format!("{service}.{domain}"),
        rtype: "SRV",
        priority: Some(0),
        weight: Some(5),
        port: Some(port),
        value: host.to_owned(),
    }
}

/// The records: per local domain its SRV records pointing at `host`
/// (one per s2s port), then `host`'s A and AAAA records, from the s2s
/// listeners' addresses.
pub fn records(config: &Config, host: &str) -> Vec<Record> {
    let listen = &config.listen;
    let mut out = Vec::new();
    for d in &config.gateway.domains {
        for port in ports(&listen.s2s) {
            out.push(srv(STARTTLS_SERVICE, d, port, host));
        }
        for port in ports(&listen.s2s_direct_tls) {
            out.push(srv(DIRECT_TLS_SERVICE, d, port, host));
        }
    }
    let mut seen: Vec<IpAddr> = Vec::new();
    for a in listen.s2s.iter().chain(&listen.s2s_direct_tls) {
        let ip = a.ip();
        if seen.contains(&ip) {
            continue;
        }
        seen.push(ip);
        let (rtype, any) = match ip {
            IpAddr::V4(_) => ("A", "<public IPv4 address of this host>"),
            IpAddr::V6(_) => ("AAAA", "<public IPv6 address of this host>"),
        };
        out.push(Record {
            name: host.to_owned(),
            rtype,
            priority: None,
            weight: None,
            port: None,
            value: if ip.is_unspecified() {
                any.to_owned()
            } else {
                ip.to_string()
            },
        });
    }
    out
}
