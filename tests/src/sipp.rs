//! sipp (Debian's `sip-tester`, 3.6.1) as a SIP user agent in interop
//! tests and benchmarks.
//!
//! [`Sipp::start`] copies the scenarios of `tests/peers/sipp/` into a fresh
//! folder and runs `sipp` there without a terminal (`-nostdin`), with a
//! global `-timeout` so that it always ends by itself, and with its traces
//! on (`-trace_msg -trace_err -trace_screen -trace_logs`), which
//! [`Sipp::wait`] reads back into a [`SippRun`]: exit status, successful
//! and failed calls, every SIP message sent and received, the scenario's
//! `<log>` lines. The process is killed when the [`Sipp`] is dropped.
//!
//! sipp 3.6.1 notes (see also the comments in the scenarios):
//! - digest: only MD5; `[authentication]` uses `-au`/`-ap`, and its digest
//!   uri is `sip:` + `-auth_uri`, which must be the Request-URI for xfed;
//! - the status codes a scenario sends or expects are checked when it
//!   loads, so they cannot come from `-key`s;
//! - a request whose Call-ID matches no call goes to the `-oocsf` scenario;
//!   it does not count in the call statistics.
//!
//! `XFED_SIPP` names another sipp binary. Without one, [`Sipp::start`]
//! gives a [`Skip`].

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::prosody::{find_peer_binary, Skip};

/// The scenarios, by file name.
pub const SCENARIOS: [(&str, &str); 6] = [
    (
        "uas_register_receive.xml",
        include_str!("../peers/sipp/uas_register_receive.xml"),
    ),
    (
        "uas_receive_message.xml",
        include_str!("../peers/sipp/uas_receive_message.xml"),
    ),
    (
        "uas_receive_message_busy.xml",
        include_str!("../peers/sipp/uas_receive_message_busy.xml"),
    ),
    (
        "uac_message.xml",
        include_str!("../peers/sipp/uac_message.xml"),
    ),
    (
        "uac_message_error.xml",
        include_str!("../peers/sipp/uac_message_error.xml"),
    ),
    (
        "uac_bench_message.xml",
        include_str!("../peers/sipp/uac_bench_message.xml"),
    ),
];

/// The sipp binary: `XFED_SIPP`, else `sipp` on `PATH` (or in /usr/bin).
pub fn binary() -> Result<PathBuf, Skip> {
    find_peer_binary("XFED_SIPP", "sipp", &["/usr/bin"], "sip-tester")
}

/// The SIP transport sipp uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `-t u1`: one UDP socket.
    Udp,
    /// `-t t1`: one TCP connection.
    Tcp,
}

impl Transport {
    fn flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }

    /// The Contact parameter naming it (`;transport=tcp`, or nothing for
    /// UDP).
    pub fn contact_params(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        }
    }
}

/// One sipp run.
#[derive(Debug, Clone)]
pub struct SippOptions {
    /// A file name of [`SCENARIOS`].
    pub scenario: String,
    /// `-oocsf`: the scenario for requests outside any call.
    pub oocsf: Option<String>,
    /// The peer (xfed's SIP listener).
    pub remote: SocketAddr,
    pub transport: Transport,
    /// `-i`/`-p`: where sipp listens and sends from.
    pub local: SocketAddr,
    /// `-key NAME VALUE`: the scenario's `[NAME]` keywords.
    pub keys: Vec<(String, String)>,
    /// `-au`, `-ap`, `-auth_uri` (without `sip:`).
    pub auth: Option<(String, String, String)>,
    /// `-m`: calls before sipp ends.
    pub calls: u32,
    /// `-r`: calls per second (`-rp 1000`).
    pub rate: Option<u32>,
    /// `-l`: most calls at once.
    pub limit: Option<u32>,
    /// `-timeout`: sipp ends after this whatever happens (and then the
    /// run fails, `-timeout_error`).
    pub timeout: Duration,
    /// `-trace_msg` (every message into a file): on by default, off for
    /// load runs.
    pub trace_msg: bool,
    /// More arguments, e.g. `-trace_rtt` (read the file back with
    /// [`Sipp::trace_file`]).
    pub extra_args: Vec<String>,
}

