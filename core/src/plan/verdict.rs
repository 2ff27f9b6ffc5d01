//! What `xfed plan --check` found, one line per thing checked, each ok,
//! warning or error with its reason; the judgements that need no I/O are
//! here (the host gathers the facts: answers, probe outcomes).

use std::fmt;

use rustls::pki_types::CertificateDer;
use serde::Serialize;

use crate::config::{Config, Negotiation};
use crate::dns::{Answer, Srv};
use crate::tls::{check_peer, PeerCert, TrustAnchors, UntrustedReason};

use super::certificate::{utc, CertificatePlan, EXPIRY_WARNING_DAYS};
use super::probe::{ProbeKind, Reached};

/// How a line ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As planned.
    Ok,
    /// Works, but not as well as it could (or soon will not).
    Warning,
    /// Broken: some partner cannot federate because of it.
    Error,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Error => "error",
        })
    }
}

/// One thing checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    /// `listener`, `certificate`, `dns` or `partner`.
    pub section: &'static str,
    /// What was checked (a listener, a name, a record, a partner).
    pub subject: String,
    /// The verdict.
    pub status: Status,
    /// Why.
    pub reason: String,
}

impl Line {
    /// A line.
    pub fn new(
        section: &'static str,
        subject: impl Into<String>,
        status: Status,
        reason: impl Into<String>,
    ) -> Line {
        Line {
            section,
            subject: subject.into(),
            status,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<11} {}: {}: {}",
            self.section, self.subject, self.status, self.reason
        )
    }
}

/// The certificate file's own lines: read, names, expiry, client use.
pub fn certificate_lines(plan: &CertificatePlan) -> Vec<Line> {
    let section = "certificate";
    let mut lines = Vec::new();
    if let Some(e) = &plan.error {
        lines.push(Line::new(section, &plan.file, Status::Error, e.clone()));
        return lines;
    }
    for n in &plan.needed {
        let line = match (n.carried, n.required) {
            (Some(true), _) => Line::new(section, &n.name, Status::Ok, "carried"),
            (_, true) => Line::new(
                section,
                &n.name,
                Status::Error,
                "not carried: partners cannot authenticate this domain by certificate",
            ),
            (_, false) => Line::new(
                section,
                &n.name,
                Status::Warning,
                format!("not carried ({})", n.why),
            ),
        };
        lines.push(line);
    }
    if let (Some(t), Some(days)) = (plan.not_after, plan.days_left) {
        let (status, reason) = if days < 0 || t == 0 {
            (Status::Error, format!("expired on {}", utc(t)))
        } else if days < EXPIRY_WARNING_DAYS {
            (
                Status::Warning,
                format!("expires on {} ({days} days left)", utc(t)),
            )
        } else {
            (
                Status::Ok,
                format!("valid until {} ({days} days left)", utc(t)),
            )
        };
        lines.push(Line::new(section, "notAfter", status, reason));
    }
    match plan.client_auth {
        Some(true) => lines.push(Line::new(
            section,
            "client use",
            Status::Ok,
            "may authenticate xfed as a TLS client (SASL EXTERNAL on streams it opens)",
        )),
        Some(false) => lines.push(Line::new(
            section,
            "client use",
            Status::Warning,
            "extKeyUsage lacks clientAuth: peers cannot take SASL EXTERNAL on streams xfed opens; dialback is used",
        )),
        None => {}
    }
    lines
}

/// Whether every partner (and open federation) can do without a trusted
/// certificate: dialback allowed everywhere.
pub fn dialback_everywhere(config: &Config) -> bool {
    config
        .partners
        .iter()
        .all(|p| p.policy.dialback || p.policy.sasl == Negotiation::NotSupported)
}

/// How far a probe got, as the line of what was probed.
pub fn reach_line(
    section: &'static str,
    subject: &str,
    kind: ProbeKind,
    outcome: &Result<Reached, String>,
) -> Line {
    match outcome {
        Err(e) => Line::new(section, subject, Status::Error, e.clone()),
        Ok(r) => {
            let how = match kind {
                ProbeKind::StartTls => "STARTTLS",
                ProbeKind::DirectTls => "direct TLS",
                ProbeKind::Tls => "TLS",
                ProbeKind::Plain => "stream without TLS",
            };
            let version = r.tls_version.map(|v| format!(", {v}")).unwrap_or_default();
            Line::new(section, subject, Status::Ok, format!("{how}{version}"))
        }
    }
}

