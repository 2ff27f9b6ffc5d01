//! Peer certificate checks (RFC 6120 13.7, RFC 9525, XEP-0178) and in-memory
//! TLS handshakes with the configurations of `xfed_core::tls`.
//!
//! Run with `cargo test -p xfed-core --features test-ca --test tls_identity`.

use std::io::{Read, Write};
use std::sync::Arc;

use xfed_core::tls::rustls::crypto::ring::default_provider;
use xfed_core::tls::rustls::sign::{CertifiedKey, SingleCertAndKey};
use xfed_core::tls::rustls::{
    self, ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, ServerConfig,
    ServerConnection,
};
use xfed_core::tls::testing::{
    handshake, transfer, Eku, LeafSpec, San, TestCa, TestCert, NOT_AFTER, NOT_BEFORE, NOW,
};
use xfed_core::tls::{
    cert_identities, check_peer, check_peer_with_expiry, client_config, direct_tls_client_config,
    direct_tls_server_config, parse_pem_certs, parse_pem_key, server_config, server_name,
    CallerClock, Identity, LocalIdentity, PeerCert, TlsError, TrustAnchors, UntrustedReason,
    ALPN_XMPP_SERVER,
};

const DAY: u64 = 86_400;

fn untrusted(reason: UntrustedReason) -> PeerCert {
    PeerCert::Untrusted { reason }
}

/// `check_peer` for a leaf issued by a fresh CA, at `NOW`.
fn issued(spec: LeafSpec, domain: &str) -> PeerCert {
    let ca = TestCa::new("Test CA");
    let cert = ca.issue(&spec);
    check_peer(cert.chain(), &ca.trust_anchors(), NOW, domain)
}

// ---------------------------------------------------------------- identities

#[test]
fn dns_name_from_a_trusted_ca() {
    let spec = LeafSpec::new().dns("example.com");
    assert_eq!(issued(spec.clone(), "example.com"), PeerCert::Trusted);
    assert_eq!(issued(spec.clone(), "EXAMPLE.COM"), PeerCert::Trusted);
    assert_eq!(
        issued(spec.clone(), "example.org"),
        untrusted(UntrustedReason::NameMismatch)
    );
    assert_eq!(
        issued(spec, "xmpp.example.com"),
        untrusted(UntrustedReason::NameMismatch)
    );
}

#[test]
fn srv_name_only() {
    let spec = LeafSpec::new().srv("_xmpp-server.example.com");
    assert_eq!(issued(spec.clone(), "example.com"), PeerCert::Trusted);
    assert_eq!(
        issued(spec, "xmpp-server.example.com"),
        untrusted(UntrustedReason::NameMismatch)
    );
    // The direct TLS service name counts too (XEP-0368).
    let direct = LeafSpec::new().srv("_xmpps-server.example.com");
    assert_eq!(issued(direct, "example.com"), PeerCert::Trusted);
    // A client-to-server SRV-ID does not make a server identity.
    let c2s = LeafSpec::new().srv("_xmpp-client.example.com");
    assert_eq!(
        issued(c2s, "example.com"),
        untrusted(UntrustedReason::NameMismatch)
    );
}

#[test]
fn xmpp_addr_only() {
    let spec = LeafSpec::new().xmpp_addr("example.com");
    assert_eq!(issued(spec, "example.com"), PeerCert::Trusted);
    // A user's address names an account, not the server.
    let user = LeafSpec::new().xmpp_addr("admin@example.com");
    assert_eq!(
        issued(user, "example.com"),
        untrusted(UntrustedReason::NameMismatch)
    );
    // Internationalized: the U-label xmppAddr matches the A-label reference.
    let idn = LeafSpec::new().xmpp_addr("bücher.example");
    assert_eq!(issued(idn, "xn--bcher-kva.example"), PeerCert::Trusted);
}

