//! wson's WAMP router pinned to the reference, Crossbar.io: each scenario of
//! `tests/clients/wamp/py_scenarios.py` (autobahn-python, and raw JSON WAMP where autobahn
//! hides what the router does) runs against Crossbar and against wson, and both must observe
//! the same document. Every feature of the router has a scenario: pub/sub matching, publisher
//! exclusion and black/white listing, disclosure, retained events, RPC matching and shared
//! registrations, payload passthrough across serializers, errors, progressive results, call
//! timeout and cancelling, sessions leaving mid-call, the meta API, URIs and realms.
//!
//! Crossbar.io runs once per test process (`common::wamp::crossbar`, a realm per scenario);
//! wson once per test (realms `realm1` and the scenario's). Set `WSON_WAMP_PARITY=crossbar`
//! to run only the Crossbar half (a scenario must not fail there), `=wson` to print wson's
//! document without comparing. `WSON_SKIP_REAL_CLIENTS=1` skips these tests like the other
//! real-client tests.
//!
//! Where wson legitimately differs from Crossbar, `crossbar_as_reference` rewrites Crossbar's
//! document, each rule naming the difference; `both` drops what no two routers need agree on
//! (free-form error texts, who publishes meta events).

use serde_json::{Value, json};

use crate::common::wamp::*;

