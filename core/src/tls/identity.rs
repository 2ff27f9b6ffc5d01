//! The XMPP identities a certificate presents (RFC 6120 section 13.7.1.2,
//! RFC 9525) and whether they name a domain.
//!
//! Three kinds count: dNSName (DNS-ID), SRVName (SRV-ID, RFC 4985) for the
//! `xmpp-server` and `xmpps-server` services, and id-on-xmppAddr. The
//! subject's common name never does (RFC 9525 removed CN-ID), so a
//! certificate without a subjectAltName names nothing.

use std::borrow::Cow;
use std::fmt;

use der::asn1::{AnyRef, Ia5StringRef, ObjectIdentifier, Utf8StringRef};
use der::{Decode, Reader, SliceReader, Tag, Tagged};
use idna::AsciiDenyList;

use super::x509::{self, context, expect, Malformed};

/// id-on-dnsSRV (RFC 4985): otherName holding an SRVName, IA5String.
const SRV_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.8.7");
/// id-on-xmppAddr (RFC 6120 section 13.7.1.4): otherName holding a JID, UTF8String.
const XMPP_ADDR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.8.5");

/// One identifier presented in a certificate's subjectAltName.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A dNSName, lowercased; `*.example.com` is a wildcard.
    Dns(String),
    /// An SRVName `_service.domain`: the service without its underscore,
    /// and the domain, both as written in the certificate.
    Srv {
        /// `xmpp-server`, `xmpps-server`, `xmpp-client`, ...
        service: String,
        /// The domain the service is offered for.
        domain: String,
    },
    /// An id-on-xmppAddr: a JID (a bare domain in server certificates).
    XmppAddr(String),
}

impl Identity {
    /// Whether this identifier names `reference` (an A-label, lowercase
    /// domain) for server-to-server use.
    fn names(&self, reference: &str) -> bool {
        match self {
            Identity::Dns(presented) => dns_id_matches(presented, reference),
            Identity::Srv { service, domain } => {
                (service.eq_ignore_ascii_case("xmpp-server")
                    || service.eq_ignore_ascii_case("xmpps-server"))
                    && to_ascii(domain).as_deref() == Some(reference)
            }
            // A JID with a localpart or resource is an account, not a server.
            Identity::XmppAddr(jid) => {
                !jid.contains(['@', '/']) && to_ascii(jid).as_deref() == Some(reference)
            }
        }
    }
}

impl fmt::Display for Identity {
    /// The notation of `openssl x509 -text` for DNS, and the RFC names for
    /// the otherName kinds: what `xfed plan` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Dns(name) => write!(f, "DNS:{name}"),
            Identity::Srv { service, domain } => write!(f, "SRVName:_{service}.{domain}"),
            Identity::XmppAddr(jid) => write!(f, "xmppAddr:{jid}"),
        }
    }
}

/// The identifiers of one certificate, in the order the certificate lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identities {
    names: Vec<Identity>,
}

impl Identities {
    /// Every identifier found (other subjectAltName kinds are left out).
    pub fn names(&self) -> &[Identity] {
        &self.names
    }

    /// True when the certificate presents no XMPP-usable identifier at all
    /// (for instance a certificate that has only a common name).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether the certificate is valid for the XMPP server domain `domain`
    /// (U-labels or A-labels, any case): a DNS-ID equal to it or a wildcard
    /// covering exactly its left-most label, an SRV-ID `_xmpp-server.<domain>`
    /// or `_xmpps-server.<domain>`, or an xmppAddr equal to it. Comparison is
    /// on A-labels, case-insensitively.
    pub fn matches(&self, domain: &str) -> bool {
        let Some(reference) = to_ascii(domain) else {
            return false;
        };
        self.names.iter().any(|n| n.names(&reference))
    }
}

/// A certificate that is not well-formed DER X.509.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertError(pub String);

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed certificate: {}", self.0)
    }
}

impl std::error::Error for CertError {}

impl From<Malformed> for CertError {
    fn from(m: Malformed) -> Self {
        CertError(m.0)
    }
}

/// The XMPP identifiers a DER certificate presents, read from its
/// subjectAltName. Shared by the peer check and by `xfed plan`, which lists
/// the names of the configured certificate.
pub fn cert_identities(cert: &[u8]) -> Result<Identities, CertError> {
    let fields = x509::parse(cert)?;
    let mut names = Vec::new();
    if let Some(san) = fields.subject_alt_name {
        general_names(san, &mut names)?;
    }
    Ok(Identities { names })
}

/// When a DER certificate expires (notAfter), in Unix seconds: `xfed
/// check` warns ahead of it.
pub fn cert_not_after(cert: &[u8]) -> Result<u64, CertError> {
    Ok(x509::parse(cert)?.not_after)
}

