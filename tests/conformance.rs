//! RFC 6455 conformance suite: a table of named cases, each speaking raw bytes to the
//! real server (started with `client_messages = "echo"`) over a fresh TCP connection, in
//! the spirit of the Autobahn|Testsuite case groups.
//!
//! Run only this suite, with its per-case lines and summaries:
//!
//! ```text
//! cargo test --test main conformance -- --nocapture
//! ```
//!
//! Each `#[test]` below runs one group against its own server, prints a line per case and
//! then `conformance: N cases run, N passed`, and fails listing every failed case id and
//! what differed. Case ids follow the Autobahn group numbers:
//!
//! | group          | ids   | Autobahn | RFC 6455                                    |
//! |----------------|-------|----------|---------------------------------------------|
//! | handshake      | 0.x   | (none)   | §4.1, §4.2.1, §4.2.2 (the §1.3 sample key)  |
//! | framing        | 1.x   | 1        | §5.1 masking, §5.2 lengths, §5.3, §5.6      |
//! | pings          | 2.x   | 2, 5.1-2 | §5.5 control frames, §5.5.2 ping, §5.5.3    |
//! | reserved bits  | 3.x   | 3        | §5.2 RSV1-3                                 |
//! | opcodes        | 4.x   | 4        | §5.2 reserved opcodes, §10.7                |
//! | fragmentation  | 5.x   | 5        | §5.4                                        |
//! | utf8           | 6.x   | 6        | §5.6, §8.1 (fail fast)                      |
//! | close          | 7.x   | 7        | §5.5.1, §7.1, §7.4                          |
//! | limits         | 9.x   | 9        | §10.4, §7.4.1 (1009)                        |
//! | deflate        | D.x   | (12, 13) | RFC 7692 §6, §7.2: RSV1, inflate, limits    |
//!
//! The deflate group checks RFC 7692's rules with hand-made frames; Autobahn's 12.* and
//! 13.* (many messages through a real compressing client) are in `tests/deflate.rs`.
//!
//! A case is `steps` (frames built here, independently of the server's codec, so reserved
//! bits, reserved opcodes, unmasked and non-minimal frames can be sent) followed by
//! `expect`, matched in order against what the server sends back. Every expectation takes
//! the very next frame, so "no response" needs no timer: a pong to an unsolicited pong, or
//! an echo of data sent after a Close, would arrive instead of the expected frame and fail
//! the case. A step that cannot be written because the server already failed the
//! connection is not an error in itself; the expectations decide. A fail-fast case simply
//! ends its steps early: its Close must arrive while the rest of the message was never sent.
//!
//! Where Autobahn lets a server either echo the valid frames sent before a bad one or not,
//! these cases expect the echo: this server handles frames strictly in order, so the
//! expectation is exact. The limits group runs with `max_message_size = 65536`
//! (`MAX_MESSAGE`); the others with the default 1 MiB, so 65536-byte frames are echoed.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::tls::Pki;
use crate::common::{Cookies, Duplex, ORIGIN, Server, Setup, WAIT, request};

// ---------------------------------------------------------------------------------------
// The case table's vocabulary.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Handshake,
    Framing,
    Pings,
    ReservedBits,
    Opcodes,
    Fragmentation,
    Utf8,
    Close,
    Limits,
    Deflate,
}

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// The masking key of every client frame unless a case picks another.
const MASK: [u8; 4] = [0x9d, 0x3b, 0x64, 0xe1];

/// One frame as a client sends it; `opcode` is the raw nibble, so reserved ones fit.
#[derive(Debug, Clone)]
struct Frame {
    fin: bool,
    /// RSV1-3 as the three bits 0b100 (RSV1), 0b010 (RSV2), 0b001 (RSV3).
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Step {
    /// One frame, written with one `write`.
    SendFrame(Frame),
    SendRaw(Vec<u8>),
    /// Written `chunk_size` bytes per `write` (TCP_NODELAY is on).
    SendChunked {
        bytes: Vec<u8>,
        chunk_size: usize,
    },
    /// Lets the previous bytes go out as their own segment. Never needed for a case to pass;
    /// it only makes the server more likely to see a separate read.
    Pause(Duration),
}

#[derive(Debug, Clone)]
enum Expect {
    /// The HTTP response head (handshake cases): status and headers, values compared
    /// ASCII case-insensitively as RFC 6455 §4.2.2 treats them.
    Http {
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
    },
    /// The next message (frames up to FIN, no control frame in between) is this one
    /// (inflated, if the server compressed it).
    Echo { opcode: u8, payload: Vec<u8> },
    /// As `Echo`, and the server compressed it (RSV1 on its first frame).
    CompressedEcho { opcode: u8, payload: Vec<u8> },
    /// The next frame is a Pong with this payload.
    Pong(Vec<u8>),
    /// The next frame is a Close whose status is one of these (`None`: empty payload);
    /// its reason, if any, must be UTF-8 and the payload at most 125 bytes.
    Close(Vec<Option<u16>>),
    /// The server closes the TCP connection without sending anything more.
    TcpClosed,
}

/// How a case's connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connect {
    /// Upgraded with fresh valid cookies before the steps run.
    Upgraded,
    /// A bare TCP connection: the steps send the HTTP request themselves.
    Raw,
    /// Upgraded offering permessage-deflate with these parameters; the 101 must accept it.
    Deflate(&'static str),
}

#[derive(Debug, Clone)]
struct Case {
    id: String,
    group: Group,
    description: String,
    connect: Connect,
    steps: Vec<Step>,
    expect: Vec<Expect>,
}

fn case(group: Group, id: &str, description: &str, steps: Vec<Step>, expect: Vec<Expect>) -> Case {
    Case {
        id: id.to_string(),
        group,
        description: description.to_string(),
        connect: Connect::Upgraded,
        steps,
        expect,
    }
}

// ---------------------------------------------------------------------------------------
// Builders that keep the tables short.

fn frame(opcode: u8, payload: impl Into<Vec<u8>>) -> Frame {
    Frame {
        fin: true,
        rsv: 0,
        opcode,
        mask: Some(MASK),
        payload: payload.into(),
    }
}

fn text(payload: impl Into<Vec<u8>>) -> Frame {
    frame(TEXT, payload)
}

fn binary(payload: impl Into<Vec<u8>>) -> Frame {
    frame(BINARY, payload)
}

fn cont(payload: impl Into<Vec<u8>>) -> Frame {
    frame(CONTINUATION, payload)
}

fn ping(payload: impl Into<Vec<u8>>) -> Frame {
    frame(PING, payload)
}

fn pong(payload: impl Into<Vec<u8>>) -> Frame {
    frame(PONG, payload)
}

fn close_frame(code: u16, reason: &[u8]) -> Frame {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    frame(CLOSE, payload)
}

impl Frame {
    fn fin(mut self, fin: bool) -> Frame {
        self.fin = fin;
        self
    }

    fn rsv(mut self, rsv: u8) -> Frame {
        self.rsv = rsv;
        self
    }

    fn unmasked(mut self) -> Frame {
        self.mask = None;
        self
    }

    fn mask(mut self, mask: [u8; 4]) -> Frame {
        self.mask = Some(mask);
        self
    }

