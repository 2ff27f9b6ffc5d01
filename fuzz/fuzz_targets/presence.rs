//! Presence input from outside, fed arbitrary bytes: a PIDF body from a
//! SIP user agent, a `<presence/>` stanza from a partner, and the
//! `Event` and `Subscription-State` header values of SUBSCRIBE and
//! NOTIFY. Never panics; what the gateway writes reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xfed_core::jid::Jid;
use xfed_core::sip::{Event, SubscriptionState};
use xfed_core::translate::presence::{
    parse_pidf, pidf_body, presentity_to_xmpp, xmpp_to_pidf, Disclosure, PidfLimits,
};
use xfed_core::xml::parse_element;

fuzz_target!(|data: &[u8]| {
    let limits = PidfLimits::default();
    let from = Jid::parse("alice@sip.test").expect("a JID");
    let to = Jid::parse("bob@xmpp.test").expect("a JID");
    // A PIDF body: whatever is read is written back and read the same.
    if let Ok(p) = parse_pidf(data, &limits) {
        let stanzas = presentity_to_xmpp(&p, &from, &to, Disclosure::Full);
        let again = pidf_body(&from, &p, Disclosure::Full);
        let back = parse_pidf(&again, &limits).expect("our own PIDF reads back");
        assert_eq!(back.resources().len(), p.resources().len());
        for (a, b) in back.resources().iter().zip(p.resources()) {
            assert_eq!(a.availability(), b.availability());
        }
        assert!(!stanzas.is_empty());
    }
    let text = String::from_utf8_lossy(data);
    // A presence stanza: a PIDF body made of it is always readable.
    if let Ok(e) = parse_element(&text) {
        if let Ok(body) = xmpp_to_pidf([&e], Disclosure::Full) {
            parse_pidf(&body, &limits).expect("our own PIDF reads back");
        }
    }
    // Header values: what parses writes back to what parses the same.
    if let Ok(ev) = Event::parse(&text) {
        let again = Event::parse(&ev.to_string()).expect("our Event reads back");
        assert!(again.matches(&ev));
    }
    if let Ok(s) = SubscriptionState::parse(&text) {
        let again = SubscriptionState::parse(&s.to_string()).expect("our state reads back");
        assert_eq!(again, s);
    }
});
