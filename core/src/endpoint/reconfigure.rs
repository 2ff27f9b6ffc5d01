//! The SIP side under a reloaded configuration: accounts, access rules,
//! trusted peers, certificates and bounds are replaced; what it holds
//! (transactions, dialogs, queues, authorizations) stays, except the
//! registrations of accounts that are gone, which are removed and
//! forgotten by the store. A bound lowered below what is held refuses
//! newcomers and lets the excess drain.

use super::*;

impl Endpoint {
    /// Applies `config` (validated; its domains and SIP mode are those
    /// running) with `settings` made from it.
    pub fn reconfigure(&mut self, config: &Config, settings: SipSettings) {
        let sip = &config.sip;
        let bound = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        self.trusted.clone_from(&sip.trusted);
        self.trust_udp = sip.trust_udp;
        self.settings = settings;
        self.limits.max_message_size = sip.max_message_size;
        self.max_stanza_size = config.gateway.max_stanza_size;
        self.access.reconfigure(config);
        self.table.set_max_servers(bound(sip.max_transactions));
        self.connection_limit = bound(sip.connection_limit);
        self.timeouts = Timeouts {
            handshake: sip.handshake_timeout,
            request: sip.request_timeout,
            idle: sip.idle_timeout,
        };
        self.backpressure.set_limits(sip.queues);
        self.watchers.set_max(bound(sip.max_watchers));
        self.subs
            .set_max_subscriptions(bound(sip.max_subscriptions));
        self.upstream
            .set_bounds(bound(sip.max_subscriptions), bound(sip.max_watchers));
        self.reprobe_after = config.gateway.subscription_refresh_interval;
        self.subscribe_expires = ExpiresPolicy::PRESENCE.capped(
            u32::try_from(config.gateway.subscription_refresh_interval.as_secs())
                .unwrap_or(u32::MAX),
        );
        let gone = self.registrar.reconfigure(sip);
        for change in &gone {
            if let Persist::DeleteBinding { aor, .. } = change {
                self.flows.retain(|(a, _), _| a != aor);
            }
        }
        self.persist(gone);
    }
}
