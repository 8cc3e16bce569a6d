#![no_main]
//! The `control_codec` target: see `wson_fuzz::control_codec` (fuzz/invariants.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wson_fuzz::control_codec(data));
