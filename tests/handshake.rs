//! The opening handshake (RFC 6455 §4 and issue 2), over TCP and Unix listeners: the 101,
//! every refusal with its status, `Connection: close` and the socket closed after it, the
//! cookie and origin checks, the limits, the handshake timeout and an early first frame.

use wson::auth::Digest;
use wson::ws::frame::OpCode;

use crate::common::*;

/// RFC 6455 §1.3's sample key and the accept value the RFC gives for it.
const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The listener a test connects through.
#[derive(Debug, Clone, Copy)]
enum Via {
    Tcp,
    Unix,
}

const VIAS: [Via; 2] = [Via::Tcp, Via::Unix];

fn raw(server: &Server, via: Via) -> WsClient {
    match via {
        Via::Tcp => WsClient::raw_tcp(&server.tcp()),
        Via::Unix => WsClient::raw_unix(&server.unix()),
    }
}

fn host(server: &Server, via: Via) -> String {
    match via {
        Via::Tcp => server.tcp(),
        Via::Unix => "localhost".to_string(),
    }
}

/// An upgrade request under construction: a request line and header lines, valid until a
/// test breaks one part of it.
struct Req {
    line: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn valid(server: &Server, via: Via, cookies: &Cookies) -> Req {
        Req::with_cookie_header(server, via, &cookies.header)
    }

    fn with_cookie_header(server: &Server, via: Via, cookie_header: &str) -> Req {
        Req {
            line: "GET /ws HTTP/1.1".to_string(),
            headers: [
                ("Host", host(server, via).as_str()),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", RFC_KEY),
                ("Sec-WebSocket-Version", "13"),
                ("Origin", ORIGIN),
                ("Cookie", cookie_header),
            ]
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        }
    }

    fn line(mut self, line: &str) -> Req {
        self.line = line.to_string();
        self
    }

    /// Replaces every header called `name` (any case) by one `name: value`.
    fn set(self, name: &str, value: &str) -> Req {
        self.without(name).add(name, value)
    }

