//! One behaviour suite run against every store: `MemoryStore` (the
//! reference) and `SqliteStore` (in memory and on a file), plus what only
//! the SQLite file has (reopening, schema versions, WAL). Needs `host`,
//! which `cargo test --workspace` enables through the runtimes.
#![cfg(feature = "host")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use xfed_core::host::store_sqlite::{SqliteStore, MIGRATIONS};
use xfed_core::store::{
    Binding, MemoryStore, Persist, SavedSide, Store, StoreError, StoredPublication, Q,
};

/// A database file under the temp directory, removed (with its WAL and
/// shared-memory files) when dropped.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> TempDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xfed-store-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        TempDb(dir.join("xfed.db"))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

use xfed_core::store_suite::*;

#[test]
fn memory_store() {
    all(|| Box::new(MemoryStore::new()));
}

#[test]
fn sqlite_in_memory() {
    all(|| Box::new(SqliteStore::open_in_memory().unwrap()));
}

#[test]
fn sqlite_file() {
    let db = TempDb::new("suite");
    let mut store = SqliteStore::open_path(&db.0).unwrap();
    suite(&mut store);
    assert_eq!(store.journal_mode().unwrap(), "wal");
    let db = TempDb::new("publications");
    publication_suite(&mut SqliteStore::open_path(&db.0).unwrap());
}

