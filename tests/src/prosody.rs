//! A real Prosody (Debian 12's package, 0.12.3) on loopback, as an interop
//! peer of xfed.
//!
//! [`Prosody::start`] writes a complete configuration (from the template
//! `tests/peers/prosody/prosody.cfg.lua`) into a fresh temporary folder, runs
//! `prosody -F` as a child process, waits until its listeners are open, and
//! kills it when dropped. Its debug log is a file the test reads
//! ([`Prosody::log_lines`], [`Prosody::wait_log`]); when a test panics while
//! an instance is alive, the log tail and the DNS queries are printed and the
//! folder is kept.
//!
//! # How Prosody is pointed at a domain
//!
//! Every instance gets its own DNS responder ([`DnsServer`]): a thread of
//! the test process serving UDP on `127.0.0.1:<free port>`, with a zone the
//! test fills ([`ProsodyOptions::route`] adds `_xmpp-server._tcp.D SRV 0 0
//! port D.` plus `D A ip`). Prosody resolves through libunbound (the Debian
//! package `lua-unbound`, which `prosody` recommends), configured with
//! `forward = "127.0.0.1@port"`, `resolvconf = false` and `hoststxt =
//! false`: every lookup goes to that responder and nowhere else. Why this
//! and not the alternatives:
//!
//! - **libunbound `hoststxt`** (a private hosts file) gives A records only,
//!   so Prosody always dials port 5269: tests could not use free ports, and
//!   parallel tests would need a distinct loopback address each for every
//!   remote domain.
//! - **libunbound `local-data`** (in `unbound.options`) does serve SRV
//!   records, but luaunbound takes one value per option name (a table of
//!   values crashes it), so only one record per instance.
//! - **a per-test dnsmasq** works (`srv-host=`), but is one more package and
//!   process to start, wait for and kill, and if it dies every lookup stalls
//!   17 s before Prosody gives up.
//! - **a static s2s route option**: Prosody 0.12 has none. `mod_s2s` always
//!   resolves `_xmpps-server._tcp` then `_xmpp-server._tcp` then A/AAAA
//!   (`route_to_new_session` with `net.resolvers.service`); the
//!   `s2sout-pre-connect` hook that lets a module swap the resolver exists
//!   only from Prosody 13, and the community `mod_s2soutinjection` is not in
//!   Debian 12's `prosody-modules` selection. Patching
//!   `net.resolvers.service` from a plugin of ours would depend on Prosody's
//!   internals and skip the SRV code path entirely.
//!
//! The in-process responder needs no extra package or process, runs Prosody's
//! real SRV/A path (so tests can also publish `_xmpps-server` records for
//! XEP-0368, several targets, or no record at all), records every query
//! Prosody made ([`Prosody::dns_queries`]), answers with TTL 0 so that
//! [`Prosody::dns`] changes take effect on the next connection, and lives
//! exactly as long as the instance. Each instance has its own responder,
//! addresses and ports, so tests run in parallel.
//!
//! Without lua-unbound, Prosody 0.12 falls back to its own resolver, which
//! reads only `/etc/resolv.conf` (the system resolver); [`Prosody::start`]
//! therefore refuses to run without it ([`Skip`]).
//!
//! # Talking through Prosody without a client
//!
//! `mod_admin_shell` (0.12) answers `prosodyctl --config FILE shell CMD` over
//! a unix socket in the instance's folder: [`Prosody::ping`] runs
//! `xmpp:ping(from, to, timeout)`, which sends an XEP-0199 ping over s2s and
//! reports the session events and the pong time; [`Prosody::shell`] runs any
//! command (`s2s:show()`, `s2s:close(from, to)`), and
//! [`Prosody::send_stanza`] injects a stanza from a local host (Lua run by
//! the shell's `>` prefix).
//!
//! # Stopping by itself
//!
//! Prosody's stdin is a pipe only the test process holds; the plugin
//! `tests/peers/prosody/mod_xfed_guard.lua` (written into the instance's
//! folder) shuts Prosody down when that pipe closes, i.e. when the test
//! process is gone even by SIGKILL, and after
//! [`ProsodyOptions::max_lifetime`] in any case. It also logs the end of
//! start-up, which [`Prosody::start`] waits for.
//!
//! # Skipping
//!
//! When Prosody or lua-unbound is missing, `start` returns [`Skip`];
//! [`require_peer!`](crate::require_peer) turns it into a failure when
//! `CI=true` and into a printed skip otherwise.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The configuration template, with `{{NAME}}` placeholders.
const TEMPLATE: &str = include_str!("../peers/prosody/prosody.cfg.lua");
/// The plugin that stops Prosody when the test process is gone.
const GUARD_PLUGIN: &str = include_str!("../peers/prosody/mod_xfed_guard.lua");

// ---------------------------------------------------------------------------
// Skipping

/// Why a peer could not be run on this machine (not installed).
#[derive(Debug, Clone)]
pub struct Skip(pub String);

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A peer's program: the file `env_var` names, else `name` on `PATH` or in
/// one of `dirs`; `Skip` says to install `package`.
pub fn find_peer_binary(
    env_var: &str,
    name: &str,
    dirs: &[&str],
    package: &str,
) -> Result<PathBuf, Skip> {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Skip(format!("{env_var}={}: no such file", p.display())))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(dirs.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Skip(format!(
                "{name} is not installed (apt-get install {package})"
            ))
        })
}

