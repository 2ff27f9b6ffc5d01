//! xfed as the presence server of its local users: event state
//! publication (RFC 3903) per user and device, and the one state per user
//! that the gateway shows to XMPP contacts.
//!
//! Each PUBLISH of a device makes, refreshes, modifies or removes one
//! publication, named by an entity-tag that this module draws from the
//! caller's [`Rng`] (a new one at every refresh and modification, RFC 3903
//! section 6 step 7). The document itself is the caller's type `D` (the
//! PIDF translation parses it); this module needs only what [`Document`]
//! says of it, and keeps the raw body so that it can be persisted
//! ([`StoredPublication`]) and parsed again after a restart.
//!
//! Composition (issue 10): a user is open if any live publication is
//! open; the note is that of the most recent publication that carries one;
//! a user with no live publication (never published, or all expired) is
//! offline.
//!
//! Time is unix seconds, as for bindings: publications are persisted.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::rng::Rng;
use crate::sip::ExpiresPolicy;
use crate::store::Persist;
pub use crate::store::StoredPublication;

use super::bindings::normalize_aor;

/// A note (PIDF `<note>`, XMPP `<status>`) with its language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The text.
    pub text: String,
    /// `xml:lang`, if given.
    pub lang: Option<String>,
}

/// What composition needs of a published document.
pub trait Document {
    /// Whether it says the device is available (PIDF basic `open`).
    fn is_open(&self) -> bool;
    /// Its note, if any.
    fn note(&self) -> Option<&Note>;
}

/// The smallest document: open or closed, and a note. What a PIDF parser
/// can produce when nothing more is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Available.
    pub open: bool,
    /// The note.
    pub note: Option<Note>,
}

impl Document for Status {
    fn is_open(&self) -> bool {
        self.open
    }

    fn note(&self) -> Option<&Note> {
        self.note.as_ref()
    }
}

/// One device's publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication<D> {
    /// The current entity-tag.
    pub etag: String,
    /// When it expires, unix seconds.
    pub expires_at: u64,
    /// When its document was last set (initial or modifying PUBLISH),
    /// unix seconds; a refresh leaves it.
    pub published_at: u64,
    /// The parsed document.
    pub doc: D,
    /// The body as received (what is persisted).
    pub body: Box<[u8]>,
    /// Another instance of the deployment took it (the shared store
    /// says): it composes here, but that instance tells the watchers of
    /// its changes, expires it and deletes it.
    pub foreign: bool,
}

impl<D> Publication<D> {
    /// What the store kept of it, with its parsed document.
    fn of_stored(s: StoredPublication, doc: D, foreign: bool) -> Publication<D> {
        Publication {
            etag: s.etag,
            expires_at: s.expires_at,
            published_at: s.published_at,
            doc,
            body: s.body.into_boxed_slice(),
            foreign,
        }
    }
}

/// A user's state, composed of the live publications of their devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Composed<'a> {
    /// Some device is open.
    pub open: bool,
    /// The note of the most recent publication that has one.
    pub note: Option<&'a Note>,
    /// When the most recent live document was published; `None` when the
    /// user has no live publication (offline).
    pub published_at: Option<u64>,
}

impl Composed<'_> {
    /// The state of a user who never published, or whose publications all
    /// expired.
    pub const OFFLINE: Composed<'static> = Composed {
        open: false,
        note: None,
        published_at: None,
    };
}

/// Limits on what devices can make the server hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishPolicy {
    /// Durations (RFC 3903 leaves them to the package; one hour by
    /// default as for subscriptions).
    pub expires: ExpiresPolicy,
    /// Publications per user; more gets 403.
    pub max_per_user: usize,
    /// Publications in all; more gets 503 with Retry-After.
    pub max_total: usize,
}

impl Default for PublishPolicy {
    /// The presence durations, 16 devices per user (as bindings), 100 000
    /// publications.
    fn default() -> Self {
        PublishPolicy {
            expires: ExpiresPolicy::PRESENCE,
            max_per_user: 16,
            max_total: 100_000,
        }
    }
}

