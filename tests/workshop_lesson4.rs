//! The Crossbar real-time workshop, lesson 4 ("Dynamic authentication with workers"), against
//! wson: the authenticator worker (`tests/clients/workshop/lesson4_worker.py`, autobahn-python
//! in place of the lesson's PHP/Thruway) registers `workshop.auth` and `workshop.permissions`
//! and runs the lesson's app; the page's users (`tests/clients/workshop/lesson4.js`,
//! autobahn-js in Node) log in with WAMP-CRA as alice (`basic-user`), bob
//! (`permissions-user`, asking the authorizer), a stranger (`blocked`) and a user of the app
//! (`app-user`, whose token the authenticator fetches from the app over HTTP).
//!
//! The lesson's Crossbar config, translated to wson.toml:
//!
//! - `realms[0].name = "ws-workshop"` -> `[wamp] realms = ["ws-workshop"]`
//! - the web transport's `auth.wampcra = {type: "dynamic", authenticator: "workshop.auth"}`
//!   -> `[wamp.realm.ws-workshop] auth = ["wampcra"]`, `authenticator = "workshop.auth"`
//! - the worker's transport (`tcp 127.0.0.1:9001`, `auth.wampcra` static user
//!   `authenticator` with its secret and role) -> a `[[wamp.realm.ws-workshop.principal]]`:
//!   wson has one set of logins per realm, static principals first, then the authenticator
//!   for any other authid (the worker connects to the same listener)
//! - role `authenticator` `{uri: "workshop.", match: "prefix", allow: {register}, disclose:
//!   {caller}, cache}` -> `{uri = "workshop.", match = "prefix", allow = ["register"],
//!   disclose = ["caller"]}` (`cache` has no key: static permissions are compiled once)
//! - role `basic-user` -> `{uri = "workshop.", match = "prefix", allow = ["publish",
//!   "subscribe"], disclose = ["publisher"]}`; role `blocked` with no permissions
//! - roles `permissions-user` and `app-user` `{authorizer: "workshop.permissions", disclose:
//!   {caller, publisher}}` -> `{name, authorizer = "workshop.permissions"}`: the
//!   authorizer's answer decides disclosure (Crossbar ignores a dynamic role's `disclose`)

use serde_json::json;

use crate::common::wamp::wson_url;
use crate::common::*;
use crate::workshop_lesson1::workshop_script;

const REALM: &str = "ws-workshop";

pub fn lesson4_server() -> Server {
    Setup::new()
        .set("wamp.realms", r#"["ws-workshop"]"#)
        .set("wamp.realm.ws-workshop.auth", r#"["wampcra"]"#)
        .set("wamp.realm.ws-workshop.authenticator", r#""workshop.auth""#)
        .set(
            "wamp.realm.ws-workshop.principal",
            r#"[{authid = "authenticator", role = "authenticator", secret = "authenticator-kZ%3g@JR1oXb"}]"#,
        )
        .set(
            "wamp.realm.ws-workshop.role",
            r#"[
                {name = "authenticator", permissions = [
                    {uri = "workshop.", match = "prefix", allow = ["register"], disclose = ["caller"]},
                ]},
                {name = "basic-user", permissions = [
                    {uri = "workshop.", match = "prefix", allow = ["publish", "subscribe"], disclose = ["publisher"]},
                ]},
                {name = "blocked"},
                {name = "permissions-user", authorizer = "workshop.permissions"},
                {name = "app-user", authorizer = "workshop.permissions"},
            ]"#,
        )
        .start()
}

#[test]
fn workshop_lesson4_dynamic_authenticator_and_authorizer_workers() {
    let (Some(node), Some(python)) = (node(), python()) else {
        return;
    };
    let server = lesson4_server();
    let url = wson_url(&server);
    let not_authorized = json!({"abort": "wamp.error.not_authorized"});
    // No authenticator registered yet: nobody gets in.
    let before = workshop_script(&node, "lesson4.js", &[&url, REALM, "before"]);
    assert_eq!(before, json!({"before": not_authorized}));

    let mut worker = Script::spawn(&python, "workshop/lesson4_worker.py", &[&url, REALM]);
    let app = worker.next()["app"].as_str().unwrap().to_owned();
    let out = workshop_script(&node, "lesson4.js", &[&url, REALM, &app]);
    let denied = json!({"error": "wamp.error.not_authorized"});
    let dynamic =
        |role: &str| json!({"authrole": role, "authmethod": "wampcra", "authprovider": "dynamic"});
    let asked = |authid: &str, role: &str, uri: &str, action: &str| json!({"authid": authid, "authrole": role, "uri": uri, "action": action});
    let login = |authid: &str| json!({"realm": REALM, "authid": authid, "authmethod": "wampcra", "session_is_int": true});
    assert_eq!(
        out,
        json!({
            "alice": dynamic("basic-user"),
            // basic-user: publish and subscribe under "workshop." only.
            "alice_test": denied,
            "alice_chat": {"ok": true},
            "wrong_password": not_authorized,
            "bob": dynamic("permissions-user"),
            // permissions-user: what workshop.permissions allows.
            "bob_test": denied,
            "bob_chat": {"ok": true},
            "bob_chat_again": {"ok": true},
            "bob_publish": {"ok": true},
            // The authorizer said disclose: the publisher is named.
            "alice_event": {"ok": {"args": ["hi from bob"], "publisher_authid": "bob"}},
            "bob_call": denied,
            // An unknown user is `blocked` with an empty secret: the real password fails,
            // and signing with the empty secret gets a role that may do nothing.
            "stranger": not_authorized,
            "blocked": dynamic("blocked"),
            "blocked_chat": denied,
            // A user of the app, whose token the authenticator got from the app.
            "zed": dynamic("app-user"),
            "zed_chat": {"ok": true},
            "zed_test": denied,
            "log": {
                // Crossbar's authenticator signature: (realm, authid, details).
                "auth": [
                    login("alice"),
                    login("alice"),
                    login("bob"),
                    login("mallory"),
                    login("mallory"),
                    login("zed"),
                ],
                // The second subscribe to workshop.chat was answered from bob's cache; the
                // static roles never ask.
                "permissions": [
                    asked("bob", "permissions-user", "test", "subscribe"),
                    asked("bob", "permissions-user", "workshop.chat", "subscribe"),
                    asked("bob", "permissions-user", "workshop.chat", "publish"),
                    asked("bob", "permissions-user", "workshop.auth", "call"),
                    asked("zed", "app-user", "workshop.chat", "subscribe"),
                    asked("zed", "app-user", "test", "subscribe"),
                ],
            },
        })
    );
}
