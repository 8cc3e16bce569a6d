//! WAMP CBOR (`wamp.2.cbor`): decoding through ciborium into `Value`, and a direct encoder
//! from a message's elements to bytes.
//!
//! Byte strings are binary, text strings are strings (ciborium checks their UTF-8), null and
//! undefined are null, floats of every width are `f64`. Tags are refused (see
//! `ValueVisitor::visit_enum`) with two exceptions: a bignum (tags 2 and 3) that fits a
//! `Value` integer is that integer, which ciborium decides; and the self-described CBOR tag
//! 55799 in front of the message, which RFC 8949 §3.4.6 gives no meaning, is skipped. The
//! encoder writes definite lengths, integers in their shortest head and floats as 64 bits.

use std::io;

use crate::wamp::message::Element;
use crate::wamp::serializer::DecodeError;
use crate::wamp::value::{Dict, Value};

/// The head of tag 55799, self-described CBOR: it marks data as CBOR and imparts no special
/// semantics on the item it encloses (RFC 8949 §3.4.6).
const SELF_DESCRIBED_CBOR: [u8; 3] = [0xd9, 0xd9, 0xf7];

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;
const FLOAT64: u8 = 0xfb;

/// The one value in `bytes`, nesting at most `max_depth` lists and dicts; nothing may follow
/// it. ciborium's recursion limit is exactly `max_depth` (each array, map or tag spends one
/// level), so deeper input stops at that level without using more stack.
pub(crate) fn decode(bytes: &[u8], max_depth: usize) -> Result<Value, DecodeError> {
    let mut rest = bytes.strip_prefix(&SELF_DESCRIBED_CBOR).unwrap_or(bytes);
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, max_depth)
        .map_err(|error| decode_error(error, max_depth))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::Syntax {
            detail: format!("{} bytes after the value", rest.len()),
        })
    }
}

fn decode_error(error: ciborium::de::Error<io::Error>, max_depth: usize) -> DecodeError {
    use ciborium::de::Error;
    let detail = match error {
        Error::RecursionLimitExceeded => return DecodeError::TooDeep { max: max_depth },
        Error::Io(error) if error.kind() == io::ErrorKind::UnexpectedEof => "truncated".to_owned(),
        Error::Io(error) => error.to_string(),
        Error::Syntax(offset) => format!("malformed CBOR at byte {offset}"),
        Error::Semantic(Some(offset), message) => format!("{message} (at byte {offset})"),
        Error::Semantic(None, message) => message,
    };
    DecodeError::Syntax { detail }
}

