//! Topics for plain clients (issue 10, section 3; COMMANDS.md `j J r R x X h H v`): the
//! backend subscribes tokens and users, publishes, and asks who subscribes; limits answer
//! `!` and change nothing; names follow WAMP's URI rules. Scenarios that talk to the control
//! socket run over a Unix and a TCP control endpoint.

use serde_json::json;
use wson::control::command::Reply;
use wson::ws::frame::OpCode;

use crate::common::*;

over_both_control_kinds!(
    j_subscribes_a_token_and_x_upper_x_reach_only_subscribers,
    upper_j_subscribes_the_user_now_and_connections_that_open_later,
    r_and_upper_r_unsubscribe_as_commands_md_states,
    subscribed_by_token_and_by_user_a_connection_gets_each_publication_once,
    h_upper_h_and_v_answer_as_commands_md_shows,
    a_user_subscription_keeps_its_topic_while_the_user_is_offline,
    a_connection_that_leaves_leaves_its_topics,
    subscribers_and_topics_page_past_one_page_each_once_in_order,
    max_per_connection_refuses_with_bang_and_changes_nothing,
    max_topics_refuses_a_new_topic_with_bang_and_changes_nothing,
    max_user_subscriptions_refuses_with_bang_and_changes_nothing,
    a_user_subscription_past_max_per_connection_skips_the_topics_past_it,
    invalid_reserved_and_long_topics_get_0e,
    messages_of_one_control_connection_keep_their_order_across_b_c_u_x,
    publications_to_topics_in_any_order_reach_each_client_in_order,
    php_backend_subscribes_and_publishes_to_python_tabs,
);

/// `j`/`J`/`r`/`R` on a target (a token's text or a user) and a topic.
fn sub(control: &mut Control, command: u8, target: &str, topic: &str) -> u64 {
    control.count(command, &[target.as_bytes(), topic.as_bytes()])
}

fn publish(control: &mut Control, topic: &str, message: &str) {
    control.send_fields(b'x', &[topic.as_bytes(), message.as_bytes()]);
}

/// The topics `v` lists, with their counts (one page is enough in these tests).
fn topics(control: &mut Control) -> Vec<(String, u64)> {
    control.whole_list(b'v', &[], 1000)
}

fn subscribers(control: &mut Control, topic: &str) -> Vec<(String, u64)> {
    control.whole_list(b'h', &[topic.as_bytes()], 1000)
}

fn listed(items: &[(&str, u64)]) -> Vec<(String, u64)> {
    items
        .iter()
        .map(|(name, count)| (name.to_string(), *count))
        .collect()
}

fn j_subscribes_a_token_and_x_upper_x_reach_only_subscribers(setup: Setup) {
    let server = setup.start();
    let (mut first, first_cookies) = server.user_client("alice");
    let (mut second, second_cookies) = server.unix_user_client("alice");
    let (mut bob, bob_cookies) = server.user_client("bob");
    let mut control = server.control();

    assert_eq!(
        sub(&mut control, b'j', &first_cookies.token_str(), "news.sport"),
        1
    );
    assert_eq!(
        sub(&mut control, b'j', &bob_cookies.token_str(), "news.sport"),
        1
    );
    // Subscribing again changes nothing but still counts the connection.
    assert_eq!(
        sub(&mut control, b'j', &bob_cookies.token_str(), "news.sport"),
        1
    );
    // A token nobody holds matches nothing.
    assert_eq!(
        sub(&mut control, b'j', &unique_token_text(), "news.sport"),
        0
    );
    control.send_raw(b"20x10:news.sport5:Goal!");
    control.send_raw(b"17X10:news.sport2:\x00\xff");
    publish(&mut control, "news.sport", "");
    publish(&mut control, "news", "no one subscribes to the parent");
    publish(&mut control, "news.sport.tennis", "nor to a child");
    for client in [&mut first, &mut bob] {
        assert_eq!(client.recv_text(), "Goal!");
        assert_eq!(client.recv_binary(), b"\x00\xff");
        assert_eq!(client.recv_text(), "");
    }
    nothing_more(&mut control, &mut first, &first_cookies.token);
    nothing_more(&mut control, &mut bob, &bob_cookies.token);
    nothing_more(&mut control, &mut second, &second_cookies.token);
    // x and X have no reply.
    control.send(b'p', b"");
    assert_eq!(control.reply_text(), "0P");
}

