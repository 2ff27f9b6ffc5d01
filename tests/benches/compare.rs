//! xfed against what people run instead, on the same load in one run
//! (issue 11): the CPU time per message of a release `xfed` and of
//! Debian's Prosody relaying the same messages over s2s, in both
//! directions, and the ratio.
//!
//! Three servers on loopback: Prosody `prosody.test` (the partner, in
//! every phase), xfed `xfed.test` (SIP side: sipp) and a second Prosody,
//! `relay.test`, which stands for the XMPP server an organisation would
//! run instead of the gateway. Each s2s stream is TLS with dialback. Four
//! phases, each N messages at RATE a second after a warm-up message (so
//! that stream set-up is not counted), each measured by the CPU time
//! (utime + stime) of the one process under test:
//!
//! 1. into s2s, xfed: sipp (TCP, trusted) sends SIP MESSAGEs to
//!    bob@prosody.test; xfed translates and sends them on its s2s stream;
//! 2. into s2s, Prosody: dave@relay.test (c2s, `xmpp_send.py`) sends to
//!    carol@prosody.test; relay.test relays them on its s2s stream;
//! 3. out of s2s, xfed: erin@prosody.test sends to alice@xfed.test, whom
//!    sipp has registered over TCP (digest); xfed sends SIP MESSAGEs;
//! 4. out of s2s, Prosody: erin@prosody.test sends to dave@relay.test;
//!    relay.test delivers them over c2s.
//!
//! Receivers on c2s are `xmpp_count.py`; each phase checks that all N
//! arrived. Memory per idle link is `benches/idle_memory.rs`.
//!
//! Run: `cargo bench -p xfed-tests --bench compare`. Environment:
//! XFED_COMPARE_N (messages per phase, default 10,000), XFED_COMPARE_RATE
//! (per second, default 1,000), XFED_COMPARE_RUNTIME (`tokio`, the
//! default, or `async-std`). Skips (with the reason) when Prosody, sipp or
//! Python is missing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use xfed_core::tls::testing::{LeafSpec, TestCert};
use xfed_tests::load::{cpu_seconds, env_num, figure, percentile, release_xfed, Script, XfedLab};
use xfed_tests::prosody::{Prosody, ProsodyOptions, Skip};
use xfed_tests::sipp::{self, Sipp, SippOptions, Transport};
use xfed_tests::{free_port, temp_dir};

fn main() {
    if let Err(Skip(why)) = run() {
        println!("compare SKIPPED: {why}");
    }
}

/// Issue 11's target for the whole process, CPU per message over TLS, in
/// each direction.
const TARGET_US: f64 = 3.0;

/// One phase's figures.
struct Phase {
    cpu: f64,
    n: u32,
    what: String,
}

impl Phase {
    fn per_message_us(&self) -> f64 {
        self.cpu * 1e6 / f64::from(self.n.max(1))
    }
}

/// Waits for a receiver to end and checks that all `n` arrived.
fn received_all(receiver: &mut Script, n: u32, phase: &str) -> String {
    assert!(
        receiver.wait_exit(Duration::from_secs(120)),
        "{phase}: the receiver did not end"
    );
    let got = receiver.received();
    let count = got.latencies_ms.len();
    assert_eq!(
        count,
        n as usize,
        "{phase}: {count} of {n} arrived ({})",
        got.other.trim()
    );
    format!(
        "{count} arrived, {:.0} msg/s, latency p50 {:.1} ms, p99 {:.1} ms",
        (count.saturating_sub(1)) as f64 / got.span,
        percentile(&got.latencies_ms, 0.5),
        percentile(&got.latencies_ms, 0.99)
    )
}

