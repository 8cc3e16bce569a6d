//! Per-address limits: concurrent connections, handshakes per second and failed logins per
//! minute, counted per IPv4 address or per IPv6 /64. Pure: the caller passes `now`.
//!
//! An IPv6 host usually owns a whole /64 (SLAAC, privacy addresses), so counting single
//! IPv6 addresses would let one machine pick a fresh one per connection; a /64 is the
//! smallest unit one customer gets. Rates use fixed windows (one second, one minute) that
//! start at the first event after the last window ended: one counter and one instant per
//! limit, at the price of up to twice the rate across a window boundary.
//!
//! Memory is bounded by `max_addresses`. An entry with no connection is forgotten once its
//! last event is a minute old (every window it could hold has ended), on a sweep the caller
//! runs from its timer. When the table is full and a sweep frees nothing, a new address is
//! admitted untracked rather than refused: filling the table takes that many distinct
//! addresses, against which per-address limits are no defence anyway, and refusing would
//! let such a flood lock out every newcomer. `max_connections` still bounds the whole.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::cidr::canonical;

/// Length of the handshake window.
const HANDSHAKE_WINDOW: Duration = Duration::from_secs(1);
/// Length of the failed-login window; also how long an idle entry is kept.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Least time between two sweeps a full table may trigger.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What limits are counted against: an IPv4 address, or the first 64 bits of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4(u32),
    V6Prefix(u64),
}

impl AddressKey {
    pub fn of(address: IpAddr) -> AddressKey {
        match canonical(address) {
            IpAddr::V4(v4) => AddressKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => {
                let [a, b, c, d, e, f, g, h, ..] = v6.octets();
                AddressKey::V6Prefix(u64::from_be_bytes([a, b, c, d, e, f, g, h]))
            }
        }
    }
}

/// The limits as configured; 0 is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub connections: usize,
    pub handshakes_per_second: u32,
    pub failed_logins_per_minute: u32,
    pub max_addresses: usize,
}

impl Limits {
    fn any(&self) -> bool {
        self.connections > 0 || self.handshakes_per_second > 0 || self.failed_logins_per_minute > 0
    }
}

/// Which limit an address is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Connections { max: usize },
    Handshakes { retry_after_secs: u32 },
    FailedLogins { retry_after_secs: u32 },
}

impl Limited {
    /// For the log line.
    pub fn reason(&self) -> &'static str {
        match self {
            Limited::Connections { .. } => "too many connections from this address",
            Limited::Handshakes { .. } => "too many handshakes per second from this address",
            Limited::FailedLogins { .. } => "too many failed logins per minute from this address",
        }
    }

    /// Seconds for `Retry-After`: when the window ends, or `until_one_closes` for a
    /// connection limit (no window ends; a dead connection is found by the keepalive).
    pub fn retry_after(&self, until_one_closes: u32) -> u32 {
        match self {
            Limited::Connections { .. } => until_one_closes,
            Limited::Handshakes { retry_after_secs }
            | Limited::FailedLogins { retry_after_secs } => *retry_after_secs,
        }
    }
}

/// What [`AddressTable::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Counted: the caller calls [`AddressTable::release`] with the key when it closes.
    Charged(AddressKey),
    /// Not counted (no limit set, or the table is full): nothing to release.
    Untracked,
    Refused(Limited),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            started: now,
            count: 0,
        }
    }

    /// The count in the window holding `now` (a fresh window once the old one ended).
    fn current(&mut self, length: Duration, now: Instant) -> u32 {
        if now.saturating_duration_since(self.started) >= length {
            *self = Window::new(now);
        }
        self.count
    }

    /// Whole seconds until the window ends, at least 1.
    fn seconds_left(&self, length: Duration, now: Instant) -> u32 {
        let left = length.saturating_sub(now.saturating_duration_since(self.started));
        let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(seconds.max(1)).unwrap_or(u32::MAX)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    connections: usize,
    handshakes: Window,
    failures: Window,
    last_seen: Instant,
}

#[derive(Debug, Default)]
pub struct AddressTable {
    entries: HashMap<AddressKey, Entry>,
    last_sweep: Option<Instant>,
}

