//! Counters reported by the control `t` command and `wson status`.

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
    pub slow_consumers_dropped: u64,
    pub protocol_errors: u64,
}
