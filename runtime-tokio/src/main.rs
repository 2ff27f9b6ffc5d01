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
use tracing::{debug, error, info, warn};
use xfed_core::config::SipTransport;
use xfed_core::gateway::{ConnId, Listener, QueryId};
use xfed_core::host::cli::Cli;
use xfed_core::host::driver::{self, Driver, Io, Mode, SendQueue, INPUT_QUEUE};
use xfed_core::host::setup::{self, Deployment};
use xfed_core::host::{self};

/// How long to wait for the peer's close after ours (RFC 6120 section 4.4).
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// TCP connect timeout for outbound streams and DNS over TCP.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// What socket tasks tell the gateway task.
enum Input {
    Accepted(Listener, TcpStream, SocketAddr),
    Connected(ConnId, TcpStream),
    ConnectFailed(ConnId, String),
    Bytes(ConnId, Vec<u8>),
    Closed(ConnId),
    Dns(QueryId, Vec<u8>),
    Datagram(SocketAddr, SocketAddr, Vec<u8>),
}

/// What the gateway task tells a connection task.
enum ToConn {
    Send(Vec<u8>),
    Close,
}

fn main() -> ExitCode {
    host::init_logging();
    let (config, ping) = match driver::mode(Cli::from_env()) {
        Mode::Exit(code) => return code,
        Mode::Run { config, ping } => (config, ping),
    };
    let deployment = match setup::load(config.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
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
    conns: HashMap<ConnId, Conn>,
    resolver: SocketAddr,
    udp: HashMap<SocketAddr, Arc<UdpSocket>>,
    /// [`driver::send_queue_limit`].
    send_limit: usize,
    stalled: Vec<ConnId>,
}

/// A connection's task as the gateway task holds it.
struct Conn {
    tx: mpsc::UnboundedSender<ToConn>,
    queue: SendQueue,
    task: tokio::task::JoinHandle<()>,
}

impl Io for TokioIo {
    fn datagram(&mut self, local: SocketAddr, peer: SocketAddr, bytes: Vec<u8>) {
        if let Some(sock) = self.udp.get(&local) {
            if let Err(e) = sock.try_send_to(&bytes, peer) {
                debug!("SIP datagram to {peer} dropped: {e}");
            }
        }
    }

    fn transmit(&mut self, conn: ConnId, bytes: Vec<u8>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.queue.push(bytes.len(), self.send_limit) {
            let _ = c.tx.send(ToConn::Send(bytes));
        } else if let Some(c) = self.conns.remove(&conn) {
            c.task.abort();
            self.stalled.push(conn);
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            let _ = c.tx.send(ToConn::Close);
        }
    }

    fn take_stalled(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.stalled)
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
    let sip_tcp: Vec<SocketAddr> = dep
        .sip
        .iter()
        .filter(|l| l.transport == SipTransport::Tcp)
        .map(|l| l.addr)
        .collect();
    let sip_tls: Vec<SocketAddr> = dep
        .sip
        .iter()
        .filter(|l| l.transport == SipTransport::Tls)
        .map(|l| l.addr)
        .collect();
    for addr in dep
        .sip
        .iter()
        .filter(|l| l.transport == SipTransport::Udp)
        .map(|l| l.addr)
    {
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
    dep.sip_settings.udp = udp.keys().copied().collect();
    for (listener, addrs) in [
        (Listener::S2s, &dep.s2s),
        (Listener::S2sDirectTls, &dep.s2s_direct_tls),
        (Listener::SipTcp, &sip_tcp),
        (Listener::SipTls, &sip_tls),
    ] {
        for addr in addrs {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    let local = l.local_addr().unwrap_or(*addr);
                    bound.push(format!("{local} ({listener:?})"));
                    tokio::spawn(accept_loop(l, listener, tx.clone()));
                }
                Err(e) => {
                    error!("cannot listen on {addr}: {e}");
                    return ExitCode::FAILURE;
                }
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
    info!(
        "xfed (tokio) serving {} on {}",
        dep.config.gateway.domains.join(", "),
        bound.join(", ")
    );
    let mut io = TokioIo {
        tx: tx.clone(),
        conns: HashMap::new(),
        resolver: dep.resolver,
        udp,
        send_limit: driver::send_queue_limit(&dep.config),
        stalled: Vec::new(),
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
        tokio::select! {
            input = rx.recv() => {
                let Some(input) = input else { break };
                let now = Instant::now().into_std();
                let gw = &mut driver.gw;
                match input {
                    Input::Accepted(listener, stream, peer) => {
                        let conn = gw.accept(listener, peer, now);
                        io.conns.insert(conn, spawn_conn(conn, stream, tx.clone()));
                    }
                    Input::Connected(conn, stream) => {
                        io.conns.insert(conn, spawn_conn(conn, stream, tx.clone()));
                        gw.handle_connected(conn, now);
                    }
                    Input::ConnectFailed(conn, why) => gw.handle_connect_failed(conn, &why, now),
                    Input::Bytes(conn, bytes) => gw.handle_bytes(conn, &bytes, now),
                    Input::Closed(conn) => {
                        io.conns.remove(&conn);
                        gw.handle_closed(conn, now);
                    }
                    Input::Dns(query, bytes) => gw.handle_dns(query, &bytes, now),
                    Input::Datagram(local, peer, bytes) => gw.handle_datagram(local, peer, &bytes, now),
                }
            }
            _ = tokio::time::sleep_until(wake) => driver.on_timer(Instant::now().into_std()),
            _ = term.recv(), if !stopping => driver.on_signal(Instant::now().into_std()),
            _ = tokio::signal::ctrl_c(), if !stopping => driver.on_signal(Instant::now().into_std()),
        }
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
fn spawn_conn(conn: ConnId, mut stream: TcpStream, tx: mpsc::Sender<Input>) -> Conn {
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
    Conn {
        tx: to_conn,
        queue,
        task,
    }
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
