//! WAMP v2: messages as values and their three serializations (JSON, MessagePack, CBOR),
//! sans-IO like `ws/` and `control/`: `decode` takes the bytes of one WebSocket message and
//! says what it holds or why it is not a WAMP message; `encode` gives the bytes of one.
//! The router (`crate::router`) gives the messages their meaning.
//!
//! `value` is what every serialization decodes to (with serde impls, so serde_json and
//! ciborium build it directly); `message` maps a value to a `Message` and a message to its
//! elements; `json`, `msgpack` and `cbor` hold each format's decoder and a direct encoder from
//! those elements to bytes; `serializer` picks one by subprotocol and bounds the nesting.
//!
//! `v1` is WAMP v1 (subprotocol `wamp`, JSON only): its own nine messages over the same
//! `Value`, and the per-session CURIE table v1's PREFIX message fills.

mod cbor;
pub(crate) mod json;
pub mod message;
mod msgpack;
pub mod serializer;
pub mod v1;
pub mod value;

pub use message::{MAX_ID, Message, MessageType, Payload};
pub use serializer::{DecodeError, MAX_DEPTH, Serializer};
pub use value::{Dict, Value};
