//! WAMP sessions of different nodes joined by a real Redis: a publication reaches the
//! subscribers of every node with its options, a call reaches a callee on another node with
//! progressive results, errors, cancels and timeouts, shared registrations spread over the
//! nodes, and a node killed mid-call fails its calls with `wamp.error.canceled`.

use serde_json::{Value, json};

use crate::cluster::{Redis, fields, joined_nodes, node, wait_nodes, wait_redis};
use crate::common::wamp::RawWamp;
use crate::common::wamp::{is_auth_realm, py_scenario, wamp_python, wson_auth_keys, wson_url};
use crate::common::*;

fn session_id(welcome: &Value) -> u64 {
    welcome[1].as_u64().expect("a session id")
}

/// alice on node a, bob on b, carol on c, joined to realm1, with their session ids.
fn alice_bob_carol(nodes: &[Server; 3]) -> [(RawWamp, u64); 3] {
    let join = |node: &Server, user: &str| {
        let (session, welcome) = RawWamp::join(node, user, "realm1");
        (session, session_id(&welcome))
    };
    [
        join(&nodes[0], "alice"),
        join(&nodes[1], "bob"),
        join(&nodes[2], "carol"),
    ]
}

/// Subscribes to `topic`; returns the subscription id.
fn subscribe(client: &mut RawWamp, request: u64, topic: &str) -> u64 {
    client.send(&json!([32, request, {}, topic]));
    let subscribed = client.recv();
    assert_eq!(subscribed[0], 33, "{subscribed}");
    subscribed[2].as_u64().unwrap()
}

/// Registers `procedure` with `options`.
fn register(client: &mut RawWamp, request: u64, procedure: &str, options: Value) {
    client.send(&json!([64, request, options, procedure]));
    let registered = client.recv();
    assert_eq!(registered[0], 65, "{registered}");
}

/// Waits (bounded) until `client`'s node routes `procedure` (the other node's
/// registration arrived), asking the meta API with request ids from `request` on.
fn wait_routed(client: &mut RawWamp, request: &mut u64, procedure: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        *request += 1;
        client.send(&json!([
            48,
            *request,
            {},
            "wamp.registration.match",
            [procedure]
        ]));
        let result = client.recv();
        assert_eq!(result[0], 50, "{result}");
        if !result[3][0].is_null() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{procedure} never became callable here"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_wamp_publication_reaches_every_node_with_its_options_and_one_id() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    let [
        (mut alice, alice_id),
        (mut bob, bob_id),
        (mut carol, carol_id),
    ] = alice_bob_carol(&nodes);
    assert!(alice_id != bob_id && bob_id != carol_id && alice_id != carol_id);
    let on_bob = subscribe(&mut bob, 1, "com.news");
    let on_carol = subscribe(&mut carol, 1, "com.news");
    // The publisher's own subscription: excluded (exclude_me) on its node.
    subscribe(&mut alice, 1, "com.news");
    // A plain client of node b subscribed to the backend realm's topic hears it too.
    let dave = Cookies::fresh("dave");
    let mut plain = WsClient::connect_tcp(&nodes[1].tcp(), &dave).unwrap();
    let mut control = nodes[1].control();
    control.send(b'j', &fields(&[dave.token.as_bytes(), b"com.news"]));
    assert_eq!(control.reply(), (b'#', b"1".to_vec()));

    alice.send(&json!([16, 2, {"acknowledge": true, "disclose_me": true},
                       "com.news", ["hello"], {"n": 1}]));
    let published = alice.recv();
    assert_eq!(published[0], 17, "{published}");
    let publication = &published[2];
    for (client, subscription) in [(&mut bob, on_bob), (&mut carol, on_carol)] {
        let event = client.recv();
        assert_eq!(event[0], 36, "{event}");
        assert_eq!(event[1], subscription);
        assert_eq!(&event[2], publication, "one publication id on every node");
        assert_eq!(event[3]["publisher"], alice_id);
        assert_eq!(event[3]["publisher_authid"], "alice");
        assert_eq!(event[4], json!(["hello"]));
        assert_eq!(event[5], json!({"n": 1}));
    }
    assert_eq!(plain.recv_text(), r#"{"args":["hello"],"kwargs":{"n":1}}"#);

    // exclude and eligible_authid name sessions and authids of other nodes.
    alice.send(&json!([16, 3, {"exclude": [carol_id]}, "com.news", ["not carol"]]));
    alice.send(&json!([16, 4, {"eligible_authid": ["carol"]}, "com.news", ["only carol"]]));
    alice.send(&json!([16, 5, {}, "com.news", ["everyone"]]));
    let texts = |client: &mut RawWamp, n: usize| -> Vec<Value> {
        (0..n).map(|_| client.recv()[4][0].clone()).collect()
    };
    assert_eq!(texts(&mut bob, 2), [json!("not carol"), json!("everyone")]);
    assert_eq!(
        texts(&mut carol, 2),
        [json!("only carol"), json!("everyone")]
    );
    // Undisclosed: no publisher in the details.
    assert_eq!(plain.recv_text(), "not carol");

    // Retained on every node: carol's event shows node c has it, and a subscriber that
    // comes to node c later gets it.
    alice.send(&json!([16, 6, {"retain": true}, "com.news", [42]]));
    assert_eq!(carol.recv()[4], json!([42]));
    let (mut erin, _) = RawWamp::join(&nodes[2], "erin", "realm1");
    erin.send(&json!([32, 1, {"get_retained": true}, "com.news"]));
    assert_eq!(erin.recv()[0], 33);
    let retained = erin.recv();
    assert_eq!(retained[0], 36, "{retained}");
    assert_eq!(retained[3]["retained"], true);
    assert_eq!(retained[4], json!([42]));
}

