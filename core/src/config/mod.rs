//! Configuration: the TOML file of DESIGN.md section 4, parsed and validated.
//!
//! The key names are a user-facing contract (DESIGN.md section 4): they are
//! kept exactly, and new ones are added beside them. [`parse`] takes the
//! file's text (the runtime reads the file; this module does no I/O) and
//! returns either a [`Config`] with the [`Notice`]s worth showing, or the
//! first [`ConfigError`], which names the line, column and key path.
//!
//! Every omitted key takes Lync's default where Lync had the setting
//! (`reference/lync.md` sections 4 and 5), else the value DESIGN.md shows;
//! [`defaults`] lists them and each field's doc repeats its own.
//!
//! Keys that later work implements are accepted but reported as
//! [`NoticeKind::NotActiveYet`]; [`INACTIVE_KEYS`] is the one list of them.

pub mod digest;
#[cfg(feature = "host")]
pub mod edit;
mod embedded;
mod error;
mod lower;
pub mod lync;
mod policy;
mod raw;
pub mod reload;
mod values;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use digest::Algorithm;

pub use embedded::EMBEDDED_DEFAULT_TOML;
pub use error::{ConfigError, ErrorKind, Level, Location, Notice, NoticeKind};
pub use policy::{is_local, Admission, Partners, RefusalReason, OPEN_FEDERATION_POLICY};

/// Key paths (dotted, without array indices) that are accepted but not acted
/// on yet. A key is inactive when its path equals an entry or lies under it
/// (`sip` covers `[[sip.account]]` too). Work that makes a key effective
/// removes or narrows its entry here, and nowhere else.
pub const INACTIVE_KEYS: &[&str] = &[];

/// Parses and validates a configuration file's text.
///
/// Unknown keys, malformed values, inconsistent settings and invalid
/// TLS/SASL/dialback combinations are errors; doubtful combinations and
/// keys that are not active yet come back as notices, sorted by line.
pub fn parse(text: &str) -> Result<Loaded, ConfigError> {
    lower::load(text)
}

/// A parsed configuration and what the operator should be told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Warnings and notes, in file order; none of them stops a start.
    pub notices: Vec<Notice>,
}

/// The whole configuration file, every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[gateway]`: what Lync kept in `Set-CsXmppGatewayConfiguration`.
    pub gateway: GatewayConfig,
    /// `[listen]`: the sockets to listen on.
    pub listen: ListenConfig,
    /// `[tls]`: our certificate and whom we trust.
    pub tls: TlsConfig,
    /// `[sip]` with `[[sip.account]]`: the SIP side.
    pub sip: SipConfig,
    /// `[store]`: where subscriptions persist.
    pub store: StoreConfig,
    /// `[component]`, with `role = "gateway"`: the XMPP server xfed is a
    /// component of, instead of federating itself.
    pub component: Option<ComponentConfig>,
    /// `[internal]`, with `role = "gateway"`: the edges to attach to.
    pub internal: Option<InternalConfig>,
    /// `[[partner]]`, in file order: Lync's `New-CsXmppAllowedPartner`.
    pub partners: Vec<Partner>,
    /// `[[block]]`, in file order: refused domains under `federation = "deny-list"`.
    pub blocks: Vec<Block>,
    /// `[[access]]`, in file order; first match wins.
    pub access: Vec<AccessRule>,
}

