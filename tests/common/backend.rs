//! The backend's side of wson's own commands (COMMANDS.md, `u` to `Z`): payloads made of
//! fields, the replies `#`, `L` and `!`, events (`e`) and authorization requests (`z`), and
//! the users' WebSocket clients they act on.
//!
//! Encoding and parsing use the library's own `wson::control` types, as `Control` uses its
//! codec; what they mean is checked by the tests against COMMANDS.md.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use wson::control::authorizer::AuthRequest;
use wson::control::codec::RawFrame;
use wson::control::command::{Page, Reply};
use wson::control::event::Event;
use wson::control::fields;
use wson::token::Token;
use wson::ws::frame::OpCode;

use super::{Control, Cookies, Server, WsClient};

/// `values` as one payload of fields, `{len}:{bytes}` each.
pub fn fields(values: &[&[u8]]) -> Vec<u8> {
    fields::to_payload(values)
}

/// The payload of an `e` frame, owned; `event()` reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct EventFrame(pub Vec<u8>);

impl EventFrame {
    pub fn event(&self) -> Event<'_> {
        Event::parse(&self.0).unwrap_or_else(|| panic!("not a valid event: {self:?}"))
    }
}

impl fmt::Debug for EventFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e {:?}", String::from_utf8_lossy(&self.0))
    }
}

/// The payload of a `z` frame, owned; `request()` reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestFrame(pub Vec<u8>);

impl RequestFrame {
    pub fn request(&self) -> AuthRequest<'_> {
        AuthRequest::parse(&self.0)
            .unwrap_or_else(|| panic!("not a valid authorization request: {self:?}"))
    }

    pub fn id(&self) -> u64 {
        self.request().id
    }
}

impl fmt::Debug for RequestFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "z {:?}", String::from_utf8_lossy(&self.0))
    }
}

impl Control {
    /// Sends `command` with a payload made of `values`.
    pub fn send_fields(&mut self, command: u8, values: &[&[u8]]) {
        self.send(command, &fields(values));
    }

    /// The next reply, decoded (events and requests are set aside).
    pub fn next_reply(&mut self) -> Reply {
        let (command, payload) = self.reply();
        Reply::decode(RawFrame {
            command,
            payload: &payload,
        })
        .unwrap_or_else(|| {
            panic!(
                "not a reply: {}{}{:?}",
                payload.len(),
                command as char,
                String::from_utf8_lossy(&payload)
            )
        })
    }

    /// Sends a command made of fields and reads its reply.
    pub fn ask(&mut self, command: u8, values: &[&[u8]]) -> Reply {
        self.send_fields(command, values);
        self.next_reply()
    }

    /// A command answered `#n`: `w W o k K j J r R O`.
    pub fn count(&mut self, command: u8, values: &[&[u8]]) -> u64 {
        match self.ask(command, values) {
            Reply::Count(count) => count,
            other => panic!("{} answered {other:?}, not #n", command as char),
        }
    }

    /// A list command answered `L`: `g y h v`.
    pub fn page(&mut self, command: u8, values: &[&[u8]]) -> Page {
        match self.ask(command, values) {
            Reply::Page(page) => page,
            other => panic!("{} answered {other:?}, not L", command as char),
        }
    }

    /// The whole list, page by page with `limit` items at most, following each page's
    /// cursor until an empty one: names come in strictly increasing byte order, so none
    /// twice. `leading` are the fields before cursor and limit (`g`'s user, `h`'s topic).
    pub fn whole_list(
        &mut self,
        command: u8,
        leading: &[&[u8]],
        limit: usize,
    ) -> Vec<(String, u64)> {
        let limit_text = limit.to_string();
        let mut cursor = Vec::new();
        let mut items: Vec<(Vec<u8>, u64)> = Vec::new();
        for _ in 0..10_000 {
            let mut values = leading.to_vec();
            values.push(&cursor);
            values.push(limit_text.as_bytes());
            let page = self.page(command, &values);
            assert!(page.items.len() <= limit, "page over its limit: {page:?}");
            for (name, count) in page.items.iter().cloned() {
                if let Some((last, _)) = items.last() {
                    assert!(
                        name > *last,
                        "{:?} after {:?}: not in order",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(last)
                    );
                }
                items.push((name, count));
            }
            if page.next_cursor.is_empty() {
                return items
                    .into_iter()
                    .map(|(name, count)| (String::from_utf8(name).unwrap(), count))
                    .collect();
            }
            assert_eq!(
                Some(&page.next_cursor),
                page.items.last().map(|(name, _)| name),
                "the cursor is the last name of the page"
            );
            cursor = page.next_cursor;
        }
        panic!("the list of {} never ended", command as char)
    }

    /// `H`: (users, connections) subscribed to the topic.
    pub fn subscriber_count(&mut self, topic: &str) -> (u64, u64) {
        match self.ask(b'H', &[topic.as_bytes()]) {
            Reply::TopicCount { users, connections } => (users, connections),
            other => panic!("H answered {other:?}"),
        }
    }

    /// `o`: the user's open connections.
    pub fn online(&mut self, user: &str) -> u64 {
        self.count(b'o', &[user.as_bytes()])
    }

    /// The command is well formed but refused: `!` with this reason.
    pub fn expect_refused(&mut self, command: u8, values: &[&[u8]], reason: &str) {
        match self.ask(command, values) {
            Reply::Refused(refusal) => assert_eq!(refusal.reason(), reason),
            other => panic!("{} answered {other:?}, not !{reason}", command as char),
        }
    }