/// id-kp-serverAuth and id-kp-clientAuth (RFC 5280 section 4.2.1.12).
const SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
const CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// What a certificate's extended key usage lets it do in TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsUsage {
    /// The certificate lists key purposes at all (without the extension
    /// any purpose is allowed).
    pub restricted: bool,
    /// It may authenticate a TLS server.
    pub server: bool,
    /// It may authenticate a TLS client: what SASL EXTERNAL on streams
    /// we open needs (XEP-0178), where the peer judges our certificate.
    pub client: bool,
}

/// The TLS usages of a DER certificate, from its extKeyUsage: `xfed
/// plan` says whether it can serve as a client certificate.
pub fn cert_tls_usage(cert: &[u8]) -> Result<TlsUsage, CertError> {
    Ok(match x509::parse(cert)?.ext_key_usage {
        None => TlsUsage {
            restricted: false,
            server: true,
            client: true,
        },
        Some(list) => TlsUsage {
            restricted: true,
            server: list.contains(&SERVER_AUTH),
            client: list.contains(&CLIENT_AUTH),
        },
    })
}

/// Reads GeneralNames (RFC 5280 section 4.2.1.6). Malformed DER is an
/// error; a known otherName holding the wrong string type, or an SRVName
/// without the `_service.` form, is skipped: it names nothing we could match.
fn general_names(der: &[u8], out: &mut Vec<Identity>) -> Result<(), Malformed> {
    let seq = expect(AnyRef::from_der(der)?, Tag::Sequence)?;
    let mut r = SliceReader::new(seq.value())?;
    while !r.is_finished() {
        let name = AnyRef::decode(&mut r)?;
        if name.tag() == context(2, false) {
            // dNSName [2] IMPLICIT IA5String
            let dns = Ia5StringRef::new(name.value())?;
            out.push(Identity::Dns(dns.as_str().to_ascii_lowercase()));
        } else if name.tag() == context(0, true) {
            // otherName [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
            let mut other = SliceReader::new(name.value())?;
            let type_id: ObjectIdentifier = other.decode()?;
            let wrapped = expect(AnyRef::decode(&mut other)?, context(0, true))?;
            other.finish()?;
            let value = AnyRef::from_der(wrapped.value())?;
            if type_id == SRV_NAME && value.tag() == Tag::Ia5String {
                let srv = value.decode_as::<Ia5StringRef<'_>>()?;
                let parsed = srv
                    .as_str()
                    .strip_prefix('_')
                    .and_then(|s| s.split_once('.'));
                if let Some((service, domain)) = parsed {
                    out.push(Identity::Srv {
                        service: service.to_owned(),
                        domain: domain.to_owned(),
                    });
                }
            } else if type_id == XMPP_ADDR && value.tag() == Tag::Utf8String {
                let jid = value.decode_as::<Utf8StringRef<'_>>()?;
                out.push(Identity::XmppAddr(jid.as_str().to_owned()));
            }
        }
        // rfc822Name, URI, iPAddress, directoryName, ...: not XMPP identities.
    }
    Ok(())
}

/// RFC 9525 section 6.3 for DNS-IDs: labels compared case-insensitively;
/// `*` only as the whole left-most label, standing for exactly one label,
/// and only above at least two labels (`*.com` names nothing).
fn dns_id_matches(presented: &str, reference: &str) -> bool {
    let presented = presented.strip_suffix('.').unwrap_or(presented);
    match presented.strip_prefix("*.") {
        Some(base) => {
            if base.contains('*') || !base.contains('.') {
                return false;
            }
            let Some(base) = to_ascii(base) else {
                return false;
            };
            match reference.split_once('.') {
                Some((first, rest)) => !first.is_empty() && rest == base,
                None => false,
            }
        }
        // Any other `*` (partial-label, or not left-most) is refused.
        None => !presented.contains('*') && to_ascii(presented).as_deref() == Some(reference),
    }
}

