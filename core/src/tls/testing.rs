//! Test certificates and an in-memory handshake (feature `test-ca`).
//!
//! For the tests of this crate and of the runtimes (loopback, Prosody
//! interop): a CA, intermediates, and leaf certificates with the SAN kinds
//! XMPP uses (dNSName, SRVName and xmppAddr otherNames), chosen extended
//! key usages and validity, or self-signed. Keys are ECDSA P-256.
//!
//! Test support only: the helpers panic if rcgen refuses a spec.
//!
//! ```
//! use xfed_core::tls::testing::{LeafSpec, TestCa, NOW};
//! use xfed_core::tls::{check_peer, PeerCert};
//!
//! let ca = TestCa::new("Test CA");
//! let cert = ca.issue(&LeafSpec::new().dns("example.com"));
//! assert_eq!(
//!     check_peer(cert.chain(), &ca.trust_anchors(), NOW, "example.com"),
//!     PeerCert::Trusted
//! );
//! ```

use std::time::Duration;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConnection, ConnectionCommon, ServerConnection, SideData};

use super::{LocalIdentity, TrustAnchors};

/// Default notBefore of test certificates: 2020-01-01T00:00:00Z.
pub const NOT_BEFORE: u64 = 1_577_836_800;
/// Default notAfter of test certificates: 2050-01-01T00:00:00Z.
pub const NOT_AFTER: u64 = 2_524_608_000;
/// A time inside the default validity (2026-01-01T00:00:00Z), for tests
/// that drive the clock themselves.
pub const NOW: u64 = 1_767_225_600;

/// One subjectAltName entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    /// dNSName, written as given (wildcards and oddities included).
    Dns(String),
    /// SRVName otherName, the whole `_service.domain` string.
    Srv(String),
    /// id-on-xmppAddr otherName.
    XmppAddr(String),
    /// uniformResourceIdentifier (not an XMPP identity; for negative tests).
    Uri(String),
}

/// The extended key usage extension of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eku {
    /// No extension at all (any usage).
    Absent,
    /// serverAuth only.
    ServerAuth,
    /// clientAuth only.
    ClientAuth,
    /// serverAuth and clientAuth: what XMPP servers should have.
    ServerAndClient,
    /// emailProtection only: unusable for TLS.
    EmailOnly,
}

/// What a leaf certificate should contain. Built with chained calls.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    sans: Vec<San>,
    common_name: Option<String>,
    eku: Eku,
    not_before: u64,
    not_after: u64,
    ca_flag: bool,
}

impl Default for LeafSpec {
    fn default() -> Self {
        LeafSpec::new()
    }
}

impl LeafSpec {
    /// No names, serverAuth + clientAuth, valid [`NOT_BEFORE`]..[`NOT_AFTER`].
    pub fn new() -> Self {
        LeafSpec {
            sans: Vec::new(),
            common_name: None,
            eku: Eku::ServerAndClient,
            not_before: NOT_BEFORE,
            not_after: NOT_AFTER,
            ca_flag: false,
        }
    }

    /// What a well-made XMPP server certificate for `domain` holds: dNSName,
    /// SRVNames `_xmpp-server` and `_xmpps-server`, and xmppAddr.
    pub fn xmpp_server(domain: &str) -> Self {
        LeafSpec::new()
            .dns(domain)
            .srv(&format!("_xmpp-server.{domain}"))
            .srv(&format!("_xmpps-server.{domain}"))
            .xmpp_addr(domain)
    }

    /// Adds a dNSName.
    pub fn dns(mut self, name: &str) -> Self {
        self.sans.push(San::Dns(name.to_owned()));
        self
    }

    /// Adds an SRVName, e.g. `_xmpp-server.example.com`.
    pub fn srv(mut self, srv_name: &str) -> Self {
        self.sans.push(San::Srv(srv_name.to_owned()));
        self
    }

    /// Adds an id-on-xmppAddr.
    pub fn xmpp_addr(mut self, jid: &str) -> Self {
        self.sans.push(San::XmppAddr(jid.to_owned()));
        self
    }

