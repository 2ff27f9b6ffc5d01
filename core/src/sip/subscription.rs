//! Subscription dialogs (RFC 6665, with the presence package's rules of
//! RFC 3856 and the gateway's of RFC 8048), in both roles, on the
//! caller's clock.
//!
//! - **Notifier**: a SIP user subscribed to one of ours. The table checks
//!   the dialog (Call-ID, tags, CSeq order), keeps the expiry, sends the
//!   NOTIFY RFC 6665 requires at once after every accepted SUBSCRIBE, and
//!   rate-limits the NOTIFYs that report changes of the resource: at most
//!   one per [`SubscriptionConfig::min_notify_interval`] per dialog (RFC
//!   3856 section 6.4: 5 s), changes in between coalesced into one NOTIFY
//!   when the window opens, carrying the state of that moment.
//! - **Subscriber**: we subscribed. The table sends the SUBSCRIBE, refreshes
//!   it before expiry, and turns each response, NOTIFY and timeout into
//!   what the gateway must do: nothing, subscribe afresh (transient: 481,
//!   423 without a usable Min-Expires, timeouts), or cancel the presence
//!   authorization (permanent: 403, 489, 603, `reason=rejected`).
//!
//! Everything comes out as [`Action`]s from [`SubscriptionTable::poll_action`]:
//! requests built from the dialog state (Request-URI, Route, From, To,
//! Call-ID, CSeq, Max-Forwards, Event, and Subscription-State or Expires),
//! to which the caller adds Via, Contact and the body; and
//! [`Ended`] reports, and [`Action::Save`] whenever a dialog's lasting
//! state changed (made, refreshed, authorized, accepted), so that the
//! caller can persist it ([`SubscriptionTable::saved`]) and continue it
//! after a restart ([`SubscriptionTable::restore`]).

use std::collections::hash_map::{Entry as Entry_, RandomState};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use super::event::{Event, Reason, SubState, SubscriptionState};
use super::headers::Headers;
use super::ids::{new_call_id, new_tag};
use super::message::{Request, Response};
use super::method::Method;
use super::uri::Uri;
use super::values::Contact;
use crate::capacity::release_sparse;
use crate::rng::Rng;

mod saved;

/// Dialog id (RFC 3261 section 12): Call-ID, our tag, the peer's tag. An
/// early subscriber dialog (no 2xx or NOTIFY yet) has an empty remote tag.
/// The three are kept in one allocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    /// Call-ID, local tag and remote tag, concatenated.
    text: Box<str>,
    /// Where the Call-ID ends.
    call_id_end: u32,
    /// Where the local tag ends.
    local_end: u32,
}

impl DialogId {
    /// The id of a dialog. Parts longer than 4 GiB together are cut
    /// (no SIP message holds them).
    pub fn new(call_id: &str, local_tag: &str, remote_tag: &str) -> DialogId {
        let mut text = String::with_capacity(call_id.len() + local_tag.len() + remote_tag.len());
        text.push_str(call_id);
        let call_id_end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        text.push_str(local_tag);
        let local_end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        text.push_str(remote_tag);
        DialogId {
            text: text.into_boxed_str(),
            call_id_end,
            local_end,
        }
    }

    fn bounds(&self) -> (usize, usize) {
        let a = usize::try_from(self.call_id_end).unwrap_or(usize::MAX);
        let b = usize::try_from(self.local_end).unwrap_or(usize::MAX);
        (a.min(self.text.len()), b.min(self.text.len()))
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        let (a, _) = self.bounds();
        self.text.get(..a).unwrap_or("")
    }

    /// Our tag (From of what we send, To of what we receive).
    pub fn local_tag(&self) -> &str {
        let (a, b) = self.bounds();
        self.text.get(a..b).unwrap_or("")
    }

    /// The peer's tag; empty in an early subscriber dialog.
    pub fn remote_tag(&self) -> &str {
        let (_, b) = self.bounds();
        self.text.get(b..).unwrap_or("")
    }
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};{};{}",
            self.call_id(),
            self.local_tag(),
            self.remote_tag()
        )
    }
}

/// Names a subscription in a [`SubscriptionTable`]; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId(u64);

/// Which side of the subscription we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The peer subscribed to a resource of ours; we send NOTIFYs.
    Notifier,
    /// We subscribed to a resource of the peer; we receive NOTIFYs.
    Subscriber,
}

/// The table's limits and timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionConfig {
    /// Dialogs held at most, both roles together. A SUBSCRIBE beyond it
    /// gets 503 with Retry-After; a subscription of ours, an error.
    pub max_subscriptions: usize,
    /// At most one NOTIFY reporting a change per dialog in this time (RFC
    /// 3856 section 6.4: 5 s). NOTIFYs RFC 6665 requires (after each
    /// accepted SUBSCRIBE, on a change of the subscription's state, the
    /// final one) are not held back.
    pub min_notify_interval: Duration,
    /// A refresh goes out at the earlier of 90% of the interval and the
    /// expiry minus this (but never before half the interval): enough for
    /// a transaction to time out (Timer F, 32 s) and a retry to be tried.
    pub refresh_margin: Duration,
    /// Timer N (RFC 6665 section 4.1.2.4, 64*T1): no NOTIFY this long after
    /// the initial SUBSCRIBE means the subscription failed.
    pub timer_n: Duration,
    /// How long to wait before trying again after a transient failure
    /// that gives no Retry-After (and the longest Retry-After obeyed).
    pub retry_delay: Duration,
    /// The most a dialog's strings (target, route set, URIs, Event) may
    /// take; a SUBSCRIBE or 2xx beyond it gets 413 / ends the dialog.
    pub max_dialog_bytes: usize,
}

impl SubscriptionConfig {
    /// RFC values (5 s between NOTIFYs, Timer N 32 s), a 32 s refresh
    /// margin, a one-minute retry delay and 4 KiB of strings per dialog
    /// (a target, a route set of several proxies), holding at most
    /// `max_subscriptions` dialogs.
    pub fn new(max_subscriptions: usize) -> SubscriptionConfig {
        SubscriptionConfig {
            max_subscriptions,
            min_notify_interval: Duration::from_secs(5),
            refresh_margin: Duration::from_secs(32),
            timer_n: Duration::from_secs(32),
            retry_delay: Duration::from_secs(60),
            max_dialog_bytes: 4096,
        }
    }

    /// When to refresh a subscription granted for `interval` seconds,
    /// counted from the grant.
    pub fn refresh_delay(&self, interval: u32) -> Duration {
        let interval = Duration::from_secs(u64::from(interval));
        let ninety = interval.mul_f64(0.9);
        let margin = interval.saturating_sub(self.refresh_margin);
        ninety.min(margin).max(interval / 2)
    }
}

/// A request refused: the response to send (with `Retry-After` for 503).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub reason: &'static str,
}

impl Refusal {
    const fn new(code: u16, reason: &'static str) -> Refusal {
        Refusal { code, reason }
    }

