//! `sip:`, `sips:` (RFC 3261 section 19.1) and `tel:` (RFC 3966) URIs, and
//! for address mapping `im:` (RFC 3860) and `pres:` (RFC 3859).
//!
//! Parts are stored as written (escapes kept) so that `Display` gives back
//! text that parses to an equal value; [`Uri::user_decoded`] gives the
//! octets RFC 7247 address mapping works on. Equality is structural, not
//! the RFC 3261 section 19.1.4 comparison.
//!
//! One reader, two entry points: [`Uri::parse`] is the strict one for SIP
//! messages; [`Uri::parse_address`] is the one `translate` maps to JIDs,
//! which also takes `im:`/`pres:` and what user agents are known to write
//! outside the grammar (raw UTF-8, an empty `gr=`), since the mapping
//! validates those parts again anyway.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::params::Params;
use super::syntax::{
    encode, is_hnv_char, is_param_char, is_password_char, is_user_char, percent_decode, short,
    valid_escaped,
};

/// Why a URI was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriError {
    /// A well-formed URI of a scheme other than sip, sips and tel (`im:`,
    /// `http:`...): a request for it is answered 416.
    UnsupportedScheme(String),
    /// Not a valid URI.
    Malformed {
        /// Which part is wrong, for callers that answer per part.
        fault: UriFault,
        /// A human-readable reason, quoting the offending text.
        detail: String,
    },
}

/// The part of a URI that made it malformed: what RFC 7247 address mapping
/// reports (its `Malformed` reasons are [`UriFault::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UriFault {
    /// No scheme, or one that is not a scheme.
    Scheme,
    /// `@` with nothing before it.
    EmptyUser,
    /// A character the user part or password cannot hold.
    User,
    /// A `%` not followed by two hexadecimal digits.
    Escape,
    /// No host.
    EmptyHost,
    /// A `[` without its `]`.
    UnclosedIpv6,
    /// A host that is no name or address.
    Host,
    /// A port that is not a number up to 65535.
    Port,
    /// A broken `;name=value` parameter.
    Param,
    /// A broken `?name=value` header.
    Header,
    /// A tel: number that is not one.
    Number,
}

impl UriFault {
    /// A short reason, stable enough to compare (address errors carry it).
    pub fn as_str(self) -> &'static str {
        match self {
            UriFault::Scheme => "no scheme",
            UriFault::EmptyUser => "empty user",
            UriFault::User => "bad user part",
            UriFault::Escape => "bad percent-encoding",
            UriFault::EmptyHost => "empty host",
            UriFault::UnclosedIpv6 => "unclosed IPv6 literal",
            UriFault::Host => "bad host",
            UriFault::Port => "bad port",
            UriFault::Param => "bad parameter",
            UriFault::Header => "bad header",
            UriFault::Number => "bad telephone number",
        }
    }
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriError::UnsupportedScheme(s) => write!(f, "unsupported URI scheme '{s}'"),
            UriError::Malformed { detail, .. } => write!(f, "malformed URI: {detail}"),
        }
    }
}

impl std::error::Error for UriError {}

fn malformed(fault: UriFault, detail: impl Into<String>) -> UriError {
    UriError::Malformed {
        fault,
        detail: detail.into(),
    }
}

/// [`UriFault::Escape`] when `s` holds a broken escape, else `otherwise`:
/// which of the two made `valid_escaped` refuse `s`.
fn fault_in(s: &str, otherwise: UriFault) -> UriFault {
    if valid_escaped(s, |_| true) {
        otherwise
    } else {
        UriFault::Escape
    }
}

/// Which grammar a URI is read with; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    /// RFC 3261 exactly: SIP messages.
    Message,
    /// Also `im:`/`pres:`, raw non-ASCII in the user part, host and
    /// parameter values, and empty parameter values: address mapping.
    Address,
}

impl Reading {
    /// Whether `s` is a valid user part (user agents put raw UTF-8 there).
    fn user_ok(self, s: &str) -> bool {
        match self {
            Reading::Message => valid_escaped(s, is_user_char),
            Reading::Address => valid_escaped(s, |b| b >= 0x80 || is_user_char(b)),
        }
    }

