//! The control protocol backends speak (wson-compatible): framing and commands.
//! Sans-IO; the server applies commands to its hub.

pub mod authorizer;
pub mod codec;
pub mod command;
pub mod event;
pub mod fields;
pub mod topic;