#[test]
fn a_call_reaches_a_callee_on_another_node_with_progress_errors_cancel_and_timeout() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    let (mut callee, _) = RawWamp::join(&nodes[0], "alice", "realm1");
    let (mut caller, welcome) = RawWamp::join(&nodes[1], "bob", "realm1");
    let caller_id = session_id(&welcome);
    register(&mut callee, 1, "com.app.work", json!({}));
    // Called at once from node b: a call that finds no registration there waits until
    // every node has answered, by when node a's registration has arrived.
    let mut request = 100;

    // A plain call, the caller disclosed: the callee sees who called from node b.
    caller.send(&json!([48, 1, {"disclose_me": true}, "com.app.work", [2, 3]]));
    let invocation = callee.recv();
    assert_eq!(invocation[0], 68, "{invocation}");
    assert_eq!(invocation[3]["caller"], caller_id);
    assert_eq!(invocation[3]["caller_authid"], "bob");
    assert_eq!(invocation[4], json!([2, 3]));
    callee.send(&json!([70, invocation[1], {}, [5], {"sum": true}]));
    assert_eq!(caller.recv(), json!([50, 1, {}, [5], {"sum": true}]));

    // Progressive results, then the final one.
    caller.send(&json!([48, 2, {"receive_progress": true}, "com.app.work", []]));
    let invocation = callee.recv();
    assert_eq!(invocation[3]["receive_progress"], true, "{invocation}");
    assert!(invocation[3].get("caller").is_none(), "undisclosed");
    callee.send(&json!([70, invocation[1], {"progress": true}, ["10%"]]));
    callee.send(&json!([70, invocation[1], {"progress": true}, ["90%"]]));
    callee.send(&json!([70, invocation[1], {}, ["done"]]));
    assert_eq!(caller.recv(), json!([50, 2, {"progress": true}, ["10%"]]));
    assert_eq!(caller.recv(), json!([50, 2, {"progress": true}, ["90%"]]));
    assert_eq!(caller.recv(), json!([50, 2, {}, ["done"]]));

    // The callee's error, as it sent it.
    caller.send(&json!([48, 3, {}, "com.app.work", []]));
    let invocation = callee.recv();
    callee.send(&json!([
        8,
        68,
        invocation[1],
        {},
        "com.app.error.busy",
        ["later"]
    ]));
    assert_eq!(
        caller.recv(),
        json!([8, 48, 3, {}, "com.app.error.busy", ["later"]])
    );

    // CANCEL kill: the callee gets INTERRUPT on its node and its answer ends the call.
    caller.send(&json!([48, 4, {}, "com.app.work", []]));
    let invocation = callee.recv();
    caller.send(&json!([49, 4, {"mode": "kill"}]));
    let interrupt = callee.recv();
    assert_eq!(interrupt[0], 69, "{interrupt}");
    assert_eq!(interrupt[1], invocation[1]);
    assert_eq!(interrupt[2]["mode"], "kill");
    callee.send(&json!([
        8,
        68,
        invocation[1],
        {},
        "wamp.error.canceled",
        ["stopped"]
    ]));
    let error = caller.recv();
    assert_eq!((error[0].clone(), error[2].clone()), (json!(8), json!(4)));
    assert_eq!(error[4], "wamp.error.canceled");

    // A timeout on the caller's node: the caller gets wamp.error.timeout, the callee an
    // INTERRUPT, and its late answer is dropped harmlessly.
    caller.send(&json!([48, 5, {"timeout": 300}, "com.app.work", []]));
    let invocation = callee.recv();
    assert_eq!(invocation[3]["timeout"], 300);
    let error = caller.recv();
    assert_eq!(error[0], 8, "{error}");
    assert_eq!(error[4], "wamp.error.timeout");
    let interrupt = callee.recv();
    assert_eq!(interrupt[0], 69, "{interrupt}");
    callee.send(&json!([70, invocation[1], {}, ["too late"]]));

    // The call after all that still works.
    caller.send(&json!([48, 6, {}, "com.app.work", ["again"]]));
    let invocation = callee.recv();
    assert_eq!(invocation[4], json!(["again"]));
    callee.send(&json!([70, invocation[1], {}, ["fine"]]));
    assert_eq!(caller.recv(), json!([50, 6, {}, ["fine"]]));

    // Unregistered on node a: node b no longer routes it.
    callee.send(&json!([66, 9, invocation[2]]));
    let unregistered = callee.recv();
    assert_eq!(unregistered[0], 67, "{unregistered}");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        request += 1;
        caller.send(&json!([48, request, {}, "com.app.work", []]));
        let answer = caller.recv();
        if answer[0] == 8 && answer[4] == "wamp.error.no_such_procedure" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still routed: {answer}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Answers every INVOCATION with `[name]` until the connection ends.
