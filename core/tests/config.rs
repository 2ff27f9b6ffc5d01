//! The configuration file of DESIGN.md section 4: parsing, defaults, the
//! Lync negotiation matrix, error positions, notices and admission.

use std::net::SocketAddr;

use proptest::prelude::*;
use std::path::PathBuf;
use std::time::Duration;

use xfed_core::registrar::digest::{self, Algorithm};

use xfed_core::config::{
    self, defaults, Admission, Config, ConfigError, Connect, ErrorKind, FederationMode, Level,
    Loaded, Location, Negotiation, NoticeKind, PartnerType, RefusalReason, Secret, SipCredential,
    SipMode, SipTransport, StoreUrl, StreamPolicy, Trust, TrustedPeer, Verdict,
    EMBEDDED_DEFAULT_TOML, INACTIVE_KEYS, OPEN_FEDERATION_POLICY,
};

/// DESIGN.md section 4, verbatim.
const DESIGN_EXAMPLE: &str = r#"[gateway]                        # Set-CsXmppGatewayConfiguration
domains = ["example.com"]        # local domains: both the XMPP and the SIP domain of the users
dialback_secret = "change-me"    # DialbackPassphrase; same on every instance of a deployment
connection_limit = 1000          # ConnectionLimit (all partners)
partner_connection_limit = 20    # PartnerConnectionLimit
stream_establishment_timeout = "60s"
stream_inactivity_timeout = "10m"
keepalive_interval = "5m"
subscription_refresh_interval = "8h"
log_message_bodies = false       # EnableLoggingAllMessageBodies
max_stanza_size = "256KiB"
federation = "allow-list"        # beyond Lync: "allow-list" (only [[partner]] domains),
                                 # "open" (any domain that authenticates, as public-unverified),
                                 # "deny-list" (open except [[block]] domains)

[listen]
s2s = ["0.0.0.0:5269"]           # STARTTLS
s2s_direct_tls = ["0.0.0.0:5270"] # XEP-0368
sip = ["tcp:0.0.0.0:5060", "udp:0.0.0.0:5060", "tls:0.0.0.0:5061"]
internal = "0.0.0.0:23456"       # the edge/gateway link when the roles run apart
metrics = "127.0.0.1:9269"

[tls]
certificate = "cert.pem"         # must name every local domain (SAN)
key = "key.pem"
trust = "system"                 # or a CA bundle file, for private federations and tests

[sip]
mode = "registrar"               # "registrar": SIP users register with xfed itself;
                                 # "proxy": requests for local users go to `next_hop`
next_hop = "sip:proxy.example.com;transport=tcp"
trusted = ["10.0.0.5"]           # SIP peers whose requests are accepted without digest

[[sip.account]]                  # registrar mode: who may register (digest, RFC 8760)
user = "alice"
password = "secret"              # or ha1 = "..."

[store]
url = "sqlite://xfed.db"         # or postgres://... for several instances

[[partner]]                      # New-CsXmppAllowedPartner
domain = "jabber.org"
additional_domains = ["conference.jabber.org"]
type = "public-unverified"       # "federated" | "public-verified" | "public-unverified"
tls = "required"                 # "required" | "optional" | "not-supported"
sasl = "optional"                # "required" | "optional" | "not-supported"
dialback = true
keepalive = true
connect = "xmpp.jabber.org:5269" # ProxyFqdn: fixed address instead of DNS
connection_limit = 20
description = "free text"

[[block]]                        # with federation = "deny-list"
domain = "spam.example"

[[access]]                       # ExternalAccessPolicy EnableXmppAccess; first match wins
users = ["*@example.com"]        # glob over local SIP/XMPP addresses
xmpp = true
"#;

const MINIMAL: &str = "[gateway]\ndomains = [\"example.com\"]\n";

fn ok(text: &str) -> Loaded {
    match config::parse(text) {
        Ok(loaded) => loaded,
        Err(e) => panic!("expected to load, got: {e}\n--- file ---\n{text}"),
    }
}

