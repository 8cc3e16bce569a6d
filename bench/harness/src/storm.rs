//! The reconnect storm of issue 15: `wsbench storm`. What replaying missed publications
//! costs wson, per replayed message, next to a live delivery, in one run.
//!
//! One wson (pinned to the server core) with `[history] prefixes = ["storm."]`; N users
//! (`u0`, `u1`, ...), each subscribed with `J` to one of T topics (`storm.t{i mod T}`)
//! before any client connects. Each round, on a fresh server:
//!
//! 1. **Connect**: N plain clients, one per user, upgrade with `?resume=` (empty: they want
//!    position notices), C handshakes in flight.
//! 2. **Live**: publications with `Y` (100-byte text; every subscriber gets a position
//!    notice, then the publication): `live w=1`, one publication at a time (each reaches its
//!    N/T subscribers before the next), then `live burst`, M publications round-robin over
//!    the T topics written at once (each client gets M/T, as in a replay). *cpu us/deliv*:
//!    server CPU over the phase / deliveries (a delivery is a notice and a publication).
//! 3. **Storms**, in both orders over the rounds: every client disconnects (the harness
//!    waits until wson's `t` counts none), M publications go out (`missed`: kept, nobody
//!    listening), and all N reconnect, C in flight:
//!    - `storm resume`: with `?resume=storm.tK@EPOCH:OFFSET`, the position of the last
//!      publication the client saw; it must get exactly the missed ones, each after its
//!      notice, in order, none twice, none lost, no reload. The phase ends when every client
//!      has all of its own.
//!    - `storm plain`: without `resume` (the client reloads its state from the backend
//!      instead, as a page load): it must get nothing; the phase ends when every upgrade
//!      is done.
//!
//!    Each ends with the same 200 ms of quiet before the CPU is read. *cpu us/reconn*: server
//!    CPU / N; *cpu us/replayed*: the resume storm's CPU / messages replayed; *replay
//!    only*: (resume storm - plain storm) / messages replayed, the replay without the
//!    handshakes; each over the live delivery's CPU (W = 1 and burst).
//!
//! After each storm one live publication per topic checks that every client is subscribed
//! again (notices for the resumed clients, none for the plain ones).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Socket, Type};
use wson::auth::{self, Digest};

use crate::own_wson::OwnWson;
use crate::servers::cpu_ns;

const SECRET: &str = "wsbench-storm-secret-0123456789";
const MESSAGE_LEN: usize = 100;
const PREFIX: &str = "storm.t";
/// Nothing moved for this long: what has not come is lost.
const STALL: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(200);

struct Options {
    wson: PathBuf,
    clients: usize,
    topics: usize,
    missed: usize,
    live_w1: usize,
    concurrency: usize,
    rounds: usize,
    gen_core: usize,
    server_core: usize,
    /// The JSON line is also appended here (`--json`; run.sh: bench/out/results.jsonl).
    json: Option<PathBuf>,
}

struct Wson {
    own: OwnWson,
    ws: SocketAddr,
    control: SocketAddr,
}

fn start_wson(options: &Options) -> Result<Wson, String> {
    // size and max_bytes hold every publication of the run; a replay of ~10 small messages
    // is far below max_outbound_buffer.
    let config = format!(
        "servers = [\"tcp://127.0.0.1:0\"]\n\
         control = \"tcp://127.0.0.1:0\"\n\
         pid = \"wson.pid\"\n\
         secret = \"{SECRET}\"\n\
         origins = [\"*\"]\n\
         log_level = \"info\"\n\
         max_connections = 100000\n\
         ping_interval = 120\n\
         [history]\n\
         prefixes = [\"storm.\"]\n\
         size = 10000\n\
         max_age = 3600\n\
         max_bytes = 1073741824\n"
    );
    let own = OwnWson::start(
        &options.wson,
        options.server_core,
        "wsbench-storm",
        &config,
        |_| Ok(()),
    )?;
    let address = |text: String| {
        text.parse::<SocketAddr>()
            .map_err(|e| format!("{text}: {e}"))
    };
    Ok(Wson {
        ws: address(own.server("tcp")?)?,
        control: address(own.control_addr()?)?,
        own,
    })
}

/// The control connection: frames out, replies in.
struct Control {
    stream: TcpStream,
    buf: Vec<u8>,
}

