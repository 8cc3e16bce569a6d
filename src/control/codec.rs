//! Framing of the control socket: `{decimal payload length}{command byte}{payload}`.
//!
//! This module owns the byte layout only, for both directions (backend commands and wson's
//! replies share it): where a frame starts and ends, the bounds on its length field, and the
//! `ControlError` enum that the command layer (`control::command`) also uses. It does not know
//! which command bytes exist; an unknown one is handed up as a value. COMMANDS.md is the
//! reference for every rule checked here.

use std::fmt;

use crate::auth::MAX_USER_LEN;
use crate::control::event::EventKind;
use crate::control::fields::FieldError;
use crate::control::topic::TopicError;
use crate::control::wire::show_byte;
pub use crate::control::wire::{MAX_LENGTH_DIGITS, encode_header};
use crate::decoded::Decoded;

/// Longest reason of a kick or a deny: RFC 6455 §5.5, a Close payload is at most 125
/// bytes, two of them the code.
pub const MAX_REASON_LEN: usize = crate::ws::frame::MAX_CONTROL_PAYLOAD - 2;
/// Longest list cursor.
pub const MAX_CURSOR_LEN: usize = 255;
/// Longest event listener group name.
pub const MAX_GROUP_LEN: usize = 64;

/// One frame as it sits in the buffer: its command byte and the payload it declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame<'a> {
    pub command: u8,
    pub payload: &'a [u8],
}

/// Everything that makes a control connection get `0E` and be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// The frame starts with a byte that is neither a digit nor a letter (offset 0).
    NotADigit { byte: u8 },
    /// The frame starts with a letter, i.e. with its command byte: the length is missing.
    EmptyLength { command: u8 },
    /// The length field has more than `MAX_LENGTH_DIGITS` digits (`digits` counts up to
    /// the first one too many).
    LengthTooLong { digits: usize },
    /// The declared payload length is over the limit. `len` is the value of the digits read
    /// so far, a lower bound of the declared length (reading stops at the first digit that
    /// crosses `max`), saturated at `u64::MAX`.
    FrameTooLarge { len: u64, max: usize },
    /// The command byte names no command wson accepts.
    UnknownCommand { byte: u8 },
    /// `c`, `C`, `d` or `D` with a payload too short to hold the 32-byte token.
    ShortToken { command: u8, len: usize },
    /// `l` with a payload that is not exactly the 32-byte token.
    LockPayload { len: usize },
    /// A text message (`b`, `c`, `d`, or text fragments) that is not UTF-8; sent on, it
    /// would make every recipient's browser fail the connection (RFC 6455 §8.1, 1007).
    InvalidUtf8 { command: u8, offset: usize },

    // Commands whose payload is made of fields (COMMANDS.md, "Fields"). `field` says which
    // field, counting from 1, and what it holds.
    /// The payload is not a sequence of `{length}:{bytes}` fields; `field` is the number of
    /// the malformed one.
    FieldSyntax {
        command: u8,
        field: usize,
        error: FieldError,
    },
    /// The payload has more fields than the command takes (`max`).
    TooManyFields { command: u8, max: usize },
    /// A required field is left out.
    MissingField { command: u8, field: FieldAt },
    /// A user is not 1 to 255 bytes of UTF-8 (`auth::MAX_USER_LEN`).
    BadUser {
        command: u8,
        field: FieldAt,
        len: usize,
    },
    /// A token is not exactly 32 bytes.
    BadToken {
        command: u8,
        field: FieldAt,
        len: usize,
    },
    /// A topic breaks a rule of `control::topic` (or the configured `max_name_length`).
    BadTopic {
        command: u8,
        field: FieldAt,
        error: TopicError,
    },
    /// A close code wson may not send: not valid on the wire (RFC 6455 §7.4), or 1010,
    /// which only a client sends.
    BadCode {
        command: u8,
        field: FieldAt,
        code: u64,
    },
    /// A reason that is not UTF-8 (`not_utf8_at`) or is longer than 123 bytes.
    BadReason {
        command: u8,
        field: FieldAt,
        len: usize,
        not_utf8_at: Option<usize>,
    },
    /// A number that is not 1 to 20 decimal digits of a value in range; `expected` says
    /// what was (`"a decimal number of at least 1"`).
    BadNumber {
        command: u8,
        field: FieldAt,
        expected: &'static str,
    },
    /// `Y`'s kind that is neither empty, `text` nor `binary`.
    BadKind { command: u8, field: FieldAt },
    /// A cursor longer than 255 bytes.
    BadCursor {
        command: u8,
        field: FieldAt,
        len: usize,
    },
    /// A group that is not 1 to 64 bytes of `[0-9A-Za-z_.-]`.
    BadGroup {
        command: u8,
        field: FieldAt,
        len: usize,
    },
    /// A kinds list names something that is no event kind (`offset` in the field), or has
    /// an empty name.
    UnknownEventKind {
        command: u8,
        field: FieldAt,
        offset: usize,
    },
    /// A kinds list names a kind twice.
    RepeatedEventKind {
        command: u8,
        field: FieldAt,
        kind: EventKind,
    },
    /// The decision of `Z` is neither `allow` nor `deny`.
    BadDecision { command: u8, field: FieldAt },
    /// The status of a deny is not 400 to 599.
    BadStatus {
        command: u8,
        field: FieldAt,
        status: u64,
    },
    /// `Z` allows request `id` without naming a user while `auth = "authorizer"` (no cookie
    /// user to keep). Raised by the server, which knows the mode.
    AllowWithoutUser { id: u64 },
    /// `V` carries no WAMP message (the JSON or the message's shape is wrong; `detail` says
    /// how), or WAMP is off. Raised by the server, which knows `[wamp] max_depth`.
    BadWampMessage { detail: String },
    /// The options of `x`/`X` are no JSON object of WAMP PUBLISH options (`detail` says
    /// why). Raised by the server, which knows `[wamp] max_depth`.
    BadPublishOptions { command: u8, detail: String },
    /// The options of `j`/`J` are no JSON object of subscribe options (`detail` says why:
    /// not JSON, not an object, `get_retained` not a boolean, a `match` other than
    /// `exact`). Raised by the server, which knows `[wamp] max_depth`.
    BadSubscribeOptions { command: u8, detail: String },
}

