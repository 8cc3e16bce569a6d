//! An HTTP API connection: its socket (the one socket loop of `socket.rs`), its input buffer,
//! and the requests read from it, answered in order.
//!
//! Phases: `Reading` waits for the next request, within `request_timeout` from the moment
//! the connection was ready for it (a slow sender gets 408, an idle keep-alive connection
//! is closed); `Waiting` holds a response until the replies that come later (cluster-wide
//! commands) are known, and reads nothing meanwhile, so pipelined requests are answered in
//! order; `Closing` writes the last response and closes. Requests become control commands
//! (`http::api`) executed by the commands layer, as the control socket's are.

use std::collections::BTreeMap;
use std::io;
use std::time::Instant;

use serde_json::{Value, json};

use crate::control::codec::ControlError;
use crate::control::command::{Command, Reply};
use crate::decoded::Decoded;
use crate::http::admin;
use crate::http::api::{self, ApiError, ApiMethod, Route};
use crate::http::request::{self, ContentType, Head, Limits, Method, RequestError};
use crate::http::response::{self, Response};
use crate::server::commands::{Outcome, Ticket};
use crate::server::outbound::{Flushed, Outbound};
use crate::server::settings::Settings;
use crate::server::socket::{self, Connection, Lost, Socket};
use crate::server::stream::Stream;

/// Reads per HTTP connection per loop turn.
const READ_BUDGET: usize = 16;
/// Capacity an emptied buffer may keep for the next request.
const KEEP_BUFFER: usize = 4096;
/// Response bytes a client may leave unread before its next requests stay unread too.
const MAX_UNREAD_RESPONSES: usize = 1 << 20;

/// What a request may run and read: the commands layer, and the figures of `/metrics`.
pub trait HttpBackend {
    fn execute(&mut self, command: Command<'_>) -> Result<Outcome, ControlError>;
    /// A request's commands are all executed: what was batched goes out now.
    fn end_of_input(&mut self);
    /// The `/metrics` text, with the HTTP responses counted so far.
    fn metrics(&mut self, responses: &BTreeMap<u16, u64>) -> String;
}

/// What handling a connection's input needs besides the connection.
pub struct HttpCtx<'a> {
    pub settings: &'a Settings,
    pub api_key: &'a [u8],
    pub now: Instant,
    /// The server is stopping: every request gets 503 and the connection closes.
    pub stopping: bool,
    pub backend: &'a mut dyn HttpBackend,
    /// Tickets of the replies this connection now waits for (the server routes them here).
    pub tickets: &'a mut Vec<Ticket>,
    /// Responses sent, by status (`wson_http_requests_total`).
    pub responses: &'a mut BTreeMap<u16, u64>,
}

pub struct HttpConn {
    socket: Socket<BytesOut>,
    phase: HttpPhase,
    inbuf: Vec<u8>,
}

enum HttpPhase {
    Reading {
        deadline: Instant,
        /// The head of the request whose body is still arriving, and its length.
        head: Option<(Head, usize)>,
        /// `100 Continue` was sent for that head.
        continued: bool,
    },
    Waiting {
        pending: Pending,
        keep_alive: bool,
    },
    /// The last response is queued; once written, our side is shut (a FIN) and what the
    /// peer still sends is read and dropped until its EOF, so a peer still sending a body
    /// we refused reads the response instead of a reset.
    Closing {
        deadline: Instant,
        write_shut: bool,
    },
}

/// A response that waits for replies that come later.
enum Pending {
    Call(Slot),
    Batch(Vec<Slot>),
}

enum Slot {
    Done(Result<Value, ApiError>),
    Waiting { ticket: Ticket, method: ApiMethod },
}

impl Slot {
    fn is_done(&self) -> bool {
        matches!(self, Slot::Done(_))
    }
}

/// Why an HTTP connection is removed.
#[derive(Debug)]
pub enum HttpGone {
    PeerClosed,
    Io(io::Error),
    Finished,
    /// Idle past `request_timeout` between requests.
    Idle,
    CloseTimeout,
}

