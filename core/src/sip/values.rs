//! Typed header values: addresses (From, To, Contact), Via, CSeq.

use std::fmt;

use super::method::Method;
use super::params::Params;
use super::syntax::{
    is_gen_value_char, is_token, is_token_str, is_wsp, parse_header_params, quote, quoted_len,
    short, trim_wsp, unquote,
};
use super::uri::{Host, Uri};

/// A header field that is missing or cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderError {
    name: &'static str,
    detail: Option<String>,
}

impl HeaderError {
    pub(crate) fn missing(name: &'static str) -> Self {
        HeaderError { name, detail: None }
    }

    pub(crate) fn invalid(name: &'static str, detail: impl Into<String>) -> Self {
        HeaderError {
            name,
            detail: Some(detail.into()),
        }
    }

    /// The header's full name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// True when the header is absent (rather than malformed).
    pub fn is_missing(&self) -> bool {
        self.detail.is_none()
    }
}

impl fmt::Display for HeaderError {
    /// Worded for a 400 reason phrase, as RFC 3261 section 21.4.1 suggests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            None => write!(f, "Missing {} header field", self.name),
            Some(d) => write!(f, "Invalid {} header field: {d}", self.name),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Sets a header parameter, quoting a value that is not a token or host.
fn set_header_param(params: &mut Params, name: &str, value: Option<&str>) {
    let name: String = name
        .bytes()
        .filter(|&b| is_token(b))
        .map(char::from)
        .collect();
    if name.is_empty() {
        return;
    }
    let value = value.map(|v| {
        if !v.is_empty() && v.bytes().all(is_gen_value_char) {
            v.to_owned()
        } else {
            quote(v)
        }
    });
    params.set(name, value);
}

/// An address as in From, To and Contact: `name-addr` or `addr-spec`
/// with header parameters (`tag`, `expires`, `q`...).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NameAddr {
    /// Unquoted and unescaped.
    display_name: Option<String>,
    uri: Uri,
    params: Params,
}

impl NameAddr {
    /// An address without display name or parameters.
    pub fn new(uri: Uri) -> Self {
        NameAddr {
            display_name: None,
            uri,
            params: Params::default(),
        }
    }

    /// The same address with a display name (written quoted).
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// The same address with a header parameter set; a value that is not a
    /// token is written as a quoted string.
    pub fn with_param(mut self, name: &str, value: Option<&str>) -> Self {
        set_header_param(&mut self.params, name, value);
        self
    }

    /// The same address with `;tag=`.
    pub fn with_tag(self, tag: &str) -> Self {
        self.with_param("tag", Some(tag))
    }

    /// Parses one address. In the `addr-spec` form (no `<>`) everything
    /// after the first `;` is a header parameter, never a URI parameter
    /// (RFC 3261 section 20.10).
    pub fn parse(value: &str) -> Result<NameAddr, String> {
        let s = trim_wsp(value);
        let (display_name, rest) = if s.starts_with('"') {
            let len = quoted_len(s).ok_or("unterminated display name")?;
            let rest = s[len..].trim_start_matches([' ', '\t']);
            if !rest.starts_with('<') {
                return Err("display name without <URI>".into());
            }
            (Some(unquote(&s[..len])), rest)
        } else if let Some(lt) = s.find('<') {
            let name = trim_wsp(&s[..lt]);
            if !name.bytes().all(|b| is_token(b) || is_wsp(b)) {
                return Err(format!("bad display name '{}'", short(name)));
            }
            ((!name.is_empty()).then(|| name.to_owned()), &s[lt..])
        } else {
            (None, s)
        };
        let (uri, params) = if let Some(r) = rest.strip_prefix('<') {
            let gt = r.find('>').ok_or("no '>' after the URI")?;
            (&r[..gt], &r[gt + 1..])
        } else {
            let end = rest.find([';', ' ', '\t']).unwrap_or(rest.len());
            let uri = &rest[..end];
            if uri.contains(['?', ',']) {
                return Err("URI with '?' or ',' outside <>".into());
            }
            (uri, &rest[end..])
        };
        let uri = Uri::parse(uri).map_err(|e| e.to_string())?;
        let params = Params::from_vec(parse_header_params(params)?);
        Ok(NameAddr {
            display_name,
            uri,
            params,
        })
    }

