//! wson: a WebSocket push server for web backends.
//!
//! Layout: `ws` (RFC 6455 codecs) and `control` (the backend protocol) are sans-IO
//! parsers; `auth` and `config` are pure; `server` owns the mio loop and every socket;
//! `daemon` keeps pid files, detaching and signals out of the loop; `cli` ties them to
//! the command line. The library exists so tests, fuzz targets and benches reach every
//! parser.

pub mod access;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod daemon;
pub mod decoded;
pub mod http;
pub mod logging;
pub mod resume;
pub mod router;
pub mod server;
pub mod tls;
pub mod token;
pub mod wamp;
pub mod ws;
