//! A connection's outbound queue: shared, pre-encoded frames written with `writev`.
//!
//! A broadcast frame is encoded once into an `Rc<[u8]>` and every recipient queues a
//! clone of the pointer, so fan-out costs a reference count per client, not a copy.
//! The queue counts its bytes so the hub can drop a slow consumer before memory grows.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

use crate::config::Compression;
use crate::server::stream::Stream;
use crate::ws::deflate::{self, Deflater, MAX_WINDOW_BITS, MIN_ZLIB_WINDOW_BITS};

/// How many queued frames one `writev` call may carry; Linux allows 1024 (IOV_MAX), and
/// 64 is plenty to coalesce a burst while keeping the slice array on the stack.
const MAX_IOVECS: usize = 64;

/// A connection's queue of bytes to write, as the socket loop sees it.
pub trait Outbound {
    fn is_empty(&self) -> bool;
    /// Writes as much as the stream takes; returns the bytes written and whether all of
    /// them went. With `short_write_fills`, a write that takes less than offered ends the
    /// attempt (the stream is full), saving the syscall that would only say `WouldBlock`.
    fn write_to(
        &mut self,
        stream: &mut Stream,
        short_write_fills: bool,
    ) -> io::Result<(usize, Flushed)>;
}

#[derive(Default)]
pub struct OutQueue {
    chunks: VecDeque<Rc<[u8]>>,
    /// Bytes of the first chunk already written.
    head_written: usize,
    /// Bytes still to write, across all chunks.
    pending: usize,
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued was written.
    All,
    /// The socket would block with bytes still queued: wait for writability.
    Blocked,
}

impl OutQueue {
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending
    }

    pub fn push(&mut self, chunk: Rc<[u8]>) {
        if chunk.is_empty() {
            return;
        }
        self.pending += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// Moves every chunk of a never-written queue behind this one's, in order.
    pub fn append(&mut self, mut other: OutQueue) {
        self.pending += other.pending;
        self.chunks.append(&mut other.chunks);
    }

    /// Heap bytes the queue's ring holds (not the shared frames), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Rc<[u8]>>()
    }

    /// Writes as much as `writer` takes. Returns the bytes written and whether all of them
    /// went; with `short_write_fills`, a short write means the writer is full. Errors other
    /// than `WouldBlock`/`Interrupted` are returned.
    pub fn flush_to<W: Write>(
        &mut self,
        writer: &mut W,
        short_write_fills: bool,
    ) -> io::Result<(usize, Flushed)> {
        let mut total = 0;
        while self.pending > 0 {
            let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            let mut offered = 0;
            for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                let bytes = if i == 0 {
                    chunk.get(self.head_written..).unwrap_or(&[])
                } else {
                    chunk
                };
                if let Some(slot) = slices.get_mut(count) {
                    *slot = IoSlice::new(bytes);
                    count += 1;
                    offered += bytes.len();
                }
            }
            let written = match writer.write_vectored(slices.get(..count).unwrap_or(&[])) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((total, Flushed::Blocked));
                }
                Err(e) => return Err(e),
            };
            total += written;
            self.consume(written);
            if written < offered && short_write_fills {
                return Ok((total, Flushed::Blocked));
            }
        }
        // An emptied ring that once held a burst gives its memory back; idle
        // connections are many and each should cost as little as possible.
        if self.chunks.capacity() > 16 {
            self.chunks = VecDeque::new();
        }
        Ok((total, Flushed::All))
    }

    fn consume(&mut self, mut written: usize) {
        self.pending -= written.min(self.pending);
        while written > 0 {
            let Some(head) = self.chunks.front() else {
                break;
            };
            let left = head.len() - self.head_written;
            if written >= left {
                written -= left;
                self.chunks.pop_front();
                self.head_written = 0;
            } else {
                self.head_written += written;
                written = 0;
            }
        }
    }

    /// Drops everything queued (the connection is going away).
    pub fn clear(&mut self) {
        self.chunks = VecDeque::new();
        self.head_written = 0;
        self.pending = 0;
    }
}

impl Outbound for OutQueue {
    fn is_empty(&self) -> bool {
        OutQueue::is_empty(self)
    }

    fn write_to(
        &mut self,
        stream: &mut Stream,
        short_write_fills: bool,
    ) -> io::Result<(usize, Flushed)> {
        self.flush_to(stream, short_write_fills)
    }
}

/// One unmasked server frame in a single shared allocation, ready to queue to any number
/// of clients (RFC 6455 §5.1: "A server MUST NOT mask any frames that it sends").
pub fn shared_frame(fin: bool, opcode: crate::ws::frame::OpCode, payload: &[u8]) -> Rc<[u8]> {
    let header = crate::ws::frame::encode_header(&crate::ws::frame::FrameHeader {
        fin,
        rsv1: false,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    });
    // A chain of slice iterators has an exact length, so this allocates once.
    header.iter().chain(payload.iter()).copied().collect()
}