fn unique_token_text() -> String {
    String::from_utf8(unique_token().as_bytes().to_vec()).unwrap()
}

fn upper_j_subscribes_the_user_now_and_connections_that_open_later(setup: Setup) {
    let server = setup.start();
    let (mut first, first_cookies) = server.user_client("alice");
    let (mut second, _) = server.unix_user_client("alice");
    let (mut bob, bob_cookies) = server.user_client("bob");
    let mut control = server.control();

    assert_eq!(sub(&mut control, b'J', "alice", "chat"), 2);
    // An offline user: nothing subscribed now; the subscription waits for its connection.
    assert_eq!(sub(&mut control, b'J', "carol", "chat"), 0);
    let (mut third, _) = server.user_client("alice");
    let (mut carol, carol_cookies) = server.user_client("carol");
    publish(&mut control, "chat", "hello all");
    for client in [&mut first, &mut second, &mut third, &mut carol] {
        assert_eq!(client.recv_text(), "hello all");
    }
    nothing_more(&mut control, &mut bob, &bob_cookies.token);
    assert_eq!(control.subscriber_count("chat"), (2, 4));
    assert_eq!(
        subscribers(&mut control, "chat"),
        listed(&[("alice", 3), ("carol", 1)])
    );
    // J again: the user's connections are all in; it counts them.
    assert_eq!(sub(&mut control, b'J', "alice", "chat"), 3);
    publish(&mut control, "chat", "once");
    assert_eq!(first.recv_text(), "once");
    nothing_more(&mut control, &mut first, &first_cookies.token);
    assert_eq!(carol.recv_text(), "once");
    nothing_more(&mut control, &mut carol, &carol_cookies.token);
}

/// COMMANDS.md's example: alice has two connections, one holding the token. `j` subscribes
/// that one; `J` both, the first already was; `R` unsubscribes both; `r` finds none left.
fn r_and_upper_r_unsubscribe_as_commands_md_states(setup: Setup) {
    let server = setup.start();
    let (mut holder, cookies) = server.user_client("alice");
    let (mut other, other_cookies) = server.user_client("alice");
    let token = cookies.token_str();
    let mut control = server.control();

    assert_eq!(sub(&mut control, b'j', &token, "news.sport"), 1);
    assert_eq!(sub(&mut control, b'J', "alice", "news.sport"), 2);
    assert_eq!(sub(&mut control, b'R', "alice", "news.sport"), 2);
    assert_eq!(sub(&mut control, b'r', &token, "news.sport"), 0);
    publish(&mut control, "news.sport", "after R");
    nothing_more(&mut control, &mut holder, &cookies.token);
    nothing_more(&mut control, &mut other, &other_cookies.token);
    // R ended the user subscription: a new connection is not subscribed either.
    let (mut later, later_cookies) = server.user_client("alice");
    publish(&mut control, "news.sport", "still after R");
    nothing_more(&mut control, &mut later, &later_cookies.token);
    assert_eq!(topics(&mut control), Vec::new());

    // `r` unsubscribes a connection subscribed by `J`; the user subscription stays for
    // the others and for connections that open later.
    assert_eq!(sub(&mut control, b'J', "alice", "chat"), 3);
    assert_eq!(sub(&mut control, b'r', &token, "chat"), 1);
    let (mut newest, _) = server.user_client("alice");
    publish(&mut control, "chat", "to the subscribed");
    for client in [&mut other, &mut later, &mut newest] {
        assert_eq!(client.recv_text(), "to the subscribed");
    }
    nothing_more(&mut control, &mut holder, &cookies.token);
    // `R` unsubscribes connections subscribed by `j` too.
    assert_eq!(sub(&mut control, b'j', &token, "chat"), 1);
    assert_eq!(sub(&mut control, b'R', "alice", "chat"), 4);
    assert_eq!(sub(&mut control, b'R', "alice", "chat"), 0);
    assert_eq!(control.subscriber_count("chat"), (0, 0));
    // The wire form.
    control.send_raw(b"48r32:");
    control.send_raw(token.as_bytes());
    control.send_raw(b"10:news.sport");
    assert_eq!(control.reply_text(), "1#0");
}

