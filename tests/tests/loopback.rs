//! Both binaries on loopback: a tokio instance federates with an async-std
//! instance over real sockets and real TLS, once with SASL EXTERNAL (test
//! CA certificates) and once with dialback over TLS (self-signed
//! certificates), each direction pinging the other; SIGTERM closes streams.

use std::path::PathBuf;
use std::time::Duration;

use xfed_core::tls::testing::{LeafSpec, TestCa, TestCert};
use xfed_tests::{free_port, run_to_end, temp_dir, write_config, Instance, PartnerSpec};

struct Side {
    domain: &'static str,
    dir: PathBuf,
    port: u16,
}

/// Two deployment directories, a.test and b.test, partners of each other.
fn deployments(name: &str, ca_certs: bool, tls: &str, sasl: &str, dialback: bool) -> (Side, Side) {
    let ca = TestCa::new("xfed loopback CA");
    let other_ca = TestCa::new("unrelated CA");
    let mut sides = Vec::new();
    for domain in ["a.test", "b.test"] {
        let dir = temp_dir(&format!("{name}-{domain}"));
        let leaf = LeafSpec::xmpp_server(domain);
        let cert = if ca_certs {
            ca.issue(&leaf)
        } else {
            TestCert::self_signed(&leaf)
        };
        std::fs::write(dir.join("cert.pem"), cert.chain_pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.key_pem()).unwrap();
        let trust = if ca_certs {
            ca.cert_pem()
        } else {
            other_ca.cert_pem()
        };
        std::fs::write(dir.join("ca.pem"), trust).unwrap();
        sides.push(Side {
            domain,
            dir,
            port: free_port(),
        });
    }
    let b = sides.pop().unwrap();
    let a = sides.pop().unwrap();
    for (me, them) in [(&a, &b), (&b, &a)] {
        let partner = PartnerSpec {
            domain: them.domain,
            connect: format!("127.0.0.1:{}", them.port),
            tls,
            sasl,
            dialback,
        };
        write_config(&me.dir, me.domain, me.port, free_port(), &[partner]);
    }
    (a, b)
}

/// `server` runs; `client` pings it with `xfed ping`; both directions of
/// federation are needed for the answer.
fn ping(server_bin: &str, server: &Side, client_bin: &str, client: &Side, method: &str) {
    let mut srv = Instance::start(server_bin, &["run", "--config", "xfed.toml"], &server.dir);
    let (ok, out) = run_to_end(
        client_bin,
        &["ping", "--config", "xfed.toml", "--to", server.domain],
        &client.dir,
        Duration::from_secs(40),
    );
    let server_log = srv.log_text();
    assert!(
        ok,
        "{client_bin} ping {} failed:\n{out}\n--- {server_bin}:\n{server_log}",
        server.domain
    );
    assert!(
        out.contains(&format!("ping {}: answered", server.domain)),
        "{out}"
    );
    srv.wait_log(
        &format!(
            "inbound stream authenticated: {} -> {} by {method}",
            client.domain, server.domain
        ),
        Duration::from_secs(5),
    );
    assert!(
        srv.terminate(),
        "{server_bin} did not exit cleanly on SIGTERM"
    );
}

#[test]
fn tokio_and_async_std_federate_with_sasl_external() {
    let (a, b) = deployments("sasl", true, "required", "required", false);
    ping("xfed-async-std", &b, "xfed", &a, "Sasl");
    ping("xfed", &a, "xfed-async-std", &b, "Sasl");
}

#[test]
fn tokio_and_async_std_federate_with_dialback_over_tls() {
    let (a, b) = deployments("dialback", false, "required", "not-supported", true);
    ping("xfed-async-std", &b, "xfed", &a, "Dialback");
    ping("xfed", &a, "xfed-async-std", &b, "Dialback");
}

#[test]
fn check_validates_configuration_files() {
    let dir = temp_dir("check");
    for bin in xfed_tests::BINARIES {
        std::fs::write(dir.join("bad.toml"), "[gateway]\ndomains = [\"x.test\"]\n\n[[partner]]\ndomain = \"y.test\"\ntsl = \"required\"\n").unwrap();
        let (ok, out) = run_to_end(
            bin,
            &["check", "--config", "bad.toml"],
            &dir,
            Duration::from_secs(10),
        );
        assert!(!ok, "{out}");
        assert!(
            out.contains("line 6") && out.contains("tsl"),
            "{bin}: {out}"
        );
        std::fs::write(dir.join("bad.toml"), "[gateway]\ndomains = [\"x.test\"]\n\n[[partner]]\ndomain = \"y.test\"\nsasl = \"not-supported\"\ndialback = false\n").unwrap();
        let (ok, out) = run_to_end(
            bin,
            &["check", "--config", "bad.toml"],
            &dir,
            Duration::from_secs(10),
        );
        assert!(!ok, "{out}");
        assert!(out.contains("line 4"), "{bin}: {out}");
    }
}

/// Issue 9 (Lync's settings made exact): `xfed check` reads the
/// certificate: it must name every local domain (a wildcard does not
/// cover the bare domain), one expiring within 30 days is reported, and
/// so is the absence of `[[access]]` rules (every local user may federate).
#[test]
fn check_reads_the_certificate() {
    let dir = temp_dir("check-cert");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let config =
        "[gateway]\ndomains = [\"x.test\"]\n[tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\n";
    let write = |spec: &LeafSpec, access: bool| {
        let cert = TestCert::self_signed(spec);
        std::fs::write(dir.join("cert.pem"), cert.chain_pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.key_pem()).unwrap();
        let rules = if access {
            "[[access]]\nusers = [\"*@x.test\"]\nxmpp = true\n"
        } else {
            ""
        };
        std::fs::write(dir.join("xfed.toml"), format!("{config}{rules}")).unwrap();
    };
    for bin in xfed_tests::BINARIES {
        let check = || {
            run_to_end(
                bin,
                &["check", "--config", "xfed.toml"],
                &dir,
                Duration::from_secs(10),
            )
        };
        write(&LeafSpec::new().dns("*.x.test"), true);
        let (ok, out) = check();
        assert!(!ok && out.contains("does not name x.test"), "{bin}: {out}");
        write(
            &LeafSpec::xmpp_server("x.test").valid(now - 86_400, now + 10 * 86_400),
            false,
        );
        let (ok, out) = check();
        assert!(ok, "{bin}: {out}");
        assert!(out.contains("certificate expires in"), "{bin}: {out}");
        assert!(
            out.contains("no [[access]] rule: every local user may federate"),
            "{bin}: {out}"
        );
        write(
            &LeafSpec::xmpp_server("x.test").valid(now - 86_400, now + 400 * 86_400),
            true,
        );
        let (ok, out) = check();
        assert!(
            ok && !out.contains("expires") && !out.contains("[[access]]"),
            "{bin}: {out}"
        );
    }
}
