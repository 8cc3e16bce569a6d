//! WAMP MessagePack (`wamp.2.msgpack`): a reader and a writer over the marker table of the
//! `rmp` crate, straight between bytes and `Value`.
//!
//! Not rmp-serde: its deserializer hands a str holding invalid UTF-8 to serde as bytes, so a
//! malformed string would arrive as binary instead of being refused; reading the markers
//! ourselves also gives an exact depth bound, no intermediate value and no allocation sized
//! by a declared length. `str` is a string (UTF-8 checked), `bin` is binary, ext types and the
//! reserved byte 0xc1 are refused, dict keys must be strings. Integers and lengths are written
//! in their shortest form and floats as float 64, as rmp-serde writes them (a test compares).

use rmp::Marker;

use crate::wamp::message::Element;
use crate::wamp::serializer::DecodeError;
use crate::wamp::value::{Dict, MAX_PREALLOCATED_ENTRIES, Value, has_duplicate_keys};

/// The one value in `bytes`, nesting at most `max_depth` lists and dicts; nothing may follow
/// it. Recursion is one call per level, so the bound keeps the stack small.
pub(crate) fn decode(bytes: &[u8], max_depth: usize) -> Result<Value, DecodeError> {
    let mut reader = Reader {
        rest: bytes,
        offset: 0,
        max_depth,
    };
    let value = reader.value(max_depth)?;
    if reader.rest.is_empty() {
        Ok(value)
    } else {
        Err(syntax(format!(
            "{} bytes after the value, which ends at byte {}",
            reader.rest.len(),
            reader.offset
        )))
    }
}

fn syntax(detail: String) -> DecodeError {
    DecodeError::Syntax { detail }
}

