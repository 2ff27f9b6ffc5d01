//! Presence documents: XMPP `<presence/>` <-> PIDF (RFC 3863) with RPID
//! (RFC 4480), following RFC 8048 Tables 1 and 2.
//!
//! Both directions go through a typed model, [`Presentity`]: one
//! [`ResourcePresence`] per XMPP resource or PIDF tuple, whose
//! [`Availability`] holds a [`Show`] and a [`Priority`] only when the
//! resource is available, whose [`Note`]s carry a checked [`Lang`], and
//! whose priority is the part of an XMPP priority PIDF can carry (0 to
//! 127). What either side sends that the model cannot hold is dropped
//! here, not downstream.
//!
//! # Mapping decisions
//!
//! - **Full state.** A presence NOTIFY replaces what the watcher knew
//!   (RFC 3856), so [`xmpp_to_pidf`] takes the latest stanza of *every*
//!   resource and writes one document with a tuple each; the caller keeps
//!   that per-resource cache. RFC 8048's "one NOTIFY per resource" would
//!   make each NOTIFY erase the other resources.
//! - **Tuple ids** are `ID-` and the resource in a reversible xs:ID-safe
//!   form ([`tuple_id`]): ASCII letters, digits, `-` and `.` stay, every
//!   other byte becomes `_hh`. RFC 8048's `dr4hcr0st3lup4c` stays as is.
//! - **Contact** is the sender's full JID as a SIP URI with `;gr=` (RFC
//!   7247), which is the GRUU the way back reads the resource from, and
//!   carries the priority (RFC 8048 Table 1: 0..127 onto 0..1 with unique
//!   values, `floor(1000 p / 127)` thousandths, so 1 is 0.007; negative
//!   priorities are not mapped).
//! - **`<show/>`** goes both ways as `<show xmlns='jabber:client'>` inside
//!   `<status>`, as RFC 8048 recommends, so XMPP -> PIDF -> XMPP keeps it
//!   exactly. For SIP agents that only know RPID, the most available
//!   resource's show is also written as `<rpid:activities>` in a
//!   `<dm:person>`, with those prefixes declared on the root (agents such
//!   as baresip match the prefixed names as text): away -> `away`, dnd ->
//!   `busy`, xa -> `away` (RFC 4480
//!   has no "extended away"; `vacation` or `sleeping` would claim a reason
//!   the user never gave), chat -> no activity (RFC 4480 has no "free to
//!   chat"; an available person with no activity is what it means).
//! - **Activities -> `<show/>`** (see [`Activity::show`]): those that make
//!   a person unable to answer (busy, on-the-phone, meeting, appointment,
//!   presentation, performance, steering) are `dnd`; absences measured in
//!   hours or days (vacation, holiday, sleeping, travel,
//!   permanent-absence) are `xa`; short absences (away, meals, shopping,
//!   in-transit) are `away`; the rest (working, playing, tv, unknown,
//!   other, ...) say nothing about reachability and give no `<show/>`.
//!   With several activities the least available wins. A tuple's own
//!   `<show>` beats activities in its `<status>` (older RPID drafts put
//!   them there), which beat the person's. When any tuple carries a
//!   `<show>`, the writer describes each tuple exactly (a tuple without
//!   one is plain available) and the person's activities, a summary for
//!   RPID readers, are not applied to tuples.
//! - **Notes** come from the tuple; a tuple without any takes the
//!   document's (`<note>` of `<presence>`, then `<dm:note>` of the person).
//!   `xml:lang` is resolved through the enclosing elements and written on
//!   every `<note>` and `<status>`, and only one note per language is kept
//!   (RFC 6121 allows one `<status/>` per `xml:lang`).
//! - **The entity is not trusted.** A NOTIFY's dialog names the presentity;
//!   the `entity` attribute is whatever the sender wrote, so
//!   [`pidf_to_xmpp`] addresses stanzas from the JID the caller gives.
//! - **Resources from PIDF**: a contact that is a public GRUU (`;gr=`)
//!   names the resource; otherwise the tuple id does (`ID-` form decoded,
//!   any other id as it stands). Tuple ids are stable per RFC 3863, but a
//!   resource that disappears from the next document must be sent
//!   `unavailable` by the caller, which knows what it sent before.
//! - **No body** (or an empty one) means unknown, read as closed (RFC
//!   8048): one `<presence type='unavailable'/>` from the bare JID. So does
//!   a document with no tuples. A tuple without `<basic>`, or with a value
//!   other than `open`, is closed.
//! - **[`Disclosure`]**: partners that may see only availability get no
//!   notes in either direction; show and priority still go.

use std::fmt;

use crate::jid::Jid;
use crate::xml::{ns, Element, Error as XmlError, ErrorKind, Event, Limits, Reader, Scope};

use super::address::{jid_to_sip, sip_to_jid};

/// MIME type of PIDF bodies (RFC 3863 section 7.1).
pub const PIDF_CONTENT_TYPE: &str = "application/pidf+xml";
/// PIDF namespace (RFC 3863).
pub const PIDF_NS: &str = "urn:ietf:params:xml:ns:pidf";
/// PIDF data model namespace (RFC 4479): `<dm:person>`, `<dm:note>`.
pub const DATA_MODEL_NS: &str = "urn:ietf:params:xml:ns:pidf:data-model";
/// RPID namespace (RFC 4480): `<rpid:activities>`.
pub const RPID_NS: &str = "urn:ietf:params:xml:ns:pidf:rpid";

/// Id of the one `<dm:person>` written; tuple ids all start with `ID-`,
/// so it cannot collide with one.
const PERSON_ID: &str = "p";

/// The four XMPP `<show/>` values; a plain available resource has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Show {
    /// `chat`: actively interested in chatting.
    Chat,
    /// `away`: temporarily away.
    Away,
    /// `xa`: away for an extended period.
    Xa,
    /// `dnd`: busy, do not disturb.
    Dnd,
}

