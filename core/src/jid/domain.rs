//! Domainpart preparation (RFC 7622 section 3.2).

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, Hyphens, Uts46};

use super::{JidError, JidPart, MAX_PART, MAX_RAW_PART};

/// Longest DNS label, counted in its A-label (wire) form.
const MAX_LABEL: usize = 63;

/// Prepares a domainpart into its canonical form: U-labels, lowercase, NFC,
/// no trailing dot; IP literals in their RFC 5952 / dotted-quad form so that
/// `[2001:DB8::1]` and `[2001:db8:0::1]` are the same peer.
///
/// UTS 46 processing (nontransitional, STD3 ASCII rules, hyphens checked at
/// the ends of labels) stands in for IDNA2008: it performs the width and
/// case mapping and normalisation RFC 7622 section 3.2.3 asks for and turns
/// A-labels into U-labels. It is a little more lenient than strict IDNA2008
/// (some symbols, and `--` in the third and fourth positions, are let
/// through), which only matters for names that cannot be registered anyway.
pub(super) fn prepare(raw: &str) -> Result<Cow<'_, str>, JidError> {
    prepare_with(raw, true)
}

/// True when UTS 46 `to_unicode` (STD3 rules, hyphens checked at the ends
/// of labels) is plain ASCII lowercasing for `name`: every label is
/// non-empty, made of ASCII letters, digits and hyphens, neither starts nor
/// ends with a hyphen, and is not an A-label (`xn--` in any case), which
/// would be decoded. Those code points are valid or mapped to their
/// lowercase under STD3, and the bidi and joiner checks have nothing to do
/// on ASCII. Lowercasing keeps a name of this form, so the result prepares
/// to itself. Everything else is left to `to_unicode`.
fn is_plain_ldh_name(name: &str) -> bool {
    name.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b.first() != Some(&b'-')
            && b.last() != Some(&b'-')
            && !b.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"))
    })
}

