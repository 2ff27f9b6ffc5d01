//! Hostile presence on the wire, on both runtimes (issue 10): storms of
//! subscriptions from one partner domain and from one SIP user, PUBLISH
//! bodies that are broken, huge or made of thousands of tuples, and a
//! nesting bomb in a presence stanza over s2s. Each gets the protocol's
//! answer, each bound holds (counted in the answers), the log keeps to
//! its budget, and afterwards the process still serves: messages flow
//! and alice registers, with its memory and descriptors back where they
//! were (`hostile::measured`).
//!
//! The partner domains are scripted servers (`s2s_peer`) on loopback,
//! authenticated by dialback in the clear, so that a storm of thousands of
//! stanzas comes from a real, authenticated domain.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use xfed_core::xml::{ns, Element};
use xfed_tests::hostile::{measured, start_with, Target, DOMAIN};
use xfed_tests::s2s_peer::{Partner, Stream};
use xfed_tests::sip_ua::SipUa;
use xfed_tests::{PartnerSpec, BINARIES};

const ALICE: &str = "alice@xfed.test";
/// The bound on presence authorizations per user and pending ones per
/// domain, and on SIP notification dialogs, in these tests.
const MAX_WATCHERS: usize = 50;
const MAX_SUBSCRIPTIONS: usize = 20;
/// Log lines per source a minute: room for the 50 approvals and a few
/// warnings about the bound, far fewer than the storm.
const LOG_LINES: usize = 60;
const WAIT: Duration = Duration::from_secs(20);

fn spec(p: &Partner) -> PartnerSpec<'_> {
    PartnerSpec {
        domain: &p.domain,
        connect: p.addr.to_string(),
        tls: "not-supported",
        sasl: "not-supported",
        dialback: true,
    }
}

/// xfed.test with the accounts alice, bob and carol, the bounds above,
/// 256 KiB SIP messages (so that a PIDF body meets its own bound first),
/// and the partners `remote.test` (federated) and `unverified.test`
/// (public-unverified), scripted.
fn start(bin: &str, name: &str) -> (Target, Partner, Partner) {
    let remote = Partner::start("remote.test", DOMAIN);
    let unverified = Partner::start("unverified.test", DOMAIN);
    let sip = format!(
        "max_watchers = {MAX_WATCHERS}\nmax_subscriptions = {MAX_SUBSCRIPTIONS}\n\
         max_message_size = \"256KiB\"\n\
         [[sip.account]]\nuser = \"bob\"\npassword = \"bob-secret\"\n\
         [[sip.account]]\nuser = \"carol\"\npassword = \"carol-secret\"\n"
    );
    let t = start_with(
        bin,
        name,
        &format!("log_lines_per_source = {LOG_LINES}\n"),
        &sip,
        &[
            (spec(&remote), "federated"),
            (spec(&unverified), "public-unverified"),
        ],
    );
    // Warm up: what the runtime opens on first use (its blocking pool, the
    // store's journal) is not a leak of what comes next.
    registered(&t, "carol");
    std::thread::sleep(Duration::from_millis(300));
    (t, remote, unverified)
}

fn is_presence(e: &Element, ty: &str, from: &str) -> bool {
    e.name() == "presence" && e.attr("type") == Some(ty) && e.attr("from") == Some(from)
}

/// A `resource-constraint` error presence to a user of `domain`.
fn refused(e: &Element, domain: &str) -> bool {
    e.name() == "presence"
        && e.attr("type") == Some("error")
        && e.attr("to").is_some_and(|to| to.ends_with(domain))
        && e.child(ns::SERVER, "error")
            .is_some_and(|err| err.child(ns::STANZAS, "resource-constraint").is_some())
}

