//! WAMP v2: messages as values and their three serializations (JSON, MessagePack, CBOR),
//! sans-IO like `ws/` and `control/`: `decode` takes the bytes of one WebSocket message and
//! says what it holds or why it is not a WAMP message; `encode` gives the bytes of one.
//! The router (`crate::router`) gives the messages their meaning.

pub mod message;
pub mod serializer;
pub mod value;

pub use message::{MAX_ID, Message, MessageType, Payload};
pub use serializer::{DecodeError, Serializer};
pub use value::{Dict, Value};
