//! The header values of SIP events (RFC 6665) and publications (RFC 3903):
//! `Event`, `Subscription-State`, `Allow-Events`, `SIP-ETag` and
//! `SIP-If-Match`, and the Expires negotiation SUBSCRIBE and PUBLISH share
//! ([`ExpiresPolicy`]). Each parser takes one header value as written and
//! returns a typed value or the reason it cannot; none allocates more than
//! the value it reads.

use std::fmt;

use super::params::Params;
use super::syntax::{is_token, is_token_str, parse_header_params, short, trim_wsp};
use super::values::parse_delta;

/// `token-nodot`: a token without `.` (event packages and templates).
fn is_token_nodot(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b != b'.' && is_token(b))
}

/// `event-type = event-package *( "." event-template )`.
fn is_event_type(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_token_nodot)
}

/// An `Event` header value (RFC 6665 section 8.2.1): the event type
/// (`presence`, `presence.winfo`) and its parameters, of which `id`
/// tells apart several subscriptions to one package in a dialog.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    event_type: String,
    params: Params,
}

impl Event {
    /// `Event: presence` (RFC 3856).
    pub fn presence() -> Event {
        Event {
            event_type: "presence".into(),
            params: Params::default(),
        }
    }

    /// An event of type `event_type`; `None` when it is not
    /// `token-nodot *( "." token-nodot )`.
    pub fn new(event_type: &str) -> Option<Event> {
        is_event_type(event_type).then(|| Event {
            event_type: event_type.to_owned(),
            params: Params::default(),
        })
    }

    /// The same event with `;id=`; `None` when `id` is not a token.
    pub fn with_id(mut self, id: &str) -> Option<Event> {
        if !is_token_str(id) {
            return None;
        }
        self.params.set("id".into(), Some(id.to_owned()));
        Some(self)
    }

    /// Reads one value; the error is the reason.
    pub fn parse(value: &str) -> Result<Event, String> {
        let s = trim_wsp(value);
        let end = s.find([';', ' ', '\t']).unwrap_or(s.len());
        let event_type = &s[..end];
        if !is_event_type(event_type) {
            return Err(format!("bad event type '{}'", short(event_type)));
        }
        let params = Params::from_vec(parse_header_params(&s[end..])?);
        if let Some(id) = params.get("id") {
            if !id.is_some_and(is_token_str) {
                return Err("id is not a token".into());
            }
        }
        Ok(Event {
            event_type: event_type.to_owned(),
            params,
        })
    }

    /// The event type as written, templates included (`presence.winfo`).
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The package: the event type before any `.template`.
    pub fn package(&self) -> &str {
        self.event_type
            .split('.')
            .next()
            .unwrap_or(&self.event_type)
    }

    /// `;id=`, if any.
    pub fn id(&self) -> Option<&str> {
        self.params.value("id")
    }

    /// Every parameter, in order.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Whether a NOTIFY's (or a refresh's) Event belongs to the
    /// subscription made with `self` (RFC 6665 section 4.1.2.4 / 8.2.1):
    /// the same event type (tokens compare case-insensitively, as SIP
    /// tokens do) and the same `id`, both absent or byte-equal.
    pub fn matches(&self, other: &Event) -> bool {
        self.event_type.eq_ignore_ascii_case(&other.event_type) && self.id() == other.id()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.event_type, self.params)
    }
}

/// The state of a subscription in `Subscription-State` (RFC 6665
/// section 4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SubState {
    /// Authorized: notifications carry the state.
    Active,
    /// Not yet authorized: notifications carry nothing of the resource.
    Pending,
    /// Over; `reason` says whether to try again.
    Terminated,
    /// `extension-substate`: RFC 6665 says to treat one as absent, which
    /// the subscriber side does by ignoring the NOTIFY's state change.
    Extension(String),
}

impl SubState {
    fn as_str(&self) -> &str {
        match self {
            SubState::Active => "active",
            SubState::Pending => "pending",
            SubState::Terminated => "terminated",
            SubState::Extension(s) => s,
        }
    }
}

