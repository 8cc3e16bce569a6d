//! The one socket I/O loop, shared by WebSocket clients and control connections.
//!
//! A `Socket` is a stream, its outbound queue and its sticky readiness: `readable` and
//! `writable` are set by events and cleared only when the stream says it has run dry or
//! full (edge-triggered readiness must be drained to `WouldBlock`, or to a short read or
//! write where the stream vouches for what that means). `drive` does all the I/O a
//! connection can do now, within a read budget, and hands every chunk read to the
//! connection's protocol; what the protocol wants (to read on, to stop) is asked each
//! time, never stored, so it cannot go stale.

use std::io::{self, Read};

use crate::server::outbound::{Flushed, Outbound};
use crate::server::stream::Stream;

pub struct Socket<Q> {
    stream: Stream,
    out: Q,
    readable: bool,
    writable: bool,
    /// Set by an event that reported the peer's EOF (or an error): from then on only
    /// `WouldBlock` or the EOF itself ends reading, because that EOF raises no new edge.
    read_closed: bool,
}

/// What one read did.
enum ReadOutcome {
    Data(usize),
    /// Nothing to read until the next edge.
    Dry,
    PeerClosed,
    Failed(io::Error),
}

/// Why the loop gave a connection up.
#[derive(Debug)]
pub enum Lost {
    PeerClosed,
    Io(io::Error),
}

/// What `drive` leaves for the caller.
pub enum Drive<E> {
    /// Waiting for readiness.
    Idle,
    /// More to read, but this connection had its share of the turn.
    OverBudget,
    /// The protocol stopped the loop: the connection is done, or something above it must
    /// decide before it goes on.
    Exit(E),
}

/// A connection's protocol, as the loop sees it.
pub trait Connection {
    type Queue: Outbound;
    /// What handling input may read or change besides the connection itself.
    type Ctx<'c>;
    type Exit;

    fn socket(&self) -> &Socket<Self::Queue>;
    fn socket_mut(&mut self) -> &mut Socket<Self::Queue>;
    /// Whether the protocol takes more input now.
    fn wants_read(&self) -> bool;
    /// After each chance to write (`written` bytes went out): a connection whose last bytes
    /// are written may be done.
    fn after_write(&mut self, written: usize, ctx: &mut Self::Ctx<'_>) -> Option<Self::Exit>;
    /// Bytes read from the stream.
    fn received(&mut self, bytes: &[u8], ctx: &mut Self::Ctx<'_>) -> Option<Self::Exit>;
    /// The stream ended or failed.
    fn lost(&mut self, lost: Lost) -> Self::Exit;
}

/// Writes what is queued, reads and hands over what arrived, until the socket is dry, the
/// budget of reads is spent, or the protocol stops.
pub fn drive<C: Connection>(
    conn: &mut C,
    scratch: &mut [u8],
    read_budget: usize,
    ctx: &mut C::Ctx<'_>,
) -> Drive<C::Exit> {
    let mut reads = 0;
    loop {
        let written = match conn.socket_mut().flush() {
            Ok(written) => written,
            Err(error) => return Drive::Exit(conn.lost(Lost::Io(error))),
        };
        if let Some(exit) = conn.after_write(written, ctx) {
            return Drive::Exit(exit);
        }
        // A TLS handshake reads whatever the protocol's phase: a refusal queued before it
        // (`max_connections`) goes out only once the handshake is through.
        let wants_read = conn.wants_read() || conn.socket().stream.is_handshaking();
        if !(conn.socket().readable && wants_read) {
            return Drive::Idle;
        }
        if reads == read_budget {
            return Drive::OverBudget;
        }
        reads += 1;
        match conn.socket_mut().read(scratch) {
            ReadOutcome::Data(len) => {
                let bytes = scratch.get(..len).unwrap_or(&[]);
                if let Some(exit) = conn.received(bytes, ctx) {
                    return Drive::Exit(exit);
                }
            }
            ReadOutcome::Dry => {}
            ReadOutcome::PeerClosed => return Drive::Exit(conn.lost(Lost::PeerClosed)),
            ReadOutcome::Failed(error) => return Drive::Exit(conn.lost(Lost::Io(error))),
        }
    }
}

impl<Q: Outbound> Socket<Q> {
    pub fn new(stream: Stream, out: Q) -> Socket<Q> {
        Socket {
            stream,
            out,
            readable: false,
            writable: false,
            read_closed: false,
        }
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    pub fn out(&self) -> &Q {
        &self.out
    }

    pub fn out_mut(&mut self) -> &mut Q {
        &mut self.out
    }

    /// The stream to look at and the queue to fill, borrowed together.
    pub fn parts_mut(&mut self) -> (&Stream, &mut Q) {
        (&self.stream, &mut self.out)
    }

    /// Records an event's readiness; bits only ever get set here.
    pub fn on_event(&mut self, readable: bool, writable: bool, read_closed: bool) {
        self.readable |= readable;
        self.writable |= writable;
        self.read_closed |= read_closed;
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// True once an event reported the peer's EOF (or an error).
    pub fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    fn read(&mut self, buf: &mut [u8]) -> ReadOutcome {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return ReadOutcome::PeerClosed,
                Ok(len) => {
                    // A short read drained the socket and anything arriving later raises a
                    // new edge, which saves the extra `read` that would only say
                    // `WouldBlock`. Not when the event announced the peer's EOF: it came
                    // with this data and raises no new edge, so read on until it shows.
                    if len < buf.len() && self.stream.short_read_drains() && !self.read_closed {
                        self.readable = false;
                    }
                    return ReadOutcome::Data(len);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return ReadOutcome::Dry;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return ReadOutcome::Failed(e),
            }
        }
    }

    /// True while bytes wait to be written: queued, or the stream's own (TLS records).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || self.stream.pending_output()
    }

    /// Writes as much of the queue as the stream takes now; returns the bytes of the queue
    /// written. The stream's own bytes go first, and go even when the queue is empty: a TLS
    /// handshake answers what was read, and a record left by a full socket precedes the rest.
    pub fn flush(&mut self) -> io::Result<usize> {
        if !self.writable {
            return Ok(0);
        }
        if self.stream.flush_pending()? == Flushed::Blocked {
            self.writable = false;
            return Ok(0);
        }
        if self.out.is_empty() || !self.stream.accepts_data() {
            return Ok(0);
        }
        let short_write_fills = self.stream.short_write_fills();
        let (written, state) = self.out.write_to(&mut self.stream, short_write_fills)?;
        let state = match state {
            // The records of the last bytes taken may still wait for the socket.
            Flushed::All => self.stream.flush_pending()?,
            Flushed::Blocked => Flushed::Blocked,
        };
        if state == Flushed::Blocked {
            self.writable = false;
        }
        Ok(written)
    }
}