fn fields(parts: &[&str]) -> String {
    parts.iter().map(|p| format!("{}:{p}", p.len())).collect()
}

fn frame(command: char, payload: &str) -> String {
    format!("{}{command}{payload}", payload.len())
}

impl Control {
    fn connect(addr: SocketAddr) -> Result<Control, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("control: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Control {
            stream,
            buf: Vec::new(),
        })
    }

    fn send(&mut self, text: &str) -> Result<(), String> {
        self.stream
            .write_all(text.as_bytes())
            .map_err(|e| format!("control write: {e}"))
    }

    /// The next reply: (command byte, payload).
    fn reply(&mut self) -> Result<(u8, String), String> {
        loop {
            let digits = self.buf.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 0 && self.buf.len() > digits {
                let len: usize = std::str::from_utf8(&self.buf[..digits])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("control: bad length")?;
                if self.buf.len() >= digits + 1 + len {
                    let command = self.buf[digits];
                    let payload = String::from_utf8_lossy(&self.buf[digits + 1..digits + 1 + len])
                        .into_owned();
                    self.buf.drain(..digits + 1 + len);
                    return Ok((command, payload));
                }
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|e| format!("control read: {e}"))?;
            if n == 0 {
                return Err("control: wson closed the connection".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn expect(&mut self, command: u8) -> Result<String, String> {
        let (got, payload) = self.reply()?;
        match got == command {
            true => Ok(payload),
            false => Err(format!(
                "control: expected {} got {}{payload}",
                command as char, got as char
            )),
        }
    }

    fn connections(&mut self) -> Result<u64, String> {
        self.send("0t")?;
        let json = self.expect(b'T')?;
        let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        value["connections"]
            .as_u64()
            .ok_or_else(|| "status without connections".to_owned())
    }
}

/// What went wrong, summed over clients.
#[derive(Debug, Default, Clone, Copy)]
struct Anomalies {
    /// Skipped: a publication came before an earlier one of its topic (the earlier one,
    /// if it comes later, counts as duplicated).
    lost: u64,
    duplicated: u64,
    stray: u64,
    reloads: u64,
    /// A notice not followed by its publication, or a publication without a notice to a
    /// resuming client (or with one to a plain client).
    notice_errors: u64,
    disconnected: u64,
}

impl Anomalies {
    fn total(&self) -> u64 {
        self.lost
            + self.duplicated
            + self.stray
            + self.reloads
            + self.notice_errors
            + self.disconnected
    }

    fn add(&mut self, other: &Anomalies) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.stray += other.stray;
        self.reloads += other.reloads;
        self.notice_errors += other.notice_errors;
        self.disconnected += other.disconnected;
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "lost": self.lost, "duplicated": self.duplicated,
            "stray": self.stray, "reloads": self.reloads, "notice_errors": self.notice_errors,
            "disconnected": self.disconnected,
        })
    }
}

/// One user's client: its topic, the last position it saw, its socket while connected.
struct Client {
    topic: usize,
    epoch: String,
    /// The offset of the last publication of its topic it has (or reloaded past).
    offset: u64,
    /// Asked with `resume`: position notices come before publications.
    notices: bool,
    /// The offset the last notice announced, until its publication comes.
    announced: Option<u64>,
    stream: Option<mio::net::TcpStream>,
    pending: Vec<u8>,
    /// Publications received in the current phase.
    received: u64,
    anomalies: Anomalies,
}

