//! The per-session CURIE table of WAMP v1: what PREFIX messages define, and how a topic or
//! procedure given as a CURIE becomes a full URI.
//!
//! WAMP v1, "PREFIX Message": "URIs MAY be abbreviated using the CURIE (Compact URI
//! Expression) syntax. For example, the (full) URI: http://example.com/simple/calc#square
//! may be abbreviated as calc:square when it was previously agreed that the prefix calc is
//! meant to stand for http://example.com/simple/calc#. To establish such agreement, a client
//! sends a PREFIX message [ TYPE_ID_PREFIX , prefix , URI ] to the server." And: "The
//! agreement is per-connection, and has a lifetime starting with the server receiving a
//! PREFIX message establishing a prefix-to-URI mapping, and ending with the WebSocket
//! connection." So the table belongs to one session and is dropped with it.
//!
//! The spec's "URIs and CURIEs" section was never written ("Write me."), so the rule here
//! follows autobahn's v1 `PrefixMap.resolve`: the prefix is the text before the first colon,
//! and a defined prefix is replaced by its URI ("calc:square" -> URI + "square"). Where
//! autobahn passes a CURIE with an undefined prefix through verbatim (`resolveOrPass`),
//! this table refuses it: "foo:bar" without a PREFIX for "foo" is a client mistake, and
//! passing it on would make "foo:bar" a topic of its own.
//!
//! A peer fills the table, so it is bounded: at most `max_prefixes` prefixes, each prefix
//! and each URI at most `max_len` bytes. An expansion is thus at most `max_len` bytes longer
//! than the CURIE it came from.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// How much of a peer's prefix an error's `Display` shows.
const MAX_SHOWN_CHARS: usize = 64;

/// One session's prefix -> URI agreements, bounded in count and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefixes {
    uris: HashMap<String, String>,
    max_prefixes: usize,
    max_len: usize,
}

/// Why a PREFIX cannot be defined, or a CURIE cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurieError {
    /// `resolve`: a CURIE whose prefix no PREFIX message defined.
    UndefinedPrefix { prefix: String },
    /// `define`: an empty prefix. A CURIE ":rest" has none (autobahn resolves only when the
    /// colon is past the first character), so it could never be used.
    EmptyPrefix,
    /// `define`: a prefix with a colon. The prefix of a CURIE ends at its first colon, so
    /// this one could never be used.
    PrefixHasColon { prefix: String },
    /// `define`: an empty URI, which would make "prefix:rest" mean "rest".
    EmptyUri { prefix: String },
    /// `define`: the prefix or the URI (`what`) is longer than the table allows.
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// `define`: a new prefix while the table already holds `max` of them.
    TooManyPrefixes { max: usize },
}

impl fmt::Display for CurieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurieError::UndefinedPrefix { prefix } => {
                write!(f, "CURIE prefix \"{}\" is not defined", Shown(prefix))
            }
            CurieError::EmptyPrefix => f.write_str("PREFIX with an empty prefix"),
            CurieError::PrefixHasColon { prefix } => {
                write!(f, "PREFIX prefix \"{}\" contains ':'", Shown(prefix))
            }
            CurieError::EmptyUri { prefix } => {
                write!(f, "PREFIX \"{}\" with an empty URI", Shown(prefix))
            }
            CurieError::TooLong { what, len, max } => {
                write!(f, "PREFIX {what} of {len} bytes, more than {max}")
            }
            CurieError::TooManyPrefixes { max } => {
                write!(f, "more than {max} PREFIX definitions")
            }
        }
    }
}

impl std::error::Error for CurieError {}

