//! Several wson nodes joined by a real Redis (`[cluster]`): a broadcast or a topic
//! publication sent to one node's control socket reaches the clients of every node, in
//! order; with Redis gone each node keeps serving its own clients, and when Redis comes back
//! the nodes rejoin without a restart; `reuse_port` lets nodes share one port.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// The Debian package's server (tests/install-tools.sh).
const REDIS_SERVER: &str = "redis-server";

/// A Redis of the test's own on a loopback port, without persistence; killed on drop.
pub(crate) struct Redis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    /// `None` (the test skips) when redis-server is not installed and skipping is allowed.
    pub(crate) fn start() -> Option<Redis> {
        if Command::new(REDIS_SERVER)
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                skipping("redis-server is not installed (tests/install-tools.sh)"),
                "redis-server is not installed: run tests/install-tools.sh"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Redis {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        redis.run();
        Some(redis)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts redis-server on the port and waits (bounded) until it accepts.
    pub(crate) fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).unwrap();
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills redis-server (as a crash would).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            eprintln!("--- redis-server log:\n{log}");
        }
    }
}

pub(crate) fn node(redis: &Redis, name: &str) -> Server {
    node_setup(redis, name).start()
}

fn node_setup(redis: &Redis, name: &str) -> Setup {
    Setup::new()
        .set("cluster.redis", &format!("{:?}", redis.url()))
        .set("cluster.node_id", &format!("{name:?}"))
}

/// Waits (bounded) until the node's status says Redis is `state`.
pub(crate) fn wait_redis(server: &Server, state: &str) {
    wait_status(server, "cluster_redis", &serde_json::json!(state));
}

/// Waits (bounded) until the node counts `nodes` live nodes, itself included.
pub(crate) fn wait_nodes(server: &Server, nodes: u64) {
    wait_status(server, "cluster_nodes", &serde_json::json!(nodes));
}

/// Waits (bounded) until the node's status has `key` = `value`.
fn wait_status(server: &Server, key: &str, value: &serde_json::Value) {
    let mut control = server.control();
    let deadline = Instant::now() + WAIT;
    loop {
        let status = control.status();
        if status[key] == *value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} never became {value}: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Three nodes that each count the other two alive.
pub(crate) fn joined_nodes(redis: &Redis) -> [Server; 3] {
    let nodes = three_nodes(redis);
    for node in &nodes {
        wait_nodes(node, 3);
    }
    nodes
}

/// Three nodes joined by `redis`, each with Redis up.
pub(crate) fn three_nodes(redis: &Redis) -> [Server; 3] {
    let nodes = [node(redis, "a"), node(redis, "b"), node(redis, "c")];
    for node in &nodes {
        wait_redis(node, "up");
    }
    nodes
}

#[test]
fn a_broadcast_reaches_every_node_in_order() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = three_nodes(&redis);
    let mut clients: Vec<WsClient> = nodes.iter().map(Server::client).collect();
    let mut control = nodes[0].control();
    for n in 0..20 {
        control.send(b'b', format!("message {n}").as_bytes());
    }
    control.send(b'B', &[0, 1, 2]);
    for client in &mut clients {
        for n in 0..20 {
            assert_eq!(client.recv_text(), format!("message {n}"));
        }
        let frame = client.recv_data();
        assert_eq!(frame.payload, [0, 1, 2]);
    }
    let status = control.status();
    assert_eq!(status["cluster_node"], "a");
    assert!(status["cluster_sent"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["cluster_dropped"], 0);
}

#[test]
fn a_topic_publication_reaches_the_subscribers_of_every_node() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = three_nodes(&redis);
    // Each node's control subscribes its own client (any node's would do: see
    // subscriptions_reach_connections_on_any_node).
    let mut subscribed = Vec::new();
    for node in &nodes {
        let cookies = Cookies::fresh("bob");
        let client = WsClient::connect_tcp(&node.tcp(), &cookies).unwrap();
        let mut control = node.control();
        control.send(b'j', &fields(&[cookies.token.as_bytes(), b"news.sport"]));
        assert_eq!(control.reply().0, b'#');
        subscribed.push(client);
    }
    let mut bystanders: Vec<WsClient> = nodes.iter().map(Server::client).collect();
    let mut control = nodes[1].control();
    control.send(b'x', &fields(&[b"news.sport", b"Goal!"]));
    control.send(b'b', b"to everyone");
    for client in &mut subscribed {
        assert_eq!(client.recv_text(), "Goal!");
        assert_eq!(client.recv_text(), "to everyone");
    }
    // Those not subscribed got the broadcast only.
    for client in &mut bystanders {
        assert_eq!(client.recv_text(), "to everyone");
    }
}

