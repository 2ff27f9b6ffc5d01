//! The store's writer: one thread that applies the core's [`Persist`]
//! records, so that a write never holds the gateway task (a slow disk, a
//! PostgreSQL server that went away). Changes waiting are merged by row
//! (the newest write of a row replaces older ones), so what waits is
//! bounded by the rows the core itself holds, whatever the outage's
//! length, plus [`MAX_WAITING`] rows at most; several waiting batches go
//! in one transaction. A failed write is kept and retried with back-off
//! ([`RETRY_FIRST`] doubling to [`RETRY_MAX`]) while the gateway goes on
//! serving from memory; the log says when the store is lost and when it
//! is back, and [`Health`] tells the metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::config::StoreUrl;
use crate::store::{Persist, Store, StoreError, Stored, Table};

/// The first wait before a failed write is tried again.
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
/// The longest wait between tries.
pub const RETRY_MAX: Duration = Duration::from_secs(10);
/// Rows waiting, at most: beyond, the newest changes are dropped (and
/// counted, and logged): a bound no core table reaches by default.
pub const MAX_WAITING: usize = 1_000_000;

/// Opens the store `url` names (the SQLite file, or a connection to the
/// PostgreSQL database), migrating its schema, and loads what it holds.
/// On a thread of its own: the PostgreSQL client runs its own executor,
/// which must not start inside the runtime's.
pub fn open_and_load(url: &StoreUrl) -> Result<(Box<dyn Store>, Stored), StoreError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut store = open(url)?;
            let stored = store.load_all()?;
            Ok((store, stored))
        })
        .join()
        .unwrap_or_else(|_| Err(StoreError::Backend("the store opener panicked".into())))
    })
}

fn open(url: &StoreUrl) -> Result<Box<dyn Store>, StoreError> {
    Ok(match url {
        StoreUrl::Sqlite(path) => Box::new(super::store_sqlite::SqliteStore::open_path(path)?),
        StoreUrl::Postgres(url) => {
            Box::new(super::store_postgres::PostgresStore::open(url.expose())?)
        }
    })
}

/// What the writer tells the metrics and `xfed status`.
#[derive(Debug, Default)]
pub struct Health {
    down: AtomicBool,
    waiting: AtomicUsize,
    written: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
}

impl Health {
    /// Whether the last write succeeded (or none failed yet).
    pub fn up(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }
    /// Rows waiting to be written.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
    /// Rows written since start.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
    /// Writes that failed (and were kept for the next try).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    /// Changes dropped because [`MAX_WAITING`] rows waited already.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

enum Msg {
    Apply(Vec<Persist>),
    /// Write what waits, then answer (or give up at the deadline).
    Finish(Instant, mpsc::SyncSender<usize>),
}

/// The writer thread, as the driver holds it.
#[derive(Debug)]
pub struct StoreWorker {
    tx: Sender<Msg>,
    health: Arc<Health>,
    thread: Option<JoinHandle<()>>,
}

impl StoreWorker {
    /// Starts the writer of `store` (opened and loaded by the caller).
    pub fn start(store: Box<dyn Store>) -> std::io::Result<StoreWorker> {
        let (tx, rx) = mpsc::channel();
        let health = Arc::new(Health::default());
        let h = Arc::clone(&health);
        let thread = std::thread::Builder::new()
            .name("xfed-store".into())
            .spawn(move || run(store, &rx, &h))?;
        Ok(StoreWorker {
            tx,
            health,
            thread: Some(thread),
        })
    }

    /// Queues changes; never waits.
    pub fn apply(&self, changes: Vec<Persist>) {
        if self.tx.send(Msg::Apply(changes)).is_err() {
            error!("store writer is gone: changes lost");
        }
    }

