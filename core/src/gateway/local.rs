//! The local domain's own answers: ping and disco#info, replies for the
//! gateway, and service-unavailable for the rest.

use super::*;

impl Gateway {
    /// A stanza for a local address. Stanzas for users go to the SIP side
    /// when it runs; the domain answers ping and disco#info itself; every
    /// other request gets `service-unavailable` (never silence). `source`
    /// is the inbound stream it came over, if any.
    pub(super) fn deliver_local(&mut self, stanza: Element, source: Option<ConnId>, t: Time) {
        let Some(addr) = stanza::addressing(&stanza) else {
            return;
        };
        if !addr.to.is_domain() && self.sip.is_some() {
            self.with_sip(t, |ep, turn| ep.from_xmpp(stanza, source, turn));
            return;
        }
        let is_reply = stanza::is_error(&stanza)
            || (Kind::of(&stanza) == Some(Kind::Iq) && stanza.attr("type") == Some("result"));
        if is_reply {
            self.detail(None, format!("reply for {} from {}", addr.to, addr.from));
            self.out.push_back(Output::Stanza(stanza));
            return;
        }
        let to_domain = addr.to.is_domain();
        if to_domain && stanza::is_iq_request(&stanza) && stanza.attr("type") == Some("get") {
            let query = stanza.children().next();
            let reply = match query.map(|q| (q.ns(), q.name())) {
                Some((ns::PING, "ping")) => Some(Element::new(ns::SERVER, "iq")),
                Some((ns::DISCO_INFO, "query"))
                    if query.is_some_and(|q| q.attr("node").is_none()) =>
                {
                    Some(
                        Element::new(ns::SERVER, "iq").with_child(
                            Element::new(ns::DISCO_INFO, "query")
                                .with_child(
                                    Element::new(ns::DISCO_INFO, "identity")
                                        .with_attr("category", "gateway")
                                        .with_attr("type", "simple")
                                        .with_attr("name", "xfed XMPP-SIP gateway"),
                                )
                                .with_child(
                                    Element::new(ns::DISCO_INFO, "feature")
                                        .with_attr("var", ns::DISCO_INFO),
                                )
                                .with_child(
                                    Element::new(ns::DISCO_INFO, "feature")
                                        .with_attr("var", ns::PING),
                                ),
                        ),
                    )
                }
                _ => None,
            };
            if let Some(mut reply) = reply {
                reply.set_attr("type", "result");
                reply.set_attr("from", addr.to.to_string());
                reply.set_attr("to", addr.from.to_string());
                if let Some(id) = stanza.attr("id") {
                    reply.set_attr("id", id.to_owned());
                }
                return self.route(reply);
            }
        }
        if Kind::of(&stanza) == Some(Kind::Presence)
            && stanza.attr("type").is_some_and(|ty| ty == "unavailable")
        {
            // Nothing to answer: there is no session it could end.
            return;
        }
        self.event(Event::NotDelivered {
            from: addr.from.to_string(),
            to: addr.to.to_string(),
        });
        self.bounce(
            &stanza,
            StanzaCondition::ServiceUnavailable,
            "nothing here answers this",
            t,
        );
    }
}
