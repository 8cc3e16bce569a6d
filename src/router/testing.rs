//! Test harness: drives a `Router` with JSON text as clients and the backend would send it,
//! and decodes what it asks the hub to do.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::resume::{Position, Reload};
use crate::router::ids::GlobalIds;
use crate::router::{
    Action, Chronicle, KeptEvent, Missed, Peer, Publishing, Router, RouterConfig, Transport,
};
use crate::server::slab::{Key, Slab};
use crate::wamp::{Message, Payload, Serializer};

pub fn config() -> RouterConfig {
    RouterConfig {
        realms: vec!["realm1".to_owned(), "realm2".to_owned()],
        authrole: "user".to_owned(),
        strict_uris: false,
        max_sessions: 100,
        max_subscriptions_per_session: 10,
        max_registrations_per_session: 10,
        max_pending_calls_per_session: 10,
        max_pending_calls_per_callee: 10,
        max_depth: 32,
        max_retained: 10,
        max_retained_bytes: 1 << 20,
        call_timeout: None,
        backend_authrole: "trusted".to_owned(),
        dynamic_auth_timeout: Duration::from_secs(5),
        authorization_cache_lifetime: Some(Duration::from_secs(300)),
        max_cached_authorizations: 1000,
        max_waiting_authorizations: 100,
        realm_settings: crate::config::wamp_realm::WampRealms::NONE,
    }
}

/// One thing the router asked for, per recipient.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    To(Key, Message),
    Control(Key, Message),
    Close(Key, u16, String),
    LoginFailed(Key),
    /// A WAMP v1 message to a v1 client, as its JSON text.
    V1(Key, String),
    Plain {
        topic: String,
        payload: Payload,
        publisher_authid: String,
    },
    /// A message for another node's router (`None`: every node).
    Node(Option<crate::router::session::NodeRef>, String, Message),
    NodeRegistration(String, crate::router::nodes::NodeRegistration),
    AwaitNodes(u64),
}

/// The message as compact JSON, for readable assertions.
pub fn json(message: &Message) -> String {
    String::from_utf8(Serializer::Json.encode(message)).unwrap()
}

pub fn parse(text: &str) -> Message {
    Serializer::Json
        .decode(text.as_bytes(), 64)
        .unwrap_or_else(|error| panic!("{text}: {error}"))
}

/// A history for the router's tests: topics starting with `kept.` keep their last `size`
/// publications (5 unless set), in epoch `EPOCH`.
#[derive(Debug)]
pub struct TestHistory {
    pub topics: HashMap<String, (u64, Vec<KeptEvent>)>,
    pub size: usize,
}

impl Default for TestHistory {
    fn default() -> TestHistory {
        TestHistory {
            topics: HashMap::new(),
            size: 5,
        }
    }
}

impl TestHistory {
    pub const EPOCH: &'static str = "0badcafe-1";

    pub fn at(offset: u64) -> Position {
        Position {
            epoch: TestHistory::EPOCH.to_owned(),
            offset,
        }
    }
}

impl Chronicle for TestHistory {
    fn record(&mut self, publishing: &Publishing<'_>) -> Option<Position> {
        if !publishing.topic.starts_with("kept.") {
            return None;
        }
        let (last, events) = self.topics.entry(publishing.topic.to_owned()).or_default();
        *last += 1;
        events.push(KeptEvent {
            position: TestHistory::at(*last),
            payload: publishing.payload.clone(),
            publication: Some(publishing.publication),
            publisher: publishing.publisher.cloned(),
            audience: (!publishing.audience.is_everyone() || publishing.exclude_session.is_some())
                .then(|| {
                    let mut audience = publishing.audience.clone();
                    audience.exclude.extend(publishing.exclude_session);
                    std::rc::Rc::new(audience)
                }),
            time_ns: *last,
        });
        if events.len() > self.size {
            events.remove(0);
        }
        Some(TestHistory::at(*last))
    }