/// The `reason` of a terminated subscription (RFC 6665 section 4.2.2),
/// with what the subscriber should do about it (section 4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Moved or went away: subscribe again at once.
    Deactivated,
    /// Try again later (after `retry-after` if given).
    Probation,
    /// Authorization refused or revoked: do not subscribe again.
    Rejected,
    /// Not refreshed in time, or unsubscribed: subscribe again if wanted.
    Timeout,
    /// The notifier could not get authorization in time: try later.
    Giveup,
    /// The resource no longer exists: do not try again.
    Noresource,
    /// The resource cannot ever be subscribed to: do not try again.
    Invariant,
    /// Any other token; RFC 6665 treats an unknown reason as absent.
    Other(String),
}

const REASONS: [(Reason, &str); 7] = [
    (Reason::Deactivated, "deactivated"),
    (Reason::Probation, "probation"),
    (Reason::Rejected, "rejected"),
    (Reason::Timeout, "timeout"),
    (Reason::Giveup, "giveup"),
    (Reason::Noresource, "noresource"),
    (Reason::Invariant, "invariant"),
];

impl Reason {
    /// The reason for a token (case-insensitive); unknown tokens are
    /// [`Reason::Other`].
    pub fn parse(token: &str) -> Reason {
        REASONS
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(token))
            .map(|(r, _)| r.clone())
            .unwrap_or_else(|| Reason::Other(token.to_owned()))
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        match self {
            Reason::Other(s) => s,
            known => REASONS
                .iter()
                .find(|(r, _)| r == known)
                .map_or("", |(_, n)| n),
        }
    }

    /// Whether the subscriber may subscribe again (RFC 6665 section
    /// 4.1.3): not after `rejected`, `noresource` or `invariant`.
    pub fn may_retry(&self) -> bool {
        !matches!(
            self,
            Reason::Rejected | Reason::Noresource | Reason::Invariant
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `Subscription-State` value (RFC 6665 section 8.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SubscriptionState {
    /// active, pending, terminated.
    pub state: SubState,
    /// `;expires=` seconds left (MUST on active and pending when we send).
    pub expires: Option<u32>,
    /// `;reason=` (terminated).
    pub reason: Option<Reason>,
    /// `;retry-after=` seconds (terminated).
    pub retry_after: Option<u32>,
}

impl SubscriptionState {
    /// `active;expires=N`.
    pub fn active(expires: u32) -> Self {
        SubscriptionState {
            state: SubState::Active,
            expires: Some(expires),
            reason: None,
            retry_after: None,
        }
    }

    /// `pending;expires=N`.
    pub fn pending(expires: u32) -> Self {
        SubscriptionState {
            state: SubState::Pending,
            ..SubscriptionState::active(expires)
        }
    }

    /// `terminated;reason=R[;retry-after=S]`.
    pub fn terminated(reason: Reason, retry_after: Option<u32>) -> Self {
        SubscriptionState {
            state: SubState::Terminated,
            expires: None,
            reason: Some(reason),
            retry_after,
        }
    }

    /// Reads one value; the error is the reason. `expires` and
    /// `retry-after` must be delta-seconds (saturating at `u32::MAX`),
    /// `reason` a token; other parameters are ignored.
    pub fn parse(value: &str) -> Result<SubscriptionState, String> {
        let s = trim_wsp(value);
        let end = s.find([';', ' ', '\t']).unwrap_or(s.len());
        let token = &s[..end];
        if !is_token_str(token) {
            return Err(format!("bad state '{}'", short(token)));
        }
        let state = match token.to_ascii_lowercase().as_str() {
            "active" => SubState::Active,
            "pending" => SubState::Pending,
            "terminated" => SubState::Terminated,
            _ => SubState::Extension(token.to_owned()),
        };
        let params = Params::from_vec(parse_header_params(&s[end..])?);
        let delta = |name: &str| -> Result<Option<u32>, String> {
            match params.get(name) {
                None => Ok(None),
                Some(v) => v
                    .and_then(parse_delta)
                    .map(Some)
                    .ok_or_else(|| format!("{name} is not delta-seconds")),
            }
        };
        let expires = delta("expires")?;
        let retry_after = delta("retry-after")?;
        let reason = match params.get("reason") {
            None => None,
            Some(Some(r)) if is_token_str(r) => Some(Reason::parse(r)),
            Some(_) => return Err("reason is not a token".into()),
        };
        Ok(SubscriptionState {
            state,
            expires,
            reason,
            retry_after,
        })
    }
}

impl fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.state.as_str())?;
        if let Some(r) = &self.reason {
            write!(f, ";reason={r}")?;
        }
        if let Some(e) = self.expires {
            write!(f, ";expires={e}")?;
        }
        if let Some(r) = self.retry_after {
            write!(f, ";retry-after={r}")?;
        }
        Ok(())
    }
}