    /// Whether `s` is a valid parameter value.
    fn param_value_ok(self, s: &str) -> bool {
        match self {
            Reading::Message => !s.is_empty() && valid_escaped(s, is_param_char),
            Reading::Address => valid_escaped(s, |b| b >= 0x80 || is_param_char(b)),
        }
    }
}

/// The URI schemes this crate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`, RFC 3261.
    Sip,
    /// `sips:`: TLS on every hop, which XMPP cannot promise (RFC 7247
    /// section 8), so never gatewayed.
    Sips,
    /// `tel:`, RFC 3966: a number, no host.
    Tel,
    /// `im:` (RFC 3860); only [`Uri::parse_address`] reads it.
    Im,
    /// `pres:` (RFC 3859); only [`Uri::parse_address`] reads it.
    Pres,
}

impl Scheme {
    /// The scheme name, lowercase, without the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Im => "im",
            Scheme::Pres => "pres",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host: a domain name as written, or an IP address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name; build it with [`Host::parse`] so that it is valid
    /// (ASCII, except in what [`Uri::parse_address`] read).
    Domain(String),
    /// A dotted IPv4 address.
    V4(Ipv4Addr),
    /// Written `[...]` in URIs and Via.
    V6(Ipv6Addr),
}

impl Host {
    /// A host name, dotted IPv4 address, or bracketed IPv6 reference.
    pub fn parse(s: &str) -> Result<Host, UriError> {
        Host::read(s, Reading::Message)
    }

