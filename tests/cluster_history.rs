//! Topic history in Redis across the nodes of a cluster (issue 15; README "Missed
//! messages"): Redis positions every publication to a topic with history, so a client that
//! comes back on another node, even after its first node died or on a node started since,
//! gets exactly what it missed, in order, then live publications, none twice.

use wson::control::command::Reply;

use crate::cluster::{Redis, wait_nodes, wait_redis};
use crate::common::*;
use crate::history::{notice, position_of, positioned};

/// A node of `redis` whose topics `news.*` keep `size` publications.
fn history_node(redis: &Redis, name: &str, size: usize) -> Server {
    let node = Setup::new()
        .set("cluster.redis", &format!("{:?}", redis.url()))
        .set("cluster.node_id", &format!("{name:?}"))
        .set("history.prefixes", r#"["news."]"#)
        .set("history.size", &size.to_string())
        .start();
    wait_redis(&node, "up");
    node
}

/// Two nodes that hear each other.
fn two_nodes(redis: &Redis) -> [Server; 2] {
    let nodes = [
        history_node(redis, "a", 1000),
        history_node(redis, "b", 1000),
    ];
    for node in &nodes {
        wait_nodes(node, 2);
    }
    nodes
}

/// A client of alice (fresh cookies) whose upgrade carries `?resume=VALUE`.
fn resuming(server: &Server, value: &str) -> WsClient {
    crate::history::resuming(server, value).expect("upgrade accepted")
}

/// Alice's connections, on every node, join `topic` (now and later).
fn subscribe_alice(control: &mut Control, topic: &str) {
    control.count(b'J', &[b"alice", topic.as_bytes()]);
}

/// Publishes `m{n}` for each `n` from `control`, `x` without a reply, then syncs.
fn publish_range(control: &mut Control, topic: &str, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        control.send_fields(b'x', &[topic.as_bytes(), format!("m{n}").as_bytes()]);
    }
    control.sync();
}

/// The client gets `m{n}` at offset `n` for each `n`, in order.
fn expect_range(
    client: &mut WsClient,
    topic: &str,
    epoch: &str,
    range: std::ops::RangeInclusive<u64>,
) {
    for n in range {
        assert_eq!(
            positioned(client, topic, epoch),
            (n, format!("m{n}")),
            "each publication once, in order"
        );
    }
}

#[test]
fn a_client_resumes_on_another_node_with_what_it_missed_then_live_ones() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let [a, b] = two_nodes(&redis);
    let mut control_a = a.control();
    let mut control_b = b.control();
    subscribe_alice(&mut control_a, "news.live");
    let mut first = resuming(&a, "");
    let start = position_of(control_a.ask(b'Y', &[b"news.live", b"m1"]));
    assert_eq!(start.offset, 1);
    assert_eq!(
        positioned(&mut first, "news.live", &start.epoch),
        (1, "m1".to_owned())
    );
    drop(first);

    // 100 publications while it is away, from both nodes' control sockets.
    for n in (2..=101).step_by(2) {
        // In turn: each node's publication is positioned (the `p` after it waits for
        // that) before the other's is sent.
        publish_range(&mut control_a, "news.live", n..=n);
        publish_range(&mut control_b, "news.live", n + 1..=n + 1);
    }
    let read_a = position_of(control_a.ask(b'G', &[b"news.live"]));
    let read_b = position_of(control_b.ask(b'G', &[b"news.live"]));
    assert_eq!(read_a, read_b, "one position, whichever node is asked");
    assert_eq!(read_a.offset, 101);
    // 50 more from b's other backend, racing the reconnect.
    let control_addr = b.control.clone();
    let racing = std::thread::spawn(move || {
        let mut racer = Control::connect(&control_addr);
        publish_range(&mut racer, "news.live", 102..=151);
    });
    let mut second = resuming(&b, &format!("news.live@{}:1", start.epoch));
    racing.join().unwrap();
    expect_range(&mut second, "news.live", &start.epoch, 2..=151);
    let live = position_of(control_a.ask(b'Y', &[b"news.live", b"m152"]));
    assert_eq!(live.offset, 152);
    expect_range(&mut second, "news.live", &start.epoch, 152..=152);
}

