//! What each input does to the gateway. The public methods of
//! [`Gateway`] stamp the time, call these, then run the work they queued.

use super::*;

impl Gateway {
    pub(super) fn on_datagram(
        &mut self,
        local: SocketAddr,
        peer: SocketAddr,
        bytes: &[u8],
        t: Time,
    ) {
        self.with_sip(t, |ep, turn| ep.handle_datagram(local, peer, bytes, turn));
    }

    /// Closes a connection as soon as it was accepted, saying why.
    fn refuse(&mut self, conn: ConnId, peer: SocketAddr, refusal: Refusal) {
        self.event(Event::ConnectionRefused {
            conn,
            peer,
            refusal,
        });
        self.out.push_back(Output::Close { conn });
    }

    pub(super) fn on_accept(&mut self, listener: Listener, peer: SocketAddr, t: Time) -> ConnId {
        let conn = self.new_conn();
        if self.shutting_down {
            self.refuse(conn, peer, Refusal::ShuttingDown);
            return conn;
        }
        if listener == Listener::Internal {
            if self.edge.is_some() {
                self.internal_accept(conn, peer, t);
            } else {
                self.refuse(conn, peer, Refusal::NotServed);
            }
            return conn;
        }
        if matches!(listener, Listener::SipTcp | Listener::SipTls) {
            let tls = listener == Listener::SipTls;
            if !self.with_sip(t, |ep, turn| ep.accept(conn, peer, tls, turn)) {
                self.refuse(conn, peer, Refusal::NotServed);
            }
            return conn;
        }
        if self.s2s_connections() >= self.connection_limit {
            // A connection flood is many refusals: lines within a budget.
            let refusal = Refusal::Limit {
                key: "gateway.connection_limit",
                limit: self.connection_limit,
            };
            let event = Event::ConnectionRefused {
                conn,
                peer,
                refusal,
            };
            self.event_limited(LogSource::Bound("connection_limit"), event, t.now);
            self.out.push_back(Output::Close { conn });
            return conn;
        }
        let rng = self.rng.fork();
        let session = Session::inbound(listener == Listener::S2sDirectTls, &self.settings, rng, t);
        self.sessions.insert(conn, Box::new(session));
        self.event(Event::Accepted {
            conn,
            listener,
            peer,
        });
        self.drain(conn);
        conn
    }

    pub(super) fn on_connected(&mut self, conn: ConnId, t: Time) {
        if self.is_component(conn) {
            return self.component_connected(conn, t);
        }
        if self.is_sip(conn) {
            self.with_sip(t, |ep, turn| ep.handle_connected(conn, turn));
            return;
        }
        match self.sessions.get_mut(&conn) {
            Some(s) => s.handle_connected(&self.settings, t),
            // Given up on while it connected (a timeout): not wanted t.now.
            None => return self.out.push_back(Output::Close { conn }),
        }
        self.drain(conn);
    }

    pub(super) fn on_connect_failed(&mut self, conn: ConnId, reason: &str, t: Time) {
        if self.is_component(conn) {
            return self.component_gone(conn, reason, t);
        }
        if self.is_sip(conn) {
            self.with_sip(t, |ep, turn| ep.handle_connect_failed(conn, reason, turn));
            return;
        }
        self.event(Event::ConnectFailed {
            conn,
            reason: reason.to_owned(),
        });
        self.sessions.remove(&conn);
        let key = self.route_of.remove(&conn);
        self.reclaim_verifies(conn, key.as_ref(), t);
        if let Some(key) = key {
            self.fail_route(key, StanzaCondition::RemoteServerTimeout, reason, t);
        }
    }

    pub(super) fn on_bytes(&mut self, conn: ConnId, bytes: &[u8], t: Time) {
        if self.is_component(conn) {
            return self.component_bytes(conn, bytes, t);
        }
        if self.is_internal(conn) {
            return self.internal_bytes(conn, bytes, t);
        }
        if self.is_sip(conn) {
            self.with_sip(t, |ep, turn| ep.handle_bytes(conn, bytes, turn));
            return;
        }
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.handle_bytes(bytes, &self.settings, t);
        }
        self.drain(conn);
    }

    pub(super) fn on_closed(&mut self, conn: ConnId, t: Time) {
        if self.is_component(conn) {
            return self.component_gone(conn, "closed by the server", t);
        }
        if self.is_internal(conn) {
            return self.internal_gone(conn, "closed by the gateway", t);
        }
        if self.is_sip(conn) {
            self.with_sip(t, |ep, turn| ep.handle_closed(conn, turn));
            return;
        }
        if self.sessions.contains_key(&conn) {
            self.detail(Some(conn), "connection closed by peer".into());
            self.connection_gone(
                conn,
                StanzaCondition::RemoteServerTimeout,
                "connection closed",
                t,
            );
        }
    }

    pub(super) fn on_timeout(&mut self, t: Time) {
        self.component_timeout(t);
        self.internal_timeout(t);
        let due: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.poll_timeout(&self.settings).is_some_and(|d| d <= t.now))
            .map(|(c, _)| *c)
            .collect();
        for conn in due {
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.handle_timeout(&self.settings, t);
            }
            self.drain(conn);
        }
        // The runtime drops a query at its deadline: its slot is free.
        self.queries.retain(|_, q| q.deadline > t.now);
        let keys: Vec<RouteKey> = self
            .routes
            .iter()
            .filter(|(_, r)| matches!(&r.state, RouteState::Resolving { resolution, .. } if resolution.poll_timeout().is_some_and(|d| d <= t.now)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(Route {
                state: RouteState::Resolving { resolution, .. },
                ..
            }) = self.routes.get_mut(&key)
            {
                resolution.handle_timeout(t.now);
            }
            self.advance_resolution(key, t);
        }
        self.expire_dns_waits(t);
        self.pump_dns(t);
        let sip_due = self
            .sip
            .as_ref()
            .and_then(Endpoint::poll_timeout)
            .is_some_and(|d| d <= t.now);
        if sip_due {
            self.with_sip(t, |ep, turn| ep.handle_timeout(turn));
        }
    }

    pub(super) fn on_dns(&mut self, query: QueryId, bytes: &[u8], t: Time) {
        let Some(q) = self.queries.remove(&query) else {
            return;
        };
        if let Some(Route {
            state: RouteState::Resolving { resolution, .. },
            ..
        }) = self.routes.get_mut(&q.route)
        {
            resolution.handle_response(q.id, bytes);
        }
        // Also when the route is gone: the slot it freed serves another.
        self.advance_resolution(q.route, t);
    }

    pub(super) fn on_shutdown(&mut self, t: Time) {
        self.shutting_down = true;
        let conns: Vec<ConnId> = self.sessions.keys().copied().collect();
        for conn in conns {
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.close_gracefully("shutting down", t.now);
            }
            self.drain(conn);
        }
    }
}