impl Show {
    /// Every value, for tests and tables.
    pub const ALL: [Show; 4] = [Show::Chat, Show::Away, Show::Xa, Show::Dnd];

    /// The element's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Show::Chat => "chat",
            Show::Away => "away",
            Show::Xa => "xa",
            Show::Dnd => "dnd",
        }
    }

    /// Reads the element's text (surrounding whitespace ignored); unknown
    /// values give `None`, read as plain available (RFC 6121 4.7.2.1).
    pub fn parse(s: &str) -> Option<Show> {
        let s = s.trim();
        Show::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The RPID activity written for SIP agents that do not read
    /// `<show/>`; see the module notes for xa and chat.
    pub fn activity(self) -> Option<Activity> {
        match self {
            Show::Away | Show::Xa => Some(Activity::Away),
            Show::Dnd => Some(Activity::Busy),
            Show::Chat => None,
        }
    }

    /// Higher is less available: how several activities are combined.
    fn unavailability(self) -> u8 {
        match self {
            Show::Chat => 0,
            Show::Away => 1,
            Show::Xa => 2,
            Show::Dnd => 3,
        }
    }
}

impl fmt::Display for Show {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The RFC 4480 section 3.2 activities (`other` stands for any value not
/// registered there, which says nothing a `<show/>` could carry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activity {
    /// A calendar appointment of no stated kind: busy, as Lync shows a meeting (dnd).
    Appointment,
    /// Physically away from all communication devices (away).
    Away,
    /// Eating breakfast: a short absence (away).
    Breakfast,
    /// Busy, without details (dnd).
    Busy,
    /// Having dinner: a short absence (away).
    Dinner,
    /// A holiday: gone for the day or longer (xa).
    Holiday,
    /// Riding in a vehicle, not steering: a short absence (away).
    InTransit,
    /// Looking for work: says nothing about reachability (no show).
    LookingForWork,
    /// Eating a meal: a short absence (away).
    Meal,
    /// In a meeting: cannot answer (dnd).
    Meeting,
    /// In a call: cannot answer (dnd).
    OnThePhone,
    /// Performing or watching a performance: cannot answer (dnd).
    Performance,
    /// Will not return for the foreseeable future (xa).
    PermanentAbsence,
    /// Playing: says nothing about reachability (no show).
    Playing,
    /// Giving a presentation: cannot answer (dnd).
    Presentation,
    /// Shopping: a short absence (away).
    Shopping,
    /// Asleep: gone for hours (xa).
    Sleeping,
    /// Watching an event: says nothing about reachability (no show).
    Spectator,
    /// Driving or piloting: must not be disturbed (dnd).
    Steering,
    /// On a trip: gone for hours or days (xa).
    Travel,
    /// Watching TV: says nothing about reachability (no show).
    Tv,
    /// The writer does not know: no show.
    Unknown,
    /// On vacation: gone for days (xa).
    Vacation,
    /// Working: reachable as usual (no show).
    Working,
    /// At worship: says nothing the XMPP values can carry (no show).
    Worship,
    /// `<other>` or an unregistered activity: no show.
    Other,
}

impl Activity {
    /// Every value, for tests and tables.
    pub const ALL: [Activity; 26] = [
        Activity::Appointment,
        Activity::Away,
        Activity::Breakfast,
        Activity::Busy,
        Activity::Dinner,
        Activity::Holiday,
        Activity::InTransit,
        Activity::LookingForWork,
        Activity::Meal,
        Activity::Meeting,
        Activity::OnThePhone,
        Activity::Performance,
        Activity::PermanentAbsence,
        Activity::Playing,
        Activity::Presentation,
        Activity::Shopping,
        Activity::Sleeping,
        Activity::Spectator,
        Activity::Steering,
        Activity::Travel,
        Activity::Tv,
        Activity::Unknown,
        Activity::Vacation,
        Activity::Working,
        Activity::Worship,
        Activity::Other,
    ];

    /// The element name in the RPID namespace.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Appointment => "appointment",
            Activity::Away => "away",
            Activity::Breakfast => "breakfast",
            Activity::Busy => "busy",
            Activity::Dinner => "dinner",
            Activity::Holiday => "holiday",
            Activity::InTransit => "in-transit",
            Activity::LookingForWork => "looking-for-work",
            Activity::Meal => "meal",
            Activity::Meeting => "meeting",
            Activity::OnThePhone => "on-the-phone",
            Activity::Performance => "performance",
            Activity::PermanentAbsence => "permanent-absence",
            Activity::Playing => "playing",
            Activity::Presentation => "presentation",
            Activity::Shopping => "shopping",
            Activity::Sleeping => "sleeping",
            Activity::Spectator => "spectator",
            Activity::Steering => "steering",
            Activity::Travel => "travel",
            Activity::Tv => "tv",
            Activity::Unknown => "unknown",
            Activity::Vacation => "vacation",
            Activity::Working => "working",
            Activity::Worship => "worship",
            Activity::Other => "other",
        }
    }

    /// Reads an element name; names RFC 4480 does not register (vendor
    /// extensions) are [`Activity::Other`].
    pub fn from_name(name: &str) -> Activity {
        Activity::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .unwrap_or(Activity::Other)
    }

    /// The `<show/>` an XMPP contact sees for this activity (module notes:
    /// unable to answer is dnd, long absence xa, short absence away).
    pub fn show(self) -> Option<Show> {
        use Activity::*;
        match self {
            Busy | OnThePhone | Meeting | Appointment | Presentation | Performance | Steering => {
                Some(Show::Dnd)
            }
            Vacation | Holiday | Sleeping | Travel | PermanentAbsence => Some(Show::Xa),
            Away | Breakfast | Dinner | Meal | Shopping | InTransit => Some(Show::Away),
            LookingForWork | Playing | Spectator | Tv | Unknown | Working | Worship | Other => None,
        }
    }
}

