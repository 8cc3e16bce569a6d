//! WAMP v1 sessions (subprotocol `wamp`) on the v2 router.
//!
//! A v1 client is a v2 session of the backend realm whose link is `Link::V1`: what it sends
//! is translated here into v2 messages for `Realm::handle` (so v1 and v2 peers share topics,
//! procedures and the control socket's callees), and what the realm sends it comes back as
//! `Action::V1` and is translated into v1 by `Router::translate_v1` before the hub sees it.
//! The one exception is EVENT: the broker encodes a v1 EVENT once per subscription for all
//! its v1 subscribers (`broker::deliver`), as it does per v2 serializer.
//!
//! Mapping of a v2 payload to v1's single value (`single_value`), for CALLRESULT and EVENT:
//! exactly one positional argument and no keyword arguments: that argument; only keyword
//! arguments: the keyword dict; nothing: null; anything else: the positional arguments as a
//! list (keyword arguments beside positional ones are dropped: v1 has nowhere to put them).
//!
//! Bounds: a session defines at most `MAX_PREFIXES` CURIE prefixes, each prefix and URI at
//! most `MAX_PREFIX_LEN` bytes; a PREFIX over them is dropped (logged at debug).

use std::collections::HashMap;

use crate::wamp::v1::{Prefixes, Recipients, V1Message};
use crate::wamp::{Dict, Message, MessageType, Payload, Value};

/// Prefixes a v1 session may define.
pub const MAX_PREFIXES: usize = 64;
/// The longest prefix or URI of a PREFIX, in bytes.
pub const MAX_PREFIX_LEN: usize = 256;
/// The serverIdent of WELCOME.
pub const SERVER_IDENT: &str = concat!("wson/", env!("CARGO_PKG_VERSION"));

/// What the router keeps per v1 session beyond its v2 `Session`: v1 names things by strings
/// (call ids, topics) where v2 uses request and subscription ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1State {
    pub prefixes: Prefixes,
    /// v2 CALL request id -> the v1 callID, until RESULT or ERROR.
    pub calls: HashMap<u64, String>,
    /// v2 SUBSCRIBE request id -> topic, until SUBSCRIBED or ERROR.
    pub subscribing: HashMap<u64, String>,
    /// Topic -> v2 subscription id, for UNSUBSCRIBE (v1 unsubscribes by topic).
    pub topics: HashMap<String, u64>,
    next_request: u64,
}

impl Default for V1State {
    fn default() -> V1State {
        V1State {
            prefixes: Prefixes::new(MAX_PREFIXES, MAX_PREFIX_LEN),
            calls: HashMap::new(),
            subscribing: HashMap::new(),
            topics: HashMap::new(),
            next_request: 0,
        }
    }
}

impl V1State {
    fn request(&mut self) -> u64 {
        // v2 request ids start at 1 and stay within 2^53.
        self.next_request = self.next_request % (1 << 53) + 1;
        self.next_request
    }

