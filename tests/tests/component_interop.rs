//! xfed as a component of an XMPP server an organisation already runs
//! (issue 13 item 4): Debian's Prosody (`Component "sip.xmpp.test"`) and
//! Debian's ejabberd (`ejabberd_service`) each serve xmpp.test; xfed
//! (`role = "gateway"`, `[component]`) attaches to it and serves SIP
//! users at sip.xmpp.test. Both servers, both runtimes:
//!
//! - bob@xmpp.test writes to alice@sip.xmpp.test (a SIP UA) and
//!   she answers, through Prosody's component port only (xfed has no s2s
//!   listener);
//! - bob subscribes to alice, who publishes: he sees her available with
//!   her note;
//! - the server stops: xfed says the link is down and alice's next
//!   message gets an error; the server back: the link comes back by
//!   itself and messages flow again.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use xfed_core::tls::testing::{LeafSpec, TestCert};
use xfed_tests::ejabberd::{Ejabberd, EjabberdOptions};
use xfed_tests::prosody::{Prosody, ProsodyOptions, Skip};
use xfed_tests::sip_ua::SipUa;
use xfed_tests::xmpp_client::{self, XmppClient};
use xfed_tests::{free_port, require_peer, temp_dir, Instance};

const WAIT: Duration = Duration::from_secs(20);
const DOMAIN: &str = "sip.xmpp.test";
const ALICE: &str = "alice@sip.xmpp.test";
const BOB: &str = "bob@xmpp.test";
const SECRET: &str = "component-secret";

const OPEN: &str = "<?xml version='1.0' encoding='UTF-8'?>\
<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:alice@sip.xmpp.test'>\
<tuple id='phone'><status><basic>open</basic></status>\
<note xml:lang='en'>At the desk</note></tuple></presence>";

/// xfed's configuration: a gateway attached to `server` as `DOMAIN`.
fn write_config(dir: &Path, server: SocketAddr, sip: SocketAddr) {
    let cert = TestCert::self_signed(&LeafSpec::xmpp_server(DOMAIN));
    std::fs::write(dir.join("cert.pem"), cert.chain_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pem()).unwrap();
    let toml = format!(
        "[gateway]\ndomains = [\"{DOMAIN}\"]\nrole = \"gateway\"\n\n\
         [listen]\nsip = [\"udp:{sip}\"]\nmetrics = false\n\n\
         [tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\n\n\
         [sip]\nmode = \"registrar\"\n\n\
         [[sip.account]]\nuser = \"alice\"\npassword = \"alice-secret\"\n\n\
         [store]\nurl = \"sqlite://xfed.db\"\n\n\
         [component]\nserver = \"{server}\"\ndomain = \"{DOMAIN}\"\nsecret = \"{SECRET}\"\n\n\
         [[partner]]\ndomain = \"xmpp.test\"\ntype = \"federated\"\n"
    );
    std::fs::write(dir.join("xfed.toml"), toml).unwrap();
}

/// The XMPP server xfed attaches to, as the test started it.
enum Server {
    Prosody(Box<Prosody>, ProsodyOptions),
    Ejabberd(Option<Box<Ejabberd>>, EjabberdOptions),
}

impl Server {
    /// The server `kind` for xmpp.test on 127.0.0.`ip`, with bob and the
    /// component, not started yet.
    fn start(kind: &str, ip: u8, dir: &Path) -> Result<Server, Skip> {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, ip));
        match kind {
            "prosody" => {
                let o = ProsodyOptions::new("xmpp.test", ip)
                    .user("bob", "bob-secret")
                    .component(DOMAIN, SECRET);
                Ok(Server::Prosody(Box::new(Prosody::start(o.clone())?), o))
            }
            _ => {
                let cert = TestCert::self_signed(&LeafSpec::xmpp_server("xmpp.test"));
                std::fs::write(dir.join("xmpp.crt"), cert.chain_pem()).unwrap();
                std::fs::write(dir.join("xmpp.key"), cert.key_pem()).unwrap();
                let o = EjabberdOptions::new("xmpp.test", ip)
                    .tls(dir.join("xmpp.crt"), dir.join("xmpp.key"))
                    .user("bob", "bob-secret")
                    .component(DOMAIN, SECRET);
                Ok(Server::Ejabberd(
                    Some(Box::new(Ejabberd::start(o.clone())?)),
                    o,
                ))
            }
        }
    }

    fn component_addr(&self) -> SocketAddr {
        match self {
            Server::Prosody(_, o) => o.component_addr(),
            Server::Ejabberd(_, o) => o.component_addr(),
        }
    }

    fn c2s_addr(&self) -> SocketAddr {
        match self {
            Server::Prosody(_, o) => o.c2s_addr(),
            Server::Ejabberd(_, o) => o.c2s_addr(),
        }
    }

    fn stop(&mut self) {
        match self {
            Server::Prosody(p, _) => {
                p.stop(Duration::from_secs(10));
            }
            Server::Ejabberd(e, _) => drop(e.take()),
        }
    }

    fn start_again(&mut self) -> Result<(), Skip> {
        match self {
            Server::Prosody(p, o) => **p = Prosody::start(o.clone())?,
            Server::Ejabberd(e, o) => *e = Some(Box::new(Ejabberd::start(o.clone())?)),
        }
        Ok(())
    }
}

