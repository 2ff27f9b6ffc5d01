//! The bridge to the SIP side: calls into the endpoint with the gateway
//! turn, its outputs and stanzas taken back in order.

use super::*;

impl Gateway {
    /// Runs `f` on the SIP side, if it runs, then takes what it produced;
    /// `false` when there is no SIP side.
    pub(super) fn with_sip(
        &mut self,
        t: Time,
        f: impl FnOnce(&mut Endpoint, &mut Turn<'_>),
    ) -> bool {
        let Some(ep) = self.sip.as_mut() else {
            return false;
        };
        let mut turn = Turn {
            now: t.now,
            unix: t.unix,
            ids: &mut self.ids,
        };
        f(ep, &mut turn);
        self.pump_sip();
        true
    }

    /// Takes what the SIP side produced: its outputs join the gateway's
    /// queue in the order they happened, its stanzas are routed.
    pub(super) fn pump_sip(&mut self) {
        if let Some(ep) = self.sip.as_mut() {
            while let Some(o) = ep.poll_output() {
                match &o {
                    Output::PauseReading { conn } => {
                        self.held.entry(*conn).or_default();
                    }
                    Output::ResumeReading { conn } => {
                        release(&mut self.held, &mut self.work, *conn)
                    }
                    Output::Event(e) => self.status.record(e, self.settings.clock.get(), None),
                    _ => {}
                }
                self.out.push_back(o);
            }
        }
        while let Some((stanza, tracked)) = self.sip.as_mut().and_then(Endpoint::poll_stanza) {
            if tracked {
                if let Some(id) = stanza.attr("id") {
                    self.tracked.insert(id.to_owned());
                }
            }
            self.route(stanza);
        }
    }

    /// Routes again, in order, the stanzas held for paused stream `conn`
    /// (if one pauses it again, the rest are held again).
    pub(super) fn release(&mut self, conn: ConnId) {
        release(&mut self.held, &mut self.work, conn);
    }

    /// Holds `stanza` when it came over a paused stream; given back when
    /// not.
    pub(super) fn hold(&mut self, stanza: Element, source: Option<ConnId>) -> Option<Element> {
        match source.and_then(|c| self.held.get_mut(&c)) {
            Some(held) => {
                held.push_back(stanza);
                None
            }
            None => Some(stanza),
        }
    }

    /// Tells the SIP side what became of a stanza it sent, if it asked.
    pub(super) fn settle(
        &mut self,
        stanza: &Element,
        result: Result<(), StanzaCondition>,
        t: Time,
    ) -> bool {
        let Some(id) = self.untrack(stanza) else {
            return false;
        };
        self.with_sip(t, |ep, turn| ep.delivered(id, result, turn));
        true
    }

    /// The id of a stanza from the SIP side whose fate it waits for, no
    /// longer tracked; `None` for any other stanza.
    fn untrack<'s>(&mut self, stanza: &'s Element) -> Option<&'s str> {
        let id = stanza.attr("id")?;
        let from_local =
            stanza::addressing(stanza).is_some_and(|a| self.settings.is_local(a.from.domain()));
        (from_local && self.tracked.remove(id)).then_some(id)
    }

    /// A SIP user's message for a congested stream: answered 503 with
    /// Retry-After instead of sent; `false` for stanzas the SIP side does
    /// not wait on (they are sent).
    pub(super) fn refuse_busy(&mut self, stanza: &Element, t: Time) -> bool {
        let Some(id) = self.untrack(stanza) else {
            return false;
        };
        self.with_sip(t, |ep, turn| ep.busy(id, turn));
        true
    }

    /// Whether `conn` is a SIP connection.
    pub(super) fn is_sip(&self, conn: ConnId) -> bool {
        self.sip.as_ref().is_some_and(|ep| ep.owns(conn))
    }
}

/// [`Gateway::release`] on the fields alone (while the endpoint is
/// borrowed).
fn release(held: &mut HashMap<ConnId, VecDeque<Element>>, work: &mut VecDeque<Work>, conn: ConnId) {
    for stanza in held.remove(&conn).into_iter().flatten() {
        work.push_back(Work::Route(stanza, Some(conn)));
    }
}
