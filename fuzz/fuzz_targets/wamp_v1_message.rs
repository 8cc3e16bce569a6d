#![no_main]
//! The `wamp_v1_message` target: see `wson_fuzz::wamp_v1_message` (fuzz/invariants.rs) for
//! what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wson_fuzz::wamp_v1_message(data));