/// The log lines so far that contain every one of `needles`.
fn lines(t: &mut Target, needles: &[&str]) -> usize {
    t.inst
        .log_text()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// Makes xfed's own stream to `p` ready before a storm: a probe from a
/// stranger is answered `unsubscribed` over it. (Answers to a storm that
/// meets a route still being set up wait in its queue, 1,000 at most; the
/// errors beyond are dropped, as errors are never answered.)
fn route_up(p: &Partner, s: &mut Stream) {
    let stranger = format!("stranger@{}", p.domain);
    s.send(&format!(
        "<presence from='{stranger}' to='{ALICE}' type='probe'/>"
    ));
    let answered = p.wait_for(1, WAIT, |e| {
        is_presence(e, "unsubscribed", ALICE) && e.attr("to") == Some(stranger.as_str())
    });
    assert_eq!(answered, 1, "no route to {}", p.domain);
}

/// A registered user agent for `user` over UDP.
fn registered(t: &Target, user: &str) -> SipUa {
    let mut ua = SipUa::new(user, DOMAIN, &format!("{user}-secret"), t.sip, false);
    assert_eq!(ua.register(300), 200, "{user} not registered");
    ua
}

/// The next MESSAGE `ua` receives (answered 200), skipping NOTIFYs.
fn message_to(ua: &mut SipUa, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let req = ua.receive(200, left)?;
        if req.method.as_str() == "MESSAGE" {
            return Some(String::from_utf8_lossy(&req.body).into_owned());
        }
    }
}

/// 2,000 users of one federated domain subscribe to alice at once:
/// `MAX_WATCHERS` are approved (`subscribed`), every other one gets a
/// `resource-constraint` error, the lines about it stay within the
/// domain's budget, and a message from that domain still reaches alice.
/// Then 1,000 users of a public-unverified domain ask to see bob and
/// carol: `MAX_WATCHERS` wait (pending: no answer yet), the rest are
/// refused, and bob writing to a pending one is the invitation that
/// approves it.
#[test]
fn subscription_storm_from_one_domain() {
    for bin in BINARIES {
        let (mut t, remote, unverified) = start(bin, "presence-storm");
        let mut alice = registered(&t, "alice");
        let report = measured(&mut t, "subscribe storm, approved", |t| {
            let mut s = remote.connect(t.s2s);
            route_up(&remote, &mut s);
            let storm: String = (0..2_000)
                .map(|i| {
                    format!("<presence from='w{i}@remote.test' to='{ALICE}' type='subscribe'/>")
                })
                .collect();
            s.send(&storm);
            let errors =
                remote.wait_for(2_000 - MAX_WATCHERS, WAIT, |e| refused(e, "@remote.test"));
            assert_eq!(errors, 2_000 - MAX_WATCHERS, "{bin}: refusals");
            let approved = remote.count(|e| is_presence(e, "subscribed", ALICE));
            assert_eq!(approved, MAX_WATCHERS, "{bin}: approvals");
            // Each approved watcher got alice's presence too, nobody else.
            let told = remote.count(|e| {
                e.name() == "presence" && e.attr("from") == Some(ALICE) && e.attr("type").is_none()
                    || is_presence(e, "unavailable", ALICE)
            });
            assert_eq!(told, MAX_WATCHERS, "{bin}: presence to the approved");
            let about = lines(t, &["presence: ", "@remote.test", ALICE]);
            let bound = lines(t, &["sip.max_watchers reached", "@remote.test"]);
            assert!(about <= LOG_LINES, "{bin}: {about} lines about the storm");
            assert!(bound >= 1, "{bin}: no line says the bound was reached");
            s.send(&format!(
                "<message from='w1999@remote.test/x' to='{ALICE}' type='chat'>\
                 <body>still here</body></message>"
            ));
            let got = message_to(&mut alice, WAIT);
            assert_eq!(
                got.as_deref(),
                Some("still here"),
                "{bin}: message after the storm"
            );
        });
        println!("{bin}: {report}");

        let mut bob = registered(&t, "bob");
        let report = measured(&mut t, "subscribe storm, pending", |t| {
            let mut s = unverified.connect(t.s2s);
            route_up(&unverified, &mut s);
            let storm: String = (0..1_000)
                .map(|i| {
                    let user = if i % 2 == 0 { "bob" } else { "carol" };
                    format!(
                        "<presence from='u{i}@unverified.test' to='{user}@xfed.test' type='subscribe'/>"
                    )
                })
                .collect();
            s.send(&storm);
            let errors = unverified.wait_for(1_000 - MAX_WATCHERS, WAIT, |e| {
                refused(e, "@unverified.test")
            });
            assert_eq!(
                errors,
                1_000 - MAX_WATCHERS,
                "{bin}: refusals of the pending storm"
            );
            // The first MAX_WATCHERS wait: the domain's bound, not two
            // users' (which would have kept twice as many).
            for i in [0, MAX_WATCHERS - 2] {
                let watcher = format!("u{i}@unverified.test");
                assert_eq!(
                    unverified.count(|e| e.attr("to") == Some(watcher.as_str())),
                    0,
                    "{bin}: {watcher} is pending, not answered"
                );
            }
            let answered = unverified.count(|e| {
                e.name() == "presence"
                    && !refused(e, "")
                    && e.attr("to").is_some_and(|to| to.starts_with('u'))
            });
            assert_eq!(answered, 0, "{bin}: pending requests answered");
            let pending = lines(t, &["asks to see", "@unverified.test"]);
            assert!(pending <= LOG_LINES, "{bin}: {pending} lines");
            // bob writes to a pending watcher: the invitation.
            let r = bob.message("u0@unverified.test", "hello u0");
            assert_eq!(r.status, 202, "{bin}: bob's message");
            let approved = unverified.wait_for(1, WAIT, |e| {
                is_presence(e, "subscribed", "bob@xfed.test")
                    && e.attr("to") == Some("u0@unverified.test")
            });
            assert_eq!(approved, 1, "{bin}: the invitation approves u0");
            // One refused earlier is not pending: writing to it approves
            // nothing.
            let r = bob.message("u98@unverified.test", "hello u98");
            assert_eq!(r.status, 202);
            std::thread::sleep(Duration::from_millis(500));
            let extra = unverified.count(|e| is_presence(e, "subscribed", "bob@xfed.test"));
            assert_eq!(extra, 1, "{bin}: u98 was never pending");
        });
        println!("{bin}: {report}");
        let log = t.inst.log_text();
        assert!(!log.contains("panicked"), "{log}");
    }
}

