//! What xfed persists, behind an interface a PostgreSQL backend can
//! implement later.
//!
//! The core never calls a store: it keeps the state it needs in memory and
//! emits [`Persist`] records describing each change; the host applies
//! them with [`Store::apply`] (blocking, on the gateway's task, in the
//! order they came) and loads everything back at start. The in-memory [`MemoryStore`] is the
//! reference behaviour; `host::store_sqlite::SqliteStore` must match it
//! (`core/tests/store.rs` runs one suite against both).
//!
//! The persisted records ([`Binding`], [`Contacted`], [`StoredPublication`],
//! [`StoredAuthorization`], [`StoredDialog`]) are defined here, below the modules that produce them (`registrar`,
//! `endpoint`), so that the store depends on none of them.

use std::collections::BTreeMap;
use std::fmt;

/// A q-value (RFC 3261 section 20.10), kept in thousandths so that it is
/// exact, ordered and stored as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Q(u16);

impl Q {
    /// The highest preference, assumed for contacts without `q`.
    pub const MAX: Q = Q(1000);

    /// From the parsed parameter; `None` outside 0..=1 or not a number.
    pub fn from_f32(q: f32) -> Option<Q> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        // In range, so the cast cannot truncate.
        Some(Q((q * 1000.0).round() as u16))
    }

    /// From thousandths; `None` above 1000.
    pub fn from_millis(millis: u16) -> Option<Q> {
        (millis <= 1000).then_some(Q(millis))
    }

    /// The value in thousandths.
    pub fn millis(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Q {
    /// The shortest `qvalue` form: `1`, `0`, `0.5`, `0.125`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1000 => f.write_str("1"),
            0 => f.write_str("0"),
            m => {
                let digits = format!("{m:03}");
                write!(f, "0.{}", digits.trim_end_matches('0'))
            }
        }
    }
}

/// One contact of an address of record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `user@domain`, domain lowercase.
    pub aor: String,
    /// The contact URI as registered (without angle brackets or header
    /// parameters).
    pub contact: String,
    /// When it expires, in unix seconds.
    pub expires_at: u64,
    /// Its `q`, if given.
    pub q: Option<Q>,
    /// The Call-ID of the REGISTER that last set it.
    pub call_id: String,
    /// That REGISTER's CSeq number, for ordering (RFC 3261 section 10.3 step 7).
    pub cseq: u32,
    /// `+sip.instance` (RFC 5626/5627), as given.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626).
    pub reg_id: Option<u32>,
    /// The instance of the deployment that holds the user agent's flow,
    /// as that instance's `sip.path` URI (RFC 3327 Path): the others
    /// forward there. `None`: made by an instance without one (alone).
    pub path: Option<String>,
}

impl Binding {
    /// What identifies the binding within its address of record, and in
    /// the store: the instance (with `reg-id`) when there is one, since a
    /// device keeps it across address changes (RFC 5626 section 6), else
    /// the contact URI compared loosely (see `contact_key`).
    pub fn key(&self) -> String {
        binding_key(&self.contact, self.instance.as_deref(), self.reg_id)
    }

    /// Seconds left at `now_unix`, for the `expires` parameter of the 200 OK.
    pub fn expires_in(&self, now_unix: u64) -> u32 {
        u32::try_from(self.expires_at.saturating_sub(now_unix)).unwrap_or(u32::MAX)
    }
}

pub(crate) fn binding_key(contact: &str, instance: Option<&str>, reg_id: Option<u32>) -> String {
    match (instance, reg_id) {
        (Some(i), Some(r)) => format!("instance:{i};reg-id={r}"),
        (Some(i), None) => format!("instance:{i}"),
        (None, _) => format!("uri:{}", contact_key(contact)),
    }
}

