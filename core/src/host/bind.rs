//! Binding every listener of a deployment, once for both runtimes: with
//! `std::net`, non-blocking, so that a runtime only wraps the sockets in
//! its own types, and a port already taken fails the same way on both.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use super::driver::{tcp_listeners, udp_listeners};
use super::setup::Deployment;
use crate::ids::Listener;

/// A deployment's listeners, bound.
#[derive(Debug)]
pub struct Bound {
    /// TCP listeners (s2s, direct TLS, SIP over TCP and TLS) with their kind.
    pub tcp: Vec<(Listener, TcpListener)>,
    /// SIP UDP sockets with the address each is bound to.
    pub udp: Vec<(SocketAddr, UdpSocket)>,
    /// The `[listen] metrics` listener (blocking, for its own thread).
    pub metrics: Option<TcpListener>,
    /// Each listener as `address (kind)`, for [`super::driver::serving`].
    pub names: Vec<String>,
}

/// Binds every listener of `dep` and records the SIP UDP addresses in its
/// SIP settings (a port 0 becomes the one the system chose); the error is
/// the line to log.
pub fn bind(dep: &mut Deployment) -> Result<Bound, String> {
    let mut bound = Bound {
        tcp: Vec::new(),
        udp: Vec::new(),
        metrics: None,
        names: Vec::new(),
    };
    for addr in udp_listeners(dep) {
        let sock = UdpSocket::bind(addr)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| format!("cannot listen on udp {addr}: {e}"))?;
        let local = sock.local_addr().unwrap_or(addr);
        bound.names.push(format!("{local} (SipUdp)"));
        bound.udp.push((local, sock));
    }
    dep.setup.sip_udp = bound.udp.iter().map(|(a, _)| *a).collect();
    for (listener, addr) in tcp_listeners(dep) {
        let l = tcp_listener(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = l.local_addr().unwrap_or(addr);
        bound.names.push(format!("{local} ({listener:?})"));
        bound.tcp.push((listener, l));
    }
    if let Some(addr) = dep.config.listen.metrics {
        let l = TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr} (listen.metrics): {e}"))?;
        let local = l.local_addr().unwrap_or(addr);
        bound.names.push(format!("{local} (Metrics)"));
        bound.metrics = Some(l);
    }
    Ok(bound)
}

/// Connections the kernel queues for `accept` while the gateway task is
/// busy (tokio's choice; std's `TcpListener::bind` gives 128).
const BACKLOG: i32 = 1024;

/// A non-blocking TCP listener, `SO_REUSEADDR` set as std and tokio do.
fn tcp_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}
