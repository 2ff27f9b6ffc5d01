//! What `xfed status` shows of a running instance (issue 12): its
//! streams (with the peer certificate's expiry), routes and SIP tables, read from the gateway's own tables when asked, and
//! what those tables do not keep, fed from the gateway's events: how each
//! stream authenticated, and the latest failures (warnings) with their
//! reason. Both are bounded: a method per live stream, the last
//! [`RECENT_FAILURES`] failures.

use super::*;
use crate::event::Level;

/// Failures kept for `xfed status`.
pub const RECENT_FAILURES: usize = 20;

/// What the events tell that the tables do not keep.
#[derive(Debug, Default)]
pub(super) struct StatusLog {
    methods: HashMap<ConnId, AuthMethod>,
    recent: VecDeque<(u64, String)>,
}

impl StatusLog {
    /// Notes `event`, which happened at `unix`.
    pub(super) fn record(&mut self, event: &Event, unix: u64) {
        match event {
            Event::StreamAuthenticated { conn, method, .. } => {
                self.methods.insert(*conn, *method);
            }
            Event::StreamClosed { conn, .. } => {
                self.methods.remove(conn);
            }
            _ => {}
        }
        if event.level() == Level::Warn {
            if self.recent.len() >= RECENT_FAILURES {
                self.recent.pop_front();
            }
            self.recent.push_back((unix, event.to_string()));
        }
    }

    /// Forgets the methods of streams that are gone (any way they went).
    fn prune(&mut self, live: impl Fn(ConnId) -> bool) {
        self.methods.retain(|c, _| live(*c));
    }
}

fn method_name(m: Option<&AuthMethod>) -> &'static str {
    match m {
        Some(AuthMethod::Sasl) => "sasl-external",
        Some(AuthMethod::Dialback) => "dialback",
        Some(AuthMethod::DialbackByCertificate) => "dialback-by-certificate",
        None => "not-authenticated",
    }
}

impl Gateway {
    /// Notes an event for `xfed status`.
    pub(super) fn note(&mut self, event: &Event) {
        self.status.record(event, self.settings.clock.get());
        // A stream can end without its close reported (a reset, a
        // stall): keep no more methods than there are streams.
        if self.status.methods.len() > self.sessions.len() + 64 {
            let sessions = &self.sessions;
            self.status.prune(|c| sessions.contains_key(&c));
        }
    }

    /// The `status` answer: one line per item, `domains`, then each
    /// stream, each route and the recent failures, each group after a
    /// count line.
    pub(super) fn status_lines(&mut self) -> Vec<String> {
        let sessions = &self.sessions;
        self.status.prune(|c| sessions.contains_key(&c));
        let mut lines = vec![format!("domains {}", self.settings.local_domains.join(" "))];
        lines.extend(self.links.iter().map(component::Link::describe));
        lines.extend(self.edge.iter().flat_map(internal::Edge::describe));
        lines.push(format!("streams {}", self.sessions.len()));
        for (conn, s) in &self.sessions {
            let (dir, pairs): (&str, Vec<String>) = match s.direction() {
                Direction::Outbound { local, remote } => {
                    ("outbound", vec![format!("{local} -> {remote}")])
                }
                Direction::Inbound => (
                    "inbound",
                    s.pairs()
                        .map(|(from, to)| format!("{from} -> {to}"))
                        .collect(),
                ),
            };
            let pairs = if pairs.is_empty() {
                "(no domain yet)".to_owned()
            } else {
                pairs.join(", ")
            };
            let state = if s.is_established() {
                "established"
            } else {
                "negotiating"
            };
            let cert = s
                .peer_certificate_expiry()
                .map_or_else(|| "none".to_owned(), |t| format!("valid-until={t}"));
            lines.push(format!(
                "stream {} {dir} {pairs} {} tls={} cert={cert} {state}{}",
                conn.0,
                method_name(self.status.methods.get(conn)),
                s.tls_version().unwrap_or("none"),
                if s.is_bidi() { " bidi" } else { "" },
            ));
        }
        let mut routes: Vec<_> = self.routes.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        lines.push(format!("routes {}", routes.len()));
        for ((local, remote), route) in routes {
            let state = match &route.state {
                RouteState::Resolving { .. } => "resolving".to_owned(),
                RouteState::Streaming {
                    conn, ready: true, ..
                } => format!("up on stream {}", conn.0),
                RouteState::Streaming { conn, .. } => format!("connecting on stream {}", conn.0),
            };
            lines.push(format!(
                "route {local} -> {remote} {state}, {} queued",
                route.queue.len()
            ));
        }
        if self.sip.is_some() {
            let t = self.sip_tables();
            lines.push(format!(
                "sip transactions={} queued-messages={} subscriptions={} watchers={} publications={}",
                t.transactions, t.queued_messages, t.subscriptions, t.watchers, t.publications
            ));
        }
        lines.push(format!("failures {}", self.status.recent.len()));
        for (unix, text) in &self.status.recent {
            lines.push(format!(
                "failure at={unix} {}",
                crate::logtext::escape(text)
            ));
        }
        lines
    }
}