/// A PUBLISH, already authorized for its user and its Event checked (489
/// is the caller's).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishRequest<D> {
    /// `SIP-If-Match`: the publication to refresh, modify or remove.
    pub if_match: Option<String>,
    /// The Expires header.
    pub expires: Option<u32>,
    /// The parsed document and the raw body, when the request has one.
    pub body: Option<(D, Vec<u8>)>,
}

/// What a PUBLISH did; answer 200 with these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// `SIP-ETag` of the 200; `None` when the publication was removed
    /// (or an initial PUBLISH asked for 0 seconds).
    pub etag: Option<String>,
    /// `Expires` of the 200: the duration granted.
    pub expires: u32,
    /// The changes, for the store.
    pub changes: Vec<Persist>,
    /// Whether the user's composed state may have changed (tell the
    /// watchers); not after a mere refresh.
    pub changed: bool,
}

/// A refused PUBLISH: the response to send. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishError {
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// For 423: `Min-Expires`.
    pub min_expires: Option<u32>,
    /// For 503: `Retry-After`.
    pub retry_after: Option<u32>,
}

impl PublishError {
    const fn new(code: u16, reason: &'static str) -> PublishError {
        PublishError {
            code,
            reason,
            min_expires: None,
            retry_after: None,
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

impl std::error::Error for PublishError {}

/// Publications expired by [`Publications::expire`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expired {
    /// Users whose composed state may have changed, each once, sorted.
    pub users: Vec<String>,
    /// The deletes, for the store.
    pub changes: Vec<Persist>,
}

/// Every local user's publications.
#[derive(Debug, Clone)]
pub struct Publications<D> {
    policy: PublishPolicy,
    by_aor: HashMap<String, Vec<Publication<D>>>,
    /// (expires_at, aor, etag): the next deadline, and expiry in order.
    by_expiry: BTreeSet<(u64, String, String)>,
    /// This instance's `sip.path`, stored with what it takes.
    path: Option<String>,
}

impl<D: Document> Publications<D> {
    /// None yet.
    pub fn new(policy: PublishPolicy) -> Publications<D> {
        Publications {
            policy: PublishPolicy {
                expires: policy.expires.normalized(),
                ..policy
            },
            by_aor: HashMap::new(),
            by_expiry: BTreeSet::new(),
            path: None,
        }
    }

    /// None yet, for the instance whose `sip.path` is `path`.
    pub fn with_path(policy: PublishPolicy, path: Option<String>) -> Publications<D> {
        Publications {
            path,
            ..Publications::new(policy)
        }
    }

    /// Whether a stored publication was taken by another instance.
    fn is_foreign(&self, s: &StoredPublication) -> bool {
        s.path.is_some() && s.path != self.path
    }

    /// The publications the store kept, each body parsed again by `parse`,
    /// for the instance whose `sip.path` is `path`. Expired, unparsable and
    /// malformed ones are dropped with a delete record each; so are those
    /// beyond the limits.
    pub fn restore(
        policy: PublishPolicy,
        path: Option<String>,
        stored: impl IntoIterator<Item = StoredPublication>,
        parse: impl Fn(&[u8]) -> Option<D>,
        now_unix: u64,
    ) -> (Publications<D>, Vec<Persist>) {
        let mut p = Publications::with_path(policy, path);
        let mut changes = Vec::new();
        for s in stored {
            let aor = normalize_aor(&s.aor);
            let doc = parse(&s.body);
            let fits = aor.as_ref().is_some_and(|a| {
                p.len() < p.policy.max_total
                    && p.by_aor.get(a).map_or(0, Vec::len) < p.policy.max_per_user
            });
            let foreign = p.is_foreign(&s);
            match (aor, doc) {
                (Some(aor), Some(doc)) if s.expires_at > now_unix && fits => {
                    p.put(aor, Publication::of_stored(s, doc, foreign));
                }
                _ => changes.push(Persist::DeletePublication {
                    aor: s.aor,
                    etag: s.etag,
                }),
            }
        }
        (p, changes)
    }

    /// Publications held, expired ones not yet collected included.
    pub fn len(&self) -> usize {
        self.by_expiry.len()
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.by_expiry.is_empty()
    }

    /// The live publications of `aor`.
    pub fn of(&self, aor: &str, now_unix: u64) -> Vec<&Publication<D>> {
        normalize_aor(aor)
            .and_then(|a| self.by_aor.get(&a))
            .into_iter()
            .flatten()
            .filter(|p| p.expires_at > now_unix)
            .collect()
    }

    /// `aor`'s composed state at `now_unix` (see the module's rules).
    pub fn compose(&self, aor: &str, now_unix: u64) -> Composed<'_> {
        let live = self.of(aor, now_unix);
        if live.is_empty() {
            return Composed::OFFLINE;
        }
        let open = live.iter().any(|p| p.doc.is_open());
        // Most recent first; equal times by entity-tag, so the result does
        // not depend on the order of arrival or of a reload.
        let newest = |a: &&&Publication<D>, b: &&&Publication<D>| {
            (a.published_at, &a.etag).cmp(&(b.published_at, &b.etag))
        };
        let note = live
            .iter()
            .filter(|p| p.doc.note().is_some())
            .max_by(newest)
            .and_then(|p| p.doc.note());
        let published_at = live.iter().map(|p| p.published_at).max();
        Composed {
            open,
            note,
            published_at,
        }
    }

    /// When the next publication expires (unix seconds): call
    /// [`expire`](Publications::expire) then.
    pub fn next_expiry(&self) -> Option<u64> {
        self.by_expiry.first().map(|(t, _, _)| *t)
    }

    /// The users with a publication of ours expired at `now_unix`, each
    /// with the earliest such expiry: what they looked like until then is
    /// [`compose`](Publications::compose) just before it.
    pub fn due(&self, now_unix: u64) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for (t, aor, etag) in self.by_expiry.iter().take_while(|(t, _, _)| *t <= now_unix) {
            let ours = self
                .by_aor
                .get(aor)
                .and_then(|l| l.iter().find(|p| p.etag == *etag))
                .is_some_and(|p| !p.foreign);
            if ours && !out.iter().any(|(a, _)| a == aor) {
                out.push((aor.clone(), *t));
            }
        }
        out
    }

