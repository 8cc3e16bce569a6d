//! The HTTP API (`[http]`, README.md "HTTP API"): JSON calls that run the control commands,
//! a batch of them, `/health` and `/metrics`, driven by real clients (curl, Python's
//! `urllib` and `http.client`, Prometheus's own text parser) and by a raw socket where the
//! bytes on the wire are the point (pipelining, a slow sender, garbage, a huge
//! Content-Length). What each call does is checked on real WebSocket clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::cluster::{Redis, wait_nodes, wait_redis};
use crate::common::*;

pub(crate) const KEY: &str = "api-key-0123456789abcdef";

pub(crate) fn setup() -> Setup {
    Setup::new()
        .set(
            "http.listen",
            r#"["tcp://127.0.0.1:0", "unix://http.sock"]"#,
        )
        .set("http.api_key", &format!("{KEY:?}"))
}

pub(crate) fn http_addr(server: &Server) -> String {
    server
        .http
        .iter()
        .find_map(|endpoint| endpoint.strip_prefix("tcp://"))
        .expect("an http tcp listener")
        .to_owned()
}

fn http_unix(server: &Server) -> PathBuf {
    PathBuf::from(
        server
            .http
            .iter()
            .find_map(|endpoint| endpoint.strip_prefix("unix://"))
            .expect("an http unix listener"),
    )
}

/// Runs curl with `args` plus `-s -w '\n%{http_code}'`: the status and the body as JSON (or
/// as a string when it is not JSON).
fn curl(args: &[&str]) -> (u16, Value) {
    let output = Command::new("curl")
        .args(["-s", "-S", "--max-time", "15", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(output.status.success(), "curl {args:?}: {output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    (status.parse().unwrap(), body)
}

/// `POST /api/<method>` with the key, through curl.
pub(crate) fn call(server: &Server, method: &str, params: Value) -> (u16, Value) {
    let url = format!("http://{}/api/{method}", http_addr(server));
    let auth = format!("Authorization: Bearer {KEY}");
    curl(&["--json", &params.to_string(), "-H", &auth, &url])
}

/// A call that must succeed: its `result`.
pub(crate) fn ok(server: &Server, method: &str, params: Value) -> Value {
    let (status, body) = call(server, method, params.clone());
    assert_eq!(status, 200, "{method} {params}: {body}");
    body["result"].clone()
}

/// Runs Python code with the test venv's interpreter; its stdout is one JSON value.
fn python_json(code: &str, args: &[&str]) -> Option<Value> {
    let python = python()?;
    let output = Command::new(python)
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

/// A response read off a raw socket.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A raw HTTP/1.1 connection: bytes written as given, responses parsed with httparse.
struct Raw<S> {
    stream: S,
    buf: Vec<u8>,
}

impl Raw<TcpStream> {
    fn tcp(server: &Server) -> Raw<TcpStream> {
        let stream = TcpStream::connect(http_addr(server)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }
}

impl<S: Read + Write> Raw<S> {
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next response; `None` at EOF before any byte of one.
    fn response(&mut self) -> Option<RawResponse> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = response.parse(&self.buf).unwrap() {
                let headers: Vec<(String, String)> = response
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let status = response.code.unwrap();
                let length: usize = headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, value)| value.parse().unwrap());
                let length = if status == 100 { 0 } else { length };
                while self.buf.len() < head_len + length {
                    assert!(self.read_more(), "EOF inside a response body");
                }
                let body = self.buf[head_len..head_len + length].to_vec();
                self.buf.drain(..head_len + length);
                return Some(RawResponse {
                    status,
                    headers,
                    body,
                });
            }
            if !self.read_more() {
                assert!(self.buf.is_empty(), "EOF inside a response head");
                return None;
            }
        }
    }

    fn read_more(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(error) => panic!("read: {error}"),
        }
    }
}

