//! The built-in registrar through its public API: digest authentication
//! end to end (challenge, answer, verdict), the REGISTER cases of RFC 3261
//! section 10.3 on a simulated clock, restart from the store, and headers
//! that must never panic.

use proptest::prelude::*;
use xfed_core::config::{Secret, SipAccount, SipConfig, SipCredential, SipMode};
use xfed_core::registrar::bindings::{
    Binding, Bindings, ContactParam, Policy, RegisterError, RegisterRequest,
};
use xfed_core::registrar::digest::{self, Algorithm, Authorization, Challenge, Digest};
use xfed_core::registrar::{AuthRequest, Decision, Registrar};
use xfed_core::rng::Rng;
use xfed_core::store::{MemoryStore, Persist, Store};

const T0: u64 = 1_700_000_000;
const URI: &str = "sip:example.com";

fn sip_config() -> SipConfig {
    let ha1_md5 = digest::ha1(Algorithm::Md5, "carol", "example.com", "carolpw");
    let ha1_sha = digest::ha1(Algorithm::Sha256, "dave", "example.com", "davepw");
    SipConfig {
        mode: SipMode::Registrar,
        next_hop: None,
        path: None,
        max_message_size: 64 * 1024,
        connection_limit: 1000,
        handshake_timeout: std::time::Duration::from_secs(10),
        request_timeout: std::time::Duration::from_secs(30),
        idle_timeout: std::time::Duration::from_secs(300),
        max_transactions: 10_000,
        max_watchers: 1000,
        max_subscriptions: 10_000,
        queues: Default::default(),
        trust_udp: false,
        max_auth_failures: 5,
        auth_backoff: std::time::Duration::from_secs(60),
        trusted: Vec::new(),
        digest_algorithms: Algorithm::ALL.to_vec(),
        accounts: vec![
            SipAccount {
                user: "alice".into(),
                credential: SipCredential::Password(Secret::new("secret")),
            },
            SipAccount {
                user: "bob".into(),
                credential: SipCredential::Password(Secret::new("bobpw")),
            },
            SipAccount {
                user: "carol".into(),
                credential: SipCredential::Ha1(Secret::new(ha1_md5)),
            },
            SipAccount {
                user: "dave".into(),
                credential: SipCredential::Ha1(Secret::new(ha1_sha)),
            },
        ],
    }
}

fn registrar(key: &[u8]) -> Registrar {
    Registrar::new(
        &["example.com".to_string(), "example.net".to_string()],
        &sip_config(),
        Digest::new(key, 300),
        Policy::default(),
    )
}

fn authorize(reg: &mut Registrar, aor: &str, auth: &[&str], now: u64) -> Decision {
    reg.authorize(
        &AuthRequest {
            trusted: false,
            method: "REGISTER",
            request_uri: URI,
            aor,
            authorization: auth,
            source: std::net::IpAddr::from([192, 0, 2, 1]),
        },
        now,
    )
}

/// Asks for a challenge for `user`, then answers it with `password` using
/// the first algorithm offered (as clients do).
fn login(reg: &mut Registrar, rng: &mut Rng, user: &str, password: &str, now: u64) -> String {
    let aor = format!("{user}@example.com");
    let Decision::Challenge {
        realm,
        user: u,
        stale,
    } = authorize(reg, &aor, &[], now)
    else {
        panic!("expected a challenge");
    };
    assert!(!stale);
    let headers = reg.challenge(&realm, &u, stale, now, rng);
    let ch = Challenge::parse(&headers[0]).unwrap();
    ch.answer(user, password, "REGISTER", URI, "0a4f113b", 1)
        .header_value()
}

fn reject(code: u16) -> impl Fn(&Decision) -> bool {
    move |d| matches!(d, Decision::Reject { code: c, .. } if *c == code)
}

