//! The WAMP router inside wson, seen from the hub's side: the subprotocol a WAMP client gets,
//! the backend's WAMP session over the control socket (`V` frames, COMMANDS.md), the one
//! namespace of plain topics and the backend realm, plain commands skipping WAMP sessions,
//! and README's PHP callee. (The router's rules are pinned with real WAMP clients and against
//! Crossbar in `wamp_clients.rs` and `wamp_parity.rs`.)

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use wson::ws::frame::OpCode;

use crate::common::*;

/// A WAMP client speaking `wamp.2.json` over the tests' raw WebSocket client.
struct Wamp {
    ws: WsClient,
    welcome: Value,
}

impl Wamp {
    /// Connects with `cookies`, offering `wamp.2.json`, and joins `realm1`.
    fn join(server: &Server, cookies: &Cookies) -> Wamp {
        let mut ws = WsClient::accepted_offering(server, &cookies.header, "wamp.2.json");
        assert_eq!(ws.chosen_protocol(), Some("wamp.2.json"));
        ws.send_text(
            r#"[1,"realm1",{"roles":{"subscriber":{},"publisher":{},"caller":{},"callee":{}}}]"#,
        );
        let welcome: Value = serde_json::from_str(&ws.recv_text()).unwrap();
        assert_eq!(welcome[0], 2, "WELCOME expected, got {welcome}");
        Wamp { ws, welcome }
    }

    fn send(&mut self, message: Value) {
        self.ws.send_text(&message.to_string());
    }

    fn recv(&mut self) -> Value {
        let frame = self.ws.recv_data();
        assert_eq!(frame.opcode, OpCode::Text, "wamp.2.json uses text frames");
        serde_json::from_str(&frame.text()).unwrap()
    }

    /// SUBSCRIBE and its SUBSCRIBED; returns the subscription id.
    fn subscribe(&mut self, request: u64, options: Value, topic: &str) -> u64 {
        self.send(json!([32, request, options, topic]));
        let reply = self.recv();
        assert_eq!(reply[0], 33, "SUBSCRIBED expected, got {reply}");
        reply[2].as_u64().unwrap()
    }
}

#[test]
fn a_wamp_client_gets_its_subprotocol_and_a_welcome_naming_its_cookie_user() {
    let server = Setup::new().start();
    let wamp = Wamp::join(&server, &Cookies::fresh("alice"));
    let details = &wamp.welcome[2];
    assert!(wamp.welcome[1].as_u64().unwrap() >= 1);
    assert_eq!(details["authid"], "alice");
    assert_eq!(details["authrole"], "user");
    assert_eq!(details["authmethod"], "cookie");
    assert!(details["roles"]["broker"].is_object(), "{details}");
    assert!(details["roles"]["dealer"].is_object(), "{details}");
}

#[test]
fn the_first_wamp_serializer_the_client_offers_is_chosen() {
    let server = Setup::new().start();
    let ws = WsClient::accepted_offering(
        &server,
        &Cookies::fresh("alice").header,
        "chat, wamp.2.msgpack, wamp.2.json",
    );
    let protocol = ws.chosen_protocol().map(str::to_owned);
    assert_eq!(protocol.as_deref(), Some("wamp.2.msgpack"));
}

#[test]
fn with_no_realm_wamp_is_off_and_the_client_is_plain() {
    let server = Setup::new().set("wamp.realms", "[]").start();
    let mut ws =
        WsClient::accepted_offering(&server, &Cookies::fresh("alice").header, "wamp.2.json");
    assert_eq!(ws.chosen_protocol(), None);
    let mut control = server.control();
    control.send(b'b', b"plain");
    assert_eq!(ws.recv_text(), "plain");
    // And the backend's WAMP session is refused with 0E.
    control.send_v(&json!([16, 1, {}, "news", []]));
    assert_eq!(control.reply_text(), "0E");
}

