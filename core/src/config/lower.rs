//! From the file as written to a [`Config`]: defaults filled in, values
//! parsed, and every cross-check (duplicates, overlaps, Lync's matrix) run,
//! each error placed at the line of what it is about.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeTable;
use toml::Spanned;

use super::digest::Algorithm;
use super::error::{self, describe_path, Location, ELEMENT_TABLES};
use super::raw::{
    Domains, RawAccess, RawAccount, RawBlock, RawComponent, RawDuration, RawFile, RawGateway,
    RawInternal, RawListen, RawOptAddr, RawPartner, RawSip, RawSize, RawStore, RawTls,
};
use super::values;
use super::{
    defaults, AccessRule, Block, ComponentConfig, Config, ConfigError, Connect, ErrorKind,
    FederationMode, GatewayConfig, InternalConfig, Level, ListenConfig, Loaded, MessageQueues,
    Negotiation, Notice, NoticeKind, Partner, PartnerType, Role, Secret, SipAccount, SipConfig,
    SipCredential, SipListener, SipMode, StoreConfig, StoreUrl, StreamPolicy, TlsConfig, Trust,
    TrustedPeer, Verdict, INACTIVE_KEYS,
};
use crate::jid::Jid;

/// The example secret of DESIGN.md, worth a warning when copied.
const EXAMPLE_SECRET: &str = "change-me";

/// Dialback secrets shorter than this (in characters) get a warning.
const SHORT_SECRET: usize = 16;

pub(super) fn load(text: &str) -> Result<Loaded, ConfigError> {
    let root = DeTable::parse(text).map_err(|e| error::from_syntax(text, &e))?;
    let raw = RawFile::deserialize(toml::de::Deserializer::from(root.clone()))
        .map_err(|e| error::from_serde(text, root.get_ref(), &e))?;
    let mut cx = Lower {
        text,
        notices: Vec::new(),
    };
    let config = cx.file(raw)?;
    cx.inactive(root.get_ref());
    let mut notices = cx.notices;
    notices.sort_by_key(|n| n.location);
    Ok(Loaded { config, notices })
}

struct Lower<'t> {
    text: &'t str,
    notices: Vec<Notice>,
}

/// A listener, for the overlap check: where it came from, if written.
struct Bound {
    addr: SocketAddr,
    tcp: bool,
    path: &'static str,
    span: Option<Range<usize>>,
}

