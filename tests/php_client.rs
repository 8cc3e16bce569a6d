//! The PHP kit (`clients/php/Wson.php`) against the real daemon: scripts under
//! `tests/clients/php/kit*.php` drive it with php-cli, and the test checks what the PHP side
//! got back (acks, counts, pages, events, WAMP messages, fragments, errors, timeouts, a
//! reconnect after a restart) and what real WebSocket clients received. The cookie helper
//! runs in PHP's built-in server.

use serde_json::{Value, json};
use wson::ws::frame::OpCode;

use crate::common::{Cookies, ORIGIN, SECRET, Script, Setup, WsClient, php, php_address, request};
use crate::php::{PhpServer, get};

fn expect(script: &mut Script, step: &str, value: Value) {
    assert_eq!(script.next(), json!({"step": step, "value": value}));
}

fn expect_event(script: &mut Script, kind: &str, user: &str, topic: &str) {
    let event = json!({"kind": kind, "user": user, "topic": topic});
    assert_eq!(script.next(), json!({"step": "event", "value": event}));
}

fn expect_frame(client: &mut WsClient, opcode: OpCode, payload: &[u8]) {
    let frame = client.recv_data();
    assert_eq!((frame.opcode, frame.payload.as_slice()), (opcode, payload));
}

/// Every command the kit wraps, from one PHP object: replies parsed, events set aside
/// while replies are read, a limit raised as `WsonRefusedException`, a `0E` as
/// `WsonProtocolException` and the next command on a new connection.
fn kit_commands_reach_clients_and_replies_are_parsed(setup: Setup) {
    let Some(php) = php() else { return };
    let server = setup.set("topics", "{ max_per_connection = 2 }").start();
    let (alice_cookies, bob_cookies) = (Cookies::fresh("alice"), Cookies::fresh("bob"));
    let mut alice = WsClient::connect_tcp(&server.tcp(), &alice_cookies).unwrap();
    let mut bob = WsClient::connect_tcp(&server.tcp(), &bob_cookies).unwrap();
    let (a, b) = (alice_cookies.token_str(), bob_cookies.token_str());
    let mut kit = Script::spawn(&php, "php/kit.php", &[&php_address(&server), &a, &b]);
    expect(&mut kit, "c", json!(true));
    expect(&mut kit, "c nobody", json!(false));
    expect(&mut kit, "C", json!(true));
    expect(&mut kit, "online check", json!(true));
    expect(&mut kit, "w", json!(1));
    expect(&mut kit, "W", json!(0));
    expect(&mut kit, "o", json!(1));
    expect(&mut kit, "j", json!(1));
    expect(&mut kit, "J", json!(1));
    expect_event(&mut kit, "join", "alice", "news");
    expect_event(&mut kit, "join", "bob", "news");
    expect(&mut kit, "V subscribed", json!([33, 1]));
    expect(&mut kit, "V event", json!([36, true, ["goal"]]));
    expect(&mut kit, "x options", json!(["the backend hears this"]));
    expect(&mut kit, "H", json!({"users": 2, "connections": 2}));
    expect(
        &mut kit,
        "h page 1",
        json!({"items": {"alice": 1}, "next": "alice"}),
    );
    let page_2 = kit.next();
    assert_eq!(page_2["value"]["items"], json!({"bob": 1}), "{page_2}");
    expect(&mut kit, "h each", json!({"alice": 1, "bob": 1}));
    expect(&mut kit, "v", json!({"items": {"news": 2}, "next": null}));
    expect(
        &mut kit,
        "y",
        json!({"items": {"alice": 1, "bob": 1}, "next": null}),
    );
    expect(
        &mut kit,
        "g",
        json!({"items": {a.clone(): 1}, "next": null}),
    );
    expect(&mut kit, "j sport", json!(1));
    expect(
        &mut kit,
        "refused",
        json!("topic limit per connection reached"),
    );
    expect(&mut kit, "r", json!(1));
    expect(&mut kit, "R", json!(1));
    expect_event(&mut kit, "join", "alice", "sport");
    expect_event(&mut kit, "leave", "alice", "news");
    expect_event(&mut kit, "leave", "bob", "news");
    expect(&mut kit, "no event", json!(null));
    expect(&mut kit, "t", json!({"connections": 2, "pid": true}));
    expect(&mut kit, "m", json!(true));
    expect(&mut kit, "O", json!(0));
    expect(&mut kit, "0E", json!("WsonProtocolException"));
    expect(&mut kit, "o after 0E", json!(1));
    expect(&mut kit, "fragments", json!(true));
    expect(&mut kit, "fragments nobody", json!(false));
    expect(&mut kit, "k", json!(1));
    expect(&mut kit, "K", json!(1));
    kit.finish();

    expect_frame(&mut alice, OpCode::Text, b"hello everyone");
    expect_frame(&mut alice, OpCode::Binary, b"\x00\x01\xFF");
    expect_frame(&mut alice, OpCode::Text, b"c to alice");
    expect_frame(&mut alice, OpCode::Binary, b"\xFF");
    expect_frame(&mut alice, OpCode::Text, "w to alice \u{2713}".as_bytes());
    expect_frame(&mut alice, OpCode::Text, b"goal");
    expect_frame(&mut alice, OpCode::Binary, b"\x05");
    expect_frame(&mut alice, OpCode::Text, b"not for the backend");
    expect_frame(&mut alice, OpCode::Text, b"the backend hears this");
    for (fin, opcode, payload) in [
        (false, OpCode::Text, &b"Hel"[..]),
        (false, OpCode::Continuation, b"lo, "),
        (true, OpCode::Continuation, b"World!"),
    ] {
        let frame = alice.recv_data();
        assert_eq!(
            (frame.fin, frame.opcode, &frame.payload[..]),
            (fin, opcode, payload)
        );
    }
    assert_eq!(alice.expect_close(4003).close_reason(), "bye");

    expect_frame(&mut bob, OpCode::Text, b"hello everyone");
    expect_frame(&mut bob, OpCode::Binary, b"\x00\x01\xFF");
    expect_frame(&mut bob, OpCode::Text, b"d to bob");
    expect_frame(&mut bob, OpCode::Binary, b"\x02");
    expect_frame(&mut bob, OpCode::Text, b"u to bob");
    expect_frame(&mut bob, OpCode::Binary, b"\x04");
    expect_frame(&mut bob, OpCode::Text, b"goal");
    expect_frame(&mut bob, OpCode::Binary, b"\x05");
    expect_frame(&mut bob, OpCode::Text, b"not for the backend");
    expect_frame(&mut bob, OpCode::Text, b"the backend hears this");
    assert_eq!(bob.expect_close(4000).close_reason(), "kicked");
}

