//! wson's WAMP router against WAMP clients nobody on this project wrote, and against hostile
//! WAMP input. (`tests/wamp_parity.rs` pins the router's behaviour to Crossbar.io; these
//! tests run against wson only.)
//!
//! - autobahn-js (the autobahn-browser bundle) in headless Chromium: one pub/sub round trip
//!   and one call, the wson cookies set by the page and sent by the browser.
//! - autobahn-js and wampy in Node, and autobahn-python: one pub/sub round trip and one call
//!   on each serializer (JSON, MessagePack, CBOR).
//! - Raw WAMP over the test's WebSocket client: garbage, deep nesting, a message before
//!   HELLO, ids out of range, more subscriptions or sessions than allowed, the configured
//!   call timeout. Each must get a clear ABORT or ERROR (or a close), and the server must
//!   keep serving other sessions.
//!
//! The clients come from `tests/install-tools.sh`; a missing one fails the test, unless
//! `WSON_SKIP_REAL_CLIENTS=1`.

use serde_json::{Value, json};

use wson::ws::frame;

use crate::common::wamp::*;
use crate::common::*;
use crate::real_clients::{Browser, PageServer, autobahn_bundle, chromium, fragment};

const REALM: &str = "realm1";

fn node_script(script: &str, serializer: &str) -> Option<Value> {
    let node = node()?;
    let server = wson_wamp(&[REALM], &[]);
    let cookies = cookie_list();
    let url = wson_url(&server);
    Some(run_script(
        &node,
        script,
        &[&url, REALM, serializer, &cookies],
    ))
}

/// What autobahn-js in Node observes: the same payload back from the event and the call.
fn autobahn_js(serializer: &str) {
    let Some(out) = node_script("node_autobahn.js", serializer) else {
        return;
    };
    let mut payload = json!(["hello \u{e9}", 1, 2.5, {"k": [true, null]}]);
    if serializer != "json" {
        payload
            .as_array_mut()
            .unwrap()
            .push(json!({"bytes": "0001feff"}));
    }
    assert_eq!(
        out,
        json!({
            "serializer": serializer,
            "protocol": format!("wamp.2.{serializer}"),
            "welcome": {"authrole": "user", "authmethod": "cookie"},
            "event": {"args": payload, "kwargs": {"kw": "\u{4e2d}"}, "topic": "com.node.t"},
            "call": {"args": payload, "kwargs": {"procedure": "com.node.echo", "x": 1}},
            "no_such_procedure": "wamp.error.no_such_procedure",
        })
    );
}

#[test]
fn autobahn_js_node_json() {
    autobahn_js("json");
}

#[test]
fn autobahn_js_node_msgpack() {
    autobahn_js("msgpack");
}

#[test]
fn autobahn_js_node_cbor() {
    autobahn_js("cbor");
}

fn wampy(serializer: &str) {
    let Some(out) = node_script("node_wampy.js", serializer) else {
        return;
    };
    let payload = json!(["hello \u{e9}", 1, 2.5, {"k": [true, null]}]);
    assert_eq!(
        out,
        json!({
            "serializer": serializer,
            "welcome": {"authrole": "user", "authmethod": "cookie"},
            "event": {"args": payload, "kwargs": {"kw": "\u{4e2d}"}},
            "call": {"args": payload, "kwargs": {"x": 1}},
            "no_such_procedure": "wamp.error.no_such_procedure",
        })
    );
}

#[test]
fn wampy_node_json() {
    wampy("json");
}

#[test]
fn wampy_node_msgpack() {
    wampy("msgpack");
}

#[test]
fn wampy_node_cbor() {
    wampy("cbor");
}

