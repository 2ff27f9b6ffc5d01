//! A configuration read again and applied to the running gateway
//! (SIGHUP, `xfed reload`): the settings every session consults are
//! replaced, so that policy, limits and certificates apply from the next
//! decision on; streams the new configuration no longer allows are closed
//! with the stream error that says why, and routes to domains no longer
//! admitted fail, bouncing what waited; the SIP side takes its new
//! accounts, access rules and limits. What a reload may not change is
//! refused before this (`config::reload::changes`).

use super::build::{certificate_expiry, session_settings, sip_settings, Tls};
use super::*;
use crate::config::Config;
use crate::endpoint::NextHop;
use crate::tls::{LocalIdentity, TrustAnchors};

/// What a reload reads besides the configuration: [`Setup`] without the
/// store's contents, which stay in the running tables.
#[derive(Debug)]
pub struct Reload {
    /// Our certificate chain and key, read again.
    pub identity: Option<LocalIdentity>,
    /// The trust anchors, read again.
    pub trust: TrustAnchors,
    /// The dialback secret (a new one invalidates keys in flight: their
    /// verifications fail and the peers retry).
    pub dialback_secret: String,
    /// The SIP UDP sockets bound now.
    pub sip_udp: Vec<SocketAddr>,
    /// Proxy mode: `sip.next_hop`, resolved again.
    pub next_hop: Option<NextHop>,
}

impl Setup {
    /// The parts of a freshly loaded set-up that a reload applies.
    pub fn into_reload(self) -> Reload {
        Reload {
            identity: self.identity,
            trust: self.trust,
            dialback_secret: self.dialback_secret,
            sip_udp: self.sip_udp,
            next_hop: self.next_hop,
        }
    }
}

impl Gateway {
    /// Applies `config` (already validated, and compared with the running
    /// one by the caller into `changes`, the lines reported).
    pub fn reload(&mut self, config: Arc<Config>, r: Reload, changes: Vec<String>, now: Instant) {
        self.turn(now, |gw, t| gw.on_reload(config, r, changes, t))
    }

    fn on_reload(&mut self, config: Arc<Config>, r: Reload, changes: Vec<String>, t: Time) {
        let clock = self.settings.clock.clone();
        let tls = Tls {
            identity: r.identity.as_ref(),
            clock: &clock,
        };
        let trust = Arc::new(r.trust);
        self.settings = session_settings(&config, &tls, &trust, r.dialback_secret);
        self.status.certificate_expiry = certificate_expiry(r.identity.as_ref());
        self.connection_limit = config.gateway.connection_limit as usize;
        let mut closed = 0;
        // Routes first, so that what waited on them bounces as refused
        // rather than as a broken stream.
        let refused: Vec<RouteKey> = self
            .routes
            .keys()
            .filter(|(_, remote)| self.settings.policy(remote).is_none())
            .cloned()
            .collect();
        for key in refused {
            self.routes_fail(
                key,
                StanzaCondition::RemoteServerNotFound,
                "domain is no longer a federation partner",
                t,
            );
        }
        let refused: Vec<(ConnId, StreamError)> = self
            .sessions
            .iter()
            .filter_map(|(conn, s)| s.recheck(&self.settings).err().map(|e| (*conn, e)))
            .collect();
        for (conn, error) in refused {
            closed += 1;
            self.detail(Some(conn), format!("reload: closing the stream: {error}"));
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.close_with(&self.settings, error);
            }
            self.drain(conn);
        }
        let sip = sip_settings(&config, &tls, trust, r.sip_udp, r.next_hop);
        self.with_sip(t, |ep, _| ep.reconfigure(&config, sip));
        self.event(Event::Reloaded { changes, closed });
    }
}
