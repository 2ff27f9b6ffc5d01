//! The other instances of a deployment (several xfed sharing one
//! PostgreSQL store): a user registers through one of them, which holds
//! the flow and stamps its `sip.path` on the binding (RFC 3327 Path); the
//! store tells the others ([`Endpoint::shared`]). A message for
//! that user reaching another instance is forwarded to the one holding
//! the flow as a MESSAGE for the address of record, and delivered there
//! to its own bindings only, never forwarded again; its final answer
//! goes back the same way.

use super::*;
use crate::capacity::release_sparse;
use crate::store::Shared;
use crate::translate::chatstate::IS_COMPOSING_CONTENT_TYPE;

/// The type of a MESSAGE carrying an XMPP stanza between instances (RFC
/// 3923 section 10).
const XMPP_STANZA: &str = "application/xmpp+xml";

impl Endpoint {
    /// What the store now holds of a user's rows, written by another
    /// instance, or of everyone's (read afresh after the store was away).
    /// Registrar mode only: in proxy mode the SIP domain keeps bindings
    /// and presence.
    pub fn shared(&mut self, rows: Shared, t: &mut Turn<'_>) {
        if self.mode != SipMode::Registrar {
            return;
        }
        let (n, what, user) = match rows {
            Shared::Bindings(aor, rows) => {
                let bindings = self.registrar.bindings_mut();
                match aor {
                    Some(aor) => bindings.merge_stored(&aor, rows, t.unix),
                    None => bindings.merge_all_stored(rows, t.unix),
                }
                return;
            }
            Shared::Publications(aor, rows) => {
                let n = rows.len();
                let parse = |b: &[u8]| PidfDoc::parse(b, None).ok();
                match &aor {
                    Some(aor) => self.publications.merge_stored(aor, rows, parse, t.unix),
                    None => self.publications.merge_all_stored(rows, parse, t.unix),
                }
                (n, "presence publication(s)", aor)
            }
            Shared::Contacts(user, rows) => {
                let n = rows.len();
                match &user {
                    Some(user) => self.access.merge_stored(user, rows, t.unix),
                    None => self.access.merge_all_stored(rows, t.unix),
                }
                (n, "remembered contact(s)", user)
            }
            Shared::Authorizations(user, rows) => {
                let n = rows.len();
                match &user {
                    Some(user) => self.watchers.merge_stored(user, rows),
                    None => self.watchers.merge_all_stored(rows),
                }
                (n, "presence authorization(s)", user)
            }
        };
        // Another instance's publication composes here (so a probe or a
        // new watcher gets the user's whole state); that instance tells the
        // watchers of its changes itself.
        let whose = user.as_deref().unwrap_or("every user");
        self.detail(None, format!("shared store: {n} {what} of {whose}"));
    }

    /// How to reach the instance at `path` (its `sip.path`) with a
    /// MESSAGE for `aor`.
    pub(super) fn instance_target(&mut self, aor: &str, path: &str) -> Option<Target> {
        let Ok(via) = Uri::parse(path) else {
            self.detail(
                None,
                format!("{aor}: instance path {path} is not a SIP URI"),
            );
            return None;
        };
        let ip = match via.host()? {
            sip::Host::V4(ip) => IpAddr::V4(*ip),
            sip::Host::V6(ip) => IpAddr::V6(*ip),
            sip::Host::Domain(_) => {
                self.detail(
                    None,
                    format!(
                        "{aor}: instance path {path} names a host; only IP addresses are reachable"
                    ),
                );
                return None;
            }
        };
        let transport = match via.transport() {
            Some(tr) if tr.eq_ignore_ascii_case("tcp") => SipTransport::Tcp,
            _ => SipTransport::Udp,
        };
        Some(Target {
            uri: Uri::parse(&format!("sip:{aor}")).ok()?,
            to: format!("sip:{aor}"),
            addr: SocketAddr::new(ip, via.port().unwrap_or(5060)),
            transport,
            tls_name: None,
            flow: None,
        })
    }

    /// The local user a MESSAGE is for when another instance forwarded
    /// it: a `sip.trusted` peer, in registrar mode, sending as someone
    /// who is not local to a local user's address of record.
    pub(super) fn forwarded_for(&self, req: &Request, src: Source) -> Option<String> {
        if !src.trusted || self.mode != SipMode::Registrar {
            return None;
        }
        let from = req.headers.from().ok()?;
        if aor_of(from.uri()).is_none_or(|a| self.is_local(domain_of(&a))) {
            return None;
        }
        aor_of(&req.uri).filter(|a| self.is_local(domain_of(a)))
    }

    /// A watched contact's presence (or its answer to a subscription) for
    /// a local user who watches it through no dialog here: sent to each
    /// other instance holding the user's flows, where the user's
    /// SUBSCRIBE would have gone, as a MESSAGE carrying the stanza
    /// (`application/xmpp+xml`, RFC 3923's type for an XMPP stanza).
    /// `false` when there is none (the stanza takes its usual path).
    pub(super) fn forward_contact_presence(
        &mut self,
        stanza: &Element,
        from: &Jid,
        to: &Jid,
        t: &mut Turn<'_>,
    ) -> bool {
        let contact_presence = matches!(
            stanza.attr("type"),
            None | Some("unavailable" | "subscribed" | "unsubscribed")
        );
        if self.mode != SipMode::Registrar || !contact_presence {
            return false;
        }
        let user = to.bare().as_str().to_owned();
        let mut paths: Vec<String> = Vec::new();
        for b in self.registrar.bindings().lookup(&user, t.unix) {
            match b.path {
                Some(p) if self.registrar.bindings().is_foreign_path(&p) && !paths.contains(&p) => {
                    paths.push(p);
                }
                _ => {}
            }
        }
        if paths.is_empty() {
            return false;
        }
        let Ok(body) = String::from_utf8(stanza.to_bytes()) else {
            return false;
        };
        let im = translate::SipIm {
            from: translate::jid_to_sip(from),
            to: format!("sip:{user}"),
            body,
            content_type: XMPP_STANZA.to_owned(),
            subject: None,
            call_id: None,
            language: None,
        };
        let what = format!("presence {} -> {user}", from.bare());
        for path in paths {
            let Some(target) = self.instance_target(&user, &path) else {
                continue;
            };
            let Ok(request) = self.pager_request(&im, &target) else {
                continue;
            };
            if let Some(id) = self.start_request(request, &target, false, t) {
                self.detail(None, format!("{what}: no dialog here, forwarded to {path}"));
                self.presence_forwards
                    .insert(id, format!("{what} forwarded to {path}"));
            }
        }
        self.drain_table(t);
        true
    }

