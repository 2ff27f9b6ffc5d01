//! XEP-0199 server-to-server ping, as `xfed ping` sends it: the quickest
//! proof that federation with a domain works in both directions.

use crate::xml::{ns, Element};

use super::stanza::{self, StanzaCondition};

/// The `<iq type='get'><ping/></iq>` from our domain to `to`.
pub fn request(from: &str, to: &str, id: &str) -> Element {
    Element::new(ns::SERVER, "iq")
        .with_attr("type", "get")
        .with_attr("id", id.to_owned())
        .with_attr("from", from.to_owned())
        .with_attr("to", to.to_owned())
        .with_child(Element::new(ns::PING, "ping"))
}

/// Reads the answer to [`request`]: `None` if `reply` is not one (other id
/// or kind), else success or the error condition.
pub fn outcome(reply: &Element, id: &str) -> Option<Result<(), StanzaCondition>> {
    if reply.name() != "iq" || reply.attr("id") != Some(id) {
        return None;
    }
    match reply.attr("type") {
        Some("result") => Some(Ok(())),
        Some("error") => Some(Err(
            stanza::error_condition(reply).unwrap_or(StanzaCondition::UndefinedCondition)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_of_result_and_error() {
        let req = request("a.test", "b.test", "x1");
        let ok = Element::new(ns::SERVER, "iq")
            .with_attr("type", "result")
            .with_attr("id", "x1");
        assert_eq!(outcome(&ok, "x1"), Some(Ok(())));
        assert_eq!(outcome(&ok, "x2"), None);
        let err = stanza::error_reply(&req, StanzaCondition::RemoteServerNotFound, None).unwrap();
        assert_eq!(
            outcome(&err, "x1"),
            Some(Err(StanzaCondition::RemoteServerNotFound))
        );
    }
}