    /// The header alone (with the minimal length encoding, RFC 6455 §5.2).
    fn header(&self) -> Vec<u8> {
        let b0 = (u8::from(self.fin) << 7) | ((self.rsv & 0b111) << 4) | (self.opcode & 0x0F);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut out = vec![b0];
        let len = self.payload.len();
        if len <= 125 {
            out.push(mask_bit | len as u8);
        } else if len <= 0xFFFF {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        if let Some(mask) = self.mask {
            out.extend_from_slice(&mask);
        }
        out
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.header();
        let mask = self.mask.unwrap_or([0; 4]);
        out.extend(
            self.payload
                .iter()
                .enumerate()
                .map(|(i, byte)| byte ^ mask[i % 4]),
        );
        out
    }
}

fn send(frame: Frame) -> Step {
    Step::SendFrame(frame)
}

/// All frames encoded back to back, for one write.
fn send_all(frames: &[Frame]) -> Step {
    Step::SendRaw(frames.iter().flat_map(Frame::encode).collect())
}

fn chunked(frames: &[Frame], chunk_size: usize) -> Step {
    Step::SendChunked {
        bytes: frames.iter().flat_map(Frame::encode).collect(),
        chunk_size,
    }
}

fn pause() -> Step {
    Step::Pause(Duration::from_millis(10))
}

fn echo_text(payload: impl Into<Vec<u8>>) -> Expect {
    Expect::Echo {
        opcode: TEXT,
        payload: payload.into(),
    }
}

fn echo_binary(payload: impl Into<Vec<u8>>) -> Expect {
    Expect::Echo {
        opcode: BINARY,
        payload: payload.into(),
    }
}

fn echo_of(frame: &Frame) -> Expect {
    Expect::Echo {
        opcode: frame.opcode,
        payload: frame.payload.clone(),
    }
}

fn expect_pong(payload: impl Into<Vec<u8>>) -> Expect {
    Expect::Pong(payload.into())
}

/// The server fails the connection: its Close with `code`, then the TCP close.
fn fails(code: u16) -> Vec<Expect> {
    vec![Expect::Close(vec![Some(code)]), Expect::TcpClosed]
}

/// `before` expectations, then the failure with `code`.
fn then_fails(mut before: Vec<Expect>, code: u16) -> Vec<Expect> {
    before.extend(fails(code));
    before
}

/// Printable ASCII of `len` bytes, so a text payload is valid UTF-8 whatever its length.
fn ascii(len: usize) -> Vec<u8> {
    (0..len).map(|i| b' ' + (i % 95) as u8).collect()
}

/// Every byte value, for binary payloads.
fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

fn unhex(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// "κόσμε", the UTF-8 sample of Markus Kuhn's test file used by Autobahn group 6.
const KOSME: &str = "cebae1bdb9cf83cebcceb5";

// ---------------------------------------------------------------------------------------
// The cases, one function per group.

fn handshake_cases() -> Vec<Case> {
    let g = Group::Handshake;
    let accept = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        // RFC 6455 §1.3: the key "dGhlIHNhbXBsZSBub25jZQ==" gives this accept value.
        ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    ];
    let plain = request(
        "localhost",
        &Cookies::fresh("conformance").header,
        Some(ORIGIN),
        "",
    );
    let mut with_frame = request(
        "localhost",
        &Cookies::fresh("conformance").header,
        Some(ORIGIN),
        "",
    )
    .into_bytes();
    with_frame.extend(text("right behind the request").encode());
    // RFC 6455 §4.2.1: header names and the Upgrade value are case-insensitive, and
    // Connection is a token list (Firefox sends "keep-alive, Upgrade").
    let cookies = Cookies::fresh("conformance");
    let variant = format!(
        "GET /ws HTTP/1.1\r\nhost: localhost\r\nupgrade: WebSocket\r\n\
         connection: keep-alive, Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         sec-websocket-version: 13\r\norigin: {ORIGIN}\r\ncookie: {}\r\n\r\n",
        cookies.header
    );
    let chunked_request = request(
        "localhost",
        &Cookies::fresh("conformance").header,
        Some(ORIGIN),
        "",
    );
    let mut cases = vec![
        case(
            g,
            "0.1",
            "RFC sample key: 101 with Upgrade, Connection and the §1.3 accept value",
            vec![Step::SendRaw(plain.into_bytes())],
            vec![Expect::Http {
                status: 101,
                headers: accept.clone(),
            }],
        ),
        case(
            g,
            "0.2",
            "a frame in the same write as the request is echoed after the 101",
            vec![Step::SendRaw(with_frame)],
            vec![
                Expect::Http {
                    status: 101,
                    headers: accept.clone(),
                },
                echo_text("right behind the request"),
            ],
        ),
        case(
            g,
            "0.3",
            "lowercase header names, mixed-case Upgrade value, Connection token list",
            vec![
                Step::SendRaw(variant.into_bytes()),
                send(text("after a lenient request")),
            ],
            vec![
                Expect::Http {
                    status: 101,
                    headers: accept.clone(),
                },
                echo_text("after a lenient request"),
            ],
        ),
        case(
            g,
            "0.4",
            "request sent in chunks of 1 byte",
            vec![Step::SendChunked {
                bytes: chunked_request.into_bytes(),
                chunk_size: 1,
            }],
            vec![Expect::Http {
                status: 101,
                headers: accept,
            }],
        ),
    ];
    for case in &mut cases {
        case.connect = Connect::Raw;
    }
    cases
}

const LENGTHS: [usize; 7] = [0, 125, 126, 127, 128, 65535, 65536];

fn framing_cases() -> Vec<Case> {
    let g = Group::Framing;
    let mut cases = Vec::new();
    for (sub, opcode, name) in [(1, TEXT, "text"), (2, BINARY, "binary")] {
        let payload = |len| {
            if opcode == TEXT {
                ascii(len)
            } else {
                bytes(len)
            }
        };
        for (i, len) in LENGTHS.into_iter().enumerate() {
            let f = frame(opcode, payload(len));
            cases.push(case(
                g,
                &format!("1.{sub}.{}", i + 1),
                &format!("{name}, {len} bytes, echoed exactly"),
                vec![send(f.clone())],
                vec![echo_of(&f)],
            ));
        }
        let f = frame(opcode, payload(65536));
        cases.push(case(
            g,
            &format!("1.{sub}.8"),
            &format!("{name}, 65536 bytes in chunks of 997"),
            vec![chunked(std::slice::from_ref(&f), 997)],
            vec![echo_of(&f)],
        ));
        // The same lengths with every byte in its own write.
        for (i, len) in LENGTHS.into_iter().enumerate() {
            let f = frame(opcode, payload(len));
            cases.push(case(
                g,
                &format!("1.{}.{}", sub + 2, i + 1),
                &format!("{name}, {len} bytes, sent in chunks of 1 byte"),
                vec![chunked(std::slice::from_ref(&f), 1)],
                vec![echo_of(&f)],
            ));
        }
    }
    let several = [
        text("one"),
        binary(vec![0, 1, 2, 0xFE, 0xFF]),
        text(""),
        ping("between"),
        binary(bytes(300)),
        text(ascii(70_000)),
    ];
    cases.push(case(
        g,
        "1.5.1",
        "six frames of mixed kinds and lengths in one write, answered in order",
        vec![send_all(&several)],
        vec![
            echo_text("one"),
            echo_binary(vec![0, 1, 2, 0xFE, 0xFF]),
            echo_text(""),
            expect_pong("between"),
            echo_binary(bytes(300)),
            echo_text(ascii(70_000)),
        ],
    ));
    let many: Vec<Frame> = (0..50).map(|i| binary(bytes(i * 37))).collect();
    cases.push(case(
        g,
        "1.5.2",
        "50 frames in one write, echoed in order",
        vec![send_all(&many)],
        many.iter().map(echo_of).collect(),
    ));
    cases.push(case(
        g,
        "1.5.3",
        "50 frames in chunks of 7 bytes, echoed in order",
        vec![chunked(&many, 7)],
        many.iter().map(echo_of).collect(),
    ));
    // RFC 6455 §5.1: "The server MUST close the connection upon receiving a frame that is
    // not masked. In this case, a server MAY send a Close frame with a status code of 1002".
    cases.push(case(
        g,
        "1.6.1",
        "unmasked text frame: 1002",
        vec![send(text("no mask").unmasked())],
        fails(1002),
    ));
    cases.push(case(
        g,
        "1.6.2",
        "unmasked ping: 1002, no pong",
        vec![send(ping("no mask").unmasked())],
        fails(1002),
    ));
    cases.push(case(
        g,
        "1.6.3",
        "valid text, then an unmasked one: echo, then 1002",
        vec![send_all(&[text("masked"), text("unmasked").unmasked()])],
        then_fails(vec![echo_text("masked")], 1002),
    ));
    cases.push(case(
        g,
        "1.6.4",
        "unmasked empty close: 1002",
        vec![send(frame(CLOSE, vec![]).unmasked())],
        fails(1002),
    ));
    let zero = text("zero key").mask([0; 4]);
    cases.push(case(
        g,
        "1.7.1",
        "an all-zero masking key is a valid key",
        vec![send(zero.clone())],
        vec![echo_of(&zero)],
    ));
    let keys: Vec<Frame> = (0u8..8)
        .map(|i| binary(bytes(13)).mask([i, i.wrapping_mul(31), 0xFF - i, 0x80 | i]))
        .collect();
    cases.push(case(
        g,
        "1.7.2",
        "a different masking key on every frame",
        vec![send_all(&keys)],
        keys.iter().map(echo_of).collect(),
    ));
    // RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length".
    let mut non_minimal_16 = vec![0x81, 0x80 | 126, 0, 5];
    non_minimal_16.extend_from_slice(&MASK);
    non_minimal_16.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    cases.push(case(
        g,
        "1.8.1",
        "5-byte text with a 16-bit length: 1002",
        vec![Step::SendRaw(non_minimal_16)],
        fails(1002),
    ));
    let mut non_minimal_64 = vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0x01, 0x00];
    non_minimal_64.extend_from_slice(&MASK);
    non_minimal_64.extend(vec![0x55; 256]);
    cases.push(case(
        g,
        "1.8.2",
        "256-byte binary with a 64-bit length: 1002",
        vec![Step::SendRaw(non_minimal_64)],
        fails(1002),
    ));
    // "the most significant bit MUST be 0": refused from the first length byte on.
    cases.push(case(
        g,
        "1.8.3",
        "64-bit length with the top bit set (header only): 1002",
        vec![Step::SendRaw(vec![
            0x82,
            0x80 | 127,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
        ])],
        fails(1002),
    ));
    cases
}

fn ping_cases() -> Vec<Case> {
    let g = Group::Pings;
    let binary_payload = vec![0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF];
    let ten: Vec<Frame> = (0..10).map(|i| ping(format!("ping {i}"))).collect();
    let ten_pongs: Vec<Expect> = (0..10).map(|i| expect_pong(format!("ping {i}"))).collect();
    vec![
        // RFC 6455 §5.5.3: "A Pong frame sent in response to a Ping frame must have
        // identical "Application data" as found in the message body of the Ping frame".
        case(
            g,
            "2.1",
            "empty ping: empty pong",
            vec![send(ping(""))],
            vec![expect_pong("")],
        ),
        case(
            g,
            "2.2",
            "ping with a text payload: same pong",
            vec![send(ping("Hello, wson!"))],
            vec![expect_pong("Hello, wson!")],
        ),
        case(
            g,
            "2.3",
            "ping with a binary payload: same pong",
            vec![send(ping(binary_payload.clone()))],
            vec![expect_pong(binary_payload)],
        ),
        case(
            g,
            "2.4",
            "ping with 125 bytes: same pong",
            vec![send(ping(bytes(125)))],
            vec![expect_pong(bytes(125))],
        ),
        // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
        case(
            g,
            "2.5",
            "ping with 126 bytes: 1002, no pong",
            vec![send(ping(bytes(126)))],
            fails(1002),
        ),
        case(
            g,
            "2.6",
            "ping with 125 bytes in chunks of 1 byte: same pong",
            vec![chunked(&[ping(bytes(125))], 1)],
            vec![expect_pong(bytes(125))],
        ),
        // §5.5.3: "A Pong frame MAY be sent unsolicited. [...] A response to an unsolicited
        // Pong frame is not expected."
        case(
            g,
            "2.7",
            "unsolicited empty pong is ignored: the next text is the first answer",
            vec![send(pong("")), send(text("after pong"))],
            vec![echo_text("after pong")],
        ),
        case(
            g,
            "2.8",
            "unsolicited pong with payload is ignored",
            vec![send_all(&[pong("unsolicited"), text("after pong")])],
            vec![echo_text("after pong")],
        ),
        case(
            g,
            "2.9",
            "unsolicited pong, then ping: only the ping's pong",
            vec![send_all(&[pong("unsolicited"), ping("solicited")])],
            vec![expect_pong("solicited")],
        ),
        case(
            g,
            "2.10",
            "10 pings in one write: 10 pongs in order",
            vec![send_all(&ten)],
            ten_pongs.clone(),
        ),
        case(
            g,
            "2.11",
            "10 pings in chunks of 1 byte: 10 pongs in order",
            vec![chunked(&ten, 1)],
            ten_pongs,
        ),
        // §5.5: control frames "MUST NOT be fragmented".
        case(
            g,
            "2.12",
            "ping with FIN clear: 1002",
            vec![send(ping("frag").fin(false))],
            fails(1002),
        ),
        case(
            g,
            "2.13",
            "ping fragmented into ping(FIN=0) + continuation: 1002, no pong",
            vec![send_all(&[ping("fragm").fin(false), cont("ented")])],
            fails(1002),
        ),
        case(
            g,
            "2.14",
            "pong fragmented into pong(FIN=0) + continuation: 1002",
            vec![send_all(&[pong("fragm").fin(false), cont("ented")])],
            fails(1002),
        ),
        case(
            g,
            "2.15",
            "ping declaring a 64-bit length (header only): 1002",
            vec![Step::SendRaw(ping(bytes(65536)).header())],
            fails(1002),
        ),
        case(
            g,
            "2.16",
            "ping then text: pong first, then the echo",
            vec![send_all(&[ping("first"), text("second")])],
            vec![expect_pong("first"), echo_text("second")],
        ),
    ]
}

fn reserved_bit_cases() -> Vec<Case> {
    let g = Group::ReservedBits;
    let mut cases = Vec::new();
    // RFC 6455 §5.2: "MUST be 0 unless an extension is negotiated that defines meanings for
    // non-zero values. If a nonzero value is received and none of the negotiated
    // extensions defines the meaning of such a nonzero value, the receiving endpoint MUST
    // _Fail the WebSocket Connection_." No extension is ever negotiated here.
    let kinds: [(&str, Frame); 5] = [
        ("text", text("reserved")),
        ("binary", binary(vec![1, 2, 3])),
        ("ping", ping("reserved")),
        ("pong", pong("reserved")),
        ("close", close_frame(1000, b"")),
    ];
    for (k, (name, bad)) in kinds.iter().enumerate() {
        for rsv in 1u8..=7 {
            let bits: Vec<&str> = [(0b100, "RSV1"), (0b010, "RSV2"), (0b001, "RSV3")]
                .into_iter()
                .filter(|(bit, _)| rsv & bit != 0)
                .map(|(_, name)| name)
                .collect();
            // The valid text before is echoed; the ping after must go unanswered.
            cases.push(case(
                g,
                &format!("3.{}.{rsv}", k + 1),
                &format!(
                    "{name} with {}: echo of the text before, 1002, no pong",
                    bits.join("+")
                ),
                vec![send_all(&[
                    text("before"),
                    bad.clone().rsv(rsv),
                    ping("after"),
                ])],
                then_fails(vec![echo_text("before")], 1002),
            ));
        }
    }
    cases.push(case(
        g,
        "3.6.1",
        "text with RSV1 alone: 1002",
        vec![send(text("alone").rsv(0b100))],
        fails(1002),
    ));
    cases.push(case(
        g,
        "3.6.2",
        "text with RSV2, frame sent in chunks of 1 byte: echo before, 1002",
        vec![chunked(
            &[text("before"), text("bad").rsv(0b010), ping("after")],
            1,
        )],
        then_fails(vec![echo_text("before")], 1002),
    ));
    cases.push(case(
        g,
        "3.6.3",
        "continuation with RSV3 inside a fragmented text: 1002",
        vec![send_all(&[
            text("frag").fin(false),
            cont("ment").rsv(0b001),
        ])],
        fails(1002),
    ));
    cases.push(case(
        g,
        "3.6.4",
        "empty binary with all RSV bits: 1002",
        vec![send(binary(vec![]).rsv(0b111))],
        fails(1002),
    ));
    cases
}

const RESERVED_OPCODES: [u8; 10] = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF];

