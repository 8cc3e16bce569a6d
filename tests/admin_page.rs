//! The admin page of the `[http]` listener (`GET /`, `src/http/admin.html`) in headless
//! Chromium, read and driven over the DevTools protocol as tests/demo.rs does: the page loads
//! without the key and refuses a wrong one, its figures move when clients connect, it lists
//! online users and topics with their presence, and its form's messages reach clients.
//! The page's script runs at all only because its Content-Security-Policy names its hash.

use serde_json::{Value, json};

use crate::common::*;
use crate::demo::DevTools;
use crate::http_api::{self, KEY};
use crate::real_clients::{Browser, chromium};

/// Sets the value of the element `id` (firing `change`, as a user's choice would).
fn set(page: &mut DevTools, id: &str, value: &str) {
    let script = format!(
        "(() => {{ const e = document.getElementById({id:?}); e.value = {value:?}; \
         e.dispatchEvent(new Event('change')); return true; }})()",
        id = id,
        value = value
    );
    assert_eq!(page.eval(&script), Value::Bool(true));
}

fn click(page: &mut DevTools, id: &str) {
    let script = format!("document.getElementById({id:?}).click(), true");
    assert_eq!(page.eval(&script), Value::Bool(true));
}

/// The cells of the table `id`'s body, row by row.
fn rows(page: &mut DevTools, id: &str) -> Vec<Vec<String>> {
    let script = format!(
        "Array.from(document.getElementById({id:?}).tBodies[0].rows, \
         row => Array.from(row.cells, cell => cell.textContent))"
    );
    serde_json::from_value(page.eval(&script)).unwrap_or_default()
}

fn send_from_form(page: &mut DevTools, to: &str, name: &str, message: &str) {
    set(page, "publish-to", to);
    set(page, "publish-name", name);
    set(page, "publish-message", message);
    page.eval("document.getElementById('publish-result').textContent = ''");
    click(page, "publish-send");
}

#[test]
fn the_admin_page_shows_live_figures_users_topics_and_sends_from_its_form() {
    if !chromium() {
        return;
    }
    let server = http_api::setup().start();
    let origin = format!("http://{}/", http_api::http_addr(&server));
    let browser = Browser::open_with(&origin, &["--remote-debugging-port=0"]);
    let mut page = DevTools::attach(browser.profile(), &origin);

    // Without a key the page shows nothing; a wrong key is explained, not retried silently.
    eventually("the page's script ran", || {
        page.eval("typeof api") == json!("function")
    });
    assert_eq!(page.text("node"), "not connected");
    set(&mut page, "key", "not-the-key-0123456789");
    click(&mut page, "key-use");
    eventually("the refused key explained", || {
        page.text("error").contains("API key was refused")
    });

    set(&mut page, "key", KEY);
    click(&mut page, "key-use");
    eventually("the status figures", || page.text("connections") == "0");
    assert!(
        page.text("node").starts_with("wson "),
        "{}",
        page.text("node")
    );
    assert_eq!(page.text("error"), "");

    // Clients connect: the figures and the listeners table follow.
    let alice = Cookies::fresh("alice");
    let bob = Cookies::fresh("bob");
    let mut alice_ws = WsClient::connect_tcp(&server.tcp(), &alice).unwrap();
    let mut bob_ws = WsClient::connect_tcp(&server.tcp(), &bob).unwrap();
    eventually("two connections on the page", || {
        page.text("connections") == "2" && page.text("users-online") == "2"
    });
    let endpoint = format!("tcp://{}", server.tcp());
    eventually("the listener's connections", || {
        rows(&mut page, "listeners").iter().any(|row| {
            row.first() == Some(&endpoint) && row.last().map(String::as_str) == Some("2")
        })
    });

    // Users and topics, with a topic's presence.
    http_api::ok(
        &server,
        "subscribe",
        json!({"topic": "news.sport", "user": "alice"}),
    );
    click(&mut page, "users-first");
    eventually("the online users", || {
        rows(&mut page, "users") == [["alice", "1"], ["bob", "1"]]
    });
    click(&mut page, "topics-first");
    eventually("the topics", || {
        rows(&mut page, "topics") == [["news.sport", "1"]]
    });
    assert_eq!(
        page.eval("document.querySelector('#topics a.topic').click(), true"),
        Value::Bool(true)
    );
    eventually("the topic's presence", || {
        page.text("presence-topic") == "news.sport"
            && rows(&mut page, "presence") == [["alice", "1"]]
    });

    // The form: to a user, to a topic, to everyone.
    send_from_form(&mut page, "user", "bob", "to bob from the admin page");
    assert_eq!(bob_ws.recv_text(), "to bob from the admin page");
    eventually("the user send reported", || {
        page.text("publish-result") == "sent to 1 connection(s) of bob"
    });
    send_from_form(&mut page, "topic", "news.sport", "goal \u{26bd}");
    assert_eq!(alice_ws.recv_text(), "goal \u{26bd}");
    eventually("the publication reported", || {
        page.text("publish-result")
            .starts_with("published to news.sport")
    });
    send_from_form(&mut page, "everyone", "", "to everyone");
    assert_eq!(alice_ws.recv_text(), "to everyone");
    assert_eq!(bob_ws.recv_text(), "to everyone");

    // Messages per second move while messages go out.
    eventually("a message rate on the page", || {
        http_api::ok(&server, "broadcast", json!({"message": "tick"}));
        let rate = page.text("messages-out-rate");
        rate != "–" && rate != "0.0"
    });

    // A client leaves: the figures follow.
    drop(bob_ws);
    eventually("one connection left on the page", || {
        page.text("connections") == "1"
    });
}