/// The `<show/>` for a set of activities: the least available one's.
fn show_of_activities(activities: &Element) -> Option<Show> {
    activities
        .children()
        .filter(|a| a.ns() == RPID_NS)
        .filter_map(|a| Activity::from_name(a.name()).show())
        .max_by_key(|s| s.unavailability())
}

/// A PIDF `priority` (RFC 3863 `qvalue`), kept in thousandths: 0 to 1000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QValue(u16);

impl QValue {
    /// A value of `thousandths`/1000, `None` above 1.
    pub fn new(thousandths: u16) -> Option<QValue> {
        (thousandths <= 1000).then_some(QValue(thousandths))
    }

    /// The value in thousandths.
    pub fn thousandths(self) -> u16 {
        self.0
    }

    /// Reads `0(.d{0,3})? | 1(.0{0,3})?`; anything else is `None`, and
    /// the tuple then has no priority.
    pub fn parse(s: &str) -> Option<QValue> {
        let s = s.trim();
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut thousandths = 0u16;
        for (i, b) in frac.bytes().enumerate() {
            thousandths += u16::from(b - b'0') * [100, 10, 1][i];
        }
        match int {
            "0" => Some(QValue(thousandths)),
            "1" if thousandths == 0 => Some(QValue(1000)),
            _ => None,
        }
    }
}

impl fmt::Display for QValue {
    /// The shortest qvalue text: `0`, `1`, `0.5`, `0.007`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("0"),
            1000 => f.write_str("1"),
            n => {
                let digits = format!("{n:03}");
                write!(f, "0.{}", digits.trim_end_matches('0'))
            }
        }
    }
}

/// The part of an XMPP priority PIDF can carry: 0 to 127. RFC 8048 says
/// negative priorities MUST NOT be mapped, so there is no such value here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// The mappable part of an XMPP priority: `None` when negative.
    pub fn from_xmpp(p: i8) -> Option<Priority> {
        u8::try_from(p).ok().map(Priority)
    }

    /// The XMPP value.
    pub fn value(self) -> i8 {
        // At most 127 by construction.
        i8::try_from(self.0).unwrap_or(i8::MAX)
    }

    /// RFC 8048 Table 1: 0 -> 0, 127 -> 1, linear, every value distinct
    /// (rounded down to thousandths: 1 -> 0.007, 126 -> 0.992).
    pub fn to_qvalue(self) -> QValue {
        QValue((u32::from(self.0) * 1000 / 127) as u16)
    }

    /// The nearest XMPP priority for a qvalue; the inverse of
    /// [`Priority::to_qvalue`] on its values.
    pub fn from_qvalue(q: QValue) -> Priority {
        Priority(((u32::from(q.0) * 127 + 500) / 1000) as u8)
    }
}

/// A language tag fit for both `xml:lang` and `Content-Language`:
/// `primary *("-" subtag)`, 1-8 letters then 1-8 letters or digits.
/// Other values are dropped, leaving the text without a language.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lang(String);

