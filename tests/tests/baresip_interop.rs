//! A real SIP client through xfed (issue 10): Debian's baresip registers,
//! publishes and subscribes through xfed in one loopback test, on both
//! runtimes, with Debian's Prosody and a slixmpp client (bob@prosody.test)
//! as the XMPP side. baresip is alice@xfed.test, registered with digest at
//! xfed's registrar: a plain `password` account, with `[sip]
//! digest_algorithms = ["MD5"]` (libre 1.1.0 answers only MD5 and fails a
//! whole 401/407 in which any challenge names another algorithm, wherever
//! it comes: with `["MD5", "SHA-256"]` it logs "Register: Function not
//! implemented" and never registers); xfed and Prosody federate over s2s
//! as in `presence_interop.rs`.
//!
//! `baresip_registers_publishes_and_subscribes`:
//! - bob subscribes to alice@xfed.test (approved: prosody.test is a
//!   federated partner); baresip starts, REGISTERs (401 offering MD5, then
//!   200 to its MD5 answer) and PUBLISHes `open` (407, then 200): bob sees
//!   alice available.
//! - baresip's SUBSCRIBE to bob@prosody.test (407, then 200, NOTIFY
//!   `pending`) reaches bob as `subscribe` from alice's bare JID; baresip
//!   shows bob Unknown until bob answers `subscribed`, then Online.
//! - bob goes unavailable, busy (`dnd`) and available again: baresip shows
//!   him Offline, Busy (read from `<rpid:busy/>`) and Online.
//! - baresip refreshes its publication (no body, `SIP-If-Match`, at 90 % of
//!   `pubint` = 60 s): 200, and until its first, duplicate publication has
//!   expired (60 s after start) bob sees nothing new.
//! - `presence_offline` and `presence_online` (PUBLISHes with
//!   `SIP-If-Match`): bob sees alice unavailable, then available.
//! - baresip quits: its PUBLISH `Expires: 0` makes alice unavailable to
//!   bob.
//! - In baresip's SIP trace, every request it sent was answered 2xx, or
//!   challenged (401/407) and sent again; every NOTIFY it got it answered
//!   200; every challenge offered exactly `digest_algorithms`, and every
//!   answer was MD5 as alice.
//!
//! About 65 s per runtime (the refresh and the expiry). Under CI=true a missing baresip,
//! Prosody or slixmpp fails the test; elsewhere it prints why it skips.

use std::time::{Duration, Instant};

use xfed_core::registrar::digest::{Algorithm, Authorization, Challenge};
use xfed_core::sip::Message;
use xfed_tests::baresip::{self, Baresip, BaresipOptions, ContactStatus, Traced};
use xfed_tests::lab::{ProsodyLab, ALICE};
use xfed_tests::need;
use xfed_tests::prosody::Skip;
use xfed_tests::sipp::Credentials;
use xfed_tests::xmpp_client::{self, OutgoingPresence, PresenceReceived};

const WAIT: Duration = Duration::from_secs(20);
/// A NOTIFY may wait for the rate limit (5 s) on top of the network.
const NOTIFY_WAIT: Duration = Duration::from_secs(30);
const BOB_URI: &str = "sip:bob@prosody.test";
/// baresip's PUBLISH interval: the shortest xfed grants (60 s), so that
/// the refresh at 90 % comes within the test.
const PUBINT: u32 = 60;

type Lab = ProsodyLab;

/// Every peer the test needs, or why not.
fn peers_installed() -> Result<(), Skip> {
    baresip::binary()?;
    baresip::module_dir()?;
    xmpp_client::check_installed()?;
    Ok(())
}

/// `[sip] digest_algorithms`: MD5 alone, all libre 1.1.0 takes.
const DIGEST_ALGORITHMS: [&str; 1] = ["MD5"];