fn opcode_cases() -> Vec<Case> {
    let g = Group::Opcodes;
    let mut cases = Vec::new();
    // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail
    // the WebSocket Connection_."
    for (i, nibble) in RESERVED_OPCODES.into_iter().enumerate() {
        let kind = if nibble < 0x8 { "data" } else { "control" };
        cases.push(case(
            g,
            &format!("4.1.{}", i + 1),
            &format!("reserved {kind} opcode {nibble:#x}, empty: 1002"),
            vec![send(frame(nibble, vec![]))],
            fails(1002),
        ));
        cases.push(case(
            g,
            &format!("4.2.{}", i + 1),
            &format!("text, reserved opcode {nibble:#x} with payload, ping: echo, 1002, no pong"),
            vec![send_all(&[
                text("before"),
                frame(nibble, "reserved payload"),
                ping("after"),
            ])],
            then_fails(vec![echo_text("before")], 1002),
        ));
        cases.push(case(
            g,
            &format!("4.3.{}", i + 1),
            &format!("reserved opcode {nibble:#x} with FIN clear, in chunks of 1 byte: 1002"),
            vec![chunked(&[frame(nibble, "x").fin(false)], 1)],
            fails(1002),
        ));
    }
    cases.push(case(
        g,
        "4.4.1",
        "reserved opcode 0x3 inside a fragmented text: 1002, no echo",
        vec![send_all(&[
            text("frag").fin(false),
            frame(0x3, "x"),
            cont("ment"),
        ])],
        fails(1002),
    ));
    cases
}

fn fragmentation_cases() -> Vec<Case> {
    let g = Group::Fragmentation;
    let two = [text("Hello, ").fin(false), cont("fragmented world")];
    let many: Vec<Frame> = {
        let message = ascii(1000);
        let pieces: Vec<&[u8]> = message.chunks(37).collect();
        pieces
            .iter()
            .enumerate()
            .map(|(i, piece)| {
                let f = if i == 0 { text(*piece) } else { cont(*piece) };
                f.fin(i + 1 == pieces.len())
            })
            .collect()
    };
    let binary_pieces = [
        binary(bytes(100)).fin(false),
        cont(bytes(300)).fin(false),
        cont(bytes(65_000)).fin(false),
        cont(bytes(1)),
    ];
    let binary_whole: Vec<u8> = binary_pieces
        .iter()
        .flat_map(|f| f.payload.clone())
        .collect();
    vec![
        // RFC 6455 §5.4: a fragmented message is a frame with FIN clear and an opcode other
        // than 0, then continuations, the last with FIN set; the message is their concatenation.
        case(
            g,
            "5.1",
            "text in 2 fragments: one echoed message",
            vec![send_all(&two)],
            vec![echo_text("Hello, fragmented world")],
        ),
        case(
            g,
            "5.2",
            "text in 2 fragments, in separate writes",
            vec![send(two[0].clone()), pause(), send(two[1].clone())],
            vec![echo_text("Hello, fragmented world")],
        ),
        case(
            g,
            "5.3",
            "text in 2 fragments, in chunks of 1 byte",
            vec![chunked(&two, 1)],
            vec![echo_text("Hello, fragmented world")],
        ),
        case(
            g,
            "5.4",
            "text of 1000 bytes in 28 fragments: one message",
            vec![send_all(&many)],
            vec![echo_text(ascii(1000))],
        ),
        case(
            g,
            "5.5",
            "binary in 4 fragments of 100, 300, 65000 and 1 bytes",
            vec![send_all(&binary_pieces)],
            vec![echo_binary(binary_whole)],
        ),
        // §5.4: "Control frames (see Section 5.5) MAY be injected in the middle of a
        // fragmented message."
        case(
            g,
            "5.6",
            "ping between two fragments: pong, then the echo",
            vec![send_all(&[
                text("frag").fin(false),
                ping("interleaved"),
                cont("ment"),
            ])],
            vec![expect_pong("interleaved"), echo_text("fragment")],
        ),
        case(
            g,
            "5.7",
            "ping between fragments, in separate writes",
            vec![
                send(text("frag").fin(false)),
                pause(),
                send(ping("interleaved")),
                pause(),
                send(cont("ment")),
            ],
            vec![expect_pong("interleaved"), echo_text("fragment")],
        ),
        case(
            g,
            "5.8",
            "ping between fragments, in chunks of 1 byte",
            vec![chunked(
                &[text("frag").fin(false), ping("interleaved"), cont("ment")],
                1,
            )],
            vec![expect_pong("interleaved"), echo_text("fragment")],
        ),
        case(
            g,
            "5.9",
            "pings and an unsolicited pong between 4 fragments: 2 pongs, then the echo",
            vec![send_all(&[
                text("f1").fin(false),
                ping("p1"),
                cont("f2").fin(false),
                pong("ignored"),
                cont("f3").fin(false),
                ping("p2"),
                cont("f4"),
            ])],
            vec![expect_pong("p1"), expect_pong("p2"), echo_text("f1f2f3f4")],
        ),
        // §5.4 defines no message that starts with a continuation frame.
        case(
            g,
            "5.10",
            "continuation (FIN set) without a message in progress: 1002",
            vec![send_all(&[cont("orphan"), text("never echoed")])],
            fails(1002),
        ),
        case(
            g,
            "5.11",
            "continuation (FIN clear) without a message in progress: 1002",
            vec![send_all(&[cont("orphan").fin(false), cont("end")])],
            fails(1002),
        ),
        case(
            g,
            "5.12",
            "continuation without start, in chunks of 1 byte: 1002",
            vec![chunked(&[cont("orphan"), text("never echoed")], 1)],
            fails(1002),
        ),
        case(
            g,
            "5.13",
            "complete text, then a continuation: echo, then 1002",
            vec![send_all(&[text("done"), cont("late")])],
            then_fails(vec![echo_text("done")], 1002),
        ),
        // §5.4: "The fragments of one message MUST NOT be interleaved between the fragments
        // of another message unless an extension has been negotiated".
        case(
            g,
            "5.14",
            "new text frame inside a fragmented text: 1002, no echo",
            vec![send_all(&[
                text("frag").fin(false),
                text("intruder"),
                cont("ment"),
            ])],
            fails(1002),
        ),
        case(
            g,
            "5.15",
            "new binary frame (FIN clear) inside a fragmented text: 1002",
            vec![send_all(&[
                text("frag").fin(false),
                binary(vec![1]).fin(false),
                cont("ment"),
            ])],
            fails(1002),
        ),
        case(
            g,
            "5.16",
            "2 messages, the second opening inside the first after its FIN: both echoed, then 1002",
            vec![send_all(&[
                text("a").fin(false),
                cont("b"),
                text("c").fin(false),
                cont("d"),
                cont("e"),
            ])],
            then_fails(vec![echo_text("ab"), echo_text("cd")], 1002),
        ),
        // §5.5: control frames "MUST NOT be fragmented".
        case(
            g,
            "5.17",
            "close with FIN clear: 1002",
            vec![send(close_frame(1000, b"").fin(false))],
            fails(1002),
        ),
        case(
            g,
            "5.18",
            "ping with FIN clear inside a fragmented text: 1002, no pong",
            vec![send_all(&[
                text("frag").fin(false),
                ping("bad").fin(false),
                cont("ment"),
            ])],
            fails(1002),
        ),
        case(
            g,
            "5.19",
            "empty text(FIN=0), empty continuation, empty continuation(FIN): empty echo",
            vec![send_all(&[
                text("").fin(false),
                cont("").fin(false),
                cont(""),
            ])],
            vec![echo_text("")],
        ),
        case(
            g,
            "5.20",
            "empty first fragment, then the payload",
            vec![send_all(&[binary(vec![]).fin(false), cont(vec![7, 8, 9])])],
            vec![echo_binary(vec![7, 8, 9])],
        ),
        case(
            g,
            "5.21",
            "payload, then an empty final continuation",
            vec![send_all(&[text("all here").fin(false), cont("")])],
            vec![echo_text("all here")],
        ),
        case(
            g,
            "5.22",
            "fragmented text, then fragmented binary, then a single frame: 3 echoes",
            vec![send_all(&[
                text("t1").fin(false),
                cont("t2"),
                binary(vec![1]).fin(false),
                ping("p"),
                cont(vec![2]),
                text("single"),
            ])],
            vec![
                echo_text("t1t2"),
                expect_pong("p"),
                echo_binary(vec![1, 2]),
                echo_text("single"),
            ],
        ),
    ]
}