impl Lang {
    /// Checks a tag; `None` when it does not have the shape above.
    pub fn new(tag: &str) -> Option<Lang> {
        let mut parts = tag.split('-');
        let primary = parts.next().unwrap_or_default();
        let ok = (1..=8).contains(&primary.len())
            && primary.bytes().all(|b| b.is_ascii_alphabetic())
            && parts.all(|p| {
                (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            && tag.len() <= 64;
        ok.then(|| Lang(tag.to_owned()))
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// XML 1.0 `Char`: the only characters a note can hold on either side.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A status text: XMPP `<status/>`, PIDF `<note/>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Note {
    text: String,
    lang: Option<Lang>,
}

impl Note {
    /// A note of `text` without the characters XML forbids; `None` when
    /// nothing is left, since an empty status says nothing.
    pub fn new(text: &str, lang: Option<Lang>) -> Option<Note> {
        let text: String = if text.chars().all(is_xml_char) {
            text.to_owned()
        } else {
            text.chars().filter(|c| is_xml_char(*c)).collect()
        };
        (!text.is_empty()).then_some(Note { text, lang })
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its language, if known.
    pub fn lang(&self) -> Option<&Lang> {
        self.lang.as_ref()
    }
}

/// Whether a resource can be reached, and how willingly. `show` and
/// `priority` exist only for an available resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Availability {
    /// XMPP: no `type`; PIDF: `<basic>open</basic>`.
    Available {
        /// `None` is plain available.
        show: Option<Show>,
        /// `None` when absent on the XMPP side (which means 0) or not
        /// mappable (negative); no `priority` on the PIDF side.
        priority: Option<Priority>,
    },
    /// XMPP: `type='unavailable'`; PIDF: `<basic>closed</basic>`.
    Unavailable,
}

/// What one XMPP resource or PIDF tuple says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePresence {
    resource: Option<String>,
    availability: Availability,
    notes: Vec<Note>,
}

impl ResourcePresence {
    /// A resource (`None`: the bare JID, or a tuple naming none) with no
    /// notes yet. A resource no JID can carry is sent to XMPP from the
    /// bare JID rather than dropped.
    pub fn new(resource: Option<&str>, availability: Availability) -> Self {
        ResourcePresence {
            resource: resource.map(str::to_owned),
            availability,
            notes: Vec::new(),
        }
    }

    /// Adds a note unless one in its language is there already (RFC 6121
    /// allows one `<status/>` per `xml:lang`); the first one wins.
    pub fn push_note(&mut self, note: Note) {
        if self.notes.iter().all(|n| n.lang != note.lang) {
            self.notes.push(note);
        }
    }

    /// The resourcepart.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// Reachability, show and priority.
    pub fn availability(&self) -> Availability {
        self.availability
    }

    /// Status texts, one per language.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// Priority used to rank available resources (absent is 0, RFC 6121).
    fn rank(&self) -> Option<u8> {
        match self.availability {
            Availability::Available { priority, .. } => Some(priority.map_or(0, |p| p.0)),
            Availability::Unavailable => None,
        }
    }
}

/// Everything known of one presentity: one entry per resource (tuple), in
/// document order, each resource at most once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presentity {
    resources: Vec<ResourcePresence>,
}

impl Presentity {
    /// Adds a resource, replacing an entry for the same one (a later
    /// stanza of a resource supersedes the earlier).
    pub fn push(&mut self, r: ResourcePresence) {
        match self.resources.iter_mut().find(|x| x.resource == r.resource) {
            Some(x) => *x = r,
            None => self.resources.push(r),
        }
    }

    /// The resources.
    pub fn resources(&self) -> &[ResourcePresence] {
        &self.resources
    }

    /// The resource that speaks for the person (RPID activities): the
    /// available one with the highest priority, the first on a tie.
    pub fn top(&self) -> Option<&ResourcePresence> {
        let mut best: Option<(&ResourcePresence, u8)> = None;
        for r in &self.resources {
            if let Some(rank) = r.rank() {
                if best.is_none_or(|(_, b)| rank > b) {
                    best = Some((r, rank));
                }
            }
        }
        best.map(|(r, _)| r)
    }
}

/// How much of a presence a partner may see (issue 10: only `federated`
/// partners see notes; `public-verified` sees availability alone). The
/// wiring picks it from the partner type and passes it to both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Disclosure {
    /// Availability, show, priority and notes.
    #[default]
    Full,
    /// Availability, show and priority; notes are dropped.
    AvailabilityOnly,
}

impl Disclosure {
    fn notes(self) -> bool {
        self == Disclosure::Full
    }
}

// ---------------------------------------------------------------------------
// Tuple ids <-> resources
// ---------------------------------------------------------------------------

/// The PIDF tuple id for a resource: `ID-` (RFC 8048: xs:ID cannot start
/// with a digit) and the resource with every byte other than an ASCII
/// letter, digit, `-` or `.` written `_hh` (lower-case hex), so the id is
/// an NCName and [`resource_of_tuple_id`] gets the resource back. The bare
/// JID's tuple is `ID-`.
pub fn tuple_id(resource: Option<&str>) -> String {
    let resource = resource.unwrap_or_default();
    let mut id = String::with_capacity(3 + resource.len());
    id.push_str("ID-");
    for b in resource.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' {
            id.push(char::from(b));
        } else {
            id.push('_');
            id.push(char::from(HEX[usize::from(b >> 4)]));
            id.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    id
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Undoes [`tuple_id`]; `None` when `id` is not of that form (a SIP
/// agent's own id), `Some(None)` for the bare JID's `ID-`.
pub fn resource_of_tuple_id(id: &str) -> Option<Option<String>> {
    let rest = id.strip_prefix("ID-")?;
    if rest.is_empty() {
        return Some(None);
    }
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(rest.len());
    let mut bytes = rest.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => {
                let hi = hex(bytes.next()?)?;
                let lo = hex(bytes.next()?)?;
                out.push(hi << 4 | lo);
            }
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' => out.push(b),
            _ => return None,
        }
    }
    String::from_utf8(out).ok().map(Some)
}

/// `r` prepared as a resourcepart (RFC 7622 OpaqueString), `None` if no
/// JID can carry it. The JID type prepares parts only inside a JID, hence
/// the placeholder domain.
fn prepared_resource(r: &str) -> Option<String> {
    Jid::from_parts(None, "resource.invalid", Some(r))
        .ok()
        .and_then(|j| j.resource().map(str::to_owned))
}

// ---------------------------------------------------------------------------
// XMPP -> model -> PIDF
// ---------------------------------------------------------------------------

/// Why presence stanzas do not make a PIDF document.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresenceError {
    /// Not a `<presence/>` in a stanza namespace.
    NotPresence,
    /// A presence of another `type` (subscribe, probe, error, ...): not
    /// availability, handled by subscription bridging, never a NOTIFY
    /// body (RFC 8048 Table 1).
    NotAvailability,
    /// `from` is missing or not a JID.
    BadFrom,
    /// The stanzas come from different bare JIDs: one document describes
    /// one presentity.
    MixedSenders,
    /// No stanza at all.
    Empty,
}

impl fmt::Display for PresenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PresenceError::NotPresence => "not a presence stanza",
            PresenceError::NotAvailability => "presence of a type other than unavailable",
            PresenceError::BadFrom => "missing or malformed from",
            PresenceError::MixedSenders => "presence stanzas of several bare JIDs",
            PresenceError::Empty => "no presence stanza",
        })
    }
}

impl std::error::Error for PresenceError {}

/// Whether `ns` is a namespace stanzas arrive in.
fn is_stanza_ns(ns: &str) -> bool {
    ns == ns::SERVER || ns == ns::CLIENT || ns == ns::COMPONENT
}

/// Reads one availability stanza into its sender and what it says.
fn resource_of_stanza(p: &Element) -> Result<(Jid, ResourcePresence), PresenceError> {
    if p.name() != "presence" || !is_stanza_ns(p.ns()) {
        return Err(PresenceError::NotPresence);
    }
    let from = p
        .attr("from")
        .and_then(|f| Jid::parse(f).ok())
        .ok_or(PresenceError::BadFrom)?;
    let sns = p.ns();
    let availability = match p.attr("type") {
        None => Availability::Available {
            show: p.child(sns, "show").and_then(|s| Show::parse(&s.text())),
            priority: p
                .child(sns, "priority")
                .and_then(|e| e.text().trim().parse::<i8>().ok())
                .and_then(Priority::from_xmpp),
        },
        Some("unavailable") => Availability::Unavailable,
        Some(_) => return Err(PresenceError::NotAvailability),
    };
    let mut r = ResourcePresence::new(from.resource(), availability);
    let stanza_lang = p.lang();
    for status in p.children().filter(|c| c.is(sns, "status")) {
        let lang = status.lang().or(stanza_lang).and_then(Lang::new);
        if let Some(note) = Note::new(&status.text(), lang) {
            r.push_note(note);
        }
    }
    Ok((from.bare(), r))
}

