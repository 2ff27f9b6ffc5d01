//! Resident memory per idle authenticated TLS s2s connection: 10,000
//! connections over loopback to a release `xfed`, each negotiated with
//! STARTTLS and SASL EXTERNAL by a client built on xfed-core's own session
//! state machine, then left idle; the server's VmRSS before and after.
//!
//! Run with `cargo bench -p xfed-tests --bench idle_memory` (it builds the
//! release binary first). XFED_IDLE_CONNECTIONS changes the count. Each
//! side holds one descriptor per connection: the soft `ulimit -n` must
//! exceed the count (with some room), or connections fail and the bench
//! says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xfed_core::config::{Negotiation, Partners, StreamPolicy};
use xfed_core::rng::Rng;
use xfed_core::tls::testing::{LeafSpec, TestCa, NOW};
use xfed_core::tls::{client_config, direct_tls_client_config, CallerClock};
use xfed_core::xmpp::session::{S2sBounds, Session, SessionEvent, Settings, Time};
use xfed_tests::{free_port, release_binary, spawn_quiet, temp_dir, write_config, PartnerSpec};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The soft limit on open files (`ulimit -n`), from /proc.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// One client connection: negotiates, then stays open until `hold` ends.
async fn connect(
    port: u16,
    settings: Arc<Settings>,
    seed: u8,
    ready: tokio::sync::mpsc::UnboundedSender<Result<(), String>>,
    hold: Arc<tokio::sync::Notify>,
) {
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
    let mut sock = match TcpStream::connect(("127.0.0.1", port)).await {
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
                    let _ = ready.send(Ok(()));
                }
                SessionEvent::OutboundFailed { reason, .. } | SessionEvent::Closed { reason }
                    if !reported =>
                {
                    reported = true;
                    let _ = ready.send(Err(reason));
                }
                _ => {}
            }
        }
        tokio::select! {
            n = sock.read(&mut buf) => match n {
                Ok(0) => break,
                Err(e) => {
                    why = e.to_string();
                    break;
                }
                Ok(n) => s.handle_bytes(&buf[..n], &settings, t(std::time::Instant::now())),
            },
            _ = hold.notified() => break,
        }
    }
    if !reported {
        let _ = ready.send(Err(why));
    }
}

fn main() {
    let count: usize = std::env::var("XFED_IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    if let Some(limit) = open_files_limit().filter(|&l| l < count + 100) {
        eprintln!(
            "ulimit -n is {limit}: raise it above {} for {count} connections",
            count + 100
        );
    }
    let bin = release_binary("xfed-tokio", "xfed");

    let ca = TestCa::new("idle memory CA");
    let dir = temp_dir("idle-memory");
    let server_cert = ca.issue(&LeafSpec::xmpp_server("s.test"));
    std::fs::write(dir.join("cert.pem"), server_cert.chain_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), server_cert.key_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    let port = free_port();
    let partner = PartnerSpec {
        domain: "c.test",
        connect: "127.0.0.1:1".into(),
        tls: "required",
        sasl: "required",
        dialback: false,
    };
    let config = write_config(&dir, "s.test", port, free_port(), &[partner]);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "[gateway]\n",
        &format!(
            "[gateway]\nconnection_limit = {}\npartner_connection_limit = {}\n",
            count * 2,
            count * 2
        ),
    );
    text.push_str(&format!("connection_limit = {}\n", count * 2));
    std::fs::write(&config, text).unwrap();
    let mut server = spawn_quiet(&bin, &dir);
    let pid = server.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "xfed did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(pid);

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
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let ok = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let hold = Arc::new(tokio::sync::Notify::new());
        for i in 0..count {
            tokio::spawn(connect(port, settings.clone(), (i % 251) as u8, tx.clone(), hold.clone()));
            if i % 100 == 99 {
                tokio::task::yield_now().await;
            }
        }
        let mut ok = 0;
        let mut failures = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..count {
            match rx.recv().await {
                Some(Ok(())) => ok += 1,
                Some(Err(why)) => *failures.entry(why).or_default() += 1,
                None => {}
            }
        }
        for (why, n) in failures {
            eprintln!("{n} connections failed: {why}");
        }
        let elapsed = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(pid);
        println!(
            "{ok} of {count} connections authenticated (STARTTLS + SASL EXTERNAL) in {:.2} s; xfed VmRSS {before} KiB -> {after} KiB: {:.1} KiB per idle authenticated TLS connection",
            elapsed.as_secs_f64(),
            (after.saturating_sub(before)) as f64 / ok.max(1) as f64
        );
        hold.notify_waiters();
        ok
    });
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(ok, count, "not every connection authenticated");
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