fn post(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[test]
fn every_method_reaches_real_clients() {
    let server = setup().start();
    let (mut alice, alice_cookies) = server.user_client("alice");
    let (mut alice2, _) = server.unix_user_client("alice");
    let (mut bob, bob_cookies) = server.user_client("bob");
    let (alice_token, bob_token) = (alice_cookies.token_str(), bob_cookies.token_str());

    assert_eq!(
        ok(&server, "broadcast", json!({"message": "to all ✓"})),
        json!({})
    );
    assert_eq!(
        ok(
            &server,
            "broadcast",
            json!({"message": "AAH/", "binary": true})
        ),
        json!({})
    );
    for client in [&mut alice, &mut alice2, &mut bob] {
        assert_eq!(client.recv_text(), "to all ✓");
        assert_eq!(client.recv_binary(), [0, 1, 255]);
    }

    assert_eq!(
        ok(
            &server,
            "send",
            json!({"token": bob_token, "message": "hi bob"})
        ),
        json!({"delivered": true})
    );
    assert_eq!(bob.recv_text(), "hi bob");
    let nobody = unique_token();
    let nobody = std::str::from_utf8(nobody.as_bytes()).unwrap();
    assert_eq!(
        ok(&server, "send", json!({"token": nobody, "message": "x"})),
        json!({"delivered": false})
    );
    assert_eq!(
        ok(
            &server,
            "send_user",
            json!({"user": "alice", "message": "hi alice"})
        ),
        json!({"connections": 2})
    );
    assert_eq!(alice.recv_text(), "hi alice");
    assert_eq!(alice2.recv_text(), "hi alice");

    assert_eq!(
        ok(
            &server,
            "subscribe",
            json!({"topic": "news", "token": bob_token})
        ),
        json!({"connections": 1})
    );
    assert_eq!(
        ok(
            &server,
            "subscribe",
            json!({"topic": "news", "user": "alice"})
        ),
        json!({"connections": 2})
    );
    assert_eq!(
        ok(
            &server,
            "publish",
            json!({"topic": "news", "message": "Goal!"})
        ),
        json!({})
    );
    for client in [&mut alice, &mut alice2, &mut bob] {
        assert_eq!(client.recv_text(), "Goal!");
    }
    assert_eq!(
        ok(&server, "presence", json!({"topic": "news", "limit": 1})),
        json!({"items": [{"name": "alice", "count": 2}], "next": "alice"})
    );
    assert_eq!(
        ok(
            &server,
            "presence",
            json!({"topic": "news", "cursor": "alice"})
        ),
        json!({"items": [{"name": "bob", "count": 1}], "next": null})
    );
    assert_eq!(
        ok(&server, "presence_count", json!({"topic": "news"})),
        json!({"count": 2, "connections": 3})
    );
    assert_eq!(
        ok(&server, "topics", json!({})),
        json!({"items": [{"name": "news", "count": 3}], "next": null})
    );
    assert_eq!(
        ok(&server, "users", json!({})),
        json!({"items": [{"name": "alice", "count": 2}, {"name": "bob", "count": 1}], "next": null})
    );
    assert_eq!(
        ok(&server, "tokens", json!({"user": "bob"})),
        json!({"items": [{"name": bob_token, "count": 1}], "next": null})
    );
    assert_eq!(
        ok(&server, "online", json!({"user": "alice"})),
        json!({"connections": 2})
    );
    assert_eq!(
        ok(&server, "online", json!({"user": "carol"})),
        json!({"connections": 0})
    );
    assert_eq!(
        ok(
            &server,
            "unsubscribe",
            json!({"topic": "news", "user": "alice"})
        ),
        json!({"connections": 2})
    );
    assert_eq!(
        ok(
            &server,
            "unsubscribe",
            json!({"topic": "news", "token": bob_token})
        ),
        json!({"connections": 1})
    );
    let status = ok(&server, "status", json!({}));
    assert_eq!(status["connections"], 3, "{status}");
    assert_eq!(status["pid"], server.pid(), "{status}");
    // GET /api/status is POST /api/status.
    let url = format!("http://{}/api/status", http_addr(&server));
    let (code, body) = curl(&["-H", &format!("X-API-Key: {KEY}"), &url]);
    assert_eq!(code, 200);
    assert_eq!(body["result"]["connections"], 3);

    assert_eq!(
        ok(
            &server,
            "kick",
            json!({"token": alice_token, "code": 4100, "reason": "bye"})
        ),
        json!({"closed": 1})
    );
    alice.expect_closed_with(4100, "bye");
    assert_eq!(
        ok(&server, "kick", json!({"user": "bob"})),
        json!({"closed": 1})
    );
    bob.expect_closed_with(4000, "kicked");
    assert_eq!(
        ok(&server, "online", json!({"user": "alice"})),
        json!({"connections": 1})
    );
}

#[test]
fn a_batch_runs_in_order_and_a_failing_command_does_not_stop_the_rest() {
    let server = setup().start();
    let (mut bob, bob_cookies) = server.user_client("bob");
    let token = bob_cookies.token_str();
    let body = json!({"commands": [
        {"method": "send", "params": {"token": token, "message": "one"}},
        {"method": "nope"},
        {"method": "online", "params": {"user": ""}},
        {"method": "broadcast", "params": {"message": "two"}},
        {"method": "subscribe", "params": {"topic": "t", "token": token}},
        {"method": "publish", "params": {"topic": "t", "message": "three"}},
        {"method": "online", "params": {"user": "bob"}},
    ]});
    // Python's urllib, as a script without dependencies would call it.
    let code = r#"
import json, sys, urllib.request
request = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST",
    headers={"Content-Type": "application/json", "X-API-Key": sys.argv[3]})
with urllib.request.urlopen(request) as response:
    print(json.dumps({"status": response.status, "body": json.load(response)}))
"#;
    let url = format!("http://{}/api/batch", http_addr(&server));
    let Some(answer) = python_json(code, &[&url, &body.to_string(), KEY]) else {
        return;
    };
    assert_eq!(answer["status"], 200);
    let replies = answer["body"]["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 7, "{answer}");
    assert_eq!(replies[0], json!({"result": {"delivered": true}}));
    assert_eq!(replies[1]["error"]["code"], "unknown_method");
    assert_eq!(replies[2]["error"]["code"], "bad_param");
    assert!(
        replies[2]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("user:")
    );
    assert_eq!(replies[3], json!({"result": {}}));
    assert_eq!(replies[4], json!({"result": {"connections": 1}}));
    assert_eq!(replies[5], json!({"result": {}}));
    assert_eq!(replies[6], json!({"result": {"connections": 1}}));
    for text in ["one", "two", "three"] {
        assert_eq!(bob.recv_text(), text);
    }
    // Over max_batch: refused whole.
    let many: Vec<Value> = (0..3).map(|_| json!({"method": "status"})).collect();
    let server = setup().set("http.max_batch", "2").start();
    let url = format!("http://{}/api/batch", http_addr(&server));
    let (status, body) = curl(&[
        "--json",
        &json!({"commands": many}).to_string(),
        "-H",
        &format!("X-API-Key: {KEY}"),
        &url,
    ]);
    assert_error(status, &body, 413, "batch_too_large");
}

#[test]
fn every_error_status_has_its_json_body() {
    let server = setup()
        .set("topics.max_per_connection", "1")
        .set("http.max_header_size", "1024")
        .start();
    let (_bob, bob_cookies) = server.user_client("bob");
    let token = bob_cookies.token_str();
    let addr = http_addr(&server);
    let url = |path: &str| format!("http://{addr}{path}");
    let key = format!("X-API-Key: {KEY}");

    let (status, body) = curl(&["--json", "{", "-H", &key, &url("/api/status")]);
    assert_error(status, &body, 400, "bad_json");
    let (status, body) = call(&server, "online", json!({"user": 7}));
    assert_error(status, &body, 400, "bad_param");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("user:")
    );
    let (status, body) = call(
        &server,
        "subscribe",
        json!({"topic": "wamp.x", "token": token}),
    );
    assert_error(status, &body, 400, "bad_param");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("topic:")
    );
    let (status, body) = call(&server, "online", json!({"user": "a", "extra": 1}));
    assert_error(status, &body, 400, "unknown_param");

    let (status, body) = curl(&["--json", "{}", &url("/api/status")]);
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = curl(&[
        "-H",
        "Authorization: Bearer wrong-key-0123456789",
        &url("/api/status"),
    ]);
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = curl(&[&url("/metrics")]);
    assert_error(status, &body, 401, "unauthorized");

    let (status, body) = curl(&["-H", &key, &url("/nowhere")]);
    assert_error(status, &body, 404, "not_found");
    let (status, body) = curl(&["--json", "{}", "-H", &key, &url("/api/fly")]);
    assert_error(status, &body, 404, "unknown_method");
    // The admin page loads without the key (tests/admin_page.rs drives it).
    let output = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", &url("/")])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&output.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'sha256-"),
        "{head}"
    );

    let mut raw = Raw::tcp(&server);
    raw.send(format!("GET /api/send HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\r\n").as_bytes());
    let response = raw.response().unwrap();
    assert_error(response.status, &response.json(), 405, "method_not_allowed");
    assert_eq!(response.header("Allow"), Some("POST"));

    let (status, body) = curl(&["-d", "{}", "-H", &key, &url("/api/status")]);
    assert_error(status, &body, 415, "unsupported_media_type");

    let (status, body) = call(&server, "subscribe", json!({"topic": "a", "token": token}));
    assert_eq!((status, body), (200, json!({"result": {"connections": 1}})));
    let (status, body) = call(&server, "subscribe", json!({"topic": "b", "token": token}));
    assert_error(status, &body, 409, "topic_limit_per_connection");

    // Chunked: 411, and the connection closes.
    let mut raw = Raw::tcp(&server);
    raw.send(
        format!("POST /api/status HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n")
            .as_bytes(),
    );
    let response = raw.response().unwrap();
    assert_error(response.status, &response.json(), 411, "length_required");
    assert_eq!(response.header("Connection"), Some("close"));
    assert!(raw.response().is_none());

    // A Content-Length over max_request_size: 413 from the head alone, the body never sent.
    let mut raw = Raw::tcp(&server);
    raw.send(
        format!("POST /api/broadcast HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Length: 99999999999\r\n\r\n")
            .as_bytes(),
    );
    let response = raw.response().unwrap();
    assert_error(response.status, &response.json(), 413, "payload_too_large");
    assert!(raw.response().is_none());

    // Headers over max_header_size: 431.
    let mut raw = Raw::tcp(&server);
    raw.send(
        format!(
            "GET /health HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(2000)
        )
        .as_bytes(),
    );
    let response = raw.response().unwrap();
    assert_error(response.status, &response.json(), 431, "headers_too_large");
}

