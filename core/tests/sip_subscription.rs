//! Subscription dialogs (RFC 6665, RFC 3856, RFC 8048) on a simulated
//! clock: the notifier's immediate and rate-limited NOTIFYs, expiry,
//! refreshes and unsubscribes; the subscriber's refresh timing and the
//! effect of every response code, NOTIFY state and timeout; the bound.

use std::time::{Duration, Instant};

use xfed_core::rng::Rng;
use xfed_core::sip::subscription::{Action, Cause, Content, Next, Refusal, Role, SubscribeResult};
use xfed_core::sip::{
    Event, Host, Method, Reason, Request, Response, SubId, SubState, SubscriptionConfig,
    SubscriptionState, SubscriptionTable, Uri,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn table(max: usize) -> SubscriptionTable {
    SubscriptionTable::new(SubscriptionConfig::new(max))
}

/// The actions, without the requests to save (`saves` looks at those).
fn drain(t: &mut SubscriptionTable) -> Vec<Action> {
    std::iter::from_fn(|| t.poll_action())
        .filter(|a| !matches!(a, Action::Save(_)))
        .collect()
}

/// The subscriptions the table asked to save, in order.
fn saves(t: &mut SubscriptionTable) -> Vec<SubId> {
    std::iter::from_fn(|| t.poll_action())
        .filter_map(|a| match a {
            Action::Save(sub) => Some(sub),
            _ => None,
        })
        .collect()
}

/// A SUBSCRIBE from bob's phone to alice (ours).
fn subscribe(cseq: u32, to_tag: Option<&str>, expires: Option<u32>, event: &str) -> Request {
    let mut r = Request::new(
        Method::Subscribe,
        Uri::sip(Some("alice"), Host::parse("gw.test").unwrap()),
    );
    let h = &mut r.headers;
    h.push("Via", "SIP/2.0/TCP 192.0.2.5;branch=z9hG4bKs1");
    h.push("Max-Forwards", "70");
    h.push("From", "\"Bob\" <sip:bob@gw.test>;tag=bobtag");
    match to_tag {
        Some(t) => h.push("To", format!("<sip:alice@gw.test>;tag={t}")),
        None => h.push("To", "<sip:alice@gw.test>"),
    }
    h.push("Call-ID", "sub-call-1");
    h.push("CSeq", format!("{cseq} SUBSCRIBE"));
    h.push("Record-Route", "<sip:p1.test;lr>, <sip:p2.test;lr>");
    h.push("Contact", "<sip:bob@192.0.2.5:5070;transport=tcp>");
    if !event.is_empty() {
        h.push("Event", event);
    }
    if let Some(e) = expires {
        h.push("Expires", e.to_string());
    }
    r
}

fn notifies(actions: &[Action]) -> Vec<(SubscriptionState, Content)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify { state, content, .. } => Some((state.clone(), *content)),
            _ => None,
        })
        .collect()
}

fn ended(actions: &[Action]) -> Vec<(Cause, Next)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Ended(e) => Some((e.cause.clone(), e.next)),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- notifier

#[test]
fn accepted_subscribe_gets_an_immediate_pending_notify_built_from_the_dialog() {
    let t0 = Instant::now();
    let mut t = table(10);
    let sub = t
        .accept(
            &subscribe(1, None, Some(3600), "presence"),
            "ourtag",
            3600,
            false,
            t0,
        )
        .unwrap();
    let a = drain(&mut t);
    assert_eq!(a.len(), 1);
    let Action::Notify {
        request,
        state,
        content,
        sub: s,
    } = &a[0]
    else {
        panic!("{a:?}")
    };
    assert_eq!(*s, sub);
    assert_eq!(*state, SubscriptionState::pending(3600));
    assert_eq!(*content, Content::Nothing);
    assert_eq!(request.method, Method::Notify);
    assert_eq!(
        request.uri.to_string(),
        "sip:bob@192.0.2.5:5070;transport=tcp"
    );
    let h = &request.headers;
    assert_eq!(h.get("Route"), Some("<sip:p1.test;lr>, <sip:p2.test;lr>"));
    assert_eq!(h.from().unwrap().tag(), Some("ourtag"));
    assert_eq!(h.from().unwrap().uri().to_string(), "sip:alice@gw.test");
    assert_eq!(h.to().unwrap().tag(), Some("bobtag"));
    assert_eq!(h.to().unwrap().uri().to_string(), "sip:bob@gw.test");
    assert_eq!(h.call_id(), Ok("sub-call-1"));
    assert_eq!(h.cseq().unwrap().seq, 1);
    assert_eq!(h.event().unwrap(), Some(Event::presence()));
    assert_eq!(
        h.subscription_state().unwrap(),
        Some(SubscriptionState::pending(3600))
    );
    assert_eq!(t.role(sub), Some(Role::Notifier));
    assert!(!t.is_active(sub));
    assert_eq!(t.poll_timeout(), Some(t0 + secs(3600)));

    // Authorized 10 s later: active at once, with the time left.
    t.activate(sub, t0 + secs(10));
    let n = notifies(&drain(&mut t));
    assert_eq!(n, [(SubscriptionState::active(3590), Content::State)]);
    t.activate(sub, t0 + secs(11));
    assert!(drain(&mut t).is_empty(), "already active");
}

