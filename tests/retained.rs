//! A retained last value per topic for plain clients (issue 15; COMMANDS.md `j J`, README
//! "Last value"): the backend realm broker's retained event, one store for both kinds of
//! clients, reaches a plain connection that joins with `{"get_retained":true}`, first, before
//! any later publication; never twice for a client that resumes the topic.

use serde_json::{Value, json};
use std::process::Command;
use wson::ws::frame::{OpCode, encode_masked_frame};

use crate::common::wamp::RawWamp;
use crate::common::*;
use crate::history::{notice, position_of};

const RETAIN: &[u8] = br#"{"retain":true}"#;
const GET_RETAINED: &[u8] = br#"{"get_retained":true}"#;

fn publish_retained(control: &mut Control, topic: &str, message: &str) {
    control.send_fields(b'x', &[topic.as_bytes(), message.as_bytes(), RETAIN]);
}

fn join(control: &mut Control, command: u8, target: &str, topic: &str, options: &[u8]) -> u64 {
    control.count(command, &[target.as_bytes(), topic.as_bytes(), options])
}

#[test]
fn x_with_retain_then_j_with_get_retained_gets_the_last_value_first_then_live_ones() {
    let server = Setup::new().start();
    let mut control = server.control();
    publish_retained(&mut control, "prices.btc", "100");
    publish_retained(&mut control, "prices.btc", "101");
    // Not retained: the retained value stays 101.
    control.send_fields(b'x', &[b"prices.btc", b"102 (live only)"]);
    let (mut alice, alice_cookies) = server.user_client("alice");
    let (mut bob, bob_cookies) = server.user_client("bob");
    let alice_token = alice_cookies.token_str();
    assert_eq!(
        join(&mut control, b'j', &alice_token, "prices.btc", GET_RETAINED),
        1
    );
    // Without the option, nothing extra.
    assert_eq!(
        join(
            &mut control,
            b'j',
            &bob_cookies.token_str(),
            "prices.btc",
            b""
        ),
        1
    );
    control.send_fields(b'x', &[b"prices.btc", b"103"]);
    assert_eq!(alice.recv_text(), "101", "the retained value first");
    assert_eq!(alice.recv_text(), "103");
    assert_eq!(
        bob.recv_text(),
        "103",
        "no retained value without the option"
    );
    nothing_more(&mut control, &mut bob, &bob_cookies.token);
    // A second j with the option gets it again, as a second WAMP SUBSCRIBE does.
    assert_eq!(
        join(&mut control, b'j', &alice_token, "prices.btc", GET_RETAINED),
        1
    );
    assert_eq!(alice.recv_text(), "101");
    // A topic that retains nothing: the join alone.
    assert_eq!(
        join(&mut control, b'j', &alice_token, "prices.eth", GET_RETAINED),
        1
    );
    nothing_more(&mut control, &mut alice, &alice_cookies.token);
    // Options with unknown names are ignored, as the WAMP broker ignores them.
    assert_eq!(
        join(
            &mut control,
            b'j',
            &bob_cookies.token_str(),
            "prices.btc",
            br#"{"get_retained":true,"x_later":1,"match":"exact"}"#
        ),
        1
    );
    assert_eq!(bob.recv_text(), "101");
}

/// A publication racing the join from another control connection comes after the retained
/// value, never before it.
#[test]
fn a_publication_racing_the_join_never_comes_before_the_retained_value() {
    let server = Setup::new().start();
    let mut control = server.control();
    publish_retained(&mut control, "race", "0");
    let (mut alice, alice_cookies) = server.user_client("alice");
    let control_addr = server.control.clone();
    let racer = std::thread::spawn(move || {
        let mut racer = Control::connect(&control_addr);
        for n in 1..=200 {
            let text = n.to_string();
            racer.send_fields(b'x', &[b"race", text.as_bytes(), RETAIN]);
        }
        racer.send(b'p', b"");
        assert_eq!(racer.reply_text(), "0P");
    });
    assert_eq!(
        join(
            &mut control,
            b'j',
            &alice_cookies.token_str(),
            "race",
            GET_RETAINED
        ),
        1
    );
    racer.join().unwrap();
    control.send_fields(b'x', &[b"race", b"end"]);
    // The retained value (whichever was last at the join), then the publications after it,
    // each once and in order.
    retained_then_the_rest_in_order(&mut alice);
}

