//! The control socket (COMMANDS.md and issue 2): every command, its reply and its effect on
//! WebSocket clients, the errors that answer `0E` and close, keepalive, and delivery order.
//! Every scenario runs twice, over a Unix and over a TCP control endpoint.

use serde_json::Value;
use wson::token::Token;
use wson::ws::frame::OpCode;

use crate::common::*;

over_both_control_kinds!(
    broadcast_b_and_upper_b_send_text_and_binary_to_every_client,
    confirmed_direct_c_replies_a_or_n_and_delivers,
    empty_c_is_an_online_check_that_sends_nothing,
    unconfirmed_direct_d_delivers_without_a_reply,
    lock_and_fragments_deliver_exact_frames_each_answered_0a,
    fragment_without_a_lock_gets_0n,
    fragments_out_of_order_get_0n,
    fragment_for_a_client_that_went_away_gets_0n_and_frees_the_connection_to_lock_again,
    messages_for_a_locked_client_arrive_after_its_fragmented_message,
    lock_on_a_locked_client_gets_n,
    lock_while_holding_a_lock_gets_n,
    lock_holder_going_away_closes_the_client_with_1011_framesource_lost,
    m_names_the_domain_of_the_least_loaded_listener,
    m_without_domains_names_the_least_loaded_endpoint,
    p_gets_0p_and_upper_p_gets_nothing,
    q_and_upper_q_close_the_control_connection_after_due_replies,
    t_reports_status_json_with_counters_that_follow_traffic,
    protocol_errors_get_0e_and_close_the_control_connection,
    frame_over_max_control_frame_gets_0e_without_its_payload,
    idle_control_connection_is_pinged_and_dropped_without_0p_answer,
    control_connection_answering_pings_is_kept,
    direct_message_to_a_closing_client_gets_n,
    messages_from_one_control_connection_arrive_in_order,
    bursts_of_broadcasts_arrive_whole_in_order_and_counted,
);

fn tcp_client(server: &Server) -> (WsClient, Cookies) {
    let cookies = Cookies::fresh("alice");
    let client = WsClient::connect_tcp(&server.tcp(), &cookies).expect("101");
    (client, cookies)
}

fn unix_client(server: &Server) -> (WsClient, Cookies) {
    let cookies = Cookies::fresh("bob");
    let client = WsClient::connect_unix(&server.unix(), &cookies).expect("101");
    (client, cookies)
}

fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Frame {
    Frame {
        fin,
        opcode,
        payload: payload.to_vec(),
    }
}

fn text(payload: &str) -> Frame {
    frame(true, OpCode::Text, payload.as_bytes())
}

fn expect_reply(control: &mut Control, command: u8, payload: &[u8]) {
    let (got_command, got_payload) = control.reply();
    assert_eq!(
        (got_command as char, String::from_utf8_lossy(&got_payload)),
        (command as char, String::from_utf8_lossy(payload)),
    );
}

fn expect_ack(control: &mut Control, token: &Token) {
    expect_reply(control, b'A', token.as_bytes());
}

fn expect_nack(control: &mut Control, token: &Token) {
    expect_reply(control, b'N', token.as_bytes());
}

/// The server closed the control connection (after any replies already read).
fn expect_control_closed(control: &mut Control) {
    assert_eq!(
        control.try_reply(),
        None,
        "the control connection must close"
    );
}

fn lock(control: &mut Control, token: &Token) {
    control.send(b'l', token.as_bytes());
    expect_ack(control, token);
}

fn fragment(control: &mut Control, command: u8, payload: &[u8]) {
    control.send(command, payload);
    expect_reply(control, b'a', b"");
}

fn broadcast_b_and_upper_b_send_text_and_binary_to_every_client(setup: Setup) {
    let server = setup.start();
    let mut clients = vec![tcp_client(&server).0, tcp_client(&server).0];
    clients.push(unix_client(&server).0);
    let mut control = server.control();
    control.send(b'b', "Hello, World!!! é".as_bytes());
    control.send(b'B', b"\x00\x01\xff");
    control.send(b'b', b"");
    control.send_raw(b"15bHello, World!!!");
    for client in &mut clients {
        assert_eq!(client.recv_data(), text("Hello, World!!! é"));
        assert_eq!(
            client.recv_data(),
            frame(true, OpCode::Binary, b"\x00\x01\xff")
        );
        assert_eq!(client.recv_data(), text(""));
        assert_eq!(client.recv_data(), text("Hello, World!!!"));
    }
}

