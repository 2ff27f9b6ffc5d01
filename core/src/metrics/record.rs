//! What each event and the gateway's table sizes count for.

use super::families::*;
use super::registry::Registry;
use crate::event::{Event, Refusal};
use crate::gateway::Gateway;
use crate::ids::Listener;
use crate::xmpp::session::AuthMethod;

impl Registry {
    /// Counts one event of the core.
    pub fn record(&mut self, event: &Event) {
        self.add(EVENTS, &[("kind", event.kind())], 1);
        match event {
            Event::Accepted { listener, .. } => {
                let listener = match listener {
                    Listener::S2s => "s2s",
                    Listener::S2sDirectTls => "s2s_direct_tls",
                    Listener::SipTcp => "sip_tcp",
                    Listener::SipTls => "sip_tls",
                    Listener::Internal => "internal",
                };
                self.add(CONNECTIONS_ACCEPTED, &[("listener", listener)], 1);
            }
            Event::ConnectionRefused { refusal, .. } => {
                let reason = match refusal {
                    Refusal::ShuttingDown => "shutting_down",
                    Refusal::Limit { key, .. } => {
                        self.add(LIMITS, &[("key", key)], 1);
                        "limit"
                    }
                    Refusal::NotServed => "not_served",
                };
                self.add(CONNECTIONS_REFUSED, &[("reason", reason)], 1);
            }
            Event::Connecting { direct_tls, .. } => {
                let tls = if *direct_tls { "direct" } else { "starttls" };
                self.add(CONNECT_ATTEMPTS, &[("tls", tls)], 1);
            }
            Event::ConnectFailed { .. } => self.add(CONNECT_FAILURES, &[], 1),
            Event::StreamAuthenticated {
                inbound,
                remote,
                method,
                tls,
                ..
            } => {
                let partner = self.partner(remote).to_owned();
                let method = match method {
                    AuthMethod::Sasl => "sasl",
                    AuthMethod::Dialback => "dialback",
                    AuthMethod::DialbackByCertificate => "dialback_by_certificate",
                };
                let labels = [
                    ("partner", partner.as_str()),
                    ("direction", if *inbound { "in" } else { "out" }),
                    ("method", method),
                    ("tls", tls.unwrap_or("none")),
                ];
                self.add(STREAMS_AUTHENTICATED, &labels, 1);
            }
            Event::StreamFailed { condition, .. } => {
                self.add(STREAMS_FAILED, &[("condition", condition.as_str())], 1);
            }
            Event::StreamClosed { .. } => self.add(STREAMS_CLOSED, &[], 1),
            Event::LimitReached { key, .. } => self.add(LIMITS, &[("key", key)], 1),
            Event::Suppressed { count, .. } => self.add(EVENTS_SUPPRESSED, &[], *count),
            Event::DialbackRefused { condition, .. } => {
                self.add(DIALBACK_REFUSED, &[("condition", condition.as_str())], 1);
            }
            Event::RouteFailed {
                remote,
                condition,
                bounced,
                ..
            } => {
                let partner = self.partner(remote).to_owned();
                let condition = condition.as_str();
                let labels = [("partner", partner.as_str()), ("condition", condition)];
                self.add(ROUTE_FAILURES, &labels, 1);
                self.add(BOUNCES, &[("condition", condition)], *bounced as u64);
            }
            Event::NotDelivered { .. } => self.add(NOT_DELIVERED, &[], 1),
            Event::Registered { .. } => self.add(REGISTRATIONS, &[], 1),
            Event::BindingsExpired { count } => self.add(BINDINGS_EXPIRED, &[], *count as u64),
            Event::SipConnectionExpired { key, .. } => {
                self.add(SIP_CONNECTIONS_EXPIRED, &[("timeout", key)], 1);
            }
            Event::SipCertificate { accepted, .. } => {
                let outcome = if *accepted { "accepted" } else { "refused" };
                self.add(SIP_CERTIFICATES, &[("outcome", outcome)], 1);
            }
            Event::SipConnectionFailed { .. } => self.add(SIP_CONNECTION_FAILURES, &[], 1),
            Event::SipRefused { warning, .. } => {
                let severity = if *warning { "warning" } else { "routine" };
                self.add(SIP_REFUSED, &[("severity", severity)], 1);
            }
            Event::Relayed { sip_to_xmpp, .. } => {
                let direction = if *sip_to_xmpp {
                    "sip_to_xmpp"
                } else {
                    "xmpp_to_sip"
                };
                self.add(MESSAGES_RELAYED, &[("direction", direction)], 1);
            }
            Event::HandedOff { sip_to_xmpp, after } => {
                let family = if *sip_to_xmpp {
                    SIP_TO_XMPP_SECONDS
                } else {
                    XMPP_TO_SIP_SECONDS
                };
                self.observe_seconds(family, after.as_secs_f64());
            }
            Event::MessageRefused { .. } => self.add(MESSAGES_REFUSED, &[], 1),
            Event::MessageAnswered {
                status, condition, ..
            } => {
                let class = match status / 100 {
                    1 => "1xx",
                    2 => "2xx",
                    3 => "3xx",
                    4 => "4xx",
                    5 => "5xx",
                    6 => "6xx",
                    _ => "other",
                };
                self.add(SIP_MESSAGE_ANSWERS, &[("class", class)], 1);
                if let Some(c) = condition {
                    self.add(TRANSLATION_ERRORS, &[("condition", c.as_str())], 1);
                }
            }
            Event::SubscriptionApproved { .. } => self.outcome(SUBSCRIPTIONS, "approved"),
            Event::SubscriptionPending { .. } => self.outcome(SUBSCRIPTIONS, "pending"),
            Event::SubscriptionRefused { limit, .. } => {
                if *limit {
                    self.add(LIMITS, &[("key", "sip.max_watchers")], 1);
                }
                self.outcome(SUBSCRIPTIONS, "refused");
            }
            Event::SubscriptionEnded { .. } => self.outcome(SUBSCRIPTIONS, "ended"),
            Event::PresenceSent { translations, .. } => {
                self.add(PRESENCE_BROADCASTS, &[], 1);
                self.add(PRESENCE_TRANSLATIONS, &[], *translations as u64);
            }
            Event::WatchAccepted { refresh, .. } => {
                self.outcome(WATCHES, if *refresh { "refreshed" } else { "accepted" });
            }
            Event::WatchRefused { .. } => self.outcome(WATCHES, "refused"),
            Event::WatchAnswered { authorized, .. } => {
                self.outcome(
                    WATCHES,
                    if *authorized {
                        "authorized"
                    } else {
                        "rejected"
                    },
                );
            }
            Event::WatchEnded { .. } => self.outcome(WATCHES, "ended"),
            Event::NotifySent { .. } => self.add(NOTIFIES, &[("direction", "out")], 1),
            Event::PresenceNotified { .. } => self.add(NOTIFIES, &[("direction", "in")], 1),
            Event::BindingsRestored { .. }
            | Event::DialogsRestored { .. }
            | Event::ContactRemoved { .. }
            | Event::Detail { .. }
            | Event::UpstreamEnded { .. }
            | Event::Reloaded { .. }
            | Event::ComponentLink { .. } => {}
        }
    }

