//! `tls://` listeners (wss://) and a `tls://` control socket, with a test CA made in each
//! test (`common::tls::Pki`, the openssl CLI): real clients (Python `websockets` and
//! `websocket-client`, Node `ws`, headless Chromium), the control protocol over TLS, the
//! certificate reloaded on SIGHUP, `wson check`, and bad input on the TLS port. The RFC 6455
//! conformance groups run over TLS in `conformance.rs` (`over_tls`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{Receiver, channel};

use rustls::StreamOwned;
use wson::tls::{TlsAcceptor, TlsVersion};

use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::tls::Pki;
use crate::common::*;
use crate::real_clients::{
    Browser, CHROMIUM, chromium, echoed_three, expect_session, fragment, push_five, pushed_five,
};

/// A server with a `tls://` and a `tcp://` WebSocket listener, echoing.
fn tls_server(pki: &Pki, setup: Setup) -> Server {
    pki.serve(setup.echo())
        .set("servers", r#"["tls://127.0.0.1:0", "tcp://127.0.0.1:0"]"#)
        .start()
}

#[test]
fn a_wss_client_gets_pushes_and_echoes_with_alpn_http_1_1() {
    let pki = Pki::new();
    let server = tls_server(&pki, Setup::new());
    let stream = pki.connect(&server.tls()).unwrap();
    assert_eq!(stream.alpn().as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(stream.server_der(), pki.server_der());
    let mut client = WsClient::over(Box::new(stream));
    let cookies = Cookies::fresh("alice");
    let request = request(&server.tls(), &cookies.header, Some(ORIGIN), "");
    client.upgrade(&request).expect("upgrade over TLS");
    let mut control = server.control();
    control.send(b'b', b"over tls");
    assert_eq!(client.recv_text(), "over tls");
    // Larger than one TLS record (16 KiB) and than rustls's buffer limit both ways.
    let big = "x".repeat(200_000);
    client.send_text(&big);
    assert_eq!(client.recv_text(), big);
    client.send_close(1000, "");
    assert_eq!(client.expect_close(1000).close_code(), Some(1000));
    client.expect_end();
    // A client without ALPN is served too.
    let plain_alpn = pki.connect_with(&server.tls(), &[]).unwrap();
    assert_eq!(plain_alpn.alpn(), None);
    eventually("the closed client is gone", || {
        control.status()["connections"] == 0
    });
}

#[test]
fn many_broadcasts_reach_a_wss_client_in_order_through_a_full_socket() {
    // Pushed faster than the client reads: records wait in rustls and in the queue, and
    // writable edges must bring them out in order.
    let pki = Pki::new();
    let server = tls_server(&pki, Setup::new().set("max_control_frame", "65536"));
    let mut client = pki.client(&server.tls());
    let mut control = server.control();
    let payload = |i: usize| format!("{i:05}{}", "y".repeat(30_000));
    for i in 0..100 {
        control.send(b'b', payload(i).as_bytes());
    }
    for i in 0..100 {
        assert_eq!(client.recv_text(), payload(i));
    }
}

// --- Real clients -----------------------------------------------------------------------

/// The real-client session of `real_clients.rs` over wss://, the CA given to the client by
/// environment (`SSL_CERT_FILE` for Python's ssl, `WEBSOCKET_CLIENT_CA_BUNDLE` for
/// websocket-client, `NODE_EXTRA_CA_CERTS` for Node).
fn wss_session(program: &Path, script: &str) {
    let pki = Pki::new();
    let server = tls_server(&pki, Setup::new());
    let cookies = Cookies::fresh("alice");
    let port = server.tls().rsplit(':').next().unwrap().to_owned();
    let url = format!("wss://localhost:{port}/");
    let ca = pki.ca();
    let env = [
        ("SSL_CERT_FILE", ca.as_path()),
        ("WEBSOCKET_CLIENT_CA_BUNDLE", ca.as_path()),
        ("NODE_EXTRA_CA_CERTS", ca.as_path()),
    ];
    let args = ["session", &url, &cookies.header, ORIGIN];
    let client = Script::spawn_with_env(program, script, &args, &env);
    expect_session(client, &server, &cookies);
}

#[test]
fn python_websockets_over_wss() {
    let Some(python) = python() else { return };
    wss_session(&python, "py_websockets.py");
}

#[test]
fn python_websocket_client_over_wss() {
    let Some(python) = python() else { return };
    wss_session(&python, "py_websocket_client.py");
}

#[test]
fn node_ws_over_wss() {
    let Some(node) = node() else { return };
    wss_session(&node, "node_ws.js");
}

/// The page of `real_clients.rs` served over HTTPS with the test certificate: a wss://
/// server is same-site only for an https:// page (Chromium's schemeful same-site), so the
/// page's SameSite=Lax cookies go with the handshake as they do for ws:// from http://.
/// `POST /report` bodies come out of the receiver.
fn https_page(pki: &Pki) -> (u16, Receiver<String>) {
    let acceptor =
        TlsAcceptor::load(&pki.cert(), &pki.key(), TlsVersion::V1_2, &[b"http/1.1"]).unwrap();
    let page = std::fs::read(clients_dir().join("page.html")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (reports, received) = channel();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let (Ok(tcp), Ok(session)) = (tcp, acceptor.session()) else {
                continue;
            };
            let (page, reports) = (page.clone(), reports.clone());
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(WAIT));
                let mut stream = StreamOwned::new(session, tcp);
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body_len) = loop {
                    if let Some(end) = find(&request, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end + 4]).into_owned();
                        let len = head
                            .lines()
                            .filter_map(|line| line.split_once(':'))
                            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (head, len);
                    }
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                };
                let head_len = find(&request, b"\r\n\r\n").unwrap() + 4;
                while request.len() < head_len + body_len {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let (body, kind): (&[u8], &str) = if head.starts_with("POST /report ") {
                    let report = &request[head_len..head_len + body_len];
                    let _ = reports.send(String::from_utf8_lossy(report).into_owned());
                    (b"", "text/plain")
                } else {
                    (&page, "text/html; charset=utf-8")
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                     Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
                let _ = stream.write_all(body);
                let _ = stream.flush();
                stream.conn.send_close_notify();
                let _ = stream.flush();
            });
        }
    });
    (port, received)
}

