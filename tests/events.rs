//! Events (issue 10, section 4; COMMANDS.md `e` and Events): control connections that
//! listen hear connected, disconnected (with why), client messages (`client_messages =
//! "forward"`), subscribed/unsubscribed and join/leave; kinds filter them, a group shares
//! them one member each, and a listener that falls behind is dropped without holding up
//! anyone. Scenarios run over a Unix and a TCP control endpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use serde_json::{Value, json};
use wson::control::event::{DisconnectCause, Event};
use wson::token::Token;
use wson::ws::frame::OpCode;

use crate::common::*;

over_both_control_kinds!(
    two_listeners_each_get_connected_with_every_field,
    client_messages_are_forwarded_as_message_events_text_and_binary,
    subscriptions_give_subscribed_unsubscribed_join_and_leave,
    disconnected_says_code_reason_and_why_client_kicked_replaced,
    disconnected_says_why_protocol_and_slow,
    disconnected_says_why_expired_and_timeout,
    a_listener_with_kinds_gets_only_those_kinds,
    bad_kinds_and_groups_get_0e,
    a_group_of_three_shares_client_messages_each_to_exactly_one,
    a_slow_listener_is_dropped_while_clients_and_other_listeners_go_on,
    php_worker_group_consumes_python_messages_without_duplicates,
);

