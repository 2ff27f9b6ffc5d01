//! `xfed plan`: reads the configuration and its certificate, prints the
//! three summaries of [`crate::plan`] as tables or JSON; with `--check`,
//! verifies them live on the runtime's executor: the records through the
//! core's DNS (one exchange at a time, [`dns_exchange`]), the listeners
//! and partners through [`Probe`]s, each finding a [`Line`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::dns_exchange;
use super::runtime::{timeout, Runtime};
use super::setup;
use crate::config::{Config, Negotiation, SipTransport};
use crate::dns::{self, Answer, RecordType, Resolution, ResolveOptions};
use crate::plan::records::{DIRECT_TLS_SERVICE, STARTTLS_SERVICE};
use crate::plan::verdict::{self, chain_line, reach_line, srv_lines};
use crate::plan::{default_host, Line, Plan, Probe, ProbeKind, Reached, Status};
use crate::tls::{self, CallerClock, TrustAnchors};

/// `xfed plan`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The TOML configuration file; none for the embedded default.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Verify every line live: DNS records, listeners, certificate
    /// chain, partners; exits non-zero when a line is an error.
    #[arg(long)]
    pub check: bool,
    /// Machine-readable JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The host name the SRV records point at (default: `xmpp.` and the
    /// first local domain).
    #[arg(long)]
    pub host: Option<String>,
    /// The DNS server `--check` asks (default: the first nameserver of
    /// /etc/resolv.conf, as the gateway).
    #[arg(long)]
    pub resolver: Option<SocketAddr>,
}

/// How long one probe or lookup may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Partner addresses tried at most, in the gateway's order.
const MAX_PARTNER_CANDIDATES: usize = 4;

/// What a plan is made from.
struct Loaded {
    config: Config,
    base: PathBuf,
    plan: Plan,
    resolver: SocketAddr,
    unix_now: u64,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn load(args: &Args) -> Result<Loaded, String> {
    let (config, base) = match &args.config {
        Some(p) => (
            setup::check(p)?.0,
            p.parent().map(Path::to_path_buf).unwrap_or_default(),
        ),
        None => (Config::embedded_default(), PathBuf::new()),
    };
    let cert = &config.tls.certificate;
    let cert_path = if cert.is_absolute() {
        cert.clone()
    } else {
        base.join(cert)
    };
    let chain = std::fs::read_to_string(&cert_path)
        .map_err(|e| format!("cannot read: {e}"))
        .and_then(|pem| tls::parse_pem_certs(&pem).map_err(|e| e.to_string()));
    let host = args.host.clone().unwrap_or_else(|| default_host(&config));
    let resolver = args.resolver.unwrap_or_else(setup::resolver);
    let now = unix_now();
    let plan = Plan::new(
        &config,
        &host,
        &cert_path.display().to_string(),
        chain.as_deref().map_err(Clone::clone),
        now,
        resolver,
    );
    Ok(Loaded {
        config,
        base,
        plan,
        resolver,
        unix_now: now,
    })
}

/// Without `--check`: prints the summaries and exits; with it, says the
/// runtime must run [`check`].
pub fn mode(args: Args) -> super::driver::Mode {
    if args.check {
        return super::driver::Mode::Plan(args);
    }
    super::driver::Mode::Exit(match load(&args) {
        Ok(l) => {
            if args.json {
                println!("{}", json(&l.plan));
            } else {
                print!("{}", text(&l.plan));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    })
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Columns padded to their widest cell, the last one not.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&headers).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
    }
    out
}

/// The three summaries as tables.
pub fn text(plan: &Plan) -> String {
    let mut out = String::from("Firewall rules\n");
    let rows: Vec<Vec<String>> = plan
        .firewall
        .iter()
        .map(|r| {
            vec![
                format!("{:?}", r.direction).to_lowercase(),
                r.protocol.to_owned(),
                r.address.clone(),
                r.port.to_string(),
                r.service.to_owned(),
                r.needed_by.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "DIRECTION",
            "PROTOCOL",
            "ADDRESS",
            "PORT",
            "SERVICE",
            "NEEDED BY",
        ],
        &rows,
    ));
    let c = &plan.certificate;
    out.push_str(&format!("\nCertificate {}\n", c.file));
    if let Some(e) = &c.error {
        out.push_str(&format!("cannot be used: {e}\n"));
    }
    let rows: Vec<Vec<String>> = c
        .needed
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                if n.required {
                    "required"
                } else {
                    "recommended"
                }
                .to_owned(),
                match n.carried {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "?",
                }
                .to_owned(),
                n.why.to_owned(),
            ]
        })
        .collect();
    out.push_str(&table(&["NAME", "NEED", "CARRIED", "WHY"], &rows));
    if c.error.is_none() {
        out.push_str(&format!("carries: {}\n", c.carried.join(", ")));
    }
    if let (Some(t), Some(days)) = (c.not_after, c.days_left) {
        out.push_str(&format!(
            "notAfter: {} ({days} days left)\n",
            crate::plan::certificate::utc(t)
        ));
    }
    if let Some(client) = c.client_auth {
        out.push_str(&format!(
            "TLS client certificate (SASL EXTERNAL on streams xfed opens): {}\n",
            if client {
                "yes"
            } else {
                "no (extKeyUsage lacks clientAuth)"
            }
        ));
    }
    out.push_str(&format!(
        "\nDNS records to publish (target {})\n",
        plan.host
    ));
    let opt = |v: Option<u16>| v.map(|v| v.to_string()).unwrap_or_default();
    let rows: Vec<Vec<String>> = plan
        .dns
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.rtype.to_owned(),
                opt(r.priority),
                opt(r.weight),
                opt(r.port),
                r.value.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["NAME", "TYPE", "PRIORITY", "WEIGHT", "PORT", "VALUE"],
        &rows,
    ));
    out
}