/// A shared frame (or chunk of whole frames) for many clients, with its permessage-deflate
/// variants: each made once, lazily, the first time a client that negotiated deflate with
/// that window needs it, then shared by every such client as the plain bytes are by the
/// others. Messages under the threshold, or that deflate would not shorten, stay plain in
/// every variant; a chunk with nothing to compress serves its plain bytes to everyone.
pub struct Variants<'a> {
    plain: &'a Rc<[u8]>,
    /// By server window bits 9..=15.
    deflated: [Option<Rc<[u8]>>; 7],
}

impl<'a> Variants<'a> {
    pub fn new(plain: &'a Rc<[u8]>) -> Variants<'a> {
        Variants {
            plain,
            deflated: Default::default(),
        }
    }

    pub fn plain(&self) -> &'a Rc<[u8]> {
        self.plain
    }

    /// The bytes for a client: plain without deflate (`window` is `None`, or compression
    /// is off now), else the variant for its window, compressed on first use.
    #[inline(always)]
    pub fn for_client(
        &mut self,
        window: Option<u8>,
        deflater: &mut Deflater,
        compression: &Compression,
    ) -> &Rc<[u8]> {
        match window {
            Some(bits) if compression.enabled => self.deflated(bits, deflater, compression),
            Some(_) | None => self.plain,
        }
    }

    fn deflated(
        &mut self,
        bits: u8,
        deflater: &mut Deflater,
        compression: &Compression,
    ) -> &Rc<[u8]> {
        let index =
            usize::from(bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS) - MIN_ZLIB_WINDOW_BITS);
        let Some(slot) = self.deflated.get_mut(index) else {
            return self.plain;
        };
        slot.get_or_insert_with(|| {
            let settings = deflate::Settings {
                level: compression.level,
                threshold: compression.threshold,
            };
            match deflater.deflate_frames(self.plain, bits, settings) {
                Some(frames) => Rc::from(frames),
                None => self.plain.clone(),
            }
        })
    }
}

/// Who a batch of frames is for: every client, or a topic's subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFor<'a> {
    Everyone,
    Topic(&'a str),
}

/// Messages for the same audience that arrive together (broadcasts, or publications to one
/// topic, one after the other), encoded back to back into one buffer and queued to each
/// recipient as one shared chunk.
///
/// A backend pipelining 32 broadcasts would otherwise cost each of 10,000 clients 32
/// queue entries, 32 iovecs and a few ring reallocations per flush; as one chunk it costs
/// one of each, and the bytes on the wire are the same. The buffer is reused, and a
/// message too large to share it is left to `shared_frame`.
#[derive(Default)]
pub struct FrameBatch {
    bytes: Vec<u8>,
    messages: usize,
    /// The topic of the batched frames, when `for_topic` (kept allocated between batches).
    topic: String,
    for_topic: bool,
}

impl FrameBatch {
    /// The most one batch holds: large enough to carry a burst of small messages in one
    /// chunk, small enough that the copy into it stays cheap next to the fan-out.
    pub const MAX_BYTES: usize = 64 * 1024;

    /// True when a frame carrying `payload_len` bytes for `audience` can join the batch:
    /// the batch is empty or for the same audience, and there is room.
    pub fn accepts(&self, audience: BatchFor<'_>, payload_len: usize) -> bool {
        let same = self.messages == 0 || self.audience() == audience;
        same && self.bytes.len().saturating_add(frame_len(payload_len)) <= Self::MAX_BYTES
    }

    fn audience(&self) -> BatchFor<'_> {
        if self.for_topic {
            BatchFor::Topic(&self.topic)
        } else {
            BatchFor::Everyone
        }
    }

    /// Appends one unmasked, final data frame for `audience`. The caller checks `accepts`
    /// first: the audience of a batch is the one of its first frame.
    pub fn push(
        &mut self,
        audience: BatchFor<'_>,
        opcode: crate::ws::frame::OpCode,
        payload: &[u8],
    ) {
        if self.messages == 0 {
            self.topic.clear();
            self.for_topic = match audience {
                BatchFor::Everyone => false,
                BatchFor::Topic(topic) => {
                    self.topic.push_str(topic);
                    true
                }
            };
        }
        let header = crate::ws::frame::encode_header(&crate::ws::frame::FrameHeader {
            fin: true,
            rsv1: false,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        });
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(payload);
        self.messages += 1;
    }

    /// The batched frames, how many messages they carry and for whom, handed to `send`
    /// (which shares them, or stages them per topic); nothing when nothing is batched. The
    /// batch is empty afterwards and keeps its buffers.
    pub fn send(&mut self, send: impl FnOnce(BatchFor<'_>, &[u8], usize)) {
        if self.messages == 0 {
            return;
        }
        let messages = self.messages;
        self.messages = 0;
        let audience = if self.for_topic {
            BatchFor::Topic(&self.topic)
        } else {
            BatchFor::Everyone
        };
        send(audience, &self.bytes, messages);
        self.bytes.clear();
    }
}

