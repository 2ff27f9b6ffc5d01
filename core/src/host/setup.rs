//! Turns a configuration file (or the embedded default) into what the
//! gateway runs with: certificates and keys read, the trust store loaded,
//! the dialback secret found or made, the OS seed drawn. Blocking file I/O,
//! done once at start-up by either runtime.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{self, Config, SipListener, SipMode, SipTransport, StoreUrl, Trust};
use crate::dns::HostsTable;
use crate::endpoint::NextHop;
use crate::gateway::{ComponentSetup, Setup};
use crate::sip::{self, Uri};
use crate::tls::{self, LocalIdentity, TrustAnchors};

/// Everything a runtime needs to start the gateway.
pub struct Deployment {
    /// The parsed configuration.
    pub config: Arc<Config>,
    /// What the gateway is built with besides the configuration; the
    /// runtime puts the SIP UDP sockets it bound into `sip_udp`, the
    /// driver what the store kept.
    pub setup: Setup,
    /// STARTTLS listeners.
    pub s2s: Vec<SocketAddr>,
    /// Direct TLS listeners.
    pub s2s_direct_tls: Vec<SocketAddr>,
    /// An edge's `[listen] internal`, where its gateways attach.
    pub internal: Option<SocketAddr>,
    /// SIP listeners.
    pub sip: Vec<SipListener>,
    /// The store, with relative paths resolved.
    pub store: StoreUrl,
    /// Where this instance keeps its own files (admin socket, generated
    /// dialback secret), resolved.
    pub state_dir: PathBuf,
    /// Seed of the core's generator, from the OS.
    pub seed: [u8; 32],
    /// Unix seconds now, anchoring the core's wall clock.
    pub unix_now: u64,
    /// The recursive DNS resolver (first `nameserver` of /etc/resolv.conf).
    pub resolver: SocketAddr,
    /// Lines for the log: configuration notices and what was generated.
    pub notices: Vec<String>,
    /// The configuration file (`None`: the embedded default), read again
    /// on reload.
    pub source: Option<PathBuf>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("s2s", &self.s2s)
            .field("s2s_direct_tls", &self.s2s_direct_tls)
            .finish_non_exhaustive()
    }
}

/// Parses and validates a configuration file; the notices on success.
pub fn check(path: &Path) -> Result<(Config, Vec<String>), String> {
    check_text(path, &read(path)?)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// [`check`] of `text` as the content of `path` (the configuration
/// editors check their result before writing it).
pub fn check_text(path: &Path, text: &str) -> Result<(Config, Vec<String>), String> {
    let loaded = config::parse(text).map_err(|e| format!("{}: {e}", path.display()))?;
    let notices = loaded
        .notices
        .iter()
        .map(|n| format!("{}: {n}", path.display()))
        .collect();
    Ok((loaded.config, notices))
}

/// Where the admin socket of the instance running `path` (the embedded
/// default without one) is: beside its store, relative paths taken from
/// the configuration file's directory as the instance takes them.
pub fn admin_socket(path: Option<&Path>) -> Result<PathBuf, String> {
    let (config, base) = match path {
        Some(p) => (
            check(p)?.0,
            p.parent().map(Path::to_path_buf).unwrap_or_default(),
        ),
        None => (Config::embedded_default(), PathBuf::new()),
    };
    Ok(super::admin_socket::path_for(
        &base.join(config.store.state_dir()),
    ))
}

/// How long before its expiry `xfed check` warns of the certificate.
pub const EXPIRY_WARNING_SECS: u64 = 30 * 86_400;

/// `xfed check`: the configuration of [`check`], and the certificate it
/// names, read as `run` would: it must name every local domain (a
/// wildcard covers one label, never the bare domain: `*.example.com` is
/// no certificate for `example.com`), and a notice says when it expires
/// within 30 days of `unix_now`, or that with no `[[access]]` rule every
/// local user may federate (Lync's default was nobody).
pub fn check_deployment(path: &Path, unix_now: u64) -> Result<(Config, Vec<String>), String> {
    check_deployment_text(path, &read(path)?, unix_now)
}

/// [`check_deployment`] of `text` as the content of `path`.
pub fn check_deployment_text(
    path: &Path,
    text: &str,
    unix_now: u64,
) -> Result<(Config, Vec<String>), String> {
    let (config, mut notices) = check_text(path, text)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let cert_path = if config.tls.certificate.is_absolute() {
        config.tls.certificate.clone()
    } else {
        base.join(&config.tls.certificate)
    };
    let pem = std::fs::read_to_string(&cert_path)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert_path.display()))?;
    let chain = tls::parse_pem_certs(&pem).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| format!("{}: no certificate", cert_path.display()))?;
    let names = tls::cert_identities(leaf).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let missing: Vec<&str> = config
        .gateway
        .domains
        .iter()
        .filter(|d| !names.matches(d))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{}: the certificate does not name {} (a local domain needs a DNS name of its own; a wildcard does not cover the bare domain)",
            cert_path.display(),
            missing.join(", ")
        ));
    }
    let not_after =
        tls::cert_not_after(leaf).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if not_after <= unix_now {
        notices.push(format!(
            "{}: the certificate has expired",
            cert_path.display()
        ));
    } else if not_after - unix_now < EXPIRY_WARNING_SECS {
        notices.push(format!(
            "{}: the certificate expires in {} day(s)",
            cert_path.display(),
            (not_after - unix_now) / 86_400
        ));
    }
    if config.access.is_empty() {
        notices.push(format!(
            "{}: no [[access]] rule: every local user may federate over XMPP (Lync's default allowed nobody; add rules to choose)",
            path.display()
        ));
    }
    Ok((config, notices))
}

