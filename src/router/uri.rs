//! URI rules and the index that finds the subscriptions or registrations matching a URI.
//!
//! WAMP v2, "URIs" and the advanced profile's pattern-based subscription/registration:
//!
//! | use                            | loose                              | strict (`strict_uris`)            |
//! |--------------------------------|------------------------------------|-----------------------------------|
//! | exact; PUBLISH, CALL           | `^([^\s\.#]+\.)*([^\s\.#]+)$`      | `^([0-9a-z_]+\.)*([0-9a-z_]+)$`   |
//! | prefix                         | `^([^\s\.#]+\.)*([^\s\.#]*)$`      | `^([0-9a-z_]+\.)*([0-9a-z_]*)$`   |
//! | wildcard                       | `^(([^\s\.#]+\.)\|\.)*([^\s\.#]+)?$` | `^(([0-9a-z_]+\.)\|\.)*([0-9a-z_]+)?$` |
//!
//! The prefix rule lets only the last component be empty (`com.myapp.` and `com.myapp` both
//! work), as Crossbar checks them (autobahn's `_URI_PAT_*_LAST_EMPTY`, used by
//! `crossbar/router/broker.py` `processSubscribe` and `dealer.py` `processRegister`).
//! `\s` is the union of the regex flavours routers use (`control::topic::is_uri_whitespace`),
//! and every URI is at most `MAX_TOPIC_LEN` bytes, as the plain side's topics (one namespace).
//!
//! Matching follows Crossbar's `crossbar/router/observation.py`: a prefix is a string prefix
//! (`com.myapp` matches `com.myapp2.x` too, as pytrie's `iter_prefix_values`), a wildcard
//! pattern has as many components as the URI, its empty components matching any one. For a
//! call, exact beats the longest prefix beats a wildcard (`best_matching_observation`); among
//! wildcards the first found by Crossbar's trie walk (`crossbar/router/wildcard.py`
//! `iter_matches`, which tries the concrete component before the empty one, left to right):
//! the pattern whose first wildcard comes latest.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::control::topic::{MAX_TOPIC_LEN, is_uri_whitespace};

/// How a subscription or registration matches URIs (`SUBSCRIBE.Options.match`,
/// `REGISTER.Options.match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Match {
    Exact,
    Prefix,
    Wildcard,
}

impl Match {
    pub fn parse(name: &str) -> Option<Match> {
        match name {
            "exact" => Some(Match::Exact),
            "prefix" => Some(Match::Prefix),
            "wildcard" => Some(Match::Wildcard),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Match::Exact => "exact",
            Match::Prefix => "prefix",
            Match::Wildcard => "wildcard",
        }
    }
}

/// Why a URI breaks its rule (the text of `wamp.error.invalid_uri`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriError {
    TooLong { len: usize },
    EmptyComponent { offset: usize },
    BadCharacter { offset: usize, strict: bool },
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            UriError::TooLong { len } => {
                write!(f, "is {len} bytes long, over the limit of {MAX_TOPIC_LEN}")
            }
            UriError::EmptyComponent { offset } => {
                write!(f, "has an empty component at byte {offset}")
            }
            UriError::BadCharacter {
                offset,
                strict: true,
            } => write!(
                f,
                "has a character outside [0-9a-z_] at byte {offset} (strict URIs)"
            ),
            UriError::BadCharacter {
                offset,
                strict: false,
            } => write!(f, "has whitespace or '#' at byte {offset}"),
        }
    }
}

/// Checks `uri` for `policy` (`Match::Exact` also for PUBLISH and CALL).
pub fn check(uri: &str, policy: Match, strict: bool) -> Result<(), UriError> {
    if uri.len() > MAX_TOPIC_LEN {
        return Err(UriError::TooLong { len: uri.len() });
    }
    let mut start = 0_usize;
    let mut components = uri.split('.').peekable();
    while let Some(component) = components.next() {
        let last = components.peek().is_none();
        let empty_allowed = match policy {
            Match::Exact => false,
            Match::Prefix => last,
            Match::Wildcard => true,
        };
        if component.is_empty() && !empty_allowed {
            return Err(UriError::EmptyComponent { offset: start });
        }
        for (offset, c) in component.char_indices() {
            let good = if strict {
                matches!(c, '0'..='9' | 'a'..='z' | '_')
            } else {
                c != '#' && !is_uri_whitespace(c)
            };
            if !good {
                return Err(UriError::BadCharacter {
                    offset: start + offset,
                    strict,
                });
            }
        }
        start += component.len() + 1;
    }
    Ok(())
}

