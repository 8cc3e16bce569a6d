#![no_main]
//! The `cluster_message` target: see `wson_fuzz::cluster_message` (fuzz/invariants.rs) for
//! what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wson_fuzz::cluster_message(data));
