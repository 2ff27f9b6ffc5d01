//! What happened, as data: the core reports every decision an operator may
//! want to see as an [`Event`], never as a preformatted line.
//!
//! The runtimes log an event's [`Display`](std::fmt::Display) text with its
//! [`Event::kind`] and connection as structured fields; tests, metrics and
//! the status page match on the variants. A text that came from a peer is
//! carried as it came: whoever prints it escapes it (`logtext::escape`).

use std::fmt;
use std::net::SocketAddr;

use crate::ids::{ConnId, Listener};
use crate::xmpp::session::AuthMethod;
use crate::xmpp::stanza::StanzaCondition;

/// How much an operator needs to see an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Protocol detail, for debugging.
    Debug,
    /// Normal operation: streams up and down, users registered, messages.
    Info,
    /// Refused or hostile input, failed routes, limits reached.
    Warn,
}

/// Why a connection was closed as soon as it was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The gateway is shutting down.
    ShuttingDown,
    /// A connection limit is reached: its configuration key and value.
    Limit {
        /// The key, e.g. `gateway.connection_limit`.
        key: &'static str,
        /// Its value.
        limit: usize,
    },
    /// No listener of this kind runs (SIP with the gateway role off).
    NotServed,
}

/// Something the core did or saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A peer connected to one of our listeners.
    Accepted {
        /// Its connection.
        conn: ConnId,
        /// Which listener.
        listener: Listener,
        /// Who.
        peer: SocketAddr,
    },
    /// A connection was closed as soon as it was accepted.
    ConnectionRefused {
        /// Its connection.
        conn: ConnId,
        /// Who.
        peer: SocketAddr,
        /// Why.
        refusal: Refusal,
    },
    /// An outbound s2s connection is being opened.
    Connecting {
        /// Its connection.
        conn: ConnId,
        /// The remote domain.
        domain: String,
        /// The candidate address.
        addr: SocketAddr,
        /// XEP-0368 direct TLS rather than STARTTLS.
        direct_tls: bool,
    },
    /// An outbound connection (s2s or SIP) could not be made.
    ConnectFailed {
        /// Its connection.
        conn: ConnId,
        /// What the runtime said.
        reason: String,
    },
    /// A domain pair was authenticated on a stream.
    StreamAuthenticated {
        /// Its connection.
        conn: ConnId,
        /// Inbound (they may send) or outbound (we may send).
        inbound: bool,
        /// Our domain.
        local: String,
        /// Theirs.
        remote: String,
        /// How.
        method: AuthMethod,
        /// The TLS version, or `None` on a plain stream.
        tls: Option<&'static str>,
    },
    /// An outbound stream will never carry stanzas.
    StreamFailed {
        /// Its connection.
        conn: ConnId,
        /// What its stanzas are bounced with.
        condition: StanzaCondition,
        /// Why.
        reason: String,
    },
    /// A stream ended.
    StreamClosed {
        /// Its connection.
        conn: ConnId,
        /// Why.
        reason: String,
    },
    /// A bound of the configuration was reached and something was refused.
    LimitReached {
        /// The connection it concerns, if one.
        conn: Option<ConnId>,
        /// The configuration key, e.g. `gateway.max_routes`.
        key: &'static str,
        /// What was refused.
        detail: String,
    },
    /// Events of one source were not reported for a while (a flood), so
    /// that an attacker cannot fill the log.
    Suppressed {
        /// The connection they concerned, if one.
        conn: Option<ConnId>,
        /// How many.
        count: u64,
    },
    /// A dialback request was refused; the stream goes on.
    DialbackRefused {
        /// The inbound stream that asked.
        conn: ConnId,
        /// The domain the peer claimed.
        sender: String,
        /// The domain it asked to reach.
        target: String,
        /// The dialback error sent.
        condition: StanzaCondition,
        /// Why.
        reason: String,
    },
    /// A route to a remote domain failed; what waited for it is bounced.
    RouteFailed {
        /// Our domain.
        local: String,
        /// Theirs.
        remote: String,
        /// The error the stanzas get.
        condition: StanzaCondition,
        /// Why.
        reason: String,
        /// Stanzas bounced.
        bounced: usize,
    },
    /// A stanza for a local address that nobody here delivers.
    NotDelivered {
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
    },
    /// Registered bindings of a SIP user changed.
    Registered {
        /// The address of record.
        aor: String,
        /// Bindings it has now.
        bindings: usize,
        /// Who registered.
        peer: SocketAddr,
    },
    /// Bindings ran out without a refresh.
    BindingsExpired {
        /// How many.
        count: usize,
    },
    /// Bindings were loaded from the store at start.
    BindingsRestored {
        /// Still live.
        restored: usize,
        /// Expired while xfed was down.
        expired: usize,
    },
    /// The operator removed a local user's contact (admin socket).
    ContactRemoved {
        /// The local user.
        local_user: String,
        /// The remote bare JID.
        remote: String,
        /// What went: authorization, subscription, contact.
        what: String,
    },
    /// SIP subscription dialogs were loaded from the store at start.
    DialogsRestored {
        /// Going on in their dialogs; their XMPP contacts are probed.
        restored: usize,
        /// Expired while xfed was down, or not restorable.
        dropped: usize,
    },
    /// A SIP connection was closed by one of its timeouts.
    SipConnectionExpired {
        /// Its connection.
        conn: ConnId,
        /// Its peer.
        peer: SocketAddr,
        /// TLS rather than TCP.
        tls: bool,
        /// We accepted it.
        inbound: bool,
        /// Which timeout, by its configuration key.
        key: &'static str,
        /// What happened, e.g. "idle for".
        what: &'static str,
        /// The timeout's value, in seconds.
        after_secs: u64,
        /// Idle closing is routine, the others a warning.
        routine: bool,
    },
    /// A SIP peer's TLS certificate was judged.
    SipCertificate {
        /// Its connection.
        conn: ConnId,
        /// The outcome, for the log.
        outcome: String,
        /// Whether the connection goes on.
        accepted: bool,
        /// A trusted name was proven.
        proven: bool,
    },
    /// A SIP connection broke (TLS or framing error).
    SipConnectionFailed {
        /// Its connection.
        conn: ConnId,
        /// Why.
        reason: String,
    },
    /// A SIP request or datagram was refused or dropped.
    SipRefused {
        /// Who sent it.
        peer: SocketAddr,
        /// What, and the answer (or that none was possible).
        detail: String,
        /// Hostile or broken input rather than a routine refusal.
        warning: bool,
    },
    /// A message was handed on between SIP and XMPP.
    Relayed {
        /// From a SIP user to XMPP (a MESSAGE translated into a stanza),
        /// rather than the other way.
        sip_to_xmpp: bool,
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
        /// Its body, only when `gateway.log_message_bodies` is on.
        body: Option<String>,
    },
    /// A message relayed between SIP and XMPP reached the other side: its
    /// stanza was written to an authenticated s2s stream, or its SIP
    /// MESSAGE got a 2xx. `after` is the time since it arrived, by the
    /// gateway's clock (the `now` of the two turns): the latency
    /// histograms.
    HandedOff {
        /// A SIP MESSAGE handed to XMPP, rather than the other way.
        sip_to_xmpp: bool,
        /// Since it arrived.
        after: std::time::Duration,
    },
    /// A message between SIP and XMPP was refused, with the error each
    /// side got.
    MessageRefused {
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
        /// Why and with what error.
        detail: String,
    },
    /// A SIP MESSAGE we sent was answered.
    MessageAnswered {
        /// Where it went.
        destination: String,
        /// The SIP status.
        status: u16,
        /// The stanza error it maps to, for a failure.
        condition: Option<StanzaCondition>,
        /// The reason phrase or more, for a failure.
        detail: String,
    },
    /// Protocol detail that changes nothing an operator acts on.
    Detail {
        /// The connection it concerns, if one.
        conn: Option<ConnId>,
        /// What.
        text: String,
    },
    /// A remote XMPP user's presence subscription to a local user was
    /// approved (the watcher gets `subscribed` and the user's presence).
    SubscriptionApproved {
        /// The local user watched.
        local_user: String,
        /// The watcher's bare JID.
        watcher: String,
        /// Why: the partner type, or the local user's invitation.
        why: &'static str,
    },
    /// A subscription waits for the local user's invitation (a
    /// `public-unverified` partner not contacted first).
    SubscriptionPending {
        /// The local user watched.
        local_user: String,
        /// The watcher's bare JID.
        watcher: String,
    },
    /// A subscription (or probe) was refused.
    SubscriptionRefused {
        /// The local user asked for.
        local_user: String,
        /// The would-be watcher's bare JID.
        watcher: String,
        /// Why, and what the watcher was answered.
        why: &'static str,
        /// A bound (`sip.max_watchers`) refused it: a warning.
        limit: bool,
    },
    /// A watcher unsubscribed: its authorization is gone.
    SubscriptionEnded {
        /// The local user watched.
        local_user: String,
        /// The former watcher's bare JID.
        watcher: String,
    },
    /// A local user's presence went to their approved watchers.
    PresenceSent {
        /// The local user.
        local_user: String,
        /// How many watchers got it.
        watchers: usize,
        /// How many translations it cost (one per disclosure level used,
        /// never one per watcher).
        translations: usize,
        /// Available (open) or not.
        available: bool,
    },
    /// A local SIP user's SUBSCRIBE to an XMPP contact's presence was
    /// accepted (200): a new notification dialog (`<presence
    /// type='subscribe'/>` went to the contact), or a refresh.
    WatchAccepted {
        /// The local user (the subscriber).
        local_user: String,
        /// The contact's bare JID.
        contact: String,
        /// The Expires granted, in seconds (0: the dialog ends).
        expires: u32,
        /// A refresh within an existing dialog.
        refresh: bool,
    },
    /// A local SIP user's SUBSCRIBE to an XMPP contact was refused.
    WatchRefused {
        /// The local user (the subscriber).
        local_user: String,
        /// The contact asked for, as the request named it.
        contact: String,
        /// The SIP status answered.
        status: u16,
        /// Why.
        why: String,
    },
    /// An XMPP contact answered a local user's subscription:
    /// `subscribed` (the dialogs become active) or `unsubscribed` (they
    /// end with `reason=rejected`).
    WatchAnswered {
        /// The local user (the subscriber).
        local_user: String,
        /// The contact's bare JID.
        contact: String,
        /// `subscribed` (true) or `unsubscribed`.
        authorized: bool,
        /// The dialogs it concerned.
        dialogs: usize,
    },
    /// A NOTIFY went to a local user's device.
    NotifySent {
        /// The local user (the subscriber).
        local_user: String,
        /// The contact whose presence it reports.
        contact: String,
        /// Its `Subscription-State`.
        state: String,
        /// Whether it carried a PIDF body.
        pidf: bool,
    },
    /// A notification dialog of a local user ended.
    WatchEnded {
        /// The local user (the subscriber).
        local_user: String,
        /// The contact's bare JID.
        contact: String,
        /// Why (expiry, `Expires: 0`, the contact's refusal, the answer to
        /// a NOTIFY).
        why: String,
        /// It was the user's last dialog with that contact: the contact
        /// was sent `<presence type='unavailable'/>` (unless it refused).
        last: bool,
    },
    /// Proxy mode: a NOTIFY from the SIP domain's presence server about a
    /// local user, in a subscription xfed holds for an XMPP watcher.
    PresenceNotified {
        /// The local user (the presentity).
        local_user: String,
        /// The watcher's bare JID.
        watcher: String,
        /// Its `Subscription-State`.
        state: String,
        /// Whether it carried a body.
        pidf: bool,
    },
    /// Proxy mode: a subscription xfed held at the SIP domain's presence
    /// server for an XMPP watcher ended.
    UpstreamEnded {
        /// The local user (the presentity).
        local_user: String,
        /// The watcher's bare JID.
        watcher: String,
        /// Why (expiry, a response, a NOTIFY's reason).
        why: String,
        /// What follows: a new subscription, the authorization revoked, or
        /// nothing until the watcher probes.
        then: &'static str,
    },
    /// The component link to the XMPP server came up or went down.
    ComponentLink {
        /// Up (stanzas flow) or down (they bounce until it is back).
        up: bool,
        /// The domain, the server and, when down, why and what next.
        detail: String,
    },
    /// The configuration was read again and applied (SIGHUP, `xfed
    /// reload`, an edit command).
    Reloaded {
        /// What changed, one line each.
        changes: Vec<String>,
        /// Streams closed because the new configuration no longer allows
        /// them.
        closed: usize,
    },
}

