#![no_main]
//! The `control_fields` target: see `wson_fuzz::control_fields` (fuzz/invariants.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wson_fuzz::control_fields(data));
