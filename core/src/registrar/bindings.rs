//! The registrar's location service: address of record -> contacts, with
//! the REGISTER processing of RFC 3261 section 10.3 (steps 6 to 8) on
//! already-parsed requests, and expiry driven by the caller's clock.
//!
//! Time is unix seconds, not `Instant`, because bindings outlive the
//! process: they are persisted (as [`Persist`] records) and reloaded.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::store::{binding_key, Persist};
pub use crate::store::{Binding, Q};

/// One Contact of a REGISTER, as the SIP parser hands it over.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactParam {
    /// The URI text.
    pub uri: String,
    /// Its `expires` parameter.
    pub expires: Option<u32>,
    /// Its `q` parameter.
    pub q: Option<f32>,
    /// Its `+sip.instance` parameter (unquoted).
    pub instance: Option<String>,
    /// Its `reg-id` parameter.
    pub reg_id: Option<u32>,
}

/// The parts of a REGISTER the registrar acts on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegisterRequest {
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// The Contact header fields, in order.
    pub contacts: Vec<ContactParam>,
    /// `Contact: *`.
    pub star: bool,
    /// The Expires header.
    pub expires_header: Option<u32>,
}

/// A successful REGISTER: what to list in the 200 OK, and what to persist.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterOutcome {
    /// Every current binding of the address of record, most preferred
    /// first (RFC 3261 section 10.3 step 8).
    pub bindings: Vec<Binding>,
    /// The changes, for the store.
    pub changes: Vec<Persist>,
}

/// A refused REGISTER: the SIP response to send. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterError {
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// For 423: the `Min-Expires` header value.
    pub min_expires: Option<u32>,
}

impl RegisterError {
    fn new(code: u16, reason: &'static str) -> RegisterError {
        RegisterError {
            code,
            reason,
            min_expires: None,
        }
    }
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

impl std::error::Error for RegisterError {}

/// Registration limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Below this (and above 0) a REGISTER gets 423 with `Min-Expires`.
    pub min_expires: u32,
    /// When neither the contact nor the request says.
    pub default_expires: u32,
    /// Longer requests are shortened to this (RFC 3261 allows it).
    pub max_expires: u32,
    /// Bindings per address of record; more gets 403.
    pub max_contacts: usize,
}

impl Default for Policy {
    /// 60 s minimum (RFC 3261's recommended floor for Min-Expires), one
    /// hour by default (RFC 3261 section 10.2.1.1), one day at most, 16
    /// devices per user: the usual registrar settings.
    fn default() -> Self {
        Policy {
            min_expires: 60,
            default_expires: 3600,
            max_expires: 86_400,
            max_contacts: 16,
        }
    }
}

impl Policy {
    /// Orders the three durations so that min <= default <= max holds
    /// whatever the caller passed.
    fn normalized(mut self) -> Policy {
        self.max_expires = self.max_expires.max(1);
        self.min_expires = self.min_expires.min(self.max_expires);
        self.default_expires = self
            .default_expires
            .clamp(self.min_expires, self.max_expires);
        self
    }
}

/// The location service.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    policy: Policy,
    by_aor: HashMap<String, Vec<Binding>>,
    /// (expires_at, aor, key), for the next deadline and expiry in order.
    by_expiry: BTreeSet<(u64, String, String)>,
    /// This instance's `sip.path`, stamped on the bindings it makes; a
    /// binding with another path is held by another instance of the
    /// deployment, which alone writes (and deletes) its row.
    path: Option<String>,
}

/// `user@domain` with the domain lowercased; `None` when either is empty.
pub(crate) fn normalize_aor(aor: &str) -> Option<String> {
    let (user, domain) = aor.trim().rsplit_once('@')?;
    if user.is_empty() || domain.is_empty() {
        return None;
    }
    Some(format!("{user}@{}", domain.to_ascii_lowercase()))
}

/// Most preferred first; equal q by contact text, so the order does not
/// depend on insertion (a reloaded registrar lists the same way).
fn sort(list: &mut [Binding]) {
    list.sort_by(|a, b| {
        b.q.unwrap_or(Q::MAX)
            .cmp(&a.q.unwrap_or(Q::MAX))
            .then_with(|| a.contact.cmp(&b.contact))
    });
}