/// `[gateway]`. Lync's defaults apply where Lync had the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// `domains`, required and non-empty: the local domains, each both the
    /// XMPP and the SIP domain of its users. Held in prepared form (RFC 7622:
    /// lowercase, U-labels, no trailing dot).
    pub domains: Vec<String>,
    /// `dialback_secret` (Lync `DialbackPassphrase`): the key for dialback
    /// keys, shared by every instance of a deployment. `None` when the file
    /// has none: the runtime then generates a random one and keeps it in its
    /// data directory, so one instance keeps its keys valid across restarts.
    pub dialback_secret: Option<Secret>,
    /// `connection_limit` (Lync `ConnectionLimit`), default 1000: s2s
    /// connections over all partners, inbound and outbound (SIP
    /// connections have their own, `sip.connection_limit`).
    pub connection_limit: u32,
    /// `partner_connection_limit` (Lync `PartnerConnectionLimit`), default
    /// 20: streams one partner may hold, inbound and outbound over all its
    /// domains (a domain that is no partner counts alone), unless its
    /// `[[partner]]` says.
    pub partner_connection_limit: u32,
    /// `stream_establishment_timeout` (Lync `StreamEstablishmentTimeout`),
    /// default 60 s: time a peer has to complete stream set-up.
    pub stream_establishment_timeout: Duration,
    /// `stream_inactivity_timeout` (Lync `StreamInactivityTimeout`), default
    /// 10 min: a stream that carries no element for that long (whitespace
    /// keepalives do not count) is closed gracefully, `</stream:stream>`.
    pub stream_inactivity_timeout: Duration,
    /// `keepalive_interval` (Lync `KeepAliveInterval`), default 5 min: a
    /// partner that sends nothing at all on its stream for that long, not
    /// even a space, is gone: the stream is closed with `connection-timeout`.
    /// xfed sends its own spaces every half of it to partners with
    /// `keepalive = true`.
    pub keepalive_interval: Duration,
    /// `subscription_refresh_interval` (Lync `SubscriptionRefreshInterval`),
    /// default 8 h: the longest a presence subscription lives without a
    /// refresh. A SIP SUBSCRIBE is granted at most this; an XMPP contact a
    /// SIP user watches is probed again when a refresh of the user comes
    /// this long after the last probe.
    pub subscription_refresh_interval: Duration,
    /// `log_message_bodies` (Lync `EnableLoggingAllMessageBodies`), default
    /// false: bodies are stripped from logs for privacy.
    pub log_message_bodies: bool,
    /// `max_stanza_size` in bytes, default 256 KiB (what Prosody and ejabberd
    /// use for s2s); at least 10000, the size RFC 6120 section 13.12 says a
    /// server must accept.
    pub max_stanza_size: usize,
    /// `log_lines_per_source`, default 20: warnings one source address can
    /// cause at will (garbage, failed digests, refusals) logged per minute;
    /// the rest are counted and the count rides on its next line.
    pub log_lines_per_source: u32,
    /// `federation`, default `allow-list` (Lync had nothing else).
    pub federation: FederationMode,
    /// `role`, default `both`.
    pub role: Role,
    /// `max_pending_dialback_per_stream`, default 10: dialback requests
    /// (`db:result`) one inbound stream may have waiting for their
    /// authoritative server at once; each costs a route, DNS queries and a
    /// connection, so one unauthenticated stream must not start thousands.
    /// Beyond it a request gets a `resource-constraint` dialback error.
    pub max_pending_dialback_per_stream: u32,
    /// `max_pending_dialback_per_domain`, default 20: verifications of one
    /// originating domain waiting at once over all streams, so that streams
    /// claiming one victim domain cannot make xfed flood its server with
    /// `db:verify`. The default is `partner_connection_limit`'s: a domain
    /// never needs more than one per stream it may hold.
    pub max_pending_dialback_per_domain: u32,
    /// `max_routes`, default 1000: outbound routes (one per local and
    /// remote domain pair) being set up or up at once, each holding at most
    /// one outbound connection; as many as `connection_limit` allows
    /// streams. A stanza needing a new route beyond it is bounced with
    /// `resource-constraint`, a verification needing one is refused.
    pub max_routes: u32,
    /// `max_dns_queries`, default 100: DNS queries in flight at once (each
    /// a socket of the runtime until answered or given up after 5 s); a
    /// resolution beyond waits its turn, and fails with
    /// `remote-server-timeout` when no query could be sent for 10 s.
    pub max_dns_queries: u32,
}

/// `role`: which half of the gateway this process runs (Lync ran the
/// XMPP proxy on the Edge and the gateway on the Front End).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Both in one process: s2s federation and the SIP side (the default).
    Both,
    /// Translation, the SIP side, presence and the store; XMPP through
    /// `[component]` (an XMPP server the organisation runs).
    Gateway,
    /// The s2s side alone, in the perimeter network; gateways attach on
    /// `[listen] internal`.
    Edge,
}

