//! WAMP v1 clients (subprotocol `wamp`) against the real binary: the v1 session is a session
//! of the backend realm, so it shares topics and procedures with v2 clients and the control
//! socket's `V` session and `x` publishes. A raw v1 JSON client over the tests' WsClient.

use serde_json::{Value, json};
use wson::ws::frame::OpCode;

use crate::common::wamp::v1_upgrade;
use crate::common::*;

/// A WAMP v1 client: the server speaks first (WELCOME).
struct V1 {
    ws: WsClient,
    session: String,
    syncs: u64,
}

impl V1 {
    fn connect(server: &Server, cookies: &Cookies, protocols: &str) -> V1 {
        let mut ws = v1_upgrade(server, &cookies.header, protocols);
        let welcome: Value = serde_json::from_str(&ws.recv_text()).unwrap();
        assert_eq!(welcome[0], 0, "WELCOME first, got {welcome}");
        assert_eq!(welcome[2], 1);
        assert!(
            welcome[3].as_str().unwrap().starts_with("wson/"),
            "{welcome}"
        );
        let session = welcome[1].as_str().unwrap().to_owned();
        assert!(session.parse::<u64>().is_ok(), "{welcome}");
        V1 {
            ws,
            session,
            syncs: 0,
        }
    }

    fn send(&mut self, message: Value) {
        self.ws.send_text(&message.to_string());
    }

    fn recv(&mut self) -> Value {
        let frame = self.ws.recv_data();
        assert_eq!(frame.opcode, OpCode::Text, "v1 is JSON in text frames");
        serde_json::from_str(&frame.text()).unwrap()
    }

    /// v1 SUBSCRIBE has no answer: a CALL to no procedure, answered in order, tells that
    /// the server has handled what came before.
    fn sync(&mut self) {
        self.syncs += 1;
        let id = format!("sync{}", self.syncs);
        self.send(json!([2, id, "com.example.nothing.here"]));
        let reply = self.recv();
        assert_eq!(reply[0], 4, "CALLERROR expected, got {reply}");
        assert_eq!(reply[1], json!(id));
        assert_eq!(reply[2], "wamp.error.no_such_procedure");
    }
}

/// A v2 client (`wamp.2.json`) joined to the backend realm.
fn v2(server: &Server, user: &str) -> WsClient {
    let mut ws = WsClient::accepted_offering(server, &Cookies::fresh(user).header, "wamp.2.json");
    ws.send_text(
        r#"[1,"realm1",{"roles":{"subscriber":{},"publisher":{},"caller":{},"callee":{}}}]"#,
    );
    let welcome: Value = serde_json::from_str(&ws.recv_text()).unwrap();
    assert_eq!(welcome[0], 2, "{welcome}");
    ws
}

fn recv(ws: &mut WsClient) -> Value {
    serde_json::from_str(&ws.recv_text()).unwrap()
}

#[test]
fn wamp_is_chosen_unless_a_v2_serializer_comes_first() {
    let server = Setup::new().start();
    V1::connect(&server, &Cookies::fresh("alice"), "chat, wamp, wamp.2.json");
    let cookies = Cookies::fresh("alice");
    let ws = WsClient::accepted_offering(&server, &cookies.header, "wamp.2.json, wamp");
    assert_eq!(ws.chosen_protocol(), Some("wamp.2.json"));
}