impl std::fmt::Display for HttpGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpGone::PeerClosed => f.write_str("peer closed the connection"),
            HttpGone::Io(error) => write!(f, "i/o error: {error}"),
            HttpGone::Finished => f.write_str("closed"),
            HttpGone::Idle => f.write_str("idle past request_timeout"),
            HttpGone::CloseTimeout => f.write_str("close timeout"),
        }
    }
}

/// What `drive` leaves for the server.
pub enum HttpDrive {
    Idle,
    OverBudget,
    Gone(HttpGone),
}

impl HttpConn {
    pub fn new(stream: Stream, settings: &Settings, now: Instant) -> HttpConn {
        HttpConn {
            socket: Socket::new(stream, BytesOut::default()),
            phase: HttpPhase::Reading {
                deadline: now + settings.http.request_timeout,
                head: None,
                continued: false,
            },
            inbuf: Vec::new(),
        }
    }

    pub fn stream_mut(&mut self) -> &mut Stream {
        self.socket.stream_mut()
    }

    pub fn peer(&self) -> String {
        self.socket.stream().peer()
    }

    pub fn on_event(&mut self, readable: bool, writable: bool, read_closed: bool) {
        self.socket.on_event(readable, writable, read_closed);
    }

    pub fn drive(&mut self, scratch: &mut [u8], ctx: &mut HttpCtx<'_>) -> HttpDrive {
        // Requests read before a response had to wait are still buffered.
        self.handle_requests(ctx);
        match socket::drive(self, scratch, READ_BUDGET, ctx) {
            socket::Drive::Idle => HttpDrive::Idle,
            socket::Drive::OverBudget => HttpDrive::OverBudget,
            socket::Drive::Exit(gone) => HttpDrive::Gone(gone),
        }
    }

    /// A reply this connection waits for is known; the response goes out once every reply
    /// it waits for is.
    pub fn resolve(&mut self, ticket: Ticket, reply: &Reply, ctx: &mut HttpCtx<'_>) {
        let HttpPhase::Waiting {
            pending,
            keep_alive,
        } = &mut self.phase
        else {
            return;
        };
        let keep_alive = *keep_alive;
        let slots: &mut [Slot] = match pending {
            Pending::Call(slot) => std::slice::from_mut(slot),
            Pending::Batch(slots) => slots,
        };
        for slot in slots.iter_mut() {
            if let Slot::Waiting {
                ticket: waiting,
                method,
            } = slot
                && *waiting == ticket
            {
                *slot = Slot::Done(api::reply_result(*method, reply));
            }
        }
        if !slots.iter().all(Slot::is_done) {
            return;
        }
        // Reading the next request is what follows a kept-alive response (`respond` closes
        // otherwise).
        let phase = std::mem::replace(&mut self.phase, reading(ctx));
        if let HttpPhase::Waiting { pending, .. } = phase {
            match pending {
                Pending::Call(slot) => self.respond_call(slot_result(slot), keep_alive, ctx),
                Pending::Batch(slots) => self.respond_batch(slots, keep_alive, ctx),
            }
        }
    }

    pub fn on_tick(&mut self, ctx: &mut HttpCtx<'_>) -> Result<(), HttpGone> {
        match &self.phase {
            HttpPhase::Reading { deadline, head, .. } if ctx.now >= *deadline => {
                if head.is_none() && self.inbuf.is_empty() {
                    return Err(HttpGone::Idle);
                }
                let error = ApiError::new(
                    408,
                    "request_timeout",
                    "the request did not arrive whole within request_timeout",
                );
                self.inbuf.clear();
                self.respond_error(&error, &[], false, ctx);
                self.socket.flush().map_err(HttpGone::Io)?;
                Ok(())
            }
            HttpPhase::Closing { deadline, .. } if ctx.now >= *deadline => {
                Err(HttpGone::CloseTimeout)
            }
            HttpPhase::Reading { .. } | HttpPhase::Waiting { .. } | HttpPhase::Closing { .. } => {
                Ok(())
            }
        }
    }