#[test]
fn rfc_6120_example_certificate() {
    // RFC 6120 13.7.1.2.2: im.example.com hosted at x.example.com; the CN
    // is a human name and ignored.
    let spec = LeafSpec::new()
        .common_name("Example Hosting")
        .srv("_xmpp-client.im.example.com")
        .srv("_xmpp-server.im.example.com")
        .dns("im.example.com")
        .xmpp_addr("im.example.com");
    assert_eq!(issued(spec.clone(), "im.example.com"), PeerCert::Trusted);
    assert_eq!(
        issued(spec, "x.example.com"),
        untrusted(UntrustedReason::NameMismatch)
    );
}

#[test]
fn wildcard_rules() {
    let wildcard = LeafSpec::new().dns("*.example.com");
    assert_eq!(issued(wildcard.clone(), "a.example.com"), PeerCert::Trusted);
    assert_eq!(
        issued(wildcard.clone(), "example.com"),
        untrusted(UntrustedReason::NameMismatch)
    );
    assert_eq!(
        issued(wildcard, "a.b.example.com"),
        untrusted(UntrustedReason::NameMismatch)
    );
    for partial in ["a*.example.com", "*a.example.com", "a*b.example.com"] {
        assert_eq!(
            issued(LeafSpec::new().dns(partial), "ab.example.com"),
            untrusted(UntrustedReason::NameMismatch),
            "{partial}"
        );
    }
    assert_eq!(
        issued(LeafSpec::new().dns("a.*.example.com"), "a.b.example.com"),
        untrusted(UntrustedReason::NameMismatch)
    );
    // No wildcards in the otherName kinds.
    assert_eq!(
        issued(
            LeafSpec::new().srv("_xmpp-server.*.example.com"),
            "a.example.com"
        ),
        untrusted(UntrustedReason::NameMismatch)
    );
    assert_eq!(
        issued(LeafSpec::new().xmpp_addr("*.example.com"), "a.example.com"),
        untrusted(UntrustedReason::NameMismatch)
    );
}

#[test]
fn common_name_alone_is_refused() {
    let spec = LeafSpec::new().common_name("example.com");
    assert_eq!(
        issued(spec.clone(), "example.com"),
        untrusted(UntrustedReason::NameMismatch)
    );
    let cert = TestCert::self_signed(&spec);
    let ids = cert_identities(cert.cert_der());
    assert!(ids.as_ref().is_ok_and(|ids| ids.is_empty()), "{ids:?}");
    // A SAN of another kind does not bring the CN back either.
    let uri = LeafSpec::new()
        .common_name("example.com")
        .san(San::Uri("xmpp:example.com".into()));
    assert_eq!(
        issued(uri, "example.com"),
        untrusted(UntrustedReason::NameMismatch)
    );
}

#[test]
fn identities_are_listed_for_plan() {
    let cert = TestCa::new("CA").issue(&LeafSpec::xmpp_server("example.com").dns("*.example.com"));
    let ids = cert_identities(cert.cert_der()).map(|ids| {
        ids.names()
            .iter()
            .map(Identity::to_string)
            .collect::<Vec<_>>()
    });
    assert_eq!(
        ids,
        Ok(vec![
            "DNS:example.com".to_owned(),
            "SRVName:_xmpp-server.example.com".to_owned(),
            "SRVName:_xmpps-server.example.com".to_owned(),
            "xmppAddr:example.com".to_owned(),
            "DNS:*.example.com".to_owned(),
        ])
    );
    let ids = cert.identity().identities();
    assert!(ids
        .as_ref()
        .is_ok_and(|i| i.matches("example.com") && i.matches("muc.example.com")));
    assert!(ids.is_ok_and(|i| !i.matches("example.org")));
}

// ------------------------------------------------------------ time and trust

