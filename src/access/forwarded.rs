//! The client address a trusted proxy forwards: `X-Forwarded-For` or `Forwarded` (RFC 7239)
//! to a list of hops, and the walk from the right that picks the client. Pure.
//!
//! Each proxy appends the address it received the request from, so the right-most hops are
//! the ones wson can believe: the walk skips hops that are trusted proxies themselves and
//! takes the first that is not. Anything left of it was written by the client and proves
//! nothing. A hop that is not an address (`unknown`, an obfuscated `_node`, garbage) stops
//! the walk: wson cannot tell who that is, and the caller falls back to the peer itself.

use std::net::{IpAddr, SocketAddr};

use super::cidr::canonical;

/// One hop of a forwarding chain, left to right as the header lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    Address(IpAddr),
    /// `unknown`, an obfuscated identifier, or text that is no address.
    Unknown,
}

/// The hops of `X-Forwarded-For` values (every such header, joined with ", "): addresses,
/// optionally `IPv4:port` or `[IPv6]:port` as some proxies write them.
pub fn x_forwarded_for(value: &[u8]) -> Vec<Hop> {
    if value.trim_ascii().is_empty() {
        return Vec::new();
    }
    value
        .split(|&byte| byte == b',')
        .map(|item| node(item.trim_ascii()))
        .collect()
}

/// The `for=` hops of `Forwarded` values (every such header, joined with ", "). An element
/// without `for=`, or one that does not parse, is [`Hop::Unknown`].
pub fn forwarded(value: &[u8]) -> Vec<Hop> {
    let mut hops = Vec::new();
    let mut rest = value;
    while !rest.trim_ascii().is_empty() {
        let (hop, after) = element(rest);
        hops.push(hop);
        rest = after;
    }
    hops
}

/// The client behind a chain of proxies: the right-most hop that is not `trusted`, or the
/// left-most when every hop is trusted; `None` when the chain is empty or the walk meets a
/// hop that is no address.
pub fn client_address(hops: &[Hop], trusted: impl Fn(IpAddr) -> bool) -> Option<IpAddr> {
    for hop in hops.iter().rev() {
        match *hop {
            Hop::Address(address) if trusted(address) => {}
            Hop::Address(address) => return Some(address),
            Hop::Unknown => return None,
        }
    }
    match hops.first() {
        Some(Hop::Address(address)) => Some(*address),
        Some(Hop::Unknown) | None => None,
    }
}

/// A node as RFC 7239 §6 writes it (`192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::1]:4711`,
/// `unknown`, `_hidden`), or a bare IPv6 address as `X-Forwarded-For` writes it.
fn node(text: &[u8]) -> Hop {
    let Ok(text) = std::str::from_utf8(text) else {
        return Hop::Unknown;
    };
    if let Ok(address) = text.parse::<IpAddr>() {
        return Hop::Address(canonical(address));
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Hop::Address(canonical(address.ip()));
    }
    // RFC 7239 §6: `"[" IPv6address "]"` with no port, or an obfuscated port (`:_abc`).
    if let Some(inner) = text.strip_prefix('[')
        && let Some((address, port)) = inner.split_once(']')
        && (port.is_empty() || port.starts_with(":_"))
        && let Ok(address) = address.parse::<std::net::Ipv6Addr>()
    {
        return Hop::Address(canonical(IpAddr::V6(address)));
    }
    Hop::Unknown
}

/// One `Forwarded` element (`for=a;proto=b`) and the bytes after its comma. RFC 7239 §4:
/// `forwarded-pair *( ";" forwarded-pair )`, each `token "=" value`, value a token or a
/// quoted-string.
fn element(input: &[u8]) -> (Hop, &[u8]) {
    let mut rest = input;
    let mut hop = None;
    let mut valid = true;
    loop {
        rest = rest.trim_ascii_start();
        let name_len = rest
            .iter()
            .position(|byte| matches!(byte, b'=' | b';' | b','))
            .unwrap_or(rest.len());
        let (name, after_name) = rest.split_at(name_len);
        let name = name.trim_ascii();
        let Some(after_equals) = after_name.strip_prefix(b"=") else {
            valid = false;
            rest = after_name;
            break;
        };
        let (value, after_value) = match after_equals.trim_ascii_start() {
            [b'"', quoted @ ..] => match quoted_string(quoted) {
                Some(parsed) => parsed,
                None => {
                    // No closing quote: the rest of the header is this one broken value.
                    return (Hop::Unknown, &[]);
                }
            },
            other => {
                let len = other
                    .iter()
                    .position(|byte| matches!(byte, b';' | b','))
                    .unwrap_or(other.len());
                let (token, after) = other.split_at(len);
                (token.trim_ascii().to_vec(), after)
            }
        };
        // RFC 7239 §4: parameter names are case-insensitive; §5.2 "for" may appear once.
        if name.eq_ignore_ascii_case(b"for") {
            valid &= hop.is_none();
            hop = Some(node(&value));
        }
        rest = after_value.trim_ascii_start();
        match rest {
            [b';', after @ ..] => rest = after,
            _ => break,
        }
    }
    // Whatever is left up to the next comma outside quotes belongs to this element.
    let (junk, after) = until_comma(rest);
    valid &= junk.trim_ascii().is_empty();
    let hop = match hop {
        Some(hop) if valid => hop,
        Some(_) | None => Hop::Unknown,
    };
    (hop, after)
}