impl Event {
    /// How much an operator needs to see it.
    pub fn level(&self) -> Level {
        match self {
            Event::Accepted { .. } | Event::Detail { .. } => Level::Debug,
            Event::ConnectionRefused {
                refusal: Refusal::ShuttingDown,
                ..
            } => Level::Info,
            Event::ConnectionRefused { .. }
            | Event::ConnectFailed { .. }
            | Event::StreamFailed { .. }
            | Event::LimitReached { .. }
            | Event::Suppressed { .. }
            | Event::DialbackRefused { .. }
            | Event::RouteFailed { .. }
            | Event::SipConnectionFailed { .. } => Level::Warn,
            Event::SipConnectionExpired { routine, .. } => {
                if *routine {
                    Level::Info
                } else {
                    Level::Warn
                }
            }
            Event::SipCertificate {
                accepted, proven, ..
            } => match (accepted, proven) {
                (false, _) => Level::Warn,
                (true, true) => Level::Debug,
                (true, false) => Level::Info,
            },
            Event::SipRefused { warning, .. } => {
                if *warning {
                    Level::Warn
                } else {
                    Level::Info
                }
            }
            Event::MessageAnswered { condition, .. } => {
                if condition.is_some() {
                    Level::Info
                } else {
                    Level::Debug
                }
            }
            Event::BindingsExpired { .. }
            | Event::PresenceSent { .. }
            | Event::NotifySent { .. }
            | Event::PresenceNotified { .. } => Level::Debug,
            Event::WatchAccepted { .. }
            | Event::WatchRefused { .. }
            | Event::WatchAnswered { .. }
            | Event::WatchEnded { .. }
            | Event::UpstreamEnded { .. } => Level::Info,
            Event::SubscriptionRefused { limit: true, .. } => Level::Warn,
            Event::SubscriptionApproved { .. }
            | Event::SubscriptionPending { .. }
            | Event::SubscriptionRefused { .. }
            | Event::SubscriptionEnded { .. } => Level::Info,
            Event::Connecting { .. } => Level::Debug,
            Event::StreamAuthenticated { .. }
            | Event::StreamClosed { .. }
            | Event::NotDelivered { .. }
            | Event::Registered { .. }
            | Event::BindingsRestored { .. }
            | Event::DialogsRestored { .. }
            | Event::ContactRemoved { .. }
            | Event::Reloaded { .. }
            | Event::ComponentLink { up: true, .. }
            | Event::MessageRefused { .. } => Level::Info,
            Event::ComponentLink { up: false, .. } => Level::Warn,
            // One per message, so debug; a body (only with
            // `gateway.log_message_bodies`) is never logged above debug.
            Event::Relayed { .. } | Event::HandedOff { .. } => Level::Debug,
        }
    }