#[test]
fn changes_are_rate_limited_to_one_notify_per_five_seconds_and_coalesced() {
    let t0 = Instant::now();
    let mut t = table(10);
    let sub = t
        .accept(&subscribe(1, None, None, "presence"), "l", 3600, true, t0)
        .unwrap();
    assert_eq!(notifies(&drain(&mut t)).len(), 1, "the immediate NOTIFY");

    // Pending dialogs hear nothing; this one is active.
    t.changed(sub, t0 + secs(1));
    t.changed(sub, t0 + secs(2));
    t.changed(sub, t0 + secs(4));
    assert!(drain(&mut t).is_empty(), "within 5 s of the last NOTIFY");
    assert_eq!(t.poll_timeout(), Some(t0 + secs(5)));
    t.handle_timeout(t0 + secs(4) + Duration::from_millis(999));
    assert!(drain(&mut t).is_empty());
    t.handle_timeout(t0 + secs(5));
    let n = notifies(&drain(&mut t));
    assert_eq!(n.len(), 1, "three changes, one NOTIFY");
    assert_eq!(n[0], (SubscriptionState::active(3595), Content::State));
    assert_eq!(t.poll_timeout(), Some(t0 + secs(3600)), "nothing dirty");

    // Past the window a change goes out at once.
    t.changed(sub, t0 + secs(11));
    assert_eq!(notifies(&drain(&mut t)).len(), 1);
    // A refresh NOTIFY carries the current state: a waiting change is
    // satisfied by it.
    t.changed(sub, t0 + secs(12));
    assert!(drain(&mut t).is_empty());
    t.refresh(
        &subscribe(2, Some("l"), Some(600), "presence"),
        600,
        t0 + secs(13),
    )
    .unwrap();
    assert_eq!(
        notifies(&drain(&mut t)),
        [(SubscriptionState::active(600), Content::State)]
    );
    t.handle_timeout(t0 + secs(16));
    t.handle_timeout(t0 + secs(18));
    assert!(
        drain(&mut t).is_empty(),
        "coalesced into the refresh NOTIFY"
    );
}

#[test]
fn pending_dialogs_are_not_told_of_changes() {
    let t0 = Instant::now();
    let mut t = table(10);
    let sub = t
        .accept(&subscribe(1, None, None, "presence"), "l", 3600, false, t0)
        .unwrap();
    drain(&mut t);
    t.changed(sub, t0 + secs(60));
    t.handle_timeout(t0 + secs(70));
    assert!(drain(&mut t).is_empty());
}

#[test]
fn unrefreshed_subscription_expires_with_a_final_timeout_notify() {
    let t0 = Instant::now();
    let mut t = table(10);
    let sub = t
        .accept(&subscribe(1, None, None, "presence"), "l", 120, true, t0)
        .unwrap();
    drain(&mut t);
    t.handle_timeout(t0 + secs(119));
    assert!(drain(&mut t).is_empty());
    t.handle_timeout(t0 + secs(120));
    let a = drain(&mut t);
    assert_eq!(
        notifies(&a),
        [(
            SubscriptionState::terminated(Reason::Timeout, None),
            Content::State
        )]
    );
    assert_eq!(ended(&a), [(Cause::Expired, Next::Nothing)]);
    assert!(t.is_empty());
    assert_eq!(t.poll_timeout(), None);
    assert_eq!(t.role(sub), None);
}

#[test]
fn refresh_extends_and_checks_the_dialog() {
    let t0 = Instant::now();
    let mut t = table(10);
    let sub = t
        .accept(&subscribe(5, None, None, "presence"), "l", 120, true, t0)
        .unwrap();
    drain(&mut t);
    let r = t.refresh(
        &subscribe(6, Some("l"), Some(300), "presence"),
        300,
        t0 + secs(100),
    );
    assert_eq!(r, Ok(sub));
    assert_eq!(t.expires_at(sub), Some(t0 + secs(400)));
    let a = drain(&mut t);
    let Action::Notify { request, .. } = &a[0] else {
        panic!()
    };
    assert_eq!(request.headers.cseq().unwrap().seq, 2, "our CSeq grows");
    t.handle_timeout(t0 + secs(120));
    assert!(drain(&mut t).is_empty(), "no longer expires at 120");

    assert_eq!(
        t.refresh(&subscribe(6, Some("l"), Some(300), "presence"), 300, t0),
        Err(Refusal {
            code: 500,
            reason: "Out of Order Request"
        })
    );
    assert_eq!(
        t.refresh(&subscribe(7, Some("other"), Some(300), "presence"), 300, t0),
        Err(Refusal::NO_DIALOG)
    );
    assert_eq!(
        t.refresh(
            &subscribe(7, Some("l"), Some(300), "presence;id=2"),
            300,
            t0
        ),
        Err(Refusal::NO_DIALOG),
        "another event id is another subscription"
    );
    assert!(drain(&mut t).is_empty());
}

#[test]
fn refresh_with_expires_zero_unsubscribes() {
    let t0 = Instant::now();
    let mut t = table(10);
    t.accept(&subscribe(1, None, None, "presence"), "l", 3600, true, t0)
        .unwrap();
    drain(&mut t);
    t.refresh(
        &subscribe(2, Some("l"), Some(0), "presence"),
        0,
        t0 + secs(5),
    )
    .unwrap();
    let a = drain(&mut t);
    assert_eq!(
        notifies(&a),
        [(
            SubscriptionState::terminated(Reason::Timeout, None),
            Content::State
        )]
    );
    assert_eq!(ended(&a), [(Cause::Unsubscribed, Next::Nothing)]);
    assert!(t.is_empty());
}