    /// Removes every publication expired at `now_unix`; ours are deleted
    /// from the store and their users listed, another instance's go
    /// quietly (it deletes and tells).
    pub fn expire(&mut self, now_unix: u64) -> Expired {
        let mut out = Expired::default();
        while let Some((t, _, _)) = self.by_expiry.first() {
            if *t > now_unix {
                break;
            }
            let Some((_, aor, etag)) = self.by_expiry.pop_first() else {
                break;
            };
            if self.take(&aor, &etag).is_some_and(|p| p.foreign) {
                continue;
            }
            if !out.users.contains(&aor) {
                out.users.push(aor.clone());
            }
            out.changes.push(Persist::DeletePublication { aor, etag });
        }
        out.users.sort();
        out
    }

    /// Takes what the shared store holds of `aor`'s publications (another
    /// instance changed them): other instances' rows replace what was
    /// known of theirs, within the bounds; ours are ours to know (a newer
    /// change may be on its way to the store). No record, no
    /// notification: the instance that took a publication tells the
    /// watchers.
    pub fn merge_stored(
        &mut self,
        aor: &str,
        rows: Vec<StoredPublication>,
        parse: impl Fn(&[u8]) -> Option<D>,
        now_unix: u64,
    ) {
        let Some(aor) = normalize_aor(aor) else {
            return;
        };
        let stale: Vec<String> = self
            .by_aor
            .get(&aor)
            .into_iter()
            .flatten()
            .filter(|p| p.foreign)
            .map(|p| p.etag.clone())
            .collect();
        for etag in stale {
            self.take(&aor, &etag);
        }
        for s in rows {
            if !self.is_foreign(&s)
                || s.expires_at <= now_unix
                || normalize_aor(&s.aor).as_deref() != Some(aor.as_str())
                || self.len() >= self.policy.max_total
                || self.by_aor.get(&aor).map_or(0, Vec::len) >= self.policy.max_per_user
            {
                continue;
            }
            let Some(doc) = parse(&s.body) else { continue };
            self.take(&aor, &s.etag);
            self.put(aor.clone(), Publication::of_stored(s, doc, true));
        }
    }