    /// [`Host::parse`]; reading an address, a name may also hold raw
    /// non-ASCII (an IDN U-label, which the JID's preparation checks).
    fn read(s: &str, reading: Reading) -> Result<Host, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| malformed(UriFault::UnclosedIpv6, "unterminated IPv6 reference"))?;
            return inner.parse().map(Host::V6).map_err(|_| {
                malformed(
                    UriFault::Host,
                    format!("bad IPv6 address '{}'", short(inner)),
                )
            });
        }
        if let Ok(a) = s.parse::<Ipv4Addr>() {
            return Ok(Host::V4(a));
        }
        // RFC 3261 hostname characters; '_' tolerated as deployed DNS has it.
        let ok = !s.is_empty()
            && s.len() <= 255
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || b == b'-'
                    || b == b'.'
                    || b == b'_'
                    || (reading == Reading::Address && b >= 0x80)
            })
            && !s.starts_with(['.', '-'])
            && !s.contains("..");
        if ok {
            Ok(Host::Domain(s.to_owned()))
        } else {
            let fault = if s.is_empty() {
                UriFault::EmptyHost
            } else {
                UriFault::Host
            };
            Err(malformed(fault, format!("bad host '{}'", short(s))))
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A sip:, sips: or tel: URI (or, read by [`Uri::parse_address`], an im:
/// or pres: one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Uri {
    scheme: Scheme,
    /// The user part (for tel:, the telephone number), escapes kept.
    user: Option<String>,
    password: Option<String>,
    /// `None` only for tel:.
    host: Option<Host>,
    port: Option<u16>,
    params: Params,
    headers: Vec<(String, String)>,
}

impl Uri {
    /// `sip:user@host`, percent-encoding `user` (given decoded) where RFC
    /// 3261 requires it. An empty user means none.
    pub fn sip(user: Option<&str>, host: Host) -> Uri {
        Uri::build(Scheme::Sip, user, host)
    }

    /// `sips:user@host`, like [`Uri::sip`].
    pub fn sips(user: Option<&str>, host: Host) -> Uri {
        Uri::build(Scheme::Sips, user, host)
    }

    fn build(scheme: Scheme, user: Option<&str>, host: Host) -> Uri {
        Uri {
            scheme,
            user: user
                .filter(|u| !u.is_empty())
                .map(|u| encode(u.as_bytes(), is_user_char)),
            password: None,
            host: Some(host),
            port: None,
            params: Params::default(),
            headers: Vec::new(),
        }
    }

    /// `tel:number`; the number must be valid RFC 3966 digits.
    pub fn tel(number: &str) -> Result<Uri, UriError> {
        Uri::parse_tel(number)
    }

    /// The same URI with `port`.
    pub fn with_port(mut self, port: Option<u16>) -> Uri {
        if self.scheme != Scheme::Tel {
            self.port = port;
        }
        self
    }

    /// The same URI with the parameter set (replacing one of that name);
    /// characters URI parameters cannot hold are percent-encoded. An empty
    /// name is ignored.
    pub fn with_param(mut self, name: &str, value: Option<&str>) -> Uri {
        self.set_param(name, value);
        self
    }

    /// Sets a parameter, as [`Uri::with_param`].
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        if name.is_empty() {
            return;
        }
        let value = value
            .filter(|v| !v.is_empty())
            .map(|v| encode(v.as_bytes(), is_param_char));
        self.params
            .set(encode(name.as_bytes(), is_param_char), value);
    }

    /// The same URI with a `?name=value` header appended (encoded as
    /// needed; ignored for tel: and for an empty name).
    pub fn with_header(mut self, name: &str, value: &str) -> Uri {
        if self.scheme != Scheme::Tel && !name.is_empty() {
            self.headers.push((
                encode(name.as_bytes(), is_hnv_char),
                encode(value.as_bytes(), is_hnv_char),
            ));
        }
        self
    }

    /// Parses a URI as found in a Request-Line or inside `<...>`.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        Uri::read(s, Reading::Message)
    }

    /// Parses a URI to map to a JID (RFC 7247 section 6.4): `sip:`, `sips:`,
    /// and `im:`/`pres:` read with the sip: grammar (a superset of their
    /// `user@host[?headers]`); `tel:` is an unsupported scheme here. Raw
    /// non-ASCII in the user part, host and parameter values, which some
    /// agents send unencoded, passes, and so does an empty parameter value
    /// (`;gr=`).
    pub fn parse_address(s: &str) -> Result<Uri, UriError> {
        Uri::read(s, Reading::Address)
    }

    fn read(s: &str, reading: Reading) -> Result<Uri, UriError> {
        let colon = s
            .find(':')
            .ok_or_else(|| malformed(UriFault::Scheme, "no scheme"))?;
        let (scheme, rest) = (&s[..colon], &s[colon + 1..]);
        let address = reading == Reading::Address;
        if scheme.eq_ignore_ascii_case("sip") {
            Uri::parse_sip(Scheme::Sip, rest, reading)
        } else if scheme.eq_ignore_ascii_case("sips") {
            Uri::parse_sip(Scheme::Sips, rest, reading)
        } else if address && scheme.eq_ignore_ascii_case("im") {
            Uri::parse_sip(Scheme::Im, rest, reading)
        } else if address && scheme.eq_ignore_ascii_case("pres") {
            Uri::parse_sip(Scheme::Pres, rest, reading)
        } else if !address && scheme.eq_ignore_ascii_case("tel") {
            Uri::parse_tel(rest)
        } else if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            && !rest.is_empty()
            && !rest.bytes().any(|b| b <= b' ' || b == 0x7F)
        {
            Err(UriError::UnsupportedScheme(scheme.to_ascii_lowercase()))
        } else {
            Err(malformed(
                UriFault::Scheme,
                format!("bad scheme '{}'", short(scheme)),
            ))
        }
    }

    fn parse_sip(scheme: Scheme, rest: &str, reading: Reading) -> Result<Uri, UriError> {
        let (userinfo, hostpart) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (mut user, mut password) = (None, None);
        if let Some(ui) = userinfo {
            let (u, p) = match ui.find(':') {
                Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                None => (ui, None),
            };
            if u.is_empty() || !reading.user_ok(u) {
                let fault = if u.is_empty() {
                    UriFault::EmptyUser
                } else {
                    fault_in(u, UriFault::User)
                };
                return Err(malformed(fault, format!("bad user part '{}'", short(u))));
            }
            if let Some(p) = p {
                if !valid_escaped(p, is_password_char) {
                    return Err(malformed(fault_in(p, UriFault::User), "bad password"));
                }
            }
            user = Some(u.to_owned());
            password = p.map(str::to_owned);
        }
        let host_end = if hostpart.starts_with('[') {
            hostpart
                .find(']')
                .map(|i| i + 1)
                .ok_or_else(|| malformed(UriFault::UnclosedIpv6, "unterminated IPv6 reference"))?
        } else {
            hostpart.find([':', ';', '?']).unwrap_or(hostpart.len())
        };
        let host = Host::read(&hostpart[..host_end], reading)?;
        let mut rest = &hostpart[host_end..];
        let mut port = None;
        if let Some(p) = rest.strip_prefix(':') {
            let end = p.find([';', '?']).unwrap_or(p.len());
            port = Some(parse_port(&p[..end])?);
            rest = &p[end..];
        }
        let end = rest.find('?').unwrap_or(rest.len());
        let params = parse_uri_params(&rest[..end], reading)?;
        rest = &rest[end..];
        let mut headers = Vec::new();
        if let Some(h) = rest.strip_prefix('?') {
            for pair in h.split('&') {
                let (n, v) = pair
                    .split_once('=')
                    .ok_or_else(|| malformed(UriFault::Header, "URI header without '='"))?;
                if n.is_empty() || !valid_escaped(n, is_hnv_char) || !valid_escaped(v, is_hnv_char)
                {
                    let fault = fault_in(n, fault_in(v, UriFault::Header));
                    return Err(malformed(fault, "bad URI header"));
                }
                headers.push((n.to_owned(), v.to_owned()));
            }
        }
        Ok(Uri {
            scheme,
            user,
            password,
            host: Some(host),
            port,
            params,
            headers,
        })
    }

    fn parse_tel(rest: &str) -> Result<Uri, UriError> {
        let end = rest.find(';').unwrap_or(rest.len());
        let number = &rest[..end];
        let visual = |b: u8| b"-.()".contains(&b);
        let ok = match number.strip_prefix('+') {
            Some(n) => {
                n.bytes().any(|b| b.is_ascii_digit())
                    && n.bytes().all(|b| b.is_ascii_digit() || visual(b))
            }
            None => {
                number
                    .bytes()
                    .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
                    && number
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#' || visual(b))
            }
        };
        if !ok {
            return Err(malformed(
                UriFault::Number,
                format!("bad telephone number '{}'", short(number)),
            ));
        }
        Ok(Uri {
            scheme: Scheme::Tel,
            user: Some(number.to_owned()),
            password: None,
            host: None,
            port: None,
            params: parse_uri_params(&rest[end..], Reading::Message)?,
            headers: Vec::new(),
        })
    }

    /// Which scheme it was written with, which decides the transport (sips: is TLS).
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The user part as written (escapes kept); for tel:, the number.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The user part with `%XX` escapes decoded: octets, which RFC 7247
    /// maps to a JID localpart only when they are UTF-8.
    pub fn user_decoded(&self) -> Option<Cow<'_, [u8]>> {
        self.user.as_deref().map(percent_decode)
    }

    /// The password as written (RFC 3261 discourages it).
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The host; `None` for tel:.
    pub fn host(&self) -> Option<&Host> {
        self.host.as_ref()
    }

    /// The port, when written; `None` means the transport's default (or SRV).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Every URI parameter, in order.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// See [`Params::get`].
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params.get(name)
    }

    /// `transport=` (udp, tcp, tls, sctp, ws...).
    pub fn transport(&self) -> Option<&str> {
        self.params.value("transport")
    }

    /// `maddr=`.
    pub fn maddr(&self) -> Option<&str> {
        self.params.value("maddr")
    }

    /// `;lr`: a loose router (RFC 3261 section 16.12).
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }

    /// `gr` (RFC 5627): `Some(None)` when present without a value.
    pub fn gr(&self) -> Option<Option<&str>> {
        self.params.get("gr")
    }

    /// URI headers (`?name=value&...`), as written.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

