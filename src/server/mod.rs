//! The server: owns the poll, the listeners, the control connections and the hub, and
//! runs the event loop.
//!
//! Each turn polls with a timeout up to the next timer tick, handles events (signal pipe,
//! listeners, clients, control connections), revisits connections that used up their
//! budget, flushes every client that had frames queued during the turn with one `writev`
//! each, and on ticks runs the timers (handshake, keepalive, expiry, close deadlines).
//! Only this module touches mio; tokens do not leak below it.

pub mod commands;
pub mod conn;
pub mod control_conn;
pub mod http_conn;
mod http_side;
pub mod hub;
pub mod listener;
pub mod outbound;
pub mod replies;
pub mod settings;
pub mod slab;
pub mod socket;
pub mod stats;
pub mod stream;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::cluster;
use crate::config::{Config, ConfigError};
use crate::server::commands::Backend;
use crate::server::control_conn::{ControlConn, ControlCtx, ControlDrive, ControlGone};
use crate::server::http_side::HttpSide;
use crate::server::hub::{ControlSink, Hub, Offer, Step, router_config};
use crate::server::listener::{BindError, ListenBacklog, Listener, SocketFile};
use crate::server::outbound::FrameBatch;
use crate::server::settings::Settings;
use crate::server::slab::{Key, Slab};
use crate::server::stats::Stats;
use crate::tls::{ALPN_HTTP_1_1, TlsAcceptor, TlsError};

const SIGNAL: Token = Token(0);
const CONTROL_LISTENER: Token = Token(1);
const FIRST_WS_LISTENER: usize = 2;
/// The HTTP API's listeners (WebSocket listeners stay below).
const FIRST_HTTP_LISTENER: usize = 1 << 15;
/// Tokens from here on carry a slab key and the connection kind in the two low bits.
const FIRST_CONNECTION: usize = 1 << 16;
/// The cluster link's waker: what other nodes published is waiting.
const CLUSTER: Token = Token(FIRST_CONNECTION - 1);

/// How often timers run. Timeouts are configured in whole seconds, so a quarter second
/// of lateness is invisible while an idle server wakes only four times a second.
const TICK: Duration = Duration::from_millis(250);
/// A turn that executed this many control commands is taken for part of a burst still
/// arriving (a backend pipelining hundreds of publications, which the kernel hands over
/// in pieces): the clients' writes wait for one more look at the sockets.
const BURST_COMMANDS: u64 = 256;
/// The most turns in a row whose writes wait so (each looks without blocking): the first
/// message of a burst is never held back longer than that. Fewer when `max_outbound_buffer`
/// is small (`Server::max_held_flushes`).
const MAX_HELD_FLUSHES: u8 = 4;
/// Accepts per listener per turn before other work gets its turn.
const ACCEPT_BUDGET: usize = 128;
/// Size of the one read buffer every connection reads into.
const SCRATCH_SIZE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Client(Key),
    Control(Key),
    Http(Key),
}

fn peer_token(peer: Peer) -> Token {
    let (key, kind) = match peer {
        Peer::Client(key) => (key, 0),
        Peer::Control(key) => (key, 1),
        Peer::Http(key) => (key, 2),
    };
    Token(FIRST_CONNECTION + ((key.to_usize() << 2) | kind))
}

fn token_peer(token: Token) -> Option<Peer> {
    let raw = token.0.checked_sub(FIRST_CONNECTION)?;
    let key = Key::from_usize(raw >> 2)?;
    match raw & 3 {
        0 => Some(Peer::Client(key)),
        1 => Some(Peer::Control(key)),
        2 => Some(Peer::Http(key)),
        _ => None,
    }
}

/// The control connections as the hub's outbox sees them: frames are queued up to
/// `[events] max_queue` bytes per connection.
struct ControlQueues<'a> {
    controls: &'a mut Slab<ControlConn>,
    max_queue: usize,
    touched: &'a mut Vec<Key>,
}

