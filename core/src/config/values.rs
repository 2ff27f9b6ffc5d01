//! Parsers for the value syntaxes of the file: durations, sizes, listener
//! addresses, `connect` targets and access globs. Each returns the reason
//! as text; the caller adds the line and key.

use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::{defaults, SipListener, SipTransport};

/// `"60s"`, `"10m"`, `"8h"`, `"500ms"`, `"1d"`: whole numbers with one unit
/// (spaces between them are allowed).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    const FORM: &str = "a whole number and a unit of ms, s, m, h or d, such as \"60s\"";
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(format!("'{text}' is not a duration: expected {FORM}"));
    }
    let value: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is too long a duration"))?;
    let millis_per_unit: u64 = match unit.trim_start() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60 * 1000,
        "h" => 3600 * 1000,
        "d" => 86_400 * 1000,
        "" => return Err(format!("'{text}' has no unit: expected {FORM}")),
        other => {
            return Err(format!(
                "'{other}' is not a unit of duration: expected {FORM}"
            ))
        }
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{text}' is too long a duration"))
}

/// `"256KiB"`, `"1MiB"`, `"4096"`, `"4096B"`: bytes, with binary units only
/// (KiB, MiB, GiB), since "KB" is read as 1000 or 1024 depending on who reads.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    const FORM: &str =
        "a whole number of bytes, optionally with a unit of B, KiB, MiB or GiB, such as \"256KiB\"";
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(format!("'{text}' is not a size: expected {FORM}"));
    }
    let value: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is too large a size"))?;
    let unit = unit.trim_start();
    let factor: u64 = if unit.is_empty() || unit.eq_ignore_ascii_case("b") {
        1
    } else if unit.eq_ignore_ascii_case("kib") {
        1 << 10
    } else if unit.eq_ignore_ascii_case("mib") {
        1 << 20
    } else if unit.eq_ignore_ascii_case("gib") {
        1 << 30
    } else {
        return Err(format!("'{unit}' is not a unit of size: expected {FORM}"));
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("'{text}' is too large a size"))
}

/// An IP literal and port, such as `"0.0.0.0:5269"` or `"[::]:5269"`.
pub(crate) fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "'{text}' is not an address: expected an IP address and a port, such as \"0.0.0.0:5269\" or \"[::]:5269\""
        )
    })
}

/// `"tcp:0.0.0.0:5060"`: a transport, a colon, an address and a port.
pub(crate) fn parse_sip_listener(text: &str) -> Result<SipListener, String> {
    const FORM: &str =
        "expected TRANSPORT:ADDRESS:PORT with a transport of tcp, udp or tls, such as \"tcp:0.0.0.0:5060\"";
    let (transport, addr) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not a SIP listener: {FORM}"))?;
    let transport = if transport.eq_ignore_ascii_case("tcp") {
        SipTransport::Tcp
    } else if transport.eq_ignore_ascii_case("udp") {
        SipTransport::Udp
    } else if transport.eq_ignore_ascii_case("tls") {
        SipTransport::Tls
    } else {
        return Err(format!("'{text}' is not a SIP listener: {FORM}"));
    };
    let addr = addr
        .parse()
        .map_err(|_| format!("'{text}' is not a SIP listener: {FORM}"))?;
    Ok(SipListener { transport, addr })
}

/// `"host"`, `"host:port"`, `"[v6]"` or `"[v6]:port"`; the host is checked
/// and prepared by the caller. The port defaults to 5269 and may not be 0.
pub(crate) fn split_host_port(text: &str) -> Result<(&str, u16), String> {
    let text = text.trim();
    let bad = || {
        format!("'{text}' is not a host and port: expected HOST or HOST:PORT, such as \"xmpp.example.com:5269\" (IPv6 in brackets)")
    };
    let (host, port) = if text.starts_with('[') {
        let end = text.find(']').ok_or_else(bad)?;
        let (host, rest) = text.split_at(end + 1);
        if host
            .get(1..end)
            .and_then(|v6| v6.parse::<Ipv6Addr>().ok())
            .is_none()
        {
            return Err(bad());
        }
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        None => defaults::S2S_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err(bad()),
        },
    };
    Ok((host, port))
}

/// Glob match, `*` any run and `?` one character, ASCII case-insensitive.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it has consumed up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("8h"), Ok(Duration::from_secs(28_800)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration(" 5 s "), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "60",
            "1.5s",
            "-1s",
            "60 sec",
            "1h30m",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("18446744073709551615d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256KiB"), Ok(256 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1 gib"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4096B"), Ok(4096));
        for bad in [
            "",
            "KiB",
            "1KB",
            "1k",
            "1.5MiB",
            "-1",
            "18446744073709551615GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sip_listeners() {
        let l = parse_sip_listener("udp:[::1]:5060").expect("valid");
        assert_eq!(l.transport, SipTransport::Udp);
        assert_eq!(l.addr, "[::1]:5060".parse().expect("valid"));
        assert_eq!(
            parse_sip_listener("TLS:0.0.0.0:5061").map(|l| l.transport),
            Ok(SipTransport::Tls)
        );
        for bad in [
            "0.0.0.0:5060",
            "sctp:0.0.0.0:5060",
            "tcp:",
            "tcp:0.0.0.0",
            "tcp",
        ] {
            assert!(parse_sip_listener(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_and_port() {
        assert_eq!(
            split_host_port("xmpp.jabber.org:5269"),
            Ok(("xmpp.jabber.org", 5269))
        );
        assert_eq!(
            split_host_port("xmpp.jabber.org"),
            Ok(("xmpp.jabber.org", 5269))
        );
        assert_eq!(split_host_port("h:5299"), Ok(("h", 5299)));
        assert_eq!(
            split_host_port("[2001:db8::1]"),
            Ok(("[2001:db8::1]", 5269))
        );
        assert_eq!(split_host_port("[2001:db8::1]:1"), Ok(("[2001:db8::1]", 1)));
        for bad in [
            "",
            ":5269",
            "h:0",
            "h:x",
            "h:70000",
            "2001:db8::1",
            "[2001:db8::1",
            "[x]:1",
            "[::1]5269",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*@example.com", "alice@Example.COM"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(glob_match("*b*b", "abxbb"));
        assert!(!glob_match("*@example.com", "alice@example.org"));
        assert!(!glob_match("a?c", "ac"));
        assert!(!glob_match("", "a"));
    }
}