fn subscribed_by_token_and_by_user_a_connection_gets_each_publication_once(setup: Setup) {
    let server = setup.set("users.token_reuse", r#""share""#).start();
    let (mut first, cookies) = server.user_client("alice");
    let mut twin = WsClient::connect_tcp(&server.tcp(), &cookies).expect("shared token");
    let mut control = server.control();
    let token = cookies.token_str();

    assert_eq!(sub(&mut control, b'j', &token, "news"), 2);
    assert_eq!(sub(&mut control, b'J', "alice", "news"), 2);
    assert_eq!(sub(&mut control, b'j', &token, "news"), 2);
    assert_eq!(control.subscriber_count("news"), (1, 2));
    publish(&mut control, "news", "once");
    control.send_fields(b'X', &[b"news", b"\x01"]);
    for client in [&mut first, &mut twin] {
        assert_eq!(client.recv_text(), "once");
        assert_eq!(client.recv_binary(), b"\x01");
    }
    let marker = nothing_more(&mut control, &mut first, &cookies.token);
    assert_eq!(twin.recv_text(), marker);
}

/// The replies of COMMANDS.md's `h`, `H`, `v` example, byte for byte: alice has two
/// connections subscribed to news.sport and one to chat, bob one to news.sport.
fn h_upper_h_and_v_answer_as_commands_md_shows(setup: Setup) {
    let server = setup.start();
    let (_a1, a1) = server.user_client("alice");
    let (_a2, a2) = server.user_client("alice");
    let (_b1, b1) = server.user_client("bob");
    let mut control = server.control();
    for cookies in [&a1, &a2, &b1] {
        assert_eq!(
            sub(&mut control, b'j', &cookies.token_str(), "news.sport"),
            1
        );
    }
    assert_eq!(sub(&mut control, b'j', &a1.token_str(), "chat"), 1);

    control.send_raw(b"13h10:news.sport");
    assert_eq!(control.reply_text(), "20L0:5:alice1:23:bob1:1");
    control.send_raw(b"13H10:news.sport");
    assert_eq!(control.reply_text(), "3#2 3");
    control.send_raw(b"0v");
    assert_eq!(control.reply_text(), "27L0:4:chat1:110:news.sport1:3");
    // A topic nobody subscribes to.
    control.send_raw(b"7h5:empty");
    assert_eq!(control.reply_text(), "2L0:");
    control.send_raw(b"7H5:empty");
    assert_eq!(control.reply_text(), "3#0 0");
}

fn a_user_subscription_keeps_its_topic_while_the_user_is_offline(setup: Setup) {
    let server = setup.start();
    let mut control = server.control();
    assert_eq!(sub(&mut control, b'J', "carol", "alerts"), 0);
    assert_eq!(topics(&mut control), listed(&[("alerts", 0)]));
    assert_eq!(control.subscriber_count("alerts"), (0, 0));
    assert_eq!(subscribers(&mut control, "alerts"), Vec::new());
    assert_eq!(control.status()["user_subscriptions"], 1);

    let (carol, _) = server.user_client("carol");
    assert_eq!(topics(&mut control), listed(&[("alerts", 1)]));
    assert_eq!(subscribers(&mut control, "alerts"), listed(&[("carol", 1)]));
    carol.leave();
    eventually("carol is offline", || control.online("carol") == 0);
    // Still subscribed as a user.
    assert_eq!(topics(&mut control), listed(&[("alerts", 0)]));
    let (mut back, back_cookies) = server.user_client("carol");
    publish(&mut control, "alerts", "welcome back");
    assert_eq!(back.recv_text(), "welcome back");
    nothing_more(&mut control, &mut back, &back_cookies.token);
    assert_eq!(sub(&mut control, b'R', "carol", "alerts"), 1);
    assert_eq!(topics(&mut control), Vec::new());
    assert_eq!(control.status()["user_subscriptions"], 0);
}

fn a_connection_that_leaves_leaves_its_topics(setup: Setup) {
    let server = setup.start();
    let (leaving, leaving_cookies) = server.user_client("alice");
    let (mut staying, staying_cookies) = server.user_client("bob");
    let mut control = server.control();
    assert_eq!(
        sub(&mut control, b'j', &leaving_cookies.token_str(), "news"),
        1
    );
    assert_eq!(
        sub(&mut control, b'j', &leaving_cookies.token_str(), "solo"),
        1
    );
    assert_eq!(
        sub(&mut control, b'j', &staying_cookies.token_str(), "news"),
        1
    );
    assert_eq!(topics(&mut control), listed(&[("news", 2), ("solo", 1)]));
    leaving.leave();
    eventually("alice is offline", || control.online("alice") == 0);
    // A topic without subscribers is gone; the other counts one less.
    assert_eq!(topics(&mut control), listed(&[("news", 1)]));
    assert_eq!(control.subscriber_count("news"), (1, 1));
    publish(&mut control, "news", "to bob");
    assert_eq!(staying.recv_text(), "to bob");
    nothing_more(&mut control, &mut staying, &staying_cookies.token);
}

fn subscribers_and_topics_page_past_one_page_each_once_in_order(setup: Setup) {
    let server = setup.set("max_list_page", "2").start();
    let users = ["erin", "bob", "dave", "alice", "carol"];
    let mut clients = Vec::new();
    for user in users {
        clients.push(server.user_client(user));
    }
    clients.push(server.user_client("dave"));
    let mut control = server.control();
    for user in users {
        assert!(sub(&mut control, b'J', user, "room") >= 1);
    }
    let topic_names = ["t.e", "t.c", "t.a", "t.d", "t.b"];
    for topic in topic_names {
        assert_eq!(sub(&mut control, b'J', "alice", topic), 1);
    }
    let expected_users = listed(&[
        ("alice", 1),
        ("bob", 1),
        ("carol", 1),
        ("dave", 2),
        ("erin", 1),
    ]);
    for limit in [1, 2, 1000] {
        assert_eq!(control.whole_list(b'h', &[b"room"], limit), expected_users);
    }
    let expected_topics = listed(&[
        ("room", 6),
        ("t.a", 1),
        ("t.b", 1),
        ("t.c", 1),
        ("t.d", 1),
        ("t.e", 1),
    ]);
    for limit in [1, 2, 1000] {
        assert_eq!(control.whole_list(b'v', &[], limit), expected_topics);
    }
    let first = control.page(b'h', &[b"room"]);
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.next_cursor, b"bob");
}

