//! Properties of `xfed_core::jid`: canonical forms round trip, parsing never
//! panics, and XEP-0106 escaping is lossless.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use xfed_core::jid::{escape_local, unescape_local, Jid, JidError};

/// Characters PRECIS UsernameCaseMapped accepts, in mixed case and width,
/// so that preparation has work to do.
fn local_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::char::range('a', 'z'),
        2 => prop::char::range('A', 'Z'),
        1 => prop::char::range('0', '9'),
        1 => prop::sample::select(vec![
            '.', '_', '-', '+', '!', '#', '$', '%', '*', '=', '?', '^', '`', '{', '|', '}', '~',
            '\\', ',', ';', '(', ')', '[', ']',
        ]),
        1 => prop::sample::select(vec![
            '\u{e9}', '\u{df}', '\u{3c0}', '\u{3a3}', '\u{3c2}', '\u{436}', '\u{4e2d}',
            '\u{ff21}', '\u{ff41}', '\u{fc}', '\u{c5}',
        ]),
    ]
}

fn localpart() -> impl Strategy<Value = String> {
    prop::collection::vec(local_char(), 1..24).prop_map(|v| v.into_iter().collect())
}

fn ldh_label() -> impl Strategy<Value = String> {
    // Not an A-label ("xn--" and two more hyphens): those must decode,
    // and random ones do not (the fixed labels below carry real ones).
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?"
        .prop_filter("not an A-label", |l| !(l.len() >= 4 && l[2..4] == *"--"))
}

fn name_label() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ldh_label(),
        1 => prop::sample::select(vec![
            "b\u{fc}cher", "xn--bcher-kva", "M\u{fc}nchen", "\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}",
            "\u{4f8b}\u{3048}", "fa\u{df}", "\u{ff25}xample", "xn--r8jz45g",
        ])
        .prop_map(String::from),
    ]
}

fn domainpart() -> impl Strategy<Value = String> {
    let name = (prop::collection::vec(name_label(), 0..4), "[a-zA-Z]{2,6}").prop_map(
        |(mut labels, tld)| {
            labels.push(tld);
            labels.join(".")
        },
    );
    let base = prop_oneof![
        6 => name,
        1 => any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
        1 => any::<[u16; 8]>().prop_map(|s| format!("[{}]", Ipv6Addr::from(s))),
        1 => any::<[u16; 8]>().prop_map(|s| {
            let hex: Vec<String> = s.iter().map(|x| format!("{x:X}")).collect();
            format!("[{}]", hex.join(":"))
        }),
    ];
    (base, any::<bool>()).prop_map(|(d, dot)| if dot { format!("{d}.") } else { d })
}

fn resource_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::range(' ', '~'),
        1 => prop::sample::select(vec![
            '\u{265a}', '\u{fc}', '\u{4e2d}', '\u{a0}', '\u{2126}', '\u{301}', '\u{1f600}',
        ]),
    ]
}

fn resourcepart() -> impl Strategy<Value = String> {
    prop::collection::vec(resource_char(), 1..24).prop_map(|v| v.into_iter().collect::<String>())
}

fn jid_string() -> impl Strategy<Value = String> {
    (
        prop::option::of(localpart()),
        domainpart(),
        prop::option::of(resourcepart()),
    )
        .prop_map(|(l, d, r)| {
            let mut s = String::new();
            if let Some(l) = l {
                s.push_str(&l);
                s.push('@');
            }
            s.push_str(&d);
            if let Some(r) = r {
                s.push('/');
                s.push_str(&r);
            }
            s
        })
}

/// Strings rich in the characters that matter to JID syntax.
fn jidish_noise() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![
                '@', '/', '.', '[', ']', ':', '\\', ' ', '-', '%', '\u{ff20}', '\u{ff0f}',
                '\u{3002}', '\u{200d}', '\u{5d0}', '\u{301}', '\u{0}', '\u{fffd}',
            ]),
            prop::char::range('0', '9'),
            prop::char::range('a', 'f'),
            prop::char::range('X', 'Z'),
            any::<char>(),
        ],
        0..48,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// Parsing the display form gives the same JID, and displaying is stable.