/// URIs reserved for the router (WAMP v2, "Reserved URIs": "URIs ... starting with `wamp.`
/// are reserved for WAMP itself") and Crossbar's own namespace (`is_protected_uri` in
/// `crossbar/router/observation.py`).
pub fn is_protected(uri: &str) -> bool {
    uri.starts_with("wamp.") || uri.starts_with("crossbar.")
}

/// Subscriptions or registrations by (URI, match): the id of each, and the lookups a
/// publication or call needs without scanning every entry (exact: one hash lookup; prefix:
/// one lookup per distinct prefix length; wildcard: the patterns with as many components).
#[derive(Debug, Default)]
pub struct PatternIndex {
    exact: HashMap<String, u64>,
    prefix: HashMap<String, u64>,
    /// Distinct prefix lengths (in bytes) and how many prefixes have each.
    prefix_lengths: BTreeMap<usize, usize>,
    /// Wildcard patterns by component count.
    wildcard: HashMap<usize, Vec<(String, u64)>>,
}

fn component_count(uri: &str) -> usize {
    uri.bytes().filter(|&b| b == b'.').count() + 1
}

fn wildcard_matches(pattern: &str, uri: &str) -> bool {
    let mut uri_parts = uri.split('.');
    for part in pattern.split('.') {
        match uri_parts.next() {
            Some(actual) if part.is_empty() || part == actual => {}
            Some(_) | None => return false,
        }
    }
    uri_parts.next().is_none()
}

/// Crossbar's trie walk order: at the first component where two patterns differ in being a
/// wildcard, the one with the concrete component comes first.
fn wildcard_rank(pattern: &str) -> impl Iterator<Item = bool> + '_ {
    pattern.split('.').map(str::is_empty)
}

impl PatternIndex {
    pub fn get(&self, uri: &str, policy: Match) -> Option<u64> {
        match policy {
            Match::Exact => self.exact.get(uri).copied(),
            Match::Prefix => self.prefix.get(uri).copied(),
            Match::Wildcard => self
                .wildcard
                .get(&component_count(uri))?
                .iter()
                .find(|(pattern, _)| pattern == uri)
                .map(|&(_, id)| id),
        }
    }

    /// Adds `(uri, policy)` as `id`; the caller checked `get` is `None`.
    pub fn insert(&mut self, uri: &str, policy: Match, id: u64) {
        match policy {
            Match::Exact => {
                self.exact.insert(uri.to_owned(), id);
            }
            Match::Prefix => {
                if self.prefix.insert(uri.to_owned(), id).is_none() {
                    *self.prefix_lengths.entry(uri.len()).or_insert(0) += 1;
                }
            }
            Match::Wildcard => self
                .wildcard
                .entry(component_count(uri))
                .or_default()
                .push((uri.to_owned(), id)),
        }
    }

    pub fn remove(&mut self, uri: &str, policy: Match) {
        match policy {
            Match::Exact => {
                self.exact.remove(uri);
            }
            Match::Prefix => {
                if self.prefix.remove(uri).is_some()
                    && let Some(count) = self.prefix_lengths.get_mut(&uri.len())
                {
                    *count -= 1;
                    if *count == 0 {
                        self.prefix_lengths.remove(&uri.len());
                    }
                }
            }
            Match::Wildcard => {
                let count = component_count(uri);
                if let Some(patterns) = self.wildcard.get_mut(&count) {
                    patterns.retain(|(pattern, _)| pattern != uri);
                    if patterns.is_empty() {
                        self.wildcard.remove(&count);
                    }
                }
            }
        }
    }