macro_rules! parity_tests {
    ($($(#[$attribute:meta])* $scenario:ident),* $(,)?) => {
        pub(crate) const SCENARIOS: &[&str] = &[$(stringify!($scenario)),*];
        $(
            #[test]
            $(#[$attribute])*
            fn $scenario() {
                parity(stringify!($scenario));
            }
        )*
    };
}

parity_tests!(
    welcome,
    pubsub_exact,
    pubsub_prefix,
    pubsub_wildcard,
    pubsub_overlap,
    subscribe_twice,
    unsubscribe,
    publish_ack,
    exclude_me,
    exclude_eligible_session,
    exclude_eligible_authid,
    exclude_eligible_authrole,
    disclose_me,
    retained,
    rpc_exact,
    rpc_prefix,
    rpc_wildcard,
    invoke_single,
    invoke_roundrobin,
    invoke_random,
    invoke_first,
    invoke_last,
    passthrough_json,
    passthrough_msgpack,
    passthrough_cbor,
    passthrough_mixed,
    passthrough_mixed_cbor,
    no_such_procedure,
    application_error,
    progressive,
    call_timeout,
    cancel_skip,
    cancel_kill,
    cancel_killnowait,
    callee_leaves,
    caller_leaves,
    meta_session,
    meta_join_leave,
    meta_subscription,
    meta_registration,
    invalid_uri,
    no_such_realm,
    serializer_json,
    serializer_msgpack,
    serializer_cbor,
    auth_ticket,
    auth_wampcra,
    auth_cryptosign,
    auth_permissions,
    auth_no_permissions,
    auth_precedence,
    auth_meta,
    auth_check_order,
    auth_dynamic,
);

#[derive(PartialEq)]
enum Half {
    Both,
    CrossbarOnly,
    WsonOnly,
}

fn half() -> Half {
    match std::env::var("WSON_WAMP_PARITY").as_deref() {
        Ok("crossbar") => Half::CrossbarOnly,
        Ok("wson") => Half::WsonOnly,
        _ => Half::Both,
    }
}

pub(crate) fn realms() -> Vec<String> {
    SCENARIOS.iter().map(|name| name.to_string()).collect()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

fn parity(scenario: &str) {
    if wamp_python().is_none() || crossbar_bin().is_none() {
        return;
    }
    let half = half();
    let mut reference = None;
    if half != Half::WsonOnly {
        let crossbar = crossbar(&realms());
        let observed = py_scenario_with(&crossbar.url, &crossbar.dynamic_url, scenario, scenario);
        assert!(
            observed.get("failed").is_none(),
            "the scenario failed against Crossbar.io:\n{}\n--- Crossbar's log (tail):\n{}",
            pretty(&observed),
            tail(&crossbar.log_text(), 40)
        );
        reference = Some(both(crossbar_as_reference(scenario, observed)));
    }
    if half == Half::CrossbarOnly {
        return;
    }
    let auth_keys = if is_auth_realm(scenario) {
        wson_auth_keys(scenario)
    } else {
        vec![]
    };
    let extra: Vec<(&str, &str)> = auth_keys
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let server = wson_wamp(&["realm1", scenario], &extra);
    let observed = both(py_scenario(&wson_url(&server), scenario, scenario));
    let Some(reference) = reference else {
        eprintln!("wson observed:\n{}", pretty(&observed));
        return;
    };
    if observed != reference {
        let mut differences = String::new();
        let keys = reference
            .as_object()
            .into_iter()
            .chain(observed.as_object())
            .flat_map(|object| object.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>();
        for key in keys {
            if reference.get(&key) != observed.get(&key) {
                differences.push_str(&format!(
                    "  {key}:\n    Crossbar: {}\n    wson:     {}\n",
                    reference.get(&key).unwrap_or(&Value::Null),
                    observed.get(&key).unwrap_or(&Value::Null)
                ));
            }
        }
        panic!(
            "scenario {scenario}: wson differs from Crossbar.io in\n{differences}\
             --- Crossbar (as reference):\n{}\n--- wson:\n{}",
            pretty(&reference),
            pretty(&observed)
        );
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Crossbar's document, rewritten where wson is right to differ. Each rule names the
/// difference.
fn crossbar_as_reference(scenario: &str, mut doc: Value) -> Value {
    match scenario {
        // wson authenticates with the wson cookies of the upgrade (authmethod "cookie");
        // Crossbar runs anonymous auth here.
        "welcome" => {
            doc["autobahn"]["authmethod"] = json!("cookie");
            // WAMP: "It is a protocol error to receive a second HELLO message during the
            // lifetime of the session and the Peer MUST fail the session if that happens."
            // Crossbar ignores the second HELLO and answers the PUBLISH after it.
            if doc["second_hello"] == json!([17, 1]) {
                doc["second_hello"] = json!([3, "wamp.error.protocol_violation"]);
            }
        }
        // Crossbar's message parser rejects a URI with whitespace or "#", and an empty
        // component outside SUBSCRIBE, before its broker or dealer sees it, and drops the
        // connection with 1011 "WAMP Internal Error"; WAMP says wamp.error.invalid_uri.
        "invalid_uri" => {
            for (_, reply) in doc.as_object_mut().unwrap() {
                if reply == "closed 1011" {
                    *reply = json!("wamp.error.invalid_uri");
                }
            }
        }
        // WAMP, cancel mode "skip": "The pending call is canceled and ERROR is sent
        // immediately back to the Caller." Crossbar 26.10.1 sends nothing to the caller
        // (dealer.py builds the ERROR only for kill and killnowait).
        "cancel_skip" => {
            let got = doc["caller_then"].as_array_mut().unwrap();
            if got.first().map(|m| m[0] == 50) == Some(true) {
                got.insert(0, json!([8, 48, 7, {}, "wamp.error.canceled"]));
            }
        }
        // WAMP (call timeout): the Dealer "MUST use wamp.error.timeout" for the caller;
        // Crossbar answers wamp.error.canceled. (README, "WAMP": the exceptions.)
        "call_timeout" if doc["caller"][4] == "wamp.error.canceled" => {
            doc["caller"][4] = json!("wamp.error.timeout");
        }
        // Cancel mode "kill": wson passes on the callee's own ERROR; Crossbar substitutes
        // wamp.error.canceled. (README, "WAMP": the exceptions.)
        "cancel_kill" if doc["caller"] == json!([8, 48, 7, {}, "wamp.error.canceled"]) => {
            doc["caller"] = json!([8, 48, 7, {}, "com.cancel_kill.stopped",
                                   ["callee stopped"], {"at": 1}]);
        }
        // WAMP meta API, wamp.session.kill: specifying "the caller's own session ... will
        // result in a wamp.error.no_such_session". Crossbar kills the caller (with
        // wamp.close.normal instead of the reason given).
        "meta_session" if doc["kill_self"].get("killed").is_some() => {
            doc["kill_self"] = json!({"error": "wamp.error.no_such_session"});
        }
        // When a session leaves, Crossbar's on_unsubscribe/on_unregister and on_delete name
        // the session as null; WAMP gives the session id (C left here).
        "meta_subscription" | "meta_registration" => {
            for event in doc["events_leave"].as_array_mut().unwrap() {
                if event["args"][0].is_null() {
                    event["args"][0] = json!("C");
                }
            }
        }
        // An unknown authid, or a principal without the method offered, and for cryptosign
        // a key the named principal does not list or no principal lists: wson challenges it
        // like a known one and refuses the AUTHENTICATE (nothing tells which authids or keys
        // exist); Crossbar ABORTs at HELLO. (README, "WAMP": the exceptions.)
        "auth_ticket" | "auth_wampcra" | "auth_cryptosign" => {
            let method = match scenario {
                "auth_ticket" => json!(["challenge", "ticket", []]),
                "auth_wampcra" => json!(["challenge", "wampcra", ["challenge"]]),
                _ => json!(["challenge", "cryptosign", ["challenge", "channel_binding"]]),
            };
            for key in [
                "unknown",
                "cra_principal",
                "ticket_principal",
                "unlisted",
                "by_unknown_key",
            ] {
                let Some(login) = doc.get_mut(key) else {
                    continue;
                };
                if login["hello"][0] == "abort" && login.get("authenticate").is_none() {
                    let abort = login["hello"].clone();
                    *login = json!({"hello": method, "authenticate": abort});
                }
            }
        }
        // Crossbar's permission trie: the exact permission com.prec.c, a longer prefix of
        // the URI com.prec.cd, hides the matching prefix permission com.prec. (subscribe)
        // and Crossbar denies; wson applies the prefix. (README, "WAMP": the exceptions.)
        "auth_precedence" => {
            let cd = &mut doc["actions"]["com.prec.cd"];
            if cd["subscribe"] == "wamp.error.not_authorized" {
                cd["subscribe"] = json!("ok");
            }
        }
        // A REGISTER the role may not make, of a procedure another session holds: Crossbar's
        // dealer looks for the registration before it authorizes and answers
        // procedure_already_exists, telling a session what it may not touch; wson authorizes
        // first (README, "WAMP": the exceptions).
        "auth_check_order" if doc["register_taken"] == "wamp.error.procedure_already_exists" => {
            doc["register_taken"] = json!("wamp.error.not_authorized");
        }
        // An authorizer's answer {allow, cache} without `disclose`, for a PUBLISH: Crossbar's
        // broker reads authorization["disclose"] (`broker.py` processPublish), which only a
        // bool answer gets by default; the KeyError drops the publication without PUBLISHED
        // or ERROR. wson reads a missing disclose as false (Crossbar's own default for bools).
        "auth_dynamic" if doc["actions"][5] == "timeout" => {
            doc["actions"][5] = json!("ok");
        }
        _ => {}
    }
    // WAMP: the peer receiving GOODBYE replies with GOODBYE "wamp.close.goodbye_and_out";
    // Crossbar replies "wamp.close.normal". (README, "WAMP": the exceptions.)
    if let Some(object) = doc.as_object_mut() {
        for (_, value) in object.iter_mut() {
            if *value == json!([6, {}, "wamp.close.normal"]) {
                *value = json!([6, {}, "wamp.close.goodbye_and_out"]);
            }
        }
    }
    doc
}

/// What no two routers need agree on, dropped from both documents.
pub(crate) fn both(mut doc: Value) -> Value {
    strip(&mut doc);
    doc
}

fn strip(value: &mut Value) {
    match value {
        Value::Object(object) => {
            // A router's own errors (wamp.error.*) carry free-form text in their arguments.
            let routers_error = object
                .get("error")
                .and_then(Value::as_str)
                .is_some_and(|uri| uri.starts_with("wamp.error."));
            if routers_error {
                object.remove("args");
                object.remove("kwargs");
            }
            // Meta events: Crossbar discloses its service session (authrole "trusted") as
            // their publisher; wson's come from the router itself.
            let meta_event = object
                .get("topic")
                .and_then(Value::as_str)
                .is_some_and(|topic| topic.starts_with("wamp."));
            if meta_event {
                for key in ["publisher", "publisher_authid", "publisher_authrole"] {
                    object.remove(key);
                }
            }
            for (_, inner) in object.iter_mut() {
                strip(inner);
            }
        }
        Value::Array(items) => {
            match items.as_slice() {
                // ERROR [8, type, request, details, wamp.error.*, args...]: the text goes.
                [code, _, _, _, Value::String(uri), ..]
                    if *code == 8 && uri.starts_with("wamp.error.") =>
                {
                    items.truncate(5);
                }
                // RESULT [50, request, details, ...]: Crossbar discloses the callee to the
                // caller (callee, callee_authid, callee_authrole), which WAMP does not ask.
                [code, _, Value::Object(_), ..] if *code == 50 => {
                    if let Some(Value::Object(details)) = items.get_mut(2) {
                        for key in ["callee", "callee_authid", "callee_authrole"] {
                            details.remove(key);
                        }
                    }
                }
                _ => {}
            }
            for inner in items.iter_mut() {
                strip(inner);
            }
        }
        _ => {}
    }
}

#[test]
fn every_python_scenario_has_a_parity_test() {
    if wamp_python().is_none() {
        return;
    }
    let mut listed = py_scenario_names();
    listed.sort();
    let mut tested: Vec<String> = realms();
    tested.sort();
    assert_eq!(listed, tested);
}
