//! Binding every listener of a deployment, once for both runtimes: with
//! `std::net`, non-blocking, so that a runtime only wraps the sockets in
//! its own types, and a port already taken fails the same way on both.
//! A reload binds only what it does not hold yet ([`bind_except`]), so
//! that listeners that stay are never closed.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use super::driver::{tcp_listeners, udp_listeners};
use super::setup::Deployment;
use crate::ids::Listener;

/// A deployment's listeners, bound, each with the address the
/// configuration gave (the key a reload compares).
#[derive(Debug, Default)]
pub struct Bound {
    /// TCP listeners (s2s, direct TLS, SIP over TCP and TLS) with their kind.
    pub tcp: Vec<(Listener, SocketAddr, TcpListener)>,
    /// SIP UDP sockets with the address each is bound to.
    pub udp: Vec<(SocketAddr, SocketAddr, UdpSocket)>,
    /// The `[listen] metrics` listener (blocking, for its own thread).
    pub metrics: Option<(SocketAddr, TcpListener)>,
    /// Each listener as `address (kind)`, for [`super::driver::serving`].
    pub names: Vec<String>,
}

/// The listeners a runtime holds, by configured address: what a reload
/// keeps rather than binds again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Held {
    /// TCP listeners, by kind and configured address.
    pub tcp: Vec<(Listener, SocketAddr)>,
    /// SIP UDP sockets: configured address and the one bound.
    pub udp: Vec<(SocketAddr, SocketAddr)>,
    /// The metrics listener's configured address.
    pub metrics: Option<SocketAddr>,
}

/// Binds every listener of `dep` and records the SIP UDP addresses in its
/// SIP settings (a port 0 becomes the one the system chose); the error is
/// the line to log.
pub fn bind(dep: &mut Deployment) -> Result<Bound, String> {
    bind_except(dep, &Held::default())
}

/// Binds the listeners of `dep` that `held` does not have; the SIP UDP
/// addresses recorded in its settings are those held and kept plus those
/// bound. Nothing is bound when one fails (what was bound is dropped).
pub fn bind_except(dep: &mut Deployment, held: &Held) -> Result<Bound, String> {
    let mut bound = Bound::default();
    let mut sip_udp = Vec::new();
    for addr in udp_listeners(dep) {
        if let Some((_, local)) = held.udp.iter().find(|(a, _)| *a == addr) {
            sip_udp.push(*local);
            continue;
        }
        let sock = UdpSocket::bind(addr)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| format!("cannot listen on udp {addr}: {e}"))?;
        let local = sock.local_addr().unwrap_or(addr);
        bound.names.push(format!("{local} (SipUdp)"));
        sip_udp.push(local);
        bound.udp.push((addr, local, sock));
    }
    dep.setup.sip_udp = sip_udp;
    for (listener, addr) in tcp_listeners(dep) {
        if held.tcp.contains(&(listener, addr)) {
            continue;
        }
        let l = tcp_listener(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = l.local_addr().unwrap_or(addr);
        bound.names.push(format!("{local} ({listener:?})"));
        bound.tcp.push((listener, addr, l));
    }
    if let Some(addr) = dep
        .config
        .listen
        .metrics
        .filter(|a| held.metrics != Some(*a))
    {
        let l = TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr} (listen.metrics): {e}"))?;
        let local = l.local_addr().unwrap_or(addr);
        bound.names.push(format!("{local} (Metrics)"));
        bound.metrics = Some((addr, l));
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