impl Lower<'_> {
    fn location(&self, span: &Range<usize>) -> Option<Location> {
        Some(Location::at(self.text, span.start))
    }

    fn error(
        &self,
        kind: ErrorKind,
        span: &Range<usize>,
        path: &str,
        message: String,
    ) -> ConfigError {
        ConfigError {
            kind,
            location: self.location(span),
            path: path.to_owned(),
            message,
        }
    }

    fn invalid(&self, span: &Range<usize>, path: &str, reason: &str) -> ConfigError {
        let message = format!(
            "invalid value for {}: {reason}",
            describe_path(path, ELEMENT_TABLES)
        );
        self.error(ErrorKind::InvalidValue, span, path, message)
    }

    fn notice(
        &mut self,
        level: Level,
        kind: NoticeKind,
        span: &Range<usize>,
        path: &str,
        message: String,
    ) {
        let location = self.location(span);
        self.notices.push(Notice {
            level,
            kind,
            location,
            path: path.to_owned(),
            message,
        });
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        Location::at(self.text, span.start).line
    }

    fn file(&mut self, raw: RawFile) -> Result<Config, ConfigError> {
        let Some(gateway) = raw.gateway else {
            return Err(ConfigError {
                kind: ErrorKind::MissingKey,
                location: Some(Location { line: 1, column: 1 }),
                path: "gateway".to_owned(),
                message: "missing table [gateway] (it holds 'domains', the local domains)"
                    .to_owned(),
            });
        };
        let role_span = gateway.get_ref().role.as_ref().map(Spanned::span);
        let gateway_span = gateway.span();
        let gateway = self.gateway(gateway.into_inner())?;
        let internal_span = raw
            .listen
            .as_ref()
            .and_then(|l| l.internal.as_ref().map(Spanned::span));
        let mut listen = self.listen(raw.listen)?;
        let (component, internal) = self.links(
            (raw.component, raw.internal),
            &gateway,
            &mut listen,
            (role_span.unwrap_or(gateway_span), internal_span),
        )?;
        if gateway.role == Role::Gateway {
            // The XMPP server or the edges federate: no s2s listener here.
            listen.s2s.clear();
            listen.s2s_direct_tls.clear();
        }
        let tls = self.tls(raw.tls)?;
        let path_span = raw
            .sip
            .as_ref()
            .and_then(|s| s.get_ref().path.as_ref().map(Spanned::span));
        let sip = self.sip(raw.sip)?;
        let url_span = raw
            .store
            .as_ref()
            .and_then(|s| s.url.as_ref().map(Spanned::span));
        let store = self.store(raw.store)?;
        if let (StoreUrl::Postgres(_), None, Some(span)) =
            (&store.url, &gateway.dialback_secret, url_span)
        {
            // Each instance would generate its own: one's dialback keys
            // would fail at the others.
            self.notice(
                Level::Warning,
                NoticeKind::NoEffect,
                &span,
                "store.url",
                "a PostgreSQL store is for several instances, which must share gateway.dialback_secret: without it each generates its own, and one's dialback keys fail at the others".to_owned(),
            );
        }

        if let (StoreUrl::Sqlite(_), Some(span)) = (&store.url, path_span) {
            self.notice(
                Level::Warning,
                NoticeKind::NoEffect,
                &span,
                "sip.path",
                "'path' in [sip] is for several instances, which learn each other's bindings through a shared PostgreSQL store (store.url = \"postgres://...\")".to_owned(),
            );
        }

        let mut partners = Vec::with_capacity(raw.partner.len());
        // Every partner domain with where it was written, for duplicates and blocks.
        let mut taken: Vec<(String, Range<usize>)> = Vec::new();
        for entry in &raw.partner {
            let partner = self.partner(entry, &gateway, &mut taken)?;
            partners.push(partner);
        }
        let blocks = self.blocks(&raw.block, &gateway, &taken)?;
        let access = raw
            .access
            .iter()
            .map(|rule| self.access(rule))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Config {
            gateway,
            listen,
            tls,
            sip,
            store,
            component,
            internal,
            partners,
            blocks,
            access,
        })
    }

    /// `gateway.role` with what each role needs: an edge listens on
    /// `[listen] internal` for its gateways; a gateway attaches to an XMPP
    /// server (`[component]`) or to its edges (`[internal] connect`), one
    /// or the other; one process with both roles needs neither.
    fn links(
        &mut self,
        raw: (Option<Spanned<RawComponent>>, Option<Spanned<RawInternal>>),
        gateway: &GatewayConfig,
        listen: &mut ListenConfig,
        spans: (Range<usize>, Option<Range<usize>>),
    ) -> Result<(Option<ComponentConfig>, Option<InternalConfig>), ConfigError> {
        let (role_span, internal_listener) = spans;
        let conflict = |cx: &Self, span: &Range<usize>, path: &str, message: &str| {
            cx.error(ErrorKind::Conflict, span, path, message.to_owned())
        };
        match (gateway.role, raw) {
            (Role::Edge, (None, None)) => {
                if listen.internal.is_none() {
                    return Err(conflict(
                        self,
                        &role_span,
                        "gateway.role",
                        "role = \"edge\" needs [listen] internal (where its gateways attach)",
                    ));
                }
                // The SIP side runs on the gateways.
                listen.sip.clear();
                Ok((None, None))
            }
            (Role::Edge, (Some(c), _)) => Err(conflict(
                self,
                &c.span(),
                "component",
                "an edge attaches to no XMPP server: [component] belongs to a gateway",
            )),
            (Role::Edge, (None, Some(i))) => Err(conflict(
                self,
                &i.span(),
                "internal",
                "[internal] connect belongs to a gateway: an edge listens on [listen] internal",
            )),
            (Role::Gateway, (None, None)) => Err(conflict(
                self,
                &role_span,
                "gateway.role",
                "role = \"gateway\" needs [component] (an XMPP server to attach to) or [internal] connect (its edges)",
            )),
            (Role::Gateway, (Some(_), Some(i))) => Err(conflict(
                self,
                &i.span(),
                "internal",
                "a gateway attaches to an XMPP server ([component]) or to edges ([internal]), not both",
            )),
            (Role::Both, (Some(c), _)) => Err(conflict(
                self,
                &c.span(),
                "component",
                "[component] needs gateway.role = \"gateway\": xfed then reaches XMPP through the server rather than federating itself",
            )),
            (Role::Both, (None, Some(i))) => Err(conflict(
                self,
                &i.span(),
                "internal",
                "[internal] needs gateway.role = \"gateway\" (the edges federate for it)",
            )),
            (Role::Both, (None, None)) => {
                self.internal_listener_unused(internal_listener);
                Ok((None, None))
            }
            (Role::Gateway, (None, Some(i))) => {
                self.internal_listener_unused(internal_listener);
                let i = i.into_inner();
                if i.connect.is_empty() {
                    return Err(self.invalid(&(0..0), "internal.connect", "names no edge"));
                }
                let connect = i
                    .connect
                    .iter()
                    .map(|c| self.host_port(c, "internal.connect"))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((None, Some(InternalConfig { connect })))
            }
            (Role::Gateway, (Some(c), None)) => {
                self.internal_listener_unused(internal_listener);
                let c = c.into_inner();
                let server = self.host_port(&c.server, "component.server")?;
                let domain = self.domain(&c.domain, "component.domain")?;
                if !gateway.domains.contains(&domain) {
                    return Err(conflict(
                        self,
                        &c.domain.span(),
                        "component.domain",
                        &format!("'{domain}' is not one of gateway.domains: the component's domain is the SIP users' domain"),
                    ));
                }
                if c.secret.get_ref().is_empty() {
                    return Err(self.invalid(&c.secret.span(), "component.secret", "is empty"));
                }
                Ok((
                    Some(ComponentConfig {
                        server,
                        domain,
                        secret: Secret::new(c.secret.into_inner()),
                    }),
                    None,
                ))
            }
        }
    }

    /// `[listen] internal` outside an edge: said, not refused (DESIGN.md's
    /// example sets it with the default role).
    fn internal_listener_unused(&mut self, span: Option<Range<usize>>) {
        if let Some(span) = span {
            self.notice(
                Level::Info,
                NoticeKind::NoEffect,
                &span,
                "listen.internal",
                "'internal' in [listen] has no effect unless gateway.role = \"edge\": only an edge listens for gateways".to_owned(),
            );
        }
    }

    /// A domain name in prepared form (RFC 7622), as the s2s layer sees them.
    fn domain(&self, raw: &Spanned<String>, path: &str) -> Result<String, ConfigError> {
        let value = raw.get_ref();
        match Jid::parse(value) {
            Ok(jid) if jid.is_domain() => Ok(jid.domain().to_owned()),
            Ok(_) => Err(self.invalid(
                &raw.span(),
                path,
                &format!("'{value}' is an address, not a domain name"),
            )),
            Err(e) => Err(self.invalid(
                &raw.span(),
                path,
                &format!("'{value}' is not a domain name: {e}"),
            )),
        }
    }

    fn gateway(&mut self, g: RawGateway) -> Result<GatewayConfig, ConfigError> {
        let domains = self.local_domains(&g.domains)?;

        let dialback_secret = match g.dialback_secret {
            None => None,
            Some(secret) => {
                let value = secret.get_ref();
                let path = "gateway.dialback_secret";
                if value.is_empty() {
                    return Err(self.invalid(
                        &secret.span(),
                        path,
                        "empty; omit the key to have xfed generate and keep one",
                    ));
                }
                if value == EXAMPLE_SECRET || value.chars().count() < SHORT_SECRET {
                    self.notice(
                        Level::Warning,
                        NoticeKind::WeakSecret,
                        &secret.span(),
                        path,
                        format!(
                            "'dialback_secret' in [gateway] is the example value or shorter than {SHORT_SECRET} characters: anyone who guesses it can forge dialback keys for the local domains"
                        ),
                    );
                }
                Some(Secret::new(value.clone()))
            }
        };

        let connection_limit = self.limit(
            g.connection_limit.as_ref(),
            "gateway.connection_limit",
            defaults::CONNECTION_LIMIT,
        )?;
        let partner_connection_limit = self.limit(
            g.partner_connection_limit.as_ref(),
            "gateway.partner_connection_limit",
            defaults::PARTNER_CONNECTION_LIMIT,
        )?;
        let stream_establishment_timeout = self.duration(
            g.stream_establishment_timeout.as_ref(),
            "gateway.stream_establishment_timeout",
            defaults::STREAM_ESTABLISHMENT_TIMEOUT,
        )?;
        let stream_inactivity_timeout = self.duration(
            g.stream_inactivity_timeout.as_ref(),
            "gateway.stream_inactivity_timeout",
            defaults::STREAM_INACTIVITY_TIMEOUT,
        )?;
        let keepalive_interval = self.duration(
            g.keepalive_interval.as_ref(),
            "gateway.keepalive_interval",
            defaults::KEEPALIVE_INTERVAL,
        )?;
        let subscription_refresh_interval = self.duration(
            g.subscription_refresh_interval.as_ref(),
            "gateway.subscription_refresh_interval",
            defaults::SUBSCRIPTION_REFRESH_INTERVAL,
        )?;
        let max_pending_dialback_per_stream = self.positive(
            g.max_pending_dialback_per_stream.as_ref(),
            "gateway.max_pending_dialback_per_stream",
            defaults::MAX_PENDING_DIALBACK_PER_STREAM,
            "every dialback request",
        )?;
        let max_pending_dialback_per_domain = self.positive(
            g.max_pending_dialback_per_domain.as_ref(),
            "gateway.max_pending_dialback_per_domain",
            defaults::MAX_PENDING_DIALBACK_PER_DOMAIN,
            "every dialback request",
        )?;
        let max_routes = self.positive(
            g.max_routes.as_ref(),
            "gateway.max_routes",
            defaults::MAX_ROUTES,
            "every outbound route",
        )?;
        let max_dns_queries = self.positive(
            g.max_dns_queries.as_ref(),
            "gateway.max_dns_queries",
            defaults::MAX_DNS_QUERIES,
            "every DNS lookup",
        )?;
        let max_stanza_size = match &g.max_stanza_size {
            None => defaults::MAX_STANZA_SIZE,
            Some(size) => self.size(
                size,
                "gateway.max_stanza_size",
                defaults::MIN_STANZA_SIZE,
                "the stanza size RFC 6120 section 13.12 requires servers to accept",
            )?,
        };

        Ok(GatewayConfig {
            domains,
            dialback_secret,
            connection_limit,
            partner_connection_limit,
            stream_establishment_timeout,
            stream_inactivity_timeout,
            keepalive_interval,
            subscription_refresh_interval,
            log_message_bodies: g.log_message_bodies.unwrap_or(defaults::LOG_MESSAGE_BODIES),
            max_stanza_size,
            log_lines_per_source: self.limit(
                g.log_lines_per_source.as_ref(),
                "gateway.log_lines_per_source",
                defaults::LOG_LINES_PER_SOURCE,
            )?,
            federation: g.federation.unwrap_or(FederationMode::AllowList),
            role: g.role.map_or(Role::Both, |r| *r.get_ref()),
            max_pending_dialback_per_stream,
            max_pending_dialback_per_domain,
            max_routes,
            max_dns_queries,
        })
    }

    fn local_domains(&self, raw: &Domains) -> Result<Vec<String>, ConfigError> {
        let path = "gateway.domains";
        let mut domains: Vec<String> = Vec::new();
        let mut spans: Vec<Range<usize>> = Vec::new();
        for entry in raw.get_ref() {
            let domain = self.domain(entry, path)?;
            if let Some(i) = domains.iter().position(|d| *d == domain) {
                let first = spans.get(i).map_or(0, |s| self.line_of(s));
                return Err(self.error(
                    ErrorKind::Conflict,
                    &entry.span(),
                    path,
                    format!("local domain '{domain}' is listed twice in 'domains' in [gateway] (first on line {first})"),
                ));
            }
            domains.push(domain);
            spans.push(entry.span());
        }
        if domains.is_empty() {
            return Err(self.invalid(&raw.span(), path, "empty; list at least one local domain"));
        }
        Ok(domains)
    }

    /// A connection limit: a positive integer, since 0 would refuse everything.
    fn limit(
        &self,
        raw: Option<&Spanned<u32>>,
        path: &str,
        default: u32,
    ) -> Result<u32, ConfigError> {
        self.positive(raw, path, default, "every connection")
    }

    /// A count that must be positive, since zero would refuse
    /// `zero_refuses`.
    fn positive(
        &self,
        raw: Option<&Spanned<u32>>,
        path: &str,
        default: u32,
        zero_refuses: &str,
    ) -> Result<u32, ConfigError> {
        match raw {
            None => Ok(default),
            Some(v) if *v.get_ref() == 0 => Err(self.invalid(
                &v.span(),
                path,
                &format!("0 would refuse {zero_refuses}; give a positive number"),
            )),
            Some(v) => Ok(*v.get_ref()),
        }
    }

    /// A duration: positive, since every duration in the file is a timeout
    /// or a period for which zero means a busy loop or an instant drop.
    fn duration(
        &self,
        raw: Option<&Spanned<RawDuration>>,
        path: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(raw) = raw else {
            return Ok(default);
        };
        let value = values::parse_duration(&raw.get_ref().0)
            .map_err(|reason| self.invalid(&raw.span(), path, &reason))?;
        if value.is_zero() {
            return Err(self.invalid(&raw.span(), path, "a duration of zero; give a positive one"));
        }
        Ok(value)
    }

    /// A size of at least `min` bytes; `why_min` says where the floor
    /// comes from.
    fn size(
        &self,
        raw: &Spanned<RawSize>,
        path: &str,
        min: usize,
        why_min: &str,
    ) -> Result<usize, ConfigError> {
        let bytes = match raw.get_ref() {
            RawSize::Bytes(n) => {
                u64::try_from(*n).map_err(|_| self.invalid(&raw.span(), path, "a negative size"))?
            }
            RawSize::Text(text) => values::parse_size(text)
                .map_err(|reason| self.invalid(&raw.span(), path, &reason))?,
        };
        let bytes = usize::try_from(bytes)
            .map_err(|_| self.invalid(&raw.span(), path, "too large for this machine"))?;
        if bytes < min {
            return Err(self.invalid(
                &raw.span(),
                path,
                &format!("{bytes} bytes is below {min}, {why_min}"),
            ));
        }
        Ok(bytes)
    }

    fn listen(&self, raw: Option<RawListen>) -> Result<ListenConfig, ConfigError> {
        let raw = raw.unwrap_or(RawListen {
            s2s: None,
            s2s_direct_tls: None,
            sip: None,
            internal: None,
            metrics: None,
        });
        let mut bound: Vec<Bound> = Vec::new();

        let s2s = self.addrs(
            raw.s2s.as_deref(),
            "listen.s2s",
            defaults::LISTEN_S2S,
            &mut bound,
        )?;
        let s2s_direct_tls = self.addrs(
            raw.s2s_direct_tls.as_deref(),
            "listen.s2s_direct_tls",
            defaults::LISTEN_S2S_DIRECT_TLS,
            &mut bound,
        )?;

        let path = "listen.sip";
        let sip = match &raw.sip {
            None => {
                let mut list = Vec::new();
                for text in defaults::LISTEN_SIP {
                    if let Ok(listener) = values::parse_sip_listener(text) {
                        list.push(listener);
                    }
                }
                for l in &list {
                    bound.push(Bound {
                        addr: l.addr,
                        tcp: l.transport.is_tcp(),
                        path,
                        span: None,
                    });
                }
                list
            }
            Some(entries) => {
                let mut list = Vec::new();
                for entry in entries {
                    let listener: SipListener = values::parse_sip_listener(&entry.get_ref().0)
                        .map_err(|reason| self.invalid(&entry.span(), path, &reason))?;
                    bound.push(Bound {
                        addr: listener.addr,
                        tcp: listener.transport.is_tcp(),
                        path,
                        span: Some(entry.span()),
                    });
                    list.push(listener);
                }
                list
            }
        };

        let internal =
            self.optional_addr(raw.internal.as_ref(), "listen.internal", None, &mut bound)?;
        let metrics = self.optional_addr(
            raw.metrics.as_ref(),
            "listen.metrics",
            Some(defaults::LISTEN_METRICS),
            &mut bound,
        )?;

        self.overlaps(&bound)?;
        Ok(ListenConfig {
            s2s,
            s2s_direct_tls,
            sip,
            internal,
            metrics,
        })
    }

    fn addrs(
        &self,
        raw: Option<&[Spanned<super::raw::RawAddr>]>,
        path: &'static str,
        default: SocketAddr,
        bound: &mut Vec<Bound>,
    ) -> Result<Vec<SocketAddr>, ConfigError> {
        let Some(entries) = raw else {
            bound.push(Bound {
                addr: default,
                tcp: true,
                path,
                span: None,
            });
            return Ok(vec![default]);
        };
        let mut list = Vec::with_capacity(entries.len());
        for entry in entries {
            let addr = values::parse_socket_addr(&entry.get_ref().0)
                .map_err(|reason| self.invalid(&entry.span(), path, &reason))?;
            bound.push(Bound {
                addr,
                tcp: true,
                path,
                span: Some(entry.span()),
            });
            list.push(addr);
        }
        Ok(list)
    }

    fn optional_addr(
        &self,
        raw: Option<&Spanned<RawOptAddr>>,
        path: &'static str,
        default: Option<SocketAddr>,
        bound: &mut Vec<Bound>,
    ) -> Result<Option<SocketAddr>, ConfigError> {
        let (addr, span) = match raw {
            None => (default, None),
            Some(value) => match &value.get_ref().0 {
                None => (None, None),
                Some(text) => {
                    let addr = values::parse_socket_addr(text)
                        .map_err(|reason| self.invalid(&value.span(), path, &reason))?;
                    (Some(addr), Some(value.span()))
                }
            },
        };
        if let Some(addr) = addr {
            bound.push(Bound {
                addr,
                tcp: true,
                path,
                span,
            });
        }
        Ok(addr)
    }

    /// Two listeners of one protocol on one port clash when their addresses
    /// are equal or one is the wildcard of the other's family: the second
    /// bind would fail at start, so it fails here, with a line.
    fn overlaps(&self, bound: &[Bound]) -> Result<(), ConfigError> {
        for (j, later) in bound.iter().enumerate() {
            for earlier in bound.iter().take(j) {
                let (a, b) = (earlier.addr, later.addr);
                let clash = earlier.tcp == later.tcp
                    && a.port() == b.port()
                    && a.port() != 0
                    && a.is_ipv4() == b.is_ipv4()
                    && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified());
                if !clash {
                    continue;
                }
                let (here, there) = if later.span.is_some() {
                    (later, earlier)
                } else {
                    (earlier, later)
                };
                let Some(span) = &here.span else {
                    continue;
                };
                let where_ = match &there.span {
                    Some(s) => format!("line {}", self.line_of(s)),
                    None => "its default".to_owned(),
                };
                let protocol = if here.tcp { "TCP" } else { "UDP" };
                return Err(self.error(
                    ErrorKind::Conflict,
                    span,
                    here.path,
                    format!(
                        "{protocol} listener {} in {} overlaps {} of {} ({where_})",
                        here.addr,
                        describe_path(here.path, ELEMENT_TABLES),
                        there.addr,
                        describe_path(there.path, ELEMENT_TABLES),
                    ),
                ));
            }
        }
        Ok(())
    }

    fn path_value(
        &self,
        raw: Option<&Spanned<String>>,
        path: &str,
        default: &str,
    ) -> Result<PathBuf, ConfigError> {
        match raw {
            None => Ok(PathBuf::from(default)),
            Some(v) if v.get_ref().trim().is_empty() => {
                Err(self.invalid(&v.span(), path, "an empty path"))
            }
            Some(v) => Ok(PathBuf::from(v.get_ref())),
        }
    }

    fn tls(&self, raw: Option<RawTls>) -> Result<TlsConfig, ConfigError> {
        let raw = raw.unwrap_or(RawTls {
            certificate: None,
            key: None,
            trust: None,
        });
        let certificate = self.path_value(
            raw.certificate.as_ref(),
            "tls.certificate",
            defaults::CERTIFICATE,
        )?;
        let key = self.path_value(raw.key.as_ref(), "tls.key", defaults::KEY)?;
        let trust = match &raw.trust {
            None => Trust::System,
            Some(v) if v.get_ref() == "system" => Trust::System,
            Some(_) => Trust::File(self.path_value(raw.trust.as_ref(), "tls.trust", "")?),
        };
        Ok(TlsConfig {
            certificate,
            key,
            trust,
        })
    }

    fn sip(&mut self, raw: Option<Spanned<RawSip>>) -> Result<SipConfig, ConfigError> {
        let Some(raw) = raw else {
            return Ok(SipConfig {
                mode: SipMode::Registrar,
                next_hop: None,
                path: None,
                trusted: Vec::new(),
                accounts: Vec::new(),
                max_message_size: defaults::SIP_MAX_MESSAGE_SIZE,
                connection_limit: defaults::SIP_CONNECTION_LIMIT,
                handshake_timeout: defaults::SIP_HANDSHAKE_TIMEOUT,
                request_timeout: defaults::SIP_REQUEST_TIMEOUT,
                idle_timeout: defaults::SIP_IDLE_TIMEOUT,
                max_transactions: defaults::SIP_MAX_TRANSACTIONS,
                max_watchers: defaults::SIP_MAX_WATCHERS,
                max_subscriptions: defaults::SIP_MAX_SUBSCRIPTIONS,
                queues: MessageQueues::default(),
                trust_udp: false,
                max_auth_failures: defaults::SIP_MAX_AUTH_FAILURES,
                auth_backoff: defaults::SIP_AUTH_BACKOFF,
                digest_algorithms: defaults::SIP_DIGEST_ALGORITHMS.to_vec(),
            });
        };
        let span = raw.span();
        let raw = raw.into_inner();
        let mode = raw.mode.unwrap_or(SipMode::Registrar);

        let next_hop = match &raw.next_hop {
            None => None,
            Some(v) => {
                let value = v.get_ref().trim();
                let lower = value.to_ascii_lowercase();
                let rest = lower
                    .strip_prefix("sip:")
                    .or_else(|| lower.strip_prefix("sips:"));
                if rest.is_none_or(str::is_empty) {
                    return Err(self.invalid(
                        &v.span(),
                        "sip.next_hop",
                        &format!("'{value}' is not a SIP URI: expected one such as \"sip:proxy.example.com;transport=tcp\""),
                    ));
                }
                self.next_hop_tls(v, value)?;
                if mode == SipMode::Registrar {
                    self.notice(
                        Level::Warning,
                        NoticeKind::NoEffect,
                        &v.span(),
                        "sip.next_hop",
                        "'next_hop' in [sip] has no effect unless mode = \"proxy\"".to_owned(),
                    );
                }
                Some(value.to_owned())
            }
        };
        let path = raw
            .path
            .as_ref()
            .map(|v| self.instance_path(v, mode))
            .transpose()?;
        if mode == SipMode::Proxy && next_hop.is_none() {
            return Err(self.error(
                ErrorKind::MissingKey,
                &span,
                "sip.next_hop",
                "missing key 'next_hop' in [sip]: mode = \"proxy\" sends requests for local users there".to_owned(),
            ));
        }

        let mut trusted: Vec<TrustedPeer> = Vec::new();
        for entry in raw.trusted.iter().flatten() {
            let text = entry.get_ref().trim();
            if let Ok(ip) = text.parse() {
                trusted.push(TrustedPeer::Address(ip));
                continue;
            }
            if text.contains('/') {
                return Err(self.invalid(
                    &entry.span(),
                    "sip.trusted",
                    &format!(
                        "'{text}' is not an IP address (networks are not taken) or a host name"
                    ),
                ));
            }
            let name = self.domain(entry, "sip.trusted")?;
            trusted.push(TrustedPeer::Certificate(name));
        }

        let digest_algorithms = self.digest_algorithms(raw.digest_algorithms.as_ref(), mode)?;
        let mut accounts: Vec<SipAccount> = Vec::with_capacity(raw.account.len());
        // Accounts are told apart in the canonical form of their user
        // (jid::foreign_local), the form From users and JIDs are
        // compared in: `Alice` and `alice` would be one user, and whoever
        // holds either password could speak as both.
        let mut canonical: Vec<(String, usize, String)> = Vec::new();
        for entry in &raw.account {
            let account = self.account(entry, &digest_algorithms)?;
            let user_span = entry.get_ref().user.span();
            let form = crate::jid::foreign_local(&account.user).map_err(|e| {
                self.invalid(
                    &user_span,
                    "sip.account.user",
                    &format!("'{}' cannot be an XMPP address: {e:?}", account.user),
                )
            })?;
            if let Some((_, first, same)) = canonical.iter().find(|(c, _, _)| *c == form) {
                let detail = if *same == account.user {
                    format!("[[sip.account]] user '{same}' is already defined on line {first}")
                } else {
                    format!(
                        "[[sip.account]] user '{}' is the same address as '{same}' on line {first} (both are {form}@ on XMPP)",
                        account.user
                    )
                };
                return Err(self.error(
                    ErrorKind::Conflict,
                    &user_span,
                    "sip.account.user",
                    detail,
                ));
            }
            canonical.push((form, self.line_of(&entry.span()), account.user.clone()));
            accounts.push(account);
        }
        if mode == SipMode::Proxy {
            if let Some(first) = raw.account.first() {
                self.notice(
                    Level::Warning,
                    NoticeKind::NoEffect,
                    &first.span(),
                    "sip.account",
                    "[[sip.account]] has no effect unless mode = \"registrar\"".to_owned(),
                );
            }
        }
        let max_message_size = match &raw.max_message_size {
            None => defaults::SIP_MAX_MESSAGE_SIZE,
            Some(size) => self.size(
                size,
                "sip.max_message_size",
                defaults::SIP_MIN_MESSAGE_SIZE,
                "the size a SIP MESSAGE may reach (RFC 3428 section 8: 1300 bytes of request plus headers added on the way)",
            )?,
        };
        Ok(SipConfig {
            mode,
            next_hop,
            path,
            trusted,
            accounts,
            digest_algorithms,
            max_message_size,
            connection_limit: self.limit(
                raw.connection_limit.as_ref(),
                "sip.connection_limit",
                defaults::SIP_CONNECTION_LIMIT,
            )?,
            handshake_timeout: self.duration(
                raw.handshake_timeout.as_ref(),
                "sip.handshake_timeout",
                defaults::SIP_HANDSHAKE_TIMEOUT,
            )?,
            request_timeout: self.duration(
                raw.request_timeout.as_ref(),
                "sip.request_timeout",
                defaults::SIP_REQUEST_TIMEOUT,
            )?,
            idle_timeout: self.duration(
                raw.idle_timeout.as_ref(),
                "sip.idle_timeout",
                defaults::SIP_IDLE_TIMEOUT,
            )?,
            max_transactions: self.limit(
                raw.max_transactions.as_ref(),
                "sip.max_transactions",
                defaults::SIP_MAX_TRANSACTIONS,
            )?,
            max_watchers: self.limit(
                raw.max_watchers.as_ref(),
                "sip.max_watchers",
                defaults::SIP_MAX_WATCHERS,
            )?,
            max_subscriptions: self.limit(
                raw.max_subscriptions.as_ref(),
                "sip.max_subscriptions",
                defaults::SIP_MAX_SUBSCRIPTIONS,
            )?,
            queues: self.message_queues(&raw)?,
            trust_udp: raw.trust_udp.unwrap_or(false),
            max_auth_failures: self.limit(
                raw.max_auth_failures.as_ref(),
                "sip.max_auth_failures",
                defaults::SIP_MAX_AUTH_FAILURES,
            )?,
            auth_backoff: self.duration(
                raw.auth_backoff.as_ref(),
                "sip.auth_backoff",
                defaults::SIP_AUTH_BACKOFF,
            )?,
        })
    }

    /// `sip.max_in_flight_per_user`, `max_queued_per_user`,
    /// `max_queued_messages` (at least the per-user bound, which it
    /// would otherwise cut short) and `max_read_pause`.
    fn message_queues(&self, raw: &RawSip) -> Result<MessageQueues, ConfigError> {
        let per_user = self.limit(
            raw.max_queued_per_user.as_ref(),
            "sip.max_queued_per_user",
            defaults::SIP_MAX_QUEUED_PER_USER,
        )?;
        let total = self.limit(
            raw.max_queued_messages.as_ref(),
            "sip.max_queued_messages",
            defaults::SIP_MAX_QUEUED_MESSAGES,
        )?;
        if let Some(v) = raw
            .max_queued_messages
            .as_ref()
            .filter(|_| total < per_user)
        {
            return Err(self.invalid(
                &v.span(),
                "sip.max_queued_messages",
                &format!("{total} is less than sip.max_queued_per_user ({per_user})"),
            ));
        }
        Ok(MessageQueues {
            max_in_flight_per_user: self.limit(
                raw.max_in_flight_per_user.as_ref(),
                "sip.max_in_flight_per_user",
                defaults::SIP_MAX_IN_FLIGHT_PER_USER,
            )?,
            max_queued_per_user: per_user,
            max_queued_messages: total,
            max_read_pause: self.duration(
                raw.max_read_pause.as_ref(),
                "sip.max_read_pause",
                defaults::SIP_MAX_READ_PAUSE,
            )?,
        })
    }

    /// `sip.path`: a `sip:` URI with an IP address (no DNS for SIP) over
    /// UDP or TCP, where this instance's peers forward; registrar mode
    /// only (in proxy mode the SIP domain keeps the bindings).
    fn instance_path(&mut self, v: &Spanned<String>, mode: SipMode) -> Result<String, ConfigError> {
        let value = v.get_ref().trim();
        let wrong = |why: &str| self.invalid(&v.span(), "sip.path", &format!("'{value}': {why}"));
        let uri = crate::sip::Uri::parse(value).map_err(|e| wrong(&e.to_string()))?;
        if uri.scheme() != crate::sip::Scheme::Sip || uri.user().is_some() {
            return Err(wrong(
                "expected a sip: URI of this instance, such as \"sip:10.0.0.11:5060;transport=tcp\"",
            ));
        }
        if matches!(uri.host(), Some(crate::sip::Host::Domain(_)) | None) {
            return Err(wrong(
                "the host must be an IP address (SIP is not resolved)",
            ));
        }
        if uri
            .transport()
            .is_some_and(|t| !t.eq_ignore_ascii_case("tcp") && !t.eq_ignore_ascii_case("udp"))
        {
            return Err(wrong("the transport must be tcp or udp"));
        }
        if mode == SipMode::Proxy {
            self.notice(
                Level::Warning,
                NoticeKind::NoEffect,
                &v.span(),
                "sip.path",
                "'path' in [sip] has no effect unless mode = \"registrar\"".to_owned(),
            );
        }
        Ok(value.to_owned())
    }

    /// A next hop over TLS (`sips:` or `transport=tls`) must be named by
    /// a host name, since its certificate is checked against it.
    fn next_hop_tls(&self, v: &Spanned<String>, value: &str) -> Result<(), ConfigError> {
        let uri = crate::sip::Uri::parse(value)
            .map_err(|e| self.invalid(&v.span(), "sip.next_hop", &format!("'{value}': {e}")))?;
        let tls = uri.scheme() == crate::sip::Scheme::Sips
            || uri
                .transport()
                .is_some_and(|t| t.eq_ignore_ascii_case("tls"));
        if tls && !matches!(uri.host(), Some(crate::sip::Host::Domain(_))) {
            return Err(self.invalid(
                &v.span(),
                "sip.next_hop",
                &format!("'{value}': over TLS the next hop's certificate is checked against its host, so the host must be a name; give the address as maddr=IP if DNS does not know the name"),
            ));
        }
        Ok(())
    }

    /// `sip.digest_algorithms`: known names, at least one, none twice; a
    /// warning when MD5 comes first (RFC 8760 section 3: offering MD5 at
    /// all opens the way to a downgrade, putting it first invites it).
    fn digest_algorithms(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
        mode: SipMode,
    ) -> Result<Vec<Algorithm>, ConfigError> {
        let path = "sip.digest_algorithms";
        let Some(raw) = raw else {
            return Ok(defaults::SIP_DIGEST_ALGORITHMS.to_vec());
        };
        let mut algorithms: Vec<Algorithm> = Vec::new();
        for entry in raw.get_ref() {
            let name = entry.get_ref();
            let Some(algorithm) = Algorithm::ALL.into_iter().find(|a| a.name() == name) else {
                return Err(self.invalid(
                    &entry.span(),
                    path,
                    &format!("'{name}' is not a digest algorithm xfed offers: expected \"SHA-256\" or \"MD5\""),
                ));
            };
            if algorithms.contains(&algorithm) {
                return Err(self.error(
                    ErrorKind::Conflict,
                    &entry.span(),
                    path,
                    format!("\"{name}\" is listed twice in 'digest_algorithms' in [sip]"),
                ));
            }
            algorithms.push(algorithm);
        }
        match algorithms.as_slice() {
            [] => {
                return Err(self.invalid(
                    &raw.span(),
                    path,
                    "empty; list \"SHA-256\", \"MD5\" or both, in order of preference",
                ))
            }
            [Algorithm::Md5] => self.notice(
                Level::Warning,
                NoticeKind::WeakDigest,
                &raw.span(),
                path,
                "'digest_algorithms' in [sip] offers MD5 alone, which weakens authentication: RFC 8760 replaces the obsolete MD5 with SHA-256; list \"SHA-256\" too".to_owned(),
            ),
            [Algorithm::Md5, ..] => self.notice(
                Level::Warning,
                NoticeKind::WeakDigest,
                &raw.span(),
                path,
                "'digest_algorithms' in [sip] puts MD5 first, which weakens authentication: clients answer the first challenge they support (RFC 8760 section 2.4), so those with SHA-256 will use MD5; keep it only for clients that read the first challenge alone".to_owned(),
            ),
            _ => {}
        }
        if mode == SipMode::Proxy {
            self.notice(
                Level::Warning,
                NoticeKind::NoEffect,
                &raw.span(),
                path,
                "'digest_algorithms' in [sip] has no effect unless mode = \"registrar\"".to_owned(),
            );
        }
        Ok(algorithms)
    }

    /// One `[[sip.account]]`; its `ha1` must be of an algorithm in
    /// `algorithms` (`sip.digest_algorithms`), or it could never sign in.
    fn account(
        &self,
        entry: &Spanned<RawAccount>,
        algorithms: &[Algorithm],
    ) -> Result<SipAccount, ConfigError> {
        let a: &RawAccount = entry.get_ref();
        let user = a.user.get_ref();
        if user.is_empty()
            || user
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | ':' | ';'))
        {
            return Err(self.invalid(
                &a.user.span(),
                "sip.account.user",
                &format!("'{user}' is not a SIP user name (no spaces, '@', ':' or ';')"),
            ));
        }
        let credential = match (&a.password, &a.ha1) {
            (Some(_), Some(_)) => {
                return Err(self.error(
                    ErrorKind::Conflict,
                    &entry.span(),
                    "sip.account",
                    format!("[[sip.account]] '{user}' has both 'password' and 'ha1': give one"),
                ))
            }
            (None, None) => {
                return Err(self.error(
                    ErrorKind::MissingKey,
                    &entry.span(),
                    "sip.account.password",
                    format!("[[sip.account]] '{user}' needs 'password' or 'ha1'"),
                ))
            }
            (Some(p), None) if p.get_ref().is_empty() => {
                return Err(self.invalid(&p.span(), "sip.account.password", "an empty password"))
            }
            (Some(p), None) => SipCredential::Password(Secret::new(p.get_ref().clone())),
            (None, Some(h)) => {
                let hex = h.get_ref();
                if !matches!(hex.len(), 32 | 64) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(self.invalid(
                        &h.span(),
                        "sip.account.ha1",
                        "expected 32 hexadecimal digits (MD5) or 64 (SHA-256, RFC 8760)",
                    ));
                }
                if let Some(own) = Algorithm::of_ha1(hex).filter(|a| !algorithms.contains(a)) {
                    return Err(self.error(
                        ErrorKind::Conflict,
                        &h.span(),
                        "sip.account.ha1",
                        format!(
                            "[[sip.account]] '{user}' has an {} ha1, but 'digest_algorithms' in [sip] does not list \"{}\": the account could never sign in; add it to the list or give the account its password",
                            own.name(),
                            own.name()
                        ),
                    ));
                }
                SipCredential::Ha1(Secret::new(hex.to_ascii_lowercase()))
            }
        };
        Ok(SipAccount {
            user: user.clone(),
            credential,
        })
    }

    fn store(&self, raw: Option<RawStore>) -> Result<StoreConfig, ConfigError> {
        let (url, state_dir) = match raw {
            Some(s) => (s.url, s.state_dir),
            None => (None, None),
        };
        let state_dir = match state_dir {
            Some(d) if d.get_ref().trim().is_empty() => {
                return Err(self.invalid(&d.span(), "store.state_dir", "names no directory"));
            }
            Some(d) => Some(PathBuf::from(d.get_ref().trim())),
            None => None,
        };
        let Some(url) = url else {
            return Ok(StoreConfig {
                url: StoreUrl::Sqlite(PathBuf::from(
                    defaults::STORE_URL.trim_start_matches("sqlite://"),
                )),
                state_dir,
            });
        };
        let value = url.get_ref().trim();
        let path = "store.url";
        let url = if let Some(file) = value.strip_prefix("sqlite://") {
            if file.is_empty() {
                return Err(self.invalid(&url.span(), path, "'sqlite://' names no file"));
            }
            StoreUrl::Sqlite(PathBuf::from(file))
        } else if let Some(rest) = value
            .strip_prefix("postgres://")
            .or_else(|| value.strip_prefix("postgresql://"))
        {
            // The value is never echoed: it may hold a password.
            if rest.is_empty() || rest.starts_with('/') {
                return Err(self.invalid(&url.span(), path, "the PostgreSQL URL names no host"));
            }
            StoreUrl::Postgres(Secret::new(value))
        } else {
            // The value is not echoed: a mistyped postgres URL may hold a password.
            return Err(self.invalid(
                &url.span(),
                path,
                "expected sqlite://PATH or postgres://USER@HOST/DATABASE",
            ));
        };
        Ok(StoreConfig { url, state_dir })
    }

    fn partner(
        &mut self,
        entry: &Spanned<RawPartner>,
        gateway: &GatewayConfig,
        taken: &mut Vec<(String, Range<usize>)>,
    ) -> Result<Partner, ConfigError> {
        let p: &RawPartner = entry.get_ref();
        let header = entry.span();
        let domain = self.domain(&p.domain, "partner.domain")?;
        self.claim(&domain, &p.domain.span(), "partner.domain", gateway, taken)?;
        let mut additional_domains = Vec::with_capacity(p.additional_domains.len());
        for extra in &p.additional_domains {
            let d = self.domain(extra, "partner.additional_domains")?;
            self.claim(
                &d,
                &extra.span(),
                "partner.additional_domains",
                gateway,
                taken,
            )?;
            additional_domains.push(d);
        }

        let policy = StreamPolicy {
            tls: p.tls.unwrap_or(Negotiation::Required),
            sasl: p.sasl.unwrap_or(Negotiation::Required),
            dialback: p.dialback.unwrap_or(true),
            keepalive: p.keepalive.unwrap_or(true),
        };
        let settings = format!(
            "tls = \"{}\", sasl = \"{}\", dialback = {}",
            policy.tls, policy.sasl, policy.dialback
        );
        match policy.verdict() {
            Verdict::Valid => {}
            Verdict::Doubtful(reason) => self.notice(
                Level::Warning,
                NoticeKind::Negotiation,
                &header,
                "partner",
                format!("[[partner]] '{domain}' ({settings}): {reason}"),
            ),
            Verdict::Invalid(reason) => {
                return Err(self.error(
                    ErrorKind::InvalidNegotiation,
                    &header,
                    "partner",
                    format!(
                        "[[partner]] '{domain}' has an invalid combination ({settings}): {reason}"
                    ),
                ))
            }
        }

        let connect = match &p.connect {
            None => None,
            Some(v) => Some(self.connect(v)?),
        };
        let connection_limit = self.limit(
            p.connection_limit.as_ref(),
            "partner.connection_limit",
            gateway.partner_connection_limit,
        )?;
        Ok(Partner {
            domain,
            additional_domains,
            partner_type: p.partner_type.unwrap_or(PartnerType::PublicUnverified),
            policy,
            connect,
            connection_limit,
            description: p.description.clone(),
        })
    }

    /// Records a partner domain, refusing local domains and duplicates.
    fn claim(
        &self,
        domain: &str,
        span: &Range<usize>,
        path: &str,
        gateway: &GatewayConfig,
        taken: &mut Vec<(String, Range<usize>)>,
    ) -> Result<(), ConfigError> {
        if gateway.domains.iter().any(|d| d == domain) {
            return Err(self.error(
                ErrorKind::Conflict,
                span,
                path,
                format!(
                    "partner domain '{domain}' is also a local domain ('domains' in [gateway])"
                ),
            ));
        }
        if let Some((_, first)) = taken.iter().find(|(d, _)| d == domain) {
            return Err(self.error(
                ErrorKind::Conflict,
                span,
                path,
                format!(
                    "domain '{domain}' already belongs to the [[partner]] on line {}",
                    self.line_of(first)
                ),
            ));
        }
        taken.push((domain.to_owned(), span.clone()));
        Ok(())
    }

    fn connect(&self, raw: &Spanned<String>) -> Result<Connect, ConfigError> {
        self.host_port(raw, "partner.connect")
    }

    /// `host:port`, the host a domain name or an IP address.
    fn host_port(&self, raw: &Spanned<String>, path: &str) -> Result<Connect, ConfigError> {
        let (host, port) = values::split_host_port(raw.get_ref())
            .map_err(|reason| self.invalid(&raw.span(), path, &reason))?;
        let host = match Jid::parse(host) {
            Ok(jid) if jid.is_domain() => jid.domain().to_owned(),
            _ => {
                return Err(self.invalid(
                    &raw.span(),
                    path,
                    &format!("'{host}' is not a host name or IP address"),
                ))
            }
        };
        Ok(Connect { host, port })
    }

    fn blocks(
        &mut self,
        raw: &[Spanned<RawBlock>],
        gateway: &GatewayConfig,
        taken: &[(String, Range<usize>)],
    ) -> Result<Vec<Block>, ConfigError> {
        let path = "block.domain";
        let mut blocks: Vec<Block> = Vec::with_capacity(raw.len());
        let mut lines: Vec<usize> = Vec::new();
        for entry in raw {
            let span = entry.get_ref().domain.span();
            let domain = self.domain(&entry.get_ref().domain, path)?;
            if gateway.domains.contains(&domain) {
                return Err(self.error(
                    ErrorKind::Conflict,
                    &span,
                    path,
                    format!(
                        "[[block]] domain '{domain}' is a local domain ('domains' in [gateway])"
                    ),
                ));
            }
            if let Some((_, at)) = taken.iter().find(|(d, _)| *d == domain) {
                return Err(self.error(
                    ErrorKind::Conflict,
                    &span,
                    path,
                    format!(
                        "[[block]] domain '{domain}' is also a [[partner]] domain (line {})",
                        self.line_of(at)
                    ),
                ));
            }
            if let Some(i) = blocks.iter().position(|b| b.domain == domain) {
                let first = lines.get(i).copied().unwrap_or_default();
                return Err(self.error(
                    ErrorKind::Conflict,
                    &span,
                    path,
                    format!("[[block]] domain '{domain}' is already blocked on line {first}"),
                ));
            }
            lines.push(self.line_of(&span));
            blocks.push(Block { domain });
        }
        if let Some(first) = raw.first() {
            if gateway.federation != FederationMode::DenyList {
                self.notice(
                    Level::Warning,
                    NoticeKind::NoEffect,
                    &first.span(),
                    "block",
                    format!(
                        "[[block]] has no effect unless federation = \"deny-list\" in [gateway] (it is \"{}\")",
                        gateway.federation
                    ),
                );
            }
        }
        Ok(blocks)
    }

    fn access(&self, entry: &Spanned<RawAccess>) -> Result<AccessRule, ConfigError> {
        let a: &RawAccess = entry.get_ref();
        let mut users = Vec::with_capacity(a.users.get_ref().len());
        for pattern in a.users.get_ref() {
            if pattern.get_ref().trim().is_empty() {
                return Err(self.invalid(&pattern.span(), "access.users", "an empty pattern"));
            }
            users.push(pattern.get_ref().trim().to_owned());
        }
        if users.is_empty() {
            return Err(self.invalid(
                &a.users.span(),
                "access.users",
                "empty; a rule needs at least one pattern such as \"*@example.com\"",
            ));
        }
        Ok(AccessRule {
            users,
            xmpp: a.xmpp.unwrap_or(false),
        })
    }

    /// One notice per inactive key the file sets, at its first setting.
    fn inactive(&mut self, root: &DeTable<'_>) {
        let mut leaves = error::leaves(root);
        leaves.sort_by_key(|(_, offset)| *offset);
        let mut reported: Vec<String> = Vec::new();
        for (path, offset) in leaves {
            let inactive = INACTIVE_KEYS.iter().any(|key| {
                path == *key
                    || path
                        .strip_prefix(key)
                        .is_some_and(|rest| rest.starts_with('.'))
            });
            if !inactive || reported.contains(&path) {
                continue;
            }
            let message = format!(
                "{} is accepted but not active yet: this version does not act on it",
                describe_path(&path, ELEMENT_TABLES)
            );
            self.notice(
                Level::Info,
                NoticeKind::NotActiveYet,
                &(offset..offset),
                &path,
                message,
            );
            reported.push(path);
        }
    }
}