/// Which field of a command an error is about: its number (from 1) and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldAt {
    pub number: usize,
    pub name: &'static str,
}

impl fmt::Display for FieldAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {} ({})", self.number, self.name)
    }
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::NotADigit { byte } => write!(
                f,
                "control frame starts with byte {} at offset 0, not a decimal digit",
                show_byte(*byte)
            ),
            ControlError::EmptyLength { command } => write!(
                f,
                "control frame starts with command byte {}: its decimal payload length is missing",
                show_byte(*command)
            ),
            ControlError::LengthTooLong { digits } => write!(
                f,
                "control frame length field has {digits} digits, more than {MAX_LENGTH_DIGITS}"
            ),
            ControlError::FrameTooLarge { len, max } => write!(
                f,
                "control frame declares a payload of at least {len} bytes, over the limit of {max}"
            ),
            ControlError::UnknownCommand { byte } => {
                write!(f, "unknown control command byte {}", show_byte(*byte))
            }
            ControlError::ShortToken { command, len } => write!(
                f,
                "control command {} has a {len}-byte payload, shorter than the 32-byte token",
                show_byte(*command)
            ),
            ControlError::LockPayload { len } => write!(
                f,
                "control command 'l' has a {len}-byte payload, not exactly the 32-byte token"
            ),
            ControlError::InvalidUtf8 { command, offset } => write!(
                f,
                "control command {} carries a text message that is not UTF-8 (at byte {offset})",
                show_byte(*command)
            ),
            ControlError::FieldSyntax {
                command,
                field,
                error,
            } => write!(
                f,
                "control command {} field {field} is malformed: {error}",
                show_byte(*command)
            ),
            ControlError::TooManyFields { command, max } => write!(
                f,
                "control command {} has more than its {max} fields",
                show_byte(*command)
            ),
            ControlError::MissingField { command, field } => write!(
                f,
                "control command {} {field} is missing",
                show_byte(*command)
            ),
            ControlError::BadUser {
                command,
                field,
                len,
            } => write!(
                f,
                "control command {} {field} is not 1 to {MAX_USER_LEN} bytes of UTF-8 ({len} bytes)",
                show_byte(*command)
            ),
            ControlError::BadToken {
                command,
                field,
                len,
            } => write!(
                f,
                "control command {} {field} has {len} bytes, not the 32 of a token",
                show_byte(*command)
            ),
            ControlError::BadTopic {
                command,
                field,
                error,
            } => write!(
                f,
                "control command {} {field} is not a topic: it {error}",
                show_byte(*command)
            ),
            ControlError::BadCode {
                command,
                field,
                code,
            } => write!(
                f,
                "control command {} {field} is {code}, not a close code wson may send \
                 (1000-1003, 1007-1009, 1011-1014, 3000-4999)",
                show_byte(*command)
            ),
            ControlError::BadReason {
                command,
                field,
                len,
                not_utf8_at: Some(offset),
            } => write!(
                f,
                "control command {} {field} is not UTF-8 (at byte {offset} of {len})",
                show_byte(*command)
            ),
            ControlError::BadReason {
                command,
                field,
                len,
                not_utf8_at: None,
            } => write!(
                f,
                "control command {} {field} has {len} bytes, more than {MAX_REASON_LEN}",
                show_byte(*command)
            ),
            ControlError::BadNumber {
                command,
                field,
                expected,
            } => write!(
                f,
                "control command {} {field} is not {expected}",
                show_byte(*command)
            ),
            ControlError::BadKind { command, field } => write!(
                f,
                "control command {} {field} is not empty, text or binary",
                show_byte(*command)
            ),
            ControlError::BadCursor {
                command,
                field,
                len,
            } => write!(
                f,
                "control command {} {field} has {len} bytes, more than {MAX_CURSOR_LEN}",
                show_byte(*command)
            ),
            ControlError::BadGroup {
                command,
                field,
                len,
            } => write!(
                f,
                "control command {} {field} is not 1 to {MAX_GROUP_LEN} bytes of \
                 [0-9A-Za-z_.-] ({len} bytes)",
                show_byte(*command)
            ),
            ControlError::UnknownEventKind {
                command,
                field,
                offset,
            } => write!(
                f,
                "control command {} {field} names no event kind at byte {offset}",
                show_byte(*command)
            ),
            ControlError::RepeatedEventKind {
                command,
                field,
                kind,
            } => write!(
                f,
                "control command {} {field} names the event kind {} twice",
                show_byte(*command),
                kind.name()
            ),
            ControlError::BadDecision { command, field } => write!(
                f,
                "control command {} {field} is neither allow nor deny",
                show_byte(*command)
            ),
            ControlError::BadStatus {
                command,
                field,
                status,
            } => write!(
                f,
                "control command {} {field} is {status}, not an HTTP status from 400 to 599",
                show_byte(*command)
            ),
            ControlError::AllowWithoutUser { id } => write!(
                f,
                "control command 'Z' allows request {id} without a user, which auth = \
                 \"authorizer\" requires"
            ),
            ControlError::BadWampMessage { detail } => {
                write!(f, "control command 'V' carries no WAMP message: {detail}")
            }
            ControlError::BadPublishOptions { command, detail } => write!(
                f,
                "control command {} field 3 (options) is no JSON object of WAMP PUBLISH \
                 options: {detail}",
                show_byte(*command)
            ),
            ControlError::BadSubscribeOptions { command, detail } => write!(
                f,
                "control command {} field 3 (options) is no JSON object of subscribe \
                 options: {detail}",
                show_byte(*command)
            ),
        }
    }
}

