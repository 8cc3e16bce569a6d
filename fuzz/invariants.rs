//! What every fuzz target checks, one public function per target, each taking the raw fuzz
//! input and panicking when an invariant breaks.
//!
//! This file is the library of the `wson-fuzz` crate (the targets in `fuzz_targets/` are
//! one-line calls into it) and is also compiled into the main package's test binary by
//! `tests/corpus.rs`, which replays every file of `fuzz/corpus/<target>/` through the same
//! function under stable `cargo test`. So it depends only on `wson` and on crates `wson`
//! itself depends on, and it reads everything it needs (limits, chunk sizes, frames) from the
//! input bytes with the small `Source` reader below, never from `arbitrary`: a corpus file
//! means the same thing to the fuzzer and to the test.
//!
//! The checks go beyond "does not panic": where the bytes are split never changes what is
//! decoded, what decodes re-encodes to the same bytes, errors map to what the peer is told,
//! memory follows the bytes received rather than declared lengths, and no error or debug
//! output carries a credential.

use std::path::Path;

use wson::auth::{self, AuthError, Digest, Identity};
use wson::config::{self, AuthMode, AuthorizerFallback, Config, Secret};
use wson::control::authorizer::{self, AuthRequest, Decision};
use wson::control::codec::{
    self, ControlError, MAX_CURSOR_LEN, MAX_GROUP_LEN, MAX_LENGTH_DIGITS, MAX_REASON_LEN, RawFrame,
};
use wson::control::command::{self, Command, Page, PageRequest, Reply, Target};
use wson::control::event::{self as control_event, EventKinds};
use wson::control::fields::{self, Fields};
use wson::control::topic::{self, Topic};
use wson::decoded::Decoded;
use wson::token::Token;
use wson::wamp::{self, DecodeError, MAX_DEPTH, Serializer};
use wson::ws::deflate;
use wson::ws::frame::{self, FrameError, FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode};
use wson::ws::handshake::{self, HandshakeError, Request};
use wson::ws::message::{self, CloseFrame, Event, MessageDecoder, MessageKind, ProtocolError};

// ---------------------------------------------------------------------------------------------
// Reading parameters from the input
// ---------------------------------------------------------------------------------------------

/// Reads parameters off the front of a fuzz input; past the end every read gives zeros, so
/// any input (even an empty one) means something.
struct Source<'a> {
    bytes: &'a [u8],
}

impl<'a> Source<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Source { bytes }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.bytes {
            [first, rest @ ..] => {
                self.bytes = rest;
                *first
            }
            [] => 0,
        }
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        for slot in &mut out {
            *slot = self.byte();
        }
        out
    }

    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }

    /// Up to `len` bytes (fewer when the input runs out).
    fn take(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.bytes.split_at(len.min(self.bytes.len()));
        self.bytes = rest;
        taken
    }

    fn rest(&mut self) -> &'a [u8] {
        self.take(self.bytes.len())
    }
}

/// A xorshift generator for chunk sizes: deterministic, so a corpus file always replays the
/// same chunking.
struct Rng(u64);

