//! Topic names, shared by the control commands and (in a later issue) the WAMP router, so a
//! control publish and a WAMP subscription meet on the same names.
//!
//! A topic is a WAMP v2 URI in the loose form (WAMP v2, "URIs": `^([^\s\.#]+\.)*([^\s\.#]+)$`):
//! one or more components separated by `.`, each non-empty and free of whitespace, `.` and `#`;
//! UTF-8; at most `MAX_TOPIC_LEN` bytes. Topics starting with `wamp.` are reserved for the
//! router's meta API: `Topic::parse` refuses them, `check_uri` (the syntax alone) does not.

use std::fmt;

/// Longest topic the codec accepts, in bytes; the server may apply a smaller configured
/// `[topics] max_name_length` with `Topic::check_max_len`.
pub const MAX_TOPIC_LEN: usize = 255;

/// Topics starting with this belong to the WAMP router's meta API.
pub const RESERVED_PREFIX: &str = "wamp.";

/// A topic that passed every rule of the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic<'a>(&'a str);

/// Why bytes are not a topic. Offsets are byte offsets in the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// No bytes at all.
    Empty,
    /// More than `max` bytes (`MAX_TOPIC_LEN`, or the configured limit).
    TooLong { len: usize, max: usize },
    /// Not UTF-8 from `offset` on.
    NotUtf8 { offset: usize },
    /// A component is empty: the topic starts or ends with `.`, or has `..` (at `offset`).
    EmptyComponent { offset: usize },
    /// Whitespace at `offset`.
    Whitespace { offset: usize },
    /// `#` at `offset`.
    Hash { offset: usize },
    /// Starts with `wamp.`.
    Reserved,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TopicError::Empty => f.write_str("is empty"),
            TopicError::TooLong { len, max } => {
                write!(f, "is {len} bytes long, over the limit of {max}")
            }
            TopicError::NotUtf8 { offset } => write!(f, "is not UTF-8 (at byte {offset})"),
            TopicError::EmptyComponent { offset } => {
                write!(f, "has an empty component (at byte {offset})")
            }
            TopicError::Whitespace { offset } => write!(f, "has whitespace at byte {offset}"),
            TopicError::Hash { offset } => write!(f, "has '#' at byte {offset}"),
            TopicError::Reserved => write!(f, "starts with the reserved {RESERVED_PREFIX:?}"),
        }
    }
}

impl std::error::Error for TopicError {}

