//! An open WebSocket session (issue 2): echo and ignore modes, ping/pong, the closing
//! handshake, token expiry on a timer, keepalive, protocol errors and their close codes, and
//! a slow consumer dropped while a reading client gets everything.

use wson::auth::Digest;
use wson::ws::frame::{self, OpCode};

use crate::common::*;

#[derive(Debug, Clone, Copy)]
enum Via {
    Tcp,
    Unix,
}

const VIAS: [Via; 2] = [Via::Tcp, Via::Unix];

fn connect(server: &Server, via: Via, cookies: &Cookies) -> WsClient {
    match via {
        Via::Tcp => WsClient::connect_tcp(&server.tcp(), cookies),
        Via::Unix => WsClient::connect_unix(&server.unix(), cookies),
    }
    .expect("101")
}

fn open(server: &Server, via: Via) -> (WsClient, Cookies) {
    let cookies = Cookies::fresh("alice");
    (connect(server, via, &cookies), cookies)
}

fn frame_of(fin: bool, opcode: OpCode, payload: &[u8]) -> Frame {
    Frame {
        fin,
        opcode,
        payload: payload.to_vec(),
    }
}

#[test]
fn echo_mode_echoes_text_and_binary_messages() {
    let server = Setup::new().echo().start();
    for via in VIAS {
        let (mut client, _) = open(&server, via);
        client.send_text("Hello, wson ✓");
        assert_eq!(
            client.recv_data(),
            frame_of(true, OpCode::Text, "Hello, wson ✓".as_bytes())
        );
        client.send(true, OpCode::Binary, b"\x00\x01\xfe\xff");
        assert_eq!(
            client.recv_data(),
            frame_of(true, OpCode::Binary, b"\x00\x01\xfe\xff")
        );
        client.send_text("");
        assert_eq!(client.recv_data(), frame_of(true, OpCode::Text, b""));
        // A fragmented message comes back whole, once complete.
        client.send(false, OpCode::Text, b"frag");
        client.send(false, OpCode::Continuation, b"men");
        client.send(true, OpCode::Continuation, b"ted");
        assert_eq!(
            client.recv_data(),
            frame_of(true, OpCode::Text, b"fragmented")
        );
        // A 70 000-byte message (64-bit length) too.
        let big = vec![0x5a; 70_000];
        client.send(true, OpCode::Binary, &big);
        assert_eq!(client.recv_data(), frame_of(true, OpCode::Binary, &big));
    }
}

#[test]
fn ignore_mode_is_the_default_and_sends_nothing_back() {
    let server = Setup::new().start();
    let mut control = server.control();
    for via in VIAS {
        let (mut client, _) = open(&server, via);
        client.send_text("nobody listens");
        client.send(true, OpCode::Binary, b"\x01\x02");
        // Make sure both were read before the marker is sent.
        client.send(true, OpCode::Ping, b"sync");
        assert_eq!(client.recv(), frame_of(true, OpCode::Pong, b"sync"));
        control.send(b'b', b"marker");
        assert_eq!(client.recv_data(), frame_of(true, OpCode::Text, b"marker"));
    }
    let status = control.status();
    assert_eq!(status["messages_in"], 4, "{status}");
}

#[test]
fn ping_gets_a_pong_with_the_same_payload() {
    let server = Setup::new().start();
    for via in VIAS {
        let (mut client, _) = open(&server, via);
        client.send(true, OpCode::Ping, b"payload 123");
        assert_eq!(client.recv(), frame_of(true, OpCode::Pong, b"payload 123"));
        client.send(true, OpCode::Ping, b"");
        assert_eq!(client.recv(), frame_of(true, OpCode::Pong, b""));
        let longest = [0xab; 125];
        client.send(true, OpCode::Ping, &longest);
        assert_eq!(client.recv(), frame_of(true, OpCode::Pong, &longest));
        // Inside a fragmented message too.
        client.send(false, OpCode::Text, b"a");
        client.send(true, OpCode::Ping, b"mid");
        assert_eq!(client.recv(), frame_of(true, OpCode::Pong, b"mid"));
    }
}

#[test]
fn client_close_1000_is_echoed_and_the_server_closes_the_connection() {
    let server = Setup::new().start();
    for via in VIAS {
        let (mut client, _) = open(&server, via);
        client.send_close(1000, "bye");
        let close = client.expect_close(1000);
        assert_eq!(close.opcode, OpCode::Close);
        assert_eq!(
            client.try_recv(),
            None,
            "the server closes the TCP connection"
        );
    }
    let mut control = server.control();
    eventually("no connection left", || {
        control.status()["connections"] == 0
    });
}

#[test]
fn token_expiry_closes_with_1000_expired_on_a_timer() {
    let server = Setup::new().set("token_lifetime", "60").start();
    // Issued 58 s ago: one or two seconds left. Both clients wait out the same time.
    let mut clients: Vec<WsClient> = VIAS
        .iter()
        .map(|&via| {
            let cookies = Cookies::signed("alice", now() - 58, SECRET.as_bytes(), Digest::Md5);
            connect(&server, via, &cookies)
        })
        .collect();
    for client in &mut clients {
        // No client traffic: the server acts on its own.
        let close = client.expect_close(1000);
        assert_eq!(close.close_reason(), "expired");
        client.send_close(1000, "");
        assert_eq!(client.try_recv(), None);
    }
}

#[test]
fn keepalive_ping_after_silence_and_a_silent_client_is_dropped() {
    let mut server = Setup::new().set("ping_interval", "1").start();
    let mut clients: Vec<WsClient> = VIAS.iter().map(|&via| open(&server, via).0).collect();
    for client in &mut clients {
        let ping = client.recv();
        assert_eq!(ping.opcode, OpCode::Ping, "{ping:?}");
    }
    for client in &mut clients {
        // No answer: dropped after a further interval, without a Close.
        assert_eq!(client.try_recv(), None);
        server.wait_for_log("reason=\"keepalive timeout\"");
    }
}

