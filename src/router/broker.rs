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

use crate::router::Action;
use crate::router::ids::SequentialIds;
use crate::router::options::Audience;
use crate::router::session::Link;
use crate::router::uri::{Match, PatternIndex};
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
    backend: Group,
}

impl Subscription {
    pub fn subscriber_count(&self) -> usize {
        self.clients.iter().map(Group::len).sum::<usize>() + self.backend.len()
    }

    pub fn subscribers(&self) -> impl Iterator<Item = u64> + '_ {
        self.clients
            .iter()
            .chain(std::iter::once(&self.backend))
            .flat_map(Group::sessions)
    }

    fn group_mut(&mut self, link: &Link) -> &mut Group {
        match *link {
            Link::Client { serializer, .. } => {
                let slot = serializer_slot(serializer);
                let [json, msgpack, cbor] = &mut self.clients;
                match slot {
                    0 => json,
                    1 => msgpack,
                    _ => cbor,
                }
            }
            Link::Backend { .. } => &mut self.backend,
        }
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

/// What fans out.
pub struct Publication<'a> {
    pub id: u64,
    pub topic: &'a str,
    pub publisher: Option<&'a Disclosure>,
    /// The publisher's own session when `exclude_me`.
    pub exclude_session: Option<u64>,
    pub audience: &'a Audience,
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
                        backend: Group::default(),
                    },
                );
                (id, true)
            }
        };
        let key = match *link {
            Link::Client { key, .. } | Link::Backend { key } => key,
        };
        let added = self
            .subscriptions
            .get_mut(&id)
            .is_some_and(|subscription| subscription.group_mut(link).insert(key, member));
        Subscribed { id, created, added }
    }

    /// Removes `session` from subscription `id`: `None` when it was not subscribed, else
    /// whether the subscription went with it.
    pub fn unsubscribe(&mut self, id: u64, session: u64, link: &Link) -> Option<bool> {
        let subscription = self.subscriptions.get_mut(&id)?;
        if !subscription.group_mut(link).remove(session) {
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

    /// Keeps `event` as `topic`'s retained event; a topic not yet retaining is refused once
    /// `max` topics retain (the bound on memory; existing topics still update).
    pub fn retain(&mut self, topic: &str, event: Retained, max: usize) -> bool {
        if let Some(slot) = self.retained.get_mut(topic) {
            *slot = event;
            return true;
        }
        if self.retained.len() >= max {
            return false;
        }
        self.retained.insert(topic.to_owned(), event);
        true
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
        assert!(broker.retain("a", event.clone(), 1));
        assert!(broker.retain("a", event.clone(), 1));
        assert!(!broker.retain("b", event, 1));
        assert_eq!(broker.retained_count(), 1);
    }
}
