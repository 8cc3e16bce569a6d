//! The hub owns the WebSocket clients and everything shared between connections: the token
//! and user indexes, topics, admission, the fragment-lock table, event listeners and the
//! authorizers, the list of clients to flush, and the one path a message takes to a client.
//!
//! Broadcasts, direct, user and topic messages and fragments all come through here, so they
//! share one ordering (per client, the order the hub was asked) and one backpressure rule:
//! a client whose queue would pass `max_outbound_buffer` is dropped as a slow consumer,
//! counted, and never holds up the others. Frames are queued, not written: the server has
//! every client touched in a loop turn flushed once, with one `writev` each.
//!
//! A client does its own I/O; when it returns, the hub settles what the connection's new
//! phase means for the shared state. An open connection holds a seat (its token, user and
//! topics); the seat is given back the moment the connection stops being open, whatever
//! ended it, and that is when the `disconnected` event goes out. That is the only place
//! those facts are read, so they cannot drift apart.

mod authorizer;
mod events;
mod key_list;
mod locks;
mod names;
mod topics;
mod users;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use crate::auth;
use crate::config::{AuthMode, AuthorizerFallback, ClientMessages, TokenReuse};
use crate::control::authorizer::{AuthRequest, Decision};
use crate::control::command::{Page, PageRequest, Refusal};
use crate::control::event::{DisconnectCause, Event, EventKinds};
use crate::server::conn::{ClientCtx, Conn, Delivered, Delivery, Exit, Gone, Upcalls, Upgrade};
use crate::server::outbound::shared_frame;
use crate::server::settings::Settings;
use crate::server::slab::{Key, Slab};
use crate::server::socket;
use crate::server::stats::Stats;
use crate::server::stream::Stream;
use crate::token::Token;
use crate::ws::frame::OpCode;
use crate::ws::handshake::{self, Status};
use crate::ws::message::MessageKind;

use authorizer::{Authorizers, Waiting};
use events::Events;
pub use events::{ControlSink, Offer};
use key_list::KeyList;
use locks::{Encoded, Locks};
pub use locks::{Fragment, FragmentResult};
use names::{TopicId, UserName};
use topics::{Presence, Topics};
use users::Users;

/// Close code of a connection whose token a newer one took (`token_reuse = "replace"`).
pub const CLOSE_REPLACED: u16 = 4001;

pub struct Hub {
    clients: Slab<Client>,
    /// Open connections per token: one, or several with `token_reuse = "share"`.
    tokens: HashMap<Token, KeyList>,
    users: Users,
    topics: Topics,
    locks: Locks,
    events: Events,
    authorizers: Authorizers,
    listeners: Vec<ListenerLoad>,
    /// Clients with frames queued this turn, to flush at its end.
    to_flush: Vec<Key>,
    /// Clients whose input may have waited while the hub decided on them (an upgrade the
    /// authorizer answered): the server drives them again this turn.
    to_drive: Vec<Key>,
    /// Clients that count toward `max_connections`: all but those winding down.
    live: usize,
    /// Refused or failed sockets waiting for their peer to close, bounded by
    /// `max_lingering`.
    winding: usize,
}

/// A listener's name (its bound endpoint) and its live connections, for `m`, status and
/// events.
struct ListenerLoad {
    name: String,
    connections: usize,
}

/// A client and what the hub keeps about it.
struct Client {
    conn: Conn,
    /// Index of the listener this connection came through.
    listener: usize,
    /// Held while the connection is open.
    seat: Option<Seat>,
    /// The authorization request this client waits for.
    waiting: Option<u64>,
    /// True while counted in `winding` rather than `live`.
    winding: bool,
    /// True while the client is on `to_flush`.
    flush_scheduled: bool,
}

/// What an open connection holds in the shared indexes.
struct Seat {
    token: Token,
    user: UserName,
    topics: Vec<TopicId>,
}

/// Who an admitted connection is.
struct Admission<'a> {
    token: Token,
    user: &'a str,
    /// When its token expires, Unix seconds.
    expires_at: u64,
    upgrade: &'a Upgrade,
}

/// What `drive` leaves for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Idle,
    /// More to read, but the client had its share of the turn: drive it again later.
    OverBudget,
}

/// Figures for the status reply.
pub struct Figures {
    pub connections: usize,
    pub lingering: usize,
    pub users_online: usize,
    pub topics: usize,
    pub user_subscriptions: usize,
    pub event_listeners: usize,
    pub event_listeners_dropped: u64,
    pub authorizers: usize,
    pub authorizations_waiting: usize,
}

/// What a client's session hands up while the hub drives it.
struct SessionUpcalls<'a> {
    locks: &'a mut Locks,
    events: &'a mut Events,
    seat: Option<&'a Seat>,
    me: Key,
    settings: &'a Settings,
}

