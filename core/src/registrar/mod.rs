//! The built-in SIP registrar: digest authentication (RFC 8760) and
//! bindings; and, as the presence server of the local users, their
//! publications (RFC 3903, [`publication`]).
//!
//! Works on parsed values only (the SIP parser lives in `sip`): the caller
//! extracts the address of record, the Authorization values, the Contacts
//! and the source address, and turns [`Decision`]s and
//! [`bindings::RegisterOutcome`]s into responses. Time is unix seconds from
//! the caller; randomness (nonces) comes from the caller's [`Rng`].

pub mod backoff;
pub mod bindings;
pub mod digest;
pub mod publication;
pub mod replay;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::{SipConfig, SipCredential};
use crate::rng::Rng;
use crate::store::Persist;

use backoff::Backoff;
use bindings::{Binding, Bindings, Policy, RegisterError, RegisterOutcome, RegisterRequest};
use digest::{Algorithm, Authorization, Digest, Failure, Verdict};
use replay::NonceCounts;

/// What [`Registrar::authorize`] needs to know of a request.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// Whether the request comes from a `sip.trusted` peer (the endpoint
    /// judges its address or certificate): no digest then.
    pub trusted: bool,
    /// The request method, e.g. `REGISTER`.
    pub method: &'a str,
    /// The Request-URI as received (digest signs it as text).
    pub request_uri: &'a str,
    /// The identity claimed, `user@domain` in canonical form
    /// (`translate::canonical_aor`): the To URI of a REGISTER, the From
    /// URI of other requests.
    pub aor: &'a str,
    /// Every `Authorization` header value of the request, in order.
    pub authorization: &'a [&'a str],
    /// Where the request came from (failed digests are counted per
    /// source address, [`backoff`]).
    pub source: IpAddr,
}

/// The registrar's answer to "may this request act as `aor`?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Proceed as `user@domain`.
    Allow {
        /// The user part.
        user: String,
        /// The domain, lowercase.
        domain: String,
        /// Admitted as a `sip.trusted` peer, without digest.
        trusted: bool,
    },
    /// Answer 401 with [`Registrar::challenge`]'s headers.
    Challenge {
        /// The realm: the domain of the address of record.
        realm: String,
        /// The user part, which decides the algorithms offered.
        user: String,
        /// The password was right but the nonce old: `stale=true`.
        stale: bool,
    },
    /// Too many failed digests from this source or for this account:
    /// answer 503 with this Retry-After, credentials unread.
    Backoff {
        /// Seconds until the block ends.
        retry_after: u64,
    },
    /// Answer with this final response.
    Reject {
        /// Status code (400, 403).
        code: u16,
        /// Reason phrase.
        reason: &'static str,
    },
}

/// The built-in registrar: who may register, and the bindings.
#[derive(Debug)]
pub struct Registrar {
    domains: Vec<String>,
    /// By canonical user ([`crate::jid::foreign_local`]): the name as
    /// configured (what digest signs) and its credential.
    accounts: HashMap<String, (String, SipCredential)>,
    /// `sip.digest_algorithms`: offered in this order, and the only ones
    /// accepted.
    algorithms: Vec<Algorithm>,
    digest: Digest,
    /// Counts of nonces that authenticated a request (replay protection).
    nonce_counts: NonceCounts,
    /// Failed digests per source and account.
    backoff: Backoff,
    bindings: Bindings,
}

/// The accounts of `sip` by canonical user: the name as configured (what
/// digest signs) and its credential.
fn accounts(sip: &SipConfig) -> HashMap<String, (String, SipCredential)> {
    sip.accounts
        .iter()
        .filter_map(|a| {
            let canonical = crate::jid::foreign_local(&a.user).ok()?;
            Some((canonical, (a.user.clone(), a.credential.clone())))
        })
        .collect()
}

impl Registrar {
    /// A registrar for `domains` (`gateway.domains`, each a realm) with the
    /// accounts of `sip`. `digest` carries the nonce key:
    /// derive it from a secret shared by the instances of a deployment for
    /// nonces that any instance accepts.
    pub fn new(domains: &[String], sip: &SipConfig, digest: Digest, policy: Policy) -> Registrar {
        Registrar {
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            accounts: accounts(sip),
            algorithms: sip.digest_algorithms.clone(),
            nonce_counts: NonceCounts::new(NonceCounts::DEFAULT_CAPACITY, digest.nonce_lifetime()),
            backoff: Backoff::new(sip.max_auth_failures, sip.auth_backoff.as_secs()),
            digest,
            bindings: Bindings::new(policy),
        }
    }

    /// Takes the accounts, algorithms and back-off of a reloaded `sip`;
    /// the bindings of accounts that are gone are removed (their deletes
    /// returned), so that nothing reaches a device whose account is no
    /// more. Nonces and failure counts stay unless their bounds changed.
    pub fn reconfigure(&mut self, sip: &SipConfig) -> Vec<Persist> {
        self.accounts = accounts(sip);
        self.algorithms.clone_from(&sip.digest_algorithms);
        let backoff = Backoff::new(sip.max_auth_failures, sip.auth_backoff.as_secs());
        if self.backoff.bounds() != backoff.bounds() {
            self.backoff = backoff;
        }
        let gone: Vec<String> = self
            .bindings
            .iter()
            .map(|b| b.aor.clone())
            .filter(|aor| !self.has_account(aor))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        gone.iter()
            .flat_map(|aor| self.bindings.remove_aor(aor))
            .collect()
    }

    /// Replaces the bindings by what the store holds (at start); returns
    /// the deletes of those already expired.
    pub fn restore(&mut self, stored: Vec<Binding>, now_unix: u64) -> Vec<Persist> {
        let (mut bindings, changes) = Bindings::restore(self.bindings.policy(), stored, now_unix);
        bindings.set_path(self.bindings.path().map(str::to_owned));
        self.bindings = bindings;
        changes
    }