    /// The v2 message for a v1 one from the client, or the v1 answer when it has its own
    /// (a CALLERROR for a CALL to an undefined CURIE). `None` with no answer: dropped.
    pub fn incoming(&mut self, message: V1Message) -> Incoming {
        match message {
            V1Message::Prefix { prefix, uri } => {
                if let Err(error) = self.prefixes.define(&prefix, &uri) {
                    log::debug!(reason:% = error; "WAMP v1 PREFIX dropped");
                }
                Incoming::Nothing
            }
            V1Message::Call {
                call_id,
                procedure,
                args,
            } => match self.prefixes.resolve(&procedure) {
                Ok(procedure) => {
                    let request = self.request();
                    self.calls.insert(request, call_id);
                    Incoming::V2(Message::Call {
                        request,
                        options: Dict::new(),
                        procedure: procedure.into_owned(),
                        payload: Payload {
                            args,
                            kwargs: Dict::new(),
                        },
                    })
                }
                Err(error) => Incoming::Answer(V1Message::CallError {
                    call_id,
                    error_uri: "wamp.error.invalid_uri".to_owned(),
                    description: error.to_string(),
                    details: None,
                }),
            },
            V1Message::Subscribe { topic } => match self.resolve(&topic, "SUBSCRIBE") {
                Some(topic) if !self.topics.contains_key(&topic) => {
                    let request = self.request();
                    self.subscribing.insert(request, topic.clone());
                    Incoming::V2(Message::Subscribe {
                        request,
                        options: Dict::new(),
                        topic,
                    })
                }
                _ => Incoming::Nothing,
            },
            V1Message::Unsubscribe { topic } => {
                let Some(topic) = self.resolve(&topic, "UNSUBSCRIBE") else {
                    return Incoming::Nothing;
                };
                match self.topics.remove(&topic) {
                    Some(subscription) => Incoming::V2(Message::Unsubscribe {
                        request: self.request(),
                        subscription,
                    }),
                    None => Incoming::Nothing,
                }
            }
            V1Message::Publish {
                topic,
                event,
                recipients,
            } => {
                let Some(topic) = self.resolve(&topic, "PUBLISH") else {
                    return Incoming::Nothing;
                };
                let Some(options) = publish_options(&recipients) else {
                    return Incoming::Nothing;
                };
                Incoming::V2(Message::Publish {
                    request: self.request(),
                    options,
                    topic,
                    payload: Payload {
                        args: vec![event],
                        kwargs: Dict::new(),
                    },
                })
            }
            other @ (V1Message::Welcome { .. }
            | V1Message::CallResult { .. }
            | V1Message::CallError { .. }
            | V1Message::Event { .. }) => {
                log::debug!(message = other.name(); "WAMP v1 message a server does not take dropped");
                Incoming::Nothing
            }
        }
    }

    /// v1 has no error message for SUBSCRIBE, UNSUBSCRIBE or PUBLISH: an undefined CURIE
    /// drops the message.
    fn resolve(&self, uri: &str, kind: &str) -> Option<String> {
        match self.prefixes.resolve(uri) {
            Ok(uri) => Some(uri.into_owned()),
            Err(error) => {
                log::debug!(message = kind, reason:% = error; "WAMP v1 message dropped");
                None
            }
        }
    }

    /// The realm refused the v2 message of `request` outright (no ERROR sent): forgets it,
    /// and gives the CALLERROR when it was a CALL.
    pub fn refused(&mut self, request: u64, reason: &str) -> Option<V1Message> {
        self.subscribing.remove(&request);
        let call_id = self.calls.remove(&request)?;
        Some(V1Message::CallError {
            call_id,
            error_uri: crate::router::error::PROTOCOL_VIOLATION.to_owned(),
            description: reason.to_owned(),
            details: None,
        })
    }

    /// The v1 message for a v2 one the realm sends this session; `None`: v1 has no such
    /// message (SUBSCRIBED is recorded, PUBLISHED, UNSUBSCRIBED, GOODBYE... are dropped).
    pub fn outgoing(&mut self, message: Message) -> Option<V1Message> {
        match message {
            Message::Result {
                request, payload, ..
            } => {
                let call_id = self.calls.remove(&request)?;
                Some(V1Message::CallResult {
                    call_id,
                    result: single_value(payload),
                })
            }
            Message::Error {
                request_type: MessageType::Call,
                request,
                error,
                payload,
                ..
            } => {
                let call_id = self.calls.remove(&request)?;
                let description = payload
                    .args
                    .first()
                    .and_then(Value::as_str)
                    .map_or_else(|| error.clone(), str::to_owned);
                let details = (!payload.is_empty()).then(|| single_value(payload));
                Some(V1Message::CallError {
                    call_id,
                    error_uri: error,
                    description,
                    details,
                })
            }
            Message::Error {
                request_type: MessageType::Subscribe,
                request,
                error,
                ..
            } => {
                let topic = self.subscribing.remove(&request);
                log::debug!(topic:? = topic, error = error.as_str(); "WAMP v1 SUBSCRIBE refused");
                None
            }
            Message::Subscribed {
                request,
                subscription,
            } => {
                if let Some(topic) = self.subscribing.remove(&request) {
                    self.topics.insert(topic, subscription);
                }
                None
            }
            Message::Event {
                subscription,
                payload,
                ..
            } => {
                // The broker sends v1 EVENTs itself; one reaching here (none does today) is
                // translated by the subscription's topic.
                let topic = self
                    .topics
                    .iter()
                    .find(|(_, id)| **id == subscription)
                    .map(|(topic, _)| topic.clone())?;
                Some(V1Message::Event {
                    topic,
                    event: single_value(payload),
                })
            }
            _ => None,
        }
    }
}

