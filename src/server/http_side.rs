//! The server's side of the HTTP API: its listeners and connections, which tickets (replies
//! that come later) belong to which connection, and the responses counted by status. The
//! connections execute their commands through the same `Backend` as control connections.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::time::Instant;

use mio::{Interest, Token};

use crate::control::codec::ControlError;
use crate::control::command::{Command, Reply};
use crate::http::metrics::{self, Snapshot};
use crate::server::commands::{Backend, Commands, Outcome, Ticket};
use crate::server::http_conn::{HttpBackend, HttpConn, HttpCtx, HttpDrive, HttpGone};
use crate::server::listener::Listener;
use crate::server::slab::{Key, Slab};
use crate::server::{FIRST_HTTP_LISTENER, Peer, RunState, Server, peer_token};

pub(super) struct HttpSide {
    pub(super) listeners: Vec<Listener>,
    pub(super) conns: Slab<HttpConn>,
    /// The connection each reply that comes later goes to.
    pub(super) tickets: HashMap<Ticket, Key>,
    /// Responses sent, by status.
    pub(super) responses: BTreeMap<u16, u64>,
    /// `[http] api_key` or the content of `api_key_file` (empty: the API is off).
    pub(super) api_key: Vec<u8>,
}

/// The commands layer and the figures of `/metrics`, as an HTTP request sees them.
struct HttpCommands<'a> {
    backend: Backend<'a>,
    http_connections: usize,
}

impl HttpBackend for HttpCommands<'_> {
    fn execute(&mut self, command: Command<'_>) -> Result<Outcome, ControlError> {
        self.backend.execute(command)
    }

    fn end_of_input(&mut self) {
        self.backend.end_of_input();
    }

    fn metrics(&mut self, responses: &BTreeMap<u16, u64>) -> String {
        let backend = &self.backend;
        let hub = &*backend.hub;
        let stats = &*backend.stats;
        let figures = hub.figures();
        let (cluster_history_fetches, cluster_history_unpositioned) =
            hub.cluster_figures(backend.now).map_or((0, 0), |cluster| {
                (cluster.history_fetches, cluster.history_unpositioned)
            });
        let cluster = hub.cluster_figures(backend.now).map(|cluster| {
            let up = cluster.redis == crate::cluster::RedisState::Up;
            (
                u64::try_from(cluster.nodes)
                    .unwrap_or(u64::MAX)
                    .saturating_add(1),
                up,
            )
        });
        let snapshot = Snapshot {
            listeners: hub.listener_loads().collect(),
            connections_accepted: stats.connections_accepted,
            messages_in: stats.messages_in,
            messages_out: stats.messages_out,
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
            handshakes_refused: stats
                .refused_by_status
                .iter()
                .map(|(status, count)| (*status, *count))
                .collect(),
            slow_consumers_dropped: stats.slow_consumers_dropped,
            protocol_errors: stats.protocol_errors,
            control_connections: backend.control_connections,
            http_connections: self.http_connections,
            users_online: figures.users_online,
            topics: figures.topics,
            wamp_sessions: figures.wamp.sessions,
            wamp_pending_calls: figures.wamp.pending_calls,
            history_publications: figures.history_publications,
            history_bytes: figures.history_bytes,
            cluster,
            cluster_history_fetches,
            cluster_history_unpositioned,
            uptime_secs: backend
                .now
                .saturating_duration_since(backend.started)
                .as_secs(),
            http_requests: responses
                .iter()
                .map(|(status, count)| (*status, *count))
                .collect(),
        };
        metrics::render(&snapshot)
    }
}

