//! Test support: start the real `wson` binary on a config in a fresh temp folder, and
//! talk to it as clients do (a small WebSocket client, a small control client).
//!
//! Addresses are never fixed: TCP listeners bind port 0 and the test reads the bound
//! address from the daemon's `listening` log line, with a bounded wait.

#![allow(dead_code)]

mod backend;
mod scripts;
pub mod tls;
pub mod wamp;

pub use backend::*;
pub use scripts::*;

/// Runs each scenario (a `fn(Setup)`) once with a Unix control socket and once with a TCP
/// one: `<module>::<scenario>::unix` and `<module>::<scenario>::tcp`.
macro_rules! over_both_control_kinds {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn unix() {
                super::$scenario(crate::common::Setup::new());
            }
            #[test]
            fn tcp() {
                super::$scenario(crate::common::Setup::new().control_tcp());
            }
        }
    )*};
}

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wson::auth::{self, Digest};
use wson::control::codec;
use wson::decoded::Decoded;
use wson::token::Token;
use wson::ws::frame::{self, OpCode};

pub const SECRET: &str = "test-secret-0123456789abcdef";
pub const ORIGIN: &str = "http://localhost";
/// Upper bound for anything a test waits for; reached only when something is broken.
pub const WAIT: Duration = Duration::from_secs(15);

pub fn wson_bin() -> &'static str {
    env!("CARGO_BIN_EXE_wson")
}

/// A config under construction: key -> TOML value text. A key of a table is written
/// dotted (`users.token_reuse`), which TOML reads as that table's key.
#[derive(Clone)]
pub struct Setup {
    keys: BTreeMap<String, String>,
}