/// Loads a deployment from `path`, or the embedded default when `None`
/// (generating its self-signed certificate and secret on first start).
pub fn load(path: Option<&Path>) -> Result<Deployment, String> {
    let (config, mut notices, base) = match path {
        Some(p) => {
            let (c, n) = check(p)?;
            let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
            (c, n, base)
        }
        None => (Config::embedded_default(), Vec::new(), PathBuf::new()),
    };
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let cert_path = resolve(&config.tls.certificate);
    let key_path = resolve(&config.tls.key);
    if path.is_none() && !cert_path.exists() {
        make_self_signed(&config.gateway.domains, &cert_path, &key_path)?;
        notices.push(format!(
            "generated a self-signed certificate for {} in {}",
            config.gateway.domains.join(", "),
            cert_path.display()
        ));
    }
    let chain_pem = std::fs::read_to_string(&cert_path)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert_path.display()))?;
    let key_pem = std::fs::read_to_string(&key_path)
        .map_err(|e| format!("cannot read key {}: {e}", key_path.display()))?;
    let identity = LocalIdentity::from_pem(&chain_pem, &key_pem)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if let Ok(ids) = identity.identities() {
        for d in &config.gateway.domains {
            if !ids.matches(d) {
                notices.push(format!(
                    "warning: certificate {} does not name {d}; peers will not accept SASL EXTERNAL or dialback by certificate for it",
                    cert_path.display()
                ));
            }
        }
    }
    let (trust, skipped) = trust_anchors(&config.tls.trust, &base)?;
    notices.extend(skipped);
    let store = match &config.store.url {
        StoreUrl::Sqlite(p) => StoreUrl::Sqlite(resolve(p)),
        StoreUrl::Postgres(url) => StoreUrl::Postgres(url.clone()),
    };
    let state_dir = resolve(&config.store.state_dir());
    let dialback_secret = match &config.gateway.dialback_secret {
        Some(s) => s.expose().to_owned(),
        None => {
            // In the state directory, not beside the certificate: it is
            // the one place a hardened service may write (the certificate
            // may sit in a read-only /etc/xfed).
            load_or_make_secret(&state_dir.join("dialback-secret"), &mut notices)?
        }
    };
    let next_hop = match (&config.sip.mode, &config.sip.next_hop) {
        (SipMode::Proxy, Some(hop)) => Some(resolve_next_hop(hop)?),
        _ => None,
    };
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let links = links(&config, &dialback_secret)?;
    let setup = Setup {
        identity: Some(identity),
        trust,
        dialback_secret,
        hosts: hosts_table(),
        sip_udp: Vec::new(),
        next_hop,
        stored: Default::default(),
        links,
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(Deployment {
        s2s: config.listen.s2s.clone(),
        s2s_direct_tls: config.listen.s2s_direct_tls.clone(),
        internal: config
            .listen
            .internal
            .filter(|_| config.gateway.role == crate::config::Role::Edge),
        sip: config.listen.sip.clone(),
        store,
        state_dir,
        config: Arc::new(config),
        setup,
        seed,
        unix_now,
        resolver: resolver(),
        notices,
        source: path.map(Path::to_path_buf),
    })
}

/// The anchors of `tls.trust` (relative paths from `base`), and a
/// notice when system roots had to be skipped: for the gateway and for
/// `xfed plan --check`, which judges chains as the gateway does.
pub fn trust_anchors(trust: &Trust, base: &Path) -> Result<(TrustAnchors, Option<String>), String> {
    match trust {
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            let (anchors, skipped) = TrustAnchors::from_der_roots_lossy(found.certs);
            let notice = (skipped > 0)
                .then(|| format!("{skipped} system CA certificate(s) could not be used"));
            Ok((anchors, notice))
        }
        Trust::File(p) => {
            let p = if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            };
            let pem = std::fs::read_to_string(&p)
                .map_err(|e| format!("cannot read CA bundle {}: {e}", p.display()))?;
            let roots = tls::parse_pem_certs(&pem).map_err(|e| format!("{}: {e}", p.display()))?;
            let anchors =
                TrustAnchors::from_der_roots(roots).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((anchors, None))
        }
    }
}

