//! The demo of `examples/demo/` as README's "Try it in a browser" runs it: wson, the demo's
//! PHP backend under `php -S`, and the page in headless Chromium.
//!
//! What the page shows is read from its DOM over the DevTools protocol: Chromium runs with
//! `--remote-debugging-port=0`, writes the port it picked to `DevToolsActivePort` in its
//! profile, and the test evaluates expressions in the page over a WebSocket (the small
//! client of `common`, without an Origin header, which DevTools accepts).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;
use crate::php::{self, PhpServer};
use crate::real_clients::{Browser, chromium};

fn demo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo")
}

/// A DevTools session attached to one page.
pub(crate) struct DevTools {
    socket: WsClient,
    next_id: u64,
}

impl DevTools {
    /// Attaches to the page whose URL starts with `url`, once Chromium has opened it.
    pub(crate) fn attach(profile: &Path, url: &str) -> DevTools {
        let port_file = profile.join("DevToolsActivePort");
        let mut port = 0;
        eventually("Chromium's DevToolsActivePort", || {
            let text = fs::read_to_string(&port_file).unwrap_or_default();
            port = text.lines().next().unwrap_or("").parse().unwrap_or(0);
            port != 0
        });
        let mut path = String::new();
        eventually("the demo page among Chromium's targets", || {
            let list: Value =
                serde_json::from_str(&php::get(port, "/json/list").body).unwrap_or(Value::Null);
            let page = list.as_array().into_iter().flatten().find(|target| {
                target["type"] == "page"
                    && target["url"].as_str().is_some_and(|u| u.starts_with(url))
            });
            if let Some(page) = page {
                let ws = page["webSocketDebuggerUrl"].as_str().unwrap();
                path = ws[ws.find("/devtools/").unwrap()..].to_string();
            }
            !path.is_empty()
        });
        let address = format!("127.0.0.1:{port}");
        let mut socket = WsClient::raw_tcp(&address);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        socket
            .upgrade(&request)
            .unwrap_or_else(|refused| panic!("DevTools refused: {refused:?}"));
        DevTools { socket, next_id: 1 }
    }

    /// The value of a JavaScript expression in the page.
    pub(crate) fn eval(&mut self, expression: &str) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let call = json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": true},
        });
        self.socket.send_text(&call.to_string());
        loop {
            let reply: Value = serde_json::from_str(&self.socket.recv_text()).unwrap();
            // Anything else would be an event; none is enabled, but skip them anyway.
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{reply}");
                return reply["result"]["result"]["value"].clone();
            }
        }
    }

    pub(crate) fn text(&mut self, id: &str) -> String {
        let value = self.eval(&format!("document.getElementById('{id}').textContent"));
        value.as_str().unwrap_or_default().to_string()
    }

    fn messages(&mut self) -> Vec<String> {
        let value = self
            .eval("Array.from(document.querySelectorAll('#messages li'), li => li.textContent)");
        serde_json::from_value(value).unwrap_or_default()
    }
}

/// The demo backend (`serve.php`), then wson beside it with the backend's address as its
/// allowed origin: (the backend, wson, that origin, wson's TCP port).
fn demo_backend_and_wson() -> (PhpServer, Server, String, String) {
    let folder = tempfile::tempdir().unwrap();
    let secret_file = folder.path().join("secret");
    let control = format!("unix://{}", folder.path().join("control.sock").display());
    let web = PhpServer::start(
        &demo_dir().join("serve.php"),
        &[
            ("WSON_SECRET_FILE", secret_file.to_str().unwrap()),
            ("WSON_CONTROL", &control),
        ],
    );
    let origin = format!("http://localhost:{}", web.port);
    let setup = Setup::new()
        .unset("secret")
        .set("secret_file", r#""secret""#)
        .set("origins", &format!("[{origin:?}]"));
    let config = folder.path().join("wson.toml");
    fs::write(&config, setup.toml()).unwrap();
    let server = Server::start_in(folder, config, setup.toml(), &[]);
    let ws_port = server.tcp().rsplit(':').next().unwrap().to_string();
    (web, server, origin, ws_port)
}

#[test]
fn demo_page_connects_shows_pushed_messages_and_the_close_code() {
    if crate::common::php().is_none() || !chromium() {
        return;
    }
    let (web, server, origin, ws_port) = demo_backend_and_wson();

    let page = format!("{origin}/?ws=ws%3A%2F%2Flocalhost%3A{ws_port}%2F");
    let browser = Browser::open_with(&page, &["--remote-debugging-port=0"]);
    let mut devtools = DevTools::attach(browser.profile(), &origin);
    eventually("the page's WebSocket is open", || {
        devtools.text("status") == "open"
    });
    assert_eq!(devtools.text("url"), format!("ws://localhost:{ws_port}/"));

    // A push from the control socket.
    let mut control = server.control();
    control.send(b'b', "Hello from the control socket \u{2713}".as_bytes());
    eventually("the pushed message on the page", || {
        devtools.messages() == ["Hello from the control socket \u{2713}"]
    });

    // A push through the demo backend, as the page's button does it.
    let push = php::get(web.port, "/push?msg=Hello%20from%20PHP");
    assert_eq!(
        (push.status, push.body.as_str()),
        (200, "pushed\n"),
        "{push:?}"
    );
    eventually("the message pushed through serve.php", || {
        devtools.messages().len() == 2
    });
    assert_eq!(
        devtools.messages(),
        ["Hello from the control socket \u{2713}", "Hello from PHP"]
    );

    // Stopping wson closes the page's WebSocket with 1001 "going away".
    server.signal(nix::sys::signal::Signal::SIGTERM);
    eventually("the close on the page", || {
        devtools.text("status") == "closed"
    });
    assert_eq!(
        devtools.text("close"),
        r#"(code 1001, reason "going away")"#
    );
}

/// The same demo on `clients/js/wson.js` (`/js/`, `clients/js/demo.html`): it connects, shows
/// a push and, when wson stops, says it goes away and waits to reconnect instead of closing.
#[test]
fn js_demo_page_connects_shows_pushes_and_waits_to_reconnect_when_wson_stops() {
    if crate::common::php().is_none() || !chromium() {
        return;
    }
    let (web, server, origin, ws_port) = demo_backend_and_wson();

    let page = format!("{origin}/js/?ws=ws%3A%2F%2Flocalhost%3A{ws_port}%2F");
    let browser = Browser::open_with(&page, &["--remote-debugging-port=0"]);
    let mut devtools = DevTools::attach(browser.profile(), &origin);
    eventually("the page's client is open", || {
        devtools.text("status") == "open"
    });
    let push = php::get(web.port, "/push?msg=Hello%20from%20PHP");
    assert_eq!(push.status, 200, "{push:?}");
    eventually("the pushed message on the page", || {
        devtools.messages() == ["Hello from PHP"]
    });

    server.signal(nix::sys::signal::Signal::SIGTERM);
    eventually("the page waits to reconnect", || {
        devtools.text("status") == "waiting"
    });
    let events =
        devtools.eval("Array.from(document.querySelectorAll('#events li'), li => li.textContent)");
    let events: Vec<String> = serde_json::from_value(events).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with(r#"wson is going away (1001 "going away")"#)),
        "{events:?}"
    );
}
