//! Event frames, wson -> a listening control connection: `{len}e{fields}` (COMMANDS.md,
//! "Events").
//!
//! `Event` is one event with borrowed fields; `Event::encode` writes its frame in one pass
//! (lengths first, then the bytes: no intermediate buffer), `Event::parse` reads one back (for
//! tests and clients). `EventKind` names the kinds and `EventKinds` is the set a listener asked
//! for with `e`; `DisconnectCause` is the `why` of a `disconnected` event.

use crate::control::fields::{self, Decimal, Fields};
use crate::token::Token;

/// The command byte of an event frame.
pub const EVENT_BYTE: u8 = b'e';

/// What an event is about; its name is the event's first field and a name in `e`'s kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Connected,
    Disconnected,
    Message,
    Subscribed,
    Unsubscribed,
    Join,
    Leave,
    Publish,
}

impl EventKind {
    /// Every kind, in the order `EventKinds` lists them.
    pub const ALL: [EventKind; 8] = [
        EventKind::Connected,
        EventKind::Disconnected,
        EventKind::Message,
        EventKind::Subscribed,
        EventKind::Unsubscribed,
        EventKind::Join,
        EventKind::Leave,
        EventKind::Publish,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Connected => "connected",
            EventKind::Disconnected => "disconnected",
            EventKind::Message => "message",
            EventKind::Subscribed => "subscribed",
            EventKind::Unsubscribed => "unsubscribed",
            EventKind::Join => "join",
            EventKind::Leave => "leave",
            EventKind::Publish => "publish",
        }
    }

    pub fn from_name(name: &[u8]) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.name().as_bytes() == name)
    }

    fn bit(self) -> u8 {
        match self {
            EventKind::Connected => 1,
            EventKind::Disconnected => 1 << 1,
            EventKind::Message => 1 << 2,
            EventKind::Subscribed => 1 << 3,
            EventKind::Unsubscribed => 1 << 4,
            EventKind::Join => 1 << 5,
            EventKind::Leave => 1 << 6,
            EventKind::Publish => 1 << 7,
        }
    }
}

/// A set of event kinds: what a listener hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventKinds(u8);

/// Why a kinds field of `e` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindsError {
    /// The name starting at `offset` in the field is not a kind (an empty name included:
    /// a leading, trailing or doubled comma).
    Unknown { offset: usize },
    /// `kind` is named twice.
    Repeated { kind: EventKind },
}

impl EventKinds {
    /// Every kind: what an empty kinds field means.
    pub const ALL: EventKinds = EventKinds(0b1111_1111);
    pub const NONE: EventKinds = EventKinds(0);

    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & kind.bit() != 0
    }

    pub fn with(self, kind: EventKind) -> EventKinds {
        EventKinds(self.0 | kind.bit())
    }

    pub fn is_all(self) -> bool {
        self == EventKinds::ALL
    }

    /// The kinds as one byte, one bit per kind (what a cluster node's heartbeat carries).
    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> EventKinds {
        EventKinds(bits)
    }

    pub fn union(self, other: EventKinds) -> EventKinds {
        EventKinds(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(move |kind| self.contains(*kind))
    }

    /// The kinds field of `e`: empty for every kind, else a comma-separated list of names,
    /// no spaces, no repeats.
    pub fn parse(field: &[u8]) -> Result<EventKinds, KindsError> {
        if field.is_empty() {
            return Ok(EventKinds::ALL);
        }
        let mut kinds = EventKinds::NONE;
        let mut offset = 0_usize;
        for name in field.split(|byte| *byte == b',') {
            let kind = EventKind::from_name(name).ok_or(KindsError::Unknown { offset })?;
            if kinds.contains(kind) {
                return Err(KindsError::Repeated { kind });
            }
            kinds = kinds.with(kind);
            offset = offset.saturating_add(name.len()).saturating_add(1);
        }
        Ok(kinds)
    }

    /// The kinds as `e` names them, in `EventKind::ALL` order; every kind is the empty field.
    pub fn encode(self, out: &mut Vec<u8>) {
        if self.is_all() {
            return;
        }
        for (index, kind) in self.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(kind.name().as_bytes());
        }
    }
}