impl Rng {
    fn new(seed: u8, salt: usize) -> Self {
        // Never zero, which would stick.
        Rng((0x9E37_79B9_7F4A_7C15 ^ (u64::from(seed) << 32) ^ salt as u64) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// Inputs up to this long are also fed one byte at a time; longer ones (the 64 KiB frames
/// `ws_message` can build) only in pieces, which keeps the targets fast.
const MAX_BYTEWISE: usize = 8192;

/// Ways to cut `input` into reads, all checked against reading it whole: in two at a point
/// chosen by `seed` (in the first 256 bytes) and at the same fraction of the input, one byte at
/// a time (up to `MAX_BYTEWISE` bytes), and in pseudo-random pieces of 1 to 64 bytes.
fn chunkings(input: &[u8], seed: u8) -> Vec<Vec<&[u8]>> {
    let len = input.len();
    let near = usize::from(seed) % (len + 1);
    let fraction = usize::from(seed) * (len + 1) / 256;
    let mut ways = Vec::new();
    for cut in [near, fraction] {
        let (head, tail) = input.split_at(cut);
        ways.push(vec![head, tail]);
    }
    if len <= MAX_BYTEWISE {
        ways.push(input.chunks(1).collect());
    }
    let mut rng = Rng::new(seed, len);
    let max_piece = 1 + rng.below(64);
    let mut pieces = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at((1 + rng.below(max_piece)).min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    ways.push(pieces);
    ways
}

/// A chunking, short enough for a failure message: the number of reads and the first sizes.
fn describe(chunks: &[&[u8]]) -> String {
    let sizes: Vec<usize> = chunks.iter().take(12).map(|chunk| chunk.len()).collect();
    let more = if chunks.len() > sizes.len() {
        ", .."
    } else {
        ""
    };
    format!("{} reads of {sizes:?}{more}", chunks.len())
}

/// One printable line: what a log line or an error reply may carry.
fn assert_one_printable_line(text: &str, what: &str) {
    assert!(
        !text.chars().any(char::is_control),
        "{what} is not one printable line: {text:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// ws_frame and ws_message: RFC 6455 frames and the message decoder
// ---------------------------------------------------------------------------------------------

/// `max_payload` / `max_message_size` values a frame input can pick with its second byte:
/// around every length-encoding boundary, a realistic limit, and none at all.
const FRAME_LIMITS: [u64; 8] = [0, 1, 125, 126, 65_535, 65_536, 1 << 20, u64::MAX];

/// Arbitrary bytes as client frames. Input: `[seed, limit, bytes @ ..]`; `seed` picks the
/// chunkings, `limit` indexes `FRAME_LIMITS`.
///
/// - `decode_header` never panics, decides by `MAX_HEADER_LEN` bytes, and where a header
///   decodes, `encode_header` gives back exactly the bytes it was decoded from (reserved bits
///   are refused and lengths must be minimal, so the encoding is unique); every prefix of a
///   header is `Incomplete` or the same result.
/// - Walking the frames the headers describe, masking resumes at any offset.
/// - `MessageDecoder` gives the same events and the same error whatever the chunking, and the
///   run itself checks each event and error (see `run_decoder`).
pub fn ws_frame(data: &[u8]) {
    let [seed, limit, input @ ..] = data else {
        return;
    };
    let max = FRAME_LIMITS[usize::from(*limit) % FRAME_LIMITS.len()];

    let mut at = 0;
    while let Some(rest) = input.get(at..).filter(|rest| !rest.is_empty()) {
        let Some((header, header_len)) = check_header(rest, max) else {
            break;
        };
        let payload_end = usize::try_from(header.payload_len)
            .ok()
            .and_then(|payload_len| header_len.checked_add(payload_len));
        let Some(payload) = payload_end.and_then(|end| rest.get(header_len..end)) else {
            break;
        };
        if let Some(mask) = header.mask {
            check_masking(payload, mask, usize::from(*seed));
        }
        at += header_len + payload.len();
    }

    let whole = run_decoder(&[input], max);
    for chunks in chunkings(input, *seed) {
        assert_eq!(
            run_decoder(&chunks, max),
            whole,
            "chunked as {}",
            describe(&chunks)
        );
    }
}

/// Checks `decode_header` on `buf` and on its prefixes; returns the header if one decoded.
fn check_header(buf: &[u8], max: u64) -> Option<(FrameHeader, usize)> {
    let result = frame::decode_header(buf, max);
    for cut in 0..buf.len().min(MAX_HEADER_LEN + 1) {
        let prefix = frame::decode_header(&buf[..cut], max);
        assert!(
            prefix == Ok(Decoded::Incomplete) || prefix == result,
            "prefix {cut} of {buf:02x?} gave {prefix:?}, the whole {result:?}"
        );
    }
    match result {
        Ok(Decoded::Done { item, len }) => {
            assert!(len <= buf.len() && len <= MAX_HEADER_LEN);
            assert_eq!(len, item.encoded_len(), "{item:?}");
            assert_eq!(
                &*frame::encode_header(&item),
                &buf[..len],
                "{item:?} does not re-encode to the bytes it came from"
            );
            assert!(item.payload_len < 1 << 63);
            if item.opcode.is_control() {
                assert!(item.fin && item.payload_len <= MAX_CONTROL_PAYLOAD as u64);
            } else {
                assert!(item.payload_len <= max);
            }
            Some((item, len))
        }
        Ok(Decoded::Incomplete) => {
            assert!(
                buf.len() < MAX_HEADER_LEN,
                "{MAX_HEADER_LEN} bytes always decide a header: {buf:02x?}"
            );
            None
        }
        Err(error) => {
            check_frame_error(&error, max);
            None
        }
    }
}

fn check_frame_error(error: &FrameError, max: u64) {
    assert_one_printable_line(&error.to_string(), "FrameError");
    match *error {
        FrameError::ControlTooLong { opcode, len } => {
            assert!(opcode.is_control() && len > MAX_CONTROL_PAYLOAD as u64);
        }
        FrameError::FragmentedControl { opcode } => assert!(opcode.is_control()),
        FrameError::Oversize { len, max: reported } => assert!(reported == max && len > max),
        FrameError::NonMinimalLength { len } => assert!(len <= 0xFFFF),
        FrameError::ReservedBits { byte } => assert_ne!(byte & 0x70, 0),
        FrameError::ReservedOpcode { nibble } => assert!(OpCode::from_nibble(nibble).is_none()),
        FrameError::LengthTopBit => {}
    }
}

/// Unmasking in two pieces (at `cut`) equals unmasking whole, and twice is the identity.
fn check_masking(payload: &[u8], mask: [u8; 4], cut: usize) {
    let mut whole = payload.to_vec();
    frame::apply_mask(&mut whole, mask, 0);
    for (index, (masked, plain)) in payload.iter().zip(&whole).enumerate() {
        assert_eq!(masked ^ mask[index % 4], *plain);
    }
    let mut pieces = payload.to_vec();
    let (head, tail) = pieces.split_at_mut(cut.min(payload.len()));
    let head_len = head.len();
    frame::apply_mask(head, mask, 0);
    frame::apply_mask(tail, mask, head_len);
    assert_eq!(pieces, whole);
    frame::apply_mask(&mut pieces, mask, 0);
    assert_eq!(pieces, payload);
}

/// An event copied out of the decoder, so runs can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Message(MessageKind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

/// What a decoder made of a stream: its events, then the error that failed it or, without
/// one, whether it ended idle (between frames, no fragmented message open).
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Owned>,
    end: Result<bool, ProtocolError>,
}

/// Feeds `chunks` in order as the server's read loop does, checking on the way:
/// - a call that returns no event has consumed all it was given (the loop always progresses);
/// - each event is valid: text is UTF-8, a message is within the limit, control payloads are
///   at most 125 bytes, a Close code may be sent on the wire;
/// - the decoder's heap is at most the limit and at most twice the bytes fed, whatever
///   length a header declared;
/// - an error maps to 1002, 1007 or 1009 and poisons the decoder (the same error again).
fn run_decoder(chunks: &[&[u8]], max: u64) -> Outcome {
    let mut decoder = MessageDecoder::new(max);
    let mut events = Vec::new();
    let mut fed: usize = 0;
    for chunk in chunks {
        let mut rest: &[u8] = chunk;
        while !rest.is_empty() {
            match decoder.feed(rest) {
                Ok((used, event)) => {
                    assert!(used <= rest.len(), "consumed {used} of {}", rest.len());
                    assert!(used > 0, "no progress on {} bytes", rest.len());
                    let event = event.map(|event| own(event, max));
                    assert!(
                        event.is_some() || used == rest.len(),
                        "returned after {used} of {} bytes without an event",
                        rest.len()
                    );
                    events.extend(event);
                    fed += used;
                    rest = &rest[used..];
                    let heap = decoder.heap_bytes() as u64;
                    assert!(heap <= max, "{heap} bytes of heap over the limit {max}");
                    assert!(
                        heap <= 2 * fed as u64,
                        "{heap} bytes of heap after {fed} bytes received"
                    );
                }
                Err(error) => {
                    assert!(
                        matches!(error.close_code(), 1002 | 1007 | 1009),
                        "{error:?} closes with {}",
                        error.close_code()
                    );
                    assert_one_printable_line(&error.to_string(), "ProtocolError");
                    if let ProtocolError::Frame(frame_error) = &error {
                        check_frame_error(frame_error, max);
                    }
                    assert_eq!(
                        decoder.feed(b"\x81\x80\0\0\0\0"),
                        Err(error),
                        "not poisoned"
                    );
                    return Outcome {
                        events,
                        end: Err(error),
                    };
                }
            }
        }
    }
    Outcome {
        events,
        end: Ok(decoder.is_idle()),
    }
}

fn own(event: Event<'_>, max: u64) -> Owned {
    match event {
        Event::Message { kind, payload } => {
            assert!(payload.len() as u64 <= max);
            if kind == MessageKind::Text {
                assert!(std::str::from_utf8(payload).is_ok(), "text is not UTF-8");
            }
            Owned::Message(kind, payload.to_vec())
        }
        Event::Ping(payload) => {
            assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
            Owned::Ping(payload.to_vec())
        }
        Event::Pong(payload) => {
            assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
            Owned::Pong(payload.to_vec())
        }
        Event::Close(CloseFrame::Empty) => Owned::Close(None),
        Event::Close(CloseFrame::WithCode { code, reason }) => {
            assert!(message::is_valid_close_code(code), "close code {code}");
            assert!(2 + reason.len() <= MAX_CONTROL_PAYLOAD);
            Owned::Close(Some((code, reason.to_owned())))
        }
    }
}

/// One frame a client might send, valid at the header level unless its description says
/// otherwise (a control frame too long or with FIN clear, an unmasked frame).
#[derive(Debug)]
struct FrameSpec {
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

/// Payload lengths a frame can ask for with a length byte of 0xF0 or more, filled with one
/// repeated byte: each length-encoding boundary and a few larger sizes.
const SPECIAL_LENGTHS: [usize; 16] = [
    0, 1, 2, 124, 125, 126, 127, 128, 1000, 4096, 65_535, 65_536, 65_537, 70_000, 3, 4,
];

/// Opcodes a frame description picks from; text and continuation come up twice as often as
/// the rest because fragmentation is where the rules are.
const SPEC_OPCODES: [OpCode; 8] = [
    OpCode::Continuation,
    OpCode::Text,
    OpCode::Binary,
    OpCode::Close,
    OpCode::Ping,
    OpCode::Pong,
    OpCode::Text,
    OpCode::Continuation,
];

impl FrameSpec {
    /// Reads `[flags, mask * 4, length, payload..]`: flags bits 0-2 pick the opcode, bit 3 is
    /// FIN, bits 4-6 all set mean unmasked; a length below 0xF0 takes that many payload bytes
    /// from the input, a larger one a `SPECIAL_LENGTHS` payload of a repeated byte.
    fn read(source: &mut Source<'_>) -> FrameSpec {
        let flags = source.byte();
        let opcode = SPEC_OPCODES[usize::from(flags & 0x07)];
        let fin = flags & 0x08 != 0;
        let mask: [u8; 4] = source.array();
        let mask = (flags & 0x70 != 0x70).then_some(mask);
        let length = source.byte();
        let payload = if length < 0xF0 {
            source.take(usize::from(length)).to_vec()
        } else {
            let fill = source.byte();
            vec![fill; SPECIAL_LENGTHS[usize::from(length & 0x0F)]]
        };
        FrameSpec {
            fin,
            opcode,
            mask,
            payload,
        }
    }

    /// `text+fin+masked:5`, for failure messages (payloads can be 64 KiB).
    fn summary(&self) -> String {
        let fin = if self.fin { "+fin" } else { "" };
        let masked = if self.mask.is_some() { "+masked" } else { "" };
        format!("{}{fin}{masked}:{}", self.opcode, self.payload.len())
    }

    fn encode(&self) -> Vec<u8> {
        match self.mask {
            Some(mask) => frame::encode_masked_frame(self.fin, self.opcode, &self.payload, mask),
            None => frame::encode_frame(self.fin, self.opcode, &self.payload),
        }
    }
}

/// Most bytes of frames one `ws_message` input may describe, so each run stays fast.
const MAX_MESSAGE_INPUT: usize = 140_000;

/// Well-formed frames, encoded by `encode_masked_frame`, in random chunkings. Input:
/// `[seed, limit, frame descriptions..]` (see `FrameSpec::read`).
///
/// The decoder's outcome must equal, for every chunking, what `model` (a plain reading of RFC
/// 6455 §5.4-§5.6 and §7.4 over whole frames) says: the same messages, pings, pongs and
/// closes, the same error at the same frame, and an idle decoder exactly when no fragmented
/// message is left open.
pub fn ws_message(data: &[u8]) {
    let [seed, limit, descriptions @ ..] = data else {
        return;
    };
    let max = FRAME_LIMITS[usize::from(*limit) % FRAME_LIMITS.len()];
    let mut source = Source::new(descriptions);
    let mut frames = Vec::new();
    let mut input = Vec::new();
    while !source.is_empty() && input.len() < MAX_MESSAGE_INPUT {
        let spec = FrameSpec::read(&mut source);
        input.extend(spec.encode());
        frames.push(spec);
    }
    let expected = model(&frames, max);
    let summary: Vec<String> = frames.iter().map(FrameSpec::summary).collect();
    assert_eq!(
        run_decoder(&[&input], max),
        expected,
        "frames {}",
        summary.join(" ")
    );
    for chunks in chunkings(&input, *seed) {
        assert_eq!(
            run_decoder(&chunks, max),
            expected,
            "chunked as {}",
            describe(&chunks)
        );
    }
}

/// The reference: what a server must make of these frames, rule by rule, in the order the
/// decoder checks them (header bits and lengths, masking, then message rules).
fn model(frames: &[FrameSpec], max: u64) -> Outcome {
    let mut events = Vec::new();
    let mut open: Option<(MessageKind, Vec<u8>)> = None;
    let fail = |events: Vec<Owned>, error: ProtocolError| Outcome {
        events,
        end: Err(error),
    };
    for spec in frames {
        let opcode = spec.opcode;
        let len = spec.payload.len() as u64;
        // RFC 6455 §5.5: control frames are at most 125 bytes and never fragmented (checked
        // on the header: FIN first, then the length code); §10.4: data frames within the
        // limit.
        if opcode.is_control() {
            if !spec.fin {
                return fail(
                    events,
                    ProtocolError::Frame(FrameError::FragmentedControl { opcode }),
                );
            }
            if len > MAX_CONTROL_PAYLOAD as u64 {
                let len = if len <= 0xFFFF { 126 } else { 0x1_0000 };
                return fail(
                    events,
                    ProtocolError::Frame(FrameError::ControlTooLong { opcode, len }),
                );
            }
        } else if len > max {
            return fail(
                events,
                ProtocolError::Frame(FrameError::Oversize { len, max }),
            );
        }
        // RFC 6455 §5.1: client frames are masked.
        if spec.mask.is_none() {
            return fail(events, ProtocolError::Unmasked);
        }
        let payload = spec.payload.clone();
        match opcode {
            OpCode::Ping => events.push(Owned::Ping(payload)),
            OpCode::Pong => events.push(Owned::Pong(payload)),
            OpCode::Close => match payload.as_slice() {
                [] => events.push(Owned::Close(None)),
                [_] => return fail(events, ProtocolError::CloseOneByte),
                [hi, lo, reason @ ..] => {
                    let code = u16::from_be_bytes([*hi, *lo]);
                    if !message::is_valid_close_code(code) {
                        return fail(events, ProtocolError::InvalidCloseCode { code });
                    }
                    let Ok(reason) = std::str::from_utf8(reason) else {
                        return fail(events, ProtocolError::CloseReasonUtf8);
                    };
                    events.push(Owned::Close(Some((code, reason.to_owned()))));
                }
            },
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                let kind = match opcode {
                    OpCode::Text => Some(MessageKind::Text),
                    OpCode::Binary => Some(MessageKind::Binary),
                    _ => None,
                };
                // RFC 6455 §5.4: a continuation continues an open message; a new message
                // waits until the open one has ended.
                match (kind, &open) {
                    (None, None) => return fail(events, ProtocolError::UnexpectedContinuation),
                    (Some(_), Some(_)) => {
                        return fail(events, ProtocolError::ExpectedContinuation { opcode });
                    }
                    (Some(kind), None) => open = Some((kind, Vec::new())),
                    (None, Some(_)) => {}
                }
                let Some((kind, bytes)) = &mut open else {
                    unreachable!("a message is open here");
                };
                let total = bytes.len() as u64 + len;
                if total > max {
                    return fail(events, ProtocolError::MessageTooBig { len: total, max });
                }
                bytes.extend_from_slice(&payload);
                // RFC 6455 §8.1: invalid UTF-8 fails at once; §5.6: the whole message is valid
                // UTF-8, so an unfinished code point at FIN fails too.
                if *kind == MessageKind::Text
                    && let Err(error) = std::str::from_utf8(bytes)
                    && (error.error_len().is_some() || spec.fin)
                {
                    let offset = error.valid_up_to() as u64;
                    return fail(events, ProtocolError::InvalidUtf8 { offset });
                }
                if spec.fin
                    && let Some((kind, bytes)) = open.take()
                {
                    events.push(Owned::Message(kind, bytes));
                }
            }
        }
    }
    Outcome {
        events,
        end: Ok(open.is_none()),
    }
}

// ---------------------------------------------------------------------------------------------
// ws_handshake: the opening handshake
// ---------------------------------------------------------------------------------------------

/// `max_handshake_size`'s default.
const HANDSHAKE_MAX: usize = 8192;

/// Arbitrary bytes as the start of a connection, the whole input being what arrived.
///
/// - A complete head: every strict prefix is `Incomplete`, the head alone gives the same
///   `Request` and length (later bytes stay with the caller), a limit of exactly its length
///   accepts it and one byte less is `TooLarge`; the request's key is valid and the 101
///   response built from it is a well-formed HTTP response carrying its accept key.
/// - `Incomplete`: every prefix is `Incomplete` too.
/// - An error: no prefix is a complete request; the refusal for its status is a well-formed
///   response with that status, and the error's text is one short line.
pub fn ws_handshake(data: &[u8]) {
    let whole = handshake::parse_request(data, HANDSHAKE_MAX);
    let prefixes = prefix_lengths(data);
    match &whole {
        Ok(Decoded::Done { item, len }) => {
            let len = *len;
            assert!(len <= data.len() && len <= HANDSHAKE_MAX);
            for &cut in prefixes.iter().filter(|&&cut| cut < len) {
                assert_eq!(
                    handshake::parse_request(&data[..cut], HANDSHAKE_MAX),
                    Ok(Decoded::Incomplete),
                    "prefix {cut} of a {len}-byte head"
                );
            }
            assert_eq!(handshake::parse_request(&data[..len], HANDSHAKE_MAX), whole);
            assert_eq!(handshake::parse_request(data, len), whole);
            assert!(matches!(
                handshake::parse_request(data, len - 1),
                Err(HandshakeError::TooLarge { .. })
            ));
            check_request(item);
        }
        Ok(Decoded::Incomplete) => {
            assert!(data.len() <= HANDSHAKE_MAX);
            for &cut in &prefixes {
                assert_eq!(
                    handshake::parse_request(&data[..cut], HANDSHAKE_MAX),
                    Ok(Decoded::Incomplete),
                    "prefix {cut} of an incomplete head"
                );
            }
        }
        Err(error) => {
            for &cut in &prefixes {
                let prefix = handshake::parse_request(&data[..cut], HANDSHAKE_MAX);
                assert!(
                    !matches!(prefix, Ok(Decoded::Done { .. })),
                    "prefix {cut} is a request, the whole is {error:?}"
                );
            }
            let text = error.to_string();
            assert_one_printable_line(&text, "HandshakeError");
            assert!(text.len() <= 400, "{} bytes of error text", text.len());
            let retry_after = u32::from(data.first().copied().unwrap_or(0));
            for retry_after in [None, Some(retry_after)] {
                let response = handshake::refusal_response(error.status(), retry_after, &text);
                let code = check_response(&response);
                assert_eq!(code, error.status().code());
                // The body is the status line and the reason line, whatever the peer sent.
                let body = response
                    .windows(4)
                    .position(|window| window == b"\r\n\r\n")
                    .and_then(|at| response.get(at + 4..))
                    .unwrap_or_default();
                assert_eq!(body.iter().filter(|&&byte| byte == b'\n').count(), 2);
                assert!(!body.contains(&b'\r'), "{body:?}");
            }
        }
    }
}

/// Where to cut `data` for the prefix checks: the first and last 16 offsets, each side of the
/// first 64 line ends, and 16 more spread over the input.
fn prefix_lengths(data: &[u8]) -> Vec<usize> {
    let len = data.len();
    let mut cuts: Vec<usize> = (0..len.min(16)).collect();
    cuts.extend(len.saturating_sub(16)..len);
    let line_ends = data.iter().enumerate().filter(|(_, byte)| **byte == b'\n');
    for (index, _) in line_ends.take(64) {
        cuts.extend([index, index + 1].into_iter().filter(|&cut| cut < len));
    }
    cuts.extend((1..16).map(|step| step * len / 16));
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

fn check_request(request: &Request) {
    assert!(!request.host.is_empty());
    assert_eq!(request.key.len(), 24, "key {:?}", request.key);
    assert!(!request.cookies.contains(&b'\r') && !request.cookies.contains(&b'\n'));
    let accept = handshake::accept_key(&request.key);
    assert_eq!(accept.len(), 28);
    let protocol = request.protocols.first().map(String::as_str);
    let response = handshake::accept_response(&request.key, protocol, None);
    assert_eq!(check_response(&response), 101);
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    assert!(parsed.parse(&response).is_ok());
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value)
    };
    assert_eq!(header("Sec-WebSocket-Accept"), Some(accept.as_bytes()));
    assert_eq!(
        header("Sec-WebSocket-Protocol"),
        protocol.map(str::as_bytes)
    );
}

/// Parses `response` as a complete HTTP/1.1 response and returns its status code.
fn check_response(response: &[u8]) -> u16 {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let status = parsed.parse(response);
    let Ok(httparse::Status::Complete(head_len)) = status else {
        panic!("not a complete response ({status:?}): {response:?}");
    };
    assert_eq!(parsed.version, Some(1));
    let content_length = parsed
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("Content-Length"))
        .map_or(0, |header| {
            std::str::from_utf8(header.value)
                .ok()
                .and_then(|value| value.parse::<usize>().ok())
                .expect("Content-Length is a number")
        });
    assert_eq!(head_len + content_length, response.len(), "body length");
    parsed.code.expect("a complete response has a status code")
}

// ---------------------------------------------------------------------------------------------
// control_codec: the control socket's framing and commands
// ---------------------------------------------------------------------------------------------

/// `max_control_frame` values an input can pick with its second byte: nothing, less and more
/// than a token, the token plus one byte (the configurable minimum), the defaults, and none.
const CONTROL_LIMITS: [usize; 8] = [0, 1, 32, 33, 100, 65_536, 1 << 20, usize::MAX];

/// Arbitrary bytes from a backend. Input: `[seed, limit, bytes @ ..]`.
///
/// - The frames decoded, and the error or the leftover that ends the stream, are the same for
///   every chunking.
/// - While a frame is incomplete the buffer stays under 21 + `max_control_frame` bytes (the
///   longest length field, the command byte, the payload): a backend cannot make wson buffer
///   more than one frame.
/// - Each frame re-encodes to a frame that decodes to itself; each command that parses
///   re-encodes to bytes, never longer, that parse to the same command (fields commands to
///   their shortest, canonical form: encoding it again gives the same bytes), and every
///   typed field it holds keeps its rule (users, topics, codes, reasons, cursors, groups);
///   each error is answered `0E` and reads as one printable line.
/// - The fields reader, run over every payload, only ever yields sub-slices of it, in order,
///   and stops at its first malformed field.
pub fn control_codec(data: &[u8]) {
    let [seed, limit, input @ ..] = data else {
        return;
    };
    let max = CONTROL_LIMITS[usize::from(*limit) % CONTROL_LIMITS.len()];
    let whole = run_control(&[input], max);
    for chunks in chunkings(input, *seed) {
        assert_eq!(
            run_control(&chunks, max),
            whole,
            "chunked as {}",
            describe(&chunks)
        );
    }
}

/// Frames (command byte, payload), then the leftover byte count or the error.
type ControlOutcome = (Vec<(u8, Vec<u8>)>, Result<usize, ControlError>);

/// Appends each chunk to a buffer and decodes what it can, as a control connection does.
fn run_control(chunks: &[&[u8]], max: usize) -> ControlOutcome {
    let mut buffer = Vec::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buffer.extend_from_slice(chunk);
        loop {
            match codec::decode(&buffer, max) {
                Ok(Decoded::Done { item, len }) => {
                    assert!(len <= buffer.len() && item.payload.len() <= max);
                    check_control_frame(item, len);
                    frames.push((item.command, item.payload.to_vec()));
                    buffer.drain(..len);
                }
                Ok(Decoded::Incomplete) => {
                    assert!(
                        buffer.len() < max.saturating_add(MAX_LENGTH_DIGITS + 1),
                        "{} bytes buffered, still incomplete, limit {max}",
                        buffer.len()
                    );
                    break;
                }
                Err(error) => {
                    check_control_error(&error, max);
                    return (frames, Err(error));
                }
            }
        }
    }
    (frames, Ok(buffer.len()))
}

fn check_control_frame(frame: RawFrame<'_>, len: usize) {
    let mut encoded = Vec::new();
    codec::encode(frame.command, frame.payload, &mut encoded);
    assert!(encoded.len() <= len, "the shortest encoding is not longer");
    assert_eq!(
        codec::decode(&encoded, frame.payload.len()),
        Ok(Decoded::Done {
            item: frame,
            len: encoded.len()
        })
    );
    check_fields(frame.payload);
    match command::parse(frame) {
        Ok(parsed) => {
            check_command_values(&parsed);
            let mut again = Vec::new();
            parsed.encode(&mut again);
            assert!(
                again.len() <= encoded.len(),
                "{parsed:?} re-encodes longer than the {} bytes it came from",
                encoded.len()
            );
            let Ok(Decoded::Done { item, len }) = codec::decode(&again, usize::MAX) else {
                panic!("{parsed:?} encodes to an undecodable {again:?}");
            };
            assert_eq!(len, again.len());
            let reparsed = command::parse(item);
            assert_eq!(reparsed, Ok(parsed));
            if let Ok(reparsed) = reparsed {
                let mut third = Vec::new();
                reparsed.encode(&mut third);
                assert_eq!(third, again, "the encoding of {parsed:?} is not canonical");
            }
            if frame.command != b'Q' {
                assert_eq!(parsed.command_byte(), frame.command);
            }
        }
        Err(error) => check_control_error(&error, usize::MAX),
    }
}

/// The fields reader over `payload`: every field is the sub-slice of the payload that ends
/// where the reader's offset says, offsets only grow, an error ends the reading at the end of
/// the payload, and what reads whole re-encodes (without leading zeros) to the same fields.
fn check_fields(payload: &[u8]) {
    let mut reader = Fields::new(payload);
    let mut read = Vec::new();
    let mut canonical = Vec::new();
    let mut previous = 0;
    let mut failed = false;
    while let Some(field) = reader.next() {
        let offset = reader.offset();
        assert!(previous <= offset && offset <= payload.len());
        match field {
            Ok(bytes) => {
                let range = bytes.as_ptr_range();
                let whole = payload.as_ptr_range();
                assert!(
                    whole.start <= range.start && range.end <= whole.end,
                    "field outside"
                );
                assert_eq!(range.end, payload[..offset].as_ptr_range().end);
                fields::append_field(&mut canonical, bytes);
                read.push(bytes);
            }
            Err(error) => {
                assert!(error.offset() >= previous && error.offset() < payload.len());
                assert_eq!(offset, payload.len(), "reading goes on after {error}");
                assert_one_printable_line(&error.to_string(), "FieldError");
                failed = true;
            }
        }
        previous = offset;
    }
    assert!(reader.is_done());
    if !failed {
        assert!(canonical.len() <= payload.len());
        let again: Result<Vec<&[u8]>, _> = Fields::new(&canonical).collect();
        assert_eq!(again, Ok(read));
    }
}

/// Every typed value of a parsed command keeps the rule COMMANDS.md gives its field.
fn check_command_values(parsed: &Command<'_>) {
    let user = |user: &str| assert!((1..=auth::MAX_USER_LEN).contains(&user.len()), "user");
    let topic = |name: Topic<'_>| {
        assert_eq!(Topic::parse(name.as_bytes()), Ok(name));
        assert!(name.as_str().len() <= topic::MAX_TOPIC_LEN && !topic::is_reserved(name.as_str()));
    };
    let target = |target: &Target<'_>| match target {
        Target::Token(_) => {}
        Target::User(name) => user(name),
    };
    let page = |page: &PageRequest<'_>| {
        assert!(page.cursor.len() <= MAX_CURSOR_LEN);
        assert!(page.limit_within(1000) <= 1000 && page.limit_within(1000) >= 1);
    };
    let reason = |reason: &str| assert!(reason.len() <= MAX_REASON_LEN, "reason");
    match parsed {
        Command::Broadcast { .. }
        | Command::Direct { .. }
        | Command::Lock { .. }
        | Command::Fragment { .. }
        | Command::Domain
        | Command::Ping
        | Command::Pong
        | Command::Quit
        | Command::Status
        | Command::Authorizer => {}
        Command::Wamp { message } => assert!(std::str::from_utf8(message).is_ok()),
        // Empty is every session, so a named authid is never empty.
        Command::FlushAuthorizations { authid } => {
            assert!(authid.is_none_or(|authid| !authid.is_empty()), "authid");
        }
        Command::ToUser {
            user: name,
            binary,
            message,
            ..
        } => {
            user(name);
            assert!(*binary || std::str::from_utf8(message).is_ok());
        }
        Command::UserOnline { user: name } => user(name),
        Command::UserTokens {
            user: name,
            page: p,
        } => {
            user(name);
            page(p);
        }
        Command::OnlineUsers { page: p } | Command::Topics { page: p } => page(p),
        Command::Kick {
            target: t,
            code,
            reason: r,
        } => {
            target(t);
            assert!(
                message::is_valid_close_code(*code) && *code != 1010,
                "{code}"
            );
            assert!(!r.is_empty());
            reason(r);
        }
        Command::Subscribe {
            target: t,
            topic: name,
            options,
        } => {
            target(t);
            topic(*name);
            // Judged by the server (JSON, `get_retained`); the parser keeps UTF-8 only.
            assert!(std::str::from_utf8(options).is_ok());
        }
        Command::Unsubscribe {
            target: t,
            topic: name,
        } => {
            target(t);
            topic(*name);
        }
        Command::Publish {
            topic: name,
            binary,
            message,
            options,
        }
        | Command::PublishAt {
            topic: name,
            binary,
            message,
            options,
        } => {
            topic(*name);
            assert!(*binary || std::str::from_utf8(message).is_ok());
            assert!(std::str::from_utf8(options).is_ok());
        }
        Command::Subscribers {
            topic: name,
            page: p,
        } => {
            topic(*name);
            page(p);
        }
        Command::SubscriberCount { topic: name } | Command::Position { topic: name } => {
            topic(*name)
        }
        Command::Listen { group, kinds } => {
            assert_ne!(*kinds, EventKinds::NONE);
            if let Some(group) = group {
                assert!((1..=MAX_GROUP_LEN).contains(&group.len()));
                assert!(
                    group
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                );
            }
        }
        Command::Authorize { decision, .. } => match decision {
            Decision::Allow { user: name, topics } => {
                if let Some(name) = name {
                    user(name);
                }
                topics.iter().for_each(topic);
            }
            Decision::Deny { status, reason: r } => {
                assert!(
                    (authorizer::MIN_DENY_STATUS..=authorizer::MAX_DENY_STATUS).contains(status)
                );
                reason(r);
            }
        },
    }
}

