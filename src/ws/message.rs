//! RFC 6455 §5.4-§5.6 and §7 on the server side: turns client frames into messages.
//!
//! `MessageDecoder` is a sans-IO state machine fed whatever bytes the socket produced, split
//! anywhere. It owns the rules above the frame layout: client frames must be masked,
//! fragments reassemble into one message with control frames allowed in between, text is
//! checked as UTF-8 as the bytes arrive (failing at the first byte that cannot start or
//! continue a code point, not at FIN), the whole message is bounded by
//! `max_message_size` before any of its payload is read, and a Close payload is validated.
//!
//! Transitions of its phase, one frame at a time:
//! `Header` (a partial header in a fixed 14-byte array) -> `Data` (payload unmasked
//! straight into the message buffer) or `Control` (payload into a fixed 125-byte array)
//! -> `Header`. A completed message or control frame comes back as one borrowed `Event`;
//! the message buffer is cleared on the next call and its capacity kept for reuse until
//! `shrink`. Any error poisons the decoder: the connection must be failed with the error's
//! `close_code`.

use std::fmt;

use crate::decoded::Decoded;
use crate::ws::deflate::{Agreed, ClientContext, InflateError, Inflater};
use crate::ws::frame::{
    self, FrameError, FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode, Rsv1,
};

/// A compressed frame's payload is unmasked through a stack buffer of this size on its way
/// to the inflater (the input it arrives in is borrowed, read-only).
const UNMASK_CHUNK: usize = 4096;

/// RFC 6455 §7.4.1: "1002 indicates that an endpoint is terminating the connection due to a
/// protocol error."
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// RFC 6455 §7.4.1: "1007 indicates that an endpoint is terminating the connection because
/// it has received data within a message that was not consistent with the type of the
/// message (e.g., non-UTF-8 [RFC3629] data within a text message)."
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// RFC 6455 §7.4.1: "1009 indicates that an endpoint is terminating the connection because
/// it has received a message that is too big for it to process."
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

impl MessageKind {
    pub fn from_binary(binary: bool) -> MessageKind {
        if binary {
            MessageKind::Binary
        } else {
            MessageKind::Text
        }
    }

    /// The opcode of the message's (first) frame.
    pub fn opcode(self) -> OpCode {
        match self {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        }
    }
}

/// What one call to `MessageDecoder::feed` completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete, reassembled message; a Text payload is valid UTF-8.
    Message {
        kind: MessageKind,
        payload: &'a [u8],
    },
    /// A Ping; RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
    /// frame in response". Sending it is the caller's job.
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// A validated Close; the caller echoes it and stops reading.
    Close(CloseFrame<'a>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseFrame<'a> {
    Empty,
    WithCode { code: u16, reason: &'a str },
}

/// A client broke RFC 6455; the connection must be failed with `close_code()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// The frame header itself is invalid.
    Frame(FrameError),
    /// A client frame without a masking key.
    Unmasked,
    /// A continuation frame with no fragmented message in progress.
    UnexpectedContinuation,
    /// A new Text or Binary frame while a fragmented message is still open.
    ExpectedContinuation { opcode: OpCode },
    /// Text that is not UTF-8; `offset` is the message byte where the bad sequence starts.
    InvalidUtf8 { offset: u64 },
    /// The message would be `len` bytes (the bytes so far plus the declared frame length,
    /// or, compressed, as far as it inflated), over `max`.
    MessageTooBig { len: u64, max: u64 },
    /// A compressed message that is not valid DEFLATE (permessage-deflate, RFC 7692).
    InvalidDeflate,
    /// A Close payload of exactly one byte: too long to be empty, too short for a code.
    CloseOneByte,
    /// A Close status code that may not be sent on the wire.
    InvalidCloseCode { code: u16 },
    /// A Close reason that is not UTF-8.
    CloseReasonUtf8,
}

impl ProtocolError {
    /// The status code of the Close frame that fails the connection (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::Frame(error) => match error {
                FrameError::Oversize { .. } => CLOSE_MESSAGE_TOO_BIG,
                FrameError::ReservedBits { .. }
                | FrameError::ReservedOpcode { .. }
                | FrameError::ControlTooLong { .. }
                | FrameError::FragmentedControl { .. }
                | FrameError::LengthTopBit
                | FrameError::NonMinimalLength { .. } => CLOSE_PROTOCOL_ERROR,
            },
            ProtocolError::Unmasked
            | ProtocolError::UnexpectedContinuation
            | ProtocolError::ExpectedContinuation { .. }
            | ProtocolError::CloseOneByte
            | ProtocolError::InvalidCloseCode { .. } => CLOSE_PROTOCOL_ERROR,
            // RFC 7692 names no code for a message that does not inflate. It is data "not
            // consistent with the type of the message" (RFC 6455 §7.4.1's 1007), the frames
            // themselves being well formed; Node's ws closes with 1007 too.
            ProtocolError::InvalidUtf8 { .. }
            | ProtocolError::CloseReasonUtf8
            | ProtocolError::InvalidDeflate => CLOSE_INVALID_PAYLOAD,
            ProtocolError::MessageTooBig { .. } => CLOSE_MESSAGE_TOO_BIG,
        }
    }
}

impl From<FrameError> for ProtocolError {
    fn from(error: FrameError) -> Self {
        ProtocolError::Frame(error)
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Frame(error) => write!(f, "invalid frame: {error}"),
            ProtocolError::Unmasked => f.write_str("client frame is not masked"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame with no fragmented message in progress")
            }
            ProtocolError::ExpectedContinuation { opcode } => write!(
                f,
                "{opcode} frame while a fragmented message awaits its continuation"
            ),
            ProtocolError::InvalidUtf8 { offset } => {
                write!(f, "text message is not UTF-8 at byte {offset}")
            }
            ProtocolError::MessageTooBig { len, max } => {
                write!(f, "message of {len} bytes is over the limit of {max}")
            }
            ProtocolError::CloseOneByte => f.write_str("close frame payload of one byte"),
            ProtocolError::InvalidCloseCode { code } => {
                write!(f, "close frame with invalid status code {code}")
            }
            ProtocolError::CloseReasonUtf8 => f.write_str("close frame reason is not UTF-8"),
            ProtocolError::InvalidDeflate => f.write_str("compressed message is not valid DEFLATE"),
        }
    }
}

impl std::error::Error for ProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProtocolError::Frame(error) => Some(error),
            ProtocolError::Unmasked
            | ProtocolError::UnexpectedContinuation
            | ProtocolError::ExpectedContinuation { .. }
            | ProtocolError::InvalidUtf8 { .. }
            | ProtocolError::MessageTooBig { .. }
            | ProtocolError::CloseOneByte
            | ProtocolError::InvalidCloseCode { .. }
            | ProtocolError::CloseReasonUtf8
            | ProtocolError::InvalidDeflate => None,
        }
    }
}

/// Whether a peer may send `code` in a Close frame.
///
/// RFC 6455 §7.4.2: "Status codes in the range 0-999 are not used." 1004 is reserved, and
/// "1005 is a reserved value and MUST NOT be set as a status code in a Close control frame
/// by an endpoint" (likewise 1006 and 1015). 1000-1003 and 1007-1011 are defined in §7.4.1,
/// 1012-1014 are registered with IANA, the rest of 1000-2999 is unassigned, and "Status
/// codes in the range 3000-3999 are reserved for use by libraries, frameworks, and
/// applications", "4000-4999 are reserved for private use". Anything above is undefined.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Where the decoder is within the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between frames; the first `filled` bytes of `MessageDecoder::header` are the start of
    /// the next header.
    Header { filled: usize },
    /// Inside a data frame's payload: `remaining` bytes to go, the next one at key index
    /// `mask_offset` (0-3).
    Data {
        mask: [u8; 4],
        remaining: u64,
        mask_offset: usize,
        fin: bool,
    },
    /// Inside a control frame's payload of `len` bytes, `filled` of them in
    /// `MessageDecoder::control` (unmasked).
    Control {
        kind: ControlKind,
        mask: [u8; 4],
        len: usize,
        filled: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ControlKind {
    Close,
    Ping,
    Pong,
}

/// The message whose frames are being received, from its first frame until the end of its
/// FIN frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Binary,
    /// `incomplete_tail`: the message's last 0-3 bytes begin a code point whose remaining
    /// bytes have not arrived yet; they are checked again with the next bytes.
    Text {
        incomplete_tail: usize,
    },
}

