//! The server side of the RFC 6455 §4 opening handshake.
//!
//! `parse_request` turns the bytes a client sent into a validated [`Request`] (or says more
//! bytes are needed, or which rule the request broke); `accept_response` and
//! `refusal_response` build the bytes to send back. Nothing here touches a socket: the caller
//! owns the buffer, and bytes after the request head (a first frame sent in the same packet)
//! stay with it. The request head is parsed by httparse into a fixed array of
//! [`MAX_HEADERS`] headers, and only the few fields wson needs are copied out.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest as _, Sha1};

use crate::decoded::Decoded;

/// How many header fields a request may carry; one more is a 431.
pub const MAX_HEADERS: usize = 64;

/// RFC 6455 §1.3: the GUID appended to the key before hashing.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// RFC 6455 §4.1: "The value of this header field MUST be 13."
const WEBSOCKET_VERSION: &str = "13";

/// A valid key is 16 bytes, which base64 spells in exactly 24 characters (with `==` padding).
const KEY_ENCODED_LEN: usize = 24;
const KEY_DECODED_LEN: usize = 16;

/// Peer-controlled strings kept in an error (a method, a version) are clipped to this many
/// bytes, so a refused request cannot put kilobytes into a log line.
const ERROR_TEXT_MAX: usize = 32;

/// The reason line of a refusal's body is cut to this many bytes.
const REFUSAL_REASON_MAX: usize = 200;

/// What wson keeps of a valid opening handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request-target as sent (a path, or an absolute URI, RFC 6455 §4.2.1 item 1).
    pub path: String,
    pub host: String,
    pub origin: Option<String>,
    /// `Sec-WebSocket-Key` without surrounding whitespace; known to decode to 16 bytes.
    pub key: String,
    /// Every `Cookie` header value, in order, joined with "; ".
    pub cookies: Vec<u8>,
    /// `Sec-WebSocket-Protocol` tokens from every such header, in order.
    pub protocols: Vec<String>,
    /// Every `X-Forwarded-For` value, in order, joined with ", " (one list, RFC 9110 §5.3);
    /// read only when a trusted proxy sent the request.
    pub x_forwarded_for: Vec<u8>,
    /// Every `Forwarded` value (RFC 7239), in order, joined with ", ".
    pub forwarded: Vec<u8>,
    /// Every `Sec-WebSocket-Extensions` value, in order, joined with ", " (RFC 6455
    /// §9.1: several such headers are one list); `ws::deflate::negotiate` reads it.
    pub extensions: Vec<u8>,
}

/// The HTTP statuses a refused handshake can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    BadRequest,
    Forbidden,
    UpgradeRequired,
    TooManyRequests,
    HeaderFieldsTooLarge,
    ServiceUnavailable,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::UpgradeRequired => 426,
            Status::TooManyRequests => 429,
            Status::HeaderFieldsTooLarge => 431,
            Status::ServiceUnavailable => 503,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::BadRequest => "Bad Request",
            Status::Forbidden => "Forbidden",
            Status::UpgradeRequired => "Upgrade Required",
            Status::TooManyRequests => "Too Many Requests",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

/// Why an opening handshake was refused: one variant per rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not HTTP/1.x syntax, or a header value that must be text is not UTF-8.
    Malformed {
        detail: &'static str,
    },
    /// The request head is longer than `max` bytes.
    TooLarge {
        max: usize,
    },
    /// More than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// RFC 6455 §4.1: the method MUST be GET (clipped to a few bytes).
    NotGet {
        method: String,
    },
    /// RFC 6455 §4.1: the HTTP version MUST be at least 1.1; this was HTTP/1.0.
    HttpVersion,
    /// No `Host` header, or an empty one.
    MissingHost,
    /// A header that may appear once appeared again.
    DuplicateHeader {
        name: &'static str,
    },
    /// No `Upgrade` header containing the token `websocket`.
    NotWebSocketUpgrade,
    /// No `Connection` header containing the token `upgrade`.
    MissingConnectionUpgrade,
    MissingKey,
    /// `Sec-WebSocket-Key` does not decode to exactly 16 bytes.
    BadKey,
    MissingVersion,
    /// `Sec-WebSocket-Version` is not 13 (clipped to a few bytes).
    UnsupportedVersion {
        version: String,
    },
}

