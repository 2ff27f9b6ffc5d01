//! Reading the presence NOTIFYs a scripted SIP user agent receives: each
//! one once (retransmissions dropped), its Subscription-State, and its
//! PIDF body parsed with xfed's own reader.

use std::time::{Duration, Instant};

use xfed_core::sip::Request;
use xfed_core::translate::presence::{parse_pidf, Availability, PidfLimits, Presentity};

use crate::sip_ua::SipUa;

/// The NOTIFYs a user agent got, one per CSeq.
#[derive(Debug, Default)]
pub struct Notifies {
    /// In arrival order.
    pub got: Vec<Request>,
}

impl Notifies {
    /// Waits (at most `wait`) for a new NOTIFY to `ua` (answered 200)
    /// matching `pred`; the ones before it are kept too. Panics with the
    /// NOTIFYs so far and `diagnostics()` when none comes.
    pub fn expect(
        &mut self,
        ua: &mut SipUa,
        what: &str,
        wait: Duration,
        pred: impl Fn(&Request) -> bool,
        diagnostics: impl FnOnce() -> String,
    ) -> Request {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(n) = ua.notify(left) else {
                panic!(
                    "no {what} within {wait:?}; NOTIFYs so far:\n{}\n{}",
                    self.summary(),
                    diagnostics()
                );
            };
            let seq = n.headers.cseq().map(|c| c.seq).ok();
            if self
                .got
                .iter()
                .any(|m| m.headers.cseq().map(|c| c.seq).ok() == seq)
            {
                continue;
            }
            self.got.push(n.clone());
            if pred(&n) {
                return n;
            }
        }
    }

    /// Each NOTIFY's state, type and body, for a failure message.
    pub fn summary(&self) -> String {
        self.got
            .iter()
            .map(|n| {
                format!(
                    "{:?} {:?}\n{}",
                    n.headers.get("Subscription-State"),
                    n.headers.get("Content-Type"),
                    String::from_utf8_lossy(&n.body)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A NOTIFY's Subscription-State (empty when missing).
pub fn state(n: &Request) -> &str {
    n.headers.get("Subscription-State").unwrap_or("")
}

/// The PIDF body of a NOTIFY, parsed (no body: nothing known); panics on
/// a body that is no PIDF.
pub fn pidf_of(n: &Request) -> Option<Presentity> {
    if n.body.is_empty() {
        return None;
    }
    Some(
        parse_pidf(&n.body, &PidfLimits::default()).unwrap_or_else(|e| {
            panic!(
                "NOTIFY body is no PIDF ({e:?}):\n{}",
                String::from_utf8_lossy(&n.body)
            )
        }),
    )
}

/// Whether any resource is available.
pub fn open(p: &Presentity) -> bool {
    p.resources()
        .iter()
        .any(|r| matches!(r.availability(), Availability::Available { .. }))
}

/// alice's documents as the presence tests publish them (PIDF, RFC 3863,
/// with RPID for `away`): open with a note, away with another note, and
/// closed.
pub mod alice_pidf {
    /// Open, "In the lab".
    pub const OPEN_NOTE: &str = "<?xml version='1.0' encoding='UTF-8'?>\
<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:alice@xfed.test'>\
<tuple id='phone'><status><basic>open</basic></status>\
<note xml:lang='en'>In the lab</note></tuple></presence>";

    /// Open and away (RPID), "Back at five".
    pub const AWAY_NOTE: &str = "<?xml version='1.0' encoding='UTF-8'?>\
<presence xmlns='urn:ietf:params:xml:ns:pidf' \
xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' \
xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='pres:alice@xfed.test'>\
<tuple id='phone'><status><basic>open</basic></status>\
<note xml:lang='en'>Back at five</note></tuple>\
<dm:person id='p1'><rpid:activities><rpid:away/></rpid:activities></dm:person>\
</presence>";

    /// Closed.
    pub const CLOSED: &str = "<?xml version='1.0' encoding='UTF-8'?>\
<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:alice@xfed.test'>\
<tuple id='phone'><status><basic>closed</basic></status></tuple></presence>";
}
