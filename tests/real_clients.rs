//! The server against WebSocket clients nobody on this project wrote: Python `websockets`
//! and `websocket-client`, Node `ws`, and headless Chromium.
//!
//! `tests/install-tools.sh` installs them (pinned in `tests/clients/requirements.txt` and
//! `tests/clients/package-lock.json`; Chromium from Debian). Each client runs a script from
//! `tests/clients/` as a subprocess that prints one JSON object per line (the page in
//! Chromium posts them to a small HTTP server in the test instead). The test drives the
//! control socket when the script says it is ready and compares every line with what the
//! client must have observed. A missing tool fails the test, unless `WSON_SKIP_REAL_CLIENTS=1`.
//!
//! The session each client goes through: handshake with the auth cookies and an allowed
//! Origin; five pushes from the control socket (text and binary broadcast, text and binary
//! direct message, a fragmented message); echoes of a text, a binary and a 70000-byte message
//! (`client_messages = "echo"`); a ping answered with the same payload (the browser, which
//! cannot ping, answers the server's pings instead); a clean close with code 4000 whose code
//! the server echoes. Besides: a server-initiated Close with code and reason, and refusals.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use serde_json::{Value, json};
use wson::auth::Digest;

use crate::common::*;

pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

pub(crate) fn chromium() -> bool {
    require(Path::new(CHROMIUM), None)
}

/// What a client reports for each of the five pushes of [`push_five`], in order.
pub(crate) fn pushed_five() -> Vec<Value> {
    vec![
        json!({"event": "message", "kind": "text", "data": "broadcast \u{2713}"}),
        json!({"event": "message", "kind": "binary", "hex": "0001feff"}),
        json!({"event": "message", "kind": "text", "data": "direct \u{e9}"}),
        json!({"event": "message", "kind": "binary", "hex": "8000"}),
        json!({"event": "message", "kind": "text", "data": "Hello, World!"}),
    ]
}

/// Text and binary, broadcast and direct, then one message in three fragments.
pub(crate) fn push_five(control: &mut Control, cookies: &Cookies) {
    let token = cookies.token_str();
    control.send(b'b', "broadcast \u{2713}".as_bytes());
    control.send(b'B', &[0x00, 0x01, 0xfe, 0xff]);
    control.direct(b'c', &cookies.token, "direct \u{e9}".as_bytes());
    assert_eq!(control.reply_text(), format!("32A{token}"));
    control.direct(b'D', &cookies.token, &[0x80, 0x00]);
    control.send(b'l', token.as_bytes());
    assert_eq!(control.reply_text(), format!("32A{token}"));
    for (command, part) in [(b'f', "Hello"), (b'i', ", "), (b's', "World!")] {
        control.send(command, part.as_bytes());
        assert_eq!(control.reply_text(), "0a");
    }
}

/// What a client reports for its three echoes.
pub(crate) fn echoed_three() -> Vec<Value> {
    vec![
        json!({"event": "echo", "same": true, "kind": "text", "data": "echo \u{2713}"}),
        json!({"event": "echo", "same": true, "kind": "binary", "hex": "0001feff"}),
        json!({"event": "echo", "same": true, "kind": "text", "len": 70000}),
    ]
}

/// The whole session with a script client (see the module docs).
fn full_session(program: &Path, script: &str) {
    let server = Setup::new().echo().start();
    let cookies = Cookies::fresh("alice");
    let url = format!("ws://{}/", server.tcp());
    let client = Script::spawn(program, script, &["session", &url, &cookies.header, ORIGIN]);
    expect_session(client, &server, &cookies);
}