/// Appends the message list made of `elements` to `out`.
pub(crate) fn encode(elements: &[Element<'_>], out: &mut Vec<u8>) {
    write_head(out, MAJOR_ARRAY, len64(elements.len()));
    for element in elements {
        match *element {
            Element::Uint(u) => write_head(out, MAJOR_UNSIGNED, u),
            Element::Str(s) => write_text(out, s),
            Element::Dict(dict) => write_dict(out, dict),
            Element::List(items) => write_list(out, items),
        }
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Integer(i) => match u64::try_from(*i) {
            Ok(u) => write_head(out, MAJOR_UNSIGNED, u),
            // RFC 8949 §3.1: major type 1 carries -1 minus the argument; for a negative i,
            // -1 - i is !i, which is >= 0.
            Err(_) => write_head(out, MAJOR_NEGATIVE, u64::try_from(!*i).unwrap_or(0)),
        },
        Value::Unsigned(u) => write_head(out, MAJOR_UNSIGNED, *u),
        Value::Float(f) => {
            out.push(FLOAT64);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::String(s) => write_text(out, s),
        Value::Bytes(bytes) => {
            write_head(out, MAJOR_BYTES, len64(bytes.len()));
            out.extend_from_slice(bytes);
        }
        Value::List(items) => write_list(out, items),
        Value::Dict(dict) => write_dict(out, dict),
    }
}

/// `usize` is at most 64 bits wide on every target Rust supports; the fallback is never taken.
fn len64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// The head of a data item (RFC 8949 §3): the major type in the top 3 bits and the argument
/// in the low 5 when below 24, else in the 1, 2, 4 or 8 bytes that follow, whichever is
/// shortest ("preferred serialization", §4.1).
fn write_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    if let Ok(short) = u8::try_from(argument) {
        if short < 24 {
            out.push(major | short);
        } else {
            out.extend_from_slice(&[major | 24, short]);
        }
    } else if let Ok(argument) = u16::try_from(argument) {
        out.push(major | 25);
        out.extend_from_slice(&argument.to_be_bytes());
    } else if let Ok(argument) = u32::try_from(argument) {
        out.push(major | 26);
        out.extend_from_slice(&argument.to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&argument.to_be_bytes());
    }
}

fn write_text(out: &mut Vec<u8>, s: &str) {
    write_head(out, MAJOR_TEXT, len64(s.len()));
    out.extend_from_slice(s.as_bytes());
}

fn write_list(out: &mut Vec<u8>, items: &[Value]) {
    write_head(out, MAJOR_ARRAY, len64(items.len()));
    for item in items {
        write_value(out, item);
    }
}

fn write_dict(out: &mut Vec<u8>, dict: &Dict) {
    write_head(out, MAJOR_MAP, len64(dict.len()));
    for (key, value) in dict.iter() {
        write_text(out, key);
        write_value(out, value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::wamp::message::every_message;

    fn encode_value(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(&mut out, value);
        out
    }

    fn has_float(value: &Value) -> bool {
        match value {
            Value::Float(_) => true,
            Value::List(items) => items.iter().any(has_float),
            Value::Dict(dict) => dict.iter().any(|(_, v)| has_float(v)),
            _ => false,
        }
    }

    #[test]
    fn writes_what_ciborium_writes_except_float_width() {
        let mut values: Vec<Value> = every_message().iter().map(|m| m.to_value()).collect();
        for boundary in [
            0,
            23,
            24,
            255,
            256,
            65535,
            65536,
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            values.push(Value::from(boundary));
        }
        for boundary in [-1, -24, -25, -256, -257, -65537, i64::MIN] {
            values.push(Value::Integer(boundary));
        }
        for value in values {
            let ours = encode_value(&value);
            // ciborium writes each float in the narrowest width that holds it; this
            // encoder always uses 64 bits, as cbor2 does by default.
            if !has_float(&value) {
                let mut theirs = Vec::new();
                ciborium::into_writer(&value, &mut theirs).unwrap();
                assert_eq!(ours, theirs, "{value:?}");
            }
            assert_eq!(decode(&ours, 16), Ok(value));
        }
    }

    #[test]
    fn floats_of_every_width_are_f64() {
        // half 1.5, single 1.5, double 1.5
        assert_eq!(decode(&[0xf9, 0x3e, 0x00], 1), Ok(Value::Float(1.5)));
        assert_eq!(decode(&[0xfa, 0x3f, 0xc0, 0, 0], 1), Ok(Value::Float(1.5)));
        assert_eq!(
            encode_value(&Value::Float(1.5)),
            [0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]
        );
        let nan = decode(&[0xf9, 0x7e, 0x00], 1).unwrap();
        assert!(matches!(nan, Value::Float(f) if f.is_nan()));
    }

    #[test]
    fn simple_values_and_strings() {
        assert_eq!(decode(&[0xf6], 1), Ok(Value::Null));
        // undefined
        assert_eq!(decode(&[0xf7], 1), Ok(Value::Null));
        assert_eq!(decode(&[0xf5], 1), Ok(Value::Bool(true)));
        assert_eq!(decode(&[0x42, 1, 2], 1), Ok(Value::Bytes(vec![1, 2])));
        assert_eq!(decode(&[0x61, 0], 1), Ok(Value::String("\0".to_owned())));
        // Indefinite-length text and array: ["ab"] in chunks.
        assert_eq!(
            decode(&[0x9f, 0x7f, 0x61, b'a', 0x61, b'b', 0xff, 0xff], 1),
            Ok(Value::List(vec![Value::String("ab".to_owned())]))
        );
        // Invalid UTF-8 in text, simple value 16.
        assert!(matches!(
            decode(&[0x61, 0xff], 1),
            Err(DecodeError::Syntax { .. })
        ));
        assert!(matches!(
            decode(&[0xf0], 1),
            Err(DecodeError::Syntax { .. })
        ));
    }

    #[test]
    fn tags_are_refused_except_self_described_and_small_bignums() {
        // tag 1 (epoch time) around 0, on a dict key, and 55799 anywhere but in front.
        for bytes in [
            &[0xc1, 0x00][..],
            &[0xa1, 0xc1, 0x61, b'a', 0x00],
            &[0x81, 0xd9, 0xd9, 0xf7, 0x00],
        ] {
            let error = decode(bytes, 4).unwrap_err();
            assert!(matches!(error, DecodeError::Syntax { .. }), "{bytes:x?}");
        }
        assert_eq!(
            decode(&[0xc1, 0x00], 4),
            Err(DecodeError::Syntax {
                detail: "CBOR tag 1 is not a WAMP value".to_owned()
            })
        );
        // 55799 in front of the message is skipped.
        assert_eq!(
            decode(&[0xd9, 0xd9, 0xf7, 0x81, 0x01], 1),
            Ok(Value::List(vec![Value::Integer(1)]))
        );
        // Bignums that fit a Value are integers; larger ones are refused.
        assert_eq!(decode(&[0xc2, 0x41, 0x05], 1), Ok(Value::Integer(5)));
        assert_eq!(
            decode(
                &[0xc2, 0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                1
            ),
            Ok(Value::Unsigned(u64::MAX))
        );
        assert!(matches!(
            decode(&[0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0], 1),
            Err(DecodeError::Syntax { .. })
        ));
    }

    #[test]
    fn integers_below_i64_are_refused() {
        // -2^64, the most negative CBOR integer
        assert!(matches!(
            decode(&[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 1),
            Err(DecodeError::Syntax { .. })
        ));
        assert_eq!(
            decode(&[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 1),
            Ok(Value::Integer(i64::MIN))
        );
    }

    #[test]
    fn dict_keys_are_text_in_order_without_repeats() {
        assert_eq!(
            decode(&[0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x02], 2),
            Ok(Value::Dict(Dict(vec![
                ("b".to_owned(), Value::Integer(1)),
                ("a".to_owned(), Value::Integer(2)),
            ])))
        );
        for bytes in [
            &[0xa1, 0x01, 0x01][..],
            &[0xa1, 0x41, b'a', 0x01],
            &[0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02],
        ] {
            assert!(
                matches!(decode(bytes, 2), Err(DecodeError::Syntax { .. })),
                "{bytes:x?}"
            );
        }
    }

    #[test]
    fn declared_lengths_cost_nothing_before_the_bytes_arrive() {
        // array, map, text and bytes of 2^64 - 1 entries or bytes, with nothing after.
        for major in [0x9b, 0xbb, 0x7b, 0x5b] {
            let bytes = [major, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
            assert!(matches!(decode(&bytes, 4), Err(DecodeError::Syntax { .. })));
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        assert_eq!(
            decode(&[0x80, 0x80, 0x80], 4),
            Err(DecodeError::Syntax {
                detail: "2 bytes after the value".to_owned()
            })
        );
    }
}