    /// The display name, unquoted; for humans only, never an identity.
    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }

    /// The address itself.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Header parameters (not the URI's).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// `;tag=`.
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    /// A Contact's `;expires=` in seconds; larger than `u32` saturates.
    pub fn expires(&self) -> Option<u32> {
        self.params.value("expires").and_then(parse_delta)
    }

    /// A Contact's `;q=` in thousandths (0..=1000), no floats.
    pub fn q(&self) -> Option<u16> {
        self.params.value("q").and_then(parse_qvalue)
    }
}

impl fmt::Display for NameAddr {
    /// Always the `name-addr` form, so URI parameters stay the URI's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display_name {
            write!(f, "{} ", quote(d))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// `delta-seconds`: digits; values beyond `u32` saturate (RFC 3261
/// section 20.19 says to treat them as 2^32-1).
pub(crate) fn parse_delta(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .map_or(u32::MAX, |v| v.min(u64::from(u32::MAX)) as u32),
    )
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in
/// thousandths.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// One Contact value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Contact {
    /// `Contact: *` (REGISTER removing all bindings).
    Star,
    /// An address, with its `expires` and `q` parameters.
    Addr(NameAddr),
}

impl Contact {
    /// `;expires=` of an address.
    pub fn expires(&self) -> Option<u32> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => a.expires(),
        }
    }

    /// `;q=` of an address, in thousandths.
    pub fn q(&self) -> Option<u16> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => a.q(),
        }
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contact::Star => f.write_str("*"),
            Contact::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// One Via value: `SIP/2.0/<transport> <sent-by>;params`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Via {
    /// As written (UDP, TCP, TLS, WS...).
    transport: String,
    host: Host,
    port: Option<u16>,
    params: Params,
}

impl Via {
    /// A Via for a request we send; `branch` should come from
    /// [`super::new_branch`].
    pub fn new(transport: &str, host: Host, port: Option<u16>, branch: &str) -> Self {
        let mut params = Params::default();
        set_header_param(&mut params, "branch", Some(branch));
        let transport: String = transport
            .bytes()
            .filter(|&b| is_token(b))
            .map(char::from)
            .collect();
        Via {
            transport: if transport.is_empty() {
                "UDP".into()
            } else {
                transport
            },
            host,
            port,
            params,
        }
    }

    /// The same Via with a parameter set (`rport`, `received`...).
    pub fn with_param(mut self, name: &str, value: Option<&str>) -> Self {
        set_header_param(&mut self.params, name, value);
        self
    }

