//! Non-INVITE transactions on a simulated clock: Timer E's schedule, F's
//! timeout, K and J, provisional responses, retransmission absorption,
//! RFC 4320's rules, and the table's matching.

use std::time::{Duration, Instant};

use xfed_core::rng::Rng;
use xfed_core::sip::{
    new_branch, new_call_id, new_tag, ClientTransaction, Host, Incoming, Method, Output, Request,
    Response, ServerTransaction, State, Timers, TransactionError, TransactionTable, Uri,
};

fn request(method: Method, branch: &str, transport: &str) -> Request {
    let mut r = Request::new(
        method.clone(),
        Uri::sip(Some("bob"), Host::parse("b.test").unwrap()),
    );
    let h = &mut r.headers;
    h.push(
        "Via",
        format!("SIP/2.0/{transport} gw.test:5060;branch={branch}"),
    );
    h.push("Max-Forwards", "70");
    h.push("From", "<sip:alice@a.test>;tag=f1");
    h.push("To", "<sip:bob@b.test>");
    h.push("Call-ID", "call-1");
    h.push("CSeq", format!("1 {method}"));
    r
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Drains a client transaction's outputs as (ms since start, output kind).
fn drain_client(tx: &mut ClientTransaction, t0: Instant, now: Instant) -> Vec<(u128, String)> {
    std::iter::from_fn(|| tx.poll_output())
        .map(|o| (ms(now - t0), kind(&o)))
        .collect()
}

fn kind(o: &Output) -> String {
    match o {
        Output::Transmit(_) => "transmit".into(),
        Output::Provisional(r) => format!("provisional {}", r.status),
        Output::Final(r) => format!("final {}", r.status),
        Output::Timeout => "timeout".into(),
        Output::TransportError => "transport error".into(),
        Output::Terminated => "terminated".into(),
    }
}

/// Runs a client transaction's timers until it ends or `until` passes,
/// delivering `responses` at their times.
fn run_client(
    tx: &mut ClientTransaction,
    t0: Instant,
    until: Duration,
    responses: Vec<(Duration, Response)>,
) -> Vec<(u128, String)> {
    let mut log = drain_client(tx, t0, t0);
    let mut responses = std::collections::VecDeque::from(responses);
    loop {
        let timer = tx.poll_timeout();
        let next = responses.front().map(|(d, _)| t0 + *d);
        match (timer, next) {
            (_, Some(r)) if timer.is_none_or(|t| r < t) => {
                let (_, resp) = responses.pop_front().unwrap();
                tx.handle_response(resp, r);
                log.extend(drain_client(tx, t0, r));
            }
            (Some(t), _) if t - t0 <= until => {
                tx.handle_timeout(t);
                log.extend(drain_client(tx, t0, t));
            }
            _ => return log,
        }
    }
}

#[test]
fn udp_client_retransmits_on_e_and_times_out_on_f() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "UDP");
    let mut tx = ClientTransaction::new(&req, false, Timers::default(), t0).unwrap();
    let log = run_client(&mut tx, t0, Duration::from_secs(60), vec![]);
    let sends: Vec<u128> = log
        .iter()
        .filter(|(_, k)| k == "transmit")
        .map(|(t, _)| *t)
        .collect();
    // 0, then intervals 0.5, 1, 2, 4, 4, 4...
    assert_eq!(
        sends,
        [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    let rest: Vec<_> = log.iter().filter(|(_, k)| k != "transmit").collect();
    assert_eq!(
        rest,
        [
            &(32000, "timeout".to_owned()),
            &(32000, "terminated".to_owned())
        ]
    );
    assert_eq!(tx.state(), State::Terminated);
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn every_transmission_is_the_same_request() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "UDP");
    let mut tx = ClientTransaction::new(&req, false, Timers::default(), t0).unwrap();
    let mut sent = Vec::new();
    for _ in 0..4 {
        while let Some(o) = tx.poll_output() {
            if let Output::Transmit(b) = o {
                sent.push(b);
            }
        }
        tx.handle_timeout(tx.poll_timeout().unwrap());
    }
    assert!(sent.len() >= 4);
    assert!(sent.iter().all(|b| *b == req.to_bytes()));
}

#[test]
fn tcp_client_never_retransmits() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "TCP");
    let mut tx = ClientTransaction::new(&req, true, Timers::default(), t0).unwrap();
    assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    let log = run_client(&mut tx, t0, Duration::from_secs(60), vec![]);
    assert_eq!(
        log,
        [
            (0, "transmit".to_owned()),
            (32000, "timeout".to_owned()),
            (32000, "terminated".to_owned())
        ]
    );
}

