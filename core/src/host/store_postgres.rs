//! The shared store: a PostgreSQL database (the `postgres` crate, plain
//! TCP: loopback or a trusted network), behaving exactly as
//! `store::MemoryStore` and `SqliteStore`, for several instances of one
//! deployment (DESIGN.md section 1).
//!
//! - The schema has the same versions as SQLite's ([`MIGRATIONS`], one
//!   script per version, in PostgreSQL's dialect), its version kept in
//!   `xfed_schema`. Instances starting together migrate once: the
//!   migration holds a transaction-scoped advisory lock. A database of a
//!   newer xfed is refused rather than misread.
//! - Times are unix seconds in BIGINT columns, as SQLite's INTEGER.
//! - A connection that broke (the server restarted, the network failed)
//!   is made again on the next call, so the writer (`store_worker`) only
//!   retries.

use postgres::{Client, NoTls, Transaction};

use crate::store::{
    check_times, to_i64, to_u64, Binding, Contacted, Persist, SavedDialog, SavedSide, Shared,
    Store, StoreError, StoredAuthorization, StoredDialog, StoredPublication, Q,
};

/// The schema, one script per version, the same versions as
/// `store_sqlite::MIGRATIONS`: index `i` upgrades `i` to `i + 1`. Never
/// edit a published entry; append a new one to both lists.
pub const MIGRATIONS: &[&str] = &[
    // 1: registrar bindings, remembered contacts.
    "CREATE TABLE bindings (
        aor TEXT NOT NULL,
        binding_key TEXT NOT NULL,
        contact TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        q INTEGER,
        call_id TEXT NOT NULL,
        cseq BIGINT NOT NULL,
        instance TEXT,
        reg_id BIGINT,
        PRIMARY KEY (aor, binding_key)
    );
    CREATE TABLE contacts (
        local_user TEXT NOT NULL,
        remote_jid TEXT NOT NULL,
        first_at BIGINT NOT NULL,
        last_at BIGINT NOT NULL,
        PRIMARY KEY (local_user, remote_jid)
    );",
    // 2: presence publications (RFC 3903), one row per device's entity-tag.
    "CREATE TABLE publications (
        aor TEXT NOT NULL,
        etag TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        published_at BIGINT NOT NULL,
        body BYTEA NOT NULL,
        PRIMARY KEY (aor, etag)
    );",
    // 3: presence authorizations of remote watchers, approved or pending.
    "CREATE TABLE authorizations (
        local_user TEXT NOT NULL,
        remote_jid TEXT NOT NULL,
        approved BOOLEAN NOT NULL,
        since BIGINT NOT NULL,
        PRIMARY KEY (local_user, remote_jid)
    );",
    // 4: SIP subscription dialogs (RFC 6665), both roles. `interval` is
    // NULL for a notifier dialog.
    "CREATE TABLE dialogs (
        call_id TEXT NOT NULL,
        local_tag TEXT NOT NULL,
        remote_tag TEXT NOT NULL,
        interval BIGINT,
        local_user TEXT NOT NULL,
        remote_jid TEXT NOT NULL,
        target TEXT NOT NULL,
        route TEXT NOT NULL,
        local_uri TEXT NOT NULL,
        remote_uri TEXT NOT NULL,
        event TEXT NOT NULL,
        local_cseq BIGINT NOT NULL,
        remote_cseq BIGINT NOT NULL,
        active BOOLEAN NOT NULL,
        expires_at BIGINT NOT NULL,
        saved_at BIGINT NOT NULL,
        PRIMARY KEY (call_id, local_tag)
    );",
    // 5: which instance holds a binding's flow (RFC 3327 Path), for the
    // other instances of a deployment.
    "ALTER TABLE bindings ADD COLUMN path TEXT;",
    // 6: which instance took a presence publication, for the others.
    "ALTER TABLE publications ADD COLUMN path TEXT;",
];

/// The channel a write of shared rows notifies (`LISTEN`/`NOTIFY`), so
/// that every instance learns what the others changed: the payload is
/// the table's letter and the row's user ([`Shared::key`]).
pub const SHARED_CHANNEL: &str = "xfed_shared";

/// The advisory lock key migrations hold ("xfed" in ASCII).
const MIGRATION_LOCK: i64 = 0x7866_6564;

fn backend(e: postgres::Error) -> StoreError {
    StoreError::Backend(format!("postgres: {e}"))
}

fn to_u32(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v}")))
}

