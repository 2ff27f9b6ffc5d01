//! Error mapping between XMPP stanza errors and SIP responses (RFC 7247
//! section 7, Tables 2 and 3 with their notes).
//!
//! The RFC's mappings are SHOULDs; where a row offers two codes, the choice
//! is made here once so that every caller answers alike.

use crate::xmpp::stanza::{ErrorType, StanzaCondition};

/// The SIP response code for an XMPP error condition (RFC 7247 Table 2).
///
/// `to_full_jid` says whether the failed stanza was addressed to a full JID
/// (one device: the 4xx code) or a bare JID (the user: the 6xx code), notes
/// 1 and 2. `gone_has_new_address` is whether `<gone/>` carried a new
/// address as character data (note 3: MUST be 301, else MUST be 410).
///
/// Choices where the RFC leaves one:
/// - `service-unavailable` is never 503, which SIP reads as "this whole
///   server is down" (note 5): 405 for a full JID, 403 for a bare JID.
/// - `remote-server-not-found` is 404: the gateway raises it when DNS says
///   the domain has no server, case (a) of note 4; a domain that could not
///   be reached is `remote-server-timeout`, which is 408.
/// - `unexpected-request` is 491 (Request Pending), which keeps the XMPP
///   meaning "out of order, retry later" that 400 would lose.
pub fn xmpp_to_sip(
    condition: StanzaCondition,
    to_full_jid: bool,
    gone_has_new_address: bool,
) -> u16 {
    use StanzaCondition as C;
    let device_or_user = |device: u16, user: u16| if to_full_jid { device } else { user };
    match condition {
        C::BadRequest
        | C::Conflict
        | C::JidMalformed
        | C::SubscriptionRequired
        | C::UndefinedCondition => 400,
        C::FeatureNotImplemented => device_or_user(405, 501),
        C::Forbidden => device_or_user(403, 603),
        C::Gone if gone_has_new_address => 301,
        C::Gone => 410,
        C::InternalServerError | C::ResourceConstraint => 500,
        C::ItemNotFound => device_or_user(404, 604),
        C::NotAcceptable => device_or_user(406, 606),
        C::NotAllowed | C::PolicyViolation => 403,
        C::NotAuthorized => 401,
        C::RecipientUnavailable => device_or_user(480, 600),
        C::Redirect => 302,
        C::RegistrationRequired => 407,
        C::RemoteServerNotFound => 404,
        C::RemoteServerTimeout => 408,
        C::ServiceUnavailable => device_or_user(405, 403),
        C::UnexpectedRequest => 491,
    }
}

/// The XMPP condition for a SIP code listed in RFC 7247 Table 3.
fn table3(code: u16) -> Option<StanzaCondition> {
    use StanzaCondition as C;
    Some(match code {
        300 | 302 | 305 => C::Redirect,
        // Note 1: from 301 the <gone/> carries the new address (the
        // caller takes it from Contact); from 410 it carries none.
        301 | 410 => C::Gone,
        380 => C::NotAcceptable,
        // Note 2: payment-required no longer exists.
        400 | 402 | 493 => C::BadRequest,
        401 => C::NotAuthorized,
        // Note 3: not-allowed or policy-violation would also do.
        403 => C::Forbidden,
        // Note 4: remote-server-not-found would also do.
        404 | 481 | 484 | 485 | 604 => C::ItemNotFound,
        405 | 420 | 439 | 501 => C::FeatureNotImplemented,
        406 | 415 | 416 | 421 | 482 | 483 | 488 | 505 | 606 => C::NotAcceptable,
        407 => C::RegistrationRequired,
        // Note 5: remote-server-not-found would also do.
        408 | 504 => C::RemoteServerTimeout,
        413 | 414 | 440 | 489 | 513 => C::PolicyViolation,
        423 => C::ResourceConstraint,
        430 | 480 | 486 | 487 | 600 | 603 => C::RecipientUnavailable,
        // Note 9: 503 is about the server, so not service-unavailable.
        500 | 503 => C::InternalServerError,
        502 => C::RemoteServerNotFound,
        491 => C::UnexpectedRequest,
        _ => return None,
    })
}

/// The XMPP condition and error type for a SIP failure response (RFC 7247
/// Table 3).
///
/// Codes the table does not list map by class: 3xx `redirect`, 4xx
/// `bad-request`, 5xx `internal-server-error`, 6xx `recipient-unavailable`.
/// No XMPP error corresponds to 1xx or 2xx; a code outside 300-699 (which a
/// caller should never pass) yields `undefined-condition`.
///
/// The type is the condition's RFC 6120 default (rfcs.md 4.3, implementation note),
/// except that a response with `Retry-After` always gives `wait`: the SIP
/// side said when to try again, which is what `wait` means.
pub fn sip_to_xmpp(code: u16, has_retry_after: bool) -> (StanzaCondition, ErrorType) {
    use StanzaCondition as C;
    let condition = table3(code).unwrap_or(match code {
        300..=399 => C::Redirect,
        400..=499 => C::BadRequest,
        500..=599 => C::InternalServerError,
        600..=699 => C::RecipientUnavailable,
        _ => C::UndefinedCondition,
    });
    let error_type = if has_retry_after {
        ErrorType::Wait
    } else {
        condition.default_type()
    };
    (condition, error_type)
}