#[test]
fn challenge_headers_sha256_first() {
    let mut reg = registrar(b"k");
    let mut rng = Rng::new([1; 32]);
    let Decision::Challenge { realm, user, stale } =
        authorize(&mut reg, "alice@Example.COM", &[], T0)
    else {
        panic!("expected a challenge");
    };
    assert_eq!(
        (realm.as_str(), user.as_str(), stale),
        ("example.com", "alice", false)
    );
    let h = reg.challenge(&realm, &user, false, T0, &mut rng);
    assert_eq!(h.len(), 2);
    assert!(h[0].contains("algorithm=SHA-256"), "{}", h[0]);
    assert!(h[1].contains("algorithm=MD5"), "{}", h[1]);
    for v in &h {
        assert!(
            v.starts_with("Digest realm=\"example.com\", nonce=\""),
            "{v}"
        );
        assert!(v.contains("qop=\"auth\""), "{v}");
        assert!(!v.contains("stale"), "{v}");
    }
    // Unknown users get the same challenge: no account enumeration.
    assert!(matches!(
        authorize(&mut reg, "mallory@example.com", &[], T0),
        Decision::Challenge { stale: false, .. }
    ));
    assert_eq!(
        reg.challenge("example.com", "mallory", false, T0, &mut rng)
            .len(),
        2
    );
    // HA1 accounts are offered only their HA1's algorithm.
    let c = reg.challenge("example.com", "carol", false, T0, &mut rng);
    assert_eq!(c.len(), 1);
    assert!(c[0].contains("algorithm=MD5"));
    let d = reg.challenge("example.com", "dave", false, T0, &mut rng);
    assert_eq!(d.len(), 1);
    assert!(d[0].contains("algorithm=SHA-256"));
}

#[test]
fn digest_login_each_algorithm_and_credential() {
    let mut reg = registrar(b"k");
    let mut rng = Rng::new([2; 32]);
    for (user, pw) in [
        ("alice", "secret"),
        ("carol", "carolpw"),
        ("dave", "davepw"),
    ] {
        let auth = login(&mut reg, &mut rng, user, pw, T0);
        assert_eq!(
            authorize(&mut reg, &format!("{user}@example.com"), &[&auth], T0 + 10),
            Decision::Allow {
                user: user.into(),
                domain: "example.com".into(),
                trusted: false
            },
            "{user}"
        );
    }
    // MD5 against a password account, answering the second challenge.
    let Decision::Challenge { realm, user, .. } = authorize(&mut reg, "alice@example.com", &[], T0)
    else {
        panic!()
    };
    let h = reg.challenge(&realm, &user, false, T0, &mut rng);
    let md5 = Challenge::parse(&h[1]).unwrap();
    assert_eq!(md5.algorithm, Algorithm::Md5);
    let auth = md5
        .answer("alice", "secret", "REGISTER", URI, "c", 1)
        .header_value();
    assert!(matches!(
        authorize(&mut reg, "alice@example.com", &[&auth], T0),
        Decision::Allow { .. }
    ));
}