fn max_per_connection_refuses_with_bang_and_changes_nothing(setup: Setup) {
    let server = setup.set("topics.max_per_connection", "2").start();
    let (mut alice, cookies) = server.user_client("alice");
    let (_other, _) = server.user_client("alice");
    let token = cookies.token_str();
    let mut control = server.control();
    assert_eq!(sub(&mut control, b'j', &token, "a"), 1);
    assert_eq!(sub(&mut control, b'j', &token, "b"), 1);
    control.expect_refused(
        b'j',
        &[token.as_bytes(), b"c"],
        "topic limit per connection reached",
    );
    // Again for a topic it is in already: no new topic, so no refusal.
    assert_eq!(sub(&mut control, b'j', &token, "b"), 1);
    // J: one of alice's connections is full, so nothing happens for any of them.
    control.expect_refused(
        b'J',
        &[b"alice", b"c"],
        "topic limit per connection reached",
    );
    assert_eq!(topics(&mut control), listed(&[("a", 1), ("b", 1)]));
    assert_eq!(control.status()["user_subscriptions"], 0);
    // The wire form of the refusal.
    control.send_fields(b'j', &[token.as_bytes(), b"d"]);
    assert_eq!(
        control.reply_text(),
        "34!topic limit per connection reached"
    );
    // The connection stays open and alice is not in c.
    publish(&mut control, "c", "not for alice");
    publish(&mut control, "a", "for alice");
    assert_eq!(alice.recv_text(), "for alice");
    nothing_more(&mut control, &mut alice, &cookies.token);
    // After leaving one, there is room again.
    assert_eq!(sub(&mut control, b'r', &token, "a"), 1);
    assert_eq!(sub(&mut control, b'j', &token, "c"), 1);
}

fn max_topics_refuses_a_new_topic_with_bang_and_changes_nothing(setup: Setup) {
    let server = setup.set("topics.max_topics", "2").start();
    let (mut alice, cookies) = server.user_client("alice");
    let token = cookies.token_str();
    let mut control = server.control();
    assert_eq!(sub(&mut control, b'j', &token, "a"), 1);
    assert_eq!(sub(&mut control, b'J', "carol", "b"), 0);
    control.expect_refused(b'j', &[token.as_bytes(), b"c"], "topic limit reached");
    control.expect_refused(b'J', &[b"alice", b"c"], "topic limit reached");
    control.send_fields(b'J', &[b"bob", b"d"]);
    assert_eq!(control.reply_text(), "19!topic limit reached");
    assert_eq!(topics(&mut control), listed(&[("a", 1), ("b", 0)]));
    assert_eq!(control.status()["user_subscriptions"], 1);
    // Existing topics still take subscribers.
    assert_eq!(sub(&mut control, b'j', &token, "b"), 1);
    assert_eq!(sub(&mut control, b'J', "alice", "a"), 1);
    publish(&mut control, "b", "b");
    assert_eq!(alice.recv_text(), "b");
    nothing_more(&mut control, &mut alice, &cookies.token);
}