fn check_control_error(error: &ControlError, max: usize) {
    let text = error.to_string();
    assert!(
        text.chars().all(|c| c == ' ' || c.is_ascii_graphic()),
        "ControlError text is not printable ASCII: {text:?}"
    );
    assert_eq!(Reply::from_error(error), Reply::Error);
    let mut reply = Vec::new();
    Reply::from_error(error).encode(&mut reply);
    assert_eq!(reply, Reply::ERROR_BYTES);
    if let ControlError::FrameTooLarge { len, max: reported } = *error {
        assert_eq!(reported, max);
        // The digits read so far, saturated: a length beyond u64 is reported as u64::MAX.
        assert!(len > max as u64 || len == u64::MAX, "{error:?}");
    }
    if let ControlError::LengthTooLong { digits } = *error {
        assert!(digits > MAX_LENGTH_DIGITS);
    }
}

// ---------------------------------------------------------------------------------------------
// control_fields: payloads made of fields, and the frames built of them
// ---------------------------------------------------------------------------------------------

/// Command bytes whose payload is fields.
const FIELDS_COMMANDS: &[u8] = b"uUwWogykKjJrRxXhHvezZO";

/// Arbitrary bytes as one payload made of fields, without the framing around it, so the
/// fuzzer works on the fields directly.
///
/// - The fields reader yields only sub-slices of the payload, in order, and stops at the
///   first malformed field (`check_fields`).
/// - As the payload of each fields command (`u` to `Z`, and `O`), the `control_codec` frame
///   checks hold: a command that parses keeps its field rules and re-encodes canonically to
///   an equal command; an error is `0E` in one line.
/// - Read as what wson sends (an event `e`, an authorization request `z`, a page `L`), a
///   payload that parses encodes back to a frame that parses to the same value; kinds and
///   topics parse to values that keep their rules.
pub fn control_fields(data: &[u8]) {
    check_fields(data);
    for &command in FIELDS_COMMANDS {
        let mut framed = Vec::new();
        codec::encode(command, data, &mut framed);
        check_control_frame(
            RawFrame {
                command,
                payload: data,
            },
            framed.len(),
        );
    }

    if let Some(event) = control_event::Event::parse(data) {
        let mut out = Vec::new();
        event.encode(&mut out);
        let payload = sent_payload(&out, control_event::EVENT_BYTE);
        assert_eq!(control_event::Event::parse(payload), Some(event));
    }
    if let Some(request) = AuthRequest::parse(data) {
        let mut out = Vec::new();
        request.encode(&mut out);
        let payload = sent_payload(&out, authorizer::REQUEST_BYTE);
        assert_eq!(AuthRequest::parse(payload), Some(request));
    }
    if let Some(page) = Page::parse(data) {
        let reply = Reply::Page(page);
        let mut out = Vec::new();
        reply.encode(&mut out);
        let payload = sent_payload(&out, Reply::PAGE_BYTE);
        assert_eq!(
            Reply::decode(RawFrame {
                command: Reply::PAGE_BYTE,
                payload
            }),
            Some(reply)
        );
    }
    match EventKinds::parse(data) {
        Ok(kinds) => {
            assert_ne!(kinds, EventKinds::NONE);
            let mut names = Vec::new();
            kinds.encode(&mut names);
            assert_eq!(EventKinds::parse(&names), Ok(kinds));
        }
        Err(_) => assert!(!data.is_empty()),
    }
    match Topic::parse(data) {
        Ok(name) => {
            assert_eq!(name.as_bytes(), data);
            assert!(topic::check_uri(name.as_str()).is_ok());
        }
        Err(error) => assert_one_printable_line(&error.to_string(), "TopicError"),
    }
}

