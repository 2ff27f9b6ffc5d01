//! SIP requests: dispatch, authentication (digest or trusted peer) and
//! the registrar.

use super::*;

impl Endpoint {
    pub(super) fn handle_message(
        &mut self,
        m: Message,
        dest: Dest,
        peer: SocketAddr,
        t: &mut Turn<'_>,
    ) {
        match m {
            Message::Response(r) => {
                if self.table.handle_response(r, t.now).is_none() {
                    self.detail(None, format!("SIP from {peer}: stray response dropped"));
                }
            }
            Message::Request(r) => match self.table.handle_request(r, dest.reliable(), t.now) {
                Ok(Incoming::New(id, req)) => {
                    self.tx_dest.insert(id, dest);
                    let src = Source {
                        addr: peer,
                        trusted: self.is_trusted(peer, dest),
                    };
                    self.handle_request(id, req, src, t);
                }
                Ok(Incoming::Retransmission(_)) => {}
                Ok(Incoming::Overloaded(req)) => {
                    let event = Event::LimitReached {
                        conn: None,
                        key: "sip.max_transactions",
                        detail: format!(
                            "SIP {} from {peer}: {} transactions in progress; 503",
                            req.method,
                            self.table.servers()
                        ),
                    };
                    self.event_limited(peer, event, t.now);
                    let tag = sip::new_tag(&mut self.rng);
                    let mut r = req.response(503, &tag);
                    r.headers.push("Retry-After", OVERLOAD_RETRY_AFTER);
                    self.send_bytes(dest, &r.to_bytes());
                }
                Ok(Incoming::Stateless(req)) => {
                    if req.method != Method::Ack {
                        self.refused(
                            peer,
                            format!("SIP from {peer}: {} not supported; 501", req.method),
                        );
                        let tag = sip::new_tag(&mut self.rng);
                        let r = req.response(501, &tag);
                        self.send_bytes(dest, &r.to_bytes());
                    }
                }
                Err(e) => {
                    self.refused_limited(peer, t.now, format!("SIP from {peer}: {e}; dropped"))
                }
            },
        }
    }

    /// Whether a request from `peer` over `dest` comes from a
    /// `sip.trusted` peer: its address is listed, or its TLS certificate
    /// proved a listed name.
    pub(super) fn is_trusted(&self, peer: SocketAddr, dest: Dest) -> bool {
        let proven = match dest {
            Dest::Conn(conn) => self.conns.get(&conn).and_then(SipConn::proven),
            Dest::Udp { .. } => None,
        };
        let spoofable = matches!(dest, Dest::Udp { .. }) && !self.trust_udp;
        self.trusted.iter().any(|p| match p {
            TrustedPeer::Address(ip) => !spoofable && *ip == peer.ip(),
            TrustedPeer::Certificate(name) => proven == Some(name.as_str()),
        })
    }

    pub(super) fn respond(
        &mut self,
        id: TxId,
        req: &Request,
        status: u16,
        reason: Option<&str>,
        t: &mut Turn<'_>,
    ) {
        let tag = sip::new_tag(&mut self.rng);
        let mut r = req.response(status, &tag);
        if let Some(reason) = reason {
            r = r.with_reason(reason);
        }
        self.respond_with(id, r, t);
    }

    /// Answers server transaction `id`: statefully when its request
    /// authenticated (retransmissions are absorbed, the request is never
    /// acted on twice), statelessly otherwise, so that requests anyone
    /// can send (no credentials, wrong ones, OPTIONS) keep nothing.
    pub(super) fn respond_with(&mut self, id: TxId, r: Response, t: &mut Turn<'_>) {
        let sent = if self.authenticated.contains(&id) {
            self.table.respond(id, r, t.now)
        } else {
            self.table.respond_stateless(id, &r)
        };
        if let Err(e) = sent {
            self.detail(None, format!("SIP response not sent: {e}"));
        }
        self.drain_table(t);
    }

    pub(super) fn handle_request(&mut self, id: TxId, req: Request, src: Source, t: &mut Turn<'_>) {
        let peer = src.addr;
        if req.headers.max_forwards().ok().flatten() == Some(0) && req.method != Method::Register {
            return self.respond(id, &req, 483, None, t);
        }
        match req.method {
            Method::Register => self.register(id, req, src, t),
            Method::Message => self.sip_message(id, req, src, t),
            Method::Publish => self.publish(id, req, src, t),
            Method::Subscribe => self.subscribe(id, req, src, t),
            Method::Notify => self.sip_notify(id, req, src, t),
            Method::Options => {
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(200, &tag);
                r.headers.push("Allow", self.allowed_methods());
                r.headers
                    .push("Accept", translate::im::ACCEPTED_CONTENT_TYPES);
                self.respond_with(id, r, t);
            }
            _ => self.not_allowed(id, &req, peer, t),
        }
    }

    /// 405 with the methods we take.
    pub(super) fn not_allowed(
        &mut self,
        id: TxId,
        req: &Request,
        peer: SocketAddr,
        t: &mut Turn<'_>,
    ) {
        self.refused(
            peer,
            format!("SIP from {peer}: {} not supported; 405", req.method),
        );
        let tag = sip::new_tag(&mut self.rng);
        let mut r = req.response(405, &tag);
        r.headers.push("Allow", self.allowed_methods());
        self.respond_with(id, r, t);
    }