/// Whether the tests run in CI, where every peer must be there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `Ok(v)` gives `Some(v)`. A [`Skip`] panics when `CI=true` (CI installs
/// every peer, so a missing one is a broken CI set-up); otherwise it prints
/// the reason and gives `None`, and the test should return.
#[track_caller]
pub fn require_peer<T>(r: Result<T, Skip>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Skip(reason)) if in_ci() => panic!("peer missing in CI (CI=true): {reason}"),
        Err(Skip(reason)) => {
            eprintln!("SKIPPED: {reason}");
            None
        }
    }
}

/// `let p = require_peer!(Prosody::start(opts));` : the value, or a return
/// from the test after printing why (a panic instead when `CI=true`).
#[macro_export]
macro_rules! require_peer {
    ($e:expr) => {
        match $crate::prosody::require_peer($e) {
            Some(v) => v,
            None => return,
        }
    };
}

// ---------------------------------------------------------------------------
// DNS responder

/// A DNS record served by a [`DnsServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
}

impl Record {
    fn qtype(&self) -> u16 {
        match self {
            Record::A(_) => 1,
            Record::Aaaa(_) => 28,
            Record::Srv { .. } => 33,
        }
    }
}

fn canonical(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The records a [`DnsServer`] answers with: name -> records. A name with
/// records of other types gets an empty answer; any other name NXDOMAIN.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: BTreeMap<String, Vec<Record>>,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Adds one record.
    pub fn add(&mut self, name: &str, record: Record) -> &mut Zone {
        self.records
            .entry(canonical(name))
            .or_default()
            .push(record);
        self
    }

    /// Removes every record of `name`.
    pub fn remove(&mut self, name: &str) -> &mut Zone {
        self.records.remove(&canonical(name));
        self
    }

    /// s2s for `domain` goes to `addr`: `_xmpp-server._tcp.domain SRV 0 0
    /// port domain.` and `domain A/AAAA ip` (replacing what `domain` had).
    pub fn route(&mut self, domain: &str, addr: SocketAddr) -> &mut Zone {
        self.remove(&format!("_xmpp-server._tcp.{domain}"));
        self.remove(domain);
        self.srv("_xmpp-server._tcp", domain, addr.port(), domain);
        self.address(domain, addr.ip())
    }

    /// Direct TLS (XEP-0368) s2s for `domain` goes to `addr`:
    /// `_xmpps-server._tcp.domain SRV 0 0 port domain.` plus the address.
    pub fn route_direct_tls(&mut self, domain: &str, addr: SocketAddr) -> &mut Zone {
        self.remove(&format!("_xmpps-server._tcp.{domain}"));
        self.srv("_xmpps-server._tcp", domain, addr.port(), domain);
        let rec = match addr.ip() {
            IpAddr::V4(a) => Record::A(a),
            IpAddr::V6(a) => Record::Aaaa(a),
        };
        if !self.lookup(domain).contains(&rec) {
            self.add(domain, rec);
        }
        self
    }

    /// `service.domain SRV 0 0 port target.` (`service` like `_xmpp-server._tcp`).
    pub fn srv(&mut self, service: &str, domain: &str, port: u16, target: &str) -> &mut Zone {
        self.add(
            &format!("{service}.{domain}"),
            Record::Srv {
                priority: 0,
                weight: 0,
                port,
                target: canonical(target),
            },
        )
    }

    /// `name A ip` or `name AAAA ip`.
    pub fn address(&mut self, name: &str, ip: IpAddr) -> &mut Zone {
        match ip {
            IpAddr::V4(a) => self.add(name, Record::A(a)),
            IpAddr::V6(a) => self.add(name, Record::Aaaa(a)),
        }
    }

    /// The records of `name`.
    pub fn lookup(&self, name: &str) -> &[Record] {
        self.records
            .get(&canonical(name))
            .map_or(&[][..], |v| v.as_slice())
    }

    fn has_ipv6(&self) -> bool {
        self.records
            .values()
            .flatten()
            .any(|r| matches!(r, Record::Aaaa(_)))
    }
}

/// One query the responder answered: name, type and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuery {
    pub name: String,
    /// "A", "AAAA", "SRV", or the number.
    pub qtype: String,
    /// "NOERROR" (with `answers` records) or "NXDOMAIN".
    pub rcode: &'static str,
    pub answers: usize,
}

impl fmt::Display for DnsQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {} ({} records)",
            self.name, self.qtype, self.rcode, self.answers
        )
    }
}