/// Reads one `Allow-Events` element (an event type).
pub(crate) fn parse_event_type(value: &str) -> Result<&str, String> {
    let s = trim_wsp(value);
    if is_event_type(s) {
        Ok(s)
    } else {
        Err(format!("bad event type '{}'", short(s)))
    }
}

/// Reads a `SIP-ETag` or `SIP-If-Match` value: one token (RFC 3903
/// section 11.3).
pub(crate) fn parse_entity_tag(value: &str) -> Result<&str, String> {
    let s = trim_wsp(value);
    if is_token_str(s) {
        Ok(s)
    } else {
        Err(format!("entity-tag '{}' is not a token", short(s)))
    }
}

/// How long SUBSCRIBE or PUBLISH may last: what an `Expires` asks for
/// becomes what is granted (RFC 6665 section 4.2.1.1, RFC 3903 section
/// 6 step 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiresPolicy {
    /// Shorter (but not 0) gets 423 with `Min-Expires` this.
    pub min: u32,
    /// When the request says nothing.
    pub default: u32,
    /// Longer is shortened to this.
    pub max: u32,
}

/// A request asked for less than [`ExpiresPolicy::min`]: answer 423
/// Interval Too Brief with `Min-Expires` this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooBrief {
    /// The `Min-Expires` value.
    pub min_expires: u32,
}

impl ExpiresPolicy {
    /// The presence package (RFC 3856 section 6.2: one hour by default),
    /// at least a minute, at most a day.
    pub const PRESENCE: ExpiresPolicy = ExpiresPolicy {
        min: 60,
        default: 3600,
        max: 86_400,
    };

    /// The policy with its three values ordered (min <= default <= max,
    /// max at least 1), whatever was configured.
    pub fn normalized(self) -> ExpiresPolicy {
        let max = self.max.max(1);
        let min = self.min.min(max);
        ExpiresPolicy {
            min,
            default: self.default.clamp(min, max),
            max,
        }
    }

    /// The policy with its longest grant at most `max` (the shorter
    /// values follow it down).
    pub fn capped(self, max: u32) -> ExpiresPolicy {
        ExpiresPolicy {
            max: self.max.min(max),
            ..self
        }
        .normalized()
    }

