//! WAMP v1 clients as autobahn-python 0.8 speaks to wson (issue 12), and the keepalive pings
//! a v1 client gets, as BabDev's WebSocket bundle sends them (Ratchet's periodic server ping).
//!
//! autobahn 0.8.x is the only autobahn-python with a v1 client (`autobahn.wamp1`; 0.9 dropped
//! it), and that client does not run on Python 3. autobahn 0.8.15 with Twisted 26.10.0
//! installs on Python 3.11 and imports, but `autobahn/wamp1/protocol.py` is Python 2 code (the
//! same in 0.8.0, 0.8.5 and 0.8.10): `WampClientProtocol.onMessage` raises `NameError: name
//! 'unicode' is not defined` on wson's WELCOME, so `onSessionOpen` never runs, and `call`,
//! `subscribe` and EVENT handling use `dict.has_key`. Debian 12 packages no Python 2 (nor a
//! PyPy 2). So, as the issue says for that case, the client is the tests' own: `AutobahnV1`
//! below puts on the wire what `WampClientProtocol`'s method of the same name does (autobahn
//! 0.8.15), and checks what comes back the way that client's handlers do.
//!
//! (`tests/wamp_v1.rs` covers the v1 session with plain hand-written messages; this module
//! follows one real client's encoding, the recipient forms of PUBLISH most of all.)

use serde_json::{Value, json};
use wson::ws::frame::OpCode;

use crate::common::wamp::{RawWamp, v1_upgrade, wson_wamp};
use crate::common::*;

const TOPIC: &str = "com.example.room";

/// What autobahn 0.8's `WampClientProtocol` sends and checks, over the tests' `WsClient`.
struct AutobahnV1 {
    ws: WsClient,
    /// WELCOME's sessionId: what `exclude` and `eligible` name.
    session_id: String,
    calls: u64,
}

/// The keyword arguments of autobahn 0.8's `publish(topicUri, event, excludeMe=None,
/// exclude=None, eligible=None)`.
#[derive(Default)]
struct Publish {
    exclude_me: Option<bool>,
    exclude: Option<Vec<String>>,
    eligible: Option<Vec<String>>,
}

impl AutobahnV1 {
    /// `WampClientFactory(url)` offers only `wamp`; `onConnect` raises "server does not speak
    /// WAMP" unless the 101 chose it. The client waits for WELCOME before anything else.
    fn connect(server: &Server, user: &str) -> AutobahnV1 {
        let ws = v1_upgrade(server, &Cookies::fresh(user).header, "wamp");
        let mut client = AutobahnV1 {
            ws,
            session_id: String::new(),
            calls: 0,
        };
        let welcome = client.recv();
        // onMessage's WELCOME checks: a string sessionId, an int version, a string ident.
        let [
            kind,
            Value::String(session),
            Value::Number(version),
            Value::String(ident),
        ] = welcome.as_array().map(Vec::as_slice).unwrap_or_default()
        else {
            panic!("not a WELCOME autobahn reads: {welcome}")
        };
        assert_eq!(kind, 0, "{welcome}");
        assert_eq!(version.as_u64(), Some(1), "{welcome}");
        assert!(ident.starts_with("wson/"), "{welcome}");
        assert!(session.parse::<u64>().is_ok(), "{welcome}");
        client.session_id = session.clone();
        client
    }

    fn send(&mut self, message: &Value) {
        self.ws.send_text(&message.to_string());
    }

    /// The next message; "WAMP is text message only", and every message is a list
    /// starting with an integer type.
    fn recv(&mut self) -> Value {
        let frame = self.ws.recv_data();
        assert_eq!(frame.opcode, OpCode::Text, "{frame:?}");
        let message: Value = serde_json::from_str(&frame.text()).unwrap();
        assert!(message[0].is_u64(), "not a WAMP message: {message}");
        message
    }

    /// `prefix(prefix, uri)`.
    fn prefix(&mut self, prefix: &str, uri: &str) {
        self.send(&json!([1, prefix, uri]));
    }

    /// `call(procUri, *args)`; returns the callID. autobahn's ids are 16 random letters and
    /// digits (`newid()`); these are 16 characters too, and unique.
    fn call(&mut self, procedure: &str, args: &[Value]) -> String {
        self.calls += 1;
        let call_id = format!("cA{:014}", self.calls);
        let mut message = vec![json!(2), json!(call_id), json!(procedure)];
        message.extend_from_slice(args);
        self.send(&Value::Array(message));
        call_id
    }

