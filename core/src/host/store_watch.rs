//! Hears what the other instances of a deployment write to the shared
//! PostgreSQL store: every write of a shared row (bindings, presence
//! publications and authorizations, remembered contacts) notifies [`SHARED_CHANNEL`] with the
//! table and the user at commit ([`Shared::key`]), and this thread (a
//! connection of its own, `LISTEN`) reads that user's rows of that table
//! and hands them to the gateway task ([`Input::Shared`]): a message for
//! a user registered through another instance is forwarded there, and
//! presence is answered and sent from what every instance wrote. When
//! the connection is lost it is made again with back-off, and everything
//! is read afresh (notifications sent meanwhile are lost).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_channel::Sender;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use tracing::{info, warn};

use super::driver::Input;
use super::store_postgres::{authorizations, bindings, contacts, publications, SHARED_CHANNEL};
use super::store_worker::{RETRY_FIRST, RETRY_MAX};
use crate::config::{Config, StoreUrl};
use crate::store::{Shared, StoreError};

/// How often the thread looks whether the gateway task is gone.
const POLL: Duration = Duration::from_secs(1);

/// The watcher thread, and whether it hears the other instances now
/// (`xfed_store_shared_up`).
#[derive(Debug)]
pub struct Watching {
    /// True while connected and listening.
    pub hearing: Arc<AtomicBool>,
    _thread: JoinHandle<()>,
}

/// Starts the watcher when `config` makes this instance one of several:
/// a PostgreSQL store and a `sip.path`. It ends when the gateway task's
/// channel closes.
pub fn start<S: Send + 'static>(config: &Config, tx: Sender<Input<S>>) -> Option<Watching> {
    let StoreUrl::Postgres(url) = &config.store.url else {
        return None;
    };
    config.sip.path.as_ref()?;
    let url = url.expose().to_owned();
    let hearing = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&hearing);
    std::thread::Builder::new()
        .name("xfed-store-watch".into())
        .spawn(move || run(&url, &tx, &flag))
        .map_err(|e| warn!("cannot watch the shared store for the other instances' writes: {e}"))
        .ok()
        .map(|thread| Watching {
            hearing,
            _thread: thread,
        })
}

fn run<S>(url: &str, tx: &Sender<Input<S>>, hearing: &AtomicBool) {
    let mut wait = RETRY_FIRST;
    let mut lost = false;
    while !tx.is_closed() {
        let result = watch(url, tx, &mut lost, &mut wait, hearing);
        hearing.store(false, Ordering::Relaxed);
        match result {
            Ok(()) => return,
            Err(e) => {
                if !lost {
                    warn!("shared store: lost the other instances' writes ({e}); trying again");
                    lost = true;
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

/// The rows a notification (or, with `None`, a fresh start) asks for.
fn read(client: &mut Client, table: char, user: Option<&str>) -> Result<Shared, StoreError> {
    let owned = user.map(str::to_owned);
    Ok(match table {
        'b' => Shared::Bindings(owned, bindings(client, user)?),
        'p' => Shared::Publications(owned, publications(client, user)?),
        'c' => Shared::Contacts(owned, contacts(client, user)?),
        _ => Shared::Authorizations(owned, authorizations(client, user)?),
    })
}

/// One connection's life: `LISTEN`, everything read, then each notified
/// user's rows. `Ok` when the gateway task is gone.
fn watch<S>(
    url: &str,
    tx: &Sender<Input<S>>,
    lost: &mut bool,
    wait: &mut Duration,
    hearing: &AtomicBool,
) -> Result<(), String> {
    let pg = |e: postgres::Error| format!("postgres: {e}");
    let mut client = Client::connect(url, NoTls).map_err(pg)?;
    client
        .batch_execute(&format!("LISTEN {SHARED_CHANNEL}"))
        .map_err(pg)?;
    for table in ['b', 'p', 'a', 'c'] {
        let all = read(&mut client, table, None).map_err(|e| e.to_string())?;
        if tx.send_blocking(Input::Shared(all)).is_err() {
            return Ok(());
        }
    }
    if std::mem::take(lost) {
        info!("shared store: the other instances' writes are heard again");
    } else {
        info!("shared store: hearing the other instances' writes");
    }
    *wait = RETRY_FIRST;
    hearing.store(true, Ordering::Relaxed);
    loop {
        let mut changed: BTreeSet<String> = BTreeSet::new();
        {
            let mut notes = client.notifications();
            let first = notes.timeout_iter(POLL).next().map_err(pg)?;
            if let Some(first) = first {
                changed.insert(first.payload().to_owned());
                // Whatever else came meanwhile, in the same round.
                let mut more = notes.iter();
                while let Some(n) = more.next().map_err(pg)? {
                    changed.insert(n.payload().to_owned());
                }
            }
        }
        if tx.is_closed() {
            return Ok(());
        }
        if client.is_closed() {
            return Err("postgres: the connection closed".into());
        }
        for key in &changed {
            let Some((table, user)) = Shared::parse_key(key) else {
                warn!("shared store: notification {key:?} not understood; ignored");
                continue;
            };
            let rows = read(&mut client, table, Some(user)).map_err(|e| e.to_string())?;
            if tx.send_blocking(Input::Shared(rows)).is_err() {
                return Ok(());
            }
        }
    }
}
