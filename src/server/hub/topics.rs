//! Topics that the backend fills: for each, the connections subscribed to it, how many of
//! each user's connections that is (presence), and how many users are subscribed as users.
//!
//! A topic exists while it has a subscribed connection or a subscribed user. Members are a
//! dense list (a publication walks it) with an index beside it, so a connection leaves a
//! topic of 10,000 in constant time. Ordered by name for paging.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use crate::server::hub::names::{TopicId, UserName, page_after};
use crate::server::slab::{Key, Slab};

#[derive(Default)]
pub struct Topics {
    by_name: BTreeMap<Rc<str>, TopicId>,
    topics: Slab<Topic>,
}

struct Topic {
    name: Rc<str>,
    members: Vec<Key>,
    /// Each member's place in `members`.
    positions: HashMap<Key, usize>,
    /// Subscribed connections per user.
    presence: BTreeMap<UserName, usize>,
    /// Users subscribed as users (their future connections join too).
    user_subscribers: usize,
}

/// A topic limit that refused a new topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimit;

/// What adding or removing a member changed for the member's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Nothing changed (already a member, or not one).
    Unchanged,
    /// The member was added or removed; the user had or keeps other members.
    Member,
    /// The user's first connection joined, or its last one left.
    User,
}

impl Topics {
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<TopicId> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, id: TopicId) -> Option<&Rc<str>> {
        self.topics.get(id.key()).map(|topic| &topic.name)
    }

    /// The topic named `name`, created when absent unless `max_topics` exist.
    pub fn get_or_create(&mut self, name: &str, max_topics: usize) -> Result<TopicId, TopicLimit> {
        if let Some(id) = self.get(name) {
            return Ok(id);
        }
        if self.topics.len() >= max_topics {
            return Err(TopicLimit);
        }
        let name: Rc<str> = Rc::from(name);
        let key = self
            .topics
            .insert(Topic {
                name: Rc::clone(&name),
                members: Vec::new(),
                positions: HashMap::new(),
                presence: BTreeMap::new(),
                user_subscribers: 0,
            })
            .ok_or(TopicLimit)?;
        let id = TopicId::new(key);
        self.by_name.insert(name, id);
        Ok(id)
    }

    /// The connections subscribed to a topic, each once.
    pub fn members(&self, id: TopicId) -> &[Key] {
        self.topics
            .get(id.key())
            .map_or(&[], |topic| topic.members.as_slice())
    }

    pub fn add_member(&mut self, id: TopicId, key: Key, user: &UserName) -> Presence {
        let Some(topic) = self.topics.get_mut(id.key()) else {
            return Presence::Unchanged;
        };
        if topic.positions.contains_key(&key) {
            return Presence::Unchanged;
        }
        topic.positions.insert(key, topic.members.len());
        topic.members.push(key);
        let count = topic.presence.entry(Rc::clone(user)).or_insert(0);
        *count += 1;
        if *count == 1 {
            Presence::User
        } else {
            Presence::Member
        }
    }

    /// Removes a member; the topic goes away when nothing is subscribed to it any more.
    pub fn remove_member(&mut self, id: TopicId, key: Key, user: &str) -> Presence {
        let Some(topic) = self.topics.get_mut(id.key()) else {
            return Presence::Unchanged;
        };
        let Some(position) = topic.positions.remove(&key) else {
            return Presence::Unchanged;
        };
        topic.members.swap_remove(position);
        if let Some(&moved) = topic.members.get(position) {
            topic.positions.insert(moved, position);
        }
        let left = match topic.presence.get_mut(user) {
            Some(count) if *count > 1 => {
                *count -= 1;
                Presence::Member
            }
            Some(_) | None => {
                topic.presence.remove(user);
                Presence::User
            }
        };
        self.forget_if_unused(id);
        left
    }

    pub fn add_user_subscriber(&mut self, id: TopicId) {
        if let Some(topic) = self.topics.get_mut(id.key()) {
            topic.user_subscribers += 1;
        }
    }

    pub fn remove_user_subscriber(&mut self, id: TopicId) {
        if let Some(topic) = self.topics.get_mut(id.key()) {
            topic.user_subscribers = topic.user_subscribers.saturating_sub(1);
        }
        self.forget_if_unused(id);
    }

    /// Drops a topic nothing is subscribed to (also one created for a subscription that
    /// then found no connection).
    pub fn forget_if_unused(&mut self, id: TopicId) {
        let unused = self
            .topics
            .get(id.key())
            .is_some_and(|topic| topic.members.is_empty() && topic.user_subscribers == 0);
        if unused && let Some(topic) = self.topics.remove(id.key()) {
            self.by_name.remove(&topic.name);
        }
    }

    /// Users and connections subscribed to a topic.
    pub fn counts(&self, id: TopicId) -> (usize, usize) {
        self.topics
            .get(id.key())
            .map_or((0, 0), |topic| (topic.presence.len(), topic.members.len()))
    }

    /// The users with a connection subscribed to a topic, in order.
    pub fn users(&self, id: TopicId) -> impl Iterator<Item = &UserName> {
        self.topics
            .get(id.key())
            .into_iter()
            .flat_map(|topic| topic.presence.keys())
    }

    /// One page of topics after `cursor` with their subscribed connections.
    pub fn page(&self, cursor: &[u8], limit: usize) -> (Vec<(Rc<str>, usize)>, bool) {
        page_after(&self.by_name, cursor, limit, |id| {
            self.topics.get(id.key()).map(|topic| topic.members.len())
        })
    }

    /// One page of a topic's users after `cursor` with their subscribed connections.
    pub fn page_users(
        &self,
        id: TopicId,
        cursor: &[u8],
        limit: usize,
    ) -> (Vec<(Rc<str>, usize)>, bool) {
        match self.topics.get(id.key()) {
            Some(topic) => page_after(&topic.presence, cursor, limit, |count| Some(*count)),
            None => (Vec::new(), false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<Key> {
        let mut slab = Slab::default();
        (0..n).map(|_| slab.insert(()).unwrap()).collect()
    }

    #[test]
    fn presence_counts_connections_per_user() {
        let k = keys(3);
        let (alice, bob): (UserName, UserName) = (Rc::from("alice"), Rc::from("bob"));
        let mut topics = Topics::default();
        let news = topics.get_or_create("news", 10).unwrap();
        assert_eq!(topics.add_member(news, k[0], &alice), Presence::User);
        assert_eq!(topics.add_member(news, k[1], &alice), Presence::Member);
        assert_eq!(topics.add_member(news, k[1], &alice), Presence::Unchanged);
        assert_eq!(topics.add_member(news, k[2], &bob), Presence::User);
        assert_eq!(topics.counts(news), (2, 3));
        assert_eq!(topics.remove_member(news, k[0], "alice"), Presence::Member);
        assert_eq!(topics.remove_member(news, k[1], "alice"), Presence::User);
        assert_eq!(
            topics.remove_member(news, k[1], "alice"),
            Presence::Unchanged
        );
        assert_eq!(topics.members(news), &[k[2]]);
        assert_eq!(topics.remove_member(news, k[2], "bob"), Presence::User);
        assert!(topics.get("news").is_none(), "an empty topic is forgotten");
    }

    #[test]
    fn removing_a_member_keeps_every_other_member_reachable() {
        let k = keys(100);
        let user: UserName = Rc::from("u");
        let mut topics = Topics::default();
        let id = topics.get_or_create("t", 10).unwrap();
        for key in &k {
            topics.add_member(id, *key, &user);
        }
        for key in k.iter().step_by(3) {
            topics.remove_member(id, *key, "u");
        }
        let mut left: Vec<Key> = topics.members(id).to_vec();
        let mut expected: Vec<Key> = k
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, key)| *key)
            .collect();
        left.sort_by_key(|key| key.to_usize());
        expected.sort_by_key(|key| key.to_usize());
        assert_eq!(left, expected);
        for key in &expected {
            assert_ne!(topics.remove_member(id, *key, "u"), Presence::Unchanged);
        }
        assert!(topics.is_empty());
    }

    #[test]
    fn a_user_subscription_keeps_a_topic_without_members() {
        let mut topics = Topics::default();
        let id = topics.get_or_create("t", 10).unwrap();
        topics.add_user_subscriber(id);
        topics.forget_if_unused(id);
        assert_eq!(topics.get("t"), Some(id));
        topics.remove_user_subscriber(id);
        assert!(topics.get("t").is_none());
    }

    #[test]
    fn max_topics_refuses_a_new_topic_but_not_an_existing_one() {
        let mut topics = Topics::default();
        let a = topics.get_or_create("a", 1).unwrap();
        topics.add_user_subscriber(a);
        assert_eq!(topics.get_or_create("b", 1), Err(TopicLimit));
        assert_eq!(topics.get_or_create("a", 1), Ok(a));
    }

    #[test]
    fn topics_and_their_users_page_by_name() {
        let k = keys(3);
        let mut topics = Topics::default();
        for name in ["b", "a", "c"] {
            let id = topics.get_or_create(name, 10).unwrap();
            topics.add_user_subscriber(id);
        }
        let a = topics.get("a").unwrap();
        for (key, user) in k.iter().zip(["y", "x", "y"]) {
            topics.add_member(a, *key, &Rc::from(user));
        }
        let (page, more) = topics.page(b"", 2);
        let shown: Vec<String> = page.iter().map(|(n, c)| format!("{n}{c}")).collect();
        assert_eq!(
            (shown, more),
            (vec!["a3".to_owned(), "b0".to_owned()], true)
        );
        let (users, more) = topics.page_users(a, b"x", 5);
        let shown: Vec<String> = users.iter().map(|(n, c)| format!("{n}{c}")).collect();
        assert_eq!((shown, more), (vec!["y2".to_owned()], false));
    }
}
