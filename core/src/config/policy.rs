//! Federation policy: which remote domains may federate, and how their
//! streams are negotiated. The s2s layer asks here once it knows the
//! domain a peer claims, before authenticating it.

use std::fmt;

use super::values::glob_match;
use super::{Config, FederationMode, Negotiation, Partner, PartnerType, StreamPolicy};

/// Negotiation for a domain admitted by `federation = "open"` or
/// `"deny-list"` without a `[[partner]]` entry.
///
/// TLS is required: modern servers refuse plaintext s2s, and dialback over
/// plain TCP would let anyone on the path impersonate a domain nobody has
/// vetted. SASL EXTERNAL is used when the peer's certificate allows it,
/// dialback (over TLS) otherwise, as Prosody and ejabberd do by default.
/// This is a clean row of Lync's matrix (no warning), unlike
/// tls = optional, which Lync flags.
pub const OPEN_FEDERATION_POLICY: StreamPolicy = StreamPolicy {
    tls: Negotiation::Required,
    sasl: Negotiation::Optional,
    dialback: true,
    keepalive: true,
};

/// What the s2s side asks about a remote domain: whether and how it may
/// federate, where its server is, how many streams it may hold. The
/// configuration answers ([`Config`] implements it from `[[partner]]`,
/// `[[block]]` and `gateway.federation`); simulations and fuzzing give
/// their own tables.
pub trait Partners: fmt::Debug + Send + Sync {
    /// How to negotiate with `domain`; `None` refuses it.
    fn policy(&self, domain: &str) -> Option<StreamPolicy>;
    /// The fixed address of `domain`'s server (a partner's `connect`),
    /// which replaces DNS for it.
    fn connect(&self, domain: &str) -> Option<(String, u16)>;
    /// Most streams the partner of `domain` may hold at once, over all its
    /// domains and both directions.
    fn connection_limit(&self, domain: &str) -> usize;
    /// The name of the partner `domain` belongs to (its primary domain),
    /// so that its limit counts every domain it has; a domain that is no
    /// partner stands for itself.
    fn partner_of(&self, domain: &str) -> String;
    /// The configured `[[partner]]`s, for the status report (tables
    /// other than the configuration have none).
    fn configured(&self) -> &[Partner] {
        &[]
    }
}

impl Partners for Config {
    fn policy(&self, domain: &str) -> Option<StreamPolicy> {
        self.federation_policy(domain).stream_policy()
    }

    fn connect(&self, domain: &str) -> Option<(String, u16)> {
        let connect = self.partner_for(domain)?.connect.as_ref()?;
        Some((connect.host.clone(), connect.port))
    }

    fn connection_limit(&self, domain: &str) -> usize {
        let limit = self
            .partner_for(domain)
            .map_or(self.gateway.partner_connection_limit, |p| {
                p.connection_limit
            });
        limit as usize
    }

    fn partner_of(&self, domain: &str) -> String {
        self.partner_for(domain)
            .map_or_else(|| domain.to_ascii_lowercase(), |p| p.domain.clone())
    }

    fn configured(&self) -> &[Partner] {
        &self.partners
    }
}

/// Whether, and as what, a remote domain may federate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission<'a> {
    /// A `[[partner]]`: its type and stream policy apply.
    Partner(&'a Partner),
    /// Not a partner, but the federation mode admits it: treated as
    /// public-unverified, negotiated with [`OPEN_FEDERATION_POLICY`],
    /// limited to `gateway.partner_connection_limit` connections.
    Open,
    /// Refused; the s2s layer answers with a stream error.
    Refused {
        /// Why.
        reason: RefusalReason,
    },
}

impl Admission<'_> {
    /// Whether the domain may federate at all.
    pub fn is_admitted(&self) -> bool {
        !matches!(self, Admission::Refused { .. })
    }

    /// The stream negotiation to use, if admitted.
    pub fn stream_policy(&self) -> Option<StreamPolicy> {
        match self {
            Admission::Partner(p) => Some(p.policy),
            Admission::Open => Some(OPEN_FEDERATION_POLICY),
            Admission::Refused { .. } => None,
        }
    }

    /// The trust level of the domain's users, if admitted.
    pub fn partner_type(&self) -> Option<PartnerType> {
        match self {
            Admission::Partner(p) => Some(p.partner_type),
            Admission::Open => Some(PartnerType::PublicUnverified),
            Admission::Refused { .. } => None,
        }
    }
}

/// Why a domain may not federate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The domain is one of ours: a peer claiming it is lying.
    LocalDomain,
    /// `federation = "allow-list"` and no `[[partner]]` names it.
    NotAPartner,
    /// `federation = "deny-list"` and a `[[block]]` names it.
    Blocked,
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefusalReason::LocalDomain => "the domain is local",
            RefusalReason::NotAPartner => "the domain is not a federation partner",
            RefusalReason::Blocked => "the domain is blocked",
        })
    }
}

/// Whether `domain` is one of `domains` (`gateway.domains`): the one test
/// of "is this ours" that the configuration, the s2s sessions and the SIP
/// side all use.
pub fn is_local(domains: &[String], domain: &str) -> bool {
    domains.iter().any(|d| same_domain(d, domain))
}

/// Compares a configured (prepared) domain with one from the wire:
/// ASCII case-insensitive, ignoring one trailing dot.
fn same_domain(configured: &str, domain: &str) -> bool {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    configured.eq_ignore_ascii_case(domain)
}

impl Config {
    /// Whether `domain` is one of `gateway.domains`.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        is_local(&self.gateway.domains, domain)
    }

    /// The `[[partner]]` whose `domain` or `additional_domains` is `domain`.
    /// Domains are compared in prepared form (as [`crate::jid::Jid`] gives
    /// them), ASCII case-insensitively.
    pub fn partner_for(&self, domain: &str) -> Option<&Partner> {
        self.partners
            .iter()
            .find(|p| p.domains().any(|d| same_domain(d, domain)))
    }

    /// Whether a `[[block]]` names `domain` (exactly, not its parents).
    pub fn is_blocked(&self, domain: &str) -> bool {
        self.blocks.iter().any(|b| same_domain(&b.domain, domain))
    }

    /// Decides whether a remote `domain` may federate: local domains never,
    /// partners always, others by `gateway.federation` (`[[block]]` counts
    /// only under `deny-list`, as DESIGN.md defines `open`).
    pub fn federation_policy(&self, domain: &str) -> Admission<'_> {
        if self.is_local_domain(domain) {
            return Admission::Refused {
                reason: RefusalReason::LocalDomain,
            };
        }
        if let Some(partner) = self.partner_for(domain) {
            return Admission::Partner(partner);
        }
        match self.gateway.federation {
            FederationMode::AllowList => Admission::Refused {
                reason: RefusalReason::NotAPartner,
            },
            FederationMode::DenyList if self.is_blocked(domain) => Admission::Refused {
                reason: RefusalReason::Blocked,
            },
            FederationMode::Open | FederationMode::DenyList => Admission::Open,
        }
    }

    /// Whether the local user `address` (`user@domain`) may talk to XMPP
    /// domains: the first `[[access]]` rule with a matching pattern decides.
    /// With no `[[access]]` at all everyone may (the gateway exists for
    /// this); once rules exist, a user no rule matches may not, as Lync's
    /// global `EnableXmppAccess` default of false.
    pub fn xmpp_access(&self, address: &str) -> bool {
        if self.access.is_empty() {
            return true;
        }
        self.access
            .iter()
            .find(|rule| rule.users.iter().any(|p| glob_match(p, address)))
            .is_some_and(|rule| rule.xmpp)
    }
}
