//! Pager-mode MESSAGE requests in and out: what the RFC 7572 mapping
//! (`translate::im`) reads from a SIP request, and the request it makes.

use crate::jid::Jid;
use crate::sip::{Method, Request, Scheme, Uri};
use crate::translate::chatstate::IS_COMPOSING_CONTENT_TYPE;
use crate::translate::{is_composing_xml, jid_to_sip, ComposingState, SipIm};

use super::Target;

/// Reads the fields of a MESSAGE for the mapping; errors are the SIP
/// answer. The XMPP address is the Request-URI when it names a user (the
/// user agent sent to xfed as its outbound proxy), else the To URI.
pub fn sip_im_of(req: &Request) -> Result<SipIm, (u16, &'static str)> {
    let to = req.headers.to().map_err(|_| (400, "Bad To"))?;
    let from = req.headers.from().map_err(|_| (400, "Bad From"))?;
    // RFC 7247 section 8: sips: is never gatewayed (XMPP cannot promise
    // TLS on every hop).
    if req.uri.scheme() == Scheme::Sips || to.uri().scheme() == Scheme::Sips {
        return Err((403, "SIPS Not Gatewayed"));
    }
    let target = if req.uri.user().is_some_and(|u| !u.is_empty()) {
        &req.uri
    } else {
        to.uri()
    };
    let body = std::str::from_utf8(&req.body).map_err(|_| (400, "Body Not UTF-8"))?;
    Ok(SipIm {
        from: from.uri().to_string(),
        to: target.to_string(),
        body: body.to_owned(),
        content_type: req
            .headers
            .content_type()
            .unwrap_or("text/plain")
            .to_owned(),
        subject: req.headers.get("Subject").map(str::to_owned),
        call_id: req.headers.call_id().ok().map(str::to_owned),
        language: req.headers.get("Content-Language").map(str::to_owned),
    })
}

/// An isComposing status from `from` to `to` (RFC 3994), as the mapping's
/// input.
pub fn is_composing_im(from: &Jid, to: &Jid, state: ComposingState) -> SipIm {
    SipIm {
        from: jid_to_sip(from),
        to: jid_to_sip(&to.bare()),
        body: is_composing_xml(state.to_chat_state(), Some(120)),
        content_type: IS_COMPOSING_CONTENT_TYPE.to_owned(),
        subject: None,
        call_id: None,
        language: None,
    }
}

/// The MESSAGE for `im` toward `target` (without Via, which depends on
/// the transport). No Contact: RFC 3428 forbids it.
pub fn message_request(
    im: &SipIm,
    target: &Target,
    call_id: &str,
    from_tag: &str,
) -> Result<Request, String> {
    let from = Uri::parse(&im.from).map_err(|e| format!("From {}: {e}", im.from))?;
    let mut r = Request::new(Method::Message, target.uri.clone());
    let h = &mut r.headers;
    h.push("Max-Forwards", "70");
    h.push("From", format!("<{from}>;tag={from_tag}"));
    h.push("To", format!("<{}>", target.to));
    h.push("Call-ID", call_id);
    h.push("CSeq", "1 MESSAGE");
    if let Some(s) = &im.subject {
        h.push("Subject", s.as_str());
    }
    if let Some(l) = &im.language {
        h.push("Content-Language", l.as_str());
    }
    h.push("Content-Type", im.content_type.as_str());
    r.body = im.body.as_bytes().to_vec();
    Ok(r)
}