/// What a v1 message from the client becomes.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    V2(Message),
    Answer(V1Message),
    Nothing,
}

/// v1's single result or event value from a v2 payload (see the module comment).
pub fn single_value(payload: Payload) -> Value {
    let Payload { mut args, kwargs } = payload;
    if args.is_empty() {
        if kwargs.is_empty() {
            return Value::Null;
        }
        return Value::Dict(kwargs);
    }
    if args.len() == 1 && kwargs.is_empty() {
        return args.pop().unwrap_or(Value::Null);
    }
    Value::List(args)
}

/// v2 PUBLISH options for v1's recipients; `None`: nobody can receive it (an eligible list
/// of no valid session id). v1 session ids are the v2 ids as decimal strings; one that is
/// not is skipped. No recipients given: the publisher is excluded, as autobahn's v1 did.
fn publish_options(recipients: &Recipients) -> Option<Dict> {
    let ids = |list: &[String]| -> Vec<Value> {
        list.iter()
            .filter_map(|id| id.parse::<u64>().ok())
            .map(Value::Unsigned)
            .collect()
    };
    let mut options = Dict::new();
    match recipients {
        Recipients::Default => {}
        Recipients::ExcludeMe(exclude_me) => {
            options.insert("exclude_me", Value::Bool(*exclude_me));
        }
        Recipients::Lists { exclude, eligible } => {
            options.insert("exclude_me", Value::Bool(false));
            let exclude = ids(exclude);
            if !exclude.is_empty() {
                options.insert("exclude", Value::List(exclude));
            }
            if let Some(eligible) = eligible {
                let eligible = ids(eligible);
                if eligible.is_empty() {
                    return None;
                }
                options.insert("eligible", Value::List(eligible));
            }
        }
    }
    Some(options)
}

#[cfg(test)]
mod tests {
    use crate::router::testing::{Harness, Out, config, to};
    use crate::server::slab::Key;