    /// Adds any subjectAltName entry.
    pub fn san(mut self, san: San) -> Self {
        self.sans.push(san);
        self
    }

    /// Sets the subject common name (which never counts as an identity).
    pub fn common_name(mut self, cn: &str) -> Self {
        self.common_name = Some(cn.to_owned());
        self
    }

    /// Sets the extended key usages.
    pub fn eku(mut self, eku: Eku) -> Self {
        self.eku = eku;
        self
    }

    /// Sets the validity period, in Unix seconds.
    pub fn valid(mut self, not_before: u64, not_after: u64) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Marks the certificate as a CA (basicConstraints cA=TRUE), as
    /// `openssl req -x509` does for self-signed server certificates.
    pub fn ca_flag(mut self) -> Self {
        self.ca_flag = true;
        self
    }

    fn params(&self) -> CertificateParams {
        let mut params = CertificateParams::default();
        set_validity(&mut params, self.not_before, self.not_after);
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = &self.common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, cn.as_str());
        }
        if self.ca_flag {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
            ];
        } else {
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        }
        params.extended_key_usages = match self.eku {
            Eku::Absent => Vec::new(),
            Eku::ServerAuth => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Eku::ClientAuth => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Eku::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Eku::EmailOnly => vec![ExtendedKeyUsagePurpose::EmailProtection],
        };
        if !self.sans.is_empty() {
            let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 17], san_der(&self.sans));
            // RFC 5280 4.2.1.6: critical when the subject is empty.
            ext.set_criticality(self.common_name.is_none());
            params.custom_extensions.push(ext);
        }
        params
    }
}

/// A test certificate authority (root, or intermediate below another).
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// This CA's certificate and those above it, excluding the root.
    intermediates: Vec<CertificateDer<'static>>,
}

impl TestCa {
    /// A root CA named `name`, valid [`NOT_BEFORE`]..[`NOT_AFTER`].
    pub fn new(name: &str) -> Self {
        TestCa::with_validity(name, NOT_BEFORE, NOT_AFTER)
    }

    /// A root CA with the given validity (Unix seconds).
    pub fn with_validity(name: &str, not_before: u64, not_after: u64) -> Self {
        let key = KeyPair::generate().expect("rcgen generates a P-256 key");
        let issuer = CertifiedIssuer::self_signed(ca_params(name, not_before, not_after), key)
            .expect("rcgen signs a root");
        TestCa {
            issuer,
            intermediates: Vec::new(),
        }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate().expect("rcgen generates a P-256 key");
        let issuer =
            CertifiedIssuer::signed_by(ca_params(name, NOT_BEFORE, NOT_AFTER), key, &self.issuer)
                .expect("rcgen signs an intermediate");
        let mut intermediates = vec![issuer.der().clone()];
        intermediates.extend(self.intermediates.iter().cloned());
        TestCa {
            issuer,
            intermediates,
        }
    }

    /// This CA's certificate.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// This CA's certificate in PEM, e.g. for a trust bundle file.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Trust anchors holding this CA only.
    pub fn trust_anchors(&self) -> TrustAnchors {
        TrustAnchors::from_der_roots(vec![self.cert_der()]).expect("rcgen output is X.509")
    }

