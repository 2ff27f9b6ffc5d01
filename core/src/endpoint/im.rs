//! Pager-mode IM both ways (RFC 3428 MESSAGE <-> XMPP message), chat
//! states, forking to a user's contacts, and the errors of each side.

use super::arrived::Arrived;
use super::subscribe::contact_of_via;
use super::*;
use crate::xml::Stanza;

impl Endpoint {
    /// A MESSAGE from a SIP user toward XMPP.
    pub(super) fn sip_message(&mut self, id: TxId, req: Request, src: Source, t: &mut Turn<'_>) {
        if let Some(aor) = self.forwarded_for(&req, src) {
            return self.forwarded_message(id, req, aor, src, t);
        }
        let peer = src.addr;
        let Some(sender) = self.message_sender(id, &req, src, t) else {
            return;
        };
        let Some((stanza, to, body)) = self.message_stanza(id, &req, &sender, peer, t) else {
            return;
        };
        let stanza_id = stanza.attr("id").unwrap_or_default().to_owned();
        self.detail(
            None,
            format!("SIP MESSAGE {sender} -> {to} as stanza {stanza_id}"),
        );
        let to = to.bare().as_str().to_owned();
        let body = self.settings.log_message_bodies.then_some(body);
        self.event(Event::Relayed {
            sip_to_xmpp: true,
            from: sender.clone(),
            to: to.clone(),
            body,
        });
        self.awaiting.insert(
            stanza_id,
            Awaiting {
                tx: id,
                request: req,
                contact: (sender, to),
                arrived: t.now,
            },
        );
        self.to_xmpp.push_back((stanza, true));
    }

    /// The local user a MESSAGE (or SUBSCRIBE) is from, once its From is ours, it
    /// authenticated as that user, and the user may use XMPP; `None` when
    /// the request was answered.
    pub(super) fn message_sender(
        &mut self,
        id: TxId,
        req: &Request,
        src: Source,
        t: &mut Turn<'_>,
    ) -> Option<String> {
        let peer = src.addr;
        let from = match req.headers.from() {
            Ok(f) => f,
            Err(e) => {
                self.respond(id, req, 400, Some(&format!("Bad From: {e}")), t);
                return None;
            }
        };
        let Some(from_aor) = aor_of(from.uri()).filter(|a| self.is_local(domain_of(a))) else {
            let uri = from.uri();
            let method = &req.method;
            // Another instance forwarding, not listed in sip.trusted?
            let hint = if aor_of(&req.uri).is_some_and(|a| self.is_local(domain_of(&a))) {
                " (if it is another instance of this deployment forwarding, list it in sip.trusted)"
            } else {
                ""
            };
            let detail =
                format!("SIP {method} from {peer}: From {uri} is not a local user; 403{hint}");
            self.refused_limited(peer, t.now, detail);
            self.respond(id, req, 403, Some("Not A Local User"), t);
            return None;
        };
        let sender = self.authenticate(id, req, &from_aor, src, t)?;
        if !self.access.xmpp_allowed(&sender) {
            self.refused(peer, format!("{sender} has no XMPP access; 403"));
            self.respond(id, req, 403, Some("No XMPP Access"), t);
            return None;
        }
        Some(sender)
    }

