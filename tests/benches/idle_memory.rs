//! Resident memory per idle authenticated TLS s2s link, xfed against
//! Debian's Prosody in one run (issue 11: "memory per idle link for
//! both"): N connections (default 10,000) over loopback to a release
//! `xfed`, then N to a Prosody (`tests/src/prosody.rs`), each negotiated
//! with STARTTLS and SASL EXTERNAL (certificates of one test CA, which both
//! servers trust; Prosody with `s2s_secure_auth`) by the same client, built
//! on xfed-core's own session state machine, at most 200 negotiating at a
//! time (the next link opens when one is done), then left idle. For each
//! server: its VmRSS before the links and after all are authenticated and
//! have been idle for a moment, and (after - before) / links. One table at
//! the end: links, KiB per link for both, the ratio Prosody / xfed and
//! issue 11's target (<= 12 KiB per link).
//!
//! Every link is counted twice: by the client (its stream reached the
//! authenticated state) and by the server (xfed's metrics listener:
//! inbound streams authenticated by SASL; Prosody's admin shell: incoming
//! s2s sessions of type `s2sin` with SASL EXTERNAL succeeded). The bench
//! prints its figures, then fails if any link of either server did not
//! authenticate, or if no answer came within 60 s + 60 ms per link.
//!
//! Prosody runs with the harness's module set (no c2s-side modules beyond
//! roster, disco, ping; no mod_limits) and the network backend it chooses
//! itself (epoll in Debian's 0.12, reported). It inherits this process's
//! open-files limit: when that, or the select backend's 1,024, leaves room
//! for fewer than N links, Prosody's half runs at the count it can hold
//! and says so. Without Prosody (or lua-unbound, which the harness needs),
//! Prosody's half is skipped with the reason. Processes: xfed is killed at
//! the end or on a panic; Prosody too, and stops by itself when this
//! process is gone.
//!
//! Run with `cargo bench -p xfed-tests --bench idle_memory` (it builds the
//! release binary first). XFED_IDLE_CONNECTIONS changes N. This process
//! holds one descriptor per link and each server one per link: the soft
//! `ulimit -n` must exceed N (with some room), or connections fail and the
//! bench says so.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use xfed_core::config::{Negotiation, Partners, StreamPolicy};
use xfed_core::rng::Rng;
use xfed_core::tls::testing::{LeafSpec, TestCa, NOW};
use xfed_core::tls::{client_config, direct_tls_client_config, CallerClock};
use xfed_core::xmpp::session::{Reading, S2sBounds, Session, SessionEvent, Settings, Time};
use xfed_tests::load::{figure, Killed};
use xfed_tests::prosody::{Prosody, ProsodyOptions, Skip};
use xfed_tests::{free_port, release_binary, spawn_quiet, temp_dir, write_config, PartnerSpec};

