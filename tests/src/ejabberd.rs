//! A real ejabberd (Debian 12's package, 23.01) on loopback, as a second
//! XMPP interop peer of xfed beside Prosody.
//!
//! [`Ejabberd::start`] fills the templates of `tests/peers/ejabberd/`
//! (`ejabberd.yml`, `ejabberdctl.cfg`, `inetrc`) into a fresh temporary
//! folder, runs
//!
//! ```text
//! timeout -k 5 <max_lifetime> ejabberdctl --config-dir DIR foreground
//! ```
//!
//! in its own process group, waits until the node says it started and its
//! c2s and s2s listeners are open, and registers the users with
//! `ejabberdctl --config-dir DIR register`. Dropping it sends SIGTERM to
//! the group (the Erlang VM stops cleanly on it) and waits until no process
//! of the group is left, SIGKILL after 10 s. `timeout` ends the node after
//! [`EjabberdOptions::max_lifetime`] even when the test process is gone by
//! SIGKILL. When a test panics while an instance is alive, its log is
//! printed and the folder kept (also with `XFED_KEEP_PEERS`).
//!
//! # What ejabberd needs that Prosody does not
//!
//! - **Its own `ejabberdctl.cfg`**: `--config-dir DIR` makes ejabberdctl
//!   source `DIR/ejabberdctl.cfg` instead of `/etc/ejabberd`'s (which would
//!   set the config path back to `/etc`) and read `DIR/ejabberd.yml` and
//!   `DIR/inetrc`. The node name, spool, logs and pid file are the
//!   instance's own.
//! - **No epmd**: by default the VM starts epmd as a daemon on
//!   0.0.0.0:4369, shared by every node on the machine, which outlives the
//!   node. `ERL_DIST_PORT` makes the node listen for Erlang distribution
//!   on a fixed loopback port instead (`-erl_epmd_port`, `-start_epmd
//!   false`), and ejabberdctl's client nodes connect straight there: no
//!   epmd is ever started, so there is none to stop.
//! - **Run as the test's user**: run by root (as in CI), ejabberdctl
//!   switches to the `ejabberd` user with `su`, which cannot write the
//!   test's folder and puts the node in a session of its own, out of reach
//!   of the group signal; the template sets `EXEC_CMD=as_current_user`.
//!   Any other user than root and `ejabberd` is refused by ejabberdctl
//!   itself ([`Skip`]).
//! - **DNS in two halves** (the pitfall of `peers.md`): ejabberd's
//!   outgoing s2s looks up SRV records with Erlang's resolver (`inet_res`,
//!   configured by `inetrc`) but addresses with `net:getaddrinfo`, i.e.
//!   glibc: `/etc/hosts`, then the system resolver. Rather than add lines
//!   to `/etc/hosts`, the instance's `inetrc` sends every query to a DNS
//!   responder of the test ([`DnsServer`], as Prosody's) and reads no
//!   `resolv.conf` or hosts file (`""`: an instance's own empty
//!   `resolv.conf` would be read again after 5 s and replace the
//!   nameserver with none), so nothing leaves the machine, and
//!   [`EjabberdOptions::route`] publishes `_xmpp-server._tcp.DOMAIN SRV 0 0
//!   PORT localhost.`: the target is a name glibc resolves from
//!   `/etc/hosts` on any machine (127.0.0.1; `outgoing_s2s_families` is
//!   IPv4 only), so a route needs nothing but the port of a listener on
//!   127.0.0.1. The certificate is still checked against the domain, not
//!   the SRV target.
//! - **The "bouncing" cache**: after a failed s2s connection ejabberd
//!   bounces everything for that domain for a while without retrying;
//!   `s2s_max_retry_delay` is 5 s here (300 by default).
//! - **Users** are created once the node runs (`ejabberdctl register`
//!   talks to it over distribution, about 1 s each); Prosody's are files
//!   written before it starts.
//! - **c2s without TLS**: `starttls: false`; ejabberd offers PLAIN over
//!   plain TCP without further options, which the slixmpp driver needs.
//!
//! `XFED_EJABBERDCTL` names another ejabberdctl.

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::prosody::{find_peer_binary, DnsQuery, DnsServer, Skip, Zone};

