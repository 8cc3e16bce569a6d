//! The hub owns the WebSocket clients and everything shared between connections: the token
//! index, admission, the fragment-lock table, the list of clients to flush, and the one
//! path a message takes to a client.
//!
//! Broadcasts, direct messages and fragments all come through here, so they share one
//! ordering (per client, the order the hub was asked) and one backpressure rule: a client
//! whose queue would pass `max_outbound_buffer` is dropped as a slow consumer, counted,
//! and never holds up the others. Frames are queued, not written: the server has every
//! client touched in a loop turn flushed once, with one `writev` each.
//!
//! A client does its own I/O; when `drive` returns, the hub settles what the connection's
//! new phase means for the shared state (a session that ended gives its token back, a
//! client that is no longer open loses its lock, queued bytes get the client on the flush
//! list). That is the only place those facts are read, so they cannot drift apart.

mod locks;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use crate::auth::Identity;
use crate::config::ClientMessages;
use crate::server::conn::{ClientCtx, Conn, Delivered, Delivery, Exit, Gone, Upcalls};
use crate::server::outbound::shared_frame;
use crate::server::settings::Settings;
use crate::server::slab::{Key, Slab};
use crate::server::socket;
use crate::server::stats::Stats;
use crate::server::stream::Stream;
use crate::token::Token;
use crate::ws::frame::OpCode;
use crate::ws::handshake::Status;
use crate::ws::message::MessageKind;

use locks::{Encoded, Locks};
pub use locks::{Fragment, FragmentResult};

#[derive(Default)]
pub struct Hub {
    clients: Slab<Client>,
    tokens: HashMap<Token, Key>,
    locks: Locks,
    /// Live connections per listener, for `m` and status.
    per_listener: Vec<usize>,
    /// Clients with frames queued this turn, to flush at its end.
    to_flush: Vec<Key>,
}

/// A client and what the hub keeps about it.
struct Client {
    conn: Conn,
    /// Index of the listener this connection came through.
    listener: usize,
    /// The token this connection holds in the index, from its upgrade until its session
    /// ends; kept here because the phases after a session have no identity to read it from.
    token: Option<Token>,
    /// True while the client is on `to_flush`.
    flush_scheduled: bool,
}

/// What `drive` leaves for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Idle,
    /// More to read, but the client had its share of the turn: drive it again later.
    OverBudget,
}

/// What a client's session hands up while the hub drives it.
struct SessionUpcalls<'a> {
    locks: &'a mut Locks,
    me: Key,
    settings: &'a Settings,
}

impl Upcalls for SessionUpcalls<'_> {
    fn message(&mut self, kind: MessageKind, payload: &[u8], queued: usize) -> Delivered {
        match self.settings.client_messages {
            // Forwarding goes to event listeners, which land with the events.
            ClientMessages::Ignore | ClientMessages::Forward => Delivered::Nothing,
            ClientMessages::Echo => {
                let frame = shared_frame(true, data_opcode(kind), payload);
                match self.locks.deferred_for(self.me) {
                    None => Delivered::ToSelf(frame),
                    Some(deferred) => {
                        let queued = queued + deferred.pending_bytes();
                        if queued + frame.len() > self.settings.max_outbound_buffer {
                            Delivered::Overflow { queued }
                        } else {
                            deferred.push(frame);
                            Delivered::Deferred
                        }
                    }
                }
            }
        }
    }
}

