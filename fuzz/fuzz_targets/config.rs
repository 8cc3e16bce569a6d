#![no_main]
//! The `config` target: see `wson_fuzz::config` (fuzz/invariants.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wson_fuzz::config(data));
