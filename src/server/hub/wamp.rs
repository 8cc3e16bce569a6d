//! The hub's side of the WAMP router: the router owns realms, sessions, subscriptions,
//! registrations and calls; the hub owns the clients. A WAMP client's messages go up to the
//! router through the session's upcall, and the hub carries out what the router answers:
//! frames to WAMP clients (through the same `offer` as every delivery, so one ordering and
//! one slow-consumer rule), `V` frames to control connections, closes, and publications for
//! the plain side and the event listeners. The topic history stays the hub's: each router
//! step gets a `Keeper`, through which the router records a backend-realm publication to a
//! topic with history, replays a `_wson_resume` and answers `get_events`.

use super::delivery::{Among, Message as PlainMessage, Outgoing};
use super::history::{Entry, History, Replay, Rules, WampSide};
use super::*;
use crate::config::Wamp;
use crate::control::event::EventKind;
use crate::control::wamp::encode_frame;
use crate::resume::{Position, Reload};
use crate::router::meta::KILLED;
use crate::router::options::PublishOptions;
use crate::router::{
    Action, CLOSE_PROTOCOL_ERROR, Chronicle, KeptEvent, Missed, Peer, Publishing, RouterConfig,
    Transport, plain,
};
use crate::server::conn::{App, Audience};
use crate::server::outbound::FrameBatch;
use crate::wamp::{Dict, Message, Serializer};
use crate::ws::frame::{FrameHeader, encode_header};
use std::time::SystemTime;

/// Appends one unmasked, final WebSocket frame carrying a WAMP message to `chunk`.
fn push_frame(chunk: &mut Vec<u8>, binary: bool, message: &[u8]) {
    chunk.extend_from_slice(&encode_header(&FrameHeader {
        fin: true,
        rsv1: false,
        opcode: MessageKind::from_binary(binary).opcode(),
        mask: None,
        payload_len: message.len() as u64,
    }));
    chunk.extend_from_slice(message);
}

/// `[history]` as the router's steps apply it: set at start and on reload
/// (`Hub::configure_history`), since many steps (a session leaving, a timer) come without
/// the settings at hand.
#[derive(Debug, Clone)]
pub struct Keeping {
    prefixes: Vec<String>,
    rules: Rules,
    /// `[wamp] max_depth`: a plain publication's JSON turned into arguments.
    max_depth: usize,
    /// With `[cluster]`, positions come from Redis alone (`cluster_history.rs`): a WAMP
    /// publication is not numbered here (it is delivered unpositioned), while resumes and
    /// `get_events` read this node's copy of the history.
    clustered: bool,
}

impl Default for Keeping {
    fn default() -> Keeping {
        Keeping {
            prefixes: Vec::new(),
            rules: Rules {
                size: 0,
                max_age: std::time::Duration::ZERO,
                max_bytes: 0,
            },
            max_depth: 0,
            clustered: false,
        }
    }
}

/// The hub's history as the router asks it (`Chronicle`), for one router step.
pub struct Keeper<'a> {
    history: &'a mut History,
    keeping: &'a Keeping,
}

impl<'a> Keeper<'a> {
    pub fn new(history: &'a mut History, keeping: &'a Keeping) -> Keeper<'a> {
        Keeper { history, keeping }
    }

    fn covers(&self, topic: &str) -> bool {
        History::covers(&self.keeping.prefixes, topic)
    }

    /// A kept entry as WAMP sees it.
    fn event(&self, epoch: &str, entry: &Entry, now: Instant, wall: SystemTime) -> KeptEvent {
        let side = entry.wamp.as_deref();
        let payload = match side.and_then(|side| side.payload.as_ref()) {
            Some(payload) => payload.clone(),
            None => {
                let (binary, bytes) = frame_message(&entry.frame);
                plain::from_plain(binary, bytes, self.keeping.max_depth)
            }
        };
        let published = wall
            .checked_sub(now.saturating_duration_since(entry.at()))
            .unwrap_or(wall);
        let time_ns = published
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
            });
        KeptEvent {
            position: Position {
                epoch: epoch.to_owned(),
                offset: entry.offset,
            },
            payload,
            publication: side.and_then(|side| side.publication),
            publisher: side.and_then(|side| side.publisher.clone()),
            audience: side.and_then(|side| side.audience.clone()),
            time_ns,
        }
    }
}