#[test]
fn without_redis_each_node_serves_its_own_and_rejoins_when_redis_is_back() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let nodes = three_nodes(&redis);
    let mut a = nodes[0].client();
    let mut b = nodes[1].client();
    redis.kill();
    wait_redis(&nodes[0], "down");
    let mut control = nodes[0].control();
    let dropped = |status: &serde_json::Value| status["cluster_dropped"].as_u64().unwrap();
    let before = dropped(&control.status());
    control.send(b'b', b"local only");
    assert_eq!(a.recv_text(), "local only");
    let status = control.status();
    assert_eq!(status["cluster_redis"], "down");
    // Not queued for later: a backlog would reach the others stale (heartbeats due
    // meanwhile are dropped too).
    assert!(dropped(&status) > before, "{status}");
    redis.run();
    for node in &nodes {
        wait_redis(node, "up");
    }
    control.send(b'b', b"everyone again");
    assert_eq!(a.recv_text(), "everyone again");
    // b never got what was sent while Redis was away; it gets what follows, although a's
    // connection to publish died unnoticed with the old Redis (the message is sent again on
    // the new connection).
    assert_eq!(b.recv_text(), "everyone again");
}

#[test]
fn nodes_with_reuse_port_share_one_port() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let shared = |name: &str| {
        node_setup(&redis, name)
            .set("servers", &format!("[\"tcp://127.0.0.1:{port}\"]"))
            .set("reuse_port", "true")
            .start()
    };
    let nodes = [shared("a"), shared("b")];
    for node in &nodes {
        wait_redis(node, "up");
    }
    // The kernel spreads connections by a hash of their addresses: of 40, each node gets
    // some (both getting none of 40 is a 2^-39 chance).
    let mut clients: Vec<WsClient> = (0..40)
        .map(|_| {
            WsClient::connect_tcp(&format!("127.0.0.1:{port}"), &Cookies::fresh("carol")).unwrap()
        })
        .collect();
    let counts: Vec<u64> = nodes
        .iter()
        .map(|node| node.control().status()["connections"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 40, "{counts:?}");
    assert!(counts.iter().all(|count| *count > 0), "{counts:?}");
    // Whichever node a client landed on, a broadcast to either reaches it.
    nodes[1].control().send(b'b', b"shared");
    for client in &mut clients {
        assert_eq!(client.recv_text(), "shared");
    }
}

#[test]
fn direct_and_user_messages_reach_the_other_nodes() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = three_nodes(&redis);
    let dave = Cookies::fresh("dave");
    let mut on_c = WsClient::connect_tcp(&nodes[2].tcp(), &dave).unwrap();
    // Another tab of dave's, on b.
    let mut on_b = WsClient::connect_tcp(&nodes[1].tcp(), &Cookies::fresh("dave")).unwrap();
    let mut control = nodes[0].control();
    control.direct(b'd', &dave.token, b"for dave's token");
    control.direct(b'D', &dave.token, &[7, 7]);
    control.send(
        b'u',
        &fields(&[b"dave", "for every tab of dave's \u{2713}".as_bytes()]),
    );
    assert_eq!(on_c.recv_text(), "for dave's token");
    assert_eq!(on_c.recv_data().payload, [7, 7]);
    assert_eq!(on_c.recv_text(), "for every tab of dave's \u{2713}");
    assert_eq!(on_b.recv_text(), "for every tab of dave's \u{2713}");
}