/// autobahn-python: the serializer scenarios of `py_scenarios.py` (their documents are the
/// ones Crossbar.io gives, see `wamp_parity`).
fn autobahn_python(serializer: &str) {
    if wamp_python().is_none() {
        return;
    }
    let scenario = format!("serializer_{serializer}");
    let server = wson_wamp(&["realm1", &scenario], &[]);
    let out = py_scenario(&wson_url(&server), &scenario, &scenario);
    assert_eq!(
        out,
        json!({
            "call": {"ok": {"args": ["x", [1]], "callee": "A", "kwargs": {"k": true},
                            "procedure": "com.serializer.p"}},
            "event": [{"args": ["\u{e9}", 1, 2.5, {"k": [null]}], "kwargs": {"kw": "\u{4e2d}"},
                       "sub": "t", "to": "A", "topic": "com.serializer.t"}],
            "protocol": format!("wamp.2.{serializer}"),
        })
    );
}

#[test]
fn autobahn_python_json() {
    autobahn_python("json");
}

#[test]
fn autobahn_python_msgpack() {
    autobahn_python("msgpack");
}

#[test]
fn autobahn_python_cbor() {
    autobahn_python("cbor");
}

// --- Chromium -----------------------------------------------------------------------------

/// Serves `wamp.html` and the autobahn-browser bundle.
fn wamp_page_server() -> PageServer {
    let dir = clients_dir();
    let page = std::fs::read(dir.join("wamp/page.html")).unwrap();
    PageServer::start(vec![
        ("/wamp.html", page, "text/html; charset=utf-8"),
        ("/autobahn.min.js", autobahn_bundle(), "text/javascript"),
    ])
}

