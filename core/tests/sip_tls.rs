//! SIP over TLS in proxy mode, in memory: xfed.test opens TLS to its next
//! hop (which must prove the name of `next_hop`), and a proxy that
//! connects to xfed's TLS listener is trusted when its client certificate
//! proves a name of `sip.trusted`. The test plays the proxy with rustls;
//! certificates come from the network's test CA.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, Connection, RootCertStore, ServerConfig};
use xfed_core::config::SipTransport;
use xfed_core::endpoint::NextHop;
use xfed_core::sim::{Net, NodeSpec};
use xfed_core::sip::{Frame, Limits, Message, Request, Response, StreamFramer};
use xfed_core::tls::testing::{LeafSpec, TestCert, NOW};
use xfed_core::tls::{check_peer, PeerCert};
use xfed_core::xml::{ns, Element};
use xfed_core::xmpp::stanza::{self, StanzaCondition};
use xfed_core::{ConnId, Event, Listener};

const XFED: usize = 0;
const REMOTE: usize = 1;
const PROXY_NAME: &str = "proxy.xfed.test";

const CONFIG: &str = r#"
[gateway]
domains = ["xfed.test"]
dialback_secret = "a dialback secret long enough for the tests"

[sip]
mode = "proxy"
next_hop = "sip:proxy.xfed.test;transport=tls;maddr=192.0.2.50"
trusted = ["proxy.xfed.test"]

[[partner]]
domain = "remote.test"
type = "federated"

[[access]]
users = ["*@xfed.test"]
xmpp = true
"#;

fn proxy_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 50], 5061))
}

/// xfed.test (certificate from the network's CA) in proxy mode with a TLS
/// next hop at [`proxy_addr`]; remote.test plain so its stanzas can be read.
fn network() -> Net {
    let mut xfed = NodeSpec::new("xfed.test");
    xfed.ca_cert = true;
    let mut remote = NodeSpec::new("remote.test");
    remote.tls = false;
    let mut net = Net::new(&[xfed, remote]);
    let hop = NextHop {
        addr: proxy_addr(),
        transport: SipTransport::Tls,
        name: PROXY_NAME.into(),
    };
    net.enable_sip_with(XFED, CONFIG, Some(hop));
    net.listen_outside(proxy_addr());
    net.record_stanzas(REMOTE);
    net
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(net: &Net) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(net.ca.cert_der()).expect("test CA");
    Arc::new(roots)
}

/// The proxy as a TLS server: `cert`, and a client certificate from the
/// test CA required.
fn proxy_server(net: &Net, cert: &TestCert) -> Connection {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(net), provider())
        .build()
        .expect("client verifier");
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(cert.chain().to_vec(), cert.key_der())
        .expect("server config");
    rustls::ServerConnection::new(Arc::new(config))
        .expect("server connection")
        .into()
}

/// The proxy as a TLS client of xfed's listener, with `cert` as client
/// certificate (or none); xfed's certificate is verified against the CA.
fn proxy_client(net: &Net, cert: Option<&TestCert>) -> Connection {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots(net));
    let config = match cert {
        Some(c) => builder
            .with_client_auth_cert(c.chain().to_vec(), c.key_der())
            .expect("client config"),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("xfed.test").expect("name");
    rustls::ClientConnection::new(Arc::new(config), name)
        .expect("client connection")
        .into()
}

/// The test's end of a TLS stream with xfed.
struct Peer {
    conn: ConnId,
    tls: Connection,
    framer: StreamFramer,
    closed: bool,
}

impl Peer {
    fn new(conn: ConnId, tls: Connection) -> Peer {
        Peer {
            conn,
            tls,
            framer: StreamFramer::new(Limits::default()),
            closed: false,
        }
    }

