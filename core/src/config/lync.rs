//! `xfed import-lync`: a Lync or Skype for Business XMPP gateway's settings,
//! as `Get-CsXmppAllowedPartner | Format-List` and
//! `Get-CsXmppGatewayConfiguration | Format-List` print them (and, for the
//! local domains, `Get-CsSipDomain | Format-List`), turned into xfed's
//! `[gateway]` and `[[partner]]` TOML, with a comment for every setting
//! that could not be carried over and why. Text in, text out; the output
//! is checked with [`super::parse`] before it is returned.
//!
//! Format-List prints records separated by blank lines, one `Name : value`
//! per line with the colons aligned; a value too long for the console goes
//! on over indented lines, and lists print as `{a, b}`.

use std::fmt::Write as _;

use super::{Negotiation, StreamPolicy, Verdict};

/// Lync's CamelCase spelling of an enum value (`PublicVerified`,
/// `NotSupported`) in xfed's kebab-case (`public-verified`,
/// `not-supported`); a value already in kebab-case is returned as is.
pub fn kebab(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for (i, c) in value.trim().chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A boolean as an operator or PowerShell writes it (`true`, `True`,
/// `$true`).
pub fn boolean(value: &str) -> Option<bool> {
    match value
        .trim()
        .trim_start_matches('$')
        .to_ascii_lowercase()
        .as_str()
    {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The text of a file as PowerShell saved it: `>` in Windows PowerShell
/// writes UTF-16LE with a byte order mark, `Out-File -Encoding utf8` UTF-8
/// with one; either, UTF-16BE, or plain UTF-8.
pub fn decode(bytes: &[u8]) -> Result<String, String> {
    let utf16 = |rest: &[u8], le: bool| {
        let units = rest.chunks_exact(2).map(|p| {
            if le {
                u16::from_le_bytes([p[0], p[1]])
            } else {
                u16::from_be_bytes([p[0], p[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| "not valid UTF-16 text".to_owned())
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8(rest),
        _ => utf8(bytes),
    }
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| format!("not UTF-8 or UTF-16 text: {e}"))
}

/// One Format-List record: its fields in order, continuation lines joined.
type Record = Vec<(String, String)>;

/// The records of Format-List text; lines that are neither a field, a
/// continuation nor a PowerShell prompt are returned apart (line number,
/// text) so that the output can say they were skipped.
fn records(text: &str) -> (Vec<Record>, Vec<(usize, String)>) {
    let mut out: Vec<Record> = Vec::new();
    let mut current: Record = Vec::new();
    let mut stray = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r').trim_end_matches('\u{feff}');
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            match current.last_mut() {
                Some((_, value)) => {
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(line.trim());
                }
                None => stray.push((n + 1, line.trim().to_owned())),
            }
            continue;
        }
        if line.starts_with("PS ") || line.starts_with("PS>") {
            continue;
        }
        match field(line) {
            Some((name, value)) => current.push((name.to_owned(), value.to_owned())),
            None => stray.push((n + 1, line.trim().to_owned())),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    (out, stray)
}

/// `Name    : value` (the name one word of letters and digits).
fn field(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim_end();
    let word = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    word.then(|| (name, value.trim()))
}

/// `{a, b}` (or a bare `a, b`) as its items; `{}` and empty as none.
fn list(value: &str) -> Vec<String> {
    let inner = value.trim();
    let inner = inner.strip_prefix('{').unwrap_or(inner);
    let inner = inner.strip_suffix('}').unwrap_or(inner);
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A TOML basic string.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quoted_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    format!("[{}]", items.join(", "))
}

/// A comment line, its text kept on one line.
fn comment(out: &mut String, text: &str) {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    out.push_str("# ");
    out.push_str(&one_line);
    out.push('\n');
}

/// Fields that name a record of `Get-CsXmppAllowedPartner`.
const PARTNER_FIELDS: &[&str] = &[
    "PartnerType",
    "TlsNegotiation",
    "SaslNegotiation",
    "SupportDialbackNegotiation",
    "ProxyFqdn",
];

/// Fields that name a record of `Get-CsXmppGatewayConfiguration`.
const GATEWAY_FIELDS: &[&str] = &[
    "PartnerConnectionLimit",
    "StreamEstablishmentTimeout",
    "StreamInactivityTimeout",
    "KeepAliveInterval",
    "SubscriptionRefreshInterval",
    "DialbackPassphrase",
    "EnableLoggingAllMessageBodies",
];

fn has_any(record: &Record, names: &[&str]) -> bool {
    record.iter().any(|(n, _)| names.contains(&n.as_str()))
}

/// A `Get-CsSipDomain` record: `Name` with `IsDefault` or `Authoritative`.
fn sip_domain(record: &Record) -> Option<&str> {
    if !has_any(record, &["IsDefault", "Authoritative"]) {
        return None;
    }
    record
        .iter()
        .find(|(n, _)| n == "Name")
        .map(|(_, v)| v.as_str())
}

/// What an import made: the TOML and what it could not carry over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The configuration, comments included; it passes [`super::parse`].
    pub toml: String,
    /// Partners written.
    pub partners: usize,
    /// Settings and records not carried over, one line each (also
    /// comments in `toml`).
    pub skipped: Vec<String>,
}

/// Imports Format-List text. `domains` are the local SIP domains; when
/// empty, those of `Get-CsSipDomain` records in the text are used, and
/// without either the import fails (xfed needs its local domains).
pub fn import(text: &str, domains: &[String]) -> Result<Imported, String> {
    let (records, stray) = records(text);
    let mut skipped: Vec<String> = stray
        .iter()
        .map(|(n, l)| format!("line {n} is not a Format-List field and was skipped: {l}"))
        .collect();
    let mut local: Vec<String> = domains.to_vec();
    let found_sip_domains: Vec<String> = records
        .iter()
        .filter_map(sip_domain)
        .map(str::to_owned)
        .collect();
    if local.is_empty() {
        local = found_sip_domains;
    }
    if local.is_empty() {
        return Err("no local domain: give them with --domains, or add the output of `Get-CsSipDomain | Format-List` to the file".to_owned());
    }
    let mut gateway = String::new();
    let mut gateway_seen = false;
    let mut partners = String::new();
    let mut partner_domains: Vec<String> = Vec::new();
    let mut written = 0;
    for record in &records {
        if sip_domain(record).is_some() {
            continue;
        }
        if has_any(record, PARTNER_FIELDS) {
            if partner(record, &mut partners, &mut partner_domains, &mut skipped) {
                written += 1;
            }
        } else if has_any(record, GATEWAY_FIELDS) {
            if gateway_seen {
                skipped.push(
                    "a second Get-CsXmppGatewayConfiguration record was skipped: xfed has one [gateway]"
                        .to_owned(),
                );
                continue;
            }
            gateway_seen = true;
            gateway_settings(record, &mut gateway, &mut skipped);
        } else {
            let first = record.first().map_or("", |(n, _)| n.as_str());
            skipped.push(format!(
                "a record that is neither an XMPP partner nor the gateway configuration (first field {first}) was skipped"
            ));
        }
    }
    let mut out = String::new();
    comment(
        &mut out,
        "Imported from Lync / Skype for Business by `xfed import-lync`.",
    );
    comment(&mut out, "Not carried over:");
    if skipped.is_empty() {
        comment(&mut out, "  nothing");
    }
    for s in &skipped {
        comment(&mut out, &format!("  {s}"));
    }
    comment(
        &mut out,
        "Who may federate was Lync's external access policy (EnableXmppAccess), which these",
    );
    comment(
        &mut out,
        "cmdlets do not print: add [[access]] rules (`xfed access add`) to choose.",
    );
    out.push_str("\n[gateway]\n");
    let _ = writeln!(out, "domains = {}", quoted_list(&local));
    out.push_str(&gateway);
    out.push_str(&partners);
    super::parse(&out).map_err(|e| format!("the imported configuration is invalid: {e}"))?;
    Ok(Imported {
        toml: out,
        partners: written,
        skipped,
    })
}

/// One `[[partner]]` from a `Get-CsXmppAllowedPartner` record; whether
/// it was written (not left out).
fn partner(
    record: &Record,
    out: &mut String,
    seen: &mut Vec<String>,
    skipped: &mut Vec<String>,
) -> bool {
    let get = |name: &str| {
        record
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let Some(domain) = get("Domain").or_else(|| get("Identity")) else {
        skipped.push("a partner record without Domain or Identity was skipped".to_owned());
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    if seen.contains(&domain) {
        skipped.push(format!(
            "partner {domain}: listed twice, the second was skipped"
        ));
        return false;
    }
    let mut lines: Vec<String> = vec![format!("domain = {}", quoted(&domain))];
    let mut notes: Vec<String> = Vec::new();
    let mut policy = StreamPolicy {
        tls: Negotiation::Required,
        sasl: Negotiation::Required,
        dialback: true,
        keepalive: true,
    };
    for (name, value) in record {
        let value = value.trim();
        let note = |why: &str| format!("partner {domain}: {name} {value:?} {why}");
        match name.as_str() {
            "Domain" => {}
            "Identity" => {
                if !value.eq_ignore_ascii_case(&domain) {
                    notes.push(note("differs from Domain; Domain was used"));
                }
            }
            "AdditionalDomains" => {
                let items: Vec<String> =
                    list(value).iter().map(|d| d.to_ascii_lowercase()).collect();
                if !items.is_empty() {
                    lines.push(format!("additional_domains = {}", quoted_list(&items)));
                }
            }
            "PartnerType" => match kebab(value).as_str() {
                t @ ("federated" | "public-verified" | "public-unverified") => {
                    lines.push(format!("type = {}", quoted(t)));
                }
                _ => notes.push(note(
                    "is no PartnerType; the default public-unverified applies",
                )),
            },
            "TlsNegotiation" | "SaslNegotiation" => {
                let key = if name == "TlsNegotiation" {
                    "tls"
                } else {
                    "sasl"
                };
                let parsed = match kebab(value).as_str() {
                    "required" => Some(Negotiation::Required),
                    "optional" => Some(Negotiation::Optional),
                    "not-supported" => Some(Negotiation::NotSupported),
                    _ => None,
                };
                match parsed {
                    Some(n) => {
                        if key == "tls" {
                            policy.tls = n;
                        } else {
                            policy.sasl = n;
                        }
                        lines.push(format!("{key} = {}", quoted(&kebab(value))));
                    }
                    None => notes.push(note(
                        "is not Required, Optional or NotSupported; the default required applies",
                    )),
                }
            }
            "SupportDialbackNegotiation" | "EnableKeepAlive" => {
                let key = if name == "EnableKeepAlive" {
                    "keepalive"
                } else {
                    "dialback"
                };
                match boolean(value) {
                    Some(b) => {
                        if key == "dialback" {
                            policy.dialback = b;
                        } else {
                            policy.keepalive = b;
                        }
                        lines.push(format!("{key} = {b}"));
                    }
                    None => notes.push(note("is neither True nor False; the default true applies")),
                }
            }
            "ProxyFqdn" => {
                if !value.is_empty() {
                    lines.push(format!("connect = {}", quoted(value)));
                }
            }
            "ConnectionLimit" => match value.parse::<u32>() {
                Ok(0) => notes.push(note(
                    "would refuse every stream; gateway.partner_connection_limit applies",
                )),
                Ok(n) => lines.push(format!("connection_limit = {n}")),
                Err(_) if value.is_empty() => {}
                Err(_) => notes.push(note(
                    "is not a whole number; gateway.partner_connection_limit applies",
                )),
            },
            "Description" => {
                if !value.is_empty() {
                    lines.push(format!("description = {}", quoted(value)));
                }
            }
            _ => {
                if !value.is_empty() {
                    notes.push(note("has no xfed equivalent"));
                }
            }
        }
    }
    seen.push(domain.clone());
    out.push('\n');
    for n in &notes {
        comment(out, &format!("Not carried over: {n}"));
    }
    skipped.extend(notes);
    if let Verdict::Invalid(why) = policy.verdict() {
        let reason = format!("partner {domain}: left out (commented), since {why}");
        comment(out, &format!("Left out: {why}."));
        out.push_str("# [[partner]]\n");
        for l in &lines {
            let _ = writeln!(out, "# {l}");
        }
        skipped.push(reason);
        return false;
    }
    out.push_str("[[partner]]\n");
    for l in &lines {
        out.push_str(l);
        out.push('\n');
    }
    true
}

/// `[gateway]` keys from a `Get-CsXmppGatewayConfiguration` record.
fn gateway_settings(record: &Record, out: &mut String, skipped: &mut Vec<String>) {
    for (name, value) in record {
        let value = value.trim();
        let note = |why: &str| format!("gateway: {name} {value:?} {why}");
        let count =
            |key: &str, out: &mut String, skipped: &mut Vec<String>| match value.parse::<u32>() {
                Ok(0) => skipped.push(note("is zero, which xfed refuses; its default applies")),
                Ok(n) => {
                    let _ = writeln!(out, "{key} = {n}");
                }
                Err(_) => skipped.push(note("is not a whole number; the default applies")),
            };
        let seconds = |key: &str, out: &mut String, skipped: &mut Vec<String>| match seconds(value)
        {
            Some(0) => skipped.push(note("is zero, which xfed refuses; its default applies")),
            Some(s) => {
                let _ = writeln!(out, "{key} = \"{s}s\"");
            }
            None => skipped.push(note("is not a number of seconds; the default applies")),
        };
        match name.as_str() {
            "Identity" | "Instance" => {
                if !value.eq_ignore_ascii_case("global") && !value.is_empty() {
                    skipped.push(note(
                        "is not the global configuration; xfed has one [gateway] and took this one",
                    ));
                }
            }
            "ConnectionLimit" => count("connection_limit", out, skipped),
            "PartnerConnectionLimit" => count("partner_connection_limit", out, skipped),
            "StreamEstablishmentTimeout" => seconds("stream_establishment_timeout", out, skipped),
            "StreamInactivityTimeout" => seconds("stream_inactivity_timeout", out, skipped),
            "KeepAliveInterval" => seconds("keepalive_interval", out, skipped),
            "SubscriptionRefreshInterval" => seconds("subscription_refresh_interval", out, skipped),
            "DialbackPassphrase" => {
                if value.is_empty() || value.chars().all(|c| c == '*') {
                    skipped.push(format!(
                        "gateway: DialbackPassphrase is not in the output{}; xfed makes and keeps a secret of its own (set gateway.dialback_secret to share one between instances)",
                        if value.is_empty() { "" } else { " (masked)" }
                    ));
                } else {
                    let _ = writeln!(out, "dialback_secret = {}", quoted(value));
                }
            }
            "EnableLoggingAllMessageBodies" => match boolean(value) {
                Some(b) => {
                    let _ = writeln!(out, "log_message_bodies = {b}");
                }
                None => skipped.push(note("is neither True nor False; the default false applies")),
            },
            _ => {
                if !value.is_empty() {
                    skipped.push(note("has no xfed equivalent"));
                }
            }
        }
    }
}

/// Lync's timeouts: whole seconds (UInt32), or a TimeSpan such as
/// `00:01:00` or `1.00:00:00`.
fn seconds(value: &str) -> Option<u64> {
    if let Ok(n) = value.parse::<u64>() {
        return Some(n);
    }
    let (days, clock) = match value.split_once('.') {
        Some((d, rest)) if rest.contains(':') => (d.parse::<u64>().ok()?, rest),
        _ => (0, value),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let [h, m, s] = parts.as_slice() else {
        return None;
    };
    let s = s.split('.').next()?;
    let (h, m, s) = (
        h.parse::<u64>().ok()?,
        m.parse::<u64>().ok()?,
        s.parse::<u64>().ok()?,
    );
    Some(((days * 24 + h) * 60 + m) * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Negotiation, PartnerType};
    use std::time::Duration;

    /// As a Lync 2013 Management Shell prints it (colons aligned, a long
    /// list and description wrapped over indented lines); made CRLF below.
    const PARTNERS: &str = r#"
PS C:\> Get-CsXmppAllowedPartner | Format-List


Identity                   : jabber.org
Domain                     : jabber.org
AdditionalDomains          : {conference.jabber.org, muc.jabber.org, chat.jabber.org,
                             im.jabber.org}
PartnerType                : Federated
ProxyFqdn                  : 
TlsNegotiation             : Required
SaslNegotiation            : Optional
SupportDialbackNegotiation : True
EnableKeepAlive            : True
ConnectionLimit            : 50
Description                : Jabber.org: our partner since 2012, contact
                             admin@jabber.org for "anything"

Identity                   : gmail.com
Domain                     : gmail.com
AdditionalDomains          : {}
PartnerType                : PublicUnverified
ProxyFqdn                  : xmpp-server.l.google.com
TlsNegotiation             : NotSupported
SaslNegotiation            : NotSupported
SupportDialbackNegotiation : True
EnableKeepAlive            : False
ConnectionLimit            : 0
Description                : 

Identity                   : broken.example
Domain                     : broken.example
AdditionalDomains          : {}
PartnerType                : PublicVerified
TlsNegotiation             : Required
SaslNegotiation            : NotSupported
SupportDialbackNegotiation : False
EnableKeepAlive            : True
Element                    : <XmppAllowedPartner xmlns="urn:schema" />


"#;

    const GATEWAY: &str = "
Identity                      : Global
ConnectionLimit               : 1200
PartnerConnectionLimit        : 30
StreamEstablishmentTimeout    : 90
StreamInactivityTimeout       : 00:20:00
KeepAliveInterval             : 300
SubscriptionRefreshInterval   : 28800
DialbackPassphrase            : ********
EnableLoggingAllMessageBodies : False
XmppGatewayPort               : 5269
";

    const SIP_DOMAINS: &str = "
Identity      : example.com
Name          : example.com
IsDefault     : True
Authoritative : True

Identity      : sales.example.com
Name          : sales.example.com
IsDefault     : False
Authoritative : True
";

    #[test]
    fn partners_and_gateway_carry_over_with_what_could_not() {
        let text = format!("{PARTNERS}{GATEWAY}").replace('\n', "\r\n");
        let imported = import(&text, &["example.com".to_owned()]).unwrap();
        let toml = &imported.toml;
        let config = crate::config::parse(toml).unwrap().config;
        assert_eq!(config.gateway.domains, ["example.com"]);
        assert_eq!(config.gateway.connection_limit, 1200);
        assert_eq!(config.gateway.partner_connection_limit, 30);
        assert_eq!(
            config.gateway.stream_establishment_timeout,
            Duration::from_secs(90)
        );
        assert_eq!(
            config.gateway.stream_inactivity_timeout,
            Duration::from_secs(1200)
        );
        assert!(config.gateway.dialback_secret.is_none());
        assert_eq!(config.partners.len(), 2, "{toml}");
        let jabber = &config.partners[0];
        assert_eq!(jabber.domain, "jabber.org");
        assert_eq!(
            jabber.additional_domains,
            [
                "conference.jabber.org",
                "muc.jabber.org",
                "chat.jabber.org",
                "im.jabber.org"
            ]
        );
        assert_eq!(jabber.partner_type, PartnerType::Federated);
        assert_eq!(jabber.policy.sasl, Negotiation::Optional);
        assert_eq!(jabber.connection_limit, 50);
        assert_eq!(
            jabber.description.as_deref(),
            Some("Jabber.org: our partner since 2012, contact admin@jabber.org for \"anything\"")
        );
        let gmail = &config.partners[1];
        assert_eq!(gmail.policy.tls, Negotiation::NotSupported);
        assert!(!gmail.policy.keepalive);
        assert_eq!(
            gmail.connect.as_ref().map(|c| c.host.as_str()),
            Some("xmpp-server.l.google.com")
        );
        assert_eq!(gmail.connection_limit, 30, "0 falls back to the gateway's");
        // Everything not carried over is a comment, with its reason.
        for why in [
            "ConnectionLimit \"0\" would refuse every stream",
            "broken.example: left out",
            "Element",
            "DialbackPassphrase is not in the output (masked)",
            "XmppGatewayPort \"5269\" has no xfed equivalent",
            "EnableXmppAccess",
        ] {
            assert!(toml.contains(why), "{why}:\n{toml}");
        }
        assert!(
            toml.contains("# [[partner]]\n# domain = \"broken.example\""),
            "{toml}"
        );
        assert_eq!(imported.partners, 2);
        assert_eq!(imported.skipped.len(), 5, "{:?}", imported.skipped);
    }

    #[test]
    fn local_domains_come_from_get_cs_sip_domain() {
        let text = format!("{SIP_DOMAINS}\n{GATEWAY}");
        let imported = import(&text, &[]).unwrap();
        let config = crate::config::parse(&imported.toml).unwrap().config;
        assert_eq!(config.gateway.domains, ["example.com", "sales.example.com"]);
        assert!(config.partners.is_empty());
        let e = import(PARTNERS, &[]).unwrap_err();
        assert!(e.contains("--domains"), "{e}");
    }

    #[test]
    fn a_known_passphrase_and_stray_lines() {
        let text = "Garbage at the top\nIdentity : Global\nDialbackPassphrase : s3cr\"et\nKeepAliveInterval : 1.00:00:00\n\nIdentity : x.example\nDomain : x.example\nPartnerType : Federated\nDomain : x.example\n\nDomain : x.example\nPartnerType : Federated\n";
        let imported = import(text, &["example.com".to_owned()]).unwrap();
        let config = crate::config::parse(&imported.toml).unwrap().config;
        assert_eq!(
            config.gateway.dialback_secret.as_ref().map(|s| s.expose()),
            Some("s3cr\"et")
        );
        assert_eq!(
            config.gateway.keepalive_interval,
            Duration::from_secs(86_400)
        );
        assert!(imported.toml.contains("line 1 is not a Format-List field"));
        assert!(imported.toml.contains("listed twice"), "{}", imported.toml);
    }

    #[test]
    fn powershell_encodings() {
        let text = "Domain : a.example\r\nPartnerType : Federated\r\n";
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for u in text.encode_utf16() {
            le.extend(u.to_le_bytes());
            be.extend(u.to_be_bytes());
        }
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend(text.as_bytes());
        for bytes in [le, be, bom, text.as_bytes().to_vec()] {
            assert_eq!(decode(&bytes).unwrap(), text);
        }
        assert!(decode(&[0xFF, 0xFE, 0x00, 0xD8]).is_err());
        assert!(decode(&[0xC3]).is_err());
    }

    #[test]
    fn timespans() {
        assert_eq!(seconds("60"), Some(60));
        assert_eq!(seconds("00:10:00"), Some(600));
        assert_eq!(seconds("08:00:00"), Some(28_800));
        assert_eq!(seconds("2.00:00:01"), Some(172_801));
        assert_eq!(seconds("soon"), None);
        assert_eq!(seconds("1:2"), None);
    }

    #[test]
    fn lync_spellings() {
        assert_eq!(kebab("PublicUnverified"), "public-unverified");
        assert_eq!(kebab("NotSupported"), "not-supported");
        assert_eq!(kebab("not-supported"), "not-supported");
        assert_eq!(boolean("$True"), Some(true));
        assert_eq!(boolean("false"), Some(false));
        assert_eq!(boolean("1"), None);
    }

    #[test]
    fn never_panics_on_garbage() {
        for text in [
            "",
            ":",
            " : ",
            "{",
            "\u{feff}Domain : {",
            "A:\n  \n B",
            "Domain : a\nPartnerType : \u{0}",
        ] {
            let _ = import(text, &["example.com".to_owned()]);
        }
    }
}