/// `[component]`: xfed attached to an XMPP server as an XEP-0114
/// component for one of its domains (with `role = "gateway"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentConfig {
    /// `server`, `host:port`: the server's component port (Prosody's
    /// `component_ports`, ejabberd's `ejabberd_service`), usually 5347.
    pub server: Connect,
    /// `domain`: the component's domain, one of `gateway.domains` (the
    /// SIP users' addresses, e.g. `sip.example.com`).
    pub domain: String,
    /// `secret`: the component password the server was given.
    pub secret: Secret,
}

/// `[internal]`, with `role = "gateway"`: the edges a gateway attaches
/// to over the internal link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalConfig {
    /// `connect`: each edge's `[listen] internal`, `host:port` (Lync's
    /// 23456).
    pub connect: Vec<Connect>,
}

/// `federation`: which remote domains may federate at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FederationMode {
    /// Only `[[partner]]` domains (Lync's behaviour, and the default).
    AllowList,
    /// Any domain that authenticates, as public-unverified.
    Open,
    /// Like `Open`, except the `[[block]]` domains.
    DenyList,
}

/// `[listen]`. Defaults are DESIGN.md's: all interfaces, standard ports.
/// Addresses are IP literals with a port (`"[::]:5269"` for IPv6); host
/// names are not resolved here. Port 0 asks the system for a free port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConfig {
    /// `s2s`, default `["0.0.0.0:5269"]`: XMPP s2s with STARTTLS.
    pub s2s: Vec<SocketAddr>,
    /// `s2s_direct_tls`, default `["0.0.0.0:5270"]`: XMPP s2s in direct
    /// TLS (XEP-0368).
    pub s2s_direct_tls: Vec<SocketAddr>,
    /// `sip`, default `["tcp:0.0.0.0:5060", "udp:0.0.0.0:5060",
    /// "tls:0.0.0.0:5061"]`: entries are `transport:address:port`.
    pub sip: Vec<SipListener>,
    /// `internal`, default none: the edge/gateway link, only used when the
    /// roles run apart (DESIGN.md shows `"0.0.0.0:23456"` as an example).
    /// `false` also means none.
    pub internal: Option<SocketAddr>,
    /// `metrics`, default `"127.0.0.1:9269"`; `false` turns it off:
    /// OpenMetrics text at `GET /metrics`.
    pub metrics: Option<SocketAddr>,
}

/// One `listen.sip` entry, such as `"tcp:0.0.0.0:5060"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SipListener {
    /// The transport before the first colon.
    pub transport: SipTransport,
    /// The address and port after it.
    pub addr: SocketAddr,
}

/// A SIP transport (RFC 3261 section 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SipTransport {
    /// `tcp`
    Tcp,
    /// `udp`
    Udp,
    /// `tls`
    Tls,
}

impl SipTransport {
    /// Whether it listens on a TCP socket (for overlap checks).
    pub fn is_tcp(self) -> bool {
        !matches!(self, SipTransport::Udp)
    }
}

/// `[tls]`. Relative paths are kept as written; the runtime resolves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `certificate`, default `cert.pem`: PEM chain that must name every
    /// local domain in its subjectAltName.
    pub certificate: PathBuf,
    /// `key`, default `key.pem`: the certificate's private key, PEM.
    pub key: PathBuf,
    /// `trust`, default `system`: which CAs authenticate peers.
    pub trust: Trust,
}

/// `tls.trust`: `"system"`, or the path of a CA bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's (or webpki's) roots.
    System,
    /// A PEM CA bundle, for private federations and tests.
    File(PathBuf),
}

