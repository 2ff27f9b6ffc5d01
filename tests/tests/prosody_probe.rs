//! Probes of the Prosody harness (`xfed_tests::prosody`), independent of
//! xfed: two real Prosodys federate through the per-instance DNS responders
//! (STARTTLS + dialback with self-signed certificates, direct TLS found by
//! `_xmpps-server` SRV, SASL EXTERNAL with a test CA), and a Prosody dials a
//! plain loopback listener for a domain the way it will dial xfed. Skipped
//! (or failed, with CI=true) without Prosody. Timings are printed
//! (`--nocapture`).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xfed_core::xml::{Event, Limits, Reader};
use xfed_tests::prosody::{Prosody, ProsodyOptions};
use xfed_tests::require_peer;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A folder of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("xfed-probe-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Scratch(dir)
    }

    /// A self-signed certificate for `domain` (dNSName SAN), as PEM files.
    fn self_signed(&self, domain: &str) -> (PathBuf, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec![domain.to_string()]).expect("rcgen");
        let cert = self.0.join(format!("{domain}.crt"));
        let key = self.0.join(format!("{domain}.key"));
        std::fs::write(&cert, ck.cert.pem()).expect("write certificate");
        std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
        (cert, key)
    }

    /// A test CA (PEM file) and, for each domain, a certificate it signed
    /// (dNSName SAN) with its key.
    fn ca_signed(&self, domains: &[&str]) -> (PathBuf, Vec<(PathBuf, PathBuf)>) {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "xfed probe CA");
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap())
            .expect("CA");
        let ca_file = self.0.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write CA");
        let leaves = domains
            .iter()
            .map(|domain| {
                let key = rcgen::KeyPair::generate().unwrap();
                let mut params =
                    rcgen::CertificateParams::new(vec![domain.to_string()]).expect("params");
                params.extended_key_usages = vec![
                    rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                    rcgen::ExtendedKeyUsagePurpose::ClientAuth,
                ];
                let cert = params.signed_by(&key, &ca).expect("leaf");
                let (c, k) = (
                    self.0.join(format!("{domain}.crt")),
                    self.0.join(format!("{domain}.key")),
                );
                std::fs::write(&c, cert.pem()).expect("write certificate");
                std::fs::write(&k, key.serialize_pem()).expect("write key");
                (c, k)
            })
            .collect();
        (ca_file, leaves)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// a.test and b.test, self-signed, encryption required, dialback allowed,
/// each finding the other through its own DNS: a.test's ping reaches b.test
/// and the pong comes back.
#[test]
fn two_prosodys_federate_over_tls_and_dialback() {
    let scratch = Scratch::new("federate");
    let (a_crt, a_key) = scratch.self_signed("a.test");
    let (b_crt, b_key) = scratch.self_signed("b.test");
    let a = ProsodyOptions::new("a.test", ip(1))
        .tls(a_crt, a_key)
        .require_encryption(true)
        .secure_auth(false);
    let b = ProsodyOptions::new("b.test", ip(2))
        .tls(b_crt, b_key)
        .require_encryption(true)
        .secure_auth(false);
    let (a_addr, b_addr) = (a.s2s_addr(), b.s2s_addr());
    let a = a.route("b.test", b_addr);
    let b = b.route("a.test", a_addr);

    let a = require_peer!(Prosody::start(a));
    let b = require_peer!(Prosody::start(b));
    println!(
        "start-up: a.test {:?} (s2s {a_addr}), b.test {:?} (s2s {b_addr}); folders {} {} (certs in {})",
        a.startup,
        b.startup,
        a.dir().display(),
        b.dir().display(),
        scratch.path().display()
    );

    let cold = a
        .ping("a.test", "b.test")
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", a.diagnostics(), b.diagnostics()));
    println!(
        "first ping a.test -> b.test (DNS, TCP, STARTTLS, dialback both ways): \
         pong after {:?} (Prosody), prosodyctl {:?}\n{}",
        cold.reported,
        cold.elapsed,
        cold.output.trim_end()
    );
    let warm = a.ping("a.test", "b.test").expect("second ping");
    println!(
        "second ping (streams up): pong after {:?}, prosodyctl {:?}",
        warm.reported, warm.elapsed
    );

    // A stanza injected through the admin shell crosses the same streams.
    let sent = a.send_stanza(
        "a.test",
        "<message from='a.test' to='nobody@b.test' type='chat' id='probe1'><body>hi</body></message>",
    );
    assert!(sent.success, "send_stanza: {}", sent.text());
    let line = b
        .wait_log("id='probe1'", Duration::from_secs(10))
        .unwrap_or_else(|log| panic!("b.test never got the message: {log}"));
    println!("b.test got the injected message: {line}");

    // The outgoing stream is encrypted and authenticated.
    let show = a.shell("s2s:show()", Duration::from_secs(10));
    println!("a.test s2s:show():\n{}", show.text().trim_end());
    let line = show
        .stdout
        .lines()
        .find(|l| l.contains("b.test") && l.contains("-->"))
        .unwrap_or_else(|| panic!("no outgoing stream to b.test:\n{}", show.text()));
    assert!(line.contains("TLS"), "not encrypted: {line}");

    // a.test found b.test through its SRV record, and b.test found a.test
    // (dialback connects back to the originating domain).
    let srv = |p: &Prosody, domain: &str| {
        let name = format!("_xmpp-server._tcp.{domain}");
        p.dns_queries()
            .iter()
            .any(|q| q.name == name && q.qtype == "SRV" && q.answers == 1)
    };
    assert!(srv(&a, "b.test"), "a.test DNS: {:?}", a.dns_queries());
    assert!(srv(&b, "a.test"), "b.test DNS: {:?}", b.dns_queries());
}