/// Reads availability stanzas (no `type` or `type='unavailable'`), the
/// latest of each resource of one sender, into that sender's bare JID and
/// a [`Presentity`]. A later stanza of a resource replaces an earlier one.
pub fn presentity_from_xmpp<'a>(
    stanzas: impl IntoIterator<Item = &'a Element>,
) -> Result<(Jid, Presentity), PresenceError> {
    let mut entity: Option<Jid> = None;
    let mut p = Presentity::default();
    for stanza in stanzas {
        let (bare, r) = resource_of_stanza(stanza)?;
        match &entity {
            Some(e) if *e != bare => return Err(PresenceError::MixedSenders),
            Some(_) => {}
            None => entity = Some(bare),
        }
        p.push(r);
    }
    entity.map(|e| (e, p)).ok_or(PresenceError::Empty)
}

/// The `pres:` URI of a bare JID (RFC 3863 `entity`; RFC 7247 for the
/// address itself).
pub fn pres_uri(entity: &Jid) -> String {
    let sip = jid_to_sip(&entity.bare());
    let mut uri = String::with_capacity(sip.len() + 1);
    uri.push_str("pres:");
    uri.push_str(sip.strip_prefix("sip:").unwrap_or(&sip));
    uri
}

/// The PIDF document for `p`, the presence of `entity` (its bare JID is
/// the `entity`), as an element tree. See the module notes for what goes
/// where; `disclosure` decides whether notes are written.
pub fn pidf_document(entity: &Jid, p: &Presentity, disclosure: Disclosure) -> Element {
    let entity = entity.bare();
    let mut doc = Element::new(PIDF_NS, "presence").with_attr("entity", pres_uri(&entity));
    for r in &p.resources {
        let mut status = Element::new(PIDF_NS, "status");
        let priority = match r.availability {
            Availability::Available { show, priority } => {
                status.push_child(Element::new(PIDF_NS, "basic").with_text("open"));
                if let Some(show) = show {
                    status.push_child(Element::new(ns::CLIENT, "show").with_text(show.as_str()));
                }
                priority
            }
            Availability::Unavailable => {
                status.push_child(Element::new(PIDF_NS, "basic").with_text("closed"));
                None
            }
        };
        let full = match r.resource.as_deref() {
            Some(res) => entity.with_resource(res).unwrap_or_else(|_| entity.clone()),
            None => entity.clone(),
        };
        let mut contact = Element::new(PIDF_NS, "contact").with_text(&jid_to_sip(&full));
        if let Some(priority) = priority {
            contact.set_attr("priority", priority.to_qvalue().to_string());
        }
        let mut tuple = Element::new(PIDF_NS, "tuple")
            .with_attr("id", tuple_id(r.resource.as_deref()))
            .with_child(status)
            .with_child(contact);
        if disclosure.notes() {
            for note in &r.notes {
                let mut e = Element::new(PIDF_NS, "note").with_text(&note.text);
                if let Some(lang) = &note.lang {
                    e.set_attr_ns(ns::XML, "lang", lang.as_str());
                }
                tuple.push_child(e);
            }
        }
        doc.push_child(tuple);
    }
    let activity = p.top().and_then(|r| match r.availability {
        Availability::Available { show, .. } => show.and_then(Show::activity),
        Availability::Unavailable => None,
    });
    if let Some(activity) = activity {
        doc.push_child(
            Element::new(DATA_MODEL_NS, "person")
                .with_attr("id", PERSON_ID)
                .with_child(
                    Element::new(RPID_NS, "activities")
                        .with_child(Element::new(RPID_NS, activity.as_str())),
                ),
        );
    }
    doc
}

/// The `application/pidf+xml` body for `p`: [`pidf_document`] after an
/// XML declaration naming UTF-8. A document with a person declares the
/// `dm:` and `rpid:` prefixes of RFC 4479 and RFC 4480 on its root and
/// writes `<dm:person>` and `<rpid:busy/>` with them: SIP agents that only
/// read RPID often match those names literally (baresip 1.0 looks for
/// `<rpid:away/>` and `<rpid:busy/>` in the text), and the same names in a
/// default namespace of their own would pass them by.
pub fn pidf_body(entity: &Jid, p: &Presentity, disclosure: Disclosure) -> Vec<u8> {
    let mut out = b"<?xml version='1.0' encoding='UTF-8'?>\n".to_vec();
    let doc = pidf_document(entity, p, disclosure);
    if doc.child(DATA_MODEL_NS, "person").is_some() {
        let prefixes = Scope::new("")
            .with_prefix("dm", DATA_MODEL_NS)
            .with_prefix("rpid", RPID_NS);
        doc.write_with_prefixes(&prefixes, &mut out);
    } else {
        doc.write(&Scope::default(), &mut out);
    }
    out
}

/// Translates the latest availability stanza of each resource of one
/// XMPP user into the PIDF body of a NOTIFY (RFC 8048 Table 1): one tuple
/// per resource, `entity` the sender's bare JID as a `pres:` URI.
pub fn xmpp_to_pidf<'a>(
    stanzas: impl IntoIterator<Item = &'a Element>,
    disclosure: Disclosure,
) -> Result<Vec<u8>, PresenceError> {
    let (entity, p) = presentity_from_xmpp(stanzas)?;
    Ok(pidf_body(&entity, &p, disclosure))
}

// ---------------------------------------------------------------------------
// PIDF -> model -> XMPP
// ---------------------------------------------------------------------------

/// Bounds on a PIDF body from the SIP side, which may be hostile: every
/// cost of reading one is bounded by these, and exceeding one is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PidfLimits {
    /// Bytes of the body.
    pub max_body: usize,
    /// Element nesting, `<presence>` being depth 1.
    pub max_depth: u32,
    /// Attributes of one element, namespace declarations included.
    pub max_attributes: usize,
    /// `<tuple>` elements.
    pub max_tuples: usize,
}

