//! TLS for s2s streams: rustls configurations and peer certificate checks.
//!
//! rustls connections are sans-IO themselves, so a session owns its
//! `ServerConnection` / `ClientConnection` and the runtime only moves
//! ciphertext. Time comes from the caller: rustls reads a [`CallerClock`],
//! and [`check_peer`] takes `now_unix` as an argument.
//!
//! The handshake never fails on the peer certificate's trust or name (only
//! on its handshake signature): dialback over TLS must work with
//! self-signed peers. After the handshake the session calls [`check_peer`]
//! on `peer_certificates()`, which validates the chain and the RFC 6120 /
//! RFC 9525 identity (dNSName, SRVName, xmppAddr; never the common name).

mod clock;
mod config;
mod error;
mod identity;
mod verify;
mod x509;

#[cfg(any(test, feature = "test-ca"))]
pub mod testing;

pub use clock::CallerClock;
pub use config::{
    client_config, direct_tls_client_config, direct_tls_server_config, parse_pem_certs,
    parse_pem_key, probe_client_config, server_config, server_name, LocalIdentity,
    ALPN_XMPP_SERVER,
};
pub use error::TlsError;
pub use identity::{
    cert_identities, cert_not_after, cert_tls_usage, CertError, Identities, Identity, TlsUsage,
};
pub use verify::{check_peer, check_peer_with_expiry, PeerCert, TrustAnchors, UntrustedReason};

/// rustls and its key types, re-exported so that the runtimes and tests use
/// exactly the version the core was built with.
pub use rustls;
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
