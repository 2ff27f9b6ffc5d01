//! What every session of a gateway shares: the configuration's s2s side,
//! certificates, and the caller's clock.

use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig};

use crate::config::{Negotiation, Partners, StreamPolicy};
use crate::tls::{CallerClock, TrustAnchors};
use crate::xml::Limits;
use crate::xmpp::input::Reading;

pub use crate::time::Time;

/// What every session of a gateway shares.
pub struct Settings {
    /// The domains xfed serves.
    pub local_domains: Vec<String>,
    /// Reader limits.
    pub limits: Limits,
    /// Our certificate as a TLS server; `None` disables inbound TLS.
    pub tls_server: Option<Arc<ServerConfig>>,
    /// Our certificate as a TLS client; `None` disables outbound TLS.
    pub tls_client: Option<Arc<ClientConfig>>,
    /// The same for direct TLS (XEP-0368: ALPN `xmpp-server`).
    pub tls_server_direct: Option<Arc<ServerConfig>>,
    /// The same for direct TLS connections we open.
    pub tls_client_direct: Option<Arc<ClientConfig>>,
    /// The time rustls checks certificates against, set from [`Time`] by
    /// the gateway before every call.
    pub clock: Arc<CallerClock>,
    /// Anchors peer certificates are validated against.
    pub trust: Arc<TrustAnchors>,
    /// The dialback secret (XEP-0185), shared by every instance.
    pub dialback_secret: String,
    /// From connection to authenticated stream.
    pub establishment_timeout: Duration,
    /// Lync's `StreamInactivityTimeout`: a stream that carries no element
    /// (stanza, dialback or negotiation; whitespace does not count) for
    /// this long serves nobody and is closed gracefully.
    pub inactivity_timeout: Duration,
    /// Lync's `KeepAliveInterval`: a partner that sends nothing at all, not
    /// even a space, on its stream for this long is gone, and the stream is
    /// closed with `connection-timeout`. Our own keepalives go out every
    /// half of it ([`super::keepalive_period`]) so that a peer holding us
    /// to the same rule never times us out.
    pub keepalive_interval: Duration,
    /// Per-domain admission, negotiation, address and limit.
    pub partners: Arc<dyn Partners>,
    /// What dialback requests may make the gateway hold.
    pub bounds: S2sBounds,
    /// Which stanzas over authenticated streams come out as they came
    /// ([`super::SessionEvent::Relay`]), not as trees.
    pub reading: Reading,
}

/// What an unauthenticated peer can make the s2s side hold, at most: the
/// `[gateway]` keys of the same names (see `config::GatewayConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2sBounds {
    /// Dialback requests waiting for verification on one inbound stream.
    pub max_pending_dialback_per_stream: usize,
    /// Verifications of one originating domain waiting, over all streams.
    pub max_pending_dialback_per_domain: usize,
    /// Outbound routes being set up or up.
    pub max_routes: usize,
    /// DNS queries in flight.
    pub max_dns_queries: usize,
    /// Warnings about one stream's refusals per minute
    /// (`gateway.log_lines_per_source`).
    pub log_lines_per_source: u32,
}

impl Default for S2sBounds {
    /// The configuration's defaults.
    fn default() -> Self {
        use crate::config::defaults;
        S2sBounds {
            max_pending_dialback_per_stream: defaults::MAX_PENDING_DIALBACK_PER_STREAM as usize,
            max_pending_dialback_per_domain: defaults::MAX_PENDING_DIALBACK_PER_DOMAIN as usize,
            max_routes: defaults::MAX_ROUTES as usize,
            max_dns_queries: defaults::MAX_DNS_QUERIES as usize,
            log_lines_per_source: defaults::LOG_LINES_PER_SOURCE,
        }
    }
}

impl S2sBounds {
    /// The bounds a configuration sets.
    pub fn from_config(g: &crate::config::GatewayConfig) -> Self {
        S2sBounds {
            max_pending_dialback_per_stream: g.max_pending_dialback_per_stream as usize,
            max_pending_dialback_per_domain: g.max_pending_dialback_per_domain as usize,
            max_routes: g.max_routes as usize,
            max_dns_queries: g.max_dns_queries as usize,
            log_lines_per_source: g.log_lines_per_source,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("local_domains", &self.local_domains)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// How to treat `domain`; `None` refuses it.
    pub fn policy(&self, domain: &str) -> Option<StreamPolicy> {
        self.partners.policy(domain)
    }

    /// The fixed address configured for `domain`, if any.
    pub fn connect_for(&self, domain: &str) -> Option<(String, u16)> {
        self.partners.connect(domain)
    }

    /// Whether routes to `domain` look for and dial XEP-0368 direct TLS
    /// addresses: not to a partner with `tls = "not-supported"`, which gets
    /// no TLS from us at all.
    pub fn direct_tls_to(&self, domain: &str) -> bool {
        self.tls_client_direct.is_some()
            && self
                .policy(domain)
                .is_none_or(|p| p.tls != Negotiation::NotSupported)
    }

    /// Whether xfed serves `domain`.
    pub fn is_local(&self, domain: &str) -> bool {
        crate::config::is_local(&self.local_domains, domain)
    }
}