impl Bindings {
    /// An empty location service.
    pub fn new(policy: Policy) -> Bindings {
        Bindings {
            policy: policy.normalized(),
            ..Bindings::default()
        }
    }

    /// The location service as the store left it. Expired bindings are
    /// dropped with a delete record each; duplicates (same address of
    /// record and key) keep the last.
    pub fn restore(
        policy: Policy,
        stored: impl IntoIterator<Item = Binding>,
        now_unix: u64,
    ) -> (Bindings, Vec<Persist>) {
        let mut b = Bindings::new(policy);
        let mut changes = Vec::new();
        for binding in stored {
            let Some(aor) = normalize_aor(&binding.aor) else {
                changes.push(Persist::DeleteBinding {
                    key: binding.key(),
                    aor: binding.aor,
                });
                continue;
            };
            if binding.expires_at <= now_unix {
                changes.push(Persist::DeleteBinding {
                    key: binding.key(),
                    aor: binding.aor,
                });
                continue;
            }
            b.put(Binding { aor, ..binding });
        }
        (b, changes)
    }

    /// Sets this instance's `sip.path` (at start and reload).
    pub fn set_path(&mut self, path: Option<String>) {
        self.path = path;
    }

    /// This instance's `sip.path`.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// Whether another instance of the deployment holds `binding`'s flow.
    pub fn is_foreign(&self, binding: &Binding) -> bool {
        binding
            .path
            .as_deref()
            .is_some_and(|p| self.is_foreign_path(p))
    }

    /// Whether `path` is another instance's.
    pub fn is_foreign_path(&self, path: &str) -> bool {
        self.path.as_deref() != Some(path)
    }

    /// Takes what the store now holds for `aor` (another instance changed
    /// it): the rows other instances hold replace what was known of
    /// them, and a row of another instance replaces one of ours with its
    /// key (the device registered there since). Our own bindings are
    /// ours to know: a row of ours is not read back (a newer change may
    /// still be on its way to the store). No `Persist` record: the
    /// owner writes its rows.
    pub fn merge_stored(&mut self, aor: &str, rows: Vec<Binding>, now_unix: u64) {
        let Some(aor) = normalize_aor(aor) else {
            return;
        };
        let stale: Vec<String> = self
            .by_aor
            .get(&aor)
            .into_iter()
            .flatten()
            .filter(|b| self.is_foreign(b))
            .map(Binding::key)
            .collect();
        for key in stale {
            self.take(&aor, &key);
        }
        for row in rows {
            if row.expires_at <= now_unix || !self.is_foreign(&row) {
                continue;
            }
            if normalize_aor(&row.aor).as_deref() != Some(aor.as_str()) {
                continue;
            }
            self.put(Binding {
                aor: aor.clone(),
                ..row
            });
        }
    }