impl HandshakeError {
    /// The status the client is refused with.
    pub fn status(&self) -> Status {
        match self {
            HandshakeError::TooLarge { .. } | HandshakeError::TooManyHeaders => {
                Status::HeaderFieldsTooLarge
            }
            // RFC 6455 §4.4: the server MUST "send an appropriate HTTP error code (such as
            // 426 Upgrade Required) and a |Sec-WebSocket-Version| header field".
            HandshakeError::UnsupportedVersion { .. } => Status::UpgradeRequired,
            HandshakeError::Malformed { .. }
            | HandshakeError::NotGet { .. }
            | HandshakeError::HttpVersion
            | HandshakeError::MissingHost
            | HandshakeError::DuplicateHeader { .. }
            | HandshakeError::NotWebSocketUpgrade
            | HandshakeError::MissingConnectionUpgrade
            | HandshakeError::MissingKey
            | HandshakeError::BadKey
            | HandshakeError::MissingVersion => Status::BadRequest,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Malformed { detail } => write!(f, "malformed request: {detail}"),
            HandshakeError::TooLarge { max } => {
                write!(f, "request head longer than {max} bytes")
            }
            HandshakeError::TooManyHeaders => {
                write!(f, "more than {MAX_HEADERS} header fields")
            }
            HandshakeError::NotGet { method } => write!(f, "method {method:?} is not GET"),
            HandshakeError::HttpVersion => write!(f, "HTTP/1.0 request, HTTP/1.1 required"),
            HandshakeError::MissingHost => write!(f, "no Host header"),
            HandshakeError::DuplicateHeader { name } => {
                write!(f, "{name} header appears more than once")
            }
            HandshakeError::NotWebSocketUpgrade => {
                write!(f, "no Upgrade header with the token \"websocket\"")
            }
            HandshakeError::MissingConnectionUpgrade => {
                write!(f, "no Connection header with the token \"upgrade\"")
            }
            HandshakeError::MissingKey => write!(f, "no Sec-WebSocket-Key header"),
            HandshakeError::BadKey => {
                write!(f, "Sec-WebSocket-Key is not 16 bytes in base64")
            }
            HandshakeError::MissingVersion => write!(f, "no Sec-WebSocket-Version header"),
            HandshakeError::UnsupportedVersion { version } => {
                write!(f, "Sec-WebSocket-Version {version:?} is not 13")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

/// The header value as text, or `Malformed` naming the header.
macro_rules! header_text {
    ($name:literal, $value:expr) => {
        std::str::from_utf8($value).map_err(|_| HandshakeError::Malformed {
            detail: concat!($name, " value is not UTF-8"),
        })
    };
}

/// Parses and validates an opening handshake at the start of `buf`.
///
/// Incomplete while the request head (up to CRLFCRLF) has not fully arrived and
/// `buf.len() <= max_size`. More than `max_size` bytes without a complete head is `TooLarge`
/// (431), and so is a complete head longer than `max_size`. `Done { len }` is the length of
/// the head alone: bytes after it (an early first frame) stay with the caller.
pub fn parse_request(buf: &[u8], max_size: usize) -> Result<Decoded<Request>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > max_size => {
            return Err(HandshakeError::TooLarge { max: max_size });
        }
        Ok(httparse::Status::Partial) => return Ok(Decoded::Incomplete),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(error) => {
            return Err(HandshakeError::Malformed {
                detail: syntax_detail(error),
            });
        }
    };
    if head_len > max_size {
        return Err(HandshakeError::TooLarge { max: max_size });
    }
    let request = validate(&parsed)?;
    Ok(Decoded::Done {
        item: request,
        len: head_len,
    })
}

/// Appends one field value of a comma list header: RFC 9110 §5.3, several fields of a list
/// are one list, in order.
fn join_list(list: &mut Vec<u8>, value: &[u8]) {
    let value = value.trim_ascii();
    if value.is_empty() {
        return;
    }
    if !list.is_empty() {
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(value);
}

fn syntax_detail(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid method or request-target",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "not HTTP/1.x",
    }
}

/// Applies the RFC 6455 §4.2.1 rules to a complete request head.
fn validate(parsed: &httparse::Request<'_, '_>) -> Result<Request, HandshakeError> {
    let (Some(method), Some(path), Some(minor_version)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HandshakeError::Malformed {
            detail: "incomplete request line",
        });
    };
    // RFC 6455 §4.1: "The method of the request MUST be GET, and the HTTP version MUST be at
    // least 1.1." (Methods are case-sensitive, RFC 9110 §9.1.)
    if method != "GET" {
        return Err(HandshakeError::NotGet {
            method: clip(method, ERROR_TEXT_MAX),
        });
    }
    if minor_version < 1 {
        return Err(HandshakeError::HttpVersion);
    }

    let mut host = None;
    let mut origin = None;
    let mut key = None;
    let mut version = None;
    let mut upgrade_websocket = false;
    let mut connection_upgrade = false;
    let mut cookies: Vec<u8> = Vec::new();
    let mut protocols = Vec::new();
    let mut x_forwarded_for: Vec<u8> = Vec::new();
    let mut forwarded: Vec<u8> = Vec::new();
    let mut extensions: Vec<u8> = Vec::new();

    for header in parsed.headers.iter() {
        let name = header.name;
        let value = header.value;
        if name.eq_ignore_ascii_case("host") {
            // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to
            // any HTTP/1.1 request message that lacks a Host header field and to any request
            // message that contains more than one Host header field".
            set_once(&mut host, "Host", header_text!("Host", value)?)?;
        } else if name.eq_ignore_ascii_case("origin") {
            // RFC 6454 §7.3: "The user agent MUST NOT include more than one Origin header
            // field in any HTTP request."
            set_once(&mut origin, "Origin", header_text!("Origin", value)?)?;
        } else if name.eq_ignore_ascii_case("upgrade") {
            // RFC 6455 §4.2.1 item 3: "An |Upgrade| header field containing the value
            // "websocket", treated as an ASCII case-insensitive value."
            let text = header_text!("Upgrade", value)?;
            upgrade_websocket |= has_token(text, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            // RFC 6455 §4.2.1 item 4: "A |Connection| header field that includes the token
            // "Upgrade", treated as an ASCII case-insensitive value." Several Connection
            // headers are one comma list (RFC 9110 §5.3).
            let text = header_text!("Connection", value)?;
            connection_upgrade |= has_token(text, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            // RFC 6455 §11.3.1: "The |Sec-WebSocket-Key| header field MUST NOT appear more
            // than once in an HTTP request."
            let text = header_text!("Sec-WebSocket-Key", value)?;
            set_once(&mut key, "Sec-WebSocket-Key", text)?;
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            // RFC 6455 §11.3.5: "The |Sec-WebSocket-Version| header field MUST NOT appear
            // more than once in an HTTP request."
            let text = header_text!("Sec-WebSocket-Version", value)?;
            set_once(&mut version, "Sec-WebSocket-Version", text)?;
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            let text = header_text!("Sec-WebSocket-Protocol", value)?;
            protocols.extend(list_elements(text).map(str::to_owned));
        } else if name.eq_ignore_ascii_case("cookie") {
            // RFC 6265 §5.4: "the user agent MUST NOT attach more than one Cookie header
            // field", but some proxies split it; join them as one list.
            let value = value.trim_ascii();
            if !value.is_empty() {
                if !cookies.is_empty() {
                    cookies.extend_from_slice(b"; ");
                }
                cookies.extend_from_slice(value);
            }
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            join_list(&mut x_forwarded_for, value);
        } else if name.eq_ignore_ascii_case("forwarded") {
            join_list(&mut forwarded, value);
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            join_list(&mut extensions, value);
        }
    }

    // RFC 6455 §4.2.1 item 2: "A |Host| header field containing the server's authority."
    let host = match host {
        Some(host) if !host.is_empty() => host,
        Some(_) | None => return Err(HandshakeError::MissingHost),
    };
    if !upgrade_websocket {
        return Err(HandshakeError::NotWebSocketUpgrade);
    }
    if !connection_upgrade {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    // The version is checked before the key so that a client speaking an older draft (with
    // its own key headers) learns from the 426 which version to use.
    // RFC 6455 §4.2.1 item 6: "A |Sec-WebSocket-Version| header field, with a value of 13."
    match version {
        None => return Err(HandshakeError::MissingVersion),
        Some(WEBSOCKET_VERSION) => {}
        Some(other) => {
            return Err(HandshakeError::UnsupportedVersion {
                version: clip(other, ERROR_TEXT_MAX),
            });
        }
    }
    // RFC 6455 §4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a base64-encoded
    // value that, when decoded, is 16 bytes in length."
    let Some(key) = key else {
        return Err(HandshakeError::MissingKey);
    };
    if !is_valid_key(key) {
        return Err(HandshakeError::BadKey);
    }

    Ok(Request {
        path: path.to_owned(),
        host: host.to_owned(),
        origin: origin.map(str::to_owned),
        key: key.to_owned(),
        cookies,
        protocols,
        x_forwarded_for,
        forwarded,
        extensions,
    })
}

/// Stores the trimmed `value` in an empty `slot`, or reports the header as duplicated.
fn set_once<'a>(
    slot: &mut Option<&'a str>,
    name: &'static str,
    value: &'a str,
) -> Result<(), HandshakeError> {
    if slot.is_some() {
        return Err(HandshakeError::DuplicateHeader { name });
    }
    *slot = Some(value.trim_matches([' ', '\t']));
    Ok(())
}

/// The non-empty, trimmed elements of an HTTP comma list (RFC 9110 §5.6.1: recipients
/// "MUST accept empty list elements" and ignore them).
fn list_elements(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(|element| element.trim_matches([' ', '\t']))
        .filter(|element| !element.is_empty())
}

fn has_token(text: &str, token: &str) -> bool {
    list_elements(text).any(|element| element.eq_ignore_ascii_case(token))
}

fn is_valid_key(key: &str) -> bool {
    // The length is checked first, so a long value is refused without decoding it.
    key.len() == KEY_ENCODED_LEN
        && STANDARD
            .decode(key)
            .is_ok_and(|bytes| bytes.len() == KEY_DECODED_LEN)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn clip(text: &str, max: usize) -> String {
    let mut end = 0;
    for (index, character) in text.char_indices() {
        let next = index + character.len_utf8();
        if next > max {
            break;
        }
        end = next;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

/// RFC 6455 §4.2.2: base64 of the SHA-1 of the key (as sent, without surrounding
/// whitespace) concatenated with the GUID.
pub fn accept_key(key: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(key.as_bytes());
    hasher.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(hasher.finalize())
}

/// The 101 response that completes the handshake. `protocol`, when given, must be one of the
/// request's `protocols` (RFC 6455 §4.2.2: the server selects one of the client's values);
/// `extensions`, when given, is the accepted extension (`ws::deflate::Agreed::response`).
pub fn accept_response(key: &str, protocol: Option<&str>, extensions: Option<&str>) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    if let Some(protocol) = protocol {
        response.push_str("Sec-WebSocket-Protocol: ");
        response.push_str(protocol);
        response.push_str("\r\n");
    }
    if let Some(extensions) = extensions {
        response.push_str("Sec-WebSocket-Extensions: ");
        response.push_str(extensions);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    response.into_bytes()
}

/// A refusal with any error status (an authorizer's deny): the status line with its
/// standard reason phrase, and `text` after the status in the plain-text body.
pub fn denial_response(code: u16, text: &str) -> Vec<u8> {
    let phrase = reason_phrase(code);
    let body = format!("{code} {phrase}\n{text}\n");
    format!(
        "HTTP/1.1 {code} {phrase}\r\n\
         Connection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         \r\n\
         {body}",
        body.len()
    )
    .into_bytes()
}

/// RFC 9110 §15's reason phrases for the 4xx and 5xx statuses a deny is likely to use.
fn reason_phrase(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        423 => "Locked",
        429 => "Too Many Requests",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ if code < 500 => "Client Error",
        _ => "Server Error",
    }
}

/// A complete refusal: status line, `Connection: close`, and a short plain-text body: the
/// status, then `why` on a line of its own, so a developer with curl sees the reason. `why`
/// comes from wson's own messages (never a secret, a cookie value or an expected digest);
/// control characters in it become spaces, so it stays one line. A 426 names the version
/// wson speaks; `retry_after` (seconds) adds `Retry-After`.
pub fn refusal_response(status: Status, retry_after: Option<u32>, why: &str) -> Vec<u8> {
    let code = status.code();
    let reason = status.reason();
    let why: String = clip(why, REFUSAL_REASON_MAX)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let body = format!("{code} {reason}\n{why}\n");
    let mut response = format!(
        "HTTP/1.1 {code} {reason}\r\n\
         Connection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    if status == Status::UpgradeRequired {
        // RFC 6455 §4.4: the server MUST send "a |Sec-WebSocket-Version| header field
        // indicating the version(s) the server is capable of understanding".
        response.push_str("Sec-WebSocket-Version: 13\r\n");
    }
    if let Some(seconds) = retry_after {
        response.push_str(&format!("Retry-After: {seconds}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&body);
    response.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 8192;

    /// What Chromium sends, cookies and all (one Cookie header, as browsers do).
    const CHROMIUM: &[u8] = b"GET /ws?room=42 HTTP/1.1\r\n\
        Host: push.example.com\r\n\
        Connection: Upgrade\r\n\
        Pragma: no-cache\r\n\
        Cache-Control: no-cache\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
        Upgrade: websocket\r\n\
        Origin: https://www.example.com\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Accept-Encoding: gzip, deflate, br, zstd\r\n\
        Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
        Cookie: _ga=GA1.2.1234567890.1700000000; token=abcdefghijklmnopqrstuvwxyz012345; user=alice; time=1700000000; digest=c1bc041b314a4951f2fb4303e0baf935\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
        Sec-WebSocket-Protocol: wamp.2.json, wamp.2.msgpack\r\n\
        \r\n";

    fn chromium_request() -> Request {
        Request {
            path: "/ws?room=42".to_owned(),
            host: "push.example.com".to_owned(),
            origin: Some("https://www.example.com".to_owned()),
            key: "dGhlIHNhbXBsZSBub25jZQ==".to_owned(),
            cookies: b"_ga=GA1.2.1234567890.1700000000; token=abcdefghijklmnopqrstuvwxyz012345; \
                user=alice; time=1700000000; digest=c1bc041b314a4951f2fb4303e0baf935"
                .to_vec(),
            protocols: vec!["wamp.2.json".to_owned(), "wamp.2.msgpack".to_owned()],
            x_forwarded_for: Vec::new(),
            forwarded: Vec::new(),
            extensions: b"permessage-deflate; client_max_window_bits".to_vec(),
        }
    }

    #[test]
    fn forwarding_headers_join_as_one_list_each() {
        let request = parse_done(&request_with(
            "GET / HTTP/1.1",
            "X-Forwarded-For: 203.0.113.7\r\nForwarded: for=192.0.2.1\r\n\
             x-forwarded-for:  10.0.0.1 \r\nX-Forwarded-For:\r\n",
            &[],
        ));
        assert_eq!(request.x_forwarded_for, b"203.0.113.7, 10.0.0.1");
        assert_eq!(request.forwarded, b"for=192.0.2.1");
    }

    /// A minimal valid request with `extra` header lines (each ending in CRLF) added, and
    /// any of the required lines named in `without` left out.
    fn request_with(request_line: &str, extra: &str, without: &[&str]) -> Vec<u8> {
        let required = [
            ("Host", "Host: localhost:8080\r\n"),
            ("Upgrade", "Upgrade: websocket\r\n"),
            ("Connection", "Connection: Upgrade\r\n"),
            ("Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
            ("Version", "Sec-WebSocket-Version: 13\r\n"),
        ];
        let mut text = format!("{request_line}\r\n");
        for (name, line) in required {
            if !without.contains(&name) {
                text.push_str(line);
            }
        }
        text.push_str(extra);
        text.push_str("\r\n");
        text.into_bytes()
    }

    fn minimal(extra: &str, without: &[&str]) -> Vec<u8> {
        request_with("GET /chat HTTP/1.1", extra, without)
    }

    fn parse(buf: &[u8]) -> Result<Decoded<Request>, HandshakeError> {
        parse_request(buf, MAX)
    }

    fn parse_done(buf: &[u8]) -> Request {
        match parse(buf) {
            Ok(Decoded::Done { item, len }) => {
                assert_eq!(len, buf.len());
                item
            }
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn rfc_1_3_sample_key_gives_sample_accept() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn chromium_request_is_accepted_with_cookies_and_protocols() {
        assert_eq!(parse_done(CHROMIUM), chromium_request());
    }

    #[test]
    fn request_split_at_every_offset_is_incomplete_until_its_last_byte() {
        for cut in 0..CHROMIUM.len() {
            assert_eq!(
                parse(&CHROMIUM[..cut]),
                Ok(Decoded::Incomplete),
                "cut at {cut}"
            );
        }
        assert_eq!(
            parse(CHROMIUM),
            Ok(Decoded::Done {
                item: chromium_request(),
                len: CHROMIUM.len()
            })
        );
    }

    #[test]
    fn bytes_after_the_head_are_left_to_the_caller() {
        let mut buf = CHROMIUM.to_vec();
        // A masked text frame "Hi" sent in the same packet as the handshake.
        buf.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
        assert_eq!(
            parse(&buf),
            Ok(Decoded::Done {
                item: chromium_request(),
                len: CHROMIUM.len()
            })
        );
    }

    #[test]
    fn head_over_max_size_without_end_is_too_large_at_max_plus_one_bytes() {
        let partial = &CHROMIUM[..CHROMIUM.len() - 1];
        let max = partial.len() - 1;
        assert_eq!(parse_request(&partial[..max], max), Ok(Decoded::Incomplete));
        assert_eq!(
            parse_request(partial, max),
            Err(HandshakeError::TooLarge { max })
        );
        assert_eq!(
            HandshakeError::TooLarge { max }.status(),
            Status::HeaderFieldsTooLarge
        );
    }

    #[test]
    fn complete_head_over_max_size_is_too_large() {
        let max = CHROMIUM.len() - 1;
        assert_eq!(
            parse_request(CHROMIUM, max),
            Err(HandshakeError::TooLarge { max })
        );
        // Exactly max_size bytes is still fine, even with a frame behind it.
        let mut buf = CHROMIUM.to_vec();
        buf.extend_from_slice(&[0x88, 0x80, 0, 0, 0, 0]);
        assert_eq!(
            parse_request(&buf, CHROMIUM.len()),
            Ok(Decoded::Done {
                item: chromium_request(),
                len: CHROMIUM.len()
            })
        );
    }

    #[test]
    fn invalid_header_name_is_malformed_400() {
        let error = parse(&minimal("Bad Name: x\r\n", &[])).unwrap_err();
        assert_eq!(
            error,
            HandshakeError::Malformed {
                detail: "invalid header name"
            }
        );
        assert_eq!(error.status(), Status::BadRequest);
    }

    #[test]
    fn http_2_request_line_is_malformed() {
        assert_eq!(
            parse(&request_with("GET /chat HTTP/2.0", "", &[])),
            Err(HandshakeError::Malformed {
                detail: "not HTTP/1.x"
            })
        );
    }

    #[test]
    fn non_utf8_header_value_is_malformed_400() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: caf\xe9\r\n".to_vec();
        buf.extend_from_slice(&minimal("", &["Host"])[b"GET /chat HTTP/1.1\r\n".len()..]);
        let error = parse(&buf).unwrap_err();
        assert_eq!(
            error,
            HandshakeError::Malformed {
                detail: "Host value is not UTF-8"
            }
        );
        assert_eq!(error.status(), Status::BadRequest);
    }

    #[test]
    fn non_utf8_cookie_is_kept_as_bytes() {
        let mut buf = minimal("", &[]);
        buf.truncate(buf.len() - 2);
        buf.extend_from_slice(b"Cookie: a=\xff\r\n\r\n");
        assert_eq!(parse_done(&buf).cookies, b"a=\xff".to_vec());
    }

    #[test]
    fn more_than_64_headers_is_431() {
        let extra: String = (0..MAX_HEADERS)
            .map(|i| format!("X-Filler-{i}: {i}\r\n"))
            .collect();
        let error = parse(&minimal(&extra, &[])).unwrap_err();
        assert_eq!(error, HandshakeError::TooManyHeaders);
        assert_eq!(error.status(), Status::HeaderFieldsTooLarge);
        // Exactly 64 headers is fine.
        let extra: String = (0..MAX_HEADERS - 5)
            .map(|i| format!("X-Filler-{i}: {i}\r\n"))
            .collect();
        assert!(matches!(
            parse(&minimal(&extra, &[])),
            Ok(Decoded::Done { .. })
        ));
    }

    #[test]
    fn post_is_not_get_400() {
        let error = parse(&request_with("POST /chat HTTP/1.1", "", &[])).unwrap_err();
        assert_eq!(
            error,
            HandshakeError::NotGet {
                method: "POST".to_owned()
            }
        );
        assert_eq!(error.status(), Status::BadRequest);
    }

    #[test]
    fn lowercase_get_is_not_get() {
        assert!(matches!(
            parse(&request_with("get /chat HTTP/1.1", "", &[])),
            Err(HandshakeError::NotGet { .. })
        ));
    }

    #[test]
    fn long_method_is_clipped_in_the_error() {
        let method = "X".repeat(500);
        let error = parse(&request_with(&format!("{method} / HTTP/1.1"), "", &[])).unwrap_err();
        assert_eq!(
            error,
            HandshakeError::NotGet {
                method: "X".repeat(ERROR_TEXT_MAX)
            }
        );
    }

    #[test]
    fn http_1_0_is_400() {
        let error = parse(&request_with("GET /chat HTTP/1.0", "", &[])).unwrap_err();
        assert_eq!(error, HandshakeError::HttpVersion);
        assert_eq!(error.status(), Status::BadRequest);
    }

    #[test]
    fn missing_host_is_400() {
        let error = parse(&minimal("", &["Host"])).unwrap_err();
        assert_eq!(error, HandshakeError::MissingHost);
        assert_eq!(error.status(), Status::BadRequest);
    }

    #[test]
    fn empty_host_is_missing_host() {
        assert_eq!(
            parse(&minimal("Host: \r\n", &["Host"])),
            Err(HandshakeError::MissingHost)
        );
    }

    #[test]
    fn second_host_header_is_400() {
        let error = parse(&minimal("host: other\r\n", &[])).unwrap_err();
        assert_eq!(error, HandshakeError::DuplicateHeader { name: "Host" });
        assert_eq!(error.status(), Status::BadRequest);
    }

    #[test]
    fn second_key_version_or_origin_header_is_400() {
        let cases = [
            (
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                "Sec-WebSocket-Key",
            ),
            ("Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version"),
            ("Origin: a\r\nOrigin: b\r\n", "Origin"),
        ];
        for (extra, name) in cases {
            assert_eq!(
                parse(&minimal(extra, &[])),
                Err(HandshakeError::DuplicateHeader { name })
            );
        }
    }

    #[test]
    fn missing_upgrade_is_400() {
        let error = parse(&minimal("", &["Upgrade"])).unwrap_err();
        assert_eq!(error, HandshakeError::NotWebSocketUpgrade);
        assert_eq!(error.status(), Status::BadRequest);
    }

    #[test]
    fn upgrade_to_another_protocol_is_400() {
        assert_eq!(
            parse(&minimal("Upgrade: h2c\r\n", &["Upgrade"])),
            Err(HandshakeError::NotWebSocketUpgrade)
        );
        assert_eq!(
            parse(&minimal("Upgrade: websockets\r\n", &["Upgrade"])),
            Err(HandshakeError::NotWebSocketUpgrade)
        );
    }

    #[test]
    fn upgrade_token_is_case_insensitive_in_a_comma_list() {
        let request = minimal("UPGRADE: h2c , WebSocket\r\n", &["Upgrade"]);
        assert_eq!(parse_done(&request).host, "localhost:8080");
    }

    #[test]
    fn missing_connection_upgrade_is_400() {
        let error = parse(&minimal("", &["Connection"])).unwrap_err();
        assert_eq!(error, HandshakeError::MissingConnectionUpgrade);
        assert_eq!(error.status(), Status::BadRequest);
        assert_eq!(
            parse(&minimal("Connection: keep-alive\r\n", &["Connection"])),
            Err(HandshakeError::MissingConnectionUpgrade)
        );
    }

    #[test]
    fn connection_upgrade_token_may_be_in_a_list_or_a_later_header() {
        for extra in [
            "Connection: keep-alive, Upgrade\r\n",
            "connection: keep-alive,upgrade\r\n",
            "Connection: keep-alive\r\nConnection: UPGRADE\r\n",
            "Connection: ,, upgrade ,\r\n",
        ] {
            let request = minimal(extra, &["Connection"]);
            assert_eq!(parse_done(&request).path, "/chat", "{extra:?}");
        }
    }

    #[test]
    fn missing_key_is_400() {
        let error = parse(&minimal("", &["Key"])).unwrap_err();
        assert_eq!(error, HandshakeError::MissingKey);
        assert_eq!(error.status(), Status::BadRequest);
    }

    #[test]
    fn key_not_decoding_to_16_bytes_is_400() {
        for key in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",       // unpadded
            "dGhlIHNhbXBsZSBub25jZQ==AAAA", // 19 bytes
            "AAAAAAAAAAAAAAAAAAAAAAAA",     // 24 chars, but 18 bytes
            "dGhlIHNhbXBsZSBub25jZQ!=",     // not base64
            "dGhlIHNhbXBsZSBub25jZR==",     // non-canonical trailing bits
        ] {
            let extra = format!("Sec-WebSocket-Key: {key}\r\n");
            let error = parse(&minimal(&extra, &["Key"])).unwrap_err();
            assert_eq!(error, HandshakeError::BadKey, "{key:?}");
            assert_eq!(error.status(), Status::BadRequest);
        }
    }

    #[test]
    fn missing_version_is_400() {
        let error = parse(&minimal("", &["Version"])).unwrap_err();
        assert_eq!(error, HandshakeError::MissingVersion);
        assert_eq!(error.status(), Status::BadRequest);
    }

    #[test]
    fn other_version_is_426() {
        let error = parse(&minimal("Sec-WebSocket-Version: 8\r\n", &["Version"])).unwrap_err();
        assert_eq!(
            error,
            HandshakeError::UnsupportedVersion {
                version: "8".to_owned()
            }
        );
        assert_eq!(error.status(), Status::UpgradeRequired);
    }

    #[test]
    fn version_is_checked_before_the_key() {
        let request = minimal("Sec-WebSocket-Version: 8\r\n", &["Version", "Key"]);
        assert!(matches!(
            parse(&request),
            Err(HandshakeError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let request = b"GET / HTTP/1.1\r\nHOST: h\r\nupgrade: websocket\r\nCONNECTION: upgrade\r\n\
            sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n\
            cookie: a=1\r\nORIGIN: null\r\n\r\n";
        let parsed = parse_done(request);
        assert_eq!(parsed.host, "h");
        assert_eq!(parsed.origin.as_deref(), Some("null"));
        assert_eq!(parsed.cookies, b"a=1".to_vec());
    }

    #[test]
    fn several_cookie_headers_are_joined_in_order() {
        let request = minimal("Cookie: a=1; b=2\r\nX-Other: y\r\nCookie: c=3\r\n", &[]);
        assert_eq!(parse_done(&request).cookies, b"a=1; b=2; c=3".to_vec());
        assert_eq!(parse_done(&minimal("", &[])).cookies, Vec::<u8>::new());
    }

    #[test]
    fn protocols_come_from_every_header_trimmed() {
        let request = minimal(
            "Sec-WebSocket-Protocol: wamp.2.json ,chat\r\nSec-WebSocket-Protocol: , x\r\n",
            &[],
        );
        assert_eq!(parse_done(&request).protocols, ["wamp.2.json", "chat", "x"]);
    }

    #[test]
    fn every_error_maps_to_its_status() {
        let cases = [
            (HandshakeError::Malformed { detail: "x" }, 400),
            (HandshakeError::TooLarge { max: 1 }, 431),
            (HandshakeError::TooManyHeaders, 431),
            (
                HandshakeError::NotGet {
                    method: "PUT".to_owned(),
                },
                400,
            ),
            (HandshakeError::HttpVersion, 400),
            (HandshakeError::MissingHost, 400),
            (HandshakeError::DuplicateHeader { name: "Host" }, 400),
            (HandshakeError::NotWebSocketUpgrade, 400),
            (HandshakeError::MissingConnectionUpgrade, 400),
            (HandshakeError::MissingKey, 400),
            (HandshakeError::BadKey, 400),
            (HandshakeError::MissingVersion, 400),
            (
                HandshakeError::UnsupportedVersion {
                    version: "7".to_owned(),
                },
                426,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.status().code(), code, "{error}");
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn accept_response_is_the_rfc_101() {
        assert_eq!(
            accept_response("dGhlIHNhbXBsZSBub25jZQ==", None, None),
            b"HTTP/1.1 101 Switching Protocols\r\n\
              Upgrade: websocket\r\n\
              Connection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              \r\n"
                .to_vec()
        );
        assert_eq!(
            accept_response("dGhlIHNhbXBsZSBub25jZQ==", Some("wamp.2.json"), None),
            b"HTTP/1.1 101 Switching Protocols\r\n\
              Upgrade: websocket\r\n\
              Connection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Protocol: wamp.2.json\r\n\
              \r\n"
                .to_vec()
        );
    }

    #[test]
    fn refusal_426_names_version_13() {
        assert_eq!(
            refusal_response(
                Status::UpgradeRequired,
                None,
                "Sec-WebSocket-Version \"8\" is not 13"
            ),
            b"HTTP/1.1 426 Upgrade Required\r\n\
              Connection: close\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 57\r\n\
              Sec-WebSocket-Version: 13\r\n\
              \r\n\
              426 Upgrade Required\n\
              Sec-WebSocket-Version \"8\" is not 13\n"
                .to_vec()
        );
    }

    #[test]
    fn refusal_429_carries_retry_after() {
        assert_eq!(
            refusal_response(Status::TooManyRequests, Some(30), "token already connected"),
            b"HTTP/1.1 429 Too Many Requests\r\n\
              Connection: close\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 46\r\n\
              Retry-After: 30\r\n\
              \r\n\
              429 Too Many Requests\n\
              token already connected\n"
                .to_vec()
        );
    }

    #[test]
    fn a_denial_carries_its_status_phrase_and_text() {
        let response = denial_response(451, "gone fishing: é");
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut parsed = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head_len) = parsed.parse(&response).unwrap() else {
            panic!("incomplete");
        };
        assert_eq!(parsed.code, Some(451));
        assert_eq!(parsed.reason, Some("Unavailable For Legal Reasons"));
        let body = &response[head_len..];
        assert_eq!(
            body,
            "451 Unavailable For Legal Reasons\ngone fishing: é\n".as_bytes()
        );
        let length = parsed
            .headers
            .iter()
            .find(|h| h.name == "Content-Length")
            .map(|h| {
                std::str::from_utf8(h.value)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            });
        assert_eq!(length, Some(body.len()));
        assert!(denial_response(499, "").starts_with(b"HTTP/1.1 499 Client Error\r\n"));
        assert!(denial_response(599, "").starts_with(b"HTTP/1.1 599 Server Error\r\n"));
    }

    #[test]
    fn every_refusal_is_a_complete_response_with_matching_length() {
        let statuses = [
            (Status::BadRequest, 400, "Bad Request"),
            (Status::Forbidden, 403, "Forbidden"),
            (Status::UpgradeRequired, 426, "Upgrade Required"),
            (Status::TooManyRequests, 429, "Too Many Requests"),
            (
                Status::HeaderFieldsTooLarge,
                431,
                "Request Header Fields Too Large",
            ),
            (Status::ServiceUnavailable, 503, "Service Unavailable"),
        ];
        for (status, code, reason) in statuses {
            assert_eq!((status.code(), status.reason()), (code, reason));
            let response = refusal_response(status, None, "why\r\nSet-Cookie: x");
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut parsed = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(head_len) = parsed.parse(&response).unwrap() else {
                panic!("incomplete response for {code}");
            };
            assert_eq!(parsed.code, Some(code));
            assert_eq!(parsed.reason, Some(reason));
            let length = parsed
                .headers
                .iter()
                .find(|h| h.name == "Content-Length")
                .map(|h| {
                    std::str::from_utf8(h.value)
                        .unwrap()
                        .parse::<usize>()
                        .unwrap()
                });
            assert_eq!(length, Some(response.len() - head_len));
            assert_eq!(
                &response[head_len..],
                format!("{code} {reason}\nwhy  Set-Cookie: x\n").as_bytes()
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_prefixes_agree(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            cut in any::<prop::sample::Index>(),
        ) {
            let whole = parse_request(&bytes, 256);
            let cut = cut.index(bytes.len() + 1);
            if let Ok(Decoded::Done { len, .. }) = &parse_request(&bytes[..cut], 256) {
                // A head complete in a prefix is the same head in the whole input.
                prop_assert!(*len <= cut);
                prop_assert_eq!(&parse_request(&bytes[..cut], 256), &whole);
            }
        }

        #[test]
        fn anything_after_a_complete_head_does_not_change_it(
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut buf = CHROMIUM.to_vec();
            buf.extend_from_slice(&tail);
            prop_assert_eq!(
                parse(&buf),
                Ok(Decoded::Done { item: chromium_request(), len: CHROMIUM.len() })
            );
        }
    }
}
