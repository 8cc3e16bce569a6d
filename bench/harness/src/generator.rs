//! The load generator: one thread, one mio poll, up to ~19,900 client sockets and one
//! control connection to the server under test.
//!
//! Every message it triggers carries its phase id and sequence number (and, for direct
//! messages and echoes, the client it is meant for), so each client checks what it gets:
//! a message seen twice is a duplicate, one older than the newest already seen is
//! reordered, one that never came is lost. Nothing else is trusted: rates and latencies are
//! counted on the receiving side, and the phase ends when every message has arrived (or
//! nothing has moved for `stall` and the rest is declared lost).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Socket, Type};
use wson::auth::{self, Digest};
use wson::decoded::Decoded;
use wson::token::Token as WsonToken;
use wson::ws::frame::{self, OpCode};

/// The secret every server under test verifies cookies with.
pub const SECRET: &str = "bench-secret-0123456789abcdef";
const CONTROL: Token = Token(usize::MAX - 1);
/// The token of `Generator::waker`: wakes the poll, which then runs a turn (a workload
/// that hears from outside the poll, e.g. from other processes, reads them in `trigger`).
const WAKE: Token = Token(usize::MAX - 2);
/// The RFC 6455 §1.3 sample key and its accept value.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const RAW_REPLY: &[u8] = b"RAW 101\r\n\r\n";
const MAX_FRAME: u64 = 16 << 20;
/// Clients per source address (127.0.0.1, .2, ...): well under the ~28k ephemeral ports.
pub const CLIENTS_PER_SOURCE: usize = 8192;
/// Bytes of a message payload that identify it: tag, phase, sequence, client (hex).
const ID_LEN: usize = 25;
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// How the server under test is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// RFC 6455 with wson cookies.
    Ws,
    /// The raw baseline: a 36-byte hello, then pre-encoded frames; echoes are unmasked.
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Handshake,
    Open,
    /// Our Close is queued (`Outbox::close`); the server's Close is expected, then its EOF.
    Closing,
    Closed,
}

struct Client {
    stream: TcpStream,
    state: State,
    /// Bytes of an incomplete frame (or response head) carried to the next read.
    inbuf: Vec<u8>,
    /// Bytes the socket did not take yet (request, pongs, echoes).
    outbuf: Vec<u8>,
    /// Fan-out: which sequence numbers arrived, one bit each.
    seen: Vec<u64>,
    /// Highest sequence number seen plus one (0: none) in this phase.
    high: u32,
}

/// Counts of messages that broke the rules: all must be zero.
#[derive(Debug, Default, Clone, Copy)]
pub struct Anomalies {
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Messages from another phase, for another client, or unreadable.
    pub stray: u64,
    /// Clients the server closed (or whose socket failed) during the phase.
    pub disconnected: u64,
}

impl Anomalies {
    pub fn total(&self) -> u64 {
        self.lost + self.duplicated + self.reordered + self.stray + self.disconnected
    }
}

/// What a measured phase produced.
#[derive(Debug, Default, Clone)]
pub struct PhaseResult {
    /// Messages delivered (fan-out: per client), or round trips.
    pub delivered: u64,
    /// Broadcasts, direct messages or echoes triggered.
    pub triggered: u64,
    pub elapsed: Duration,
    /// Per trigger: fan-out to the last client, direct send to receipt, echo round trip.
    pub latencies: Vec<Duration>,
    pub anomalies: Anomalies,
    /// Bytes the clients read from their sockets during the phase (frames, handshakes).
    pub bytes: u64,
}

/// The connect storm's outcome.
#[derive(Debug, Default, Clone)]
pub struct ConnectResult {
    pub opened: usize,
    pub failed: usize,
    pub elapsed: Duration,
    pub first_error: Option<String>,
    /// Per opened client: from creating its socket (just before the TCP connect) to the
    /// complete 101 response. A SYN dropped by a full accept queue shows here as the
    /// kernel's retransmit delay (1 s, then 3 s).
    pub latencies: Vec<Duration>,
}

impl ConnectResult {
    /// An error naming how many of `n` `what` connected, unless all did.
    pub fn require_all(&self, n: usize, what: &str) -> Result<(), String> {
        if self.opened < n {
            return Err(format!(
                "only {} of {n} {what} connected: {}",
                self.opened,
                self.first_error.as_deref().unwrap_or_default()
            ));
        }
        Ok(())
    }
}

struct Fanout {
    id: u32,
    size: usize,
    window: u32,
    max: u32,
    sent: u32,
    completed: u32,
    sent_at: Vec<Instant>,
    remaining: Vec<u32>,
    clients: u32,
}

struct Direct {
    id: u32,
    /// Targets are picked among clients `first .. first + count`.
    first: u32,
    count: u32,
    size: usize,
    window: u32,
    max: u32,
    sent: u32,
    completed: u32,
    sent_at: Vec<Instant>,
    target: Vec<u32>,
    done: Vec<u64>,
    /// Per client: the last sequence number it got, plus one (0: none).
    last: Vec<u32>,
    rng: u64,
}

struct Echo {
    id: u32,
    size: usize,
    clients: usize,
    /// Per client: the outstanding sequence number and when it was sent.
    outstanding: Vec<Option<(u32, Instant)>>,
    next_seq: Vec<u32>,
    stop_sending: bool,
}

enum Phase {
    Idle,
    Fanout(Fanout),
    Direct(Direct),
    Echo(Echo),
    /// A workload defined in another module (`groups`, `forward`).
    Custom(Box<dyn Workload>),
}

/// Results collected while a phase runs.
#[derive(Default)]
pub struct Tally {
    pub delivered: u64,
    /// Bytes read by the clients.
    pub bytes: u64,
    pub latencies: Vec<Duration>,
    pub anomalies: Anomalies,
    pub last_progress: Option<Instant>,
}