fn answer_with(mut callee: RawWamp, name: &'static str) {
    std::thread::spawn(move || {
        loop {
            let invocation = callee.recv();
            if invocation[0] != 68 {
                return;
            }
            callee.send(&json!([70, invocation[1], {}, [name]]));
        }
    });
}

#[test]
fn a_shared_registration_spreads_calls_over_the_nodes() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    let (mut on_a, _) = RawWamp::join(&nodes[0], "alice", "realm1");
    let (mut on_b, _) = RawWamp::join(&nodes[1], "bob", "realm1");
    let (mut caller, _) = RawWamp::join(&nodes[2], "carol", "realm1");
    let shared = json!({"invoke": "roundrobin"});
    register(&mut on_a, 1, "com.app.shard", shared.clone());
    register(&mut on_b, 1, "com.app.shard", shared);
    answer_with(on_a, "a");
    answer_with(on_b, "b");
    let mut request = 100;
    wait_routed(&mut caller, &mut request, "com.app.shard");
    // Once both nodes' registrations reached node c, its calls alternate between them.
    let deadline = std::time::Instant::now() + WAIT;
    let mut answered = Vec::new();
    while !(answered.ends_with(&[json!("a"), json!("b")])
        || answered.ends_with(&[json!("b"), json!("a")]))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never spread: {answered:?}"
        );
        request += 1;
        caller.send(&json!([48, request, {}, "com.app.shard", []]));
        let result = caller.recv();
        assert_eq!(result[0], 50, "{result}");
        answered.push(result[3][0].clone());
    }
    // A single registration cannot join a shared one, of another node either.
    let (mut late, _) = RawWamp::join(&nodes[2], "dave", "realm1");
    late.send(&json!([64, 1, {}, "com.app.shard"]));
    let refused = late.recv();
    assert_eq!(refused[0], 8, "{refused}");
    assert_eq!(
        refused[4],
        "wamp.error.procedure_exists_with_different_invocation_policy"
    );
}