impl Client {
    /// Takes every whole frame in `pending`.
    fn frames(&mut self) {
        loop {
            let buf = &self.pending;
            if buf.len() < 2 {
                return;
            }
            let (len, header) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
                126 => return,
                127 => {
                    self.anomalies.stray += 1;
                    self.pending.clear();
                    return;
                }
                short => (usize::from(short), 2),
            };
            if buf.len() < header + len {
                return;
            }
            let opcode = buf[0] & 0x0f;
            let payload = buf[header..header + len].to_vec();
            self.pending.drain(..header + len);
            match opcode {
                1 => self.message(&payload),
                8 => self.anomalies.disconnected += 1,
                _ => {}
            }
        }
    }

    fn message(&mut self, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        if text.starts_with("{\"wson\":\"position\"") {
            if !self.notices || self.announced.is_some() {
                self.anomalies.notice_errors += 1;
            }
            let epoch = json_str(&text, "epoch").unwrap_or_default();
            let topic = json_str(&text, "topic").unwrap_or_default();
            if topic != format!("{PREFIX}{}", self.topic) {
                self.anomalies.stray += 1;
            }
            if self.epoch.is_empty() {
                self.epoch = epoch;
            } else if epoch != self.epoch {
                self.anomalies.reloads += 1;
            }
            self.announced = json_u64(&text, "offset");
            return;
        }
        if text.starts_with("{\"wson\":") {
            self.anomalies.reloads += 1;
            return;
        }
        // "t{topic} n{offset} xxx..."
        let mut words = text.split(' ');
        let topic: Option<usize> = words.next().and_then(|w| w.strip_prefix('t')?.parse().ok());
        let seq: Option<u64> = words.next().and_then(|w| w.strip_prefix('n')?.parse().ok());
        let (Some(topic), Some(seq)) = (topic, seq) else {
            self.anomalies.stray += 1;
            return;
        };
        if topic != self.topic {
            self.anomalies.stray += 1;
            return;
        }
        let announced = self.announced.take();
        if self.notices && announced != Some(seq) {
            self.anomalies.notice_errors += 1;
        }
        self.received += 1;
        if seq <= self.offset {
            self.anomalies.duplicated += 1;
        } else {
            if seq > self.offset + 1 {
                // Skipped: lost (a late one would count as duplicated).
                self.anomalies.lost += seq - self.offset - 1;
            }
            self.offset = seq;
        }
    }
}

fn json_str(text: &str, key: &str) -> Option<String> {
    let start = text.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = text[start..].find('"')?;
    Some(text[start..start + end].to_owned())
}

