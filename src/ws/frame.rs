//! RFC 6455 §5 frames: the header's bits and lengths, masking, and encoding.
//!
//! This module owns the wire layout of one frame. `decode_header` is role-neutral and
//! sans-IO: it takes the bytes received so far and returns a header, `Incomplete`, or the
//! first rule the bytes break, checking each byte as soon as it is present so a bad length
//! is refused before anyone waits for (or allocates) its payload. `apply_mask` unmasks in
//! place and resumes mid-payload. The `encode_*` helpers are the only allocations; server
//! frames are unmasked, so one encoded frame can be shared by every recipient. Message
//! rules (fragmentation, UTF-8, close codes, who must mask) live in `ws::message`.

use std::fmt;
use std::ops::Deref;

use crate::decoded::Decoded;

/// The longest header: 2 fixed bytes, an 8-byte extended length and a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The 7-bit length codes that announce a 16-bit and a 64-bit extended length.
const LENGTH_CODE_16: u8 = 126;
const LENGTH_CODE_64: u8 = 127;

const FIN_BIT: u8 = 0x80;
const RESERVED_BITS: u8 = 0x70;
const RSV1_BIT: u8 = 0x40;
const OPCODE_BITS: u8 = 0x0F;
const MASK_BIT: u8 = 0x80;
const LENGTH_BITS: u8 = 0x7F;

/// The frame opcodes RFC 6455 §5.2 defines; the reserved ones have no value here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    /// The opcode for the low nibble of a frame's first byte; `None` for the reserved
    /// values 0x3-0x7 and 0xB-0xF (and anything above 0xF).
    pub fn from_nibble(nibble: u8) -> Option<OpCode> {
        match nibble {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    pub fn nibble(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// RFC 6455 §5.5: "Control frames are identified by opcodes where the most significant
    /// bit of the opcode is 1."
    pub fn is_control(self) -> bool {
        self.nibble() & 0x8 != 0
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpCode::Continuation => "continuation",
            OpCode::Text => "text",
            OpCode::Binary => "binary",
            OpCode::Close => "close",
            OpCode::Ping => "ping",
            OpCode::Pong => "pong",
        })
    }
}

/// One frame's header. RSV2 and RSV3 are not represented: no extension gives them a
/// meaning, so they are always zero. RSV1 is permessage-deflate's "Per-Message Compressed"
/// bit (RFC 7692 §6), set only on the first frame of a compressed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

impl FrameHeader {
    /// Bytes this header takes on the wire, with the minimal length encoding.
    pub fn encoded_len(&self) -> usize {
        let extended = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        let mask = if self.mask.is_some() { 4 } else { 0 };
        2 + extended + mask
    }
}