#[test]
fn digest_failures() {
    let mut reg = registrar(b"k");
    let mut rng = Rng::new([3; 32]);
    // Wrong password.
    let auth = login(&mut reg, &mut rng, "alice", "wrong", T0);
    assert!(reject(403)(&authorize(
        &mut reg,
        "alice@example.com",
        &[&auth],
        T0
    )));
    // Unknown user: the same answer.
    let auth = login(&mut reg, &mut rng, "mallory", "x", T0);
    assert!(reject(403)(&authorize(
        &mut reg,
        "mallory@example.com",
        &[&auth],
        T0
    )));
    // Bob, with his own right password, may not register as Alice.
    let auth = login(&mut reg, &mut rng, "bob", "bobpw", T0);
    assert!(matches!(
        authorize(&mut reg, "bob@example.com", &[&auth], T0),
        Decision::Allow { .. }
    ));
    assert!(reject(403)(&authorize(
        &mut reg,
        "alice@example.com",
        &[&auth],
        T0
    )));
    // Credentials for another realm only: not ours, so a challenge.
    let ch = Challenge {
        realm: "proxy.example.org".into(),
        nonce: "n".into(),
        algorithm: Algorithm::Sha256,
        qop: Some("auth".into()),
        stale: false,
        opaque: None,
    };
    let other = ch
        .answer("alice", "secret", "REGISTER", URI, "c", 1)
        .header_value();
    assert!(matches!(
        authorize(&mut reg, "alice@example.com", &[&other], T0),
        Decision::Challenge { stale: false, .. }
    ));
    // ... but ours is found among several.
    let good = login(&mut reg, &mut rng, "alice", "secret", T0);
    assert!(matches!(
        authorize(&mut reg, "alice@example.com", &[&other, &good], T0),
        Decision::Allow { .. }
    ));
    // Credentials signed for another Request-URI.
    let ch =
        Challenge::parse(&reg.challenge("example.com", "alice", false, T0, &mut rng)[0]).unwrap();
    let wrong_uri = ch
        .answer(
            "alice",
            "secret",
            "REGISTER",
            "sip:elsewhere.example",
            "c",
            1,
        )
        .header_value();
    assert!(reject(400)(&authorize(
        &mut reg,
        "alice@example.com",
        &[&wrong_uri],
        T0
    )));
    // Malformed, and a domain we do not serve.
    assert!(reject(400)(&authorize(
        &mut reg,
        "alice@example.com",
        &["Digest username=\"alice"],
        T0
    )));
    assert!(reject(403)(&authorize(
        &mut reg,
        "alice@example.org",
        &[],
        T0
    )));
    assert!(reject(400)(&authorize(&mut reg, "no-at-sign", &[], T0)));
    assert!(reject(400)(&authorize(&mut reg, "@example.com", &[], T0)));
    // The other local domain is its own realm.
    assert!(matches!(
        authorize(&mut reg, "alice@example.net", &[], T0),
        Decision::Challenge { ref realm, .. } if realm == "example.net"
    ));
    assert!(matches!(
        authorize(&mut reg, "alice@example.net", &[&good], T0),
        Decision::Challenge { stale: false, .. }
    ));
}

#[test]
fn a_replayed_authorization_is_stale() {
    let mut reg = registrar(b"k");
    let mut rng = Rng::new([5; 32]);
    let aor = "alice@example.com";
    let Decision::Challenge { realm, user, .. } = authorize(&mut reg, aor, &[], T0) else {
        panic!("expected a challenge");
    };
    let headers = reg.challenge(&realm, &user, false, T0, &mut rng);
    let ch = Challenge::parse(&headers[0]).unwrap();
    let first = ch
        .answer("alice", "secret", "REGISTER", URI, "c1", 1)
        .header_value();
    assert!(matches!(
        authorize(&mut reg, aor, &[&first], T0 + 1),
        Decision::Allow { .. }
    ));
    // The same Authorization again, well within the nonce's lifetime.
    assert!(matches!(
        authorize(&mut reg, aor, &[&first], T0 + 2),
        Decision::Challenge { stale: true, .. }
    ));
    // The client's next request on that nonce counts up: accepted, once.
    let second = ch
        .answer("alice", "secret", "REGISTER", URI, "c1", 2)
        .header_value();
    assert!(matches!(
        authorize(&mut reg, aor, &[&second], T0 + 3),
        Decision::Allow { .. }
    ));
    assert!(matches!(
        authorize(&mut reg, aor, &[&second], T0 + 4),
        Decision::Challenge { stale: true, .. }
    ));
    assert!(matches!(
        authorize(&mut reg, aor, &[&first], T0 + 5),
        Decision::Challenge { stale: true, .. }
    ));
}

