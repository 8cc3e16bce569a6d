//! One test binary for everything that runs the real `wson` daemon.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod smoke;
