#![no_main]
//! The `resume` target: see `wson_fuzz::resume` (fuzz/invariants.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wson_fuzz::resume(data));
