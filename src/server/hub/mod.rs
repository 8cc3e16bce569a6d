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
//!
//! Here: the hub's state and a client's life (drive, settle, close, timers, shutdown) and
//! control connections coming and going. `impl Hub` goes on in `admission.rs` (accepting,
//! admitting, the authorizer's decisions), `delivery.rs` (the one path to clients, and
//! fragments) and `membership.rs` (users and topics as the backend asks); the indexes
//! themselves are `users.rs`, `topics.rs`, `events.rs`, `authorizer.rs` and `locks.rs`.

mod admission;
mod authorizer;
mod cluster;
mod cluster_admission;
mod cluster_count;
mod cluster_history;
mod cluster_wamp;
mod delivery;
mod events;
mod history;
mod key_list;
mod locks;
mod membership;
mod names;
mod staging;
mod topics;
mod users;
mod wamp;

pub use cluster::{Asked, ClusterFigures};

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use crate::access::{
    AddressKey, AddressTable, Admit, PeerAddress, forwarded, in_ranges, is_trusted,
};
use crate::auth;
use crate::config::{AuthMode, AuthorizerFallback, ClientMessages, ForwardedHeader, TokenReuse};
use crate::control::authorizer::{AuthRequest, Decision};
use crate::control::command::{Page, PageRequest, Refusal};
use crate::control::event::{DisconnectCause, Event, EventKinds};
use crate::server::conn::{
    ClientCtx, Conn, Delivered, Delivery, Exit, Gone, Screen, Upcalls, Upgrade,
};
use crate::server::outbound::shared_frame;
use crate::server::settings::Settings;
use crate::server::slab::{Key, Slab};
use crate::server::socket;
use crate::server::stats::Stats;
use crate::server::stream::Stream;
use crate::token::Token;
use crate::ws::deflate::{self, Deflater};
use crate::ws::handshake::{self, Status};
use crate::ws::message::MessageKind;

use authorizer::{Authorizers, Waiting};
pub use delivery::Message;
use events::Events;
pub use events::{ControlSink, Offer};
use key_list::KeyList;
use locks::{Encoded, Locks};
pub use locks::{Fragment, FragmentResult};
use names::{TopicId, UserName};
use topics::{Presence, Topics};
use users::Users;
pub use wamp::router_config;

use crate::router::{Action, Peer, Router, RouterConfig, RouterFigures};

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
    /// The WAMP router: realms, sessions, subscriptions, registrations, calls.
    router: Router,
    /// What the router asked the hub to do, carried out by `settle_router`.
    actions: Vec<Action>,
    /// Per-address connections, handshakes and failed logins (`[access]`).
    access: AddressTable,
    /// The link to the other nodes, with `[cluster] redis`.
    cluster: Option<cluster::ClusterSide>,
    /// The history of topics (`[history]`): plain and WAMP publications alike.
    history: history::History,
    /// Publications of the current control connection's turn, per topic (`staging.rs`).
    staging: staging::Staging,
    /// `[history]` as the router's steps apply it (`configure_history`).
    keeping: wamp::Keeping,
    /// permessage-deflate's compressor: one zlib state per window size, for everything
    /// sent compressed (each message on its own, `server_no_context_takeover`).
    deflater: Deflater,
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
    /// The staged chunk holding its pending publications, if still undelivered
    /// (`staging.rs`).
    staged: u32,
    /// The address this connection is counted against, given back when it closes.
    charged: Option<AddressKey>,
    /// True when its peer is a trusted proxy: the request head names the address to check.
    behind_proxy: bool,
}

/// What an open connection holds in the shared indexes.
struct Seat {
    token: Token,
    user: UserName,
    topics: Vec<TopicId>,
    /// A plain client that sent `resume`: it gets a position notice before each
    /// publication of a topic with history, and the items of its `resume` wait here until
    /// it joins their topic (at the upgrade, or a later `j`). `None`: no notices.
    resume: Option<Vec<crate::resume::Resume>>,
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
    /// Addresses the per-address limits track now.
    pub tracked_addresses: usize,
    /// Publications and bytes the topic histories hold, and their topics.
    pub history_publications: usize,
    pub history_bytes: usize,
    pub history_topics: usize,
    pub wamp: RouterFigures,
}

