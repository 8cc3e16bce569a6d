//! CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`): parsing and membership. Pure.
//!
//! An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is the IPv4 address it maps, both as a
//! range and as an address checked against one: a dual-stack listener reports IPv4 peers in
//! that form, and a block on `192.0.2.0/24` must catch them. A range whose host bits are set
//! (`10.0.0.1/8`) is refused rather than masked: it is almost always a typo for a single
//! address or a different prefix, and masking would silently block more than was written.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One range: a network address and a prefix length (at most 32 for IPv4, 128 for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a range was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// Not an IPv4 or IPv6 address before the `/`.
    BadAddress,
    /// The prefix length is not a decimal number (or is empty).
    BadPrefix,
    /// The prefix length passes the address's width.
    PrefixTooLong { prefix_len: u32, max: u8 },
    /// Bits set after the prefix; `network` is what was probably meant.
    HostBitsSet { network: Cidr },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::BadAddress => f.write_str("not an IPv4 or IPv6 address"),
            CidrError::BadPrefix => f.write_str("the prefix length after / is not a number"),
            CidrError::PrefixTooLong { prefix_len, max } => {
                write!(f, "prefix length {prefix_len} is longer than {max}")
            }
            CidrError::HostBitsSet { network } => {
                write!(f, "bits set after the prefix (did you mean {network}?)")
            }
        }
    }
}

impl std::error::Error for CidrError {}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// The address as it is checked: an IPv4-mapped IPv6 address becomes its IPv4 address.
pub fn canonical(address: IpAddr) -> IpAddr {
    address.to_canonical()
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX`, or a bare address (a single host: /32 or /128).
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| CidrError::BadAddress)?;
        let max = width(address);
        let prefix_len = match prefix {
            None => u32::from(max),
            // `u32::from_str` takes a leading `+`; a prefix is digits only.
            Some(prefix) if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(CidrError::BadPrefix);
            }
            Some(prefix) => prefix.parse::<u32>().unwrap_or(u32::MAX),
        };
        let Some(prefix_len) = u8::try_from(prefix_len).ok().filter(|len| *len <= max) else {
            return Err(CidrError::PrefixTooLong { prefix_len, max });
        };
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`; a shorter prefix also covers non-mapped
        // IPv6 addresses and stays an IPv6 range.
        let (address, prefix_len) = match address {
            IpAddr::V6(v6) if prefix_len >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix_len - 96),
                None => (address, prefix_len),
            },
            IpAddr::V4(_) | IpAddr::V6(_) => (address, prefix_len),
        };
        let network = Cidr {
            network: mask(address, prefix_len),
            prefix_len,
        };
        if network.network != address {
            return Err(CidrError::HostBitsSet { network });
        }
        Ok(network)
    }

    /// True when `address` (taken as [`canonical`]) lies in the range.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        let same_family = matches!(
            (self.network, address),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
        );
        same_family && mask(address, self.prefix_len) == self.network
    }
}

fn width(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `address` with every bit after the first `prefix_len` cleared.
fn mask(address: IpAddr, prefix_len: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32)));
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & keep.unwrap_or(0)))
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix_len.min(128)));
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep.unwrap_or(0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidr(text: &str) -> Cidr {
        Cidr::parse(text).unwrap()
    }

    #[test]
    fn zero_prefix_covers_its_whole_family_only() {
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(cidr("0.0.0.0/0").contains(ip("::ffff:203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(!cidr("::/0").contains(ip("203.0.113.9")));
    }

    #[test]
    fn full_prefix_is_one_host() {
        assert!(cidr("192.0.2.7/32").contains(ip("192.0.2.7")));
        assert!(!cidr("192.0.2.7/32").contains(ip("192.0.2.6")));
        assert!(cidr("2001:db8::7/128").contains(ip("2001:db8::7")));
        assert!(!cidr("2001:db8::7/128").contains(ip("2001:db8::6")));
        assert_eq!(cidr("192.0.2.7"), cidr("192.0.2.7/32"));
        assert_eq!(cidr("2001:db8::7"), cidr("2001:db8::7/128"));
    }

    #[test]
    fn ranges_cover_their_prefix() {
        let net = cidr("10.0.0.0/8");
        assert!(net.contains(ip("10.255.255.255")));
        assert!(!net.contains(ip("11.0.0.0")));
        let net = cidr("2001:db8:1:2::/64");
        assert!(net.contains(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert!(!net.contains(ip("2001:db8:1:3::")));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_the_ipv4_address() {
        assert!(cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.2")));
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("::ffff:192.0.2.1"), cidr("192.0.2.1/32"));
        // The whole mapped block is every IPv4 address.
        assert_eq!(cidr("::ffff:0:0/96"), cidr("0.0.0.0/0"));
        // An IPv6 range wider than the mapping does not catch IPv4 peers.
        assert!(!cidr("::/64").contains(ip("192.0.2.1")));
        // A prefix shorter than the mapping stays IPv6.
        assert!(cidr("::/80").contains(ip("::1")));
    }

    #[test]
    fn host_bits_set_is_refused_with_the_network_meant() {
        assert_eq!(
            Cidr::parse("10.0.0.1/8"),
            Err(CidrError::HostBitsSet {
                network: cidr("10.0.0.0/8")
            })
        );
        assert_eq!(
            Cidr::parse("2001:db8::1/64").unwrap_err().to_string(),
            "bits set after the prefix (did you mean 2001:db8::/64?)"
        );
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for (text, error) in [
            ("", CidrError::BadAddress),
            ("10.0.0.0/", CidrError::BadPrefix),
            ("10.0.0.0/+8", CidrError::BadPrefix),
            ("10.0.0.0/-1", CidrError::BadPrefix),
            ("10.0.0.0/8/8", CidrError::BadPrefix),
            ("10.0.0.0/ 8", CidrError::BadPrefix),
            ("10.0.0/8", CidrError::BadAddress),
            ("[::1]/128", CidrError::BadAddress),
            ("example.com/8", CidrError::BadAddress),
            (
                "10.0.0.0/33",
                CidrError::PrefixTooLong {
                    prefix_len: 33,
                    max: 32,
                },
            ),
            (
                "::/129",
                CidrError::PrefixTooLong {
                    prefix_len: 129,
                    max: 128,
                },
            ),
            (
                "::/99999999999999",
                CidrError::PrefixTooLong {
                    prefix_len: u32::MAX,
                    max: 128,
                },
            ),
        ] {
            assert_eq!(Cidr::parse(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["10.0.0.0/8", "0.0.0.0/0", "2001:db8::/32", "::1/128"] {
            assert_eq!(cidr(text).to_string(), text);
            assert_eq!(cidr(&cidr(text).to_string()), cidr(text));
        }
    }
}