/// A contact URI in a form where URIs RFC 3261 section 19.1.4 calls equal
/// mostly compare equal: scheme and host lowercased, user part and
/// parameters kept as written. It is not the full section 19.1.4
/// comparison (`sip::Uri` has none: its equality is structural), so two
/// spellings of one URI can make two bindings, which only costs a
/// duplicate delivery until one expires.
fn contact_key(uri: &str) -> String {
    let uri = uri.trim();
    let Some((scheme, rest)) = uri.split_once(':') else {
        return uri.to_ascii_lowercase();
    };
    // The user part may hold ';' and '?', but never '@' unescaped, and
    // parameters and headers hold no '@' either: the last '@' ends it.
    let (user, host_and_more) = match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    };
    let host_end = host_and_more
        .find([';', '?'])
        .unwrap_or(host_and_more.len());
    format!(
        "{}:{}{}{}",
        scheme.to_ascii_lowercase(),
        user,
        host_and_more[..host_end].to_ascii_lowercase(),
        &host_and_more[host_end..]
    )
}

/// One device's presence publication (RFC 3903) as the store keeps it:
/// the body as received, parsed again at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPublication {
    /// The publishing user, `user@domain`, domain lowercase.
    pub aor: String,
    /// Its current entity-tag (unique within the user).
    pub etag: String,
    /// When it expires, unix seconds.
    pub expires_at: u64,
    /// When its document was last set, unix seconds.
    pub published_at: u64,
    /// The document (PIDF) as published.
    pub body: Vec<u8>,
    /// The instance of the deployment that took the PUBLISH (its
    /// `sip.path`): it alone tells the watchers of changes and expiry.
    /// `None`: an instance alone.
    pub path: Option<String>,
}

/// A remote XMPP user's presence authorization for a local user (RFC
/// 6121's subscription "from" the local user's side, RFC 8048's presence
/// authorization): approved, or pending until the local user invites them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuthorization {
    /// The local user watched, `user@domain`.
    pub local_user: String,
    /// The watcher's bare JID, prepared.
    pub remote_jid: String,
    /// Approved (`true`) or still pending (`false`).
    pub approved: bool,
    /// When it was asked for or last changed state, unix seconds.
    pub since: u64,
}

/// Which side of a SIP subscription dialog xfed is, as the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedSide {
    /// A SIP user subscribed to an XMPP address through xfed; xfed sends
    /// the NOTIFYs.
    Notifier,
    /// xfed subscribed (for an XMPP watcher); it receives the NOTIFYs and
    /// refreshes with this Expires.
    Subscriber {
        /// The Expires xfed asks for in each refresh.
        interval: u32,
    },
}

/// A SIP subscription dialog (RFC 6665) as the store keeps it: enough to
/// go on in the same dialog after a restart. `sip::SubscriptionTable`
/// makes and takes these; times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedDialog {
    /// Call-ID; with `local_tag`, the record's key.
    pub call_id: String,
    /// xfed's tag.
    pub local_tag: String,
    /// The peer's tag (empty only for a subscriber dialog no answer
    /// confirmed, which is never saved).
    pub remote_tag: String,
    /// Notifier or subscriber.
    pub side: SavedSide,
    /// The remote target (the peer's Contact).
    pub target: String,
    /// The route set, as one Route header value (may be empty).
    pub route: String,
    /// The local URI (From of our requests).
    pub local_uri: String,
    /// The remote URI (To of our requests).
    pub remote_uri: String,
    /// The Event header value.
    pub event: String,
    /// xfed's last CSeq when saved. NOTIFYs reporting changes are not
    /// saved one by one: restoring adds one per
    /// `min_notify_interval` elapsed since `saved_at`, which no sequence
    /// sent in between can exceed.
    pub local_cseq: u32,
    /// The peer's last CSeq.
    pub remote_cseq: u32,
    /// Authorized (notifier) or accepted (subscriber).
    pub active: bool,
    /// When it expires unless refreshed.
    pub expires_at: u64,
    /// When this record was made.
    pub saved_at: u64,
}

/// A subscription dialog and what it serves: the local user and the
/// remote XMPP address at its two ends (the user watching a contact, or
/// the user an XMPP contact watches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDialog {
    /// The local user, `user@domain`.
    pub local_user: String,
    /// The remote bare JID.
    pub remote_jid: String,
    /// The dialog.
    pub dialog: SavedDialog,
}