#[test]
fn a_topic_publication_reaches_the_wamp_subscribers_of_every_node() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = three_nodes(&redis);
    let (mut wamp, _) = crate::common::wamp::RawWamp::join(&nodes[2], "erin", "realm1");
    wamp.send(&serde_json::json!([32, 1, {}, "news.sport"]));
    assert_eq!(wamp.recv()[0], 33);
    nodes[0]
        .control()
        .send(b'x', &fields(&[b"news.sport", br#"["Goal!", 1]"#]));
    let event = wamp.recv();
    assert_eq!(event[0], 36, "{event}");
    assert_eq!(event[4], serde_json::json!(["Goal!", 1]));
}

#[test]
fn c_w_o_and_kicks_answer_for_the_whole_cluster() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    let frank = Cookies::fresh("frank");
    let mut on_c = WsClient::connect_tcp(&nodes[2].tcp(), &frank).unwrap();
    let _tab_on_b = WsClient::connect_tcp(&nodes[1].tcp(), &Cookies::fresh("frank")).unwrap();
    let mut control = nodes[0].control();
    // c: the token is on node c, which delivers and answers: A.
    control.direct(b'c', &frank.token, b"confirmed");
    assert_eq!(control.reply(), (b'A', frank.token.as_bytes().to_vec()));
    assert_eq!(on_c.recv_text(), "confirmed");
    // An empty c asks whether it is online anywhere.
    control.direct(b'c', &frank.token, b"");
    assert_eq!(control.reply().0, b'A');
    let nobody = Cookies::fresh("nobody");
    control.direct(b'c', &nobody.token, b"lost");
    assert_eq!(control.reply().0, b'N');
    // o and w count frank's connections on every node.
    control.send(b'o', &fields(&[b"frank"]));
    assert_eq!(control.reply(), (b'#', b"2".to_vec()));
    control.send(b'w', &fields(&[b"frank", b"to both tabs"]));
    assert_eq!(control.reply(), (b'#', b"2".to_vec()));
    assert_eq!(on_c.recv_text(), "to both tabs");
    // Replies keep the order of the commands, local answers behind remote ones included.
    control.direct(b'c', &nobody.token, b"x");
    control.send(b'p', b"");
    assert_eq!(control.reply().0, b'N');
    assert_eq!(control.reply().0, b'P');
    // k and K close connections wherever they are, and count them all.
    control.send(b'k', &fields(&[nobody.token.as_bytes()]));
    assert_eq!(control.reply(), (b'#', b"0".to_vec()));
    control.send(b'K', &fields(&[b"frank", b"4001", b"moved"]));
    assert_eq!(control.reply(), (b'#', b"2".to_vec()));
    on_c.expect_close(4001);
    control.send(b'o', &fields(&[b"frank"]));
    assert_eq!(control.reply(), (b'#', b"0".to_vec()));
}

#[test]
fn a_killed_node_is_forgotten_and_questions_answer_without_it() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let mut nodes = joined_nodes(&redis);
    let grace = Cookies::fresh("grace");
    let _on_a = WsClient::connect_tcp(&nodes[0].tcp(), &grace).unwrap();
    nodes[2].signal(nix::sys::signal::Signal::SIGKILL);
    nodes[2].wait_exit();
    // Asked before the others notice: the answer waits for request_timeout, then counts
    // the nodes that answered.
    let mut control = nodes[1].control();
    control.send(b'o', &fields(&[b"grace"]));
    assert_eq!(control.reply(), (b'#', b"1".to_vec()));
    // Three heartbeats later it is gone; questions no longer wait for it.
    wait_nodes(&nodes[1], 2);
    control.send(b'o', &fields(&[b"grace"]));
    assert_eq!(control.reply(), (b'#', b"1".to_vec()));
}

#[test]
fn without_redis_cluster_wide_questions_are_refused_clearly() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    redis.kill();
    wait_redis(&nodes[0], "down");
    let mut control = nodes[0].control();
    control.send(b'o', &fields(&[b"henry"]));
    assert_eq!(
        control.reply(),
        (b'!', b"cluster unavailable: Redis is down".to_vec())
    );
    // Answers that need no other node still come.
    let henry = Cookies::fresh("henry");
    let _client = WsClient::connect_tcp(&nodes[0].tcp(), &henry).unwrap();
    control.direct(b'c', &henry.token, b"here");
    assert_eq!(control.reply().0, b'A');
}

