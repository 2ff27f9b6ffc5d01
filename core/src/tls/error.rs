//! Errors of loading our own certificate, key and trust anchors.

use std::fmt;

/// Why a certificate, key or trust bundle handed to [`super`] cannot be
/// used. These come from configuration, so each says what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsError {
    /// The PEM text could not be read.
    Pem(String),
    /// No certificate was found where one was expected.
    NoCertificates,
    /// No private key was found in the PEM text.
    NoPrivateKey,
    /// A certificate that is not well-formed X.509 (the detail says why).
    BadCertificate(String),
    /// A private key of a kind or encoding rustls/ring cannot use.
    BadPrivateKey(String),
    /// The private key does not belong to the first certificate of the chain.
    KeyMismatch,
    /// A domain that cannot be a TLS server name.
    InvalidDomain(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem(e) => write!(f, "unreadable PEM: {e}"),
            TlsError::NoCertificates => f.write_str("no certificate found"),
            TlsError::NoPrivateKey => f.write_str("no private key found"),
            TlsError::BadCertificate(e) => write!(f, "bad certificate: {e}"),
            TlsError::BadPrivateKey(e) => write!(f, "unusable private key: {e}"),
            TlsError::KeyMismatch => {
                f.write_str("the private key does not match the certificate's public key")
            }
            TlsError::InvalidDomain(d) => write!(f, "not a valid TLS server name: {d:?}"),
        }
    }
}

impl std::error::Error for TlsError {}