#[test]
fn expired_or_foreign_nonce_is_stale() {
    let mut reg = registrar(b"k");
    let mut rng = Rng::new([4; 32]);
    let auth = login(&mut reg, &mut rng, "alice", "secret", T0);
    assert!(matches!(
        authorize(&mut reg, "alice@example.com", &[&auth], T0 + 300),
        Decision::Allow { .. }
    ));
    // Replayed after the nonce's lifetime: stale, with stale=true in the header.
    let d = authorize(&mut reg, "alice@example.com", &[&auth], T0 + 301);
    let Decision::Challenge {
        realm,
        user,
        stale: true,
    } = d
    else {
        panic!("expected a stale challenge, got {d:?}");
    };
    let h = reg.challenge(&realm, &user, true, T0 + 301, &mut rng);
    assert!(h.iter().all(|v| v.ends_with("stale=true")), "{h:?}");
    // The same answer with a wrong password is a failure, not stale.
    let wrong = login(&mut reg, &mut rng, "alice", "wrong", T0);
    assert!(reject(403)(&authorize(
        &mut reg,
        "alice@example.com",
        &[&wrong],
        T0 + 301
    )));
    // After a restart under another key the old nonce is stale too...
    let mut restarted = registrar(b"other key");
    assert!(matches!(
        authorize(&mut restarted, "alice@example.com", &[&auth], T0 + 10),
        Decision::Challenge { stale: true, .. }
    ));
    // ... while an instance sharing the key accepts it.
    let mut sibling = registrar(b"k");
    assert!(matches!(
        authorize(&mut sibling, "alice@example.com", &[&auth], T0 + 10),
        Decision::Allow { .. }
    ));
}

#[test]
fn trusted_peers_skip_digest() {
    let mut reg = registrar(b"k");
    let req = AuthRequest {
        trusted: true,
        method: "MESSAGE",
        request_uri: "sip:romeo@jabber.org",
        aor: "anyone@example.com",
        authorization: &[],
        source: std::net::IpAddr::from([192, 0, 2, 1]),
    };
    assert_eq!(
        reg.authorize(&req, T0),
        Decision::Allow {
            user: "anyone".into(),
            domain: "example.com".into(),
            trusted: true
        }
    );
    // Trust is for our domains only.
    let foreign = AuthRequest {
        aor: "anyone@example.org",
        ..req
    };
    assert!(reject(403)(&reg.authorize(&foreign, T0)));
}

// ---- bindings: RFC 3261 section 10.3 ----

fn contact(uri: &str) -> ContactParam {
    ContactParam {
        uri: uri.into(),
        ..Default::default()
    }
}

fn with_expires(uri: &str, expires: u32) -> ContactParam {
    ContactParam {
        expires: Some(expires),
        ..contact(uri)
    }
}

fn req(
    call_id: &str,
    cseq: u32,
    contacts: Vec<ContactParam>,
    expires: Option<u32>,
) -> RegisterRequest {
    RegisterRequest {
        call_id: call_id.into(),
        cseq,
        contacts,
        star: false,
        expires_header: expires,
    }
}

/// (contact, seconds left) of each binding in a 200 OK, or the error code.
type Listing = Result<Vec<(String, u32)>, u16>;

fn listed(r: Result<Vec<Binding>, RegisterError>, now: u64) -> Listing {
    r.map(|l| {
        l.iter()
            .map(|b| (b.contact.clone(), b.expires_in(now)))
            .collect()
    })
    .map_err(|e| e.code)
}

fn pairs(v: &[(&str, u32)]) -> Listing {
    Ok(v.iter().map(|(c, e)| (c.to_string(), *e)).collect())
}

const A: &str = "sip:alice@192.0.2.1:5060";
const B: &str = "sip:alice@192.0.2.2:5060";
const C: &str = "sip:alice@192.0.2.3:5060";