/// `[sip]` and its `[[sip.account]]` tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipConfig {
    /// `mode`, default `registrar` (the embedded default's built-in registrar).
    pub mode: SipMode,
    /// `next_hop`, a `sip:`/`sips:` URI; required when `mode = "proxy"`.
    /// Over TLS (`sips:` or `transport=tls`) its host is a name, which the
    /// next hop's certificate must prove; `maddr` may give the address.
    pub next_hop: Option<String>,
    /// `path`, default none: where the other instances of a deployment
    /// (sharing a PostgreSQL store) reach this one over SIP, a `sip:` URI
    /// with an IP address (`sip:10.0.0.11:5060;transport=tcp`). Stamped
    /// on the bindings made here (RFC 3327 Path), so that a message for a
    /// user registered here, arriving at another instance, is forwarded
    /// here; each instance lists the others in `trusted`.
    pub path: Option<String>,
    /// `trusted`, default empty: SIP peers whose requests are accepted
    /// without digest authentication (in proxy mode, the only ones).
    pub trusted: Vec<TrustedPeer>,
    /// `trust_udp`, default false: whether the addresses in `trusted` are
    /// trusted over UDP too. A UDP source address can be forged by anyone
    /// who can send packets, so only an operator who knows the path (a
    /// private network, loopback) says so.
    pub trust_udp: bool,
    /// `max_auth_failures`, default 5: failed digests from one source
    /// address before it is refused for `auth_backoff` (an account gets
    /// four times as many, from all sources together).
    pub max_auth_failures: u32,
    /// `auth_backoff`, default 1 min: the first refusal after too many
    /// failures; each one after doubles it, up to an hour.
    pub auth_backoff: Duration,
    /// `[[sip.account]]`, default none: who may register in registrar mode.
    pub accounts: Vec<SipAccount>,
    /// `digest_algorithms`, default `["SHA-256", "MD5"]`: the digest
    /// algorithms challenges offer, in order of preference, and the only
    /// ones accepted (registrar mode). RFC 8760 section 2.3 has the UAS
    /// add one challenge per algorithm "in the order in which it would
    /// prefer to see them used", and section 2.4 has the client use "the
    /// topmost header field that it supports". A client that reads only
    /// the first challenge and answers only MD5 (sipp 3.6) needs `"MD5"`
    /// first; one that fails on any challenge it cannot answer (libre 1.1,
    /// baresip 1.0) needs `["MD5"]`. Leaving `"MD5"` out refuses MD5
    /// answers too. Refused at
    /// load: an empty list, a value other than `"SHA-256"` and `"MD5"`, a
    /// value twice, an account whose `ha1` is of an algorithm not listed;
    /// `"MD5"` first or alone loads with a warning (RFC 8760 section 3:
    /// MD5 opens the way to a downgrade attack).
    pub digest_algorithms: Vec<Algorithm>,
    /// `max_message_size`, default 64 KiB: the largest SIP message taken;
    /// a larger one is refused (413 for its body, 513 for its header
    /// section) when it can be answered, else dropped with a log line.
    pub max_message_size: usize,
    /// `connection_limit`, default 1000: SIP TCP and TLS connections at
    /// once, inbound and outbound; a connection accepted beyond it is
    /// closed at once (outbound ones are never refused, but count).
    pub connection_limit: u32,
    /// `handshake_timeout`, default 10 s: an accepted TLS connection must
    /// finish its handshake, and an outbound connection must be connected
    /// (and through TLS), within this.
    pub handshake_timeout: Duration,
    /// `request_timeout`, default 30 s: an accepted connection must
    /// deliver its first complete message within this of its handshake,
    /// and a message once started must be complete within this.
    pub request_timeout: Duration,
    /// `idle_timeout`, default 5 min: a connection that carries no live
    /// registration (is no flow) is closed after this long without a
    /// message or keepalive from the peer.
    pub idle_timeout: Duration,
    /// `max_transactions`, default 10,000: SIP server transactions held at
    /// once (requests that authenticated, until answered and for Timer J
    /// after); a new request beyond gets 503 with Retry-After.
    pub max_transactions: u32,
    /// `max_watchers`, default 1,000: presence authorizations (approved
    /// or pending) held per local user, and pending ones per remote
    /// domain; a subscription request beyond either is refused with
    /// `resource-constraint`.
    pub max_watchers: u32,
    /// `max_subscriptions`, default 10,000: SIP notification dialogs
    /// (RFC 6665) held at once, local users' SUBSCRIBEs to XMPP contacts;
    /// a new one beyond gets 503 with Retry-After.
    pub max_subscriptions: u32,
    /// The bounds of the XMPP -> SIP message queues.
    pub queues: MessageQueues,
}

