//! A WebSocket client connection: its socket, its `Phase`, its bounded buffers.
//!
//! Transitions:
//! - `Handshake` -> `Open` (101 queued) or `Flushing` (an HTTP refusal queued);
//! - `Open` -> `Closing` (we queued a Close: expiry, shutdown, lost frame source)
//!   or `Flushing` (we echoed the peer's Close, or failed the connection with 1002/1007/1009);
//! - `Closing` -> gone when the peer's Close arrives or `close_timeout` passes;
//! - `Flushing` -> gone when the queue is written after a completed closing handshake,
//!   `Lingering` when it is written after a refusal or failure (our side of TCP is shut
//!   down), or gone when `close_timeout` passes;
//! - `Lingering` -> gone at the peer's EOF, `close_timeout`, or `MAX_LINGER_BYTES` of
//!   discarded input (a peer that keeps sending is cut off). Reading until the peer
//!   closes keeps the kernel from answering its late bytes with a reset, which would
//!   destroy our last response or Close frame before the peer reads it.
//!
//! The connection does its own socket I/O (through `socket::drive`) and protocol replies
//! (pong, close echo). A complete message goes up to the hub through `Upcalls`, the
//! session's application layer; anything that involves other connections (admission,
//! the token index, delivery, locks held by control connections) is the hub's.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::auth::{self, Identity};
use crate::config::AuthMode;
use crate::config::Compression;
use crate::control::event::DisconnectCause;
use crate::decoded::Decoded;
use crate::server::outbound::{OutQueue, Variants, shared_frame};
use crate::server::settings::Settings;
use crate::server::socket::{self, Connection, Lost, Socket};
use crate::server::stats::Stats;
use crate::server::stream::Stream;
use crate::wamp::Serializer;
use crate::ws::deflate::{self, Agreed, Deflater};
use crate::ws::frame::{self, OpCode};
use crate::ws::handshake::{self, Status};
use crate::ws::message::{CloseFrame, Event, MessageDecoder, MessageKind};

/// Reads per connection per loop turn before others get their turn.
const READ_BUDGET: usize = 16;
/// Input a closing connection may still discard before it is cut off.
const MAX_LINGER_BYTES: usize = 64 * 1024;
/// Message buffer capacity an idle session may keep for its next message.
const KEEP_MESSAGE_BUFFER: usize = 16 * 1024;

pub struct Conn {
    socket: Socket<OutQueue>,
    phase: Phase,
    /// How the session ended, once it has: for the `disconnected` event. Boxed, since
    /// every idle connection pays for the inline size.
    ending: Option<Box<Ending>>,
}

enum Phase {
    Handshake {
        request: Vec<u8>,
        deadline: Instant,
    },
    /// The request passed its checks; the hub admits or refuses it, possibly after asking
    /// the authorizer (no input is read meanwhile).
    Admitting {
        /// The request bytes, with any frames the client sent right behind them.
        request: Vec<u8>,
        head_len: usize,
        websocket_key: String,
        /// The permessage-deflate offer accepted, if any (answered in the 101).
        deflate: Option<Agreed>,
    },
    Open(Session),
    Closing {
        session: Session,
        deadline: Instant,
    },
    Flushing {
        deadline: Instant,
        then: AfterFlush,
    },
    Lingering {
        deadline: Instant,
        discarded: usize,
    },
}

/// What a closing connection does once its last bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFlush {
    /// The closing handshake is complete: close the TCP connection now (RFC 6455 §7.1.1:
    /// "the server SHOULD close the underlying TCP connection first").
    Close,
    /// We refused or failed the peer, which may still be sending: linger.
    Linger,
}

pub struct Session {
    decoder: MessageDecoder,
    /// The window what goes to this client is compressed with: permessage-deflate was
    /// negotiated (and the window is one zlib compresses with). `None`: plain frames.
    send_window: Option<u8>,
    expires: Instant,
    keepalive: Keepalive,
    app: App,
}

/// The application protocol a session speaks over WebSocket messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// Messages are opaque: what becomes of one is the hub's `client_messages` policy.
    Plain,
    /// WAMP v2 (the client chose this subprotocol): every message goes to the router, and
    /// only the router's messages go to the client.
    Wamp(Serializer),
    /// WAMP v1 (subprotocol `wamp`, JSON): every message goes to the router, which speaks v1.
    WampV1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keepalive {
    Heard { at: Instant },
    PingSent { at: Instant },
}