/// The RFC 3261 section 10.3 cases as one scripted session: (seconds after
/// T0, request, expected listing or error code). Each step sees the state
/// the previous ones left.
#[test]
fn rfc3261_register_table() {
    let star = |call_id: &str, cseq, expires| RegisterRequest {
        star: true,
        ..req(call_id, cseq, vec![], expires)
    };
    let steps: Vec<(u64, RegisterRequest, Listing)> = vec![
        // Query with nothing registered.
        (0, req("c1", 1, vec![], None), pairs(&[])),
        // Add: the Expires header applies; no header: the default (3600).
        (
            0,
            req("c1", 2, vec![contact(A)], Some(600)),
            pairs(&[(A, 600)]),
        ),
        (
            0,
            req("c2", 1, vec![contact(B)], None),
            pairs(&[(A, 600), (B, 3600)]),
        ),
        // The contact's expires overrides the header.
        (
            10,
            req("c3", 1, vec![with_expires(C, 120)], Some(900)),
            pairs(&[(A, 590), (B, 3590), (C, 120)]),
        ),
        // Refresh with a higher CSeq.
        (
            100,
            req("c1", 3, vec![contact(A)], Some(1200)),
            pairs(&[(A, 1200), (B, 3500), (C, 30)]),
        ),
        // Same Call-ID, same or lower CSeq: out of order, refused whole.
        (101, req("c1", 3, vec![contact(A)], Some(60)), Err(500)),
        (101, req("c1", 2, vec![with_expires(A, 0)], None), Err(500)),
        // A different Call-ID (the UA rebooted) may carry any CSeq.
        (
            102,
            req("c9", 1, vec![contact(A)], Some(1000)),
            pairs(&[(A, 1000), (B, 3498), (C, 28)]),
        ),
        // Too brief: 423; zero is not too brief; above the maximum: shortened.
        (103, req("c9", 2, vec![contact(A)], Some(59)), Err(423)),
        (
            103,
            req("c9", 3, vec![contact(A)], Some(1_000_000)),
            pairs(&[(A, 86_400), (B, 3497), (C, 27)]),
        ),
        // All or nothing: a good contact next to a too-brief one changes nothing.
        (
            104,
            req(
                "c9",
                4,
                vec![with_expires(A, 100), with_expires(B, 5)],
                None,
            ),
            Err(423),
        ),
        // Remove by expires=0, and by Expires: 0.
        (
            105,
            req("c2", 2, vec![with_expires(B, 0)], Some(3600)),
            pairs(&[(A, 86_398), (C, 25)]),
        ),
        (
            105,
            req("c9", 5, vec![contact(A)], Some(0)),
            pairs(&[(C, 25)]),
        ),
        // Removing what does not exist is not an error.
        (
            106,
            req("c9", 6, vec![with_expires(B, 0)], None),
            pairs(&[(C, 24)]),
        ),
        // C expires at 130: gone from listings even before collection.
        (130, req("c1", 9, vec![], None), pairs(&[])),
        // `*` needs Expires: 0 and no other contact.
        (
            200,
            req("c1", 10, vec![contact(A), contact(B)], Some(600)),
            pairs(&[(A, 600), (B, 600)]),
        ),
        (200, star("c1", 11, None), Err(400)),
        (200, star("c1", 11, Some(600)), Err(400)),
        (
            200,
            RegisterRequest {
                contacts: vec![contact(C)],
                ..star("c1", 11, Some(0))
            },
            Err(400),
        ),
        // `*` out of order for a binding of the same Call-ID: refused.
        (200, star("c1", 10, Some(0)), Err(500)),
        (200, star("c1", 11, Some(0)), pairs(&[])),
        // Invalid input.
        (300, req("", 1, vec![contact(A)], None), Err(400)),
        (300, req("c5", 1 << 31, vec![contact(A)], None), Err(400)),
        (300, req("c5", 1, vec![contact("  ")], None), Err(400)),
        (
            300,
            req(
                "c5",
                1,
                vec![ContactParam {
                    q: Some(1.5),
                    ..contact(A)
                }],
                None,
            ),
            Err(400),
        ),
    ];
    let mut b = Bindings::new(Policy::default());
    for (i, (at, request, expected)) in steps.into_iter().enumerate() {
        let now = T0 + at;
        let got = listed(
            b.register("alice@example.com", &request, now)
                .map(|o| o.bindings),
            now,
        );
        assert_eq!(got, expected, "step {i} at +{at}s: {request:?}");
    }
}