    /// The CALLRESULT of `call_id`, as `CallResultHandler` accepts it: exactly three
    /// elements, a string callID; returns the result.
    fn call_result(&mut self, call_id: &str) -> Value {
        let message = self.recv();
        assert_eq!(message[0], 3, "CALLRESULT expected, got {message}");
        assert_eq!(message.as_array().unwrap().len(), 3, "{message}");
        assert_eq!(message[1], call_id, "{message}");
        message[2].clone()
    }

    /// The CALLERROR of `call_id`, as `CallErrorHandler` accepts it: four or five elements,
    /// string errorURI and errorDesc (and, per the spec, errorDetails not null when there).
    /// Returns the message.
    fn call_error(&mut self, call_id: &str) -> Value {
        let message = self.recv();
        assert_eq!(message[0], 4, "CALLERROR expected, got {message}");
        let len = message.as_array().unwrap().len();
        assert!(len == 4 || len == 5, "{message}");
        assert_eq!(message[1], call_id, "{message}");
        assert!(
            message[2].is_string() && message[3].is_string(),
            "{message}"
        );
        assert!(len == 4 || !message[4].is_null(), "{message}");
        message
    }

    /// `subscribe(topicUri, handler)`.
    fn subscribe(&mut self, topic: &str) {
        self.send(&json!([5, topic]));
    }

    /// `unsubscribe(topicUri)`.
    fn unsubscribe(&mut self, topic: &str) {
        self.send(&json!([6, topic]));
    }

    /// `publish(topicUri, event, ...)`: sends and returns the message exactly as autobahn
    /// 0.8.15 builds it (`WampClientProtocol.publish`).
    fn publish(&mut self, topic: &str, event: Value, options: Publish) -> Value {
        let Publish {
            exclude_me,
            exclude,
            eligible,
        } = options;
        let message = if exclude.is_some() || eligible.is_some() {
            // No exclude list: `[self.session_id]`, or `[]` when excludeMe is False.
            let exclude = exclude.unwrap_or_else(|| match exclude_me {
                Some(false) => Vec::new(),
                Some(true) | None => vec![self.session_id.clone()],
            });
            match eligible {
                Some(eligible) => json!([7, topic, event, exclude, eligible]),
                None => json!([7, topic, event, exclude]),
            }
        } else if exclude_me == Some(true) {
            json!([7, topic, event])
        } else {
            // `excludeMe` as given: false, or None, which goes out as null.
            json!([7, topic, event, exclude_me])
        };
        self.send(&message);
        message
    }

    /// The next EVENT, which must be on `topic` (a full URI: the spec says so, and the
    /// client resolves a CURIE it gets against its own prefixes anyway); returns the event.
    fn event(&mut self, topic: &str) -> Value {
        let message = self.recv();
        assert_eq!(message[0], 8, "EVENT expected, got {message}");
        assert_eq!(message.as_array().unwrap().len(), 3, "{message}");
        assert_eq!(message[1], topic, "{message}");
        message[2].clone()
    }

    /// Events on `topic` up to and including `last`, as a JSON list.
    fn events_until(&mut self, topic: &str, last: &str) -> Value {
        let mut events = Vec::new();
        loop {
            let event = self.event(topic);
            let done = event == last;
            events.push(event);
            if done {
                return Value::Array(events);
            }
        }
    }

    /// v1 SUBSCRIBE has no answer: a CALL to no procedure, answered in order, tells that the
    /// server has handled what came before.
    fn sync(&mut self) {
        let call_id = self.call("com.example.nothing.here", &[]);
        let error = self.call_error(&call_id);
        assert_eq!(error[2], "wamp.error.no_such_procedure");
    }
}

/// A v2 client (`wamp.2.json`) in the backend realm; returns it and its session id.
fn v2(server: &Server, user: &str) -> (RawWamp, u64) {
    let (client, welcome) = RawWamp::join(server, user, "realm1");
    let id = welcome[1].as_u64().unwrap();
    (client, id)
}

/// REGISTER and REGISTERED.
fn v2_register(client: &mut RawWamp, request: u64, procedure: &str) {
    client.send(&json!([64, request, {}, procedure]));
    let registered = client.recv();
    assert_eq!(registered[0], 65, "{registered}");
}