/// The lab (`ProsodyLab`) with alice's account a plain password and
/// [`DIGEST_ALGORITHMS`], bob answering subscription requests himself.
/// `None`: a peer is missing and the test skips.
fn lab(bin: &str, prosody_ip: u8) -> Option<Lab> {
    need!(peers_installed());
    let name = format!("baresip-{bin}");
    let credentials = Credentials::Password {
        digest_algorithms: Some(DIGEST_ALGORITHMS.map(str::to_owned).to_vec()),
    };
    let mut lab = need!(ProsodyLab::start_with(
        bin,
        &name,
        prosody_ip,
        Duration::from_secs(300),
        &credentials
    ));
    let toml = std::fs::read_to_string(lab.dir.join("xfed.toml")).expect("xfed.toml");
    assert!(
        toml.contains("digest_algorithms = [\"MD5\"]\n")
            && toml.contains("password = ")
            && !toml.contains("ha1 = "),
        "alice is a password account, MD5 offered:\n{toml}"
    );
    lab.bob.fetch_roster();
    lab.bob.auto_subscriptions(false);
    Some(lab)
}

/// Waits for a presence from alice to bob after the first `skip` ones.
fn bob_expects(
    lab: &mut Lab,
    baresip: &Baresip,
    what: &str,
    skip: usize,
    pred: impl Fn(&PresenceReceived) -> bool,
) -> (usize, PresenceReceived) {
    match lab
        .bob
        .wait_presence(skip, WAIT, |p| p.from_bare() == ALICE && pred(p))
    {
        Some(found) => found,
        None => panic!(
            "bob got no {what} from alice within {WAIT:?}\n{}\n{}",
            lab.diagnostics(),
            baresip.diagnostics()
        ),
    }
}

/// Waits until baresip shows bob `want`.
fn baresip_shows(lab: &mut Lab, baresip: &mut Baresip, want: ContactStatus) -> Duration {
    baresip
        .wait_contact_status(BOB_URI, want, NOTIFY_WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", lab.diagnostics(), baresip.diagnostics()))
}

/// The responses baresip got to its requests of `method`, in order.
fn responses_to<'a>(trace: &'a [Traced], method: &str) -> Vec<&'a Traced> {
    trace
        .iter()
        .filter(|t| !t.sent && t.cseq().is_some_and(|(_, m)| m == method))
        .collect()
}

/// The request baresip sent that `response` answers.
fn request_of<'a>(trace: &'a [Traced], response: &Traced) -> Option<&'a Traced> {
    trace.iter().find(|t| {
        t.sent
            && matches!(t.message, Message::Request(_))
            && t.call_id() == response.call_id()
            && t.cseq() == response.cseq()
    })
}

/// Checks the whole SIP conversation: each request baresip sent got a
/// final answer that is 2xx, or a challenge followed by the same request
/// again (same Call-ID, next CSeq) that got one; each request xfed sent
/// baresip got 200.
fn check_trace(trace: &[Traced]) -> Result<(), String> {
    let show = |t: &Traced| format!("{} {:?}", t.route, t.message);
    for req in trace
        .iter()
        .filter(|t| matches!(t.message, Message::Request(_)))
    {
        let answers: Vec<u16> = trace
            .iter()
            .filter(|t| {
                t.sent != req.sent && t.call_id() == req.call_id() && t.cseq() == req.cseq()
            })
            .filter_map(Traced::status)
            .filter(|s| *s >= 200)
            .collect();
        let Some(&status) = answers.first() else {
            return Err(format!("no final answer to {}", show(req)));
        };
        if !req.sent {
            if status != 200 {
                return Err(format!("baresip answered {status} to {}", show(req)));
            }
            continue;
        }
        match status {
            200..=299 => {}
            401 | 407 => {
                let (seq, method) = req.cseq().unwrap_or_default();
                let again = trace.iter().any(|t| {
                    t.sent
                        && t.call_id() == req.call_id()
                        && t.cseq() == Some((seq + 1, method.clone()))
                });
                if !again {
                    return Err(format!("{status} not answered by baresip: {}", show(req)));
                }
            }
            _ => return Err(format!("xfed answered {status} to {}", show(req))),
        }
    }
    Ok(())
}

