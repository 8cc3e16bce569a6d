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
//! and calls there, and its topics are the plain side's topics (one namespace), with one
//! topic history (`[history]`), which the hub owns and the router asks through `Chronicle`
//! in the steps that may publish, resume or list events.

pub mod auth;
pub mod broker;
pub mod dealer;
pub mod dynamic;
pub mod error;
pub mod ids;
pub mod meta;
pub mod nodes;
pub mod options;
pub mod plain;
pub mod realm;
pub mod session;
pub mod uri;
pub mod v1;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::wamp_realm::{self, AuthMethod, Hidden, Salted, WampRealms};
use crate::resume::{Position, Reload};
use crate::router::auth::{Login, Start};
use crate::router::broker::Disclosure;
use crate::router::error::{PROTOCOL_VIOLATION, Violation};
use crate::router::ids::{GlobalIds, SequentialIds};
use crate::router::nodes::{NodeRegistration, Nodes};
use crate::router::options::{Audience, PeerFeatures, PublishOptions};
use crate::router::realm::{Ctx, Publisher, Realm};
use crate::router::session::{Asking, Attempt, BACKEND_AUTHID, Link, NodeRef, Phase, Session};
use crate::server::slab::Key;
use crate::wamp::{Dict, Message, Payload, Serializer, Value};

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
    /// Bytes the retained events of a realm may hold (by `Payload::heap_size`).
    pub max_retained_bytes: usize,
    /// The longest a call may wait for its result when CALL has no `timeout`; `None`: forever.
    pub call_timeout: Option<Duration>,
    /// The authrole of backend sessions; `BACKEND_AUTHROLE` ("trusted"): never checked.
    pub backend_authrole: String,
    /// How long a login or an action waits for an authenticator's or authorizer's answer.
    pub dynamic_auth_timeout: Duration,
    /// How long a session keeps an authorizer's answer that said `cache`; `None`: not kept.
    pub authorization_cache_lifetime: Option<Duration>,
    /// Most cached authorizer answers per session.
    pub max_cached_authorizations: usize,
    /// Most actions of one session held while an authorizer decides.
    pub max_waiting_authorizations: usize,
    /// `[wamp.realm.NAME]`: login methods, principals and roles per realm.
    pub realm_settings: WampRealms,
}

/// What the hub knows of a WebSocket client when it opens a WAMP session for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    pub serializer: Serializer,
    /// The user the upgrade was admitted as (cookies or the connect authorizer): the authid
    /// of a `cookie` login. `None` for an upgrade admitted without cookies for a WAMP login.
    pub cookie_user: Option<String>,
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
    /// A message for WAMP v1 client `to`, translated into v1 by the router before its public
    /// methods return: the hub never sees one.
    V1 { to: Key, message: Message },
    /// The client failed a login (a wrong ticket or signature, an unknown authid): the hub
    /// counts it against the client's address (`[access] failed_logins_per_minute`).
    LoginFailed { to: Key },
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
        /// Tell event listeners: false for another node's publication (its node told them).
        tell_listeners: bool,
        /// Its position in `topic`'s history (`Chronicle::record`), when the topic keeps one:
        /// the hub delivers it to positioned plain clients after its position notice.
        position: Option<Position>,
    },
    /// A message for the router of node `to` (`None`: every other node) in realm `realm`:
    /// a publication for its subscribers, or a call, cancel, result or error between a
    /// session here and a session there (`nodes`). Only with other nodes.
    Node {
        to: Option<NodeRef>,
        realm: String,
        message: Message,
    },
    /// This node's callees of a registration came or went (`nodes`): the other nodes route
    /// calls to it here while it is present. Only with other nodes.
    NodeRegistration {
        realm: String,
        registration: NodeRegistration,
    },
    /// A reply waits (`nodes`): once every other node has answered a question asked now
    /// (what each said before has then arrived), or none can, the hub calls `nodes_settled`
    /// with `ticket`.
    AwaitNodes { ticket: u64 },
}

/// A publication of the backend realm as the history (`[history]`, owned by the hub) keeps
/// it: what an EVENT replayed to a resuming session, or `wamp.subscription.get_events`, says.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptEvent {
    pub position: Position,
    pub payload: Payload,
    /// The WAMP publication id; `None` for a plain publication no WAMP session heard.
    pub publication: Option<u64>,
    /// The publisher, when its EVENTs disclosed it.
    pub publisher: Option<Disclosure>,
    /// Who may receive it (PUBLISH's exclude/eligible options); `None`: everyone.
    pub audience: Option<Rc<Audience>>,
    /// Wall clock of the publication, nanoseconds since the Unix epoch (Crossbar's `time_ns`).
    pub time_ns: u64,
}

/// A publication the router asks the history to keep.
pub struct Publishing<'a> {
    pub topic: &'a str,
    pub payload: &'a Payload,
    pub publication: u64,
    pub publisher: Option<&'a Disclosure>,
    pub audience: &'a Audience,
    /// The publisher's own session when it published with `exclude_me`.
    pub exclude_session: Option<u64>,
}

/// What a session resuming from a position gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Missed {
    /// The publications after the position, oldest first (perhaps none).
    Events(Vec<KeptEvent>),
    /// Not from the history (the same reasons as a plain client's `reload` notice); the
    /// topic's last position when it has a history.
    Reload(Reload, Option<Position>),
}

/// What the router asks of the topic history, which the hub owns: the router stays pure,
/// and every publication of the backend realm to a topic with history gets its one position
/// from the same place as the plain side's.
pub trait Chronicle {
    /// Keeps a publication of the backend realm; its position when `topic` keeps a history.
    fn record(&mut self, publishing: &Publishing<'_>) -> Option<Position>;
    /// The publications of `topic` after `seen`, or why the session must reload.
    fn missed(&mut self, topic: &str, seen: &Position) -> Missed;
    /// The last `limit` publications of `topic`, newest first; `None` when it keeps no history.
    fn recent(&mut self, topic: &str, limit: usize) -> Option<Vec<KeptEvent>>;
}

/// No history: steps that cannot publish (logins, joins) and tests.
pub struct NoHistory;

impl Chronicle for NoHistory {
    fn record(&mut self, _: &Publishing<'_>) -> Option<Position> {
        None
    }

    fn missed(&mut self, _: &str, _: &Position) -> Missed {
        Missed::Reload(Reload::Off, None)
    }

    fn recent(&mut self, _: &str, _: usize) -> Option<Vec<KeptEvent>> {
        None
    }
}

/// Figures for the status reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterFigures {
    pub sessions: usize,
    pub subscriptions: usize,
    pub registrations: usize,
    pub pending_calls: usize,
    pub retained_events: usize,
    pub retained_bytes: usize,
    /// Authorizer calls in flight.
    pub authorizations_waiting: usize,
    /// Authorizer answers cached by sessions.
    pub cached_authorizations: usize,
}

/// WebSocket close code after ABORT for a protocol violation: Crossbar's transport closes with
/// 1002 on a WAMP protocol error (autobahn `wamp/websocket.py` `onMessage`:
/// `_bailout(CLOSE_STATUS_CODE_PROTOCOL_ERROR, ..)`).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// WebSocket close code after every other ABORT and GOODBYE.
pub const CLOSE_NORMAL: u16 = 1000;

/// ABORT reason when `max_sessions` sessions are established. Crossbar has no such limit; the
/// spec's URI for a join the router does not allow.
pub const TOO_MANY_SESSIONS: &str = "wamp.error.not_authorized";

/// Longest client-chosen authid a log line repeats.
const MAX_LOGGED_AUTHID_LEN: usize = 128;

/// The ABORT of a login that did not succeed.
struct LoginRefusal {
    reason: String,
    message: String,
    /// Counts against the client's address (`[access] failed_logins_per_minute`).
    counts: bool,
}

impl LoginRefusal {
    /// A wrong ticket or signature, an unknown authid: the same whatever was wrong.
    fn failed() -> LoginRefusal {
        LoginRefusal {
            reason: auth::NOT_AUTHORIZED.to_owned(),
            message: auth::FAILED_LOGIN.to_owned(),
            counts: true,
        }
    }

    /// The authenticator is absent, timed out or answered nonsense: the client sees a failed
    /// login (the log says what happened), not counted against its address.
    fn unanswered() -> LoginRefusal {
        LoginRefusal {
            counts: false,
            ..LoginRefusal::failed()
        }
    }
}

/// What HELLO's details say about the login, as (`authmethods` (the names among them),
/// `authid`, `authextra`); a field of the wrong type is a violation (autobahn `Hello.parse`:
/// "invalid type ... for 'authextra' detail in HELLO", and the like).
type LoginDetails<'a> = (Option<Vec<&'a str>>, Option<&'a str>, Option<&'a Dict>);

fn login_details(details: &Dict) -> Result<LoginDetails<'_>, Violation> {
    let bad = |option| Violation::BadOption {
        message: "HELLO",
        option,
    };
    let authmethods = match details.get("authmethods") {
        None => None,
        Some(Value::List(items)) => Some(items.iter().filter_map(Value::as_str).collect()),
        Some(_) => return Err(bad("authmethods")),
    };
    let authid = details
        .str("authid")
        .transpose()
        .map_err(|()| bad("authid"))?;
    let authextra = match details.get("authextra") {
        None => None,
        Some(Value::Dict(authextra)) => Some(authextra),
        Some(_) => return Err(bad("authextra")),
    };
    Ok((authmethods, authid, authextra))
}

