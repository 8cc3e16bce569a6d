//! A WebSocket client connection: its stream, its `Phase`, its bounded buffers.
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
//! The connection does its own socket I/O and protocol replies; anything that involves
//! other connections (token index, delivery, locks held by control connections) is the
//! hub's, which the server consults when `drive` returns.

use std::io::{self, Read};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::auth::{self, Identity};
use crate::config::ClientMessages;
use crate::control::command::FragmentPosition;
use crate::decoded::Decoded;
use crate::server::listener::Stream;
use crate::server::outbound::{Flushed, OutQueue, shared_frame};
use crate::server::settings::Settings;
use crate::server::slab::Key;
use crate::server::stats::Stats;
use crate::token::Token;
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
    pub stream: Stream,
    /// Index of the listener this connection came through.
    pub listener: usize,
    pub phase: Phase,
    /// Sticky readiness, set by events and cleared when the socket runs dry or full.
    pub readable: bool,
    pub writable: bool,
    /// Set by an event that reported the peer's EOF (or an error): from then on only
    /// `WouldBlock` or the EOF itself ends reading.
    pub read_closed: bool,
    pub out: OutQueue,
    /// True while the connection is on the hub's list of queues to flush this turn.
    pub flush_scheduled: bool,
    /// The token this connection holds in the hub's index, from its upgrade until its
    /// session ends (`Hub::settle` releases it) or it is removed; kept outside `Phase`
    /// because the phases after a session have no `Session` to read it from.
    pub registered_token: Option<Token>,
}

pub enum Phase {
    Handshake { request: Vec<u8>, deadline: Instant },
    Open(Session),
    Closing { session: Session, deadline: Instant },
    Flushing { deadline: Instant, then: AfterFlush },
    Lingering { deadline: Instant, discarded: usize },
}

/// What a closing connection does once its last bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFlush {
    /// The closing handshake is complete: close the TCP connection now (RFC 6455 §7.1.1:
    /// "the server SHOULD close the underlying TCP connection first").
    Close,
    /// We refused or failed the peer, which may still be sending: linger.
    Linger,
}

pub struct Session {
    pub identity: Identity,
    pub decoder: MessageDecoder,
    pub expires: Instant,
    pub keepalive: Keepalive,
    /// Boxed: locks are rare and every idle connection pays for the inline size.
    pub lock: Option<Box<Lock>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keepalive {
    Heard { at: Instant },
    PingSent { at: Instant },
}

/// A control connection's claim on this client for a fragmented send.
pub struct Lock {
    pub owner: Key,
    /// The kind of the fragmented message once its first fragment went out.
    pub started: Option<MessageKind>,
    /// Data frames that arrived for this client meanwhile, delivered after the last fragment.
    pub deferred: OutQueue,
    /// The bytes of a code point split between text fragments (at most 3), checked with
    /// the next fragment.
    pub utf8_carry: Vec<u8>,
}

/// Why a connection is removed; for the log line and the counters.
#[derive(Debug)]
pub enum Gone {
    PeerClosed,
    Io(io::Error),
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

/// What `drive` leaves for the server to do.
pub enum Drive {
    /// Waiting for readiness.
    Idle,
    /// More to read, but this connection had its share of the turn.
    OverBudget,
    /// The handshake request passed parsing, origin and cookie checks; the hub decides
    /// whether the token is free and calls `accept` or `refuse`.
    Authorized {
        identity: Identity,
        websocket_key: String,
        head_len: usize,
    },
    Gone(Gone),
}

/// What became of a data frame offered to this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// Held until the client's fragmented message ends.
    Deferred,
    /// Not open (handshaking or closing): nothing queued.
    NotOpen,
    /// Over `max_outbound_buffer`: the caller drops the client.
    Overflow {
        queued: usize,
    },
}

/// One piece of a fragmented message from a control connection.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    pub position: FragmentPosition,
    pub kind: MessageKind,
    pub payload: &'a [u8],
}

/// The answer to a fragment command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentResult {
    Sent,
    /// Not locked by this owner, not open, or out of order (`i`/`s` before `f`, `f` twice).
    Refused,
    Overflow {
        queued: usize,
    },
    /// The text so far cannot be UTF-8 (offset within this fragment); nothing was sent.
    InvalidText {
        offset: usize,
    },
}

impl Conn {
    pub fn new(stream: Stream, listener: usize, now: Instant, settings: &Settings) -> Conn {
        Conn {
            stream,
            listener,
            phase: Phase::Handshake {
                request: Vec::new(),
                deadline: now + settings.handshake_timeout,
            },
            readable: false,
            writable: false,
            read_closed: false,
            out: OutQueue::default(),
            flush_scheduled: false,
            registered_token: None,
        }
    }