#[test]
fn a_control_publish_reaches_wamp_subscribers_with_its_payload_as_arguments() {
    let server = Setup::new().start();
    let mut wamp = Wamp::join(&server, &Cookies::fresh("alice"));
    let exact = wamp.subscribe(1, json!({}), "news.sport");
    let mut control = server.control();
    for (command, message) in [
        (b'x', &b"[1,\"two\",{\"three\":3}]"[..]),
        (b'x', b"{\"score\":\"2-1\"}"),
        (b'x', b"Goal!"),
        (b'x', b"[not json"),
        (b'X', b"\x00\xff"),
    ] {
        let mut payload = b"10:news.sport".to_vec();
        payload.extend_from_slice(format!("{}:", message.len()).as_bytes());
        payload.extend_from_slice(message);
        control.send(command, &payload);
    }
    let events: Vec<Value> = (0..5).map(|_| wamp.recv()).collect();
    for event in &events {
        assert_eq!(event[0], 36, "{event}");
        assert_eq!(event[1], exact);
    }
    assert_eq!(events[0][4], json!([1, "two", {"three": 3}]));
    assert_eq!(events[0].get(5), None);
    assert_eq!(events[1][4], json!([]));
    assert_eq!(events[1][5], json!({"score": "2-1"}));
    assert_eq!(events[2][4], json!(["Goal!"]));
    assert_eq!(events[3][4], json!(["[not json"]));
    // A binary value in JSON: a NUL, then base64.
    assert_eq!(events[4][4], json!(["\u{0}AP8="]));
}

