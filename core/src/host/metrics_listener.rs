//! The `[listen] metrics` endpoint: plain HTTP/1.1 on blocking threads,
//! the same on both runtimes (like the admin socket). A scrape
//! (`/metrics`) never waits on the gateway task: it renders the shared
//! [`Registry`] the driver keeps up to date. The status page (`/`) asks
//! the gateway task for its [`Report`] as the admin socket does (an
//! [`Input::Report`] with a reply channel), waiting at most
//! [`REPORT_TIME`] (else 503), and shows rates from the registry's
//! counters over a moving window ([`Rates`]).
//!
//! What a client can make xfed hold is bounded: [`MAX_SCRAPES`]
//! connections served at once (more are closed at once), a request head
//! of at most [`MAX_REQUEST`] bytes, read within [`READ_TIME`]; each
//! connection closes after its one answer (after at most [`LINGER`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::{Sender, TrySendError};
use tracing::{debug, warn};

use super::driver::Input;
use crate::gateway::Report;
use crate::metrics::http::{Answer, MAX_REQUEST};
use crate::metrics::rates::Rates;
use crate::metrics::{page, Registry};

/// The registry as the driver and the listener share it.
pub type Shared = Arc<Mutex<Registry>>;

/// Asks the gateway task for its report, waiting at most the duration
/// given; `None` when it did not answer in time (or is gone).
pub type AskReport = Arc<dyn Fn(Duration) -> Option<Report> + Send + Sync>;

/// How long the status page waits for the gateway task's report,
/// including a place in its input queue.
pub const REPORT_TIME: Duration = Duration::from_secs(2);

/// [`AskReport`] through the gateway task's input channel: an
/// [`Input::Report`] with a reply channel. Queued without blocking past
/// the time given: a busy gateway makes the page wait, never the thread
/// hang.
pub fn report_from<S: Send + 'static>(tx: Sender<Input<S>>) -> AskReport {
    Arc::new(move |within| {
        let deadline = Instant::now() + within;
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let mut input = Input::Report(reply_tx);
        loop {
            match tx.try_send(input) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    input = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return None,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        reply_rx.recv_timeout(left).ok().map(|r| *r)
    })
}

/// What the answering threads share.
struct Served {
    registry: Shared,
    report: AskReport,
    rates: Mutex<Rates>,
}

/// Scrapes served at once; a connection beyond is closed unanswered.
pub const MAX_SCRAPES: usize = 4;
/// How long a client has to send its request head, and to take the
/// answer.
pub const READ_TIME: Duration = Duration::from_secs(5);

/// Serves `listener` (bound by [`super::bind`]) on its own thread: the
/// exposition of `registry`, and the status page from `report`, until
/// the returned [`Serving`] is stopped (a reload that moves it).
pub fn serve(listener: TcpListener, registry: Shared, report: AskReport) -> io::Result<Serving> {
    let active = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let addr = listener.local_addr()?;
    let stop = Arc::clone(&stopped);
    let served = Arc::new(Served {
        registry,
        report,
        rates: Mutex::new(Rates::default()),
    });
    std::thread::Builder::new()
        .name("xfed-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                match conn {
                    Ok(stream) => start(stream, &served, &active),
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
fn start(stream: TcpStream, served: &Arc<Served>, active: &Arc<AtomicUsize>) {
    if active.fetch_add(1, Ordering::AcqRel) >= MAX_SCRAPES {
        active.fetch_sub(1, Ordering::AcqRel);
        debug!("metrics listener: {MAX_SCRAPES} scrapes running; connection closed");
        return;
    }
    let (served, active) = (Arc::clone(served), Arc::clone(active));
    let spawned = std::thread::Builder::new()
        .name("xfed-scrape".into())
        .spawn(move || {
            if let Err(e) = answer(stream, &served) {
                debug!("metrics listener: {e}");
            }
            active.fetch_sub(1, Ordering::AcqRel);
        });
    if let Err(e) = spawned {
        warn!("metrics listener: no thread for a scrape: {e}");
    }
}

/// Reads one request head within the bounds and writes its answer.
fn answer(mut stream: TcpStream, served: &Served) -> io::Result<()> {
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
    let snapshot = || {
        // Rendered from a copy: the driver waits only for the copy.
        match served.registry.lock() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    };
    let response = match answer {
        Answer::Page => match (served.report)(REPORT_TIME) {
            Some(report) => Answer::Page.response(|| {
                let registry = snapshot();
                let rates = served
                    .rates
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .update(&registry, Instant::now());
                page::render(&report, &rates)
            }),
            None => Answer::Unavailable.response(String::new),
        },
        _ => answer.response(|| snapshot().render()),
    };
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