    fn wants_read(&self) -> bool {
        match self.phase {
            Phase::Handshake { .. }
            | Phase::Open(_)
            | Phase::Closing { .. }
            | Phase::Lingering { .. } => true,
            Phase::Flushing { .. } => false,
        }
    }

    fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// The token this connection registered in the hub's index, whatever its phase now.
    pub fn token(&self) -> Option<Token> {
        self.registered_token
    }

    pub fn session(&self) -> Option<&Session> {
        match &self.phase {
            Phase::Open(session) | Phase::Closing { session, .. } => Some(session),
            Phase::Handshake { .. } | Phase::Flushing { .. } | Phase::Lingering { .. } => None,
        }
    }

    pub fn is_lingering(&self) -> bool {
        matches!(self.phase, Phase::Lingering { .. })
    }

    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// Heap bytes this connection holds beyond its struct, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        let phase = match &self.phase {
            Phase::Handshake { request, .. } => request.capacity(),
            Phase::Open(session) | Phase::Closing { session, .. } => {
                session.decoder.heap_bytes() + session.identity.user.capacity()
            }
            Phase::Flushing { .. } | Phase::Lingering { .. } => 0,
        };
        phase + self.out.heap_bytes()
    }

    /// Does all the I/O this connection can do now: writes what is queued, reads and
    /// handles what arrived, until the socket is dry, the budget is spent, or the hub
    /// must decide something.
    pub fn drive(
        &mut self,
        scratch: &mut [u8],
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) -> Drive {
        let mut reads = 0;
        loop {
            if self.writable
                && self.wants_write()
                && let Err(gone) = self.flush(stats)
            {
                return Drive::Gone(gone);
            }
            if self.finish_flushing() {
                return Drive::Gone(Gone::Finished);
            }
            if !(self.readable && self.wants_read()) {
                return Drive::Idle;
            }
            if reads == READ_BUDGET {
                return Drive::OverBudget;
            }
            reads += 1;
            let read = match self.stream.read(scratch) {
                Ok(0) => return Drive::Gone(Gone::PeerClosed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Drive::Gone(Gone::Io(e)),
            };
            // A short read drained the socket, and anything arriving later raises a new
            // edge; that saves the extra `read` that would only say `WouldBlock`. Not when
            // the event announced the peer's EOF: it came with this data and raises no
            // new edge, so read on until it shows.
            if read < scratch.len() && !self.read_closed {
                self.readable = false;
            }
            stats.bytes_in += read as u64;
            let bytes = scratch.get(..read).unwrap_or(&[]);
            match &mut self.phase {
                Phase::Handshake { request, .. } => {
                    request.extend_from_slice(bytes);
                    if let Some(drive) = self.on_handshake_bytes(settings, stats, now) {
                        return drive;
                    }
                }
                Phase::Open(_) | Phase::Closing { .. } => {
                    if let Err(gone) = self.on_frame_bytes(bytes, settings, stats, now) {
                        return Drive::Gone(gone);
                    }
                }
                Phase::Lingering { discarded, .. } => {
                    *discarded += read;
                    if *discarded > MAX_LINGER_BYTES {
                        return Drive::Gone(Gone::Finished);
                    }
                }
                Phase::Flushing { .. } => {}
            }
        }
    }

    /// Once the last bytes of a closing connection are written: true when it is to be
    /// closed now; otherwise shuts down our side and lingers for the peer's EOF.
    pub fn finish_flushing(&mut self) -> bool {
        let Phase::Flushing { deadline, then } = self.phase else {
            return false;
        };
        if !self.out.is_empty() {
            return false;
        }
        match then {
            AfterFlush::Close => true,
            AfterFlush::Linger => {
                self.stream.shutdown_write();
                self.phase = Phase::Lingering {
                    deadline,
                    discarded: 0,
                };
                false
            }
        }
    }

    /// Writes the queue; a short write means the socket is full until its next event.
    pub fn flush(&mut self, stats: &mut Stats) -> Result<(), Gone> {
        match self.out.flush_to(&mut self.stream) {
            Ok((written, state)) => {
                stats.bytes_out += written as u64;
                if state == Flushed::Blocked {
                    self.writable = false;
                }
                Ok(())
            }
            Err(error) => Err(Gone::Io(error)),
        }
    }

    fn on_handshake_bytes(
        &mut self,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) -> Option<Drive> {
        let Phase::Handshake { request, .. } = &self.phase else {
            return None;
        };
        let parsed = handshake::parse_request(request, settings.max_handshake_size);
        let (request, head_len) = match parsed {
            Ok(Decoded::Incomplete) => return None,
            Ok(Decoded::Done { item, len }) => (item, len),
            Err(error) => {
                log::warn!(
                    "handshake refused peer={} status={} reason=\"{error}\"",
                    self.stream.peer(),
                    error.status().code()
                );
                stats.handshakes_refused += 1;
                self.refuse(error.status(), None, settings, now);
                return None;
            }
        };
        if !settings.origins.allows(request.origin.as_deref()) {
            log::warn!(
                "handshake refused peer={} status=403 reason=\"origin not allowed\" origin={:?}",
                self.stream.peer(),
                request.origin.as_deref().unwrap_or("(none)")
            );
            stats.handshakes_refused += 1;
            self.refuse(Status::Forbidden, None, settings, now);
            return None;
        }
        let identity = auth::authorize(
            &request.cookies,
            &settings.secret,
            settings.digest,
            settings.token_lifetime.as_secs(),
            unix_now(),
        );
        match identity {
            Ok(identity) => Some(Drive::Authorized {
                identity,
                websocket_key: request.key,
                head_len,
            }),
            Err(error) => {
                log::warn!(
                    "handshake refused peer={} status=403 reason=\"{error}\"",
                    self.stream.peer()
                );
                stats.handshakes_refused += 1;
                self.refuse(Status::Forbidden, None, settings, now);
                None
            }
        }
    }

    /// Queues an HTTP refusal; the connection closes once it is written.
    pub fn refuse(
        &mut self,
        status: Status,
        retry_after: Option<u32>,
        settings: &Settings,
        now: Instant,
    ) {
        self.out
            .push(Rc::from(handshake::refusal_response(status, retry_after)));
        self.phase = Phase::Flushing {
            deadline: now + settings.close_timeout,
            then: AfterFlush::Linger,
        };
    }

    /// Completes the upgrade: queues the 101, opens the session and handles any frames
    /// the client sent right behind its request.
    pub fn accept(
        &mut self,
        identity: Identity,
        websocket_key: &str,
        head_len: usize,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) -> Result<(), Gone> {
        let request = match &mut self.phase {
            Phase::Handshake { request, .. } => std::mem::take(request),
            Phase::Open(_)
            | Phase::Closing { .. }
            | Phase::Flushing { .. }
            | Phase::Lingering { .. } => {
                return Ok(());
            }
        };
        self.out
            .push(Rc::from(handshake::accept_response(websocket_key, None)));
        let lifetime_left = identity.expires_at.saturating_sub(unix_now());
        self.phase = Phase::Open(Session {
            identity,
            decoder: MessageDecoder::new(settings.max_message_size as u64),
            expires: now + Duration::from_secs(lifetime_left),
            keepalive: Keepalive::Heard {
                at: now
                    .checked_sub(first_ping_head_start(
                        settings.ping_interval,
                        stats.connections_accepted,
                    ))
                    .unwrap_or(now),
            },
            lock: None,
        });
        let early = request.get(head_len..).unwrap_or(&[]);
        if early.is_empty() {
            return Ok(());
        }
        self.on_frame_bytes(early, settings, stats, now)
    }

    fn on_frame_bytes(
        &mut self,
        bytes: &[u8],
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) -> Result<(), Gone> {
        let (session, closing) = match &mut self.phase {
            Phase::Open(session) => (session, false),
            Phase::Closing { session, .. } => (session, true),
            Phase::Handshake { .. } | Phase::Flushing { .. } | Phase::Lingering { .. } => {
                return Ok(());
            }
        };
        session.keepalive = Keepalive::Heard { at: now };
        let max_outbound = settings.max_outbound_buffer;
        let echo = settings.client_messages == ClientMessages::Echo && !closing;
        let mut input = bytes;
        // Set when the connection must move to `Flushing` with this frame (possibly
        // none) queued last.
        let mut final_frame: Option<(Vec<u8>, AfterFlush)> = None;
        loop {
            let (used, event) = match session.decoder.feed(input) {
                Ok(fed) => fed,
                Err(error) => {
                    stats.protocol_errors += 1;
                    log::debug!(
                        "protocol error peer={} code={} reason=\"{error}\"",
                        self.stream.peer(),
                        error.close_code()
                    );
                    final_frame = Some((
                        frame::encode_close(error.close_code(), &error.to_string()),
                        AfterFlush::Linger,
                    ));
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
                    stats.messages_in += 1;
                    if echo {
                        let opcode = match kind {
                            MessageKind::Text => OpCode::Text,
                            MessageKind::Binary => OpCode::Binary,
                        };
                        let reply = shared_frame(true, opcode, payload);
                        match queue_data(&mut self.out, &mut session.lock, reply, max_outbound) {
                            Delivery::Overflow { queued } => {
                                stats.slow_consumers_dropped += 1;
                                return Err(Gone::SlowConsumer { queued });
                            }
                            Delivery::Queued | Delivery::Deferred | Delivery::NotOpen => {
                                stats.messages_out += 1;
                            }
                        }
                    }
                }
                // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
                // Pong frame in response ... [with] identical Application data".
                Event::Ping(payload) => {
                    if !closing {
                        let pong = shared_frame(true, OpCode::Pong, payload);
                        if self.out.pending_bytes() + pong.len() > max_outbound {
                            stats.slow_consumers_dropped += 1;
                            return Err(Gone::SlowConsumer {
                                queued: self.out.pending_bytes(),
                            });
                        }
                        self.out.push(pong);
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
                        CloseFrame::Empty => frame::encode_frame(true, OpCode::Close, &[]),
                        CloseFrame::WithCode { code, .. } => frame::encode_close(code, ""),
                    };
                    final_frame = Some((echo, AfterFlush::Close));
                    break;
                }
            }
            if input.is_empty() && used == 0 {
                break;
            }
        }
        if let Some((last, then)) = final_frame {
            // `push` ignores an empty frame: then only the TCP close follows.
            self.out.push(Rc::from(last));
            self.phase = Phase::Flushing {
                deadline: now + settings.close_timeout,
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

    /// Sends our Close and waits for the peer's (expiry, shutdown, lost frame source).
    /// A connection still handshaking has no WebSocket to close: it is just dropped.
    pub fn start_close(
        &mut self,
        code: u16,
        reason: &str,
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
            Phase::Open(mut session) => {
                // Deferred data would only follow our Close, which is forbidden.
                session.lock = None;
                self.out.push(Rc::from(frame::encode_close(code, reason)));
                self.phase = Phase::Closing {
                    session,
                    deadline: now + close_timeout,
                };
                Ok(())
            }
            Phase::Handshake { .. } => Err(Gone::ShuttingDown),
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
            Phase::Open(session) => {
                if now >= session.expires {
                    log::debug!("token expired peer={}", self.stream.peer());
                    return self.start_close(1000, "expired", now, settings.close_timeout);
                }
                match session.keepalive {
                    Keepalive::Heard { at } => {
                        if now.saturating_duration_since(at) >= settings.ping_interval {
                            self.out.push(shared_frame(true, OpCode::Ping, &[]));
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

    /// Offers a data frame from the hub (broadcast or direct message).
    pub fn deliver(&mut self, frame: &Rc<[u8]>, max_outbound: usize) -> Delivery {
        match &mut self.phase {
            Phase::Open(session) => queue_data(
                &mut self.out,
                &mut session.lock,
                frame.clone(),
                max_outbound,
            ),
            Phase::Handshake { .. }
            | Phase::Closing { .. }
            | Phase::Flushing { .. }
            | Phase::Lingering { .. } => Delivery::NotOpen,
        }
    }

    /// Claims the client for a fragmented send by `owner`; false when it is not open or
    /// already locked.
    pub fn try_lock(&mut self, owner: Key) -> bool {
        match &mut self.phase {
            Phase::Open(session) if session.lock.is_none() => {
                session.lock = Some(Box::new(Lock {
                    owner,
                    started: None,
                    deferred: OutQueue::default(),
                    utf8_carry: Vec::new(),
                }));
                true
            }
            Phase::Open(_)
            | Phase::Handshake { .. }
            | Phase::Closing { .. }
            | Phase::Flushing { .. }
            | Phase::Lingering { .. } => false,
        }
    }

    /// Sends one fragment of the locked message. The last one unlocks and releases the
    /// data deferred meanwhile, in the order it arrived.
    pub fn fragment(
        &mut self,
        owner: Key,
        fragment: Fragment<'_>,
        max_outbound: usize,
    ) -> FragmentResult {
        let Fragment {
            position,
            kind,
            payload,
        } = fragment;
        let Phase::Open(session) = &mut self.phase else {
            return FragmentResult::Refused;
        };
        let Some(lock) = session.lock.as_mut().filter(|lock| lock.owner == owner) else {
            return FragmentResult::Refused;
        };
        let opcode = match (position, lock.started) {
            (FragmentPosition::First, None) => match kind {
                MessageKind::Text => OpCode::Text,
                MessageKind::Binary => OpCode::Binary,
            },
            (FragmentPosition::Middle | FragmentPosition::Last, Some(_)) => OpCode::Continuation,
            (FragmentPosition::First, Some(_))
            | (FragmentPosition::Middle | FragmentPosition::Last, None) => {
                return FragmentResult::Refused;
            }
        };
        let fin = position == FragmentPosition::Last;
        let text = match (position, lock.started) {
            (FragmentPosition::First, _) => kind == MessageKind::Text,
            (_, started) => started == Some(MessageKind::Text),
        };
        if text && let Err(offset) = check_text_fragment(&mut lock.utf8_carry, payload, fin) {
            return FragmentResult::InvalidText { offset };
        }
        let frame = shared_frame(fin, opcode, payload);
        let queued = self.out.pending_bytes() + lock.deferred.pending_bytes();
        if queued + frame.len() > max_outbound {
            return FragmentResult::Overflow { queued };
        }
        self.out.push(frame);
        if fin {
            if let Some(lock) = session.lock.take() {
                self.out.append(lock.deferred);
            }
        } else if position == FragmentPosition::First {
            // Only the first fragment sets the kind; `i`/`I` are continuations either way.
            lock.started = Some(kind);
        }
        FragmentResult::Sent
    }

    /// The control connection holding this client's lock went away: the half-sent
    /// message can never be finished, so the client is closed with 1011.
    pub fn lose_frame_source(
        &mut self,
        owner: Key,
        settings: &Settings,
        now: Instant,
    ) -> Result<(), Gone> {
        let Phase::Open(session) = &mut self.phase else {
            return Ok(());
        };
        if session.lock.as_ref().is_none_or(|lock| lock.owner != owner) {
            return Ok(());
        }
        session.lock = None;
        self.start_close(1011, "framesource lost", now, settings.close_timeout)
    }
}

/// Queues a data frame, or defers it behind a fragmented message in progress, unless
/// that would push the client past `max_outbound`.
fn queue_data(
    out: &mut OutQueue,
    lock: &mut Option<Box<Lock>>,
    frame: Rc<[u8]>,
    max_outbound: usize,
) -> Delivery {
    let deferred = lock
        .as_ref()
        .map_or(0, |lock| lock.deferred.pending_bytes());
    let queued = out.pending_bytes() + deferred;
    if queued + frame.len() > max_outbound {
        return Delivery::Overflow { queued };
    }
    match lock {
        Some(lock) => {
            lock.deferred.push(frame);
            Delivery::Deferred
        }
        None => {
            out.push(frame);
            Delivery::Queued
        }
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

/// Checks one text fragment, with the partial code point the previous one ended with.
/// Keeps the new partial code point in `carry`; at the last fragment none may remain.
fn check_text_fragment(carry: &mut Vec<u8>, payload: &[u8], fin: bool) -> Result<(), usize> {
    let carried = carry.len();
    let mut joined = std::mem::take(carry);
    joined.extend_from_slice(payload);
    match std::str::from_utf8(&joined) {
        Ok(_) => Ok(()),
        Err(error) if error.error_len().is_none() && !fin => {
            *carry = joined.get(error.valid_up_to()..).unwrap_or(&[]).to_vec();
            Ok(())
        }
        Err(error) => Err(error.valid_up_to().saturating_sub(carried)),
    }
}

/// Seconds since the Unix epoch; cookie times are in these units.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fragments_may_split_a_code_point() {
        let euro = "€".as_bytes();
        let mut carry = Vec::new();
        assert_eq!(check_text_fragment(&mut carry, &euro[..1], false), Ok(()));
        assert_eq!(carry, &euro[..1]);
        assert_eq!(check_text_fragment(&mut carry, &euro[1..], true), Ok(()));
        assert!(carry.is_empty());
    }

    #[test]
    fn a_code_point_left_open_at_the_last_fragment_is_invalid() {
        let mut carry = Vec::new();
        assert_eq!(
            check_text_fragment(&mut carry, &"€".as_bytes()[..2], true),
            Err(0)
        );
    }

    #[test]
    fn invalid_bytes_fail_at_their_fragment() {
        let mut carry = Vec::new();
        assert_eq!(check_text_fragment(&mut carry, b"ab\xffcd", false), Err(2));
    }

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