fn confirmed_direct_c_replies_a_or_n_and_delivers(setup: Setup) {
    let server = setup.start();
    let (mut alice, alice_cookies) = tcp_client(&server);
    let (mut bob, bob_cookies) = unix_client(&server);
    let mut control = server.control();

    control.direct(b'c', &alice_cookies.token, b"for alice");
    expect_ack(&mut control, &alice_cookies.token);
    control.direct(b'C', &bob_cookies.token, b"\x00\xffbob");
    expect_ack(&mut control, &bob_cookies.token);
    let stranger = unique_token();
    control.direct(b'c', &stranger, b"for nobody");
    expect_nack(&mut control, &stranger);
    control.direct(b'C', &stranger, b"\x00");
    expect_nack(&mut control, &stranger);

    // The reply is byte for byte `32A{token}`.
    let mut raw = format!("38c{}Direct", alice_cookies.token_str()).into_bytes();
    raw.extend_from_slice(b"0p");
    control.send_raw(&raw);
    let (command, payload) = control.reply();
    assert_eq!(
        format!(
            "{}{}{}",
            payload.len(),
            command as char,
            String::from_utf8_lossy(&payload)
        ),
        format!("32A{}", alice_cookies.token_str())
    );
    expect_reply(&mut control, b'P', b"");

    assert_eq!(alice.recv_data(), text("for alice"));
    assert_eq!(alice.recv_data(), text("Direct"));
    assert_eq!(bob.recv_data(), frame(true, OpCode::Binary, b"\x00\xffbob"));
    // Nothing meant for someone else reached either client.
    control.send(b'b', b"end");
    assert_eq!(alice.recv_data(), text("end"));
    assert_eq!(bob.recv_data(), text("end"));
}

fn empty_c_is_an_online_check_that_sends_nothing(setup: Setup) {
    let server = setup.start();
    let (mut alice, cookies) = tcp_client(&server);
    let mut control = server.control();
    control.direct(b'c', &cookies.token, b"");
    expect_ack(&mut control, &cookies.token);
    control.direct(b'C', &cookies.token, b"");
    expect_ack(&mut control, &cookies.token);
    let stranger = unique_token();
    control.direct(b'c', &stranger, b"");
    expect_nack(&mut control, &stranger);
    control.send(b'b', b"first real message");
    assert_eq!(alice.recv_data(), text("first real message"));

    // Offline once the client has gone.
    alice.send_close(1000, "");
    alice.expect_close(1000);
    alice.expect_end();
    eventually("the client is offline", || {
        control.direct(b'c', &cookies.token, b"");
        control.reply().0 == b'N'
    });
}

fn unconfirmed_direct_d_delivers_without_a_reply(setup: Setup) {
    let server = setup.start();
    let (mut alice, cookies) = tcp_client(&server);
    let mut control = server.control();
    control.direct(b'd', &cookies.token, b"New message!");
    control.direct(b'D', &cookies.token, b"\xff");
    control.direct(b'd', &unique_token(), b"for nobody");
    // The first reply on the connection is the answer to `p`: `d`/`D` answered nothing.
    control.send(b'p', b"");
    expect_reply(&mut control, b'P', b"");
    assert_eq!(alice.recv_data(), text("New message!"));
    assert_eq!(alice.recv_data(), frame(true, OpCode::Binary, b"\xff"));
}

