//! The three WAMP v2 serializations, chosen by the WebSocket subprotocol: `decode` checks the
//! format (via `wamp::json`, `wamp::msgpack`, `wamp::cbor`), bounds the nesting, then reads the
//! message out of the value (`Message::from_value`); `encode` writes a message's elements
//! straight to bytes.

use std::fmt;

use crate::wamp::message::Message;
use crate::wamp::{cbor, json, msgpack};

/// The deepest nesting `decode` accepts, whatever `max_depth` it is given: each level is a
/// few stack frames in the decoders, and serde_json refuses 128 levels of its own accord.
pub const MAX_DEPTH: usize = 100;

/// A WAMP serialization, as named by its WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Serializer {
    /// `wamp.2.json`: text frames.
    Json,
    /// `wamp.2.msgpack`: binary frames.
    MsgPack,
    /// `wamp.2.cbor`: binary frames.
    Cbor,
}

impl Serializer {
    pub const ALL: [Serializer; 3] = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];

    pub fn from_subprotocol(name: &str) -> Option<Serializer> {
        match name {
            "wamp.2.json" => Some(Serializer::Json),
            "wamp.2.msgpack" => Some(Serializer::MsgPack),
            "wamp.2.cbor" => Some(Serializer::Cbor),
            _ => None,
        }
    }

    pub fn subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
            Serializer::Cbor => "wamp.2.cbor",
        }
    }

    /// True when messages go in binary WebSocket frames.
    pub fn is_binary(self) -> bool {
        !matches!(self, Serializer::Json)
    }

    /// The message in `bytes`, or why it is not one. `max_depth` bounds how deeply lists and
    /// dicts may nest (the message itself is depth 1; above `MAX_DEPTH` it is `MAX_DEPTH`).
    /// Deeper input is `TooDeep` as soon as the decoder reaches the level past the bound, so
    /// no input can exhaust the stack. The value must be the whole of `bytes`.
    pub fn decode(self, bytes: &[u8], max_depth: usize) -> Result<Message, DecodeError> {
        let max_depth = max_depth.min(MAX_DEPTH);
        let value = match self {
            Serializer::Json => json::decode(bytes, max_depth)?,
            Serializer::MsgPack => msgpack::decode(bytes, max_depth)?,
            Serializer::Cbor => cbor::decode(bytes, max_depth)?,
        };
        Message::from_value(value)
    }

    /// The bytes of `message`.
    ///
    /// JSON writes a NaN or infinite float as `null` (JSON has neither). MessagePack cannot
    /// hold a string, binary, list or dict of 2^32 entries or bytes or more; a message holding
    /// one (4 GiB, far past any message size limit) encodes to no bytes at all.
    pub fn encode(self, message: &Message) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(message, &mut out);
        out
    }

    /// Appends the bytes of `message` to `out` (see `encode`), so a caller can reuse a buffer.
    pub fn encode_into(self, message: &Message, out: &mut Vec<u8>) {
        let elements = message.elements();
        match self {
            Serializer::Json => json::encode(elements.as_slice(), out),
            Serializer::MsgPack => {
                let start = out.len();
                if msgpack::encode(elements.as_slice(), out).is_err() {
                    out.truncate(start);
                }
            }
            Serializer::Cbor => cbor::encode(elements.as_slice(), out),
        }
    }
}

/// Why bytes are not a WAMP message. The router answers each with ABORT
/// `wamp.error.protocol_violation` and its `Display` as the message.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// Not valid JSON / MessagePack / CBOR, or trailing bytes after the value, or a value WAMP
    /// does not carry (a MessagePack ext type, a CBOR tag, a non-string dict key, a key that
    /// appears twice in one dict, an integer outside [-2^63, 2^64), a JSON binary string whose
    /// base64 is invalid).
    Syntax { detail: String },
    /// Lists and dicts nest deeper than allowed; `max` is the bound applied.
    TooDeep { max: usize },
    /// The value is not a non-empty list starting with an integer.
    NotAMessage,
    /// The type code names no message of WAMP v2.
    UnknownType { code: u64 },
    /// A known message with a missing, extra or mistyped element.
    BadField {
        message: &'static str,
        field: &'static str,
    },
    /// An integer id outside [1, 2^53]: 0 is refused everywhere, the revocation form
    /// `[UNSUBSCRIBED, 0, Details]` included, which peers never send to a router. (A negative
    /// or non-integer id is `BadField`.)
    IdOutOfRange { message: &'static str, id: u64 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Syntax { detail } => write!(f, "invalid serialization: {detail}"),
            DecodeError::TooDeep { max } => write!(f, "nested deeper than {max} levels"),
            DecodeError::NotAMessage => f.write_str("not a list starting with a message type"),
            DecodeError::UnknownType { code } => write!(f, "unknown message type {code}"),
            DecodeError::BadField { message, field } => {
                write!(f, "{message}: missing or invalid {field}")
            }
            DecodeError::IdOutOfRange { message, id } => {
                write!(f, "{message}: id {id} is outside [1, 2^53]")
            }
        }
    }
}

impl std::error::Error for DecodeError {}
