//! The connect authorizer (issue 10, section 5; COMMANDS.md `z`, `Z` and Authorizer): with
//! `auth = "cookie+authorizer"` or `"authorizer"` an upgrade that passed its checks is held
//! while a control connection decides; allow (with a user and topics) or deny (with a
//! status and reason); a timeout, or no authorizer, falls back. Scenarios run over a Unix
//! and a TCP control endpoint.

use std::net::TcpStream;

use serde_json::json;
use wson::control::authorizer::AuthRequest;
use wson::control::command::Reply;
use wson::control::event::Event;

use crate::common::*;

over_both_control_kinds!(
    cookie_and_authorizer_allow_admits_joining_topics_and_may_name_another_user,
    deny_refuses_with_the_status_and_the_reason_in_the_body,
    bad_answers_get_0e_and_the_upgrade_falls_back,
    no_answer_in_time_falls_back_to_deny_503_and_a_late_answer_is_ignored,
    no_authorizer_connected_falls_back_at_once,
    fallback_allow_admits_with_the_cookie_identity,
    authorizer_mode_admits_a_session_cookie_only_with_the_named_user_and_a_wson_token,
    authorizer_mode_allow_without_a_user_is_0e,
    two_authorizers_take_turns,
    a_gone_authorizer_hands_its_pending_requests_to_the_other,
    the_last_authorizer_gone_its_pending_upgrades_fall_back,
    waiting_upgrades_are_bounded_and_count_toward_max_connections,
    an_upgrade_whose_client_left_is_forgotten,
    php_authorizer_checks_a_php_session_for_python_tabs,
);

fn with_auth(setup: Setup, auth: &str) -> Setup {
    setup.set("auth", &format!("{auth:?}"))
}

/// An upgrade request sent over TCP and not yet answered, and the client's address.
fn begin(server: &Server, cookie: &str, target: &str) -> (WsClient, String) {
    let stream = TcpStream::connect(server.tcp()).unwrap();
    let remote = stream.local_addr().unwrap().to_string();
    let mut client = WsClient::over(Box::new(stream));
    let request = request(&server.tcp(), cookie, Some(ORIGIN), "").replacen(
        "GET /ws ",
        &format!("GET {target} "),
        1,
    );
    client.send_raw(request.as_bytes());
    (client, remote)
}

fn cookie_and_authorizer_allow_admits_joining_topics_and_may_name_another_user(setup: Setup) {
    let server = with_auth(setup, "cookie+authorizer").start();
    let mut authorizer = server.control();
    authorizer.become_authorizer();
    let mut listener = server.control();
    listener.listen("", "connected,join");
    let mut control = server.control();

    let cookies = Cookies::fresh("alice");
    let (mut alice, remote) = begin(&server, &cookies.header, "/ws/chat?room=12&lang=en");
    let request = authorizer.next_request();
    assert_eq!(
        request.request(),
        AuthRequest {
            id: request.id(),
            listener: &server.endpoints[0],
            remote: &remote,
            origin: ORIGIN,
            path: "/ws/chat",
            query: "room=12&lang=en",
            cookie: cookies.header.as_bytes(),
            token: Some(cookies.token),
            user: "alice",
        }
    );
    // Held: not online until the authorizer answers.
    assert_eq!(control.online("alice"), 0);
    assert_eq!(control.status()["authorizations_waiting"], 1);
    // Allow with no user (the cookie's) and two topics, joined at once.
    authorizer.allow(request.id(), "", &["news.sport", "chat"]);
    alice.await_upgrade().expect("allowed");
    assert_eq!(control.online("alice"), 1);
    assert_eq!(control.subscriber_count("news.sport"), (1, 1));
    assert_eq!(control.subscriber_count("chat"), (1, 1));
    control.send_fields(b'x', &[b"chat", b"welcome"]);
    assert_eq!(alice.recv_text(), "welcome");
    match listener.next_event().event() {
        Event::Connected { token, user, .. } => assert_eq!((token, user), (cookies.token, "alice")),
        other => panic!("{other:?}"),
    }
    for topic in ["news.sport", "chat"] {
        listener.expect_event(Event::Join {
            user: "alice",
            topic,
        });
    }

    // The authorizer names another user: the connection is that user's, with its token.
    let other = Cookies::fresh("bob");
    let (mut admin, _) = begin(&server, &other.header, "/ws");
    let request = authorizer.next_request();
    assert_eq!(request.request().user, "bob");
    assert_eq!(request.request().query, "");
    authorizer.allow(request.id(), "admin", &[]);
    admin.await_upgrade().expect("allowed");
    assert_eq!(control.online("admin"), 1);
    assert_eq!(control.online("bob"), 0);
    assert_eq!(
        control.page(b'g', &[b"admin"]).items,
        vec![(other.token.as_bytes().to_vec(), 1)]
    );
    match listener.next_event().event() {
        Event::Connected { token, user, .. } => assert_eq!((token, user), (other.token, "admin")),
        other => panic!("{other:?}"),
    }
    assert_eq!(control.count(b'w', &[b"admin", b"hi admin"]), 1);
    assert_eq!(admin.recv_text(), "hi admin");
    assert_eq!(control.status()["authorizations_waiting"], 0);
}