    /// The stanza a MESSAGE from `sender` becomes, its recipient and its
    /// body, once it translates, fits `max_stanza_size`, speaks as the
    /// sender and goes to XMPP; `None` when the request was answered.
    fn message_stanza(
        &mut self,
        id: TxId,
        req: &Request,
        sender: &str,
        peer: SocketAddr,
        t: &mut Turn<'_>,
    ) -> Option<(Element, Jid, String)> {
        let im = match pager::sip_im_of(req) {
            Ok(im) => im,
            Err((status, reason)) => {
                self.refused(
                    peer,
                    format!("SIP MESSAGE from {sender}: {status} {reason}"),
                );
                self.respond(id, req, status, Some(reason), t);
                return None;
            }
        };
        let stanza_id = format!("sip-{}", self.rng.token());
        let stanza = match translate::sip_message_to_xmpp(&im, &stanza_id) {
            Ok(s) => s,
            Err(e) => {
                let status = e.sip_status();
                self.refused(peer, format!("SIP MESSAGE from {sender}: {e:?}; {status}"));
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(status, &tag);
                if status == 415 {
                    r.headers
                        .push("Accept", translate::im::ACCEPTED_CONTENT_TYPES);
                }
                self.respond_with(id, r, t);
                return None;
            }
        };
        let Some(to) = stanza.attr("to").and_then(|j| Jid::parse(j).ok()) else {
            self.respond(id, req, 400, None, t);
            return None;
        };
        // Escaping can make a stanza several times its body (`<` is
        // `&lt;`); one over the limit would make the peer close the stream
        // and lose everything after it. Only a MESSAGE that could be over
        // it is serialized to measure (see `stanza_may_exceed`): the
        // stanza is serialized again when it is sent.
        let most = self.max_stanza_size;
        let size = if stanza_may_exceed(&im, most) {
            stanza.to_bytes().len()
        } else {
            0
        };
        if size > most {
            self.refused(
                peer,
                format!("SIP MESSAGE from {sender}: {size} bytes as a stanza, over max_stanza_size {most}; 413"),
            );
            self.respond(id, req, 413, Some("Too Large For XMPP"), t);
            return None;
        }
        // The stanza speaks as the user who authenticated, nobody else.
        let speaks_as = stanza.attr("from").and_then(|j| Jid::parse(j).ok());
        if speaks_as.as_ref().map(|j| j.bare().as_str().to_owned()) != Some(sender.to_owned()) {
            self.event(Event::SipRefused {
                peer,
                detail: format!("SIP MESSAGE from {peer}: authenticated as {sender} but would speak as {speaks_as:?}; 403"),
                warning: true,
            });
            self.respond(id, req, 403, Some("From Is Not The Authenticated User"), t);
            return None;
        }
        if self.is_local(to.domain()) {
            self.respond(id, req, 404, Some("Not An XMPP Address"), t);
            return None;
        }
        Some((stanza, to, im.body))
    }

    /// The gateway's word on a stanza made from a SIP MESSAGE: on an
    /// authenticated stream (202), or bounced (the mapped error).
    pub fn delivered(
        &mut self,
        stanza_id: &str,
        result: Result<(), StanzaCondition>,
        t: &mut Turn<'_>,
    ) {
        let Some(a) = self.awaiting.remove(stanza_id) else {
            return;
        };
        match result {
            Ok(()) => {
                self.event(Event::HandedOff {
                    sip_to_xmpp: true,
                    after: t.now.saturating_duration_since(a.arrived),
                });
                // Remembered before the reply can come back: it is read
                // after this, on the same thread.
                let (local, remote) = &a.contact;
                let changes = self.access.remember(local, remote, t.unix);
                self.persist(changes);
                self.invited(local, remote, t);
                self.respond(a.tx, &a.request, 202, None, t)
            }
            Err(condition) => {
                // RFC 4320 section 4.1: no 408 to a non-INVITE (the
                // transaction would swallow it and the user agent wait out
                // Timer F); a gateway whose far side timed out says 504.
                let status = match translate::xmpp_to_sip(condition, false, false) {
                    408 => 504,
                    s => s,
                };
                self.event(Event::MessageRefused {
                    from: a.contact.0.clone(),
                    to: a.contact.1.clone(),
                    detail: format!("stanza {stanza_id} bounced with {condition}; SIP {status}"),
                });
                self.respond(a.tx, &a.request, status, Some(condition.as_str()), t);
            }
        }
    }