    /// The table holds its limit: 503 Service Unavailable.
    pub const FULL: Refusal = Refusal::new(503, "Too Many Subscriptions");
    /// No dialog matches: 481.
    pub const NO_DIALOG: Refusal = Refusal::new(481, "Subscription Does Not Exist");
    /// The dialog would hold more than
    /// [`SubscriptionConfig::max_dialog_bytes`]: 413.
    pub const TOO_LARGE: Refusal = Refusal::new(413, "Dialog Too Large");
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

impl std::error::Error for Refusal {}

/// Whether a NOTIFY may carry the resource's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// Authorized (`active`, or the final NOTIFY of an active
    /// subscription): the current state of the resource.
    State,
    /// Not authorized (`pending`, or terminated before being active):
    /// no body, or a neutral one.
    Nothing,
}

/// Why a subscription ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Not refreshed in time.
    Expired,
    /// Ended by `Expires: 0` (the subscriber's, or a one-shot fetch).
    Unsubscribed,
    /// Terminated with this reason: by us as notifier
    /// ([`SubscriptionTable::terminate`]), or by the notifier's NOTIFY.
    Terminated(Reason),
    /// Our request (SUBSCRIBE, or NOTIFY as notifier) got this final
    /// response; 408 also stands for a transaction timeout.
    Response(u16),
    /// Timer N: no NOTIFY came after the initial SUBSCRIBE.
    NoNotify,
}

/// What the gateway should do once a subscription of ours ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing (a notifier dialog, our own unsubscribe, or a resource that
    /// will not come back).
    Nothing,
    /// Permanent (RFC 8048: 403, 489, 603, `reason=rejected`): the
    /// presence authorization is cancelled; tell the XMPP user
    /// `unsubscribed`.
    CancelAuthorization,
    /// Transient: subscribe afresh (new dialog) at this time, keeping the
    /// authorization.
    ResubscribeAt(Instant),
}

/// A subscription ended and left the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The subscription.
    pub sub: SubId,
    /// Its dialog.
    pub id: DialogId,
    /// Our side.
    pub role: Role,
    /// Why.
    pub cause: Cause,
    /// What now.
    pub next: Next,
}

/// What the table asks its caller to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this NOTIFY now (add Via, Contact, and the body `content`
    /// says).
    Notify {
        /// The dialog's subscription.
        sub: SubId,
        /// The request, its Subscription-State set.
        request: Request,
        /// The state it reports (as in the header).
        state: SubscriptionState,
        /// What the body may hold.
        content: Content,
    },
    /// Send this SUBSCRIBE now (add Via, Contact, Accept).
    Subscribe {
        /// The subscription.
        sub: SubId,
        /// The request, with its Expires.
        request: Request,
        /// The Expires it asks for (0: unsubscribe or fetch).
        expires: u32,
    },
    /// The subscription is over and forgotten.
    Ended(Ended),
    /// What a restart must keep of the dialog changed: persist
    /// [`SubscriptionTable::saved`] (several may come for one dialog; the
    /// latest record is the one that counts, and none once it ended).
    Save(SubId),
}

/// What a response to our SUBSCRIBE did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscribeResult {
    /// Not ours (unknown subscription, another CSeq, a provisional).
    Ignored,
    /// Accepted for this long; the refresh goes out at `refresh_at`.
    Active {
        /// When the subscription expires unless refreshed.
        expires_at: Instant,
        /// When the table will send the refresh.
        refresh_at: Instant,
    },
    /// An unsubscribe or fetch was accepted: the final NOTIFY comes next.
    Closing,
    /// 423: the SUBSCRIBE went out again with `Expires` this.
    Retrying {
        /// The new Expires.
        expires: u32,
    },
    /// A refresh failed in a way that keeps the subscription until its
    /// expiry; another refresh goes out at this time.
    RetryAt(Instant),
    /// The subscription ended (also reported as [`Action::Ended`]).
    Ended(Cause, Next),
}

/// What a NOTIFY told a subscriber; answer it 200.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notified {
    /// The subscription it belongs to.
    pub sub: SubId,
    /// Its Subscription-State.
    pub state: SubscriptionState,
    /// When the subscription ends with it: what the gateway should do.
    pub ended: Option<Next>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Notifier: not authorized yet.
    Pending,
    /// Notifier: authorized. Subscriber: accepted.
    Active,
    /// Subscriber: the initial SUBSCRIBE is out, nothing accepted yet.
    Initial,
    /// Subscriber: we sent Expires 0 and wait for the final NOTIFY.
    Closing,
}

/// What our SUBSCRIBE in flight is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Initial,
    Refresh,
    Unsubscribe,
}

#[derive(Debug)]
enum Side {
    Notifier {
        /// When the last NOTIFY went out.
        last_notify: Option<Instant>,
        /// A change waits for the rate limit.
        dirty: bool,
    },
    Subscriber {
        /// The Expires we ask for.
        interval: u32,
        /// When to send the refresh.
        refresh_at: Option<Instant>,
        /// Timer N, until the first NOTIFY.
        timer_n: Option<Instant>,
        /// Our SUBSCRIBE in flight: its CSeq and kind.
        asked: Option<(u32, Asked)>,
    },
}

/// The strings of a dialog other than its id, in one allocation: remote
/// target, route set (a Route header value), local URI, remote URI, Event.
#[derive(Debug)]
struct Packed {
    text: Box<str>,
    ends: [u16; 4],
}

impl Packed {
    /// `None` when the total exceeds `max` bytes (or 64 KiB).
    fn new(parts: [&str; 5], max: usize) -> Option<Packed> {
        if parts.iter().map(|p| p.len()).sum::<usize>() > max {
            return None;
        }
        let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u16; 4];
        for (i, p) in parts.iter().enumerate() {
            text.push_str(p);
            if let Some(e) = ends.get_mut(i) {
                *e = u16::try_from(text.len()).ok()?;
            }
        }
        u16::try_from(text.len()).ok()?;
        Some(Packed {
            text: text.into_boxed_str(),
            ends,
        })
    }

    fn part(&self, i: usize) -> &str {
        let start = if i == 0 {
            0
        } else {
            self.ends
                .get(i - 1)
                .map_or(self.text.len(), |&e| usize::from(e))
        };
        let end = self
            .ends
            .get(i)
            .map_or(self.text.len(), |&e| usize::from(e));
        self.text.get(start..end).unwrap_or("")
    }

    fn replace(&mut self, i: usize, value: &str, max: usize) -> bool {
        let mut parts = [""; 5];
        for (k, p) in parts.iter_mut().enumerate() {
            *p = self.part(k);
        }
        parts[i] = value;
        match Packed::new(parts, max) {
            Some(p) => {
                *self = p;
                true
            }
            None => false,
        }
    }
}

const TARGET: usize = 0;
const ROUTE: usize = 1;
const LOCAL: usize = 2;
const REMOTE: usize = 3;
const EVENT: usize = 4;