/// A loopback UDP DNS responder over a [`Zone`], on its own thread until
/// dropped. Never forwards anything.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<Mutex<Vec<DnsQuery>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Starts serving `zone` on `127.0.0.1` at a free port.
    pub fn start(zone: Zone) -> std::io::Result<DnsServer> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let zone = Arc::new(Mutex::new(zone));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (zone, queries, stop) = (zone.clone(), queries.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("dns-{}", addr.port()))
                .spawn(move || {
                    let mut buf = [0u8; 1500];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                            continue;
                        };
                        let zone = zone.lock().unwrap().clone();
                        if let Some((reply, query)) = answer(&buf[..n], &zone) {
                            let _ = socket.send_to(&reply, peer);
                            queries.lock().unwrap().push(query);
                        }
                    }
                })?
        };
        Ok(DnsServer {
            addr,
            zone,
            queries,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens (UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the zone; answers carry TTL 0, so the next lookup sees it.
    pub fn update(&self, f: impl FnOnce(&mut Zone)) {
        f(&mut self.zone.lock().unwrap())
    }

    /// Every query answered so far, in order.
    pub fn queries(&self) -> Vec<DnsQuery> {
        self.queries.lock().unwrap().clone()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn type_name(qtype: u16) -> String {
    match qtype {
        1 => "A".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        n => n.to_string(),
    }
}

/// Encodes `name` as uncompressed DNS labels.
fn encode_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let label = &label.as_bytes()[..label.len().min(63)];
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
}

/// The reply to one DNS query datagram (None: not a query worth answering).
fn answer(q: &[u8], zone: &Zone) -> Option<(Vec<u8>, DnsQuery)> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return None; // too short, or a response
    }
    let opcode = (q[2] >> 3) & 0x0f;
    let qdcount = u16::from_be_bytes([q[4], q[5]]);
    // The question: labels, then type and class.
    let mut pos = 12;
    let mut labels = Vec::new();
    let parsed = loop {
        let Some(&len) = q.get(pos) else { break false };
        pos += 1;
        if len == 0 {
            break true;
        }
        if len & 0xc0 != 0 || pos + len as usize > q.len() {
            break false; // no compression in a question
        }
        labels.push(String::from_utf8_lossy(&q[pos..pos + len as usize]).to_ascii_lowercase());
        pos += len as usize;
    };
    let ok = parsed && qdcount == 1 && opcode == 0 && pos + 4 <= q.len();
    let (qtype, qclass) = if ok {
        (
            u16::from_be_bytes([q[pos], q[pos + 1]]),
            u16::from_be_bytes([q[pos + 2], q[pos + 3]]),
        )
    } else {
        (0, 0)
    };
    let name = labels.join(".");
    let mut reply = Vec::with_capacity(128);
    reply.extend_from_slice(&q[0..2]); // id
                                       // QR, opcode, AA, RD copied; RA.
    reply.push(0x80 | (q[2] & 0x79) | 0x04);
    let records: Vec<&Record> = zone
        .records
        .get(&name)
        .map(|rs| rs.iter().filter(|r| r.qtype() == qtype).collect())
        .unwrap_or_default();
    let (rcode, rcode_name) = if !ok {
        (if opcode != 0 { 4 } else { 1 }, "FORMERR")
    } else if qclass != 1 || !zone.records.contains_key(&name) {
        (3, "NXDOMAIN")
    } else {
        (0, "NOERROR")
    };
    reply.push(0x80 | rcode);
    if !ok {
        reply.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        return Some((
            reply,
            DnsQuery {
                name,
                qtype: type_name(qtype),
                rcode: rcode_name,
                answers: 0,
            },
        ));
    }
    let answers = if rcode == 0 { records.len() } else { 0 };
    reply.extend_from_slice(&1u16.to_be_bytes());
    reply.extend_from_slice(&(answers as u16).to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]); // no authority, no additional (no EDNS)
    reply.extend_from_slice(&q[12..pos + 4]); // the question as asked
    for r in records.iter().take(answers) {
        reply.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        reply.extend_from_slice(&r.qtype().to_be_bytes());
        reply.extend_from_slice(&1u16.to_be_bytes()); // IN
        reply.extend_from_slice(&0u32.to_be_bytes()); // TTL 0: never cached
        let mut rdata = Vec::new();
        match r {
            Record::A(a) => rdata.extend_from_slice(&a.octets()),
            Record::Aaaa(a) => rdata.extend_from_slice(&a.octets()),
            Record::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                rdata.extend_from_slice(&priority.to_be_bytes());
                rdata.extend_from_slice(&weight.to_be_bytes());
                rdata.extend_from_slice(&port.to_be_bytes());
                encode_name(&mut rdata, target);
            }
        }
        reply.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        reply.extend_from_slice(&rdata);
    }
    Some((
        reply,
        DnsQuery {
            name,
            qtype: type_name(qtype),
            rcode: rcode_name,
            answers,
        },
    ))
}

// ---------------------------------------------------------------------------
// Options

/// What a Prosody instance looks like. [`ProsodyOptions::new`] chooses free
/// ports at once, so that peers can be given this instance's address
/// ([`ProsodyOptions::s2s_addr`]) before it starts.
#[derive(Debug, Clone)]
pub struct ProsodyOptions {
    /// The VirtualHost, e.g. `prosody.test`. Use names under `.test`.
    pub domain: String,
    /// Loopback address every listener binds to.
    pub ip: IpAddr,
    pub c2s_port: u16,
    pub s2s_port: u16,
    /// XEP-0368 direct TLS s2s listener (off unless set).
    pub s2s_direct_tls_port: Option<u16>,
    /// XEP-0114 component listener, used when `components` is not empty.
    pub component_port: u16,
    /// `(component domain, secret)`: `Component` blocks.
    pub components: Vec<(String, String)>,
    /// PEM certificate chain and key of `domain` (no TLS without them).
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// PEM file of the CAs Prosody trusts for s2s (`ssl.cafile`); without
    /// it, OpenSSL's default store.
    pub cafile: Option<PathBuf>,
    /// `s2s_secure_auth`: refuse peers whose certificate does not validate
    /// (no dialback fallback). Default false.
    pub s2s_secure_auth: bool,
    /// `s2s_require_encryption`: TLS on every s2s stream. Default true
    /// (Prosody's default).
    pub s2s_require_encryption: bool,
    pub s2s_secure_domains: Vec<String>,
    pub s2s_insecure_domains: Vec<String>,
    /// `s2s_timeout`, seconds for an outgoing s2s stream to be set up.
    pub s2s_timeout: u32,
    /// What this instance's DNS answers: fill it with [`route`](Self::route).
    pub zone: Zone,
    /// Modules loaded in addition to the base set (roster, saslauth, tls,
    /// dialback, disco, ping, posix, admin_shell), e.g. `s2s_bidi`.
    pub extra_modules: Vec<String>,
    /// Lua appended to the global section.
    pub extra_global: String,
    /// Lua appended inside the VirtualHost.
    pub extra_host: String,
    /// Log level of the log file: "debug" (the default: every stanza sent
    /// and received) or "info" (for load tests). `start` needs info lines.
    pub log_level: String,
    /// How long `start` waits for the listeners.
    pub start_timeout: Duration,
    /// Prosody shuts itself down after this long, whatever happens
    /// (default 15 minutes). It also stops when the test process is gone.
    pub max_lifetime: Duration,
    /// `(user, password)`: accounts of `domain`, created with `prosodyctl
    /// register` before Prosody starts (c2s clients log in with them over
    /// plain TCP: `c2s_require_encryption = false`,
    /// `allow_unencrypted_plain_auth = true`).
    pub users: Vec<(String, String)>,
}