/// Every digest exchange in the trace: each 401/407 baresip got offers
/// [`DIGEST_ALGORITHMS`] in that order, and each credential it sent is
/// MD5 (libre writes no `algorithm`, which means MD5) for alice. Returns
/// how many challenges it got for REGISTER and for the other methods.
fn check_digest(trace: &[Traced]) -> Result<(usize, usize), String> {
    let want: Vec<Algorithm> = DIGEST_ALGORITHMS
        .iter()
        .filter_map(|n| Algorithm::from_name(n))
        .collect();
    let (mut register, mut others) = (0, 0);
    for t in trace.iter().filter(|t| !t.sent) {
        let header = match t.status() {
            Some(401) => "WWW-Authenticate",
            Some(407) => "Proxy-Authenticate",
            _ => continue,
        };
        let offered: Vec<Algorithm> = t
            .message
            .headers()
            .get_all(header)
            .map(|v| Challenge::parse(v).map(|c| c.algorithm))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("unreadable {header} in {}: {e}", t.route))?;
        if offered != want {
            return Err(format!("{header} offered {offered:?}, not {want:?}: {t:?}"));
        }
        match t.cseq() {
            Some((_, m)) if m == "REGISTER" => register += 1,
            _ => others += 1,
        }
    }
    for t in trace.iter().filter(|t| t.sent) {
        let headers = t.message.headers();
        for v in headers
            .get_all("Authorization")
            .chain(headers.get_all("Proxy-Authorization"))
        {
            let a = Authorization::parse(v).map_err(|e| format!("{e}: {v}"))?;
            let md5 = a
                .algorithm
                .as_deref()
                .is_none_or(|n| Algorithm::from_name(n) == Some(Algorithm::Md5));
            if !md5 || a.username != "alice" {
                return Err(format!("baresip answered {v}"));
            }
        }
    }
    Ok((register, others))
}

