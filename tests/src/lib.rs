//! Shared helpers of xfed's integration tests: finding and running the two
//! binaries on loopback.

pub mod baresip;
pub mod dnsmasq;
pub mod ejabberd;
pub mod hostile;
pub mod instances;
pub mod kamailio;
pub mod lab;
pub mod load;
pub mod notify;
pub mod postgres;
pub mod prosody;
pub mod s2s_peer;
pub mod sip_pair;
pub mod sip_ua;
pub mod sipp;
pub mod xmpp_client;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The two runtimes' binaries, which every end-to-end scenario runs on.
pub const BINARIES: [&str; 2] = ["xfed", "xfed-async-std"];

/// Path of a workspace binary built next to this test (cargo builds them
/// for the runtime crates' own tests).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// The first port [`free_port_on`] hands out and how many it may use:
/// below Linux's ephemeral range (32768 and up), so no socket bound to port
/// 0 (the test's own, a peer's, or an xfed instance's outbound one) can take
/// a port between the moment it is chosen and the listener's bind. A port
/// from the kernel's ephemeral range was how a test once lost its port.
const PORT_BASE: u32 = 20_000;
const PORT_SPAN: u32 = 12_000;

/// How many ports this test process has handed out: two tests running at
/// once never get the same port.
static PORTS_HANDED_OUT: AtomicU32 = AtomicU32::new(0);

/// A port on `ip` free for both TCP and UDP (a SIP listener, Kamailio and
/// Prosody's ports take one or both), never handed out before by this
/// process. Test processes start at different offsets (by pid), so
/// leftovers of an earlier one are unlikely to be met; a port in use is
/// skipped.
pub fn free_port_on(ip: IpAddr) -> u16 {
    let (base, span) = port_window();
    let offset = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = PORTS_HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        let port = (base + (offset + n) % span) as u16;
        if TcpListener::bind((ip, port)).is_ok() && UdpSocket::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip} in {base}..{}", base + span)
}

/// Where [`free_port_on`] picks ports: [`PORT_BASE`].. unless this machine's
/// ephemeral range (`ip_local_port_range`) reaches into it, then the larger
/// gap outside that range.
fn port_window() -> (u32, u32) {
    static WINDOW: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *WINDOW.get_or_init(|| {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(str::parse::<u32>);
                Some((it.next()?.ok()?, it.next()?.ok()?))
            });
        match range {
            Some((low, high)) if low < PORT_BASE + PORT_SPAN && high >= PORT_BASE => {
                let below = (1_025, low.saturating_sub(1_025));
                let above = (high + 1, 65_536u32.saturating_sub(high + 1));
                let window = if below.1 >= above.1 { below } else { above };
                if window.1 < 1_000 {
                    // Nowhere to hide: take the usual window and its races.
                    return (PORT_BASE, PORT_SPAN);
                }
                eprintln!(
                    "ephemeral ports {low}-{high} overlap {PORT_BASE}..; test ports from {}..{}",
                    window.0,
                    window.0 + window.1
                );
                window
            }
            _ => (PORT_BASE, PORT_SPAN),
        }
    })
}

/// A free loopback port on 127.0.0.1, for TCP and UDP ([`free_port_on`]).
pub fn free_port() -> u16 {
    free_port_on(IpAddr::from([127, 0, 0, 1]))
}

/// Whether `addr` is in the kernel's table of listening TCP sockets: no
/// connection is made, so a peer's log is not disturbed (without /proc, a
/// connection is tried).
pub fn is_listening(addr: SocketAddr) -> bool {
    let file = if addr.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let Ok(table) = std::fs::read_to_string(file) else {
        return TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
    };
    let want = match addr.ip() {
        IpAddr::V4(a) => format!("{:08X}:{:04X}", u32::from_ne_bytes(a.octets()), addr.port()),
        IpAddr::V6(a) => {
            let words: String = a
                .octets()
                .chunks(4)
                .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            format!("{words}:{:04X}", addr.port())
        }
    };
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == want && f[3] == "0A" // LISTEN
    })
}

/// Polls a peer's log file (read by `read`) until a line after the first
/// `skip` contains `needle`; `Err` names `peer` and holds the whole log.
pub fn poll_log(
    peer: &str,
    read: impl Fn() -> String,
    skip: usize,
    needle: &str,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = read();
        if let Some(l) = text.lines().skip(skip).find(|l| l.contains(needle)) {
            return Ok(l.to_string());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no {peer} log line with {needle:?} within {timeout:?}; log:\n{text}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a release `bin` on `dir/xfed.toml` for a benchmark: warnings
/// only, on stderr; nothing on stdout.
pub fn spawn_quiet(bin: &Path, dir: &Path) -> Child {
    Command::new(bin)
        .args(["run", "--config", "xfed.toml"])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start xfed")
}

/// A running xfed process, killed when dropped; its log lines are collected.
pub struct Instance {
    child: Child,
    logs: mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// Calls `each` with every line the child writes to stdout or stderr, from
/// one reader thread per pipe.
pub fn on_output_lines(child: &mut Child, each: impl Fn(String) -> bool + Clone + Send + 'static) {
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let each = each.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if !each(line) {
                    break;
                }
            }
        });
    }
}

