//! The gateway's live state as data (issue 12): what `xfed status` prints
//! ([`Report::lines`]) and the status page of `[listen] metrics` renders
//! (`metrics::page`). The gateway builds it on request
//! ([`Gateway::report`](super::Gateway::report)); its size is that of the
//! gateway's own bounded tables, the configured partners and the last
//! [`RECENT_FAILURES`](super::RECENT_FAILURES) failures.

use crate::config::{Negotiation, PartnerType};
use crate::endpoint::SipTables;
use crate::xmpp::session::AuthMethod;

/// A running instance's state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// When it was taken (Unix seconds).
    pub unix: u64,
    /// The local domains.
    pub domains: Vec<String>,
    /// The links that replace s2s, one line each: to the XMPP server
    /// (component) or between edge and gateways (internal).
    pub links: Vec<String>,
    /// When our certificate expires (notAfter, Unix seconds), if we have
    /// one that can be read.
    pub certificate_expiry: Option<u64>,
    /// Each configured `[[partner]]`, in the configuration's order.
    pub partners: Vec<PartnerStatus>,
    /// Each s2s stream, by connection.
    pub streams: Vec<StreamStatus>,
    /// Each outbound route, by (local, remote).
    pub routes: Vec<RouteStatus>,
    /// The SIP side's table sizes, when it runs.
    pub sip: Option<SipTables>,
    /// The latest failures, oldest first.
    pub failures: Vec<Failure>,
}

/// One partner: its policy from the configuration, its live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerStatus {
    /// Its primary domain.
    pub domain: String,
    /// Its other domains.
    pub additional_domains: Vec<String>,
    /// `type`.
    pub partner_type: PartnerType,
    /// `tls`.
    pub tls: Negotiation,
    /// `sasl`.
    pub sasl: Negotiation,
    /// `dialback`.
    pub dialback: bool,
    /// Up, being set up, or down.
    pub state: LinkState,
    /// Authenticated streams from the partner.
    pub inbound: usize,
    /// Authenticated streams to the partner.
    pub outbound: usize,
    /// The latest failure that concerned one of its domains.
    pub last_failure: Option<Failure>,
}

/// Whether federation with a partner works now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// A stream with one of its domains is authenticated.
    Up,
    /// A route or stream is being set up, none authenticated yet.
    Connecting,
    /// Nothing live.
    Down,
}

impl LinkState {
    /// Its name, as `xfed status` and the page show it.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Connecting => "connecting",
            LinkState::Down => "down",
        }
    }
}

/// One s2s stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStatus {
    /// Its connection number.
    pub conn: u64,
    /// Opened by the peer.
    pub inbound: bool,
    /// Its domain pairs, (sender, target) as the initiator sees them:
    /// (local, remote) outbound, the authenticated pairs inbound.
    pub pairs: Vec<(String, String)>,
    /// How it authenticated, once it has.
    pub method: Option<AuthMethod>,
    /// The TLS version protecting it.
    pub tls: Option<&'static str>,
    /// When the peer's certificate expires (Unix seconds), if it gave one.
    pub certificate_expiry: Option<u64>,
    /// At least one pair is authenticated.
    pub established: bool,
    /// Bidi (XEP-0288) is on.
    pub bidi: bool,
}

/// One outbound route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStatus {
    /// Our domain.
    pub local: String,
    /// Theirs.
    pub remote: String,
    /// Where it is.
    pub link: RouteLink,
    /// Stanzas waiting for the stream.
    pub queued: usize,
}

/// Where a route is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteLink {
    /// Looking up the remote server.
    Resolving,
    /// Connecting or authenticating on this stream.
    Connecting(u64),
    /// Ready on this stream.
    Up(u64),
}

/// A failure (a warning event) and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Unix seconds.
    pub unix: u64,
    /// What happened, as the log says it (unescaped: peers' text).
    pub text: String,
}

/// The name `xfed status` and the page give an authentication method.
pub fn method_name(m: Option<AuthMethod>) -> &'static str {
    match m {
        Some(AuthMethod::Sasl) => "sasl-external",
        Some(AuthMethod::Dialback) => "dialback",
        Some(AuthMethod::DialbackByCertificate) => "dialback-by-certificate",
        None => "not-authenticated",
    }
}

