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
//! (the script answers 501) and accepts TCP connections (and TLS ones).
//!
//! With [`KamailioOptions::tls`] (Debian's `kamailio-tls-modules`) it also
//! listens on TLS at another port of the same address, mutually
//! authenticated both ways (`tests/peers/kamailio/tls.cfg`): a client must
//! present a certificate that verifies against [`KamailioTls::ca_list`],
//! and when Kamailio connects out (relaying to xfed over
//! `;transport=tls`) it presents its own certificate and verifies the
//! server's against the same CA list. Quirks of Kamailio 5.6 as a TLS
//! client (seen by the tests below): it checks the server's chain only, not
//! its names against the host; it sends SNI only when
//! [`KamailioTls::client_server_name`] is set; its connections come from
//! [`KamailioOptions::ip`] (`tcp_source_ipv4` covers TLS too); OpenSSL
//! sends the CA's root after its certificate; and a failed handshake
//! toward xfed reaches the sender only as tm's 408 after `fr_timer` (10 s).
//!
//! With [`KamailioOptions::presence`] (Debian's `kamailio-presence-modules`)
//! it is also the domain's presence server: PUBLISH and SUBSCRIBE for the
//! domain are handled by the presence and presence_xml modules (every
//! watcher authorized, publications in db_text tables copied from the
//! package into the folder), and a SUBSCRIBE for another domain is
//! record-routed to xfed.
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

/// The template of the tls module's profiles (`tls.cfg`, next to
/// `kamailio.cfg` when [`KamailioOptions::tls`] is set).
pub const TLS_CONFIG_TEMPLATE: &str = include_str!("../peers/kamailio/tls.cfg");

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

/// The tls module, in the folder `kamailio -I` names as its module path:
/// [`Skip`] when it is missing (`apt-get install kamailio-tls-modules`).
pub fn tls_module() -> Result<PathBuf, Skip> {
    module("tls", "kamailio-tls-modules")
}

/// The presence modules (`presence`, `presence_xml`) and `db_text` that
/// [`KamailioOptions::presence`] loads, and the db_text tables the
/// package ships: [`Skip`] when one is missing (`apt-get install
/// kamailio-presence-modules`). The module paths.
pub fn presence_modules() -> Result<Vec<PathBuf>, Skip> {
    let mut found = Vec::new();
    for (name, package) in [
        ("presence", "kamailio-presence-modules"),
        ("presence_xml", "kamailio-presence-modules"),
        ("db_text", "kamailio"),
    ] {
        found.push(module(name, package)?);
    }
    for table in PRESENCE_TABLES.iter().chain(["version"].iter()) {
        let path = Path::new(DBTEXT_TABLES).join(table);
        if !path.is_file() {
            return Err(Skip(format!(
                "{} is missing (it comes with Debian's kamailio package)",
                path.display()
            )));
        }
    }
    Ok(found)
}

/// Where Debian's kamailio package keeps the db_text tables.
pub const DBTEXT_TABLES: &str = "/usr/share/kamailio/dbtext/kamailio";

/// The db_text tables the presence modules use.
pub const PRESENCE_TABLES: [&str; 4] = ["presentity", "active_watchers", "watchers", "xcap"];

/// Module `name` (`name.so`) in the folders `kamailio -I` names as its
/// module path; [`Skip`] naming `package` when it is not there.
pub fn module(name: &str, package: &str) -> Result<PathBuf, Skip> {
    let bin = binary()?;
    let out = Command::new(&bin)
        .arg("-I")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} -I: {e}", bin.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    let dirs = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Default paths to modules:"))
        .unwrap_or("");
    std::env::split_paths(dirs.trim())
        .map(|d| d.join(format!("{name}.so")))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Skip(format!(
                "Kamailio's {name} module is not installed in {dirs:?} \
                 (apt-get install {package})"
            ))
        })
}

/// The db_text folder for the presence modules in `dir`: the package's
/// empty presence tables, and its `version` table cut to their lines.
fn write_presence_db(dir: &Path) {
    fs::create_dir_all(dir).expect("db_text folder");
    let source = Path::new(DBTEXT_TABLES);
    for table in PRESENCE_TABLES {
        fs::copy(source.join(table), dir.join(table))
            .unwrap_or_else(|e| panic!("copy db_text table {table}: {e}"));
    }
    let version = fs::read_to_string(source.join("version")).expect("db_text version table");
    let kept: Vec<&str> = version
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            *i == 0
                || PRESENCE_TABLES
                    .iter()
                    .any(|t| l.split(':').nth(1) == Some(t))
        })
        .map(|(_, l)| l)
        .collect();
    fs::write(dir.join("version"), kept.join("\n") + "\n").expect("db_text version");
}

