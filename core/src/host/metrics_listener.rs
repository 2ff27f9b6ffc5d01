//! The `[listen] metrics` endpoint: plain HTTP/1.1 on blocking threads,
//! the same on both runtimes (like the admin socket), so that a scrape
//! never waits on the gateway task: it renders the shared [`Registry`]
//! the driver keeps up to date.
//!
//! What a client can make xfed hold is bounded: [`MAX_SCRAPES`]
//! connections served at once (more are closed at once), a request head
//! of at most [`MAX_REQUEST`] bytes, read within [`READ_TIME`]; each
//! connection closes after its one answer (after at most [`LINGER`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::metrics::http::{Answer, MAX_REQUEST};
use crate::metrics::Registry;

/// The registry as the driver and the listener share it.
pub type Shared = Arc<Mutex<Registry>>;

/// Scrapes served at once; a connection beyond is closed unanswered.
pub const MAX_SCRAPES: usize = 4;
/// How long a client has to send its request head, and to take the
/// answer.
pub const READ_TIME: Duration = Duration::from_secs(5);

/// Serves `listener` (bound by [`super::bind`]) on its own thread, until
/// the returned [`Serving`] is stopped (a reload that moves it).
pub fn serve(listener: TcpListener, registry: Shared) -> io::Result<Serving> {
    let active = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let addr = listener.local_addr()?;
    let stop = Arc::clone(&stopped);
    std::thread::Builder::new()
        .name("xfed-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                match conn {
                    Ok(stream) => start(stream, &registry, &active),
                    Err(e) => warn!("metrics listener: accept failed: {e}"),
                }
            }
        })?;
    Ok(Serving { addr, stopped })
}

/// A metrics listener being served.
#[derive(Debug)]
pub struct Serving {
    addr: SocketAddr,
    stopped: Arc<AtomicBool>,
}

impl Serving {
    /// Closes the listener: its thread is woken by a connection of our
    /// own, sees the flag, and drops it.
    pub fn stop(self) {
        self.stopped.store(true, Ordering::Release);
        let _ = TcpStream::connect_timeout(&self.addr, READ_TIME);
    }
}

/// One scrape on its own thread, or none beyond [`MAX_SCRAPES`].
fn start(stream: TcpStream, registry: &Shared, active: &Arc<AtomicUsize>) {
    if active.fetch_add(1, Ordering::AcqRel) >= MAX_SCRAPES {
        active.fetch_sub(1, Ordering::AcqRel);
        debug!("metrics listener: {MAX_SCRAPES} scrapes running; connection closed");
        return;
    }
    let (registry, active) = (Arc::clone(registry), Arc::clone(active));
    let spawned = std::thread::Builder::new()
        .name("xfed-scrape".into())
        .spawn(move || {
            if let Err(e) = answer(stream, &registry) {
                debug!("metrics listener: {e}");
            }
            active.fetch_sub(1, Ordering::AcqRel);
        });
    if let Err(e) = spawned {
        warn!("metrics listener: no thread for a scrape: {e}");
    }
}

/// Reads one request head within the bounds and writes its answer.
fn answer(mut stream: TcpStream, registry: &Shared) -> io::Result<()> {
    let deadline = Instant::now() + READ_TIME;
    stream.set_write_timeout(Some(READ_TIME))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let answer = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(answer) = Answer::of(&head) {
            break answer;
        }
    };
    debug_assert!(head.len() < MAX_REQUEST + buf.len());
    // Rendered from a copy: the driver waits only for the copy.
    let response = answer.response(|| {
        let snapshot = match registry.lock() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        snapshot.render()
    });
    stream.write_all(&response)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    // Closing with unread bytes would reset the connection and could lose
    // the answer (a refused oversized head): take a little of what is
    // left first.
    stream.set_read_timeout(Some(LINGER))?;
    let _ = io::copy(&mut (&mut stream).take(DRAIN as u64), &mut io::sink());
    Ok(())
}

/// How long a connection may linger after its answer, and how much it may
/// still send then.
const LINGER: Duration = Duration::from_secs(1);
const DRAIN: usize = 64 * 1024;