over_both_control_kinds!(kit_commands_reach_clients_and_replies_are_parsed);

/// A server that accepts and never answers, and one that is not there: each command raises
/// `WsonConnectionException` within its timeout; waiting for an event that does not come
/// is `null`, not an error.
#[test]
fn kit_times_out_against_a_silent_server_and_fails_fast_without_one() {
    let Some(php) = php() else { return };
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.sock");
    let mut kit = Script::spawn(&php, "php/kit_timeouts.php", &[absent.to_str().unwrap()]);
    let case =
        |case: &str, raised: Value| json!({"case": case, "raised": raised, "within_timeout": true});
    assert_eq!(kit.next(), case("reply", json!("WsonConnectionException")));
    assert_eq!(kit.next(), case("status", json!("WsonConnectionException")));
    assert_eq!(kit.next(), case("no event", json!(null)));
    // A new connection for each command after a failure, and no command sent twice.
    assert_eq!(kit.next(), json!({"connections": 3}));
    assert_eq!(kit.next(), case("absent", json!("WsonConnectionException")));
    kit.finish();
}

/// One PHP object across a restart of wson: while wson is down a command raises, and once
/// it is back the next command connects again and reaches a client of the new server.
#[test]
fn kit_reconnects_for_the_next_command_after_wson_restarts() {
    let Some(php) = php() else { return };
    let sockets = tempfile::tempdir().unwrap();
    let control = format!(
        "\"unix://{}\"",
        sockets.path().join("control.sock").display()
    );
    let setup = Setup::new().set("control", &control);
    let mut server = setup.clone().start();
    let cookies = Cookies::fresh("alice");
    let _first = WsClient::connect_tcp(&server.tcp(), &cookies).unwrap();
    let folder = sockets.path().to_str().unwrap().to_string();
    let mut kit = Script::spawn(
        &php,
        "php/kit_restart.php",
        &[&php_address(&server), &folder],
    );
    expect(&mut kit, "before", json!(1));
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(server.wait_exit(), Some(0));
    drop(server);
    std::fs::write(sockets.path().join("stopped"), "").unwrap();
    expect(&mut kit, "while stopped", json!("WsonConnectionException"));

    let server = setup.start();
    let mut client = WsClient::connect_tcp(&server.tcp(), &Cookies::fresh("alice")).unwrap();
    std::fs::write(sockets.path().join("started"), "").unwrap();
    expect(&mut kit, "after", json!(1));
    kit.finish();
    expect_frame(&mut client, OpCode::Text, b"after the restart");
}

