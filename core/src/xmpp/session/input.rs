//! What a session reads: element trees, or stanzas as they came (checked,
//! not built into trees): all of them on an edge that passes the partners'
//! stanzas on unread, messages on a gateway that translates them from
//! their text. Negotiation elements are trees either way.

use std::sync::Arc;

use super::settings::Reading;
use crate::xml::{Element, Error, Event, Form, Limits, Reader, Scope, Stanza};
use crate::xmpp::stanza::Kind;

/// The session's reader, in the form its gateway wants.
#[derive(Debug)]
pub(super) enum Input {
    Trees(Reader),
    /// Stanzas (`message`, `presence`, `iq`) stay text.
    Raw(Reader<Stanza>),
    /// Messages stay text; the rest are trees.
    Messages(Reader<MessageText>),
}

/// A top-level element checked in one pass: as text when it is named
/// `message` (its namespace is looked at once read), as a tree otherwise.
#[derive(Debug)]
pub(super) enum MessageText {
    Text(Stanza),
    Tree(Element),
}

impl Form for MessageText {
    fn read(text: &str, scope: &Arc<Scope>, max_attributes: usize) -> Result<Self, Error> {
        let name_len = text
            .bytes()
            .skip(1)
            .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))
            .unwrap_or(0);
        let qname = text.get(1..1 + name_len).unwrap_or_default();
        let local = qname.rsplit(':').next().unwrap_or_default();
        if local == "message" {
            Stanza::read(text, scope, max_attributes).map(MessageText::Text)
        } else {
            Element::read(text, scope, max_attributes).map(MessageText::Tree)
        }
    }
}

/// One thing read.
pub(super) enum Read {
    Xml(Event),
    /// A stanza for a relay, from a raw input.
    Relay(Stanza),
}

impl Input {
    pub(super) fn new(limits: Limits, reading: Reading) -> Self {
        match reading {
            Reading::Trees => Input::Trees(Reader::new(limits)),
            Reading::Stanzas => Input::Raw(Reader::raw(limits)),
            Reading::Messages => Input::Messages(Reader::with_form(limits)),
        }
    }

    pub(super) fn feed(&mut self, input: &[u8]) -> usize {
        match self {
            Input::Trees(r) => r.feed(input),
            Input::Raw(r) => r.feed(input),
            Input::Messages(r) => r.feed(input),
        }
    }

    pub(super) fn poll(&mut self) -> Option<Result<Read, Error>> {
        let raw = match self {
            Input::Trees(r) => return r.poll().map(|ev| ev.map(Read::Xml)),
            Input::Raw(r) => r.poll()?,
            Input::Messages(r) => match r.poll()? {
                Ok(Event::Stanza(MessageText::Tree(e))) => {
                    return Some(Ok(Read::Xml(Event::Stanza(e))))
                }
                Ok(Event::Stanza(MessageText::Text(s))) => Ok(Event::Stanza(s)),
                Ok(Event::Header(h)) => Ok(Event::Header(h)),
                Ok(Event::End) => Ok(Event::End),
                Err(e) => Err(e),
            },
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
            Input::Messages(r) => r.reset(),
        }
    }

    pub(super) fn release_idle(&mut self) {
        match self {
            Input::Trees(r) => r.release_idle(),
            Input::Raw(r) => r.release_idle(),
            Input::Messages(r) => r.release_idle(),
        }
    }
}