impl ProsodyOptions {
    /// `domain` on loopback address `ip` (e.g. 127.0.0.2), with free c2s,
    /// s2s and component ports, encryption required, dialback allowed, no
    /// certificate and no routes yet.
    pub fn new(domain: &str, ip: IpAddr) -> ProsodyOptions {
        assert!(ip.is_loopback(), "{ip} is not a loopback address");
        let ports: Vec<u16> = (0..3).map(|_| crate::free_port_on(ip)).collect();
        ProsodyOptions {
            domain: domain.to_string(),
            ip,
            c2s_port: ports[0],
            s2s_port: ports[1],
            s2s_direct_tls_port: None,
            component_port: ports[2],
            components: Vec::new(),
            certificate: None,
            key: None,
            cafile: None,
            s2s_secure_auth: false,
            s2s_require_encryption: true,
            s2s_secure_domains: Vec::new(),
            s2s_insecure_domains: Vec::new(),
            s2s_timeout: 10,
            zone: Zone::new(),
            extra_modules: Vec::new(),
            extra_global: String::new(),
            extra_host: String::new(),
            log_level: "debug".into(),
            start_timeout: Duration::from_secs(20),
            max_lifetime: Duration::from_secs(900),
            users: Vec::new(),
        }
    }

    /// Where its s2s (STARTTLS) listener will be.
    pub fn s2s_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.s2s_port)
    }

    /// Where its c2s listener will be.
    pub fn c2s_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.c2s_port)
    }

    /// Where its component listener will be.
    pub fn component_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.component_port)
    }

    /// Where its direct TLS s2s listener will be, if enabled.
    pub fn s2s_direct_tls_addr(&self) -> Option<SocketAddr> {
        self.s2s_direct_tls_port
            .map(|p| SocketAddr::new(self.ip, p))
    }

    /// Certificate chain and key (PEM files) of the domain.
    pub fn tls(mut self, certificate: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.certificate = Some(certificate.into());
        self.key = Some(key.into());
        self
    }

    /// CA file Prosody trusts for s2s certificates.
    pub fn cafile(mut self, cafile: impl Into<PathBuf>) -> Self {
        self.cafile = Some(cafile.into());
        self
    }

    pub fn secure_auth(mut self, on: bool) -> Self {
        self.s2s_secure_auth = on;
        self
    }

    pub fn require_encryption(mut self, on: bool) -> Self {
        self.s2s_require_encryption = on;
        self
    }

    /// s2s for `domain` goes to `addr` (SRV + A record in this instance's
    /// DNS). Route also every domain that will connect *to* this Prosody:
    /// dialback verifies a sender by connecting back to it.
    pub fn route(mut self, domain: &str, addr: SocketAddr) -> Self {
        self.zone.route(domain, addr);
        self
    }

    /// Direct TLS s2s for `domain` goes to `addr` (`_xmpps-server._tcp`
    /// SRV + A record; Prosody tries it before `_xmpp-server._tcp`).
    pub fn route_direct_tls(mut self, domain: &str, addr: SocketAddr) -> Self {
        self.zone.route_direct_tls(domain, addr);
        self
    }

    /// Opens a direct TLS s2s listener on a free port.
    pub fn with_direct_tls(mut self) -> Self {
        self.s2s_direct_tls_port = Some(crate::free_port_on(self.ip));
        self
    }

    /// Adds an XEP-0114 component `domain` with `secret`.
    pub fn component(mut self, domain: &str, secret: &str) -> Self {
        self.components.push((domain.into(), secret.into()));
        self
    }

    /// Adds the account `user@domain` with `password` (see
    /// [`users`](Self::users)).
    pub fn user(mut self, user: &str, password: &str) -> Self {
        self.users.push((user.into(), password.into()));
        self
    }

    pub fn module(mut self, name: &str) -> Self {
        self.extra_modules.push(name.into());
        self
    }
}

/// A Lua string literal.
fn lua_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Lua long string literal holding `s` verbatim.
fn lua_long_str(s: &str) -> String {
    let mut level = 0;
    while s.contains(&format!("]{}]", "=".repeat(level))) {
        level += 1;
    }
    let eq = "=".repeat(level);
    // A newline right after the opening bracket is dropped by Lua.
    format!("[{eq}[\n{s}]{eq}]")
}

fn lua_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| lua_str(s))
        .collect::<Vec<_>>()
        .join(", ")
}

fn path_str(p: &Path) -> String {
    lua_str(&p.to_string_lossy())
}