#[test]
fn health_needs_no_key_and_says_503_while_stopping() {
    let server = setup().start();
    let url = format!("http://{}/health", http_addr(&server));
    assert_eq!(curl(&[&url]), (200, json!({"status": "ok"})));
    // A client that never answers the Close keeps the server draining.
    let mut client = WsClient::connect_tcp(&server.tcp(), &Cookies::fresh("alice")).unwrap();
    let mut raw = Raw::tcp(&server);
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let close = client.recv();
    assert_eq!(close.close_code(), Some(1001));
    raw.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let response = raw.response().unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.json(), json!({"status": "shutting_down"}));
    let mut raw = Raw::tcp(&server);
    raw.send(post("/api/status", "{}", "").as_bytes());
    let response = raw.response().unwrap();
    assert_error(response.status, &response.json(), 503, "shutting_down");
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = setup().start();
    let code = r#"
import http.client, json, sys
host, port = sys.argv[1].rsplit(":", 1)
connection = http.client.HTTPConnection(host, int(port), timeout=15)
out = []
sockets = set()
for body in ['{"user":"alice"}', '{"user":"bob"}', '{}']:
    method = "online" if body != "{}" else "status"
    connection.request("POST", "/api/" + method, body=body,
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + sys.argv[2]})
    response = connection.getresponse()
    out.append([response.status, json.loads(response.read())])
    sockets.add(id(connection.sock))