/// One dialog.
#[derive(Debug)]
struct Entry {
    id: DialogId,
    strings: Packed,
    phase: Phase,
    /// Our last CSeq in this dialog.
    local_cseq: u32,
    /// The peer's last CSeq; 0 before its first request.
    remote_cseq: u32,
    expires_at: Instant,
    /// The deadline this entry has in the table's wakeups.
    scheduled: Option<Instant>,
    side: Side,
}

impl Entry {
    fn role(&self) -> Role {
        match self.side {
            Side::Notifier { .. } => Role::Notifier,
            Side::Subscriber { .. } => Role::Subscriber,
        }
    }

    fn deadline(&self, cfg: &SubscriptionConfig) -> Instant {
        let mut t = self.expires_at;
        match &self.side {
            Side::Notifier { last_notify, dirty } => {
                if let (true, Some(last)) = (*dirty, last_notify) {
                    t = t.min(*last + cfg.min_notify_interval);
                }
            }
            Side::Subscriber {
                refresh_at,
                timer_n,
                ..
            } => {
                for x in [refresh_at, timer_n].into_iter().flatten() {
                    t = t.min(*x);
                }
            }
        }
        t
    }

    /// A request in this dialog with the next CSeq (RFC 3261 section
    /// 12.2.1.1); `None` when the stored target no longer parses.
    fn request(&mut self, method: Method) -> Option<Request> {
        let uri = Uri::parse(self.strings.part(TARGET)).ok()?;
        self.local_cseq = self.local_cseq.saturating_add(1).min((1 << 31) - 1);
        let mut r = Request::new(method.clone(), uri);
        let h = &mut r.headers;
        let route = self.strings.part(ROUTE);
        if !route.is_empty() {
            h.push("Route", route);
        }
        h.push("Max-Forwards", "70");
        h.push(
            "From",
            format!("<{}>;tag={}", self.strings.part(LOCAL), self.id.local_tag()),
        );
        if self.id.remote_tag().is_empty() {
            h.push("To", format!("<{}>", self.strings.part(REMOTE)));
        } else {
            h.push(
                "To",
                format!(
                    "<{}>;tag={}",
                    self.strings.part(REMOTE),
                    self.id.remote_tag()
                ),
            );
        }
        h.push("Call-ID", self.id.call_id());
        h.push("CSeq", format!("{} {method}", self.local_cseq));
        h.push("Event", self.strings.part(EVENT));
        Some(r)
    }

    fn remaining(&self, now: Instant) -> u32 {
        let left = self.expires_at.saturating_duration_since(now).as_secs();
        u32::try_from(left).unwrap_or(u32::MAX).max(1)
    }

    fn event(&self) -> Option<Event> {
        Event::parse(self.strings.part(EVENT)).ok()
    }
}

/// The first Contact's URI, when it is one address.
fn contact_uri(headers: &Headers) -> Option<String> {
    match headers.contacts().ok()?.first()? {
        Contact::Addr(a) => Some(a.uri().to_string()),
        Contact::Star => None,
    }
}

/// Record-Route values in order (reversed for a UAC, RFC 3261 section
/// 12.1.2), as one Route header value.
fn route_set(headers: &Headers, reverse: bool) -> String {
    let mut v: Vec<&str> = headers.values("Record-Route").collect();
    if reverse {
        v.reverse();
    }
    v.join(", ")
}

