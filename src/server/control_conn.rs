//! A backend's control connection: its stream, control frame decoding, the client it
//! holds locked for a fragmented send, and its keepalive.
//!
//! Phases: `Open` reads and answers commands; `Closing` (after `0E` or `q`) reads nothing
//! more and closes once its replies are written.

use std::io::{self, Read, Write};
use std::time::Instant;

use crate::control::codec::{self, ControlError};
use crate::control::command::{self, Command, FragmentPosition, Reply};
use crate::decoded::Decoded;
use crate::server::conn::{Fragment, FragmentResult, Keepalive};
use crate::server::hub::{Direct, Hub};
use crate::server::listener::Stream;
use crate::server::outbound::{BroadcastBatch, shared_frame};
use crate::server::settings::Settings;
use crate::server::slab::Key;
use crate::server::stats::Stats;
use crate::ws::frame::OpCode;
use crate::ws::message::MessageKind;

/// Reads per control connection per loop turn.
const READ_BUDGET: usize = 16;
/// Replies a backend may leave unread before we stop reading its commands.
const MAX_PENDING_REPLIES: usize = 1 << 20;
/// Longest decimal length prefix plus the command byte.
const MAX_PREFIX: usize = 21;

pub struct ControlConn {
    pub stream: Stream,
    pub readable: bool,
    pub writable: bool,
    /// The client this connection has locked for a fragmented send.
    pub lock: Option<Key>,
    phase: ControlPhase,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_written: usize,
}

enum ControlPhase {
    Open { keepalive: Keepalive },
    Closing { deadline: Instant },
}

/// Why a control connection is removed.
#[derive(Debug)]
pub enum ControlGone {
    PeerClosed,
    Io(io::Error),
    Finished,
    KeepaliveTimeout,
    CloseTimeout,
}

impl std::fmt::Display for ControlGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlGone::PeerClosed => f.write_str("peer closed the connection"),
            ControlGone::Io(error) => write!(f, "i/o error: {error}"),
            ControlGone::Finished => f.write_str("closed"),
            ControlGone::KeepaliveTimeout => f.write_str("no 0P after our 0p"),
            ControlGone::CloseTimeout => f.write_str("close timeout"),
        }
    }
}

/// What a command may read or change besides its own connection.
pub struct ControlContext<'a> {
    pub hub: &'a mut Hub,
    /// Broadcasts decoded from one read, queued to the clients together; always empty
    /// between `drive` calls, so every control connection can use the same one.
    pub batch: &'a mut BroadcastBatch,
    pub settings: &'a Settings,
    pub stats: &'a mut Stats,
    /// The text `m` and status report for each listener (bound address).
    pub listener_names: &'a [String],
    pub started: Instant,
    pub control_connections: usize,
    pub now: Instant,
}

/// What `drive` leaves for the server.
pub enum ControlDrive {
    Idle,
    OverBudget,
    Gone(ControlGone),
}

impl ControlConn {
    pub fn new(stream: Stream, now: Instant) -> ControlConn {
        ControlConn {
            stream,
            readable: false,
            writable: false,
            lock: None,
            phase: ControlPhase::Open {
                keepalive: Keepalive::Heard { at: now },
            },
            inbuf: Vec::new(),
            out: Vec::new(),
            out_written: 0,
        }
    }

    fn wants_read(&self) -> bool {
        match self.phase {
            ControlPhase::Open { .. } => self.out.len() - self.out_written < MAX_PENDING_REPLIES,
            ControlPhase::Closing { .. } => false,
        }
    }

    fn has_output(&self) -> bool {
        self.out_written < self.out.len()
    }