impl StreamStatus {
    /// "inbound" or "outbound".
    pub fn direction(&self) -> &'static str {
        if self.inbound {
            "inbound"
        } else {
            "outbound"
        }
    }

    /// Its pairs as `a -> b, ...`, or that it has none yet.
    pub fn pairs_text(&self) -> String {
        if self.pairs.is_empty() {
            return "(no domain yet)".to_owned();
        }
        let pairs: Vec<String> = self
            .pairs
            .iter()
            .map(|(from, to)| format!("{from} -> {to}"))
            .collect();
        pairs.join(", ")
    }
}

impl Report {
    /// The `status` answer of the admin socket: one line per item,
    /// `domains`, then each group (partners, streams, routes, failures)
    /// after a count line.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!("domains {}", self.domains.join(" "))];
        lines.extend(self.links.iter().cloned());
        if let Some(t) = self.certificate_expiry {
            lines.push(format!("certificate valid-until={t}"));
        }
        lines.push(format!("partners {}", self.partners.len()));
        for p in &self.partners {
            let failure = p.last_failure.as_ref().map_or_else(String::new, |f| {
                format!(
                    " last-failure-at={} {}",
                    f.unix,
                    crate::logtext::escape(&f.text)
                )
            });
            lines.push(format!(
                "partner {} type={} tls={} sasl={} dialback={} {} in={} out={}{failure}",
                p.domain,
                p.partner_type,
                p.tls,
                p.sasl,
                p.dialback,
                p.state.as_str(),
                p.inbound,
                p.outbound,
            ));
        }
        lines.push(format!("streams {}", self.streams.len()));
        for s in &self.streams {
            let cert = s
                .certificate_expiry
                .map_or_else(|| "none".to_owned(), |t| format!("valid-until={t}"));
            lines.push(format!(
                "stream {} {} {} {} tls={} cert={cert} {}{}",
                s.conn,
                s.direction(),
                s.pairs_text(),
                method_name(s.method),
                s.tls.unwrap_or("none"),
                if s.established {
                    "established"
                } else {
                    "negotiating"
                },
                if s.bidi { " bidi" } else { "" },
            ));
        }
        lines.push(format!("routes {}", self.routes.len()));
        for r in &self.routes {
            let state = match r.link {
                RouteLink::Resolving => "resolving".to_owned(),
                RouteLink::Up(conn) => format!("up on stream {conn}"),
                RouteLink::Connecting(conn) => format!("connecting on stream {conn}"),
            };
            lines.push(format!(
                "route {} -> {} {state}, {} queued",
                r.local, r.remote, r.queued
            ));
        }
        if let Some(t) = &self.sip {
            lines.push(format!(
                "sip transactions={} queued-messages={} subscriptions={} watchers={} publications={}",
                t.transactions, t.queued_messages, t.subscriptions, t.watchers, t.publications
            ));
        }
        lines.push(format!("failures {}", self.failures.len()));
        for f in &self.failures {
            lines.push(format!(
                "failure at={} {}",
                f.unix,
                crate::logtext::escape(&f.text)
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_the_status_format() {
        let r = Report {
            unix: 10,
            domains: vec!["a.test".into()],
            links: vec![],
            certificate_expiry: Some(2524608000),
            partners: vec![PartnerStatus {
                domain: "b.test".into(),
                additional_domains: vec![],
                partner_type: PartnerType::Federated,
                tls: Negotiation::Required,
                sasl: Negotiation::Optional,
                dialback: true,
                state: LinkState::Up,
                inbound: 0,
                outbound: 1,
                last_failure: Some(Failure {
                    unix: 5,
                    text: "bad\nline".into(),
                }),
            }],
            streams: vec![StreamStatus {
                conn: 3,
                inbound: false,
                pairs: vec![("a.test".into(), "b.test".into())],
                method: Some(AuthMethod::Dialback),
                tls: Some("TLSv1_3"),
                certificate_expiry: None,
                established: true,
                bidi: false,
            }],
            routes: vec![RouteStatus {
                local: "a.test".into(),
                remote: "b.test".into(),
                link: RouteLink::Up(3),
                queued: 0,
            }],
            sip: None,
            failures: vec![],
        };
        let lines = r.lines();
        assert_eq!(
            lines,
            [
                "domains a.test",
                "certificate valid-until=2524608000",
                "partners 1",
                "partner b.test type=federated tls=required sasl=optional dialback=true up in=0 out=1 last-failure-at=5 bad\\nline",
                "streams 1",
                "stream 3 outbound a.test -> b.test dialback tls=TLSv1_3 cert=none established",
                "routes 1",
                "route a.test -> b.test up on stream 3, 0 queued",
                "failures 0",
            ]
        );
    }
}
