//! The PostgreSQL store (issue 13 item 1), through the real binaries on
//! both runtimes, against a throwaway cluster of Debian's PostgreSQL:
//! b.test keeps its state in PostgreSQL (`[store] url = "postgres://..."`),
//! a.test in SQLite.
//!
//! - xfed creates the schema (version 4, as SQLite's) and writes bob's
//!   registration; a restarted b.test finds it and delivers to bob
//!   without a new REGISTER;
//! - the store behaviour suite (`xfed_core::store_suite`, which
//!   MemoryStore and SQLite pass) on PostgreSQL, and a database of a
//!   newer xfed refused;
//! - the database stops (as a crash) while traffic goes on: b.test keeps
//!   serving (a second device of bob registers, bob writes to alice),
//!   says the store is lost, and once PostgreSQL is back writes what
//!   waited: both registrations and the remembered contact are in the
//!   database, and a restarted b.test has them.

use std::time::Duration;

use xfed_core::host::store_postgres::{PostgresStore, MIGRATIONS};
use xfed_core::store::StoreError;
use xfed_core::store_suite;
use xfed_tests::eventually;
use xfed_tests::postgres::Postgres;
use xfed_tests::sip_pair::{deployments, say, start, ua, Side};

const WAIT: Duration = Duration::from_secs(20);

fn on_postgres(side: &Side, url: &str) {
    let path = side.dir.join("xfed.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    let pg = toml.replace("url = \"sqlite://xfed.db\"", &format!("url = \"{url}\""));
    assert_ne!(pg, toml);
    std::fs::write(path, pg).unwrap();
}

fn postgres_store(bin: &str) {
    let Some(pg) = Postgres::start(&format!("store-{bin}")) else {
        return;
    };
    pg.create_db("xfed");
    let (a, b) = deployments(&format!("pg-{bin}"));
    on_postgres(&b, &pg.url("xfed"));
    let mut xa = start(bin, &a);
    let mut xb = start(bin, &b);
    assert_eq!(
        pg.query("xfed", "SELECT version FROM xfed_schema").trim(),
        "6"
    );

    let mut alice = ua("alice", &a, false);
    let mut bob = ua("bob", &b, false);
    assert_eq!(alice.register(600), 200, "{}", xa.log_text());
    assert_eq!(bob.register(600), 200, "{}", xb.log_text());
    say(&mut alice, "bob@b.test", &mut bob, "before the restart");
    let bindings = || {
        pg.query(
            "xfed",
            "SELECT count(*) FROM bindings WHERE aor = 'bob@b.test'",
        )
    };
    eventually("bob's binding in PostgreSQL", WAIT, || {
        bindings().trim() == "1"
    });

    // A restart finds bob's registration in the database.
    assert!(xb.terminate());
    xb = start(bin, &b);
    say(&mut alice, "bob@b.test", &mut bob, "after the restart");

    // The database goes away under traffic; b.test goes on serving.
    pg.stop_server();
    let mut bob2 = ua("bob", &b, false);
    assert_eq!(bob2.register(600), 200, "{}", xb.log_text());
    for i in 0..10 {
        say(
            &mut bob,
            "alice@a.test",
            &mut alice,
            &format!("during the outage {i}"),
        );
    }
    xb.wait_log("store write failed", WAIT);

    // Back: what waited is written.
    pg.start_server();
    xb.wait_log("store reachable again", WAIT);
    eventually("both of bob's bindings in PostgreSQL", WAIT, || {
        bindings().trim() == "2"
    });
    let contact = pg.query(
        "xfed",
        "SELECT remote_jid FROM contacts WHERE local_user = 'bob@b.test'",
    );
    assert_eq!(contact.trim(), "alice@a.test");

    // And a restart has it all.
    assert!(xb.terminate());
    xb = start(bin, &b);
    let restored = xb.wait_log("restored", WAIT);
    assert!(restored.contains('2'), "{restored}");
    say(&mut alice, "bob@b.test", &mut bob, "after the outage");
    assert!(xa.terminate());
    assert!(xb.terminate());
}

#[test]
fn postgres_store_tokio() {
    postgres_store("xfed");
}

#[test]
fn postgres_store_async_std() {
    postgres_store("xfed-async-std");
}

#[test]
fn postgres_passes_the_store_suite() {
    let Some(pg) = Postgres::start("suite") else {
        return;
    };
    let mut n = 0;
    store_suite::all(|| {
        n += 1;
        let db = format!("suite{n}");
        pg.create_db(&db);
        Box::new(PostgresStore::open(&pg.url(&db)).expect("open"))
    });
    // Opening again finds the schema made; a newer one is refused.
    let mut again = PostgresStore::open(&pg.url("suite1")).expect("reopen");
    assert_eq!(again.schema_version().unwrap(), MIGRATIONS.len() as i64);
    pg.query("suite1", "UPDATE xfed_schema SET version = 99");
    assert!(matches!(
        PostgresStore::open(&pg.url("suite1")),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}