#[test]
fn sqlite_migrates_a_version_1_file_keeping_its_rows() {
    let db = TempDb::new("v1");
    std::fs::create_dir_all(db.0.parent().unwrap()).unwrap();
    {
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute(
            "INSERT INTO contacts (local_user, remote_jid, first_at, last_at)
             VALUES ('a@x', 'r@j', 1, 2)",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let mut store = SqliteStore::open_path(&db.0).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    assert_eq!(store.load_contacts().unwrap().len(), 1);
    let p = publication("a@x", "t", 10);
    store.apply(&[Persist::PutPublication(p.clone())]).unwrap();
    drop(store);
    let mut store = SqliteStore::open_path(&db.0).unwrap();
    assert_eq!(store.load_publications().unwrap(), vec![p]);
}

#[test]
fn sqlite_reports_corrupt_publications() {
    let db = TempDb::new("corrupt-pub");
    SqliteStore::open_path(&db.0).unwrap();
    {
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        conn.execute(
            "INSERT INTO publications (aor, etag, expires_at, published_at, body)
             VALUES ('a@x', 't', 5, -1, x'00')",
            [],
        )
        .unwrap();
    }
    let err = SqliteStore::open_path(&db.0)
        .unwrap()
        .load_publications()
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
}

#[test]
fn sqlite_survives_reopening() {
    let db = TempDb::new("reopen");
    let b = Binding {
        q: Q::from_millis(500),
        instance: Some("<urn:uuid:1>".into()),
        reg_id: Some(1),
        ..binding("alice@example.com", "sip:alice@192.0.2.1", 1234)
    };
    {
        let mut store = SqliteStore::open_path(&db.0).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        store
            .apply(&[
                Persist::InsertBinding(b.clone()),
                Persist::RememberContact {
                    local_user: "alice@example.com".into(),
                    remote_jid: "romeo@jabber.org".into(),
                    at_unix: 42,
                },
            ])
            .unwrap();
    }
    let mut store = SqliteStore::open_path(&db.0).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    assert_eq!(store.load_bindings().unwrap(), vec![b]);
    assert_eq!(
        store
            .has_contacted("alice@example.com", "romeo@jabber.org")
            .unwrap()
            .map(|c| (c.first_at, c.last_at)),
        Some((42, 42))
    );
}

#[test]
fn two_connections_share_one_file() {
    let db = TempDb::new("two");
    let mut writer = SqliteStore::open_path(&db.0).unwrap();
    let mut reader = SqliteStore::open_path(&db.0).unwrap();
    let b = binding("alice@example.com", "sip:alice@192.0.2.1", 1);
    writer.apply(&[Persist::InsertBinding(b.clone())]).unwrap();
    assert_eq!(reader.load_bindings().unwrap(), vec![b]);
}

#[test]
fn sqlite_migrates_an_empty_file_and_refuses_a_newer_one() {
    let db = TempDb::new("versions");
    std::fs::create_dir_all(db.0.parent().unwrap()).unwrap();
    // A version-0 database that already exists (an empty file).
    std::fs::write(&db.0, b"").unwrap();
    let store = SqliteStore::open_path(&db.0).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    drop(store);
    {
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    match SqliteStore::open_path(&db.0) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(found, 99);
            assert_eq!(supported, MIGRATIONS.len() as i64);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn sqlite_reports_corrupt_rows() {
    let db = TempDb::new("corrupt");
    SqliteStore::open_path(&db.0).unwrap();
    {
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        conn.execute(
            "INSERT INTO bindings (aor, binding_key, contact, expires_at, q, call_id, cseq)
             VALUES ('a@x', 'uri:sip:a@h', 'sip:a@h', -1, NULL, 'c', 1)",
            [],
        )
        .unwrap();
    }
    let err = SqliteStore::open_path(&db.0)
        .unwrap()
        .load_bindings()
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
}

#[test]
fn sqlite_refuses_unopenable_paths() {
    // A directory is not a database.
    let db = TempDb::new("dir");
    std::fs::create_dir_all(&db.0).unwrap();
    assert!(matches!(
        SqliteStore::open_path(&db.0),
        Err(StoreError::Backend(_))
    ));
}

/// Any change, over a small space of keys so that sequences collide.
fn persist() -> impl Strategy<Value = Persist> {
    let aor = prop::sample::select(vec!["a@x", "b@x"]);
    let contact = prop::sample::select(vec!["sip:1@h", "sip:2@h", "SIP:1@H"]);
    let instance = prop::option::of(prop::sample::select(vec!["<urn:uuid:1>", "<urn:uuid:2>"]));
    let user = prop::sample::select(vec!["a@x", "b@x"]);
    let jid = prop::sample::select(vec!["r@j", "s@j"]);
    let etag = prop::sample::select(vec!["t1", "t2"]);
    let call = prop::sample::select(vec!["c1", "c2"]);
    let tag = prop::sample::select(vec!["t1", "t2"]);
    prop_oneof![
        (
            aor.clone(),
            contact.clone(),
            instance,
            0u64..100,
            0u32..5,
            any::<bool>()
        )
            .prop_map(|(aor, contact, instance, t, cseq, update)| {
                let b = Binding {
                    instance: instance.map(str::to_string),
                    cseq,
                    ..binding(aor, contact, t)
                };
                if update {
                    Persist::UpdateBinding(b)
                } else {
                    Persist::InsertBinding(b)
                }
            }),
        (aor.clone(), contact).prop_map(|(aor, contact)| Persist::DeleteBinding {
            aor: aor.into(),
            key: binding(aor, contact, 0).key(),
        }),
        (user.clone(), jid.clone(), 0u64..100).prop_map(|(u, j, t)| Persist::RememberContact {
            local_user: u.into(),
            remote_jid: j.into(),
            at_unix: t,
        }),
        (user, jid).prop_map(|(u, j)| Persist::ForgetContact {
            local_user: u.into(),
            remote_jid: j.into(),
        }),
        (
            aor.clone(),
            etag.clone(),
            0u64..100,
            prop::collection::vec(any::<u8>(), 0..4)
        )
            .prop_map(
                |(aor, etag, t, body)| Persist::PutPublication(StoredPublication {
                    body,
                    ..publication(aor, etag, t)
                })
            ),
        (aor, etag).prop_map(|(aor, etag)| Persist::DeletePublication {
            aor: aor.into(),
            etag: etag.into(),
        }),
        (call.clone(), tag.clone(), 0u64..100, any::<bool>()).prop_map(|(c, t, at, sub)| {
            let side = if sub {
                SavedSide::Subscriber { interval: 60 }
            } else {
                SavedSide::Notifier
            };
            Persist::PutDialog(dialog(c, t, side, at))
        }),
        (call, tag).prop_map(|(c, t)| Persist::DeleteDialog {
            call_id: c.into(),
            local_tag: t.into(),
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// SQLite ends in the state the memory store does, for any batches.
    #[test]
    fn sqlite_matches_memory(batches in prop::collection::vec(prop::collection::vec(persist(), 0..6), 0..8)) {
        let mut mem = MemoryStore::new();
        let mut sql = SqliteStore::open_in_memory().unwrap();
        for batch in &batches {
            mem.apply(batch).unwrap();
            sql.apply(batch).unwrap();
        }
        prop_assert_eq!(sorted(mem.load_bindings().unwrap()), sorted(sql.load_bindings().unwrap()));
        prop_assert_eq!(
            sorted_contacts(mem.load_contacts().unwrap()),
            sorted_contacts(sql.load_contacts().unwrap())
        );
        prop_assert_eq!(
            sorted_publications(mem.load_publications().unwrap()),
            sorted_publications(sql.load_publications().unwrap())
        );
        prop_assert_eq!(
            sorted_dialogs(mem.load_dialogs().unwrap()),
            sorted_dialogs(sql.load_dialogs().unwrap())
        );
    }
}
