//! `xfed plan` (issue 12, item 1): the planning document's three
//! summaries for a deployment, as tables and JSON; and `--check` against
//! a running xfed (plan.test) with its partner (a second xfed, peer.test)
//! on loopback, the records served by a real dnsmasq: the published
//! STARTTLS record, the listeners and the partner are ok; a direct TLS
//! record on the wrong port and a partner whose SRV record leads nowhere
//! are errors, with their reasons; `[listen] internal` outside an edge is
//! not checked (nothing listens there). Both binaries.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use xfed_core::tls::testing::{LeafSpec, TestCa};
use xfed_tests::dnsmasq::Dnsmasq;
use xfed_tests::{
    free_port, require_peer, run_to_end, temp_dir, write_config, Instance, PartnerSpec,
};

const WAIT: Duration = Duration::from_secs(60);

/// The summary's configuration: fixed addresses (nothing is bound).
const SUMMARY_TOML: &str = r#"
[gateway]
domains = ["plan.test", "other.test"]
dialback_secret = "s"
federation = "allow-list"

[listen]
s2s = ["192.0.2.10:5269"]
s2s_direct_tls = ["192.0.2.10:5270"]
sip = ["tcp:10.0.0.1:5060", "udp:10.0.0.1:5060"]
metrics = "127.0.0.1:9269"

[tls]
certificate = "cert.pem"
key = "key.pem"
trust = "ca.pem"

[[partner]]
domain = "jabber.example"
additional_domains = ["conference.jabber.example"]
connect = "xmpp.jabber.example:5299"
"#;