/// A domain in lowercase A-label form (UTS 46 to-ASCII with the STD3
/// rules), without a trailing dot; `None` if it is not a valid domain.
pub(crate) fn to_ascii(domain: &str) -> Option<Cow<'_, str>> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || domain.starts_with('.') || domain.contains("..") {
        return None;
    }
    idna::domain_to_ascii_cow(domain.as_bytes(), AsciiDenyList::STD3).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: Vec<Identity>) -> Identities {
        Identities { names }
    }

    #[test]
    fn dns_ids() {
        let i = ids(vec![Identity::Dns("example.com".into())]);
        assert!(i.matches("example.com"));
        assert!(i.matches("EXAMPLE.com"));
        assert!(i.matches("example.com."));
        assert!(!i.matches("a.example.com"));
        assert!(!i.matches("example.org"));
        assert!(!i.matches(""));
    }

    #[test]
    fn wildcards() {
        assert!(dns_id_matches("*.example.com", "a.example.com"));
        assert!(dns_id_matches("*.EXAMPLE.com", "xn--bcher-kva.example.com"));
        assert!(!dns_id_matches("*.example.com", "example.com"));
        assert!(!dns_id_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_id_matches("*.com", "example.com"));
        assert!(!dns_id_matches("a*.example.com", "ab.example.com"));
        assert!(!dns_id_matches("*a.example.com", "ba.example.com"));
        assert!(!dns_id_matches("a.*.example.com", "a.b.example.com"));
        assert!(!dns_id_matches("*.*.example.com", "a.b.example.com"));
        assert!(!dns_id_matches("*", "example"));
        assert!(!dns_id_matches("*.", "example"));
    }

    #[test]
    fn idn_compared_as_a_labels() {
        let i = ids(vec![Identity::Dns("xn--bcher-kva.example".into())]);
        assert!(i.matches("bücher.example"));
        assert!(i.matches("BÜCHER.example"));
        assert!(i.matches("xn--bcher-kva.example"));
        let x = ids(vec![Identity::XmppAddr("bücher.example".into())]);
        assert!(x.matches("xn--bcher-kva.example"));
    }

    #[test]
    fn srv_ids() {
        let srv = |service: &str| {
            ids(vec![Identity::Srv {
                service: service.into(),
                domain: "im.example.com".into(),
            }])
        };
        assert!(srv("xmpp-server").matches("im.example.com"));
        assert!(srv("XMPP-Server").matches("im.example.com"));
        assert!(srv("xmpps-server").matches("im.example.com"));
        assert!(!srv("xmpp-client").matches("im.example.com"));
        assert!(!srv("sip").matches("im.example.com"));
        assert!(!srv("xmpp-server").matches("example.com"));
    }

    #[test]
    fn xmpp_addrs() {
        let i = ids(vec![
            Identity::XmppAddr("user@example.net".into()),
            Identity::XmppAddr("example.org/res".into()),
            Identity::XmppAddr("Example.COM".into()),
        ]);
        assert!(i.matches("example.com"));
        assert!(!i.matches("example.net"));
        assert!(!i.matches("example.org"));
    }

    #[test]
    fn display() {
        assert_eq!(
            Identity::Dns("a.example".into()).to_string(),
            "DNS:a.example"
        );
        assert_eq!(
            Identity::Srv {
                service: "xmpp-server".into(),
                domain: "a.example".into()
            }
            .to_string(),
            "SRVName:_xmpp-server.a.example"
        );
        assert_eq!(
            Identity::XmppAddr("a.example".into()).to_string(),
            "xmppAddr:a.example"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(cert_identities(b"").is_err());
        assert!(cert_identities(b"\x30\x03\x02\x01").is_err());
        assert!(cert_identities(&[0x30, 0x80, 0, 0]).is_err());
        let mut out = Vec::new();
        assert!(general_names(b"\x30\x02\x82\x05", &mut out).is_err());
        // otherName whose value is not wrapped in [0].
        assert!(
            general_names(b"\x30\x0c\xa0\x0a\x06\x03\x2a\x03\x04\x0c\x03abc", &mut out).is_err()
        );
    }

    #[test]
    fn general_names_kinds() {
        // dNSName "A.example", otherName SRVName "_xmpp-server.b.example",
        // otherName xmppAddr "c.example", URI "x:y" (ignored),
        // otherName SRVName as UTF8String (skipped).
        let mut der = Vec::new();
        let push = |der: &mut Vec<u8>, tag: u8, body: &[u8]| {
            der.push(tag);
            der.push(u8::try_from(body.len()).unwrap_or(0));
            der.extend_from_slice(body);
        };
        let other = |oid_last: u8, string_tag: u8, s: &str| {
            let mut v = Vec::new();
            push(&mut v, 0x06, &[0x2b, 6, 1, 5, 5, 7, 8, oid_last]);
            let mut s_tlv = Vec::new();
            push(&mut s_tlv, string_tag, s.as_bytes());
            push(&mut v, 0xa0, &s_tlv);
            v
        };
        let mut body = Vec::new();
        push(&mut body, 0x82, b"A.example");
        push(&mut body, 0xa0, &other(7, 0x16, "_xmpp-server.b.example"));
        push(&mut body, 0xa0, &other(5, 0x0c, "c.example"));
        push(&mut body, 0x86, b"x:y");
        push(&mut body, 0xa0, &other(7, 0x0c, "_xmpp-server.d.example"));
        push(&mut der, 0x30, &body);
        let mut out = Vec::new();
        assert!(general_names(&der, &mut out).is_ok());
        assert_eq!(
            out,
            vec![
                Identity::Dns("a.example".into()),
                Identity::Srv {
                    service: "xmpp-server".into(),
                    domain: "b.example".into()
                },
                Identity::XmppAddr("c.example".into()),
            ]
        );
    }
}
