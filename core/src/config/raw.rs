//! The file as written: serde structs that refuse unknown keys and keep the
//! spans later checks need. Values with a syntax of our own stay text here
//! and are parsed in `lower`, which knows their line.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::{FederationMode, Negotiation, PartnerType, Role, SipMode};

/// Strings whose expected form is named in type errors ("expected a
/// duration such as ...").
macro_rules! text_value {
    ($name:ident, $expecting:literal) => {
        #[derive(Debug)]
        pub(super) struct $name(pub String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Text;
                impl Visitor<'_> for Text {
                    type Value = String;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                        Ok(v.to_owned())
                    }
                }
                deserializer.deserialize_str(Text).map($name)
            }
        }
    };
}

text_value!(RawDuration, "a duration string such as \"60s\"");
text_value!(RawAddr, "an address string such as \"0.0.0.0:5269\"");
text_value!(
    RawSipListener,
    "a SIP listener string such as \"tcp:0.0.0.0:5060\""
);

/// A size: a TOML integer (bytes) or a string such as `"256KiB"`.
#[derive(Debug)]
pub(super) enum RawSize {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Size;
        impl Visitor<'_> for Size {
            type Value = RawSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes or a size string such as \"256KiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(Size)
    }
}

/// An optional address: a string, or `false` for none.
#[derive(Debug)]
pub(super) struct RawOptAddr(pub Option<String>);

impl<'de> Deserialize<'de> for RawOptAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OptAddr;
        impl Visitor<'_> for OptAddr {
            type Value = RawOptAddr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address string such as \"127.0.0.1:9269\", or false for none")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawOptAddr, E> {
                if v {
                    Err(E::invalid_value(de::Unexpected::Bool(v), &self))
                } else {
                    Ok(RawOptAddr(None))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawOptAddr, E> {
                Ok(RawOptAddr(Some(v.to_owned())))
            }
        }
        deserializer.deserialize_any(OptAddr)
    }
}

pub(super) type Domains = Spanned<Vec<Spanned<String>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub gateway: Option<Spanned<RawGateway>>,
    pub listen: Option<RawListen>,
    pub tls: Option<RawTls>,
    pub sip: Option<Spanned<RawSip>>,
    pub store: Option<RawStore>,
    pub component: Option<Spanned<RawComponent>>,
    pub internal: Option<Spanned<RawInternal>>,
    #[serde(default)]
    pub partner: Vec<Spanned<RawPartner>>,
    #[serde(default)]
    pub block: Vec<Spanned<RawBlock>>,
    #[serde(default)]
    pub access: Vec<Spanned<RawAccess>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInternal {
    #[serde(default)]
    pub connect: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawComponent {
    pub server: Spanned<String>,
    pub domain: Spanned<String>,
    pub secret: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub domains: Domains,
    pub dialback_secret: Option<Spanned<String>>,
    pub connection_limit: Option<Spanned<u32>>,
    pub partner_connection_limit: Option<Spanned<u32>>,
    pub stream_establishment_timeout: Option<Spanned<RawDuration>>,
    pub stream_inactivity_timeout: Option<Spanned<RawDuration>>,
    pub keepalive_interval: Option<Spanned<RawDuration>>,
    pub subscription_refresh_interval: Option<Spanned<RawDuration>>,
    pub log_message_bodies: Option<bool>,
    pub max_stanza_size: Option<Spanned<RawSize>>,
    pub log_lines_per_source: Option<Spanned<u32>>,
    pub federation: Option<FederationMode>,
    pub role: Option<Spanned<Role>>,
    pub max_pending_dialback_per_stream: Option<Spanned<u32>>,
    pub max_pending_dialback_per_domain: Option<Spanned<u32>>,
    pub max_routes: Option<Spanned<u32>>,
    pub max_dns_queries: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListen {
    pub s2s: Option<Vec<Spanned<RawAddr>>>,
    pub s2s_direct_tls: Option<Vec<Spanned<RawAddr>>>,
    pub sip: Option<Vec<Spanned<RawSipListener>>>,
    pub internal: Option<Spanned<RawOptAddr>>,
    pub metrics: Option<Spanned<RawOptAddr>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub certificate: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub trust: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSip {
    pub mode: Option<SipMode>,
    pub next_hop: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub trusted: Option<Vec<Spanned<String>>>,
    pub max_message_size: Option<Spanned<RawSize>>,
    pub connection_limit: Option<Spanned<u32>>,
    pub handshake_timeout: Option<Spanned<RawDuration>>,
    pub request_timeout: Option<Spanned<RawDuration>>,
    pub idle_timeout: Option<Spanned<RawDuration>>,
    pub max_transactions: Option<Spanned<u32>>,
    pub max_watchers: Option<Spanned<u32>>,
    pub max_subscriptions: Option<Spanned<u32>>,
    pub max_in_flight_per_user: Option<Spanned<u32>>,
    pub max_queued_per_user: Option<Spanned<u32>>,
    pub max_queued_messages: Option<Spanned<u32>>,
    pub max_read_pause: Option<Spanned<RawDuration>>,
    pub trust_udp: Option<bool>,
    pub max_auth_failures: Option<Spanned<u32>>,
    pub auth_backoff: Option<Spanned<RawDuration>>,
    pub digest_algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub account: Vec<Spanned<RawAccount>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub user: Spanned<String>,
    pub password: Option<Spanned<String>>,
    pub ha1: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub url: Option<Spanned<String>>,
    pub state_dir: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPartner {
    pub domain: Spanned<String>,
    #[serde(default)]
    pub additional_domains: Vec<Spanned<String>>,
    #[serde(rename = "type")]
    pub partner_type: Option<PartnerType>,
    pub tls: Option<Negotiation>,
    pub sasl: Option<Negotiation>,
    pub dialback: Option<bool>,
    pub keepalive: Option<bool>,
    pub connect: Option<Spanned<String>>,
    pub connection_limit: Option<Spanned<u32>>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBlock {
    pub domain: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    pub users: Spanned<Vec<Spanned<String>>>,
    pub xmpp: Option<bool>,
}