fn lock_and_fragments_deliver_exact_frames_each_answered_0a(setup: Setup) {
    let server = setup.start();
    let (mut alice, cookies) = tcp_client(&server);
    let mut control = server.control();

    lock(&mut control, &cookies.token);
    fragment(&mut control, b'f', b"Hello");
    fragment(&mut control, b'i', b", ");
    fragment(&mut control, b's', b"World!");
    assert_eq!(alice.recv_data(), frame(false, OpCode::Text, b"Hello"));
    assert_eq!(alice.recv_data(), frame(false, OpCode::Continuation, b", "));
    assert_eq!(
        alice.recv_data(),
        frame(true, OpCode::Continuation, b"World!")
    );

    // Binary, with an empty middle fragment; the case of i/s does not matter.
    lock(&mut control, &cookies.token);
    fragment(&mut control, b'F', b"\x00\x01");
    fragment(&mut control, b'I', b"");
    fragment(&mut control, b'i', b"\x02");
    fragment(&mut control, b'S', b"\xff");
    assert_eq!(alice.recv_data(), frame(false, OpCode::Binary, b"\x00\x01"));
    assert_eq!(alice.recv_data(), frame(false, OpCode::Continuation, b""));
    assert_eq!(
        alice.recv_data(),
        frame(false, OpCode::Continuation, b"\x02")
    );
    assert_eq!(
        alice.recv_data(),
        frame(true, OpCode::Continuation, b"\xff")
    );

    // `s` unlocked the client: a direct message goes straight out, and it can be locked again.
    control.direct(b'c', &cookies.token, b"plain");
    expect_ack(&mut control, &cookies.token);
    assert_eq!(alice.recv_data(), text("plain"));
    lock(&mut control, &cookies.token);
    fragment(&mut control, b'f', b"a");
    fragment(&mut control, b's', b"b");
    assert_eq!(alice.recv_data(), frame(false, OpCode::Text, b"a"));
    assert_eq!(alice.recv_data(), frame(true, OpCode::Continuation, b"b"));
}

fn fragment_without_a_lock_gets_0n(setup: Setup) {
    let server = setup.start();
    let (mut alice, _cookies) = tcp_client(&server);
    let mut control = server.control();
    for command in [b'f', b'F', b'i', b'I', b's', b'S'] {
        control.send(command, b"orphan");
        expect_reply(&mut control, b'n', b"");
    }
    control.send(b'b', b"only this");
    assert_eq!(alice.recv_data(), text("only this"));
}

fn fragments_out_of_order_get_0n(setup: Setup) {
    let server = setup.start();
    let (mut alice, cookies) = tcp_client(&server);
    let mut control = server.control();
    lock(&mut control, &cookies.token);
    // A middle or last fragment before the first.
    control.send(b'i', b"too early");
    expect_reply(&mut control, b'n', b"");
    control.send(b's', b"too early");
    expect_reply(&mut control, b'n', b"");
    fragment(&mut control, b'f', b"one");
    // A second first fragment inside the message.
    control.send(b'F', b"again");
    expect_reply(&mut control, b'n', b"");
    fragment(&mut control, b's', b"two");
    // The client saw only a valid fragmented message.
    assert_eq!(alice.recv_data(), frame(false, OpCode::Text, b"one"));
    assert_eq!(alice.recv_data(), frame(true, OpCode::Continuation, b"two"));
    control.send(b'b', b"after");
    assert_eq!(alice.recv_data(), text("after"));
}

fn fragment_for_a_client_that_went_away_gets_0n_and_frees_the_connection_to_lock_again(
    setup: Setup,
) {
    let server = setup.start();
    let (mut alice, alice_cookies) = tcp_client(&server);
    let (mut bob, bob_cookies) = unix_client(&server);
    let mut control = server.control();
    lock(&mut control, &alice_cookies.token);
    fragment(&mut control, b'f', b"for alice");
    alice.send_close(1000, "");
    assert_eq!(alice.recv_data(), frame(false, OpCode::Text, b"for alice"));
    alice.expect_close(1000);
    alice.expect_end();
    control.send(b'i', b"nobody to take this");
    expect_reply(&mut control, b'n', b"");
    // The lock went with alice: this connection may lock bob now.
    lock(&mut control, &bob_cookies.token);
    fragment(&mut control, b'f', b"for bob");
    fragment(&mut control, b's', b"");
    assert_eq!(bob.recv_data(), frame(false, OpCode::Text, b"for bob"));
    assert_eq!(bob.recv_data(), frame(true, OpCode::Continuation, b""));
}