#[test]
fn a_client_resumes_on_another_node_after_its_node_was_killed() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let [a, b] = two_nodes(&redis);
    let mut control_a = a.control();
    subscribe_alice(&mut control_a, "news.live");
    let mut first = resuming(&a, "");
    let start = position_of(control_a.ask(b'Y', &[b"news.live", b"m1"]));
    assert_eq!(
        positioned(&mut first, "news.live", &start.epoch),
        (1, "m1".to_owned())
    );
    publish_range(&mut control_a, "news.live", 2..=50);
    a.signal(nix::sys::signal::Signal::SIGKILL);
    drop(first);
    let mut control_b = b.control();
    publish_range(&mut control_b, "news.live", 51..=100);
    let mut second = resuming(&b, &format!("news.live@{}:1", start.epoch));
    expect_range(&mut second, "news.live", &start.epoch, 2..=100);
    let live = position_of(control_b.ask(b'Y', &[b"news.live", b"m101"]));
    assert_eq!(live.offset, 101);
    expect_range(&mut second, "news.live", &start.epoch, 101..=101);
}

#[test]
fn positions_answered_on_both_nodes_are_one_sequence() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let [a, b] = two_nodes(&redis);
    let mut controls = [a.control(), b.control()];
    let mut epoch = None;
    for n in 1..=10_u64 {
        let control = &mut controls[(n % 2) as usize];
        let position = position_of(control.ask(b'Y', &[b"news.seq", n.to_string().as_bytes()]));
        assert_eq!(position.offset, n);
        let epoch = epoch.get_or_insert_with(|| position.epoch.clone());
        assert_eq!(&position.epoch, epoch);
    }
}

/// A control frame: `{len}{command}{payload}`.
fn frame(command: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{}{}", payload.len(), command as char).into_bytes();
    out.extend_from_slice(payload);
    out
}

#[test]
fn a_history_publication_keeps_its_place_among_its_connections_commands_on_every_node() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let [a, b] = two_nodes(&redis);
    let mut control = a.control();
    let mut clients = Vec::new();
    for node in [&a, &b] {
        let cookies = Cookies::fresh("bob");
        let client = WsClient::connect_tcp(&node.tcp(), &cookies).unwrap();
        let token = cookies.token_str();
        assert_eq!(control.count(b'j', &[token.as_bytes(), b"news.x"]), 1);
        clients.push(client);
    }
    // One write: each broadcast after a publication waits for it on this node, and Redis
    // orders both for the other node as they were sent.
    let mut pipelined = Vec::new();
    for n in 0..10 {
        pipelined.extend(frame(b'b', format!("before {n}").as_bytes()));
        pipelined.extend(frame(
            b'x',
            &fields(&[b"news.x", format!("kept {n}").as_bytes()]),
        ));
        pipelined.extend(frame(b'b', format!("after {n}").as_bytes()));
    }
    control.send_raw(&pipelined);
    for client in &mut clients {
        for n in 0..10 {
            assert_eq!(client.recv_text(), format!("before {n}"));
            assert_eq!(client.recv_text(), format!("kept {n}"));
            assert_eq!(client.recv_text(), format!("after {n}"));
        }
    }
}

#[test]
fn a_resume_on_a_node_started_since_is_served_from_redis() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let a = history_node(&redis, "a", 1000);
    let mut control_a = a.control();
    let start = position_of(control_a.ask(b'Y', &[b"news.live", b"m1"]));
    publish_range(&mut control_a, "news.live", 2..=20);
    // A fresh node: its mirror holds nothing of what went before.
    let c = history_node(&redis, "c", 1000);
    wait_nodes(&c, 2);
    wait_nodes(&a, 2);
    subscribe_alice(&mut control_a, "news.live");
    let control_addr = a.control.clone();
    let racing = std::thread::spawn(move || {
        let mut racer = Control::connect(&control_addr);
        publish_range(&mut racer, "news.live", 21..=60);
    });
    let mut client = resuming(&c, &format!("news.live@{}:5", start.epoch));
    racing.join().unwrap();
    expect_range(&mut client, "news.live", &start.epoch, 6..=60);
    let status = c.control().status();
    assert_eq!(status["cluster_history_fetches"], 1, "{status}");
}

