//! xfed on tokio. One task owns the sans-IO [`Gateway`]; every socket has a
//! task that only moves bytes to and from it. Every protocol decision is
//! the core's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, warn};
use xfed_core::host::driver::{self, ConnTable, ConnTask, Driver, Io, SendQueue, INPUT_QUEUE};
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
    let (deployment, ping) = match driver::start() {
        Ok(started) => started,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(deployment, ping))
}

/// The runtime's side of [`Io`]: socket tasks and spawned connects and
/// DNS queries, all reporting into one bounded channel.
struct TokioIo {
    tx: mpsc::Sender<Input>,
    conns: ConnTable<Conn>,
    resolver: SocketAddr,
    udp: HashMap<SocketAddr, Arc<UdpSocket>>,
}

/// A connection's task as the gateway task holds it.
struct Conn {
    tx: mpsc::UnboundedSender<ToConn>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnTask for Conn {
    fn send(&self, bytes: Vec<u8>) {
        let _ = self.tx.send(ToConn::Send(bytes));
    }

    fn close(&self) {
        let _ = self.tx.send(ToConn::Close);
    }

    fn abort(self) {
        self.task.abort();
    }
}

impl Io for TokioIo {
    type Stream = TcpStream;

    fn start_conn(&mut self, conn: ConnId, stream: TcpStream) {
        let (queue, task) = spawn_conn(conn, stream, self.tx.clone());
        self.conns.insert(conn, queue, task);
    }

    fn conn_ended(&mut self, conn: ConnId) {
        self.conns.remove(conn);
    }

    fn datagram(&mut self, local: SocketAddr, peer: SocketAddr, bytes: Vec<u8>) {
        if let Some(sock) = self.udp.get(&local) {
            if let Err(e) = sock.try_send_to(&bytes, peer) {
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

    fn take_stalled(&mut self) -> Vec<ConnId> {
        self.conns.take_stalled()
    }

    fn connect(&mut self, conn: ConnId, addr: SocketAddr) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let input = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => Input::Connected(conn, s),
                Ok(Err(e)) => Input::ConnectFailed(conn, format!("{addr}: {e}")),
                Err(_) => Input::ConnectFailed(conn, format!("{addr}: connect timed out")),
            };
            let _ = tx.send(input).await;
        });
    }

    fn dns(&mut self, query: QueryId, bytes: Vec<u8>, tcp: bool, timeout: Duration) {
        let (tx, resolver) = (self.tx.clone(), self.resolver);
        tokio::spawn(async move {
            let ask = async {
                if tcp {
                    dns_tcp(resolver, &bytes).await
                } else {
                    dns_udp(resolver, &bytes).await
                }
            };
            // Past the core's timeout nothing reads the answer: drop the
            // query and its socket.
            match tokio::time::timeout(timeout, ask).await {
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
    let (tx, mut rx) = mpsc::channel::<Input>(INPUT_QUEUE);
    let mut bound = Vec::new();
    let mut udp = HashMap::new();
    for addr in driver::udp_listeners(&dep) {
        match UdpSocket::bind(addr).await {
            Ok(sock) => {
                let local = sock.local_addr().unwrap_or(addr);
                bound.push(format!("{local} (SipUdp)"));
                let sock = Arc::new(sock);
                udp.insert(local, sock.clone());
                tokio::spawn(udp_loop(sock, local, tx.clone()));
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
                tokio::spawn(accept_loop(l, listener, tx.clone()));
            }
            Err(e) => {
                error!("cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot watch SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    driver::serving("tokio", &dep, &bound);
    let mut io = TokioIo {
        tx: tx.clone(),
        conns: ConnTable::new(driver::send_queue_limit(&dep.config)),
        resolver: dep.resolver,
        udp,
    };
    let mut driver = match Driver::new(dep, ping, Instant::now().into_std()) {
        Ok(d) => d,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        driver.flush(&mut io);
        let now = Instant::now();
        if driver.finished(now.into_std()) {
            break;
        }
        let wake = Instant::from_std(driver.wake(now.into_std()));
        let stopping = driver.stopping();
        let input = tokio::select! {
            input = rx.recv() => match input {
                Some(input) => input,
                None => break,
            },
            _ = tokio::time::sleep_until(wake) => Input::Timer,
            _ = term.recv(), if !stopping => Input::Signal,
            _ = tokio::signal::ctrl_c(), if !stopping => Input::Signal,
        };
        driver.handle(input, &mut io);
    }
    // Let connection tasks flush their closing bytes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    driver.exit_code()
}

async fn accept_loop(listener: TcpListener, kind: Listener, tx: mpsc::Sender<Input>) {
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
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads SIP datagrams from one UDP socket.
/// While the gateway is busy this waits, and the socket's own buffer
/// drops what does not fit.
async fn udp_loop(sock: Arc<UdpSocket>, local: SocketAddr, tx: mpsc::Sender<Input>) {
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
            Err(e) => {
                // ICMP errors surface here on some systems; keep reading.
                debug!("udp {local}: {e}");
            }
        }
    }
}

/// Runs one connection: bytes in go to the gateway, bytes out come from
/// it. The channel toward it is bounded in bytes by its [`SendQueue`].
fn spawn_conn(conn: ConnId, mut stream: TcpStream, tx: mpsc::Sender<Input>) -> (SendQueue, Conn) {
    let (to_conn, mut from_gw) = mpsc::unbounded_channel::<ToConn>();
    let queue = SendQueue::default();
    let written = queue.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut closing: Option<Instant> = None;
        loop {
            let linger = closing.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if closing.is_none() && tx.send(Input::Bytes(conn, buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                },
                msg = from_gw.recv(), if closing.is_none() => match msg {
                    Some(ToConn::Send(bytes)) => {
                        if stream.write_all(&bytes).await.is_err() {
                            break;
                        }
                        written.written(bytes.len());
                    }
                    Some(ToConn::Close) | None => {
                        let _ = stream.shutdown().await;
                        closing = Some(Instant::now() + CLOSE_LINGER);
                    }
                },
                _ = tokio::time::sleep_until(linger), if closing.is_some() => break,
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
    let mut s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(resolver))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    s.write_all(&framed).await?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}
