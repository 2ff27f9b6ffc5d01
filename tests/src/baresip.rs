//! Debian's baresip (1.0.0, package `baresip-core`, on libre 1.1.0) as a
//! real SIP user agent on loopback, headless.
//!
//! [`Baresip::start`] writes a configuration folder (`config`, `accounts`,
//! `contacts`) into a fresh temporary folder and runs
//!
//! ```text
//! baresip -f DIR -s -t <lifetime>
//! ```
//!
//! with stdin closed: `-s` traces every SIP message on stdout, `-t` ends it
//! by itself after [`BaresipOptions::lifetime`] even when the test process
//! is gone. The configuration loads only `account`, `contact`, `presence`
//! and `ctrl_tcp`: no audio or video driver (so nothing needs a sound
//! card), no `stdio` (it cannot poll a stdin that is not a terminal). SIP
//! listens on 127.0.0.1 only (`sip_listen`, and `net_interface` so that
//! its Contact says 127.0.0.1), on a free port over UDP and TCP and on the
//! next one over TLS (always on in this version).
//!
//! - The account is `<sip:USER@DOMAIN>;auth_pass=...;outbound=...`: every
//!   request goes to xfed's SIP listener (a loose route), REGISTER every
//!   `regint` seconds, PUBLISH every `pubint` seconds (the `presence`
//!   module: `open` after REGISTER succeeds, a bodyless refresh with
//!   `SIP-If-Match` at 90 % of the interval, `Expires: 0` when it quits).
//! - Each contact is `<URI>;presence=p2p`: the `presence` module
//!   SUBSCRIBEs to it (Event presence, Expires 600) a second after start
//!   and reads the NOTIFYs' PIDF: `<basic>open</basic>` is Online, and the
//!   literal `<rpid:away/>` (Offline), `<rpid:busy/>` or
//!   `<rpid:on-the-phone/>` (Busy) override it; no body is Unknown.
//! - Commands go through `ctrl_tcp` (JSON in netstrings on a loopback TCP
//!   port): [`Baresip::command`] (`presence_online`, `presence_offline`,
//!   `contacts`, `quit`), [`Baresip::contact_status`] reads a contact's
//!   presence as `contacts` prints it.
//! - [`Baresip::log_text`] is its stdout without colours;
//!   [`Baresip::sip_trace`] reads the `-s` trace back into messages with
//!   xfed's own parser.
//!
//! Quirks of this version, seen against xfed: libre 1.1.0 answers only MD5
//! digest challenges, and a 401/407 in which any challenge names another
//! algorithm fails as a whole ("Function not implemented"), whatever the
//! order, so the test sets `[sip] digest_algorithms = ["MD5"]`); it
//! PUBLISHes `<basic>unknown</basic>` 10
//! ms after start, before registering; it ignores 423 (`pubint` below 60
//! never publishes).
//!
//! `XFED_BARESIP` names another baresip binary, `XFED_BARESIP_MODULES` its
//! module folder (default `/usr/lib/baresip/modules`). Without them,
//! [`Baresip::start`] gives a [`Skip`].

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xfed_core::sip::{parse_datagram, Limits, Message};

use crate::free_port;
use crate::prosody::{find_peer_binary, Skip};

/// The modules the configuration loads, each with its kind of line:
/// `module_tmp` (unloaded once the accounts exist) before `module_app`
/// (the applications, which need the accounts' user agents).
const MODULES: [(&str, &str); 4] = [
    ("module", "ctrl_tcp.so"),
    ("module_tmp", "account.so"),
    ("module_app", "contact.so"),
    ("module_app", "presence.so"),
];

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The baresip binary: `XFED_BARESIP`, else `baresip` on `PATH`.
pub fn binary() -> Result<PathBuf, Skip> {
    find_peer_binary("XFED_BARESIP", "baresip", &[], "baresip-core")
}

/// The module folder, with every module the configuration loads.
pub fn module_dir() -> Result<PathBuf, Skip> {
    let dir = std::env::var_os("XFED_BARESIP_MODULES")
        .map_or_else(|| PathBuf::from("/usr/lib/baresip/modules"), PathBuf::from);
    match MODULES
        .iter()
        .map(|(_, m)| m)
        .find(|m| !dir.join(m).is_file())
    {
        None => Ok(dir),
        Some(m) => Err(Skip(format!(
            "baresip module {} is missing (apt-get install baresip-core)",
            dir.join(m).display()
        ))),
    }
}

