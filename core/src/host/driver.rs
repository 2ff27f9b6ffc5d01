//! The runtime-independent half of both binaries' event loop: what to do
//! with each gateway output, `xfed ping`, shutdown, and the `check`
//! command. [`Io`] is what the driver asks of the socket side; its one
//! implementation, over any executor, is in [`super::runtime`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use super::cli::{Cli, Command, ContactAction};
use super::metrics_listener;
use super::setup::{self, Deployment, SHUTDOWN_GRACE};
use super::store_worker::{self, StoreWorker};
use super::{admin_edit, admin_socket};
use crate::config::SipTransport;
use crate::event::{Event, Level};
use crate::gateway::Gateway;
use crate::ids::{ConnId, Listener, QueryId};
use crate::logtext;
use crate::metrics::Registry;
use crate::output::Output;
use crate::xmpp::{ping, stanza};

/// What the command line asks a runtime to do.
#[derive(Debug)]
pub enum Mode {
    /// Exit with this code (the `check` command ran).
    Exit(ExitCode),
    /// Run the gateway from this file (or the embedded default), and
    /// ping a domain if asked.
    Run {
        /// The configuration file; `None` for the embedded default.
        config: Option<PathBuf>,
        /// `xfed ping`: the domain and how long to wait.
        ping: Option<(String, Duration)>,
    },
    /// `xfed plan --check`: verify the plan on the runtime's executor.
    Plan(super::plan::Args),
}

/// Reads the command line, running `check` at once.
pub fn mode(cli: Cli) -> Mode {
    match cli.command {
        Some(Command::Check { config }) => Mode::Exit(check(&config)),
        Some(Command::Plan(args)) => super::plan::mode(args),
        Some(Command::Contact { config, action }) => Mode::Exit(contact(config.as_deref(), action)),
        Some(Command::Status { config }) => {
            Mode::Exit(ask(config.as_deref(), &crate::admin::Request::Status))
        }
        Some(Command::Reload { config }) => {
            Mode::Exit(ask(config.as_deref(), &crate::admin::Request::Reload))
        }
        Some(Command::Partner { config, action }) => {
            Mode::Exit(admin_edit::partner(config.as_deref(), action))
        }
        Some(Command::Access { config, action }) => {
            Mode::Exit(admin_edit::access(config.as_deref(), action))
        }
        Some(Command::Gateway { config, action }) => {
            Mode::Exit(admin_edit::gateway(config.as_deref(), action))
        }
        Some(Command::ImportLync(args)) => Mode::Exit(admin_edit::import_lync(args)),
        Some(Command::Run { config }) => Mode::Run {
            config: Some(config),
            ping: None,
        },
        Some(Command::Ping {
            config,
            to,
            timeout,
        }) => Mode::Run {
            config: Some(config),
            ping: Some((to, Duration::from_secs(timeout))),
        },
        None => Mode::Run {
            config: None,
            ping: None,
        },
    }
}

/// What a runtime's executor runs: see [`super::runtime::run`].
#[derive(Debug)]
pub enum Start {
    /// The deployment, with the ping of `xfed ping`.
    Serve(Box<Deployment>, Option<(String, Duration)>),
    /// `xfed plan --check`.
    Plan(super::plan::Args),
}

