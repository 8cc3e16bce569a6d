//! RFC 6455: the opening handshake, frames, and messages. Sans-IO: bytes in, values out.

pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod message;