/// The unescaped content of a quoted-string whose opening quote was consumed, and what
/// follows its closing quote; `None` without a closing quote.
fn quoted_string(input: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut value = Vec::new();
    let mut bytes = input.iter().enumerate();
    while let Some((index, &byte)) = bytes.next() {
        match byte {
            b'"' => return Some((value, input.get(index + 1..).unwrap_or(&[]))),
            // RFC 9110 §5.6.4: quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ).
            b'\\' => value.push(*bytes.next()?.1),
            other => value.push(other),
        }
    }
    None
}

/// The bytes up to the next comma outside a quoted-string, and those after it.
fn until_comma(input: &[u8]) -> (&[u8], &[u8]) {
    let mut quoted = false;
    let mut escaped = false;
    for (index, &byte) in input.iter().enumerate() {
        match (quoted, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (_, false, b'"') => quoted = !quoted,
            (false, _, b',') => {
                return (
                    input.get(..index).unwrap_or(&[]),
                    input.get(index + 1..).unwrap_or(&[]),
                );
            }
            _ => {}
        }
    }
    (input, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn address(text: &str) -> Hop {
        Hop::Address(ip(text))
    }

    #[test]
    fn x_forwarded_for_lists_addresses_left_to_right() {
        assert_eq!(
            x_forwarded_for(b"203.0.113.7, 2001:db8::1 ,10.0.0.1:8080,[2001:db8::2]:443"),
            [
                address("203.0.113.7"),
                address("2001:db8::1"),
                address("10.0.0.1"),
                address("2001:db8::2"),
            ]
        );
        assert_eq!(x_forwarded_for(b"  "), []);
        assert_eq!(
            x_forwarded_for(b"unknown, ::ffff:192.0.2.1, ,\xff"),
            [
                Hop::Unknown,
                address("192.0.2.1"),
                Hop::Unknown,
                Hop::Unknown
            ]
        );
    }

    #[test]
    fn forwarded_takes_for_from_each_element() {
        // RFC 7239 §4's examples.
        assert_eq!(forwarded(br#"for="_gazonk""#), [Hop::Unknown], "obfuscated");
        assert_eq!(
            forwarded(br#"For="[2001:db8:cafe::17]:4711""#),
            [address("2001:db8:cafe::17")]
        );
        assert_eq!(
            forwarded(b"for=192.0.2.60;proto=http;by=203.0.113.43"),
            [address("192.0.2.60")]
        );
        assert_eq!(
            forwarded(b"for=192.0.2.43, for=198.51.100.17"),
            [address("192.0.2.43"), address("198.51.100.17")]
        );
        assert_eq!(
            forwarded(br#"for="[2001:db8::1]", for="192.0.2.1:80";by=x, for=unknown"#),
            [address("2001:db8::1"), address("192.0.2.1"), Hop::Unknown]
        );
    }

    #[test]
    fn forwarded_keeps_commas_and_escapes_inside_quotes() {
        assert_eq!(
            forwarded(br#"by="a,b\"c";for=192.0.2.9, for=192.0.2.10"#),
            [address("192.0.2.9"), address("192.0.2.10")]
        );
        assert_eq!(forwarded(br#"for="192.0.2\.9""#), [address("192.0.2.9")]);
    }

    #[test]
    fn broken_forwarded_elements_are_unknown() {
        for (value, hops) in [
            (&b"proto=https"[..], vec![Hop::Unknown]),
            (b"for", vec![Hop::Unknown]),
            (b"for=192.0.2.1;for=192.0.2.2", vec![Hop::Unknown]),
            (
                b"for=192.0.2.1 junk, for=192.0.2.2",
                vec![Hop::Unknown, address("192.0.2.2")],
            ),
            (b"for=\"192.0.2.1", vec![Hop::Unknown]),
            (b"for=2001:db8::1", vec![address("2001:db8::1")]),
            (b",,", vec![Hop::Unknown, Hop::Unknown]),
        ] {
            assert_eq!(
                forwarded(value),
                hops,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn the_walk_skips_trusted_hops_from_the_right() {
        let proxies = |address: IpAddr| address == ip("10.0.0.1") || address == ip("10.0.0.2");
        let hops = x_forwarded_for(b"6.6.6.6, 203.0.113.7, 10.0.0.2, 10.0.0.1");
        assert_eq!(client_address(&hops, proxies), Some(ip("203.0.113.7")));
        // Every hop a proxy: the left-most is the client.
        let hops = x_forwarded_for(b"10.0.0.2, 10.0.0.1");
        assert_eq!(client_address(&hops, proxies), Some(ip("10.0.0.2")));
        // A hop that is no address ends the walk.
        let hops = x_forwarded_for(b"203.0.113.7, unknown, 10.0.0.1");
        assert_eq!(client_address(&hops, proxies), None);
        assert_eq!(client_address(&[], proxies), None);
        // A spoofed left part changes nothing.
        let hops = x_forwarded_for(b"unknown, 1.2.3.4, 198.51.100.1");
        assert_eq!(client_address(&hops, proxies), Some(ip("198.51.100.1")));
    }
}