/// [`prepare`], with the ASCII fast path turned off when `fast` is false so
/// that tests can check the two agree.
fn prepare_with(raw: &str, fast: bool) -> Result<Cow<'_, str>, JidError> {
    if raw.len() > MAX_RAW_PART {
        return Err(JidError::TooLong(JidPart::Domain));
    }
    // RFC 7622 3.2: one trailing dot is the DNS root; it is not part of the name.
    let raw = raw.strip_suffix('.').unwrap_or(raw);
    if raw.is_empty() {
        return Err(JidError::Empty(JidPart::Domain));
    }
    if let Some(inner) = raw.strip_prefix('[') {
        let addr = inner
            .strip_suffix(']')
            .and_then(|v6| v6.parse::<Ipv6Addr>().ok())
            .ok_or(JidError::BadIpLiteral)?;
        return Ok(Cow::Owned(format!("[{addr}]")));
    }

    let plain = fast && is_plain_ldh_name(raw);
    let name = if plain {
        if raw.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(raw.to_ascii_lowercase())
        } else {
            Cow::Borrowed(raw)
        }
    } else {
        let (name, result) =
            Uts46::new().to_unicode(raw.as_bytes(), AsciiDenyList::STD3, Hyphens::CheckFirstLast);
        if result.is_err() {
            return Err(JidError::BadDomain);
        }
        Cow::Owned(name.into_owned())
    };

    // A name whose last label is numeric can only be an IPv4 address: no
    // top-level domain is all digits, and accepting `1.2.3` or `010.0.0.1`
    // as names would let two spellings of one address differ.
    let last = name.rsplit('.').next().unwrap_or_default();
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        let addr = name
            .parse::<Ipv4Addr>()
            .map_err(|_| JidError::BadIpLiteral)?;
        return Ok(Cow::Owned(addr.to_string()));
    }

    for label in name.split('.') {
        if label.is_empty() {
            return Err(JidError::EmptyLabel);
        }
        let wire_len = if label.is_ascii() {
            label.len()
        } else {
            idna::punycode::encode_str(label)
                .ok_or(JidError::BadDomain)?
                .len()
                + "xn--".len()
        };
        if wire_len > MAX_LABEL {
            return Err(JidError::LabelTooLong);
        }
    }
    if name.len() > MAX_PART {
        return Err(JidError::TooLong(JidPart::Domain));
    }
    // The prepared form must prepare to itself, or a JID would not survive
    // being written out and read back: an A-label can decode to a U-label
    // that is not valid on its own (found by the jid fuzzer). A plain name
    // is lowercase LDH already, which `to_unicode` leaves alone.
    if !plain {
        let (again, check) = Uts46::new().to_unicode(
            name.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
        );
        if check.is_err() || again != name {
            return Err(JidError::BadDomain);
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_decoding_to_an_invalid_u_label_is_refused() {
        assert_eq!(prepare("XN--XN--l--XXN--XJJX"), Err(JidError::BadDomain));
    }

    fn ok(raw: &str) -> String {
        match prepare(raw) {
            Ok(s) => s.into_owned(),
            Err(e) => panic!("{raw:?} rejected: {e}"),
        }
    }

    #[test]
    fn names_are_lowercased_and_lose_one_trailing_dot() {
        assert_eq!(ok("Example.COM"), "example.com");
        assert_eq!(ok("example.com."), "example.com");
        assert_eq!(ok("localhost"), "localhost");
        assert_eq!(prepare("example.com.."), Err(JidError::EmptyLabel));
        assert_eq!(prepare("."), Err(JidError::Empty(JidPart::Domain)));
        assert_eq!(prepare("a..b"), Err(JidError::EmptyLabel));
        assert_eq!(prepare(".a"), Err(JidError::EmptyLabel));
    }

    #[test]
    fn a_labels_become_u_labels() {
        assert_eq!(ok("xn--bcher-kva.example"), "b\u{fc}cher.example");
        assert_eq!(ok("XN--BCHER-KVA.example"), "b\u{fc}cher.example");
        assert_eq!(ok("B\u{dc}CHER.example"), "b\u{fc}cher.example");
        // NFD input is composed.
        assert_eq!(ok("bu\u{308}cher.example"), "b\u{fc}cher.example");
        // Fullwidth letters and the ideographic full stop are mapped.
        assert_eq!(ok("\u{ff25}xample\u{3002}com"), "example.com");
        assert_eq!(ok("fa\u{df}.de"), "fa\u{df}.de");
        assert_eq!(prepare("xn--zz.example"), Err(JidError::BadDomain));
        // Oversized and overflowing Punycode is refused, not a panic.
        let long = format!("xn--{}.example", "a".repeat(4000));
        assert!(prepare(&long).is_err());
        let overflow = format!("xn--{}.example", "9".repeat(4000));
        assert!(prepare(&overflow).is_err());
        assert!(prepare(&format!("xn--{}", "\u{10ffff}".repeat(1000))).is_err());
    }

    #[test]
    fn std3_and_hyphen_rules() {
        for bad in [
            "-example.com",
            "example-.com",
            "_xmpp.example.com",
            "exa mple.com",
            "exam:ple.com",
            "exam@ple.com",
            "exam/ple.com",
            "exa\u{0}mple.com",
            "\u{2603}\u{fe0f}\u{200d}.com",
            // Compatibility forms that map to separators must not split.
            "a\u{ff0f}b.com",
            "a\u{ff20}b.com",
            "\u{2100}.com",
            "\u{ff3b}::1\u{ff3d}",
        ] {
            assert!(prepare(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(ok("r3---sn-abc.example"), "r3---sn-abc.example");
        // Default-ignorable code points vanish, as UTS 46 maps them.
        assert_eq!(ok("a\u{ad}b.com"), "ab.com");
        assert_eq!(prepare("\u{ad}.com"), Err(JidError::EmptyLabel));
    }

    #[test]
    fn label_lengths_count_the_a_label() {
        let l63 = "a".repeat(63);
        assert_eq!(ok(&format!("{l63}.com")), format!("{l63}.com"));
        assert_eq!(prepare(&format!("{l63}a.com")), Err(JidError::LabelTooLong));
        // 20 scattered ideographs: 60 octets as UTF-8, 64 as an A-label.
        let wide: String = (0..20)
            .filter_map(|i| char::from_u32(0x4e00 + i * 997))
            .collect();
        assert!(wide.len() <= 63);
        let a_label_len = idna::punycode::encode_str(&wide).map_or(0, |p| p.len() + 4);
        assert!(a_label_len > 63, "{a_label_len}");
        assert_eq!(prepare(&format!("{wide}.cn")), Err(JidError::LabelTooLong));
    }

    #[test]
    fn part_length_is_checked_after_preparation() {
        let label = "a".repeat(63);
        let mut name = vec![label.as_str(); 16].join(".");
        name.truncate(1023);
        assert!(name.len() == 1023 && !name.ends_with('.'));
        assert_eq!(ok(&name).len(), 1023);
        assert_eq!(ok(&format!("{name}.")).len(), 1023);
        let too_long = format!("b.{name}");
        assert_eq!(prepare(&too_long), Err(JidError::TooLong(JidPart::Domain)));
        assert_eq!(
            prepare(&"a.".repeat(MAX_RAW_PART)),
            Err(JidError::TooLong(JidPart::Domain))
        );
    }

    /// LDH-ish names with the edge cases of the fast path weighted up:
    /// A-labels in any case, hyphens at label ends, empty labels, numeric
    /// last labels, trailing dots, and characters outside LDH.
    fn ascii_name() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let label = prop_oneof![
            6 => "[a-zA-Z0-9-]{0,8}",
            1 => "[xX][nN]--[a-zA-Z0-9-]{0,8}",
            1 => Just("xn--bcher-kva".to_owned()),
            1 => "[0-9]{1,4}",
            1 => "[a-zA-Z0-9_ @/:\\[\\]!*-]{1,4}",
            1 => Just("a".repeat(64)),
        ];
        (prop::collection::vec(label, 1..5), any::<bool>()).prop_map(|(labels, dot)| {
            let mut s = labels.join(".");
            if dot {
                s.push('.');
            }
            s
        })
    }

    proptest::proptest! {
        #[test]
        fn fast_path_agrees_with_uts46(s in ascii_name()) {
            let fast = prepare_with(&s, true).map(Cow::into_owned);
            let slow = prepare_with(&s, false).map(Cow::into_owned);
            proptest::prop_assert_eq!(fast, slow, "{:?}", s);
        }
    }

    #[test]
    fn fast_path_edge_cases() {
        for s in [
            "Example.COM",
            "example.com.",
            "-a.com",
            "a-.com",
            "a--b.com",
            "XN--BCHER-KVA.de",
            "xN--zz.com",
            "xn-a.com",
            "1.2.3.4",
            "1.2.3",
            "a..b",
            ".a",
            "a.",
            "..",
            "a.b-",
            "123.example",
            "example.123",
        ] {
            assert_eq!(
                prepare_with(s, true).map(Cow::into_owned),
                prepare_with(s, false).map(Cow::into_owned),
                "{s:?}"
            );
        }
        assert!(matches!(prepare("capulet.example"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn ip_literals() {
        assert_eq!(ok("192.168.0.1"), "192.168.0.1");
        assert_eq!(ok("192.168.0.1."), "192.168.0.1");
        assert_eq!(ok("\u{ff11}.\u{ff12}.\u{ff13}.\u{ff14}"), "1.2.3.4");
        assert_eq!(ok("[::1]"), "[::1]");
        assert_eq!(ok("[2001:DB8:0::1]"), "[2001:db8::1]");
        assert_eq!(ok("[::ffff:192.0.2.1]"), "[::ffff:192.0.2.1]");
        for bad in [
            "256.1.1.1",
            "1.2.3",
            "010.0.0.1",
            "example.123",
            "[::1",
            "[]",
            "[example.com]",
            "[fe80::1%eth0]",
            "[192.0.2.1]",
            "::1",
        ] {
            assert!(
                matches!(
                    prepare(bad),
                    Err(JidError::BadIpLiteral | JidError::BadDomain)
                ),
                "{bad:?} gave {:?}",
                prepare(bad)
            );
        }
        assert_eq!(prepare("[::1"), Err(JidError::BadIpLiteral));
        assert_eq!(prepare("1.2.3"), Err(JidError::BadIpLiteral));
        // A numeric label elsewhere is fine.
        assert_eq!(ok("123.example"), "123.example");
    }
}
