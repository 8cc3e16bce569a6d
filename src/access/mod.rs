//! Address-based protection, decided before any auth work: which peers are refused outright
//! (blocked ranges), which are proxies whose forwarded address is the one to judge, and
//! how many connections, handshakes and failed logins one address may have. Sans-IO: the
//! parsers take bytes and text, the counters take `now`; the hub owns the one table.

pub mod cidr;
pub mod forwarded;
pub mod limits;

use std::net::IpAddr;

pub use cidr::{Cidr, CidrError};
pub use forwarded::Hop;
pub use limits::{AddressKey, AddressTable, Admit, Limited, Limits};

/// One entry of `[access] trusted_proxies`: a range, or the Unix-socket listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    Range(Cidr),
    /// `"unix"`: a peer on a unix:// listener (nginx in front of wson).
    Unix,
}

/// Where a connection comes from, as the socket says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAddress {
    Ip(IpAddr),
    Unix,
}

/// True when `address` lies in one of `ranges`.
pub fn in_ranges(ranges: &[Cidr], address: IpAddr) -> bool {
    ranges.iter().any(|range| range.contains(address))
}

/// True when `peer` is one of `proxies`.
pub fn is_trusted(proxies: &[Proxy], peer: PeerAddress) -> bool {
    proxies.iter().any(|proxy| match (proxy, peer) {
        (Proxy::Range(range), PeerAddress::Ip(address)) => range.contains(address),
        (Proxy::Unix, PeerAddress::Unix) => true,
        (Proxy::Range(_), PeerAddress::Unix) | (Proxy::Unix, PeerAddress::Ip(_)) => false,
    })
}
