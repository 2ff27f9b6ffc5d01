//! Peer certificates: accepted by the handshake as they are, judged after it.
//!
//! XEP-0220 dialback over TLS must work with peers whose certificates we
//! cannot validate (self-signed, private CA, wrong name), so the handshake
//! never fails on trust or name: the verifiers below only check the TLS
//! handshake signatures, which prove the peer holds the key of the
//! certificate it sent. The session then calls [`check_peer`] on
//! `peer_certificates()` and decides (SASL EXTERNAL, dialback without
//! dialing back, or dialback, per partner policy).

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use webpki::{
    EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeId, KeyPurposeIdIter, KeyUsage,
    RequiredEkuNotFoundContext,
};

use super::identity::cert_identities;
use super::x509;
use super::TlsError;

/// The certificate authorities whose chains [`check_peer`] accepts.
#[derive(Clone, Debug, Default)]
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustAnchors {
    /// No anchors: every peer is untrusted, as for a dialback-only deployment.
    pub fn empty() -> Self {
        TrustAnchors::default()
    }

    /// Anchors from DER root certificates, refusing the whole set if one
    /// cannot be read: for a CA bundle the operator configured, where a bad
    /// entry is a mistake to report.
    pub fn from_der_roots(roots: Vec<CertificateDer<'_>>) -> Result<Self, TlsError> {
        let mut anchors = Vec::with_capacity(roots.len());
        for root in &roots {
            let anchor = webpki::anchor_from_trusted_cert(root)
                .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
            anchors.push(anchor.to_owned());
        }
        Ok(TrustAnchors { anchors })
    }

    /// Anchors from DER root certificates, skipping those that cannot be
    /// read: for the system store, which may hold odd legacy roots. Returns
    /// how many were skipped, for a log line.
    pub fn from_der_roots_lossy(roots: Vec<CertificateDer<'_>>) -> (Self, usize) {
        let mut skipped = 0;
        let mut anchors = Vec::with_capacity(roots.len());
        for root in &roots {
            match webpki::anchor_from_trusted_cert(root) {
                Ok(anchor) => anchors.push(anchor.to_owned()),
                Err(_) => skipped += 1,
            }
        }
        (TrustAnchors { anchors }, skipped)
    }

    /// How many anchors there are.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// True when no certificate can be trusted.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    fn has_subject(&self, subject: &[u8]) -> bool {
        self.anchors.iter().any(|a| a.subject.as_ref() == subject)
    }
}

/// What the peer's certificate proves, from [`check_peer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerCert {
    /// The peer sent no certificate (a client may, on an inbound stream).
    None,
    /// The chain is valid at the caller's time up to a trust anchor, and the
    /// certificate names the domain: strong authentication (SASL EXTERNAL,
    /// dialback without dialing back).
    Trusted,
    /// A certificate that proves nothing; dialback may still authenticate
    /// the peer.
    Untrusted {
        /// Why, for the log and for the stream error if policy refuses.
        reason: UntrustedReason,
    },
}

/// Why a peer certificate is not trusted for a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UntrustedReason {
    /// A certificate of the chain was past its notAfter at the caller's time.
    Expired,
    /// A certificate of the chain was before its notBefore at the caller's time.
    NotYetValid,
    /// The chain does not lead to any trust anchor.
    UnknownIssuer,
    /// A lone certificate that issued itself and is not an anchor: usual
    /// for servers that only do dialback.
    SelfSigned,
    /// The chain is valid but names none of the domain's identifiers.
    NameMismatch,
    /// Its extended key usages include neither serverAuth nor clientAuth.
    WrongUsage,
    /// Not well-formed DER X.509 (the detail says where).
    BadEncoding(String),
    /// Anything else the path validation refused (bad signature, a CA used
    /// as end entity, name constraints, unsupported algorithm ...).
    Invalid(String),
}

impl fmt::Display for UntrustedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UntrustedReason::Expired => f.write_str("certificate expired"),
            UntrustedReason::NotYetValid => f.write_str("certificate not yet valid"),
            UntrustedReason::UnknownIssuer => f.write_str("certificate issuer not trusted"),
            UntrustedReason::SelfSigned => f.write_str("self-signed certificate"),
            UntrustedReason::NameMismatch => f.write_str("certificate does not name the domain"),
            UntrustedReason::WrongUsage => {
                f.write_str("certificate usage excludes TLS server and client authentication")
            }
            UntrustedReason::BadEncoding(e) => write!(f, "malformed certificate: {e}"),
            UntrustedReason::Invalid(e) => write!(f, "invalid certificate: {e}"),
        }
    }
}