/// alice's user agent SUBSCRIBEs to 200 XMPP contacts, with
/// `MAX_SUBSCRIPTIONS` allowed: that many get 200 (and a `subscribe` goes
/// to each contact), every other one 503 with Retry-After, the warnings
/// keep to alice's log budget, and the gateway still serves: bob is
/// refused a new dialog (the table is full) but his message goes out.
#[test]
fn subscribe_storm_beyond_max_subscriptions() {
    for bin in BINARIES {
        let (mut t, remote, _unverified) = start(bin, "subscribe-storm");
        let mut bob = registered(&t, "bob");
        let report = measured(&mut t, "SUBSCRIBE storm", |t| {
            let mut alice = registered(t, "alice");
            let mut statuses = Vec::new();
            for i in 0..200 {
                let r = alice.subscribe(&format!("c{i}@remote.test"), 3600);
                if r.status == 503 {
                    assert!(
                        r.headers.get("Retry-After").is_some(),
                        "{bin}: 503 without Retry-After"
                    );
                }
                statuses.push(r.status);
                // The NOTIFYs (pending) are answered as they come.
                while alice.notify(Duration::ZERO).is_some() {}
            }
            let ok = statuses.iter().filter(|s| **s == 200).count();
            let full = statuses.iter().filter(|s| **s == 503).count();
            assert_eq!(
                (ok, full),
                (MAX_SUBSCRIPTIONS, 200 - MAX_SUBSCRIPTIONS),
                "{bin}: {statuses:?}"
            );
            assert!(statuses[..MAX_SUBSCRIPTIONS].iter().all(|s| *s == 200));
            let asked = remote.wait_for(MAX_SUBSCRIPTIONS, WAIT, |e| {
                is_presence(e, "subscribe", ALICE)
            });
            assert_eq!(
                asked, MAX_SUBSCRIPTIONS,
                "{bin}: subscribes sent to the contacts"
            );
            let warned = lines(t, &["sip.max_subscriptions", ALICE]);
            assert!(
                (1..=LOG_LINES).contains(&warned),
                "{bin}: {warned} warnings for {full} refusals"
            );
            // The others are served: a new dialog is refused (the bound is
            // the gateway's), a message goes through.
            assert_eq!(bob.subscribe("c0@remote.test", 3600).status, 503);
            assert_eq!(bob.message("c0@remote.test", "still served").status, 202);
            let got = remote.wait_for(1, WAIT, |e| {
                e.name() == "message" && e.attr("from").is_some_and(|f| f.starts_with("bob@"))
            });
            assert_eq!(got, 1, "{bin}: bob's message");
            // alice keeps her dialogs: NOTIFYs still answered (none ends).
            while alice.notify(Duration::from_millis(200)).is_some() {}
            let asked = remote.count(|e| is_presence(e, "subscribe", ALICE));
            assert_eq!(asked, MAX_SUBSCRIPTIONS, "{bin}");
        });
        println!("{bin}: {report}");
    }
}