/// `--check`'s JSON: the plan and the lines.
#[derive(Serialize)]
struct Checked<'a> {
    plan: &'a Plan,
    lines: &'a [Line],
    errors: usize,
    warnings: usize,
}

/// `xfed plan --check`, on the runtime `R`: prints each line as it is
/// found (or everything as JSON at the end); fails when a line is an
/// error.
pub async fn check<R: Runtime>(args: Args) -> ExitCode {
    let loaded = match load(&args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let trust = match setup::trust_anchors(&loaded.config.tls.trust, &loaded.base) {
        Ok((t, _)) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut checker = Checker::<R> {
        l: &loaded,
        trust,
        clock: Arc::new(CallerClock::new(loaded.unix_now)),
        lines: Vec::new(),
        print: !args.json,
        runtime: std::marker::PhantomData,
    };
    checker.run().await;
    let lines = checker.lines;
    let errors = lines.iter().filter(|l| l.status == Status::Error).count();
    let warnings = lines.iter().filter(|l| l.status == Status::Warning).count();
    if args.json {
        println!(
            "{}",
            json(&Checked {
                plan: &loaded.plan,
                lines: &lines,
                errors,
                warnings,
            })
        );
    } else {
        println!(
            "{} line(s): {} ok, {warnings} warning(s), {errors} error(s)",
            lines.len(),
            lines.len() - errors - warnings
        );
    }
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One `--check` run: what it was loaded with and the lines so far.
struct Checker<'a, R> {
    l: &'a Loaded,
    trust: TrustAnchors,
    clock: Arc<CallerClock>,
    lines: Vec<Line>,
    print: bool,
    runtime: std::marker::PhantomData<R>,
}

/// Where a listener is reached from this host: its address, loopback
/// for "every interface".
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

impl<R: Runtime> Checker<'_, R> {
    fn push(&mut self, line: Line) {
        if self.print {
            println!("{line}");
        }
        self.lines.push(line);
    }

    fn first_domain(&self) -> String {
        self.l
            .config
            .gateway
            .domains
            .first()
            .cloned()
            .unwrap_or_default()
    }

    async fn run(&mut self) {
        for line in verdict::certificate_lines(&self.l.plan.certificate) {
            self.push(line);
        }
        self.listeners().await;
        self.dns().await;
        self.partners().await;
    }

    async fn probe(
        &self,
        addr: SocketAddr,
        kind: ProbeKind,
        from: Option<&str>,
        to: &str,
    ) -> Result<Reached, String> {
        self.clock.set(unix_now());
        let config = tls::probe_client_config(self.clock.clone(), kind == ProbeKind::DirectTls);
        let probe = Probe::new(kind, from, to, config);
        match timeout::<R, _>(PROBE_TIMEOUT, drive::<R>(addr, probe)).await {
            Some(r) => r,
            None => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        }
    }

    /// The TLS server's chain, judged for every local domain.
    fn judge_chain(&mut self, section: &'static str, subject: &str, reached: &Reached) {
        if reached.tls_version.is_none() {
            return;
        }
        let dialback = verdict::dialback_everywhere(&self.l.config);
        for d in self.l.config.gateway.domains.clone() {
            let line = chain_line(
                section,
                subject,
                &reached.chain,
                &self.trust,
                unix_now(),
                &d,
                dialback,
            );
            self.push(line);
        }
    }

    async fn listeners(&mut self) {
        let listen = self.l.config.listen.clone();
        let domain = self.first_domain();
        let mut xmpp: Vec<(&'static str, SocketAddr, ProbeKind)> = Vec::new();
        xmpp.extend(listen.s2s.iter().map(|a| ("s2s", *a, ProbeKind::StartTls)));
        xmpp.extend(
            listen
                .s2s_direct_tls
                .iter()
                .map(|a| ("s2s_direct_tls", *a, ProbeKind::DirectTls)),
        );
        for (service, addr, kind) in xmpp {
            let subject = format!("{service} {addr}");
            let outcome = self.probe(reachable(addr), kind, None, &domain).await;
            self.push(reach_line("listener", &subject, kind, &outcome));
            if let Ok(r) = &outcome {
                self.judge_chain("listener", &subject, r);
            }
        }
        for l in &listen.sip {
            let subject = format!("sip {}:{}", transport(l.transport), l.addr);
            let line = match l.transport {
                SipTransport::Tls => {
                    let outcome = self
                        .probe(reachable(l.addr), ProbeKind::Tls, None, &domain)
                        .await;
                    reach_line("listener", &subject, ProbeKind::Tls, &outcome)
                }
                SipTransport::Tcp => self.connect_line(&subject, l.addr).await,
                SipTransport::Udp => udp_line(&subject, l.addr),
            };
            self.push(line);
        }
        let edge = self.l.config.gateway.role == crate::config::Role::Edge;
        if let Some(a) = listen.internal.filter(|_| edge) {
            let line = self.connect_line(&format!("internal {a}"), a).await;
            self.push(line);
        }
        if let Some(a) = listen.metrics {
            let line = self.connect_line(&format!("metrics {a}"), a).await;
            self.push(line);
        }
    }

    async fn connect_line(&self, subject: &str, addr: SocketAddr) -> Line {
        let to = reachable(addr);
        match timeout::<R, _>(PROBE_TIMEOUT, R::connect(to)).await {
            Some(Ok(_)) => Line::new("listener", subject, Status::Ok, "accepts TCP connections"),
            Some(Err(e)) => Line::new("listener", subject, Status::Error, e.to_string()),
            None => Line::new("listener", subject, Status::Error, "connect timed out"),
        }
    }

    async fn dns(&mut self) {
        let listen = self.l.config.listen.clone();
        let ports = |addrs: &[SocketAddr]| -> Vec<u16> { addrs.iter().map(|a| a.port()).collect() };
        let kinds = [
            (STARTTLS_SERVICE, ports(&listen.s2s), ProbeKind::StartTls),
            (
                DIRECT_TLS_SERVICE,
                ports(&listen.s2s_direct_tls),
                ProbeKind::DirectTls,
            ),
        ];
        for domain in self.l.config.gateway.domains.clone() {
            for (service, ports, kind) in &kinds {
                let name = format!("{service}.{domain}");
                let answer = self.lookup(&name, RecordType::Srv).await;
                let absent = matches!(
                    answer,
                    Ok(Answer::NxDomain { .. } | Answer::NoRecords { .. })
                );
                if ports.is_empty() && absent {
                    continue;
                }
                let required = kind == &ProbeKind::StartTls;
                let (lines, usable) = srv_lines(&name, &answer, ports, required);
                for line in lines {
                    self.push(line);
                }
                for r in usable {
                    let addrs = self.addresses(&r.target).await;
                    if addrs.is_empty() {
                        self.push(Line::new(
                            "dns",
                            format!("{} A/AAAA", r.target),
                            Status::Error,
                            format!("the target of {name} has no address"),
                        ));
                    }
                    for ip in addrs {
                        let addr = SocketAddr::new(ip, r.port);
                        let subject = format!("{domain} via {} {addr}", r.target);
                        let outcome = self.probe(addr, *kind, None, &domain).await;
                        self.push(reach_line("dns", &subject, *kind, &outcome));
                    }
                }
            }
        }
        self.host_records().await;
    }

    /// The planned A/AAAA records of the SRV target, against DNS.
    async fn host_records(&mut self) {
        let planned: Vec<_> = self
            .l
            .plan
            .dns
            .iter()
            .filter(|r| r.rtype != "SRV")
            .cloned()
            .collect();
        for r in planned {
            let rtype = if r.rtype == "A" {
                RecordType::A
            } else {
                RecordType::Aaaa
            };
            let subject = format!("{} {}", r.name, r.rtype);
            let line = match self.lookup(&r.name, rtype).await {
                Ok(Answer::Addrs { addrs, .. }) => {
                    let list: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
                    let listed = r.value.parse::<IpAddr>().ok();
                    match listed {
                        Some(ip) if !addrs.contains(&ip) => Line::new(
                            "dns",
                            subject,
                            Status::Error,
                            format!("published {}, the listeners are on {ip}", list.join(", ")),
                        ),
                        _ => Line::new(
                            "dns",
                            subject,
                            Status::Ok,
                            format!("published {}", list.join(", ")),
                        ),
                    }
                }
                Ok(_) => Line::new("dns", subject, Status::Error, "not published"),
                Err(e) => Line::new("dns", subject, Status::Error, e),
            };
            self.push(line);
        }
    }

    async fn addresses(&self, host: &str) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for rtype in [RecordType::Aaaa, RecordType::A] {
            if let Ok(Answer::Addrs { addrs, .. }) = self.lookup(host, rtype).await {
                out.extend(addrs);
            }
        }
        out
    }

    /// One question to the resolver, through the core's codec: asked
    /// again once if no answer comes within 5 s (glibc's default), over
    /// TCP when the answer was truncated.
    async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Answer, String> {
        let mut tcp = false;
        for _ in 0..2 {
            let id = random_u16();
            let query = dns::query(id, name, rtype).map_err(|e| e.to_string())?;
            let asked = dns_exchange::ask::<R>(self.l.resolver, &query, tcp);
            let reply = match timeout::<R, _>(Duration::from_secs(5), asked).await {
                Some(Ok(r)) => r,
                Some(Err(e)) => return Err(format!("resolver {}: {e}", self.l.resolver)),
                None => continue,
            };
            match dns::parse_answer(&reply, id, name, rtype) {
                Ok(Answer::Truncated) if !tcp => tcp = true,
                other => return other.map_err(|e| e.to_string()),
            }
        }
        Err(format!("resolver {}: no answer", self.l.resolver))
    }

    async fn partners(&mut self) {
        let from = self.first_domain();
        let partners = self.l.config.partners.clone();
        let hosts = Arc::new(setup::hosts_table());
        for p in &partners {
            for domain in p.domains() {
                let tls = p.policy.tls != Negotiation::NotSupported;
                let options = ResolveOptions {
                    direct_tls: tls,
                    connect: p.connect.as_ref().map(|c| dns::Connect {
                        host: c.host.clone(),
                        port: c.port,
                        direct_tls: false,
                    }),
                    hosts: hosts.clone(),
                    ..ResolveOptions::default()
                };
                let candidates = match self.resolve(domain, &options).await {
                    Ok(c) => c,
                    Err(e) => {
                        self.push(Line::new("partner", domain, Status::Error, e));
                        continue;
                    }
                };
                let mut failures = Vec::new();
                let mut reached = None;
                for c in candidates.iter().take(MAX_PARTNER_CANDIDATES) {
                    let kind = match (c.direct_tls, tls) {
                        (true, _) => ProbeKind::DirectTls,
                        (false, true) => ProbeKind::StartTls,
                        (false, false) => ProbeKind::Plain,
                    };
                    match self.probe(c.addr, kind, Some(&from), domain).await {
                        Ok(r) => {
                            reached = Some((c.clone(), kind, r));
                            break;
                        }
                        Err(e) => failures.push(format!("{} {}: {e}", c.host, c.addr)),
                    }
                }
                let Some((c, kind, r)) = reached else {
                    self.push(Line::new(
                        "partner",
                        domain,
                        Status::Error,
                        failures.join("; "),
                    ));
                    continue;
                };
                let subject = format!("{domain} via {} {}", c.host, c.addr);
                let mut line = reach_line("partner", &subject, kind, &Ok(r.clone()));
                if kind == ProbeKind::Plain && r.starttls_required {
                    line.status = Status::Error;
                    line.reason =
                        "the partner requires TLS, which tls = \"not-supported\" rules out"
                            .to_owned();
                }
                if !failures.is_empty() {
                    line.status = Status::Warning;
                    line.reason = format!(
                        "{}; earlier addresses failed: {}",
                        line.reason,
                        failures.join("; ")
                    );
                }
                self.push(line);
                if r.tls_version.is_some() {
                    let dialback = p.policy.dialback;
                    let line = chain_line(
                        "partner",
                        domain,
                        &r.chain,
                        &self.trust,
                        unix_now(),
                        domain,
                        dialback,
                    );
                    self.push(line);
                }
            }
        }
    }

    /// The gateway's own resolution of a partner domain (SRV, XEP-0368,
    /// `connect`, the hosts table), driven one query at a time.
    async fn resolve(
        &self,
        domain: &str,
        options: &ResolveOptions,
    ) -> Result<Vec<dns::Candidate>, String> {
        let mut r = Resolution::new(domain, options, random_u64());
        loop {
            if let Some(outcome) = r.poll_outcome() {
                return outcome.map_err(|e| e.to_string());
            }
            if let Some(q) = r.poll_query(Instant::now()) {
                let tcp = q.transport == dns::Transport::Tcp;
                let asked = dns_exchange::ask::<R>(self.l.resolver, &q.message, tcp);
                match timeout::<R, _>(q.timeout, asked).await {
                    Some(Ok(bytes)) => r.handle_response(q.id, &bytes),
                    _ => {
                        let due = r.poll_timeout().unwrap_or_else(Instant::now);
                        r.handle_timeout(due.max(Instant::now()));
                    }
                }
                continue;
            }
            match r.poll_timeout() {
                Some(due) => r.handle_timeout(due.max(Instant::now())),
                None => return Err("the resolution stalled".to_owned()),
            }
        }
    }
}

fn transport(t: SipTransport) -> &'static str {
    match t {
        SipTransport::Tcp => "tcp",
        SipTransport::Udp => "udp",
        SipTransport::Tls => "tls",
    }
}