#[test]
fn keepalive_client_that_answers_stays_connected() {
    let server = Setup::new().set("ping_interval", "1").start();
    let mut clients: Vec<(WsClient, Cookies)> =
        VIAS.iter().map(|&via| open(&server, via)).collect();
    // Any frame is an answer: a pong, a data message, a ping of our own. Three rounds
    // outlast the one interval an unanswered ping is allowed.
    for round in 0..3 {
        for (client, _) in &mut clients {
            let ping = client.recv();
            assert_eq!(ping.opcode, OpCode::Ping, "round {round}: {ping:?}");
            match round {
                0 => client.send(true, OpCode::Pong, &ping.payload),
                1 => client.send_text("still here"),
                _ => client.send(true, OpCode::Ping, b"me too"),
            }
        }
    }
    let mut control = server.control();
    for (client, cookies) in &mut clients {
        control.direct(b'c', &cookies.token, b"alive");
        assert_eq!(control.reply().0, b'A');
        assert_eq!(client.recv_data(), frame_of(true, OpCode::Text, b"alive"));
    }
}

#[test]
fn unmasked_client_frame_is_closed_with_1002() {
    let server = Setup::new().echo().start();
    for via in VIAS {
        let (mut client, _) = open(&server, via);
        client.send_raw(&frame::encode_frame(true, OpCode::Text, b"hi"));
        client.expect_close(1002);
        assert_eq!(client.try_recv(), None);
    }
}

#[test]
fn invalid_utf8_text_is_closed_with_1007() {
    let server = Setup::new().echo().start();
    for via in VIAS {
        let (mut client, _) = open(&server, via);
        client.send(true, OpCode::Text, b"ok \xff\xfe");
        client.expect_close(1007);
        assert_eq!(client.try_recv(), None);
    }
}

#[test]
fn message_over_max_message_size_is_closed_with_1009() {
    let server = Setup::new().echo().set("max_message_size", "64").start();
    for via in VIAS {
        // Exactly the limit is fine.
        let (mut client, _) = open(&server, via);
        client.send(true, OpCode::Binary, &[7; 64]);
        assert_eq!(client.recv_data(), frame_of(true, OpCode::Binary, &[7; 64]));
        // One byte more is not.
        client.send(true, OpCode::Binary, &[7; 65]);
        client.expect_close(1009);
        assert_eq!(client.try_recv(), None);

        // Fragments adding up past the limit.
        let (mut client, _) = open(&server, via);
        client.send(false, OpCode::Text, &[b'a'; 40]);
        client.send(true, OpCode::Continuation, &[b'b'; 40]);
        client.expect_close(1009);
        assert_eq!(client.try_recv(), None);

        // A declared length over the limit is refused before its payload is sent.
        let (mut client, _) = open(&server, via);
        let mut header = vec![0x82, 0x80 | 126];
        header.extend_from_slice(&1000_u16.to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        client.send_raw(&header);
        client.expect_close(1009);
        assert_eq!(client.try_recv(), None);
    }
}

/// Broadcasts in steps the reading client keeps up with, while the other never reads.
#[test]
fn slow_consumer_is_dropped_and_counted_while_a_reader_gets_every_message() {
    const MESSAGE: usize = 8 * 1024;
    const BATCH: usize = 4;
    // Far more than any socket buffers can hold for a client that never reads.
    const MAX_BATCHES: usize = 64 * 1024 * 1024 / (MESSAGE * BATCH);
    let server = Setup::new()
        .set("max_control_frame", "16384")
        .set("max_outbound_buffer", "65536")
        .start();
    let (mut reader, _) = open(&server, Via::Tcp);
    let (mut sleeper, _) = open(&server, Via::Tcp);
    let (mut unix_reader, _) = open(&server, Via::Unix);
    let mut control = server.control();

    let mut sent = 0_usize;
    let mut dropped = false;
    for _ in 0..MAX_BATCHES {
        // Each message carries its sequence number; the rest is filler.
        for _ in 0..BATCH {
            let mut message = format!("{sent:08}").into_bytes();
            message.resize(MESSAGE, b'.');
            control.send(b'B', &message);
            sent += 1;
        }
        // The readers take the whole batch before the next, so they never fall behind.
        for index in sent - BATCH..sent {
            for client in [&mut reader, &mut unix_reader] {
                let frame = client.recv_data();
                assert_eq!(frame.opcode, OpCode::Binary);
                assert_eq!(frame.payload.len(), MESSAGE);
                assert_eq!(&frame.payload[..8], format!("{index:08}").as_bytes());
            }
        }
        let status = control.status();
        if status["slow_consumers_dropped"] == 1 {
            assert_eq!(status["connections"], 2, "{status}");
            dropped = true;
            break;
        }
        assert_eq!(status["slow_consumers_dropped"], 0, "{status}");
    }
    assert!(
        dropped,
        "the client that never reads was not dropped after {sent} messages"
    );

    // The sleeper finds its connection closed once it reads what was buffered.
    assert_eq!(sleeper.end_within(WAIT), End::Closed);
    // The readers go on receiving.
    control.send(b'b', b"after");
    assert_eq!(reader.recv_text(), "after");
    assert_eq!(unix_reader.recv_text(), "after");
    let status = control.status();
    assert_eq!(status["slow_consumers_dropped"], 1, "{status}");
    assert_eq!(status["connections"], 2, "{status}");
}
