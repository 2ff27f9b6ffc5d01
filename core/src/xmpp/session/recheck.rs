//! A live stream judged again under new settings (a configuration
//! reload): whether every domain pair it carries is still allowed, and
//! allowed the way it was authenticated. A stream error is the only way
//! XMPP has to take back an authenticated pair, so the answer is for the
//! whole stream.

use super::{Direction, Session, Settings};
use crate::config::Negotiation;
use crate::xmpp::{StreamCondition, StreamError};

impl Session {
    /// `Ok` when the stream may stay under `settings`; else the stream
    /// error to close it with: `host-unknown` for a domain no longer
    /// served, `policy-violation` for a peer no longer admitted, or
    /// admitted only with TLS, SASL or without dialback where this stream
    /// has not.
    pub fn recheck(&self, settings: &Settings) -> Result<(), StreamError> {
        let inbound = matches!(self.dir, Direction::Inbound);
        let pairs = self
            .authorized
            .iter()
            .chain(self.verifying.iter())
            .map(|(a, b)| if inbound { (b, a) } else { (a, b) });
        let claimed = self.peer_from.iter().filter(|_| inbound);
        for (local, remote) in pairs
            .map(|(l, r)| (Some(l), r))
            .chain(claimed.map(|r| (None, r)))
        {
            if let Some(local) = local.filter(|l| !settings.is_local(l)) {
                return Err(StreamError::new(
                    StreamCondition::HostUnknown,
                    format!("{local} is no longer served here"),
                ));
            }
            let violation =
                |why: String| Err(StreamError::new(StreamCondition::PolicyViolation, why));
            let Some(policy) = settings.policy(remote) else {
                return violation(format!("{remote} is no longer allowed to federate"));
            };
            if policy.tls == Negotiation::Required && !self.is_tls() {
                return violation(format!("TLS is now required for {remote}"));
            }
            if !self.sasl_done && self.is_established() {
                if policy.sasl == Negotiation::Required {
                    return violation(format!("SASL EXTERNAL is now required for {remote}"));
                }
                if !policy.dialback {
                    return violation(format!("dialback is no longer accepted for {remote}"));
                }
            }
        }
        Ok(())
    }
}