fn baresip_registers_publishes_and_subscribes(bin: &str, prosody_ip: u8) {
    let Some(mut lab) = lab(bin, prosody_ip) else {
        return;
    };
    let t0 = Instant::now();

    // bob watches alice before her phone is on.
    lab.bob.presence_to(ALICE, "subscribe");
    let found = lab.bob.wait_presence(0, WAIT, |p| {
        p.from_bare() == ALICE && p.kind().ends_with("subscribed")
    });
    let Some((i, p)) = found else {
        panic!("bob's subscribe unanswered\n{}", lab.diagnostics());
    };
    assert_eq!(p.kind(), "subscribed", "{p:?}\n{}", lab.diagnostics());

    // alice's phone: REGISTER, PUBLISH open, SUBSCRIBE to bob.
    let options = BaresipOptions::new("alice", "xfed.test", "alice-secret", lab.sip.sip_addr())
        .contact(BOB_URI)
        .pubint(PUBINT);
    let started = Instant::now();
    let mut phone = need_baresip(Baresip::start(options));
    lab.xfed_log("registrar: alice@xfed.test has 1 binding(s)", WAIT);
    phone
        .wait_log("200 OK () [1 binding]", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.diagnostics()));
    // It registered with the password account: challenged with MD5,
    // answered MD5.
    let trace = phone.sip_trace();
    let registered = responses_to(&trace, "REGISTER")
        .into_iter()
        .filter_map(Traced::status)
        .collect::<Vec<_>>();
    assert_eq!(
        registered,
        [401, 200],
        "REGISTER: challenged, then bound\n{}",
        phone.diagnostics()
    );
    match check_digest(&trace) {
        Ok((1, _)) => {}
        Ok(n) => panic!("{n:?} challenges\n{}", phone.diagnostics()),
        Err(e) => panic!("{e}\n{}", phone.diagnostics()),
    }
    println!(
        "{bin}: baresip registered with a password account (401 offering {DIGEST_ALGORITHMS:?}, MD5 answer, 200) in {:?}",
        started.elapsed()
    );
    let (_, p) = bob_expects(&mut lab, &phone, "availability", i + 1, |p| {
        p.kind() == "available"
    });
    assert!(
        p.show.is_none() && p.status.is_none(),
        "baresip publishes plain open: {p:?}"
    );
    println!(
        "{bin}: baresip started -> bob sees alice available in {:?}",
        started.elapsed()
    );

    // baresip's SUBSCRIBE reaches bob as a subscription request.
    let t1 = Instant::now();
    let (_, p) = lab
        .bob
        .expect_presence("subscribe from alice", 0, WAIT, |p| {
            p.from_bare() == ALICE && p.kind() == "subscribe"
        });
    assert_eq!(p.from.as_deref(), Some(ALICE), "from the bare JID: {p:?}");
    let shown = phone
        .contact_status(BOB_URI)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shown, ContactStatus::Unknown, "before bob says yes");
    lab.bob.presence_to(ALICE, "subscribed");
    baresip_shows(&mut lab, &mut phone, ContactStatus::Online);
    println!(
        "{bin}: SUBSCRIBE -> baresip shows bob Online in {:?}",
        t1.elapsed()
    );

    // bob comes and goes; baresip follows.
    let t2 = Instant::now();
    lab.bob.send_presence(&OutgoingPresence {
        presence_type: Some("unavailable".into()),
        ..OutgoingPresence::default()
    });
    baresip_shows(&mut lab, &mut phone, ContactStatus::Offline);
    lab.bob.send_presence(&OutgoingPresence {
        show: Some("dnd".into()),
        status: Some("In a meeting".into()),
        ..OutgoingPresence::default()
    });
    baresip_shows(&mut lab, &mut phone, ContactStatus::Busy);
    lab.bob.send_presence(&OutgoingPresence::default());
    baresip_shows(&mut lab, &mut phone, ContactStatus::Online);
    println!(
        "{bin}: bob unavailable, dnd, available -> baresip Offline, Busy, Online in {:?}",
        t2.elapsed()
    );
    phone
        .wait_log(
            "<sip:bob@prosody.test> changed status from Busy to Online",
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mark = lab.bob.presences().len();

    // The publication's refresh: no body, SIP-If-Match, at 90 % of PUBINT.
    let (req, resp) = wait_refresh(
        &phone,
        started + Duration::from_secs(u64::from(PUBINT) + 20),
    );
    let if_match = req.message.headers().get("SIP-If-Match").map(str::to_owned);
    assert!(if_match.is_some(), "a refresh names its entity: {req:?}");
    assert_eq!(resp.status(), Some(200), "the refresh: {resp:?}");
    let trace = phone.sip_trace();
    let etag_given = responses_to(&trace, "PUBLISH")
        .into_iter()
        .filter(|r| r.status() == Some(200))
        .filter(|r| request_of(&trace, r).is_some_and(|q| !q.message.body().is_empty()))
        .filter_map(|r| r.message.headers().get("SIP-ETag").map(str::to_owned))
        .next_back();
    assert_eq!(
        if_match, etag_given,
        "the refresh names the entity-tag of the last PUBLISH"
    );
    println!(
        "{bin}: PUBLISH refresh answered 200 at {:?}",
        started.elapsed()
    );
    // baresip PUBLISHes twice at start (a timer and the REGISTER's
    // success), both initial, and keeps the second entity-tag: the first
    // publication lives until it expires (PUBINT), unrefreshed. Neither
    // the refresh nor that expiry changes what bob sees.
    let quiet_until = started + Duration::from_secs(u64::from(PUBINT) + 3);
    std::thread::sleep(quiet_until.saturating_duration_since(Instant::now()));
    let news: Vec<PresenceReceived> = lab.bob.presences()[mark..]
        .iter()
        .filter(|p| p.from_bare() == ALICE && !p.kind().contains("subscribe"))
        .cloned()
        .collect();
    assert!(
        news.is_empty(),
        "bob saw alice again without a change: {news:?}\n{}",
        phone.diagnostics()
    );

    // alice goes offline and online from the phone.
    let t3 = Instant::now();
    phone
        .command("presence_offline", None)
        .unwrap_or_else(|e| panic!("{e}"));
    let (i, _) = bob_expects(&mut lab, &phone, "unavailable", mark, |p| {
        p.kind() == "unavailable"
    });
    phone
        .command("presence_online", None)
        .unwrap_or_else(|e| panic!("{e}"));
    let (i, p) = bob_expects(&mut lab, &phone, "available again", i + 1, |p| {
        !p.kind().contains("subscribe")
    });
    assert_eq!(p.kind(), "available", "{p:?}\n{}", phone.diagnostics());
    println!(
        "{bin}: presence_offline, presence_online -> bob in {:?}",
        t3.elapsed()
    );

    // The phone is switched off: its PUBLISH Expires 0 ends alice's
    // presence.
    let t4 = Instant::now();
    assert!(
        phone.quit(Duration::from_secs(10)),
        "baresip did not quit\n{}",
        phone.diagnostics()
    );
    let (_, p) = bob_expects(&mut lab, &phone, "unavailable at quit", i + 1, |p| {
        !p.kind().contains("subscribe")
    });
    assert_eq!(p.kind(), "unavailable", "{p:?}\n{}", phone.diagnostics());
    println!(
        "{bin}: quit -> bob sees alice unavailable in {:?}",
        t4.elapsed()
    );

    let trace = phone.sip_trace();
    let removal = trace.iter().find(|t| {
        t.sent && t.is_request("PUBLISH") && t.message.headers().get("Expires") == Some("0")
    });
    assert!(removal.is_some(), "no PUBLISH Expires: 0 at quit");
    if let Err(e) = check_trace(&trace) {
        panic!("{e}\n{}", phone.diagnostics());
    }
    let (register_challenges, other_challenges) =
        check_digest(&trace).unwrap_or_else(|e| panic!("{e}\n{}", phone.diagnostics()));
    assert!(
        other_challenges > 0,
        "PUBLISH and SUBSCRIBE were challenged too\n{}",
        phone.diagnostics()
    );
    let notifies = trace
        .iter()
        .filter(|t| !t.sent && t.is_request("NOTIFY"))
        .count();
    println!(
        "{bin}: {} SIP messages, {notifies} NOTIFYs, all answered; {register_challenges} REGISTER and {other_challenges} other challenges, all offering {DIGEST_ALGORITHMS:?} and answered MD5; in {:?}",
        trace.len(),
        t0.elapsed()
    );
}