fn utf8_cases() -> Vec<Case> {
    let g = Group::Utf8;
    // (id, what, hex bytes): valid sequences are echoed exactly.
    let valid: &[(&str, &str, &str)] = &[
        ("6.1.1", "empty text", ""),
        (
            "6.1.2",
            "\"Hello-µ@ßöäüàá-UTF-8!!\"",
            "48656c6c6f2dc2b540c39fc3b6c3a4c3bcc3a0c3a12d5554462d382121",
        ),
        ("6.1.3", "\"κόσμε\"", KOSME),
        ("6.1.4", "U+0000, the first 1-byte code point", "00"),
        ("6.1.5", "U+007F, the last 1-byte code point", "7f"),
        ("6.1.6", "U+0080, the first 2-byte code point", "c280"),
        ("6.1.7", "U+07FF, the last 2-byte code point", "dfbf"),
        ("6.1.8", "U+0800, the first 3-byte code point", "e0a080"),
        ("6.1.9", "U+FFFF, the last 3-byte code point", "efbfbf"),
        ("6.1.10", "U+10000, the first 4-byte code point", "f0908080"),
        ("6.1.11", "U+10FFFF, the last code point", "f48fbfbf"),
        ("6.1.12", "U+D7FF, just below the surrogates", "ed9fbf"),
        ("6.1.13", "U+E000, just above the surrogates", "ee8080"),
        ("6.1.14", "U+FFFD, the replacement character", "efbfbd"),
        ("6.1.15", "U+FFFE, a noncharacter but valid UTF-8", "efbfbe"),
        ("6.1.16", "U+1D11E, musical G clef", "f09d849e"),
        (
            "6.1.17",
            "a mix of 1- to 4-byte code points",
            "41c3a9e282acf09f9880e4b8ade69687",
        ),
    ];
    // RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds
    // that the byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail
    // the WebSocket Connection_." RFC 3629 §3 rules out overlong forms, surrogates and
    // code points above U+10FFFF.
    let invalid: &[(&str, &str, &str)] = &[
        (
            "6.2.1",
            "\"κόσμε\" with a surrogate and \"edited\"",
            "cebae1bdb9cf83cebcceb5eda080656469746564",
        ),
        ("6.2.2", "overlong '/' (2 bytes)", "c0af"),
        ("6.2.3", "overlong '/' (3 bytes)", "e080af"),
        ("6.2.4", "overlong '/' (4 bytes)", "f08080af"),
        ("6.2.5", "largest overlong 2-byte form", "c1bf"),
        ("6.2.6", "largest overlong 3-byte form", "e09fbf"),
        ("6.2.7", "largest overlong 4-byte form", "f08fbfbf"),
        ("6.2.8", "overlong NUL (2 bytes)", "c080"),
        ("6.2.9", "overlong NUL (3 bytes)", "e08080"),
        ("6.2.10", "overlong NUL (4 bytes)", "f0808080"),
        ("6.3.1", "surrogate U+D800", "eda080"),
        ("6.3.2", "surrogate U+DB7F", "edadbf"),
        ("6.3.3", "surrogate U+DBFF", "edafbf"),
        ("6.3.4", "surrogate U+DC00", "edb080"),
        ("6.3.5", "surrogate U+DFFF", "edbfbf"),
        (
            "6.3.6",
            "paired surrogates U+D800 U+DC00 (CESU-8)",
            "eda080edb080",
        ),
        ("6.4.1", "U+110000, above U+10FFFF", "f4908080"),
        ("6.4.2", "U+1FFFFF (f7)", "f7bfbfbf"),
        ("6.4.3", "5-byte sequence", "f888808080"),
        ("6.4.4", "6-byte sequence", "fc8480808080"),
        ("6.5.1", "lone continuation byte 0x80", "80"),
        ("6.5.2", "lone continuation byte 0xBF", "bf"),
        ("6.5.3", "continuation byte between ASCII", "618062"),
        ("6.5.4", "four continuation bytes", "80bf80bf"),
        ("6.6.1", "2-byte start followed by a space", "c220"),
        ("6.6.2", "3-byte start followed by a space", "e0a020"),
        ("6.6.3", "4-byte start followed by a space", "f0908020"),
        ("6.7.1", "message ends after a 2-byte start", "6162c2"),
        (
            "6.7.2",
            "message ends 1 byte short of a 3-byte sequence",
            "6162e282",
        ),
        (
            "6.7.3",
            "message ends 1 byte short of a 4-byte sequence",
            "6162f09f98",
        ),
        ("6.7.4", "\"κόσμε\" cut after 1 byte", "ce"),
        ("6.7.5", "\"κόσμε\" cut after 3 bytes", "cebae1"),
        ("6.7.6", "\"κόσμε\" cut after 4 bytes", "cebae1bd"),
        ("6.8.1", "byte 0xFE", "fe"),
        ("6.8.2", "byte 0xFF", "ff"),
        ("6.8.3", "bytes fe fe ff ff", "fefeffff"),
        ("6.8.4", "0xFF between ASCII", "61ff62"),
    ];
    let mut cases = Vec::new();
    for &(id, what, hex) in valid.iter().chain(invalid) {
        let payload = unhex(hex);
        let is_valid = valid.iter().any(|v| v.0 == id);
        let outcome = |expect_echo: bool| {
            if expect_echo {
                vec![echo_text(payload.clone())]
            } else {
                fails(1007)
            }
        };
        let verdict = if is_valid { "echoed" } else { "1007" };
        cases.push(case(
            g,
            &format!("{id}.a"),
            &format!("{what}: {verdict}"),
            vec![send(text(payload.clone()))],
            outcome(is_valid),
        ));
        cases.push(case(
            g,
            &format!("{id}.b"),
            &format!("{what}, frame in chunks of 1 byte: {verdict}"),
            vec![chunked(&[text(payload.clone())], 1)],
            outcome(is_valid),
        ));
        // One byte per fragment: every code point is split across fragments.
        let fragments: Vec<Frame> = if payload.is_empty() {
            vec![text(vec![]).fin(false), cont(vec![])]
        } else {
            payload
                .iter()
                .enumerate()
                .map(|(i, byte)| {
                    let f = if i == 0 {
                        text(vec![*byte])
                    } else {
                        cont(vec![*byte])
                    };
                    f.fin(i + 1 == payload.len())
                })
                .collect()
        };
        cases.push(case(
            g,
            &format!("{id}.c"),
            &format!("{what}, one fragment per byte: {verdict}"),
            vec![send_all(&fragments)],
            outcome(is_valid),
        ));
    }
    // §5.6: "a particular text frame might include a partial UTF-8 sequence; however, the
    // whole message MUST contain valid UTF-8."
    let split: &[(&str, &str, &[&str], bool)] = &[
        (
            "6.9.1",
            "\"€\" split 2+1 across fragments",
            &["e282", "ac"],
            true,
        ),
        (
            "6.9.2",
            "\"𝄞\" split 2+1+1 across fragments",
            &["f09d", "84", "9e"],
            true,
        ),
        (
            "6.9.3",
            "\"κόσμε\" split inside each code point",
            &["ce", "bae1", "bdb9cf", "83cebcce", "b5"],
            true,
        ),
        (
            "6.9.4",
            "surrogate split ed | a0 80",
            &["ed", "a080"],
            false,
        ),
        (
            "6.9.5",
            "U+110000 split f4 | 90 80 80",
            &["f4", "908080"],
            false,
        ),
        ("6.9.6", "overlong split e0 | 80 af", &["e0", "80af"], false),
        (
            "6.9.7",
            "3-byte start then ASCII in the next fragment",
            &["61e282", "78797a"],
            false,
        ),
        (
            "6.9.8",
            "lone continuation byte opening the 2nd fragment",
            &["6162", "80"],
            false,
        ),
    ];
    for &(id, what, pieces, is_valid) in split {
        let payloads: Vec<Vec<u8>> = pieces.iter().map(|hex| unhex(hex)).collect();
        let frames: Vec<Frame> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let f = if i == 0 {
                    text(p.clone())
                } else {
                    cont(p.clone())
                };
                f.fin(i + 1 == payloads.len())
            })
            .collect();
        let expect = if is_valid {
            vec![echo_text(payloads.concat())]
        } else {
            fails(1007)
        };
        cases.push(case(g, id, what, vec![send_all(&frames)], expect));
    }
    // Fail fast (Autobahn 6.4): the Close must come while the message is unfinished; these
    // cases never send its rest, so a server that waits for FIN fails them.
    let kosme = unhex(KOSME);
    let cat = |parts: &[&[u8]]| parts.concat();
    cases.push(case(
        g,
        "6.10.1",
        "fail fast: valid 1st fragment, 2nd fragment U+110000, 3rd never sent: 1007",
        vec![
            send(text(kosme.clone()).fin(false)),
            send(cont(unhex("f4908080")).fin(false)),
        ],
        fails(1007),
    ));
    cases.push(case(
        g,
        "6.10.2",
        "fail fast: 1st fragment ends in f4, 2nd is 90, rest never sent: 1007",
        vec![
            send(text(cat(&[&kosme, &[0xF4]])).fin(false)),
            send(cont(vec![0x90]).fin(false)),
        ],
        fails(1007),
    ));
    let single = text(cat(&[&kosme, &unhex("f4908080"), b"edited"]));
    let encoded = single.encode();
    let header_len = single.header().len();
    let bad_at = header_len + kosme.len();
    cases.push(case(
        g,
        "6.10.3",
        "fail fast within one frame: payload sent up to f4 90, the rest never: 1007",
        vec![
            Step::SendRaw(encoded[..bad_at].to_vec()),
            pause(),
            Step::SendRaw(encoded[bad_at..bad_at + 2].to_vec()),
        ],
        fails(1007),
    ));
    cases.push(case(
        g,
        "6.10.4",
        "fail fast within one frame, in chunks of 1 byte up to the bad byte: 1007",
        vec![Step::SendChunked {
            bytes: encoded[..bad_at + 2].to_vec(),
            chunk_size: 1,
        }],
        fails(1007),
    ));
    cases.push(case(
        g,
        "6.10.5",
        "fail fast: the 1st fragment of a text is already invalid, nothing more sent: 1007",
        vec![send(text(b"ab\xFFcd".to_vec()).fin(false))],
        fails(1007),
    ));
    cases.push(case(
        g,
        "6.10.6",
        "fail fast: surrogate in the 1st fragment of a long text, nothing more sent: 1007",
        vec![send(
            text(cat(&[b"ok ", &unhex("eda080"), &ascii(60_000)])).fin(false),
        )],
        fails(1007),
    ));
    cases.push(case(
        g,
        "6.10.7",
        "binary is not checked as UTF-8: invalid bytes in binary are echoed",
        vec![send(binary(unhex("c0afeda080fffe")))],
        vec![echo_binary(unhex("c0afeda080fffe"))],
    ));
    cases
}