    fn outcome(&mut self, family: &'static Family, outcome: &str) {
        self.add(family, &[("outcome", outcome)], 1);
    }

    /// Takes the gateway's current table sizes as gauges.
    pub fn observe(&mut self, gw: &Gateway) {
        let n = |v: usize| v as u64;
        self.set(S2S_CONNECTIONS, &[], n(gw.s2s_connections()));
        self.set(SIP_CONNECTIONS, &[], n(gw.sip_connections()));
        self.set(ROUTES, &[], n(gw.routes()));
        self.set(PENDING_DIALBACK, &[], n(gw.pending_dialback()));
        self.set(DNS_QUERIES, &[], n(gw.dns_queries()));
        let stanzas = gw.stanza_counts();
        self.set(S2S_STANZAS, &[("direction", "in")], stanzas.received);
        self.set(S2S_STANZAS, &[("direction", "out")], stanzas.sent);
        self.set(
            S2S_STANZAS_UNREAD,
            &[("direction", "in")],
            stanzas.relayed_unread,
        );
        self.set(
            S2S_STANZAS_UNREAD,
            &[("direction", "out")],
            stanzas.relayed_out_unread,
        );
        self.set(
            S2S_MESSAGES_TRANSLATED_UNREAD,
            &[],
            stanzas.translated_unread,
        );
        let t = gw.sip_tables();
        for (table, v) in [
            ("transactions", t.transactions),
            ("contacts", t.contacts),
            ("chat_states", t.chat_states),
            ("watchers", t.watchers),
            ("publications", t.publications),
            ("subscriptions", t.subscriptions),
            ("upstream", t.upstream),
            ("queued_messages", t.queued_messages),
        ] {
            self.set(SIP_TABLE_ENTRIES, &[("table", table)], n(v));
        }
    }

    /// Takes the store writer's state: whether it writes, what waits,
    /// failures and drops since start.
    pub fn observe_store(&mut self, up: bool, waiting: usize, failures: u64, dropped: u64) {
        self.set(STORE_UP, &[], u64::from(up));
        self.set(STORE_WAITING, &[], waiting as u64);
        self.set(STORE_WRITE_FAILURES, &[], failures);
        self.set(STORE_DROPPED, &[], dropped);
    }