/// Why a connection is removed; for the log line and the counters.
#[derive(Debug)]
pub enum Gone {
    PeerClosed,
    Io(std::io::Error),
    /// The closing handshake or refusal completed.
    Finished,
    SlowConsumer {
        queued: usize,
    },
    HandshakeTimeout,
    KeepaliveTimeout,
    CloseTimeout,
    ShuttingDown,
}

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gone::PeerClosed => f.write_str("peer closed the connection"),
            Gone::Io(error) => write!(f, "i/o error: {error}"),
            Gone::Finished => f.write_str("closed"),
            Gone::SlowConsumer { queued } => write!(f, "slow consumer ({queued} bytes queued)"),
            Gone::HandshakeTimeout => f.write_str("handshake timeout"),
            Gone::KeepaliveTimeout => f.write_str("keepalive timeout"),
            Gone::CloseTimeout => f.write_str("close timeout"),
            Gone::ShuttingDown => f.write_str("shutting down"),
        }
    }
}

/// How a session ended: the Close code and reason sent or received, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub code: u16,
    pub reason: String,
    pub cause: DisconnectCause,
}

/// Why `drive` stopped for the hub.
pub enum Exit {
    /// The handshake request passed parsing, origin and (per `auth`) cookie checks; the
    /// connection is `Admitting` and the hub decides: `accept`, `refuse`, or ask the
    /// authorizer first.
    Upgrade(Upgrade),
    Gone(Gone),
}

/// What the hub learns of an upgrade request.
#[derive(Clone)]
pub struct Upgrade {
    /// The cookies' identity, verified; `None` with `auth = "authorizer"`, which reads no
    /// cookie.
    pub identity: Option<Identity>,
    pub origin: Option<String>,
    /// The request-target as sent.
    pub path: String,
    /// Every `Cookie` header value, joined with "; " (for the authorizer).
    pub cookies: Vec<u8>,
    /// The subprotocols offered, in the client's order of preference.
    pub protocols: Vec<String>,
    /// Admitted without (valid) wson cookies because it offers a WAMP subprotocol and some
    /// realm has a login method besides `cookie`: `identity` is `None`, and the WAMP login
    /// is its only way in.
    pub wamp_login: bool,
    /// The `resume` parameter of the request-target (README, "Missed messages"); `None`
    /// without one.
    pub resume: Option<Vec<crate::resume::Resume>>,
}

/// True when an upgrade offering `protocols` may go without cookies: it offers a WAMP
/// subprotocol wson speaks, WAMP is on, and some realm allows a login besides `cookie`.
pub fn wamp_login_possible(settings: &Settings, protocols: &[String]) -> bool {
    !settings.wamp.realms.is_empty()
        && settings.wamp.realm.any_cookieless()
        && protocols
            .iter()
            .any(|name| Serializer::from_subprotocol(name).is_some())
}

/// Which sessions a frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Plain sessions: the control socket's messages.
    Plain,
    /// WAMP sessions: the router's messages.
    Wamp,
}

impl Audience {
    fn reaches(self, app: App) -> bool {
        matches!(
            (self, app),
            (Audience::Plain, App::Plain) | (Audience::Wamp, App::Wamp(_) | App::WampV1)
        )
    }
}

/// What became of a data frame offered to this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// Not open (handshaking or closing): nothing queued.
    NotOpen,
    /// Over `max_outbound_buffer`: the caller drops the client.
    Overflow {
        queued: usize,
    },
}

/// The session's way up to the hub: what a complete client message becomes.
pub trait Upcalls {
    /// A complete message from this client; `queued` is what its outbound queue holds,
    /// `deflate_window` the window of its permessage-deflate, if negotiated.
    /// Returns what, if anything, goes back to the client now.
    fn message(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        queued: usize,
        deflate_window: Option<u8>,
    ) -> Delivered;
    /// A complete message from a WAMP session, for the router; what goes back to the client
    /// the hub queues after the drive.
    fn wamp(&mut self, payload: &[u8]);
    /// The address checks that need the request head (a trusted proxy's forwarded address),
    /// run before origin and cookie checks.
    fn screen(&mut self, request: &handshake::Request) -> Screen;
    /// This connection's cookies were refused (counted against its address).
    fn login_failed(&mut self);
}

/// What the address checks on a request head decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Pass,
    /// The forwarded address is in a blocked range: 403.
    Blocked,
    /// The forwarded address is over a per-address limit: 429 with this `Retry-After`.
    Limited {
        retry_after: u32,
        reason: &'static str,
    },
}

