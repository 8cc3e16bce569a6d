//! The values a WAMP message carries, independent of the serializer: what JSON, MessagePack
//! and CBOR decode into and encode from, so a publication made in one can reach a subscriber
//! of another.
//!
//! Dictionaries keep the order their keys arrived in (a publisher's kwargs reach subscribers
//! as sent). Binary strings are `Bytes`; JSON carries them as a string that starts with a NUL
//! followed by base64 (WAMP v2, "Binary conversion of JSON Strings").
//!
//! `Value` implements serde's `Serialize` and `Deserialize`, so the JSON and CBOR crates
//! decode straight into it (MessagePack has its own reader, `wamp::msgpack`). A
//! human-readable format (serde_json) gets the JSON binary convention both ways; a dict whose
//! keys repeat is refused, since peers that keep the first and peers that keep the last
//! would read different messages.

use std::cell::Cell;
use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::ser::{Serialize, Serializer};

use crate::wamp::serializer::MAX_DEPTH;

/// The first character of a JSON string that carries binary. WAMP v2, "Binary conversion of
/// JSON Strings": "If the string starts with a \0 character, interpret the rest (after the
/// first character) as Base64 and decode to a byte array".
pub(crate) const JSON_BINARY_PREFIX: char = '\0';

/// Decoders reserve room for at most this many list or dict entries before seeing them: a
/// declared length is a claim, and reserving by it would let 5 bytes cost gigabytes.
pub(crate) const MAX_PREALLOCATED_ENTRIES: usize = 1024;

/// A WAMP value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Any integer that fits an `i64`.
    Integer(i64),
    /// An integer above `i64::MAX` (MessagePack and CBOR carry them; so may JSON).
    Unsigned(u64),
    Float(f64),
    String(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(Dict),
}

/// A dictionary with its keys in arrival order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dict(pub Vec<(String, Value)>);