/// The configuration templates, with `{{NAME}}` placeholders.
const YML_TEMPLATE: &str = include_str!("../peers/ejabberd/ejabberd.yml");
const CTL_TEMPLATE: &str = include_str!("../peers/ejabberd/ejabberdctl.cfg");
const INETRC_TEMPLATE: &str = include_str!("../peers/ejabberd/inetrc");

/// What an ejabberd instance looks like. [`EjabberdOptions::new`] chooses
/// free ports at once, so that xfed's configuration can name this
/// instance's address before it starts.
#[derive(Debug, Clone)]
pub struct EjabberdOptions {
    /// Its one host, e.g. `ejabberd.test`.
    pub domain: String,
    /// Loopback address the c2s and s2s listeners bind to.
    pub ip: IpAddr,
    pub c2s_port: u16,
    pub s2s_port: u16,
    /// Erlang distribution (ejabberdctl's way in), on 127.0.0.1.
    pub dist_port: u16,
    /// PEM certificate chain and key of `domain` (joined into one file).
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `s2s_cafile`: the CAs peers' certificates are checked against
    /// (SASL EXTERNAL is offered to a peer whose certificate verifies).
    pub cafile: Option<PathBuf>,
    /// Load `mod_s2s_dialback` (default true). Without it, s2s streams
    /// authenticate with SASL EXTERNAL or not at all.
    pub dialback: bool,
    /// `s2s_use_starttls`: `optional` (default), `required`, `false`.
    pub s2s_use_starttls: String,
    /// What the instance's DNS answers: fill it with [`route`](Self::route).
    pub zone: Zone,
    /// `(user, password)`: accounts of `domain`, registered after start.
    pub users: Vec<(String, String)>,
    /// `loglevel`: `debug` (the default: every stanza in and out) or `info`.
    pub loglevel: String,
    /// XEP-0114 component listener (`ejabberd_service`), used when
    /// `components` is not empty.
    pub component_port: u16,
    /// `(component domain, password)`: the services it accepts.
    pub components: Vec<(String, String)>,
    /// How long `start` waits for the node and its listeners.
    pub start_timeout: Duration,
    /// `timeout` stops the node after this long, whatever happens (default
    /// 15 minutes).
    pub max_lifetime: Duration,
}

impl EjabberdOptions {
    /// `domain` on loopback address `ip` (e.g. 127.0.0.81), free ports,
    /// dialback on, STARTTLS optional, no certificate, routes or users yet.
    pub fn new(domain: &str, ip: IpAddr) -> EjabberdOptions {
        assert!(ip.is_loopback(), "{ip} is not a loopback address");
        EjabberdOptions {
            domain: domain.into(),
            ip,
            c2s_port: crate::free_port_on(ip),
            s2s_port: crate::free_port_on(ip),
            dist_port: crate::free_port(),
            certificate: None,
            key: None,
            cafile: None,
            dialback: true,
            s2s_use_starttls: "optional".into(),
            zone: Zone::new(),
            users: Vec::new(),
            loglevel: "debug".into(),
            component_port: crate::free_port_on(ip),
            components: Vec::new(),
            start_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(900),
        }
    }

    /// Where its c2s listener will be.
    pub fn c2s_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.c2s_port)
    }

    /// Where its s2s listener will be.
    pub fn s2s_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.s2s_port)
    }

    /// Certificate chain and key (PEM files) of the domain.
    pub fn tls(mut self, certificate: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.certificate = Some(certificate.into());
        self.key = Some(key.into());
        self
    }

    /// CA file ejabberd checks s2s peers' certificates against.
    pub fn cafile(mut self, cafile: impl Into<PathBuf>) -> Self {
        self.cafile = Some(cafile.into());
        self
    }

    pub fn dialback(mut self, on: bool) -> Self {
        self.dialback = on;
        self
    }

    /// s2s for `domain` goes to `127.0.0.1:port`: `_xmpp-server._tcp.domain
    /// SRV 0 0 port localhost.` in this instance's DNS (see the module
    /// documentation for why the target is `localhost`). Route also every
    /// domain that connects *to* this ejabberd with dialback: it verifies
    /// a sender by connecting back to it.
    pub fn route(mut self, domain: &str, port: u16) -> Self {
        self.zone.remove(&format!("_xmpp-server._tcp.{domain}"));
        self.zone
            .srv("_xmpp-server._tcp", domain, port, "localhost");
        self
    }

    /// Where its component listener will be.
    pub fn component_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.component_port)
    }

    /// Accepts the XEP-0114 component `domain` with `password`.
    pub fn component(mut self, domain: &str, password: &str) -> Self {
        self.components.push((domain.into(), password.into()));
        self
    }

    /// Adds the account `user@domain` with `password`.
    pub fn user(mut self, user: &str, password: &str) -> Self {
        self.users.push((user.into(), password.into()));
        self
    }
}