#[test]
fn a_killed_callee_node_fails_its_calls_with_canceled_and_redis_back_reannounces() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let mut nodes = joined_nodes(&redis);
    let (mut callee, _) = RawWamp::join(&nodes[0], "alice", "realm1");
    let (mut caller, _) = RawWamp::join(&nodes[1], "bob", "realm1");
    register(&mut callee, 1, "com.app.slow", json!({}));
    let mut request = 100;
    wait_routed(&mut caller, &mut request, "com.app.slow");
    caller.send(&json!([48, 1, {}, "com.app.slow", []]));
    assert_eq!(callee.recv()[0], 68);
    nodes[0].signal(nix::sys::signal::Signal::SIGKILL);
    nodes[0].wait_exit();
    // Within three heartbeats node b drops node a, and the call with it.
    let error = caller.recv();
    assert_eq!(error[0], 8, "{error}");
    assert_eq!(error[2], 1);
    assert_eq!(error[4], "wamp.error.canceled");
    wait_nodes(&nodes[1], 2);
    caller.send(&json!([48, 2, {}, "com.app.slow", []]));
    assert_eq!(caller.recv()[4], "wamp.error.no_such_procedure");

    // Redis restarted: a procedure registered on node c while it was away is announced
    // when it is back.
    let (mut late_callee, _) = RawWamp::join(&nodes[2], "carol", "realm1");
    redis.kill();
    wait_redis(&nodes[2], "down");
    register(&mut late_callee, 1, "com.app.late", json!({}));
    redis.run();
    wait_redis(&nodes[1], "up");
    wait_redis(&nodes[2], "up");
    wait_routed(&mut caller, &mut request, "com.app.late");
    caller.send(&json!([48, 3, {}, "com.app.late", []]));
    let invocation = late_callee.recv();
    late_callee.send(&json!([70, invocation[1], {}, ["late but here"]]));
    assert_eq!(caller.recv(), json!([50, 3, {}, ["late but here"]]));
    // A node started now learns the registrations at once.
    let d = node(&redis, "d");
    wait_nodes(&d, 3);
    let (mut on_d, _) = RawWamp::join(&d, "dave", "realm1");
    wait_routed(&mut on_d, &mut request, "com.app.late");
}