/// Bytes of an unmasked frame carrying `payload_len` bytes (RFC 6455 §5.2 header sizes).
fn frame_len(payload_len: usize) -> usize {
    let header = match payload_len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    payload_len.saturating_add(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that accepts at most `limit` bytes per call, then would block once.
    struct Trickle {
        written: Vec<u8>,
        limit: usize,
        calls: usize,
        block_after: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls > self.block_after {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for buf in bufs {
                for byte in buf.iter() {
                    if n == self.limit {
                        return Ok(n);
                    }
                    self.written.push(*byte);
                    n += 1;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_resume_mid_chunk_in_order() {
        let mut queue = OutQueue::default();
        let shared: Rc<[u8]> = Rc::from(&b"hello"[..]);
        queue.push(shared.clone());
        queue.push(Rc::from(&b" world"[..]));
        queue.push(shared);
        let mut out = Trickle {
            written: Vec::new(),
            limit: 3,
            calls: 0,
            block_after: usize::MAX,
        };
        while !queue.is_empty() {
            let (_, state) = queue.flush_to(&mut out, true).unwrap();
            if state == Flushed::All {
                break;
            }
            out.calls = 0;
        }
        assert_eq!(out.written, b"hello worldhello");
        assert_eq!(queue.pending_bytes(), 0);
    }

    #[test]
    fn would_block_keeps_bytes_queued() {
        let mut queue = OutQueue::default();
        queue.push(Rc::from(&b"abcdef"[..]));
        let mut out = Trickle {
            written: Vec::new(),
            limit: 100,
            calls: 0,
            block_after: 0,
        };
        assert_eq!(
            queue.flush_to(&mut out, true).unwrap(),
            (0, Flushed::Blocked)
        );
        assert_eq!(queue.pending_bytes(), 6);
    }
    /// What a batch sends: audience, bytes, messages.
    fn sent(batch: &mut FrameBatch) -> Option<(String, Vec<u8>, usize)> {
        let mut sent = None;
        batch.send(|audience, chunk, messages| {
            let audience = match audience {
                BatchFor::Everyone => "*".to_owned(),
                BatchFor::Topic(topic) => topic.to_owned(),
            };
            sent = Some((audience, chunk.to_vec(), messages));
        });
        sent
    }

    #[test]
    fn a_batch_is_the_frames_back_to_back() {
        use crate::ws::frame::OpCode;
        let mut batch = FrameBatch::default();
        assert!(sent(&mut batch).is_none());
        batch.push(BatchFor::Everyone, OpCode::Text, b"hi");
        batch.push(BatchFor::Everyone, OpCode::Binary, &[7u8; 126]);
        let (audience, chunk, messages) = sent(&mut batch).unwrap();
        assert_eq!((audience.as_str(), messages), ("*", 2));
        let mut expected = shared_frame(true, OpCode::Text, b"hi").to_vec();
        expected.extend_from_slice(&shared_frame(true, OpCode::Binary, &[7u8; 126]));
        assert_eq!(&chunk[..], &expected[..]);
        assert!(sent(&mut batch).is_none(), "sending empties the batch");
    }

    #[test]
    fn a_batch_holds_one_audience() {
        use crate::ws::frame::OpCode;
        let mut batch = FrameBatch::default();
        assert!(batch.accepts(BatchFor::Topic("a"), 1));
        batch.push(BatchFor::Topic("a"), OpCode::Text, b"1");
        assert!(batch.accepts(BatchFor::Topic("a"), 1));
        assert!(!batch.accepts(BatchFor::Topic("b"), 1));
        assert!(!batch.accepts(BatchFor::Everyone, 1));
        let (audience, _, messages) = sent(&mut batch).unwrap();
        assert_eq!((audience.as_str(), messages), ("a", 1));
        assert!(batch.accepts(BatchFor::Everyone, 1));
        batch.push(BatchFor::Everyone, OpCode::Text, b"2");
        assert!(!batch.accepts(BatchFor::Topic("a"), 1));
    }

    #[test]
    fn frame_len_matches_the_encoder_at_every_length_boundary() {
        use crate::ws::frame::OpCode;
        for len in [0, 125, 126, 0xFFFF, 0x1_0000] {
            let payload = vec![0u8; len];
            assert_eq!(
                frame_len(len),
                shared_frame(true, OpCode::Binary, &payload).len()
            );
        }
    }

    #[test]
    fn room_is_counted_in_encoded_bytes() {
        use crate::ws::frame::OpCode;
        let mut batch = FrameBatch::default();
        let payload = vec![b'x'; 1000];
        let mut pushed = 0;
        while batch.accepts(BatchFor::Everyone, payload.len()) {
            batch.push(BatchFor::Everyone, OpCode::Text, &payload);
            pushed += 1;
        }
        // 1,000-byte payloads take a 4-byte header: 65,536 / 1,004 = 65 whole frames.
        assert_eq!(pushed, 65);
        let (_, chunk, messages) = sent(&mut batch).unwrap();
        assert_eq!((chunk.len(), messages), (65 * 1004, 65));
        assert!(chunk.len() <= FrameBatch::MAX_BYTES);
    }
}
