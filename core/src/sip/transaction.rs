//! Non-INVITE transactions (RFC 3261 sections 17.1.2 and 17.2.2, with RFC
//! 4320's changes) as sans-IO state machines: the caller passes time in,
//! hands over matched messages, and carries out the [`Output`]s.
//!
//! INVITE transactions are not implemented: the gateway does pager-mode
//! IM and presence, and answers INVITE statelessly.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::message::{Request, Response};
use super::method::Method;
use super::values::HeaderError;
use super::MAGIC_COOKIE;

/// RFC 3261's timer base values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate; E starts at it, F and J are 64 of it.
    pub t1: Duration,
    /// Cap of E's doubling.
    pub t2: Duration,
    /// How long the network holds a message: K on unreliable transports.
    pub t4: Duration,
}

impl Default for Timers {
    /// RFC 3261 section 17's values: 500 ms, 4 s, 5 s.
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// Timers F and J: 64·T1 (32 s by default).
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }

    /// How long a client's Timer E takes to reach T2 (3.5 s by default):
    /// RFC 4320 forbids a 100 over UDP before it and requires one after.
    pub fn trying_delay(&self) -> Duration {
        let mut total = Duration::ZERO;
        let mut e = self.t1;
        while e < self.t2 && !e.is_zero() {
            total += e;
            e = (e * 2).min(self.t2);
        }
        total
    }
}

/// RFC 3261's transaction states (non-INVITE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Started; no provisional response yet.
    Trying,
    /// A provisional response was sent or received.
    Proceeding,
    /// A final response was sent or received; retransmissions are still absorbed.
    Completed,
    /// Over: the transaction can be dropped.
    Terminated,
}

/// What a transaction asks of its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes to the transaction's peer (the request, a
    /// retransmission, or a server's response).
    Transmit(Vec<u8>),
    /// Client: a 1xx for the TU.
    Provisional(Response),
    /// Client: the final response for the TU (retransmissions are
    /// absorbed).
    Final(Response),
    /// Client: Timer F fired before a final response; the TU acts as if a
    /// 408 had arrived.
    Timeout,
    /// The transport failed to send; the transaction is over.
    TransportError,
    /// The transaction is over and can be dropped; always the last output.
    Terminated,
}

/// Why a transaction could not be created or driven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransactionError {
    /// The top Via or CSeq cannot be read.
    Header(HeaderError),
    /// Our own request's top Via has no branch with the magic cookie.
    NoBranch,
    /// INVITE and ACK have no transactions here.
    Invite,
    /// A status outside 100..=699, or a provisional response other than
    /// 100 (RFC 4320 section 4.1).
    BadStatus(u16),
    /// The transaction already has its final response, or has ended.
    Completed,
    /// A client transaction with the same branch and method exists.
    Duplicate,
    /// No such transaction (it may have ended).
    Unknown,
}

impl fmt::Display for TransactionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransactionError::Header(e) => write!(f, "{e}"),
            TransactionError::NoBranch => f.write_str("top Via has no z9hG4bK branch"),
            TransactionError::Invite => f.write_str("INVITE and ACK have no transactions here"),
            TransactionError::BadStatus(s) => write!(f, "status {s} not allowed here"),
            TransactionError::Completed => f.write_str("transaction already completed"),
            TransactionError::Duplicate => f.write_str("transaction already exists"),
            TransactionError::Unknown => f.write_str("no such transaction"),
        }
    }
}

impl std::error::Error for TransactionError {}

impl From<HeaderError> for TransactionError {
    fn from(e: HeaderError) -> Self {
        TransactionError::Header(e)
    }
}

fn check_method(m: &Method) -> Result<(), TransactionError> {
    match m {
        Method::Invite | Method::Ack => Err(TransactionError::Invite),
        _ => Ok(()),
    }
}

/// What a response is matched to a client transaction by (RFC 3261
/// section 17.1.3): the top Via branch and the CSeq method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    branch: String,
    method: Method,
}

impl ClientKey {
    /// The key of a request we send; its branch must carry the cookie.
    pub fn of_request(r: &Request) -> Result<Self, TransactionError> {
        let via = r.headers.top_via()?;
        let branch = via
            .branch()
            .filter(|b| b.starts_with(MAGIC_COOKIE))
            .ok_or(TransactionError::NoBranch)?;
        Ok(ClientKey {
            branch: branch.to_owned(),
            method: r.method.clone(),
        })
    }

    /// The key a response belongs to.
    pub fn of_response(r: &Response) -> Result<Self, TransactionError> {
        let via = r.headers.top_via()?;
        let branch = via.branch().ok_or(TransactionError::NoBranch)?;
        Ok(ClientKey {
            branch: branch.to_owned(),
            method: r.headers.cseq()?.method,
        })
    }

    /// The Via branch that identifies the transaction.
    pub fn branch(&self) -> &str {
        &self.branch
    }
}

/// What a request is matched to a server transaction by (RFC 3261
/// section 17.2.3): branch, sent-by and method (ACK as INVITE); for
/// RFC 2543 requests (no cookie) the section's older rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerKey {
    branch: String,
    sent_by: String,
    method: Method,
}

