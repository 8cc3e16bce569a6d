//! A backend's control connection: its socket, control frame decoding, the ordered queue
//! of its replies, and its keepalive. What a command does is the commands layer's.
//!
//! Phases: `Handshake` (a TLS connection until its handshake completes, within
//! `handshake_timeout`) -> `Open` reads and answers commands; `Closing` (after `0E` or `q`)
//! reads nothing more and closes once its replies are written.

use std::io;
use std::time::{Duration, Instant};

use crate::control::codec::{self, ControlError};
use crate::control::command::{self, Reply};
use crate::decoded::Decoded;
use crate::server::commands::{Commands, Outcome, Ticket};
use crate::server::conn::Keepalive;
use crate::server::hub::Offer;
use crate::server::replies::ReplyQueue;
use crate::server::settings::Settings;
use crate::server::socket::{self, Connection, Lost, Socket};
use crate::server::stream::Stream;

/// Reads per control connection per loop turn.
pub(super) const READ_BUDGET: usize = 16;
/// Reply bytes a backend may leave unread before we stop reading its commands.
const MAX_PENDING_REPLIES: usize = 1 << 20;
/// Longest decimal length prefix plus the command byte.
const MAX_PREFIX: usize = 21;
/// Input buffer capacity an idle connection may keep.
const KEEP_INPUT_BUFFER: usize = 4096;

pub struct ControlConn {
    socket: Socket<ReplyQueue>,
    phase: ControlPhase,
    inbuf: Vec<u8>,
    /// A command answered `LaterInOrder` or `Hold`: the commands after it wait in `inbuf`,
    /// unexecuted, and nothing more is read, until this ticket resolves.
    barrier: Option<Ticket>,
}

enum ControlPhase {
    /// TLS only: no command can arrive before the handshake ends, and a peer that stalls
    /// in it is dropped at `deadline`, as a WebSocket client is.
    Handshake {
        deadline: Instant,
    },
    Open {
        keepalive: Keepalive,
    },
    Closing {
        deadline: Instant,
    },
}

/// Why a control connection is removed.
#[derive(Debug)]
pub enum ControlGone {
    PeerClosed,
    Io(io::Error),
    Finished,
    KeepaliveTimeout,
    HandshakeTimeout,
    CloseTimeout,
    /// An event listener or an authorizer whose queue passed `[events] max_queue`.
    SlowReader,
}

impl std::fmt::Display for ControlGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlGone::PeerClosed => f.write_str("peer closed the connection"),
            ControlGone::Io(error) => write!(f, "i/o error: {error}"),
            ControlGone::Finished => f.write_str("closed"),
            ControlGone::KeepaliveTimeout => f.write_str("no 0P after our 0p"),
            ControlGone::HandshakeTimeout => f.write_str("TLS handshake timeout"),
            ControlGone::CloseTimeout => f.write_str("close timeout"),
            ControlGone::SlowReader => f.write_str("queue over [events] max_queue"),
        }
    }
}

/// What handling a connection's input needs besides the connection.
pub struct ControlCtx<'a> {
    pub settings: &'a Settings,
    pub now: Instant,
    pub commands: &'a mut dyn Commands,
}

/// What `drive` leaves for the server.
pub enum ControlDrive {
    Idle,
    OverBudget,
    Gone(ControlGone),
}

