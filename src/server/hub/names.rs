//! What the hub's indexes share: interned user names, topic ids, and paging by name.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;

use crate::server::slab::Key;

/// A user name, interned: the user index, the seats and the topics' presence share one
/// allocation per user.
pub type UserName = Rc<str>;

/// Names a topic while it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicId(Key);

impl TopicId {
    pub fn new(key: Key) -> TopicId {
        TopicId(key)
    }

    pub fn key(self) -> Key {
        self.0
    }

    #[cfg(test)]
    pub fn for_tests(n: usize) -> TopicId {
        let mut slab = crate::server::slab::Slab::default();
        let mut key = None;
        for _ in 0..=n {
            key = slab.insert(());
        }
        TopicId(key.unwrap())
    }
}

/// Up to `limit` entries of `map` whose names sort after `cursor` (bytewise) and that
/// `count` admits, with whether another admitted entry follows.
pub fn page_after<V>(
    map: &BTreeMap<Rc<str>, V>,
    cursor: &[u8],
    limit: usize,
    count: impl Fn(&V) -> Option<usize>,
) -> (Vec<(Rc<str>, usize)>, bool) {
    // A cursor is a name from a previous page, but it arrives as bytes: start from its
    // longest UTF-8 prefix, which sorts at or before it, and skip what is not after it.
    let prefix = match std::str::from_utf8(cursor) {
        Ok(text) => text,
        Err(error) => {
            std::str::from_utf8(cursor.get(..error.valid_up_to()).unwrap_or(&[])).unwrap_or("")
        }
    };
    let start = if cursor.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Included(prefix)
    };
    let mut items = Vec::new();
    let admitted = map
        .range::<str, _>((start, Bound::Unbounded))
        .filter(|(name, _)| name.as_bytes() > cursor || cursor.is_empty())
        .filter_map(|(name, value)| count(value).map(|count| (Rc::clone(name), count)));
    for item in admitted {
        if items.len() == limit {
            return (items, true);
        }
        items.push(item);
    }
    (items, false)
}