/// What a script client reports of the session: open, the five pushes and three echoes,
/// the pong, the close echoed; then the server has dropped the connection.
pub(crate) fn expect_session(mut client: Script, server: &Server, cookies: &Cookies) {
    assert_eq!(client.next(), json!({"event": "open"}));
    let mut control = server.control();
    push_five(&mut control, cookies);
    for expected in pushed_five().into_iter().chain(echoed_three()) {
        assert_eq!(client.next(), expected);
    }
    // "wson" in hex: the pong carries the ping's payload back.
    assert_eq!(client.next(), json!({"event": "pong", "hex": "77736f6e"}));
    // RFC 6455 §5.5.1: the server echoes the status code; it sends no reason.
    assert_eq!(
        client.next(),
        json!({"event": "close", "code": 4000, "reason": ""})
    );
    client.finish();
    eventually("the server dropped the closed connection", || {
        control.status()["connections"] == 0
    });
}

/// The server closes with 1011 "framesource lost" when the control connection holding the
/// client's lock goes away; the client must see that code and reason.
fn server_close(program: &Path, script: &str) {
    let server = Setup::new().echo().start();
    let cookies = Cookies::fresh("alice");
    let url = format!("ws://{}/", server.tcp());
    let args = ["server-close", &url, &cookies.header, ORIGIN];
    let mut client = Script::spawn(program, script, &args);
    assert_eq!(client.next(), json!({"event": "open"}));
    let mut control = server.control();
    control.send(b'l', cookies.token_str().as_bytes());
    assert_eq!(control.reply_text(), format!("32A{}", cookies.token_str()));
    drop(control);
    assert_eq!(
        client.next(),
        json!({"event": "close", "code": 1011, "reason": "framesource lost"})
    );
    client.finish();
}

/// Cookies signed with another secret: the client sees the 403 of the handshake.
fn refused(program: &Path, script: &str) {
    let mut server = Setup::new().echo().start();
    let forged = Cookies::signed("alice", now(), b"not-the-secret-0123456789", Digest::Md5);
    let url = format!("ws://{}/", server.tcp());
    let mut client = Script::spawn(program, script, &["session", &url, &forged.header, ORIGIN]);
    assert_eq!(client.next(), json!({"event": "refused", "status": 403}));
    client.finish();
    server.wait_for_log("handshake refused");
}

const PY_WEBSOCKETS: &str = "py_websockets.py";
const PY_WEBSOCKET_CLIENT: &str = "py_websocket_client.py";
const NODE_WS: &str = "node_ws.js";

#[test]
fn python_websockets_gets_pushes_echoes_pong_and_clean_close() {
    let Some(python) = python() else {
        return;
    };
    full_session(&python, PY_WEBSOCKETS);
}

#[test]
fn python_websockets_sees_server_close_code_and_reason() {
    let Some(python) = python() else {
        return;
    };
    server_close(&python, PY_WEBSOCKETS);
}

#[test]
fn python_websockets_sees_403_for_bad_cookies() {
    let Some(python) = python() else {
        return;
    };
    refused(&python, PY_WEBSOCKETS);
}

#[test]
fn python_websocket_client_gets_pushes_echoes_pong_and_clean_close() {
    let Some(python) = python() else {
        return;
    };
    full_session(&python, PY_WEBSOCKET_CLIENT);
}

#[test]
fn python_websocket_client_sees_server_close_code_and_reason() {
    let Some(python) = python() else {
        return;
    };
    server_close(&python, PY_WEBSOCKET_CLIENT);
}

#[test]
fn python_websocket_client_sees_403_for_bad_cookies() {
    let Some(python) = python() else {
        return;
    };
    refused(&python, PY_WEBSOCKET_CLIENT);
}

#[test]
fn node_ws_gets_pushes_echoes_pong_and_clean_close() {
    let Some(node) = node() else {
        return;
    };
    full_session(&node, NODE_WS);
}

#[test]
fn node_ws_sees_server_close_code_and_reason() {
    let Some(node) = node() else {
        return;
    };
    server_close(&node, NODE_WS);
}

#[test]
fn node_ws_sees_403_for_bad_cookies() {
    let Some(node) = node() else {
        return;
    };
    refused(&node, NODE_WS);
}

// --- Chromium -------------------------------------------------------------------------------