fn chromium_round_trip(serializer: &str) {
    if !chromium() || node().is_none() {
        return;
    }
    let mut page = wamp_page_server();
    let origin = format!("http://localhost:{}", page.port);
    let server = Setup::new()
        .set("wamp.realms", r#"["realm1"]"#)
        .set("origins", &format!("[{origin:?}]"))
        .start();
    let cookies = Cookies::fresh("alice");
    let port = server.tcp().rsplit(':').next().unwrap().to_string();
    let config = json!({
        "ws": format!("ws://localhost:{port}/"),
        "cookie": cookies.header,
        "realm": REALM,
        "serializer": serializer,
    });
    let _browser = Browser::open_with(&format!("{origin}/wamp.html#{}", fragment(&config)), &[]);
    let report = page.next();
    assert_eq!(
        report,
        json!({
            "protocol": format!("wamp.2.{serializer}"),
            "welcome": {"authid": "alice", "authrole": "user", "authmethod": "cookie"},
            "event": {"args": ["from the browser \u{2713}"], "kwargs": {"n": 1}},
            "call": 42,
        })
    );
}

#[test]
fn chromium_autobahn_js_call_and_pubsub_json() {
    chromium_round_trip("json");
}

#[test]
fn chromium_autobahn_js_call_and_pubsub_msgpack() {
    chromium_round_trip("msgpack");
}

// --- Hostile input --------------------------------------------------------------------------

/// A clear end of a session: an ABORT (with its reason URI), or a Close frame with a code.
fn clear_end(message: &Value) -> bool {
    (message[0] == 3
        && message[2]
            .as_str()
            .is_some_and(|uri| uri.starts_with("wamp.error.")))
        || (message[0] == "close" && message[1].is_u64())
}

/// Another session still joins, subscribes, publishes to itself and gets the event.
fn still_serving(server: &Server) {
    let (mut raw, _) = RawWamp::join(server, "bob", REALM);
    raw.send(&json!([32, 1, {}, "com.alive"]));
    let subscribed = raw.recv();
    assert_eq!(subscribed[0], 33, "{subscribed}");
    raw.send(&json!([16, 2, {"acknowledge": true, "exclude_me": false}, "com.alive", ["yes"]]));
    let mut got = vec![raw.recv(), raw.recv()];
    got.sort_by_key(|m| m[0].as_u64());
    assert_eq!(got[0][0], 17, "PUBLISHED: {got:?}");
    assert_eq!(got[1][0], 36, "EVENT: {got:?}");
    assert_eq!(got[1][4], json!(["yes"]));
}

fn hostile(send: impl FnOnce(&mut RawWamp)) -> (Server, Value) {
    let server = wson_wamp(&[REALM], &[]);
    let (mut raw, _) = RawWamp::join(&server, "mallory", REALM);
    send(&mut raw);
    let reply = raw.recv();
    (server, reply)
}

#[test]
fn garbage_text_is_a_clear_end_and_others_go_on() {
    if wamp_python().is_none() {
        return;
    }
    let (server, reply) = hostile(|raw| raw.send_text("this is not JSON {["));
    assert!(clear_end(&reply), "{reply}");
    still_serving(&server);
}

#[test]
fn garbage_on_binary_serializers_ends_the_session_and_others_go_on() {
    if wamp_python().is_none() {
        return;
    }
    let server = wson_wamp(&[REALM], &[]);
    let garbage: [&[u8]; 3] = [b"\xc1\xc1\xc1", b"\xff\xfe\x00\x01", b"\x9f\x9f\x9f\x9f"];
    for protocol in ["wamp.2.msgpack", "wamp.2.cbor"] {
        for bytes in garbage {
            let mut raw = RawWamp::connect(&server, "mallory", protocol);
            raw.ws.send(true, frame::OpCode::Binary, bytes);
            // Perhaps a (binary) ABORT first; then a Close with a code, or the end.
            let mut seen = Vec::new();
            let end = loop {
                let message = raw.recv();
                seen.push(message.clone());
                if message[0] != "binary" || seen.len() > 3 {
                    break message;
                }
            };
            assert!(
                end[0] == "end" || (end[0] == "close" && end[1].is_u64()),
                "{protocol} {bytes:?}: {seen:?}"
            );
        }
    }
    still_serving(&server);
}

#[test]
fn a_message_that_is_not_a_wamp_message_is_a_clear_end() {
    if wamp_python().is_none() {
        return;
    }
    for junk in [
        json!({"not": "a list"}),
        json!([]),
        json!(["x"]),
        json!([999, 1]),
        json!([16]),
    ] {
        let (server, reply) = hostile(|raw| raw.send(&junk));
        assert!(clear_end(&reply), "{junk} -> {reply}");
        still_serving(&server);
    }
}

#[test]
fn deep_nesting_is_abort_protocol_violation() {
    if wamp_python().is_none() {
        return;
    }
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let (server, reply) = hostile(|raw| {
        raw.send_text(&format!(
            r#"[16, 1, {{"acknowledge": true}}, "com.deep", [{deep}]]"#
        ));
    });
    assert_eq!(reply[0], 3, "ABORT expected: {reply}");
    assert_eq!(reply[2], "wamp.error.protocol_violation", "{reply}");
    still_serving(&server);
}

#[test]
fn a_message_before_hello_is_abort() {
    if wamp_python().is_none() {
        return;
    }
    let server = wson_wamp(&[REALM], &[]);
    let mut raw = RawWamp::connect(&server, "mallory", "wamp.2.json");
    raw.send(&json!([32, 1, {}, "com.early"]));
    let reply = raw.recv();
    assert!(clear_end(&reply), "{reply}");
    if reply[0] == 3 {
        assert_eq!(reply[2], "wamp.error.protocol_violation", "{reply}");
    }
    still_serving(&server);
}

#[test]
fn ids_out_of_range_are_refused() {
    if wamp_python().is_none() {
        return;
    }
    // WAMP: IDs are integers between 1 and 2^53 (inclusive).
    for id in [
        "9007199254740993",
        "18446744073709551615",
        "-1",
        "0",
        "1.5",
        "1e300",
    ] {
        let (server, reply) = hostile(|raw| {
            raw.send_text(&format!(r#"[32, {id}, {{}}, "com.huge"]"#));
        });
        assert!(clear_end(&reply), "request id {id} -> {reply}");
        still_serving(&server);
    }
}

#[test]
fn subscriptions_past_the_limit_get_an_error_and_the_session_goes_on() {
    if wamp_python().is_none() {
        return;
    }
    let server = wson_wamp(&[REALM], &[("wamp.max_subscriptions_per_session", "5")]);
    let (mut raw, _) = RawWamp::join(&server, "mallory", REALM);
    for n in 1..=5 {
        raw.send(&json!([32, n, {}, format!("com.flood.{n}")]));
        let reply = raw.recv();
        assert_eq!(reply[0], 33, "subscription {n}: {reply}");
    }
    for n in 6..=50 {
        raw.send(&json!([32, n, {}, format!("com.flood.{n}")]));
    }
    for n in 6..=50 {
        let reply = raw.recv();
        assert_eq!(reply[0], 8, "subscription {n} past the limit: {reply}");
        assert_eq!(
            (reply[1].as_u64(), reply[2].as_u64()),
            (Some(32), Some(n)),
            "{reply}"
        );
        assert!(
            reply[4].as_str().unwrap().starts_with("wamp.error."),
            "{reply}"
        );
    }
    // Still a session: it publishes to one of its subscriptions.
    raw.send(&json!([16, 99, {"acknowledge": true, "exclude_me": false}, "com.flood.1", []]));
    let mut got = vec![raw.recv(), raw.recv()];
    got.sort_by_key(|m| m[0].as_u64());
    assert_eq!(
        (got[0][0].as_u64(), got[1][0].as_u64()),
        (Some(17), Some(36)),
        "{got:?}"
    );
    still_serving(&server);
}

#[test]
fn sessions_past_the_limit_get_abort() {
    if wamp_python().is_none() {
        return;
    }
    let server = wson_wamp(&[REALM], &[("wamp.max_sessions", "2")]);
    let (_first, _) = RawWamp::join(&server, "alice", REALM);
    let (_second, _) = RawWamp::join(&server, "bob", REALM);
    let mut third = RawWamp::connect(&server, "carol", "wamp.2.json");
    third.send(&json!([1, REALM, {"roles": {"subscriber": {}}}]));
    let reply = third.recv();
    assert_eq!(reply[0], 3, "ABORT expected: {reply}");
    drop(_first);
    // A place is free again once a session is gone.
    eventually("a session place freed", || {
        let mut again = RawWamp::connect(&server, "carol", "wamp.2.json");
        again.send(&json!([1, REALM, {"roles": {"subscriber": {}}}]));
        again.recv()[0] == 2
    });
}

#[test]
fn configured_call_timeout_times_the_call_out_and_interrupts_the_callee() {
    if wamp_python().is_none() {
        return;
    }
    let server = wson_wamp(&[REALM], &[("wamp.call_timeout", "1")]);
    let (mut callee, _) = RawWamp::join(&server, "alice", REALM);
    callee.send(&json!([64, 1, {}, "com.slow"]));
    assert_eq!(callee.recv()[0], 65);
    let (mut caller, _) = RawWamp::join(&server, "bob", REALM);
    caller.send(&json!([48, 7, {}, "com.slow", [1]]));
    let invocation = callee.recv();
    assert_eq!(invocation[0], 68, "{invocation}");
    // Nobody answers: after call_timeout (1 s) the router gives up on both sides.
    let error = caller.recv();
    assert_eq!(error[0], 8, "{error}");
    assert_eq!(
        (error[1].as_u64(), error[2].as_u64()),
        (Some(48), Some(7)),
        "{error}"
    );
    // WAMP: the Dealer "MUST use wamp.error.timeout" (Crossbar says canceled).
    assert_eq!(error[4], "wamp.error.timeout", "{error}");
    let interrupt = callee.recv();
    assert_eq!(interrupt[0], 69, "{interrupt}");
    assert_eq!(interrupt[1], invocation[1], "{interrupt}");
}

#[test]
fn wamp_is_off_without_realms() {
    let server = wson_wamp(&[], &[]);
    let cookies = Cookies::fresh("alice");
    // No subprotocol chosen: the client is a plain wson client (or refused); never WAMP.
    if let Ok(ws) = WsClient::offering(&server, &cookies.header, "wamp.2.json") {
        assert_eq!(ws.chosen_protocol(), None);
    }
}