impl SippOptions {
    /// `scenario` against `remote` over `transport`, from 127.0.0.1 at a
    /// free port, one call, 30 s at most, messages traced.
    pub fn new(scenario: &str, remote: SocketAddr, transport: Transport) -> SippOptions {
        SippOptions {
            scenario: scenario.into(),
            oocsf: None,
            remote,
            transport,
            local: SocketAddr::from(([127, 0, 0, 1], crate::free_port())),
            keys: Vec::new(),
            auth: None,
            calls: 1,
            rate: None,
            limit: None,
            timeout: Duration::from_secs(30),
            trace_msg: true,
            extra_args: Vec::new(),
        }
    }

    /// The benches' load: `calls` MESSAGEs from alice@xfed.test to
    /// bob@prosody.test over TCP (`uac_bench_message.xml`, no digest: a
    /// trusted source), `rate` a second, at most 2,000 waiting for their
    /// answer, `run` in each body, messages not traced.
    pub fn load_to_bob(remote: SocketAddr, run: &str, calls: u32, rate: Option<u32>) -> Self {
        let mut o = SippOptions::new("uac_bench_message.xml", remote, Transport::Tcp)
            .key("ruri", "bob@prosody.test")
            .key("from_user", "alice")
            .key("domain", "xfed.test")
            .key("run", run);
        o.calls = calls;
        o.rate = rate;
        o.limit = Some(2_000);
        o.trace_msg = false;
        o
    }

    pub fn key(mut self, name: &str, value: &str) -> Self {
        self.keys.push((name.into(), value.into()));
        self
    }

    pub fn oocsf(mut self, scenario: &str) -> Self {
        self.oocsf = Some(scenario.into());
        self
    }