fn json_u64(text: &str, key: &str) -> Option<u64> {
    let start = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The state of the run: wson, its control connection, the clients, what each topic got.
struct Run {
    wson: Wson,
    control: Control,
    clients: Vec<Client>,
    /// Publications per topic so far (= its offset).
    published: Vec<u64>,
    /// Clients of the last connect phase that had everything they were owed in the bytes
    /// read with the 101 response (the replay written with it).
    with_101: usize,
    /// Source address of the next connect phase (127.0.0.x): each phase of the run its own,
    /// so the TIME_WAIT ports the clients leave behind never get in the way.
    next_source: u8,
    tokens: usize,
    poll: Poll,
}

impl Run {
    fn publish_frame(&mut self, topic: usize) -> String {
        self.published[topic] += 1;
        let mut message = format!("t{topic} n{} ", self.published[topic]);
        message.extend(std::iter::repeat_n('x', MESSAGE_LEN - message.len()));
        frame('Y', &fields(&[&format!("{PREFIX}{topic}"), &message]))
    }

    /// Publishes `count` round-robin over the topics, all written at once; reads the `@`s.
    fn publish_burst(&mut self, count: usize, first_topic: usize) -> Result<(), String> {
        let topics = self.published.len();
        let mut text = String::new();
        for k in 0..count {
            text.push_str(&self.publish_frame((first_topic + k) % topics));
        }
        self.control.send(&text)?;
        for _ in 0..count {
            self.control.expect(b'@')?;
        }
        Ok(())
    }

    /// Reads every client until each has `published` of its topic, or nothing moved for
    /// STALL (then the rest counts as lost).
    fn receive_all(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 64 * 1024];
        let mut missing: usize = self
            .clients
            .iter()
            .filter(|c| c.offset < self.published[c.topic])
            .count();
        let mut last_move = Instant::now();
        while missing > 0 {
            if last_move.elapsed() > STALL {
                for client in &mut self.clients {
                    let behind = self.published[client.topic].saturating_sub(client.offset);
                    client.anomalies.lost += behind;
                    client.offset += behind;
                }
                return Ok(());
            }
            self.poll
                .poll(&mut events, Some(Duration::from_millis(500)))
                .map_err(|e| e.to_string())?;
            for event in &events {
                let Some(client) = self.clients.get_mut(event.token().0) else {
                    continue;
                };
                let was = client.offset >= self.published[client.topic];
                read_client(client, &mut buf);
                client.frames();
                if !was && client.offset >= self.published[client.topic] {
                    missing -= 1;
                }
                last_move = Instant::now();
            }
        }
        Ok(())
    }

    /// Drains what is readable without waiting (for the plain storm, which expects nothing).
    fn drain_now(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            self.poll
                .poll(&mut events, Some(Duration::from_millis(50)))
                .map_err(|e| e.to_string())?;
            if events.is_empty() {
                return Ok(());
            }
            for event in &events {
                if let Some(client) = self.clients.get_mut(event.token().0) {
                    read_client(client, &mut buf);
                    client.frames();
                }
            }
        }
    }

    /// Drops every client's socket, then waits until wson counts no connection.
    fn disconnect(&mut self) -> Result<(), String> {
        for client in &mut self.clients {
            if let Some(mut stream) = client.stream.take() {
                let _ = self.poll.registry().deregister(&mut stream);
            }
            client.pending.clear();
            client.announced = None;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let open = self.control.connections()?;
            if open == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{open} connections still open 30 s after the clients left"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Connects every client, `concurrency` upgrades in flight, from a source address of
    /// its own; `resume` makes each ask for its position. The connect time.
    fn connect(&mut self, resume: bool, concurrency: usize) -> Result<Duration, String> {
        let source = self.next_source;
        self.next_source += 1;
        let requests: Vec<String> = self
            .clients
            .iter()
            .enumerate()
            .map(|(i, client)| {
                self.tokens += 1;
                let path = match (resume, client.epoch.is_empty()) {
                    (false, _) => "/".to_owned(),
                    (true, true) => "/?resume=".to_owned(),
                    (true, false) => format!(
                        "/?resume={PREFIX}{}@{}:{}",
                        client.topic, client.epoch, client.offset
                    ),
                };
                upgrade_request(self.wson.ws, &path, &format!("u{i}"), self.tokens)
            })
            .collect();
        let requests = Arc::new(requests);
        let next = Arc::new(AtomicUsize::new(0));
        let server = self.wson.ws;
        let started = Instant::now();
        let threads: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                let (requests, next) = (Arc::clone(&requests), Arc::clone(&next));
                std::thread::spawn(
                    move || -> Result<Vec<(usize, TcpStream, Vec<u8>)>, String> {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(request) = requests.get(i) else {
                                return Ok(out);
                            };
                            let (stream, rest) = upgrade(server, source, request)
                                .map_err(|e| format!("client {i}: {e}"))?;
                            out.push((i, stream, rest));
                        }
                    },
                )
            })
            .collect();
        let mut connected = Vec::with_capacity(self.clients.len());
        for thread in threads {
            connected.extend(
                thread
                    .join()
                    .map_err(|_| "a connect thread panicked".to_owned())??,
            );
        }
        let elapsed = started.elapsed();
        self.with_101 = 0;
        for (i, stream, rest) in connected {
            stream.set_nonblocking(true).map_err(|e| e.to_string())?;
            let mut stream = mio::net::TcpStream::from_std(stream);
            self.poll
                .registry()
                .register(&mut stream, Token(i), Interest::READABLE)
                .map_err(|e| e.to_string())?;
            let client = &mut self.clients[i];
            client.stream = Some(stream);
            client.notices = resume;
            client.pending = rest;
            client.frames();
            if client.offset >= self.published[client.topic] {
                self.with_101 += 1;
            }
        }
        Ok(elapsed)
    }

    fn reset_counts(&mut self) {
        for client in &mut self.clients {
            client.received = 0;
        }
    }

    fn received(&self) -> u64 {
        self.clients.iter().map(|c| c.received).sum()
    }

    fn anomalies(&self) -> Anomalies {
        let mut sum = Anomalies::default();
        for client in &self.clients {
            sum.add(&client.anomalies);
        }
        sum
    }

    fn cpu(&self) -> Result<u64, String> {
        cpu_ns(self.wson.own.pid).ok_or_else(|| "no cpu figure".to_owned())
    }
}

fn read_client(client: &mut Client, buf: &mut [u8]) {
    let Some(stream) = client.stream.as_mut() else {
        return;
    };
    loop {
        match stream.read(buf) {
            Ok(0) => {
                client.anomalies.disconnected += 1;
                client.stream = None;
                return;
            }
            Ok(n) => client.pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                client.anomalies.disconnected += 1;
                client.stream = None;
                return;
            }
        }
    }
}

