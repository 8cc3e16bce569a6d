//! The connect authorizer's frames (COMMANDS.md, "Authorizer"): the request wson sends,
//! `{len}z{fields}`, and the decision an authorizer answers with `Z` (parsed by
//! `control::command` into `Command::Authorize`).
//!
//! `AuthRequest::encode` writes a request in one pass; `AuthRequest::parse` reads one back, as
//! an authorizer does. `Decision` is the answer; the topics of an allow stay in the payload
//! (`TopicList`), validated once, iterated without allocation.

use crate::control::fields::{self, Decimal, Fields};
use crate::control::topic::Topic;
use crate::token::Token;

/// The command byte of an authorization request (wson -> authorizer).
pub const REQUEST_BYTE: u8 = b'z';

/// Lowest and highest HTTP status a deny may give.
pub const MIN_DENY_STATUS: u16 = 400;
pub const MAX_DENY_STATUS: u16 = 599;

/// The `decision` field of `Z`.
pub const ALLOW: &[u8] = b"allow";
pub const DENY: &[u8] = b"deny";

/// One upgrade waiting for the authorizer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRequest<'a> {
    /// Unique for the server's life; the answer names it.
    pub id: u64,
    /// The bound endpoint, e.g. `tcp://127.0.0.1:8099`.
    pub listener: &'a str,
    /// `IP:PORT`, or `unix`.
    pub remote: &'a str,
    /// The `Origin` header; empty when none.
    pub origin: &'a str,
    /// The request-target before `?`.
    pub path: &'a str,
    /// The request-target after `?`; empty when none.
    pub query: &'a str,
    /// Every `Cookie` header value, joined with `; `.
    pub cookie: &'a [u8],
    /// The verified `token` cookie (`auth = "cookie+authorizer"`); `None` with
    /// `auth = "authorizer"` (an empty field).
    pub token: Option<Token>,
    /// The verified `user` cookie; empty with `auth = "authorizer"`.
    pub user: &'a str,
}

impl<'a> AuthRequest<'a> {
    /// Appends the frame `{len}z{fields}` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let id = Decimal::new(self.id);
        let token: &[u8] = match &self.token {
            Some(token) => token.as_bytes(),
            None => b"",
        };
        fields::encode_fields_frame(
            REQUEST_BYTE,
            &[
                id.as_bytes(),
                self.listener.as_bytes(),
                self.remote.as_bytes(),
                self.origin.as_bytes(),
                self.path.as_bytes(),
                self.query.as_bytes(),
                self.cookie,
                token,
                self.user.as_bytes(),
            ],
            out,
        );
    }

    /// Reads the payload of a `z` frame, as an authorizer does; `None` unless it has exactly
    /// the nine fields, each valid.
    pub fn parse(payload: &'a [u8]) -> Option<AuthRequest<'a>> {
        let mut values: [&[u8]; 9] = [&[]; 9];
        let mut count = 0_usize;
        for field in Fields::new(payload) {
            *values.get_mut(count)? = field.ok()?;
            count += 1;
        }
        let [
            id,
            listener,
            remote,
            origin,
            path,
            query,
            cookie,
            token,
            user,
        ] = values;
        if count != values.len() {
            return None;
        }
        let text = |bytes: &'a [u8]| std::str::from_utf8(bytes).ok();
        Some(AuthRequest {
            id: fields::decimal_value(id)?,
            listener: text(listener)?,
            remote: text(remote)?,
            origin: text(origin)?,
            path: text(path)?,
            query: text(query)?,
            cookie,
            token: if token.is_empty() {
                None
            } else {
                Some(Token::from_slice(token)?)
            },
            user: text(user)?,
        })
    }
}

/// An authorizer's answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Admit the upgrade. `user`: the user the connection belongs to; `None` keeps the
    /// cookie's (and is a protocol error with `auth = "authorizer"`, checked by the server:
    /// `ControlError::AllowWithoutUser`). `topics`: joined at once.
    Allow {
        user: Option<&'a str>,
        topics: TopicList<'a>,
    },
    /// Refuse the upgrade with this HTTP status (400-599) and reason (the response body).
    Deny { status: u16, reason: &'a str },
}

/// The topics of an allow: the fields that follow its user field, each checked by
/// `Topic::parse` when the command was parsed. Iterating reads them again, without
/// allocating.
#[derive(Clone, Copy)]
pub struct TopicList<'a> {
    fields: &'a [u8],
}

impl<'a> TopicList<'a> {
    /// No topics.
    pub const EMPTY: TopicList<'static> = TopicList { fields: b"" };

    /// `fields`, the encoded topic fields, already known to be valid topics. Only the parser
    /// of `Z` builds one; a field that does not parse would simply end the iteration.
    pub(crate) fn from_checked_fields(fields: &'a [u8]) -> Self {
        TopicList { fields }
    }

