//! Hostile SIP on real sockets, on both runtimes: each input gets the
//! response RFC 3261 gives it, or is dropped, with a log line naming what
//! happened; a stream that lost its framing is answered and closed; and
//! after all of it the process still registers a user. Silent,
//! half-finished and idle SIP connections are closed by their timeouts,
//! and SIP connections have a limit of their own that never locks s2s out
//! (nor the other way round).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use xfed_core::registrar::digest::Challenge;
use xfed_tests::hostile::{start as start_with, Target as Xfed, DOMAIN};
use xfed_tests::sip_ua::SipUa;
use xfed_tests::{Instance, BINARIES};

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

/// xfed with the hostile tests' settings.
fn start(bin: &str) -> (Instance, SocketAddr, SocketAddr) {
    // Every hostile input's log line is checked: no budget to run out.
    let x = start_with(
        bin,
        "hostile",
        "log_lines_per_source = 1000\n",
        "max_message_size = \"8KiB\"\n",
    );
    (x.inst, x.sip, x.tls)
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

/// A complete OPTIONS request (answered 200 without authentication).
fn options(n: u32) -> String {
    format!(
        "OPTIONS sip:xfed.test SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-options-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:someone@elsewhere.test>;tag=o{n}\r\n\
         To: <sip:xfed.test>\r\n\
         Call-ID: options-{n}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Writes `bytes` on a new connection to `to` and reads until xfed closes
/// it: how long that took after the write, or `None` if it was still open
/// after `bound`.
fn closed_within(to: SocketAddr, bytes: &[u8], bound: Duration) -> Option<Duration> {
    let mut s = TcpStream::connect(to).expect("connect");
    s.write_all(bytes).expect("write");
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = bound.checked_sub(start.elapsed())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(start.elapsed()),
            Err(_) => {}
        }
    }
}

/// Opens an s2s connection and sends remote.test's stream header: whether
/// xfed answered with its own (the connection is kept open for the caller).
fn s2s_served(to: SocketAddr) -> (TcpStream, bool) {
    let mut s = TcpStream::connect(to).expect("connect s2s");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
        from='remote.test' to='xfed.test' version='1.0'>";
    let _ = s.write_all(header.as_bytes());
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let served = loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&got).contains("<stream:stream") {
            break true;
        }
    };
    (s, served)
}

fn timeouts(bin: &str) {
    let Xfed {
        mut inst, sip, tls, ..
    } = start_with(
        bin,
        "timeouts",
        "",
        "handshake_timeout = \"1s\"\nrequest_timeout = \"1s\"\nidle_timeout = \"2s\"\n",
    );
    let full = options(1);
    let partial_body = full.replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Length: 100\r\n\r\nhello",
    );
    let hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec();
    // (what, where, bytes, the timeout that must close it)
    let second = Duration::from_secs(1);
    let cases: Vec<(&str, SocketAddr, Vec<u8>, Duration)> = vec![
        ("silent TCP", sip, Vec::new(), second),
        (
            "half a header section",
            sip,
            full.as_bytes()[..60].to_vec(),
            second,
        ),
        (
            "Content-Length beyond the body",
            sip,
            partial_body.into_bytes(),
            second,
        ),
        ("silent TLS", tls, Vec::new(), second),
        ("half a ClientHello", tls, hello, second),
        ("idle after a request", sip, full.into_bytes(), 2 * second),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(what, to, bytes, timeout)| {
            thread::spawn(move || {
                (
                    what,
                    timeout,
                    closed_within(to, &bytes, Duration::from_secs(8)),
                )
            })
        })
        .collect();
    // A registered flow outlives the idle timeout.
    let mut alice = SipUa::new("alice", DOMAIN, "alice-secret", sip, true);
    assert_eq!(alice.register(600), 200, "{}", inst.log_text());
    thread::sleep(Duration::from_millis(3500));

    for run in runs {
        let (what, timeout, took) = run.join().expect("case thread");
        let took = took.unwrap_or_else(|| panic!("{bin}: {what}: still open after 8 s"));
        assert!(
            took >= timeout / 2 && took <= timeout + Duration::from_secs(3),
            "{bin}: {what}: closed after {took:?}, expected about {timeout:?}"
        );
    }
    // The flow is still there: a MESSAGE over it gets its answer (404:
    // the address is no XMPP one).
    let r = alice.message("bob@xfed.test", "still here");
    assert_eq!(r.status, 404, "{bin}: {}", inst.log_text());
    // Each closure says which timeout, and whose connection.
    for line in [
        "closed: no complete message within 1s (sip.request_timeout)",
        "closed: TLS handshake not finished within 1s (sip.handshake_timeout)",
        "for 2s (sip.idle_timeout)",
    ] {
        let got = inst.wait_log(line, Duration::from_secs(5));
        assert!(got.contains("connection from 127.0.0.1:"), "{got}");
    }
    assert!(inst.terminate(), "{bin}: xfed did not exit cleanly");
}