    fn missed(&mut self, topic: &str, seen: &Position) -> Missed {
        if !topic.starts_with("kept.") {
            return Missed::Reload(Reload::Off, None);
        }
        let (last, events) = self.topics.get(topic).cloned().unwrap_or_default();
        let current = Some(TestHistory::at(last));
        if seen.epoch != TestHistory::EPOCH {
            return Missed::Reload(Reload::Epoch, current);
        }
        if seen.offset > last {
            return Missed::Reload(Reload::Ahead, current);
        }
        let first = events.first().map_or(last + 1, |e| e.position.offset);
        if seen.offset + 1 < first {
            return Missed::Reload(Reload::Gone, current);
        }
        Missed::Events(
            events
                .into_iter()
                .filter(|e| e.position.offset > seen.offset)
                .collect(),
        )
    }

    fn recent(&mut self, topic: &str, limit: usize) -> Option<Vec<KeptEvent>> {
        if !topic.starts_with("kept.") {
            return None;
        }
        let events = self
            .topics
            .get(topic)
            .map(|(_, events)| events.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default();
        Some(events)
    }
}

pub struct Harness {
    pub router: Router,
    pub history: TestHistory,
    slab: Slab<()>,
    pub now: Instant,
    serializers: HashMap<Key, Serializer>,
    v1: HashSet<Key>,
}

/// A HELLO announcing every role, the callee with call canceling.
pub const HELLO_FEATURES: &str = r#"{"roles":{"caller":{},"callee":{"features":{"call_canceling":true}},"publisher":{},"subscriber":{}}}"#;

impl Harness {
    pub fn new(config: RouterConfig) -> Harness {
        Harness {
            router: Router::with_ids(config, GlobalIds::seeded(1)),
            history: TestHistory::default(),
            slab: Slab::default(),
            now: Instant::now(),
            serializers: HashMap::new(),
            v1: HashSet::new(),
        }
    }

    pub fn key(&mut self) -> Key {
        self.slab.insert(()).unwrap()
    }

    pub fn connect(&mut self, serializer: Serializer, authid: &str) -> Key {
        let key = self.key();
        self.serializers.insert(key, serializer);
        self.router.open(
            key,
            Transport {
                serializer,
                cookie_user: Some(authid.to_owned()),
            },
            self.now,
        );
        key
    }

    /// A WAMP v1 client of cookie user `authid`: its key and what opening it gave.
    pub fn connect_v1(&mut self, authid: Option<&str>) -> (Key, Vec<Out>) {
        let key = self.key();
        self.v1.insert(key);
        let mut out = Vec::new();
        self.router.open_v1(key, authid, self.now, &mut out);
        (key, self.decode(out))
    }

    /// A client admitted without cookies (a WAMP login without them).
    pub fn connect_cookieless(&mut self, serializer: Serializer) -> Key {
        let key = self.key();
        self.serializers.insert(key, serializer);
        self.router.open(
            key,
            Transport {
                serializer,
                cookie_user: None,
            },
            self.now,
        );
        key
    }