connection.request("GET", "/health")
response = connection.getresponse()
out.append([response.status, json.loads(response.read())])
sockets.add(id(connection.sock))
print(json.dumps({"responses": out, "sockets": len(sockets)}))
"#;
    let Some(answer) = python_json(code, &[&http_addr(&server), KEY]) else {
        return;
    };
    assert_eq!(answer["sockets"], 1, "{answer}");
    let responses = answer["responses"].as_array().unwrap();
    assert_eq!(responses[0], json!([200, {"result": {"connections": 0}}]));
    assert_eq!(responses[1], json!([200, {"result": {"connections": 0}}]));
    assert_eq!(responses[2][0], 200);
    assert_eq!(responses[3], json!([200, {"status": "ok"}]));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = setup().start();
    let (mut bob, bob_cookies) = server.user_client("bob");
    let token = bob_cookies.token_str();
    let mut raw = Raw::tcp(&server);
    let mut bytes = String::new();
    for n in 0..5 {
        let body = json!({"token": token, "message": format!("m{n}")}).to_string();
        bytes.push_str(&post("/api/send", &body, ""));
    }
    bytes.push_str("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    bytes.push_str(&post(
        "/api/online",
        r#"{"user":"bob"}"#,
        "Connection: close\r\n",
    ));
    raw.send(bytes.as_bytes());
    for _ in 0..5 {
        let response = raw.response().unwrap();
        assert_eq!(response.json(), json!({"result": {"delivered": true}}));
    }
    assert_eq!(raw.response().unwrap().json(), json!({"status": "ok"}));
    let last = raw.response().unwrap();
    assert_eq!(last.json(), json!({"result": {"connections": 1}}));
    assert_eq!(last.header("Connection"), Some("close"));
    assert!(raw.response().is_none());
    for n in 0..5 {
        assert_eq!(bob.recv_text(), format!("m{n}"));
    }
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let server = setup().start();
    let mut raw = Raw::tcp(&server);
    let body = r#"{"user":"alice"}"#;
    raw.send(
        format!("POST /api/online HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len())
            .as_bytes(),
    );
    assert_eq!(raw.response().unwrap().status, 100);
    raw.send(body.as_bytes());
    let response = raw.response().unwrap();
    assert_eq!(response.json(), json!({"result": {"connections": 0}}));
}

