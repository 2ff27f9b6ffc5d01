//! Hostile SIP on real sockets, on both runtimes: each input gets the
//! response RFC 3261 gives it, or is dropped, with a log line naming what
//! happened; a stream that lost its framing is answered and closed; and
//! after all of it the process still registers a user.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use xfed_core::registrar::digest::Challenge;
use xfed_core::tls::testing::{LeafSpec, TestCert};
use xfed_tests::sip_ua::SipUa;
use xfed_tests::{free_port, temp_dir, write_config, Instance, BINARIES};

const DOMAIN: &str = "xfed.test";

/// A well-formed MESSAGE from an untrusted source (which would get 407).
fn good(n: u32) -> String {
    format!(
        "MESSAGE sip:bob@remote.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-hostile-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@xfed.test>;tag=h{n}\r\n\
         To: <sip:bob@remote.test>\r\n\
         Call-ID: hostile-{n}\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: 5\r\n\
         \r\n\
         hello"
    )
}

/// xfed with SIP on UDP and TCP at the first address and TLS at the
/// second.
fn start(bin: &str) -> (Instance, SocketAddr, SocketAddr) {
    let dir = temp_dir(&format!("sip-hostile-{bin}"));
    let cert = TestCert::self_signed(&LeafSpec::xmpp_server(DOMAIN));
    std::fs::write(dir.join("cert.pem"), cert.chain_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), cert.chain_pem()).unwrap();
    let sip = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let path = write_config(&dir, DOMAIN, free_port(), free_port(), &[]);
    let toml = std::fs::read_to_string(&path).unwrap().replace(
        "sip = []",
        &format!("sip = [\"udp:{sip}\", \"tcp:{sip}\", \"tls:{tls}\"]"),
    );
    let toml = format!(
        "{toml}\n[sip]\nmode = \"registrar\"\nmax_message_size = \"8KiB\"\n\n\
         [[sip.account]]\nuser = \"alice\"\npassword = \"alice-secret\"\n\n\
         [store]\nurl = \"sqlite://xfed.db\"\n"
    );
    std::fs::write(&path, toml).unwrap();
    let inst = Instance::start(bin, &["run", "--config", "xfed.toml"], &dir);
    (inst, sip, tls)
}

/// Sends one datagram; returns the status lines of what comes back
/// within half a second.
fn datagram(sock: &UdpSocket, to: SocketAddr, bytes: &[u8]) -> Vec<String> {
    exchange(sock, to, bytes)
        .iter()
        .map(|text| text.lines().next().unwrap_or_default().to_owned())
        .collect()
}

/// Sends one datagram; returns what comes back within half a second.
fn exchange(sock: &UdpSocket, to: SocketAddr, bytes: &[u8]) -> Vec<String> {
    sock.send_to(bytes, to).expect("send datagram");
    let mut texts = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        texts.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    texts
}

