//! What `xfed status` and the status page show of a running instance
//! (issue 12), built into a [`Report`] when asked: its streams (with the
//! peer certificate's expiry), routes and SIP tables, read from the
//! gateway's own tables, the configured partners with their live state,
//! and what those tables do not keep, fed from the gateway's events: how
//! each stream authenticated, the latest failures (warnings) with their
//! reason, and the latest failure per partner. All are bounded: a method
//! per live stream, the last [`RECENT_FAILURES`] failures, one failure per
//! configured partner.

use super::report::{
    Failure, LinkState, PartnerStatus, Report, RouteLink, RouteStatus, StreamStatus,
};
use super::*;
use crate::event::Level;

/// Failures kept for `xfed status`.
pub const RECENT_FAILURES: usize = 20;

/// What the events tell that the tables do not keep.
#[derive(Debug, Default)]
pub(super) struct StatusLog {
    methods: HashMap<ConnId, AuthMethod>,
    recent: VecDeque<Failure>,
    /// Partner (primary domain) -> its latest failure; only configured
    /// partners have one.
    last_by_partner: HashMap<String, Failure>,
    /// Our certificate's notAfter, if we have one.
    pub(super) certificate_expiry: Option<u64>,
}

impl StatusLog {
    /// Notes `event`, which happened at `unix`; `partner` is the
    /// configured partner it concerns, if one.
    pub(super) fn record(&mut self, event: &Event, unix: u64, partner: Option<String>) {
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
            let failure = Failure {
                unix,
                text: event.to_string(),
            };
            if let Some(p) = partner {
                self.last_by_partner.insert(p, failure.clone());
            }
            self.recent.push_back(failure);
        }
    }

    /// Forgets the methods of streams that are gone (any way they went).
    fn prune(&mut self, live: impl Fn(ConnId) -> bool) {
        self.methods.retain(|c, _| live(*c));
    }
}

impl Gateway {
    /// Notes an event for `xfed status`.
    pub(super) fn note(&mut self, event: &Event) {
        let partner = if event.level() == Level::Warn {
            self.partner_concerned(event)
        } else {
            None
        };
        self.status
            .record(event, self.settings.clock.get(), partner);
        // A stream can end without its close reported (a reset, a
        // stall): keep no more methods than there are streams.
        if self.status.methods.len() > self.sessions.len() + 64 {
            let sessions = &self.sessions;
            self.status.prune(|c| sessions.contains_key(&c));
        }
    }

    /// The configured partner (its primary domain) a warning concerns: by
    /// the remote domain it names, or its connection's.
    fn partner_concerned(&self, event: &Event) -> Option<String> {
        let domain = match event {
            Event::RouteFailed { remote, .. } => Some(remote.as_str()),
            Event::DialbackRefused { sender, .. } => Some(sender.as_str()),
            _ => event.conn().and_then(|c| self.remote_of(c)),
        }?;
        configured_partner(self.settings.partners.configured(), domain).map(|p| p.domain.clone())
    }

    /// The remote domain of a connection: its route's, or the first pair
    /// its peer proved.
    fn remote_of(&self, conn: ConnId) -> Option<&str> {
        if let Some((_, remote)) = self.route_of.get(&conn) {
            return Some(remote);
        }
        let s = self.sessions.get(&conn)?;
        match s.direction() {
            Direction::Outbound { remote, .. } => Some(remote),
            Direction::Inbound => s.pairs().next().map(|(from, _)| from.as_str()),
        }
    }

    /// The instance's state now, for `xfed status` and the status page.
    pub fn report(&mut self, now: Instant) -> Report {
        let unix = self.time(now).unix;
        let sessions = &self.sessions;
        self.status.prune(|c| sessions.contains_key(&c));
        // A partner a reload removed keeps no failure.
        let configured = self.settings.partners.configured();
        self.status
            .last_by_partner
            .retain(|d, _| configured.iter().any(|p| p.domain == *d));
        let streams: Vec<StreamStatus> = self
            .sessions
            .iter()
            .map(|(conn, s)| {
                let (inbound, pairs) = match s.direction() {
                    Direction::Outbound { local, remote } => {
                        (false, vec![(local.clone(), remote.clone())])
                    }
                    Direction::Inbound => (true, s.pairs().cloned().collect()),
                };
                StreamStatus {
                    conn: conn.0,
                    inbound,
                    pairs,
                    method: self.status.methods.get(conn).copied(),
                    tls: s.tls_version(),
                    certificate_expiry: s.peer_certificate_expiry(),
                    established: s.is_established(),
                    bidi: s.is_bidi(),
                }
            })
            .collect();
        let mut routes: Vec<RouteStatus> = self
            .routes
            .iter()
            .map(|((local, remote), route)| RouteStatus {
                local: local.clone(),
                remote: remote.clone(),
                link: match &route.state {
                    RouteState::Resolving { .. } => RouteLink::Resolving,
                    RouteState::Streaming {
                        conn, ready: true, ..
                    } => RouteLink::Up(conn.0),
                    RouteState::Streaming { conn, .. } => RouteLink::Connecting(conn.0),
                },
                queued: route.queue.len(),
            })
            .collect();
        routes.sort_by(|a, b| (&a.local, &a.remote).cmp(&(&b.local, &b.remote)));
        let partners = self
            .settings
            .partners
            .configured()
            .iter()
            .map(|p| {
                let ours = |d: &str| p.domains().any(|x| x.eq_ignore_ascii_case(d));
                let mut status = PartnerStatus {
                    domain: p.domain.clone(),
                    additional_domains: p.additional_domains.clone(),
                    partner_type: p.partner_type,
                    tls: p.policy.tls,
                    sasl: p.policy.sasl,
                    dialback: p.policy.dialback,
                    state: LinkState::Down,
                    inbound: 0,
                    outbound: 0,
                    last_failure: self.status.last_by_partner.get(&p.domain).cloned(),
                };
                let mut setting_up = false;
                for s in streams.iter().filter(|s| {
                    s.pairs
                        .iter()
                        .any(|(from, to)| ours(if s.inbound { from } else { to }))
                }) {
                    match (s.established, s.inbound) {
                        (true, true) => status.inbound += 1,
                        (true, false) => status.outbound += 1,
                        (false, _) => setting_up = true,
                    }
                }
                setting_up |= routes
                    .iter()
                    .any(|r| ours(&r.remote) && !matches!(r.link, RouteLink::Up(_)));
                status.state = if status.inbound + status.outbound > 0 {
                    LinkState::Up
                } else if setting_up {
                    LinkState::Connecting
                } else {
                    LinkState::Down
                };
                status
            })
            .collect();
        let links = self
            .links
            .iter()
            .map(component::Link::describe)
            .chain(self.edge.iter().flat_map(internal::Edge::describe))
            .collect();
        Report {
            unix,
            domains: self.settings.local_domains.clone(),
            links,
            certificate_expiry: self.status.certificate_expiry,
            partners,
            streams,
            routes,
            sip: self.sip.is_some().then(|| self.sip_tables()),
            failures: self.status.recent.iter().cloned().collect(),
        }
    }
}

/// The configured partner `domain` belongs to, if one.
fn configured_partner<'a>(
    partners: &'a [crate::config::Partner],
    domain: &str,
) -> Option<&'a crate::config::Partner> {
    partners
        .iter()
        .find(|p| p.domains().any(|d| d.eq_ignore_ascii_case(domain)))
}
