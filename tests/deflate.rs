//! permessage-deflate (RFC 7692) with real compressing clients: Autobahn|Testsuite's
//! groups 12 and 13 reproduced with Python `websockets`, Node `ws`, headless Chromium; the
//! negotiation as a client sees it; a zip bomb against the server's memory.
//!
//! The real autobahntestsuite is Python 2 only, so `tests/clients/py_deflate.py` plays its
//! fuzzing client: per case a fresh connection with the case's offers, messages of the
//! case's size cut from a corpus at successive offsets, each echoed (`client_messages =
//! "echo"`) and compared. Group 12 (12.1 JSON, 12.2 image, 12.3 text, 12.4 HTML, 12.5
//! PDF-like; generated stand-ins for Autobahn's data files) uses Autobahn's default offer;
//! sub-cases 1-10 are the sizes 16 B to 128 KiB, 11-15 the sizes 8 KiB to 128 KiB sent in
//! 256-byte frames, 16-18 128 KiB in 1, 4 and 32 KiB frames. Group 13 is 13.1-13.7 with
//! Autobahn's offers over the JSON corpus, plus 13.8-13.11 (wson's own) for the client
//! context takeover and window parameters Autobahn never offers. Autobahn sends 1000
//! messages per sub-case; here a sub-case sends 1000 or as many as fit in 4 MiB (group
//! 12) or 1 MiB (group 13), whichever is fewer, and a fragmented one at most 50, so the
//! suite runs in seconds on a shared machine: `WSON_AUTOBAHN_FULL=1` sends 1000 in every
//! unfragmented sub-case (about 100 s).
//!
//! ```text
//! cargo test --test main deflate -- --nocapture
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use crate::common::*;
use wson::ws::frame;

const PY_DEFLATE: &str = "py_deflate.py";

/// Autobahn's sizes for sub-cases 1-10.
const SIZES: [usize; 10] = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072];

fn count(size: usize, budget: usize) -> usize {
    if std::env::var_os("WSON_AUTOBAHN_FULL").is_some() {
        return 1000;
    }
    (budget / size).clamp(1, 1000)
}

/// Group 12's 18 sub-cases for one corpus.
fn group_12(group: &str, corpus: &str, binary: bool) -> Vec<Value> {
    // Autobahn's offer: accept_no_context_takeover and accept_max_window_bits, nothing
    // requested of the server.
    let offers = json!([{"client_no_context_takeover": true, "client_max_window_bits": true}]);
    let mut cases = Vec::new();
    let mut add = |size: usize, fragment: usize, count: usize| {
        cases.push(json!({
            "id": format!("{group}.{}", cases.len() + 1),
            "corpus": corpus, "binary": binary, "size": size, "count": count,
            "fragment": fragment, "offers": offers,
        }));
    };
    for size in SIZES {
        add(size, 0, count(size, 4 << 20));
    }
    for size in [8192, 16384, 32768, 65536, 131072] {
        add(size, 256, count(size, 1 << 20).min(50));
    }
    for fragment in [1024, 4096, 32768] {
        add(131072, fragment, count(131072, 1 << 20).min(50));
    }
    cases
}

/// Group 13's sub-cases: the JSON corpus at every size, with `offers`.
fn group_13(group: &str, offers: Value) -> Vec<Value> {
    SIZES
        .iter()
        .enumerate()
        .map(|(index, &size)| {
            json!({
                "id": format!("{group}.{}", index + 1),
                "corpus": "json", "binary": false, "size": size,
                "count": count(size, 1 << 20), "fragment": 0, "offers": offers,
            })
        })
        .collect()
}

/// Autobahn 13.x's offer: `(request_no_context_takeover, request_max_window_bits)` of its
/// `PerMessageDeflateOffer(True, True, ...)`.
fn autobahn_offer(server_no_context_takeover: bool, server_max_window_bits: u8) -> Value {
    let mut offer = json!({
        "client_no_context_takeover": true,
        "client_max_window_bits": true,
        "server_no_context_takeover": server_no_context_takeover,
    });
    if server_max_window_bits != 0 {
        offer["server_max_window_bits"] = json!(server_max_window_bits);
    }
    offer
}

/// What a case must have negotiated: the window the server compresses with (8: nothing
/// compressed) and whether the client keeps its context.
struct Expected {
    server_window: u64,
}

