//! The fields encoding of multi-field control payloads: zero or more `{length}:{bytes}` back to
//! back, nothing else (COMMANDS.md, "Fields").
//!
//! `Fields` reads a payload without copying: each field is a sub-slice of it, and a malformed
//! field is a `FieldError` that says where (the offset in the payload) and why. The writers
//! (`append_field`, `append_fields`, `encode_fields_frame`, `Decimal`) build the same encoding
//! for commands, replies, events and authorizer requests, and report lengths up front so a
//! frame's header can be written before its fields without an intermediate buffer. This
//! module knows no command: which fields a command takes is `control::command`'s business.

use std::fmt;

use crate::control::wire::{self, MAX_LENGTH_DIGITS};

/// Most decimal digits a field length may have, leading zeros included (as in the framing).
pub const MAX_FIELD_LENGTH_DIGITS: usize = 20;

/// Why a payload is not a sequence of fields. `offset` is where the field starts in the
/// payload; the field counts from 1 are the command layer's to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    /// The field starts with `byte`, not a decimal digit (`:` first is an empty length).
    NotADigit { offset: usize, byte: u8 },
    /// The digits of the length are followed by `found` (`None`: the end of the payload)
    /// instead of `:`.
    MissingColon { offset: usize, found: Option<u8> },
    /// The length has more than `MAX_FIELD_LENGTH_DIGITS` digits.
    LengthTooLong { offset: usize },
    /// The length is more than the `left` bytes that follow the colon. `declared` is
    /// saturated at `u64::MAX`.
    PastTheEnd {
        offset: usize,
        declared: u64,
        left: usize,
    },
}

impl FieldError {
    /// Where the malformed field starts in the payload.
    pub fn offset(&self) -> usize {
        match *self {
            FieldError::NotADigit { offset, .. }
            | FieldError::MissingColon { offset, .. }
            | FieldError::LengthTooLong { offset }
            | FieldError::PastTheEnd { offset, .. } => offset,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FieldError::NotADigit { offset, byte } => write!(
                f,
                "the field at byte {offset} starts with {}, not a decimal length",
                wire::show_byte(byte)
            ),
            FieldError::MissingColon {
                offset,
                found: Some(byte),
            } => write!(
                f,
                "the length of the field at byte {offset} is followed by {}, not ':'",
                wire::show_byte(byte)
            ),
            FieldError::MissingColon {
                offset,
                found: None,
            } => write!(
                f,
                "the length of the field at byte {offset} is not followed by ':' before the end"
            ),
            FieldError::LengthTooLong { offset } => write!(
                f,
                "the length of the field at byte {offset} has more than \
                 {MAX_FIELD_LENGTH_DIGITS} digits"
            ),
            FieldError::PastTheEnd {
                offset,
                declared,
                left,
            } => write!(
                f,
                "the field at byte {offset} declares {declared} bytes, but {left} are left"
            ),
        }
    }
}

/// The fields of a payload, in order. An iterator of `Result`s: after an error it yields
/// nothing more (a payload is only read up to its first malformed field).
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    payload: &'a [u8],
    /// Where the next field starts; `payload.len()` when done, or after an error.
    offset: usize,
}

impl<'a> Fields<'a> {
    pub fn new(payload: &'a [u8]) -> Self {
        Fields { payload, offset: 0 }
    }