fn err(text: &str) -> ConfigError {
    match config::parse(text) {
        Ok(loaded) => panic!("expected an error, loaded: {loaded:?}\n--- file ---\n{text}"),
        Err(e) => e,
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// `(line, column)` of an error.
fn at(e: &ConfigError) -> (usize, usize) {
    let l = e.location.expect("error has a location");
    (l.line, l.column)
}

/// MINIMAL followed by `rest` (which starts on line 3).
fn with(rest: &str) -> String {
    format!("{MINIMAL}{rest}")
}

#[test]
fn design_example_parses() {
    let loaded = ok(DESIGN_EXAMPLE);
    let c = &loaded.config;

    let g = &c.gateway;
    assert_eq!(g.domains, ["example.com"]);
    assert_eq!(g.dialback_secret, Some(Secret::new("change-me")));
    assert_eq!(g.connection_limit, 1000);
    assert_eq!(g.partner_connection_limit, 20);
    assert_eq!(g.stream_establishment_timeout, Duration::from_secs(60));
    assert_eq!(g.stream_inactivity_timeout, Duration::from_secs(600));
    assert_eq!(g.keepalive_interval, Duration::from_secs(300));
    assert_eq!(
        g.subscription_refresh_interval,
        Duration::from_secs(8 * 3600)
    );
    assert!(!g.log_message_bodies);
    assert_eq!(g.max_stanza_size, 262_144);
    assert_eq!(g.federation, FederationMode::AllowList);

    let l = &c.listen;
    assert_eq!(l.s2s, [addr("0.0.0.0:5269")]);
    assert_eq!(l.s2s_direct_tls, [addr("0.0.0.0:5270")]);
    let sip: Vec<(SipTransport, SocketAddr)> =
        l.sip.iter().map(|s| (s.transport, s.addr)).collect();
    assert_eq!(
        sip,
        [
            (SipTransport::Tcp, addr("0.0.0.0:5060")),
            (SipTransport::Udp, addr("0.0.0.0:5060")),
            (SipTransport::Tls, addr("0.0.0.0:5061")),
        ]
    );
    assert_eq!(l.internal, Some(addr("0.0.0.0:23456")));
    assert_eq!(l.metrics, Some(addr("127.0.0.1:9269")));

    assert_eq!(c.tls.certificate, PathBuf::from("cert.pem"));
    assert_eq!(c.tls.key, PathBuf::from("key.pem"));
    assert_eq!(c.tls.trust, Trust::System);

    assert_eq!(c.sip.mode, SipMode::Registrar);
    assert_eq!(
        c.sip.next_hop.as_deref(),
        Some("sip:proxy.example.com;transport=tcp")
    );
    assert_eq!(
        c.sip.trusted,
        [TrustedPeer::Address(
            "10.0.0.5".parse::<std::net::IpAddr>().expect("ip")
        )]
    );
    assert_eq!(c.sip.accounts.len(), 1);
    assert_eq!(c.sip.accounts[0].user, "alice");
    assert_eq!(
        c.sip.accounts[0].credential,
        SipCredential::Password(Secret::new("secret"))
    );
    assert_eq!(c.store.url, StoreUrl::Sqlite(PathBuf::from("xfed.db")));

    assert_eq!(c.partners.len(), 1);
    let p = &c.partners[0];
    assert_eq!(p.domain, "jabber.org");
    assert_eq!(p.additional_domains, ["conference.jabber.org"]);
    assert_eq!(p.partner_type, PartnerType::PublicUnverified);
    assert_eq!(
        p.policy,
        StreamPolicy {
            tls: Negotiation::Required,
            sasl: Negotiation::Optional,
            dialback: true,
            keepalive: true
        }
    );
    assert_eq!(
        p.connect,
        Some(Connect {
            host: "xmpp.jabber.org".to_owned(),
            port: 5269
        })
    );
    assert_eq!(p.connection_limit, 20);
    assert_eq!(p.description.as_deref(), Some("free text"));

    assert_eq!(c.blocks.len(), 1);
    assert_eq!(c.blocks[0].domain, "spam.example");
    assert_eq!(c.access.len(), 1);
    assert_eq!(c.access[0].users, ["*@example.com"]);
    assert!(c.access[0].xmpp);

    // Everything the operator is told, in file order.
    let got: Vec<(usize, Level, NoticeKind, &str)> = loaded
        .notices
        .iter()
        .map(|n| (n.line().expect("located"), n.level, n.kind, n.path.as_str()))
        .collect();
    use Level::{Info, Warning};
    use NoticeKind::{NoEffect, WeakSecret};
    assert_eq!(
        got,
        [
            (3, Warning, WeakSecret, "gateway.dialback_secret"),
            (20, Info, NoEffect, "listen.internal"),
            (31, Warning, NoEffect, "sip.next_hop"),
            (53, Warning, NoEffect, "block"),
        ]
    );
    assert_eq!(
        loaded.notices[0].to_string(),
        "line 3, column 19: 'dialback_secret' in [gateway] is the example value or shorter than 16 characters: anyone who guesses it can forge dialback keys for the local domains"
    );
    assert_eq!(
        loaded.notices[1].to_string(),
        "line 20, column 12: 'internal' in [listen] has no effect unless gateway.role = \"edge\": only an edge listens for gateways"
    );
}

#[test]
fn omitted_keys_take_lync_and_design_defaults() {
    let loaded = ok(&with("[[partner]]\ndomain = \"peer.example\"\n"));
    let c = &loaded.config;
    let g = &c.gateway;
    assert_eq!(g.dialback_secret, None);
    assert_eq!(g.connection_limit, 1000);
    assert_eq!(g.partner_connection_limit, 20);
    assert_eq!(g.stream_establishment_timeout, Duration::from_secs(60));
    assert_eq!(g.stream_inactivity_timeout, Duration::from_secs(600));
    assert_eq!(g.keepalive_interval, Duration::from_secs(300));
    assert_eq!(g.subscription_refresh_interval, Duration::from_secs(28_800));
    assert!(!g.log_message_bodies);
    assert_eq!(g.max_stanza_size, 256 * 1024);
    assert_eq!(g.federation, FederationMode::AllowList);
    assert_eq!(g.max_pending_dialback_per_stream, 10);
    assert_eq!(g.max_pending_dialback_per_domain, 20);
    assert_eq!(g.max_routes, 1000);
    assert_eq!(g.max_dns_queries, 100);

    assert_eq!(c.listen.s2s, [addr("0.0.0.0:5269")]);
    assert_eq!(c.listen.s2s_direct_tls, [addr("0.0.0.0:5270")]);
    assert_eq!(c.listen.sip.len(), 3);
    assert_eq!(c.listen.sip[2].transport, SipTransport::Tls);
    assert_eq!(c.listen.sip[2].addr, addr("0.0.0.0:5061"));
    assert_eq!(c.listen.internal, None);
    assert_eq!(c.listen.metrics, Some(addr("127.0.0.1:9269")));
    assert_eq!(c.tls.certificate, PathBuf::from("cert.pem"));
    assert_eq!(c.tls.key, PathBuf::from("key.pem"));
    assert_eq!(c.tls.trust, Trust::System);
    assert_eq!(c.sip.mode, SipMode::Registrar);
    assert_eq!(c.sip.next_hop, None);
    assert_eq!(c.sip.max_message_size, 64 * 1024);
    assert_eq!(c.sip.connection_limit, 1000);
    assert_eq!(c.sip.handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.sip.request_timeout, Duration::from_secs(30));
    assert_eq!(c.sip.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.sip.max_transactions, 10_000);
    assert_eq!(c.sip.queues.max_in_flight_per_user, 16);
    assert_eq!(c.sip.queues.max_queued_per_user, 1000);
    assert_eq!(c.sip.queues.max_queued_messages, 20_000);
    assert_eq!(c.sip.queues.max_read_pause, Duration::from_secs(30));
    assert_eq!(c.gateway.log_lines_per_source, 20);
    assert!(!c.sip.trust_udp);
    assert_eq!(c.sip.max_auth_failures, 5);
    assert_eq!(c.sip.auth_backoff, Duration::from_secs(60));
    assert_eq!(c.sip.digest_algorithms, [Algorithm::Sha256, Algorithm::Md5]);
    assert_eq!(c.sip.digest_algorithms, defaults::SIP_DIGEST_ALGORITHMS);
    assert!(c.sip.trusted.is_empty() && c.sip.accounts.is_empty());
    assert_eq!(c.store.url, StoreUrl::Sqlite(PathBuf::from("xfed.db")));
    assert!(c.blocks.is_empty() && c.access.is_empty());

    // New-CsXmppAllowedPartner's defaults.
    let p = &c.partners[0];
    assert_eq!(p.partner_type, PartnerType::PublicUnverified);
    assert_eq!(p.policy.tls, Negotiation::Required);
    assert_eq!(p.policy.sasl, Negotiation::Required);
    assert!(p.policy.dialback);
    assert!(p.policy.keepalive);
    assert_eq!(p.connect, None);
    assert_eq!(p.connection_limit, defaults::PARTNER_CONNECTION_LIMIT);
    assert!(p.additional_domains.is_empty() && p.description.is_none());

    // Lync's own defaults are its first matrix row: a warning, at the partner.
    assert_eq!(loaded.notices.len(), 1);
    assert_eq!(loaded.notices[0].kind, NoticeKind::Negotiation);
    assert_eq!(loaded.notices[0].line(), Some(3));

    // A minimal file has nothing to report.
    assert!(ok(MINIMAL).notices.is_empty());
}

#[test]
fn s2s_bounds_load_from_the_gateway_table() {
    let c = ok(&format!(
        "{MINIMAL}max_pending_dialback_per_stream = 3\nmax_pending_dialback_per_domain = 4\nmax_routes = 50\nmax_dns_queries = 8\n"
    ))
    .config;
    let g = &c.gateway;
    assert_eq!(g.max_pending_dialback_per_stream, 3);
    assert_eq!(g.max_pending_dialback_per_domain, 4);
    assert_eq!(g.max_routes, 50);
    assert_eq!(g.max_dns_queries, 8);
    assert_eq!(
        defaults::MAX_PENDING_DIALBACK_PER_DOMAIN,
        defaults::PARTNER_CONNECTION_LIMIT
    );
    assert_eq!(defaults::MAX_ROUTES, defaults::CONNECTION_LIMIT);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Ok,
    Warn,
    Invalid,
}

#[test]
fn lync_negotiation_matrix() {
    use Expect::{Invalid, Ok as Fine, Warn};
    // reference/lync.md section 4, row by row.
    let rows = [
        ("required", "required", true, Warn),
        ("required", "required", false, Fine),
        ("optional", "required", true, Warn),
        ("optional", "required", false, Warn),
        ("not-supported", "required", true, Warn),
        ("not-supported", "required", false, Invalid),
        ("required", "optional", true, Fine),
        ("required", "optional", false, Fine),
        ("optional", "optional", true, Warn),
        ("optional", "optional", false, Warn),
        ("not-supported", "optional", true, Warn),
        ("not-supported", "optional", false, Invalid),
        ("required", "not-supported", true, Fine),
        ("required", "not-supported", false, Invalid),
        ("optional", "not-supported", true, Fine),
        ("optional", "not-supported", false, Invalid),
        ("not-supported", "not-supported", true, Fine),
        ("not-supported", "not-supported", false, Invalid),
    ];
    assert_eq!(rows.len(), 18);
    for (tls, sasl, dialback, expect) in rows {
        let row = format!("tls={tls} sasl={sasl} dialback={dialback}");
        // The partner table starts on line 4.
        let text = format!(
            "[gateway]\ndomains = [\"example.com\"]\n\n[[partner]]\ndomain = \"peer.example\"\ntls = \"{tls}\"\nsasl = \"{sasl}\"\ndialback = {dialback}\n"
        );
        let verdict = match config::parse(&text) {
            Ok(loaded) => {
                let negotiation: Vec<_> = loaded
                    .notices
                    .iter()
                    .filter(|n| n.kind == NoticeKind::Negotiation)
                    .collect();
                assert_eq!(
                    loaded.notices.len(),
                    negotiation.len(),
                    "{row}: other notices"
                );
                match negotiation.as_slice() {
                    [] => Fine,
                    [n] => {
                        assert_eq!(n.level, Level::Warning, "{row}");
                        assert_eq!(n.location, Some(Location { line: 4, column: 1 }), "{row}");
                        assert_eq!(n.path, "partner", "{row}");
                        assert!(
                            n.message.starts_with("[[partner]] 'peer.example' ("),
                            "{row}: {n}"
                        );
                        Warn
                    }
                    more => panic!("{row}: several notices {more:?}"),
                }
            }
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::InvalidNegotiation, "{row}: {e}");
                assert_eq!(at(&e), (4, 1), "{row}");
                assert_eq!(e.path, "partner", "{row}");
                assert!(e.message.contains("no way to authenticate"), "{row}: {e}");
                Invalid
            }
        };
        assert_eq!(verdict, expect, "{row}");
    }
}

