//! The receiving side of dialback across streams: verifications asked for
//! by inbound streams, sent over outbound ones to the authoritative
//! server, bounded per stream and per domain.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PendingVerify {
    /// The inbound connection that asked.
    pub(super) inbound: ConnId,
    pub(super) receiving: String,
    pub(super) originating: String,
    pub(super) stream_id: String,
    pub(super) key: String,
}

impl Gateway {
    /// Receiving role: an inbound stream asks for a verification, which
    /// goes to the authoritative server unless its domain has
    /// `gateway.max_pending_dialback_per_domain` waiting already.
    pub(super) fn verify_needed(&mut self, v: PendingVerify, t: Time) {
        let most = self.settings.bounds.max_pending_dialback_per_domain;
        let originating = v.originating.clone();
        if self
            .pending_by_domain
            .get(&originating)
            .copied()
            .unwrap_or(0)
            >= most
        {
            let why = format!(
                "{most} verifications of {originating} already pending (gateway.max_pending_dialback_per_domain)"
            );
            return self.refuse_verify(v, &why, t);
        }
        *self
            .pending_by_domain
            .entry(originating.clone())
            .or_default() += 1;
        self.detail(
            Some(v.inbound),
            format!("verifying dialback key of {originating} with its authoritative server"),
        );
        self.request_verify(v, t);
    }

    /// Takes back the verifications sent on `conn`, which will never answer
    /// them now. On a route still being set up (`key`) they wait again, so
    /// the next candidate carries them or the route's failure fails them;
    /// otherwise they fail at once.
    pub(super) fn reclaim_verifies(
        &mut self,
        conn: ConnId,
        key: Option<&(String, String)>,
        t: Time,
    ) {
        let (orphans, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.verifying)
            .into_iter()
            .partition(|(c, _)| *c == conn);
        self.verifying = kept;
        let setting_up = key
            .and_then(|k| self.routes.get_mut(k))
            .filter(|r| matches!(r.state, RouteState::Streaming { ready: false, .. }));
        match setting_up {
            Some(route) => route.verifies.extend(orphans.into_iter().map(|(_, v)| v)),
            None => {
                for (_, v) in orphans {
                    self.verify_failed(v, StanzaCondition::RemoteServerTimeout, t);
                }
            }
        }
    }

    /// Drops the verifications `inbound` asked for, since nobody can hear
    /// their answers now, and the routes being set up only for them
    /// (XEP-0220 section 2.1.2: a late answer is dropped anyway).
    pub(super) fn forget_verifies_of(&mut self, inbound: ConnId) {
        let mut forgotten: Vec<PendingVerify> = Vec::new();
        self.verifying.retain(|(_, v)| {
            let mine = v.inbound == inbound;
            if mine {
                forgotten.push(v.clone());
            }
            !mine
        });
        for route in self.routes.values_mut() {
            route.verifies.retain(|v| {
                let mine = v.inbound == inbound;
                if mine {
                    forgotten.push(v.clone());
                }
                !mine
            });
        }
        if forgotten.is_empty() {
            return;
        }
        self.detail(
            Some(inbound),
            format!(
                "stream gone: {} dialback verification(s) it asked for forgotten",
                forgotten.len()
            ),
        );
        let mut keys: Vec<RouteKey> = Vec::new();
        for v in &forgotten {
            self.untrack_verify(v);
            let key = (v.receiving.clone(), v.originating.clone());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        for key in keys {
            self.abandon_if_unused(&key);
        }
    }

    pub(super) fn verify_failed(&mut self, v: PendingVerify, cond: StanzaCondition, t: Time) {
        self.finish_verify(v, Err(cond), t);
    }

    /// A pending verification ends: its result goes to the stream that
    /// asked, and it no longer counts against its domain's bound.
    pub(super) fn finish_verify(
        &mut self,
        v: PendingVerify,
        result: Result<bool, StanzaCondition>,
        t: Time,
    ) {
        self.untrack_verify(&v);
        self.answer_verify(&v, result, t);
    }

    /// A verification refused before it started (a bound reached).
    pub(super) fn refuse_verify(&mut self, v: PendingVerify, why: &str, t: Time) {
        let event = Event::DialbackRefused {
            conn: v.inbound,
            sender: v.originating.clone(),
            target: v.receiving.clone(),
            condition: StanzaCondition::ResourceConstraint,
            reason: why.to_owned(),
        };
        self.event_limited(LogSource::Stream(v.inbound), event, t.now);
        self.answer_verify(&v, Err(StanzaCondition::ResourceConstraint), t);
    }

    pub(super) fn answer_verify(
        &mut self,
        v: &PendingVerify,
        result: Result<bool, StanzaCondition>,
        t: Time,
    ) {
        if let Some(s) = self.sessions.get_mut(&v.inbound) {
            s.dialback_verified(&v.receiving, &v.originating, result, &self.settings, t);
        }
        self.drain(v.inbound);
    }

    pub(super) fn untrack_verify(&mut self, v: &PendingVerify) {
        if let Some(n) = self.pending_by_domain.get_mut(&v.originating) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending_by_domain.remove(&v.originating);
            }
        }
    }

    pub(super) fn request_verify(&mut self, v: PendingVerify, t: Time) {
        let key = (v.receiving.clone(), v.originating.clone());
        let usable = self
            .route_conn(&key)
            .filter(|c| self.sessions.get(c).is_some_and(|s| !s.is_closed()));
        if let Some(conn) = usable {
            return self.send_verify(conn, v, t);
        }
        let Some((route, new)) = self.route_entry(&key) else {
            let why = self.routes_full();
            self.untrack_verify(&v);
            return self.refuse_verify(v, &why, t);
        };
        match route.state {
            RouteState::Streaming { conn, .. } => self.send_verify(conn, v, t),
            RouteState::Resolving { .. } => route.verifies.push(v),
        }
        if new {
            self.advance_resolution(key, t);
        }
    }

    pub(super) fn route_conn(&self, key: &(String, String)) -> Option<ConnId> {
        match self.routes.get(key)?.state {
            RouteState::Streaming { conn, .. } => Some(conn),
            _ => None,
        }
    }

    pub(super) fn send_verify(&mut self, conn: ConnId, v: PendingVerify, t: Time) {
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.request_verify(&v.receiving, &v.originating, &v.stream_id, &v.key, t);
        }
        self.verifying.push((conn, v));
        self.drain(conn);
    }
}