impl Setup {
    pub fn new() -> Setup {
        let mut keys = BTreeMap::new();
        for (key, value) in [
            ("servers", r#"["tcp://127.0.0.1:0", "unix://ws.sock"]"#),
            ("control", r#""unix://control.sock""#),
            ("pid", r#""wson.pid""#),
            ("secret", &format!("{SECRET:?}")),
            ("origins", r#"["http://localhost"]"#),
            ("log_level", r#""debug""#),
        ] {
            keys.insert(key.to_string(), value.to_string());
        }
        Setup { keys }
    }

    /// Sets `key` to a TOML value written as text (`"\"echo\""`, `"2"`, `"[...]"`).
    pub fn set(mut self, key: &str, value: &str) -> Setup {
        self.keys.insert(key.to_string(), value.to_string());
        self
    }

    pub fn unset(mut self, key: &str) -> Setup {
        self.keys.remove(key);
        self
    }

    pub fn echo(self) -> Setup {
        self.set("client_messages", r#""echo""#)
    }

    pub fn control_tcp(self) -> Setup {
        self.set("control", r#""tcp://127.0.0.1:0""#)
    }

    pub fn toml(&self) -> String {
        self.keys
            .iter()
            .map(|(key, value)| format!("{key} = {value}\n"))
            .collect()
    }

    /// Writes the config into a fresh temp folder without starting anything.
    pub fn write(&self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wson.toml");
        std::fs::write(&path, self.toml()).expect("write config");
        (dir, path)
    }

    pub fn start(self) -> Server {
        let (dir, path) = self.write();
        Server::start_in(dir, path, self.toml(), &[])
    }
}

/// Where the server's control socket is.
#[derive(Debug, Clone)]
pub enum ControlAddr {
    Tcp(String),
    Unix(PathBuf),
    /// `tls://HOST:PORT`: `Control::connect` cannot reach it (no CA); see `tls::control`.
    Tls(String),
}

/// A running `wson start` (foreground), killed and reaped on drop. On a failing test
/// it prints the config and everything the server logged.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    config_text: String,
    log: Arc<Mutex<Vec<String>>>,
    lines: Receiver<String>,
    /// Bound WebSocket endpoints, in config order (`tcp://...` or `unix://...`).
    pub endpoints: Vec<String>,
    pub control: ControlAddr,
    /// Bound HTTP API endpoints (`[http] listen`), in config order.
    pub http: Vec<String>,
}

impl Server {
    pub fn start_in(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        config_text: String,
        extra_args: &[&str],
    ) -> Server {
        let mut child = Command::new(wson_bin())
            .arg("start")
            .arg("-c")
            .arg(&config_path)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wson");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut server = Server {
            child,
            dir,
            config_path,
            config_text,
            log,
            lines,
            endpoints: Vec::new(),
            control: ControlAddr::Unix(PathBuf::new()),
            http: Vec::new(),
        };
        loop {
            let line = as_logfmt(&server.next_line());
            let listening = line
                .contains(" listening ")
                .then(|| (logfmt_value(&line, "kind"), logfmt_value(&line, "endpoint")));
            if let Some((Some(kind), Some(endpoint))) = listening {
                if kind == "websocket" {
                    server.endpoints.push(endpoint);
                } else if kind == "http" {
                    server.http.push(endpoint);
                } else {
                    server.control = match (
                        endpoint.strip_prefix("tcp://"),
                        endpoint.strip_prefix("tls://"),
                    ) {
                        (Some(addr), _) => ControlAddr::Tcp(addr.to_string()),
                        (_, Some(addr)) => ControlAddr::Tls(addr.to_string()),
                        (None, None) => ControlAddr::Unix(PathBuf::from(
                            endpoint.strip_prefix("unix://").unwrap_or(&endpoint),
                        )),
                    };
                }
            } else if line.contains(" started ") && line.contains(" pid=") {
                return server;
            }
        }
    }

    /// The next log line, failing the test after `WAIT`.
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no log line from wson within {WAIT:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait();
                panic!("wson exited early: {status:?}")
            }
        }
    }

    /// Waits for a log line containing `needle` (bounded), returning it.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?} within {WAIT:?}"),
            }
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn tcp(&self) -> String {
        self.endpoints
            .iter()
            .find_map(|e| e.strip_prefix("tcp://"))
            .expect("a tcp listener")
            .to_string()
    }

    /// The address of the first `tls://` listener.
    pub fn tls(&self) -> String {
        self.endpoints
            .iter()
            .find_map(|e| e.strip_prefix("tls://"))
            .expect("a tls listener")
            .to_string()
    }

    pub fn unix(&self) -> PathBuf {
        PathBuf::from(
            self.endpoints
                .iter()
                .find_map(|e| e.strip_prefix("unix://"))
                .expect("a unix listener"),
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn control(&self) -> Control {
        Control::connect(&self.control)
    }

    /// A client with fresh valid cookies, connected over TCP and upgraded.
    pub fn client(&self) -> WsClient {
        let cookies = Cookies::fresh("alice");
        WsClient::connect_tcp(&self.tcp(), &cookies).expect("handshake accepted")
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        wait_for_exit(&mut self.child)
    }

    /// VmRSS of the server in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- wson config ({}):\n{}",
                self.config_path.display(),
                self.config_text
            );
            eprintln!("--- wson log:\n{}", self.log_text());
        }
    }
}

/// A `log_format = "json"` line as the logfmt line it stands for (values unquoted), so
/// that the same markers find it; a logfmt line is returned as it is.
pub fn as_logfmt(line: &str) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return line.to_string();
    };
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut out = String::new();
    for key in ["time", "level", "msg"] {
        if let Some(value) = fields.get(key) {
            out.push_str(&text(value));
            out.push(' ');
        }
    }
    for (key, value) in &fields {
        if !["time", "level", "msg"].contains(&key.as_str()) {
            out.push_str(&format!("{key}={} ", text(value)));
        }
    }
    out.trim_end().to_string()
}

/// The value of `key` in a logfmt line, unquoted and unescaped (logfmt quotes use JSON's
/// escapes).
pub fn logfmt_value(line: &str, key: &str) -> Option<String> {
    let marker = format!(" {key}=");
    let rest = &line[line.find(&marker)? + marker.len()..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut escaped = false;
        for (index, c) in quoted.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    return serde_json::from_str(&format!("\"{}\"", &quoted[..index])).ok();
                }
                (false, _) => {}
            }
        }
        None
    } else {
        Some(rest.split(' ').next()?.to_string())
    }
}

/// Valid auth cookies for a fresh, unique token.
pub struct Cookies {
    pub token: Token,
    pub user: String,
    pub header: String,
}