fn upgrade_request(server: SocketAddr, path: &str, user: &str, sequence: usize) -> String {
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate().take(11) {
        *byte = ((sequence >> (6 * i)) & 63) as u8;
    }
    let token = auth::token_from_random(bytes);
    let cookies = auth::cookie_header(
        SECRET.as_bytes(),
        Digest::Md5,
        user,
        &token,
        auth::unix_now(),
    );
    format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: http://localhost\r\nCookie: {cookies}\r\n\r\n"
    )
}

/// A blocking connect from 127.0.0.`source` and upgrade; the socket and any bytes read
/// past the 101 response.
fn upgrade(server: SocketAddr, source: u8, request: &str) -> io::Result<(TcpStream, Vec<u8>)> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let from = SocketAddr::from(([127, 0, 0, source], 0));
    socket.bind(&from.into())?;
    socket.set_tcp_nodelay(true)?;
    // The port is picked at connect, for this destination: the TIME_WAIT ports of earlier
    // rounds (other server ports) do not count against it.
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    )
    .map_err(io::Error::from)?;
    socket.connect(&server.into())?;
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            if !head.starts_with(b"HTTP/1.1 101") {
                return Err(io::Error::other(
                    String::from_utf8_lossy(&head).into_owned(),
                ));
            }
            let rest = head.split_off(end + 4);
            return Ok((stream, rest));
        }
    }
}

/// One round's figures.
#[derive(Debug, Default, Clone)]
struct Round {
    live_w1_us: f64,
    live_burst_us: f64,
    missed_pub_us: f64,
    resume_us: f64,
    plain_us: f64,
    replayed: u64,
    resume_connect_s: f64,
    plain_connect_s: f64,
    anomalies: Anomalies,
}

fn phase_label(name: &str, cpu_ns: u64, per: u64, unit: &str) -> f64 {
    let us = cpu_ns as f64 / 1000.0 / per.max(1) as f64;
    eprintln!("wsbench storm:   {name}: {us:.3} us/{unit} ({per} {unit})");
    us
}

fn round(options: &Options, number: usize) -> Result<Round, String> {
    let wson = start_wson(options)?;
    let mut control = Control::connect(wson.control)?;
    let topics = options.topics;
    // J for every user first: each connection joins its topic at the upgrade.
    let mut text = String::new();
    for i in 0..options.clients {
        text.push_str(&frame(
            'J',
            &fields(&[&format!("u{i}"), &format!("{PREFIX}{}", i % topics)]),
        ));
    }
    control.send(&text)?;
    for _ in 0..options.clients {
        let reply = control.expect(b'#')?;
        if reply != "0" {
            return Err(format!("J answered {reply} for an offline user"));
        }
    }
    let clients = (0..options.clients)
        .map(|i| Client {
            topic: i % topics,
            epoch: String::new(),
            offset: 0,
            notices: false,
            announced: None,
            stream: None,
            pending: Vec::new(),
            received: 0,
            anomalies: Anomalies::default(),
        })
        .collect();
    let mut run = Run {
        wson,
        control,
        clients,
        published: vec![0; topics],
        // Three connect phases per round, each from its own address.
        next_source: u8::try_from(10 + 3 * number).map_err(|_| "too many rounds")?,
        tokens: 0,
        with_101: 0,
        poll: Poll::new().map_err(|e| e.to_string())?,
    };
    let mut figures = Round::default();
    let n = options.clients as u64;
    run.connect(true, options.concurrency)?;
    std::thread::sleep(Duration::from_millis(500));

    // Live, one publication at a time.
    let before = run.cpu()?;
    run.reset_counts();
    for k in 0..options.live_w1 {
        let frame = run.publish_frame(k % topics);
        run.control.send(&frame)?;
        run.control.expect(b'@')?;
        run.receive_all()?;
    }
    let cpu = run.cpu()? - before;
    figures.live_w1_us = phase_label("live w=1", cpu, run.received(), "deliv");

    // Live, M at once (M/T per client, as a replay).
    let before = run.cpu()?;
    run.reset_counts();
    run.publish_burst(options.missed, 0)?;
    run.receive_all()?;
    let cpu = run.cpu()? - before;
    figures.live_burst_us = phase_label("live burst", cpu, run.received(), "deliv");

    let order = match number % 2 {
        0 => [true, false],
        _ => [false, true],
    };
    for resume in order {
        run.disconnect()?;
        let before = run.cpu()?;
        run.publish_burst(options.missed, 0)?;
        let cpu = run.cpu()? - before;
        figures.missed_pub_us = cpu as f64 / 1000.0 / options.missed as f64;
        std::thread::sleep(Duration::from_millis(300));
        run.reset_counts();
        let before = run.cpu()?;
        let connect_time = run.connect(resume, options.concurrency)?;
        if resume {
            run.receive_all()?;
        } else {
            // The plain client reloads its state (as from `G`): it is at the topic's
            // position now, and must get nothing.
            for client in &mut run.clients {
                client.offset = run.published[client.topic];
            }
            run.drain_now()?;
        }
        std::thread::sleep(QUIET);
        let cpu = run.cpu()? - before;
        run.drain_now()?;
        if resume {
            figures.replayed = run.received();
            figures.resume_us = cpu as f64 / 1000.0;
            figures.resume_connect_s = connect_time.as_secs_f64();
            eprintln!(
                "wsbench storm:   storm resume: {:.1} us/reconn, {:.3} us/replayed ({} replayed, upgrades in {:.2} s; {} clients had their whole replay in the read of the 101)",
                figures.resume_us / n as f64,
                figures.resume_us / figures.replayed.max(1) as f64,
                figures.replayed,
                figures.resume_connect_s,
                run.with_101
            );
        } else {
            let stray = run.received();
            if stray > 0 {
                eprintln!("wsbench storm:   storm plain: {stray} publications to plain clients");
            }
            for client in &mut run.clients {
                client.anomalies.stray += client.received;
            }
            figures.plain_us = cpu as f64 / 1000.0;
            figures.plain_connect_s = connect_time.as_secs_f64();
            eprintln!(
                "wsbench storm:   storm plain: {:.1} us/reconn (upgrades in {:.2} s)",
                figures.plain_us / n as f64,
                figures.plain_connect_s
            );
        }
        // Subscribed again: one publication per topic reaches every client.
        run.reset_counts();
        run.publish_burst(topics, 0)?;
        run.receive_all()?;
        if run.received() != n {
            eprintln!(
                "wsbench storm:   check after the storm: {} of {n} clients got the topic's next publication",
                run.received()
            );
        }
    }
    figures.anomalies = run.anomalies();
    if figures.anomalies.total() > 0 {
        eprintln!("wsbench storm:   anomalies: {:?}", figures.anomalies);
    }
    Ok(figures)
}