fn messages_for_a_locked_client_arrive_after_its_fragmented_message(setup: Setup) {
    let server = setup.start();
    let (mut alice, cookies) = tcp_client(&server);
    let (mut bob, _) = unix_client(&server);
    let mut holder = server.control();
    let mut other = server.control();

    lock(&mut holder, &cookies.token);
    fragment(&mut holder, b'f', b"part 1");
    other.send(b'b', b"broadcast while locked");
    other.sync();
    // `c` to a locked client is acknowledged: the message is queued behind the fragments.
    other.direct(b'c', &cookies.token, b"direct while locked");
    expect_ack(&mut other, &cookies.token);
    holder.direct(b'd', &cookies.token, b"from the holder");
    holder.send(b'B', b"\x01binary broadcast");
    fragment(&mut holder, b'i', b"part 2");
    // Others are not held up by the lock.
    assert_eq!(bob.recv_data(), text("broadcast while locked"));
    fragment(&mut holder, b's', b"part 3");

    assert_eq!(alice.recv_data(), frame(false, OpCode::Text, b"part 1"));
    assert_eq!(
        alice.recv_data(),
        frame(false, OpCode::Continuation, b"part 2")
    );
    assert_eq!(
        alice.recv_data(),
        frame(true, OpCode::Continuation, b"part 3")
    );
    assert_eq!(alice.recv_data(), text("broadcast while locked"));
    assert_eq!(alice.recv_data(), text("direct while locked"));
    assert_eq!(alice.recv_data(), text("from the holder"));
    assert_eq!(
        alice.recv_data(),
        frame(true, OpCode::Binary, b"\x01binary broadcast")
    );
    // Unlocked: the next message goes straight out.
    other.send(b'b', b"after");
    assert_eq!(alice.recv_data(), text("after"));
}

fn lock_on_a_locked_client_gets_n(setup: Setup) {
    let server = setup.start();
    let (mut alice, cookies) = tcp_client(&server);
    let mut holder = server.control();
    let mut other = server.control();
    lock(&mut holder, &cookies.token);
    other.send(b'l', cookies.token.as_bytes());
    expect_nack(&mut other, &cookies.token);
    // The other connection holds no lock, so its fragments are refused.
    other.send(b'f', b"intruder");
    expect_reply(&mut other, b'n', b"");
    // An unknown token cannot be locked either.
    let stranger = unique_token();
    other.send(b'l', stranger.as_bytes());
    expect_nack(&mut other, &stranger);

    fragment(&mut holder, b'f', b"mine");
    fragment(&mut holder, b's', b"!");
    assert_eq!(alice.recv_data(), frame(false, OpCode::Text, b"mine"));
    assert_eq!(alice.recv_data(), frame(true, OpCode::Continuation, b"!"));
    // Released by `s`: now the other connection may lock it.
    lock(&mut other, &cookies.token);
}

fn lock_while_holding_a_lock_gets_n(setup: Setup) {
    let server = setup.start();
    let (mut alice, alice_cookies) = tcp_client(&server);
    let (mut bob, bob_cookies) = unix_client(&server);
    let mut control = server.control();
    lock(&mut control, &alice_cookies.token);
    control.send(b'l', bob_cookies.token.as_bytes());
    expect_nack(&mut control, &bob_cookies.token);
    // The first lock stands: fragments still go to alice.
    fragment(&mut control, b'f', b"to alice");
    fragment(&mut control, b's', b"");
    assert_eq!(alice.recv_data(), frame(false, OpCode::Text, b"to alice"));
    assert_eq!(alice.recv_data(), frame(true, OpCode::Continuation, b""));
    // Bob was never locked: a broadcast reaches him at once.
    control.send(b'b', b"hi bob");
    assert_eq!(bob.recv_data(), text("hi bob"));
    // With the first message finished, another lock is fine.
    lock(&mut control, &bob_cookies.token);
}

fn lock_holder_going_away_closes_the_client_with_1011_framesource_lost(setup: Setup) {
    let server = setup.start();
    let expect_1011 = |client: &mut WsClient| {
        let close = client.expect_close(1011);
        assert_eq!(close.close_reason(), "framesource lost");
        client.send_close(1011, "");
        client.expect_end();
    };

    // The holder disconnects in the middle of a message.
    let (mut alice, cookies) = tcp_client(&server);
    let mut holder = server.control();
    lock(&mut holder, &cookies.token);
    fragment(&mut holder, b'f', b"half");
    drop(holder);
    assert_eq!(alice.recv_data(), frame(false, OpCode::Text, b"half"));
    expect_1011(&mut alice);

    // The holder quits.
    let (mut bob, cookies) = unix_client(&server);
    let mut holder = server.control();
    lock(&mut holder, &cookies.token);
    holder.send(b'q', b"");
    expect_control_closed(&mut holder);
    expect_1011(&mut bob);

    // The holder is closed for a protocol error.
    let (mut carol, cookies) = tcp_client(&server);
    let mut holder = server.control();
    lock(&mut holder, &cookies.token);
    holder.send_raw(b"0G");
    expect_reply(&mut holder, b'E', b"");
    expect_control_closed(&mut holder);
    expect_1011(&mut carol);

    // A finished message leaves nothing to lose: the client stays.
    let (mut dave, cookies) = tcp_client(&server);
    let mut holder = server.control();
    lock(&mut holder, &cookies.token);
    fragment(&mut holder, b'f', b"whole");
    fragment(&mut holder, b's', b"");
    drop(holder);
    let mut control = server.control();
    control.sync();
    control.direct(b'c', &cookies.token, b"still open");
    expect_ack(&mut control, &cookies.token);
    assert_eq!(dave.recv_data(), frame(false, OpCode::Text, b"whole"));
    assert_eq!(dave.recv_data(), frame(true, OpCode::Continuation, b""));
    assert_eq!(dave.recv_data(), text("still open"));
}