/// The answer to a message that may go back to its own sender.
pub enum Delivered {
    Nothing,
    /// Queue this frame to the sender, in order with its pongs.
    ToSelf(Rc<[u8]>),
    /// Held for the sender until its fragmented message ends.
    Deferred,
    /// The sender's queue would pass `max_outbound_buffer`: drop it.
    Overflow {
        queued: usize,
    },
}

/// What handling a client's input may read or change besides the connection.
pub struct ClientCtx<'a> {
    pub settings: &'a Settings,
    pub stats: &'a mut Stats,
    pub now: Instant,
    pub upcalls: &'a mut dyn Upcalls,
}

impl Conn {
    pub fn new(stream: Stream, now: Instant, settings: &Settings) -> Conn {
        Conn {
            socket: Socket::new(stream, OutQueue::default()),
            phase: Phase::Handshake {
                request: Vec::new(),
                deadline: now + settings.handshake_timeout,
            },
            ending: None,
        }
    }

    pub fn stream_mut(&mut self) -> &mut Stream {
        self.socket.stream_mut()
    }

    pub fn peer(&self) -> String {
        self.socket.stream().peer()
    }

    pub fn on_event(&mut self, readable: bool, writable: bool, read_closed: bool) {
        self.socket.on_event(readable, writable, read_closed);
    }

    pub fn has_output(&self) -> bool {
        self.socket.has_output()
    }

    pub fn queued_bytes(&self) -> usize {
        self.socket.out().pending_bytes()
    }

