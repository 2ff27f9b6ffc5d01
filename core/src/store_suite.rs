//! One behaviour suite for every store back end (`MemoryStore`, the
//! reference, SQLite and PostgreSQL): each function takes an empty store
//! and checks what it keeps and returns, so that every back end is held
//! to the same answers. Test support (feature `test-ca`), shared by
//! `core/tests/store.rs` and the PostgreSQL test of the tests crate.

#![allow(clippy::missing_panics_doc)]

use crate::store::{
    Binding, Contacted, Persist, SavedDialog, SavedSide, Store, StoreError, StoredAuthorization,
    StoredDialog, StoredPublication, MAX_TIME, Q,
};

/// Runs every suite, each on a fresh store from `fresh`.
pub fn all(mut fresh: impl FnMut() -> Box<dyn Store>) {
    suite(fresh().as_mut());
    publication_suite(fresh().as_mut());
    authorization_suite(fresh().as_mut());
    dialog_suite(fresh().as_mut());
}

/// A binding of `aor` to `contact` without q, instance or reg-id.
pub fn binding(aor: &str, contact: &str, expires_at: u64) -> Binding {
    Binding {
        aor: aor.into(),
        contact: contact.into(),
        expires_at,
        q: None,
        call_id: "call-1".into(),
        cseq: 1,
        instance: None,
        reg_id: None,
        path: None,
    }
}

/// Bindings in the order every back end is compared in.
pub fn sorted(mut v: Vec<Binding>) -> Vec<Binding> {
    v.sort_by_key(|b| (b.aor.clone(), b.key()));
    v
}

/// A publication of `aor` under `etag` with a small PIDF body.
pub fn publication(aor: &str, etag: &str, expires_at: u64) -> StoredPublication {
    StoredPublication {
        aor: aor.into(),
        etag: etag.into(),
        expires_at,
        published_at: 1,
        body: b"<?xml version='1.0'?><presence/>".to_vec(),
        path: None,
    }
}

/// Publications in the order every back end is compared in.
pub fn sorted_publications(mut v: Vec<StoredPublication>) -> Vec<StoredPublication> {
    v.sort_by(|a, b| (&a.aor, &a.etag).cmp(&(&b.aor, &b.etag)));
    v
}

/// Presence publications: put replaces by (aor, etag), deletes of missing
/// ones do nothing, bodies are bytes, times up to MAX_TIME, all or nothing.
pub fn publication_suite(store: &mut dyn Store) {
    assert!(store.load_publications().unwrap().is_empty());
    let full = StoredPublication {
        aor: "ålice@example.com".into(),
        etag: "0123456789abcdef0123456789abcdef".into(),
        expires_at: MAX_TIME,
        published_at: MAX_TIME,
        body: vec![0, 0xFF, b'<', 0xC3],
        path: Some("sip:10.0.0.2:5060;transport=tcp".into()),
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

/// Contacts in the order every back end is compared in.
pub fn sorted_contacts(mut v: Vec<Contacted>) -> Vec<Contacted> {
    v.sort_by(|a, b| (&a.local_user, &a.remote_jid).cmp(&(&b.local_user, &b.remote_jid)));
    v
}

/// The suite: every back end must pass it unchanged.
pub fn suite(store: &mut dyn Store) {
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
        path: Some("sip:[2001:db8::2]:5060;transport=tcp;lr".into()),
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
pub fn authorization_suite(store: &mut dyn Store) {
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

/// A dialog of `side` with every field set.
pub fn dialog(call_id: &str, local_tag: &str, side: SavedSide, expires_at: u64) -> StoredDialog {
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

/// Dialogs in the order every back end is compared in.
pub fn sorted_dialogs(mut v: Vec<StoredDialog>) -> Vec<StoredDialog> {
    v.sort_by(|a, b| {
        (&a.dialog.call_id, &a.dialog.local_tag).cmp(&(&b.dialog.call_id, &b.dialog.local_tag))
    });
    v
}

/// Subscription dialogs: put replaces by (Call-ID, local tag), both sides
/// and every field come back as written, deletes of missing ones do
/// nothing, a time beyond MAX_TIME refuses the whole batch.
pub fn dialog_suite(store: &mut dyn Store) {
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