    /// A forwarded presence's answer; `false` when `id` is not one.
    pub(super) fn presence_forward_answered(
        &mut self,
        id: TxId,
        result: &Result<Response, u16>,
    ) -> bool {
        let Some(what) = self.presence_forwards.remove(&id) else {
            return false;
        };
        release_sparse(&mut self.presence_forwards);
        let status = match result {
            Ok(r) => r.status,
            Err(code) => *code,
        };
        if !(200..300).contains(&status) {
            self.detail(None, format!("{what}: {status}, not delivered"));
        }
        true
    }

    /// A watched contact's presence another instance forwarded (see
    /// [`Endpoint::forward_contact_presence`]): handed to the dialogs
    /// here that watch it (200), or 481 when none does; never forwarded
    /// again.
    fn forwarded_presence(&mut self, id: TxId, req: &Request, aor: &str, t: &mut Turn<'_>) {
        let stanza = std::str::from_utf8(&req.body)
            .ok()
            .and_then(|s| crate::xml::parse_element(s).ok())
            .filter(|s| Kind::of(s) == Some(Kind::Presence));
        let addressing = stanza.as_ref().and_then(stanza::addressing);
        let (Some(stanza), Some(addr)) = (stanza, addressing) else {
            return self.respond(id, req, 400, Some("Not A Presence Stanza"), t);
        };
        if addr.to.bare().as_str() != aor || self.is_local(addr.from.domain()) {
            return self.respond(id, req, 400, Some("Presence Not For This User"), t);
        }
        if self.contact_presence(&stanza, &addr.from, &addr.to, t) {
            self.respond(id, req, 200, None, t);
        } else {
            self.respond(id, req, 481, Some("No Subscription Here"), t);
        }
    }

    /// Delivers a MESSAGE another instance forwarded to `aor`'s bindings
    /// held here, in `aor`'s queue like any other, and answers with the
    /// outcome (the user agent's 2xx, or the best failure).
    pub(super) fn forwarded_message(
        &mut self,
        id: TxId,
        req: Request,
        aor: String,
        src: Source,
        t: &mut Turn<'_>,
    ) {
        let peer = src.addr;
        self.authenticated.insert(id);
        if req.headers.content_type_is(XMPP_STANZA) {
            return self.forwarded_presence(id, &req, &aor, t);
        }
        let im = match pager::sip_im_of(&req) {
            Ok(im) => im,
            Err((status, reason)) => {
                let detail =
                    format!("SIP MESSAGE forwarded by {peer} for {aor}: {status} {reason}");
                self.refused(peer, detail);
                return self.respond(id, &req, status, Some(reason), t);
            }
        };
        let targets = self.targets(&aor, false, t);
        let Some(first) = targets.first() else {
            self.detail(
                None,
                format!("SIP MESSAGE forwarded by {peer} for {aor}: no contact here; 480"),
            );
            return self.respond(id, &req, 480, Some("No Contact Here"), t);
        };
        let request = match self.pager_request(&im, first) {
            Ok(r) => r,
            Err(e) => {
                self.refused(peer, format!("SIP MESSAGE forwarded by {peer}: {e}; 400"));
                return self.respond(id, &req, 400, None, t);
            }
        };
        let targets = match self.targets_for_size(targets, request.to_bytes().len()) {
            Ok(targets) => targets,
            Err(why) => {
                self.refused(peer, format!("SIP MESSAGE forwarded by {peer}: {why}; 513"));
                return self.respond(id, &req, 513, None, t);
            }
        };
        self.detail(
            None,
            format!("SIP MESSAGE for {aor} forwarded by {peer}, delivered here"),
        );
        let chat_state = im
            .content_type
            .to_ascii_lowercase()
            .starts_with(IS_COMPOSING_CONTENT_TYPE);
        let outgoing = Outgoing {
            origin: Origin::Instance {
                tx: id,
                request: req,
            },
            request,
            targets,
            chat_state,
            arrived: t.now,
        };
        if let Some((outgoing, key)) = self.queue_for(aor.clone(), outgoing, None, t) {
            self.detail(
                None,
                format!("SIP MESSAGE for {aor} forwarded by {peer}: queue full ({key}); 503"),
            );
            if let Origin::Instance { tx, request } = outgoing.origin {
                let tag = sip::new_tag(&mut self.rng);
                let mut r = request.response(503, &tag);
                r.headers.push("Retry-After", OVERLOAD_RETRY_AFTER);
                self.respond_with(tx, r, t);
            }
        }
    }
}

impl Origin {
    /// Whether another instance waits for the answer.
    pub(super) fn is_instance(&self) -> bool {
        matches!(self, Origin::Instance { .. })
    }
}