    /// A leaf certificate issued by this CA, whose chain carries the
    /// intermediates up to (not including) the root.
    pub fn issue(&self, spec: &LeafSpec) -> TestCert {
        let key = KeyPair::generate().expect("rcgen generates a P-256 key");
        let leaf = spec
            .params()
            .signed_by(&key, &self.issuer)
            .expect("rcgen signs a leaf");
        let mut chain = vec![leaf.der().clone()];
        chain.extend(self.intermediates.iter().cloned());
        TestCert {
            chain,
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A leaf certificate chain (end entity first) and its private key.
#[derive(Clone, Debug)]
pub struct TestCert {
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
    key_pem: String,
}

impl TestCert {
    /// A self-signed leaf certificate.
    pub fn self_signed(spec: &LeafSpec) -> TestCert {
        let key = KeyPair::generate().expect("rcgen generates a P-256 key");
        let cert = spec
            .params()
            .self_signed(&key)
            .expect("rcgen signs a self-signed leaf");
        TestCert {
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        }
    }

    /// The end-entity certificate.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The chain, end entity first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The chain in PEM, end entity first (a certificate file).
    pub fn chain_pem(&self) -> String {
        self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect()
    }

    /// The private key, PKCS#8.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// The private key in PEM (`PRIVATE KEY`, a key file).
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// The chain and key as our TLS identity.
    pub fn identity(&self) -> LocalIdentity {
        LocalIdentity::new(self.chain.clone(), self.key_der()).expect("rcgen output pairs")
    }
}

/// Runs a handshake between two connections in memory, moving records
/// until neither has anything to send. Fails with the first error either
/// side reports, or if the handshake stalls.
pub fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..64 {
        let moved = transfer(client, server)? | transfer(server, client)?;
        if !moved {
            return if client.is_handshaking() || server.is_handshaking() {
                Err(rustls::Error::General("handshake stalled".into()))
            } else {
                Ok(())
            };
        }
    }
    Err(rustls::Error::General("handshake did not settle".into()))
}

/// Moves every pending TLS record from `from` to `to` and lets `to`
/// process them. True if anything moved.
pub fn transfer<A: SideData, B: SideData>(
    from: &mut ConnectionCommon<A>,
    to: &mut ConnectionCommon<B>,
) -> Result<bool, rustls::Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        to.process_new_packets()?;
    }
    Ok(!wire.is_empty())
}

fn ca_params(name: &str, not_before: u64, not_after: u64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, not_before, not_after);
    params
}

fn set_validity(params: &mut CertificateParams, not_before: u64, not_after: u64) {
    let epoch = date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(not_before);
    params.not_after = epoch + Duration::from_secs(not_after);
}

/// GeneralNames DER for the entries (RFC 5280 4.2.1.6).
fn san_der(sans: &[San]) -> Vec<u8> {
    /// 1.3.6.1.5.5.7.8.{7 SRVName, 5 xmppAddr}, content octets.
    fn other_name(last_arc: u8, string_tag: u8, value: &str) -> Vec<u8> {
        let mut body = tlv(0x06, &[0x2b, 6, 1, 5, 5, 7, 8, last_arc]);
        body.extend(tlv(0xa0, &tlv(string_tag, value.as_bytes())));
        tlv(0xa0, &body)
    }
    let mut names = Vec::new();
    for san in sans {
        names.extend(match san {
            San::Dns(name) => tlv(0x82, name.as_bytes()),
            San::Uri(uri) => tlv(0x86, uri.as_bytes()),
            San::Srv(srv) => other_name(7, 0x16, srv),
            San::XmppAddr(jid) => other_name(5, 0x0c, jid),
        });
    }
    tlv(0x30, &names)
}

/// One DER TLV with a definite, minimal length.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(B64[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{cert_identities, parse_pem_certs, Identity};

    #[test]
    fn long_tlv_lengths() {
        assert_eq!(tlv(0x04, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 1, 44]);
    }

    #[test]
    fn pem_round_trips() {
        let cert = TestCert::self_signed(&LeafSpec::xmpp_server("example.com"));
        assert_eq!(
            parse_pem_certs(&cert.chain_pem()).ok(),
            Some(cert.chain().to_vec())
        );
    }

    #[test]
    fn specs_become_identities() {
        let cert = TestCert::self_signed(&LeafSpec::xmpp_server("example.com").common_name("x"));
        let ids = cert_identities(cert.cert_der()).unwrap_or_default();
        assert_eq!(
            ids.names(),
            [
                Identity::Dns("example.com".into()),
                Identity::Srv {
                    service: "xmpp-server".into(),
                    domain: "example.com".into()
                },
                Identity::Srv {
                    service: "xmpps-server".into(),
                    domain: "example.com".into()
                },
                Identity::XmppAddr("example.com".into()),
            ]
        );
    }
}
