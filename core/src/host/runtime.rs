//! Both binaries' tasks, written once over [`Runtime`], the little each
//! executor must supply (spawning, sleeping, its TCP and UDP types,
//! signals): the gateway task's loop ([`serve`]), one task per connection,
//! per listener and per UDP socket, connects and DNS exchanges. So the two
//! runtimes cannot drift apart, and a runtime crate is only an adapter.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::pin::pin;
use std::process::ExitCode;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use tracing::{debug, error, info, warn};

use super::admin_socket;
use super::bind::{self, Bound, Held};
use super::dns_exchange;
use super::driver::{self, ConnTable, ConnTask, Driver, Input, Io, SendQueue, INPUT_QUEUE};
use super::metrics_listener;
use super::setup::Deployment;
use crate::ids::{ConnId, Listener, QueryId};

/// Most bytes gathered into one write from a connection's queue.
const WRITE_BATCH: usize = 64 * 1024;
/// How long to wait for the peer's close after ours (RFC 6120 section 4.4).
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// TCP connect timeout for outbound streams and DNS over TCP.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// What an executor supplies. Futures are `Send` because tokio's `spawn`
/// asks it; every read is cancellation-safe (a connection task drops a
/// pending read to write, then reads again).
pub trait Runtime: Sized + 'static {
    /// A connected TCP stream.
    type Tcp: Send + Sync + 'static;
    /// A bound TCP listener.
    type Listener: Send + Sync + 'static;
    /// A bound UDP socket (only received from: sending goes through the
    /// non-blocking `std` socket, the same way on every runtime).
    type Udp: Send + Sync + 'static;
    /// A spawned task, for [`Runtime::abort`].
    type Task: Send + 'static;
    /// SIGTERM, SIGINT and SIGHUP, watched.
    type Signals: Send + 'static;

    /// Runs `task` on the executor.
    fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Self::Task;
    /// Stops a task at once (its socket is dropped).
    fn abort(task: Self::Task);
    /// Waits `d`.
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send;
    /// Opens a TCP connection (no timeout: [`CONNECT_TIMEOUT`] is ours).
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Tcp>> + Send;
    /// Takes a bound, non-blocking listener over.
    fn listener(l: std::net::TcpListener) -> io::Result<Self::Listener>;
    /// The next connection, with TCP_NODELAY set.
    fn accept(
        l: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Tcp, SocketAddr)>> + Send;
    /// Waits until the stream may have bytes (or its end, or an error)
    /// to read: a connection waits holding no buffer.
    fn readable(s: &Self::Tcp) -> impl Future<Output = io::Result<()>> + Send + '_;
    /// Reads what is there without waiting (0 at the end, `WouldBlock`
    /// when readiness was spurious).
    fn try_read(s: &Self::Tcp, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes all of `buf`.
    fn write_all<'a>(
        s: &'a mut Self::Tcp,
        buf: &'a [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a;
    /// Sends FIN once what is written is out; reading goes on.
    fn shutdown(s: &mut Self::Tcp) -> impl Future<Output = ()> + Send + '_;
    /// Takes a bound, non-blocking UDP socket over.
    fn udp(s: UdpSocket) -> io::Result<Self::Udp>;
    /// The next datagram and its sender.
    fn recv_from<'a>(
        s: &'a Self::Udp,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a;
    /// Starts watching SIGTERM, SIGINT and SIGHUP.
    fn signals() -> io::Result<Self::Signals>;
    /// The next of them.
    fn next_signal(s: &mut Self::Signals) -> impl Future<Output = Sig> + Send + '_;
}

/// What a signal asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    /// SIGTERM or SIGINT: shut down gracefully.
    Stop,
    /// SIGHUP: read the configuration again (`systemctl reload`).
    Reload,
}

/// Reads what is there, waiting for it (0 at the end).
pub async fn read<R: Runtime>(s: &R::Tcp, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        R::readable(s).await?;
        match R::try_read(s, buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// The first of two futures to finish (`a` is polled first).
pub async fn or<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| match a.as_mut().poll(cx) {
        Poll::Ready(t) => Poll::Ready(t),
        Poll::Pending => b.as_mut().poll(cx),
    })
    .await
}

