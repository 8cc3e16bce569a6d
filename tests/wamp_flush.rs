//! `O` (COMMANDS.md): flushing the answers a role's WAMP authorizer gave with `cache`. The
//! backend's own WAMP session (`V` frames, never authorized) registers the authorizer
//! procedure and answers its INVOCATIONs; a cookie session of the role `viewer` subscribes.
//! Whether the authorizer was asked is seen without timing: the router holds an action until
//! its answer comes, so a SUBSCRIBED the backend did not answer for was decided by the cache,
//! and a `p` round trip with no `V` frame set aside shows that no INVOCATION was sent.

use serde_json::json;

use crate::common::wamp::{RawWamp, wson_wamp};
use crate::common::*;

const AUTHORIZER: &str = "test.authorize";
const TOPIC: &str = "news.sport";

/// realm1 (the backend realm) whose cookie sessions are `viewer`s, decided by `AUTHORIZER`;
/// answers are kept far longer than the test runs.
fn server() -> Server {
    wson_wamp(
        &["realm1"],
        &[
            ("wamp.authrole", r#""viewer""#),
            (
                "wamp.realm.realm1.role",
                &format!(r#"[{{name = "viewer", authorizer = "{AUTHORIZER}"}}]"#),
            ),
            ("wamp.authorization_cache_lifetime", "3600"),
        ],
    )
}

/// The backend registers `AUTHORIZER`.
fn register_authorizer(backend: &mut Control) {
    backend.send_v(&json!([64, 1, {}, AUTHORIZER]));
    let registered = backend.next_v();
    assert_eq!(registered[0], 65, "REGISTERED expected, got {registered}");
}

/// The backend's next V frame is the INVOCATION asking whether `authid` may subscribe to
/// `TOPIC`; answered allow, cached.
fn allow_subscribe_cached(backend: &mut Control, authid: &str) {
    let invocation = backend.next_v();
    assert_eq!(invocation[0], 68, "INVOCATION expected, got {invocation}");
    let args = &invocation[4];
    assert_eq!(args[0]["authid"], authid, "{invocation}");
    assert_eq!(args[1], TOPIC, "{invocation}");
    assert_eq!(args[2], "subscribe", "{invocation}");
    backend.send_v(&json!([70, invocation[1], {}, [{"allow": true, "cache": true}]]));
}

/// SUBSCRIBE to `TOPIC` as `request`, without waiting for the answer.
fn subscribe(wamp: &mut RawWamp, request: u64) {
    wamp.send(&json!([32, request, {}, TOPIC]));
}

/// The SUBSCRIBED of `request`; returns the subscription id.
fn subscribed(wamp: &mut RawWamp, request: u64) -> u64 {
    let reply = wamp.recv();
    assert_eq!(reply[0], 33, "SUBSCRIBED expected, got {reply}");
    assert_eq!(reply[1], request, "{reply}");
    reply[2].as_u64().unwrap()
}

fn unsubscribe(wamp: &mut RawWamp, request: u64, subscription: u64) {
    wamp.send(&json!([34, request, subscription]));
    let reply = wamp.recv();
    assert_eq!(reply, json!([35, request]), "UNSUBSCRIBED expected");
}

fn cached(backend: &mut Control) -> u64 {
    backend.status()["wamp_cached_authorizations"]
        .as_u64()
        .unwrap()
}

/// `O` with these fields, and its count.
fn flush(backend: &mut Control, fields: &[&[u8]]) -> String {
    backend.send_fields(b'O', fields);
    backend.reply_text()
}

/// No INVOCATION has reached the backend: everything the router sent before a `p` round
/// trip comes before its `P`, and none of it was a `V` frame.
fn no_invocation_sent(backend: &mut Control) {
    backend.sync();
    assert!(
        backend.held().iter().all(|(command, _)| *command != b'V'),
        "an INVOCATION reached the backend: {:?}",
        backend.held()
    );
}

#[test]
fn o_flushes_cached_authorizer_answers_so_the_next_subscribe_asks_again() {
    let server = server();
    let mut backend = server.control();
    register_authorizer(&mut backend);
    assert_eq!(cached(&mut backend), 0);

    let (mut alice, welcome) = RawWamp::join(&server, "alice", "realm1");
    assert_eq!(welcome[2]["authrole"], "viewer", "{welcome}");

    // First subscribe: asked, allowed with cache.
    subscribe(&mut alice, 1);
    allow_subscribe_cached(&mut backend, "alice");
    let subscription = subscribed(&mut alice, 1);
    assert_eq!(cached(&mut backend), 1);
    unsubscribe(&mut alice, 2, subscription);

    // Second subscribe: the cached answer decides, the authorizer is not asked.
    subscribe(&mut alice, 3);
    let subscription = subscribed(&mut alice, 3);
    no_invocation_sent(&mut backend);
    let status = backend.status();
    assert_eq!(status["wamp_authorizations_waiting"], 0, "{status}");
    assert_eq!(status["wamp_cached_authorizations"], 1, "{status}");
    unsubscribe(&mut alice, 4, subscription);

    // Another authid's flush leaves alice's answer; hers drops it.
    assert_eq!(flush(&mut backend, &[b"bob"]), "1#0");
    assert_eq!(cached(&mut backend), 1);
    assert_eq!(flush(&mut backend, &[b"alice"]), "1#1");
    assert_eq!(cached(&mut backend), 0);
    assert_eq!(flush(&mut backend, &[b"alice"]), "1#0");

    // Third subscribe: asked again, and cached again.
    subscribe(&mut alice, 5);
    allow_subscribe_cached(&mut backend, "alice");
    subscribed(&mut alice, 5);
    assert_eq!(cached(&mut backend), 1);

    // No authid: every session's answers.
    assert_eq!(flush(&mut backend, &[]), "1#1");
    assert_eq!(cached(&mut backend), 0);
}

#[test]
fn o_without_an_authid_flushes_every_session_and_leaves_the_backend_connection_open() {
    let server = server();
    let mut backend = server.control();
    register_authorizer(&mut backend);
    let (mut alice, _) = RawWamp::join(&server, "alice", "realm1");
    let (mut bob, _) = RawWamp::join(&server, "bob", "realm1");
    subscribe(&mut alice, 1);
    allow_subscribe_cached(&mut backend, "alice");
    subscribed(&mut alice, 1);
    subscribe(&mut bob, 1);
    allow_subscribe_cached(&mut backend, "bob");
    subscribed(&mut bob, 1);
    assert_eq!(cached(&mut backend), 2);
    // An empty authid is a left-out one.
    assert_eq!(flush(&mut backend, &[b""]), "1#2");
    assert_eq!(cached(&mut backend), 0);
    // The connection is still usable, and its WAMP session still serves the authorizer.
    subscribe(&mut bob, 2);
    allow_subscribe_cached(&mut backend, "bob");
    subscribed(&mut bob, 2);
}

#[test]
fn o_with_an_authid_that_is_not_utf8_or_two_fields_is_0e() {
    let server = server();
    for payload in [&b"3:a\xffb"[..], b"5:alice3:bob", b"alice"] {
        let mut control = server.control();
        control.send(b'O', payload);
        assert_eq!(
            control.reply_text(),
            "0E",
            "{}",
            String::from_utf8_lossy(payload)
        );
        assert!(control.try_reply().is_none(), "closed after 0E");
    }
}

#[test]
fn o_with_wamp_off_drops_nothing() {
    let server = Setup::new().set("wamp.realms", "[]").start();
    let mut control = server.control();
    assert_eq!(flush(&mut control, &[]), "1#0");
    assert_eq!(flush(&mut control, &[b"alice"]), "1#0");
}