/// The next INVOCATION: its request id and arguments.
fn v2_invocation(client: &mut RawWamp) -> (u64, Value) {
    let invocation = client.recv();
    assert_eq!(invocation[0], 68, "INVOCATION expected, got {invocation}");
    (invocation[1].as_u64().unwrap(), invocation[4].clone())
}

/// Events up to and including `last`, their first argument each, as a JSON list.
fn v2_events_until(client: &mut RawWamp, last: &str) -> Value {
    let mut events = Vec::new();
    loop {
        let event = client.recv();
        assert_eq!(event[0], 36, "EVENT expected, got {event}");
        let first = event[4][0].clone();
        let done = first == last;
        events.push(first);
        if done {
            return Value::Array(events);
        }
    }
}

/// The control socket's `x` (publish): the fields topic and message, each `{len}:{bytes}`.
fn control_publish(control: &mut Control, topic: &str, message: &[u8]) {
    let mut payload = format!("{}:{topic}{}:", topic.len(), message.len()).into_bytes();
    payload.extend_from_slice(message);
    control.send(b'x', &payload);
}

fn wson() -> Server {
    wson_wamp(&["realm1"], &[])
}

#[test]
fn curie_calls_reach_a_v2_callee_and_the_control_session() {
    let server = wson();
    let (mut callee, _) = v2(&server, "bob");
    v2_register(&mut callee, 1, "com.example.upper");
    let mut control = server.control();
    control.send_v(&json!([64, 1, {}, "com.example.add"]));
    assert_eq!(control.next_v()[0], 65);

    let mut client = AutobahnV1::connect(&server, "alice");
    client.prefix("ex", "com.example.");

    // A v2 callee: the v1 arguments are its positional arguments; its result, v1's one value.
    let call_id = client.call("ex:upper", &[json!("shout")]);
    let (request, args) = v2_invocation(&mut callee);
    assert_eq!(args, json!(["shout"]));
    callee.send(&json!([70, request, {}, ["SHOUT"]]));
    assert_eq!(client.call_result(&call_id), "SHOUT");
    // Keyword arguments only: the dict; no arguments: null; several: the list.
    for (yielded, result) in [
        (json!([[], {"text": "SHOUT"}]), json!({"text": "SHOUT"})),
        (json!([]), Value::Null),
        (json!([[1, 2]]), json!([1, 2])),
    ] {
        let call_id = client.call("ex:upper", &[json!("x")]);
        let (request, _) = v2_invocation(&mut callee);
        let mut reply = vec![json!(70), json!(request), json!({})];
        reply.extend(yielded.as_array().unwrap().iter().cloned());
        callee.send(&Value::Array(reply));
        assert_eq!(client.call_result(&call_id), result);
    }

    // The control socket's `V` session as callee, by CURIE too.
    let call_id = client.call("ex:add", &[json!(2), json!(3)]);
    let invocation = control.next_v();
    assert_eq!(invocation[0], 68, "{invocation}");
    assert_eq!(invocation[4], json!([2, 3]));
    control.send_v(&json!([70, invocation[1], {}, [5]]));
    assert_eq!(client.call_result(&call_id), 5);
}

#[test]
fn call_errors_come_as_callerrors_autobahn_accepts() {
    let server = wson();
    let (mut callee, _) = v2(&server, "bob");
    v2_register(&mut callee, 1, "com.example.div");
    let mut control = server.control();
    control.send_v(&json!([64, 1, {}, "com.example.add"]));
    assert_eq!(control.next_v()[0], 65);
    let mut client = AutobahnV1::connect(&server, "alice");
    client.prefix("ex", "com.example.");

    // No such procedure.
    let call_id = client.call("ex:missing", &[json!(1)]);
    let error = client.call_error(&call_id);
    assert_eq!(error[2], "wamp.error.no_such_procedure", "{error}");

    // A CURIE whose prefix was never defined: answered at once.
    let call_id = client.call("nope:add", &[]);
    let error = client.call_error(&call_id);
    assert_eq!(error[2], "wamp.error.invalid_uri", "{error}");

    // The control session's ERROR with a text and more: the text is errorDesc, and the
    // arguments are errorDetails (the keyword arguments beside them are dropped).
    let call_id = client.call("ex:add", &[json!("two")]);
    let invocation = control.next_v();
    control.send_v(
        &json!([8, 68, invocation[1], {}, "com.example.bad_args", ["two numbers", 1], {"got": 1}]),
    );
    assert_eq!(
        client.call_error(&call_id),
        json!([
            4,
            call_id,
            "com.example.bad_args",
            "two numbers",
            ["two numbers", 1]
        ])
    );

    // A v2 callee's ERROR with no arguments: errorDesc is the URI, no errorDetails.
    let call_id = client.call("ex:div", &[json!(1), json!(0)]);
    let (request, _) = v2_invocation(&mut callee);
    callee.send(&json!([8, 68, request, {}, "com.example.div_by_zero"]));
    assert_eq!(
        client.call_error(&call_id),
        json!([
            4,
            call_id,
            "com.example.div_by_zero",
            "com.example.div_by_zero"
        ])
    );
    // And the session goes on.
    client.sync();
}