#[test]
fn validity_follows_the_callers_clock() {
    let ca = TestCa::new("Test CA");
    let not_before = NOW - 10 * DAY;
    let not_after = NOW + 10 * DAY;
    let cert = ca.issue(
        &LeafSpec::new()
            .dns("example.com")
            .valid(not_before, not_after),
    );
    let trust = ca.trust_anchors();
    let at = |t| check_peer(cert.chain(), &trust, t, "example.com");
    assert_eq!(at(NOW), PeerCert::Trusted);
    assert_eq!(at(not_before), PeerCert::Trusted);
    assert_eq!(at(not_after), PeerCert::Trusted);
    assert_eq!(at(not_after + 1), untrusted(UntrustedReason::Expired));
    assert_eq!(at(NOW + 365 * DAY), untrusted(UntrustedReason::Expired));
    assert_eq!(at(not_before - 1), untrusted(UntrustedReason::NotYetValid));
    assert_eq!(at(0), untrusted(UntrustedReason::NotYetValid));
    assert_eq!(
        check_peer_with_expiry(cert.chain(), &trust, NOW, "example.com"),
        (PeerCert::Trusted, Some(not_after))
    );
    assert_eq!(
        check_peer_with_expiry(cert.chain(), &trust, NOW, "example.org"),
        (untrusted(UntrustedReason::NameMismatch), None)
    );
}

#[test]
fn an_expired_issuer_expires_the_chain() {
    let ca = TestCa::new("Root");
    let intermediate = ca.intermediate("Intermediate");
    let cert = intermediate.issue(&LeafSpec::new().dns("example.com"));
    let trust = ca.trust_anchors();
    assert_eq!(
        check_peer_with_expiry(cert.chain(), &trust, NOW, "example.com"),
        (PeerCert::Trusted, Some(NOT_AFTER))
    );
    assert_eq!(
        check_peer(cert.chain(), &trust, NOT_AFTER + 1, "example.com"),
        untrusted(UntrustedReason::Expired)
    );
    // The intermediate is required: the leaf alone leads nowhere.
    assert_eq!(
        check_peer(&cert.chain()[..1], &trust, NOW, "example.com"),
        untrusted(UntrustedReason::UnknownIssuer)
    );
}

#[test]
fn expiry_is_the_earliest_along_the_path() {
    let ca = TestCa::new("Root");
    let intermediate = ca.intermediate("Intermediate");
    let leaf_expiry = NOW + 100 * DAY;
    let cert = intermediate.issue(
        &LeafSpec::new()
            .dns("example.com")
            .valid(NOT_BEFORE, leaf_expiry),
    );
    assert_eq!(
        check_peer_with_expiry(cert.chain(), &ca.trust_anchors(), NOW, "example.com"),
        (PeerCert::Trusted, Some(leaf_expiry))
    );
    let short_root = TestCa::with_validity("Short", NOT_BEFORE, NOW + DAY);
    let cert = short_root.issue(&LeafSpec::new().dns("example.com"));
    // The anchor's own validity is not checked (as in webpki and browsers).
    assert_eq!(
        check_peer_with_expiry(
            cert.chain(),
            &short_root.trust_anchors(),
            NOW,
            "example.com"
        ),
        (PeerCert::Trusted, Some(NOT_AFTER))
    );
}

#[test]
fn unknown_issuer() {
    let ours = TestCa::new("Our CA");
    let theirs = TestCa::new("Their CA");
    let cert = theirs.issue(&LeafSpec::xmpp_server("example.com"));
    assert_eq!(
        check_peer(cert.chain(), &ours.trust_anchors(), NOW, "example.com"),
        untrusted(UntrustedReason::UnknownIssuer)
    );
    assert_eq!(
        check_peer(cert.chain(), &TrustAnchors::empty(), NOW, "example.com"),
        untrusted(UntrustedReason::UnknownIssuer)
    );
    let both = TrustAnchors::from_der_roots(vec![ours.cert_der(), theirs.cert_der()]);
    assert_eq!(both.as_ref().map(TrustAnchors::len), Ok(2));
    let both = both.unwrap_or_default();
    assert_eq!(
        check_peer(cert.chain(), &both, NOW, "example.com"),
        PeerCert::Trusted
    );
}

