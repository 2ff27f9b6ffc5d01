//! What the load benches share: CPU time of a process, children killed on
//! drop, and the raw-socket XMPP clients of `tests/peers/`
//! (`xmpp_count.py` receives and timestamps, `xmpp_send.py` sends at a
//! rate), driven line by line.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::prosody::Skip;
use crate::xmpp_client::python;

const RECEIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/xmpp_count.py");
const SENDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/xmpp_send.py");

/// A figure for `--bench targets`, which runs the benches and gathers
/// these lines into issue 11's table: `figure KEY VALUE`.
pub fn figure(key: &str, value: f64) {
    println!("figure {key} {value}");
}

/// The number in environment variable `name`, else `default`: a load
/// bench's knobs.
pub fn env_num(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // state is f[0]; utime is field 14 of stat, i.e. f[11]; stime f[12].
    (ticks(11) + ticks(12)) / 100.0
}

/// The value at quantile `p` of sorted values (NaN when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A child process, killed and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Python peer script and the lines it prints, with their arrival times.
pub struct Script {
    child: Killed,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Script {
    fn start(script: &str, args: &[String]) -> Result<Script, Skip> {
        let mut child = Command::new(python())
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Skip(format!("cannot run {}: {e}", python().display())))?;
        let stdout = child.stdout.take().expect("script stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Script {
            child: Killed(child),
            stdin,
            lines,
        })
    }

    /// `xmpp_count.py`: `jid` logs in at `c2s` and records up to `count`
    /// bench messages (it says `ready` once logged in).
    pub fn receiver(
        jid: &str,
        password: &str,
        c2s: SocketAddr,
        count: u32,
    ) -> Result<Script, Skip> {
        let args = [
            jid.to_owned(),
            password.to_owned(),
            c2s.ip().to_string(),
            c2s.port().to_string(),
            count.to_string(),
            "--timeout".into(),
            "300".into(),
            "--idle".into(),
            "15".into(),
        ];
        Script::start(RECEIVER, &args)
    }

    /// `xmpp_send.py`: `jid` logs in at `c2s` to send to `to`
    /// ([`Script::send`]).
    pub fn sender(jid: &str, password: &str, c2s: SocketAddr, to: &str) -> Result<Script, Skip> {
        let args = [
            jid.to_owned(),
            password.to_owned(),
            c2s.ip().to_string(),
            c2s.port().to_string(),
            to.to_owned(),
        ];
        Script::start(SENDER, &args)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Asks a sender for `count` messages of run `run` at `rate` a second.
    pub fn send(&mut self, run: &str, count: u32, rate: u32) {
        let stdin = self.stdin.as_mut().expect("sender's stdin");
        writeln!(stdin, "{run} {count} {rate}").expect("write to the sender");
        stdin.flush().expect("flush the sender");
    }

    /// The next line starting with `prefix` within `timeout`; panics on
    /// timeout or a `failed` line.
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let left = end
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no {prefix:?} line within {timeout:?}"));
            match self.lines.recv_timeout(left) {
                Ok((_, l)) if l.starts_with(prefix) => return l,
                Ok((_, l)) if l.starts_with("failed") => panic!("peer script {l}"),
                Ok(_) => {}
                Err(_) => panic!("no {prefix:?} line within {timeout:?}"),
            }
        }
    }

    /// Waits up to `timeout` for the script to end by itself; whether it
    /// did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.0.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Closes a sender's standard input: it says goodbye and ends.
    pub fn finish(&mut self) {
        self.stdin = None;
    }

    /// A receiver's results once it has ended: the latency of each
    /// message in milliseconds (sorted), the span from the first arrival
    /// to the last in seconds, and the other lines.
    pub fn received(&self) -> Received {
        let mut latencies = Vec::new();
        let (mut first, mut last) = (f64::MAX, f64::MIN);
        let mut other = String::new();
        while let Ok((_, l)) = self.lines.try_recv() {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                ["m", _n, sent_at, recv_at] => {
                    let s: f64 = sent_at.parse().unwrap_or(0.0);
                    let r: f64 = recv_at.parse().unwrap_or(0.0);
                    latencies.push((r - s) * 1000.0);
                    first = first.min(r);
                    last = last.max(r);
                }
                _ => {
                    other.push_str(&l);
                    other.push('\n');
                }
            }
        }
        latencies.sort_by(|a, b| a.total_cmp(b));
        Received {
            latencies_ms: latencies,
            span: (last - first).max(1e-9),
            other,
        }
    }
}