fn data_opcode(kind: MessageKind) -> OpCode {
    match kind {
        MessageKind::Text => OpCode::Text,
        MessageKind::Binary => OpCode::Binary,
    }
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

    /// True when every client left only waits for its peer's EOF (a drain may end).
    pub fn all_lingering(&self) -> bool {
        self.clients
            .iter()
            .all(|(_, client)| client.conn.is_lingering())
    }

    pub fn count_not_lingering(&self) -> usize {
        self.clients
            .iter()
            .filter(|(_, client)| !client.conn.is_lingering())
            .count()
    }

    /// Takes a freshly accepted connection, or refuses it at `max_connections`. Returns
    /// the key to register the stream under, or `None` when nothing is kept.
    pub fn admit_socket(
        &mut self,
        mut stream: Stream,
        listener: usize,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) -> Option<Key> {
        stats.connections_accepted += 1;
        let refuse = self.clients.len() >= settings.max_connections;
        if refuse {
            stats.handshakes_refused += 1;
            log::warn!(
                "connection refused peer={} status=503 reason=\"max_connections reached\" max_connections={}",
                stream.peer(),
                settings.max_connections
            );
            if self.clients.len() >= settings.max_connections + REFUSAL_SLACK {
                // Past the slack, no socket is kept: best effort, the fresh socket's
                // buffer takes a short response.
                let _ = std::io::Write::write(
                    &mut stream,
                    &crate::ws::handshake::refusal_response(Status::ServiceUnavailable, None),
                );
                return None;
            }
        }
        let mut conn = Conn::new(stream, now, settings);
        if refuse {
            // Kept until the 503 is written and the peer has closed, so its request
            // does not turn our close into a reset that destroys the response.
            conn.refuse(Status::ServiceUnavailable, None, settings, now);
        }
        let key = self.clients.insert(Client {
            conn,
            listener,
            token: None,
            flush_scheduled: false,
        })?;
        if let Some(count) = self.per_listener.get_mut(listener) {
            *count += 1;
        }
        Some(key)
    }

    pub fn stream_mut(&mut self, key: Key) -> Option<&mut Stream> {
        self.clients
            .get_mut(key)
            .map(|client| client.conn.stream_mut())
    }

    pub fn on_event(&mut self, key: Key, readable: bool, writable: bool, read_closed: bool) {
        if let Some(client) = self.clients.get_mut(key) {
            client.conn.on_event(readable, writable, read_closed);
        }
    }

    /// Lets a client do all the I/O it can, then settles what its new phase means.
    pub fn drive(
        &mut self,
        key: Key,
        scratch: &mut [u8],
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) -> Step {
        loop {
            let Hub { clients, locks, .. } = self;
            let Some(client) = clients.get_mut(key) else {
                return Step::Idle;
            };
            let mut upcalls = SessionUpcalls {
                locks,
                me: key,
                settings,
            };
            let mut ctx = ClientCtx {
                settings,
                stats,
                now,
                upcalls: &mut upcalls,
            };
            let exit = match client.conn.drive(scratch, &mut ctx) {
                socket::Drive::Idle => {
                    self.settle(key);
                    return Step::Idle;
                }
                socket::Drive::OverBudget => {
                    self.settle(key);
                    return Step::OverBudget;
                }
                socket::Drive::Exit(exit) => exit,
            };
            match exit {
                Exit::Gone(gone) => {
                    self.close(key, &gone);
                    return Step::Idle;
                }
                // The reply is queued; keep going (flush, and any frames still unread).
                Exit::Authorized {
                    identity,
                    websocket_key,
                    head_len,
                } => {
                    if let Err(gone) = self.admit(
                        key,
                        identity,
                        &websocket_key,
                        head_len,
                        settings,
                        stats,
                        now,
                    ) {
                        self.close(key, &gone);
                        return Step::Idle;
                    }
                }
            }
        }
    }

    /// An authorized upgrade: accepted when its token is free, else refused with 429.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &mut self,
        key: Key,
        identity: Identity,
        websocket_key: &str,
        head_len: usize,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) -> Result<(), Gone> {
        let token = identity.token;
        let busy = self.tokens.contains_key(&token);
        let Hub {
            clients,
            locks,
            tokens,
            ..
        } = self;
        let Some(client) = clients.get_mut(key) else {
            return Ok(());
        };
        if busy {
            log::warn!(
                "handshake refused peer={} status=429 reason=\"token already connected\" user={:?}",
                client.conn.peer(),
                identity.user
            );
            stats.handshakes_refused += 1;
            let retry = settings.busy_retry_after();
            client
                .conn
                .refuse(Status::TooManyRequests, Some(retry), settings, now);
            return Ok(());
        }
        log::debug!(
            "client open peer={} user={:?}",
            client.conn.peer(),
            identity.user
        );
        client.token = Some(token);
        tokens.insert(token, key);
        let mut upcalls = SessionUpcalls {
            locks,
            me: key,
            settings,
        };
        let mut ctx = ClientCtx {
            settings,
            stats,
            now,
            upcalls: &mut upcalls,
        };
        client
            .conn
            .accept(identity, websocket_key, head_len, &mut ctx)
    }

    /// Brings the shared state up to date after a client did I/O or ran its timers: a
    /// client no longer open loses its lock, a session that ended frees its token at once
    /// (the socket may linger a while), and anything queued is flushed at the end of the
    /// turn.
    fn settle(&mut self, key: Key) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        if !client.conn.is_open() {
            self.locks.release_client(key);
        }
        if client.conn.identity().is_none()
            && let Some(token) = client.token.take()
            && self.tokens.get(&token) == Some(&key)
        {
            self.tokens.remove(&token);
        }
        self.schedule_flush(key);
    }

    fn schedule_flush(&mut self, key: Key) {
        if let Some(client) = self.clients.get_mut(key)
            && !client.flush_scheduled
            && client.conn.has_output()
        {
            client.flush_scheduled = true;
            self.to_flush.push(key);
        }
    }

    /// Writes every client that had frames queued this turn: one `writev` each, however
    /// many messages arrived.
    pub fn flush(&mut self, stats: &mut Stats) {
        let mut list = std::mem::take(&mut self.to_flush);
        for &key in &list {
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            client.flush_scheduled = false;
            if let Err(gone) = client.conn.flush(stats) {
                self.close(key, &gone);
            }
        }
        // The emptied list goes back, so its allocation is reused next turn.
        list.clear();
        if self.to_flush.is_empty() {
            self.to_flush = list;
        }
    }

    /// Timers of every client: handshake, keepalive, expiry, close deadlines.
    pub fn tick(&mut self, settings: &Settings, now: Instant) {
        for key in self.clients.keys() {
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            match client.conn.on_tick(settings, now) {
                Ok(()) => self.settle(key),
                Err(gone) => self.close(key, &gone),
            }
        }
    }

    /// Sends Close 1001 to every client (the server is stopping); those still
    /// handshaking are dropped.
    pub fn shut_down(&mut self, settings: &Settings, stats: &mut Stats, now: Instant) {
        for key in self.clients.keys() {
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            match client
                .conn
                .start_close(1001, "going away", now, settings.close_timeout)
            {
                Ok(()) => self.settle(key),
                Err(gone) => self.close(key, &gone),
            }
        }
        self.flush(stats);
    }

    /// A reloaded `max_message_size` applies to open sessions too, from their next message.
    pub fn apply_message_limit(&mut self, max_message_size: usize) {
        for (_, client) in self.clients.iter_mut() {
            client.conn.set_max_message_size(max_message_size);
        }
    }

    /// Offers a data frame to one client: queued, or held behind its fragmented message.
    fn deliver(
        client: &mut Client,
        deferred: Option<&mut crate::server::outbound::OutQueue>,
        frame: &Rc<[u8]>,
        max_outbound: usize,
    ) -> Delivery {
        match deferred {
            None => client.conn.queue(frame.clone(), 0, max_outbound),
            Some(deferred) => {
                let queued = client.conn.queued_bytes() + deferred.pending_bytes();
                if queued + frame.len() > max_outbound {
                    return Delivery::Overflow { queued };
                }
                deferred.push(frame.clone());
                Delivery::Deferred
            }
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
        for (key, client) in self.clients.iter_mut() {
            let deferred = self.locks.deferred_for(key);
            match Hub::deliver(client, deferred, frames, settings.max_outbound_buffer) {
                Delivery::Queued => {
                    recipients += 1;
                    if !client.flush_scheduled {
                        client.flush_scheduled = true;
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

    /// Queues a frame to the client holding `token`; true when it was queued (or held
    /// behind a fragmented message).
    pub fn direct(
        &mut self,
        token: &Token,
        frame: &Rc<[u8]>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> bool {
        let Some(&key) = self.tokens.get(token) else {
            return false;
        };
        let Some(client) = self.clients.get_mut(key) else {
            return false;
        };
        let deferred = self.locks.deferred_for(key);
        match Hub::deliver(client, deferred, frame, settings.max_outbound_buffer) {
            Delivery::Queued => {
                stats.messages_out += 1;
                self.schedule_flush(key);
                true
            }
            Delivery::Deferred => {
                stats.messages_out += 1;
                true
            }
            Delivery::NotOpen => false,
            Delivery::Overflow { queued } => {
                self.drop_slow_consumer(key, queued, stats);
                false
            }
        }
    }

    /// True when `token` names an open client (a `c` with an empty message).
    pub fn is_online(&self, token: &Token) -> bool {
        self.tokens
            .get(token)
            .and_then(|key| self.clients.get(*key))
            .is_some_and(|client| client.conn.is_open())
    }

    /// Locks the open client holding `token` for `owner`'s fragmented send. One lock per
    /// owner: false while it still holds one, or when the client is absent, not open or
    /// locked by another.
    pub fn lock(&mut self, token: &Token, owner: Key) -> bool {
        if self.locks.is_held_by(owner) {
            return false;
        }
        let Some(&key) = self.tokens.get(token) else {
            return false;
        };
        let open = self
            .clients
            .get(key)
            .is_some_and(|client| client.conn.is_open());
        open && self.locks.lock(key, owner)
    }

    /// Sends one fragment of `owner`'s locked message. The last one unlocks the client and
    /// releases the data held back meanwhile, in the order it arrived.
    pub fn fragment(
        &mut self,
        owner: Key,
        fragment: Fragment<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> FragmentResult {
        let Some(key) = self.locks.client_of(owner) else {
            return FragmentResult::Refused;
        };
        let (frame, fin) = match self.locks.encode(owner, fragment) {
            Encoded::Frame { frame, fin } => (frame, fin),
            Encoded::Failed(result) => return result,
        };
        let deferred = self.locks.deferred_bytes(key);
        let Some(client) = self.clients.get_mut(key) else {
            return FragmentResult::Refused;
        };
        let queued = client.conn.queued_bytes() + deferred;
        if queued + frame.len() > settings.max_outbound_buffer {
            self.drop_slow_consumer(key, queued, stats);
            return FragmentResult::Overflow { queued };
        }
        client.conn.push_frame(frame);
        if fin {
            stats.messages_out += 1;
            if let Some(deferred) = self.locks.release_client(key) {
                client.conn.append(deferred);
            }
        }
        self.schedule_flush(key);
        FragmentResult::Sent
    }

    /// The control connection `owner` is gone; a client it had locked is closed with 1011,
    /// since the half-sent message can never be finished.
    pub fn lose_frame_source(&mut self, owner: Key, settings: &Settings, now: Instant) {
        let Some(key) = self.locks.release_owner(owner) else {
            return;
        };
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        match client
            .conn
            .start_close(1011, "framesource lost", now, settings.close_timeout)
        {
            Ok(()) => {
                log::warn!(
                    "frame source lost; closing client peer={} code=1011",
                    client.conn.peer()
                );
                self.settle(key);
            }
            Err(gone) => self.close(key, &gone),
        }
    }

    fn drop_slow_consumer(&mut self, key: Key, queued: usize, stats: &mut Stats) {
        stats.slow_consumers_dropped += 1;
        self.close(key, &Gone::SlowConsumer { queued });
    }

    /// Removes a client now, logging why; the socket closes when its `Conn` drops.
    pub fn close(&mut self, key: Key, gone: &Gone) {
        let Some(client) = self.clients.remove(key) else {
            return;
        };
        self.locks.release_client(key);
        if let Some(token) = client.token
            && self.tokens.get(&token) == Some(&key)
        {
            self.tokens.remove(&token);
        }
        if let Some(count) = self.per_listener.get_mut(client.listener) {
            *count = count.saturating_sub(1);
        }
        match gone {
            Gone::SlowConsumer { .. } => {
                log::warn!(
                    "client dropped peer={} reason=\"{gone}\"",
                    client.conn.peer()
                );
            }
            Gone::PeerClosed
            | Gone::Io(_)
            | Gone::Finished
            | Gone::HandshakeTimeout
            | Gone::KeepaliveTimeout
            | Gone::CloseTimeout
            | Gone::ShuttingDown => {
                log::debug!("client gone peer={} reason=\"{gone}\"", client.conn.peer());
            }
        }
    }
}

/// Connections beyond `max_connections` kept just long enough to deliver their 503.
const REFUSAL_SLACK: usize = 64;
