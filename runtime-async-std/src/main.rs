//! xfed on async-std. One task owns the sans-IO [`Gateway`]; every socket
//! has a task that only moves bytes to and from it. Every protocol decision
//! is the core's. Written against the futures-io traits so that it stays
//! small (async-std is discontinued upstream: RUSTSEC-2025-0052).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_signal::{Signal, Signals};
use async_std::channel::{self, Receiver, Sender};
use async_std::net::{TcpListener, TcpStream, UdpSocket};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt, StreamExt};
use tracing::{debug, error, warn};
use xfed_core::host::driver::{
    self, ConnTable, ConnTask, Driver, Io, SendQueue, DATAGRAM_QUEUE, INPUT_QUEUE,
};
use xfed_core::host::setup::Deployment;
use xfed_core::{ConnId, Listener, QueryId};

/// How long to wait for the peer's close after ours (RFC 6120 section 4.4).
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// TCP connect timeout for outbound streams and DNS over TCP.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// What socket tasks tell the gateway task.
type Input = driver::Input<TcpStream>;

/// What the gateway task tells a connection task.
enum ToConn {
    Send(Vec<u8>),
    Close,
}

fn main() -> ExitCode {
    match driver::start() {
        Ok((dep, ping)) => async_std::task::block_on(run(dep, ping)),
        Err(code) => code,
    }
}

/// The runtime's side of [`Io`]: socket tasks and spawned connects and
/// DNS queries, all reporting into one bounded channel.
struct AsyncStdIo {
    tx: Sender<Input>,
    conns: ConnTable<Conn>,
    resolver: SocketAddr,
    /// Per SIP UDP socket, the channel of its sending task.
    udp: HashMap<SocketAddr, Sender<(SocketAddr, Vec<u8>)>>,
}

/// A connection's task as the gateway task holds it.
struct Conn {
    tx: Sender<ToConn>,
    task: async_std::task::JoinHandle<()>,
}

impl ConnTask for Conn {
    fn send(&self, bytes: Vec<u8>) {
        let _ = self.tx.try_send(ToConn::Send(bytes));
    }

    fn close(&self) {
        let _ = self.tx.try_send(ToConn::Close);
    }

    fn abort(self) {
        async_std::task::spawn(self.task.cancel());
    }
}

impl Io for AsyncStdIo {
    type Stream = TcpStream;

    fn start_conn(&mut self, conn: ConnId, stream: TcpStream) {
        let (queue, task) = spawn_conn(conn, stream, self.tx.clone());
        self.conns.insert(conn, queue, task);
    }

    fn conn_ended(&mut self, conn: ConnId) {
        self.conns.remove(conn);
    }

    fn datagram(&mut self, local: SocketAddr, peer: SocketAddr, bytes: Vec<u8>) {
        if let Some(s) = self.udp.get(&local) {
            if s.try_send((peer, bytes)).is_err() {
                debug!("SIP datagram to {peer} dropped: send queue full");
            }
        }
    }

    fn transmit(&mut self, conn: ConnId, bytes: Vec<u8>) {
        self.conns.transmit(conn, bytes);
    }

    fn close(&mut self, conn: ConnId) {
        self.conns.close(conn);
    }

    fn take_stalled(&mut self) -> Vec<ConnId> {
        self.conns.take_stalled()
    }

    fn connect(&mut self, conn: ConnId, addr: SocketAddr) {
        let tx = self.tx.clone();
        async_std::task::spawn(async move {
            let input =
                match async_std::future::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => Input::Connected(conn, s),
                    Ok(Err(e)) => Input::ConnectFailed(conn, format!("{addr}: {e}")),
                    Err(_) => Input::ConnectFailed(conn, format!("{addr}: connect timed out")),
                };
            let _ = tx.send(input).await;
        });
    }

    fn dns(&mut self, query: QueryId, bytes: Vec<u8>, tcp: bool, timeout: Duration) {
        let (tx, resolver) = (self.tx.clone(), self.resolver);
        async_std::task::spawn(async move {
            let ask = async {
                if tcp {
                    dns_tcp(resolver, &bytes).await
                } else {
                    dns_udp(resolver, &bytes).await
                }
            };
            // Past the core's timeout nothing reads the answer: drop the
            // query and its socket.
            match async_std::future::timeout(timeout, ask).await {
                Ok(Ok(r)) => {
                    let _ = tx.send(Input::Dns(query, r)).await;
                }
                Ok(Err(e)) => debug!("DNS query to {resolver}: {e}"),
                Err(_) => debug!("DNS query to {resolver}: no reply within {timeout:?}"),
            }
        });
    }
}

