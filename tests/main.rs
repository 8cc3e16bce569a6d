//! One test binary for everything that runs the real `wson` daemon (one link, shared
//! helpers in `common`), like ripgrep's `tests/tests.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

mod access;
mod admin_page;
mod authorizer;
mod cluster;
mod cluster_history;
mod cluster_wamp;
mod conformance;
mod control;
mod corpus;
mod deflate;
mod demo;
mod events;
mod handshake;
mod history;
mod hostile;
mod http_api;
mod js_client;
mod kit;
mod lifecycle;
mod logging;
mod php;
mod php_client;
mod readme;
mod real_clients;
mod retained;
mod session;
mod smoke;
mod sockets;
mod tls;
mod topics;
mod users;
mod wamp_auth;
mod wamp_clients;
mod wamp_control;
mod wamp_flush;
mod wamp_history;
mod wamp_parity;
mod wamp_v1;
mod wamp_v1_autobahn;
mod workshop_lesson1;
mod workshop_lesson2;
mod workshop_lesson4;
mod workshop_lesson5;
