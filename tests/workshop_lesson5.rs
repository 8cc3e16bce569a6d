//! The Crossbar real-time workshop, lesson 5 ("Caching and listening"), against wson: the
//! listener worker that records published messages (`wamp.subscription.on_create`, then a
//! subscription to each created topic) and keeps the active users of each thread
//! (`wamp.subscription.on_subscribe` / `on_unsubscribe` with `list_subscribers`) behind the
//! procedure `workshop.subscribers`, in autobahn-python (asyncio,
//! `tests/clients/workshop/lesson5.py`), exercised by three user sessions; and the lesson's
//! first step, "Permissions via API calls", where lesson 4's authorizer asks the application
//! over HTTP (`workshop_lesson5_permissions_via_api_calls`).
//!
//! The lesson's Crossbar config, translated to wson.toml (its users and their permissions
//! come from lesson 4's dynamic authenticator and authorizer, which `workshop_lesson4` runs
//! against wson; here, to keep this lesson's subject apart, they are static principals and
//! roles with the same answers):
//!
//! - `realms[0].name = "ws-workshop"` -> `[wamp] realms = ["ws-workshop"]`
//! - the listener's `wampcra` user (`paths.ws.auth.wampcra.users.listener = {secret, role}`)
//!   and the app users of the dynamic authenticator -> `[wamp.realm.ws-workshop] auth =
//!   ["wampcra"]` and one `[[wamp.realm.ws-workshop.principal]]` each (`authid`, `secret`,
//!   `role`)
//! - the listener role's permissions `{uri: "wamp.subscription.", match: "prefix", allow:
//!   {subscribe, call}, cache}` and `{uri: "workshop.chat.", match: "prefix", allow:
//!   {subscribe}, cache}` -> the same `{uri, match = "prefix", allow = [...]}` (`cache` has
//!   no wson key: permissions are read at each action); plus `register` of
//!   `workshop.subscribers` and `call` of `wamp.session.get` (the lesson's authenticator
//!   stored each session's authid in Redis; the listener asks the meta API instead)
//! - the dynamic authorizer's answer for users, `{allow: true, disclose: true, cache: true}`
//!   on `workshop.chat.*` publish/subscribe, and `call` of `workshop.subscribers` ->
//!   role `user` with `{uri = "workshop.chat.", match = "prefix", allow = ["publish",
//!   "subscribe"], disclose = ["publisher"]}` and `{uri = "workshop.subscribers", allow =
//!   ["call"]}`

use serde_json::json;

use crate::common::wamp::wson_url;
use crate::common::*;
use crate::workshop_lesson1::workshop_script;
use crate::workshop_lesson4::lesson4_server;

fn lesson5_server() -> Server {
    Setup::new()
        .set("wamp.realms", r#"["ws-workshop"]"#)
        .set("wamp.realm.ws-workshop.auth", r#"["wampcra"]"#)
        .set(
            "wamp.realm.ws-workshop.principal",
            r#"[
                {authid = "listener", role = "listener", secret = "listener-secret"},
                {authid = "alice", role = "user", secret = "alice-secret"},
                {authid = "bob", role = "user", secret = "bob-secret"},
                {authid = "carol", role = "user", secret = "carol-secret"},
            ]"#,
        )
        .set(
            "wamp.realm.ws-workshop.role",
            r#"[
                {name = "listener", permissions = [
                    {uri = "wamp.subscription.", match = "prefix", allow = ["subscribe", "call"]},
                    {uri = "workshop.chat.", match = "prefix", allow = ["subscribe"]},
                    {uri = "workshop.subscribers", allow = ["register"]},
                    {uri = "wamp.session.get", allow = ["call"]},
                ]},
                {name = "user", permissions = [
                    {uri = "workshop.chat.", match = "prefix", allow = ["publish", "subscribe"], disclose = ["publisher"]},
                    {uri = "workshop.subscribers", allow = ["call"]},
                ]},
            ]"#,
        )
        .start()
}

#[test]
fn workshop_lesson5_listener_records_messages_and_lists_active_users() {
    let Some(python) = python() else {
        return;
    };
    let server = lesson5_server();
    let out = workshop_script(&python, "lesson5.py", &[&wson_url(&server), "ws-workshop"]);
    let denied = json!({"error": "wamp.error.not_authorized"});
    assert_eq!(
        out,
        json!({
            // workshop.subscribers, after each change of the thread's subscribers.
            "after_alice": ["alice"],
            "after_bob": ["alice", "bob"],
            "full_uri": ["alice", "bob"],
            "no_topic": "[]",
            // The messages the listener recorded, with the disclosed publisher.
            "recorded": [
                {"user": "alice", "thread": "some-thread", "message": "Hello to you"},
                {"user": "bob", "thread": "some-thread", "message": "Hi alice"},
            ],
            // on_create: the thread's subscription, created once (by alice).
            "created": ["workshop.chat.some-thread"],
            // Publications exclude their publisher.
            "inbox": {"alice": ["Hi alice"], "bob": ["Hello to you"]},
            "after_bob_left": ["alice"],
            "after_alice_unsubscribed": [],
            "user_list_subscribers": denied,
            "user_register": denied,
            "user_publish_elsewhere": denied,
        })
    );
}

/// The lesson's first step, "Permissions via API calls": lesson 4's authenticator worker with
/// its `workshop.permissions` replaced as the lesson says (no call or register; a thread's
/// publish and subscribe when the application grants the user that thread, asked over HTTP),
/// on lesson 4's config; a user of the app creates a thread, logs in with the token the app
/// gives, subscribes and publishes there, and is refused another thread.
#[test]
fn workshop_lesson5_permissions_via_api_calls() {
    let (Some(node), Some(python)) = (node(), python()) else {
        return;
    };
    let server = lesson4_server();
    let url = wson_url(&server);
    let mut worker = Script::spawn(
        &python,
        "workshop/lesson4_worker.py",
        &[&url, "ws-workshop", "lesson5"],
    );
    let app = worker.next()["app"].as_str().unwrap().to_owned();
    let out = workshop_script(
        &node,
        "lesson5_permissions.js",
        &[&url, "ws-workshop", &app],
    );
    let denied = json!({"error": "wamp.error.not_authorized"});
    let asked = |uri: &str, action: &str| json!({"authid": "yan", "authrole": "app-user", "uri": uri, "action": action});
    assert_eq!(
        out,
        json!({
            "thread": {"thread": "some-thread"},
            "yan": {"authrole": "app-user", "authmethod": "wampcra"},
            "sub": {"ok": true},
            "pub": {"ok": true},
            "event": {"ok": ["Hello to you"]},
            "other_thread": denied,
            "call": denied,
            "log": [
                asked("workshop.chat.some-thread", "subscribe"),
                asked("workshop.chat.some-thread", "publish"),
                asked("workshop.chat.other-thread", "subscribe"),
                asked("workshop.subscribers", "call"),
            ],
        })
    );
}