    /// A stable name of the variant, for structured logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Accepted { .. } => "accepted",
            Event::ConnectionRefused { .. } => "connection_refused",
            Event::Connecting { .. } => "connecting",
            Event::ConnectFailed { .. } => "connect_failed",
            Event::StreamAuthenticated { .. } => "stream_authenticated",
            Event::StreamFailed { .. } => "stream_failed",
            Event::StreamClosed { .. } => "stream_closed",
            Event::LimitReached { .. } => "limit_reached",
            Event::Suppressed { .. } => "suppressed",
            Event::DialbackRefused { .. } => "dialback_refused",
            Event::RouteFailed { .. } => "route_failed",
            Event::NotDelivered { .. } => "not_delivered",
            Event::Registered { .. } => "registered",
            Event::BindingsExpired { .. } => "bindings_expired",
            Event::BindingsRestored { .. } => "bindings_restored",
            Event::DialogsRestored { .. } => "dialogs_restored",
            Event::ContactRemoved { .. } => "contact_removed",
            Event::SipConnectionExpired { .. } => "sip_connection_expired",
            Event::SipCertificate { .. } => "sip_certificate",
            Event::SipConnectionFailed { .. } => "sip_connection_failed",
            Event::SipRefused { .. } => "sip_refused",
            Event::Relayed { .. } => "relayed",
            Event::HandedOff { .. } => "handed_off",
            Event::MessageRefused { .. } => "message_refused",
            Event::MessageAnswered { .. } => "message_answered",
            Event::Detail { .. } => "detail",
            Event::SubscriptionApproved { .. } => "subscription_approved",
            Event::SubscriptionPending { .. } => "subscription_pending",
            Event::SubscriptionRefused { .. } => "subscription_refused",
            Event::SubscriptionEnded { .. } => "subscription_ended",
            Event::PresenceSent { .. } => "presence_sent",
            Event::WatchAccepted { .. } => "watch_accepted",
            Event::WatchRefused { .. } => "watch_refused",
            Event::WatchAnswered { .. } => "watch_answered",
            Event::NotifySent { .. } => "notify_sent",
            Event::WatchEnded { .. } => "watch_ended",
            Event::PresenceNotified { .. } => "presence_notified",
            Event::UpstreamEnded { .. } => "upstream_ended",
            Event::Reloaded { .. } => "reloaded",
            Event::ComponentLink { .. } => "component_link",
        }
    }

    /// The connection it concerns, if one.
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            Event::Accepted { conn, .. }
            | Event::ConnectionRefused { conn, .. }
            | Event::Connecting { conn, .. }
            | Event::ConnectFailed { conn, .. }
            | Event::StreamAuthenticated { conn, .. }
            | Event::StreamFailed { conn, .. }
            | Event::StreamClosed { conn, .. }
            | Event::DialbackRefused { conn, .. }
            | Event::SipConnectionExpired { conn, .. }
            | Event::SipCertificate { conn, .. }
            | Event::SipConnectionFailed { conn, .. } => Some(*conn),
            Event::LimitReached { conn, .. }
            | Event::Suppressed { conn, .. }
            | Event::Detail { conn, .. } => *conn,
            Event::RouteFailed { .. }
            | Event::NotDelivered { .. }
            | Event::Registered { .. }
            | Event::BindingsExpired { .. }
            | Event::BindingsRestored { .. }
            | Event::DialogsRestored { .. }
            | Event::ContactRemoved { .. }
            | Event::SipRefused { .. }
            | Event::Relayed { .. }
            | Event::HandedOff { .. }
            | Event::MessageRefused { .. }
            | Event::MessageAnswered { .. }
            | Event::SubscriptionApproved { .. }
            | Event::SubscriptionPending { .. }
            | Event::SubscriptionRefused { .. }
            | Event::SubscriptionEnded { .. }
            | Event::PresenceSent { .. }
            | Event::WatchAccepted { .. }
            | Event::WatchRefused { .. }
            | Event::WatchAnswered { .. }
            | Event::NotifySent { .. }
            | Event::WatchEnded { .. }
            | Event::PresenceNotified { .. }
            | Event::UpstreamEnded { .. }
            | Event::Reloaded { .. }
            | Event::ComponentLink { .. } => None,
        }
    }

    /// A detail line.
    pub(crate) fn detail(conn: Option<ConnId>, text: impl Into<String>) -> Event {
        Event::Detail {
            conn,
            text: text.into(),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Accepted { listener, peer, .. } => {
                write!(f, "accepted {listener:?} connection from {peer}")
            }
            Event::ConnectionRefused { peer, refusal, .. } => match refusal {
                Refusal::ShuttingDown => write!(f, "refusing connection from {peer}: shutting down"),
                Refusal::Limit { key, limit } => {
                    let what = if key.starts_with("sip.") { "SIP" } else { "s2s" };
                    write!(
                        f,
                        "refusing {what} connection from {peer}: {key} {limit} reached"
                    )
                }
                Refusal::NotServed => {
                    write!(f, "refusing connection from {peer}: no SIP side runs")
                }
            },
            Event::Connecting {
                domain,
                addr,
                direct_tls,
                ..
            } => {
                let how = if *direct_tls { "direct TLS" } else { "STARTTLS" };
                write!(f, "connecting to {domain} at {addr} ({how})")
            }
            Event::ConnectFailed { reason, .. } => write!(f, "connect failed: {reason}"),
            Event::StreamAuthenticated {
                inbound,
                local,
                remote,
                method,
                tls,
                ..
            } => {
                let tls = tls.unwrap_or("no TLS");
                if *inbound {
                    write!(
                        f,
                        "inbound stream authenticated: {remote} -> {local} by {method:?} ({tls})"
                    )
                } else {
                    write!(
                        f,
                        "outbound stream ready: {local} -> {remote} by {method:?} ({tls})"
                    )
                }
            }
            Event::StreamFailed { reason, .. } => write!(f, "outbound stream failed: {reason}"),
            Event::StreamClosed { reason, .. } => write!(f, "connection finished: {reason}"),
            Event::LimitReached { key, detail, .. } => write!(f, "{detail} ({key})"),
            Event::Suppressed { count, .. } => {
                write!(f, "{count} similar events from this source were not logged")
            }
            Event::DialbackRefused {
                sender,
                target,
                condition,
                reason,
                ..
            } => write!(
                f,
                "dialback from {sender} to {target} refused with {condition}: {reason}"
            ),
            Event::RouteFailed {
                local,
                remote,
                condition,
                reason,
                bounced,
            } => write!(
                f,
                "route {local} -> {remote} failed ({reason}): bouncing {bounced} stanza(s) with {condition}"
            ),
            Event::NotDelivered { from, to } => write!(
                f,
                "{from} -> {to}: no local delivery, answering service-unavailable"
            ),
            Event::Registered {
                aor,
                bindings,
                peer,
            } => write!(f, "registrar: {aor} has {bindings} binding(s) (from {peer})"),
            Event::BindingsExpired { count } => {
                write!(f, "registrar: {count} binding(s) expired")
            }
            Event::BindingsRestored { restored, expired } => write!(
                f,
                "registrar: {restored} binding(s) restored, {expired} expired"
            ),
            Event::ContactRemoved {
                local_user,
                remote,
                what,
            } => write!(f, "operator removed {remote} from {local_user}'s contacts: {what}"),
            Event::DialogsRestored { restored, dropped } => write!(
                f,
                "presence: {restored} subscription dialog(s) restored, {dropped} dropped"
            ),
            Event::SipConnectionExpired {
                peer,
                tls,
                inbound,
                key,
                what,
                after_secs,
                ..
            } => write!(
                f,
                "SIP {} connection {} {peer} closed: {what} {after_secs}s ({key})",
                if *tls { "TLS" } else { "TCP" },
                if *inbound { "from" } else { "to" },
            ),
            Event::SipCertificate { outcome, .. } => f.write_str(outcome),
            Event::SipConnectionFailed { reason, .. } => write!(f, "SIP connection: {reason}"),
            Event::SipRefused { detail, .. } => f.write_str(detail),
            Event::Relayed { from, to, body, .. } => match body {
                Some(body) => write!(f, "message {from} -> {to}: {body}"),
                None => write!(f, "message {from} -> {to}"),
            },
            Event::HandedOff { sip_to_xmpp, after } => write!(
                f,
                "message handed to {} {:.3} s after it arrived",
                if *sip_to_xmpp { "XMPP" } else { "SIP" },
                after.as_secs_f64()
            ),
            Event::MessageRefused { from, to, detail } => write!(f, "{from} -> {to}: {detail}"),
            Event::MessageAnswered {
                destination,
                status,
                condition,
                detail,
            } => match condition {
                Some(c) => write!(
                    f,
                    "MESSAGE to {destination} answered {status} {detail}: {c} to the XMPP sender"
                ),
                None => write!(f, "MESSAGE to {destination} answered {status}"),
            },
            Event::Detail { text, .. } => f.write_str(text),
            Event::SubscriptionApproved {
                local_user,
                watcher,
                why,
            } => write!(
                f,
                "presence: {watcher} may see {local_user} ({why}); subscribed"
            ),
            Event::SubscriptionPending {
                local_user,
                watcher,
            } => write!(
                f,
                "presence: {watcher} asks to see {local_user}; pending until {local_user} writes to them"
            ),
            Event::SubscriptionRefused {
                local_user,
                watcher,
                why,
                ..
            } => write!(f, "presence: {watcher} may not see {local_user}: {why}"),
            Event::SubscriptionEnded {
                local_user,
                watcher,
            } => write!(
                f,
                "presence: {watcher} no longer sees {local_user}; unsubscribed"
            ),
            Event::PresenceSent {
                local_user,
                watchers,
                translations,
                available,
            } => write!(
                f,
                "presence: {local_user} is {} to {watchers} watcher(s) ({translations} translation(s))",
                if *available { "available" } else { "unavailable" }
            ),
            Event::WatchAccepted {
                local_user,
                contact,
                expires,
                refresh,
            } => write!(
                f,
                "presence: {local_user} watches {contact} for {expires} s{}",
                if *refresh { " (refresh)" } else { "; subscribe sent" }
            ),
            Event::WatchRefused {
                local_user,
                contact,
                status,
                why,
            } => write!(
                f,
                "presence: {local_user} may not watch {contact}: {why}; {status}"
            ),
            Event::WatchAnswered {
                local_user,
                contact,
                authorized,
                dialogs,
            } => write!(
                f,
                "presence: {contact} {} {local_user} ({dialogs} dialog(s))",
                if *authorized { "accepted" } else { "refused" }
            ),
            Event::NotifySent {
                local_user,
                contact,
                state,
                pidf,
            } => write!(
                f,
                "presence: NOTIFY to {local_user} about {contact}: {state}{}",
                if *pidf { ", PIDF" } else { ", no body" }
            ),
            Event::WatchEnded {
                local_user,
                contact,
                why,
                last,
            } => write!(
                f,
                "presence: a dialog of {local_user} watching {contact} ended: {why}{}",
                if *last { " (the last)" } else { "" }
            ),
            Event::PresenceNotified {
                local_user,
                watcher,
                state,
                pidf,
            } => write!(
                f,
                "presence: NOTIFY about {local_user} for {watcher}: {state}{}",
                if *pidf { ", PIDF" } else { ", no body" }
            ),
            Event::UpstreamEnded {
                local_user,
                watcher,
                why,
                then,
            } => write!(
                f,
                "presence: the subscription to {local_user} for {watcher} ended: {why}; {then}"
            ),
            Event::ComponentLink { up: true, detail } => write!(f, "component link up: {detail}"),
            Event::ComponentLink { up: false, detail } => {
                write!(f, "component link down: {detail}")
            }
            Event::Reloaded { changes, closed } if changes.is_empty() => write!(
                f,
                "configuration reloaded: nothing changed; {closed} stream(s) closed"
            ),
            Event::Reloaded { changes, closed } => write!(
                f,
                "configuration reloaded: {}; {closed} stream(s) closed",
                changes.join("; ")
            ),
        }
    }
}
