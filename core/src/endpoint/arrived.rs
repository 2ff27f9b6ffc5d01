//! A message for a SIP user as it arrived from XMPP: an element tree (from
//! the local side, a component, or a session that reads trees), or a
//! stanza's checked text, which is translated without a tree. A tree is
//! built from the text only to answer it with an error.

use std::borrow::Cow;

use crate::translate::{self, ImError, SipIm};
use crate::xml::{Element, Stanza};
use crate::xmpp::stanza::{self, Addressing, Kind};

/// What arrived, in the form it was read.
#[derive(Clone, Debug)]
pub(super) enum Arrived {
    Tree(Element),
    Text(Stanza),
}

impl Arrived {
    /// `from` and `to`, both valid JIDs.
    pub(super) fn addressing(&self) -> Option<Addressing> {
        match self {
            Arrived::Tree(e) => stanza::addressing(e),
            Arrived::Text(s) => stanza::addressing_of(s.from(), s.to()),
        }
    }

    pub(super) fn kind(&self) -> Option<Kind> {
        match self {
            Arrived::Tree(e) => Kind::of(e),
            Arrived::Text(s) => Kind::named(s.ns(), s.name()),
        }
    }

    pub(super) fn is_error(&self) -> bool {
        let kind = match self {
            Arrived::Tree(e) => e.attr("type"),
            Arrived::Text(s) => s.kind(),
        };
        kind == Some("error")
    }

    pub(super) fn id(&self) -> Option<&str> {
        match self {
            Arrived::Tree(e) => e.attr("id"),
            Arrived::Text(s) => s.id(),
        }
    }

    /// The tree, built from the text if need be (to answer with an error);
    /// `None` only if checked text failed to read again, which is a bug.
    pub(super) fn tree(&self) -> Option<Cow<'_, Element>> {
        match self {
            Arrived::Tree(e) => Some(Cow::Borrowed(e)),
            Arrived::Text(s) => s.element().ok().map(Cow::Owned),
        }
    }

    /// RFC 7572's mapping, read from the tree or the text.
    pub(super) fn to_sip(&self) -> Result<SipIm, ImError> {
        match self {
            Arrived::Tree(e) => translate::xmpp_message_to_sip(e),
            Arrived::Text(s) => translate::xmpp_stanza_to_sip(s),
        }
    }
}