/// The bounds of the XMPP -> SIP message queues: how many MESSAGEs go to
/// one SIP user at once, how many wait, and how long an s2s stream may be
/// left unread while they drain (backpressure instead of bouncing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageQueues {
    /// `max_in_flight_per_user`, default 16: MESSAGEs awaiting their
    /// answer per SIP user when every target is reliable (TCP, TLS or a
    /// registered flow); over UDP one at a time (RFC 3428).
    pub max_in_flight_per_user: u32,
    /// `max_queued_per_user`, default 1,000: messages waiting per SIP
    /// user. At half of it the s2s stream that brought the message is
    /// paused until the queue is below a quarter; beyond it a message
    /// is bounced with `resource-constraint`.
    pub max_queued_per_user: u32,
    /// `max_queued_messages`, default 20,000: messages waiting over all
    /// SIP users; beyond it a message is bounced with
    /// `resource-constraint`. At least `max_queued_per_user`.
    pub max_queued_messages: u32,
    /// `max_read_pause`, default 30 s: the longest an s2s stream is left
    /// unread for a full queue; then it is read again, and what does not
    /// fit is bounced.
    pub max_read_pause: Duration,
}

impl Default for MessageQueues {
    fn default() -> Self {
        MessageQueues {
            max_in_flight_per_user: defaults::SIP_MAX_IN_FLIGHT_PER_USER,
            max_queued_per_user: defaults::SIP_MAX_QUEUED_PER_USER,
            max_queued_messages: defaults::SIP_MAX_QUEUED_MESSAGES,
            max_read_pause: defaults::SIP_MAX_READ_PAUSE,
        }
    }
}

/// One `sip.trusted` entry: how a SIP peer proves it is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedPeer {
    /// An IP address: requests whose source it is (over any transport).
    Address(IpAddr),
    /// A host name: requests over a TLS connection whose peer certificate
    /// is valid under `[tls] trust` and names it (mutual TLS, for a proxy
    /// whose address is not fixed or not private).
    Certificate(String),
}

/// `sip.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SipMode {
    /// SIP users register with xfed itself.
    Registrar,
    /// Requests for local users go to `next_hop`.
    Proxy,
}

/// One `[[sip.account]]`: a user allowed to register (digest, RFC 8760).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipAccount {
    /// `user`: the user part of the SIP address.
    pub user: String,
    /// `password` or `ha1`, exactly one.
    pub credential: SipCredential,
}

/// How an account proves itself; both forms are secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipCredential {
    /// `password`: the clear password.
    Password(Secret),
    /// `ha1`: hex H(user:realm:password), 32 digits (MD5) or 64 (SHA-256),
    /// held in lowercase.
    Ha1(Secret),
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `url`, default `sqlite://xfed.db`.
    pub url: StoreUrl,
    /// `state_dir`: where this instance keeps its own files (the admin
    /// socket, a generated dialback secret); default the SQLite file's
    /// directory, or `xfed-data` with PostgreSQL. Relative to the
    /// configuration file.
    pub state_dir: Option<PathBuf>,
}

impl StoreConfig {
    /// [`StoreConfig::state_dir`] with its default, not yet resolved
    /// against the configuration file's directory.
    pub fn state_dir(&self) -> PathBuf {
        match (&self.state_dir, &self.url) {
            (Some(dir), _) => dir.clone(),
            (None, StoreUrl::Sqlite(file)) => file.parent().map(PathBuf::from).unwrap_or_default(),
            (None, StoreUrl::Postgres(_)) => PathBuf::from("xfed-data"),
        }
    }
}

/// `store.url`, by back end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://PATH`: an embedded SQLite file (a relative path is kept so).
    Sqlite(PathBuf),
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?...]` (or
    /// `postgresql://`): a PostgreSQL database several instances share.
    /// A secret, since it may hold a password.
    Postgres(Secret),
}