fn close_cases() -> Vec<Case> {
    let g = Group::Close;
    let mut cases = vec![
        // RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not previously
        // send a Close frame, the endpoint MUST send a Close frame in response." and §7.1.1:
        // "the server [...] SHOULD close the underlying TCP connection".
        case(
            g,
            "7.1.1",
            "empty close: close echoed (empty or 1000), then TCP closed",
            vec![send(frame(CLOSE, vec![]))],
            vec![Expect::Close(vec![None, Some(1000)]), Expect::TcpClosed],
        ),
        case(
            g,
            "7.1.2",
            "text, then close: echo, close, TCP closed",
            vec![send_all(&[text("last words"), close_frame(1000, b"")])],
            vec![
                echo_text("last words"),
                Expect::Close(vec![Some(1000)]),
                Expect::TcpClosed,
            ],
        ),
        case(
            g,
            "7.1.3",
            "close, then close again: one close, TCP closed",
            vec![send_all(&[close_frame(1000, b""), close_frame(1001, b"")])],
            vec![Expect::Close(vec![Some(1000)]), Expect::TcpClosed],
        ),
        // §5.5.1: "After sending a Close frame, an endpoint MUST NOT send any further data."
        // and the server stops reading once it has seen the Close.
        case(
            g,
            "7.1.4",
            "close, then ping in the same write: no pong",
            vec![send_all(&[close_frame(1000, b""), ping("too late")])],
            vec![Expect::Close(vec![Some(1000)]), Expect::TcpClosed],
        ),
        case(
            g,
            "7.1.5",
            "close, then text in the same write: not echoed",
            vec![send_all(&[close_frame(1000, b""), text("too late")])],
            vec![Expect::Close(vec![Some(1000)]), Expect::TcpClosed],
        ),
        case(
            g,
            "7.1.6",
            "close, then text in a later write: not echoed",
            vec![
                send(close_frame(1000, b"")),
                pause(),
                send(text("too late")),
            ],
            vec![Expect::Close(vec![Some(1000)]), Expect::TcpClosed],
        ),
        case(
            g,
            "7.1.7",
            "close inside a fragmented text, then its last fragment: close only, no echo",
            vec![send_all(&[
                text("frag").fin(false),
                close_frame(1000, b""),
                cont("ment"),
            ])],
            vec![Expect::Close(vec![Some(1000)]), Expect::TcpClosed],
        ),
        case(
            g,
            "7.1.8",
            "close 1000 with a reason: 1000",
            vec![send(close_frame(1000, b"bye for now"))],
            vec![Expect::Close(vec![Some(1000)]), Expect::TcpClosed],
        ),
        case(
            g,
            "7.1.9",
            "close with a 123-byte reason (125-byte payload): 1000",
            vec![send(close_frame(1000, &ascii(123)))],
            vec![Expect::Close(vec![Some(1000)]), Expect::TcpClosed],
        ),
        case(
            g,
            "7.1.10",
            "close with a multi-byte UTF-8 reason: 1000",
            vec![send(close_frame(1000, "κόσμε €𝄞".as_bytes()))],
            vec![Expect::Close(vec![Some(1000)]), Expect::TcpClosed],
        ),
        case(
            g,
            "7.1.11",
            "close sent in chunks of 1 byte: 1000",
            vec![chunked(&[close_frame(1000, b"chunked")], 1)],
            vec![Expect::Close(vec![Some(1000)]), Expect::TcpClosed],
        ),
        // §5.5.1: "If there is a body, the first two bytes of the body MUST be a 2-byte
        // unsigned integer".
        case(
            g,
            "7.2.1",
            "close with a 1-byte payload: 1002",
            vec![send(frame(CLOSE, vec![0x03]))],
            fails(1002),
        ),
        // §5.5: "All control frames MUST have a payload length of 125 bytes or less".
        case(
            g,
            "7.2.2",
            "close with a 124-byte reason (126-byte payload): 1002",
            vec![send(close_frame(1000, &ascii(124)))],
            fails(1002),
        ),
        // §5.5.1: the reason is "UTF-8-encoded data", and §8.1 applies.
        case(
            g,
            "7.2.3",
            "close reason with invalid UTF-8: 1007",
            vec![send(close_frame(
                1000,
                &unhex("cebae1bdb9cf83cebcceb5eda080656469746564"),
            ))],
            fails(1007),
        ),
        case(
            g,
            "7.2.4",
            "close reason cut inside a code point: 1007",
            vec![send(close_frame(1000, &unhex("6f6be282")))],
            fails(1007),
        ),
    ];
    // §7.4.1 defines 1000-1003 and 1007-1011; 1012-1014 are registered with IANA;
    // "3000-3999 [...] for use by libraries, frameworks, and applications", "4000-4999
    // [...] for private use". The server echoes the code it received (§5.5.1).
    let valid = [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ];
    for (i, code) in valid.into_iter().enumerate() {
        cases.push(case(
            g,
            &format!("7.3.{}", i + 1),
            &format!("close {code}: echoed"),
            vec![send(close_frame(code, b"status"))],
            vec![Expect::Close(vec![Some(code)]), Expect::TcpClosed],
        ));
    }
    // §7.4.2: "Status codes in the range 0-999 are not used"; 1004 is reserved; 1005, 1006
    // and 1015 "MUST NOT be set as a status code in a Close control frame by an endpoint";
    // 1016-2999 are unassigned; nothing is defined above 4999.
    let invalid = [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ];
    for (i, code) in invalid.into_iter().enumerate() {
        cases.push(case(
            g,
            &format!("7.4.{}", i + 1),
            &format!("close {code}: 1002"),
            vec![send(close_frame(code, b""))],
            fails(1002),
        ));
    }
    cases
}

/// The limits group's server runs with this `max_message_size`.
const MAX_MESSAGE: usize = 65536;

