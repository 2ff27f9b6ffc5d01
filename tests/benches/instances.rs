//! Two instances of one deployment sharing the load (issue 13 item 5): two
//! release xfed processes serving xfed.test on one throwaway PostgreSQL
//! (`sip.path` each, the same dialback secret), Debian's Prosody as the
//! partner, whose DNS sends xfed.test to the second. Four phases, each N
//! messages at RATE a second after a warm-up, measured by the CPU time
//! (utime + stime) of each instance:
//!
//! 1. SIP -> XMPP on one instance: sipp (TCP, trusted) sends N MESSAGEs
//!    to bob@prosody.test through the first;
//! 2. SIP -> XMPP on both: two sipps send N/2 each, one to each instance
//!    (each has its own s2s stream to Prosody);
//! 3. XMPP -> SIP, direct: erin@prosody.test sends N to dave, registered
//!    (sipp, TCP, digest) with the second, where Prosody delivers;
//! 4. XMPP -> SIP, forwarded: erin sends N to alice, registered with the
//!    first: the second forwards each to the first over SIP.
//!
//! Prints each phase's CPU per message on each instance and in all: what
//! sharing costs (phase 2 against 1) and what a user on another instance
//! costs (phase 4 against 3).
//!
//! Run: `cargo bench -p xfed-tests --bench instances`. Environment:
//! XFED_INSTANCES_N (messages a phase, default 5,000), XFED_INSTANCES_RATE
//! (per second, default 500), XFED_INSTANCES_RUNTIME (`tokio`, the
//! default, or `async-std`). Skips (with the reason) when PostgreSQL,
//! Prosody, sipp or Python is missing.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use xfed_tests::instances::deployment;
use xfed_tests::load::{cpu_seconds, env_num, release_xfed, Killed, Script};
use xfed_tests::postgres::Postgres;
use xfed_tests::prosody::{Prosody, Skip};
use xfed_tests::sipp::{self, Sipp, SippOptions, Transport};
use xfed_tests::{free_port, spawn_quiet};

fn main() {
    if let Err(Skip(why)) = run() {
        println!("instances SKIPPED: {why}");
    }
}

/// CPU seconds of each instance over one phase.
struct Phase {
    name: &'static str,
    cpu: [f64; 2],
    n: u32,
    took: f64,
}

impl Phase {
    fn row(&self) -> String {
        let us = |cpu: f64| cpu * 1e6 / f64::from(self.n.max(1));
        format!(
            "{:<34} {:>9.1} us {:>9.1} us {:>9.1} us {:>9.0}",
            self.name,
            us(self.cpu[0]),
            us(self.cpu[1]),
            us(self.cpu[0] + self.cpu[1]),
            f64::from(self.n) / self.took.max(1e-9)
        )
    }
}

/// Waits until `addr` accepts connections.
fn listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "xfed at {addr} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// sipp sending `calls` MESSAGEs as alice to bob@prosody.test through
/// the instance at `sip`.
fn uac(sip: SocketAddr, calls: u32, run: &str, rate: Option<u32>, timeout: Duration) -> Sipp {
    Sipp::start(SippOptions::load_to_bob(sip, run, calls, rate).timeout(timeout)).expect("sipp")
}

/// sipp registering `user` (digest) over TCP with the instance at `sip`
/// from 127.0.0.`ip`, then answering `expect` MESSAGEs.
fn uas(sip: SocketAddr, user: &str, ip: u8, expect: u32, timeout: Duration) -> Sipp {
    let mut o = SippOptions::new("uas_register_receive.xml", sip, Transport::Tcp)
        .oocsf("uas_receive_message.xml")
        .auth(user, &format!("{user}-secret"), "xfed.test")
        .key("user", user)
        .key("domain", "xfed.test")
        .key("contact_params", Transport::Tcp.contact_params())
        .key("expect_messages", &expect.to_string())
        .timeout(timeout);
    o.local = SocketAddr::from(([127, 0, 0, ip], free_port()));
    o.trace_msg = false;
    Sipp::start(o).expect("sipp")
}

fn start(bin: &Path, dir: &Path) -> Killed {
    Killed(spawn_quiet(bin, dir))
}