/// Waits (until `deadline`) for baresip's bodyless PUBLISH refresh and
/// its final answer.
fn wait_refresh(phone: &Baresip, deadline: Instant) -> (Traced, Traced) {
    loop {
        let trace = phone.sip_trace();
        let found = trace
            .iter()
            .filter(|t| t.sent && t.is_request("PUBLISH") && t.message.body().is_empty())
            .filter(|t| t.message.headers().get("Expires") != Some("0"))
            .find_map(|req| {
                responses_to(&trace, "PUBLISH")
                    .into_iter()
                    .find(|r| {
                        r.call_id() == req.call_id()
                            && r.cseq() == req.cseq()
                            && r.status() != Some(407)
                    })
                    .map(|r| (req.clone(), r.clone()))
            });
        if let Some(found) = found {
            return found;
        }
        if Instant::now() > deadline {
            panic!(
                "no answered PUBLISH refresh from baresip\n{}",
                phone.diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `require_peer` for baresip inside the test (the lab already checked
/// that it is installed).
fn need_baresip(r: Result<Baresip, Skip>) -> Baresip {
    r.unwrap_or_else(|Skip(why)| panic!("baresip: {why}"))
}

#[test]
fn baresip_registers_publishes_and_subscribes_tokio() {
    baresip_registers_publishes_and_subscribes("xfed", 75);
}

#[test]
fn baresip_registers_publishes_and_subscribes_async_std() {
    baresip_registers_publishes_and_subscribes("xfed-async-std", 76);
}
