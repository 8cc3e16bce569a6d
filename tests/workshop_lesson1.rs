//! The Crossbar real-time workshop, lesson 1 ("Exploring a WAMP system"), against wson: the
//! browser console's pub/sub and RPC commands run by autobahn-js
//! (`tests/clients/workshop/lesson1.js`) as an anonymous guest, without wson cookies, in Node
//! and in headless Chromium (`lesson1.html`, the autobahn-browser bundle).
//!
//! The lesson's Crossbar config, translated to wson.toml:
//!
//! - `workers[0].realms[0].name = "realm1"` -> `[wamp] realms = ["realm1"]`
//! - `transports[0].paths.ws.auth.anonymous = {type: "static", role: "anonymous"}`
//!   -> `[wamp.realm.realm1] auth = ["anonymous"]`, `anonymous_role = "anonymous"`
//! - `realms[0].roles = [{name: "anonymous", permissions: [{uri: "", match: "prefix",
//!   allow: {call, register, publish, subscribe: true}}]}]`
//!   -> `[[wamp.realm.realm1.role]] name = "anonymous"`, `permissions = [{uri = "",
//!   match = "prefix", allow = ["call", "register", "publish", "subscribe"]}]`

use serde_json::json;

use crate::common::wamp::wson_url;
use crate::common::*;
use crate::real_clients::{Browser, PageServer, autobahn_bundle, chromium, fragment};

fn lesson1_server() -> Server {
    lesson1_setup().start()
}

fn lesson1_setup() -> Setup {
    Setup::new()
        .set("wamp.realms", r#"["realm1"]"#)
        .set("wamp.realm.realm1.auth", r#"["anonymous"]"#)
        .set("wamp.realm.realm1.anonymous_role", r#""anonymous""#)
        .set(
            "wamp.realm.realm1.role",
            r#"[{name = "anonymous", permissions = [{uri = "", match = "prefix", allow = ["call", "register", "publish", "subscribe"]}]}]"#,
        )
}

/// Runs `tests/clients/workshop/SCRIPT` and returns the one JSON document it prints.
pub fn workshop_script(
    program: &std::path::Path,
    script: &str,
    args: &[&str],
) -> serde_json::Value {
    let mut child = Script::spawn(program, &format!("workshop/{script}"), args);
    let document = child.next();
    child.finish();
    document
}

/// What the lesson's commands observe, in Node and in the browser alike.
fn lesson1_document() -> serde_json::Value {
    json!({
        "welcome": {"authrole": "anonymous", "authmethod": "anonymous", "authid_is_string": true},
        "subscribe": {"ok": true},
        // exclude_me: false, so the publisher's own subscription gets the event.
        "event": {"ok": {"args": ["abc"], "kwargs": {}, "topic": "test"}},
        "register": {"ok": true},
        "call": {"ok": 1},
        "invoked": {"args": [1, "abc"], "kwargs": {}},
        "call_kwargs": {"ok": 1},
        "invoked_kwargs": {"args": [{"nested": [true, null]}], "kwargs": {"k": "v"}},
        "register_again": {"error": "wamp.error.procedure_already_exists"},
        "call_unknown": {"error": "wamp.error.no_such_procedure"},
        "call_after": {"ok": 1},
    })
}

#[test]
fn workshop_lesson1_pubsub_and_rpc_as_anonymous_guest() {
    let Some(node) = node() else {
        return;
    };
    let server = lesson1_server();
    let out = workshop_script(&node, "lesson1.js", &[&wson_url(&server), "realm1"]);
    assert_eq!(out, lesson1_document());
}

/// The same lesson in headless Chromium, as the workshop runs it: the page loads the
/// autobahn-browser bundle and runs the console's commands (`lesson1.html`), from an origin
/// wson allows.
#[test]
fn workshop_lesson1_in_chromium() {
    if !chromium() || node().is_none() {
        return;
    }
    let dir = clients_dir().join("workshop");
    let file = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let mut page = PageServer::start(vec![
        (
            "/lesson1.html",
            file("lesson1.html"),
            "text/html; charset=utf-8",
        ),
        ("/autobahn.min.js", autobahn_bundle(), "text/javascript"),
        (
            "/workshop_common.js",
            file("workshop_common.js"),
            "text/javascript",
        ),
        ("/lesson1.js", file("lesson1.js"), "text/javascript"),
    ]);
    let origin = format!("http://localhost:{}", page.port);
    let server = lesson1_setup()
        .set("origins", &format!("[{origin:?}]"))
        .start();
    let port = server.tcp().rsplit(':').next().unwrap().to_string();
    let config = json!({"ws": format!("ws://localhost:{port}/"), "realm": "realm1"});
    let _browser = Browser::open_with(&format!("{origin}/lesson1.html#{}", fragment(&config)), &[]);
    assert_eq!(page.next(), lesson1_document());
}