/// A UDP listener has no handshake: from this host, whether its address
/// is taken (by xfed, when it runs) tells whether something listens.
fn udp_line(subject: &str, addr: SocketAddr) -> Line {
    match std::net::UdpSocket::bind(addr) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Line::new(
            "listener",
            subject,
            Status::Ok,
            "bound (by xfed, when it runs)",
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Line::new(
            "listener",
            subject,
            Status::Warning,
            "not an address of this host: cannot tell from here",
        ),
        Err(e) => Line::new("listener", subject, Status::Warning, e.to_string()),
        Ok(_) => Line::new("listener", subject, Status::Error, "nothing listens on it"),
    }
}

/// Query ids and the SRV order from the OS's generator, as the gateway.
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_be_bytes(b)
}

fn random_u16() -> u16 {
    // Truncation intended: the low 16 bits of a random word.
    random_u64() as u16
}

/// Runs one probe over a fresh connection to `addr`; errors without the
/// address, which the line's subject names.
async fn drive<R: Runtime>(addr: SocketAddr, mut probe: Probe) -> Result<Reached, String> {
    let mut s = R::connect(addr).await.map_err(|e| e.to_string())?;
    probe.connected();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Some(out) = probe.poll_transmit() {
            R::write_all(&mut s, &out)
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some(outcome) = probe.outcome() {
            return outcome.clone();
        }
        match super::runtime::read::<R>(&s, &mut buf).await {
            Ok(0) => probe.handle_eof(),
            Ok(n) => probe.handle_bytes(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}