    /// Digest credentials; `auth_uri` is the digest uri without `sip:`.
    pub fn auth(mut self, user: &str, password: &str, auth_uri: &str) -> Self {
        self.auth = Some((user.into(), password.into(), auth_uri.into()));
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn args(&self) -> Vec<String> {
        let mut a = vec![
            self.remote.to_string(),
            "-sf".into(),
            self.scenario.clone(),
            "-t".into(),
            self.transport.flag().into(),
            "-i".into(),
            self.local.ip().to_string(),
            "-p".into(),
            self.local.port().to_string(),
            "-m".into(),
            self.calls.to_string(),
            "-nostdin".into(),
            "-timeout".into(),
            format!("{}s", self.timeout.as_secs().max(1)),
            "-timeout_error".into(),
            "-trace_err".into(),
            "-trace_screen".into(),
            "-trace_logs".into(),
        ];
        if self.trace_msg {
            a.push("-trace_msg".into());
        }
        if let Some(o) = &self.oocsf {
            a.extend(["-oocsf".into(), o.clone()]);
        }
        if let Some((user, password, uri)) = &self.auth {
            a.extend([
                "-au".into(),
                user.clone(),
                "-ap".into(),
                password.clone(),
                "-auth_uri".into(),
                uri.clone(),
            ]);
        }
        if let Some(r) = self.rate {
            a.extend(["-r".into(), r.to_string(), "-rp".into(), "1000".into()]);
        }
        if let Some(l) = self.limit {
            a.extend(["-l".into(), l.to_string()]);
        }
        for (k, v) in &self.keys {
            a.extend(["-key".into(), k.clone(), v.clone()]);
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running sipp, killed when dropped.
pub struct Sipp {
    child: Child,
    dir: PathBuf,
    options: SippOptions,
    output: Arc<Mutex<String>>,
    started: Instant,
}

impl Sipp {
    /// Starts sipp with `options` in a fresh folder. [`Skip`] when sipp is
    /// not installed.
    pub fn start(options: SippOptions) -> Result<Sipp, Skip> {
        let bin = binary()?;
        let dir = std::env::temp_dir().join(format!(
            "xfed-sipp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("sipp folder");
        for (name, text) in SCENARIOS {
            fs::write(dir.join(name), text).expect("write scenario");
        }
        assert!(
            dir.join(&options.scenario).is_file(),
            "unknown scenario {}",
            options.scenario
        );
        let mut child = Command::new(&bin)
            .args(options.args())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Skip(format!("cannot run {}: {e}", bin.display())))?;
        // sipp redraws its screen on stdout; keep only the end.
        let output = Arc::new(Mutex::new(String::new()));
        let sink = output.clone();
        crate::on_output_lines(&mut child, move |line| {
            let mut o = sink.lock().unwrap();
            o.push_str(&line);
            o.push('\n');
            if o.len() > 64 * 1024 {
                let cut = o.len() - 32 * 1024;
                let cut = (cut..o.len()).find(|&i| o.is_char_boundary(i)).unwrap_or(0);
                o.replace_range(..cut, "");
            }
            true
        });
        Ok(Sipp {
            child,
            dir,
            options,
            output,
            started: Instant::now(),
        })
    }

    /// Where sipp listens.
    pub fn local(&self) -> SocketAddr {
        self.options.local
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The scenario's `<log>` lines so far (`-trace_logs`).
    pub fn logs(&self) -> String {
        self.read_trace("logs")
    }

    /// Waits (at most `timeout`) for a `<log>` line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.logs().lines().find(|l| l.contains(needle)) {
                return Some(l.to_string());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn read_trace(&self, kind: &str) -> String {
        self.trace_file(&format!("{kind}.log"))
    }

    /// The text of sipp's file `<scenario>_<pid>_<suffix>` (e.g.
    /// `rtt.csv` with `-trace_rtt`); empty when there is none.
    pub fn trace_file(&self, suffix: &str) -> String {
        let stem = self.options.scenario.trim_end_matches(".xml");
        let name = format!("{stem}_{}_{suffix}", self.child.id());
        fs::read(self.dir.join(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits for sipp to end, at most `timeout` (then kills it), and reads
    /// its traces.
    pub fn wait(&mut self, timeout: Duration) -> SippRun {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.code(),
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("waiting for sipp: {e}"),
            }
        };
        let elapsed = self.started.elapsed();
        // The pipes close with the process; let the readers finish.
        std::thread::sleep(Duration::from_millis(20));
        let screen = self.read_trace("screen");
        let counter = |name: &str| {
            screen
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .and_then(|l| l.rsplit('|').next())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        SippRun {
            exit: status,
            killed: status.is_none(),
            elapsed,
            successful: counter("Successful call"),
            failed: counter("Failed call"),
            messages: parse_messages(&self.read_trace("messages")),
            logs: self.read_trace("logs"),
            errors: self.read_trace("errors"),
            screen,
            output: self.output.lock().unwrap().clone(),
            args: self.options.args().join(" "),
        }
    }

    /// The folder with the scenarios and traces.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("XFED_KEEP_PEERS").is_some() {
            eprintln!(
                "--- sipp {} (kept {}):\n{}\n{}",
                self.options.scenario,
                self.dir.display(),
                self.read_trace("errors"),
                self.read_trace("logs")
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// One SIP message from sipp's message trace.
#[derive(Debug, Clone)]
pub struct Traced {
    /// Sent by sipp (else received).
    pub sent: bool,
    /// The whole message.
    pub text: String,
}

impl Traced {
    /// The start line.
    pub fn start_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }

    /// A request with this method (`MESSAGE`, `REGISTER`).
    pub fn is_request(&self, method: &str) -> bool {
        self.start_line().starts_with(&format!("{method} "))
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        let l = self.start_line().strip_prefix("SIP/2.0 ")?;
        l.get(..3)?.parse().ok()
    }

    /// The first header `name` (case-insensitive; compact forms are not
    /// expanded), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).into_iter().next()
    }

    /// Every header `name`, in order, as [`Traced::header`] reads them.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.text
            .lines()
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
            .collect()
    }

    /// The body (after the blank line), as traced.
    pub fn body(&self) -> &str {
        self.text
            .split_once("\r\n\r\n")
            .or_else(|| self.text.split_once("\n\n"))
            .map_or("", |(_, b)| b)
    }
}

/// Splits a `-trace_msg` file into messages.
fn parse_messages(trace: &str) -> Vec<Traced> {
    let mut out = Vec::new();
    let mut current: Option<(bool, String)> = None;
    let mut lines = trace.split('\n').peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("-----------------------------------------------") {
            if let Some((sent, text)) = current.take() {
                out.push(Traced {
                    sent,
                    text: trim_trace(&text),
                });
            }
            // The next line says what it is.
            let what = lines.next().unwrap_or("");
            let sent = what.contains("message sent");
            if what.contains("message sent") || what.contains("message received") {
                current = Some((sent, String::new()));
            }
            continue;
        }
        if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    if let Some((sent, text)) = current {
        out.push(Traced {
            sent,
            text: trim_trace(&text),
        });
    }
    out
}

/// A traced message without the blank lines sipp adds around it.
fn trim_trace(text: &str) -> String {
    text.trim_start_matches('\n')
        .trim_end_matches(['\n', '\r'])
        .to_string()
}

/// What one sipp run did.
#[derive(Debug, Clone)]
pub struct SippRun {
    /// The exit status (0: every call succeeded; 1: some failed; 255:
    /// fatal error or timeout); `None` when it had to be killed.
    pub exit: Option<i32>,
    pub killed: bool,
    pub elapsed: Duration,
    pub successful: u64,
    pub failed: u64,
    pub messages: Vec<Traced>,
    pub logs: String,
    pub errors: String,
    pub screen: String,
    pub output: String,
    pub args: String,
}

impl SippRun {
    /// Every call succeeded and sipp ended by itself.
    pub fn ok(&self) -> bool {
        self.exit == Some(0)
    }

    /// The messages sipp received.
    pub fn received(&self) -> impl Iterator<Item = &Traced> {
        self.messages.iter().filter(|m| !m.sent)
    }

    /// The messages sipp sent.
    pub fn sent(&self) -> impl Iterator<Item = &Traced> {
        self.messages.iter().filter(|m| m.sent)
    }

    /// Everything about the run, for a failure message.
    pub fn report(&self) -> String {
        let messages: Vec<String> = self
            .messages
            .iter()
            .map(|m| {
                format!(
                    "{} {}",
                    if m.sent { ">>> sent" } else { "<<< received" },
                    m.text
                )
            })
            .collect();
        format!(
            "--- sipp {}\nexit {:?} after {:?}, {} successful, {} failed\n--- errors:\n{}\n--- logs:\n{}\n--- messages:\n{}\n--- screen:\n{}",
            self.args,
            self.exit,
            self.elapsed,
            self.successful,
            self.failed,
            self.errors,
            self.logs,
            messages.join("\n"),
            self.screen
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_is_split_into_messages() {
        let trace = "----------------------------------------------- 2026-12-01 18:39:09.760499\n\
UDP message sent (20 bytes):\n\nMESSAGE sip:bob@prosody.test SIP/2.0\nFrom: <sip:a@b>;tag=1\nContent-Type: text/plain\nContent-Length: 5\n\nhello\n\n\
----------------------------------------------- 2026-12-01 18:39:09.761624\n\
UDP message received [413] bytes :\n\nSIP/2.0 202 Accepted\nCSeq: 1 MESSAGE\n\n\n";
        let m = parse_messages(trace);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].sent && m[0].is_request("MESSAGE"));
        assert_eq!(m[0].header("content-type"), Some("text/plain"));
        assert_eq!(m[0].body(), "hello");
        assert!(!m[1].sent);
        assert_eq!(m[1].status(), Some(202));
    }
}

/// The SIP half of an xfed configuration for interop tests: see
/// [`write_xfed_config`].
#[derive(Debug, Clone)]
pub struct XfedSip {
    /// The local domain (XMPP and SIP), e.g. `xfed.test`; also the digest
    /// realm.
    pub domain: String,
    /// The s2s listener's port on 127.0.0.1.
    pub s2s_port: u16,
    /// The SIP listeners' port on 127.0.0.1 (UDP and TCP).
    pub sip_port: u16,
    /// `[[sip.account]]`s: (user, password), written as MD5 HA1s by
    /// [`write_xfed_config`], so that xfed offers MD5 only (all sipp can
    /// do); [`write_xfed_config_with`] can write them otherwise.
    pub accounts: Vec<(String, String)>,
    /// `[sip] trusted`.
    pub trusted: Vec<String>,
    /// `[sip] trust_udp`: the trusted addresses are trusted over UDP too.
    pub trust_udp: bool,
    /// `(domain, connect)`: federated partners, TLS required, dialback.
    pub partners: Vec<(String, SocketAddr)>,
    /// `sasl` of the partners: `not-supported` (dialback only), `optional`
    /// (EXTERNAL when offered, dialback after a refusal) or `required`
    /// (EXTERNAL only: `dialback = false`).
    pub partner_sasl: &'static str,
}

impl XfedSip {
    /// `[listen] sip`'s UDP address.
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }
}

/// How [`write_xfed_config_with`] writes the accounts' credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// An MD5 `ha1` each: xfed then offers MD5 alone, all sipp answers.
    #[default]
    Md5Ha1,
    /// A plain `password` each, and `[sip] digest_algorithms` set to these
    /// names in this order (`None`: the key is left out, xfed's default).
    Password {
        /// The value of `digest_algorithms`, such as `["MD5", "SHA-256"]`.
        digest_algorithms: Option<Vec<String>>,
    },
}

/// Writes `xfed.toml` into `dir` (which holds cert.pem, key.pem and
/// ca.pem): registrar mode with `sip.accounts` as MD5 HA1s, an SQLite
/// store in `dir`, loopback listeners, federated partners reached at
/// their `connect`.
pub fn write_xfed_config(dir: &Path, sip: &XfedSip) -> PathBuf {
    write_xfed_config_with(dir, sip, &Credentials::Md5Ha1)
}

/// [`write_xfed_config`] with the accounts written as `credentials` says.
pub fn write_xfed_config_with(dir: &Path, sip: &XfedSip, credentials: &Credentials) -> PathBuf {
    use xfed_core::registrar::digest::{ha1, Algorithm};
    let domain = &sip.domain;
    let quoted = |v: &[String]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut toml = format!(
        "[gateway]\ndomains = [\"{domain}\"]\ndialback_secret = \"sip-interop-test-secret-{domain}\"\n\
         federation = \"allow-list\"\nstream_establishment_timeout = \"20s\"\n\n\
         [listen]\ns2s = [\"127.0.0.1:{s2s}\"]\ns2s_direct_tls = []\n\
         sip = [\"udp:127.0.0.1:{port}\", \"tcp:127.0.0.1:{port}\"]\nmetrics = false\n\n\
         [tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\ntrust = \"ca.pem\"\n\n\
         [sip]\nmode = \"registrar\"\ntrusted = [{trusted}]\ntrust_udp = {trust_udp}\n",
        s2s = sip.s2s_port,
        port = sip.sip_port,
        trusted = quoted(&sip.trusted),
        trust_udp = sip.trust_udp,
    );
    if let Credentials::Password {
        digest_algorithms: Some(list),
    } = credentials
    {
        toml.push_str(&format!("digest_algorithms = [{}]\n", quoted(list)));
    }
    for (user, password) in &sip.accounts {
        let credential = match credentials {
            Credentials::Md5Ha1 => {
                format!("ha1 = \"{}\"", ha1(Algorithm::Md5, user, domain, password))
            }
            Credentials::Password { .. } => format!("password = \"{password}\""),
        };
        toml.push_str(&format!(
            "\n[[sip.account]]\nuser = \"{user}\"\n{credential}\n"
        ));
    }
    toml.push_str(&format!(
        "\n[store]\nurl = \"sqlite://{}\"\n",
        dir.join("xfed.db").display()
    ));
    let (sasl, dialback) = (sip.partner_sasl, sip.partner_sasl != "required");
    for (partner, connect) in &sip.partners {
        toml.push_str(&format!(
            "\n[[partner]]\ndomain = \"{partner}\"\ntype = \"federated\"\nconnect = \"{connect}\"\n\
             tls = \"required\"\nsasl = \"{sasl}\"\ndialback = {dialback}\n"
        ));
    }
    let path = dir.join("xfed.toml");
    fs::write(&path, toml).expect("write xfed.toml");
    path
}

/// The URI of a From/To/Contact header value, without `<>`, display name
/// and parameters: `sip:u@d`.
pub fn bare_uri(header: &str) -> &str {
    let h = header.trim();
    let inner = match (h.find('<'), h.find('>')) {
        (Some(a), Some(b)) if a < b => &h[a + 1..b],
        _ => h.split(';').next().unwrap_or(h),
    };
    inner.split(';').next().unwrap_or(inner).trim()
}