impl ControlConn {
    pub fn new(stream: Stream, now: Instant, handshake_timeout: Duration) -> ControlConn {
        let phase = match stream.is_handshaking() {
            true => ControlPhase::Handshake {
                deadline: now + handshake_timeout,
            },
            false => ControlPhase::Open {
                keepalive: Keepalive::Heard { at: now },
            },
        };
        ControlConn {
            socket: Socket::new(stream, ReplyQueue::default()),
            phase,
            inbuf: Vec::new(),
            barrier: None,
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

    pub fn drive(&mut self, scratch: &mut [u8], ctx: &mut ControlCtx<'_>) -> ControlDrive {
        // Commands left behind a barrier that has resolved go first, before anything read.
        if self.barrier.is_none() && !self.inbuf.is_empty() {
            self.handle_frames(ctx);
        }
        let drive = socket::drive(self, scratch, READ_BUDGET, ctx);
        // Once per drive, not per read: a burst that takes several reads leaves each topic's
        // publications in one chunk (hub/staging.rs). At most READ_BUDGET reads are staged.
        ctx.commands.end_of_input();
        match drive {
            socket::Drive::Idle => ControlDrive::Idle,
            socket::Drive::OverBudget => ControlDrive::OverBudget,
            socket::Drive::Exit(gone) => ControlDrive::Gone(gone),
        }
    }

    /// A frame from the hub (an event, an authorization request), queued unless this
    /// connection already holds `max_queue` bytes.
    pub fn offer(&mut self, frame: &[u8], max_queue: usize) -> Offer {
        let out = self.socket.out_mut();
        if out.pending_bytes().saturating_add(frame.len()) > max_queue {
            return Offer::Full;
        }
        out.push_bytes(frame);
        Offer::Queued
    }

    /// The reply that was promised under `ticket` is known: it takes its place in order.
    /// True when the commands behind it may run now: drive the connection again.
    pub fn resolve(&mut self, ticket: Ticket, reply: &Reply) -> bool {
        self.socket.out_mut().resolve(ticket, reply);
        if self.barrier != Some(ticket) {
            return false;
        }
        self.barrier = None;
        true
    }

    /// Decodes and executes every complete frame buffered so far.
    fn handle_frames(&mut self, ctx: &mut ControlCtx<'_>) {
        // Taken out so a command can borrow its payload while replies are queued.
        let inbuf = std::mem::take(&mut self.inbuf);
        let max_frame = ctx.settings.max_control_frame;
        let mut consumed = 0;
        while matches!(self.phase, ControlPhase::Open { .. }) && self.barrier.is_none() {
            let rest = inbuf.get(consumed..).unwrap_or(&[]);
            if rest.is_empty() {
                break;
            }
            let decoded = codec::decode(rest, max_frame).and_then(|decoded| match decoded {
                Decoded::Incomplete => Ok(None),
                Decoded::Done { item, len } => command::parse(item).map(|cmd| Some((cmd, len))),
            });
            match decoded {
                Ok(None) => break,
                Ok(Some((cmd, len))) => {
                    consumed += len;
                    match ctx.commands.execute(cmd) {
                        Ok(outcome) => self.take(outcome, ctx),
                        Err(error) => self.fail(&error, ctx),
                    }
                }
                Err(error) => self.fail(&error, ctx),
            }
        }
        let mut inbuf = inbuf;
        inbuf.drain(..consumed.min(inbuf.len()));
        if inbuf.is_empty() && inbuf.capacity() > KEEP_INPUT_BUFFER {
            inbuf = Vec::new();
        }
        // The decoder rejects a declared length over the limit, so a buffer never holds
        // more than one maximal frame plus its prefix; this is a second fence. Behind a
        // barrier it holds whole frames too, at most what was read before it (no more is).
        if self.barrier.is_none() && inbuf.len() > max_frame + MAX_PREFIX {
            self.fail(
                &ControlError::FrameTooLarge {
                    len: inbuf.len() as u64,
                    max: max_frame,
                },
                ctx,
            );
            inbuf.clear();
        }
        self.inbuf = inbuf;
    }

    fn take(&mut self, outcome: Outcome, ctx: &ControlCtx<'_>) {
        match outcome {
            Outcome::Done => {}
            Outcome::Reply(reply) => self.socket.out_mut().push(&reply),
            Outcome::Later(ticket) => self.socket.out_mut().hold(ticket),
            Outcome::LaterInOrder(ticket) => {
                self.socket.out_mut().hold(ticket);
                self.barrier = Some(ticket);
            }
            Outcome::Hold(ticket) => self.barrier = Some(ticket),
            Outcome::Quit => self.close(ctx),
        }
    }

    fn fail(&mut self, error: &ControlError, ctx: &ControlCtx<'_>) {
        log::warn!(peer = self.peer(), reason:% = error; "control protocol error");
        self.socket.out_mut().push(&Reply::from_error(error));
        self.close(ctx);
    }

    fn close(&mut self, ctx: &ControlCtx<'_>) {
        self.phase = ControlPhase::Closing {
            deadline: ctx.now + ctx.settings.close_timeout,
        };
    }

    pub fn on_tick(&mut self, settings: &Settings, now: Instant) -> Result<(), ControlGone> {
        if let ControlPhase::Handshake { deadline } = self.phase {
            if self.socket.stream().is_handshaking() {
                return match now >= deadline {
                    true => Err(ControlGone::HandshakeTimeout),
                    false => Ok(()),
                };
            }
            self.phase = ControlPhase::Open {
                keepalive: Keepalive::Heard { at: now },
            };
        }
        match &mut self.phase {
            ControlPhase::Handshake { .. } => {}
            ControlPhase::Open { keepalive } => match *keepalive {
                Keepalive::Heard { at } => {
                    if now.saturating_duration_since(at) >= settings.ping_interval {
                        *keepalive = Keepalive::PingSent { at: now };
                        self.socket.out_mut().push_unsolicited(&Reply::Ping);
                    }
                }
                Keepalive::PingSent { at } => {
                    if now.saturating_duration_since(at) >= settings.ping_interval {
                        return Err(ControlGone::KeepaliveTimeout);
                    }
                }
            },
            ControlPhase::Closing { deadline } => {
                if now >= *deadline {
                    return Err(ControlGone::CloseTimeout);
                }
            }
        }
        Ok(())
    }

    /// Writes what is queued (wson's own ping after a tick).
    pub fn flush(&mut self) -> io::Result<()> {
        self.socket.flush().map(|_| ())
    }
}

impl Connection for ControlConn {
    type Queue = ReplyQueue;
    type Ctx<'c> = ControlCtx<'c>;
    type Exit = ControlGone;

    fn socket(&self) -> &Socket<ReplyQueue> {
        &self.socket
    }

    fn socket_mut(&mut self) -> &mut Socket<ReplyQueue> {
        &mut self.socket
    }

    fn wants_read(&self) -> bool {
        match self.phase {
            ControlPhase::Handshake { .. } => true,
            ControlPhase::Open { .. } => {
                self.barrier.is_none() && self.socket.out().pending_bytes() < MAX_PENDING_REPLIES
            }
            ControlPhase::Closing { .. } => false,
        }
    }

    fn after_write(&mut self, written: usize, ctx: &mut ControlCtx<'_>) -> Option<ControlGone> {
        // A peer that reads is alive, even while its own commands wait (a listener whose
        // queue of events stops us reading).
        if written > 0
            && let ControlPhase::Open { keepalive } = &mut self.phase
        {
            *keepalive = Keepalive::Heard { at: ctx.now };
        }
        let done = matches!(self.phase, ControlPhase::Closing { .. })
            && self.socket.out().is_drained()
            && !self.socket.stream().pending_output();
        done.then_some(ControlGone::Finished)
    }

    fn received(&mut self, bytes: &[u8], ctx: &mut ControlCtx<'_>) -> Option<ControlGone> {
        match &mut self.phase {
            // Plaintext: the handshake is over.
            ControlPhase::Handshake { .. } => {
                self.phase = ControlPhase::Open {
                    keepalive: Keepalive::Heard { at: ctx.now },
                };
            }
            ControlPhase::Open { keepalive } => *keepalive = Keepalive::Heard { at: ctx.now },
            ControlPhase::Closing { .. } => {}
        }
        self.inbuf.extend_from_slice(bytes);
        self.handle_frames(ctx);
        None
    }

    fn lost(&mut self, lost: Lost) -> ControlGone {
        match lost {
            Lost::PeerClosed => ControlGone::PeerClosed,
            Lost::Io(error) => ControlGone::Io(error),
        }
    }
}