    /// Moves records both ways until nothing moves; the SIP messages
    /// xfed sent meanwhile.
    fn pump(&mut self, net: &mut Net) -> Vec<Message> {
        for _ in 0..100 {
            let (bytes, closed) = net.outside_take(XFED, self.conn);
            let mut moved = !bytes.is_empty();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                self.tls.read_tls(&mut rest).expect("read_tls");
                if self.tls.process_new_packets().is_err() {
                    self.closed = true;
                    break;
                }
            }
            let mut plain = Vec::new();
            let _ = self.tls.reader().read_to_end(&mut plain);
            self.framer.feed(&plain);
            let mut out = Vec::new();
            while self.tls.wants_write() {
                self.tls.write_tls(&mut out).expect("write_tls");
            }
            if !out.is_empty() && !closed {
                moved = true;
                net.outside_send(XFED, self.conn, &out);
            }
            if closed {
                self.closed = true;
            }
            if !moved || self.closed {
                break;
            }
        }
        let mut messages = Vec::new();
        while let Some(frame) = self.framer.poll() {
            if let Ok(Frame::Message(m)) = frame {
                messages.push(m);
            }
        }
        messages
    }

    fn send(&mut self, net: &mut Net, bytes: &[u8]) -> Vec<Message> {
        self.tls.writer().write_all(bytes).expect("plaintext");
        self.pump(net)
    }
}

fn responses(messages: Vec<Message>) -> Vec<Response> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r),
            Message::Request(_) => None,
        })
        .collect()
}

fn requests(messages: Vec<Message>) -> Vec<Request> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        })
        .collect()
}

/// A MESSAGE from alice@xfed.test to bob@remote.test, as the proxy
/// relays it.
fn message_from_alice(n: u32) -> Vec<u8> {
    let body = "Wherefore art thou";
    format!(
        "MESSAGE sip:bob@remote.test SIP/2.0\r\n\
         Via: SIP/2.0/TLS 192.0.2.50:5061;branch=z9hG4bK-proxy-{n}\r\n\
         Max-Forwards: 69\r\n\
         From: <sip:alice@xfed.test>;tag=p{n}\r\n\
         To: <sip:bob@remote.test>\r\n\
         Call-ID: tls-{n}@proxy\r\n\
         CSeq: {n} MESSAGE\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn xmpp_message(net: &mut Net, id: &str) {
    net.send(
        REMOTE,
        &format!(
            "<message xmlns='jabber:server' from='bob@remote.test/balcony' \
             to='alice@xfed.test' id='{id}'><body>Hello alice</body></message>"
        ),
    );
}

fn inbox_with_id(net: &Net, id: &str) -> Vec<Element> {
    net.nodes[REMOTE]
        .inbox
        .iter()
        .filter(|e| e.attr("id") == Some(id))
        .cloned()
        .collect()
}

fn bodies_at_remote(net: &Net) -> Vec<String> {
    net.stanzas_received(REMOTE)
        .iter()
        .filter(|e| e.name() == "message")
        .filter_map(|e| e.child(ns::SERVER, "body").map(|b| b.text().into_owned()))
        .collect()
}

/// A certificate for `name` from the network's CA.
fn issued(net: &Net, name: &str) -> TestCert {
    net.ca.issue(&LeafSpec::new().dns(name))
}

#[test]
fn next_hop_over_mutual_tls_carries_both_directions() {
    let mut net = network();
    let proxy_cert = issued(&net, PROXY_NAME);
    xmpp_message(&mut net, "m1");
    let conns = net.outside_conns(XFED);
    assert_eq!(conns.len(), 1, "one TLS connection to the next hop");
    let mut proxy = Peer::new(conns[0], proxy_server(&net, &proxy_cert));
    let got = requests(proxy.pump(&mut net));
    assert!(!proxy.closed, "{}", net.dump(XFED));

    // xfed presented its own certificate, which names its domain.
    let chain = proxy
        .tls
        .peer_certificates()
        .expect("xfed's client certificate");
    assert_eq!(
        check_peer(chain, &net.ca.trust_anchors(), NOW, "xfed.test"),
        PeerCert::Trusted
    );
    assert_eq!(got.len(), 1, "{got:?}\n{}", net.dump(XFED));
    let req = &got[0];
    assert_eq!(req.uri.to_string(), "sip:alice@xfed.test");
    let via = req.headers.get("Via").expect("Via");
    assert!(via.starts_with("SIP/2.0/TLS "), "{via}");
    assert_eq!(req.body, b"Hello alice");

    // The proxy's 200 ends the transaction: no error goes back.
    let ok = req.response(200, "proxy-tag");
    proxy.send(&mut net, &ok.to_bytes());
    assert!(inbox_with_id(&net, "m1").is_empty());

    // The proxy sends over the same connection: its certificate proved a
    // trusted name, so no digest and no 403.
    let answers = responses(proxy.send(&mut net, &message_from_alice(1)));
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [202], "{}", net.dump(XFED));
    assert_eq!(bodies_at_remote(&net), ["Wherefore art thou"]);
}