#[test]
fn fetch_gets_one_final_notify_and_keeps_nothing() {
    let t0 = Instant::now();
    let mut t = table(1);
    t.accept(&subscribe(1, None, Some(0), "presence"), "l", 0, true, t0)
        .unwrap();
    let a = drain(&mut t);
    assert_eq!(
        notifies(&a),
        [(
            SubscriptionState::terminated(Reason::Timeout, None),
            Content::State
        )]
    );
    assert_eq!(ended(&a), [(Cause::Unsubscribed, Next::Nothing)]);
    assert!(t.is_empty());
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn terminate_sends_the_reason() {
    let t0 = Instant::now();
    let mut t = table(10);
    let sub = t
        .accept(&subscribe(1, None, None, "presence"), "l", 3600, false, t0)
        .unwrap();
    drain(&mut t);
    t.terminate(sub, Reason::Rejected, None, t0 + secs(1));
    let a = drain(&mut t);
    assert_eq!(
        notifies(&a),
        [(
            SubscriptionState::terminated(Reason::Rejected, None),
            Content::Nothing
        )]
    );
    assert_eq!(
        ended(&a),
        [(Cause::Terminated(Reason::Rejected), Next::Nothing)]
    );
    assert!(t.is_empty());
}

#[test]
fn notify_failures_remove_the_subscription() {
    let t0 = Instant::now();
    for (code, removed) in [
        (200, false),
        (202, false),
        (500, false),
        (503, false),
        (408, true),
        (404, true),
        (405, true),
        (410, true),
        (416, true),
        (480, true),
        (481, true),
        (485, true),
        (489, true),
        (501, true),
        (604, true),
    ] {
        let mut t = table(10);
        let sub = t
            .accept(&subscribe(1, None, None, "presence"), "l", 3600, true, t0)
            .unwrap();
        drain(&mut t);
        assert_eq!(t.handle_notify_response(sub, code), removed, "{code}");
        assert_eq!(t.is_empty(), removed, "{code}");
        if removed {
            assert_eq!(
                ended(&drain(&mut t)),
                [(Cause::Response(code), Next::Nothing)]
            );
        }
    }
}

#[test]
fn malformed_subscribes_get_their_answer() {
    let t0 = Instant::now();
    let mut t = table(10);
    let code = |r: Result<SubId, Refusal>| r.unwrap_err().code;
    let mut no_contact = subscribe(1, None, None, "presence");
    no_contact.headers.remove("Contact");
    assert_eq!(code(t.accept(&no_contact, "l", 60, true, t0)), 400);
    assert_eq!(
        code(t.accept(&subscribe(1, None, None, ""), "l", 60, true, t0)),
        489
    );
    assert_eq!(
        code(t.accept(&subscribe(1, None, None, "pres ence"), "l", 60, true, t0)),
        400
    );
    assert_eq!(
        code(t.accept(
            &subscribe(1, Some("x"), None, "presence"),
            "l",
            60,
            true,
            t0
        )),
        481
    );
    let mut no_tag = subscribe(1, None, None, "presence");
    no_tag.headers.set("From", "<sip:bob@gw.test>");
    assert_eq!(code(t.accept(&no_tag, "l", 60, true, t0)), 400);
    t.accept(&subscribe(1, None, None, "presence"), "l", 60, true, t0)
        .unwrap();
    assert_eq!(
        code(t.accept(&subscribe(1, None, None, "presence"), "l", 60, true, t0)),
        500,
        "the same dialog twice"
    );
    assert_eq!(t.len(), 1);
}

#[test]
fn the_bound_refuses_newcomers_with_503_and_keeps_serving_the_others() {
    let t0 = Instant::now();
    let mut t = table(2);
    let mut rng = Rng::new([3; 32]);
    t.accept(&subscribe(1, None, None, "presence"), "a", 60, true, t0)
        .unwrap();
    t.accept(&subscribe(1, None, None, "presence"), "b", 60, true, t0)
        .unwrap();
    assert_eq!(
        t.accept(&subscribe(1, None, None, "presence"), "c", 60, true, t0),
        Err(Refusal::FULL)
    );
    assert_eq!(Refusal::FULL.code, 503);
    let bob = Uri::sip(Some("bob"), Host::parse("sip.test").unwrap());
    assert_eq!(
        t.subscribe(&bob, &bob, &Event::presence(), 3600, &mut rng, t0),
        Err(Refusal::FULL)
    );
    // A fetch keeps nothing, so it is still served.
    assert!(t
        .accept(&subscribe(1, None, Some(0), "presence"), "d", 0, true, t0)
        .is_ok());
    assert_eq!(t.len(), 2);
    // The others still refresh.
    assert!(t
        .refresh(&subscribe(2, Some("a"), Some(60), "presence"), 60, t0)
        .is_ok());
}

// -------------------------------------------------------------- subscriber

fn alice() -> Uri {
    Uri::sip(Some("alice"), Host::parse("gw.test").unwrap())
}

fn romeo() -> Uri {
    Uri::sip(Some("romeo"), Host::parse("sip.test").unwrap())
}

/// Subscribes alice to romeo; returns the SUBSCRIBE.
fn start(t: &mut SubscriptionTable, expires: u32, now: Instant) -> (SubId, Request) {
    let mut rng = Rng::new([9; 32]);
    let sub = t
        .subscribe(
            &romeo(),
            &alice(),
            &Event::presence(),
            expires,
            &mut rng,
            now,
        )
        .unwrap();
    let a = drain(t);
    let [Action::Subscribe {
        request,
        expires: e,
        ..
    }] = &a[..]
    else {
        panic!("{a:?}")
    };
    assert_eq!(*e, expires);
    (sub, request.clone())
}

fn answer(req: &Request, status: u16, expires: Option<u32>) -> Response {
    let mut r = req.response(status, "romeotag");
    if let Some(e) = expires {
        r.headers.push("Expires", e.to_string());
    }
    r.headers.push("Contact", "<sip:romeo@198.51.100.7:5062>");
    r.headers
        .push("Record-Route", "<sip:pa.test;lr>, <sip:pb.test;lr>");
    r
}

fn notify(req: &Request, cseq: u32, from_tag: &str, state: &str) -> Request {
    let mut n = Request::new(Method::Notify, alice());
    let h = &mut n.headers;
    h.push("Via", "SIP/2.0/TCP 198.51.100.7;branch=z9hG4bKn1");
    h.push("From", format!("<sip:romeo@sip.test>;tag={from_tag}"));
    h.push("To", req.headers.get("From").unwrap());
    h.push("Call-ID", req.headers.get("Call-ID").unwrap());
    h.push("CSeq", format!("{cseq} NOTIFY"));
    h.push("Event", "presence");
    h.push("Contact", "<sip:romeo@198.51.100.7:5062>");
    if !state.is_empty() {
        h.push("Subscription-State", state);
    }
    n
}

#[test]
fn initial_subscribe_is_built_for_a_new_dialog() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 3600, t0);
    assert_eq!(t.role(sub), Some(Role::Subscriber));
    assert_eq!(req.method, Method::Subscribe);
    assert_eq!(req.uri, romeo());
    let h = &req.headers;
    assert_eq!(h.to().unwrap().tag(), None);
    assert_eq!(h.to().unwrap().uri(), &romeo());
    assert_eq!(h.from().unwrap().uri(), &alice());
    assert_eq!(h.from().unwrap().tag().unwrap().len(), 16);
    assert_eq!(h.call_id().unwrap().len(), 32);
    assert_eq!(h.cseq().unwrap().seq, 1);
    assert_eq!(h.expires(), Ok(Some(3600)));
    assert_eq!(h.event().unwrap(), Some(Event::presence()));
    assert!(!h.contains("Route"));
    assert_eq!(t.dialog(sub).unwrap().remote_tag(), "");
    // Timer N runs.
    assert_eq!(t.poll_timeout(), Some(t0 + secs(32)));
}

