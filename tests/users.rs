//! Users (issue 10, section 2; COMMANDS.md `u U w W o g y k K`): a user holds many
//! connections, each with its own token; the backend messages, counts, lists and kicks them;
//! `[users] token_reuse` decides what a second connection with a token already held gets.
//! Scenarios that talk to the control socket run over a Unix and a TCP control endpoint.

use wson::control::command::Reply;

use crate::common::*;

over_both_control_kinds!(
    u_upper_u_w_upper_w_reach_every_connection_of_the_user,
    o_g_and_y_count_and_list_connections_tokens_and_users,
    k_closes_one_token_and_upper_k_every_connection_of_the_user,
    an_offline_user_counts_zero_and_lists_empty,
    a_connection_that_leaves_is_no_longer_counted,
    user_commands_with_bad_fields_get_0e_and_close,
    token_reuse_replace_closes_the_old_connection_with_4001_replaced,
    token_reuse_share_reaches_every_holder_and_k_closes_them_all,
    online_users_page_past_one_page_each_user_once_in_order,
);

/// Alice with three connections (two over TCP, one over the Unix listener), Bob with one.
struct Family {
    alice: Vec<(WsClient, Cookies)>,
    bob: (WsClient, Cookies),
}

fn family(server: &Server) -> Family {
    Family {
        alice: vec![
            server.user_client("alice"),
            server.unix_user_client("alice"),
            server.user_client("alice"),
        ],
        bob: server.user_client("bob"),
    }
}

fn u_upper_u_w_upper_w_reach_every_connection_of_the_user(setup: Setup) {
    let server = setup.start();
    let Family {
        mut alice,
        bob: (mut bob, bob_cookies),
    } = family(&server);
    let mut control = server.control();

    control.send_fields(b'u', &[b"alice", "New order \u{2713}".as_bytes()]);
    control.send_fields(b'U', &[b"alice", b"\x00\x01\xff"]);
    control.send_fields(b'u', &[b"alice", b""]);
    assert_eq!(control.count(b'w', &[b"alice", b"Hello"]), 3);
    assert_eq!(control.count(b'W', &[b"alice", b"\xff"]), 3);
    assert_eq!(control.count(b'w', &[b"bob", b"for bob"]), 1);
    // The wire form of COMMANDS.md: `14w5:alice5:Hello` answers `1#3`.
    control.send_raw(b"14w5:alice5:Hello");
    assert_eq!(control.reply_text(), "1#3");

    for (client, _) in &mut alice {
        assert_eq!(client.recv_text(), "New order \u{2713}");
        assert_eq!(client.recv_binary(), b"\x00\x01\xff");
        assert_eq!(client.recv_text(), "");
        assert_eq!(client.recv_text(), "Hello");
        assert_eq!(client.recv_binary(), b"\xff");
        assert_eq!(client.recv_text(), "Hello");
    }
    for (client, cookies) in &mut alice {
        nothing_more(&mut control, client, &cookies.token);
    }
    assert_eq!(bob.recv_text(), "for bob");
    nothing_more(&mut control, &mut bob, &bob_cookies.token);
}

fn o_g_and_y_count_and_list_connections_tokens_and_users(setup: Setup) {
    let server = setup.start();
    let family = family(&server);
    let mut control = server.control();

    assert_eq!(control.online("alice"), 3);
    assert_eq!(control.online("bob"), 1);
    let mut tokens: Vec<(String, u64)> = family
        .alice
        .iter()
        .map(|(_, cookies)| (cookies.token_str(), 1))
        .collect();
    tokens.sort();
    let page = control.page(b'g', &[b"alice"]);
    assert!(page.next_cursor.is_empty(), "{page:?}");
    let listed: Vec<(String, u64)> = page
        .items
        .iter()
        .map(|(name, count)| (String::from_utf8(name.clone()).unwrap(), *count))
        .collect();
    assert_eq!(listed, tokens);
    // One token a page: the cursor is the token just listed.
    assert_eq!(control.whole_list(b'g', &[b"alice"], 1), tokens);
    // `y`, as on the wire in COMMANDS.md.
    control.send_raw(b"0y");
    assert_eq!(control.reply_text(), "20L0:5:alice1:33:bob1:1");
    control.send_raw(b"5y0:1:1");
    assert_eq!(control.reply_text(), "17L5:alice5:alice1:3");
    control.send_raw(b"10y5:alice1:1");
    assert_eq!(control.reply_text(), "10L0:3:bob1:1");
}