/// Issue 11's target, KiB per idle link.
const TARGET_KIB: f64 = 12.0;
/// How long the links stay idle before the second VmRSS reading.
const SETTLE: Duration = Duration::from_secs(2);
/// Descriptors a server keeps for itself beyond the links.
const FD_ROOM: usize = 64;
/// Links being negotiated at once: the client opens the next one when one
/// has authenticated or failed. Without a bound (all N opened at once, as
/// this bench did when it measured xfed alone), Prosody reset 4,726 of
/// 10,000 connections before they authenticated and took 220 s for the
/// rest, most likely its `ssl_handshake_timeout` (60 s between two steps
/// of a handshake) while its one thread served all the others; with the
/// bound it authenticated all 10,000 in 43 s. xfed's figure is the same
/// either way (10.0 and 9.9 KiB per link).
const IN_FLIGHT: usize = 200;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The soft limit on open files (`ulimit -n`) of a process, from /proc.
fn open_files_limit(pid: &str) -> Option<usize> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// How many descriptors a process has open.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// One client connection to `addr` as `c.test` for `s.test`: negotiates,
/// reports the outcome once (and then gives back its place in the window
/// of [`IN_FLIGHT`] negotiations), then stays open until its task is
/// aborted.
async fn connect(
    addr: SocketAddr,
    settings: Arc<Settings>,
    seed: u8,
    ready: tokio::sync::mpsc::UnboundedSender<Result<(), String>>,
    window: Arc<tokio::sync::Semaphore>,
) {
    let Ok(place) = window.acquire_owned().await else {
        return;
    };
    let mut place = Some(place);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[0] = seed;
    let start = std::time::Instant::now();
    let t = |now: std::time::Instant| Time { now, unix: NOW };
    let mut s = Session::outbound(
        "c.test",
        "s.test",
        false,
        &settings,
        Rng::new(seed_bytes),
        t(start),
    );
    let mut sock = match TcpStream::connect(addr).await {
        Ok(sock) => sock,
        Err(e) => {
            let _ = ready.send(Err(format!("connect: {e}")));
            return;
        }
    };
    s.handle_connected(&settings, t(std::time::Instant::now()));
    let mut buf = vec![0u8; 16 * 1024];
    let mut reported = false;
    let mut why = "closed".to_owned();
    loop {
        if let Some(bytes) = s.poll_transmit() {
            if sock.write_all(&bytes).await.is_err() {
                break;
            }
        }
        while let Some(ev) = s.poll_event() {
            match ev {
                SessionEvent::OutboundReady { .. } if !reported => {
                    reported = true;
                    place = None;
                    let _ = ready.send(Ok(()));
                }
                SessionEvent::OutboundFailed { reason, .. } | SessionEvent::Closed { reason }
                    if !reported =>
                {
                    reported = true;
                    place = None;
                    let _ = ready.send(Err(reason));
                }
                _ => {}
            }
        }
        match sock.read(&mut buf).await {
            Ok(0) => break,
            Err(e) => {
                why = e.to_string();
                break;
            }
            Ok(n) => s.handle_bytes(&buf[..n], &settings, t(std::time::Instant::now())),
        }
    }
    drop(place);
    if !reported {
        let _ = ready.send(Err(why));
    }
}

/// Links held open by tasks of the client's runtime.
struct Links {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Streams the client saw reach the authenticated state.
    ok: usize,
    /// Why the others did not, with how many.
    failures: BTreeMap<String, usize>,
    elapsed: Duration,
}

/// Opens `count` links to `addr` and waits until each has authenticated
/// or failed, at most 60 s + 60 ms per link.
fn open_links(rt: &Runtime, addr: SocketAddr, count: usize, settings: &Arc<Settings>) -> Links {
    let limit = Duration::from_secs(60) + Duration::from_millis(60) * count as u32;
    rt.block_on(async {
        let started = Instant::now();
        let give_up = tokio::time::Instant::now() + limit;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let window = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut tasks = Vec::with_capacity(count);
        for i in 0..count {
            tasks.push(tokio::spawn(connect(
                addr,
                settings.clone(),
                (i % 251) as u8,
                tx.clone(),
                window.clone(),
            )));
            if i % 100 == 99 {
                tokio::task::yield_now().await;
            }
        }
        drop(tx);
        let mut ok = 0;
        let mut failures = BTreeMap::<String, usize>::new();
        for _ in 0..count {
            match tokio::time::timeout_at(give_up, rx.recv()).await {
                Ok(Some(Ok(()))) => ok += 1,
                Ok(Some(Err(why))) => *failures.entry(why).or_default() += 1,
                Ok(None) | Err(_) => break,
            }
        }
        let answered = ok + failures.values().sum::<usize>();
        if answered < count {
            failures.insert(format!("no outcome within {limit:?}"), count - answered);
        }
        Links {
            tasks,
            ok,
            failures,
            elapsed: started.elapsed(),
        }
    })
}