/// A tiny HTTP server for headless Chromium: `GET` of one of its files (request path, body,
/// content type) serves it, `POST /report` hands its body to the test (the page reports what
/// it saw), anything else is 404. Stopped on drop.
pub(crate) struct PageServer {
    pub(crate) port: u16,
    reports: Receiver<String>,
    stop: Arc<AtomicBool>,
    said: Vec<String>,
}

/// What a `PageServer` serves: request path, body, content type.
pub(crate) type PageFile = (&'static str, Vec<u8>, &'static str);

impl PageServer {
    /// Serves `tests/clients/page.html` as `/page.html`.
    pub(crate) fn start_page() -> PageServer {
        let page = std::fs::read(clients_dir().join("page.html")).unwrap();
        PageServer::start(vec![("/page.html", page, "text/html; charset=utf-8")])
    }

    pub(crate) fn start(files: Vec<PageFile>) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files = Arc::new(files);
        let (tx, reports) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (files, tx) = (Arc::clone(&files), tx.clone());
                std::thread::spawn(move || serve_http(stream, &files, &tx));
            }
        });
        PageServer {
            port,
            reports,
            stop,
            said: Vec::new(),
        }
    }

    /// The next report of the page; fails after `WAIT`.
    pub(crate) fn next(&mut self) -> Value {
        let report = self
            .reports
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no report from the page within {WAIT:?}"));
        self.said.push(report.clone());
        serde_json::from_str(&report).unwrap_or_else(|e| panic!("not JSON ({e}): {report}"))
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if std::thread::panicking() {
            eprintln!("--- the page reported:\n{}", self.said.join("\n"));
        }
    }
}

/// One request per connection (`Connection: close`), read with a bounded wait.
fn serve_http(mut stream: TcpStream, files: &[PageFile], reports: &Sender<String>) {
    let Some((request_line, body)) = read_http_request(&mut stream) else {
        return;
    };
    if request_line.starts_with("POST /report ") {
        let _ = reports.send(String::from_utf8_lossy(&body).into_owned());
        return write_http_response(&mut stream, "200 OK", "text/plain", b"");
    }
    let target = request_line.split(' ').nth(1).unwrap_or_default();
    let path = target.split(['?', '#']).next().unwrap_or_default();
    match files.iter().find(|(name, _, _)| *name == path) {
        Some((_, body, kind)) => write_http_response(&mut stream, "200 OK", kind, body),
        None => write_http_response(&mut stream, "404 Not Found", "text/plain", b""),
    }
}

/// The request line and the body (by `Content-Length`) of one HTTP request, read within the
/// stream's `WAIT`; `None` when the peer goes away first. For the pages the tests serve.
pub(crate) fn read_http_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let _ = stream.set_read_timeout(Some(WAIT));
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find(&request, b"\r\n\r\n") {
            break end + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let content_length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + content_length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    Some((
        request_line,
        request[head_end..head_end + content_length].to_vec(),
    ))
}