/// A YAML double-quoted string.
fn yaml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A single-quoted shell word.
fn sh_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn fill(template: &str, vars: &[(&str, String)], what: &str) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    assert!(
        !out.contains("{{"),
        "unfilled placeholder in the ejabberd template {what}:\n{out}"
    );
    out
}

/// The three files of an instance in `dir`: (ejabberd.yml, ejabberdctl.cfg,
/// inetrc).
fn render(
    o: &EjabberdOptions,
    dir: &Path,
    node: &str,
    cookie: &str,
    dns_port: u16,
) -> (String, String, String) {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let cafile = o.cafile.as_ref().map_or(String::new(), |ca| {
        format!("s2s_cafile: {}", yaml_str(&ca.to_string_lossy()))
    });
    let extra_modules = if o.dialback {
        "  mod_s2s_dialback: {}".to_string()
    } else {
        String::new()
    };
    let components = if o.components.is_empty() {
        String::new()
    } else {
        let hosts: String = o
            .components
            .iter()
            .map(|(d, p)| {
                format!(
                    "      {}:\n        password: {}\n",
                    yaml_str(d),
                    yaml_str(p)
                )
            })
            .collect();
        format!(
            "  - port: {}\n    ip: {}\n    module: ejabberd_service\n    hosts:\n{hosts}",
            o.component_port,
            yaml_str(&o.ip.to_string())
        )
    };
    let yml = fill(
        YML_TEMPLATE,
        &[
            ("DOMAIN", yaml_str(&o.domain)),
            ("LOGLEVEL", o.loglevel.clone()),
            ("CERTFILE", yaml_str(&path("ejabberd.pem"))),
            ("CAFILE", cafile),
            ("C2S_PORT", o.c2s_port.to_string()),
            ("S2S_PORT", o.s2s_port.to_string()),
            ("IP", yaml_str(&o.ip.to_string())),
            ("S2S_USE_STARTTLS", o.s2s_use_starttls.clone()),
            ("MAX_RETRY_DELAY", "5".into()),
            ("EXTRA_MODULES", extra_modules),
            ("COMPONENTS", components),
        ],
        "ejabberd.yml",
    );
    let erl_options = format!(
        "-env ERL_CRASH_DUMP_BYTES 0 -setcookie {cookie} \
         -kernel inet_dist_use_interface {{127,0,0,1}}"
    );
    let ctl = fill(
        CTL_TEMPLATE,
        &[
            ("NODE", sh_word(node)),
            ("DIST_PORT", o.dist_port.to_string()),
            ("ERL_OPTIONS", sh_word(&erl_options)),
            ("PID_FILE", sh_word(&path("ejabberd.pid"))),
            ("SPOOL_DIR", sh_word(&path("spool"))),
            ("LOGS_DIR", sh_word(&path("logs"))),
            ("MODULES_DIR", sh_word(&path("modules.d"))),
        ],
        "ejabberdctl.cfg",
    );
    let inetrc = fill(
        INETRC_TEMPLATE,
        &[
            ("NODE", node.to_string()),
            ("DNS_PORT", dns_port.to_string()),
        ],
        "inetrc",
    );
    (yml, ctl, inetrc)
}

