//! The whole gateway fed arbitrary bytes on one s2s connection, inbound or
//! outbound (a peer answering our stream), in arbitrary chunks and with
//! time passing: never panics, and every connection it closes is one it
//! opened. Plain TCP policy, so the bytes reach negotiation, dialback and
//! stanza handling rather than stopping at TLS.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use xfed_core::dns::HostsTable;
use xfed_core::gateway::Setup;
use xfed_core::tls::TrustAnchors;
use xfed_core::xml::parse_element;
use xfed_core::{Gateway, Listener, Output};

/// Plain TCP with every partner (no certificate at all), dialback only,
/// and a fixed address for remote.test: the bytes reach negotiation,
/// dialback and stanza handling rather than stopping at TLS.
const CONFIG: &str = r#"
[gateway]
domains = ["local.test"]
dialback_secret = "fuzz"
federation = "deny-list"
max_stanza_size = 10000
[[block]]
domain = "refused.test"
[[partner]]
domain = "remote.test"
additional_domains = ["other.test"]
type = "federated"
tls = "not-supported"
sasl = "not-supported"
dialback = true
connect = "10.0.0.2:5269"
connection_limit = 4
"#;

fn gateway(seed: u8, now: Instant) -> Gateway {
    let config = xfed_core::config::parse(CONFIG)
        .expect("fuzz config")
        .config;
    let setup = Setup {
        identity: None,
        trust: TrustAnchors::empty(),
        dialback_secret: "fuzz".into(),
        hosts: HostsTable::default(),
        sip_udp: Vec::new(),
        next_hop: None,
        stored: Default::default(),
        links: Vec::new(),
    };
    Gateway::new(Arc::new(config), setup, [seed; 32], now, 1_767_225_600)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let mut gw = gateway(mode, now);
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