/// How the open message's payload arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Plain,
    /// RSV1 was set on its first frame: the payload goes through the inflater.
    Deflated,
}

/// permessage-deflate on this connection.
#[derive(Debug)]
enum Deflate {
    Off,
    On {
        context: ClientContext,
        window_bits: u8,
        /// Made at the first compressed message; kept between messages only with context
        /// takeover.
        inflater: Option<Box<Inflater>>,
    },
}

/// What a step completed, recorded without borrowing so the event is built after the loop.
enum Completed {
    Message(MessageKind),
    Ping { len: usize },
    Pong { len: usize },
    Close { code: Option<u16>, len: usize },
}

/// How far the bytes went towards a header.
enum HeaderRead {
    Done { header: FrameHeader, used: usize },
    Partial { used: usize },
}

/// The streaming decoder of one client connection. Idle, it holds no heap memory once
/// `shrink` has been called; `new` allocates nothing.
#[derive(Debug)]
pub struct MessageDecoder {
    max_message_size: u64,
    phase: Phase,
    open: Option<(Open, Encoding)>,
    deflate: Deflate,
    /// `message` holds the payload of the last `Event::Message`; clear it on the next call.
    delivered: bool,
    poisoned: Option<ProtocolError>,
    header: [u8; MAX_HEADER_LEN],
    control: [u8; MAX_CONTROL_PAYLOAD],
    message: Vec<u8>,
}

impl MessageDecoder {
    pub fn new(max_message_size: u64) -> Self {
        MessageDecoder {
            max_message_size,
            phase: Phase::Header { filled: 0 },
            open: None,
            deflate: Deflate::Off,
            delivered: false,
            poisoned: None,
            header: [0; MAX_HEADER_LEN],
            control: [0; MAX_CONTROL_PAYLOAD],
            message: Vec::new(),
        }
    }

    /// A decoder for a connection that negotiated permessage-deflate.
    pub fn with_deflate(max_message_size: u64, agreed: &Agreed) -> Self {
        MessageDecoder {
            deflate: Deflate::On {
                context: agreed.client_context,
                window_bits: agreed.client_window_bits,
                inflater: None,
            },
            ..MessageDecoder::new(max_message_size)
        }
    }

    /// Heap bytes the inflate state holds (an estimate: zlib's state and its window).
    pub fn inflate_state_bytes(&self) -> usize {
        match &self.deflate {
            Deflate::On {
                inflater: Some(_),
                window_bits,
                ..
            } => INFLATE_STATE_BYTES + (1usize << window_bits),
            Deflate::On { inflater: None, .. } | Deflate::Off => 0,
        }
    }

    /// Applies from the next frame header on (a message already over it fails there).
    pub fn set_max_message_size(&mut self, max: u64) {
        self.max_message_size = max;
    }

