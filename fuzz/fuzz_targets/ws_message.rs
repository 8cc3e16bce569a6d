#![no_main]
//! The `ws_message` target: see `wson_fuzz::ws_message` (fuzz/invariants.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wson_fuzz::ws_message(data));