fn answer(req: &Request, status: u16) -> Response {
    req.response(status, "totag")
}

#[test]
fn provisional_stops_doubling_and_final_completes() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "UDP");
    let mut tx = ClientTransaction::new(&req, false, Timers::default(), t0).unwrap();
    // 100 at 2 s (after retransmissions at 0.5 and 1.5; E due at 3.5),
    // 200 at 16 s, a retransmitted 200 at 17 s.
    let secs = Duration::from_secs;
    let log = run_client(
        &mut tx,
        t0,
        secs(60),
        vec![
            (secs(2), answer(&req, 100)),
            (secs(16), answer(&req, 200)),
            (secs(17), answer(&req, 200)),
        ],
    );
    let pretty: Vec<(u128, &str)> = log.iter().map(|(t, k)| (*t, k.as_str())).collect();
    assert_eq!(
        pretty,
        [
            (0, "transmit"),
            (500, "transmit"),
            (1500, "transmit"),
            (2000, "provisional 100"),
            // E stops doubling: 3.5 s, then every T2.
            (3500, "transmit"),
            (7500, "transmit"),
            (11500, "transmit"),
            (15500, "transmit"),
            (16000, "final 200"),
            // K = T4 after the final response at 16 s; the retransmitted
            // 200 at 17 s was absorbed.
            (21000, "terminated"),
        ]
    );
}

#[test]
fn provisional_in_trying_makes_e_t2_after_its_pending_firing() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "UDP");
    let mut tx = ClientTransaction::new(&req, false, Timers::default(), t0).unwrap();
    assert!(matches!(tx.poll_output(), Some(Output::Transmit(_))));
    let t = t0 + Duration::from_millis(100);
    assert!(tx.handle_response(answer(&req, 100), t));
    assert!(matches!(tx.poll_output(), Some(Output::Provisional(_))));
    assert_eq!(tx.state(), State::Proceeding);
    // E still fires at 0.5 s, then every T2.
    let mut sends = Vec::new();
    for _ in 0..4 {
        let t = tx.poll_timeout().unwrap();
        tx.handle_timeout(t);
        while let Some(o) = tx.poll_output() {
            if matches!(o, Output::Transmit(_)) {
                sends.push(ms(t - t0));
            }
        }
    }
    assert_eq!(sends, [500, 4500, 8500, 12500]);
}

#[test]
fn tcp_final_terminates_at_once_and_k_is_zero() {
    let t0 = Instant::now();
    let req = request(Method::Subscribe, "z9hG4bK9", "TCP");
    let mut tx = ClientTransaction::new(&req, true, Timers::default(), t0).unwrap();
    tx.poll_output();
    assert!(tx.handle_response(answer(&req, 202), t0 + Duration::from_secs(1)));
    let out: Vec<String> = std::iter::from_fn(|| tx.poll_output())
        .map(|o| kind(&o))
        .collect();
    assert_eq!(out, ["final 202", "terminated"]);
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn udp_k_is_t4() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "UDP");
    let mut tx = ClientTransaction::new(&req, false, Timers::default(), t0).unwrap();
    let t = t0 + Duration::from_millis(200);
    tx.handle_response(answer(&req, 486), t);
    assert_eq!(tx.poll_timeout(), Some(t + Duration::from_secs(5)));
    tx.handle_timeout(t + Duration::from_millis(4999));
    assert_eq!(tx.state(), State::Completed);
    tx.handle_timeout(t + Duration::from_secs(5));
    assert_eq!(tx.state(), State::Terminated);
}

#[test]
fn responses_of_other_transactions_are_refused() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "UDP");
    let mut tx = ClientTransaction::new(&req, false, Timers::default(), t0).unwrap();
    let other_branch = answer(&request(Method::Message, "z9hG4bK2", "UDP"), 200);
    assert!(!tx.handle_response(other_branch, t0));
    let other_method = answer(&request(Method::Options, "z9hG4bK1", "UDP"), 200);
    assert!(!tx.handle_response(other_method, t0));
    assert_eq!(tx.state(), State::Trying);
}

#[test]
fn transport_errors_end_transactions() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "TCP");
    let mut tx = ClientTransaction::new(&req, true, Timers::default(), t0).unwrap();
    tx.poll_output();
    tx.handle_transport_error();
    let out: Vec<String> = std::iter::from_fn(|| tx.poll_output())
        .map(|o| kind(&o))
        .collect();
    assert_eq!(out, ["transport error", "terminated"]);
    let mut s = ServerTransaction::new(&req, true, Timers::default(), t0).unwrap();
    s.handle_transport_error();
    assert!(s.is_terminated());
}

