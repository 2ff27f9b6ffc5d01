//! The whole gateway fed arbitrary bytes on one s2s connection, inbound or
//! outbound (a peer answering our stream), in arbitrary chunks and with
//! time passing: never panics, and every connection it closes is one it
//! opened. Plain TCP policy, so the bytes reach negotiation, dialback and
//! stanza handling rather than stopping at TLS.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use xfed_core::config::{Negotiation, StreamPolicy};
use xfed_core::{Gateway, Listener, Output};
use xfed_core::tls::{CallerClock, TrustAnchors};
use xfed_core::xml::{parse_element, Limits};
use xfed_core::xmpp::session::{S2sBounds, Settings};

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
        policy: Arc::new(|d: &str| {
            (d != "refused.test").then_some(StreamPolicy {
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

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let mut gw = Gateway::new(settings(), [mode; 32], now, 1_767_225_600, 16);
    let conn = if mode & 1 == 0 {
        gw.accept(Listener::S2s, "10.0.0.9:4000".parse().unwrap(), now)
    } else {
        let ping = "<iq xmlns='jabber:server' type='get' id='p' from='u@local.test' to='remote.test'><ping xmlns='urn:xmpp:ping'/></iq>";
        gw.send(parse_element(ping).unwrap(), now);
        let mut conn = None;
        while let Some(out) = gw.poll_output() {
            if let Output::Connect { conn: c, .. } = out {
                conn = Some(c);
            }
        }
        let conn = conn.expect("a connect for the route");
        gw.handle_connected(conn, now);
        conn
    };
    let chunk = usize::from(mode >> 1).max(1);
    for piece in input.chunks(chunk) {
        gw.handle_bytes(conn, piece, now);
        while gw.poll_output().is_some() {}
        if piece.first() == Some(&b'\n') {
            now += Duration::from_secs(61);
            gw.handle_timeout(now);
        }
    }
    gw.handle_closed(conn, now);
    while gw.poll_output().is_some() {}
    now += Duration::from_secs(3600);
    gw.handle_timeout(now);
    while gw.poll_output().is_some() {}
});