#[test]
fn persist_records_describe_each_change() {
    let mut b = Bindings::new(Policy::default());
    let o = b
        .register(
            "alice@example.com",
            &req("c", 1, vec![contact(A), contact(B)], Some(600)),
            T0,
        )
        .unwrap();
    assert!(
        matches!(&o.changes[..], [Persist::InsertBinding(x), Persist::InsertBinding(y)] if x.contact == A && y.contact == B)
    );
    let o = b
        .register(
            "alice@example.com",
            &req("c", 2, vec![contact(A), with_expires(B, 0)], Some(600)),
            T0 + 1,
        )
        .unwrap();
    match &o.changes[..] {
        [Persist::UpdateBinding(x), Persist::DeleteBinding { aor, key }] => {
            assert_eq!(x.contact, A);
            assert_eq!(x.cseq, 2);
            assert_eq!(x.expires_at, T0 + 601);
            assert_eq!(aor, "alice@example.com");
            assert_eq!(*key, o.bindings[0].key().replace("192.0.2.1", "192.0.2.2"));
        }
        other => panic!("{other:?}"),
    }
    // A query changes nothing; a failure changes nothing.
    assert!(b
        .register("alice@example.com", &req("c", 3, vec![], None), T0 + 2)
        .unwrap()
        .changes
        .is_empty());
    assert!(b
        .register(
            "alice@example.com",
            &req("c", 1, vec![contact(C)], None),
            T0 + 2
        )
        .is_ok());
    assert_eq!(
        b.register(
            "alice@example.com",
            &req("c", 1, vec![contact(A)], None),
            T0 + 2
        )
        .unwrap_err()
        .code,
        500
    );
}

#[test]
fn several_users_q_order_and_uri_case() {
    let mut b = Bindings::new(Policy::default());
    let q = |uri: &str, q: f32| ContactParam {
        q: Some(q),
        ..contact(uri)
    };
    b.register(
        "alice@example.com",
        &req("c", 1, vec![q(A, 0.1), q(B, 0.9), contact(C)], None),
        T0,
    )
    .unwrap();
    b.register(
        "bob@example.com",
        &req("d", 1, vec![contact("sip:bob@192.0.2.9")], None),
        T0,
    )
    .unwrap();
    let order: Vec<String> = b
        .lookup("alice@EXAMPLE.com", T0)
        .into_iter()
        .map(|x| x.contact)
        .collect();
    assert_eq!(order, vec![C.to_string(), B.to_string(), A.to_string()]);
    assert_eq!(b.lookup("bob@example.com", T0).len(), 1);
    assert!(
        b.lookup("Bob@example.com", T0).is_empty(),
        "the user part is case-sensitive"
    );
    // Scheme and host case do not make a second binding.
    let o = b
        .register(
            "bob@example.com",
            &req("d", 2, vec![contact("SIP:bob@192.0.2.9")], Some(60)),
            T0,
        )
        .unwrap();
    assert_eq!(o.bindings.len(), 1);
    assert!(matches!(&o.changes[..], [Persist::UpdateBinding(_)]));
}

#[test]
fn instance_id_replaces_the_old_address() {
    let mut b = Bindings::new(Policy::default());
    let dev = |uri: &str, reg_id| ContactParam {
        instance: Some("<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>".into()),
        reg_id,
        ..contact(uri)
    };
    b.register(
        "alice@example.com",
        &req("c", 1, vec![dev(A, Some(1))], None),
        T0,
    )
    .unwrap();
    // The device moved: same instance and reg-id, new address, new Call-ID.
    let o = b
        .register(
            "alice@example.com",
            &req("d", 1, vec![dev(B, Some(1))], None),
            T0 + 5,
        )
        .unwrap();
    assert_eq!(o.bindings.len(), 1);
    assert_eq!(o.bindings[0].contact, B);
    assert!(matches!(&o.changes[..], [Persist::UpdateBinding(_)]));
    // A second flow (reg-id 2) of the same device is another binding.
    let o = b
        .register(
            "alice@example.com",
            &req("d", 2, vec![dev(C, Some(2))], None),
            T0 + 6,
        )
        .unwrap();
    assert_eq!(o.bindings.len(), 2);
}