impl Upcalls for SessionUpcalls<'_> {
    fn message(&mut self, kind: MessageKind, payload: &[u8], queued: usize) -> Delivered {
        match self.settings.client_messages {
            ClientMessages::Ignore => Delivered::Nothing,
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
            ClientMessages::Forward => {
                // A message that arrives after the session ended (while our Close is on
                // its way) belongs to no one any more.
                if let Some(seat) = self.seat {
                    self.events.emit(&Event::Message {
                        token: seat.token,
                        user: &seat.user,
                        binary: kind == MessageKind::Binary,
                        payload,
                    });
                }
                Delivered::Nothing
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

/// What became of a frame offered to one client.
enum Offered {
    /// Queued, or held behind its fragmented message.
    Reached,
    /// Not open: nothing queued.
    Skipped,
    /// Over `max_outbound_buffer`: the client is to be dropped.
    Overflow { queued: usize },
}

/// Offers a data frame to one client: queued (and the client put on the flush list), or
/// held behind its fragmented message. The one step every delivery takes, once per
/// recipient: inlined into the loops that walk the recipients.
#[inline(always)]
fn offer(
    client: &mut Client,
    key: Key,
    locks: &mut Locks,
    to_flush: &mut Vec<Key>,
    frame: &Rc<[u8]>,
    settings: &Settings,
) -> Offered {
    let max_outbound = settings.max_outbound_buffer;
    let Some(deferred) = locks.deferred_for(key) else {
        return match client.conn.queue(frame.clone(), max_outbound) {
            Delivery::Queued => {
                if !client.flush_scheduled {
                    client.flush_scheduled = true;
                    to_flush.push(key);
                }
                Offered::Reached
            }
            Delivery::NotOpen => Offered::Skipped,
            Delivery::Overflow { queued } => Offered::Overflow { queued },
        };
    };
    if !client.conn.is_open() {
        return Offered::Skipped;
    }
    let queued = client.conn.queued_bytes() + deferred.pending_bytes();
    if queued + frame.len() > max_outbound {
        return Offered::Overflow { queued };
    }
    deferred.push(frame.clone());
    Offered::Reached
}

/// A data message for one or more clients, before it is encoded.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub binary: bool,
    pub payload: &'a [u8],
}

impl Message<'_> {
    /// The unmasked frame every recipient shares.
    fn frame(&self) -> Rc<[u8]> {
        let opcode = if self.binary {
            OpCode::Binary
        } else {
            OpCode::Text
        };
        shared_frame(true, opcode, self.payload)
    }
}

/// The parts of the hub a delivery writes to, borrowed apart from the index it walks.
struct Recipients<'a> {
    clients: &'a mut Slab<Client>,
    locks: &'a mut Locks,
    to_flush: &'a mut Vec<Key>,
}

impl Recipients<'_> {
    /// Queues `message` to each of `keys` (each once: `keys` has no repeats), encoded once
    /// and shared, and only when there is someone to send it to. Returns the number of
    /// recipients and the clients to drop as slow consumers.
    fn deliver(
        &mut self,
        keys: &[Key],
        message: Message<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> (usize, Vec<(Key, usize)>) {
        if keys.is_empty() {
            return (0, Vec::new());
        }
        let frame = &message.frame();
        let mut recipients = 0;
        let mut overflowed = Vec::new();
        for &key in keys {
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            match offer(client, key, self.locks, self.to_flush, frame, settings) {
                Offered::Reached => recipients += 1,
                Offered::Skipped => {}
                Offered::Overflow { queued } => overflowed.push((key, queued)),
            }
        }
        stats.messages_out += recipients as u64;
        (recipients, overflowed)
    }
}

/// The page of a list reply from one page of names and counts.
fn page_reply(items: Vec<(Rc<str>, usize)>, more: bool) -> Page {
    let next_cursor = match (more, items.last()) {
        (true, Some((name, _))) => name.as_bytes().to_vec(),
        (true, None) | (false, _) => Vec::new(),
    };
    Page {
        next_cursor,
        items: items
            .into_iter()
            .map(|(name, count)| (name.as_bytes().to_vec(), count as u64))
            .collect(),
    }
}

/// The `disconnected` code and cause of a client removed while still open.
fn abrupt_ending(gone: &Gone) -> (u16, DisconnectCause) {
    // RFC 6455 §7.1.5: a connection closed without a Close frame is "considered to be 1006".
    match gone {
        Gone::PeerClosed | Gone::Finished | Gone::CloseTimeout | Gone::HandshakeTimeout => {
            (1006, DisconnectCause::Client)
        }
        Gone::Io(_) => (1006, DisconnectCause::Error),
        Gone::SlowConsumer { .. } => (1006, DisconnectCause::Slow),
        Gone::KeepaliveTimeout => (1006, DisconnectCause::Timeout),
        Gone::ShuttingDown => (1001, DisconnectCause::Shutdown),
    }
}