/// `n` seconds.
fn secs(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

/// `now + d`, with `d` capped at ten years so that no peer's number makes
/// the addition overflow.
fn later(now: Instant, d: Duration) -> Instant {
    const CAP: Duration = Duration::from_secs(10 * 365 * 86_400);
    now.checked_add(d.min(CAP)).unwrap_or(now)
}

/// Responses to a SUBSCRIBE refresh that end the subscription (RFC 6665
/// section 4.1.2.2), and to a NOTIFY that remove it (section 4.2.2).
fn terminates(code: u16) -> bool {
    matches!(code, 404 | 405 | 410 | 416 | 480..=485 | 489 | 501 | 604)
}

/// Dialog id -> subscription. The id is kept once, in its entry: the
/// index holds a hash of it (keyed at random per table, so that nobody
/// can choose ids that collide), checked against the entry on lookup; the
/// rare id whose hash another live dialog has goes in `collided`. A
/// second copy of every id as the key took 58 bytes a dialog.
#[derive(Debug, Default)]
struct Index {
    hasher: RandomState,
    by_hash: HashMap<u64, SubId>,
    collided: HashMap<DialogId, SubId>,
}

impl Index {
    /// The subscription of `id`; `has_id(sub)` says whether `sub`'s
    /// dialog is `id`.
    fn find(&self, id: &DialogId, has_id: impl Fn(SubId) -> bool) -> Option<SubId> {
        let hashed = self
            .by_hash
            .get(&self.hasher.hash_one(id))
            .copied()
            .filter(|s| has_id(*s));
        hashed.or_else(|| self.collided.get(id).copied())
    }

    /// Indexes a dialog not indexed yet.
    fn insert(&mut self, id: &DialogId, sub: SubId) {
        match self.by_hash.entry(self.hasher.hash_one(id)) {
            Entry_::Vacant(v) => {
                v.insert(sub);
            }
            Entry_::Occupied(_) => {
                self.collided.insert(id.clone(), sub);
            }
        }
    }

    fn remove(&mut self, id: &DialogId, sub: SubId) {
        let h = self.hasher.hash_one(id);
        if self.by_hash.get(&h) == Some(&sub) {
            self.by_hash.remove(&h);
            release_sparse(&mut self.by_hash);
        } else {
            self.collided.remove(id);
        }
    }
}

/// The dialogs of one SIP endpoint, both roles, bounded.
#[derive(Debug)]
pub struct SubscriptionTable {
    config: SubscriptionConfig,
    next_id: u64,
    entries: HashMap<SubId, Entry>,
    index: Index,
    wakeups: BTreeSet<(Instant, SubId)>,
    out: VecDeque<Action>,
}

impl SubscriptionTable {
    /// A new bound on dialogs (a reload); those held stay.
    pub fn set_max_subscriptions(&mut self, max: usize) {
        self.config.max_subscriptions = max;
    }

    /// An empty table.
    pub fn new(config: SubscriptionConfig) -> SubscriptionTable {
        SubscriptionTable {
            config,
            next_id: 0,
            entries: HashMap::new(),
            index: Index::default(),
            wakeups: BTreeSet::new(),
            out: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SubscriptionConfig {
        &self.config
    }

    /// Dialogs held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No dialogs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The subscription of a dialog.
    pub fn find(&self, id: &DialogId) -> Option<SubId> {
        self.index
            .find(id, |s| self.entries.get(&s).is_some_and(|e| e.id == *id))
    }

    /// A subscription's dialog id.
    pub fn dialog(&self, sub: SubId) -> Option<&DialogId> {
        self.entries.get(&sub).map(|e| &e.id)
    }

    /// A subscription's role.
    pub fn role(&self, sub: SubId) -> Option<Role> {
        self.entries.get(&sub).map(Entry::role)
    }

    /// When it expires unless refreshed.
    pub fn expires_at(&self, sub: SubId) -> Option<Instant> {
        self.entries.get(&sub).map(|e| e.expires_at)
    }

    /// When the table will refresh a subscription of ours.
    pub fn refresh_at(&self, sub: SubId) -> Option<Instant> {
        match &self.entries.get(&sub)?.side {
            Side::Subscriber { refresh_at, .. } => *refresh_at,
            Side::Notifier { .. } => None,
        }
    }

    /// Whether a notifier dialog is authorized (`active`).
    pub fn is_active(&self, sub: SubId) -> bool {
        self.entries
            .get(&sub)
            .is_some_and(|e| e.phase == Phase::Active)
    }

    /// The local URI (the resource, for a notifier dialog), the remote URI
    /// (the subscriber) and the Event of a dialog.
    pub fn addresses(&self, sub: SubId) -> Option<(&str, &str, &str)> {
        let e = self.entries.get(&sub)?;
        Some((
            e.strings.part(LOCAL),
            e.strings.part(REMOTE),
            e.strings.part(EVENT),
        ))
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// The earliest deadline of any dialog.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wakeups.first().map(|&(t, _)| t)
    }

    fn next_sub(&mut self) -> SubId {
        self.next_id += 1;
        SubId(self.next_id)
    }

    fn insert(&mut self, entry: Entry) -> SubId {
        let sub = self.next_sub();
        self.index.insert(&entry.id, sub);
        self.entries.insert(sub, entry);
        self.sync(sub);
        sub
    }

    /// Reschedules an entry after a change.
    fn sync(&mut self, sub: SubId) {
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        let deadline = Some(e.deadline(&self.config));
        if e.scheduled != deadline {
            if let Some(old) = e.scheduled {
                self.wakeups.remove(&(old, sub));
            }
            if let Some(new) = deadline {
                self.wakeups.insert((new, sub));
            }
            e.scheduled = deadline;
        }
    }

    /// Removes an entry and reports it.
    fn end(&mut self, sub: SubId, cause: Cause, next: Next) -> Option<Ended> {
        let e = self.entries.remove(&sub)?;
        release_sparse(&mut self.entries);
        if let Some(t) = e.scheduled {
            self.wakeups.remove(&(t, sub));
        }
        self.index.remove(&e.id, sub);
        let role = e.role();
        let ended = Ended {
            sub,
            id: e.id,
            role,
            cause,
            next: match e.side {
                Side::Notifier { .. } => Next::Nothing,
                Side::Subscriber { .. } => next,
            },
        };
        self.out.push_back(Action::Ended(ended.clone()));
        Some(ended)
    }

    // ---- notifier ----

    /// Accepts a SUBSCRIBE that creates a dialog (no To tag), which the
    /// caller has authenticated and whose Event it supports: `local_tag`
    /// goes in the 200's To, `expires` is what
    /// [`ExpiresPolicy::grant`](super::ExpiresPolicy::grant) granted (put
    /// it in the 200's Expires), `authorized` says whether the resource's
    /// owner allows the subscriber yet (`active`) or not (`pending`).
    ///
    /// Queues the NOTIFY RFC 6665 requires at once. `expires == 0` is a
    /// fetch: that NOTIFY is final (`terminated;reason=timeout`) and no
    /// dialog is kept (the returned subscription is already ended).
    pub fn accept(
        &mut self,
        request: &Request,
        local_tag: &str,
        expires: u32,
        authorized: bool,
        now: Instant,
    ) -> Result<SubId, Refusal> {
        let h = &request.headers;
        let bad = |reason| Refusal::new(400, reason);
        let from = h.from().map_err(|_| bad("Invalid From"))?;
        let remote_tag = from.tag().ok_or(bad("Missing From Tag"))?;
        let to = h.to().map_err(|_| bad("Invalid To"))?;
        if to.tag().is_some() {
            return Err(Refusal::NO_DIALOG);
        }
        let call_id = h.call_id().map_err(|_| bad("Invalid Call-ID"))?;
        let cseq = h.cseq().map_err(|_| bad("Invalid CSeq"))?;
        let event = h
            .event()
            .map_err(|_| bad("Invalid Event"))?
            .ok_or(Refusal::new(489, "Bad Event"))?;
        let target = contact_uri(h).ok_or(bad("Missing Contact"))?;
        let route = route_set(h, false);
        let id = DialogId::new(call_id, local_tag, remote_tag);
        if self.find(&id).is_some() {
            return Err(Refusal::new(500, "Dialog Exists"));
        }
        if expires != 0 && self.entries.len() >= self.config.max_subscriptions {
            return Err(Refusal::FULL);
        }
        let strings = Packed::new(
            [
                &target,
                &route,
                &to.uri().to_string(),
                &from.uri().to_string(),
                &event.to_string(),
            ],
            self.config.max_dialog_bytes,
        )
        .ok_or(Refusal::TOO_LARGE)?;
        let mut entry = Entry {
            id,
            strings,
            phase: if authorized {
                Phase::Active
            } else {
                Phase::Pending
            },
            local_cseq: 0,
            remote_cseq: cseq.seq,
            expires_at: later(now, secs(expires)),
            scheduled: None,
            side: Side::Notifier {
                last_notify: None,
                dirty: false,
            },
        };
        if expires == 0 {
            // A fetch: one final NOTIFY, nothing kept.
            let sub = self.next_sub();
            let content = if authorized {
                Content::State
            } else {
                Content::Nothing
            };
            let state = SubscriptionState::terminated(Reason::Timeout, None);
            if let Some(request) = entry.request(Method::Notify) {
                self.push_notify(sub, request, state, content);
            }
            self.out.push_back(Action::Ended(Ended {
                sub,
                id: entry.id,
                role: Role::Notifier,
                cause: Cause::Unsubscribed,
                next: Next::Nothing,
            }));
            return Ok(sub);
        }
        let sub = self.insert(entry);
        self.notify_now(sub, now);
        self.out.push_back(Action::Save(sub));
        Ok(sub)
    }

    /// A SUBSCRIBE within a notifier dialog (a refresh, or `expires == 0`
    /// to end it), with the duration the caller granted. Refused with 481
    /// when no dialog matches or the Event differs, 500 when its CSeq is
    /// not above the last. Queues the NOTIFY RFC 6665 requires (final for
    /// an unsubscribe, then [`Action::Ended`]).
    pub fn refresh(
        &mut self,
        request: &Request,
        expires: u32,
        now: Instant,
    ) -> Result<SubId, Refusal> {
        let h = &request.headers;
        let bad = |reason| Refusal::new(400, reason);
        let id = DialogId::new(
            h.call_id().map_err(|_| bad("Invalid Call-ID"))?,
            h.to()
                .map_err(|_| bad("Invalid To"))?
                .tag()
                .unwrap_or_default(),
            h.from()
                .map_err(|_| bad("Invalid From"))?
                .tag()
                .unwrap_or_default(),
        );
        let cseq = h.cseq().map_err(|_| bad("Invalid CSeq"))?.seq;
        let event = h.event().map_err(|_| bad("Invalid Event"))?;
        let sub = self.find(&id).ok_or(Refusal::NO_DIALOG)?;
        let max = self.config.max_dialog_bytes;
        let Some(e) = self.entries.get_mut(&sub) else {
            return Err(Refusal::NO_DIALOG);
        };
        if e.role() != Role::Notifier
            || !event.is_some_and(|ev| e.event().is_some_and(|mine| mine.matches(&ev)))
        {
            return Err(Refusal::NO_DIALOG);
        }
        if cseq <= e.remote_cseq {
            return Err(Refusal::new(500, "Out of Order Request"));
        }
        e.remote_cseq = cseq;
        // SUBSCRIBE is a target refresh request.
        if let Some(target) = contact_uri(h) {
            if !e.strings.replace(TARGET, &target, max) {
                return Err(Refusal::TOO_LARGE);
            }
        }
        if expires == 0 {
            self.final_notify(sub, Reason::Timeout, None, now);
            self.end(sub, Cause::Unsubscribed, Next::Nothing);
        } else {
            e.expires_at = later(now, secs(expires));
            self.notify_now(sub, now);
            self.out.push_back(Action::Save(sub));
        }
        Ok(sub)
    }

    /// The resource's owner authorized the subscriber: `active` goes out
    /// at once, and the next change too. Nothing when already active or
    /// unknown.
    pub fn activate(&mut self, sub: SubId, now: Instant) {
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        if e.role() != Role::Notifier || e.phase == Phase::Active {
            return;
        }
        e.phase = Phase::Active;
        self.notify_now(sub, now);
        // The resource's state usually follows its owner's yes at once
        // (an XMPP contact's presence after `subscribed`): that first
        // change is not held back by the pace, which is for changes
        // (RFC 3856 section 6.4), or the subscriber would show the
        // resource offline for up to 5 s.
        if let Some(Entry {
            side: Side::Notifier { last_notify, .. },
            ..
        }) = self.entries.get_mut(&sub)
        {
            *last_notify = None;
        }
        self.out.push_back(Action::Save(sub));
    }

    /// Ends a notifier dialog: the final NOTIFY
    /// (`terminated;reason=...`) goes out at once, then [`Action::Ended`].
    /// `rejected` is the answer to a declined or revoked authorization
    /// (RFC 8048 `unsubscribed`); `deactivated` tells the subscriber to
    /// come back (shutdown); `noresource`, a resource gone.
    pub fn terminate(
        &mut self,
        sub: SubId,
        reason: Reason,
        retry_after: Option<u32>,
        now: Instant,
    ) {
        if self.role(sub) != Some(Role::Notifier) {
            return;
        }
        self.final_notify(sub, reason.clone(), retry_after, now);
        self.end(sub, Cause::Terminated(reason), Next::Nothing);
    }

    /// The resource's state changed: a NOTIFY goes out now if the dialog
    /// is active and its rate limit allows, else when it does, carrying the
    /// state of that moment (changes in between coalesce). Pending dialogs
    /// are told nothing.
    pub fn changed(&mut self, sub: SubId, now: Instant) {
        let min = self.config.min_notify_interval;
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        if e.phase != Phase::Active {
            return;
        }
        let Side::Notifier { last_notify, dirty } = &mut e.side else {
            return;
        };
        match *last_notify {
            Some(last) if now < last + min => {
                *dirty = true;
                self.sync(sub);
            }
            _ => self.notify_now(sub, now),
        }
    }

    /// The final response to a NOTIFY of `sub` (408 for a transaction
    /// timeout): those RFC 6665 section 4.2.2 lists (404, 405, 410, 416,
    /// 480-485, 489, 501, 604) and 408 remove the subscription, without a
    /// further NOTIFY. Returns whether it did.
    pub fn handle_notify_response(&mut self, sub: SubId, status: u16) -> bool {
        if self.role(sub) != Some(Role::Notifier) || !(terminates(status) || status == 408) {
            return false;
        }
        self.end(sub, Cause::Response(status), Next::Nothing)
            .is_some()
    }

    fn content(e: &Entry) -> Content {
        if e.phase == Phase::Active {
            Content::State
        } else {
            Content::Nothing
        }
    }

    fn push_notify(
        &mut self,
        sub: SubId,
        mut request: Request,
        state: SubscriptionState,
        content: Content,
    ) {
        request
            .headers
            .push("Subscription-State", state.to_string());
        self.out.push_back(Action::Notify {
            sub,
            request,
            state,
            content,
        });
    }

    /// A NOTIFY with the current subscription state, now.
    fn notify_now(&mut self, sub: SubId, now: Instant) {
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        let remaining = e.remaining(now);
        let state = match e.phase {
            Phase::Active => SubscriptionState::active(remaining),
            _ => SubscriptionState::pending(remaining),
        };
        let content = Self::content(e);
        if let Side::Notifier { last_notify, dirty } = &mut e.side {
            *last_notify = Some(now);
            *dirty = false;
        }
        match e.request(Method::Notify) {
            Some(request) => {
                self.push_notify(sub, request, state, content);
                self.sync(sub);
            }
            None => {
                self.end(sub, Cause::Response(400), Next::Nothing);
            }
        }
    }

    fn final_notify(&mut self, sub: SubId, reason: Reason, retry_after: Option<u32>, now: Instant) {
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        let content = Self::content(e);
        if let Side::Notifier { last_notify, .. } = &mut e.side {
            *last_notify = Some(now);
        }
        if let Some(request) = e.request(Method::Notify) {
            let state = SubscriptionState::terminated(reason, retry_after);
            self.push_notify(sub, request, state, content);
        }
    }

    // ---- subscriber ----

    /// Subscribes to `event` of `resource` (the Request-URI and To) as
    /// `local` (From), asking for `expires` seconds (0: a one-shot fetch,
    /// RFC 8048's answer to a probe). A fresh Call-ID and From tag come
    /// from `rng`; the SUBSCRIBE is the first action; Timer N starts.
    pub fn subscribe(
        &mut self,
        resource: &Uri,
        local: &Uri,
        event: &Event,
        expires: u32,
        rng: &mut Rng,
        now: Instant,
    ) -> Result<SubId, Refusal> {
        if self.entries.len() >= self.config.max_subscriptions {
            return Err(Refusal::FULL);
        }
        let resource_text = resource.to_string();
        let strings = Packed::new(
            [
                &resource_text,
                "",
                &local.to_string(),
                &resource_text,
                &event.to_string(),
            ],
            self.config.max_dialog_bytes,
        )
        .ok_or(Refusal::TOO_LARGE)?;
        let entry = Entry {
            id: DialogId::new(&new_call_id(rng), &new_tag(rng), ""),
            strings,
            phase: if expires == 0 {
                Phase::Closing
            } else {
                Phase::Initial
            },
            local_cseq: 0,
            remote_cseq: 0,
            expires_at: later(now, secs(expires) + self.config.timer_n),
            scheduled: None,
            side: Side::Subscriber {
                interval: expires,
                refresh_at: None,
                timer_n: Some(now + self.config.timer_n),
                asked: None,
            },
        };
        let sub = self.insert(entry);
        let asked = if expires == 0 {
            Asked::Unsubscribe
        } else {
            Asked::Initial
        };
        self.send_subscribe(sub, expires, asked);
        Ok(sub)
    }

    /// Refreshes an accepted subscription of ours now, whatever its
    /// schedule: the NOTIFY that answers a refresh carries the full state
    /// (RFC 6665 section 4.2.1.2), which is how a dialog restored after a
    /// restart learns what it missed. Nothing when the subscription is
    /// not ours, not accepted, or has a SUBSCRIBE in flight.
    pub fn refresh_now(&mut self, sub: SubId) {
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        if e.phase != Phase::Active {
            return;
        }
        let Side::Subscriber {
            interval,
            refresh_at,
            asked: None,
            ..
        } = &mut e.side
        else {
            return;
        };
        *refresh_at = None;
        let interval = *interval;
        self.send_subscribe(sub, interval, Asked::Refresh);
        self.sync(sub);
    }

    /// Ends a subscription of ours: SUBSCRIBE with Expires 0; the entry
    /// stays until the final NOTIFY (or Timer N), then ends with
    /// [`Cause::Unsubscribed`].
    pub fn unsubscribe(&mut self, sub: SubId, now: Instant) {
        let timer_n = self.config.timer_n;
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        let Side::Subscriber {
            refresh_at,
            timer_n: n,
            ..
        } = &mut e.side
        else {
            return;
        };
        *refresh_at = None;
        *n = Some(now + timer_n);
        e.phase = Phase::Closing;
        self.send_subscribe(sub, 0, Asked::Unsubscribe);
        self.sync(sub);
    }

    fn send_subscribe(&mut self, sub: SubId, expires: u32, kind: Asked) {
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        let Some(mut request) = e.request(Method::Subscribe) else {
            self.end(sub, Cause::Response(400), Next::Nothing);
            return;
        };
        request.headers.push("Expires", expires.to_string());
        if let Side::Subscriber { asked, .. } = &mut e.side {
            *asked = Some((e.local_cseq, kind));
        }
        self.out.push_back(Action::Subscribe {
            sub,
            request,
            expires,
        });
    }

    fn retry_after(&self, response: &Response, now: Instant) -> Instant {
        let secs = response
            .headers
            .get("Retry-After")
            .and_then(|v| v.split([';', ' ', '(']).next())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(self.config.retry_delay);
        now + secs.min(self.config.retry_delay)
    }

    /// The final (or provisional) response to our SUBSCRIBE `sub`. See
    /// [`SubscribeResult`] for what each does; in short: 2xx (202 alike)
    /// takes the 2xx's Expires; 423 sends again with Min-Expires; a
    /// refresh's 481 is transient (subscribe afresh now); 403, 489 and 603
    /// cancel the authorization; RFC 6665's other terminating codes end
    /// the subscription for a fresh one later; any other failure of a
    /// refresh keeps the subscription until its expiry and retries; any
    /// other failure of the initial SUBSCRIBE is transient.
    pub fn handle_subscribe_response(
        &mut self,
        sub: SubId,
        response: &Response,
        now: Instant,
    ) -> SubscribeResult {
        let Some(e) = self.entries.get(&sub) else {
            return SubscribeResult::Ignored;
        };
        let Side::Subscriber { asked, .. } = &e.side else {
            return SubscribeResult::Ignored;
        };
        let Some((cseq, kind)) = *asked else {
            return SubscribeResult::Ignored;
        };
        if response.status < 200 || response.headers.cseq().map(|c| c.seq).ok() != Some(cseq) {
            return SubscribeResult::Ignored;
        }
        let status = response.status;
        if let Some(Entry {
            side: Side::Subscriber { asked, .. },
            ..
        }) = self.entries.get_mut(&sub)
        {
            *asked = None;
        }
        if (200..300).contains(&status) {
            return self.subscribe_accepted(sub, response, kind, now);
        }
        if kind == Asked::Unsubscribe {
            // Whatever the answer, we are done with it.
            return self.ended(sub, Cause::Unsubscribed, Next::Nothing);
        }
        match status {
            403 | 489 | 603 => self.ended(sub, Cause::Response(status), Next::CancelAuthorization),
            423 => {
                let asked_for = self.interval(sub);
                match response.headers.min_expires() {
                    Ok(Some(m)) if m > asked_for && m <= 7 * 86_400 => {
                        if let Some(Side::Subscriber { interval, .. }) =
                            self.entries.get_mut(&sub).map(|e| &mut e.side)
                        {
                            *interval = m;
                        }
                        self.send_subscribe(sub, m, kind);
                        SubscribeResult::Retrying { expires: m }
                    }
                    _ => self.failed(sub, kind, status, response, now),
                }
            }
            481 if kind == Asked::Refresh => {
                self.ended(sub, Cause::Response(481), Next::ResubscribeAt(now))
            }
            code if terminates(code) => {
                let at = self.retry_after(response, now);
                self.ended(sub, Cause::Response(code), Next::ResubscribeAt(at))
            }
            _ => self.failed(sub, kind, status, response, now),
        }
    }

    /// Our SUBSCRIBE `sub` timed out (no final response): as a 408.
    pub fn handle_subscribe_timeout(&mut self, sub: SubId, now: Instant) -> SubscribeResult {
        let Some(Entry {
            side:
                Side::Subscriber {
                    asked: Some((cseq, _)),
                    ..
                },
            ..
        }) = self.entries.get(&sub)
        else {
            return SubscribeResult::Ignored;
        };
        let mut r = Response::new(408);
        r.headers.push("CSeq", format!("{cseq} SUBSCRIBE"));
        self.handle_subscribe_response(sub, &r, now)
    }

    fn interval(&self, sub: SubId) -> u32 {
        match self.entries.get(&sub).map(|e| &e.side) {
            Some(Side::Subscriber { interval, .. }) => *interval,
            _ => 0,
        }
    }

    fn ended(&mut self, sub: SubId, cause: Cause, next: Next) -> SubscribeResult {
        self.end(sub, cause.clone(), next);
        SubscribeResult::Ended(cause, next)
    }

    /// A failure that is not a verdict on the subscription (5xx, 408, a
    /// 423 we cannot follow...).
    fn failed(
        &mut self,
        sub: SubId,
        kind: Asked,
        status: u16,
        response: &Response,
        now: Instant,
    ) -> SubscribeResult {
        let retry = self.retry_after(response, now);
        if kind == Asked::Initial {
            return self.ended(sub, Cause::Response(status), Next::ResubscribeAt(retry));
        }
        // A refresh: the subscription holds until it expires; try again
        // before then if there is time, else let it expire.
        let Some(e) = self.entries.get_mut(&sub) else {
            return SubscribeResult::Ignored;
        };
        let half = now + e.expires_at.saturating_duration_since(now) / 2;
        let at = retry.min(half);
        if let Side::Subscriber { refresh_at, .. } = &mut e.side {
            *refresh_at = Some(at);
        }
        self.sync(sub);
        SubscribeResult::RetryAt(at)
    }

    fn subscribe_accepted(
        &mut self,
        sub: SubId,
        response: &Response,
        kind: Asked,
        now: Instant,
    ) -> SubscribeResult {
        let remote_tag = response
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned));
        match self.establish(sub, remote_tag.as_deref(), &response.headers, true) {
            Ok(()) => {}
            // A 2xx from a second fork: not ours to keep.
            Err(r) if r.code == 481 => return SubscribeResult::Ignored,
            Err(r) => {
                let at = later(now, self.config.retry_delay);
                return self.ended(sub, Cause::Response(r.code), Next::ResubscribeAt(at));
            }
        }
        let config = self.config;
        let Some(e) = self.entries.get_mut(&sub) else {
            return SubscribeResult::Ignored;
        };
        let Side::Subscriber {
            interval,
            refresh_at,
            ..
        } = &mut e.side
        else {
            return SubscribeResult::Ignored;
        };
        // The 2xx's Expires is authoritative (and may be shorter).
        let granted = match response.headers.expires() {
            Ok(Some(g)) => g.min(*interval),
            _ => *interval,
        };
        if kind == Asked::Unsubscribe || granted == 0 {
            e.phase = Phase::Closing;
            *refresh_at = None;
            self.sync(sub);
            return SubscribeResult::Closing;
        }
        if e.phase == Phase::Initial {
            e.phase = Phase::Active;
        }
        let expires_at = later(now, secs(granted));
        let at = later(now, config.refresh_delay(granted));
        e.expires_at = expires_at;
        *refresh_at = Some(at);
        self.sync(sub);
        self.out.push_back(Action::Save(sub));
        SubscribeResult::Active {
            expires_at,
            refresh_at: at,
        }
    }

    /// Fills in the remote tag (re-indexing the early dialog), the remote
    /// target and, from the first dialog-forming message, the route set.
    /// Refused (nothing changed) with 481 when `remote_tag` differs from
    /// the one already known (another fork), 413 when the dialog would
    /// exceed [`SubscriptionConfig::max_dialog_bytes`].
    fn establish(
        &mut self,
        sub: SubId,
        remote_tag: Option<&str>,
        headers: &Headers,
        from_response: bool,
    ) -> Result<(), Refusal> {
        let max = self.config.max_dialog_bytes;
        let Some(e) = self.entries.get(&sub) else {
            return Err(Refusal::NO_DIALOG);
        };
        let tag = remote_tag.filter(|t| !t.is_empty());
        let early = e.id.remote_tag().is_empty();
        let new_id = match tag {
            Some(t) if early => Some(DialogId::new(e.id.call_id(), e.id.local_tag(), t)),
            Some(t) if e.id.remote_tag() != t => return Err(Refusal::NO_DIALOG),
            Some(_) => None,
            None if early && !from_response => return Err(Refusal::NO_DIALOG),
            None => None,
        };
        if new_id.as_ref().is_some_and(|id| self.find(id).is_some()) {
            return Err(Refusal::NO_DIALOG);
        }
        let Some(e) = self.entries.get_mut(&sub) else {
            return Err(Refusal::NO_DIALOG);
        };
        let mut parts = [""; 5];
        for (k, p) in parts.iter_mut().enumerate() {
            *p = e.strings.part(k);
        }
        let route = route_set(headers, from_response);
        if new_id.is_some() {
            parts[ROUTE] = &route;
        }
        let target = contact_uri(headers);
        if let Some(t) = &target {
            parts[TARGET] = t;
        }
        let strings = Packed::new(parts, max).ok_or(Refusal::TOO_LARGE)?;
        e.strings = strings;
        if let Some(id) = new_id {
            self.index.remove(&e.id, sub);
            self.index.insert(&id, sub);
            e.id = id;
        }
        Ok(())
    }

    /// A NOTIFY arrived. Finds its subscription (an early one is
    /// established by it: a NOTIFY may overtake the 2xx), checks Event
    /// (489), Subscription-State (400) and CSeq order (500), updates the
    /// remote target and expiry, and says what it means. A NOTIFY for no
    /// subscription, or from a second fork, gets 481. Answer 200 on `Ok`.
    pub fn handle_notify(&mut self, request: &Request, now: Instant) -> Result<Notified, Refusal> {
        let h = &request.headers;
        let bad = |reason| Refusal::new(400, reason);
        let call_id = h.call_id().map_err(|_| bad("Invalid Call-ID"))?;
        let local_tag = h.to().map_err(|_| bad("Invalid To"))?;
        let local_tag = local_tag.tag().ok_or(Refusal::NO_DIALOG)?;
        let from = h.from().map_err(|_| bad("Invalid From"))?;
        let remote_tag = from.tag().ok_or(bad("Missing From Tag"))?;
        let cseq = h.cseq().map_err(|_| bad("Invalid CSeq"))?.seq;
        let sub = self
            .find(&DialogId::new(call_id, local_tag, remote_tag))
            .or_else(|| self.find(&DialogId::new(call_id, local_tag, "")))
            .ok_or(Refusal::NO_DIALOG)?;
        if self.role(sub) != Some(Role::Subscriber) {
            return Err(Refusal::NO_DIALOG);
        }
        let event = h
            .event()
            .map_err(|_| bad("Invalid Event"))?
            .ok_or(Refusal::new(489, "Bad Event"))?;
        let Some(e) = self.entries.get(&sub) else {
            return Err(Refusal::NO_DIALOG);
        };
        if !e.event().is_some_and(|mine| mine.matches(&event)) {
            return Err(Refusal::new(489, "Bad Event"));
        }
        let state = h
            .subscription_state()
            .map_err(|_| bad("Invalid Subscription-State"))?
            .ok_or(bad("Missing Subscription-State"))?;
        if e.remote_cseq != 0 && cseq <= e.remote_cseq {
            return Err(Refusal::new(500, "Out of Order Request"));
        }
        self.establish(sub, Some(remote_tag), h, false)?;
        let retry_delay = self.config.retry_delay;
        let config = self.config;
        let Some(e) = self.entries.get_mut(&sub) else {
            return Err(Refusal::NO_DIALOG);
        };
        e.remote_cseq = cseq;
        let closing = e.phase == Phase::Closing;
        let Side::Subscriber {
            timer_n,
            refresh_at,
            ..
        } = &mut e.side
        else {
            return Err(Refusal::NO_DIALOG);
        };
        *timer_n = None;
        let ended = match &state.state {
            SubState::Terminated => {
                let next = if closing {
                    Next::Nothing
                } else {
                    match &state.reason {
                        Some(Reason::Rejected) => Next::CancelAuthorization,
                        Some(Reason::Noresource | Reason::Invariant) => Next::Nothing,
                        Some(Reason::Probation | Reason::Giveup) => Next::ResubscribeAt(later(
                            now,
                            state.retry_after.map_or(retry_delay, secs),
                        )),
                        _ => Next::ResubscribeAt(later(
                            now,
                            state.retry_after.map_or(Duration::ZERO, secs),
                        )),
                    }
                };
                let cause = match (&state.reason, closing) {
                    (_, true) => Cause::Unsubscribed,
                    (Some(r), false) => Cause::Terminated(r.clone()),
                    (None, false) => Cause::Terminated(Reason::Other(String::new())),
                };
                self.end(sub, cause, next);
                Some(next)
            }
            SubState::Active | SubState::Pending if !closing => {
                if e.phase == Phase::Initial {
                    // A NOTIFY before the 2xx: the subscription runs.
                    e.phase = Phase::Active;
                    self.out.push_back(Action::Save(sub));
                }
                if let Some(s) = state.expires {
                    // The notifier may only shorten it.
                    let at = later(now, secs(s));
                    if at < e.expires_at {
                        e.expires_at = at;
                        let refresh = later(now, config.refresh_delay(s));
                        *refresh_at = Some(refresh_at.map_or(refresh, |r| r.min(refresh)));
                    }
                }
                self.sync(sub);
                None
            }
            _ => {
                self.sync(sub);
                None
            }
        };
        Ok(Notified { sub, state, ended })
    }

    /// Runs every dialog whose deadline has come: notifier expiry (final
    /// NOTIFY `timeout`), coalesced NOTIFYs, refreshes, subscriber expiry
    /// and Timer N.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, sub)) = self.wakeups.first() {
            if t > now {
                break;
            }
            self.wakeups.pop_first();
            let Some(e) = self.entries.get_mut(&sub) else {
                continue;
            };
            e.scheduled = None;
            let expired = e.expires_at <= now;
            match &mut e.side {
                Side::Notifier { last_notify, dirty } => {
                    if expired {
                        self.final_notify(sub, Reason::Timeout, None, now);
                        self.end(sub, Cause::Expired, Next::Nothing);
                        continue;
                    }
                    let due =
                        last_notify.is_none_or(|l| l + self.config.min_notify_interval <= now);
                    if *dirty && due {
                        self.notify_now(sub, now);
                    }
                }
                Side::Subscriber {
                    refresh_at,
                    timer_n,
                    interval,
                    ..
                } => {
                    if timer_n.is_some_and(|n| n <= now) {
                        let closing = e.phase == Phase::Closing;
                        let (cause, next) = if closing {
                            (Cause::Unsubscribed, Next::Nothing)
                        } else {
                            (
                                Cause::NoNotify,
                                Next::ResubscribeAt(now + self.config.retry_delay),
                            )
                        };
                        self.end(sub, cause, next);
                        continue;
                    }
                    if expired && e.phase != Phase::Initial {
                        let next = if e.phase == Phase::Closing {
                            Next::Nothing
                        } else {
                            Next::ResubscribeAt(now)
                        };
                        self.end(sub, Cause::Expired, next);
                        continue;
                    }
                    if refresh_at.is_some_and(|r| r <= now) {
                        *refresh_at = None;
                        let interval = *interval;
                        self.send_subscribe(sub, interval, Asked::Refresh);
                    }
                }
            }
            self.sync(sub);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialog_ids() {
        let id = DialogId::new("c@h", "l", "");
        assert_eq!(
            (id.call_id(), id.local_tag(), id.remote_tag()),
            ("c@h", "l", "")
        );
        let id = DialogId::new("c", "", "r");
        assert_eq!(
            (id.call_id(), id.local_tag(), id.remote_tag()),
            ("c", "", "r")
        );
        assert_ne!(DialogId::new("ab", "c", ""), DialogId::new("a", "bc", ""));
        assert_eq!(DialogId::new("a", "b", "c").to_string(), "a;b;c");
    }

    #[test]
    fn packed_parts_and_bound() {
        let mut p = Packed::new(["sip:t", "", "sip:l", "sip:r", "presence"], 100).unwrap();
        assert_eq!(
            [p.part(0), p.part(1), p.part(2), p.part(3), p.part(4)],
            ["sip:t", "", "sip:l", "sip:r", "presence"]
        );
        assert!(p.replace(ROUTE, "<sip:p;lr>", 100));
        assert_eq!(p.part(ROUTE), "<sip:p;lr>");
        assert_eq!(p.part(EVENT), "presence");
        let big = "x".repeat(70_000);
        assert!(Packed::new(["", "", "", "", &big], usize::MAX).is_none());
        assert!(Packed::new(["12345", "", "", "", "6"], 5).is_none());
        assert!(Packed::new(["12345", "", "", "", ""], 5).is_some());
        assert!(!p.replace(TARGET, &big, usize::MAX), "refused, unchanged");
        assert!(
            !p.replace(TARGET, &"y".repeat(90), 100),
            "refused, unchanged"
        );
        assert_eq!(p.part(TARGET), "sip:t");
    }

    /// Two live dialogs whose ids hash alike (made to here: with random
    /// keys it happens once in 2^64 pairs) are both found, and removing
    /// either leaves the other.
    #[test]
    fn index_survives_a_hash_collision() {
        let (a, b) = (DialogId::new("c1", "l", "r"), DialogId::new("c2", "l", "r"));
        let mut index = Index::default();
        index.insert(&a, SubId(1));
        let slot = index.hasher.hash_one(&b);
        index.by_hash.insert(slot, SubId(1));
        index.insert(&b, SubId(2));
        assert_eq!(index.collided.len(), 1, "b went aside");
        let ids = [(SubId(1), &a), (SubId(2), &b)];
        let has = |id: &DialogId, s: SubId| ids.iter().any(|(k, i)| *k == s && *i == id);
        assert_eq!(index.find(&b, |s| has(&b, s)), Some(SubId(2)));
        index.by_hash.remove(&slot);
        index.remove(&b, SubId(2));
        assert!(index.collided.is_empty());
        assert_eq!(index.find(&a, |s| has(&a, s)), Some(SubId(1)));
        assert_eq!(index.find(&b, |s| has(&b, s)), None);
        index.remove(&a, SubId(1));
        assert!(index.by_hash.is_empty());
    }

    /// What one dialog costs the table, inline: the entry, the hash of
    /// its id with the index's `SubId`, and the wakeup. The strings are on
    /// the heap in two allocations: the id (Call-ID and tags) and the rest
    /// (target, route set, URIs, Event: about 80 bytes without a route
    /// set). `benches/presence_memory.rs` measures it all, hash tables'
    /// slack included.
    #[test]
    fn entry_size() {
        let entry = std::mem::size_of::<Entry>();
        let index = std::mem::size_of::<(u64, SubId)>();
        let map = std::mem::size_of::<(SubId, Entry)>();
        let wakeup = std::mem::size_of::<(Instant, SubId)>();
        eprintln!("Entry {entry} B; (SubId, Entry) {map} B; index {index} B; wakeup {wakeup} B");
        assert!(map + index + wakeup <= 300, "{map} + {index} + {wakeup}");
    }
}
