//! What a stream reads (an s2s session, or an edge's link from a
//! gateway): element trees, or stanzas as they came (checked, not built
//! into trees): all of them on an edge that passes them on unread,
//! messages on a gateway that translates them from their text.
//! Negotiation elements are trees either way.

use std::sync::Arc;

use crate::xml::{Element, Error, Event, Form, Limits, Reader, Scope, Stanza};
use crate::xmpp::stanza::Kind;

/// What a stream reads as text rather than as element trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// Nothing: every stanza is a tree.
    Trees,
    /// Every stanza: an edge passes them on unread.
    Stanzas,
    /// Messages: a gateway translates them to SIP from their text; the
    /// rest (presence, iq) are trees, each read in one pass.
    Messages,
}

/// A stream's reader, in the form its gateway wants: a stanza read as
/// text comes out as such when it is a stanza of the stream's content
/// namespace (`stanza_ns`), anything else as a tree.
#[derive(Debug)]
pub(crate) struct Input {
    form: Forms,
    stanza_ns: &'static str,
}

#[derive(Debug)]
enum Forms {
    Trees(Reader),
    /// Stanzas (`message`, `presence`, `iq`) stay text.
    Raw(Reader<Stanza>),
    /// Messages stay text; the rest are trees.
    Messages(Reader<MessageText>),
}

/// A top-level element checked in one pass: as text when it is named
/// `message` (its namespace is looked at once read), as a tree otherwise.
#[derive(Debug)]
enum MessageText {
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
pub(crate) enum Read {
    Xml(Event),
    /// A stanza for a relay, from a raw input.
    Relay(Stanza),
}

impl Input {
    /// A reader of `reading`'s form for a stream whose stanzas are in
    /// `stanza_ns` (`jabber:server`, or `jabber:component:accept`).
    pub(crate) fn new(limits: Limits, reading: Reading, stanza_ns: &'static str) -> Self {
        let form = match reading {
            Reading::Trees => Forms::Trees(Reader::new(limits)),
            Reading::Stanzas => Forms::Raw(Reader::raw(limits)),
            Reading::Messages => Forms::Messages(Reader::with_form(limits)),
        };
        Input { form, stanza_ns }
    }

    pub(crate) fn feed(&mut self, input: &[u8]) -> usize {
        match &mut self.form {
            Forms::Trees(r) => r.feed(input),
            Forms::Raw(r) => r.feed(input),
            Forms::Messages(r) => r.feed(input),
        }
    }

    pub(crate) fn poll(&mut self) -> Option<Result<Read, Error>> {
        let raw = match &mut self.form {
            Forms::Trees(r) => return r.poll().map(|ev| ev.map(Read::Xml)),
            Forms::Raw(r) => r.poll()?,
            Forms::Messages(r) => match r.poll()? {
                Ok(Event::Stanza(MessageText::Tree(e))) => {
                    return Some(Ok(Read::Xml(Event::Stanza(e))))
                }
                Ok(Event::Stanza(MessageText::Text(s))) => Ok(Event::Stanza(s)),
                Ok(Event::Header(h)) => Ok(Event::Header(h)),
                Ok(Event::End) => Ok(Event::End),
                Err(e) => Err(e),
            },
        };
        let stanza = |s: &Stanza| s.ns() == self.stanza_ns && Kind::of_name(s.name()).is_some();
        Some(match raw {
            Ok(Event::Stanza(s)) if stanza(&s) => Ok(Read::Relay(s)),
            Ok(Event::Stanza(s)) => s.element().map(|e| Read::Xml(Event::Stanza(e))),
            Ok(Event::Header(h)) => Ok(Read::Xml(Event::Header(h))),
            Ok(Event::End) => Ok(Read::Xml(Event::End)),
            Err(e) => Err(e),
        })
    }

    pub(crate) fn reset(&mut self) {
        match &mut self.form {
            Forms::Trees(r) => r.reset(),
            Forms::Raw(r) => r.reset(),
            Forms::Messages(r) => r.reset(),
        }
    }

    pub(crate) fn release_idle(&mut self) {
        match &mut self.form {
            Forms::Trees(r) => r.release_idle(),
            Forms::Raw(r) => r.release_idle(),
            Forms::Messages(r) => r.release_idle(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::ns;

    const STREAM: &[u8] = b"<stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

    fn read_all(reading: Reading, stanza_ns: &'static str, body: &[u8]) -> Vec<Read> {
        let mut input = Input::new(Limits::default(), reading, stanza_ns);
        let mut all = [STREAM, body].concat();
        let mut out = Vec::new();
        while !all.is_empty() {
            let n = input.feed(&all);
            all.drain(..n);
            while let Some(r) = input.poll() {
                out.push(r.expect("well-formed"));
            }
        }
        out
    }

    #[test]
    fn a_gateway_reads_messages_as_text_and_the_rest_as_trees() {
        let body = b"<message to='a@b'><body>x</body></message><presence to='a@b'/>\
            <message xmlns='urn:other'/>";
        let read = read_all(Reading::Messages, ns::SERVER, body);
        assert!(matches!(&read[0], Read::Xml(Event::Header(_))));
        assert!(matches!(&read[1], Read::Relay(s) if s.name() == "message"));
        assert!(matches!(&read[2], Read::Xml(Event::Stanza(e)) if e.name() == "presence"));
        // Not a stanza of the stream: a tree, for the session to refuse.
        assert!(matches!(&read[3], Read::Xml(Event::Stanza(e)) if e.ns() == "urn:other"));
    }

    #[test]
    fn only_stanzas_of_the_streams_namespace_come_out_as_text() {
        let body = b"<presence to='a@b'/>";
        let read = read_all(Reading::Stanzas, ns::SERVER, body);
        assert!(matches!(&read[1], Read::Relay(_)));
        // Read as a component link's stanzas, jabber:server is not theirs.
        let read = read_all(Reading::Stanzas, ns::COMPONENT, body);
        assert!(matches!(&read[1], Read::Xml(Event::Stanza(_))));
    }
}