/// What a receiver recorded.
pub struct Received {
    /// Send to arrival, per message, sorted.
    pub latencies_ms: Vec<f64>,
    /// First arrival to last, seconds.
    pub span: f64,
    /// Lines other than the per-message ones.
    pub other: String,
}

/// The release binary a load bench runs: `tokio` (the default) or
/// `async-std`, as the environment variable `var` says.
pub fn release_xfed(var: &str) -> (String, std::path::PathBuf) {
    let runtime = std::env::var(var).unwrap_or_else(|_| "tokio".into());
    let bin = match runtime.as_str() {
        "tokio" => crate::release_binary("xfed-tokio", "xfed"),
        "async-std" => crate::release_binary("xfed-async-std", "xfed-async-std"),
        other => panic!("{var}: tokio or async-std, not {other:?}"),
    };
    (runtime, bin)
}

/// A release xfed (`xfed.test`, registrar with alice, SIP from 127.0.0.1
/// trusted) federated with Prosody `prosody.test` on 127.0.0.`ip` (bob),
/// s2s over TLS with dialback: what the load benches measure.
pub struct XfedLab {
    /// The partner.
    pub prosody: crate::prosody::Prosody,
    /// xfed's process.
    pub xfed: Killed,
    /// xfed's SIP TCP (and UDP) address.
    pub sip: SocketAddr,
}

impl XfedLab {
    /// Starts both in `dir`; `partner` may add to Prosody's options
    /// (users, routes) before it starts.
    pub fn start(
        bin: &std::path::Path,
        dir: &std::path::Path,
        ip: u8,
        partner: impl FnOnce(crate::prosody::ProsodyOptions) -> crate::prosody::ProsodyOptions,
    ) -> Result<XfedLab, Skip> {
        use crate::prosody::{prosody_for_xfed, write_dialback_certs, Prosody};
        use crate::sipp::{write_xfed_config, XfedSip};
        write_dialback_certs(dir, "xfed.test", "prosody.test");
        let s2s_port = crate::free_port();
        let mut base = prosody_for_xfed(dir, ip, s2s_port);
        // Prosody's default leaves Nagle's algorithm on, which held its
        // writes to the c2s receiver for the receiver's delayed ACK: p50
        // 14.7 ms from sipp to the receiver at 1,000/s, 1.0 ms without
        // (`--bench sip_e2e`). The latency measured is the path's.
        base.extra_global
            .push_str("network_settings = { nagle = false }\n");
        let mut options = partner(base);
        options.log_level = "info".into();
        let sip = XfedSip {
            domain: "xfed.test".into(),
            s2s_port,
            sip_port: crate::free_port(),
            accounts: vec![("alice".into(), "alice-secret".into())],
            trusted: vec!["127.0.0.1".into()],
            // sipp sends over loopback, which no one can spoof here.
            trust_udp: true,
            partners: vec![("prosody.test".into(), options.s2s_addr())],
            partner_sasl: "not-supported",
        };
        write_xfed_config(dir, &sip);
        let prosody = Prosody::start(options)?;
        let xfed = Killed(crate::spawn_quiet(bin, dir));
        let sip = SocketAddr::from(([127, 0, 0, 1], sip.sip_port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(sip).is_err() {
            assert!(Instant::now() < deadline, "xfed did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(XfedLab { prosody, xfed, sip })
    }
}