    /// How the session ended, once it has.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_deref()
    }

    /// True once the connection only delivers its last bytes to a refused or failed peer
    /// and waits for it to close: it no longer counts toward `max_connections`.
    pub fn is_winding_down(&self) -> bool {
        matches!(
            self.phase,
            Phase::Flushing {
                then: AfterFlush::Linger,
                ..
            } | Phase::Lingering { .. }
        )
    }

    fn end(&mut self, code: u16, reason: &str, cause: DisconnectCause) {
        if self.ending.is_none() {
            self.ending = Some(Box::new(Ending {
                code,
                reason: reason.to_owned(),
                cause,
            }));
        }
    }

    pub fn is_lingering(&self) -> bool {
        matches!(self.phase, Phase::Lingering { .. })
    }

    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// A reloaded `max_message_size` applies to open sessions too, from their next message.
    pub fn set_max_message_size(&mut self, max_message_size: usize) {
        if let Phase::Open(session) | Phase::Closing { session, .. } = &mut self.phase {
            session
                .decoder
                .set_max_message_size(max_message_size as u64);
        }
    }

    /// Does all the I/O this connection can do now: writes what is queued, reads and
    /// handles what arrived, until the socket is dry, the budget is spent, or the hub
    /// must decide something.
    pub fn drive(&mut self, scratch: &mut [u8], ctx: &mut ClientCtx<'_>) -> socket::Drive<Exit> {
        // An upgrade held for the authorizer reads nothing, so the peer's EOF would only
        // show when the answer is written: a client that gave up would hold its place
        // (`max_pending`, `max_connections`) until then. As in the handshake phase, the
        // peer's EOF ends it now.
        if matches!(self.phase, Phase::Admitting { .. }) && self.socket.is_read_closed() {
            return socket::Drive::Exit(Exit::Gone(Gone::PeerClosed));
        }
        socket::drive(self, scratch, READ_BUDGET, ctx)
    }

    /// Writes what is queued (the end of a turn's flush); `Err(Finished)` once a closing
    /// connection has written its last bytes and is to be closed now.
    pub fn flush(&mut self, stats: &mut Stats) -> Result<(), Gone> {
        let written = self.socket.flush().map_err(Gone::Io)?;
        stats.bytes_out += written as u64;
        match self.finish_flushing() {
            true => Err(Gone::Finished),
            false => Ok(()),
        }
    }

    /// Once the last bytes of a closing connection are written: true when it is to be
    /// closed now; otherwise shuts down our side and lingers for the peer's EOF.
    fn finish_flushing(&mut self) -> bool {
        let Phase::Flushing { deadline, then } = self.phase else {
            return false;
        };
        if self.has_output() {
            return false;
        }
        match then {
            AfterFlush::Close => true,
            AfterFlush::Linger => {
                self.socket.stream_mut().shutdown_write();
                self.phase = Phase::Lingering {
                    deadline,
                    discarded: 0,
                };
                false
            }
        }
    }

    fn on_handshake_bytes(&mut self, ctx: &mut ClientCtx<'_>) -> Option<Exit> {
        let (settings, now) = (ctx.settings, ctx.now);
        let Phase::Handshake { request, .. } = &self.phase else {
            return None;
        };
        let parsed = handshake::parse_request(request, settings.max_handshake_size);
        let (request, head_len) = match parsed {
            Ok(Decoded::Incomplete) => return None,
            Ok(Decoded::Done { item, len }) => (item, len),
            Err(error) => {
                log::warn!(
                    peer = self.peer(),
                    status = error.status().code(),
                    reason:% = error;
                    "handshake refused"
                );
                ctx.stats.refused(error.status().code());
                self.refuse(error.status(), None, &error.to_string(), settings, now);
                return None;
            }
        };
        // Before any auth work: the hub logs the refusal, naming the forwarded address.
        match ctx.upcalls.screen(&request) {
            Screen::Pass => {}
            Screen::Blocked => {
                ctx.stats.refused(403);
                ctx.stats.refused_blocked += 1;
                self.refuse(Status::Forbidden, None, "blocked address", settings, now);
                return None;
            }
            Screen::Limited {
                retry_after,
                reason,
            } => {
                ctx.stats.refused(429);
                ctx.stats.refused_rate_limited += 1;
                self.refuse(
                    Status::TooManyRequests,
                    Some(retry_after),
                    reason,
                    settings,
                    now,
                );
                return None;
            }
        }
        if !settings.origins.allows(request.origin.as_deref()) {
            log::warn!(
                peer = self.peer(),
                status = 403,
                reason = "origin not allowed",
                origin = request.origin.as_deref().unwrap_or("(none)");
                "handshake refused"
            );
            ctx.stats.refused(403);
            self.refuse(Status::Forbidden, None, "origin not allowed", settings, now);
            return None;
        }
        // With `[history]` off the parameter is not read: upgrades behave as before it.
        let read_resume = if settings.history.prefixes.is_empty() {
            Ok(None)
        } else {
            crate::resume::from_target(&request.path, settings.history.max_resume_topics)
        };
        let resume = match read_resume {
            Ok(resume) => resume,
            Err(error) => {
                log::warn!(
                    peer = self.peer(),
                    status = 400,
                    reason:% = error;
                    "handshake refused"
                );
                ctx.stats.refused(400);
                self.refuse(Status::BadRequest, None, &error.to_string(), settings, now);
                return None;
            }
        };
        let mut wamp_login = false;
        let identity = match settings.auth {
            AuthMode::Authorizer => None,
            AuthMode::Cookie | AuthMode::CookieAndAuthorizer => {
                let verified = auth::authorize(
                    &request.cookies,
                    &settings.signing_secret,
                    settings.digest,
                    settings.token_lifetime.as_secs(),
                    auth::unix_now(),
                );
                match verified {
                    Ok(identity) => Some(identity),
                    // A WAMP client may log in with a ticket, a WAMP-CRA secret or anonymously
                    // where a realm allows it: no cookies needed (a plain client still needs
                    // them, and is refused below as before).
                    Err(error) if wamp_login_possible(settings, &request.protocols) => {
                        log::debug!(peer = self.peer(), reason:% = error; "upgrade without wson cookies admitted for a WAMP login");
                        wamp_login = true;
                        None
                    }
                    Err(error) => {
                        log::warn!(
                            peer = self.peer(),
                            status = 403,
                            reason:% = error;
                            "handshake refused"
                        );
                        ctx.stats.refused(403);
                        ctx.upcalls.login_failed();
                        // AuthError's text names the cookie and the rule, never a value
                        // that would help forge one.
                        self.refuse(Status::Forbidden, None, &error.to_string(), settings, now);
                        return None;
                    }
                }
            }
        };
        let Phase::Handshake { request: bytes, .. } = &mut self.phase else {
            return None;
        };
        let bytes = std::mem::take(bytes);
        let deflate = settings
            .compression
            .enabled
            .then(|| deflate::negotiate(&request.extensions, deflate_policy(settings)))
            .flatten();
        let handshake::Request {
            path,
            origin,
            key,
            cookies,
            protocols,
            ..
        } = request;
        self.phase = Phase::Admitting {
            request: bytes,
            head_len,
            websocket_key: key,
            deflate,
        };
        Some(Exit::Upgrade(Upgrade {
            identity,
            origin,
            path,
            cookies,
            protocols,
            wamp_login,
            resume,
        }))
    }

    /// Queues an HTTP refusal saying `why` in its body; the connection closes once it is
    /// written.
    pub fn refuse(
        &mut self,
        status: Status,
        retry_after: Option<u32>,
        why: &str,
        settings: &Settings,
        now: Instant,
    ) {
        let response = handshake::refusal_response(status, retry_after, why);
        self.refuse_with(response, settings, now);
    }

    /// Queues a prepared refusal (an authorizer's deny); closes once it is written.
    pub fn refuse_with(&mut self, response: Vec<u8>, settings: &Settings, now: Instant) {
        self.socket.out_mut().push(Rc::from(response));
        self.phase = Phase::Flushing {
            deadline: now + settings.close_timeout,
            then: AfterFlush::Linger,
        };
    }

    /// The window this client's messages are compressed with, when it negotiated
    /// permessage-deflate; `None`: it gets plain frames. Asked once per recipient of every
    /// delivery, hence inlined.
    #[inline]
    pub fn deflate_window(&self) -> Option<u8> {
        match &self.phase {
            Phase::Open(session) => session.send_window,
            Phase::Handshake { .. }
            | Phase::Admitting { .. }
            | Phase::Closing { .. }
            | Phase::Flushing { .. }
            | Phase::Lingering { .. } => None,
        }
    }

    /// True while the hub (or the authorizer) decides on the upgrade.
    pub fn is_admitting(&self) -> bool {
        matches!(self.phase, Phase::Admitting { .. })
    }

    /// Completes the upgrade: queues the 101, opens the session and handles any frames
    /// the client sent right behind its request.
    /// `expires_at` (Unix seconds) is when the session's token expires; `app` is the protocol
    /// the hub chose (a WAMP serializer's subprotocol goes into the 101).
    pub fn accept(
        &mut self,
        expires_at: u64,
        app: App,
        ctx: &mut ClientCtx<'_>,
    ) -> Result<(), Gone> {
        let subprotocol = match app {
            App::Plain => None,
            App::Wamp(serializer) => Some(serializer.subprotocol()),
            App::WampV1 => Some(crate::wamp::v1::SUBPROTOCOL),
        };
        let (request, head_len, deflate) = match &mut self.phase {
            Phase::Admitting {
                request,
                head_len,
                websocket_key,
                deflate,
            } => {
                let extension = deflate.map(|agreed| agreed.response());
                self.socket
                    .out_mut()
                    .push(Rc::from(handshake::accept_response(
                        websocket_key,
                        subprotocol,
                        extension.as_deref(),
                    )));
                (std::mem::take(request), *head_len, *deflate)
            }
            Phase::Handshake { .. }
            | Phase::Open(_)
            | Phase::Closing { .. }
            | Phase::Flushing { .. }
            | Phase::Lingering { .. } => {
                return Ok(());
            }
        };
        let lifetime_left = expires_at.saturating_sub(auth::unix_now());
        let now = ctx.now;
        let max_message_size = ctx.settings.max_message_size as u64;
        self.phase = Phase::Open(Session {
            decoder: match &deflate {
                Some(agreed) => MessageDecoder::with_deflate(max_message_size, agreed),
                None => MessageDecoder::new(max_message_size),
            },
            send_window: deflate.and_then(|agreed| agreed.compress_window()),
            expires: now + Duration::from_secs(lifetime_left),
            keepalive: Keepalive::Heard {
                at: now
                    .checked_sub(first_ping_head_start(
                        ctx.settings.ping_interval,
                        ctx.stats.connections_accepted,
                    ))
                    .unwrap_or(now),
            },
            app,
        });
        let early = request.get(head_len..).unwrap_or(&[]);
        if early.is_empty() {
            return Ok(());
        }
        self.on_frame_bytes(early, ctx)
    }

    fn on_frame_bytes(&mut self, bytes: &[u8], ctx: &mut ClientCtx<'_>) -> Result<(), Gone> {
        let (session, closing) = match &mut self.phase {
            Phase::Open(session) => (session, false),
            Phase::Closing { session, .. } => (session, true),
            Phase::Handshake { .. }
            | Phase::Admitting { .. }
            | Phase::Flushing { .. }
            | Phase::Lingering { .. } => {
                return Ok(());
            }
        };
        session.keepalive = Keepalive::Heard { at: ctx.now };
        let max_outbound = ctx.settings.max_outbound_buffer;
        let (stream, out) = self.socket.parts_mut();
        let mut input = bytes;
        // Set when the connection must move to `Flushing` with this frame (possibly
        // none) queued last.
        let mut final_frame: Option<(Vec<u8>, AfterFlush)> = None;
        // How the session ended, when this input ended it.
        let mut ending: Option<(u16, String, DisconnectCause)> = None;
        loop {
            let (used, event) = match session.decoder.feed(input) {
                Ok(fed) => fed,
                Err(error) => {
                    ctx.stats.protocol_errors += 1;
                    log::debug!(
                        peer = stream.peer(),
                        code = error.close_code(),
                        reason:% = error;
                        "protocol error"
                    );
                    let reason = error.to_string();
                    final_frame = Some((
                        frame::encode_close(error.close_code(), &reason),
                        AfterFlush::Linger,
                    ));
                    ending = Some((error.close_code(), reason, DisconnectCause::Protocol));
                    break;
                }
            };
            input = input.get(used..).unwrap_or(&[]);
            let Some(event) = event else {
                if input.is_empty() || used == 0 {
                    break;
                }
                continue;
            };
            match event {
                Event::Message { kind, payload } => {
                    ctx.stats.messages_in += 1;
                    let delivered = match session.app {
                        App::Plain => ctx.upcalls.message(
                            kind,
                            payload,
                            out.pending_bytes(),
                            session.send_window,
                        ),
                        App::Wamp(_) | App::WampV1 => {
                            // After our Close the router has let the session go.
                            if !closing {
                                ctx.upcalls.wamp(payload);
                            }
                            Delivered::Nothing
                        }
                    };
                    match delivered {
                        Delivered::Nothing => {}
                        // After our Close no data frame may follow (RFC 6455 §5.5.1).
                        Delivered::ToSelf(_) if closing => {}
                        Delivered::ToSelf(frame) => {
                            if out.pending_bytes() + frame.len() > max_outbound {
                                ctx.stats.slow_consumers_dropped += 1;
                                return Err(Gone::SlowConsumer {
                                    queued: out.pending_bytes(),
                                });
                            }
                            out.push(frame);
                            ctx.stats.messages_out += 1;
                        }
                        Delivered::Deferred => ctx.stats.messages_out += 1,
                        Delivered::Overflow { queued } => {
                            ctx.stats.slow_consumers_dropped += 1;
                            return Err(Gone::SlowConsumer { queued });
                        }
                    }
                }
                // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
                // Pong frame in response ... [with] identical Application data".
                Event::Ping(payload) => {
                    if !closing {
                        let pong = shared_frame(true, OpCode::Pong, payload);
                        if out.pending_bytes() + pong.len() > max_outbound {
                            ctx.stats.slow_consumers_dropped += 1;
                            return Err(Gone::SlowConsumer {
                                queued: out.pending_bytes(),
                            });
                        }
                        out.push(pong);
                    }
                }
                Event::Pong(_) => {}
                Event::Close(close) => {
                    if closing {
                        // Our Close was answered: the closing handshake is complete and
                        // RFC 6455 §7.1.1 has the server close the TCP connection first.
                        final_frame = Some((Vec::new(), AfterFlush::Close));
                        break;
                    }
                    // RFC 6455 §5.5.1: "the endpoint MUST send a Close frame in response.
                    // (When sending a Close frame in response, the endpoint typically echos
                    // the status code it received.)"
                    let echo = match close {
                        CloseFrame::Empty => {
                            // RFC 6455 §7.1.5: no status code is "considered to be 1005".
                            ending = Some((1005, String::new(), DisconnectCause::Client));
                            frame::encode_frame(true, OpCode::Close, &[])
                        }
                        CloseFrame::WithCode { code, reason } => {
                            ending = Some((code, reason.to_owned(), DisconnectCause::Client));
                            frame::encode_close(code, "")
                        }
                    };
                    final_frame = Some((echo, AfterFlush::Close));
                    break;
                }
            }
            if input.is_empty() && used == 0 {
                break;
            }
        }
        if let Some((code, reason, cause)) = ending {
            self.end(code, &reason, cause);
        }
        if let Some((last, then)) = final_frame {
            // `push` ignores an empty frame: then only the TCP close follows.
            self.socket.out_mut().push(Rc::from(last));
            self.phase = Phase::Flushing {
                deadline: ctx.now + ctx.settings.close_timeout,
                then,
            };
        } else if let Phase::Open(session) = &mut self.phase
            && session.decoder.is_idle()
            && session.decoder.heap_bytes() > KEEP_MESSAGE_BUFFER
        {
            // One large message should not pin its buffer for the connection's life.
            session.decoder.shrink();
        }
        Ok(())
    }

    /// Sends our Close and waits for the peer's (expiry, shutdown, kick, lost frame
    /// source...). A connection still handshaking has no WebSocket to close: it is just
    /// dropped.
    pub fn start_close(
        &mut self,
        code: u16,
        reason: &str,
        cause: DisconnectCause,
        now: Instant,
        close_timeout: Duration,
    ) -> Result<(), Gone> {
        match std::mem::replace(
            &mut self.phase,
            Phase::Flushing {
                deadline: now + close_timeout,
                then: AfterFlush::Close,
            },
        ) {
            Phase::Open(session) => {
                self.socket
                    .out_mut()
                    .push(Rc::from(frame::encode_close(code, reason)));
                self.end(code, reason, cause);
                self.phase = Phase::Closing {
                    session,
                    deadline: now + close_timeout,
                };
                Ok(())
            }
            Phase::Handshake { .. } | Phase::Admitting { .. } => Err(Gone::ShuttingDown),
            previous @ (Phase::Closing { .. }
            | Phase::Flushing { .. }
            | Phase::Lingering { .. }) => {
                self.phase = previous;
                Ok(())
            }
        }
    }

    /// Timers: handshake deadline, token expiry, keepalive pings, close deadlines.
    pub fn on_tick(&mut self, settings: &Settings, now: Instant) -> Result<(), Gone> {
        match &mut self.phase {
            Phase::Handshake { deadline, .. } => {
                if now >= *deadline {
                    return Err(Gone::HandshakeTimeout);
                }
            }
            // The hub keeps the authorizer's deadline.
            Phase::Admitting { .. } => {}
            Phase::Open(session) => {
                if now >= session.expires {
                    log::debug!(peer = self.socket.stream().peer(); "token expired");
                    return self.start_close(
                        1000,
                        "expired",
                        DisconnectCause::Expired,
                        now,
                        settings.close_timeout,
                    );
                }
                match session.keepalive {
                    Keepalive::Heard { at } => {
                        if now.saturating_duration_since(at) >= settings.ping_interval {
                            self.socket
                                .out_mut()
                                .push(shared_frame(true, OpCode::Ping, &[]));
                            session.keepalive = Keepalive::PingSent { at: now };
                        }
                    }
                    Keepalive::PingSent { at } => {
                        if now.saturating_duration_since(at) >= settings.ping_interval {
                            return Err(Gone::KeepaliveTimeout);
                        }
                    }
                }
            }
            Phase::Closing { deadline, .. }
            | Phase::Flushing { deadline, .. }
            | Phase::Lingering { deadline, .. } => {
                if now >= *deadline {
                    return Err(Gone::CloseTimeout);
                }
            }
        }
        Ok(())
    }

    /// Queues a data frame from the hub to a session speaking `app` (a plain message never
    /// reaches a WAMP session, nor a router message a plain one), unless that would push the
    /// client past `max_outbound`: the plain bytes, or the variant for this client's deflate
    /// window (made on first use). One look at the phase for both.
    #[inline]
    pub fn queue_shared(
        &mut self,
        frames: &mut Variants<'_>,
        deflater: &mut Deflater,
        compression: &Compression,
        app: Audience,
        max_outbound: usize,
    ) -> Delivery {
        match &self.phase {
            Phase::Open(session) if app.reaches(session.app) => {
                let frame = frames.for_client(session.send_window, deflater, compression);
                let queued = self.queued_bytes();
                if queued + frame.len() > max_outbound {
                    return Delivery::Overflow { queued };
                }
                self.socket.out_mut().push(frame.clone());
                Delivery::Queued
            }
            Phase::Open(_)
            | Phase::Handshake { .. }
            | Phase::Admitting { .. }
            | Phase::Closing { .. }
            | Phase::Flushing { .. }
            | Phase::Lingering { .. } => Delivery::NotOpen,
        }
    }

    /// The protocol of an open session.
    pub fn app(&self) -> Option<App> {
        match &self.phase {
            Phase::Open(session) => Some(session.app),
            Phase::Closing { session, .. } => Some(session.app),
            Phase::Handshake { .. }
            | Phase::Admitting { .. }
            | Phase::Flushing { .. }
            | Phase::Lingering { .. } => None,
        }
    }

    /// Queues a fragment (or another frame of the hub's own making) past the open check,
    /// for a client the hub knows is open; the hub has checked the bound.
    pub fn push_frame(&mut self, frame: Rc<[u8]>) {
        self.socket.out_mut().push(frame);
    }

    /// Moves frames the hub held for this client behind what is queued.
    pub fn append(&mut self, frames: OutQueue) {
        self.socket.out_mut().append(frames);
    }
}