#[test]
fn v1_and_v2_publish_to_each_other() {
    let server = Setup::new().start();
    let mut old = V1::connect(&server, &Cookies::fresh("alice"), "wamp");
    old.send(json!([1, "news", "com.example.news."]));
    old.send(json!([5, "news:sport"]));
    old.sync();
    let mut new = v2(&server, "bob");
    new.send_text(r#"[32,1,{},"com.example.news.sport"]"#);
    assert_eq!(recv(&mut new)[0], 33);
    // v2 -> v1: one argument is the event.
    new.send_text(r#"[16,2,{},"com.example.news.sport",["goal"]]"#);
    assert_eq!(old.recv(), json!([8, "com.example.news.sport", "goal"]));
    // v1 -> v2: the event is the one argument; the publisher is excluded by default.
    old.send(json!([7, "news:sport", {"score": "1-0"}]));
    let event = recv(&mut new);
    assert_eq!(event[0], 36, "{event}");
    assert_eq!(event[4], json!([{"score": "1-0"}]));
    // excludeMe false: the v1 publisher gets its own event.
    old.send(json!([7, "news:sport", 2, false]));
    assert_eq!(old.recv(), json!([8, "com.example.news.sport", 2]));
    assert_eq!(recv(&mut new)[4], json!([2]));
    // eligible: only the v1 session named.
    let me = old.session.clone();
    old.send(json!([7, "news:sport", 3, [], [me]]));
    assert_eq!(old.recv(), json!([8, "com.example.news.sport", 3]));
    new.send_text(r#"[16,3,{"exclude_me":false},"com.example.news.sport",["last"]]"#);
    assert_eq!(recv(&mut new)[4], json!(["last"]));
}

#[test]
fn a_control_publish_reaches_a_v1_subscriber() {
    let server = Setup::new().start();
    let mut old = V1::connect(&server, &Cookies::fresh("alice"), "wamp");
    old.send(json!([5, "news.sport"]));
    old.sync();
    let mut control = server.control();
    control.send(b'x', b"10:news.sport5:Goal!");
    assert_eq!(old.recv(), json!([8, "news.sport", "Goal!"]));
}

#[test]
fn a_v1_call_reaches_control_and_v2_callees() {
    let server = Setup::new().start();
    let mut control = server.control();
    control.send_v(&json!([64, 1, {}, "com.example.add"]));
    assert_eq!(control.next_v()[0], 65);
    let mut callee = v2(&server, "bob");
    callee.send_text(r#"[64,1,{},"com.example.upper"]"#);
    assert_eq!(recv(&mut callee)[0], 65);

    let mut old = V1::connect(&server, &Cookies::fresh("alice"), "wamp");
    old.send(json!([1, "ex", "com.example."]));
    old.send(json!([2, "a1", "ex:add", 2, 3]));
    let invocation = control.next_v();
    assert_eq!(invocation[0], 68, "{invocation}");
    assert_eq!(invocation[4], json!([2, 3]));
    control.send_v(&json!([70, invocation[1], {}, [5]]));
    assert_eq!(old.recv(), json!([3, "a1", 5]));
    // An error with a text: CALLERROR with it as errorDesc.
    old.send(json!([2, "a2", "ex:add"]));
    let invocation = control.next_v();
    control.send_v(&json!([
        8,
        68,
        invocation[1],
        {},
        "com.example.bad_args",
        ["two numbers"]
    ]));
    assert_eq!(
        old.recv(),
        json!([
            4,
            "a2",
            "com.example.bad_args",
            "two numbers",
            "two numbers"
        ])
    );
    // A v2 callee; kwargs only: the result is the dict.
    old.send(json!([2, "u1", "com.example.upper", "shout"]));
    let invocation = recv(&mut callee);
    assert_eq!(invocation[0], 68, "{invocation}");
    assert_eq!(invocation[4], json!(["shout"]));
    callee.send_text(&json!([70, invocation[1], {}, [], {"text": "SHOUT"}]).to_string());
    assert_eq!(old.recv(), json!([3, "u1", {"text": "SHOUT"}]));
    // An undefined CURIE: CALLERROR at once.
    old.send(json!([2, "u2", "nope:upper"]));
    let error = old.recv();
    assert_eq!(error[0], 4);
    assert_eq!(error[1], "u2");
    assert_eq!(error[2], "wamp.error.invalid_uri");
}

/// Virge::Stork's feeds: topics `version.feedName.feedId`, each subscribe checked by the
/// feed's verifier with the session and the feed id. In wson the verifier is the role's
/// authorizer, here the backend's procedure over `V`: a v1 SUBSCRIBE (which has no answer in
/// v1) is held until it decides, in order with what the session sends after it.
#[test]
fn stork_feeds_verified_per_topic_by_the_authorizer() {
    let server = Setup::new()
        .set(
            "wamp.realm.realm1.role",
            r#"[{name = "user", authorizer = "stork.verify"}]"#,
        )
        .start();
    let mut control = server.control();
    control.send_v(&json!([64, 1, {}, "stork.verify"]));
    assert_eq!(control.next_v()[0], 65);
    let verify = |control: &mut Control, topic: &str, action: &str, allow: bool| {
        let invocation = control.next_v();
        assert_eq!(invocation[0], 68, "{invocation}");
        let [details, uri, asked, _options] = invocation[4].as_array().unwrap().as_slice() else {
            panic!("{invocation}");
        };
        assert_eq!(details["authid"], "alice");
        assert_eq!((uri.as_str(), asked.as_str()), (Some(topic), Some(action)));
        control.send_v(&json!([70, invocation[1], {}, [allow]]));
    };

    let mut old = V1::connect(&server, &Cookies::fresh("alice"), "wamp");
    old.send(json!([1, "orders", "v1.orders."]));
    // alice's order 42 is hers; 43 is not.
    old.send(json!([5, "orders:42"]));
    old.send(json!([5, "orders:43"]));
    old.send(json!([2, "c1", "v1.orders.count"]));
    verify(&mut control, "v1.orders.42", "subscribe", true);
    verify(&mut control, "v1.orders.43", "subscribe", false);
    verify(&mut control, "v1.orders.count", "call", true);
    let reply = old.recv();
    assert_eq!(
        reply[0], 4,
        "CALLERROR for the unregistered procedure: {reply}"
    );
    control.send(b'x', b"12:v1.orders.436:closed");
    control.send(b'x', b"12:v1.orders.425:ready");
    assert_eq!(old.recv(), json!([8, "v1.orders.42", "ready"]));
}