    /// Calls `f` with the id of every entry matching `uri`: exact, then prefixes (shortest
    /// first), then wildcards. Allocates nothing.
    pub fn for_each_match(&self, uri: &str, mut f: impl FnMut(u64)) {
        if let Some(&id) = self.exact.get(uri) {
            f(id);
        }
        for &len in self.prefix_lengths.keys() {
            if len > uri.len() {
                break;
            }
            if let Some(prefix) = uri.get(..len)
                && let Some(&id) = self.prefix.get(prefix)
            {
                f(id);
            }
        }
        if let Some(patterns) = self.wildcard.get(&component_count(uri)) {
            for (pattern, id) in patterns {
                if wildcard_matches(pattern, uri) {
                    f(*id);
                }
            }
        }
    }

    /// The entry a call to `uri` goes to (see the module docs).
    pub fn best_match(&self, uri: &str) -> Option<u64> {
        self.best_match_where(uri, |_| true)
    }

    /// `best_match` among the entries `accept` takes (a call another node passed on goes
    /// to a registration with a callee on this node).
    pub fn best_match_where(&self, uri: &str, accept: impl Fn(u64) -> bool) -> Option<u64> {
        if let Some(&id) = self.exact.get(uri).filter(|&&id| accept(id)) {
            return Some(id);
        }
        self.longest_prefix(uri, &accept)
            .or_else(|| self.best_wildcard(uri, &accept))
    }

    /// The permission a role applies to `uri`, in Crossbar's order
    /// (`RouterRoleStaticAuth.authorize`): an exact permission, else a matching wildcard
    /// ("if we found a non-exact match, there might be a better one in the wildcards"), else
    /// the longest matching prefix.
    pub fn permission_match(&self, uri: &str) -> Option<u64> {
        if let Some(&id) = self.exact.get(uri) {
            return Some(id);
        }
        let any = |_| true;
        self.best_wildcard(uri, &any)
            .or_else(|| self.longest_prefix(uri, &any))
    }

    fn longest_prefix(&self, uri: &str, accept: &impl Fn(u64) -> bool) -> Option<u64> {
        for &len in self.prefix_lengths.keys().rev() {
            if len > uri.len() {
                continue;
            }
            if let Some(prefix) = uri.get(..len)
                && let Some(&id) = self.prefix.get(prefix)
                && accept(id)
            {
                return Some(id);
            }
        }
        None
    }

    fn best_wildcard(&self, uri: &str, accept: &impl Fn(u64) -> bool) -> Option<u64> {
        self.wildcard
            .get(&component_count(uri))?
            .iter()
            .filter(|(pattern, id)| wildcard_matches(pattern, uri) && accept(*id))
            .min_by(|(a, _), (b, _)| wildcard_rank(a).cmp(wildcard_rank(b)))
            .map(|&(_, id)| id)
    }

