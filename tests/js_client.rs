//! `clients/js/wson.js`, the browser helper, in headless Chromium against the real daemon.
//!
//! A small HTTP server of the test serves the page `tests/clients/wson_js.html` (with the
//! auth cookies in `Set-Cookie`, as a backend would), `clients/js/wson.js` itself, a `/renew`
//! endpoint answering fresh cookies in `Set-Cookie` (what the helper's `renew` callback
//! calls) and `/report`, where the page posts every event of the client as JSON, in order.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use serde_json::{Value, json};
use wson::auth::Digest;
use wson::token::Token;

use crate::common::*;
use crate::real_clients::{Browser, chromium, fragment, read_http_request};

/// Shortest and longest backoff caps the page configures, in ms.
const BASE_DELAY: u64 = 100;
const MAX_DELAY: u64 = 800;

/// The page's web server: see the module docs. Stopped on drop.
struct KitServer {
    port: u16,
    reports: Receiver<String>,
    /// The token of each cookie set `/renew` handed out.
    renewals: Receiver<String>,
    stop: Arc<AtomicBool>,
    said: Vec<String>,
}

/// What the web server threads share.
struct Site {
    page: Vec<u8>,
    module: Vec<u8>,
    cookies: String,
    reports: Sender<String>,
    renewals: Sender<String>,
}

impl KitServer {
    /// Serves the page with `cookies` (a Cookie header's text) set by its response.
    fn start(cookies: &Cookies) -> KitServer {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (report_tx, reports) = channel();
        let (renewal_tx, renewals) = channel();
        let site = Arc::new(Site {
            page: std::fs::read(clients_dir().join("wson_js.html")).unwrap(),
            module: std::fs::read(root.join("clients/js/wson.js")).unwrap(),
            cookies: cookies.header.clone(),
            reports: report_tx,
            renewals: renewal_tx,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let site = Arc::clone(&site);
                std::thread::spawn(move || serve(stream, &site));
            }
        });
        KitServer {
            port,
            reports,
            renewals,
            stop,
            said: Vec::new(),
        }
    }

    fn origin(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    /// Opens the page in Chromium, the client connecting to `server`'s TCP listener.
    fn open(&self, server: &Server) -> Browser {
        self.open_with(server, json!({}))
    }

    /// With more of the client's options (`{"maxAttempts": 3}`).
    fn open_with(&self, server: &Server, options: Value) -> Browser {
        let port = server.tcp().rsplit(':').next().unwrap().to_string();
        let mut config = json!({
            "ws": format!("ws://localhost:{port}/"),
            "baseDelay": BASE_DELAY,
            "maxDelay": MAX_DELAY,
        });
        for (key, value) in options.as_object().unwrap() {
            config[key] = value.clone();
        }
        let url = format!("{}/page.html#{}", self.origin(), fragment(&config));
        Browser::open_with(&url, &[])
    }

    /// The next report of the page; fails after `WAIT`.
    fn next(&mut self) -> Value {
        let report = self
            .reports
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no report from the page within {WAIT:?}"));
        self.said.push(report.clone());
        serde_json::from_str(&report).unwrap_or_else(|e| panic!("not JSON ({e}): {report}"))
    }

    /// The next report, which must be event `name`.
    fn expect(&mut self, name: &str) -> Value {
        let report = self.next();
        assert_eq!(report["event"], name, "{report}");
        report
    }
}

impl Drop for KitServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if std::thread::panicking() {
            eprintln!("--- the page reported:\n{}", self.said.join("\n"));
        }
    }
}

