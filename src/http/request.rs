//! An HTTP/1.1 request head, parsed from `&[u8]` with httparse into the few owned fields the
//! API needs (sans-IO: the connection owns the buffer and the socket).
//!
//! Only `Content-Length` bodies are read: a `Transfer-Encoding` (chunked) request is refused
//! with 411, as RFC 9112 §6.3 allows a server that does not take it. Every bound is checked
//! before waiting for more bytes: a head longer than `max_header_size` is an error as soon as
//! that many bytes arrived without its end, and a `Content-Length` over `max_body_size` is an
//! error once the head is complete, before a byte of the body is read.

use crate::decoded::Decoded;

/// Most headers one request may have; more is 431.
pub const MAX_HEADERS: usize = 64;

/// The bounds of one request, from `[http]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_header_size: usize,
    pub max_body_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    /// Any other token (`PUT`, `DELETE`, ...): routed to 405.
    Other,
}

/// What the body claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// No `Content-Type` header: taken as JSON.
    Missing,
    Json,
    Other,
}

/// A complete request head: what routing, auth and the body need, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: Method,
    /// The path without its query string.
    pub path: String,
    /// Whether the connection stays open after the response (RFC 9112 §9.3).
    pub keep_alive: bool,
    pub content_length: usize,
    pub content_type: ContentType,
    /// `Expect: 100-continue`: the client waits for `100 Continue` before the body.
    pub expect_continue: bool,
    /// The key from `Authorization: Bearer KEY` or `X-API-Key: KEY`.
    pub api_key: Option<Vec<u8>>,
}

/// Why a request cannot be read; each maps to one HTTP status, and the connection closes
/// after the response (what follows in the stream cannot be trusted to start a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// 400: httparse refused the head.
    Malformed { detail: &'static str },
    /// 400: a `Content-Length` that is not one decimal number, or two that differ.
    BadContentLength,
    /// 431: the head is longer than `max` bytes.
    HeadTooLarge { max: usize },
    /// 431: more than `MAX_HEADERS` headers.
    TooManyHeaders,
    /// 411: a `Transfer-Encoding` body (chunked), which this server does not read.
    LengthRequired,
    /// 413: the body is declared longer than `max` bytes.
    BodyTooLarge { len: u64, max: usize },
}

impl RequestError {
    /// The HTTP status and the `error.code` of the response.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            RequestError::Malformed { .. } | RequestError::BadContentLength => (400, "bad_request"),
            RequestError::HeadTooLarge { .. } | RequestError::TooManyHeaders => {
                (431, "headers_too_large")
            }
            RequestError::LengthRequired => (411, "length_required"),
            RequestError::BodyTooLarge { .. } => (413, "payload_too_large"),
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Malformed { detail } => write!(f, "malformed HTTP request: {detail}"),
            RequestError::BadContentLength => {
                f.write_str("Content-Length is not one decimal number")
            }
            RequestError::HeadTooLarge { max } => {
                write!(f, "request line and headers over {max} bytes")
            }
            RequestError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} headers"),
            RequestError::LengthRequired => f.write_str(
                "Transfer-Encoding is not supported: send the body with a Content-Length",
            ),
            RequestError::BodyTooLarge { len, max } => {
                write!(f, "body of {len} bytes, over max_request_size ({max})")
            }
        }
    }
}

/// Parses the head at the start of `buf`. `Done { len }` counts the head's bytes only; the
/// body, `content_length` bytes, follows.
pub fn parse_head(buf: &[u8], limits: Limits) -> Result<Decoded<Head>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let status = request.parse(buf).map_err(|error| match error {
        httparse::Error::TooManyHeaders => RequestError::TooManyHeaders,
        httparse::Error::HeaderName => RequestError::Malformed {
            detail: "invalid header name",
        },
        httparse::Error::HeaderValue => RequestError::Malformed {
            detail: "invalid header value",
        },
        httparse::Error::NewLine => RequestError::Malformed {
            detail: "invalid line ending",
        },
        httparse::Error::Status => RequestError::Malformed {
            detail: "invalid status",
        },
        httparse::Error::Token => RequestError::Malformed {
            detail: "invalid method or request target",
        },
        httparse::Error::Version => RequestError::Malformed {
            detail: "not HTTP/1.0 or HTTP/1.1",
        },
    });
    let len = match status {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_header_size => {
            return Err(RequestError::HeadTooLarge {
                max: limits.max_header_size,
            });
        }
        Ok(httparse::Status::Partial) => return Ok(Decoded::Incomplete),
        Err(error) => return Err(error),
    };
    if len > limits.max_header_size {
        return Err(RequestError::HeadTooLarge {
            max: limits.max_header_size,
        });
    }
    let method = match request.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("POST") => Method::Post,
        _ => Method::Other,
    };
    let target = request.path.unwrap_or("/");
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    // httparse reads `HTTP/1.x` only: 0 or 1.
    let http_11 = request.version == Some(1);
    let mut head = Head {
        method,
        path: path.to_owned(),
        keep_alive: http_11,
        content_length: 0,
        content_type: ContentType::Missing,
        expect_continue: false,
        api_key: None,
    };
    let mut content_length: Option<u64> = None;
    for header in request.headers.iter() {
        let name = header.name;
        let value = header.value.trim_ascii();
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = parse_decimal(value).ok_or(RequestError::BadContentLength)?;
            // RFC 9112 §6.3: differing Content-Length values are unrecoverable.
            if content_length.is_some_and(|seen| seen != parsed) {
                return Err(RequestError::BadContentLength);
            }
            content_length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(RequestError::LengthRequired);
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(|byte| *byte == b',') {
                let option = option.trim_ascii();
                if option.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            let media = value.split(|byte| *byte == b';').next().unwrap_or(b"");
            head.content_type = if media.trim_ascii().eq_ignore_ascii_case(b"application/json") {
                ContentType::Json
            } else {
                ContentType::Other
            };
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("authorization") {
            if let Some(key) = bearer(value) {
                head.api_key = Some(key.to_vec());
            }
        } else if name.eq_ignore_ascii_case("x-api-key") {
            head.api_key = Some(value.to_vec());
        }
    }
    let declared = content_length.unwrap_or(0);
    let max = u64::try_from(limits.max_body_size).unwrap_or(u64::MAX);
    if declared > max {
        return Err(RequestError::BodyTooLarge {
            len: declared,
            max: limits.max_body_size,
        });
    }
    head.content_length = usize::try_from(declared).map_err(|_| RequestError::BodyTooLarge {
        len: declared,
        max: limits.max_body_size,
    })?;
    Ok(Decoded::Done { item: head, len })
}

