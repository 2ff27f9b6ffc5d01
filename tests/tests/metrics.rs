//! `[listen] metrics` on real sockets, both binaries: a.test runs xfed
//! (tokio), b.test xfed-async-std, each with its metrics listener on a
//! loopback port. alice registers with a.test and writes to bob at b.test
//! (SIP -> s2s with TLS and dialback -> SIP); both endpoints are scraped
//! with a plain TcpStream before and after, and the counters must move.
//! Malformed, other-method, other-path and oversized requests get their
//! statuses.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use xfed_tests::sip_pair::{deployments, start, ua, Side};
use xfed_tests::{free_port, read_to_close};

const WAIT: Duration = Duration::from_secs(20);

/// Turns `side`'s metrics listener on, at a free loopback port.
fn metrics_on(side: &Side) -> SocketAddr {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let path = side.dir.join("xfed.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    assert!(toml.contains("metrics = false\n"));
    let toml = toml.replace("metrics = false\n", &format!("metrics = \"{addr}\"\n"));
    std::fs::write(&path, toml).unwrap();
    addr
}

/// Sends `request` as it is and reads the answer until xfed closes.
fn ask(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).expect("send the request");
    read_to_close(&mut s)
}

/// A scrape's body, after checking its head.
fn scrape(addr: SocketAddr) -> String {
    let answer = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert!(body.ends_with("\n# EOF\n"), "{body}");
    body.to_owned()
}

/// The value of the sample line that starts with `sample` (name and
/// labels), or 0 when there is none.
fn value(body: &str, sample: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0, |v| v.parse().expect("an integer value"))
}

/// The value of a float sample (a histogram's sum).
fn seconds(body: &str, sample: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().expect("a number"))
}