/// `Wson::issueCookies` in a PHP web server: four cookies with the attributes asked for,
/// which wson accepts, for each digest (md5 as ws(s)on, and hmac-sha256).
#[test]
fn kit_cookies_open_a_websocket_with_either_digest() {
    if php().is_none() {
        return;
    }
    let router = crate::common::clients_dir().join("php/kit_login.php");
    for digest in ["md5", "hmac-sha256"] {
        let server = Setup::new().set("digest", &format!("{digest:?}")).start();
        let web = PhpServer::start(&router, &[("WSON_SECRET", SECRET), ("WSON_DIGEST", digest)]);
        let response = get(web.port, "/?user=Zo%C3%AB%20K");
        assert_eq!(response.status, 200, "{response:?}");
        let set_cookies: Vec<&String> = response
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, value)| value)
            .collect();
        assert_eq!(set_cookies.len(), 4, "{set_cookies:?}");
        for cookie in &set_cookies {
            for attribute in ["; path=/", "; secure", "; HttpOnly", "; SameSite=Strict"] {
                assert!(cookie.contains(attribute), "{attribute} in {cookie}");
            }
        }
        assert_eq!(
            response.cookie("token").as_deref(),
            Some(response.body.as_str())
        );
        assert_eq!(response.cookie("user").as_deref(), Some("Zo%C3%AB%20K"));
        let addr = server.tcp();
        let mut client = WsClient::raw_tcp(&addr);
        client
            .upgrade(&request(&addr, &response.cookie_header(), Some(ORIGIN), ""))
            .unwrap_or_else(|refusal| panic!("{digest}: refused {}", refusal.raw));
        let mut control = server.control();
        let mut fields = Vec::new();
        for value in ["Zo\u{eb} K", "signed in"] {
            fields.extend_from_slice(format!("{}:{value}", value.len()).as_bytes());
        }
        control.send(b'w', &fields);
        assert_eq!(control.reply(), (b'#', b"1".to_vec()));
        expect_frame(&mut client, OpCode::Text, b"signed in");
    }
}

/// The ```php block after `<!-- kit-php: NAME -->` in clients/php/README.md.
fn kit_readme_php(name: &str) -> String {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/php/README.md"),
    )
    .unwrap();
    let marker = format!("<!-- kit-php: {name} -->");
    let rest = &readme[readme.find(&marker).expect("the marker") + marker.len()..];
    let start = rest.find("```php\n").expect("a ```php block") + 7;
    let end = rest[start..].find("```").expect("the end of the block") + start;
    rest[start..end].to_string()
}

/// clients/php/README.md's two examples, installed as it says (Wson.php copied beside
/// them) with only its placeholder folder replaced: the login's cookies open a WebSocket,
/// and the push reaches it four times (broadcast, token, user, topic).
#[test]
fn kit_readme_examples_sign_in_and_push() {
    if php().is_none() {
        return;
    }
    let server = Setup::new()
        .unset("secret")
        .set("secret_file", r#""secret""#)
        .start();
    let conf = format!("{}/", server.dir.path().display());
    let scripts = tempfile::tempdir().unwrap();
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        repository.join("clients/php/Wson.php"),
        scripts.path().join("Wson.php"),
    )
    .unwrap();
    let block = |name| kit_readme_php(name).replace("/path/to/wson/conf/", &conf);
    let login = format!(
        "<?php\n$user = $_GET['user'];\n$_SESSION = [];\n{}echo $_SESSION['wson_token'];\n",
        block("login")
    );
    std::fs::write(scripts.path().join("login.php"), login).unwrap();
    let push = format!(
        "<?php\n$_SESSION = ['wson_token' => $argv[1]];\n{}echo json_encode([$delivered, $tabs]);\n",
        block("push")
    );
    std::fs::write(scripts.path().join("push.php"), push).unwrap();

    let web = PhpServer::start(&scripts.path().join("login.php"), &[]);
    let login = get(web.port, "/?user=alice");
    assert_eq!(login.status, 200, "{login:?}");
    let addr = server.tcp();
    let mut client = WsClient::raw_tcp(&addr);
    client
        .upgrade(&request(&addr, &login.cookie_header(), Some(ORIGIN), ""))
        .unwrap_or_else(|refusal| panic!("refused: {}", refusal.raw));

    let output = crate::php::run_script(&scripts.path().join("push.php"), &[&login.body], &[]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "[true,1]",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let message = br#"{"event":"invoice-paid","id":42}"#;
    for _ in 0..4 {
        expect_frame(&mut client, OpCode::Text, message);
    }
}