    /// [`Publications::merge_stored`] for every user: `rows` is all the
    /// store holds.
    pub fn merge_all_stored(
        &mut self,
        rows: Vec<StoredPublication>,
        parse: impl Fn(&[u8]) -> Option<D>,
        now_unix: u64,
    ) {
        let mut by_aor: HashMap<String, Vec<StoredPublication>> = HashMap::new();
        for (aor, list) in &self.by_aor {
            if list.iter().any(|p| p.foreign) {
                by_aor.entry(aor.clone()).or_default();
            }
        }
        for s in rows {
            if let Some(aor) = normalize_aor(&s.aor) {
                by_aor.entry(aor).or_default().push(s);
            }
        }
        for (aor, rows) in by_aor {
            self.merge_stored(&aor, rows, &parse, now_unix);
        }
    }

    fn put(&mut self, aor: String, p: Publication<D>) {
        self.by_expiry
            .insert((p.expires_at, aor.clone(), p.etag.clone()));
        self.by_aor.entry(aor).or_default().push(p);
    }

    fn take(&mut self, aor: &str, etag: &str) -> Option<Publication<D>> {
        let list = self.by_aor.get_mut(aor)?;
        let at = list.iter().position(|p| p.etag == etag)?;
        let old = list.swap_remove(at);
        if list.is_empty() {
            self.by_aor.remove(aor);
        }
        self.by_expiry
            .remove(&(old.expires_at, aor.to_string(), old.etag.clone()));
        Some(old)
    }

    fn stored(&self, aor: &str, p: &Publication<D>) -> StoredPublication {
        StoredPublication {
            aor: aor.to_string(),
            etag: p.etag.clone(),
            expires_at: p.expires_at,
            published_at: p.published_at,
            body: p.body.to_vec(),
            path: self.path.clone(),
        }
    }

    /// Processes a PUBLISH for `aor` (RFC 3903 section 6, steps 3 to 7):
    ///
    /// - `SIP-If-Match` names a live publication of this user, else 412;
    /// - with it: no body refreshes, a body modifies (replaces the
    ///   document), `Expires: 0` removes; refresh and modification get a
    ///   new entity-tag;
    /// - without it: an initial publication, which needs a body (else
    ///   400); `Expires: 0` there keeps nothing;
    /// - durations per the policy: 423 with Min-Expires when too brief;
    /// - 403 beyond `max_per_user`, 503 beyond `max_total`.
    ///
    /// Expired publications of the user are collected first, as for bindings.
    pub fn publish(
        &mut self,
        aor: &str,
        req: PublishRequest<D>,
        now_unix: u64,
        rng: &mut Rng,
    ) -> Result<PublishOutcome, PublishError> {
        let aor = normalize_aor(aor).ok_or(PublishError::new(400, "Invalid Address of Record"))?;
        let expires = self
            .policy
            .expires
            .grant(req.expires)
            .map_err(|t| PublishError {
                min_expires: Some(t.min_expires),
                ..PublishError::new(423, "Interval Too Brief")
            })?;
        // Validate everything before changing anything.
        self.check(&aor, &req, expires, now_unix)?;
        let mut changes = self.drop_expired(&aor, now_unix);
        let old = match &req.if_match {
            Some(tag) => self.take(&aor, tag),
            None => None,
        };
        if let Some(old) = &old {
            changes.push(Persist::DeletePublication {
                aor: aor.clone(),
                etag: old.etag.clone(),
            });
        }
        if expires == 0 {
            return Ok(PublishOutcome {
                etag: None,
                expires: 0,
                changed: old.is_some(),
                changes,
            });
        }
        let etag = rng.token();
        let expires_at = now_unix.saturating_add(u64::from(expires));
        let (publication, changed) = match (old, req.body) {
            (_, Some((doc, body))) => (
                Publication {
                    etag: etag.clone(),
                    expires_at,
                    published_at: now_unix,
                    doc,
                    body: body.into_boxed_slice(),
                    foreign: false,
                },
                true,
            ),
            // A refresh here of another instance's publication (the device
            // moved): ours from now on.
            (Some(old), None) => (
                Publication {
                    etag: etag.clone(),
                    expires_at,
                    foreign: false,
                    ..old
                },
                false,
            ),
            // Refused by `check`: no If-Match needs a body.
            (None, None) => return Err(PublishError::new(400, "Missing Body")),
        };
        changes.push(Persist::PutPublication(self.stored(&aor, &publication)));
        self.put(aor, publication);
        Ok(PublishOutcome {
            etag: Some(etag),
            expires,
            changes,
            changed,
        })
    }