static TOKEN_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Cookies {
    pub fn fresh(user: &str) -> Cookies {
        Cookies::signed(user, now(), SECRET.as_bytes(), Digest::Md5)
    }

    pub fn signed(user: &str, time: u64, secret: &[u8], digest: Digest) -> Cookies {
        let token = unique_token();
        let header = auth::cookie_header(secret, digest, user, &token, time);
        Cookies {
            token,
            user: user.to_string(),
            header,
        }
    }

    pub fn token_str(&self) -> String {
        String::from_utf8(self.token.as_bytes().to_vec()).unwrap()
    }
}

pub fn unique_token() -> Token {
    let n = TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let text = format!("t{:015x}{:016x}", std::process::id(), n);
    Token::from_slice(text.as_bytes()).unwrap()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub trait Duplex: Read + Write + Send {
    fn set_timeout(&self, timeout: Option<Duration>);
    fn shutdown_write(&self);
}

impl Duplex for TcpStream {
    fn set_timeout(&self, timeout: Option<Duration>) {
        self.set_read_timeout(timeout).unwrap();
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Duplex for UnixStream {
    fn set_timeout(&self, timeout: Option<Duration>) {
        self.set_read_timeout(timeout).unwrap();
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

/// An HTTP response head (a refusal, or the 101).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub raw: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A received WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn close_code(&self) -> Option<u16> {
        let [a, b, ..] = self.payload[..] else {
            return None;
        };
        Some(u16::from_be_bytes([a, b]))
    }

    pub fn close_reason(&self) -> String {
        String::from_utf8_lossy(self.payload.get(2..).unwrap_or(&[])).into_owned()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.payload.clone()).unwrap()
    }
}

/// What the server did with a stream at its end.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The server closed the TCP connection (read returned 0 or reset).
    Closed,
    /// Nothing within the timeout.
    TimedOut,
}

pub fn request(host: &str, cookies: &str, origin: Option<&str>, extra: &str) -> String {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         {origin}Cookie: {cookies}\r\n{extra}\r\n"
    )
}

/// A minimal WebSocket client speaking raw bytes.
pub struct WsClient {
    pub stream: Box<dyn Duplex>,
    buf: Vec<u8>,
    pub response: Option<HttpResponse>,
}

impl WsClient {
    /// An upgrade of `server`'s TCP listener offering the subprotocols `protocols` (as the
    /// header lists them) with `cookie_header`: the client with its 101 read, or the refusal.
    pub fn offering(
        server: &Server,
        cookie_header: &str,
        protocols: &str,
    ) -> Result<WsClient, HttpResponse> {
        let addr = server.tcp();
        let mut ws = WsClient::raw_tcp(&addr);
        let extra = format!("Sec-WebSocket-Protocol: {protocols}\r\n");
        ws.upgrade(&request(&addr, cookie_header, Some(ORIGIN), &extra))?;
        Ok(ws)
    }

    /// `offering`, failing the test on a refusal.
    pub fn accepted_offering(server: &Server, cookie_header: &str, protocols: &str) -> WsClient {
        WsClient::offering(server, cookie_header, protocols)
            .unwrap_or_else(|refusal| panic!("upgrade refused: {}", refusal.raw))
    }

    /// The subprotocol the 101 chose.
    pub fn chosen_protocol(&self) -> Option<&str> {
        self.response
            .as_ref()
            .and_then(|response| response.header("Sec-WebSocket-Protocol"))
    }

