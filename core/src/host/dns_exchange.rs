//! One DNS exchange with the resolver, over UDP or TCP (RFC 1035 section
//! 4.2), on any [`Runtime`]. The caller bounds it with the core's timeout;
//! queries in flight are bounded by `gateway.max_dns_queries`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use super::runtime::{timeout, Runtime, CONNECT_TIMEOUT};
use crate::dns::tcp_frame;

/// Sends `query` to `resolver` and returns its reply: over UDP from a
/// socket of its own, connected so that only the resolver can answer, or
/// over TCP with the two-byte length prefix.
pub async fn ask<R: Runtime>(resolver: SocketAddr, query: &[u8], tcp: bool) -> io::Result<Vec<u8>> {
    if tcp {
        return ask_tcp::<R>(resolver, query).await;
    }
    let any: SocketAddr = if resolver.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(any)?;
    sock.connect(resolver)?;
    sock.set_nonblocking(true)?;
    // A new socket's buffer is empty: this does not block.
    sock.send(query)?;
    let sock = R::udp(sock)?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = R::recv_from(&sock, &mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

async fn ask_tcp<R: Runtime>(resolver: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let framed = tcp_frame(query).ok_or_else(|| io::Error::other("query too long"))?;
    let mut s = timeout::<R, _>(CONNECT_TIMEOUT, R::connect(resolver))
        .await
        .ok_or_else(|| io::Error::other("connect timed out"))??;
    R::write_all(&mut s, &framed).await?;
    let mut len = [0u8; 2];
    read_exact::<R>(&mut s, &mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    read_exact::<R>(&mut s, &mut buf).await?;
    Ok(buf)
}

async fn read_exact<R: Runtime>(s: &mut R::Tcp, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match super::runtime::read::<R>(s, buf).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}
