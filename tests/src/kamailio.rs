//! A real Kamailio (Debian 12's package `kamailio`, 5.6.x) on loopback, as
//! the SIP proxy/registrar of a domain in front of xfed in proxy mode.
//!
//! [`Kamailio::start`] fills the template `tests/peers/kamailio/kamailio.cfg`
//! (a plain proxy/registrar: no authentication, usrloc in memory, no xmpp
//! module), writes it into a fresh temporary folder and runs
//!
//! ```text
//! timeout -k 5 <max_lifetime> kamailio -f DIR/kamailio.cfg -DD -E -w DIR -Y DIR/run -P DIR/kamailio.pid -m 16 -M 4
//! ```
//!
//! in its own process group: in the foreground, logging to stderr (the
//! file `kamailio.log` in the folder), with its own runtime folder and pid
//! file, listening on UDP and TCP at one address of 127.0.0.0/8 and a free
//! port (never 5060; no system service is touched). `timeout` ends it
//! after [`KamailioOptions::max_lifetime`] even when the test process is
//! gone by SIGKILL. Dropping the [`Kamailio`] sends SIGTERM to the whole
//! group (Kamailio's main process also stops its children and waits for
//! them), then SIGKILL to the group if it is still there after 3 s. When a test panics while an instance is alive, its log is
//! printed and the folder kept (also with `XFED_KEEP_PEERS`).
//!
//! [`Kamailio::start`] returns when Kamailio answers a SIP OPTIONS over UDP
//! (the script answers 501) and accepts TCP connections.
//!
//! `XFED_KAMAILIO` names another kamailio binary. Without one installed,
//! `start` gives a [`Skip`], which [`require_peer`](crate::prosody::require_peer)
//! turns into a failure under `CI=true`.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::prosody::{find_peer_binary, Skip};

/// The configuration template; placeholders in double braces.
pub const CONFIG_TEMPLATE: &str = include_str!("../peers/kamailio/kamailio.cfg");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The kamailio binary: `XFED_KAMAILIO`, else `kamailio` on `PATH` or in
/// /usr/sbin, /usr/local/sbin.
pub fn binary() -> Result<PathBuf, Skip> {
    find_peer_binary(
        "XFED_KAMAILIO",
        "kamailio",
        &["/usr/sbin", "/usr/local/sbin"],
        "kamailio",
    )
}

/// One Kamailio instance.
#[derive(Debug, Clone)]
pub struct KamailioOptions {
    /// The SIP domain it serves (`alias`), e.g. `xfed.test`: REGISTERs and
    /// MESSAGEs for it use its location table.
    pub domain: String,
    /// Where it listens (UDP and TCP), in 127.0.0.0/8; also the source
    /// of its TCP connections (`tcp_source_ipv4`).
    pub ip: Ipv4Addr,
    /// Its port (free, from [`crate::free_port_on`]).
    pub port: u16,
    /// The SIP URI MESSAGEs for other domains are relayed to (`$du`), e.g.
    /// `sip:127.0.0.1:40000;transport=udp` (xfed).
    pub xfed: String,
    /// `-m`: shared memory in MB.
    pub shm_mb: u32,
    /// `-M`: private memory per process in MB.
    pub pkg_mb: u32,
    /// Kamailio is stopped after this, whatever happens.
    pub max_lifetime: Duration,
    /// How long [`Kamailio::start`] waits for it to answer.
    pub start_timeout: Duration,
}

impl KamailioOptions {
    /// Kamailio for `domain` on `ip` at a free port, relaying other
    /// domains to `xfed`; 16 MB shared, 4 MB private memory.
    pub fn new(domain: &str, ip: Ipv4Addr, xfed: &str) -> KamailioOptions {
        KamailioOptions {
            domain: domain.into(),
            ip,
            port: crate::free_port_on(ip.into()),
            xfed: xfed.into(),
            shm_mb: 16,
            pkg_mb: 4,
            max_lifetime: Duration::from_secs(600),
            start_timeout: Duration::from_secs(10),
        }
    }

    /// Its SIP address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip.into(), self.port)
    }

    /// Its URI with `;transport=udp` or `tcp`, for xfed's `next_hop`.
    pub fn uri(&self, tcp: bool) -> String {
        let t = if tcp { "tcp" } else { "udp" };
        format!("sip:{}:{};transport={t}", self.ip, self.port)
    }
}

/// The configuration for `o`: the template with its placeholders filled.
pub fn render_config(o: &KamailioOptions) -> String {
    let text = CONFIG_TEMPLATE
        .replace("{{DOMAIN}}", &o.domain)
        .replace("{{IP}}", &o.ip.to_string())
        .replace("{{PORT}}", &o.port.to_string())
        .replace("{{XFED}}", &o.xfed);
    assert!(!text.contains("{{"), "unfilled placeholder:\n{text}");
    text
}

