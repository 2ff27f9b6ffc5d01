//! Our certificate and key, and the rustls configurations built from them.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, Error, InconsistentKeys, ServerConfig, SupportedProtocolVersion};

use super::identity::{cert_identities, to_ascii, CertError, Identities};
use super::verify::{DeferServerCert, OfferClientAuth};
use super::{CallerClock, TlsError};

/// ALPN protocol id for direct TLS s2s connections (XEP-0368).
pub const ALPN_XMPP_SERVER: &[u8] = b"xmpp-server";

/// TLS 1.3 and 1.2 (RFC 7590 and RFC 9325: nothing older). The ring
/// provider only has forward-secret AEAD suites for both.
static VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];

/// Our certificate chain and its private key, checked to belong together.
/// The same identity serves as server certificate on inbound streams and as
/// client certificate on outbound ones (for SASL EXTERNAL, XEP-0178).
#[derive(Clone)]
pub struct LocalIdentity {
    key: Arc<CertifiedKey>,
}

impl fmt::Debug for LocalIdentity {
    /// Shows the chain length only, never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalIdentity")
            .field("chain_len", &self.key.cert.len())
            .finish_non_exhaustive()
    }
}

impl LocalIdentity {
    /// Pairs a chain (end entity first) with its key (PKCS#8, PKCS#1 or
    /// SEC1; RSA, ECDSA P-256/P-384 or Ed25519), refusing a key that does
    /// not match the end-entity certificate.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::NoCertificates);
        }
        let key =
            CertifiedKey::from_der(chain, key, &ring::default_provider()).map_err(|e| match e {
                Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => TlsError::KeyMismatch,
                Error::InvalidCertificate(e) => TlsError::BadCertificate(e.to_string()),
                other => TlsError::BadPrivateKey(other.to_string()),
            })?;
        Ok(LocalIdentity { key: Arc::new(key) })
    }

    /// [`new`](Self::new) from PEM texts: the chain, and the key.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        LocalIdentity::new(parse_pem_certs(chain_pem)?, parse_pem_key(key_pem)?)
    }

    /// The chain, end entity first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.key.cert
    }

    /// The XMPP identities our certificate presents (to check that it names
    /// every local domain, and for `xfed plan`).
    pub fn identities(&self) -> Result<Identities, CertError> {
        match self.key.cert.first() {
            Some(cert) => cert_identities(cert),
            None => Ok(Identities::default()),
        }
    }
}

/// Every certificate in a PEM text, in order; other PEM sections (keys,
/// parameters) are skipped. At least one is required.
pub fn parse_pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates);
    }
    Ok(certs)
}

/// The first private key in a PEM text (`PRIVATE KEY`, `RSA PRIVATE KEY`
/// or `EC PRIVATE KEY`).
pub fn parse_pem_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey,
        other => TlsError::Pem(other.to_string()),
    })
}

/// The TLS server name (SNI) for an XMPP domain, in A-label form.
pub fn server_name(domain: &str) -> Result<ServerName<'static>, TlsError> {
    let invalid = || TlsError::InvalidDomain(domain.to_owned());
    let ascii = to_ascii(domain).ok_or_else(invalid)?;
    ServerName::try_from(ascii.into_owned()).map_err(|_| invalid())
}

/// Configuration for inbound STARTTLS streams (port 5269). Build it once
/// and share it: it holds the session-resumption cache.
pub fn server_config(identity: &LocalIdentity, clock: Arc<CallerClock>) -> Arc<ServerConfig> {
    build_server(identity, clock, Vec::new())
}

/// Configuration for inbound direct TLS streams (XEP-0368, port 5270):
/// as [`server_config`], and if the peer offers ALPN it must offer
/// `xmpp-server`.
pub fn direct_tls_server_config(
    identity: &LocalIdentity,
    clock: Arc<CallerClock>,
) -> Arc<ServerConfig> {
    build_server(identity, clock, vec![ALPN_XMPP_SERVER.to_vec()])
}

/// Configuration for outbound STARTTLS streams; `identity` is presented as
/// client certificate when the peer asks. Connect with the target domain
/// as [`server_name`]. Build it once and share it.
pub fn client_config(identity: &LocalIdentity, clock: Arc<CallerClock>) -> Arc<ClientConfig> {
    build_client(Some(identity), clock, Vec::new())
}

/// Configuration for outbound direct TLS streams (XEP-0368): as
/// [`client_config`], offering ALPN `xmpp-server`.
pub fn direct_tls_client_config(
    identity: &LocalIdentity,
    clock: Arc<CallerClock>,
) -> Arc<ClientConfig> {
    build_client(Some(identity), clock, vec![ALPN_XMPP_SERVER.to_vec()])
}

/// Configuration for `xfed plan --check`'s probes: no client
/// certificate (the probe proves nothing about itself), any server chain
/// accepted by the handshake and judged afterwards with
/// [`check_peer`](super::check_peer), ALPN `xmpp-server` when `alpn`.
pub fn probe_client_config(clock: Arc<CallerClock>, alpn: bool) -> Arc<ClientConfig> {
    let alpn = if alpn {
        vec![ALPN_XMPP_SERVER.to_vec()]
    } else {
        Vec::new()
    };
    build_client(None, clock, alpn)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn build_server(
    identity: &LocalIdentity,
    clock: Arc<CallerClock>,
    alpn: Vec<Vec<u8>>,
) -> Arc<ServerConfig> {
    let provider = provider();
    let verifier = Arc::new(OfferClientAuth::new(
        provider.signature_verification_algorithms,
    ));
    let mut config = ServerConfig::builder_with_details(provider, clock)
        .with_protocol_versions(VERSIONS)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.key.clone())));
    config.alpn_protocols = alpn;
    Arc::new(config)
}

/// A client configuration that defers the server's chain to
/// [`check_peer`](super::check_peer) and presents `identity`, if any,
/// when the server asks for a client certificate.
fn build_client(
    identity: Option<&LocalIdentity>,
    clock: Arc<CallerClock>,
    alpn: Vec<Vec<u8>>,
) -> Arc<ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(DeferServerCert::new(
        provider.signature_verification_algorithms,
    ));
    let builder = ClientConfig::builder_with_details(provider, clock)
        .with_protocol_versions(VERSIONS)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(identity) => builder
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity.key.clone()))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn;
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert!(server_name("example.com").is_ok());
        assert_eq!(
            server_name("bücher.example")
                .ok()
                .map(|n| n.to_str().into_owned()),
            Some("xn--bcher-kva.example".to_owned())
        );
        assert!(server_name("").is_err());
        assert!(server_name("a..b").is_err());
        assert!(server_name("exa mple.com").is_err());
    }

    #[test]
    fn pem_errors() {
        assert_eq!(parse_pem_certs(""), Err(TlsError::NoCertificates));
        assert_eq!(parse_pem_key("nothing here"), Err(TlsError::NoPrivateKey));
        assert!(matches!(
            parse_pem_certs("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            Err(TlsError::Pem(_))
        ));
    }

    #[test]
    fn identity_refuses_empty_chain_and_garbage_key() {
        assert_eq!(
            LocalIdentity::new(Vec::new(), PrivateKeyDer::Pkcs8(vec![1, 2, 3].into())).map(|_| ()),
            Err(TlsError::NoCertificates)
        );
        assert!(matches!(
            LocalIdentity::new(
                vec![CertificateDer::from(vec![0x30, 0])],
                PrivateKeyDer::Pkcs8(vec![1, 2, 3].into())
            ),
            Err(TlsError::BadPrivateKey(_))
        ));
    }
}