    /// Reads one Via value (`SIP/2.0/TCP host:port;params`); the error is the reason.
    pub fn parse(value: &str) -> Result<Via, String> {
        let s = trim_wsp(value);
        let mut parts = s.splitn(3, '/');
        let (Some(name), Some(version), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("no sent-protocol".into());
        };
        if !trim_wsp(name).eq_ignore_ascii_case("SIP") || trim_wsp(version) != "2.0" {
            return Err(format!(
                "protocol '{}/{}' is not SIP/2.0",
                short(name),
                short(version)
            ));
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let t_len = rest.bytes().take_while(|&b| is_token(b)).count();
        let transport = &rest[..t_len];
        let after = &rest[t_len..];
        let sent_by = after.trim_start_matches([' ', '\t']);
        if transport.is_empty() || sent_by.len() == after.len() {
            return Err("bad transport".into());
        }
        let host_end = if sent_by.starts_with('[') {
            sent_by
                .find(']')
                .map(|i| i + 1)
                .ok_or("unterminated IPv6 reference")?
        } else {
            sent_by.find([':', ';', ' ', '\t']).unwrap_or(sent_by.len())
        };
        let host = Host::parse(&sent_by[..host_end]).map_err(|e| e.to_string())?;
        let mut rest = sent_by[host_end..].trim_start_matches([' ', '\t']);
        let mut port = None;
        if let Some(p) = rest.strip_prefix(':') {
            let p = p.trim_start_matches([' ', '\t']);
            let len = p.bytes().take_while(|b| b.is_ascii_digit()).count();
            if len == 0 || len > 5 {
                return Err("bad port".into());
            }
            port = Some(p[..len].parse::<u16>().map_err(|_| "port out of range")?);
            rest = &p[len..];
        }
        let params = Params::from_vec(parse_header_params(rest)?);
        Ok(Via {
            transport: transport.to_owned(),
            host,
            port,
            params,
        })
    }

    /// The transport as written (`UDP`, `TCP`, `TLS`...).
    pub fn transport(&self) -> &str {
        &self.transport
    }

    /// True for transports that retransmit themselves (anything but UDP).
    pub fn is_reliable(&self) -> bool {
        !self.transport.eq_ignore_ascii_case("UDP")
    }

    /// sent-by host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// sent-by port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Every Via parameter (branch, received, rport...), in order.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// `;branch=`.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// `;received=`, the source address a server saw.
    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    /// `;rport` (RFC 3581): `Some(None)` when requested without a value,
    /// `Some(Some(port))` when filled in. A malformed value reads as
    /// absent.
    pub fn rport(&self) -> Option<Option<u16>> {
        match self.params.get("rport")? {
            None => Some(None),
            Some(v) => v.parse().ok().map(Some),
        }
    }

    /// `;maddr=`.
    pub fn maddr(&self) -> Option<&str> {
        self.params.value("maddr")
    }

    /// sent-by as compared by server transaction matching (RFC 3261
    /// section 17.2.3): host case-folded, port as written.
    pub(crate) fn sent_by_key(&self) -> String {
        use fmt::Write;
        // One buffer: this runs for every request a server transaction
        // takes.
        let mut key = String::with_capacity(48);
        let _ = write!(key, "{}", self.host);
        key.make_ascii_lowercase();
        if let Some(p) = self.port {
            let _ = write!(key, ":{p}");
        }
        key
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// `CSeq: <number> <method>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CSeq {
    /// Below 2^31 (RFC 3261 section 8.1.1.5).
    pub seq: u32,
    /// The request method; in a response, that of the request answered.
    pub method: Method,
}

impl CSeq {
    /// Reads `<number> <method>`; the error is the reason.
    pub fn parse(value: &str) -> Result<CSeq, String> {
        let s = trim_wsp(value);
        let len = s.bytes().take_while(|b| b.is_ascii_digit()).count();
        let method = trim_wsp(&s[len..]);
        if len == 0 || len == s.len() || method.len() == s.len() - len {
            return Err("expected '<number> <method>'".into());
        }
        let seq = s[..len]
            .parse::<u32>()
            .ok()
            .filter(|&n| n < 1 << 31)
            .ok_or("sequence number not below 2^31")?;
        if !is_token_str(method) {
            return Err("bad method".into());
        }
        Ok(CSeq {
            seq,
            method: Method::parse(method).ok_or("bad method")?,
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = NameAddr::parse(
            r#" "Bob \"B\"" <sip:bob@biloxi.com;transport=tcp> ;tag=a6c85cf ;x="y z""#,
        )
        .unwrap();
        assert_eq!(a.display_name(), Some("Bob \"B\""));
        assert_eq!(a.uri().transport(), Some("tcp"));
        assert_eq!(a.tag(), Some("a6c85cf"));
        assert_eq!(a.params().value("x"), Some("\"y z\""));
        assert_eq!(NameAddr::parse(&a.to_string()), Ok(a));

        let a = NameAddr::parse("sip:alice@atlanta.com;tag=88sja8x;transport=tcp").unwrap();
        assert_eq!(a.display_name(), None);
        assert_eq!(a.uri().transport(), None, "header params in addr-spec form");
        assert_eq!(a.params().value("transport"), Some("tcp"));
        assert_eq!(a.tag(), Some("88sja8x"));
        assert_eq!(NameAddr::parse(&a.to_string()), Ok(a));

        let a = NameAddr::parse("Anonymous  Caller <sip:c8oqz84zk7z@privacy.org>").unwrap();
        assert_eq!(a.display_name(), Some("Anonymous  Caller"));
        let a = NameAddr::parse("<sip:x@y>;expires=3600;q=0.7").unwrap();
        assert_eq!(a.expires(), Some(3600));
        assert_eq!(a.q(), Some(700));
        let a = NameAddr::parse("<sip:x@y>;expires=99999999999;q=1.000").unwrap();
        assert_eq!(a.expires(), Some(u32::MAX));
        assert_eq!(a.q(), Some(1000));
        assert_eq!(NameAddr::parse("<sip:x@y>;q=1.5").unwrap().q(), None);
        assert_eq!(NameAddr::parse("<sip:x@y>;q=0.25").unwrap().q(), Some(250));

        for bad in [
            "",
            "<sip:x@y",
            "\"Bob <sip:x@y>",
            "\"Bob\" sip:x@y",
            "Bob@ <sip:x@y>",
            "<sip:x@y> junk",
            "<sip:x@y>;",
            "<im:x@y>",
            "sip:x@y?subject=a",
            "<sip:x@y>;tag",
        ] {
            let r = NameAddr::parse(bad);
            if bad == "<sip:x@y>;tag" {
                assert!(r.is_ok());
                continue;
            }
            assert!(r.is_err(), "{bad}: {r:?}");
        }
    }

    #[test]
    fn building_addresses() {
        let a = NameAddr::new(Uri::sip(Some("bob"), Host::parse("b.test").unwrap()))
            .with_display_name("Bob \"the\" Builder")
            .with_tag("1234")
            .with_param("note", Some("a b"));
        let s = a.to_string();
        assert_eq!(
            s,
            r#""Bob \"the\" Builder" <sip:bob@b.test>;tag=1234;note="a b""#
        );
        assert_eq!(NameAddr::parse(&s), Ok(a));
    }

    #[test]
    fn vias() {
        let v = Via::parse("SIP / 2.0 / UDP pc33.atlanta.com:5066 ;branch=z9hG4bK776asdhds ;rport;received=192.0.2.1").unwrap();
        assert_eq!(v.transport(), "UDP");
        assert!(!v.is_reliable());
        assert_eq!(v.host(), &Host::Domain("pc33.atlanta.com".into()));
        assert_eq!(v.port(), Some(5066));
        assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("192.0.2.1"));
        assert_eq!(Via::parse(&v.to_string()), Ok(v));

        let v = Via::parse(
            "SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKx;rport=5070;received=2001:db8::2",
        )
        .unwrap();
        assert!(v.is_reliable());
        assert_eq!(v.rport(), Some(Some(5070)));
        assert_eq!(v.received(), Some("2001:db8::2"));
        assert_eq!(v.sent_by_key(), "[2001:db8::1]:5060");
        assert_eq!(Via::parse(&v.to_string()), Ok(v));

        let v = Via::parse("sip/2.0/tls 10.0.0.1").unwrap();
        assert_eq!(v.port(), None);
        assert_eq!(v.branch(), None);

        for bad in [
            "",
            "SIP/2.0",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP ",
            "SIP/3.0/UDP host",
            "HTTP/2.0/UDP host",
            "SIP/2.0/UDP host:",
            "SIP/2.0/UDP host:70000",
            "SIP/2.0/UDP host;branch=",
            "SIP/2.0/UDP host junk",
            "SIP/2.0/UDPhost",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
        let v = Via::new(
            "TCP",
            Host::parse("gw.test").unwrap(),
            Some(5060),
            "z9hG4bKabc",
        )
        .with_param("rport", None);
        assert_eq!(
            v.to_string(),
            "SIP/2.0/TCP gw.test:5060;branch=z9hG4bKabc;rport"
        );
    }

    #[test]
    fn cseqs() {
        assert_eq!(
            CSeq::parse(" 314159   INVITE "),
            Ok(CSeq {
                seq: 314159,
                method: Method::Invite
            })
        );
        assert_eq!(
            CSeq::parse("1 foo").unwrap().method,
            Method::Other("foo".into())
        );
        for bad in [
            "",
            "1",
            "INVITE",
            "1INVITE",
            "-1 INVITE",
            "2147483648 INVITE",
            "1 A B",
            "99999999999 X",
        ] {
            assert!(CSeq::parse(bad).is_err(), "{bad}");
        }
        assert!(CSeq::parse("2147483647 MESSAGE").is_ok());
    }
}