#[test]
fn accepted_subscription_refreshes_at_ninety_percent_within_the_dialog() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 3600, t0);
    // The 2xx's Expires is authoritative; 202 counts as 200.
    let r = t.handle_subscribe_response(sub, &answer(&req, 202, Some(1800)), t0 + secs(1));
    assert_eq!(
        r,
        SubscribeResult::Active {
            expires_at: t0 + secs(1801),
            refresh_at: t0 + secs(1 + 1620),
        }
    );
    assert_eq!(t.dialog(sub).unwrap().remote_tag(), "romeotag");
    let n = t
        .handle_notify(
            &notify(&req, 1, "romeotag", "active;expires=1799"),
            t0 + secs(2),
        )
        .unwrap();
    assert_eq!(n.sub, sub);
    assert_eq!(n.state.state, SubState::Active);
    assert_eq!(n.ended, None);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(1621)), "Timer N stopped");

    t.handle_timeout(t0 + secs(1620));
    assert!(drain(&mut t).is_empty());
    t.handle_timeout(t0 + secs(1621));
    let a = drain(&mut t);
    let [Action::Subscribe {
        request, expires, ..
    }] = &a[..]
    else {
        panic!("{a:?}")
    };
    assert_eq!(*expires, 3600, "asks again for what it wants");
    assert_eq!(request.uri.to_string(), "sip:romeo@198.51.100.7:5062");
    let h = &request.headers;
    assert_eq!(h.cseq().unwrap().seq, 2);
    assert_eq!(h.to().unwrap().tag(), Some("romeotag"));
    assert_eq!(h.call_id(), req.headers.call_id());
    assert_eq!(
        h.get("Route"),
        Some("<sip:pb.test;lr>, <sip:pa.test;lr>"),
        "a UAC's route set is the Record-Route reversed"
    );
    let r = t.handle_subscribe_response(sub, &answer(request, 200, Some(3600)), t0 + secs(1622));
    assert_eq!(
        r,
        SubscribeResult::Active {
            expires_at: t0 + secs(1622 + 3600),
            refresh_at: t0 + secs(1622 + 3240),
        }
    );
}

#[test]
fn refresh_now_sends_a_refresh_in_the_dialog_once() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 3600, t0);
    t.refresh_now(sub);
    assert!(drain(&mut t).is_empty(), "not accepted yet: nothing");
    t.handle_subscribe_response(sub, &answer(&req, 200, Some(3600)), t0 + secs(1));
    t.refresh_now(sub);
    let a = drain(&mut t);
    let [Action::Subscribe {
        request, expires, ..
    }] = &a[..]
    else {
        panic!("{a:?}")
    };
    assert_eq!(*expires, 3600);
    assert_eq!(request.headers.call_id(), req.headers.call_id());
    assert_eq!(request.headers.to().unwrap().tag(), Some("romeotag"));
    assert_eq!(request.headers.cseq().unwrap().seq, 2);
    t.refresh_now(sub);
    assert!(drain(&mut t).is_empty(), "one in flight at a time");
    // Its answer schedules the next refresh as usual.
    let r = t.handle_subscribe_response(sub, &answer(request, 200, Some(3600)), t0 + secs(2));
    assert_eq!(
        r,
        SubscribeResult::Active {
            expires_at: t0 + secs(2 + 3600),
            refresh_at: t0 + secs(2 + 3240),
        }
    );
}