#[test]
fn two_nodes_given_one_node_id_still_reach_each_other_and_are_told() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = [node(&redis, "same"), node(&redis, "same")];
    for node in &nodes {
        wait_redis(node, "up");
        wait_nodes(node, 2);
    }
    let mut other = nodes[1].client();
    nodes[0].control().send(b'b', b"crossed");
    assert_eq!(other.recv_text(), "crossed");
    let deadline = Instant::now() + WAIT;
    while !nodes[0]
        .log_text()
        .contains("another node uses this node's node_id")
    {
        assert!(Instant::now() < deadline, "no warning in the log");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn t_reports_every_node_and_the_sum() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    let _clients: Vec<WsClient> = [0, 1, 1, 2, 2, 2]
        .iter()
        .map(|&index| nodes[index].client())
        .collect();
    let status = nodes[1].control().status();
    // This node's own figures stay where they were.
    assert_eq!(status["connections"], 2);
    assert_eq!(status["cluster_node"], "b");
    let cluster = &status["cluster_status"];
    let names: Vec<&str> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["node"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "b");
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["a", "b", "c"]);
    assert_eq!(cluster["sum"]["connections"], 6);
    for node in cluster["nodes"].as_array().unwrap() {
        assert!(node["status"]["connections"].is_u64(), "{node}");
    }
}

#[test]
fn subscriptions_reach_connections_on_any_node() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    let ivy = Cookies::fresh("ivy");
    let mut on_c = WsClient::connect_tcp(&nodes[2].tcp(), &ivy).unwrap();
    let mut tab_on_b = WsClient::connect_tcp(&nodes[1].tcp(), &Cookies::fresh("ivy")).unwrap();
    let mut control = nodes[0].control();
    // j through node a subscribes the token's connection on node c.
    control.send(b'j', &fields(&[ivy.token.as_bytes(), b"weather"]));
    assert_eq!(control.reply(), (b'#', b"1".to_vec()));
    // J subscribes every connection of the user, on every node.
    control.send(b'J', &fields(&[b"ivy", b"alerts"]));
    assert_eq!(control.reply(), (b'#', b"2".to_vec()));
    let mut publisher = nodes[1].control();
    publisher.send(b'x', &fields(&[b"weather", b"rain"]));
    publisher.send(b'x', &fields(&[b"alerts", b"storm"]));
    assert_eq!(on_c.recv_text(), "rain");
    assert_eq!(on_c.recv_text(), "storm");
    assert_eq!(tab_on_b.recv_text(), "storm");
    // r through node a unsubscribes it on node c; R the user's everywhere.
    control.send(b'r', &fields(&[ivy.token.as_bytes(), b"weather"]));
    assert_eq!(control.reply(), (b'#', b"1".to_vec()));
    control.send(b'R', &fields(&[b"ivy", b"alerts"]));
    assert_eq!(control.reply(), (b'#', b"2".to_vec()));
    publisher.send(b'x', &fields(&[b"weather", b"sun"]));
    publisher.send(b'x', &fields(&[b"alerts", b"calm"]));
    publisher.send(b'b', b"the end");
    assert_eq!(on_c.recv_text(), "the end");
    assert_eq!(tab_on_b.recv_text(), "the end");
}

#[test]
fn m_names_the_freest_listener_of_the_freest_node() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let named = |name: &str| {
        node_setup(&redis, name)
            .set("servers", r#"["tcp://127.0.0.1:0"]"#)
            .set("domains", &format!("[\"{name}.example\"]"))
            .start()
    };
    let nodes = [named("a"), named("b"), named("c")];
    for node in &nodes {
        wait_redis(node, "up");
        wait_nodes(node, 3);
    }
    let _clients: Vec<WsClient> = [0, 1, 1, 2, 2, 2]
        .iter()
        .map(|&index| nodes[index].client())
        .collect();
    let mut control = nodes[2].control();
    control.send(b'm', b"");
    assert_eq!(control.reply(), (b'M', b"a.example".to_vec()));
}