/// The configuration file for `o`, with the instance folder `dir` and the
/// DNS responder at `dns`.
fn render_config(o: &ProsodyOptions, dir: &Path, dns: SocketAddr) -> String {
    let mut ssl = Vec::new();
    if let Some(c) = &o.certificate {
        ssl.push(format!("certificate = {};", path_str(c)));
    }
    if let Some(k) = &o.key {
        ssl.push(format!("key = {};", path_str(k)));
    }
    if let Some(ca) = &o.cafile {
        ssl.push(format!("cafile = {};", path_str(ca)));
    }
    let components: String = o
        .components
        .iter()
        .map(|(name, secret)| {
            format!(
                "Component {}\n  component_secret = {}\n",
                lua_str(name),
                lua_str(secret)
            )
        })
        .collect();
    let modules: String = o
        .extra_modules
        .iter()
        .map(|m| format!("{}; ", lua_str(m)))
        .collect();
    let use_ipv6 = o.zone.has_ipv6() || o.ip.is_ipv6();
    let vars: [(&str, String); 27] = [
        ("PLUGIN_DIR", path_str(&dir.join("plugins"))),
        ("WATCH_STDIN", "true".into()),
        ("MAX_LIFETIME", o.max_lifetime.as_secs().max(1).to_string()),
        ("DATA_PATH", path_str(&dir.join("data"))),
        ("PID_FILE", path_str(&dir.join("prosody.pid"))),
        ("ADMIN_SOCKET", path_str(&dir.join("admin.sock"))),
        ("CERT_DIR", path_str(&dir.join("certs"))),
        ("IP", lua_str(&o.ip.to_string())),
        ("C2S_PORT", o.c2s_port.to_string()),
        ("S2S_PORT", o.s2s_port.to_string()),
        (
            "S2S_DIRECT_TLS_PORTS",
            o.s2s_direct_tls_port
                .map(|p| p.to_string())
                .unwrap_or_default(),
        ),
        (
            "COMPONENT_PORTS",
            if o.components.is_empty() {
                String::new()
            } else {
                o.component_port.to_string()
            },
        ),
        ("EXTRA_MODULES", modules),
        (
            "S2S_REQUIRE_ENCRYPTION",
            o.s2s_require_encryption.to_string(),
        ),
        ("S2S_SECURE_AUTH", o.s2s_secure_auth.to_string()),
        ("S2S_SECURE_DOMAINS", lua_list(&o.s2s_secure_domains)),
        ("S2S_INSECURE_DOMAINS", lua_list(&o.s2s_insecure_domains)),
        ("S2S_TIMEOUT", o.s2s_timeout.to_string()),
        ("SSL", ssl.join("\n  ")),
        (
            "DNS_FORWARD",
            lua_str(&format!("{}@{}", dns.ip(), dns.port())),
        ),
        ("LOG_LEVEL", lua_str(&o.log_level)),
        ("LOG_FILE", path_str(&dir.join("prosody.log"))),
        ("EXTRA_GLOBAL", o.extra_global.clone()),
        ("DOMAIN", lua_str(&o.domain)),
        ("EXTRA_HOST", o.extra_host.clone()),
        ("COMPONENTS", components),
        ("USE_IPV6", use_ipv6.to_string()),
    ];
    let mut out = TEMPLATE.to_string();
    for (name, value) in &vars {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    assert!(
        !out.contains("{{"),
        "unfilled placeholder in the Prosody template:\n{out}"
    );
    out
}

// ---------------------------------------------------------------------------
// The instance

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Checks that Prosody, prosodyctl and lua-unbound are installed. The
/// environment variable `XFED_PROSODY` may name another `prosody` (with its
/// `prosodyctl` beside it).
fn check_installed() -> Result<(PathBuf, PathBuf), Skip> {
    let (prosody, prosodyctl) = match std::env::var_os("XFED_PROSODY") {
        Some(p) => {
            let p = PathBuf::from(p);
            let ctl = p.with_file_name("prosodyctl");
            if !p.is_file() || !ctl.is_file() {
                return Err(Skip(format!(
                    "XFED_PROSODY={}: no prosody and prosodyctl there",
                    p.display()
                )));
            }
            (p, ctl)
        }
        None => (
            find_in_path("prosody").ok_or_else(|| {
                Skip("prosody is not installed (apt-get install prosody lua-unbound)".into())
            })?,
            find_in_path("prosodyctl").ok_or_else(|| {
                Skip("prosodyctl is not installed (apt-get install prosody)".into())
            })?,
        ),
    };
    // Prosody 0.12 on Debian 12 runs on Lua 5.4; without luaunbound it
    // would resolve through /etc/resolv.conf, i.e. off this machine.
    let lua = std::fs::read_to_string(&prosody)
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.strip_prefix("#!"))
                .map(|l| l.split_whitespace().last().unwrap_or("lua").to_string())
        })
        .unwrap_or_else(|| "lua5.4".into());
    let ok = Command::new(&lua)
        .args(["-e", "require 'lunbound'"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(Skip(format!(
            "lua-unbound is not installed for {lua} (apt-get install lua-unbound): \
             without it Prosody would use the system resolver"
        )));
    }
    Ok((prosody, prosodyctl))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh folder for one instance.
fn make_dir(domain: &str) -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Short: the admin socket's path must fit in 108 bytes.
        let short: String = domain.chars().take(24).collect();
        let dir = base.join(format!("xfed-prosody-{}-{short}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `prosodyctl --config FILE register USER DOMAIN PASSWORD` (internal
/// storage: it writes the account file itself, no server needed), killed
/// after 20 s; panics with its output when it fails.
fn register_user(
    prosodyctl: &Path,
    config: &Path,
    dir: &Path,
    user: &str,
    domain: &str,
    password: &str,
) {
    let mut child = Command::new(prosodyctl)
        .arg("--config")
        .arg(config)
        .args(["register", user, domain, password])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", prosodyctl.display()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for prosodyctl register: {e}"),
        }
    };
    if status.is_some_and(|s| s.success()) {
        return;
    }
    let mut out = String::new();
    for pipe in [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let _ = BufReader::new(pipe).read_to_string(&mut out);
    }
    panic!("prosodyctl register {user} {domain} failed ({status:?}):\n{out}");
}