#[test]
fn a_stale_epoch_gets_reload_epoch_and_a_trimmed_offset_reload_gone() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let a = history_node(&redis, "a", 5);
    let mut control_a = a.control();
    let start = position_of(control_a.ask(b'Y', &[b"news.t", b"m1"]));
    publish_range(&mut control_a, "news.t", 2..=10);
    let c = history_node(&redis, "c", 5);
    wait_nodes(&c, 2);
    wait_nodes(&a, 2);
    subscribe_alice(&mut control_a, "news.t");
    // Served by Redis (c's mirror is empty), then by a's mirror: the same answers.
    for node in [&c, &a] {
        let mut stale = resuming(node, "news.t@0123456789abcdef:3");
        let value = notice(&mut stale);
        assert_eq!(value["wson"], "reload", "{value}");
        assert_eq!(value["reason"], "epoch");
        assert_eq!(value["epoch"], start.epoch.as_str());
        assert_eq!(value["offset"], 10);
        let mut trimmed = resuming(node, &format!("news.t@{}:2", start.epoch));
        let value = notice(&mut trimmed);
        assert_eq!(value["wson"], "reload", "{value}");
        assert_eq!(value["reason"], "gone");
        assert_eq!(value["offset"], 10);
        // Within the last 5: replayed.
        let mut kept = resuming(node, &format!("news.t@{}:7", start.epoch));
        expect_range(&mut kept, "news.t", &start.epoch, 8..=10);
    }
}

#[test]
fn the_http_api_publishes_and_reads_positions_from_redis() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let a = crate::http_api::setup()
        .set("cluster.redis", &format!("{:?}", redis.url()))
        .set("cluster.node_id", "\"a\"")
        .set("history.prefixes", r#"["news."]"#)
        .start();
    wait_redis(&a, "up");
    let b = history_node(&redis, "b", 1000);
    let ok = |method, params| crate::http_api::ok(&a, method, params);
    let first = ok(
        "publish",
        serde_json::json!({"topic": "news.h", "message": "one"}),
    );
    assert_eq!(first["offset"], 1);
    let on_b = position_of(b.control().ask(b'Y', &[b"news.h", b"two"]));
    assert_eq!(on_b.epoch, first["epoch"].as_str().unwrap());
    assert_eq!(on_b.offset, 2);
    assert_eq!(
        ok("position", serde_json::json!({"topic": "news.h"})),
        serde_json::json!({"epoch": on_b.epoch, "offset": 2})
    );
}

#[test]
fn without_redis_a_publication_is_delivered_here_unpositioned_and_y_refused() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let a = history_node(&redis, "a", 1000);
    let mut control = a.control();
    subscribe_alice(&mut control, "news.d");
    let mut client = resuming(&a, "");
    let before = position_of(control.ask(b'Y', &[b"news.d", b"m1"]));
    assert_eq!(
        positioned(&mut client, "news.d", &before.epoch),
        (1, "m1".to_owned())
    );
    redis.kill();
    wait_redis(&a, "down");
    assert_eq!(
        control.ask(b'Y', &[b"news.d", b"lost?"]),
        Reply::Refused(wson::control::command::Refusal::ClusterUnavailable)
    );
    control.send_fields(b'x', &[b"news.d", b"lost too?"]);
    for message in ["lost?", "lost too?"] {
        let value = notice(&mut client);
        assert_eq!(value["wson"], "reload", "{value}");
        assert_eq!(value["reason"], "unpositioned");
        assert_eq!(client.recv_text(), message);
    }
    assert_eq!(control.status()["cluster_history_unpositioned"], 2);
    // Redis is back, empty: a new epoch.
    redis.run();
    wait_redis(&a, "up");
    let after = position_of(control.ask(b'Y', &[b"news.d", b"m1 again"]));
    assert_ne!(after.epoch, before.epoch);
    assert_eq!(after.offset, 1);
    assert_eq!(
        positioned(&mut client, "news.d", &after.epoch),
        (1, "m1 again".to_owned())
    );
}