impl Hub {
    pub fn new(listener_names: Vec<String>) -> Hub {
        Hub {
            clients: Slab::default(),
            tokens: HashMap::new(),
            users: Users::default(),
            topics: Topics::default(),
            locks: Locks::default(),
            events: Events::default(),
            authorizers: Authorizers::default(),
            listeners: listener_names
                .into_iter()
                .map(|name| ListenerLoad {
                    name,
                    connections: 0,
                })
                .collect(),
            to_flush: Vec::new(),
            to_drive: Vec::new(),
            live: 0,
            winding: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Each listener's name and live connections, in config order.
    pub fn listener_loads(&self) -> impl Iterator<Item = (&str, usize)> {
        self.listeners
            .iter()
            .map(|load| (load.name.as_str(), load.connections))
    }

    pub fn figures(&self) -> Figures {
        Figures {
            connections: self.clients.len(),
            lingering: self.winding,
            users_online: self.users.online(),
            topics: self.topics.len(),
            user_subscriptions: self.users.subscription_count(),
            event_listeners: self.events.listeners(),
            event_listeners_dropped: self.events.dropped(),
            authorizers: self.authorizers.count(),
            authorizations_waiting: self.authorizers.waiting(),
        }
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

    // --- Admission --------------------------------------------------------------------

    /// Takes a freshly accepted connection, or refuses it at `max_connections` (refused
    /// sockets no longer count toward it; at most `max_lingering` are kept while their 503
    /// goes out). Returns the key to register the stream under, or `None` when nothing is
    /// kept.
    pub fn admit_socket(
        &mut self,
        mut stream: Stream,
        listener: usize,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) -> Option<Key> {
        stats.connections_accepted += 1;
        let refuse = self.live >= settings.max_connections;
        if refuse {
            stats.handshakes_refused += 1;
            log::warn!(
                peer = stream.peer(),
                status = 503,
                reason = "max_connections reached",
                max_connections = settings.max_connections;
                "connection refused"
            );
            if self.winding >= settings.max_lingering {
                // No room to linger: best effort, the fresh socket's buffer takes a short
                // response.
                let _ = std::io::Write::write(
                    &mut stream,
                    &handshake::refusal_response(Status::ServiceUnavailable, None),
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
            seat: None,
            waiting: None,
            winding: refuse,
            flush_scheduled: false,
        })?;
        if refuse {
            self.winding += 1;
        } else {
            self.live += 1;
        }
        if let Some(load) = self.listeners.get_mut(listener) {
            load.connections += 1;
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

    /// Clients to drive again this turn (their input may have waited on a decision).
    pub fn take_revisits(&mut self) -> Vec<Key> {
        std::mem::take(&mut self.to_drive)
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
            let Hub {
                clients,
                locks,
                events,
                ..
            } = self;
            let Some(Client { conn, seat, .. }) = clients.get_mut(key) else {
                return Step::Idle;
            };
            let mut upcalls = SessionUpcalls {
                locks,
                events,
                seat: seat.as_ref(),
                me: key,
                settings,
            };
            let mut ctx = ClientCtx {
                settings,
                stats,
                now,
                upcalls: &mut upcalls,
            };
            let exit = match conn.drive(scratch, &mut ctx) {
                socket::Drive::Idle => {
                    self.settle(key, settings);
                    return Step::Idle;
                }
                socket::Drive::OverBudget => {
                    self.settle(key, settings);
                    return Step::OverBudget;
                }
                socket::Drive::Exit(exit) => exit,
            };
            match exit {
                Exit::Gone(gone) => {
                    self.close(key, &gone);
                    return Step::Idle;
                }
                // The answer is queued (or the authorizer asked); keep going: flush, and
                // any frames still unread.
                Exit::Upgrade(upgrade) => self.upgrade(key, upgrade, settings, stats, now),
            }
        }
    }

    /// An upgrade that passed its checks: admitted now, or after the authorizer answers.
    fn upgrade(
        &mut self,
        key: Key,
        upgrade: Upgrade,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        match (settings.auth, &upgrade.identity) {
            (AuthMode::Cookie, Some(identity)) => {
                let admission = Admission {
                    token: identity.token,
                    user: &identity.user,
                    expires_at: identity.expires_at,
                    upgrade: &upgrade,
                };
                self.admit(key, &admission, &[], settings, stats, now);
            }
            // A reload switched `auth` between the check and now: ask, as it says now.
            (AuthMode::Cookie, None)
            | (AuthMode::Authorizer | AuthMode::CookieAndAuthorizer, _) => {
                self.ask_authorizer(key, upgrade, settings, stats, now);
            }
        }
    }

    /// Admits an upgrade: `token_reuse` decides about a token already held, then the
    /// connection takes its seat, joins its user's topics and `topics`, and gets its 101.
    fn admit(
        &mut self,
        key: Key,
        admission: &Admission<'_>,
        topics: &[&str],
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        if !self
            .clients
            .get(key)
            .is_some_and(|client| client.conn.is_admitting())
        {
            return;
        }
        let token = admission.token;
        let holders = self.holders(&token).to_vec();
        if !holders.is_empty() {
            match settings.users.token_reuse {
                TokenReuse::Refuse => {
                    let Some(client) = self.clients.get_mut(key) else {
                        return;
                    };
                    log::warn!(
                        peer = client.conn.peer(),
                        status = 429,
                        reason = "token already connected",
                        user = admission.user;
                        "handshake refused"
                    );
                    stats.handshakes_refused += 1;
                    let retry = settings.busy_retry_after();
                    client
                        .conn
                        .refuse(Status::TooManyRequests, Some(retry), settings, now);
                    self.settle(key, settings);
                    return;
                }
                TokenReuse::Replace => {
                    for holder in holders {
                        self.end_session(
                            holder,
                            CLOSE_REPLACED,
                            "replaced",
                            DisconnectCause::Replaced,
                            settings,
                            now,
                        );
                    }
                }
                TokenReuse::Share => {}
            }
        }
        let user = self.users.join(admission.user, key);
        self.tokens.entry(token).or_default().push(key);
        let listener_name = {
            let Some(client) = self.clients.get_mut(key) else {
                return;
            };
            log::debug!(peer = client.conn.peer(), user = admission.user; "client open");
            client.seat = Some(Seat {
                token,
                user: Rc::clone(&user),
                topics: Vec::new(),
            });
            self.listeners
                .get(client.listener)
                .map(|load| load.name.clone())
                .unwrap_or_default()
        };
        if let Some(client) = self.clients.get(key) {
            let remote = client.conn.peer();
            let upgrade = admission.upgrade;
            self.events.emit(&Event::Connected {
                token,
                user: &user,
                listener: &listener_name,
                remote: &remote,
                origin: upgrade.origin.as_deref().unwrap_or(""),
                path: &upgrade.path,
                subprotocol: "",
            });
        }
        for topic in self.users.subscriptions(&user).to_vec() {
            if self.join_topic(key, topic, settings).is_err() {
                log::warn!(
                    user = &*user,
                    reason = Refusal::TopicLimitPerConnection.reason();
                    "user subscription not applied to a new connection"
                );
            }
        }
        for name in topics {
            let joined = self
                .topics
                .get_or_create(name, settings.topics.max_topics)
                .map_err(|_| Refusal::TopicLimit)
                .and_then(|topic| self.join_topic(key, topic, settings));
            if let Err(refusal) = joined {
                log::warn!(
                    user = &*user,
                    topic = *name,
                    reason = refusal.reason();
                    "authorizer topic not joined"
                );
            }
        }
        let accepted = {
            let Hub {
                clients,
                locks,
                events,
                ..
            } = self;
            let Some(Client { conn, seat, .. }) = clients.get_mut(key) else {
                return;
            };
            let mut upcalls = SessionUpcalls {
                locks,
                events,
                seat: seat.as_ref(),
                me: key,
                settings,
            };
            let mut ctx = ClientCtx {
                settings,
                stats,
                now,
                upcalls: &mut upcalls,
            };
            conn.accept(admission.expires_at, &mut ctx)
        };
        match accepted {
            Ok(()) => self.settle(key, settings),
            Err(gone) => self.close(key, &gone),
        }
    }

    /// Sends the upgrade to an authorizer and keeps it waiting, or falls back.
    fn ask_authorizer(
        &mut self,
        key: Key,
        upgrade: Upgrade,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        if self.authorizers.waiting() >= settings.authorizer.max_pending {
            log::warn!(
                status = 503,
                reason = "too many upgrades wait for the authorizer",
                max_pending = settings.authorizer.max_pending;
                "handshake refused"
            );
            self.deny(
                key,
                503,
                "too many upgrades wait for the authorizer",
                settings,
                stats,
                now,
            );
            return;
        }
        let Some(client) = self.clients.get(key) else {
            return;
        };
        let id = self.authorizers.new_id();
        let remote = client.conn.peer();
        let listener = self
            .listeners
            .get(client.listener)
            .map_or("", |load| load.name.as_str());
        let (path, query) = upgrade
            .path
            .split_once('?')
            .unwrap_or((upgrade.path.as_str(), ""));
        let request = AuthRequest {
            id,
            listener,
            remote: &remote,
            origin: upgrade.origin.as_deref().unwrap_or(""),
            path,
            query,
            cookie: &upgrade.cookies,
            token: upgrade.identity.as_ref().map(|identity| identity.token),
            user: upgrade
                .identity
                .as_ref()
                .map_or("", |identity| identity.user.as_str()),
        };
        let mut bytes = Vec::new();
        request.encode(&mut bytes);
        let request: Rc<[u8]> = Rc::from(bytes);
        let Some(authorizer) = self.authorizers.pick() else {
            self.fall_back(
                key,
                upgrade,
                "no authorizer connected",
                settings,
                stats,
                now,
            );
            return;
        };
        self.events.send(authorizer, Rc::clone(&request));
        self.authorizers.wait(
            id,
            Waiting {
                client: key,
                authorizer,
                deadline: now + settings.authorizer.timeout,
                request,
                upgrade,
            },
        );
        if let Some(client) = self.clients.get_mut(key) {
            client.waiting = Some(id);
        }
    }

    /// The authorizer's answer to request `id`; an id no longer waiting is ignored. With
    /// `auth = "authorizer"` an allow must name the user (the commands layer checks).
    pub fn decide(
        &mut self,
        id: u64,
        decision: &Decision<'_>,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        let Some(waiting) = self.authorizers.take(id) else {
            log::debug!(id; "authorizer answer for no waiting upgrade");
            return;
        };
        let key = waiting.client;
        if let Some(client) = self.clients.get_mut(key) {
            client.waiting = None;
        }
        match decision {
            Decision::Allow { user, topics } => {
                let topics: Vec<&str> = topics.iter().map(|topic| topic.as_str()).collect();
                self.allow(key, &waiting.upgrade, *user, &topics, settings, stats, now);
            }
            Decision::Deny { status, reason } => {
                log::warn!(status = *status, reason = "authorizer denied"; "handshake refused");
                self.deny(key, *status, reason, settings, stats, now);
            }
        }
        self.to_drive.push(key);
    }

    /// Admits a waiting upgrade as `user` (or the cookie's user); with no cookies wson
    /// gives the connection a token of its own, valid for `token_lifetime`.
    #[allow(clippy::too_many_arguments)]
    fn allow(
        &mut self,
        key: Key,
        upgrade: &Upgrade,
        user: Option<&str>,
        topics: &[&str],
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        let cookie_user = upgrade
            .identity
            .as_ref()
            .map(|identity| identity.user.as_str());
        let Some(user) = user.or(cookie_user) else {
            // The commands layer refuses such an answer; a fallback never gives one.
            self.deny(
                key,
                500,
                "the authorizer named no user",
                settings,
                stats,
                now,
            );
            return;
        };
        let (token, expires_at) = match &upgrade.identity {
            Some(identity) => (identity.token, identity.expires_at),
            None => {
                let mut random = [0u8; 32];
                if getrandom::fill(&mut random).is_err() {
                    self.deny(key, 503, "no randomness for a token", settings, stats, now);
                    return;
                }
                (
                    auth::token_from_random(random),
                    auth::unix_now().saturating_add(settings.token_lifetime.as_secs()),
                )
            }
        };
        let admission = Admission {
            token,
            user,
            expires_at,
            upgrade,
        };
        self.admit(key, &admission, topics, settings, stats, now);
    }

    fn deny(
        &mut self,
        key: Key,
        status: u16,
        reason: &str,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        stats.handshakes_refused += 1;
        client
            .conn
            .refuse_with(handshake::denial_response(status, reason), settings, now);
        self.settle(key, settings);
    }

    /// No authorizer answered (none connected, gone, or too slow): the configured fallback.
    fn fall_back(
        &mut self,
        key: Key,
        upgrade: Upgrade,
        why: &str,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        match settings.authorizer.fallback {
            AuthorizerFallback::Allow if upgrade.identity.is_some() => {
                log::warn!(reason = why; "upgrade allowed by the fallback");
                self.allow(key, &upgrade, None, &[], settings, stats, now);
            }
            AuthorizerFallback::Allow | AuthorizerFallback::Deny => {
                let status = settings.authorizer.fallback_status;
                log::warn!(status, reason = why; "handshake refused");
                self.deny(key, status, why, settings, stats, now);
            }
        }
        self.to_drive.push(key);
    }

    /// The upgrades whose authorizer took too long fall back.
    fn expire_authorizations(&mut self, settings: &Settings, stats: &mut Stats, now: Instant) {
        for id in self.authorizers.expired(now) {
            if let Some(waiting) = self.authorizers.take(id) {
                if let Some(client) = self.clients.get_mut(waiting.client) {
                    client.waiting = None;
                }
                self.fall_back(
                    waiting.client,
                    waiting.upgrade,
                    "the authorizer did not answer in time",
                    settings,
                    stats,
                    now,
                );
            }
        }
    }

    // --- The life of a client ----------------------------------------------------------

    /// Brings the shared state up to date after a client did I/O or ran its timers or the
    /// hub changed its phase: a client no longer open gives its seat back and loses its
    /// lock, one winding down moves from `live` to `winding` (or is closed when too many
    /// linger), and anything queued is flushed at the end of the turn.
    fn settle(&mut self, key: Key, settings: &Settings) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        let open = client.conn.is_open();
        let winding = client.conn.is_winding_down();
        if winding != client.winding {
            client.winding = winding;
            if winding {
                self.live = self.live.saturating_sub(1);
                self.winding += 1;
            } else {
                self.winding = self.winding.saturating_sub(1);
                self.live += 1;
            }
        }
        if !open {
            self.locks.release_client(key);
            self.release_seat(key);
        }
        if winding && self.winding > settings.max_lingering {
            // Lingering protects a last response from a reset; past the bound the
            // socket is closed at once instead.
            self.close(key, &Gone::Finished);
            return;
        }
        self.schedule_flush(key);
    }

    /// Gives an ended connection's seat back: token, user, topics (a `leave` for each
    /// topic the user has no other connection in), then the `disconnected` event.
    fn release_seat(&mut self, key: Key) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        let Some(seat) = client.seat.take() else {
            return;
        };
        let (code, reason, cause) = match client.conn.ending() {
            Some(ending) => (ending.code, ending.reason.clone(), ending.cause),
            None => (1006, String::new(), DisconnectCause::Client),
        };
        self.release(key, seat, code, &reason, cause);
    }

    fn release(&mut self, key: Key, seat: Seat, code: u16, reason: &str, cause: DisconnectCause) {
        if let Some(holders) = self.tokens.get_mut(&seat.token) {
            holders.remove(key);
            if holders.is_empty() {
                self.tokens.remove(&seat.token);
            }
        }
        self.users.leave(&seat.user, key);
        for topic in seat.topics {
            let name = self.topics.name(topic).cloned();
            let presence = self.topics.remove_member(topic, key, &seat.user);
            if presence == Presence::User
                && let Some(name) = name
            {
                self.events.emit(&Event::Leave {
                    user: &seat.user,
                    topic: &name,
                });
            }
        }
        self.events.emit(&Event::Disconnected {
            token: seat.token,
            user: &seat.user,
            code,
            reason,
            why: cause,
        });
    }

    /// Closes an open connection with our Close frame; its seat is given back at once.
    fn end_session(
        &mut self,
        key: Key,
        code: u16,
        reason: &str,
        cause: DisconnectCause,
        settings: &Settings,
        now: Instant,
    ) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        match client
            .conn
            .start_close(code, reason, cause, now, settings.close_timeout)
        {
            Ok(()) => self.settle(key, settings),
            Err(gone) => self.close(key, &gone),
        }
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

    /// Timers: every client's (handshake, keepalive, expiry, close deadlines) and the
    /// authorizer's deadline.
    pub fn tick(&mut self, settings: &Settings, stats: &mut Stats, now: Instant) {
        for key in self.clients.keys() {
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            match client.conn.on_tick(settings, now) {
                Ok(()) => self.settle(key, settings),
                Err(gone) => self.close(key, &gone),
            }
        }
        self.expire_authorizations(settings, stats, now);
    }

    /// Sends Close 1001 to every client (the server is stopping); those not yet open are
    /// dropped.
    pub fn shut_down(&mut self, settings: &Settings, stats: &mut Stats, now: Instant) {
        for key in self.clients.keys() {
            self.end_session(
                key,
                1001,
                "going away",
                DisconnectCause::Shutdown,
                settings,
                now,
            );
        }
        self.flush(stats);
    }

    /// A reloaded `max_message_size` applies to open sessions too, from their next message.
    pub fn apply_message_limit(&mut self, max_message_size: usize) {
        for (_, client) in self.clients.iter_mut() {
            client.conn.set_max_message_size(max_message_size);
        }
    }

    fn drop_slow_consumers(&mut self, overflowed: Vec<(Key, usize)>, stats: &mut Stats) {
        for (key, queued) in overflowed {
            self.drop_slow_consumer(key, queued, stats);
        }
    }

    fn drop_slow_consumer(&mut self, key: Key, queued: usize, stats: &mut Stats) {
        stats.slow_consumers_dropped += 1;
        self.close(key, &Gone::SlowConsumer { queued });
    }

    /// Removes a client now, logging why; the socket closes when its `Conn` drops.
    pub fn close(&mut self, key: Key, gone: &Gone) {
        let Some(mut client) = self.clients.remove(key) else {
            return;
        };
        self.locks.release_client(key);
        if let Some(id) = client.waiting.take() {
            self.authorizers.take(id);
        }
        if let Some(seat) = client.seat.take() {
            // A session can end and the connection finish within one drive (the peer's
            // Close echoed and flushed at once): its recorded ending is the one to report.
            let (code, reason, cause) = match client.conn.ending() {
                Some(ending) => (ending.code, ending.reason.clone(), ending.cause),
                None => {
                    let (code, cause) = abrupt_ending(gone);
                    (code, String::new(), cause)
                }
            };
            self.release(key, seat, code, &reason, cause);
        }
        if let Some(load) = self.listeners.get_mut(client.listener) {
            load.connections = load.connections.saturating_sub(1);
        }
        if client.winding {
            self.winding = self.winding.saturating_sub(1);
        } else {
            self.live = self.live.saturating_sub(1);
        }
        match gone {
            Gone::SlowConsumer { .. } => {
                log::warn!(peer = client.conn.peer(), reason:% = gone; "client dropped");
            }
            Gone::PeerClosed
            | Gone::Io(_)
            | Gone::Finished
            | Gone::HandshakeTimeout
            | Gone::KeepaliveTimeout
            | Gone::CloseTimeout
            | Gone::ShuttingDown => {
                log::debug!(peer = client.conn.peer(), reason:% = gone; "client gone");
            }
        }
    }

    // --- Delivery ----------------------------------------------------------------------

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
            match offer(
                client,
                key,
                &mut self.locks,
                &mut self.to_flush,
                frames,
                settings,
            ) {
                Offered::Reached => recipients += 1,
                Offered::Skipped => {}
                Offered::Overflow { queued } => overflowed.push((key, queued)),
            }
        }
        stats.messages_out += (recipients as u64).saturating_mul(messages as u64);
        self.drop_slow_consumers(overflowed, stats);
        recipients
    }

