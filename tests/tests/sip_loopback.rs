//! SIP users of two xfed deployments chat through XMPP federation, on real
//! sockets: a.test and b.test each run the built-in registrar; alice
//! (UDP) registers with a.test, bob (TCP) with b.test, both with digest.
//! Messages go SIP -> a.test -> s2s (TLS + dialback) -> b.test -> SIP and
//! back; the sender's 202 means the stanza was on the authenticated stream.
//! Each deployment runs once on each runtime, and a.test is restarted in
//! the middle to show that its bindings come back from the store.

use std::time::Duration;

use xfed_tests::sip_pair::{deployments, start, ua};
use xfed_tests::sip_ua::SipUa;

const WAIT: Duration = Duration::from_secs(20);

fn chat(bin_a: &str, bin_b: &str) {
    let (a, b) = deployments(&format!("{bin_a}-{bin_b}"));
    let mut xa = start(bin_a, &a);
    let mut xb = start(bin_b, &b);

    let mut alice = ua("alice", &a, false);
    // alice's second device, over TCP: messages to her fork to both.
    let mut alice2 = ua("alice", &a, true);
    let mut bob = ua("bob", &b, true);
    assert_eq!(alice.register(600), 200, "{}", xa.log_text());
    assert_eq!(alice2.register(600), 200, "{}", xa.log_text());
    assert_eq!(bob.register(600), 200, "{}", xb.log_text());

    // Nobody registers as someone else: bob's credentials, alice's address.
    let mut mallory = SipUa::new("alice", "a.test", "bob-secret", a.sip, false);
    assert_eq!(mallory.register(600), 403, "{}", xa.log_text());

    // alice -> bob: 407, digest, then 202 once the stanza is on the stream.
    let sent = alice.message("bob@b.test", "hello bob");
    assert_eq!(sent.status, 202, "{}", xa.log_text());
    let got = bob.receive(200, WAIT).expect("bob's MESSAGE");
    assert_eq!(got.method.as_str(), "MESSAGE");
    assert_eq!(got.body, b"hello bob");
    let from = got.headers.from().unwrap();
    assert_eq!(from.uri().to_string(), "sip:alice@a.test");
    assert!(
        got.headers
            .content_type()
            .is_some_and(|c| c.starts_with("text/plain")),
        "{got:?}"
    );

    // 20,000 `<` are 80 KB once escaped: more than rustls takes in one
    // write, which used to cut the stanza and break the stream. It arrives
    // whole, and reaches bob whole: he is registered over TCP, where RFC
    // 3428's 1,300 bytes do not apply. The stream goes on.
    let big = "<".repeat(20_000);
    assert_eq!(alice.message("bob@b.test", &big).status, 202);
    let got = bob.receive(200, WAIT).expect("bob's big MESSAGE");
    assert_eq!(got.body, big.as_bytes());
    assert_eq!(alice.message("bob@b.test", "after the big one").status, 202);
    let got = bob
        .receive(200, WAIT)
        .expect("bob's MESSAGE after the big one");
    assert_eq!(got.body, b"after the big one");
    assert!(
        !xb.log_text().contains("not-well-formed"),
        "{}",
        xb.log_text()
    );

    // bob -> alice over the stream b.test now has, on both her devices.
    assert_eq!(bob.message("alice@a.test", "hi alice").status, 202);
    let got = alice.receive(200, WAIT).expect("alice's MESSAGE");
    assert_eq!(got.body, b"hi alice");
    assert_eq!(
        got.headers.from().unwrap().uri().to_string(),
        "sip:bob@b.test"
    );
    let got2 = alice2.receive(200, WAIT).expect("alice's second device");
    assert_eq!(got2.body, b"hi alice");
    assert_eq!(got2.headers.call_id().ok(), got.headers.call_id().ok());
    xa.wait_log("MESSAGE to alice@a.test forked to 2 contacts", WAIT);
    drop(alice2);

    // The 202 means "on the authenticated stream"; an XMPP error that
    // comes back later is logged by the sender's gateway, as SIP has no
    // way to take back a final response. An unknown user and an
    // unregistered one get the same service-unavailable (b.test lets
    // no one enumerate its accounts).
    assert_eq!(alice.message("nobody@b.test", "anyone?").status, 202);
    xa.wait_log("XMPP error service-unavailable", WAIT);
    xb.wait_log("nobody@b.test: no such account; service-unavailable", WAIT);
    assert_eq!(bob.register(0), 200);
    assert_eq!(alice.message("bob@b.test", "still there?").status, 202);
    xb.wait_log("bob@b.test: no SIP contact; service-unavailable", WAIT);
    // bob comes back on a new connection and leaves without unregistering:
    // his flow is gone, so he is unavailable too (not a server error).
    drop(bob);
    let mut bob = ua("bob", &b, true);
    assert_eq!(bob.register(600), 200);
    drop(bob);
    assert_eq!(alice.message("bob@b.test", "gone?").status, 202);
    xb.wait_log("answered 480", WAIT);
    let mut bob = ua("bob", &b, true);

    // a.test restarts: alice's binding comes back from the store, so bob
    // reaches her without her registering again.
    assert!(xa.terminate(), "{bin_a} did not exit cleanly");
    let mut xa = start(bin_a, &a);
    assert_eq!(bob.register(600), 200);
    let sent = bob.message("alice@a.test", "after the restart");
    assert_eq!(sent.status, 202, "{}\n{}", xb.log_text(), xa.log_text());
    let got = alice
        .receive(200, WAIT)
        .expect("alice's MESSAGE after restart");
    assert_eq!(got.body, b"after the restart");
    assert!(xa.terminate() && xb.terminate(), "unclean exit on SIGTERM");
}