/// The `why` of a `disconnected` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectCause {
    /// The client closed: a Close frame or the end of its stream.
    Client,
    /// The token's lifetime ended.
    Expired,
    /// Its outbound queue passed `max_outbound_buffer`.
    Slow,
    /// `k` or `K`.
    Kicked,
    /// A newer connection took its token (`[users] token_reuse = "replace"`).
    Replaced,
    /// wson is stopping.
    Shutdown,
    /// wson failed the connection: 1002, 1007 or 1009.
    Protocol,
    /// The keepalive ping went unanswered.
    Timeout,
    /// A socket error.
    Error,
}

impl DisconnectCause {
    pub const ALL: [DisconnectCause; 9] = [
        DisconnectCause::Client,
        DisconnectCause::Expired,
        DisconnectCause::Slow,
        DisconnectCause::Kicked,
        DisconnectCause::Replaced,
        DisconnectCause::Shutdown,
        DisconnectCause::Protocol,
        DisconnectCause::Timeout,
        DisconnectCause::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DisconnectCause::Client => "client",
            DisconnectCause::Expired => "expired",
            DisconnectCause::Slow => "slow",
            DisconnectCause::Kicked => "kicked",
            DisconnectCause::Replaced => "replaced",
            DisconnectCause::Shutdown => "shutdown",
            DisconnectCause::Protocol => "protocol",
            DisconnectCause::Timeout => "timeout",
            DisconnectCause::Error => "error",
        }
    }

    pub fn from_name(name: &[u8]) -> Option<DisconnectCause> {
        DisconnectCause::ALL
            .into_iter()
            .find(|cause| cause.name().as_bytes() == name)
    }
}

/// One event, its fields borrowed from wherever the server keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A connection opened (after the 101 was queued).
    Connected {
        token: Token,
        user: &'a str,
        /// The bound endpoint it came through, e.g. `tcp://127.0.0.1:8099`.
        listener: &'a str,
        /// `IP:PORT`, or `unix`.
        remote: &'a str,
        /// The `Origin` header; empty when none.
        origin: &'a str,
        /// The request-target as sent.
        path: &'a str,
        /// The subprotocol chosen; empty when none.
        subprotocol: &'a str,
    },
    /// A connection ended; `code` is 1006 when no Close was exchanged.
    Disconnected {
        token: Token,
        user: &'a str,
        code: u16,
        reason: &'a str,
        why: DisconnectCause,
    },
    /// A complete message from a client (`client_messages = "forward"`).
    Message {
        token: Token,
        user: &'a str,
        binary: bool,
        payload: &'a [u8],
    },
    /// A connection was subscribed to a topic.
    Subscribed {
        token: Token,
        user: &'a str,
        topic: &'a str,
    },
    /// A connection was unsubscribed by `r`/`R` (a disconnect sends no `unsubscribed`).
    Unsubscribed {
        token: Token,
        user: &'a str,
        topic: &'a str,
    },
    /// The user's first connection entered the topic.
    Join { user: &'a str, topic: &'a str },
    /// The user's last connection left the topic (disconnects included).
    Leave { user: &'a str, topic: &'a str },
    /// A WAMP session published to a topic of the backend realm; `user` is its authid, the
    /// payload its args and kwargs as a plain message (README, "WAMP").
    Publish {
        topic: &'a str,
        user: &'a str,
        binary: bool,
        payload: &'a [u8],
    },
}

/// Most fields an event has (`connected`: the kind and seven more).
const MAX_EVENT_FIELDS: usize = 8;

