//! The embedded store: one SQLite file (rusqlite, SQLite bundled so no
//! system library is needed), behaving exactly as `store::MemoryStore`.
//!
//! - Schema versions live in `PRAGMA user_version`; [`MIGRATIONS`] holds one
//!   script per version, applied in one transaction at open. A file from a
//!   newer xfed is refused rather than misread.
//! - WAL journal: readers (`xfed check`, a backup) never block the writer,
//!   and a commit is one sequential append. `synchronous = NORMAL` is
//!   durable across process crashes; after a power loss the last commits
//!   may be lost but never the file's consistency, and registrations are
//!   refreshed by clients anyway.
//! - Times are unix seconds in INTEGER columns (SQLite integers are i64;
//!   values beyond it are refused, not wrapped).

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::store::{
    check_times, to_i64, to_u64, Binding, Contacted, Persist, SavedDialog, SavedSide, Store,
    StoreError, StoredAuthorization, StoredDialog, StoredPublication, Q,
};

/// The schema, one script per version: index `i` upgrades `i` to `i + 1`.
/// Never edit a published entry; append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: registrar bindings, remembered contacts.
    "CREATE TABLE bindings (
        aor TEXT NOT NULL,
        binding_key TEXT NOT NULL,
        contact TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        q INTEGER,
        call_id TEXT NOT NULL,
        cseq INTEGER NOT NULL,
        instance TEXT,
        reg_id INTEGER,
        PRIMARY KEY (aor, binding_key)
    ) WITHOUT ROWID;
    CREATE TABLE contacts (
        local_user TEXT NOT NULL,
        remote_jid TEXT NOT NULL,
        first_at INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (local_user, remote_jid)
    ) WITHOUT ROWID;",
    // 2: presence publications (RFC 3903), one row per device's entity-tag.
    "CREATE TABLE publications (
        aor TEXT NOT NULL,
        etag TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        published_at INTEGER NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (aor, etag)
    ) WITHOUT ROWID;",
    // 3: presence authorizations of remote watchers, approved or pending.
    "CREATE TABLE authorizations (
        local_user TEXT NOT NULL,
        remote_jid TEXT NOT NULL,
        approved INTEGER NOT NULL,
        since INTEGER NOT NULL,
        PRIMARY KEY (local_user, remote_jid)
    ) WITHOUT ROWID;",
    // 4: SIP subscription dialogs (RFC 6665), both roles. `interval` is
    // NULL for a notifier dialog.
    "CREATE TABLE dialogs (
        call_id TEXT NOT NULL,
        local_tag TEXT NOT NULL,
        remote_tag TEXT NOT NULL,
        interval INTEGER,
        local_user TEXT NOT NULL,
        remote_jid TEXT NOT NULL,
        target TEXT NOT NULL,
        route TEXT NOT NULL,
        local_uri TEXT NOT NULL,
        remote_uri TEXT NOT NULL,
        event TEXT NOT NULL,
        local_cseq INTEGER NOT NULL,
        remote_cseq INTEGER NOT NULL,
        active INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        saved_at INTEGER NOT NULL,
        PRIMARY KEY (call_id, local_tag)
    ) WITHOUT ROWID;",
    // 5: which instance holds a binding's flow (RFC 3327 Path), for the
    // other instances of a deployment.
    "ALTER TABLE bindings ADD COLUMN path TEXT;",
    // 6: which instance took a presence publication, for the others.
    "ALTER TABLE publications ADD COLUMN path TEXT;",
];

/// How long a writer waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) and migrates the
    /// file at `path`, in WAL mode.
    pub fn open_path(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "{}: SQLite refused WAL mode (got '{mode}')",
                path.display()
            )));
        }
        SqliteStore::init(conn)
    }

    /// A private in-memory database (no WAL there), for tests.
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        SqliteStore::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(mut conn: Connection) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        migrate(&mut conn)?;
        Ok(SqliteStore { conn })
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(backend)
    }

    /// The journal mode in force (`wal` for files).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        self.conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .map_err(backend)
    }
}

/// Brings the schema to the newest version, all in one transaction so a
/// crash leaves the old version intact. The transaction takes the write
/// lock before reading the version, so two processes opening a new file at
/// once migrate it once, one after the other.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    if found < 0 {
        return Err(StoreError::Corrupt(format!("schema version {found}")));
    }
    if found == supported {
        return Ok(());
    }
    for script in MIGRATIONS.iter().skip(found as usize) {
        tx.execute_batch(script).map_err(backend)?;
    }
    tx.pragma_update(None, "user_version", supported)
        .map_err(backend)?;
    tx.commit().map_err(backend)
}