#[test]
fn sip_users_chat_tokio_to_async_std() {
    chat("xfed", "xfed-async-std");
}

#[test]
fn sip_users_chat_async_std_to_tokio() {
    chat("xfed-async-std", "xfed");
}

/// Proxy mode: a.test sends every request for its users to `next_hop`
/// (played by a SIP agent standing for the domain's proxy) and accepts
/// requests only from `trusted` addresses; b.test runs the registrar.
fn proxy(bin_a: &str, bin_b: &str) {
    let (a, b) = deployments(&format!("proxy-{bin_a}-{bin_b}"));
    // The proxy sends as alice from 127.0.0.1, the only trusted address.
    let mut proxy = SipUa::new("alice", "a.test", "", a.sip, false);
    let hop = proxy.contact().replace("sip:alice@", "sip:");
    let path = a.dir.join("xfed.toml");
    let toml = std::fs::read_to_string(&path).unwrap().replace(
        "[sip]\nmode = \"registrar\"\n",
        &format!(
            "[sip]\nmode = \"proxy\"\nnext_hop = \"{hop}\"\ntrusted = [\"127.0.0.1\"]\ntrust_udp = true\n"
        ),
    );
    let toml = toml.replace(
        "[[sip.account]]\nuser = \"alice\"\npassword = \"alice-secret\"\n",
        "",
    );
    std::fs::write(&path, toml).unwrap();
    let mut xa = start(bin_a, &a);
    let mut xb = start(bin_b, &b);
    let mut bob = ua("bob", &b, true);
    assert_eq!(bob.register(600), 200, "{}", xb.log_text());

    // The proxy's MESSAGE for a remote user: no challenge (trusted), 202.
    let sent = proxy.message("bob@b.test", "via the proxy");
    assert_eq!(sent.status, 202, "{}", xa.log_text());
    let got = bob.receive(200, WAIT).expect("bob's MESSAGE");
    assert_eq!(got.body, b"via the proxy");
    assert_eq!(
        got.headers.from().unwrap().uri().to_string(),
        "sip:alice@a.test"
    );

    // bob -> alice@a.test goes to the next hop, not to a binding.
    assert_eq!(bob.message("alice@a.test", "to the proxy").status, 202);
    let got = proxy.receive(200, WAIT).expect("the proxy's MESSAGE");
    assert_eq!(got.uri.to_string(), "sip:alice@a.test");
    assert_eq!(got.body, b"to the proxy");
    assert_eq!(
        got.headers.from().unwrap().uri().to_string(),
        "sip:bob@b.test"
    );

    // No registrar in proxy mode, and nobody else is trusted.
    assert_eq!(proxy.register(600), 405, "{}", xa.log_text());
    let stranger = std::net::UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    stranger
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = format!(
        "MESSAGE sip:bob@b.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP {0};branch=z9hG4bK-stranger\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@a.test>;tag=s1\r\n\
         To: <sip:bob@b.test>\r\n\
         Call-ID: stranger-1\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Length: 2\r\n\r\nhi",
        stranger.local_addr().unwrap()
    );
    stranger.send_to(request.as_bytes(), a.sip).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = stranger.recv_from(&mut buf).expect("an answer");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    xa.wait_log("not a trusted peer in proxy mode", WAIT);
    assert!(xa.terminate() && xb.terminate(), "unclean exit on SIGTERM");
}

#[test]
fn proxy_mode_tokio_to_async_std() {
    proxy("xfed", "xfed-async-std");
}

#[test]
fn proxy_mode_async_std_to_tokio() {
    proxy("xfed-async-std", "xfed");
}