impl Connection for Conn {
    type Queue = OutQueue;
    type Ctx<'c> = ClientCtx<'c>;
    type Exit = Exit;

    fn socket(&self) -> &Socket<OutQueue> {
        &self.socket
    }

    fn socket_mut(&mut self) -> &mut Socket<OutQueue> {
        &mut self.socket
    }

    fn wants_read(&self) -> bool {
        match self.phase {
            Phase::Handshake { .. }
            | Phase::Open(_)
            | Phase::Closing { .. }
            | Phase::Lingering { .. } => true,
            Phase::Admitting { .. } | Phase::Flushing { .. } => false,
        }
    }

    fn after_write(&mut self, written: usize, ctx: &mut ClientCtx<'_>) -> Option<Exit> {
        ctx.stats.bytes_out += written as u64;
        self.finish_flushing().then_some(Exit::Gone(Gone::Finished))
    }

    fn received(&mut self, bytes: &[u8], ctx: &mut ClientCtx<'_>) -> Option<Exit> {
        ctx.stats.bytes_in += bytes.len() as u64;
        match &mut self.phase {
            Phase::Handshake { request, .. } => {
                request.extend_from_slice(bytes);
                self.on_handshake_bytes(ctx)
            }
            Phase::Open(_) | Phase::Closing { .. } => {
                self.on_frame_bytes(bytes, ctx).err().map(Exit::Gone)
            }
            Phase::Lingering { discarded, .. } => {
                *discarded += bytes.len();
                (*discarded > MAX_LINGER_BYTES).then_some(Exit::Gone(Gone::Finished))
            }
            Phase::Admitting { .. } | Phase::Flushing { .. } => None,
        }
    }

