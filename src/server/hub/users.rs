//! The user index: each user's open connections and the topics the backend subscribed the
//! user to (which every connection of the user joins, now and later).
//!
//! A user is known while it has a connection or a subscription; names are interned as
//! `Rc<str>`, shared with the connections' seats and the topics' presence maps. Ordered by
//! name, so a list can be paged with the last name of the previous page as the cursor.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::control::subscribe::JoinOptions;
use crate::server::hub::key_list::KeyList;
use crate::server::hub::names::page_after;
use crate::server::hub::names::{TopicId, UserName};
use crate::server::slab::Key;

#[derive(Default)]
pub struct Users {
    by_name: BTreeMap<UserName, User>,
    /// User-level subscriptions of all users together, for `max_user_subscriptions`.
    subscriptions: usize,
}

#[derive(Default)]
struct User {
    /// Open connections.
    connections: KeyList,
    /// Topics the backend subscribed the user to.
    topics: Vec<UserTopic>,
}

/// A topic the backend subscribed a user to (`J`), with the options each of the user's
/// connections joins it with, now and when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserTopic {
    pub topic: TopicId,
    pub options: JoinOptions,
}

impl Users {
    /// Adds an open connection of `name`; returns the interned name.
    pub fn join(&mut self, name: &str, key: Key) -> UserName {
        let name = self.intern(name);
        let user = self.by_name.entry(Rc::clone(&name)).or_default();
        user.connections.push(key);
        name
    }

    /// Removes a connection that is no longer open; a user with no connection and no
    /// subscription is forgotten.
    pub fn leave(&mut self, name: &str, key: Key) {
        let Some(user) = self.by_name.get_mut(name) else {
            return;
        };
        user.connections.remove(key);
        if user.connections.is_empty() && user.topics.is_empty() {
            self.by_name.remove(name);
        }
    }

    /// The interned name, when the user is known.
    pub fn name(&self, name: &str) -> Option<UserName> {
        self.by_name
            .get_key_value(name)
            .map(|(name, _)| Rc::clone(name))
    }

    fn intern(&self, name: &str) -> UserName {
        self.name(name).unwrap_or_else(|| Rc::from(name))
    }

    pub fn connections(&self, name: &str) -> &[Key] {
        self.by_name
            .get(name)
            .map_or(&[], |user| user.connections.as_slice())
    }

    pub fn subscriptions(&self, name: &str) -> &[UserTopic] {
        self.by_name
            .get(name)
            .map_or(&[], |user| user.topics.as_slice())
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions
    }

    /// Records that the user is subscribed to `topic` with `options` (a second `J` replaces
    /// the options of the first: the last one says); false when it already was.
    pub fn subscribe(&mut self, name: &str, topic: TopicId, options: JoinOptions) -> bool {
        let name = self.intern(name);
        let user = self.by_name.entry(name).or_default();
        if let Some(held) = user.topics.iter_mut().find(|held| held.topic == topic) {
            held.options = options;
            return false;
        }
        user.topics.push(UserTopic { topic, options });
        self.subscriptions += 1;
        true
    }

    /// Ends the user's subscription to `topic`; false when there was none.
    pub fn unsubscribe(&mut self, name: &str, topic: TopicId) -> bool {
        let Some(user) = self.by_name.get_mut(name) else {
            return false;
        };
        let Some(position) = user.topics.iter().position(|held| held.topic == topic) else {
            return false;
        };
        user.topics.swap_remove(position);
        self.subscriptions -= 1;
        if user.connections.is_empty() && user.topics.is_empty() {
            self.by_name.remove(name);
        }
        true
    }

    /// Users with at least one open connection.
    pub fn online(&self) -> usize {
        self.by_name
            .values()
            .filter(|user| !user.connections.is_empty())
            .count()
    }

    /// One page of online users after `cursor`, with their connection counts, and
    /// whether more follow.
    pub fn page(&self, cursor: &[u8], limit: usize) -> (Vec<(UserName, usize)>, bool) {
        page_after(&self.by_name, cursor, limit, |user| {
            (!user.connections.is_empty()).then_some(user.connections.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::slab::Slab;

    fn keys(n: usize) -> Vec<Key> {
        let mut slab = Slab::default();
        (0..n).map(|_| slab.insert(()).unwrap()).collect()
    }

    fn topic(n: usize) -> TopicId {
        TopicId::for_tests(n)
    }

    #[test]
    fn a_user_is_known_while_it_has_a_connection_or_a_subscription() {
        let k = keys(2);
        let mut users = Users::default();
        let alice = users.join("alice", k[0]);
        users.join("alice", k[1]);
        assert_eq!(&*alice, "alice");
        assert_eq!(users.connections("alice").len(), 2);
        users.subscribe("alice", topic(1), JoinOptions::default());
        users.leave("alice", k[0]);
        users.leave("alice", k[1]);
        assert!(users.name("alice").is_some(), "still subscribed");
        assert_eq!(users.online(), 0);
        assert!(users.unsubscribe("alice", topic(1)));
        assert!(users.name("alice").is_none());
        assert_eq!(users.subscription_count(), 0);
    }

    #[test]
    fn names_are_interned_once() {
        let k = keys(2);
        let mut users = Users::default();
        let first = users.join("bob", k[0]);
        let second = users.join("bob", k[1]);
        assert!(Rc::ptr_eq(&first, &second));
    }

    #[test]
    fn subscribing_twice_counts_once() {
        let mut users = Users::default();
        let retained = JoinOptions { get_retained: true };
        assert!(users.subscribe("carol", topic(3), retained));
        assert!(!users.subscribe("carol", topic(3), JoinOptions::default()));
        assert_eq!(users.subscription_count(), 1);
        // The last subscription's options are the ones kept.
        assert_eq!(
            users.subscriptions("carol"),
            &[UserTopic {
                topic: topic(3),
                options: JoinOptions::default()
            }]
        );
        users.subscribe("carol", topic(3), retained);
        assert!(users.subscriptions("carol")[0].options.get_retained);
        assert!(!users.unsubscribe("carol", topic(4)));
    }

    #[test]
    fn pages_follow_the_cursor_and_skip_offline_users() {
        let k = keys(5);
        let mut users = Users::default();
        for (name, key) in ["e", "a", "c", "b"].iter().zip(&k) {
            users.join(name, *key);
        }
        users.subscribe("d", topic(1), JoinOptions::default()); // known, offline
        users.join("c", k[4]);
        let names = |page: &[(UserName, usize)]| {
            page.iter()
                .map(|(name, count)| format!("{name}{count}"))
                .collect::<Vec<_>>()
        };
        let (first, more) = users.page(b"", 2);
        assert_eq!(
            (names(&first), more),
            (vec!["a1".into(), "b1".into()], true)
        );
        let (second, more) = users.page(b"b", 2);
        assert_eq!(
            (names(&second), more),
            (vec!["c2".into(), "e1".into()], false)
        );
        let (rest, more) = users.page(b"c", 10);
        assert_eq!((names(&rest), more), (vec!["e1".into()], false));
        // A cursor that is no name still pages by byte order.
        let (odd, _) = users.page(b"b\xff", 10);
        assert_eq!(names(&odd), vec!["c2", "e1"]);
    }
}