#[test]
fn event_listeners_hear_every_node_and_a_group_gets_each_event_once() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    // The group "workers" with a member on b and one on c, then a listener on b.
    let mut worker_b = nodes[1].control();
    worker_b.listen("workers", "connected");
    let mut worker_c = nodes[2].control();
    worker_c.listen("workers", "connected");
    // Node a forwards once a heartbeat says someone listens; c decides about the group once
    // it has heard b's (b's first heartbeat that wants "connected" names its group).
    for node in [&nodes[0], &nodes[2]] {
        wait_status(
            node,
            "cluster_events_wanted",
            &serde_json::json!(["connected"]),
        );
    }
    let mut plain = nodes[1].control();
    plain.listen("", "connected");
    let users = ["u1", "u2", "u3", "u4"];
    let _clients: Vec<WsClient> = users
        .iter()
        .map(|user| WsClient::connect_tcp(&nodes[0].tcp(), &Cookies::fresh(user)).unwrap())
        .collect();
    let connected = |listener: &mut Control| match listener.next_event().event() {
        wson::control::event::Event::Connected { user, .. } => user.to_owned(),
        other => panic!("expected connected, got {other:?}"),
    };
    // Every connection on a reaches the plain listener on b.
    for user in users {
        assert_eq!(connected(&mut plain), user);
    }
    // The group gets each once: a has no member, so the member on the node with the
    // smaller name (b) gets them all, c's none (a ping round trip shows nothing came).
    for user in users {
        assert_eq!(connected(&mut worker_b), user);
    }
    worker_c.send(b'p', b"");
    assert_eq!(worker_c.reply().0, b'P');
    assert!(
        worker_c.held().iter().all(|(command, _)| *command != b'e'),
        "{:?}",
        worker_c.held()
    );
}

#[test]
fn lists_page_through_every_node() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    // ann on a, bob on a and c, cat on c; each subscribed to "news" on its own node.
    let mut clients = Vec::new();
    for (index, user) in [(0, "ann"), (0, "bob"), (2, "bob"), (2, "cat")] {
        let cookies = Cookies::fresh(user);
        clients.push(WsClient::connect_tcp(&nodes[index].tcp(), &cookies).unwrap());
        let mut control = nodes[1].control();
        control.send(b'j', &fields(&[cookies.token.as_bytes(), b"news"]));
        assert_eq!(control.reply(), (b'#', b"1".to_vec()));
    }
    let mut control = nodes[1].control();
    let names = |page: &wson::control::command::Page| -> Vec<(String, u64)> {
        page.items
            .iter()
            .map(|(name, count)| (String::from_utf8(name.clone()).unwrap(), *count))
            .collect()
    };
    // y, two at a time, across the three nodes: bob's two connections add up.
    let first = control.page(b'y', &[b"", b"2"]);
    assert_eq!(
        names(&first),
        [("ann".to_owned(), 1), ("bob".to_owned(), 2)]
    );
    assert_eq!(first.next_cursor, b"bob");
    let second = control.page(b'y', &[b"bob", b"2"]);
    assert_eq!(names(&second), [("cat".to_owned(), 1)]);
    assert!(second.next_cursor.is_empty());
    // h and v: the topic's subscribers and the topics, everywhere.
    let subscribers = control.page(b'h', &[b"news"]);
    assert_eq!(
        names(&subscribers),
        [
            ("ann".to_owned(), 1),
            ("bob".to_owned(), 2),
            ("cat".to_owned(), 1)
        ]
    );
    let topics = control.page(b'v', &[]);
    assert_eq!(names(&topics), [("news".to_owned(), 4)]);
    // g: bob's tokens on a and c.
    assert_eq!(control.page(b'g', &[b"bob"]).items.len(), 2);
}

#[test]
fn topic_counts_count_each_user_once_across_nodes() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    // ann on a, bob on a and c, cat on c: three users, four connections.
    let mut clients = Vec::new();
    for (index, user) in [(0, "ann"), (0, "bob"), (2, "bob"), (2, "cat")] {
        let cookies = Cookies::fresh(user);
        clients.push(WsClient::connect_tcp(&nodes[index].tcp(), &cookies).unwrap());
        let mut control = nodes[index].control();
        control.send(b'j', &fields(&[cookies.token.as_bytes(), b"news"]));
        assert_eq!(control.reply(), (b'#', b"1".to_vec()));
    }
    // Asked of b, which has none of them.
    let mut control = nodes[1].control();
    control.send(b'H', &fields(&[b"news"]));
    assert_eq!(control.reply(), (b'#', b"3 4".to_vec()));
    control.send(b'H', &fields(&[b"nothing"]));
    assert_eq!(control.reply(), (b'#', b"0 0".to_vec()));
}