    /// Queues a frame to every open connection holding `token`; returns how many.
    pub fn direct(
        &mut self,
        token: &Token,
        message: Message<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> usize {
        let Hub {
            clients,
            tokens,
            locks,
            to_flush,
            ..
        } = self;
        let holders = tokens.get(token).map_or(&[][..], KeyList::as_slice);
        let mut recipients = Recipients {
            clients,
            locks,
            to_flush,
        };
        let (count, overflowed) = recipients.deliver(holders, message, settings, stats);
        self.drop_slow_consumers(overflowed, stats);
        count
    }

    /// Queues a frame to every open connection of `user`; returns how many.
    pub fn to_user(
        &mut self,
        user: &str,
        message: Message<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> usize {
        let Hub {
            clients,
            users,
            locks,
            to_flush,
            ..
        } = self;
        let mut recipients = Recipients {
            clients,
            locks,
            to_flush,
        };
        let (count, overflowed) =
            recipients.deliver(users.connections(user), message, settings, stats);
        self.drop_slow_consumers(overflowed, stats);
        count
    }

    /// Queues a frame to every connection subscribed to `topic`; returns how many.
    pub fn publish(
        &mut self,
        topic: &str,
        message: Message<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> usize {
        let Some(id) = self.topics.get(topic) else {
            return 0;
        };
        // Slow consumers are dropped after the walk, which leaves the member list as is.
        let Hub {
            clients,
            topics,
            locks,
            to_flush,
            ..
        } = self;
        let mut recipients = Recipients {
            clients,
            locks,
            to_flush,
        };
        let (count, overflowed) = recipients.deliver(topics.members(id), message, settings, stats);
        self.drop_slow_consumers(overflowed, stats);
        count
    }

    /// The open connections holding `token`.
    fn holders(&self, token: &Token) -> &[Key] {
        self.tokens.get(token).map_or(&[][..], KeyList::as_slice)
    }

    /// True when an open connection holds `token` (a `c` with an empty message).
    pub fn is_online(&self, token: &Token) -> bool {
        self.tokens
            .get(token)
            .is_some_and(|holders| !holders.is_empty())
    }

    // --- Users ---------------------------------------------------------------------------

    /// The user's open connections.
    pub fn user_connections(&self, user: &str) -> usize {
        self.users.connections(user).len()
    }

    /// A page of the user's tokens with the open connections holding each.
    pub fn user_tokens(&self, user: &str, page: &PageRequest<'_>, max_list_page: usize) -> Page {
        let mut counts: std::collections::BTreeMap<Token, usize> =
            std::collections::BTreeMap::new();
        for key in self.users.connections(user) {
            if let Some(seat) = self
                .clients
                .get(*key)
                .and_then(|client| client.seat.as_ref())
            {
                *counts.entry(seat.token).or_default() += 1;
            }
        }
        let limit = page.limit_within(max_list_page);
        let mut after = counts.into_iter().filter(|(token, _)| {
            page.cursor.is_empty() || token.as_bytes().as_slice() > page.cursor
        });
        let items: Vec<(Vec<u8>, u64)> = after
            .by_ref()
            .take(limit)
            .map(|(token, count)| (token.as_bytes().to_vec(), count as u64))
            .collect();
        let more = after.next().is_some();
        let next_cursor = match (more, items.last()) {
            (true, Some((token, _))) => token.clone(),
            (true, None) | (false, _) => Vec::new(),
        };
        Page { next_cursor, items }
    }

    /// A page of the online users with their open connections.
    pub fn online_users(&self, page: &PageRequest<'_>, max_list_page: usize) -> Page {
        let (items, more) = self
            .users
            .page(page.cursor, page.limit_within(max_list_page));
        page_reply(items, more)
    }

    /// Closes every open connection holding `token` with this Close; returns how many.
    pub fn kick_token(
        &mut self,
        token: &Token,
        code: u16,
        reason: &str,
        settings: &Settings,
        now: Instant,
    ) -> usize {
        let holders = self.holders(token).to_vec();
        self.kick(&holders, code, reason, settings, now)
    }

    /// Closes every open connection of `user` with this Close; returns how many.
    pub fn kick_user(
        &mut self,
        user: &str,
        code: u16,
        reason: &str,
        settings: &Settings,
        now: Instant,
    ) -> usize {
        let connections = self.users.connections(user).to_vec();
        self.kick(&connections, code, reason, settings, now)
    }

    fn kick(
        &mut self,
        keys: &[Key],
        code: u16,
        reason: &str,
        settings: &Settings,
        now: Instant,
    ) -> usize {
        for &key in keys {
            self.end_session(key, code, reason, DisconnectCause::Kicked, settings, now);
        }
        keys.len()
    }

    // --- Topics --------------------------------------------------------------------------

    /// Subscribes the open connections holding `token`; returns how many are subscribed
    /// now. All or nothing: a connection at `max_per_connection` refuses the whole command.
    pub fn subscribe_token(
        &mut self,
        token: &Token,
        topic: &str,
        settings: &Settings,
    ) -> Result<usize, Refusal> {
        let holders = self.holders(token).to_vec();
        if holders.is_empty() {
            return Ok(0);
        }
        self.subscribe_connections(&holders, topic, settings)
    }

    /// Subscribes a user: every current connection now, and every future one until
    /// `unsubscribe_user`. Returns the current connections subscribed.
    pub fn subscribe_user(
        &mut self,
        user: &str,
        topic: &str,
        settings: &Settings,
    ) -> Result<usize, Refusal> {
        let connections = self.users.connections(user).to_vec();
        self.check_room(&connections, topic, settings)?;
        let known = self
            .topics
            .get(topic)
            .is_some_and(|id| self.users.subscriptions(user).contains(&id));
        if !known && self.users.subscription_count() >= settings.topics.max_user_subscriptions {
            return Err(Refusal::UserSubscriptionLimit);
        }
        let id = self
            .topics
            .get_or_create(topic, settings.topics.max_topics)
            .map_err(|_| Refusal::TopicLimit)?;
        if self.users.subscribe(user, id) {
            self.topics.add_user_subscriber(id);
        }
        for key in &connections {
            self.join_topic(*key, id, settings)?;
        }
        Ok(connections.len())
    }

    fn subscribe_connections(
        &mut self,
        keys: &[Key],
        topic: &str,
        settings: &Settings,
    ) -> Result<usize, Refusal> {
        self.check_room(keys, topic, settings)?;
        let id = self
            .topics
            .get_or_create(topic, settings.topics.max_topics)
            .map_err(|_| Refusal::TopicLimit)?;
        for key in keys {
            self.join_topic(*key, id, settings)?;
        }
        Ok(keys.len())
    }

    /// Refuses before anything changes: a new topic past `max_topics`, or a connection
    /// that would pass `max_per_connection`.
    fn check_room(&self, keys: &[Key], topic: &str, settings: &Settings) -> Result<(), Refusal> {
        let existing = self.topics.get(topic);
        if existing.is_none() && self.topics.len() >= settings.topics.max_topics {
            return Err(Refusal::TopicLimit);
        }
        let full = keys.iter().any(|key| {
            self.clients
                .get(*key)
                .and_then(|client| client.seat.as_ref())
                .is_some_and(|seat| {
                    !existing.is_some_and(|id| seat.topics.contains(&id))
                        && seat.topics.len() >= settings.topics.max_per_connection
                })
        });
        if full {
            return Err(Refusal::TopicLimitPerConnection);
        }
        Ok(())
    }

    /// One open connection joins a topic (a no-op when it is in already): `subscribed`,
    /// and `join` when it is its user's first connection there.
    fn join_topic(&mut self, key: Key, topic: TopicId, settings: &Settings) -> Result<(), Refusal> {
        let Some(seat) = self
            .clients
            .get_mut(key)
            .and_then(|client| client.seat.as_mut())
        else {
            return Ok(());
        };
        if seat.topics.contains(&topic) {
            return Ok(());
        }
        if seat.topics.len() >= settings.topics.max_per_connection {
            self.topics.forget_if_unused(topic);
            return Err(Refusal::TopicLimitPerConnection);
        }
        seat.topics.push(topic);
        let presence = self.topics.add_member(topic, key, &seat.user);
        let Some(name) = self.topics.name(topic) else {
            return Ok(());
        };
        self.events.emit(&Event::Subscribed {
            token: seat.token,
            user: &seat.user,
            topic: name,
        });
        if presence == Presence::User {
            self.events.emit(&Event::Join {
                user: &seat.user,
                topic: name,
            });
        }
        Ok(())
    }

    /// Unsubscribes the open connections holding `token`; returns how many were
    /// subscribed.
    pub fn unsubscribe_token(&mut self, token: &Token, topic: &str) -> usize {
        let Some(id) = self.topics.get(topic) else {
            return 0;
        };
        let holders = self.holders(token).to_vec();
        holders
            .iter()
            .filter(|key| self.leave_topic(**key, id))
            .count()
    }

    /// Ends a user's subscription and unsubscribes each of its connections; returns how
    /// many were subscribed.
    pub fn unsubscribe_user(&mut self, user: &str, topic: &str) -> usize {
        let Some(id) = self.topics.get(topic) else {
            return 0;
        };
        let connections = self.users.connections(user).to_vec();
        // Connections first: the user's subscription keeps the topic alive meanwhile.
        let left = connections
            .iter()
            .filter(|key| self.leave_topic(**key, id))
            .count();
        if self.users.unsubscribe(user, id) {
            self.topics.remove_user_subscriber(id);
        }
        left
    }

    /// One connection leaves a topic: `unsubscribed`, and `leave` when it was its user's
    /// last connection there. False when it was not in it.
    fn leave_topic(&mut self, key: Key, topic: TopicId) -> bool {
        let Some(seat) = self
            .clients
            .get_mut(key)
            .and_then(|client| client.seat.as_mut())
        else {
            return false;
        };
        let Some(position) = seat.topics.iter().position(|held| *held == topic) else {
            return false;
        };
        seat.topics.swap_remove(position);
        let Some(name) = self.topics.name(topic).cloned() else {
            return false;
        };
        let presence = self.topics.remove_member(topic, key, &seat.user);
        self.events.emit(&Event::Unsubscribed {
            token: seat.token,
            user: &seat.user,
            topic: &name,
        });
        if presence == Presence::User {
            self.events.emit(&Event::Leave {
                user: &seat.user,
                topic: &name,
            });
        }
        true
    }

    /// A page of a topic's users with their subscribed connections.
    pub fn subscribers(&self, topic: &str, page: &PageRequest<'_>, max_list_page: usize) -> Page {
        match self.topics.get(topic) {
            Some(id) => {
                let (items, more) =
                    self.topics
                        .page_users(id, page.cursor, page.limit_within(max_list_page));
                page_reply(items, more)
            }
            None => Page::default(),
        }
    }

    /// Users and connections subscribed to a topic.
    pub fn subscriber_count(&self, topic: &str) -> (usize, usize) {
        self.topics
            .get(topic)
            .map_or((0, 0), |id| self.topics.counts(id))
    }

    /// A page of the topics with their subscribed connections.
    pub fn topics(&self, page: &PageRequest<'_>, max_list_page: usize) -> Page {
        let (items, more) = self
            .topics
            .page(page.cursor, page.limit_within(max_list_page));
        page_reply(items, more)
    }

    // --- Fragments -----------------------------------------------------------------------

    /// Locks the open client holding `token` for `owner`'s fragmented send. One lock per
    /// owner: false while it still holds one, or when the token is not held by exactly
    /// one open client, or that client is locked by another.
    pub fn lock(&mut self, token: &Token, owner: Key) -> bool {
        if self.locks.is_held_by(owner) {
            return false;
        }
        match *self.holders(token) {
            [key] => self.locks.lock(key, owner),
            _ => false,
        }
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

    // --- Control connections: listeners, authorizers, locks ----------------------------

    /// `control` listens to events from now on (see `Events::listen`).
    pub fn listen(&mut self, control: Key, group: Option<&str>, kinds: EventKinds) {
        self.events.listen(control, group, kinds);
    }

    /// `control` answers authorization requests from now on.
    pub fn register_authorizer(&mut self, control: Key) {
        self.authorizers.register(control);
    }

    /// Hands the frames queued for control connections to `sink`; returns the listeners
    /// dropped for a full queue, which the server closes.
    pub fn drain_outbox(&mut self, sink: &mut dyn ControlSink) -> Vec<Key> {
        self.events.drain(sink)
    }

    /// A control connection is gone: a client it had locked is closed with 1011 (the
    /// half-sent message can never be finished), it stops listening, and the requests it
    /// had not answered as an authorizer go to another (or fall back).
    pub fn control_gone(
        &mut self,
        control: Key,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        if let Some(key) = self.locks.release_owner(control) {
            if let Some(client) = self.clients.get(key) {
                log::warn!(peer = client.conn.peer(), code = 1011; "frame source lost; closing client");
            }
            self.end_session(
                key,
                1011,
                "framesource lost",
                DisconnectCause::Error,
                settings,
                now,
            );
        }
        self.events.forget(control);
        for id in self.authorizers.forget(control) {
            match self.authorizers.pick() {
                Some(authorizer) => {
                    if let Some(waiting) = self.authorizers.take(id) {
                        self.events.send(authorizer, Rc::clone(&waiting.request));
                        self.authorizers.wait(id, waiting);
                        self.authorizers.reassign(id, authorizer);
                    }
                }
                None => {
                    if let Some(waiting) = self.authorizers.take(id) {
                        if let Some(client) = self.clients.get_mut(waiting.client) {
                            client.waiting = None;
                        }
                        self.fall_back(
                            waiting.client,
                            waiting.upgrade,
                            "the authorizer went away",
                            settings,
                            stats,
                            now,
                        );
                    }
                }
            }
        }
    }
}