impl AddressTable {
    /// Addresses tracked now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A new connection (or upgrade request) from `address`: refused when the address is
    /// over a limit, else counted as a handshake and a connection.
    pub fn admit(&mut self, address: IpAddr, limits: &Limits, now: Instant) -> Admit {
        if !limits.any() {
            return Admit::Untracked;
        }
        let key = AddressKey::of(address);
        if !self.entries.contains_key(&key) && self.entries.len() >= limits.max_addresses {
            self.tick(now);
            if self.entries.len() >= limits.max_addresses {
                return Admit::Untracked;
            }
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            connections: 0,
            handshakes: Window::new(now),
            failures: Window::new(now),
            last_seen: now,
        });
        entry.last_seen = now;
        let max_failures = limits.failed_logins_per_minute;
        if max_failures > 0 && entry.failures.current(FAILURE_WINDOW, now) >= max_failures {
            return Admit::Refused(Limited::FailedLogins {
                retry_after_secs: entry.failures.seconds_left(FAILURE_WINDOW, now),
            });
        }
        if limits.connections > 0 && entry.connections >= limits.connections {
            return Admit::Refused(Limited::Connections {
                max: limits.connections,
            });
        }
        let max_handshakes = limits.handshakes_per_second;
        let handshakes = entry.handshakes.current(HANDSHAKE_WINDOW, now);
        if max_handshakes > 0 && handshakes >= max_handshakes {
            return Admit::Refused(Limited::Handshakes {
                retry_after_secs: entry.handshakes.seconds_left(HANDSHAKE_WINDOW, now),
            });
        }
        entry.handshakes.count = handshakes.saturating_add(1);
        entry.connections = entry.connections.saturating_add(1);
        Admit::Charged(key)
    }

    /// A connection [`Admit::Charged`] to `key` closed. Its entry may go on the next sweep
    /// once a minute passed since the address's last handshake or failed login: nothing
    /// the entry counts outlives that.
    pub fn release(&mut self, key: AddressKey) {
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.connections = entry.connections.saturating_sub(1);
        }
    }

    /// From the caller's timer: sweeps when the last sweep is a second old.
    pub fn tick(&mut self, now: Instant) {
        let due = self
            .last_sweep
            .is_none_or(|last| now.saturating_duration_since(last) >= MIN_SWEEP_INTERVAL);
        if due {
            self.sweep(now);
        }
    }

    /// A connection charged to `key` failed its login (a refused cookie).
    pub fn login_failed(&mut self, key: AddressKey, now: Instant) {
        if let Some(entry) = self.entries.get_mut(&key) {
            let failures = entry.failures.current(FAILURE_WINDOW, now);
            entry.failures.count = failures.saturating_add(1);
            entry.last_seen = now;
        }
    }

    /// Forgets every entry with no connection whose last event is a minute old.
    pub fn sweep(&mut self, now: Instant) {
        self.last_sweep = Some(now);
        self.entries.retain(|_, entry| {
            entry.connections > 0 || now.saturating_duration_since(entry.last_seen) < FAILURE_WINDOW
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn limits(connections: usize, handshakes: u32, failures: u32) -> Limits {
        Limits {
            connections,
            handshakes_per_second: handshakes,
            failed_logins_per_minute: failures,
            max_addresses: 100,
        }
    }

    fn charged(admit: Admit) -> AddressKey {
        match admit {
            Admit::Charged(key) => key,
            other => panic!("not charged: {other:?}"),
        }
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            AddressKey::of(ip("2001:db8:1:2::1")),
            AddressKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            AddressKey::of(ip("2001:db8:1:2::1")),
            AddressKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            AddressKey::of(ip("::ffff:192.0.2.1")),
            AddressKey::of(ip("192.0.2.1"))
        );
        assert_ne!(
            AddressKey::of(ip("192.0.2.1")),
            AddressKey::of(ip("192.0.2.2"))
        );
    }

    #[test]
    fn connection_limit_counts_open_connections_per_address() {
        let mut table = AddressTable::default();
        let now = Instant::now();
        let limits = limits(2, 0, 0);
        let first = charged(table.admit(ip("192.0.2.1"), &limits, now));
        charged(table.admit(ip("192.0.2.1"), &limits, now));
        assert_eq!(
            table.admit(ip("192.0.2.1"), &limits, now),
            Admit::Refused(Limited::Connections { max: 2 })
        );
        charged(table.admit(ip("192.0.2.2"), &limits, now));
        table.release(first);
        charged(table.admit(ip("192.0.2.1"), &limits, now));
        // An IPv6 /64 is one address.
        charged(table.admit(ip("2001:db8::1"), &limits, now));
        charged(table.admit(ip("2001:db8::2"), &limits, now));
        assert!(matches!(
            table.admit(ip("2001:db8::3"), &limits, now),
            Admit::Refused(_)
        ));
    }

    #[test]
    fn handshake_rate_resets_with_its_one_second_window() {
        let mut table = AddressTable::default();
        let start = Instant::now();
        let limits = limits(0, 2, 0);
        let key = charged(table.admit(ip("192.0.2.1"), &limits, start));
        table.release(key);
        charged(table.admit(ip("192.0.2.1"), &limits, start));
        let later = start + Duration::from_millis(300);
        assert_eq!(
            table.admit(ip("192.0.2.1"), &limits, later),
            Admit::Refused(Limited::Handshakes {
                retry_after_secs: 1
            })
        );
        charged(table.admit(ip("192.0.2.1"), &limits, start + HANDSHAKE_WINDOW));
    }

    #[test]
    fn failed_logins_refuse_until_the_minute_ends() {
        let mut table = AddressTable::default();
        let start = Instant::now();
        let limits = limits(0, 0, 2);
        for _ in 0..2 {
            let key = charged(table.admit(ip("192.0.2.1"), &limits, start));
            table.login_failed(key, start);
            table.release(key);
        }
        let later = start + Duration::from_millis(20_500);
        assert_eq!(
            table.admit(ip("192.0.2.1"), &limits, later),
            Admit::Refused(Limited::FailedLogins {
                retry_after_secs: 40
            })
        );
        assert!(matches!(
            table.admit(ip("192.0.2.9"), &limits, later),
            Admit::Charged(_)
        ));
        charged(table.admit(ip("192.0.2.1"), &limits, start + FAILURE_WINDOW));
    }

    #[test]
    fn no_limit_set_tracks_nothing() {
        let mut table = AddressTable::default();
        let now = Instant::now();
        assert_eq!(
            table.admit(ip("192.0.2.1"), &limits(0, 0, 0), now),
            Admit::Untracked
        );
        assert!(table.is_empty());
    }

    #[test]
    fn idle_entries_are_forgotten_after_a_minute() {
        let mut table = AddressTable::default();
        let start = Instant::now();
        let limits = limits(5, 0, 0);
        let open = charged(table.admit(ip("192.0.2.1"), &limits, start));
        let closed = charged(table.admit(ip("192.0.2.2"), &limits, start));
        table.release(closed);
        table.sweep(start + Duration::from_secs(59));
        assert_eq!(table.len(), 2);
        table.sweep(start + FAILURE_WINDOW);
        assert_eq!(table.len(), 1, "the open connection's entry stays");
        table.release(open);
        table.sweep(start + FAILURE_WINDOW * 2);
        assert!(table.is_empty());
    }

    #[test]
    fn a_full_table_admits_newcomers_untracked_and_stays_bounded() {
        let mut table = AddressTable::default();
        let start = Instant::now();
        let limits = Limits {
            max_addresses: 2,
            ..limits(1, 0, 0)
        };
        charged(table.admit(ip("192.0.2.1"), &limits, start));
        let second = charged(table.admit(ip("192.0.2.2"), &limits, start));
        assert_eq!(
            table.admit(ip("192.0.2.3"), &limits, start),
            Admit::Untracked
        );
        assert_eq!(table.len(), 2);
        // Known addresses are still limited.
        assert!(matches!(
            table.admit(ip("192.0.2.1"), &limits, start),
            Admit::Refused(_)
        ));
        // Once an entry is idle for a minute, a full table makes room for a newcomer.
        table.release(second);
        let later = start + FAILURE_WINDOW;
        charged(table.admit(ip("192.0.2.3"), &limits, later));
        assert_eq!(table.len(), 2);
    }
}