    /// Whether the store watcher hears the other instances (set only
    /// where one runs).
    pub fn observe_shared(&mut self, hearing: bool) {
        self.set(STORE_SHARED_UP, &[], u64::from(hearing));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConnId;
    use crate::xmpp::stanza::StanzaCondition;

    fn authenticated(remote: &str) -> Event {
        Event::StreamAuthenticated {
            conn: ConnId(1),
            inbound: true,
            local: "gw.example".into(),
            remote: remote.into(),
            method: AuthMethod::Dialback,
            tls: Some("TLSv1_3"),
        }
    }

    #[test]
    fn streams_count_by_partner_direction_method_and_tls() {
        let mut r = Registry::new(["jabber.org"]);
        r.record(&authenticated("jabber.org"));
        r.record(&authenticated("jabber.org"));
        r.record(&authenticated("a.evil"));
        r.record(&authenticated("b.evil"));
        let labels = |p| {
            [
                ("partner", p),
                ("direction", "in"),
                ("method", "dialback"),
                ("tls", "TLSv1_3"),
            ]
        };
        assert_eq!(r.get(STREAMS_AUTHENTICATED, &labels("jabber.org")), Some(2));
        assert_eq!(r.get(STREAMS_AUTHENTICATED, &labels("other")), Some(2));
        assert_eq!(r.get(EVENTS, &[("kind", "stream_authenticated")]), Some(4));
    }

    #[test]
    fn hostile_domains_do_not_grow_the_table() {
        let mut r = Registry::new([]);
        r.record(&authenticated("x0.evil"));
        let size = r.len();
        for i in 1..1000 {
            r.record(&authenticated(&format!("x{i}.evil")));
            r.record(&Event::RouteFailed {
                local: "gw.example".into(),
                remote: format!("y{i}.evil"),
                condition: StanzaCondition::RemoteServerNotFound,
                reason: "no".into(),
                bounced: 2,
            });
        }
        // Route failures add three samples (route, bounce, event kind), once.
        assert_eq!(r.len(), size + 3);
        let c = ("condition", "remote-server-not-found");
        assert_eq!(r.get(BOUNCES, &[c]), Some(2 * 999));
        assert_eq!(r.get(ROUTE_FAILURES, &[("partner", "other"), c]), Some(999));
    }

    #[test]
    fn messages_count_by_direction_and_translation_errors_by_condition() {
        let mut r = Registry::new([]);
        let relayed = |sip_to_xmpp| Event::Relayed {
            sip_to_xmpp,
            from: "a".into(),
            to: "b".into(),
            body: None,
        };
        r.record(&relayed(true));
        r.record(&relayed(false));
        r.record(&relayed(false));
        r.record(&Event::MessageAnswered {
            destination: "sip:x".into(),
            status: 480,
            condition: Some(StanzaCondition::RecipientUnavailable),
            detail: "Temporarily Unavailable".into(),
        });
        let dir = |d| [("direction", d)];
        assert_eq!(r.get(MESSAGES_RELAYED, &dir("sip_to_xmpp")), Some(1));
        assert_eq!(r.get(MESSAGES_RELAYED, &dir("xmpp_to_sip")), Some(2));
        assert_eq!(r.get(SIP_MESSAGE_ANSWERS, &[("class", "4xx")]), Some(1));
        let c = [("condition", "recipient-unavailable")];
        assert_eq!(r.get(TRANSLATION_ERRORS, &c), Some(1));
        let text = r.render();
        assert!(text.contains("xfed_messages_relayed_total{direction=\"xmpp_to_sip\"} 2\n"));
    }

    #[test]
    fn limits_count_by_key_from_every_event_that_reports_one() {
        let mut r = Registry::new([]);
        r.record(&Event::LimitReached {
            conn: None,
            key: "gateway.max_routes",
            detail: "x".into(),
        });
        r.record(&Event::ConnectionRefused {
            conn: ConnId(2),
            peer: "127.0.0.1:1".parse().unwrap(),
            refusal: Refusal::Limit {
                key: "gateway.connection_limit",
                limit: 3,
            },
        });
        r.record(&Event::SubscriptionRefused {
            local_user: "u".into(),
            watcher: "w".into(),
            why: "too many",
            limit: true,
        });
        for key in [
            "gateway.max_routes",
            "gateway.connection_limit",
            "sip.max_watchers",
        ] {
            assert_eq!(r.get(LIMITS, &[("key", key)]), Some(1), "{key}");
        }
        assert_eq!(r.get(SUBSCRIPTIONS, &[("outcome", "refused")]), Some(1));
    }

    #[test]
    fn label_less_counters_start_at_zero() {
        let r = Registry::new([]);
        assert_eq!(r.get(REGISTRATIONS, &[]), Some(0));
        assert!(r.render().contains("\nxfed_registrations_total 0\n"));
    }
}