#[test]
fn chromium_over_wss_gets_pushes_and_echoes() {
    if !chromium() {
        return;
    }
    let pki = Pki::new();
    let (page_port, reports) = https_page(&pki);
    let origin = format!("https://localhost:{page_port}");
    let server = tls_server(&pki, Setup::new().set("origins", &format!("[{origin:?}]")));
    let cookies = Cookies::fresh("alice");
    let port = server.tls().rsplit(':').next().unwrap().to_owned();
    let config = json!({"ws": format!("wss://localhost:{port}/"), "cookie": cookies.header});
    let url = format!("{origin}/page.html#{}", fragment(&config));
    // Chromium trusts the test key by its SPKI hash (the test CA is not in its store).
    let spki = format!(
        "--ignore-certificate-errors-spki-list={}",
        pki.spki_sha256_base64()
    );
    let _browser = Browser::open_with(&url, &[&spki]);
    let next = || -> serde_json::Value {
        let report = reports
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no report from the page within {WAIT:?}"));
        serde_json::from_str(&report).unwrap()
    };
    assert_eq!(next(), json!({"event": "open"}), "{CHROMIUM}");
    let mut control = server.control();
    push_five(&mut control, &cookies);
    for expected in pushed_five().into_iter().chain(echoed_three()) {
        assert_eq!(next(), expected);
    }
}

// --- The control socket over TLS --------------------------------------------------------

