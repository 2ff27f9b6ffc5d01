//! xfed on async-std: only async-std's timers and UDP sockets, its
//! reactor's (`async-io`) TCP streams, and signals,
//! adapted to [`Runtime`]; the tasks and the event loop are
//! `xfed_core::host`'s, shared with the tokio binary. async-std is
//! discontinued upstream (RUSTSEC-2025-0052): this stays an adapter.
//!
//! Every task runs on the main thread, on the local executor of
//! async-std's own `async-global-executor`, which also drives the
//! reactor: the layout of tokio's current-thread runtime. On async-std's
//! default thread pool each message crossed threads between the gateway
//! task and the connection tasks (futex wake-ups, cache misses): 1.9
//! times tokio's CPU per message, measured with `benches/sip_e2e.rs`.

use std::future::Future;
use std::io;
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use async_io::Async;
use async_signal::{Signal, Signals};
use async_std::net::UdpSocket;
use futures_lite::{AsyncWriteExt, StreamExt};
use xfed_core::host::driver;
use xfed_core::host::runtime::{self, Runtime, Sig};

fn main() -> ExitCode {
    match driver::start() {
        Ok(start) => async_global_executor::block_on(runtime::run::<AsyncStd>("async-std", start)),
        Err(code) => code,
    }
}

struct AsyncStd;

/// A task on the main thread's executor. Dropping it lets the task run
/// on (the host drops the handles of tasks it never stops);
/// [`Runtime::abort`] cancels it.
struct LocalTask(Option<async_global_executor::Task<()>>);

impl Drop for LocalTask {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.detach();
        }
    }
}

impl Runtime for AsyncStd {
    type Tcp = Async<TcpStream>;
    type Listener = Async<TcpListener>;
    type Udp = UdpSocket;
    type Task = LocalTask;
    type Signals = Signals;

    fn spawn(task: impl Future<Output = ()> + Send + 'static) -> LocalTask {
        LocalTask(Some(async_global_executor::spawn_local(task)))
    }

    fn abort(mut task: LocalTask) {
        // Dropping an `async_task::Task` cancels it.
        drop(task.0.take());
    }

    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        async_std::task::sleep(d)
    }

    async fn connect(addr: SocketAddr) -> io::Result<Async<TcpStream>> {
        // As for accepted ones: each write is a whole turn's output, which
        // Nagle's algorithm would hold for the peer's delayed ACK.
        let s = Async::<TcpStream>::connect(addr).await?;
        let _ = s.get_ref().set_nodelay(true);
        Ok(s)
    }

    fn listener(l: TcpListener) -> io::Result<Async<TcpListener>> {
        Async::new(l)
    }

    async fn accept(l: &Async<TcpListener>) -> io::Result<(Async<TcpStream>, SocketAddr)> {
        let (s, peer) = l.accept().await?;
        let _ = s.get_ref().set_nodelay(true);
        Ok((s, peer))
    }

    fn readable(s: &Async<TcpStream>) -> impl Future<Output = io::Result<()>> + Send + '_ {
        s.readable()
    }

    fn try_read(s: &Async<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
        // The socket is non-blocking (`Async` made it so).
        s.get_ref().read(buf)
    }

    fn write_all<'a>(
        s: &'a mut Async<TcpStream>,
        buf: &'a [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a {
        s.write_all(buf)
    }

    async fn shutdown(s: &mut Async<TcpStream>) {
        let _ = s.flush().await;
        let _ = s.get_ref().shutdown(Shutdown::Write);
    }

    fn udp(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(s.into())
    }

    fn recv_from<'a>(
        s: &'a UdpSocket,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a {
        s.recv_from(buf)
    }

    fn signals() -> io::Result<Signals> {
        Signals::new([Signal::Term, Signal::Int, Signal::Hup])
    }

    async fn next_signal(s: &mut Signals) -> Sig {
        match s.next().await {
            Some(Ok(Signal::Hup)) => Sig::Reload,
            _ => Sig::Stop,
        }
    }
}