    /// Every id with its policy, exact first (for `wamp.*.list`).
    pub fn iter(&self) -> impl Iterator<Item = (Match, &str, u64)> {
        let exact = self
            .exact
            .iter()
            .map(|(uri, &id)| (Match::Exact, uri.as_str(), id));
        let prefix = self
            .prefix
            .iter()
            .map(|(uri, &id)| (Match::Prefix, uri.as_str(), id));
        let wildcard = self
            .wildcard
            .values()
            .flatten()
            .map(|(uri, id)| (Match::Wildcard, uri.as_str(), *id));
        exact.chain(prefix).chain(wildcard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_exact_uris() {
        for good in [
            "a",
            "com.myapp.topic1",
            "ünï.名前",
            "A-B.c:d/e",
            "wamp.session.on_join",
        ] {
            assert_eq!(check(good, Match::Exact, false), Ok(()), "{good}");
        }
        assert_eq!(
            check("", Match::Exact, false),
            Err(UriError::EmptyComponent { offset: 0 })
        );
        assert_eq!(
            check("a..b", Match::Exact, false),
            Err(UriError::EmptyComponent { offset: 2 })
        );
        assert_eq!(
            check("a.b.", Match::Exact, false),
            Err(UriError::EmptyComponent { offset: 4 })
        );
        assert_eq!(
            check("a b", Match::Exact, false),
            Err(UriError::BadCharacter {
                offset: 1,
                strict: false
            })
        );
        assert_eq!(
            check("a.#", Match::Exact, false),
            Err(UriError::BadCharacter {
                offset: 2,
                strict: false
            })
        );
        assert!(check("a.\u{feff}", Match::Exact, false).is_err());
        assert_eq!(
            check(&"a".repeat(256), Match::Exact, false),
            Err(UriError::TooLong { len: 256 })
        );
    }

    #[test]
    fn strict_uris_are_lowercase_digits_underscore() {
        assert_eq!(check("com.my_app.v2", Match::Exact, true), Ok(()));
        assert_eq!(
            check("com.MyApp", Match::Exact, true),
            Err(UriError::BadCharacter {
                offset: 4,
                strict: true
            })
        );
        assert!(check("com.my-app", Match::Exact, true).is_err());
        assert_eq!(check("com.", Match::Prefix, true), Ok(()));
        assert_eq!(check("com..x", Match::Wildcard, true), Ok(()));
    }

    #[test]
    fn prefix_uris_may_end_empty_only() {
        assert_eq!(check("com.myapp.", Match::Prefix, false), Ok(()));
        assert_eq!(check("com.myapp", Match::Prefix, false), Ok(()));
        assert_eq!(check("", Match::Prefix, false), Ok(()));
        assert_eq!(
            check("com..myapp", Match::Prefix, false),
            Err(UriError::EmptyComponent { offset: 4 })
        );
    }

    #[test]
    fn wildcard_uris_may_have_empty_components() {
        for good in ["com..create", ".a.", "..", "a.b"] {
            assert_eq!(check(good, Match::Wildcard, false), Ok(()), "{good}");
        }
        assert!(check("a. .b", Match::Wildcard, false).is_err());
    }

    fn matches(index: &PatternIndex, uri: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        index.for_each_match(uri, |id| ids.push(id));
        ids
    }

    #[test]
    fn every_matching_entry_is_found_once() {
        let mut index = PatternIndex::default();
        index.insert("com.myapp.topic", Match::Exact, 1);
        index.insert("com.myapp", Match::Prefix, 2);
        index.insert("com.", Match::Prefix, 3);
        index.insert("com..topic", Match::Wildcard, 4);
        index.insert("com.myapp.", Match::Wildcard, 5);
        index.insert("", Match::Prefix, 6);
        assert_eq!(matches(&index, "com.myapp.topic"), vec![1, 6, 3, 2, 4, 5]);
        assert_eq!(matches(&index, "com.myapp2.topic"), vec![6, 3, 2, 4]);
        assert_eq!(matches(&index, "org.x"), vec![6]);
        index.remove("", Match::Prefix);
        index.remove("com..topic", Match::Wildcard);
        assert_eq!(matches(&index, "com.myapp2.topic"), vec![3, 2]);
        assert_eq!(index.get("com.myapp", Match::Prefix), Some(2));
        assert_eq!(index.get("com.myapp", Match::Exact), None);
        assert_eq!(index.get("com.myapp.", Match::Wildcard), Some(5));
    }

    #[test]
    fn exact_beats_longest_prefix_beats_wildcard() {
        let mut index = PatternIndex::default();
        index.insert("a..c", Match::Wildcard, 1);
        index.insert("a.b.", Match::Wildcard, 2);
        index.insert(".b.c", Match::Wildcard, 3);
        assert_eq!(index.best_match("a.b.c"), Some(2));
        index.insert("a", Match::Prefix, 4);
        index.insert("a.b", Match::Prefix, 5);
        assert_eq!(index.best_match("a.b.c"), Some(5));
        assert_eq!(index.best_match("a.x"), Some(4));
        index.insert("a.b.c", Match::Exact, 6);
        assert_eq!(index.best_match("a.b.c"), Some(6));
        assert_eq!(index.best_match("z"), None);
    }
}