fn limit_cases() -> Vec<Case> {
    let g = Group::Limits;
    let over = MAX_MESSAGE + 1;
    let half = MAX_MESSAGE / 2;
    let fragments_of = |opcode: u8, payload: &[u8], size: usize| -> Vec<Frame> {
        let pieces: Vec<&[u8]> = payload.chunks(size).collect();
        pieces
            .iter()
            .enumerate()
            .map(|(i, piece)| {
                let f = if i == 0 {
                    frame(opcode, *piece)
                } else {
                    cont(*piece)
                };
                f.fin(i + 1 == pieces.len())
            })
            .collect()
    };
    let one_byte_fragments = fragments_of(BINARY, &bytes(1000), 1);
    // 1000 fragments of 1 byte that cut every 2-byte code point in half.
    let greek = "αβγδεζηθικ".repeat(50);
    let one_byte_text = fragments_of(TEXT, greek.as_bytes(), 1);
    let sixty_four = fragments_of(BINARY, &bytes(MAX_MESSAGE), 1024);
    let mut exact_then_empty = fragments_of(TEXT, &ascii(MAX_MESSAGE), half);
    exact_then_empty.last_mut().unwrap().fin = false;
    exact_then_empty.push(cont(""));
    let mut at_limit_with_pings = fragments_of(BINARY, &bytes(MAX_MESSAGE), half);
    at_limit_with_pings.insert(1, ping(bytes(125)));
    vec![
        // RFC 6455 §10.4: implementations "MUST protect themselves against exceeding those
        // limits"; §7.4.1: "1009 indicates [...] a message that is too big for it to process".
        case(
            g,
            "9.1.1",
            "text 1 byte under max_message_size: echoed",
            vec![send(text(ascii(MAX_MESSAGE - 1)))],
            vec![echo_text(ascii(MAX_MESSAGE - 1))],
        ),
        case(
            g,
            "9.1.2",
            "text of exactly max_message_size: echoed",
            vec![send(text(ascii(MAX_MESSAGE)))],
            vec![echo_text(ascii(MAX_MESSAGE))],
        ),
        case(
            g,
            "9.1.3",
            "binary of exactly max_message_size: echoed",
            vec![send(binary(bytes(MAX_MESSAGE)))],
            vec![echo_binary(bytes(MAX_MESSAGE))],
        ),
        case(
            g,
            "9.1.4",
            "text 1 byte over, header only: 1009 before any payload",
            vec![Step::SendRaw(text(ascii(over)).header())],
            fails(1009),
        ),
        case(
            g,
            "9.1.5",
            "binary 1 byte over, header only: 1009 before any payload",
            vec![Step::SendRaw(binary(bytes(over)).header())],
            fails(1009),
        ),
        case(
            g,
            "9.1.6",
            "binary 1 byte over, whole frame: 1009",
            vec![send(binary(bytes(over)))],
            fails(1009),
        ),
        case(
            g,
            "9.1.7",
            "binary declaring 2^62 bytes, header only: 1009",
            vec![Step::SendRaw({
                let mut header = vec![0x82, 0x80 | 127];
                header.extend_from_slice(&(1u64 << 62).to_be_bytes());
                header.extend_from_slice(&MASK);
                header
            })],
            fails(1009),
        ),
        case(
            g,
            "9.1.8",
            "text 1 byte over, header in chunks of 1 byte: 1009",
            vec![Step::SendChunked {
                bytes: text(ascii(over)).header(),
                chunk_size: 1,
            }],
            fails(1009),
        ),
        case(
            g,
            "9.2.1",
            "fragmented 2 x half of max_message_size: echoed",
            vec![send_all(&fragments_of(TEXT, &ascii(MAX_MESSAGE), half))],
            vec![echo_text(ascii(MAX_MESSAGE))],
        ),
        case(
            g,
            "9.2.2",
            "fragmented to exactly the limit, then an empty final continuation: echoed",
            vec![send_all(&exact_then_empty)],
            vec![echo_text(ascii(MAX_MESSAGE))],
        ),
        case(
            g,
            "9.2.3",
            "control frames between fragments do not count towards the limit",
            vec![send_all(&at_limit_with_pings)],
            vec![expect_pong(bytes(125)), echo_binary(bytes(MAX_MESSAGE))],
        ),
        case(
            g,
            "9.2.4",
            "half, then the header of a continuation 1 byte too long: 1009 before its payload",
            vec![
                send(binary(bytes(half)).fin(false)),
                Step::SendRaw(cont(bytes(half + 1)).header()),
            ],
            fails(1009),
        ),
        case(
            g,
            "9.2.5",
            "exactly the limit in fragments, then a 1-byte continuation: 1009",
            vec![send_all(&{
                let mut frames = fragments_of(BINARY, &bytes(MAX_MESSAGE), half);
                frames.last_mut().unwrap().fin = false;
                frames.push(cont(vec![0]));
                frames
            })],
            fails(1009),
        ),
        case(
            g,
            "9.2.6",
            "over the limit in 64 fragments of 1025 bytes: 1009",
            vec![send_all(&fragments_of(BINARY, &bytes(64 * 1025), 1025))],
            fails(1009),
        ),
        case(
            g,
            "9.3.1",
            "1000 binary fragments of 1 byte: one echoed message",
            vec![send_all(&one_byte_fragments)],
            vec![echo_binary(bytes(1000))],
        ),
        case(
            g,
            "9.3.2",
            "1000 text fragments of 1 byte splitting every code point: one message",
            vec![send_all(&one_byte_text)],
            vec![echo_text(greek.as_bytes())],
        ),
        case(
            g,
            "9.3.3",
            "1000 fragments of 1 byte in chunks of 3 bytes",
            vec![chunked(&one_byte_fragments, 3)],
            vec![echo_binary(bytes(1000))],
        ),
        case(
            g,
            "9.3.4",
            "max_message_size in 64 fragments of 1024 bytes: echoed",
            vec![send_all(&sixty_four)],
            vec![echo_binary(bytes(MAX_MESSAGE))],
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Running cases.

/// The client side of one case: a TCP or TLS stream and the bytes read but not yet parsed.
struct Peer {
    stream: Box<dyn Duplex>,
    buf: Vec<u8>,
    /// permessage-deflate was negotiated: RSV1 may come on a data message's first frame.
    deflate: bool,
    /// The first write that failed (the server may close before a case ends its steps).
    write_error: Option<io::Error>,
}

/// A frame as the server sent it.
#[derive(Debug)]
struct Received {
    fin: bool,
    /// RSV1: a compressed message's first frame.
    compressed: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Received {
    fn describe(&self) -> String {
        let name = match self.opcode {
            CONTINUATION => "continuation",
            TEXT => "text",
            BINARY => "binary",
            CLOSE => "close",
            PING => "ping",
            PONG => "pong",
            _ => "reserved",
        };
        let fin = if self.fin { "" } else { " (FIN clear)" };
        format!("{name}{fin} {}", preview(&self.payload))
    }
}

/// A short view of a payload for failure messages.
fn preview(payload: &[u8]) -> String {
    const SHOWN: usize = 32;
    let head = &payload[..payload.len().min(SHOWN)];
    let more = if payload.len() > SHOWN { "..." } else { "" };
    match std::str::from_utf8(head) {
        Ok(text) if !text.chars().any(char::is_control) => {
            format!("[{} bytes] {text:?}{more}", payload.len())
        }
        _ => {
            let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
            format!("[{} bytes] {hex}{more}", payload.len())
        }
    }
}

/// Where two payloads first differ, for failure messages.
fn difference(want: &[u8], got: &[u8]) -> String {
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    format!(
        "expected {}, got {} (first difference at byte {at})",
        preview(want),
        preview(got)
    )
}

/// What the server did next.
enum Next {
    Frame(Received),
    Closed,
}

impl Peer {
    fn connect(transport: Transport<'_>, server: &Server) -> Peer {
        let stream: Box<dyn Duplex> = match transport {
            Transport::Tcp => {
                let stream = TcpStream::connect(server.tcp()).expect("connect");
                stream.set_nodelay(true).unwrap();
                stream.set_read_timeout(Some(WAIT)).unwrap();
                stream.set_write_timeout(Some(WAIT)).unwrap();
                Box::new(stream)
            }
            Transport::Tls(pki) => Box::new(pki.connect(&server.tls()).expect("TLS handshake")),
        };
        Peer {
            stream,
            buf: Vec::new(),
            deflate: false,
            write_error: None,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.write_error.is_none()
            && let Err(error) = self.stream.write_all(bytes)
        {
            self.write_error = Some(error);
        }
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::SendFrame(frame) => self.write(&frame.encode()),
            Step::SendRaw(bytes) => self.write(bytes),
            Step::SendChunked { bytes, chunk_size } => {
                for chunk in bytes.chunks((*chunk_size).max(1)) {
                    self.write(chunk);
                }
            }
            Step::Pause(duration) => std::thread::sleep(*duration),
        }
    }

    /// Reads more bytes; `Ok(false)` when the server closed the connection.
    fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            // A reset after the server closed with our unread bytes in its buffer.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(false),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(format!("nothing from the server within {WAIT:?}"))
            }
            Err(e) => Err(format!("read failed: {e}")),
        }
    }

    /// The next frame, checked against what RFC 6455 requires of a server's frames.
    fn next(&mut self) -> Result<Next, String> {
        loop {
            if let Some(parsed) = parse_server_frame(&self.buf, self.deflate)? {
                let (frame, len) = parsed;
                self.buf.drain(..len);
                return Ok(Next::Frame(frame));
            }
            if !self.fill()? {
                if self.buf.is_empty() {
                    return Ok(Next::Closed);
                }
                return Err(format!(
                    "connection ended inside a frame: {}",
                    preview(&self.buf)
                ));
            }
        }
    }

    fn next_frame(&mut self, wanted: &str) -> Result<Received, String> {
        match self.next()? {
            Next::Frame(frame) => Ok(frame),
            Next::Closed => Err(format!(
                "expected {wanted}, the server closed the connection"
            )),
        }
    }

    fn read_http(&mut self) -> Result<(u16, Vec<(String, String)>), String> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                let mut lines = head.split("\r\n");
                let status = lines
                    .next()
                    .and_then(|line| line.split_whitespace().nth(1))
                    .and_then(|code| code.parse().ok())
                    .ok_or_else(|| format!("bad status line in {head:?}"))?;
                let headers = lines
                    .filter_map(|line| line.split_once(':'))
                    .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
                    .collect();
                return Ok((status, headers));
            }
            if !self.fill()? {
                return Err(format!(
                    "connection ended before an HTTP response: {}",
                    preview(&self.buf)
                ));
            }
        }
    }

    fn echo(&mut self, opcode: u8, payload: &[u8], must_compress: bool) -> Result<(), String> {
        {
            let first = self.next_frame("an echo")?;
            let compressed = first.compressed;
            if first.opcode != opcode || (must_compress && !first.compressed) {
                return Err(format!(
                    "expected the echo {}, got {}",
                    Received {
                        fin: true,
                        compressed: must_compress,
                        opcode,
                        payload: payload.to_vec()
                    }
                    .describe(),
                    first.describe()
                ));
            }
            // RFC 6455 §5.4 lets a server fragment its message; reassemble it.
            let mut message = first.payload;
            let mut fin = first.fin;
            while !fin {
                let next = self.next_frame("a continuation of the echo")?;
                if next.opcode != CONTINUATION {
                    return Err(format!(
                        "expected a continuation of the echo, got {}",
                        next.describe()
                    ));
                }
                message.extend(next.payload);
                fin = next.fin;
            }
            if compressed {
                message = inflate(&message)?;
            }
            if message != payload {
                return Err(format!("echo differs: {}", difference(payload, &message)));
            }
            Ok(())
        }
    }

    fn check(&mut self, expect: &Expect) -> Result<(), String> {
        match expect {
            Expect::Http { status, headers } => {
                let (got, got_headers) = self.read_http()?;
                if got != *status {
                    return Err(format!("expected HTTP {status}, got {got}"));
                }
                for (name, value) in headers {
                    let found = got_headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str());
                    if !found.is_some_and(|v| v.eq_ignore_ascii_case(value)) {
                        return Err(format!("expected header {name}: {value}, got {found:?}"));
                    }
                }
                Ok(())
            }
            Expect::Echo { opcode, payload } => self.echo(*opcode, payload, false),
            Expect::CompressedEcho { opcode, payload } => self.echo(*opcode, payload, true),
            Expect::Pong(payload) => {
                let frame = self.next_frame("a pong")?;
                if frame.opcode != PONG || frame.payload != *payload {
                    return Err(format!(
                        "expected pong {}, got {}",
                        preview(payload),
                        frame.describe()
                    ));
                }
                Ok(())
            }
            Expect::Close(allowed) => {
                let frame = self.next_frame("a close")?;
                if frame.opcode != CLOSE {
                    return Err(format!("expected a close, got {}", frame.describe()));
                }
                let code = match frame.payload[..] {
                    [] => None,
                    [hi, lo, ..] => Some(u16::from_be_bytes([hi, lo])),
                    [_] => return Err("server close with a 1-byte payload".to_string()),
                };
                let reason = frame.payload.get(2..).unwrap_or_default();
                if std::str::from_utf8(reason).is_err() {
                    return Err(format!(
                        "server close reason is not UTF-8: {}",
                        preview(reason)
                    ));
                }
                if !allowed.contains(&code) {
                    let reason = String::from_utf8_lossy(reason);
                    return Err(format!(
                        "expected close {}, got {} (reason {reason:?})",
                        codes(allowed),
                        codes(&[code])
                    ));
                }
                Ok(())
            }
            Expect::TcpClosed => match self.next()? {
                Next::Closed => Ok(()),
                Next::Frame(frame) => {
                    Err(format!("expected the TCP close, got {}", frame.describe()))
                }
            },
        }
    }
}