fn parse_port(p: &str) -> Result<u16, UriError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(
            UriFault::Port,
            format!("bad port '{}'", short(p)),
        ));
    }
    p.parse()
        .map_err(|_| malformed(UriFault::Port, format!("port {p} out of range")))
}

/// `*( ";" pname [ "=" pvalue ] )` of a URI.
fn parse_uri_params(s: &str, reading: Reading) -> Result<Params, UriError> {
    let mut v = Vec::new();
    if s.is_empty() {
        return Ok(Params::default());
    }
    let Some(s) = s.strip_prefix(';') else {
        return Err(malformed(
            UriFault::Param,
            format!("unexpected '{}'", short(s)),
        ));
    };
    for seg in s.split(';') {
        let (n, val) = match seg.split_once('=') {
            Some((n, val)) => (n, Some(val)),
            None => (seg, None),
        };
        let bad = |fault| malformed(fault, format!("bad URI parameter '{}'", short(seg)));
        if n.is_empty() || !valid_escaped(n, is_param_char) {
            return Err(bad(fault_in(n, UriFault::Param)));
        }
        if let Some(val) = val {
            if !reading.param_value_ok(val) {
                return Err(bad(fault_in(val, UriFault::Param)));
            }
        }
        v.push((n.to_owned(), val.map(str::to_owned)));
    }
    Ok(Params::from_vec(v))
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            if self.host.is_some() {
                f.write_str("@")?;
            }
        }
        if let Some(h) = &self.host {
            write!(f, "{h}")?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        for (i, (n, v)) in self.headers.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{n}={v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Uri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Uri, UriError> {
        Uri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> Uri {
        let u = Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(Uri::parse(&u.to_string()).as_ref(), Ok(&u), "{s}");
        u
    }

    #[test]
    fn sip_uris() {
        let u = rt("sip:alice@atlanta.com");
        assert_eq!(u.scheme(), Scheme::Sip);
        assert_eq!(u.user(), Some("alice"));
        assert_eq!(u.host(), Some(&Host::Domain("atlanta.com".into())));
        assert_eq!(u.to_string(), "sip:alice@atlanta.com");

        let u = rt("SIPS:alice:secretword@atlanta.com:5061;transport=tcp;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent");
        assert_eq!(u.scheme(), Scheme::Sips);
        assert_eq!(u.password(), Some("secretword"));
        assert_eq!(u.port(), Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert_eq!(u.maddr(), Some("239.255.255.1"));
        assert_eq!(
            u.headers().collect::<Vec<_>>(),
            [("subject", "project%20x"), ("priority", "urgent")]
        );

        let u = rt("sip:+1-212-555-1212:1234@gateway.com;user=phone");
        assert_eq!(u.user(), Some("+1-212-555-1212"));
        assert_eq!(u.param("user"), Some(Some("phone")));

        let u = rt("sip:[2001:db8::10]:5070;gr");
        assert_eq!(u.host(), Some(&Host::V6("2001:db8::10".parse().unwrap())));
        assert_eq!(u.port(), Some(5070));
        assert_eq!(u.gr(), Some(None));
        assert_eq!(u.to_string(), "sip:[2001:db8::10]:5070;gr");

        let u = rt("sip:127.0.0.1:5060");
        assert_eq!(u.host(), Some(&Host::V4(Ipv4Addr::LOCALHOST)));

        let u = rt("sip:juliet%40capulet%20x@example.com;gr=urn:uuid:f81d4fae");
        assert_eq!(u.user_decoded().as_deref(), Some(&b"juliet@capulet x"[..]));
        assert_eq!(u.gr(), Some(Some("urn:uuid:f81d4fae")));
        rt("sip:a;b=c@example.com");
        rt("sip:registrar.example.com");
    }

    #[test]
    fn tel_uris() {
        let u = rt("tel:+1-201-555-0123;phone-context=example.com");
        assert_eq!(u.scheme(), Scheme::Tel);
        assert_eq!(u.user(), Some("+1-201-555-0123"));
        assert_eq!(u.host(), None);
        assert_eq!(u.param("phone-context"), Some(Some("example.com")));
        rt("tel:7042;phone-context=example.com");
        rt("tel:*21#");
        assert!(Uri::parse("tel:+").is_err());
        assert!(Uri::parse("tel:abc x").is_err());
        assert!(Uri::parse("tel:").is_err());
    }

    #[test]
    fn refused() {
        for bad in [
            "sip:",
            "sip:@host",
            "sip:a@",
            "sip:a b@host",
            "sip:host:",
            "sip:host:99999",
            "sip:host:12a",
            "sip:host;",
            "sip:host;=x",
            "sip:host;a=",
            "sip:host?x",
            "sip:[::1",
            "sip:[zz]",
            "sip:ho st",
            "sip:host%",
            "sip:a%4@host",
            "sip:a@b@c",
            "sip:.host",
            "nocolon",
            "1sip:x",
            ":x",
        ] {
            assert!(
                matches!(Uri::parse(bad), Err(UriError::Malformed { .. })),
                "{bad}: {:?}",
                Uri::parse(bad)
            );
        }
        for other in [
            "im:alice@example.com",
            "pres:a@b",
            "http://example.com/",
            "urn:x",
        ] {
            assert!(
                matches!(Uri::parse(other), Err(UriError::UnsupportedScheme(_))),
                "{other}"
            );
        }
    }

    #[test]
    fn address_reading() {
        for (text, scheme) in [
            ("im:romeo@example.net", Scheme::Im),
            ("PRES:romeo@example.net?x=y", Scheme::Pres),
            ("sip:f\u{fc}@b\u{fc}cher.example;gr=caf\u{e9}", Scheme::Sip),
            ("sip:foo@example.com;gr=", Scheme::Sip),
        ] {
            let u = Uri::parse_address(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(u.scheme(), scheme, "{text}");
            // None of these is a SIP message's URI.
            assert!(Uri::parse(text).is_err(), "{text}");
        }
        assert_eq!(
            Uri::parse_address("sip:foo@example.com;gr=").map(|u| u.gr().flatten().map(str::len)),
            Ok(Some(0))
        );
        assert!(matches!(
            Uri::parse_address("tel:+1555"),
            Err(UriError::UnsupportedScheme(_))
        ));
        for (bad, fault) in [
            ("", UriFault::Scheme),
            (":a@b", UriFault::Scheme),
            ("sip:@b", UriFault::EmptyUser),
            ("sip:a b@c", UriFault::User),
            ("sip:a%zz@b", UriFault::Escape),
            ("sip:a@b;gr=%", UriFault::Escape),
            ("sip:a@;gr=x", UriFault::EmptyHost),
            ("sip:a@[::1", UriFault::UnclosedIpv6),
            ("sip:a@b:", UriFault::Port),
        ] {
            assert!(
                matches!(Uri::parse_address(bad), Err(UriError::Malformed { fault: f, .. }) if f == fault),
                "{bad}: {:?}",
                Uri::parse_address(bad)
            );
        }
    }

    #[test]
    fn construction_encodes() {
        let u = Uri::sip(
            Some("juliet@capulet x;%"),
            Host::parse("example.com").unwrap(),
        )
        .with_port(Some(5060))
        .with_param("transport", Some("tcp"))
        .with_param("odd name", Some("a b;c"))
        .with_param("lr", None)
        .with_header("subject", "hi there&more");
        let s = u.to_string();
        assert_eq!(
            s,
            "sip:juliet%40capulet%20x;%25@example.com:5060;transport=tcp;odd%20name=a%20b%3Bc;lr?subject=hi%20there%26more"
        );
        let back = Uri::parse(&s).unwrap();
        assert_eq!(back, u);
        assert_eq!(
            back.user_decoded().as_deref(),
            Some("juliet@capulet x;%".as_bytes())
        );
        let u = u.with_param("TRANSPORT", Some("udp"));
        assert_eq!(u.transport(), Some("udp"));
        assert_eq!(
            Uri::sip(Some(""), Host::V4(Ipv4Addr::LOCALHOST)).user(),
            None
        );
    }
}
