//! The broker: a realm's subscriptions and retained events, and the fan-out of a publication.
//!
//! As in Crossbar (`crossbar/router/broker.py`, `observation.py`), a subscription belongs to
//! the realm: every session subscribing to the same (URI, match) shares its id; subscribing
//! twice gives the same id; the subscription is deleted with its last subscriber.
//!
//! Fan-out is the hot path. Each subscription keeps its subscribers grouped by how they are
//! reached (one group per WAMP serializer, one for backend sessions), each group with its
//! recipients' keys ready in a `Vec<Key>`: a publication without exclude/eligible options
//! copies that vector (dropping the publisher when `exclude_me`), serializes the EVENT once
//! per group and shares the bytes (`Rc<[u8]>`) among the group: one `Action::Send` per
//! subscription and serializer. Only a publication with exclude/eligible options checks its
//! recipients one by one.

use std::collections::HashMap;
use std::rc::Rc;

use crate::resume::Position;
use crate::router::ids::SequentialIds;
use crate::router::options::Audience;
use crate::router::session::Link;
use crate::router::uri::{Match, PatternIndex};
use crate::router::{Action, Missed};
use crate::server::slab::Key;
use crate::wamp::{Dict, Message, Payload, Serializer, Value};

/// A subscriber, as the audience checks need it.
#[derive(Debug, Clone)]
pub struct Member {
    pub session: u64,
    pub authid: Rc<str>,
    pub authrole: Rc<str>,
}

/// Recipients reached the same way: `keys[i]` is `members[i]`'s connection.
#[derive(Debug, Default)]
pub struct Group {
    keys: Vec<Key>,
    members: Vec<Member>,
    /// Session id -> position, for O(1) removal and the `exclude_me` check.
    index: HashMap<u64, usize>,
}

impl Group {
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// False when the session is already in.
    fn insert(&mut self, key: Key, member: Member) -> bool {
        if self.index.contains_key(&member.session) {
            return false;
        }
        self.index.insert(member.session, self.members.len());
        self.keys.push(key);
        self.members.push(member);
        true
    }

    /// False when the session was not in.
    fn remove(&mut self, session: u64) -> bool {
        let Some(position) = self.index.remove(&session) else {
            return false;
        };
        if position >= self.members.len() {
            return false;
        }
        self.keys.swap_remove(position);
        self.members.swap_remove(position);
        if let Some(moved) = self.members.get(position) {
            self.index.insert(moved.session, position);
        }
        true
    }

    pub fn sessions(&self) -> impl Iterator<Item = u64> + '_ {
        self.members.iter().map(|member| member.session)
    }

    /// The keys of the members `publication` reaches.
    fn recipients(&self, exclude_session: Option<u64>, audience: &Audience) -> Vec<Key> {
        let skip = exclude_session.and_then(|session| self.index.get(&session).copied());
        if audience.is_everyone() {
            return match skip {
                None => self.keys.clone(),
                Some(position) => {
                    let mut keys = Vec::with_capacity(self.keys.len().saturating_sub(1));
                    keys.extend(self.keys.iter().take(position));
                    keys.extend(self.keys.iter().skip(position + 1));
                    keys
                }
            };
        }
        self.keys
            .iter()
            .zip(&self.members)
            .enumerate()
            .filter(|&(position, (_, member))| {
                Some(position) != skip
                    && audience.admits(member.session, &member.authid, &member.authrole)
            })
            .map(|(_, (key, _))| *key)
            .collect()
    }
}

fn serializer_slot(serializer: Serializer) -> usize {
    match serializer {
        Serializer::Json => 0,
        Serializer::MsgPack => 1,
        Serializer::Cbor => 2,
    }
}

#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    pub uri: String,
    pub policy: Match,
    /// ISO 8601 UTC, as Crossbar's `created` (`autobahn.util.utcnow`).
    pub created: String,
    /// WebSocket clients by serializer (`Serializer::ALL` order).
    clients: [Group; 3],
    /// WAMP v1 clients: one EVENT encoding (it names the topic) for all of them.
    v1: Group,
    backend: Group,
}

impl Subscription {
    pub fn subscriber_count(&self) -> usize {
        self.clients.iter().map(Group::len).sum::<usize>() + self.v1.len() + self.backend.len()
    }

    pub fn subscribers(&self) -> impl Iterator<Item = u64> + '_ {
        self.clients
            .iter()
            .chain([&self.v1, &self.backend])
            .flat_map(Group::sessions)
    }

    /// The group of `link`'s kind; none for another node's router, which never subscribes
    /// (its sessions subscribe on their own node).
    fn group_mut(&mut self, link: &Link) -> Option<&mut Group> {
        Some(match *link {
            Link::Client { serializer, .. } => {
                let slot = serializer_slot(serializer);
                let [json, msgpack, cbor] = &mut self.clients;
                match slot {
                    0 => json,
                    1 => msgpack,
                    _ => cbor,
                }
            }
            Link::V1 { .. } => &mut self.v1,
            Link::Backend { .. } => &mut self.backend,
            Link::Node { .. } => return None,
        })
    }
}

/// A publisher's identity, given in EVENT details when disclosed.
#[derive(Debug, Clone, PartialEq)]
pub struct Disclosure {
    pub session: u64,
    pub authid: Rc<str>,
    pub authrole: Rc<str>,
}

/// The last event retained on a topic (WAMP v2 advanced, "Event Retention").
#[derive(Debug, Clone)]
pub struct Retained {
    pub payload: Payload,
    pub publisher: Option<Disclosure>,
    pub audience: Audience,
}

/// Why `Broker::retain` kept nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainRefused {
    /// `max_retained` topics already retain.
    Topics,
    /// The event would pass `max_retained_bytes`.
    Bytes,
}

/// What a retained event counts against the bytes budget: its topic and arguments.
fn retained_size(topic: &str, event: &Retained) -> usize {
    topic.len().saturating_add(event.payload.heap_size())
}

/// What fans out.
#[derive(Clone, Copy)]
pub struct Publication<'a> {
    pub id: u64,
    pub topic: &'a str,
    pub publisher: Option<&'a Disclosure>,
    /// The publisher's own session when `exclude_me`.
    pub exclude_session: Option<u64>,
    pub audience: &'a Audience,
    /// Its position in the topic's history, when the topic keeps one.
    pub position: Option<&'a Position>,
}

