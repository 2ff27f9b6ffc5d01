//! What sessions report: authenticated, ready, failed and closed streams,
//! stanzas and dialback steps.

use super::*;

impl Gateway {
    /// Moves a session's output and events into the gateway's.
    pub(super) fn take_session(&mut self, conn: ConnId, t: Time) {
        let mut events = Vec::new();
        if let Some(s) = self.sessions.get_mut(&conn) {
            if let Some(bytes) = s.poll_transmit() {
                self.out.push_back(Output::Transmit { conn, bytes });
            }
            while let Some(ev) = s.poll_event() {
                events.push(ev);
            }
        }
        for ev in events {
            self.on_session_event(conn, ev, t);
        }
        // Events may have produced more output on this or other sessions.
        if let Some(s) = self.sessions.get_mut(&conn) {
            if let Some(bytes) = s.poll_transmit() {
                self.out.push_back(Output::Transmit { conn, bytes });
            }
            if s.is_closed() {
                self.sessions.remove(&conn);
                self.out.push_back(Output::Close { conn });
            }
        }
    }

    /// The streams, in either direction, that carry a domain of
    /// `partner` (Lync's ConnectionLimit counts them all).
    pub(super) fn partner_streams(&self, partner: &str) -> usize {
        let partners = &self.settings.partners;
        self.sessions
            .values()
            .filter(|s| match s.direction() {
                Direction::Inbound => s.pairs().any(|(f, _)| partners.partner_of(f) == partner),
                Direction::Outbound { remote, .. } => partners.partner_of(remote) == partner,
            })
            .count()
    }

    pub(super) fn on_session_event(&mut self, conn: ConnId, ev: SessionEvent, t: Time) {
        match ev {
            SessionEvent::InboundAuthorized { from, to, method } => {
                self.authenticated(conn, true, to, from.clone(), method);
                self.enforce_partner_limit(conn, &from);
            }
            SessionEvent::OutboundReady {
                local,
                remote,
                method,
            } => {
                self.authenticated(conn, false, local.clone(), remote.clone(), method);
                let key = (local, remote);
                if let Some(Route {
                    state: RouteState::Streaming { ready, .. },
                    ..
                }) = self.routes.get_mut(&key)
                {
                    *ready = true;
                }
                self.flush_route(&key, conn, t);
            }
            SessionEvent::OutboundFailed { condition, reason } => {
                self.event(Event::StreamFailed {
                    conn,
                    condition,
                    reason: reason.clone(),
                });
                let key = self.route_of.remove(&conn);
                self.reclaim_verifies(conn, key.as_ref(), t);
                if let Some(key) = key {
                    self.fail_route(key, condition, &reason, t);
                }
            }
            SessionEvent::Stanza(e) => {
                self.stanzas.received += 1;
                self.route_from(e, conn);
            }
            SessionEvent::Relay(s) => {
                self.stanzas.received += 1;
                self.work.push_back(Work::Relay(s, conn));
            }
            SessionEvent::VerifyNeeded {
                receiving,
                originating,
                stream_id,
                key,
            } => {
                let v = PendingVerify {
                    inbound: conn,
                    receiving,
                    originating,
                    stream_id,
                    key,
                };
                self.verify_needed(v, t);
            }
            SessionEvent::VerifyAnswered {
                receiving,
                originating,
                stream_id,
                valid,
            } => {
                let Some(i) = self.verifying.iter().position(|(c, v)| {
                    *c == conn
                        && v.receiving == receiving
                        && v.originating == originating
                        && v.stream_id == stream_id
                }) else {
                    return;
                };
                let (_, v) = self.verifying.remove(i);
                let result = valid.ok_or(StanzaCondition::RemoteServerNotFound);
                self.finish_verify(v, result, t);
            }
            SessionEvent::DialbackRefused {
                sender,
                target,
                condition,
                reason,
            } => {
                let event = Event::DialbackRefused {
                    conn,
                    sender,
                    target,
                    condition,
                    reason,
                };
                self.event_limited(LogSource::Stream(conn), event, t.now)
            }
            SessionEvent::Notice(message) => self.detail(Some(conn), message),
            SessionEvent::Closed { reason } => {
                self.event(Event::StreamClosed {
                    conn,
                    reason: reason.clone(),
                });
                self.connection_gone(conn, StanzaCondition::RemoteServerTimeout, &reason, t);
                self.out.push_back(Output::Close { conn });
            }
        }
    }

    /// Reports a pair authenticated on `conn`, with its TLS version.
    fn authenticated(
        &mut self,
        conn: ConnId,
        inbound: bool,
        local: String,
        remote: String,
        method: AuthMethod,
    ) {
        let tls = self.sessions.get(&conn).and_then(|s| s.tls_version());
        self.event(Event::StreamAuthenticated {
            conn,
            inbound,
            local,
            remote,
            method,
            tls,
        });
    }

    /// Closes the inbound stream `conn`, just authenticated for `from`,
    /// when its partner now holds more streams than its `connection_limit`.
    fn enforce_partner_limit(&mut self, conn: ConnId, from: &str) {
        let partner = self.settings.partners.partner_of(from);
        let limit = self.settings.partners.connection_limit(from);
        if self.partner_streams(&partner) <= limit {
            return;
        }
        self.event(Event::LimitReached {
            conn: Some(conn),
            key: "partner connection_limit",
            detail: format!("{from} ({partner}) holds more than {limit} stream(s): stream closed"),
        });
        if let Some(s) = self.sessions.get_mut(&conn) {
            let error = StreamError::new(
                StreamCondition::ResourceConstraint,
                "too many connections from your domain",
            );
            s.close_with(&self.settings, error);
        }
    }

    /// Forgets a connection: the verifications it asked for, its route
    /// (bouncing what waits), and the verifications that depended on it.
    pub(super) fn connection_gone(
        &mut self,
        conn: ConnId,
        condition: StanzaCondition,
        reason: &str,
        t: Time,
    ) {
        self.sessions.remove(&conn);
        // What it carried before it ended is still routed.
        self.release(conn);
        self.forget_verifies_of(conn);
        let suppressed = self.log_budget.forget(&LogSource::Stream(conn));
        if suppressed > 0 {
            self.event(Event::Suppressed {
                conn: Some(conn),
                count: suppressed,
            });
        }
        let key = self.route_of.remove(&conn);
        self.reclaim_verifies(conn, key.as_ref(), t);
        if let Some(key) = key {
            let ready = matches!(
                self.routes.get(&key),
                Some(Route {
                    state: RouteState::Streaming { ready: true, .. },
                    ..
                })
            );
            if ready {
                // A working stream ended: the next stanza opens a new one.
                if let Some(route) = self.drop_route(&key) {
                    for stanza in route.queue {
                        self.route(stanza);
                    }
                }
            } else {
                self.fail_route(key, condition, reason, t);
            }
        }
    }
}