#[test]
fn a_tls_control_client_broadcasts_to_a_wss_and_a_plain_client() {
    let pki = Pki::new();
    let server = pki
        .serve(Setup::new())
        .set("servers", r#"["tls://127.0.0.1:0", "tcp://127.0.0.1:0"]"#)
        .set("control", r#""tls://127.0.0.1:0""#)
        .start();
    let ControlAddr::Tls(control_addr) = server.control.clone() else {
        panic!("a tls:// control endpoint: {:?}", server.control);
    };
    let mut wss = pki.client(&server.tls());
    let mut plain = server.client();
    let mut control = pki.control(&control_addr);
    control.send(b'b', b"from a TLS backend");
    assert_eq!(wss.recv_text(), "from a TLS backend");
    assert_eq!(plain.recv_text(), "from a TLS backend");
    assert_eq!(control.status()["connections"], 2);
    // A plaintext backend on the TLS control port gets nothing done.
    let mut raw = TcpStream::connect(&control_addr).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    raw.write_all(b"18bnot over TLS at all").unwrap();
    let mut buf = [0u8; 256];
    let read = raw.read(&mut buf).unwrap_or(0);
    assert!(
        !buf[..read].windows(2).any(|w| w == b"0a"),
        "{:?}",
        &buf[..read]
    );
    assert_eq!(control.status()["connections"], 2);
}

#[test]
fn a_tls_control_client_that_stalls_in_the_handshake_is_dropped() {
    let pki = Pki::new();
    let mut server = pki
        .serve(Setup::new())
        .set("control", r#""tls://127.0.0.1:0""#)
        .set("handshake_timeout", "1")
        .start();
    let ControlAddr::Tls(control_addr) = server.control.clone() else {
        panic!("a tls:// control endpoint");
    };
    // Connected, and silent: the server ends it (with at most an alert record).
    let back = send_and_read_to_end(&control_addr, b"");
    assert!(back.is_empty() || back[0] == 21, "{back:?}");
    server.wait_for_log("TLS handshake timeout");
    let mut control = pki.control(&control_addr);
    assert_eq!(control.status()["connections"], 0);
}

// --- Reload ------------------------------------------------------------------------------

#[test]
fn sighup_serves_a_renewed_certificate_to_new_connections_and_keeps_old_ones() {
    let mut pki = Pki::new();
    let mut server = tls_server(&pki, Setup::new());
    let first = pki.server_der();
    let mut old = pki.client(&server.tls());
    pki.issue();
    let renewed = pki.server_der();
    assert_ne!(first, renewed);
    server.signal(Signal::SIGHUP);
    server.wait_for_log("TLS certificate reloaded");
    let fresh = pki.connect(&server.tls()).unwrap();
    assert_eq!(fresh.server_der(), renewed);
    let mut control = server.control();
    control.send(b'b', b"after the renewal");
    assert_eq!(old.recv_text(), "after the renewal");
    old.send_text("still echoed");
    assert_eq!(old.recv_text(), "still echoed");

    // A broken renewal: the reload is refused and the certificate served stays.
    std::fs::write(pki.cert(), "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    server.signal(Signal::SIGHUP);
    let refused = server.wait_for_log("reload failed");
    assert!(refused.contains("server.pem"), "{refused}");
    let still = pki.connect(&server.tls()).unwrap();
    assert_eq!(still.server_der(), renewed);
    control.send(b'b', b"after the broken renewal");
    assert_eq!(old.recv_text(), "after the broken renewal");
}

// --- wson check ---------------------------------------------------------------------------

fn check(setup: &Setup) -> (Option<i32>, String) {
    let (_dir, path) = setup.write();
    let output = Command::new(wson_bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn check_loads_the_certificate_and_names_what_is_wrong() {
    let mut pki = Pki::new();
    let setup = pki
        .serve(Setup::new())
        .set("servers", r#"["tls://127.0.0.1:0"]"#);
    let (code, text) = check(&setup);
    assert_eq!(code, Some(0), "{text}");
    let without = Setup::new().set("servers", r#"["tls://127.0.0.1:8443"]"#);
    let (code, text) = check(&without);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("tls.cert: missing"), "{text}");
    let old_key = pki.path("old.key");
    std::fs::copy(pki.key(), &old_key).unwrap();
    pki.issue();
    let mismatched = setup
        .clone()
        .set("tls.key", &format!("{:?}", old_key.display().to_string()));
    let (code, text) = check(&mismatched);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("tls.key: the key in"), "{text}");
    assert!(text.contains("does not match"), "{text}");
    let missing = setup.set("tls.cert", r#""/nonexistent/chain.pem""#);
    let (code, text) = check(&missing);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("tls.cert: cannot read /nonexistent/chain.pem"),
        "{text}"
    );
}

// --- Bad input on a TLS port -------------------------------------------------------------

/// Bytes written to the TLS port, then what came back until the server closed.
fn send_and_read_to_end(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    let _ = raw.write_all(bytes);
    let mut back = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match raw.read(&mut buf) {
            Ok(0) | Err(_) => return back,
            Ok(n) => back.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn plaintext_garbage_stalls_and_a_wrong_alpn_are_refused_and_the_server_keeps_serving() {
    let pki = Pki::new();
    let mut server = tls_server(&pki, Setup::new().set("handshake_timeout", "1"));
    let addr = server.tls();
    // Plaintext HTTP: the server answers with a TLS alert (content type 21), not HTTP.
    let cookies = Cookies::fresh("alice");
    let back = send_and_read_to_end(
        &addr,
        request(&addr, &cookies.header, Some(ORIGIN), "").as_bytes(),
    );
    assert!(!back.starts_with(b"HTTP/"), "{back:?}");
    assert!(back.is_empty() || back[0] == 21, "{back:?}");
    // Garbage, and a record header announcing more than TLS allows.
    send_and_read_to_end(&addr, &[0xff; 300]);
    send_and_read_to_end(&addr, &[22, 3, 1, 0xff, 0xff, 1, 2, 3]);
    // A client that starts a ClientHello and stalls: dropped at handshake_timeout.
    let back = send_and_read_to_end(&addr, &[22, 3, 1, 0, 200, 1, 0, 0]);
    assert!(back.is_empty() || back[0] == 21, "{back:?}");
    // ALPN without http/1.1: refused in the handshake.
    let refused = pki
        .connect_with(&addr, &[b"h2"])
        .err()
        .expect("no_application_protocol");
    assert!(
        refused
            .to_string()
            .to_lowercase()
            .contains("noapplicationprotocol")
            || refused.to_string().contains("no_application_protocol"),
        "{refused}"
    );
    server.wait_for_log("TLS handshake refused");
    // The server still serves, over TLS and plain TCP.
    let mut good = pki.client(&addr);
    let mut plain = server.client();
    let mut control = server.control();
    control.send(b'b', b"still serving");
    assert_eq!(good.recv_text(), "still serving");
    assert_eq!(plain.recv_text(), "still serving");
}

#[test]
fn a_wss_client_past_max_connections_gets_503_after_the_tls_handshake() {
    let pki = Pki::new();
    let server = tls_server(&pki, Setup::new().set("max_connections", "1"));
    let _first = pki.client(&server.tls());
    let mut second = WsClient::over(Box::new(pki.connect(&server.tls()).unwrap()));
    let cookies = Cookies::fresh("bob");
    let refusal = second
        .upgrade(&request(&server.tls(), &cookies.header, Some(ORIGIN), ""))
        .expect_err("a refusal");
    assert_eq!(refusal.status, 503, "{}", refusal.raw);
}