    /// The topics, checking each (for a list not built by the parser, as in tests).
    pub fn parse(fields: &'a [u8]) -> Option<Self> {
        Fields::new(fields)
            .all(|field| field.is_ok_and(|bytes| Topic::parse(bytes).is_ok()))
            .then_some(TopicList { fields })
    }

    pub fn iter(&self) -> impl Iterator<Item = Topic<'a>> + use<'a> {
        Fields::new(self.fields)
            .map_while(Result::ok)
            .map_while(|field| Topic::parse(field).ok())
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Appends each topic as a field (the canonical encoding: no leading zeros).
    pub fn append_fields(&self, out: &mut Vec<u8>) {
        for topic in self.iter() {
            fields::append_field(out, topic.as_bytes());
        }
    }
}

/// Equal when the topics are (`01:a` and `1:a` are the same list).
impl PartialEq for TopicList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for TopicList<'_> {}

impl std::fmt::Debug for TopicList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::codec;
    use crate::decoded::Decoded;
    use proptest::prelude::*;

    const TOKEN: &[u8; 32] = b"32febad1f0cf83f38aceb31ad63866c4";

    fn request(token: Option<Token>) -> AuthRequest<'static> {
        AuthRequest {
            id: 17,
            listener: "tcp://127.0.0.1:8099",
            remote: "127.0.0.1:50000",
            origin: "https://example.com",
            path: "/ws",
            query: "room=1",
            cookie: b"PHPSESSID=abc; token=x",
            token,
            user: "alice",
        }
    }

    fn payload_of(out: &[u8]) -> &[u8] {
        let Ok(Decoded::Done { item, len }) = codec::decode(out, usize::MAX) else {
            panic!("undecodable {out:?}");
        };
        assert_eq!(len, out.len());
        assert_eq!(item.command, b'z');
        item.payload
    }

    #[test]
    fn request_round_trips_with_and_without_a_token() {
        for token in [Some(Token::from_array(*TOKEN)), None] {
            let request = request(token);
            let mut out = Vec::new();
            request.encode(&mut out);
            assert_eq!(AuthRequest::parse(payload_of(&out)), Some(request));
        }
    }

    #[test]
    fn request_without_cookies_has_empty_token_and_user() {
        let request = AuthRequest {
            id: 1,
            listener: "tcp://127.0.0.1:8099",
            remote: "127.0.0.1:50000",
            origin: "",
            path: "/ws",
            query: "",
            cookie: b"",
            token: None,
            user: "",
        };
        let mut out = Vec::new();
        request.encode(&mut out);
        assert_eq!(
            out,
            b"59z1:120:tcp://127.0.0.1:809915:127.0.0.1:500000:3:/ws0:0:0:0:"
        );
    }

    #[test]
    fn malformed_requests_are_not_parsed() {
        assert_eq!(AuthRequest::parse(b""), None);
        assert_eq!(
            AuthRequest::parse(b"1:10:0:0:0:0:0:0:"),
            None,
            "eight fields"
        );
        assert_eq!(AuthRequest::parse(b"1:10:0:0:0:0:0:0:0:0:"), None, "ten");
        assert_eq!(AuthRequest::parse(b"1:x0:0:0:0:0:0:0:0:"), None, "id");
        assert_eq!(AuthRequest::parse(b"1:10:0:0:0:0:0:3:abc0:"), None, "token");
        assert!(AuthRequest::parse(b"1:10:0:0:0:0:0:0:0:").is_some());
    }

    #[test]
    fn topic_list_iterates_and_compares_by_topic() {
        let list = TopicList::parse(b"4:news03:a.b").unwrap();
        let topics: Vec<&str> = list.iter().map(|topic| topic.as_str()).collect();
        assert_eq!(topics, ["news", "a.b"]);
        assert_eq!(list.len(), 2);
        assert_eq!(Some(list), TopicList::parse(b"4:news3:a.b"));
        assert_ne!(Some(list), TopicList::parse(b"4:news"));
        let mut out = Vec::new();
        list.append_fields(&mut out);
        assert_eq!(out, b"4:news3:a.b");
        assert!(TopicList::EMPTY.is_empty());
        assert_eq!(TopicList::parse(b"9:wamp.meta"), None);
        assert_eq!(TopicList::parse(b"1:"), None);
        assert_eq!(TopicList::parse(b"0:"), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Some(request) = AuthRequest::parse(&payload) {
                let mut out = Vec::new();
                request.encode(&mut out);
                prop_assert_eq!(AuthRequest::parse(payload_of(&out)), Some(request));
            }
        }
    }
}