/// A running Prosody, killed when dropped.
pub struct Prosody {
    child: Child,
    /// Its options, as started.
    pub options: ProsodyOptions,
    dir: PathBuf,
    config: PathBuf,
    prosodyctl: PathBuf,
    dns: DnsServer,
    /// How long `start` took, from writing the config to listening.
    pub startup: Duration,
}

impl Prosody {
    /// Writes the configuration, starts `prosody -F`, and waits until its
    /// listeners accept. [`Skip`] when Prosody or lua-unbound is missing;
    /// panics when it is installed but does not come up (with its log).
    pub fn start(options: ProsodyOptions) -> Result<Prosody, Skip> {
        let t0 = Instant::now();
        assert!(
            matches!(options.log_level.as_str(), "debug" | "info"),
            "log_level {:?}: use \"debug\" or \"info\"",
            options.log_level
        );
        let (prosody_bin, prosodyctl) = check_installed()?;
        let dir = make_dir(&options.domain).expect("temporary folder for Prosody");
        for sub in ["data", "certs", "plugins"] {
            fs::create_dir_all(dir.join(sub)).expect("Prosody folders");
        }
        fs::write(dir.join("plugins/mod_xfed_guard.lua"), GUARD_PLUGIN).expect("write plugin");
        let dns = DnsServer::start(options.zone.clone()).expect("DNS responder on loopback");
        let config = dir.join("prosody.cfg.lua");
        fs::write(&config, render_config(&options, &dir, dns.addr()))
            .expect("write Prosody config");
        for (user, password) in &options.users {
            register_user(&prosodyctl, &config, &dir, user, &options.domain, password);
        }
        let console = fs::File::create(dir.join("console.log")).expect("console log");
        let child = Command::new(&prosody_bin)
            .arg("-F")
            .arg("--config")
            .arg(&config)
            .current_dir(&dir)
            // A pipe only this process holds: mod_xfed_guard stops Prosody
            // when it closes, i.e. when the test process is gone.
            .stdin(Stdio::piped())
            .stdout(console.try_clone().expect("console log"))
            .stderr(console)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", prosody_bin.display()));
        let mut p = Prosody {
            child,
            options,
            dir,
            config,
            prosodyctl,
            dns,
            startup: Duration::ZERO,
        };
        p.wait_ready();
        p.startup = t0.elapsed();
        Ok(p)
    }

