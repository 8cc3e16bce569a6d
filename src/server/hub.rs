//! The hub owns the WebSocket clients, their token index and the one path a message
//! takes to a client.
//!
//! Broadcasts, direct messages and fragments all come through here, so they share one
//! ordering (per client, the order the hub was asked) and one backpressure rule: a client
//! whose queue would pass `max_outbound_buffer` is dropped as a slow consumer, counted,
//! and never holds up the others. Frames are queued, not written: the server flushes
//! every client touched in a loop turn once, with one `writev` each.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use crate::control::command::FragmentPosition;
use crate::server::conn::{self, Conn, Delivery, Fragment, FragmentResult, Gone};
use crate::server::settings::Settings;
use crate::server::slab::{Key, Slab};
use crate::server::stats::Stats;
use crate::token::Token;

#[derive(Default)]
pub struct Hub {
    clients: Slab<Conn>,
    by_token: HashMap<Token, Key>,
    /// Live connections per listener, for `m` and status.
    per_listener: Vec<usize>,
    /// Clients with frames queued this turn, to flush at its end.
    to_flush: Vec<Key>,
}

/// The answer to a direct message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direct {
    Delivered,
    /// No open client has this token (unknown, still handshaking, or closing).
    NotDelivered,
}

impl Hub {
    pub fn new(listeners: usize) -> Hub {
        Hub {
            per_listener: vec![0; listeners],
            ..Hub::default()
        }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub fn per_listener(&self) -> &[usize] {
        &self.per_listener
    }

    pub fn insert(&mut self, conn: Conn) -> Option<Key> {
        let listener = conn.listener;
        let key = self.clients.insert(conn)?;
        if let Some(count) = self.per_listener.get_mut(listener) {
            *count += 1;
        }
        Some(key)
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut Conn> {
        self.clients.get_mut(key)
    }

    pub fn keys(&self) -> Vec<Key> {
        self.clients.keys()
    }

    pub fn clients(&self) -> impl Iterator<Item = &Conn> {
        self.clients.iter().map(|(_, conn)| conn)
    }

    /// Removes a client; the socket closes when the returned `Conn` drops.
    pub fn remove(&mut self, key: Key) -> Option<Conn> {
        let conn = self.clients.remove(key)?;
        if let Some(token) = conn.token()
            && self.by_token.get(&token) == Some(&key)
        {
            self.by_token.remove(&token);
        }
        if let Some(count) = self.per_listener.get_mut(conn.listener) {
            *count = count.saturating_sub(1);
        }
        Some(conn)
    }

    /// A reloaded `max_message_size` applies to open sessions too, from their next message.
    pub fn apply_message_limit(&mut self, max_message_size: usize) {
        for (_, conn) in self.clients.iter_mut() {
            if let conn::Phase::Open(session) | conn::Phase::Closing { session, .. } =
                &mut conn.phase
            {
                session
                    .decoder
                    .set_max_message_size(max_message_size as u64);
            }
        }
    }

    /// True when a live connection already holds this token.
    pub fn token_busy(&self, token: &Token) -> bool {
        self.by_token.contains_key(token)
    }

    /// Records that `key` completed its handshake with `token`.
    pub fn register_token(&mut self, token: Token, key: Key) {
        if let Some(conn) = self.clients.get_mut(key) {
            conn.registered_token = Some(token);
        }
        self.by_token.insert(token, key);
    }

    /// Brings the hub up to date after a client did I/O or ran its timers: a session that
    /// ended frees its token at once (the socket may linger a while), and anything queued
    /// is flushed at the end of the turn.
    pub fn settle(&mut self, key: Key) {
        if let Some(conn) = self.clients.get_mut(key)
            && conn.session().is_none()
            && let Some(token) = conn.registered_token.take()
            && self.by_token.get(&token) == Some(&key)
        {
            self.by_token.remove(&token);
        }
        self.schedule_flush(key);
    }

    pub fn schedule_flush(&mut self, key: Key) {
        if let Some(conn) = self.clients.get_mut(key)
            && !conn.flush_scheduled
            && !conn.out.is_empty()
        {
            conn.flush_scheduled = true;
            self.to_flush.push(key);
        }
    }

    /// Takes the list of clients to flush this turn.
    pub fn take_flush_list(&mut self) -> Vec<Key> {
        std::mem::take(&mut self.to_flush)
    }

    /// Gives the (emptied) list back so its allocation is reused next turn.
    pub fn return_flush_list(&mut self, mut list: Vec<Key>) {
        list.clear();
        if self.to_flush.is_empty() {
            self.to_flush = list;
        }
    }

    /// Queues one shared chunk, `messages` whole frames, to every open client. Returns
    /// the number of recipients.
    pub fn broadcast(
        &mut self,
        frames: &Rc<[u8]>,
        messages: usize,
        settings: &Settings,
        stats: &mut Stats,
    ) -> usize {
        let mut recipients = 0;
        let mut overflowed = Vec::new();
        for (key, conn) in self.clients.iter_mut() {
            match conn.deliver(frames, settings.max_outbound_buffer) {
                Delivery::Queued => {
                    recipients += 1;
                    if !conn.flush_scheduled {
                        conn.flush_scheduled = true;
                        self.to_flush.push(key);
                    }
                }
                Delivery::Deferred => recipients += 1,
                Delivery::NotOpen => {}
                Delivery::Overflow { queued } => overflowed.push((key, queued)),
            }
        }
        stats.messages_out += (recipients as u64).saturating_mul(messages as u64);
        for (key, queued) in overflowed {
            self.drop_slow_consumer(key, queued, stats);
        }
        recipients
    }

    /// Queues a frame to the client holding `token`.
    pub fn direct(
        &mut self,
        token: &Token,
        frame: &Rc<[u8]>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> Direct {
        let Some(&key) = self.by_token.get(token) else {
            return Direct::NotDelivered;
        };
        let Some(conn) = self.clients.get_mut(key) else {
            return Direct::NotDelivered;
        };
        match conn.deliver(frame, settings.max_outbound_buffer) {
            Delivery::Queued => {
                stats.messages_out += 1;
                self.schedule_flush(key);
                Direct::Delivered
            }
            Delivery::Deferred => {
                stats.messages_out += 1;
                Direct::Delivered
            }
            Delivery::NotOpen => Direct::NotDelivered,
            Delivery::Overflow { queued } => {
                self.drop_slow_consumer(key, queued, stats);
                Direct::NotDelivered
            }
        }
    }

    /// True when `token` names an open client (a `c` with an empty message).
    pub fn is_online(&self, token: &Token) -> bool {
        self.by_token
            .get(token)
            .and_then(|key| self.clients.get(*key))
            .is_some_and(Conn::is_open)
    }

    /// True while `client` is locked by `owner`.
    pub fn is_locked_by(&self, client: Key, owner: Key) -> bool {
        self.clients
            .get(client)
            .and_then(Conn::session)
            .and_then(|session| session.lock.as_ref())
            .is_some_and(|lock| lock.owner == owner)
    }

    /// Locks the client holding `token` for `owner`'s fragmented send.
    pub fn lock(&mut self, token: &Token, owner: Key) -> Option<Key> {
        let key = *self.by_token.get(token)?;
        let conn = self.clients.get_mut(key)?;
        conn.try_lock(owner).then_some(key)
    }

    pub fn fragment(
        &mut self,
        client: Key,
        owner: Key,
        fragment: Fragment<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> FragmentResult {
        let Some(conn) = self.clients.get_mut(client) else {
            return FragmentResult::Refused;
        };
        let last = fragment.position == FragmentPosition::Last;
        let result = conn.fragment(owner, fragment, settings.max_outbound_buffer);
        match result {
            FragmentResult::Sent => {
                if last {
                    stats.messages_out += 1;
                }
                self.schedule_flush(client);
            }
            FragmentResult::Overflow { queued } => self.drop_slow_consumer(client, queued, stats),
            FragmentResult::Refused | FragmentResult::InvalidText { .. } => {}
        }
        result
    }

    /// The control connection `owner` is gone; a client it had locked is closed (1011).
    pub fn lose_frame_source(
        &mut self,
        client: Key,
        owner: Key,
        settings: &Settings,
        now: Instant,
    ) {
        let Some(conn) = self.clients.get_mut(client) else {
            return;
        };
        match conn.lose_frame_source(owner, settings, now) {
            Ok(()) => {
                log::warn!(
                    "frame source lost; closing client peer={} code=1011",
                    conn.stream.peer()
                );
                self.schedule_flush(client);
            }
            Err(gone) => self.close(client, &gone),
        }
    }

    fn drop_slow_consumer(&mut self, key: Key, queued: usize, stats: &mut Stats) {
        stats.slow_consumers_dropped += 1;
        self.close(key, &Gone::SlowConsumer { queued });
    }

    /// Removes a client now, logging why.
    pub fn close(&mut self, key: Key, gone: &Gone) {
        if let Some(conn) = self.remove(key) {
            match gone {
                Gone::SlowConsumer { .. } => {
                    log::warn!(
                        "client dropped peer={} reason=\"{gone}\"",
                        conn.stream.peer()
                    );
                }
                Gone::PeerClosed
                | Gone::Io(_)
                | Gone::Finished
                | Gone::HandshakeTimeout
                | Gone::KeepaliveTimeout
                | Gone::CloseTimeout
                | Gone::ShuttingDown => {
                    log::debug!("client gone peer={} reason=\"{gone}\"", conn.stream.peer());
                }
            }
        }
    }
}