#[test]
fn a_wamp_publish_reaches_plain_subscribers_and_event_listeners() {
    let server = Setup::new().start();
    let bob = Cookies::fresh("bob");
    let mut plain = WsClient::connect_tcp(&server.tcp(), &bob).unwrap();
    let mut control = server.control();
    control.send(b'e', b"0:7:publish");
    control.send(
        b'j',
        format!("32:{}10:news.sport", bob.token_str()).as_bytes(),
    );
    assert_eq!(control.reply_text(), "1#1");
    let mut alice = Wamp::join(&server, &Cookies::fresh("alice"));
    for (request, payload) in [
        (1, json!([["Goal!"]])),
        (2, json!([[1, 2]])),
        (3, json!([[], {"score": "2-1"}])),
    ] {
        let mut message = json!([16, request, {}, "news.sport"]);
        for part in payload.as_array().unwrap() {
            message.as_array_mut().unwrap().push(part.clone());
        }
        alice.send(message);
    }
    assert_eq!(plain.recv_text(), "Goal!");
    assert_eq!(plain.recv_text(), "[1,2]");
    assert_eq!(plain.recv_text(), r#"{"score":"2-1"}"#);
    let (_, event) = control.next_frame(|command| command == b'e').unwrap();
    assert_eq!(
        wson::control::event::Event::parse(&event),
        Some(wson::control::event::Event::Publish {
            topic: "news.sport",
            user: "alice",
            binary: false,
            payload: b"Goal!",
        })
    );
}

#[test]
fn plain_commands_skip_wamp_sessions() {
    let server = Setup::new().start();
    let alice = Cookies::fresh("alice");
    let mut wamp = Wamp::join(&server, &alice);
    let mut plain = WsClient::connect_tcp(&server.tcp(), &Cookies::fresh("bob")).unwrap();
    wamp.subscribe(1, json!({}), "news.sport");
    let mut control = server.control();
    control.send(b'b', b"to plain clients");
    control.direct(b'c', &alice.token, b"hi");
    assert_eq!(control.reply_text(), format!("32N{}", alice.token_str()));
    control.send(b'w', b"5:alice2:hi");
    assert_eq!(control.reply_text(), "1#0");
    control.send(b'j', format!("32:{}4:chat", alice.token_str()).as_bytes());
    assert_eq!(control.reply_text(), "1#0");
    assert_eq!(plain.recv_text(), "to plain clients");
    // The first thing the WAMP session gets is the EVENT of this publication.
    control.send(b'x', b"10:news.sport5:Goal!");
    let event = wamp.recv();
    assert_eq!(
        (event[0].clone(), event[4].clone()),
        (json!(36), json!(["Goal!"]))
    );
    // It is still a connection of alice's.
    control.send(b'o', b"5:alice");
    assert_eq!(control.reply_text(), "1#1");
}

#[test]
fn the_backend_registers_a_procedure_and_serves_a_browser_call() {
    let server = Setup::new().start();
    let mut control = server.control();
    control.send_v(&json!([64, 1, {}, "com.example.add"]));
    let registered = control.next_v();
    assert_eq!(registered[0], 65, "{registered}");
    assert_eq!(registered[1], 1);
    let mut wamp = Wamp::join(&server, &Cookies::fresh("alice"));
    wamp.send(
        json!([48, 7, {"disclose_me": true, "receive_progress": true}, "com.example.add", [2, 3]]),
    );
    let invocation = control.next_v();
    assert_eq!(invocation[0], 68, "{invocation}");
    assert_eq!(invocation[2], registered[2]);
    assert_eq!(invocation[3]["caller_authid"], "alice");
    assert_eq!(invocation[4], json!([2, 3]));
    let request = invocation[1].clone();
    control.send_v(&json!([70, request, {"progress": true}, ["half"]]));
    control.send_v(&json!([70, request, {}, [5], {"note": "sum"}]));
    assert_eq!(wamp.recv(), json!([50, 7, {"progress": true}, ["half"]]));
    assert_eq!(wamp.recv(), json!([50, 7, {}, [5], {"note": "sum"}]));
    // The backend calls a procedure a WAMP client registered.
    wamp.send(json!([64, 8, {}, "com.example.upper"]));
    assert_eq!(wamp.recv()[0], 65);
    control.send_v(&json!([48, 2, {}, "com.example.upper", ["shout"]]));
    let invocation = wamp.recv();
    assert_eq!(invocation[0], 68);
    assert_eq!(invocation[4], json!(["shout"]));
    wamp.send(json!([70, invocation[1], {}, ["SHOUT"]]));
    assert_eq!(control.next_v(), json!([50, 2, {}, ["SHOUT"]]));
    // The backend leaving ends its registration: the next call finds no procedure.
    drop(control);
    let mut probe = server.control();
    probe.send_v(&json!([48, 3, {}, "com.example.add", [1, 1]]));
    let error = probe.next_v();
    assert_eq!(
        error.as_array().unwrap()[..5],
        json!([8, 48, 3, {}, "wamp.error.no_such_procedure"])
            .as_array()
            .unwrap()[..]
    );
}

#[test]
fn a_v_frame_that_is_no_wamp_message_is_0e() {
    let server = Setup::new().start();
    for bad in [&b"42"[..], b"[16,", b"[99,1]", b"{}"] {
        let mut control = server.control();
        control.send(b'V', bad);
        assert_eq!(
            control.reply_text(),
            "0E",
            "{}",
            String::from_utf8_lossy(bad)
        );
        assert!(control.try_reply().is_none(), "closed after 0E");
    }
}

#[test]
fn the_status_reply_counts_wamp_sessions_subscriptions_and_registrations() {
    let server = Setup::new().start();
    let mut wamp = Wamp::join(&server, &Cookies::fresh("alice"));
    wamp.subscribe(1, json!({}), "news.sport");
    wamp.send(json!([64, 2, {}, "com.example.add"]));
    assert_eq!(wamp.recv()[0], 65);
    let mut control = server.control();
    control.send(b't', b"");
    let (_, json) = control.reply();
    let status: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(status["wamp_sessions"], 1);
    assert_eq!(status["wamp_subscriptions"], 1);
    assert_eq!(status["wamp_registrations"], 1);
    assert_eq!(status["wamp_pending_calls"], 0);
}

/// A process killed and reaped on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// README's PHP: publishes, then serves `com.example.add` on the control socket.
#[test]
fn readme_php_publishes_and_serves_a_procedure_to_a_wamp_caller() {
    let server = Setup::new().start();
    let bob = Cookies::fresh("bob");
    let mut plain = WsClient::connect_tcp(&server.tcp(), &bob).unwrap();
    let mut control = server.control();
    control.send(
        b'j',
        format!("32:{}10:news.sport", bob.token_str()).as_bytes(),
    );
    assert_eq!(control.reply_text(), "1#1");
    // alice hears (meta API) when the procedure is registered, before she calls it.
    let mut alice = Wamp::join(&server, &Cookies::fresh("alice"));
    alice.subscribe(1, json!({}), "wamp.registration.on_register");
    let script = server.path("wamp.php");
    let conf = format!("{}/", script.parent().unwrap().display());
    let block = crate::readme::readme_php("wamp").replace("/path/to/wson/conf/", &conf);
    std::fs::write(&script, format!("<?php\n{block}")).unwrap();
    let _php = Running(
        Command::new("php")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("php"),
    );
    // The PUBLISH reaches bob's plain connection, the REGISTER lets alice call.
    assert_eq!(plain.recv_text(), "Goal!");
    let on_register = alice.recv();
    assert_eq!(on_register[0], 36, "{on_register}");
    alice.send(json!([48, 1, {}, "com.example.add", [2, 3]]));
    assert_eq!(alice.recv(), json!([50, 1, {}, [5]]));
    alice.send(json!([48, 2, {}, "com.example.add", [20, 22]]));
    assert_eq!(alice.recv(), json!([50, 2, {}, [42]]));
}

/// A Python script of a few lines publishes and calls through the control socket.
#[test]
fn a_python_script_publishes_and_calls_through_the_control_socket() {
    let server = Setup::new().start();
    let mut callee = Wamp::join(&server, &Cookies::fresh("worker"));
    callee.send(json!([64, 1, {}, "com.example.add"]));
    assert_eq!(callee.recv()[0], 65);
    let mut listener = Wamp::join(&server, &Cookies::fresh("alice"));
    listener.subscribe(1, json!({}), "news.sport");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/py_wamp_control.py");
    let mut python = Command::new("python3")
        .arg(&script)
        .arg(server.path("control.sock"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let event = listener.recv();
    assert_eq!(event[4], json!(["from python"]));
    let invocation = callee.recv();
    assert_eq!(invocation[4], json!([2, 3]));
    callee.send(json!([70, invocation[1], {}, [5]]));
    python.stdin.take().unwrap().write_all(b"\n").unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "5");
}

#[test]
fn a_stopping_server_says_goodbye_to_wamp_sessions_before_closing() {
    let mut server = Setup::new().start();
    let mut wamp = Wamp::join(&server, &Cookies::fresh("alice"));
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(wamp.recv(), json!([6, {}, "wamp.close.system_shutdown"]));
    wamp.ws.expect_close(1001);
    wamp.ws.send_close(1001, "");
    server.wait_exit();
}

#[test]
fn a_burst_of_publications_reaches_each_subscriber_whole_and_in_order() {
    let server = Setup::new().start();
    let mut exact = Wamp::join(&server, &Cookies::fresh("bob"));
    let exact_id = exact.subscribe(1, json!({}), "news.sport");
    let mut prefix = Wamp::join(&server, &Cookies::fresh("carol"));
    let prefix_id = prefix.subscribe(1, json!({"match": "prefix"}), "news");
    let mut publisher = Wamp::join(&server, &Cookies::fresh("alice"));
    // One write: the router answers with EVENT after EVENT, batched per subscription.
    let mut burst = Vec::new();
    for n in 0..300 {
        let topic = if n % 3 == 0 {
            "news.weather"
        } else {
            "news.sport"
        };
        let message = json!([16, n + 1, {}, topic, [n]]).to_string();
        burst.extend(wson::ws::frame::encode_masked_frame(
            true,
            OpCode::Text,
            message.as_bytes(),
            [1, 2, 3, 4],
        ));
    }
    publisher.ws.send_raw(&burst);
    for n in (0..300).filter(|n| n % 3 != 0) {
        let event = exact.recv();
        assert_eq!(
            (event[1].as_u64(), event[4].clone()),
            (Some(exact_id), json!([n]))
        );
    }
    for n in 0..300 {
        let event = prefix.recv();
        assert_eq!(
            (event[1].as_u64(), event[4].clone()),
            (Some(prefix_id), json!([n]))
        );
    }
}

#[test]
fn a_wamp_subscriber_that_does_not_read_is_dropped_as_a_slow_consumer() {
    let server = Setup::new()
        .set("max_control_frame", "8192")
        .set("max_outbound_buffer", "1048576")
        .start();
    let mut slow = Wamp::join(&server, &Cookies::fresh("slow"));
    slow.subscribe(1, json!({}), "news.sport");
    let mut reader = Wamp::join(&server, &Cookies::fresh("reader"));
    reader.subscribe(1, json!({}), "news.sport");
    let mut control = server.control();
    // Batches of 100 publications of 4 KiB, each read by the reader before the next: 16 MB
    // in all, far past what the slow client's queue and socket buffers hold, while the
    // reader's queue never holds more than a batch. The reader gets every one, in order.
    let text = "x".repeat(4096);
    for batch in 0..40 {
        let mut frames = Vec::new();
        for n in batch * 100..(batch + 1) * 100 {
            let message = format!("{n:05}{text}");
            let payload = format!("10:news.sport{}:{message}", message.len());
            wson::control::codec::encode(b'x', payload.as_bytes(), &mut frames);
        }
        control.send_raw(&frames);
        for n in batch * 100..(batch + 1) * 100 {
            let event = reader.recv();
            let argument = event[4][0].as_str().unwrap().to_owned();
            assert_eq!(&argument[..5], format!("{n:05}"));
        }
    }
    control.send(b't', b"");
    let (_, json) = control.reply();
    let status: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(status["slow_consumers_dropped"], 1, "{status}");
    assert_eq!(status["wamp_sessions"], 1, "{status}");
    // The slow client finds its stream cut (possibly mid-frame) after part of the 16 MB.
    let mut received = 0_usize;
    let mut chunk = vec![0; 65536];
    loop {
        match std::io::Read::read(&mut slow.ws.stream, &mut chunk) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read failed: {e}"),
        }
    }
    assert!(
        received < 8_000_000,
        "{received} bytes reached the slow client"
    );
}

/// `x` with WAMP PUBLISH options (COMMANDS.md): they choose among the WAMP subscribers,
/// plain subscribers get every publication, `retain` keeps it for subscribers to come, and
/// options that are no PUBLISH options are `0E`. The HTTP API's `publish` passes them on.
#[test]
fn control_and_http_publications_take_wamp_publish_options() {
    let server = crate::http_api::setup().start();
    let mut alice = Wamp::join(&server, &Cookies::fresh("alice"));
    let mut bob = Wamp::join(&server, &Cookies::fresh("bob"));
    let alice_sub = alice.subscribe(1, json!({}), "news.sport");
    let bob_sub = bob.subscribe(1, json!({}), "news.sport");
    let carol = Cookies::fresh("carol");
    let mut carol_ws = WsClient::connect_tcp(&server.tcp(), &carol).unwrap();
    let mut control = server.control();
    assert_eq!(control.count(b'J', &[b"carol", b"news.sport"]), 1);

    let options = br#"{"exclude_authid":["alice"]}"#;
    control.send_fields(b'x', &[b"news.sport", b"not for alice", options]);
    control.send_fields(b'x', &[b"news.sport", b"for everyone"]);
    let event = bob.recv();
    assert_eq!(
        (event[0].clone(), event[1].clone()),
        (json!(36), json!(bob_sub))
    );
    assert_eq!(event[4], json!(["not for alice"]));
    assert_eq!(bob.recv()[4], json!(["for everyone"]));
    assert_eq!(carol_ws.recv_text(), "not for alice");
    assert_eq!(carol_ws.recv_text(), "for everyone");
    let event = alice.recv();
    assert_eq!(event[1], json!(alice_sub));
    assert_eq!(event[4], json!(["for everyone"]), "alice was excluded");

    // Retained for a subscriber that comes later.
    control.send_fields(b'x', &[b"news.weather", b"sunny", br#"{"retain":true}"#]);
    assert_eq!(
        control.count(b'o', &[b"carol"]),
        1,
        "the retained x went first"
    );
    let mut late = Wamp::join(&server, &Cookies::fresh("dave"));
    late.subscribe(1, json!({"get_retained": true}), "news.weather");
    let event = late.recv();
    assert_eq!(event[0], 36, "{event}");
    assert_eq!(event[4], json!(["sunny"]));
    assert_eq!(event[3]["retained"], json!(true), "{event}");

    // The HTTP API: only alice is eligible.
    let body = json!({"topic": "news.sport", "message": "only alice",
                      "options": {"eligible_authid": ["alice"]}});
    let (_, reply) = crate::http_api::call(&server, "publish", body);
    assert_eq!(reply, json!({"result": {}}));
    assert_eq!(alice.recv()[4], json!(["only alice"]));
    assert_eq!(carol_ws.recv_text(), "only alice");
    control.send_fields(b'x', &[b"news.sport", b"after"]);
    assert_eq!(bob.recv()[4], json!(["after"]), "bob was not eligible");

    // Not PUBLISH options: 0E, and the connection closes.
    for bad in [
        &b"[1]"[..],
        br#"{"retain":"yes"}"#,
        br#"{"exclude":"alice"}"#,
        b"{",
    ] {
        let mut control = server.control();
        control.send_fields(b'x', &[b"news.sport", b"m", bad]);
        assert_eq!(
            control.reply_text(),
            "0E",
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let body = json!({"topic": "news.sport", "message": "m", "options": {"retain": 1}});
    let (_, reply) = crate::http_api::call(&server, "publish", body);
    assert_eq!(reply["error"]["code"], "bad_param", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("options")),
        "{reply}"
    );
}