    fn lost(&mut self, lost: Lost) -> Exit {
        Exit::Gone(match lost {
            Lost::PeerClosed => Gone::PeerClosed,
            Lost::Io(error) => Gone::Io(error),
        })
    }
}

/// What `[compression]` allows a negotiation.
fn deflate_policy(settings: &Settings) -> deflate::Policy {
    deflate::Policy {
        server_max_window_bits: settings.compression.server_max_window_bits,
        client_no_context_takeover: settings.compression.client_no_context_takeover,
    }
}

/// How much sooner than `ping_interval` a new session gets its first ping: somewhere in
/// the first half of the interval, spread by the connection's sequence number. Clients
/// that connected together (a restart, a storm) would otherwise all be pinged in the
/// same tick, a burst of one write per client that delays every message behind it; the
/// spread persists, as each later ping follows the client's own last answer.
fn first_ping_head_start(interval: Duration, sequence: u64) -> Duration {
    // The fractional parts of multiples of the golden ratio cover [0, 1) evenly for any
    // count of consecutive sequence numbers.
    let bits = sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    let fraction = bits as f64 / (1u64 << 53) as f64;
    interval.mul_f64(fraction / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_pings_of_a_storm_spread_over_half_the_interval() {
        let interval = Duration::from_secs(15);
        let half = interval / 2;
        // 10,000 clients connecting at once, pinged on 250 ms ticks: count per tick.
        let tick = Duration::from_millis(250);
        let mut per_tick = vec![0u32; (half.as_millis() / tick.as_millis()) as usize + 1];
        for sequence in 0..10_000 {
            let head_start = first_ping_head_start(interval, sequence);
            assert!(head_start < half, "{head_start:?}");
            per_tick[(head_start.as_millis() / tick.as_millis()) as usize] += 1;
        }
        // 30 ticks share 10,000 first pings: none gets more than a few percent over 1/30.
        let most = per_tick.iter().copied().max().unwrap_or(0);
        assert!(most <= 10_000 / 30 + 20, "{per_tick:?}");
        assert_eq!(first_ping_head_start(Duration::ZERO, 7), Duration::ZERO);
    }
}