#[test]
fn matrix_reasons_name_the_cause() {
    let policy = |tls, sasl, dialback| StreamPolicy {
        tls,
        sasl,
        dialback,
        keepalive: true,
    };
    use Negotiation::{NotSupported, Optional, Required};
    let Verdict::Doubtful(reason) = policy(Required, Required, true).verdict() else {
        panic!("row 1 is a warning");
    };
    assert!(reason.contains("dialback never operates"), "{reason}");
    let Verdict::Doubtful(reason) = policy(NotSupported, Optional, true).verdict() else {
        panic!("row 11 is a warning");
    };
    assert!(reason.contains("SASL is never used"), "{reason}");
    let Verdict::Invalid(reason) = policy(NotSupported, Required, false).verdict() else {
        panic!("row 6 is invalid");
    };
    assert!(reason.contains("SASL needs TLS"), "{reason}");
    assert_eq!(OPEN_FEDERATION_POLICY.verdict(), Verdict::Valid);
}

#[test]
fn unknown_keys_name_line_column_and_table() {
    let e = err(&with(
        "\n[[partner]]\ndomain = \"a.example\"\n\n[[partner]]\ndomain = \"b.example\"\ntsl = \"required\"\n",
    ));
    assert_eq!(e.kind, ErrorKind::UnknownKey);
    assert_eq!(at(&e), (9, 1));
    assert_eq!(e.path, "partner.tsl");
    assert_eq!(
        e.to_string(),
        "line 9, column 1: unknown key 'tsl' in [[partner]] (expected one of 'domain', 'additional_domains', 'type', 'tls', 'sasl', 'dialback', 'keepalive', 'connect', 'connection_limit', 'description')"
    );

    let e = err(&with("[gatewya]\n"));
    assert_eq!((e.kind, at(&e)), (ErrorKind::UnknownKey, (3, 2)));
    assert!(
        e.message.starts_with(
            "unknown key 'gatewya' at the top level (expected one of 'gateway', 'listen',"
        ),
        "{e}"
    );

    let e = err(&with("[[sip.account]]\nuser = \"a\"\npassword = \"p\"\n[[sip.account]]\n  user = \"b\"\n  pasword = \"p\"\n"));
    assert_eq!((e.kind, at(&e)), (ErrorKind::UnknownKey, (8, 3)));
    assert_eq!(e.path, "sip.account.pasword");
    assert!(
        e.message
            .starts_with("unknown key 'pasword' in [[sip.account]] ("),
        "{e}"
    );

    let e = err(&with(
        "[sip]\nconnection_limit = 50\nidle_timout = \"1m\"\n",
    ));
    assert_eq!((e.kind, at(&e)), (ErrorKind::UnknownKey, (5, 1)));
    assert_eq!(e.path, "sip.idle_timout");
    assert!(
        e.message
            .starts_with("unknown key 'idle_timout' in [sip] ("),
        "{e}"
    );

    let e = err("[gateway]\ndomains = [\"example.com\"]\nmax_routes = 5\nmax_dns_query = 5\n");
    assert_eq!((e.kind, at(&e)), (ErrorKind::UnknownKey, (4, 1)));
    assert_eq!(e.path, "gateway.max_dns_query");
    assert!(
        e.message
            .starts_with("unknown key 'max_dns_query' in [gateway] ("),
        "{e}"
    );

    let e = err("[gateway]\ndomains = [\"example.com\"]\nconection_limit = 5\n");
    assert_eq!((e.kind, at(&e)), (ErrorKind::UnknownKey, (3, 1)));
    assert!(
        e.message
            .starts_with("unknown key 'conection_limit' in [gateway] ("),
        "{e}"
    );

    let e = err("gateway = { domains = [\"example.com\"], federaton = \"open\" }\n");
    assert_eq!((e.kind, at(&e)), (ErrorKind::UnknownKey, (1, 40)));
    assert_eq!(e.path, "gateway.federaton");

    let e = err(&with("[listen]\ns2s = []\nsips = []\n"));
    assert_eq!(
        (e.kind, at(&e), e.path.as_str()),
        (ErrorKind::UnknownKey, (5, 1), "listen.sips")
    );
}

#[test]
fn missing_keys() {
    let e = err(&with(
        "[[partner]]\ndomain = \"a.example\"\n[[partner]]\ntype = \"federated\"\n",
    ));
    assert_eq!((e.kind, at(&e)), (ErrorKind::MissingKey, (5, 1)));
    assert_eq!(e.path, "partner.domain");
    assert_eq!(
        e.to_string(),
        "line 5, column 1: missing key 'domain' in [[partner]]"
    );

    let e = err("[listen]\ns2s = []\n");
    assert_eq!(
        (e.kind, e.path.as_str()),
        (ErrorKind::MissingKey, "gateway")
    );
    assert_eq!(e.line(), Some(1));

    let e = err("[gateway]\nfederation = \"open\"\n");
    assert_eq!(
        (e.kind, at(&e), e.path.as_str()),
        (ErrorKind::MissingKey, (1, 1), "gateway.domains")
    );

    let e = err(&with("[sip]\nmode = \"proxy\"\n"));
    assert_eq!(
        (e.kind, at(&e), e.path.as_str()),
        (ErrorKind::MissingKey, (3, 1), "sip.next_hop")
    );
}