    /// Consumes a prefix of `input` and returns how many bytes it consumed plus at most one
    /// event. Call again with the rest (`&input[consumed..]`) until everything is consumed
    /// and no event comes back. The event borrows the decoder; a message's buffer is reused
    /// on the next call. After an error every call returns that error.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Event<'_>>), ProtocolError> {
        if let Some(error) = self.poisoned {
            return Err(error);
        }
        if self.delivered {
            self.message.clear();
            self.delivered = false;
        }
        match self.advance(input) {
            Ok((consumed, completed)) => Ok((consumed, completed.map(|c| self.event(c)))),
            Err(error) => {
                self.poisoned = Some(error);
                Err(error)
            }
        }
    }

    /// No partial header, frame or message in progress.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Header { filled: 0 } && self.open.is_none()
    }

    fn rsv1(&self) -> Rsv1 {
        match self.deflate {
            Deflate::Off => Rsv1::Reserved,
            Deflate::On { .. } => Rsv1::PerMessageCompressed,
        }
    }

    /// Heap capacity held by the message buffer.
    pub fn heap_bytes(&self) -> usize {
        self.message.capacity()
    }

    /// Releases the message buffer's capacity. Meant for idle decoders: between messages the
    /// buffer is freed; mid-message it is only trimmed to the bytes it holds.
    pub fn shrink(&mut self) {
        if self.open.is_none() {
            self.message = Vec::new();
            self.delivered = false;
        } else {
            self.message.shrink_to_fit();
        }
    }

    /// Runs frames through the phases until `input` is used up or something completes.
    fn advance(&mut self, input: &[u8]) -> Result<(usize, Option<Completed>), ProtocolError> {
        let mut consumed = 0;
        loop {
            let rest = input.get(consumed..).unwrap_or_default();
            match self.phase {
                Phase::Header { filled } => {
                    if rest.is_empty() {
                        return Ok((consumed, None));
                    }
                    match self.read_header(filled, rest)? {
                        HeaderRead::Partial { used } => return Ok((consumed + used, None)),
                        HeaderRead::Done { header, used } => {
                            consumed += used;
                            if let Some(completed) = self.start_frame(header)? {
                                return Ok((consumed, Some(completed)));
                            }
                        }
                    }
                }
                Phase::Data {
                    mask,
                    remaining,
                    mask_offset,
                    fin,
                } => {
                    let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    let chunk = rest.get(..take).unwrap_or_default();
                    self.append_data(chunk, mask, mask_offset, remaining)?;
                    consumed += take;
                    let remaining =
                        remaining.saturating_sub(u64::try_from(take).unwrap_or(u64::MAX));
                    if remaining > 0 {
                        // The input ran out inside the payload.
                        self.phase = Phase::Data {
                            mask,
                            remaining,
                            mask_offset: (mask_offset + take) % 4,
                            fin,
                        };
                        return Ok((consumed, None));
                    }
                    self.phase = Phase::Header { filled: 0 };
                    if fin {
                        return Ok((consumed, Some(self.finish_message()?)));
                    }
                }
                Phase::Control {
                    kind,
                    mask,
                    len,
                    filled,
                } => {
                    let take = len.saturating_sub(filled).min(rest.len());
                    if let (Some(dst), Some(src)) = (
                        self.control.get_mut(filled..filled + take),
                        rest.get(..take),
                    ) {
                        dst.copy_from_slice(src);
                        frame::apply_mask(dst, mask, filled);
                    }
                    consumed += take;
                    let filled = filled + take;
                    if filled < len {
                        self.phase = Phase::Control {
                            kind,
                            mask,
                            len,
                            filled,
                        };
                        return Ok((consumed, None));
                    }
                    self.phase = Phase::Header { filled: 0 };
                    return Ok((consumed, Some(self.finish_control(kind, len)?)));
                }
            }
        }
    }

    /// Decodes a header from `rest`, behind the `filled` bytes kept from earlier calls. The
    /// common case (no partial header) decodes straight from the input without copying.
    fn read_header(&mut self, filled: usize, rest: &[u8]) -> Result<HeaderRead, ProtocolError> {
        if filled == 0 {
            return match frame::decode_header_with(rest, self.max_message_size, self.rsv1())? {
                Decoded::Done { item, len } => Ok(HeaderRead::Done {
                    header: item,
                    used: len,
                }),
                Decoded::Incomplete => {
                    // Incomplete means `rest` is shorter than a header, so it fits.
                    let used = rest.len().min(MAX_HEADER_LEN);
                    if let (Some(dst), Some(src)) = (self.header.get_mut(..used), rest.get(..used))
                    {
                        dst.copy_from_slice(src);
                    }
                    self.phase = Phase::Header { filled: used };
                    Ok(HeaderRead::Partial { used })
                }
            };
        }
        let take = MAX_HEADER_LEN.saturating_sub(filled).min(rest.len());
        if let (Some(dst), Some(src)) =
            (self.header.get_mut(filled..filled + take), rest.get(..take))
        {
            dst.copy_from_slice(src);
        }
        let known = self.header.get(..filled + take).unwrap_or_default();
        match frame::decode_header_with(known, self.max_message_size, self.rsv1())? {
            Decoded::Done { item, len } => {
                self.phase = Phase::Header { filled: 0 };
                Ok(HeaderRead::Done {
                    header: item,
                    used: len.saturating_sub(filled),
                })
            }
            Decoded::Incomplete => {
                self.phase = Phase::Header {
                    filled: filled + take,
                };
                Ok(HeaderRead::Partial { used: take })
            }
        }
    }

    /// Applies the message-level rules to a new frame's header and enters its payload. A
    /// frame with an empty payload completes at once.
    fn start_frame(&mut self, header: FrameHeader) -> Result<Option<Completed>, ProtocolError> {
        // RFC 6455 §5.1: "The server MUST close the connection upon receiving a frame that
        // is not masked."
        let Some(mask) = header.mask else {
            return Err(ProtocolError::Unmasked);
        };
        let first_frame = match header.opcode {
            OpCode::Close => return self.start_control(ControlKind::Close, mask, header),
            OpCode::Ping => return self.start_control(ControlKind::Ping, mask, header),
            OpCode::Pong => return self.start_control(ControlKind::Pong, mask, header),
            OpCode::Continuation => None,
            OpCode::Text => Some(Open::Text { incomplete_tail: 0 }),
            OpCode::Binary => Some(Open::Binary),
        };
        // RFC 6455 §5.4: "A fragmented message consists of a single frame with the FIN bit
        // clear and an opcode other than 0, followed by zero or more frames with the FIN bit
        // clear and the opcode set to 0, and terminated by a single frame with the FIN bit
        // set and an opcode of 0." and "The fragments of one message MUST NOT be interleaved
        // between the fragments of another message unless an extension has been negotiated
        // that can interpret the interleaving."
        let encoding = match (first_frame, self.open) {
            (None, None) => return Err(ProtocolError::UnexpectedContinuation),
            (Some(_), Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation {
                    opcode: header.opcode,
                });
            }
            (None, Some((_, encoding))) => encoding,
            (Some(open), None) => {
                // `decode_header_with` allowed RSV1 only here, and only with deflate on.
                let encoding = if header.rsv1 {
                    Encoding::Deflated
                } else {
                    Encoding::Plain
                };
                self.open = Some((open, encoding));
                encoding
            }
        };
        // RFC 6455 §10.4: "Implementations that have implementation- and/or
        // platform-specific limitations regarding the frame size or total message size after
        // reassembly from multiple frames MUST protect themselves against exceeding those
        // limits." Checked on the declared length, before any payload byte. A compressed
        // message is bounded as it inflates instead (its frames are not kept).
        let so_far = u64::try_from(self.message.len()).unwrap_or(u64::MAX);
        let len = so_far.saturating_add(header.payload_len);
        if encoding == Encoding::Plain && len > self.max_message_size {
            return Err(ProtocolError::MessageTooBig {
                len,
                max: self.max_message_size,
            });
        }
        if header.payload_len > 0 {
            self.phase = Phase::Data {
                mask,
                remaining: header.payload_len,
                mask_offset: 0,
                fin: header.fin,
            };
            return Ok(None);
        }
        // An empty frame, and with FIN possibly an empty message: both are valid.
        if header.fin {
            return self.finish_message().map(Some);
        }
        Ok(None)
    }

    fn start_control(
        &mut self,
        kind: ControlKind,
        mask: [u8; 4],
        header: FrameHeader,
    ) -> Result<Option<Completed>, ProtocolError> {
        // `decode_header` already refused control frames over 125 bytes or with FIN clear.
        // RFC 6455 §5.4: "Control frames (see Section 5.5) MAY be injected in the middle of
        // a fragmented message." so `open` is left alone.
        let len = usize::try_from(header.payload_len)
            .ok()
            .filter(|len| *len <= MAX_CONTROL_PAYLOAD)
            .ok_or(ProtocolError::Frame(FrameError::ControlTooLong {
                opcode: header.opcode,
                len: header.payload_len,
            }))?;
        if len == 0 {
            return self.finish_control(kind, 0).map(Some);
        }
        self.phase = Phase::Control {
            kind,
            mask,
            len,
            filled: 0,
        };
        Ok(None)
    }

    /// Appends a piece of a data frame's payload to the message, unmasked, and checks text.
    fn append_data(
        &mut self,
        chunk: &[u8],
        mask: [u8; 4],
        mask_offset: usize,
        frame_remaining: u64,
    ) -> Result<(), ProtocolError> {
        let start = self.message.len();
        if let Some((_, Encoding::Deflated)) = self.open {
            self.inflate_masked(chunk, mask, mask_offset)?;
        } else {
            self.reserve_for(chunk.len(), frame_remaining);
            self.message.extend_from_slice(chunk);
            if let Some(new) = self.message.get_mut(start..) {
                frame::apply_mask(new, mask, mask_offset);
            }
        }
        self.check_text_from(start)
    }

    /// Checks the message's text from byte `start` on (with the incomplete tail before it).
    fn check_text_from(&mut self, start: usize) -> Result<(), ProtocolError> {
        if let Some((Open::Text { incomplete_tail }, _)) = &mut self.open {
            // RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but
            // finds that the byte stream is not, in fact, a valid UTF-8 stream, that
            // endpoint MUST _Fail the WebSocket Connection_." Checked on every piece, so a
            // bad byte fails the connection without waiting for the rest of the message.
            let from = start.saturating_sub(*incomplete_tail);
            let unchecked = self.message.get(from..).unwrap_or_default();
            *incomplete_tail = check_utf8(unchecked, from)?;
        }
        Ok(())
    }

    /// The inflater of a compressed message, made at its first one.
    fn inflater(&mut self) -> Option<&mut Inflater> {
        match &mut self.deflate {
            Deflate::On {
                inflater,
                window_bits,
                ..
            } => Some(inflater.get_or_insert_with(|| Box::new(Inflater::new(*window_bits)))),
            Deflate::Off => None,
        }
    }

    fn max_message_len(&self) -> usize {
        usize::try_from(self.max_message_size).unwrap_or(usize::MAX)
    }

    /// Unmasks a piece of a compressed payload through a stack buffer and inflates it into
    /// the message, which stops growing one byte past `max_message_size`.
    fn inflate_masked(
        &mut self,
        chunk: &[u8],
        mask: [u8; 4],
        mask_offset: usize,
    ) -> Result<(), ProtocolError> {
        let max = self.max_message_len();
        let start = self.message.len();
        let mut message = std::mem::take(&mut self.message);
        let mut result = Ok(());
        if let Some(inflater) = self.inflater() {
            let mut buffer = [0u8; UNMASK_CHUNK];
            for (index, piece) in chunk.chunks(UNMASK_CHUNK).enumerate() {
                let Some(unmasked) = buffer.get_mut(..piece.len()) else {
                    break;
                };
                unmasked.copy_from_slice(piece);
                frame::apply_mask(unmasked, mask, mask_offset + index * UNMASK_CHUNK);
                result = inflater.inflate(unmasked, &mut message, max);
                if result.is_err() {
                    break;
                }
            }
        }
        self.message = message;
        self.after_inflating(result, start)
    }

    /// What inflating up to an error made is checked first: the bytes before the error
    /// are what a split input would have checked already, so the error does not depend on
    /// where the input was cut (invalid UTF-8 in them wins over the inflate error).
    fn after_inflating(
        &mut self,
        result: Result<(), InflateError>,
        start: usize,
    ) -> Result<(), ProtocolError> {
        match result {
            Ok(()) => Ok(()),
            Err(error) => {
                self.check_text_from(start)?;
                Err(inflate_error(error))
            }
        }
    }

    /// The compressed message's last frame is in: flush the inflater, and forget its
    /// context unless the client keeps it.
    fn finish_inflating(&mut self) -> Result<(), ProtocolError> {
        let max = self.max_message_len();
        let start = self.message.len();
        let mut message = std::mem::take(&mut self.message);
        let result = match self.inflater() {
            Some(inflater) => inflater.finish(&mut message, max),
            None => Ok(()),
        };
        self.message = message;
        if let Deflate::On {
            context: ClientContext::NoTakeover,
            inflater,
            ..
        } = &mut self.deflate
        {
            // Without context takeover nothing links this message to the next: the
            // state is freed, so an idle connection holds none.
            *inflater = None;
        }
        self.after_inflating(result, start)?;
        self.check_text_from(start)
    }

    /// Makes room for `incoming` bytes. Capacity grows by doubling so a message received
    /// in small pieces is not copied over and over, but never past the end of the declared
    /// frame (which is within `max_message_size`), and only as the bytes actually arrive: a
    /// header declaring a large frame costs nothing until its payload comes.
    fn reserve_for(&mut self, incoming: usize, frame_remaining: u64) {
        let len = self.message.len();
        let capacity = self.message.capacity();
        let needed = len.saturating_add(incoming);
        if needed <= capacity {
            return;
        }
        let frame_end = len.saturating_add(usize::try_from(frame_remaining).unwrap_or(usize::MAX));
        let target = needed
            .max(capacity.saturating_mul(2))
            .min(frame_end)
            .max(needed);
        self.message.reserve_exact(target - len);
    }

    /// The FIN frame's payload is complete: the message is.
    fn finish_message(&mut self) -> Result<Completed, ProtocolError> {
        // Only data frames reach this, and each one has opened a message or found one open.
        let Some((_, encoding)) = self.open else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        if encoding == Encoding::Deflated {
            self.finish_inflating()?;
        }
        let Some((open, _)) = self.open.take() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let kind = match open {
            Open::Binary => MessageKind::Binary,
            // RFC 6455 §5.6: "Note that a particular text frame might include a partial
            // UTF-8 sequence; however, the whole message MUST contain valid UTF-8."
            Open::Text { incomplete_tail } => {
                if incomplete_tail > 0 {
                    let offset = self.message.len().saturating_sub(incomplete_tail);
                    return Err(ProtocolError::InvalidUtf8 {
                        offset: u64::try_from(offset).unwrap_or(u64::MAX),
                    });
                }
                MessageKind::Text
            }
        };
        self.delivered = true;
        Ok(Completed::Message(kind))
    }

    /// A control frame's payload is complete; Close is validated here.
    fn finish_control(&self, kind: ControlKind, len: usize) -> Result<Completed, ProtocolError> {
        match kind {
            ControlKind::Ping => Ok(Completed::Ping { len }),
            ControlKind::Pong => Ok(Completed::Pong { len }),
            ControlKind::Close => match self.control.get(..len).unwrap_or_default() {
                [] => Ok(Completed::Close { code: None, len }),
                // RFC 6455 §5.5.1: "If there is a body, the first two bytes of the body MUST
                // be a 2-byte unsigned integer (in network byte order) representing a status
                // code with value /code/ defined in Section 7.4."
                [_] => Err(ProtocolError::CloseOneByte),
                [hi, lo, reason @ ..] => {
                    let code = u16::from_be_bytes([*hi, *lo]);
                    if !is_valid_close_code(code) {
                        return Err(ProtocolError::InvalidCloseCode { code });
                    }
                    // RFC 6455 §5.5.1: "Following the 2-byte integer, the body MAY contain
                    // UTF-8-encoded data with value /reason/", and §8.1 fails the
                    // connection on invalid UTF-8.
                    if std::str::from_utf8(reason).is_err() {
                        return Err(ProtocolError::CloseReasonUtf8);
                    }
                    Ok(Completed::Close {
                        code: Some(code),
                        len,
                    })
                }
            },
        }
    }

    fn event(&self, completed: Completed) -> Event<'_> {
        let control = |len: usize| self.control.get(..len).unwrap_or_default();
        match completed {
            Completed::Message(kind) => Event::Message {
                kind,
                payload: &self.message,
            },
            Completed::Ping { len } => Event::Ping(control(len)),
            Completed::Pong { len } => Event::Pong(control(len)),
            Completed::Close { code: None, .. } => Event::Close(CloseFrame::Empty),
            Completed::Close {
                code: Some(code),
                len,
            } => {
                let reason = control(len).get(2..).unwrap_or_default();
                // Validated in `finish_control`; the fallback is never taken.
                let reason = std::str::from_utf8(reason).unwrap_or_default();
                Event::Close(CloseFrame::WithCode { code, reason })
            }
        }
    }
}

