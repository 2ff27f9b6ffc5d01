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
    Binding, Contacted, MemoryStore, Persist, SavedDialog, SavedSide, Store, StoreError,
    StoredAuthorization, StoredDialog, StoredPublication, MAX_TIME, Q,
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

fn binding(aor: &str, contact: &str, expires_at: u64) -> Binding {
    Binding {
        aor: aor.into(),
        contact: contact.into(),
        expires_at,
        q: None,
        call_id: "call-1".into(),
        cseq: 1,
        instance: None,
        reg_id: None,
    }
}

fn sorted(mut v: Vec<Binding>) -> Vec<Binding> {
    v.sort_by_key(|b| (b.aor.clone(), b.key()));
    v
}

fn publication(aor: &str, etag: &str, expires_at: u64) -> StoredPublication {
    StoredPublication {
        aor: aor.into(),
        etag: etag.into(),
        expires_at,
        published_at: 1,
        body: b"<?xml version='1.0'?><presence/>".to_vec(),
    }
}

fn sorted_publications(mut v: Vec<StoredPublication>) -> Vec<StoredPublication> {
    v.sort_by(|a, b| (&a.aor, &a.etag).cmp(&(&b.aor, &b.etag)));
    v
}

/// Presence publications: put replaces by (aor, etag), deletes of missing
/// ones do nothing, bodies are bytes, times up to MAX_TIME, all or nothing.
fn publication_suite(store: &mut dyn Store) {
    assert!(store.load_publications().unwrap().is_empty());
    let full = StoredPublication {
        aor: "ålice@example.com".into(),
        etag: "0123456789abcdef0123456789abcdef".into(),
        expires_at: MAX_TIME,
        published_at: MAX_TIME,
        body: vec![0, 0xFF, b'<', 0xC3],
    };
    let a1 = publication("alice@example.com", "t1", 100);
    let a2 = publication("alice@example.com", "t2", 200);
    let b1 = publication("bob@example.com", "t1", 300);
    store
        .apply(&[
            Persist::PutPublication(full.clone()),
            Persist::PutPublication(a1.clone()),
            Persist::PutPublication(a2.clone()),
            Persist::PutPublication(b1.clone()),
        ])
        .unwrap();
    assert_eq!(
        sorted_publications(store.load_publications().unwrap()),
        sorted_publications(vec![full.clone(), a1.clone(), a2.clone(), b1.clone()])
    );
    // A refresh as the registrar writes it: the old tag out, the new in;
    // a put of an existing key replaces it.
    let a3 = StoredPublication {
        etag: "t3".into(),
        expires_at: 900,
        ..a1.clone()
    };
    let b1b = StoredPublication {
        body: b"other".to_vec(),
        ..b1.clone()
    };
    store
        .apply(&[
            Persist::DeletePublication {
                aor: a1.aor.clone(),
                etag: a1.etag.clone(),
            },
            Persist::PutPublication(a3.clone()),
            Persist::PutPublication(b1b.clone()),
            Persist::DeletePublication {
                aor: "nobody@example.com".into(),
                etag: "t1".into(),
            },
        ])
        .unwrap();
    assert_eq!(
        sorted_publications(store.load_publications().unwrap()),
        sorted_publications(vec![full.clone(), a2.clone(), a3.clone(), b1b.clone()])
    );
    // All or nothing.
    let before = sorted_publications(store.load_publications().unwrap());
    let err = store
        .apply(&[
            Persist::DeletePublication {
                aor: a2.aor.clone(),
                etag: a2.etag.clone(),
            },
            Persist::PutPublication(StoredPublication {
                published_at: MAX_TIME + 1,
                ..a2.clone()
            }),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(
        sorted_publications(store.load_publications().unwrap()),
        before
    );
    // Bindings and contacts are untouched by publications.
    assert!(store.load_bindings().unwrap().is_empty());
}

fn sorted_contacts(mut v: Vec<Contacted>) -> Vec<Contacted> {
    v.sort_by(|a, b| (&a.local_user, &a.remote_jid).cmp(&(&b.local_user, &b.remote_jid)));
    v
}

/// The suite: every back end must pass it unchanged.
fn suite(store: &mut dyn Store) {
    assert!(store.load_bindings().unwrap().is_empty());
    assert!(store.load_contacts().unwrap().is_empty());

    // Every field, including the extremes and non-ASCII text.
    let full = Binding {
        aor: "ålice@example.com".into(),
        contact: "sip:ålice@[2001:db8::1]:5061;transport=tls;ob".into(),
        expires_at: MAX_TIME,
        q: Q::from_millis(125),
        call_id: "a\"b'c\\d".into(),
        cseq: u32::MAX,
        instance: Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".into()),
        reg_id: Some(u32::MAX),
    };
    let a1 = binding("alice@example.com", "sip:alice@192.0.2.1", 1000);
    let a2 = Binding {
        q: Q::from_millis(1000),
        ..binding("alice@example.com", "sip:alice@192.0.2.2", 2000)
    };
    let b1 = binding("bob@example.com", "sip:bob@192.0.2.3", 3000);
    store
        .apply(&[
            Persist::InsertBinding(full.clone()),
            Persist::InsertBinding(a1.clone()),
            Persist::InsertBinding(a2.clone()),
            Persist::InsertBinding(b1.clone()),
        ])
        .unwrap();
    assert_eq!(
        sorted(store.load_bindings().unwrap()),
        sorted(vec![full.clone(), a1.clone(), a2.clone(), b1.clone()])
    );

    // Update replaces by (aor, key); an instance-keyed binding may change URI.
    let a1b = Binding {
        expires_at: 5000,
        cseq: 2,
        ..a1.clone()
    };
    let full2 = Binding {
        contact: "sip:alice@198.51.100.7".into(),
        ..full.clone()
    };
    store
        .apply(&[
            Persist::UpdateBinding(a1b.clone()),
            Persist::UpdateBinding(full2.clone()),
        ])
        .unwrap();
    assert_eq!(
        sorted(store.load_bindings().unwrap()),
        sorted(vec![full2.clone(), a1b.clone(), a2.clone(), b1.clone()])
    );

    // Deletes; a missing one is a no-op; an update of a missing record
    // creates it; an insert of an existing one replaces it.
    store
        .apply(&[
            Persist::DeleteBinding {
                aor: a2.aor.clone(),
                key: a2.key(),
            },
            Persist::DeleteBinding {
                aor: "nobody@example.com".into(),
                key: "uri:sip:x".into(),
            },
            Persist::DeleteBinding {
                aor: b1.aor.clone(),
                key: b1.key(),
            },
            Persist::UpdateBinding(b1.clone()),
            Persist::InsertBinding(Binding {
                cseq: 9,
                ..b1.clone()
            }),
        ])
        .unwrap();
    assert_eq!(
        sorted(store.load_bindings().unwrap()),
        sorted(vec![
            full2.clone(),
            a1b.clone(),
            Binding {
                cseq: 9,
                ..b1.clone()
            }
        ])
    );

    // All or nothing: a batch with one unstorable value changes nothing.
    let before = sorted(store.load_bindings().unwrap());
    let err = store
        .apply(&[
            Persist::DeleteBinding {
                aor: a1b.aor.clone(),
                key: a1b.key(),
            },
            Persist::InsertBinding(binding("carol@example.com", "sip:c@h", 1)),
            Persist::InsertBinding(binding("dave@example.com", "sip:d@h", MAX_TIME + 1)),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(sorted(store.load_bindings().unwrap()), before);
    assert!(store
        .apply(&[Persist::RememberContact {
            local_user: "a@x".into(),
            remote_jid: "b@y".into(),
            at_unix: u64::MAX,
        }])
        .is_err());

    // Remembered contacts: first and last time, whatever the order (the
    // earliest arrives in the middle, the latest last).
    assert_eq!(
        store
            .has_contacted("alice@example.com", "romeo@jabber.org")
            .unwrap(),
        None
    );
    store
        .remember_contact("alice@example.com", "romeo@jabber.org", 500)
        .unwrap();
    store
        .apply(&[
            Persist::RememberContact {
                local_user: "alice@example.com".into(),
                remote_jid: "romeo@jabber.org".into(),
                at_unix: 100,
            },
            Persist::RememberContact {
                local_user: "alice@example.com".into(),
                remote_jid: "romeo@jabber.org".into(),
                at_unix: 900,
            },
            Persist::RememberContact {
                local_user: "bob@example.com".into(),
                remote_jid: "romeo@jabber.org".into(),
                at_unix: 7,
            },
        ])
        .unwrap();
    let romeo = Contacted {
        local_user: "alice@example.com".into(),
        remote_jid: "romeo@jabber.org".into(),
        first_at: 100,
        last_at: 900,
    };
    assert_eq!(
        store
            .has_contacted("alice@example.com", "romeo@jabber.org")
            .unwrap(),
        Some(romeo.clone())
    );
    // Keys are exact: the caller prepares JIDs.
    assert_eq!(
        store
            .has_contacted("alice@example.com", "juliet@jabber.org")
            .unwrap(),
        None
    );
    assert_eq!(
        sorted_contacts(store.load_contacts().unwrap()),
        vec![
            romeo.clone(),
            Contacted {
                local_user: "bob@example.com".into(),
                remote_jid: "romeo@jabber.org".into(),
                first_at: 7,
                last_at: 7,
            }
        ]
    );
    store
        .apply(&[
            Persist::ForgetContact {
                local_user: "bob@example.com".into(),
                remote_jid: "romeo@jabber.org".into(),
            },
            Persist::ForgetContact {
                local_user: "nobody@example.com".into(),
                remote_jid: "romeo@jabber.org".into(),
            },
        ])
        .unwrap();
    assert_eq!(store.load_contacts().unwrap(), vec![romeo]);
    assert_eq!(
        store
            .has_contacted("bob@example.com", "romeo@jabber.org")
            .unwrap(),
        None
    );
    // An empty batch is fine.
    store.apply(&[]).unwrap();
}

/// Presence authorizations: put replaces by (local user, remote JID), so
/// pending becomes approved in place; deletes of missing ones do nothing;
/// a time beyond MAX_TIME refuses the whole batch.
fn authorization_suite(store: &mut dyn Store) {
    assert!(store.load_authorizations().unwrap().is_empty());
    let auth = |local: &str, remote: &str, approved, since| StoredAuthorization {
        local_user: local.into(),
        remote_jid: remote.into(),
        approved,
        since,
    };
    let pending = auth("alice@x.test", "bob@r.test", false, 10);
    let other = auth("alice@x.test", "eve@r.test", true, MAX_TIME);
    store
        .apply(&[
            Persist::PutAuthorization(pending.clone()),
            Persist::PutAuthorization(other.clone()),
        ])
        .unwrap();
    let approved = auth("alice@x.test", "bob@r.test", true, 20);
    store
        .apply(&[
            Persist::PutAuthorization(approved.clone()),
            Persist::DeleteAuthorization {
                local_user: "alice@x.test".into(),
                remote_jid: "nobody@r.test".into(),
            },
        ])
        .unwrap();
    let mut got = store.load_authorizations().unwrap();
    got.sort_by(|a, b| a.remote_jid.cmp(&b.remote_jid));
    assert_eq!(got, vec![approved.clone(), other.clone()]);
    let bad = store.apply(&[
        Persist::DeleteAuthorization {
            local_user: "alice@x.test".into(),
            remote_jid: "bob@r.test".into(),
        },
        Persist::PutAuthorization(auth("a@x", "b@y", true, MAX_TIME + 1)),
    ]);
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    assert_eq!(
        store.load_authorizations().unwrap().len(),
        2,
        "all or nothing"
    );
    store
        .apply(&[Persist::DeleteAuthorization {
            local_user: "alice@x.test".into(),
            remote_jid: "bob@r.test".into(),
        }])
        .unwrap();
    assert_eq!(store.load_authorizations().unwrap(), vec![other]);
}

fn dialog(call_id: &str, local_tag: &str, side: SavedSide, expires_at: u64) -> StoredDialog {
    StoredDialog {
        local_user: "alice@x.test".into(),
        remote_jid: "bob@r.test".into(),
        dialog: SavedDialog {
            call_id: call_id.into(),
            local_tag: local_tag.into(),
            remote_tag: "their-tag".into(),
            side,
            target: "sip:alice@192.0.2.1:5060".into(),
            route: "<sip:p1.x.test;lr>, <sip:p2.x.test;lr>".into(),
            local_uri: "sip:bob@r.test".into(),
            remote_uri: "sip:alice@x.test".into(),
            event: "presence".into(),
            local_cseq: 7,
            remote_cseq: (1 << 31) - 1,
            active: true,
            expires_at,
            saved_at: 5,
        },
    }
}

fn sorted_dialogs(mut v: Vec<StoredDialog>) -> Vec<StoredDialog> {
    v.sort_by(|a, b| {
        (&a.dialog.call_id, &a.dialog.local_tag).cmp(&(&b.dialog.call_id, &b.dialog.local_tag))
    });
    v
}

/// Subscription dialogs: put replaces by (Call-ID, local tag), both sides
/// and every field come back as written, deletes of missing ones do
/// nothing, a time beyond MAX_TIME refuses the whole batch.
fn dialog_suite(store: &mut dyn Store) {
    assert!(store.load_dialogs().unwrap().is_empty());
    let notifier = dialog("c1", "t1", SavedSide::Notifier, 100);
    let subscriber = dialog(
        "c1",
        "t2",
        SavedSide::Subscriber { interval: 3600 },
        MAX_TIME,
    );
    store
        .apply(&[
            Persist::PutDialog(notifier.clone()),
            Persist::PutDialog(subscriber.clone()),
        ])
        .unwrap();
    let mut refreshed = notifier.clone();
    refreshed.dialog.expires_at = 200;
    refreshed.dialog.remote_cseq = 9;
    refreshed.dialog.active = false;
    store
        .apply(&[
            Persist::PutDialog(refreshed.clone()),
            Persist::DeleteDialog {
                call_id: "nothing".into(),
                local_tag: "t1".into(),
            },
        ])
        .unwrap();
    assert_eq!(
        sorted_dialogs(store.load_dialogs().unwrap()),
        vec![refreshed, subscriber.clone()]
    );
    let bad = store.apply(&[
        Persist::DeleteDialog {
            call_id: "c1".into(),
            local_tag: "t1".into(),
        },
        Persist::PutDialog(dialog("c2", "t", SavedSide::Notifier, MAX_TIME + 1)),
    ]);
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    assert_eq!(store.load_dialogs().unwrap().len(), 2, "all or nothing");
    store
        .apply(&[Persist::DeleteDialog {
            call_id: "c1".into(),
            local_tag: "t1".into(),
        }])
        .unwrap();
    assert_eq!(store.load_dialogs().unwrap(), vec![subscriber]);
}

#[test]
fn memory_store() {
    suite(&mut MemoryStore::new());
    publication_suite(&mut MemoryStore::new());
    authorization_suite(&mut MemoryStore::new());
    dialog_suite(&mut MemoryStore::new());
}

#[test]
fn sqlite_in_memory() {
    suite(&mut SqliteStore::open_in_memory().unwrap());
    publication_suite(&mut SqliteStore::open_in_memory().unwrap());
    authorization_suite(&mut SqliteStore::open_in_memory().unwrap());
    dialog_suite(&mut SqliteStore::open_in_memory().unwrap());
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