fn codes(codes: &[Option<u16>]) -> String {
    codes
        .iter()
        .map(|code| code.map_or("(empty)".to_string(), |c| c.to_string()))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A compressed message's payload inflated as RFC 7692 §7.2.2 says (the 4-byte tail put
/// back), on its own: wson answers `server_no_context_takeover`.
fn inflate(compressed: &[u8]) -> Result<Vec<u8>, String> {
    let mut input = compressed.to_vec();
    input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    let mut inflater = flate2::Decompress::new(false);
    let mut out = Vec::with_capacity(compressed.len() * 8 + 1024);
    loop {
        let before = inflater.total_in();
        inflater
            .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
            .map_err(|error| format!("server sent invalid DEFLATE: {error}"))?;
        let consumed = (inflater.total_in() - before) as usize;
        input.drain(..consumed);
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(1024));
    }
}

/// Parses one frame from the start of `buf`; `None` when more bytes are needed.
fn parse_server_frame(buf: &[u8], deflate: bool) -> Result<Option<(Received, usize)>, String> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    // RFC 6455 §5.2: RSV bits 0 without an extension; §5.1: "A server MUST NOT mask any
    // frames that it sends to the client." RFC 7692 §6: with permessage-deflate, RSV1 on
    // the first frame of a data message only.
    let allowed = match b0 & 0x0F {
        TEXT | BINARY if deflate => 0x40,
        _ => 0,
    };
    if b0 & 0x70 & !allowed != 0 {
        return Err(format!("server frame with RSV bits set: {b0:#04x}"));
    }
    if b1 & 0x80 != 0 {
        return Err("server frame is masked".to_string());
    }
    let (len, header_len) = match b1 & 0x7F {
        126 => match rest {
            [hi, lo, ..] => (u64::from(u16::from_be_bytes([*hi, *lo])), 4),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => (u64::from_be_bytes(bytes.try_into().unwrap()), 10),
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    let opcode = b0 & 0x0F;
    if opcode & 0x8 != 0 && (len > 125 || b0 & 0x80 == 0) {
        return Err(format!("server control frame of {len} bytes or fragmented"));
    }
    if len > 64 << 20 {
        return Err(format!("server frame declares {len} bytes"));
    }
    let end = header_len + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    let frame = Received {
        fin: b0 & 0x80 != 0,
        compressed: b0 & 0x40 != 0,
        opcode,
        payload: buf[header_len..end].to_vec(),
    };
    Ok(Some((frame, end)))
}

/// How a case's connection reaches the server.
#[derive(Clone, Copy)]
enum Transport<'a> {
    Tcp,
    /// wss://: the server's `tls://` listener, trusted through the test CA.
    Tls(&'a Pki),
}

/// Runs one case on a fresh connection; `Err` says what differed.
fn run_case(server: &Server, case: &Case, transport: Transport<'_>) -> Result<(), String> {
    let addr = match transport {
        Transport::Tcp => server.tcp(),
        Transport::Tls(_) => server.tls(),
    };
    let mut peer = Peer::connect(transport, server);
    let extension = match case.connect {
        Connect::Raw => None,
        Connect::Upgraded => Some(String::new()),
        Connect::Deflate(offer) => Some(format!("Sec-WebSocket-Extensions: {offer}\r\n")),
    };
    if let Some(extra) = extension {
        let cookies = Cookies::fresh("conformance");
        peer.write(request(&addr, &cookies.header, Some(ORIGIN), &extra).as_bytes());
        let (status, headers) = peer.read_http()?;
        if status != 101 {
            return Err(format!("upgrade refused with HTTP {status}"));
        }
        let accepted = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|(_, value)| value.clone());
        peer.deflate = accepted.is_some();
        match (case.connect, accepted) {
            (Connect::Deflate(_), None) => {
                return Err("permessage-deflate offered and not accepted".to_string());
            }
            (Connect::Upgraded | Connect::Raw, Some(value)) => {
                return Err(format!("an extension nobody offered: {value}"));
            }
            (Connect::Deflate(_), Some(_)) | (Connect::Upgraded | Connect::Raw, None) => {}
        }
    }
    for step in &case.steps {
        peer.step(step);
    }
    for (i, expect) in case.expect.iter().enumerate() {
        if let Err(error) = peer.check(expect) {
            let written = match &peer.write_error {
                Some(e) => format!("; a step could not be written: {e}"),
                None => String::new(),
            };
            return Err(format!(
                "expectation {} of {}: {error}{written}",
                i + 1,
                case.expect.len()
            ));
        }
    }
    Ok(())
}

/// A server for the conformance cases: echo, and no keepalive ping to interleave with the
/// expected frames. Its debug log (printed when a group fails) names each protocol error.
fn echo_server() -> Setup {
    Setup::new().echo().set("ping_interval", "3600")
}

/// Runs every case of `group`, prints a line per case and the summary, and fails with
/// the list of failed cases.
fn run_group(group: Group, cases: Vec<Case>, server: &Server) {
    run_group_over(group, cases, server, Transport::Tcp);
}