fn domain(control: &mut Control) -> String {
    control.send(b'm', b"");
    let (command, payload) = control.reply();
    assert_eq!(command, b'M');
    String::from_utf8(payload).unwrap()
}

fn m_names_the_domain_of_the_least_loaded_listener(setup: Setup) {
    let server = setup
        .set("domains", r#"["tcp.example.com", "unix.example.com"]"#)
        .start();
    let mut control = server.control();
    // A tie goes to the first listener.
    assert_eq!(domain(&mut control), "tcp.example.com");
    let _tcp = tcp_client(&server);
    assert_eq!(domain(&mut control), "unix.example.com");
    let _unix = [unix_client(&server), unix_client(&server)];
    assert_eq!(domain(&mut control), "tcp.example.com");
    // The payload of `m` is ignored.
    control.send(b'm', b"ignored");
    expect_reply(&mut control, b'M', b"tcp.example.com");
}

fn m_without_domains_names_the_least_loaded_endpoint(setup: Setup) {
    let server = setup.start();
    let mut control = server.control();
    assert_eq!(domain(&mut control), server.endpoints[0]);
    let _tcp = tcp_client(&server);
    assert_eq!(domain(&mut control), server.endpoints[1]);
    assert!(server.endpoints[1].starts_with("unix://"));
}

fn p_gets_0p_and_upper_p_gets_nothing(setup: Setup) {
    let server = setup.start();
    let mut control = server.control();
    control.send_raw(b"0p");
    expect_reply(&mut control, b'P', b"");
    // A payload is ignored.
    control.send_raw(b"3pabc");
    expect_reply(&mut control, b'P', b"");
    // `P` (a pong) has no answer: the next reply is the status asked for after it.
    control.send_raw(b"0P0t");
    assert_eq!(control.reply().0, b'T');
}

fn q_and_upper_q_close_the_control_connection_after_due_replies(setup: Setup) {
    let server = setup.start();
    let mut control = server.control();
    control.send_raw(b"0p0q");
    expect_reply(&mut control, b'P', b"");
    expect_control_closed(&mut control);

    let mut control = server.control();
    control.send_raw(b"0p0p0Q");
    expect_reply(&mut control, b'P', b"");
    expect_reply(&mut control, b'P', b"");
    expect_control_closed(&mut control);

    // The server goes on serving new control connections.
    let mut control = server.control();
    control.sync();
}

fn status(control: &mut Control) -> Value {
    control.status()
}

fn counter(status: &Value, key: &str) -> u64 {
    status[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number in {status}"))
}

fn listener_connections(status: &Value) -> Vec<u64> {
    status["listeners"]
        .as_array()
        .unwrap_or_else(|| panic!("no listeners array in {status}"))
        .iter()
        .map(|listener| counter(listener, "connections"))
        .collect()
}

fn t_reports_status_json_with_counters_that_follow_traffic(setup: Setup) {
    let server = setup.start();
    let mut control = server.control();

    let start = status(&mut control);
    assert_eq!(counter(&start, "pid"), u64::try_from(server.pid()).unwrap());
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"));
    counter(&start, "uptime_secs");
    assert_eq!(counter(&start, "connections"), 0);
    assert_eq!(listener_connections(&start), [0, 0]);
    let endpoints: Vec<&str> = start["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|listener| listener["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(endpoints, server.endpoints);
    assert_eq!(counter(&start, "control_connections"), 1);
    for key in [
        "messages_in",
        "messages_out",
        "bytes_in",
        "bytes_out",
        "slow_consumers_dropped",
    ] {
        assert_eq!(counter(&start, key), 0, "{key} in {start}");
    }

    let (mut alice, _) = tcp_client(&server);
    let (mut bob, _) = unix_client(&server);
    let mut second_control = server.control();
    second_control.sync();
    let connected = status(&mut control);
    assert_eq!(counter(&connected, "connections"), 2);
    assert_eq!(listener_connections(&connected), [1, 1]);
    assert_eq!(counter(&connected, "control_connections"), 2);
    assert!(counter(&connected, "bytes_in") > 0, "handshakes are read");
    assert!(counter(&connected, "bytes_out") > 0, "101s are written");

    // A broadcast of 5 bytes: one message and a 7-byte frame out to each client.
    control.send(b'b', b"hello");
    assert_eq!(alice.recv_text(), "hello");
    assert_eq!(bob.recv_text(), "hello");
    let sent = status(&mut control);
    assert_eq!(counter(&sent, "messages_out"), 2);
    assert_eq!(
        counter(&sent, "bytes_out") - counter(&connected, "bytes_out"),
        2 * 7
    );
    assert_eq!(counter(&sent, "messages_in"), 0);

    // A 2-byte text message in (8 bytes masked), then a ping (6) answered by a pong (2 out),
    // so the message has been read when the pong arrives.
    alice.send_text("hi");
    alice.send(true, OpCode::Ping, b"");
    assert_eq!(alice.recv().opcode, OpCode::Pong);
    let received = status(&mut control);
    assert_eq!(counter(&received, "messages_in"), 1);
    assert_eq!(
        counter(&received, "bytes_in") - counter(&sent, "bytes_in"),
        8 + 6
    );
    assert_eq!(
        counter(&received, "bytes_out") - counter(&sent, "bytes_out"),
        2
    );
    assert_eq!(counter(&received, "messages_out"), 2);

    // Going away is counted down.
    bob.send_close(1000, "");
    bob.expect_close(1000);
    bob.expect_end();
    second_control.send(b'q', b"");
    expect_control_closed(&mut second_control);
    eventually("bob and the second control connection are gone", || {
        let now = status(&mut control);
        counter(&now, "connections") == 1
            && listener_connections(&now) == [1, 0]
            && counter(&now, "control_connections") == 1
    });
    assert_eq!(counter(&status(&mut control), "slow_consumers_dropped"), 0);
}

fn protocol_errors_get_0e_and_close_the_control_connection(setup: Setup) {
    let server = setup.start();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("length not a digit", b"xb".to_vec()),
        ("length after a space", b" 5bHello".to_vec()),
        ("length of 21 digits", b"000000000000000000001bx".to_vec()),
        ("unknown command", b"0G".to_vec()),
        ("unknown command with payload", b"5~hello".to_vec()),
        ("x with a payload that is not fields", b"5xhello".to_vec()),
        ("reply byte A as a command", b"0A".to_vec()),
        ("reply byte E as a command", b"0E".to_vec()),
        ("c without a token", b"0c".to_vec()),
        ("d with a short payload", b"5dshort".to_vec()),
        ("C without a token", b"0C".to_vec()),
        ("D without a token", b"0D".to_vec()),
        ("l without a token", b"0l".to_vec()),
    ];
    let short_token = "a".repeat(31);
    let long_token = "a".repeat(33);
    cases.push((
        "c with a 31-byte token",
        format!("31c{short_token}").into_bytes(),
    ));
    cases.push((
        "d with a 31-byte token",
        format!("31d{short_token}").into_bytes(),
    ));
    cases.push(("l with 31 bytes", format!("31l{short_token}").into_bytes()));
    cases.push(("l with 33 bytes", format!("33l{long_token}").into_bytes()));
    for (what, bytes) in cases {
        let mut control = server.control();
        control.send_raw(&bytes);
        assert_eq!(control.reply(), (b'E', Vec::new()), "{what}");
        assert_eq!(control.try_reply(), None, "{what}: closed after 0E");
    }
    // Frames before the faulty one are carried out; nothing after it is.
    let mut control = server.control();
    control.send_raw(b"0p0G0p");
    expect_reply(&mut control, b'P', b"");
    expect_reply(&mut control, b'E', b"");
    expect_control_closed(&mut control);
    // Other control connections are unaffected.
    server.control().sync();
}

fn frame_over_max_control_frame_gets_0e_without_its_payload(setup: Setup) {
    let server = setup.set("max_control_frame", "64").start();
    let (mut alice, _) = tcp_client(&server);
    let mut control = server.control();
    control.send(b'b', &[b'x'; 64]);
    control.sync();
    assert_eq!(alice.recv_text(), "x".repeat(64));

    let mut control = server.control();
    control.send(b'b', &[b'y'; 65]);
    expect_reply(&mut control, b'E', b"");
    expect_control_closed(&mut control);

    // A huge declared length is refused from the prefix alone.
    let mut control = server.control();
    control.send_raw(b"99999999999999999999b");
    expect_reply(&mut control, b'E', b"");
    expect_control_closed(&mut control);
    let mut control = server.control();
    control.send_raw(b"65");
    expect_reply(&mut control, b'E', b"");
    expect_control_closed(&mut control);

    // Nothing of the refused frames reached the client.
    server.control().send(b'b', b"next");
    assert_eq!(alice.recv_text(), "next");
}

fn idle_control_connection_is_pinged_and_dropped_without_0p_answer(setup: Setup) {
    let mut server = setup.set("ping_interval", "1").start();
    let mut control = server.control();
    expect_reply(&mut control, b'p', b"");
    expect_control_closed(&mut control);
    server.wait_for_log("reason=\"no 0P after our 0p\"");
}

fn control_connection_answering_pings_is_kept(setup: Setup) {
    let server = setup.set("ping_interval", "1").start();
    let mut control = server.control();
    let uptime_before = counter(&status(&mut control), "uptime_secs");
    // Three rounds outlast the one interval an unanswered ping is allowed.
    for _ in 0..3 {
        expect_reply(&mut control, b'p', b"");
        control.send(b'P', b"");
    }
    control.send(b'p', b"");
    expect_reply(&mut control, b'P', b"");
    // Three pings each came an interval after the last thing we sent: uptime moved on.
    let uptime_after = counter(&status(&mut control), "uptime_secs");
    assert!(
        uptime_after > uptime_before,
        "{uptime_before} -> {uptime_after}"
    );
}

fn direct_message_to_a_closing_client_gets_n(setup: Setup) {
    // Long enough that the client stays in the closing state for the whole test.
    let server = setup.set("close_timeout", "60").start();
    let (mut alice, cookies) = tcp_client(&server);
    // Put alice in the closing state: the server sends her a Close she does not answer.
    let mut holder = server.control();
    lock(&mut holder, &cookies.token);
    drop(holder);
    alice.expect_close(1011);

    let mut control = server.control();
    control.direct(b'c', &cookies.token, b"too late");
    expect_nack(&mut control, &cookies.token);
    control.direct(b'C', &cookies.token, b"\x00");
    expect_nack(&mut control, &cookies.token);
    control.direct(b'c', &cookies.token, b"");
    expect_nack(&mut control, &cookies.token);
    control.send(b'l', cookies.token.as_bytes());
    expect_nack(&mut control, &cookies.token);
    control.send(b'b', b"broadcast too late");
    control.sync();

    // Alice completes the closing handshake and received nothing after the Close.
    alice.send_close(1011, "");
    assert_eq!(alice.try_recv(), None);
}

fn messages_from_one_control_connection_arrive_in_order(setup: Setup) {
    let server = setup.start();
    let (mut alice, cookies) = tcp_client(&server);
    let (mut bob, _) = unix_client(&server);
    let mut control = server.control();
    const COUNT: usize = 3000;
    let token = cookies.token.as_bytes();
    // Broadcasts, confirmed and unconfirmed direct messages and fragmented messages, all
    // written at once.
    let mut batch = Vec::new();
    let mut replies: Vec<(u8, Vec<u8>)> = Vec::new();
    for index in 0..COUNT {
        let message = format!("message {index}");
        match index % 4 {
            0 => codec_frame(&mut batch, b'b', message.as_bytes()),
            1 => {
                codec_frame(&mut batch, b'c', &[token, message.as_bytes()].concat());
                replies.push((b'A', token.to_vec()));
            }
            2 => codec_frame(&mut batch, b'd', &[token, message.as_bytes()].concat()),
            _ => {
                codec_frame(&mut batch, b'l', token);
                codec_frame(&mut batch, b'f', b"message ");
                codec_frame(&mut batch, b's', index.to_string().as_bytes());
                replies.push((b'A', token.to_vec()));
                replies.push((b'a', Vec::new()));
                replies.push((b'a', Vec::new()));
            }
        }
    }
    control.send_raw(&batch);
    for index in 0..COUNT {
        let expected = format!("message {index}");
        if index % 4 == 3 {
            assert_eq!(alice.recv_data(), frame(false, OpCode::Text, b"message "));
            assert_eq!(
                alice.recv_data(),
                frame(true, OpCode::Continuation, index.to_string().as_bytes())
            );
        } else {
            assert_eq!(alice.recv_data(), text(&expected));
        }
        if index % 4 == 0 {
            assert_eq!(bob.recv_data(), text(&expected));
        }
    }
    for (index, expected) in replies.into_iter().enumerate() {
        assert_eq!(control.reply(), expected, "reply {index}");
    }
}

/// Broadcasts written back to back are queued to clients together (one shared chunk per
/// read): every message must still arrive as its own frame, in order with the direct
/// messages between them, counted once per recipient, and the ones before a protocol
/// error in the same write are still delivered.
fn bursts_of_broadcasts_arrive_whole_in_order_and_counted(setup: Setup) {
    let server = setup.start();
    let (mut alice, cookies) = tcp_client(&server);
    let (mut bob, _) = unix_client(&server);
    let mut control = server.control();
    let token = cookies.token.as_bytes();
    // Lengths around the frame header's boundaries; two messages are too large to share
    // a batch (64 KiB) with anything. Everything fits the clients' outbound bound, as
    // they read only after the whole burst is written.
    const SIZES: [usize; 6] = [0, 1, 125, 126, 4000, 300];
    const ROUNDS: usize = 12;
    let mut burst = Vec::new();
    let mut to_both = Vec::new();
    let mut to_alice = Vec::new();
    for round in 0..ROUNDS {
        for index in 0..25 {
            let size = match (round, index) {
                (1, 5) => 65_530,
                (2, 0) => 70_000,
                _ => SIZES[(round + index) % SIZES.len()],
            };
            let fill = b'a' + (index % 26) as u8;
            let mut message = vec![fill; size];
            let label = format!("{round}/{index}");
            if size >= label.len() {
                message[..label.len()].copy_from_slice(label.as_bytes());
            }
            let (command, opcode) = if index % 3 == 0 {
                (b'B', OpCode::Binary)
            } else {
                (b'b', OpCode::Text)
            };
            codec_frame(&mut burst, command, &message);
            to_both.push(frame(true, opcode, &message));
            to_alice.push(frame(true, opcode, &message));
        }
        let direct = format!("direct {round}");
        codec_frame(&mut burst, b'd', &[token, direct.as_bytes()].concat());
        to_alice.push(text(&direct));
    }
    control.send_raw(&burst);
    // Alice's frames come in one order on her socket, Bob's on his: read both in turn so
    // neither socket buffer fills while the other is read.
    let (mut alice_next, mut bob_next) = (0, 0);
    while alice_next < to_alice.len() || bob_next < to_both.len() {
        if let Some(expected) = to_alice.get(alice_next) {
            assert_eq!(&alice.recv_data(), expected, "alice's message {alice_next}");
            alice_next += 1;
        }
        if let Some(expected) = to_both.get(bob_next) {
            assert_eq!(&bob.recv_data(), expected, "bob's message {bob_next}");
            bob_next += 1;
        }
    }
    let report = status(&mut control);
    let deliveries = 2 * to_both.len() + (to_alice.len() - to_both.len());
    assert_eq!(counter(&report, "messages_out"), deliveries as u64);
    assert_eq!(counter(&report, "control_frames"), (ROUNDS * 26 + 1) as u64);

    // Broadcasts and then a frame with an unknown command, in one write.
    let mut tail = Vec::new();
    codec_frame(&mut tail, b'b', b"before the error 1");
    codec_frame(&mut tail, b'B', b"before the error 2");
    tail.extend_from_slice(b"1~x");
    control.send_raw(&tail);
    expect_reply(&mut control, b'E', b"");
    for client in [&mut alice, &mut bob] {
        assert_eq!(client.recv_data(), text("before the error 1"));
        assert_eq!(
            client.recv_data(),
            frame(true, OpCode::Binary, b"before the error 2")
        );
    }
    expect_control_closed(&mut control);
}

fn codec_frame(out: &mut Vec<u8>, command: u8, payload: &[u8]) {
    wson::control::codec::encode(command, payload, out);
}