/// Kamailio's TLS listener and its mutual authentication (module `tls`).
#[derive(Debug, Clone)]
pub struct KamailioTls {
    /// Its certificate chain (PEM, end entity first), presented as server
    /// and as client.
    pub certificate: PathBuf,
    /// The private key of [`certificate`](Self::certificate) (PEM,
    /// unencrypted).
    pub private_key: PathBuf,
    /// The CA certificates (PEM) it verifies every peer's certificate
    /// against, clients connecting to it and servers it connects to.
    pub ca_list: PathBuf,
    /// The TLS port, on [`KamailioOptions::ip`] (free, from
    /// [`crate::free_port_on`]).
    pub port: u16,
    /// The SNI Kamailio sends when it connects to xfed (the script sets
    /// `$xavp(tls=>server_name)` before relaying); `None`: no SNI at all
    /// (Kamailio 5.6 sends none by itself, whatever the URI's host).
    pub client_server_name: Option<String>,
}

impl KamailioTls {
    /// TLS on a free port of `ip` with these files, no SNI when connecting.
    pub fn new(
        ip: Ipv4Addr,
        certificate: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
        ca_list: impl Into<PathBuf>,
    ) -> KamailioTls {
        KamailioTls {
            certificate: certificate.into(),
            private_key: private_key.into(),
            ca_list: ca_list.into(),
            port: crate::free_port_on(ip.into()),
            client_server_name: None,
        }
    }
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
    /// `sip:127.0.0.1:40000;transport=udp` (xfed), or with
    /// `;transport=tls` (needs [`tls`](Self::tls)).
    pub xfed: String,
    /// A TLS listener too, and TLS toward `xfed`; `None` (the default):
    /// UDP and TCP only, and no tls module loaded.
    pub tls: Option<KamailioTls>,
    /// Also the domain's presence server (modules presence and
    /// presence_xml with db_text, every watcher authorized), and
    /// SUBSCRIBEs for other domains relayed to `xfed`; off by default.
    pub presence: bool,
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
            tls: None,
            presence: false,
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

    /// With TLS: [`KamailioTls::new`] on a free port of [`ip`](Self::ip).
    pub fn with_tls(
        mut self,
        certificate: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
        ca_list: impl Into<PathBuf>,
    ) -> KamailioOptions {
        self.tls = Some(KamailioTls::new(self.ip, certificate, private_key, ca_list));
        self
    }

    /// Its TLS address, when [`tls`](Self::tls) is set.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
            .as_ref()
            .map(|t| SocketAddr::new(self.ip.into(), t.port))
    }

    /// Its TLS URI for xfed's `next_hop`:
    /// `sip:NAME:TLSPORT;transport=tls;maddr=IP`, where `name` is what its
    /// certificate is checked against and `maddr` where to connect. Panics
    /// without [`tls`](Self::tls).
    pub fn tls_uri(&self, name: &str) -> String {
        let tls = self
            .tls
            .as_ref()
            .expect("Kamailio without TLS has no TLS URI");
        format!("sip:{name}:{};transport=tls;maddr={}", tls.port, self.ip)
    }
}

/// The configuration for `o`, whose folder is `dir`: the template with its
/// placeholders filled (the TLS ones with nothing when `o.tls` is `None`).
pub fn render_config(o: &KamailioOptions, dir: &Path) -> String {
    let (tls, sni) = match &o.tls {
        None => (String::new(), String::new()),
        Some(t) => {
            let sni = match &t.client_server_name {
                Some(name) => {
                    assert!(
                        !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic() && c != '"'),
                        "SNI {name:?}"
                    );
                    format!("\n\t$xavp(tls=>server_name) = \"{name}\";")
                }
                None => String::new(),
            };
            let tls = format!(
                "\n# TLS (tests/src/kamailio.rs): the tls module first, before any\n\
                 # other module that could use OpenSSL; its connections logged at\n\
                 # notice level (handshakes, peer certificates); $xavp(tls=>...)\n\
                 # sets the SNI toward xfed.\n\
                 enable_tls=yes\n\
                 listen=tls:{ip}:{port}\n\
                 loadmodule \"tls.so\"\n\
                 modparam(\"tls\", \"config\", \"{cfg}\")\n\
                 modparam(\"tls\", \"tls_log\", 1)\n\
                 modparam(\"tls\", \"xavp_cfg\", \"tls\")\n",
                ip = o.ip,
                port = t.port,
                cfg = cfg_path(&dir.join("tls.cfg")),
            );
            (tls, sni)
        }
    };
    let presence = if o.presence {
        "#!define WITH_PRESENCE"
    } else {
        ""
    };
    let text = CONFIG_TEMPLATE
        .replace("{{PRESENCE}}", presence)
        .replace("{{DIR}}", &cfg_path(dir))
        .replace("{{TLS}}", &tls)
        .replace("{{XFED_SNI}}", &sni)
        .replace("{{DOMAIN}}", &o.domain)
        .replace("{{IP}}", &o.ip.to_string())
        .replace("{{PORT}}", &o.port.to_string())
        .replace("{{XFED}}", &o.xfed);
    assert!(!text.contains("{{"), "unfilled placeholder:\n{text}");
    text
}