/// What a runtime's `main` does before it starts its executor: logging,
/// the command line (running `check` at once), and what to run: the
/// deployment with the ping of `xfed ping`, or a plan to check; `Err` is
/// the exit status when there is nothing to run.
pub fn start() -> Result<Start, ExitCode> {
    let cli = Cli::from_env();
    super::init_logging(cli.log_format);
    let (config, ping) = match mode(cli) {
        Mode::Exit(code) => return Err(code),
        Mode::Plan(args) => return Ok(Start::Plan(args)),
        Mode::Run { config, ping } => (config, ping),
    };
    match setup::load(config.as_deref()) {
        Ok(dep) => Ok(Start::Serve(Box::new(dep), ping)),
        Err(e) => {
            error!("{e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// The line that says a runtime is up: the local domains and each
/// listener it bound (`bound`: address and kind). Logged once everything
/// answers, the admin socket included, so that whoever waits for it can
/// use them all.
pub fn serving(runtime: &str, dep: &Deployment, bound: &[String]) -> String {
    format!(
        "xfed ({runtime}) serving {} on {}",
        dep.config.gateway.domains.join(", "),
        bound.join(", ")
    )
}

/// `xfed check`: prints the notices and OK, or the error.
pub fn check(path: &Path) -> ExitCode {
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match setup::check_deployment(path, unix_now) {
        Ok((_, notices)) => {
            notices.iter().for_each(|n| println!("{n}"));
            println!("{}: OK", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `xfed contact ...`: asks the running instance of the configuration
/// (the embedded default without one) through its admin socket, prints
/// the answer; fails when it refused or cannot be reached.
pub fn contact(config: Option<&Path>, action: ContactAction) -> ExitCode {
    match action.request() {
        Ok(request) => ask(config, &request),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `request` to the running instance of the configuration through
/// its admin socket and prints the answer (`xfed contact`, `xfed
/// status`); fails when it refused or cannot be reached.
pub fn ask(config: Option<&Path>, request: &crate::admin::Request) -> ExitCode {
    let reply = setup::admin_socket(config).and_then(|path| admin_socket::ask(&path, request));
    match reply {
        Ok(r) if r.ok => {
            r.lines.iter().for_each(|l| println!("{l}"));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("{r}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// What socket tasks tell the gateway task; `S` is the runtime's TCP
/// stream. One enum for both runtimes, handled by [`Driver::handle`].
#[derive(Debug)]
pub enum Input<S> {
    /// A listener of this kind accepted a connection from this address.
    Accepted(Listener, S, SocketAddr),
    /// An outbound connection is up.
    Connected(ConnId, S),
    /// An outbound connection could not be made, and why.
    ConnectFailed(ConnId, String),
    /// Bytes from a connection.
    Bytes(ConnId, Vec<u8>),
    /// The peer closed a connection (or it failed).
    Closed(ConnId),
    /// A DNS reply.
    Dns(QueryId, Vec<u8>),
    /// A datagram on our UDP socket (first) from a peer (second).
    Datagram(SocketAddr, SocketAddr, Vec<u8>),
    /// SIGTERM or SIGINT.
    Signal,
    /// SIGHUP: read the configuration again.
    Reload,
    /// A congested connection's queue is short again.
    Drained(ConnId),
    /// An operator's request from the admin socket, and where its answer
    /// goes.
    Admin(
        crate::admin::Request,
        std::sync::mpsc::SyncSender<crate::admin::Reply>,
    ),
    /// The status page asks for the gateway's report, and where it goes.
    Report(std::sync::mpsc::SyncSender<Box<crate::gateway::Report>>),
    /// What the shared store holds of one user's rows (another instance
    /// changed them), from `store_watch`.
    Shared(crate::store::Shared),
    /// The time [`Driver::wake`] gave has come.
    Timer,
}

/// The TCP listeners of a deployment with their kinds (s2s, direct TLS,
/// SIP over TCP and TLS), for a runtime to bind.
pub fn tcp_listeners(dep: &Deployment) -> Vec<(Listener, SocketAddr)> {
    let s2s = dep.s2s.iter().map(|a| (Listener::S2s, *a));
    let direct = dep
        .s2s_direct_tls
        .iter()
        .map(|a| (Listener::S2sDirectTls, *a));
    let internal = dep.internal.map(|a| (Listener::Internal, a));
    let sip = dep.sip.iter().filter_map(|l| match l.transport {
        SipTransport::Tcp => Some((Listener::SipTcp, l.addr)),
        SipTransport::Tls => Some((Listener::SipTls, l.addr)),
        SipTransport::Udp => None,
    });
    s2s.chain(direct).chain(internal).chain(sip).collect()
}

/// The SIP UDP addresses of a deployment, for a runtime to bind.
pub fn udp_listeners(dep: &Deployment) -> Vec<SocketAddr> {
    dep.sip
        .iter()
        .filter(|l| l.transport == SipTransport::Udp)
        .map(|l| l.addr)
        .collect()
}

/// What a runtime does for the driver.
pub trait Io {
    /// The runtime's TCP stream.
    type Stream;
    /// A reload: binds the listeners of `dep` not bound yet (recording
    /// the SIP UDP addresses in its settings), then stops those it no
    /// longer has, and takes its send-queue bound; the names of those
    /// bound. Nothing changes when a bind fails (`Err`, the line to log).
    fn reconfigure(
        &mut self,
        dep: &mut Deployment,
        registry: Option<metrics_listener::Shared>,
    ) -> Result<Vec<String>, String>;
    /// Starts the task of a connection (accepted or connected).
    fn start_conn(&mut self, conn: ConnId, stream: Self::Stream);
    /// A connection's task ended by itself (the peer closed).
    fn conn_ended(&mut self, conn: ConnId);
    /// Queue bytes on a connection's task.
    fn transmit(&mut self, conn: ConnId, bytes: Vec<u8>);
    /// Tell a connection's task to close once its bytes are out.
    fn close(&mut self, conn: ConnId);
    /// Tell a connection's task to stop reading (`paused`) or to read
    /// again: backpressure, for a queue the connection fills.
    fn pause_reading(&mut self, conn: ConnId, paused: bool);
    /// Open a TCP connection; report back with `Gateway::handle_connected`
    /// or `handle_connect_failed`.
    fn connect(&mut self, conn: ConnId, addr: SocketAddr);
    /// Send a DNS query to the resolver; report the reply with
    /// `Gateway::handle_dns`, and drop the query (and its socket) after
    /// `timeout`, when the core has given up on it.
    fn dns(&mut self, query: QueryId, bytes: Vec<u8>, tcp: bool, timeout: Duration);
    /// Send a UDP datagram from our SIP socket `local` (loss is SIP's to
    /// handle).
    fn datagram(&mut self, local: SocketAddr, peer: SocketAddr, bytes: Vec<u8>);
    /// Connections dropped since the last call because their peer stopped
    /// reading (their [`SendQueue`] went over its limit); the gateway
    /// forgets them.
    fn take_stalled(&mut self) -> Vec<ConnId>;
    /// Connections whose peer reads slower than we send (their
    /// [`SendQueue`] went over half its limit) since the last call; the
    /// connection task reports the end with [`Input::Drained`].
    fn take_congested(&mut self) -> Vec<ConnId>;
}

/// Inputs waiting for the gateway task, at most: socket tasks wait (and
/// the kernel's buffers fill, then drop datagrams) rather than queue
/// without end while the gateway is busy.
pub const INPUT_QUEUE: usize = 256;

/// How many bytes may wait for one connection's socket: twice the largest
/// stanza, so a healthy peer always has room for the next one, and a peer
/// that stops reading costs no more than that before it is dropped.
pub fn send_queue_limit(config: &crate::config::Config) -> usize {
    config.gateway.max_stanza_size.saturating_mul(2)
}

/// What the gateway task holds of one connection's task.
pub trait ConnTask {
    /// Queues bytes; the task writes them in order.
    fn send(&self, bytes: Vec<u8>);
    /// Closes once what is queued is out.
    fn close(&self);
    /// Stops reading (`paused`) or reads again.
    fn pause_reading(&self, paused: bool);
    /// Stops at once, dropping the socket.
    fn abort(self);
}

/// A runtime's connection tasks with their send queues: a peer that lets
/// more than the limit pile up is aborted and reported by
/// [`ConnTable::take_stalled`] (for [`Io::take_stalled`]).
#[derive(Debug)]
pub struct ConnTable<T> {
    conns: HashMap<ConnId, (SendQueue, T)>,
    limit: usize,
    stalled: Vec<ConnId>,
    congested: Vec<ConnId>,
}

impl<T: ConnTask> ConnTable<T> {
    /// Tasks whose queues hold at most `limit` bytes
    /// ([`send_queue_limit`]).
    pub fn new(limit: usize) -> Self {
        ConnTable {
            conns: HashMap::new(),
            limit,
            stalled: Vec::new(),
            congested: Vec::new(),
        }
    }

    /// The bound new connections' queues get.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A new bound (a reload), for bytes queued from now on.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// A new connection's task, with the queue it takes written bytes off.
    pub fn insert(&mut self, conn: ConnId, queue: SendQueue, task: T) {
        self.conns.insert(conn, (queue, task));
    }

    /// The task ended by itself (the peer closed).
    pub fn remove(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }

    /// Queues bytes, or aborts a connection whose peer stopped reading.
    pub fn transmit(&mut self, conn: ConnId, bytes: Vec<u8>) {
        let Some((queue, task)) = self.conns.get(&conn) else {
            return;
        };
        match queue.push(bytes.len(), self.limit) {
            Pushed::Taken => task.send(bytes),
            Pushed::Congested => {
                task.send(bytes);
                self.congested.push(conn);
            }
            Pushed::Stalled => {
                if let Some((_, task)) = self.conns.remove(&conn) {
                    task.abort();
                    self.stalled.push(conn);
                }
            }
        }
    }

    /// Closes a connection once its bytes are out.
    pub fn close(&mut self, conn: ConnId) {
        if let Some((_, task)) = self.conns.remove(&conn) {
            task.close();
        }
    }

    /// Stops reading a connection, or reads it again.
    pub fn pause_reading(&mut self, conn: ConnId, paused: bool) {
        if let Some((_, task)) = self.conns.get(&conn) {
            task.pause_reading(paused);
        }
    }

    /// The connections aborted since the last call.
    pub fn take_stalled(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.stalled)
    }

    /// The connections whose queue went over half the limit since the
    /// last call.
    pub fn take_congested(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.congested)
    }
}

/// Bytes handed to one connection's task and not written yet, shared by
/// the gateway task (which adds) and the connection task (which takes
/// away): the bound on what a slow or silent reader makes us hold, and
/// the congestion the gateway hears about before that bound (half of it
/// on, a quarter off), so that it stops accepting what it cannot send.
#[derive(Clone, Debug, Default)]
pub struct SendQueue(Arc<QueueState>);

#[derive(Debug, Default)]
struct QueueState {
    bytes: AtomicUsize,
    congested: AtomicBool,
}

/// What [`SendQueue::push`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Taken,
    /// Queued, and the queue just went over half the limit.
    Congested,
    /// Over the limit: the peer is not reading, drop the connection.
    Stalled,
}

impl SendQueue {
    /// Counts `n` more bytes against `limit`.
    pub fn push(&self, n: usize, limit: usize) -> Pushed {
        let after = self
            .0
            .bytes
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        if after > limit {
            Pushed::Stalled
        } else if after > limit / 2 && !self.0.congested.swap(true, Ordering::Relaxed) {
            Pushed::Congested
        } else {
            Pushed::Taken
        }
    }

    /// `n` bytes went out to the socket; `true` when that ended a
    /// congestion (under a quarter of `limit` again): tell the gateway.
    pub fn written(&self, n: usize, limit: usize) -> bool {
        let before = self
            .0
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            })
            .unwrap_or_default();
        before.saturating_sub(n) < limit / 4 && self.0.congested.swap(false, Ordering::Relaxed)
    }
}

struct Ping {
    to: String,
    id: String,
    sent: Instant,
    deadline: Instant,
}

/// The gateway plus what the process does around it.
pub struct Driver {
    /// The gateway; runtimes feed it inputs directly.
    pub gw: Gateway,
    stop_by: Option<Instant>,
    ping: Option<Ping>,
    failed: bool,
    /// The store's writer thread.
    store: StoreWorker,
    /// `gateway.log_message_bodies`: stanzas for the gateway are logged
    /// whole, not summarized.
    log_bodies: bool,
    /// [`send_queue_limit`] of the configuration, for the log line.
    send_queue_limit: usize,
    /// The figures of `[listen] metrics`, when it is on.
    metrics: Option<metrics_listener::Shared>,
    /// When the gauges were last taken from the gateway.
    observed: Option<Instant>,
    /// The configuration running, and the file it came from (`None`: the
    /// embedded default): what a reload reads again and compares.
    config: Arc<crate::config::Config>,
    source: Option<PathBuf>,
    /// When they are to be taken again, for what changed since (a
    /// timer, so that a quiet gateway's figures do not stay stale).
    observe_by: Option<Instant>,
    /// The shared store's watcher, with several instances.
    watching: Option<super::store_watch::Watching>,
}

/// How often the gauges are taken from the gateway's tables: scrapes
/// come every few seconds at most, inputs thousands of times a second.
const OBSERVE_EVERY: Duration = Duration::from_secs(1);

impl Driver {
    /// Starts the gateway of `dep` (logging its notices), with the SIP
    /// side and what the store holds, and sends the ping of `xfed ping`
    /// at once.
    pub fn new(
        dep: Deployment,
        ping: Option<(String, Duration)>,
        now: Instant,
    ) -> Result<Driver, String> {
        for n in &dep.notices {
            info!("{n}");
        }
        let (store, stored) = store_worker::open_and_load(&dep.store).map_err(|e| e.to_string())?;
        let mut setup = dep.setup;
        setup.stored = stored;
        let store =
            StoreWorker::start(store).map_err(|e| format!("cannot start the store writer: {e}"))?;
        let from = dep
            .config
            .gateway
            .domains
            .first()
            .cloned()
            .unwrap_or_default();
        let log_bodies = dep.config.gateway.log_message_bodies;
        let send_queue_limit = send_queue_limit(&dep.config);
        let metrics = dep.config.listen.metrics.map(|_| {
            let partners = dep.config.partners.iter().flat_map(|p| p.domains());
            Arc::new(Mutex::new(Registry::new(partners)))
        });
        let config = Arc::clone(&dep.config);
        let mut gw = Gateway::new(dep.config, setup, dep.seed, now, dep.unix_now);
        let ping = ping.map(|(to, timeout)| {
            let id = format!("xfed-ping-{}", dep.unix_now);
            gw.send(ping::request(&from, &to, &id), now);
            Ping {
                to,
                id,
                sent: now,
                deadline: now + timeout,
            }
        });
        Ok(Driver {
            gw,
            stop_by: None,
            ping,
            failed: false,
            store,
            log_bodies,
            send_queue_limit,
            metrics,
            observed: None,
            config,
            source: dep.source,
            observe_by: None,
            watching: None,
        })
    }

    /// Hands one input to the gateway (or the driver, for signals and
    /// timers); afterwards, [`Driver::flush`].
    pub fn handle<I: Io>(&mut self, input: Input<I::Stream>, io: &mut I) {
        let now = Instant::now();
        let gw = &mut self.gw;
        match input {
            Input::Accepted(listener, stream, peer) => {
                let conn = gw.accept(listener, peer, now);
                io.start_conn(conn, stream);
            }
            Input::Connected(conn, stream) => {
                io.start_conn(conn, stream);
                gw.handle_connected(conn, now);
            }
            Input::ConnectFailed(conn, why) => gw.handle_connect_failed(conn, &why, now),
            Input::Bytes(conn, bytes) => gw.handle_bytes(conn, &bytes, now),
            Input::Closed(conn) => {
                io.conn_ended(conn);
                gw.handle_closed(conn, now);
            }
            Input::Dns(query, bytes) => gw.handle_dns(query, &bytes, now),
            Input::Datagram(local, peer, bytes) => gw.handle_datagram(local, peer, &bytes, now),
            Input::Signal => self.on_signal(now),
            Input::Drained(conn) => gw.handle_congestion(conn, false, now),
            Input::Reload => {
                let _ = self.reload(io, now);
            }
            Input::Admin(crate::admin::Request::Reload, reply) => {
                let answer = match self.reload(io, now) {
                    Ok(changes) => crate::admin::Reply::ok(changes),
                    Err(e) => crate::admin::Reply::error(e),
                };
                let _ = reply.send(answer);
            }
            Input::Admin(request, reply) => {
                // The client may have given up; the request is done anyway.
                let _ = reply.send(gw.admin(&request, now));
            }
            Input::Report(reply) => {
                // The page may have given up waiting.
                let _ = reply.send(Box::new(gw.report(now)));
            }
            Input::Shared(rows) => gw.shared(rows, now),
            Input::Timer => self.on_timer(now),
        }
    }

    /// Carries out every pending output, and tells the gateway of the
    /// connections the runtime dropped for not reading.
    pub fn flush(&mut self, io: &mut impl Io) {
        loop {
            self.carry_out(io);
            let congested = io.take_congested();
            for &conn in &congested {
                self.gw.handle_congestion(conn, true, Instant::now());
            }
            let stalled = io.take_stalled();
            if stalled.is_empty() && congested.is_empty() {
                self.observe();
                return;
            }
            for conn in stalled {
                warn!(
                    conn = conn.0,
                    "peer stopped reading: more than {} bytes waiting; connection dropped",
                    self.send_queue_limit
                );
                self.gw.handle_closed(conn, Instant::now());
            }
        }
    }

    fn carry_out(&mut self, io: &mut impl Io) {
        while let Some(out) = self.gw.poll_output() {
            match out {
                Output::Transmit { conn, bytes } => io.transmit(conn, bytes),
                Output::Close { conn } => io.close(conn),
                Output::PauseReading { conn } => io.pause_reading(conn, true),
                Output::ResumeReading { conn } => io.pause_reading(conn, false),
                Output::Connect { conn, addr } => io.connect(conn, addr),
                Output::DnsQuery {
                    query,
                    bytes,
                    tcp,
                    timeout,
                } => io.dns(query, bytes, tcp, timeout),
                Output::Datagram { local, peer, bytes } => io.datagram(local, peer, bytes),
                Output::Persist(changes) => self.store.apply(changes),
                Output::Stanza(e) => {
                    let answer = self.ping.as_ref().and_then(|p| ping::outcome(&e, &p.id));
                    match (answer, self.ping.take()) {
                        (Some(result), Some(p)) => {
                            let ms = p.sent.elapsed().as_secs_f64() * 1000.0;
                            match result {
                                Ok(()) => println!("ping {}: answered in {ms:.1} ms", p.to),
                                Err(cond) => {
                                    println!("ping {}: error {cond} after {ms:.1} ms", p.to);
                                    self.failed = true;
                                }
                            }
                            self.stop(Instant::now());
                        }
                        (_, back) => {
                            self.ping = back;
                            let summary = stanza::summary(&e);
                            info!("stanza for the gateway: {}", logtext::escape(&summary));
                            // Whole, with its body, only when asked and
                            // only at debug.
                            if self.log_bodies {
                                let whole = String::from_utf8_lossy(&e.to_bytes()).into_owned();
                                debug!(
                                    "stanza for the gateway, whole: {}",
                                    logtext::escape(&whole)
                                );
                            }
                        }
                    }
                }
                Output::Event(event) => {
                    if let Some(r) = &self.metrics {
                        lock(r).record(&event);
                    }
                    log(&event);
                }
            }
        }
    }

    /// Takes the gauges, at most every [`OBSERVE_EVERY`]; when it is too
    /// soon, once that much time has passed ([`Driver::wake`]).
    fn observe(&mut self) {
        if let Some(r) = &self.metrics {
            let now = Instant::now();
            match self.observed {
                Some(t) if now.duration_since(t) < OBSERVE_EVERY => {
                    self.observe_by = Some(t + OBSERVE_EVERY);
                }
                _ => {
                    self.observed = Some(now);
                    self.observe_by = None;
                    let h = self.store.health();
                    let mut r = lock(r);
                    r.observe(&self.gw);
                    r.observe_store(h.up(), h.waiting(), h.failures(), h.dropped());
                    if let Some(w) = &self.watching {
                        r.observe_shared(w.hearing.load(std::sync::atomic::Ordering::Relaxed));
                    }
                }
            }
        }
    }

    /// Keeps the shared store's watcher, whose state the metrics show.
    pub fn watching(&mut self, w: super::store_watch::Watching) {
        self.watching = Some(w);
    }

    /// The figures `[listen] metrics` serves, when it is on.
    pub fn metrics(&self) -> Option<metrics_listener::Shared> {
        self.metrics.clone()
    }

    /// When the runtime must call [`Driver::on_timer`] at the latest.
    pub fn wake(&self, now: Instant) -> Instant {
        self.gw
            .poll_timeout()
            .into_iter()
            .chain(self.stop_by)
            .chain(self.ping.as_ref().map(|p| p.deadline))
            .chain(self.observe_by)
            .min()
            .unwrap_or(now + Duration::from_secs(3600))
    }

    /// The wake-up time came.
    pub fn on_timer(&mut self, now: Instant) {
        if let Some(p) = &self.ping {
            if now >= p.deadline {
                println!("ping {}: no answer in time", p.to);
                self.failed = true;
                self.ping = None;
                self.stop(now);
            }
        }
        self.gw.handle_timeout(now);
    }

    /// SIGHUP or `xfed reload`: reads the configuration file again and
    /// applies it (listeners rebound first, so that a port taken refuses
    /// the whole reload); what changed, or why the running configuration
    /// stays.
    pub fn reload<I: Io>(&mut self, io: &mut I, now: Instant) -> Result<Vec<String>, String> {
        let result = self.try_reload(io, now);
        if let Err(e) = &result {
            warn!("reload refused, the running configuration stays: {e}");
        }
        result
    }

    fn try_reload<I: Io>(&mut self, io: &mut I, now: Instant) -> Result<Vec<String>, String> {
        let mut dep = setup::load(self.source.as_deref())?;
        let changes = crate::config::reload::changes(&self.config, &dep.config)?;
        if self.metrics.is_none() && dep.config.listen.metrics.is_some() {
            self.metrics = Some(Arc::new(Mutex::new(Registry::new(std::iter::empty()))));
        }
        for name in io.reconfigure(&mut dep, self.metrics.clone())? {
            info!("reload: listening on {name}");
        }
        if let Some(registry) = &self.metrics {
            let partners = dep.config.partners.iter().flat_map(|p| p.domains());
            lock(registry).set_partners(partners);
        }
        self.log_bodies = dep.config.gateway.log_message_bodies;
        self.send_queue_limit = send_queue_limit(&dep.config);
        self.config = Arc::clone(&dep.config);
        let lines = changes.lines;
        let reload = dep.setup.into_reload();
        self.gw.reload(dep.config, reload, lines.clone(), now);
        if lines.is_empty() {
            return Ok(vec![
                "no setting changed; certificate, key and trust read again".into(),
            ]);
        }
        Ok(lines)
    }

    /// SIGTERM or SIGINT: close every stream, give peers a grace period.
    pub fn on_signal(&mut self, now: Instant) {
        info!("signal received: closing streams");
        self.stop(now);
    }

    fn stop(&mut self, now: Instant) {
        if self.stop_by.is_none() {
            self.gw.shutdown(now);
            self.stop_by = Some(now + SHUTDOWN_GRACE);
        }
    }

    /// Whether a stop was asked (signals need no more watching).
    pub fn stopping(&self) -> bool {
        self.stop_by.is_some()
    }

    /// Whether the process should exit now.
    pub fn finished(&self, now: Instant) -> bool {
        match self.stop_by {
            Some(_) if self.gw.is_idle() => {
                info!("all streams closed");
                true
            }
            Some(by) if now >= by => {
                info!(
                    "shutdown grace period over; {} connection(s) dropped",
                    self.gw.connections()
                );
                true
            }
            _ => false,
        }
    }

    /// The process's exit status.
    /// The process's exit status, once what waits for the store is
    /// written (at most [`SHUTDOWN_GRACE`]).
    pub fn exit_code(self) -> ExitCode {
        let lost = self.store.finish(SHUTDOWN_GRACE);
        if self.failed || lost > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// The registry, even if a scrape thread panicked holding it (counting
/// goes on).
fn lock(r: &metrics_listener::Shared) -> std::sync::MutexGuard<'_, Registry> {
    r.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Logs a core event through tracing, its kind and connection as fields,
/// with whatever a peer put in its text escaped ([`logtext::escape`]).
pub fn log(event: &Event) {
    // Formatting costs more than the rest of a relayed message's logging:
    // only for a level that is written.
    let enabled = match event.level() {
        Level::Info => tracing::enabled!(tracing::Level::INFO),
        Level::Warn => tracing::enabled!(tracing::Level::WARN),
        Level::Debug => tracing::enabled!(tracing::Level::DEBUG),
    };
    if !enabled {
        return;
    }
    let conn = event.conn().map_or(0, |c| c.0);
    let kind = event.kind();
    let text = event.to_string();
    let message = logtext::escape(&text);
    match event.level() {
        Level::Info => info!(conn, event = kind, "{message}"),
        Level::Warn => warn!(conn, event = kind, "{message}"),
        Level::Debug => debug!(conn, event = kind, "{message}"),
    }
}
