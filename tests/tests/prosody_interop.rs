//! Interop with Prosody (Debian's package): a Prosody user's domain pings
//! xfed's domain (XEP-0199), which needs federation in both directions:
//! Prosody's stream to xfed (authenticated by xfed), and xfed's stream back
//! (authenticated by Prosody) carrying the answer; then `xfed ping` pings
//! Prosody's domain, xfed initiating. Once with dialback over
//! TLS (self-signed certificates), once with SASL EXTERNAL (test CA), on
//! both runtimes. Prosody finds xfed through the per-test DNS server of the
//! harness; xfed reaches Prosody through the partner's `connect` address.
//! Fails under CI=true without Prosody; skips elsewhere.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use xfed_core::tls::testing::{LeafSpec, TestCa, TestCert};
use xfed_tests::prosody::{Prosody, ProsodyOptions};
use xfed_tests::{
    free_port, require_peer, run_to_end, temp_dir, write_config, Instance, PartnerSpec,
};

fn interop(bin: &str, sasl: bool, prosody_ip: u8) {
    let name = format!("interop-{bin}-{}", if sasl { "sasl" } else { "dialback" });
    let dir = temp_dir(&name);
    let ca = TestCa::new("xfed interop CA");
    let cert = |domain: &str| {
        let leaf = LeafSpec::xmpp_server(domain);
        if sasl {
            ca.issue(&leaf)
        } else {
            TestCert::self_signed(&leaf)
        }
    };
    let (xfed_cert, prosody_cert) = (cert("xfed.test"), cert("prosody.test"));
    std::fs::write(dir.join("cert.pem"), xfed_cert.chain_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), xfed_cert.key_pem()).unwrap();
    let trust = if sasl {
        ca.cert_pem()
    } else {
        TestCa::new("unrelated").cert_pem()
    };
    std::fs::write(dir.join("ca.pem"), &trust).unwrap();
    std::fs::write(dir.join("prosody.crt"), prosody_cert.chain_pem()).unwrap();
    std::fs::write(dir.join("prosody.key"), prosody_cert.key_pem()).unwrap();

    let xfed_port = free_port();
    let options = ProsodyOptions::new(
        "prosody.test",
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, prosody_ip)),
    )
    .tls(dir.join("prosody.crt"), dir.join("prosody.key"))
    .cafile(dir.join("ca.pem"))
    .secure_auth(sasl)
    .require_encryption(true)
    .route("xfed.test", ([127, 0, 0, 1], xfed_port).into());
    let partner = PartnerSpec {
        domain: "prosody.test",
        connect: options.s2s_addr().to_string(),
        tls: "required",
        sasl: if sasl { "required" } else { "not-supported" },
        dialback: !sasl,
    };
    write_config(&dir, "xfed.test", xfed_port, free_port(), &[partner]);

    let prosody = require_peer!(Prosody::start(options));
    let mut xfed = Instance::start(bin, &["run", "--config", "xfed.toml"], &dir);
    let pong = prosody
        .ping("prosody.test", "xfed.test")
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n--- xfed:\n{}\n--- prosody:\n{}",
                xfed.log_text(),
                prosody.diagnostics()
            )
        });
    println!("{name}: Prosody's ping answered in {:?}", pong.reported);
    let method = if sasl { "Sasl" } else { "Dialback" };
    xfed.wait_log(
        &format!("inbound stream authenticated: prosody.test -> xfed.test by {method}"),
        Duration::from_secs(5),
    );
    xfed.wait_log(
        &format!("outbound stream ready: xfed.test -> prosody.test by {method}"),
        Duration::from_secs(5),
    );
    // A second ping reuses the streams.
    prosody
        .ping("prosody.test", "xfed.test")
        .expect("second ping");
    assert!(xfed.terminate(), "{bin} did not exit cleanly on SIGTERM");
    // And the other way round: xfed initiates, Prosody answers.
    let (ok, out) = run_to_end(
        bin,
        &["ping", "--config", "xfed.toml", "--to", "prosody.test"],
        &dir,
        Duration::from_secs(30),
    );
    assert!(
        ok,
        "{bin} ping prosody.test failed:\n{out}\n--- prosody:\n{}",
        prosody.diagnostics()
    );
    assert!(out.contains("ping prosody.test: answered"), "{out}");
    println!(
        "{name}: {}",
        out.lines()
            .find(|l| l.starts_with("ping "))
            .unwrap_or_default()
    );
}

#[test]
fn prosody_pings_xfed_tokio_with_dialback_over_tls() {
    interop("xfed", false, 31);
}

#[test]
fn prosody_pings_xfed_tokio_with_sasl_external() {
    interop("xfed", true, 32);
}

#[test]
fn prosody_pings_xfed_async_std_with_dialback_over_tls() {
    interop("xfed-async-std", false, 33);
}

#[test]
fn prosody_pings_xfed_async_std_with_sasl_external() {
    interop("xfed-async-std", true, 34);
}