fn forward(setup: Setup) -> Setup {
    setup.set("client_messages", r#""forward""#)
}

/// Upgrades over `stream` with this request-target, Origin and extra headers.
fn upgrade_at(
    stream: Box<dyn Duplex>,
    host: &str,
    cookies: &Cookies,
    target: &str,
    origin: Option<&str>,
    extra: &str,
) -> WsClient {
    let mut client = WsClient::over(stream);
    let request = request(host, &cookies.header, origin, extra).replacen(
        "GET /ws ",
        &format!("GET {target} "),
        1,
    );
    client.upgrade(&request).expect("101");
    client
}

fn two_listeners_each_get_connected_with_every_field(setup: Setup) {
    let server = setup.set("origins", r#"["*"]"#).start();
    let mut listeners = [server.control(), server.control()];
    for listener in &mut listeners {
        listener.listen("", "");
    }
    // Over TCP, with an Origin, a query and a subprotocol offered (wson chooses none).
    let cookies = Cookies::fresh("alice \u{e9}");
    let stream = TcpStream::connect(server.tcp()).unwrap();
    let remote = stream.local_addr().unwrap().to_string();
    let tcp_client = upgrade_at(
        Box::new(stream),
        &server.tcp(),
        &cookies,
        "/ws?room=1&x=%20",
        Some("https://example.com"),
        "Sec-WebSocket-Protocol: chat\r\n",
    );
    assert_eq!(
        tcp_client
            .response
            .as_ref()
            .unwrap()
            .header("Sec-WebSocket-Protocol"),
        None
    );
    // Over the Unix listener, without an Origin.
    let unix_cookies = Cookies::fresh("bob");
    let unix_client = upgrade_at(
        Box::new(UnixStream::connect(server.unix()).unwrap()),
        "localhost",
        &unix_cookies,
        "/",
        None,
        "",
    );
    let tcp_endpoint = server.endpoints[0].clone();
    let unix_endpoint = server.endpoints[1].clone();
    assert!(
        tcp_endpoint.starts_with("tcp://127.0.0.1:"),
        "{tcp_endpoint}"
    );
    for listener in &mut listeners {
        listener.expect_event(Event::Connected {
            token: cookies.token,
            user: "alice \u{e9}",
            listener: &tcp_endpoint,
            remote: &remote,
            origin: "https://example.com",
            path: "/ws?room=1&x=%20",
            subprotocol: "",
        });
        listener.expect_event(Event::Connected {
            token: unix_cookies.token,
            user: "bob",
            listener: &unix_endpoint,
            remote: "unix",
            origin: "",
            path: "/",
            subprotocol: "",
        });
    }
    drop((tcp_client, unix_client));
}

fn client_messages_are_forwarded_as_message_events_text_and_binary(setup: Setup) {
    let server = forward(setup).start();
    let mut listeners = [server.control(), server.control()];
    for listener in &mut listeners {
        listener.listen("", "message");
    }
    let (mut alice, cookies) = server.user_client("alice");
    alice.send_text("{\"typing\":true}");
    alice.send(true, OpCode::Binary, b"\x00\xff");
    alice.send_text("");
    // A fragmented message is one event once complete, with a ping between its fragments.
    alice.send(false, OpCode::Text, "caf".as_bytes());
    alice.send(true, OpCode::Ping, b"p");
    alice.send(true, OpCode::Continuation, "\u{e9}!".as_bytes());
    let big = vec![7u8; 70_000];
    alice.send(true, OpCode::Binary, &big);
    let expected: [(bool, &[u8]); 5] = [
        (false, b"{\"typing\":true}"),
        (true, b"\x00\xff"),
        (false, b""),
        (false, "caf\u{e9}!".as_bytes()),
        (true, &big),
    ];
    for listener in &mut listeners {
        for (binary, payload) in expected {
            listener.expect_event(Event::Message {
                token: cookies.token,
                user: "alice",
                binary,
                payload,
            });
        }
    }
    // Forwarded, not echoed: the client only got the pong.
    assert_eq!(alice.recv().opcode, OpCode::Pong);
    let mut control = server.control();
    nothing_more(&mut control, &mut alice, &cookies.token);
    // The wire form of COMMANDS.md's example.
    alice.send(true, OpCode::Binary, b"\x00\xff");
    let (_, payload) = listeners[0].next_frame(|command| command == b'e').unwrap();
    let mut wire = format!("{}e", payload.len()).into_bytes();
    wire.extend_from_slice(&payload);
    let mut expected_wire = b"63e7:message32:".to_vec();
    expected_wire.extend_from_slice(cookies.token.as_bytes());
    expected_wire.extend_from_slice(b"5:alice6:binary2:\x00\xff");
    assert_eq!(wire, expected_wire);
}

fn subscriptions_give_subscribed_unsubscribed_join_and_leave(setup: Setup) {
    let server = setup.start();
    let (first, first_cookies) = server.user_client("alice");
    let (_second, second_cookies) = server.user_client("alice");
    let mut listener = server.control();
    listener.listen("", "subscribed,unsubscribed,join,leave,disconnected");
    let mut control = server.control();
    let (t1, t2) = (first_cookies.token, second_cookies.token);
    let t1_text = first_cookies.token_str();

    assert_eq!(control.count(b'j', &[t1_text.as_bytes(), b"news"]), 1);
    listener.expect_event(Event::Subscribed {
        token: t1,
        user: "alice",
        topic: "news",
    });
    listener.expect_event(Event::Join {
        user: "alice",
        topic: "news",
    });
    assert_eq!(control.count(b'J', &[b"alice", b"news"]), 2);
    listener.expect_event(Event::Subscribed {
        token: t2,
        user: "alice",
        topic: "news",
    });
    assert_eq!(control.count(b'r', &[t1_text.as_bytes(), b"news"]), 1);
    listener.expect_event(Event::Unsubscribed {
        token: t1,
        user: "alice",
        topic: "news",
    });
    assert_eq!(control.count(b'R', &[b"alice", b"news"]), 1);
    listener.expect_event(Event::Unsubscribed {
        token: t2,
        user: "alice",
        topic: "news",
    });
    listener.expect_event(Event::Leave {
        user: "alice",
        topic: "news",
    });
    // A disconnect gives no `unsubscribed`, but a `leave` when it was the user's last
    // connection in the topic, before its `disconnected`.
    assert_eq!(control.count(b'j', &[t1_text.as_bytes(), b"chat"]), 1);
    listener.expect_event(Event::Subscribed {
        token: t1,
        user: "alice",
        topic: "chat",
    });
    listener.expect_event(Event::Join {
        user: "alice",
        topic: "chat",
    });
    first.leave();
    listener.expect_event(Event::Leave {
        user: "alice",
        topic: "chat",
    });
    listener.expect_event(Event::Disconnected {
        token: t1,
        user: "alice",
        code: 1000,
        reason: "",
        why: DisconnectCause::Client,
    });
    // A user subscription of an offline user: join when its connection opens.
    assert_eq!(control.count(b'J', &[b"carol", b"alerts"]), 0);
    let (_carol, carol_cookies) = server.user_client("carol");
    listener.expect_event(Event::Subscribed {
        token: carol_cookies.token,
        user: "carol",
        topic: "alerts",
    });
    listener.expect_event(Event::Join {
        user: "carol",
        topic: "alerts",
    });
    // The wire forms of COMMANDS.md.
    assert_eq!(control.count(b'K', &[b"carol"]), 1);
    let leave = listener.next_frame(|command| command == b'e').unwrap();
    assert_eq!(leave, (b'e', b"5:leave5:carol6:alerts".to_vec()));
}

fn disconnected(token: Token, user: &str, code: u16, reason: &str, why: DisconnectCause) -> String {
    let event = Event::Disconnected {
        token,
        user,
        code,
        reason,
        why,
    };
    let mut bytes = Vec::new();
    event.encode(&mut bytes);
    String::from_utf8(bytes).unwrap()
}

fn next_event_text(listener: &mut Control) -> String {
    let frame = listener.next_event();
    let mut bytes = format!("{}e", frame.0.len()).into_bytes();
    bytes.extend_from_slice(&frame.0);
    String::from_utf8(bytes).unwrap()
}

fn disconnected_says_code_reason_and_why_client_kicked_replaced(setup: Setup) {
    let server = setup.set("users.token_reuse", r#""replace""#).start();
    let mut listener = server.control();
    listener.listen("", "disconnected");
    let mut control = server.control();

    // The client closes with a code and reason.
    let (mut closing, closing_cookies) = server.user_client("alice");
    closing.send_close(4100, "bye now");
    closing.expect_close(4100);
    closing.expect_end();
    assert_eq!(
        next_event_text(&mut listener),
        disconnected(
            closing_cookies.token,
            "alice",
            4100,
            "bye now",
            DisconnectCause::Client
        )
    );
    // A Close without a code: 1005 (RFC 6455 §7.1.5, no status code present).
    let (mut bare, bare_cookies) = server.user_client("alice");
    bare.send(true, OpCode::Close, b"");
    bare.expect_end();
    assert_eq!(
        next_event_text(&mut listener),
        disconnected(
            bare_cookies.token,
            "alice",
            1005,
            "",
            DisconnectCause::Client
        )
    );
    // The client's stream ends without a Close: 1006, as in COMMANDS.md's example.
    let (vanishing, vanishing_cookies) = server.user_client("alice");
    drop(vanishing);
    assert_eq!(
        next_event_text(&mut listener),
        format!(
            "73e12:disconnected32:{}5:alice4:10060:6:client",
            vanishing_cookies.token_str()
        )
    );
    // Kicked, with the kick's code and reason: COMMANDS.md's example.
    let (mut kicked, kicked_cookies) = server.user_client("alice");
    assert_eq!(control.count(b'K', &[b"alice", b"4008", b"banned"]), 1);
    assert_eq!(
        next_event_text(&mut listener),
        format!(
            "79e12:disconnected32:{}5:alice4:40086:banned6:kicked",
            kicked_cookies.token_str()
        )
    );
    kicked.expect_closed_with(4008, "banned");
    // Replaced by a newer connection with the same token.
    let (mut replaced, replaced_cookies) = server.user_client("bob");
    let _newer = WsClient::connect_tcp(&server.tcp(), &replaced_cookies).expect("admitted");
    assert_eq!(
        next_event_text(&mut listener),
        disconnected(
            replaced_cookies.token,
            "bob",
            4001,
            "replaced",
            DisconnectCause::Replaced
        )
    );
    replaced.expect_closed_with(4001, "replaced");
}

fn disconnected_says_why_protocol_and_slow(setup: Setup) {
    let server = setup
        .set("max_control_frame", "65536")
        .set("max_outbound_buffer", "65550")
        .start();
    let mut listener = server.control();
    listener.listen("", "disconnected");
    let mut control = server.control();

    // A frame with a reserved bit set: wson fails the connection with 1002.
    let (mut faulty, faulty_cookies) = server.user_client("alice");
    faulty.send_raw(&[0xc1, 0x80, 0, 0, 0, 0]);
    faulty.expect_close(1002);
    let event = listener.next_event();
    match event.event() {
        Event::Disconnected {
            token,
            user,
            code,
            why,
            ..
        } => assert_eq!(
            (token, user, code, why),
            (
                faulty_cookies.token,
                "alice",
                1002,
                DisconnectCause::Protocol
            )
        ),
        other => panic!("{other:?}"),
    }
    // A client that reads nothing while messages pile up: dropped as a slow consumer.
    let (_sleeping, sleeping_cookies) = server.user_client("bob");
    let message = vec![b'x'; 60_000];
    let mut sent = 0;
    while control.status()["slow_consumers_dropped"] == 0 {
        assert!(sent < 10_000, "never dropped as a slow consumer");
        for _ in 0..20 {
            control.direct(b'd', &sleeping_cookies.token, &message);
        }
        sent += 20;
    }
    assert_eq!(
        next_event_text(&mut listener),
        disconnected(
            sleeping_cookies.token,
            "bob",
            1006,
            "",
            DisconnectCause::Slow
        )
    );
}

fn disconnected_says_why_expired_and_timeout(setup: Setup) {
    // Two servers at once, so that the two waits overlap: one whose tokens live two
    // seconds, one that pings every second.
    let expiring = setup.clone().set("token_lifetime", "2").start();
    let pinging = setup.set("ping_interval", "1").start();
    let mut expiring_listener = expiring.control();
    expiring_listener.listen("", "disconnected");
    let mut pinging_listener = pinging.control();
    pinging_listener.listen("", "disconnected");

    // Signed a second ago: valid for about one more second.
    let cookies = Cookies::signed(
        "alice",
        now() - 1,
        SECRET.as_bytes(),
        wson::auth::Digest::Md5,
    );
    let mut expired = WsClient::connect_tcp(&expiring.tcp(), &cookies).expect("101");
    // A client that never answers pings.
    let (mut silent, silent_cookies) = pinging.user_client("bob");

    assert_eq!(
        next_event_text(&mut expiring_listener),
        disconnected(
            cookies.token,
            "alice",
            1000,
            "expired",
            DisconnectCause::Expired
        )
    );
    expired.expect_closed_with(1000, "expired");
    assert_eq!(
        next_event_text(&mut pinging_listener),
        disconnected(
            silent_cookies.token,
            "bob",
            1006,
            "",
            DisconnectCause::Timeout
        )
    );
    assert_eq!(silent.recv().opcode, OpCode::Ping);
}

/// Listeners of one kind each: each hears only its kinds, in the order they happened.
fn a_listener_with_kinds_gets_only_those_kinds(setup: Setup) {
    let server = forward(setup).start();
    let mut joins = server.control();
    joins.listen("", "join,leave");
    let mut messages = server.control();
    messages.listen("", "message");
    let mut connects = server.control();
    // The wire form of COMMANDS.md, then replaced by a second `e`.
    connects.send_raw(b"15e0:10:join,leave");
    connects.listen("", "connected");
    let mut everything = server.control();
    everything.listen("", "");
    let mut control = server.control();

    let (mut alice, cookies) = server.user_client("alice");
    alice.send_text("hi");
    assert_eq!(control.count(b'J', &[b"alice", b"room"]), 1);
    alice.send_close(1000, "");
    alice.expect_close(1000);
    alice.expect_end();
    // The listener of every kind saw it all, in order; the others' queues were filled in
    // the same passes.
    let kinds: Vec<String> = (0..6)
        .map(|_| everything.next_event().event().kind().name().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "connected",
            "message",
            "subscribed",
            "join",
            "leave",
            "disconnected"
        ]
    );
    joins.expect_event(Event::Join {
        user: "alice",
        topic: "room",
    });
    joins.expect_event(Event::Leave {
        user: "alice",
        topic: "room",
    });
    messages.expect_event(Event::Message {
        token: cookies.token,
        user: "alice",
        binary: false,
        payload: b"hi",
    });
    match connects.next_event().event() {
        Event::Connected { token, .. } => assert_eq!(token, cookies.token),
        other => panic!("{other:?}"),
    }
    // Nothing else is queued for them: after listening to every kind, the next event each
    // gets is a newcomer's `connected`.
    for listener in [&mut joins, &mut messages, &mut connects] {
        listener.listen("", "");
    }
    let (_bob, bob_cookies) = server.user_client("bob");
    for listener in [&mut joins, &mut messages, &mut connects] {
        match listener.next_event().event() {
            Event::Connected { token, .. } => assert_eq!(token, bob_cookies.token),
            other => panic!("{other:?}"),
        }
    }
}

fn bad_kinds_and_groups_get_0e(setup: Setup) {
    let server = setup.start();
    let long_group = "g".repeat(65);
    let cases: [(&[u8], &[u8]); 8] = [
        (b"", b"nope"),
        (b"", b"join,join"),
        (b"", b"join, leave"),
        (b"", b"join,"),
        (b"", b","),
        (b"a b", b""),
        (b"caf\xc3\xa9", b""),
        (long_group.as_bytes(), b""),
    ];
    for (group, kinds) in cases {
        server.control().expect_error(b'e', &[group, kinds]);
    }
    server.control().expect_error(b'e', &[b"", b"", b"extra"]);
    // The longest group and every kind by name are fine.
    let mut control = server.control();
    control.listen(
        &"g".repeat(64),
        "connected,disconnected,message,subscribed,unsubscribed,join,leave",
    );
    control.listen("Workers_1.a-b", "message");
}

fn a_group_of_three_shares_client_messages_each_to_exactly_one(setup: Setup) {
    let server = forward(setup).start();
    let mut members = [server.control(), server.control(), server.control()];
    for member in &mut members {
        member.listen("workers", "message");
    }
    // A plain listener hears every message whatever the group gets.
    let mut auditor = server.control();
    auditor.listen("", "message");
    let (mut alice, _) = server.user_client("alice");
    let (mut bob, _) = server.unix_user_client("bob");
    const COUNT: usize = 30;
    let mut sent = Vec::new();
    for index in 0..COUNT {
        let text = format!("message {index}");
        if index % 2 == 0 {
            alice.send_text(&text);
        } else {
            bob.send_text(&text);
        }
        sent.push(text);
    }
    // Every message reaches the auditor.
    let mut audited = BTreeSet::new();
    for _ in 0..COUNT {
        audited.insert(message_text(&auditor.next_event()));
    }
    assert_eq!(audited, sent.iter().cloned().collect());
    // In turn: each member gets a third, every message goes to exactly one.
    let mut received = BTreeMap::new();
    for (index, member) in members.iter_mut().enumerate() {
        for _ in 0..COUNT / 3 {
            let text = message_text(&member.next_event());
            assert_eq!(received.insert(text.clone(), index), None, "{text} twice");
        }
    }
    assert_eq!(received.len(), COUNT);
    // Nothing else is queued for any member: three more messages, one each, are next.
    for index in 0..3 {
        alice.send_text(&format!("sentinel {index}"));
    }
    let mut sentinels = BTreeSet::new();
    for member in &mut members {
        let text = message_text(&member.next_event());
        assert!(text.starts_with("sentinel "), "{text}");
        sentinels.insert(text);
    }
    assert_eq!(sentinels.len(), 3);
    // A member that leaves: the two others share what follows.
    let [first, mut second, mut third] = members;
    drop(first);
    eventually("the member is gone", || {
        auditor.status()["event_listeners"] == 3
    });
    for index in 0..4 {
        bob.send_text(&format!("after {index}"));
    }
    let mut after = BTreeSet::new();
    for member in [&mut second, &mut third] {
        for _ in 0..2 {
            after.insert(message_text(&member.next_event()));
        }
    }
    assert_eq!(after.len(), 4);
}

fn message_text(frame: &EventFrame) -> String {
    match frame.event() {
        Event::Message { payload, .. } => String::from_utf8(payload.to_vec()).unwrap(),
        other => panic!("not a message event: {other:?}"),
    }
}

fn a_slow_listener_is_dropped_while_clients_and_other_listeners_go_on(setup: Setup) {
    let server = forward(setup)
        .set("events.max_queue", "65536")
        .set("max_message_size", "60000")
        .start();
    // Listens and then reads nothing.
    let mut slow = server.control();
    slow.listen("", "");
    // Reads everything, on its own thread.
    let mut reader = server.control();
    reader.listen("", "message");
    let (counted, count_rx) = std::sync::mpsc::channel();
    let reading = std::thread::spawn(move || {
        let mut count = 0usize;
        loop {
            let frame = reader.next_event();
            if let Event::Message { payload, .. } = frame.event() {
                if payload == b"last" {
                    return count;
                }
                count += 1;
                let _ = counted.send(count);
            }
        }
    });
    let (mut alice, cookies) = server.user_client("alice");
    let mut control = server.control();
    let message = vec![0x5a; 50_000];
    let mut sent = 0;
    // One message at a time, each read by the reading listener before the next: it never
    // falls behind, while the slow one's queue only grows.
    while control.status()["event_listeners_dropped"] == 0 {
        assert!(sent < 5_000, "the slow listener was never dropped");
        alice.send(true, OpCode::Binary, &message);
        sent += 1;
        assert_eq!(count_rx.recv_timeout(WAIT), Ok(sent));
        if sent % 10 == 0 {
            // The client is not held up: a message to it arrives meanwhile.
            control.direct(b'd', &cookies.token, b"still served");
            assert_eq!(alice.recv_text(), "still served");
        }
    }
    let status = control.status();
    assert_eq!(status["event_listeners_dropped"], 1, "{status}");
    assert_eq!(status["event_listeners"], 1, "{status}");
    assert_eq!(status["slow_consumers_dropped"], 0, "{status}");
    // The other listener goes on getting events after the drop.
    for _ in 0..3 {
        alice.send(true, OpCode::Binary, b"after the drop");
        sent += 1;
        assert_eq!(count_rx.recv_timeout(WAIT), Ok(sent));
    }
    alice.send_text("last");
    assert_eq!(reading.join().unwrap(), sent);
    nothing_more(&mut control, &mut alice, &cookies.token);
    // The slow listener's connection was closed: after what was queued, the end.
    slow.stream.set_timeout(Some(WAIT));
    while slow.read_frame().is_some() {}
}

// --- Real clients ----------------------------------------------------------------------

/// A pool of three PHP workers (`php/worker.php`, one event group) consumes what two
/// Python tabs send: every message reaches exactly one worker, each worker gets its turn.
fn php_worker_group_consumes_python_messages_without_duplicates(setup: Setup) {
    let (Some(python), Some(php)) = (python(), php()) else {
        return;
    };
    let server = forward(setup).start();
    let address = php_address(&server);
    let mut workers: Vec<Script> = (0..3)
        .map(|_| Script::spawn(&php, "php/worker.php", &[&address, "workers"]))
        .collect();
    for worker in &mut workers {
        assert_eq!(worker.next(), json!({"event": "ready"}));
    }
    const PER_TAB: usize = 15;
    let url = format!("ws://{}/", server.tcp());
    let mut tabs = Vec::new();
    let mut tokens = BTreeMap::new();
    for name in ["left", "right"] {
        let cookies = Cookies::fresh("alice");
        tokens.insert(cookies.token_str(), name);
        let count = PER_TAB.to_string();
        let mut tab = Script::spawn(
            &python,
            "py_tab.py",
            &["send", &url, &cookies.header, ORIGIN, &count, name],
        );
        assert_eq!(tab.next(), json!({"event": "open"}));
        tabs.push(tab);
    }
    let mut got: Vec<Vec<Value>> = vec![Vec::new(); 3];
    eventually("every message reached a worker", || {
        for (worker, lines) in workers.iter_mut().zip(&mut got) {
            while let Some(line) = worker.next_ready() {
                lines.push(line);
            }
        }
        got.iter().map(Vec::len).sum::<usize>() >= 2 * PER_TAB
    });
    let mut seen = BTreeSet::new();
    for lines in &got {
        assert_eq!(lines.len(), 2 * PER_TAB / 3, "each worker in turn: {got:?}");
        for line in lines {
            let data = line["data"].as_str().unwrap().to_string();
            let (prefix, index) = data.split_once(' ').unwrap();
            let index: usize = index.parse().unwrap();
            assert_eq!(tokens[line["token"].as_str().unwrap()], prefix, "{line}");
            assert_eq!(line["user"], "alice");
            let kind = if index % 2 == 1 { "binary" } else { "text" };
            assert_eq!(line["type"], kind, "{line}");
            assert!(seen.insert(data.clone()), "{data} twice");
        }
    }
    assert_eq!(seen.len(), 2 * PER_TAB);
    for tab in &mut tabs {
        assert_eq!(tab.next(), json!({"event": "sent", "count": PER_TAB}));
    }
    let mut control = server.control();
    assert_eq!(control.count(b'K', &[b"alice"]), 2);
    for tab in &mut tabs {
        assert_eq!(
            tab.next(),
            json!({"event": "close", "code": 4000, "reason": "kicked"})
        );
        tab.finish();
    }
}

#[test]
fn disconnected_says_why_shutdown_when_wson_stops() {
    let server = Setup::new().start();
    let mut listener = server.control();
    listener.listen("", "disconnected");
    let (mut alice, cookies) = server.user_client("alice");
    server.signal(nix::sys::signal::Signal::SIGTERM);
    listener.expect_event(Event::Disconnected {
        token: cookies.token,
        user: "alice",
        code: 1001,
        reason: "going away",
        why: DisconnectCause::Shutdown,
    });
    alice.expect_closed_with(1001, "going away");
}
