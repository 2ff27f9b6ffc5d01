//! Routing: from a (local, remote) domain pair to a stream, through DNS
//! and candidate addresses, with what waits for a route queued, and
//! bounced with the right error when it fails.

use super::*;

/// Most stanzas queued for one route while it is being set up.
pub const ROUTE_QUEUE_LIMIT: usize = 1000;

/// (local domain, remote domain).
pub(super) type RouteKey = (String, String);

#[derive(Debug)]
pub(super) enum RouteState {
    /// Resolving the remote domain; `waiting_since` when a query of it
    /// waits in `Gateway::dns_waiting` for a slot.
    Resolving {
        resolution: Resolution,
        waiting_since: Option<Instant>,
    },
    /// A stream on `conn` (connecting, negotiating, or ready); `rest` are
    /// the candidates still to try if it fails before it is ready.
    Streaming {
        conn: ConnId,
        rest: VecDeque<Candidate>,
        ready: bool,
    },
}

/// How stanzas from one local domain reach one remote domain.
#[derive(Debug)]
pub(super) struct Route {
    pub(super) state: RouteState,
    pub(super) queue: VecDeque<Element>,
    /// Dialback verifications to send once the stream is usable.
    pub(super) verifies: Vec<PendingVerify>,
}

/// A DNS query out: the runtime holds a socket for it until its reply or
/// its deadline, so it counts against `gateway.max_dns_queries` until then,
/// even when the route that sent it is gone.
#[derive(Debug)]
pub(super) struct QueryOut {
    pub(super) route: RouteKey,
    /// The DNS message id.
    pub(super) id: u16,
    pub(super) deadline: Instant,
}