    /// The duration granted for `requested` (the Expires header): 0 stays
    /// 0 (unsubscribe, remove, or fetch), none is the default, too long is
    /// shortened, too short is refused.
    pub fn grant(&self, requested: Option<u32>) -> Result<u32, TooBrief> {
        let p = self.normalized();
        match requested {
            Some(0) => Ok(0),
            None => Ok(p.default),
            Some(s) if s < p.min => Err(TooBrief { min_expires: p.min }),
            Some(s) => Ok(s.min(p.max)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        let e = Event::parse(" presence ;id=abc ; x=\"y\"").unwrap();
        assert_eq!(e.event_type(), "presence");
        assert_eq!(e.package(), "presence");
        assert_eq!(e.id(), Some("abc"));
        assert_eq!(e.to_string(), "presence;id=abc;x=\"y\"");
        assert_eq!(Event::parse(&e.to_string()), Ok(e.clone()));
        let w = Event::parse("presence.winfo").unwrap();
        assert_eq!(w.package(), "presence");
        assert_eq!(w.id(), None);
        assert!(!w.matches(&Event::presence()));
        assert!(Event::parse("Presence")
            .unwrap()
            .matches(&Event::presence()));
        assert!(!e.matches(&Event::presence()), "the id must match too");
        assert!(e.matches(&Event::presence().with_id("abc").unwrap()));
        assert!(!e.matches(&Event::presence().with_id("ABC").unwrap()));
        for bad in [
            "",
            ";id=1",
            "presence.",
            ".presence",
            "pres..ence",
            "pres ence",
            "presence;id",
            "presence;id=",
            "presence;id=\"a b\"",
            "pre<sence",
            "presence;",
        ] {
            assert!(Event::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Event::new("a.b").is_some());
        assert!(Event::new("a b").is_none());
        assert!(Event::presence().with_id("a b").is_none());
    }

    #[test]
    fn subscription_states() {
        let s = SubscriptionState::parse("active;expires=499").unwrap();
        assert_eq!(s, SubscriptionState::active(499));
        let s = SubscriptionState::parse("Pending ; expires = 60 ; foo").unwrap();
        assert_eq!(s, SubscriptionState::pending(60));
        let s = SubscriptionState::parse("terminated;reason=probation;retry-after=30").unwrap();
        assert_eq!(
            s,
            SubscriptionState::terminated(Reason::Probation, Some(30))
        );
        for (r, retry) in [
            (Reason::Deactivated, true),
            (Reason::Probation, true),
            (Reason::Rejected, false),
            (Reason::Timeout, true),
            (Reason::Giveup, true),
            (Reason::Noresource, false),
            (Reason::Invariant, false),
            (Reason::Other("moved".into()), true),
        ] {
            let text = SubscriptionState::terminated(r.clone(), None).to_string();
            let back = SubscriptionState::parse(&text).unwrap();
            assert_eq!(back.reason.as_ref(), Some(&r), "{text}");
            assert_eq!(r.may_retry(), retry, "{r}");
        }
        assert_eq!(
            SubscriptionState::parse("terminated;reason=REJECTED")
                .unwrap()
                .reason,
            Some(Reason::Rejected)
        );
        assert_eq!(
            SubscriptionState::parse("waiting").unwrap().state,
            SubState::Extension("waiting".into())
        );
        assert_eq!(
            SubscriptionState::parse("active;expires=99999999999")
                .unwrap()
                .expires,
            Some(u32::MAX)
        );
        assert_eq!(
            SubscriptionState::terminated(Reason::Timeout, Some(5)).to_string(),
            "terminated;reason=timeout;retry-after=5"
        );
        assert_eq!(
            SubscriptionState::pending(7).to_string(),
            "pending;expires=7"
        );
        for bad in [
            "",
            ";expires=1",
            "active;expires=",
            "active;expires=-1",
            "active;expires=1.5",
            "active;expires",
            "terminated;reason=\"x y\"",
            "terminated;reason",
            "terminated;retry-after=soon",
            "act ive",
            "active junk",
        ] {
            assert!(SubscriptionState::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tags_and_types() {
        assert_eq!(parse_entity_tag(" dx200xyz "), Ok("dx200xyz"));
        assert!(parse_entity_tag("").is_err());
        assert!(parse_entity_tag("a b").is_err());
        assert!(parse_entity_tag("a;b").is_err());
        assert_eq!(parse_event_type("presence.winfo"), Ok("presence.winfo"));
        assert!(parse_event_type("presence;id=1").is_err());
    }

    #[test]
    fn expires_policy() {
        let p = ExpiresPolicy::PRESENCE;
        assert_eq!(p.grant(None), Ok(3600));
        assert_eq!(p.grant(Some(0)), Ok(0));
        assert_eq!(p.grant(Some(59)), Err(TooBrief { min_expires: 60 }));
        assert_eq!(p.grant(Some(1)), Err(TooBrief { min_expires: 60 }));
        assert_eq!(p.grant(Some(60)), Ok(60));
        assert_eq!(p.grant(Some(u32::MAX)), Ok(86_400));
        let odd = ExpiresPolicy {
            min: 100,
            default: 10,
            max: 0,
        };
        let n = odd.normalized();
        assert!(n.min <= n.default && n.default <= n.max && n.max >= 1);
        assert_eq!(odd.grant(None), Ok(1));
    }
}