impl Default for PidfLimits {
    /// 64 KiB is over ten times a rich multi-device document (RFC 3856
    /// bodies are usually under 2 KB); 16 levels cover RPID and a GEOPRIV
    /// civic address (about 7); 32 attributes is twice what any PIDF
    /// extension puts on one element; 32 tuples is more devices and
    /// services than one person has.
    fn default() -> Self {
        PidfLimits {
            max_body: 64 * 1024,
            max_depth: 16,
            max_attributes: 32,
            max_tuples: 32,
        }
    }
}

/// Why a PIDF body cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PidfError {
    /// Longer than [`PidfLimits::max_body`].
    TooLarge {
        /// The body's length.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Declared or marked as an encoding other than UTF-8.
    UnsupportedEncoding,
    /// Not one well-formed element of restricted XML (no DTD, entity,
    /// comment or processing instruction), or over the depth or attribute
    /// limit ([`crate::xml::ErrorKind::LimitExceeded`]).
    Xml(XmlError),
    /// The root is not `<presence>` in the PIDF namespace.
    NotPidf,
    /// More than [`PidfLimits::max_tuples`] tuples.
    TooManyTuples {
        /// The limit.
        max: usize,
    },
}

impl PidfError {
    /// The SIP response for a NOTIFY (or PUBLISH) with this body: 413 for
    /// a body over the size limit, 415 for one that is not PIDF in UTF-8,
    /// 400 otherwise.
    pub fn sip_status(&self) -> u16 {
        match self {
            PidfError::TooLarge { .. } => 413,
            PidfError::UnsupportedEncoding | PidfError::NotPidf => 415,
            PidfError::Xml(_) | PidfError::TooManyTuples { .. } => 400,
        }
    }
}

impl fmt::Display for PidfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidfError::TooLarge { size, max } => {
                write!(f, "PIDF body of {size} bytes exceeds the {max} byte limit")
            }
            PidfError::UnsupportedEncoding => f.write_str("PIDF body not in UTF-8"),
            PidfError::Xml(e) => write!(f, "PIDF body is not usable XML: {e}"),
            PidfError::NotPidf => f.write_str("root element is not PIDF presence"),
            PidfError::TooManyTuples { max } => write!(f, "PIDF body has over {max} tuples"),
        }
    }
}

impl std::error::Error for PidfError {}

/// Whether a `Content-Type` value is PIDF (parameters aside).
pub fn is_pidf_content_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(PIDF_CONTENT_TYPE))
}

/// The body after a UTF-8 byte order mark, leading whitespace and the XML
/// declaration, which the element reader does not take. A declaration
/// naming another encoding, or a UTF-16 mark, is refused.
fn strip_prolog(body: &[u8]) -> Result<&[u8], PidfError> {
    if body.starts_with(&[0xFE, 0xFF]) || body.starts_with(&[0xFF, 0xFE]) {
        return Err(PidfError::UnsupportedEncoding);
    }
    let body = body.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(body);
    let body = body.trim_ascii_start();
    let Some(rest) = body.strip_prefix(b"<?xml") else {
        return Ok(body);
    };
    if !rest.first().is_some_and(u8::is_ascii_whitespace) {
        // A processing instruction such as `<?xml-stylesheet`: left for the
        // reader to refuse.
        return Ok(body);
    }
    let Some(end) = rest.windows(2).position(|w| w == b"?>") else {
        return Err(PidfError::Xml(not_one_element()));
    };
    let decl = &rest[..end];
    if let Some(at) = find(decl, b"encoding") {
        let value = decl[at + 8..]
            .iter()
            .skip_while(|b| b.is_ascii_whitespace() || **b == b'=')
            .skip(1) // the opening quote
            .take_while(|b| **b != b'\'' && **b != b'"')
            .copied()
            .collect::<Vec<u8>>();
        if !value.eq_ignore_ascii_case(b"utf-8") && !value.eq_ignore_ascii_case(b"utf8") {
            return Err(PidfError::UnsupportedEncoding);
        }
    }
    Ok(&rest[end + 2..])
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn not_one_element() -> XmlError {
    XmlError::new(ErrorKind::NotWellFormed, "not exactly one element")
}

/// Reads the one root element of a body under `limits`.
fn read_root(body: &[u8], limits: &PidfLimits) -> Result<Element, PidfError> {
    let mut reader = Reader::fragment(Limits {
        max_stanza_size: limits.max_body,
        max_depth: limits.max_depth,
        max_attributes: limits.max_attributes,
    });
    reader.feed_all(body);
    match reader.poll() {
        Some(Ok(Event::Stanza(e))) if reader.is_idle() => Ok(e),
        Some(Ok(Event::Stanza(_))) => Err(PidfError::Xml(match reader.poll() {
            Some(Err(e)) => e,
            _ => not_one_element(),
        })),
        Some(Err(e)) => Err(PidfError::Xml(e)),
        _ => Err(PidfError::Xml(not_one_element())),
    }
}

/// Notes of `parent` named `name` in `ns`, with `xml:lang` resolved
/// through `inherited`.
fn notes_of<'a>(
    parent: &'a Element,
    ns: &'a str,
    inherited: Option<&'a str>,
) -> impl Iterator<Item = Note> + 'a {
    parent
        .children()
        .filter(move |c| c.is(ns, "note"))
        .filter_map(move |n| Note::new(&n.text(), n.lang().or(inherited).and_then(Lang::new)))
}

/// Reads a PIDF body (RFC 3863, with RPID and RFC 8048's `<show/>`) into
/// a [`Presentity`], under `limits`. The `entity` is not read: the
/// dialog, not the document, says whose presence it is (module notes).
pub fn parse_pidf(body: &[u8], limits: &PidfLimits) -> Result<Presentity, PidfError> {
    parse_pidf_with_language(body, limits, None)
}