/// One `[[partner]]`: Lync's `New-CsXmppAllowedPartner`, defaults included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    /// `domain`, required: the partner's primary domain, prepared.
    pub domain: String,
    /// `additional_domains` (Lync `AdditionalDomains`), default none.
    pub additional_domains: Vec<String>,
    /// `type` (Lync `PartnerType`), default `public-unverified`.
    pub partner_type: PartnerType,
    /// `tls`, `sasl`, `dialback` and `keepalive`.
    pub policy: StreamPolicy,
    /// `connect` (Lync `ProxyFqdn`), default none (DNS SRV decides).
    pub connect: Option<Connect>,
    /// `connection_limit` (Lync `ConnectionLimit`), default
    /// `gateway.partner_connection_limit`.
    pub connection_limit: u32,
    /// `description`, free text.
    pub description: Option<String>,
}

impl Partner {
    /// The primary domain followed by the additional ones.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.domain.as_str())
            .chain(self.additional_domains.iter().map(String::as_str))
    }
}

/// `[[partner]] type`: what a remote user may do without invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartnerType {
    /// Subscribes and IMs without prior invitation, sees status notes.
    Federated,
    /// Subscribes and IMs without prior invitation, no status notes.
    PublicVerified,
    /// Needs the local user to add or invite first (Lync's default).
    PublicUnverified,
}

/// How streams with a partner are negotiated and kept alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamPolicy {
    /// `tls` (Lync `TlsNegotiation`), default `required`.
    pub tls: Negotiation,
    /// `sasl` (Lync `SaslNegotiation`), default `required`: SASL EXTERNAL,
    /// which needs TLS.
    pub sasl: Negotiation,
    /// `dialback` (Lync `SupportDialbackNegotiation`), default true.
    pub dialback: bool,
    /// `keepalive` (Lync `EnableKeepAlive`), default true.
    pub keepalive: bool,
}

/// `tls` and `sasl` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Negotiation {
    /// The stream fails without it.
    Required,
    /// Used when the peer offers it.
    Optional,
    /// Never used.
    NotSupported,
}

/// The TLS/SASL/dialback matrix of `reference/lync.md` section 4 for one
/// combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// A sound combination.
    Valid,
    /// Works, but not as the operator may think; the reason says why.
    Doubtful(&'static str),
    /// Cannot authenticate the partner; refused at load.
    Invalid(&'static str),
}

impl StreamPolicy {
    /// Classifies the combination as Lync's negotiation matrix does.
    pub fn verdict(&self) -> Verdict {
        use Negotiation::{NotSupported, Optional, Required};
        match (self.tls, self.sasl, self.dialback) {
            (_, NotSupported, false) => Verdict::Invalid(
                "sasl is \"not-supported\" and dialback is false: the partner has no way to authenticate",
            ),
            (NotSupported, _, false) => Verdict::Invalid(
                "SASL needs TLS, tls is \"not-supported\" and dialback is false: the partner has no way to authenticate",
            ),
            (_, NotSupported, true) => Verdict::Valid,
            (NotSupported, _, true) => Verdict::Doubtful(
                "SASL needs TLS and tls is \"not-supported\": SASL is never used; the partner authenticates by dialback over plain TCP",
            ),
            (Optional, _, true) => Verdict::Doubtful(
                "SASL needs TLS and tls is \"optional\": when TLS is not negotiated SASL cannot be used and dialback runs over plain TCP",
            ),
            (Optional, _, false) => Verdict::Doubtful(
                "SASL needs TLS and tls is \"optional\": when TLS is not negotiated SASL cannot be used and the stream fails",
            ),
            (Required, Required, true) => Verdict::Doubtful(
                "tls and sasl are both \"required\": dialback never operates (set dialback = false, or sasl = \"optional\")",
            ),
            (Required, _, _) => Verdict::Valid,
        }
    }
}

/// `[[partner]] connect`: a fixed address instead of DNS SRV.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connect {
    /// A host name (prepared like a domain) or an IP literal, IPv6 in brackets.
    pub host: String,
    /// The port, 5269 when the value has none.
    pub port: u16,
}