/// Closes every link (their sockets are dropped) and waits for the tasks.
fn close_links(rt: &Runtime, tasks: Vec<tokio::task::JoinHandle<()>>) {
    rt.block_on(async {
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// One server's figures.
struct Measured {
    /// Links attempted.
    links: usize,
    /// Links the client saw authenticated.
    ok: usize,
    /// Links the server counted as authenticated (by SASL EXTERNAL).
    server_ok: usize,
    failures: BTreeMap<String, usize>,
    before: u64,
    after: u64,
    elapsed: Duration,
}

impl Measured {
    fn per_link(&self) -> f64 {
        self.after.saturating_sub(self.before) as f64 / self.ok.max(1) as f64
    }

    fn complete(&self) -> bool {
        self.ok == self.links && self.server_ok == self.links
    }

    fn report(&self, name: &str) {
        for (why, n) in &self.failures {
            eprintln!("{name}: {n} connections failed: {why}");
        }
        println!(
            "{name}: {} of {} connections authenticated (STARTTLS + SASL EXTERNAL) in {:.2} s, {} counted by {name}; VmRSS {} KiB -> {} KiB: {:.1} KiB per idle authenticated TLS link",
            self.ok,
            self.links,
            self.elapsed.as_secs_f64(),
            self.server_ok,
            self.before,
            self.after,
            self.per_link()
        );
    }
}

/// Sends one HTTP GET for `/metrics` and returns the answer's body.
fn scrape(addr: SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to xfed's metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("ask xfed's metrics");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer
        .split_once("\r\n\r\n")
        .map_or(answer.clone(), |(_, body)| body.to_owned())
}

/// Inbound streams xfed authenticated by SASL (every TLS version), from a
/// metrics body.
fn sasl_inbound(body: &str) -> usize {
    body.lines()
        .filter(|l| {
            l.starts_with("xfed_streams_authenticated_total{")
                && l.contains("direction=\"in\"")
                && l.contains("method=\"sasl\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

fn measure_xfed(
    rt: &Runtime,
    dir: &std::path::Path,
    count: usize,
    settings: &Arc<Settings>,
) -> Measured {
    let bin = release_binary("xfed-tokio", "xfed");
    let port = free_port();
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let partner = PartnerSpec {
        domain: "c.test",
        connect: "127.0.0.1:1".into(),
        tls: "required",
        sasl: "required",
        dialback: false,
    };
    let config = write_config(dir, "s.test", port, free_port(), &[partner]);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "[gateway]\n",
        &format!(
            "[gateway]\nconnection_limit = {}\npartner_connection_limit = {}\n",
            count * 2,
            count * 2
        ),
    );
    text = text.replace("metrics = false\n", &format!("metrics = \"{metrics}\"\n"));
    text.push_str(&format!("connection_limit = {}\n", count * 2));
    std::fs::write(&config, text).unwrap();
    let server = Killed(spawn_quiet(&bin, dir));
    let pid = server.0.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "xfed did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        sasl_inbound(&scrape(metrics)),
        0,
        "xfed: streams before the bench"
    );
    let before = rss_kib(pid);
    let links = open_links(
        rt,
        SocketAddr::from(([127, 0, 0, 1], port)),
        count,
        settings,
    );
    std::thread::sleep(SETTLE);
    let after = rss_kib(pid);
    let server_ok = sasl_inbound(&scrape(metrics));
    close_links(rt, links.tasks);
    drop(server);
    Measured {
        links: count,
        ok: links.ok,
        server_ok,
        failures: links.failures,
        before,
        after,
        elapsed: links.elapsed,
    }
}

/// Runs one admin shell command of `prosody` and returns what follows
/// "Result: " in its output.
fn shell_result(prosody: &Prosody, command: &str) -> String {
    let out = prosody.shell(command, Duration::from_secs(120));
    out.stdout
        .lines()
        .find_map(|l| l.split_once("Result: ").map(|(_, r)| r.trim().to_owned()))
        .filter(|_| out.success)
        .unwrap_or_else(|| {
            panic!(
                "prosodyctl shell {command:?} failed:\n{}\n{}",
                out.text(),
                prosody.diagnostics()
            )
        })
}

/// Prosody's incoming s2s sessions: (authenticated, of which by SASL
/// EXTERNAL, not authenticated yet).
fn prosody_sessions(prosody: &Prosody) -> (usize, usize, usize) {
    let counts = shell_result(
        prosody,
        ">(function() local a, e, u = 0, 0, 0; \
         for s in pairs(prosody.incoming_s2s) do \
         if s.type == \"s2sin\" then a = a + 1; \
         if s.external_auth == \"succeeded\" then e = e + 1 end \
         else u = u + 1 end end; \
         return (\"%d %d %d\"):format(a, e, u) end)()",
    );
    let n: Vec<usize> = counts
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    match n[..] {
        [a, e, u] => (a, e, u),
        _ => panic!("unexpected session counts from Prosody: {counts:?}"),
    }
}

/// Prosody's Lua heap, KiB.
fn lua_heap_kib(prosody: &Prosody) -> f64 {
    let kib = shell_result(prosody, ">collectgarbage(\"count\")");
    kib.parse()
        .unwrap_or_else(|_| panic!("unexpected Lua heap size from Prosody: {kib:?}"))
}

/// Prosody's half: the same links to a Prosody serving `s.test` with the
/// same certificate, trusting the same CA. Also returns notes for the
/// table (a smaller count, and why).
fn measure_prosody(
    rt: &Runtime,
    dir: &std::path::Path,
    count: usize,
    settings: &Arc<Settings>,
) -> Result<(Measured, Vec<String>), Skip> {
    let limit = Duration::from_secs(60) + Duration::from_millis(60) * count as u32;
    let mut options = ProsodyOptions::new("s.test", IpAddr::V4(Ipv4Addr::LOCALHOST))
        .tls(dir.join("cert.pem"), dir.join("key.pem"))
        .cafile(dir.join("ca.pem"))
        .secure_auth(true)
        .require_encryption(true);
    // Debug logging writes every stanza; one line per session is enough.
    options.log_level = "info".into();
    // Incoming sessions not authenticated within s2s_timeout are closed
    // (90 s by default): the client may take longer to reach the last ones.
    options.s2s_timeout = limit.as_secs() as u32;
    options.max_lifetime = limit * 2 + Duration::from_secs(600);
    let prosody = Prosody::start(options)?;
    let pid = prosody.pid();
    let mut notes = Vec::new();
    let backend = shell_result(&prosody, ">require\"net.server\".get_backend()");
    let open = open_files(pid);
    let fd_limit = open_files_limit(&pid.to_string());
    let mut room = fd_limit.map_or(usize::MAX, |l| l.saturating_sub(open + FD_ROOM));
    let mut why = format!(
        "its open-files limit is {} ({open} open before the links)",
        fd_limit.map_or("unknown".into(), |l| l.to_string())
    );
    if backend == "select" {
        let select_room = 1024usize.saturating_sub(open + FD_ROOM);
        if select_room < room {
            room = select_room;
            why = format!("its network backend is select (1,024 descriptors at most, {open} open before the links)");
        }
    }
    println!(
        "Prosody {}: network backend {backend}, open-files limit {}, pid {pid}",
        prosody.options.domain,
        fd_limit.map_or("unknown".into(), |l| l.to_string())
    );
    let links_n = count.min(room);
    if links_n < count {
        let note = format!("Prosody cannot hold {count} links here: {why}; measured at {links_n}");
        println!("{note}");
        notes.push(note);
    }
    let (a, _, u) = prosody_sessions(&prosody);
    assert_eq!((a, u), (0, 0), "Prosody: s2s sessions before the bench");
    let lua_before = lua_heap_kib(&prosody);
    let before = rss_kib(pid);
    let links = open_links(rt, prosody.s2s_addr(), links_n, settings);
    std::thread::sleep(SETTLE);
    let after = rss_kib(pid);
    let (authenticated, external, unauthenticated) = prosody_sessions(&prosody);
    let lua_after = lua_heap_kib(&prosody);
    // Lua's collector is incremental: part of `after` may be garbage of the
    // handshakes. A full collection, then the same readings again.
    shell_result(&prosody, ">collectgarbage(\"collect\")");
    std::thread::sleep(Duration::from_millis(500));
    let after_gc = rss_kib(pid);
    let lua_gc = lua_heap_kib(&prosody);
    println!(
        "Prosody: {authenticated} incoming s2s sessions authenticated ({external} by SASL EXTERNAL), {unauthenticated} not; Lua heap {lua_before:.0} KiB -> {lua_after:.0} KiB ({:.1} KiB per link); after a full Lua collection: Lua heap {lua_gc:.0} KiB, VmRSS {after_gc} KiB ({:.1} KiB per link)",
        (lua_after - lua_before) / links.ok.max(1) as f64,
        after_gc.saturating_sub(before) as f64 / links.ok.max(1) as f64
    );
    close_links(rt, links.tasks);
    drop(prosody);
    Ok((
        Measured {
            links: links_n,
            ok: links.ok,
            server_ok: external,
            failures: links.failures,
            before,
            after,
            elapsed: links.elapsed,
        },
        notes,
    ))
}

fn main() {
    let count: usize = std::env::var("XFED_IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    if let Some(limit) = open_files_limit("self").filter(|&l| l < count + 100) {
        eprintln!(
            "ulimit -n is {limit}: raise it above {} for {count} connections",
            count + 100
        );
    }

    // One CA; both servers present the same certificate for s.test and
    // trust the CA, which issued the client's certificate for c.test.
    let ca = TestCa::new("idle memory CA");
    let dir = temp_dir("idle-memory");
    let server_cert = ca.issue(&LeafSpec::xmpp_server("s.test"));
    std::fs::write(dir.join("cert.pem"), server_cert.chain_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), server_cert.key_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    let client_cert = ca.issue(&LeafSpec::xmpp_server("c.test"));
    let clock = Arc::new(CallerClock::new(NOW));
    let id = client_cert.identity();
    let trust = Arc::new(ca.trust_anchors());
    let settings = Arc::new(Settings {
        local_domains: vec!["c.test".into()],
        limits: Default::default(),
        tls_server: None,
        tls_client: Some(client_config(&id, clock.clone())),
        tls_server_direct: None,
        tls_client_direct: Some(direct_tls_client_config(&id, clock.clone())),
        clock,
        trust,
        dialback_secret: "unused".into(),
        establishment_timeout: Duration::from_secs(120),
        inactivity_timeout: Duration::from_secs(3600),
        keepalive_interval: Duration::from_secs(3600),
        partners: Arc::new(AnyPeer),
        bounds: S2sBounds::default(),
        reading: Reading::Trees,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let xfed = measure_xfed(&rt, &dir, count, &settings);
    xfed.report("xfed");
    let prosody = match measure_prosody(&rt, &dir, count, &settings) {
        Ok((m, notes)) => {
            m.report("Prosody");
            Some((m, notes))
        }
        Err(Skip(why)) => {
            println!("Prosody SKIPPED: {why}");
            None
        }
    };

    println!();
    println!("memory per idle authenticated TLS s2s link (STARTTLS + SASL EXTERNAL, loopback, the same client for both):");
    println!(
        "{:>15} | {:>13} | {:>16} | {:>12} | issue 11 target",
        "links", "xfed KiB/link", "Prosody KiB/link", "Prosody/xfed"
    );
    let verdict = if xfed.per_link() <= TARGET_KIB {
        "met by xfed"
    } else {
        "missed by xfed"
    };
    let (links, theirs, ratio) = match &prosody {
        Some((p, _)) => (
            if p.links == xfed.links {
                xfed.links.to_string()
            } else {
                format!("{} / {}", xfed.links, p.links)
            },
            format!("{:.1}", p.per_link()),
            format!("{:.2}x", p.per_link() / xfed.per_link()),
        ),
        None => (xfed.links.to_string(), "skipped".into(), "-".into()),
    };
    println!(
        "{links:>15} | {:>13.1} | {theirs:>16} | {ratio:>12} | <= {TARGET_KIB} KiB per link ({verdict})",
        xfed.per_link()
    );
    for note in prosody.iter().flat_map(|(_, notes)| notes) {
        println!("note: {note}");
    }
    figure("idle.links", xfed.links as f64);
    figure("idle.xfed_kib", xfed.per_link());
    if let Some((p, _)) = &prosody {
        figure("idle.prosody_kib", p.per_link());
    }

    let _ = std::fs::remove_dir_all(&dir);
    let mut incomplete = Vec::new();
    if !xfed.complete() {
        incomplete.push(format!(
            "xfed: {} of {} links authenticated by the client's count, {} by xfed's",
            xfed.ok, xfed.links, xfed.server_ok
        ));
    }
    if let Some((p, _)) = prosody.as_ref().filter(|(p, _)| !p.complete()) {
        incomplete.push(format!(
            "Prosody: {} of {} links authenticated by the client's count, {} by Prosody's",
            p.ok, p.links, p.server_ok
        ));
    }
    assert!(
        incomplete.is_empty(),
        "not every link authenticated: {}",
        incomplete.join("; ")
    );
}

/// The client side's view: every peer over TLS with SASL EXTERNAL.
#[derive(Debug)]
struct AnyPeer;

impl Partners for AnyPeer {
    fn policy(&self, _: &str) -> Option<StreamPolicy> {
        Some(StreamPolicy {
            tls: Negotiation::Required,
            sasl: Negotiation::Required,
            dialback: false,
            keepalive: false,
        })
    }

    fn connect(&self, _: &str) -> Option<(String, u16)> {
        None
    }

    fn connection_limit(&self, _: &str) -> usize {
        usize::MAX
    }

    fn partner_of(&self, domain: &str) -> String {
        domain.to_owned()
    }
}