impl ServerKey {
    /// The key of a request received (RFC 3261 section 17.2.3).
    pub fn of_request(r: &Request) -> Result<Self, TransactionError> {
        let via = r.headers.top_via()?;
        let method = match &r.method {
            Method::Ack => Method::Invite,
            m => m.clone(),
        };
        match via.branch().filter(|b| b.starts_with(MAGIC_COOKIE)) {
            Some(b) => Ok(ServerKey {
                branch: b.to_owned(),
                sent_by: via.sent_by_key(),
                method,
            }),
            None => {
                // Request-URI, tags, Call-ID, CSeq number and top Via.
                let from = r.headers.from()?;
                let to = r.headers.to()?;
                Ok(ServerKey {
                    branch: format!(
                        "rfc2543 {} {} {} {} {}",
                        r.uri,
                        from.tag().unwrap_or(""),
                        to.tag().unwrap_or(""),
                        r.headers.call_id()?,
                        r.headers.cseq()?.seq
                    ),
                    sent_by: via.to_string(),
                    method,
                })
            }
        }
    }

    /// The branch, or for RFC 2543 requests the fields standing in for it.
    pub fn branch(&self) -> &str {
        &self.branch
    }
}

fn earliest(timers: &[Option<Instant>]) -> Option<Instant> {
    timers.iter().flatten().min().copied()
}

fn due(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| t <= now)
}

/// The client side of one non-INVITE transaction.
#[derive(Debug)]
pub struct ClientTransaction {
    key: ClientKey,
    state: State,
    reliable: bool,
    timers: Timers,
    request: Vec<u8>,
    /// Timer E (retransmission), unreliable transports only.
    e: Option<Instant>,
    e_interval: Duration,
    /// Timer F (timeout).
    f: Option<Instant>,
    /// Timer K (absorbing response retransmissions).
    k: Option<Instant>,
    out: VecDeque<Output>,
}

impl ClientTransaction {
    /// Starts the transaction: the request is queued for transmission and
    /// F (and on unreliable transports E) started.
    pub fn new(
        request: &Request,
        reliable: bool,
        timers: Timers,
        now: Instant,
    ) -> Result<Self, TransactionError> {
        check_method(&request.method)?;
        let key = ClientKey::of_request(request)?;
        let bytes = request.to_bytes();
        let mut out = VecDeque::new();
        out.push_back(Output::Transmit(bytes.clone()));
        Ok(ClientTransaction {
            key,
            state: State::Trying,
            reliable,
            timers,
            request: bytes,
            e: (!reliable).then(|| now + timers.t1),
            e_interval: timers.t1,
            f: Some(now + timers.timeout()),
            k: None,
            out,
        })
    }

    /// What responses are matched to it by.
    pub fn key(&self) -> &ClientKey {
        &self.key
    }

    /// Where it stands in RFC 3261 figure 6.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether it is over and can be dropped.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// A response from the transport. Returns false (and ignores it) when
    /// it does not belong to this transaction.
    pub fn handle_response(&mut self, response: Response, now: Instant) -> bool {
        if ClientKey::of_response(&response).as_ref() != Ok(&self.key) {
            return false;
        }
        self.on_response(response, now);
        true
    }

    /// A response already matched to this transaction.
    pub(crate) fn on_response(&mut self, response: Response, now: Instant) {
        match self.state {
            State::Trying | State::Proceeding if response.status < 200 => {
                // E keeps running but stops doubling (section 17.1.2.2).
                self.state = State::Proceeding;
                self.out.push_back(Output::Provisional(response));
            }
            State::Trying | State::Proceeding => {
                self.e = None;
                self.f = None;
                self.out.push_back(Output::Final(response));
                if self.reliable {
                    self.terminate();
                } else {
                    self.state = State::Completed;
                    self.k = Some(now + self.timers.t4);
                }
            }
            // Retransmissions of the final response are absorbed.
            State::Completed | State::Terminated => {}
        }
    }

    /// When [`ClientTransaction::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.e, self.f, self.k])
    }

    /// Fires timers E (retransmit), F (time out) and K (forget) that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Trying | State::Proceeding => {
                if due(self.f, now) {
                    self.out.push_back(Output::Timeout);
                    self.terminate();
                    return;
                }
                if let Some(at) = self.e.filter(|&at| at <= now) {
                    self.out.push_back(Output::Transmit(self.request.clone()));
                    self.e_interval = if self.state == State::Proceeding {
                        self.timers.t2
                    } else {
                        (self.e_interval * 2).min(self.timers.t2)
                    };
                    let next = at + self.e_interval;
                    self.e = Some(if next > now {
                        next
                    } else {
                        now + self.e_interval
                    });
                }
            }
            State::Completed => {
                if due(self.k, now) {
                    self.terminate();
                }
            }
            State::Terminated => {}
        }
    }

    /// The transport could not send the request.
    pub fn handle_transport_error(&mut self) {
        if self.state != State::Terminated {
            self.out.push_back(Output::TransportError);
            self.terminate();
        }
    }

    /// The next thing to do, in order; `None` until input or a timer adds one.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.e = None;
        self.f = None;
        self.k = None;
        self.out.push_back(Output::Terminated);
    }
}