/// What a custom workload sends in one turn: control frames, frames for clients (by index,
/// already masked), clients to close after those frames, and client slots to connect anew.
#[derive(Default)]
pub struct Outbox {
    pub control: Vec<u8>,
    pub clients: Vec<(usize, Vec<u8>)>,
    /// Each gets a Close frame (1000) and is closed when the server's EOF follows.
    pub close: Vec<usize>,
    /// Each index (an existing client, or the next new one) gets a fresh socket and
    /// handshake; an old socket there is dropped. Answered by `Workload::on_client_change`.
    pub connect: Vec<usize>,
}

/// What became of a client a workload connected or closed (or the server closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The handshake completed.
    Opened,
    /// The connection ended: after our Close (`Outbox::close`), or the server's doing (an
    /// open client the server closes also counts as `disconnected`).
    Closed,
    /// The connect or the handshake failed, for this reason.
    Failed(String),
}

/// A measured phase defined outside this module: what it sends, and what it makes of each
/// message a client gets and each frame the control connection gets (but `0p`, which the
/// generator answers). The generator runs it like its own phases: `trigger` each turn,
/// done when `done` says so, and what is `outstanding` after a stall is lost.
pub trait Workload: std::any::Any {
    /// Queues what the window allows into `out`; returns the triggers sent so far.
    fn trigger(&mut self, sending: bool, now: Instant, out: &mut Outbox) -> u64;
    /// Nothing outstanding and nothing more to send.
    fn done(&self, sending: bool) -> bool;
    /// Deliveries still expected (lost when the phase stalls).
    fn outstanding(&self) -> u64;
    /// A complete data message received by client `index`.
    fn on_client_message(&mut self, body: &[u8], index: usize, tally: &mut Tally, now: Instant);
    /// A frame from the control connection other than `0p`.
    fn on_control_frame(&mut self, command: u8, payload: &[u8], tally: &mut Tally, now: Instant);
    /// Called each turn before `trigger`: what the workload hears from outside the poll
    /// (other processes, whose lines wake it through `Generator::waker`) counts here.
    fn on_turn(&mut self, tally: &mut Tally, now: Instant) {
        let _ = (tally, now);
    }
    /// Client `index` opened, closed or failed during the phase (see `Outbox::connect`).
    fn on_client_change(&mut self, index: usize, change: Change, tally: &mut Tally, now: Instant) {
        let _ = (index, change, tally, now);
    }
}