    /// Bytes of the payload read so far (the fields yielded, their lengths and colons).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The part of the payload not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.payload.get(self.offset..).unwrap_or_default()
    }

    /// True when every field has been read.
    pub fn is_done(&self) -> bool {
        self.offset >= self.payload.len()
    }

    /// Reads the field at `self.offset`; `Ok(None)` at the end of the payload.
    fn read(&self) -> Result<Option<(&'a [u8], usize)>, FieldError> {
        let start = self.offset;
        let rest = self.rest();
        if rest.is_empty() {
            return Ok(None);
        }
        let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
        // COMMANDS.md, Fields: the length is 1 to 20 ASCII decimal digits, leading zeros
        // accepted.
        if digits == 0 {
            let byte = rest.first().copied().unwrap_or_default();
            return Err(FieldError::NotADigit {
                offset: start,
                byte,
            });
        }
        if digits > MAX_FIELD_LENGTH_DIGITS {
            return Err(FieldError::LengthTooLong { offset: start });
        }
        let (length_digits, after_digits) = rest.split_at_checked(digits).unwrap_or_default();
        let declared = decimal_value(length_digits).unwrap_or(u64::MAX);
        let bytes = match after_digits {
            [b':', bytes @ ..] => bytes,
            [byte, ..] => {
                return Err(FieldError::MissingColon {
                    offset: start,
                    found: Some(*byte),
                });
            }
            [] => {
                return Err(FieldError::MissingColon {
                    offset: start,
                    found: None,
                });
            }
        };
        // COMMANDS.md, Fields: the length must not exceed the bytes left in the payload.
        let past_the_end = FieldError::PastTheEnd {
            offset: start,
            declared,
            left: bytes.len(),
        };
        let len = usize::try_from(declared).map_err(|_| past_the_end)?;
        let field = bytes.get(..len).ok_or(past_the_end)?;
        // digits + ':' + len <= rest.len(), which fits in a usize.
        let used = digits.saturating_add(1).saturating_add(len);
        Ok(Some((field, start.saturating_add(used))))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<&'a [u8], FieldError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.read() {
            Ok(Some((field, next))) => {
                self.offset = next;
                Some(Ok(field))
            }
            Ok(None) => None,
            Err(error) => {
                self.offset = self.payload.len();
                Some(Err(error))
            }
        }
    }
}