fn assert_canonical(j: &Jid) -> Result<(), TestCaseError> {
    let shown = j.to_string();
    let again = Jid::parse(&shown);
    prop_assert_eq!(again.as_ref(), Ok(j), "reparse of {:?}", shown);
    prop_assert_eq!(again.map(|a| a.to_string()), Ok(shown.clone()));
    // The parts put back together give the display form.
    let mut rebuilt = String::new();
    if let Some(l) = j.local() {
        rebuilt.push_str(l);
        rebuilt.push('@');
    }
    rebuilt.push_str(j.domain());
    if let Some(r) = j.resource() {
        rebuilt.push('/');
        rebuilt.push_str(r);
    }
    prop_assert_eq!(rebuilt, shown);
    let bare = j.bare();
    prop_assert_eq!(bare.resource(), None);
    prop_assert_eq!(bare.domain(), j.domain());
    Ok(())
}

/// Escaper input: the XEP-0106 characters, hex digits and ready-made
/// backslash sequences, exact and near misses.
fn escapable() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![
                " ", "\"", "&", "'", "/", ":", "<", ">", "@", "\\", "\\20", "\\5c", "\\5C", "\\2f",
                "\\2F", "\\27", "\\3a", "\\2", "\\g0", "2", "0", "5", "c", "f", "a", "3",
            ])
            .prop_map(String::from),
            "[a-z0-9.]{1,3}",
        ],
        0..16,
    )
    .prop_map(|v| v.concat())
}

const LOCAL_FORBIDDEN: [char; 9] = [' ', '"', '&', '\'', '/', ':', '<', '>', '@'];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_jids_parse_and_round_trip(s in jid_string()) {
        let parsed = Jid::parse(&s);
        prop_assert!(parsed.is_ok(), "{:?} rejected: {:?}", s, parsed);
        if let Ok(j) = parsed {
            assert_canonical(&j)?;
        }
    }

    #[test]
    fn parse_never_panics_on_any_string(s in any::<String>()) {
        if let Ok(j) = Jid::parse(&s) {
            assert_canonical(&j)?;
        }
    }

    #[test]
    fn parse_never_panics_on_jid_like_noise(s in jidish_noise()) {
        if let Ok(j) = Jid::parse(&s) {
            assert_canonical(&j)?;
        }
    }

    #[test]
    fn parse_never_panics_on_spliced_jids(s in jid_string(), noise in jidish_noise(), at in any::<prop::sample::Index>()) {
        let cut = s.char_indices().map(|(i, _)| i).chain([s.len()]).nth(at.index(s.chars().count() + 1)).unwrap_or(0);
        let spliced = format!("{}{}{}", &s[..cut], noise, &s[cut..]);
        if let Ok(j) = Jid::parse(&spliced) {
            assert_canonical(&j)?;
        }
    }

    #[test]
    fn escaping_round_trips(s in escapable()) {
        match escape_local(&s) {
            Err(e) => {
                prop_assert_eq!(e, JidError::SpaceAtEdge);
                prop_assert!(s.starts_with(' ') || s.ends_with(' '));
            }
            Ok(escaped) => {
                prop_assert!(!escaped.contains(LOCAL_FORBIDDEN), "{:?} -> {:?}", s, escaped);
                prop_assert!(!escaped.starts_with("\\20") && !escaped.ends_with("\\20"));
                prop_assert_eq!(unescape_local(&escaped), s);
            }
        }
    }

    #[test]
    fn escaping_round_trips_any_text(s in any::<String>()) {
        if let Ok(escaped) = escape_local(&s) {
            prop_assert!(!escaped.contains(LOCAL_FORBIDDEN));
            prop_assert_eq!(unescape_local(&escaped), s);
        }
    }

    #[test]
    fn escaped_lowercase_names_survive_preparation(s in "[a-z0-9 \"&'/:<>@\\\\.]{1,24}") {
        // What the gateway does with a SIP user part: escape, prepare, and
        // later unescape for the way back.
        prop_assume!(!s.starts_with(' ') && !s.ends_with(' '));
        let escaped = escape_local(&s);
        prop_assert!(escaped.is_ok());
        let j = Jid::from_parts(escaped.ok().as_deref(), "sip.example", None);
        prop_assert!(j.is_ok(), "{:?}: {:?}", s, j);
        prop_assert_eq!(j.ok().and_then(|j| j.unescaped_local()), Some(s));
    }
}