fn summary(bin: &str) {
    let dir = temp_dir(&format!("plan-summary-{bin}"));
    let ca = TestCa::new("plan CA");
    // plan.test only, serverAuth only: other.test is missing and the
    // certificate cannot authenticate a TLS client.
    let cert =
        ca.issue(&LeafSpec::xmpp_server("plan.test").eku(xfed_core::tls::testing::Eku::ServerAuth));
    std::fs::write(dir.join("cert.pem"), cert.chain_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("xfed.toml"), SUMMARY_TOML).unwrap();

    let (ok, out) = run_to_end(
        bin,
        &[
            "plan",
            "--config",
            "xfed.toml",
            "--resolver",
            "192.0.2.53:53",
        ],
        &dir,
        WAIT,
    );
    assert!(ok, "xfed plan failed:\n{out}");
    let expected = [
        "DIRECTION  PROTOCOL  ADDRESS                                    PORT  SERVICE         NEEDED BY",
        "inbound    tcp       192.0.2.10                                 5269  s2s             partners' XMPP servers (STARTTLS); dialback needs it open too",
        "inbound    tcp       192.0.2.10                                 5270  s2s_direct_tls  partners' XMPP servers with direct TLS (XEP-0368)",
        "inbound    tcp       10.0.0.1                                   5060  sip             SIP user agents and proxies over TCP",
        "inbound    udp       10.0.0.1                                   5060  sip             SIP user agents and proxies over UDP",
        "inbound    tcp       127.0.0.1                                  9269  metrics         Prometheus scrapes and the status page (internal network only)",
        "outbound   tcp       jabber.example, conference.jabber.example  5269  s2s             streams to partners (STARTTLS); other ports as their SRV records say",
        "outbound   tcp       jabber.example, conference.jabber.example  5270  s2s             streams to partners with direct TLS (XEP-0368)",
        "outbound   tcp       jabber.example, conference.jabber.example  5299  s2s             streams to a partner's fixed address (connect)",
        "outbound   udp       192.0.2.53                                 53    dns             SRV and A/AAAA lookups of partners (the resolver of /etc/resolv.conf)",
        "outbound   tcp       192.0.2.53                                 53    dns             SRV and A/AAAA lookups of partners (the resolver of /etc/resolv.conf)",
        "Certificate cert.pem",
        "NAME            NEED         CARRIED  WHY",
        "plan.test       required     yes      local domain: partners check it on every stream (RFC 6120 13.7.2)",
        "other.test      required     no       local domain: partners check it on every stream (RFC 6120 13.7.2)",
        "xmpp.plan.test  recommended  no       SRV target: SIP over TLS clients and pre-RFC 6125 servers check the host",
        "carries: DNS:plan.test, SRVName:_xmpp-server.plan.test, SRVName:_xmpps-server.plan.test, xmppAddr:plan.test",
        "TLS client certificate (SASL EXTERNAL on streams xfed opens): no (extKeyUsage lacks clientAuth)",
        "DNS records to publish (target xmpp.plan.test)",
        "NAME                           TYPE  PRIORITY  WEIGHT  PORT  VALUE",
        "_xmpp-server._tcp.plan.test    SRV   0         5       5269  xmpp.plan.test",
        "_xmpps-server._tcp.plan.test   SRV   0         5       5270  xmpp.plan.test",
        "_xmpp-server._tcp.other.test   SRV   0         5       5269  xmpp.plan.test",
        "_xmpps-server._tcp.other.test  SRV   0         5       5270  xmpp.plan.test",
        "xmpp.plan.test                 A                             192.0.2.10",
    ];
    let lines: Vec<&str> = out.lines().collect();
    for row in expected {
        assert!(lines.contains(&row), "no row {row:?} in:\n{out}");
    }
    assert!(out.contains("notAfter: 2050-01-01 00:00:00 UTC ("), "{out}");

    let (ok, out) = run_to_end(
        bin,
        &[
            "plan",
            "--config",
            "xfed.toml",
            "--json",
            "--host",
            "edge.plan.test",
        ],
        &dir,
        WAIT,
    );
    assert!(ok, "xfed plan --json failed:\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    assert_eq!(v["host"], "edge.plan.test");
    assert_eq!(v["firewall"].as_array().map(Vec::len), Some(10), "{out}");
    assert_eq!(
        v["firewall"][0],
        serde_json::json!({
            "direction": "inbound", "protocol": "tcp", "address": "192.0.2.10", "port": 5269,
            "service": "s2s",
            "needed_by": "partners' XMPP servers (STARTTLS); dialback needs it open too"
        })
    );
    let c = &v["certificate"];
    assert_eq!(c["not_after"], 2_524_608_000u64);
    assert_eq!(c["client_auth"], false);
    assert_eq!(c["needed"][1]["name"], "other.test");
    assert_eq!(c["needed"][1]["carried"], false);
    assert_eq!(c["needed"][2]["name"], "edge.plan.test");
    assert_eq!(
        v["dns"][0],
        serde_json::json!({
            "name": "_xmpp-server._tcp.plan.test", "type": "SRV", "priority": 0, "weight": 5,
            "port": 5269, "value": "edge.plan.test"
        })
    );
    assert_eq!(
        v["dns"][4],
        serde_json::json!({
            "name": "edge.plan.test", "type": "A", "priority": null, "weight": null,
            "port": null, "value": "192.0.2.10"
        })
    );
}

#[test]
fn summary_tokio() {
    summary("xfed");
}

#[test]
fn summary_async_std() {
    summary("xfed-async-std");
}

/// Writes a CA-issued certificate for `domain` (and the CA) into `dir`.
fn certificate(dir: &Path, ca: &TestCa, domain: &str) {
    let cert = ca.issue(&LeafSpec::xmpp_server(domain));
    std::fs::write(dir.join("cert.pem"), cert.chain_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
}

fn check(bin: &str) {
    let ca = TestCa::new("plan check CA");
    let (s2s, direct, peer_s2s) = (free_port(), free_port(), free_port());
    let (sip, metrics, internal, nowhere) = (free_port(), free_port(), free_port(), free_port());

    // peer.test, plan.test's partner, and plan.test itself.
    let peer = temp_dir(&format!("plan-peer-{bin}"));
    certificate(&peer, &ca, "peer.test");
    let to_plan = PartnerSpec {
        domain: "plan.test",
        connect: format!("127.0.0.1:{s2s}"),
        tls: "required",
        sasl: "optional",
        dialback: true,
    };
    write_config(&peer, "peer.test", peer_s2s, free_port(), &[to_plan]);
    let plan = temp_dir(&format!("plan-check-{bin}"));
    certificate(&plan, &ca, "plan.test");
    let partners = [PartnerSpec {
        domain: "peer.test",
        connect: format!("127.0.0.1:{peer_s2s}"),
        tls: "required",
        sasl: "optional",
        dialback: true,
    }];
    let path = write_config(&plan, "plan.test", s2s, direct, &partners);
    let toml = std::fs::read_to_string(&path).unwrap()
        .replace(
            "sip = []\nmetrics = false",
            &format!(
                "sip = [\"tcp:127.0.0.1:{sip}\", \"udp:127.0.0.1:{sip}\"]\nmetrics = \"127.0.0.1:{metrics}\"\ninternal = \"127.0.0.1:{internal}\""
            ),
        );
    // A partner found through DNS only, whose record leads to a port
    // where nothing listens.
    let toml = format!("{toml}\n[[partner]]\ndomain = \"gone.test\"\n");
    std::fs::write(&path, toml).unwrap();

    let dns = require_peer!(Dnsmasq::start(
        &plan,
        &[
            format!("srv-host=_xmpp-server._tcp.plan.test,xmpp.plan.test,{s2s},0,5"),
            // Wrong: the direct TLS listener is on `direct`.
            format!("srv-host=_xmpps-server._tcp.plan.test,xmpp.plan.test,{nowhere},0,5"),
            "host-record=xmpp.plan.test,127.0.0.1".to_owned(),
            format!("srv-host=_xmpp-server._tcp.gone.test,xmpp.gone.test,{nowhere},0,5"),
            "host-record=xmpp.gone.test,127.0.0.1".to_owned(),
        ],
    ));

    let _peer = Instance::start(bin, &["run", "--config", "xfed.toml"], &peer);
    let _xfed = Instance::start(bin, &["run", "--config", "xfed.toml"], &plan);

    let resolver = dns.addr.to_string();
    let args = [
        "plan",
        "--config",
        "xfed.toml",
        "--check",
        "--resolver",
        &resolver,
    ];
    let (ok, out) = run_to_end(bin, &args, &plan, WAIT);
    println!("{out}");
    assert!(!ok, "errors must fail the command:\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    let has = |line: &str| {
        assert!(lines.contains(&line), "no line {line:?} in:\n{out}");
    };
    let starts = |prefix: &str| {
        assert!(
            lines.iter().any(|l| l.starts_with(prefix)),
            "no line starting {prefix:?} in:\n{out}"
        );
    };
    let lo = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    // The certificate file.
    has("certificate plan.test: ok: carried");
    has("certificate xmpp.plan.test: warning: not carried (SRV target: SIP over TLS clients and pre-RFC 6125 servers check the host)");
    starts("certificate notAfter: ok: valid until 2050-01-01 00:00:00 UTC (");
    // Listeners: reached, TLS up, the chain trusted.
    has(&format!(
        "listener    s2s {}: ok: STARTTLS, TLSv1_3",
        lo(s2s)
    ));
    has(&format!(
        "listener    s2s {} certificate for plan.test: ok: trusted by tls.trust",
        lo(s2s)
    ));
    has(&format!(
        "listener    s2s_direct_tls {}: ok: direct TLS, TLSv1_3",
        lo(direct)
    ));
    has(&format!(
        "listener    sip tcp:{}: ok: accepts TCP connections",
        lo(sip)
    ));
    has(&format!(
        "listener    sip udp:{}: ok: bound (by xfed, when it runs)",
        lo(sip)
    ));
    has(&format!(
        "listener    metrics {}: ok: accepts TCP connections",
        lo(metrics)
    ));
    // `internal` is an edge's: not this role's, not checked.
    assert!(
        !out.contains(&format!("internal {}", lo(internal))),
        "{out}"
    );
    // DNS: the STARTTLS record is right and leads to xfed ...
    has(&format!(
        "dns         _xmpp-server._tcp.plan.test SRV 0 5 {s2s} xmpp.plan.test: ok: published"
    ));
    has(&format!(
        "dns         plan.test via xmpp.plan.test {}: ok: STARTTLS, TLSv1_3",
        lo(s2s)
    ));
    has("dns         xmpp.plan.test A: ok: published 127.0.0.1");
    // ... the direct TLS one names a port without listener.
    has(&format!(
        "dns         _xmpps-server._tcp.plan.test SRV 0 5 {nowhere} xmpp.plan.test: error: port {nowhere} is no listener of this kind (configured: {direct})"
    ));
    // Partners: peer.test answers, with a trusted certificate; gone.test
    // cannot be reached where DNS says.
    has(&format!(
        "partner     peer.test via 127.0.0.1 {}: ok: STARTTLS, TLSv1_3",
        lo(peer_s2s)
    ));
    has("partner     peer.test certificate for peer.test: ok: trusted by tls.trust");
    has(&format!(
        "partner     gone.test: error: xmpp.gone.test {}: Connection refused (os error 111)",
        lo(nowhere)
    ));
    let last = lines.last().copied().unwrap_or_default();
    assert!(last.ends_with("2 error(s)"), "{last}");

    // The same as JSON: every line with its status, and the counts.
    let json_args = [
        "plan",
        "--config",
        "xfed.toml",
        "--check",
        "--json",
        "--resolver",
        &resolver,
    ];
    let (ok, out) = run_to_end(bin, &json_args, &plan, WAIT);
    assert!(!ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    assert_eq!(v["errors"], 2, "{out}");
    let line = v["lines"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["subject"] == "gone.test"))
        .unwrap_or_else(|| panic!("no gone.test line:\n{out}"));
    assert_eq!(line["status"], "error");
    assert_eq!(line["section"], "partner");
}

#[test]
fn check_tokio() {
    check("xfed");
}

#[test]
fn check_async_std() {
    check("xfed-async-std");
}