/// The chain a server presented, judged against `trust` for `domain` at
/// `unix_now`: trusted is ok; expired or not naming the domain is an
/// error; otherwise (self-signed, unknown issuer) a warning when
/// dialback can take over, an error when `dialback` is false.
pub fn chain_line(
    section: &'static str,
    subject: &str,
    chain: &[CertificateDer<'_>],
    trust: &TrustAnchors,
    unix_now: u64,
    domain: &str,
    dialback: bool,
) -> Line {
    let subject = format!("{subject} certificate for {domain}");
    match check_peer(chain, trust, unix_now, domain) {
        PeerCert::Trusted => Line::new(section, subject, Status::Ok, "trusted by tls.trust"),
        PeerCert::None => Line::new(section, subject, Status::Error, "no certificate presented"),
        PeerCert::Untrusted { reason } => {
            let fatal = matches!(
                reason,
                UntrustedReason::Expired | UntrustedReason::NameMismatch
            );
            let (status, reason) = match (fatal, dialback) {
                (true, _) => (Status::Error, reason.to_string()),
                (false, true) => (
                    Status::Warning,
                    format!("{reason}; SASL EXTERNAL impossible, dialback will be used"),
                ),
                (false, false) => (
                    Status::Error,
                    format!("{reason}; dialback is off, so streams fail"),
                ),
            };
            Line::new(section, subject, status, reason)
        }
    }
}

/// An SRV lookup's lines: the record set (or its absence) judged against
/// the listener ports `ports` of its kind; returns the usable records,
/// whose targets the host resolves and probes next. `required`: a
/// missing record is an error (STARTTLS), else a warning (direct TLS,
/// when listeners exist for it).
pub fn srv_lines(
    name: &str,
    answer: &Result<Answer, String>,
    ports: &[u16],
    required: bool,
) -> (Vec<Line>, Vec<Srv>) {
    let section = "dns";
    let subject = format!("{name} SRV");
    let missing = |why: &str| {
        if required {
            Line::new(
                section,
                &subject,
                Status::Error,
                format!("{why}: partners cannot find the s2s listener"),
            )
        } else {
            Line::new(
                section,
                &subject,
                Status::Warning,
                format!("{why}: partners will not use direct TLS"),
            )
        }
    };
    match answer {
        Err(e) => (
            vec![Line::new(section, &subject, Status::Error, e.clone())],
            Vec::new(),
        ),
        Ok(Answer::NxDomain { .. }) => (vec![missing("no such name")], Vec::new()),
        Ok(Answer::NoRecords { .. }) | Ok(Answer::Addrs { .. }) | Ok(Answer::Truncated) => {
            (vec![missing("no SRV record")], Vec::new())
        }
        Ok(Answer::Srv { records, .. }) => {
            let mut lines = Vec::new();
            let mut usable = Vec::new();
            for r in records {
                let subject = format!(
                    "{name} SRV {} {} {} {}",
                    r.priority, r.weight, r.port, r.target
                );
                if r.is_unavailable() {
                    lines.push(Line::new(
                        section,
                        subject,
                        Status::Error,
                        "target '.': the service is declared unavailable",
                    ));
                } else if !ports.contains(&r.port) {
                    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                    lines.push(Line::new(
                        section,
                        subject,
                        Status::Error,
                        format!(
                            "port {} is no listener of this kind (configured: {})",
                            r.port,
                            if list.is_empty() {
                                "none".to_owned()
                            } else {
                                list.join(", ")
                            }
                        ),
                    ));
                } else {
                    lines.push(Line::new(section, subject, Status::Ok, "published"));
                    usable.push(r.clone());
                }
            }
            (lines, usable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::{Eku, LeafSpec, TestCa, TestCert, NOW};
    use crate::tls::{cert_tls_usage, TlsUsage};

    fn srv(port: u16, target: &str) -> Srv {
        Srv {
            priority: 0,
            weight: 5,
            port,
            target: target.to_owned(),
        }
    }

    #[test]
    fn srv_records_are_judged_against_the_listener_ports() {
        let answer = Ok(Answer::Srv {
            ttl: 60,
            records: vec![
                srv(5269, "xmpp.a.test"),
                srv(5999, "xmpp.a.test"),
                srv(5269, "."),
            ],
        });
        let (lines, usable) = srv_lines("_xmpp-server._tcp.a.test", &answer, &[5269], true);
        let statuses: Vec<Status> = lines.iter().map(|l| l.status).collect();
        assert_eq!(statuses, [Status::Ok, Status::Error, Status::Error]);
        assert_eq!(
            lines[1].reason,
            "port 5999 is no listener of this kind (configured: 5269)"
        );
        assert_eq!(usable, [srv(5269, "xmpp.a.test")]);

        let none = Ok(Answer::NxDomain { ttl: 0 });
        let (lines, usable) = srv_lines("_xmpp-server._tcp.a.test", &none, &[5269], true);
        assert_eq!(lines[0].status, Status::Error);
        assert!(usable.is_empty());
        let (lines, _) = srv_lines("_xmpps-server._tcp.a.test", &none, &[5270], false);
        assert_eq!(lines[0].status, Status::Warning);
        assert_eq!(
            lines[0].reason,
            "no such name: partners will not use direct TLS"
        );
    }

    #[test]
    fn chains_are_judged_as_the_gateway_judges_peers() {
        let ca = TestCa::new("verdict CA");
        let good = ca.issue(&LeafSpec::xmpp_server("a.test"));
        let trust = ca.trust_anchors();
        let line = chain_line("listener", "s2s", good.chain(), &trust, NOW, "a.test", true);
        assert_eq!(line.status, Status::Ok);
        let line = chain_line("listener", "s2s", good.chain(), &trust, NOW, "b.test", true);
        assert_eq!(
            (line.status, line.reason.as_str()),
            (Status::Error, "certificate does not name the domain")
        );
        let own = TestCert::self_signed(&LeafSpec::xmpp_server("a.test"));
        let judge = |dialback| {
            chain_line(
                "partner",
                "a.test",
                own.chain(),
                &trust,
                NOW,
                "a.test",
                dialback,
            )
        };
        let line = judge(true);
        assert_eq!(line.status, Status::Warning);
        assert_eq!(
            line.reason,
            "self-signed certificate; SASL EXTERNAL impossible, dialback will be used"
        );
        let line = judge(false);
        assert_eq!(line.status, Status::Error);
    }

    #[test]
    fn client_use_follows_the_extended_key_usage() {
        let usage =
            |eku| cert_tls_usage(TestCert::self_signed(&LeafSpec::new().eku(eku)).cert_der());
        let any = TlsUsage {
            restricted: false,
            server: true,
            client: true,
        };
        assert_eq!(usage(Eku::Absent), Ok(any));
        assert!(usage(Eku::ServerAndClient).is_ok_and(|u| u.client && u.server && u.restricted));
        assert!(usage(Eku::ServerAuth).is_ok_and(|u| !u.client && u.server));
        assert!(usage(Eku::EmailOnly).is_ok_and(|u| !u.client && !u.server));
    }
}
