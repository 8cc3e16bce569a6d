//! Response bytes: a status line, the few headers the API sends, a body with its length.

use std::io::Write;

/// What the client of `Expect: 100-continue` waits for before sending the body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

pub const JSON: &str = "application/json";
/// Prometheus text exposition format 0.0.4.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The reason phrase of each status the API sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// One response.
pub struct Response<'a> {
    pub status: u16,
    pub content_type: &'static str,
    pub body: &'a [u8],
    /// Extra headers (`Allow`, `WWW-Authenticate`), name and value.
    pub headers: &'a [(&'static str, &'a str)],
    pub keep_alive: bool,
    /// HEAD: the headers of the GET, no body.
    pub head_only: bool,
}

impl Response<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if self.keep_alive {
                "keep-alive"
            } else {
                "close"
            },
        );
        for (name, value) in self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !self.head_only {
            out.extend_from_slice(self.body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_has_its_length_and_connection() {
        let mut out = Vec::new();
        Response {
            status: 405,
            content_type: JSON,
            body: b"{}",
            headers: &[("Allow", "POST")],
            keep_alive: false,
            head_only: false,
        }
        .encode(&mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 2\r\nCache-Control: no-store\r\nConnection: close\r\nAllow: POST\r\n\r\n{}"
        );
    }
}