fn parse(args: &[String]) -> Result<Options, String> {
    let bench = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut options = Options {
        wson: bench.join("../target/release/wson"),
        clients: 10_000,
        topics: 100,
        missed: 1000,
        live_w1: 200,
        concurrency: 64,
        rounds: 1,
        gen_core: 1,
        server_core: 0,
        json: None,
    };
    crate::flags::each(args, |flag| {
        match flag.name {
            "--wson" => options.wson = flag.path(),
            "--clients" | "--n" => options.clients = flag.number()?,
            "--topics" => options.topics = flag.number()?.max(1),
            "--missed" => options.missed = flag.number()?,
            "--live" => options.live_w1 = flag.number()?,
            "--concurrency" => options.concurrency = flag.number()?.max(1),
            "--rounds" => options.rounds = flag.number()?.max(1),
            "--gen-core" => options.gen_core = flag.number()?,
            "--server-core" => options.server_core = flag.number()?,
            "--json" => options.json = Some(flag.path()),
            _ => return Err(format!("unknown argument {}\n{}", flag.name, usage())),
        }
        Ok(())
    })?;
    if options.clients > 19_000 {
        return Err("--clients: at most 19,000 (the open-file limit)".into());
    }
    Ok(options)
}

pub fn usage() -> &'static str {
    "wsbench storm [--clients N] [--topics T] [--missed M] [--live K] [--concurrency C]
               [--rounds R] [--wson BIN] [--gen-core C] [--server-core C] [--json FILE]"
}