fn limits(bin: &str) {
    let Xfed {
        mut inst, sip, s2s, ..
    } = start_with(
        bin,
        "limits",
        "connection_limit = 3\n",
        "connection_limit = 3\n",
    );
    let wait = Duration::from_secs(5);
    // Three silent SIP connections fill sip.connection_limit.
    let mut silent: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(sip).expect("connect SIP"))
        .collect();
    for _ in 0..3 {
        inst.wait_log("accepted SipTcp connection", wait);
    }
    // A fourth is closed at once (the request timeout is 30 s).
    let took = closed_within(sip, b"", wait);
    assert!(
        took.is_some(),
        "{bin}: a SIP connection beyond the limit stayed open"
    );
    inst.wait_log("sip.connection_limit 3 reached", wait);

    // s2s is served all the same, up to its own limit.
    let mut streams = Vec::new();
    for n in 0..3 {
        let (s, served) = s2s_served(s2s);
        assert!(
            served,
            "{bin}: s2s connection {n} refused:\n{}",
            inst.log_text()
        );
        streams.push(s);
    }
    let (_, served) = s2s_served(s2s);
    assert!(!served, "{bin}: a fourth s2s connection was served");
    inst.wait_log("gateway.connection_limit 3 reached", wait);

    // And with s2s at its limit, a SIP connection is served as soon as a
    // slot is free.
    drop(silent.pop());
    let deadline = Instant::now() + wait;
    let answered = loop {
        let mut s = TcpStream::connect(sip).expect("connect SIP");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(options(2).as_bytes());
        let mut buf = [0u8; 4096];
        if let Ok(n) = s.read(&mut buf) {
            if buf[..n].starts_with(b"SIP/2.0 200") {
                break true;
            }
        }
        if Instant::now() > deadline {
            break false;
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert!(answered, "{bin}: SIP not served:\n{}", inst.log_text());
    drop(streams);
    assert!(inst.terminate(), "{bin}: xfed did not exit cleanly");
}

#[test]
fn silent_and_unfinished_sip_connections_time_out_on_both_runtimes() {
    for bin in BINARIES {
        timeouts(bin);
    }
}

#[test]
fn sip_and_s2s_connection_limits_are_separate_on_both_runtimes() {
    for bin in BINARIES {
        limits(bin);
    }
}

/// Issue 8: what we send a peer that never reads waited in memory without
/// bound. Now a connection holds at most twice `max_stanza_size` waiting
/// (32 KiB here) and is dropped beyond it; others are served throughout
/// and memory stays flat.
fn stops_reading(bin: &str) {
    let Xfed { mut inst, sip, .. } =
        start_with(bin, "stops-reading", "max_stanza_size = \"16KiB\"\n", "");
    let served = |n: u32| {
        let mut other = TcpStream::connect(sip).expect("connect SIP");
        other
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        other.write_all(options(n).as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        let n = other.read(&mut buf).unwrap_or(0);
        buf[..n].starts_with(b"SIP/2.0 200")
    };
    // Warmed up (the runtime's first connection opens what it keeps).
    assert!(served(0), "{bin}: not served");
    thread::sleep(Duration::from_millis(500));
    let (rss_before, fds_before) = inst.resources();
    let mut s = TcpStream::connect(sip).expect("connect SIP");
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    // Each OPTIONS is answered 200 (about 400 bytes); never read.
    let mut sent = 0u32;
    let dropped = loop {
        let batch: String = (sent..sent + 100).map(options).collect();
        if s.write_all(batch.as_bytes()).is_err() {
            break true;
        }
        sent += 100;
        if sent >= 200_000 {
            break false;
        }
    };
    assert!(
        dropped,
        "{bin}: {sent} requests unread and still connected:\n{}",
        inst.log_text()
    );
    inst.wait_log("peer stopped reading", Duration::from_secs(5));
    // Served all the while.
    assert!(served(1), "{bin}: not served");
    // Closed sockets take a moment to go (a connection xfed closes
    // lingers up to 5 s for the peer's own close).
    let deadline = Instant::now() + Duration::from_secs(8);
    let (rss_after, fds_after) = loop {
        let (rss, fds) = inst.resources();
        if fds <= fds_before + 1 || Instant::now() > deadline {
            break (rss, fds);
        }
        thread::sleep(Duration::from_millis(100));
    };
    println!(
        "{bin}: dropped after {sent} unread requests; RSS {rss_before} -> {rss_after} KiB, fds {fds_before} -> {fds_after}"
    );
    assert!(
        rss_after < rss_before + 20 * 1024,
        "{bin}: RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert!(
        fds_after <= fds_before + 1,
        "{bin}: descriptors {fds_before} -> {fds_after}"
    );
    assert!(inst.terminate(), "{bin}: xfed did not exit cleanly");
}

#[test]
fn a_peer_that_stops_reading_is_dropped_on_both_runtimes() {
    for bin in BINARIES {
        stops_reading(bin);
    }
}