#[test]
fn bad_values_name_their_line() {
    // (file, line, column, key path, text the message must hold)
    let gw = |body: &str| format!("[gateway]\ndomains = [\"example.com\"]\n{body}\n");
    let cases: Vec<(String, usize, usize, &str, &str)> = vec![
        (
            gw("keepalive_interval = \"5 minutes\""),
            3,
            22,
            "gateway.keepalive_interval",
            "'minutes' is not a unit of duration",
        ),
        (
            gw("keepalive_interval = \"0s\""),
            3,
            22,
            "gateway.keepalive_interval",
            "zero",
        ),
        (
            gw("stream_inactivity_timeout = 600"),
            3,
            29,
            "gateway.stream_inactivity_timeout",
            "expected a duration string such as \"60s\"",
        ),
        (
            gw("stream_establishment_timeout = \"1h30m\""),
            3,
            32,
            "gateway.stream_establishment_timeout",
            "not a unit of duration",
        ),
        (
            gw("max_stanza_size = \"1KB\""),
            3,
            19,
            "gateway.max_stanza_size",
            "'KB' is not a unit of size",
        ),
        (
            gw("max_stanza_size = 4096"),
            3,
            19,
            "gateway.max_stanza_size",
            "below 10000",
        ),
        (
            gw("[sip]\nmode = \"proxy\"\nnext_hop = \"sip:10.0.0.5;transport=tls\""),
            5,
            12,
            "sip.next_hop",
            "the host must be a name; give the address as maddr=IP",
        ),
        (
            gw("[sip]\nconnection_limit = 0"),
            4,
            20,
            "sip.connection_limit",
            "positive",
        ),
        (
            gw("[sip]\nmax_transactions = 0"),
            4,
            20,
            "sip.max_transactions",
            "positive",
        ),
        (
            gw("[sip]\nmax_in_flight_per_user = 0"),
            4,
            26,
            "sip.max_in_flight_per_user",
            "positive",
        ),
        (
            gw("[sip]\nmax_queued_per_user = 50\nmax_queued_messages = 40"),
            5,
            23,
            "sip.max_queued_messages",
            "less than sip.max_queued_per_user (50)",
        ),
        (
            gw("[sip]\nrequest_timeout = \"0s\""),
            4,
            19,
            "sip.request_timeout",
            "a duration of zero",
        ),
        (
            gw("[sip]\nidle_timeout = 300"),
            4,
            16,
            "sip.idle_timeout",
            "expected a duration string such as \"60s\"",
        ),
        (
            gw("[sip]\nhandshake_timeout = \"10 seconds\""),
            4,
            21,
            "sip.handshake_timeout",
            "'seconds' is not a unit of duration",
        ),
        (
            gw("[sip]\nmax_message_size = 1000"),
            4,
            20,
            "sip.max_message_size",
            "below 4096",
        ),
        (
            gw("max_stanza_size = -1"),
            3,
            19,
            "gateway.max_stanza_size",
            "negative",
        ),
        (
            gw("max_stanza_size = true"),
            3,
            19,
            "gateway.max_stanza_size",
            "expected a number of bytes or a size string",
        ),
        (
            gw("connection_limit = 0"),
            3,
            20,
            "gateway.connection_limit",
            "positive",
        ),
        (
            gw("max_pending_dialback_per_stream = 0"),
            3,
            35,
            "gateway.max_pending_dialback_per_stream",
            "0 would refuse every dialback request; give a positive number",
        ),
        (
            gw("max_pending_dialback_per_domain = -1"),
            3,
            35,
            "gateway.max_pending_dialback_per_domain",
            "expected u32",
        ),
        (
            gw("max_routes = 0"),
            3,
            14,
            "gateway.max_routes",
            "0 would refuse every outbound route",
        ),
        (
            gw("max_dns_queries = \"100\""),
            3,
            19,
            "gateway.max_dns_queries",
            "expected u32",
        ),
        (
            gw("max_dns_queries = 0"),
            3,
            19,
            "gateway.max_dns_queries",
            "positive",
        ),
        (
            gw("partner_connection_limit = -3"),
            3,
            28,
            "gateway.partner_connection_limit",
            "expected u32",
        ),
        (
            gw("federation = \"closed\""),
            3,
            14,
            "gateway.federation",
            "unknown value 'closed', expected one of 'allow-list', 'open', 'deny-list'",
        ),
        (
            gw("dialback_secret = \"\""),
            3,
            19,
            "gateway.dialback_secret",
            "empty",
        ),
        (
            with("[listen]\ns2s = [\"0.0.0.0:5269\", \"localhost:5269\"]\n"),
            4,
            24,
            "listen.s2s",
            "'localhost:5269' is not an address",
        ),
        (
            with("[listen]\nsip = [\"0.0.0.0:5060\"]\n"),
            4,
            8,
            "listen.sip",
            "TRANSPORT:ADDRESS:PORT",
        ),
        (
            with("[listen]\nmetrics = true\n"),
            4,
            11,
            "listen.metrics",
            "or false for none",
        ),
        (
            with("[listen]\ninternal = \"0.0.0.0\"\n"),
            4,
            12,
            "listen.internal",
            "not an address",
        ),
        (
            with("[tls]\ncertificate = \"\"\n"),
            4,
            15,
            "tls.certificate",
            "empty path",
        ),
        (
            with("[sip]\nmode = \"b2bua\"\n"),
            4,
            8,
            "sip.mode",
            "unknown value 'b2bua'",
        ),
        (
            with("[sip]\nnext_hop = \"proxy.example.com\"\n"),
            4,
            12,
            "sip.next_hop",
            "not a SIP URI",
        ),
        (
            with("[sip]\ntrusted = [\"10.0.0.0/8\"]\n"),
            4,
            12,
            "sip.trusted",
            "is not an IP address (networks are not taken) or a host name",
        ),
        (
            with("[[sip.account]]\nuser = \"a\"\nha1 = \"xyz\"\n"),
            5,
            7,
            "sip.account.ha1",
            "32 hexadecimal digits",
        ),
        (
            with("[[sip.account]]\nuser = \"a@b\"\npassword = \"p\"\n"),
            4,
            8,
            "sip.account.user",
            "not a SIP user name",
        ),
        (
            with("[store]\nurl = \"mysql://u:pw@h/db\"\n"),
            4,
            7,
            "store.url",
            "expected sqlite://PATH",
        ),
        (
            with("[store]\nurl = \"postgres:///db\"\n"),
            4,
            7,
            "store.url",
            "the PostgreSQL URL names no host",
        ),
        (
            with("[[partner]]\ndomain = \"a b\"\n"),
            4,
            10,
            "partner.domain",
            "not a domain name",
        ),
        (
            with("[[partner]]\ndomain = \"user@peer.example\"\n"),
            4,
            10,
            "partner.domain",
            "an address, not a domain name",
        ),
        (
            with("[[partner]]\ndomain = \"p.example\"\ntls = \"yes\"\n"),
            5,
            7,
            "partner.tls",
            "unknown value 'yes', expected one of 'required', 'optional', 'not-supported'",
        ),
        (
            with("[[partner]]\ndomain = \"p.example\"\ntype = \"trusted\"\n"),
            5,
            8,
            "partner.type",
            "unknown value 'trusted'",
        ),
        (
            with("[[partner]]\ndomain = \"p.example\"\nconnect = \"h.example:0\"\n"),
            5,
            11,
            "partner.connect",
            "not a host and port",
        ),
        (
            with("[[partner]]\ndomain = \"p.example\"\nconnect = \"a b:5269\"\n"),
            5,
            11,
            "partner.connect",
            "not a host name",
        ),
        (
            with("[[partner]]\ndomain = \"p.example\"\nconnection_limit = 0\n"),
            5,
            20,
            "partner.connection_limit",
            "positive",
        ),
        (
            with("[[partner]]\ndomain = \"p.example\"\ndialback = \"yes\"\n"),
            5,
            12,
            "partner.dialback",
            "expected a boolean",
        ),
        (
            with("[[access]]\nusers = []\n"),
            4,
            9,
            "access.users",
            "empty",
        ),
        (
            with("[[access]]\nusers = [\"*\"]\nxmpp = 1\n"),
            5,
            8,
            "access.xmpp",
            "expected a boolean",
        ),
    ];
    for (text, line, column, path, needle) in cases {
        let e = err(&text);
        assert_eq!(e.kind, ErrorKind::InvalidValue, "{e}\n{text}");
        assert_eq!(at(&e), (line, column), "{e}\n{text}");
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(needle), "{e} lacks {needle:?}");
        let (_, key) = path.rsplit_once('.').expect("dotted");
        assert!(
            e.message.contains(&format!("'{key}' in [")),
            "{e} names no key"
        );
    }
    // A mistyped postgres URL is not echoed: it may hold a password.
    let e = err(&with("[store]\nurl = \"postgress://u:hunter2@h/db\"\n"));
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn a_postgres_store_loads_and_never_shows_its_password() {
    let c = ok(&with(
        "[store]\nurl = \"postgres://xfed:hunter2@db.example:5433/xfed\"\nstate_dir = \"/var/lib/xfed\"\n",
    ))
    .config;
    match &c.store.url {
        config::StoreUrl::Postgres(url) => {
            assert_eq!(url.expose(), "postgres://xfed:hunter2@db.example:5433/xfed");
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{c:?}").contains("hunter2"));
    assert_eq!(
        c.store.state_dir(),
        std::path::PathBuf::from("/var/lib/xfed")
    );
    // Defaults: beside the SQLite file, or xfed-data with PostgreSQL.
    let sqlite = ok(&with("[store]\nurl = \"sqlite://data/x.db\"\n")).config;
    assert_eq!(sqlite.store.state_dir(), std::path::PathBuf::from("data"));
    let pg = ok(&with("[store]\nurl = \"postgresql://h/db\"\n"));
    assert_eq!(
        pg.config.store.state_dir(),
        std::path::PathBuf::from("xfed-data")
    );
    // Several instances share one database, so they must share the
    // dialback secret: said when it is missing.
    assert!(
        pg.notices
            .iter()
            .any(|n| n.path == "store.url" && n.message.contains("gateway.dialback_secret")),
        "{:?}",
        pg.notices
    );
}

#[test]
fn syntax_errors_have_lines() {
    // Arrays may span lines: the next key reads as a missing comma.
    let e = err("[gateway]\ndomains = [\"example.com\"\nfederation = \"open\"\n");
    assert_eq!((e.kind, e.line()), (ErrorKind::Syntax, Some(3)));
    assert!(
        e.message.contains("missing comma between array elements"),
        "{e}"
    );
    let e = err("[gateway]\ndomains = [\"example.com\"]\ndomains = [\"x.example\"]\n");
    assert_eq!((e.kind, at(&e)), (ErrorKind::Syntax, (3, 1)));
    assert!(e.message.contains("duplicate key"), "{e}");
    let e = err("[gateway]\ndomains = [\"example.com\"]\n[[partner]\n");
    assert_eq!((e.kind, e.line()), (ErrorKind::Syntax, Some(3)));
}

#[test]
fn conflicts_name_the_offending_line() {
    let cases: Vec<(String, ErrorKind, usize, usize, &str, &str)> = vec![
        ("[gateway]\ndomains = []\n".to_owned(), ErrorKind::InvalidValue, 2, 11, "gateway.domains", "empty"),
        ("[gateway]\ndomains = [\"example.com\", \"EXAMPLE.com.\"]\n".to_owned(), ErrorKind::Conflict, 2, 27, "gateway.domains", "listed twice"),
        (with("[[partner]]\ndomain = \"Example.COM\"\n"), ErrorKind::Conflict, 4, 10, "partner.domain", "also a local domain"),
        (with("[[partner]]\ndomain = \"a.example\"\nadditional_domains = [\"example.com\"]\n"), ErrorKind::Conflict, 5, 23, "partner.additional_domains", "also a local domain"),
        (with("[[partner]]\ndomain = \"a.example\"\nadditional_domains = [\"muc.a.example\"]\n\n[[partner]]\ndomain = \"muc.a.example\"\n"), ErrorKind::Conflict, 8, 10, "partner.domain", "already belongs to the [[partner]] on line 5"),
        (with("[[partner]]\ndomain = \"a.example\"\nadditional_domains = [\"a.example\"]\n"), ErrorKind::Conflict, 5, 23, "partner.additional_domains", "on line 4"),
        (with("[[partner]]\ndomain = \"a.example\"\n[[block]]\ndomain = \"A.example\"\n"), ErrorKind::Conflict, 6, 10, "block.domain", "also a [[partner]] domain (line 4)"),
        (with("[[block]]\ndomain = \"example.com\"\n"), ErrorKind::Conflict, 4, 10, "block.domain", "local domain"),
        (with("[[block]]\ndomain = \"s.example\"\n[[block]]\ndomain = \"s.example\"\n"), ErrorKind::Conflict, 6, 10, "block.domain", "already blocked on line 4"),
        (with("[[sip.account]]\nuser = \"a\"\npassword = \"p\"\nha1 = \"0123456789abcdef0123456789abcdef\"\n"), ErrorKind::Conflict, 3, 1, "sip.account", "both 'password' and 'ha1'"),
        (with("[[sip.account]]\nuser = \"a\"\n"), ErrorKind::MissingKey, 3, 1, "sip.account.password", "needs 'password' or 'ha1'"),
        (with("[[sip.account]]\nuser = \"a\"\npassword = \"p\"\n[[sip.account]]\nuser = \"a\"\nha1 = \"0123456789abcdef0123456789abcdef\"\n"), ErrorKind::Conflict, 7, 8, "sip.account.user", "already defined on line 3"),
        // Accounts are told apart as XMPP addresses (issue 8: `Alice`
        // authenticated with its own password and spoke as `alice`).
        (with("[[sip.account]]\nuser = \"alice\"\npassword = \"p\"\n[[sip.account]]\nuser = \"Alice\"\npassword = \"q\"\n"), ErrorKind::Conflict, 7, 8, "sip.account.user", "the same address as 'alice' on line 3"),
        (with("[[sip.account]]\nuser = \"\u{e9}mile\"\npassword = \"p\"\n[[sip.account]]\nuser = \"\u{c9}MILE\"\npassword = \"q\"\n"), ErrorKind::Conflict, 7, 8, "sip.account.user", "the same address"),
        (with("[[sip.account]]\nuser = \"a\\u0007b\"\npassword = \"p\"\n"), ErrorKind::InvalidValue, 4, 8, "sip.account.user", "not a SIP user name"),
        (with("[[sip.account]]\nuser = \"\u{2639}\"\npassword = \"p\"\n"), ErrorKind::InvalidValue, 4, 8, "sip.account.user", "cannot be an XMPP address"),
        (with("[listen]\ns2s = [\"0.0.0.0:5269\"]\ns2s_direct_tls = [\"127.0.0.1:5269\"]\n"), ErrorKind::Conflict, 5, 19, "listen.s2s_direct_tls", "overlaps 0.0.0.0:5269 of 's2s' in [listen] (line 4)"),
        (with("[listen]\nmetrics = \"0.0.0.0:5270\"\n"), ErrorKind::Conflict, 4, 11, "listen.metrics", "(its default)"),
        (with("[listen]\nsip = [\"tcp:0.0.0.0:5060\", \"tls:0.0.0.0:5060\"]\n"), ErrorKind::Conflict, 4, 28, "listen.sip", "TCP listener"),
    ];
    for (text, kind, line, column, path, needle) in cases {
        let e = err(&text);
        assert_eq!(e.kind, kind, "{e}\n{text}");
        assert_eq!(at(&e), (line, column), "{e}\n{text}");
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(needle), "{e} lacks {needle:?}");
    }

    // Same port on TCP and UDP, or on IPv4 and IPv6, is fine; so is port 0.
    let loaded = ok(&with(
        "[listen]\ns2s = [\"[::]:5269\", \"0.0.0.0:0\"]\ns2s_direct_tls = [\"0.0.0.0:0\"]\nsip = [\"tcp:127.0.0.1:5060\", \"udp:127.0.0.1:5060\"]\nmetrics = false\n",
    ));
    assert_eq!(loaded.config.listen.metrics, None);
    assert_eq!(loaded.config.listen.s2s[0], addr("[::]:5269"));
}

#[test]
fn deny_list_without_blocks_is_fine() {
    let loaded = ok("[gateway]\ndomains = [\"example.com\"]\nfederation = \"deny-list\"\n");
    assert!(loaded.notices.is_empty(), "{:?}", loaded.notices);
    assert!(loaded.config.blocks.is_empty());
}

#[test]
fn blocks_outside_deny_list_are_reported() {
    for mode in ["allow-list", "open"] {
        let loaded = ok(&format!(
            "[gateway]\ndomains = [\"example.com\"]\nfederation = \"{mode}\"\n[[block]]\ndomain = \"s.example\"\n"
        ));
        assert_eq!(loaded.notices.len(), 1);
        let n = &loaded.notices[0];
        assert_eq!(
            (n.level, n.kind, n.line()),
            (Level::Warning, NoticeKind::NoEffect, Some(4))
        );
        assert!(n.message.contains(mode), "{n}");
    }
}

#[test]
fn inactive_keys_are_reported_only_when_set() {
    // Every key acts today; `listen.internal` outside an edge is said to
    // have no effect.
    assert!(INACTIVE_KEYS.is_empty());

    // Empty tables and active keys say nothing.
    let loaded = ok(&with(
        "keepalive_interval = \"1m\"\n[listen]\ns2s = [\"0.0.0.0:5269\"]\n[sip]\n[store]\n",
    ));
    assert!(loaded.notices.is_empty(), "{:?}", loaded.notices);

    let text = "[gateway]
domains = [\"example.com\"]
log_message_bodies = true
[listen]
internal = \"127.0.0.1:23456\"
[[sip.account]]
user = \"a\"
ha1 = \"0123456789ABCDEF0123456789abcdef\"
[[sip.account]]
user = \"b\"
ha1 = \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"
[[access]]
users = [\"*\"]
[store]
url = \"sqlite:///var/lib/xfed/xfed.db\"
";
    let loaded = ok(text);
    let got: Vec<(usize, &str)> = loaded
        .notices
        .iter()
        .inspect(|n| {
            assert_eq!(
                (n.level, n.kind),
                (Level::Info, NoticeKind::NoEffect),
                "{n}"
            )
        })
        .map(|n| (n.line().expect("located"), n.path.as_str()))
        .collect();
    assert_eq!(got, [(5, "listen.internal")]);
    let c = loaded.config;
    assert!(c.gateway.log_message_bodies);
    assert_eq!(
        c.sip.accounts[0].credential,
        SipCredential::Ha1(Secret::new("0123456789abcdef0123456789abcdef"))
    );
    assert_eq!(
        c.store.url,
        StoreUrl::Sqlite("/var/lib/xfed/xfed.db".into())
    );
    assert!(!c.access[0].xmpp, "EnableXmppAccess defaults to false");
}

#[test]
fn admission_for_each_federation_mode() {
    let text = |mode: &str| {
        format!(
            "[gateway]\ndomains = [\"example.com\", \"example.org\"]\nfederation = \"{mode}\"\n\
             [[partner]]\ndomain = \"jabber.org\"\nadditional_domains = [\"conference.jabber.org\"]\ntype = \"federated\"\nsasl = \"optional\"\n\
             [[block]]\ndomain = \"spam.example\"\n"
        )
    };
    let allow = ok(&text("allow-list")).config;
    let open = ok(&text("open")).config;
    let deny = ok(&text("deny-list")).config;

    for c in [&allow, &open, &deny] {
        // Partners, by any of their domains, in any case, with a root dot.
        for name in ["jabber.org", "Conference.Jabber.ORG", "jabber.org."] {
            let Admission::Partner(p) = c.federation_policy(name) else {
                panic!("{name} is a partner under {}", c.gateway.federation);
            };
            assert_eq!(p.domain, "jabber.org");
            assert_eq!(
                c.partner_for(name).map(|p| p.domain.as_str()),
                Some("jabber.org")
            );
        }
        let admission = c.federation_policy("jabber.org");
        assert_eq!(admission.partner_type(), Some(PartnerType::Federated));
        assert_eq!(
            admission.stream_policy().map(|p| p.sasl),
            Some(Negotiation::Optional)
        );
        assert!(c.partner_for("sub.jabber.org").is_none());
        // Local domains are never remote peers.
        for name in ["example.com", "EXAMPLE.ORG"] {
            assert!(c.is_local_domain(name));
            assert_eq!(
                c.federation_policy(name),
                Admission::Refused {
                    reason: RefusalReason::LocalDomain
                }
            );
        }
        assert!(!c.is_local_domain("example.net"));
    }

    let refused = |reason| Admission::Refused { reason };
    assert_eq!(
        allow.federation_policy("other.example"),
        refused(RefusalReason::NotAPartner)
    );
    assert_eq!(
        allow.federation_policy("spam.example"),
        refused(RefusalReason::NotAPartner)
    );
    assert_eq!(open.federation_policy("other.example"), Admission::Open);
    // DESIGN.md: blocks apply under deny-list only.
    assert_eq!(open.federation_policy("spam.example"), Admission::Open);
    assert_eq!(deny.federation_policy("other.example"), Admission::Open);
    assert_eq!(
        deny.federation_policy("SPAM.example"),
        refused(RefusalReason::Blocked)
    );
    assert_eq!(deny.federation_policy("sub.spam.example"), Admission::Open);

    let admitted = Admission::Open;
    assert!(admitted.is_admitted());
    assert_eq!(admitted.partner_type(), Some(PartnerType::PublicUnverified));
    assert_eq!(admitted.stream_policy(), Some(OPEN_FEDERATION_POLICY));
    assert_eq!(
        OPEN_FEDERATION_POLICY,
        StreamPolicy {
            tls: Negotiation::Required,
            sasl: Negotiation::Optional,
            dialback: true,
            keepalive: true
        }
    );
    let no = refused(RefusalReason::Blocked);
    assert!(!no.is_admitted());
    assert_eq!((no.partner_type(), no.stream_policy()), (None, None));
}

#[test]
fn xmpp_access_first_match_wins() {
    let c = ok(MINIMAL).config;
    assert!(c.xmpp_access("anyone@example.com"), "no rules: everyone");
    let c = ok(&with(
        "[[access]]\nusers = [\"bob@example.com\"]\nxmpp = false\n[[access]]\nusers = [\"*@example.com\"]\nxmpp = true\n",
    ))
    .config;
    assert!(!c.xmpp_access("bob@example.com"));
    assert!(c.xmpp_access("Alice@Example.com"));
    assert!(!c.xmpp_access("carol@example.org"), "unmatched: refused");
}

#[test]
fn embedded_default_round_trip() {
    let loaded = ok(EMBEDDED_DEFAULT_TOML);
    let expected = Config::embedded_default();
    assert_eq!(loaded.config, expected);
    // Nothing doubtful in the default; only keys later work activates.
    assert!(
        loaded
            .notices
            .iter()
            .all(|n| n.kind == NoticeKind::NotActiveYet),
        "{:?}",
        loaded.notices
    );

    let c = expected;
    assert_eq!(c.gateway.domains, ["localhost"]);
    assert_eq!(c.gateway.dialback_secret, None);
    assert_eq!(c.gateway.federation, FederationMode::Open);
    let mut every: Vec<SocketAddr> = c.listen.s2s.clone();
    every.extend(&c.listen.s2s_direct_tls);
    every.extend(c.listen.sip.iter().map(|s| s.addr));
    every.extend(c.listen.metrics);
    assert_eq!(every.len(), 6);
    assert!(every.iter().all(|a| a.ip().is_loopback()), "{every:?}");
    assert_eq!(c.listen.s2s, [addr("127.0.0.1:5269")]);
    assert_eq!(c.listen.s2s_direct_tls, [addr("127.0.0.1:5270")]);
    assert_eq!(c.listen.metrics, Some(addr("127.0.0.1:9269")));
    assert!(c.tls.certificate.starts_with("xfed-data"));
    assert!(c.tls.key.starts_with("xfed-data"));
    assert_eq!(
        c.store.url,
        StoreUrl::Sqlite(PathBuf::from("xfed-data/xfed.db"))
    );
    assert_eq!(c.sip.mode, SipMode::Registrar);
    assert_eq!(c.federation_policy("peer.localdomain"), Admission::Open);
    assert_eq!(
        c.federation_policy("localhost"),
        Admission::Refused {
            reason: RefusalReason::LocalDomain
        }
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let loaded = ok(&with(
        "dialback_secret = \"0123456789abcdef-long-enough\"\n[[sip.account]]\nuser = \"a\"\npassword = \"hunter2\"\n",
    ));
    let shown = format!("{loaded:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("long-enough"),
        "{shown}"
    );
    assert_eq!(
        loaded
            .config
            .gateway
            .dialback_secret
            .as_ref()
            .map(Secret::expose),
        Some("0123456789abcdef-long-enough")
    );
    assert!(loaded
        .notices
        .iter()
        .all(|n| n.kind != NoticeKind::WeakSecret));
}

#[test]
fn truncated_and_mangled_files_never_panic() {
    // Every prefix of the example, and each line dropped in turn: an error
    // or a config, never a panic.
    let mut boundary = 0;
    while boundary <= DESIGN_EXAMPLE.len() {
        if DESIGN_EXAMPLE.is_char_boundary(boundary) {
            let _ = config::parse(&DESIGN_EXAMPLE[..boundary]);
        }
        boundary += 1;
    }
    let lines: Vec<&str> = DESIGN_EXAMPLE.lines().collect();
    for skip in 0..lines.len() {
        let text: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        let _ = config::parse(&text.join("\n"));
    }
    for hostile in [
        "",
        "\u{feff}",
        "\0",
        "[",
        "a = [[[[",
        "x=\"\\u{0}\"",
        "[gateway]\ndomains = [\"\u{301}\"]",
    ] {
        let _ = config::parse(hostile);
    }
}

#[test]
fn table_shape_mistakes_are_explained() {
    let e = err(&with("[partner]\ndomain = \"p.example\"\n"));
    assert_eq!(
        (e.kind, at(&e), e.path.as_str()),
        (ErrorKind::InvalidValue, (3, 1), "partner")
    );
    assert!(
        e.message.ends_with("(write [[partner]] for each entry)"),
        "{e}"
    );

    let e = err(&with("[[listen]]\ns2s = []\n"));
    assert_eq!(
        (e.kind, at(&e), e.path.as_str()),
        (ErrorKind::InvalidValue, (3, 1), "listen")
    );
    assert_eq!(
        e.message,
        "[[listen]] is not an array of tables: write [listen]"
    );

    let e = err(&with("[[sip]]\nmode = \"proxy\"\n"));
    assert_eq!(
        (e.kind, e.line(), e.path.as_str()),
        (ErrorKind::InvalidValue, Some(4), "sip")
    );
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = config::parse(&text);
    }

    #[test]
    fn edited_example_never_panics(at in 0..DESIGN_EXAMPLE.len(), insert in "[\\[\\]{}=\",.#\n a-z0-9]{0,4}") {
        let mut text = DESIGN_EXAMPLE.to_owned();
        if text.is_char_boundary(at) {
            text.insert_str(at, &insert);
        }
        if let Err(e) = config::parse(&text) {
            // Errors always carry a position inside the file, or none.
            if let Some(l) = e.location {
                prop_assert!(l.line >= 1 && l.line <= text.lines().count() + 1);
            }
        }
    }
}

#[test]
fn trusted_peers_are_addresses_or_certificate_names() {
    let c = ok(&with(
        "[sip]\ntrusted = [\"10.0.0.5\", \"::1\", \"Proxy.Example.COM\"]\n",
    ))
    .config;
    assert_eq!(
        c.sip.trusted,
        [
            TrustedPeer::Address("10.0.0.5".parse().expect("ip")),
            TrustedPeer::Address("::1".parse().expect("ip")),
            TrustedPeer::Certificate("proxy.example.com".into()),
        ]
    );
    let e = err(&with("[sip]\ntrusted = [\"alice@proxy.example.com\"]\n"));
    assert_eq!(e.path, "sip.trusted");
    assert!(e.message.contains("not a domain name"), "{e}");
}

#[test]
fn next_hop_over_tls_needs_a_name() {
    for hop in [
        "sips:proxy.example.com",
        "sip:proxy.example.com:5061;transport=tls",
        "sip:proxy.example.com;transport=TLS;maddr=10.0.0.5",
    ] {
        let c = ok(&with(&format!(
            "[sip]\nmode = \"proxy\"\nnext_hop = \"{hop}\"\n"
        )))
        .config;
        assert_eq!(c.sip.next_hop.as_deref(), Some(hop));
    }
    for hop in ["sips:10.0.0.5", "sip:[::1]:5061;transport=tls"] {
        let e = err(&with(&format!(
            "[sip]\nmode = \"proxy\"\nnext_hop = \"{hop}\"\n"
        )));
        assert!(e.message.contains("the host must be a name"), "{hop}: {e}");
    }
}

/// `[sip] digest_algorithms`: the order is kept; MD5 first or alone loads
/// with a warning naming RFC 8760; unknown names, an empty list,
/// duplicates and an `ha1` of an algorithm left out are refused at their
/// line.
#[test]
fn digest_algorithms_set_the_order_and_are_checked() {
    use Algorithm::{Md5, Sha256};
    // Line 3 holds the key, the value starts at column 21.
    let sip = |list: &str| with(&format!("[sip]\ndigest_algorithms = {list}\n"));

    for (list, want) in [
        ("[\"SHA-256\", \"MD5\"]", &[Sha256, Md5][..]),
        ("[\"SHA-256\"]", &[Sha256]),
    ] {
        let loaded = ok(&sip(list));
        assert_eq!(loaded.config.sip.digest_algorithms, want, "{list}");
        assert!(loaded.notices.is_empty(), "{list}: {:?}", loaded.notices);
    }
    for (list, want, says) in [
        (
            "[\"MD5\", \"SHA-256\"]",
            &[Md5, Sha256][..],
            "puts MD5 first",
        ),
        ("[\"MD5\"]", &[Md5], "offers MD5 alone"),
    ] {
        let loaded = ok(&sip(list));
        assert_eq!(loaded.config.sip.digest_algorithms, want, "{list}");
        assert_eq!(loaded.notices.len(), 1, "{list}: {:?}", loaded.notices);
        let n = &loaded.notices[0];
        assert_eq!(
            (n.level, n.kind, n.path.as_str()),
            (
                Level::Warning,
                NoticeKind::WeakDigest,
                "sip.digest_algorithms"
            )
        );
        let l = n.location.expect("located");
        assert_eq!((l.line, l.column), (4, 21), "{n}");
        assert!(n.message.contains(says), "{n}");
        assert!(n.message.contains("weakens authentication"), "{n}");
        assert!(n.message.contains("RFC 8760"), "{n}");
    }

    // (list, column, kind, text the message must hold)
    for (list, column, kind, says) in [
        (
            "[\"SHA-256\", \"SHA-512-256\"]",
            33,
            ErrorKind::InvalidValue,
            "'SHA-512-256' is not a digest algorithm xfed offers: expected \"SHA-256\" or \"MD5\"",
        ),
        (
            "[\"sha-256\"]",
            22,
            ErrorKind::InvalidValue,
            "'sha-256' is not a digest algorithm",
        ),
        (
            "[]",
            21,
            ErrorKind::InvalidValue,
            "invalid value for 'digest_algorithms' in [sip]: empty",
        ),
        (
            "[\"MD5\", \"SHA-256\", \"MD5\"]",
            40,
            ErrorKind::Conflict,
            "\"MD5\" is listed twice in 'digest_algorithms' in [sip]",
        ),
        (
            "\"SHA-256\"",
            21,
            ErrorKind::InvalidValue,
            "digest_algorithms",
        ),
    ] {
        let e = err(&sip(list));
        assert_eq!(e.path, "sip.digest_algorithms", "{list}: {e}");
        assert_eq!(at(&e), (4, column), "{list}: {e}");
        assert_eq!(e.kind, kind, "{list}: {e}");
        assert!(e.message.contains(says), "{list}: {e}");
    }

    // An HA1 serves only its own algorithm: the list must hold it.
    let md5 = digest::ha1(Md5, "alice", "example.com", "pw");
    let sha = digest::ha1(Sha256, "bob", "example.com", "pw");
    let accounts = format!(
        "\n[[sip.account]]\nuser = \"carol\"\npassword = \"pw\"\n\
         \n[[sip.account]]\nuser = \"alice\"\nha1 = \"{md5}\"\n\
         \n[[sip.account]]\nuser = \"bob\"\nha1 = \"{sha}\"\n"
    );
    let c = ok(&format!("{}{accounts}", sip("[\"MD5\", \"SHA-256\"]"))).config;
    assert_eq!(c.sip.accounts.len(), 3);
    for (list, user, line, alg) in [
        ("[\"SHA-256\"]", "alice", 12, "MD5"),
        ("[\"MD5\"]", "bob", 16, "SHA-256"),
    ] {
        let e = err(&format!("{}{accounts}", sip(list)));
        assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
        assert_eq!(e.path, "sip.account.ha1", "{e}");
        assert_eq!(at(&e), (line, 7), "{e}");
        assert!(
            e.message.contains(&format!(
                "[[sip.account]] '{user}' has an {alg} ha1, but 'digest_algorithms' in [sip] does not list \"{alg}\""
            )),
            "{e}"
        );
    }
    // Without the key, both algorithms are listed: every HA1 is fine.
    assert!(ok(&format!("{MINIMAL}[sip]\n{accounts}"))
        .notices
        .is_empty());

    // In proxy mode nobody authenticates by digest: the key does nothing.
    let loaded = ok(&with(
        "[sip]\nmode = \"proxy\"\nnext_hop = \"sip:proxy.example.com\"\ndigest_algorithms = [\"SHA-256\"]\n",
    ));
    let kinds: Vec<(NoticeKind, &str)> = loaded
        .notices
        .iter()
        .map(|n| (n.kind, n.path.as_str()))
        .collect();
    assert_eq!(kinds, [(NoticeKind::NoEffect, "sip.digest_algorithms")]);
}

/// The commented default shipped for /etc/xfed/xfed.toml (dist/), read at
/// compile time so that the file cannot drift from the loader unnoticed.
const SHIPPED: &str = include_str!("../../dist/xfed.toml");

/// Uncomments the lines of `text` that `keep` picks ("#" and an optional
/// space dropped).
fn uncomment(text: &str, keep: impl Fn(&str) -> bool) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if keep(rest) => rest.strip_prefix(' ').unwrap_or(rest),
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `key = ...` at the start of `rest`: a setting rather than prose.
fn is_setting(rest: &str) -> bool {
    rest.split_once(" = ").is_some_and(|(key, _)| {
        !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}

#[test]
fn shipped_config_loads_without_notices() {
    let loaded = config::parse(SHIPPED).unwrap_or_else(|e| panic!("dist/xfed.toml: {e}"));
    assert!(
        loaded.notices.is_empty(),
        "dist/xfed.toml: {:?}",
        loaded.notices
    );
    let c = loaded.config;
    assert_eq!(c.gateway.domains, ["example.com"]);
    // The hardened unit lets xfed write only in its StateDirectory.
    assert_eq!(
        c.store.url,
        StoreUrl::Sqlite(PathBuf::from("/var/lib/xfed/xfed.db"))
    );
    assert_eq!(c.tls.certificate, PathBuf::from("/etc/xfed/cert.pem"));
    assert_eq!(c.tls.key, PathBuf::from("/etc/xfed/key.pem"));
    // No shipped secret: every installation generates its own.
    assert!(c.gateway.dialback_secret.is_none());
    assert!(c.partners.is_empty());
}

#[test]
fn shipped_config_commented_defaults_are_the_defaults() {
    // "#key = value" (no space) marks a default: uncommenting all of them
    // must give the same configuration, so a changed default shows here.
    let uncommented = uncomment(SHIPPED, |rest| !rest.starts_with(' ') && is_setting(rest));
    let defaults = SHIPPED
        .lines()
        .filter(|l| l.strip_prefix('#').is_some_and(is_setting))
        .count();
    assert!(defaults >= 35, "{defaults} defaults: the marker broke");
    let loaded = config::parse(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    let plain = config::parse(SHIPPED).expect("loads").config;
    assert_eq!(loaded.config, plain);
}

#[test]
fn shipped_config_examples_load() {
    // The commented examples (partner, account, block, access) uncommented
    // too must load, and mean what their comments say.
    let uncommented = uncomment(SHIPPED, |rest| {
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        is_setting(rest) || rest.starts_with("[[")
    });
    let loaded = config::parse(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    let c = loaded.config;
    assert_eq!(c.partners.len(), 1);
    let p = &c.partners[0];
    assert_eq!(p.domain, "jabber.org");
    assert_eq!(p.partner_type, PartnerType::PublicUnverified);
    assert_eq!(c.sip.accounts.len(), 1);
    assert_eq!(c.blocks.len(), 1);
    assert_eq!(c.access.len(), 1);
    // The one notice: the [[block]] example does nothing under the default
    // allow-list, as its comment says.
    let notices: Vec<(NoticeKind, &str)> = loaded
        .notices
        .iter()
        .map(|n| (n.kind, n.path.as_str()))
        .collect();
    assert_eq!(
        notices,
        [(NoticeKind::NoEffect, "block")],
        "{:?}",
        loaded.notices
    );
}

#[test]
fn roles_take_what_they_need_and_nothing_else() {
    let role = |role: &str, rest: &str| {
        format!("[gateway]\ndomains = [\"example.com\"]\nrole = \"{role}\"\n{rest}")
    };
    // An edge: [listen] internal, no SIP listener, no links.
    let edge = ok(&role("edge", "[listen]\ninternal = \"10.0.0.5:23456\"\n")).config;
    assert_eq!(edge.gateway.role, config::Role::Edge);
    assert!(edge.listen.sip.is_empty());
    assert_eq!(edge.listen.internal, Some(addr("10.0.0.5:23456")));
    let e = err(&role("edge", ""));
    assert!(e.message.contains("needs [listen] internal"), "{e}");
    let e = err(&role(
        "edge",
        "[listen]\ninternal = \"10.0.0.5:23456\"\n[internal]\nconnect = [\"e:1\"]\n",
    ));
    assert_eq!(e.path, "internal", "{e}");
    // A gateway: one of [component] or [internal], no s2s listener.
    let gw = ok(&role(
        "gateway",
        "[internal]\nconnect = [\"edge1.example.com:23456\", \"10.0.0.6:23456\"]\n",
    ))
    .config;
    assert!(gw.listen.s2s.is_empty() && gw.listen.s2s_direct_tls.is_empty());
    let connect = &gw.internal.as_ref().expect("internal").connect;
    assert_eq!(connect.len(), 2);
    assert_eq!(
        (connect[0].host.as_str(), connect[0].port),
        ("edge1.example.com", 23456)
    );
    let e = err(&role("gateway", ""));
    assert!(
        e.message.contains("[component]") && e.message.contains("[internal]"),
        "{e}"
    );
    let component =
        "[component]\nserver = \"127.0.0.1:5347\"\ndomain = \"example.com\"\nsecret = \"s\"\n";
    let e = err(&role(
        "gateway",
        &format!("{component}[internal]\nconnect = [\"e:1\"]\n"),
    ));
    assert!(e.message.contains("not both"), "{e}");
    let e = err(&role(
        "gateway",
        "[component]\nserver = \"127.0.0.1:5347\"\ndomain = \"sip.example.com\"\nsecret = \"s\"\n",
    ));
    assert_eq!(e.path, "component.domain", "{e}");
    // Both in one process: neither.
    let e = err(&role("both", component));
    assert_eq!(e.path, "component", "{e}");
    let e = err(&role("both", "[internal]\nconnect = [\"e:1\"]\n"));
    assert_eq!(e.path, "internal", "{e}");
}

#[test]
fn an_instance_path_is_an_ip_sip_uri_for_several_instances() {
    let text = |path: &str| {
        format!(
            "[gateway]\ndomains = [\"example.com\"]\ndialback_secret = \"s\"\n[store]\nurl = \"postgres://h/db\"\n[sip]\npath = \"{path}\"\n"
        )
    };
    let loaded = ok(&text("sip:10.0.0.11:5060;transport=tcp"));
    assert_eq!(
        loaded.config.sip.path.as_deref(),
        Some("sip:10.0.0.11:5060;transport=tcp")
    );
    assert!(
        loaded.notices.iter().all(|n| n.path != "sip.path"),
        "{:?}",
        loaded.notices
    );
    for (bad, why) in [
        ("sip:xfed1.example.com:5060", "IP address"),
        ("sips:10.0.0.11", "sip: URI"),
        ("sip:alice@10.0.0.11", "sip: URI"),
        ("sip:10.0.0.11;transport=tls", "tcp or udp"),
        ("10.0.0.11:5060", "10.0.0.11:5060"),
    ] {
        let e = err(&text(bad));
        assert_eq!(e.path, "sip.path", "{bad}: {e}");
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
    // Alone (SQLite), nobody else would learn the bindings: said.
    let alone = ok(&with("[sip]\npath = \"sip:127.0.0.1:5060\"\n"));
    assert!(
        alone.notices.iter().any(|n| n.path == "sip.path"),
        "{:?}",
        alone.notices
    );
}