/// A peer's text in an error: escaped (one printable line) and cut to `MAX_SHOWN_CHARS`.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars().take(MAX_SHOWN_CHARS) {
            write!(f, "{}", c.escape_debug())?;
        }
        if self.0.chars().nth(MAX_SHOWN_CHARS).is_some() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl Prefixes {
    /// An empty table that will hold at most `max_prefixes` prefixes, each prefix and URI
    /// at most `max_len` bytes.
    pub fn new(max_prefixes: usize, max_len: usize) -> Prefixes {
        Prefixes {
            uris: HashMap::new(),
            max_prefixes,
            max_len,
        }
    }

    /// Applies a PREFIX message: `prefix` now stands for `uri`. A prefix defined again takes
    /// the new URI (the agreement is the latest one) and does not count twice. On error the
    /// table is unchanged.
    pub fn define(&mut self, prefix: &str, uri: &str) -> Result<(), CurieError> {
        if prefix.is_empty() {
            return Err(CurieError::EmptyPrefix);
        }
        if prefix.len() > self.max_len {
            return Err(CurieError::TooLong {
                what: "prefix",
                len: prefix.len(),
                max: self.max_len,
            });
        }
        if prefix.contains(':') {
            return Err(CurieError::PrefixHasColon {
                prefix: prefix.to_owned(),
            });
        }
        if uri.is_empty() {
            return Err(CurieError::EmptyUri {
                prefix: prefix.to_owned(),
            });
        }
        if uri.len() > self.max_len {
            return Err(CurieError::TooLong {
                what: "URI",
                len: uri.len(),
                max: self.max_len,
            });
        }
        let count = self.uris.len();
        match self.uris.get_mut(prefix) {
            Some(slot) => uri.clone_into(slot),
            None if count >= self.max_prefixes => {
                return Err(CurieError::TooManyPrefixes {
                    max: self.max_prefixes,
                });
            }
            None => {
                self.uris.insert(prefix.to_owned(), uri.to_owned());
            }
        }
        Ok(())
    }

    /// The URI `prefix` stands for, if defined.
    pub fn get(&self, prefix: &str) -> Option<&str> {
        self.uris.get(prefix).map(String::as_str)
    }

    /// How many prefixes are defined.
    pub fn len(&self) -> usize {
        self.uris.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uris.is_empty()
    }

    /// The full URI of a topic, procedure or error given as a URI or a CURIE:
    ///
    /// - no colon at all ("com.myapp.topic"): not a CURIE, returned as is;
    /// - the first colon followed by "//" ("http://example.com/simple"): a full URI, as
    ///   is, whatever prefixes are defined (a PREFIX for "http" does not rewrite URIs);
    /// - otherwise "prefix:rest", split at the first colon: the prefix's URI followed by
    ///   `rest` ("calc:square" -> "http://example.com/simple/calc#square"), or
    ///   `UndefinedPrefix` when no PREFIX defined it (":rest" included).
    ///
    /// Borrowed when returned as is, owned when expanded.
    pub fn resolve<'a>(&self, uri_or_curie: &'a str) -> Result<Cow<'a, str>, CurieError> {
        let Some((prefix, rest)) = uri_or_curie.split_once(':') else {
            return Ok(Cow::Borrowed(uri_or_curie));
        };
        if rest.starts_with("//") {
            return Ok(Cow::Borrowed(uri_or_curie));
        }
        match self.uris.get(prefix) {
            Some(uri) => {
                let mut full = String::with_capacity(uri.len().saturating_add(rest.len()));
                full.push_str(uri);
                full.push_str(rest);
                Ok(Cow::Owned(full))
            }
            None => Err(CurieError::UndefinedPrefix {
                prefix: prefix.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn spec_table() -> Prefixes {
        let mut table = Prefixes::new(4, 64);
        // The spec's two PREFIX examples.
        table
            .define("calc", "http://example.com/simple/calc#")
            .unwrap();
        table
            .define("keyvalue", "http://example.com/simple/keyvalue#")
            .unwrap();
        table
    }

    #[test]
    fn spec_curie_expands_to_the_full_uri() {
        let table = spec_table();
        let resolved = table.resolve("calc:square").unwrap();
        assert_eq!(resolved, "http://example.com/simple/calc#square");
        assert!(matches!(resolved, Cow::Owned(_)));
        assert_eq!(
            table.resolve("keyvalue:set").unwrap(),
            "http://example.com/simple/keyvalue#set"
        );
        // Everything after the first colon is the reference, colons included.
        assert_eq!(
            table.resolve("calc:a:b://c").unwrap(),
            "http://example.com/simple/calc#a:b://c"
        );
        assert_eq!(
            table.resolve("calc:").unwrap(),
            "http://example.com/simple/calc#"
        );
    }

    #[test]
    fn full_uris_and_colonless_names_are_untouched() {
        let mut table = spec_table();
        // Even with a prefix named like the scheme: "://" marks a full URI.
        table.define("http", "urn:wrong:").unwrap();
        for text in [
            "http://example.com/simple",
            "https://example.com/api#howdy",
            "ws://x",
            "com.myapp.topic",
            "",
            "calc",
        ] {
            let resolved = table.resolve(text).unwrap();
            assert_eq!(resolved, text);
            assert!(matches!(resolved, Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn undefined_prefix_is_an_error() {
        let table = spec_table();
        for (text, prefix) in [
            ("event:myevent1", "event"),
            (":rest", ""),
            ("urn:isbn:123", "urn"),
            ("http:/one-slash", "http"),
            ("CALC:square", "CALC"),
        ] {
            assert_eq!(
                table.resolve(text),
                Err(CurieError::UndefinedPrefix {
                    prefix: prefix.to_owned()
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn prefix_redefinition_takes_the_new_uri_and_counts_once() {
        let mut table = Prefixes::new(2, 64);
        table.define("api", "http://example.com/api#").unwrap();
        table.define("api", "http://example.com/v2/api#").unwrap();
        assert_eq!(table.len(), 1);
        assert_eq!(
            table.resolve("api:add2").unwrap(),
            "http://example.com/v2/api#add2"
        );
        table.define("event", "http://example.com/event#").unwrap();
        assert_eq!(table.len(), 2);
        // Full: a redefinition still works, a new prefix does not.
        table.define("event", "http://example.com/ev#").unwrap();
        assert_eq!(
            table.define("more", "http://example.com/more#"),
            Err(CurieError::TooManyPrefixes { max: 2 })
        );
        assert_eq!(table.get("more"), None);
        assert_eq!(table.get("event"), Some("http://example.com/ev#"));
    }

    #[test]
    fn lengths_are_bounded_in_bytes() {
        let mut table = Prefixes::new(8, 8);
        table.define("p2345678", "u2345678").unwrap();
        assert_eq!(
            table.define("p23456789", "u"),
            Err(CurieError::TooLong {
                what: "prefix",
                len: 9,
                max: 8
            })
        );
        assert_eq!(
            table.define("p", "u23456789"),
            Err(CurieError::TooLong {
                what: "URI",
                len: 9,
                max: 8
            })
        );
        // Bytes, not characters: "é" is two.
        assert!(matches!(
            table.define("p", "éééé_"),
            Err(CurieError::TooLong { len: 9, .. })
        ));
        assert_eq!(table.len(), 1);
        let mut none = Prefixes::new(0, 8);
        assert_eq!(
            none.define("p", "u"),
            Err(CurieError::TooManyPrefixes { max: 0 })
        );
        assert!(none.is_empty());
    }

    #[test]
    fn unusable_definitions_are_refused() {
        let mut table = Prefixes::new(8, 64);
        assert_eq!(table.define("", "http://x/"), Err(CurieError::EmptyPrefix));
        assert_eq!(
            table.define("a:b", "http://x/"),
            Err(CurieError::PrefixHasColon {
                prefix: "a:b".to_owned()
            })
        );
        assert_eq!(
            table.define("a", ""),
            Err(CurieError::EmptyUri {
                prefix: "a".to_owned()
            })
        );
        assert!(table.is_empty());
    }

    #[test]
    fn errors_show_a_peer_prefix_escaped_and_short() {
        let long = format!("a\nb\u{7}{}", "x".repeat(200));
        let error = CurieError::UndefinedPrefix {
            prefix: long.clone(),
        };
        let text = error.to_string();
        assert!(!text.chars().any(char::is_control), "{text}");
        assert!(
            text.contains("a\\nb\\u{7}") && text.contains("..."),
            "{text}"
        );
        assert!(text.len() < 120, "{text}");
        for error in [
            CurieError::EmptyPrefix,
            CurieError::PrefixHasColon {
                prefix: long.clone(),
            },
            CurieError::EmptyUri { prefix: long },
            CurieError::TooLong {
                what: "URI",
                len: 9,
                max: 8,
            },
            CurieError::TooManyPrefixes { max: 2 },
        ] {
            let text = error.to_string();
            assert!(!text.is_empty() && !text.chars().any(char::is_control));
        }
    }
}