fn deny_refuses_with_the_status_and_the_reason_in_the_body(setup: Setup) {
    let server = with_auth(setup, "cookie+authorizer").start();
    let mut authorizer = server.control();
    authorizer.become_authorizer();
    for (status, reason, phrase) in [
        (403, "not your room", "Forbidden"),
        (401, "", "Unauthorized"),
        (599, "caf\u{e9} ferm\u{e9}", ""),
        (429, "slow down", "Too Many Requests"),
    ] {
        let cookies = Cookies::fresh("alice");
        let (mut client, _) = begin(&server, &cookies.header, "/ws");
        let id = authorizer.next_request().id();
        authorizer.deny(id, status, reason);
        let refusal = client.await_upgrade().expect_err("denied");
        assert_eq!(refusal.status, status, "{}", refusal.raw);
        if !phrase.is_empty() {
            assert!(
                refusal
                    .raw
                    .starts_with(&format!("HTTP/1.1 {status} {phrase}\r\n"))
            );
        }
        let body = client.read_body(&refusal);
        assert!(body.contains(reason), "{body:?}");
        assert!(body.starts_with(&status.to_string()), "{body:?}");
    }
    // COMMANDS.md's deny on the wire.
    let cookies = Cookies::fresh("alice");
    let (mut client, _) = begin(&server, &cookies.header, "/ws");
    let id = authorizer.next_request().id().to_string();
    let payload = fields(&[id.as_bytes(), b"deny", b"403", b"not your room"]);
    authorizer.send(b'Z', &payload);
    let refusal = client.await_upgrade().expect_err("denied");
    assert_eq!(refusal.status, 403);
    assert_eq!(client.read_body(&refusal), "403 Forbidden\nnot your room\n");
    let mut control = server.control();
    assert_eq!(control.online("alice"), 0);
    assert_eq!(control.status()["handshakes_refused"], 5);
}

fn bad_answers_get_0e_and_the_upgrade_falls_back(setup: Setup) {
    let server = with_auth(setup, "cookie+authorizer").start();
    let long_reason = "r".repeat(124);
    let cases: [&[&[u8]]; 7] = [
        &[b"x1", b"allow"],
        &[b"1", b"maybe"],
        &[b"1", b"deny", b"399"],
        &[b"1", b"deny", b"600"],
        &[b"1", b"deny", b"403", long_reason.as_bytes()],
        &[b"1", b"deny", b"403", b"reason", b"extra"],
        &[b"1", b"allow", b"alice", b"wamp.meta"],
    ];
    for values in cases {
        let mut authorizer = server.control();
        authorizer.become_authorizer();
        let cookies = Cookies::fresh("alice");
        let (mut client, _) = begin(&server, &cookies.header, "/ws");
        let id = authorizer.next_request().id().to_string();
        let mut values = values.to_vec();
        if values[0] == b"1" {
            values[0] = id.as_bytes();
        }
        authorizer.expect_error(b'Z', &values);
        // Its only authorizer gone, the upgrade falls back: deny with 503.
        let refusal = client.await_upgrade().expect_err("fallback");
        assert_eq!(refusal.status, 503);
    }
}

fn no_answer_in_time_falls_back_to_deny_503_and_a_late_answer_is_ignored(setup: Setup) {
    let server = with_auth(setup, "cookie+authorizer")
        .set("authorizer.timeout", "1")
        .start();
    let mut authorizer = server.control();
    authorizer.become_authorizer();
    let cookies = Cookies::fresh("alice");
    let (mut client, _) = begin(&server, &cookies.header, "/ws");
    let id = authorizer.next_request().id();
    let refusal = client.await_upgrade().expect_err("timed out");
    assert_eq!(refusal.status, 503);
    let body = client.read_body(&refusal);
    assert!(body.starts_with("503 Service Unavailable\n"), "{body:?}");
    // Too late: ignored, with no reply, and the authorizer stays connected.
    authorizer.allow(id, "", &[]);
    authorizer.sync();
    let mut control = server.control();
    assert_eq!(control.online("alice"), 0);
    assert_eq!(control.status()["authorizers"], 1);
    // The next request goes to it as usual.
    let (mut next, _) = begin(&server, &Cookies::fresh("bob").header, "/ws");
    let request = authorizer.next_request();
    assert_ne!(request.id(), id);
    authorizer.allow(request.id(), "", &[]);
    next.await_upgrade().expect("allowed");
}