fn run_group_over(group: Group, cases: Vec<Case>, server: &Server, transport: Transport<'_>) {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for case in &cases {
        assert_eq!(case.group, group, "case {} is in the wrong table", case.id);
        assert!(ids.insert(case.id.clone()), "duplicate case id {}", case.id);
        match run_case(server, case, transport) {
            Ok(()) => println!(
                "conformance {group:?} {:<9} ok    {}",
                case.id, case.description
            ),
            Err(error) => {
                println!(
                    "conformance {group:?} {:<9} FAIL  {}: {error}",
                    case.id, case.description
                );
                failures.push(format!("{} ({}): {error}", case.id, case.description));
            }
        }
    }
    let passed = cases.len() - failures.len();
    println!(
        "conformance: {} cases run, {passed} passed ({group:?}, {:.1} s)",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} {group:?} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `payload` compressed as a client would (RFC 7692 §7.2.1: deflated, flushed, the
/// trailing 0x00 0x00 0xff 0xff removed), each message on its own.
fn deflated(payload: &[u8]) -> Vec<u8> {
    let mut compress = flate2::Compress::new(flate2::Compression::new(6), false);
    let mut out = Vec::with_capacity(payload.len() + 1024);
    compress
        .compress_vec(payload, &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    assert!(out.len() < out.capacity(), "room left: all output flushed");
    assert!(out.ends_with(&[0x00, 0x00, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// A frame with RSV1 ("Per-Message Compressed") set.
fn compressed(frame: Frame) -> Frame {
    frame.rsv(0b100)
}

/// JSON-like text that deflate shrinks, `len` bytes.
fn json_like(len: usize) -> Vec<u8> {
    let item = r#"{"user":"alice","price":12.5,"tags":["new","sale"],"ok":true},"#;
    item.bytes().cycle().take(len).collect()
}

fn deflate_cases() -> Vec<Case> {
    let g = Group::Deflate;
    const OFFER: &str = "permessage-deflate";
    // RFC 7692 §7.2.3.1: "Hello" compressed, and the same split into two frames.
    let hello = unhex("f2 48 cd c9 c9 07 00");
    let on = |mut case: Case, offer: &'static str| {
        case.connect = Connect::Deflate(offer);
        case
    };
    let big = json_like(1000);
    let binary_64k = json_like(65536);
    let binary_64k_deflated = deflated(&binary_64k);
    let bomb = deflated(&vec![0u8; (1 << 20) + 1024]);
    assert!(bomb.len() <= 1100, "{}", bomb.len());
    let mut bad_utf8 = ascii(300);
    bad_utf8.push(0xff);
    // "€" (e2 82 ac) straddling the two compressed frames' inflated output.
    let mut euro = ascii(299);
    euro.extend_from_slice("€".as_bytes());
    let euro_deflated = deflated(&euro);
    let (euro_a, euro_b) = euro_deflated.split_at(euro_deflated.len() / 2);
    vec![
        on(
            case(
                g,
                "D.1",
                "RFC 7692 §7.2.3.1 compressed Hello is echoed",
                vec![send(compressed(text(hello.clone())))],
                vec![echo_text("Hello")],
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.2",
                "compressed Hello in two frames, RSV1 on the first only, a ping between",
                vec![send_all(&[
                    compressed(text(hello[..3].to_vec()).fin(false)),
                    ping("between"),
                    cont(hello[3..].to_vec()),
                ])],
                vec![expect_pong("between"), echo_text("Hello")],
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.3",
                "RFC 7692 §7.2.3.2: a second Hello that refers to the first (context takeover)",
                vec![send_all(&[
                    compressed(text(hello.clone())),
                    compressed(text(unhex("f2 00 11 00 00"))),
                ])],
                vec![echo_text("Hello"), echo_text("Hello")],
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.4",
                "RFC 7692 §7.2.3.3: a stored (uncompressed) DEFLATE block",
                vec![send(compressed(text(unhex(
                    "00 05 00 fa ff 48 65 6c 6c 6f 00",
                ))))],
                vec![echo_text("Hello")],
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.5",
                "RFC 7692 §7.2.3.4: a block with BFINAL set, then another message",
                vec![send_all(&[
                    compressed(text(unhex("f3 48 cd c9 c9 07 00"))),
                    compressed(text(hello.clone())),
                ])],
                vec![echo_text("Hello"), echo_text("Hello")],
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.6",
                "a 1000-byte compressed text is echoed compressed",
                vec![send(compressed(text(deflated(&big))))],
                vec![Expect::CompressedEcho {
                    opcode: TEXT,
                    payload: big.clone(),
                }],
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.7",
                "a 1000-byte plain text on a deflate connection is echoed compressed",
                vec![send(text(big.clone()))],
                vec![Expect::CompressedEcho {
                    opcode: TEXT,
                    payload: big.clone(),
                }],
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.8",
                "64 KiB binary compressed and sent in 1000-byte fragments, 100-byte writes",
                vec![chunked(
                    &binary_64k_deflated
                        .chunks(1000)
                        .enumerate()
                        .map(|(i, part)| {
                            let last = (i + 1) * 1000 >= binary_64k_deflated.len();
                            let frame = if i == 0 {
                                compressed(binary(part.to_vec()))
                            } else {
                                cont(part.to_vec())
                            };
                            frame.fin(last)
                        })
                        .collect::<Vec<_>>(),
                    100,
                )],
                vec![Expect::CompressedEcho {
                    opcode: BINARY,
                    payload: binary_64k.clone(),
                }],
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.9",
                "a code point split between two compressed frames is valid",
                vec![send_all(&[
                    compressed(text(euro_a.to_vec()).fin(false)),
                    cont(euro_b.to_vec()),
                ])],
                vec![Expect::CompressedEcho {
                    opcode: TEXT,
                    payload: euro.clone(),
                }],
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.10",
                "RSV1 on a continuation frame: 1002 (RFC 7692 §6.1)",
                vec![send_all(&[
                    compressed(text(hello[..3].to_vec()).fin(false)),
                    compressed(cont(hello[3..].to_vec())),
                ])],
                fails(1002),
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.11",
                "RSV1 on a ping: 1002",
                vec![send(compressed(ping("x")))],
                fails(1002),
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.12",
                "RSV1 on a pong: 1002",
                vec![send(compressed(pong("x")))],
                fails(1002),
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.13",
                "RSV1 on a close: 1002",
                vec![send(compressed(close_frame(1000, b"")))],
                fails(1002),
            ),
            OFFER,
        ),
        case(
            g,
            "D.14",
            "RSV1 without permessage-deflate negotiated: 1002",
            vec![send(compressed(text(hello.clone())))],
            fails(1002),
        ),
        on(
            case(
                g,
                "D.15",
                "RSV2 with permessage-deflate: 1002",
                vec![send(text("x").rsv(0b010))],
                fails(1002),
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.16",
                "invalid DEFLATE data (reserved block type): 1007",
                vec![send(compressed(binary(vec![0xff, 0xff, 0xff])))],
                fails(1007),
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.17",
                "data after a final DEFLATE block: 1007",
                vec![send(compressed(text(unhex("f3 48 cd c9 c9 07 00 12 34"))))],
                fails(1007),
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.18",
                "invalid UTF-8 in the inflated text: 1007",
                vec![send(compressed(text(deflated(&bad_utf8))))],
                fails(1007),
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.19",
                "zip bomb: 1 KiB inflating past max_message_size (1 MiB): 1009",
                vec![send(compressed(binary(bomb)))],
                fails(1009),
            ),
            OFFER,
        ),
        on(
            case(
                g,
                "D.20",
                "client_no_context_takeover: each message inflates on its own",
                vec![send_all(&[
                    compressed(text(hello.clone())),
                    compressed(text(hello.clone())),
                ])],
                vec![echo_text("Hello"), echo_text("Hello")],
            ),
            "permessage-deflate; client_no_context_takeover",
        ),
        on(
            case(
                g,
                "D.21",
                "client_no_context_takeover, then a back reference to the last message: 1007",
                vec![send_all(&[
                    compressed(text(hello.clone())),
                    compressed(text(unhex("f2 00 11 00 00"))),
                ])],
                then_fails(vec![echo_text("Hello")], 1007),
            ),
            "permessage-deflate; client_no_context_takeover",
        ),
        on(
            case(
                g,
                "D.22",
                "server_max_window_bits=9: the echo is compressed within it",
                vec![send(compressed(text(deflated(&big))))],
                vec![Expect::CompressedEcho {
                    opcode: TEXT,
                    payload: big.clone(),
                }],
            ),
            "permessage-deflate; server_max_window_bits=9",
        ),
        on(
            case(
                g,
                "D.23",
                "a compressed message under the threshold is echoed",
                vec![send(compressed(binary(deflated(&[7u8; 100]))))],
                vec![echo_binary(vec![7u8; 100])],
            ),
            OFFER,
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// One test per group.

#[test]
fn handshake_answers_the_rfc_sample_key_with_its_accept_value() {
    let server = echo_server().start();
    run_group(Group::Handshake, handshake_cases(), &server);
}

#[test]
fn framing_echoes_every_payload_length_and_refuses_unmasked_frames() {
    let server = echo_server().start();
    run_group(Group::Framing, framing_cases(), &server);
}

#[test]
fn pings_get_identical_pongs_and_bad_control_frames_get_1002() {
    let server = echo_server().start();
    run_group(Group::Pings, ping_cases(), &server);
}

#[test]
fn reserved_bits_fail_the_connection_with_1002() {
    let server = echo_server().start();
    run_group(Group::ReservedBits, reserved_bit_cases(), &server);
}

#[test]
fn reserved_opcodes_fail_the_connection_with_1002() {
    let server = echo_server().start();
    run_group(Group::Opcodes, opcode_cases(), &server);
}

#[test]
fn fragments_reassemble_and_misplaced_fragments_get_1002() {
    let server = echo_server().start();
    run_group(Group::Fragmentation, fragmentation_cases(), &server);
}

#[test]
fn utf8_text_is_echoed_and_invalid_text_fails_fast_with_1007() {
    let server = echo_server().start();
    run_group(Group::Utf8, utf8_cases(), &server);
}

#[test]
fn close_codes_are_echoed_or_refused_with_1002() {
    let server = echo_server().start();
    run_group(Group::Close, close_cases(), &server);
}

#[test]
fn permessage_deflate_inflates_bounded_and_enforces_rsv1_rules() {
    let server = echo_server().start();
    run_group(Group::Deflate, deflate_cases(), &server);
}

#[test]
fn messages_over_max_message_size_get_1009_before_their_payload() {
    let server = echo_server()
        .set("max_message_size", &MAX_MESSAGE.to_string())
        .start();
    run_group(Group::Limits, limit_cases(), &server);
}

/// Every group again over wss:// (a `tls://` listener, the test CA): TLS changes how bytes
/// arrive (records, not segments), never what the server answers.
mod over_tls {
    use super::*;

    fn run_over_tls(group: Group, cases: Vec<Case>, setup: Setup) {
        let pki = Pki::new();
        let server = pki
            .serve(setup)
            .set("servers", r#"["tls://127.0.0.1:0", "tcp://127.0.0.1:0"]"#)
            .start();
        run_group_over(group, cases, &server, Transport::Tls(&pki));
    }

    #[test]
    fn handshake() {
        run_over_tls(Group::Handshake, handshake_cases(), echo_server());
    }

    #[test]
    fn framing() {
        run_over_tls(Group::Framing, framing_cases(), echo_server());
    }

    #[test]
    fn pings() {
        run_over_tls(Group::Pings, ping_cases(), echo_server());
    }

    #[test]
    fn reserved_bits() {
        run_over_tls(Group::ReservedBits, reserved_bit_cases(), echo_server());
    }

    #[test]
    fn opcodes() {
        run_over_tls(Group::Opcodes, opcode_cases(), echo_server());
    }

    #[test]
    fn fragmentation() {
        run_over_tls(Group::Fragmentation, fragmentation_cases(), echo_server());
    }

    #[test]
    fn utf8() {
        run_over_tls(Group::Utf8, utf8_cases(), echo_server());
    }

    #[test]
    fn close() {
        run_over_tls(Group::Close, close_cases(), echo_server());
    }

    #[test]
    fn deflate() {
        run_over_tls(Group::Deflate, deflate_cases(), echo_server());
    }

    #[test]
    fn limits() {
        let setup = echo_server().set("max_message_size", &MAX_MESSAGE.to_string());
        run_over_tls(Group::Limits, limit_cases(), setup);
    }
}
