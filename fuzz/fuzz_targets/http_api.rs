#![no_main]
//! The `http_api` target: see `wson_fuzz::http_api` (fuzz/invariants.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wson_fuzz::http_api(data));
