#![no_main]
//! The `ws_deflate` target: see `wson_fuzz::ws_deflate` (fuzz/invariants.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wson_fuzz::ws_deflate(data));