/// A client-chosen name as a log line may repeat it.
fn loggable(text: &str) -> &str {
    if text.len() <= MAX_LOGGED_AUTHID_LEN {
        text
    } else {
        "(too long)"
    }
}

pub struct Router {
    config: RouterConfig,
    /// `config.realm_settings`' roles, compiled at `new` and `configure`.
    policies: auth::Policies,
    global_ids: GlobalIds,
    router_ids: SequentialIds,
    /// Realms by first use; a realm stays while it has sessions or is configured.
    realms: Vec<Realm>,
    clients: HashMap<Key, Phase>,
    /// Control connection -> (realm, backend session).
    backends: HashMap<Key, (usize, u64)>,
    /// Established client sessions, for `max_sessions`.
    client_sessions: usize,
    /// Authenticator calls in flight: ticket -> the client in `AwaitingAuthenticator`.
    logins: HashMap<u64, Key>,
    /// (Instant, SystemTime) at the first step: the wall clock of `created` timestamps.
    clock: Option<(Instant, SystemTime)>,
    /// The other nodes of the cluster and their sessions in the realms (`nodes`).
    nodes: Nodes,
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        Router::with_ids(config, GlobalIds::from_os())
    }

    /// A router whose random ids come from `ids` (tests seed it).
    pub fn with_ids(config: RouterConfig, ids: GlobalIds) -> Router {
        Router {
            policies: auth::Policies::compile(&config.realm_settings),
            config,
            global_ids: ids,
            router_ids: SequentialIds::new(),
            realms: Vec::new(),
            clients: HashMap::new(),
            backends: HashMap::new(),
            client_sessions: 0,
            logins: HashMap::new(),
            clock: None,
            nodes: Nodes::default(),
        }
    }

    /// Applies a reloaded config; existing sessions keep their realm even if it was removed.
    pub fn configure(&mut self, config: RouterConfig) {
        self.policies = auth::Policies::compile(&config.realm_settings);
        self.config = config;
    }

    /// True when WAMP is on (a realm is configured).
    pub fn enabled(&self) -> bool {
        !self.config.realms.is_empty()
    }

    /// A WebSocket client chose a WAMP subprotocol; its session begins when its HELLO arrives.
    pub fn open(&mut self, key: Key, transport: Transport, now: Instant) {
        let mut out = Vec::new();
        // A key is fresh per connection (slab generations); a leftover is a hub bug, and the
        // old session must not linger.
        self.gone(Peer::Client(key), now, &mut NoHistory, &mut out);
        self.clients.insert(
            key,
            Phase::Establishing {
                serializer: transport.serializer,
                cookie_user: transport.cookie_user,
            },
        );
    }

    fn wall_now(&mut self, now: Instant) -> SystemTime {
        let (anchor, wall) = *self.clock.get_or_insert_with(|| (now, SystemTime::now()));
        wall.checked_add(now.saturating_duration_since(anchor))
            .unwrap_or(wall)
    }

    fn realm_index(&mut self, name: &str) -> usize {
        if let Some(index) = self.realms.iter().position(|realm| realm.name == name) {
            return index;
        }
        self.realms.push(Realm::new(name.to_owned()));
        self.realms.len() - 1
    }

    fn is_backend_realm(config: &RouterConfig, realm: &Realm) -> bool {
        config
            .realms
            .first()
            .is_some_and(|name| *name == realm.name)
    }

    /// Runs `step` on realm `index` with a fresh context, then closes the clients it killed.
    fn with_realm<T>(
        &mut self,
        index: usize,
        now: Instant,
        history: &mut dyn Chronicle,
        out: &mut Vec<Action>,
        step: impl FnOnce(&mut Realm, &mut Ctx<'_>) -> T,
    ) -> Option<T> {
        let wall_now = self.wall_now(now);
        let realm = self.realms.get_mut(index)?;
        let mut ctx = Ctx {
            backend_realm: Self::is_backend_realm(&self.config, realm),
            clustered: self.nodes.any(),
            held_replies: Vec::new(),
            gathers: Vec::new(),
            config: &self.config,
            policies: &self.policies,
            global_ids: &mut self.global_ids,
            router_ids: &mut self.router_ids,
            now,
            wall_now,
            history,
            out,
            closed: Vec::new(),
            decided: None,
            answers: Vec::new(),
        };
        let result = step(realm, &mut ctx);
        let closed = std::mem::take(&mut ctx.closed);
        let answers = std::mem::take(&mut ctx.answers);
        let held_replies = std::mem::take(&mut ctx.held_replies);
        let gathers = std::mem::take(&mut ctx.gathers);
        for (session, reply) in held_replies {
            let ticket = self.nodes.hold(index, session, reply);
            out.push(Action::AwaitNodes { ticket });
        }
        for gather in gathers {
            self.start_gather(index, gather, out);
        }
        for key in closed {
            if let Some(phase) = self.clients.get_mut(&key) {
                if matches!(
                    phase,
                    Phase::Established { .. } | Phase::EstablishedV1 { .. }
                ) {
                    self.client_sessions = self.client_sessions.saturating_sub(1);
                }
                *phase = Phase::Closing;
            }
            out.push(Action::Close {
                to: key,
                code: CLOSE_NORMAL,
                reason: meta::KILLED.to_owned(),
            });
        }
        for answer in answers {
            self.authenticator_answered(answer, now, out);
        }
        Some(result)
    }

    /// One WebSocket message from `key`, serialized with the client's subprotocol.
    pub fn receive(
        &mut self,
        key: Key,
        bytes: &[u8],
        now: Instant,
        history: &mut dyn Chronicle,
        out: &mut Vec<Action>,
    ) {
        let start = out.len();
        if let Some(Phase::EstablishedV1 { realm, session, .. }) = self.clients.get(&key) {
            let (realm, session) = (*realm, *session);
            self.receive_v1(key, realm, session, bytes, now, history, out);
        } else {
            self.receive_v2(key, bytes, now, history, out);
        }
        self.translate_v1(start, out);
    }

    /// A WAMP v1 client opened (subprotocol `wamp`, WAMP on): v1 has no HELLO, so it is
    /// authenticated by its cookies (`cookie_user`; none: closed), joins the backend realm at
    /// once and gets WELCOME first.
    pub fn open_v1(
        &mut self,
        key: Key,
        cookie_user: Option<&str>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let start = out.len();
        self.gone(Peer::Client(key), now, &mut NoHistory, out);
        let (Some(user), Some(realm_name)) = (cookie_user, self.config.realms.first().cloned())
        else {
            out.push(Action::Close {
                to: key,
                code: CLOSE_NORMAL,
                reason: "wamp.error.not_authorized".to_owned(),
            });
            return;
        };
        if self.client_sessions >= self.config.max_sessions {
            out.push(Action::Close {
                to: key,
                code: CLOSE_NORMAL,
                reason: TOO_MANY_SESSIONS.to_owned(),
            });
            return;
        }
        let id = self.fresh_session_id();
        let index = self.realm_index(&realm_name);
        let session = Session::new(
            id,
            Link::V1 { key },
            Rc::from(user),
            Rc::from(self.config.authrole.as_str()),
            PeerFeatures::default(),
        );
        let welcome = crate::wamp::v1::V1Message::Welcome {
            session: id.to_string(),
            protocol_version: crate::wamp::v1::PROTOCOL_VERSION,
            server_ident: v1::SERVER_IDENT.to_owned(),
        };
        out.push(Action::Send {
            to: vec![key],
            binary: false,
            bytes: Rc::from(crate::wamp::v1::encode(&welcome)),
        });
        self.clients.insert(
            key,
            Phase::EstablishedV1 {
                realm: index,
                session: id,
                state: Box::default(),
            },
        );
        self.client_sessions += 1;
        self.with_realm(index, now, &mut NoHistory, out, |realm, ctx| {
            realm.join(ctx, session)
        });
        self.translate_v1(start, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn receive_v1(
        &mut self,
        key: Key,
        realm: usize,
        session: u64,
        bytes: &[u8],
        now: Instant,
        history: &mut dyn Chronicle,
        out: &mut Vec<Action>,
    ) {
        let message = match crate::wamp::v1::decode(bytes, self.config.max_depth) {
            Ok(message) => message,
            Err(error) => {
                // v1 has no error message: a peer sending what is not v1 is cut off.
                log::debug!(conn = key.to_usize(), reason:% = error; "WAMP v1 protocol violation");
                self.end_client_session(key, realm, session, now, history, out);
                self.close(key, CLOSE_PROTOCOL_ERROR, PROTOCOL_VIOLATION, out);
                return;
            }
        };
        let Some(Phase::EstablishedV1 { state, .. }) = self.clients.get_mut(&key) else {
            return;
        };
        match state.incoming(message) {
            v1::Incoming::Nothing => {}
            v1::Incoming::Answer(answer) => out.push(Action::Send {
                to: vec![key],
                binary: false,
                bytes: Rc::from(crate::wamp::v1::encode(&answer)),
            }),
            v1::Incoming::V2(message) => {
                let kind = message.message_type().name();
                // What to forget if the realm refuses the message outright.
                let request = match &message {
                    Message::Call { request, .. } | Message::Subscribe { request, .. } => *request,
                    _ => 0,
                };
                let result = self.with_realm(realm, now, history, out, |realm, ctx| {
                    realm.handle(ctx, session, message)
                });
                if let Some(Err(violation)) = result {
                    // The translation makes valid v2, so this is rare; v1 has no error for
                    // SUBSCRIBE or PUBLISH, and a CALL still gets its CALLERROR.
                    log::debug!(conn = key.to_usize(), message = kind, reason:% = violation; "WAMP v1 message refused");
                    if let Some(Phase::EstablishedV1 { state, .. }) = self.clients.get_mut(&key)
                        && let Some(answer) = state.refused(request, &violation.to_string())
                    {
                        out.push(Action::Send {
                            to: vec![key],
                            binary: false,
                            bytes: Rc::from(crate::wamp::v1::encode(&answer)),
                        });
                    }
                }
            }
        }
    }

    /// Replaces each `Action::V1` from `start` on by its v1 frame (or nothing).
    fn translate_v1(&mut self, start: usize, out: &mut Vec<Action>) {
        let any = out.get(start..).is_some_and(|tail| {
            tail.iter()
                .any(|action| matches!(action, Action::V1 { .. }))
        });
        if !any {
            return;
        }
        let tail: Vec<Action> = out.drain(start..).collect();
        for action in tail {
            let Action::V1 { to, message } = action else {
                out.push(action);
                continue;
            };
            let Some(Phase::EstablishedV1 { state, .. }) = self.clients.get_mut(&to) else {
                continue;
            };
            if let Some(v1_message) = state.outgoing(message) {
                out.push(Action::Send {
                    to: vec![to],
                    binary: false,
                    bytes: Rc::from(crate::wamp::v1::encode(&v1_message)),
                });
            }
        }
    }

    fn receive_v2(
        &mut self,
        key: Key,
        bytes: &[u8],
        now: Instant,
        history: &mut dyn Chronicle,
        out: &mut Vec<Action>,
    ) {
        let Some(phase) = self.clients.get(&key) else {
            log::debug!(conn = key.to_usize(); "WAMP message from a client without a session dropped");
            return;
        };
        let (serializer, established) = match *phase {
            Phase::Closing | Phase::EstablishedV1 { .. } => return,
            Phase::Authenticating { ref attempt, .. }
            | Phase::AwaitingAuthenticator {
                asking: Asking { ref attempt, .. },
                ..
            } => {
                let serializer = attempt.serializer;
                match serializer.decode(bytes, self.config.max_depth) {
                    Ok(message) => self.authenticating(key, message, now, out),
                    Err(error) => {
                        self.violation(key, serializer, Violation::Decode(error), now, out)
                    }
                }
                return;
            }
            Phase::Establishing { serializer, .. } => (serializer, None),
            Phase::Established {
                realm,
                session,
                serializer,
            } => (serializer, Some((realm, session))),
        };
        let message = match serializer.decode(bytes, self.config.max_depth) {
            Ok(message) => message,
            Err(error) => {
                self.violation(key, serializer, Violation::Decode(error), now, out);
                return;
            }
        };
        match (established, message) {
            (None, Message::Hello { realm, details }) => {
                self.hello(key, &realm, &details, now, out);
            }
            // WAMP v2, "Abort": "No response to an ABORT message is expected."
            (None, Message::Abort { .. }) => self.close(key, CLOSE_NORMAL, "wamp.close.abort", out),
            (None, other) => {
                let violation = Violation::BeforeWelcome {
                    message: other.message_type().name(),
                };
                self.violation(key, serializer, violation, now, out);
            }
            (Some(_), Message::Hello { .. }) => {
                self.violation(key, serializer, Violation::SecondHello, now, out);
            }
            (Some((realm, session)), Message::Goodbye { .. }) => {
                // WAMP v2, "GOODBYE": the other peer "replies" `wamp.close.goodbye_and_out`;
                // the session ends and wson closes the connection.
                let goodbye = Message::Goodbye {
                    details: Dict::new(),
                    reason: "wamp.close.goodbye_and_out".to_owned(),
                };
                realm::send_via(Link::Client { key, serializer }, goodbye, out);
                self.end_client_session(key, realm, session, now, history, out);
                self.close(key, CLOSE_NORMAL, "wamp.close.goodbye_and_out", out);
            }
            (Some((realm, session)), Message::Abort { .. }) => {
                self.end_client_session(key, realm, session, now, history, out);
                self.close(key, CLOSE_NORMAL, "wamp.close.abort", out);
            }
            (Some((realm, session)), message) => {
                let result = self.with_realm(realm, now, history, out, |realm, ctx| {
                    realm.handle(ctx, session, message)
                });
                if let Some(Err(violation)) = result {
                    self.violation(key, serializer, violation, now, out);
                }
            }
        }
    }

    fn close(&mut self, key: Key, code: u16, reason: &str, out: &mut Vec<Action>) {
        if let Some(phase) = self.clients.get_mut(&key) {
            *phase = Phase::Closing;
        }
        out.push(Action::Close {
            to: key,
            code,
            reason: reason.to_owned(),
        });
    }

    fn end_client_session(
        &mut self,
        key: Key,
        realm: usize,
        session: u64,
        now: Instant,
        history: &mut dyn Chronicle,
        out: &mut Vec<Action>,
    ) {
        if let Some(phase) = self.clients.get_mut(&key) {
            *phase = Phase::Closing;
        }
        self.client_sessions = self.client_sessions.saturating_sub(1);
        self.with_realm(realm, now, history, out, |realm, ctx| {
            realm.leave(ctx, session)
        });
    }

    /// ABORT `wamp.error.protocol_violation`, the session (if any) leaves, Close.
    fn violation(
        &mut self,
        key: Key,
        serializer: Serializer,
        violation: Violation,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        log::debug!(conn = key.to_usize(), reason:% = violation; "WAMP protocol violation");
        self.abort(
            key,
            serializer,
            PROTOCOL_VIOLATION,
            violation.to_string(),
            out,
        );
        // A violating session's leave publishes meta events only.
        if let Some(&Phase::Established { realm, session, .. }) = self.clients.get(&key) {
            self.end_client_session(key, realm, session, now, &mut NoHistory, out);
        }
        self.close(key, CLOSE_PROTOCOL_ERROR, PROTOCOL_VIOLATION, out);
    }

    fn abort(
        &mut self,
        key: Key,
        serializer: Serializer,
        reason: &str,
        message: String,
        out: &mut Vec<Action>,
    ) {
        let mut details = Dict::new();
        details.insert("message", Value::String(message));
        let abort = Message::Abort {
            details,
            reason: reason.to_owned(),
        };
        realm::send_via(Link::Client { key, serializer }, abort, out);
    }

    fn hello(
        &mut self,
        key: Key,
        realm_name: &str,
        details: &Dict,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(Phase::Establishing {
            serializer,
            cookie_user,
        }) = self.clients.get(&key).cloned()
        else {
            return;
        };
        let features = match PeerFeatures::parse_hello(details) {
            Ok(features) => features,
            Err(violation) => return self.violation(key, serializer, violation, now, out),
        };
        if !self.config.realms.iter().any(|name| name == realm_name) {
            // Crossbar `session.py` `onHello`: Deny(NO_SUCH_REALM, 'no realm "{}" exists on
            // this router').
            let text = format!("no realm \"{realm_name}\" exists on this router");
            self.abort(key, serializer, "wamp.error.no_such_realm", text, out);
            return self.close(key, CLOSE_NORMAL, "wamp.error.no_such_realm", out);
        }
        if self.client_sessions >= self.config.max_sessions {
            let text = format!(
                "the router has {} sessions, the most allowed",
                self.config.max_sessions
            );
            self.abort(key, serializer, TOO_MANY_SESSIONS, text, out);
            return self.close(key, CLOSE_NORMAL, TOO_MANY_SESSIONS, out);
        }
        let id = self.fresh_session_id();
        let (authmethods, authid, authextra) = match login_details(details) {
            Ok(found) => found,
            Err(violation) => return self.violation(key, serializer, violation, now, out),
        };
        let mut random_authid = [0_u8; 24];
        let mut random_nonce = [0_u8; 48];
        let mut random_challenge = [0_u8; auth::CHALLENGE_LEN];
        if getrandom::fill(&mut random_authid).is_err()
            || getrandom::fill(&mut random_nonce).is_err()
            || getrandom::fill(&mut random_challenge).is_err()
        {
            log::error!(conn = key.to_usize(); "no OS randomness for a WAMP login");
            let text = "the router cannot authenticate now".to_owned();
            self.abort(key, serializer, auth::NOT_AUTHORIZED, text, out);
            return self.close(key, CLOSE_NORMAL, auth::NOT_AUTHORIZED, out);
        }
        let wall_now = self.wall_now(now);
        let hello = auth::Hello {
            authmethods,
            authid,
            authextra,
            cookie_user: cookie_user.as_deref(),
            cookie_role: &self.config.authrole,
            session: id,
            timestamp: realm::iso8601(wall_now),
            random_authid,
            random_nonce,
            random_challenge,
        };
        let attempt = Attempt {
            serializer,
            realm: realm_name.to_owned(),
            session: id,
            features,
        };
        match auth::start(self.config.realm_settings.get(realm_name), hello) {
            Start::Welcome(login) => self.establish(key, attempt, login, now, out),
            Start::Challenge { pending, extra } => {
                self.challenge(key, attempt, pending, extra, out);
            }
            Start::Ask {
                procedure,
                method,
                authid,
                authextra,
            } => {
                let asking = Asking {
                    attempt,
                    method,
                    authid,
                    authextra,
                };
                self.ask_authenticator(key, asking, &procedure, None, now, out);
            }
            Start::Deny { reason, message } => {
                log::debug!(conn = key.to_usize(), realm = realm_name, reason; "WAMP login refused");
                self.abort(key, serializer, reason, message, out);
                self.close(key, CLOSE_NORMAL, reason, out);
            }
        }
    }

    /// A message while CHALLENGE waits for its AUTHENTICATE, or the authenticator for its
    /// answer.
    fn authenticating(&mut self, key: Key, message: Message, now: Instant, out: &mut Vec<Action>) {
        let phase = self.clients.get(&key).cloned();
        let serializer = match &phase {
            Some(
                Phase::Authenticating { attempt, .. }
                | Phase::AwaitingAuthenticator {
                    asking: Asking { attempt, .. },
                    ..
                },
            ) => attempt.serializer,
            _ => return,
        };
        match (phase, message) {
            (
                Some(Phase::Authenticating { attempt, pending }),
                Message::Authenticate { signature, .. },
            ) => {
                // The signature is bounded before it is compared or passed on: a huge one
                // fails unread.
                if signature.len() <= auth::MAX_SIGNATURE_LEN
                    && pending.expected == auth::Expected::Authenticator
                {
                    let procedure = self
                        .config
                        .realm_settings
                        .get(&attempt.realm)
                        .and_then(|realm| realm.authenticator.clone())
                        .unwrap_or_default();
                    let asking = Asking {
                        attempt,
                        method: pending.method,
                        authid: pending.authid,
                        // Not kept since HELLO: the authenticator gets null (Crossbar
                        // passes HELLO's).
                        authextra: None,
                    };
                    return self.ask_authenticator(
                        key,
                        asking,
                        &procedure,
                        Some(signature),
                        now,
                        out,
                    );
                }
                let accepted =
                    signature.len() <= auth::MAX_SIGNATURE_LEN && pending.accepts(&signature);
                if !accepted {
                    // Never the signature, nor which part was wrong.
                    log::info!(conn = key.to_usize(), realm = attempt.realm, authid = loggable(&pending.authid), authmethod = pending.method.name(); "WAMP login failed");
                    return self.refuse_login(key, serializer, LoginRefusal::failed(), out);
                }
                let login = Login {
                    authid: pending.authid,
                    authrole: pending.authrole,
                    authmethod: pending.method.name(),
                    authprovider: pending.authprovider,
                    authextra: pending.authextra,
                };
                self.admit(key, attempt, login, now, out);
            }
            // WAMP v2, "Abort": "No response to an ABORT message is expected."
            (_, Message::Abort { .. }) => self.close(key, CLOSE_NORMAL, "wamp.close.abort", out),
            (_, other) => {
                let violation = Violation::BeforeWelcome {
                    message: other.message_type().name(),
                };
                self.violation(key, serializer, violation, now, out);
            }
        }
    }

    /// ABORT for a login that did not succeed, and Close.
    fn refuse_login(
        &mut self,
        key: Key,
        serializer: Serializer,
        refusal: LoginRefusal,
        out: &mut Vec<Action>,
    ) {
        if refusal.counts {
            out.push(Action::LoginFailed { to: key });
        }
        self.abort(key, serializer, &refusal.reason, refusal.message, out);
        self.close(key, CLOSE_NORMAL, &refusal.reason, out);
    }

    /// CHALLENGE the client for `pending`; AUTHENTICATE is awaited in `Authenticating`.
    fn challenge(
        &mut self,
        key: Key,
        attempt: Attempt,
        pending: auth::Pending,
        extra: Dict,
        out: &mut Vec<Action>,
    ) {
        let challenge = Message::Challenge {
            method: pending.method.name().to_owned(),
            extra,
        };
        let serializer = attempt.serializer;
        realm::send_via(Link::Client { key, serializer }, challenge, out);
        self.clients
            .insert(key, Phase::Authenticating { attempt, pending });
    }

    /// A login succeeded: WELCOME, unless the realm went (a reload) or others took the room
    /// while the login took its time.
    fn admit(
        &mut self,
        key: Key,
        attempt: Attempt,
        login: Login,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if !self.config.realms.contains(&attempt.realm)
            || self.client_sessions >= self.config.max_sessions
        {
            let refusal = LoginRefusal {
                reason: auth::NOT_AUTHORIZED.to_owned(),
                message: "the router cannot take this session now".to_owned(),
                counts: false,
            };
            return self.refuse_login(key, attempt.serializer, refusal, out);
        }
        self.establish(key, attempt, login, now, out);
    }

    /// Calls the realm's authenticator `procedure` about `asking.authid` (Crossbar's
    /// signature: realm, authid, details; the details carry the `ticket` for WAMP-Ticket and
    /// HELLO's `authextra`, with the `pubkey` for WAMP-Cryptosign). An authid the client did
    /// not name is null, as Crossbar passes HELLO's absent authid.
    fn ask_authenticator(
        &mut self,
        key: Key,
        mut asking: Asking,
        procedure: &str,
        ticket: Option<String>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let mut transport = Dict::new();
        transport.insert("type", Value::from("websocket"));
        let mut details = Dict::new();
        details.insert("transport", Value::Dict(transport));
        details.insert("session", Value::from(asking.attempt.session));
        let authid = if asking.authid.is_empty() {
            Value::Null
        } else {
            Value::from(asking.authid.as_str())
        };
        details.insert("authmethod", Value::from(asking.method.name()));
        details.insert("authid", authid.clone());
        details.insert("authrole", Value::Null);
        let authextra = asking.authextra.take().map_or(Value::Null, Value::Dict);
        details.insert("authextra", authextra);
        if let Some(ticket) = ticket {
            details.insert("ticket", Value::String(ticket));
        }
        let realm_name = asking.attempt.realm.as_str();
        let payload = Payload {
            args: vec![Value::from(realm_name), authid, Value::Dict(details)],
            kwargs: Dict::new(),
        };
        let ticket = self.router_ids.next_id();
        let index = self.realm_index(realm_name);
        let called = self.with_realm(index, now, &mut NoHistory, out, |realm, ctx| {
            realm.call_for_router(ctx, ticket, procedure, payload)
        });
        if let Err(reason) = called.unwrap_or(Err("the realm is gone")) {
            log::warn!(realm = asking.attempt.realm, authenticator = procedure, reason; "WAMP authenticator not called: login refused");
            let serializer = asking.attempt.serializer;
            return self.refuse_login(key, serializer, LoginRefusal::unanswered(), out);
        }
        self.logins.insert(ticket, key);
        self.clients
            .insert(key, Phase::AwaitingAuthenticator { asking, ticket });
    }

    /// The authenticator answered login call `answer.ticket` (or failed to): WAMP-CRA gets
    /// its CHALLENGE signed with the secret named, WAMP-Cryptosign one to sign with the
    /// private key of the `pubkey` named, WAMP-Ticket its WELCOME; an error ABORTs
    /// with the authenticator's error URI and message, as Crossbar forwards them; no answer
    /// (absent, timed out, nonsense) ABORTs as a failed login.
    fn authenticator_answered(
        &mut self,
        answer: dynamic::Answer,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(key) = self.logins.remove(&answer.ticket) else {
            return;
        };
        let Some(Phase::AwaitingAuthenticator { asking, ticket }) = self.clients.get(&key).cloned()
        else {
            return;
        };
        if ticket != answer.ticket {
            return;
        }
        let Asking {
            attempt,
            method,
            authid,
            ..
        } = asking;
        let serializer = attempt.serializer;
        let realm_name = attempt.realm.as_str();
        let payload = match answer.outcome {
            dynamic::Outcome::Result(payload) => payload,
            dynamic::Outcome::Error { error, payload } => {
                log::info!(conn = key.to_usize(), realm = realm_name, authid = loggable(&authid), error = loggable(&error); "WAMP login denied by the authenticator");
                let message = match payload.args.first() {
                    Some(Value::String(text)) => text.clone(),
                    _ => auth::FAILED_LOGIN.to_owned(),
                };
                let refusal = LoginRefusal {
                    reason: error,
                    message,
                    counts: true,
                };
                return self.refuse_login(key, serializer, refusal, out);
            }
            dynamic::Outcome::Failed(reason) => {
                log::warn!(conn = key.to_usize(), realm = realm_name, reason; "WAMP authenticator did not answer: login refused");
                return self.refuse_login(key, serializer, LoginRefusal::unanswered(), out);
            }
        };
        let principal = match dynamic::principal(&payload, wamp_realm::MAX_ITERATIONS) {
            Ok(principal) => principal,
            Err(reason) => {
                log::warn!(conn = key.to_usize(), realm = realm_name, reason; "WAMP authenticator answer unusable: login refused");
                return self.refuse_login(key, serializer, LoginRefusal::unanswered(), out);
            }
        };
        let settings = self.config.realm_settings.get(realm_name);
        if settings
            .is_some_and(|realm| !realm.roles.is_empty() && realm.role(&principal.role).is_none())
        {
            // Crossbar `pending.py` `_assign_principal`.
            let refusal = LoginRefusal {
                reason: dynamic::NO_SUCH_ROLE.to_owned(),
                message: format!("realm \"{realm_name}\" has no role \"{}\"", principal.role),
                counts: false,
            };
            log::warn!(conn = key.to_usize(), realm = realm_name, role = loggable(&principal.role); "WAMP authenticator named a role the realm lacks");
            return self.refuse_login(key, serializer, refusal, out);
        }
        let authid = principal.authid.unwrap_or(authid);
        if authid.is_empty() {
            // Crossbar `pending.py` `_assign_principal`: Deny(NO_SUCH_PRINCIPAL, "no authid
            // assigned") when neither HELLO nor the authenticator names one.
            log::warn!(conn = key.to_usize(), realm = realm_name; "WAMP authenticator named no authid for a login without one: refused");
            let refusal = LoginRefusal {
                reason: dynamic::NO_SUCH_PRINCIPAL.to_owned(),
                message: "no authid assigned".to_owned(),
                counts: false,
            };
            return self.refuse_login(key, serializer, refusal, out);
        }
        let authextra = principal.extra.unwrap_or_default();
        let (mut pending, extra) = match method {
            AuthMethod::Wampcra => {
                let Some(secret) = principal.secret else {
                    log::warn!(conn = key.to_usize(), realm = realm_name; "WAMP authenticator named no secret for a wampcra login: refused");
                    return self.refuse_login(key, serializer, LoginRefusal::unanswered(), out);
                };
                let salted = principal.salted.map(|(salt, iterations, keylen)| Salted {
                    salt,
                    iterations,
                    keylen,
                });
                let key_bytes = match &salted {
                    Some(salted) => auth::derive_key(
                        secret.as_bytes(),
                        salted.salt.as_bytes(),
                        salted.iterations,
                        salted.keylen,
                    )
                    .into_bytes(),
                    None => secret.into_bytes(),
                };
                let mut random_nonce = [0_u8; 48];
                if getrandom::fill(&mut random_nonce).is_err() {
                    log::error!(conn = key.to_usize(); "no OS randomness for a WAMP login");
                    return self.refuse_login(key, serializer, LoginRefusal::unanswered(), out);
                }
                let signing_key = Hidden::new(key_bytes);
                let wall_now = self.wall_now(now);
                auth::wampcra_challenge(
                    auth::WampcraPrincipal {
                        authid,
                        authrole: principal.role,
                        authprovider: dynamic::DYNAMIC_PROVIDER,
                        key: Some(&signing_key),
                        salted: salted.as_ref(),
                    },
                    attempt.session,
                    &auth::nonce(&random_nonce),
                    &realm::iso8601(wall_now),
                )
            }
            AuthMethod::Cryptosign => {
                // Crossbar verifies with the answer's key (`VerifyKey(principal["pubkey"])`),
                // whatever HELLO announced.
                let public_key = principal.pubkey.as_deref().map(auth::public_key);
                let Some(Ok(public_key)) = public_key else {
                    log::warn!(conn = key.to_usize(), realm = realm_name; "WAMP authenticator named no usable pubkey for a cryptosign login: refused");
                    return self.refuse_login(key, serializer, LoginRefusal::unanswered(), out);
                };
                let mut random_challenge = [0_u8; auth::CHALLENGE_LEN];
                if getrandom::fill(&mut random_challenge).is_err() {
                    log::error!(conn = key.to_usize(); "no OS randomness for a WAMP login");
                    return self.refuse_login(key, serializer, LoginRefusal::unanswered(), out);
                }
                auth::cryptosign_challenge(
                    auth::CryptosignPrincipal {
                        authid,
                        authrole: principal.role,
                        authprovider: dynamic::DYNAMIC_PROVIDER,
                        key: Some(public_key),
                    },
                    &random_challenge,
                )
            }
            AuthMethod::Ticket | AuthMethod::Anonymous => {
                let login = Login {
                    authid,
                    authrole: principal.role,
                    authmethod: method.name(),
                    authprovider: dynamic::DYNAMIC_PROVIDER,
                    authextra,
                };
                return self.admit(key, attempt, login, now, out);
            }
        };
        pending.authextra = authextra;
        self.challenge(key, attempt, pending, extra, out);
    }

    /// WELCOME: the attempt's session of `login` joins its realm.
    fn establish(
        &mut self,
        key: Key,
        attempt: Attempt,
        login: Login,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Attempt {
            serializer,
            realm: realm_name,
            session: id,
            features,
        } = attempt;
        let index = self.realm_index(&realm_name);
        let mut session = Session::new(
            id,
            Link::Client { key, serializer },
            Rc::from(login.authid.as_str()),
            Rc::from(login.authrole.as_str()),
            features,
        );
        session.authmethod = login.authmethod;
        session.authprovider = login.authprovider;
        session.authextra = login.authextra;
        let welcome = Message::Welcome {
            session: id,
            details: self.welcome_details(&realm_name, &session),
        };
        realm::send_via(session.link, welcome, out);
        self.clients.insert(
            key,
            Phase::Established {
                realm: index,
                session: id,
                serializer,
            },
        );
        self.client_sessions += 1;
        self.with_realm(index, now, &mut NoHistory, out, |realm, ctx| {
            realm.join(ctx, session)
        });
    }

    /// A session id no session of any realm has ("global scope").
    fn fresh_session_id(&mut self) -> u64 {
        loop {
            let id = self.global_ids.next_id();
            if !self
                .realms
                .iter()
                .any(|realm| realm.sessions.contains_key(&id))
            {
                return id;
            }
        }
    }

    /// WELCOME.Details: who the session is and what the router implements (WAMP v2,
    /// "WELCOME": "The WELCOME message MUST contain the roles the Router implements").
    fn welcome_details(&self, realm: &str, session: &Session) -> Dict {
        fn features(names: &[&str]) -> Value {
            let mut features = Dict::new();
            for name in names {
                features.insert(*name, Value::Bool(true));
            }
            let mut role = Dict::new();
            role.insert("features", Value::Dict(features));
            Value::Dict(role)
        }
        let mut roles = Dict::new();
        roles.insert(
            "broker",
            features(&[
                "publisher_identification",
                "publisher_exclusion",
                "subscriber_blackwhite_listing",
                "pattern_based_subscription",
                "event_retention",
                "subscription_meta_api",
                "session_meta_api",
            ]),
        );
        roles.insert(
            "dealer",
            features(&[
                "progressive_call_results",
                "call_timeout",
                "call_canceling",
                "caller_identification",
                "pattern_based_registration",
                "shared_registration",
                "registration_meta_api",
                "session_meta_api",
            ]),
        );
        let mut details = Dict::new();
        details.insert("realm", Value::from(realm));
        details.insert("authid", Value::from(&*session.authid));
        details.insert("authrole", Value::from(&*session.authrole));
        details.insert("authmethod", Value::from(session.authmethod));
        details.insert("authprovider", Value::from(session.authprovider));
        if !session.authextra.is_empty() {
            details.insert("authextra", Value::Dict(session.authextra.clone()));
        }
        details.insert("roles", Value::Dict(roles));
        details
    }

    /// The backend session of control connection `key`, created on first use.
    fn backend_session(
        &mut self,
        key: Key,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Option<(usize, u64)> {
        if let Some(&attached) = self.backends.get(&key) {
            return Some(attached);
        }
        let name = self.config.realms.first()?.clone();
        let index = self.realm_index(&name);
        let id = self.fresh_session_id();
        let session = Session::new(
            id,
            Link::Backend { key },
            Rc::from(BACKEND_AUTHID),
            Rc::from(self.config.backend_authrole.as_str()),
            PeerFeatures::backend(),
        );
        self.with_realm(index, now, &mut NoHistory, out, |realm, ctx| {
            realm.join(ctx, session)
        });
        self.backends.insert(key, (index, id));
        Some((index, id))
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
        history: &mut dyn Chronicle,
        out: &mut Vec<Action>,
    ) {
        let start = out.len();
        self.backend_message_v2(key, message, now, history, out);
        self.translate_v1(start, out);
    }

    /// See `publish_from_plain`.
    pub fn publish_from_plain(
        &mut self,
        topic: &str,
        options: &Dict,
        payload: Payload,
        position: Option<&Position>,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> u64 {
        let start = out.len();
        let publication = self.publish_from_plain_v2(topic, options, payload, position, now, out);
        self.translate_v1(start, out);
        publication
    }

    /// The peer is gone; see `gone_v2`.
    pub fn gone(
        &mut self,
        peer: Peer,
        now: Instant,
        history: &mut dyn Chronicle,
        out: &mut Vec<Action>,
    ) {
        let start = out.len();
        self.gone_v2(peer, now, history, out);
        self.translate_v1(start, out);
    }

    /// Runs what is due by `now`; see `tick_v2`.
    pub fn tick(&mut self, now: Instant, history: &mut dyn Chronicle, out: &mut Vec<Action>) {
        let start = out.len();
        self.tick_v2(now, history, out);
        self.translate_v1(start, out);
    }

    fn backend_message_v2(
        &mut self,
        key: Key,
        message: Message,
        now: Instant,
        history: &mut dyn Chronicle,
        out: &mut Vec<Action>,
    ) {
        let Some((realm, session)) = self.backend_session(key, now, out) else {
            log::debug!(conn = key.to_usize(); "WAMP message from the backend while WAMP is off dropped");
            return;
        };
        let kind = message.message_type().name();
        let result = self.with_realm(realm, now, history, out, |realm, ctx| {
            realm.handle(ctx, session, message)
        });
        if let Some(Err(violation)) = result {
            // The control layer is trusted code: a bad message is dropped and logged, the
            // session stays.
            log::warn!(conn = key.to_usize(), message = kind, reason:% = violation; "backend WAMP message dropped");
        }
    }

    /// True when a WAMP session of the backend realm is subscribed to a subscription that
    /// matches `topic`: the plain side converts its payload into WAMP arguments only then.
    pub fn backend_realm_listens(&self, topic: &str) -> bool {
        let Some(name) = self.config.realms.first() else {
            return false;
        };
        let Some(realm) = self.realms.iter().find(|realm| realm.name == *name) else {
            return false;
        };
        let mut matched = false;
        realm.broker.for_each_match(topic, |_| matched = true);
        matched
    }

    /// The backend realm's retained event on `topic` (WAMP v2 advanced, "Event Retention"):
    /// its payload, for a plain connection that joins the topic asking for it. The broker's
    /// store is the only one; its audience (exclude/eligible) is WAMP's alone, as plain
    /// connections get every live publication whatever its options say.
    pub fn backend_retained(&self, topic: &str) -> Option<&Payload> {
        let name = self.config.realms.first()?;
        let realm = self.realms.iter().find(|realm| realm.name == *name)?;
        realm
            .broker
            .retained(topic)
            .map(|retained| &retained.payload)
    }

    /// The plain side published `payload` to `topic` (control `x`/`X`): WAMP subscribers of
    /// the backend realm get an EVENT. `options` are PUBLISH options (exclude, eligible,
    /// exclude_authid, eligible_authid, retain...). Returns the publication id, 0 when the
    /// topic or the options are refused (WAMP is off, a bad URI, a `wamp.` topic, options of
    /// the wrong type). The publisher is not disclosed: no session publishes.
    fn publish_from_plain_v2(
        &mut self,
        topic: &str,
        options: &Dict,
        payload: Payload,
        position: Option<&Position>,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> u64 {
        let Some(name) = self.config.realms.first().cloned() else {
            return 0;
        };
        let options = match PublishOptions::parse(options) {
            Ok(options) => options,
            Err(violation) => {
                log::debug!(topic = topic, reason:% = violation; "plain publication to WAMP refused");
                return 0;
            }
        };
        if let Err(error) = uri::check(topic, uri::Match::Exact, self.config.strict_uris) {
            log::debug!(topic = topic, reason:% = error; "plain publication to WAMP refused");
            return 0;
        }
        if topic.starts_with("wamp.") {
            return 0;
        }
        let index = self.realm_index(&name);
        let publication = self.global_ids.next_id();
        // The hub recorded it already: it comes with its position.
        self.with_realm(index, now, &mut NoHistory, out, |realm, ctx| {
            realm.publish(
                ctx,
                publication,
                Publisher::Plain,
                topic,
                &options,
                payload,
                position,
            );
        });
        publication
    }

    /// The peer's transport is gone (client closed, control connection closed): its session
    /// leaves (on_leave meta event), its subscriptions and registrations go, its pending calls
    /// fail or are interrupted.
    fn gone_v2(
        &mut self,
        peer: Peer,
        now: Instant,
        history: &mut dyn Chronicle,
        out: &mut Vec<Action>,
    ) {
        match peer {
            Peer::Client(key) => match self.clients.remove(&key) {
                Some(
                    Phase::Established { realm, session, .. }
                    | Phase::EstablishedV1 { realm, session, .. },
                ) => {
                    self.client_sessions = self.client_sessions.saturating_sub(1);
                    self.with_realm(realm, now, history, out, |realm, ctx| {
                        realm.leave(ctx, session)
                    });
                }
                Some(
                    Phase::Establishing { .. }
                    | Phase::Authenticating { .. }
                    | Phase::AwaitingAuthenticator { .. }
                    | Phase::Closing,
                )
                | None => {}
            },
            Peer::Control(key) => {
                if let Some((realm, session)) = self.backends.remove(&key) {
                    self.with_realm(realm, now, history, out, |realm, ctx| {
                        realm.leave(ctx, session)
                    });
                }
            }
        }
    }

    /// wson is stopping: every joined client session gets GOODBYE
    /// `wamp.close.system_shutdown` (WAMP v2, "Session Close": "The Peer is shutting down
    /// completely"), queued before the hub closes the connections with 1001.
    pub fn shut_down(&mut self, out: &mut Vec<Action>) {
        for (&key, phase) in &self.clients {
            if let Phase::Established { serializer, .. } = *phase {
                let goodbye = Message::Goodbye {
                    details: Dict::new(),
                    reason: "wamp.close.system_shutdown".to_owned(),
                };
                realm::send_via(Link::Client { key, serializer }, goodbye, out);
            }
        }
    }

    /// Runs what is due by `now` (call timeouts).
    fn tick_v2(&mut self, now: Instant, history: &mut dyn Chronicle, out: &mut Vec<Action>) {
        for index in 0..self.realms.len() {
            let due = self
                .realms
                .get(index)
                .and_then(|realm| realm.dealer.next_deadline())
                .is_some_and(|deadline| deadline <= now);
            if due {
                self.with_realm(index, now, history, out, |realm, ctx| realm.tick(ctx));
            }
        }
    }

    /// The earliest time `tick` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.realms
            .iter()
            .filter_map(|realm| realm.dealer.next_deadline())
            .min()
    }

    /// Drops the cached authorizer answers of every session, or of the sessions of `authid`
    /// (control `O`); returns how many answers went.
    pub fn flush_authorizations(&mut self, authid: Option<&str>) -> usize {
        self.realms
            .iter_mut()
            .flat_map(|realm| realm.sessions.values_mut())
            .filter(|session| authid.is_none_or(|authid| *session.authid == *authid))
            .map(|session| session.gate.flush())
            .sum()
    }

    pub fn figures(&self) -> RouterFigures {
        let mut figures = RouterFigures::default();
        for realm in &self.realms {
            // Other nodes' routers are no sessions to the user.
            figures.sessions += realm.sessions.values().filter(|s| !s.is_node()).count();
            figures.subscriptions += realm.broker.subscription_count();
            figures.registrations += realm.dealer.registration_count();
            figures.pending_calls += realm.dealer.pending_count();
            figures.retained_events += realm.broker.retained_count();
            figures.retained_bytes += realm.broker.retained_bytes();
            figures.authorizations_waiting += realm.authorizing.len();
            figures.cached_authorizations += realm
                .sessions
                .values()
                .map(|session| session.gate.cached_count())
                .sum::<usize>();
        }
        figures
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::testing::{Harness, Out, config, json, to};
    use super::*;

    #[test]
    fn hello_to_a_configured_realm_is_welcomed() {
        let mut h = Harness::new(config());
        let key = h.connect(Serializer::Json, "alice");
        let out = h.send(key, r#"[1,"realm1",{"roles":{"subscriber":{}}}]"#);
        let [Out::To(to_key, Message::Welcome { session, details })] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(*to_key, key);
        assert!((1..=crate::wamp::MAX_ID).contains(session));
        assert_eq!(details.str("authid"), Some(Ok("alice")));
        assert_eq!(details.str("authrole"), Some(Ok("user")));
        assert_eq!(details.str("authmethod"), Some(Ok("cookie")));
        assert_eq!(details.str("authprovider"), Some(Ok("static")));
        assert_eq!(details.str("realm"), Some(Ok("realm1")));
        let roles = json(&Message::Welcome {
            session: 1,
            details: details.clone(),
        });
        for feature in [
            r#""broker":{"features":{"publisher_identification":true,"publisher_exclusion":true,"subscriber_blackwhite_listing":true,"pattern_based_subscription":true,"event_retention":true,"subscription_meta_api":true,"session_meta_api":true}}"#,
            r#""dealer":{"features":{"progressive_call_results":true,"call_timeout":true,"call_canceling":true,"caller_identification":true,"pattern_based_registration":true,"shared_registration":true,"registration_meta_api":true,"session_meta_api":true}}"#,
        ] {
            assert!(roles.contains(feature), "{roles}");
        }
        assert_eq!(h.router.figures().sessions, 1);
    }

    #[test]
    fn hello_to_an_unknown_realm_is_aborted_no_such_realm() {
        let mut h = Harness::new(config());
        let key = h.connect(Serializer::Json, "alice");
        let out = h.send(key, r#"[1,"nope",{"roles":{"caller":{}}}]"#);
        assert_eq!(
            out,
            vec![
                Out::To(
                    key,
                    testing::parse(
                        r#"[3,{"message":"no realm \"nope\" exists on this router"},"wamp.error.no_such_realm"]"#
                    )
                ),
                Out::Close(key, 1000, "wamp.error.no_such_realm".into()),
            ]
        );
        assert!(
            h.send(key, r#"[1,"realm1",{"roles":{"caller":{}}}]"#)
                .is_empty()
        );
    }

    #[test]
    fn hello_over_max_sessions_is_aborted() {
        let mut h = Harness::new(RouterConfig {
            max_sessions: 1,
            ..config()
        });
        h.join("a");
        let key = h.connect(Serializer::Json, "b");
        let out = h.send(key, r#"[1,"realm1",{"roles":{"caller":{}}}]"#);
        assert_eq!(
            to(&out, key),
            vec![
                r#"[3,{"message":"the router has 1 sessions, the most allowed"},"wamp.error.not_authorized"]"#
            ]
        );
        assert!(out.contains(&Out::Close(key, 1000, TOO_MANY_SESSIONS.into())));
    }

    fn assert_violation(out: &[Out], key: Key, text: &str) {
        assert_eq!(
            to(out, key),
            vec![format!(
                r#"[3,{{"message":"{text}"}},"wamp.error.protocol_violation"]"#
            )]
        );
        assert_eq!(
            out.last(),
            Some(&Out::Close(key, 1002, PROTOCOL_VIOLATION.into()))
        );
    }

    #[test]
    fn message_before_hello_is_a_protocol_violation() {
        let mut h = Harness::new(config());
        let key = h.connect(Serializer::Json, "alice");
        let out = h.send(key, r#"[32,1,{},"a.b"]"#);
        assert_violation(
            &out,
            key,
            "SUBSCRIBE received before the session was established",
        );
        assert!(
            h.send(key, r#"[1,"realm1",{"roles":{"caller":{}}}]"#)
                .is_empty()
        );
    }

    #[test]
    fn hello_without_roles_is_a_protocol_violation() {
        let mut h = Harness::new(config());
        let key = h.connect(Serializer::Json, "alice");
        let out = h.send(key, r#"[1,"realm1",{}]"#);
        assert_violation(&out, key, "HELLO: invalid type or value for 'roles'");
    }

    #[test]
    fn second_hello_is_a_protocol_violation_and_the_session_leaves() {
        let mut h = Harness::new(config());
        let (key, _) = h.join("alice");
        let out = h.send(key, r#"[1,"realm1",{"roles":{"caller":{}}}]"#);
        assert_violation(
            &out,
            key,
            "HELLO received after the session was established",
        );
        assert_eq!(h.router.figures().sessions, 0);
    }

    #[test]
    fn messages_only_a_router_sends_are_protocol_violations() {
        for (text, name) in [
            (r#"[36,1,2,{}]"#, "EVENT"),
            (r#"[2,1,{}]"#, "WELCOME"),
            (r#"[50,1,{}]"#, "RESULT"),
            (r#"[4,"ticket",{}]"#, "CHALLENGE"),
        ] {
            let mut h = Harness::new(config());
            let (key, _) = h.join("alice");
            let out = h.send(key, text);
            assert_violation(
                &out,
                key,
                &format!("{name} is not a message a router accepts"),
            );
        }
    }

    #[test]
    fn error_for_anything_but_an_invocation_is_a_protocol_violation() {
        let mut h = Harness::new(config());
        let (key, _) = h.join("alice");
        let out = h.send(key, r#"[8,48,1,{},"x.y"]"#);
        assert_violation(&out, key, "ERROR for a CALL request");
    }

    #[test]
    fn undecodable_bytes_are_a_protocol_violation() {
        let mut h = Harness::new(config());
        let (key, _) = h.join("alice");
        let out = h.send_bytes(key, b"[99]");
        assert_violation(&out, key, "undecodable message: unknown message type 99");
        let key = h.connect(Serializer::Json, "bob");
        let out = h.send_bytes(key, b"{");
        let [Out::To(_, Message::Abort { reason, .. }), Out::Close(..)] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(reason, PROTOCOL_VIOLATION);
    }

    #[test]
    fn too_deep_a_message_is_a_protocol_violation() {
        let mut h = Harness::new(RouterConfig {
            max_depth: 5,
            ..config()
        });
        let (key, _) = h.join_as(Serializer::Json, "realm1", "alice");
        let out = h.send(key, r#"[16,1,{},"a.b",[[[[[1]]]]]]"#);
        assert!(
            matches!(out.first(), Some(Out::To(_, Message::Abort { .. }))),
            "{out:?}"
        );
    }

    #[test]
    fn goodbye_is_answered_goodbye_and_out_and_closed() {
        let mut h = Harness::new(config());
        let (key, _) = h.join("alice");
        let out = h.send(key, r#"[6,{},"wamp.close.close_realm"]"#);
        assert_eq!(
            out,
            vec![
                Out::To(
                    key,
                    testing::parse(r#"[6,{},"wamp.close.goodbye_and_out"]"#)
                ),
                Out::Close(key, 1000, "wamp.close.goodbye_and_out".into()),
            ]
        );
        assert_eq!(h.router.figures().sessions, 0);
        assert!(h.send(key, r#"[32,1,{},"a.b"]"#).is_empty());
        assert!(h.gone(Peer::Client(key)).is_empty());
    }

    #[test]
    fn client_abort_ends_the_session_without_reply() {
        let mut h = Harness::new(config());
        let (key, _) = h.join("alice");
        let out = h.send(key, r#"[3,{},"wamp.close.system_shutdown"]"#);
        assert_eq!(out, vec![Out::Close(key, 1000, "wamp.close.abort".into())]);
        assert_eq!(h.router.figures().sessions, 0);
    }

    #[test]
    fn gone_ends_the_session_and_frees_its_place() {
        let mut h = Harness::new(RouterConfig {
            max_sessions: 1,
            ..config()
        });
        let (key, _) = h.join("alice");
        h.gone(Peer::Client(key));
        assert_eq!(h.router.figures(), RouterFigures::default());
        h.join("bob");
        assert!(h.send(key, r#"[32,1,{},"a.b"]"#).is_empty());
    }

    #[test]
    fn session_ids_differ_and_every_realm_is_separate() {
        let mut h = Harness::new(config());
        let (_, a) = h.join_as(Serializer::Json, "realm1", "a");
        let (_, b) = h.join_as(Serializer::MsgPack, "realm2", "b");
        let (_, c) = h.join_as(Serializer::Cbor, "realm1", "c");
        assert!(a != b && b != c && a != c);
        assert_eq!(h.router.figures().sessions, 3);
    }

    #[test]
    fn backend_session_is_made_on_first_use() {
        let mut h = Harness::new(config());
        let control = h.key();
        let out = h.backend(control, r#"[32,7,{},"a.b"]"#);
        let [Out::Control(key, Message::Subscribed { request: 7, .. })] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(*key, control);
        assert_eq!(h.router.figures().sessions, 1);
        h.gone(Peer::Control(control));
        assert_eq!(h.router.figures(), RouterFigures::default());
    }

    #[test]
    fn wamp_off_drops_everything() {
        let mut h = Harness::new(RouterConfig {
            realms: Vec::new(),
            ..config()
        });
        assert!(!h.router.enabled());
        let control = h.key();
        assert!(h.backend(control, r#"[32,7,{},"a.b"]"#).is_empty());
        let mut out = Vec::new();
        assert_eq!(
            h.router.publish_from_plain(
                "a.b",
                &Dict::new(),
                Payload::default(),
                None,
                h.now,
                &mut out
            ),
            0
        );
        assert!(out.is_empty());
    }

    fn auth_config() -> RouterConfig {
        let mut realms = WampRealms::NONE;
        realms
            .by_name
            .insert("realm2".to_owned(), auth::tests::realm_settings());
        RouterConfig {
            realm_settings: realms,
            ..config()
        }
    }

    #[test]
    fn ticket_login_is_challenged_then_welcomed_with_its_principal() {
        let mut h = Harness::new(auth_config());
        let key = h.connect_cookieless(Serializer::Json);
        let out = h.send(
            key,
            r#"[1,"realm2",{"roles":{"caller":{}},"authmethods":["ticket"],"authid":"alice"}]"#,
        );
        assert_eq!(to(&out, key), vec![r#"[4,"ticket",{}]"#]);
        assert_eq!(h.router.figures().sessions, 0);
        let out = h.send(key, r#"[5,"sesame",{}]"#);
        let [Out::To(_, Message::Welcome { details, .. }), ..] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(details.str("authid"), Some(Ok("alice")));
        assert_eq!(details.str("authrole"), Some(Ok("admin")));
        assert_eq!(details.str("authmethod"), Some(Ok("ticket")));
        assert_eq!(details.str("authprovider"), Some(Ok("static")));
        assert_eq!(h.router.figures().sessions, 1);
    }

    /// A cryptosign HELLO's `authmethods` and onwards: `authid` (if any) and the public key
    /// of test vector `index`.
    fn cryptosign_hello(authid: Option<&str>, index: usize) -> String {
        let pubkey = auth::hex(auth::tests::signing_key(index).verifying_key().as_bytes());
        let authid = authid.map_or_else(String::new, |authid| format!(r#","authid":"{authid}""#));
        format!(r#""cryptosign"]{authid},"authextra":{{"pubkey":"{pubkey}"}}"#)
    }

    #[test]
    fn cryptosign_login_is_challenged_then_welcomed_with_its_principal() {
        for authid in [Some("dave"), None] {
            let mut h = Harness::new(auth_config());
            let key = h.connect_cookieless(Serializer::Json);
            let hello = cryptosign_hello(authid, 0);
            let out = h.send(
                key,
                &format!(r#"[1,"realm2",{{"roles":{{"caller":{{}}}},"authmethods":[{hello}}}]"#),
            );
            let [Out::To(_, Message::Challenge { method, extra })] = out.as_slice() else {
                panic!("{out:?}");
            };
            assert_eq!(method, "cryptosign");
            let challenge = extra.str("challenge").unwrap().unwrap();
            assert_eq!(auth::hex_bytes::<32>(challenge).map(|_| ()), Some(()));
            assert_eq!(extra.get("channel_binding"), Some(&Value::Null));
            let signature = auth::tests::sign_challenge(&auth::tests::signing_key(0), extra);
            let out = h.send(key, &format!(r#"[5,"{signature}",{{}}]"#));
            let [Out::To(_, Message::Welcome { details, .. }), ..] = out.as_slice() else {
                panic!("{out:?}");
            };
            assert_eq!(details.str("authid"), Some(Ok("dave")));
            assert_eq!(details.str("authrole"), Some(Ok("guest")));
            assert_eq!(details.str("authmethod"), Some(Ok("cryptosign")));
            assert_eq!(details.str("authprovider"), Some(Ok("static")));
        }
    }

    #[test]
    fn hello_authextra_must_be_a_dict() {
        let mut h = Harness::new(auth_config());
        let key = h.connect_cookieless(Serializer::Json);
        let out = h.send(
            key,
            r#"[1,"realm2",{"roles":{"caller":{}},"authmethods":["cryptosign"],"authextra":"x"}]"#,
        );
        assert_violation(&out, key, "HELLO: invalid type or value for 'authextra'");
    }

    #[test]
    fn a_failed_login_is_aborted_without_a_hint() {
        let wrong = [
            (
                r#""ticket"],"authid":"alice""#.to_owned(),
                r#"[5,"wrong",{}]"#.to_owned(),
            ),
            (
                r#""ticket"],"authid":"nobody""#.to_owned(),
                r#"[5,"sesame",{}]"#.to_owned(),
            ),
            (
                r#""wampcra"],"authid":"bob""#.to_owned(),
                r#"[5,"AAAA",{}]"#.to_owned(),
            ),
            (
                r#""ticket"],"authid":"alice""#.to_owned(),
                format!(r#"[5,"{}",{{}}]"#, "s".repeat(auth::MAX_SIGNATURE_LEN + 1)),
            ),
            // Cryptosign: a wrong signature; an unknown authid; a key the principal does not
            // list; a key no principal lists.
            (
                cryptosign_hello(Some("dave"), 0),
                format!(r#"[5,"{}",{{}}]"#, "0".repeat(192)),
            ),
            (
                cryptosign_hello(Some("nobody"), 0),
                format!(r#"[5,"{}",{{}}]"#, "0".repeat(192)),
            ),
            (
                cryptosign_hello(Some("erin"), 0),
                format!(r#"[5,"{}",{{}}]"#, "0".repeat(192)),
            ),
            (
                cryptosign_hello(None, 2),
                format!(r#"[5,"{}",{{}}]"#, "0".repeat(192)),
            ),
        ];
        for (hello, authenticate) in wrong {
            let mut h = Harness::new(auth_config());
            let key = h.connect_cookieless(Serializer::Json);
            h.send(
                key,
                &format!(r#"[1,"realm2",{{"roles":{{"caller":{{}}}},"authmethods":[{hello}}}]"#),
            );
            let out = h.send(key, &authenticate);
            assert_eq!(
                out,
                vec![
                    // Counted against the client's address ([access] failed_logins_per_minute).
                    Out::LoginFailed(key),
                    Out::To(
                        key,
                        testing::parse(
                            r#"[3,{"message":"authentication failed"},"wamp.error.not_authorized"]"#
                        )
                    ),
                    Out::Close(key, 1000, auth::NOT_AUTHORIZED.into()),
                ]
            );
            assert_eq!(h.router.figures().sessions, 0);
        }
    }

    #[test]
    fn no_common_method_is_aborted_no_auth_method() {
        let mut h = Harness::new(auth_config());
        // Cookie-less: cookie is no method; realm1 has no settings, so nothing else either.
        let key = h.connect_cookieless(Serializer::Json);
        let out = h.send(key, r#"[1,"realm1",{"roles":{"caller":{}}}]"#);
        assert_eq!(
            to(&out, key),
            vec![
                r#"[3,{"message":"cannot authenticate using any of the offered authmethods cookie, anonymous"},"wamp.error.no_auth_method"]"#
            ]
        );
        assert_eq!(
            out.last(),
            Some(&Out::Close(key, 1000, auth::NO_AUTH_METHOD.into()))
        );
    }

    #[test]
    fn authenticate_outside_a_challenge_is_a_protocol_violation() {
        let mut h = Harness::new(auth_config());
        let key = h.connect(Serializer::Json, "alice");
        let out = h.send(key, r#"[5,"sesame",{}]"#);
        assert_violation(
            &out,
            key,
            "AUTHENTICATE received before the session was established",
        );
        let (key, _) = h.join("bob");
        let out = h.send(key, r#"[5,"sesame",{}]"#);
        assert_violation(&out, key, "AUTHENTICATE is not a message a router accepts");
        // While challenged, anything but AUTHENTICATE or ABORT is one too.
        let key = h.connect_cookieless(Serializer::Json);
        h.send(
            key,
            r#"[1,"realm2",{"roles":{"caller":{}},"authmethods":["ticket"],"authid":"alice"}]"#,
        );
        let out = h.send(key, r#"[32,1,{},"a.b"]"#);
        assert_violation(
            &out,
            key,
            "SUBSCRIBE received before the session was established",
        );
    }

    #[test]
    fn a_role_is_checked_on_every_action() {
        let mut h = Harness::new(auth_config());
        let key = h.connect_cookieless(Serializer::Json);
        let out = h.send(key, r#"[1,"realm2",{"roles":{"caller":{},"publisher":{},"subscriber":{},"callee":{}},"authmethods":["anonymous"]}]"#);
        let [Out::To(_, Message::Welcome { details, .. }), ..] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(details.str("authrole"), Some(Ok("guest")));
        assert_eq!(details.str("authmethod"), Some(Ok("anonymous")));
        let out = h.send(key, r#"[32,1,{},"com.app.news"]"#);
        assert!(
            matches!(out.as_slice(), [Out::To(_, Message::Subscribed { .. }), ..]),
            "{out:?}"
        );
        for (text, reply) in [
            (
                r#"[32,2,{},"com.app.secret.plans"]"#,
                r#"[8,32,2,{},"wamp.error.not_authorized",["session is not authorized to subscribe to 'com.app.secret.plans'"]]"#,
            ),
            (
                r#"[16,3,{"acknowledge":true},"com.app.news"]"#,
                r#"[8,16,3,{},"wamp.error.not_authorized",["session is not authorized to publish to 'com.app.news'"]]"#,
            ),
            (
                r#"[64,4,{},"com.app.proc"]"#,
                r#"[8,64,4,{},"wamp.error.not_authorized",["session is not authorized to register 'com.app.proc'"]]"#,
            ),
            (
                r#"[48,5,{},"wamp.session.count"]"#,
                r#"[8,48,5,{},"wamp.error.not_authorized",["session is not authorized to call 'wamp.session.count'"]]"#,
            ),
        ] {
            assert_eq!(
                to(&h.send(key, text), key),
                vec![reply.to_owned()],
                "{text}"
            );
        }
        // An unacknowledged refused PUBLISH gets nothing, as the broker's other refusals.
        assert!(h.send(key, r#"[16,6,{},"com.app.news"]"#).is_empty());
    }

    #[test]
    fn a_permission_with_disclose_discloses_the_caller() {
        let mut config = auth_config();
        if let Some(realm) = config.realm_settings.by_name.get_mut("realm2")
            && let Some(role) = realm.roles.iter_mut().find(|role| role.name == "guest")
            && let Some(first) = role.permissions.first_mut()
        {
            first.disclose_caller = true;
        }
        let mut h = Harness::new(config);
        // The backend (trusted, unchecked) is the callee in the backend realm; use a cookie
        // session with the admin role as callee instead: its role comes from `authrole`.
        let mut callee_config = h.router.config.clone();
        callee_config.authrole = "admin".to_owned();
        h.router.configure(callee_config);
        let (callee, _) = h.join_as(Serializer::Json, "realm2", "callee");
        h.send(callee, r#"[64,1,{},"com.app.proc"]"#);
        let caller = h.connect_cookieless(Serializer::Json);
        h.send(
            caller,
            r#"[1,"realm2",{"roles":{"caller":{}},"authmethods":["anonymous"]}]"#,
        );
        let out = h.send(caller, r#"[48,7,{},"com.app.proc"]"#);
        let [Out::To(to_key, Message::Invocation { details, .. })] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(*to_key, callee);
        assert_eq!(details.str("caller_authrole"), Some(Ok("guest")));
    }
}