/// [`parse_pidf`] for a NOTIFY with a `Content-Language` header (RFC 8048
/// Table 2: it becomes `xml:lang`): notes whose language the document
/// leaves open are in the header's first language, if it is a usable tag.
pub fn parse_pidf_with_language(
    body: &[u8],
    limits: &PidfLimits,
    content_language: Option<&str>,
) -> Result<Presentity, PidfError> {
    let root = pidf_root(body, limits)?;
    let header_lang = content_language
        .and_then(|l| l.split(',').next())
        .map(str::trim)
        .filter(|l| Lang::new(l).is_some());
    let doc = Document::of(&root, root.lang().or(header_lang));
    let mut p = Presentity::default();
    for tuple in doc.tuples() {
        let resource = resource_of_tuple(tuple);
        if p.resources.iter().any(|r| r.resource == resource) {
            continue; // two tuples for one resource: XMPP can show one
        }
        let mut r = ResourcePresence::new(resource.as_deref(), doc.availability(tuple));
        let mut any = false;
        for note in notes_of(tuple, PIDF_NS, tuple.lang().or(doc.lang)) {
            r.push_note(note);
            any = true;
        }
        if !any {
            for note in &doc.notes {
                r.push_note(note.clone());
            }
        }
        p.resources.push(r);
    }
    Ok(p)
}

/// The root of a PIDF body within `limits` (size, then the reader's
/// limits, then the number of tuples).
fn pidf_root(body: &[u8], limits: &PidfLimits) -> Result<Element, PidfError> {
    if body.len() > limits.max_body {
        return Err(PidfError::TooLarge {
            size: body.len(),
            max: limits.max_body,
        });
    }
    let root = read_root(strip_prolog(body)?, limits)?;
    if !root.is(PIDF_NS, "presence") {
        return Err(PidfError::NotPidf);
    }
    if root.children().filter(|c| c.is(PIDF_NS, "tuple")).count() > limits.max_tuples {
        return Err(PidfError::TooManyTuples {
            max: limits.max_tuples,
        });
    }
    Ok(root)
}

/// What a PIDF document says for all its tuples: its language, the show
/// of its person element (when the tuples carry none of their own), and
/// the notes a tuple without notes of its own takes.
struct Document<'a> {
    root: &'a Element,
    lang: Option<&'a str>,
    person_show: Option<Show>,
    notes: Vec<Note>,
}

impl<'a> Document<'a> {
    fn of(root: &'a Element, lang: Option<&'a str>) -> Document<'a> {
        let person = root.children().find(|c| c.is(DATA_MODEL_NS, "person"));
        // A writer that puts RFC 8048's <show> in its tuples says exactly
        // what each one shows, a tuple without it being plain available;
        // its person element only summarizes for RPID readers (as
        // pidf_document does).
        let shows_per_tuple = root.children().filter(|c| c.is(PIDF_NS, "tuple")).any(|t| {
            t.child(PIDF_NS, "status")
                .and_then(|s| s.child(ns::CLIENT, "show"))
                .is_some_and(|e| Show::parse(&e.text()).is_some())
        });
        let person_show = person
            .filter(|_| !shows_per_tuple)
            .and_then(|p| p.child(RPID_NS, "activities"))
            .and_then(show_of_activities);
        let mut notes: Vec<Note> = notes_of(root, PIDF_NS, lang).collect();
        if let Some(person) = person {
            notes.extend(notes_of(person, DATA_MODEL_NS, person.lang().or(lang)));
        }
        Document {
            root,
            lang,
            person_show,
            notes,
        }
    }

    fn tuples(&self) -> impl Iterator<Item = &'a Element> {
        self.root.children().filter(|c| c.is(PIDF_NS, "tuple"))
    }

    /// A tuple's availability: `open` with its show (its own, else the
    /// person's) and the priority of its contact, else unavailable.
    fn availability(&self, tuple: &Element) -> Availability {
        let status = tuple.child(PIDF_NS, "status");
        let open = status
            .and_then(|s| s.child(PIDF_NS, "basic"))
            .is_some_and(|b| b.text().trim() == "open");
        if !open {
            return Availability::Unavailable;
        }
        let show = status.and_then(|s| {
            s.child(ns::CLIENT, "show")
                .and_then(|e| Show::parse(&e.text()))
                .or_else(|| s.child(RPID_NS, "activities").and_then(show_of_activities))
        });
        Availability::Available {
            show: show.or(self.person_show),
            priority: tuple
                .child(PIDF_NS, "contact")
                .and_then(|c| c.attr("priority"))
                .and_then(QValue::parse)
                .map(Priority::from_qvalue),
        }
    }
}

/// The XMPP resource a tuple stands for: its contact's GRUU resource,
/// else its id (decoded when it is one of ours).
fn resource_of_tuple(tuple: &Element) -> Option<String> {
    // Only a URI with a `gr` parameter can name a resource; the check
    // spares the address mapping's PRECIS work on every other contact.
    let gruu = tuple
        .child(PIDF_NS, "contact")
        .map(|c| c.text())
        .filter(|uri| uri.to_ascii_lowercase().contains(";gr="))
        .and_then(|uri| sip_to_jid(uri.trim()).ok())
        .and_then(|j| j.resource().map(str::to_owned));
    gruu.or_else(|| {
        let id = tuple.attr("id")?;
        match resource_of_tuple_id(id) {
            Some(decoded) => decoded.and_then(|r| prepared_resource(&r)),
            None => prepared_resource(id),
        }
    })
}