#[test]
fn refresh_delay_is_the_earlier_of_ninety_percent_and_the_margin() {
    let c = SubscriptionConfig::new(1);
    assert_eq!(c.refresh_delay(3600), secs(3240));
    assert_eq!(c.refresh_delay(600), secs(540));
    assert_eq!(c.refresh_delay(300), secs(268), "300 - 32 < 270");
    assert_eq!(c.refresh_delay(60), secs(30), "never before half");
    assert_eq!(c.refresh_delay(1), Duration::from_millis(500));
}

#[test]
fn timer_n_without_a_notify_fails_the_subscription_transiently() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 3600, t0);
    t.handle_subscribe_response(sub, &answer(&req, 200, Some(3600)), t0 + secs(1));
    t.handle_timeout(t0 + secs(31));
    assert!(drain(&mut t).is_empty());
    t.handle_timeout(t0 + secs(32));
    assert_eq!(
        ended(&drain(&mut t)),
        [(Cause::NoNotify, Next::ResubscribeAt(t0 + secs(92)))]
    );
    assert!(t.is_empty());
}

#[test]
fn a_notify_may_come_before_the_2xx_and_a_second_fork_is_refused() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 3600, t0);
    let n = t
        .handle_notify(&notify(&req, 1, "romeotag", "pending;expires=3600"), t0)
        .unwrap();
    assert_eq!(n.sub, sub);
    assert_eq!(n.state.state, SubState::Pending);
    assert_eq!(t.dialog(sub).unwrap().remote_tag(), "romeotag");
    assert_eq!(
        t.handle_notify(&notify(&req, 1, "fork2", "active;expires=3600"), t0),
        Err(Refusal::NO_DIALOG)
    );
    let r = t.handle_subscribe_response(sub, &answer(&req, 200, Some(3600)), t0);
    assert!(matches!(r, SubscribeResult::Active { .. }), "{r:?}");
}

#[test]
fn notify_checks() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 3600, t0);
    t.handle_subscribe_response(sub, &answer(&req, 200, Some(3600)), t0);
    let code = |r: Result<_, Refusal>| r.unwrap_err().code;
    let mut wrong_event = notify(&req, 1, "romeotag", "active;expires=60");
    wrong_event.headers.set("Event", "dialog");
    assert_eq!(code(t.handle_notify(&wrong_event, t0)), 489);
    wrong_event.headers.remove("Event");
    assert_eq!(code(t.handle_notify(&wrong_event, t0)), 489);
    assert_eq!(
        code(t.handle_notify(&notify(&req, 1, "romeotag", ""), t0)),
        400
    );
    assert_eq!(
        code(t.handle_notify(&notify(&req, 1, "romeotag", "active;expires=x"), t0)),
        400
    );
    t.handle_notify(&notify(&req, 2, "romeotag", "active;expires=3600"), t0)
        .unwrap();
    assert_eq!(
        code(t.handle_notify(&notify(&req, 2, "romeotag", "active;expires=3600"), t0)),
        500
    );
    let mut stranger = notify(&req, 3, "romeotag", "active");
    stranger.headers.set("Call-ID", "other");
    assert_eq!(code(t.handle_notify(&stranger, t0)), 481);
}

#[test]
fn notify_expires_only_shortens() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 3600, t0);
    t.handle_subscribe_response(sub, &answer(&req, 200, Some(3600)), t0);
    t.handle_notify(&notify(&req, 1, "romeotag", "active;expires=7200"), t0)
        .unwrap();
    assert_eq!(t.expires_at(sub), Some(t0 + secs(3600)));
    t.handle_notify(&notify(&req, 2, "romeotag", "active;expires=100"), t0)
        .unwrap();
    assert_eq!(t.expires_at(sub), Some(t0 + secs(100)));
    assert_eq!(t.refresh_at(sub), Some(t0 + secs(68)));
}

#[test]
fn terminated_notify_says_whether_to_come_back() {
    let t0 = Instant::now();
    for (state, next) in [
        ("terminated;reason=rejected", Next::CancelAuthorization),
        ("terminated;reason=noresource", Next::Nothing),
        ("terminated;reason=invariant", Next::Nothing),
        ("terminated;reason=deactivated", Next::ResubscribeAt(t0)),
        ("terminated;reason=timeout", Next::ResubscribeAt(t0)),
        ("terminated", Next::ResubscribeAt(t0)),
        (
            "terminated;reason=probation;retry-after=30",
            Next::ResubscribeAt(t0 + secs(30)),
        ),
        (
            "terminated;reason=giveup",
            Next::ResubscribeAt(t0 + secs(60)),
        ),
    ] {
        let mut t = table(10);
        let (sub, req) = start(&mut t, 3600, t0);
        t.handle_subscribe_response(sub, &answer(&req, 200, Some(3600)), t0);
        let n = t
            .handle_notify(&notify(&req, 1, "romeotag", state), t0)
            .unwrap();
        assert_eq!(n.ended, Some(next), "{state}");
        assert!(t.is_empty(), "{state}");
        let e = ended(&drain(&mut t));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].1, next);
    }
}

fn refresh_answered(
    status: u16,
    headers: &[(&str, &str)],
) -> (SubscribeResult, SubscriptionTable, SubId, Instant) {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 600, t0);
    t.handle_subscribe_response(sub, &answer(&req, 200, Some(600)), t0);
    t.handle_notify(&notify(&req, 1, "romeotag", "active;expires=600"), t0)
        .unwrap();
    t.handle_timeout(t0 + secs(540));
    let a = drain(&mut t);
    let [Action::Subscribe { request, .. }] = &a[..] else {
        panic!("{a:?}")
    };
    let mut r = answer(request, status, None);
    for (n, v) in headers {
        r.headers.push(n, *v);
    }
    let res = t.handle_subscribe_response(sub, &r, t0 + secs(541));
    (res, t, sub, t0)
}