    /// Reads and answers every complete request buffered, in order, until one must wait.
    fn handle_requests(&mut self, ctx: &mut HttpCtx<'_>) {
        let limits = Limits {
            max_header_size: ctx.settings.http.max_header_size,
            max_body_size: ctx.settings.http.max_request_size,
        };
        loop {
            let HttpPhase::Reading {
                head, continued, ..
            } = &mut self.phase
            else {
                return;
            };
            if head.is_none() {
                match request::parse_head(&self.inbuf, limits) {
                    Ok(Decoded::Incomplete) => return,
                    Ok(Decoded::Done { item, len }) => *head = Some((item, len)),
                    Err(error) => return self.refuse(&error, ctx),
                }
            }
            let Some((parsed, head_len)) = head.as_ref() else {
                return;
            };
            let end = head_len.saturating_add(parsed.content_length);
            if self.inbuf.len() < end {
                // RFC 9110 §10.1.1: a client that sent `Expect: 100-continue` waits for it.
                if parsed.expect_continue && !*continued {
                    *continued = true;
                    self.socket.out_mut().push(response::CONTINUE);
                }
                return;
            }
            let Some((parsed, head_len)) = head.take() else {
                return;
            };
            let body = self.inbuf.get(head_len..end).unwrap_or(&[]).to_vec();
            self.inbuf.drain(..end.min(self.inbuf.len()));
            if self.inbuf.is_empty() && self.inbuf.capacity() > KEEP_BUFFER {
                self.inbuf = Vec::new();
            }
            self.phase = reading(ctx);
            self.answer(&parsed, &body, ctx);
            ctx.backend.end_of_input();
        }
    }

    /// A request that cannot be read: its error, and the connection closes (what follows
    /// cannot be trusted to start a request).
    fn refuse(&mut self, error: &RequestError, ctx: &mut HttpCtx<'_>) {
        log::debug!(peer = self.peer(), reason:% = error; "http request refused");
        let (status, code) = error.status_and_code();
        self.inbuf.clear();
        self.respond_error(
            &ApiError::new(status, code, error.to_string()),
            &[],
            false,
            ctx,
        );
    }