/// The presence stanzas for `p`, from `from` (its bare JID, with each
/// tuple's resource) to `to`, in `jabber:server` (RFC 8048 Table 2). An
/// empty presentity is one `type='unavailable'` from the bare JID.
pub fn presentity_to_xmpp(
    p: &Presentity,
    from: &Jid,
    to: &Jid,
    disclosure: Disclosure,
) -> Vec<Element> {
    let bare = from.bare();
    if p.resources.is_empty() {
        return vec![Element::new(ns::SERVER, "presence")
            .with_attr("from", bare.as_str())
            .with_attr("to", to.as_str())
            .with_attr("type", "unavailable")];
    }
    let mut out = Vec::with_capacity(p.resources.len());
    for r in &p.resources {
        let full = match r.resource.as_deref() {
            Some(res) => bare.with_resource(res).unwrap_or_else(|_| bare.clone()),
            None => bare.clone(),
        };
        let mut stanza = Element::new(ns::SERVER, "presence")
            .with_attr("from", String::from(full))
            .with_attr("to", to.as_str());
        match r.availability {
            Availability::Available { show, priority } => {
                if let Some(show) = show {
                    stanza.push_child(Element::new(ns::SERVER, "show").with_text(show.as_str()));
                }
                if disclosure.notes() {
                    push_statuses(&mut stanza, &r.notes);
                }
                if let Some(priority) = priority {
                    stanza.push_child(
                        Element::new(ns::SERVER, "priority")
                            .with_text(&priority.value().to_string()),
                    );
                }
            }
            Availability::Unavailable => {
                stanza.set_attr("type", "unavailable");
                if disclosure.notes() {
                    push_statuses(&mut stanza, &r.notes);
                }
            }
        }
        out.push(stanza);
    }
    out
}

fn push_statuses(stanza: &mut Element, notes: &[Note]) {
    for note in notes {
        let mut e = Element::new(ns::SERVER, "status").with_text(&note.text);
        if let Some(lang) = &note.lang {
            e.set_attr_ns(ns::XML, "lang", lang.as_str());
        }
        stanza.push_child(e);
    }
}

/// Translates the body of a presence NOTIFY into presence stanzas from
/// `from` (the notifier of the dialog) to `to` (the XMPP watcher). `None`
/// or an empty body means unknown, read as closed (RFC 8048): one
/// `type='unavailable'` from the bare JID.
pub fn pidf_to_xmpp(
    body: Option<&[u8]>,
    from: &Jid,
    to: &Jid,
    disclosure: Disclosure,
    limits: &PidfLimits,
) -> Result<Vec<Element>, PidfError> {
    let p = match body.filter(|b| !b.trim_ascii().is_empty()) {
        Some(body) => parse_pidf(body, limits)?,
        None => Presentity::default(),
    };
    Ok(presentity_to_xmpp(&p, from, to, disclosure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qvalues() {
        for (s, v) in [
            ("0", 0),
            ("1", 1000),
            ("1.000", 1000),
            ("0.5", 500),
            ("0.007", 7),
            ("0.", 0),
            (" 0.80 ", 800),
        ] {
            assert_eq!(QValue::parse(s), Some(QValue(v)), "{s}");
        }
        for s in ["", "2", "1.5", "0.1234", "-0", "0.x", ".5", "01"] {
            assert_eq!(QValue::parse(s), None, "{s}");
        }
        assert_eq!(QValue(0).to_string(), "0");
        assert_eq!(QValue(1000).to_string(), "1");
        assert_eq!(QValue(500).to_string(), "0.5");
        assert_eq!(QValue(7).to_string(), "0.007");
        assert_eq!(QValue(992).to_string(), "0.992");
    }

    #[test]
    fn priorities_map_linearly_and_uniquely() {
        assert_eq!(Priority(0).to_qvalue(), QValue(0));
        assert_eq!(Priority(1).to_qvalue(), QValue(7));
        assert_eq!(Priority(127).to_qvalue(), QValue(1000));
        let mut seen = std::collections::HashSet::new();
        for p in 0..=127u8 {
            let q = Priority(p).to_qvalue();
            assert!(seen.insert(q), "{p} collides");
            assert_eq!(Priority::from_qvalue(q), Priority(p));
        }
        assert_eq!(Priority::from_xmpp(-1), None);
        assert_eq!(Priority::from_xmpp(5).map(Priority::value), Some(5));
        assert_eq!(Priority::from_qvalue(QValue(800)).value(), 102);
    }

    #[test]
    fn tuple_ids_are_ncnames_and_reversible() {
        assert_eq!(tuple_id(Some("dr4hcr0st3lup4c")), "ID-dr4hcr0st3lup4c");
        assert_eq!(tuple_id(Some("home laptop/é")), "ID-home_20laptop_2f_c3_a9");
        assert_eq!(tuple_id(None), "ID-");
        for r in ["a", "Gajim.XyZ", "a_b", "x y:z/@", "日本"] {
            assert_eq!(
                resource_of_tuple_id(&tuple_id(Some(r))),
                Some(Some(r.into()))
            );
        }
        assert_eq!(resource_of_tuple_id("ID-"), Some(None));
        assert_eq!(resource_of_tuple_id("bs35r9"), None);
        assert_eq!(resource_of_tuple_id("ID-a_2"), None);
        assert_eq!(resource_of_tuple_id("ID-a_ZZ"), None);
        assert_eq!(resource_of_tuple_id("ID-_ff"), None); // not UTF-8
    }

    #[test]
    fn languages() {
        assert!(Lang::new("en").is_some());
        assert!(Lang::new("en-GB").is_some());
        assert!(Lang::new("es-419").is_some());
        assert!(Lang::new("").is_none());
        assert!(Lang::new("en--gb").is_none());
        assert!(Lang::new("toolongprimary").is_none());
        assert!(Lang::new("en\r\nX: y").is_none());
    }

    #[test]
    fn prolog() {
        assert_eq!(strip_prolog(b"  <a/>").ok(), Some(&b"<a/>"[..]));
        assert_eq!(
            strip_prolog(b"\xEF\xBB\xBF<?xml version='1.0' encoding='UTF-8'?>\n<a/>").ok(),
            Some(&b"\n<a/>"[..])
        );
        assert_eq!(
            strip_prolog(b"<?xml version=\"1.0\" encoding = \"iso-8859-1\"?><a/>"),
            Err(PidfError::UnsupportedEncoding)
        );
        assert_eq!(
            strip_prolog(b"\xFF\xFE<"),
            Err(PidfError::UnsupportedEncoding)
        );
        assert!(matches!(
            strip_prolog(b"<?xml version='1.0'"),
            Err(PidfError::Xml(_))
        ));
    }
}