    /// The command gets `0E` and the connection is closed.
    pub fn expect_error(&mut self, command: u8, values: &[&[u8]]) {
        let label = format!("{}{:?}", command as char, fields(values));
        self.send_fields(command, values);
        assert_eq!(self.reply(), (b'E', Vec::new()), "{label}");
        assert_eq!(self.try_reply(), None, "{label}: closed after 0E");
    }

    /// Listens to events (`e` with group and kinds, empty for none and every kind), and
    /// waits until wson has taken it in.
    pub fn listen(&mut self, group: &str, kinds: &str) {
        self.send_fields(b'e', &[group.as_bytes(), kinds.as_bytes()]);
        self.sync();
    }

    /// The next event, first among those set aside.
    pub fn next_event(&mut self) -> EventFrame {
        let (_, payload) = self
            .next_frame(|command| command == b'e')
            .expect("an event, not the end of the control connection");
        EventFrame(payload)
    }

    pub fn expect_event(&mut self, expected: Event<'_>) {
        let got = self.next_event();
        assert_eq!(got.event(), expected, "{got:?}");
    }

    /// Registers as an authorizer (`z`) and waits until wson has taken it in.
    pub fn become_authorizer(&mut self) {
        self.send(b'z', b"");
        self.sync();
    }

    /// The next authorization request, first among those set aside.
    pub fn next_request(&mut self) -> RequestFrame {
        let (_, payload) = self
            .next_frame(|command| command == b'z')
            .expect("an authorization request, not the end of the control connection");
        RequestFrame(payload)
    }

    /// `Z id allow user topic...`.
    pub fn allow(&mut self, id: u64, user: &str, topics: &[&str]) {
        let id = id.to_string();
        let mut values: Vec<&[u8]> = vec![id.as_bytes(), b"allow", user.as_bytes()];
        values.extend(topics.iter().map(|topic| topic.as_bytes()));
        self.send_fields(b'Z', &values);
    }

    /// `Z id deny status reason`.
    pub fn deny(&mut self, id: u64, status: u16, reason: &str) {
        let (id, status) = (id.to_string(), status.to_string());
        self.send_fields(
            b'Z',
            &[id.as_bytes(), b"deny", status.as_bytes(), reason.as_bytes()],
        );
    }
}

impl Server {
    /// A client of `user` with fresh cookies (a token of its own), upgraded over TCP.
    pub fn user_client(&self, user: &str) -> (WsClient, Cookies) {
        let cookies = Cookies::fresh(user);
        let client = WsClient::connect_tcp(&self.tcp(), &cookies).expect("101");
        (client, cookies)
    }

    /// A client of `user` with fresh cookies, upgraded over the Unix listener.
    pub fn unix_user_client(&self, user: &str) -> (WsClient, Cookies) {
        let cookies = Cookies::fresh(user);
        let client = WsClient::connect_unix(&self.unix(), &cookies).expect("101");
        (client, cookies)
    }
}

impl WsClient {
    /// The next data message, binary.
    pub fn recv_binary(&mut self) -> Vec<u8> {
        let frame = self.recv_data();
        assert_eq!(
            frame.opcode,
            OpCode::Binary,
            "expected binary, got {frame:?}"
        );
        assert!(frame.fin);
        frame.payload
    }

    /// Expects our Close with `code` and `reason`, answers it, and sees the connection end.
    pub fn expect_closed_with(&mut self, code: u16, reason: &str) {
        let close = self.expect_close(code);
        assert_eq!(close.close_reason(), reason);
        let _ = self.try_send_raw(&wson::ws::frame::encode_masked_frame(
            true,
            OpCode::Close,
            &close.payload,
            [1, 2, 3, 4],
        ));
        self.expect_end();
    }

    /// Closes cleanly from our side with 1000 and waits for the end.
    pub fn leave(mut self) {
        self.send_close(1000, "");
        self.expect_close(1000);
        self.expect_end();
    }
}

static MARKER: AtomicU64 = AtomicU64::new(0);

/// Proves `client` (holding `token`) received nothing more than it has read: a direct
/// message sent now must be the next thing it reads (a control connection's messages keep
/// their order). Returns the marker, for a second client sharing the token.
pub fn nothing_more(control: &mut Control, client: &mut WsClient, token: &Token) -> String {
    let marker = format!("marker {}", MARKER.fetch_add(1, Ordering::Relaxed));
    control.direct(b'd', token, marker.as_bytes());
    assert_eq!(client.recv_text(), marker, "the next message is the marker");
    marker
}

impl WsClient {
    /// The body of a refusal whose head `response` was read: `Content-Length` bytes.
    pub fn read_body(&mut self, response: &super::HttpResponse) -> String {
        let length: usize = response
            .header("Content-Length")
            .and_then(|value| value.parse().ok())
            .expect("a Content-Length");
        while self.buf.len() < length {
            assert!(self.fill(), "connection ended inside the body");
        }
        String::from_utf8(self.buf.drain(..length).collect()).unwrap()
    }
}

/// The control endpoint as PHP's `stream_socket_client` takes it.
pub fn php_address(server: &Server) -> String {
    match &server.control {
        super::ControlAddr::Tcp(addr) => format!("tcp://{addr}"),
        super::ControlAddr::Unix(path) => format!("unix://{}", path.display()),
        super::ControlAddr::Tls(addr) => format!("tls://{addr}"),
    }
}

impl WsClient {
    /// Reads the answer to an upgrade request sent earlier (one an authorizer holds):
    /// `Ok` for a 101, else the refusal.
    pub fn await_upgrade(&mut self) -> Result<(), super::HttpResponse> {
        let response = self.read_response();
        if response.status == 101 {
            self.response = Some(response);
            Ok(())
        } else {
            Err(response)
        }
    }
}