fn k_closes_one_token_and_upper_k_every_connection_of_the_user(setup: Setup) {
    let server = setup.start();
    let Family {
        mut alice,
        bob: (mut bob, bob_cookies),
    } = family(&server);
    let mut control = server.control();

    let (mut first, first_cookies) = alice.remove(0);
    let token = first_cookies.token_str();
    assert_eq!(
        control.count(b'k', &[token.as_bytes(), b"4008", b"banned"]),
        1
    );
    first.expect_closed_with(4008, "banned");
    assert_eq!(control.online("alice"), 2);
    // A token nobody holds any more: nothing to close.
    assert_eq!(control.count(b'k', &[token.as_bytes()]), 0);
    control.direct(b'c', &first_cookies.token, b"gone?");
    assert_eq!(control.next_reply(), Reply::Nack(first_cookies.token));

    // `K` with the defaults: 4000 `kicked`.
    assert_eq!(control.count(b'K', &[b"alice"]), 2);
    for (client, _) in &mut alice {
        client.expect_closed_with(4000, "kicked");
    }
    assert_eq!(control.online("alice"), 0);
    assert_eq!(control.count(b'K', &[b"alice"]), 0);
    assert_eq!(control.count(b'K', &[b"carol"]), 0);

    // An empty code with a reason: 4000 and that reason. Bob's the only one left.
    let page = control.page(b'y', &[]);
    assert_eq!(page.items, vec![(b"bob".to_vec(), 1)]);
    bob.send_text("still here");
    nothing_more(&mut control, &mut bob, &bob_cookies.token);
    control.send_raw(b"20K3:bob0:10:logged out");
    assert_eq!(control.reply_text(), "1#1");
    bob.expect_closed_with(4000, "logged out");
    assert_eq!(control.page(b'y', &[]).items, Vec::new());
}

fn an_offline_user_counts_zero_and_lists_empty(setup: Setup) {
    let server = setup.start();
    let mut control = server.control();
    control.send_raw(b"7o5:carol");
    assert_eq!(control.reply_text(), "1#0");
    control.send_raw(b"8W3:bob1:\xff");
    assert_eq!(control.reply_text(), "1#0");
    assert_eq!(control.count(b'w', &[b"carol", b"hello"]), 0);
    control.send_raw(b"7g5:carol");
    assert_eq!(control.reply_text(), "2L0:");
    control.send_raw(b"0y");
    assert_eq!(control.reply_text(), "2L0:");
    // `u` to nobody answers nothing: the next reply is the ping's.
    control.send_fields(b'u', &[b"carol", b"hello"]);
    control.send_fields(b'U', &[b"carol", b"\x00"]);
    control.send(b'p', b"");
    assert_eq!(control.reply_text(), "0P");
}

fn a_connection_that_leaves_is_no_longer_counted(setup: Setup) {
    let server = setup.start();
    let Family { mut alice, bob: _ } = family(&server);
    let mut control = server.control();
    let (leaving, _) = alice.remove(1);
    leaving.leave();
    eventually("alice has two connections left", || {
        control.online("alice") == 2
    });
    assert_eq!(control.count(b'w', &[b"alice", b"to the two"]), 2);
    for (client, cookies) in &mut alice {
        assert_eq!(client.recv_text(), "to the two");
        nothing_more(&mut control, client, &cookies.token);
    }
    let tokens: Vec<String> = control
        .page(b'g', &[b"alice"])
        .items
        .into_iter()
        .map(|(token, _)| String::from_utf8(token).unwrap())
        .collect();
    let mut expected: Vec<String> = alice.iter().map(|(_, c)| c.token_str()).collect();
    expected.sort();
    assert_eq!(tokens, expected);
}

fn user_commands_with_bad_fields_get_0e_and_close(setup: Setup) {
    let server = setup.start();
    let (mut alice, cookies) = server.user_client("alice");
    let long_user = "u".repeat(256);
    let long_reason = "r".repeat(124);
    let long_cursor = "c".repeat(256);
    let token = cookies.token_str();
    let cases: Vec<(u8, Vec<&[u8]>)> = vec![
        (b'u', vec![b"", b"hello"]),
        (b'w', vec![long_user.as_bytes(), b"hello"]),
        (b'w', vec![b"alice", b"\xff not UTF-8"]),
        (b'u', vec![b"alice"]),
        (b'o', vec![b"alice", b"extra"]),
        (b'o', vec![b"\xffalice"]),
        (b'k', vec![&token.as_bytes()[..31]]),
        (b'k', vec![token.as_bytes(), b"1005"]),
        (b'K', vec![b"alice", b"999"]),
        (b'K', vec![b"alice", b"4000", long_reason.as_bytes()]),
        (b'g', vec![b"alice", long_cursor.as_bytes()]),
        (b'y', vec![b"", b"0"]),
        (b'y', vec![b"", b"ten"]),
    ];
    for (command, values) in cases {
        server.control().expect_error(command, &values);
    }
    // The raw frames of COMMANDS.md's Errors section.
    for raw in [&b"13K5:alice4:1005"[..], b"5y0:1:0", b"2o5:", b"6o5:alic"] {
        let mut control = server.control();
        control.send_raw(raw);
        assert_eq!(control.reply(), (b'E', Vec::new()));
        assert_eq!(control.try_reply(), None);
    }
    // None of it touched Alice.
    let mut control = server.control();
    assert_eq!(control.online("alice"), 1);
    nothing_more(&mut control, &mut alice, &cookies.token);
}