async fn run(mut dep: Deployment, ping: Option<(String, Duration)>) -> ExitCode {
    let (tx, rx) = channel::bounded::<Input>(INPUT_QUEUE);
    let mut bound = Vec::new();
    let mut udp = HashMap::new();
    for addr in driver::udp_listeners(&dep) {
        match UdpSocket::bind(addr).await {
            Ok(sock) => {
                let local = sock.local_addr().unwrap_or(addr);
                bound.push(format!("{local} (SipUdp)"));
                let sock = Arc::new(sock);
                let (out_tx, out_rx) = channel::bounded(DATAGRAM_QUEUE);
                udp.insert(local, out_tx);
                async_std::task::spawn(udp_send_loop(sock.clone(), out_rx));
                async_std::task::spawn(udp_recv_loop(sock, local, tx.clone()));
            }
            Err(e) => {
                error!("cannot listen on udp {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    dep.setup.sip_udp = udp.keys().copied().collect();
    for (listener, addr) in driver::tcp_listeners(&dep) {
        match TcpListener::bind(addr).await {
            Ok(l) => {
                let local = l.local_addr().unwrap_or(addr);
                bound.push(format!("{local} ({listener:?})"));
                async_std::task::spawn(accept_loop(l, listener, tx.clone()));
            }
            Err(e) => {
                error!("cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut signals = match Signals::new([Signal::Term, Signal::Int]) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot watch signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    driver::serving("async-std", &dep, &bound);
    let mut io = AsyncStdIo {
        tx: tx.clone(),
        conns: ConnTable::new(driver::send_queue_limit(&dep.config)),
        resolver: dep.resolver,
        udp,
    };
    let mut driver = match Driver::new(dep, ping, Instant::now()) {
        Ok(d) => d,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        driver.flush(&mut io);
        let now = Instant::now();
        if driver.finished(now) {
            break;
        }
        let wake = driver.wake(now);
        let stopping = driver.stopping();
        let recv = async { rx.recv().await.ok() };
        let timer = async {
            async_std::task::sleep(wake.saturating_duration_since(Instant::now())).await;
            Some(Input::Timer)
        };
        let signal = async {
            if stopping {
                future::pending::<()>().await;
            }
            signals.next().await;
            Some(Input::Signal)
        };
        let Some(input) = future::or(recv, future::or(timer, signal)).await else {
            break;
        };
        driver.handle(input, &mut io);
    }
    // Let connection tasks flush their closing bytes.
    async_std::task::sleep(Duration::from_millis(50)).await;
    driver.exit_code()
}

async fn accept_loop(listener: TcpListener, kind: Listener, tx: Sender<Input>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                if tx.send(Input::Accepted(kind, stream, peer)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!("accept failed: {e}");
                async_std::task::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads SIP datagrams from one UDP socket. While the gateway is busy
/// this waits, and the socket's own buffer drops what does not fit.
async fn udp_recv_loop(sock: Arc<UdpSocket>, local: SocketAddr, tx: Sender<Input>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                if tx
                    .send(Input::Datagram(local, peer, buf[..n].to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // ICMP errors surface here on some systems; keep reading.
            Err(e) => debug!("udp {local}: {e}"),
        }
    }
}

/// Sends what the gateway gives one UDP socket.
async fn udp_send_loop(sock: Arc<UdpSocket>, rx: Receiver<(SocketAddr, Vec<u8>)>) {
    while let Ok((peer, bytes)) = rx.recv().await {
        if let Err(e) = sock.send_to(&bytes, peer).await {
            debug!("SIP datagram to {peer} dropped: {e}");
        }
    }
}

enum Wake {
    Read(std::io::Result<usize>),
    Gateway(Option<ToConn>),
    Linger,
}

/// Runs one connection: bytes in go to the gateway, bytes out come from
/// it. The channel toward it is bounded in bytes by its [`SendQueue`].
fn spawn_conn(conn: ConnId, stream: TcpStream, tx: Sender<Input>) -> (SendQueue, Conn) {
    let (to_conn, from_gw): (Sender<ToConn>, Receiver<ToConn>) = channel::unbounded();
    let queue = SendQueue::default();
    let written = queue.clone();
    let task = async_std::task::spawn(async move {
        let mut reader = stream.clone();
        let mut writer = stream;
        let mut buf = vec![0u8; 16 * 1024];
        let mut closing: Option<Instant> = None;
        loop {
            let read = async { Wake::Read(reader.read(&mut buf).await) };
            let gw = async {
                if closing.is_some() {
                    future::pending::<()>().await;
                }
                Wake::Gateway(from_gw.recv().await.ok())
            };
            let linger = async {
                match closing {
                    Some(at) => {
                        async_std::task::sleep(at.saturating_duration_since(Instant::now())).await
                    }
                    None => future::pending::<()>().await,
                }
                Wake::Linger
            };
            match future::or(read, future::or(gw, linger)).await {
                Wake::Read(Ok(0)) | Wake::Read(Err(_)) | Wake::Linger => break,
                Wake::Read(Ok(n)) => {
                    if closing.is_none()
                        && tx
                            .send(Input::Bytes(conn, buf[..n].to_vec()))
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
                Wake::Gateway(Some(ToConn::Send(bytes))) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                    written.written(bytes.len());
                }
                Wake::Gateway(Some(ToConn::Close)) | Wake::Gateway(None) => {
                    let _ = writer.flush().await;
                    let _ = writer.shutdown(std::net::Shutdown::Write);
                    closing = Some(Instant::now() + CLOSE_LINGER);
                }
            }
        }
        if closing.is_none() {
            let _ = tx.send(Input::Closed(conn)).await;
        }
    });
    (queue, Conn { tx: to_conn, task })
}

async fn dns_udp(resolver: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if resolver.is_ipv6() {
        "[::]:0".parse()
    } else {
        "0.0.0.0:0".parse()
    }
    .map_err(std::io::Error::other)?;
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(resolver).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 4096];
    let n = sock.recv(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

async fn dns_tcp(resolver: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let framed =
        xfed_core::dns::tcp_frame(query).ok_or_else(|| std::io::Error::other("query too long"))?;
    let mut s = async_std::future::timeout(CONNECT_TIMEOUT, TcpStream::connect(resolver))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    s.write_all(&framed).await?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}
