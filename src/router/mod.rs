//! The WAMP v2 router: realms, sessions, the broker (subscriptions, retained events), the
//! dealer (registrations, pending calls) and the meta API, as a pure state machine. It never
//! touches a socket or a clock: the hub hands it what a peer sent and the time, and carries
//! out the `Action`s it returns (queue these bytes to those clients, close that one, hand this
//! message to that control connection, publish this to the plain side).
//!
//! A session talks through a `Peer`: a WebSocket client (its messages serialized with the
//! subprotocol it chose) or a control connection (the backend, whose messages the commands
//! layer turns into control frames). Both are sessions of a realm alike: a PHP script can be a
//! callee of a browser's call.
//!
//! The first configured realm is the backend realm: the control socket publishes, registers
//! and calls there, and its topics are the plain side's topics (one namespace).

pub mod plain;

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::server::slab::Key;
use crate::wamp::{Dict, Message, Payload, Serializer};

/// Who a WAMP session talks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// A WebSocket client of the hub.
    Client(Key),
    /// A control connection (the backend).
    Control(Key),
}

/// The router's settings, from `[wamp]` (reloadable).
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    /// Realm names; the first is the backend realm. Empty: WAMP is off.
    pub realms: Vec<String>,
    /// The authrole every cookie-authenticated session gets.
    pub authrole: String,
    /// URIs by the strict rule (`[0-9a-z_]` components) instead of the loose one.
    pub strict_uris: bool,
    pub max_sessions: usize,
    pub max_subscriptions_per_session: usize,
    pub max_registrations_per_session: usize,
    /// Calls a session may have waiting for a result, as a caller.
    pub max_pending_calls_per_session: usize,
    /// Invocations a callee may have unanswered.
    pub max_pending_calls_per_callee: usize,
    /// How deeply lists and dicts may nest in a message.
    pub max_depth: usize,
    /// Topics with a retained event, per realm.
    pub max_retained: usize,
    /// The longest a call may wait for its result when CALL has no `timeout`; `None`: forever.
    pub call_timeout: Option<Duration>,
}

/// What the hub knows of a WebSocket client when it opens a WAMP session for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    pub serializer: Serializer,
    /// The `user` cookie: the session's authid.
    pub authid: String,
}

/// What the hub does for the router.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Queue `bytes` (one serialized WAMP message) to each of `to` (each once), in a text
    /// frame for JSON and a binary one otherwise. The bytes are shared by every recipient.
    Send {
        to: Vec<Key>,
        binary: bool,
        bytes: Rc<[u8]>,
    },
    /// Hand `message` to the control connection `to` (a backend session's invocation, result,
    /// error, event...).
    Control { to: Key, message: Message },
    /// Close the client's WebSocket once what is queued is written (after ABORT, GOODBYE, kill).
    Close { to: Key, code: u16, reason: String },
    /// A WAMP publication in the backend realm, for the plain side: the hub queues it (as
    /// `plain::to_plain` makes it a WebSocket message) to the plain connections subscribed to
    /// `topic` and tells event listeners, naming `publisher_authid`. Converted only when
    /// someone on the plain side wants it.
    Plain {
        topic: String,
        payload: Payload,
        publisher_authid: String,
    },
}

/// Figures for the status reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterFigures {
    pub sessions: usize,
    pub subscriptions: usize,
    pub registrations: usize,
    pub pending_calls: usize,
    pub retained_events: usize,
}

pub struct Router {
    config: RouterConfig,
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        Router { config }
    }

    /// Applies a reloaded config; existing sessions keep their realm even if it was removed.
    pub fn configure(&mut self, config: RouterConfig) {
        self.config = config;
    }

    /// True when WAMP is on (a realm is configured).
    pub fn enabled(&self) -> bool {
        !self.config.realms.is_empty()
    }

    /// A WebSocket client chose a WAMP subprotocol; its session begins when its HELLO arrives.
    pub fn open(&mut self, key: Key, transport: Transport, now: Instant) {
        let _ = (key, transport, now);
    }

    /// One WebSocket message from `key`, serialized with the client's subprotocol.
    pub fn receive(&mut self, key: Key, bytes: &[u8], now: Instant, out: &mut Vec<Action>) {
        let _ = (key, bytes, now, out);
    }

    /// A WAMP message from the backend over control connection `key` (REGISTER, UNREGISTER,
    /// CALL, CANCEL, YIELD, ERROR for an invocation, PUBLISH, SUBSCRIBE, UNSUBSCRIBE); the
    /// backend session in the backend realm is created on first use. Replies come back as
    /// `Action::Control`.
    pub fn from_backend(
        &mut self,
        key: Key,
        message: Message,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let _ = (key, message, now, out);
    }

    /// The plain side published `payload` to `topic` (control `x`/`X`): WAMP subscribers of
    /// the backend realm get an EVENT. `options` are PUBLISH options (exclude, eligible,
    /// exclude_authid, eligible_authid, retain...). Returns the publication id.
    pub fn publish_from_plain(
        &mut self,
        topic: &str,
        options: &Dict,
        payload: Payload,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> u64 {
        let _ = (topic, options, payload, now, out);
        0
    }

    /// The peer's transport is gone (client closed, control connection closed): its session
    /// leaves (on_leave meta event), its subscriptions and registrations go, its pending calls
    /// fail or are interrupted.
    pub fn gone(&mut self, peer: Peer, now: Instant, out: &mut Vec<Action>) {
        let _ = (peer, now, out);
    }

    /// Runs what is due by `now` (call timeouts).
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let _ = (now, out);
    }

    /// The earliest time `tick` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        None
    }

    pub fn figures(&self) -> RouterFigures {
        RouterFigures::default()
    }
}