/// The opcode (binary or not) and payload of an unmasked frame the hub encoded.
fn frame_message(frame: &[u8]) -> (bool, &[u8]) {
    match crate::ws::frame::decode_header(frame, u64::MAX) {
        Ok(crate::decoded::Decoded::Done { item, len }) => (
            item.opcode == crate::ws::frame::OpCode::Binary,
            frame.get(len..).unwrap_or_default(),
        ),
        Ok(crate::decoded::Decoded::Incomplete) | Err(_) => (false, &[]),
    }
}

/// A kept WAMP publication on its way to the plain side (`Action::Plain` with a position).
struct Kept<'a> {
    topic: &'a str,
    position: &'a Position,
    payload: &'a crate::wamp::Payload,
    publisher_authid: &'a str,
}

/// Who may get a kept publication again: its PUBLISH audience, and not its publisher's
/// session when it excluded itself. `None`: everyone.
fn audience_kept(publishing: &Publishing<'_>) -> Option<Rc<crate::router::options::Audience>> {
    if publishing.audience.is_everyone() && publishing.exclude_session.is_none() {
        return None;
    }
    let mut audience = publishing.audience.clone();
    audience.exclude.extend(publishing.exclude_session);
    Some(Rc::new(audience))
}

impl Chronicle for Keeper<'_> {
    fn record(&mut self, publishing: &Publishing<'_>) -> Option<Position> {
        if self.keeping.clustered || !self.covers(publishing.topic) {
            return None;
        }
        // The plain side's frame is made now (not only when a plain client listens): the
        // history shares it with every plain client that resumes later.
        let (binary, bytes) = plain::to_plain(publishing.payload);
        let frame = shared_frame(true, MessageKind::from_binary(binary).opcode(), &bytes);
        let side = WampSide {
            payload: Some(publishing.payload.clone()),
            publication: Some(publishing.publication),
            publisher: publishing.publisher.cloned(),
            audience: audience_kept(publishing),
        };
        let (position, _) = self.history.record_with(
            publishing.topic,
            frame,
            Some(Rc::new(side)),
            self.keeping.rules,
            Instant::now(),
        );
        Some(position)
    }

    fn missed(&mut self, topic: &str, seen: &Position) -> Missed {
        if !self.covers(topic) {
            return Missed::Reload(Reload::Off, None);
        }
        let now = Instant::now();
        match self.history.replay(topic, seen, self.keeping.rules, now) {
            Replay::Missed(entries) => {
                let wall = SystemTime::now();
                Missed::Events(
                    entries
                        .iter()
                        .map(|entry| self.event(&seen.epoch, entry, now, wall))
                        .collect(),
                )
            }
            Replay::Reload(reload, position) => Missed::Reload(reload, position),
        }
    }

    fn recent(&mut self, topic: &str, limit: usize) -> Option<Vec<KeptEvent>> {
        if !self.covers(topic) {
            return None;
        }
        let now = Instant::now();
        let (epoch, entries) = self.history.recent(topic, limit, self.keeping.rules, now);
        let wall = SystemTime::now();
        Some(
            entries
                .iter()
                .map(|entry| self.event(&epoch, entry, now, wall))
                .collect(),
        )
    }
}

/// The router's settings from `[wamp]`.
pub fn router_config(wamp: &Wamp) -> RouterConfig {
    RouterConfig {
        realms: wamp.realms.clone(),
        authrole: wamp.authrole.clone(),
        strict_uris: wamp.strict_uris,
        max_sessions: wamp.max_sessions,
        max_subscriptions_per_session: wamp.max_subscriptions_per_session,
        max_registrations_per_session: wamp.max_registrations_per_session,
        max_pending_calls_per_session: wamp.max_pending_calls_per_session,
        max_pending_calls_per_callee: wamp.max_pending_calls_per_callee,
        max_depth: wamp.max_depth,
        max_retained: wamp.max_retained,
        max_retained_bytes: wamp.max_retained_bytes,
        call_timeout: wamp.call_timeout,
        backend_authrole: wamp.backend_authrole.clone(),
        dynamic_auth_timeout: wamp.dynamic_auth_timeout,
        authorization_cache_lifetime: wamp.authorization_cache_lifetime,
        max_cached_authorizations: wamp.max_cached_authorizations,
        max_waiting_authorizations: wamp.max_waiting_authorizations,
        realm_settings: wamp.realm.clone(),
    }
}