/// The PostgreSQL store.
pub struct PostgresStore {
    url: String,
    client: Client,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PostgresStore")
            .field("closed", &self.client.is_closed())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` and migrates the schema.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let mut store = PostgresStore {
            url: url.to_owned(),
            client: connect(url)?,
        };
        store.migrate()?;
        Ok(store)
    }

    /// The schema version of the database.
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        let row = self
            .client
            .query_opt("SELECT version FROM xfed_schema", &[])
            .map_err(backend)?;
        Ok(row.map_or(0, |r| i64::from(r.get::<_, i32>(0))))
    }

    /// A connection that works: the one held, or a new one when it broke.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.is_closed() {
            self.client = connect(&self.url)?;
        }
        Ok(&mut self.client)
    }

    /// Brings the schema to the newest version in one transaction, under
    /// an advisory lock so that instances starting together migrate once.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let supported = MIGRATIONS.len() as i64;
        let mut tx = self.client.transaction().map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(backend)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS xfed_schema (version INTEGER NOT NULL)")
            .map_err(backend)?;
        let found = tx
            .query_opt("SELECT version FROM xfed_schema", &[])
            .map_err(backend)?
            .map_or(0, |r| i64::from(r.get::<_, i32>(0)));
        if found > supported {
            return Err(StoreError::SchemaTooNew { found, supported });
        }
        if found < 0 {
            return Err(StoreError::Corrupt(format!("schema version {found}")));
        }
        if found == supported {
            return tx.commit().map_err(backend);
        }
        for script in MIGRATIONS.iter().skip(found as usize) {
            tx.batch_execute(script).map_err(backend)?;
        }
        let version = supported as i32;
        tx.execute("DELETE FROM xfed_schema", &[])
            .map_err(backend)?;
        tx.execute("INSERT INTO xfed_schema (version) VALUES ($1)", &[&version])
            .map_err(backend)?;
        tx.commit().map_err(backend)
    }
}

fn connect(url: &str) -> Result<Client, StoreError> {
    // The error text never holds the URL (nor its password).
    Client::connect(url, NoTls).map_err(backend)
}

fn upsert_binding(tx: &mut Transaction<'_>, b: &Binding) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO bindings
            (aor, binding_key, contact, expires_at, q, call_id, cseq, instance, reg_id, path)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (aor, binding_key) DO UPDATE SET
            contact = excluded.contact, expires_at = excluded.expires_at, q = excluded.q,
            call_id = excluded.call_id, cseq = excluded.cseq, instance = excluded.instance,
            reg_id = excluded.reg_id, path = excluded.path",
        &[
            &b.aor,
            &b.key(),
            &b.contact,
            &to_i64(b.expires_at, "expires_at")?,
            &b.q.map(|q| i32::from(q.millis())),
            &b.call_id,
            &i64::from(b.cseq),
            &b.instance,
            &b.reg_id.map(i64::from),
            &b.path,
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn remember(
    tx: &mut Transaction<'_>,
    local: &str,
    remote: &str,
    at: u64,
) -> Result<(), StoreError> {
    let at = to_i64(at, "time")?;
    tx.execute(
        "INSERT INTO contacts (local_user, remote_jid, first_at, last_at)
         VALUES ($1, $2, $3, $3)
         ON CONFLICT (local_user, remote_jid) DO UPDATE SET
            first_at = LEAST(contacts.first_at, excluded.first_at),
            last_at = GREATEST(contacts.last_at, excluded.last_at)",
        &[&local, &remote, &at],
    )
    .map_err(backend)?;
    Ok(())
}

fn put_publication(tx: &mut Transaction<'_>, p: &StoredPublication) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO publications (aor, etag, expires_at, published_at, body, path)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (aor, etag) DO UPDATE SET
            expires_at = excluded.expires_at, published_at = excluded.published_at,
            body = excluded.body, path = excluded.path",
        &[
            &p.aor,
            &p.etag,
            &to_i64(p.expires_at, "expires_at")?,
            &to_i64(p.published_at, "published_at")?,
            &p.body,
            &p.path,
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn put_authorization(tx: &mut Transaction<'_>, a: &StoredAuthorization) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO authorizations (local_user, remote_jid, approved, since)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (local_user, remote_jid) DO UPDATE SET
            approved = excluded.approved, since = excluded.since",
        &[
            &a.local_user,
            &a.remote_jid,
            &a.approved,
            &to_i64(a.since, "since")?,
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn put_dialog(tx: &mut Transaction<'_>, d: &StoredDialog) -> Result<(), StoreError> {
    let g = &d.dialog;
    let interval = match g.side {
        SavedSide::Notifier => None,
        SavedSide::Subscriber { interval } => Some(i64::from(interval)),
    };
    tx.execute(
        "INSERT INTO dialogs (call_id, local_tag, remote_tag, interval,
            local_user, remote_jid, target, route, local_uri, remote_uri, event,
            local_cseq, remote_cseq, active, expires_at, saved_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (call_id, local_tag) DO UPDATE SET
            remote_tag = excluded.remote_tag, interval = excluded.interval,
            local_user = excluded.local_user, remote_jid = excluded.remote_jid,
            target = excluded.target, route = excluded.route,
            local_uri = excluded.local_uri, remote_uri = excluded.remote_uri,
            event = excluded.event, local_cseq = excluded.local_cseq,
            remote_cseq = excluded.remote_cseq, active = excluded.active,
            expires_at = excluded.expires_at, saved_at = excluded.saved_at",
        &[
            &g.call_id,
            &g.local_tag,
            &g.remote_tag,
            &interval,
            &d.local_user,
            &d.remote_jid,
            &g.target,
            &g.route,
            &g.local_uri,
            &g.remote_uri,
            &g.event,
            &i64::from(g.local_cseq),
            &i64::from(g.remote_cseq),
            &g.active,
            &to_i64(g.expires_at, "expires_at")?,
            &to_i64(g.saved_at, "saved_at")?,
        ],
    )
    .map_err(backend)?;
    Ok(())
}

/// The rows of `select` (its columns and table) ordered by `order`: all,
/// or those whose column `key` is `user`.
fn rows_of(
    client: &mut Client,
    select: &str,
    key: &str,
    order: &str,
    user: Option<&str>,
) -> Result<Vec<postgres::Row>, StoreError> {
    match user {
        None => client.query(&format!("{select} ORDER BY {order}"), &[]),
        Some(user) => client.query(
            &format!("{select} WHERE {key} = $1 ORDER BY {order}"),
            &[&user],
        ),
    }
    .map_err(backend)
}

fn contacted(r: &postgres::Row) -> Result<Contacted, StoreError> {
    Ok(Contacted {
        local_user: r.get(0),
        remote_jid: r.get(1),
        first_at: to_u64(r.get(2), "first_at")?,
        last_at: to_u64(r.get(3), "last_at")?,
    })
}

/// The remembered contacts, of one local user or all.
pub(super) fn contacts(
    client: &mut Client,
    user: Option<&str>,
) -> Result<Vec<Contacted>, StoreError> {
    let select = "SELECT local_user, remote_jid, first_at, last_at FROM contacts";
    let rows = rows_of(client, select, "local_user", "local_user, remote_jid", user)?;
    rows.iter().map(contacted).collect()
}

/// The bindings stored, of one address of record or all.
pub(super) fn bindings(client: &mut Client, aor: Option<&str>) -> Result<Vec<Binding>, StoreError> {
    let select = "SELECT aor, contact, expires_at, q, call_id, cseq, instance, reg_id, path
         FROM bindings";
    let rows = rows_of(client, select, "aor", "aor, binding_key", aor)?;
    rows.iter()
        .map(|r| {
            let q = match r.get::<_, Option<i32>>(3) {
                None => None,
                Some(m) => Some(
                    u16::try_from(m)
                        .ok()
                        .and_then(Q::from_millis)
                        .ok_or_else(|| StoreError::Corrupt(format!("q {m}")))?,
                ),
            };
            Ok(Binding {
                aor: r.get(0),
                contact: r.get(1),
                expires_at: to_u64(r.get(2), "expires_at")?,
                q,
                call_id: r.get(4),
                cseq: to_u32(r.get(5), "cseq")?,
                instance: r.get(6),
                reg_id: r
                    .get::<_, Option<i64>>(7)
                    .map(|v| to_u32(v, "reg-id"))
                    .transpose()?,
                path: r.get(8),
            })
        })
        .collect()
}

/// The publications stored, of one address of record or all.
pub(super) fn publications(
    client: &mut Client,
    aor: Option<&str>,
) -> Result<Vec<StoredPublication>, StoreError> {
    let select = "SELECT aor, etag, expires_at, published_at, body, path FROM publications";
    let rows = rows_of(client, select, "aor", "aor, etag", aor)?;
    rows.iter()
        .map(|r| {
            Ok(StoredPublication {
                aor: r.get(0),
                etag: r.get(1),
                expires_at: to_u64(r.get(2), "expires_at")?,
                published_at: to_u64(r.get(3), "published_at")?,
                body: r.get(4),
                path: r.get(5),
            })
        })
        .collect()
}

/// The presence authorizations stored, of one local user or all.
pub(super) fn authorizations(
    client: &mut Client,
    user: Option<&str>,
) -> Result<Vec<StoredAuthorization>, StoreError> {
    let select = "SELECT local_user, remote_jid, approved, since FROM authorizations";
    let rows = rows_of(client, select, "local_user", "local_user, remote_jid", user)?;
    rows.iter()
        .map(|r| {
            Ok(StoredAuthorization {
                local_user: r.get(0),
                remote_jid: r.get(1),
                approved: r.get(2),
                since: to_u64(r.get(3), "since")?,
            })
        })
        .collect()
}

impl Store for PostgresStore {
    fn load_bindings(&mut self) -> Result<Vec<Binding>, StoreError> {
        bindings(self.client()?, None)
    }

    fn load_contacts(&mut self) -> Result<Vec<Contacted>, StoreError> {
        contacts(self.client()?, None)
    }

    fn load_publications(&mut self) -> Result<Vec<StoredPublication>, StoreError> {
        publications(self.client()?, None)
    }

    fn load_authorizations(&mut self) -> Result<Vec<StoredAuthorization>, StoreError> {
        authorizations(self.client()?, None)
    }

    fn load_dialogs(&mut self) -> Result<Vec<StoredDialog>, StoreError> {
        let rows = self
            .client()?
            .query(
                "SELECT call_id, local_tag, remote_tag, interval, local_user, remote_jid,
                    target, route, local_uri, remote_uri, event, local_cseq, remote_cseq,
                    active, expires_at, saved_at
                 FROM dialogs ORDER BY call_id, local_tag",
                &[],
            )
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let side = match r.get::<_, Option<i64>>(3) {
                    None => SavedSide::Notifier,
                    Some(v) => SavedSide::Subscriber {
                        interval: to_u32(v, "interval")?,
                    },
                };
                Ok(StoredDialog {
                    local_user: r.get(4),
                    remote_jid: r.get(5),
                    dialog: SavedDialog {
                        call_id: r.get(0),
                        local_tag: r.get(1),
                        remote_tag: r.get(2),
                        side,
                        target: r.get(6),
                        route: r.get(7),
                        local_uri: r.get(8),
                        remote_uri: r.get(9),
                        event: r.get(10),
                        local_cseq: to_u32(r.get(11), "local_cseq")?,
                        remote_cseq: to_u32(r.get(12), "remote_cseq")?,
                        active: r.get(13),
                        expires_at: to_u64(r.get(14), "expires_at")?,
                        saved_at: to_u64(r.get(15), "saved_at")?,
                    },
                })
            })
            .collect()
    }

    fn apply(&mut self, changes: &[Persist]) -> Result<(), StoreError> {
        check_times(changes)?;
        // Dropping the transaction without commit rolls everything back.
        let mut tx = self.client()?.transaction().map_err(backend)?;
        // The users whose shared rows changed: the other instances are
        // told at commit (NOTIFY is transactional), see `store_watch`.
        let mut changed = std::collections::BTreeSet::new();
        for change in changes {
            changed.extend(Shared::key(change));
            match change {
                Persist::InsertBinding(b) | Persist::UpdateBinding(b) => {
                    upsert_binding(&mut tx, b)?;
                }
                Persist::DeleteBinding { aor, key } => {
                    tx.execute(
                        "DELETE FROM bindings WHERE aor = $1 AND binding_key = $2",
                        &[aor, key],
                    )
                    .map_err(backend)?;
                }
                Persist::RememberContact {
                    local_user,
                    remote_jid,
                    at_unix,
                } => remember(&mut tx, local_user, remote_jid, *at_unix)?,
                Persist::ForgetContact {
                    local_user,
                    remote_jid,
                } => {
                    tx.execute(
                        "DELETE FROM contacts WHERE local_user = $1 AND remote_jid = $2",
                        &[local_user, remote_jid],
                    )
                    .map_err(backend)?;
                }
                Persist::PutPublication(p) => put_publication(&mut tx, p)?,
                Persist::DeletePublication { aor, etag } => {
                    tx.execute(
                        "DELETE FROM publications WHERE aor = $1 AND etag = $2",
                        &[aor, etag],
                    )
                    .map_err(backend)?;
                }
                Persist::PutAuthorization(a) => put_authorization(&mut tx, a)?,
                Persist::DeleteAuthorization {
                    local_user,
                    remote_jid,
                } => {
                    tx.execute(
                        "DELETE FROM authorizations WHERE local_user = $1 AND remote_jid = $2",
                        &[local_user, remote_jid],
                    )
                    .map_err(backend)?;
                }
                Persist::PutDialog(d) => put_dialog(&mut tx, d)?,
                Persist::DeleteDialog { call_id, local_tag } => {
                    tx.execute(
                        "DELETE FROM dialogs WHERE call_id = $1 AND local_tag = $2",
                        &[call_id, local_tag],
                    )
                    .map_err(backend)?;
                }
            }
        }
        for key in changed {
            tx.execute("SELECT pg_notify($1, $2)", &[&SHARED_CHANNEL, &key])
                .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }

    fn has_contacted(
        &mut self,
        local_user: &str,
        remote_jid: &str,
    ) -> Result<Option<Contacted>, StoreError> {
        let row = self
            .client()?
            .query_opt(
                "SELECT local_user, remote_jid, first_at, last_at FROM contacts
                 WHERE local_user = $1 AND remote_jid = $2",
                &[&local_user, &remote_jid],
            )
            .map_err(backend)?;
        row.as_ref().map(contacted).transpose()
    }
}