/// Reads from `s` until a whole stream header has arrived; returns all the
/// text read.
fn read_header(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got);
        if let Some(i) = text.find("<stream:stream") {
            if text[i..].contains('>') {
                return text.into_owned();
            }
        }
        match s.read(&mut buf) {
            Ok(0) => panic!("closed before a stream header: {text:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no stream header ({e}); got {text:?}"),
        }
    }
}

/// A Prosody pointed at a plain TCP listener for gw.test (as xfed will be
/// reached) connects to it and opens a stream with to='gw.test'.
#[test]
fn prosody_dials_a_listener_for_a_domain() {
    let scratch = Scratch::new("dial");
    let (crt, key) = scratch.self_signed("a.test");
    let listener = TcpListener::bind((ip(4), 0)).expect("loopback listener");
    let gw: SocketAddr = listener.local_addr().unwrap();
    let opts = ProsodyOptions::new("a.test", ip(3))
        .tls(crt, key)
        .route("gw.test", gw);
    let p = require_peer!(Prosody::start(opts));
    println!("start-up: a.test {:?}; gw.test listener on {gw}", p.startup);

    std::thread::scope(|scope| {
        let t0 = Instant::now();
        let ping = scope.spawn(|| p.ping_timeout("a.test", "gw.test", Duration::from_secs(5)));

        listener.set_nonblocking(true).unwrap();
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if ping.is_finished() || t0.elapsed() > Duration::from_secs(20) {
                        panic!(
                            "Prosody never connected to {gw}; ping: {:?}\n{}",
                            ping.join(),
                            p.diagnostics()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        let connected = t0.elapsed();
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let text = read_header(&mut conn);
        let header_at = t0.elapsed();

        let mut reader = Reader::new(Limits::default());
        reader.feed_all(text.as_bytes());
        let header = match reader.poll() {
            Some(Ok(Event::Header(h))) => h,
            other => panic!("not a stream header: {other:?} in {text:?}"),
        };
        assert_eq!(header.to(), Some("gw.test"), "{text}");
        assert_eq!(header.from(), Some("a.test"), "{text}");
        assert_eq!(header.default_ns(), "jabber:server", "{text}");
        assert_eq!(header.version(), Some("1.0"), "{text}");
        println!(
            "ping started; Prosody connected after {connected:?}, stream header after {header_at:?}:\n{text}"
        );

        // Refuse, so that the ping ends at once.
        let _ = conn.write_all(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
              xmlns:stream='http://etherx.jabber.org/streams' from='gw.test' id='probe' version='1.0'>\
              <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\
              </stream:stream>",
        );
        let _ = conn.shutdown(std::net::Shutdown::Write);
        let failed = ping.join().expect("ping thread");
        let err = failed.expect_err("a refused stream cannot give a pong");
        println!("ping ended after {:?}: {}", err.elapsed, err.output.trim());
        assert!(!err.timed_out, "{err}");
    });

    let dns: Vec<String> = p.dns_queries().iter().map(|q| q.to_string()).collect();
    println!("DNS queries of a.test:\n{}", dns.join("\n"));
    assert!(
        dns.iter()
            .any(|q| q.starts_with("_xmpp-server._tcp.gw.test SRV -> NOERROR (1")),
        "{dns:?}"
    );
}

/// XEP-0368: b.test publishes only `_xmpps-server._tcp` pointing at its
/// direct TLS listener (and a component listener, to check that start-up
/// waits for every listener); a.test reaches it with TLS from the first
/// byte.
#[test]
fn prosody_federates_over_direct_tls() {
    let scratch = Scratch::new("direct-tls");
    let (a_crt, a_key) = scratch.self_signed("a.test");
    let (b_crt, b_key) = scratch.self_signed("b.test");
    let b = ProsodyOptions::new("b.test", ip(6))
        .tls(b_crt, b_key)
        .with_direct_tls()
        .component("sip.b.test", "secret");
    let b_direct = b.s2s_direct_tls_addr().expect("direct TLS port");
    let a = ProsodyOptions::new("a.test", ip(5))
        .tls(a_crt, a_key)
        .route_direct_tls("b.test", b_direct);
    let b = b.route("a.test", a.s2s_addr());

    let a = require_peer!(Prosody::start(a));
    let b = require_peer!(Prosody::start(b));
    println!(
        "start-up: a.test {:?}, b.test {:?} (direct TLS {b_direct}, component {})",
        a.startup,
        b.startup,
        b.options.component_addr()
    );
    let pong = a
        .ping("a.test", "b.test")
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", a.diagnostics(), b.diagnostics()));
    println!(
        "ping a.test -> b.test over direct TLS: pong after {:?}",
        pong.reported
    );
    let queries: Vec<String> = a.dns_queries().iter().map(|q| q.to_string()).collect();
    assert!(
        queries[0].starts_with("_xmpps-server._tcp.b.test SRV -> NOERROR (1"),
        "{queries:?}"
    );
    // b.test accepted a.test's connection on the direct TLS port.
    let port = format!(", {})", b_direct.port());
    assert!(
        b.log_lines()
            .iter()
            .any(|l| l.contains("New connection") && l.contains(&port)),
        "{}",
        b.diagnostics()
    );
}

/// With a CA file that trusts the peer's certificate and
/// `s2s_secure_auth = true`, the streams authenticate with SASL EXTERNAL
/// (XEP-0178), no dialback: the path xfed's certificates will take.
#[test]
fn prosodys_authenticate_with_certificates() {
    let scratch = Scratch::new("external");
    let (ca, leaves) = scratch.ca_signed(&["a.test", "b.test"]);
    let (a_cert, b_cert) = (leaves[0].clone(), leaves[1].clone());
    let a = ProsodyOptions::new("a.test", ip(7))
        .tls(a_cert.0, a_cert.1)
        .cafile(&ca)
        .secure_auth(true);
    let b = ProsodyOptions::new("b.test", ip(8))
        .tls(b_cert.0, b_cert.1)
        .cafile(&ca)
        .secure_auth(true);
    let (a_addr, b_addr) = (a.s2s_addr(), b.s2s_addr());
    let a = require_peer!(Prosody::start(a.route("b.test", b_addr)));
    let b = require_peer!(Prosody::start(b.route("a.test", a_addr)));
    let pong = a
        .ping("a.test", "b.test")
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", a.diagnostics(), b.diagnostics()));
    println!("ping with SASL EXTERNAL: pong after {:?}", pong.reported);
    let show = a.shell("s2s:show()", Duration::from_secs(10));
    println!("a.test s2s:show():\n{}", show.text().trim_end());
    let out = show
        .stdout
        .lines()
        .find(|l| l.contains("b.test") && l.contains("-->"))
        .unwrap_or_else(|| panic!("no outgoing stream:\n{}", show.text()));
    // Columns: ... | Security | SASL | Dialback
    let cols: Vec<&str> = out.split('|').map(str::trim).collect();
    assert_eq!(cols[cols.len() - 2..], ["Succeeded", "Not used"], "{out}");
    a.wait_log(
        "SASL EXTERNAL with b.test succeeded",
        Duration::from_secs(1),
    )
    .expect("a.test authenticated with SASL EXTERNAL");
}