#[test]
fn refresh_481_is_transient_resubscribe_now() {
    let (r, mut t, _, t0) = refresh_answered(481, &[]);
    let now = t0 + secs(541);
    assert_eq!(
        r,
        SubscribeResult::Ended(Cause::Response(481), Next::ResubscribeAt(now))
    );
    assert_eq!(
        ended(&drain(&mut t)),
        [(Cause::Response(481), Next::ResubscribeAt(now))]
    );
    assert!(t.is_empty());
}

#[test]
fn refused_subscriptions_cancel_the_authorization() {
    for code in [403, 489, 603] {
        let (r, t, _, _) = refresh_answered(code, &[]);
        assert_eq!(
            r,
            SubscribeResult::Ended(Cause::Response(code), Next::CancelAuthorization)
        );
        assert!(t.is_empty());
        // And the same on the initial SUBSCRIBE.
        let t0 = Instant::now();
        let mut t = table(10);
        let (sub, req) = start(&mut t, 3600, t0);
        assert_eq!(
            t.handle_subscribe_response(sub, &answer(&req, code, None), t0),
            SubscribeResult::Ended(Cause::Response(code), Next::CancelAuthorization)
        );
    }
}

#[test]
fn rfc6665_terminating_codes_end_the_refresh_for_a_fresh_subscription_later() {
    for code in [404, 405, 410, 416, 480, 482, 483, 484, 485, 501, 604] {
        let (r, t, _, t0) = refresh_answered(code, &[]);
        assert_eq!(
            r,
            SubscribeResult::Ended(
                Cause::Response(code),
                Next::ResubscribeAt(t0 + secs(541 + 60))
            ),
            "{code}"
        );
        assert!(t.is_empty());
    }
}

#[test]
fn other_refresh_failures_keep_the_subscription_until_expiry() {
    let (r, mut t, sub, t0) = refresh_answered(500, &[]);
    // 59 s left: retry at half of it, before the one-minute delay.
    let retry = t0 + secs(541) + Duration::from_millis(29_500);
    assert_eq!(r, SubscribeResult::RetryAt(retry));
    assert_eq!(t.refresh_at(sub), Some(retry));
    t.handle_timeout(retry);
    let a = drain(&mut t);
    assert!(
        matches!(&a[..], [Action::Subscribe { expires: 600, .. }]),
        "{a:?}"
    );
    // That one times out too; then the subscription expires.
    let r = t.handle_subscribe_timeout(sub, retry + secs(32));
    assert!(matches!(r, SubscribeResult::RetryAt(_)), "{r:?}");
    drain(&mut t);
    t.handle_timeout(t0 + secs(599));
    drain(&mut t);
    assert_eq!(t.len(), 1);
    t.handle_timeout(t0 + secs(600));
    let e = ended(&drain(&mut t));
    assert_eq!(e, [(Cause::Expired, Next::ResubscribeAt(t0 + secs(600)))]);
    assert!(t.is_empty());
}

#[test]
fn retry_after_of_a_503_is_obeyed_up_to_the_retry_delay() {
    let (r, _, _, t0) = refresh_answered(503, &[("Retry-After", "10")]);
    assert_eq!(r, SubscribeResult::RetryAt(t0 + secs(551)));
    let t1 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 3600, t1);
    let mut resp = answer(&req, 503, None);
    resp.headers.push("Retry-After", "99999");
    assert_eq!(
        t.handle_subscribe_response(sub, &resp, t1),
        SubscribeResult::Ended(Cause::Response(503), Next::ResubscribeAt(t1 + secs(60)))
    );
}

#[test]
fn interval_too_brief_retries_with_min_expires() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 60, t0);
    let mut r = answer(&req, 423, None);
    r.headers.push("Min-Expires", "3600");
    assert_eq!(
        t.handle_subscribe_response(sub, &r, t0),
        SubscribeResult::Retrying { expires: 3600 }
    );
    let a = drain(&mut t);
    let [Action::Subscribe {
        request, expires, ..
    }] = &a[..]
    else {
        panic!("{a:?}")
    };
    assert_eq!(*expires, 3600);
    assert_eq!(request.headers.cseq().unwrap().seq, 2);
    assert_eq!(request.headers.call_id(), req.headers.call_id());
    assert_eq!(request.headers.to().unwrap().tag(), None);
    // The old transaction's answers no longer count.
    assert_eq!(
        t.handle_subscribe_response(sub, &answer(&req, 200, Some(60)), t0),
        SubscribeResult::Ignored
    );
    // A 423 whose Min-Expires is no better fails (initial: transient).
    let mut again = answer(request, 423, None);
    again.headers.push("Min-Expires", "3600");
    assert_eq!(
        t.handle_subscribe_response(sub, &again, t0),
        SubscribeResult::Ended(Cause::Response(423), Next::ResubscribeAt(t0 + secs(60)))
    );
}

#[test]
fn initial_timeout_is_transient() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, _) = start(&mut t, 3600, t0);
    assert_eq!(
        t.handle_subscribe_timeout(sub, t0 + secs(32)),
        SubscribeResult::Ended(Cause::Response(408), Next::ResubscribeAt(t0 + secs(92)))
    );
    assert_eq!(
        t.handle_subscribe_timeout(sub, t0 + secs(33)),
        SubscribeResult::Ignored
    );
}

