//! The XMPP stream reader and writer.
//!
//! [`Reader`] turns bytes, in any chunking, into a stream header, complete
//! top-level elements and the stream end, enforcing RFC 6120's restricted
//! XML and the configured size and depth limits. Elements are
//! namespace-resolved trees; [`Element::write`] and [`StreamHeader::write`]
//! serialize them back.

mod element;
mod error;
mod escape;
mod header;
pub mod ns;
mod parse;
mod reader;
mod scan;
mod scope;
mod stanza;
mod writer;

pub use element::{Attr, Element, Node};
pub use error::{Error, ErrorKind};
pub use header::StreamHeader;
pub use reader::{Event, Form, Limits, Reader};
pub use scope::Scope;
pub use stanza::{Child, Stanza};

/// Reads one whole element with a general XML tokenizer (quick-xml) by
/// the rules the stream reader's own single pass applies: the independent
/// reference that pass is tested against, by property tests and the
/// `xml_reader` fuzz target. Streams never use it.
pub fn reference_element(
    text: &str,
    scope: &Scope,
    max_attributes: usize,
) -> Result<Element, Error> {
    parse::element(text, scope, max_attributes)
}

/// Parses a standalone element (no inherited namespace bindings); for
/// tests, tools and configuration, not for streams.
pub fn parse_element(input: &str) -> Result<Element, Error> {
    let mut r = Reader::fragment(Limits::default());
    r.feed_all(input.as_bytes());
    match r.poll() {
        Some(Ok(Event::Stanza(e))) if r.is_idle() => Ok(e),
        Some(Err(e)) => Err(e),
        _ => Err(Error::new(
            ErrorKind::NotWellFormed,
            "not exactly one element",
        )),
    }
}
