//! The three WAMP v2 serializations, chosen by the WebSocket subprotocol.

use std::fmt;

use crate::wamp::message::Message;

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
    /// dicts may nest (the message itself is depth 1).
    pub fn decode(self, bytes: &[u8], max_depth: usize) -> Result<Message, DecodeError> {
        let _ = (bytes, max_depth);
        Err(DecodeError::Syntax {
            detail: "not implemented".to_owned(),
        })
    }

    /// The bytes of `message`.
    pub fn encode(self, message: &Message) -> Vec<u8> {
        let _ = message;
        Vec::new()
    }
}

/// Why bytes are not a WAMP message. The router answers each with ABORT
/// `wamp.error.protocol_violation` and its `Display` as the message.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// Not valid JSON / MessagePack / CBOR, or trailing bytes after the value.
    Syntax { detail: String },
    /// Lists and dicts nest deeper than allowed.
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
    /// An id outside [1, 2^53] (0 allowed only where the spec allows it).
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