#[test]
fn creation_errors() {
    let t0 = Instant::now();
    let t = Timers::default();
    let invite = request(Method::Invite, "z9hG4bK1", "UDP");
    assert_eq!(
        ClientTransaction::new(&invite, false, t, t0).unwrap_err(),
        TransactionError::Invite
    );
    let old = request(Method::Message, "1234", "UDP");
    assert_eq!(
        ClientTransaction::new(&old, false, t, t0).unwrap_err(),
        TransactionError::NoBranch
    );
    let mut no_via = request(Method::Message, "z9hG4bK1", "UDP");
    no_via.headers.remove("Via");
    assert!(matches!(
        ClientTransaction::new(&no_via, false, t, t0),
        Err(TransactionError::Header(_))
    ));
}

fn drain_server(tx: &mut ServerTransaction) -> Vec<Output> {
    std::iter::from_fn(|| tx.poll_output()).collect()
}

#[test]
fn udp_server_absorbs_retransmissions_and_j_is_64_t1() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "UDP");
    let mut tx = ServerTransaction::new(&req, false, Timers::default(), t0).unwrap();
    // Trying: a retransmission is absorbed.
    tx.handle_request();
    assert!(drain_server(&mut tx).is_empty());
    let ok = answer(&req, 202);
    let t1 = t0 + Duration::from_millis(300);
    tx.respond(ok.clone(), t1).unwrap();
    assert_eq!(drain_server(&mut tx), [Output::Transmit(ok.to_bytes())]);
    assert_eq!(tx.state(), State::Completed);
    // Completed: each retransmission gets the final response again.
    for _ in 0..3 {
        tx.handle_request();
        assert_eq!(drain_server(&mut tx), [Output::Transmit(ok.to_bytes())]);
    }
    // Another final response from the TU is refused.
    assert_eq!(
        tx.respond(answer(&req, 500), t1),
        Err(TransactionError::Completed)
    );
    assert_eq!(tx.poll_timeout(), Some(t1 + Duration::from_secs(32)));
    tx.handle_timeout(t1 + Duration::from_millis(31999));
    assert_eq!(tx.state(), State::Completed);
    tx.handle_timeout(t1 + Duration::from_secs(32));
    assert_eq!(drain_server(&mut tx), [Output::Terminated]);
    tx.handle_request();
    assert!(drain_server(&mut tx).is_empty());
}

#[test]
fn tcp_server_j_is_zero() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "TCP");
    let mut tx = ServerTransaction::new(&req, true, Timers::default(), t0).unwrap();
    let ok = answer(&req, 200);
    tx.respond(ok.clone(), t0).unwrap();
    assert_eq!(
        drain_server(&mut tx),
        [Output::Transmit(ok.to_bytes()), Output::Terminated]
    );
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn rfc4320_trying_over_udp() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "UDP");
    let mut tx = ServerTransaction::new(&req, false, Timers::default(), t0).unwrap();
    // Only 100 among provisionals.
    assert_eq!(
        tx.respond(answer(&req, 180), t0),
        Err(TransactionError::BadStatus(180))
    );
    // A 100 before E would reach T2 is held back.
    tx.respond(answer(&req, 100), t0 + Duration::from_secs(1))
        .unwrap();
    assert!(drain_server(&mut tx).is_empty());
    assert_eq!(tx.state(), State::Trying);
    // At 3.5 s the transaction sends its own 100, without a To tag.
    assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_millis(3500)));
    tx.handle_timeout(t0 + Duration::from_millis(3500));
    let out = drain_server(&mut tx);
    let [Output::Transmit(bytes)] = &out[..] else {
        panic!("{out:?}")
    };
    let text = String::from_utf8_lossy(bytes);
    assert!(text.starts_with("SIP/2.0 100 Trying\r\n"), "{text}");
    assert!(text.contains("To: <sip:bob@b.test>\r\n"));
    assert_eq!(tx.state(), State::Proceeding);
    // Proceeding: retransmissions get the 100 again.
    tx.handle_request();
    assert_eq!(drain_server(&mut tx), [Output::Transmit(bytes.clone())]);
}

#[test]
fn rfc4320_trying_over_tcp_is_allowed_at_once() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "TCP");
    let mut tx = ServerTransaction::new(&req, true, Timers::default(), t0).unwrap();
    tx.respond(answer(&req, 100), t0).unwrap();
    assert_eq!(drain_server(&mut tx).len(), 1);
    assert_eq!(tx.state(), State::Proceeding);
}