#[test]
fn token_reuse_refuse_is_the_default_429_with_retry_after() {
    let server = Setup::new().start();
    let (mut first, cookies) = server.user_client("alice");
    let mut second = WsClient::raw_tcp(&server.tcp());
    let refusal = second
        .upgrade(&request(&server.tcp(), &cookies.header, Some(ORIGIN), ""))
        .expect_err("a token already connected is refused");
    assert_eq!(refusal.status, 429, "{}", refusal.raw);
    let retry_after: u64 = refusal
        .header("Retry-After")
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {}", refusal.raw));
    assert!(retry_after > 0);
    assert_eq!(
        second.read_body(&refusal),
        "429 Too Many Requests\ntoken already connected\n"
    );
    // The same with token_reuse spelled out.
    let server_explicit = Setup::new().set("users.token_reuse", r#""refuse""#).start();
    let (_held, held_cookies) = server_explicit.user_client("alice");
    let refusal = WsClient::connect_tcp(&server_explicit.tcp(), &held_cookies)
        .err()
        .expect("refused");
    assert_eq!(refusal.status, 429);

    // The first connection keeps its token.
    let mut control = server.control();
    assert_eq!(control.online("alice"), 1);
    control.direct(b'c', &cookies.token, b"still yours");
    assert_eq!(control.next_reply(), Reply::Ack(cookies.token));
    assert_eq!(first.recv_text(), "still yours");
}

fn token_reuse_replace_closes_the_old_connection_with_4001_replaced(setup: Setup) {
    let server = setup.set("users.token_reuse", r#""replace""#).start();
    let (mut old, cookies) = server.user_client("alice");
    let mut new = WsClient::connect_tcp(&server.tcp(), &cookies).expect("the newcomer is admitted");
    old.expect_closed_with(4001, "replaced");

    let mut control = server.control();
    control.direct(b'c', &cookies.token, b"to the new tab");
    assert_eq!(control.next_reply(), Reply::Ack(cookies.token));
    assert_eq!(new.recv_text(), "to the new tab");
    assert_eq!(control.online("alice"), 1);
    assert_eq!(
        control.page(b'g', &[b"alice"]).items,
        vec![(cookies.token.as_bytes().to_vec(), 1)]
    );

    // A third connection replaces the second, over the Unix listener this time.
    let mut third = WsClient::connect_unix(&server.unix(), &cookies).expect("admitted");
    new.expect_closed_with(4001, "replaced");
    control.direct(b'd', &cookies.token, b"to the third");
    assert_eq!(third.recv_text(), "to the third");
    nothing_more(&mut control, &mut third, &cookies.token);
}

fn token_reuse_share_reaches_every_holder_and_k_closes_them_all(setup: Setup) {
    let server = setup.set("users.token_reuse", r#""share""#).start();
    let (mut first, cookies) = server.user_client("alice");
    let mut second = WsClient::connect_unix(&server.unix(), &cookies).expect("shared");
    let (mut other, other_cookies) = server.user_client("alice");
    let mut control = server.control();

    control.direct(b'c', &cookies.token, b"confirmed");
    assert_eq!(control.next_reply(), Reply::Ack(cookies.token));
    control.direct(b'd', &cookies.token, b"unconfirmed");
    control.direct(b'C', &cookies.token, b"\x00\x01");
    assert_eq!(control.next_reply(), Reply::Ack(cookies.token));
    for client in [&mut first, &mut second] {
        assert_eq!(client.recv_text(), "confirmed");
        assert_eq!(client.recv_text(), "unconfirmed");
        assert_eq!(client.recv_binary(), b"\x00\x01");
    }
    assert_eq!(control.online("alice"), 3);
    let mut expected = vec![(cookies.token_str(), 2), (other_cookies.token_str(), 1)];
    expected.sort();
    assert_eq!(control.whole_list(b'g', &[b"alice"], 1), expected);
    // A token held twice cannot be locked for a fragmented message: two connections could
    // not receive one stream of fragments from one lock.
    control.send(b'l', cookies.token.as_bytes());
    assert_eq!(control.next_reply(), Reply::Nack(cookies.token));

    let token = cookies.token_str();
    assert_eq!(control.count(b'k', &[token.as_bytes()]), 2);
    first.expect_closed_with(4000, "kicked");
    second.expect_closed_with(4000, "kicked");
    control.direct(b'c', &cookies.token, b"");
    assert_eq!(control.next_reply(), Reply::Nack(cookies.token));
    assert_eq!(control.online("alice"), 1);
    nothing_more(&mut control, &mut other, &other_cookies.token);
}

fn online_users_page_past_one_page_each_user_once_in_order(setup: Setup) {
    let server = setup.set("max_list_page", "2").start();
    let names = ["erin", "bob", "dave", "alice", "carol"];
    let mut clients = Vec::new();
    for (index, name) in names.iter().enumerate() {
        // erin gets two connections, the others one.
        clients.push(server.user_client(name));
        if index == 0 {
            clients.push(server.user_client(name));
        }
    }
    let mut control = server.control();
    let expected: Vec<(String, u64)> = ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .map(|name| (name.to_string(), if *name == "erin" { 2 } else { 1 }))
        .collect();
    // A limit above max_list_page is lowered to it; no limit is max_list_page.
    assert_eq!(control.whole_list(b'y', &[], 1000), expected);
    assert_eq!(control.whole_list(b'y', &[], 2), expected);
    assert_eq!(control.whole_list(b'y', &[], 1), expected);
    let first = control.page(b'y', &[]);
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.next_cursor, b"bob");
    // A cursor that is no user's name still pages by byte order.
    let page = control.page(b'y', &[b"c", b"1"]);
    assert_eq!(page.items, vec![(b"carol".to_vec(), 1)]);
    assert_eq!(page.next_cursor, b"carol");
    // A user who leaves between two pages is simply not on the later one.
    let (leaving, _) = clients.remove(3);
    leaving.leave();
    eventually("dave is offline", || control.online("dave") == 0);
    let rest = control.page(b'y', &[b"carol"]);
    assert_eq!(rest.items, vec![(b"erin".to_vec(), 2)]);
    assert!(rest.next_cursor.is_empty());
}

// --- Real clients ----------------------------------------------------------------------

/// Three tabs of alice in Python `websockets`; a PHP backend sends them a confirmed
/// message, counts and lists them, then kicks the user: every tab sees the message and
/// the Close with the PHP script's code and reason.
fn php_backend_messages_counts_and_kicks_three_python_tabs(setup: Setup) {
    let (Some(python), Some(php)) = (python(), php()) else {
        return;
    };
    let server = setup.start();
    let url = format!("ws://{}/", server.tcp());
    let mut tabs: Vec<(Script, Cookies)> = (0..3)
        .map(|_| {
            let cookies = Cookies::fresh("alice");
            let tab = Script::spawn(
                &python,
                "py_tab.py",
                &["listen", &url, &cookies.header, ORIGIN],
            );
            (tab, cookies)
        })
        .collect();
    for (tab, _) in &mut tabs {
        assert_eq!(tab.next(), serde_json::json!({"event": "open"}));
    }
    let mut backend = Script::spawn(&php, "php/user.php", &[&php_address(&server), "alice"]);
    assert_eq!(
        backend.next(),
        serde_json::json!({"command": "w", "reply": "#", "count": 3})
    );
    assert_eq!(
        backend.next(),
        serde_json::json!({"command": "o", "reply": "#", "count": 3})
    );
    let mut tokens: Vec<String> = tabs
        .iter()
        .map(|(_, cookies)| cookies.token_str())
        .collect();
    tokens.sort();
    assert_eq!(
        backend.next(),
        serde_json::json!({"command": "g", "reply": "L", "cursor": "",
            "items": tokens.iter().map(|token| serde_json::json!([token, "1"])).collect::<Vec<_>>()})
    );
    assert_eq!(
        backend.next(),
        serde_json::json!({"command": "K", "reply": "#", "count": 3})
    );
    backend.finish();
    for (tab, _) in &mut tabs {
        assert_eq!(
            tab.next(),
            serde_json::json!({"event": "message", "kind": "text", "data": "Your order shipped \u{2713}"})
        );
        assert_eq!(
            tab.next(),
            serde_json::json!({"event": "close", "code": 4003, "reason": "see you"})
        );
        tab.finish();
    }
}

over_both_control_kinds!(php_backend_messages_counts_and_kicks_three_python_tabs);