#[test]
fn contact_limit() {
    let policy = Policy {
        max_contacts: 2,
        ..Policy::default()
    };
    let mut b = Bindings::new(policy);
    b.register(
        "alice@example.com",
        &req("c", 1, vec![contact(A), contact(B)], None),
        T0,
    )
    .unwrap();
    let e = b
        .register(
            "alice@example.com",
            &req("c", 2, vec![contact(C)], None),
            T0,
        )
        .unwrap_err();
    assert_eq!((e.code, e.min_expires), (403, None));
    // Swapping one for another stays within the limit.
    let o = b
        .register(
            "alice@example.com",
            &req("c", 3, vec![with_expires(A, 0), contact(C)], None),
            T0,
        )
        .unwrap();
    assert_eq!(o.bindings.len(), 2);
    // 423 says the minimum.
    let e = b
        .register(
            "alice@example.com",
            &req("c", 4, vec![with_expires(C, 1)], None),
            T0,
        )
        .unwrap_err();
    assert_eq!((e.code, e.min_expires), (423, Some(60)));
}

#[test]
fn expiry_on_a_simulated_clock() {
    let mut b = Bindings::new(Policy::default());
    let mut store = MemoryStore::new();
    let mut apply = |changes: &[Persist]| store.apply(changes).unwrap();
    apply(
        &b.register(
            "alice@example.com",
            &req(
                "c",
                1,
                vec![with_expires(A, 60), with_expires(B, 120)],
                None,
            ),
            T0,
        )
        .unwrap()
        .changes,
    );
    apply(
        &b.register(
            "bob@example.com",
            &req("d", 1, vec![with_expires(C, 90)], None),
            T0,
        )
        .unwrap()
        .changes,
    );
    assert_eq!(b.next_expiry(), Some(T0 + 60));
    // Drive the clock the way a runtime does: sleep to the deadline, expire.
    let mut now = T0;
    let mut removed = Vec::new();
    while let Some(deadline) = b.next_expiry() {
        assert!(deadline > now);
        now = deadline;
        let changes = b.expire(now);
        assert!(!changes.is_empty());
        removed.extend(changes.iter().map(|c| match c {
            Persist::DeleteBinding { aor, .. } => (now - T0, aor.clone()),
            other => panic!("{other:?}"),
        }));
        apply(&changes);
    }
    assert_eq!(
        removed,
        vec![
            (60, "alice@example.com".to_string()),
            (90, "bob@example.com".to_string()),
            (120, "alice@example.com".to_string())
        ]
    );
    assert!(b.is_empty());
    assert!(store.load_bindings().unwrap().is_empty());
}

#[test]
fn restart_reloads_the_same_bindings() {
    let mut reg = registrar(b"k");
    let mut store = MemoryStore::new();
    let steps = [
        (
            "alice@example.com",
            req(
                "c",
                1,
                vec![
                    contact(A),
                    ContactParam {
                        q: Some(0.5),
                        ..with_expires(B, 100)
                    },
                ],
                Some(600),
            ),
        ),
        (
            "bob@example.com",
            req(
                "d",
                1,
                vec![ContactParam {
                    instance: Some("<urn:uuid:1>".into()),
                    reg_id: Some(1),
                    ..contact(C)
                }],
                None,
            ),
        ),
        (
            "alice@example.com",
            req("c", 2, vec![with_expires(A, 0), contact(C)], Some(900)),
        ),
    ];
    for (i, (aor, r)) in steps.iter().enumerate() {
        let o = reg.register(aor, r, T0 + i as u64).unwrap();
        store.apply(&o.changes).unwrap();
    }
    let snapshot = |r: &Registrar, now| {
        ["alice@example.com", "bob@example.com"].map(|aor| r.bindings().lookup(aor, now))
    };
    let before = snapshot(&reg, T0 + 10);

    let mut again = registrar(b"k");
    let deletes = again.restore(store.load_bindings().unwrap(), T0 + 10);
    assert!(deletes.is_empty());
    assert_eq!(snapshot(&again, T0 + 10), before);
    assert_eq!(again.bindings().next_expiry(), reg.bindings().next_expiry());
    // Ordering survives too: the reloaded registrar refuses the same replay.
    assert_eq!(
        again
            .register("alice@example.com", &steps[2].1, T0 + 11)
            .unwrap_err()
            .code,
        500
    );

    // Restarting later drops (and deletes) what expired meanwhile.
    let mut late = registrar(b"k");
    let deletes = late.restore(store.load_bindings().unwrap(), T0 + 200);
    assert_eq!(deletes.len(), 1, "B (100 s) expired: {deletes:?}");
    store.apply(&deletes).unwrap();
    assert_eq!(store.load_bindings().unwrap().len(), 2);
    assert_eq!(late.bindings().len(), 2);
}