    /// Digest (or trusted source) for a request acting as `aor`; `None`
    /// when the request was answered.
    pub(super) fn authenticate(
        &mut self,
        id: TxId,
        req: &Request,
        aor: &str,
        src: Source,
        t: &mut Turn<'_>,
    ) -> Option<String> {
        let register = req.method == Method::Register;
        let peer = src.addr;
        if self.mode == SipMode::Proxy {
            return self.trusted_peer(id, req, src, t).then(|| aor.to_owned());
        }
        let header = if register {
            "Authorization"
        } else {
            "Proxy-Authorization"
        };
        let authorization: Vec<&str> = req.headers.get_all(header).collect();
        let uri = req.uri.to_string();
        let decision = self.registrar.authorize(
            &AuthRequest {
                trusted: src.trusted,
                method: req.method.as_str(),
                request_uri: &uri,
                aor,
                authorization: &authorization,
                source: peer.ip(),
            },
            t.unix,
        );
        match decision {
            Decision::Allow { user, domain, .. } => {
                self.authenticated.insert(id);
                Some(format!("{user}@{domain}"))
            }
            Decision::Challenge { realm, user, stale } => {
                let values = self
                    .registrar
                    .challenge(&realm, &user, stale, t.unix, &mut self.rng);
                let (status, name) = if register {
                    (401, "WWW-Authenticate")
                } else {
                    (407, "Proxy-Authenticate")
                };
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(status, &tag);
                for v in values {
                    r.headers.push(name, v);
                }
                self.respond_with(id, r, t);
                None
            }
            Decision::Backoff { retry_after } => {
                let event = Event::LimitReached {
                    conn: None,
                    key: "sip.max_auth_failures",
                    detail: format!(
                        "SIP {} from {peer} as {aor}: too many failed digests; 503 for {retry_after} s",
                        req.method
                    ),
                };
                self.event_limited(peer, event, t.now);
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req
                    .response(503, &tag)
                    .with_reason("Too Many Failed Attempts");
                r.headers.push("Retry-After", retry_after.to_string());
                self.respond_with(id, r, t);
                None
            }
            Decision::Reject { code, reason } => {
                self.refused_limited(
                    peer,
                    t.now,
                    format!("SIP {} from {peer} as {aor}: {code} {reason}", req.method),
                );
                self.respond(id, req, code, Some(reason), t);
                None
            }
        }
    }

    /// Proxy mode: whether the request comes from a trusted peer (its
    /// transaction is then answered statefully); otherwise it was
    /// answered 403.
    pub(super) fn trusted_peer(
        &mut self,
        id: TxId,
        req: &Request,
        src: Source,
        t: &mut Turn<'_>,
    ) -> bool {
        if src.trusted {
            self.authenticated.insert(id);
            return true;
        }
        let peer = src.addr;
        self.refused_limited(
            peer,
            t.now,
            format!(
                "SIP {} from {peer}: not a trusted peer in proxy mode; 403",
                req.method
            ),
        );
        self.respond(id, req, 403, Some("Not A Trusted Peer"), t);
        false
    }

    pub(super) fn register(&mut self, id: TxId, req: Request, src: Source, t: &mut Turn<'_>) {
        let peer = src.addr;
        if self.mode == SipMode::Proxy {
            return self.respond(id, &req, 405, Some("Registrar Not Enabled"), t);
        }
        let to = match req.headers.to() {
            Ok(to) => to,
            Err(e) => return self.respond(id, &req, 400, Some(&format!("Bad To: {e}")), t),
        };
        let Some(aor) = aor_of(to.uri()) else {
            return self.respond(id, &req, 404, Some("Invalid Address of Record"), t);
        };
        let Some(aor) = self.authenticate(id, &req, &aor, src, t) else {
            return;
        };
        let contacts = match req.headers.contacts() {
            Ok(c) => c,
            Err(e) => return self.respond(id, &req, 400, Some(&format!("Bad Contact: {e}")), t),
        };
        let (call_id, cseq, expires) = match (
            req.headers.call_id(),
            req.headers.cseq(),
            req.headers.expires(),
        ) {
            (Ok(c), Ok(s), Ok(e)) => (c.to_owned(), s.seq, e),
            _ => return self.respond(id, &req, 400, None, t),
        };
        let mut rr = RegisterRequest {
            call_id,
            cseq,
            expires_header: expires,
            ..RegisterRequest::default()
        };
        for c in &contacts {
            match c {
                Contact::Star => rr.star = true,
                Contact::Addr(a) => rr.contacts.push(ContactParam {
                    uri: a.uri().to_string(),
                    expires: a.expires(),
                    q: a.q().map(|q| f32::from(q) / 1000.0),
                    instance: a
                        .params()
                        .get("+sip.instance")
                        .flatten()
                        .map(|v| v.trim_matches('"').to_owned()),
                    reg_id: a
                        .params()
                        .get("reg-id")
                        .flatten()
                        .and_then(|v| v.parse().ok()),
                }),
            }
        }
        match self.registrar.register(&aor, &rr, t.unix) {
            Ok(outcome) => {
                if let Some(Dest::Conn(conn)) = self.tx_dest.get(&id).copied() {
                    for c in &rr.contacts {
                        self.flows.insert((aor.clone(), c.uri.clone()), conn);
                    }
                }
                self.refresh_flows(t);
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(200, &tag);
                for b in &outcome.bindings {
                    r.headers.push(
                        "Contact",
                        format!("<{}>;expires={}", b.contact, b.expires_in(t.unix)),
                    );
                }
                self.event(Event::Registered {
                    aor: aor.clone(),
                    bindings: outcome.bindings.len(),
                    peer,
                });
                self.persist(outcome.changes);
                self.respond_with(id, r, t);
            }
            Err(e) => {
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(e.code, &tag).with_reason(e.reason);
                if let Some(min) = e.min_expires {
                    r.headers.push("Min-Expires", min.to_string());
                }
                self.respond_with(id, r, t);
            }
        }
    }
}