    /// A client of `serializer` joined to `realm`: its key and session id (output dropped).
    pub fn join_as(&mut self, serializer: Serializer, realm: &str, authid: &str) -> (Key, u64) {
        let key = self.connect(serializer, authid);
        let out = self.send(key, &format!(r#"[1,"{realm}",{HELLO_FEATURES}]"#));
        let session = out
            .iter()
            .find_map(|out| match out {
                Out::To(to, Message::Welcome { session, .. }) if *to == key => Some(*session),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no WELCOME in {out:?}"));
        (key, session)
    }

    pub fn join(&mut self, authid: &str) -> (Key, u64) {
        self.join_as(Serializer::Json, "realm1", authid)
    }

    /// The raw actions for a message from client `key`, given as JSON text (re-encoded for
    /// clients of other serializers).
    pub fn send_raw(&mut self, key: Key, text: &str) -> Vec<Action> {
        let serializer = self
            .serializers
            .get(&key)
            .copied()
            .unwrap_or(Serializer::Json);
        let bytes = match serializer {
            Serializer::Json => text.as_bytes().to_vec(),
            other => other.encode(&parse(text)),
        };
        let mut out = Vec::new();
        self.router
            .receive(key, &bytes, self.now, &mut self.history, &mut out);
        out
    }

    pub fn send(&mut self, key: Key, text: &str) -> Vec<Out> {
        let actions = self.send_raw(key, text);
        self.decode(actions)
    }

    pub fn send_bytes(&mut self, key: Key, bytes: &[u8]) -> Vec<Out> {
        let mut out = Vec::new();
        self.router
            .receive(key, bytes, self.now, &mut self.history, &mut out);
        self.decode(out)
    }

    pub fn backend(&mut self, key: Key, text: &str) -> Vec<Out> {
        let mut out = Vec::new();
        self.router
            .from_backend(key, parse(text), self.now, &mut self.history, &mut out);
        self.decode(out)
    }

    pub fn gone(&mut self, peer: Peer) -> Vec<Out> {
        let mut out = Vec::new();
        self.router
            .gone(peer, self.now, &mut self.history, &mut out);
        self.decode(out)
    }

    pub fn advance(&mut self, by: Duration) -> Vec<Out> {
        self.now += by;
        let mut out = Vec::new();
        self.router.tick(self.now, &mut self.history, &mut out);
        self.decode(out)
    }

    pub fn decode(&self, actions: Vec<Action>) -> Vec<Out> {
        let mut decoded = Vec::new();
        for action in actions {
            match action {
                Action::Send { to, binary, bytes } => {
                    for key in to {
                        if self.v1.contains(&key) {
                            assert!(!binary);
                            let text = String::from_utf8(bytes.to_vec()).unwrap();
                            decoded.push(Out::V1(key, text));
                            continue;
                        }
                        let serializer = self.serializers.get(&key).copied().unwrap();
                        assert_eq!(binary, serializer.is_binary());
                        let message = serializer.decode(&bytes, 64).unwrap();
                        decoded.push(Out::To(key, message));
                    }
                }
                Action::Control { to, message } => decoded.push(Out::Control(to, message)),
                Action::Close { to, code, reason } => decoded.push(Out::Close(to, code, reason)),
                Action::LoginFailed { to } => decoded.push(Out::LoginFailed(to)),
                Action::V1 { to, message } => {
                    panic!("untranslated v1 action to {to:?}: {message:?}")
                }
                Action::Plain {
                    topic,
                    payload,
                    publisher_authid,
                    tell_listeners: _,
                    position: _,
                } => decoded.push(Out::Plain {
                    topic,
                    payload,
                    publisher_authid,
                }),
                Action::Node { to, realm, message } => decoded.push(Out::Node(to, realm, message)),
                Action::NodeRegistration {
                    realm,
                    registration,
                } => decoded.push(Out::NodeRegistration(realm, registration)),
                Action::AwaitNodes { ticket } => decoded.push(Out::AwaitNodes(ticket)),
            }
        }
        decoded
    }
}

/// The messages to `key`, as JSON.
pub fn to(out: &[Out], key: Key) -> Vec<String> {
    out.iter()
        .filter_map(|out| match out {
            Out::To(to, message) | Out::Control(to, message) if *to == key => Some(json(message)),
            Out::V1(to, text) if *to == key => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// The REGISTERED registration id in `out`.
pub fn registered(out: &[Out]) -> u64 {
    out.iter()
        .find_map(|out| match out {
            Out::To(_, Message::Registered { registration, .. })
            | Out::Control(_, Message::Registered { registration, .. }) => Some(*registration),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no REGISTERED in {out:?}"))
}

/// The INVOCATION request id sent to `key`.
pub fn invocation(out: &[Out], key: Key) -> (u64, String) {
    out.iter()
        .find_map(|out| match out {
            Out::To(to, message @ Message::Invocation { request, .. })
            | Out::Control(to, message @ Message::Invocation { request, .. })
                if *to == key =>
            {
                Some((*request, json(message)))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no INVOCATION in {out:?}"))
}