#[test]
fn unsubscribe_waits_for_the_final_notify() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 3600, t0);
    t.handle_subscribe_response(sub, &answer(&req, 200, Some(3600)), t0);
    t.handle_notify(&notify(&req, 1, "romeotag", "active;expires=3600"), t0)
        .unwrap();
    t.unsubscribe(sub, t0 + secs(10));
    let a = drain(&mut t);
    let [Action::Subscribe {
        request,
        expires: 0,
        ..
    }] = &a[..]
    else {
        panic!("{a:?}")
    };
    assert_eq!(request.headers.expires(), Ok(Some(0)));
    assert_eq!(
        t.handle_subscribe_response(sub, &answer(request, 200, Some(0)), t0 + secs(11)),
        SubscribeResult::Closing
    );
    let n = t
        .handle_notify(
            &notify(&req, 2, "romeotag", "terminated;reason=timeout"),
            t0 + secs(11),
        )
        .unwrap();
    assert_eq!(n.ended, Some(Next::Nothing));
    assert_eq!(
        ended(&drain(&mut t)),
        [(Cause::Unsubscribed, Next::Nothing)]
    );
    assert!(t.is_empty());

    // Without the final NOTIFY, Timer N closes it.
    let (sub, req) = start(&mut t, 3600, t0);
    t.handle_subscribe_response(sub, &answer(&req, 200, Some(3600)), t0);
    t.handle_notify(&notify(&req, 1, "romeotag", "active;expires=3600"), t0)
        .unwrap();
    t.unsubscribe(sub, t0 + secs(10));
    drain(&mut t);
    t.handle_timeout(t0 + secs(42));
    assert_eq!(
        ended(&drain(&mut t)),
        [(Cause::Unsubscribed, Next::Nothing)]
    );
}

#[test]
fn probe_is_a_fetch_on_a_new_dialog() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 0, t0);
    assert_eq!(req.headers.expires(), Ok(Some(0)));
    assert_eq!(
        t.handle_subscribe_response(sub, &answer(&req, 200, Some(0)), t0),
        SubscribeResult::Closing
    );
    let n = t
        .handle_notify(
            &notify(&req, 1, "romeotag", "terminated;reason=timeout"),
            t0,
        )
        .unwrap();
    assert_eq!(n.ended, Some(Next::Nothing));
    assert!(t.is_empty());
}

#[test]
fn subscriber_expiry_without_refresh_answer_is_transient() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 100, t0);
    t.handle_subscribe_response(sub, &answer(&req, 200, Some(100)), t0);
    t.handle_notify(&notify(&req, 1, "romeotag", "active;expires=100"), t0)
        .unwrap();
    t.handle_timeout(t0 + secs(68));
    assert_eq!(drain(&mut t).len(), 1, "the refresh");
    t.handle_timeout(t0 + secs(100));
    assert_eq!(
        ended(&drain(&mut t)),
        [(Cause::Expired, Next::ResubscribeAt(t0 + secs(100)))]
    );
}

#[test]
fn dialog_strings_are_bounded() {
    let t0 = Instant::now();
    let mut t = table(10);
    let long_route = format!("<sip:{}.test;lr>", "p".repeat(4100));
    let mut big = subscribe(1, None, None, "presence");
    big.headers.set("Record-Route", long_route.as_str());
    assert_eq!(t.accept(&big, "l", 60, true, t0), Err(Refusal::TOO_LARGE));
    assert_eq!(Refusal::TOO_LARGE.code, 413);
    assert!(t.is_empty());

    // A refresh whose new Contact would not fit is refused; the dialog
    // keeps its target.
    let sub = t
        .accept(&subscribe(1, None, None, "presence"), "l", 60, true, t0)
        .unwrap();
    drain(&mut t);
    let mut moved = subscribe(2, Some("l"), Some(60), "presence");
    moved.headers.set(
        "Contact",
        format!("<sip:{}@192.0.2.9>", "u".repeat(4100)).as_str(),
    );
    assert_eq!(t.refresh(&moved, 60, t0), Err(Refusal::TOO_LARGE));
    t.changed(sub, t0 + secs(10));
    let a = drain(&mut t);
    let [Action::Notify { request, .. }] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!(
        request.uri.to_string(),
        "sip:bob@192.0.2.5:5070;transport=tcp"
    );

    // A 2xx whose route set would not fit ends our subscription.
    let (sub, req) = start(&mut t, 3600, t0);
    let mut ok = answer(&req, 200, Some(3600));
    ok.headers.set("Record-Route", long_route.as_str());
    assert_eq!(
        t.handle_subscribe_response(sub, &ok, t0),
        SubscribeResult::Ended(Cause::Response(413), Next::ResubscribeAt(t0 + secs(60)))
    );
    assert_eq!(t.len(), 1, "only the notifier dialog is left");
}

// ---------------------------------------------------------------- restarts

const UNIX: u64 = 1_800_000_000;

#[test]
fn lasting_changes_ask_to_be_saved_and_notifies_do_not() {
    let t0 = Instant::now();
    let mut t = table(10);
    let sub = t
        .accept(
            &subscribe(1, None, Some(3600), "presence"),
            "ourtag",
            3600,
            false,
            t0,
        )
        .unwrap();
    assert_eq!(saves(&mut t), [sub], "made");
    t.activate(sub, t0 + secs(1));
    assert_eq!(saves(&mut t), [sub], "authorized");
    t.changed(sub, t0 + secs(10));
    assert_eq!(saves(&mut t), [], "a change NOTIFY is not saved");
    t.refresh(
        &subscribe(2, Some("ourtag"), Some(600), "presence"),
        600,
        t0 + secs(20),
    )
    .unwrap();
    assert_eq!(saves(&mut t), [sub], "refreshed");
    // A fetch keeps nothing.
    let mut fetch = subscribe(1, None, Some(0), "presence");
    fetch.headers.set("Call-ID", "fetch-1");
    t.accept(&fetch, "t2", 0, true, t0).unwrap();
    assert_eq!(saves(&mut t), []);
}