impl Hub {
    /// The protocol an upgrade gets: WAMP with the first subprotocol the client offers that
    /// wson speaks (RFC 6455 §4.2.2: the server selects one of the client's values), a v2
    /// serializer or v1's `wamp`, when a realm is configured; plain otherwise.
    pub(super) fn choose_app(&self, protocols: &[String]) -> App {
        if !self.router.enabled() {
            return App::Plain;
        }
        protocols
            .iter()
            .find_map(|name| {
                if name == crate::wamp::v1::SUBPROTOCOL {
                    Some(App::WampV1)
                } else {
                    Serializer::from_subprotocol(name).map(App::Wamp)
                }
            })
            .unwrap_or(App::Plain)
    }

    /// A WAMP client was admitted: its session begins with its HELLO. `cookie_user`: the
    /// user of its cookies (or the connect authorizer), `None` when admitted without them.
    pub(super) fn open_wamp(
        &mut self,
        key: Key,
        serializer: Serializer,
        cookie_user: Option<&str>,
        now: Instant,
    ) {
        self.router.open(
            key,
            Transport {
                serializer,
                cookie_user: cookie_user.map(str::to_owned),
            },
            now,
        );
    }

    /// A message from the backend's WAMP session on control connection `control`.
    pub fn wamp_from_backend(&mut self, control: Key, message: Message, now: Instant) {
        let mut keeper = Keeper::new(&mut self.history, &self.keeping);
        self.router
            .from_backend(control, message, now, &mut keeper, &mut self.actions);
    }

    /// A control publish (`x`/`X`/`Y`) reaches the WAMP subscribers of the backend realm
    /// too; `position`: the one the history gave it (`publish`), its EVENTs carry it.
    #[allow(clippy::too_many_arguments)]
    pub fn wamp_publish_from_plain(
        &mut self,
        topic: &str,
        binary: bool,
        message: &[u8],
        options: &Dict,
        position: Option<&Position>,
        settings: &Settings,
        now: Instant,
    ) {
        // An audience among the options: a WAMP session resuming later gets the publication
        // only if it would have got it live.
        if let Some(position) = position
            && !options.is_empty()
            && let Ok(parsed) = PublishOptions::parse(options)
            && !parsed.audience.is_everyone()
        {
            let side = WampSide {
                audience: Some(Rc::new(parsed.audience)),
                ..WampSide::default()
            };
            self.history.attach(topic, position, Rc::new(side));
        }
        // Most publications have no WAMP subscriber: they pay one lookup, no conversion.
        // (A retained one is kept for subscribers to come, so it always goes on.)
        if !self.router.backend_realm_listens(topic) && !retains(options) {
            return;
        }
        let payload = plain::from_plain(binary, message, settings.wamp.max_depth);
        self.router
            .publish_from_plain(topic, options, payload, position, now, &mut self.actions);
    }

    /// `[history]` as the router's steps apply it, from the settings now in force.
    pub fn configure_history(&mut self, settings: &Settings) {
        self.keeping = Keeping {
            prefixes: settings.history.prefixes.clone(),
            rules: super::delivery::history_rules(settings),
            max_depth: settings.wamp.max_depth,
            clustered: settings.cluster.redis.is_some(),
        };
    }

    /// `O`: drops the authorizer answers cached by every WAMP session, or by the sessions of
    /// `authid`; returns how many answers went. Nothing is sent: the next action asks again.
    pub fn wamp_flush_authorizations(&mut self, authid: Option<&str>) -> usize {
        self.router.flush_authorizations(authid)
    }

    /// Applies a reloaded `[wamp]`.
    pub fn configure_router(&mut self, wamp: &Wamp) {
        self.router.configure(router_config(wamp));
    }

    /// When the router next has something to do (a call's timeout).
    pub fn router_deadline(&self) -> Option<Instant> {
        self.router.next_deadline()
    }

    /// Runs the router's due timers; their actions are carried out by `settle_router`.
    pub fn router_tick(&mut self, now: Instant) {
        let mut keeper = Keeper::new(&mut self.history, &self.keeping);
        self.router.tick(now, &mut keeper, &mut self.actions);
    }