/// The payload of the one frame `out` holds, which must have `command`.
fn sent_payload(out: &[u8], command: u8) -> &[u8] {
    let Ok(Decoded::Done { item, len }) = codec::decode(out, usize::MAX) else {
        panic!("undecodable {out:?}");
    };
    assert_eq!((item.command, len), (command, out.len()));
    item.payload
}

// ---------------------------------------------------------------------------------------------
// auth_cookie: cookie authorization
// ---------------------------------------------------------------------------------------------

/// The secret, lifetime and clock of the `Cookie`-bytes half of `auth_cookie`; the seeds in
/// `fuzz/corpus/auth_cookie/` that authorize were signed with these.
pub const AUTH_SECRET: &[u8] = b"fuzz-secret-0123456789";
pub const AUTH_LIFETIME: u64 = 86_400;
pub const AUTH_NOW: u64 = 1_800_000_000;

/// Every input is used twice.
///
/// As a `Cookie` header, under both digests: `authorize` never panics; appending an
/// unrelated cookie never changes the result, nor does a second `token` cookie (the first
/// wins) unless the token was missing; what authorizes is a valid identity inside the time
/// window that `cookie_header` reproduces; errors are one line.
///
/// As parameters (digest, secret, token bytes, time, lifetime, clock offset, then the user
/// name): `cookie_header` of any user, time and token drawn from `token_from_random`
/// authorizes with exactly that identity whenever the clock is inside the window; outside it
/// is `Expired` or `FromFuture`; a wrong secret is `DigestMismatch`, the other digest
/// `BadDigestFormat`; a raw token authorizes only if it has the cookie charset.
pub fn auth_cookie(data: &[u8]) {
    for digest in [Digest::Md5, Digest::HmacSha256] {
        check_cookie_bytes(data, digest);
    }
    check_cookie_round_trip(data);
}