    /// The writer's state.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Writes everything queued, waiting at most `grace` (shutdown); the
    /// rows that could not be written (lost, and logged).
    pub fn finish(mut self, grace: Duration) -> usize {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let lost = if self
            .tx
            .send(Msg::Finish(Instant::now() + grace, done_tx))
            .is_ok()
        {
            done_rx
                .recv_timeout(grace + RETRY_MAX)
                .unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        if lost == 0 {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        lost
    }
}

/// Rows waiting, by table and key, in the order they first came.
#[derive(Default)]
struct Waiting {
    rows: HashMap<RowKey, (u64, Vec<Persist>)>,
    next: u64,
}

type RowKey = (Table, String, String);

fn row_key(p: &Persist) -> RowKey {
    let (table, a, b) = p.row();
    (table, a.to_owned(), b.into_owned())
}

impl Waiting {
    fn len(&self) -> usize {
        self.rows.len()
    }

    /// Adds a change; `false` when it was dropped for [`MAX_WAITING`].
    fn add(&mut self, p: Persist) -> bool {
        let key = row_key(&p);
        let full = self.rows.len() >= MAX_WAITING;
        match self.rows.get_mut(&key) {
            Some((_, ops)) => {
                // A row's newest write replaces the older ones, but two
                // rememberings of a contact both count (first and last
                // times): at most the first and the newest are kept.
                let remembered = |o: &Persist| matches!(o, Persist::RememberContact { .. });
                if remembered(&p) && ops.first().is_some_and(remembered) {
                    ops.truncate(1);
                } else {
                    ops.clear();
                }
                ops.push(p);
                true
            }
            None if full => false,
            None => {
                self.rows.insert(key, (self.next, vec![p]));
                self.next += 1;
                true
            }
        }
    }

    /// Everything, in the order rows first came.
    fn take(&mut self) -> Vec<Persist> {
        let mut rows: Vec<(u64, Vec<Persist>)> = self.rows.drain().map(|(_, v)| v).collect();
        rows.sort_by_key(|(seq, _)| *seq);
        rows.into_iter().flat_map(|(_, ops)| ops).collect()
    }

    /// Puts back a batch that failed, under what came meanwhile (newer).
    fn restore(&mut self, batch: Vec<Persist>) {
        let newer = std::mem::take(self);
        self.next = newer.next;
        for p in batch {
            self.add(p);
        }
        let mut newer: Vec<(u64, Vec<Persist>)> = newer.rows.into_values().collect();
        newer.sort_by_key(|(seq, _)| *seq);
        for p in newer.into_iter().flat_map(|(_, ops)| ops) {
            self.add(p);
        }
    }
}

fn run(mut store: Box<dyn Store>, rx: &Receiver<Msg>, health: &Health) {
    let mut waiting = Waiting::default();
    let mut retry: Option<(Instant, Duration)> = None;
    let mut finish: Option<(Instant, mpsc::SyncSender<usize>)> = None;
    loop {
        // Wait for changes, or for the next try.
        let msg = match (waiting.len(), retry, &finish) {
            (_, _, Some(_)) => rx.try_recv().ok(),
            // The driver is gone without asking to finish (it failed at
            // start): nothing more will come.
            (0, _, None) => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => return,
            },
            (n, Some((at, _)), None) => {
                match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        error!("store writer stopped with {n} change(s) not written");
                        return;
                    }
                }
            }
            (_, None, None) => rx.try_recv().ok(),
        };
        let mut take = |m: Msg, finish: &mut Option<_>| match m {
            Msg::Apply(changes) => {
                for p in changes {
                    if !waiting.add(p) {
                        health.dropped.fetch_add(1, Ordering::Relaxed);
                        error!(
                            "store: {MAX_WAITING} rows wait to be written; a change was dropped"
                        );
                    }
                }
            }
            Msg::Finish(deadline, done) => *finish = Some((deadline, done)),
        };
        if let Some(m) = msg {
            take(m, &mut finish);
        }
        // Gather whatever else came, into one transaction.
        while let Ok(m) = rx.try_recv() {
            take(m, &mut finish);
        }
        health.waiting.store(waiting.len(), Ordering::Relaxed);
        let due = retry.is_none_or(|(at, _)| Instant::now() >= at) || finish.is_some();
        if waiting.len() > 0 && due {
            let batch = waiting.take();
            let n = batch.len();
            match store.apply(&batch) {
                Ok(()) => {
                    health.written.fetch_add(n as u64, Ordering::Relaxed);
                    if health.down.swap(false, Ordering::Relaxed) {
                        info!("store reachable again: {n} waiting change(s) written");
                    }
                    retry = None;
                }
                Err(e) => {
                    health.failures.fetch_add(1, Ordering::Relaxed);
                    waiting.restore(batch);
                    let wait = retry.map_or(RETRY_FIRST, |(_, w)| (w * 2).min(RETRY_MAX));
                    if !health.down.swap(true, Ordering::Relaxed) {
                        warn!(
                            "store write failed ({e}); the gateway goes on serving, {} change(s) kept and retried",
                            waiting.len()
                        );
                    }
                    retry = Some((Instant::now() + wait, wait));
                }
            }
            health.waiting.store(waiting.len(), Ordering::Relaxed);
        }
        if let Some((deadline, _)) = &finish {
            if waiting.len() == 0 || Instant::now() >= *deadline {
                let lost = waiting.len();
                if lost > 0 {
                    error!("store unreachable at shutdown: {lost} change(s) not written");
                }
                if let Some((_, done)) = finish.take() {
                    let _ = done.send(lost);
                }
                return;
            }
            if let Some((at, _)) = retry {
                std::thread::sleep(
                    at.saturating_duration_since(Instant::now())
                        .min(deadline.saturating_duration_since(Instant::now())),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Binding;

    fn binding(contact: &str, expires_at: u64) -> Binding {
        Binding {
            aor: "alice@example.com".into(),
            contact: contact.into(),
            expires_at,
            q: None,
            call_id: "c".into(),
            cseq: 1,
            instance: None,
            reg_id: None,
            path: None,
        }
    }

    #[test]
    fn a_rows_newest_write_replaces_the_older_ones() {
        let mut w = Waiting::default();
        w.add(Persist::InsertBinding(binding("sip:a@h", 10)));
        w.add(Persist::InsertBinding(binding("sip:b@h", 10)));
        w.add(Persist::UpdateBinding(binding("sip:a@h", 20)));
        w.add(Persist::DeleteBinding {
            aor: "alice@example.com".into(),
            key: binding("sip:b@h", 0).key(),
        });
        assert_eq!(w.len(), 2);
        let batch = w.take();
        assert_eq!(
            batch,
            [
                Persist::UpdateBinding(binding("sip:a@h", 20)),
                Persist::DeleteBinding {
                    aor: "alice@example.com".into(),
                    key: binding("sip:b@h", 0).key(),
                }
            ]
        );
    }

    #[test]
    fn a_failed_batch_goes_back_under_what_came_since() {
        let mut w = Waiting::default();
        w.add(Persist::InsertBinding(binding("sip:a@h", 10)));
        let batch = w.take();
        w.add(Persist::UpdateBinding(binding("sip:a@h", 30)));
        w.restore(batch);
        assert_eq!(w.take(), [Persist::UpdateBinding(binding("sip:a@h", 30))]);
    }

    #[test]
    fn two_rememberings_keep_the_first_and_the_newest() {
        let remember = |at| Persist::RememberContact {
            local_user: "alice@example.com".into(),
            remote_jid: "bob@x".into(),
            at_unix: at,
        };
        let mut w = Waiting::default();
        for at in [1, 2, 3] {
            w.add(remember(at));
        }
        assert_eq!(w.take(), [remember(1), remember(3)]);
    }
}
