//! Many transactions behind one interface: incoming messages are matched
//! to their transaction, timers are merged into one deadline, outputs are
//! tagged with the transaction they come from.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use super::message::{Request, Response};
use super::method::Method;
use super::transaction::{
    ClientKey, ClientTransaction, Output, ServerKey, ServerTransaction, Timers, TransactionError,
};
use crate::capacity::release_sparse;

/// Names a transaction in a [`TransactionTable`]; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// What an incoming request is.
#[derive(Debug)]
pub enum Incoming {
    /// A new server transaction: hand the request to the TU, which answers
    /// through [`TransactionTable::respond`].
    New(TxId, Request),
    /// A retransmission, absorbed or answered with the last response.
    Retransmission(TxId),
    /// INVITE or ACK, which have no transactions here: answer statelessly
    /// (an INVITE) or ignore (an ACK).
    Stateless(Request),
    /// A new request while the table holds its limit of server
    /// transactions: answer 503 with Retry-After statelessly (RFC 3261
    /// section 21.5.4), keeping nothing.
    Overloaded(Request),
}

#[derive(Debug)]
enum Tx {
    Client(ClientTransaction),
    Server(ServerTransaction),
}

#[derive(Debug)]
struct Entry {
    tx: Tx,
    /// The deadline this entry has in `wakeups`.
    scheduled: Option<Instant>,
}

/// Owns the transactions of one SIP endpoint.
#[derive(Debug, Default)]
pub struct TransactionTable {
    timers: Timers,
    next_id: u64,
    entries: HashMap<TxId, Entry>,
    clients: HashMap<ClientKey, TxId>,
    servers: HashMap<ServerKey, TxId>,
    /// Each live transaction's next deadline, so that finding the earliest
    /// and the due ones costs a logarithm, not a scan.
    wakeups: BTreeSet<(Instant, TxId)>,
    out: VecDeque<(TxId, Output)>,
    /// At most this many server transactions at once.
    max_servers: usize,
}

impl TransactionTable {
    /// A table holding at most `max_servers` server transactions (what a
    /// peer can make us keep); client transactions are ours, bounded by
    /// the queues that start them.
    pub fn new(timers: Timers, max_servers: usize) -> Self {
        TransactionTable {
            timers,
            max_servers,
            ..TransactionTable::default()
        }
    }

    /// A new bound on server transactions (a reload); those held stay.
    pub fn set_max_servers(&mut self, max_servers: usize) {
        self.max_servers = max_servers;
    }

