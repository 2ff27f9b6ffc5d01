//! The embedded default: what `xfed` runs with no arguments.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use super::{
    defaults, Config, FederationMode, GatewayConfig, ListenConfig, MessageQueues, Role, SipConfig,
    SipListener, SipMode, SipTransport, StoreConfig, StoreUrl, TlsConfig, Trust, TrustedPeer,
};

/// [`Config::embedded_default`] as a file, to print or to start a real one
/// from; parsing it gives exactly that configuration.
pub const EMBEDDED_DEFAULT_TOML: &str = r#"# xfed's embedded default: what `xfed` runs with no arguments.
# Everything listens on loopback only, so nothing outside this machine can
# reach it; that is why federation is open here.

[gateway]
domains = ["localhost"]
# No dialback_secret: xfed generates one and keeps it in ./xfed-data.
federation = "open"

[listen]
s2s = ["127.0.0.1:5269"]
s2s_direct_tls = ["127.0.0.1:5270"]
sip = ["tcp:127.0.0.1:5060", "udp:127.0.0.1:5060", "tls:127.0.0.1:5061"]
metrics = "127.0.0.1:9269"

[tls]
# A self-signed pair for "localhost", made here on first start.
certificate = "xfed-data/cert.pem"
key = "xfed-data/key.pem"
trust = "system"

[sip]
mode = "registrar"
# No [[sip.account]]: SIP user agents on this machine register and send
# without digest. A deployment lists its accounts and trusts only its proxy.
trusted = ["127.0.0.1", "::1"]
# Loopback cannot be spoofed from outside: trust it over UDP too.
trust_udp = true

[store]
url = "sqlite://xfed-data/xfed.db"
"#;

const fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

impl Config {
    /// What `xfed` with no arguments runs (DESIGN.md section 4): domain
    /// `localhost`, every listener on 127.0.0.1, a self-signed certificate
    /// and the SQLite store in `./xfed-data` (relative paths, which the
    /// runtime resolves against its working directory), the built-in
    /// registrar, which trusts loopback sources (SIP user agents on this
    /// machine need no account).
    ///
    /// Federation is `open`: with loopback-only listeners the only peers
    /// are on this machine, so any domain that authenticates may federate
    /// as public-unverified, which is what trying xfed out against a local
    /// Prosody or ejabberd needs. `dialback_secret` is `None`: the runtime
    /// generates one and keeps it in the data directory.
    pub fn embedded_default() -> Config {
        Config {
            gateway: GatewayConfig {
                domains: vec!["localhost".to_owned()],
                dialback_secret: None,
                connection_limit: defaults::CONNECTION_LIMIT,
                partner_connection_limit: defaults::PARTNER_CONNECTION_LIMIT,
                stream_establishment_timeout: defaults::STREAM_ESTABLISHMENT_TIMEOUT,
                stream_inactivity_timeout: defaults::STREAM_INACTIVITY_TIMEOUT,
                keepalive_interval: defaults::KEEPALIVE_INTERVAL,
                subscription_refresh_interval: defaults::SUBSCRIPTION_REFRESH_INTERVAL,
                log_message_bodies: defaults::LOG_MESSAGE_BODIES,
                max_stanza_size: defaults::MAX_STANZA_SIZE,
                log_lines_per_source: defaults::LOG_LINES_PER_SOURCE,
                federation: FederationMode::Open,
                role: Role::Both,
                max_pending_dialback_per_stream: defaults::MAX_PENDING_DIALBACK_PER_STREAM,
                max_pending_dialback_per_domain: defaults::MAX_PENDING_DIALBACK_PER_DOMAIN,
                max_routes: defaults::MAX_ROUTES,
                max_dns_queries: defaults::MAX_DNS_QUERIES,
            },
            listen: ListenConfig {
                s2s: vec![loopback(defaults::S2S_PORT)],
                s2s_direct_tls: vec![loopback(defaults::S2S_DIRECT_TLS_PORT)],
                sip: vec![
                    SipListener {
                        transport: SipTransport::Tcp,
                        addr: loopback(5060),
                    },
                    SipListener {
                        transport: SipTransport::Udp,
                        addr: loopback(5060),
                    },
                    SipListener {
                        transport: SipTransport::Tls,
                        addr: loopback(5061),
                    },
                ],
                internal: None,
                metrics: Some(defaults::LISTEN_METRICS),
            },
            tls: TlsConfig {
                certificate: PathBuf::from("xfed-data/cert.pem"),
                key: PathBuf::from("xfed-data/key.pem"),
                trust: Trust::System,
            },
            sip: SipConfig {
                mode: SipMode::Registrar,
                next_hop: None,
                path: None,
                max_message_size: defaults::SIP_MAX_MESSAGE_SIZE,
                connection_limit: defaults::SIP_CONNECTION_LIMIT,
                handshake_timeout: defaults::SIP_HANDSHAKE_TIMEOUT,
                request_timeout: defaults::SIP_REQUEST_TIMEOUT,
                idle_timeout: defaults::SIP_IDLE_TIMEOUT,
                max_transactions: defaults::SIP_MAX_TRANSACTIONS,
                max_watchers: defaults::SIP_MAX_WATCHERS,
                max_subscriptions: defaults::SIP_MAX_SUBSCRIPTIONS,
                queues: MessageQueues::default(),
                trust_udp: true,
                max_auth_failures: defaults::SIP_MAX_AUTH_FAILURES,
                auth_backoff: defaults::SIP_AUTH_BACKOFF,
                trusted: vec![
                    TrustedPeer::Address(Ipv4Addr::LOCALHOST.into()),
                    TrustedPeer::Address(Ipv6Addr::LOCALHOST.into()),
                ],
                accounts: Vec::new(),
                digest_algorithms: defaults::SIP_DIGEST_ALGORITHMS.to_vec(),
            },
            component: None,
            internal: None,
            store: StoreConfig {
                url: StoreUrl::Sqlite(PathBuf::from("xfed-data/xfed.db")),
                state_dir: None,
            },
            partners: Vec::new(),
            blocks: Vec::new(),
            access: Vec::new(),
        }
    }
}