    /// The stream for a SIP user's message is congested (the partner
    /// reads slower than we send): 503 with Retry-After (RFC 3261 section
    /// 21.5.4), so the user agent sends again later and nothing is lost
    /// in queues.
    pub fn busy(&mut self, stanza_id: &str, t: &mut Turn<'_>) {
        let Some(a) = self.awaiting.remove(stanza_id) else {
            return;
        };
        self.event(Event::MessageRefused {
            from: a.contact.0.clone(),
            to: a.contact.1.clone(),
            detail: format!(
                "stanza {stanza_id} not sent: the partner reads slower than we send; SIP 503"
            ),
        });
        let tag = crate::sip::new_tag(&mut self.rng);
        let mut r = a.request.response(503, &tag);
        r.headers.push("Retry-After", OVERLOAD_RETRY_AFTER);
        self.respond_with(a.tx, r, t);
    }

    /// A stanza for a local user (not the domain itself), that came over
    /// inbound stream `source` (if one: backpressure may pause it).
    pub fn from_xmpp(&mut self, stanza: Element, source: Option<ConnId>, t: &mut Turn<'_>) {
        let Some(addr) = stanza::addressing(&stanza) else {
            return;
        };
        let (from, to) = (addr.from, addr.to);
        if self.presence_from_xmpp(&stanza, &from, &to, t) {
            return;
        }
        self.message_from_xmpp(Arrived::Tree(stanza), &from, &to, source, t);
    }

    /// A message for a local user as it came over inbound stream `source`,
    /// its checked text: translated from the text, with no element tree.
    pub fn message_text_from_xmpp(
        &mut self,
        stanza: Stanza,
        source: Option<ConnId>,
        t: &mut Turn<'_>,
    ) {
        let stanza = Arrived::Text(stanza);
        let Some(addr) = stanza.addressing() else {
            return;
        };
        self.message_from_xmpp(stanza, &addr.from, &addr.to, source, t);
    }

    fn message_from_xmpp(
        &mut self,
        stanza: Arrived,
        from: &Jid,
        to: &Jid,
        source: Option<ConnId>,
        t: &mut Turn<'_>,
    ) {
        if !self.admit_from_xmpp(&stanza, from, to, t) {
            return;
        }
        let Some((im, chat_state)) = self.sip_im_for(&stanza, from, to) else {
            return;
        };
        let Some(outgoing) = self.outgoing_for(stanza, from, to, im, chat_state, t) else {
            return;
        };
        self.enqueue(from, to, outgoing, source, t);
    }

    /// Whether a stanza for local user `to` may go to SIP: a message, to a
    /// user with XMPP access, from someone who may reach them. Errors
    /// about messages we sent (after their 202) are only reported.
    fn admit_from_xmpp(&mut self, stanza: &Arrived, from: &Jid, to: &Jid, t: &Turn<'_>) -> bool {
        if stanza.is_error() {
            let tree = stanza.tree();
            let cond = (tree.as_deref())
                .and_then(stanza::error_condition)
                .map_or("undefined-condition", |c| c.as_str());
            let id = stanza.id().unwrap_or("");
            self.event(Event::MessageRefused {
                from: from.to_string(),
                to: to.to_string(),
                detail: format!("XMPP error {cond} for stanza {id} (after its SIP answer)"),
            });
            return false;
        }
        if stanza.kind() != Some(Kind::Message) {
            let why = "only messages reach SIP users";
            self.refuse_arrived(stanza, StanzaCondition::ServiceUnavailable, why);
            return false;
        }
        let local_user = to.bare().as_str().to_owned();
        let why = if !self.access.xmpp_allowed(&local_user) {
            "no XMPP access; service-unavailable"
        } else if !self
            .access
            .may_reach(from.bare().as_str(), &local_user, t.unix)
        {
            "public-unverified partner, not contacted first; service-unavailable"
        } else {
            return true;
        };
        self.message_refused(from, to, why);
        self.refuse_arrived(stanza, StanzaCondition::ServiceUnavailable, "");
        false
    }

