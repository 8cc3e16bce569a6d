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

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Integer(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::Unsigned(u) => write_u64(out, *u),
        // JSON has no NaN or infinity (RFC 8259 §6); serde_json writes them as null, and so
        // does this, rather than failing a message a MessagePack or CBOR peer sent.
        Value::Float(f) if f.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes());
        }
        Value::Float(_) => out.extend_from_slice(b"null"),
        Value::String(s) => write_str(out, s),
        Value::Bytes(bytes) => write_str(out, &json_binary(bytes)),
        Value::List(items) => write_list(out, items),
        Value::Dict(dict) => write_dict(out, dict),
    }
}

fn write_u64(out: &mut Vec<u8>, u: u64) {
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
fn write_str(out: &mut Vec<u8>, s: &str) {
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