    /// Carries out what the router asked, until it asks nothing more (closing a session can
    /// make it ask more). Returns true when there was anything to do.
    pub fn settle_router(&mut self, settings: &Settings, stats: &mut Stats, now: Instant) -> bool {
        if self.actions.is_empty() {
            return false;
        }
        let mut actions = std::mem::take(&mut self.actions);
        let mut chunk = Vec::new();
        let mut aside = Vec::new();
        while !actions.is_empty() {
            let mut pending = actions.drain(..).peekable();
            while let Some(action) = pending.next() {
                let Action::Send { to, binary, bytes } = action else {
                    self.carry_out(action, settings, stats, now);
                    continue;
                };
                // A publisher's burst gives one subscription's recipients EVENT after EVENT:
                // they go out as one shared chunk, as consecutive broadcasts do, so each
                // recipient queues (and writes) one piece instead of one per message.
                // What goes to plain clients and control connections between them (each
                // publication's plain side) concerns other connections: it waits for the chunk.
                // The chunk is built once a second EVENT joins: a lone message (a reply, an
                // invocation) goes out as its own frame, without the extra copy.
                let mut messages = 1;
                loop {
                    let joined = if messages == 1 {
                        bytes.len()
                    } else {
                        chunk.len()
                    };
                    match pending.peek() {
                        Some(Action::Send {
                            to: next_to,
                            binary: next_binary,
                            bytes: next,
                        }) if *next_binary == binary
                            && *next_to == to
                            && joined.saturating_add(next.len()) < FrameBatch::MAX_BYTES =>
                        {
                            if messages == 1 {
                                chunk.clear();
                                push_frame(&mut chunk, binary, &bytes);
                            }
                            push_frame(&mut chunk, binary, next);
                            messages += 1;
                            pending.next();
                        }
                        Some(
                            Action::Plain { .. }
                            | Action::Control { .. }
                            | Action::V1 { .. }
                            | Action::Node { .. }
                            | Action::NodeRegistration { .. }
                            | Action::AwaitNodes { .. },
                        ) => {
                            if let Some(other) = pending.next() {
                                aside.push(other);
                            }
                        }
                        Some(
                            Action::Send { .. } | Action::Close { .. } | Action::LoginFailed { .. },
                        )
                        | None => break,
                    }
                }
                if messages == 1 {
                    self.carry_out(Action::Send { to, binary, bytes }, settings, stats, now);
                } else {
                    self.send_wamp(&to, &Rc::from(chunk.as_slice()), messages, settings, stats);
                }
                for other in aside.drain(..) {
                    self.carry_out(other, settings, stats, now);
                }
            }
            drop(pending);
            // What carrying out made the router ask (a slow consumer's session leaving).
            std::mem::swap(&mut actions, &mut self.actions);
        }
        // The emptied buffer goes back, so its allocation is reused.
        self.actions = actions;
        true
    }

    /// Queues `messages` whole frames, shared as one chunk, to WAMP clients `to`.
    fn send_wamp(
        &mut self,
        to: &[Key],
        frames: &Rc<[u8]>,
        messages: usize,
        settings: &Settings,
        stats: &mut Stats,
    ) {
        let mut recipients = self.recipients();
        let (_, overflowed) = recipients.deliver(
            to,
            Outgoing::Frames { frames, messages },
            Audience::Wamp,
            settings,
            stats,
        );
        self.drop_slow_consumers(overflowed, stats);
    }