/// The tls module's profiles (`tls.cfg`) for `tls`: the template with its
/// placeholders filled (absolute paths: relative ones would be taken from
/// the folder of `kamailio.cfg`).
pub fn render_tls_config(tls: &KamailioTls) -> String {
    let absolute = |p: &Path| cfg_path(&std::path::absolute(p).expect("absolute path"));
    let text = TLS_CONFIG_TEMPLATE
        .replace("{{CERTIFICATE}}", &absolute(&tls.certificate))
        .replace("{{PRIVATE_KEY}}", &absolute(&tls.private_key))
        .replace("{{CA_LIST}}", &absolute(&tls.ca_list));
    assert!(!text.contains("{{"), "unfilled placeholder:\n{text}");
    text
}

/// `p` as written into Kamailio's files, where neither quotes nor
/// whitespace can be escaped.
fn cfg_path(p: &Path) -> String {
    let s = p.display().to_string();
    assert!(
        !s.contains(|c: char| c == '"' || c == '#' || c.is_whitespace() || c.is_control()),
        "path unusable in Kamailio's configuration: {s:?}"
    );
    s
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
    /// answers on UDP and TCP (and accepts connections on its TLS port).
    /// [`Skip`] when Kamailio (or, with TLS, its tls module) is not
    /// installed; panics (with its log) when it is but does not come up.
    pub fn start(options: KamailioOptions) -> Result<Kamailio, Skip> {
        let t0 = Instant::now();
        let bin = binary()?;
        if options.tls.is_some() {
            tls_module()?;
        }
        if options.presence {
            presence_modules()?;
        }
        let dir = std::env::temp_dir().join(format!(
            "xfed-kamailio-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("run")).expect("Kamailio folder");
        let config = dir.join("kamailio.cfg");
        fs::write(&config, render_config(&options, &dir)).expect("write kamailio.cfg");
        if let Some(tls) = &options.tls {
            fs::write(dir.join("tls.cfg"), render_tls_config(tls)).expect("write tls.cfg");
        }
        if options.presence {
            write_presence_db(&dir.join("db"));
        }
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

    /// Waits until an OPTIONS over UDP is answered and TCP connects, to the
    /// SIP port and to the TLS port if there is one.
    fn wait_ready(&mut self) {
        let addr = self.addr();
        let tls_addr = self.options.tls_addr();
        let connects =
            |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok();
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
                if answered && connects(&addr) && tls_addr.as_ref().is_none_or(connects) {
                    return;
                }
            }
        }
    }

    /// Its SIP address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.options.addr()
    }

    /// Its TLS address, when started with TLS.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.options.tls_addr()
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, UdpSocket};
    use std::sync::Arc;

    use xfed_core::sip::{Frame, Limits, StreamFramer};
    use xfed_core::tls::rustls::{
        self, client::WebPkiServerVerifier, crypto::CryptoProvider, server::Acceptor,
        server::WebPkiClientVerifier, ClientConfig, ClientConnection, RootCertStore, ServerConfig,
        StreamOwned,
    };
    use xfed_core::tls::testing::{LeafSpec, TestCa, TestCert};
    use xfed_core::tls::ServerName;

    use super::*;

    /// Every socket read and write gives up after this.
    const IO: Duration = Duration::from_secs(5);

    /// A test's folder (certificates), removed at the end unless the test
    /// failed or `XFED_KEEP_PEERS` is set.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            TempDir(crate::temp_dir(name))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            if !std::thread::panicking() && std::env::var_os("XFED_KEEP_PEERS").is_none() {
                let _ = fs::remove_dir_all(&self.0);
            }
        }
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn roots(ca: &TestCa) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert_der()).expect("CA certificate");
        Arc::new(roots)
    }

    /// A CA, Kamailio's certificate for kamailio.test from it, the files
    /// in `dir` (`kamailio.pem`, `kamailio.key`, `ca.pem`) and options for
    /// Kamailio with TLS on 127.0.0.`ip`, relaying other domains to
    /// `xfed`.
    fn tls_options(dir: &Path, ip: u8, xfed: &str) -> (TestCa, TestCert, KamailioOptions) {
        let ca = TestCa::new("Kamailio lab CA");
        let cert = ca.issue(&LeafSpec::new().dns("kamailio.test"));
        fs::write(dir.join("kamailio.pem"), cert.chain_pem()).unwrap();
        fs::write(dir.join("kamailio.key"), cert.key_pem()).unwrap();
        fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
        let options = KamailioOptions::new("kamailio.test", Ipv4Addr::new(127, 0, 0, ip), xfed)
            .with_tls(
                dir.join("kamailio.pem"),
                dir.join("kamailio.key"),
                dir.join("ca.pem"),
            );
        (ca, cert, options)
    }

    /// A TLS client to Kamailio that checks its certificate for
    /// kamailio.test against `ca`, presenting `cert` if any; TLS 1.3 or
    /// 1.2.
    fn client_config(ca: &TestCa, cert: Option<&TestCert>) -> Arc<ClientConfig> {
        client_config_versions(ca, cert, rustls::DEFAULT_VERSIONS)
    }

    fn client_config_versions(
        ca: &TestCa,
        cert: Option<&TestCert>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca), provider())
            .build()
            .unwrap();
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_webpki_verifier(verifier);
        Arc::new(match cert {
            Some(c) => builder
                .with_client_auth_cert(c.chain().to_vec(), c.key_der())
                .unwrap(),
            None => builder.with_no_client_auth(),
        })
    }

    /// A TLS server presenting `cert` that requires a client certificate
    /// verifying against `ca`.
    fn server_config(ca: &TestCa, cert: &TestCert) -> Arc<ServerConfig> {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca), provider())
            .build()
            .unwrap();
        Arc::new(
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(cert.chain().to_vec(), cert.key_der())
                .unwrap(),
        )
    }

    fn tcp(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect_timeout(&addr, IO).expect("connect");
        s.set_read_timeout(Some(IO)).unwrap();
        s.set_write_timeout(Some(IO)).unwrap();
        s
    }

    /// Reads one SIP message from `s` (framed by xfed's own
    /// `StreamFramer`), as text.
    fn read_sip(s: &mut impl Read) -> std::io::Result<String> {
        let mut framer = StreamFramer::new(Limits::default());
        let mut buf = [0u8; 4096];
        loop {
            match framer.poll() {
                Some(Ok(Frame::Message(m))) => {
                    return Ok(String::from_utf8_lossy(&m.to_bytes()).into_owned())
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        e.to_string(),
                    ))
                }
                None => {}
            }
            match s.read(&mut buf)? {
                0 => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "closed before a whole SIP message",
                    ))
                }
                n => framer.feed(&buf[..n]),
            }
        }
    }

    fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
        msg.lines()
            .filter(|l| {
                l.split_once(':')
                    .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            })
            .collect()
    }

    /// An OPTIONS to `to` sent over TLS from `local`.
    fn options_request(to: SocketAddr, local: SocketAddr) -> String {
        format!(
            "OPTIONS sip:{to};transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS {local};branch=z9hG4bK-tls-options\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:probe@client.test>;tag=tls\r\n\
             To: <sip:{to}>\r\n\
             Call-ID: tls-options-{}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            local.port()
        )
    }

    /// The configuration's lines that are not comments.
    fn directives(c: &str) -> Vec<&str> {
        c.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    }

    #[test]
    fn config_without_tls_has_no_tls_lines() {
        let o = KamailioOptions::new(
            "a.test",
            Ipv4Addr::new(127, 0, 0, 1),
            "sip:127.0.0.1:5999;transport=udp",
        );
        let c = render_config(&o, Path::new("/tmp/k"));
        let lines = directives(&c);
        assert!(
            lines.iter().all(|l| !l.to_lowercase().contains("tls")),
            "{c}"
        );
        assert!(lines.contains(&"loadmodule \"tm.so\"      # before sl, so sl can bind tm at init"));
        assert!(
            lines.iter().any(|l| l.starts_with("listen=tcp:127.0.0.1:")),
            "{c}"
        );
        assert!(
            lines.contains(&"$du = \"sip:127.0.0.1:5999;transport=udp\";"),
            "{c}"
        );
    }

    #[test]
    fn config_with_tls_loads_the_module_first() {
        let mut o = KamailioOptions::new(
            "a.test",
            Ipv4Addr::new(127, 0, 0, 71),
            "sip:127.0.0.1:5999;transport=tls",
        )
        .with_tls("/x/k.pem", "/x/k.key", "/x/ca.pem");
        let port = o.tls.as_ref().unwrap().port;
        let c = render_config(&o, Path::new("/tmp/k"));
        let lines = directives(&c);
        for line in [
            "enable_tls=yes".to_string(),
            format!("listen=tls:127.0.0.71:{port}"),
            "loadmodule \"tls.so\"".into(),
            "modparam(\"tls\", \"config\", \"/tmp/k/tls.cfg\")".into(),
            "$du = \"sip:127.0.0.1:5999;transport=tls\";".into(),
        ] {
            assert!(lines.contains(&line.as_str()), "no {line:?} in:\n{c}");
        }
        let first_module = lines.iter().find(|l| l.starts_with("loadmodule")).unwrap();
        assert_eq!(*first_module, "loadmodule \"tls.so\"");
        assert!(lines.iter().all(|l| !l.contains("server_name")), "{c}");
        assert_eq!(
            o.tls_uri("kamailio.test"),
            format!("sip:kamailio.test:{port};transport=tls;maddr=127.0.0.71")
        );
        assert_eq!(
            o.tls_addr(),
            Some(SocketAddr::from(([127, 0, 0, 71], port)))
        );

        o.tls.as_mut().unwrap().client_server_name = Some("xfed.test".into());
        let c = render_config(&o, Path::new("/tmp/k"));
        let lines = directives(&c);
        let du = lines.iter().position(|l| l.starts_with("$du = ")).unwrap();
        assert_eq!(
            lines[du + 1],
            "$xavp(tls=>server_name) = \"xfed.test\";",
            "{c}"
        );

        let text = render_tls_config(o.tls.as_ref().unwrap());
        for section in ["[server:default]", "[client:default]"] {
            let body = text.split(&format!("\n{section}\n")).nth(1).unwrap();
            let body: Vec<&str> = body.split("\n[").next().unwrap().lines().collect();
            assert_eq!(
                body,
                [
                    "method = TLSv1.2+",
                    "verify_certificate = yes",
                    "require_certificate = yes",
                    "certificate = /x/k.pem",
                    "private_key = /x/k.key",
                    "ca_list = /x/ca.pem",
                ],
                "{section}:\n{text}"
            );
        }
    }

    /// Kamailio's TLS listener: a client with a certificate from the CA
    /// gets through (its OPTIONS is answered 501); one without a
    /// certificate, or with one from another CA, is refused.
    #[test]
    fn tls_server_requires_a_client_certificate() {
        let dir = TempDir::new("kamailio-tls-server");
        let (ca, _, options) = tls_options(&dir.0, 72, "sip:127.0.0.1:9;transport=udp");
        let k = crate::require_peer!(Kamailio::start(options));
        let addr = k.tls_addr().unwrap();
        let name = ServerName::try_from("kamailio.test").unwrap();

        // With a certificate from the CA, over TLS 1.3 and 1.2.
        let client = ca.issue(&LeafSpec::new().dns("xfed.test"));
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let config = client_config_versions(&ca, Some(&client), &[version]);
            let conn = ClientConnection::new(config, name.clone()).unwrap();
            let mut s = StreamOwned::new(conn, tcp(addr));
            while s.conn.is_handshaking() {
                s.conn
                    .complete_io(&mut s.sock)
                    .unwrap_or_else(|e| panic!("handshake: {e}\n{}", k.diagnostics()));
            }
            assert_eq!(s.conn.protocol_version(), Some(version.version));
            let local = s.sock.local_addr().unwrap();
            s.write_all(options_request(addr, local).as_bytes())
                .unwrap();
            let answer = read_sip(&mut s).unwrap_or_else(|e| panic!("{e}\n{}", k.diagnostics()));
            assert!(
                answer.starts_with("SIP/2.0 501 "),
                "{answer}\n{}",
                k.diagnostics()
            );
            eprintln!(
                "with a client certificate ({:?}): {answer}",
                version.version
            );
        }

        // Without a certificate, and with one from another CA: whatever
        // the client thinks of the handshake, Kamailio answers nothing.
        let other = TestCa::new("Other CA").issue(&LeafSpec::new().dns("xfed.test"));
        for (what, cert) in [("no certificate", None), ("another CA", Some(&other))] {
            let conn = ClientConnection::new(client_config(&ca, cert), name.clone()).unwrap();
            let mut s = StreamOwned::new(conn, tcp(addr));
            let mut outcome = Ok(());
            while outcome.is_ok() && s.conn.is_handshaking() {
                outcome = s.conn.complete_io(&mut s.sock).map(|_| ());
            }
            let outcome = outcome
                .and_then(|()| {
                    let local = s.sock.local_addr()?;
                    s.write_all(options_request(addr, local).as_bytes())?;
                    s.flush()
                })
                .and_then(|()| read_sip(&mut s).map(|answer| panic!("{what}: answered {answer}")));
            let e = outcome.unwrap_err();
            assert_ne!(
                e.kind(),
                std::io::ErrorKind::WouldBlock,
                "{what}: no answer, no close: {e}"
            );
            eprintln!("{what}: refused: {e}");
        }
    }

    /// Accepts one TLS connection on `listener` within `IO`, as a server
    /// presenting `cert` and requiring a client certificate from `ca`:
    /// where it came from, the SNI, and the connection or the handshake
    /// error.
    #[allow(clippy::type_complexity)]
    fn accept_tls(
        listener: &TcpListener,
        ca: &TestCa,
        cert: &TestCert,
    ) -> (
        SocketAddr,
        Option<String>,
        Result<StreamOwned<rustls::ServerConnection, TcpStream>, String>,
    ) {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + IO;
        let (sock, from) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no connection within {IO:?}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        sock.set_nonblocking(false).unwrap();
        sock.set_read_timeout(Some(IO)).unwrap();
        sock.set_write_timeout(Some(IO)).unwrap();
        let mut sock = sock;
        let mut acceptor = Acceptor::default();
        let accepted = loop {
            match acceptor.read_tls(&mut sock) {
                Ok(0) => return (from, None, Err("closed before ClientHello".into())),
                Ok(_) => {}
                Err(e) => return (from, None, Err(format!("ClientHello: {e}"))),
            }
            match acceptor.accept() {
                Ok(Some(a)) => break a,
                Ok(None) => {}
                Err((e, _)) => return (from, None, Err(format!("ClientHello: {e}"))),
            }
        };
        let sni = accepted.client_hello().server_name().map(str::to_owned);
        let conn = match accepted.into_connection(server_config(ca, cert)) {
            Ok(c) => c,
            Err((e, _)) => return (from, sni, Err(e.to_string())),
        };
        let mut s = StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            if let Err(e) = s.conn.complete_io(&mut s.sock) {
                return (from, sni, Err(e.to_string()));
            }
        }
        (from, sni, Ok(s))
    }

    /// A MESSAGE from a UDP client through Kamailio to another domain.
    fn send_message(udp: &UdpSocket, k: &Kamailio, n: u32) {
        let local = udp.local_addr().unwrap();
        let msg = format!(
            "MESSAGE sip:bob@other.test SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-tls-msg-{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@kamailio.test>;tag=a{n}\r\n\
             To: <sip:bob@other.test>\r\n\
             Call-ID: tls-msg-{n}-{}\r\n\
             CSeq: 1 MESSAGE\r\n\
             Content-Type: text/plain\r\n\
             Content-Length: 5\r\n\r\nhello",
            local.port()
        );
        udp.send_to(msg.as_bytes(), k.addr()).unwrap();
    }

    /// What a TLS server saw of Kamailio's connection.
    struct Relayed {
        from: SocketAddr,
        sni: Option<String>,
        client_chain: Vec<xfed_core::tls::CertificateDer<'static>>,
        version: Option<rustls::ProtocolVersion>,
    }

    /// Kamailio with TLS on 127.0.0.`ip` relaying other domains to a TLS
    /// server of the test on 127.0.0.1 (`sip:127.0.0.1:P;transport=tls`),
    /// SNI `sni`.
    struct RelayLab {
        /// Declared first: stopped before the folder goes.
        k: Kamailio,
        ca: TestCa,
        /// Kamailio's certificate.
        cert: TestCert,
        /// The test's TLS server listens here.
        listener: TcpListener,
        /// MESSAGEs are sent to Kamailio from here.
        udp: UdpSocket,
        _dir: TempDir,
    }

    fn relay_lab(name: &str, ip: u8, sni: Option<&str>) -> Option<RelayLab> {
        let dir = TempDir::new(name);
        let server_ip = Ipv4Addr::new(127, 0, 0, 1);
        // Port 0: nothing can take the port between choosing and binding.
        let listener = TcpListener::bind((server_ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (ca, cert, mut options) =
            tls_options(&dir.0, ip, &format!("sip:{server_ip}:{port};transport=tls"));
        options.tls.as_mut().unwrap().client_server_name = sni.map(str::to_owned);
        let k = crate::prosody::require_peer(Kamailio::start(options))?;
        let udp = UdpSocket::bind((server_ip, 0)).unwrap();
        udp.set_read_timeout(Some(IO)).unwrap();
        Some(RelayLab {
            k,
            ca,
            cert,
            listener,
            udp,
            _dir: dir,
        })
    }

    /// A MESSAGE for another domain through Kamailio to the test's TLS
    /// server (presenting `server_cert`, requiring a client certificate
    /// from `ca`), which answers 200; the UDP client gets the 200. The
    /// connection is then closed both ways (else Kamailio would send the
    /// next MESSAGE on it).
    fn relay_once(
        k: &Kamailio,
        udp: &UdpSocket,
        listener: &TcpListener,
        ca: &TestCa,
        server_cert: &TestCert,
        n: u32,
    ) -> Relayed {
        send_message(udp, k, n);
        let (from, sni, conn) = accept_tls(listener, ca, server_cert);
        let mut s = conn.unwrap_or_else(|e| panic!("handshake: {e}\n{}", k.diagnostics()));
        let relayed = Relayed {
            from,
            sni,
            client_chain: s.conn.peer_certificates().unwrap_or_default().to_vec(),
            version: s.conn.protocol_version(),
        };
        let request = read_sip(&mut s).unwrap_or_else(|e| panic!("{e}\n{}", k.diagnostics()));
        assert!(
            request.starts_with("MESSAGE sip:bob@other.test SIP/2.0\r\n"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\nhello"), "{request}");
        assert!(
            header(&request, "via")[0].contains("SIP/2.0/TLS "),
            "{request}"
        );
        let mut reply = String::from("SIP/2.0 200 OK\r\n");
        for name in ["via", "from", "to", "call-id", "cseq"] {
            for h in header(&request, name) {
                reply.push_str(h);
                if name == "to" {
                    reply.push_str(";tag=srv");
                }
                reply.push_str("\r\n");
            }
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        s.write_all(reply.as_bytes()).unwrap();
        s.flush().unwrap();
        let mut buf = [0u8; 4096];
        let (len, _) = udp
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no answer over UDP: {e}\n{}", k.diagnostics()));
        let answer = String::from_utf8_lossy(&buf[..len]);
        assert!(
            answer.starts_with("SIP/2.0 200 "),
            "{answer}\n{}",
            k.diagnostics()
        );
        s.conn.send_close_notify();
        let _ = s.conn.complete_io(&mut s.sock);
        let _ = s.sock.shutdown(std::net::Shutdown::Write);
        crate::read_to_close(&mut s.sock);
        drop(s);
        std::thread::sleep(Duration::from_millis(100));
        relayed
    }

    /// Kamailio as a TLS client (relaying a MESSAGE for another domain to
    /// `sip:127.0.0.1:P;transport=tls`): it connects from its own address
    /// (not 127.0.0.1), presents its certificate, accepts a server
    /// certificate from the CA that does not name 127.0.0.1 (no host name
    /// check), sends no SNI, and passes the server's 200 back. A server
    /// certificate from another CA makes it abort the handshake.
    #[test]
    fn tls_client_presents_its_certificate_and_verifies_the_server() {
        let Some(lab) = relay_lab("kamailio-tls-client", 73, None) else {
            return;
        };
        let (k, ca, udp, listener) = (&lab.k, &lab.ca, &lab.udp, &lab.listener);

        // A server certificate from the CA, for xfed.test only.
        let good = ca.issue(&LeafSpec::new().dns("xfed.test"));
        let r = relay_once(k, udp, listener, ca, &good, 1);
        assert_eq!(r.from.ip(), k.options.ip, "source of Kamailio's connection");
        assert_eq!(r.sni, None, "SNI");
        // OpenSSL completes the chain with the root from ca_list.
        assert_eq!(
            r.client_chain.first(),
            Some(&lab.cert.chain()[0]),
            "Kamailio's client certificate"
        );
        eprintln!(
            "Kamailio's TLS connection from {}, SNI {:?}, {:?}, client chain of {} certificate(s)",
            r.from,
            r.sni,
            r.version,
            r.client_chain.len()
        );

        // A server certificate from another CA.
        let other = TestCa::new("Other CA");
        let bad = other.issue(&LeafSpec::new().dns("xfed.test"));
        send_message(udp, k, 2);
        let (from, _, conn) = accept_tls(listener, ca, &bad);
        assert_eq!(from.ip(), k.options.ip);
        let e = match conn {
            Ok(mut s) => match read_sip(&mut s) {
                Ok(request) => panic!("Kamailio sent over an untrusted server: {request}"),
                Err(e) => e.to_string(),
            },
            Err(e) => e,
        };
        eprintln!("another CA's server certificate: {e}");
        let line = k
            .wait_log("certificate verify failed", IO)
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("Kamailio: {line}");
    }

    /// With [`KamailioTls::client_server_name`], Kamailio's connection to
    /// xfed carries that SNI.
    #[test]
    fn tls_client_sends_the_configured_sni() {
        let Some(lab) = relay_lab("kamailio-tls-sni", 74, Some("xfed.test")) else {
            return;
        };
        let (k, ca, udp, listener) = (&lab.k, &lab.ca, &lab.udp, &lab.listener);
        let good = ca.issue(&LeafSpec::new().dns("xfed.test"));
        let r = relay_once(k, udp, listener, ca, &good, 1);
        assert_eq!(r.sni.as_deref(), Some("xfed.test"));
        assert_eq!(r.from.ip(), k.options.ip);
    }

    #[test]
    fn config_with_presence_defines_it() {
        let mut o = KamailioOptions::new(
            "a.test",
            Ipv4Addr::new(127, 0, 0, 1),
            "sip:127.0.0.1:5999;transport=udp",
        );
        let c = render_config(&o, Path::new("/tmp/k"));
        assert!(
            c.lines().all(|l| l.trim() != "#!define WITH_PRESENCE"),
            "{c}"
        );
        o.presence = true;
        let c = render_config(&o, Path::new("/tmp/k"));
        let lines: Vec<&str> = c.lines().map(str::trim).collect();
        let define = lines.iter().position(|l| *l == "#!define WITH_PRESENCE");
        let first_use = lines.iter().position(|l| *l == "#!ifdef WITH_PRESENCE");
        assert!(define.is_some() && define < first_use, "{c}");
        assert!(
            lines.contains(&"modparam(\"presence\", \"db_url\", \"text:///tmp/k/db\")"),
            "{c}"
        );
    }

    /// Kamailio as the presence server of `presence.test`: alice PUBLISHes,
    /// bob SUBSCRIBEs to her and gets NOTIFY active with her document,
    /// then each change; a SUBSCRIBE for another domain is record-routed
    /// to the `xfed` URI (here a UDP socket of the test).
    #[test]
    fn presence_server_publishes_notifies_and_relays_foreign_subscribes() {
        let ip = Ipv4Addr::new(127, 0, 0, 79);
        let relay = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 1), 0)).unwrap();
        relay.set_read_timeout(Some(IO)).unwrap();
        let xfed = format!("sip:{};transport=udp", relay.local_addr().unwrap());
        let mut options = KamailioOptions::new("presence.test", ip, &xfed);
        options.presence = true;
        let k = crate::require_peer!(Kamailio::start(options));
        let open = |note: &str| {
            format!(
                "<?xml version='1.0' encoding='UTF-8'?>\
                 <presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:alice@presence.test'>\
                 <tuple id='t1'><status><basic>open</basic></status><note>{note}</note></tuple>\
                 </presence>"
            )
        };
        let mut alice = crate::sip_ua::SipUa::new("alice", "presence.test", "", k.addr(), false);
        let r = alice.publish(&open("first"), None, 600);
        assert_eq!(r.status, 200, "{r:?}\n{}", k.diagnostics());
        let etag = r.headers.get("SIP-ETag").expect("SIP-ETag").to_owned();

        let mut bob = crate::sip_ua::SipUa::new("bob", "presence.test", "", k.addr(), false);
        let r = bob.subscribe("alice@presence.test", 600);
        assert!((200..300).contains(&r.status), "{r:?}\n{}", k.diagnostics());
        eprintln!(
            "SUBSCRIBE answered: {}",
            String::from_utf8_lossy(&r.to_bytes())
        );
        let n = bob
            .notify(IO)
            .unwrap_or_else(|| panic!("no NOTIFY\n{}", k.diagnostics()));
        eprintln!("first NOTIFY: {}", String::from_utf8_lossy(&n.to_bytes()));
        let state = n.headers.get("Subscription-State").unwrap_or("");
        assert!(state.starts_with("active"), "{state}");
        assert!(String::from_utf8_lossy(&n.body).contains("first"));

        let r = alice.publish(&open("second"), Some(&etag), 600);
        assert_eq!(r.status, 200, "{r:?}\n{}", k.diagnostics());
        let n = bob
            .notify(IO)
            .unwrap_or_else(|| panic!("no NOTIFY\n{}", k.diagnostics()));
        assert!(String::from_utf8_lossy(&n.body).contains("second"), "{n:?}");

        // A SUBSCRIBE for another domain goes to "xfed", record-routed.
        let r = std::thread::scope(|scope| {
            let carol = scope.spawn(|| {
                let mut carol =
                    crate::sip_ua::SipUa::new("carol", "presence.test", "", k.addr(), false);
                carol.subscribe("dave@elsewhere.test", 600)
            });
            let mut buf = [0u8; 8192];
            let (len, from) = relay.recv_from(&mut buf).expect("the relayed SUBSCRIBE");
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            assert!(
                text.starts_with("SUBSCRIBE sip:dave@elsewhere.test SIP/2.0\r\n"),
                "{text}"
            );
            assert!(text.contains("Record-Route: <sip:127.0.0.79"), "{text}");
            let Ok(xfed_core::sip::Message::Request(req)) =
                xfed_core::sip::parse_datagram(&buf[..len], &Limits::default())
            else {
                panic!("{text}")
            };
            let mut ok = req.response(200, "x");
            ok.headers.push("Expires", "600");
            ok.headers
                .push("Contact", format!("<sip:{}>", relay.local_addr().unwrap()));
            relay.send_to(&ok.to_bytes(), from).unwrap();
            carol.join().unwrap()
        });
        assert_eq!(r.status, 200, "{r:?}\n{}", k.diagnostics());
    }
}