/// A PIDF document of one open tuple and `tuples` empty ones (18 bytes
/// each, so that 3,000 stay under the PIDF size bound), and a note of
/// `note` bytes.
fn pidf(tuples: usize, note: usize) -> String {
    let tuples: String = (0..tuples).map(|i| format!("<tuple id='t{i}'/>")).collect();
    format!(
        "<?xml version='1.0' encoding='UTF-8'?>\
         <presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:{ALICE}'>\
         <tuple id='open'><status><basic>open</basic></status></tuple>{tuples}\
         <note>{}</note></presence>",
        "n".repeat(note)
    )
}

/// PUBLISH bodies from an authenticated device: broken PIDF gets 400,
/// thousands of tuples 400 (the PIDF reader's bound, at once), a body
/// over the PIDF size bound 413, one over `sip.max_message_size` 413 and
/// the connection closed, each with a log line; a good PUBLISH then gets
/// 200.
#[test]
fn hostile_publish_bodies() {
    for bin in BINARIES {
        let (mut t, _remote, _unverified) = start(bin, "publish");
        let report = measured(&mut t, "hostile PIDF in PUBLISH", |t| {
            let mut alice = SipUa::new("alice", DOMAIN, "alice-secret", t.sip, true);
            let cases = [
                (
                    "<presence xmlns='urn:ietf:params:xml:ns:pidf'><tuple id='a'>".to_owned(),
                    400,
                    "PIDF body is not usable XML",
                ),
                (pidf(3_000, 0), 400, "PIDF body has over 32 tuples"),
                (pidf(0, 100_000), 413, "exceeds the 65536 byte limit"),
            ];
            for (body, status, line) in cases {
                let start = Instant::now();
                let r = alice.publish(&body, None, 600);
                assert_eq!(r.status, status, "{bin}: {line}");
                assert!(
                    start.elapsed() < Duration::from_secs(2),
                    "{bin}: {line} took {:?}",
                    start.elapsed()
                );
                t.inst.wait_log(line, WAIT);
            }
            let r = alice.publish(&pidf(0, 10), None, 600);
            assert_eq!(r.status, 200, "{bin}: a good PUBLISH after the bad ones");
            // Over sip.max_message_size (256 KiB here): the SIP bound,
            // before any digest.
            let body = pidf(0, 300_000);
            let request = format!(
                "PUBLISH sip:{ALICE} SIP/2.0\r\n\
                 Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-huge\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{ALICE}>;tag=h\r\nTo: <sip:{ALICE}>\r\n\
                 Call-ID: huge-pidf\r\nCSeq: 1 PUBLISH\r\nEvent: presence\r\n\
                 Content-Type: application/pidf+xml\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut s = TcpStream::connect(t.sip).expect("connect SIP TCP");
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let _ = s.write_all(request.as_bytes());
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            assert!(out.starts_with("SIP/2.0 413"), "{bin}: {out:?}");
        });
        println!("{bin}: {report}");
    }
}

/// A presence stanza nested 40 deep on remote.test's authenticated
/// stream: the stream error `policy-violation` and the end of the stream
/// (the XML reader's depth limit is 32); remote.test connects again and
/// its message reaches alice.
#[test]
fn nesting_bomb_in_presence_over_s2s() {
    for bin in BINARIES {
        let (mut t, remote, _unverified) = start(bin, "nesting");
        let mut alice = registered(&t, "alice");
        let report = measured(&mut t, "nested presence over s2s", |t| {
            let mut s = remote.connect(t.s2s);
            let bomb = format!(
                "<presence from='deep@remote.test' to='{ALICE}'>{}{}</presence>",
                "<x>".repeat(40),
                "</x>".repeat(40)
            );
            s.send(&bomb);
            let (said, closed) = s.until_closed(WAIT);
            let violation = said
                .iter()
                .any(|e| e.name() == "error" && e.child(ns::STREAMS, "policy-violation").is_some());
            assert!(violation, "{bin}: {said:?}");
            assert!(closed, "{bin}: the stream stayed open");
            let mut again = remote.connect(t.s2s);
            again.send(&format!(
                "<message from='deep@remote.test/x' to='{ALICE}' type='chat'>\
                 <body>after the bomb</body></message>"
            ));
            let got = message_to(&mut alice, WAIT);
            assert_eq!(got.as_deref(), Some("after the bomb"), "{bin}");
        });
        println!("{bin}: {report}");
    }
}