impl Gateway {
    pub(super) fn forward(&mut self, stanza: Element, source: Option<ConnId>, t: Time) {
        let Some(stanza) = self.hold(stanza, source) else {
            return;
        };
        let Some(addr) = stanza::addressing(&stanza) else {
            self.event(Event::detail(
                None,
                "dropping stanza without valid from/to from the local side",
            ));
            return;
        };
        let (from_domain, to_domain) = (addr.from.domain().to_owned(), addr.to.domain().to_owned());
        if self.settings.is_local(&to_domain) {
            if self.edge.is_some() && !addr.to.is_domain() {
                return self.internal_deliver(stanza, t);
            }
            return self.deliver_local(stanza, source, t);
        }
        if !self.settings.is_local(&from_domain) {
            // Not ours to send: an inbound stanza for another domain is
            // refused by the session before it gets here.
            return self.bounce(
                &stanza,
                StanzaCondition::NotAllowed,
                "not from a local domain",
                t,
            );
        }
        if self.settings.policy(&to_domain).is_none() {
            return self.bounce(
                &stanza,
                StanzaCondition::RemoteServerNotFound,
                "domain is not a federation partner",
                t,
            );
        }
        if !self.links.is_empty() {
            return self.component_send(stanza, t);
        }
        let key = (from_domain, to_domain);
        // An authenticated stream: ours, or the peer's with bidi.
        let ready = self
            .sessions
            .iter()
            .find(|(_, s)| s.can_send(&key.0, &key.1))
            .map(|(c, _)| *c);
        if let Some(conn) = ready {
            if !self.congested.is_empty()
                && self.congested.contains(&conn)
                && self.refuse_busy(&stanza, t)
            {
                return;
            }
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.send_stanza(&stanza, t);
                self.stanzas.sent += 1;
            }
            self.settle(&stanza, Ok(()), t);
            self.drain(conn);
            return;
        }
        let Some((route, new)) = self.route_entry(&key) else {
            let why = self.routes_full();
            let event = Event::LimitReached {
                conn: None,
                key: "gateway.max_routes",
                detail: format!(
                    "{} -> {}: stanza bounced with resource-constraint: {why}",
                    key.0, key.1
                ),
            };
            self.event_limited(LogSource::Bound("gateway.max_routes"), event, t.now);
            return self.bounce(&stanza, StanzaCondition::ResourceConstraint, &why, t);
        };
        if route.queue.len() >= ROUTE_QUEUE_LIMIT {
            return self.bounce(
                &stanza,
                StanzaCondition::ResourceConstraint,
                "too many stanzas waiting for this domain",
                t,
            );
        }
        route.queue.push_back(stanza);
        if new {
            self.advance_resolution(key, t);
        }
    }

    /// Why a new route is refused.
    pub(super) fn routes_full(&self) -> String {
        format!(
            "{} routes already up or being set up (gateway.max_routes)",
            self.settings.bounds.max_routes
        )
    }

    /// The route for `key` and whether it is new, or `None` when it would
    /// be new and `gateway.max_routes` routes exist. A new route is set in
    /// motion by [`Gateway::advance_resolution`] once what waits for it is
    /// queued, since its resolution may end at once.
    pub(super) fn route_entry(&mut self, key: &RouteKey) -> Option<(&mut Route, bool)> {
        let new = !self.routes.contains_key(key);
        if new {
            if self.routes.len() >= self.settings.bounds.max_routes {
                return None;
            }
            let remote = key.1.clone();
            let options = ResolveOptions {
                direct_tls: self.settings.direct_tls_to(&remote),
                connect: self
                    .settings
                    .connect_for(&remote)
                    .map(|(host, port)| Connect {
                        host,
                        port,
                        direct_tls: false,
                    }),
                hosts: self.hosts.clone(),
                ..ResolveOptions::default()
            };
            let resolution = Resolution::new(&remote, &options, self.rng.next_u64());
            self.routes.insert(
                key.clone(),
                Route {
                    state: RouteState::Resolving {
                        resolution,
                        waiting_since: None,
                    },
                    queue: VecDeque::new(),
                    verifies: Vec::new(),
                },
            );
            self.detail(None, format!("new route {} -> {}", key.0, key.1));
        }
        self.routes.get_mut(key).map(|r| (r, new))
    }

    /// Moves a resolution on: its queries wait their turn for a DNS slot,
    /// and its outcome, if it has one, starts the stream or fails the
    /// route.
    pub(super) fn advance_resolution(&mut self, key: RouteKey, t: Time) {
        self.queue_for_dns(&key, t);
        self.pump_dns(t);
        self.take_outcome(key, t);
    }

    /// Puts a route with a query to send at the back of the DNS queue.
    pub(super) fn queue_for_dns(&mut self, key: &RouteKey, t: Time) {
        if let Some(Route {
            state:
                RouteState::Resolving {
                    resolution,
                    waiting_since: waiting_since @ None,
                },
            ..
        }) = self.routes.get_mut(key)
        {
            if resolution.wants_query() {
                *waiting_since = Some(t.now);
                self.dns_waiting.push_back(key.clone());
            }
        }
    }

    /// Sends waiting queries, one route at a time in turn, while fewer than
    /// `gateway.max_dns_queries` are out.
    pub(super) fn pump_dns(&mut self, t: Time) {
        let most = self.settings.bounds.max_dns_queries;
        let mut served = Vec::new();
        while self.queries.len() < most {
            let Some(key) = self.dns_waiting.pop_front() else {
                break;
            };
            let Some(Route {
                state:
                    RouteState::Resolving {
                        resolution,
                        waiting_since,
                    },
                ..
            }) = self.routes.get_mut(&key)
            else {
                continue;
            };
            let Some(since) = waiting_since.take() else {
                continue;
            };
            let query = resolution.poll_query(t.now);
            if query.is_some() && resolution.wants_query() {
                // Its other queries keep waiting, at the back, since then.
                *waiting_since = Some(since);
                self.dns_waiting.push_back(key.clone());
            }
            if let Some(q) = query {
                self.send_query(&key, q, t);
            }
            served.push(key);
        }
        if !self.dns_waiting.is_empty() {
            let waiting = self.dns_waiting.len();
            let event = Event::LimitReached {
                conn: None,
                key: "gateway.max_dns_queries",
                detail: format!(
                    "{most} DNS queries in flight: {waiting} resolution(s) wait their turn"
                ),
            };
            self.event_limited(LogSource::Bound("gateway.max_dns_queries"), event, t.now);
        }
        for key in served {
            self.take_outcome(key, t);
        }
    }

    pub(super) fn send_query(&mut self, key: &RouteKey, q: Query, t: Time) {
        let query = QueryId(self.next_query);
        self.next_query += 1;
        // The runtime drops the query then (`Output::DnsQuery::timeout`).
        let deadline = t.now + q.timeout;
        self.queries.insert(
            query,
            QueryOut {
                route: key.clone(),
                id: q.id,
                deadline,
            },
        );
        self.out.push_back(Output::DnsQuery {
            query,
            bytes: q.message,
            tcp: q.transport == Transport::Tcp,
            timeout: q.timeout,
        });
    }

    /// Fails the routes that waited longer than `dns_wait_limit` for a DNS
    /// slot, as a resolver that does not answer would have: the resolver
    /// is busy with `max_dns_queries` others.
    pub(super) fn expire_dns_waits(&mut self, t: Time) {
        let limit = self.dns_wait_limit;
        let late: Vec<RouteKey> = self
            .routes
            .iter()
            .filter(|(_, r)| {
                matches!(r.state, RouteState::Resolving { waiting_since: Some(since), .. } if since + limit <= t.now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let why = format!(
            "no DNS query slot for {}s (gateway.max_dns_queries {} in flight)",
            limit.as_secs(),
            self.settings.bounds.max_dns_queries
        );
        for key in late {
            self.routes_fail(key, StanzaCondition::RemoteServerTimeout, &why, t);
        }
    }

    /// The outcome of a route's resolution, when it has one.
    pub(super) fn take_outcome(&mut self, key: RouteKey, t: Time) {
        let outcome = match self.routes.get_mut(&key) {
            Some(Route {
                state: RouteState::Resolving { resolution, .. },
                ..
            }) => resolution.poll_outcome(),
            _ => return,
        };
        // Its queries were all answered or timed out: none is left to count.
        let Some(outcome) = outcome else {
            return;
        };
        match outcome {
            Ok(list) => {
                let rest: VecDeque<Candidate> = list.into_iter().collect();
                self.detail(
                    None,
                    format!("{}: {} candidate address(es)", key.1, rest.len()),
                );
                if let Some(route) = self.routes.get_mut(&key) {
                    route.state = RouteState::Streaming {
                        conn: ConnId(0),
                        rest,
                        ready: false,
                    };
                }
                self.next_candidate(key, t);
            }
            Err(ResolveError::NotFound) => self.routes_fail(
                key,
                StanzaCondition::RemoteServerNotFound,
                "no DNS records",
                t,
            ),
            Err(ResolveError::Unavailable) => self.routes_fail(
                key,
                StanzaCondition::RemoteServerNotFound,
                "the domain publishes no XMPP service",
                t,
            ),
            Err(ResolveError::Timeout) => self.routes_fail(
                key,
                StanzaCondition::RemoteServerTimeout,
                "DNS did not answer",
                t,
            ),
        }
    }

    /// Tries the next candidate address of a route, or fails the route.
    pub(super) fn next_candidate(&mut self, key: (String, String), t: Time) {
        let next = match self.routes.get_mut(&key) {
            Some(Route {
                state:
                    RouteState::Streaming {
                        rest, ready: false, ..
                    },
                ..
            }) => rest.pop_front(),
            _ => return,
        };
        let Some(candidate) = next else {
            self.routes_fail(
                key,
                StanzaCondition::RemoteServerTimeout,
                "no candidate address accepted a stream",
                t,
            );
            return;
        };
        let partner = self.settings.partners.partner_of(&key.1);
        let limit = self.settings.partners.connection_limit(&key.1);
        if self.partner_streams(&partner) >= limit {
            let why = format!("{partner} already holds {limit} stream(s) (its connection_limit)");
            self.event(Event::LimitReached {
                conn: None,
                key: "partner connection_limit",
                detail: format!("{} -> {}: {why}", key.0, key.1),
            });
            return self.routes_fail(key, StanzaCondition::ResourceConstraint, &why, t);
        }
        let conn = self.new_conn();
        let rng = self.rng.fork();
        let session =
            Session::outbound(&key.0, &key.1, candidate.direct_tls, &self.settings, rng, t);
        self.sessions.insert(conn, Box::new(session));
        self.route_of.insert(conn, key.clone());
        if let Some(Route {
            state: RouteState::Streaming { conn: c, .. },
            ..
        }) = self.routes.get_mut(&key)
        {
            *c = conn;
        }
        self.event(Event::Connecting {
            conn,
            domain: key.1.clone(),
            addr: candidate.addr,
            direct_tls: candidate.direct_tls,
        });
        self.out.push_back(Output::Connect {
            conn,
            addr: candidate.addr,
        });
        // Verifications waiting for this route go on the new stream.
        let pending = self
            .routes
            .get_mut(&key)
            .map(|r| std::mem::take(&mut r.verifies))
            .unwrap_or_default();
        for v in pending {
            self.send_verify(conn, v, t);
        }
    }

    pub(super) fn flush_route(&mut self, key: &(String, String), conn: ConnId, t: Time) {
        let queued = match self.routes.get_mut(key) {
            Some(r) => std::mem::take(&mut r.queue),
            None => VecDeque::new(),
        };
        if let Some(s) = self.sessions.get_mut(&conn) {
            for stanza in &queued {
                s.send_stanza(stanza, t);
            }
            self.stanzas.sent += queued.len() as u64;
        }
        for stanza in &queued {
            self.settle(stanza, Ok(()), t);
        }
        self.drain(conn);
    }

    /// A stream attempt failed: the next candidate if the route was never
    /// ready and has one, else the route fails.
    pub(super) fn fail_route(
        &mut self,
        key: (String, String),
        condition: StanzaCondition,
        reason: &str,
        t: Time,
    ) {
        let retry = matches!(
            self.routes.get(&key),
            Some(Route { state: RouteState::Streaming { rest, ready: false, .. }, .. }) if !rest.is_empty()
        );
        if retry {
            self.detail(
                None,
                format!(
                    "{}: attempt failed ({reason}); trying the next address",
                    key.1
                ),
            );
            return self.next_candidate(key, t);
        }
        self.routes_fail(key, condition, reason, t);
    }

    /// Removes a route, bouncing every stanza that waited for it.
    pub(super) fn routes_fail(
        &mut self,
        key: (String, String),
        condition: StanzaCondition,
        reason: &str,
        t: Time,
    ) {
        let Some(route) = self.drop_route(&key) else {
            return;
        };
        let (local, remote) = (&key.0, &key.1);
        if !route.queue.is_empty() || route.verifies.is_empty() {
            self.event(Event::RouteFailed {
                local: local.clone(),
                remote: remote.clone(),
                condition,
                reason: reason.to_owned(),
                bounced: route.queue.len(),
            });
        }
        for stanza in route.queue {
            self.bounce(&stanza, condition, reason, t);
        }
        for v in route.verifies {
            // A route only verifications wanted (which a peer can ask for
            // by the thousand) is logged within the asking stream's budget.
            let event = Event::DialbackRefused {
                conn: v.inbound,
                sender: remote.clone(),
                target: local.clone(),
                condition,
                reason: format!("route failed ({reason})"),
            };
            self.event_limited(LogSource::Stream(v.inbound), event, t.now);
            self.verify_failed(v, condition, t);
        }
    }

    pub(super) fn bounce(
        &mut self,
        stanza: &Element,
        condition: StanzaCondition,
        reason: &str,
        t: Time,
    ) {
        if self.settle(stanza, Err(condition), t) {
            return;
        }
        if let Some(reply) = stanza::error_reply(stanza, condition, Some(reason)) {
            self.route(reply);
        }
    }

    /// Drops a route still being set up that nothing waits for any more
    /// (no stanza, no verification queued or sent on its stream), and its
    /// stream; a route that is up stays, for the next stanza.
    pub(super) fn abandon_if_unused(&mut self, key: &RouteKey) {
        let unused = match self.routes.get(key) {
            Some(r) if r.queue.is_empty() && r.verifies.is_empty() => match r.state {
                RouteState::Resolving { .. } => true,
                RouteState::Streaming {
                    conn, ready: false, ..
                } => !self.verifying.iter().any(|(c, _)| *c == conn),
                RouteState::Streaming { ready: true, .. } => false,
            },
            _ => false,
        };
        if !unused {
            return;
        }
        let Some(route) = self.drop_route(key) else {
            return;
        };
        self.detail(
            None,
            format!(
                "route {} -> {} abandoned: nothing waits for it any more",
                key.0, key.1
            ),
        );
        if let RouteState::Streaming { conn, .. } = route.state {
            if self.sessions.remove(&conn).is_some() {
                self.out.push_back(Output::Close { conn });
            }
        }
    }

    /// Removes a route, and its place in the DNS queue.
    pub(super) fn drop_route(&mut self, key: &RouteKey) -> Option<Route> {
        let route = self.routes.remove(key)?;
        match route.state {
            RouteState::Resolving {
                waiting_since: Some(_),
                ..
            } => self.dns_waiting.retain(|k| k != key),
            RouteState::Streaming { conn, .. } => {
                self.route_of.remove(&conn);
            }
            RouteState::Resolving { .. } => {}
        }
        Some(route)
    }
}
