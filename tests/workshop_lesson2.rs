//! The Crossbar real-time workshop, lesson 2 ("Realms & Permissions"), against wson: the
//! realm "somewhere-else" with the roles `seethings` and `dothings`, logged into as barry and
//! steve with WAMP-Ticket and then (the lesson's second step) WAMP-CRA, by autobahn-js in
//! Node (`tests/clients/workshop/lesson2.js`).
//!
//! The lesson's Crossbar config, translated to wson.toml:
//!
//! - `workers[0].realms[].name` ("ws-workshop", then the added "somewhere-else")
//!   -> `[wamp] realms = ["ws-workshop", "somewhere-else"]`
//! - the guests of "ws-workshop" (`paths.ws.auth.anonymous`, role "anonymous" allowed
//!   everything) -> `[wamp.realm.ws-workshop] auth = ["anonymous"]`, one role `anonymous` with
//!   `{uri = "", match = "prefix", allow = [all four]}`
//! - `realms[1].roles[].permissions = [{uri: "*", allow: {call, register, publish,
//!   subscribe}}]`: Crossbar reads the URI "*" as a prefix match on "" -> `{uri = "",
//!   match = "prefix", allow = [the actions set true]}`: seethings `["call", "subscribe"]`,
//!   dothings `["register", "publish"]`
//! - `paths.ws.auth.ticket = {type: "static", principals: {barry: {ticket, role}, steve:
//!   {ticket, role}}}` -> `[wamp.realm.somewhere-else] auth = ["ticket"]` and one
//!   `[[wamp.realm.somewhere-else.principal]]` per principal with `authid`, `ticket`, `role`
//! - the second step, `paths.ws.auth.wampcra = {type: "static", users: {barry: {secret,
//!   role}, ...}}` -> `auth = ["wampcra"]`, the principals with `secret` instead of `ticket`

use serde_json::{Value, json};

use crate::common::wamp::wson_url;
use crate::common::*;
use crate::workshop_lesson1::workshop_script;

const ROLES: &str = r#"[
    {name = "seethings", permissions = [{uri = "", match = "prefix", allow = ["call", "subscribe"]}]},
    {name = "dothings", permissions = [{uri = "", match = "prefix", allow = ["register", "publish"]}]},
]"#;

fn lesson2_server(method: &str) -> Server {
    let key = if method == "ticket" {
        "ticket"
    } else {
        "secret"
    };
    let principals = format!(
        r#"[
            {{authid = "barry", role = "seethings", {key} = "notsosecret"}},
            {{authid = "steve", role = "dothings", {key} = "slightlymoresecret"}},
        ]"#
    );
    Setup::new()
        .set("wamp.realms", r#"["ws-workshop", "somewhere-else"]"#)
        .set("wamp.realm.ws-workshop.auth", r#"["anonymous"]"#)
        .set(
            "wamp.realm.ws-workshop.role",
            r#"[{name = "anonymous", permissions = [{uri = "", match = "prefix", allow = ["call", "register", "publish", "subscribe"]}]}]"#,
        )
        .set("wamp.realm.somewhere-else.auth", &format!("[{method:?}]"))
        .set("wamp.realm.somewhere-else.principal", &principals)
        .set("wamp.realm.somewhere-else.role", ROLES)
        .start()
}

fn expected() -> Value {
    let denied = json!({"error": "wamp.error.not_authorized"});
    json!({
        "welcome": {
            "barry": {"authrole": "seethings", "authmethod": null},
            "steve": {"authrole": "dothings", "authmethod": null},
        },
        "authid": {"barry": "barry", "steve": "steve"},
        // seethings: subscribe and call.
        "barry_subscribe": {"ok": true},
        "barry_event": {"ok": {"args": ["abc"], "topic": "test"}},
        "barry_call": {"ok": 1},
        // dothings: publish and register.
        "steve_publish": {"ok": true},
        "steve_register": {"ok": true},
        "invoked": [1, "abc"],
        // Everything else is refused.
        "barry_publish": denied,
        "barry_register": denied,
        "steve_subscribe": denied,
        "steve_call": denied,
        "wrong_password": "wamp.error.not_authorized",
        "guest": {"authrole": "anonymous", "authmethod": "anonymous"},
        "unknown_realm": "wamp.error.no_such_realm",
    })
}

fn lesson2(method: &str) {
    let Some(node) = node() else {
        return;
    };
    let server = lesson2_server(method);
    let out = workshop_script(&node, "lesson2.js", &[&wson_url(&server), method]);
    let mut want = expected();
    want["welcome"]["barry"]["authmethod"] = json!(method);
    want["welcome"]["steve"]["authmethod"] = json!(method);
    assert_eq!(out, want);
}

#[test]
fn workshop_lesson2_roles_with_ticket_login() {
    lesson2("ticket");
}

#[test]
fn workshop_lesson2_roles_with_wampcra_login() {
    lesson2("wampcra");
}
