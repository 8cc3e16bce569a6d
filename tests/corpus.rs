//! Replays every file of `fuzz/corpus/<target>/` (seeds and `crash-*-regression` inputs)
//! through the invariant checks the fuzz targets run, so stable `cargo test` covers them
//! without cargo-fuzz or a nightly compiler. The checks live in `fuzz/invariants.rs`, shared
//! with the fuzz crate; see `fuzz/README.md`.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/invariants.rs"]
mod invariants;

/// Runs `check` on every corpus file of `target`; fails naming each file that broke an
/// invariant (the panic message above says which one).
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no corpus files", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let bytes = fs::read(path).unwrap();
            panic::catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} corpus files break an invariant:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn ws_frame_corpus_keeps_the_frame_invariants() {
    replay("ws_frame", invariants::ws_frame);
}

#[test]
fn ws_message_corpus_matches_the_model() {
    replay("ws_message", invariants::ws_message);
}

#[test]
fn ws_deflate_corpus_keeps_the_deflate_invariants() {
    replay("ws_deflate", invariants::ws_deflate);
}

#[test]
fn ws_handshake_corpus_keeps_the_handshake_invariants() {
    replay("ws_handshake", invariants::ws_handshake);
}

#[test]
fn control_codec_corpus_keeps_the_codec_invariants() {
    replay("control_codec", invariants::control_codec);
}

#[test]
fn control_fields_corpus_keeps_the_fields_invariants() {
    replay("control_fields", invariants::control_fields);
}

#[test]
fn auth_cookie_corpus_keeps_the_auth_invariants() {
    replay("auth_cookie", invariants::auth_cookie);
}

#[test]
fn config_corpus_keeps_the_config_invariants() {
    replay("config", invariants::config);
}

#[test]
fn wamp_message_corpus_keeps_the_codec_invariants() {
    replay("wamp_message", invariants::wamp_message);
}

#[test]
fn wamp_v1_message_corpus_keeps_the_codec_invariants() {
    replay("wamp_v1_message", invariants::wamp_v1_message);
}

#[test]
fn resume_corpus_keeps_the_resume_parameter_invariants() {
    replay("resume", invariants::resume);
}

#[test]
fn access_corpus_keeps_the_range_and_forwarded_invariants() {
    replay("access", invariants::access);
}

#[test]
fn cluster_message_corpus_keeps_the_wire_invariants() {
    replay("cluster_message", invariants::cluster_message);
}

#[test]
fn http_api_corpus_keeps_the_request_and_params_invariants() {
    replay("http_api", invariants::http_api);
}