fn max_user_subscriptions_refuses_with_bang_and_changes_nothing(setup: Setup) {
    let server = setup.set("topics.max_user_subscriptions", "1").start();
    let (mut bob, bob_cookies) = server.user_client("bob");
    let mut control = server.control();
    assert_eq!(sub(&mut control, b'J', "alice", "a"), 0);
    control.expect_refused(b'J', &[b"bob", b"b"], "user subscription limit reached");
    control.send_fields(b'J', &[b"bob", b"a"]);
    assert_eq!(control.reply_text(), "31!user subscription limit reached");
    // The same subscription again is no new one.
    assert_eq!(sub(&mut control, b'J', "alice", "a"), 0);
    // Token subscriptions are not user subscriptions.
    assert_eq!(sub(&mut control, b'j', &bob_cookies.token_str(), "b"), 1);
    assert_eq!(topics(&mut control), listed(&[("a", 0), ("b", 1)]));
    assert_eq!(control.status()["user_subscriptions"], 1);
    publish(&mut control, "a", "not for bob");
    nothing_more(&mut control, &mut bob, &bob_cookies.token);
    // Ending one makes room.
    assert_eq!(sub(&mut control, b'R', "alice", "a"), 0);
    assert_eq!(sub(&mut control, b'J', "bob", "a"), 1);
}

/// COMMANDS.md: a connection that a user subscription would put past `max_per_connection`
/// when it opens is not subscribed to the topics past the limit.
fn a_user_subscription_past_max_per_connection_skips_the_topics_past_it(setup: Setup) {
    let server = setup.set("topics.max_per_connection", "1").start();
    let mut control = server.control();
    assert_eq!(sub(&mut control, b'J', "alice", "first"), 0);
    assert_eq!(sub(&mut control, b'J', "alice", "second"), 0);
    let (mut alice, cookies) = server.user_client("alice");
    publish(&mut control, "second", "past the limit");
    publish(&mut control, "first", "within the limit");
    assert_eq!(alice.recv_text(), "within the limit");
    nothing_more(&mut control, &mut alice, &cookies.token);
    assert_eq!(topics(&mut control), listed(&[("first", 1), ("second", 0)]));
}

fn invalid_reserved_and_long_topics_get_0e(setup: Setup) {
    let server = setup.set("topics.max_name_length", "12").start();
    let (mut alice, cookies) = server.user_client("alice");
    let token = cookies.token_str();
    let bad_topics: [&[u8]; 13] = [
        b"",
        b".news",
        b"news.",
        b"news..sport",
        b"news sport",
        b"news\tsport",
        "news\u{feff}sport".as_bytes(),
        "news\u{2003}".as_bytes(),
        b"news#1",
        b"wamp.session",
        b"wamp.x",
        b"news.sport.xy",
        b"\xffnews",
    ];
    for topic in bad_topics {
        for (command, values) in [
            (b'j', vec![token.as_bytes(), topic]),
            (b'J', vec![b"alice".as_slice(), topic]),
            (b'r', vec![token.as_bytes(), topic]),
            (b'R', vec![b"alice".as_slice(), topic]),
            (b'x', vec![topic, b"message"]),
            (b'X', vec![topic, b"\x00"]),
            (b'h', vec![topic]),
            (b'H', vec![topic]),
        ] {
            server.control().expect_error(command, &values);
        }
    }
    // Exactly max_name_length bytes is a topic; so is one of unusual but allowed characters.
    let mut control = server.control();
    assert_eq!(sub(&mut control, b'j', &token, "news.sport.1"), 1);
    assert_eq!(sub(&mut control, b'j', &token, "caf\u{e9}.*+-"), 1);
    // COMMANDS.md's error example, with its reserved topic.
    let mut raw = server.control();
    raw.send_raw(b"50j32:");
    raw.send_raw(token.as_bytes());
    raw.send_raw(b"12:wamp.session");
    assert_eq!(raw.reply(), (b'E', Vec::new()));
    assert_eq!(raw.try_reply(), None);
    publish(&mut control, "news.sport.1", "ok");
    assert_eq!(alice.recv_text(), "ok");
    nothing_more(&mut control, &mut alice, &cookies.token);
}

