//! The few X.509 fields webpki does not hand out: the raw subjectAltName
//! (for its otherName entries), issuer and subject (to tell a self-signed
//! certificate), and notAfter (to know when a validated chain expires).
//!
//! A walk over the DER with the `der` crate's TLV reader (strict DER: minimal
//! lengths, no indefinite forms) rather than a full X.509 model: it is all we
//! need, and x509-parser would bring nom, time and two versions of syn.

use der::asn1::{AnyRef, GeneralizedTime, ObjectIdentifier, UtcTime};
use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};

/// id-ce-subjectAltName (RFC 5280 section 4.2.1.6).
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
/// id-ce-extKeyUsage (RFC 5280 section 4.2.1.12).
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");

/// Why a certificate could not be read; the detail is for logs.
#[derive(Debug)]
pub(crate) struct Malformed(pub(crate) String);

impl From<der::Error> for Malformed {
    fn from(e: der::Error) -> Self {
        Malformed(e.to_string())
    }
}

/// What we read from one certificate.
pub(crate) struct CertFields<'a> {
    /// Content octets of the issuer Name.
    pub issuer: &'a [u8],
    /// Content octets of the subject Name.
    pub subject: &'a [u8],
    /// notAfter, in seconds since the Unix epoch.
    pub not_after: u64,
    /// Content octets of the subjectAltName extension's value (the
    /// GeneralNames DER), if the certificate has one.
    pub subject_alt_name: Option<&'a [u8]>,
    /// The key purposes of the extKeyUsage extension, if the certificate
    /// has one (`xfed plan`: may it serve as a TLS client certificate?).
    pub ext_key_usage: Option<Vec<ObjectIdentifier>>,
}

/// Reads the fields above from a DER certificate.
pub(crate) fn parse(cert: &[u8]) -> Result<CertFields<'_>, Malformed> {
    let cert = expect(AnyRef::from_der(cert)?, Tag::Sequence)?;
    let mut outer = SliceReader::new(cert.value())?;
    let tbs = expect(AnyRef::decode(&mut outer)?, Tag::Sequence)?;
    let mut r = SliceReader::new(tbs.value())?;

    let mut field = AnyRef::decode(&mut r)?;
    if field.tag() == context(0, true) {
        // version [0] EXPLICIT; the serial number follows.
        field = AnyRef::decode(&mut r)?;
    }
    expect(field, Tag::Integer)?;
    expect(AnyRef::decode(&mut r)?, Tag::Sequence)?; // signature AlgorithmIdentifier
    let issuer = expect(AnyRef::decode(&mut r)?, Tag::Sequence)?.value();
    let validity = expect(AnyRef::decode(&mut r)?, Tag::Sequence)?;
    let subject = expect(AnyRef::decode(&mut r)?, Tag::Sequence)?.value();
    expect(AnyRef::decode(&mut r)?, Tag::Sequence)?; // subjectPublicKeyInfo

    let mut times = SliceReader::new(validity.value())?;
    let _not_before = AnyRef::decode(&mut times)?;
    let not_after = time(AnyRef::decode(&mut times)?)?;
    times.finish()?;

    let mut subject_alt_name = None;
    let mut ext_key_usage = None;
    while !r.is_finished() {
        let field = AnyRef::decode(&mut r)?;
        if field.tag() != context(3, true) {
            // issuerUniqueID [1] / subjectUniqueID [2]: not ours.
            continue;
        }
        let extensions = expect(AnyRef::from_der(field.value())?, Tag::Sequence)?;
        let mut exts = SliceReader::new(extensions.value())?;
        while !exts.is_finished() {
            let ext = expect(AnyRef::decode(&mut exts)?, Tag::Sequence)?;
            let mut e = SliceReader::new(ext.value())?;
            let id: ObjectIdentifier = e.decode()?;
            let mut value = AnyRef::decode(&mut e)?;
            if value.tag() == Tag::Boolean {
                value = AnyRef::decode(&mut e)?; // critical
            }
            let value = expect(value, Tag::OctetString)?;
            e.finish()?;
            if id == SUBJECT_ALT_NAME {
                if subject_alt_name.is_some() {
                    // RFC 5280 4.2: an extension appears at most once.
                    return Err(Malformed("two subjectAltName extensions".into()));
                }
                subject_alt_name = Some(value.value());
            } else if id == EXT_KEY_USAGE {
                let seq = expect(AnyRef::from_der(value.value())?, Tag::Sequence)?;
                let mut purposes = SliceReader::new(seq.value())?;
                let mut list = Vec::new();
                while !purposes.is_finished() {
                    list.push(purposes.decode::<ObjectIdentifier>()?);
                }
                ext_key_usage = Some(list);
            }
        }
    }
    Ok(CertFields {
        issuer,
        subject,
        not_after,
        subject_alt_name,
        ext_key_usage,
    })
}

/// A context-specific tag `[number]`.
pub(crate) const fn context(number: u32, constructed: bool) -> Tag {
    Tag::ContextSpecific {
        constructed,
        number: TagNumber(number),
    }
}

/// `any` if it carries `tag`, else an error naming both.
pub(crate) fn expect(any: AnyRef<'_>, tag: Tag) -> Result<AnyRef<'_>, Malformed> {
    if any.tag() == tag {
        Ok(any)
    } else {
        Err(Malformed(format!("expected {tag}, found {}", any.tag())))
    }
}

/// An X.509 Time (UTCTime or GeneralizedTime) as Unix seconds.
fn time(any: AnyRef<'_>) -> Result<u64, Malformed> {
    let since_epoch = match any.tag() {
        Tag::UtcTime => any.decode_as::<UtcTime>()?.to_unix_duration(),
        Tag::GeneralizedTime => any.decode_as::<GeneralizedTime>()?.to_unix_duration(),
        other => return Err(Malformed(format!("expected a time, found {other}"))),
    };
    Ok(since_epoch.as_secs())
}