fn collect_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, logs) = mpsc::channel();
    on_output_lines(child, move |line| tx.send(line).is_ok());
    logs
}

/// Release build of a workspace binary, built by `cargo build --release`
/// from a bench (benches run optimised, but the binaries they start must
/// be too).
pub fn release_binary(package: &str, name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", package])
        .status();
    assert!(
        built.is_ok_and(|s| s.success()),
        "cannot build the release binary"
    );
    let exe = std::env::current_exe().expect("bench path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join(name)
}

fn command(name: &str, args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new(binary(name));
    cmd.args(args)
        .current_dir(dir)
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl Instance {
    /// Starts binary `name` with `args` in `dir` and waits until it says
    /// what it serves.
    pub fn start(name: &str, args: &[&str], dir: &Path) -> Instance {
        let mut child = command(name, args, dir).spawn().expect("start xfed");
        let logs = collect_lines(&mut child);
        let mut inst = Instance {
            child,
            logs,
            seen: Vec::new(),
        };
        inst.wait_log("serving", Duration::from_secs(20));
        inst
    }

    /// The process's resident memory in KiB (VmRSS) and its open file
    /// descriptors, from /proc: what a flood test compares before and
    /// after.
    pub fn resources(&self) -> (u64, usize) {
        let pid = self.child.id();
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        (rss, fds)
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no log line with {needle:?} within {timeout:?}; got:\n{}",
            self.seen.join("\n")
        );
    }

    /// Everything logged so far.
    pub fn log_text(&mut self) -> String {
        while let Ok(line) = self.logs.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Sends SIGHUP: the instance reads its configuration again.
    pub fn hangup(&self) {
        let _ = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status();
    }

    /// Sends SIGKILL and waits for the process to be gone: a crash, with
    /// nothing flushed or said.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it
    /// exited successfully.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `name args` in `dir` to completion (at most `timeout`); returns
/// success and the combined output.
pub fn run_to_end(name: &str, args: &[&str], dir: &Path, timeout: Duration) -> (bool, String) {
    let mut child = command(name, args, dir).spawn().expect("start xfed");
    let logs = collect_lines(&mut child);
    let end = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(50));
    let text: Vec<String> = logs.try_iter().collect();
    (status.is_some_and(|s| s.success()), text.join("\n"))
}

/// Waits until `cond` holds, polling every 100 ms; panics naming `what`
/// after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not within {timeout:?}");
}

/// A fresh directory under the system temp dir, for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xfed-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Reads until the peer closes (or the read timeout) and returns the text.
pub fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How an xfed instance of a test treats one partner.
pub struct PartnerSpec<'a> {
    /// The partner's domain.
    pub domain: &'a str,
    /// Where it listens (STARTTLS port).
    pub connect: String,
    /// `tls`, `sasl` and `dialback` of the `[[partner]]` entry.
    pub tls: &'a str,
    /// See `tls`.
    pub sasl: &'a str,
    /// See `tls`.
    pub dialback: bool,
}

/// Writes `xfed.toml` for `domain` into `dir` (which holds cert.pem,
/// key.pem and ca.pem) with loopback listeners on `port` and `port + 1`.
pub fn write_config(
    dir: &Path,
    domain: &str,
    port: u16,
    direct_port: u16,
    partners: &[PartnerSpec<'_>],
) -> PathBuf {
    let mut toml = format!(
        "[gateway]\ndomains = [\"{domain}\"]\ndialback_secret = \"loopback-test-secret-{domain}\"\nfederation = \"allow-list\"\n\
         stream_establishment_timeout = \"20s\"\n\n\
         [listen]\ns2s = [\"127.0.0.1:{port}\"]\ns2s_direct_tls = [\"127.0.0.1:{direct_port}\"]\nsip = []\nmetrics = false\n\n\
         [tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\ntrust = \"ca.pem\"\n"
    );
    for p in partners {
        toml.push_str(&format!(
            "\n[[partner]]\ndomain = \"{}\"\ntype = \"federated\"\nconnect = \"{}\"\ntls = \"{}\"\nsasl = \"{}\"\ndialback = {}\n",
            p.domain, p.connect, p.tls, p.sasl, p.dialback
        ));
    }
    let path = dir.join("xfed.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// What the metrics listener at `addr` serves (empty when it does not
/// answer within ten seconds).
pub fn scrape_metrics(addr: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// The value of a metric line `name` (with its labels, if any) in a
/// scrape, if present.
pub fn metric_value(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