impl Dict {
    pub fn new() -> Dict {
        Dict(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// About how many bytes the dict's entries hold in memory (see `Value::heap_size`).
    pub fn heap_size(&self) -> usize {
        self.0.iter().fold(0_usize, |sum, (key, value)| {
            sum.saturating_add(std::mem::size_of::<String>())
                .saturating_add(key.len())
                .saturating_add(value.heap_size())
        })
    }

    /// The first value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing a value already there.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// `key` as a bool: `None` when absent, `Some(Err(()))` when of another type.
    pub fn bool(&self, key: &str) -> Option<Result<bool, ()>> {
        self.get(key).map(|value| match value {
            Value::Bool(b) => Ok(*b),
            _ => Err(()),
        })
    }

    /// `key` as a string: `None` when absent, `Some(Err(()))` when of another type.
    pub fn str(&self, key: &str) -> Option<Result<&str, ()>> {
        self.get(key).map(|value| match value {
            Value::String(s) => Ok(s.as_str()),
            _ => Err(()),
        })
    }

    /// `key` as a non-negative integer: `None` when absent, `Some(Err(()))` otherwise.
    pub fn uint(&self, key: &str) -> Option<Result<u64, ()>> {
        self.get(key).map(Value::as_u64)
    }
}

impl Value {
    /// A non-negative integer, as `u64`.
    // The router already matches on this `Err(())`, like `Dict::uint`'s; there is nothing
    // to say about a mismatch beyond "not a non-negative integer".
    #[allow(clippy::result_unit_err)]
    pub fn as_u64(&self) -> Result<u64, ()> {
        match *self {
            Value::Integer(i) => u64::try_from(i).map_err(|_| ()),
            Value::Unsigned(u) => Ok(u),
            _ => Err(()),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// About how many bytes this value holds in memory (its own size and what it owns): the
    /// measure of the retained events' budget. An estimate, never below the bytes of its
    /// strings and binaries, so a budget in these units bounds real memory.
    pub fn heap_size(&self) -> usize {
        let own = std::mem::size_of::<Value>();
        match self {
            Value::String(text) => own.saturating_add(text.len()),
            Value::Bytes(bytes) => own.saturating_add(bytes.len()),
            Value::List(items) => items
                .iter()
                .fold(own, |sum, item| sum.saturating_add(item.heap_size())),
            Value::Dict(dict) => own.saturating_add(dict.heap_size()),
            Value::Null
            | Value::Bool(_)
            | Value::Integer(_)
            | Value::Unsigned(_)
            | Value::Float(_) => own,
        }
    }

    /// How deeply lists and dicts nest in this value: 0 for a scalar, 1 for a flat list.
    pub fn depth(&self) -> usize {
        match self {
            Value::List(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Dict(dict) => 1 + dict.0.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            Value::Null
            | Value::Bool(_)
            | Value::Integer(_)
            | Value::Unsigned(_)
            | Value::Float(_)
            | Value::String(_)
            | Value::Bytes(_) => 0,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<u64> for Value {
    fn from(u: u64) -> Value {
        match i64::try_from(u) {
            Ok(i) => Value::Integer(i),
            Err(_) => Value::Unsigned(u),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Value {
        Value::Dict(d)
    }
}

/// `bytes` as a WAMP JSON string: NUL then padded standard base64, which the decoder reads
/// padded or not.
pub(crate) fn json_binary(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(1 + base64::encoded_len(bytes.len(), true).unwrap_or(0));
    text.push(JSON_BINARY_PREFIX);
    STANDARD.encode_string(bytes, &mut text);
    text
}

/// The bytes of the base64 part of a WAMP JSON binary string (after the NUL).
pub(crate) fn json_binary_bytes(base64: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD_PAD_INDIFFERENT.decode(base64)
}

/// True when a key appears twice. Small dicts (the usual Options and Details) are compared
/// pairwise; larger ones go through a set, so a dict of 100k keys costs 100k lookups, not 10^10
/// comparisons.
pub(crate) fn has_duplicate_keys(entries: &[(String, Value)]) -> bool {
    const PAIRWISE_MAX: usize = 16;
    if entries.len() <= PAIRWISE_MAX {
        entries
            .iter()
            .enumerate()
            .any(|(i, (key, _))| entries.iter().skip(i + 1).any(|(other, _)| other == key))
    } else {
        let mut seen = HashSet::with_capacity(entries.len());
        entries.iter().any(|(key, _)| !seen.insert(key.as_str()))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Integer(i) => serializer.serialize_i64(*i),
            Value::Unsigned(u) => serializer.serialize_u64(*u),
            // serde_json writes a NaN or an infinity as null, as `wamp::json` does.
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::String(s) => serializer.serialize_str(s),
            Value::Bytes(bytes) if serializer.is_human_readable() => {
                serializer.serialize_str(&json_binary(bytes))
            }
            Value::Bytes(bytes) => serializer.serialize_bytes(bytes),
            Value::List(items) => serializer.collect_seq(items),
            Value::Dict(dict) => dict.serialize(serializer),
        }
    }
}

impl Serialize for Dict {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

impl<'de> de::Deserialize<'de> for Value {
    /// Nesting is bounded by `MAX_DEPTH`; `Serializer::decode` takes a tighter bound.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        let too_deep = Cell::new(false);
        ValueSeed::new(MAX_DEPTH, &too_deep).deserialize(deserializer)
    }
}

/// Deserializes a `Value` that may nest `depth_left` more lists or dicts. Going deeper fails
/// and sets `too_deep`, so the caller can tell that error from the format's own ones (serde
/// errors are strings).
#[derive(Clone, Copy)]
pub(crate) struct ValueSeed<'a> {
    depth_left: usize,
    too_deep: &'a Cell<bool>,
}

impl<'a> ValueSeed<'a> {
    pub(crate) fn new(max_depth: usize, too_deep: &'a Cell<bool>) -> ValueSeed<'a> {
        ValueSeed {
            depth_left: max_depth,
            too_deep,
        }
    }

    /// The seed for the entries of a list or dict this seed is about to fill.
    fn enter<E: de::Error>(&self) -> Result<ValueSeed<'a>, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(ValueSeed {
                depth_left,
                too_deep: self.too_deep,
            }),
            None => {
                self.too_deep.set(true);
                Err(E::custom("lists and dicts nest too deeply"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        let json = deserializer.is_human_readable();
        deserializer.deserialize_any(ValueVisitor { seed: self, json })
    }
}

struct ValueVisitor<'a> {
    seed: ValueSeed<'a>,
    /// Strings that start with NUL are binary (JSON only).
    json: bool,
}

impl ValueVisitor<'_> {
    fn string<E: de::Error>(&self, text: &str) -> Result<Value, E> {
        match text.strip_prefix(JSON_BINARY_PREFIX) {
            Some(base64) if self.json => json_binary_bytes(base64)
                .map(Value::Bytes)
                .map_err(|_| E::custom("a string starting with NUL is not followed by base64")),
            Some(_) | None => Ok(Value::String(text.to_owned())),
        }
    }
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a WAMP value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Integer(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        Ok(Value::from(u))
    }

    // CBOR negative integers reach below i64::MIN, and its bignums (tags 2 and 3) may be
    // small: take what fits a Value.
    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Value, E> {
        if let Ok(i) = i64::try_from(i) {
            Ok(Value::Integer(i))
        } else if let Ok(u) = u64::try_from(i) {
            Ok(Value::Unsigned(u))
        } else {
            Err(E::custom("integer outside [-2^63, 2^64)"))
        }
    }

    fn visit_u128<E: de::Error>(self, u: u128) -> Result<Value, E> {
        u64::try_from(u)
            .map(Value::from)
            .map_err(|_| E::custom("integer outside [-2^63, 2^64)"))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        self.string(text)
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Value, E> {
        if self.json && text.starts_with(JSON_BINARY_PREFIX) {
            self.string(&text)
        } else {
            Ok(Value::String(text))
        }
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(bytes.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(bytes))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    // ciborium gives CBOR null and undefined as `none`.
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.seed.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.seed.enter()?;
        let capacity = seq.size_hint().unwrap_or(0).min(MAX_PREALLOCATED_ENTRIES);
        let mut items = Vec::with_capacity(capacity);
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.seed.enter()?;
        let capacity = map.size_hint().unwrap_or(0).min(MAX_PREALLOCATED_ENTRIES);
        let mut entries = Vec::with_capacity(capacity);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(inner)?;
            entries.push((key, value));
        }
        if has_duplicate_keys(&entries) {
            return Err(de::Error::custom("a dict key appears twice"));
        }
        Ok(Value::Dict(Dict(entries)))
    }

    /// ciborium hands a CBOR tag (other than a bignum that fits 128 bits) as an enum whose
    /// variant is a marker and whose content is the sequence (tag number, tagged item). WAMP
    /// values are JSON's, so no tag has a meaning here; rather than pass a date or a decimal
    /// on as a bare number or string, the message is refused. (Tag 55799, which means
    /// nothing, is skipped by `wamp::cbor` before the value.)
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        refuse_tag(data).map(|never| match never {})
    }
}

/// The error for a CBOR tag, naming its number.
fn refuse_tag<'de, A: EnumAccess<'de>>(data: A) -> Result<Infallible, A::Error> {
    let (_, content) = data.variant::<de::IgnoredAny>()?;
    content.tuple_variant(2, TagVisitor)
}

/// Reads the tag number of a CBOR tag, and fails with it.
struct TagVisitor;

impl<'de> Visitor<'de> for TagVisitor {
    type Value = Infallible;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a WAMP value, not a CBOR tag")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Infallible, A::Error> {
        match seq.next_element::<u64>()? {
            Some(tag) => Err(de::Error::custom(format_args!(
                "CBOR tag {tag} is not a WAMP value"
            ))),
            None => Err(de::Error::custom("CBOR tags are not WAMP values")),
        }
    }
}

/// A dict key: a string, never binary (WAMP dicts are keyed by strings). `deserialize_any`
/// rather than `String`'s own path, so a CBOR tag on a key is refused like one on a value
/// instead of being skipped.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string dict key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<String, E> {
        Ok(key.to_owned())
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<String, E> {
        Ok(key)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<String, A::Error> {
        refuse_tag(data).map(|never| match never {})
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn serde_json_sees_binary_as_the_wamp_json_convention() {
        let value = Value::List(vec![Value::Bytes(vec![1, 2, 3]), Value::from("text")]);
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(text, r#"["\u0000AQID","text"]"#);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }

    #[test]
    fn binary_formats_see_binary_as_bytes() {
        let value = Value::List(vec![Value::Bytes(vec![1, 2, 3]), Value::from("\0AQID")]);
        let mut cbor = Vec::new();
        ciborium::into_writer(&value, &mut cbor).unwrap();
        assert_eq!(cbor, [0x82, 0x43, 1, 2, 3, 0x65, 0, b'A', b'Q', b'I', b'D']);
        assert_eq!(ciborium::from_reader::<Value, _>(&cbor[..]).unwrap(), value);
    }

    #[test]
    fn plain_deserialize_is_bounded_by_max_depth() {
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH)).is_ok());
        let error = serde_json::from_str::<Value>(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(error.to_string().contains("nest too deeply"), "{error}");
    }

    #[test]
    fn duplicate_keys_are_found_in_small_and_large_dicts() {
        for len in [0, 1, 2, 16, 17, 1000] {
            let mut entries: Vec<(String, Value)> =
                (0..len).map(|i| (i.to_string(), Value::Null)).collect();
            assert!(!has_duplicate_keys(&entries), "{len}");
            if let Some((first, _)) = entries.first().cloned() {
                entries.push((first, Value::Bool(true)));
                assert!(has_duplicate_keys(&entries), "{len}");
            }
        }
    }

    #[test]
    fn dict_insert_keeps_the_first_position() {
        let mut dict = Dict::new();
        dict.insert("b", Value::Integer(1));
        dict.insert("a", Value::Integer(2));
        dict.insert("b", Value::Integer(3));
        let entries: Vec<(&str, &Value)> = dict.iter().collect();
        assert_eq!(
            entries,
            [("b", &Value::Integer(3)), ("a", &Value::Integer(2))]
        );
        assert_eq!(dict.uint("a"), Some(Ok(2)));
        assert_eq!(dict.str("a"), Some(Err(())));
        assert_eq!(dict.bool("missing"), None);
    }

    #[test]
    fn depth_counts_lists_and_dicts() {
        assert_eq!(Value::Null.depth(), 0);
        assert_eq!(Value::List(vec![]).depth(), 1);
        let mut inner = Dict::new();
        inner.insert("a", Value::List(vec![Value::Integer(1)]));
        assert_eq!(Value::List(vec![Value::Dict(inner)]).depth(), 3);
    }
}