    fn answer(&mut self, head: &Head, body: &[u8], ctx: &mut HttpCtx<'_>) {
        let keep_alive = head.keep_alive && !ctx.stopping;
        let head_only = head.method == Method::Head;
        let route = match api::route(head.method, &head.path) {
            Ok(route) => route,
            Err((error, allow)) => {
                let headers: &[(&str, &str)] = if allow.is_empty() {
                    &[]
                } else {
                    &[("Allow", allow)]
                };
                return self.respond_error(&error, headers, keep_alive, ctx);
            }
        };
        let authorized = head
            .api_key
            .as_deref()
            .is_some_and(|key| request::key_matches(key, ctx.api_key));
        match route {
            Route::Health => {
                let (status, body) = if ctx.stopping {
                    (503, json!({"status": "shutting_down"}))
                } else {
                    (200, json!({"status": "ok"}))
                };
                let body = body.to_string();
                self.respond(
                    status,
                    response::JSON,
                    body.as_bytes(),
                    &[],
                    keep_alive,
                    head_only,
                    ctx,
                );
                return;
            }
            _ if ctx.stopping => {
                let error = ApiError::new(503, "shutting_down", "the server is stopping");
                return self.respond_error(&error, &[], false, ctx);
            }
            // The admin page loads without the key: it holds no data, and asks for the key.
            Route::Root => {
                let headers = admin::headers();
                self.respond(
                    200,
                    admin::HTML,
                    admin::PAGE.as_bytes(),
                    &headers,
                    keep_alive,
                    head_only,
                    ctx,
                );
                return;
            }
            Route::Metrics if ctx.settings.http.metrics_public || authorized => {
                let text = ctx.backend.metrics(ctx.responses);
                self.respond(
                    200,
                    response::PROMETHEUS,
                    text.as_bytes(),
                    &[],
                    keep_alive,
                    head_only,
                    ctx,
                );
                return;
            }
            Route::Metrics | Route::Call(_) | Route::Batch if !authorized => {
                let message = match head.api_key {
                    None => "missing API key: send Authorization: Bearer KEY or X-API-Key: KEY",
                    Some(_) => "wrong API key",
                };
                log::warn!(peer = self.peer(), path = head.path.as_str(), reason = message; "http request refused");
                let error = ApiError::new(401, "unauthorized", message);
                return self.respond_error(
                    &error,
                    &[("WWW-Authenticate", "Bearer")],
                    keep_alive,
                    ctx,
                );
            }
            Route::Metrics | Route::Call(_) | Route::Batch => {}
        }
        if head.content_type == ContentType::Other {
            let error = ApiError::new(
                415,
                "unsupported_media_type",
                "the body must be application/json",
            );
            return self.respond_error(&error, &[], keep_alive, ctx);
        }
        let max_frame = ctx.settings.max_control_frame;
        match route {
            Route::Call(method) => {
                let slot = match api::parse_params(body) {
                    Ok(params) => run(method, &params, max_frame, ctx),
                    Err(error) => Slot::Done(Err(error)),
                };
                match slot {
                    Slot::Done(result) => self.respond_call(result, keep_alive, ctx),
                    waiting @ Slot::Waiting { .. } => {
                        self.phase = HttpPhase::Waiting {
                            pending: Pending::Call(waiting),
                            keep_alive,
                        };
                    }
                }
            }
            Route::Batch => {
                let entries = match api::parse_batch(body, ctx.settings.http.max_batch) {
                    Ok(entries) => entries,
                    Err(error) => return self.respond_error(&error, &[], keep_alive, ctx),
                };
                let slots: Vec<Slot> = entries
                    .into_iter()
                    .map(|entry| match entry {
                        Ok((method, params)) => run(method, &params, max_frame, ctx),
                        Err(error) => Slot::Done(Err(error)),
                    })
                    .collect();
                if slots.iter().all(Slot::is_done) {
                    self.respond_batch(slots, keep_alive, ctx);
                } else {
                    self.phase = HttpPhase::Waiting {
                        pending: Pending::Batch(slots),
                        keep_alive,
                    };
                }
            }
            Route::Health | Route::Metrics | Route::Root => {}
        }
    }

    fn respond_call(
        &mut self,
        result: Result<Value, ApiError>,
        keep_alive: bool,
        ctx: &mut HttpCtx<'_>,
    ) {
        match result {
            Ok(value) => {
                let body = json!({"result": value}).to_string();
                self.respond(
                    200,
                    response::JSON,
                    body.as_bytes(),
                    &[],
                    keep_alive,
                    false,
                    ctx,
                );
            }
            Err(error) => self.respond_error(&error, &[], keep_alive, ctx),
        }
    }

    fn respond_batch(&mut self, slots: Vec<Slot>, keep_alive: bool, ctx: &mut HttpCtx<'_>) {
        let replies: Vec<Value> = slots
            .into_iter()
            .map(|slot| match slot_result(slot) {
                Ok(value) => json!({"result": value}),
                Err(error) => error.to_json(),
            })
            .collect();
        let body = json!({"replies": replies}).to_string();
        self.respond(
            200,
            response::JSON,
            body.as_bytes(),
            &[],
            keep_alive,
            false,
            ctx,
        );
    }

