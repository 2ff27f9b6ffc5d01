//! Two instances of one deployment (issue 13 item 2, its dialback part):
//! xfed.test served by two processes sharing the dialback secret and one
//! PostgreSQL store, Debian's Prosody as the partner, whose DNS sends
//! xfed.test to the second instance only. alice registers with the first
//! and writes to bob@prosody.test: the first opens the stream and sends
//! its dialback key, Prosody verifies it with the authoritative server it
//! finds (the second instance), which answers for a key it did not make;
//! bob gets the message. Both instances' writes land in the one store.
//! Both runtimes.

use std::time::Duration;

use xfed_tests::postgres::Postgres;
use xfed_tests::prosody::{prosody_for_xfed, write_dialback_certs, Prosody};
use xfed_tests::sip_ua::SipUa;
use xfed_tests::sipp::{write_xfed_config_with, Credentials, XfedSip};
use xfed_tests::xmpp_client::{self, XmppClient};
use xfed_tests::{eventually, free_port, require_peer, temp_dir, Instance};

const WAIT: Duration = Duration::from_secs(20);

fn two_instances(bin: &str, prosody_ip: u8) {
    require_peer!(xmpp_client::check_installed());
    let Some(pg) = Postgres::start(&format!("instances-{bin}")) else {
        return;
    };
    pg.create_db("xfed");
    let dirs = [
        temp_dir(&format!("instance-1-{bin}")),
        temp_dir(&format!("instance-2-{bin}")),
    ];
    write_dialback_certs(&dirs[0], "xfed.test", "prosody.test");
    for name in [
        "cert.pem",
        "key.pem",
        "ca.pem",
        "prosody.crt",
        "prosody.key",
    ] {
        std::fs::copy(dirs[0].join(name), dirs[1].join(name)).unwrap();
    }
    let s2s = [free_port(), free_port()];
    let sip_ports = [free_port(), free_port()];
    // Prosody finds xfed.test at the second instance only.
    let options = prosody_for_xfed(&dirs[0], prosody_ip, s2s[1]);
    for i in 0..2 {
        let sip = XfedSip {
            domain: "xfed.test".into(),
            s2s_port: s2s[i],
            sip_port: sip_ports[i],
            accounts: vec![("alice".into(), "alice-secret".into())],
            trusted: Vec::new(),
            trust_udp: false,
            partners: vec![("prosody.test".into(), options.s2s_addr())],
            partner_sasl: "not-supported",
        };
        let path = write_xfed_config_with(
            &dirs[i],
            &sip,
            &Credentials::Password {
                digest_algorithms: None,
            },
        );
        // One store for both; the same dialback secret already.
        let toml = std::fs::read_to_string(&path).unwrap();
        let db = format!("sqlite://{}", dirs[i].join("xfed.db").display());
        let shared = toml.replace(&db, &pg.url("xfed"));
        assert_ne!(shared, toml);
        std::fs::write(&path, shared).unwrap();
    }
    let prosody = require_peer!(Prosody::start(options));
    let run = ["run", "--config", "xfed.toml"];
    let mut first = Instance::start(bin, &run, &dirs[0]);
    let mut second = Instance::start(bin, &run, &dirs[1]);
    let mut bob = require_peer!(XmppClient::connect(
        "bob@prosody.test",
        "bob-secret",
        prosody.c2s_addr(),
        Duration::from_secs(60)
    ));

    let sip = ([127, 0, 0, 1], sip_ports[0]).into();
    let mut alice = SipUa::new("alice", "xfed.test", "alice-secret", sip, false);
    assert_eq!(alice.register(600), 200, "{}", first.log_text());
    let status = alice
        .message("bob@prosody.test", "from the first instance")
        .status;
    assert_eq!(status, 202, "{}\n{}", first.log_text(), second.log_text());
    bob.expect_message("alice's message", WAIT, |m| {
        m.body.as_deref() == Some("from the first instance")
    });
    // The second instance verified the first's key: Prosody asked it.
    second.wait_log(
        "dialback key for xfed.test -> prosody.test checked as authoritative server: valid",
        WAIT,
    );
    // The one store has what the first instance wrote.
    eventually("alice's binding in the shared store", WAIT, || {
        pg.query("xfed", "SELECT aor FROM bindings")
            .contains("alice@xfed.test")
    });
    assert!(first.terminate());
    assert!(second.terminate());
}

#[test]
fn two_instances_tokio() {
    two_instances("xfed", 47);
}

#[test]
fn two_instances_async_std() {
    two_instances("xfed-async-std", 48);
}