/// zlib's inflate state besides its window, rounded up (zlib-rs: about 7 KiB).
const INFLATE_STATE_BYTES: usize = 10 * 1024;

fn inflate_error(error: InflateError) -> ProtocolError {
    match error {
        InflateError::InvalidData => ProtocolError::InvalidDeflate,
        InflateError::TooBig { len, max } => ProtocolError::MessageTooBig { len, max },
    }
}

/// Checks `unchecked` (the message bytes from `base` on) as UTF-8. Returns how many trailing
/// bytes begin a code point that is valid so far but incomplete; fails as soon as a byte
/// cannot be part of valid UTF-8, with the message offset where its sequence starts.
fn check_utf8(unchecked: &[u8], base: usize) -> Result<usize, ProtocolError> {
    match std::str::from_utf8(unchecked) {
        Ok(_) => Ok(0),
        // `error_len() == None`: the input ended inside a sequence that could still complete.
        Err(error) if error.error_len().is_none() => {
            Ok(unchecked.len().saturating_sub(error.valid_up_to()))
        }
        Err(error) => Err(ProtocolError::InvalidUtf8 {
            offset: u64::try_from(base.saturating_add(error.valid_up_to())).unwrap_or(u64::MAX),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{encode_frame, encode_masked_frame};
    use proptest::prelude::*;

    const MAX: u64 = 1 << 20;
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// An event copied out of the decoder, to compare runs.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Message(MessageKind, Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<(u16, String)>),
    }

    fn own(event: Event<'_>) -> Owned {
        match event {
            Event::Message { kind, payload } => Owned::Message(kind, payload.to_vec()),
            Event::Ping(payload) => Owned::Ping(payload.to_vec()),
            Event::Pong(payload) => Owned::Pong(payload.to_vec()),
            Event::Close(CloseFrame::Empty) => Owned::Close(None),
            Event::Close(CloseFrame::WithCode { code, reason }) => {
                Owned::Close(Some((code, reason.to_owned())))
            }
        }
    }

    type Outcome = (Vec<Owned>, Option<ProtocolError>);

    /// Feeds `chunks` in order, looping as the `feed` contract says.
    fn run_chunks(chunks: &[&[u8]], max: u64) -> Outcome {
        run_chunks_on(MessageDecoder::new(max), chunks)
    }

    fn run_chunks_on(mut decoder: MessageDecoder, chunks: &[&[u8]]) -> Outcome {
        let mut events = Vec::new();
        for chunk in chunks {
            let mut done = 0;
            loop {
                match decoder.feed(&chunk[done..]) {
                    Err(error) => {
                        // Poisoned: the same error again, whatever comes next.
                        assert_eq!(decoder.feed(b"\x81\x80abcd"), Err(error));
                        return (events, Some(error));
                    }
                    Ok((used, event)) => {
                        assert!(used <= chunk.len() - done);
                        done += used;
                        match event {
                            Some(event) => events.push(own(event)),
                            None => {
                                assert_eq!(done, chunk.len(), "no event yet bytes left");
                                break;
                            }
                        }
                    }
                }
            }
        }
        (events, None)
    }

    /// Feeds `input` whole, split in two at every offset, and one byte at a time; all must
    /// agree. Returns the outcome.
    fn run_every_split(input: &[u8], max: u64) -> Outcome {
        let whole = run_chunks(&[input], max);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(run_chunks(&[a, b], max), whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run_chunks(&bytes, max), whole, "one byte at a time");
        whole
    }

    fn masked(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        encode_masked_frame(fin, opcode, payload, MASK)
    }

    fn text(payload: &str) -> Owned {
        Owned::Message(MessageKind::Text, payload.as_bytes().to_vec())
    }

    fn fails_with(input: &[u8], max: u64, error: ProtocolError) {
        assert_eq!(run_every_split(input, max).1, Some(error));
    }

    #[test]
    fn rfc_5_7_masked_hello_is_a_text_message() {
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(run_every_split(&frame, MAX), (vec![text("Hello")], None));
    }

    #[test]
    fn rfc_5_7_unmasked_hello_is_refused_by_the_server() {
        let frame = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        fails_with(&frame, MAX, ProtocolError::Unmasked);
        assert_eq!(ProtocolError::Unmasked.close_code(), 1002);
    }

    #[test]
    fn rfc_5_7_fragmented_hel_lo_reassembles() {
        let mut input = masked(false, OpCode::Text, b"Hel");
        input.extend(masked(true, OpCode::Continuation, b"lo"));
        assert_eq!(run_every_split(&input, MAX), (vec![text("Hello")], None));
    }

    #[test]
    fn rfc_5_7_ping_and_pong_carry_hello() {
        let mut input = masked(true, OpCode::Ping, b"Hello");
        // The RFC's own masked Pong.
        input.extend([
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ]);
        assert_eq!(
            run_every_split(&input, MAX),
            (
                vec![
                    Owned::Ping(b"Hello".to_vec()),
                    Owned::Pong(b"Hello".to_vec())
                ],
                None
            )
        );
    }

    #[test]
    fn rfc_5_7_256_byte_and_64_kib_binary_messages() {
        let small: Vec<u8> = (0..=255u8).collect();
        let frame = masked(true, OpCode::Binary, &small);
        assert_eq!(frame[..4], [0x82, 0xFE, 0x01, 0x00]);
        assert_eq!(
            run_every_split(&frame, MAX),
            (vec![Owned::Message(MessageKind::Binary, small)], None)
        );

        let large: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let frame = masked(true, OpCode::Binary, &large);
        assert_eq!(frame[..10], [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]);
        let expected = (vec![Owned::Message(MessageKind::Binary, large)], None);
        assert_eq!(run_chunks(&[&frame], MAX), expected);
        let bytes: Vec<&[u8]> = frame.chunks(1).collect();
        assert_eq!(run_chunks(&bytes, MAX), expected);
        for piece in [3, 7, 1000, 4096] {
            let pieces: Vec<&[u8]> = frame.chunks(piece).collect();
            assert_eq!(run_chunks(&pieces, MAX), expected, "pieces of {piece}");
        }
    }

    #[test]
    fn control_frames_may_be_interleaved_in_a_fragmented_message() {
        let mut input = masked(false, OpCode::Binary, b"ab");
        input.extend(masked(true, OpCode::Ping, b"p1"));
        input.extend(masked(false, OpCode::Continuation, b"cd"));
        input.extend(masked(true, OpCode::Pong, b""));
        input.extend(masked(true, OpCode::Continuation, b"ef"));
        input.extend(masked(true, OpCode::Text, "après".as_bytes()));
        assert_eq!(
            run_every_split(&input, MAX),
            (
                vec![
                    Owned::Ping(b"p1".to_vec()),
                    Owned::Pong(Vec::new()),
                    Owned::Message(MessageKind::Binary, b"abcdef".to_vec()),
                    text("après"),
                ],
                None
            )
        );
    }

    #[test]
    fn empty_frames_and_empty_messages_are_valid() {
        let mut input = masked(true, OpCode::Text, b"");
        input.extend(masked(true, OpCode::Binary, b""));
        input.extend(masked(false, OpCode::Text, b""));
        input.extend(masked(false, OpCode::Continuation, b""));
        input.extend(masked(false, OpCode::Continuation, b"x"));
        input.extend(masked(true, OpCode::Continuation, b""));
        input.extend(masked(true, OpCode::Ping, b""));
        assert_eq!(
            run_every_split(&input, MAX),
            (
                vec![
                    text(""),
                    Owned::Message(MessageKind::Binary, Vec::new()),
                    text("x"),
                    Owned::Ping(Vec::new()),
                ],
                None
            )
        );
    }

    #[test]
    fn close_frames_are_decoded_and_validated() {
        let mut input = masked(true, OpCode::Close, b"");
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend("fin ✓".as_bytes());
        input.extend(masked(true, OpCode::Close, &payload));
        input.extend(masked(true, OpCode::Close, &4999u16.to_be_bytes()));
        assert_eq!(
            run_every_split(&input, MAX),
            (
                vec![
                    Owned::Close(None),
                    Owned::Close(Some((1000, "fin ✓".to_owned()))),
                    Owned::Close(Some((4999, String::new()))),
                ],
                None
            )
        );
    }

    #[test]
    fn close_codes_valid_and_invalid() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert!(is_valid_close_code(code), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_valid_close_code(code), "{code}");
        }
    }

    #[test]
    fn frame_errors_pass_through_with_their_close_code() {
        let reserved = [0xC1, 0x80, 1, 2, 3, 4];
        fails_with(
            &reserved,
            MAX,
            ProtocolError::Frame(FrameError::ReservedBits { byte: 0xC1 }),
        );
        assert_eq!(
            ProtocolError::Frame(FrameError::ReservedBits { byte: 0xC1 }).close_code(),
            1002
        );
        fails_with(
            &[0x8B, 0x80],
            MAX,
            ProtocolError::Frame(FrameError::ReservedOpcode { nibble: 0xB }),
        );
        fails_with(
            &[0x09, 0x80],
            MAX,
            ProtocolError::Frame(FrameError::FragmentedControl {
                opcode: OpCode::Ping,
            }),
        );
        fails_with(
            &[0x89, 0xFE, 0x00, 0x7E],
            MAX,
            ProtocolError::Frame(FrameError::ControlTooLong {
                opcode: OpCode::Ping,
                len: 126,
            }),
        );
        fails_with(
            &[0x82, 0xFE, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0, 0, 0],
            MAX,
            ProtocolError::Frame(FrameError::NonMinimalLength { len: 5 }),
        );
    }

    #[test]
    fn length_2_pow_63_is_1002_before_the_length_is_complete() {
        let input = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        fails_with(&input, MAX, ProtocolError::Frame(FrameError::LengthTopBit));
        let mut decoder = MessageDecoder::new(MAX);
        assert_eq!(
            decoder.feed(&input[..3]),
            Err(ProtocolError::Frame(FrameError::LengthTopBit))
        );
        assert_eq!(
            ProtocolError::Frame(FrameError::LengthTopBit).close_code(),
            1002
        );
    }

    #[test]
    fn length_2_pow_62_is_1009_from_the_header_alone() {
        let input = [0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        let error = ProtocolError::Frame(FrameError::Oversize {
            len: 1 << 62,
            max: MAX,
        });
        fails_with(&input, MAX, error);
        let mut decoder = MessageDecoder::new(MAX);
        assert_eq!(decoder.feed(&input[..10]), Err(error));
        assert_eq!(decoder.heap_bytes(), 0);
        assert_eq!(error.close_code(), 1009);
        // Even with no limit at all nothing is allocated for a declared length.
        let mut decoder = MessageDecoder::new(u64::MAX);
        assert_eq!(decoder.feed(&input), Ok((14, None)));
        assert_eq!(decoder.heap_bytes(), 0);
    }

    #[test]
    fn message_too_big_is_1009_from_the_declared_length() {
        // Two fragments of 6 bytes with a limit of 10: refused at the second header.
        let mut input = masked(false, OpCode::Binary, b"abcdef");
        let second = masked(true, OpCode::Continuation, b"ghijkl");
        let second_header_len = 6;
        input.extend(&second);
        let error = ProtocolError::MessageTooBig { len: 12, max: 10 };
        fails_with(&input, 10, error);
        let mut decoder = MessageDecoder::new(10);
        let header_end = input.len() - second.len() + second_header_len;
        assert_eq!(decoder.feed(&input[..header_end]), Err(error));
        assert_eq!(error.close_code(), 1009);
        // Exactly the limit is fine.
        let mut exact = masked(false, OpCode::Binary, b"abcde");
        exact.extend(masked(true, OpCode::Continuation, b"fghij"));
        assert_eq!(
            run_every_split(&exact, 10),
            (
                vec![Owned::Message(MessageKind::Binary, b"abcdefghij".to_vec())],
                None
            )
        );
        // A single frame over the limit is refused by the frame layer, also 1009.
        let single = masked(true, OpCode::Text, b"abcdefghijk");
        fails_with(
            &single,
            10,
            ProtocolError::Frame(FrameError::Oversize { len: 11, max: 10 }),
        );
    }

    #[test]
    fn unexpected_continuation_is_1002() {
        fails_with(
            &masked(true, OpCode::Continuation, b"x"),
            MAX,
            ProtocolError::UnexpectedContinuation,
        );
        // Also after a complete message.
        let mut input = masked(true, OpCode::Text, b"a");
        input.extend(masked(true, OpCode::Continuation, b"b"));
        assert_eq!(
            run_every_split(&input, MAX),
            (vec![text("a")], Some(ProtocolError::UnexpectedContinuation))
        );
        assert_eq!(ProtocolError::UnexpectedContinuation.close_code(), 1002);
    }

    #[test]
    fn new_message_before_the_fragmented_one_ends_is_1002() {
        let mut input = masked(false, OpCode::Text, b"a");
        input.extend(masked(true, OpCode::Binary, b"b"));
        let error = ProtocolError::ExpectedContinuation {
            opcode: OpCode::Binary,
        };
        fails_with(&input, MAX, error);
        assert_eq!(error.close_code(), 1002);
    }

    #[test]
    fn close_with_one_byte_is_1002() {
        fails_with(
            &masked(true, OpCode::Close, &[0x03]),
            MAX,
            ProtocolError::CloseOneByte,
        );
        assert_eq!(ProtocolError::CloseOneByte.close_code(), 1002);
    }

    #[test]
    fn close_with_reserved_code_is_1002() {
        for code in [1005u16, 1006, 999, 5000] {
            fails_with(
                &masked(true, OpCode::Close, &code.to_be_bytes()),
                MAX,
                ProtocolError::InvalidCloseCode { code },
            );
        }
        assert_eq!(
            ProtocolError::InvalidCloseCode { code: 1005 }.close_code(),
            1002
        );
    }

    #[test]
    fn close_reason_not_utf8_is_1007() {
        let payload = [0x03, 0xE8, b'o', b'k', 0xFF];
        fails_with(
            &masked(true, OpCode::Close, &payload),
            MAX,
            ProtocolError::CloseReasonUtf8,
        );
        assert_eq!(ProtocolError::CloseReasonUtf8.close_code(), 1007);
    }

    #[test]
    fn invalid_utf8_fails_mid_frame_before_fin() {
        // A 10-byte text frame; the third byte is invalid; the other 7 never arrive.
        let frame = masked(true, OpCode::Text, b"ab\xFFdefghij");
        let mut decoder = MessageDecoder::new(MAX);
        let error = ProtocolError::InvalidUtf8 { offset: 2 };
        assert_eq!(decoder.feed(&frame[..6 + 2]), Ok((8, None)));
        assert_eq!(decoder.feed(&frame[8..9]), Err(error));
        fails_with(&frame, MAX, error);
        assert_eq!(error.close_code(), 1007);
        // A surrogate's second byte already rules it out.
        let frame = masked(true, OpCode::Text, b"a\xED\xA0\x80");
        let mut decoder = MessageDecoder::new(MAX);
        assert_eq!(decoder.feed(&frame[..6 + 2]), Ok((8, None)));
        assert_eq!(
            decoder.feed(&frame[8..9]),
            Err(ProtocolError::InvalidUtf8 { offset: 1 })
        );
    }

    #[test]
    fn invalid_utf8_fails_across_fragments_before_fin() {
        // "a" then the first two bytes of "€", continued by a byte that cannot finish it.
        let first = masked(false, OpCode::Text, b"a\xE2\x82");
        let second = masked(false, OpCode::Continuation, b"xyz");
        let mut input = first.clone();
        input.extend(masked(true, OpCode::Ping, b""));
        input.extend(&second);
        input.extend(masked(true, OpCode::Continuation, b"more"));
        let error = ProtocolError::InvalidUtf8 { offset: 1 };
        assert_eq!(
            run_every_split(&input, MAX),
            (vec![Owned::Ping(Vec::new())], Some(error))
        );
        let mut decoder = MessageDecoder::new(MAX);
        assert_eq!(decoder.feed(&first), Ok((first.len(), None)));
        // The continuation's header alone is fine; its first payload byte is not.
        assert_eq!(decoder.feed(&second[..6]), Ok((6, None)));
        assert_eq!(decoder.feed(&second[6..7]), Err(error));
    }

    #[test]
    fn code_points_split_across_fragments_and_reads_are_valid() {
        let euro = "€".as_bytes();
        let mut input = masked(false, OpCode::Text, &euro[..1]);
        input.extend(masked(true, OpCode::Pong, b"z"));
        input.extend(masked(false, OpCode::Continuation, &euro[1..2]));
        input.extend(masked(true, OpCode::Continuation, &euro[2..]));
        let four = "𝄞".as_bytes();
        input.extend(masked(false, OpCode::Text, &four[..3]));
        input.extend(masked(true, OpCode::Continuation, &four[3..]));
        assert_eq!(
            run_every_split(&input, MAX),
            (vec![Owned::Pong(b"z".to_vec()), text("€"), text("𝄞")], None)
        );
    }

    #[test]
    fn incomplete_code_point_at_fin_is_1007() {
        let mut input = masked(false, OpCode::Text, b"ab");
        input.extend(masked(true, OpCode::Continuation, b"\xF0\x9F\x98"));
        fails_with(&input, MAX, ProtocolError::InvalidUtf8 { offset: 2 });
    }

    #[test]
    fn errors_display_what_and_where() {
        let cases = [
            (
                ProtocolError::Frame(FrameError::LengthTopBit),
                "invalid frame: 64-bit",
            ),
            (ProtocolError::Unmasked, "not masked"),
            (ProtocolError::UnexpectedContinuation, "continuation"),
            (
                ProtocolError::ExpectedContinuation {
                    opcode: OpCode::Text,
                },
                "text frame",
            ),
            (ProtocolError::InvalidUtf8 { offset: 7 }, "byte 7"),
            (
                ProtocolError::MessageTooBig { len: 11, max: 10 },
                "11 bytes",
            ),
            (ProtocolError::CloseOneByte, "one byte"),
            (ProtocolError::InvalidCloseCode { code: 1005 }, "1005"),
            (ProtocolError::CloseReasonUtf8, "reason"),
        ];
        for (error, needle) in cases {
            let text = error.to_string();
            assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        }
    }

    #[test]
    fn idle_decoder_holds_no_heap_and_buffer_is_reused() {
        let mut decoder = MessageDecoder::new(MAX);
        assert!(decoder.is_idle());
        assert_eq!(decoder.heap_bytes(), 0);
        let frame = masked(true, OpCode::Binary, &[9; 1000]);
        let (used, event) = decoder.feed(&frame).unwrap();
        assert_eq!(used, frame.len());
        assert!(matches!(event, Some(Event::Message { payload, .. }) if payload.len() == 1000));
        assert!(decoder.is_idle());
        assert_eq!(decoder.heap_bytes(), 1000);
        // The next message reuses the buffer.
        let (_, event) = decoder.feed(&frame).unwrap();
        assert!(event.is_some());
        assert_eq!(decoder.heap_bytes(), 1000);
        decoder.shrink();
        assert_eq!(decoder.heap_bytes(), 0);
        // Mid-header and mid-message are not idle.
        assert_eq!(decoder.feed(&frame[..1]).unwrap(), (1, None));
        assert!(!decoder.is_idle());
        assert_eq!(decoder.feed(&frame[1..20]).unwrap(), (19, None));
        assert!(!decoder.is_idle());
        let (_, event) = decoder.feed(&frame[20..]).unwrap();
        assert!(event.is_some());
        assert!(decoder.is_idle());
        let ping = masked(true, OpCode::Ping, b"p");
        decoder.feed(&ping[..3]).unwrap();
        assert!(!decoder.is_idle());
    }

    #[test]
    fn capacity_follows_received_bytes_not_the_declared_length() {
        let payload = vec![1u8; 100_000];
        let frame = masked(true, OpCode::Binary, &payload);
        let mut decoder = MessageDecoder::new(MAX);
        assert_eq!(decoder.feed(&frame[..14 + 10]).unwrap(), (24, None));
        assert_eq!(decoder.heap_bytes(), 10);
        let mut at = 24;
        while at < frame.len() {
            let end = (at + 1500).min(frame.len());
            let (used, event) = decoder.feed(&frame[at..end]).unwrap();
            at += used;
            if let Some(event) = event {
                assert_eq!(at, frame.len());
                assert!(matches!(event, Event::Message { payload: p, .. } if p == payload));
            }
            assert!(decoder.heap_bytes() <= payload.len());
        }
        assert_eq!(decoder.heap_bytes(), payload.len());
    }

    #[test]
    fn shrink_mid_message_keeps_the_bytes() {
        let mut input = masked(false, OpCode::Text, b"abc");
        input.extend(masked(true, OpCode::Continuation, b"def"));
        let cut = input.len() / 2 + 3;
        let mut decoder = MessageDecoder::new(MAX);
        assert_eq!(decoder.feed(&input[..cut]).unwrap(), (cut, None));
        decoder.shrink();
        let (_, event) = decoder.feed(&input[cut..]).unwrap();
        assert_eq!(
            event,
            Some(Event::Message {
                kind: MessageKind::Text,
                payload: b"abcdef"
            })
        );
    }

    #[test]
    fn lowering_the_limit_applies_to_the_next_header() {
        let mut decoder = MessageDecoder::new(MAX);
        decoder.set_max_message_size(3);
        assert_eq!(
            decoder.feed(&masked(true, OpCode::Binary, b"abcd")),
            Err(ProtocolError::Frame(FrameError::Oversize {
                len: 4,
                max: 3
            }))
        );
    }

    #[test]
    fn unmasked_control_frame_is_1002() {
        fails_with(
            &encode_frame(true, OpCode::Ping, b"x"),
            MAX,
            ProtocolError::Unmasked,
        );
    }

    /// A message as the client sends it: kind, payload, and where it is cut into frames.
    #[derive(Debug, Clone)]
    struct Sent {
        kind: MessageKind,
        payload: Vec<u8>,
        cuts: Vec<usize>,
        pings: Vec<Vec<u8>>,
        masks: Vec<[u8; 4]>,
    }

    fn any_sent() -> impl Strategy<Value = Sent> {
        let payload = prop_oneof![
            any::<String>().prop_map(|s| (MessageKind::Text, s.into_bytes())),
            proptest::collection::vec(any::<u8>(), 0..600).prop_map(|b| (MessageKind::Binary, b)),
        ];
        (
            payload,
            proptest::collection::vec(any::<usize>(), 0..4),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..126), 0..3),
            proptest::collection::vec(any::<[u8; 4]>(), 8),
        )
            .prop_map(|((kind, payload), cuts, pings, masks)| Sent {
                kind,
                payload,
                cuts,
                pings,
                masks,
            })
    }

    /// Encodes the message as masked frames, with its pings after the first fragment, and
    /// returns the events the decoder must produce.
    fn encode_sent(sent: &Sent, out: &mut Vec<u8>, expected: &mut Vec<Owned>) {
        let mut cuts: Vec<usize> = sent
            .cuts
            .iter()
            .map(|c| c % (sent.payload.len() + 1))
            .collect();
        cuts.sort_unstable();
        let mut bounds = vec![0];
        bounds.extend(cuts);
        bounds.push(sent.payload.len());
        let pieces: Vec<&[u8]> = bounds
            .windows(2)
            .map(|w| &sent.payload[w[0]..w[1]])
            .collect();
        let mut masks = sent.masks.iter().cycle();
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = match (i, sent.kind) {
                (0, MessageKind::Text) => OpCode::Text,
                (0, MessageKind::Binary) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            let fin = i + 1 == pieces.len();
            out.extend(encode_masked_frame(
                fin,
                opcode,
                piece,
                *masks.next().unwrap(),
            ));
            if i == 0 && !fin {
                for ping in &sent.pings {
                    out.extend(encode_masked_frame(
                        true,
                        OpCode::Ping,
                        ping,
                        *masks.next().unwrap(),
                    ));
                    expected.push(Owned::Ping(ping.clone()));
                }
            }
        }
        expected.push(Owned::Message(sent.kind, sent.payload.clone()));
    }

    /// A random, often invalid frame, for split-invariance of errors.
    fn any_frame() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<bool>(),
            0u8..16,
            proptest::option::weighted(0.9, any::<[u8; 4]>()),
            proptest::collection::vec(any::<u8>(), 0..140),
            any::<u8>(),
        )
            .prop_map(|(fin, nibble, mask, payload, rsv)| {
                let opcode = OpCode::from_nibble(nibble).unwrap_or(OpCode::Binary);
                let mut frame = match mask {
                    Some(mask) => encode_masked_frame(fin, opcode, &payload, mask),
                    None => encode_frame(fin, opcode, &payload),
                };
                // Now and then a reserved bit or opcode.
                if rsv < 8 {
                    frame[0] |= (rsv % 8) << 4;
                } else if rsv < 16 {
                    frame[0] = (frame[0] & 0xF0) | nibble;
                }
                frame
            })
    }

    proptest! {
        #[test]
        fn masked_frames_round_trip_through_the_decoder(
            messages in proptest::collection::vec(any_sent(), 1..5),
            splits in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for sent in &messages {
                encode_sent(sent, &mut input, &mut expected);
            }
            let mut cuts: Vec<usize> = splits.iter().map(|s| s % (input.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for cut in cuts {
                chunks.push(&input[at..cut]);
                at = cut;
            }
            chunks.push(&input[at..]);
            prop_assert_eq!(run_chunks(&chunks, MAX), (expected.clone(), None));
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            prop_assert_eq!(run_chunks(&bytes, MAX), (expected, None));
        }

        #[test]
        fn the_split_never_changes_the_outcome(
            frames in proptest::collection::vec(any_frame(), 1..6),
            split in any::<usize>(),
            max in 0u64..300,
        ) {
            let input = frames.concat();
            let whole = run_chunks(&[&input], max);
            let cut = split % (input.len() + 1);
            prop_assert_eq!(run_chunks(&[&input[..cut], &input[cut..]], max), whole.clone());
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            prop_assert_eq!(run_chunks(&bytes, max), whole);
        }
    }

    mod deflate {
        use super::*;
        use crate::ws::deflate::{self, Deflater, Policy};

        fn agreed(offer: &str) -> Agreed {
            let policy = Policy {
                server_max_window_bits: 15,
                client_no_context_takeover: false,
            };
            deflate::negotiate(offer.as_bytes(), policy).unwrap()
        }

        /// A masked frame with RSV1 set.
        fn rsv1(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
            let mut frame = masked(fin, opcode, payload);
            frame[0] |= 0x40;
            frame
        }

        fn compress(payload: &[u8]) -> Vec<u8> {
            let mut deflater = Deflater::default();
            match deflater.compress(payload, 15, 6) {
                Some(bytes) => bytes.to_vec(),
                None => panic!("{} bytes did not compress", payload.len()),
            }
        }

        /// Every split of `input` into two, and one byte at a time, on a deflate decoder.
        fn run_deflate(input: &[u8], max: u64, offer: &str) -> Outcome {
            let make = || MessageDecoder::with_deflate(max, &agreed(offer));
            let whole = run_chunks_on(make(), &[input]);
            for cut in 0..=input.len() {
                let (a, b) = input.split_at(cut);
                assert_eq!(run_chunks_on(make(), &[a, b]), whole, "split at {cut}");
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(run_chunks_on(make(), &bytes), whole, "one byte at a time");
            whole
        }

        const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

        #[test]
        fn rfc_7692_hello_inflates_whole_and_fragmented() {
            let input = rsv1(true, OpCode::Text, &HELLO);
            assert_eq!(
                run_deflate(&input, MAX, "permessage-deflate"),
                (vec![text("Hello")], None)
            );
            // RFC 7692 §7.2.3.1's fragmented form: RSV1 on the first frame only.
            let mut input = rsv1(false, OpCode::Text, &HELLO[..3]);
            input.extend(masked(true, OpCode::Ping, b"p"));
            input.extend(masked(true, OpCode::Continuation, &HELLO[3..]));
            assert_eq!(
                run_deflate(&input, MAX, "permessage-deflate"),
                (vec![Owned::Ping(b"p".to_vec()), text("Hello")], None)
            );
        }

        #[test]
        fn context_is_kept_across_messages_unless_no_takeover() {
            // RFC 7692 §7.2.3.2: the second "Hello" refers back to the first.
            let mut input = rsv1(true, OpCode::Text, &HELLO);
            input.extend(rsv1(true, OpCode::Text, &[0xf2, 0x00, 0x11, 0x00, 0x00]));
            input.extend(masked(true, OpCode::Text, b"plain"));
            assert_eq!(
                run_deflate(&input, MAX, "permessage-deflate"),
                (vec![text("Hello"), text("Hello"), text("plain")], None)
            );
            // Without takeover the back reference is invalid data, and no state is kept.
            let outcome = run_deflate(
                &input,
                MAX,
                "permessage-deflate; client_no_context_takeover",
            );
            assert_eq!(outcome.0, vec![text("Hello")]);
            assert_eq!(
                outcome.1.map(|e| e.close_code()),
                Some(CLOSE_INVALID_PAYLOAD)
            );
            let mut decoder = MessageDecoder::with_deflate(
                MAX,
                &agreed("permessage-deflate; client_no_context_takeover"),
            );
            let frame = rsv1(true, OpCode::Text, &HELLO);
            assert!(matches!(decoder.feed(&frame), Ok((_, Some(_)))));
            assert_eq!(decoder.inflate_state_bytes(), 0);
            let mut decoder = MessageDecoder::with_deflate(MAX, &agreed("permessage-deflate"));
            assert!(matches!(decoder.feed(&frame), Ok((_, Some(_)))));
            assert!(decoder.inflate_state_bytes() > 32 * 1024);
        }

        #[test]
        fn rsv1_without_negotiation_is_1002() {
            let error = run_every_split(&rsv1(true, OpCode::Text, &HELLO), MAX)
                .1
                .unwrap();
            assert_eq!(
                error,
                ProtocolError::Frame(FrameError::ReservedBits { byte: 0xC1 })
            );
            assert_eq!(error.close_code(), CLOSE_PROTOCOL_ERROR);
        }

        #[test]
        fn rsv1_on_a_continuation_is_1002() {
            let mut input = rsv1(false, OpCode::Text, &HELLO[..3]);
            input.extend(rsv1(true, OpCode::Continuation, &HELLO[3..]));
            let error = run_deflate(&input, MAX, "permessage-deflate").1.unwrap();
            assert_eq!(
                error,
                ProtocolError::Frame(FrameError::ReservedBits { byte: 0xC0 })
            );
            assert_eq!(error.close_code(), CLOSE_PROTOCOL_ERROR);
        }

        #[test]
        fn rsv1_on_a_control_frame_is_1002() {
            for (opcode, byte) in [
                (OpCode::Ping, 0xC9),
                (OpCode::Pong, 0xCA),
                (OpCode::Close, 0xC8),
            ] {
                let error = run_deflate(&rsv1(true, opcode, b""), MAX, "permessage-deflate")
                    .1
                    .unwrap();
                assert_eq!(
                    error,
                    ProtocolError::Frame(FrameError::ReservedBits { byte })
                );
                assert_eq!(error.close_code(), CLOSE_PROTOCOL_ERROR);
            }
        }

        #[test]
        fn invalid_deflate_data_is_1007() {
            let error = run_deflate(
                &rsv1(true, OpCode::Binary, &[0xff, 0xff]),
                MAX,
                "permessage-deflate",
            )
            .1
            .unwrap();
            assert_eq!(error, ProtocolError::InvalidDeflate);
            assert_eq!(error.close_code(), CLOSE_INVALID_PAYLOAD);
        }

        #[test]
        fn invalid_utf8_after_inflate_is_1007() {
            let compressed = compress(
                &[b'a'; 300]
                    .iter()
                    .copied()
                    .chain([0xff])
                    .collect::<Vec<_>>(),
            );
            let error = run_deflate(
                &rsv1(true, OpCode::Text, &compressed),
                MAX,
                "permessage-deflate",
            )
            .1
            .unwrap();
            assert_eq!(error, ProtocolError::InvalidUtf8 { offset: 300 });
            // A code point cut at the end of the inflated message.
            let compressed = compress(
                &[b'a'; 300]
                    .iter()
                    .copied()
                    .chain([0xe2, 0x82])
                    .collect::<Vec<_>>(),
            );
            let error = run_deflate(
                &rsv1(true, OpCode::Text, &compressed),
                MAX,
                "permessage-deflate",
            )
            .1
            .unwrap();
            assert_eq!(error, ProtocolError::InvalidUtf8 { offset: 300 });
        }

        #[test]
        fn invalid_utf8_before_invalid_deflate_is_the_error_however_split() {
            // fuzz/corpus/ws_deflate/crash-utf8-before-invalid-deflate-regression: the
            // stream inflates to a byte that cannot start UTF-8, then breaks DEFLATE. Fed
            // whole, the inflater fails after producing that byte; split, the byte is
            // checked first. Either way the error is the UTF-8 one.
            let payload = [0x4a, 0xed, 0xcb, 0x31, 0x0a, 0x82, 0xff, 0x00, 0x00];
            let input = rsv1(true, OpCode::Text, &payload);
            let outcome = run_deflate(&input, MAX, "permessage-deflate");
            assert!(
                matches!(outcome.1, Some(ProtocolError::InvalidUtf8 { .. })),
                "{outcome:?}"
            );
        }

        #[test]
        fn over_the_limit_before_invalid_deflate_is_1009_however_split() {
            // fuzz/corpus/ws_deflate/crash-over-limit-then-invalid-deflate-regression: the
            // stream inflates past 300 bytes, then breaks DEFLATE. Fed whole, the inflater
            // meets the bad data in the call that passed the limit; split, the limit is
            // seen first. Either way it is 1009.
            let payload = [
                0x4a, 0x4c, 0x1c, 0x05, 0xc4, 0x82, 0x7a, 0x7a, 0x3d, 0x7a, 0x7a, 0x7a, 0xfa, 0x7a,
                0x7a, 0x7a, 0xcc, 0x7a, 0x00, 0x23, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00,
            ];
            let input = rsv1(true, OpCode::Text, &payload);
            let outcome = run_deflate(&input, 300, "permessage-deflate");
            assert!(
                matches!(outcome.1, Some(ProtocolError::MessageTooBig { .. })),
                "{outcome:?}"
            );
        }

        #[test]
        fn zip_bomb_is_1009_before_the_memory_is_spent() {
            let max = 64 * 1024;
            let bomb = compress(&vec![0u8; 4 << 20]);
            assert!(bomb.len() < 8 * 1024);
            let mut decoder = MessageDecoder::with_deflate(max, &agreed("permessage-deflate"));
            let frame = rsv1(true, OpCode::Binary, &bomb);
            let error = decoder.feed(&frame).unwrap_err();
            assert!(
                matches!(error, ProtocolError::MessageTooBig { .. }),
                "{error:?}"
            );
            assert_eq!(error.close_code(), CLOSE_MESSAGE_TOO_BIG);
            assert!(
                decoder.heap_bytes() <= max as usize + 1,
                "{}",
                decoder.heap_bytes()
            );
            // Exactly the limit inflates.
            let exact = compress(&vec![0u8; max as usize]);
            let outcome = run_chunks_on(
                MessageDecoder::with_deflate(max, &agreed("permessage-deflate")),
                &[&rsv1(true, OpCode::Binary, &exact)],
            );
            assert_eq!(outcome.1, None);
        }

        #[test]
        fn compressed_frames_longer_than_the_message_limit_are_1009_at_the_header() {
            let input = rsv1(true, OpCode::Binary, &[0u8; 200]);
            let error = run_chunks_on(
                MessageDecoder::with_deflate(100, &agreed("permessage-deflate")),
                &[&input],
            )
            .1
            .unwrap();
            assert_eq!(error.close_code(), CLOSE_MESSAGE_TOO_BIG);
        }

        #[test]
        fn empty_compressed_message_is_empty() {
            let input = rsv1(true, OpCode::Binary, &[0x00]);
            assert_eq!(
                run_deflate(&input, MAX, "permessage-deflate"),
                (vec![Owned::Message(MessageKind::Binary, Vec::new())], None)
            );
            let input = rsv1(true, OpCode::Text, &[]);
            assert_eq!(
                run_deflate(&input, MAX, "permessage-deflate"),
                (vec![text("")], None)
            );
        }
    }
}