/// A `Connection: close` response that no cache keeps.
pub(crate) fn write_http_response(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// autobahn-js for the browser (`node_modules/autobahn-browser`, by tests/install-tools.sh).
pub(crate) fn autobahn_bundle() -> Vec<u8> {
    std::fs::read(clients_dir().join("node_modules/autobahn-browser/autobahn.min.js"))
        .expect("the autobahn-browser bundle (tests/install-tools.sh)")
}

/// The page's config, JSON in the URL fragment, percent-encoded.
pub(crate) fn fragment(config: &Value) -> String {
    config
        .to_string()
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Headless Chromium on one URL, in its own process group with a fresh profile; the whole
/// group is killed on drop.
pub(crate) struct Browser {
    child: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    fn open(url: &str) -> Browser {
        Browser::open_with(url, &[])
    }

    /// With more command-line switches (`--remote-debugging-port=0`).
    pub(crate) fn open_with(url: &str, switches: &[&str]) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(switches)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {CHROMIUM}: {e}"));
        Browser { child, profile }
    }

    /// The fresh profile folder (`--user-data-dir`), where Chromium writes
    /// `DevToolsActivePort` and its stderr goes to `chromium.log`.
    pub(crate) fn profile(&self) -> &Path {
        self.profile.path()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The renderer, GPU and utility processes share the browser's process group.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.wait();
    }
}

/// `http://HOST:PORT/page.html#CONFIG`, CONFIG being URL-encoded JSON the page reads.
fn page_url(host: &str, page: &PageServer, ws_url: &str, cookies: &Cookies) -> String {
    let config = json!({"ws": ws_url, "cookie": cookies.header}).to_string();
    let encoded: String = config
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect();
    format!("http://{host}:{}/page.html#{encoded}", page.port)
}

fn ws_port(server: &Server) -> String {
    server.tcp().rsplit(':').next().unwrap().to_string()
}

#[test]
fn chromium_page_gets_pushes_echoes_answers_pings_and_closes_cleanly() {
    if !chromium() {
        return;
    }
    let mut page = PageServer::start_page();
    let server = Setup::new()
        .echo()
        .set("origins", &format!(r#"["http://localhost:{}"]"#, page.port))
        .set("ping_interval", "1")
        .start();
    let cookies = Cookies::fresh("alice");
    // The cookies are set for `localhost` by the page; the browser sends them to any port.
    let ws_url = format!("ws://localhost:{}/", ws_port(&server));
    let _browser = Browser::open(&page_url("localhost", &page, &ws_url, &cookies));
    assert_eq!(page.next(), json!({"event": "open"}));
    let mut control = server.control();
    push_five(&mut control, &cookies);
    for expected in pushed_five().into_iter().chain(echoed_three()) {
        assert_eq!(page.next(), expected);
    }
    assert_eq!(page.next(), json!({"event": "idle"}));
    // A browser cannot ping, but must answer the server's pings. With nothing else on the
    // connection, the server sends a second ping only after a pong to the first (a ping
    // left unanswered for ping_interval drops the client instead): so two more pings
    // (2 bytes each) in bytes_out mean the browser answered.
    let before = control.status()["bytes_out"].as_u64().unwrap();
    eventually("two pings sent to the idle browser", || {
        let status = control.status();
        assert_eq!(status["connections"], 1, "{status}");
        status["bytes_out"].as_u64().unwrap() >= before + 4
    });
    control.direct(b'c', &cookies.token, b"still there?");
    assert_eq!(control.reply_text(), format!("32A{}", cookies.token_str()));
    assert_eq!(
        page.next(),
        json!({"event": "message", "kind": "text", "data": "still there?"})
    );
    assert_eq!(
        page.next(),
        json!({"event": "close", "code": 4000, "reason": "", "clean": true})
    );
    eventually("the browser's connection closed", || {
        control.status()["connections"] == 0
    });
}

#[test]
fn chromium_page_from_an_origin_not_allowed_is_refused() {
    if !chromium() {
        return;
    }
    let mut page = PageServer::start_page();
    let mut server = Setup::new()
        .echo()
        .set("origins", &format!(r#"["http://localhost:{}"]"#, page.port))
        .start();
    let cookies = Cookies::fresh("alice");
    // Same page, same port, valid cookies (set for 127.0.0.1 this time): only the origin
    // differs from the allowed one.
    let ws_url = format!("ws://127.0.0.1:{}/", ws_port(&server));
    let _browser = Browser::open(&page_url("127.0.0.1", &page, &ws_url, &cookies));
    assert_eq!(page.next(), json!({"event": "error"}));
    assert_eq!(
        page.next(),
        json!({"event": "close", "code": 1006, "reason": "", "clean": false})
    );
    let refusal = server.wait_for_log("handshake refused");
    let origin = format!("origin=http://127.0.0.1:{}", page.port);
    assert!(
        refusal.contains("status=403") && refusal.contains(&origin),
        "{refusal}"
    );
}