impl ControlSink for ControlQueues<'_> {
    fn offer(&mut self, to: Key, frame: &Rc<[u8]>) -> Offer {
        let Some(control) = self.controls.get_mut(to) else {
            return Offer::Gone;
        };
        let offer = control.offer(frame, self.max_queue);
        if offer == Offer::Queued && !self.touched.contains(&to) {
            self.touched.push(to);
        }
        offer
    }
}

/// Flags set by signal handlers; the loop reads and clears them after draining the pipe.
#[derive(Clone, Default)]
pub struct SignalFlags {
    pub terminate: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
    /// SIGUSR1: reopen the log file (logrotate moved it away).
    pub reopen_log: Arc<AtomicBool>,
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// A config value the host cannot satisfy (a socket group that does not exist).
    Config(Vec<ConfigError>),
    Bind(BindError),
    Poll(io::Error),
    /// The cluster link's threads could not start.
    Cluster(io::Error),
    /// The `[tls]` certificate or key could not be loaded.
    Tls(TlsError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("; "))
            }
            StartError::Bind(error) => error.fmt(f),
            StartError::Poll(error) => write!(f, "cannot create the event loop: {error}"),
            StartError::Cluster(error) => write!(f, "cannot start the cluster link: {error}"),
            StartError::Tls(error) => write!(f, "[tls]: {error}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Re-reads the config on SIGHUP: the fresh config and the secret it resolves to, or why
/// it was refused.
pub type Reloader = Box<dyn FnMut() -> Result<(Config, Vec<u8>), String>>;

enum RunState {
    Running,
    /// Stopping: Close 1001 sent to every client; exit when they are gone or at `deadline`.
    Draining {
        deadline: Instant,
    },
}

/// Listeners bound before the process detaches, so bind errors reach the terminal.
pub struct Bound {
    ws: Vec<Listener>,
    control: Listener,
    /// The HTTP API's (`[http] listen`; none: off).
    http: Vec<Listener>,
}

impl Bound {
    /// Looks up the socket groups, then binds every listener with the configured accept
    /// queue length. On failure, the socket files of the listeners bound so far are
    /// removed: a start that fails leaves nothing behind.
    pub fn bind(config: &Config) -> Result<Bound, StartError> {
        let groups = listener::socket_groups(config).map_err(StartError::Config)?;
        for (key, why) in &groups.ignored {
            log::warn!(key = *key, reason:% = why; "config key ignored: no socket file to apply it to");
        }
        let backlog = ListenBacklog::new(config.listen_backlog, ListenBacklog::read_somaxconn());
        if let Some(configured) = config.listen_backlog
            && backlog.applied() != configured
        {
            log::warn!(
                listen_backlog = configured,
                applied = backlog.applied(),
                somaxconn = backlog
                    .somaxconn()
                    .map_or_else(|| "?".to_owned(), |cap| cap.to_string());
                "listen_backlog adjusted by the kernel's cap"
            );
        }
        let ws_file = SocketFile {
            mode: config.socket_mode,
            group: groups.servers.as_ref(),
        };
        let control_file = SocketFile {
            mode: config.control_socket_mode,
            group: groups.control.as_ref(),
        };
        let tls = load_tls(config).map_err(StartError::Tls)?;
        let control_tls = tls.as_ref().map(TlsAcceptor::without_alpn);
        let mut ws: Vec<Listener> = Vec::new();
        let remove_bound = |ws: &[Listener]| ws.iter().for_each(Listener::remove_socket_file);
        for endpoint in &config.servers {
            match Listener::bind(endpoint, backlog, ws_file, config.reuse_port, tls.as_ref()) {
                Ok(listener) => ws.push(listener),
                Err(error) => {
                    remove_bound(&ws);
                    return Err(StartError::Bind(error));
                }
            }
        }
        let control = match Listener::bind(
            &config.control,
            backlog,
            control_file,
            false,
            control_tls.as_ref(),
        ) {
            Ok(control) => control,
            Err(error) => {
                remove_bound(&ws);
                return Err(StartError::Bind(error));
            }
        };
        let http_file = SocketFile {
            mode: config.http.socket_mode,
            group: groups.http.as_ref(),
        };
        let mut http: Vec<Listener> = Vec::new();
        for endpoint in &config.http.listen {
            match Listener::bind(endpoint, backlog, http_file, false, tls.as_ref()) {
                Ok(listener) => http.push(listener),
                Err(error) => {
                    remove_bound(&ws);
                    remove_bound(&http);
                    control.remove_socket_file();
                    return Err(StartError::Bind(error));
                }
            }
        }
        Ok(Bound { ws, control, http })
    }

    /// Removes the Unix socket files (when start fails after binding).
    pub fn remove_socket_files(&self) {
        for listener in self.ws.iter().chain(&self.http) {
            listener.remove_socket_file();
        }
        self.control.remove_socket_file();
    }
}

pub struct Server {
    poll: Poll,
    wake: mio::net::UnixStream,
    signals: SignalFlags,
    reloader: Reloader,
    listeners: Vec<Listener>,
    control_listener: Listener,
    /// Listeners with connections possibly left in the backlog (budget spent, or accept
    /// failed for lack of file descriptors and is retried on the next tick).
    accept_pending: Vec<Token>,
    accept_paused: bool,
    hub: Hub,
    controls: Slab<ControlConn>,
    http: HttpSide,
    /// Connections that spent their budget with readiness left.
    pending: Vec<Peer>,
    /// Control connections that got frames from the hub this turn.
    controls_to_flush: Vec<Key>,
    settings: Settings,
    stats: Stats,
    scratch: Vec<u8>,
    batch: FrameBatch,
    started: Instant,
    next_tick: Instant,
    /// Turns in a row whose writes waited for the rest of a burst (`BURST_COMMANDS`).
    held_flushes: u8,
    state: RunState,
    /// The file stdout and stderr point at when detached; `None` in the foreground, where
    /// whoever started wson owns stderr (journald, a terminal) and SIGUSR1 has nothing to do.
    log_file: Option<PathBuf>,
}

impl Server {
    pub fn new(
        bound: Bound,
        config: Config,
        signing_secret: Vec<u8>,
        signals: SignalFlags,
        wake: std::os::unix::net::UnixStream,
        reloader: Reloader,
    ) -> Result<Server, StartError> {
        let settings = Settings::new(config, signing_secret);
        let poll = Poll::new().map_err(StartError::Poll)?;
        wake.set_nonblocking(true).map_err(StartError::Poll)?;
        let mut wake = mio::net::UnixStream::from_std(wake);
        poll.registry()
            .register(&mut wake, SIGNAL, Interest::READABLE)
            .map_err(StartError::Poll)?;
        let Bound {
            ws: mut listeners,
            control: mut control_listener,
            http: mut http_listeners,
        } = bound;
        let mut listener_names = Vec::new();
        for (index, listener) in listeners.iter_mut().enumerate() {
            listener
                .register(poll.registry(), Token(FIRST_WS_LISTENER + index))
                .map_err(StartError::Poll)?;
            let name = listener.local_endpoint();
            log::info!(
                kind = "websocket",
                endpoint = name.as_str(),
                backlog = listener.backlog();
                "listening"
            );
            listener_names.push(name);
        }
        control_listener
            .register(poll.registry(), CONTROL_LISTENER)
            .map_err(StartError::Poll)?;
        log::info!(
            kind = "control",
            endpoint = control_listener.local_endpoint(),
            backlog = control_listener.backlog();
            "listening"
        );
        for (index, listener) in http_listeners.iter_mut().enumerate() {
            listener
                .register(poll.registry(), Token(FIRST_HTTP_LISTENER + index))
                .map_err(StartError::Poll)?;
            log::info!(
                kind = "http",
                endpoint = listener.local_endpoint(),
                backlog = listener.backlog();
                "listening"
            );
        }
        let api_key = crate::config::resolve_api_key(&settings)
            .map_err(|error| StartError::Config(vec![error]))?
            .unwrap_or_default();
        let mut hub = Hub::new(listener_names, router_config(&settings.wamp));
        hub.configure_history(&settings);
        if let Some(redis_url) = settings.cluster.redis.clone() {
            let waker =
                Arc::new(mio::Waker::new(poll.registry(), CLUSTER).map_err(StartError::Poll)?);
            let redis_ca = match &settings.cluster.redis_ca {
                Some(path) => Some(std::fs::read(path).map_err(|error| {
                    let what = format!("[cluster] redis_ca {}: {error}", path.display());
                    StartError::Cluster(io::Error::new(error.kind(), what))
                })?),
                None => None,
            };
            let link_settings = cluster::LinkSettings {
                redis_url,
                redis_ca,
                node_id: settings
                    .cluster
                    .node_id
                    .clone()
                    .unwrap_or_else(cluster::default_node_id),
                prefix: settings.cluster.prefix.clone(),
                max_queue: settings.cluster.max_queue,
            };
            log::info!(node = link_settings.node_id.as_str(), channel = link_settings.all_channel().as_str(); "cluster: joining through Redis");
            let link = cluster::Link::start(link_settings, move || {
                let _ = waker.wake();
            })
            .map_err(StartError::Cluster)?;
            hub.join_cluster(
                link,
                settings.cluster.heartbeat,
                settings.cluster.request_timeout,
                settings.cluster.max_queue,
                Instant::now(),
            );
        }
        let now = Instant::now();
        Ok(Server {
            poll,
            wake,
            signals,
            reloader,
            hub,
            listeners,
            control_listener,
            accept_pending: Vec::new(),
            accept_paused: false,
            controls: Slab::default(),
            http: HttpSide {
                listeners: http_listeners,
                conns: Slab::default(),
                tickets: HashMap::new(),
                responses: BTreeMap::new(),
                api_key,
            },
            pending: Vec::new(),
            controls_to_flush: Vec::new(),
            settings,
            stats: Stats::default(),
            scratch: vec![0; SCRATCH_SIZE],
            batch: FrameBatch::default(),
            started: now,
            next_tick: now + TICK,
            held_flushes: 0,
            state: RunState::Running,
            log_file: None,
        })
    }

    /// Names the log file that SIGUSR1 reopens (set by `start --daemon`).
    pub fn with_log_file(mut self, path: PathBuf) -> Server {
        self.log_file = Some(path);
        self
    }

    /// Runs until SIGTERM/SIGINT and the drain that follows.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = if self.held_flushes == 0
                && self.pending.is_empty()
                && (self.accept_pending.is_empty() || self.accept_paused)
            {
                // A call's timeout may come before the next tick.
                let wake_at = self
                    .hub
                    .router_deadline()
                    .map_or(self.next_tick, |deadline| deadline.min(self.next_tick));
                wake_at.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            let commands_before = self.stats.control_frames;
            for event in events.iter() {
                match event.token() {
                    SIGNAL => self.drain_wake_pipe(),
                    CLUSTER => {
                        self.hub.cluster_receive(&self.settings, &mut self.stats);
                        self.answer_status_questions(now);
                    }
                    CONTROL_LISTENER => self.accept_control(now),
                    token if (FIRST_HTTP_LISTENER..CLUSTER.0).contains(&token.0) => {
                        self.accept_http(token, now);
                    }
                    token if token.0 < FIRST_CONNECTION => self.accept_clients(token, now),
                    token => {
                        let Some(peer) = token_peer(token) else {
                            continue;
                        };
                        let read_closed = event.is_read_closed() || event.is_error();
                        let readable = event.is_readable() || read_closed;
                        let writable =
                            event.is_writable() || event.is_write_closed() || event.is_error();
                        self.set_ready(peer, readable, writable, read_closed);
                        self.drive(peer, now);
                    }
                }
            }
            let revisit = std::mem::take(&mut self.pending);
            for peer in revisit {
                self.drive(peer, now);
            }
            if self
                .hub
                .router_deadline()
                .is_some_and(|deadline| deadline <= now)
            {
                self.hub.router_tick(now);
            }
            self.settle_hub(now);
            if !self.accept_paused {
                for token in std::mem::take(&mut self.accept_pending) {
                    match token {
                        CONTROL_LISTENER => self.accept_control(now),
                        token if token.0 >= FIRST_HTTP_LISTENER => self.accept_http(token, now),
                        token => self.accept_clients(token, now),
                    }
                }
            }
            // Within a burst, one more look at the sockets first: the rest of it may have
            // arrived, and each client then gets one write for all of it.
            let burst = self.stats.control_frames - commands_before >= BURST_COMMANDS;
            if burst && self.held_flushes < self.max_held_flushes() {
                self.held_flushes += 1;
            } else {
                self.held_flushes = 0;
                self.hub.cluster_flush();
                self.hub.flush(&mut self.stats);
                self.flush_controls(now);
            }
            if now >= self.next_tick {
                self.next_tick = now + TICK;
                self.accept_paused = false;
                self.tick(now);
                self.settle_hub(now);
                self.hub.cluster_flush();
                self.hub.flush(&mut self.stats);
                self.flush_controls(now);
            }
            if self.signals.reload.swap(false, Ordering::SeqCst) {
                self.reload();
            }
            if self.signals.reopen_log.swap(false, Ordering::SeqCst) {
                self.reopen_log();
            }
            if self.signals.terminate.swap(false, Ordering::SeqCst) {
                self.begin_shutdown(now);
            }
            // Lingering connections finished their closing handshake; only the peer's
            // EOF is missing, and exiting closes them just as well.
            if let RunState::Draining { deadline } = self.state
                && (now >= deadline || self.hub.all_lingering())
            {
                log::info!(
                    clients_left = self.hub.count_not_lingering(),
                    uptime_secs = now.saturating_duration_since(self.started).as_secs();
                    "stopped"
                );
                return Ok(());
            }
        }
    }

    /// What the hub left for the rest of the turn: clients to drive again (an upgrade the
    /// authorizer answered) and frames for control connections (events, authorization
    /// requests), which may make more of each.
    fn settle_hub(&mut self, now: Instant) {
        // Replies held for the other nodes' answers go (their actions settle below).
        self.hub.cluster_settle_replies();
        // Cluster-wide questions answered (or timed out) take their place among the replies.
        for (key, ticket, reply) in self.hub.take_cluster_replies() {
            if let Some(http_key) = self.http.tickets.remove(&ticket) {
                self.resolve_http(http_key, ticket, &reply, now);
                continue;
            }
            if let Some(control) = self.controls.get_mut(key) {
                if control.resolve(ticket, &reply) {
                    // The commands it held back run on the next turn.
                    self.pending.push(Peer::Control(key));
                }
                if !self.controls_to_flush.contains(&key) {
                    self.controls_to_flush.push(key);
                }
            }
        }
        loop {
            let revisits = self.hub.take_revisits();
            for key in &revisits {
                self.drive_client(*key, now);
            }
            let routed = self.hub.settle_router(&self.settings, &mut self.stats, now);
            let mut sink = ControlQueues {
                controls: &mut self.controls,
                max_queue: self.settings.events.max_queue,
                touched: &mut self.controls_to_flush,
            };
            let full = self.hub.drain_outbox(&mut sink);
            for key in &full {
                // A listener, or an authorizer that stopped reading its requests.
                log::warn!(
                    reason = "queue over [events] max_queue";
                    "control connection dropped: it does not read what wson sends it"
                );
                self.close_control(*key, &ControlGone::SlowReader, now);
            }
            if revisits.is_empty() && full.is_empty() && !routed {
                return;
            }
        }
    }

    /// Writes what the turn queued for control connections (events, requests).
    fn flush_controls(&mut self, now: Instant) {
        for key in std::mem::take(&mut self.controls_to_flush) {
            let Some(control) = self.controls.get_mut(key) else {
                continue;
            };
            if let Err(error) = control.flush() {
                self.close_control(key, &ControlGone::Io(error), now);
            }
        }
    }

    fn drain_wake_pipe(&mut self) {
        let mut buf = [0u8; 64];
        loop {
            match self.wake.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    fn set_ready(&mut self, peer: Peer, readable: bool, writable: bool, read_closed: bool) {
        match peer {
            Peer::Client(key) => self.hub.on_event(key, readable, writable, read_closed),
            Peer::Control(key) => {
                if let Some(control) = self.controls.get_mut(key) {
                    control.on_event(readable, writable, read_closed);
                }
            }
            Peer::Http(key) => {
                if let Some(conn) = self.http.conns.get_mut(key) {
                    conn.on_event(readable, writable, read_closed);
                }
            }
        }
    }

    fn drive(&mut self, peer: Peer, now: Instant) {
        match peer {
            Peer::Client(key) => self.drive_client(key, now),
            Peer::Control(key) => self.drive_control(key, now),
            Peer::Http(key) => self.drive_http(key, now),
        }
    }

    /// Turns in a row whose writes may wait for the rest of a burst. Each may queue a
    /// control connection's whole turn of input (`READ_BUDGET` reads) to every client: all
    /// of them together, and the turn that writes, never more than `max_outbound_buffer`,
    /// so that waiting never makes a slow consumer of a client that keeps up.
    fn max_held_flushes(&self) -> u8 {
        let turn = control_conn::READ_BUDGET * SCRATCH_SIZE;
        let turns = self.settings.max_outbound_buffer / turn;
        u8::try_from(turns.saturating_sub(1))
            .unwrap_or(u8::MAX)
            .min(MAX_HELD_FLUSHES)
    }

    fn drive_client(&mut self, key: Key, now: Instant) {
        let step = self
            .hub
            .drive(key, &mut self.scratch, &self.settings, &mut self.stats, now);
        match step {
            Step::Idle => {}
            Step::OverBudget => self.pending.push(Peer::Client(key)),
        }
    }

    fn drive_control(&mut self, key: Key, now: Instant) {
        let control_connections = self.controls.len();
        let Some(control) = self.controls.get_mut(key) else {
            return;
        };
        let mut backend = Backend {
            me: key,
            hub: &mut self.hub,
            batch: &mut self.batch,
            settings: &self.settings,
            stats: &mut self.stats,
            started: self.started,
            control_connections,
            now,
        };
        let mut ctx = ControlCtx {
            settings: &self.settings,
            now,
            commands: &mut backend,
        };
        match control.drive(&mut self.scratch, &mut ctx) {
            ControlDrive::Idle => {}
            ControlDrive::OverBudget => self.pending.push(Peer::Control(key)),
            ControlDrive::Gone(gone) => self.close_control(key, &gone, now),
        }
    }

    /// Other nodes' `t`: this node's status for each (the figures live here, not in the hub).
    fn answer_status_questions(&mut self, now: Instant) {
        for (asker, id) in self.hub.take_statuses_wanted() {
            let status = commands::status_json(
                &self.hub,
                &self.settings,
                &self.stats,
                self.started,
                self.controls.len(),
                now,
            );
            self.hub.cluster_answer(&asker, id, 0, status.as_bytes());
        }
    }

    fn close_control(&mut self, key: Key, gone: &ControlGone, now: Instant) {
        let Some(control) = self.controls.remove(key) else {
            return;
        };
        log::debug!(peer = control.peer(), reason:% = gone; "control connection gone");
        self.hub
            .control_gone(key, &self.settings, &mut self.stats, now);
    }

    fn accept_clients(&mut self, token: Token, now: Instant) {
        let Some(index) = token.0.checked_sub(FIRST_WS_LISTENER) else {
            return;
        };
        if !matches!(self.state, RunState::Running) {
            return;
        }
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            let stream = match listener.accept() {
                Ok(stream) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.accept_failed(token, &e);
                    return;
                }
            };
            let Some(key) =
                self.hub
                    .admit_socket(stream, index, &self.settings, &mut self.stats, now)
            else {
                continue;
            };
            let token = peer_token(Peer::Client(key));
            let registered = match self.hub.stream_mut(key) {
                Some(stream) => self.poll.registry().register(
                    stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                ),
                None => continue,
            };
            if let Err(e) = registered {
                log::warn!(reason:% = e; "cannot register connection");
                self.hub.close(key, &conn::Gone::Finished);
            }
        }
        // Budget spent: more may be waiting in the backlog.
        self.accept_pending.push(token);
    }

    /// Out of file descriptors (or another accept failure): the pending connection stays
    /// in the backlog and no new edge will announce it, so retry on the next tick rather
    /// than spin on a failing accept.
    fn accept_failed(&mut self, token: Token, error: &io::Error) {
        log::warn!(reason:% = error; "accept failed; retrying on the next tick");
        self.accept_paused = true;
        if !self.accept_pending.contains(&token) {
            self.accept_pending.push(token);
        }
    }

    fn accept_control(&mut self, now: Instant) {
        if !matches!(self.state, RunState::Running) {
            return;
        }
        for _ in 0..ACCEPT_BUDGET {
            let mut stream = match self.control_listener.accept() {
                Ok(stream) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.accept_failed(CONTROL_LISTENER, &e);
                    return;
                }
            };
            if self.controls.len() >= self.settings.max_control_connections {
                log::warn!(
                    peer = stream.peer(),
                    reason = "max_control_connections reached";
                    "control connection refused"
                );
                let _ = io::Write::write(&mut stream, b"0E");
                continue;
            }
            let handshake_timeout = self.settings.handshake_timeout;
            let Some(key) = self
                .controls
                .insert(ControlConn::new(stream, now, handshake_timeout))
            else {
                continue;
            };
            let token = peer_token(Peer::Control(key));
            let registered = match self.controls.get_mut(key) {
                Some(control) => self.poll.registry().register(
                    control.stream_mut(),
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                ),
                None => continue,
            };
            if let Err(e) = registered {
                log::warn!(reason:% = e; "cannot register control connection");
                self.controls.remove(key);
            }
        }
        self.accept_pending.push(CONTROL_LISTENER);
    }

    fn tick(&mut self, now: Instant) {
        self.tick_http(now);
        self.hub.tick(&self.settings, &mut self.stats, now);
        self.hub.cluster_tick(now);
        self.hub
            .cluster_history_tick(&self.settings, &mut self.stats, now);
        for key in self.controls.keys() {
            let Some(control) = self.controls.get_mut(key) else {
                continue;
            };
            let ticked = control
                .on_tick(&self.settings, now)
                .and_then(|()| control.flush().map_err(ControlGone::Io));
            if let Err(gone) = ticked {
                self.close_control(key, &gone, now);
            }
        }
    }

    fn reload(&mut self) {
        match (self.reloader)() {
            Ok((fresh, signing_secret)) => {
                let settings = self.settings.reloaded(fresh, signing_secret);
                self.hub.apply_message_limit(settings.max_message_size);
                self.hub.configure_router(&settings.wamp);
                self.hub.configure_history(&settings);
                log::set_max_level(settings.log_level);
                self.settings = settings;
                self.reload_tls();
                log::info!(
                    "configuration reloaded (listener, control and pid changes need a restart)"
                );
            }
            Err(reason) => {
                log::error!(reason; "reload failed; keeping the running configuration");
            }
        }
    }
}