/// An XMPP -> XMPP phase through relay.test (process `relay`): after a
/// warm-up, `sender` sends `n` messages at `rate` to the logged-in
/// `receiver`, within `send_time`; the relay's CPU time.
fn through_relay(
    mut receiver: Script,
    mut sender: Script,
    relay: u32,
    (n, rate, send_time): (u32, u32, Duration),
) -> Phase {
    let wait = Duration::from_secs(30);
    receiver.wait_line("ready", wait);
    sender.wait_line("ready", wait);
    sender.send("warmup", 1, 1);
    receiver.wait_line("warm", wait);
    let cpu0 = cpu_seconds(relay);
    sender.send("main", n, rate);
    sender.wait_line("sent", send_time);
    let what = received_all(&mut receiver, n, "XMPP -> XMPP through relay.test");
    Phase {
        cpu: cpu_seconds(relay) - cpu0,
        n,
        what,
    }
}

fn run() -> Result<(), Skip> {
    let n = env_num("XFED_COMPARE_N", 10_000);
    let rate = env_num("XFED_COMPARE_RATE", 1_000);
    sipp::binary()?;
    let (runtime, bin) = release_xfed("XFED_COMPARE_RUNTIME");

    let dir = temp_dir("compare");
    let relay_cert = TestCert::self_signed(&LeafSpec::xmpp_server("relay.test"));
    std::fs::write(dir.join("relay.crt"), relay_cert.chain_pem()).expect("relay.crt");
    std::fs::write(dir.join("relay.key"), relay_cert.key_pem()).expect("relay.key");
    let mut relay = ProsodyOptions::new("relay.test", IpAddr::V4(Ipv4Addr::new(127, 0, 0, 76)))
        .tls(dir.join("relay.crt"), dir.join("relay.key"))
        .cafile(dir.join("ca.pem"))
        .secure_auth(false)
        .require_encryption(true)
        .user("dave", "dave-secret");
    relay.log_level = "info".into();
    let relay_s2s = relay.s2s_addr();
    let XfedLab {
        prosody: partner,
        xfed,
        sip: sip_tcp,
    } = XfedLab::start(&bin, &dir, 75, |o| {
        o.user("carol", "carol-secret")
            .user("erin", "erin-secret")
            .route("relay.test", relay_s2s)
    })?;
    let relay = Prosody::start(relay.route("prosody.test", partner.options.s2s_addr()))?;
    let xfed_pid = xfed.0.id();
    println!(
        "compare: {n} messages a phase at {rate}/s; xfed on {runtime}; Prosody on both XMPP sides"
    );
    let wait = Duration::from_secs(30);
    let send_time = Duration::from_secs(u64::from(n / rate.max(1)) + 60);

    // 1. SIP -> s2s through xfed.
    let into_xfed = {
        let mut bob = Script::receiver("bob@prosody.test", "bob-secret", partner.c2s_addr(), n)?;
        bob.wait_line("ready", wait);
        let uac = |calls: u32, run: &str, rate: Option<u32>| {
            let o = SippOptions::load_to_bob(sip_tcp, run, calls, rate).timeout(send_time);
            Sipp::start(o).expect("sipp")
        };
        assert!(uac(1, "warmup", None).wait(wait).ok(), "SIP warm-up failed");
        bob.wait_line("warm", wait);
        let cpu0 = cpu_seconds(xfed_pid);
        let sent = uac(n, "main", Some(rate)).wait(send_time);
        assert!(sent.ok(), "sipp: {}", sent.report());
        let what = received_all(&mut bob, n, "SIP -> XMPP through xfed");
        Phase {
            cpu: cpu_seconds(xfed_pid) - cpu0,
            n,
            what,
        }
    };

    // 2. c2s -> s2s through relay.test.
    let into_prosody = through_relay(
        Script::receiver("carol@prosody.test", "carol-secret", partner.c2s_addr(), n)?,
        Script::sender(
            "dave@relay.test",
            "dave-secret",
            relay.c2s_addr(),
            "carol@prosody.test",
        )?,
        relay.pid(),
        (n, rate, send_time),
    );

    // 3. s2s -> SIP through xfed: alice registers from an untrusted
    // address (digest), then takes N + 1 MESSAGEs over her TCP flow.
    let erin_to =
        |to: &str| Script::sender("erin@prosody.test", "erin-secret", partner.c2s_addr(), to);
    let out_xfed = {
        let mut o = SippOptions::new("uas_register_receive.xml", sip_tcp, Transport::Tcp)
            .oocsf("uas_receive_message.xml")
            .auth("alice", "alice-secret", "xfed.test")
            .key("user", "alice")
            .key("domain", "xfed.test")
            .key("contact_params", Transport::Tcp.contact_params())
            .key("expect_messages", &(n + 1).to_string())
            .timeout(send_time);
        o.local = SocketAddr::from(([127, 0, 0, 77], free_port()));
        o.trace_msg = false;
        let mut alice = Sipp::start(o).expect("sipp");
        let mut erin = erin_to("alice@xfed.test")?;
        erin.wait_line("ready", wait);
        // sipp registers in milliseconds on loopback; the warm-up sets
        // up prosody.test's stream to xfed.
        std::thread::sleep(Duration::from_secs(1));
        erin.send("warmup", 1, 1);
        std::thread::sleep(Duration::from_secs(2));
        let cpu0 = cpu_seconds(xfed_pid);
        let t0 = Instant::now();
        erin.send("main", n, rate);
        erin.wait_line("sent", send_time);
        let run = alice.wait(send_time);
        let took = t0.elapsed();
        let cpu = cpu_seconds(xfed_pid) - cpu0;
        erin.finish();
        let errors = erin.wait_line("errors", wait);
        assert!(
            run.ok() && errors == "errors 0",
            "{errors}\n{}",
            run.report()
        );
        Phase {
            cpu,
            n,
            what: format!(
                "{n} (and the warm-up) answered by sipp within {:.2} s, no error back",
                took.as_secs_f64()
            ),
        }
    };

    // 4. s2s -> c2s through relay.test.
    let out_prosody = through_relay(
        Script::receiver("dave@relay.test", "dave-secret", relay.c2s_addr(), n)?,
        erin_to("dave@relay.test")?,
        relay.pid(),
        (n, rate, send_time),
    );

    println!("1. SIP -> s2s, xfed: {}", into_xfed.what);
    println!("2. c2s -> s2s, Prosody: {}", into_prosody.what);
    println!("3. s2s -> SIP, xfed: {}", out_xfed.what);
    println!("4. s2s -> c2s, Prosody: {}", out_prosody.what);
    println!(
        "CPU per message          xfed ({runtime})   Prosody   Prosody / xfed   issue 11 target"
    );
    for (name, x, p) in [
        ("into s2s (SIP/c2s in)", &into_xfed, &into_prosody),
        ("out of s2s (SIP/c2s out)", &out_xfed, &out_prosody),
    ] {
        let (xfed, prosody) = (x.per_message_us(), p.per_message_us());
        let verdict = if xfed <= TARGET_US {
            "met".to_owned()
        } else {
            format!("not met ({:.1}x over)", xfed / TARGET_US)
        };
        println!(
            "{name:<26} {xfed:>8.1} us {prosody:>9.1} us {:>10.2}       <= {TARGET_US} us: {verdict}",
            prosody / xfed.max(1e-9)
        );
    }
    let figures = [
        ("into_us", into_xfed.per_message_us()),
        ("out_us", out_xfed.per_message_us()),
        ("prosody_into_us", into_prosody.per_message_us()),
        ("prosody_out_us", out_prosody.per_message_us()),
    ];
    for (key, value) in figures {
        figure(&format!("compare.{runtime}.{key}"), value);
    }
    println!(
        "what bounds xfed's figure, with its profile: README, Benchmarks (the compare row); \
         memory per idle link for both: --bench idle_memory"
    );
    drop(xfed);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
