//! SIP → XMPP end to end: sipp sends N SIP MESSAGEs (default 5,000 at
//! 1,000/s, one TCP connection, from a `trusted` address so no digest) as
//! alice@xfed.test to bob@prosody.test; a release `xfed` (tokio) turns them
//! into stanzas on its s2s stream to Prosody (TLS, dialback), and Prosody
//! delivers them over c2s to a raw-socket receiver
//! (`tests/peers/xmpp_count.py`).
//!
//! Prints: the SIP side (calls, 202s, sipp's response times for the 202,
//! from `-trace_rtt` in whole milliseconds; xfed sends the 202 once the
//! stanza is on the authenticated s2s stream, so it covers xfed's SIP and
//! XMPP work but not Prosody's),
//! the messages received by bob and their rate (first to last arrival),
//! the latency per message from sipp's send (`[timestamp]` in the body) to
//! the arrival at bob (the whole path: sipp, xfed, s2s, Prosody, c2s),
//! p50/p90/p99/max, and the CPU time xfed and Prosody spent.
//!
//! Run: `cargo bench -p xfed-tests --bench sip_e2e` (builds the release
//! binary first). Environment: XFED_SIP_BENCH_N (messages, default 5000),
//! XFED_SIP_BENCH_RATE (per second, default 1000), XFED_SIP_BENCH_LIMIT
//! (most outstanding MESSAGEs, default 2000), XFED_SIP_BENCH_RUNTIME
//! (`tokio`, the default, or `async-std`: which binary runs). Skips (with the reason) when
//! Prosody, sipp or Python is missing.

use std::time::{Duration, Instant};

use xfed_tests::load::{cpu_seconds, env_num, percentile, release_xfed, Script, XfedLab};
use xfed_tests::prosody::Skip;
use xfed_tests::sipp::{self, Sipp, SippOptions};
use xfed_tests::temp_dir;

fn main() {
    if let Err(Skip(why)) = run() {
        println!("sip_e2e SKIPPED: {why}");
    }
}

fn run() -> Result<(), Skip> {
    let n = env_num("XFED_SIP_BENCH_N", 5000);
    let rate = env_num("XFED_SIP_BENCH_RATE", 1000);
    let limit = env_num("XFED_SIP_BENCH_LIMIT", 2000);
    sipp::binary()?;
    let (runtime, bin) = release_xfed("XFED_SIP_BENCH_RUNTIME");
    println!("runtime: {runtime} ({})", bin.display());

    let dir = temp_dir("sip-e2e");
    let XfedLab {
        prosody,
        xfed,
        sip: sip_tcp,
    } = XfedLab::start(&bin, &dir, 71, |o| o)?;
    let xfed_pid = xfed.0.id();

    // The receiver: bob over c2s.
    let mut receiver = Script::receiver("bob@prosody.test", "bob-secret", prosody.c2s_addr(), n)?;
    receiver.wait_line("ready", Duration::from_secs(20));

    let uac = |calls: u32, run: &str, rate: Option<u32>, trace: bool| {
        let mut o =
            SippOptions::load_to_bob(sip_tcp, run, calls, rate).timeout(Duration::from_secs(120));
        o.limit = Some(limit);
        o.trace_msg = trace;
        // One line per call with its MESSAGE -> 202 time (ms resolution).
        o.extra_args = ["-trace_rtt", "-rtt_freq", "100"]
            .map(String::from)
            .to_vec();
        Sipp::start(o).expect("sipp")
    };
    // Warm-up: the s2s streams both ways (TLS, dialback) are set up.
    let t_warm = Instant::now();
    let warm = uac(1, "warmup", None, true).wait(Duration::from_secs(60));
    assert!(warm.ok(), "warm-up failed:\n{}", warm.report());
    receiver.wait_line("warm", Duration::from_secs(20));
    println!(
        "warm-up: first MESSAGE delivered (s2s set-up included) in {:.3} s",
        t_warm.elapsed().as_secs_f64()
    );

    let cpu_xfed0 = cpu_seconds(xfed_pid);
    let cpu_prosody0 = cpu_seconds(prosody.pid());
    let t0 = Instant::now();
    let mut load = uac(n, "main", Some(rate), false);
    let sent = load.wait(Duration::from_secs(150));
    let sipp_elapsed = t0.elapsed();
    // The receiver ends at N messages, or 15 s after the last one.
    let ended = receiver.wait_exit(Duration::from_secs(60));
    let cpu_xfed = cpu_seconds(xfed_pid) - cpu_xfed0;
    let cpu_prosody = cpu_seconds(prosody.pid()) - cpu_prosody0;
    std::thread::sleep(Duration::from_millis(100));
    let got = receiver.received();
    let latencies = &got.latencies_ms;
    let received = latencies.len();
    // Date_ms;response_time_ms;rtd_no
    let mut rtt: Vec<f64> = load
        .trace_file("rtt.csv")
        .lines()
        .skip(1)
        .filter_map(|l| l.split(';').nth(1)?.trim().parse().ok())
        .collect();
    rtt.sort_by(|a, b| a.total_cmp(b));
    let response_time = format!(
        "p50 {} ms, p99 {} ms, max {} ms over {} calls (sipp measures whole ms)",
        percentile(&rtt, 0.50),
        percentile(&rtt, 0.99),
        rtt.last().copied().unwrap_or(f64::NAN),
        rtt.len()
    );
    println!(
        "SIP: sipp sent {n} MESSAGEs at {rate}/s over TCP: {} answered 202, {} failed, sipp ran {:.2} s (exit {:?}); sipp's response times (MESSAGE -> 202, which xfed sends once the stanza is on the s2s stream) {}",
        sent.successful,
        sent.failed,
        sipp_elapsed.as_secs_f64(),
        sent.exit,
        response_time
    );
    println!(
        "XMPP: bob received {received} of {n} ({}); {:.0} msg/s from first to last arrival ({:.2} s)",
        got.other.trim().replace('\n', ", "),
        (received.saturating_sub(1)) as f64 / got.span,
        got.span
    );
    println!(
        "latency sipp send -> bob receive (sipp, xfed, s2s TLS, Prosody, c2s): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(latencies, 0.50),
        percentile(latencies, 0.90),
        percentile(latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "CPU during the run: xfed {:.2} s ({:.0} us per message), Prosody {:.2} s ({:.0} us per message)",
        cpu_xfed,
        cpu_xfed * 1e6 / n.max(1) as f64,
        cpu_prosody,
        cpu_prosody * 1e6 / n.max(1) as f64
    );
    if !ended || received < n as usize || !sent.ok() {
        eprintln!("{}\n{}", sent.report(), prosody.diagnostics());
        panic!("not every message went through: {received} of {n} received");
    }
    drop(receiver);
    drop(xfed);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