/// The refusal of an upgrade of `cookies` to `server`.
fn refusal(server: &Server, cookies: &Cookies) -> HttpResponse {
    match WsClient::connect_tcp(&server.tcp(), cookies) {
        Ok(_) => panic!("admitted, where a refusal was expected"),
        Err(refused) => refused,
    }
}

/// Connects `cookies` to `server` until it is admitted (bounded): a token another node
/// released is free once the release has reached Redis.
fn connect_when_free(server: &Server, cookies: &Cookies) -> WsClient {
    let deadline = Instant::now() + WAIT;
    loop {
        match WsClient::connect_tcp(&server.tcp(), cookies) {
            Ok(client) => return client,
            Err(refused) => {
                assert_eq!(refused.status, 429, "{}", refused.raw);
                assert!(Instant::now() < deadline, "the token never became free");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn refuse_holds_one_connection_per_token_across_nodes() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    let eve = Cookies::fresh("eve");
    let on_a = WsClient::connect_tcp(&nodes[0].tcp(), &eve).unwrap();
    // b and c refuse it as a would: 429, with a Retry-After.
    for node in &nodes[1..] {
        let refused = refusal(node, &eve);
        assert_eq!(refused.status, 429, "{}", refused.raw);
        assert!(refused.header("Retry-After").is_some(), "{}", refused.raw);
    }
    assert_eq!(nodes[0].control().status()["cluster_claims"], 1);
    // Closed on a, the token is free for b; then a refuses it.
    drop(on_a);
    let mut on_b = connect_when_free(&nodes[1], &eve);
    let refused = refusal(&nodes[0], &eve);
    assert_eq!(refused.status, 429, "{}", refused.raw);
    nodes[2].control().direct(b'd', &eve.token, b"found on b");
    assert_eq!(on_b.recv_text(), "found on b");
    // Other tokens of the same user are other connections.
    let _tab = WsClient::connect_tcp(&nodes[2].tcp(), &Cookies::fresh("eve")).unwrap();
    let status = nodes[1].control().status();
    assert_eq!(status["cluster_claims"], 1, "{status}");
    assert_eq!(status["cluster_claims_skipped"], 0, "{status}");
}

#[test]
fn a_killed_nodes_tokens_are_free_once_it_is_gone() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let mut nodes = joined_nodes(&redis);
    let fay = Cookies::fresh("fay");
    let _on_c = WsClient::connect_tcp(&nodes[2].tcp(), &fay).unwrap();
    let refused = refusal(&nodes[0], &fay);
    assert_eq!(refused.status, 429);
    nodes[2].signal(nix::sys::signal::Signal::SIGKILL);
    nodes[2].wait_exit();
    // Its claims count while it might be alive: until three heartbeats have passed.
    wait_nodes(&nodes[0], 2);
    let _on_a = connect_when_free(&nodes[0], &fay);
    let refused = refusal(&nodes[1], &fay);
    assert_eq!(refused.status, 429);
}

#[test]
fn a_stopped_nodes_tokens_are_free_at_once() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = joined_nodes(&redis);
    let gil = Cookies::fresh("gil");
    let _on_c = WsClient::connect_tcp(&nodes[2].tcp(), &gil).unwrap();
    // c stops, and waits for its client's Close while it drains.
    nodes[2].signal(nix::sys::signal::Signal::SIGTERM);
    // Its alive key went when it began to stop: the token is free before the others count
    // it gone (three heartbeats after its last).
    let _on_a = connect_when_free(&nodes[0], &gil);
    assert_eq!(nodes[0].control().status()["cluster_nodes"], 3);
}

#[test]
fn without_redis_tokens_are_admitted_on_each_nodes_knowledge() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let nodes = three_nodes(&redis);
    redis.kill();
    for node in &nodes[..2] {
        wait_redis(node, "down");
    }
    let hal = Cookies::fresh("hal");
    let _on_a = WsClient::connect_tcp(&nodes[0].tcp(), &hal).unwrap();
    // Delivery goes on locally, and so does admission: b cannot ask.
    let _on_b = WsClient::connect_tcp(&nodes[1].tcp(), &hal).unwrap();
    // Each node still refuses a second connection of its own.
    let refused = refusal(&nodes[0], &hal);
    assert_eq!(refused.status, 429);
    assert_eq!(nodes[0].control().status()["cluster_claims_skipped"], 1);
    // Back with Redis, each node claims what it holds (the first keeps it) and new
    // upgrades are checked cluster-wide again.
    redis.run();
    for node in &nodes {
        wait_redis(node, "up");
    }
    let ivan = Cookies::fresh("ivan");
    let _on_c = WsClient::connect_tcp(&nodes[2].tcp(), &ivan).unwrap();
    let refused = refusal(&nodes[0], &ivan);
    assert_eq!(refused.status, 429);
}