/// Scenarios whose documents rightly differ across nodes, with why (README "Scaling out").
/// They still run, and must not fail, unless their outcome varies with timing.
const NOT_CLUSTER_WIDE: &[(&str, &str, Outcome)] = &[
    (
        "invoke_roundrobin",
        "a node's callees of a shared registration take one turn among the nodes, then turns among themselves",
        Outcome::Runs,
    ),
    (
        "invoke_first",
        "first and last pick a node by when it first registered, then its own first or last callee",
        Outcome::Runs,
    ),
    (
        "invoke_last",
        "first and last pick a node by when it first registered, then its own first or last callee",
        Outcome::Runs,
    ),
    (
        "meta_subscription",
        "the subscription meta procedures answer for the node's own subscribers; subscription ids are each node's",
        Outcome::Runs,
    ),
    (
        "meta_registration",
        "the registration meta procedures answer for the node's own callees, and each node's registration sees its own on_delete: how many meta events follow an unregister depends on which node heard what first",
        Outcome::Varies,
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Runs to its end, with a different document.
    Runs,
    /// Runs to its end or not, as the nodes' timing goes.
    Varies,
}

/// Every WAMP scenario of the parity suite (autobahn-python and raw WAMP) with its sessions
/// A, B, C, D on nodes a, b, c, a of a cluster observes what it observes on one node (which
/// the parity suite pins to Crossbar.io), except `NOT_CLUSTER_WIDE`.
#[test]
fn every_wamp_scenario_observes_across_three_nodes_what_it_does_on_one() {
    if wamp_python().is_none() {
        return;
    }
    let Some(redis) = Redis::start() else {
        return;
    };
    let scenarios = crate::wamp_parity::SCENARIOS;
    let mut realms: Vec<&str> = vec!["realm1"];
    realms.extend(scenarios);
    let realms_toml = serde_json::to_string(&realms).unwrap();
    let auth_keys: Vec<(String, String)> = scenarios
        .iter()
        .filter(|realm| is_auth_realm(realm))
        .flat_map(|realm| wson_auth_keys(realm))
        .collect();
    let setup = |cluster: Option<&str>| {
        let mut setup = Setup::new().set("wamp.realms", &realms_toml);
        for (key, value) in &auth_keys {
            setup = setup.set(key, value);
        }
        if let Some(name) = cluster {
            setup = setup
                .set("cluster.redis", &format!("{:?}", redis.url()))
                .set("cluster.node_id", &format!("{name:?}"));
        }
        setup.start()
    };
    let single = setup(None);
    let nodes = [setup(Some("a")), setup(Some("b")), setup(Some("c"))];
    for node in &nodes {
        wait_nodes(node, 3);
    }
    let cluster_url = nodes.iter().map(wson_url).collect::<Vec<_>>().join(",");
    let mut differences = String::new();
    for scenario in scenarios {
        let differs = NOT_CLUSTER_WIDE
            .iter()
            .find(|(name, ..)| name == scenario)
            .map(|&(_, _, outcome)| outcome);
        let observed = crate::wamp_parity::both(py_scenario(&cluster_url, scenario, scenario));
        match differs {
            Some(Outcome::Varies) => continue,
            Some(Outcome::Runs) => {
                if observed.get("failed").is_some() {
                    differences.push_str(&format!("--- {scenario} failed: {observed}\n"));
                }
                continue;
            }
            None => {}
        }
        let reference =
            crate::wamp_parity::both(py_scenario(&wson_url(&single), scenario, scenario));
        if observed != reference {
            differences.push_str(&format!(
                "--- {scenario}\n  one node: {reference}\n  cluster:  {observed}\n"
            ));
        }
    }
    assert!(differences.is_empty(), "across nodes:\n{differences}");
}

#[test]
fn the_session_meta_procedures_answer_for_every_node() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    let [
        (mut alice, alice_id),
        (mut bob, bob_id),
        (mut carol, carol_id),
    ] = alice_bob_carol(&nodes);
    let mut call = |request: u64, procedure: &str, args: Value| {
        alice.send(&json!([48, request, {}, procedure, args]));
        alice.recv()
    };
    assert_eq!(
        call(1, "wamp.session.count", json!([])),
        json!([50, 1, {}, [3]])
    );
    let mut ids = vec![alice_id, bob_id, carol_id];
    ids.sort_unstable();
    assert_eq!(
        call(2, "wamp.session.list", json!([])),
        json!([50, 2, {}, [ids]])
    );
    let got = call(3, "wamp.session.get", json!([carol_id]));
    assert_eq!(got[3][0]["authid"], "carol", "{got}");
    assert_eq!(got[3][0]["session"], carol_id);
    let unknown = call(4, "wamp.session.get", json!([31337]));
    assert_eq!(unknown[4], "wamp.error.no_such_session", "{unknown}");
    // kill reaches a session on another node; kill_by_authid every node's.
    assert_eq!(
        call(5, "wamp.session.kill", json!([bob_id])),
        json!([50, 5, {}, [null]])
    );
    let goodbye = bob.recv();
    assert_eq!(goodbye[0], 6, "{goodbye}");
    assert_eq!(goodbye[2], "wamp.close.killed");
    let (_carol_tab, welcome) = RawWamp::join(&nodes[0], "carol", "realm1");
    let tab_id = session_id(&welcome);
    let killed = call(6, "wamp.session.kill_by_authid", json!(["carol"]));
    let mut both = vec![carol_id, tab_id];
    both.sort_unstable();
    assert_eq!(killed, json!([50, 6, {}, [both]]));
    assert_eq!(carol.recv()[0], 6);
    assert_eq!(
        call(7, "wamp.session.count", json!([])),
        json!([50, 7, {}, [1]])
    );
}