    /// Adds a header line, keeping any others of the same name.
    fn add(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn without(mut self, name: &str) -> Req {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn text(&self) -> String {
        let mut text = format!("{}\r\n", self.line);
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        text
    }
}

/// Sends `request` and returns the response head of a 101, keeping the client open.
fn accepted(server: &Server, via: Via, request: &Req) -> WsClient {
    let mut client = raw(server, via);
    client.send_raw(request.text().as_bytes());
    let response = client.read_response();
    assert_eq!(
        response.status,
        101,
        "expected 101 over {via:?} for\n{}\ngot\n{}",
        request.text(),
        response.raw
    );
    client.response = Some(response);
    client
}

/// Sends `request`, expects a refusal with `status`, `Connection: close`, and the server
/// closing the socket once the response is written.
fn refused(server: &Server, via: Via, request: &Req, status: u16) -> HttpResponse {
    let mut client = raw(server, via);
    client.send_raw(request.text().as_bytes());
    let response = client.read_response();
    assert_refusal(&mut client, &response, status, via);
    response
}

fn assert_refusal(client: &mut WsClient, response: &HttpResponse, status: u16, via: Via) {
    assert_eq!(
        response.status, status,
        "over {via:?}, got\n{}",
        response.raw
    );
    assert_eq!(
        response.header("Connection").map(str::to_ascii_lowercase),
        Some("close".to_string()),
        "a refusal carries Connection: close:\n{}",
        response.raw
    );
    assert_eq!(
        client.end_within(WAIT),
        End::Closed,
        "the server closes the socket after a {status} over {via:?}"
    );
}

#[test]
fn upgrade_gets_101_with_the_rfc_accept_value_over_tcp_and_unix() {
    let server = Setup::new().start();
    for via in VIAS {
        let client = accepted(
            &server,
            via,
            &Req::valid(&server, via, &Cookies::fresh("alice")),
        );
        let response = client.response.as_ref().unwrap();
        assert_eq!(response.header("Sec-WebSocket-Accept"), Some(RFC_ACCEPT));
        assert_eq!(
            response.header("Upgrade").map(str::to_ascii_lowercase),
            Some("websocket".to_string())
        );
        assert!(
            response
                .header("Connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")),
            "{}",
            response.raw
        );
    }
}

#[test]
fn accept_value_is_computed_from_the_clients_key() {
    let server = Setup::new().start();
    for via in VIAS {
        let request = Req::valid(&server, via, &Cookies::fresh("alice"))
            .set("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw==");
        let client = accepted(&server, via, &request);
        assert_eq!(
            client
                .response
                .as_ref()
                .unwrap()
                .header("Sec-WebSocket-Accept"),
            Some("HSmrc0sMlYUkAGmm5OPpG2HaGWk=")
        );
    }
}

/// Changes one part of a valid request.
type Edit = fn(Req) -> Req;

#[test]
fn malformed_or_incomplete_requests_get_400() {
    let server = Setup::new().start();
    let cases: [(&str, Edit); 13] = [
        ("method not GET", |r| r.line("POST /ws HTTP/1.1")),
        ("HTTP/1.0", |r| r.line("GET /ws HTTP/1.0")),
        ("no Host", |r| r.without("Host")),
        ("no Upgrade", |r| r.without("Upgrade")),
        ("Upgrade names another protocol", |r| {
            r.set("Upgrade", "h2c")
        }),
        ("no Connection", |r| r.without("Connection")),
        ("Connection without upgrade", |r| {
            r.set("Connection", "keep-alive")
        }),
        ("no key", |r| r.without("Sec-WebSocket-Key")),
        ("key not base64", |r| {
            r.set("Sec-WebSocket-Key", "not base64 at all!!!!!!!")
        }),
        ("key of 15 bytes", |r| {
            r.set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA")
        }),
        ("key of 17 bytes", |r| {
            r.set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA=")
        }),
        ("no version", |r| r.without("Sec-WebSocket-Version")),
        ("not HTTP at all", |r| r.line("HELLO")),
    ];
    for via in VIAS {
        for (what, breaks) in cases {
            let request = breaks(Req::valid(&server, via, &Cookies::fresh("alice")));
            let mut client = raw(&server, via);
            client.send_raw(request.text().as_bytes());
            let response = client.read_response();
            assert_eq!(
                response.status, 400,
                "{what} over {via:?}:\n{}",
                response.raw
            );
            assert_refusal(&mut client, &response, 400, via);
        }
    }
}

#[test]
fn a_refusal_says_why_in_a_plain_text_body_without_secrets() {
    let server = Setup::new().start();
    for via in VIAS {
        let forged = Cookies::signed("alice", now(), b"not-the-server-secret", Digest::Md5);
        let cases: [(Req, u16, &str); 5] = [
            (
                Req::valid(&server, via, &Cookies::fresh("alice")).line("PUT /ws HTTP/1.1"),
                400,
                "400 Bad Request\nmethod \"PUT\" is not GET\n",
            ),
            (
                Req::valid(&server, via, &Cookies::fresh("alice"))
                    .set("Sec-WebSocket-Version", "8"),
                426,
                "426 Upgrade Required\nSec-WebSocket-Version \"8\" is not 13\n",
            ),
            (
                Req::valid(&server, via, &Cookies::fresh("alice"))
                    .set("Origin", "http://evil.example"),
                403,
                "403 Forbidden\norigin not allowed\n",
            ),
            (
                Req::with_cookie_header(&server, via, "theme=dark"),
                403,
                "403 Forbidden\nno token cookie\n",
            ),
            (
                Req::valid(&server, via, &forged),
                403,
                "403 Forbidden\ndigest does not match\n",
            ),
        ];
        for (request, status, body) in cases {
            let mut client = raw(&server, via);
            client.send_raw(request.text().as_bytes());
            let response = client.read_response();
            assert_eq!(
                response.header("Content-Type"),
                Some("text/plain; charset=utf-8"),
                "{}",
                response.raw
            );
            let text = client.read_body(&response);
            assert_eq!(text, body, "over {via:?}");
            assert!(!text.contains(SECRET));
            assert_refusal(&mut client, &response, status, via);
        }
    }
}

#[test]
fn upgrade_and_connection_are_case_insensitive_comma_lists() {
    let server = Setup::new().start();
    let cases: [Edit; 4] = [
        |r| r.set("Upgrade", "WebSocket").set("Connection", "UPGRADE"),
        |r| r.set("Connection", "keep-alive, Upgrade"),
        |r| {
            r.set("Upgrade", "h2c, websocket")
                .set("Connection", "upgrade,keep-alive")
        },
        // Header names are case-insensitive too, and one Connection header may follow another.
        |r| {
            r.without("Upgrade")
                .without("Connection")
                .add("upgrade", "websocket")
                .add("connection", "keep-alive")
                .add("CONNECTION", "Upgrade")
        },
    ];
    for via in VIAS {
        for variant in cases {
            let request = variant(Req::valid(&server, via, &Cookies::fresh("alice")));
            let client = accepted(&server, via, &request);
            assert_eq!(
                client
                    .response
                    .as_ref()
                    .unwrap()
                    .header("Sec-WebSocket-Accept"),
                Some(RFC_ACCEPT)
            );
        }
    }
}

#[test]
fn version_8_gets_426_naming_version_13() {
    let server = Setup::new().start();
    for via in VIAS {
        let request =
            Req::valid(&server, via, &Cookies::fresh("alice")).set("Sec-WebSocket-Version", "8");
        let response = refused(&server, via, &request, 426);
        assert_eq!(response.header("Sec-WebSocket-Version"), Some("13"));
    }
}

#[test]
fn missing_cookies_get_403() {
    let server = Setup::new().start();
    let cookies = Cookies::fresh("alice");
    let parts: Vec<&str> = cookies.header.split("; ").collect();
    for via in VIAS {
        refused(
            &server,
            via,
            &Req::valid(&server, via, &cookies).without("Cookie"),
            403,
        );
        refused(
            &server,
            via,
            &Req::with_cookie_header(&server, via, "theme=dark; lang=en"),
            403,
        );
        // Each of the four cookies is required.
        for left_out in 0..parts.len() {
            let header: Vec<&str> = parts
                .iter()
                .enumerate()
                .filter(|(index, _)| *index != left_out)
                .map(|(_, part)| *part)
                .collect();
            refused(
                &server,
                via,
                &Req::with_cookie_header(&server, via, &header.join("; ")),
                403,
            );
        }
    }
}

#[test]
fn digest_signed_with_another_secret_gets_403() {
    let server = Setup::new().start();
    for via in VIAS {
        let cookies = Cookies::signed("alice", now(), b"another-secret-0123456789", Digest::Md5);
        refused(&server, via, &Req::valid(&server, via, &cookies), 403);
        // The right digest for another user does not carry over either.
        let good = Cookies::fresh("alice");
        let forged = good.header.replace("user=alice", "user=mallory");
        refused(
            &server,
            via,
            &Req::with_cookie_header(&server, via, &forged),
            403,
        );
    }
}

#[test]
fn token_older_than_token_lifetime_gets_403() {
    let server = Setup::new().set("token_lifetime", "60").start();
    for via in VIAS {
        let stale = Cookies::signed("alice", now() - 120, SECRET.as_bytes(), Digest::Md5);
        refused(&server, via, &Req::valid(&server, via, &stale), 403);
        // Within its lifetime the same kind of cookie is fine.
        let recent = Cookies::signed("alice", now() - 30, SECRET.as_bytes(), Digest::Md5);
        accepted(&server, via, &Req::valid(&server, via, &recent));
    }
}

#[test]
fn token_time_more_than_300_s_ahead_gets_403() {
    let server = Setup::new().start();
    for via in VIAS {
        let future = Cookies::signed("alice", now() + 400, SECRET.as_bytes(), Digest::Md5);
        refused(&server, via, &Req::valid(&server, via, &future), 403);
        // A clock a little ahead (within 300 s) is tolerated.
        let skewed = Cookies::signed("alice", now() + 200, SECRET.as_bytes(), Digest::Md5);
        accepted(&server, via, &Req::valid(&server, via, &skewed));
    }
}

#[test]
fn origin_not_in_origins_gets_403() {
    let server = Setup::new()
        .set("origins", r#"["http://localhost", "https://app.example"]"#)
        .start();
    for via in VIAS {
        for origin in [
            "http://evil.example",
            "http://localhost:8080",
            "https://app.example.evil",
        ] {
            let request = Req::valid(&server, via, &Cookies::fresh("alice")).set("Origin", origin);
            refused(&server, via, &request, 403);
        }
        for origin in ["http://localhost", "https://app.example"] {
            let request = Req::valid(&server, via, &Cookies::fresh("alice")).set("Origin", origin);
            accepted(&server, via, &request);
        }
    }
}

#[test]
fn missing_origin_gets_403_unless_origins_is_star() {
    let server = Setup::new().start();
    for via in VIAS {
        let request = Req::valid(&server, via, &Cookies::fresh("alice")).without("Origin");
        refused(&server, via, &request, 403);
    }
}

#[test]
fn star_origins_accept_any_origin_and_none() {
    let server = Setup::new().set("origins", r#"["*"]"#).start();
    for via in VIAS {
        let request = Req::valid(&server, via, &Cookies::fresh("alice")).without("Origin");
        accepted(&server, via, &request);
        let request =
            Req::valid(&server, via, &Cookies::fresh("alice")).set("Origin", "http://evil.example");
        accepted(&server, via, &request);
    }
}

#[test]
fn hmac_sha256_digest_is_accepted_and_md5_cookies_are_then_refused() {
    let server = Setup::new().set("digest", r#""hmac-sha256""#).start();
    for via in VIAS {
        let hmac = Cookies::signed("alice", now(), SECRET.as_bytes(), Digest::HmacSha256);
        accepted(&server, via, &Req::valid(&server, via, &hmac));
        let md5 = Cookies::fresh("alice");
        refused(&server, via, &Req::valid(&server, via, &md5), 403);
    }
}

#[test]
fn md5_is_the_default_digest_and_hmac_cookies_are_refused() {
    let server = Setup::new().start();
    for via in VIAS {
        let hmac = Cookies::signed("alice", now(), SECRET.as_bytes(), Digest::HmacSha256);
        refused(&server, via, &Req::valid(&server, via, &hmac), 403);
    }
}

#[test]
fn second_connection_with_a_live_token_gets_429_with_retry_after() {
    let server = Setup::new().start();
    for via in VIAS {
        let cookies = Cookies::fresh("alice");
        let mut first = accepted(&server, via, &Req::valid(&server, via, &cookies));
        // Busy through either listener.
        for other in VIAS {
            let response = refused(&server, other, &Req::valid(&server, other, &cookies), 429);
            let retry_after: u64 = response
                .header("Retry-After")
                .expect("Retry-After")
                .parse()
                .expect("Retry-After in seconds");
            assert!(retry_after > 0, "{}", response.raw);
        }
        // The first connection is untouched.
        let mut control = server.control();
        control.direct(b'c', &cookies.token, b"still here");
        assert_eq!(control.reply().0, b'A');
        assert_eq!(first.recv_text(), "still here");
        // Once it is gone (the server forgets the token before it closes the socket), the
        // token may connect again.
        first.send_close(1000, "");
        first.expect_close(1000);
        first.expect_end();
        accepted(&server, via, &Req::valid(&server, via, &cookies));
    }
}

#[test]
fn request_over_max_handshake_size_gets_431() {
    let server = Setup::new().set("max_handshake_size", "1024").start();
    for via in VIAS {
        // A complete request head that is too long.
        let request =
            Req::valid(&server, via, &Cookies::fresh("alice")).add("X-Filler", &"a".repeat(1100));
        refused(&server, via, &request, 431);
        // Bytes that never end a head: refused once past the limit, not waited for.
        let mut client = raw(&server, via);
        let mut partial = b"GET /ws HTTP/1.1\r\nX-Filler: ".to_vec();
        partial.extend(std::iter::repeat_n(b'a', 1100));
        client.send_raw(&partial);
        let response = client.read_response();
        assert_refusal(&mut client, &response, 431, via);
        // A request under the limit still passes.
        accepted(
            &server,
            via,
            &Req::valid(&server, via, &Cookies::fresh("alice")),
        );
    }
}

#[test]
fn a_4_kib_browser_sized_request_is_accepted_by_default() {
    let server = Setup::new().start();
    for via in VIAS {
        let request = Req::valid(&server, via, &Cookies::fresh("alice"))
            .add("User-Agent", &"Mozilla/5.0 ".repeat(150))
            .add("Cookie", &format!("_ga={}", "x".repeat(2500)));
        assert!(request.text().len() > 4096);
        accepted(&server, via, &request);
    }
}

#[test]
fn connection_past_max_connections_gets_503() {
    let server = Setup::new().set("max_connections", "2").start();
    let mut held = Vec::new();
    for via in VIAS {
        held.push(accepted(
            &server,
            via,
            &Req::valid(&server, via, &Cookies::fresh("alice")),
        ));
    }
    for via in VIAS {
        // The refusal is sent on accept: nothing needs to be sent to get it.
        let mut client = raw(&server, via);
        let response = client.read_response();
        assert_refusal(&mut client, &response, 503, via);
    }
    // A freed slot is usable again (the server frees it before it closes the socket).
    let mut first = held.remove(0);
    first.send_close(1000, "");
    first.expect_close(1000);
    first.expect_end();
    accepted(
        &server,
        Via::Unix,
        &Req::valid(&server, Via::Unix, &Cookies::fresh("alice")),
    );
}

/// Issue 10, section 6: a refused socket that lingers (its 503 sent, waiting for the peer
/// to close) counted toward `max_connections`, so a slot freed by a leaving client stayed
/// unusable while refused sockets lingered. Lingering sockets have their own bound now.
#[test]
fn issue_10_a_freed_slot_is_usable_at_once_while_refused_sockets_linger() {
    let server = Setup::new()
        .set("max_connections", "2")
        .set("max_lingering", "1")
        .set("close_timeout", "60")
        .start();
    let mut control = server.control();
    let mut first = server.client();
    let _second = server.client();
    // A third gets 503 and, as we do not close it, lingers.
    let mut refused = WsClient::raw_tcp(&server.tcp());
    assert_eq!(refused.read_response().status, 503);
    let status = control.status();
    assert_eq!(
        (status["connections"].as_u64(), status["lingering"].as_u64()),
        (Some(3), Some(1)),
        "{status}"
    );
    // Past max_lingering, a refused socket is closed at once instead of lingering.
    let mut closed_at_once = WsClient::raw_tcp(&server.tcp());
    let response = closed_at_once.read_response();
    assert_eq!(response.status, 503);
    closed_at_once.read_body(&response);
    assert_eq!(closed_at_once.end_within(WAIT), End::Closed);
    assert_eq!(control.status()["lingering"], 1);
    // One of the two leaves: its slot is usable at once, the refused socket lingering on.
    first.send_close(1000, "");
    first.expect_close(1000);
    first.expect_end();
    let _third = server.client();
    let status = control.status();
    assert_eq!(
        (status["connections"].as_u64(), status["lingering"].as_u64()),
        (Some(3), Some(1)),
        "{status}"
    );
    // The lingering socket still only waits for us: closing it ends it.
    drop(refused);
    eventually("the refused socket is gone", || {
        control.status()["lingering"] == 0
    });
}

/// Regression: a connection that ended after its session was over (its Close echoed, or
/// failed with a close code) stayed in the token index, so its token got 429 forever.
#[test]
fn token_can_connect_again_after_its_connection_closed_or_failed() {
    let server = Setup::new().start();
    for via in VIAS {
        let cookies = Cookies::fresh("alice");
        let request = Req::valid(&server, via, &cookies);
        // Ended by the closing handshake.
        let mut client = accepted(&server, via, &request);
        client.send_close(1000, "");
        client.expect_close(1000);
        client.expect_end();
        // Ended by a protocol error (an unmasked frame).
        let mut client = accepted(&server, via, &request);
        client.send_raw(&wson::ws::frame::encode_frame(true, OpCode::Text, b"x"));
        client.expect_close(1002);
        client.expect_end();
        // Ended by the client hanging up.
        let client = accepted(&server, via, &request);
        drop(client);
        eventually("the hung-up connection is gone", || {
            let mut client = raw(&server, via);
            client.send_raw(request.text().as_bytes());
            client.read_response().status == 101
        });
    }
}

#[test]
fn client_that_never_finishes_the_handshake_is_dropped_after_handshake_timeout() {
    let mut server = Setup::new().set("handshake_timeout", "1").start();
    let mut upgraded = accepted(
        &server,
        Via::Tcp,
        &Req::valid(&server, Via::Tcp, &Cookies::fresh("alice")),
    );
    let mut clients = Vec::new();
    for via in VIAS {
        clients.push((via, "silent", raw(&server, via)));
        let mut partial = raw(&server, via);
        partial.send_raw(b"GET /ws HTTP/1.1\r\nHost: localhost\r\n");
        clients.push((via, "partial", partial));
    }
    for (via, what, client) in &mut clients {
        assert_eq!(client.end_within(WAIT), End::Closed, "{what} over {via:?}");
    }
    for _ in &clients {
        server.wait_for_log("reason=\"handshake timeout\"");
    }
    // The timeout is for the handshake only: a client that finished it in time stays.
    server.control().send(b'b', b"still connected");
    assert_eq!(upgraded.recv_text(), "still connected");
}

#[test]
fn early_first_frame_in_the_same_write_as_the_request_is_echoed() {
    let server = Setup::new().echo().start();
    for via in VIAS {
        let mut client = raw(&server, via);
        let mut bytes = Req::valid(&server, via, &Cookies::fresh("alice"))
            .text()
            .into_bytes();
        bytes.extend(wson::ws::frame::encode_masked_frame(
            true,
            OpCode::Text,
            b"early bird",
            [1, 2, 3, 4],
        ));
        bytes.extend(wson::ws::frame::encode_masked_frame(
            true,
            OpCode::Binary,
            b"\x00second\xff",
            [5, 6, 7, 8],
        ));
        client.send_raw(&bytes);
        assert_eq!(client.read_response().status, 101);
        assert_eq!(client.recv_text(), "early bird");
        let second = client.recv_data();
        assert_eq!(second.opcode, OpCode::Binary);
        assert_eq!(second.payload, b"\x00second\xff");
    }
}

#[test]
fn several_cookie_headers_and_extra_cookies_are_accepted() {
    let server = Setup::new().start();
    for via in VIAS {
        let cookies = Cookies::fresh("alice");
        let parts: Vec<&str> = cookies.header.split("; ").collect();
        let [token, user, time, digest] = parts[..] else {
            panic!("four cookies in {:?}", cookies.header);
        };
        let request = Req::valid(&server, via, &cookies)
            .without("Cookie")
            .add("Cookie", &format!("_ga=GA1.2.3; {token}"))
            .add("Cookie", &format!("{user};theme=dark"))
            .add(
                "Cookie",
                &format!("{time}; lang=en;  {digest}; session=\"abc\""),
            );
        let mut client = accepted(&server, via, &request);
        // The connection is known by the token from the split cookies.
        let mut control = server.control();
        control.direct(b'c', &cookies.token, b"found you");
        assert_eq!(control.reply().0, b'A');
        assert_eq!(client.recv_text(), "found you");
    }
}