/// One change to persist. Applying a sequence is idempotent and tolerant of
/// a previous partial run: inserts and updates both write the whole record
/// (an update of a missing record creates it), deletes of missing records
/// do nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// A new registrar binding.
    InsertBinding(Binding),
    /// A refreshed or changed binding, identified by (aor, [`Binding::key`]).
    UpdateBinding(Binding),
    /// A binding removed or expired.
    DeleteBinding {
        /// Its address of record.
        aor: String,
        /// Its [`Binding::key`].
        key: String,
    },
    /// `local_user` addressed `remote_jid` at `at_unix`: what lets a
    /// `public-unverified` partner's user reach them afterwards (DESIGN.md
    /// section 4). The first and last times are kept.
    RememberContact {
        /// The local address, `user@domain`.
        local_user: String,
        /// The remote bare JID, prepared.
        remote_jid: String,
        /// When, in unix seconds.
        at_unix: u64,
    },
    /// Forgets a remembered contact (the user removed it).
    ForgetContact {
        /// The local address.
        local_user: String,
        /// The remote bare JID.
        remote_jid: String,
    },
    /// A presence publication made or renewed, identified by (aor, etag);
    /// writes the whole record.
    PutPublication(StoredPublication),
    /// A publication removed, replaced under a new entity-tag, or expired.
    DeletePublication {
        /// The publishing user.
        aor: String,
        /// Its entity-tag.
        etag: String,
    },
    /// A presence authorization asked for, approved or restored, identified
    /// by (local user, remote JID); writes the whole record.
    PutAuthorization(StoredAuthorization),
    /// A presence authorization removed (the watcher unsubscribed).
    DeleteAuthorization {
        /// The local user watched.
        local_user: String,
        /// The watcher's bare JID.
        remote_jid: String,
    },
    /// A subscription dialog made, refreshed or changed state, identified
    /// by (Call-ID, local tag); writes the whole record.
    PutDialog(StoredDialog),
    /// A subscription dialog ended.
    DeleteDialog {
        /// Its Call-ID.
        call_id: String,
        /// xfed's tag.
        local_tag: String,
    },
}

/// A remembered contact between a local user and a remote JID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contacted {
    /// The local address, `user@domain`.
    pub local_user: String,
    /// The remote bare JID.
    pub remote_jid: String,
    /// The earliest time recorded, unix seconds.
    pub first_at: u64,
    /// The latest time recorded, unix seconds.
    pub last_at: u64,
}