    pub fn raw_tcp(addr: &str) -> WsClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        WsClient::over(Box::new(stream))
    }

    pub fn raw_unix(path: &Path) -> WsClient {
        WsClient::over(Box::new(UnixStream::connect(path).expect("connect unix")))
    }

    pub fn over(stream: Box<dyn Duplex>) -> WsClient {
        stream.set_timeout(Some(WAIT));
        WsClient {
            stream,
            buf: Vec::new(),
            response: None,
        }
    }

    /// Connects and upgrades; `Err` carries the refusal.
    pub fn connect_tcp(addr: &str, cookies: &Cookies) -> Result<WsClient, HttpResponse> {
        let mut client = WsClient::raw_tcp(addr);
        client.upgrade(&request(addr, &cookies.header, Some(ORIGIN), ""))?;
        Ok(client)
    }

    pub fn connect_unix(path: &Path, cookies: &Cookies) -> Result<WsClient, HttpResponse> {
        let mut client = WsClient::raw_unix(path);
        client.upgrade(&request("localhost", &cookies.header, Some(ORIGIN), ""))?;
        Ok(client)
    }

    /// Sends `request` and reads the response head; `Ok` only for a 101.
    pub fn upgrade(&mut self, request: &str) -> Result<(), HttpResponse> {
        self.send_raw(request.as_bytes());
        let response = self.read_response();
        if response.status == 101 {
            assert_eq!(
                response.header("Sec-WebSocket-Accept"),
                Some(wson::ws::handshake::accept_key("dGhlIHNhbXBsZSBub25jZQ==").as_str())
            );
            self.response = Some(response);
            Ok(())
        } else {
            Err(response)
        }
    }

    pub fn read_response(&mut self) -> HttpResponse {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap_or_default();
                let status = status_line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                    .collect();
                return HttpResponse {
                    status,
                    headers,
                    raw: head,
                };
            }
            if !self.fill() {
                panic!(
                    "connection ended before an HTTP response; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Reads more bytes into the buffer; false at EOF.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                // A signal to the test process (a child's SIGCHLD) is no reason to fail.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return false,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Writes, tolerating a server that already closed.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let frame = frame::encode_masked_frame(fin, opcode, payload, [0x37, 0xfa, 0x21, 0x3d]);
        self.send_raw(&frame);
    }

    pub fn send_text(&mut self, text: &str) {
        self.send(true, OpCode::Text, text.as_bytes());
    }

    pub fn send_close(&mut self, code: u16, reason: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.send(true, OpCode::Close, &payload);
    }

    /// The next frame, or `None` when the server closed the connection.
    pub fn try_recv(&mut self) -> Option<Frame> {
        loop {
            match frame::decode_header(&self.buf, u64::MAX >> 1) {
                Ok(Decoded::Done { item, len }) => {
                    assert!(item.mask.is_none(), "server frames must be unmasked");
                    let payload_len = usize::try_from(item.payload_len).unwrap();
                    if self.buf.len() >= len + payload_len {
                        let payload = self.buf[len..len + payload_len].to_vec();
                        self.buf.drain(..len + payload_len);
                        return Some(Frame {
                            fin: item.fin,
                            opcode: item.opcode,
                            payload,
                        });
                    }
                }
                Ok(Decoded::Incomplete) => {}
                Err(e) => panic!("server sent a bad frame: {e:?}"),
            }
            if !self.fill() {
                assert!(self.buf.is_empty(), "connection ended mid-frame");
                return None;
            }
        }
    }

    pub fn recv(&mut self) -> Frame {
        self.try_recv()
            .expect("a frame, not the end of the connection")
    }

    /// The next data frame, answering nothing and skipping pings.
    pub fn recv_data(&mut self) -> Frame {
        loop {
            let frame = self.recv();
            if frame.opcode != OpCode::Ping && frame.opcode != OpCode::Pong {
                return frame;
            }
        }
    }

    pub fn recv_text(&mut self) -> String {
        let frame = self.recv_data();
        assert_eq!(frame.opcode, OpCode::Text, "expected text, got {frame:?}");
        frame.text()
    }

    /// Expects a Close frame with `code`, then the server closing the connection.
    pub fn expect_close(&mut self, code: u16) -> Frame {
        let frame = self.recv_data();
        assert_eq!(frame.opcode, OpCode::Close, "expected close, got {frame:?}");
        assert_eq!(
            frame.close_code(),
            Some(code),
            "close reason {:?}",
            frame.close_reason()
        );
        frame
    }

    /// Waits for the server to close the TCP connection, discarding frames.
    pub fn expect_end(&mut self) {
        while self.try_recv().is_some() {}
    }

    /// Whether the server closes within `timeout` (without data).
    pub fn end_within(&mut self, timeout: Duration) -> End {
        self.stream.set_timeout(Some(timeout));
        let mut chunk = [0u8; 4096];
        let end = loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break End::Closed,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    break End::TimedOut;
                }
                Err(_) => break End::Closed,
            }
        };
        self.stream.set_timeout(Some(WAIT));
        end
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A control-socket client. Events (`e`) and authorization requests (`z`) that arrive
/// while it waits for a reply are set aside, in order, for `next_event` and
/// `next_request` (COMMANDS.md, Connection).
pub struct Control {
    pub stream: Box<dyn Duplex>,
    buf: Vec<u8>,
    held: VecDeque<(u8, Vec<u8>)>,
}

