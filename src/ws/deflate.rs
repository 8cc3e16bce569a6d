//! RFC 7692 permessage-deflate: the `Sec-WebSocket-Extensions` offer parser, the choice of
//! an offer and the response, and the two codec halves (`Inflater` for what a client
//! sends, `Deflater` for what wson sends).
//!
//! wson always answers `server_no_context_takeover`: each message it sends is compressed on
//! its own, so a broadcast is compressed once and the same bytes go to every client that
//! negotiated the same window. A client may keep its context across messages (then its
//! connection keeps an `Inflater`, about 42 KiB); the inflated size is bounded as it grows,
//! so a small message that inflates past `max_message_size` fails before the memory is
//! spent. Nothing here touches a socket or a clock.

use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::ws::frame::{FrameHeader, OpCode, encode_header};

/// The extension's registered name (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The largest LZ77 window, as a power of two: 32 KiB (RFC 7692 §7.1.2).
pub const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window zlib compresses with: it refuses a raw DEFLATE stream with a
/// 256-byte window (8 bits). A client that asks for 8 is accepted, and every message to it
/// goes uncompressed, which RFC 7692 §6 allows per message (its own messages are inflated
/// as usual); a larger inflate window decodes a smaller one, so its 8 is inflated with 9.
pub const MIN_ZLIB_WINDOW_BITS: u8 = 9;

/// RFC 7692 §7.2.1: the compressed payload of a message ends without these 4 octets,
/// which the receiver appends before inflating.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Longest parameter name or value kept in a `Decline`, so a hostile header cannot put
/// kilobytes into a log line.
const DECLINE_TEXT_MAX: usize = 32;

/// One extension of a `Sec-WebSocket-Extensions` list: its name and parameters, values
/// unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    pub params: Vec<(String, Option<String>)>,
}

/// The header breaks RFC 6455 §9.1's grammar; no extension of it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset in the joined header value.
    pub offset: usize,
}

/// A permessage-deflate offer's parameters, each present at most once with a valid value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offer {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value (the client accepts a limit from us).
    pub client_max_window_bits: Option<Option<u8>>,
}

/// Why a permessage-deflate offer was declined (RFC 7692 §5: "a server MUST decline an
/// offer" it cannot accept, and then looks at the next one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decline {
    /// RFC 7692 §7: an offer with "multiple parameters with the same name".
    Duplicate { name: &'static str },
    /// RFC 7692 §7: "an extension parameter that is not defined for the extension".
    Unknown { name: String },
    /// RFC 7692 §7: "an extension parameter with an invalid value".
    BadValue { name: &'static str, value: String },
}

impl fmt::Display for Decline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decline::Duplicate { name } => write!(f, "{name} given twice"),
            Decline::Unknown { name } => write!(f, "unknown parameter {name:?}"),
            Decline::BadValue { name, value } => write!(f, "{name} has invalid value {value:?}"),
        }
    }
}

/// What wson allows, from `[compression]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// 9..=15: the window wson compresses with when the client sets no smaller one.
    pub server_max_window_bits: u8,
    /// Ask every client for `client_no_context_takeover`.
    pub client_no_context_takeover: bool,
}

/// Whether the client keeps its compression context from one message to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientContext {
    /// The connection keeps its `Inflater` across messages.
    Takeover,
    /// Each message inflates on its own; no state is kept between messages.
    NoTakeover,
}

/// An accepted offer: what the connection uses and the response's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// 8..=15: the window wson compresses this client's messages with; 8 (which zlib
    /// cannot compress with) means they all go uncompressed.
    pub server_window_bits: u8,
    /// 9..=15: the window the client's messages are inflated with.
    pub client_window_bits: u8,
    pub client_context: ClientContext,
    /// The response names `server_max_window_bits` (the client offered it).
    answer_server_bits: bool,
}

impl Agreed {
    /// The window to compress with, `None` when messages to this client go uncompressed.
    #[inline]
    pub fn compress_window(&self) -> Option<u8> {
        (self.server_window_bits >= MIN_ZLIB_WINDOW_BITS).then_some(self.server_window_bits)
    }