struct Reader<'a> {
    rest: &'a [u8],
    /// Bytes read so far, for error messages.
    offset: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let Some((taken, rest)) = self.rest.split_at_checked(len) else {
            return Err(syntax(format!(
                "truncated: {len} bytes needed at byte {}, {} left",
                self.offset,
                self.rest.len()
            )));
        };
        self.rest = rest;
        self.offset = self.offset.saturating_add(len);
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let taken = self.take(N)?;
        <[u8; N]>::try_from(taken).map_err(|_| syntax(format!("truncated at byte {}", self.offset)))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.array().map(u8::from_be_bytes)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_be_bytes)
    }

    /// A 32-bit length field as `usize`.
    fn len32(&mut self) -> Result<usize, DecodeError> {
        let len = self.u32()?;
        usize::try_from(len).map_err(|_| syntax(format!("length {len} does not fit in memory")))
    }

    /// The length of a str if `marker` starts one.
    fn str_len(&mut self, marker: Marker) -> Result<Option<usize>, DecodeError> {
        Ok(Some(match marker {
            Marker::FixStr(len) => usize::from(len),
            Marker::Str8 => usize::from(self.u8()?),
            Marker::Str16 => usize::from(self.u16()?),
            Marker::Str32 => self.len32()?,
            _ => return Ok(None),
        }))
    }

    fn string(&mut self, len: usize) -> Result<String, DecodeError> {
        let start = self.offset;
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(error) => Err(syntax(format!(
                "invalid UTF-8 in the str at byte {}",
                start.saturating_add(error.valid_up_to())
            ))),
        }
    }

    fn value(&mut self, depth_left: usize) -> Result<Value, DecodeError> {
        let start = self.offset;
        let marker = Marker::from_u8(self.u8()?);
        if let Some(len) = self.str_len(marker)? {
            return self.string(len).map(Value::String);
        }
        Ok(match marker {
            Marker::Null => Value::Null,
            Marker::False => Value::Bool(false),
            Marker::True => Value::Bool(true),
            Marker::FixPos(u) => Value::Integer(i64::from(u)),
            Marker::FixNeg(i) => Value::Integer(i64::from(i)),
            Marker::U8 => Value::Integer(i64::from(self.u8()?)),
            Marker::U16 => Value::Integer(i64::from(self.u16()?)),
            Marker::U32 => Value::Integer(i64::from(self.u32()?)),
            Marker::U64 => Value::from(self.u64()?),
            Marker::I8 => Value::Integer(i64::from(self.array().map(i8::from_be_bytes)?)),
            Marker::I16 => Value::Integer(i64::from(self.array().map(i16::from_be_bytes)?)),
            Marker::I32 => Value::Integer(i64::from(self.array().map(i32::from_be_bytes)?)),
            Marker::I64 => Value::Integer(self.array().map(i64::from_be_bytes)?),
            Marker::F32 => Value::Float(f64::from(self.array().map(f32::from_be_bytes)?)),
            Marker::F64 => Value::Float(self.array().map(f64::from_be_bytes)?),
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let len = match marker {
                    Marker::Bin8 => usize::from(self.u8()?),
                    Marker::Bin16 => usize::from(self.u16()?),
                    _ => self.len32()?,
                };
                Value::Bytes(self.take(len)?.to_vec())
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let len = match marker {
                    Marker::FixArray(len) => usize::from(len),
                    Marker::Array16 => usize::from(self.u16()?),
                    _ => self.len32()?,
                };
                self.list(len, depth_left)?
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                let len = match marker {
                    Marker::FixMap(len) => usize::from(len),
                    Marker::Map16 => usize::from(self.u16()?),
                    _ => self.len32()?,
                };
                self.dict(len, depth_left)?
            }
            // WAMP values are JSON's (plus binary), which every serialization must carry
            // alike; an ext type (a timestamp, an application's own) has none to become.
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => {
                return Err(syntax(format!(
                    "the ext type at byte {start} is not a WAMP value"
                )));
            }
            Marker::Reserved => {
                return Err(syntax(format!(
                    "byte {start} is 0xc1, which MessagePack reserves"
                )));
            }
            // Handled above by str_len.
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                return Err(syntax(format!("unexpected str at byte {start}")));
            }
        })
    }

    /// Room reserved for `len` entries: never more than the bytes left could hold (each entry
    /// takes at least one) nor `MAX_PREALLOCATED_ENTRIES`.
    fn capacity(&self, len: usize) -> usize {
        len.min(self.rest.len()).min(MAX_PREALLOCATED_ENTRIES)
    }

    fn enter(&self, depth_left: usize) -> Result<usize, DecodeError> {
        depth_left.checked_sub(1).ok_or(DecodeError::TooDeep {
            max: self.max_depth,
        })
    }

    fn list(&mut self, len: usize, depth_left: usize) -> Result<Value, DecodeError> {
        let inner = self.enter(depth_left)?;
        let mut items = Vec::with_capacity(self.capacity(len));
        for _ in 0..len {
            items.push(self.value(inner)?);
        }
        Ok(Value::List(items))
    }

    fn dict(&mut self, len: usize, depth_left: usize) -> Result<Value, DecodeError> {
        let inner = self.enter(depth_left)?;
        let mut entries = Vec::with_capacity(self.capacity(len));
        for _ in 0..len {
            let start = self.offset;
            let marker = Marker::from_u8(self.u8()?);
            let Some(key_len) = self.str_len(marker)? else {
                return Err(syntax(format!("the dict key at byte {start} is not a str")));
            };
            let key = self.string(key_len)?;
            entries.push((key, self.value(inner)?));
        }
        if has_duplicate_keys(&entries) {
            return Err(syntax("a dict key appears twice".to_owned()));
        }
        Ok(Value::Dict(Dict(entries)))
    }
}

/// A length MessagePack cannot write: its str, bin, array and map lengths are at most 32 bits.
#[derive(Debug, PartialEq)]
pub(crate) struct TooLong;

