//! The bounds of the XMPP -> SIP message queues, and backpressure: when a
//! SIP user's queue is half full, the s2s stream that fills it is left
//! unread (TCP then slows the sending server down) until the queue is
//! below a quarter, so that a burst waits instead of bouncing. A pause
//! lasts at most `sip.max_read_pause`: then the stream is read again and
//! what does not fit is bounced with `resource-constraint`, as always
//! beyond `sip.max_queued_per_user` and `sip.max_queued_messages`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use crate::config::MessageQueues;
use crate::event::Event;
use crate::ids::ConnId;
use crate::output::Output;

/// A stream left unread: since when, and for which SIP users' queues.
#[derive(Debug)]
struct Paused {
    since: Instant,
    for_users: HashSet<String>,
}

/// Queue bounds and the streams paused for full queues.
#[derive(Debug)]
pub(super) struct Backpressure {
    limits: MessageQueues,
    /// Messages waiting over all users.
    queued: usize,
    paused: HashMap<ConnId, Paused>,
    /// Users a pause ran out for: no stream is paused for them again
    /// until their queue is below a quarter (else every message would
    /// pause the stream anew).
    overloaded: HashSet<String>,
}

impl Backpressure {
    pub(super) fn new(limits: MessageQueues) -> Self {
        Backpressure {
            limits,
            queued: 0,
            paused: HashMap::new(),
            overloaded: HashSet::new(),
        }
    }

    /// New bounds (a reload); what is queued beyond them drains.
    pub(super) fn set_limits(&mut self, limits: MessageQueues) {
        self.limits = limits;
    }

    /// MESSAGEs in flight per user over reliable transports.
    pub(super) fn window(&self) -> usize {
        usize::try_from(self.limits.max_in_flight_per_user).unwrap_or(usize::MAX)
    }

    fn per_user(&self) -> usize {
        usize::try_from(self.limits.max_queued_per_user).unwrap_or(usize::MAX)
    }

    /// At this many waiting the stream that brings one more is paused.
    fn high(&self) -> usize {
        self.per_user().div_ceil(2)
    }

    /// Below this many waiting the streams paused for the user resume.
    fn low(&self) -> usize {
        self.per_user().div_ceil(4)
    }

    /// Whether one more message may wait for a user who has `waiting`;
    /// the bound it would break when not.
    pub(super) fn admit(&self, waiting: usize) -> Result<(), &'static str> {
        if waiting >= self.per_user() {
            return Err("sip.max_queued_per_user");
        }
        let total = usize::try_from(self.limits.max_queued_messages).unwrap_or(usize::MAX);
        if self.queued >= total {
            return Err("sip.max_queued_messages");
        }
        Ok(())
    }

    /// A message now waits for `user`, who has `waiting` with it; it came
    /// over `source`, which is paused when the queue is half full.
    pub(super) fn queued(
        &mut self,
        user: &str,
        waiting: usize,
        source: Option<ConnId>,
        now: Instant,
        out: &mut VecDeque<Output>,
    ) {
        self.queued += 1;
        let Some(conn) = source else {
            return;
        };
        if waiting < self.high() || self.overloaded.contains(user) {
            return;
        }
        let paused = self.paused.entry(conn).or_insert_with(|| {
            out.push_back(Output::PauseReading { conn });
            out.push_back(Output::Event(Event::detail(
                Some(conn),
                format!("{waiting} messages wait for SIP user {user}: stream paused"),
            )));
            Paused {
                since: now,
                for_users: HashSet::new(),
            }
        });
        paused.for_users.insert(user.to_owned());
    }

    /// A message no longer waits for `user`, who has `waiting` left:
    /// below a quarter the streams paused for the user resume.
    pub(super) fn dequeued(&mut self, user: &str, waiting: usize, out: &mut VecDeque<Output>) {
        self.queued = self.queued.saturating_sub(1);
        if waiting >= self.low() {
            return;
        }
        self.overloaded.remove(user);
        self.paused.retain(|&conn, p| {
            if !p.for_users.remove(user) || !p.for_users.is_empty() {
                return true;
            }
            out.push_back(Output::ResumeReading { conn });
            out.push_back(Output::Event(Event::detail(
                Some(conn),
                format!("SIP user {user}'s queue drained: stream read again"),
            )));
            false
        });
    }

    /// When the oldest pause runs out.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let most = self.limits.max_read_pause;
        self.paused.values().map(|p| p.since + most).min()
    }

    /// Resumes the streams paused for `sip.max_read_pause`; their users
    /// are overloaded: what does not fit their queues now bounces.
    pub(super) fn handle_timeout(&mut self, now: Instant, out: &mut VecDeque<Output>) {
        let most = self.limits.max_read_pause;
        let overloaded = &mut self.overloaded;
        self.paused.retain(|&conn, p| {
            if p.since + most > now {
                return true;
            }
            let mut users: Vec<&String> = p.for_users.iter().collect();
            users.sort();
            out.push_back(Output::ResumeReading { conn });
            out.push_back(Output::Event(Event::LimitReached {
                conn: Some(conn),
                key: "sip.max_read_pause",
                detail: format!(
                    "stream paused {most:?} for the queues of {users:?}: read again; messages beyond sip.max_queued_per_user bounce"
                ),
            }));
            overloaded.extend(p.for_users.drain());
            false
        });
    }

    /// Streams paused now, for the operator's figures and tests.
    pub(super) fn paused(&self) -> usize {
        self.paused.len()
    }
}
