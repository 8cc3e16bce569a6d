//! Publications of one control connection's turn, staged per topic: each topic's frames go
//! to its members as one shared chunk when the turn is done (its reads, at most 16, are
//! executed), whatever the order of the topics in them.
//!
//! A backend pipelining publications to 100 topics in random order gives consecutive
//! publications different topics, so batching only consecutive ones (`FrameBatch`) left
//! each client one queue entry, one `Rc` and one iovec per publication. Staged per topic,
//! a client gets one per topic per turn, as a burst of broadcasts does.
//!
//! Order. A client must get a control connection's publications in the order they were
//! sent, and a chunk is delivered whole, so a client's pending publications must all sit in
//! one open chunk. Each client carries a mark, the serial of the chunk it has publications
//! pending in. When a topic opens a chunk, its members are checked: one marked with another
//! open chunk has publications pending there, so that chunk is delivered first; then every
//! member is marked with the new chunk. While a chunk is open its members stay marked with
//! it (a member that another topic's opening claimed had its chunk delivered first), so a
//! publication joining an open chunk needs no check: the members are walked once per
//! chunk, not per publication. Anything else that reaches clients (a broadcast, a direct
//! message, a subscription change, a publication kept in a history) first delivers every
//! open chunk (`Hub::seal_staged`), so membership does not change under an open chunk.
//!
//! Bounded: a chunk takes at most `FrameBatch::MAX_BYTES` (a larger publication goes out
//! at once, after its members' pending chunks), and everything staged is delivered at the
//! end of each turn, which reads at most 16 times the loop's 64 KiB buffer.

use super::delivery::{Among, Outgoing};
use super::*;
use crate::server::outbound::FrameBatch;

/// A topic's chunk being filled.
struct Open {
    serial: u32,
    topic: Rc<str>,
    bytes: Vec<u8>,
    messages: usize,
    /// Delivered already (conflicts deliver chunks out of serial order); its place stays
    /// so that `open` remains sorted by serial.
    delivered: bool,
}

#[derive(Default)]
pub(super) struct Staging {
    /// Chunks by increasing serial.
    open: Vec<Open>,
    /// The undelivered chunk of each topic: its index in `open`.
    by_topic: HashMap<Rc<str>, usize>,
    last_serial: u32,
    /// Buffers of delivered chunks, reused.
    spare: Vec<Vec<u8>>,
}

/// Buffers kept for reuse, and the largest kept: what an idle server holds for staging.
const MAX_SPARE: usize = 64;
const MAX_SPARE_BYTES: usize = 16 * 1024;

/// No chunk: the mark of a client with nothing staged.
pub(super) const UNMARKED: u32 = 0;

impl Staging {
    fn next_serial(&mut self) -> u32 {
        self.last_serial = self.last_serial.wrapping_add(1);
        if self.last_serial == UNMARKED {
            self.last_serial = 1;
        }
        self.last_serial
    }

    /// The index of the undelivered chunk with `serial`. A stale mark (a chunk delivered,
    /// or a serial from before the counter wrapped) names none, or at worst an unrelated
    /// open chunk, which is then delivered early: harmless.
    fn undelivered(&self, serial: u32) -> Option<usize> {
        let at = self
            .open
            .binary_search_by_key(&serial, |open| open.serial)
            .ok()?;
        (!self.open[at].delivered).then_some(at)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }
}

