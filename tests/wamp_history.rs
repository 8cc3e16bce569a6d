//! Topic history for WAMP sessions (issue 15, WAMP part; README "Missed messages" and
//! "WAMP"): every publication to a history topic of the backend realm, from the control
//! socket or a WAMP session, gets one position; its EVENTs carry it as `_wson_position`; a
//! session that subscribes with `_wson_resume` gets what it missed, in order, then live
//! EVENTs, none twice, or one `_wson_reload` EVENT; `wamp.subscription.get_events` lists
//! the history; and the plain and WAMP sides replay each other's publications.

use serde_json::{Value, json};
use wson::resume::Position;

use crate::common::wamp::{RawWamp, wamp_python, wson_url};
use crate::common::*;
use crate::history::position_of;

fn with_history(size: &str) -> Server {
    Setup::new()
        .set("history.prefixes", r#"["news."]"#)
        .set("history.size", size)
        .start()
}

fn publish_y(control: &mut Control, topic: &str, message: &str) -> Position {
    position_of(control.ask(b'Y', &[topic.as_bytes(), message.as_bytes()]))
}

fn position_json(position: &Position) -> Value {
    json!({"epoch": position.epoch, "offset": position.offset})
}

/// SUBSCRIBE with `options`; the subscription id from SUBSCRIBED.
fn subscribe(wamp: &mut RawWamp, request: u64, options: Value, topic: &str) -> u64 {
    wamp.send(&json!([32, request, options, topic]));
    let reply = wamp.recv();
    assert_eq!(reply[0], 33, "SUBSCRIBED expected, got {reply}");
    assert_eq!(reply[1], request);
    reply[2].as_u64().unwrap()
}

/// The next EVENT: (its position offset, its args).
fn event(wamp: &mut RawWamp, subscription: u64, epoch: &str) -> (u64, Value) {
    let message = wamp.recv();
    assert_eq!(message[0], 36, "EVENT expected, got {message}");
    assert_eq!(message[1], subscription);
    let position = &message[3]["_wson_position"];
    assert_eq!(position["epoch"], epoch, "{message}");
    (position["offset"].as_u64().unwrap(), message[4].clone())
}

/// A plain client of alice whose upgrade carries `?resume=VALUE`.
fn plain_resuming(server: &Server, value: &str) -> WsClient {
    let addr = server.tcp();
    let mut client = WsClient::raw_tcp(&addr);
    let request = request(&addr, &Cookies::fresh("alice").header, Some(ORIGIN), "").replacen(
        "GET /ws ",
        &format!("GET /ws?resume={value} "),
        1,
    );
    client.upgrade(&request).expect("upgraded");
    client
}

/// A position notice and the plain message after it: (offset, message).
fn plain_positioned(client: &mut WsClient, epoch: &str) -> (u64, String) {
    let text = client.recv_text();
    let notice: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
    assert_eq!(notice["wson"], "position", "{text}");
    assert_eq!(notice["epoch"], epoch, "{text}");
    (notice["offset"].as_u64().unwrap(), client.recv_text())
}

#[test]
fn events_of_a_history_topic_carry_the_position_the_history_gave() {
    let server = with_history("100");
    let mut control = server.control();
    let (mut alice, _) = RawWamp::join(&server, "alice", "realm1");
    let sub = subscribe(&mut alice, 1, json!({}), "news.live");
    let other = subscribe(&mut alice, 2, json!({}), "chat");

    let first = publish_y(&mut control, "news.live", "hello");
    assert_eq!(first.offset, 1);
    let message = alice.recv();
    assert_eq!(message[1], sub);
    assert_eq!(
        message[3]["_wson_position"],
        position_json(&first),
        "{message}"
    );
    assert_eq!(message[4], json!(["hello"]));

    // A WAMP session's publication and the control socket's V session's take the next ones.
    let (mut bob, _) = RawWamp::join(&server, "bob", "realm1");
    bob.send(&json!([16, 1, {"acknowledge": true}, "news.live", ["from bob"]]));
    assert_eq!(bob.recv()[0], 17, "PUBLISHED");
    assert_eq!(
        event(&mut alice, sub, &first.epoch),
        (2, json!(["from bob"]))
    );
    control.send_v(&json!([16, 1, {}, "news.live", ["from the backend"]]));
    assert_eq!(
        event(&mut alice, sub, &first.epoch),
        (3, json!(["from the backend"]))
    );
    let next = publish_y(&mut control, "news.live", "[1,2]");
    assert_eq!(
        next.offset, 4,
        "one position per publication, whoever published"
    );
    assert_eq!(event(&mut alice, sub, &first.epoch), (4, json!([1, 2])));
    let at = position_of(control.ask(b'G', &[b"news.live"]));
    assert_eq!(at, next);

    // A topic without history: no position, the EVENT as before.
    control.send_fields(b'x', &[b"chat", b"hi"]);
    let message = alice.recv();
    assert_eq!(message[1], other);
    assert_eq!(message[3], json!({}), "{message}");
}

#[test]
fn a_wamp_session_resumes_missed_publications_in_order_then_live_none_twice_at_the_seam() {
    let server = with_history("1000");
    let mut control = server.control();
    let control_addr = server.control.clone();
    let (mut alice, _) = RawWamp::join(&server, "alice", "realm1");
    let sub = subscribe(&mut alice, 1, json!({}), "news.live");
    let start = publish_y(&mut control, "news.live", "m1");
    assert_eq!(event(&mut alice, sub, &start.epoch), (1, json!(["m1"])));
    drop(alice);

    // 100 publications while it is away: 50 from the control socket, 50 from a WAMP session.
    for n in 2..=51 {
        control.send_fields(b'x', &[b"news.live", format!("m{n}").as_bytes()]);
    }
    assert_eq!(position_of(control.ask(b'G', &[b"news.live"])).offset, 51);
    let (mut bob, _) = RawWamp::join(&server, "bob", "realm1");
    for n in 52..=101 {
        bob.send(&json!([16, n, {"acknowledge": true}, "news.live", [format!("m{n}")]]));
    }
    for _ in 52..=101 {
        assert_eq!(bob.recv()[0], 17, "PUBLISHED");
    }
    // 50 more from another backend, racing the resume.
    let racing = std::thread::spawn(move || {
        let mut racer = Control::connect(&control_addr);
        for n in 102..=151 {
            racer.send_fields(b'x', &[b"news.live", format!("m{n}").as_bytes()]);
        }
        racer.send(b'p', b"");
        assert_eq!(racer.reply_text(), "0P");
    });
    let (mut again, _) = RawWamp::join(&server, "alice", "realm1");
    let sub = subscribe(
        &mut again,
        1,
        json!({"_wson_resume": {"epoch": start.epoch, "offset": 1}}),
        "news.live",
    );
    racing.join().unwrap();
    for n in 2..=151 {
        assert_eq!(
            event(&mut again, sub, &start.epoch),
            (n, json!([format!("m{n}")])),
            "each publication once, in order, across the seam"
        );
    }
    let live = publish_y(&mut control, "news.live", "live");
    assert_eq!(live.offset, 152);
    assert_eq!(event(&mut again, sub, &start.epoch), (152, json!(["live"])));
}

#[test]
fn a_resume_the_history_cannot_fill_gets_one_reload_event_and_a_bad_one_an_error() {
    let server = with_history("5");
    let mut control = server.control();
    let mut last = None;
    for n in 1..=10 {
        last = Some(publish_y(&mut control, "news.x", &format!("m{n}")));
    }
    let last = last.unwrap();
    let (mut alice, _) = RawWamp::join(&server, "alice", "realm1");
    let mut reload = |request: u64, topic: &str, resume: Value| -> Value {
        let sub = subscribe(&mut alice, request, json!({"_wson_resume": resume}), topic);
        let message = alice.recv();
        assert_eq!(message[0], 36, "EVENT expected, got {message}");
        assert_eq!(message[1], sub);
        assert_eq!(
            message.as_array().unwrap().len(),
            4,
            "no arguments: {message}"
        );
        message[3]["_wson_reload"].clone()
    };
    let current = |reason: &str| json!({"reason": reason, "epoch": last.epoch, "offset": 10});
    assert_eq!(
        reload(1, "news.x", json!({"epoch": "12345678-1", "offset": 10})),
        current("epoch"),
        "a stale epoch (a restart)"
    );
    assert_eq!(
        reload(2, "news.x", json!({"epoch": last.epoch, "offset": 2})),
        current("gone"),
        "size 5 keeps offsets 6..=10"
    );
    assert_eq!(
        reload(3, "news.x", json!({"epoch": last.epoch, "offset": 11})),
        current("ahead")
    );
    assert_eq!(
        reload(4, "chat", json!({"epoch": last.epoch, "offset": 1})),
        json!({"reason": "off", "epoch": null, "offset": null}),
        "a topic without history"
    );
    assert_eq!(
        reload(5, "news.y", json!({"epoch": last.epoch, "offset": 5})),
        json!({"reason": "epoch", "epoch": null, "offset": null}),
        "news.y never published: no epoch yet"
    );
    // Offset 5 is the last the history does not hold: 6..=10 come (the session is already
    // subscribed: the same subscription, replayed again).
    let sub = subscribe(
        &mut alice,
        6,
        json!({"_wson_resume": {"epoch": last.epoch, "offset": 5}}),
        "news.x",
    );
    for n in 6..=10 {
        assert_eq!(
            event(&mut alice, sub, &last.epoch),
            (n, json!([format!("m{n}")]))
        );
    }

    // Malformed: an ERROR, and the session goes on.
    for (request, options) in [
        (10, json!({"_wson_resume": "abc:1"})),
        (11, json!({"_wson_resume": {"epoch": last.epoch}})),
        (
            12,
            json!({"match": "prefix", "_wson_resume": {"epoch": last.epoch, "offset": 1}}),
        ),
    ] {
        alice.send(&json!([32, request, options, "news."]));
        let error = alice.recv();
        assert_eq!(error[0], 8, "ERROR expected, got {error}");
        assert_eq!(error[1], 32);
        assert_eq!(error[2], request);
        assert_eq!(error[4], "wamp.error.invalid_argument", "{error}");
    }
    subscribe(&mut alice, 13, json!({}), "news.z");
}

#[test]
fn get_events_lists_the_history_newest_first() {
    let server = with_history("100");
    let mut control = server.control();
    let (mut alice, _) = RawWamp::join(&server, "alice", "realm1");
    let sub = subscribe(&mut alice, 1, json!({}), "news.feed");
    let p1 = publish_y(&mut control, "news.feed", "text");
    let p2 = publish_y(&mut control, "news.feed", r#"{"a":1}"#);
    let (mut bob, _) = RawWamp::join(&server, "bob", "realm1");
    bob.send(&json!([16, 1, {"acknowledge": true, "disclose_me": true}, "news.feed", [1, "two"], {"k": true}]));
    let published = bob.recv();
    assert_eq!(published[0], 17);
    for _ in 0..3 {
        assert_eq!(alice.recv()[0], 36);
    }
    alice.send(&json!([48, 2, {}, "wamp.subscription.get_events", [sub]]));
    let result = alice.recv();
    assert_eq!(result[0], 50, "RESULT expected, got {result}");
    let events = result[3][0].as_array().unwrap();
    assert_eq!(events.len(), 3);
    let offsets: Vec<u64> = events
        .iter()
        .map(|e| e["_wson_position"]["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [3, 2, 1], "newest first, as Crossbar");
    let newest = &events[0];
    assert_eq!(
        newest["args"],
        json!([1, "two"]),
        "WAMP arguments as published"
    );
    assert_eq!(newest["kwargs"], json!({"k": true}));
    assert_eq!(newest["publication"], published[2]);
    assert_eq!(newest["authid"], "bob");
    assert_eq!(newest["topic"], "news.feed");
    assert_eq!(newest["realm"], "realm1");
    assert!(newest["time_ns"].as_u64().unwrap() > 0);
    assert_eq!(
        events[1]["kwargs"],
        json!({"a": 1}),
        "plain JSON as from_plain reads it"
    );
    assert_eq!(events[1]["_wson_position"], position_json(&p2));
    assert!(events[1]["authid"].is_null());
    assert_eq!(events[2]["args"], json!(["text"]));
    assert_eq!(events[2]["_wson_position"], position_json(&p1));

    alice.send(&json!([
        48,
        3,
        {},
        "wamp.subscription.get_events",
        [sub, 1]
    ]));
    let result = alice.recv();
    assert_eq!(result[3][0].as_array().unwrap().len(), 1, "{result}");

    let chat = subscribe(&mut alice, 4, json!({}), "chat");
    alice.send(&json!([48, 5, {}, "wamp.subscription.get_events", [chat]]));
    let error = alice.recv();
    assert_eq!(error[0], 8, "{error}");
    assert_eq!(error[4], "wamp.error.history_unavailable");
}

#[test]
fn plain_and_wamp_sides_replay_each_others_publications() {
    let server = with_history("100");
    let mut control = server.control();
    let mut listener = server.control();
    listener.listen("", "publish");
    assert_eq!(control.count(b'J', &[b"alice", b"news.x"]), 0);
    let (mut bob, _) = RawWamp::join(&server, "bob", "realm1");
    let mut plain = plain_resuming(&server, "");
    bob.send(&json!([16, 1, {"acknowledge": true}, "news.x", ["w1"]]));
    assert_eq!(bob.recv()[0], 17);
    let epoch = position_of(control.ask(b'G', &[b"news.x"])).epoch;
    assert_eq!(plain_positioned(&mut plain, &epoch), (1, "w1".to_owned()));
    listener.expect_event(wson::control::event::Event::Publish {
        topic: "news.x",
        user: "bob",
        binary: false,
        payload: b"w1",
    });
    drop(plain);

    // While the plain client is away: WAMP publications, and one from the control socket.
    bob.send(&json!([16, 2, {"acknowledge": true}, "news.x", ["w2"]]));
    bob.send(&json!([16, 3, {"acknowledge": true}, "news.x", [], {"k": 3}]));
    assert_eq!(bob.recv()[0], 17);
    assert_eq!(bob.recv()[0], 17);
    publish_y(&mut control, "news.x", "y4");
    let mut plain = plain_resuming(&server, &format!("news.x@{epoch}:1"));
    assert_eq!(plain_positioned(&mut plain, &epoch), (2, "w2".to_owned()));
    assert_eq!(
        plain_positioned(&mut plain, &epoch),
        (3, r#"{"k":3}"#.to_owned())
    );
    assert_eq!(plain_positioned(&mut plain, &epoch), (4, "y4".to_owned()));

    // And the other way: the control socket's publications replayed to a WAMP session.
    let (mut carol, _) = RawWamp::join(&server, "carol", "realm1");
    let sub = subscribe(
        &mut carol,
        1,
        json!({"_wson_resume": {"epoch": epoch, "offset": 3}}),
        "news.x",
    );
    assert_eq!(event(&mut carol, sub, &epoch), (4, json!(["y4"])));
    bob.send(&json!([16, 4, {}, "news.x", ["w5"]]));
    assert_eq!(event(&mut carol, sub, &epoch), (5, json!(["w5"])));
    assert_eq!(plain_positioned(&mut plain, &epoch), (5, "w5".to_owned()));
}

#[test]
fn autobahn_python_takes_events_with_their_position_in_the_details() {
    let Some(python) = wamp_python() else {
        return;
    };
    let server = with_history("100");
    let mut control = server.control();
    let cookie = Cookies::fresh("alice").header;
    let mut script = Script::spawn(
        &python,
        "wamp/py_history.py",
        &[&wson_url(&server), "realm1", &cookie, "news.py", "2"],
    );
    assert_eq!(script.next(), json!({"subscribed": true}));
    let first = publish_y(&mut control, "news.py", "hello");
    let second = publish_y(&mut control, "news.py", r#"{"n":2}"#);
    let report = script.next();
    script.finish();
    let events = report["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(events[0]["args"], json!(["hello"]));
    assert_eq!(
        events[0]["raw_details"]["_wson_position"],
        position_json(&first)
    );
    assert_eq!(events[1]["kwargs"], json!({"n": 2}));
    assert_eq!(
        events[1]["raw_details"]["_wson_position"],
        position_json(&second)
    );
}

#[test]
fn autobahn_js_resumes_with_the_readme_wrapper() {
    let Some(node) = node() else {
        return;
    };
    let server = with_history("100");
    let mut control = server.control();
    let cookies = crate::common::wamp::cookie_list();
    let mut script = Script::spawn(
        &node,
        "wamp/node_history.js",
        &[&wson_url(&server), "realm1", "news.js", &cookies],
    );
    assert_eq!(script.next(), json!({"subscribed": true}));
    let first = publish_y(&mut control, "news.js", "one");
    let second = publish_y(&mut control, "news.js", "two");
    let report = script.next();
    script.finish();
    assert_eq!(
        report,
        json!({
            "first": [
                {"args": ["one"], "position": position_json(&first)},
                {"args": ["two"], "position": position_json(&second)},
            ],
            "resumed": [
                {"args": ["while away 1"], "position": {"epoch": first.epoch, "offset": 3}},
                {"args": ["while away 2"], "position": {"epoch": first.epoch, "offset": 4}},
            ],
            "reload": {"topic": "chat", "reason": "off", "epoch": null, "offset": null},
        })
    );
}

/// In a cluster, Redis numbers the topic's publications (README, "Missed messages", "In a
/// cluster"): a control publication on node a reaches node b's WAMP session with the one
/// position `Y` answered, node b's `G` and copy of the history agree, and a session resuming
/// on node b gets them. A WAMP publication does not go through Redis: it arrives without a
/// position and is not kept.
#[test]
fn in_a_cluster_events_carry_the_position_redis_gave_on_every_node() {
    let Some(redis) = crate::cluster::Redis::start() else {
        return;
    };
    let node = |name: &str| {
        Setup::new()
            .set("history.prefixes", r#"["news."]"#)
            .set("cluster.redis", &format!("{:?}", redis.url()))
            .set("cluster.node_id", &format!("{name:?}"))
            .start()
    };
    let nodes = [node("a"), node("b")];
    for node in &nodes {
        crate::cluster::wait_redis(node, "up");
        crate::cluster::wait_nodes(node, 2);
    }
    let (mut alice, _) = RawWamp::join(&nodes[0], "alice", "realm1");
    let (mut bob, _) = RawWamp::join(&nodes[1], "bob", "realm1");
    let sub = subscribe(&mut bob, 1, json!({}), "news.c");
    let mut control_a = nodes[0].control();
    let mut control_b = nodes[1].control();

    // A WAMP publication on node a, then control ones on a (two x, then Y).
    alice.send(&json!([16, 1, {"acknowledge": true}, "news.c", ["w1"]]));
    assert_eq!(alice.recv()[0], 17);
    let message = bob.recv();
    assert_eq!(message[4], json!(["w1"]), "{message}");
    assert!(
        message[3].get("_wson_position").is_none(),
        "a WAMP publication in a cluster has no position: {message}"
    );
    control_a.send_fields(b'x', &[b"news.c", b"x1"]);
    control_a.send_fields(b'x', &[b"news.c", b"x2"]);
    let on_a = publish_y(&mut control_a, "news.c", "y3");
    assert_eq!(
        on_a.offset, 3,
        "Redis numbered the three control publications"
    );
    for (offset, text) in [(1, "x1"), (2, "x2"), (3, "y3")] {
        assert_eq!(event(&mut bob, sub, &on_a.epoch), (offset, json!([text])));
    }
    let on_b = position_of(control_b.ask(b'G', &[b"news.c"]));
    assert_eq!(on_b, on_a, "one sequence cluster-wide");
    // Node b's copy of the history replays them to a session that resumes there.
    let (mut carol, _) = RawWamp::join(&nodes[1], "carol", "realm1");
    let sub = subscribe(
        &mut carol,
        1,
        json!({"_wson_resume": {"epoch": on_a.epoch, "offset": 0}}),
        "news.c",
    );
    for (offset, text) in [(1, "x1"), (2, "x2"), (3, "y3")] {
        assert_eq!(event(&mut carol, sub, &on_a.epoch), (offset, json!([text])));
    }
}

#[test]
fn a_plain_client_resuming_while_wamp_sessions_publish_gets_each_once_in_order() {
    let server = with_history("1000");
    let mut control = server.control();
    assert_eq!(control.count(b'J', &[b"alice", b"news.race"]), 0);
    let start = publish_y(&mut control, "news.race", "m1");
    // WAMP publishers racing the plain client's resume: their plain side waits in the
    // router's actions while the client joins in the same turn.
    let publishers: Vec<_> = ["bob", "carol"]
        .into_iter()
        .map(|user| {
            let mut session = RawWamp::join(&server, user, "realm1").0;
            std::thread::spawn(move || {
                for n in 0..100 {
                    session.send(&json!([16, n + 1, {"acknowledge": true}, "news.race", [format!("{user}{n}")]]));
                }
                for _ in 0..100 {
                    assert_eq!(session.recv()[0], 17);
                }
            })
        })
        .collect();
    // And the control socket between them: its publications are delivered at once, after
    // the WAMP ones taken before them.
    let control_addr = server.control.clone();
    let racer = std::thread::spawn(move || {
        let mut racer = Control::connect(&control_addr);
        for n in 0..100 {
            racer.send_fields(b'x', &[b"news.race", format!("dan{n}").as_bytes()]);
        }
        racer.send(b'p', b"");
        assert_eq!(racer.reply_text(), "0P");
    });
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(plain_resuming(
            &server,
            &format!("news.race@{}:1", start.epoch),
        ));
    }
    for publisher in publishers {
        publisher.join().unwrap();
    }
    racer.join().unwrap();
    let last = publish_y(&mut control, "news.race", "last");
    assert_eq!(last.offset, 302);
    for client in &mut clients {
        let mut next = 2;
        let mut per_user: std::collections::HashMap<String, u64> = Default::default();
        loop {
            let (offset, message) = plain_positioned(client, &start.epoch);
            assert_eq!(offset, next, "each once, in order");
            next += 1;
            if message == "last" {
                break;
            }
            let user: String = message.chars().take_while(|c| c.is_alphabetic()).collect();
            let n: u64 = message[user.len()..].parse().unwrap();
            let expected = per_user.entry(user).or_insert(0);
            assert_eq!(n, *expected, "a publisher's own order");
            *expected += 1;
        }
        assert_eq!(next, 303);
    }
}
