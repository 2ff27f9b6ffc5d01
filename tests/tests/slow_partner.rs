//! A partner that reads slower than SIP users send (issue 11 item 5:
//! backpressure, never silent loss), on both runtimes: the scripted
//! partner remote.test stops reading the stream xfed opened while alice
//! (SIP over TCP) keeps writing to it. Once what waits for the stream
//! passes half its bound, alice's MESSAGEs get 503 with Retry-After
//! instead of 202, and xfed keeps the stream (it is not dropped for not
//! reading); when the partner reads again, every message that got a 202
//! arrives, and the next one gets a 202 again.

use std::time::Duration;

use xfed_tests::hostile::{start_with, DOMAIN};
use xfed_tests::s2s_peer::Partner;
use xfed_tests::sip_ua::SipUa;
use xfed_tests::{PartnerSpec, BINARIES};

const WAIT: Duration = Duration::from_secs(30);
/// Messages alice may send before the test gives up waiting for a 503.
const MOST: usize = 3000;

#[test]
fn a_slow_partner_gets_what_was_accepted_and_sip_hears_503() {
    for bin in BINARIES {
        let remote = Partner::start("remote.test", DOMAIN);
        let spec = PartnerSpec {
            domain: &remote.domain,
            connect: remote.addr.to_string(),
            tls: "not-supported",
            sasl: "not-supported",
            dialback: true,
        };
        // 64 KiB stanzas: 128 KiB may wait for one stream, congestion
        // from 64 KiB.
        let mut t = start_with(
            bin,
            "slow-partner",
            "max_stanza_size = \"64KiB\"\n",
            "max_message_size = \"64KiB\"\n",
            &[(spec, "federated")],
        );
        let mut alice = SipUa::new("alice", DOMAIN, "alice-secret", t.sip, true);
        assert_eq!(alice.register(300), 200);
        let to = "bob@remote.test";
        // The route up first, the partner reading.
        assert_eq!(
            alice.message(to, "hello").status,
            202,
            "{}",
            t.inst.log_text()
        );
        assert_eq!(remote.wait_for(1, WAIT, |e| e.name() == "message"), 1);

        remote.pause_reading(true);
        let body = "x".repeat(16 * 1024);
        let mut accepted = 1;
        let mut refused = None;
        for i in 0..MOST {
            let r = alice.message(to, &format!("{i} {body}"));
            match r.status {
                202 => accepted += 1,
                503 => {
                    refused = Some(r);
                    break;
                }
                other => panic!("message {i}: {other}\n{}", t.inst.log_text()),
            }
        }
        let refused =
            refused.unwrap_or_else(|| panic!("{MOST} messages and no 503\n{}", t.inst.log_text()));
        assert_eq!(refused.headers.get("Retry-After"), Some("5"), "{refused:?}");
        let log = t.inst.log_text();
        assert!(!log.contains("peer stopped reading"), "{log}");

        // The partner reads again: everything accepted arrives.
        remote.pause_reading(false);
        let got = remote.wait_for(accepted, WAIT, |e| e.name() == "message");
        assert_eq!(got, accepted, "{bin}: accepted {accepted}, delivered {got}");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            alice.message(to, "and again").status,
            202,
            "{}",
            t.inst.log_text()
        );
        println!("{bin}: {accepted} messages accepted and delivered, then 503 with Retry-After");
    }
}
