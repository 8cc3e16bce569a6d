#![no_main]
//! The `access` target: see `wson_fuzz::access` (fuzz/invariants.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wson_fuzz::access(data));