/// Broadcasts, confirmed and unconfirmed direct messages, user and topic messages, text and
/// binary, written at once by one control connection: each client gets its share in order.
fn messages_of_one_control_connection_keep_their_order_across_b_c_u_x(setup: Setup) {
    let server = setup.start();
    let (mut first, first_cookies) = server.user_client("alice");
    let (mut second, second_cookies) = server.unix_user_client("alice");
    let (mut bob, _) = server.user_client("bob");
    let mut control = server.control();
    assert_eq!(
        sub(&mut control, b'j', &second_cookies.token_str(), "feed"),
        1
    );
    assert_eq!(sub(&mut control, b'J', "bob", "feed"), 1);
    const COUNT: usize = 2000;
    let mut batch = Vec::new();
    let mut expected: [Vec<(OpCode, Vec<u8>)>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut acks = 0;
    let first_token = first_cookies.token.as_bytes().to_vec();
    for index in 0..COUNT {
        let message = format!("message {index}").into_bytes();
        let (command, payload, to): (u8, Vec<u8>, &[usize]) = match index % 6 {
            0 => (b'b', message.clone(), &[0, 1, 2]),
            1 => {
                acks += 1;
                (b'c', [first_token.clone(), message.clone()].concat(), &[0])
            }
            2 => (b'u', fields(&[b"alice", &message]), &[0, 1]),
            3 => (b'x', fields(&[b"feed", &message]), &[1, 2]),
            4 => (b'X', fields(&[b"feed", &message]), &[1, 2]),
            _ => (b'W', fields(&[b"alice", &message]), &[0, 1]),
        };
        wson::control::codec::encode(command, &payload, &mut batch);
        let opcode = if command.is_ascii_uppercase() && command != b'B' {
            OpCode::Binary
        } else {
            OpCode::Text
        };
        for &client in to {
            expected[client].push((opcode, message.clone()));
        }
    }
    control.send_raw(&batch);
    let clients = [&mut first, &mut second, &mut bob];
    let mut next = [0usize; 3];
    while (0..3).any(|client| next[client] < expected[client].len()) {
        for client in 0..3 {
            if let Some((opcode, payload)) = expected[client].get(next[client]) {
                let frame = clients[client].recv_data();
                assert_eq!(
                    (frame.opcode, String::from_utf8_lossy(&frame.payload)),
                    (*opcode, String::from_utf8_lossy(payload)),
                    "client {client}, message {}",
                    next[client]
                );
                next[client] += 1;
            }
        }
    }
    let mut replies = Vec::new();
    for _ in 0..acks + COUNT / 6 {
        replies.push(control.next_reply());
    }
    for (index, reply) in replies.iter().enumerate() {
        // c answers A, W answers #2, in the order they were sent.
        assert!(
            *reply == Reply::Ack(first_cookies.token) || *reply == Reply::Count(2),
            "reply {index}: {reply:?}"
        );
    }
    let kinds: Vec<bool> = replies.iter().map(|r| matches!(r, Reply::Ack(_))).collect();
    let sent: Vec<bool> = (0..COUNT)
        .filter(|index| index % 6 == 1 || index % 6 == 5)
        .map(|index| index % 6 == 1)
        .collect();
    assert_eq!(kinds, sent);
}

/// Publications to overlapping topics in a shuffled order, with broadcasts and some too
/// large to share a chunk between them, written at once: wson stages each topic's
/// publications as one chunk (src/server/hub/staging.rs), and still every client, in one
/// topic or in three, gets exactly its share in the order it was sent.
fn publications_to_topics_in_any_order_reach_each_client_in_order(setup: Setup) {
    let server = setup.start();
    // Client i's topics: a; b; a+b; a+b+c; c. Topic d has no subscriber.
    let memberships: [&[&str]; 5] = [&["a"], &["b"], &["a", "b"], &["a", "b", "c"], &["c"]];
    let mut clients = Vec::new();
    let mut control = server.control();
    for (index, topics) in memberships.iter().enumerate() {
        let (client, cookies) = if index.is_multiple_of(2) {
            server.user_client("alice")
        } else {
            server.unix_user_client("bob")
        };
        for topic in *topics {
            assert_eq!(sub(&mut control, b'j', &cookies.token_str(), topic), 1);
        }
        clients.push(client);
    }
    const COUNT: usize = 3000;
    let mut batch = Vec::new();
    let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); memberships.len()];
    // A fixed xorshift: the same shuffled order every run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for index in 0..COUNT {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut message = format!("message {index}").into_bytes();
        let pick = state % 41;
        let topic = match pick {
            0 => None,
            _ => Some(["a", "b", "c", "d"][(pick % 4) as usize]),
        };
        if state.is_multiple_of(97) {
            // Larger than a staged chunk may hold: it goes out on its own.
            message.resize(70 * 1024, b'.');
        }
        match topic {
            None => wson::control::codec::encode(b'b', &message, &mut batch),
            Some(topic) => wson::control::codec::encode(
                b'x',
                &fields(&[topic.as_bytes(), &message]),
                &mut batch,
            ),
        }
        for (client, topics) in memberships.iter().enumerate() {
            if topic.is_none_or(|topic| topics.contains(&topic)) {
                expected[client].push(message.clone());
            }
        }
    }
    control.send_raw(&batch);
    let mut next = vec![0usize; clients.len()];
    while (0..clients.len()).any(|client| next[client] < expected[client].len()) {
        for client in 0..clients.len() {
            if let Some(payload) = expected[client].get(next[client]) {
                let frame = clients[client].recv_data();
                assert!(
                    frame.payload == *payload,
                    "client {client}, message {}: got {:?}, expected {:?}",
                    next[client],
                    String::from_utf8_lossy(&frame.payload[..frame.payload.len().min(40)]),
                    String::from_utf8_lossy(&payload[..payload.len().min(40)]),
                );
                next[client] += 1;
            }
        }
    }
    // Nothing more: the next message each gets is a broadcast sent after them all.
    control.send_raw(&{
        let mut end = Vec::new();
        wson::control::codec::encode(b'b', b"end", &mut end);
        end
    });
    for client in &mut clients {
        assert_eq!(client.recv_data().payload, b"end");
    }
}