/// Nodes a and b with `token_reuse = reuse`, each counting the other alive.
fn two_nodes_reusing_tokens(redis: &Redis, reuse: &str) -> [Server; 2] {
    let node = |name: &str| {
        node_setup(redis, name)
            .set("users.token_reuse", &format!("{reuse:?}"))
            .start()
    };
    let nodes = [node("a"), node("b")];
    for node in &nodes {
        wait_redis(node, "up");
        wait_nodes(node, 2);
    }
    nodes
}

#[test]
fn replace_closes_the_tokens_connection_on_another_node() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = two_nodes_reusing_tokens(&redis, "replace");
    let joy = Cookies::fresh("joy");
    let mut on_a = WsClient::connect_tcp(&nodes[0].tcp(), &joy).unwrap();
    // Node a told the others to close the token's connections as it admitted it: once b
    // has heard (it answers a's next question after), a connection there is the newer one.
    // Two upgrades of one token on two nodes within that moment may close each other
    // (README "Scaling out").
    let mut control = nodes[0].control();
    control.send(b'o', &fields(&[b"joy"]));
    assert_eq!(control.reply(), (b'#', b"1".to_vec()));
    let mut on_b = WsClient::connect_tcp(&nodes[1].tcp(), &joy).unwrap();
    on_a.expect_close(4001);
    nodes[0]
        .control()
        .direct(b'd', &joy.token, b"the newer one");
    assert_eq!(on_b.recv_text(), "the newer one");
}

/// An upgrade request of `cookies` sent to `server` and not yet answered.
fn begin_upgrade(server: &Server, cookies: &Cookies) -> WsClient {
    let stream = TcpStream::connect(server.tcp()).unwrap();
    let mut client = WsClient::over(Box::new(stream));
    client.send_raw(request(&server.tcp(), &cookies.header, Some(ORIGIN), "").as_bytes());
    client
}

#[test]
fn the_authorizer_of_another_node_decides_upgrades() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let authorized = |name: &str| {
        node_setup(&redis, name)
            .set("auth", r#""cookie+authorizer""#)
            .start()
    };
    let nodes = [authorized("a"), authorized("b"), authorized("c")];
    for node in &nodes {
        wait_redis(node, "up");
        wait_nodes(node, 3);
    }
    // The only authorizer, on a.
    let mut authorizer = nodes[0].control();
    authorizer.become_authorizer();
    for node in &nodes[1..] {
        wait_status(node, "cluster_authorizer_nodes", &serde_json::json!(1));
    }
    let kim = Cookies::fresh("kim");
    let mut on_c = begin_upgrade(&nodes[2], &kim);
    let request = authorizer.next_request();
    // The request as c would give its own authorizer.
    assert_eq!(request.request().listener, nodes[2].endpoints[0]);
    assert_eq!(request.request().user, "kim");
    assert_eq!(request.request().token, Some(kim.token));
    authorizer.allow(request.id(), "", &["news"]);
    on_c.await_upgrade().expect("allowed");
    assert_eq!(nodes[2].control().subscriber_count("news"), (1, 1));
    // A deny, with its status and reason.
    let mut on_b = begin_upgrade(&nodes[1], &Cookies::fresh("lee"));
    let request = authorizer.next_request();
    authorizer.deny(request.id(), 403, "not today");
    let denied = on_b.await_upgrade().expect_err("denied");
    assert_eq!(denied.status, 403);
    assert!(on_b.read_body(&denied).contains("not today"));
    // No authorizer anywhere: the fallback, at once.
    drop(authorizer);
    wait_status(&nodes[1], "cluster_authorizer_nodes", &serde_json::json!(0));
    let mut on_b = begin_upgrade(&nodes[1], &Cookies::fresh("max"));
    let fallback = on_b.await_upgrade().expect_err("fallback");
    assert_eq!(fallback.status, 503);
    let body = on_b.read_body(&fallback);
    assert!(
        body.contains("no authorizer connected on any node"),
        "{body}"
    );
}