impl Contacted {
    /// Merges one more sighting; min and max make the result independent of
    /// the order sightings are applied in.
    fn seen(&mut self, at_unix: u64) {
        self.first_at = self.first_at.min(at_unix);
        self.last_at = self.last_at.max(at_unix);
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The back end failed (I/O, locking, SQL).
    Backend(String),
    /// Stored data cannot be read back (a value out of range, ...).
    Corrupt(String),
    /// The database was written by a newer xfed.
    SchemaTooNew {
        /// The version found.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// A value cannot be stored (e.g. a time beyond the back end's range).
    Invalid(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Backend(m) => write!(f, "store: {m}"),
            StoreError::Corrupt(m) => write!(f, "store holds unreadable data: {m}"),
            StoreError::SchemaTooNew { found, supported } => write!(
                f,
                "store schema version {found} is newer than this xfed supports ({supported})"
            ),
            StoreError::Invalid(m) => write!(f, "value cannot be stored: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// What the shared store (PostgreSQL, several instances) holds of one
/// user's rows in one table, read after another instance wrote them; a
/// `None` user is every row of the table (read afresh after the store was
/// away). The presence dialogs are not shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shared {
    /// Registrar bindings, by address of record.
    Bindings(Option<String>, Vec<Binding>),
    /// Presence publications, by address of record.
    Publications(Option<String>, Vec<StoredPublication>),
    /// Presence authorizations, by local user.
    Authorizations(Option<String>, Vec<StoredAuthorization>),
    /// Remembered first contacts (who a local user wrote to), by local
    /// user.
    Contacts(Option<String>, Vec<Contacted>),
}

/// The tables a [`Persist`] record writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Registrar bindings.
    Bindings,
    /// Remembered first contacts.
    Contacts,
    /// Presence publications.
    Publications,
    /// Presence authorizations.
    Authorizations,
    /// SIP subscription dialogs.
    Dialogs,
}

impl Persist {
    /// The row it writes: its table and primary key, whose first part is
    /// the user (the dialog's Call-ID for a dialog).
    pub fn row(&self) -> (Table, &str, std::borrow::Cow<'_, str>) {
        use std::borrow::Cow::Borrowed;
        match self {
            Persist::InsertBinding(b) | Persist::UpdateBinding(b) => {
                (Table::Bindings, &b.aor, b.key().into())
            }
            Persist::DeleteBinding { aor, key } => (Table::Bindings, aor, Borrowed(key)),
            Persist::RememberContact {
                local_user,
                remote_jid,
                ..
            }
            | Persist::ForgetContact {
                local_user,
                remote_jid,
            } => (Table::Contacts, local_user, Borrowed(remote_jid)),
            Persist::PutPublication(p) => (Table::Publications, &p.aor, Borrowed(&p.etag)),
            Persist::DeletePublication { aor, etag } => (Table::Publications, aor, Borrowed(etag)),
            Persist::PutAuthorization(a) => (
                Table::Authorizations,
                &a.local_user,
                Borrowed(&a.remote_jid),
            ),
            Persist::DeleteAuthorization {
                local_user,
                remote_jid,
            } => (Table::Authorizations, local_user, Borrowed(remote_jid)),
            Persist::PutDialog(d) => (
                Table::Dialogs,
                &d.dialog.call_id,
                Borrowed(&d.dialog.local_tag),
            ),
            Persist::DeleteDialog { call_id, local_tag } => {
                (Table::Dialogs, call_id, Borrowed(local_tag))
            }
        }
    }
}

impl Shared {
    /// The notification that `change` makes for the other instances: the
    /// table's letter (`b`, `p`, `a`, `c`), `:`, and the user. `None` for
    /// a table not shared.
    pub fn key(change: &Persist) -> Option<String> {
        let (table, user, _) = change.row();
        let letter = match table {
            Table::Bindings => 'b',
            Table::Publications => 'p',
            Table::Authorizations => 'a',
            Table::Contacts => 'c',
            Table::Dialogs => return None,
        };
        Some(format!("{letter}:{user}"))
    }

    /// A notification's table letter and user, as [`Shared::key`] made it.
    pub fn parse_key(key: &str) -> Option<(char, &str)> {
        let (table, user) = key.split_once(':')?;
        let mut letters = table.chars();
        let letter = letters.next().filter(|_| letters.next().is_none())?;
        matches!(letter, 'b' | 'p' | 'a' | 'c').then_some((letter, user))
    }
}

/// The largest time a store accepts: SQL integers are signed 64-bit, and
/// every back end must refuse the same values (the memory store too).
pub const MAX_TIME: u64 = i64::MAX as u64;

/// A time or count as the SQL back ends keep it (a signed 64-bit
/// integer); beyond it is refused, not wrapped.
#[cfg(feature = "host")]
pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{what} {v} is beyond 2^63")))
}

/// A stored integer read back as unsigned; a negative one is corrupt.
#[cfg(feature = "host")]
pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {what} {v}")))
}

/// Refuses a batch holding a time beyond [`MAX_TIME`], before anything is
/// applied.
pub(crate) fn check_times(changes: &[Persist]) -> Result<(), StoreError> {
    for change in changes {
        let t = match change {
            Persist::InsertBinding(b) | Persist::UpdateBinding(b) => b.expires_at,
            Persist::RememberContact { at_unix, .. } => *at_unix,
            Persist::PutPublication(p) => p.expires_at.max(p.published_at),
            Persist::PutAuthorization(a) => a.since,
            Persist::PutDialog(d) => d.dialog.expires_at.max(d.dialog.saved_at),
            Persist::DeleteAuthorization { .. }
            | Persist::DeleteBinding { .. }
            | Persist::ForgetContact { .. }
            | Persist::DeletePublication { .. }
            | Persist::DeleteDialog { .. } => continue,
        };
        if t > MAX_TIME {
            return Err(StoreError::Invalid(format!("time {t} is beyond 2^63")));
        }
    }
    Ok(())
}

/// A persistent store. Blocking: runtimes call it from a blocking task.
/// `apply` is atomic: either every record of the slice is applied or none.
pub trait Store: Send {
    /// Every stored binding, in no particular order.
    fn load_bindings(&mut self) -> Result<Vec<Binding>, StoreError>;

