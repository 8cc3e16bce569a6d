//! Counters reported by the control `t` command, `wson status` and `/metrics`.

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Data messages received from WebSocket clients.
    pub messages_in: u64,
    /// Data frames queued to WebSocket clients (one per recipient).
    pub messages_out: u64,
    /// Bytes read from and written to WebSocket connections.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Control frames received from backends.
    pub control_frames: u64,
    pub connections_accepted: u64,
    pub handshakes_refused: u64,
    /// Connections from a blocked range: closed at accept (no handshake, so not in
    /// `handshakes_refused`), or 403 when a trusted proxy forwarded a blocked address
    /// (counted there too).
    pub refused_blocked: u64,
    /// Upgrades refused with 429 for a per-address limit (also in `handshakes_refused`).
    pub refused_rate_limited: u64,
    pub slow_consumers_dropped: u64,
    pub protocol_errors: u64,
    /// `handshakes_refused` by HTTP status (`/metrics`).
    pub refused_by_status: BTreeMap<u16, u64>,
}

impl Stats {
    /// One upgrade refused with `status`.
    pub fn refused(&mut self, status: u16) {
        self.handshakes_refused += 1;
        *self.refused_by_status.entry(status).or_insert(0) += 1;
    }
}