#[test]
fn a_saved_notifier_dialog_goes_on_with_its_cseq_ahead() {
    let t0 = Instant::now();
    let mut t = table(10);
    let sub = t
        .accept(
            &subscribe(1, None, Some(3600), "presence"),
            "ourtag",
            3600,
            true,
            t0,
        )
        .unwrap();
    drain(&mut t);
    let saved = t.saved(sub, t0, UNIX).unwrap();
    assert_eq!(
        (
            saved.local_cseq,
            saved.remote_cseq,
            saved.active,
            saved.expires_at
        ),
        (1, 1, true, UNIX + 3600)
    );
    assert_eq!(saved.route, "<sip:p1.test;lr>, <sip:p2.test;lr>");
    // Before the restart, changes sent NOTIFYs 2 and 3 that were not saved.
    t.changed(sub, t0 + secs(5));
    t.changed(sub, t0 + secs(10));
    assert_eq!(notifies(&drain(&mut t)).len(), 2);

    // 100 s after the record: at most 20 NOTIFYs can have gone out since.
    let t1 = t0 + secs(1000);
    let mut again = table(10);
    let back = again.restore(&saved, t1, UNIX + 100).unwrap();
    assert!(drain(&mut again).is_empty(), "a restore sends nothing");
    assert_eq!(again.poll_timeout(), Some(t1 + secs(3500)));
    assert!(again.is_active(back));
    again.changed(back, t1);
    let a = drain(&mut again);
    let [Action::Notify { request, state, .. }] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!(*state, SubscriptionState::active(3500));
    assert_eq!(request.headers.cseq().unwrap().seq, 1 + 21 + 1);
    assert_eq!(request.headers.call_id(), Ok("sub-call-1"));
    assert_eq!(
        request.headers.get("Route"),
        Some("<sip:p1.test;lr>, <sip:p2.test;lr>")
    );
    // The subscriber's refresh belongs to the dialog; an old CSeq does not.
    let old = again.refresh(
        &subscribe(1, Some("ourtag"), Some(600), "presence"),
        600,
        t1,
    );
    assert_eq!(old.unwrap_err().code, 500);
    let r = again.refresh(
        &subscribe(2, Some("ourtag"), Some(600), "presence"),
        600,
        t1,
    );
    assert_eq!(r, Ok(back));
}

#[test]
fn an_expired_or_duplicate_or_unconfirmed_dialog_is_not_restored() {
    let t0 = Instant::now();
    let mut t = table(1);
    let sub = t
        .accept(
            &subscribe(1, None, Some(60), "presence"),
            "ourtag",
            60,
            false,
            t0,
        )
        .unwrap();
    let saved = t.saved(sub, t0, UNIX).unwrap();
    assert!(!saved.active);
    let mut again = table(1);
    assert_eq!(
        again.restore(&saved, t0, UNIX + 60).unwrap_err().code,
        481,
        "expired"
    );
    let back = again.restore(&saved, t0, UNIX + 59).unwrap();
    assert!(!again.is_active(back), "still pending");
    assert_eq!(again.restore(&saved, t0, UNIX).unwrap_err().code, 500);
    let mut other = saved.clone();
    other.call_id = "another".into();
    assert_eq!(
        again.restore(&other, t0, UNIX).unwrap_err().code,
        503,
        "full"
    );

    // Our own SUBSCRIBE that nothing answered yet is not saved.
    let mut t = table(10);
    let (sub, _) = start(&mut t, 3600, t0);
    assert_eq!(t.saved(sub, t0, UNIX), None);
}

#[test]
fn a_saved_subscription_of_ours_refreshes_in_its_dialog() {
    let t0 = Instant::now();
    let mut t = table(10);
    let (sub, req) = start(&mut t, 3600, t0);
    t.handle_subscribe_response(sub, &answer(&req, 200, Some(3600)), t0);
    assert_eq!(saves(&mut t), [sub], "accepted");
    let saved = t.saved(sub, t0, UNIX).unwrap();
    assert_eq!(saved.remote_tag, "romeotag");
    assert_eq!(saved.target, "sip:romeo@198.51.100.7:5062");

    // Back 1000 s later with 2600 s left: the refresh comes at 90 % of
    // them, in the same dialog.
    let t1 = t0 + secs(5000);
    let mut again = table(10);
    let back = again.restore(&saved, t1, UNIX + 1000).unwrap();
    assert_eq!(again.role(back), Some(Role::Subscriber));
    assert_eq!(again.refresh_at(back), Some(t1 + secs(2340)));
    let n = again
        .handle_notify(&notify(&req, 5, "romeotag", "active;expires=2600"), t1)
        .unwrap();
    assert_eq!(n.sub, back);
    again.handle_timeout(t1 + secs(2339));
    assert!(drain(&mut again).is_empty());
    again.handle_timeout(t1 + secs(2340));
    let a = drain(&mut again);
    let [Action::Subscribe {
        request, expires, ..
    }] = &a[..]
    else {
        panic!("{a:?}")
    };
    assert_eq!(*expires, 3600);
    assert_eq!(request.headers.call_id(), req.headers.call_id());
    assert_eq!(request.headers.to().unwrap().tag(), Some("romeotag"));
    assert!(request.headers.cseq().unwrap().seq > 1);
}