impl Hub {
    /// Stages `messages` whole frames for the members of `topic` (a topic without
    /// history: those are kept and sent as they come, `publish`).
    pub fn stage_publication(
        &mut self,
        topic: &str,
        frames: &[u8],
        messages: usize,
        settings: &Settings,
        stats: &mut Stats,
    ) {
        if let Some(&at) = self.staging.by_topic.get(topic) {
            let open = &mut self.staging.open[at];
            if open.bytes.len().saturating_add(frames.len()) <= FrameBatch::MAX_BYTES {
                open.bytes.extend_from_slice(frames);
                open.messages += messages;
                return;
            }
            // Full: out it goes, and a new chunk opens below (its members checked again,
            // which finds them all marked with the chunk just delivered).
            self.deliver_staged(at, settings, stats);
        }
        let Some(id) = self
            .topics
            .get(topic)
            .filter(|id| !self.topics.members(*id).is_empty())
        else {
            // Subscribed users all offline: nobody to stage for.
            return;
        };
        // Members with publications pending in another topic's chunk get that chunk first.
        let mut earlier: Vec<usize> = Vec::new();
        for key in self.topics.members(id) {
            let mark = self
                .clients
                .get(*key)
                .map_or(UNMARKED, |client| client.staged);
            if mark != UNMARKED
                && let Some(at) = self.staging.undelivered(mark)
                && !earlier.contains(&at)
            {
                earlier.push(at);
            }
        }
        // Their members are apart (a client's pending publications sit in one chunk), so
        // any order keeps each client's.
        for at in earlier {
            self.deliver_staged(at, settings, stats);
        }
        // Delivering may have dropped slow consumers, and with them a topic.
        let Some(id) = self.topics.get(topic) else {
            return;
        };
        if frames.len() > FrameBatch::MAX_BYTES {
            let shared: Rc<[u8]> = Rc::from(frames);
            let outgoing = Outgoing::Frames {
                frames: &shared,
                messages,
            };
            self.deliver_to(Among::Topic(id), outgoing, settings, stats);
            return;
        }
        let serial = self.staging.next_serial();
        let Hub {
            topics, clients, ..
        } = self;
        for key in topics.members(id) {
            if let Some(client) = clients.get_mut(*key) {
                client.staged = serial;
            }
        }
        let name = match topics.name(id) {
            Some(name) => Rc::clone(name),
            None => Rc::from(topic),
        };
        let mut bytes = self.staging.spare.pop().unwrap_or_default();
        bytes.extend_from_slice(frames);
        self.staging
            .by_topic
            .insert(Rc::clone(&name), self.staging.open.len());
        self.staging.open.push(Open {
            serial,
            topic: name,
            bytes,
            messages,
            delivered: false,
        });
    }

    /// Delivers every staged chunk; nothing is staged afterwards.
    pub fn seal_staged(&mut self, settings: &Settings, stats: &mut Stats) {
        if self.staging.is_empty() {
            self.staging.open.clear();
            return;
        }
        for at in 0..self.staging.open.len() {
            if !self.staging.open[at].delivered {
                self.deliver_staged(at, settings, stats);
            }
        }
        self.staging.open.clear();
        self.staging.by_topic.clear();
    }

    /// Delivers the chunk at `at` to its topic's members. Their marks are left: a mark
    /// naming a delivered chunk means nothing pending.
    fn deliver_staged(&mut self, at: usize, settings: &Settings, stats: &mut Stats) {
        let Some(open) = self.staging.open.get_mut(at) else {
            return;
        };
        open.delivered = true;
        let chunk: Rc<[u8]> = Rc::from(open.bytes.as_slice());
        let messages = open.messages;
        let topic = Rc::clone(&open.topic);
        let mut bytes = std::mem::take(&mut open.bytes);
        if self.staging.spare.len() < MAX_SPARE && bytes.capacity() <= MAX_SPARE_BYTES {
            bytes.clear();
            self.staging.spare.push(bytes);
        }
        self.staging.by_topic.remove(&topic);
        if let Some(id) = self.topics.get(&topic) {
            let outgoing = Outgoing::Frames {
                frames: &chunk,
                messages,
            };
            self.deliver_to(Among::Topic(id), outgoing, settings, stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_skip_the_unmarked_value_when_they_wrap() {
        let mut staging = Staging {
            last_serial: u32::MAX - 1,
            ..Staging::default()
        };
        assert_eq!(staging.next_serial(), u32::MAX);
        assert_eq!(staging.next_serial(), 1);
    }
}