    /// Server transactions held.
    pub fn servers(&self) -> usize {
        self.servers.len()
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No live transactions.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Starts a client transaction for a request we send; its first output
    /// is the request to transmit.
    pub fn start_client(
        &mut self,
        request: &Request,
        reliable: bool,
        now: Instant,
    ) -> Result<TxId, TransactionError> {
        let tx = ClientTransaction::new(request, reliable, self.timers, now)?;
        if self.clients.contains_key(tx.key()) {
            return Err(TransactionError::Duplicate);
        }
        let id = self.next();
        self.clients.insert(tx.key().clone(), id);
        self.entries.insert(
            id,
            Entry {
                tx: Tx::Client(tx),
                scheduled: None,
            },
        );
        self.sync(id);
        Ok(id)
    }

    /// A request from the transport (`reliable`: it came over TCP/TLS,
    /// where responses go back without retransmission).
    pub fn handle_request(
        &mut self,
        request: Request,
        reliable: bool,
        now: Instant,
    ) -> Result<Incoming, TransactionError> {
        if matches!(request.method, Method::Invite | Method::Ack) {
            return Ok(Incoming::Stateless(request));
        }
        let key = ServerKey::of_request(&request)?;
        if let Some(&id) = self.servers.get(&key) {
            if let Some(Entry {
                tx: Tx::Server(tx), ..
            }) = self.entries.get_mut(&id)
            {
                tx.handle_request();
            }
            self.sync(id);
            return Ok(Incoming::Retransmission(id));
        }
        if self.servers.len() >= self.max_servers {
            return Ok(Incoming::Overloaded(request));
        }
        let tx = ServerTransaction::new(&request, reliable, self.timers, now)?;
        let id = self.next();
        self.servers.insert(key, id);
        self.entries.insert(
            id,
            Entry {
                tx: Tx::Server(tx),
                scheduled: None,
            },
        );
        self.sync(id);
        Ok(Incoming::New(id, request))
    }

    /// A response from the transport; `None` when it matches no client
    /// transaction (a stray, to be dropped).
    pub fn handle_response(&mut self, response: Response, now: Instant) -> Option<TxId> {
        let key = ClientKey::of_response(&response).ok()?;
        let id = *self.clients.get(&key)?;
        if let Some(Entry {
            tx: Tx::Client(tx), ..
        }) = self.entries.get_mut(&id)
        {
            tx.on_response(response, now);
        }
        self.sync(id);
        Some(id)
    }

    /// The TU's response for a server transaction.
    pub fn respond(
        &mut self,
        id: TxId,
        response: Response,
        now: Instant,
    ) -> Result<(), TransactionError> {
        let Some(Entry {
            tx: Tx::Server(tx), ..
        }) = self.entries.get_mut(&id)
        else {
            return Err(TransactionError::Unknown);
        };
        let r = tx.respond(response, now);
        self.sync(id);
        r
    }

    /// Answers server transaction `id` and forgets it at once, as a
    /// stateless server would (RFC 3261 section 8.2.7): for answers to
    /// requests that did not authenticate, so that a flood of them keeps
    /// nothing for Timer J. A retransmission is then a new request and
    /// gets the same answer again. Outputs the response and
    /// [`Output::Terminated`].
    pub fn respond_stateless(
        &mut self,
        id: TxId,
        response: &Response,
    ) -> Result<(), TransactionError> {
        let Some(Entry {
            tx: Tx::Server(tx),
            scheduled,
        }) = self.entries.remove(&id)
        else {
            return Err(TransactionError::Unknown);
        };
        if let Some(t) = scheduled {
            self.wakeups.remove(&(t, id));
        }
        self.servers.remove(tx.key());
        self.release();
        self.out
            .push_back((id, Output::Transmit(response.to_bytes())));
        self.out.push_back((id, Output::Terminated));
        Ok(())
    }

    /// The transport failed sending for transaction `id`.
    pub fn handle_transport_error(&mut self, id: TxId) {
        match self.entries.get_mut(&id) {
            Some(Entry {
                tx: Tx::Client(tx), ..
            }) => tx.handle_transport_error(),
            Some(Entry {
                tx: Tx::Server(tx), ..
            }) => tx.handle_transport_error(),
            None => return,
        }
        self.sync(id);
    }

    /// The earliest deadline of any transaction.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wakeups.first().map(|&(t, _)| t)
    }

    /// Runs every transaction whose deadline has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, id)) = self.wakeups.first() {
            if t > now {
                break;
            }
            self.wakeups.pop_first();
            match self.entries.get_mut(&id) {
                Some(e) => {
                    e.scheduled = None;
                    match &mut e.tx {
                        Tx::Client(tx) => tx.handle_timeout(now),
                        Tx::Server(tx) => tx.handle_timeout(now),
                    }
                }
                None => continue,
            }
            self.sync(id);
        }
    }

    /// The next output, tagged with its transaction. A transaction's last
    /// output is [`Output::Terminated`]; its id is unknown afterwards.
    pub fn poll_output(&mut self) -> Option<(TxId, Output)> {
        self.out.pop_front()
    }

    fn next(&mut self) -> TxId {
        self.next_id += 1;
        TxId(self.next_id)
    }

    /// Moves a transaction's outputs out, reschedules it, and forgets it
    /// once terminated.
    fn sync(&mut self, id: TxId) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let (deadline, terminated) = match &mut e.tx {
            Tx::Client(tx) => {
                while let Some(o) = tx.poll_output() {
                    self.out.push_back((id, o));
                }
                (tx.poll_timeout(), tx.is_terminated())
            }
            Tx::Server(tx) => {
                while let Some(o) = tx.poll_output() {
                    self.out.push_back((id, o));
                }
                (tx.poll_timeout(), tx.is_terminated())
            }
        };
        if e.scheduled != deadline {
            if let Some(old) = e.scheduled {
                self.wakeups.remove(&(old, id));
            }
            if let Some(new) = deadline {
                self.wakeups.insert((new, id));
            }
            e.scheduled = deadline;
        }
        if terminated {
            if let Some(e) = self.entries.remove(&id) {
                if let Some(t) = e.scheduled {
                    self.wakeups.remove(&(t, id));
                }
                match e.tx {
                    Tx::Client(tx) => self.clients.remove(tx.key()),
                    Tx::Server(tx) => self.servers.remove(tx.key()),
                };
                self.release();
            }
        }
    }

    /// Gives back the room a burst of transactions needed (a transaction
    /// takes hundreds of bytes in `entries`, which would otherwise stay
    /// allocated at its peak).
    fn release(&mut self) {
        release_sparse(&mut self.entries);
        release_sparse(&mut self.clients);
        release_sparse(&mut self.servers);
    }
}