/// `sip.next_hop` resolved once at start (blocking, like the rest of
/// start-up): `sip:host[:port][;transport=udp|tcp|tls][;maddr=ip]` or
/// `sips:host[:port]`. The address is `maddr` when given (RFC 3261
/// section 19.1.1), else the host's; over TLS the certificate must name
/// the host.
fn resolve_next_hop(hop: &str) -> Result<NextHop, String> {
    let uri = Uri::parse(hop).map_err(|e| format!("sip.next_hop {hop}: {e}"))?;
    let transport = match uri.transport() {
        Some(t) if t.eq_ignore_ascii_case("tcp") => SipTransport::Tcp,
        Some(t) if t.eq_ignore_ascii_case("tls") => SipTransport::Tls,
        _ if uri.scheme() == sip::Scheme::Sips => SipTransport::Tls,
        _ => SipTransport::Udp,
    };
    let host = match uri.host() {
        Some(sip::Host::Domain(d)) => d.clone(),
        Some(sip::Host::V4(ip)) => ip.to_string(),
        Some(sip::Host::V6(ip)) => format!("[{ip}]"),
        None => return Err(format!("sip.next_hop {hop}: no host")),
    };
    let default_port = if transport == SipTransport::Tls {
        5061
    } else {
        5060
    };
    let port = uri.port().unwrap_or(default_port);
    let address_of = match uri.maddr() {
        Some(maddr) if maddr.contains(':') && !maddr.starts_with('[') => format!("[{maddr}]"),
        Some(maddr) => maddr.to_owned(),
        None => host.clone(),
    };
    let addr = first_address(
        format!("{address_of}:{port}"),
        &format!("sip.next_hop {hop}"),
    )?;
    Ok(NextHop {
        addr,
        transport,
        name: host,
    })
}

/// The links of a gateway that does not federate itself: `[component]`
/// (plain, its secret), or one per `[internal] connect` edge (TLS, the
/// deployment's dialback secret, for the first local domain), each
/// address resolved once at start (blocking, like the rest of start-up).
fn links(config: &Config, dialback_secret: &str) -> Result<Vec<ComponentSetup>, String> {
    let resolve = |what: &str, c: &crate::config::Connect| {
        first_address(
            (c.host.as_str(), c.port),
            &format!("{what} {}:{}", c.host, c.port),
        )
    };
    let mut links = Vec::new();
    if let Some(c) = &config.component {
        links.push(ComponentSetup {
            addr: resolve("component.server", &c.server)?,
            domain: c.domain.clone(),
            secret: c.secret.expose().to_owned(),
            tls: false,
        });
    }
    for edge in config.internal.iter().flat_map(|i| &i.connect) {
        links.push(ComponentSetup {
            addr: resolve("internal.connect", edge)?,
            domain: config.gateway.domains.first().cloned().unwrap_or_default(),
            secret: dialback_secret.to_owned(),
            tls: true,
        });
    }
    Ok(links)
}

/// The first address `target` resolves to (blocking, at start-up);
/// errors say `what`.
fn first_address(target: impl std::net::ToSocketAddrs, what: &str) -> Result<SocketAddr, String> {
    target
        .to_socket_addrs()
        .map_err(|e| format!("{what}: {e}"))?
        .next()
        .ok_or_else(|| format!("{what}: no address"))
}

/// Most connections the deployment holds at once.
pub fn connection_limit(config: &Config) -> usize {
    config.gateway.connection_limit as usize
}

fn make_self_signed(domains: &[String], cert: &Path, key: &Path) -> Result<(), String> {
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let pair = rcgen::generate_simple_self_signed(domains.to_vec())
        .map_err(|e| format!("cannot generate a certificate: {e}"))?;
    std::fs::write(cert, pair.cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
    write_private(key, pair.signing_key.serialize_pem().as_bytes())
}

fn load_or_make_secret(path: &Path, notices: &mut Vec<String>) -> Result<String, String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        if !s.trim().is_empty() {
            return Ok(s.trim().to_owned());
        }
    }
    let secret = super::random_token().map_err(|e| format!("no randomness from the OS: {e}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_private(path, secret.as_bytes())?;
    notices.push(format!("generated a dialback secret in {}", path.display()));
    Ok(secret)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The first nameserver of /etc/resolv.conf, or 127.0.0.1:53.
pub fn resolver() -> SocketAddr {
    std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|text| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .find_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 53)))
}

/// /etc/hosts as read now (empty when it cannot be read).
pub fn hosts_table() -> HostsTable {
    std::fs::read_to_string("/etc/hosts")
        .map(|text| HostsTable::parse(&text))
        .unwrap_or_default()
}

/// How long a runtime waits for peers to close after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
