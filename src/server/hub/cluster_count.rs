//! `H` across the cluster: a topic's connections added over the nodes, and its users counted
//! once however many nodes their connections are on.
//!
//! Counts of users do not add up (a user with a tab on two nodes is one user), so each node
//! answers the asker's `TopicCount` question with its connections as the count and its
//! users' names as the body; the asker counts the union of the names. A node with more than
//! `[cluster] max_count_users` users in the topic sends only their number, which is added
//! as it is: the answer stays bounded in bytes, and is then an upper bound (exact again once
//! the topic is smaller). The asker bounds its own part the same way.

use std::collections::HashSet;

use crate::control::fields::{self, Decimal, Fields};
use crate::server::hub::Hub;

/// The users of a topic heard so far for one `H`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct UserCount {
    /// The names sent by the nodes that sent names, this one's included.
    names: HashSet<Vec<u8>>,
    /// The users of the nodes that sent only their number.
    numbered: u64,
}

/// What one node said about its users of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NodeUsers<'a> {
    Names(Vec<&'a [u8]>),
    /// More than `max_count_users`: their number alone.
    Number(u64),
}

impl UserCount {
    /// This node's users: their names, or their number past `max_names`.
    fn of<'n>(count: usize, names: impl Iterator<Item = &'n str>, max_names: usize) -> UserCount {
        let mut users = UserCount::default();
        if count > max_names {
            users.numbered = count as u64;
        } else {
            users.names = names.map(|name| name.as_bytes().to_vec()).collect();
        }
        users
    }

    /// Adds another node's answer body; a body that is none is ignored (logged).
    pub(super) fn add_body(&mut self, body: &[u8]) {
        match parse_body(body) {
            Some(NodeUsers::Names(names)) => {
                self.names.extend(names.into_iter().map(<[u8]>::to_vec));
            }
            Some(NodeUsers::Number(number)) => {
                self.numbered = self.numbered.saturating_add(number);
            }
            None => {
                log::warn!("cluster: an H answer whose users are not a count and names; ignored")
            }
        }
    }

    /// The users counted: each name once, and the numbers added.
    pub(super) fn total(&self) -> u64 {
        (self.names.len() as u64).saturating_add(self.numbered)
    }
}

/// A node's users of a topic as an answer's body: the fields count, then each name, or the
/// count alone when there are more than `max_names`.
fn users_body<'n>(count: usize, names: impl Iterator<Item = &'n str>, max_names: usize) -> Vec<u8> {
    let number = Decimal::new(count as u64);
    let mut body = Vec::new();
    fields::append_field(&mut body, number.as_bytes());
    if count <= max_names {
        for name in names {
            fields::append_field(&mut body, name.as_bytes());
        }
    }
    body
}

/// Reads `users_body`: the count, then exactly that many names or none.
fn parse_body(body: &[u8]) -> Option<NodeUsers<'_>> {
    let mut values = Fields::new(body);
    let count = fields::decimal_value(values.next()?.ok()?)?;
    let names: Vec<&[u8]> = values.collect::<Result<_, _>>().ok()?;
    match u64::try_from(names.len()).ok()? {
        0 if count > 0 => Some(NodeUsers::Number(count)),
        sent if sent == count => Some(NodeUsers::Names(names)),
        _ => None,
    }
}

impl Hub {
    /// This node's part of `H` for the asker: (connections, users as the answer's body).
    pub(super) fn topic_count_answer(&self, topic: &str, max_names: usize) -> (u64, Vec<u8>) {
        let Some(id) = self.topics.get(topic) else {
            return (0, users_body(0, std::iter::empty(), max_names));
        };
        let (users, connections) = self.topics.counts(id);
        let names = self.topics.users(id).map(|name| &**name);
        (connections as u64, users_body(users, names, max_names))
    }

    /// This node's part of `H` for its own question: (connections, users).
    pub(super) fn topic_count_here(&self, topic: &str, max_names: usize) -> (u64, UserCount) {
        let Some(id) = self.topics.get(topic) else {
            return (0, UserCount::default());
        };
        let (users, connections) = self.topics.counts(id);
        let names = self.topics.users(id).map(|name| &**name);
        (connections as u64, UserCount::of(users, names, max_names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(count: usize, names: &[&str], max: usize) -> Vec<u8> {
        users_body(count, names.iter().copied(), max)
    }

    #[test]
    fn a_user_on_two_nodes_is_counted_once() {
        let mut users = UserCount::of(2, ["ann", "bob"].into_iter(), 10);
        users.add_body(&body(2, &["bob", "cat"], 10));
        users.add_body(&body(0, &[], 10));
        assert_eq!(users.total(), 3);
    }

    #[test]
    fn past_max_names_a_node_sends_its_number_which_is_added() {
        assert_eq!(body(3, &["a", "b", "c"], 2), b"1:3");
        assert_eq!(parse_body(b"1:3"), Some(NodeUsers::Number(3)));
        let mut users = UserCount::of(3, ["a", "b", "c"].into_iter(), 2);
        assert_eq!(users.total(), 3);
        users.add_body(&body(1, &["a"], 2));
        // "a" may be among the numbered three: an upper bound.
        assert_eq!(users.total(), 4);
        // max 0: numbers only.
        assert_eq!(body(1, &["a"], 0), b"1:1");
    }

    #[test]
    fn bodies_round_trip_and_bad_ones_are_none() {
        assert_eq!(
            parse_body(&body(2, &["a", "b"], 5)),
            Some(NodeUsers::Names(vec![&b"a"[..], b"b"]))
        );
        assert_eq!(parse_body(&body(0, &[], 5)), Some(NodeUsers::Names(vec![])));
        for bad in [&b""[..], b"1:x", b"1:21:a", b"1:11:a1:b", b"1:12:", b"3:1"] {
            assert_eq!(parse_body(bad), None, "{bad:?}");
        }
        let mut users = UserCount::default();
        users.add_body(b"junk");
        assert_eq!(users.total(), 0);
    }
}