/// `x` with WAMP PUBLISH options on node a: they choose among the WAMP subscribers of every
/// node (exclude by session id and authid, eligible by authid), the plain subscribers of
/// every node get each publication, and `retain` keeps it on every node.
#[test]
fn a_control_publication_with_options_reaches_every_node_as_its_options_say() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    let [(mut alice, _), (mut bob, _), (mut carol, carol_id)] = alice_bob_carol(&nodes);
    subscribe(&mut alice, 1, "com.news");
    subscribe(&mut bob, 1, "com.news");
    subscribe(&mut carol, 1, "com.news");
    let dave = Cookies::fresh("dave");
    let mut plain = WsClient::connect_tcp(&nodes[2].tcp(), &dave).unwrap();
    let mut control_c = nodes[2].control();
    control_c.send(b'J', &fields(&[b"dave", b"com.news"]));
    assert_eq!(control_c.reply(), (b'#', b"1".to_vec()));

    let mut control = nodes[0].control();
    let exclude = format!(r#"{{"exclude":[{carol_id}],"exclude_authid":["alice"]}}"#);
    control.send(
        b'x',
        &fields(&[b"com.news", b"only bob", exclude.as_bytes()]),
    );
    control.send(
        b'x',
        &fields(&[
            b"com.news",
            b"only carol",
            br#"{"eligible_authid":["carol"]}"#,
        ]),
    );
    control.send(b'x', &fields(&[b"com.news", b"everyone"]));
    let texts = |client: &mut RawWamp, n: usize| -> Vec<Value> {
        (0..n).map(|_| client.recv()[4][0].clone()).collect()
    };
    assert_eq!(texts(&mut alice, 1), [json!("everyone")]);
    assert_eq!(texts(&mut bob, 2), [json!("only bob"), json!("everyone")]);
    assert_eq!(
        texts(&mut carol, 2),
        [json!("only carol"), json!("everyone")]
    );
    for text in ["only bob", "only carol", "everyone"] {
        assert_eq!(plain.recv_text(), text);
    }

    // dave on node c hears it in the same step that retains it there: then erin comes.
    control_c.send(b'J', &fields(&[b"dave", b"com.weather"]));
    assert_eq!(control_c.reply(), (b'#', b"1".to_vec()));
    control.send(
        b'x',
        &fields(&[b"com.weather", b"sunny", br#"{"retain":true}"#]),
    );
    assert_eq!(plain.recv_text(), "sunny");
    let (mut erin, _) = RawWamp::join(&nodes[2], "erin", "realm1");
    erin.send(&json!([32, 1, {"get_retained": true}, "com.weather"]));
    assert_eq!(erin.recv()[0], 33);
    let retained = erin.recv();
    assert_eq!(retained[0], 36, "{retained}");
    assert_eq!(retained[3]["retained"], true);
    assert_eq!(retained[4], json!(["sunny"]));
}