    /// The `Sec-WebSocket-Extensions` value of the 101 response.
    pub fn response(&self) -> String {
        // RFC 7692 §7.1.1.1: a server may answer server_no_context_takeover whether or not
        // the client offered it; wson always does, so one compression serves every client.
        let mut value = format!("{EXTENSION_NAME}; server_no_context_takeover");
        if self.client_context == ClientContext::NoTakeover {
            // RFC 7692 §7.1.1.2: "A server MAY include the client_no_context_takeover
            // extension parameter in the corresponding extension negotiation response".
            value.push_str("; client_no_context_takeover");
        }
        if self.answer_server_bits {
            // RFC 7692 §7.1.2.1: a server accepts an offer with server_max_window_bits "by
            // including the server_max_window_bits extension parameter in the extension
            // negotiation response ... with the same or smaller value as the offer".
            value.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_window_bits
            ));
        }
        value
    }
}

/// Picks the first permessage-deflate offer of `header` (every `Sec-WebSocket-Extensions`
/// value, joined with ", ") that wson can accept. `None`: no offer, a header that breaks
/// the grammar, or every offer declined.
pub fn negotiate(header: &[u8], policy: Policy) -> Option<Agreed> {
    let extensions = parse_extensions(header).ok()?;
    extensions
        .iter()
        .filter(|extension| extension.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .find_map(|extension| accept(parse_offer(extension).ok()?, policy).ok())
}

/// What wson answers to one valid offer.
pub fn accept(offer: Offer, policy: Policy) -> Result<Agreed, Decline> {
    let policy_bits = policy
        .server_max_window_bits
        .clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS);
    let server_window_bits = match offer.server_max_window_bits {
        Some(bits) => bits.min(policy_bits),
        None => policy_bits,
    };
    // The client compresses with at most the window it offered; a larger inflate window
    // decodes any smaller one, so 8 is inflated with 9.
    let client_window_bits = match offer.client_max_window_bits {
        Some(Some(bits)) => bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS),
        Some(None) | None => MAX_WINDOW_BITS,
    };
    let client_context = if offer.client_no_context_takeover || policy.client_no_context_takeover {
        ClientContext::NoTakeover
    } else {
        ClientContext::Takeover
    };
    Ok(Agreed {
        server_window_bits,
        client_window_bits,
        client_context,
        answer_server_bits: offer.server_max_window_bits.is_some(),
    })
}

/// Applies RFC 7692 §7's parameter rules to one permessage-deflate offer.
pub fn parse_offer(extension: &Extension) -> Result<Offer, Decline> {
    let mut offer = Offer::default();
    let mut seen = [false; 4];
    for (name, value) in &extension.params {
        let (index, canonical) = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => (0, "server_no_context_takeover"),
            "client_no_context_takeover" => (1, "client_no_context_takeover"),
            "server_max_window_bits" => (2, "server_max_window_bits"),
            "client_max_window_bits" => (3, "client_max_window_bits"),
            _ => {
                return Err(Decline::Unknown { name: clip(name) });
            }
        };
        // RFC 7692 §7: "A server MUST decline an extension negotiation offer for this
        // extension if ... The negotiation offer contains multiple extension parameters
        // with the same name."
        if let Some(flag) = seen.get_mut(index) {
            if *flag {
                return Err(Decline::Duplicate { name: canonical });
            }
            *flag = true;
        }
        let bad_value = |value: &str| Decline::BadValue {
            name: canonical,
            value: clip(value),
        };
        match (index, value.as_deref()) {
            // RFC 7692 §7.1.1.1 and §7.1.1.2: "This extension parameter has no value."
            (0, None) => offer.server_no_context_takeover = true,
            (1, None) => offer.client_no_context_takeover = true,
            (0 | 1, Some(value)) => return Err(bad_value(value)),
            // RFC 7692 §7.1.2.1: server_max_window_bits "has a value" that is "a decimal
            // integer value without leading zeroes between 8 to 15, inclusive".
            (2, Some(value)) => {
                offer.server_max_window_bits = Some(window_bits(value).ok_or(bad_value(value))?)
            }
            (2, None) => return Err(bad_value("")),
            // RFC 7692 §7.1.2.2: client_max_window_bits "may have a value", the same range.
            (3, Some(value)) => {
                offer.client_max_window_bits =
                    Some(Some(window_bits(value).ok_or(bad_value(value))?))
            }
            (3, None) => offer.client_max_window_bits = Some(None),
            _ => return Err(Decline::Unknown { name: clip(name) }),
        }
    }
    Ok(offer)
}