#[test]
fn a_slow_sender_gets_408_at_request_timeout() {
    let server = setup().set("http.request_timeout", "1").start();
    let mut raw = Raw::tcp(&server);
    // Half a head, then nothing: the request never completes.
    raw.send(b"POST /api/status HTTP/1.1\r\nHost: x\r\nX-API");
    let response = raw.response().unwrap();
    assert_error(response.status, &response.json(), 408, "request_timeout");
    assert!(raw.response().is_none());
    // An idle keep-alive connection is closed without a word.
    let mut idle = Raw::tcp(&server);
    assert!(idle.response().is_none());
}

#[test]
fn garbage_gets_400_and_the_connection_closes() {
    let server = setup().start();
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"HELLO\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        let mut raw = Raw::tcp(&server);
        raw.send(garbage);
        let response = raw.response().unwrap();
        assert_error(response.status, &response.json(), 400, "bad_request");
        assert!(raw.response().is_none());
    }
    // The server is still fine.
    let url = format!("http://{}/health", http_addr(&server));
    assert_eq!(curl(&[&url]).0, 200);
}

#[test]
fn the_unix_listener_serves_the_same_api() {
    let server = setup().start();
    let path = http_unix(&server);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let socket = path.to_str().unwrap();
    let (status, body) = curl(&[
        "--unix-socket",
        socket,
        "--json",
        r#"{"user":"alice"}"#,
        "-H",
        &format!("X-API-Key: {KEY}"),
        "http://localhost/api/online",
    ]);
    assert_eq!((status, body), (200, json!({"result": {"connections": 0}})));
    let mut raw = Raw {
        stream: UnixStream::connect(&path).unwrap(),
        buf: Vec::new(),
    };
    raw.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(raw.response().unwrap().json(), json!({"status": "ok"}));
}

#[test]
fn over_max_connections_a_connection_gets_503() {
    let server = setup().set("http.max_connections", "1").start();
    let mut first = Raw::tcp(&server);
    first.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(first.response().unwrap().status, 200);
    let mut second = Raw::tcp(&server);
    let response = second.response().unwrap();
    assert_error(
        response.status,
        &response.json(),
        503,
        "too_many_connections",
    );
}