/// Builds the context an HTTP connection handles input with, and runs `$body` with it.
macro_rules! with_http_ctx {
    ($server:ident, $key:ident, $now:ident, |$conn:ident, $ctx:ident| $body:expr) => {{
        let control_connections = $server.controls.len();
        let http_connections = $server.http.conns.len();
        let stopping = !matches!($server.state, RunState::Running);
        let mut tickets = Vec::new();
        let result = match $server.http.conns.get_mut($key) {
            None => None,
            Some($conn) => {
                let mut commands = HttpCommands {
                    backend: Backend {
                        me: $key,
                        hub: &mut $server.hub,
                        batch: &mut $server.batch,
                        settings: &$server.settings,
                        stats: &mut $server.stats,
                        started: $server.started,
                        control_connections,
                        now: $now,
                    },
                    http_connections,
                };
                let mut $ctx = HttpCtx {
                    settings: &$server.settings,
                    api_key: &$server.http.api_key,
                    now: $now,
                    stopping,
                    backend: &mut commands,
                    tickets: &mut tickets,
                    responses: &mut $server.http.responses,
                };
                Some($body)
            }
        };
        for ticket in tickets {
            $server.http.tickets.insert(ticket, $key);
        }
        result
    }};
}

impl Server {
    pub(super) fn accept_http(&mut self, token: Token, now: Instant) {
        let Some(index) = token.0.checked_sub(FIRST_HTTP_LISTENER) else {
            return;
        };
        for _ in 0..super::ACCEPT_BUDGET {
            let Some(listener) = self.http.listeners.get(index) else {
                return;
            };
            let mut stream = match listener.accept() {
                Ok(stream) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.accept_failed(token, &e);
                    return;
                }
            };
            if self.http.conns.len() >= self.settings.http.max_connections {
                log::warn!(
                    peer = stream.peer(),
                    reason = "[http] max_connections reached";
                    "http connection refused"
                );
                // Best effort: a fresh socket's buffer takes a short response.
                let body = r#"{"error":{"code":"too_many_connections","message":"[http] max_connections reached"}}"#;
                let response = format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = io::Write::write(&mut stream, response.as_bytes());
                *self.http.responses.entry(503).or_insert(0) += 1;
                continue;
            }
            let conn = HttpConn::new(stream, &self.settings, now);
            let Some(key) = self.http.conns.insert(conn) else {
                continue;
            };
            let registered = match self.http.conns.get_mut(key) {
                Some(conn) => self.poll.registry().register(
                    conn.stream_mut(),
                    peer_token(Peer::Http(key)),
                    Interest::READABLE | Interest::WRITABLE,
                ),
                None => continue,
            };
            if let Err(e) = registered {
                log::warn!(reason:% = e; "cannot register http connection");
                self.http.conns.remove(key);
            }
        }
        self.accept_pending.push(token);
    }

    pub(super) fn drive_http(&mut self, key: Key, now: Instant) {
        let drive = with_http_ctx!(self, key, now, |conn, ctx| conn
            .drive(&mut self.scratch, &mut ctx));
        match drive {
            None | Some(HttpDrive::Idle) => {}
            Some(HttpDrive::OverBudget) => self.pending.push(Peer::Http(key)),
            Some(HttpDrive::Gone(gone)) => self.close_http(key, &gone),
        }
    }

    /// A reply an HTTP connection waits for came (from the other nodes): once its response
    /// is complete it is written, and the requests pipelined behind it are read on.
    pub(super) fn resolve_http(&mut self, key: Key, ticket: Ticket, reply: &Reply, now: Instant) {
        with_http_ctx!(self, key, now, |conn, ctx| conn
            .resolve(ticket, reply, &mut ctx));
        self.drive_http(key, now);
    }

    pub(super) fn tick_http(&mut self, now: Instant) {
        for key in self.http.conns.keys() {
            let ticked = with_http_ctx!(self, key, now, |conn, ctx| conn.on_tick(&mut ctx));
            if let Some(Err(gone)) = ticked {
                self.close_http(key, &gone);
            }
        }
    }

    fn close_http(&mut self, key: Key, gone: &HttpGone) {
        let Some(mut conn) = self.http.conns.remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(conn.stream_mut());
        self.http.tickets.retain(|_, waiting| *waiting != key);
        log::debug!(peer = conn.peer(), reason:% = gone; "http connection gone");
    }
}