/// The EVENT details key of a publication's position in its topic's history: a wson
/// extension (WAMP v2: custom attributes match `_[a-z0-9_]{3,}`), whose value is
/// `{"epoch": "1a2b3c4d-1", "offset": 7}`.
pub const POSITION_DETAIL: &str = "_wson_position";

/// `{"epoch": .., "offset": ..}`, as `_wson_position` and `_wson_resume` write a position.
pub fn position_value(position: &Position) -> Value {
    let mut dict = Dict::new();
    dict.insert("epoch", Value::from(position.epoch.as_str()));
    dict.insert("offset", Value::from(position.offset));
    Value::Dict(dict)
}

/// What SUBSCRIBE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    pub id: u64,
    /// A new subscription (on_create).
    pub created: bool,
    /// The session was not subscribed yet (on_subscribe).
    pub added: bool,
}

#[derive(Debug, Default)]
pub struct Broker {
    subscriptions: HashMap<u64, Subscription>,
    index: PatternIndex,
    retained: HashMap<String, Retained>,
    /// What `retained` holds, by `retained_size`.
    retained_bytes: usize,
}

impl Broker {
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }

    pub fn get(&self, id: u64) -> Option<&Subscription> {
        self.subscriptions.get(&id)
    }

    pub fn lookup(&self, uri: &str, policy: Match) -> Option<&Subscription> {
        self.subscriptions.get(&self.index.get(uri, policy)?)
    }

    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a Subscription)) {
        self.index.for_each_match(topic, |id| {
            if let Some(subscription) = self.subscriptions.get(&id) {
                f(subscription);
            }
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = &Subscription> {
        self.subscriptions.values()
    }

    pub fn subscribe(
        &mut self,
        uri: &str,
        policy: Match,
        link: &Link,
        member: Member,
        ids: &mut SequentialIds,
        created_at: impl FnOnce() -> String,
    ) -> Subscribed {
        let (id, created) = match self.index.get(uri, policy) {
            Some(id) if self.subscriptions.contains_key(&id) => (id, false),
            Some(_) | None => {
                let id = ids.next_id();
                self.index.insert(uri, policy, id);
                self.subscriptions.insert(
                    id,
                    Subscription {
                        id,
                        uri: uri.to_owned(),
                        policy,
                        created: created_at(),
                        clients: Default::default(),
                        v1: Group::default(),
                        backend: Group::default(),
                    },
                );
                (id, true)
            }
        };
        let added = match *link {
            Link::Client { key, .. } | Link::Backend { key } | Link::V1 { key } => self
                .subscriptions
                .get_mut(&id)
                .and_then(|subscription| subscription.group_mut(link))
                .is_some_and(|group| group.insert(key, member)),
            Link::Node { .. } => false,
        };
        Subscribed { id, created, added }
    }

    /// Removes `session` from subscription `id`: `None` when it was not subscribed, else
    /// whether the subscription went with it.
    pub fn unsubscribe(&mut self, id: u64, session: u64, link: &Link) -> Option<bool> {
        let subscription = self.subscriptions.get_mut(&id)?;
        if !subscription
            .group_mut(link)
            .is_some_and(|group| group.remove(session))
        {
            return None;
        }
        if subscription.subscriber_count() > 0 {
            return Some(false);
        }
        if let Some(subscription) = self.subscriptions.remove(&id) {
            self.index.remove(&subscription.uri, subscription.policy);
        }
        Some(true)
    }

    pub fn retained(&self, topic: &str) -> Option<&Retained> {
        self.retained.get(topic)
    }

    /// Keeps `event` as `topic`'s retained event, within two bounds on memory: at most
    /// `max_topics` topics retain (a topic not yet retaining is refused past it; existing
    /// ones still update), and the retained events hold at most `max_bytes` in all (by
    /// `Payload::heap_size`). An event that does not fit the bytes is refused and the topic's
    /// older event goes too: a subscriber must never get a stale "last value" as the latest.
    pub fn retain(
        &mut self,
        topic: &str,
        event: Retained,
        max_topics: usize,
        max_bytes: usize,
    ) -> Result<(), RetainRefused> {
        let size = retained_size(topic, &event);
        let previous = self
            .retained
            .get(topic)
            .map(|old| retained_size(topic, old));
        if previous.is_none() && self.retained.len() >= max_topics {
            return Err(RetainRefused::Topics);
        }
        let others = self.retained_bytes.saturating_sub(previous.unwrap_or(0));
        if others.saturating_add(size) > max_bytes {
            if previous.is_some() {
                self.retained.remove(topic);
                self.retained_bytes = others;
            }
            return Err(RetainRefused::Bytes);
        }
        self.retained.insert(topic.to_owned(), event);
        self.retained_bytes = others.saturating_add(size);
        Ok(())
    }

    /// Bytes the retained events hold (see `retain`).
    pub fn retained_bytes(&self) -> usize {
        self.retained_bytes
    }

    /// Sends `payload` to every subscriber `publication` reaches and gives it back.
    pub fn dispatch(
        &self,
        publication: &Publication<'_>,
        payload: Payload,
        out: &mut Vec<Action>,
    ) -> Payload {
        let mut payload = payload;
        self.for_each_match(publication.topic, |subscription| {
            let mut details = Dict::new();
            disclose(&mut details, publication.publisher);
            // WAMP v2 advanced, "Pattern-based Subscription": "the Broker MUST ... provide the
            // actual topic ... in EVENT.Details.topic" for prefix and wildcard subscriptions.
            if subscription.policy != Match::Exact {
                details.insert("topic", Value::from(publication.topic));
            }
            if let Some(position) = publication.position {
                details.insert(POSITION_DETAIL, position_value(position));
            }
            let message = Message::Event {
                subscription: subscription.id,
                publication: publication.id,
                details,
                payload: std::mem::take(&mut payload),
            };
            deliver(subscription, &message, publication, out);
            if let Message::Event { payload: back, .. } = message {
                payload = back;
            }
        });
        payload
    }
}

/// The EVENT details key of the answer to a `_wson_resume` the history cannot fill: one
/// EVENT without arguments, `{"reason": "epoch"|"gone"|"ahead"|"off", "epoch": .., "offset":
/// ..}` (the topic's last position, or nulls without a history): the session reloads.
pub const RELOAD_DETAIL: &str = "_wson_reload";

/// The EVENTs a session subscribed to `subscription` gets for a `_wson_resume`: what it
/// missed, in order, each with its position (and its publisher when disclosed), skipping
/// what its audience would not have let the session receive; or one reload EVENT.
/// `member` is the session; `next_id` draws publication ids for events that have none.
pub fn resume_events(
    subscription: u64,
    missed: Missed,
    member: &Member,
    mut next_id: impl FnMut() -> u64,
) -> Vec<Message> {
    match missed {
        Missed::Events(events) => events
            .into_iter()
            .filter(|event| {
                event.audience.as_ref().is_none_or(|audience| {
                    audience.admits(member.session, &member.authid, &member.authrole)
                })
            })
            .map(|event| {
                let mut details = Dict::new();
                disclose(&mut details, event.publisher.as_ref());
                details.insert(POSITION_DETAIL, position_value(&event.position));
                Message::Event {
                    subscription,
                    publication: event.publication.unwrap_or_else(&mut next_id),
                    details,
                    payload: event.payload,
                }
            })
            .collect(),
        Missed::Reload(reload, position) => {
            let mut why = Dict::new();
            why.insert("reason", Value::from(reload.reason()));
            match position {
                Some(position) => {
                    why.insert("epoch", Value::from(position.epoch));
                    why.insert("offset", Value::from(position.offset));
                }
                None => {
                    why.insert("epoch", Value::Null);
                    why.insert("offset", Value::Null);
                }
            }
            let mut details = Dict::new();
            details.insert(RELOAD_DETAIL, Value::Dict(why));
            vec![Message::Event {
                subscription,
                publication: next_id(),
                details,
                payload: Payload::default(),
            }]
        }
    }
}

/// EVENT details of a disclosed publisher (WAMP v2 advanced, "Publisher Identification").
pub fn disclose(details: &mut Dict, publisher: Option<&Disclosure>) {
    if let Some(publisher) = publisher {
        details.insert("publisher", Value::from(publisher.session));
        details.insert("publisher_authid", Value::from(&*publisher.authid));
        details.insert("publisher_authrole", Value::from(&*publisher.authrole));
    }
}

fn deliver(
    subscription: &Subscription,
    message: &Message,
    publication: &Publication<'_>,
    out: &mut Vec<Action>,
) {
    for (serializer, group) in Serializer::ALL.into_iter().zip(&subscription.clients) {
        if group.is_empty() {
            continue;
        }
        let to = group.recipients(publication.exclude_session, publication.audience);
        if to.is_empty() {
            continue;
        }
        out.push(Action::Send {
            to,
            binary: serializer.is_binary(),
            bytes: Rc::from(serializer.encode(message)),
        });
    }
    if !subscription.v1.is_empty()
        && let Message::Event { payload, .. } = message
    {
        let to = subscription
            .v1
            .recipients(publication.exclude_session, publication.audience);
        if !to.is_empty() {
            // v1 subscriptions are exact, so the subscription's URI is the topic.
            let event = crate::wamp::v1::V1Message::Event {
                topic: subscription.uri.clone(),
                event: crate::router::v1::single_value(payload.clone()),
            };
            out.push(Action::Send {
                to,
                binary: false,
                bytes: Rc::from(crate::wamp::v1::encode(&event)),
            });
        }
    }
    if !subscription.backend.is_empty() {
        for key in subscription
            .backend
            .recipients(publication.exclude_session, publication.audience)
        {
            out.push(Action::Control {
                to: key,
                message: message.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::slab::Slab;

    fn keys(n: usize) -> Vec<Key> {
        let mut slab = Slab::default();
        (0..n).filter_map(|i| slab.insert(i)).collect()
    }

    fn member(session: u64) -> Member {
        Member {
            session,
            authid: Rc::from(format!("user{session}")),
            authrole: Rc::from("user"),
        }
    }

    #[test]
    fn group_removal_keeps_keys_and_members_aligned() {
        let keys = keys(4);
        let mut group = Group::default();
        for (i, key) in keys.iter().enumerate() {
            assert!(group.insert(*key, member(i as u64 + 1)));
        }
        assert!(!group.insert(keys[0], member(1)));
        assert!(group.remove(2));
        assert!(!group.remove(2));
        let everyone = Audience::default();
        let to = group.recipients(None, &everyone);
        assert_eq!(to, vec![keys[0], keys[3], keys[2]]);
        assert_eq!(group.recipients(Some(4), &everyone), vec![keys[0], keys[2]]);
        assert_eq!(group.recipients(Some(99), &everyone).len(), 3);
        let mut audience = Audience::default();
        audience.exclude_authid.insert("user3".into());
        assert_eq!(group.recipients(Some(1), &audience), vec![keys[3]]);
    }

    #[test]
    fn same_uri_and_match_share_a_subscription() {
        let keys = keys(2);
        let mut broker = Broker::default();
        let mut ids = SequentialIds::new();
        let link = |key| Link::Client {
            key,
            serializer: Serializer::Json,
        };
        let first = broker.subscribe(
            "a.b",
            Match::Exact,
            &link(keys[0]),
            member(1),
            &mut ids,
            String::new,
        );
        let second = broker.subscribe(
            "a.b",
            Match::Exact,
            &link(keys[1]),
            member(2),
            &mut ids,
            String::new,
        );
        let again = broker.subscribe(
            "a.b",
            Match::Exact,
            &link(keys[1]),
            member(2),
            &mut ids,
            String::new,
        );
        let prefix = broker.subscribe(
            "a.b",
            Match::Prefix,
            &link(keys[1]),
            member(2),
            &mut ids,
            String::new,
        );
        assert_eq!((first.created, first.added), (true, true));
        assert_eq!(
            (second.id, second.created, second.added),
            (first.id, false, true)
        );
        assert_eq!(
            (again.id, again.created, again.added),
            (first.id, false, false)
        );
        assert_ne!(prefix.id, first.id);
        assert_eq!(broker.unsubscribe(first.id, 1, &link(keys[0])), Some(false));
        assert_eq!(broker.unsubscribe(first.id, 1, &link(keys[0])), None);
        assert_eq!(broker.unsubscribe(first.id, 2, &link(keys[1])), Some(true));
        assert!(broker.get(first.id).is_none());
        assert!(broker.lookup("a.b", Match::Exact).is_none());
        assert_eq!(broker.subscription_count(), 1);
    }

    #[test]
    fn retention_is_bounded_by_topics() {
        let mut broker = Broker::default();
        let event = Retained {
            payload: Payload::default(),
            publisher: None,
            audience: Audience::default(),
        };
        assert_eq!(broker.retain("a", event.clone(), 1, usize::MAX), Ok(()));
        assert_eq!(broker.retain("a", event.clone(), 1, usize::MAX), Ok(()));
        assert_eq!(
            broker.retain("b", event, 1, usize::MAX),
            Err(RetainRefused::Topics)
        );
        assert_eq!(broker.retained_count(), 1);
    }

    #[test]
    fn retention_is_bounded_by_bytes_and_an_event_too_big_drops_the_stale_one() {
        let event = |text: &str| Retained {
            payload: Payload {
                args: vec![Value::from(text)],
                kwargs: Dict::new(),
            },
            publisher: None,
            audience: Audience::default(),
        };
        let small = retained_size("a", &event("x"));
        let mut broker = Broker::default();
        let budget = 3 * small;
        assert_eq!(broker.retain("a", event("x"), 10, budget), Ok(()));
        assert_eq!(broker.retain("b", event("y"), 10, budget), Ok(()));
        assert_eq!(broker.retained_bytes(), 2 * small);
        // Replacing an event counts the difference, not the sum.
        assert_eq!(broker.retain("a", event("z"), 10, budget), Ok(()));
        assert_eq!(broker.retained_bytes(), 2 * small);
        // Too big for what is left: refused, and "a"'s older value is not kept as the latest.
        let big = "x".repeat(2 * small);
        assert_eq!(
            broker.retain("a", event(&big), 10, budget),
            Err(RetainRefused::Bytes)
        );
        assert!(broker.retained("a").is_none());
        assert_eq!(broker.retained_count(), 1);
        assert_eq!(broker.retained_bytes(), small);
        // A string's bytes count in full: a 1 MB event never fits a 64 KB budget.
        let huge = "x".repeat(1 << 20);
        assert_eq!(
            broker.retain("c", event(&huge), 10, 1 << 16),
            Err(RetainRefused::Bytes)
        );
    }

    mod scenarios {
        use crate::router::testing::{Harness, Out, config, parse, to};
        use crate::router::{Action, Peer, RouterConfig};
        use crate::wamp::{Dict, Message, Payload, Serializer, Value};

        fn subscribed(out: &[Out]) -> u64 {
            out.iter()
                .find_map(|out| match out {
                    Out::To(_, Message::Subscribed { subscription, .. })
                    | Out::Control(_, Message::Subscribed { subscription, .. }) => {
                        Some(*subscription)
                    }
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no SUBSCRIBED in {out:?}"))
        }

        fn events(out: &[Out]) -> Vec<(crate::server::slab::Key, Message)> {
            out.iter()
                .filter_map(|out| match out {
                    Out::To(key, message @ Message::Event { .. })
                    | Out::Control(key, message @ Message::Event { .. }) => {
                        Some((*key, message.clone()))
                    }
                    _ => None,
                })
                .collect()
        }

        #[test]
        fn one_subscription_per_uri_and_match() {
            let mut h = Harness::new(config());
            let (a, _) = h.join("a");
            let (b, _) = h.join("b");
            let first = subscribed(&h.send(a, r#"[32,1,{},"com.x"]"#));
            assert_eq!(
                subscribed(&h.send(b, r#"[32,1,{"match":"exact"},"com.x"]"#)),
                first
            );
            assert_eq!(subscribed(&h.send(a, r#"[32,2,{},"com.x"]"#)), first);
            let prefix = subscribed(&h.send(a, r#"[32,3,{"match":"prefix"},"com.x"]"#));
            assert_ne!(prefix, first);
            assert_eq!(h.router.figures().subscriptions, 2);
        }

        #[test]
        fn publication_reaches_subscribers_but_not_the_publisher() {
            let mut h = Harness::new(config());
            let (a, _) = h.join("a");
            let (b, _) = h.join("b");
            let sub = subscribed(&h.send(a, r#"[32,1,{},"com.x"]"#));
            h.send(b, r#"[32,1,{},"com.x"]"#);
            let out = h.send(a, r#"[16,2,{},"com.x",[1,"two"],{"k":true}]"#);
            let received = events(&out);
            assert_eq!(received.len(), 1);
            let (
                key,
                Message::Event {
                    subscription,
                    details,
                    payload,
                    ..
                },
            ) = &received[0]
            else {
                panic!();
            };
            assert_eq!((*key, *subscription), (b, sub));
            assert!(details.is_empty());
            assert_eq!(payload.args, vec![Value::Integer(1), Value::from("two")]);
            assert_eq!(payload.kwargs.get("k"), Some(&Value::Bool(true)));
            let out = h.send(a, r#"[16,3,{"exclude_me":false},"com.x"]"#);
            let mut keys = events(&out)
                .into_iter()
                .map(|(key, _)| key)
                .collect::<Vec<_>>();
            keys.sort();
            assert_eq!(keys, vec![a, b]);
        }

        #[test]
        fn acknowledged_publication_gets_published_first() {
            let mut h = Harness::new(config());
            let (a, _) = h.join("a");
            h.send(a, r#"[32,1,{},"com.x"]"#);
            let out = h.send(
                a,
                r#"[16,9,{"acknowledge":true,"exclude_me":false},"com.x"]"#,
            );
            let [
                Out::To(
                    _,
                    Message::Published {
                        request: 9,
                        publication,
                    },
                ),
                Out::To(
                    _,
                    Message::Event {
                        publication: event_publication,
                        ..
                    },
                ),
                Out::Plain { .. },
            ] = out.as_slice()
            else {
                panic!("{out:?}");
            };
            assert_eq!(publication, event_publication);
        }

        #[test]
        fn audience_options_filter_recipients() {
            let mut h = Harness::new(config());
            let (p, _) = h.join("pub");
            let (a, sa) = h.join("alice");
            let (b, sb) = h.join("bob");
            let (c, _) = h.join_as(Serializer::Json, "realm1", "carol");
            for key in [a, b, c] {
                h.send(key, r#"[32,1,{},"t"]"#);
            }
            let control = h.key();
            h.backend(control, r#"[32,1,{},"t"]"#);
            let receivers = |h: &mut Harness, options: &str| {
                let out = h.send(p, &format!(r#"[16,1,{options},"t"]"#));
                let mut keys = events(&out).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
                keys.sort();
                keys
            };
            let mut all = vec![a, b, c, control];
            all.sort();
            assert_eq!(receivers(&mut h, "{}"), all);
            assert_eq!(
                receivers(&mut h, &format!(r#"{{"exclude":[{sa}]}}"#)),
                vec![b, c, control]
            );
            assert_eq!(
                receivers(&mut h, &format!(r#"{{"eligible":[{sa},{sb}]}}"#)),
                vec![a, b]
            );
            assert_eq!(
                receivers(&mut h, r#"{"exclude_authid":["bob","backend"]}"#),
                vec![a, c]
            );
            assert_eq!(
                receivers(&mut h, r#"{"eligible_authid":["carol"]}"#),
                vec![c]
            );
            assert_eq!(
                receivers(&mut h, r#"{"exclude_authrole":["user"]}"#),
                vec![control]
            );
            assert_eq!(
                receivers(&mut h, r#"{"eligible_authrole":["user"]}"#),
                vec![a, b, c]
            );
            assert_eq!(
                receivers(
                    &mut h,
                    &format!(r#"{{"eligible":[{sa},{sb}],"exclude_authid":["alice"]}}"#)
                ),
                vec![b]
            );
        }

        #[test]
        fn disclosed_publisher_and_pattern_topics_are_in_the_details() {
            let mut h = Harness::new(config());
            let (p, sp) = h.join("pub");
            let (a, _) = h.join("a");
            h.send(a, r#"[32,1,{"match":"prefix"},"com."]"#);
            h.send(a, r#"[32,2,{"match":"wildcard"},"com..z"]"#);
            h.send(a, r#"[32,3,{},"com.y.z"]"#);
            let out = h.send(p, r#"[16,1,{"disclose_me":true},"com.y.z"]"#);
            let texts = to(&out, a);
            assert_eq!(texts.len(), 3, "{texts:?}");
            let publisher =
                format!(r#""publisher":{sp},"publisher_authid":"pub","publisher_authrole":"user""#);
            assert!(texts.iter().all(|t| t.contains(&publisher)), "{texts:?}");
            assert_eq!(
                texts
                    .iter()
                    .filter(|t| t.contains(r#""topic":"com.y.z""#))
                    .count(),
                2
            );
            let out = h.send(p, r#"[16,1,{},"com.q"]"#);
            let texts = to(&out, a);
            assert_eq!(texts.len(), 1);
            assert!(texts[0].ends_with(r#",{"topic":"com.q"}]"#), "{texts:?}");
        }

        #[test]
        fn each_subscription_and_serializer_is_encoded_once_and_shared() {
            let mut h = Harness::new(config());
            let (p, _) = h.join("pub");
            let mut keys = Vec::new();
            for serializer in [
                Serializer::Json,
                Serializer::Json,
                Serializer::Json,
                Serializer::MsgPack,
                Serializer::MsgPack,
                Serializer::Cbor,
            ] {
                let (key, _) = h.join_as(serializer, "realm1", "s");
                h.send(key, r#"[32,1,{},"t"]"#);
                keys.push(key);
            }
            h.send(keys[0], r#"[32,2,{"match":"prefix"},"t"]"#);
            let actions = h.send_raw(p, r#"[16,1,{},"t",["x"]]"#);
            let sends = actions
                .iter()
                .filter_map(|action| match action {
                    Action::Send { to, binary, bytes } => Some((to.len(), *binary, bytes.clone())),
                    _ => None,
                })
                .collect::<Vec<_>>();
            let counts = sends
                .iter()
                .map(|(n, binary, _)| (*n, *binary))
                .collect::<Vec<_>>();
            assert_eq!(counts, vec![(3, false), (2, true), (1, true), (1, false)]);
            // The Rc is shared by every recipient of a Send: one allocation per group.
            assert!(
                sends
                    .iter()
                    .all(|(_, _, bytes)| std::rc::Rc::strong_count(bytes) == 2)
            );
            let decoded = h.decode(actions);
            assert_eq!(decoded.len(), 8, "7 events and the plain side's");
        }

        #[test]
        fn exclude_me_drops_only_the_publisher_from_its_group() {
            let mut h = Harness::new(config());
            let mut keys = Vec::new();
            for name in ["a", "b", "c"] {
                let (key, _) = h.join(name);
                h.send(key, r#"[32,1,{},"t"]"#);
                keys.push(key);
            }
            let actions = h.send_raw(keys[1], r#"[16,1,{},"t"]"#);
            let [Action::Send { to, .. }, Action::Plain { .. }] = actions.as_slice() else {
                panic!("{actions:?}");
            };
            let mut to = to.clone();
            to.sort();
            assert_eq!(to, vec![keys[0], keys[2]]);
        }

        #[test]
        fn retained_event_is_sent_on_subscribe_with_get_retained() {
            let mut h = Harness::new(config());
            let (p, sp) = h.join("pub");
            h.send(p, r#"[16,1,{"retain":true},"t",["old"]]"#);
            h.send(
                p,
                r#"[16,2,{"retain":true,"disclose_me":true},"t",["new"]]"#,
            );
            let (a, _) = h.join("a");
            let out = h.send(a, r#"[32,1,{"get_retained":true},"t"]"#);
            let texts = to(&out, a);
            assert_eq!(texts.len(), 2, "{texts:?}");
            assert!(texts[0].starts_with("[33,1,"));
            assert!(texts[1].contains(&format!(r#"{{"publisher":{sp},"publisher_authid":"pub","publisher_authrole":"user","retained":true}},["new"]]"#)), "{texts:?}");
            let out = h.send(a, r#"[32,2,{},"t"]"#);
            assert_eq!(to(&out, a).len(), 1);
            let out = h.send(a, r#"[32,3,{"get_retained":true,"match":"prefix"},"t"]"#);
            assert_eq!(
                to(&out, a).len(),
                1,
                "pattern subscriptions get no retained event"
            );
            assert_eq!(h.router.figures().retained_events, 1);
        }

        #[test]
        fn retained_event_respects_its_audience_and_the_bound() {
            let mut h = Harness::new(RouterConfig {
                max_retained: 1,
                ..config()
            });
            let (p, _) = h.join("pub");
            h.send(
                p,
                r#"[16,1,{"retain":true,"exclude_authid":["a"]},"t",["x"]]"#,
            );
            h.send(p, r#"[16,1,{"retain":true},"u",["y"]]"#);
            assert_eq!(h.router.figures().retained_events, 1);
            let (a, _) = h.join("a");
            assert_eq!(
                to(&h.send(a, r#"[32,1,{"get_retained":true},"t"]"#), a).len(),
                1
            );
            assert_eq!(
                to(&h.send(a, r#"[32,2,{"get_retained":true},"u"]"#), a).len(),
                1
            );
            let (b, _) = h.join("b");
            assert_eq!(
                to(&h.send(b, r#"[32,1,{"get_retained":true},"t"]"#), b).len(),
                2
            );
        }

        #[test]
        fn unsubscribe_and_its_errors() {
            let mut h = Harness::new(config());
            let (a, _) = h.join("a");
            let (b, _) = h.join("b");
            let sub = subscribed(&h.send(a, r#"[32,1,{},"t"]"#));
            assert_eq!(
                to(&h.send(b, &format!("[34,2,{sub}]")), b),
                vec![format!(
                    r#"[8,34,2,{{}},"wamp.error.no_such_subscription",["no subscription {sub} for this session"]]"#
                )]
            );
            assert_eq!(to(&h.send(a, &format!("[34,3,{sub}]")), a), vec!["[35,3]"]);
            assert_eq!(h.router.figures().subscriptions, 0);
            assert_eq!(
                to(&h.send(a, &format!("[34,4,{sub}]")), a)[0],
                format!(
                    r#"[8,34,4,{{}},"wamp.error.no_such_subscription",["no subscription {sub} for this session"]]"#
                )
            );
            assert!(to(&h.send(b, r#"[16,5,{},"t"]"#), a).is_empty());
        }

        #[test]
        fn invalid_topics_are_refused() {
            let mut h = Harness::new(RouterConfig {
                strict_uris: true,
                ..config()
            });
            let (a, _) = h.join("a");
            assert_eq!(
                to(&h.send(a, r#"[32,1,{},"a..b"]"#), a),
                vec![
                    r#"[8,32,1,{},"wamp.error.invalid_uri",["invalid URI 'a..b': has an empty component at byte 2"]]"#
                ]
            );
            assert_eq!(
                to(&h.send(a, r#"[32,2,{},"A.b"]"#), a),
                vec![
                    r#"[8,32,2,{},"wamp.error.invalid_uri",["invalid URI 'A.b': has a character outside [0-9a-z_] at byte 0 (strict URIs)"]]"#
                ]
            );
            assert_eq!(
                to(&h.send(a, r#"[32,3,{"match":"wildcard"},"a..b"]"#), a)[0],
                "[33,3,1]"
            );
            // Crossbar answers a refused PUBLISH only when it asked for acknowledgement.
            assert!(h.send(a, r#"[16,4,{},"a..b"]"#).is_empty());
            assert_eq!(
                to(&h.send(a, r#"[16,5,{"acknowledge":true},"a..b"]"#), a)[0],
                r#"[8,16,5,{},"wamp.error.invalid_uri",["invalid URI 'a..b': has an empty component at byte 2"]]"#
            );
        }

        #[test]
        fn clients_may_not_publish_to_wamp_topics() {
            let mut h = Harness::new(config());
            let (a, _) = h.join("a");
            h.send(a, r#"[32,1,{},"wamp.session.on_join"]"#);
            let (b, _) = h.join("b");
            assert!(h.send(b, r#"[16,1,{},"wamp.session.on_join"]"#).is_empty());
            assert_eq!(
                to(&h.send(b, r#"[16,2,{"acknowledge":true},"wamp.x"]"#), b),
                vec![r#"[8,16,2,{},"wamp.error.invalid_uri",["restricted URI 'wamp.x'"]]"#]
            );
            let control = h.key();
            let out = h.backend(
                control,
                r#"[16,3,{},"wamp.session.on_join",["from backend"]]"#,
            );
            assert_eq!(to(&out, a).len(), 1);
        }

        #[test]
        fn subscription_limit_is_an_error() {
            let mut h = Harness::new(RouterConfig {
                max_subscriptions_per_session: 2,
                ..config()
            });
            let (a, _) = h.join("a");
            h.send(a, r#"[32,1,{},"t1"]"#);
            h.send(a, r#"[32,2,{},"t2"]"#);
            assert_eq!(to(&h.send(a, r#"[32,3,{},"t2"]"#), a)[0], "[33,3,2]");
            assert_eq!(
                to(&h.send(a, r#"[32,4,{},"t3"]"#), a),
                vec![
                    r#"[8,32,4,{},"wamp.error.not_authorized",["the session has 2 subscriptions, the most allowed"]]"#
                ]
            );
            for request in 5..1000 {
                let out = h.send(a, &format!(r#"[32,{request},{{}},"x{request}"]"#));
                assert_eq!(out.len(), 1);
            }
            assert_eq!(h.router.figures().subscriptions, 2);
        }

        #[test]
        fn bad_option_types_are_protocol_violations() {
            let mut h = Harness::new(config());
            let (a, _) = h.join("a");
            let out = h.send(a, r#"[16,1,{"exclude":"x"},"t"]"#);
            assert!(
                matches!(out.first(), Some(Out::To(_, Message::Abort { .. }))),
                "{out:?}"
            );
            let (b, _) = h.join("b");
            let out = h.send(b, r#"[32,1,{"match":"regex"},"t"]"#);
            assert!(
                matches!(out.first(), Some(Out::To(_, Message::Abort { .. }))),
                "{out:?}"
            );
        }

        #[test]
        fn backend_realm_publications_reach_the_plain_side() {
            let mut h = Harness::new(config());
            let (a, _) = h.join("alice");
            let out = h.send(a, r#"[16,1,{},"news",["hi"]]"#);
            assert_eq!(
                out,
                vec![Out::Plain {
                    topic: "news".into(),
                    payload: Payload {
                        args: vec![Value::from("hi")],
                        kwargs: Dict::new()
                    },
                    publisher_authid: "alice".into(),
                }]
            );
            let (b, _) = h.join_as(Serializer::Json, "realm2", "bob");
            assert!(h.send(b, r#"[16,1,{},"news",["hi"]]"#).is_empty());
            let control = h.key();
            let out = h.backend(control, r#"[16,1,{},"news"]"#);
            assert!(
                matches!(out.as_slice(), [Out::Plain { publisher_authid, .. }] if publisher_authid == "backend")
            );
            // Meta events stay WAMP-side.
            let (c, _) = h.join("carol");
            h.send(c, r#"[32,1,{},"wamp.session.on_join"]"#);
            let out = h.send(c, r#"[32,2,{},"x"]"#);
            assert!(
                out.iter().all(|o| !matches!(o, Out::Plain { .. })),
                "{out:?}"
            );
        }

        #[test]
        fn plain_publications_reach_wamp_subscribers_without_plain_echo() {
            let mut h = Harness::new(config());
            let (a, sa) = h.join("alice");
            let (b, _) = h.join("bob");
            h.send(a, r#"[32,1,{},"news"]"#);
            h.send(b, r#"[32,1,{},"news"]"#);
            let mut actions = Vec::new();
            let mut options = Dict::new();
            options.insert("exclude", Value::List(vec![Value::from(sa)]));
            options.insert("retain", Value::Bool(true));
            let payload = Payload {
                args: vec![Value::from("x")],
                kwargs: Dict::new(),
            };
            let publication =
                h.router
                    .publish_from_plain("news", &options, payload, None, h.now, &mut actions);
            assert!((1..=crate::wamp::MAX_ID).contains(&publication));
            let out = h.decode(actions);
            assert_eq!(out.len(), 1, "{out:?}");
            assert_eq!(
                to(&out, b),
                vec![format!(r#"[36,1,{publication},{{}},["x"]]"#)]
            );
            assert_eq!(h.router.figures().retained_events, 1);
            let mut actions = Vec::new();
            assert_eq!(
                h.router.publish_from_plain(
                    "wamp.x",
                    &Dict::new(),
                    Payload::default(),
                    None,
                    h.now,
                    &mut actions
                ),
                0
            );
            assert_eq!(
                h.router.publish_from_plain(
                    "a..b",
                    &Dict::new(),
                    Payload::default(),
                    None,
                    h.now,
                    &mut actions
                ),
                0
            );
            assert!(actions.is_empty());
        }

        #[test]
        fn backend_subscribers_get_control_events() {
            let mut h = Harness::new(config());
            let control = h.key();
            let sub = subscribed(&h.backend(control, r#"[32,1,{},"t"]"#));
            let (a, _) = h.join("a");
            let out = h.send(a, r#"[16,1,{},"t",[1]]"#);
            let [
                Out::Control(key, Message::Event { subscription, .. }),
                Out::Plain { .. },
            ] = out.as_slice()
            else {
                panic!("{out:?}");
            };
            assert_eq!((*key, *subscription), (control, sub));
        }

        #[test]
        fn last_subscriber_leaving_deletes_the_subscription() {
            let mut h = Harness::new(config());
            let (a, _) = h.join("a");
            let (b, _) = h.join("b");
            h.send(a, r#"[32,1,{},"t"]"#);
            h.send(b, r#"[32,1,{},"t"]"#);
            h.gone(Peer::Client(a));
            assert_eq!(h.router.figures().subscriptions, 1);
            h.send(b, r#"[6,{},"wamp.close.close_realm"]"#);
            assert_eq!(h.router.figures().subscriptions, 0);
            let _ = parse("[35,1]");
        }

        /// The `_wson_position` of a JSON EVENT's details, `(epoch, offset)`.
        fn position_of(text: &str) -> Option<(String, u64)> {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let position = value.get(3)?.get("_wson_position")?;
            Some((
                position["epoch"].as_str()?.to_owned(),
                position["offset"].as_u64()?,
            ))
        }

        fn offsets(texts: &[String]) -> Vec<u64> {
            texts
                .iter()
                .filter(|t| t.starts_with("[36,"))
                .map(|t| {
                    position_of(t)
                        .unwrap_or_else(|| panic!("no position: {t}"))
                        .1
                })
                .collect()
        }

        #[test]
        fn events_of_a_kept_topic_carry_their_position() {
            let mut h = Harness::new(config());
            let (p, _) = h.join("pub");
            let (a, _) = h.join("a");
            h.send(a, r#"[32,1,{},"kept.news"]"#);
            h.send(a, r#"[32,2,{"match":"prefix"},"kept."]"#);
            h.send(a, r#"[32,3,{},"other"]"#);
            let out = h.send(p, r#"[16,1,{},"kept.news",["one"]]"#);
            let texts = to(&out, a);
            assert_eq!(texts.len(), 2, "{texts:?}");
            for text in &texts {
                assert_eq!(
                    position_of(text),
                    Some(("0badcafe-1".to_owned(), 1)),
                    "{text}"
                );
            }
            assert!(
                matches!(out.last(), Some(Out::Plain { .. })),
                "the plain side too"
            );
            let control = h.key();
            h.backend(control, r#"[16,1,{},"kept.news",["two"]]"#);
            let out = h.send(p, r#"[16,2,{},"kept.news",["three"]]"#);
            assert_eq!(offsets(&to(&out, a)), [3, 3]);
            let out = h.send(p, r#"[16,3,{},"other",["x"]]"#);
            assert_eq!(
                position_of(&to(&out, a)[0]),
                None,
                "no history, no position"
            );
            // Only the backend realm shares the plain side's topics and history.
            let (b, _) = h.join_as(Serializer::Json, "realm2", "b");
            h.send(b, r#"[32,1,{},"kept.news"]"#);
            let out = h.send(b, r#"[16,2,{"exclude_me":false},"kept.news",["x"]]"#);
            assert_eq!(position_of(&to(&out, b)[0]), None);
            assert_eq!(h.history.topics["kept.news"].0, 3);
        }

        #[test]
        fn a_resume_gets_the_missed_events_in_order_then_live_ones() {
            let mut h = Harness::new(config());
            let (p, _) = h.join("pub");
            for n in 1..=4 {
                h.send(p, &format!(r#"[16,{n},{{}},"kept.news",["m{n}"]]"#));
            }
            let (a, _) = h.join("a");
            let out = h.send(
                a,
                r#"[32,7,{"_wson_resume":{"epoch":"0badcafe-1","offset":2}},"kept.news"]"#,
            );
            let texts = to(&out, a);
            assert!(texts[0].starts_with("[33,7,"), "{texts:?}");
            assert_eq!(offsets(&texts), [3, 4]);
            assert!(texts[1].ends_with(r#"["m3"]]"#), "{texts:?}");
            let out = h.send(p, r#"[16,9,{},"kept.news",["m5"]]"#);
            assert_eq!(offsets(&to(&out, a)), [5]);
            // Up to date: nothing to replay.
            let (b, _) = h.join("b");
            let out = h.send(
                b,
                r#"[32,1,{"_wson_resume":{"epoch":"0badcafe-1","offset":5}},"kept.news"]"#,
            );
            assert_eq!(to(&out, b).len(), 1, "SUBSCRIBED alone");
        }

        #[test]
        fn a_resume_keeps_the_audience_and_the_disclosed_publisher() {
            let mut h = Harness::new(config());
            let (p, sp) = h.join("pub");
            h.send(
                p,
                r#"[16,1,{"exclude_authid":["a"]},"kept.x",["not for a"]]"#,
            );
            h.send(p, r#"[16,2,{"disclose_me":true},"kept.x",["for all"]]"#);
            let (a, _) = h.join("a");
            let out = h.send(
                a,
                r#"[32,1,{"_wson_resume":{"epoch":"0badcafe-1","offset":0}},"kept.x"]"#,
            );
            let texts = to(&out, a);
            assert_eq!(offsets(&texts), [2]);
            assert!(
                texts[1].contains(&format!(r#""publisher":{sp}"#)),
                "{texts:?}"
            );
            // exclude_me (the default) kept the publisher's session from its own EVENT
            // live, and so from the replay.
            let out = h.send(
                p,
                r#"[32,3,{"_wson_resume":{"epoch":"0badcafe-1","offset":0}},"kept.x"]"#,
            );
            assert_eq!(to(&out, p).len(), 1, "SUBSCRIBED alone");
        }

        #[test]
        fn a_resume_the_history_cannot_fill_gets_one_reload_event() {
            let mut h = Harness::new(config());
            let (p, _) = h.join("pub");
            for n in 1..=7 {
                h.send(p, &format!(r#"[16,{n},{{}},"kept.news",[{n}]]"#));
            }
            let (a, _) = h.join("a");
            let reload = |h: &mut Harness, request: u64, topic: &str, epoch: &str, offset: u64| {
                let out = h.send(
                    a,
                    &format!(
                        r#"[32,{request},{{"_wson_resume":{{"epoch":"{epoch}","offset":{offset}}}}},"{topic}"]"#
                    ),
                );
                let texts = to(&out, a);
                assert_eq!(texts.len(), 2, "{texts:?}");
                let value: serde_json::Value = serde_json::from_str(&texts[1]).unwrap();
                assert_eq!(value.as_array().unwrap().len(), 4, "no arguments: {value}");
                value[3]["_wson_reload"].clone()
            };
            let current = serde_json::json!({"epoch": "0badcafe-1", "offset": 7});
            let expect = |reason: &str, epoch: serde_json::Value, offset| {
                let mut answer = serde_json::json!({"reason": reason});
                answer["epoch"] = epoch;
                answer["offset"] = offset;
                answer
            };
            assert_eq!(
                reload(&mut h, 1, "kept.news", "12345678-1", 3),
                expect("epoch", current["epoch"].clone(), current["offset"].clone())
            );
            assert_eq!(
                reload(&mut h, 2, "kept.news", "0badcafe-1", 1),
                expect("gone", current["epoch"].clone(), current["offset"].clone())
            );
            assert_eq!(
                reload(&mut h, 3, "kept.news", "0badcafe-1", 8),
                expect("ahead", current["epoch"].clone(), current["offset"].clone())
            );
            assert_eq!(
                reload(&mut h, 4, "plain.news", "0badcafe-1", 1),
                expect("off", serde_json::Value::Null, serde_json::Value::Null)
            );
        }

        #[test]
        fn a_malformed_resume_is_invalid_argument_and_the_session_stays() {
            let mut h = Harness::new(config());
            let (a, _) = h.join("a");
            for (request, options) in [
                (1, r#"{"_wson_resume":"0badcafe-1:3"}"#),
                (2, r#"{"_wson_resume":{"epoch":"0badcafe-1"}}"#),
                (3, r#"{"_wson_resume":{"epoch":"0badcafe-1","offset":-1}}"#),
                (4, r#"{"_wson_resume":{"epoch":"XYZ","offset":1}}"#),
                (5, r#"{"_wson_resume":{"epoch":7,"offset":1}}"#),
                (
                    6,
                    r#"{"match":"prefix","_wson_resume":{"epoch":"0badcafe-1","offset":1}}"#,
                ),
            ] {
                let texts = to(
                    &h.send(a, &format!(r#"[32,{request},{options},"kept.x"]"#)),
                    a,
                );
                assert_eq!(texts.len(), 1, "{texts:?}");
                assert!(
                    texts[0].starts_with(&format!(
                        r#"[8,32,{request},{{}},"wamp.error.invalid_argument",["SUBSCRIBE: _wson_resume"#
                    )),
                    "{texts:?}"
                );
            }
            assert_eq!(h.router.figures().subscriptions, 0);
            assert!(to(&h.send(a, r#"[32,9,{},"kept.x"]"#), a)[0].starts_with("[33,9,"));
        }
    }
}