    /// [`Bindings::merge_stored`] for every address of record: `rows` is
    /// all the store holds, so another instance's binding not in it is
    /// gone.
    pub fn merge_all_stored(&mut self, rows: Vec<Binding>, now_unix: u64) {
        let mut by_aor: HashMap<String, Vec<Binding>> = HashMap::new();
        for (aor, list) in &self.by_aor {
            if list.iter().any(|b| self.is_foreign(b)) {
                by_aor.entry(aor.clone()).or_default();
            }
        }
        for row in rows {
            if let Some(aor) = normalize_aor(&row.aor) {
                by_aor.entry(aor).or_default().push(row);
            }
        }
        for (aor, rows) in by_aor {
            self.merge_stored(&aor, rows, now_unix);
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// How many bindings exist, expired ones not yet collected included.
    pub fn len(&self) -> usize {
        self.by_expiry.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_expiry.is_empty()
    }

    /// The live contacts of `aor`, most preferred first: where to deliver.
    pub fn lookup(&self, aor: &str, now_unix: u64) -> Vec<Binding> {
        let Some(aor) = normalize_aor(aor) else {
            return Vec::new();
        };
        let mut list: Vec<Binding> = self
            .by_aor
            .get(&aor)
            .into_iter()
            .flatten()
            .filter(|b| b.expires_at > now_unix)
            .cloned()
            .collect();
        sort(&mut list);
        list
    }

    /// Whether `aor` has a live binding to `contact` (as registered).
    pub fn is_live(&self, aor: &str, contact: &str, now_unix: u64) -> bool {
        normalize_aor(aor)
            .and_then(|aor| self.by_aor.get(&aor))
            .is_some_and(|list| {
                list.iter()
                    .any(|b| b.contact == contact && b.expires_at > now_unix)
            })
    }

    /// Every binding (expired ones not yet collected included), in no
    /// particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.by_aor.values().flatten()
    }

    /// When the next binding expires (unix seconds): call [`expire`] then.
    ///
    /// [`expire`]: Bindings::expire
    pub fn next_expiry(&self) -> Option<u64> {
        self.by_expiry.first().map(|(t, _, _)| *t)
    }

    /// Removes every binding of `aor` (its account is gone).
    pub fn remove_aor(&mut self, aor: &str) -> Vec<Persist> {
        let keys: Vec<String> = self
            .by_aor
            .get(aor)
            .into_iter()
            .flatten()
            .map(Binding::key)
            .collect();
        keys.into_iter()
            .filter_map(|key| {
                self.take(aor, &key)?;
                Some(Persist::DeleteBinding {
                    aor: aor.to_owned(),
                    key,
                })
            })
            .collect()
    }

    /// Removes every binding expired at `now_unix`; the rows of ours go
    /// from the store too (another instance's are its to delete: it may
    /// have refreshed one we have not heard of yet).
    pub fn expire(&mut self, now_unix: u64) -> Vec<Persist> {
        let mut changes = Vec::new();
        while let Some((t, _, _)) = self.by_expiry.first() {
            if *t > now_unix {
                break;
            }
            let Some((_, aor, key)) = self.by_expiry.pop_first() else {
                break;
            };
            let foreign = self.take(&aor, &key).is_some_and(|b| self.is_foreign(&b));
            if !foreign {
                changes.push(Persist::DeleteBinding { aor, key });
            }
        }
        changes
    }

    /// Inserts or replaces by (aor, key), keeping the index in step.
    fn put(&mut self, binding: Binding) {
        let key = binding.key();
        self.take(&binding.aor, &key);
        self.by_expiry
            .insert((binding.expires_at, binding.aor.clone(), key));
        self.by_aor
            .entry(binding.aor.clone())
            .or_default()
            .push(binding);
    }

    /// Removes by (aor, key), keeping the index in step.
    fn take(&mut self, aor: &str, key: &str) -> Option<Binding> {
        let list = self.by_aor.get_mut(aor)?;
        let at = list.iter().position(|b| b.key() == key)?;
        let old = list.swap_remove(at);
        if list.is_empty() {
            self.by_aor.remove(aor);
        }
        self.by_expiry
            .remove(&(old.expires_at, old.aor.clone(), key.to_string()));
        Some(old)
    }

    /// Processes a REGISTER for `aor` (the To URI's `user@domain`, already
    /// authorized) at `now_unix`, per RFC 3261 section 10.3:
    ///
    /// - no Contact: a query, answered with the current bindings;
    /// - `*`: valid only alone and with `Expires: 0`, removes every binding;
    /// - each contact's duration is its `expires`, else the Expires header,
    ///   else the default; 0 removes, below the minimum gets 423, above the
    ///   maximum is shortened;
    /// - an existing binding with the same Call-ID and a CSeq not lower
    ///   than the request's makes the whole request fail (500): it is an
    ///   out-of-order or replayed request;
    /// - all or nothing: a refused request changes nothing.
    ///
    /// Expired bindings of the address of record are collected on success.
    pub fn register(
        &mut self,
        aor: &str,
        req: &RegisterRequest,
        now_unix: u64,
    ) -> Result<RegisterOutcome, RegisterError> {
        let aor = normalize_aor(aor).ok_or(RegisterError::new(400, "Invalid Address of Record"))?;
        if req.call_id.trim().is_empty() {
            return Err(RegisterError::new(400, "Missing Call-ID"));
        }
        // RFC 3261 section 8.1.1.5: CSeq is below 2^31.
        if req.cseq >= 1 << 31 {
            return Err(RegisterError::new(400, "Invalid CSeq"));
        }
        let live: Vec<&Binding> = self
            .by_aor
            .get(&aor)
            .into_iter()
            .flatten()
            .filter(|b| b.expires_at > now_unix)
            .collect();
        let out_of_order = |b: &Binding| b.call_id == req.call_id && req.cseq <= b.cseq;

        // Planned changes by key, later contacts overriding earlier ones:
        // None removes, Some adds or refreshes.
        let mut plan: Vec<(String, Option<Binding>)> = Vec::new();
        if req.star {
            if !req.contacts.is_empty() || req.expires_header != Some(0) {
                return Err(RegisterError::new(400, "Invalid Request"));
            }
            if live.iter().any(|b| out_of_order(b)) {
                return Err(RegisterError::new(500, "Out of Order Request"));
            }
            plan.extend(live.iter().map(|b| (b.key(), None)));
        }
        for c in &req.contacts {
            let uri = c.uri.trim();
            if uri.is_empty() {
                return Err(RegisterError::new(400, "Invalid Contact"));
            }
            let q = match c.q {
                None => None,
                Some(q) => Some(Q::from_f32(q).ok_or(RegisterError::new(400, "Invalid q Value"))?),
            };
            let expires = c
                .expires
                .or(req.expires_header)
                .unwrap_or(self.policy.default_expires);
            if expires != 0 && expires < self.policy.min_expires {
                return Err(RegisterError {
                    min_expires: Some(self.policy.min_expires),
                    ..RegisterError::new(423, "Interval Too Brief")
                });
            }
            let key = binding_key(uri, c.instance.as_deref(), c.reg_id);
            if live.iter().any(|b| b.key() == key && out_of_order(b)) {
                return Err(RegisterError::new(500, "Out of Order Request"));
            }
            let binding = (expires != 0).then(|| Binding {
                aor: aor.clone(),
                contact: uri.to_string(),
                expires_at: now_unix
                    .saturating_add(u64::from(expires.min(self.policy.max_expires))),
                q,
                call_id: req.call_id.clone(),
                cseq: req.cseq,
                instance: c.instance.clone(),
                reg_id: c.reg_id,
                path: self.path.clone(),
            });
            plan.retain(|(k, _)| *k != key);
            plan.push((key, binding));
        }

        // The limit applies to the result, so a device that removes one
        // contact and adds another stays within it.
        let mut keys: BTreeSet<String> = live.iter().map(|b| b.key()).collect();
        for (key, b) in &plan {
            if b.is_some() {
                keys.insert(key.clone());
            } else {
                keys.remove(key);
            }
        }
        if keys.len() > self.policy.max_contacts {
            return Err(RegisterError::new(403, "Too Many Registered Contacts"));
        }

        // Commit.
        let live_keys: BTreeSet<String> = live.iter().map(|b| b.key()).collect();
        let mut changes = Vec::new();
        let expired: Vec<String> = self
            .by_aor
            .get(&aor)
            .into_iter()
            .flatten()
            .filter(|b| b.expires_at <= now_unix)
            .map(Binding::key)
            .collect();
        for key in expired {
            self.take(&aor, &key);
            changes.push(Persist::DeleteBinding {
                aor: aor.clone(),
                key,
            });
        }
        for (key, binding) in plan {
            match binding {
                None => {
                    if self.take(&aor, &key).is_some() {
                        changes.push(Persist::DeleteBinding {
                            aor: aor.clone(),
                            key,
                        });
                    }
                }
                Some(b) => {
                    changes.push(if live_keys.contains(&key) {
                        Persist::UpdateBinding(b.clone())
                    } else {
                        Persist::InsertBinding(b.clone())
                    });
                    self.put(b);
                }
            }
        }
        Ok(RegisterOutcome {
            bindings: self.lookup(&aor, now_unix),
            changes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_ordered() {
        let p = Policy {
            min_expires: 100,
            default_expires: 10,
            max_expires: 50,
            max_contacts: 1,
        }
        .normalized();
        assert!(p.min_expires <= p.default_expires && p.default_expires <= p.max_expires);
    }

    #[test]
    fn expiry_index_follows_refreshes() {
        let mut b = Bindings::new(Policy::default());
        let req = |cseq, expires| RegisterRequest {
            call_id: "c".into(),
            cseq,
            contacts: vec![ContactParam {
                uri: "sip:a@192.0.2.1".into(),
                expires: Some(expires),
                ..Default::default()
            }],
            ..Default::default()
        };
        b.register("a@x", &req(1, 100), 0).unwrap();
        assert_eq!(b.next_expiry(), Some(100));
        b.register("a@x", &req(2, 300), 50).unwrap();
        assert_eq!(b.next_expiry(), Some(350));
        assert_eq!(b.len(), 1);
        assert!(b.expire(349).is_empty());
        assert_eq!(b.expire(350).len(), 1);
        assert!(b.is_empty());
        assert_eq!(b.next_expiry(), None);
    }

    /// A binding of `a@x` to `contact` held by the instance at `path`.
    fn held(contact: &str, path: Option<&str>, expires_at: u64) -> Binding {
        Binding {
            aor: "a@x".into(),
            contact: contact.into(),
            expires_at,
            q: None,
            call_id: "c".into(),
            cseq: 1,
            instance: None,
            reg_id: None,
            path: path.map(str::to_owned),
        }
    }

    #[test]
    fn other_instances_bindings_come_from_the_store_and_are_theirs_to_delete() {
        const ME: &str = "sip:10.0.0.1:5060;transport=tcp";
        const OTHER: &str = "sip:10.0.0.2:5060;transport=tcp";
        let mut b = Bindings::new(Policy::default());
        b.set_path(Some(ME.into()));
        let req = |uri: &str, cseq| RegisterRequest {
            call_id: "c".into(),
            cseq,
            contacts: vec![ContactParam {
                uri: uri.into(),
                expires: Some(100),
                ..Default::default()
            }],
            ..Default::default()
        };
        // Ours carries our path.
        let ours = b.register("a@x", &req("sip:a@192.0.2.1", 1), 0).unwrap();
        assert_eq!(ours.bindings[0].path.as_deref(), Some(ME));
        // The store's rows: ours (not read back: ours is newer here), and
        // one of the other instance's.
        let theirs = held("sip:a@192.0.2.2", Some(OTHER), 200);
        b.merge_stored(
            "a@x",
            vec![held("sip:a@192.0.2.1", Some(ME), 1), theirs.clone()],
            0,
        );
        let live = b.lookup("a@x", 0);
        assert_eq!(live.len(), 2, "{live:?}");
        assert_eq!(live[0].expires_at, 100, "ours as we know it");
        assert!(b.is_foreign(&live[1]) && !b.is_foreign(&live[0]));
        // Theirs expires here without a delete: the owner may have
        // refreshed it; ours is deleted.
        let deletes = b.expire(150);
        assert_eq!(deletes.len(), 1, "{deletes:?}");
        b.merge_stored("a@x", vec![theirs.clone()], 0);
        assert!(b.expire(250).is_empty());
        // The device moves here: our binding replaces theirs, and their
        // row of it is not taken back.
        b.merge_stored("a@x", vec![held("sip:a@192.0.2.2", Some(OTHER), 300)], 260);
        let moved = b.register("a@x", &req("sip:a@192.0.2.2", 2), 260).unwrap();
        assert_eq!(moved.bindings.len(), 1);
        assert_eq!(moved.bindings[0].path.as_deref(), Some(ME));
        // Another instance's rows gone from the store are gone here; the
        // whole store read afresh forgets them too.
        b.merge_stored("a@x", vec![held("sip:a@192.0.2.3", Some(OTHER), 400)], 260);
        assert_eq!(b.lookup("a@x", 260).len(), 2);
        b.merge_stored("a@x", Vec::new(), 260);
        assert_eq!(b.lookup("a@x", 260).len(), 1);
        b.merge_all_stored(vec![held("sip:a@192.0.2.3", Some(OTHER), 400)], 260);
        assert_eq!(b.lookup("a@x", 260).len(), 2);
        b.merge_all_stored(Vec::new(), 260);
        assert_eq!(b.lookup("a@x", 260).len(), 1);
        // Without a path of our own, every binding with one is another's.
        let mut alone = Bindings::new(Policy::default());
        alone.merge_stored("a@x", vec![theirs], 0);
        assert_eq!(alone.lookup("a@x", 0).len(), 1);
    }
}
