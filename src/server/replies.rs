//! A control connection's outbound bytes: replies in the order of the commands that asked
//! for them, and frames wson sends on its own (pings).
//!
//! The control protocol has no request ids, so order is the only way a backend matches a
//! reply to its command. A reply that is not known yet (a command answered `Later`) takes
//! its place as a waiting slot; the replies of the commands after it wait behind it, and
//! go out together once it is resolved. Frames wson sends on its own answer no command
//! and never wait.

use std::collections::VecDeque;
use std::io::{self, Write};

use crate::control::command::Reply;
use crate::server::commands::Ticket;
use crate::server::outbound::{Flushed, Outbound};
use crate::server::stream::Stream;

/// Capacity an emptied buffer may keep for the next burst.
const KEEP_CAPACITY: usize = 4096;

#[derive(Default)]
pub struct ReplyQueue {
    /// Bytes to write, in order; the first `written` are gone.
    ready: Vec<u8>,
    written: usize,
    /// Replies behind the first one not known yet, oldest first. Empty unless the oldest
    /// is `Waiting`.
    held: VecDeque<Held>,
}

enum Held {
    Waiting(Ticket),
    Known(Vec<u8>),
}

impl ReplyQueue {
    /// Queues the reply to the latest command, behind the replies to earlier ones.
    pub fn push(&mut self, reply: &Reply) {
        if self.held.is_empty() {
            reply.encode(&mut self.ready);
            return;
        }
        match self.held.back_mut() {
            Some(Held::Known(bytes)) => reply.encode(bytes),
            Some(Held::Waiting(_)) | None => {
                let mut bytes = Vec::new();
                reply.encode(&mut bytes);
                self.held.push_back(Held::Known(bytes));
            }
        }
    }

    /// Reserves the place of a reply that comes later.
    pub fn hold(&mut self, ticket: Ticket) {
        self.held.push_back(Held::Waiting(ticket));
    }

    /// Fills the place reserved for `ticket`; everything known from the front of the held
    /// replies becomes ready to write. A ticket that is not waiting is ignored.
    pub fn resolve(&mut self, ticket: Ticket, reply: &Reply) {
        let Some(slot) = self
            .held
            .iter_mut()
            .find(|held| matches!(held, Held::Waiting(waiting) if *waiting == ticket))
        else {
            return;
        };
        let mut bytes = Vec::new();
        reply.encode(&mut bytes);
        *slot = Held::Known(bytes);
        while let Some(Held::Known(_)) = self.held.front() {
            if let Some(Held::Known(bytes)) = self.held.pop_front() {
                self.ready.extend_from_slice(&bytes);
            }
        }
    }

    /// Queues a frame that answers no command (wson's ping); it never waits.
    pub fn push_unsolicited(&mut self, reply: &Reply) {
        reply.encode(&mut self.ready);
    }

    /// Queues an encoded frame that answers no command (an event); it never waits.
    pub fn push_bytes(&mut self, frame: &[u8]) {
        self.ready.extend_from_slice(frame);
    }

    /// Bytes queued and not yet written, held replies included.
    pub fn pending_bytes(&self) -> usize {
        let held: usize = self
            .held
            .iter()
            .map(|held| match held {
                Held::Known(bytes) => bytes.len(),
                Held::Waiting(_) => 0,
            })
            .sum();
        self.ready.len() - self.written + held
    }

    /// True when every reply, held ones included, is written.
    pub fn is_drained(&self) -> bool {
        self.written == self.ready.len() && self.held.is_empty()
    }
}

impl Outbound for ReplyQueue {
    fn is_empty(&self) -> bool {
        self.written == self.ready.len()
    }

    fn write_to(
        &mut self,
        stream: &mut Stream,
        short_write_fills: bool,
    ) -> io::Result<(usize, Flushed)> {
        let written = write_ready(&self.ready, &mut self.written, stream, short_write_fills);
        if self.written == self.ready.len() {
            self.ready.clear();
            self.written = 0;
            if self.ready.capacity() > KEEP_CAPACITY {
                self.ready = Vec::new();
            }
        }
        written
    }
}

fn write_ready<W: Write>(
    ready: &[u8],
    written: &mut usize,
    writer: &mut W,
    short_write_fills: bool,
) -> io::Result<(usize, Flushed)> {
    let mut total = 0;
    while *written < ready.len() {
        let pending = ready.get(*written..).unwrap_or(&[]);
        match writer.write(pending) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *written += n;
                total += n;
                if n < pending.len() && short_write_fills {
                    return Ok((total, Flushed::Blocked));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok((total, Flushed::Blocked));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((total, Flushed::All))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(queue: &ReplyQueue) -> &[u8] {
        &queue.ready[queue.written..]
    }

    #[test]
    fn replies_keep_the_order_of_their_commands() {
        let mut queue = ReplyQueue::default();
        queue.push(&Reply::Pong);
        queue.push(&Reply::FragmentAck);
        assert_eq!(ready(&queue), b"0P0a");
        assert!(!queue.is_drained());
    }

    #[test]
    fn a_reply_that_comes_later_holds_the_ones_behind_it() {
        let mut queue = ReplyQueue::default();
        queue.push(&Reply::Pong);
        queue.hold(Ticket(7));
        queue.push(&Reply::FragmentAck);
        queue.hold(Ticket(8));
        queue.push(&Reply::FragmentNack);
        assert_eq!(ready(&queue), b"0P");
        assert_eq!(queue.pending_bytes(), 6);
        // The second late reply is known first: it still waits for the first.
        queue.resolve(Ticket(8), &Reply::Domain("b".into()));
        assert_eq!(ready(&queue), b"0P");
        queue.resolve(Ticket(7), &Reply::Domain("a".into()));
        assert_eq!(ready(&queue), b"0P1Ma0a1Mb0n");
        assert!(queue.held.is_empty());
    }

    #[test]
    fn unsolicited_frames_never_wait() {
        let mut queue = ReplyQueue::default();
        queue.hold(Ticket(1));
        queue.push(&Reply::Pong);
        queue.push_unsolicited(&Reply::Ping);
        assert_eq!(ready(&queue), b"0p");
        queue.resolve(Ticket(1), &Reply::FragmentAck);
        assert_eq!(ready(&queue), b"0p0a0P");
    }

    #[test]
    fn an_unknown_ticket_changes_nothing() {
        let mut queue = ReplyQueue::default();
        queue.hold(Ticket(1));
        queue.resolve(Ticket(2), &Reply::Pong);
        assert_eq!(ready(&queue), b"");
        assert!(!queue.is_drained());
    }

    #[test]
    fn writing_resumes_where_a_short_write_stopped() {
        struct Two(Vec<u8>);
        impl Write for Two {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(2);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let bytes = b"0P0a0n";
        let mut written = 0;
        let mut out = Two(Vec::new());
        assert_eq!(
            write_ready(bytes, &mut written, &mut out, true).unwrap(),
            (2, Flushed::Blocked)
        );
        assert_eq!(
            write_ready(bytes, &mut written, &mut out, false).unwrap(),
            (4, Flushed::All)
        );
        assert_eq!(out.0, bytes);
    }
}
