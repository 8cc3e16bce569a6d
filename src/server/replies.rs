//! A control connection's outbound bytes: replies in the order of the commands that asked
//! for them, and frames wson sends on its own (pings).
//!
//! The control protocol has no request ids, so order is the only way a backend matches a
//! reply to its command.

use std::io::{self, Write};

use crate::control::command::Reply;
use crate::server::outbound::{Flushed, Outbound};
use crate::server::stream::Stream;

/// Capacity an emptied buffer may keep for the next burst.
const KEEP_CAPACITY: usize = 4096;

#[derive(Default)]
pub struct ReplyQueue {
    /// Bytes to write, in order; the first `written` are gone.
    ready: Vec<u8>,
    written: usize,
}

impl ReplyQueue {
    pub fn push(&mut self, reply: &Reply) {
        reply.encode(&mut self.ready);
    }

    /// Bytes queued and not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.ready.len() - self.written
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
        let mut total = 0;
        let mut state = Flushed::All;
        while self.written < self.ready.len() {
            let pending = self.ready.get(self.written..).unwrap_or(&[]);
            match stream.write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    total += n;
                    if n < pending.len() && short_write_fills {
                        state = Flushed::Blocked;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    state = Flushed::Blocked;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.ready.len() {
            self.ready.clear();
            self.written = 0;
            if self.ready.capacity() > KEEP_CAPACITY {
                self.ready = Vec::new();
            }
        }
        Ok((total, state))
    }
}