fn component(bin: &str, kind: &str, ip: u8) {
    require_peer!(xmpp_client::check_installed());
    let dir = temp_dir(&format!("component-{kind}-{bin}"));
    let mut xmpp = require_peer!(Server::start(kind, ip, &dir));
    let server = xmpp.component_addr();
    let sip = SocketAddr::from(([127, 0, 0, 1], free_port()));
    write_config(&dir, server, sip);
    let mut xfed = Instance::start(bin, &["run", "--config", "xfed.toml"], &dir);
    xfed.wait_log("component link up", WAIT);

    let mut alice = SipUa::new("alice", DOMAIN, "alice-secret", sip, false);
    assert_eq!(alice.register(600), 200, "{}", xfed.log_text());
    let mut bob = require_peer!(XmppClient::connect(
        BOB,
        "bob-secret",
        xmpp.c2s_addr(),
        Duration::from_secs(120)
    ));

    // IM both ways, through the component link.
    bob.send_chat(ALICE, "hello alice");
    let got = alice.receive(200, WAIT).unwrap_or_else(|| {
        panic!(
            "alice got no MESSAGE\n{}\n{}",
            xfed.log_text(),
            bob.diagnostics()
        )
    });
    assert!(String::from_utf8_lossy(&got.body).contains("hello alice"));
    assert_eq!(alice.message(BOB, "hello bob").status, 202);
    bob.expect_message("alice's answer", WAIT, |m| {
        m.body.as_deref() == Some("hello bob")
            && m.from.as_deref().is_some_and(|f| f.starts_with(ALICE))
    });

    // Presence: bob subscribes (a federated partner: approved), alice
    // publishes, bob sees her.
    bob.fetch_roster();
    let r = alice.publish(OPEN, None, 3600);
    assert_eq!(r.status, 200, "{r:?}");
    bob.presence_to(ALICE, "subscribe");
    let (i, p) = bob
        .wait_presence(0, WAIT, |p| {
            p.from_bare() == ALICE && p.kind() == "subscribed"
        })
        .unwrap_or_else(|| panic!("no subscribed\n{}\n{}", xfed.log_text(), bob.diagnostics()));
    assert_eq!(p.kind(), "subscribed");
    let (_, p) = bob
        .wait_presence(i + 1, WAIT, |p| {
            p.from_bare() == ALICE && p.kind() == "available"
        })
        .unwrap_or_else(|| panic!("alice not seen\n{}\n{}", xfed.log_text(), bob.diagnostics()));
    assert_eq!(p.status.as_deref(), Some("At the desk"), "{p:?}");

    // The server goes away: the link is down and says so; alice's
    // message is answered with an error, not left hanging.
    drop(bob);
    xmpp.stop();
    xfed.wait_log("component link down", WAIT);
    let refused = alice.message(BOB, "nobody home").status;
    assert!(refused >= 400, "{refused}\n{}", xfed.log_text());

    // Back: the link comes back by itself (within its back-off).
    require_peer!(xmpp.start_again());
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let log = xfed.log_text();
        if log.matches("component link up").count() >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "the link did not come back\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut bob = require_peer!(XmppClient::connect(
        BOB,
        "bob-secret",
        xmpp.c2s_addr(),
        Duration::from_secs(60)
    ));
    assert_eq!(alice.message(BOB, "back again").status, 202);
    bob.expect_message("the message after the link came back", WAIT, |m| {
        m.body.as_deref() == Some("back again")
    });
    assert!(xfed.terminate());
}

#[test]
fn prosody_component_tokio() {
    component("xfed", "prosody", 41);
}

#[test]
fn prosody_component_async_std() {
    component("xfed-async-std", "prosody", 42);
}

#[test]
fn ejabberd_component_tokio() {
    component("xfed", "ejabberd", 43);
}

#[test]
fn ejabberd_component_async_std() {
    component("xfed-async-std", "ejabberd", 44);
}