/// Appends the message list made of `elements` to `out`; on `TooLong`, `out` holds a partial
/// message the caller drops.
pub(crate) fn encode(elements: &[Element<'_>], out: &mut Vec<u8>) -> Result<(), TooLong> {
    write_container_len(out, elements.len(), 0x90, 0xdc, 0xdd)?;
    for element in elements {
        match *element {
            Element::Uint(u) => write_u64(out, u),
            Element::Str(s) => write_str(out, s)?,
            Element::Dict(dict) => write_dict(out, dict)?,
            Element::List(items) => write_list(out, items)?,
        }
    }
    Ok(())
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), TooLong> {
    match value {
        Value::Null => out.push(0xc0),
        Value::Bool(false) => out.push(0xc2),
        Value::Bool(true) => out.push(0xc3),
        Value::Integer(i) => write_i64(out, *i),
        Value::Unsigned(u) => write_u64(out, *u),
        Value::Float(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::String(s) => write_str(out, s)?,
        Value::Bytes(bytes) => {
            if let Ok(len) = u8::try_from(bytes.len()) {
                out.extend_from_slice(&[0xc4, len]);
            } else if let Ok(len) = u16::try_from(bytes.len()) {
                out.push(0xc5);
                out.extend_from_slice(&len.to_be_bytes());
            } else {
                out.push(0xc6);
                out.extend_from_slice(&len32(bytes.len())?.to_be_bytes());
            }
            out.extend_from_slice(bytes);
        }
        Value::List(items) => write_list(out, items)?,
        Value::Dict(dict) => write_dict(out, dict)?,
    }
    Ok(())
}

fn len32(len: usize) -> Result<u32, TooLong> {
    u32::try_from(len).map_err(|_| TooLong)
}

/// positive fixint, uint 8, 16, 32 or 64, whichever is shortest.
fn write_u64(out: &mut Vec<u8>, u: u64) {
    if let Ok(small) = u8::try_from(u) {
        if small < 0x80 {
            out.push(small);
        } else {
            out.extend_from_slice(&[0xcc, small]);
        }
    } else if let Ok(u) = u16::try_from(u) {
        out.push(0xcd);
        out.extend_from_slice(&u.to_be_bytes());
    } else if let Ok(u) = u32::try_from(u) {
        out.push(0xce);
        out.extend_from_slice(&u.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

/// A non-negative integer as unsigned; a negative one as negative fixint, int 8, 16, 32 or
/// 64, whichever is shortest.
fn write_i64(out: &mut Vec<u8>, i: i64) {
    if let Ok(u) = u64::try_from(i) {
        write_u64(out, u);
    } else if let Ok(small) = i8::try_from(i) {
        let [byte] = small.to_be_bytes();
        if small >= -32 {
            // negative fixint: 0xe0..=0xff is the byte of -32..=-1 itself.
            out.push(byte);
        } else {
            out.extend_from_slice(&[0xd0, byte]);
        }
    } else if let Ok(i) = i16::try_from(i) {
        out.push(0xd1);
        out.extend_from_slice(&i.to_be_bytes());
    } else if let Ok(i) = i32::try_from(i) {
        out.push(0xd2);
        out.extend_from_slice(&i.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), TooLong> {
    let len = s.len();
    match u8::try_from(len) {
        Ok(short) if short < 32 => out.push(0xa0 | short),
        Ok(short) => out.extend_from_slice(&[0xd9, short]),
        Err(_) => match u16::try_from(len) {
            Ok(len) => {
                out.push(0xda);
                out.extend_from_slice(&len.to_be_bytes());
            }
            Err(_) => {
                out.push(0xdb);
                out.extend_from_slice(&len32(len)?.to_be_bytes());
            }
        },
    }
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// fixarray/fixmap (`fix` | len, up to 15 entries), else the 16- or 32-bit form.
fn write_container_len(
    out: &mut Vec<u8>,
    len: usize,
    fix: u8,
    marker16: u8,
    marker32: u8,
) -> Result<(), TooLong> {
    match u16::try_from(len) {
        Ok(len16) => match u8::try_from(len16) {
            Ok(short) if short < 16 => out.push(fix | short),
            Ok(_) | Err(_) => {
                out.push(marker16);
                out.extend_from_slice(&len16.to_be_bytes());
            }
        },
        Err(_) => {
            out.push(marker32);
            out.extend_from_slice(&len32(len)?.to_be_bytes());
        }
    }
    Ok(())
}

fn write_list(out: &mut Vec<u8>, items: &[Value]) -> Result<(), TooLong> {
    write_container_len(out, items.len(), 0x90, 0xdc, 0xdd)?;
    items.iter().try_for_each(|item| write_value(out, item))
}

fn write_dict(out: &mut Vec<u8>, dict: &Dict) -> Result<(), TooLong> {
    write_container_len(out, dict.len(), 0x80, 0xde, 0xdf)?;
    dict.iter().try_for_each(|(key, value)| {
        write_str(out, key)?;
        write_value(out, value)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::wamp::message::every_message;

    fn encode_value(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(&mut out, value).unwrap();
        out
    }

    #[test]
    fn writes_what_rmp_serde_writes() {
        let mut values: Vec<Value> = every_message().iter().map(|m| m.to_value()).collect();
        for boundary in [
            0,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            values.push(Value::from(boundary));
        }
        for boundary in [
            -1,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            i64::from(i32::MIN) - 1,
        ] {
            values.push(Value::Integer(boundary));
        }
        for len in [0, 31, 32, 255, 256, 65535, 65536] {
            values.push(Value::String("x".repeat(len)));
            values.push(Value::Bytes(vec![7; len]));
            values.push(Value::List(vec![Value::Null; len]));
            values.push(Value::Dict(Dict(
                (0..len).map(|i| (i.to_string(), Value::Null)).collect(),
            )));
        }
        for value in values {
            let ours = encode_value(&value);
            assert_eq!(ours, rmp_serde::to_vec(&value).unwrap());
            assert_eq!(decode(&ours, 16), Ok(value));
        }
    }

    #[test]
    fn str_is_string_and_bin_is_binary() {
        assert_eq!(
            decode(&[0xa2, b'h', b'i'], 1),
            Ok(Value::String("hi".to_owned()))
        );
        assert_eq!(
            decode(&[0xc4, 2, b'h', b'i'], 1),
            Ok(Value::Bytes(b"hi".to_vec()))
        );
        // No JSON convention here: a str starting with NUL is a string.
        assert_eq!(decode(&[0xa1, 0], 1), Ok(Value::String("\0".to_owned())));
    }

    #[test]
    fn str_with_invalid_utf8_is_refused_not_made_binary() {
        assert_eq!(
            decode(&[0xa2, b'a', 0xff], 1),
            Err(DecodeError::Syntax {
                detail: "invalid UTF-8 in the str at byte 2".to_owned()
            })
        );
    }

    #[test]
    fn ext_types_and_the_reserved_byte_are_refused() {
        // fixext 1, ext 8, and the timestamp extension (type -1)
        for bytes in [
            &[0xd4, 0x01, 0x00][..],
            &[0xc7, 0x01, 0x05, 0x00],
            &[0xd6, 0xff, 0, 0, 0, 0],
            &[0x91, 0xc1],
        ] {
            assert!(
                matches!(decode(bytes, 4), Err(DecodeError::Syntax { .. })),
                "{bytes:x?}"
            );
        }
    }

    #[test]
    fn floats_of_both_widths_are_f64() {
        let mut f32_bytes = vec![0xca];
        f32_bytes.extend_from_slice(&1.5f32.to_be_bytes());
        assert_eq!(decode(&f32_bytes, 1), Ok(Value::Float(1.5)));
        let nan = decode(&encode_value(&Value::Float(f64::NAN)), 1).unwrap();
        assert!(matches!(nan, Value::Float(f) if f.is_nan()));
        assert_eq!(
            encode_value(&Value::Float(1.5)),
            [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn dict_keys_are_strs_in_order_without_repeats() {
        // {"b": 1, "a": 2}
        assert_eq!(
            decode(&[0x82, 0xa1, b'b', 0x01, 0xa1, b'a', 0x02], 2),
            Ok(Value::Dict(Dict(vec![
                ("b".to_owned(), Value::Integer(1)),
                ("a".to_owned(), Value::Integer(2)),
            ])))
        );
        // {1: 1}, {bin "a": 1}, {"a": 1, "a": 2}
        for bytes in [
            &[0x81, 0x01, 0x01][..],
            &[0x81, 0xc4, 0x01, b'a', 0x01],
            &[0x82, 0xa1, b'a', 0x01, 0xa1, b'a', 0x02],
        ] {
            assert!(
                matches!(decode(bytes, 2), Err(DecodeError::Syntax { .. })),
                "{bytes:x?}"
            );
        }
    }

    #[test]
    fn declared_lengths_cost_nothing_before_the_bytes_arrive() {
        // array 32, map 32, str 32 and bin 32 of 2^32 - 1, with nothing after.
        for marker in [0xdd, 0xdf, 0xdb, 0xc6] {
            let bytes = [marker, 0xff, 0xff, 0xff, 0xff];
            assert!(matches!(decode(&bytes, 4), Err(DecodeError::Syntax { .. })));
        }
        // Truncated inside a length field.
        assert!(matches!(
            decode(&[0xdc, 0x00], 4),
            Err(DecodeError::Syntax { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        assert_eq!(
            decode(&[0x90, 0x90], 4),
            Err(DecodeError::Syntax {
                detail: "1 bytes after the value, which ends at byte 1".to_owned()
            })
        );
    }

    #[test]
    fn lengths_past_32_bits_cannot_be_written() {
        assert_eq!(len32(usize::try_from(u32::MAX).unwrap()), Ok(u32::MAX));
        if let Ok(too_long) = usize::try_from(u64::from(u32::MAX) + 1) {
            assert_eq!(len32(too_long), Err(TooLong));
            let mut out = Vec::new();
            assert_eq!(
                write_container_len(&mut out, too_long, 0x90, 0xdc, 0xdd),
                Err(TooLong)
            );
        }
    }
}