impl std::error::Error for ControlError {}

/// Decodes one frame from the start of `buf`.
///
/// `Incomplete` (nothing consumed) while bytes are missing. The declared length is checked
/// against `max_frame` digit by digit, so an oversized frame is refused as soon as the digits
/// read so far exceed it, before its command byte or payload arrive. `Done { len }` covers the
/// digits, the command byte and the payload.
pub fn decode(buf: &[u8], max_frame: usize) -> Result<Decoded<RawFrame<'_>>, ControlError> {
    let max = u64::try_from(max_frame).unwrap_or(u64::MAX);
    let too_large = |len: u64| ControlError::FrameTooLarge {
        len,
        max: max_frame,
    };

    let mut digits = 0_usize;
    let mut declared: u64 = 0;
    for &byte in buf {
        let Some(digit) = char::from(byte).to_digit(10) else {
            break;
        };
        digits += 1;
        // COMMANDS.md, Framing: leading zeros are accepted, but the length field has at most
        // 20 digits.
        if digits > MAX_LENGTH_DIGITS {
            return Err(ControlError::LengthTooLong { digits });
        }
        // COMMANDS.md, Errors: a frame whose declared payload length exceeds max_frame is 0E.
        // Digits only ever make the value larger, so a prefix over the limit is final.
        declared = declared
            .checked_mul(10)
            .and_then(|value| value.checked_add(u64::from(digit)))
            .ok_or(too_large(u64::MAX))?;
        if declared > max {
            return Err(too_large(declared));
        }
    }

    let [command, after_command @ ..] = buf.get(digits..).unwrap_or_default() else {
        return Ok(Decoded::Incomplete);
    };
    let command = *command;
    // COMMANDS.md, Framing: the length has at least one digit; `b` alone is not `0b`.
    if digits == 0 {
        return Err(if command.is_ascii_alphabetic() {
            ControlError::EmptyLength { command }
        } else {
            ControlError::NotADigit { byte: command }
        });
    }

    let payload_len = usize::try_from(declared).map_err(|_| too_large(declared))?;
    let Some(payload) = after_command.get(..payload_len) else {
        return Ok(Decoded::Incomplete);
    };
    let len = digits
        .checked_add(1)
        .and_then(|header_len| header_len.checked_add(payload_len))
        .ok_or(too_large(declared))?;
    Ok(Decoded::Done {
        item: RawFrame { command, payload },
        len,
    })
}

