//! The gateway with its SIP side on (built-in registrar, one account, one
//! trusted address), fed an arbitrary interleaving of SIP datagrams from a
//! trusted and an untrusted source, bytes on a SIP TCP connection, XMPP
//! stanzas for local users and time passing: never panics, and every
//! datagram it sends leaves from its own socket.
//!
//! Input: a seed byte, then segments separated by NUL; each segment's
//! first byte picks what the rest is.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use xfed_core::config::{Negotiation, StreamPolicy};
use xfed_core::endpoint::SipSettings;
use xfed_core::gateway::{Gateway, Listener, Output};
use xfed_core::tls::{CallerClock, TrustAnchors};
use xfed_core::xml::{parse_element, Limits};
use xfed_core::xmpp::session::{S2sBounds, Settings};

const CONFIG: &str = r#"
[gateway]
domains = ["local.test"]
dialback_secret = "fuzzing-dialback-secret"
federation = "open"
[sip]
mode = "registrar"
trusted = ["10.0.0.7"]
trust_udp = true
max_transactions = 64
max_auth_failures = 3
[[sip.account]]
user = "alice"
password = "secret"
[[access]]
users = ["carol@local.test"]
xmpp = false
[[access]]
users = ["*"]
xmpp = true
"#;

fn settings() -> Settings {
    Settings {
        local_domains: vec!["local.test".into()],
        limits: Limits {
            max_stanza_size: 8192,
            max_depth: 16,
            max_attributes: 16,
        },
        tls_server: None,
        tls_client: None,
        tls_server_direct: None,
        tls_client_direct: None,
        clock: Arc::new(CallerClock::new(1_767_225_600)),
        trust: Arc::new(TrustAnchors::empty()),
        dialback_secret: "fuzz".into(),
        establishment_timeout: Duration::from_secs(60),
        inactivity_timeout: Duration::from_secs(600),
        keepalive_interval: Duration::from_secs(300),
        policy: Arc::new(|_: &str| {
            Some(StreamPolicy {
                tls: Negotiation::NotSupported,
                sasl: Negotiation::NotSupported,
                dialback: true,
                keepalive: true,
            })
        }),
        connect: Arc::new(|_: &str| Some(("10.0.0.2".into(), 5269))),
        connection_limit: Arc::new(|_: &str| 4),
        bounds: S2sBounds::default(),
    }
}

fn drain(gw: &mut Gateway, udp: SocketAddr) {
    while let Some(out) = gw.poll_output() {
        if let Output::Datagram { local, .. } = out {
            assert_eq!(local, udp, "a datagram from a socket we do not have");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let config = xfed_core::config::parse(CONFIG)
        .expect("fuzz config")
        .config;
    let udp: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let trusted: SocketAddr = "10.0.0.7:5060".parse().unwrap();
    let stranger: SocketAddr = "10.0.0.9:5062".parse().unwrap();
    let mut now = Instant::now();
    let mut gw = Gateway::new(settings(), [seed; 32], now, 1_767_225_600, 16);
    gw.enable_sip(
        &config,
        SipSettings {
            udp: vec![udp],
            tls_server: None,
            tls_client: None,
            trust: std::sync::Arc::new(xfed_core::tls::TrustAnchors::empty()),
            next_hop: None,
            log_message_bodies: false,
        },
        b"fuzz digest key",
        now,
    );
    let tcp = gw.accept(Listener::SipTcp, "10.0.0.8:40000".parse().unwrap(), now);
    drain(&mut gw, udp);
    for segment in input.split(|b| *b == 0) {
        let Some((&what, bytes)) = segment.split_first() else {
            continue;
        };
        match what % 5 {
            0 => gw.handle_datagram(udp, trusted, bytes, now),
            1 => gw.handle_datagram(udp, stranger, bytes, now),
            2 => gw.handle_bytes(tcp, bytes, now),
            3 => {
                if let Ok(stanza) = std::str::from_utf8(bytes).map(parse_element) {
                    if let Ok(stanza) = stanza {
                        gw.send(stanza, now);
                    }
                }
            }
            _ => {
                let secs = bytes.first().copied().unwrap_or(1);
                now += Duration::from_secs(u64::from(secs));
                gw.handle_timeout(now);
            }
        }
        drain(&mut gw, udp);
    }
    gw.handle_closed(tcp, now);
    now += Duration::from_secs(3600);
    gw.handle_timeout(now);
    drain(&mut gw, udp);
});