    /// Refuses a request before anything changes: an unknown or expired
    /// tag (412), a new publication without a body (400), or one over the
    /// per-user (403) or total (503) bound.
    fn check(
        &self,
        aor: &str,
        req: &PublishRequest<D>,
        expires: u32,
        now_unix: u64,
    ) -> Result<(), PublishError> {
        if let Some(tag) = &req.if_match {
            let live = self
                .by_aor
                .get(aor)
                .is_some_and(|l| l.iter().any(|p| p.etag == *tag && p.expires_at > now_unix));
            if !live {
                return Err(PublishError::new(412, "Conditional Request Failed"));
            }
            return Ok(());
        }
        if req.body.is_none() {
            return Err(PublishError::new(400, "Missing Body"));
        }
        if expires == 0 {
            return Ok(());
        }
        let live_of_user = self.of(aor, now_unix).len();
        if live_of_user >= self.policy.max_per_user {
            return Err(PublishError::new(403, "Too Many Publications"));
        }
        let expired_of_user = self.by_aor.get(aor).map_or(0, Vec::len) - live_of_user;
        if self.len() - expired_of_user >= self.policy.max_total {
            return Err(PublishError {
                retry_after: Some(60),
                ..PublishError::new(503, "Too Many Publications")
            });
        }
        Ok(())
    }

