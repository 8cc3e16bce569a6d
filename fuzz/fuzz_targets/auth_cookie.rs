#![no_main]
//! The `auth_cookie` target: see `wson_fuzz::auth_cookie` (fuzz/invariants.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wson_fuzz::auth_cookie(data));