/// What a client's session hands up while the hub drives it.
struct SessionUpcalls<'a> {
    access: &'a mut AddressTable,
    charged: &'a mut Option<AddressKey>,
    behind_proxy: bool,
    peer: String,
    locks: &'a mut Locks,
    events: &'a mut Events,
    router: &'a mut Router,
    actions: &'a mut Vec<Action>,
    history: &'a mut history::History,
    keeping: &'a wamp::Keeping,
    seat: Option<&'a Seat>,
    me: Key,
    settings: &'a Settings,
    now: Instant,
    deflater: &'a mut Deflater,
}

impl Upcalls for SessionUpcalls<'_> {
    fn message(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        queued: usize,
        deflate_window: Option<u8>,
    ) -> Delivered {
        match self.settings.client_messages {
            ClientMessages::Ignore => Delivered::Nothing,
            ClientMessages::Echo => {
                // A reply to one client is compressed for it alone.
                let compression = &self.settings.compression;
                let deflated = deflate_window
                    .filter(|_| compression.enabled)
                    .and_then(|bits| {
                        let settings = deflate::Settings {
                            level: compression.level,
                            threshold: compression.threshold,
                        };
                        self.deflater.frame(kind.opcode(), payload, bits, settings)
                    });
                let frame = match deflated {
                    Some(frame) => Rc::from(frame),
                    None => shared_frame(true, kind.opcode(), payload),
                };
                match self.locks.deferred_for(self.me) {
                    None => Delivered::ToSelf(frame),
                    Some(deferred) => {
                        match locks::hold(
                            deferred,
                            queued,
                            frame,
                            self.settings.max_outbound_buffer,
                        ) {
                            Ok(()) => Delivered::Deferred,
                            Err(queued) => Delivered::Overflow { queued },
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

    fn wamp(&mut self, payload: &[u8]) {
        let mut keeper = wamp::Keeper::new(self.history, self.keeping);
        self.router
            .receive(self.me, payload, self.now, &mut keeper, self.actions);
    }

    fn screen(&mut self, request: &handshake::Request) -> Screen {
        if !self.behind_proxy {
            return Screen::Pass;
        }
        let access = &self.settings.access;
        let hops = match access.forwarded_header {
            ForwardedHeader::XForwardedFor => forwarded::x_forwarded_for(&request.x_forwarded_for),
            ForwardedHeader::Forwarded => forwarded::forwarded(&request.forwarded),
        };
        let proxies = &access.trusted_proxies;
        let trusted = |address| is_trusted(proxies, PeerAddress::Ip(address));
        // No usable address: the proxy's own connection, which passed at accept.
        let Some(address) = forwarded::client_address(&hops, trusted) else {
            return Screen::Pass;
        };
        if in_ranges(&access.blocked, address) {
            log::warn!(
                peer = self.peer.as_str(),
                forwarded = address.to_string(),
                status = 403,
                reason = "blocked address";
                "handshake refused"
            );
            return Screen::Blocked;
        }
        match self
            .access
            .admit(address, &self.settings.access_limits(), self.now)
        {
            Admit::Charged(key) => {
                *self.charged = Some(key);
                Screen::Pass
            }
            Admit::Untracked => Screen::Pass,
            Admit::Refused(limited) => {
                let retry_after = limited.retry_after(self.settings.busy_retry_after());
                log::warn!(
                    peer = self.peer.as_str(),
                    forwarded = address.to_string(),
                    status = 429,
                    retry_after,
                    reason = limited.reason();
                    "handshake refused"
                );
                Screen::Limited {
                    retry_after,
                    reason: limited.reason(),
                }
            }
        }
    }

    fn login_failed(&mut self) {
        if let Some(key) = *self.charged {
            self.access.login_failed(key, self.now);
        }
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
    pub fn new(listener_names: Vec<String>, router: RouterConfig) -> Hub {
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
            router: Router::new(router),
            actions: Vec::new(),
            access: AddressTable::default(),
            cluster: None,
            deflater: Deflater::default(),
            staging: staging::Staging::default(),
            history: history::History::new(history::History::random_base()),
            keeping: wamp::Keeping::default(),
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

    /// This node's connections and the name (`domains` entry, else the endpoint) of its
    /// listener with the fewest live connections, the first on a tie as ws(s)on did: `m`'s
    /// answer on one node.
    pub fn freest_listener(&self, settings: &Settings) -> (u64, String) {
        let freest = self
            .listener_loads()
            .enumerate()
            .min_by_key(|(index, (_, load))| (*load, *index));
        let domain = match freest {
            Some((index, (name, _))) => settings
                .domains
                .get(index)
                .cloned()
                .unwrap_or_else(|| name.to_owned()),
            None => String::new(),
        };
        let connections = self.listener_loads().map(|(_, load)| load as u64).sum();
        (connections, domain)
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
            tracked_addresses: self.access.len(),
            history_publications: self.history.publications(),
            history_bytes: self.history.bytes(),
            history_topics: self.history.topics(),
            wamp: self.router.figures(),
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

    // --- The life of a client ----------------------------------------------------------

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

    /// Runs `work` on a client's connection, its session's upcalls wired to the hub;
    /// `None` when the client is gone.
    fn with_session<R>(
        &mut self,
        key: Key,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
        work: impl FnOnce(&mut Conn, &mut ClientCtx<'_>) -> R,
    ) -> Option<R> {
        let Hub {
            clients,
            locks,
            events,
            router,
            actions,
            access,
            deflater,
            history,
            keeping,
            ..
        } = self;
        let Client {
            conn,
            seat,
            charged,
            behind_proxy,
            ..
        } = clients.get_mut(key)?;
        // Only a handshake from a proxy needs the peer's name (for its log line).
        let peer = if *behind_proxy && !conn.is_open() {
            conn.peer()
        } else {
            String::new()
        };
        let mut upcalls = SessionUpcalls {
            access,
            charged,
            behind_proxy: *behind_proxy,
            peer,
            locks,
            events,
            router,
            actions,
            history,
            keeping,
            seat: seat.as_ref(),
            me: key,
            settings,
            now,
            deflater,
        };
        let mut ctx = ClientCtx {
            settings,
            stats,
            now,
            upcalls: &mut upcalls,
        };
        Some(work(conn, &mut ctx))
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
            let driven = self.with_session(key, settings, stats, now, |conn, ctx| {
                conn.drive(scratch, ctx)
            });
            let exit = match driven {
                None => return Step::Idle,
                Some(socket::Drive::Idle) => {
                    self.settle(key, settings);
                    return Step::Idle;
                }
                Some(socket::Drive::OverBudget) => {
                    self.settle(key, settings);
                    return Step::OverBudget;
                }
                Some(socket::Drive::Exit(exit)) => exit,
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
        self.wamp_gone(Peer::Client(key));
        if let Some(holders) = self.tokens.get_mut(&seat.token) {
            holders.remove(key);
            if holders.is_empty() {
                self.tokens.remove(&seat.token);
                self.cluster_release_claim(&seat.token);
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
        // In slot order, which is about the order the kernel allocated the sockets in: the
        // members of a topic, touched topic by topic, are otherwise written in a stride
        // across every client, and the kernel's send path then misses its caches (100
        // topics pipelined: 0.114-0.120 -> 0.087-0.093 us per delivery). A broadcast's list
        // is in slot order already.
        list.sort_unstable_by_key(|key| key.to_usize());
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
        self.access.tick(now);
    }

    /// Sends Close 1001 to every client (the server is stopping), after a GOODBYE to each
    /// WAMP session; those not yet open are dropped.
    pub fn shut_down(&mut self, settings: &Settings, stats: &mut Stats, now: Instant) {
        self.router.shut_down(&mut self.actions);
        self.settle_router(settings, stats, now);
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
        if let Some(address) = client.charged.take() {
            self.access.release(address);
        }
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
        self.wamp_gone(Peer::Control(control));
        for id in self.authorizers.forget(control) {
            match self.authorizers.pick() {
                Some(authorizer) => {
                    if let Some(request) = self.authorizers.request(id) {
                        self.events.send(authorizer, request);
                        self.authorizers.reassign(id, authorizer);
                    }
                }
                None => self.stop_waiting(id, "the authorizer went away", settings, stats, now),
            }
        }
    }
}
