//! `xfed plan`: the three summaries of Lync's XMPP federation planning
//! document (ports, certificate, DNS) computed from a configuration, and
//! the judgement of what `--check` found live. Pure: the host reads the
//! certificate file, resolves, connects and prints
//! (`host::plan`).
//!
//! - [`firewall`]: the rules, one per listener and outbound kind.
//! - [`certificate`]: the names needed and carried, expiry, client use.
//! - [`records`]: the SRV, A and AAAA records to publish.
//! - [`probe`]: one connection of `--check` (STARTTLS or TLS), sans-IO.
//! - [`verdict`]: each live finding as an ok / warning / error line.

pub mod certificate;
pub mod firewall;
pub mod probe;
pub mod records;
pub mod verdict;

use std::net::SocketAddr;

use rustls::pki_types::CertificateDer;
use serde::Serialize;

use crate::config::Config;

pub use certificate::CertificatePlan;
pub use firewall::Rule;
pub use probe::{Probe, ProbeKind, Reached};
pub use records::Record;
pub use verdict::{Line, Status};

/// The three summaries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The host name the SRV records point at.
    pub host: String,
    /// Firewall rules.
    pub firewall: Vec<Rule>,
    /// The certificate.
    pub certificate: CertificatePlan,
    /// DNS records to publish.
    pub dns: Vec<Record>,
}

/// The SRV target when the operator names none: `xmpp.` and the first
/// local domain, as Lync's planning examples (`xmpp.contoso.com`).
pub fn default_host(config: &Config) -> String {
    let first = config.gateway.domains.first().map_or("localhost", |d| d);
    format!("xmpp.{first}")
}

impl Plan {
    /// The plan of `config` with SRV target `host`, its certificate read
    /// from `file` (`chain`, or why it could not be), at `unix_now`,
    /// resolving through `resolver`.
    pub fn new(
        config: &Config,
        host: &str,
        file: &str,
        chain: Result<&[CertificateDer<'_>], String>,
        unix_now: u64,
        resolver: SocketAddr,
    ) -> Plan {
        Plan {
            host: host.to_owned(),
            firewall: firewall::rules(config, resolver),
            certificate: certificate::summary(config, host, file, chain, unix_now),
            dns: records::records(config, host),
        }
    }
}