    /// What an admitted message says in SIP terms: a pager-mode IM, or an
    /// isComposing update (with the chat state) when the state changed.
    fn sip_im_for(
        &mut self,
        stanza: &Arrived,
        from: &Jid,
        to: &Jid,
    ) -> Option<(translate::SipIm, Option<ChatState>)> {
        let remote = from.bare().as_str().to_owned();
        let local_user = to.bare().as_str().to_owned();
        match stanza.to_sip() {
            Ok(im) => {
                let body = self.settings.log_message_bodies.then(|| im.body.clone());
                self.event(Event::Relayed {
                    sip_to_xmpp: false,
                    from: from.to_string(),
                    to: to.to_string(),
                    body,
                });
                // A message ends composing: idle is what no entry means.
                self.composing.remove(&(remote, local_user));
                Some((im, None))
            }
            Err(ImError::ChatStateOnly(state)) => {
                let c = self.composing_update(&remote, &local_user, state)?;
                Some((pager::is_composing_im(from, to, c), Some(state)))
            }
            Err(ImError::NoBody) | Err(ImError::ErrorMessage) => {
                let text =
                    format!("{from} -> {to}: message without body or chat state not gatewayed");
                self.detail(None, text);
                None
            }
            Err(e) => {
                let cond = e.condition().unwrap_or(StanzaCondition::BadRequest);
                self.refuse_arrived(stanza, cond, "");
                None
            }
        }
    }

    /// The MESSAGE for local user `to` and the contacts it may go to, or
    /// `None` when there is none (answered as for a missing account) or
    /// it cannot be sent.
    fn outgoing_for(
        &mut self,
        stanza: Arrived,
        from: &Jid,
        to: &Jid,
        im: translate::SipIm,
        chat_state: Option<ChatState>,
        t: &mut Turn<'_>,
    ) -> Option<Outgoing> {
        let local_user = to.bare().as_str().to_owned();
        let targets = self.targets_for(&local_user, t);
        let Some(first) = targets.first() else {
            let why = if self.registrar_has_account(&local_user) {
                "no SIP contact"
            } else {
                "no such account"
            };
            self.message_refused(from, to, &format!("{why}; {CONCEALED}"));
            if chat_state.is_none() {
                self.refuse_arrived(&stanza, CONCEALED, "");
            }
            return None;
        };
        if chat_state.is_some() && self.no_composing.contains(&local_user) {
            return None;
        }
        let request = match self.pager_request(&im, first) {
            Ok(r) => r,
            Err(e) => {
                self.message_refused(from, to, &e);
                self.refuse_arrived(&stanza, StanzaCondition::JidMalformed, "");
                return None;
            }
        };
        let size = request.to_bytes().len();
        let targets = match self.targets_for_size(targets, size) {
            Ok(targets) => targets,
            Err(why) => {
                self.message_refused(from, to, why);
                self.refuse_arrived(&stanza, StanzaCondition::PolicyViolation, why);
                return None;
            }
        };
        Some(Outgoing {
            origin: Origin::Stanza(stanza),
            request,
            targets,
            chat_state: chat_state.is_some(),
            arrived: t.now,
        })
    }

    /// The MESSAGE for `im` toward `first` (each branch gets its own
    /// Request-URI when sent): the IM's Call-ID (its thread), else a new
    /// one, and a new From tag.
    pub(super) fn pager_request(
        &mut self,
        im: &translate::SipIm,
        first: &Target,
    ) -> Result<Request, String> {
        let call_id = im
            .call_id
            .clone()
            .unwrap_or_else(|| sip::new_call_id(&mut self.rng));
        let tag = sip::new_tag(&mut self.rng);
        pager::message_request(im, first, &call_id, &tag)
    }

    /// Queues a MESSAGE for local user `to`, within the queues' bounds
    /// (else it bounces with `resource-constraint`), and sends what the
    /// user's window allows.
    fn enqueue(
        &mut self,
        from: &Jid,
        to: &Jid,
        outgoing: Outgoing,
        source: Option<ConnId>,
        t: &mut Turn<'_>,
    ) {
        let destination = to.bare().as_str().to_owned();
        if let Some((outgoing, key)) = self.queue_for(destination, outgoing, source, t) {
            self.message_refused(
                from,
                to,
                &format!("queue full ({key}); resource-constraint"),
            );
            self.refuse_origin(
                outgoing.origin,
                StanzaCondition::ResourceConstraint,
                "too many messages waiting for this SIP user",
                t,
            );
        }
    }

