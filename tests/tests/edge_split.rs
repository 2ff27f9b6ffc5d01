//! The edge/gateway split (issue 13 item 3), as separate processes on
//! loopback with Debian's Prosody as the partner, on both runtimes: an
//! edge (`role = "edge"`: s2s with prosody.test, `[listen] internal`) and
//! a gateway (`role = "gateway"`: the SIP registrar, `[internal] connect`
//! to the edge), joined by the internal link (XEP-0114 inside TLS, both
//! presenting certificates for xfed.test from the deployment's CA).
//!
//! - bob@prosody.test and alice@xfed.test (a SIP UA on the gateway) write
//!   to each other through Prosody, the edge and the gateway;
//! - the edge stops (the link cut): the gateway says so and alice's
//!   message gets an error; the edge back: the link comes back by itself
//!   and messages flow again;
//! - the gateway stops: bob's message comes back from the edge with
//!   `service-unavailable`.

use std::path::Path;
use std::time::{Duration, Instant};

use xfed_core::tls::testing::{LeafSpec, TestCa};
use xfed_tests::prosody::{prosody_for_xfed, write_dialback_certs, Prosody};
use xfed_tests::sip_ua::SipUa;
use xfed_tests::xmpp_client::{self, XmppClient};
use xfed_tests::{
    eventually, free_port, metric_value, require_peer, scrape_metrics, temp_dir, Instance,
};

const WAIT: Duration = Duration::from_secs(20);
const ALICE: &str = "alice@xfed.test";
const PROSODY_BOB: &str = "bob@prosody.test";
const SECRET: &str = "split-test-dialback-secret-0123";

/// The deployment's CA and its certificate for xfed.test in `dir`
/// (`cert.pem`, `key.pem`, `internal-ca.pem`).
fn deployment_certs(ca: &TestCa, dir: &Path) {
    let cert = ca.issue(&LeafSpec::xmpp_server("xfed.test"));
    std::fs::write(dir.join("cert.pem"), cert.chain_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pem()).unwrap();
    std::fs::write(dir.join("internal-ca.pem"), ca.cert_pem()).unwrap();
}

fn common(role: &str) -> String {
    format!(
        "[gateway]\ndomains = [\"xfed.test\"]\ndialback_secret = \"{SECRET}\"\nrole = \"{role}\"\n\
         stream_establishment_timeout = \"20s\"\n\n\
         [tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\ntrust = \"internal-ca.pem\"\n\n\
         [store]\nurl = \"sqlite://xfed.db\"\n\n"
    )
}