fn check_cookie_bytes(header: &[u8], digest: Digest) {
    let authorize =
        |header: &[u8]| auth::authorize(header, AUTH_SECRET, digest, AUTH_LIFETIME, AUTH_NOW);
    let result = authorize(header);
    let mut more = header.to_vec();
    more.extend_from_slice(b"; lang=en");
    assert_eq!(authorize(&more), result, "an unrelated cookie changed it");
    if result != Err(AuthError::MissingCookie { name: "token" }) {
        more.extend_from_slice(b"; token=ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert_eq!(authorize(&more), result, "a second token cookie changed it");
    }
    match result {
        Ok(identity) => {
            check_identity(&identity, AUTH_LIFETIME, AUTH_NOW);
            let again = auth::cookie_header(
                AUTH_SECRET,
                digest,
                &identity.user,
                &identity.token,
                identity.issued_at,
            );
            assert_eq!(authorize(again.as_bytes()), Ok(identity));
        }
        Err(error) => assert_one_printable_line(&error.to_string(), "AuthError"),
    }
}

fn check_identity(identity: &Identity, lifetime: u64, now: u64) {
    assert!(identity.token.has_cookie_charset());
    assert!((1..=auth::MAX_USER_LEN).contains(&identity.user.len()));
    assert_eq!(
        identity.expires_at,
        identity.issued_at.saturating_add(lifetime)
    );
    if identity.issued_at > now {
        assert!(identity.issued_at - now <= auth::CLOCK_SKEW_ALLOWANCE);
    } else {
        assert!(now - identity.issued_at <= lifetime);
    }
}

fn check_cookie_round_trip(data: &[u8]) {
    let mut source = Source::new(data);
    let flags = source.byte();
    let (digest, other) = if flags & 1 == 0 {
        (Digest::Md5, Digest::HmacSha256)
    } else {
        (Digest::HmacSha256, Digest::Md5)
    };
    let secret_len = usize::from(source.byte() % 64);
    let secret = source.take(secret_len).to_vec();
    let token_bytes: [u8; 32] = source.array();
    let time = source.u64();
    let lifetime = source.u64() >> (source.byte() % 64);
    let offset = source.u64();
    let user = user_name(source.rest());

    let token = auth::token_from_random(token_bytes);
    let cookie = auth::cookie_header(&secret, digest, &user, &token, time);
    let authorize = |secret: &[u8], digest, now| {
        auth::authorize(cookie.as_bytes(), secret, digest, lifetime, now)
    };
    // A clock inside the window: up to `lifetime` after `time`, or up to the skew before it.
    let now = if flags & 2 == 0 {
        time.saturating_add(offset % lifetime.saturating_add(1).max(1))
    } else {
        time.saturating_sub(offset % (auth::CLOCK_SKEW_ALLOWANCE + 1))
    };
    let identity = Identity {
        token,
        user: user.clone(),
        issued_at: time,
        expires_at: time.saturating_add(lifetime),
    };
    assert_eq!(authorize(&secret, digest, now), Ok(identity.clone()));
    check_identity(&identity, lifetime, now);

    if let Some(late) = time
        .checked_add(lifetime)
        .and_then(|end| end.checked_add(1))
    {
        assert_eq!(
            authorize(&secret, digest, late),
            Err(AuthError::Expired {
                issued_at: time,
                now: late
            })
        );
    }
    if let Some(early) = time.checked_sub(auth::CLOCK_SKEW_ALLOWANCE + 1) {
        assert_eq!(
            authorize(&secret, digest, early),
            Err(AuthError::FromFuture {
                issued_at: time,
                now: early
            })
        );
    }
    let mut wrong = secret.clone();
    wrong.push(flags);
    assert_eq!(
        authorize(&wrong, digest, now),
        Err(AuthError::DigestMismatch)
    );
    assert_eq!(
        authorize(&secret, other, now),
        Err(AuthError::BadDigestFormat)
    );

    // A token as raw bytes: it goes out percent-encoded where it leaves the charset, and
    // then it is no token.
    let raw = Token::from_array(token_bytes);
    let cookie = auth::cookie_header(&secret, digest, &user, &raw, time);
    let result = auth::authorize(cookie.as_bytes(), &secret, digest, lifetime, now);
    if raw.has_cookie_charset() {
        assert!(result.is_ok(), "{result:?}");
    } else {
        assert_eq!(result, Err(AuthError::BadToken));
    }
}

/// The bytes as a user name `cookie_header` accepts: UTF-8 (invalid bytes replaced), 1 to 255
/// bytes, cut at a character boundary.
fn user_name(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(auth::MAX_USER_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    match &text[..end] {
        "" => "u".to_owned(),
        user => user.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// config: the configuration file
// ---------------------------------------------------------------------------------------------

/// The file name every config input is parsed as.
const CONFIG_FILE: &str = "conf/fuzz.toml";

/// A secret no input contains (checked), to see whether any output leaks it.
const MARKER_SECRET: &str = "Zx-marker-secret-Qv7Jk2Lp9Rt4";

/// Arbitrary text (invalid UTF-8 replaced) as a config file.
///
/// - `parse` never panics. It fails with at least one error, every one naming the file, as
///   one printable line starting with `conf/fuzz.toml: `; or it succeeds with a config whose
///   values are all in range and whose cross-key rules hold (see `check_config`).
/// - Where the text is a TOML table, the same table with `secret` set to a marker: no error
///   and no debug output of the config contains the marker.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_config_text(&text);
    if text.contains(MARKER_SECRET) {
        return;
    }
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return;
    };
    if table
        .iter()
        .any(|(key, value)| key.contains(MARKER_SECRET) || value_contains(value, MARKER_SECRET))
    {
        return;
    }
    table.insert(
        "secret".to_owned(),
        toml::Value::String(MARKER_SECRET.to_owned()),
    );
    let Ok(with_secret) = toml::to_string(&table) else {
        return;
    };
    for output in check_config_text(&with_secret) {
        assert!(
            !output.contains(MARKER_SECRET),
            "the secret leaks into {output:?}"
        );
    }
}

/// Parses `text`, checks the result, and returns every line of output it could produce:
/// the error texts, or the config's debug form.
fn check_config_text(text: &str) -> Vec<String> {
    let file = Path::new(CONFIG_FILE);
    match config::parse(text, file) {
        Ok(config) => {
            check_config(&config, file);
            vec![format!("{config:?}")]
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "failed without an error");
            errors
                .iter()
                .map(|error| {
                    assert_eq!(error.file, file);
                    let line = error.to_string();
                    assert!(line.starts_with("conf/fuzz.toml: "), "{line:?}");
                    assert_one_printable_line(&line, "ConfigError");
                    line
                })
                .collect()
        }
    }
}

fn check_config(config: &Config, file: &Path) {
    assert_eq!(config.file, file);
    assert!(!config.servers.is_empty());
    assert!(config.domains.is_empty() || config.domains.len() == config.servers.len());
    for duration in [
        config.token_lifetime,
        config.ping_interval,
        config.handshake_timeout,
        config.close_timeout,
        config.stop_timeout,
    ] {
        assert!((1..=config::MAX_SECONDS).contains(&duration.as_secs()));
        assert_eq!(duration.subsec_nanos(), 0);
    }
    assert!(config.max_handshake_size >= config::MIN_HANDSHAKE_SIZE);
    assert!(config.max_message_size >= 1 && config.max_connections >= 1);
    assert!(config.max_control_connections >= 1);
    assert!(config.max_control_frame > wson::token::TOKEN_LEN);
    assert!(config.max_outbound_buffer >= config.max_control_frame + config::MAX_FRAME_HEADER_LEN);
    assert!(config.socket_mode <= 0o777 && config.control_socket_mode <= 0o777);
    if let Secret::Inline(secret) = &config.secret {
        assert!(secret.len() >= config::MIN_SECRET_LEN);
    }
    // The keys and tables of issue 10.
    if let Some(backlog) = config.listen_backlog {
        assert!((1..=65_535).contains(&backlog));
    }
    for group in [&config.socket_group, &config.control_socket_group]
        .into_iter()
        .flatten()
    {
        let body = group.strip_suffix('$').unwrap_or(group);
        assert!(!body.is_empty() && group.len() <= config::MAX_GROUP_NAME_LEN);
        assert!(
            body.bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"_.-".contains(&byte)),
            "{group:?}"
        );
    }
    assert!(config.max_lingering >= 1 && config.max_list_page >= 1);
    let topics = &config.topics;
    assert!(topics.max_per_connection >= 1 && topics.max_topics >= 1);
    assert!((1..=255).contains(&topics.max_name_length));
    assert!(topics.max_user_subscriptions >= 1);
    assert!(config.events.max_queue >= config::MIN_EVENT_QUEUE);
    assert!(config.events.max_queue >= config.max_message_size + config::MAX_EVENT_FIELDS_LEN);
    let authorizer = &config.authorizer;
    assert!((1..=config::MAX_SECONDS).contains(&authorizer.timeout.as_secs()));
    assert_eq!(authorizer.timeout.subsec_nanos(), 0);
    assert!((400..=599).contains(&authorizer.fallback_status));
    assert!(authorizer.max_pending >= 1);
    assert!(
        !(config.auth == AuthMode::Authorizer && authorizer.fallback == AuthorizerFallback::Allow)
    );
    // A config differs from itself in no key, so a reload of the same file asks no restart.
    assert!(config.changed_keys(config).is_empty());
}