/// The acceptor of `tls://` listeners, with the WebSocket ALPN; `None` without `[tls]` files.
fn load_tls(config: &Config) -> Result<Option<TlsAcceptor>, TlsError> {
    let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) else {
        return Ok(None);
    };
    TlsAcceptor::load(cert, key, config.tls.min_version, &[ALPN_HTTP_1_1]).map(Some)
}

impl Server {
    /// SIGHUP: the `[tls]` files are read again (certbot renews them in place), so new
    /// handshakes get the new certificate; open connections keep their sessions. Files that
    /// no longer load leave the listeners with the certificate they have.
    fn reload_tls(&mut self) {
        let tls_listeners = self.listeners.iter().filter(|l| l.is_tls()).count()
            + self.http.listeners.iter().filter(|l| l.is_tls()).count()
            + usize::from(self.control_listener.is_tls());
        if tls_listeners == 0 {
            return;
        }
        match load_tls(&self.settings) {
            Ok(Some(acceptor)) => {
                for listener in self.listeners.iter_mut().chain(&mut self.http.listeners) {
                    listener.set_tls(&acceptor);
                }
                self.control_listener.set_tls(&acceptor.without_alpn());
                log::info!(listeners = tls_listeners; "TLS certificate reloaded");
            }
            Ok(None) => log::error!(
                reason = "[tls] cert and key are no longer set";
                "TLS certificate not reloaded; new handshakes keep the previous one"
            ),
            Err(error) => log::error!(
                reason:% = error;
                "TLS certificate not reloaded; new handshakes keep the previous one"
            ),
        }
    }
}

