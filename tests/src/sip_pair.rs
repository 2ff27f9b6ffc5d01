//! Two xfed deployments, a.test and b.test, each the other's partner
//! with a SIP registrar on loopback: the set-up of the SIP loopback and
//! metrics suites.

use std::net::SocketAddr;
use std::path::PathBuf;

use xfed_core::tls::testing::{LeafSpec, TestCa, TestCert};

use crate::sip_ua::SipUa;
use crate::{free_port, temp_dir, write_config, Instance, PartnerSpec};

/// One deployment of the pair.
pub struct Side {
    /// `a.test` or `b.test`.
    pub domain: &'static str,
    /// Its directory: certificate, key, `xfed.toml`, store.
    pub dir: PathBuf,
    /// Its s2s port.
    pub s2s: u16,
    /// Its SIP address (UDP and TCP).
    pub sip: SocketAddr,
}

/// Writes both deployments' directories, `name` telling the test apart:
/// each the other's federated partner (TLS required, dialback), with the
/// registrar and one account (alice at a.test, bob at b.test).
pub fn deployments(name: &str) -> (Side, Side) {
    let other_ca = TestCa::new("unrelated CA");
    let mut sides = Vec::new();
    for domain in ["a.test", "b.test"] {
        let dir = temp_dir(&format!("sip-{name}-{domain}"));
        let cert = TestCert::self_signed(&LeafSpec::xmpp_server(domain));
        std::fs::write(dir.join("cert.pem"), cert.chain_pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.key_pem()).unwrap();
        std::fs::write(dir.join("ca.pem"), other_ca.cert_pem()).unwrap();
        let sip_port = free_port();
        sides.push(Side {
            domain,
            dir,
            s2s: free_port(),
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
        });
    }
    let b = sides.pop().unwrap();
    let a = sides.pop().unwrap();
    for (me, them, user) in [(&a, &b, "alice"), (&b, &a, "bob")] {
        let partner = PartnerSpec {
            domain: them.domain,
            connect: format!("127.0.0.1:{}", them.s2s),
            tls: "required",
            sasl: "not-supported",
            dialback: true,
        };
        let path = write_config(&me.dir, me.domain, me.s2s, free_port(), &[partner]);
        let toml = std::fs::read_to_string(&path).unwrap().replace(
            "sip = []",
            &format!("sip = [\"udp:{0}\", \"tcp:{0}\"]", me.sip),
        );
        let toml = format!(
            "{toml}\n[sip]\nmode = \"registrar\"\n\n\
             [[sip.account]]\nuser = \"{user}\"\npassword = \"{user}-secret\"\n\n\
             [store]\nurl = \"sqlite://xfed.db\"\n"
        );
        std::fs::write(&path, toml).unwrap();
    }
    (a, b)
}

/// Runs `bin` on `side`'s configuration.
pub fn start(bin: &str, side: &Side) -> Instance {
    Instance::start(bin, &["run", "--config", "xfed.toml"], &side.dir)
}

/// A SIP agent for `user` (password `<user>-secret`) of `side`.
pub fn ua(user: &str, side: &Side, tcp: bool) -> SipUa {
    SipUa::new(user, side.domain, &format!("{user}-secret"), side.sip, tcp)
}

/// `from` writes `text` to `to_aor`, answered 202, and `to` gets it
/// (within 20 s).
pub fn say(from: &mut SipUa, to_aor: &str, to: &mut SipUa, text: &str) {
    assert_eq!(from.message(to_aor, text).status, 202);
    let got = to
        .receive(200, std::time::Duration::from_secs(20))
        .expect("the MESSAGE");
    assert!(String::from_utf8_lossy(&got.body).contains(text));
}