/// RFC 7692 §7.1.2.1's ABNF: `%x38-39 / "1" %x30-35`, 8 to 15 without leading zeroes.
fn window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [digit @ b'8'..=b'9'] => Some(digit - b'0'),
        [b'1', digit @ b'0'..=b'5'] => Some(10 + digit - b'0'),
        _ => None,
    }
}

fn clip(text: &str) -> String {
    text.chars()
        .scan(0, |used, c| {
            *used += c.len_utf8();
            (*used <= DECLINE_TEXT_MAX).then_some(c)
        })
        .collect()
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Parses an extension list, RFC 6455 §9.1:
/// `extension-list = 1#extension`, `extension = extension-token *( ";" extension-param )`,
/// `extension-param = token [ "=" (token | quoted-string) ]`. Empty list elements are
/// skipped (RFC 9110 §5.6.1); a quoted value is unescaped.
pub fn parse_extensions(header: &[u8]) -> Result<Vec<Extension>, SyntaxError> {
    let mut cursor = Cursor {
        bytes: header,
        at: 0,
    };
    let mut extensions = Vec::new();
    loop {
        cursor.skip_spaces();
        match cursor.peek() {
            None => return Ok(extensions),
            Some(b',') => {
                cursor.at += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = cursor.token()?;
        let mut params = Vec::new();
        loop {
            cursor.skip_spaces();
            match cursor.peek() {
                None | Some(b',') => break,
                Some(b';') => cursor.at += 1,
                Some(_) => return Err(cursor.error()),
            }
            cursor.skip_spaces();
            let param = cursor.token()?;
            cursor.skip_spaces();
            let value = if cursor.peek() == Some(b'=') {
                cursor.at += 1;
                cursor.skip_spaces();
                Some(if cursor.peek() == Some(b'"') {
                    cursor.quoted()?
                } else {
                    cursor.token()?
                })
            } else {
                None
            };
            params.push((param, value));
        }
        extensions.push(Extension { name, params });
        match cursor.peek() {
            Some(b',') => cursor.at += 1,
            None => return Ok(extensions),
            Some(_) => return Err(cursor.error()),
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn error(&self) -> SyntaxError {
        SyntaxError { offset: self.at }
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Result<String, SyntaxError> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        match self.bytes.get(start..self.at) {
            Some(token) if !token.is_empty() => Ok(String::from_utf8_lossy(token).into_owned()),
            _ => Err(self.error()),
        }
    }

    /// RFC 9110 §5.6.4: `DQUOTE *( qdtext / quoted-pair ) DQUOTE`; returns the unescaped
    /// text. RFC 6455 §9.1: the unescaped value "MUST conform to the 'token' ABNF".
    fn quoted(&mut self) -> Result<String, SyntaxError> {
        self.at += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error()),
                Some(b'"') => {
                    self.at += 1;
                    break;
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(byte) if byte == b'\t' || byte >= 0x20 && byte != 0x7f => {
                            value.push(byte);
                            self.at += 1;
                        }
                        _ => return Err(self.error()),
                    }
                }
                Some(byte) if byte == b'\t' || byte >= 0x20 && byte != 0x7f => {
                    value.push(byte);
                    self.at += 1;
                }
                Some(_) => return Err(self.error()),
            }
        }
        if value.is_empty() || !value.iter().copied().all(is_tchar) {
            return Err(self.error());
        }
        Ok(String::from_utf8_lossy(&value).into_owned())
    }
}

/// A compressed message that cannot be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// Not a valid DEFLATE stream (or data after a final block).
    InvalidData,
    /// The inflated message would be over `max` bytes; `len` is how far it got.
    TooBig { len: u64, max: u64 },
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InflateError::InvalidData => f.write_str("compressed message is not valid DEFLATE"),
            InflateError::TooBig { len, max } => {
                write!(
                    f,
                    "message inflates past {len} bytes, over the limit of {max}"
                )
            }
        }
    }
}