#[test]
fn publish_recipients_as_autobahn_encodes_them() {
    let server = wson();
    let mut a = AutobahnV1::connect(&server, "alice");
    let mut b = AutobahnV1::connect(&server, "bob");
    let (mut c, c_id) = v2(&server, "carol");
    let (a_id, b_id, c_id) = (a.session_id.clone(), b.session_id.clone(), c_id.to_string());
    a.prefix("ex", "com.example.");
    a.subscribe("ex:room");
    a.sync();
    b.subscribe(TOPIC);
    b.sync();
    c.send(&json!([32, 1, {}, TOPIC]));
    assert_eq!(c.recv()[0], 33);

    // excludeMe=True: the three-element form; everyone but the publisher.
    let sent = a.publish(
        "ex:room",
        json!("exclude me"),
        Publish {
            exclude_me: Some(true),
            ..Publish::default()
        },
    );
    assert_eq!(sent, json!([7, "ex:room", "exclude me"]));
    // excludeMe=False: the publisher too.
    let sent = a.publish(
        "ex:room",
        json!("include me"),
        Publish {
            exclude_me: Some(false),
            ..Publish::default()
        },
    );
    assert_eq!(sent, json!([7, "ex:room", "include me", false]));
    // exclude=[b]: all but b; the list replaces the default, so the publisher gets it.
    let sent = a.publish(
        "ex:room",
        json!("not b"),
        Publish {
            exclude: Some(vec![b_id.clone()]),
            ..Publish::default()
        },
    );
    assert_eq!(sent, json!([7, "ex:room", "not b", [b_id]]));
    // eligible=[b]: autobahn adds exclude=[me].
    let sent = a.publish(
        "ex:room",
        json!("only b"),
        Publish {
            eligible: Some(vec![b_id.clone()]),
            ..Publish::default()
        },
    );
    assert_eq!(sent, json!([7, "ex:room", "only b", [a_id], [b_id]]));
    // excludeMe=False with eligible=[a, c]: c is a v2 session, named by its id in decimal.
    let sent = a.publish(
        "ex:room",
        json!("a and c"),
        Publish {
            exclude_me: Some(false),
            eligible: Some(vec![a_id.clone(), c_id.clone()]),
            ..Publish::default()
        },
    );
    assert_eq!(sent, json!([7, "ex:room", "a and c", [], [a_id, c_id]]));
    // A last one for all, so each side knows what it got.
    a.publish(
        "ex:room",
        json!("end"),
        Publish {
            exclude_me: Some(false),
            ..Publish::default()
        },
    );

    assert_eq!(
        a.events_until(TOPIC, "end"),
        json!(["include me", "not b", "a and c", "end"])
    );
    assert_eq!(
        b.events_until(TOPIC, "end"),
        json!(["exclude me", "include me", "only b", "end"])
    );
    assert_eq!(
        v2_events_until(&mut c, "end"),
        json!(["exclude me", "include me", "not b", "a and c", "end"])
    );
}

/// autobahn-python's `publish(topic, event)` with no keyword arguments sends a fourth
/// element `null` (`excludeMe` is None, and only a true one drops the element). autobahn's
/// own v1 server reads a 4th element that is neither a bool nor a list as absent (publisher
/// excluded), Ratchet's as `excludeMe` false; wson reads a null as absent, as autobahn.
#[test]
fn autobahn_default_publish_with_a_null_exclude_me_is_delivered() {
    let server = wson();
    let mut a = AutobahnV1::connect(&server, "alice");
    let mut b = AutobahnV1::connect(&server, "bob");
    b.subscribe(TOPIC);
    b.sync();
    let sent = a.publish(TOPIC, json!("plain"), Publish::default());
    assert_eq!(sent, json!([7, TOPIC, "plain", null]));
    // The publisher's session goes on (today: a Close 1002 comes instead of the CALLERROR).
    a.sync();
    assert_eq!(b.event(TOPIC), "plain");
}