impl<'a> Event<'a> {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Connected { .. } => EventKind::Connected,
            Event::Disconnected { .. } => EventKind::Disconnected,
            Event::Message { .. } => EventKind::Message,
            Event::Subscribed { .. } => EventKind::Subscribed,
            Event::Unsubscribed { .. } => EventKind::Unsubscribed,
            Event::Join { .. } => EventKind::Join,
            Event::Leave { .. } => EventKind::Leave,
            Event::Publish { .. } => EventKind::Publish,
        }
    }

    /// Appends the frame `{len}e{fields}` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let kind = self.kind().name().as_bytes();
        let code;
        let fields: &[&[u8]] = match *self {
            Event::Connected {
                ref token,
                user,
                listener,
                remote,
                origin,
                path,
                subprotocol,
            } => &[
                kind,
                token.as_bytes(),
                user.as_bytes(),
                listener.as_bytes(),
                remote.as_bytes(),
                origin.as_bytes(),
                path.as_bytes(),
                subprotocol.as_bytes(),
            ],
            Event::Disconnected {
                ref token,
                user,
                code: close_code,
                reason,
                why,
            } => {
                code = Decimal::new(u64::from(close_code));
                &[
                    kind,
                    token.as_bytes(),
                    user.as_bytes(),
                    code.as_bytes(),
                    reason.as_bytes(),
                    why.name().as_bytes(),
                ]
            }
            Event::Message {
                ref token,
                user,
                binary,
                payload,
            } => &[
                kind,
                token.as_bytes(),
                user.as_bytes(),
                message_type(binary).as_bytes(),
                payload,
            ],
            Event::Subscribed {
                ref token,
                user,
                topic,
            }
            | Event::Unsubscribed {
                ref token,
                user,
                topic,
            } => &[kind, token.as_bytes(), user.as_bytes(), topic.as_bytes()],
            Event::Join { user, topic } | Event::Leave { user, topic } => {
                &[kind, user.as_bytes(), topic.as_bytes()]
            }
            Event::Publish {
                topic,
                user,
                binary,
                payload,
            } => &[
                kind,
                topic.as_bytes(),
                user.as_bytes(),
                message_type(binary).as_bytes(),
                payload,
            ],
        };
        fields::encode_fields_frame(EVENT_BYTE, fields, out);
    }

    /// Reads the payload of an `e` frame, as a listener does; `None` unless it is exactly one
    /// event of a known kind with valid fields.
    pub fn parse(payload: &'a [u8]) -> Option<Event<'a>> {
        let mut values: [&[u8]; MAX_EVENT_FIELDS] = [&[]; MAX_EVENT_FIELDS];
        let mut count = 0_usize;
        for field in Fields::new(payload) {
            *values.get_mut(count)? = field.ok()?;
            count += 1;
        }
        let text = |bytes: &'a [u8]| std::str::from_utf8(bytes).ok();
        let token = |bytes: &[u8]| Token::from_slice(bytes);
        let user = |bytes: &'a [u8]| text(bytes).filter(|user| !user.is_empty());
        let kind = EventKind::from_name(values.first()?)?;
        let event = match (kind, values.get(..count)?) {
            (
                EventKind::Connected,
                [
                    _,
                    token_field,
                    user_field,
                    listener,
                    remote,
                    origin,
                    path,
                    subprotocol,
                ],
            ) => Event::Connected {
                token: token(token_field)?,
                user: user(user_field)?,
                listener: text(listener)?,
                remote: text(remote)?,
                origin: text(origin)?,
                path: text(path)?,
                subprotocol: text(subprotocol)?,
            },
            (EventKind::Disconnected, [_, token_field, user_field, code, reason, why]) => {
                Event::Disconnected {
                    token: token(token_field)?,
                    user: user(user_field)?,
                    code: fields::decimal_value(code).and_then(|code| u16::try_from(code).ok())?,
                    reason: text(reason)?,
                    why: DisconnectCause::from_name(why)?,
                }
            }
            (EventKind::Message, [_, token_field, user_field, message_type, payload]) => {
                Event::Message {
                    token: token(token_field)?,
                    user: user(user_field)?,
                    binary: binary_type(message_type)?,
                    payload,
                }
            }
            (EventKind::Subscribed, [_, token_field, user_field, topic]) => Event::Subscribed {
                token: token(token_field)?,
                user: user(user_field)?,
                topic: text(topic)?,
            },
            (EventKind::Unsubscribed, [_, token_field, user_field, topic]) => Event::Unsubscribed {
                token: token(token_field)?,
                user: user(user_field)?,
                topic: text(topic)?,
            },
            (EventKind::Join, [_, user_field, topic]) => Event::Join {
                user: user(user_field)?,
                topic: text(topic)?,
            },
            (EventKind::Leave, [_, user_field, topic]) => Event::Leave {
                user: user(user_field)?,
                topic: text(topic)?,
            },
            (EventKind::Publish, [_, topic, user_field, message_type, payload]) => Event::Publish {
                topic: text(topic)?,
                user: user(user_field)?,
                binary: binary_type(message_type)?,
                payload,
            },
            _ => return None,
        };
        Some(event)
    }
}

