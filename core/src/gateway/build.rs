//! A gateway built from its configuration: [`Gateway::new`] takes the
//! loaded [`Config`] and the [`Setup`] the host read or bound, and derives
//! every setting from them, so that no runtime assembles it step by step.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::dns::HostsTable;
use crate::endpoint::{Endpoint, NextHop, SipSettings, Turn};
use crate::store::Stored;
use crate::tls::{self, CallerClock, LocalIdentity, TrustAnchors};
use crate::xml::Limits;
use crate::xmpp::session::{Reading, S2sBounds, Settings};

use super::Gateway;

/// What a gateway runs with besides its configuration: what the host read
/// from files, bound, or found in the store.
#[derive(Debug)]
pub struct Setup {
    /// Our certificate chain and key (`[tls] certificate`, `key`); `None`
    /// runs without TLS at all (fuzzing and tests only: every partner
    /// policy that requires TLS then fails).
    pub identity: Option<LocalIdentity>,
    /// What peer certificates are checked against (`[tls] trust`).
    pub trust: TrustAnchors,
    /// The dialback secret (XEP-0185): `gateway.dialback_secret` or the
    /// one kept beside the certificate, shared by every instance.
    pub dialback_secret: String,
    /// Local names and addresses, consulted before DNS (`/etc/hosts`).
    pub hosts: HostsTable,
    /// The SIP UDP sockets the runtime bound (requests over UDP leave from
    /// one of them).
    pub sip_udp: Vec<SocketAddr>,
    /// Proxy mode: `sip.next_hop`, resolved.
    pub next_hop: Option<NextHop>,
    /// What the store kept: bindings, contacts, publications and
    /// authorizations.
    pub stored: Stored,
    /// `role = "gateway"`: the XMPP server to attach to as a component,
    /// or the edges to attach to.
    pub links: Vec<super::ComponentSetup>,
}

impl Gateway {
    /// The gateway of `config`, both roles (s2s and the SIP side), with
    /// what the store kept already loaded. `seed` comes from the operating
    /// system (or a test); `unix_now` is the wall clock at `now`, for
    /// certificate validity and binding expiry.
    pub fn new(
        config: Arc<Config>,
        setup: Setup,
        seed: [u8; 32],
        now: Instant,
        unix_now: u64,
    ) -> Gateway {
        let Setup {
            identity,
            trust,
            dialback_secret,
            hosts,
            sip_udp,
            next_hop,
            stored,
            links,
        } = setup;
        let clock = Arc::new(CallerClock::new(unix_now));
        let tls = Tls {
            identity: identity.as_ref(),
            clock: &clock,
        };
        let trust = Arc::new(trust);
        // The registrar's nonces are keyed by the dialback secret, so that
        // every instance of a deployment accepts the others' nonces.
        let digest_key = format!("xfed sip digest nonces:{dialback_secret}");
        let settings = session_settings(&config, &tls, &trust, dialback_secret);
        let sip = sip_settings(&config, &tls, trust, sip_udp, next_hop);
        let limit = config.gateway.connection_limit as usize;
        let mut gw = Gateway::with_settings(settings, seed, now, unix_now, limit);
        gw.hosts = Arc::new(hosts);
        gw.status.certificate_expiry = certificate_expiry(identity.as_ref());
        gw.links = links
            .into_iter()
            .map(|c| super::component::Link::new(c, now))
            .collect();
        if config.gateway.role == crate::config::Role::Edge {
            // The s2s side alone: the SIP side runs on the gateways.
            gw.edge = Some(super::internal::Edge::default());
            return gw;
        }
        gw.turn(now, |gw, t| {
            let rng = gw.rng.fork();
            let mut turn = Turn {
                now: t.now,
                unix: t.unix,
                ids: &mut gw.ids,
            };
            let mut ep = Endpoint::new(&config, sip, digest_key.as_bytes(), rng, &mut turn);
            ep.restore(stored, &mut turn);
            gw.sip = Some(ep);
            gw.pump_sip();
        });
        gw
    }
}

impl Gateway {
    /// Turns the SIP side on with settings made elsewhere (the simulation).
    #[cfg(feature = "test-ca")]
    pub(crate) fn enable_sip(
        &mut self,
        config: &Config,
        settings: SipSettings,
        digest_key: &[u8],
        stored: Stored,
        now: Instant,
    ) {
        self.turn(now, |gw, t| {
            let rng = gw.rng.fork();
            let mut turn = Turn {
                now: t.now,
                unix: t.unix,
                ids: &mut gw.ids,
            };
            let mut ep = Endpoint::new(config, settings, digest_key, rng, &mut turn);
            ep.restore(stored, &mut turn);
            gw.sip = Some(ep);
            gw.pump_sip();
        });
    }
}

/// When our certificate expires (its leaf's notAfter), for the status
/// report.
pub(super) fn certificate_expiry(identity: Option<&LocalIdentity>) -> Option<u64> {
    let leaf = identity?.chain().first()?;
    tls::cert_not_after(leaf).ok()
}

/// Our certificate, if any, and the clock its peers' certificates are
/// checked against: what every rustls configuration is made of.
pub(super) struct Tls<'a> {
    pub(super) identity: Option<&'a LocalIdentity>,
    pub(super) clock: &'a Arc<CallerClock>,
}

impl Tls<'_> {
    pub(super) fn make<C>(
        &self,
        config: fn(&LocalIdentity, Arc<CallerClock>) -> Arc<C>,
    ) -> Option<Arc<C>> {
        self.identity.map(|id| config(id, self.clock.clone()))
    }
}

/// What the SIP side runs with, from the configuration and the host.
pub(super) fn sip_settings(
    config: &Config,
    tls: &Tls<'_>,
    trust: Arc<TrustAnchors>,
    udp: Vec<SocketAddr>,
    next_hop: Option<NextHop>,
) -> SipSettings {
    SipSettings {
        udp,
        tls_server: tls.make(tls::server_config),
        tls_client: tls.make(tls::client_config),
        trust,
        next_hop,
        log_message_bodies: config.gateway.log_message_bodies,
    }
}

/// What every s2s session shares, from the configuration.
pub(super) fn session_settings(
    config: &Arc<Config>,
    tls: &Tls<'_>,
    trust: &Arc<TrustAnchors>,
    dialback_secret: String,
) -> Settings {
    let g = &config.gateway;
    Settings {
        local_domains: g.domains.clone(),
        limits: Limits {
            max_stanza_size: g.max_stanza_size,
            ..Limits::default()
        },
        tls_server: tls.make(tls::server_config),
        tls_client: tls.make(tls::client_config),
        tls_server_direct: tls.make(tls::direct_tls_server_config),
        tls_client_direct: tls.make(tls::direct_tls_client_config),
        clock: tls.clock.clone(),
        trust: trust.clone(),
        dialback_secret,
        establishment_timeout: g.stream_establishment_timeout,
        inactivity_timeout: g.stream_inactivity_timeout,
        keepalive_interval: g.keepalive_interval,
        partners: config.clone(),
        bounds: S2sBounds::from_config(g),
        reading: match g.role {
            crate::config::Role::Edge => Reading::Stanzas,
            _ => Reading::Messages,
        },
    }
}