/// Scrapes until `sample` is at least `want` (events are counted as the
/// gateway task carries them out, a moment after the bytes they caused).
fn wait_for(addr: SocketAddr, sample: &str, want: u64) -> String {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let body = scrape(addr);
        if value(&body, sample) >= want || Instant::now() > until {
            assert!(value(&body, sample) >= want, "{sample} < {want}:\n{body}");
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn counters_move_on_both_runtimes() {
    let (a, b) = deployments("metrics");
    let (ma, mb) = (metrics_on(&a), metrics_on(&b));
    let mut xa = start("xfed", &a);
    let mut xb = start("xfed-async-std", &b);

    let relayed_out = "xfed_messages_relayed_total{direction=\"sip_to_xmpp\"}";
    let relayed_in = "xfed_messages_relayed_total{direction=\"xmpp_to_sip\"}";
    let registrations = "xfed_registrations_total";
    for addr in [ma, mb] {
        let body = scrape(addr);
        assert!(
            body.contains("# TYPE xfed_registrations counter\n"),
            "{body}"
        );
        assert!(body.contains("\nxfed_registrations_total 0\n"), "{body}");
        assert_eq!(value(&body, relayed_out), 0);
        assert_eq!(value(&body, relayed_in), 0);
        // The latency histograms are there from the start, empty.
        for h in ["xfed_sip_to_xmpp_seconds", "xfed_xmpp_to_sip_seconds"] {
            assert!(body.contains(&format!("# TYPE {h} histogram\n")), "{body}");
            assert_eq!(value(&body, &format!("{h}_count")), 0, "{body}");
        }
    }

    let mut alice = ua("alice", &a, false);
    let mut bob = ua("bob", &b, true);
    assert_eq!(alice.register(600), 200, "{}", xa.log_text());
    assert_eq!(bob.register(600), 200, "{}", xb.log_text());
    assert_eq!(
        alice.message("bob@b.test", "counted").status,
        202,
        "{}",
        xa.log_text()
    );
    let got = bob.receive(200, WAIT).expect("bob's MESSAGE");
    assert_eq!(got.body, b"counted");

    // a.test: alice's registration, her message out to XMPP, and the
    // outbound stream it opened to its partner b.test by dialback over TLS.
    let body = wait_for(ma, relayed_out, 1);
    assert_eq!(value(&body, registrations), 1, "{body}");
    // Its latency, from the MESSAGE's arrival to its stanza on the stream
    // (opened for it: DNS, TCP, TLS, dialback), in one bucket and +Inf.
    let body = wait_for(ma, "xfed_sip_to_xmpp_seconds_count", 1);
    assert_eq!(value(&body, "xfed_sip_to_xmpp_seconds_count"), 1, "{body}");
    assert_eq!(
        value(&body, "xfed_sip_to_xmpp_seconds_bucket{le=\"+Inf\"}"),
        1,
        "{body}"
    );
    assert!(
        seconds(&body, "xfed_sip_to_xmpp_seconds_sum") > 0.0,
        "{body}"
    );
    assert_eq!(value(&body, "xfed_xmpp_to_sip_seconds_count"), 0, "{body}");
    // Taken from the gateway at most every second.
    let body = wait_for(ma, "xfed_s2s_stanzas_total{direction=\"out\"}", 1);
    assert_eq!(value(&body, "xfed_events_total{kind=\"registered\"}"), 1);
    let out = "xfed_streams_authenticated_total{partner=\"b.test\",direction=\"out\",method=\"dialback\",tls=\"TLSv1_";
    assert!(body.lines().any(|l| l.starts_with(out)), "{body}");
    assert_eq!(value(&body, relayed_in), 0, "{body}");
    assert!(
        value(
            &body,
            "xfed_connections_accepted_total{listener=\"sip_tcp\"}"
        ) == 0
    );

    // b.test: bob's registration (over TCP), the stream in from a.test,
    // the message out to SIP and bob's 200 to it.
    let body = wait_for(mb, "xfed_sip_message_answers_total{class=\"2xx\"}", 1);
    assert_eq!(value(&body, registrations), 1, "{body}");
    // From the stanza's arrival to bob's 200.
    assert_eq!(value(&body, "xfed_xmpp_to_sip_seconds_count"), 1, "{body}");
    assert_eq!(value(&body, "xfed_sip_to_xmpp_seconds_count"), 0, "{body}");
    assert!(
        seconds(&body, "xfed_xmpp_to_sip_seconds_sum") > 0.0,
        "{body}"
    );
    let body = wait_for(mb, "xfed_s2s_stanzas_total{direction=\"in\"}", 1);
    assert_eq!(value(&body, relayed_in), 1, "{body}");
    // Translated from the stanza's text, with no element tree.
    let unread = "xfed_s2s_messages_translated_unread_total";
    assert_eq!(value(&body, unread), 1, "{body}");
    assert_eq!(value(&body, relayed_out), 0, "{body}");
    let inbound = "xfed_streams_authenticated_total{partner=\"a.test\",direction=\"in\",method=\"dialback\",tls=\"TLSv1_";
    assert!(body.lines().any(|l| l.starts_with(inbound)), "{body}");
    assert!(
        value(
            &body,
            "xfed_connections_accepted_total{listener=\"sip_tcp\"}"
        ) >= 1
    );

    // What is not a scrape gets its status, and the connection closes.
    for addr in [ma, mb] {
        let status = |request: &[u8]| {
            let answer = ask(addr, request);
            answer.lines().next().unwrap_or_default().to_owned()
        };
        assert_eq!(status(b"hello there\r\n\r\n"), "HTTP/1.1 400 Bad Request");
        assert_eq!(
            status(b"POST /metrics HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 405 Method Not Allowed"
        );
        assert_eq!(
            status(b"GET /other HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 404 Not Found"
        );
        // `/` is the status page (its content: status_page.rs).
        let page = ask(addr, b"GET / HTTP/1.1\r\n\r\n");
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(
            page.contains("Content-Type: text/html; charset=utf-8\r\n"),
            "{page}"
        );
        assert!(page.ends_with("</html>\n"), "{page}");
        // A head that never ends: refused at 8 KiB, not read further.
        let mut big = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 16 * 1024));
        assert_eq!(status(&big), "HTTP/1.1 431 Request Header Fields Too Large");
        // Still serving.
        scrape(addr);
    }
    assert!(xa.terminate() && xb.terminate(), "unclean exit on SIGTERM");
}