impl<'a> Topic<'a> {
    /// The topic these bytes name, checked against every rule (the reserved prefix included).
    pub fn parse(bytes: &'a [u8]) -> Result<Topic<'a>, TopicError> {
        check_len(bytes.len(), MAX_TOPIC_LEN)?;
        let text = std::str::from_utf8(bytes).map_err(|error| TopicError::NotUtf8 {
            offset: error.valid_up_to(),
        })?;
        check_uri(text)?;
        if is_reserved(text) {
            return Err(TopicError::Reserved);
        }
        Ok(Topic(text))
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0.as_bytes()
    }

    /// Checks the configured `[topics] max_name_length`, at most `MAX_TOPIC_LEN`.
    pub fn check_max_len(&self, max: usize) -> Result<(), TopicError> {
        check_len(self.0.len(), max)
    }
}

impl fmt::Display for Topic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

fn check_len(len: usize, max: usize) -> Result<(), TopicError> {
    if len == 0 {
        return Err(TopicError::Empty);
    }
    if len > max {
        return Err(TopicError::TooLong { len, max });
    }
    Ok(())
}

/// The loose WAMP URI rule and `MAX_TOPIC_LEN`, without the reserved prefix (the router's own
/// meta topics pass).
pub fn check_uri(uri: &str) -> Result<(), TopicError> {
    check_len(uri.len(), MAX_TOPIC_LEN)?;
    let mut component_len = 0_usize;
    for (offset, c) in uri.char_indices() {
        match c {
            // WAMP v2, "URIs": components are separated by "." and may not be empty.
            '.' if component_len == 0 => return Err(TopicError::EmptyComponent { offset }),
            '.' => component_len = 0,
            '#' => return Err(TopicError::Hash { offset }),
            c if is_uri_whitespace(c) => return Err(TopicError::Whitespace { offset }),
            _ => component_len += 1,
        }
    }
    if component_len == 0 {
        // A trailing dot: the empty last component starts at the end.
        return Err(TopicError::EmptyComponent { offset: uri.len() });
    }
    Ok(())
}

/// True for a topic of the WAMP router's meta API.
pub fn is_reserved(uri: &str) -> bool {
    uri.starts_with(RESERVED_PREFIX)
}

/// `\s` of the WAMP regex. Regex flavours disagree on it, so this is the union of the two
/// that WAMP routers use: Unicode White_Space (Rust's `char::is_whitespace`), plus
/// U+001C-U+001F (Python's `str.isspace`, Crossbar) and U+FEFF (JavaScript's `\s`, Autobahn|JS).
/// A name one of them would refuse is refused here.
pub(crate) fn is_uri_whitespace(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<&str, TopicError> {
        Topic::parse(text.as_bytes()).map(|topic| topic.as_str())
    }

    #[test]
    fn dotted_names_are_topics() {
        for topic in [
            "news",
            "news.sport",
            "com.myapp.user.42.inbox",
            "a.b.c",
            "ünïcode.名前",
            "x-y_z:1/2",
            "wamp",
            "wampx.a",
            "WAMP.session.on_join",
        ] {
            assert_eq!(parse(topic), Ok(topic));
        }
    }

    #[test]
    fn empty_topic_is_empty() {
        assert_eq!(parse(""), Err(TopicError::Empty));
    }

    #[test]
    fn topic_of_256_bytes_is_too_long() {
        let longest = "a".repeat(MAX_TOPIC_LEN);
        assert_eq!(parse(&longest), Ok(longest.as_str()));
        assert_eq!(
            parse(&"a".repeat(MAX_TOPIC_LEN + 1)),
            Err(TopicError::TooLong { len: 256, max: 255 })
        );
    }

    #[test]
    fn configured_limit_is_checked_separately() {
        let topic = Topic::parse(b"news.sport").unwrap();
        assert_eq!(topic.check_max_len(10), Ok(()));
        assert_eq!(
            topic.check_max_len(9),
            Err(TopicError::TooLong { len: 10, max: 9 })
        );
    }

    #[test]
    fn invalid_utf8_is_not_utf8() {
        assert_eq!(
            Topic::parse(b"news.\xff"),
            Err(TopicError::NotUtf8 { offset: 5 })
        );
    }

    #[test]
    fn empty_components_are_refused() {
        assert_eq!(parse(".a"), Err(TopicError::EmptyComponent { offset: 0 }));
        assert_eq!(parse("a..b"), Err(TopicError::EmptyComponent { offset: 2 }));
        assert_eq!(parse("a."), Err(TopicError::EmptyComponent { offset: 2 }));
        assert_eq!(parse("."), Err(TopicError::EmptyComponent { offset: 0 }));
    }

    #[test]
    fn whitespace_of_any_flavour_is_refused() {
        for (topic, offset) in [
            ("a b", 1),
            ("a\tb", 1),
            ("a\n", 1),
            ("x.\u{a0}", 2),
            ("\u{3000}", 0),
            ("a\u{1f}", 1),
            ("\u{feff}a", 0),
            ("a.b\u{2028}", 3),
        ] {
            assert_eq!(
                parse(topic),
                Err(TopicError::Whitespace { offset }),
                "{topic:?}"
            );
        }
    }

    #[test]
    fn hash_is_refused() {
        assert_eq!(parse("a.#"), Err(TopicError::Hash { offset: 2 }));
        assert_eq!(parse("#"), Err(TopicError::Hash { offset: 0 }));
    }

    #[test]
    fn wamp_prefix_is_reserved_for_the_router() {
        assert_eq!(parse("wamp.session.on_join"), Err(TopicError::Reserved));
        assert_eq!(check_uri("wamp.session.on_join"), Ok(()));
        assert!(is_reserved("wamp.x"));
        assert!(!is_reserved("wamp"));
    }

    #[test]
    fn errors_read_as_one_line() {
        let errors = [
            TopicError::Empty,
            TopicError::TooLong { len: 300, max: 255 },
            TopicError::NotUtf8 { offset: 1 },
            TopicError::EmptyComponent { offset: 2 },
            TopicError::Whitespace { offset: 3 },
            TopicError::Hash { offset: 4 },
            TopicError::Reserved,
        ];
        for error in errors {
            let text = error.to_string();
            assert!(
                text.chars().all(|c| c == ' ' || c.is_ascii_graphic()),
                "{text:?}"
            );
        }
    }

    /// The rule as the WAMP spec writes it, over Python's and JavaScript's `\s` together.
    fn model(text: &str) -> bool {
        !text.is_empty()
            && text.len() <= MAX_TOPIC_LEN
            && text.split('.').all(|component| {
                !component.is_empty()
                    && !component.chars().any(|c| c == '#' || is_uri_whitespace(c))
            })
    }

    proptest! {
        #[test]
        fn check_uri_matches_the_regex_model(text in "[a-c.# \u{a0}\u{1c}\u{feff}é]{0,12}") {
            prop_assert_eq!(check_uri(&text).is_ok(), model(&text));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(topic) = Topic::parse(&bytes) {
                prop_assert_eq!(topic.as_bytes(), &bytes[..]);
                prop_assert!(model(topic.as_str()) && !is_reserved(topic.as_str()));
            }
        }
    }
}