    /// A v1 client "ann": its key and session id, from the WELCOME that must come first.
    fn v1_client(harness: &mut Harness) -> (Key, u64) {
        let (key, out) = harness.connect_v1(Some("ann"));
        let first = to(&out, key);
        let welcome = first.first().expect("WELCOME");
        let prefix = r#"[0,""#;
        assert!(welcome.starts_with(prefix), "{welcome}");
        let rest = &welcome[prefix.len()..];
        let id: u64 = rest[..rest.find('"').unwrap()].parse().unwrap();
        assert_eq!(
            *welcome,
            format!(r#"[0,"{id}",1,"wson/{}"]"#, env!("CARGO_PKG_VERSION"))
        );
        (key, id)
    }

    #[test]
    fn welcome_first_and_no_cookie_is_closed() {
        let mut harness = Harness::new(config());
        let (_, id) = v1_client(&mut harness);
        assert!(id > 0);
        let (key, out) = harness.connect_v1(None);
        assert!(matches!(out.as_slice(), [Out::Close(to, _, _)] if *to == key));
    }

    #[test]
    fn prefix_and_call_reach_a_v2_callee() {
        let mut harness = Harness::new(config());
        let (callee, _) = harness.join("bob");
        harness.send(callee, r#"[64,1,{},"com.example.add"]"#);
        let (client, _) = v1_client(&mut harness);
        assert!(
            harness
                .send(client, r#"[1,"ex","com.example."]"#)
                .is_empty()
        );
        let out = harness.send(client, r#"[2,"c1","ex:add",2,3]"#);
        let invocation = to(&out, callee);
        assert_eq!(invocation.len(), 1, "{out:?}");
        assert!(invocation[0].ends_with(",{},[2,3]]"), "{invocation:?}");
        let request: u64 = invocation[0]
            .trim_start_matches("[68,")
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let out = harness.send(callee, &format!("[70,{request},{{}},[5]]"));
        assert_eq!(to(&out, client), vec![r#"[3,"c1",5]"#]);
        // A callee's ERROR: CALLERROR with the first string argument as errorDesc.
        harness.send(client, r#"[2,"c2","com.example.add"]"#);
        let out = harness.send(
            callee,
            &format!("[8,68,{},{{}},\"com.example.oops\",[\"no\"]]", request + 1),
        );
        assert_eq!(
            to(&out, client),
            vec![r#"[4,"c2","com.example.oops","no","no"]"#]
        );
    }

    #[test]
    fn call_errors_undefined_curie_and_no_callee() {
        let mut harness = Harness::new(config());
        let (client, _) = v1_client(&mut harness);
        let out = harness.send(client, r#"[2,"c1","nope:add",1]"#);
        let reply = to(&out, client);
        assert_eq!(reply.len(), 1);
        assert!(
            reply[0].starts_with(r#"[4,"c1","wamp.error.invalid_uri","#),
            "{reply:?}"
        );
        let out = harness.send(client, r#"[2,"c2","com.example.none"]"#);
        let reply = to(&out, client);
        assert_eq!(reply.len(), 1);
        assert!(
            reply[0].starts_with(r#"[4,"c2","wamp.error.no_such_procedure","#),
            "{reply:?}"
        );
        // Undefined CURIEs in SUBSCRIBE and PUBLISH are dropped without answer.
        assert!(harness.send(client, r#"[5,"nope:t"]"#).is_empty());
        assert!(harness.send(client, r#"[7,"nope:t",1]"#).is_empty());
    }

    #[test]
    fn v2_publish_reaches_v1_subscribers_once_encoded() {
        let mut harness = Harness::new(config());
        let (first, _) = v1_client(&mut harness);
        let (second, _) = v1_client(&mut harness);
        harness.send(first, r#"[1,"t","com.topic."]"#);
        assert!(harness.send(first, r#"[5,"t:a"]"#).is_empty());
        harness.send(second, r#"[5,"com.topic.a"]"#);
        let (publisher, _) = harness.join("bob");
        let mut actions = harness.send_raw(publisher, r#"[16,1,{},"com.topic.a",["hi"]]"#);
        actions.retain(|action| matches!(action, crate::router::Action::Send { .. }));
        assert_eq!(actions.len(), 1, "one encoding for both v1 subscribers");
        let out = harness.decode(actions);
        let event = r#"[8,"com.topic.a","hi"]"#;
        assert_eq!(to(&out, first), vec![event]);
        assert_eq!(to(&out, second), vec![event]);
        // kwargs only: the dict; several args: the list.
        let out = harness.send(publisher, r#"[16,2,{},"com.topic.a",[],{"k":1}]"#);
        assert_eq!(to(&out, first), vec![r#"[8,"com.topic.a",{"k":1}]"#]);
        let out = harness.send(publisher, r#"[16,3,{},"com.topic.a",[1,2]]"#);
        assert_eq!(to(&out, first), vec![r#"[8,"com.topic.a",[1,2]]"#]);
        // UNSUBSCRIBE by CURIE.
        harness.send(first, r#"[6,"t:a"]"#);
        let out = harness.send(publisher, r#"[16,4,{},"com.topic.a",[1]]"#);
        assert!(to(&out, first).is_empty());
        assert_eq!(to(&out, second).len(), 1);
    }

    #[test]
    fn v1_publish_reaches_v2_with_exclusions() {
        let mut harness = Harness::new(config());
        let (subscriber, _) = harness.join("bob");
        harness.send(subscriber, r#"[32,1,{},"com.topic.a"]"#);
        let (publisher, publisher_id) = v1_client(&mut harness);
        harness.send(publisher, r#"[5,"com.topic.a"]"#);
        let (other, other_id) = v1_client(&mut harness);
        harness.send(other, r#"[5,"com.topic.a"]"#);

        // Default: excludeMe.
        let out = harness.send(publisher, r#"[7,"com.topic.a",{"n":1}]"#);
        let v2 = to(&out, subscriber);
        assert_eq!(v2.len(), 1);
        assert!(v2[0].ends_with(r#",{},[{"n":1}]]"#), "{v2:?}");
        assert!(to(&out, publisher).is_empty());
        assert_eq!(to(&out, other), vec![r#"[8,"com.topic.a",{"n":1}]"#]);

        // excludeMe false: the publisher gets it too.
        let out = harness.send(publisher, r#"[7,"com.topic.a",2,false]"#);
        assert_eq!(to(&out, publisher), vec![r#"[8,"com.topic.a",2]"#]);

        // exclude list: by v1 session id.
        let out = harness.send(publisher, &format!(r#"[7,"com.topic.a",3,["{other_id}"]]"#));
        assert!(to(&out, other).is_empty());
        assert_eq!(to(&out, publisher).len(), 1);
        assert_eq!(to(&out, subscriber).len(), 1);

        // eligible list: only those.
        let out = harness.send(
            publisher,
            &format!(r#"[7,"com.topic.a",4,[],["{publisher_id}"]]"#),
        );
        assert_eq!(to(&out, publisher).len(), 1);
        assert!(to(&out, other).is_empty());
        assert!(to(&out, subscriber).is_empty());
    }

    #[test]
    fn plain_publication_reaches_v1_and_leaving_unsubscribes() {
        let mut harness = Harness::new(config());
        let (client, _) = v1_client(&mut harness);
        harness.send(client, r#"[5,"com.topic.a"]"#);
        assert!(harness.router.backend_realm_listens("com.topic.a"));
        let mut out = Vec::new();
        let payload = crate::wamp::Payload {
            args: vec![crate::wamp::Value::from("x")],
            kwargs: crate::wamp::Dict::new(),
        };
        harness.router.publish_from_plain(
            "com.topic.a",
            &crate::wamp::Dict::new(),
            payload,
            None,
            harness.now,
            &mut out,
        );
        let out = harness.decode(out);
        assert_eq!(to(&out, client), vec![r#"[8,"com.topic.a","x"]"#]);
        harness.gone(crate::router::Peer::Client(client));
        assert!(!harness.router.backend_realm_listens("com.topic.a"));
        assert_eq!(harness.router.figures().sessions, 0);
    }

    #[test]
    fn what_is_not_v1_closes_and_a_server_message_is_dropped() {
        let mut harness = Harness::new(config());
        let (client, _) = v1_client(&mut harness);
        // A CALLRESULT is for clients: dropped, the session stays.
        assert!(harness.send(client, r#"[3,"c1",1]"#).is_empty());
        assert!(harness.send(client, r#"[5,"com.topic.a"]"#).is_empty());
        let out = harness.send(client, "[99]");
        assert!(
            matches!(out.as_slice(), [Out::Close(to, 1002, _)] if *to == client),
            "{out:?}"
        );
        assert_eq!(harness.router.figures().sessions, 0);
        assert!(!harness.router.backend_realm_listens("com.topic.a"));
        assert!(harness.send(client, r#"[5,"com.topic.a"]"#).is_empty());
    }

    #[test]
    fn prefix_bounds_hold() {
        let mut state = super::V1State::default();
        for n in 0..super::MAX_PREFIXES + 1 {
            let message = crate::wamp::v1::V1Message::Prefix {
                prefix: format!("p{n}"),
                uri: format!("com.p{n}."),
            };
            assert_eq!(state.incoming(message), super::Incoming::Nothing);
        }
        assert_eq!(state.prefixes.len(), super::MAX_PREFIXES);
        let long = crate::wamp::v1::V1Message::Prefix {
            prefix: "p0".to_owned(),
            uri: "x".repeat(super::MAX_PREFIX_LEN + 1),
        };
        state.incoming(long);
        assert_eq!(state.prefixes.get("p0"), Some("com.p0."));
    }
}