/// `Bearer KEY` (the scheme is case-insensitive, RFC 9110 §11.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| value.get(7..).unwrap_or(b"").trim_ascii())
}

/// 1 to 19 ASCII digits (a `u64` that cannot overflow).
fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0u64, |value, digit| {
        value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// Compares a presented key with the configured one in time that does not depend on where
/// they differ (only on the presented key's length).
pub fn key_matches(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    presented
        .iter()
        .zip(expected)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_header_size: 1024,
        max_body_size: 100,
    };

    fn head(bytes: &[u8]) -> Result<Decoded<Head>, RequestError> {
        parse_head(bytes, LIMITS)
    }

    fn done(bytes: &[u8]) -> (Head, usize) {
        match head(bytes) {
            Ok(Decoded::Done { item, len }) => (item, len),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_post_with_a_body_gives_its_fields() {
        let bytes = b"POST /api/send?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\nAuthorization: bearer  k1 \r\n\r\n{}";
        let (head, len) = done(bytes);
        assert_eq!(len, bytes.len() - 2);
        assert_eq!(head.method, Method::Post);
        assert_eq!(head.path, "/api/send");
        assert!(head.keep_alive);
        assert_eq!(head.content_length, 2);
        assert_eq!(head.content_type, ContentType::Json);
        assert_eq!(head.api_key.as_deref(), Some(&b"k1"[..]));
        assert!(!head.expect_continue);
    }

    #[test]
    fn every_split_is_incomplete_until_the_blank_line() {
        let bytes = b"GET /health HTTP/1.1\r\nX-API-Key: abc\r\n\r\n";
        for cut in 0..bytes.len() {
            assert_eq!(head(&bytes[..cut]), Ok(Decoded::Incomplete), "cut {cut}");
        }
        let (head, _) = done(bytes);
        assert_eq!(head.api_key.as_deref(), Some(&b"abc"[..]));
        assert_eq!(head.content_type, ContentType::Missing);
    }

    #[test]
    fn http_10_closes_unless_asked_and_connection_close_closes() {
        assert!(!done(b"GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(
            done(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .0
                .keep_alive
        );
        assert!(
            !done(b"GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n")
                .0
                .keep_alive
        );
    }

    #[test]
    fn chunked_is_411() {
        let bytes = b"POST /api/b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(head(bytes), Err(RequestError::LengthRequired));
        assert_eq!(RequestError::LengthRequired.status_and_code().0, 411);
    }

    #[test]
    fn a_declared_body_over_the_limit_is_413_before_it_arrives() {
        let bytes = b"POST /api/b HTTP/1.1\r\nContent-Length: 99999999999999999\r\n\r\n";
        assert_eq!(
            head(bytes),
            Err(RequestError::BodyTooLarge {
                len: 99_999_999_999_999_999,
                max: 100
            })
        );
    }

    #[test]
    fn bad_or_differing_lengths_are_400() {
        for bytes in [
            &b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert_eq!(head(bytes), Err(RequestError::BadContentLength));
        }
    }

    #[test]
    fn a_head_over_the_limit_is_431_without_its_end() {
        let mut bytes = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        bytes.resize(1025, b'a');
        assert_eq!(head(&bytes), Err(RequestError::HeadTooLarge { max: 1024 }));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"A: b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(head(&many), Err(RequestError::TooManyHeaders));
    }

    #[test]
    fn garbage_is_400() {
        assert!(matches!(
            head(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            Err(RequestError::Malformed { .. })
        ));
        assert!(matches!(
            head(b"GET / HTTP/2.0\r\n\r\n"),
            Err(RequestError::Malformed { .. })
        ));
    }

    #[test]
    fn expect_continue_and_other_methods() {
        let (head, _) = done(b"PUT /api/x HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n");
        assert_eq!(head.method, Method::Other);
        assert!(head.expect_continue);
    }

    #[test]
    fn keys_match_only_when_equal() {
        assert!(key_matches(b"abc", b"abc"));
        assert!(!key_matches(b"abd", b"abc"));
        assert!(!key_matches(b"ab", b"abc"));
        assert!(!key_matches(b"", b"abc"));
    }
}