/// `wsbench storm`: prints a table and one JSON line.
pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    crate::prepare_process(options.gen_core)?;
    let mut rounds = Vec::new();
    for number in 0..options.rounds {
        eprintln!(
            "wsbench storm: round {} of {}: {} clients, {} topics, {} missed",
            number + 1,
            options.rounds,
            options.clients,
            options.topics,
            options.missed
        );
        rounds.push(round(&options, number)?);
    }
    let n = options.clients as f64;
    let pick = |f: &dyn Fn(&Round) -> f64| {
        crate::report::median(&mut rounds.iter().map(f).collect::<Vec<_>>())
    };
    let live_w1 = pick(&|r| r.live_w1_us);
    let live_burst = pick(&|r| r.live_burst_us);
    let missed_pub = pick(&|r| r.missed_pub_us);
    let resume_reconn = pick(&|r| r.resume_us / n);
    let plain_reconn = pick(&|r| r.plain_us / n);
    let per_replayed = pick(&|r| r.resume_us / r.replayed.max(1) as f64);
    let replay_only = pick(&|r| (r.resume_us - r.plain_us) / r.replayed.max(1) as f64);
    let replayed = pick(&|r| r.replayed as f64);
    let resume_s = pick(&|r| r.resume_connect_s);
    let plain_s = pick(&|r| r.plain_connect_s);
    let mut anomalies = Anomalies::default();
    for r in &rounds {
        anomalies.add(&r.anomalies);
    }
    let expected = (options.missed / options.topics * options.clients) as f64;
    println!(
        "wson reconnect storm, medians of {} round(s): {} clients (one user each, J to one of {} topics), {} publications of {MESSAGE_LEN} B missed; {} upgrades in flight",
        options.rounds, options.clients, options.topics, options.missed, options.concurrency
    );
    println!("| workload | server cpu | per | over live w=1 | over live burst |");
    println!("|---|---:|---|---:|---:|");
    let row = |name: &str, us: f64, per: &str| {
        println!(
            "| {name} | {us:.3} us | {per} | {:.2} | {:.2} |",
            us / live_w1,
            us / live_burst
        );
    };
    row("live, one publication at a time (w=1)", live_w1, "delivery");
    row(
        &format!("live, {} publications at once", options.missed),
        live_burst,
        "delivery",
    );
    row(
        "resume storm / replayed messages",
        per_replayed,
        "replayed message",
    );
    row(
        "(resume storm - plain storm) / replayed",
        replay_only,
        "replayed message",
    );
    println!(
        "| resume storm / reconnections | {resume_reconn:.1} us | reconnection ({replayed:.0} replayed, {:.1} each; upgrades done in {resume_s:.2} s) | | |",
        replayed / n
    );
    println!(
        "| plain storm / reconnections | {plain_reconn:.1} us | reconnection (upgrades done in {plain_s:.2} s) | | |"
    );
    println!(
        "| publishing while nobody listens (`Y`, kept) | {missed_pub:.2} us | publication | | |"
    );
    println!(
        "replayed {replayed:.0} of {expected:.0} expected (median); lost {} duplicated {} stray {} reloads {} notice errors {} disconnected {} (summed over rounds)",
        anomalies.lost,
        anomalies.duplicated,
        anomalies.stray,
        anomalies.reloads,
        anomalies.notice_errors,
        anomalies.disconnected
    );
    let json = serde_json::json!({
            "bench": "storm",
            "date": crate::report::utc_now(),
            "rounds": options.rounds,
            "clients": options.clients,
            "topics": options.topics,
            "missed": options.missed,
            "live_w1": options.live_w1,
            "concurrency": options.concurrency,
            "message_bytes": MESSAGE_LEN,
            "cpu_us_per_delivery": {"live_w1": live_w1, "live_burst": live_burst},
            "cpu_us_per_replayed": {"resume_storm": per_replayed, "replay_only": replay_only},
            "ratio_replay_only_over_live": {"w1": replay_only / live_w1, "burst": replay_only / live_burst},
            "cpu_us_per_reconnect": {"resume": resume_reconn, "plain": plain_reconn},
            "cpu_us_per_missed_publication": missed_pub,
            "replayed": replayed,
            "replayed_expected": expected,
            "upgrade_seconds": {"resume": resume_s, "plain": plain_s},
            "anomalies": anomalies.json(),
            "per_round": rounds.iter().map(|r| serde_json::json!({
                "live_w1": r.live_w1_us, "live_burst": r.live_burst_us,
                "resume_storm_us": r.resume_us, "plain_storm_us": r.plain_us,
                "replayed": r.replayed,
            })).collect::<Vec<_>>(),
    });
    println!("{json}");
    if let Some(path) = &options.json {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(file, "{json}").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