    /// Carries out one action. (`settle_router` joins consecutive EVENTs for the same
    /// recipients into chunks; a `Send` here goes alone.)
    fn carry_out(&mut self, action: Action, settings: &Settings, stats: &mut Stats, now: Instant) {
        match action {
            Action::Send { to, binary, bytes } => {
                let frame = shared_frame(true, MessageKind::from_binary(binary).opcode(), &bytes);
                self.send_wamp(&to, &frame, 1, settings, stats);
            }
            Action::Control { to, message } => {
                let mut frame = Vec::new();
                encode_frame(&message, &mut frame);
                self.events.send(to, Rc::from(frame));
            }
            // The router translates these before returning (`Router::translate_v1`).
            Action::V1 { to, .. } => {
                log::debug!(conn = to.to_usize(); "untranslated WAMP v1 action dropped");
            }
            Action::LoginFailed { to } => {
                if let Some(charged) = self.clients.get(to).and_then(|client| client.charged) {
                    self.access.login_failed(charged, now);
                }
            }
            Action::Close { to, code, reason } => {
                // The `disconnected` event's why: who ended the session.
                let cause = match (code, reason.as_str()) {
                    (CLOSE_PROTOCOL_ERROR, _) => DisconnectCause::Protocol,
                    (_, KILLED) => DisconnectCause::Kicked,
                    _ => DisconnectCause::Client,
                };
                self.end_session(to, code, &reason, cause, settings, now);
            }
            Action::Node { to, realm, message } => {
                self.cluster_wamp_send(to, &realm, &message);
            }
            Action::NodeRegistration {
                realm,
                registration,
            } => self.cluster_announce(&realm, &registration),
            Action::AwaitNodes { ticket } => {
                if !self.cluster_barrier(ticket, now) {
                    self.router.nodes_settled(ticket, &mut self.actions);
                }
            }
            Action::Plain {
                topic,
                payload,
                publisher_authid,
                tell_listeners,
                position,
            } => {
                if let Some(position) = &position {
                    self.history.mark_delivered(&topic, position);
                }
                let members = self
                    .topics
                    .get(&topic)
                    .is_some_and(|id| !self.topics.members(id).is_empty());
                let heard = tell_listeners && self.events.wants(EventKind::Publish);
                if !members && !heard {
                    return;
                }
                if let Some(position) = position {
                    let kept = Kept {
                        topic: &topic,
                        position: &position,
                        payload: &payload,
                        publisher_authid: &publisher_authid,
                    };
                    self.plain_side_kept(&kept, members, heard, settings, stats);
                    return;
                }
                let (binary, bytes) = plain::to_plain(&payload);
                if members && self.cluster_keeps_history(&topic, settings) {
                    // A WAMP publication in a cluster has no position (Redis numbers only
                    // what goes through it): positioned clients are told so.
                    let frame =
                        shared_frame(true, MessageKind::from_binary(binary).opcode(), &bytes);
                    self.deliver_unpositioned(&topic, &frame, 1, settings, stats);
                } else if members && let Some(id) = self.topics.get(&topic) {
                    let message = PlainMessage {
                        binary,
                        payload: &bytes,
                    };
                    self.deliver_to(
                        Among::Topic(id),
                        Outgoing::Message(message),
                        settings,
                        stats,
                    );
                }
                if heard {
                    self.events.emit(&Event::Publish {
                        topic: &topic,
                        user: &publisher_authid,
                        binary,
                        payload: &bytes,
                    });
                }
            }
        }
    }

    /// The plain side of a kept WAMP publication: its frame as the history shares it (made
    /// again when the history already let it go) to the topic's members, after its position
    /// notice for positioned ones, as `publish_kept` delivers; and the `publish` event.
    fn plain_side_kept(
        &mut self,
        kept: &Kept<'_>,
        members: bool,
        heard: bool,
        settings: &Settings,
        stats: &mut Stats,
    ) {
        let (notice, frame) = match self.history.entry(kept.topic, kept.position) {
            Some(entry) => (Rc::clone(&entry.notice), Rc::clone(&entry.frame)),
            None => {
                let (binary, bytes) = plain::to_plain(kept.payload);
                let notice = crate::resume::position_notice(kept.topic, kept.position);
                (
                    shared_frame(true, crate::ws::frame::OpCode::Text, notice.as_bytes()),
                    shared_frame(true, MessageKind::from_binary(binary).opcode(), &bytes),
                )
            }
        };
        if members {
            let notice_and_frame = [(notice, Rc::clone(&frame))];
            self.deliver_kept(kept.topic, &frame, 1, &notice_and_frame, settings, stats);
        }
        if heard {
            let (binary, payload) = frame_message(&frame);
            self.events.emit(&Event::Publish {
                topic: kept.topic,
                user: kept.publisher_authid,
                binary,
                payload,
            });
        }
    }

    /// A WAMP client or control connection is gone: its session leaves the router.
    pub(super) fn wamp_gone(&mut self, peer: Peer) {
        let mut keeper = Keeper::new(&mut self.history, &self.keeping);
        self.router
            .gone(peer, Instant::now(), &mut keeper, &mut self.actions);
    }
}

/// True when publish `options` ask the broker to retain the event (checked already).
pub(super) fn retains(options: &Dict) -> bool {
    options
        .0
        .iter()
        .any(|(name, value)| name == "retain" && *value == crate::wamp::Value::Bool(true))
}