/// The same with WAMP publications: the router carries out their plain side after the
/// turn that read them, so a join in that turn carries it out first (else the retained
/// value would come before publications older than it, or twice). The sleep only lets both
/// writes land while wson is stopped; the test holds whether they do or not.
#[test]
fn wamp_publications_racing_the_join_never_come_before_the_retained_value() {
    let server = Setup::new().start();
    let (mut publisher, _) = RawWamp::join(&server, "pub", "realm1");
    publisher.send(&json!([16, 1, {"retain": true, "acknowledge": true}, "race", ["0"]]));
    assert_eq!(publisher.recv()[0], 17, "PUBLISHED");
    let (mut alice, alice_cookies) = server.user_client("alice");
    // Every publication in one write: the router reads them in one turn.
    let mut burst = Vec::new();
    for n in 1..=200 {
        let message = json!([16, n + 1, {"retain": true}, "race", [n.to_string()]]).to_string();
        burst.extend_from_slice(&encode_masked_frame(
            true,
            OpCode::Text,
            message.as_bytes(),
            [1, 2, 3, 4],
        ));
    }
    let mut control = server.control();
    let token = alice_cookies.token_str();
    let subscribe = fields(&[token.as_bytes(), b"race", GET_RETAINED]);
    let mut frame = format!("{}j", subscribe.len()).into_bytes();
    frame.extend_from_slice(&subscribe);
    // wson stopped while both arrive: it reads them in one turn, the burst first.
    server.signal(nix::sys::signal::Signal::SIGSTOP);
    publisher.ws.send_raw(&burst);
    control.send_raw(&frame);
    std::thread::sleep(std::time::Duration::from_millis(50));
    server.signal(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(control.reply(), (b'#', b"1".to_vec()));
    publisher.send(&json!([16, 999, {}, "race", ["end"]]));
    retained_then_the_rest_in_order(&mut alice);
}

#[test]
fn upper_j_with_get_retained_serves_each_connection_that_opens_later() {
    let server = Setup::new().start();
    let mut control = server.control();
    publish_retained(&mut control, "orders.42", r#"{"status":"shipped"}"#);
    assert_eq!(
        join(&mut control, b'J', "alice", "orders.42", GET_RETAINED),
        0
    );
    assert_eq!(join(&mut control, b'J', "bob", "orders.42", b""), 0);
    let (mut first, _) = server.user_client("alice");
    assert_eq!(first.recv_text(), r#"{"status":"shipped"}"#);
    let (mut second, second_cookies) = server.user_client("alice");
    assert_eq!(second.recv_text(), r#"{"status":"shipped"}"#);
    let (mut bob, bob_cookies) = server.user_client("bob");
    control.send_fields(b'x', &[b"orders.42", b"live"]);
    for client in [&mut first, &mut second, &mut bob] {
        assert_eq!(client.recv_text(), "live");
    }
    nothing_more(&mut control, &mut bob, &bob_cookies.token);
    // A J with the option serves the user's open connections at once...
    publish_retained(&mut control, "orders.42", "delivered");
    assert_eq!(first.recv_text(), "delivered");
    assert_eq!(second.recv_text(), "delivered");
    assert_eq!(
        join(&mut control, b'J', "alice", "orders.42", GET_RETAINED),
        2
    );
    assert_eq!(first.recv_text(), "delivered");
    assert_eq!(second.recv_text(), "delivered");
    // ...and a J without it replaces the options: the next connection gets nothing extra.
    assert_eq!(join(&mut control, b'J', "alice", "orders.42", b""), 2);
    let (mut third, third_cookies) = server.user_client("alice");
    nothing_more(&mut control, &mut third, &third_cookies.token);
    nothing_more(&mut control, &mut second, &second_cookies.token);
}

/// One store: a WAMP PUBLISH with `retain` reaches a plain join with `get_retained`, and a
/// control `x` with `retain` a WAMP SUBSCRIBE with `get_retained`.
#[test]
fn wamp_and_plain_share_the_retained_event_of_the_backend_realm() {
    let server = Setup::new().start();
    let (mut publisher, _) = RawWamp::join(&server, "pub", "realm1");
    publisher.send(
        &json!([16, 1, {"retain": true, "acknowledge": true}, "news.price",
                           [], {"price": 42}]),
    );
    assert_eq!(publisher.recv()[0], 17, "PUBLISHED");
    let mut control = server.control();
    let (mut alice, alice_cookies) = server.user_client("alice");
    assert_eq!(
        join(
            &mut control,
            b'j',
            &alice_cookies.token_str(),
            "news.price",
            GET_RETAINED
        ),
        1
    );
    assert_eq!(alice.recv_text(), r#"{"price":42}"#);

    publish_retained(&mut control, "news.price", "43");
    assert_eq!(alice.recv_text(), "43");
    let (mut subscriber, _) = RawWamp::join(&server, "sub", "realm1");
    subscriber.send(&json!([32, 1, {"get_retained": true}, "news.price"]));
    assert_eq!(subscriber.recv()[0], 33, "SUBSCRIBED");
    let event = subscriber.recv();
    assert_eq!(event[0], 36, "{event}");
    assert_eq!(event[3]["retained"], true, "{event}");
    assert_eq!(event[4], json!(["43"]));
    // And back: the plain side reads what the WAMP side retained last.
    publisher.send(&json!([16, 2, {"retain": true}, "news.price", ["44"]]));
    assert_eq!(subscriber.recv()[4], json!(["44"]));
    assert_eq!(alice.recv_text(), "44");
    let (mut bob, bob_cookies) = server.user_client("bob");
    assert_eq!(
        join(
            &mut control,
            b'j',
            &bob_cookies.token_str(),
            "news.price",
            GET_RETAINED
        ),
        1
    );
    assert_eq!(bob.recv_text(), "44");
}

/// With WAMP off there is no broker, so nothing is retained: the option is accepted (a
/// backend need not know the config) and the join is all there is.
#[test]
fn with_wamp_off_get_retained_is_accepted_and_serves_nothing() {
    let server = Setup::new().set("wamp.realms", "[]").start();
    let mut control = server.control();
    publish_retained(&mut control, "t", "kept nowhere");
    let (mut alice, alice_cookies) = server.user_client("alice");
    assert_eq!(
        join(
            &mut control,
            b'j',
            &alice_cookies.token_str(),
            "t",
            GET_RETAINED
        ),
        1
    );
    nothing_more(&mut control, &mut alice, &alice_cookies.token);
}

#[test]
fn bad_subscribe_options_are_0e_and_change_nothing() {
    let server = Setup::new().start();
    let (mut alice, alice_cookies) = server.user_client("alice");
    let token = alice_cookies.token_str();
    let mut control = server.control();
    publish_retained(&mut control, "news", "kept");
    for options in [
        &b"{"[..],
        b"[]",
        b"true",
        br#"{"get_retained":1}"#,
        br#"{"get_retained":"yes"}"#,
        br#"{"match":"prefix"}"#,
    ] {
        let mut control = server.control();
        control.expect_error(b'j', &[token.as_bytes(), b"news", options]);
        let mut control = server.control();
        control.expect_error(b'J', &[b"alice", b"news", options]);
    }
    // Invalid UTF-8 is refused by the parser, as for x's options.
    let mut bad = server.control();
    bad.expect_error(b'J', &[b"alice", b"news", b"\xff"]);
    assert_eq!(control.subscriber_count("news"), (0, 0));
    assert_eq!(control.page(b'v', &[]).items.len(), 0);
    nothing_more(&mut control, &mut alice, &alice_cookies.token);
}

#[test]
fn the_http_api_subscribe_takes_get_retained() {
    let server = crate::http_api::setup().start();
    let api = |method: &str, body: Value| crate::http_api::call(&server, method, body).1;
    let reply = api(
        "publish",
        json!({"topic": "news.weather", "message": "sunny", "options": {"retain": true}}),
    );
    assert_eq!(reply, json!({"result": {}}));
    let (mut alice, alice_cookies) = server.user_client("alice");
    let reply = api(
        "subscribe",
        json!({"topic": "news.weather", "user": "alice", "get_retained": true}),
    );
    assert_eq!(reply, json!({"result": {"connections": 1}}));
    assert_eq!(alice.recv_text(), "sunny");
    let reply = api(
        "subscribe",
        json!({"topic": "news.weather", "user": "alice", "get_retained": false}),
    );
    assert_eq!(reply, json!({"result": {"connections": 1}}));
    let reply = api(
        "subscribe",
        json!({"topic": "news.weather", "user": "alice", "get_retained": "yes"}),
    );
    assert_eq!(reply["error"]["code"], "bad_param", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("get_retained"),
        "{reply}"
    );
    // unsubscribe takes no such param.
    let reply = api(
        "unsubscribe",
        json!({"topic": "news.weather", "user": "alice", "get_retained": true}),
    );
    assert!(reply["error"].is_object(), "{reply}");
    let mut control = server.control();
    nothing_more(&mut control, &mut alice, &alice_cookies.token);
}

// --- history: a resuming client gets its replay, not the retained value -------------------

fn resuming(server: &Server, cookies: &Cookies, value: &str) -> WsClient {
    crate::history::resuming_as(server, cookies, value).unwrap()
}

#[test]
fn a_resuming_client_gets_its_replay_and_a_positioned_one_the_retained_value_alone() {
    let server = Setup::new()
        .set("history.prefixes", r#"["news."]"#)
        .set("history.size", "100")
        .start();
    let mut control = server.control();
    assert_eq!(
        join(&mut control, b'J', "alice", "news.live", GET_RETAINED),
        0
    );
    let at = |control: &mut Control, message: &[u8]| {
        position_of(control.ask(b'Y', &[b"news.live", message, b"", RETAIN]))
    };
    let first = at(&mut control, b"m1");
    at(&mut control, b"m2");

    // Resuming after m1: the replay of m2 with its position, not m2 again as retained.
    let cookies = Cookies::fresh("alice");
    let mut resumed = resuming(
        &server,
        &cookies,
        &format!("news.live@{}:{}", first.epoch, first.offset),
    );
    let value = notice(&mut resumed);
    assert_eq!(
        (value["wson"].clone(), value["offset"].clone()),
        (json!("position"), json!(2))
    );
    assert_eq!(resumed.recv_text(), "m2");
    nothing_more(&mut control, &mut resumed, &cookies.token);

    // Positioned (resume given) without an item for the topic: the retained value as a
    // plain message, no position notice before it; then live ones with theirs.
    let cookies = Cookies::fresh("alice");
    let mut positioned = resuming(&server, &cookies, "");
    assert_eq!(positioned.recv_text(), "m2");
    at(&mut control, b"m3");
    for client in [&mut resumed, &mut positioned] {
        assert_eq!(notice(client)["offset"], 3);
        assert_eq!(client.recv_text(), "m3");
    }
    nothing_more(&mut control, &mut positioned, &cookies.token);
}

/// With `[cluster]`, a retained publication reaches every node's broker, and a join on any
/// node reads its own node's: `J` on node a serves a connection opening on node b, `j` on
/// node a a token connected on node b.
#[test]
fn in_a_cluster_each_node_serves_its_own_brokers_retained_event() {
    use crate::cluster::{Redis, node, wait_nodes, wait_redis};
    let Some(redis) = Redis::start() else {
        return;
    };
    let a = node(&redis, "a");
    let b = node(&redis, "b");
    for server in [&a, &b] {
        wait_redis(server, "up");
        wait_nodes(server, 2);
    }
    let mut on_a = a.control();
    publish_retained(&mut on_a, "prices.eur", "1.08");
    // The J goes to node b after the publication (one Redis connection, in order), and its
    // answer waits for node b's.
    assert_eq!(
        join(&mut on_a, b'J', "alice", "prices.eur", GET_RETAINED),
        0
    );
    let (mut alice, _) = b.user_client("alice");
    assert_eq!(alice.recv_text(), "1.08");
    let (mut bob, bob_cookies) = b.user_client("bob");
    assert_eq!(
        join(
            &mut on_a,
            b'j',
            &bob_cookies.token_str(),
            "prices.eur",
            GET_RETAINED
        ),
        1
    );
    assert_eq!(bob.recv_text(), "1.08");
    publish_retained(&mut on_a, "prices.eur", "1.09");
    assert_eq!(alice.recv_text(), "1.09");
    assert_eq!(bob.recv_text(), "1.09");
}

/// README's "Last value" PHP block, run with php-cli and the PHP kit: the connection open
/// when it runs, and one that opens after, each get the last value first.
#[test]
fn readme_php_publishes_a_last_value_and_subscribes_a_user_with_it() {
    let Some(php) = php() else { return };
    let server = Setup::new().start();
    let (mut open, _) = server.user_client("alice");
    let folder = tempfile::tempdir().unwrap();
    let kit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/php/Wson.php");
    std::fs::copy(kit, folder.path().join("Wson.php")).unwrap();
    let conf = format!("{}/", server.path("").display()).replace("//", "/");
    let block = crate::readme::readme_php("retained").replace("/path/to/wson/conf/", &conf);
    let script = format!("<?php\n$user = 'alice';\n{block}\necho 'ok';\n");
    std::fs::write(folder.path().join("page.php"), script).unwrap();
    let output = Command::new(php)
        .arg(folder.path().join("page.php"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout == "ok",
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Not subscribed when it was published: the retained value the J sent, once.
    assert_eq!(open.recv_text(), r#"{"price":97120}"#);
    let (mut later, later_cookies) = server.user_client("alice");
    assert_eq!(later.recv_text(), r#"{"price":97120}"#);
    nothing_more(&mut server.control(), &mut later, &later_cookies.token);
}

/// The retained value first (the publication numbered n that was last at the join), then
/// n+1 up to 200, each once and in order, until "end".
fn retained_then_the_rest_in_order(client: &mut WsClient) {
    let first: u64 = client.recv_text().parse().unwrap();
    let mut expected = first + 1;
    loop {
        let text = client.recv_text();
        if text == "end" {
            break;
        }
        assert_eq!(text, expected.to_string(), "in order after {first}");
        expected += 1;
    }
    assert_eq!(expected, 201);
}