#[test]
fn self_signed() {
    let cert = TestCert::self_signed(&LeafSpec::xmpp_server("example.com"));
    let anchors = TestCa::new("CA").trust_anchors();
    assert_eq!(
        check_peer(cert.chain(), &anchors, NOW, "example.com"),
        untrusted(UntrustedReason::SelfSigned)
    );
    // Also when expired, and when marked as a CA as `openssl req -x509` does.
    assert_eq!(
        check_peer(cert.chain(), &anchors, NOT_AFTER + 1, "example.com"),
        untrusted(UntrustedReason::SelfSigned)
    );
    let ca_flag = TestCert::self_signed(&LeafSpec::xmpp_server("example.com").ca_flag());
    assert_eq!(
        check_peer(ca_flag.chain(), &anchors, NOW, "example.com"),
        untrusted(UntrustedReason::SelfSigned)
    );
    // A private federation can pin a peer's self-signed certificate.
    let pinned = TrustAnchors::from_der_roots(vec![cert.cert_der().clone()]).unwrap_or_default();
    assert_eq!(
        check_peer(cert.chain(), &pinned, NOW, "example.com"),
        PeerCert::Trusted
    );
    assert_eq!(
        check_peer(cert.chain(), &pinned, NOT_AFTER + 1, "example.com"),
        untrusted(UntrustedReason::Expired)
    );
}

#[test]
fn extended_key_usages() {
    // XEP-0178: certificates without clientAuth must be accepted.
    for eku in [
        Eku::ServerAuth,
        Eku::ClientAuth,
        Eku::ServerAndClient,
        Eku::Absent,
    ] {
        assert_eq!(
            issued(LeafSpec::new().dns("example.com").eku(eku), "example.com"),
            PeerCert::Trusted,
            "{eku:?}"
        );
    }
    assert_eq!(
        issued(
            LeafSpec::new().dns("example.com").eku(Eku::EmailOnly),
            "example.com"
        ),
        untrusted(UntrustedReason::WrongUsage)
    );
}

#[test]
fn other_failures() {
    let ca = TestCa::new("CA");
    let cert = ca.issue(&LeafSpec::new().dns("example.com"));
    // A truncated certificate.
    let mut bytes = cert.cert_der().to_vec();
    bytes.truncate(bytes.len() - 10);
    let truncated = rustls::pki_types::CertificateDer::from(bytes);
    assert!(matches!(
        check_peer(&[truncated], &ca.trust_anchors(), NOW, "example.com"),
        PeerCert::Untrusted {
            reason: UntrustedReason::BadEncoding(_)
        }
    ));
    // A flipped bit in the signature.
    let mut bytes = cert.cert_der().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged = rustls::pki_types::CertificateDer::from(bytes);
    assert!(matches!(
        check_peer(&[forged], &ca.trust_anchors(), NOW, "example.com"),
        PeerCert::Untrusted {
            reason: UntrustedReason::Invalid(_)
        }
    ));
    // A CA certificate presented as a server's.
    let ca_leaf = ca.issue(&LeafSpec::new().dns("example.com").ca_flag());
    assert!(matches!(
        check_peer(ca_leaf.chain(), &ca.trust_anchors(), NOW, "example.com"),
        PeerCert::Untrusted {
            reason: UntrustedReason::Invalid(_)
        }
    ));
    assert_eq!(
        check_peer(&[], &ca.trust_anchors(), NOW, "example.com"),
        PeerCert::None
    );
}

// ----------------------------------------------------------------- PEM input

#[test]
fn pem_files() {
    let ca = TestCa::new("CA");
    let inter = ca.intermediate("Intermediate");
    let cert = inter.issue(&LeafSpec::xmpp_server("example.com"));
    let identity = LocalIdentity::from_pem(&cert.chain_pem(), &cert.key_pem());
    assert_eq!(
        identity.as_ref().map(|i| i.chain().to_vec()),
        Ok(cert.chain().to_vec())
    );
    let bundle = parse_pem_certs(&ca.cert_pem()).and_then(TrustAnchors::from_der_roots);
    assert_eq!(bundle.as_ref().map(TrustAnchors::len), Ok(1));
    assert_eq!(
        check_peer(
            cert.chain(),
            &bundle.unwrap_or_default(),
            NOW,
            "example.com"
        ),
        PeerCert::Trusted
    );
    // Key and certificate in one file, as some deployments keep them.
    let combined = format!("{}{}", cert.key_pem(), cert.chain_pem());
    assert_eq!(parse_pem_certs(&combined).map(|c| c.len()), Ok(2));
    assert!(parse_pem_key(&combined).is_ok());
    assert_eq!(
        parse_pem_key(&cert.chain_pem()).map(|_| ()),
        Err(TlsError::NoPrivateKey)
    );
    // Someone else's key.
    let other = TestCert::self_signed(&LeafSpec::new().dns("example.com"));
    assert_eq!(
        LocalIdentity::from_pem(&cert.chain_pem(), &other.key_pem()).map(|_| ()),
        Err(TlsError::KeyMismatch)
    );
}

