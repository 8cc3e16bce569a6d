//! The control protocol backends speak (ws(s)on-compatible, plus wson's own commands):
//! framing, the fields encoding of multi-field payloads, topic names, commands, replies,
//! event frames and authorizer frames. Sans-IO; the server applies commands to its hub.

pub mod authorizer;
pub mod codec;
pub mod command;
pub mod event;
pub mod fields;
pub mod subscribe;
pub mod topic;
pub mod wamp;
pub mod wire;