fn upsert_binding(tx: &Transaction<'_>, b: &Binding) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO bindings
            (aor, binding_key, contact, expires_at, q, call_id, cseq, instance, reg_id, path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            b.aor,
            b.key(),
            b.contact,
            to_i64(b.expires_at, "expires_at")?,
            b.q.map(Q::millis),
            b.call_id,
            b.cseq,
            b.instance,
            b.reg_id,
            b.path,
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn remember(tx: &Transaction<'_>, local: &str, remote: &str, at: u64) -> Result<(), StoreError> {
    let at = to_i64(at, "time")?;
    tx.execute(
        "INSERT INTO contacts (local_user, remote_jid, first_at, last_at)
         VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (local_user, remote_jid) DO UPDATE SET
            first_at = min(first_at, excluded.first_at),
            last_at = max(last_at, excluded.last_at)",
        params![local, remote, at],
    )
    .map_err(backend)?;
    Ok(())
}

fn put_authorization(tx: &Transaction<'_>, a: &StoredAuthorization) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO authorizations (local_user, remote_jid, approved, since)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            a.local_user,
            a.remote_jid,
            a.approved,
            to_i64(a.since, "since")?
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn put_dialog(tx: &Transaction<'_>, d: &StoredDialog) -> Result<(), StoreError> {
    let g = &d.dialog;
    let interval = match g.side {
        SavedSide::Notifier => None,
        SavedSide::Subscriber { interval } => Some(interval),
    };
    tx.execute(
        "INSERT OR REPLACE INTO dialogs (call_id, local_tag, remote_tag, interval,
            local_user, remote_jid, target, route, local_uri, remote_uri, event,
            local_cseq, remote_cseq, active, expires_at, saved_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            g.call_id,
            g.local_tag,
            g.remote_tag,
            interval,
            d.local_user,
            d.remote_jid,
            g.target,
            g.route,
            g.local_uri,
            g.remote_uri,
            g.event,
            g.local_cseq,
            g.remote_cseq,
            g.active,
            to_i64(g.expires_at, "expires_at")?,
            to_i64(g.saved_at, "saved_at")?,
        ],
    )
    .map_err(backend)?;
    Ok(())
}

/// A `dialogs` row, its times still as SQL integers.
fn dialog_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(StoredDialog, i64, i64)> {
    let side = match r.get::<_, Option<u32>>(3)? {
        None => SavedSide::Notifier,
        Some(interval) => SavedSide::Subscriber { interval },
    };
    let dialog = SavedDialog {
        call_id: r.get(0)?,
        local_tag: r.get(1)?,
        remote_tag: r.get(2)?,
        side,
        target: r.get(6)?,
        route: r.get(7)?,
        local_uri: r.get(8)?,
        remote_uri: r.get(9)?,
        event: r.get(10)?,
        local_cseq: r.get(11)?,
        remote_cseq: r.get(12)?,
        active: r.get(13)?,
        expires_at: 0,
        saved_at: 0,
    };
    let stored = StoredDialog {
        local_user: r.get(4)?,
        remote_jid: r.get(5)?,
        dialog,
    };
    Ok((stored, r.get(14)?, r.get(15)?))
}

fn contact_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, i64, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn contacted(
    (local_user, remote_jid, first, last): (String, String, i64, i64),
) -> Result<Contacted, StoreError> {
    Ok(Contacted {
        local_user,
        remote_jid,
        first_at: to_u64(first, "first_at")?,
        last_at: to_u64(last, "last_at")?,
    })
}

impl Store for SqliteStore {
    fn load_bindings(&mut self) -> Result<Vec<Binding>, StoreError> {
        type Row = (
            String,
            String,
            i64,
            Option<i64>,
            String,
            i64,
            Option<String>,
            Option<i64>,
            Option<String>,
        );
        let mut stmt = self
            .conn
            .prepare(
                "SELECT aor, contact, expires_at, q, call_id, cseq, instance, reg_id, path
                 FROM bindings ORDER BY aor, binding_key",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| -> rusqlite::Result<Row> {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (aor, contact, expires_at, q, call_id, cseq, instance, reg_id, path) =
                row.map_err(backend)?;
            let q = match q {
                None => None,
                Some(m) => Some(
                    u16::try_from(m)
                        .ok()
                        .and_then(Q::from_millis)
                        .ok_or_else(|| StoreError::Corrupt(format!("q {m}")))?,
                ),
            };
            out.push(Binding {
                aor,
                contact,
                expires_at: to_u64(expires_at, "expires_at")?,
                q,
                call_id,
                cseq: u32::try_from(cseq)
                    .map_err(|_| StoreError::Corrupt(format!("cseq {cseq}")))?,
                instance,
                reg_id: reg_id
                    .map(|r| {
                        u32::try_from(r).map_err(|_| StoreError::Corrupt(format!("reg-id {r}")))
                    })
                    .transpose()?,
                path,
            });
        }
        Ok(out)
    }

    fn load_contacts(&mut self) -> Result<Vec<Contacted>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT local_user, remote_jid, first_at, last_at
                 FROM contacts ORDER BY local_user, remote_jid",
            )
            .map_err(backend)?;
        let rows = stmt.query_map([], contact_row).map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(contacted(row.map_err(backend)?)?);
        }
        Ok(out)
    }

    fn load_publications(&mut self) -> Result<Vec<StoredPublication>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT aor, etag, expires_at, published_at, body, path
                 FROM publications ORDER BY aor, etag",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (aor, etag, expires_at, published_at, body, path) = row.map_err(backend)?;
            out.push(StoredPublication {
                aor,
                etag,
                expires_at: to_u64(expires_at, "expires_at")?,
                published_at: to_u64(published_at, "published_at")?,
                body,
                path,
            });
        }
        Ok(out)
    }

    fn load_authorizations(&mut self) -> Result<Vec<StoredAuthorization>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT local_user, remote_jid, approved, since
                 FROM authorizations ORDER BY local_user, remote_jid",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (local_user, remote_jid, approved, since) = row.map_err(backend)?;
            out.push(StoredAuthorization {
                local_user,
                remote_jid,
                approved,
                since: to_u64(since, "since")?,
            });
        }
        Ok(out)
    }

    fn load_dialogs(&mut self) -> Result<Vec<StoredDialog>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT call_id, local_tag, remote_tag, interval, local_user, remote_jid,
                    target, route, local_uri, remote_uri, event, local_cseq, remote_cseq,
                    active, expires_at, saved_at
                 FROM dialogs ORDER BY call_id, local_tag",
            )
            .map_err(backend)?;
        let rows = stmt.query_map([], dialog_row).map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (mut d, expires_at, saved_at) = row.map_err(backend)?;
            d.dialog.expires_at = to_u64(expires_at, "expires_at")?;
            d.dialog.saved_at = to_u64(saved_at, "saved_at")?;
            out.push(d);
        }
        Ok(out)
    }

    fn apply(&mut self, changes: &[Persist]) -> Result<(), StoreError> {
        check_times(changes)?;
        // Dropping the transaction without commit rolls everything back.
        // Immediate: the write lock is taken (or waited for) up front, not
        // on the first write, which could fail on a stale snapshot.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        for change in changes {
            match change {
                Persist::InsertBinding(b) | Persist::UpdateBinding(b) => upsert_binding(&tx, b)?,
                Persist::DeleteBinding { aor, key } => {
                    tx.execute(
                        "DELETE FROM bindings WHERE aor = ?1 AND binding_key = ?2",
                        params![aor, key],
                    )
                    .map_err(backend)?;
                }
                Persist::RememberContact {
                    local_user,
                    remote_jid,
                    at_unix,
                } => remember(&tx, local_user, remote_jid, *at_unix)?,
                Persist::ForgetContact {
                    local_user,
                    remote_jid,
                } => {
                    tx.execute(
                        "DELETE FROM contacts WHERE local_user = ?1 AND remote_jid = ?2",
                        params![local_user, remote_jid],
                    )
                    .map_err(backend)?;
                }
                Persist::PutPublication(p) => {
                    tx.execute(
                        "INSERT OR REPLACE INTO publications
                            (aor, etag, expires_at, published_at, body, path)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            p.aor,
                            p.etag,
                            to_i64(p.expires_at, "expires_at")?,
                            to_i64(p.published_at, "published_at")?,
                            p.body,
                            p.path,
                        ],
                    )
                    .map_err(backend)?;
                }
                Persist::DeletePublication { aor, etag } => {
                    tx.execute(
                        "DELETE FROM publications WHERE aor = ?1 AND etag = ?2",
                        params![aor, etag],
                    )
                    .map_err(backend)?;
                }
                Persist::PutAuthorization(a) => put_authorization(&tx, a)?,
                Persist::PutDialog(d) => put_dialog(&tx, d)?,
                Persist::DeleteDialog { call_id, local_tag } => {
                    tx.execute(
                        "DELETE FROM dialogs WHERE call_id = ?1 AND local_tag = ?2",
                        params![call_id, local_tag],
                    )
                    .map_err(backend)?;
                }
                Persist::DeleteAuthorization {
                    local_user,
                    remote_jid,
                } => {
                    tx.execute(
                        "DELETE FROM authorizations WHERE local_user = ?1 AND remote_jid = ?2",
                        params![local_user, remote_jid],
                    )
                    .map_err(backend)?;
                }
            }
        }
        tx.commit().map_err(backend)
    }

    fn has_contacted(
        &mut self,
        local_user: &str,
        remote_jid: &str,
    ) -> Result<Option<Contacted>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT local_user, remote_jid, first_at, last_at FROM contacts
                 WHERE local_user = ?1 AND remote_jid = ?2",
                params![local_user, remote_jid],
                contact_row,
            )
            .optional()
            .map_err(backend)?;
        row.map(contacted).transpose()
    }
}