    /// Every remembered contact, in no particular order.
    fn load_contacts(&mut self) -> Result<Vec<Contacted>, StoreError>;

    /// Every stored presence publication, in no particular order.
    fn load_publications(&mut self) -> Result<Vec<StoredPublication>, StoreError>;
    /// Every presence authorization, approved or pending, in no particular
    /// order.
    fn load_authorizations(&mut self) -> Result<Vec<StoredAuthorization>, StoreError>;
    /// Every subscription dialog, in no particular order.
    fn load_dialogs(&mut self) -> Result<Vec<StoredDialog>, StoreError>;

    /// Everything, for `Gateway::new` at start.
    fn load_all(&mut self) -> Result<Stored, StoreError> {
        Ok(Stored {
            bindings: self.load_bindings()?,
            contacts: self.load_contacts()?,
            publications: self.load_publications()?,
            authorizations: self.load_authorizations()?,
            dialogs: self.load_dialogs()?,
        })
    }

    /// Applies `changes` in order, all or nothing.
    fn apply(&mut self, changes: &[Persist]) -> Result<(), StoreError>;

    /// The remembered contact between `local_user` and `remote_jid`, if any.
    fn has_contacted(
        &mut self,
        local_user: &str,
        remote_jid: &str,
    ) -> Result<Option<Contacted>, StoreError>;