// ---------------------------------------------------------- in-memory TLS

fn connect(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    domain: &str,
) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    let name = server_name(domain).map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut c = ClientConnection::new(client, name)?;
    let mut s = ServerConnection::new(server)?;
    handshake(&mut c, &mut s)?;
    Ok((c, s))
}

struct Pair {
    ca: TestCa,
    initiating: TestCert,
    receiving: TestCert,
    clock: Arc<CallerClock>,
}

/// capulet.example connects to montague.example; both hold certificates
/// from one CA.
fn pair() -> Pair {
    let ca = TestCa::new("Verona CA");
    Pair {
        initiating: ca.issue(&LeafSpec::xmpp_server("capulet.example")),
        receiving: ca.issue(&LeafSpec::xmpp_server("montague.example")),
        ca,
        clock: Arc::new(CallerClock::new(NOW)),
    }
}

#[test]
fn starttls_handshake_authenticates_both_ways() {
    let p = pair();
    let client = client_config(&p.initiating.identity(), p.clock.clone());
    let server = server_config(&p.receiving.identity(), p.clock.clone());
    let (mut c, mut s) = connect(client, server, "montague.example").expect("handshake");
    let trust = p.ca.trust_anchors();

    // Outbound: the server's certificate, checked for the domain we dialed.
    let server_chain = c.peer_certificates().unwrap_or_default();
    assert_eq!(server_chain, p.receiving.chain());
    assert_eq!(
        check_peer(server_chain, &trust, NOW, "montague.example"),
        PeerCert::Trusted
    );
    // Inbound: the client certificate reached the server (SASL EXTERNAL).
    let client_chain = s.peer_certificates().unwrap_or_default();
    assert_eq!(client_chain, p.initiating.chain());
    assert_eq!(
        check_peer(client_chain, &trust, NOW, "capulet.example"),
        PeerCert::Trusted
    );
    assert_eq!(
        check_peer(client_chain, &trust, NOW, "montague.example"),
        untrusted(UntrustedReason::NameMismatch)
    );
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(c.alpn_protocol(), None);
    assert_eq!(s.server_name(), Some("montague.example"));

    // Application data flows both ways.
    let header = b"<stream:stream to='montague.example'>";
    c.writer().write_all(header).expect("write");
    transfer(&mut c, &mut s).expect("transfer");
    let mut got = vec![0; header.len()];
    s.reader().read_exact(&mut got).expect("read");
    assert_eq!(&got, header);
    s.writer().write_all(b"<stream:features/>").expect("write");
    transfer(&mut s, &mut c).expect("transfer");
    let mut got = vec![0; 18];
    c.reader().read_exact(&mut got).expect("read");
    assert_eq!(&got, b"<stream:features/>");
}

#[test]
fn self_signed_peers_still_complete_the_handshake() {
    // Dialback over TLS: neither certificate can be validated.
    let clock = Arc::new(CallerClock::new(NOW));
    let a = TestCert::self_signed(&LeafSpec::xmpp_server("capulet.example"));
    let b = TestCert::self_signed(&LeafSpec::xmpp_server("montague.example"));
    let (c, s) = connect(
        client_config(&a.identity(), clock.clone()),
        server_config(&b.identity(), clock),
        "montague.example",
    )
    .expect("handshake");
    let trust = TrustAnchors::empty();
    assert_eq!(
        check_peer(
            c.peer_certificates().unwrap_or_default(),
            &trust,
            NOW,
            "montague.example"
        ),
        untrusted(UntrustedReason::SelfSigned)
    );
    assert_eq!(
        check_peer(
            s.peer_certificates().unwrap_or_default(),
            &trust,
            NOW,
            "capulet.example"
        ),
        untrusted(UntrustedReason::SelfSigned)
    );
}