    /// Waits until Prosody has started (mod_xfed_guard logs the end of
    /// `server-started`: hosts, listeners, the admin socket and the
    /// resolver are all up) and every listener is open.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + self.options.start_timeout;
        let mut addrs = vec![self.options.c2s_addr(), self.options.s2s_addr()];
        addrs.extend(self.options.s2s_direct_tls_addr());
        if !self.options.components.is_empty() {
            addrs.push(self.options.component_addr());
        }
        let needles = addrs
            .iter()
            .map(|a| format!("[{}]:{}", a.ip(), a.port()))
            .collect::<Vec<_>>();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "prosody {} exited during start-up ({status}):\n{}",
                    self.options.domain,
                    self.diagnostics()
                );
            }
            let log = self.log_text();
            if let Some(line) = log
                .lines()
                .find(|l| l.contains("Failed to open server port"))
            {
                panic!(
                    "prosody {}: {line}\n{}",
                    self.options.domain,
                    self.diagnostics()
                );
            }
            // portmanager logs "Activated service 's2s' on [ip]:port" when a
            // listener is open; "Hello and welcome" comes before them.
            let activated: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("Activated service"))
                .collect();
            let listening = needles
                .iter()
                .all(|n| activated.iter().any(|l| l.contains(n.as_str())));
            let started = log.contains("xfed guard: server started");
            if started && !listening {
                panic!(
                    "prosody {} started without listening on all of {addrs:?}:\n{}",
                    self.options.domain,
                    self.diagnostics()
                );
            }
            if started && addrs.iter().all(|a| crate::is_listening(*a)) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "prosody {} not listening on {addrs:?} after {:?}:\n{}",
                    self.options.domain,
                    self.options.start_timeout,
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The instance's folder (config, data, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn domain(&self) -> &str {
        &self.options.domain
    }

    pub fn s2s_addr(&self) -> SocketAddr {
        self.options.s2s_addr()
    }

    pub fn c2s_addr(&self) -> SocketAddr {
        self.options.c2s_addr()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its DNS responder (to change routes while it runs: `p.dns().update(|z|
    /// { z.route("x.test", addr); })`).
    pub fn dns(&self) -> &DnsServer {
        &self.dns
    }

    /// Every DNS query Prosody made so far.
    pub fn dns_queries(&self) -> Vec<DnsQuery> {
        self.dns.queries()
    }

    /// The whole log file as text (Prosody's own log, at `log_level`).
    pub fn log_text(&self) -> String {
        fs::read(self.dir.join("prosody.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The log, line by line.
    pub fn log_lines(&self) -> Vec<String> {
        self.log_text().lines().map(str::to_string).collect()
    }

    /// What the process printed on stdout/stderr (errors before logging
    /// starts, Lua tracebacks).
    pub fn console_text(&self) -> String {
        fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    /// Waits for a log line containing `needle`; `Err` has the whole log.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        self.wait_log_since(0, needle, timeout)
    }

    /// How many log lines there are now: a mark for
    /// [`wait_log_since`](Self::wait_log_since).
    pub fn log_mark(&self) -> usize {
        self.log_text().lines().count()
    }

    /// Waits for a line containing `needle` after the first `mark` lines
    /// (from [`log_mark`](Self::log_mark)), to wait for something that
    /// happened before too.
    pub fn wait_log_since(
        &self,
        mark: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        crate::poll_log("prosody", || self.log_text(), mark, needle, timeout)
    }

    /// The log and DNS queries, for a failure message.
    pub fn diagnostics(&self) -> String {
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(150)..];
        let queries: Vec<String> = self.dns.queries().iter().map(|q| q.to_string()).collect();
        format!(
            "--- prosody {} ({}) log, last {} of {} lines:\n{}\n--- console:\n{}\n--- DNS queries:\n{}\n---",
            self.options.domain,
            self.dir.display(),
            tail.len(),
            lines.len(),
            tail.join("\n"),
            self.console_text(),
            queries.join("\n")
        )
    }

    /// Runs `prosodyctl --config ... shell <command>` (one admin shell
    /// command, e.g. `s2s:show()`), killed after `timeout`.
    pub fn shell(&self, command: &str, timeout: Duration) -> ShellOutput {
        let t0 = Instant::now();
        let mut child = Command::new(&self.prosodyctl)
            .arg("--config")
            .arg(&self.config)
            .arg("shell")
            .arg(command)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.prosodyctl.display()));
        let readers: Vec<JoinHandle<String>> = [
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
        .map(|pipe| {
            std::thread::spawn(move || {
                let mut s = String::new();
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    s.push_str(&line);
                    s.push('\n');
                }
                s
            })
        })
        .collect();
        let deadline = t0 + timeout;
        let (success, timed_out) = loop {
            match child.try_wait() {
                Ok(Some(status)) => break (status.success(), false),
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break (false, true);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("waiting for prosodyctl: {e}"),
            }
        };
        let mut out = readers.into_iter().map(|r| r.join().unwrap_or_default());
        ShellOutput {
            success,
            timed_out,
            stdout: out.next().unwrap_or_default(),
            stderr: out.next().unwrap_or_default(),
            elapsed: t0.elapsed(),
        }
    }

    /// Sends an XEP-0199 ping from local host `from` to `to` over s2s
    /// (admin shell `xmpp:ping`) and waits for the pong, at most `timeout`.
    pub fn ping_timeout(&self, from: &str, to: &str, timeout: Duration) -> Result<Pong, PingError> {
        let secs = timeout.as_secs().max(1);
        let cmd = format!("xmpp:ping({}, {}, {secs})", lua_str(from), lua_str(to));
        // prosodyctl itself needs a moment to start; the shell's own timeout
        // ends the ping first.
        let out = self.shell(&cmd, timeout + Duration::from_secs(10));
        let reported = out.stdout.lines().find_map(|l| {
            // "Result: pong from b.test in 0.145245s"
            let rest = &l[l.find("pong from ")?..];
            let secs = rest.rsplit(" in ").next()?.trim_end_matches('s');
            secs.parse::<f64>().ok().map(Duration::from_secs_f64)
        });
        match reported {
            Some(reported) if out.success => Ok(Pong {
                elapsed: out.elapsed,
                reported,
                output: out.text(),
            }),
            _ => Err(PingError {
                elapsed: out.elapsed,
                timed_out: out.timed_out,
                output: out.text(),
            }),
        }
    }

    /// [`ping_timeout`](Self::ping_timeout) with 15 s.
    pub fn ping(&self, from: &str, to: &str) -> Result<Pong, PingError> {
        self.ping_timeout(from, to, Duration::from_secs(15))
    }

    /// Injects `stanza` (XML text, e.g. a `<message/>`) as if sent by local
    /// host `from_host`: Prosody routes it, over s2s when it is addressed to
    /// a remote domain. Returns at once; watch the peer for the result.
    pub fn send_stanza(&self, from_host: &str, stanza: &str) -> ShellOutput {
        let lua = format!(
            ">local s, err = require'util.xml'.parse({xml}); \
             if not s then return nil, 'bad stanza: '..tostring(err) end; \
             local host = prosody.hosts[{host}]; \
             if not host then return nil, 'no such local host' end; \
             return prosody.core_post_stanza(host, s) ~= false, 'sent'",
            xml = lua_long_str(stanza),
            host = lua_str(from_host),
        );
        self.shell(&lua, Duration::from_secs(15))
    }

    /// Stops it with SIGTERM (streams are closed cleanly) and waits at most
    /// `timeout`; then SIGKILL. Returns whether it exited on its own.
    pub fn stop(&mut self, timeout: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
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

/// What one `prosodyctl shell` command printed.
#[derive(Debug, Clone)]
pub struct ShellOutput {
    /// Exit status 0: no command error.
    pub success: bool,
    /// Killed after the timeout.
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// Wall-clock time of the whole command, prosodyctl start-up included.
    pub elapsed: Duration,
}

impl ShellOutput {
    /// stdout then stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A ping that was answered.
#[derive(Debug, Clone)]
pub struct Pong {
    /// Wall-clock time of the prosodyctl command (its own start-up, about
    /// 30 ms, included).
    pub elapsed: Duration,
    /// Time from sending the ping to the pong, as Prosody measured it
    /// (includes DNS, TCP, TLS and dialback when no stream existed).
    pub reported: Duration,
    /// The shell's output: session events ("Session ... connected (0.01s)")
    /// and "pong from ... in ...s".
    pub output: String,
}

/// A ping that failed (error reply, timeout, no route).
#[derive(Debug, Clone)]
pub struct PingError {
    pub elapsed: Duration,
    /// prosodyctl itself had to be killed.
    pub timed_out: bool,
    pub output: String,
}

impl fmt::Display for PingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ping failed after {:?}{}: {}",
            self.elapsed,
            if self.timed_out {
                " (prosodyctl killed)"
            } else {
                ""
            },
            self.output.trim()
        )
    }
}

