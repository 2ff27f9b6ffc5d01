//! xfed on tokio. One task owns the sans-IO [`Gateway`]; every socket has a
//! task that only moves bytes to and from it. Every protocol decision is
//! the core's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use xfed_core::gateway::{ConnId, Gateway, Level, Listener, Output, QueryId};
use xfed_core::host::cli::{Cli, Command};
use xfed_core::host::setup::{self, Deployment, SHUTDOWN_GRACE};
use xfed_core::host::{self};
use xfed_core::xmpp::ping;

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
}

/// What the gateway task tells a connection task.
enum ToConn {
    Send(Vec<u8>),
    Close,
}

fn main() -> ExitCode {
    host::init_logging();
    let cli = Cli::from_env();
    let path = match &cli.command {
        Some(Command::Check { config }) => {
            return match setup::check(config) {
                Ok((_, notices)) => {
                    notices.iter().for_each(|n| println!("{n}"));
                    println!("{}: OK", config.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Run { config }) => Some(config.clone()),
        Some(Command::Ping { config, .. }) => Some(config.clone()),
        None => None,
    };
    let ping = match &cli.command {
        Some(Command::Ping { to, timeout, .. }) => {
            Some((to.clone(), Duration::from_secs(*timeout)))
        }
        _ => None,
    };
    let deployment = match setup::load(path.as_deref()) {
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

async fn run(dep: Deployment, ping: Option<(String, Duration)>) -> ExitCode {
    for n in &dep.notices {
        info!("{n}");
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Input>();
    let mut bound = Vec::new();
    for (listener, addrs) in [
        (Listener::S2s, &dep.s2s),
        (Listener::S2sDirectTls, &dep.s2s_direct_tls),
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
    let conn_limit = setup::connection_limit(&dep.config);
    info!(
        "xfed (tokio) serving {} on {}",
        dep.config.gateway.domains.join(", "),
        bound.join(", ")
    );
    let resolver = dep.resolver;
    let start = Instant::now();
    let mut gw = Gateway::new(
        dep.settings,
        dep.seed,
        start.into_std(),
        dep.unix_now,
        conn_limit,
    );
    let mut conns: HashMap<ConnId, mpsc::UnboundedSender<ToConn>> = HashMap::new();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot watch SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stop_by: Option<Instant> = None;
    let mut code = ExitCode::SUCCESS;
    let mut pinging = ping.map(|(to, timeout)| {
        let from = dep.config.gateway.domains[0].clone();
        let id = format!("xfed-ping-{}", start.elapsed().as_nanos());
        gw.send(ping::request(&from, &to, &id), start.into_std());
        (to, id, start, start + timeout)
    });
    loop {
        while let Some(out) = gw.poll_output() {
            match out {
                Output::Transmit { conn, bytes } => {
                    if let Some(c) = conns.get(&conn) {
                        let _ = c.send(ToConn::Send(bytes));
                    }
                }
                Output::Close { conn } => {
                    if let Some(c) = conns.remove(&conn) {
                        let _ = c.send(ToConn::Close);
                    }
                }
                Output::Connect { conn, addr } => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let input =
                            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                                .await
                            {
                                Ok(Ok(s)) => Input::Connected(conn, s),
                                Ok(Err(e)) => Input::ConnectFailed(conn, format!("{addr}: {e}")),
                                Err(_) => {
                                    Input::ConnectFailed(conn, format!("{addr}: connect timed out"))
                                }
                            };
                        let _ = tx.send(input);
                    });
                }
                Output::DnsQuery { query, bytes, tcp } => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let reply = if tcp {
                            dns_tcp(resolver, &bytes).await
                        } else {
                            dns_udp(resolver, &bytes).await
                        };
                        match reply {
                            Ok(r) => {
                                let _ = tx.send(Input::Dns(query, r));
                            }
                            // No reply: the core's own timeout takes over.
                            Err(e) => debug!("DNS query to {resolver}: {e}"),
                        }
                    });
                }
                Output::Stanza(e) => {
                    let answer = pinging
                        .as_ref()
                        .and_then(|(_, id, _, _)| ping::outcome(&e, id));
                    match (answer, pinging.take()) {
                        (Some(result), Some((to, _, sent, _))) => {
                            let ms = sent.elapsed().as_secs_f64() * 1000.0;
                            match result {
                                Ok(()) => println!("ping {to}: answered in {ms:.1} ms"),
                                Err(cond) => {
                                    println!("ping {to}: error {cond} after {ms:.1} ms");
                                    code = ExitCode::FAILURE;
                                }
                            }
                            gw.shutdown(Instant::now().into_std());
                            stop_by = Some(Instant::now() + SHUTDOWN_GRACE);
                        }
                        (_, back) => {
                            pinging = back;
                            info!(
                                "stanza for a local user: {}",
                                String::from_utf8_lossy(&e.to_bytes())
                            );
                        }
                    }
                }
                Output::Log(l) => {
                    let conn = l.conn.map(|c| c.0).unwrap_or(0);
                    match l.level {
                        Level::Info => info!(conn, "{}", l.message),
                        Level::Warn => warn!(conn, "{}", l.message),
                        Level::Debug => debug!(conn, "{}", l.message),
                    }
                }
            }
        }
        if stop_by.is_some() && gw.is_idle() {
            info!("all streams closed");
            break;
        }
        let now = Instant::now();
        let wake = gw
            .poll_timeout()
            .map(Instant::from_std)
            .into_iter()
            .chain(stop_by)
            .chain(pinging.as_ref().map(|p| p.3))
            .min()
            .unwrap_or(now + Duration::from_secs(3600));
        tokio::select! {
            input = rx.recv() => {
                let Some(input) = input else { break };
                let now = Instant::now().into_std();
                match input {
                    Input::Accepted(listener, stream, peer) => {
                        let conn = gw.accept(listener, peer, now);
                        conns.insert(conn, spawn_conn(conn, stream, tx.clone()));
                    }
                    Input::Connected(conn, stream) => {
                        conns.insert(conn, spawn_conn(conn, stream, tx.clone()));
                        gw.handle_connected(conn, now);
                    }
                    Input::ConnectFailed(conn, why) => gw.handle_connect_failed(conn, &why, now),
                    Input::Bytes(conn, bytes) => gw.handle_bytes(conn, &bytes, now),
                    Input::Closed(conn) => {
                        conns.remove(&conn);
                        gw.handle_closed(conn, now);
                    }
                    Input::Dns(query, bytes) => gw.handle_dns(query, &bytes, now),
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if stop_by.is_some_and(|d| Instant::now() >= d) {
                    info!("shutdown grace period over; {} connection(s) dropped", gw.connections());
                    break;
                }
                if let Some((to, _, _, deadline)) = &pinging {
                    if Instant::now() >= *deadline {
                        println!("ping {to}: no answer in time");
                        code = ExitCode::FAILURE;
                        pinging = None;
                        gw.shutdown(Instant::now().into_std());
                        stop_by = Some(Instant::now() + SHUTDOWN_GRACE);
                    }
                }
                gw.handle_timeout(Instant::now().into_std());
            }
            _ = term.recv(), if stop_by.is_none() => {
                info!("SIGTERM: closing streams");
                gw.shutdown(Instant::now().into_std());
                stop_by = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            _ = tokio::signal::ctrl_c(), if stop_by.is_none() => {
                info!("interrupted: closing streams");
                gw.shutdown(Instant::now().into_std());
                stop_by = Some(Instant::now() + SHUTDOWN_GRACE);
            }
        }
    }
    // Let connection tasks flush their closing bytes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    code
}

async fn accept_loop(listener: TcpListener, kind: Listener, tx: mpsc::UnboundedSender<Input>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                if tx.send(Input::Accepted(kind, stream, peer)).is_err() {
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

/// Runs one connection: bytes in go to the gateway, bytes out come from it.
fn spawn_conn(
    conn: ConnId,
    mut stream: TcpStream,
    tx: mpsc::UnboundedSender<Input>,
) -> mpsc::UnboundedSender<ToConn> {
    let (to_conn, mut from_gw) = mpsc::unbounded_channel::<ToConn>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut closing: Option<Instant> = None;
        loop {
            let linger = closing.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if closing.is_none() && tx.send(Input::Bytes(conn, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                },
                msg = from_gw.recv(), if closing.is_none() => match msg {
                    Some(ToConn::Send(bytes)) => {
                        if stream.write_all(&bytes).await.is_err() {
                            break;
                        }
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
            let _ = tx.send(Input::Closed(conn));
        }
    });
    to_conn
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
    let n = tokio::time::timeout(Duration::from_secs(30), sock.recv(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("no reply"))??;
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