/// One `[[block]]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Block {
    /// `domain`, prepared; matched exactly, not its subdomains.
    pub domain: String,
}

/// One `[[access]]` rule (Lync's `EnableXmppAccess` of an external access policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    /// `users`, required and non-empty: globs (`*`, `?`, ASCII
    /// case-insensitive) over local addresses such as `alice@example.com`.
    pub users: Vec<String>,
    /// `xmpp`, default false as Lync's `EnableXmppAccess`.
    pub xmpp: bool,
}

/// A secret string: compared normally, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The default of every key that has one, in one place for the docs, the
/// runtime and `xfed plan`.
pub mod defaults {
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    use std::time::Duration;

    use super::digest::Algorithm;

    /// `gateway.connection_limit` (Lync `ConnectionLimit`).
    pub const CONNECTION_LIMIT: u32 = 1000;
    /// `gateway.partner_connection_limit` (Lync `PartnerConnectionLimit`).
    pub const PARTNER_CONNECTION_LIMIT: u32 = 20;
    /// `gateway.stream_establishment_timeout` (Lync: 60 s).
    pub const STREAM_ESTABLISHMENT_TIMEOUT: Duration = Duration::from_secs(60);
    /// `gateway.stream_inactivity_timeout` (Lync: 600 s).
    pub const STREAM_INACTIVITY_TIMEOUT: Duration = Duration::from_secs(600);
    /// `gateway.keepalive_interval` (Lync: 300 s).
    pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(300);
    /// `gateway.subscription_refresh_interval` (Lync: 28800 s).
    pub const SUBSCRIPTION_REFRESH_INTERVAL: Duration = Duration::from_secs(8 * 3600);
    /// `gateway.log_message_bodies` (Lync `EnableLoggingAllMessageBodies`).
    pub const LOG_MESSAGE_BODIES: bool = false;
    /// `gateway.log_lines_per_source`: enough to diagnose one peer, too
    /// few for a flood to matter (20 a minute, 1,024 sources tracked).
    pub const LOG_LINES_PER_SOURCE: u32 = 20;
    /// `gateway.max_pending_dialback_per_stream`: a server multiplexing its
    /// own domains (XEP-0220 section 2.6: a main domain, MUC, upload, ...)
    /// asks a handful at once.
    pub const MAX_PENDING_DIALBACK_PER_STREAM: u32 = 10;
    /// `gateway.max_pending_dialback_per_domain`: one per stream the domain
    /// may hold (`PARTNER_CONNECTION_LIMIT`).
    pub const MAX_PENDING_DIALBACK_PER_DOMAIN: u32 = PARTNER_CONNECTION_LIMIT;
    /// `gateway.max_routes`: one outbound stream per route, as many as
    /// `CONNECTION_LIMIT` streams.
    pub const MAX_ROUTES: u32 = CONNECTION_LIMIT;
    /// `gateway.max_dns_queries`: at least twelve resolutions at once (a
    /// resolution has at most eight queries out, usually two), far more
    /// than a resolver answering in milliseconds needs, and a tenth of the
    /// usual 1024 descriptors a process may open.
    pub const MAX_DNS_QUERIES: u32 = 100;
    /// `gateway.max_stanza_size`, in bytes.
    pub const MAX_STANZA_SIZE: usize = 256 * 1024;
    /// The smallest `gateway.max_stanza_size` accepted (RFC 6120 section 13.12).
    pub const MIN_STANZA_SIZE: usize = 10_000;
    /// `sip.max_message_size`, in bytes.
    pub const SIP_MAX_MESSAGE_SIZE: usize = 64 * 1024;
    /// The smallest `sip.max_message_size` accepted.
    pub const SIP_MIN_MESSAGE_SIZE: usize = 4096;
    /// `sip.connection_limit`: SIP TCP and TLS connections, in and out.
    pub const SIP_CONNECTION_LIMIT: u32 = 1000;
    /// `sip.handshake_timeout`.
    pub const SIP_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// `sip.request_timeout`.
    pub const SIP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// `sip.idle_timeout`: over twice RFC 5626's keepalive period for TCP
    /// (95 to 120 s), so a flow's keepalives always arrive in time.
    pub const SIP_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    /// `sip.max_transactions`: a few seconds of a busy domain's traffic
    /// (each lives 32 s after its answer over UDP), a few MB at most.
    pub const SIP_MAX_TRANSACTIONS: u32 = 10_000;
    /// `sip.max_watchers`: as many as the contacts a user is remembered
    /// with (a roster, not a directory).
    pub const SIP_MAX_WATCHERS: u32 = 1000;
    /// `sip.max_subscriptions`: ten contacts watched by each of a thousand
    /// devices, about 5 MB.
    pub const SIP_MAX_SUBSCRIPTIONS: u32 = 10_000;
    /// `sip.max_in_flight_per_user`: enough to keep a TCP connection busy
    /// on loopback (see README's performance table), few enough that a
    /// user agent's own queue is not flooded.
    pub const SIP_MAX_IN_FLIGHT_PER_USER: u32 = 16;
    /// `sip.max_queued_per_user`: a long burst from one sender, about
    /// 2 MB at the largest stanzas typical chat sends.
    pub const SIP_MAX_QUEUED_PER_USER: u32 = 1000;
    /// `sip.max_queued_messages`: twenty users' worth of bursts at once.
    pub const SIP_MAX_QUEUED_MESSAGES: u32 = 20_000;
    /// `sip.max_read_pause`: as long as `sip.request_timeout`, well under
    /// the peers' stream inactivity timeouts.
    pub const SIP_MAX_READ_PAUSE: Duration = Duration::from_secs(30);
    /// `sip.max_auth_failures`: a mistyped password or two, not a
    /// dictionary.
    pub const SIP_MAX_AUTH_FAILURES: u32 = 5;
    /// `sip.auth_backoff`.
    pub const SIP_AUTH_BACKOFF: Duration = Duration::from_secs(60);
    /// `sip.digest_algorithms`: SHA-256 preferred, MD5 for clients that
    /// answer nothing else and skip a challenge they cannot answer (RFC
    /// 8760 section 2.4).
    pub const SIP_DIGEST_ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];
    /// The XMPP s2s port (RFC 6120), also `[[partner]] connect`'s default port.
    pub const S2S_PORT: u16 = 5269;
    /// The XEP-0368 direct TLS s2s port.
    pub const S2S_DIRECT_TLS_PORT: u16 = 5270;
    /// `listen.s2s`.
    pub const LISTEN_S2S: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, S2S_PORT));
    /// `listen.s2s_direct_tls`.
    pub const LISTEN_S2S_DIRECT_TLS: SocketAddr = SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::UNSPECIFIED,
        S2S_DIRECT_TLS_PORT,
    ));
    /// `listen.sip`, as written in the file.
    pub const LISTEN_SIP: [&str; 3] = ["tcp:0.0.0.0:5060", "udp:0.0.0.0:5060", "tls:0.0.0.0:5061"];
    /// `listen.metrics`.
    pub const LISTEN_METRICS: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9269));
    /// `tls.certificate`.
    pub const CERTIFICATE: &str = "cert.pem";
    /// `tls.key`.
    pub const KEY: &str = "key.pem";
    /// `store.url`.
    pub const STORE_URL: &str = "sqlite://xfed.db";
}

/// `as_str` (the spelling in the file) and `Display` for the closed sets.
macro_rules! spelled {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The value as written in the configuration file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled!(FederationMode { AllowList => "allow-list", Open => "open", DenyList => "deny-list" });
spelled!(PartnerType {
    Federated => "federated",
    PublicVerified => "public-verified",
    PublicUnverified => "public-unverified",
});
spelled!(Negotiation { Required => "required", Optional => "optional", NotSupported => "not-supported" });
spelled!(SipMode { Registrar => "registrar", Proxy => "proxy" });
spelled!(SipTransport { Tcp => "tcp", Udp => "udp", Tls => "tls" });