/// A running Kamailio, stopped (its whole process group) when dropped.
pub struct Kamailio {
    child: Child,
    /// Its options, as started.
    pub options: KamailioOptions,
    dir: PathBuf,
    /// How long `start` took, from writing the config to answering.
    pub startup: Duration,
}

impl Kamailio {
    /// Writes the configuration, starts Kamailio and waits until it
    /// answers on UDP and TCP. [`Skip`] when Kamailio is not installed;
    /// panics (with its log) when it is but does not come up.
    pub fn start(options: KamailioOptions) -> Result<Kamailio, Skip> {
        let t0 = Instant::now();
        let bin = binary()?;
        let dir = std::env::temp_dir().join(format!(
            "xfed-kamailio-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("run")).expect("Kamailio folder");
        let config = dir.join("kamailio.cfg");
        fs::write(&config, render_config(&options)).expect("write kamailio.cfg");
        let log = fs::File::create(dir.join("kamailio.log")).expect("Kamailio log");
        let (program, mut args): (PathBuf, Vec<String>) = if Path::new("/usr/bin/timeout").is_file()
        {
            (
                PathBuf::from("/usr/bin/timeout"),
                vec![
                    "-k".into(),
                    "5".into(),
                    options.max_lifetime.as_secs().max(1).to_string(),
                    bin.display().to_string(),
                ],
            )
        } else {
            (bin.clone(), Vec::new())
        };
        // Absolute paths: Kamailio changes its working directory (to `-w`).
        let path = |name: &str| dir.join(name).display().to_string();
        args.extend([
            "-f".into(),
            path("kamailio.cfg"),
            "-DD".into(),
            "-E".into(),
            "-w".into(),
            path(""),
            "-Y".into(),
            path("run"),
            "-P".into(),
            path("kamailio.pid"),
            "-m".into(),
            options.shm_mb.to_string(),
            "-M".into(),
            options.pkg_mb.to_string(),
        ]);
        let child = Command::new(&program)
            .args(&args)
            .current_dir(&dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("Kamailio log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        let mut k = Kamailio {
            child,
            options,
            dir,
            startup: Duration::ZERO,
        };
        k.wait_ready();
        k.startup = t0.elapsed();
        Ok(k)
    }

    /// Waits until an OPTIONS over UDP is answered and TCP connects.
    fn wait_ready(&mut self) {
        let addr = self.addr();
        let deadline = Instant::now() + self.options.start_timeout;
        let probe = UdpSocket::bind((self.options.ip, 0)).expect("bind probe socket");
        let local = probe.local_addr().expect("probe address");
        probe
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let mut n = 0;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "kamailio exited during start-up ({status}):\n{}",
                    self.diagnostics()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "kamailio not answering on {addr} after {:?}:\n{}",
                    self.options.start_timeout,
                    self.diagnostics()
                );
            }
            n += 1;
            let options = format!(
                "OPTIONS sip:{addr} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bK-probe-{n}\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:probe@{addr}>;tag=probe\r\n\
                 To: <sip:{addr}>\r\n\
                 Call-ID: probe-{}-{}\r\n\
                 CSeq: {n} OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                std::process::id(),
                local.port()
            );
            let _ = probe.send_to(options.as_bytes(), addr);
            let mut buf = [0u8; 4096];
            if let Ok((len, from)) = probe.recv_from(&mut buf) {
                let answered = from == addr && buf[..len].starts_with(b"SIP/2.0 ");
                if answered && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                    return;
                }
            }
        }
    }

    /// Its SIP address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.options.addr()
    }

    /// Its folder (config, `kamailio.log`, `run/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id (of `timeout`, whose process group Kamailio shares).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything Kamailio logged so far.
    pub fn log_text(&self) -> String {
        fs::read(self.dir.join("kamailio.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits for a log line containing `needle`; `Err` has the whole log.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        crate::poll_log("kamailio", || self.log_text(), 0, needle, timeout)
    }

    /// The log, for a failure message.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- kamailio {} ({}) log:\n{}\n---",
            self.addr(),
            self.dir.display(),
            self.log_text()
        )
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // The group is signalled only while its leader is unreaped (running
        // or a zombie), so its id cannot belong to anyone else.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal_group("-TERM");
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                self.signal_group("-KILL");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("XFED_KEEP_PEERS").is_some() {
            eprintln!("{} (kept)", self.diagnostics());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
