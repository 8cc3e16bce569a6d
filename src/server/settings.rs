//! The part of the configuration the running loop reads, swapped whole on SIGHUP.
//!
//! Listener addresses, the control socket and the pid file are fixed for the life of the
//! process; everything here can change on reload without dropping a connection.

use std::time::Duration;

use crate::auth::Digest;
use crate::config::{ClientMessages, Config, Origins};

#[derive(Debug, Clone)]
pub struct Settings {
    pub origins: Origins,
    pub secret: Vec<u8>,
    pub digest: Digest,
    pub token_lifetime: Duration,
    pub ping_interval: Duration,
    pub handshake_timeout: Duration,
    pub close_timeout: Duration,
    pub max_handshake_size: usize,
    pub max_message_size: usize,
    pub max_outbound_buffer: usize,
    pub max_connections: usize,
    pub max_control_frame: usize,
    pub max_control_connections: usize,
    pub client_messages: ClientMessages,
    pub domains: Vec<String>,
}

impl Settings {
    pub fn new(config: &Config, secret: Vec<u8>) -> Settings {
        Settings {
            origins: config.origins.clone(),
            secret,
            digest: config.digest,
            token_lifetime: config.token_lifetime,
            ping_interval: config.ping_interval,
            handshake_timeout: config.handshake_timeout,
            close_timeout: config.close_timeout,
            max_handshake_size: config.max_handshake_size,
            max_message_size: config.max_message_size,
            max_outbound_buffer: config.max_outbound_buffer,
            max_connections: config.max_connections,
            max_control_frame: config.max_control_frame,
            max_control_connections: config.max_control_connections,
            client_messages: config.client_messages,
            domains: config.domains.clone(),
        }
    }

    /// A `Retry-After` for a token that is busy: the old connection, if dead, is found
    /// by the keepalive within two ping intervals.
    pub fn busy_retry_after(&self) -> u32 {
        u32::try_from(self.ping_interval.as_secs().saturating_mul(2)).unwrap_or(u32::MAX)
    }
}