impl std::error::Error for InflateError {}

/// Inflates a client's compressed messages, one at a time, into a bounded buffer.
pub struct Inflater {
    inner: Decompress,
    /// A block with BFINAL set ended the DEFLATE stream: only the appended tail may follow,
    /// and the next message starts a new stream.
    ended: bool,
}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// `window_bits` is clamped to 9..=15.
    pub fn new(window_bits: u8) -> Inflater {
        let bits = window_bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS);
        Inflater {
            inner: Decompress::new_with_window_bits(false, bits),
            ended: false,
        }
    }

    /// Forgets the context: the next message inflates on its own.
    pub fn reset(&mut self) {
        self.inner.reset(false);
        self.ended = false;
    }

    /// Inflates a piece of a compressed message, appending to `out`, which never grows
    /// past `max + 1` bytes: one more than allowed is how an over-long message is known.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), InflateError> {
        self.run(input, out, max)
    }

    /// Ends a message: RFC 7692 §7.2.2 has the receiver "Append 4 octets of 0x00 0x00 0xff
    /// 0xff to the tail end of the payload of the message" and inflate.
    pub fn finish(&mut self, out: &mut Vec<u8>, max: usize) -> Result<(), InflateError> {
        if self.ended {
            // A final block already ended the stream: nothing more to inflate, and the
            // next message begins a new one.
            self.reset();
            return Ok(());
        }
        self.run(&SYNC_TAIL, out, max)?;
        if self.ended {
            self.reset();
        }
        Ok(())
    }

    fn run(&mut self, mut input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), InflateError> {
        let limit = max.saturating_add(1);
        let too_big = |len: usize| InflateError::TooBig {
            len: u64::try_from(len).unwrap_or(u64::MAX),
            max: u64::try_from(max).unwrap_or(u64::MAX),
        };
        loop {
            if self.ended {
                // RFC 1951: nothing follows a block with BFINAL set.
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(InflateError::InvalidData)
                };
            }
            if out.len() == out.capacity() {
                let room = limit.saturating_sub(out.len());
                if room == 0 {
                    return Err(too_big(out.len()));
                }
                // Doubling, never past the limit: memory follows what actually inflates.
                out.reserve_exact(out.capacity().max(1024).min(room));
            }
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let status = match self.inner.decompress_vec(input, out, FlushDecompress::Sync) {
                Ok(status) => status,
                // What inflated before the bad data already passes the limit: that is the
                // error, as it would be had the input stopped right before the bad data.
                Err(_) if out.len() > max => return Err(too_big(out.len())),
                Err(_) => return Err(InflateError::InvalidData),
            };
            let consumed = usize::try_from(self.inner.total_in() - in_before).unwrap_or(usize::MAX);
            let produced = self.inner.total_out() - out_before;
            input = input.get(consumed..).unwrap_or_default();
            if out.len() > max {
                return Err(too_big(out.len()));
            }
            match status {
                Status::StreamEnd => self.ended = true,
                Status::Ok | Status::BufError => {}
            }
            let room_left = out.len() < out.capacity();
            if input.is_empty() && room_left {
                // All input is in and the output was not cut short: everything it holds
                // has come out.
                return Ok(());
            }
            if consumed == 0 && produced == 0 && room_left && !self.ended {
                return Err(InflateError::InvalidData);
            }
        }
    }
}

/// Compresses what wson sends, each message on its own (server_no_context_takeover), with
/// one zlib state per window size, reused.
#[derive(Default)]
pub struct Deflater {
    /// By window bits 9..=15, with the level each was made with.
    states: [Option<(Compress, u32)>; 7],
    scratch: Vec<u8>,
}

impl fmt::Debug for Deflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflater").finish_non_exhaustive()
    }
}

/// What wson compresses with, from `[compression]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub level: u32,
    /// Messages shorter than this go uncompressed.
    pub threshold: usize,
}

