//! WAMP JSON (`wamp.2.json`): decoding through serde_json into `Value`, and a direct encoder
//! from a message's elements to bytes, written as serde_json would write them (compact, its
//! escapes, its number formats) without going through a serde_json value.
//!
//! WAMP v2, "Binary conversion of JSON Strings": binary travels as a string made of a NUL
//! (written `\u0000`) then base64; `Value` decodes such strings to `Bytes` and they are
//! written back the same way. Nothing else in JSON marks a string as binary, so a
//! `Value::String` that itself starts with NUL (possible from MessagePack or CBOR) reaches a
//! JSON peer as binary: the spec's convention cannot tell them apart.

use std::cell::Cell;

use serde::de::DeserializeSeed;

use crate::wamp::message::Element;
use crate::wamp::serializer::DecodeError;
use crate::wamp::value::{Dict, Value, ValueSeed, json_binary};

/// The one value in `bytes` (whitespace around it allowed), nesting at most `max_depth`
/// lists and dicts. serde_json checks UTF-8 and refuses trailing characters; its own recursion
/// limit (127 levels) is above `MAX_DEPTH`, so the seed's bound is always the one that fires.
pub(crate) fn decode(bytes: &[u8], max_depth: usize) -> Result<Value, DecodeError> {
    let too_deep = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    ValueSeed::new(max_depth, &too_deep)
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|error| {
            if too_deep.get() {
                DecodeError::TooDeep { max: max_depth }
            } else {
                DecodeError::Syntax {
                    detail: error.to_string(),
                }
            }
        })
}

/// Appends the message list made of `elements` to `out`.
pub(crate) fn encode(elements: &[Element<'_>], out: &mut Vec<u8>) {
    out.push(b'[');
    for (index, element) in elements.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        match *element {
            Element::Uint(u) => write_u64(out, u),
            Element::Str(s) => write_str(out, s),
            Element::Dict(dict) => write_dict(out, dict),
            Element::List(items) => write_list(out, items),
        }
    }
    out.push(b']');
}

/// Appends `value` as JSON (also used by `wamp::v1`, whose messages are lists of values).
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Integer(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::Unsigned(u) => write_u64(out, *u),
        // JSON has no NaN or infinity (RFC 8259 §6); serde_json writes them as null, and so
        // does this, rather than failing a message a MessagePack or CBOR peer sent.
        Value::Float(f) if f.is_finite() => {
            out.extend_from_slice(zmij::Buffer::new().format_finite(*f).as_bytes());
        }
        Value::Float(_) => out.extend_from_slice(b"null"),
        Value::String(s) => write_str(out, s),
        Value::Bytes(bytes) => write_str(out, &json_binary(bytes)),
        Value::List(items) => write_list(out, items),
        Value::Dict(dict) => write_dict(out, dict),
    }
}

pub(crate) fn write_u64(out: &mut Vec<u8>, u: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
}

fn write_list(out: &mut Vec<u8>, items: &[Value]) {
    out.push(b'[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_value(out, item);
    }
    out.push(b']');
}