    /// Forgets `aor`'s publications that ran out, with the records saying
    /// so.
    fn drop_expired(&mut self, aor: &str, now_unix: u64) -> Vec<Persist> {
        let expired: Vec<String> = self
            .by_aor
            .get(aor)
            .into_iter()
            .flatten()
            .filter(|p| p.expires_at <= now_unix)
            .map(|p| p.etag.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|etag| {
                let foreign = self.take(aor, &etag)?.foreign;
                (!foreign).then(|| Persist::DeletePublication {
                    aor: aor.to_owned(),
                    etag,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(open: bool, note: Option<&str>) -> Status {
        Status {
            open,
            note: note.map(|n| Note {
                text: n.into(),
                lang: Some("en".into()),
            }),
        }
    }

    fn initial(open: bool, note: Option<&str>, expires: Option<u32>) -> PublishRequest<Status> {
        PublishRequest {
            if_match: None,
            expires,
            body: Some((status(open, note), b"<presence/>".to_vec())),
        }
    }

    fn tagged(tag: &str, body: Option<Status>, expires: Option<u32>) -> PublishRequest<Status> {
        PublishRequest {
            if_match: Some(tag.into()),
            expires,
            body: body.map(|d| (d, b"<presence/>".to_vec())),
        }
    }

    #[test]
    fn entity_tag_lifecycle() {
        let mut rng = Rng::new([1; 32]);
        let mut p = Publications::new(PublishPolicy::default());
        let a = "alice@Example.COM";

        let first = p
            .publish(a, initial(true, None, None), 1000, &mut rng)
            .unwrap();
        let e1 = first.etag.clone().unwrap();
        assert_eq!(first.expires, 3600);
        assert!(first.changed);
        assert_eq!(first.changes.len(), 1);
        assert!(matches!(&first.changes[0], Persist::PutPublication(s)
            if s.aor == "alice@example.com" && s.etag == e1 && s.expires_at == 4600
                && s.published_at == 1000 && s.body == b"<presence/>"));
        assert_eq!(p.next_expiry(), Some(4600));

        // Refresh: new tag, longer life, same document, no state change.
        let r = p
            .publish(a, tagged(&e1, None, Some(600)), 2000, &mut rng)
            .unwrap();
        let e2 = r.etag.clone().unwrap();
        assert_ne!(e1, e2);
        assert_eq!(r.expires, 600);
        assert!(!r.changed);
        assert_eq!(r.changes.len(), 2, "delete the old tag, put the new");
        assert_eq!(p.next_expiry(), Some(2600));
        let live = p.of(a, 2000);
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].published_at, 1000, "a refresh is not a publication");

        // The old tag is gone: 412.
        let e = p
            .publish(a, tagged(&e1, None, None), 2001, &mut rng)
            .unwrap_err();
        assert_eq!(e.code, 412);

        // Modify: new document, new tag.
        let m = p
            .publish(
                a,
                tagged(&e2, Some(status(false, Some("out"))), None),
                2100,
                &mut rng,
            )
            .unwrap();
        let e3 = m.etag.clone().unwrap();
        assert!(m.changed);
        assert!(!p.compose(a, 2100).open);
        assert_eq!(p.compose(a, 2100).note.unwrap().text, "out");
        assert_eq!(p.compose(a, 2100).published_at, Some(2100));

        // Remove with Expires: 0.
        let d = p
            .publish(a, tagged(&e3, None, Some(0)), 2200, &mut rng)
            .unwrap();
        assert_eq!(d.etag, None);
        assert_eq!(d.expires, 0);
        assert!(d.changed);
        assert_eq!(
            d.changes,
            [Persist::DeletePublication {
                aor: "alice@example.com".into(),
                etag: e3.clone()
            }]
        );
        assert!(p.is_empty());
        assert_eq!(p.compose(a, 2200), Composed::OFFLINE);
        assert_eq!(
            p.publish(a, tagged(&e3, None, Some(0)), 2201, &mut rng)
                .unwrap_err()
                .code,
            412
        );
    }

    #[test]
    fn refusals_change_nothing() {
        let mut rng = Rng::new([2; 32]);
        let mut p = Publications::new(PublishPolicy {
            max_per_user: 2,
            max_total: 3,
            ..PublishPolicy::default()
        });
        let no_body = PublishRequest::<Status> {
            if_match: None,
            expires: None,
            body: None,
        };
        assert_eq!(
            p.publish("a@x", no_body, 0, &mut rng).unwrap_err().code,
            400
        );
        let e = p
            .publish("a@x", initial(true, None, Some(10)), 0, &mut rng)
            .unwrap_err();
        assert_eq!((e.code, e.min_expires), (423, Some(60)));
        assert_eq!(
            p.publish("nobody", initial(true, None, None), 0, &mut rng)
                .unwrap_err()
                .code,
            400
        );
        // An initial PUBLISH for 0 seconds keeps nothing.
        let z = p
            .publish("a@x", initial(true, None, Some(0)), 0, &mut rng)
            .unwrap();
        assert_eq!((z.etag, z.changed, z.changes.len()), (None, false, 0));
        assert!(p.is_empty());

        p.publish("a@x", initial(true, None, None), 0, &mut rng)
            .unwrap();
        p.publish("a@x", initial(true, None, None), 0, &mut rng)
            .unwrap();
        assert_eq!(
            p.publish("a@x", initial(true, None, None), 0, &mut rng)
                .unwrap_err()
                .code,
            403
        );
        p.publish("b@x", initial(true, None, None), 0, &mut rng)
            .unwrap();
        let full = p
            .publish("c@x", initial(true, None, None), 0, &mut rng)
            .unwrap_err();
        assert_eq!((full.code, full.retry_after), (503, Some(60)));
        assert_eq!(p.len(), 3);
        // A user's expired publications do not count against them.
        let later = 3600;
        assert!(p
            .publish("a@x", initial(true, None, None), later, &mut rng)
            .is_ok());
    }

    #[test]
    fn composition_rules() {
        let mut rng = Rng::new([3; 32]);
        let mut p = Publications::new(PublishPolicy::default());
        assert_eq!(p.compose("a@x", 0), Composed::OFFLINE, "never published");
        p.publish(
            "a@x",
            initial(false, Some("phone off"), Some(100)),
            10,
            &mut rng,
        )
        .unwrap();
        let c = p.compose("a@x", 10);
        assert!(!c.open);
        assert_eq!(c.note.unwrap().text, "phone off");
        assert_eq!(c.note.unwrap().lang.as_deref(), Some("en"));
        // Any device open makes the user open; the newer note wins.
        p.publish(
            "a@x",
            initial(true, Some("at desk"), Some(200)),
            20,
            &mut rng,
        )
        .unwrap();
        let c = p.compose("a@x", 20);
        assert!(c.open);
        assert_eq!(c.note.unwrap().text, "at desk");
        assert_eq!(c.published_at, Some(20));
        // A newer document without a note leaves the newest note shown.
        p.publish("a@x", initial(false, None, Some(200)), 30, &mut rng)
            .unwrap();
        let c = p.compose("a@x", 30);
        assert!(c.open);
        assert_eq!(c.note.unwrap().text, "at desk");
        assert_eq!(c.published_at, Some(30));
        // Other users are unaffected.
        assert_eq!(p.compose("b@x", 30), Composed::OFFLINE);
        // Expiry: the first device goes at 110, the others at 220 and 230.
        assert_eq!(p.next_expiry(), Some(110));
        let e = p.expire(110);
        assert_eq!(e.users, ["a@x"]);
        assert_eq!(e.changes.len(), 1);
        assert!(p.compose("a@x", 110).open);
        assert_eq!(p.expire(219), Expired::default());
        assert_eq!(p.due(219), []);
        assert_eq!(
            p.due(230),
            [("a@x".to_owned(), 220)],
            "each user once, earliest"
        );
        let e = p.expire(230);
        assert_eq!(e.users, ["a@x"], "each user once");
        assert_eq!(e.changes.len(), 2);
        assert_eq!(p.compose("a@x", 230), Composed::OFFLINE, "all expired");
        assert_eq!(p.next_expiry(), None);
    }

    #[test]
    fn expired_publications_are_not_live_before_collection() {
        let mut rng = Rng::new([4; 32]);
        let mut p = Publications::new(PublishPolicy::default());
        let o = p
            .publish("a@x", initial(true, None, Some(60)), 0, &mut rng)
            .unwrap();
        assert!(p.compose("a@x", 59).open);
        assert_eq!(p.compose("a@x", 60), Composed::OFFLINE);
        let tag = o.etag.unwrap();
        assert_eq!(
            p.publish("a@x", tagged(&tag, None, None), 60, &mut rng)
                .unwrap_err()
                .code,
            412,
            "an expired tag cannot be refreshed"
        );
    }

    #[test]
    fn restore_keeps_the_live_and_deletes_the_rest() {
        let stored = |aor: &str, etag: &str, expires_at, body: &[u8]| StoredPublication {
            aor: aor.into(),
            etag: etag.into(),
            expires_at,
            published_at: 5,
            body: body.to_vec(),
            path: None,
        };
        let parse = |b: &[u8]| match b {
            b"open" => Some(status(true, None)),
            b"closed" => Some(status(false, Some("away"))),
            _ => None,
        };
        let (p, changes) = Publications::restore(
            PublishPolicy::default(),
            None,
            vec![
                stored("a@x", "t1", 100, b"open"),
                stored("a@x", "t2", 10, b"open"),
                stored("b@x", "t3", 100, b"garbage"),
                stored("nobody", "t4", 100, b"open"),
                stored("c@x", "t5", 100, b"closed"),
            ],
            parse,
            50,
        );
        assert_eq!(p.len(), 2);
        assert!(p.compose("a@x", 50).open);
        assert_eq!(p.compose("c@x", 50).note.unwrap().text, "away");
        let deleted: Vec<&str> = changes
            .iter()
            .map(|c| match c {
                Persist::DeletePublication { etag, .. } => etag.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(deleted, ["t2", "t3", "t4"]);
    }
}

#[cfg(test)]
mod shared {
    use super::*;

    const ME: &str = "sip:10.0.0.1:5060;transport=tcp";
    const OTHER: &str = "sip:10.0.0.2:5060;transport=tcp";

    fn parse(b: &[u8]) -> Option<Status> {
        match b {
            b"open" => Some(Status {
                open: true,
                note: None,
            }),
            b"closed" => Some(Status {
                open: false,
                note: None,
            }),
            _ => None,
        }
    }

    fn row(etag: &str, expires_at: u64, body: &[u8], path: &str) -> StoredPublication {
        StoredPublication {
            aor: "a@x".into(),
            etag: etag.into(),
            expires_at,
            published_at: 1,
            body: body.to_vec(),
            path: Some(path.into()),
        }
    }

    /// Another instance's publications compose here, expire here without
    /// a record or a user to tell, and go when the store no longer has
    /// them; ours are stored with our path and never read back; a device
    /// refreshing here what it published there makes it ours.
    #[test]
    fn other_instances_publications_compose_and_are_theirs_to_tell() {
        let mut rng = Rng::new([9; 32]);
        let (mut p, _) = Publications::restore(
            PublishPolicy::default(),
            Some(ME.into()),
            vec![row("theirs", 500, b"closed", OTHER)],
            parse,
            0,
        );
        assert!(!p.compose("a@x", 0).open);
        let ours = p
            .publish(
                "a@x",
                PublishRequest {
                    if_match: None,
                    expires: Some(3600),
                    body: Some((parse(b"closed").unwrap(), b"closed".to_vec())),
                },
                0,
                &mut rng,
            )
            .unwrap();
        assert!(
            matches!(&ours.changes[..], [Persist::PutPublication(s)] if s.path.as_deref() == Some(ME))
        );
        let our_tag = ours.etag.unwrap();
        // The other instance's device opens: composed here.
        p.merge_stored(
            "a@x",
            vec![
                row("theirs-2", 500, b"open", OTHER),
                row(&our_tag, 1, b"open", ME),
            ],
            parse,
            0,
        );
        assert!(p.compose("a@x", 0).open);
        assert_eq!(
            p.of("a@x", 0).len(),
            2,
            "theirs replaced, ours not read back"
        );
        // Theirs expires quietly; ours would be told and deleted.
        assert!(p.due(600).is_empty());
        let expired = p.expire(600);
        assert!(expired.changes.is_empty() && expired.users.is_empty());
        assert!(!p.compose("a@x", 600).open);
        // Gone from the store: gone here.
        p.merge_stored(
            "a@x",
            vec![row("theirs-3", 900, b"open", OTHER)],
            parse,
            600,
        );
        assert!(p.compose("a@x", 600).open);
        p.merge_all_stored(Vec::new(), parse, 600);
        assert!(!p.compose("a@x", 600).open);
        // The device moves here with its tag: ours, stored with our path.
        p.merge_stored("a@x", vec![row("moved", 5000, b"open", OTHER)], parse, 600);
        let r = p
            .publish(
                "a@x",
                PublishRequest {
                    if_match: Some("moved".into()),
                    expires: Some(3600),
                    body: None,
                },
                700,
                &mut rng,
            )
            .unwrap();
        assert!(r
            .changes
            .iter()
            .any(|c| matches!(c, Persist::PutPublication(s) if s.path.as_deref() == Some(ME))));
        assert!(p.of("a@x", 700).iter().all(|p| !p.foreign));
    }
}

#[cfg(test)]
mod size {
    use super::*;

    /// What one publication costs inline: the record in its user's list
    /// and its expiry index entry (aor and etag again, on the heap).
    #[test]
    fn publication_size() {
        let p = std::mem::size_of::<Publication<Status>>();
        let idx = std::mem::size_of::<(u64, String, String)>();
        eprintln!("Publication<Status> {p} B; expiry index {idx} B");
        assert!(p + idx <= 200, "{p} + {idx}");
    }
}