/// Writes `bytes` on a fresh TCP connection; returns everything read until
/// xfed closes it or a second passes, and whether it closed.
fn stream(to: SocketAddr, bytes: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(to).expect("connect SIP TCP");
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

fn hostile(bin: &str) {
    let (mut xfed, sip, tls) = start(bin);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let wait = Duration::from_secs(5);

    // Garbage and a TLS ClientHello on the UDP port: dropped, logged.
    assert!(datagram(&sock, sip, b"hello world").is_empty());
    assert!(datagram(&sock, sip, b"\x16\x03\x01\x00\xa5\x01\x00\xff\xfe").is_empty());
    xfed.wait_log("dropped", wait);

    // No Max-Forwards: 400.
    let bytes = good(1).replace("Max-Forwards: 70\r\n", "");
    let r = datagram(&sock, sip, bytes.as_bytes());
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("SIP/2.0 400"), "{r:?}");

    // No Call-ID: no response can be built; dropped.
    let bytes = good(2).replace("Call-ID: hostile-2\r\n", "");
    assert!(datagram(&sock, sip, bytes.as_bytes()).is_empty());
    xfed.wait_log("dropped (no response possible)", wait);

    // Bad Content-Length on a datagram: 400.
    for (n, cl) in [(3, "Content-Length: abc"), (4, "Content-Length: 50")] {
        let bytes = good(n).replace("Content-Length: 5", cl);
        let r = datagram(&sock, sip, bytes.as_bytes());
        assert_eq!(r.len(), 1, "{cl}: {r:?}");
        assert!(r[0].starts_with("SIP/2.0 400"), "{cl}: {r:?}");
    }

    // Over `sip.max_message_size` (8 KiB here) with a readable head: 513.
    let body = "x".repeat(20_000);
    let bytes = good(5)
        .replace("Content-Length: 5", "Content-Length: 20000")
        .replace("\r\n\r\nhello", &format!("\r\n\r\n{body}"));
    let r = datagram(&sock, sip, bytes.as_bytes());
    assert_eq!(r, ["SIP/2.0 513 Message Too Large"]);

    // A header flood: over the header count, dropped.
    let flood: String = (0..300).map(|i| format!("X-Flood-{i}: y\r\n")).collect();
    let bytes = good(6).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{flood}"),
    );
    assert!(datagram(&sock, sip, bytes.as_bytes()).is_empty());

    // CRLF keepalives on UDP: silently ignored, as RFC 5626 wants.
    assert!(datagram(&sock, sip, b"\r\n\r\n").is_empty());

    // A well-formed MESSAGE from nobody trusted: challenged, not served.
    let r = datagram(&sock, sip, good(7).as_bytes());
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("SIP/2.0 407"), "{r:?}");

    // Streams. A double-CRLF ping gets its CRLF pong; the connection stays.
    let (out, closed) = stream(sip, b"\r\n\r\n");
    assert_eq!((out.as_str(), closed), ("\r\n", false));

    // No Content-Length on a stream: framing is lost, 400 then close.
    let bytes = good(8).replace("Content-Length: 5\r\n", "");
    let (out, closed) = stream(sip, bytes.as_bytes());
    assert!(out.starts_with("SIP/2.0 400"), "{out:?}");
    assert!(closed, "the connection stays open after lost framing");

    // A Content-Length past the limit on a stream: 413, then close (the
    // body would never be read whole).
    let bytes = good(9).replace("Content-Length: 5", "Content-Length: 999999");
    let (out, closed) = stream(sip, bytes.as_bytes());
    assert!(out.starts_with("SIP/2.0 413"), "{out:?}");
    assert!(closed);

    // CRLF games. LF-only lines on a stream: no response can be read out
    // of them, so the connection is closed, with a log line.
    let bytes = good(10).replace("\r\n", "\n");
    let (out, closed) = stream(sip, bytes.as_bytes());
    assert_eq!((out.as_str(), closed), ("", true));
    xfed.wait_log("Bare LF in the header section; dropped", wait);
    // A CR inside the start line of a datagram: dropped, with a log line.
    let before = xfed.log_text().matches("dropped").count();
    let bytes = good(11).replacen("MESSAGE sip", "MESS\rAGE sip", 1);
    assert!(datagram(&sock, sip, bytes.as_bytes()).is_empty());
    let after = xfed.log_text().matches("dropped").count();
    assert!(after > before, "no log line for the CR datagram");

    // Plain SIP and garbage on the TLS port: not TLS records, so the
    // connection is closed (after an alert) with a log line.
    for bytes in [good(12).as_bytes(), &b"\x16\x03\x01\xff\xffgarbage"[..]] {
        let (_, closed) = stream(tls, bytes);
        assert!(closed, "the TLS port kept a connection that is not TLS");
    }
    xfed.wait_log("SIP connection: TLS:", wait);

    // A captured Authorization sent again with a new branch (as an
    // attacker would, so that it is no retransmission): a stale
    // challenge, not a second message.
    let texts = exchange(&sock, sip, good(30).as_bytes());
    let challenge = texts
        .iter()
        .filter(|t| t.starts_with("SIP/2.0 407"))
        .flat_map(|t| t.lines())
        .find_map(|l| l.strip_prefix("Proxy-Authenticate: "))
        .and_then(|v| Challenge::parse(v).ok())
        .unwrap_or_else(|| panic!("no challenge: {texts:?}"));
    let auth = challenge
        .answer(
            "alice",
            "alice-secret",
            "MESSAGE",
            "sip:bob@remote.test",
            "c0ffee",
            1,
        )
        .header_value();
    let signed = |n: u32| {
        good(n).replacen(
            "Content-Type:",
            &format!("Proxy-Authorization: {auth}\r\nContent-Type:"),
            1,
        )
    };
    let first = datagram(&sock, sip, signed(31).as_bytes());
    assert!(
        first.iter().all(|l| !l.starts_with("SIP/2.0 407")),
        "the first use is authenticated: {first:?}"
    );
    let replayed = exchange(&sock, sip, signed(32).as_bytes());
    assert!(
        replayed
            .iter()
            .any(|t| t.starts_with("SIP/2.0 407") && t.contains("stale=true")),
        "{replayed:?}"
    );

    // Still alive: alice registers with digest.
    let mut alice = SipUa::new("alice", DOMAIN, "alice-secret", sip, false);
    assert_eq!(alice.register(600), 200, "{}", xfed.log_text());
    let log = xfed.log_text();
    assert!(log.contains("answering 513"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(xfed.terminate(), "xfed did not exit cleanly");
}

#[test]
fn hostile_sip_on_both_runtimes() {
    for bin in BINARIES {
        hostile(bin);
    }
}
