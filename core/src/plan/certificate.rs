//! The certificate summary: which names the certificate must carry,
//! which it carries, when it expires, and whether it can serve as a TLS
//! client certificate (SASL EXTERNAL on the streams xfed opens).

use rustls::pki_types::CertificateDer;
use serde::Serialize;

use crate::config::Config;
use crate::tls::{cert_identities, cert_not_after, cert_tls_usage, Identities};

/// How long before its expiry a certificate is worth a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// One name the certificate must (or should) carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Needed {
    /// The name.
    pub name: String,
    /// Whether a partner fails without it (`false`: recommended).
    pub required: bool,
    /// Who checks it.
    pub why: &'static str,
    /// Whether the configured certificate carries it (`None`: the file
    /// could not be read).
    pub carried: Option<bool>,
}

/// The configured certificate as read, and what it must be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertificatePlan {
    /// `tls.certificate`, as the instance resolves it.
    pub file: String,
    /// Why the file could not be used, if it could not.
    pub error: Option<String>,
    /// The names it must or should carry.
    pub needed: Vec<Needed>,
    /// The XMPP identities it carries (`DNS:`, `SRVName:`, `xmppAddr:`).
    pub carried: Vec<String>,
    /// notAfter, Unix seconds.
    pub not_after: Option<u64>,
    /// Whole days from now to notAfter (negative once expired).
    pub days_left: Option<i64>,
    /// Whether it may authenticate a TLS client (extKeyUsage clientAuth,
    /// or no extKeyUsage at all).
    pub client_auth: Option<bool>,
}

/// The summary for `config`'s local domains and the SRV target `host`,
/// from the chain read from `file` (or why it could not be read).
pub fn summary(
    config: &Config,
    host: &str,
    file: &str,
    chain: Result<&[CertificateDer<'_>], String>,
    unix_now: u64,
) -> CertificatePlan {
    let mut plan = CertificatePlan {
        file: file.to_owned(),
        error: None,
        needed: Vec::new(),
        carried: Vec::new(),
        not_after: None,
        days_left: None,
        client_auth: None,
    };
    let leaf = match chain {
        Ok([leaf, ..]) => Some(leaf),
        Ok([]) => {
            plan.error = Some("no certificate in the file".to_owned());
            None
        }
        Err(e) => {
            plan.error = Some(e);
            None
        }
    };
    let ids: Option<Identities> = leaf.and_then(|l| match cert_identities(l) {
        Ok(ids) => Some(ids),
        Err(e) => {
            plan.error = Some(e.to_string());
            None
        }
    });
    for d in &config.gateway.domains {
        plan.needed.push(Needed {
            name: d.clone(),
            required: true,
            why: "local domain: partners check it on every stream (RFC 6120 13.7.2)",
            carried: ids.as_ref().map(|i| i.matches(d)),
        });
    }
    if !config.gateway.domains.iter().any(|d| d == host) {
        plan.needed.push(Needed {
            name: host.to_owned(),
            required: false,
            why: "SRV target: SIP over TLS clients and pre-RFC 6125 servers check the host",
            carried: ids.as_ref().map(|i| i.matches(host)),
        });
    }
    if let Some(ids) = &ids {
        plan.carried = ids.names().iter().map(ToString::to_string).collect();
    }
    if let Some(leaf) = leaf {
        if let Ok(t) = cert_not_after(leaf) {
            plan.not_after = Some(t);
            plan.days_left = Some(days_between(unix_now, t));
        }
        plan.client_auth = cert_tls_usage(leaf).ok().map(|u| u.client);
    }
    plan
}

/// Whole days from `now` to `then` (Unix seconds), rounded toward zero.
pub fn days_between(now: u64, then: u64) -> i64 {
    let diff = i128::from(then) - i128::from(now);
    i64::try_from(diff / 86_400).unwrap_or(i64::MAX)
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC` (for the table; the JSON
/// has the number).
pub fn utc(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX);
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(2_524_608_000), "2050-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400 + 3_661), "2000-02-29 01:01:01 UTC");
        assert_eq!(days_between(0, 86_400 * 3 + 5), 3);
        assert_eq!(days_between(86_400 * 2, 0), -2);
    }
}