#[test]
fn wrong_name_and_expired_certificates_complete_the_handshake() {
    let p = pair();
    // The server presents a certificate for another domain, expired by the
    // caller's clock; the handshake is not the place to refuse it.
    let stale =
        p.ca.issue(&LeafSpec::xmpp_server("verona.example").valid(NOT_BEFORE, NOT_BEFORE + DAY));
    let (c, _s) = connect(
        client_config(&p.initiating.identity(), p.clock.clone()),
        server_config(&stale.identity(), p.clock.clone()),
        "montague.example",
    )
    .expect("handshake");
    let chain = c.peer_certificates().unwrap_or_default();
    let trust = p.ca.trust_anchors();
    assert_eq!(
        check_peer(chain, &trust, NOW, "montague.example"),
        untrusted(UntrustedReason::Expired)
    );
    assert_eq!(
        check_peer(chain, &trust, NOT_BEFORE + 1, "montague.example"),
        untrusted(UntrustedReason::NameMismatch)
    );
    assert_eq!(
        check_peer(chain, &trust, NOT_BEFORE + 1, "verona.example"),
        PeerCert::Trusted
    );
}

#[test]
fn direct_tls_negotiates_alpn() {
    let p = pair();
    let (c, s) = connect(
        direct_tls_client_config(&p.initiating.identity(), p.clock.clone()),
        direct_tls_server_config(&p.receiving.identity(), p.clock.clone()),
        "montague.example",
    )
    .expect("handshake");
    assert_eq!(c.alpn_protocol(), Some(ALPN_XMPP_SERVER));
    assert_eq!(s.alpn_protocol(), Some(ALPN_XMPP_SERVER));
    assert_eq!(s.server_name(), Some("montague.example"));
    assert!(s.peer_certificates().is_some());

    // A client offering only another protocol is refused...
    let mut other = (*direct_tls_client_config(&p.initiating.identity(), p.clock.clone())).clone();
    other.alpn_protocols = vec![b"xmpp-client".to_vec()];
    let refused = connect(
        Arc::new(other),
        direct_tls_server_config(&p.receiving.identity(), p.clock.clone()),
        "montague.example",
    );
    assert!(refused.is_err());
    // ...but one offering none is served (ALPN is a SHOULD in XEP-0368).
    let (_c, s) = connect(
        client_config(&p.initiating.identity(), p.clock.clone()),
        direct_tls_server_config(&p.receiving.identity(), p.clock.clone()),
        "montague.example",
    )
    .expect("handshake");
    assert_eq!(s.alpn_protocol(), None);
}

/// A stock rustls client (TLS 1.2 only, validating with the CA, optionally
/// presenting a certificate) against our server configuration.
fn stock_client(ca: &TestCa, cert: Option<&TestCert>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der()).expect("root");
    let builder = ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_root_certificates(roots);
    Arc::new(match cert {
        Some(cert) => builder
            .with_client_auth_cert(cert.chain().to_vec(), cert.key_der())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    })
}

#[test]
fn tls12_client_certificate_reaches_our_server() {
    let p = pair();
    let (c, s) = connect(
        stock_client(&p.ca, Some(&p.initiating)),
        server_config(&p.receiving.identity(), p.clock.clone()),
        "montague.example",
    )
    .expect("handshake");
    assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(
        check_peer(
            s.peer_certificates().unwrap_or_default(),
            &p.ca.trust_anchors(),
            NOW,
            "capulet.example"
        ),
        PeerCert::Trusted
    );
}

#[test]
fn a_client_without_certificate_is_served() {
    // Client authentication is offered, not required (dialback peers).
    let p = pair();
    let (_c, s) = connect(
        stock_client(&p.ca, None),
        server_config(&p.receiving.identity(), p.clock.clone()),
        "montague.example",
    )
    .expect("handshake");
    assert_eq!(s.peer_certificates(), None);
    assert_eq!(
        check_peer(
            s.peer_certificates().unwrap_or_default(),
            &p.ca.trust_anchors(),
            NOW,
            "capulet.example"
        ),
        PeerCert::None
    );
}