fn serve(mut stream: TcpStream, site: &Site) {
    let Some((request_line, body)) = read_http_request(&mut stream) else {
        return;
    };
    let target = request_line.split(' ').nth(1).unwrap_or_default();
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let method = request_line.split(' ').next().unwrap_or_default();
    let (status, kind, body, cookies) = match (method, path) {
        ("POST", "/report") => {
            let _ = site
                .reports
                .send(String::from_utf8_lossy(&body).into_owned());
            ("200 OK", "text/plain", Vec::new(), None)
        }
        ("POST", "/renew") => {
            let fresh = Cookies::fresh("alice");
            let _ = site.renewals.send(fresh.token_str());
            ("200 OK", "text/plain", Vec::new(), Some(fresh.header))
        }
        ("GET", "/page.html") => (
            "200 OK",
            "text/html; charset=utf-8",
            site.page.clone(),
            Some(site.cookies.clone()),
        ),
        ("GET", "/wson.js") => ("200 OK", "text/javascript", site.module.clone(), None),
        _ => ("404 Not Found", "text/plain", Vec::new(), None),
    };
    // The four cookies, each in its own Set-Cookie, for every path of this host (any port).
    let set_cookies: String = cookies
        .iter()
        .flat_map(|header| header.split("; "))
        .map(|pair| format!("Set-Cookie: {pair}; Path=/; SameSite=Lax\r\n"))
        .collect();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{set_cookies}\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

/// A server whose only allowed origin is the page's.
fn setup_for(site: &KitServer) -> Setup {
    Setup::new().set("origins", &format!("[{:?}]", site.origin()))
}

/// The wait reported for retry `attempt` is below its full-jitter cap.
fn assert_backoff(report: &Value, attempt: u64) {
    assert_eq!(report["attempt"], attempt, "{report}");
    let cap = MAX_DELAY.min(BASE_DELAY << attempt);
    let delay = report["delay"].as_u64().unwrap();
    assert!(
        delay < cap,
        "retry {attempt} waits {delay} ms, cap {cap}: {report}"
    );
}

#[test]
fn wson_js_gets_text_and_binary_pushes_and_a_clean_close_does_not_reconnect() {
    if !chromium() {
        return;
    }
    let cookies = Cookies::fresh("alice");
    let mut site = KitServer::start(&cookies);
    let server = setup_for(&site).start();
    let _browser = site.open(&server);
    site.expect("open");
    let mut control = server.control();
    control.send(b'b', "broadcast \u{2713}".as_bytes());
    assert_eq!(
        site.next(),
        json!({"event": "text", "data": "broadcast \u{2713}"})
    );
    control.direct(b'D', &cookies.token, &[0x00, 0x01, 0xfe, 0xff]);
    assert_eq!(site.next(), json!({"event": "binary", "hex": "0001feff"}));
    // The page closes the client when told to, then waits twice the longest backoff.
    control.send(b'b', b"close-now");
    site.expect("text");
    closed_for_good(&mut site, &mut control, 1000, "");
}

/// The page's client closed cleanly with `code` and `reason`, stayed closed for twice its
/// longest backoff, and wson holds no connection.
fn closed_for_good(site: &mut KitServer, control: &mut Control, code: u16, reason: &str) {
    assert_eq!(
        site.next(),
        json!({"event": "close", "code": code, "reason": reason, "wasClean": true})
    );
    assert_eq!(site.next(), json!({"event": "quiet", "state": "closed"}));
    assert_eq!(control.status()["connections"], 0);
}

#[test]
fn wson_js_reconnects_with_backoff_after_a_restart() {
    if !chromium() {
        return;
    }
    let cookies = Cookies::fresh("alice");
    let mut site = KitServer::start(&cookies);
    let mut first = setup_for(&site).start();
    let address = first.tcp();
    let _browser = site.open(&first);
    site.expect("open");

    // A stopping wson sends 1001: the client reconnects soon, retry 0's short wait.
    first.signal(nix::sys::signal::Signal::SIGTERM);
    let going = site.expect("goingaway");
    assert_eq!(
        (going["code"].as_u64(), going["reason"].as_str()),
        (Some(1001), Some("going away"))
    );
    assert_backoff(&going, 0);
    first.wait_exit();
    // Nothing listens: each attempt fails before opening (1006), waiting longer each time.
    for attempt in 1..=3 {
        let refused = site.expect("refused");
        assert_eq!(refused["code"], 1006, "{refused}");
        assert_backoff(&refused, attempt);
    }
    let second = setup_for(&site)
        .set("servers", &format!(r#"["tcp://{address}"]"#))
        .start();
    let mut attempt = 3;
    loop {
        let report = site.next();
        if report["event"] == "open" {
            break;
        }
        attempt += 1;
        assert_eq!(report["event"], "refused", "{report}");
        assert_backoff(&report, attempt);
    }
    let mut control = second.control();
    control.direct(b'c', &cookies.token, b"welcome back");
    assert_eq!(control.reply_text(), format!("32A{}", cookies.token_str()));
    assert_eq!(
        site.next(),
        json!({"event": "text", "data": "welcome back"})
    );
}

#[test]
fn wson_js_renews_the_cookies_after_an_expired_close_and_reconnects_with_them() {
    if !chromium() {
        return;
    }
    // Cookies that expire a few seconds after the page opens.
    let lifetime = 60;
    let issued = now() - lifetime + 5;
    let cookies = Cookies::signed("alice", issued, SECRET.as_bytes(), Digest::Md5);
    let mut site = KitServer::start(&cookies);
    let server = setup_for(&site)
        .set("token_lifetime", &lifetime.to_string())
        .start();
    let _browser = site.open(&server);
    site.expect("open");
    let expired = site.expect("expired");
    assert_eq!(
        expired,
        json!({"event": "expired", "code": 1000, "reason": "expired", "wasClean": true})
    );
    site.expect("renew");
    let fresh = site.renewals.recv_timeout(WAIT).unwrap();
    assert_eq!(site.next(), json!({"event": "renewed", "ok": true}));
    site.expect("open");
    // The new connection holds the fresh token, not the expired one.
    let mut control = server.control();
    control.direct(b'c', &cookies.token, b"to the old token");
    assert_eq!(control.reply_text(), format!("32N{}", cookies.token_str()));
    let fresh_token = Token::from_slice(fresh.as_bytes()).unwrap();
    control.direct(b'c', &fresh_token, b"to the fresh token");
    assert_eq!(control.reply_text(), format!("32A{fresh}"));
    assert_eq!(
        site.next(),
        json!({"event": "text", "data": "to the fresh token"})
    );
}

#[test]
fn wson_js_reports_a_busy_token_as_refused_and_retries_until_it_is_free() {
    if !chromium() {
        return;
    }
    let cookies = Cookies::fresh("alice");
    let mut site = KitServer::start(&cookies);
    // The page's origin, and the test client's.
    let origins = format!("[{:?}, {ORIGIN:?}]", site.origin());
    let mut server = Setup::new().set("origins", &origins).start();
    // Another connection holds the token: the page's upgrades get 429, which a browser sees
    // as a 1006 before any open.
    let holder = WsClient::connect_tcp(&server.tcp(), &cookies).expect("handshake accepted");
    let _browser = site.open(&server);
    for attempt in 1..=2 {
        let refused = site.expect("refused");
        assert_eq!(refused["code"], 1006, "{refused}");
        assert_backoff(&refused, attempt);
    }
    let refusal = server.wait_for_log("handshake refused");
    assert!(refusal.contains("status=429"), "{refusal}");
    drop(holder);
    let mut attempt = 2;
    loop {
        let report = site.next();
        if report["event"] == "open" {
            break;
        }
        attempt += 1;
        assert_eq!(report["event"], "refused", "{report}");
        assert_backoff(&report, attempt);
    }
}

#[test]
fn wson_js_does_not_reconnect_after_a_kick() {
    if !chromium() {
        return;
    }
    let cookies = Cookies::fresh("alice");
    let mut site = KitServer::start(&cookies);
    let server = setup_for(&site).start();
    let _browser = site.open(&server);
    site.expect("open");
    let mut control = server.control();
    control.send_fields(b'K', &[b"alice", b"4008", b"banned"]);
    assert_eq!(control.reply_text(), "1#1");
    closed_for_good(&mut site, &mut control, 4008, "banned");
}

#[test]
fn wson_js_gives_up_after_max_attempts_refusals_in_a_row() {
    if !chromium() {
        return;
    }
    let cookies = Cookies::fresh("alice");
    let mut site = KitServer::start(&cookies);
    let origins = format!("[{:?}, {ORIGIN:?}]", site.origin());
    let server = Setup::new().set("origins", &origins).start();
    let _holder = WsClient::connect_tcp(&server.tcp(), &cookies).expect("handshake accepted");
    let _browser = site.open_with(&server, json!({"maxAttempts": 3}));
    for attempt in 1..=2 {
        assert_backoff(&site.expect("refused"), attempt);
    }
    let giveup = site.expect("giveup");
    assert_eq!(
        (giveup["attempts"].as_u64(), giveup["code"].as_u64()),
        (Some(3), Some(1006))
    );
    site.expect("close");
    assert_eq!(site.next(), json!({"event": "quiet", "state": "closed"}));
}

/// With `positions`, the helper resumes: a kick (code 3000, which it retries) while two
/// publications go out, and it reports them once, in order, then a live one; a gap the
/// history (size 2) cannot fill is reported as `reload`, with the topic's position now.
#[test]
fn wson_js_resumes_a_topic_after_a_reconnect_and_reports_a_reload() {
    if !chromium() {
        return;
    }
    let cookies = Cookies::fresh("alice");
    let mut site = KitServer::start(&cookies);
    let server = setup_for(&site)
        .set("history.prefixes", r#"["news."]"#)
        .set("history.size", "2")
        .start();
    let mut control = server.control();
    control.count(b'J', &[b"alice", b"news.a"]);
    let _browser = site.open_with(&server, json!({"positions": {}}));
    site.expect("open");
    control.send_fields(b'x', &[b"news.a", b"one"]);
    assert_eq!(site.next(), json!({"event": "text", "data": "one"}));

    // The kick and the publications in one write: wson runs them before any reconnect.
    let token = cookies.token_str();
    let mut batch = Vec::new();
    for (command, fields) in [
        (b'k', vec![token.as_bytes(), b"3000".as_slice()]),
        (b'x', vec![b"news.a".as_slice(), b"two"]),
        (b'x', vec![b"news.a".as_slice(), b"three"]),
    ] {
        wson::control::fields::encode_fields_frame(command, &fields, &mut batch);
    }
    control.send_raw(&batch);
    assert_eq!(control.reply_text(), "1#1");
    site.expect("retry");
    site.expect("open");
    assert_eq!(site.next(), json!({"event": "text", "data": "two"}));
    assert_eq!(site.next(), json!({"event": "text", "data": "three"}));
    control.send_fields(b'x', &[b"news.a", b"four"]);
    assert_eq!(site.next(), json!({"event": "text", "data": "four"}));

    // Three while away, with room for two: offset 5 left the history.
    let mut batch = Vec::new();
    for (command, fields) in [
        (b'k', vec![token.as_bytes(), b"3000".as_slice()]),
        (b'x', vec![b"news.a".as_slice(), b"five"]),
        (b'x', vec![b"news.a".as_slice(), b"six"]),
        (b'x', vec![b"news.a".as_slice(), b"seven"]),
    ] {
        wson::control::fields::encode_fields_frame(command, &fields, &mut batch);
    }
    control.send_raw(&batch);
    assert_eq!(control.reply_text(), "1#1");
    site.expect("retry");
    site.expect("open");
    let reload = site.expect("reload");
    assert_eq!(
        (&reload["topic"], &reload["reason"]),
        (&"news.a".into(), &"gone".into())
    );
    assert_eq!(reload["offset"], 7, "{reload}");
    control.send_fields(b'x', &[b"news.a", b"eight"]);
    assert_eq!(site.next(), json!({"event": "text", "data": "eight"}));
}

/// Across a restart of its wson node, the helper resumes from the cluster's history in
/// Redis (issue 15): node a restarts (SIGTERM, then a new process on the same address)
/// while node b publishes; the page gets exactly what it missed, in order, then live ones.
#[test]
fn wson_js_resumes_across_a_node_restart_from_the_clusters_history() {
    if !chromium() {
        return;
    }
    let Some(redis) = crate::cluster::Redis::start() else {
        return;
    };
    let cookies = Cookies::fresh("alice");
    let mut site = KitServer::start(&cookies);
    let origin = format!("[{:?}]", site.origin());
    let node = |name: &str, servers: Option<&str>| {
        let mut setup = Setup::new()
            .set("origins", &origin)
            .set("history.prefixes", r#"["news."]"#)
            .set("cluster.redis", &format!("{:?}", redis.url()))
            .set("cluster.node_id", &format!("{name:?}"));
        if let Some(address) = servers {
            setup = setup.set("servers", &format!(r#"["tcp://{address}"]"#));
        }
        setup.start()
    };
    let mut a = node("a", None);
    let b = node("b", None);
    for server in [&a, &b] {
        crate::cluster::wait_redis(server, "up");
        crate::cluster::wait_nodes(server, 2);
    }
    let address = a.tcp();
    a.control().count(b'J', &[b"alice", b"news.a"]);
    let _browser = site.open_with(&a, json!({"positions": {}}));
    site.expect("open");
    let mut control_b = b.control();
    let first = control_b.ask(b'Y', &[b"news.a", b"one"]);
    assert!(
        matches!(first, wson::control::command::Reply::Position(Some(_))),
        "{first:?}"
    );
    assert_eq!(site.next(), json!({"event": "text", "data": "one"}));

    a.signal(nix::sys::signal::Signal::SIGTERM);
    site.expect("goingaway");
    a.wait_exit();
    // Published while node a is down, through node b.
    for text in ["two", "three"] {
        control_b.send_fields(b'x', &[b"news.a", text.as_bytes()]);
    }
    let a = node("a", Some(&address));
    crate::cluster::wait_redis(&a, "up");
    // The restarted node knows nothing of alice's subscription: the backend makes it again.
    a.control().count(b'J', &[b"alice", b"news.a"]);
    loop {
        let report = site.next();
        match report["event"].as_str() {
            Some("open") => break,
            Some("refused" | "retry") => {}
            _ => panic!("before reconnecting: {report}"),
        }
    }
    // Node a's copy of the history is new: the two come from Redis.
    assert_eq!(site.next(), json!({"event": "text", "data": "two"}));
    assert_eq!(site.next(), json!({"event": "text", "data": "three"}));
    control_b.send_fields(b'x', &[b"news.a", b"four"]);
    assert_eq!(site.next(), json!({"event": "text", "data": "four"}));
    assert_eq!(a.control().status()["cluster_history_fetches"], 1);
}