/// Appends `{payload.len()}{command}{payload}` to `out`.
pub fn encode(command: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len().saturating_add(MAX_LENGTH_DIGITS + 1));
    encode_header(command, payload.len(), out);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 65_536;

    /// An owned frame, so results from different buffers can be compared.
    type Owned = (u8, Vec<u8>);

    fn done(buf: &[u8], max: usize) -> (RawFrame<'_>, usize) {
        match decode(buf, max).unwrap() {
            Decoded::Done { item, len } => (item, len),
            Decoded::Incomplete => panic!("incomplete: {buf:?}"),
        }
    }

    /// What a stream decoded to: its frames, then either how many bytes were left over
    /// (an incomplete last frame) or the error that stopped it.
    type Outcome = (Vec<Owned>, Result<usize, ControlError>);

    /// Decodes every frame of `input` fed whole.
    fn decode_all(input: &[u8], max: usize) -> Outcome {
        decode_chunks(&[input], max)
    }

    /// Feeds `chunks` one after the other into a buffer, decoding after each, as the server's
    /// read loop does.
    fn decode_chunks(chunks: &[&[u8]], max: usize) -> Outcome {
        let mut buffer = Vec::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            buffer.extend_from_slice(chunk);
            loop {
                match decode(&buffer, max) {
                    Ok(Decoded::Done { item, len }) => {
                        frames.push((item.command, item.payload.to_vec()));
                        buffer.drain(..len);
                    }
                    Ok(Decoded::Incomplete) => break,
                    Err(error) => return (frames, Err(error)),
                }
            }
        }
        (frames, Ok(buffer.len()))
    }

    fn assert_same_at_every_split(input: &[u8], max: usize) -> Outcome {
        let whole = decode_all(input, max);
        for cut in 0..=input.len() {
            let (head, tail) = input.split_at(cut);
            assert_eq!(decode_chunks(&[head, tail], max), whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_chunks(&bytewise, max), whole, "byte by byte");
        whole
    }

    #[test]
    fn wson_broadcast_example_is_one_frame() {
        let (frame, len) = done(b"15bHello, World!!!", MAX);
        assert_eq!(
            frame,
            RawFrame {
                command: b'b',
                payload: b"Hello, World!!!"
            }
        );
        assert_eq!(len, 18);
    }

    #[test]
    fn empty_payload_frame_is_two_bytes() {
        let (frame, len) = done(b"0pNEXT", MAX);
        assert_eq!(
            frame,
            RawFrame {
                command: b'p',
                payload: b""
            }
        );
        assert_eq!(len, 2);
    }

    #[test]
    fn any_byte_after_the_digits_is_the_command_byte() {
        let (frame, _) = done(b"2\x00\xff\xfe", MAX);
        assert_eq!(frame.command, 0);
        assert_eq!(frame.payload, b"\xff\xfe");
    }

    #[test]
    fn payload_may_hold_digits_and_command_letters() {
        let (frame, len) = done(b"4b12b3", MAX);
        assert_eq!(frame.payload, b"12b3");
        assert_eq!(len, 6);
    }

    #[test]
    fn leading_zeros_are_accepted() {
        let (frame, len) = done(b"005bHello", MAX);
        assert_eq!(frame.payload, b"Hello");
        assert_eq!(len, 9);
    }

    #[test]
    fn twenty_digit_length_is_accepted() {
        let mut input = b"00000000000000000003b".to_vec();
        input.extend_from_slice(b"abc");
        let (frame, len) = done(&input, MAX);
        assert_eq!(frame.payload, b"abc");
        assert_eq!(len, 24);
    }

    #[test]
    fn incomplete_until_the_last_payload_byte() {
        let input = b"15bHello, World!!!";
        for end in 0..input.len() {
            assert_eq!(decode(&input[..end], MAX), Ok(Decoded::Incomplete), "{end}");
        }
    }

    #[test]
    fn payload_of_exactly_max_frame_is_accepted() {
        let (frame, len) = done(b"5bHello", 5);
        assert_eq!(frame.payload, b"Hello");
        assert_eq!(len, 7);
    }

    #[test]
    fn start_that_is_not_a_digit_is_not_a_digit() {
        assert_eq!(
            decode(b" 5bHello", MAX),
            Err(ControlError::NotADigit { byte: b' ' })
        );
        assert_eq!(
            decode(b"-1b", MAX),
            Err(ControlError::NotADigit { byte: b'-' })
        );
    }

    #[test]
    fn command_byte_first_is_empty_length() {
        assert_eq!(
            decode(b"bHello", MAX),
            Err(ControlError::EmptyLength { command: b'b' })
        );
        // Refused at once: no need to wait for more bytes.
        assert_eq!(
            decode(b"p", MAX),
            Err(ControlError::EmptyLength { command: b'p' })
        );
    }

    #[test]
    fn twenty_one_digits_are_length_too_long() {
        let input = b"000000000000000000000b";
        assert_eq!(
            decode(input, MAX),
            Err(ControlError::LengthTooLong { digits: 21 })
        );
        // Refused at the 21st digit, before any command byte.
        assert_eq!(
            decode(&input[..21], MAX),
            Err(ControlError::LengthTooLong { digits: 21 })
        );
        assert_eq!(decode(&input[..20], MAX), Ok(Decoded::Incomplete));
    }

    #[test]
    fn length_over_max_is_frame_too_large() {
        assert_eq!(
            decode(b"6bHello!", 5),
            Err(ControlError::FrameTooLarge { len: 6, max: 5 })
        );
    }

    #[test]
    fn huge_length_is_refused_at_the_digit_that_crosses_max() {
        let input = b"99999999999999999999b";
        // 9999 <= 65536 < 99999: the fifth digit decides, whatever follows.
        for end in 0..5 {
            assert_eq!(decode(&input[..end], MAX), Ok(Decoded::Incomplete), "{end}");
        }
        for end in 5..=input.len() {
            assert_eq!(
                decode(&input[..end], MAX),
                Err(ControlError::FrameTooLarge {
                    len: 99_999,
                    max: MAX
                }),
                "{end}"
            );
        }
    }

    #[test]
    fn length_beyond_u64_is_frame_too_large_even_without_a_limit() {
        // u64::MAX is 18446744073709551615; twenty nines overflow it.
        assert_eq!(
            decode(b"99999999999999999999b", usize::MAX),
            Err(ControlError::FrameTooLarge {
                len: u64::MAX,
                max: usize::MAX
            })
        );
    }

    #[test]
    fn zero_limit_admits_only_empty_payloads() {
        assert_eq!(
            decode(b"0q", 0),
            Ok(Decoded::Done {
                item: RawFrame {
                    command: b'q',
                    payload: b""
                },
                len: 2
            })
        );
        assert_eq!(
            decode(b"1", 0),
            Err(ControlError::FrameTooLarge { len: 1, max: 0 })
        );
    }

    #[test]
    fn encode_writes_decimal_length_command_payload() {
        let mut out = Vec::new();
        encode(b'b', b"Hello, World!!!", &mut out);
        encode(b'p', b"", &mut out);
        assert_eq!(out, b"15bHello, World!!!0p");
    }

    #[test]
    fn stream_of_frames_is_the_same_at_every_split() {
        let input: &[u8] = b"15bHello, World!!!0p3B\x00\x01\x020m5fHello2i, 6sWorld!0q";
        let (frames, rest) = decode_all(input, MAX);
        assert_eq!(rest, Ok(0));
        let commands: Vec<u8> = frames.iter().map(|(command, _)| *command).collect();
        assert_eq!(commands, b"bpBmfisq");
        assert_eq!(assert_same_at_every_split(input, MAX), (frames, rest));
    }

    #[test]
    fn stream_ending_in_an_error_is_the_same_at_every_split() {
        let cases: [(&[u8], ControlError); 4] = [
            (
                b"0p2bhi99999999b",
                ControlError::FrameTooLarge {
                    len: 9999,
                    max: 1000,
                },
            ),
            (
                b"0p2bhi0000000000000000000001b",
                ControlError::LengthTooLong { digits: 21 },
            ),
            (b"0pbHello", ControlError::EmptyLength { command: b'b' }),
            (b"0p\n", ControlError::NotADigit { byte: b'\n' }),
        ];
        for (input, error) in cases {
            let (frames, outcome) = assert_same_at_every_split(input, 1000);
            assert_eq!(outcome, Err(error));
            assert_eq!(frames.first(), Some(&(b'p', Vec::new())));
        }
    }

    #[test]
    fn errors_read_as_one_line_without_raw_bytes() {
        let text = ControlError::NotADigit { byte: b'\n' }.to_string();
        assert!(text.contains("'\\n'"), "{text}");
        assert!(!text.contains('\n'));
        let text = ControlError::FrameTooLarge { len: 7, max: 5 }.to_string();
        assert!(text.contains('7') && text.contains('5'), "{text}");
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            command in any::<u8>().prop_filter("a digit would extend the length", |b| !b.is_ascii_digit()),
            payload in proptest::collection::vec(any::<u8>(), 0..600),
            trailing in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut buf = Vec::new();
            encode(command, &payload, &mut buf);
            let frame_len = buf.len();
            buf.extend_from_slice(&trailing);
            let decoded = decode(&buf, payload.len()).unwrap();
            prop_assert_eq!(
                decoded,
                Decoded::Done { item: RawFrame { command, payload: &payload }, len: frame_len }
            );
        }

        #[test]
        fn decode_never_panics_and_ignores_splits(
            input in proptest::collection::vec(any::<u8>(), 0..64),
            cut in any::<prop::sample::Index>(),
            max in 0_usize..100,
        ) {
            let whole = decode_all(&input, max);
            let (head, tail) = input.split_at(cut.index(input.len() + 1));
            prop_assert_eq!(decode_chunks(&[head, tail], max), whole);
        }

        #[test]
        fn decode_never_panics_on_digit_heavy_input(
            input in proptest::collection::vec(
                prop_oneof![4 => b'0'..=b'9', 1 => any::<u8>()], 0..48),
            max in any::<usize>(),
        ) {
            if let Ok(Decoded::Done { len, .. }) = decode(&input, max) {
                prop_assert!(len <= input.len());
            }
        }
    }
}