/// A frame header that breaks RFC 6455 §5; every variant fails the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// RSV1, RSV2 or RSV3 set in the first byte `byte` where no negotiated extension
    /// allows it (RSV1 only on the first frame of a data message, with permessage-deflate).
    ReservedBits { byte: u8 },
    /// An opcode RFC 6455 reserves for future use.
    ReservedOpcode { nibble: u8 },
    /// A control frame longer than 125 bytes. When the frame announces a 16- or 64-bit
    /// extended length (which a control frame may never use) this is refused at the length
    /// code, and `len` is the least length that encoding can carry: 126 or 65536.
    ControlTooLong { opcode: OpCode, len: u64 },
    /// A control frame with FIN clear.
    FragmentedControl { opcode: OpCode },
    /// A 64-bit extended length with its most significant bit set.
    LengthTopBit,
    /// An extended length that a shorter encoding could have carried.
    NonMinimalLength { len: u64 },
    /// A data frame whose declared payload is over the limit.
    Oversize { len: u64, max: u64 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::ReservedBits { byte } => {
                write!(f, "reserved bits set in first header byte {byte:#04x}")
            }
            FrameError::ReservedOpcode { nibble } => write!(f, "reserved opcode {nibble:#x}"),
            FrameError::ControlTooLong { opcode, len } => {
                write!(f, "{opcode} frame payload of {len} bytes is over 125")
            }
            FrameError::FragmentedControl { opcode } => {
                write!(
                    f,
                    "{opcode} frame has FIN clear; control frames cannot be fragmented"
                )
            }
            FrameError::LengthTopBit => {
                f.write_str("64-bit payload length has its most significant bit set")
            }
            FrameError::NonMinimalLength { len } => {
                write!(f, "payload length {len} is not encoded in the fewest bytes")
            }
            FrameError::Oversize { len, max } => {
                write!(f, "frame payload of {len} bytes is over the limit of {max}")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Decodes the header at the start of `buf`, masked or not (the caller decides which the
/// role requires). `max_payload` bounds data frames; control frames are bounded by 125.
///
/// Checks run in byte order and each as soon as its byte is present, so the result never
/// depends on how the bytes were split: a reserved bit fails at the first byte, a 2^63
/// length at the first byte of the extended length, a non-minimal or oversize length once
/// the extended length is complete, all before the masking key or payload arrive.
pub fn decode_header(buf: &[u8], max_payload: u64) -> Result<Decoded<FrameHeader>, FrameError> {
    decode_header_with(buf, max_payload, Rsv1::Reserved)
}

/// Whether RSV1 may be set: only where permessage-deflate was negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rsv1 {
    Reserved,
    /// RFC 7692 §6: "the RSV1 bit is set only on the first frame" of a compressed message.
    PerMessageCompressed,
}

/// `decode_header`, with RSV1 allowed on Text and Binary frames when `rsv1` says so.
pub fn decode_header_with(
    buf: &[u8],
    max_payload: u64,
    rsv1: Rsv1,
) -> Result<Decoded<FrameHeader>, FrameError> {
    let [b0, rest @ ..] = buf else {
        return Ok(Decoded::Incomplete);
    };
    let b0 = *b0;
    let nibble = b0 & OPCODE_BITS;
    // RFC 7692 §6.1: "An endpoint MUST NOT set the "Per-Message Compressed" bit of control
    // frames and non-first fragments of a data message." Text and Binary open a message.
    let allowed = match (rsv1, OpCode::from_nibble(nibble)) {
        (Rsv1::PerMessageCompressed, Some(OpCode::Text | OpCode::Binary)) => RSV1_BIT,
        (Rsv1::PerMessageCompressed | Rsv1::Reserved, _) => 0,
    };
    // RFC 6455 §5.2: "RSV1, RSV2, RSV3: 1 bit each. MUST be 0 unless an extension is
    // negotiated that defines meanings for non-zero values."
    if b0 & RESERVED_BITS & !allowed != 0 {
        return Err(FrameError::ReservedBits { byte: b0 });
    }
    // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail
    // the WebSocket Connection_."
    let Some(opcode) = OpCode::from_nibble(nibble) else {
        return Err(FrameError::ReservedOpcode { nibble });
    };
    let fin = b0 & FIN_BIT != 0;
    // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less
    // and MUST NOT be fragmented."
    if opcode.is_control() && !fin {
        return Err(FrameError::FragmentedControl { opcode });
    }

    let [b1, rest @ ..] = rest else {
        return Ok(Decoded::Incomplete);
    };
    let masked = b1 & MASK_BIT != 0;
    let length_code = b1 & LENGTH_BITS;
    if opcode.is_control() && length_code > 125 {
        // Same sentence as above; an extended length is at least 126 (16-bit) or, minimally
        // encoded, 65536 (64-bit), so the frame is too long whatever follows.
        let len = if length_code == LENGTH_CODE_16 {
            126
        } else {
            0x1_0000
        };
        return Err(FrameError::ControlTooLong { opcode, len });
    }

    let (payload_len, rest, extended_len) = match length_code {
        LENGTH_CODE_16 => {
            let [hi, lo, rest @ ..] = rest else {
                return Ok(Decoded::Incomplete);
            };
            let len = u64::from(u16::from_be_bytes([*hi, *lo]));
            // RFC 6455 §5.2: "in all cases, the minimal number of bytes MUST be used to
            // encode the length, for example, the length of a 124-byte-long string can't be
            // encoded as the sequence 126, 0, 124."
            if len <= 125 {
                return Err(FrameError::NonMinimalLength { len });
            }
            (len, rest, 2)
        }
        LENGTH_CODE_64 => {
            // RFC 6455 §5.2: "If 127, the following 8 bytes interpreted as a 64-bit unsigned
            // integer (the most significant bit MUST be 0) are the payload length."
            // The top bit is in the first length byte: refuse it before the other seven.
            if rest.first().is_some_and(|first| first & 0x80 != 0) {
                return Err(FrameError::LengthTopBit);
            }
            let [a, b, c, d, e, f, g, h, rest @ ..] = rest else {
                return Ok(Decoded::Incomplete);
            };
            let len = u64::from_be_bytes([*a, *b, *c, *d, *e, *f, *g, *h]);
            // RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length".
            if len <= 0xFFFF {
                return Err(FrameError::NonMinimalLength { len });
            }
            (len, rest, 8)
        }
        short => (u64::from(short), rest, 0),
    };
    // RFC 6455 §10.4: "Implementations that have implementation- and/or platform-specific
    // limitations regarding the frame size or total message size after reassembly from
    // multiple frames MUST protect themselves against exceeding those limits."
    if !opcode.is_control() && payload_len > max_payload {
        return Err(FrameError::Oversize {
            len: payload_len,
            max: max_payload,
        });
    }

    let mask = if masked {
        let [m0, m1, m2, m3, ..] = rest else {
            return Ok(Decoded::Incomplete);
        };
        Some([*m0, *m1, *m2, *m3])
    } else {
        None
    };
    let header = FrameHeader {
        fin,
        rsv1: b0 & RSV1_BIT != 0,
        opcode,
        mask,
        payload_len,
    };
    let len = 2 + extended_len + if masked { 4 } else { 0 };
    Ok(Decoded::Done { item: header, len })
}

/// An encoded header in a fixed array; derefs to the used bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedHeader {
    bytes: [u8; MAX_HEADER_LEN],
    len: usize,
}

impl EncodedHeader {
    pub fn as_bytes(&self) -> &[u8] {
        // `len` is at most MAX_HEADER_LEN by construction in `encode_header`.
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl Deref for EncodedHeader {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Encodes `header` with the minimal length encoding RFC 6455 §5.2 requires.
pub fn encode_header(header: &FrameHeader) -> EncodedHeader {
    let mut bytes = [0u8; MAX_HEADER_LEN];
    let fin = if header.fin { FIN_BIT } else { 0 };
    let mask_bit = if header.mask.is_some() { MASK_BIT } else { 0 };
    let len = header.payload_len;
    let length_code = match u8::try_from(len) {
        Ok(short) if short <= 125 => short,
        _ if len <= 0xFFFF => LENGTH_CODE_16,
        _ => LENGTH_CODE_64,
    };
    let rsv1 = if header.rsv1 { RSV1_BIT } else { 0 };
    let [b0, b1, extended_and_mask @ ..] = &mut bytes;
    *b0 = fin | rsv1 | header.opcode.nibble();
    *b1 = mask_bit | length_code;
    let len_bytes = len.to_be_bytes();
    let extended: &[u8] = match length_code {
        LENGTH_CODE_64 => &len_bytes,
        LENGTH_CODE_16 => len_bytes.get(6..).unwrap_or_default(),
        _ => &[],
    };
    let mut used = 2;
    for (dst, src) in extended_and_mask.iter_mut().zip(extended) {
        *dst = *src;
        used += 1;
    }
    if let (Some(mask), Some(dst)) = (header.mask, bytes.get_mut(used..used + 4)) {
        dst.copy_from_slice(&mask);
        used += 4;
    }
    EncodedHeader { bytes, len: used }
}

/// XORs `payload` with `mask` in place (masking and unmasking are the same operation).
/// `offset` is the position of `payload[0]` within the frame's whole payload, so a payload
/// that arrives in several reads is unmasked piece by piece.
///
/// RFC 6455 §5.3: "Octet i of the transformed data ("transformed-octet-i") is the XOR of
/// octet i of the original data ("original-octet-i") with octet at index i modulo 4 of the
/// masking key ("masking-key-octet-j")".
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    // After the rotation key[0] is the key byte for payload[0].
    key.rotate_left(offset % 4);
    let [k0, k1, k2, k3] = key;
    let wide = u64::from_ne_bytes([k0, k1, k2, k3, k0, k1, k2, k3]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // chunks_exact_mut yields exactly 8 bytes, so the conversion always succeeds; the
        // branch is optimised out and the loop vectorises.
        if let Ok(bytes) = <[u8; 8]>::try_from(&*chunk) {
            chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
        }
    }
    // Chunks are multiples of 4 long, so the tail starts at key byte 0 again.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= *k;
    }
}

/// One unmasked frame (the server's form, RFC 6455 §5.1: "A server MUST NOT mask any
/// frames that it sends to the client."), allocated at its exact size.
pub fn encode_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    encode_with_header(fin, opcode, payload, None)
}

/// One masked frame, as a client sends it; for tests, fuzzing and benchmarks.
pub fn encode_masked_frame(fin: bool, opcode: OpCode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    encode_with_header(fin, opcode, payload, Some(mask))
}

fn encode_with_header(fin: bool, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let header = encode_header(&FrameHeader {
        fin,
        rsv1: false,
        opcode,
        mask,
        payload_len: u64::try_from(payload.len()).unwrap_or(u64::MAX),
    });
    let mut frame = Vec::with_capacity(header.len() + payload.len());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(payload);
    if let (Some(mask), Some(body)) = (mask, frame.get_mut(header.len()..)) {
        apply_mask(body, mask, 0);
    }
    frame
}

/// An unmasked Close frame carrying `code` and `reason`. The reason is cut at a char
/// boundary so the payload stays within RFC 6455 §5.5: "All control frames MUST have a
/// payload length of 125 bytes or less".
pub fn encode_close(code: u16, reason: &str) -> Vec<u8> {
    let max_reason = MAX_CONTROL_PAYLOAD - 2;
    let mut cut = reason.len().min(max_reason);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = reason.get(..cut).unwrap_or_default();
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    let [hi, lo, rest @ ..] = &mut payload;
    [*hi, *lo] = code.to_be_bytes();
    let mut len = 2;
    if let Some(dst) = rest.get_mut(..reason.len()) {
        dst.copy_from_slice(reason.as_bytes());
        len += reason.len();
    }
    encode_frame(true, OpCode::Close, payload.get(..len).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NO_LIMIT: u64 = u64::MAX;

    /// Decodes `bytes` as a whole and as every prefix: a prefix is Incomplete or the same
    /// error, never something else, and the whole gives `expected`.
    fn check_every_prefix(
        bytes: &[u8],
        max: u64,
        expected: Result<Decoded<FrameHeader>, FrameError>,
    ) {
        assert_eq!(decode_header(bytes, max), expected, "whole {bytes:02x?}");
        for cut in 0..bytes.len() {
            let got = decode_header(&bytes[..cut], max);
            match (&got, &expected) {
                (Ok(Decoded::Incomplete), _) => {}
                (a, b) if a == b => {}
                _ => panic!("prefix {cut} of {bytes:02x?} gave {got:?}, whole gave {expected:?}"),
            }
        }
    }

    fn done(header: FrameHeader, len: usize) -> Result<Decoded<FrameHeader>, FrameError> {
        Ok(Decoded::Done { item: header, len })
    }

    fn header(fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, payload_len: u64) -> FrameHeader {
        FrameHeader {
            fin,
            rsv1: false,
            opcode,
            mask,
            payload_len,
        }
    }

    const RFC_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn rfc_5_7_single_frame_unmasked_text() {
        let frame = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        check_every_prefix(
            &frame,
            NO_LIMIT,
            done(header(true, OpCode::Text, None, 5), 2),
        );
        assert_eq!(encode_frame(true, OpCode::Text, b"Hello"), frame);
    }

    #[test]
    fn rfc_5_7_single_frame_masked_text() {
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        check_every_prefix(
            &frame,
            NO_LIMIT,
            done(header(true, OpCode::Text, Some(RFC_MASK), 5), 6),
        );
        assert_eq!(
            encode_masked_frame(true, OpCode::Text, b"Hello", RFC_MASK),
            frame
        );
        let mut payload = frame[6..].to_vec();
        apply_mask(&mut payload, RFC_MASK, 0);
        assert_eq!(payload, b"Hello");
    }

    #[test]
    fn rfc_5_7_fragmented_unmasked_text() {
        let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let second = [0x80, 0x02, 0x6c, 0x6f];
        check_every_prefix(
            &first,
            NO_LIMIT,
            done(header(false, OpCode::Text, None, 3), 2),
        );
        check_every_prefix(
            &second,
            NO_LIMIT,
            done(header(true, OpCode::Continuation, None, 2), 2),
        );
        assert_eq!(encode_frame(false, OpCode::Text, b"Hel"), first);
        assert_eq!(encode_frame(true, OpCode::Continuation, b"lo"), second);
    }

    #[test]
    fn rfc_5_7_ping_and_masked_pong() {
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        check_every_prefix(
            &ping,
            NO_LIMIT,
            done(header(true, OpCode::Ping, None, 5), 2),
        );
        check_every_prefix(
            &pong,
            NO_LIMIT,
            done(header(true, OpCode::Pong, Some(RFC_MASK), 5), 6),
        );
        assert_eq!(encode_frame(true, OpCode::Ping, b"Hello"), ping);
        assert_eq!(
            encode_masked_frame(true, OpCode::Pong, b"Hello", RFC_MASK),
            pong
        );
    }

    #[test]
    fn rfc_5_7_256_bytes_binary_uses_16_bit_length() {
        let prefix = [0x82, 0x7E, 0x01, 0x00];
        check_every_prefix(
            &prefix,
            NO_LIMIT,
            done(header(true, OpCode::Binary, None, 256), 4),
        );
        let frame = encode_frame(true, OpCode::Binary, &[7; 256]);
        assert_eq!(frame[..4], prefix);
        assert_eq!(frame.len(), 4 + 256);
        assert_eq!(frame.capacity(), frame.len());
    }

    #[test]
    fn rfc_5_7_64_kib_binary_uses_64_bit_length() {
        let prefix = [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];
        check_every_prefix(
            &prefix,
            NO_LIMIT,
            done(header(true, OpCode::Binary, None, 65536), 10),
        );
        let frame = encode_frame(true, OpCode::Binary, &[7; 65536]);
        assert_eq!(frame[..10], prefix);
        assert_eq!(frame.len(), 10 + 65536);
        assert_eq!(frame.capacity(), frame.len());
    }

    #[test]
    fn length_boundaries_use_the_minimal_encoding() {
        for (len, header_len) in [
            (0u64, 2usize),
            (125, 2),
            (126, 4),
            (0xFFFF, 4),
            (0x1_0000, 10),
            (1 << 62, 10),
            ((1 << 63) - 1, 10),
        ] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = header(true, OpCode::Binary, mask, len);
                let encoded = encode_header(&h);
                let expected_len = header_len + if mask.is_some() { 4 } else { 0 };
                assert_eq!(encoded.len(), expected_len, "{h:?}");
                assert_eq!(h.encoded_len(), expected_len, "{h:?}");
                check_every_prefix(&encoded, NO_LIMIT, done(h, expected_len));
            }
        }
    }

    #[test]
    fn opcode_nibbles_round_trip_and_reserved_ones_are_none() {
        for nibble in 0..=0xFFu8 {
            match OpCode::from_nibble(nibble) {
                Some(opcode) => assert_eq!(opcode.nibble(), nibble),
                None => assert!(matches!(nibble, 0x3..=0x7 | 0xB..=0xFF)),
            }
        }
        assert!(!OpCode::Continuation.is_control());
        assert!(!OpCode::Text.is_control());
        assert!(!OpCode::Binary.is_control());
        assert!(OpCode::Close.is_control());
        assert!(OpCode::Ping.is_control());
        assert!(OpCode::Pong.is_control());
    }

    #[test]
    fn reserved_bits_are_refused_at_the_first_byte() {
        for byte in [0xC1, 0xA1, 0x91, 0xF1] {
            check_every_prefix(
                &[byte, 0x85, 1, 2, 3, 4],
                NO_LIMIT,
                Err(FrameError::ReservedBits { byte }),
            );
            assert_eq!(
                decode_header(&[byte], NO_LIMIT),
                Err(FrameError::ReservedBits { byte })
            );
        }
    }

    #[test]
    fn rsv1_is_allowed_only_on_text_and_binary_with_deflate() {
        let deflate = Rsv1::PerMessageCompressed;
        for (byte, opcode) in [(0xC1, OpCode::Text), (0x42, OpCode::Binary)] {
            let decoded = decode_header_with(&[byte, 0x80, 1, 2, 3, 4], NO_LIMIT, deflate);
            let Ok(Decoded::Done { item, .. }) = decoded else {
                panic!("{decoded:?}");
            };
            assert!(item.rsv1);
            assert_eq!(item.opcode, opcode);
            assert_eq!(
                decode_header(&[byte], NO_LIMIT),
                Err(FrameError::ReservedBits { byte })
            );
        }
        // RFC 7692 §6.1: not on continuations, nor on control frames; RSV2/3 never.
        for byte in [0xC0, 0xC8, 0xC9, 0xCA, 0xA1, 0x91, 0xE1] {
            assert_eq!(
                decode_header_with(&[byte], NO_LIMIT, deflate),
                Err(FrameError::ReservedBits { byte })
            );
        }
        let header = FrameHeader {
            fin: true,
            rsv1: true,
            opcode: OpCode::Binary,
            mask: None,
            payload_len: 3,
        };
        assert_eq!(encode_header(&header).as_bytes(), [0xC2, 0x03]);
    }

    #[test]
    fn reserved_opcode_is_refused_at_the_first_byte() {
        for nibble in [0x3, 0x7, 0xB, 0xF] {
            assert_eq!(
                decode_header(&[0x80 | nibble], NO_LIMIT),
                Err(FrameError::ReservedOpcode { nibble })
            );
        }
    }

    #[test]
    fn control_frame_over_125_bytes_is_refused() {
        // 126 as a 16-bit length is refused at the length code, before the length bytes.
        assert_eq!(
            decode_header(&[0x89, 0xFE], NO_LIMIT),
            Err(FrameError::ControlTooLong {
                opcode: OpCode::Ping,
                len: 126
            })
        );
        assert_eq!(
            decode_header(&[0x88, 0xFF], NO_LIMIT),
            Err(FrameError::ControlTooLong {
                opcode: OpCode::Close,
                len: 65536
            })
        );
        // 125 is the largest allowed.
        check_every_prefix(
            &[0x8A, 0xFD, 1, 2, 3, 4],
            NO_LIMIT,
            done(header(true, OpCode::Pong, Some([1, 2, 3, 4]), 125), 6),
        );
        // The control limit is 125 whatever the data limit.
        assert_eq!(
            decode_header(&[0x89, 0x05], 0),
            done(header(true, OpCode::Ping, None, 5), 2)
        );
    }

    #[test]
    fn fragmented_control_frame_is_refused_at_the_first_byte() {
        for (byte, opcode) in [
            (0x08, OpCode::Close),
            (0x09, OpCode::Ping),
            (0x0A, OpCode::Pong),
        ] {
            assert_eq!(
                decode_header(&[byte], NO_LIMIT),
                Err(FrameError::FragmentedControl { opcode })
            );
        }
    }

    #[test]
    fn length_2_pow_63_is_refused_at_the_first_length_byte() {
        let bytes = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(
            decode_header(&bytes[..3], NO_LIMIT),
            Err(FrameError::LengthTopBit)
        );
        check_every_prefix(&bytes, NO_LIMIT, Err(FrameError::LengthTopBit));
        let max = [0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        check_every_prefix(&max, NO_LIMIT, Err(FrameError::LengthTopBit));
    }

    #[test]
    fn length_2_pow_62_is_a_valid_header_but_oversize_for_any_real_limit() {
        let bytes = [0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        check_every_prefix(
            &bytes,
            NO_LIMIT,
            done(
                header(true, OpCode::Binary, Some([1, 2, 3, 4]), 1 << 62),
                14,
            ),
        );
        let max = 16 << 20;
        let oversize = Err(FrameError::Oversize { len: 1 << 62, max });
        // Refused once the length is complete, before the masking key.
        assert_eq!(decode_header(&bytes[..10], max), oversize);
        check_every_prefix(&bytes, max, oversize);
    }

    #[test]
    fn non_minimal_lengths_are_refused() {
        check_every_prefix(
            &[0x82, 0xFE, 0x00, 0x7C],
            NO_LIMIT,
            Err(FrameError::NonMinimalLength { len: 124 }),
        );
        check_every_prefix(
            &[0x82, 0xFE, 0x00, 0x7D],
            NO_LIMIT,
            Err(FrameError::NonMinimalLength { len: 125 }),
        );
        check_every_prefix(
            &[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
            NO_LIMIT,
            Err(FrameError::NonMinimalLength { len: 0xFFFF }),
        );
        check_every_prefix(
            &[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5],
            NO_LIMIT,
            Err(FrameError::NonMinimalLength { len: 5 }),
        );
    }

    #[test]
    fn oversize_data_frame_is_refused_from_the_header_alone() {
        let oversize = Err(FrameError::Oversize { len: 6, max: 5 });
        assert_eq!(decode_header(&[0x81, 0x86], 5), oversize);
        assert_eq!(decode_header(&[0x00, 0x86, 1, 2, 3, 4], 5), oversize);
        assert_eq!(
            decode_header(&[0x81, 0x85], 5),
            Ok(Decoded::Incomplete),
            "exactly the limit is allowed"
        );
        assert_eq!(
            decode_header(&[0x82, 0xFE, 0x01, 0x00], 255),
            Err(FrameError::Oversize { len: 256, max: 255 })
        );
    }

    #[test]
    fn errors_display_what_and_where() {
        let cases = [
            (FrameError::ReservedBits { byte: 0xC1 }, "0xc1"),
            (FrameError::ReservedOpcode { nibble: 0xB }, "0xb"),
            (
                FrameError::ControlTooLong {
                    opcode: OpCode::Ping,
                    len: 126,
                },
                "ping frame payload of 126",
            ),
            (
                FrameError::FragmentedControl {
                    opcode: OpCode::Close,
                },
                "close frame has FIN clear",
            ),
            (FrameError::LengthTopBit, "most significant bit"),
            (FrameError::NonMinimalLength { len: 5 }, "length 5"),
            (
                FrameError::Oversize { len: 9, max: 8 },
                "9 bytes is over the limit of 8",
            ),
        ];
        for (error, needle) in cases {
            let text = error.to_string();
            assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        }
    }

    #[test]
    fn apply_mask_resumes_at_any_offset() {
        let original: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mask = [0xA1, 0xB2, 0xC3, 0xD4];
        let mut whole = original.clone();
        apply_mask(&mut whole, mask, 0);
        for (i, (m, o)) in whole.iter().zip(&original).enumerate() {
            assert_eq!(*m, o ^ mask[i % 4]);
        }
        for cut in [0, 1, 2, 3, 5, 7, 8, 9, 13, 500, 999, 1000] {
            let mut pieces = original.clone();
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask(a, mask, 0);
            apply_mask(b, mask, cut);
            assert_eq!(pieces, whole, "cut at {cut}");
        }
        // Offsets past 4 (and huge ones) only matter modulo 4.
        let mut far = original[3..].to_vec();
        apply_mask(&mut far, mask, 4003);
        assert_eq!(far, whole[3..]);
    }

    #[test]
    fn encode_close_truncates_the_reason_on_a_char_boundary() {
        let frame = encode_close(1000, "bye");
        assert_eq!(frame, [0x88, 0x05, 0x03, 0xE8, b'b', b'y', b'e']);
        assert_eq!(encode_close(1001, ""), [0x88, 0x02, 0x03, 0xE9]);
        // 122 ASCII bytes then a 3-byte char that would end at 125: dropped whole.
        let reason = format!("{}€tail", "a".repeat(122));
        let frame = encode_close(1008, &reason);
        assert_eq!(frame[1], 2 + 122);
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
        let long = "é".repeat(100);
        let frame = encode_close(1011, &long);
        let payload_len = usize::from(frame[1]);
        assert!(payload_len <= 125);
        assert_eq!(frame.len(), 2 + payload_len);
        assert_eq!(&frame[4..], "é".repeat(61).as_bytes());
        let exact = "x".repeat(123);
        assert_eq!(encode_close(1000, &exact)[1], 125);
    }

    fn any_opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ]
    }

    fn any_header() -> impl Strategy<Value = FrameHeader> {
        (
            any::<bool>(),
            any_opcode(),
            proptest::option::of(any::<[u8; 4]>()),
            prop_oneof![0..=125u64, 126..=0xFFFFu64, 0x1_0000..(1u64 << 63)],
        )
            .prop_map(|(fin, opcode, mask, payload_len)| {
                if opcode.is_control() {
                    header(true, opcode, mask, payload_len % 126)
                } else {
                    header(fin, opcode, mask, payload_len)
                }
            })
    }

    proptest! {
        #[test]
        fn decode_header_inverts_encode_header(h in any_header(), trailing in any::<Vec<u8>>()) {
            let encoded = encode_header(&h);
            prop_assert_eq!(encoded.len(), h.encoded_len());
            let mut bytes = encoded.to_vec();
            bytes.extend_from_slice(&trailing);
            prop_assert_eq!(
                decode_header(&bytes, NO_LIMIT),
                Ok(Decoded::Done { item: h, len: encoded.len() })
            );
            for cut in 0..encoded.len() {
                prop_assert_eq!(decode_header(&bytes[..cut], NO_LIMIT), Ok(Decoded::Incomplete));
            }
        }

        #[test]
        fn decode_header_never_depends_on_the_split(bytes in any::<Vec<u8>>(), max in any::<u64>()) {
            let whole = decode_header(&bytes, max);
            for cut in 0..bytes.len() {
                let prefix = decode_header(&bytes[..cut], max);
                match (&prefix, &whole) {
                    (Ok(Decoded::Incomplete), _) => {}
                    (a, b) if a == b => {}
                    _ => prop_assert!(false, "prefix {} gave {:?}, whole {:?}", cut, prefix, whole),
                }
            }
        }

        #[test]
        fn apply_mask_twice_is_identity(payload in any::<Vec<u8>>(), mask in any::<[u8; 4]>(), offset in any::<usize>()) {
            let mut bytes = payload.clone();
            apply_mask(&mut bytes, mask, offset);
            for (i, (m, p)) in bytes.iter().zip(&payload).enumerate() {
                prop_assert_eq!(*m, p ^ mask[(offset % 4 + i) % 4]);
            }
            apply_mask(&mut bytes, mask, offset);
            prop_assert_eq!(bytes, payload);
        }
    }
}