fn value_contains(value: &toml::Value, needle: &str) -> bool {
    match value {
        toml::Value::String(text) => text.contains(needle),
        toml::Value::Array(items) => items.iter().any(|item| value_contains(item, needle)),
        toml::Value::Table(table) => table
            .iter()
            .any(|(key, value)| key.contains(needle) || value_contains(value, needle)),
        toml::Value::Integer(_)
        | toml::Value::Float(_)
        | toml::Value::Boolean(_)
        | toml::Value::Datetime(_) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// wamp_message: WAMP messages in JSON, MessagePack and CBOR
// ---------------------------------------------------------------------------------------------

/// `max_depth` values an input can pick: no bound of its own (so `MAX_DEPTH`), none at all
/// (0), the message alone, a little nesting, and `MAX_DEPTH` itself.
const WAMP_DEPTHS: [usize; 8] = [usize::MAX, 0, 1, 2, 3, 5, 16, MAX_DEPTH];

/// A YIELD read as an authenticator's or authorizer's answer (`router::dynamic`): whatever it
/// holds, a principal has a role and bounded PBKDF2 parameters, and an authorization is read
/// or refused, never a panic.
fn check_dynamic_answers(payload: &wamp::Payload) {
    use wson::router::dynamic;
    const MAX_ITERATIONS: u32 = 1000;
    if let Ok(principal) = dynamic::principal(payload, MAX_ITERATIONS) {
        assert!(!principal.role.is_empty(), "a principal without a role");
        if let Some((_, iterations, keylen)) = principal.salted {
            assert!(
                (1..=MAX_ITERATIONS).contains(&iterations),
                "iterations {iterations}"
            );
            assert!(keylen >= 1, "keylen 0");
        }
    }
    if let Some((authorization, _cache)) = dynamic::authorizer_answer(payload) {
        let bool_answer = matches!(payload.args.first(), Some(wamp::Value::Bool(_)));
        assert!(
            !bool_answer || !authorization.disclose,
            "a bare bool disclosed"
        );
    }
}

/// Arbitrary bytes as one WAMP message. Input: `[selector, bytes @ ..]`; `selector % 3` picks
/// the serializer (0 JSON, 1 MessagePack, 2 CBOR), `selector / 3 % 8` indexes `WAMP_DEPTHS`.
///
/// - `decode` never panics (nor overflows the stack); an error prints as one line, and
///   `TooDeep` names the bound applied.
/// - A decoded message nests at least 1 and at most the bound, and the bound is exact: one
///   below the message's depth, the same bytes are `TooDeep`. (The input may nest deeper than
///   the message: UNSUBSCRIBED's dropped Details.)
/// - What decodes, encodes to bytes that decode to an equal message (NaN equal to NaN), and
///   encoding that gives the same bytes again: the encoding is canonical.
/// - MessagePack and CBOR carry every message: through either, it comes back equal. JSON does
///   too unless the message holds a NaN or an infinity (written as null) or a string starting
///   with NUL (read back as binary); a message decoded from JSON never holds such a string.
/// - A YIELD's payload read as an authenticator's or authorizer's answer never panics.
pub fn wamp_message(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let serializer = match selector % 3 {
        0 => Serializer::Json,
        1 => Serializer::MsgPack,
        _ => Serializer::Cbor,
    };
    let max_depth = WAMP_DEPTHS
        .get(usize::from(selector / 3) % WAMP_DEPTHS.len())
        .copied()
        .unwrap_or(usize::MAX);
    let bound = max_depth.min(MAX_DEPTH);
    match serializer.decode(input, max_depth) {
        Ok(message) => check_wamp_message(serializer, input, &message, bound),
        Err(error) => {
            assert_one_printable_line(&error.to_string(), "DecodeError");
            if let DecodeError::TooDeep { max } = error {
                assert_eq!(max, bound, "TooDeep names another bound");
            }
        }
    }
}

fn check_wamp_message(serializer: Serializer, input: &[u8], message: &wamp::Message, bound: usize) {
    if let wamp::Message::Yield { payload, .. } = message {
        check_dynamic_answers(payload);
    }
    let value = message.to_value();
    let depth = value.depth();
    assert!(
        (1..=bound).contains(&depth),
        "depth {depth} with bound {bound}"
    );
    assert_eq!(
        serializer.decode(input, depth - 1),
        Err(DecodeError::TooDeep { max: depth - 1 }),
        "a bound below the message's depth let it through"
    );
    if serializer == Serializer::Json {
        assert!(!has_nul_string(&value), "JSON decoded a NUL-led string");
    }

    let bytes = serializer.encode(message);
    let again = serializer
        .decode(&bytes, depth)
        .unwrap_or_else(|error| panic!("{serializer:?} re-encoding fails to decode: {error}"));
    assert!(
        same_value(&again.to_value(), &value),
        "{serializer:?} round trip changed the message"
    );
    assert_eq!(
        serializer.encode(&again),
        bytes,
        "encoding is not canonical"
    );

    let json_carries_it = !has_nul_string(&value) && !has_non_finite(&value);
    for other in Serializer::ALL {
        if other == Serializer::Json && !json_carries_it {
            continue;
        }
        let through = other
            .decode(&other.encode(message), depth)
            .unwrap_or_else(|error| panic!("{other:?} cannot carry it: {error}"));
        assert!(
            same_value(&through.to_value(), &value),
            "{other:?} changed the message"
        );
    }
}

/// Equality with NaN equal to NaN (a float's other bits are compared by the canonical-bytes
/// check).
fn same_value(a: &wamp::Value, b: &wamp::Value) -> bool {
    use wamp::Value;
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::List(xs), Value::List(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same_value(x, y))
        }
        (Value::Dict(xs), Value::Dict(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys.iter())
                    .all(|((kx, x), (ky, y))| kx == ky && same_value(x, y))
        }
        _ => a == b,
    }
}

fn any_value(value: &wamp::Value, test: &dyn Fn(&wamp::Value) -> bool) -> bool {
    use wamp::Value;
    test(value)
        || match value {
            Value::List(items) => items.iter().any(|item| any_value(item, test)),
            Value::Dict(dict) => dict.iter().any(|(_, item)| any_value(item, test)),
            _ => false,
        }
}

fn has_nul_string(value: &wamp::Value) -> bool {
    any_value(
        value,
        &|v| matches!(v, wamp::Value::String(s) if s.starts_with('\0')),
    )
}

fn has_non_finite(value: &wamp::Value) -> bool {
    any_value(
        value,
        &|v| matches!(v, wamp::Value::Float(f) if !f.is_finite()),
    )
}

// ---------------------------------------------------------------------------------------------
// wamp_v1_message: WAMP v1 messages (JSON) and the CURIE table
// ---------------------------------------------------------------------------------------------

/// The prefixes every `wamp_v1_message` input resolves against: the spec's two PREFIX
/// examples, and the ones its CALL and SUBSCRIBE examples use.
const V1_PREFIXES: [(&str, &str); 4] = [
    ("calc", "http://example.com/simple/calc#"),
    ("keyvalue", "http://example.com/simple/keyvalue#"),
    ("api", "http://example.com/api#"),
    ("event", "http://example.com/event#"),
];

/// Arbitrary bytes as one WAMP v1 message. Input: `[selector, bytes @ ..]`;
/// `selector % 8` indexes `WAMP_DEPTHS`.
///
/// - `decode` never panics (nor overflows the stack); an error prints as one line, and
///   `TooDeep` names the bound applied.
/// - A decoded message nests at least 1 and at most the bound, `depth()` is exact: the same
///   bytes decode with that bound and are `TooDeep` one below (v1 drops no element).
/// - What decodes, encodes to bytes that decode to an equal message, and encoding that gives
///   the same bytes again. JSON decoding yields no NaN, so equality is plain `==`.
/// - Every URI field (procURI, errorURI, topicURI) resolves against a table of the spec's
///   prefixes by the documented rule: unchanged and borrowed without a colon or with "//"
///   after the first one, else the defined URI followed by the rest, else
///   `UndefinedPrefix` naming exactly the text before the first colon.
/// - A PREFIX message's definition, in a table of at most 2 prefixes of 32 bytes, either
///   fails leaving the table as it was, or makes "prefix:x" resolve to URI + "x"; the table
///   never holds more than its bound.
pub fn wamp_v1_message(data: &[u8]) {
    use wamp::v1::{self, V1DecodeError};

    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let max_depth = WAMP_DEPTHS
        .get(usize::from(selector) % WAMP_DEPTHS.len())
        .copied()
        .unwrap_or(usize::MAX);
    let bound = max_depth.min(MAX_DEPTH);
    let message = match v1::decode(input, max_depth) {
        Ok(message) => message,
        Err(error) => {
            assert_one_printable_line(&error.to_string(), "V1DecodeError");
            if let V1DecodeError::TooDeep { max } = error {
                assert_eq!(max, bound, "TooDeep names another bound");
            }
            return;
        }
    };

    let depth = message.depth();
    assert!(
        (1..=bound).contains(&depth),
        "depth {depth} with bound {bound}"
    );
    assert_eq!(
        v1::decode(input, depth - 1),
        Err(V1DecodeError::TooDeep { max: depth - 1 }),
        "a bound below the message's depth let it through"
    );
    assert_eq!(
        v1::V1MessageType::from_code(message.code()),
        Some(message.message_type())
    );

    let bytes = v1::encode(&message);
    let again = v1::decode(&bytes, depth)
        .unwrap_or_else(|error| panic!("the re-encoding fails to decode: {error}"));
    assert_eq!(again, message, "the round trip changed the message");
    assert_eq!(v1::encode(&again), bytes, "encoding is not canonical");

    check_v1_curies(&message);
}

fn check_v1_curies(message: &wamp::v1::V1Message) {
    use std::borrow::Cow;
    use wamp::v1::{CurieError, Prefixes, V1Message};

    let mut table = Prefixes::new(V1_PREFIXES.len(), 64);
    for (prefix, uri) in V1_PREFIXES {
        table
            .define(prefix, uri)
            .unwrap_or_else(|error| panic!("{prefix}: {error}"));
    }
    let uris: Vec<&str> = match message {
        V1Message::Call { procedure, .. } => vec![procedure],
        V1Message::CallError { error_uri, .. } => vec![error_uri],
        V1Message::Subscribe { topic }
        | V1Message::Unsubscribe { topic }
        | V1Message::Publish { topic, .. }
        | V1Message::Event { topic, .. } => vec![topic],
        V1Message::Prefix { uri, .. } => vec![uri],
        V1Message::Welcome { .. } | V1Message::CallResult { .. } => vec![],
    };
    for text in uris {
        let resolved = table.resolve(text);
        match text.split_once(':') {
            None => assert!(matches!(resolved, Ok(Cow::Borrowed(same)) if same == text)),
            Some((_, rest)) if rest.starts_with("//") => {
                assert!(matches!(resolved, Ok(Cow::Borrowed(same)) if same == text));
            }
            Some((prefix, rest)) => match table.get(prefix) {
                Some(uri) => assert_eq!(resolved, Ok(Cow::Owned(format!("{uri}{rest}")))),
                None => {
                    assert_eq!(
                        resolved,
                        Err(CurieError::UndefinedPrefix {
                            prefix: prefix.to_owned()
                        })
                    );
                    if let Err(error) = resolved {
                        assert_one_printable_line(&error.to_string(), "CurieError");
                    }
                }
            },
        }
    }

    if let V1Message::Prefix { prefix, uri } = message {
        let mut small = Prefixes::new(2, 32);
        small
            .define("calc", "http://example.com/calc#")
            .unwrap_or_else(|error| panic!("calc: {error}"));
        let before = small.clone();
        match small.define(prefix, uri) {
            Ok(()) => {
                assert!(prefix.len() <= 32 && uri.len() <= 32 && !prefix.contains(':'));
                assert_eq!(small.get(prefix), Some(uri.as_str()));
                let curie = format!("{prefix}:x");
                assert_eq!(
                    small.resolve(&curie).map(Cow::into_owned),
                    Ok(format!("{uri}x"))
                );
            }
            Err(error) => {
                assert_eq!(small, before, "a refused PREFIX changed the table");
                assert_one_printable_line(&error.to_string(), "CurieError");
            }
        }
        assert!(small.len() <= 2);
    }
}

