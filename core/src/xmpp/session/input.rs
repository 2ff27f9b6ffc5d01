//! What a session reads: element trees, or, on an edge that passes the
//! partners' stanzas on unread, those stanzas as they came (checked, not
//! built into trees). Negotiation elements are trees either way.

use crate::xml::{Error, Event, Limits, Reader, Stanza};
use crate::xmpp::stanza::Kind;

/// The session's reader, in the form its gateway wants.
#[derive(Debug)]
pub(super) enum Input {
    Trees(Reader),
    /// Stanzas (`message`, `presence`, `iq`) stay text.
    Raw(Reader<Stanza>),
}

/// One thing read.
pub(super) enum Read {
    Xml(Event),
    /// A stanza for a relay, from a raw input.
    Relay(Stanza),
}

impl Input {
    pub(super) fn new(limits: Limits, relay: bool) -> Self {
        if relay {
            Input::Raw(Reader::raw(limits))
        } else {
            Input::Trees(Reader::new(limits))
        }
    }

    pub(super) fn feed(&mut self, input: &[u8]) -> usize {
        match self {
            Input::Trees(r) => r.feed(input),
            Input::Raw(r) => r.feed(input),
        }
    }

    pub(super) fn poll(&mut self) -> Option<Result<Read, Error>> {
        let raw = match self {
            Input::Trees(r) => return r.poll().map(|ev| ev.map(Read::Xml)),
            Input::Raw(r) => r.poll()?,
        };
        Some(match raw {
            Ok(Event::Stanza(s)) if Kind::named(s.ns(), s.name()).is_some() => Ok(Read::Relay(s)),
            Ok(Event::Stanza(s)) => s.element().map(|e| Read::Xml(Event::Stanza(e))),
            Ok(Event::Header(h)) => Ok(Read::Xml(Event::Header(h))),
            Ok(Event::End) => Ok(Read::Xml(Event::End)),
            Err(e) => Err(e),
        })
    }

    pub(super) fn reset(&mut self) {
        match self {
            Input::Trees(r) => r.reset(),
            Input::Raw(r) => r.reset(),
        }
    }

    pub(super) fn release_idle(&mut self) {
        match self {
            Input::Trees(r) => r.release_idle(),
            Input::Raw(r) => r.release_idle(),
        }
    }
}