    pub fn drive(
        &mut self,
        me: Key,
        scratch: &mut [u8],
        ctx: &mut ControlContext<'_>,
    ) -> ControlDrive {
        let mut reads = 0;
        loop {
            if self.writable
                && self.has_output()
                && let Err(error) = self.flush()
            {
                return ControlDrive::Gone(ControlGone::Io(error));
            }
            if matches!(self.phase, ControlPhase::Closing { .. }) && !self.has_output() {
                return ControlDrive::Gone(ControlGone::Finished);
            }
            if !(self.readable && self.wants_read()) {
                return ControlDrive::Idle;
            }
            if reads == READ_BUDGET {
                return ControlDrive::OverBudget;
            }
            reads += 1;
            let read = match self.stream.read(scratch) {
                Ok(0) => return ControlDrive::Gone(ControlGone::PeerClosed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return ControlDrive::Gone(ControlGone::Io(e)),
            };
            // No shortcut on a short read: the peer's EOF may have come in the same edge
            // as the data and raises no new one, so only `WouldBlock` clears `readable`.
            if let ControlPhase::Open { keepalive } = &mut self.phase {
                *keepalive = Keepalive::Heard { at: ctx.now };
            }
            self.inbuf
                .extend_from_slice(scratch.get(..read).unwrap_or(&[]));
            self.handle_frames(me, ctx);
        }
    }

    /// Decodes and applies every complete frame buffered so far.
    fn handle_frames(&mut self, me: Key, ctx: &mut ControlContext<'_>) {
        // Taken out so a command can borrow its payload while replies go to `self.out`.
        let inbuf = std::mem::take(&mut self.inbuf);
        let mut consumed = 0;
        while matches!(self.phase, ControlPhase::Open { .. }) {
            let rest = inbuf.get(consumed..).unwrap_or(&[]);
            if rest.is_empty() {
                break;
            }
            let decoded =
                codec::decode(rest, ctx.settings.max_control_frame).and_then(
                    |decoded| match decoded {
                        Decoded::Incomplete => Ok(None),
                        Decoded::Done { item, len } => {
                            command::parse(item).map(|cmd| Some((cmd, len)))
                        }
                    },
                );
            match decoded {
                Ok(None) => break,
                Ok(Some((cmd, len))) => {
                    consumed += len;
                    ctx.stats.control_frames += 1;
                    // Anything but another broadcast may queue to a client or report
                    // counters: the broadcasts before it go out first, in order.
                    if !matches!(cmd, Command::Broadcast { .. }) {
                        send_batch(ctx);
                    }
                    if let Err(error) = self.apply(me, cmd, ctx) {
                        self.fail(&error, ctx);
                    }
                }
                Err(error) => self.fail(&error, ctx),
            }
        }
        send_batch(ctx);
        let mut inbuf = inbuf;
        inbuf.drain(..consumed.min(inbuf.len()));
        if inbuf.is_empty() && inbuf.capacity() > 4096 {
            inbuf = Vec::new();
        }
        // The decoder rejects a declared length over the limit, so a buffer never holds
        // more than one maximal frame plus its prefix; this is a second fence.
        if inbuf.len() > ctx.settings.max_control_frame + MAX_PREFIX {
            self.fail(
                &ControlError::FrameTooLarge {
                    len: inbuf.len() as u64,
                    max: ctx.settings.max_control_frame,
                },
                ctx,
            );
            inbuf.clear();
        }
        self.inbuf = inbuf;
    }

    fn fail(&mut self, error: &ControlError, ctx: &ControlContext<'_>) {
        log::warn!(
            "control protocol error peer={} reason=\"{error}\"",
            self.stream.peer()
        );
        self.reply(&Reply::Error);
        self.phase = ControlPhase::Closing {
            deadline: ctx.now + ctx.settings.close_timeout,
        };
    }

    fn reply(&mut self, reply: &Reply) {
        reply.encode(&mut self.out);
    }

    fn apply(
        &mut self,
        me: Key,
        cmd: Command<'_>,
        ctx: &mut ControlContext<'_>,
    ) -> Result<(), ControlError> {
        let cmd_byte = cmd.command_byte();
        match cmd {
            Command::Broadcast { binary, message } => queue_broadcast(binary, message, ctx),
            Command::Direct {
                confirm,
                binary,
                token,
                message,
            } => {
                let delivered = if message.is_empty() {
                    // wson: an empty message only asks whether the client is online.
                    ctx.hub.is_online(&token)
                } else {
                    let frame = shared_frame(true, data_opcode(binary), message);
                    ctx.hub.direct(&token, &frame, ctx.settings, ctx.stats) == Direct::Delivered
                };
                if confirm {
                    self.reply(&if delivered {
                        Reply::Ack(token)
                    } else {
                        Reply::Nack(token)
                    });
                }
            }
            Command::Lock { token } => {
                let holding = self
                    .lock
                    .is_some_and(|client| ctx.hub.is_locked_by(client, me));
                // One lock per control connection: finish the message in progress first.
                let locked = if holding {
                    None
                } else {
                    ctx.hub.lock(&token, me)
                };
                match locked {
                    Some(client) => {
                        self.lock = Some(client);
                        self.reply(&Reply::Ack(token));
                    }
                    None => self.reply(&Reply::Nack(token)),
                }
            }
            Command::Fragment {
                position,
                binary,
                message,
            } => {
                let kind = if binary {
                    MessageKind::Binary
                } else {
                    MessageKind::Text
                };
                let result = match self.lock {
                    Some(client) => ctx.hub.fragment(
                        client,
                        me,
                        Fragment {
                            position,
                            kind,
                            payload: message,
                        },
                        ctx.settings,
                        ctx.stats,
                    ),
                    None => FragmentResult::Refused,
                };
                match result {
                    FragmentResult::InvalidText { offset } => {
                        return Err(ControlError::InvalidUtf8 {
                            command: cmd_byte,
                            offset,
                        });
                    }
                    FragmentResult::Sent => {
                        if position == FragmentPosition::Last {
                            self.lock = None;
                        }
                        self.reply(&Reply::FragmentAck);
                    }
                    FragmentResult::Refused | FragmentResult::Overflow { .. } => {
                        if !self
                            .lock
                            .is_some_and(|client| ctx.hub.is_locked_by(client, me))
                        {
                            self.lock = None;
                        }
                        self.reply(&Reply::FragmentNack);
                    }
                }
            }
            Command::Domain => {
                let domain = freest_domain(ctx);
                self.reply(&Reply::Domain(domain));
            }
            Command::Ping => self.reply(&Reply::Pong),
            Command::Pong => {}
            Command::Quit => {
                self.phase = ControlPhase::Closing {
                    deadline: ctx.now + ctx.settings.close_timeout,
                };
            }
            Command::Status => {
                let status = status_json(ctx);
                self.reply(&Reply::Status(status));
            }
            // TODO(lead): issue 10's commands parse (control::command) but do not run yet;
            // replace this arm with their execution over the hub while merging `proto`.
            Command::ToUser { .. }
            | Command::UserOnline { .. }
            | Command::UserTokens { .. }
            | Command::OnlineUsers { .. }
            | Command::Kick { .. }
            | Command::Subscribe { .. }
            | Command::Unsubscribe { .. }
            | Command::Publish { .. }
            | Command::Subscribers { .. }
            | Command::SubscriberCount { .. }
            | Command::Topics { .. }
            | Command::Listen { .. }
            | Command::Authorizer
            | Command::Authorize { .. } => self.reply(&Reply::Error),
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        while self.has_output() {
            let pending = self.out.get(self.out_written..).unwrap_or(&[]);
            match self.stream.write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_written += n;
                    if n < pending.len() {
                        self.writable = false;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !self.has_output() {
            self.out.clear();
            self.out_written = 0;
            if self.out.capacity() > 4096 {
                self.out = Vec::new();
            }
        }
        Ok(())
    }

    pub fn on_tick(&mut self, settings: &Settings, now: Instant) -> Result<(), ControlGone> {
        match &mut self.phase {
            ControlPhase::Open { keepalive } => match *keepalive {
                Keepalive::Heard { at } => {
                    if now.saturating_duration_since(at) >= settings.ping_interval {
                        *keepalive = Keepalive::PingSent { at: now };
                        self.reply(&Reply::Ping);
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

    pub fn has_pending_output(&self) -> bool {
        self.has_output()
    }
}

/// Adds a broadcast to the batch, sending the batch first when it is full. A message too
/// large for an empty batch goes out on its own, without the extra copy.
fn queue_broadcast(binary: bool, message: &[u8], ctx: &mut ControlContext<'_>) {
    if !ctx.batch.has_room_for(message.len()) {
        send_batch(ctx);
        if !ctx.batch.has_room_for(message.len()) {
            let frame = shared_frame(true, data_opcode(binary), message);
            ctx.hub.broadcast(&frame, 1, ctx.settings, ctx.stats);
            return;
        }
    }
    ctx.batch.push(data_opcode(binary), message);
}

fn send_batch(ctx: &mut ControlContext<'_>) {
    if let Some((chunk, messages)) = ctx.batch.take() {
        ctx.hub.broadcast(&chunk, messages, ctx.settings, ctx.stats);
    }
}

fn data_opcode(binary: bool) -> OpCode {
    if binary { OpCode::Binary } else { OpCode::Text }
}

/// The domain (or, without `domains`, the address) of the listener with the fewest live
/// connections; the first such listener on a tie, as wson did.
fn freest_domain(ctx: &ControlContext<'_>) -> String {
    let loads = ctx.hub.per_listener();
    let freest = loads
        .iter()
        .enumerate()
        .min_by_key(|(index, load)| (**load, *index))
        .map_or(0, |(index, _)| index);
    ctx.settings
        .domains
        .get(freest)
        .or_else(|| ctx.listener_names.get(freest))
        .cloned()
        .unwrap_or_default()
}

fn status_json(ctx: &ControlContext<'_>) -> String {
    let listeners: Vec<serde_json::Value> = ctx
        .listener_names
        .iter()
        .zip(ctx.hub.per_listener())
        .enumerate()
        .map(|(index, (name, connections))| {
            serde_json::json!({
                "endpoint": name,
                "domain": ctx.settings.domains.get(index),
                "connections": connections,
            })
        })
        .collect();
    let stats = &ctx.stats;
    serde_json::json!({
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": ctx.now.saturating_duration_since(ctx.started).as_secs(),
        "connections": ctx.hub.len(),
        "listeners": listeners,
        "control_connections": ctx.control_connections,
        "messages_in": stats.messages_in,
        "messages_out": stats.messages_out,
        "bytes_in": stats.bytes_in,
        "bytes_out": stats.bytes_out,
        "control_frames": stats.control_frames,
        "connections_accepted": stats.connections_accepted,
        "handshakes_refused": stats.handshakes_refused,
        "protocol_errors": stats.protocol_errors,
        "slow_consumers_dropped": stats.slow_consumers_dropped,
    })
    .to_string()
}