impl Deflater {
    /// The compressed payload of one message (RFC 7692 §7.2.1: deflated, flushed, its
    /// trailing 0x00 0x00 0xff 0xff removed), or `None` when it would not be shorter.
    pub fn compress(&mut self, payload: &[u8], window_bits: u8, level: u32) -> Option<&[u8]> {
        let bits = window_bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS);
        let slot = self
            .states
            .get_mut(usize::from(bits - MIN_ZLIB_WINDOW_BITS))?;
        let level = level.clamp(1, 9);
        let compress = match slot {
            Some((compress, made_with)) if *made_with == level => {
                compress.reset();
                compress
            }
            _ => {
                let fresh = Compress::new_with_window_bits(Compression::new(level), false, bits);
                &mut slot.insert((fresh, level)).0
            }
        };
        let scratch = &mut self.scratch;
        scratch.clear();
        let mut input = payload;
        loop {
            // Room for the input as it stands plus the flush's few bytes; deflate output of
            // incompressible data is at most a few bytes per 16 KiB longer.
            scratch.reserve(input.len() / 2 + 64);
            let before = compress.total_in();
            compress
                .compress_vec(input, scratch, FlushCompress::Sync)
                .ok()?;
            let consumed = usize::try_from(compress.total_in() - before).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            if input.is_empty() && scratch.len() < scratch.capacity() {
                break;
            }
        }
        if scratch.ends_with(&SYNC_TAIL) {
            scratch.truncate(scratch.len() - SYNC_TAIL.len());
        }
        (scratch.len() < payload.len()).then_some(scratch.as_slice())
    }

    /// The frames of `plain` (whole, unmasked data frames, as wson encodes them), each
    /// message at or over the threshold compressed with RSV1 set. `None` when none is:
    /// then the plain bytes serve.
    pub fn deflate_frames(
        &mut self,
        plain: &[u8],
        window_bits: u8,
        settings: Settings,
    ) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        let mut rest = plain;
        let mut copied_up_to = 0;
        while !rest.is_empty() {
            let offset = plain.len() - rest.len();
            let Ok(crate::decoded::Decoded::Done { item: header, len }) =
                crate::ws::frame::decode_header(rest, u64::MAX >> 1)
            else {
                // Not a frame wson made: leave everything as it is.
                return None;
            };
            let payload_len = usize::try_from(header.payload_len).ok()?;
            let end = len.checked_add(payload_len)?;
            let payload = rest.get(len..end)?;
            let whole_message = header.fin
                && matches!(header.opcode, OpCode::Text | OpCode::Binary)
                && header.mask.is_none();
            if whole_message
                && payload.len() >= settings.threshold
                && let Some(compressed) = self.compress(payload, window_bits, settings.level)
            {
                let out = out.get_or_insert_with(|| Vec::with_capacity(plain.len()));
                out.extend_from_slice(plain.get(copied_up_to..offset)?);
                out.extend_from_slice(&encode_header(&FrameHeader {
                    fin: true,
                    rsv1: true,
                    opcode: header.opcode,
                    mask: None,
                    payload_len: compressed.len() as u64,
                }));
                out.extend_from_slice(compressed);
                copied_up_to = offset + end;
            }
            rest = rest.get(end..)?;
        }
        let mut out = out?;
        out.extend_from_slice(plain.get(copied_up_to..)?);
        Some(out)
    }

    /// One compressed frame for `payload`, or `None` when it stays plain (under the
    /// threshold, or not made shorter).
    pub fn frame(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        window_bits: u8,
        settings: Settings,
    ) -> Option<Vec<u8>> {
        if payload.len() < settings.threshold {
            return None;
        }
        let compressed = self.compress(payload, window_bits, settings.level)?;
        let header = encode_header(&FrameHeader {
            fin: true,
            rsv1: true,
            opcode,
            mask: None,
            payload_len: compressed.len() as u64,
        });
        let mut frame = Vec::with_capacity(header.len() + compressed.len());
        frame.extend_from_slice(&header);
        frame.extend_from_slice(compressed);
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        server_max_window_bits: 15,
        client_no_context_takeover: false,
    };

    fn offer_of(header: &str) -> Result<Offer, Decline> {
        let extensions = parse_extensions(header.as_bytes()).unwrap();
        assert_eq!(extensions.len(), 1, "{extensions:?}");
        parse_offer(&extensions[0])
    }

    fn response_to(header: &str) -> Option<String> {
        negotiate(header.as_bytes(), POLICY).map(|agreed| agreed.response())
    }

    #[test]
    fn chromium_offer_is_accepted_with_server_no_context_takeover() {
        let agreed = negotiate(b"permessage-deflate; client_max_window_bits", POLICY).unwrap();
        assert_eq!(agreed.server_window_bits, 15);
        assert_eq!(agreed.client_window_bits, 15);
        assert_eq!(agreed.client_context, ClientContext::Takeover);
        assert_eq!(
            agreed.response(),
            "permessage-deflate; server_no_context_takeover"
        );
    }

    #[test]
    fn every_parameter_is_read() {
        assert_eq!(
            offer_of(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10; client_max_window_bits=9"
            ),
            Ok(Offer {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(Some(9)),
            })
        );
        assert_eq!(
            offer_of("permessage-deflate;server_max_window_bits=\"12\""),
            Ok(Offer {
                server_max_window_bits: Some(12),
                ..Offer::default()
            })
        );
        assert_eq!(
            offer_of("Permessage-Deflate; CLIENT_MAX_WINDOW_BITS"),
            Ok(Offer {
                client_max_window_bits: Some(None),
                ..Offer::default()
            })
        );
    }

    #[test]
    fn duplicate_parameters_decline_the_offer() {
        for name in [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "client_max_window_bits",
        ] {
            assert!(
                matches!(
                    offer_of(&format!("permessage-deflate; {name}; {name}")),
                    Err(Decline::Duplicate { .. })
                ),
                "{name}"
            );
        }
        assert_eq!(
            offer_of("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"),
            Err(Decline::Duplicate {
                name: "server_max_window_bits"
            })
        );
    }

    #[test]
    fn bad_values_decline_the_offer() {
        for (param, value) in [
            ("server_max_window_bits", "7"),
            ("server_max_window_bits", "16"),
            ("server_max_window_bits", "010"),
            ("server_max_window_bits", "08"),
            ("server_max_window_bits", "1a"),
            ("server_max_window_bits", ""),
            ("client_max_window_bits", "0"),
            ("client_max_window_bits", "255"),
            ("server_no_context_takeover", "1"),
            ("client_no_context_takeover", "true"),
        ] {
            let header = if value.is_empty() {
                format!("permessage-deflate; {param}")
            } else {
                format!("permessage-deflate; {param}={value}")
            };
            assert!(
                matches!(offer_of(&header), Err(Decline::BadValue { .. })),
                "{header}"
            );
            assert_eq!(response_to(&header), None, "{header}");
        }
    }

    #[test]
    fn every_valid_window_size_is_read() {
        for bits in 8..=15u8 {
            assert_eq!(window_bits(&bits.to_string()), Some(bits));
        }
    }

    #[test]
    fn unknown_parameter_declines_that_offer_only() {
        assert_eq!(
            offer_of("permessage-deflate; x_custom"),
            Err(Decline::Unknown {
                name: "x_custom".to_owned()
            })
        );
        assert_eq!(
            response_to(
                "permessage-deflate; x_custom, permessage-deflate; client_no_context_takeover"
            ),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
                    .to_owned()
            )
        );
    }

    #[test]
    fn first_acceptable_offer_wins_and_other_extensions_are_skipped() {
        assert_eq!(
            response_to(
                "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8, \
                 permessage-deflate; server_max_window_bits=11, permessage-deflate"
            ),
            Some(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=8"
                    .to_owned()
            )
        );
        assert_eq!(response_to("x-webkit-deflate-frame"), None);
        assert_eq!(response_to(""), None);
    }

    #[test]
    fn server_max_window_bits_8_is_accepted_and_nothing_is_compressed() {
        let agreed = negotiate(b"permessage-deflate; server_max_window_bits=8", POLICY).unwrap();
        assert_eq!(agreed.compress_window(), None);
        assert_eq!(
            agreed.response(),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=8"
        );
        let agreed = negotiate(b"permessage-deflate; server_max_window_bits=9", POLICY).unwrap();
        assert_eq!(agreed.compress_window(), Some(9));
    }

    #[test]
    fn the_policy_window_caps_the_offered_one() {
        let policy = Policy {
            server_max_window_bits: 10,
            client_no_context_takeover: true,
        };
        let agreed = negotiate(b"permessage-deflate; server_max_window_bits=12", policy).unwrap();
        assert_eq!(agreed.server_window_bits, 10);
        assert_eq!(
            agreed.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10"
        );
        let agreed = negotiate(b"permessage-deflate", policy).unwrap();
        assert_eq!(agreed.server_window_bits, 10);
        assert_eq!(agreed.client_context, ClientContext::NoTakeover);
    }

    #[test]
    fn client_window_is_the_offered_one() {
        let agreed = negotiate(b"permessage-deflate; client_max_window_bits=8", POLICY).unwrap();
        assert_eq!(agreed.client_window_bits, 9);
        let agreed = negotiate(b"permessage-deflate; client_max_window_bits=12", POLICY).unwrap();
        assert_eq!(agreed.client_window_bits, 12);
        // The response does not name it: absent, the client keeps to what it offered.
        assert_eq!(
            agreed.response(),
            "permessage-deflate; server_no_context_takeover"
        );
    }

    #[test]
    fn syntax_errors_use_no_extension() {
        for header in [
            "permessage-deflate;",
            "permessage-deflate; =1",
            "permessage-deflate; a=",
            "permessage-deflate; a=\"1",
            "permessage-deflate; a=\"\"",
            "permessage-deflate; a=\"1 2\"",
            "permessage-deflate x",
            "perm(essage",
            ";",
        ] {
            assert!(parse_extensions(header.as_bytes()).is_err(), "{header}");
            assert_eq!(response_to(header), None, "{header}");
        }
    }

    #[test]
    fn extension_list_accepts_empty_elements_and_quoted_pairs() {
        let extensions = parse_extensions(b" , foo ;a=1;b, ,bar; c=\"x\\y\" ,, ").unwrap();
        assert_eq!(
            extensions,
            vec![
                Extension {
                    name: "foo".to_owned(),
                    params: vec![
                        ("a".to_owned(), Some("1".to_owned())),
                        ("b".to_owned(), None)
                    ],
                },
                Extension {
                    name: "bar".to_owned(),
                    params: vec![("c".to_owned(), Some("xy".to_owned()))],
                },
            ]
        );
    }

    #[test]
    fn declines_display_the_rule() {
        assert!(
            Decline::Duplicate { name: "x" }
                .to_string()
                .contains("twice")
        );
        let long = Decline::Unknown {
            name: clip(&"a".repeat(100)),
        };
        assert!(long.to_string().len() < 60);
    }

    fn inflate_all(
        inflater: &mut Inflater,
        compressed: &[u8],
        max: usize,
    ) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        inflater.inflate(compressed, &mut out, max)?;
        inflater.finish(&mut out, max)?;
        Ok(out)
    }

    #[test]
    fn rfc_7692_7_2_3_1_hello_inflates() {
        // "A message "Hello" compressed ... 0xf2 0x48 0xcd 0xc9 0xc9 0x07 0x00"
        let mut inflater = Inflater::new(15);
        assert_eq!(
            inflate_all(
                &mut inflater,
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                100
            ),
            Ok(b"Hello".to_vec())
        );
        // §7.2.3.2: the second "Hello" with context takeover references the first.
        assert_eq!(
            inflate_all(&mut inflater, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100),
            Ok(b"Hello".to_vec())
        );
    }

    #[test]
    fn rfc_7692_7_2_3_3_uncompressed_block_and_final_block_inflate() {
        let mut inflater = Inflater::new(15);
        assert_eq!(
            inflate_all(
                &mut inflater,
                &[
                    0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00
                ],
                100
            ),
            Ok(b"Hello".to_vec())
        );
        // §7.2.3.4: a block with BFINAL set.
        let mut inflater = Inflater::new(15);
        assert_eq!(
            inflate_all(
                &mut inflater,
                &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                100
            ),
            Ok(b"Hello".to_vec())
        );
        // The next message starts a new stream.
        assert_eq!(
            inflate_all(
                &mut inflater,
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                100
            ),
            Ok(b"Hello".to_vec())
        );
    }

    #[test]
    fn deflate_round_trips_at_every_window_and_split() {
        let text: Vec<u8> = (0..5000u32)
            .flat_map(|i| format!("{{\"seq\":{i},\"price\":{}}}", i * 7 % 113).into_bytes())
            .collect();
        let mut deflater = Deflater::default();
        for bits in 9..=15 {
            let compressed = deflater.compress(&text, bits, 6).unwrap().to_vec();
            assert!(compressed.len() < text.len() / 3);
            for cut in [0, 1, compressed.len() / 2, compressed.len()] {
                let mut inflater = Inflater::new(bits);
                let mut out = Vec::new();
                inflater
                    .inflate(&compressed[..cut], &mut out, text.len())
                    .unwrap();
                inflater
                    .inflate(&compressed[cut..], &mut out, text.len())
                    .unwrap();
                inflater.finish(&mut out, text.len()).unwrap();
                assert_eq!(out, text, "bits {bits} cut {cut}");
            }
        }
    }

    #[test]
    fn incompressible_payload_stays_plain() {
        let mut noise = Vec::new();
        let mut x: u32 = 12345;
        for _ in 0..4096 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            noise.push((x >> 16) as u8);
        }
        let mut deflater = Deflater::default();
        assert_eq!(deflater.compress(&noise, 15, 6), None);
        let settings = Settings {
            level: 6,
            threshold: 0,
        };
        assert_eq!(deflater.frame(OpCode::Binary, &noise, 15, settings), None);
    }

    #[test]
    fn zip_bomb_fails_at_the_limit_without_growing_past_it() {
        let zeros = vec![0u8; 10 << 20];
        let mut deflater = Deflater::default();
        let bomb = deflater.compress(&zeros, 15, 9).unwrap().to_vec();
        assert!(bomb.len() < 16 * 1024, "{}", bomb.len());
        let max = 1 << 20;
        let mut inflater = Inflater::new(15);
        let mut out = Vec::new();
        let error = inflater.inflate(&bomb, &mut out, max).unwrap_err();
        assert!(matches!(error, InflateError::TooBig { max: m, .. } if m == max as u64));
        assert!(out.capacity() <= max + 1, "{}", out.capacity());
    }

    #[test]
    fn invalid_deflate_data_is_an_error() {
        let mut inflater = Inflater::new(15);
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        assert_eq!(
            inflate_all(&mut inflater, &[0xff, 0xff, 0xff], 100),
            Err(InflateError::InvalidData)
        );
        // Data after a final block.
        let mut inflater = Inflater::new(15);
        assert_eq!(
            inflate_all(
                &mut inflater,
                &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x12],
                100
            ),
            Err(InflateError::InvalidData)
        );
    }

    #[test]
    fn deflate_frames_compresses_the_messages_over_the_threshold() {
        use crate::ws::frame::encode_frame;
        let big = "x".repeat(1000);
        let mut plain = encode_frame(true, OpCode::Text, b"small");
        plain.extend_from_slice(&encode_frame(true, OpCode::Text, big.as_bytes()));
        plain.extend_from_slice(&encode_frame(true, OpCode::Binary, b"tail"));
        let settings = Settings {
            level: 6,
            threshold: 256,
        };
        let mut deflater = Deflater::default();
        let out = deflater.deflate_frames(&plain, 15, settings).unwrap();
        assert_eq!(out[..7], encode_frame(true, OpCode::Text, b"small")[..]);
        // The second frame: FIN, RSV1, text.
        assert_eq!(out[7], 0xC1);
        let len = usize::from(out[8]);
        let mut inflater = Inflater::new(15);
        assert_eq!(
            inflate_all(&mut inflater, &out[9..9 + len], 2000),
            Ok(big.into_bytes())
        );
        assert_eq!(
            out[9 + len..],
            encode_frame(true, OpCode::Binary, b"tail")[..]
        );
        // Nothing to compress: the plain bytes serve.
        let small = encode_frame(true, OpCode::Text, b"small");
        assert_eq!(deflater.deflate_frames(&small, 15, settings), None);
    }
}