fn no_authorizer_connected_falls_back_at_once(setup: Setup) {
    let server = with_auth(setup, "cookie+authorizer").start();
    let (mut client, _) = begin(&server, &Cookies::fresh("alice").header, "/ws");
    assert_eq!(client.await_upgrade().expect_err("fallback").status, 503);
    // With another fallback status.
    let server = with_auth(Setup::new(), "authorizer")
        .set("authorizer.fallback_status", "429")
        .start();
    let (mut client, _) = begin(&server, "PHPSESSID=abc", "/ws");
    assert_eq!(client.await_upgrade().expect_err("fallback").status, 429);
}

fn fallback_allow_admits_with_the_cookie_identity(setup: Setup) {
    let server = with_auth(setup, "cookie+authorizer")
        .set("authorizer.fallback", r#""allow""#)
        .start();
    let cookies = Cookies::fresh("alice");
    let (mut client, _) = begin(&server, &cookies.header, "/ws");
    client.await_upgrade().expect("the fallback allows");
    let mut control = server.control();
    assert_eq!(control.online("alice"), 1);
    control.direct(b'c', &cookies.token, b"hello");
    assert_eq!(control.next_reply(), Reply::Ack(cookies.token));
    assert_eq!(client.recv_text(), "hello");
    // Invalid cookies are refused before any authorizer or fallback.
    let forged = Cookies::signed(
        "alice",
        now(),
        b"not-the-secret-0123456789",
        wson::auth::Digest::Md5,
    );
    let (mut refused, _) = begin(&server, &forged.header, "/ws");
    assert_eq!(refused.await_upgrade().expect_err("403").status, 403);
}

/// `auth = "authorizer"`: no wson cookies, a PHP session id the authorizer checks; wson
/// assigns the token and reports it in `connected`.
fn authorizer_mode_admits_a_session_cookie_only_with_the_named_user_and_a_wson_token(setup: Setup) {
    let server = with_auth(setup, "authorizer").start();
    let mut authorizer = server.control();
    authorizer.become_authorizer();
    let mut listener = server.control();
    listener.listen("", "connected");
    let mut control = server.control();

    // Two Cookie headers: the request carries them joined with `; `.
    let stream = TcpStream::connect(server.tcp()).unwrap();
    let remote = stream.local_addr().unwrap().to_string();
    let mut client = WsClient::over(Box::new(stream));
    let request = request(
        &server.tcp(),
        "PHPSESSID=9kf3b2ud8q",
        Some(ORIGIN),
        "Cookie: lang=en\r\n",
    )
    .replacen("GET /ws ", "GET /ws?room=12 ", 1);
    client.send_raw(request.as_bytes());
    let frame = authorizer.next_request();
    assert_eq!(
        frame.request(),
        AuthRequest {
            id: frame.id(),
            listener: &server.endpoints[0],
            remote: &remote,
            origin: ORIGIN,
            path: "/ws",
            query: "room=12",
            cookie: b"PHPSESSID=9kf3b2ud8q; lang=en",
            token: None,
            user: "",
        }
    );
    // The wire form: token and user are empty fields at the end.
    assert!(
        frame.0.ends_with(b"29:PHPSESSID=9kf3b2ud8q; lang=en0:0:"),
        "{frame:?}"
    );
    let id = frame.id().to_string();
    let allow = fields(&[id.as_bytes(), b"allow", b"alice", b"news.sport", b"chat"]);
    authorizer.send(b'Z', &allow);
    client.await_upgrade().expect("allowed");

    let token = match listener.next_event().event() {
        Event::Connected {
            token,
            user,
            remote: reported,
            path,
            ..
        } => {
            assert_eq!(
                (user, reported, path),
                ("alice", remote.as_str(), "/ws?room=12")
            );
            token
        }
        other => panic!("{other:?}"),
    };
    assert!(
        token
            .as_bytes()
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_".contains(byte)),
        "a cookie-safe token: {token:?}"
    );
    let token_text = String::from_utf8(token.as_bytes().to_vec()).unwrap();
    assert_eq!(
        control.page(b'g', &[b"alice"]).items,
        vec![(token_text.into_bytes(), 1)]
    );
    control.direct(b'c', &token, b"by the token wson gave");
    assert_eq!(control.next_reply(), Reply::Ack(token));
    assert_eq!(client.recv_text(), "by the token wson gave");
    control.send_fields(b'x', &[b"news.sport", b"goal"]);
    assert_eq!(client.recv_text(), "goal");

    // A second page load with the same session gets a token of its own.
    let (mut second, _) = begin(&server, "PHPSESSID=9kf3b2ud8q", "/ws");
    let id = authorizer.next_request().id();
    authorizer.allow(id, "alice", &[]);
    second.await_upgrade().expect("allowed");
    match listener.next_event().event() {
        Event::Connected { token: other, .. } => assert_ne!(other, token),
        other => panic!("{other:?}"),
    }
    assert_eq!(control.online("alice"), 2);
}

fn authorizer_mode_allow_without_a_user_is_0e(setup: Setup) {
    let server = with_auth(setup, "authorizer").start();
    let mut authorizer = server.control();
    authorizer.become_authorizer();
    let mut spare = server.control();
    spare.become_authorizer();
    let (mut client, _) = begin(&server, "PHPSESSID=abc", "/ws");
    let id = authorizer.next_request().id();
    authorizer.expect_error(b'Z', &[id.to_string().as_bytes(), b"allow"]);
    // The request went to the other authorizer, which answers it properly.
    let again = spare.next_request();
    assert_eq!(again.id(), id);
    spare.allow(id, "alice", &[]);
    client.await_upgrade().expect("allowed");
    // An empty user is no user either.
    let (mut other, _) = begin(&server, "PHPSESSID=def", "/ws");
    let id = spare.next_request().id();
    spare.expect_error(b'Z', &[id.to_string().as_bytes(), b"allow", b""]);
    assert_eq!(other.await_upgrade().expect_err("fallback").status, 503);
}

fn two_authorizers_take_turns(setup: Setup) {
    let server = with_auth(setup, "cookie+authorizer").start();
    let mut authorizers = [server.control(), server.control()];
    for authorizer in &mut authorizers {
        authorizer.become_authorizer();
    }
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for round in 0..4 {
        let (client, _) = begin(&server, &Cookies::fresh("alice").header, "/ws");
        clients.push(client);
        // In turn: the first registered takes the first request.
        let id = authorizers[round % 2].next_request().id();
        ids.push(id);
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 4, "unique ids: {ids:?}");
    for (round, id) in ids.iter().enumerate() {
        authorizers[round % 2].allow(*id, "", &[]);
    }
    for client in &mut clients {
        client.await_upgrade().expect("allowed");
    }
    assert_eq!(server.control().online("alice"), 4);
    // Neither got a request meant for the other.
    for authorizer in &mut authorizers {
        authorizer.sync();
        assert!(authorizer.held().is_empty(), "{:?}", authorizer.held());
    }
}

fn a_gone_authorizer_hands_its_pending_requests_to_the_other(setup: Setup) {
    let server = with_auth(setup, "cookie+authorizer").start();
    let mut first = server.control();
    first.become_authorizer();
    let mut second = server.control();
    second.become_authorizer();
    let (mut a, _) = begin(&server, &Cookies::fresh("alice").header, "/ws");
    let to_first = first.next_request();
    let (mut b, _) = begin(&server, &Cookies::fresh("bob").header, "/ws");
    let to_second = second.next_request();
    let (mut c, _) = begin(&server, &Cookies::fresh("carol").header, "/ws");
    let also_to_first = first.next_request();
    // The first goes away with two requests unanswered: the second gets them, unchanged.
    drop(first);
    let mut handed = vec![second.next_request(), second.next_request()];
    handed.sort_by_key(RequestFrame::id);
    assert_eq!(handed, vec![to_first, also_to_first]);
    for request in handed.iter().chain([&to_second]) {
        second.allow(request.id(), "", &[]);
    }
    for client in [&mut a, &mut b, &mut c] {
        client.await_upgrade().expect("allowed");
    }
    let mut control = server.control();
    assert_eq!(control.page(b'y', &[]).items.len(), 3);
    assert_eq!(control.status()["authorizers"], 1);
}

fn the_last_authorizer_gone_its_pending_upgrades_fall_back(setup: Setup) {
    let server = with_auth(setup, "cookie+authorizer").start();
    let mut authorizer = server.control();
    authorizer.become_authorizer();
    let (mut client, _) = begin(&server, &Cookies::fresh("alice").header, "/ws");
    authorizer.next_request();
    authorizer.send(b'q', b"");
    assert_eq!(authorizer.try_reply(), None);
    assert_eq!(client.await_upgrade().expect_err("fallback").status, 503);
}

fn waiting_upgrades_are_bounded_and_count_toward_max_connections(setup: Setup) {
    let server = with_auth(setup, "cookie+authorizer")
        .set("authorizer.max_pending", "1")
        .set("max_connections", "2")
        .start();
    let mut authorizer = server.control();
    authorizer.become_authorizer();
    let (mut waiting, _) = begin(&server, &Cookies::fresh("alice").header, "/ws");
    let id = authorizer.next_request().id();
    // A second upgrade while one waits: past max_pending, refused at once.
    let (mut second, _) = begin(&server, &Cookies::fresh("bob").header, "/ws");
    assert_eq!(second.await_upgrade().expect_err("max_pending").status, 503);
    // The waiting one and an open one fill max_connections.
    authorizer.allow(id, "", &[]);
    waiting.await_upgrade().expect("allowed");
    let (mut pending, _) = begin(&server, &Cookies::fresh("carol").header, "/ws");
    let id = authorizer.next_request().id();
    let mut third = WsClient::raw_tcp(&server.tcp());
    let refusal = third
        .upgrade(&request(
            &server.tcp(),
            &Cookies::fresh("dave").header,
            Some(ORIGIN),
            "",
        ))
        .expect_err("max_connections");
    assert_eq!(refusal.status, 503);
    authorizer.allow(id, "", &[]);
    pending.await_upgrade().expect("allowed");
}

/// The client gives up while its upgrade waits: it is dropped at once, not when the
/// authorizer's timeout (longer than this test's bound here) runs out.
fn an_upgrade_whose_client_left_is_forgotten(setup: Setup) {
    let server = with_auth(setup, "cookie+authorizer")
        .set("authorizer.timeout", "60")
        .start();
    let mut authorizer = server.control();
    authorizer.become_authorizer();
    let cookies = Cookies::fresh("alice");
    let (client, _) = begin(&server, &cookies.header, "/ws");
    let id = authorizer.next_request().id();
    drop(client);
    let mut control = server.control();
    eventually("nothing waits", || {
        control.status()["authorizations_waiting"] == 0
    });
    // Its answer comes to nothing; the token is free for the next page load.
    authorizer.allow(id, "", &[]);
    authorizer.sync();
    assert_eq!(control.online("alice"), 0);
    let (mut again, _) = begin(&server, &cookies.header, "/ws");
    let id = authorizer.next_request().id();
    authorizer.allow(id, "", &[]);
    again.await_upgrade().expect("allowed");
}

// --- Real clients ----------------------------------------------------------------------

/// A PHP authorizer (`php/authorizer.php`) admits the Python tab whose PHP session it
/// knows, as alice with the topic `news`, and refuses the other with 403 and its reason.
fn php_authorizer_checks_a_php_session_for_python_tabs(setup: Setup) {
    let (Some(python), Some(php)) = (python(), php()) else {
        return;
    };
    let server = with_auth(setup, "authorizer").start();
    let mut php_authorizer = Script::spawn(&php, "php/authorizer.php", &[&php_address(&server)]);
    assert_eq!(php_authorizer.next(), json!({"event": "ready"}));
    let url = format!("ws://{}/ws?room=7", server.tcp());
    let mut good = Script::spawn(
        &python,
        "py_tab.py",
        &["listen", &url, "PHPSESSID=good-session; lang=en", ORIGIN],
    );
    let decision = php_authorizer.next();
    assert_eq!(decision["decision"], "allow");
    assert_eq!(decision["path"], "/ws");
    assert_eq!(decision["query"], "room=7");
    assert_eq!(decision["origin"], ORIGIN);
    assert_eq!(decision["token"], "");
    assert_eq!(good.next(), json!({"event": "open"}));
    let mut control = server.control();
    assert_eq!(control.online("alice"), 1);
    control.send_fields(b'x', &[b"news", b"for the session"]);
    assert_eq!(
        good.next(),
        json!({"event": "message", "kind": "text", "data": "for the session"})
    );

    let mut bad = Script::spawn(
        &python,
        "py_tab.py",
        &["listen", &url, "PHPSESSID=stolen", ORIGIN],
    );
    assert_eq!(php_authorizer.next()["decision"], "deny");
    assert_eq!(
        bad.next(),
        json!({"event": "refused", "status": 403, "body": "403 Forbidden\nunknown session\n"})
    );
    bad.finish();
    assert_eq!(control.count(b'K', &[b"alice"]), 1);
    assert_eq!(
        good.next(),
        json!({"event": "close", "code": 4000, "reason": "kicked"})
    );
    good.finish();
}