// ---------------------------------------------------------------------------------------------
// access: CIDR ranges and forwarded-header hops
// ---------------------------------------------------------------------------------------------

/// The bytes as a CIDR range and as `X-Forwarded-For` and `Forwarded` values: no panic;
/// a parsed range prints to text that parses back to it and contains its own network
/// address; a refusal is one line; one more hop appended to either header adds exactly that
/// hop at the end; the client address the walk picks is one of the hops.
pub fn access(data: &[u8]) {
    use std::net::IpAddr;
    use wson::access::forwarded::{self, Hop};
    use wson::access::{Cidr, CidrError};

    if let Ok(text) = std::str::from_utf8(data) {
        match Cidr::parse(text) {
            Ok(range) => {
                let shown = range.to_string();
                assert_eq!(
                    Cidr::parse(&shown),
                    Ok(range),
                    "{shown} does not round-trip"
                );
                let network: IpAddr = shown
                    .split_once('/')
                    .and_then(|(address, _)| address.parse().ok())
                    .expect("a printed range starts with its address");
                assert!(range.contains(network), "{shown} lacks its network address");
            }
            Err(error) => {
                assert!(!error.to_string().contains('\n'), "{error}");
                if let CidrError::HostBitsSet { network } = error {
                    assert_eq!(Cidr::parse(&network.to_string()), Ok(network));
                }
            }
        }
    }

    let extra: IpAddr = "192.0.2.1".parse().expect("a literal address");
    let no_proxy = |_: IpAddr| false;
    for (hops, appended) in [
        (forwarded::x_forwarded_for(data), {
            let mut more = data.to_vec();
            more.extend_from_slice(b", 192.0.2.1");
            (forwarded::x_forwarded_for(&more), true)
        }),
        (forwarded::forwarded(data), {
            let mut more = data.to_vec();
            more.extend_from_slice(b", for=192.0.2.1");
            // An unbalanced quote may swallow what follows it: only check without quotes.
            (forwarded::forwarded(&more), !data.contains(&b'"'))
        }),
    ] {
        let (more, check) = appended;
        if check && !data.trim_ascii().is_empty() {
            assert_eq!(more.len(), hops.len() + 1, "{hops:?} then {more:?}");
            assert_eq!(more.get(..hops.len()), Some(&hops[..]));
            assert_eq!(more.last(), Some(&Hop::Address(extra)));
        }
        assert!(hops.len() <= data.len() + 1);
        if let Some(client) = forwarded::client_address(&hops, no_proxy) {
            assert!(hops.contains(&Hop::Address(client)));
            assert_eq!(hops.last(), Some(&Hop::Address(client)));
        }
        let everyone = |_: IpAddr| true;
        if let Some(client) = forwarded::client_address(&hops, everyone) {
            assert_eq!(hops.first(), Some(&Hop::Address(client)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// cluster_message: what one node publishes to the others over Redis
// ---------------------------------------------------------------------------------------------

/// The bytes as a cluster message: no panic; a refusal is one line; what decodes encodes to
/// bytes that decode to the same message; its frames are whole unmasked data messages,
/// exactly as many as it says (walked again here, apart from the codec's own check), and
/// `messages_in` finds them all; a single text message is UTF-8; a relayed authorization
/// request reads back from its `z` frame, and a relayed deny's status is 400-599.
pub fn cluster_message(data: &[u8]) {
    use wson::cluster::ClusterMessage;
    match ClusterMessage::decode(data) {
        Ok(message) => {
            // Field lengths and the count may carry leading zeros: what is canonical is the
            // message, not its bytes.
            let mut again = Vec::new();
            message.encode(&mut again);
            assert_eq!(
                ClusterMessage::decode(&again),
                Ok(message),
                "a cluster message does not survive its own encoding"
            );
            let (messages, frames) = match message {
                ClusterMessage::Broadcast {
                    messages, frames, ..
                }
                | ClusterMessage::Publish {
                    messages, frames, ..
                } => (messages, frames),
                // One message, and an epoch a resume could name.
                ClusterMessage::Kept { epoch, frame, .. } => {
                    assert!(
                        !epoch.is_empty() && epoch.len() <= wson::resume::MAX_EPOCH_LEN,
                        "an epoch of another length passed"
                    );
                    (1, frame)
                }
                ClusterMessage::Direct {
                    binary, message, ..
                }
                | ClusterMessage::ToUser {
                    binary, message, ..
                } => {
                    assert!(
                        binary || std::str::from_utf8(message).is_ok(),
                        "text not UTF-8"
                    );
                    return;
                }
                ClusterMessage::Ask { question, .. } => {
                    if let wson::cluster::Question::Direct {
                        binary, message, ..
                    }
                    | wson::cluster::Question::ToUser {
                        binary, message, ..
                    } = question
                    {
                        assert!(
                            binary || std::str::from_utf8(message).is_ok(),
                            "text not UTF-8"
                        );
                    }
                    return;
                }
                ClusterMessage::Events { frames, .. } => {
                    assert!(
                        wson::cluster::wire::events_in(frames).is_some(),
                        "events that are not whole e frames passed"
                    );
                    return;
                }
                ClusterMessage::Registrations { entries, .. } => {
                    let Some(parsed) = wson::cluster::wire::registrations_in(entries) else {
                        panic!("registrations that are not whole entries passed");
                    };
                    let mut again = Vec::new();
                    for entry in &parsed {
                        entry.append_to(&mut again);
                    }
                    assert_eq!(
                        wson::cluster::wire::registrations_in(&again),
                        Some(parsed),
                        "registration entries do not survive their own encoding"
                    );
                    return;
                }
                ClusterMessage::Batch { origin, messages } => {
                    let Some(inner) = wson::cluster::wire::batch_in(origin, messages) else {
                        panic!("a batch that is not whole messages passed");
                    };
                    for message in inner {
                        assert!(
                            !matches!(message, ClusterMessage::Batch { .. }),
                            "a batch inside a batch passed"
                        );
                        assert_eq!(message.origin(), origin, "a message of another origin");
                        let mut bytes = Vec::new();
                        message.encode(&mut bytes);
                        cluster_message(&bytes);
                    }
                    return;
                }
                ClusterMessage::Wamp { messages, .. } => {
                    let Some(pairs) = wson::cluster::wire::wamp_messages_in(messages) else {
                        panic!("WAMP messages that are not whole pairs passed");
                    };
                    for (_, message) in pairs {
                        // What the receiving node does with it: the client codec, bounded.
                        let _ = wson::wamp::Serializer::MsgPack.decode(message, 32);
                    }
                    return;
                }
                ClusterMessage::Heartbeat { .. } | ClusterMessage::Answer { .. } => return,
                ClusterMessage::Authorize { request, .. } => {
                    // What the relaying node gives its authorizer reads back the same.
                    let mut frame = Vec::new();
                    request.encode(&mut frame);
                    assert_eq!(
                        wson::cluster::wire::request_in(&frame),
                        Some(request),
                        "a relayed request does not survive its z frame"
                    );
                    return;
                }
                ClusterMessage::Authorized { decision, .. } => {
                    if let Some(wson::control::authorizer::Decision::Deny { status, .. }) = decision
                    {
                        assert!(
                            (400..=599).contains(&status),
                            "a deny status outside 400-599 passed"
                        );
                    }
                    return;
                }
                ClusterMessage::Authorizers { .. } => return,
            };
            let joined: Vec<_> = wson::cluster::wire::messages_in(frames);
            assert_eq!(
                joined.len() as u64,
                messages,
                "messages_in finds another count"
            );
            let mut rest = frames;
            let mut ends = 0_u64;
            while !rest.is_empty() {
                let Ok(Decoded::Done { item, len }) = frame::decode_header(rest, u64::MAX >> 1)
                else {
                    panic!("frames that are not whole passed");
                };
                assert!(item.mask.is_none(), "masked frames passed");
                assert!(!item.opcode.is_control(), "a control frame passed");
                let total = len + usize::try_from(item.payload_len).unwrap();
                rest = &rest[total..];
                ends += u64::from(item.fin);
            }
            assert_eq!(ends, messages, "the frames hold another number of messages");
        }
        Err(error) => assert_one_printable_line(&error.to_string(), "WireError"),
    }
}

// ---------------------------------------------------------------------------------------------
// ws_deflate: permessage-deflate's offer parser and the inflate path
// ---------------------------------------------------------------------------------------------

/// `max_message_size` values a deflate input can pick: tiny, around a window, realistic.
const DEFLATE_LIMITS: [u64; 5] = [0, 1, 300, 40_000, 1 << 20];

/// The input is, in turn, a `Sec-WebSocket-Extensions` value and the payload of compressed
/// messages. As an offer: whatever is parsed, an accepted offer's response names
/// server_no_context_takeover, windows stay in 8..=15 within the policy, and the response
/// parses back as one acceptable permessage-deflate offer. As a payload: a deflate decoder
/// fed it as a compressed message (then as several, cut by `seed`) gives the same outcome
/// however the bytes are split, never holds more than `max + 1` bytes of message, and the
/// input compressed by wson's own `Deflater` inflates back to itself.
pub fn ws_deflate(data: &[u8]) {
    let [mode, seed, limit, input @ ..] = data else {
        return;
    };
    deflate_offer(input, *mode);
    let max = DEFLATE_LIMITS[usize::from(*limit) % DEFLATE_LIMITS.len()];
    let context = if mode & 1 == 0 {
        "permessage-deflate"
    } else {
        "permessage-deflate; client_no_context_takeover"
    };
    let agreed = deflate::negotiate(context.as_bytes(), DEFLATE_POLICY).expect("accepted");
    // The input as compressed messages: a first frame with RSV1, then continuations cut at
    // `seed`-derived sizes, FIN on the last.
    let mut frames = Vec::new();
    let kind = if mode & 2 == 0 {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    let piece = 1 + usize::from(*seed) % 97;
    let parts: Vec<&[u8]> = if input.is_empty() {
        vec![&[][..]]
    } else {
        input.chunks(piece).take(64).collect()
    };
    for (index, part) in parts.iter().enumerate() {
        let opcode = if index == 0 {
            kind
        } else {
            OpCode::Continuation
        };
        let fin = index + 1 == parts.len();
        let mut frame = frame::encode_masked_frame(fin, opcode, part, [0x11, 0x22, 0x33, 0x44]);
        if index == 0 {
            frame[0] |= 0x40;
        }
        frames.extend(frame);
    }
    let expected = run_deflate(&[&frames], max, &agreed);
    for chunks in chunkings(&frames, *seed) {
        assert_eq!(
            run_deflate(&chunks, max, &agreed),
            expected,
            "chunked as {}",
            describe(&chunks)
        );
    }
    // Round trip through wson's compressor, at a window the input picks.
    let bits = 9 + seed % 7;
    let mut deflater = deflate::Deflater::default();
    if let Some(compressed) = deflater.compress(input, bits, 1 + u32::from(mode % 9)) {
        let mut frame = frame::encode_masked_frame(true, OpCode::Binary, compressed, [1, 2, 3, 4]);
        frame[0] |= 0x40;
        let limit = input.len() as u64;
        let outcome = run_deflate(&[&frame], limit, &agreed);
        assert_eq!(
            outcome.events,
            vec![Owned::Message(MessageKind::Binary, input.to_vec())],
            "round trip at window {bits}"
        );
    }
}

const DEFLATE_POLICY: deflate::Policy = deflate::Policy {
    server_max_window_bits: 15,
    client_no_context_takeover: false,
};

fn deflate_offer(header: &[u8], mode: u8) {
    if let Err(error) = deflate::parse_extensions(header) {
        assert!(error.offset <= header.len());
    }
    let policy = deflate::Policy {
        server_max_window_bits: 9 + mode % 7,
        client_no_context_takeover: mode & 0x80 != 0,
    };
    let Some(agreed) = deflate::negotiate(header, policy) else {
        return;
    };
    assert!((8..=15).contains(&agreed.server_window_bits));
    assert!(agreed.server_window_bits <= policy.server_max_window_bits);
    assert!((9..=15).contains(&agreed.client_window_bits));
    if policy.client_no_context_takeover {
        assert_eq!(agreed.client_context, deflate::ClientContext::NoTakeover);
    }
    let response = agreed.response();
    assert_one_printable_line(&response, "the extension response");
    assert!(response.contains("server_no_context_takeover"));
    let parsed = deflate::parse_extensions(response.as_bytes()).expect("the response parses");
    let [extension] = parsed.as_slice() else {
        panic!("one extension in {response:?}");
    };
    assert_eq!(extension.name, deflate::EXTENSION_NAME);
    let offer = deflate::parse_offer(extension).expect("the response is a valid offer");
    assert!(offer.server_no_context_takeover);
}

/// `run_decoder` on a decoder that negotiated deflate, with its message buffer bounded by
/// `max + 1` (one byte over is how an inflating message is known to be too big).
fn run_deflate(chunks: &[&[u8]], max: u64, agreed: &deflate::Agreed) -> Outcome {
    let mut decoder = MessageDecoder::with_deflate(max, agreed);
    let mut events = Vec::new();
    for chunk in chunks {
        let mut rest: &[u8] = chunk;
        while !rest.is_empty() {
            match decoder.feed(rest) {
                Ok((used, event)) => {
                    assert!(used > 0 && used <= rest.len());
                    let event = event.map(|event| own(event, max));
                    assert!(event.is_some() || used == rest.len());
                    events.extend(event);
                    rest = &rest[used..];
                    let heap = decoder.heap_bytes() as u64;
                    assert!(heap <= max + 1, "{heap} bytes of heap over {max} + 1");
                }
                Err(error) => {
                    assert!(matches!(error.close_code(), 1002 | 1007 | 1009));
                    assert_one_printable_line(&error.to_string(), "ProtocolError");
                    assert!(decoder.heap_bytes() as u64 <= max + 1);
                    return Outcome {
                        events,
                        end: Err(error),
                    };
                }
            }
        }
    }
    Outcome {
        events,
        end: Ok(decoder.is_idle()),
    }
}

// ---------------------------------------------------------------------------------------------
// http_api: HTTP request heads and the JSON params of the API
// ---------------------------------------------------------------------------------------------

/// Input: a byte choosing where to split, a byte choosing `max_header_size` (64 to 1024 in
/// steps of 4... by the byte), then the request bytes. Checks that the head parses the same
/// whole and split (a prefix is incomplete, or the same answer, or an error the whole input
/// also has), that every bound holds, that each error maps to its status, and that the body,
/// read as JSON params for every method and as a batch, becomes a control command the control
/// parser accepts or a 4xx naming a param, never a panic.
pub fn http_api(data: &[u8]) {
    use wson::http::api::{self, ApiMethod};
    use wson::http::request::{self, Limits};

    let mut source = Source::new(data);
    let cut = usize::from(source.byte());
    let max_header_size = 64 + usize::from(source.byte()) * 4;
    let input = source.take(usize::MAX);
    let limits = Limits {
        max_header_size,
        max_body_size: 4096,
    };
    let whole = request::parse_head(input, limits);
    let prefix = request::parse_head(&input[..cut.min(input.len())], limits);
    match (&prefix, &whole) {
        (Ok(Decoded::Incomplete), _) => {}
        (Ok(Decoded::Done { .. }), _) => assert_eq!(prefix, whole),
        (Err(_), whole) => assert!(
            whole.is_err(),
            "a prefix failed: {prefix:?}, whole: {whole:?}"
        ),
    }
    let body = match &whole {
        Ok(Decoded::Done { item, len }) => {
            assert!(*len <= max_header_size && *len <= input.len());
            assert!(item.content_length <= limits.max_body_size);
            assert!(!item.path.contains('?'));
            match api::route(item.method, &item.path) {
                Ok(_) => {}
                Err((error, allow)) => {
                    assert!(matches!(error.status, 404 | 405), "{error:?}");
                    assert_eq!(error.status == 405, !allow.is_empty());
                }
            }
            &input[*len..]
        }
        Ok(Decoded::Incomplete) => {
            assert!(input.len() <= max_header_size);
            input
        }
        Err(error) => {
            let (status, code) = error.status_and_code();
            assert!(matches!(status, 400 | 411 | 413 | 431), "{error:?}");
            assert!(!code.is_empty());
            assert_one_printable_line(&error.to_string(), "RequestError");
            input
        }
    };
    fn check_error(error: &api::ApiError) {
        assert!(matches!(error.status, 400 | 404 | 413), "{error:?}");
        assert_one_printable_line(&error.message, "ApiError");
    }
    fn run(method: ApiMethod, params: &api::ParamMap) {
        let max_frame = 512;
        match api::frame(method, params, max_frame) {
            Ok(frame) => {
                assert!(frame.payload_len() <= max_frame);
                if let Err(error) = frame.command() {
                    assert_eq!(error.status, 400, "{error:?}");
                    let param = error.message.split(':').next().unwrap_or("");
                    assert!(!param.is_empty() && !param.contains(' '), "{error:?}");
                }
            }
            Err(error) => check_error(&error),
        }
    }
    match api::parse_params(body) {
        Ok(params) => {
            for method in ApiMethod::ALL {
                run(method, &params);
            }
        }
        Err(error) => check_error(&error),
    }
    match api::parse_batch(body, 8) {
        Ok(entries) => {
            assert!(entries.len() <= 8);
            for entry in entries {
                match entry {
                    Ok((method, params)) => run(method, &params),
                    Err(error) => check_error(&error),
                }
            }
        }
        Err(error) => check_error(&error),
    }
}

/// `resume`: `[max, bytes..]`, the bytes as the value of an upgrade's `resume` parameter
/// with at most `max % 20 + 1` topics. `parse_value` never panics; a refusal is one line;
/// an accepted list is within the bound, names each topic once, each a valid topic with a
/// valid epoch; percent-encoded back (README, "Missed messages") it parses to the same list,
/// also from a request-target among other parameters; a list one item longer than the bound
/// is `TooManyTopics` before any item is read.
pub fn resume(data: &[u8]) {
    use wson::control::topic::Topic;
    use wson::resume::{self, MAX_EPOCH_LEN, ResumeError};

    let Some((&max, bytes)) = data.split_first() else {
        return;
    };
    let max = usize::from(max % 20) + 1;
    let Ok(value) = std::str::from_utf8(bytes) else {
        return;
    };
    let parsed = match resume::parse_value(value, max) {
        Ok(parsed) => parsed,
        Err(error) => {
            let text = error.to_string();
            assert!(
                !text.contains('\n') && text.starts_with("resume: "),
                "{text}"
            );
            return;
        }
    };
    assert!(parsed.len() <= max);
    for (index, item) in parsed.iter().enumerate() {
        assert_eq!(
            Topic::parse(item.topic.as_bytes()).map(|t| t.as_str()),
            Ok(item.topic.as_str())
        );
        let epoch = &item.position.epoch;
        assert!((1..=MAX_EPOCH_LEN).contains(&epoch.len()));
        assert!(
            epoch
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'))
        );
        assert!(parsed[..index].iter().all(|seen| seen.topic != item.topic));
    }
    let encoded: Vec<String> = parsed
        .iter()
        .map(|item| {
            let mut topic = String::new();
            for byte in item.topic.bytes() {
                if byte.is_ascii_alphanumeric() || b"._-~@:".contains(&byte) {
                    topic.push(char::from(byte));
                } else {
                    topic.push_str(&format!("%{byte:02X}"));
                }
            }
            format!("{topic}@{}:{}", item.position.epoch, item.position.offset)
        })
        .collect();
    let encoded = encoded.join(",");
    assert_eq!(resume::parse_value(&encoded, max).as_ref(), Ok(&parsed));
    let target = format!("/ws?a=1&resume={encoded}&b=2#f");
    assert_eq!(resume::from_target(&target, max), Ok(Some(parsed.clone())));
    if !parsed.is_empty() {
        let longer = format!("{encoded}{}", ",x@0:0".repeat(max + 1 - parsed.len()));
        assert_eq!(
            resume::parse_value(&longer, max),
            Err(ResumeError::TooManyTopics { max })
        );
    }
}
