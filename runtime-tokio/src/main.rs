//! xfed on tokio: only tokio's sockets, timers and signals, adapted to
//! [`Runtime`]; the tasks and the event loop are `xfed_core::host`'s,
//! shared with the async-std binary.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;
use tracing::error;
use xfed_core::host::driver;
use xfed_core::host::runtime::{self, Runtime, Sig};

fn main() -> ExitCode {
    let start = match driver::start() {
        Ok(started) => started,
        Err(code) => return code,
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(runtime::run::<Tokio>("tokio", start)),
        Err(e) => {
            error!("cannot start tokio: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Tokio;

impl Runtime for Tokio {
    type Tcp = TcpStream;
    type Listener = TcpListener;
    type Udp = UdpSocket;
    type Task = JoinHandle<()>;
    type Signals = (Signal, Signal, Signal);

    fn spawn(task: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        tokio::spawn(task)
    }

    fn abort(task: JoinHandle<()>) {
        task.abort();
    }

    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }

    async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        // As for accepted ones: each write is a whole turn's output, which
        // Nagle's algorithm would hold for the peer's delayed ACK.
        let s = TcpStream::connect(addr).await?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    fn listener(l: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::from_std(l)
    }

    async fn accept(l: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, peer) = l.accept().await?;
        let _ = s.set_nodelay(true);
        Ok((s, peer))
    }

    fn readable(s: &TcpStream) -> impl Future<Output = io::Result<()>> + Send + '_ {
        s.readable()
    }

    fn try_read(s: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        s.try_read(buf)
    }

    fn write_all<'a>(
        s: &'a mut TcpStream,
        buf: &'a [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a {
        s.write_all(buf)
    }

    async fn shutdown(s: &mut TcpStream) {
        let _ = s.shutdown().await;
    }

    fn udp(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        UdpSocket::from_std(s)
    }

    fn recv_from<'a>(
        s: &'a UdpSocket,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a {
        s.recv_from(buf)
    }

    fn signals() -> io::Result<(Signal, Signal, Signal)> {
        Ok((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        ))
    }

    async fn next_signal((term, int, hup): &mut (Signal, Signal, Signal)) -> Sig {
        let stop = async {
            runtime::or(term.recv(), int.recv()).await;
            Sig::Stop
        };
        let reload = async {
            hup.recv().await;
            Sig::Reload
        };
        runtime::or(stop, reload).await
    }
}