fn write_dict(out: &mut Vec<u8>, dict: &Dict) {
    out.push(b'{');
    for (index, (key, value)) in dict.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

/// A JSON string with serde_json's escapes: `"` and `\`, the short forms of RFC 8259 §7 for
/// backspace, form feed, newline, carriage return and tab, `\u00XX` (lower-case hex) for the
/// other control characters, everything else as UTF-8.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut rest = s.as_bytes();
    while let Some(position) = rest
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
    {
        let (plain, escaped) = rest.split_at(position);
        out.extend_from_slice(plain);
        let [byte, after @ ..] = escaped else { break };
        match *byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            control => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                hex_digit(control >> 4),
                hex_digit(control & 0x0f),
            ]),
        }
        rest = after;
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// The lower-case hex digit of `nibble` (callers pass 0..=15).
fn hex_digit(nibble: u8) -> u8 {
    b"0123456789abcdef"
        .get(usize::from(nibble))
        .copied()
        .unwrap_or(b'0')
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

    fn decode_value(text: &str) -> Result<Value, DecodeError> {
        decode(text.as_bytes(), 16)
    }

    #[test]
    fn spec_binary_example_decodes_and_encodes() {
        // WAMP v2, "Binary conversion of JSON Strings": 10e3ff9053075c526f5fc06d4fe37cdb
        // is "\u0000EOP/kFMHXFJvX8BtT+N82w==".
        let bytes = vec![
            0x10, 0xe3, 0xff, 0x90, 0x53, 0x07, 0x5c, 0x52, 0x6f, 0x5f, 0xc0, 0x6d, 0x4f, 0xe3,
            0x7c, 0xdb,
        ];
        let json = r#""\u0000EOP/kFMHXFJvX8BtT+N82w==""#;
        assert_eq!(decode_value(json), Ok(Value::Bytes(bytes.clone())));
        assert_eq!(encode_value(&Value::Bytes(bytes)), json.as_bytes());
        // Unpadded base64 is read too; an empty binary is a lone NUL.
        assert_eq!(decode_value(r#""\u0000AQI""#), Ok(Value::Bytes(vec![1, 2])));
        assert_eq!(decode_value(r#""\u0000""#), Ok(Value::Bytes(Vec::new())));
        assert_eq!(encode_value(&Value::Bytes(Vec::new())), br#""\u0000""#);
    }

    #[test]
    fn nul_then_invalid_base64_is_a_syntax_error() {
        for json in [
            r#""\u0000not base64!""#,
            r#""\u0000A""#,
            r#""\u0000\u0000""#,
        ] {
            assert!(
                matches!(decode_value(json), Err(DecodeError::Syntax { .. })),
                "{json}"
            );
        }
        // A NUL elsewhere is an ordinary character; keys are never binary.
        assert_eq!(
            decode_value(r#""a\u0000""#),
            Ok(Value::String("a\0".to_owned()))
        );
        assert_eq!(
            decode_value(r#"{"\u0000x":1}"#),
            Ok(Value::Dict(Dict(vec![(
                "\0x".to_owned(),
                Value::Integer(1)
            )])))
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_byte_char = String::new();
        for c in (0u8..=0x7f).map(char::from) {
            every_byte_char.push(c);
        }
        for text in [
            every_byte_char.as_str(),
            "",
            "plain",
            "ünïcödé € 𝄞",
            "\"\\/\u{7f}\u{2028}",
        ] {
            let value = Value::String(text.to_owned());
            let ours = encode_value(&value);
            assert_eq!(ours, serde_json::to_vec(text).unwrap(), "{text:?}");
            if !text.starts_with('\0') {
                assert_eq!(decode(&ours, 1), Ok(value));
            }
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        // Value's Serialize impl goes through serde_json; the direct writer must agree.
        for message in every_message() {
            let value = message.to_value();
            assert_eq!(encode_value(&value), serde_json::to_vec(&value).unwrap());
        }
        for f in [
            0.0,
            -0.0,
            1.0,
            0.1,
            1e300,
            -1e-300,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let value = Value::Float(f);
            assert_eq!(encode_value(&value), serde_json::to_vec(&value).unwrap());
            assert_eq!(decode(&encode_value(&value), 1), Ok(value), "{f}");
        }
    }

    #[test]
    fn nan_and_infinity_are_written_as_null() {
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(encode_value(&Value::Float(f)), b"null");
        }
        for text in ["NaN", "Infinity", "-Infinity", "1e400"] {
            assert!(matches!(
                decode_value(text),
                Err(DecodeError::Syntax { .. })
            ));
        }
    }

    #[test]
    fn integers_stay_integers_and_huge_ones_become_floats() {
        let cases = [
            ("0", Value::Integer(0)),
            ("-9223372036854775808", Value::Integer(i64::MIN)),
            ("9223372036854775807", Value::Integer(i64::MAX)),
            ("9223372036854775808", Value::Unsigned(1 << 63)),
            ("18446744073709551615", Value::Unsigned(u64::MAX)),
            // Beyond u64 and i64 JSON numbers are floats, as serde_json reads them.
            ("18446744073709551616", Value::Float(18446744073709551616.0)),
            ("-9223372036854775809", Value::Float(-9223372036854775809.0)),
            // A fraction or an exponent makes a float even when the value is whole.
            ("1.0", Value::Float(1.0)),
            ("1e2", Value::Float(100.0)),
        ];
        for (text, value) in cases {
            assert_eq!(decode_value(text), Ok(value.clone()), "{text}");
        }
        assert_eq!(
            encode_value(&Value::Unsigned(u64::MAX)),
            b"18446744073709551615"
        );
        assert_eq!(
            encode_value(&Value::Integer(i64::MIN)),
            b"-9223372036854775808"
        );
        assert_eq!(encode_value(&Value::Float(1.0)), b"1.0");
    }

    #[test]
    fn dict_keys_keep_their_order_and_may_not_repeat() {
        let text = r#"{"zebra":1,"apple":2,"mango":{"y":[],"b":null}}"#;
        let value = decode_value(text).unwrap();
        let Value::Dict(dict) = &value else {
            panic!("not a dict")
        };
        let keys: Vec<&str> = dict.iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["zebra", "apple", "mango"]);
        assert_eq!(encode_value(&value), text.as_bytes());
        assert!(matches!(
            decode_value(r#"{"a":1,"b":2,"a":3}"#),
            Err(DecodeError::Syntax { .. })
        ));
    }

    #[test]
    fn text_must_be_utf8_and_alone() {
        assert!(matches!(
            decode(b"[\"\xff\"]", 4),
            Err(DecodeError::Syntax { .. })
        ));
        // A lone surrogate escape is not a character.
        assert!(matches!(
            decode_value(r#""\ud800""#),
            Err(DecodeError::Syntax { .. })
        ));
        assert_eq!(
            decode_value(" [1] \n"),
            Ok(Value::List(vec![Value::Integer(1)]))
        );
        assert!(matches!(
            decode_value("[1]x"),
            Err(DecodeError::Syntax { .. })
        ));
    }
}
