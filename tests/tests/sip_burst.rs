//! Issue 11: a burst of 2,000 XMPP messages to one SIP user, end to end
//! over loopback on both runtimes. bob@prosody.test (slixmpp, through
//! Debian's Prosody and s2s) sends them at once to alice@xfed.test, whom
//! sipp plays over TCP (registered with digest: xfed sends over her
//! flow). Every message must reach sipp, each body once, and bob must get
//! no error: xfed pipelines MESSAGEs over the TCP flow
//! (`sip.max_in_flight_per_user`) and, when alice's queue is half full,
//! stops reading Prosody's stream until it drains, instead of bouncing
//! with `resource-constraint` (42-63 % were bounced before).
//!
//! Under CI=true a missing Prosody, sipp or slixmpp fails the test;
//! elsewhere it prints why it skips.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use xfed_tests::free_port;
use xfed_tests::lab::ProsodyLab;
use xfed_tests::need;
use xfed_tests::prosody::Skip;
use xfed_tests::sipp::{self, Credentials, Sipp, SippOptions, Transport};
use xfed_tests::xmpp_client;

const BURST: usize = 2_000;

fn peers_installed() -> Result<(), Skip> {
    sipp::binary()?;
    xmpp_client::check_installed()?;
    Ok(())
}

/// The lab, alice's account a password offered MD5 first (sipp answers
/// only MD5 and reads the first challenge alone); `None`: a peer is
/// missing and the test skips.
fn lab(bin: &str, prosody_ip: u8) -> Option<ProsodyLab> {
    need!(peers_installed());
    let credentials = Credentials::Password {
        digest_algorithms: Some(vec!["MD5".into(), "SHA-256".into()]),
    };
    Some(need!(ProsodyLab::start_with(
        bin,
        &format!("sip-burst-{bin}"),
        prosody_ip,
        Duration::from_secs(300),
        &credentials
    )))
}

fn burst(bin: &str, prosody_ip: u8) {
    let Some(mut lab) = lab(bin, prosody_ip) else {
        return;
    };
    let mut o = SippOptions::new(
        "uas_register_receive.xml",
        lab.sip.sip_addr(),
        Transport::Tcp,
    )
    .oocsf("uas_receive_message.xml")
    .auth("alice", "alice-secret", "xfed.test")
    .key("user", "alice")
    .key("domain", "xfed.test")
    .key("contact_params", Transport::Tcp.contact_params())
    .key("expect_messages", &BURST.to_string())
    .timeout(Duration::from_secs(180));
    o.local.set_port(free_port());
    let mut uas = Sipp::start(o).expect("sipp (checked before)");
    lab.xfed_log(
        "registrar: alice@xfed.test has 1 binding(s)",
        Duration::from_secs(20),
    );

    let t0 = Instant::now();
    lab.bob.send_burst("alice@xfed.test", "burst-", BURST);
    let sent = t0.elapsed();
    let run = uas.wait(Duration::from_secs(200));
    let took = t0.elapsed();
    assert!(run.ok(), "{}\n{}", run.report(), lab.diagnostics());
    let bodies: Vec<&str> = run
        .received()
        .filter(|m| m.is_request("MESSAGE"))
        .map(|m| m.body())
        .collect();
    let distinct: HashSet<&str> = bodies.iter().copied().collect();
    let expected: HashSet<String> = (0..BURST).map(|n| format!("burst-{n}")).collect();
    let missing = expected
        .iter()
        .filter(|b| !distinct.contains(b.as_str()))
        .count();
    assert_eq!(missing, 0, "{missing} of {BURST} never reached sipp");

    // Errors come back over the same streams, in order: any bounce of the
    // burst arrives before the error for this one.
    let probe = lab.bob.send_chat("nobody@xfed.test", "last");
    let m = lab
        .bob
        .expect_reply("error for the probe", &probe, Duration::from_secs(30));
    assert!(m.is_error(), "{m:?}");
    let bounced: Vec<String> = lab
        .bob
        .received()
        .iter()
        .filter(|m| m.is_error() && m.id.as_deref().is_some_and(|id| id.starts_with("burst-")))
        .map(|m| format!("{:?}", m.error))
        .collect();
    let log = lab.xfed().log_text();
    let paused = log.matches("stream paused").count();
    println!(
        "{bin}: burst of {BURST} to one SIP user over TCP: sent by bob in {sent:?}, all at sipp \
         in {took:?} ({:.0} msg/s), {} bounced, {} MESSAGE(s) seen by sipp, stream paused {paused} time(s)",
        BURST as f64 / took.as_secs_f64(),
        bounced.len(),
        bodies.len(),
    );
    xfed_tests::load::figure(&format!("burst.{bin}.sent"), BURST as f64);
    xfed_tests::load::figure(&format!("burst.{bin}.delivered"), bodies.len() as f64);
    xfed_tests::load::figure(&format!("burst.{bin}.bounced"), bounced.len() as f64);
    assert!(
        bounced.is_empty(),
        "{} bounced: {:?}",
        bounced.len(),
        &bounced[..bounced.len().min(5)]
    );
}

#[test]
fn burst_to_one_sip_user_tokio() {
    burst("xfed", 111);
}

#[test]
fn burst_to_one_sip_user_async_std() {
    burst("xfed-async-std", 112);
}