/// What one baresip instance is.
#[derive(Debug, Clone)]
pub struct BaresipOptions {
    /// The account's user and domain: `sip:USER@DOMAIN`.
    pub user: String,
    /// See `user`.
    pub domain: String,
    /// Digest password (`auth_pass`).
    pub password: String,
    /// Where every request goes (`outbound`, over UDP): xfed's SIP
    /// listener.
    pub outbound: SocketAddr,
    /// SIP URIs watched (`;presence=p2p` contacts).
    pub contacts: Vec<String>,
    /// REGISTER interval in seconds (`regint`).
    pub regint: u32,
    /// PUBLISH interval in seconds (`pubint`); baresip refreshes at 90 %.
    pub pubint: u32,
    /// `-t`: baresip quits by itself after this.
    pub lifetime: Duration,
}

impl BaresipOptions {
    /// `user@domain` with `password`, through `outbound`, no contacts,
    /// REGISTER and PUBLISH every 600 s, 300 s to live.
    pub fn new(user: &str, domain: &str, password: &str, outbound: SocketAddr) -> Self {
        BaresipOptions {
            user: user.into(),
            domain: domain.into(),
            password: password.into(),
            outbound,
            contacts: Vec::new(),
            regint: 600,
            pubint: 600,
            lifetime: Duration::from_secs(300),
        }
    }

    /// Watches `uri`'s presence.
    pub fn contact(mut self, uri: &str) -> Self {
        self.contacts.push(uri.into());
        self
    }

    /// `pubint` (xfed's minimum is 60).
    pub fn pubint(mut self, seconds: u32) -> Self {
        self.pubint = seconds;
        self
    }

    /// The account's address of record.
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }
}

/// A contact's presence as baresip shows it (`contacts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactStatus {
    /// Nothing known (no NOTIFY body yet, or the subscription ended).
    Unknown,
    /// `open`.
    Online,
    /// `closed`, or `<rpid:away/>`.
    Offline,
    /// `<rpid:busy/>` or `<rpid:on-the-phone/>`.
    Busy,
}

impl ContactStatus {
    const ALL: [(ContactStatus, &'static str); 4] = [
        (ContactStatus::Unknown, "Unknown"),
        (ContactStatus::Online, "Online"),
        (ContactStatus::Offline, "Offline"),
        (ContactStatus::Busy, "Busy"),
    ];

    /// The word baresip prints.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("?", |(_, w)| w)
    }
}

/// One SIP message from baresip's `-s` trace.
#[derive(Debug, Clone)]
pub struct Traced {
    /// Sent by baresip (else received).
    pub sent: bool,
    /// The trace's `UDP a -> b` line.
    pub route: String,
    /// The message, read with xfed's parser.
    pub message: Message,
}

impl Traced {
    /// A request of `method`.
    pub fn is_request(&self, method: &str) -> bool {
        matches!(&self.message, Message::Request(r) if r.method.as_str() == method)
    }

    /// A response's status.
    pub fn status(&self) -> Option<u16> {
        match &self.message {
            Message::Response(r) => Some(r.status),
            Message::Request(_) => None,
        }
    }

    /// `(sequence number, method)` of its CSeq.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let c = self.message.headers().cseq().ok()?;
        Some((c.seq, c.method.as_str().to_owned()))
    }

    /// Its Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.message.headers().call_id().ok()
    }
}

/// A running baresip, killed when dropped.
pub struct Baresip {
    child: Child,
    dir: PathBuf,
    sip_port: u16,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    ctrl: Option<TcpStream>,
    ctrl_in: Option<mpsc::Receiver<Value>>,
    /// Events ctrl_tcp reported (JSON objects with `"event": true`).
    events: Vec<Value>,
    token: u32,
}