#[test]
fn v2_and_control_publishes_reach_a_curie_subscriber() {
    let server = wson();
    let mut client = AutobahnV1::connect(&server, "alice");
    client.prefix("ex", "com.example.");
    client.subscribe("ex:room");
    client.sync();

    let (mut publisher, _) = v2(&server, "bob");
    // One argument: the event; keyword arguments only: the dict; several: the list.
    for (request, (payload, event)) in [
        (json!([["goal"]]), json!("goal")),
        (json!([[], {"score": "1-0"}]), json!({"score": "1-0"})),
        (json!([[1, 2]]), json!([1, 2])),
    ]
    .into_iter()
    .enumerate()
    {
        let mut message = vec![json!(16), json!(request + 1), json!({}), json!(TOPIC)];
        message.extend(payload.as_array().unwrap().iter().cloned());
        publisher.send(&Value::Array(message));
        assert_eq!(client.event(TOPIC), event);
    }

    // The control socket's `x` publish: JSON text is the event, other text a string.
    let mut control = server.control();
    for (message, event) in [
        (&b"{\"score\":\"2-1\"}"[..], json!({"score": "2-1"})),
        (b"Goal!", json!("Goal!")),
    ] {
        control_publish(&mut control, TOPIC, message);
        assert_eq!(client.event(TOPIC), event);
    }

    // UNSUBSCRIBE by CURIE: the next event the client sees is on another topic.
    client.unsubscribe("ex:room");
    client.subscribe("ex:other");
    client.sync();
    control_publish(&mut control, TOPIC, b"gone");
    control_publish(&mut control, "com.example.other", b"here");
    assert_eq!(client.event("com.example.other"), "here");
}

/// BabDev's keepalive (Ratchet's `WsServer::enableKeepAlive`) pings each client every
/// interval and drops one that did not answer; wson's `ping_interval` does the same. A v1
/// client that only ever answers the pings stays, subscribed, past several intervals.
#[test]
fn a_v1_client_answering_pings_stays_past_several_intervals() {
    let server = wson_wamp(&["realm1"], &[("ping_interval", "1")]);
    let mut client = AutobahnV1::connect(&server, "alice");
    client.subscribe(TOPIC);
    client.sync();
    // Nothing but pongs from here; each wait is bounded by the client's read timeout.
    let mut pings = 0;
    while pings < 4 {
        let frame = client.ws.recv();
        assert_eq!(
            frame.opcode,
            OpCode::Ping,
            "only pings expected, got {frame:?}"
        );
        pings += 1;
        client.ws.send(true, OpCode::Pong, &frame.payload);
    }
    let mut control = server.control();
    control_publish(&mut control, TOPIC, b"still here");
    let event = loop {
        let frame = client.ws.recv();
        match frame.opcode {
            OpCode::Ping => client.ws.send(true, OpCode::Pong, &frame.payload),
            OpCode::Text => break serde_json::from_str::<Value>(&frame.text()).unwrap(),
            _ => panic!("unexpected {frame:?}"),
        }
    };
    assert_eq!(event, json!([8, TOPIC, "still here"]));
    assert_eq!(control.status()["wamp_sessions"], 1);
    assert!(!server.log_text().contains("keepalive timeout"));
}

/// The other half of the same rule: a v1 client that does not answer is dropped after the
/// ping's interval, and its session leaves the realm.
#[test]
fn a_silent_v1_client_is_dropped_after_an_unanswered_ping() {
    let server = wson_wamp(&["realm1"], &[("ping_interval", "1")]);
    let mut client = AutobahnV1::connect(&server, "alice");
    client.subscribe(TOPIC);
    client.sync();
    // A control connection that stays silent is pinged and dropped too: each is used at once.
    assert_eq!(server.control().status()["wamp_sessions"], 1);
    let mut pinged = false;
    while let Some(frame) = client.ws.try_recv() {
        pinged |= frame.opcode == OpCode::Ping;
    }
    assert!(pinged, "dropped without a keepalive ping");
    eventually("keepalive timeout logged", || {
        server.log_text().contains("reason=\"keepalive timeout\"")
    });
    let mut control = server.control();
    eventually("the v1 session left", || {
        control.status()["wamp_sessions"] == 0
    });
}