fn split(bin: &str, prosody_ip: u8) {
    require_peer!(xmpp_client::check_installed());
    let ca = TestCa::new("xfed deployment CA");
    let edge_dir = temp_dir(&format!("split-edge-{bin}"));
    let gw_dir = temp_dir(&format!("split-gateway-{bin}"));
    write_dialback_certs(&edge_dir, "xfed.test", "prosody.test");
    deployment_certs(&ca, &edge_dir);
    deployment_certs(&ca, &gw_dir);
    let (s2s, internal, sip, metrics) = (free_port(), free_port(), free_port(), free_port());
    let options = prosody_for_xfed(&edge_dir, prosody_ip, s2s);
    let partner = format!(
        "[[partner]]\ndomain = \"prosody.test\"\ntype = \"federated\"\nconnect = \"{}\"\n\
         tls = \"required\"\nsasl = \"optional\"\ndialback = true\n",
        options.s2s_addr()
    );
    let edge_toml = format!(
        "{}[listen]\ns2s = [\"127.0.0.1:{s2s}\"]\ns2s_direct_tls = []\ninternal = \"127.0.0.1:{internal}\"\n\
         metrics = \"127.0.0.1:{metrics}\"\n\n{partner}",
        common("edge")
    );
    std::fs::write(edge_dir.join("xfed.toml"), edge_toml).unwrap();
    let gw_toml = format!(
        "{}[listen]\nsip = [\"udp:127.0.0.1:{sip}\"]\nmetrics = false\n\n\
         [sip]\nmode = \"registrar\"\n\n[[sip.account]]\nuser = \"alice\"\npassword = \"alice-secret\"\n\n\
         [internal]\nconnect = [\"127.0.0.1:{internal}\"]\n\n{partner}",
        common("gateway")
    );
    std::fs::write(gw_dir.join("xfed.toml"), gw_toml).unwrap();

    let prosody = require_peer!(Prosody::start(options));
    let run = ["run", "--config", "xfed.toml"];
    let mut edge = Instance::start(bin, &run, &edge_dir);
    let mut gateway = Instance::start(bin, &run, &gw_dir);
    let up = gateway.wait_log("component link up", WAIT);
    assert!(up.contains("TLSv1_3"), "{up}");
    edge.wait_log("gateway link", WAIT);

    let sip_addr = ([127, 0, 0, 1], sip).into();
    let mut alice = SipUa::new("alice", "xfed.test", "alice-secret", sip_addr, false);
    assert_eq!(alice.register(600), 200, "{}", gateway.log_text());
    let mut bob = require_peer!(XmppClient::connect(
        PROSODY_BOB,
        "bob-secret",
        prosody.c2s_addr(),
        Duration::from_secs(120)
    ));

    // Through Prosody, the edge and the gateway, both ways.
    bob.send_chat(ALICE, "hello through the edge");
    let got = alice.receive(200, WAIT).unwrap_or_else(|| {
        panic!(
            "alice got nothing\nedge:\n{}\ngateway:\n{}\n{}",
            edge.log_text(),
            gateway.log_text(),
            bob.diagnostics()
        )
    });
    assert!(String::from_utf8_lossy(&got.body).contains("hello through the edge"));
    // The edge wrote bob's message on to the gateway as it came, unread.
    let edge_metrics = ([127, 0, 0, 1], metrics).into();
    eventually("the edge's count of stanzas relayed unread", WAIT, || {
        let scraped = scrape_metrics(edge_metrics);
        let relayed = "xfed_s2s_stanzas_relayed_unread_total{direction=\"in\"}";
        metric_value(&scraped, relayed).is_some_and(|n| n >= 1.0)
    });
    assert_eq!(alice.message(PROSODY_BOB, "hello from inside").status, 202);
    bob.expect_message("alice's answer", WAIT, |m| {
        m.body.as_deref() == Some("hello from inside")
    });
    // And the gateway's answer on to Prosody's stream, unread too.
    eventually(
        "the edge's count of the gateway's stanzas relayed unread",
        WAIT,
        || {
            let scraped = scrape_metrics(edge_metrics);
            let relayed = "xfed_s2s_stanzas_relayed_unread_total{direction=\"out\"}";
            metric_value(&scraped, relayed).is_some_and(|n| n >= 1.0)
        },
    );

    // The link cut: the edge stops; alice is answered with an error.
    assert!(edge.terminate());
    gateway.wait_log("component link down", WAIT);
    let refused = alice.message(PROSODY_BOB, "cut off").status;
    assert!(refused >= 400, "{refused}\n{}", gateway.log_text());
    // The edge back: the gateway attaches again by itself.
    let mut edge = Instance::start(bin, &run, &edge_dir);
    let end = Instant::now() + Duration::from_secs(40);
    while gateway.log_text().matches("component link up").count() < 2 {
        assert!(Instant::now() < end, "no new link\n{}", gateway.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        alice.message(PROSODY_BOB, "back through the edge").status,
        202
    );
    bob.expect_message("the message after the link came back", WAIT, |m| {
        m.body.as_deref() == Some("back through the edge")
    });

    // The gateway stops: the edge answers for it.
    assert!(gateway.terminate());
    edge.wait_log("lost", WAIT);
    let id = bob.send_chat(ALICE, "anyone?");
    let reply = bob.expect_reply("the edge's error", &id, WAIT);
    let error = reply.error.as_ref().and_then(|e| e.condition.clone());
    assert_eq!(
        error.as_deref(),
        Some("service-unavailable"),
        "{reply:?}\n{}",
        edge.log_text()
    );
    assert!(edge.terminate());
}

#[test]
fn edge_and_gateway_tokio() {
    split("xfed", 45);
}

#[test]
fn edge_and_gateway_async_std() {
    split("xfed-async-std", 46);
}