/// `f`'s output, or `None` after `d`.
pub async fn timeout<R: Runtime, T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    or(async { Some(f.await) }, async {
        R::sleep(d).await;
        None
    })
    .await
}

/// What a binary runs on its executor once [`driver::start`] said what:
/// the deployment ([`serve`]) or `xfed plan --check`.
pub async fn run<R: Runtime>(name: &str, start: driver::Start) -> ExitCode {
    match start {
        driver::Start::Serve(dep, ping) => serve::<R>(name, *dep, ping).await,
        driver::Start::Plan(args) => super::plan::check::<R>(args).await,
    }
}

/// The whole run of a binary once logging and the deployment are set up:
/// signals, listeners, the "serving" line, then the gateway task's loop
/// until shutdown. `name` is the runtime's, for that line.
pub async fn serve<R: Runtime>(
    name: &str,
    mut dep: Deployment,
    ping: Option<(String, Duration)>,
) -> ExitCode {
    let (tx, rx) = async_channel::bounded::<Input<R::Tcp>>(INPUT_QUEUE);
    let mut signals = match R::signals() {
        Ok(s) => s,
        Err(e) => {
            error!("cannot watch signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signal_tx = tx.clone();
    R::spawn(async move {
        loop {
            let input = match R::next_signal(&mut signals).await {
                Sig::Stop => Input::Signal,
                Sig::Reload => Input::Reload,
            };
            if signal_tx.send(input).await.is_err() {
                return;
            }
        }
    });
    let mut bound = match bind::bind(&mut dep) {
        Ok(b) => b,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = bound.metrics.take();
    let names = std::mem::take(&mut bound.names);
    let mut io = HostIo::<R> {
        tx,
        conns: ConnTable::new(driver::send_queue_limit(&dep.config)),
        resolver: dep.resolver,
        udp: HashMap::new(),
        running: Running::default(),
    };
    if let Err(e) = io.start(bound) {
        error!("{e}");
        return ExitCode::FAILURE;
    }
    let admin_path = admin_socket::path_for(&dep.state_dir);
    let serving = driver::serving(name, &dep, &names);
    let config = std::sync::Arc::clone(&dep.config);
    let mut driver = match Driver::new(dep, ping, Instant::now()) {
        Ok(d) => d,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some((addr, l)), Some(registry)) = (metrics, driver.metrics()) {
        let report = metrics_listener::report_from(io.tx.clone());
        match metrics_listener::serve(l, registry, report) {
            Ok(handle) => io.running.metrics = Some((addr, handle)),
            Err(e) => {
                error!("cannot serve listen.metrics: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Ends by itself once this loop's channel is gone.
    if let Some(w) = super::store_watch::start(&config, io.tx.clone()) {
        driver.watching(w);
    }
    // Removed again when this ends.
    let _admin = admin_socket::serve(&admin_path, io.tx.clone())
        .map_err(|e| warn!("no admin socket at {}: {e}", admin_path.display()))
        .ok();
    info!("{serving}");
    loop {
        driver.flush(&mut io);
        let now = Instant::now();
        if driver.finished(now) {
            break;
        }
        let wake = driver.wake(now);
        let recv = async { rx.recv().await.ok() };
        let timer = async {
            R::sleep(wake.saturating_duration_since(Instant::now())).await;
            Some(Input::Timer)
        };
        // A due timer first: a flood of inputs must not hold timeouts back.
        let Some(input) = or(timer, recv).await else {
            break;
        };
        // Once stopping, further signals change nothing.
        if !(matches!(input, Input::Signal) && driver.stopping()) {
            driver.handle(input, &mut io);
        }
    }
    // Let connection tasks flush their closing bytes.
    R::sleep(Duration::from_millis(50)).await;
    driver.exit_code()
}

/// The listeners a runtime runs, with their tasks, by the address the
/// configuration gave: a reload stops those it no longer has and keeps
/// the others bound.
struct Running<R: Runtime> {
    tcp: Vec<((Listener, SocketAddr), R::Task)>,
    /// Configured and bound address of each SIP UDP socket.
    udp: Vec<((SocketAddr, SocketAddr), R::Task)>,
    metrics: Option<(SocketAddr, metrics_listener::Serving)>,
}

impl<R: Runtime> Default for Running<R> {
    fn default() -> Self {
        Running {
            tcp: Vec::new(),
            udp: Vec::new(),
            metrics: None,
        }
    }
}

impl<R: Runtime> Running<R> {
    fn held(&self) -> Held {
        Held {
            tcp: self.tcp.iter().map(|(k, _)| *k).collect(),
            udp: self.udp.iter().map(|(k, _)| *k).collect(),
            metrics: self.metrics.as_ref().map(|(a, _)| *a),
        }
    }
}

/// [`Io`] over any [`Runtime`]: socket tasks and spawned connects and DNS
/// exchanges, all reporting into one bounded channel.
struct HostIo<R: Runtime> {
    tx: Sender<Input<R::Tcp>>,
    conns: ConnTable<Conn<R>>,
    resolver: SocketAddr,
    /// The SIP UDP sockets to send from, by bound address.
    udp: HashMap<SocketAddr, UdpSocket>,
    running: Running<R>,
}

impl<R: Runtime> HostIo<R> {
    /// Hands bound sockets to the runtime and starts their tasks (the
    /// metrics listener, which needs the driver's registry, apart).
    fn start(&mut self, bound: Bound) -> Result<(), String> {
        for (addr, local, sock) in bound.udp {
            let recv = sock
                .try_clone()
                .and_then(R::udp)
                .map_err(|e| format!("cannot listen on udp {local}: {e}"))?;
            self.udp.insert(local, sock);
            let task = R::spawn(udp_loop::<R>(recv, local, self.tx.clone()));
            self.running.udp.push(((addr, local), task));
        }
        for (kind, addr, l) in bound.tcp {
            let l = R::listener(l).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let task = R::spawn(accept_loop::<R>(l, kind, self.tx.clone()));
            self.running.tcp.push(((kind, addr), task));
        }
        Ok(())
    }

    /// Stops the listeners `dep` no longer has.
    fn retire(&mut self, dep: &Deployment) {
        let tcp = driver::tcp_listeners(dep);
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.running.tcp)
            .into_iter()
            .partition(|(k, _)| tcp.contains(k));
        self.running.tcp = keep;
        gone.into_iter().for_each(|(_, task)| R::abort(task));
        let udp = driver::udp_listeners(dep);
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.running.udp)
            .into_iter()
            .partition(|((addr, _), _)| udp.contains(addr));
        self.running.udp = keep;
        for ((_, local), task) in gone {
            self.udp.remove(&local);
            R::abort(task);
        }
        if self.running.metrics.as_ref().map(|(a, _)| *a) != dep.config.listen.metrics {
            if let Some((_, serving)) = self.running.metrics.take() {
                serving.stop();
            }
        }
    }
}

/// What the gateway task tells a connection task.
enum ToConn {
    Send(Vec<u8>),
    Close,
    /// Stop reading (`true`) or read again.
    Pause(bool),
}

/// A connection's task as the gateway task holds it.
struct Conn<R: Runtime> {
    tx: Sender<ToConn>,
    task: R::Task,
}

impl<R: Runtime> ConnTask for Conn<R> {
    fn send(&self, bytes: Vec<u8>) {
        let _ = self.tx.try_send(ToConn::Send(bytes));
    }

    fn close(&self) {
        let _ = self.tx.try_send(ToConn::Close);
    }

    fn pause_reading(&self, paused: bool) {
        let _ = self.tx.try_send(ToConn::Pause(paused));
    }

    fn abort(self) {
        R::abort(self.task);
    }
}

impl<R: Runtime> Io for HostIo<R> {
    type Stream = R::Tcp;

    fn reconfigure(
        &mut self,
        dep: &mut Deployment,
        registry: Option<metrics_listener::Shared>,
    ) -> Result<Vec<String>, String> {
        let mut bound = bind::bind_except(dep, &self.running.held())?;
        let metrics = bound.metrics.take();
        let names = std::mem::take(&mut bound.names);
        self.start(bound)?;
        self.retire(dep);
        if let (Some((addr, l)), Some(registry)) = (metrics, registry) {
            let report = metrics_listener::report_from(self.tx.clone());
            let serving = metrics_listener::serve(l, registry, report)
                .map_err(|e| format!("cannot serve listen.metrics: {e}"))?;
            self.running.metrics = Some((addr, serving));
        }
        self.conns.set_limit(driver::send_queue_limit(&dep.config));
        Ok(names)
    }

    fn start_conn(&mut self, conn: ConnId, stream: R::Tcp) {
        // Unbounded, but what waits in it is counted by its SendQueue.
        let (to_conn, from_gw) = async_channel::unbounded();
        let queue = SendQueue::default();
        let limit = self.conns.limit();
        let task = R::spawn(conn_task::<R>(
            conn,
            stream,
            from_gw,
            self.tx.clone(),
            (queue.clone(), limit),
        ));
        self.conns.insert(conn, queue, Conn { tx: to_conn, task });
    }

    fn conn_ended(&mut self, conn: ConnId) {
        self.conns.remove(conn);
    }

    /// Never waits: a datagram that does not fit the socket's buffer is
    /// dropped, as the network could have (SIP retransmits over UDP).
    fn datagram(&mut self, local: SocketAddr, peer: SocketAddr, bytes: Vec<u8>) {
        if let Some(sock) = self.udp.get(&local) {
            if let Err(e) = sock.send_to(&bytes, peer) {
                debug!("SIP datagram to {peer} dropped: {e}");
            }
        }
    }

    fn transmit(&mut self, conn: ConnId, bytes: Vec<u8>) {
        self.conns.transmit(conn, bytes);
    }

    fn close(&mut self, conn: ConnId) {
        self.conns.close(conn);
    }

    fn pause_reading(&mut self, conn: ConnId, paused: bool) {
        self.conns.pause_reading(conn, paused);
    }

    fn take_stalled(&mut self) -> Vec<ConnId> {
        self.conns.take_stalled()
    }

    fn take_congested(&mut self) -> Vec<ConnId> {
        self.conns.take_congested()
    }

    fn connect(&mut self, conn: ConnId, addr: SocketAddr) {
        let tx = self.tx.clone();
        R::spawn(async move {
            let input = match timeout::<R, _>(CONNECT_TIMEOUT, R::connect(addr)).await {
                Some(Ok(s)) => Input::Connected(conn, s),
                Some(Err(e)) => Input::ConnectFailed(conn, format!("{addr}: {e}")),
                None => Input::ConnectFailed(conn, format!("{addr}: connect timed out")),
            };
            let _ = tx.send(input).await;
        });
    }

    fn dns(&mut self, query: QueryId, bytes: Vec<u8>, tcp: bool, timeout: Duration) {
        let (tx, resolver) = (self.tx.clone(), self.resolver);
        R::spawn(async move {
            let ask = dns_exchange::ask::<R>(resolver, &bytes, tcp);
            // Past the core's timeout nothing reads the answer: drop the
            // query and its socket.
            match self::timeout::<R, _>(timeout, ask).await {
                Some(Ok(r)) => {
                    let _ = tx.send(Input::Dns(query, r)).await;
                }
                Some(Err(e)) => debug!("DNS query to {resolver}: {e}"),
                None => debug!("DNS query to {resolver}: no reply within {timeout:?}"),
            }
        });
    }
}

async fn accept_loop<R: Runtime>(l: R::Listener, kind: Listener, tx: Sender<Input<R::Tcp>>) {
    loop {
        match R::accept(&l).await {
            Ok((stream, peer)) => {
                if tx.send(Input::Accepted(kind, stream, peer)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!("accept failed: {e}");
                R::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads SIP datagrams from one UDP socket. While the gateway is busy
/// this waits, and the socket's own buffer drops what does not fit.
async fn udp_loop<R: Runtime>(sock: R::Udp, local: SocketAddr, tx: Sender<Input<R::Tcp>>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match R::recv_from(&sock, &mut buf).await {
            Ok((n, peer)) => {
                let datagram = Input::Datagram(local, peer, buf[..n].to_vec());
                if tx.send(datagram).await.is_err() {
                    return;
                }
            }
            // ICMP errors surface here on some systems; keep reading.
            Err(e) => debug!("udp {local}: {e}"),
        }
    }
}

/// Most bytes taken from a socket in one read: what a busy peer has sent
/// since the last turn, in one system call.
const READ_MAX: usize = 64 * 1024;

thread_local! {
    /// The buffer every connection task on this thread reads into. A task
    /// waits for readiness holding none, then reads and copies out what
    /// came, without waiting: an idle link holds no read buffer, and a
    /// busy one gets everything there is in one read.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_MAX]);
}

/// What is there to read on `s` now, as its own bytes; `WouldBlock` when
/// nothing was.
fn read_now<R: Runtime>(s: &R::Tcp) -> io::Result<Vec<u8>> {
    READ_BUFFER.with(|buf| {
        let mut buf = buf.borrow_mut();
        let n = R::try_read(s, &mut buf)?;
        Ok(buf[..n].to_vec())
    })
}

enum Wake {
    Read(io::Result<()>),
    Gateway(Option<ToConn>),
    Linger,
}

/// Runs one connection: bytes in go to the gateway, bytes out come from
/// it (`written` counts them off its [`SendQueue`]). While paused it
/// does not read (the peer's sends then wait in TCP's windows). After
/// `Close` it keeps reading, discarding, until the peer closes or
/// [`CLOSE_LINGER`].
async fn conn_task<R: Runtime>(
    conn: ConnId,
    mut stream: R::Tcp,
    from_gw: Receiver<ToConn>,
    tx: Sender<Input<R::Tcp>>,
    (written, limit): (SendQueue, usize),
) {
    let mut closing: Option<Instant> = None;
    let mut paused = false;
    'conn: loop {
        // Closing reads on (to see the peer's close), paused or not.
        let reading = !paused || closing.is_some();
        let read = async {
            if !reading {
                std::future::pending::<()>().await;
            }
            Wake::Read(R::readable(&stream).await)
        };
        let gw = async {
            if closing.is_some() {
                std::future::pending::<()>().await;
            }
            Wake::Gateway(from_gw.recv().await.ok())
        };
        let linger = async {
            match closing {
                Some(at) => R::sleep(at.saturating_duration_since(Instant::now())).await,
                None => std::future::pending::<()>().await,
            }
            Wake::Linger
        };
        // The gateway's bytes first: a peer that floods us must not hold
        // back what we write to it (and be dropped for not reading).
        let wake = or(gw, or(read, linger)).await;
        let command = match wake {
            Wake::Read(Err(_)) | Wake::Linger => break,
            Wake::Read(Ok(())) => {
                let bytes = match read_now::<R>(&stream) {
                    Ok(bytes) if bytes.is_empty() => break,
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => break,
                };
                if closing.is_none() && tx.send(Input::Bytes(conn, bytes)).await.is_err() {
                    break;
                }
                continue;
            }
            Wake::Gateway(command) => command,
        };
        // A send takes along whatever else the gateway has queued: one
        // write per turn rather than one per stanza or response. A
        // command found behind it is handled next, in order.
        let mut next = Some(command);
        while let Some(command) = next.take() {
            match command {
                Some(ToConn::Send(mut bytes)) => {
                    while bytes.len() < WRITE_BATCH {
                        match from_gw.try_recv() {
                            Ok(ToConn::Send(more)) => bytes.extend_from_slice(&more),
                            Ok(other) => {
                                next = Some(Some(other));
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if R::write_all(&mut stream, &bytes).await.is_err() {
                        break 'conn;
                    }
                    if written.written(bytes.len(), limit)
                        && tx.send(Input::Drained(conn)).await.is_err()
                    {
                        break 'conn;
                    }
                }
                Some(ToConn::Pause(p)) => paused = p,
                Some(ToConn::Close) | None => {
                    R::shutdown(&mut stream).await;
                    closing = Some(Instant::now() + CLOSE_LINGER);
                }
            }
        }
    }
    if closing.is_none() {
        let _ = tx.send(Input::Closed(conn)).await;
    }
}
