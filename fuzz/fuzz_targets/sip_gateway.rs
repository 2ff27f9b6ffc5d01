//! The gateway with its SIP side on (built-in registrar, one account, one
//! trusted address; or, for an odd seed, proxy mode with that address as
//! the next hop, whose SUBSCRIBEs and NOTIFYs take proxy mode's paths), fed an arbitrary interleaving of SIP datagrams from a
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
use xfed_core::config::SipTransport;
use xfed_core::dns::HostsTable;
use xfed_core::endpoint::NextHop;
use xfed_core::gateway::Setup;
use xfed_core::tls::TrustAnchors;
use xfed_core::xml::parse_element;
use xfed_core::{Gateway, Listener, Output};

const CONFIG: &str = r#"
[gateway]
domains = ["local.test"]
dialback_secret = "fuzzing-dialback-secret"
federation = "open"
max_stanza_size = 10000
[[partner]]
domain = "remote.test"
type = "federated"
tls = "not-supported"
sasl = "not-supported"
dialback = true
connect = "10.0.0.2:5269"
connection_limit = 4
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

/// [`CONFIG`] in proxy mode, the trusted address being the next hop.
fn proxy_config() -> String {
    CONFIG.replace(
        "mode = \"registrar\"",
        "mode = \"proxy\"\nnext_hop = \"sip:10.0.0.7:5060\"",
    )
}

/// The gateway of [`CONFIG`] (proxy mode for an odd seed), with no
/// certificate (plain TCP only) and one SIP UDP socket.
fn gateway(udp: SocketAddr, seed: u8, now: Instant) -> Gateway {
    let proxy = seed % 2 == 1;
    let text = if proxy {
        proxy_config()
    } else {
        CONFIG.to_owned()
    };
    let config = xfed_core::config::parse(&text).expect("fuzz config").config;
    let next_hop = proxy.then(|| NextHop {
        addr: "10.0.0.7:5060".parse().expect("an address"),
        transport: SipTransport::Udp,
        name: "10.0.0.7".into(),
    });
    let setup = Setup {
        identity: None,
        trust: TrustAnchors::empty(),
        dialback_secret: "fuzz".into(),
        hosts: HostsTable::default(),
        sip_udp: vec![udp],
        next_hop,
        stored: Default::default(),
        links: Vec::new(),
    };
    Gateway::new(Arc::new(config), setup, [seed; 32], now, 1_767_225_600)
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
    let udp: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let trusted: SocketAddr = "10.0.0.7:5060".parse().unwrap();
    let stranger: SocketAddr = "10.0.0.9:5062".parse().unwrap();
    let mut now = Instant::now();
    let mut gw = gateway(udp, seed, now);
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