/// ejabberdctl, and whether this user may run it.
fn check_installed() -> Result<PathBuf, Skip> {
    let ctl = find_peer_binary(
        "XFED_EJABBERDCTL",
        "ejabberdctl",
        &["/usr/sbin"],
        "ejabberd",
    )?;
    let user = Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if user != "root" && user != "ejabberd" {
        return Err(Skip(format!(
            "ejabberdctl runs only as root or the ejabberd user, not {user:?}"
        )));
    }
    Ok(ctl)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// What one ejabberdctl command printed.
#[derive(Debug, Clone)]
pub struct CtlOutput {
    pub success: bool,
    pub output: String,
}

/// A running ejabberd node, stopped when dropped.
pub struct Ejabberd {
    /// `timeout`, leader of the process group of ejabberdctl and the VM.
    child: Child,
    /// Its options, as started.
    pub options: EjabberdOptions,
    dir: PathBuf,
    ctl: PathBuf,
    node: String,
    dns: DnsServer,
    /// From writing the configuration to listening, users registered.
    pub startup: Duration,
}

impl Ejabberd {
    /// Writes the configuration, starts the node, waits for its listeners
    /// and registers the users. [`Skip`] when ejabberd is not installed (or
    /// this user may not run it); panics with the log when it is but does
    /// not come up.
    pub fn start(options: EjabberdOptions) -> Result<Ejabberd, Skip> {
        let t0 = Instant::now();
        assert!(
            matches!(options.loglevel.as_str(), "debug" | "info"),
            "loglevel {:?}: use \"debug\" or \"info\"",
            options.loglevel
        );
        let ctl = check_installed()?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let short: String = options.domain.chars().take(24).collect();
        let dir = std::env::temp_dir().join(format!("xfed-ejabberd-{pid}-{short}-{n}"));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["spool", "logs", "modules.d"] {
            fs::create_dir_all(dir.join(sub)).expect("ejabberd folders");
        }
        let node = format!("xfedtest{pid}n{n}@localhost");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let cookie = format!("xfedtest{pid}x{n}x{nanos}");
        let dns = DnsServer::start(options.zone.clone()).expect("DNS responder on loopback");
        let (yml, ctl_cfg, inetrc) = render(&options, &dir, &node, &cookie, dns.addr().port());
        let mut pem = String::new();
        for file in [&options.certificate, &options.key].into_iter().flatten() {
            pem.push_str(&fs::read_to_string(file).expect("read ejabberd's certificate or key"));
            pem.push('\n');
        }
        let files = [
            ("ejabberd.yml", yml),
            ("ejabberdctl.cfg", ctl_cfg),
            ("inetrc", inetrc),
            ("ejabberd.pem", pem),
        ];
        for (name, text) in files {
            fs::write(dir.join(name), text).expect("write ejabberd's files");
        }
        let console = fs::File::create(dir.join("console.log")).expect("console log");
        let mut args: Vec<String> = Vec::new();
        let program = if Path::new("/usr/bin/timeout").is_file() {
            args.extend([
                "-k".into(),
                "5".into(),
                options.max_lifetime.as_secs().max(1).to_string(),
                ctl.display().to_string(),
            ]);
            PathBuf::from("/usr/bin/timeout")
        } else {
            ctl.clone()
        };
        args.extend([
            "--config-dir".into(),
            dir.display().to_string(),
            "foreground".into(),
        ]);
        let child = Command::new(&program)
            .args(&args)
            .current_dir(&dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("console log"))
            .stderr(console)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        let mut e = Ejabberd {
            child,
            options,
            dir,
            ctl,
            node,
            dns,
            startup: Duration::ZERO,
        };
        e.wait_ready();
        for (user, password) in e.options.users.clone() {
            let domain = e.options.domain.clone();
            let out = e.ctl(&["register", &user, &domain, &password]);
            assert!(
                out.success,
                "ejabberdctl register {user} {domain}: {}\n{}",
                out.output,
                e.diagnostics()
            );
        }
        e.startup = t0.elapsed();
        Ok(e)
    }

    /// Waits until the node logs that it started and both listeners are in
    /// the kernel's table.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + self.options.start_timeout;
        let mut addrs = vec![self.options.c2s_addr(), self.options.s2s_addr()];
        if !self.options.components.is_empty() {
            addrs.push(self.options.component_addr());
        }
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "ejabberd {} exited during start-up ({status}):\n{}",
                    self.options.domain,
                    self.diagnostics()
                );
            }
            let log = self.log_text();
            if let Some(line) = log.lines().find(|l| l.contains("[critical]")) {
                panic!(
                    "ejabberd {}: {line}\n{}",
                    self.options.domain,
                    self.diagnostics()
                );
            }
            if log.contains(" is started in the node ")
                && addrs.iter().all(|a| crate::is_listening(*a))
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "ejabberd {} not listening on {addrs:?} after {:?}:\n{}",
                    self.options.domain,
                    self.options.start_timeout,
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `ejabberdctl --config-dir DIR <args>` against the node (its own
    /// short-lived Erlang node, about 1 s), killed after 30 s.
    pub fn ctl(&self, args: &[&str]) -> CtlOutput {
        let mut cmd = if Path::new("/usr/bin/timeout").is_file() {
            let mut c = Command::new("/usr/bin/timeout");
            c.args(["-k", "5", "30"]).arg(&self.ctl);
            c
        } else {
            Command::new(&self.ctl)
        };
        let out = cmd
            .arg("--config-dir")
            .arg(&self.dir)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.ctl.display()));
        CtlOutput {
            success: out.status.success(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    pub fn domain(&self) -> &str {
        &self.options.domain
    }

    pub fn c2s_addr(&self) -> SocketAddr {
        self.options.c2s_addr()
    }

    pub fn s2s_addr(&self) -> SocketAddr {
        self.options.s2s_addr()
    }

    /// The instance's folder (configuration, spool, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The Erlang node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Its DNS responder.
    pub fn dns(&self) -> &DnsServer {
        &self.dns
    }

    /// Every DNS query the node made so far (SRV lookups only: addresses
    /// go through glibc).
    pub fn dns_queries(&self) -> Vec<DnsQuery> {
        self.dns.queries()
    }

    /// ejabberd's log file (`logs/ejabberd.log`).
    pub fn log_text(&self) -> String {
        fs::read(self.dir.join("logs/ejabberd.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// What ejabberdctl and the VM printed (start-up errors, crash
    /// reports before the logger runs).
    pub fn console_text(&self) -> String {
        fs::read(self.dir.join("console.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// How many log lines there are now: a mark for
    /// [`wait_log_since`](Self::wait_log_since).
    pub fn log_mark(&self) -> usize {
        self.log_text().lines().count()
    }

    /// Waits for a log line containing `needle`; `Err` has the whole log.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        self.wait_log_since(0, needle, timeout)
    }

    /// Waits for a line containing `needle` after the first `mark` lines.
    pub fn wait_log_since(
        &self,
        mark: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        crate::poll_log("ejabberd", || self.log_text(), mark, needle, timeout)
    }

    /// The log tail, the console tail and the DNS queries, for a failure
    /// message.
    pub fn diagnostics(&self) -> String {
        let tail = |text: String, n: usize| {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(n);
            format!(
                "(last {} of {} lines)\n{}",
                lines.len() - from,
                lines.len(),
                lines[from..].join("\n")
            )
        };
        let queries: Vec<String> = self.dns.queries().iter().map(|q| q.to_string()).collect();
        format!(
            "--- ejabberd {} ({}, node {}) log {}\n--- console {}\n--- DNS queries:\n{}\n---",
            self.options.domain,
            self.dir.display(),
            self.node,
            tail(self.log_text(), 200),
            tail(self.console_text(), 30),
            queries.join("\n")
        )
    }

    /// Processes of the group that are still alive (not zombies).
    fn group_alive(&self) -> bool {
        let pgid = self.child.id().to_string();
        let Ok(dir) = fs::read_dir("/proc") else {
            return false;
        };
        dir.flatten().any(|entry| {
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                return false;
            };
            // "pid (comm) state ppid pgrp ...": comm may hold anything.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.len() > 2 && f[2] == pgid && f[0] != "Z"
        })
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        // The leader stays unreaped until the group is gone, so the group's
        // id cannot be anyone else's while we signal it.
        if self.group_alive() {
            self.signal_group("-TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && self.group_alive() {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.group_alive() {
                self.signal_group("-KILL");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("XFED_KEEP_PEERS").is_some() {
            eprintln!("{}", self.diagnostics());
            eprintln!("(kept {})", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// How xfed and ejabberd authenticate each other's s2s streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S2sAuth {
    /// Self-signed certificates (each side's TLS works, neither trusts
    /// the other's): Server Dialback over TLS.
    Dialback,
    /// Both certificates from one test CA that both trust: SASL EXTERNAL
    /// in both directions, dialback off on both sides.
    SaslExternal,
}

/// Writes the certificates of a lab into `dir`: xfed's `cert.pem` and
/// `key.pem` for `xfed_domain`, ejabberd's `ejabberd.crt` and
/// `ejabberd.key` for `ejabberd_domain`, and the `ca.pem` both trust (the
/// issuing CA for [`S2sAuth::SaslExternal`], an unrelated one for
/// [`S2sAuth::Dialback`]).
pub fn write_certs(dir: &Path, xfed_domain: &str, ejabberd_domain: &str, auth: S2sAuth) {
    use xfed_core::tls::testing::{LeafSpec, TestCa, TestCert};
    let ca = TestCa::new("xfed ejabberd interop CA");
    // dNSName and SRVNames, no id-on-xmppAddr: ejabberd 23.01 (p1_xmpp
    // 1.6.1, unchanged upstream since) crashes the stream that checks a
    // certificate holding a domain xmppAddr (`get_domains_from_san` gives
    // `flatmap` a binary where a list belongs: badarg), so its s2s with
    // such a peer ends in internal-server-error bounces.
    let cert = |domain: &str| {
        let leaf = LeafSpec::new()
            .dns(domain)
            .srv(&format!("_xmpp-server.{domain}"))
            .srv(&format!("_xmpps-server.{domain}"));
        match auth {
            S2sAuth::SaslExternal => ca.issue(&leaf),
            S2sAuth::Dialback => TestCert::self_signed(&leaf),
        }
    };
    let (xfed, ejabberd) = (cert(xfed_domain), cert(ejabberd_domain));
    let trust = match auth {
        S2sAuth::SaslExternal => ca.cert_pem(),
        S2sAuth::Dialback => TestCa::new("unrelated").cert_pem(),
    };
    let files = [
        ("cert.pem", xfed.chain_pem()),
        ("key.pem", xfed.key_pem()),
        ("ca.pem", trust),
        ("ejabberd.crt", ejabberd.chain_pem()),
        ("ejabberd.key", ejabberd.key_pem()),
    ];
    for (name, pem) in files {
        fs::write(dir.join(name), pem).expect("write test certificate");
    }
}

/// The ejabberd of the interop labs: `ejabberd.test` on 127.0.0.`ip`
/// with the certificates of [`write_certs`] in `dir`, `xfed.test` routed
/// to xfed's s2s port on 127.0.0.1, dialback only with
/// [`S2sAuth::Dialback`], and the user `bob` (password `bob-secret`).
pub fn ejabberd_for_xfed(dir: &Path, ip: u8, xfed_s2s_port: u16, auth: S2sAuth) -> EjabberdOptions {
    EjabberdOptions::new("ejabberd.test", IpAddr::V4(Ipv4Addr::new(127, 0, 0, ip)))
        .tls(dir.join("ejabberd.crt"), dir.join("ejabberd.key"))
        .cafile(dir.join("ca.pem"))
        .dialback(auth == S2sAuth::Dialback)
        .route("xfed.test", xfed_s2s_port)
        .user("bob", "bob-secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_completely() {
        let o = EjabberdOptions::new("a.test", "127.0.0.1".parse().unwrap())
            .cafile("/x/c\"a.pem")
            .dialback(false)
            .route("b.test", 5999);
        let (yml, ctl, inetrc) = render(&o, Path::new("/tmp/d"), "n@localhost", "c", 53);
        assert!(yml.contains("  - \"a.test\""), "{yml}");
        assert!(yml.contains("s2s_cafile: \"/x/c\\\"a.pem\""), "{yml}");
        assert!(!yml.contains("mod_s2s_dialback: {}"), "{yml}");
        assert!(ctl.contains("ERLANG_NODE='n@localhost'"), "{ctl}");
        assert!(ctl.contains("-setcookie c -kernel"), "{ctl}");
        assert!(
            inetrc.contains("{nameserver, {127,0,0,1}, 53}."),
            "{inetrc}"
        );
        assert!(inetrc.contains("{resolv_conf, \"\"}."), "{inetrc}");
        assert_eq!(
            o.zone.lookup("_xmpp-server._tcp.b.test"),
            &[crate::prosody::Record::Srv {
                priority: 0,
                weight: 0,
                port: 5999,
                target: "localhost".into()
            }]
        );
    }

    #[test]
    fn shell_words_survive_quotes() {
        assert_eq!(sh_word("a'b"), "'a'\\''b'");
    }
}