pub struct Generator {
    poll: Poll,
    events: Events,
    proto: Proto,
    ws_addr: SocketAddr,
    /// None for a server without a control port (Crossbar).
    control: Option<TcpStream>,
    control_in: Vec<u8>,
    control_out: Vec<u8>,
    clients: Vec<Client>,
    tokens: Vec<[u8; 32]>,
    scratch: Vec<u8>,
    phase: Phase,
    tally: Tally,
    next_phase_id: u32,
    /// Clients per `user` cookie from the next connect on; 0: every client is `bench`.
    clients_per_user: usize,
    /// Control frames (but `0p`) received outside a custom phase, for `control_request`.
    replies: Vec<(u8, Vec<u8>)>,
    /// The WebSocket subprotocol clients offer (`wamp.2.json`), and that the server must
    /// choose, from the next connect on.
    subprotocol: Option<&'static str>,
    /// Whether upgrade requests carry wson cookies (a WAMP login needs none).
    cookies: bool,
    /// The custom workload of the last phase, for `run_owned`.
    finished: Option<Box<dyn Workload>>,
    /// The first source address's last byte (127.0.0.B); each `CLIENTS_PER_SOURCE` clients
    /// take the next one.
    source_base: u8,
    /// Clients offer permessage-deflate (and the server must accept it), from the next
    /// connect on; compressed messages are inflated before they are checked.
    deflate: bool,
    /// One inflater for every client (messages are handled one at a time, and wson answers
    /// `server_no_context_takeover`, so each inflates on its own) and its output buffer.
    inflate: Option<(wson::ws::deflate::Inflater, Vec<u8>)>,
    /// Fan-out payloads are JSON after their id (deflate compresses them as it would real
    /// messages) rather than dots.
    json_payloads: bool,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn write_hex(out: &mut [u8], value: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().take(8).enumerate() {
        *byte = HEX[((value >> (28 - 4 * i)) & 0xf) as usize];
    }
}

pub fn read_hex(bytes: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(bytes.get(..8)?).ok()?;
    u32::from_str_radix(text, 16).ok()
}

/// A text payload of `size` bytes (at least `ID_LEN`) naming phase, sequence and client.
pub fn payload(tag: u8, size: usize, phase: u32, seq: u32, client: u32) -> Vec<u8> {
    let mut bytes = vec![b'.'; size.max(ID_LEN)];
    bytes[0] = tag;
    write_hex(&mut bytes[1..9], phase);
    write_hex(&mut bytes[9..17], seq);
    write_hex(&mut bytes[17..25], client);
    bytes
}

/// A payload of exactly `size` bytes (at least the id) whose id is followed by realistic
/// JSON (quotes of a market feed, values varying with `seq`), for what deflate makes of it.
pub fn json_payload(tag: u8, size: usize, phase: u32, seq: u32) -> Vec<u8> {
    let mut bytes = payload(tag, ID_LEN, phase, seq, 0);
    let mut text = format!(",{{\"seq\":{seq},\"feed\":\"quotes\",\"items\":[");
    let mut i = seq as usize;
    while text.len() + bytes.len() < size {
        text.push_str(&format!(
            "{{\"symbol\":\"SYM{}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"volume\":{},\"venue\":\"{}\"}},",
            i % 97,
            90 + i % 23,
            (i * 37) % 100,
            91 + i % 23,
            (i * 53) % 100,
            1000 + (i * 7919) % 100_000,
            ["XNAS", "XNYS", "BATS", "ARCX"][i % 4]
        ));
        i += 13;
    }
    bytes.extend_from_slice(text.as_bytes());
    bytes.truncate(size.max(ID_LEN));
    bytes
}

/// (tag, phase, seq, client) of a payload made by `payload`.
pub fn parse_payload(bytes: &[u8]) -> Option<(u8, u32, u32, u32)> {
    let tag = *bytes.first()?;
    Some((
        tag,
        read_hex(bytes.get(1..)?)?,
        read_hex(bytes.get(9..)?)?,
        read_hex(bytes.get(17..)?)?,
    ))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Generator {
    /// Connects the control socket. `session` makes the tokens of this session unique.
    pub fn new(
        proto: Proto,
        ws_addr: SocketAddr,
        control_addr: SocketAddr,
        session: u32,
    ) -> io::Result<Generator> {
        Generator::with_control(proto, ws_addr, Some(control_addr), session)
    }

    /// As `new`, with the control connection optional (a server that has none).
    pub fn with_control(
        proto: Proto,
        ws_addr: SocketAddr,
        control_addr: Option<SocketAddr>,
        session: u32,
    ) -> io::Result<Generator> {
        let poll = Poll::new()?;
        let control = match control_addr {
            Some(addr) => {
                let std_control = std::net::TcpStream::connect(addr)?;
                std_control.set_nodelay(true)?;
                std_control.set_nonblocking(true)?;
                let mut control = TcpStream::from_std(std_control);
                poll.registry().register(
                    &mut control,
                    CONTROL,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Some(control)
            }
            None => None,
        };
        Ok(Generator {
            poll,
            events: Events::with_capacity(4096),
            proto,
            ws_addr,
            control,
            control_in: Vec::new(),
            control_out: Vec::new(),
            clients: Vec::new(),
            tokens: Vec::new(),
            scratch: vec![0; 256 * 1024],
            phase: Phase::Idle,
            tally: Tally::default(),
            next_phase_id: session.wrapping_mul(1000),
            clients_per_user: 0,
            replies: Vec::new(),
            subprotocol: None,
            cookies: true,
            finished: None,
            source_base: 1,
            deflate: false,
            inflate: None,
            json_payloads: false,
        })
    }

    /// Clients connect from 127.0.0.`base` on (then `base + 1`, ... each
    /// `CLIENTS_PER_SOURCE` clients): generators in several processes keep apart the
    /// ephemeral ports of each source address.
    pub fn set_source_base(&mut self, base: u8) {
        self.source_base = base.max(1);
    }

    /// Clients connected from now on go to `addr` (another node of a cluster).
    pub fn set_ws_addr(&mut self, addr: SocketAddr) {
        self.ws_addr = addr;
    }

    /// A waker of this generator's poll: a wake runs one more turn of the phase loop.
    pub fn waker(&self) -> io::Result<mio::Waker> {
        mio::Waker::new(self.poll.registry(), WAKE)
    }

    /// Clients connected from now on get the user `u{index / per_user}` (0: all `bench`).
    pub fn set_clients_per_user(&mut self, per_user: usize) {
        self.clients_per_user = per_user;
    }

    /// Clients connected from now on offer `protocol` (`Sec-WebSocket-Protocol`), and a
    /// response that does not choose it refuses the client.
    pub fn set_deflate(&mut self, on: bool) {
        self.deflate = on;
        if on && self.inflate.is_none() {
            self.inflate = Some((wson::ws::deflate::Inflater::new(15), Vec::new()));
        }
    }

    pub fn set_json_payloads(&mut self, on: bool) {
        self.json_payloads = on;
    }

    pub fn set_subprotocol(&mut self, protocol: &'static str) {
        self.subprotocol = Some(protocol);
    }

    /// Upgrade requests from now on carry no wson cookies (`Proto::Ws`): a WAMP client that
    /// logs in with WAMP-CRA has none.
    pub fn without_cookies(&mut self) {
        self.cookies = false;
    }

    /// The `user` cookie of client `index`.
    pub fn user_name(&self, index: usize) -> String {
        match self.clients_per_user {
            0 => "bench".into(),
            per_user => format!("u{}", index / per_user),
        }
    }

    /// The token of every client, by index.
    pub fn tokens(&self) -> &[[u8; 32]] {
        &self.tokens
    }

    /// Client `index` completed its handshake and was not closed since.
    pub fn is_open(&self, index: usize) -> bool {
        self.clients
            .get(index)
            .is_some_and(|c| c.state == State::Open)
    }

    pub fn open_clients(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| c.state == State::Open)
            .count()
    }

    fn token_for(session_clients: usize, salt: u32) -> [u8; 32] {
        let text = format!("{salt:08x}{session_clients:024x}");
        let mut token = [0u8; 32];
        token.copy_from_slice(text.as_bytes());
        token
    }

    fn request(&self, token: &[u8; 32], user: &str) -> Vec<u8> {
        match self.proto {
            Proto::Raw => {
                let mut hello = token.to_vec();
                hello.extend_from_slice(b"\r\n\r\n");
                hello
            }
            Proto::Ws => {
                let cookie = if self.cookies {
                    let token = WsonToken::from_array(*token);
                    let value = auth::cookie_header(
                        SECRET.as_bytes(),
                        Digest::Md5,
                        user,
                        &token,
                        unix_now(),
                    );
                    format!("Cookie: {value}\r\n")
                } else {
                    String::new()
                };
                let mut protocol = self
                    .subprotocol
                    .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
                    .unwrap_or_default();
                if self.deflate {
                    protocol.push_str("Sec-WebSocket-Extensions: permessage-deflate\r\n");
                }
                format!(
                    "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\
                     {protocol}Origin: http://localhost\r\n{cookie}\r\n",
                    self.ws_addr
                )
                .into_bytes()
            }
        }
    }

    fn start_connect(&mut self, index: usize, request: Vec<u8>) -> io::Result<()> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::IpBindAddressNoPort,
            &true,
        )
        .map_err(io::Error::from)?;
        let source =
            u8::try_from(usize::from(self.source_base) + index / CLIENTS_PER_SOURCE).unwrap_or(250);
        let local = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, source), 0));
        socket.bind(&local.into())?;
        match socket.connect(&self.ws_addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) || would_block(&e) => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(socket.into());
        self.poll.registry().register(
            &mut stream,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.place(
            index,
            Client {
                stream,
                state: State::Connecting,
                inbuf: Vec::new(),
                outbuf: request,
                seen: Vec::new(),
                high: 0,
            },
        );
        Ok(())
    }

    /// Puts `client` at `index`: a new one at the end, or in place of an old one, whose
    /// socket is dropped (closing it takes it out of the poll). The token is the index, so
    /// an event of the old socket may still come in this turn's batch: it is spurious to the
    /// new one, which its handlers take (a read says WouldBlock, a connect NotConnected).
    fn place(&mut self, index: usize, client: Client) {
        match self.clients.get_mut(index) {
            Some(slot) => *slot = client,
            None => self.clients.push(client),
        }
    }

    /// Connects client `index` (an existing one anew, or the next new one) without waiting:
    /// the handshake goes on in the phase's loop, which reports it with `Change`.
    fn reconnect(&mut self, index: usize) -> io::Result<()> {
        if index > self.clients.len() {
            return Err(io::Error::other(format!(
                "client {index} is past the next new one"
            )));
        }
        let token = match self.tokens.get(index) {
            Some(token) => *token,
            None => {
                let token = Self::token_for(index, self.next_phase_id);
                self.tokens.push(token);
                token
            }
        };
        let request = self.request(&token, &self.user_name(index));
        self.start_connect(index, request)
    }

    /// Opens `count` more clients, at most `concurrency` handshakes at a time, and returns
    /// when all are open or have failed (or `limit` has passed).
    pub fn connect(&mut self, count: usize, concurrency: usize, limit: Duration) -> ConnectResult {
        let salt = self.next_phase_id;
        let first = self.clients.len();
        let tokens: Vec<[u8; 32]> = (first..first + count)
            .map(|i| Self::token_for(i, salt))
            .collect();
        let requests: Vec<Vec<u8>> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| self.request(t, &self.user_name(first + i)))
            .collect();
        self.tokens.extend_from_slice(&tokens);
        let mut requests = requests.into_iter();
        let mut result = ConnectResult::default();
        let started = Instant::now();
        // When each client's connect started, by index from `first`.
        let mut connect_started: Vec<Instant> = Vec::with_capacity(count);
        let mut in_progress = 0usize;
        let mut next = first;
        let end = first + count;
        while result.opened + result.failed < count {
            while in_progress < concurrency && next < end {
                let request = requests.next().unwrap_or_default();
                connect_started.push(Instant::now());
                match self.start_connect(next, request) {
                    Ok(()) => in_progress += 1,
                    Err(e) => {
                        result.failed += 1;
                        result.first_error.get_or_insert(format!("connect: {e}"));
                        // Keep indexes aligned with tokens: a closed placeholder.
                        self.push_dead(next);
                    }
                }
                next += 1;
            }
            if started.elapsed() > limit {
                result
                    .first_error
                    .get_or_insert(format!("connect storm not done after {limit:?}"));
                break;
            }
            if self
                .poll
                .poll(&mut self.events, Some(Duration::from_millis(100)))
                .is_err()
            {
                continue;
            }
            let tokens: Vec<(Token, bool, bool)> = self
                .events
                .iter()
                .map(|e| {
                    (
                        e.token(),
                        e.is_readable() || e.is_read_closed() || e.is_error(),
                        e.is_writable(),
                    )
                })
                .collect();
            for (token, readable, writable) in tokens {
                if token == CONTROL {
                    self.control_ready();
                    continue;
                }
                let index = token.0;
                let Some(before) = self.clients.get(index).map(|c| c.state) else {
                    continue;
                };
                self.advance_handshake(index, readable, writable, &mut result.first_error);
                let Some(client) = self.clients.get(index) else {
                    continue;
                };
                match (before, client.state) {
                    (State::Connecting | State::Handshake, State::Open) => {
                        in_progress -= 1;
                        result.opened += 1;
                        let at = index
                            .checked_sub(first)
                            .and_then(|i| connect_started.get(i));
                        if let Some(at) = at {
                            result.latencies.push(at.elapsed());
                        }
                    }
                    (State::Connecting | State::Handshake, State::Closed) => {
                        in_progress -= 1;
                        result.failed += 1;
                    }
                    _ => {}
                }
            }
        }
        result.elapsed = started.elapsed();
        result
    }

    fn push_dead(&mut self, index: usize) {
        // A socket that never connects, so every client index has an entry.
        if let Ok(socket) = Socket::new(Domain::IPV4, Type::STREAM, None) {
            self.place(
                index,
                Client {
                    stream: TcpStream::from_std(socket.into()),
                    state: State::Closed,
                    inbuf: Vec::new(),
                    outbuf: Vec::new(),
                    seen: Vec::new(),
                    high: 0,
                },
            );
        }
    }

    /// Moves client `index` on through its TCP connect and upgrade after a readiness event;
    /// a failure closes it and leaves its reason in `error` (unless one is there already).
    fn advance_handshake(
        &mut self,
        index: usize,
        readable: bool,
        writable: bool,
        error: &mut Option<String>,
    ) {
        let Some(client) = self.clients.get_mut(index) else {
            return;
        };
        if client.state == State::Connecting && writable {
            match client.stream.take_error() {
                Ok(None) => match client.stream.peer_addr() {
                    Ok(_) => client.state = State::Handshake,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                    Err(e) => {
                        error.get_or_insert(format!("connect: {e}"));
                        client.state = State::Closed;
                    }
                },
                Ok(Some(e)) | Err(e) => {
                    error.get_or_insert(format!("connect: {e}"));
                    client.state = State::Closed;
                }
            }
        }
        if client.state == State::Handshake {
            if let Err(e) = flush_client(client) {
                error.get_or_insert(format!("send request: {e}"));
                client.state = State::Closed;
            } else if readable || writable {
                self.read_handshake(index, error);
            }
        }
    }

    fn read_handshake(&mut self, index: usize, error: &mut Option<String>) {
        let proto = self.proto;
        let subprotocol = self.subprotocol;
        let Some(client) = self.clients.get_mut(index) else {
            return;
        };
        loop {
            match client.stream.read(&mut self.scratch) {
                Ok(0) => {
                    error.get_or_insert("server closed during the handshake".into());
                    client.state = State::Closed;
                    return;
                }
                Ok(n) => client.inbuf.extend_from_slice(&self.scratch[..n]),
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error.get_or_insert(format!("read response: {e}"));
                    client.state = State::Closed;
                    return;
                }
            }
        }
        let Some(end) = find(&client.inbuf, b"\r\n\r\n") else {
            return;
        };
        let head = &client.inbuf[..end + 4];
        let accepted = match proto {
            Proto::Raw => head == RAW_REPLY,
            Proto::Ws => head.starts_with(b"HTTP/1.1 101") && find(head, WS_ACCEPT).is_some(),
        };
        let chosen = subprotocol.is_none_or(|p| {
            let wanted = format!("sec-websocket-protocol: {p}\r\n");
            find(&head.to_ascii_lowercase(), wanted.as_bytes()).is_some()
        });
        let deflate_agreed = !self.deflate
            || find(
                &head.to_ascii_lowercase(),
                b"sec-websocket-extensions: permessage-deflate",
            )
            .is_some();
        if accepted && !deflate_agreed {
            error.get_or_insert("the server did not accept permessage-deflate".into());
            client.state = State::Closed;
            return;
        }
        if accepted && !chosen {
            error.get_or_insert(format!(
                "the server did not choose the subprotocol {}",
                subprotocol.unwrap_or_default()
            ));
            client.state = State::Closed;
            return;
        }
        if !accepted {
            error.get_or_insert(format!(
                "handshake refused: {}",
                String::from_utf8_lossy(head).lines().next().unwrap_or("")
            ));
            client.state = State::Closed;
            return;
        }
        client.inbuf.drain(..end + 4);
        client.state = State::Open;
        // Frames that came with the response head are read with the next data.
    }

    fn control_ready(&mut self) {
        let Some(control) = self.control.as_mut() else {
            return;
        };
        loop {
            match control.read(&mut self.scratch) {
                Ok(0) => break,
                Ok(n) => self.control_in.extend_from_slice(&self.scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // Replies are ignored, but a ping must be answered or wson drops us.
        let mut used = 0;
        loop {
            let rest = &self.control_in[used..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let (Some(&command), Some(len)) = (
                rest.get(digits),
                std::str::from_utf8(&rest[..digits])
                    .ok()
                    .and_then(|d| d.parse::<usize>().ok()),
            ) else {
                break;
            };
            if rest.len() < digits + 1 + len {
                break;
            }
            let payload = &rest[digits + 1..digits + 1 + len];
            match &mut self.phase {
                _ if command == b'p' => self.control_out.extend_from_slice(b"0P"),
                Phase::Custom(workload) => {
                    workload.on_control_frame(command, payload, &mut self.tally, Instant::now());
                }
                Phase::Idle => self.replies.push((command, payload.to_vec())),
                Phase::Fanout(_) | Phase::Direct(_) | Phase::Echo(_) => {}
            }
            used += digits + 1 + len;
        }
        self.control_in.drain(..used);
        self.flush_control();
    }

    fn flush_control(&mut self) {
        let Some(control) = self.control.as_mut() else {
            self.control_out.clear();
            return;
        };
        while !self.control_out.is_empty() {
            match control.write(&self.control_out) {
                Ok(n) => {
                    self.control_out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    fn send_control(&mut self, command: u8, prefix: &[u8], body: &[u8]) {
        let len = prefix.len() + body.len();
        self.control_out
            .extend_from_slice(format!("{len}").as_bytes());
        self.control_out.push(command);
        self.control_out.extend_from_slice(prefix);
        self.control_out.extend_from_slice(body);
    }

    pub fn new_phase_id(&mut self) -> u32 {
        self.next_phase_id = self.next_phase_id.wrapping_add(1);
        self.next_phase_id
    }

    /// Broadcasts up to `max` messages of `size` bytes, at most `window` not yet received
    /// by every client, and sends no new one after `duration`.
    pub fn fanout(
        &mut self,
        size: usize,
        window: u32,
        max: u32,
        duration: Duration,
        stall: Duration,
    ) -> PhaseResult {
        let clients = u32::try_from(self.open_clients()).unwrap_or(u32::MAX);
        let words = (max as usize).div_ceil(64);
        for client in &mut self.clients {
            client.seen.clear();
            client.seen.resize(words, 0);
            client.high = 0;
        }
        let id = self.new_phase_id();
        self.phase = Phase::Fanout(Fanout {
            id,
            size,
            window,
            max,
            sent: 0,
            completed: 0,
            sent_at: Vec::with_capacity(max as usize),
            remaining: Vec::with_capacity(max as usize),
            clients,
        });
        let result = self.run_phase(duration, stall);
        for client in &mut self.clients {
            client.seen = Vec::new();
        }
        result
    }

    /// Sends up to `max` direct messages of `size` bytes to clients picked at random, at
    /// most `window` not yet received.
    pub fn direct(
        &mut self,
        size: usize,
        window: u32,
        max: u32,
        duration: Duration,
        stall: Duration,
    ) -> PhaseResult {
        let all = 0..self.tokens.len();
        self.direct_among(all, size, (window, max), duration, stall)
    }

    /// As `direct`, to clients picked at random among `targets` (client indexes).
    pub fn direct_among(
        &mut self,
        targets: std::ops::Range<usize>,
        size: usize,
        (window, max): (u32, u32),
        duration: Duration,
        stall: Duration,
    ) -> PhaseResult {
        let id = self.new_phase_id();
        let first = u32::try_from(targets.start).unwrap_or(u32::MAX);
        let count = u32::try_from(targets.len()).unwrap_or(0);
        self.phase = Phase::Direct(Direct {
            id,
            first,
            count,
            size,
            window,
            max,
            sent: 0,
            completed: 0,
            sent_at: Vec::with_capacity(max as usize),
            target: Vec::with_capacity(max as usize),
            done: vec![0; (max as usize).div_ceil(64)],
            last: vec![0; self.clients.len()],
            rng: 0x9E37_79B9_7F4A_7C15 ^ u64::from(id),
        });
        self.run_phase(duration, stall)
    }

    /// The first `clients` clients each keep one message of `size` bytes in flight to the
    /// server and back.
    pub fn echo(
        &mut self,
        clients: usize,
        size: usize,
        duration: Duration,
        stall: Duration,
    ) -> PhaseResult {
        let clients = clients.min(self.clients.len());
        let id = self.new_phase_id();
        self.phase = Phase::Echo(Echo {
            id,
            size,
            clients,
            outstanding: vec![None; clients],
            next_seq: vec![0; clients],
            stop_sending: false,
        });
        self.run_phase(duration, stall)
    }

    /// Runs a workload defined elsewhere, as the phases above run.
    pub fn run_custom(
        &mut self,
        workload: Box<dyn Workload>,
        duration: Duration,
        stall: Duration,
    ) -> PhaseResult {
        self.phase = Phase::Custom(workload);
        self.run_phase(duration, stall)
    }

    /// Runs `workload` as `run_custom` does and hands it back, with what it learned.
    pub fn run_owned<W: Workload + 'static>(
        &mut self,
        workload: W,
        duration: Duration,
        stall: Duration,
    ) -> (PhaseResult, Option<W>) {
        let result = self.run_custom(Box::new(workload), duration, stall);
        let any: Option<Box<dyn std::any::Any>> = self.finished.take().map(|w| w as _);
        let workload = any.and_then(|w| w.downcast::<W>().ok()).map(|w| *w);
        (result, workload)
    }

    /// Sends `frames` on the control connection and waits for `count` frames back (replies
    /// and anything else but `0p`), at most `limit`. Clients stay unread meanwhile.
    pub fn control_request(
        &mut self,
        frames: &[u8],
        count: usize,
        limit: Duration,
    ) -> Result<Vec<(u8, Vec<u8>)>, String> {
        self.phase = Phase::Idle;
        self.replies.clear();
        self.control_out.extend_from_slice(frames);
        let started = Instant::now();
        loop {
            self.flush_control();
            if self.replies.len() >= count {
                return Ok(std::mem::take(&mut self.replies));
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "{} of {count} control replies after {limit:?}",
                    self.replies.len()
                ));
            }
            if let Err(e) = self
                .poll
                .poll(&mut self.events, Some(Duration::from_millis(50)))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(format!("poll: {e}"));
            }
            let control = self.events.iter().any(|e| e.token() == CONTROL);
            if control {
                self.control_ready();
            }
        }
    }

    fn run_phase(&mut self, duration: Duration, stall: Duration) -> PhaseResult {
        self.tally = Tally::default();
        let started = Instant::now();
        self.tally.last_progress = Some(started);
        let stop_sending_at = started + duration;
        let mut triggered;
        loop {
            let now = Instant::now();
            let sending = now < stop_sending_at;
            triggered = self.trigger(sending, now);
            self.flush_control();
            if self.phase_done(sending) {
                break;
            }
            let idle_for = self.tally.last_progress.map_or(Duration::ZERO, |t| now - t);
            if idle_for > stall {
                self.declare_lost();
                break;
            }
            let timeout = if sending {
                (stop_sending_at - now).min(Duration::from_millis(50))
            } else {
                Duration::from_millis(50)
            };
            if let Err(e) = self.poll.poll(&mut self.events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                break;
            }
            let ready: Vec<(Token, bool, bool)> = self
                .events
                .iter()
                .map(|e| {
                    (
                        e.token(),
                        e.is_readable() || e.is_read_closed() || e.is_error(),
                        e.is_writable(),
                    )
                })
                .collect();
            for (token, readable, writable) in ready {
                if token == CONTROL {
                    self.control_ready();
                } else if token == WAKE {
                    // Only to run the next turn's `trigger`.
                } else {
                    self.client_ready(token.0, readable, writable);
                }
            }
        }
        let elapsed = started.elapsed();
        let tally = std::mem::take(&mut self.tally);
        if let Phase::Custom(workload) = std::mem::replace(&mut self.phase, Phase::Idle) {
            self.finished = Some(workload);
        }
        PhaseResult {
            delivered: tally.delivered,
            triggered,
            elapsed,
            latencies: tally.latencies,
            bytes: tally.bytes,
            anomalies: tally.anomalies,
        }
    }

    /// A readiness event of client `index` in a phase: its handshake, if it is connecting
    /// (see `Outbox::connect`), else reading or writing; the workload hears what changed.
    fn client_ready(&mut self, index: usize, readable: bool, writable: bool) {
        let Some(before) = self.clients.get(index).map(|c| c.state) else {
            return;
        };
        let mut error = None;
        match before {
            State::Connecting | State::Handshake => {
                self.advance_handshake(index, readable, writable, &mut error);
            }
            State::Open | State::Closing if readable => self.read_client(index),
            State::Open | State::Closing | State::Closed => {
                if let Some(client) = self.clients.get_mut(index)
                    && writable
                {
                    let _ = flush_client(client);
                }
            }
        }
        let Some(after) = self.clients.get(index).map(|c| c.state) else {
            return;
        };
        let change = match (before, after) {
            (State::Connecting | State::Handshake, State::Open) => Change::Opened,
            (State::Connecting | State::Handshake, State::Closed) => {
                Change::Failed(error.unwrap_or_else(|| "closed".into()))
            }
            (State::Open | State::Closing, State::Closed) => Change::Closed,
            _ => return,
        };
        self.notify(index, change);
    }

    fn notify(&mut self, index: usize, change: Change) {
        if let Phase::Custom(workload) = &mut self.phase {
            workload.on_client_change(index, change, &mut self.tally, Instant::now());
        }
    }

    /// Carries out a custom workload's `Outbox`: control frames, client frames, then closes
    /// and connects.
    fn send_outbox(&mut self, out: Outbox) {
        self.control_out.extend_from_slice(&out.control);
        for (index, frame) in out.clients {
            if let Some(client) = self.clients.get_mut(index) {
                client.outbuf.extend_from_slice(&frame);
                let _ = flush_client(client);
            }
        }
        for index in out.close {
            if let Some(client) = self.clients.get_mut(index)
                && client.state == State::Open
            {
                // RFC 6455 §7.4.1: 1000 indicates a normal closure.
                let close = 1000u16.to_be_bytes();
                let frame = frame::encode_masked_frame(true, OpCode::Close, &close, MASK);
                client.outbuf.extend_from_slice(&frame);
                client.state = State::Closing;
                let _ = flush_client(client);
            }
        }
        for index in out.connect {
            if let Err(e) = self.reconnect(index) {
                self.notify(index, Change::Failed(format!("connect: {e}")));
            }
        }
    }

    /// Sends what the window allows; returns how many triggers were sent in the phase.
    fn trigger(&mut self, sending: bool, now: Instant) -> u64 {
        let json_payloads = self.json_payloads;
        let mut batch: Vec<(u8, Vec<u8>, Vec<u8>)> = Vec::new();
        let count = match &mut self.phase {
            Phase::Idle => 0,
            Phase::Custom(workload) => {
                workload.on_turn(&mut self.tally, now);
                let mut out = Outbox::default();
                let count = workload.trigger(sending, now, &mut out);
                self.send_outbox(out);
                count
            }
            Phase::Fanout(f) => {
                while sending && f.sent < f.max && f.sent - f.completed < f.window {
                    let body = if json_payloads {
                        json_payload(b'F', f.size, f.id, f.sent)
                    } else {
                        payload(b'F', f.size, f.id, f.sent, 0)
                    };
                    batch.push((b'b', Vec::new(), body));
                    f.sent_at.push(now);
                    f.remaining.push(f.clients);
                    f.sent += 1;
                }
                u64::from(f.sent)
            }
            Phase::Direct(d) => {
                let tokens = u32::try_from(self.tokens.len()).unwrap_or(u32::MAX);
                let n = d.count.min(tokens.saturating_sub(d.first));
                while sending && n > 0 && d.sent < d.max && d.sent - d.completed < d.window {
                    // xorshift64: deterministic, uniform enough.
                    d.rng ^= d.rng << 13;
                    d.rng ^= d.rng >> 7;
                    d.rng ^= d.rng << 17;
                    let target = d.first + u32::try_from(d.rng % u64::from(n)).unwrap_or(0);
                    let token = self.tokens[target as usize].to_vec();
                    batch.push((b'd', token, payload(b'D', d.size, d.id, d.sent, target)));
                    d.sent_at.push(now);
                    d.target.push(target);
                    d.sent += 1;
                }
                u64::from(d.sent)
            }
            Phase::Echo(e) => {
                if !sending {
                    e.stop_sending = true;
                }
                let mut frames = Vec::new();
                for client in 0..e.clients {
                    if !e.stop_sending && e.outstanding[client].is_none() {
                        let seq = e.next_seq[client];
                        e.next_seq[client] += 1;
                        e.outstanding[client] = Some((seq, now));
                        let body = payload(b'E', e.size, e.id, seq, client as u32);
                        frames.push((client, body));
                    }
                }
                let total: u64 = e.next_seq.iter().map(|&s| u64::from(s)).sum();
                let proto = self.proto;
                for (client, body) in frames {
                    let frame = match proto {
                        Proto::Ws => frame::encode_masked_frame(true, OpCode::Text, &body, MASK),
                        Proto::Raw => frame::encode_frame(true, OpCode::Text, &body),
                    };
                    if let Some(c) = self.clients.get_mut(client) {
                        c.outbuf.extend_from_slice(&frame);
                        let _ = flush_client(c);
                    }
                }
                total
            }
        };
        for (command, prefix, body) in batch {
            self.send_control(command, &prefix, &body);
        }
        count
    }

    /// Done when nothing is outstanding and nothing more will be sent.
    fn phase_done(&self, sending: bool) -> bool {
        match &self.phase {
            Phase::Idle => true,
            Phase::Custom(workload) => workload.done(sending),
            Phase::Fanout(f) => f.completed == f.sent && (f.sent == f.max || !sending),
            Phase::Direct(d) => d.completed == d.sent && (d.sent == d.max || !sending),
            Phase::Echo(e) => e.stop_sending && e.outstanding.iter().all(Option::is_none),
        }
    }

    /// What never arrived within the stall limit is lost.
    fn declare_lost(&mut self) {
        let lost = match &self.phase {
            Phase::Idle => 0,
            Phase::Custom(workload) => workload.outstanding(),
            Phase::Fanout(f) => f.remaining.iter().map(|&r| u64::from(r)).sum(),
            Phase::Direct(d) => u64::from(d.sent - d.completed),
            Phase::Echo(e) => e.outstanding.iter().filter(|o| o.is_some()).count() as u64,
        };
        self.tally.anomalies.lost += lost;
    }

    fn read_client(&mut self, index: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let proto = self.proto;
        let Some(client) = self.clients.get_mut(index) else {
            self.scratch = scratch;
            return;
        };
        if !matches!(client.state, State::Open | State::Closing) {
            self.scratch = scratch;
            return;
        }
        loop {
            match client.stream.read(&mut scratch) {
                Ok(0) => {
                    ended(client, &mut self.tally);
                    break;
                }
                Ok(n) => {
                    let now = Instant::now();
                    self.tally.bytes += n as u64;
                    let data = &scratch[..n];
                    if client.inbuf.is_empty() {
                        let used = frames(
                            data,
                            index,
                            client,
                            (proto, &mut self.inflate),
                            &mut self.phase,
                            &mut self.tally,
                            now,
                        );
                        client.inbuf.extend_from_slice(&data[used..]);
                    } else {
                        client.inbuf.extend_from_slice(data);
                        let inbuf = std::mem::take(&mut client.inbuf);
                        let used = frames(
                            &inbuf,
                            index,
                            client,
                            (proto, &mut self.inflate),
                            &mut self.phase,
                            &mut self.tally,
                            now,
                        );
                        client.inbuf = inbuf;
                        client.inbuf.drain(..used);
                    }
                    // A short read drained the socket: with edge-triggered epoll, data
                    // arriving after it raises a new event, so the read that would only
                    // say WouldBlock is saved (half the generator's syscalls at W=1). Not
                    // while closing: an EOF that came with the data raises no new event.
                    let drained = n < scratch.len() && client.state == State::Open;
                    if client.state == State::Closed || drained {
                        break;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    ended(client, &mut self.tally);
                    break;
                }
            }
        }
        if !client.outbuf.is_empty() {
            let _ = flush_client(client);
        }
        self.scratch = scratch;
    }
}

/// The socket of `client` ended (EOF or an error): expected while we close it, an anomaly
/// for an open client.
fn ended(client: &mut Client, tally: &mut Tally) {
    if client.state == State::Open {
        tally.anomalies.disconnected += 1;
    }
    client.state = State::Closed;
}

fn flush_client(client: &mut Client) -> io::Result<()> {
    while !client.outbuf.is_empty() {
        match client.stream.write(&client.outbuf) {
            Ok(n) => {
                client.outbuf.drain(..n);
            }
            Err(e) if would_block(&e) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Handles every complete frame at the start of `data`; returns the bytes used.
fn frames(
    data: &[u8],
    index: usize,
    client: &mut Client,
    (proto, inflate): (Proto, &mut Option<(wson::ws::deflate::Inflater, Vec<u8>)>),
    phase: &mut Phase,
    tally: &mut Tally,
    now: Instant,
) -> usize {
    let mut used = 0;
    let rsv1 = match inflate {
        Some(_) => frame::Rsv1::PerMessageCompressed,
        None => frame::Rsv1::Reserved,
    };
    loop {
        let rest = &data[used..];
        let header = match frame::decode_header_with(rest, MAX_FRAME, rsv1) {
            Ok(Decoded::Done { item, len }) => (item, len),
            Ok(Decoded::Incomplete) => return used,
            Err(_) => {
                tally.anomalies.stray += 1;
                client.state = State::Closed;
                return data.len();
            }
        };
        let (header, head_len) = header;
        let Ok(payload_len) = usize::try_from(header.payload_len) else {
            return used;
        };
        if rest.len() < head_len + payload_len {
            return used;
        }
        let body = &rest[head_len..head_len + payload_len];
        used += head_len + payload_len;
        match header.opcode {
            OpCode::Text | OpCode::Binary if header.rsv1 => {
                // wson sends whole messages; each inflates on its own.
                let Some((inflater, out)) = inflate.as_mut() else {
                    tally.anomalies.stray += 1;
                    continue;
                };
                inflater.reset();
                out.clear();
                let inflated = inflater
                    .inflate(body, out, MAX_FRAME as usize)
                    .and_then(|()| inflater.finish(out, MAX_FRAME as usize));
                match inflated {
                    Ok(()) => on_message(out, index, client, phase, tally, now),
                    Err(_) => tally.anomalies.stray += 1,
                }
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                on_message(body, index, client, phase, tally, now);
            }
            OpCode::Ping => {
                let pong = match proto {
                    Proto::Ws => frame::encode_masked_frame(true, OpCode::Pong, body, MASK),
                    Proto::Raw => frame::encode_frame(true, OpCode::Pong, body),
                };
                client.outbuf.extend_from_slice(&pong);
            }
            OpCode::Pong => {}
            // The answer to our Close: the EOF follows.
            OpCode::Close if client.state == State::Closing => return data.len(),
            OpCode::Close => {
                tally.anomalies.disconnected += 1;
                client.state = State::Closed;
                return data.len();
            }
        }
    }
}

fn set_bit(bits: &mut [u64], n: u32) -> Option<bool> {
    let word = bits.get_mut((n / 64) as usize)?;
    let mask = 1u64 << (n % 64);
    let was = *word & mask != 0;
    *word |= mask;
    Some(was)
}

fn on_message(
    body: &[u8],
    index: usize,
    client: &mut Client,
    phase: &mut Phase,
    tally: &mut Tally,
    now: Instant,
) {
    if let Phase::Custom(workload) = phase {
        workload.on_client_message(body, index, tally, now);
        return;
    }
    let Some((tag, id, seq, target)) = parse_payload(body) else {
        tally.anomalies.stray += 1;
        return;
    };
    match phase {
        Phase::Fanout(f) if tag == b'F' && id == f.id && seq < f.sent => {
            match set_bit(&mut client.seen, seq) {
                Some(true) => {
                    tally.anomalies.duplicated += 1;
                    return;
                }
                Some(false) => {}
                None => {
                    tally.anomalies.stray += 1;
                    return;
                }
            }
            if seq + 1 < client.high {
                tally.anomalies.reordered += 1;
            }
            client.high = client.high.max(seq + 1);
            tally.delivered += 1;
            tally.last_progress = Some(now);
            let slot = &mut f.remaining[seq as usize];
            *slot -= 1;
            if *slot == 0 {
                f.completed += 1;
                tally.latencies.push(now - f.sent_at[seq as usize]);
            }
        }
        Phase::Direct(d) if tag == b'D' && id == d.id && seq < d.sent => {
            if target as usize != index || d.target[seq as usize] != target {
                tally.anomalies.stray += 1;
                return;
            }
            if set_bit(&mut d.done, seq) == Some(true) {
                tally.anomalies.duplicated += 1;
                return;
            }
            let last = &mut d.last[index];
            if seq + 1 < *last {
                tally.anomalies.reordered += 1;
            }
            *last = (*last).max(seq + 1);
            d.completed += 1;
            tally.delivered += 1;
            tally.last_progress = Some(now);
            tally.latencies.push(now - d.sent_at[seq as usize]);
        }
        Phase::Echo(e) if tag == b'E' && id == e.id && index < e.clients => {
            match e.outstanding[index] {
                Some((expected, sent_at)) if expected == seq && target as usize == index => {
                    e.outstanding[index] = None;
                    tally.delivered += 1;
                    tally.last_progress = Some(now);
                    tally.latencies.push(now - sent_at);
                }
                Some((expected, _)) if seq < expected => tally.anomalies.duplicated += 1,
                _ => tally.anomalies.stray += 1,
            }
        }
        _ => tally.anomalies.stray += 1,
    }
}