/// Socket files go with the server on every exit path, clean or not.
impl Drop for Server {
    fn drop(&mut self) {
        for listener in &self.listeners {
            listener.remove_socket_file();
        }
        self.control_listener.remove_socket_file();
        for listener in &self.http.listeners {
            listener.remove_socket_file();
        }
    }
}

impl Server {
    /// SIGUSR1: point stdout and stderr at a fresh file at the same path (logrotate renamed
    /// the old one). Connections are untouched; a failure keeps the old file and says why.
    fn reopen_log(&self) {
        let Some(path) = &self.log_file else {
            log::info!("log reopen requested; logging to stderr, nothing to reopen");
            return;
        };
        match crate::daemon::reopen_log(path) {
            Ok(()) => log::info!(path:% = path.display(); "log file reopened"),
            Err(error) => log::error!(error:% = error; "log file not reopened"),
        }
    }

    /// SIGTERM/SIGINT: stop accepting, send Close 1001 to every client and wait for them
    /// up to `close_timeout`.
    fn begin_shutdown(&mut self, now: Instant) {
        if !matches!(self.state, RunState::Running) {
            return;
        }
        log::info!(clients = self.hub.len(); "stopping");
        crate::daemon::notify_systemd("STOPPING=1");
        for listener in &mut self.listeners {
            let _ = listener.deregister(self.poll.registry());
            listener.remove_socket_file();
        }
        let _ = self.control_listener.deregister(self.poll.registry());
        self.control_listener.remove_socket_file();
        self.accept_pending.clear();
        // Clients first, so that event listeners are sent their `disconnected` events (why
        // `shutdown`) before their own connections close.
        self.hub.shut_down(&self.settings, &mut self.stats, now);
        self.hub.leave_cluster();
        self.settle_hub(now);
        self.flush_controls(now);
        for key in self.controls.keys() {
            self.close_control(key, &ControlGone::Finished, now);
        }
        self.state = RunState::Draining {
            deadline: now + self.settings.close_timeout,
        };
    }
}