#[test]
fn rfc4320_no_408_from_a_server_transaction() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "UDP");
    let mut tx = ServerTransaction::new(&req, false, Timers::default(), t0).unwrap();
    tx.respond(answer(&req, 408), t0 + Duration::from_secs(1))
        .unwrap();
    assert!(drain_server(&mut tx).is_empty(), "408 must not be sent");
    assert_eq!(tx.state(), State::Completed);
    tx.handle_request();
    assert!(drain_server(&mut tx).is_empty(), "retransmissions absorbed");
    tx.handle_timeout(t0 + Duration::from_secs(33));
    assert_eq!(drain_server(&mut tx), [Output::Terminated]);
}

#[test]
fn a_tu_that_never_answers_releases_the_transaction() {
    let t0 = Instant::now();
    let req = request(Method::Message, "z9hG4bK1", "TCP");
    let mut tx = ServerTransaction::new(&req, true, Timers::default(), t0).unwrap();
    let mut log = Vec::new();
    while let Some(t) = tx.poll_timeout() {
        tx.handle_timeout(t);
        log.extend(
            drain_server(&mut tx)
                .into_iter()
                .map(|o| (ms(t - t0), kind(&o))),
        );
    }
    assert_eq!(
        log,
        [
            (3500, "transmit".to_owned()),
            (32000, "terminated".to_owned())
        ]
    );
}

#[test]
fn table_matches_and_merges_timers() {
    let t0 = Instant::now();
    let mut rng = Rng::new([3; 32]);
    let mut table = TransactionTable::new(Timers::default(), 100);
    // Three outgoing MESSAGEs over UDP, one over TCP.
    let mut reqs = Vec::new();
    for i in 0..4 {
        let mut r = request(
            Method::Message,
            &new_branch(&mut rng),
            if i == 3 { "TCP" } else { "UDP" },
        );
        r.headers.set("Call-ID", new_call_id(&mut rng));
        r.headers.set(
            "From",
            format!("<sip:alice@a.test>;tag={}", new_tag(&mut rng)),
        );
        let id = table
            .start_client(&r, i == 3, t0 + Duration::from_millis(i * 10))
            .unwrap();
        reqs.push((id, r));
    }
    assert_eq!(
        table.start_client(&reqs[0].1, false, t0),
        Err(TransactionError::Duplicate)
    );
    let first: Vec<_> = std::iter::from_fn(|| table.poll_output()).collect();
    assert_eq!(first.len(), 4);
    assert!(first.iter().all(|(_, o)| matches!(o, Output::Transmit(_))));
    assert_eq!(table.len(), 4);
    assert_eq!(table.poll_timeout(), Some(t0 + Duration::from_millis(500)));

    // A stray response (no such branch) matches nothing.
    let stray = answer(&request(Method::Message, "z9hG4bKnope", "UDP"), 200);
    assert_eq!(table.handle_response(stray, t0), None);
    // The second request's 200 completes it.
    let (id1, r1) = &reqs[1];
    assert_eq!(
        table.handle_response(answer(r1, 200), t0 + Duration::from_millis(100)),
        Some(*id1)
    );
    assert!(matches!(table.poll_output(), Some((id, Output::Final(_))) if id == *id1));
    // The TCP one terminates at once on its final response.
    let (id3, r3) = &reqs[3];
    table.handle_response(answer(r3, 404), t0 + Duration::from_millis(100));
    let out: Vec<_> = std::iter::from_fn(|| table.poll_output()).collect();
    assert_eq!(out.len(), 2);
    assert!(matches!(out[1], (id, Output::Terminated) if id == *id3));
    assert_eq!(table.len(), 3);

    // Run the clock: retransmissions of 0 and 2 only, K ends 1, F ends 0 and 2.
    let mut now = t0;
    let mut log = Vec::new();
    while let Some(t) = table.poll_timeout() {
        assert!(t >= now);
        now = t;
        table.handle_timeout(now);
        log.extend(std::iter::from_fn(|| table.poll_output()).map(|(id, o)| (id, kind(&o))));
    }
    assert!(table.is_empty());
    let count = |id, k: &str| log.iter().filter(|(i, x)| *i == id && x == k).count();
    assert_eq!(count(reqs[0].0, "transmit"), 10);
    assert_eq!(count(reqs[2].0, "transmit"), 10);
    assert_eq!(count(reqs[1].0, "transmit"), 0);
    assert_eq!(count(reqs[0].0, "timeout"), 1);
    assert_eq!(count(reqs[1].0, "timeout"), 0);
    assert_eq!(count(reqs[1].0, "terminated"), 1);
}