/// The server side of one non-INVITE transaction.
#[derive(Debug)]
pub struct ServerTransaction {
    key: ServerKey,
    state: State,
    reliable: bool,
    timers: Timers,
    /// The 100 RFC 4320 requires if the TU has not answered in time.
    trying: Option<Response>,
    /// The last response sent, resent on request retransmissions.
    last: Option<Vec<u8>>,
    /// When the 100 becomes allowed and due.
    t100: Option<Instant>,
    /// When to give up on a TU that never answers: the client has timed
    /// out by then.
    guard: Option<Instant>,
    /// Timer J (absorbing request retransmissions).
    j: Option<Instant>,
    out: VecDeque<Output>,
}

impl ServerTransaction {
    /// A transaction for a new request; the caller hands the request to
    /// its TU.
    pub fn new(
        request: &Request,
        reliable: bool,
        timers: Timers,
        now: Instant,
    ) -> Result<Self, TransactionError> {
        check_method(&request.method)?;
        let key = ServerKey::of_request(request)?;
        Ok(ServerTransaction {
            key,
            state: State::Trying,
            reliable,
            timers,
            trying: Some(request.response(100, "")),
            last: None,
            t100: Some(now + timers.trying_delay()),
            guard: Some(now + timers.timeout()),
            j: None,
            out: VecDeque::new(),
        })
    }

    /// What retransmissions of the request are matched to it by.
    pub fn key(&self) -> &ServerKey {
        &self.key
    }

    /// Where it stands in RFC 3261 figure 8.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether it is over and can be dropped.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// A retransmission of the request: absorbed in Trying, answered with
    /// the last response in Proceeding and Completed.
    pub fn handle_request(&mut self) {
        if matches!(self.state, State::Proceeding | State::Completed) {
            if let Some(b) = &self.last {
                self.out.push_back(Output::Transmit(b.clone()));
            }
        }
    }

    /// A response from the TU.
    ///
    /// - 100 only among provisionals (RFC 4320); on an unreliable
    ///   transport one sent before [`Timers::trying_delay`] is held back,
    ///   and the transaction sends its own 100 then if still unanswered.
    /// - 408 is never sent (RFC 4320 section 4.2): the transaction
    ///   completes silently, absorbing retransmissions, and the client
    ///   times out on its own.
    /// - A second final response is refused.
    pub fn respond(&mut self, response: Response, now: Instant) -> Result<(), TransactionError> {
        if matches!(self.state, State::Completed | State::Terminated) {
            return Err(TransactionError::Completed);
        }
        match response.status {
            100 => {
                if !self.reliable && self.t100.is_some_and(|t| now < t) {
                    return Ok(());
                }
                self.send(response);
                self.state = State::Proceeding;
                self.t100 = None;
            }
            200..=699 => {
                self.t100 = None;
                self.guard = None;
                self.trying = None;
                if response.status == 408 {
                    self.last = None;
                } else {
                    self.send(response);
                }
                if self.reliable {
                    self.terminate();
                } else {
                    self.state = State::Completed;
                    self.j = Some(now + self.timers.timeout());
                }
            }
            s => return Err(TransactionError::BadStatus(s)),
        }
        Ok(())
    }

    fn send(&mut self, response: Response) {
        let bytes = response.to_bytes();
        self.out.push_back(Output::Transmit(bytes.clone()));
        self.last = Some(bytes);
    }

    /// When [`ServerTransaction::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.t100, self.guard, self.j])
    }

    /// Sends the 100 Trying that RFC 4320 delays, and fires the guard and timer J (forget) that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Trying | State::Proceeding => {
                if due(self.guard, now) {
                    self.terminate();
                    return;
                }
                if due(self.t100, now) {
                    self.t100 = None;
                    if let Some(r) = self.trying.take() {
                        self.send(r);
                        self.state = State::Proceeding;
                    }
                }
            }
            State::Completed => {
                if due(self.j, now) {
                    self.terminate();
                }
            }
            State::Terminated => {}
        }
    }

    /// The transport could not send a response.
    pub fn handle_transport_error(&mut self) {
        if self.state != State::Terminated {
            self.out.push_back(Output::TransportError);
            self.terminate();
        }
    }

    /// The next thing to do, in order; `None` until input or a timer adds one.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.t100 = None;
        self.guard = None;
        self.j = None;
        self.trying = None;
        self.last = None;
        self.out.push_back(Output::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trying_delay_is_when_e_reaches_t2() {
        assert_eq!(
            Timers::default().trying_delay(),
            Duration::from_millis(3500)
        );
        assert_eq!(Timers::default().timeout(), Duration::from_secs(32));
        let zero = Timers {
            t1: Duration::ZERO,
            ..Timers::default()
        };
        assert_eq!(zero.trying_delay(), Duration::ZERO);
    }
}