#[test]
fn tls12_server_and_our_client() {
    let p = pair();
    let server = ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_no_client_auth()
        .with_single_cert(p.receiving.chain().to_vec(), p.receiving.key_der())
        .expect("server");
    let (c, _s) = connect(
        client_config(&p.initiating.identity(), p.clock.clone()),
        Arc::new(server),
        "montague.example",
    )
    .expect("handshake");
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(
        check_peer(
            c.peer_certificates().unwrap_or_default(),
            &p.ca.trust_anchors(),
            NOW,
            "montague.example"
        ),
        PeerCert::Trusted
    );
}

/// A certificate chain served with a key that is not its own: the server
/// cannot sign for the certificate it shows.
fn impostor_key(cert: &TestCert, key_of: &TestCert) -> Arc<CertifiedKey> {
    let key = default_provider()
        .key_provider
        .load_private_key(key_of.key_der())
        .expect("key");
    Arc::new(CertifiedKey::new(cert.chain().to_vec(), key))
}

#[test]
fn handshake_signatures_are_verified() {
    let p = pair();
    let thief = TestCert::self_signed(&LeafSpec::xmpp_server("evil.example"));
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // A server showing montague's certificate without montague's key.
        let server = ServerConfig::builder_with_protocol_versions(&[version])
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(impostor_key(
                &p.receiving,
                &thief,
            ))));
        let result = connect(
            client_config(&p.initiating.identity(), p.clock.clone()),
            Arc::new(server),
            "montague.example",
        );
        assert!(result.is_err(), "{version:?}: {:?}", result.map(|_| ()));

        // A client showing capulet's certificate without capulet's key.
        let mut roots = RootCertStore::empty();
        roots.add(p.ca.cert_der()).expect("root");
        let client = ClientConfig::builder_with_protocol_versions(&[version])
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(impostor_key(
                &p.initiating,
                &thief,
            ))));
        let result = connect(
            Arc::new(client),
            server_config(&p.receiving.identity(), p.clock.clone()),
            "montague.example",
        );
        assert!(result.is_err(), "{version:?}: {:?}", result.map(|_| ()));
    }
}

#[test]
fn handshake_is_independent_of_the_system_clock() {
    // Certificates valid only in 2000, a CA that a stock client would
    // refuse today; the caller's clock says 2000, and both the handshake
    // and the check agree.
    let y2000 = 946_684_800;
    let ca = TestCa::with_validity("Old CA", y2000, y2000 + 365 * DAY);
    let spec = |d: &str| LeafSpec::xmpp_server(d).valid(y2000, y2000 + 365 * DAY);
    let a = ca.issue(&spec("capulet.example"));
    let b = ca.issue(&spec("montague.example"));
    let clock = Arc::new(CallerClock::new(y2000 + DAY));
    let (c, s) = connect(
        client_config(&a.identity(), clock.clone()),
        server_config(&b.identity(), clock.clone()),
        "montague.example",
    )
    .expect("handshake");
    let trust = ca.trust_anchors();
    assert_eq!(
        check_peer(
            c.peer_certificates().unwrap_or_default(),
            &trust,
            clock.get(),
            "montague.example"
        ),
        PeerCert::Trusted
    );
    assert_eq!(
        check_peer(
            s.peer_certificates().unwrap_or_default(),
            &trust,
            clock.get(),
            "capulet.example"
        ),
        PeerCert::Trusted
    );
    assert!(matches!(
        check_peer(
            c.peer_certificates().unwrap_or_default(),
            &trust,
            NOW,
            "montague.example"
        ),
        PeerCert::Untrusted {
            reason: UntrustedReason::Expired
        }
    ));
}

#[test]
fn bad_private_key_pem() {
    let err = parse_pem_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        .and_then(|key| {
            let cert = TestCert::self_signed(&LeafSpec::new().dns("example.com"));
            LocalIdentity::new(cert.chain().to_vec(), key)
        });
    assert!(matches!(err, Err(TlsError::BadPrivateKey(_))), "{err:?}");
}