/// The value of a run of ASCII digits; `None` for no digits, a non-digit or past `u64::MAX`.
pub fn decimal_value(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0_u64, |value, &byte| {
        let digit = char::from(byte).to_digit(10)?;
        value.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// A number in ASCII decimal, on the stack: for a count, a code or an id written as a field
/// or in a reply without formatting into a `String`.
#[derive(Clone, Copy)]
pub struct Decimal {
    digits: [u8; MAX_FIELD_LENGTH_DIGITS],
    start: usize,
}

impl Decimal {
    pub fn new(mut value: u64) -> Self {
        let mut digits = [b'0'; MAX_FIELD_LENGTH_DIGITS];
        let mut start = MAX_FIELD_LENGTH_DIGITS;
        // u64::MAX has 20 digits, so `start` never goes below 0; the loop runs once for 0.
        while let Some(slot) = start.checked_sub(1).and_then(|at| digits.get_mut(at)) {
            *slot = b'0' + u8::try_from(value % 10).unwrap_or_default();
            start -= 1;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        Decimal { digits, start }
    }

    /// No digits: an empty field where a number is optional and left at its default.
    pub fn empty() -> Self {
        Decimal {
            digits: [b'0'; MAX_FIELD_LENGTH_DIGITS],
            start: MAX_FIELD_LENGTH_DIGITS,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.digits.get(self.start..).unwrap_or_default()
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(self.as_bytes()).unwrap_or_default())
    }
}

/// Bytes one field of `len` bytes takes encoded: its length's digits, `:`, the bytes.
pub fn field_len(len: usize) -> usize {
    digit_count(len).saturating_add(1).saturating_add(len)
}

/// Bytes the fields take encoded (the payload length of a frame made of them).
pub fn fields_len(fields: &[&[u8]]) -> usize {
    fields.iter().fold(0_usize, |total, field| {
        total.saturating_add(field_len(field.len()))
    })
}

fn digit_count(mut value: usize) -> usize {
    let mut digits = 1;
    while value >= 10 {
        value /= 10;
        digits += 1;
    }
    digits
}

/// Appends one field, `{len}:{bytes}`, to `out`.
pub fn append_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(Decimal::new(field.len() as u64).as_bytes());
    out.push(b':');
    out.extend_from_slice(field);
}

/// Appends the fields back to back to `out` (a payload, without a frame header).
pub fn append_fields(out: &mut Vec<u8>, fields: &[&[u8]]) {
    out.reserve(fields_len(fields));
    for field in fields {
        append_field(out, field);
    }
}

/// Appends the frame `{payload length}{command}{fields}` to `out`.
pub fn encode_fields_frame(command: u8, fields: &[&[u8]], out: &mut Vec<u8>) {
    let payload_len = fields_len(fields);
    out.reserve(payload_len.saturating_add(MAX_LENGTH_DIGITS + 1));
    wire::encode_header(command, payload_len, out);
    for field in fields {
        append_field(out, field);
    }
}

/// `fields` as one payload, for tests and clients.
pub fn to_payload(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    append_fields(&mut out, fields);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(payload: &[u8]) -> Result<Vec<&[u8]>, FieldError> {
        Fields::new(payload).collect()
    }

    #[test]
    fn spec_example_is_topic_then_message() {
        assert_eq!(
            all(b"10:news.sport5:Goal!"),
            Ok(vec![&b"news.sport"[..], b"Goal!"])
        );
        // 3 + 10 + 2 + 5 (the notes said 19: see COMMANDS.md for the exact frame).
        assert_eq!(b"10:news.sport5:Goal!".len(), 20);
        assert_eq!(
            to_payload(&[b"news.sport", b"Goal!"]),
            b"10:news.sport5:Goal!"
        );
    }

    #[test]
    fn empty_payload_has_no_fields() {
        assert_eq!(all(b""), Ok(vec![]));
        assert!(Fields::new(b"").is_done());
    }

    #[test]
    fn zero_length_field_is_empty() {
        assert_eq!(all(b"0:"), Ok(vec![&b""[..]]));
        assert_eq!(all(b"0:0:1:x"), Ok(vec![&b""[..], b"", b"x"]));
    }

    #[test]
    fn fields_are_binary_safe() {
        let payload = b"3:\x00:\xff2:1:";
        assert_eq!(all(payload), Ok(vec![&b"\x00:\xff"[..], b"1:"]));
    }

    #[test]
    fn leading_zeros_and_twenty_digits_are_accepted() {
        assert_eq!(all(b"003:abc"), Ok(vec![&b"abc"[..]]));
        assert_eq!(all(b"00000000000000000001:z"), Ok(vec![&b"z"[..]]));
    }

    #[test]
    fn fields_borrow_the_payload() {
        let payload = b"2:ab1:c".to_vec();
        let fields = all(&payload).unwrap();
        let range = payload.as_ptr_range();
        for field in fields {
            assert!(range.contains(&field.as_ptr()) || field.is_empty());
        }
    }

    #[test]
    fn offset_follows_each_field() {
        let mut fields = Fields::new(b"2:ab10:0123456789");
        assert_eq!(fields.next(), Some(Ok(&b"ab"[..])));
        assert_eq!(fields.offset(), 4);
        assert_eq!(fields.rest(), b"10:0123456789");
        assert_eq!(fields.next(), Some(Ok(&b"0123456789"[..])));
        assert_eq!(fields.offset(), 17);
        assert!(fields.is_done());
        assert_eq!(fields.next(), None);
    }

    // One test per error.

    #[test]
    fn field_starting_with_a_non_digit_is_not_a_digit() {
        assert_eq!(
            all(b"x"),
            Err(FieldError::NotADigit {
                offset: 0,
                byte: b'x'
            })
        );
        assert_eq!(
            all(b":abc"),
            Err(FieldError::NotADigit {
                offset: 0,
                byte: b':'
            })
        );
        assert_eq!(
            all(b"1:a-1:b"),
            Err(FieldError::NotADigit {
                offset: 3,
                byte: b'-'
            })
        );
        assert_eq!(
            all(b" 1:a"),
            Err(FieldError::NotADigit {
                offset: 0,
                byte: b' '
            })
        );
    }

    #[test]
    fn length_without_colon_is_missing_colon() {
        assert_eq!(
            all(b"5"),
            Err(FieldError::MissingColon {
                offset: 0,
                found: None
            })
        );
        assert_eq!(
            all(b"5x:hello"),
            Err(FieldError::MissingColon {
                offset: 0,
                found: Some(b'x')
            })
        );
        assert_eq!(
            all(b"0:12"),
            Err(FieldError::MissingColon {
                offset: 2,
                found: None
            })
        );
        // Only one colon: the next byte after it is the field's.
        assert_eq!(
            all(b"1 :a"),
            Err(FieldError::MissingColon {
                offset: 0,
                found: Some(b' ')
            })
        );
    }

    #[test]
    fn twenty_one_digits_are_length_too_long() {
        assert_eq!(
            all(b"000000000000000000001:a"),
            Err(FieldError::LengthTooLong { offset: 0 })
        );
        assert_eq!(
            all(b"0:000000000000000000000"),
            Err(FieldError::LengthTooLong { offset: 2 })
        );
    }

    #[test]
    fn length_over_the_rest_is_past_the_end() {
        assert_eq!(
            all(b"6:hello"),
            Err(FieldError::PastTheEnd {
                offset: 0,
                declared: 6,
                left: 5
            })
        );
        assert_eq!(
            all(b"1:a1:"),
            Err(FieldError::PastTheEnd {
                offset: 3,
                declared: 1,
                left: 0
            })
        );
        // Beyond u64 (twenty nines) and beyond usize: past the end, not an overflow.
        assert_eq!(
            all(b"99999999999999999999:x"),
            Err(FieldError::PastTheEnd {
                offset: 0,
                declared: u64::MAX,
                left: 1
            })
        );
        assert_eq!(
            all(b"18446744073709551615:"),
            Err(FieldError::PastTheEnd {
                offset: 0,
                declared: u64::MAX,
                left: 0
            })
        );
    }

    #[test]
    fn nothing_is_yielded_after_an_error() {
        let mut fields = Fields::new(b"1:ax1:b");
        assert_eq!(fields.next(), Some(Ok(&b"a"[..])));
        assert!(matches!(fields.next(), Some(Err(_))));
        assert_eq!(fields.next(), None);
        assert!(fields.is_done());
    }

    #[test]
    fn errors_read_as_one_line_without_raw_bytes() {
        let errors = [
            FieldError::NotADigit {
                offset: 3,
                byte: b'\n',
            },
            FieldError::MissingColon {
                offset: 0,
                found: Some(0),
            },
            FieldError::MissingColon {
                offset: 0,
                found: None,
            },
            FieldError::LengthTooLong { offset: 9 },
            FieldError::PastTheEnd {
                offset: 1,
                declared: 7,
                left: 2,
            },
        ];
        for error in errors {
            let text = error.to_string();
            assert!(
                text.chars().all(|c| c == ' ' || c.is_ascii_graphic()),
                "{text:?}"
            );
            assert!(text.contains(&error.offset().to_string()), "{text}");
        }
    }

    #[test]
    fn decimal_writes_every_width() {
        for value in [0, 1, 9, 10, 99, 100, 4000, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(Decimal::new(value).as_bytes(), value.to_string().as_bytes());
        }
    }

    #[test]
    fn decimal_value_reads_digits_only() {
        assert_eq!(decimal_value(b"0"), Some(0));
        assert_eq!(decimal_value(b"007"), Some(7));
        assert_eq!(decimal_value(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal_value(b"18446744073709551616"), None);
        assert_eq!(decimal_value(b""), None);
        assert_eq!(decimal_value(b"1a"), None);
        assert_eq!(decimal_value(b"-1"), None);
    }

    #[test]
    fn encoded_frame_has_the_fields_length() {
        let mut out = Vec::new();
        encode_fields_frame(b'x', &[b"news.sport", b"Goal!"], &mut out);
        assert_eq!(out, b"20x10:news.sport5:Goal!");
        assert_eq!(fields_len(&[]), 0);
        assert_eq!(field_len(0), 2);
        assert_eq!(field_len(9), 11);
        assert_eq!(field_len(10), 13);
    }

    proptest! {
        #[test]
        fn encode_then_parse_gives_back_the_fields(
            fields in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
        ) {
            let borrowed: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
            let payload = to_payload(&borrowed);
            prop_assert_eq!(payload.len(), fields_len(&borrowed));
            let parsed = all(&payload).unwrap();
            prop_assert_eq!(parsed, borrowed);
        }

        #[test]
        fn parse_never_reads_past_the_payload(
            payload in proptest::collection::vec(
                prop_oneof![3 => b'0'..=b'9', 2 => Just(b':'), 2 => any::<u8>()], 0..64),
        ) {
            let range = payload.as_ptr_range();
            let mut fields = Fields::new(&payload);
            let mut canonical = Vec::new();
            while let Some(field) = fields.next() {
                prop_assert!(fields.offset() <= payload.len());
                match field {
                    Ok(field) => {
                        if !field.is_empty() {
                            prop_assert!(range.contains(&field.as_ptr()));
                            prop_assert!(field.as_ptr_range().end <= range.end);
                        }
                        append_field(&mut canonical, field);
                    }
                    Err(error) => prop_assert!(error.offset() < payload.len()),
                }
            }
            // Without leading zeros, what parses re-encodes to the same bytes.
            if let Ok(parsed) = all(&payload) {
                let again = all(&canonical).unwrap();
                prop_assert_eq!(parsed, again);
            }
        }
    }
}