    /// The bindings, for lookups and expiry.
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// The bindings, mutably (expiry).
    pub fn bindings_mut(&mut self) -> &mut Bindings {
        &mut self.bindings
    }

    /// The digest server.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Whether `user@domain` is an account here.
    pub fn has_account(&self, aor: &str) -> bool {
        aor.rsplit_once('@')
            .is_some_and(|(user, domain)| self.serves(domain) && self.accounts.contains_key(user))
    }

    /// Whether `domain` is one of ours.
    pub fn serves(&self, domain: &str) -> bool {
        crate::config::is_local(&self.domains, domain)
    }

    /// Decides who a request may act as (no randomness; the only state it
    /// changes is the count of the nonce that authenticated it). The rules:
    ///
    /// - the domain of `aor` must be ours (else 403);
    /// - a `trusted` source is allowed without digest;
    /// - otherwise the request needs credentials for the realm of that
    ///   domain: none gets a challenge, whatever the user (not revealing
    ///   which accounts exist); a digest `username` other than the user of
    ///   `aor` is refused (403): nobody registers as someone else;
    /// - unknown users and wrong passwords get the same 403; a right
    ///   password with an old nonce gets a `stale` challenge; malformed or
    ///   unsupported credentials get 400;
    /// - a nonce count not above the highest this nonce was accepted with
    ///   is a replay ([`replay`]), answered with a `stale` challenge.
    pub fn authorize(&mut self, req: &AuthRequest<'_>, now_unix: u64) -> Decision {
        let Some((user, domain)) = req
            .aor
            .trim()
            .rsplit_once('@')
            .filter(|(u, _)| !u.is_empty())
        else {
            return reject(400, "Invalid Address of Record");
        };
        if !self.serves(domain) {
            return reject(403, "Domain Not Served");
        }
        let domain = domain.to_ascii_lowercase();
        if req.trusted {
            return Decision::Allow {
                user: user.to_string(),
                domain,
                trusted: true,
            };
        }
        let challenge = |stale| Decision::Challenge {
            realm: domain.clone(),
            user: user.to_string(),
            stale,
        };
        // Credentials for our realm; those for other realms (meant for
        // proxies on the way) are not ours to judge.
        let mut malformed = false;
        let mut ours = None;
        for value in req.authorization {
            match Authorization::parse(value) {
                Ok(a) if a.realm == domain => {
                    ours = Some(a);
                    break;
                }
                Ok(_) => {}
                Err(_) => malformed = true,
            }
        }
        let Some(auth) = ours else {
            return if malformed {
                reject(400, "Malformed Authorization")
            } else {
                challenge(false)
            };
        };
        if let Some(until) = self.backoff.blocked(req.source, user, now_unix) {
            return Decision::Backoff {
                retry_after: until - now_unix,
            };
        }
        // Compared in canonical form: `Alice` signing for `alice` is the
        // same user, `bob` signing for `alice` is not.
        if crate::jid::foreign_local(&auth.username).ok().as_deref() != Some(user) {
            self.backoff.failed(req.source, None, now_unix);
            return reject(403, "Username Does Not Match Address of Record");
        }
        let Some((name, credential)) = self.accounts.get(user) else {
            self.backoff.failed(req.source, None, now_unix);
            return reject(403, "Forbidden");
        };
        // The digest itself signs the name exactly as the account has it.
        match self.digest.verify(
            &domain,
            &auth,
            name,
            credential,
            &self.algorithms,
            req.method,
            req.request_uri,
            now_unix,
        ) {
            Verdict::Valid => {
                let nc = auth
                    .nc
                    .as_deref()
                    .and_then(|n| u32::from_str_radix(n, 16).ok())
                    .unwrap_or_default();
                let issued = self
                    .digest
                    .nonce_issued(&domain, &auth.nonce)
                    .unwrap_or(now_unix);
                if !self.nonce_counts.accept(&auth.nonce, issued, nc, now_unix) {
                    return challenge(true);
                }
                self.backoff.succeeded(req.source, user);
                Decision::Allow {
                    user: user.to_string(),
                    domain,
                    trusted: false,
                }
            }
            Verdict::Stale => challenge(true),
            Verdict::Failed(
                Failure::Uri | Failure::Algorithm | Failure::Qop | Failure::NonceCount,
            ) => reject(400, "Bad Authorization"),
            Verdict::Failed(_) => {
                self.backoff.failed(req.source, Some(user), now_unix);
                reject(403, "Forbidden")
            }
        }
    }

    /// The `WWW-Authenticate` values for a [`Decision::Challenge`]: one per
    /// algorithm of `sip.digest_algorithms`, in its order (RFC 8760 section
    /// 2.3), only the stored HA1's algorithm for an HA1 account.
    pub fn challenge(
        &self,
        realm: &str,
        user: &str,
        stale: bool,
        now_unix: u64,
        rng: &mut Rng,
    ) -> Vec<String> {
        let algorithms =
            digest::algorithms_for(&self.algorithms, self.accounts.get(user).map(|(_, c)| c));
        self.digest
            .challenges(realm, &algorithms, stale, now_unix, rng)
            .iter()
            .map(digest::Challenge::header_value)
            .collect()
    }

    /// Processes an authorized REGISTER (see [`Bindings::register`]).
    pub fn register(
        &mut self,
        aor: &str,
        req: &RegisterRequest,
        now_unix: u64,
    ) -> Result<RegisterOutcome, RegisterError> {
        self.bindings.register(aor, req, now_unix)
    }
}

fn reject(code: u16, reason: &'static str) -> Decision {
    Decision::Reject { code, reason }
}