/// Runs `cases` through the Python client against an echo server and checks each line.
fn run_cases(cases: Vec<Value>, expected: Expected) {
    let Some(python) = python() else {
        return;
    };
    let server = Setup::new()
        .echo()
        .set("max_message_size", "1048576")
        .set("ping_interval", "3600")
        .start();
    let cookies = Cookies::fresh("autobahn");
    let url = format!("ws://{}/", server.tcp());
    let table = serde_json::to_string(&cases).unwrap();
    let mut client = Script::spawn(
        &python,
        PY_DEFLATE,
        &[&url, &cookies.header, ORIGIN, &table],
    );
    let mut failures = Vec::new();
    for case in &cases {
        let line = client.next();
        let id = case["id"].as_str().unwrap();
        assert_eq!(line["id"], case["id"]);
        let verdict = check_case(case, &line, &expected);
        match &verdict {
            Ok(()) => println!(
                "autobahn {id:<8} ok    {} x {} B{}, {} compressed echoes",
                line["count"],
                case["size"],
                match case["fragment"].as_u64() {
                    Some(0) | None => String::new(),
                    Some(fragment) => format!(" in {fragment}-byte frames"),
                },
                line["compressed_frames"]
            ),
            Err(error) => println!("autobahn {id:<8} FAIL  {error}: {line}"),
        }
        if let Err(error) = verdict {
            failures.push(format!("{id}: {error}"));
        }
    }
    client.finish();
    println!(
        "autobahn: {} cases run, {} passed, 0 non-strict",
        cases.len(),
        cases.len() - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_case(case: &Value, line: &Value, expected: &Expected) -> Result<(), String> {
    if let Some(error) = line.get("error") {
        return Err(format!("client error {error}"));
    }
    let negotiated = &line["negotiated"];
    if negotiated.is_null() {
        return Err("permessage-deflate not negotiated".to_string());
    }
    if negotiated["server_no_context_takeover"] != json!(true) {
        return Err("no server_no_context_takeover".to_string());
    }
    if negotiated["server_max_window_bits"] != json!(expected.server_window) {
        return Err(format!(
            "server_max_window_bits {} instead of {}",
            negotiated["server_max_window_bits"], expected.server_window
        ));
    }
    if line["same"] != case["count"] {
        return Err(format!(
            "{} of {} echoes matched",
            line["same"], case["count"]
        ));
    }
    let compressed = line["compressed_frames"].as_u64().unwrap_or(0);
    let size = case["size"].as_u64().unwrap_or(0);
    // Text corpora compress well: every echo at or over the threshold comes compressed,
    // none under it; a client that asked for an 8-bit window gets none.
    let textual = case["binary"] == json!(false);
    let want = match (expected.server_window, textual, size >= 256) {
        (8, _, _) => Some(0),
        (_, true, true) => case["count"].as_u64(),
        (_, true, false) => Some(0),
        (_, false, _) => None,
    };
    if want.is_some_and(|want| want != compressed) {
        return Err(format!(
            "{compressed} compressed echoes, expected {}",
            want.unwrap_or(0)
        ));
    }
    Ok(())
}

const DEFAULT: Expected = Expected { server_window: 15 };

#[test]
fn autobahn_12_1_json_text_echoes_with_default_offer() {
    run_cases(group_12("12.1", "json", false), DEFAULT);
}

#[test]
fn autobahn_12_2_image_binary_echoes_with_default_offer() {
    run_cases(group_12("12.2", "image", true), DEFAULT);
}

#[test]
fn autobahn_12_3_prose_text_echoes_with_default_offer() {
    run_cases(group_12("12.3", "text", false), DEFAULT);
}

#[test]
fn autobahn_12_4_html_text_echoes_with_default_offer() {
    run_cases(group_12("12.4", "html", false), DEFAULT);
}

#[test]
fn autobahn_12_5_pdf_like_binary_echoes_with_default_offer() {
    run_cases(group_12("12.5", "pdf", true), DEFAULT);
}

#[test]
fn autobahn_13_1_default_offer() {
    run_cases(group_13("13.1", json!([autobahn_offer(false, 0)])), DEFAULT);
}

#[test]
fn autobahn_13_2_server_no_context_takeover_requested() {
    run_cases(group_13("13.2", json!([autobahn_offer(true, 0)])), DEFAULT);
}

#[test]
fn autobahn_13_3_server_max_window_bits_8_gets_plain_echoes() {
    let expected = Expected { server_window: 8 };
    run_cases(
        group_13("13.3", json!([autobahn_offer(false, 8)])),
        expected,
    );
}

#[test]
fn autobahn_13_4_server_max_window_bits_15() {
    run_cases(
        group_13("13.4", json!([autobahn_offer(false, 15)])),
        DEFAULT,
    );
}

#[test]
fn autobahn_13_5_no_context_takeover_and_window_8() {
    let expected = Expected { server_window: 8 };
    run_cases(group_13("13.5", json!([autobahn_offer(true, 8)])), expected);
}

#[test]
fn autobahn_13_6_no_context_takeover_and_window_15() {
    run_cases(group_13("13.6", json!([autobahn_offer(true, 15)])), DEFAULT);
}

#[test]
fn autobahn_13_7_three_offers_the_first_is_taken() {
    let offers = json!([
        autobahn_offer(true, 8),
        autobahn_offer(true, 0),
        autobahn_offer(false, 0)
    ]);
    let expected = Expected { server_window: 8 };
    run_cases(group_13("13.7", offers), expected);
}

#[test]
fn wson_13_8_client_keeps_its_context() {
    // websockets' own default offer: client_max_window_bits only, so the client compresses
    // every message against the ones before it and the server's inflater keeps them.
    let offers = json!([{"client_max_window_bits": true}]);
    run_cases(group_13("13.8", offers), DEFAULT);
}

#[test]
fn wson_13_9_client_max_window_bits_9_with_context() {
    let offers = json!([{"client_max_window_bits": 9}]);
    run_cases(group_13("13.9", offers), DEFAULT);
}

#[test]
fn wson_13_10_server_max_window_bits_9() {
    let offers = json!([{"server_max_window_bits": 9, "client_max_window_bits": 15}]);
    run_cases(group_13("13.10", offers), Expected { server_window: 9 });
}

#[test]
fn wson_13_11_all_parameters_together() {
    let offers = json!([{
        "server_no_context_takeover": true, "client_no_context_takeover": true,
        "server_max_window_bits": 12, "client_max_window_bits": 9,
    }]);
    run_cases(group_13("13.11", offers), Expected { server_window: 12 });
}

// ---------------------------------------------------------------------------------------
// The negotiation, seen from a raw client.

/// The 101's `Sec-WebSocket-Extensions` for an upgrade offering `offer`.
fn answer_to(server: &Server, offer: &str) -> Option<String> {
    let mut stream = TcpStream::connect(server.tcp()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let cookies = Cookies::fresh("negotiation");
    let extra = format!("Sec-WebSocket-Extensions: {offer}\r\n");
    let head = request(&server.tcp(), &cookies.header, Some(ORIGIN), &extra);
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the response");
        response.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix("Sec-WebSocket-Extensions: "))
        .map(str::to_owned)
}

#[test]
fn negotiation_answers_the_first_acceptable_offer() {
    let server = Setup::new().start();
    let answer = |offer| answer_to(&server, offer);
    assert_eq!(
        answer("permessage-deflate; client_max_window_bits").as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
    assert_eq!(
        answer("permessage-deflate; server_max_window_bits=10; client_no_context_takeover")
            .as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10"
        )
    );
    // RFC 7692 §7: an unknown parameter, a duplicate, a bad value decline that offer.
    assert_eq!(
        answer(
            "permessage-deflate; foo, permessage-deflate; server_no_context_takeover; \
             server_no_context_takeover, permessage-deflate; client_max_window_bits=16, \
             permessage-deflate; server_max_window_bits=11"
        )
        .as_deref(),
        Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=11")
    );
    assert_eq!(answer("permessage-deflate; foo"), None);
    assert_eq!(answer("x-webkit-deflate-frame"), None);
    assert_eq!(answer("permessage-deflate; ;"), None);
}

#[test]
fn compression_off_answers_no_extension_and_rsv1_is_1002() {
    let server = Setup::new()
        .set("compression.enabled", "false")
        .echo()
        .start();
    assert_eq!(answer_to(&server, "permessage-deflate"), None);
    let cookies = Cookies::fresh("off");
    let mut client = WsClient::connect_tcp(&server.tcp(), &cookies).unwrap();
    // RFC 7692 §7.2.3.1's "Hello", RSV1 set, on a connection without the extension.
    let mut frame = frame::encode_masked_frame(
        true,
        frame::OpCode::Text,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        [1, 2, 3, 4],
    );
    frame[0] |= 0x40;
    client.send_raw(&frame);
    client.expect_close(1002);
}

#[test]
fn config_check_validates_the_compression_keys() {
    for (key, value, message) in [
        ("compression.level", "0", "at least 1"),
        ("compression.level", "10", "at most 9"),
        ("compression.server_max_window_bits", "8", "at least 9"),
        ("compression.server_max_window_bits", "16", "at most 15"),
        ("compression.threshold", "-1", "at least 0"),
        ("compression.enabled", "\"yes\"", "true or false"),
    ] {
        let (_dir, path) = Setup::new().set(key, value).write();
        let output = std::process::Command::new(wson_bin())
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{key} = {value}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains(message),
            "{key} = {value}: {stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Memory.

/// The server's resident set peak (VmHWM), in KiB.
fn peak_rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

#[test]
fn zip_bombs_are_1009_and_the_server_never_holds_their_inflated_size() {
    let server = Setup::new().echo().start();
    // 200 MiB of zeros deflate to about 200 KiB, under the 1 MiB max_message_size.
    let zeros = vec![0u8; 200 << 20];
    let mut compress = flate2::Compress::new(flate2::Compression::best(), false);
    let mut bomb = Vec::with_capacity(1 << 20);
    compress
        .compress_vec(&zeros, &mut bomb, flate2::FlushCompress::Sync)
        .unwrap();
    drop(zeros);
    bomb.truncate(bomb.len() - 4);
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let before = peak_rss_kib(&server);
    for _ in 0..4 {
        let cookies = Cookies::fresh("bomber");
        let addr = server.tcp();
        let mut client = WsClient::raw_tcp(&addr);
        let extra = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
        client
            .upgrade(&request(&addr, &cookies.header, Some(ORIGIN), extra))
            .unwrap();
        let mut frame =
            frame::encode_masked_frame(true, frame::OpCode::Binary, &bomb, [9, 8, 7, 6]);
        frame[0] |= 0x40;
        // The server may fail the connection before all of it is written.
        let _ = client.try_send_raw(&frame);
        client.expect_close(1009);
    }
    // Four bombs of 200 MiB each: the peak grows by what one bounded message takes (the
    // compressed frame and at most max_message_size + 1 inflated), never by 200 MiB.
    let grown = peak_rss_kib(&server).saturating_sub(before);
    assert!(grown < 32 * 1024, "peak RSS grew by {grown} KiB");
}

// ---------------------------------------------------------------------------------------
// Shared frames: one compression for every compressing client, plain bytes for the rest.

/// A raw client that reads server frames, RSV1 allowed when it negotiated deflate.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    deflate: bool,
}

impl Reader {
    fn connect(server: &Server, user: &str, offer: Option<&str>) -> (Reader, Cookies) {
        Reader::connect_with(server, user, offer, "")
    }

    /// With `more` header lines (each ending in CRLF).
    fn connect_with(
        server: &Server,
        user: &str,
        offer: Option<&str>,
        more: &str,
    ) -> (Reader, Cookies) {
        let cookies = Cookies::fresh(user);
        let addr = server.tcp();
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let extra = offer
            .map(|offer| format!("Sec-WebSocket-Extensions: {offer}\r\n"))
            .unwrap_or_default()
            + more;
        let head = request(&addr, &cookies.header, Some(ORIGIN), &extra);
        stream.write_all(head.as_bytes()).unwrap();
        let mut reader = Reader {
            stream,
            buf: Vec::new(),
            deflate: false,
        };
        let end = loop {
            if let Some(end) = find(&reader.buf, b"\r\n\r\n") {
                break end + 4;
            }
            reader.fill();
        };
        let head = String::from_utf8_lossy(&reader.buf[..end]).into_owned();
        reader.buf.drain(..end);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        reader.deflate = head.contains("Sec-WebSocket-Extensions: permessage-deflate");
        assert_eq!(reader.deflate, offer.is_some(), "{head}");
        (reader, cookies)
    }

    fn send_text(&mut self, text: &str) {
        let frame =
            frame::encode_masked_frame(true, frame::OpCode::Text, text.as_bytes(), [1, 2, 3, 4]);
        self.stream.write_all(&frame).unwrap();
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next data message: (compressed, opcode, payload inflated).
    fn message(&mut self) -> (bool, frame::OpCode, Vec<u8>) {
        let rsv1 = if self.deflate {
            frame::Rsv1::PerMessageCompressed
        } else {
            frame::Rsv1::Reserved
        };
        loop {
            match frame::decode_header_with(&self.buf, u64::MAX >> 1, rsv1).unwrap() {
                wson::decoded::Decoded::Done { item, len } => {
                    let end = len + usize::try_from(item.payload_len).unwrap();
                    if self.buf.len() >= end {
                        let payload = self.buf[len..end].to_vec();
                        self.buf.drain(..end);
                        if matches!(item.opcode, frame::OpCode::Ping | frame::OpCode::Pong) {
                            continue;
                        }
                        assert!(item.fin, "wson sends whole messages here");
                        if !item.rsv1 {
                            return (false, item.opcode, payload);
                        }
                        let mut inflater = wson::ws::deflate::Inflater::new(15);
                        let mut out = Vec::new();
                        inflater.inflate(&payload, &mut out, 16 << 20).unwrap();
                        inflater.finish(&mut out, 16 << 20).unwrap();
                        return (true, item.opcode, out);
                    }
                }
                wson::decoded::Decoded::Incomplete => {}
            }
            self.fill();
        }
    }
}

/// About `len` bytes of a realistic JSON publication.
fn publication(len: usize, seq: usize) -> String {
    let mut text = format!("{{\"seq\":{seq},\"quotes\":[");
    let mut i = 0;
    while text.len() < len {
        text.push_str(&format!(
            "{{\"symbol\":\"SYM{}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"volume\":{}}},",
            i % 50,
            100 + i % 7,
            i % 100,
            101 + i % 7,
            (i * 7) % 100,
            1000 + i * 13
        ));
        i += 1;
    }
    text.push_str("{}]}");
    text
}

#[test]
fn broadcasts_and_publications_go_compressed_to_deflate_clients_and_plain_to_others() {
    let server = Setup::new().set("ping_interval", "3600").start();
    let (mut plain, _) = Reader::connect(&server, "plain", None);
    let (mut deflate, deflate_cookies) =
        Reader::connect(&server, "deflate", Some("permessage-deflate"));
    let (mut window_9, _) = Reader::connect(
        &server,
        "small",
        Some("permessage-deflate; server_max_window_bits=9"),
    );
    let (mut window_8, _) = Reader::connect(
        &server,
        "tiny",
        Some("permessage-deflate; server_max_window_bits=8"),
    );
    let mut control = server.control();
    // A burst of broadcasts: batched into one chunk, compressed once per window.
    let messages: Vec<String> = (0..5).map(|seq| publication(1500, seq)).collect();
    for message in &messages {
        control.send(b'b', message.as_bytes());
    }
    control.send(b'b', b"short, under the threshold");
    control.send(b'B', &[7u8; 2000]);
    let expect = |reader: &mut Reader, compressed: bool| {
        for message in &messages {
            let got = reader.message();
            assert_eq!(
                got,
                (compressed, frame::OpCode::Text, message.as_bytes().to_vec())
            );
        }
        assert_eq!(
            reader.message(),
            (
                false,
                frame::OpCode::Text,
                b"short, under the threshold".to_vec()
            )
        );
        assert_eq!(
            reader.message(),
            (compressed, frame::OpCode::Binary, vec![7u8; 2000])
        );
    };
    expect(&mut plain, false);
    expect(&mut deflate, true);
    expect(&mut window_9, true);
    expect(&mut window_8, false);
    // A topic publication and a direct message take the same path.
    control.send_fields(b'j', &[deflate_cookies.token_str().as_bytes(), b"news"]);
    assert_eq!(control.reply_text(), "1#1");
    let news = publication(800, 99);
    control.send_fields(b'x', &[b"news", news.as_bytes()]);
    assert_eq!(
        deflate.message(),
        (true, frame::OpCode::Text, news.clone().into_bytes())
    );
    control.direct(b'c', &deflate_cookies.token, news.as_bytes());
    assert_eq!(
        control.reply_text(),
        format!("32A{}", deflate_cookies.token_str())
    );
    assert_eq!(
        deflate.message(),
        (true, frame::OpCode::Text, news.into_bytes())
    );
}

#[test]
fn wamp_events_go_compressed_to_sessions_that_negotiated_deflate() {
    let server = Setup::new()
        .set("wamp.realms", r#"["realm1"]"#)
        .set("ping_interval", "3600")
        .start();
    let protocol = "Sec-WebSocket-Protocol: wamp.2.json\r\n";
    let hello = json!([1, "realm1", {"roles": {"subscriber": {}, "publisher": {}}}]).to_string();
    let join = |user: &str, offer: Option<&str>| {
        let (mut reader, _) = Reader::connect_with(&server, user, offer, protocol);
        reader.send_text(&hello);
        let (_, _, welcome) = reader.message();
        let welcome: Value = serde_json::from_slice(&welcome).unwrap();
        assert_eq!(welcome[0], 2, "{welcome}");
        reader
    };
    let mut compressing = join("alice", Some("permessage-deflate"));
    let mut plain = join("bob", None);
    let mut publisher = join("carol", None);
    for reader in [&mut compressing, &mut plain] {
        reader.send_text(&json!([32, 1, {}, "com.example.news"]).to_string());
        let (_, _, subscribed) = reader.message();
        let subscribed: Value = serde_json::from_slice(&subscribed).unwrap();
        assert_eq!(subscribed[0], 33, "{subscribed}");
    }
    let news = publication(2000, 7);
    publisher.send_text(&json!([16, 1, {}, "com.example.news", [news]]).to_string());
    let (compressed, _, event) = compressing.message();
    assert!(compressed, "the EVENT to the deflate session is compressed");
    let (compressed, _, same_event) = plain.message();
    assert!(!compressed);
    assert_eq!(event, same_event);
    let event: Value = serde_json::from_slice(&event).unwrap();
    assert_eq!(event[0], 36);
    assert_eq!(event[4], json!([news]));
}

// ---------------------------------------------------------------------------------------
// Node ws and Chromium.

#[test]
fn node_ws_with_per_message_deflate_gets_a_compressed_push_and_echo() {
    let Some(node) = node() else {
        return;
    };
    let server = Setup::new().echo().start();
    let cookies = Cookies::fresh("node");
    let url = format!("ws://{}/", server.tcp());
    let mut client = Script::spawn(&node, "node_deflate.js", &[&url, &cookies.header, ORIGIN]);
    // ws reports the names of the agreed extensions.
    assert_eq!(
        client.next(),
        json!({"event": "open", "extensions": "permessage-deflate"})
    );
    let mut control = server.control();
    let before = control.status()["bytes_out"].as_u64().unwrap();
    let push = publication(20_000, 1);
    control.send(b'b', push.as_bytes());
    assert_eq!(
        client.next(),
        json!({"event": "message", "len": push.len(), "data": push})
    );
    // The push crossed the wire compressed: far fewer bytes than it holds.
    let sent = control.status()["bytes_out"].as_u64().unwrap() - before;
    assert!(
        sent < push.len() as u64 / 3,
        "{sent} bytes for {}",
        push.len()
    );
    // The client compresses its own message (threshold 0); wson inflates and echoes it.
    assert_eq!(client.next(), json!({"event": "echo", "same": true}));
    client.finish();
}

#[test]
fn chromium_receives_a_compressed_push() {
    if !crate::real_clients::chromium() {
        return;
    }
    let page = include_str!("clients/deflate_page.html")
        .as_bytes()
        .to_vec();
    let mut pages = crate::real_clients::PageServer::start(vec![(
        "/page.html",
        page,
        "text/html; charset=utf-8",
    )]);
    let server = Setup::new()
        .set(
            "origins",
            &format!(r#"["http://localhost:{}"]"#, pages.port),
        )
        .start();
    let cookies = Cookies::fresh("chromium");
    let port = server.tcp().rsplit(':').next().unwrap().to_string();
    let config = json!({"ws": format!("ws://localhost:{port}/"), "cookie": cookies.header});
    let url = format!(
        "http://localhost:{}/page.html#{}",
        pages.port,
        crate::real_clients::fragment(&config)
    );
    let _browser = crate::real_clients::Browser::open_with(&url, &[]);
    // Chromium always offers permessage-deflate; the page reports what was agreed.
    assert_eq!(
        pages.next(),
        json!({"event": "open", "extensions": "permessage-deflate; server_no_context_takeover"})
    );
    let mut control = server.control();
    let before = control.status()["bytes_out"].as_u64().unwrap();
    let push = publication(20_000, 2);
    control.send(b'b', push.as_bytes());
    assert_eq!(
        pages.next(),
        json!({"event": "message", "len": push.len(), "data": push})
    );
    let sent = control.status()["bytes_out"].as_u64().unwrap() - before;
    assert!(
        sent < push.len() as u64 / 3,
        "{sent} bytes for {}",
        push.len()
    );
}