    /// Queues a MESSAGE for `destination` within the queues' bounds and
    /// sends what the user's window allows; beyond the bounds, gives it
    /// back with the bound it hit.
    pub(super) fn queue_for(
        &mut self,
        destination: String,
        outgoing: Outgoing,
        source: Option<ConnId>,
        t: &mut Turn<'_>,
    ) -> Option<(Outgoing, &'static str)> {
        let waiting = self.queues.get(&destination).map_or(0, |l| l.waiting.len());
        if let Err(key) = self.backpressure.admit(waiting) {
            return Some((outgoing, key));
        }
        let lane = self.queues.entry(destination.clone()).or_default();
        lane.waiting.push_back(outgoing);
        let waiting = lane.waiting.len();
        self.backpressure
            .queued(&destination, waiting, source, t.now, &mut self.out);
        self.send_next(&destination, t);
        None
    }

    /// The targets a MESSAGE of `size` bytes may go to: RFC 3428 (section
    /// 9) keeps a MESSAGE over 1300 bytes off UDP, where it would be
    /// fragmented; TCP and TLS (a connection or a registered flow) carry
    /// anything up to `sip.max_message_size`.
    pub(super) fn targets_for_size(
        &self,
        targets: Vec<Target>,
        size: usize,
    ) -> Result<Vec<Target>, &'static str> {
        if size > self.limits.max_message_size {
            return Err("too large for SIP (sip.max_message_size)");
        }
        if size <= translate::im::PAGER_MODE_LIMIT {
            return Ok(targets);
        }
        let reliable: Vec<Target> = targets
            .into_iter()
            .filter(|t| t.reliable(&self.conns))
            .collect();
        if reliable.is_empty() {
            return Err("too large for a SIP MESSAGE over UDP (RFC 3428: 1300 bytes)");
        }
        Ok(reliable)
    }

    pub(super) fn composing_update(
        &mut self,
        remote: &str,
        local: &str,
        state: ChatState,
    ) -> Option<ComposingState> {
        let key = (remote.to_owned(), local.to_owned());
        let last = self
            .composing
            .get(&key)
            .copied()
            .unwrap_or(ComposingState::Idle);
        let next = translate::next_is_composing(last, state)?;
        if next == ComposingState::Idle {
            self.composing.remove(&key);
        } else if self.composing.len() < MAX_COMPOSING || self.composing.contains_key(&key) {
            self.composing.insert(key, next);
        }
        // Beyond the bound a pair is not tracked: its states are sent
        // unfiltered, which costs a MESSAGE, not memory.
        Some(next)
    }

    /// Whether `aor` is an account of the built-in registrar (an
    /// unregistered account is unavailable, an unknown one not found).
    pub(super) fn registrar_has_account(&self, aor: &str) -> bool {
        self.mode == SipMode::Registrar && self.registrar.has_account(aor)
    }

    /// Where a MESSAGE for `aor` goes: the next hop, or every live
    /// binding (by `q`, then contact) that can be reached, then each other
    /// instance of the deployment that holds some. Empty when none.
    pub(super) fn targets_for(&mut self, aor: &str, t: &mut Turn<'_>) -> Vec<Target> {
        self.targets(aor, true, t)
    }

    /// [`Endpoint::targets_for`], without the other instances' bindings
    /// unless `forward`.
    pub(super) fn targets(&mut self, aor: &str, forward: bool, t: &mut Turn<'_>) -> Vec<Target> {
        match self.mode {
            SipMode::Proxy => Uri::parse(&format!("sip:{aor}"))
                .ok()
                .and_then(|uri| self.next_hop_target(uri))
                .into_iter()
                .collect(),
            SipMode::Registrar => {
                let bindings = self.registrar.bindings().lookup(aor, t.unix);
                let mut targets = Vec::with_capacity(bindings.len());
                let mut instances: Vec<&str> = Vec::new();
                for b in &bindings {
                    match &b.path {
                        Some(path) if self.registrar.bindings().is_foreign(b) => {
                            if forward && !instances.contains(&path.as_str()) {
                                instances.push(path);
                            }
                        }
                        _ => targets.extend(self.binding_target(aor, &b.contact)),
                    }
                }
                for path in instances {
                    targets.extend(self.instance_target(aor, path));
                }
                targets
            }
        }
    }

    /// How to reach one contact of `aor`: its flow, else its own address
    /// (an IP: no DNS for SIP).
    pub(super) fn binding_target(&mut self, aor: &str, contact: &str) -> Option<Target> {
        let uri = Uri::parse(contact).ok()?;
        let flow = self
            .flows
            .get(&(aor.to_owned(), contact.to_owned()))
            .copied()
            .filter(|c| self.conns.contains_key(c));
        let transport = match uri.transport() {
            Some(tr) if tr.eq_ignore_ascii_case("tcp") => SipTransport::Tcp,
            Some(tr) if tr.eq_ignore_ascii_case("tls") => SipTransport::Tls,
            _ if uri.scheme() == Scheme::Sips => SipTransport::Tls,
            _ => SipTransport::Udp,
        };
        let default_port = if transport == SipTransport::Tls {
            5061
        } else {
            5060
        };
        let ip = match uri.host()? {
            sip::Host::V4(ip) => IpAddr::V4(*ip),
            sip::Host::V6(ip) => IpAddr::V6(*ip),
            sip::Host::Domain(_) => {
                if flow.is_none() {
                    self.detail(None, format!("{aor}: contact {contact} names a host; only IP contacts (or the registering connection) are reachable"));
                    return None;
                }
                IpAddr::from([0, 0, 0, 0])
            }
        };
        let addr = SocketAddr::new(ip, uri.port().unwrap_or(default_port));
        Some(Target {
            uri,
            to: format!("sip:{aor}"),
            addr,
            transport,
            tls_name: None,
            flow,
        })
    }

    /// Sends the MESSAGEs waiting for `destination` that its window
    /// allows (`sip.max_in_flight_per_user` when every target is
    /// reliable, else one), in order, each forked to each of its
    /// targets; one that cannot start at all is refused and the next is
    /// tried.
    pub(super) fn send_next(&mut self, destination: &str, t: &mut Turn<'_>) {
        loop {
            let Some(lane) = self.queues.get_mut(destination) else {
                return;
            };
            let Some(head) = lane.waiting.front() else {
                if lane.in_flight == 0 {
                    self.queues.remove(destination);
                }
                return;
            };
            let conns = &self.conns;
            let reliable = head.targets.iter().all(|t| t.reliable(conns));
            let window = if reliable && lane.unreliable == 0 {
                self.backpressure.window()
            } else {
                1
            };
            if lane.in_flight >= window {
                return;
            }
            let Some(outgoing) = lane.waiting.pop_front() else {
                return;
            };
            let waiting = lane.waiting.len();
            self.backpressure
                .dequeued(destination, waiting, &mut self.out);
            let number = self.next_message;
            self.next_message += 1;
            let Outgoing {
                origin,
                request,
                targets,
                chat_state,
                arrived,
            } = outgoing;
            let mut started = 0;
            // Every branch but the last gets a copy; the last takes the
            // request itself (the usual single-device case copies nothing).
            if let Some((last, others)) = targets.split_last() {
                for target in others {
                    started += usize::from(self.start_branch(request.clone(), target, number, t));
                }
                started += usize::from(self.start_branch(request, last, number, t));
            }
            if started == 0 {
                if !chat_state || origin.is_instance() {
                    self.refuse_origin(
                        origin,
                        StanzaCondition::RecipientUnavailable,
                        "the SIP user cannot be reached",
                        t,
                    );
                }
                continue;
            }
            if started > 1 {
                self.detail(
                    None,
                    format!("MESSAGE to {destination} forked to {started} contacts"),
                );
            }
            if let Some(lane) = self.queues.get_mut(destination) {
                lane.in_flight += 1;
                lane.unreliable += usize::from(!reliable);
            }
            self.in_flight.insert(
                number,
                InFlight {
                    destination: destination.to_owned(),
                    reliable,
                    origin,
                    chat_state,
                    arrived,
                    running: started,
                    settled: false,
                    best: None,
                },
            );
            self.drain_table(t);
        }
    }

    /// A MESSAGE to `destination` is settled: its place in the window is
    /// free for the next.
    fn settled(&mut self, destination: &str, reliable: bool, t: &mut Turn<'_>) {
        if let Some(lane) = self.queues.get_mut(destination) {
            lane.in_flight = lane.in_flight.saturating_sub(1);
            if !reliable {
                lane.unreliable = lane.unreliable.saturating_sub(1);
            }
        }
        self.send_next(destination, t);
    }

    /// Starts one branch of MESSAGE `number`: `request` with `target`'s
    /// Request-URI and our Via, on `target`'s transport. `false` when it
    /// could not start.
    pub(super) fn start_branch(
        &mut self,
        request: Request,
        target: &Target,
        number: u64,
        t: &mut Turn<'_>,
    ) -> bool {
        match self.start_request(request, target, false, t) {
            Some(id) => {
                self.branches.insert(id, number);
                true
            }
            None => false,
        }
    }

    /// Sends `request` to `target` in a new client transaction: the
    /// target's Request-URI, our Via for its transport and, with
    /// `contact` (requests within a dialog), our Contact. `None` when it
    /// could not start.
    pub(super) fn start_request(
        &mut self,
        mut request: Request,
        target: &Target,
        contact: bool,
        t: &mut Turn<'_>,
    ) -> Option<TxId> {
        let (dest, via) = self.dest_for(target, t)?;
        request.uri = target.uri.clone();
        let branch = sip::new_branch(&mut self.rng);
        request
            .headers
            .push_front("Via", format!("SIP/2.0/{via};branch={branch};rport"));
        if contact {
            request.headers.push("Contact", contact_of_via(&via));
        }
        match self.table.start_client(&request, dest.reliable(), t.now) {
            Ok(id) => {
                self.tx_dest.insert(id, dest);
                Some(id)
            }
            Err(e) => {
                let method = &request.method;
                self.detail(None, format!("SIP {method} not sent: {e}"));
                None
            }
        }
    }

    /// A client transaction ended: the response (or the failure) of one
    /// branch of a MESSAGE toward SIP. The first 2xx settles it; when
    /// every branch failed, the best failure goes back to the XMPP sender.
    /// Once settled, the next MESSAGE to the user goes out.
    pub(super) fn message_answered(
        &mut self,
        id: TxId,
        result: Result<Response, u16>,
        t: &mut Turn<'_>,
    ) {
        let Some(number) = self.branches.remove(&id) else {
            return;
        };
        let Some(f) = self.in_flight.get_mut(&number) else {
            return;
        };
        f.running -= 1;
        if f.settled {
            // A late branch of a message already settled: ignored.
            if f.running == 0 {
                self.in_flight.remove(&number);
            }
            return;
        }
        let destination = f.destination.clone();
        let reliable = f.reliable;
        let failure = match result {
            Ok(r) if (200..300).contains(&r.status) => {
                f.settled = true;
                let (chat_state, arrived) = (f.chat_state, f.arrived);
                let forwarded = match &f.origin {
                    Origin::Instance { tx, request } => Some((*tx, request.clone())),
                    Origin::Stanza(_) => None,
                };
                if f.running == 0 {
                    self.in_flight.remove(&number);
                }
                self.event(Event::MessageAnswered {
                    destination: destination.clone(),
                    status: r.status,
                    condition: None,
                    detail: String::new(),
                });
                if let Some((tx, request)) = forwarded {
                    self.respond(tx, &request, r.status, None, t);
                } else if !chat_state {
                    self.event(Event::HandedOff {
                        sip_to_xmpp: false,
                        after: t.now.saturating_duration_since(arrived),
                    });
                }
                return self.settled(&destination, reliable, t);
            }
            Ok(r) => BranchFailure {
                status: r.status,
                retry_after: r.headers.contains("Retry-After"),
                reason: r.reason,
                local: false,
            },
            Err(code) => BranchFailure {
                status: code,
                retry_after: false,
                reason: sip::reason_phrase(code).to_owned(),
                local: true,
            },
        };
        let refused_composing = f.chat_state && failure.status == 415;
        if f.best
            .as_ref()
            .is_none_or(|b| failure_rank(&failure) < failure_rank(b))
        {
            f.best = Some(failure);
        }
        let running = f.running;
        if refused_composing {
            self.no_composing.insert(destination.clone());
            self.detail(
                None,
                format!("{destination} refused isComposing (415): no more sent to it"),
            );
        }
        if running > 0 {
            return;
        }
        let Some(f) = self.in_flight.remove(&number) else {
            return;
        };
        if let (Origin::Instance { tx, request }, Some(best)) = (&f.origin, &f.best) {
            self.event(Event::MessageAnswered {
                destination: destination.clone(),
                status: best.status,
                condition: None,
                detail: format!("forwarded by another instance: {}", best.reason),
            });
            let status = if best.status == 408 { 504 } else { best.status };
            self.respond(*tx, request, status, Some(&best.reason), t);
        } else if let (Origin::Stanza(arrived), false, Some(best)) =
            (&f.origin, f.chat_state, f.best)
        {
            let Some(stanza) = arrived.tree() else {
                return self.settled(&destination, reliable, t);
            };
            let stanza = stanza.as_ref();
            let (condition, error_type, text) = if best.conceals_existence() {
                (CONCEALED, ErrorType::Cancel, None)
            } else {
                let (c, ty) = translate::sip_to_xmpp(best.status, best.retry_after);
                (c, ty, Some(best.reason.as_str()))
            };
            self.event(Event::MessageAnswered {
                destination: destination.clone(),
                status: best.status,
                condition: Some(condition),
                detail: best.reason.clone(),
            });
            if let Some(mut reply) = stanza::error_reply(stanza, condition, text) {
                if let Some(e) = reply.child_mut(crate::xml::ns::SERVER, "error") {
                    e.set_attr("type", error_type.as_str());
                }
                self.to_xmpp.push_back((reply, false));
            }
        }
        self.settled(&destination, reliable, t);
    }

    /// Tells a MESSAGE's origin that it failed with `condition`: an error
    /// stanza, or the mapped SIP status to the instance that forwarded it.
    pub(super) fn refuse_origin(
        &mut self,
        origin: Origin,
        condition: StanzaCondition,
        text: &str,
        t: &mut Turn<'_>,
    ) {
        match origin {
            Origin::Stanza(stanza) => self.refuse_arrived(&stanza, condition, text),
            Origin::Instance { tx, request } => {
                // RFC 4320 section 4.1: no 408 to a non-INVITE.
                let status = match translate::xmpp_to_sip(condition, false, false) {
                    408 => 504,
                    s => s,
                };
                self.respond(tx, &request, status, Some(condition.as_str()), t);
            }
        }
    }

    /// Answers what arrived with an error, from its tree.
    fn refuse_arrived(&mut self, stanza: &Arrived, condition: StanzaCondition, text: &str) {
        match stanza.tree() {
            Some(tree) => self.refuse_stanza(&tree, condition, text),
            None => self.detail(
                None,
                format!("a checked stanza did not read again, not answered ({condition})"),
            ),
        }
    }

    /// Answers an XMPP stanza with an error.
    pub(super) fn refuse_stanza(
        &mut self,
        stanza: &Element,
        condition: StanzaCondition,
        text: &str,
    ) {
        let text = (!text.is_empty()).then_some(text);
        if let Some(reply) = stanza::error_reply(stanza, condition, text) {
            self.to_xmpp.push_back((reply, false));
        }
    }
}