// ---- hostile headers ----

proptest! {
    /// Any text: the parsers answer, never panic.
    #[test]
    fn parsers_never_panic(s in "\\PC*") {
        let _ = Authorization::parse(&s);
        let _ = Challenge::parse(&s);
        let _ = Authorization::parse(&format!("Digest {s}"));
    }

    /// Text shaped like digest parameters reaches the deep paths.
    #[test]
    fn parameter_soup_never_panics(
        parts in prop::collection::vec(
            prop_oneof![
                Just("username".to_string()), Just("realm".to_string()), Just("=".to_string()),
                Just("\"".to_string()), Just("\\".to_string()), Just(",".to_string()),
                Just(" ".to_string()), Just("é".to_string()), Just("\r\n".to_string()),
                "[a-z0-9]{0,4}",
            ],
            0..24,
        )
    ) {
        let s = format!("Digest {}", parts.concat());
        let _ = Authorization::parse(&s);
        let _ = Challenge::parse(&s);
        let mut reg = registrar(b"k");
        let _ = authorize(&mut reg, "alice@example.com", &[&s], T0);
    }

    /// Whatever the field values, our writer's output parses back to them.
    #[test]
    fn authorization_round_trip(
        username in "\\PC*", realm in "\\PC*", nonce in "\\PC*", uri in "\\PC*",
        response in "[0-9a-f]{0,64}", cnonce in prop::option::of("\\PC*"),
        opaque in prop::option::of("\\PC*"),
    ) {
        let a = Authorization {
            username, realm, nonce, uri, response,
            algorithm: Some("SHA-256".into()),
            cnonce, nc: Some("00000001".into()), qop: Some("auth".into()), opaque,
        };
        prop_assert_eq!(Authorization::parse(&a.header_value()), Ok(a));
    }

    /// Random REGISTERs on a random clock keep the index, the listings and
    /// the store in agreement.
    #[test]
    fn bindings_and_store_agree(
        ops in prop::collection::vec(
            (0u64..200, 0usize..3, 0u32..4, prop::option::of(0u32..300), any::<bool>(), 0usize..3),
            0..40,
        )
    ) {
        let uris = [A, B, C];
        let call_ids = ["c0", "c1", "c2"];
        let mut b = Bindings::new(Policy::default());
        let mut store = MemoryStore::new();
        let mut now = T0;
        for (dt, uri, cseq, expires, star, call) in ops {
            now += dt;
            store.apply(&b.expire(now)).unwrap();
            let r = if star {
                RegisterRequest { star: true, ..req(call_ids[call], cseq, vec![], Some(0)) }
            } else {
                req(call_ids[call], cseq, vec![contact(uris[uri])], expires)
            };
            if let Ok(o) = b.register("alice@example.com", &r, now) {
                store.apply(&o.changes).unwrap();
                prop_assert!(o.bindings.iter().all(|x| x.expires_at > now));
            }
            let mut mine: Vec<Binding> = b.iter().cloned().collect();
            let mut stored = store.load_bindings().unwrap();
            mine.sort_by_key(Binding::key);
            stored.sort_by_key(Binding::key);
            prop_assert_eq!(mine, stored);
            prop_assert_eq!(b.len(), b.iter().count());
            prop_assert_eq!(b.next_expiry(), b.iter().map(|x| x.expires_at).min());
        }
    }
}