#[test]
fn table_server_side() {
    let t0 = Instant::now();
    let mut table = TransactionTable::new(Timers::default(), 100);
    let req = request(Method::Message, "z9hG4bKabc", "UDP");
    let Ok(Incoming::New(id, got)) = table.handle_request(req.clone(), false, t0) else {
        panic!("not new")
    };
    assert_eq!(got, req);
    // The same request again is a retransmission.
    assert!(matches!(
        table.handle_request(req.clone(), false, t0),
        Ok(Incoming::Retransmission(i)) if i == id
    ));
    // Same branch from another sent-by, or another method: new transactions.
    let mut other = req.clone();
    other
        .headers
        .set("Via", "SIP/2.0/UDP elsewhere.test:5060;branch=z9hG4bKabc");
    assert!(matches!(
        table.handle_request(other, false, t0),
        Ok(Incoming::New(..))
    ));
    let options = request(Method::Options, "z9hG4bKabc", "UDP");
    assert!(matches!(
        table.handle_request(options, false, t0),
        Ok(Incoming::New(..))
    ));
    // INVITE and ACK are left to the caller.
    let invite = request(Method::Invite, "z9hG4bKinv", "UDP");
    assert!(matches!(
        table.handle_request(invite, false, t0),
        Ok(Incoming::Stateless(_))
    ));
    // The TU answers; a retransmission gets the answer again.
    table.respond(id, answer(&req, 202), t0).unwrap();
    let sent: Vec<_> = std::iter::from_fn(|| table.poll_output()).collect();
    assert_eq!(sent.len(), 1);
    table.handle_request(req.clone(), false, t0).unwrap();
    assert_eq!(table.poll_output(), Some(sent[0].clone()));
    // Legacy requests (no cookie) match by the RFC 2543 rule.
    let old = request(Method::Message, "legacy1", "UDP");
    let Ok(Incoming::New(old_id, _)) = table.handle_request(old.clone(), false, t0) else {
        panic!()
    };
    assert!(matches!(
        table.handle_request(old, false, t0),
        Ok(Incoming::Retransmission(i)) if i == old_id
    ));
    // Everything ends by 64·T1 (J, or the unanswered guard).
    table.handle_timeout(t0 + Duration::from_secs(64));
    assert!(table.is_empty());
    assert_eq!(
        table.respond(id, answer(&req, 200), t0),
        Err(TransactionError::Unknown)
    );
}

/// Issue 8: the table is bounded; a request beyond the bound is handed
/// back as Overloaded (the endpoint answers 503 statelessly), and a
/// stateless answer forgets its transaction at once.
#[test]
fn table_is_bounded_and_answers_can_be_stateless() {
    let t0 = Instant::now();
    let mut table = TransactionTable::new(Timers::default(), 3);
    let mut ids = Vec::new();
    for i in 0..3 {
        let req = request(Method::Register, &format!("z9hG4bKb{i}"), "UDP");
        let Ok(Incoming::New(id, _)) = table.handle_request(req, false, t0) else {
            panic!("not new")
        };
        ids.push(id);
    }
    let fourth = request(Method::Register, "z9hG4bKb3", "UDP");
    assert!(matches!(
        table.handle_request(fourth.clone(), false, t0),
        Ok(Incoming::Overloaded(r)) if r == fourth
    ));
    // A retransmission of a held one is still matched.
    let again = request(Method::Register, "z9hG4bKb0", "UDP");
    assert!(matches!(
        table.handle_request(again.clone(), false, t0),
        Ok(Incoming::Retransmission(id)) if id == ids[0]
    ));
    // Answered statelessly: sent, terminated, forgotten, room again.
    table
        .respond_stateless(ids[0], &answer(&again, 401))
        .unwrap();
    let out: Vec<_> = std::iter::from_fn(|| table.poll_output()).collect();
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        matches!(&out[0], (id, Output::Transmit(b)) if *id == ids[0] && b.starts_with(b"SIP/2.0 401"))
    );
    assert!(matches!(out[1], (id, Output::Terminated) if id == ids[0]));
    assert_eq!(table.servers(), 2);
    assert!(matches!(
        table.handle_request(again, false, t0),
        Ok(Incoming::New(..))
    ));
    assert_eq!(
        table.respond_stateless(ids[0], &answer(&fourth, 401)),
        Err(TransactionError::Unknown)
    );
}