/// Parses `/metrics` with `prometheus_client.parser`: each family and sample as JSON.
const PARSE_METRICS: &str = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
request = urllib.request.Request(sys.argv[1], headers={"X-API-Key": sys.argv[2]})
with urllib.request.urlopen(request) as response:
    content_type = response.headers["Content-Type"]
    text = response.read().decode()
families = {}
for family in text_string_to_metric_families(text):
    families[family.name] = {
        "type": family.type,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    }
print(json.dumps({"content_type": content_type, "families": families}))
"#;

fn sample(families: &Value, family: &str, labels: Value) -> f64 {
    let samples = families[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no {family}: {families}"));
    samples
        .iter()
        .find(|sample| sample[1] == labels)
        .unwrap_or_else(|| panic!("no {family} {labels}: {samples:?}"))[2]
        .as_f64()
        .unwrap()
}

#[test]
fn metrics_parse_with_prometheus_parser() {
    let server = setup().start();
    let _alice = server.user_client("alice");
    // Two refusals: a bad origin (403) and garbage (400).
    let cookies = Cookies::fresh("bob");
    let refused = WsClient::raw_tcp(&server.tcp()).upgrade(&request(
        &server.tcp(),
        &cookies.header,
        Some("http://evil.example"),
        "",
    ));
    assert_eq!(refused.unwrap_err().status, 403);
    let _ = call(&server, "broadcast", json!({"message": "x"}));
    let _ = curl(&[&format!("http://{}/api/status", http_addr(&server))]);
    let url = format!("http://{}/metrics", http_addr(&server));
    let Some(answer) = python_json(PARSE_METRICS, &[&url, KEY]) else {
        return;
    };
    assert_eq!(
        answer["content_type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let families = &answer["families"];
    // The parser names a counter family without its `_total`.
    assert_eq!(families["wson_connections_accepted"]["type"], "counter");
    assert_eq!(families["wson_connections"]["type"], "gauge");
    let tcp = format!("tcp://{}", server.tcp());
    assert_eq!(
        sample(families, "wson_connections", json!({"listener": tcp})),
        1.0
    );
    assert_eq!(
        sample(
            families,
            "wson_handshakes_refused",
            json!({"status": "403"})
        ),
        1.0
    );
    assert_eq!(sample(families, "wson_messages_out", json!({})), 1.0);
    assert_eq!(sample(families, "wson_users_online", json!({})), 1.0);
    assert_eq!(
        sample(families, "wson_http_requests", json!({"code": "401"})),
        1.0
    );
    assert!(sample(families, "wson_http_requests", json!({"code": "200"})) >= 1.0);
    assert_eq!(sample(families, "wson_cluster_nodes", json!({})), 1.0);
    assert_eq!(sample(families, "wson_cluster_redis_up", json!({})), 0.0);
    for family in [
        "wson_messages_in",
        "wson_bytes_in",
        "wson_bytes_out",
        "wson_slow_consumers_dropped",
        "wson_protocol_errors",
        "wson_topics",
        "wson_wamp_sessions",
        "wson_wamp_pending_calls",
        "wson_history_publications",
        "wson_history_bytes",
        "wson_uptime_seconds",
        "wson_http_connections",
        "wson_control_connections",
    ] {
        assert!(families.get(family).is_some(), "no {family}: {families}");
    }
    // metrics_public: no key needed.
    let public = setup().set("http.metrics_public", "true").start();
    let (status, body) = curl(&[&format!("http://{}/metrics", http_addr(&public))]);
    assert_eq!(status, 200);
    assert!(
        body.as_str()
            .unwrap()
            .contains("# TYPE wson_uptime_seconds gauge")
    );
}

#[test]
fn the_api_of_one_node_reaches_clients_of_another() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let node = |name: &str| {
        setup()
            .set("cluster.redis", &format!("{:?}", redis.url()))
            .set("cluster.node_id", &format!("{name:?}"))
            .start()
    };
    let (a, b) = (node("a"), node("b"));
    for server in [&a, &b] {
        wait_redis(server, "up");
        wait_nodes(server, 2);
    }
    let (mut bob, bob_cookies) = b.user_client("bob");
    let token = bob_cookies.token_str();
    // A confirmed send and a count: the answer waits for the other node.
    assert_eq!(
        ok(&a, "send", json!({"token": token, "message": "from a"})),
        json!({"delivered": true})
    );
    assert_eq!(bob.recv_text(), "from a");
    assert_eq!(
        ok(&a, "online", json!({"user": "bob"})),
        json!({"connections": 1})
    );
    let body = json!({"commands": [
        {"method": "online", "params": {"user": "bob"}},
        {"method": "broadcast", "params": {"message": "everyone"}},
        {"method": "users", "params": {}},
    ]});
    let url = format!("http://{}/api/batch", http_addr(&a));
    let (status, answer) = curl(&[
        "--json",
        &body.to_string(),
        "-H",
        &format!("X-API-Key: {KEY}"),
        &url,
    ]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["replies"],
        json!([
            {"result": {"connections": 1}},
            {"result": {}},
            {"result": {"items": [{"name": "bob", "count": 1}], "next": null}},
        ])
    );
    assert_eq!(bob.recv_text(), "everyone");
    let status = ok(&a, "status", json!({}));
    assert_eq!(status["cluster_nodes"], 2, "{status}");
}

#[test]
fn check_refuses_listen_without_a_key() {
    let (_dir, path) = Setup::new()
        .set("http.listen", r#"["tcp://127.0.0.1:0"]"#)
        .write();
    let output = Command::new(wson_bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("http.api_key"), "{stderr}");
    let (_dir, path) = setup().write();
    let output = Command::new(wson_bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let _ = Path::new(&path);
}

/// The PHP kit's `WsonHttp` (clients/php/Wson.php) against the real daemon, over the TCP
/// and the Unix listener: each method's answer, errors as `WsonHttpException` with status
/// and code, and what the WebSocket clients received.
#[test]
fn php_kit_http_client_calls_every_method() {
    let Some(php) = php() else { return };
    let server = setup().start();
    for endpoint in [
        format!("tcp://{}", http_addr(&server)),
        format!("unix://{}", http_unix(&server).display()),
    ] {
        let (mut alice, alice_cookies) = server.user_client("alice");
        let (mut bob, bob_cookies) = server.user_client("bob");
        let (a, b) = (alice_cookies.token_str(), bob_cookies.token_str());
        let mut script = Script::spawn(&php, "php/http.php", &[&endpoint, KEY, &a, &b]);
        let expect = |script: &mut Script, step: &str, value: Value| {
            assert_eq!(script.next(), json!({"step": step, "value": value}));
        };
        expect(&mut script, "healthy", json!(true));
        expect(&mut script, "send", json!(true));
        expect(&mut script, "send nobody", json!(false));
        expect(&mut script, "send binary", json!(true));
        expect(&mut script, "send_user", json!(1));
        expect(&mut script, "subscribe", json!(1));
        expect(&mut script, "subscribeUser", json!(1));
        expect(
            &mut script,
            "presence",
            json!({"items": {"alice": 1}, "next": "alice"}),
        );
        expect(
            &mut script,
            "presenceCount",
            json!({"count": 2, "connections": 2}),
        );
        expect(
            &mut script,
            "topics",
            json!({"items": {"news": 2}, "next": null}),
        );
        expect(
            &mut script,
            "users",
            json!({"items": {"alice": 1, "bob": 1}, "next": null}),
        );
        expect(
            &mut script,
            "tokens",
            json!({"items": {b.clone(): 1}, "next": null}),
        );
        expect(&mut script, "online", json!(1));
        expect(&mut script, "unsubscribe", json!(1));
        expect(&mut script, "unsubscribeUser", json!(1));
        expect(&mut script, "status", json!(2));
        let batch = script.next();
        assert_eq!(
            batch["value"][0],
            json!({"result": {"connections": 1}}),
            "{batch}"
        );
        assert_eq!(
            batch["value"][1]["error"]["code"], "unknown_method",
            "{batch}"
        );
        assert_eq!(
            batch["value"][2]["result"]["items"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        expect(&mut script, "metrics", json!(true));
        expect(&mut script, "bad param", json!([400, "bad_param"]));
        expect(
            &mut script,
            "unknown method",
            json!([404, "unknown_method"]),
        );
        expect(&mut script, "wrong key", json!([401, "unauthorized"]));
        expect(&mut script, "kick", json!(1));
        expect(&mut script, "kickUser", json!(1));
        script.finish();
        assert_eq!(alice.recv_text(), "hello ✓");
        assert_eq!(alice.recv_binary(), [0, 1, 255]);
        assert_eq!(alice.recv_text(), "to alice");
        assert_eq!(alice.recv_text(), "to alice as a user");
        assert_eq!(alice.recv_text(), "Goal!");
        alice.expect_closed_with(4100, "bye");
        assert_eq!(bob.recv_text(), "hello ✓");
        assert_eq!(bob.recv_binary(), [0, 1, 255]);
        assert_eq!(bob.recv_binary(), [255]);
        assert_eq!(bob.recv_text(), "Goal!");
        bob.expect_closed_with(4000, "kicked");
    }
}

#[test]
fn head_gets_the_headers_only_and_http_10_closes() {
    let server = setup().start();
    let mut raw = Raw::tcp(&server);
    raw.send(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n");
    while !raw.buf.windows(4).any(|window| window == b"\r\n\r\n") {
        assert!(raw.read_more());
    }
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = response.parse(&raw.buf) else {
        panic!("not a response: {:?}", raw.buf);
    };
    assert_eq!(response.code, Some(200));
    // Content-Length is the GET's, and no body follows: the next response starts right away.
    assert!(
        response
            .headers
            .iter()
            .any(|h| h.name == "Content-Length" && h.value == b"15")
    );
    raw.buf.drain(..head_len);
    raw.send(b"GET /health HTTP/1.0\r\n\r\n");
    let response = raw.response().unwrap();
    assert_eq!(response.json(), json!({"status": "ok"}));
    assert_eq!(response.header("Connection"), Some("close"));
    assert!(raw.response().is_none());
}

#[test]
fn the_key_may_come_from_api_key_file() {
    let setup = Setup::new()
        .set("http.listen", r#"["tcp://127.0.0.1:0"]"#)
        .set("http.api_key_file", r#""http-api.key""#);
    let (dir, path) = setup.write();
    std::fs::write(dir.path().join("http-api.key"), format!("{KEY}\n")).unwrap();
    let server = Server::start_in(dir, path, setup.toml(), &[]);
    assert_eq!(
        ok(&server, "online", json!({"user": "alice"})),
        json!({"connections": 0})
    );
    let url = format!("http://{}/api/status", http_addr(&server));
    let (status, body) = curl(&["-H", "X-API-Key: wrong-key-0123456789", &url]);
    assert_error(status, &body, 401, "unauthorized");
}

#[test]
fn the_api_and_the_admin_page_are_served_over_https_with_the_tls_certificate() {
    let pki = crate::common::tls::Pki::new();
    let server = pki
        .serve(
            Setup::new()
                .set("http.listen", r#"["tls://127.0.0.1:0"]"#)
                .set("http.api_key", &format!("{KEY:?}")),
        )
        .start();
    let addr = server
        .http
        .iter()
        .find_map(|endpoint| endpoint.strip_prefix("tls://"))
        .expect("an http tls listener")
        .to_owned();
    let ca = pki.ca().display().to_string();
    let (status, body) = curl(&["--cacert", &ca, &format!("https://{addr}/health")]);
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let auth = format!("Authorization: Bearer {KEY}");
    let url = format!("https://{addr}/api/status");
    let (status, body) = curl(&["--cacert", &ca, "--json", "{}", "-H", &auth, &url]);
    assert_eq!(status, 200, "{body}");
    assert!(body["result"]["pid"].is_u64(), "{body}");
    let (status, body) = curl(&["--cacert", &ca, &format!("https://{addr}/")]);
    assert_eq!(status, 200);
    assert!(
        body.as_str()
            .is_some_and(|page| page.contains("wson admin"))
    );

    // Plain HTTP to the TLS port gets no answer; the listener serves on.
    let mut raw = TcpStream::connect(&addr).unwrap();
    raw.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    let (status, _) = curl(&["--cacert", &ca, &format!("https://{addr}/health")]);
    assert_eq!(status, 200);
}