fn run() -> Result<(), Skip> {
    let n = env_num("XFED_INSTANCES_N", 5_000);
    let rate = env_num("XFED_INSTANCES_RATE", 500);
    sipp::binary()?;
    let (runtime, bin) = release_xfed("XFED_INSTANCES_RUNTIME");
    let Some(pg) = Postgres::start("bench-instances") else {
        return Err(Skip("PostgreSQL is not installed".into()));
    };
    pg.create_db("xfed");
    let d = deployment("bench", 2, &pg, 78, true);
    // sipp answers the first challenge only, and only MD5.
    for dir in &d.dirs {
        let file = dir.join("xfed.toml");
        let toml = std::fs::read_to_string(&file).expect("xfed.toml");
        let md5 = toml.replace(
            "[sip]\nmode = \"registrar\"\n",
            "[sip]\nmode = \"registrar\"\ndigest_algorithms = [\"MD5\", \"SHA-256\"]\n",
        );
        assert_ne!(md5, toml);
        std::fs::write(&file, md5).expect("xfed.toml");
    }
    let mut options = d.prosody.clone().user("erin", "erin-secret");
    options.log_level = "info".into();
    let prosody = Prosody::start(options)?;
    let sip: Vec<SocketAddr> = d
        .sip_ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let instances = [start(&bin, &d.dirs[0]), start(&bin, &d.dirs[1])];
    sip.iter().for_each(|a| listening(*a));
    let pids = [instances[0].0.id(), instances[1].0.id()];
    let cpu = || [cpu_seconds(pids[0]), cpu_seconds(pids[1])];
    let since = |c0: [f64; 2]| {
        let c = cpu();
        [c[0] - c0[0], c[1] - c0[1]]
    };
    println!("instances: {n} messages a phase at {rate}/s; two xfed on {runtime}, one PostgreSQL, Prosody as the partner");
    let wait = Duration::from_secs(30);
    let send_time = Duration::from_secs(u64::from(n / rate.max(1)) + 60);

    // 1 and 2: SIP -> XMPP, through one instance, then both.
    let mut bob = Script::receiver("bob@prosody.test", "bob-secret", prosody.c2s_addr(), n)?;
    bob.wait_line("ready", wait);
    for a in &sip {
        assert!(
            uac(*a, 1, "warmup", None, wait).wait(wait).ok(),
            "SIP warm-up failed"
        );
    }
    bob.wait_line("warm", wait);
    std::thread::sleep(Duration::from_millis(500));
    let (c0, t0) = (cpu(), Instant::now());
    let one = uac(sip[0], n, "main", Some(rate), send_time).wait(send_time);
    assert!(one.ok(), "sipp: {}", one.report());
    assert!(bob.wait_exit(send_time), "bob did not get all {n}");
    let one = Phase {
        name: "1. SIP -> XMPP, one instance",
        cpu: since(c0),
        n,
        took: t0.elapsed().as_secs_f64(),
    };
    let mut bob = Script::receiver("bob@prosody.test", "bob-secret", prosody.c2s_addr(), n)?;
    bob.wait_line("ready", wait);
    assert!(uac(sip[0], 1, "warmup", None, wait).wait(wait).ok());
    bob.wait_line("warm", wait);
    let (c0, t0) = (cpu(), Instant::now());
    let half = n / 2;
    let senders = [
        uac(sip[0], half, "main", Some(rate / 2), send_time),
        uac(sip[1], n - half, "main", Some(rate - rate / 2), send_time),
    ];
    for mut s in senders {
        let done = s.wait(send_time);
        assert!(done.ok(), "sipp: {}", done.report());
    }
    assert!(bob.wait_exit(send_time), "bob did not get all {n}");
    let both = Phase {
        name: "2. SIP -> XMPP, split over both",
        cpu: since(c0),
        n,
        took: t0.elapsed().as_secs_f64(),
    };

    // 3 and 4: XMPP -> SIP, to dave on the second (where Prosody
    // delivers), then to alice on the first (forwarded by the second).
    let mut out = Vec::new();
    for (name, user, at, ip) in [
        ("3. XMPP -> SIP, direct", "dave", 1, 79),
        ("4. XMPP -> SIP, forwarded", "alice", 0, 80),
    ] {
        let mut ua = uas(sip[at], user, ip, n + 1, send_time);
        let mut erin = Script::sender(
            "erin@prosody.test",
            "erin-secret",
            prosody.c2s_addr(),
            &format!("{user}@xfed.test"),
        )?;
        erin.wait_line("ready", wait);
        // sipp registers in milliseconds; the other instance hears of it
        // from the store in as many.
        std::thread::sleep(Duration::from_secs(1));
        erin.send("warmup", 1, 1);
        std::thread::sleep(Duration::from_secs(2));
        let (c0, t0) = (cpu(), Instant::now());
        erin.send("main", n, rate);
        erin.wait_line("sent", send_time);
        let done = ua.wait(send_time);
        let phase = Phase {
            name,
            cpu: since(c0),
            n,
            took: t0.elapsed().as_secs_f64(),
        };
        erin.finish();
        let errors = erin.wait_line("errors", wait);
        assert!(
            done.ok() && errors == "errors 0",
            "{name}: {errors}\n{}",
            done.report()
        );
        out.push(phase);
    }

    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>9}",
        "CPU per message", "instance 1", "instance 2", "both", "msg/s"
    );
    for p in [&one, &both, &out[0], &out[1]] {
        println!("{}", p.row());
    }
    drop(instances);
    Ok(())
}