/// The control protocol's fields encoding.
pub(crate) fn fields(values: &[&[u8]]) -> Vec<u8> {
    wson::control::fields::to_payload(values)
}

/// A Redis of the test's own that speaks TLS only, with a certificate for `localhost`
/// signed by a certificate authority made for the test (`ca.pem` in `dir`); killed on drop.
struct TlsRedis {
    port: u16,
    /// The CA and the server certificate Redis serves (`localhost`, 127.0.0.1).
    pki: crate::common::tls::Pki,
    child: Child,
}

impl TlsRedis {
    /// `None` (the test skips) when redis-server or openssl is missing and skipping is
    /// allowed.
    fn start() -> Option<TlsRedis> {
        let missing = |program: &str| Command::new(program).arg("version").output().is_err();
        if missing("openssl")
            || Command::new(REDIS_SERVER)
                .arg("--version")
                .output()
                .is_err()
        {
            assert!(
                skipping("redis-server or openssl is not installed (tests/install-tools.sh)"),
                "redis-server or openssl is not installed: run tests/install-tools.sh"
            );
            return None;
        }
        let pki = crate::common::tls::Pki::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(pki.path("redis.log")).unwrap();
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(["--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(pki.cert())
            .arg("--tls-key-file")
            .arg(pki.key())
            .arg("--tls-ca-cert-file")
            .arg(pki.ca())
            .args(["--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .current_dir(pki.path(""))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-server");
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(TlsRedis { port, pki, child })
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nodes_join_through_a_redis_over_tls() {
    let Some(redis) = TlsRedis::start() else {
        return;
    };
    let url = format!("\"rediss://localhost:{}\"", redis.port);
    let ca = format!("{:?}", redis.pki.ca().display().to_string());
    let tls_node = |name: &str| {
        Setup::new()
            .set("cluster.redis", &url)
            .set("cluster.redis_ca", &ca)
            .set("cluster.node_id", &format!("{name:?}"))
            .start()
    };
    let nodes = [tls_node("a"), tls_node("b")];
    for node in &nodes {
        wait_redis(node, "up");
        wait_nodes(node, 2);
    }
    let mut on_b = nodes[1].client();
    nodes[0].control().send(b'b', b"over TLS");
    assert_eq!(on_b.recv_text(), "over TLS");
    // Without the test's authority the node does not trust the certificate: it keeps
    // trying, and says why.
    let untrusting = Setup::new()
        .set("cluster.redis", &url)
        .set("cluster.node_id", "\"c\"")
        .start();
    let deadline = Instant::now() + WAIT;
    while !untrusting.log_text().contains("Redis lost") {
        assert!(Instant::now() < deadline, "{}", untrusting.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(untrusting.control().status()["cluster_redis"], "up");
}

#[test]
fn a_shared_token_gets_direct_messages_on_every_node() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let nodes = two_nodes_reusing_tokens(&redis, "share");
    let kim = Cookies::fresh("kim");
    let mut on_a = WsClient::connect_tcp(&nodes[0].tcp(), &kim).unwrap();
    let mut on_b = WsClient::connect_tcp(&nodes[1].tcp(), &kim).unwrap();
    // Delivered on node a, and still sent on: under "share" the token may be anywhere.
    nodes[0].control().direct(b'd', &kim.token, b"to every tab");
    assert_eq!(on_a.recv_text(), "to every tab");
    assert_eq!(on_b.recv_text(), "to every tab");
}