/// Collects everything `pipe` gives into `buf`, from a thread.
fn collect(mut pipe: impl Read + Send + 'static, buf: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A port whose next one is free too, both handed out to this process
/// only: baresip listens for SIP over UDP and TCP on the one it is given
/// and over TLS on the next, and nothing in its configuration turns TLS
/// off.
fn free_port_pair() -> u16 {
    let mut last = free_port();
    loop {
        let next = free_port();
        if next == last.wrapping_add(1) {
            return last;
        }
        last = next;
    }
}

/// Reads netstrings (`LEN:DATA,`) from ctrl_tcp and hands on each JSON
/// object.
fn read_netstrings(mut s: TcpStream, tx: mpsc::Sender<Value>) {
    std::thread::spawn(move || {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(colon) = buf.iter().position(|&b| b == b':') {
                let Some(len) = std::str::from_utf8(&buf[..colon])
                    .ok()
                    .and_then(|l| l.parse::<usize>().ok())
                else {
                    return; // not a netstring: give up on the stream
                };
                if buf.len() < colon + 1 + len + 1 {
                    break;
                }
                let data = &buf[colon + 1..colon + 1 + len];
                let v = serde_json::from_slice(data).unwrap_or_else(
                    |_| json!({ "unparsed": String::from_utf8_lossy(data).into_owned() }),
                );
                buf.drain(..colon + 1 + len + 1);
                if tx.send(v).is_err() {
                    return;
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
}

impl Baresip {
    /// Writes the configuration and starts baresip; returns once it says
    /// it is ready and its control port accepts the connection (at most
    /// 20 s). [`Skip`] when baresip or a module is missing.
    pub fn start(options: BaresipOptions) -> Result<Baresip, Skip> {
        let bin = binary()?;
        let modules = module_dir()?;
        let dir = std::env::temp_dir().join(format!(
            "xfed-baresip-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("baresip folder");
        let sip_port = free_port_pair();
        let ctrl_port = free_port();
        write_config(&dir, &options, &modules, sip_port, ctrl_port);
        let mut child = Command::new(&bin)
            .arg("-f")
            .arg(&dir)
            .arg("-s")
            .arg("-t")
            .arg(options.lifetime.as_secs().max(1).to_string())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().expect("stdout pipe"), stdout.clone());
        collect(child.stderr.take().expect("stderr pipe"), stderr.clone());
        let mut b = Baresip {
            child,
            dir,
            sip_port,
            stdout,
            stderr,
            ctrl: None,
            ctrl_in: None,
            events: Vec::new(),
            token: 0,
        };
        b.wait_log("baresip is ready.", Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("baresip did not start: {e}"));
        let ctrl_addr = SocketAddr::from(([127, 0, 0, 1], ctrl_port));
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match TcpStream::connect_timeout(&ctrl_addr, Duration::from_secs(1)) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "baresip's ctrl_tcp at {ctrl_addr}: {e}\n{}",
                        b.diagnostics()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let (tx, rx) = mpsc::channel();
        read_netstrings(stream.try_clone().expect("clone ctrl stream"), tx);
        b.ctrl = Some(stream);
        b.ctrl_in = Some(rx);
        Ok(b)
    }

    /// The folder with the configuration.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where baresip's SIP listens (UDP and TCP).
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    /// Everything it wrote to stdout so far (log lines and the SIP
    /// trace), without colours.
    pub fn log_text(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(&self.stdout.lock().unwrap()))
    }

    /// Waits for a line of its log containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        crate::poll_log("baresip", || self.log_text(), 0, needle, timeout)
    }

    /// Runs a command through ctrl_tcp (`presence_online`, `contacts`,
    /// ...) and returns its output; `Err` with the output when baresip
    /// says it failed, or when no answer came within 10 s.
    pub fn command(&mut self, command: &str, params: Option<&str>) -> Result<String, String> {
        self.token += 1;
        let token = format!("t{}", self.token);
        let mut msg = json!({ "command": command, "token": token });
        if let Some(p) = params {
            msg["params"] = json!(p);
        }
        let body = msg.to_string();
        let framed = format!("{}:{},", body.len(), body);
        self.ctrl
            .as_mut()
            .expect("ctrl_tcp connected")
            .write_all(framed.as_bytes())
            .map_err(|e| format!("{command}: ctrl_tcp write: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("{command}: no answer from ctrl_tcp within 10 s"))?;
            let v = self
                .ctrl_in
                .as_ref()
                .expect("ctrl_tcp connected")
                .recv_timeout(left)
                .map_err(|e| format!("{command}: ctrl_tcp: {e}"))?;
            if v.get("response").is_some() && v["token"] == json!(token) {
                let data = strip_ansi(v["data"].as_str().unwrap_or_default());
                return if v["ok"] == json!(true) {
                    Ok(data)
                } else {
                    Err(format!("{command}: {data}"))
                };
            }
            self.events.push(v);
        }
    }

    /// `uri`'s presence as the `contacts` command shows it.
    pub fn contact_status(&mut self, uri: &str) -> Result<ContactStatus, String> {
        let list = self.command("contacts", None)?;
        let line = list
            .lines()
            .find(|l| l.contains(&format!("<{uri}>")))
            .ok_or_else(|| format!("{uri} is not in baresip's contacts:\n{list}"))?;
        ContactStatus::ALL
            .iter()
            .find(|(_, word)| line.split_whitespace().any(|w| w == *word))
            .map(|(s, _)| *s)
            .ok_or_else(|| format!("no presence status for {uri} in {line:?}"))
    }

    /// Polls `contacts` until `uri` shows `want`; `Err` says what it showed
    /// last.
    pub fn wait_contact_status(
        &mut self,
        uri: &str,
        want: ContactStatus,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let t0 = Instant::now();
        loop {
            let now = self.contact_status(uri)?;
            if now == want {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > timeout {
                return Err(format!(
                    "baresip shows {uri} {} after {timeout:?}, not {}",
                    now.as_str(),
                    want.as_str()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The events ctrl_tcp reported so far (`class`, `type`, `param`...).
    pub fn events(&mut self) -> &[Value] {
        if let Some(rx) = &self.ctrl_in {
            self.events.extend(rx.try_iter());
        }
        &self.events
    }

    /// Every SIP message in the `-s` trace so far, in order.
    pub fn sip_trace(&self) -> Vec<Traced> {
        let raw = self.stdout.lock().unwrap().clone();
        parse_trace(&raw, self.sip_port)
    }

    /// Sends `quit` and waits (at most `timeout`) for the process to end;
    /// returns whether it ended by itself.
    pub fn quit(&mut self, timeout: Duration) -> bool {
        // The answer may not come: baresip closes the connection as it
        // stops.
        let _ = self.command("quit", None);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Its stdout and stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- baresip ({}):\n{}\n--- baresip stderr:\n{}",
            self.dir.display(),
            self.log_text(),
            String::from_utf8_lossy(&self.stderr.lock().unwrap())
        )
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("XFED_KEEP_PEERS").is_some() {
            eprintln!("{} (kept)", self.diagnostics());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Writes `config`, `accounts` and `contacts` into `dir`.
fn write_config(dir: &Path, o: &BaresipOptions, modules: &Path, sip_port: u16, ctrl_port: u16) {
    let mut config = format!(
        "poll_method\tepoll\n\
         sip_listen\t127.0.0.1:{sip_port}\n\
         net_interface\t127.0.0.1\n\
         module_path\t{}\n",
        modules.display()
    );
    for (kind, m) in MODULES {
        config.push_str(&format!("{kind}\t{m}\n"));
    }
    config.push_str(&format!("ctrl_tcp_listen\t127.0.0.1:{ctrl_port}\n"));
    fs::write(dir.join("config"), config).expect("write baresip config");
    let account = format!(
        "<{}>;auth_pass={};outbound=\"sip:{};transport=udp\";regint={};pubint={}\n",
        o.aor(),
        o.password,
        o.outbound,
        o.regint,
        o.pubint
    );
    fs::write(dir.join("accounts"), account).expect("write baresip accounts");
    let contacts: String = o
        .contacts
        .iter()
        .map(|c| format!("<{c}>;presence=p2p\n"))
        .collect();
    fs::write(dir.join("contacts"), contacts).expect("write baresip contacts");
}

/// Reads the `-s` trace out of baresip's stdout: each message is
/// `ESC[36;1m#\n`, `PROTO src -> dst\n`, the message's bytes as sent or
/// received, then `ESC[;m\n`. Messages whose source port is `port` were
/// sent by baresip.
pub fn parse_trace(raw: &[u8], port: u16) -> Vec<Traced> {
    const START: &[u8] = b"\x1b[36;1m#\n";
    const END: &[u8] = b"\x1b[;m";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(at) = find(rest, START) {
        rest = &rest[at + START.len()..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            break;
        };
        let route = String::from_utf8_lossy(&rest[..nl]).into_owned();
        let body = &rest[nl + 1..];
        let Some(end) = find(body, END) else {
            break; // still being written
        };
        let sent = route
            .split_whitespace()
            .nth(1)
            .is_some_and(|src| src.ends_with(&format!(":{port}")));
        if let Ok(message) = parse_datagram(&body[..end], &Limits::default()) {
            out.push(Traced {
                sent,
                route,
                message,
            });
        }
        rest = &body[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_and_colours_are_read_back() {
        let raw = b"baresip is ready.\n\x1b[36;1m#\nUDP 127.0.0.1:5070 -> 127.0.0.1:5060\n\
PUBLISH sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\nTo: <sip:a@b>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c\r\n\
CSeq: 2 PUBLISH\r\nEvent: presence\r\nContent-Length: 3\r\n\r\nabc\x1b[;m\n\
\x1b[36;1m#\nUDP 127.0.0.1:5060 -> 127.0.0.1:5070\nSIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nTo: <sip:a@b>;tag=2\r\n\
From: <sip:a@b>;tag=1\r\nCall-ID: c\r\nCSeq: 2 PUBLISH\r\nContent-Length: 0\r\n\r\n\x1b[;m\n\
\x1b[36;1m#\nUDP 127.0.0.1:5070 -> 127.0.0.1:5060\nSUBSCRIBE";
        let t = parse_trace(raw, 5070);
        assert_eq!(t.len(), 2, "the unfinished third is left out");
        assert!(t[0].sent && t[0].is_request("PUBLISH"));
        assert_eq!(t[0].message.body(), b"abc");
        assert!(!t[1].sent);
        assert_eq!(t[1].status(), Some(200));
        assert_eq!(t[1].cseq(), Some((2, "PUBLISH".into())));
        assert_eq!(
            strip_ansi("\x1b[32mOnline\x1b[;m \"Bob\" <sip:bob@x>"),
            "Online \"Bob\" <sip:bob@x>"
        );
    }
}