    fn respond_error(
        &mut self,
        error: &ApiError,
        headers: &[(&'static str, &str)],
        keep_alive: bool,
        ctx: &mut HttpCtx<'_>,
    ) {
        let body = error.to_json().to_string();
        self.respond(
            error.status,
            response::JSON,
            body.as_bytes(),
            headers,
            keep_alive,
            false,
            ctx,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        status: u16,
        content_type: &'static str,
        body: &[u8],
        headers: &[(&'static str, &str)],
        keep_alive: bool,
        head_only: bool,
        ctx: &mut HttpCtx<'_>,
    ) {
        *ctx.responses.entry(status).or_insert(0) += 1;
        let mut bytes = Vec::new();
        Response {
            status,
            content_type,
            body,
            headers,
            keep_alive,
            head_only,
        }
        .encode(&mut bytes);
        self.socket.out_mut().push(&bytes);
        if !keep_alive {
            self.phase = HttpPhase::Closing {
                deadline: ctx.now + ctx.settings.close_timeout,
                write_shut: false,
            };
        }
    }
}

/// Ready for the next request, which has `request_timeout` to arrive whole.
fn reading(ctx: &HttpCtx<'_>) -> HttpPhase {
    HttpPhase::Reading {
        deadline: ctx.now + ctx.settings.http.request_timeout,
        head: None,
        continued: false,
    }
}

/// Runs one method: its params become the control command, executed by the commands layer.
fn run(
    method: ApiMethod,
    params: &serde_json::Map<String, Value>,
    max_frame: usize,
    ctx: &mut HttpCtx<'_>,
) -> Slot {
    let frame = match api::frame(method, params, max_frame) {
        Ok(frame) => frame,
        Err(error) => return Slot::Done(Err(error)),
    };
    let command = match frame.command() {
        Ok(command) => command,
        Err(error) => return Slot::Done(Err(error)),
    };
    match ctx.backend.execute(command) {
        // `Hold`: a request's later methods may run first (each has its own answer).
        Ok(Outcome::Done | Outcome::Quit | Outcome::Hold(_)) => Slot::Done(Ok(api::done_result())),
        Ok(Outcome::Reply(reply)) => Slot::Done(api::reply_result(method, &reply)),
        Ok(Outcome::Later(ticket) | Outcome::LaterInOrder(ticket)) => {
            ctx.tickets.push(ticket);
            Slot::Waiting { ticket, method }
        }
        Err(error) => Slot::Done(Err(api::control_error(&error))),
    }
}

fn slot_result(slot: Slot) -> Result<Value, ApiError> {
    match slot {
        Slot::Done(result) => result,
        Slot::Waiting { .. } => Err(ApiError::new(
            503,
            "cluster_unavailable",
            "no answer from the other nodes",
        )),
    }
}

impl Connection for HttpConn {
    type Queue = BytesOut;
    type Ctx<'c> = HttpCtx<'c>;
    type Exit = HttpGone;

    fn socket(&self) -> &Socket<BytesOut> {
        &self.socket
    }

    fn socket_mut(&mut self) -> &mut Socket<BytesOut> {
        &mut self.socket
    }

    fn wants_read(&self) -> bool {
        match &self.phase {
            // Bounded: a head over max_header_size or a body over max_request_size is
            // refused before its bytes would pile up, and whole requests are answered at once.
            HttpPhase::Reading { .. } => self.socket.out().pending() < MAX_UNREAD_RESPONSES,
            HttpPhase::Waiting { .. } => false,
            HttpPhase::Closing { write_shut, .. } => *write_shut,
        }
    }

    fn after_write(&mut self, _written: usize, _ctx: &mut HttpCtx<'_>) -> Option<HttpGone> {
        if let HttpPhase::Closing { write_shut, .. } = &mut self.phase
            && !*write_shut
            && !self.socket.has_output()
        {
            *write_shut = true;
            self.socket.stream_mut().shutdown_write();
        }
        None
    }

    fn received(&mut self, bytes: &[u8], ctx: &mut HttpCtx<'_>) -> Option<HttpGone> {
        if let HttpPhase::Closing { .. } = self.phase {
            return None;
        }
        self.inbuf.extend_from_slice(bytes);
        self.handle_requests(ctx);
        None
    }

    fn lost(&mut self, lost: Lost) -> HttpGone {
        match lost {
            Lost::PeerClosed if matches!(self.phase, HttpPhase::Closing { .. }) => {
                HttpGone::Finished
            }
            Lost::PeerClosed => HttpGone::PeerClosed,
            Lost::Io(error) => HttpGone::Io(error),
        }
    }
}

/// Response bytes waiting to be written.
#[derive(Default)]
pub struct BytesOut {
    bytes: Vec<u8>,
    written: usize,
}

impl BytesOut {
    fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    fn pending(&self) -> usize {
        self.bytes.len() - self.written
    }
}

impl Outbound for BytesOut {
    fn is_empty(&self) -> bool {
        self.written == self.bytes.len()
    }

    fn write_to(
        &mut self,
        stream: &mut Stream,
        short_write_fills: bool,
    ) -> io::Result<(usize, Flushed)> {
        let mut total = 0;
        let result = loop {
            let pending = self.bytes.get(self.written..).unwrap_or(&[]);
            if pending.is_empty() {
                break Ok((total, Flushed::All));
            }
            match io::Write::write(stream, pending) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    total += n;
                    if n < pending.len() && short_write_fills {
                        break Ok((total, Flushed::Blocked));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    break Ok((total, Flushed::Blocked));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if self.written == self.bytes.len() {
            self.bytes.clear();
            self.written = 0;
            if self.bytes.capacity() > KEEP_BUFFER {
                self.bytes = Vec::new();
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::path::Path;

    use super::*;

    const KEY: &[u8] = b"api-key-0123456789abcdef";

    /// Commands as the tests want them answered: `online` of user `later` comes later,
    /// under tickets 1, 2, ...; any other `online` is 5; the rest answers nothing.
    #[derive(Default)]
    struct Fake {
        next_ticket: u64,
        executed: Vec<u8>,
    }

    impl HttpBackend for Fake {
        fn execute(&mut self, command: Command<'_>) -> Result<Outcome, ControlError> {
            self.executed.push(command.command_byte());
            Ok(match command {
                Command::UserOnline { user: "later" } => {
                    self.next_ticket += 1;
                    Outcome::Later(Ticket(self.next_ticket))
                }
                Command::UserOnline { .. } => Outcome::Reply(Reply::Count(5)),
                _ => Outcome::Done,
            })
        }

        fn end_of_input(&mut self) {}

        fn metrics(&mut self, _responses: &BTreeMap<u16, u64>) -> String {
            "wson_up 1\n".to_owned()
        }
    }

    struct Harness {
        conn: HttpConn,
        peer: mio::net::UnixStream,
        settings: Settings,
        backend: Fake,
        tickets: Vec<Ticket>,
        responses: BTreeMap<u16, u64>,
    }

    impl Harness {
        fn new() -> Harness {
            let text = r#"
servers = ["tcp://127.0.0.1:8099"]
control = "unix://control.sock"
secret = "0123456789abcdef-not-so-secret"
origins = ["http://localhost"]
[http]
listen = ["tcp://127.0.0.1:8098"]
api_key = "api-key-0123456789abcdef"
"#;
            let config = crate::config::parse(text, Path::new("wson.toml")).unwrap();
            let settings = Settings::new(config, Vec::new());
            let (ours, peer) = mio::net::UnixStream::pair().unwrap();
            let conn = HttpConn::new(Stream::Unix(ours), &settings, Instant::now());
            Harness {
                conn,
                peer,
                settings,
                backend: Fake::default(),
                tickets: Vec::new(),
                responses: BTreeMap::new(),
            }
        }

        fn with_ctx<T>(&mut self, work: impl FnOnce(&mut HttpConn, &mut HttpCtx<'_>) -> T) -> T {
            let mut ctx = HttpCtx {
                settings: &self.settings,
                api_key: KEY,
                now: Instant::now(),
                stopping: false,
                backend: &mut self.backend,
                tickets: &mut self.tickets,
                responses: &mut self.responses,
            };
            work(&mut self.conn, &mut ctx)
        }

        /// Sends `bytes` and lets the connection handle them.
        fn send(&mut self, bytes: &[u8]) {
            self.peer.write_all(bytes).unwrap();
            self.drive();
        }

        fn drive(&mut self) {
            self.conn.on_event(true, true, false);
            let mut scratch = vec![0; 4096];
            let drive = self.with_ctx(|conn, ctx| conn.drive(&mut scratch, ctx));
            assert!(matches!(drive, HttpDrive::Idle), "the connection ended");
        }

        fn resolve(&mut self, ticket: u64, reply: Reply) {
            self.with_ctx(|conn, ctx| conn.resolve(Ticket(ticket), &reply, ctx));
            self.drive();
        }

        /// Everything written so far.
        fn received(&mut self) -> String {
            let mut out = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match self.peer.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => out.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            String::from_utf8(out).unwrap()
        }
    }

    fn online(user: &str) -> String {
        let body = format!(r#"{{"user":"{user}"}}"#);
        format!(
            "POST /api/online HTTP/1.1\r\nX-API-Key: api-key-0123456789abcdef\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// The bodies of the responses in `text`, in order.
    fn bodies(text: &str) -> Vec<&str> {
        text.split("HTTP/1.1 ")
            .filter(|response| !response.is_empty())
            .map(|response| response.split_once("\r\n\r\n").unwrap().1)
            .collect()
    }

    #[test]
    fn a_later_reply_holds_the_pipelined_requests_behind_it() {
        let mut harness = Harness::new();
        harness.send(format!("{}{}", online("later"), online("bob")).as_bytes());
        assert_eq!(harness.received(), "");
        // The second request is not even read while the first waits.
        assert_eq!(harness.backend.executed, b"o");
        assert_eq!(harness.tickets, [Ticket(1)]);
        harness.resolve(1, Reply::Count(3));
        let text = harness.received();
        assert_eq!(
            bodies(&text),
            [
                r#"{"result":{"connections":3}}"#,
                r#"{"result":{"connections":5}}"#
            ]
        );
        assert_eq!(harness.responses.get(&200), Some(&2));
    }

    #[test]
    fn a_batch_answers_once_every_later_reply_is_known() {
        let mut harness = Harness::new();
        let body = r#"{"commands":[{"method":"online","params":{"user":"later"}},{"method":"broadcast","params":{"message":"x"}},{"method":"online","params":{"user":"later"}}]}"#;
        let request = format!(
            "POST /api/batch HTTP/1.1\r\nAuthorization: Bearer api-key-0123456789abcdef\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        harness.send(request.as_bytes());
        assert_eq!(harness.backend.executed, b"obo");
        harness.resolve(2, Reply::Count(7));
        assert_eq!(harness.received(), "");
        harness.resolve(1, Reply::Count(1));
        let text = harness.received();
        assert_eq!(
            bodies(&text),
            [
                r#"{"replies":[{"result":{"connections":1}},{"result":{}},{"result":{"connections":7}}]}"#
            ]
        );
    }

    #[test]
    fn a_request_split_at_every_byte_gets_the_same_response() {
        let request = online("bob");
        let mut whole = Harness::new();
        whole.send(request.as_bytes());
        let expected = whole.received();
        assert!(expected.starts_with("HTTP/1.1 200 OK\r\n"), "{expected}");
        let mut split = Harness::new();
        for byte in request.as_bytes() {
            split.send(std::slice::from_ref(byte));
        }
        assert_eq!(split.received(), expected);
    }

    #[test]
    fn expect_continue_is_sent_once_before_the_body() {
        let mut harness = Harness::new();
        harness.send(b"POST /api/online HTTP/1.1\r\nX-API-Key: api-key-0123456789abcdef\r\nExpect: 100-continue\r\nContent-Length: 16\r\n\r\n");
        assert_eq!(harness.received(), "HTTP/1.1 100 Continue\r\n\r\n");
        harness.send(br#"{"user":"alice"#);
        assert_eq!(harness.received(), "");
        harness.send(b"\"}");
        let text = harness.received();
        assert_eq!(bodies(&text), [r#"{"result":{"connections":5}}"#]);
    }

    #[test]
    fn a_wrong_key_runs_nothing() {
        let mut harness = Harness::new();
        let request = online("bob").replace("api-key-0123456789abcdef", "api-key-0123456789abcdeX");
        harness.send(request.as_bytes());
        let text = harness.received();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
        assert!(harness.backend.executed.is_empty());
    }
}