// --- Real clients ----------------------------------------------------------------------

/// A PHP backend subscribes alice (J), publishes text and binary (x, X), messages her (w),
/// asks who subscribes (H, h), unsubscribes her (R) and publishes again: her two Python tabs
/// get exactly what they should, in order.
fn php_backend_subscribes_and_publishes_to_python_tabs(setup: Setup) {
    let (Some(python), Some(php)) = (python(), php()) else {
        return;
    };
    let server = setup.start();
    let url = format!("ws://{}/", server.tcp());
    let mut tabs: Vec<Script> = (0..2)
        .map(|_| {
            let cookies = Cookies::fresh("alice");
            Script::spawn(
                &python,
                "py_tab.py",
                &["listen", &url, &cookies.header, ORIGIN],
            )
        })
        .collect();
    for tab in &mut tabs {
        assert_eq!(tab.next(), json!({"event": "open"}));
    }
    let mut backend = Script::spawn(
        &php,
        "php/publish.php",
        &[&php_address(&server), "alice", "news.sport"],
    );
    for expected in [
        json!({"command": "J", "reply": "#", "count": 2}),
        json!({"command": "w", "reply": "#", "count": 2}),
        json!({"command": "H", "reply": "#", "users": 1, "connections": 2}),
        json!({"command": "h", "reply": "L", "cursor": "", "items": [["alice", "2"]]}),
        json!({"command": "v", "reply": "L", "cursor": "", "items": [["news.sport", "2"]]}),
        json!({"command": "R", "reply": "#", "count": 2}),
        json!({"command": "w", "reply": "#", "count": 2}),
    ] {
        assert_eq!(backend.next(), expected);
    }
    backend.finish();
    for tab in &mut tabs {
        for expected in [
            json!({"event": "message", "kind": "text", "data": "Goal! \u{26bd}"}),
            json!({"event": "message", "kind": "binary", "hex": "00ff"}),
            json!({"event": "message", "kind": "text", "data": "direct"}),
            json!({"event": "message", "kind": "text", "data": "last"}),
        ] {
            assert_eq!(tab.next(), expected);
        }
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
