//! The metric families xfed exports: names (Prometheus conventions,
//! prefix `xfed_`, counters without their `_total`, histograms in
//! seconds), types and help.

/// Counter, gauge or histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; its sample is `<name>_total`.
    Counter,
    /// A current value.
    Gauge,
    /// Observations in [`BUCKETS`]: `<name>_bucket{le=...}`, `_sum` and
    /// `_count`; label-less.
    Histogram,
}

/// The upper bounds of the histograms' buckets, in seconds (`+Inf`
/// follows): from a message relayed within a turn to one that waited for
/// DNS, a connection, TLS and dialback, or a SIP user agent's answer.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// One metric family.
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    /// Its name, `xfed_...`, without `_total`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Its label names, in the order samples give them.
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
}

macro_rules! families {
    ($($id:ident = $name:literal, $kind:ident, [$($label:literal),*], $help:literal;)*) => {
        $(#[doc = $help] pub const $id: &Family = &Family {
            name: $name,
            kind: Kind::$kind,
            labels: &[$($label),*],
            help: $help,
        };)*
        /// Every family, in the order they are rendered.
        pub const FAMILIES: &[&Family] = &[$($id,)*];
    };
}

families! {
    EVENTS = "xfed_events", Counter, ["kind"], "Events the core reported, by kind.";
    CONNECTIONS_ACCEPTED = "xfed_connections_accepted", Counter, ["listener"], "Connections accepted, by listener.";
    CONNECTIONS_REFUSED = "xfed_connections_refused", Counter, ["reason"], "Connections closed as soon as accepted, by reason.";
    CONNECT_ATTEMPTS = "xfed_s2s_connect_attempts", Counter, ["tls"], "Outbound s2s connections opened, by TLS mode.";
    CONNECT_FAILURES = "xfed_connect_failures", Counter, [], "Outbound connections (s2s or SIP) that could not be made.";
    STREAMS_AUTHENTICATED = "xfed_streams_authenticated", Counter, ["partner", "direction", "method", "tls"], "s2s domain pairs authenticated, by partner, direction, method and TLS version.";
    STREAMS_FAILED = "xfed_streams_failed", Counter, ["condition"], "Outbound s2s streams that failed, by the condition their stanzas got.";
    STREAMS_CLOSED = "xfed_streams_closed", Counter, [], "s2s streams ended.";
    DIALBACK_REFUSED = "xfed_dialback_refused", Counter, ["condition"], "Dialback requests refused, by condition.";
    ROUTE_FAILURES = "xfed_route_failures", Counter, ["partner", "condition"], "Routes to remote domains that failed, by partner and condition.";
    BOUNCES = "xfed_bounced_stanzas", Counter, ["condition"], "Stanzas bounced because their route failed, by condition.";
    NOT_DELIVERED = "xfed_not_delivered", Counter, [], "Stanzas for local addresses nobody here delivers (answered service-unavailable).";
    MESSAGES_RELAYED = "xfed_messages_relayed", Counter, ["direction"], "Messages translated between SIP and XMPP, by direction.";
    MESSAGES_REFUSED = "xfed_messages_refused", Counter, [], "Messages between SIP and XMPP refused.";
    SIP_MESSAGE_ANSWERS = "xfed_sip_message_answers", Counter, ["class"], "Answers to the SIP MESSAGEs xfed sent, by status class.";
    TRANSLATION_ERRORS = "xfed_translation_errors", Counter, ["condition"], "SIP failures translated into stanza errors, by condition.";
    REGISTRATIONS = "xfed_registrations", Counter, [], "Successful REGISTER requests.";
    BINDINGS_EXPIRED = "xfed_bindings_expired", Counter, [], "Registered bindings that ran out without a refresh.";
    SIP_REFUSED = "xfed_sip_refused", Counter, ["severity"], "SIP requests or datagrams refused or dropped, by severity.";
    SIP_CONNECTIONS_EXPIRED = "xfed_sip_connections_expired", Counter, ["timeout"], "SIP connections closed by a timeout, by its configuration key.";
    SIP_CONNECTION_FAILURES = "xfed_sip_connection_failures", Counter, [], "SIP connections broken by TLS or framing errors.";
    SIP_CERTIFICATES = "xfed_sip_certificates", Counter, ["outcome"], "SIP peers' certificates judged, by outcome.";
    SUBSCRIPTIONS = "xfed_subscriptions", Counter, ["outcome"], "XMPP watchers' subscriptions to local users, by outcome.";
    WATCHES = "xfed_watches", Counter, ["outcome"], "Local SIP users' subscriptions to XMPP contacts, by outcome.";
    NOTIFIES = "xfed_notifies", Counter, ["direction"], "SIP NOTIFYs, sent to local users (out) or received for XMPP watchers (in).";
    PRESENCE_BROADCASTS = "xfed_presence_broadcasts", Counter, [], "Local users' presence changes sent to their watchers.";
    PRESENCE_TRANSLATIONS = "xfed_presence_translations", Counter, [], "Presence translations made (one per disclosure level used).";
    LIMITS = "xfed_limits_reached", Counter, ["key"], "Times a configured bound refused something, by configuration key.";
    EVENTS_SUPPRESSED = "xfed_events_suppressed", Counter, [], "Events left out of the log during floods.";
    S2S_STANZAS = "xfed_s2s_stanzas", Counter, ["direction"], "Stanzas read from (in) and written to (out) s2s streams.";
    S2S_STANZAS_UNREAD = "xfed_s2s_stanzas_relayed_unread", Counter, ["direction"], "Stanzas an edge passed on as they came, without building their tree: from s2s streams to a gateway (in), from a gateway to s2s streams (out).";
    S2S_MESSAGES_TRANSLATED_UNREAD = "xfed_s2s_messages_translated_unread", Counter, [], "Messages for SIP users read from s2s streams and translated to SIP from their text, without building their tree.";
    SIP_TO_XMPP_SECONDS = "xfed_sip_to_xmpp_seconds", Histogram, [], "Seconds from a SIP MESSAGE's arrival to its stanza written to an authenticated s2s stream.";
    XMPP_TO_SIP_SECONDS = "xfed_xmpp_to_sip_seconds", Histogram, [], "Seconds from an XMPP message's arrival to the 2xx of its SIP MESSAGE.";
    S2S_CONNECTIONS = "xfed_s2s_connections", Gauge, [], "Live s2s connections, in and out.";
    SIP_CONNECTIONS = "xfed_sip_connections", Gauge, [], "Live SIP TCP and TLS connections, in and out.";
    ROUTES = "xfed_routes", Gauge, [], "Outbound routes being set up or up.";
    PENDING_DIALBACK = "xfed_pending_dialback", Gauge, [], "Dialback verifications waiting for an authoritative server.";
    DNS_QUERIES = "xfed_dns_queries", Gauge, [], "DNS queries open.";
    SIP_TABLE_ENTRIES = "xfed_sip_table_entries", Gauge, ["table"], "Entries of the SIP side's tables (transactions, subscriptions, queued messages...), by table.";
    STORE_UP = "xfed_store_up", Gauge, [], "1 while the store takes writes, 0 while they fail (changes wait in memory and are retried).";
    STORE_WAITING = "xfed_store_waiting", Gauge, [], "Rows waiting to be written to the store.";
    STORE_WRITE_FAILURES = "xfed_store_write_failures", Counter, [], "Store writes that failed and were kept for a retry.";
    STORE_DROPPED = "xfed_store_dropped", Counter, [], "Changes dropped because too many rows waited for the store.";
    STORE_SHARED_UP = "xfed_store_shared_up", Gauge, [], "Several instances: 1 while this instance hears the others' writes to the shared store (bindings, presence, contacts), 0 while it does not.";
}