    /// Records that `local_user` addressed `remote_jid` at `at_unix`.
    fn remember_contact(
        &mut self,
        local_user: &str,
        remote_jid: &str,
        at_unix: u64,
    ) -> Result<(), StoreError> {
        self.apply(&[Persist::RememberContact {
            local_user: local_user.to_string(),
            remote_jid: remote_jid.to_string(),
            at_unix,
        }])
    }
}

/// The in-memory store: for tests, and the reference behaviour.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    bindings: BTreeMap<(String, String), Binding>,
    contacts: BTreeMap<(String, String), Contacted>,
    publications: BTreeMap<(String, String), StoredPublication>,
    authorizations: BTreeMap<(String, String), StoredAuthorization>,
    dialogs: BTreeMap<(String, String), StoredDialog>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl Store for MemoryStore {
    fn load_bindings(&mut self) -> Result<Vec<Binding>, StoreError> {
        Ok(self.bindings.values().cloned().collect())
    }

    fn load_contacts(&mut self) -> Result<Vec<Contacted>, StoreError> {
        Ok(self.contacts.values().cloned().collect())
    }

    fn load_publications(&mut self) -> Result<Vec<StoredPublication>, StoreError> {
        Ok(self.publications.values().cloned().collect())
    }

    fn load_authorizations(&mut self) -> Result<Vec<StoredAuthorization>, StoreError> {
        Ok(self.authorizations.values().cloned().collect())
    }

    fn load_dialogs(&mut self) -> Result<Vec<StoredDialog>, StoreError> {
        Ok(self.dialogs.values().cloned().collect())
    }

    fn apply(&mut self, changes: &[Persist]) -> Result<(), StoreError> {
        // Past this check nothing can fail, so all-or-nothing holds.
        check_times(changes)?;
        for change in changes {
            match change {
                Persist::InsertBinding(b) | Persist::UpdateBinding(b) => {
                    self.bindings.insert((b.aor.clone(), b.key()), b.clone());
                }
                Persist::DeleteBinding { aor, key } => {
                    self.bindings.remove(&(aor.clone(), key.clone()));
                }
                Persist::RememberContact {
                    local_user,
                    remote_jid,
                    at_unix,
                } => {
                    self.contacts
                        .entry((local_user.clone(), remote_jid.clone()))
                        .and_modify(|c| c.seen(*at_unix))
                        .or_insert_with(|| Contacted {
                            local_user: local_user.clone(),
                            remote_jid: remote_jid.clone(),
                            first_at: *at_unix,
                            last_at: *at_unix,
                        });
                }
                Persist::ForgetContact {
                    local_user,
                    remote_jid,
                } => {
                    self.contacts
                        .remove(&(local_user.clone(), remote_jid.clone()));
                }
                Persist::PutPublication(p) => {
                    self.publications
                        .insert((p.aor.clone(), p.etag.clone()), p.clone());
                }
                Persist::DeletePublication { aor, etag } => {
                    self.publications.remove(&(aor.clone(), etag.clone()));
                }
                Persist::PutAuthorization(a) => {
                    let key = (a.local_user.clone(), a.remote_jid.clone());
                    self.authorizations.insert(key, a.clone());
                }
                Persist::DeleteAuthorization {
                    local_user,
                    remote_jid,
                } => {
                    self.authorizations
                        .remove(&(local_user.clone(), remote_jid.clone()));
                }
                Persist::PutDialog(d) => {
                    let key = (d.dialog.call_id.clone(), d.dialog.local_tag.clone());
                    self.dialogs.insert(key, d.clone());
                }
                Persist::DeleteDialog { call_id, local_tag } => {
                    self.dialogs.remove(&(call_id.clone(), local_tag.clone()));
                }
            }
        }
        Ok(())
    }

    fn has_contacted(
        &mut self,
        local_user: &str,
        remote_jid: &str,
    ) -> Result<Option<Contacted>, StoreError> {
        Ok(self
            .contacts
            .get(&(local_user.to_string(), remote_jid.to_string()))
            .cloned())
    }
}

/// Everything the store kept, loaded at start and handed to
/// `Gateway::new` in its `Setup`.
#[derive(Debug, Default)]
pub struct Stored {
    /// Registrar bindings.
    pub bindings: Vec<Binding>,
    /// Remembered contacts of local users.
    pub contacts: Vec<Contacted>,
    /// Presence publications of local users' devices.
    pub publications: Vec<StoredPublication>,
    /// Remote watchers' presence authorizations.
    pub authorizations: Vec<StoredAuthorization>,
    /// SIP subscription dialogs, both roles.
    pub dialogs: Vec<StoredDialog>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values() {
        assert_eq!(Q::from_f32(0.5).unwrap().to_string(), "0.5");
        assert_eq!(Q::from_f32(1.0).unwrap().to_string(), "1");
        assert_eq!(Q::from_f32(0.0).unwrap().to_string(), "0");
        assert_eq!(Q::from_f32(0.125).unwrap().to_string(), "0.125");
        assert_eq!(Q::from_f32(0.07).unwrap().to_string(), "0.07");
        assert_eq!(Q::from_f32(0.7).unwrap().millis(), 700);
        assert_eq!(Q::from_f32(1.5), None);
        assert_eq!(Q::from_f32(-0.1), None);
        assert_eq!(Q::from_f32(f32::NAN), None);
        assert_eq!(Q::from_millis(1001), None);
    }

    #[test]
    fn contact_keys() {
        assert_eq!(
            contact_key("SIP:Alice@EXAMPLE.com:5060;Transport=TCP"),
            "sip:Alice@example.com:5060;Transport=TCP"
        );
        assert_eq!(contact_key(" sip:HOST "), "sip:host");
        assert_eq!(contact_key("sip:a;b?c@Host?x=Y"), "sip:a;b?c@host?x=Y");
        assert_eq!(contact_key("garbage"), "garbage");
    }
}