impl Control {
    pub fn connect(addr: &ControlAddr) -> Control {
        let stream: Box<dyn Duplex> = match addr {
            ControlAddr::Tcp(a) => Box::new(TcpStream::connect(a).expect("connect control")),
            ControlAddr::Unix(p) => Box::new(UnixStream::connect(p).expect("connect control")),
            ControlAddr::Tls(a) => panic!("tls://{a}: connect with tls::Pki::control"),
        };
        Control::over(stream)
    }

    /// A control client over a stream connected already (TLS).
    pub fn over(stream: Box<dyn Duplex>) -> Control {
        stream.set_timeout(Some(WAIT));
        Control {
            stream,
            buf: Vec::new(),
            held: VecDeque::new(),
        }
    }

    pub fn send(&mut self, command: u8, payload: &[u8]) {
        let mut out = Vec::new();
        codec::encode(command, payload, &mut out);
        self.stream.write_all(&out).expect("control write");
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("control write");
    }

    pub fn direct(&mut self, command: u8, token: &Token, message: &[u8]) {
        let mut payload = token.as_bytes().to_vec();
        payload.extend_from_slice(message);
        self.send(command, &payload);
    }

    /// The next reply frame as (command, payload), events, authorization requests and WAMP
    /// frames set aside; `None` at EOF.
    pub fn try_reply(&mut self) -> Option<(u8, Vec<u8>)> {
        self.next_frame(|command| !matches!(command, b'e' | b'z' | b'V'))
    }

    /// The next frame whose command byte `wanted` accepts, first among those set aside;
    /// the others read meanwhile are set aside in order. `None` at EOF.
    pub fn next_frame(&mut self, wanted: impl Fn(u8) -> bool) -> Option<(u8, Vec<u8>)> {
        if let Some(index) = self.held.iter().position(|(command, _)| wanted(*command)) {
            return self.held.remove(index);
        }
        loop {
            let frame = self.read_frame()?;
            if wanted(frame.0) {
                return Some(frame);
            }
            self.held.push_back(frame);
        }
    }

    /// Sends one WAMP message (JSON) from the backend's session: a `V` frame.
    pub fn send_v(&mut self, message: &serde_json::Value) {
        self.send(b'V', message.to_string().as_bytes());
    }

    /// The next WAMP message to the backend's session (a `V` frame), other frames set aside.
    pub fn next_v(&mut self) -> serde_json::Value {
        let (_, payload) = self
            .next_frame(|command| command == b'V')
            .expect("a V frame");
        serde_json::from_slice(&payload).unwrap()
    }

    /// Frames set aside so far and not taken.
    pub fn held(&self) -> &VecDeque<(u8, Vec<u8>)> {
        &self.held
    }

    /// The next frame off the socket, whatever it is; `None` at EOF.
    pub fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            match codec::decode(&self.buf, usize::MAX) {
                Ok(Decoded::Done { item, len }) => {
                    let reply = (item.command, item.payload.to_vec());
                    self.buf.drain(..len);
                    return Some(reply);
                }
                Ok(Decoded::Incomplete) => {}
                Err(e) => panic!("bad reply from wson: {e:?} in {:?}", self.buf),
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("control read failed: {e}"),
            }
        }
    }

    pub fn reply(&mut self) -> (u8, Vec<u8>) {
        self.try_reply().expect("a control reply")
    }

    /// The reply as its wire text, e.g. `0P` or `32A...`.
    pub fn reply_text(&mut self) -> String {
        let (command, payload) = self.reply();
        format!(
            "{}{}{}",
            payload.len(),
            command as char,
            String::from_utf8_lossy(&payload)
        )
    }

    /// Status JSON from `t`.
    pub fn status(&mut self) -> serde_json::Value {
        self.send(b't', b"");
        loop {
            let (command, payload) = self.reply();
            if command == b'T' {
                return serde_json::from_slice(&payload).unwrap();
            }
        }
    }

    /// Round trip through `p`, so everything sent before has been applied.
    pub fn sync(&mut self) {
        self.send(b'p', b"");
        loop {
            let (command, _) = self.reply();
            if command == b'P' {
                return;
            }
        }
    }
}

/// Polls `condition` until true, failing after `WAIT`.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) for `child` to exit and returns its exit code.
pub fn wait_for_exit(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            Instant::now() < deadline,
            "wson did not exit within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