impl std::error::Error for PingError {}

/// The Prosody of the SIP interop labs: `prosody.test` on
/// 127.0.0.`ip` with the certificates of [`write_dialback_certs`] in `dir`
/// (so dialback over TLS), `xfed.test` routed to xfed's s2s port on
/// 127.0.0.1, and the user `bob` (password `bob-secret`).
pub fn prosody_for_xfed(dir: &Path, ip: u8, xfed_s2s_port: u16) -> ProsodyOptions {
    ProsodyOptions::new("prosody.test", IpAddr::V4(Ipv4Addr::new(127, 0, 0, ip)))
        .tls(dir.join("prosody.crt"), dir.join("prosody.key"))
        .cafile(dir.join("ca.pem"))
        .secure_auth(false)
        .require_encryption(true)
        .route("xfed.test", ([127, 0, 0, 1], xfed_s2s_port).into())
        .user("bob", "bob-secret")
}

/// `require_peer` in a function returning `Option`: the value, or return
/// `None` (the test skips) after printing why; a panic under `CI=true`.
#[macro_export]
macro_rules! need {
    ($e:expr) => {
        match $crate::prosody::require_peer($e) {
            Some(v) => v,
            None => return None,
        }
    };
}

/// Writes self-signed certificates for `xfed_domain` (`cert.pem`,
/// `key.pem`) and `prosody_domain` (`prosody.crt`, `prosody.key`) into `dir`,
/// and a `ca.pem` that trusts neither, so both sides fall back to dialback
/// over TLS.
pub fn write_dialback_certs(dir: &Path, xfed_domain: &str, prosody_domain: &str) {
    use xfed_core::tls::testing::{LeafSpec, TestCa, TestCert};
    let xfed = TestCert::self_signed(&LeafSpec::xmpp_server(xfed_domain));
    let prosody = TestCert::self_signed(&LeafSpec::xmpp_server(prosody_domain));
    let files = [
        ("cert.pem", xfed.chain_pem()),
        ("key.pem", xfed.key_pem()),
        ("ca.pem", TestCa::new("unrelated").cert_pem()),
        ("prosody.crt", prosody.chain_pem()),
        ("prosody.key", prosody.key_pem()),
    ];
    for (name, pem) in files {
        std::fs::write(dir.join(name), pem).expect("write test certificate");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        encode_name(&mut q, name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn dns_answers_srv_a_and_nxdomain() {
        let mut zone = Zone::new();
        zone.route("Gw.Test", "127.0.0.4:15269".parse().unwrap());
        let (r, q) = answer(&query("_xmpp-server._tcp.gw.test", 33), &zone).unwrap();
        assert_eq!((q.rcode, q.answers), ("NOERROR", 1));
        assert_eq!(&r[0..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        // SRV rdata ends with port 15269 and the target name.
        let mut tail = 15269u16.to_be_bytes().to_vec();
        encode_name(&mut tail, "gw.test");
        assert!(r.ends_with(&tail));
        let (r, q) = answer(&query("GW.test", 1), &zone).unwrap();
        assert_eq!((q.rcode, q.answers), ("NOERROR", 1));
        assert!(r.ends_with(&[0, 4, 127, 0, 0, 4]));
        let (_, q) = answer(&query("gw.test", 28), &zone).unwrap();
        assert_eq!((q.rcode, q.answers), ("NOERROR", 0));
        let (r, q) = answer(&query("_xmpps-server._tcp.gw.test", 33), &zone).unwrap();
        assert_eq!((q.rcode, q.answers), ("NXDOMAIN", 0));
        assert_eq!(r[3] & 0x0f, 3);
        assert!(answer(&[1, 2, 3], &zone).is_none());
    }

    #[test]
    fn config_has_no_placeholder_left() {
        let o = ProsodyOptions::new("a.test", "127.0.0.1".parse().unwrap())
            .tls("/x/c.pem", "/x/k.pem")
            .cafile("/x/ca\".pem")
            .route("b.test", "127.0.0.2:5999".parse().unwrap())
            .component("gw.a.test", "s")
            .with_direct_tls()
            .module("s2s_bidi");
        let c = render_config(&o, Path::new("/tmp/d"), "127.0.0.1:53".parse().unwrap());
        assert!(c.contains("VirtualHost \"a.test\""), "{c}");
        assert!(c.contains("cafile = \"/x/ca\\\".pem\";"), "{c}");
        assert!(c.contains("forward = \"127.0.0.1@53\""), "{c}");
        assert!(
            c.contains(&format!("s2s_ports = {{ {} }}", o.s2s_port)),
            "{c}"
        );
    }

    #[test]
    fn lua_long_strings_survive_brackets() {
        assert_eq!(lua_long_str("a]]b"), "[=[\na]]b]=]");
    }
}