/// Judges the chain a peer presented (`peer_certificates()`, end entity
/// first) against `trust` at `now_unix` (the caller's wall clock, seconds
/// since the Unix epoch), for the XMPP domain `domain` (the stream's `from`
/// inbound, our `to` outbound; never an SRV target).
///
/// The path is validated with webpki, accepting an end-entity certificate
/// whose extended key usages include serverAuth or clientAuth, or that has
/// none (XEP-0178: servers use one certificate both ways, and many lack
/// clientAuth). Revocation is not checked. Then the identity is matched as
/// [`Identities::matches`](super::Identities::matches) does; there is no
/// common-name fallback.
pub fn check_peer(
    chain: &[CertificateDer<'_>],
    trust: &TrustAnchors,
    now_unix: u64,
    domain: &str,
) -> PeerCert {
    check_peer_with_expiry(chain, trust, now_unix, domain).0
}

/// [`check_peer`], and for a trusted peer when its certificate stops being
/// valid: the earliest notAfter along the validated path (end entity and
/// the intermediates used, not extra certificates the peer sent), in Unix
/// seconds. RFC 6120 section 13.7.2.3 closes a stream then with `<reset/>`.
pub fn check_peer_with_expiry(
    chain: &[CertificateDer<'_>],
    trust: &TrustAnchors,
    now_unix: u64,
    domain: &str,
) -> (PeerCert, Option<u64>) {
    let Some((end_entity, intermediates)) = chain.split_first() else {
        return (PeerCert::None, None);
    };
    let untrusted = |reason| (PeerCert::Untrusted { reason }, None);
    let fields = match x509::parse(end_entity) {
        Ok(fields) => fields,
        Err(e) => return untrusted(UntrustedReason::BadEncoding(e.0)),
    };
    let cert = match EndEntityCert::try_from(end_entity) {
        Ok(cert) => cert,
        Err(e) => return untrusted(UntrustedReason::BadEncoding(e.to_string())),
    };
    let algorithms = crypto::ring::default_provider().signature_verification_algorithms;
    let now = UnixTime::since_unix_epoch(Duration::from_secs(now_unix));
    let path_not_after = Cell::new(fields.not_after);
    let record_expiry = |path: &webpki::VerifiedPath<'_>| {
        let mut earliest = fields.not_after;
        for issuer in path.intermediate_certificates() {
            let der = issuer.der();
            let not_after = x509::parse(&der)
                .map_err(|_| webpki::Error::BadDer)?
                .not_after;
            earliest = earliest.min(not_after);
        }
        path_not_after.set(earliest);
        Ok(())
    };
    let verified = cert.verify_for_usage(
        algorithms.all,
        &trust.anchors,
        intermediates,
        now,
        XmppServerUsage,
        None,
        Some(&record_expiry),
    );
    if let Err(e) = verified {
        let self_signed = chain.len() == 1
            && fields.issuer == fields.subject
            && !trust.has_subject(fields.subject);
        let reason = if self_signed {
            UntrustedReason::SelfSigned
        } else {
            reason_for(e)
        };
        return untrusted(reason);
    }
    match cert_identities(end_entity) {
        Ok(ids) if ids.matches(domain) => (PeerCert::Trusted, Some(path_not_after.get())),
        Ok(_) => untrusted(UntrustedReason::NameMismatch),
        Err(e) => untrusted(UntrustedReason::BadEncoding(e.0)),
    }
}

fn reason_for(e: webpki::Error) -> UntrustedReason {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => UntrustedReason::Expired,
        E::CertNotValidYet { .. } => UntrustedReason::NotYetValid,
        E::UnknownIssuer => UntrustedReason::UnknownIssuer,
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => UntrustedReason::WrongUsage,
        E::BadDer
        | E::BadDerTime
        | E::TrailingData(_)
        | E::MalformedExtensions
        | E::ExtensionValueInvalid
        | E::InvalidCertValidity
        | E::InvalidSerialNumber
        | E::UnsupportedCertVersion => UntrustedReason::BadEncoding(format!("{e:?}")),
        other => UntrustedReason::Invalid(format!("{other:?}")),
    }
}

const SERVER_AUTH: KeyPurposeId<'static> = KeyPurposeId::new(&[0x2b, 6, 1, 5, 5, 7, 3, 1]);
const CLIENT_AUTH: KeyPurposeId<'static> = KeyPurposeId::new(&[0x2b, 6, 1, 5, 5, 7, 3, 2]);

/// serverAuth or clientAuth if the certificate lists usages; anything if
/// it lists none (RFC 5280 4.2.1.12).
struct XmppServerUsage;

impl ExtendedKeyUsageValidator for XmppServerUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut empty = true;
        let mut present = Vec::new();
        for id in iter {
            let id = id?;
            empty = false;
            if id == SERVER_AUTH || id == CLIENT_AUTH {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        if empty {
            Ok(())
        } else {
            Err(webpki::Error::RequiredEkuNotFoundContext(
                RequiredEkuNotFoundContext {
                    required: KeyUsage::server_auth(),
                    present,
                },
            ))
        }
    }
}

/// Client side of the handshake: any chain is accepted here (judged later by
/// [`check_peer`]), but the server's handshake signature is verified
/// against the certificate it sent.
#[derive(Debug)]
pub(crate) struct DeferServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl DeferServerCert {
    pub(crate) fn new(algorithms: WebPkiSupportedAlgorithms) -> Self {
        DeferServerCert { algorithms }
    }
}

impl ServerCertVerifier for DeferServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Server side of the handshake: asks for a client certificate (RFC 6120
/// 5.4.3.3: SHOULD, so that SASL EXTERNAL is possible) without requiring
/// one and without naming acceptable CAs, accepts any chain here (judged
/// later by [`check_peer`]), and verifies the client's handshake signature.
#[derive(Debug)]
pub(crate) struct OfferClientAuth {
    algorithms: WebPkiSupportedAlgorithms,
}

impl OfferClientAuth {
    pub(crate) fn new(algorithms: WebPkiSupportedAlgorithms) -> Self {
        OfferClientAuth { algorithms }
    }
}

impl ClientCertVerifier for OfferClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_chain_is_none() {
        assert_eq!(
            check_peer(&[], &TrustAnchors::empty(), 0, "example.com"),
            PeerCert::None
        );
    }

    #[test]
    fn garbage_is_bad_encoding() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        assert!(matches!(
            check_peer(&[junk], &TrustAnchors::empty(), 0, "example.com"),
            PeerCert::Untrusted {
                reason: UntrustedReason::BadEncoding(_)
            }
        ));
        assert!(TrustAnchors::from_der_roots(vec![CertificateDer::from(vec![1, 2, 3])]).is_err());
        let (anchors, skipped) =
            TrustAnchors::from_der_roots_lossy(vec![CertificateDer::from(vec![1, 2, 3])]);
        assert!(anchors.is_empty());
        assert_eq!(skipped, 1);
    }
}