/// The `type` field of a `message` or `publish` event.
pub fn message_type(binary: bool) -> &'static str {
    if binary { "binary" } else { "text" }
}

/// Whether a `type` field says binary; `None` for neither `text` nor `binary`.
fn binary_type(field: &[u8]) -> Option<bool> {
    match field {
        b"text" => Some(false),
        b"binary" => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::codec::{self, RawFrame};
    use crate::decoded::Decoded;
    use proptest::prelude::*;

    const TOKEN: &[u8; 32] = b"32febad1f0cf83f38aceb31ad63866c4";

    fn token() -> Token {
        Token::from_array(*TOKEN)
    }

    fn bytes(event: &Event<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        event.encode(&mut out);
        out
    }

    /// Encodes, decodes the frame, parses the event: it must come back equal.
    fn round_trip(event: &Event<'_>) {
        let out = bytes(event);
        let Ok(Decoded::Done { item, len }) = codec::decode(&out, usize::MAX) else {
            panic!("undecodable {out:?}");
        };
        assert_eq!(len, out.len());
        assert_eq!(item.command, b'e');
        let RawFrame { payload, .. } = item;
        assert_eq!(Event::parse(payload), Some(*event));
    }

    fn every_event<'a>(payload: &'a [u8]) -> Vec<Event<'a>> {
        vec![
            Event::Connected {
                token: token(),
                user: "alice",
                listener: "tcp://127.0.0.1:8099",
                remote: "127.0.0.1:50000",
                origin: "https://example.com",
                path: "/ws?room=1",
                subprotocol: "",
            },
            Event::Disconnected {
                token: token(),
                user: "alice",
                code: 1006,
                reason: "",
                why: DisconnectCause::Client,
            },
            Event::Message {
                token: token(),
                user: "alice",
                binary: true,
                payload,
            },
            Event::Subscribed {
                token: token(),
                user: "alice",
                topic: "news",
            },
            Event::Unsubscribed {
                token: token(),
                user: "alice",
                topic: "news",
            },
            Event::Join {
                user: "alice",
                topic: "news",
            },
            Event::Leave {
                user: "alice",
                topic: "news",
            },
        ]
    }

    #[test]
    fn every_event_round_trips() {
        for event in every_event(b"\x00\xff") {
            round_trip(&event);
        }
    }

    #[test]
    fn message_event_has_its_bytes() {
        let event = Event::Message {
            token: token(),
            user: "alice",
            binary: false,
            payload: b"hi",
        };
        assert_eq!(
            bytes(&event),
            b"61e7:message32:32febad1f0cf83f38aceb31ad63866c45:alice4:text2:hi"
        );
    }

    #[test]
    fn join_event_has_its_bytes() {
        let event = Event::Join {
            user: "alice",
            topic: "news.sport",
        };
        assert_eq!(bytes(&event), b"26e4:join5:alice10:news.sport");
    }

    #[test]
    fn kinds_names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name().as_bytes()), Some(kind));
        }
        assert_eq!(EventKind::from_name(b"Message"), None);
        for cause in DisconnectCause::ALL {
            assert_eq!(
                DisconnectCause::from_name(cause.name().as_bytes()),
                Some(cause)
            );
        }
        assert_eq!(DisconnectCause::from_name(b""), None);
    }

    #[test]
    fn empty_kinds_field_is_every_kind() {
        assert_eq!(EventKinds::parse(b""), Ok(EventKinds::ALL));
        let mut out = Vec::new();
        EventKinds::ALL.encode(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn kinds_list_is_a_set() {
        let kinds = EventKinds::parse(b"message,connected").unwrap();
        assert!(kinds.contains(EventKind::Message) && kinds.contains(EventKind::Connected));
        assert!(!kinds.contains(EventKind::Join));
        let mut out = Vec::new();
        kinds.encode(&mut out);
        assert_eq!(out, b"connected,message");
        let names: Vec<&[u8]> = EventKind::ALL.iter().map(|k| k.name().as_bytes()).collect();
        assert_eq!(EventKinds::parse(&names.join(&b',')), Ok(EventKinds::ALL));
    }

    #[test]
    fn unknown_or_empty_kind_name_is_unknown() {
        assert_eq!(
            EventKinds::parse(b"message,typing"),
            Err(KindsError::Unknown { offset: 8 })
        );
        assert_eq!(
            EventKinds::parse(b"join,"),
            Err(KindsError::Unknown { offset: 5 })
        );
        assert_eq!(
            EventKinds::parse(b","),
            Err(KindsError::Unknown { offset: 0 })
        );
        assert_eq!(
            EventKinds::parse(b"join, leave"),
            Err(KindsError::Unknown { offset: 5 })
        );
    }

    #[test]
    fn repeated_kind_is_repeated() {
        assert_eq!(
            EventKinds::parse(b"join,leave,join"),
            Err(KindsError::Repeated {
                kind: EventKind::Join
            })
        );
    }

    #[test]
    fn malformed_events_are_not_parsed() {
        let good = bytes(&Event::Join {
            user: "a",
            topic: "t",
        });
        let payload = &good[good.iter().position(|b| *b == b'e').unwrap() + 1..];
        assert!(Event::parse(payload).is_some());
        let mut extra = payload.to_vec();
        extra.extend_from_slice(b"0:");
        assert_eq!(Event::parse(&extra), None);
        assert_eq!(Event::parse(&payload[..payload.len() - 1]), None);
        assert_eq!(Event::parse(b"4:join0:1:t"), None, "empty user");
        assert_eq!(Event::parse(b"4:nope1:a1:t"), None);
        assert_eq!(Event::parse(b""), None);
        assert_eq!(
            Event::parse(b"12:disconnected32:32febad1f0cf83f38aceb31ad63866c41:a5:700000:6:client"),
            None,
            "code over u16"
        );
    }

    proptest! {
        #[test]
        fn kinds_encode_then_parse_round_trips(bits in 0_u8..128) {
            let kinds = EventKinds(bits);
            let mut out = Vec::new();
            kinds.encode(&mut out);
            let parsed = EventKinds::parse(&out);
            if bits == 0 {
                // No kind at all cannot be asked for: the empty field means every kind.
                prop_assert_eq!(parsed, Ok(EventKinds::ALL));
            } else {
                prop_assert_eq!(parsed, Ok(kinds));
            }
        }

        #[test]
        fn events_round_trip(
            user in "\\PC{1,20}",
            text in "\\PC{0,40}",
            payload in proptest::collection::vec(any::<u8>(), 0..100),
            code in any::<u16>(),
            which in 0_usize..9,
        ) {
            let event = Event::Disconnected {
                token: token(),
                user: &user,
                code,
                reason: &text,
                why: DisconnectCause::ALL[which],
            };
            round_trip(&event);
            let event = Event::Connected {
                token: token(),
                user: &user,
                listener: &text,
                remote: &text,
                origin: "",
                path: &text,
                subprotocol: &text,
            };
            round_trip(&event);
            for event in every_event(&payload) {
                round_trip(&event);
            }
        }

        #[test]
        fn parse_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Some(event) = Event::parse(&payload) {
                let out = bytes(&event);
                let at = out.iter().position(|b| *b == b'e').unwrap();
                prop_assert_eq!(Event::parse(&out[at + 1..]), Some(event));
            }
        }
    }
}