#[test]
fn next_hop_that_cannot_prove_its_name_gets_nothing() {
    for (what, cert) in [
        ("wrong name", Some("elsewhere.test")),
        ("self-signed", None),
    ] {
        let mut net = network();
        let cert = match cert {
            Some(name) => issued(&net, name),
            None => TestCert::self_signed(&LeafSpec::new().dns(PROXY_NAME)),
        };
        xmpp_message(&mut net, "m2");
        let conns = net.outside_conns(XFED);
        let mut proxy = Peer::new(conns[0], proxy_server(&net, &cert));
        let got = proxy.pump(&mut net);
        assert!(
            got.is_empty(),
            "{what}: plaintext reached the server: {got:?}"
        );
        assert!(proxy.closed, "{what}: connection closed");
        assert!(
            net.saw(XFED, |e| matches!(e,
                Event::SipCertificate { outcome, accepted: false, .. }
                if outcome.starts_with("SIP TLS to proxy.xfed.test at 192.0.2.50:5061"))),
            "{what}: {}",
            net.dump(XFED)
        );
        // The XMPP sender hears that alice cannot be reached, in the words
        // used for a missing account (nothing to enumerate).
        let back = inbox_with_id(&net, "m2");
        assert_eq!(back.len(), 1, "{what}: {back:?}");
        assert_eq!(
            stanza::error_condition(&back[0]),
            Some(StanzaCondition::ServiceUnavailable),
            "{what}"
        );
    }
}

#[test]
fn listener_trusts_a_client_certificate_that_proves_a_trusted_name() {
    let from = SocketAddr::from(([198, 51, 100, 7], 40000));
    // (case, the client certificate's name and issuer, status, log line)
    let cases = [
        (
            "trusted name",
            Some((PROXY_NAME, true)),
            202,
            "certificate proves trusted peer proxy.xfed.test",
        ),
        ("no certificate", None, 403, "no client certificate"),
        (
            "other name",
            Some(("other.test", true)),
            403,
            "certificate proves no trusted name (certificate does not name the domain)",
        ),
        (
            "self-signed",
            Some((PROXY_NAME, false)),
            403,
            "certificate proves no trusted name (self-signed certificate)",
        ),
    ];
    for (what, cert, status, line) in cases {
        let mut net = network();
        let cert = cert.map(|(name, from_ca)| {
            if from_ca {
                issued(&net, name)
            } else {
                TestCert::self_signed(&LeafSpec::new().dns(name))
            }
        });
        let conn = net.connect_from_outside(XFED, Listener::SipTls, from);
        let mut proxy = Peer::new(conn, proxy_client(&net, cert.as_ref()));
        proxy.pump(&mut net);
        let answers = responses(proxy.send(&mut net, &message_from_alice(2)));
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [status], "{what}: {}", net.dump(XFED));
        assert!(
            net.saw(XFED, |e| matches!(e,
                Event::SipCertificate { outcome, .. } if outcome.ends_with(line))),
            "{what}: {}",
            net.dump(XFED)
        );
        if status == 403 {
            assert!(bodies_at_remote(&net).is_empty(), "{what}");
        }
    }
}

#[test]
fn next_hop_that_never_finishes_the_handshake_is_given_up() {
    let mut net = network();
    xmpp_message(&mut net, "m4");
    let conns = net.outside_conns(XFED);
    assert_eq!(conns.len(), 1);
    // The proxy reads the ClientHello and never answers.
    let (hello, closed) = net.outside_take(XFED, conns[0]);
    assert!(!hello.is_empty() && !closed);
    net.advance(std::time::Duration::from_secs(11));
    let (_, closed) = net.outside_take(XFED, conns[0]);
    assert!(closed, "{}", net.dump(XFED));
    assert!(
        net.saw(XFED, |e| matches!(e,
            Event::SipConnectionExpired { peer, tls: true, inbound: false, key: "sip.handshake_timeout", after_secs: 10, .. }
            if peer.to_string() == "192.0.2.50:5061")),
        "{}",
        net.dump(XFED)
    );
    // The MESSAGE fails as a transport error: alice cannot be reached,
    // said as for a missing account (no enumeration).
    let back = inbox_with_id(&net, "m4");
    assert_eq!(back.len(), 1, "{back:?}\n{}", net.dump(XFED));
    assert_eq!(
        stanza::error_condition(&back[0]),
        Some(StanzaCondition::ServiceUnavailable)
    );
}
