//! What one wson node publishes to the others over Redis, sans IO.
//!
//! A message is a version byte, a kind byte, then fields in the control protocol's
//! `{len}:{bytes}` encoding (COMMANDS.md, "Fields"), so the parser under it is the fuzzed
//! `control::fields::Fields`. Publications travel as the WebSocket frames the publishing node
//! already built for its own clients: a receiving node checks that they are whole, unmasked
//! data frames and queues the same bytes to its clients, so a publication is encoded once,
//! on its first node, whatever the number of nodes.

use std::fmt;

use crate::control::authorizer::{AuthRequest, Decision};
use crate::control::command::Command;
use crate::control::fields::{self, FieldError, Fields};
use crate::control::subscribe::JoinOptions;
use crate::control::topic::Topic;
use crate::decoded::Decoded;
use crate::token::Token;
use crate::ws::frame::{self, OpCode};

/// The first byte of every message: a node refuses another version's messages instead of
/// misreading them.
pub const VERSION: u8 = b'1';

const BROADCAST: u8 = b'b';
const PUBLISH: u8 = b'x';
const DIRECT: u8 = b'd';
const TO_USER: u8 = b'u';
const HEARTBEAT: u8 = b'h';
const EVENTS: u8 = b'e';
const ASK: u8 = b'q';
const ANSWER: u8 = b'a';
const WAMP: u8 = b'w';
const REGISTRATIONS: u8 = b'r';
const BATCH: u8 = b'm';
const KEPT: u8 = b'k';

/// `present` of a registration entry.
const PRESENT: &[u8] = b"1";
const ABSENT: &[u8] = b"0";
/// `RegistrationSync` as sent.
const CHANGES: &[u8] = b"0";
const ALL: &[u8] = b"1";
const ALL_AND_ASK: &[u8] = b"2";
const AUTHORIZERS: u8 = b'A';
const AUTHORIZE: u8 = b'z';
const AUTHORIZED: u8 = b'Z';

/// One message between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMessage<'a> {
    /// `messages` whole WebSocket frames for every plain client (control `b`, `B`).
    Broadcast {
        origin: &'a str,
        messages: u64,
        frames: &'a [u8],
    },
    /// The same for the plain clients subscribed to `topic` (control `x`, `X`), and the
    /// backend realm's WAMP subscribers of each node.
    Publish {
        origin: &'a str,
        topic: &'a str,
        messages: u64,
        frames: &'a [u8],
        /// The WAMP PUBLISH options of `x` (a JSON object, one message only), empty for
        /// none: a field of its own only when given, so the common form stays four fields.
        options: &'a [u8],
    },
    /// One publication to a topic that keeps a history, positioned by Redis: the history
    /// script (`cluster::kept`) builds it from `kept_parts` and publishes it to every node,
    /// the publishing one included, in the order Redis gave the positions. `frame` is one
    /// whole data message; `options` as in `Publish`.
    Kept {
        origin: &'a str,
        topic: &'a str,
        epoch: &'a str,
        offset: u64,
        frame: &'a [u8],
        options: &'a [u8],
    },
    /// One message for the connections holding `token` (control `d`, `D`).
    Direct {
        origin: &'a str,
        token: Token,
        binary: bool,
        message: &'a [u8],
    },
    /// One message for the connections of `user` (control `u`, `U`).
    ToUser {
        origin: &'a str,
        user: &'a str,
        binary: bool,
        message: &'a [u8],
    },
    /// The sender is alive (the others count it among the nodes that answer), its event
    /// listeners hear `listening` (one bit per kind, as `EventKinds::bits`), and `groups`
    /// (the control fields encoding, one group name each) have members there.
    Heartbeat {
        origin: &'a str,
        listening: u8,
        groups: &'a [u8],
    },
    /// Events the sender emitted, as the `e` frames its own listeners get, back to back.
    Events { origin: &'a str, frames: &'a [u8] },
    /// A question every node answers (to `origin`'s channel) for its own clients.
    Ask {
        origin: &'a str,
        id: u64,
        question: Question<'a>,
    },
    /// A node's answer to question `id`: `count`, for its own clients, and for a status
    /// question its status (`origin`: the answering node).
    Answer {
        origin: &'a str,
        id: u64,
        count: u64,
        body: &'a [u8],
    },
    /// WAMP messages between the routers of two nodes (to every node for a publication, to
    /// one for a call and its answers), consecutive ones of a loop turn together:
    /// `messages` is two fields each, the realm and the message serialized as WAMP's
    /// MessagePack (the receiving node decodes it with the client codec, under the same
    /// depth bound).
    Wamp { origin: &'a str, messages: &'a [u8] },
    /// Several messages of one loop turn for the same destination, in order, as one Redis
    /// message: each a whole encoded message of the same origin, none a batch itself.
    Batch { origin: &'a str, messages: &'a [u8] },
    /// The procedures the sender's sessions registered (see `RegistrationSync`).
    /// `entries`: five fields per registration, realm, URI, match policy, invoke policy, and
    /// `1` (present) or `0` (gone).
    Registrations {
        origin: &'a str,
        sync: RegistrationSync,
        entries: &'a [u8],
    },
    /// The sender has `count` connect authorizers (sent with its heartbeats while it has
    /// any, and once when it has none any more).
    Authorizers { origin: &'a str, count: u64 },
    /// An upgrade of the sender's for an authorizer of the receiver's: the request as the
    /// sender would give its own authorizer, `request.id` being the sender's.
    Authorize {
        origin: &'a str,
        request: AuthRequest<'a>,
    },
    /// The answer to `Authorize` `id`: the authorizer's decision, or `None` when the
    /// receiver had no authorizer for it (any more) or it did not answer in time.
    Authorized {
        origin: &'a str,
        id: u64,
        decision: Option<Decision<'a>>,
    },
}

/// What a `Registrations` message lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationSync {
    /// The registrations that changed.
    Changes,
    /// Every one: the others drop what the sender registered before and is not listed.
    All,
    /// Every one, and the others answer with theirs: the sender (re)joined the channel and
    /// may have missed what they said meanwhile.
    AllAndAsk,
}

/// The messages of a `Batch`, decoded; `None` unless every byte belongs to a whole message
/// of `origin` that is no batch.
pub fn batch_in<'a>(origin: &str, messages: &'a [u8]) -> Option<Vec<ClusterMessage<'a>>> {
    Fields::new(messages)
        .map(|field| {
            let message = ClusterMessage::decode(field.ok()?).ok()?;
            let single = !matches!(message, ClusterMessage::Batch { .. });
            (single && message.origin() == origin).then_some(message)
        })
        .collect()
}

/// The messages in `bytes`: the one message, or a batch's, each decoded once (what a node
/// reads off the channel).
pub fn decode_all(bytes: &[u8]) -> Result<Vec<ClusterMessage<'_>>, WireError> {
    if let [VERSION, BATCH, payload @ ..] = bytes {
        let fields: Vec<&[u8]> = Fields::new(payload)
            .collect::<Result<_, _>>()
            .map_err(WireError::Fields)?;
        let [origin, messages] = fields[..] else {
            return Err(WireError::FieldCount {
                expected: 2,
                found: fields.len(),
            });
        };
        let origin =
            std::str::from_utf8(origin).map_err(|_| WireError::NotUtf8 { field: "origin" })?;
        return batch_in(origin, messages).ok_or(WireError::BadBatch);
    }
    ClusterMessage::decode(bytes).map(|message| vec![message])
}

/// Appends one encoded message to the `messages` of a `Batch`.
pub fn append_to_batch(messages: &mut Vec<u8>, message: &[u8]) {
    fields::append_fields(messages, &[message]);
}

/// Appends one WAMP message of `realm` to the `messages` of a `Wamp` message.
pub fn append_wamp(messages: &mut Vec<u8>, realm: &str, message: &[u8]) {
    fields::append_fields(messages, &[realm.as_bytes(), message]);
}

/// The (realm, message) pairs of a `Wamp` message; `None` unless every byte belongs to a
/// whole pair with a UTF-8 realm.
pub fn wamp_messages_in(messages: &[u8]) -> Option<Vec<(&str, &[u8])>> {
    let values: Vec<&[u8]> = Fields::new(messages).collect::<Result<_, _>>().ok()?;
    values
        .chunks(2)
        .map(|pair| match *pair {
            [realm, message] => Some((std::str::from_utf8(realm).ok()?, message)),
            _ => None,
        })
        .collect()
}

/// One entry of a `Registrations` message, its names as sent (the router checks them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationEntry<'a> {
    pub realm: &'a str,
    pub uri: &'a str,
    pub policy: &'a str,
    pub invoke: &'a str,
    pub present: bool,
}

impl RegistrationEntry<'_> {
    /// Appends the entry's five fields to `out` (a `Registrations` message's `entries`).
    pub fn append_to(&self, out: &mut Vec<u8>) {
        let present = if self.present { PRESENT } else { ABSENT };
        fields::append_fields(
            out,
            &[
                self.realm.as_bytes(),
                self.uri.as_bytes(),
                self.policy.as_bytes(),
                self.invoke.as_bytes(),
                present,
            ],
        );
    }
}

/// The entries of a `Registrations` message; `None` unless every byte belongs to a whole
/// entry of UTF-8 names and a `1` or `0`.
pub fn registrations_in(entries: &[u8]) -> Option<Vec<RegistrationEntry<'_>>> {
    let values: Vec<&[u8]> = Fields::new(entries).collect::<Result<_, _>>().ok()?;
    let text = |bytes| std::str::from_utf8(bytes).ok();
    values
        .chunks(5)
        .map(|entry| match *entry {
            [realm, uri, policy, invoke, present] => Some(RegistrationEntry {
                realm: text(realm)?,
                uri: text(uri)?,
                policy: text(policy)?,
                invoke: text(invoke)?,
                present: match present {
                    PRESENT => true,
                    ABSENT => false,
                    _ => return None,
                },
            }),
            _ => None,
        })
        .collect()
}

/// What an `Ask` asks each node; every answer is a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question<'a> {
    /// Deliver to `token`'s connections (an empty message only counts them): how many.
    Direct {
        token: Token,
        binary: bool,
        message: &'a [u8],
    },
    /// Deliver to `user`'s connections: how many.
    ToUser {
        user: &'a str,
        binary: bool,
        message: &'a [u8],
    },
    /// How many connections `user` has.
    UserOnline { user: &'a str },
    /// Close `token`'s connections with `code` and `reason`: how many.
    KickToken {
        token: Token,
        code: u16,
        reason: &'a str,
    },
    /// Close `user`'s connections: how many.
    KickUser {
        user: &'a str,
        code: u16,
        reason: &'a str,
    },
    /// The node's status (`t`), as the answer's body.
    Status,
    /// The node's load (its connections) and its freest listener's domain as the body (`m`).
    Freest,
    /// Subscribe `target`'s connections to `topic` (`j`, `J`; for a user, its future
    /// connections too) with `options`: how many are subscribed; a refusal's reason as the
    /// answer's body. `get_retained` travels as the kind field `g` (`t`, what a node before
    /// it sent, is none), so each node serves its own broker's retained event.
    Subscribe {
        target: Subject<'a>,
        topic: &'a str,
        options: JoinOptions,
    },
    /// Unsubscribe (`r`, `R`): how many were.
    Unsubscribe { target: Subject<'a>, topic: &'a str },
    /// Nothing but the answer: what the asker said before has reached the node first (a
    /// REGISTERED waits until every node has heard of the registration).
    Barrier,
    /// One page of a list, after `cursor`, at most `limit` items (`g`, `y`, `h`, `v`; the
    /// user or topic as `subject`, empty for `y` and `v`): the page as the answer's body.
    Page {
        list: ListKind,
        subject: &'a str,
        cursor: &'a [u8],
        limit: u64,
    },
    /// How many connections are subscribed to `topic` (`H`), as the answer's count, and the
    /// node's users of the topic as the body (`cluster_count`), so that the asker counts
    /// each user once.
    TopicCount { topic: &'a str },
}

/// Which list a `Page` question pages through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `g`: a user's tokens.
    UserTokens,
    /// `y`: the online users.
    OnlineUsers,
    /// `h`: a topic's subscribers.
    Subscribers,
    /// `v`: the topics with subscribers.
    Topics,
}

impl ListKind {
    fn byte(self) -> &'static [u8] {
        match self {
            ListKind::UserTokens => b"g",
            ListKind::OnlineUsers => b"y",
            ListKind::Subscribers => b"h",
            ListKind::Topics => b"v",
        }
    }
}

/// Whose connections a question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    Token(Token),
    User(&'a str),
}

impl<'a> Subject<'a> {
    fn bytes(&self) -> &[u8] {
        match self {
            Subject::Token(token) => token.as_bytes(),
            Subject::User(user) => user.as_bytes(),
        }
    }
}

/// Why bytes are not a cluster message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    Empty,
    /// Another version, or not a wson message at all.
    Version {
        byte: u8,
    },
    UnknownKind {
        byte: u8,
    },
    Fields(FieldError),
    /// The kind takes `expected` fields.
    FieldCount {
        expected: usize,
        found: usize,
    },
    NotUtf8 {
        field: &'static str,
    },
    BadCount,
    /// Not a 32-byte token.
    BadToken,
    /// The text/binary flag is neither `t` nor `b`.
    BadKind,
    /// A text message that is not UTF-8.
    TextNotUtf8,
    /// An `Ask` whose question is none of `c`, `w`, `o`, `k`, `K`, `t`, `m`, `j`, `J`, `r`,
    /// `R`, `g`, `y`, `h`, `v`, `H`.
    BadQuestion,
    /// A kick's close code a server may not send.
    BadCloseCode,
    /// Not a topic name.
    BadTopic,
    /// A heartbeat's groups are not fields.
    BadGroups,
    /// The events are not whole `e` frames each holding one event.
    BadEvents,
    /// The frames are not `messages` whole, unmasked data frames.
    BadFrames,
    /// A `Kept` epoch that is not 1 to 32 bytes of lower-case hex and `-`.
    BadEpoch,
    /// The sync flag of `Registrations` is none of `0`, `1`, `2`, or its entries are not
    /// whole entries.
    BadRegistrations,
    /// The messages of `Wamp` are not whole (realm, message) pairs.
    BadWamp,
    /// The messages of `Batch` are not whole messages of its origin, or one is a batch.
    BadBatch,
    /// Not one `z` frame holding an authorization request.
    BadRequest,
    /// Not one `Z` frame answering the message's id.
    BadDecision,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Empty => f.write_str("an empty message"),
            WireError::Version { byte } => write!(
                f,
                "version byte {byte:#04x}, not {:#04x}: another wson version, or not wson",
                VERSION
            ),
            WireError::UnknownKind { byte } => write!(f, "unknown kind {byte:#04x}"),
            WireError::Fields(error) => write!(f, "malformed fields: {error}"),
            WireError::FieldCount { expected, found } => {
                write!(f, "{found} fields where {expected} belong")
            }
            WireError::NotUtf8 { field } => write!(f, "the {field} is not UTF-8"),
            WireError::BadCount => f.write_str("the message count is not a decimal number"),
            WireError::BadToken => f.write_str("the token is not 32 bytes"),
            WireError::BadKind => f.write_str("the message kind is neither t nor b"),
            WireError::TextNotUtf8 => f.write_str("a text message that is not UTF-8"),
            WireError::BadQuestion => f.write_str(
                "a question that is none of c, w, o, k, K, t, m, s, j, J, r, R, g, y, h, v, H",
            ),
            WireError::BadCloseCode => f.write_str("a close code a server may not send"),
            WireError::BadTopic => f.write_str("not a topic name"),
            WireError::BadGroups => f.write_str("the heartbeat's groups are not fields"),
            WireError::BadEvents => f.write_str("the events are not whole e frames"),
            WireError::BadFrames => {
                f.write_str("the frames are not the announced number of whole data frames")
            }
            WireError::BadRegistrations => {
                f.write_str("the registrations are not whole entries after a 0, 1 or 2")
            }
            WireError::BadWamp => {
                f.write_str("the WAMP messages are not whole realm, message pairs")
            }
            WireError::BadEpoch => f.write_str("the epoch is not 1 to 32 bytes of 0-9, a-f, '-'"),
            WireError::BadBatch => {
                f.write_str("the batch holds no whole messages of its origin, or a batch")
            }
            WireError::BadRequest => f.write_str("not one z frame holding a request"),
            WireError::BadDecision => f.write_str("not one Z frame answering this id"),
        }
    }
}

impl std::error::Error for WireError {}

impl<'a> ClusterMessage<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut count = [0_u8; 20];
        match *self {
            ClusterMessage::Broadcast {
                origin,
                messages,
                frames,
            } => {
                out.extend_from_slice(&[VERSION, BROADCAST]);
                let count = decimal(messages, &mut count);
                fields::append_fields(out, &[origin.as_bytes(), count, frames]);
            }
            ClusterMessage::Publish {
                origin,
                topic,
                messages,
                frames,
                options,
            } => {
                out.extend_from_slice(&[VERSION, PUBLISH]);
                let count = decimal(messages, &mut count);
                let fields: &[&[u8]] =
                    &[origin.as_bytes(), topic.as_bytes(), count, frames, options];
                let given = if options.is_empty() { 4 } else { 5 };
                fields::append_fields(out, fields.get(..given).unwrap_or(fields));
            }
            ClusterMessage::Kept {
                origin,
                topic,
                epoch,
                offset,
                frame,
                options,
            } => {
                let (prefix, suffix) = kept_parts(origin, topic, options);
                out.extend_from_slice(&prefix);
                let offset = decimal(offset, &mut count);
                fields::append_fields(out, &[epoch.as_bytes(), offset, frame]);
                out.extend_from_slice(&suffix);
            }
            ClusterMessage::Direct {
                origin,
                token,
                binary,
                message,
            } => {
                out.extend_from_slice(&[VERSION, DIRECT]);
                let kind = kind_flag(binary);
                fields::append_fields(out, &[origin.as_bytes(), token.as_bytes(), kind, message]);
            }
            ClusterMessage::ToUser {
                origin,
                user,
                binary,
                message,
            } => {
                out.extend_from_slice(&[VERSION, TO_USER]);
                let kind = kind_flag(binary);
                fields::append_fields(out, &[origin.as_bytes(), user.as_bytes(), kind, message]);
            }
            ClusterMessage::Heartbeat {
                origin,
                listening,
                groups,
            } => {
                out.extend_from_slice(&[VERSION, HEARTBEAT]);
                let mut digits = [0_u8; 20];
                let listening = decimal(u64::from(listening), &mut digits);
                fields::append_fields(out, &[origin.as_bytes(), listening, groups]);
            }
            ClusterMessage::Events { origin, frames } => {
                out.extend_from_slice(&[VERSION, EVENTS]);
                fields::append_fields(out, &[origin.as_bytes(), frames]);
            }
            ClusterMessage::Ask {
                origin,
                id,
                question,
            } => {
                out.extend_from_slice(&[VERSION, ASK]);
                let (mut digits, mut code_digits) = ([0_u8; 20], [0_u8; 20]);
                let id = decimal(id, &mut digits);
                let (what, subject, kind, message): (&[u8], &[u8], &[u8], &[u8]) = match &question {
                    Question::Direct {
                        token,
                        binary,
                        message,
                    } => (b"c", token.as_bytes(), kind_flag(*binary), message),
                    Question::ToUser {
                        user,
                        binary,
                        message,
                    } => (b"w", user.as_bytes(), kind_flag(*binary), message),
                    Question::UserOnline { user } => (b"o", user.as_bytes(), b"t", b""),
                    Question::KickToken {
                        token,
                        code,
                        reason,
                    } => (
                        b"k",
                        token.as_bytes(),
                        decimal(u64::from(*code), &mut code_digits),
                        reason.as_bytes(),
                    ),
                    Question::KickUser { user, code, reason } => (
                        b"K",
                        user.as_bytes(),
                        decimal(u64::from(*code), &mut code_digits),
                        reason.as_bytes(),
                    ),
                    Question::Status => (b"t", b"", b"t", b""),
                    Question::Freest => (b"m", b"", b"t", b""),
                    Question::Barrier => (b"s", b"", b"t", b""),
                    Question::Page {
                        list,
                        subject,
                        cursor,
                        limit,
                    } => (
                        list.byte(),
                        subject.as_bytes(),
                        decimal(*limit, &mut code_digits),
                        cursor,
                    ),
                    Question::Subscribe {
                        target,
                        topic,
                        options,
                    } => {
                        let what: &[u8] = match target {
                            Subject::Token(_) => b"j",
                            Subject::User(_) => b"J",
                        };
                        let kind: &[u8] = if options.get_retained { b"g" } else { b"t" };
                        (what, target.bytes(), kind, topic.as_bytes())
                    }
                    Question::Unsubscribe { target, topic } => {
                        let what: &[u8] = match target {
                            Subject::Token(_) => b"r",
                            Subject::User(_) => b"R",
                        };
                        (what, target.bytes(), b"t", topic.as_bytes())
                    }
                    Question::TopicCount { topic } => (b"H", topic.as_bytes(), b"t", b""),
                };
                fields::append_fields(out, &[origin.as_bytes(), id, what, subject, kind, message]);
            }
            ClusterMessage::Answer {
                origin,
                id,
                count,
                body,
            } => {
                out.extend_from_slice(&[VERSION, ANSWER]);
                let (mut id_digits, mut count_digits) = ([0_u8; 20], [0_u8; 20]);
                let id = decimal(id, &mut id_digits);
                let count = decimal(count, &mut count_digits);
                fields::append_fields(out, &[origin.as_bytes(), id, count, body]);
            }
            ClusterMessage::Wamp { origin, messages } => {
                out.extend_from_slice(&[VERSION, WAMP]);
                fields::append_fields(out, &[origin.as_bytes(), messages]);
            }
            ClusterMessage::Batch { origin, messages } => {
                out.extend_from_slice(&[VERSION, BATCH]);
                fields::append_fields(out, &[origin.as_bytes(), messages]);
            }
            ClusterMessage::Registrations {
                origin,
                sync,
                entries,
            } => {
                out.extend_from_slice(&[VERSION, REGISTRATIONS]);
                let sync = match sync {
                    RegistrationSync::Changes => CHANGES,
                    RegistrationSync::All => ALL,
                    RegistrationSync::AllAndAsk => ALL_AND_ASK,
                };
                fields::append_fields(out, &[origin.as_bytes(), sync, entries]);
            }
            ClusterMessage::Authorizers {
                origin,
                count: number,
            } => {
                out.extend_from_slice(&[VERSION, AUTHORIZERS]);
                let number = decimal(number, &mut count);
                fields::append_fields(out, &[origin.as_bytes(), number]);
            }
            ClusterMessage::Authorize { origin, request } => {
                out.extend_from_slice(&[VERSION, AUTHORIZE]);
                let mut frame = Vec::new();
                request.encode(&mut frame);
                fields::append_fields(out, &[origin.as_bytes(), &frame]);
            }
            ClusterMessage::Authorized {
                origin,
                id,
                decision,
            } => {
                out.extend_from_slice(&[VERSION, AUTHORIZED]);
                let mut frame = Vec::new();
                if let Some(decision) = decision {
                    Command::Authorize { id, decision }.encode(&mut frame);
                }
                let id = decimal(id, &mut count);
                fields::append_fields(out, &[origin.as_bytes(), id, &frame]);
            }
        }
    }

    /// Reads one message; the frames are checked whole.
    pub fn decode(bytes: &'a [u8]) -> Result<ClusterMessage<'a>, WireError> {
        let [version, rest @ ..] = bytes else {
            return Err(WireError::Empty);
        };
        if *version != VERSION {
            return Err(WireError::Version { byte: *version });
        }
        let [kind, payload @ ..] = rest else {
            return Err(WireError::UnknownKind { byte: 0 });
        };
        let mut values: [&[u8]; 6] = [&[]; 6];
        let mut found = 0_usize;
        for field in Fields::new(payload) {
            let field = field.map_err(WireError::Fields)?;
            if let Some(slot) = values.get_mut(found) {
                *slot = field;
            }
            found += 1;
        }
        let expect = |expected: usize| {
            if found == expected {
                Ok(())
            } else {
                Err(WireError::FieldCount { expected, found })
            }
        };
        let text = |bytes: &'a [u8], field: &'static str| {
            std::str::from_utf8(bytes).map_err(|_| WireError::NotUtf8 { field })
        };
        match *kind {
            BROADCAST => {
                expect(3)?;
                let [origin, count, frames, ..] = values;
                let messages = count_of(count)?;
                check_frames(frames, messages)?;
                Ok(ClusterMessage::Broadcast {
                    origin: text(origin, "origin")?,
                    messages,
                    frames,
                })
            }
            PUBLISH => {
                if found != 5 {
                    expect(4)?;
                }
                let [origin, topic, count, frames, options, ..] = values;
                let messages = count_of(count)?;
                check_frames(frames, messages)?;
                // Options belong to one message, and are never given empty.
                if found == 5 && (messages != 1 || options.is_empty()) {
                    return Err(WireError::FieldCount { expected: 4, found });
                }
                Ok(ClusterMessage::Publish {
                    origin: text(origin, "origin")?,
                    topic: text(topic, "topic")?,
                    messages,
                    frames,
                    options: text(options, "options")?.as_bytes(),
                })
            }
            KEPT => {
                if found != 6 {
                    expect(5)?;
                }
                let [origin, topic, epoch, offset, frame, options] = values;
                check_frames(frame, 1)?;
                if found == 6 && options.is_empty() {
                    return Err(WireError::FieldCount { expected: 5, found });
                }
                let epoch = text(epoch, "epoch")?;
                if !is_epoch(epoch) {
                    return Err(WireError::BadEpoch);
                }
                Ok(ClusterMessage::Kept {
                    origin: text(origin, "origin")?,
                    topic: text(topic, "topic")?,
                    epoch,
                    offset: count_of(offset)?,
                    frame,
                    options: text(options, "options")?.as_bytes(),
                })
            }
            DIRECT => {
                expect(4)?;
                let [origin, token, kind, message, ..] = values;
                let token = Token::from_slice(token).ok_or(WireError::BadToken)?;
                let binary = message_kind(kind, message)?;
                Ok(ClusterMessage::Direct {
                    origin: text(origin, "origin")?,
                    token,
                    binary,
                    message,
                })
            }
            TO_USER => {
                expect(4)?;
                let [origin, user, kind, message, ..] = values;
                let binary = message_kind(kind, message)?;
                Ok(ClusterMessage::ToUser {
                    origin: text(origin, "origin")?,
                    user: text(user, "user")?,
                    binary,
                    message,
                })
            }
            HEARTBEAT => {
                expect(3)?;
                let [origin, listening, groups, ..] = values;
                let listening = count_of(listening)
                    .ok()
                    .and_then(|bits| u8::try_from(bits).ok())
                    .ok_or(WireError::BadCount)?;
                if Fields::new(groups).any(|group| group.is_err()) {
                    return Err(WireError::BadGroups);
                }
                Ok(ClusterMessage::Heartbeat {
                    origin: text(origin, "origin")?,
                    listening,
                    groups,
                })
            }
            EVENTS => {
                expect(2)?;
                let [origin, frames, ..] = values;
                if !events_are_whole(frames) {
                    return Err(WireError::BadEvents);
                }
                Ok(ClusterMessage::Events {
                    origin: text(origin, "origin")?,
                    frames,
                })
            }
            ASK => {
                expect(6)?;
                let [origin, id, what, subject, kind, message] = values;
                let question = match what {
                    b"c" => Question::Direct {
                        token: Token::from_slice(subject).ok_or(WireError::BadToken)?,
                        binary: message_kind(kind, message)?,
                        message,
                    },
                    b"w" => Question::ToUser {
                        user: text(subject, "user")?,
                        binary: message_kind(kind, message)?,
                        message,
                    },
                    b"o" => Question::UserOnline {
                        user: text(subject, "user")?,
                    },
                    b"k" => Question::KickToken {
                        token: Token::from_slice(subject).ok_or(WireError::BadToken)?,
                        code: close_code(kind)?,
                        reason: text(message, "reason")?,
                    },
                    b"K" => Question::KickUser {
                        user: text(subject, "user")?,
                        code: close_code(kind)?,
                        reason: text(message, "reason")?,
                    },
                    b"t" => Question::Status,
                    b"m" => Question::Freest,
                    b"s" => Question::Barrier,
                    b"g" | b"y" | b"h" | b"v" => Question::Page {
                        list: match what {
                            b"g" => ListKind::UserTokens,
                            b"y" => ListKind::OnlineUsers,
                            b"h" => ListKind::Subscribers,
                            _ => ListKind::Topics,
                        },
                        subject: text(subject, "subject")?,
                        cursor: message,
                        limit: count_of(kind)?,
                    },
                    b"j" | b"r" | b"J" | b"R" => {
                        let target = if matches!(what, b"j" | b"r") {
                            Subject::Token(Token::from_slice(subject).ok_or(WireError::BadToken)?)
                        } else {
                            Subject::User(text(subject, "user")?)
                        };
                        let topic = Topic::parse(message)
                            .map_err(|_| WireError::BadTopic)?
                            .as_str();
                        if matches!(what, b"j" | b"J") {
                            let options = JoinOptions {
                                get_retained: kind == b"g",
                            };
                            Question::Subscribe {
                                target,
                                topic,
                                options,
                            }
                        } else {
                            Question::Unsubscribe { target, topic }
                        }
                    }
                    b"H" => Question::TopicCount {
                        topic: Topic::parse(subject)
                            .map_err(|_| WireError::BadTopic)?
                            .as_str(),
                    },
                    _ => return Err(WireError::BadQuestion),
                };
                Ok(ClusterMessage::Ask {
                    origin: text(origin, "origin")?,
                    id: count_of(id)?,
                    question,
                })
            }
            ANSWER => {
                expect(4)?;
                let [origin, id, count, body, ..] = values;
                Ok(ClusterMessage::Answer {
                    origin: text(origin, "origin")?,
                    id: count_of(id)?,
                    count: count_of(count)?,
                    body,
                })
            }
            WAMP => {
                expect(2)?;
                let [origin, messages, ..] = values;
                if wamp_messages_in(messages).is_none() {
                    return Err(WireError::BadWamp);
                }
                Ok(ClusterMessage::Wamp {
                    origin: text(origin, "origin")?,
                    messages,
                })
            }
            BATCH => {
                expect(2)?;
                let [origin, messages, ..] = values;
                let origin = text(origin, "origin")?;
                if batch_in(origin, messages).is_none() {
                    return Err(WireError::BadBatch);
                }
                Ok(ClusterMessage::Batch { origin, messages })
            }
            REGISTRATIONS => {
                expect(3)?;
                let [origin, sync, entries, ..] = values;
                let sync = match sync {
                    CHANGES => RegistrationSync::Changes,
                    ALL => RegistrationSync::All,
                    ALL_AND_ASK => RegistrationSync::AllAndAsk,
                    _ => return Err(WireError::BadRegistrations),
                };
                if registrations_in(entries).is_none() {
                    return Err(WireError::BadRegistrations);
                }
                Ok(ClusterMessage::Registrations {
                    origin: text(origin, "origin")?,
                    sync,
                    entries,
                })
            }
            AUTHORIZERS => {
                expect(2)?;
                let [origin, count, ..] = values;
                Ok(ClusterMessage::Authorizers {
                    origin: text(origin, "origin")?,
                    count: count_of(count)?,
                })
            }
            AUTHORIZE => {
                expect(2)?;
                let [origin, frame, ..] = values;
                let request = request_in(frame).ok_or(WireError::BadRequest)?;
                Ok(ClusterMessage::Authorize {
                    origin: text(origin, "origin")?,
                    request,
                })
            }
            AUTHORIZED => {
                expect(3)?;
                let [origin, id, frame, ..] = values;
                let id = count_of(id)?;
                let decision = if frame.is_empty() {
                    None
                } else {
                    let payload = one_frame(frame, b'Z').ok_or(WireError::BadDecision)?;
                    let raw = crate::control::codec::RawFrame {
                        command: b'Z',
                        payload,
                    };
                    match crate::control::command::parse(raw) {
                        Ok(Command::Authorize {
                            id: answered,
                            decision,
                        }) if answered == id => Some(decision),
                        Ok(_) | Err(_) => return Err(WireError::BadDecision),
                    }
                };
                Ok(ClusterMessage::Authorized {
                    origin: text(origin, "origin")?,
                    id,
                    decision,
                })
            }
            byte => Err(WireError::UnknownKind { byte }),
        }
    }

    /// The node that sent it.
    pub fn origin(&self) -> &'a str {
        match *self {
            ClusterMessage::Broadcast { origin, .. }
            | ClusterMessage::Publish { origin, .. }
            | ClusterMessage::Kept { origin, .. }
            | ClusterMessage::Direct { origin, .. }
            | ClusterMessage::ToUser { origin, .. }
            | ClusterMessage::Heartbeat { origin, .. }
            | ClusterMessage::Events { origin, .. }
            | ClusterMessage::Ask { origin, .. }
            | ClusterMessage::Answer { origin, .. }
            | ClusterMessage::Wamp { origin, .. }
            | ClusterMessage::Batch { origin, .. }
            | ClusterMessage::Registrations { origin, .. }
            | ClusterMessage::Authorizers { origin, .. }
            | ClusterMessage::Authorize { origin, .. }
            | ClusterMessage::Authorized { origin, .. } => origin,
        }
    }
}

/// A `Kept` message but its epoch, offset and frame, which only Redis knows or holds: the
/// bytes before them (version, kind, origin and topic fields) and after (the options field,
/// if any). The history script writes `prefix`, the three fields, `suffix`.
pub fn kept_parts(origin: &str, topic: &str, options: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut prefix = vec![VERSION, KEPT];
    fields::append_fields(&mut prefix, &[origin.as_bytes(), topic.as_bytes()]);
    let mut suffix = Vec::new();
    if !options.is_empty() {
        fields::append_field(&mut suffix, options);
    }
    (prefix, suffix)
}

/// True when `frame` is one whole, unmasked text or binary message (a stored publication
/// read back from Redis is checked as one from the channel is, before clients get it).
pub fn is_one_message(frame: &[u8]) -> bool {
    check_frames(frame, 1).is_ok()
}

/// An epoch as positions carry it (`resume::MAX_EPOCH_LEN`, lower-case hex and `-`).
fn is_epoch(epoch: &str) -> bool {
    !epoch.is_empty()
        && epoch.len() <= crate::resume::MAX_EPOCH_LEN
        && epoch
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f' | b'-'))
}

fn decimal(value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    let mut rest = value;
    loop {
        at -= 1;
        if let Some(digit) = buf.get_mut(at) {
            *digit = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 || at == 0 {
            break;
        }
    }
    buf.get(at..).unwrap_or_default()
}

/// The `e` frames (control framing) of an `Events` message, each with its event, in order;
/// `None` unless every byte belongs to one.
pub fn events_in(frames: &[u8]) -> Option<Vec<(&[u8], crate::control::event::Event<'_>)>> {
    use crate::control::codec;
    let mut events = Vec::new();
    let mut rest = frames;
    while !rest.is_empty() {
        let Ok(Decoded::Done { item, len }) = codec::decode(rest, usize::MAX) else {
            return None;
        };
        if item.command != crate::control::event::EVENT_BYTE {
            return None;
        }
        let event = crate::control::event::Event::parse(item.payload)?;
        let (frame, after) = rest.split_at_checked(len)?;
        events.push((frame, event));
        rest = after;
    }
    Some(events)
}

/// The request in `frame`, one whole `z` frame (as `AuthRequest::encode` writes) and nothing
/// after.
pub fn request_in(frame: &[u8]) -> Option<AuthRequest<'_>> {
    one_frame(frame, crate::control::authorizer::REQUEST_BYTE).and_then(AuthRequest::parse)
}

/// The payload of `frame`, one whole control frame with command `command` and nothing after.
fn one_frame(frame: &[u8], command: u8) -> Option<&[u8]> {
    match crate::control::codec::decode(frame, usize::MAX) {
        Ok(Decoded::Done { item, len }) if len == frame.len() && item.command == command => {
            Some(item.payload)
        }
        Ok(_) | Err(_) => None,
    }
}

fn events_are_whole(frames: &[u8]) -> bool {
    events_in(frames).is_some()
}

/// The group names of a heartbeat (checked fields).
pub fn group_names(groups: &[u8]) -> impl Iterator<Item = &[u8]> {
    Fields::new(groups).filter_map(Result::ok)
}

/// The messages in frames `check_frames` accepted, as (binary, payload): a fragmented one
/// is joined.
pub fn messages_in(frames: &[u8]) -> Vec<(bool, std::borrow::Cow<'_, [u8]>)> {
    use std::borrow::Cow;
    let mut messages = Vec::new();
    let mut rest = frames;
    let mut partial: Option<(bool, Vec<u8>)> = None;
    while let Ok(Decoded::Done { item: header, len }) = frame::decode_header(rest, u64::MAX >> 1) {
        let Some(payload) = usize::try_from(header.payload_len)
            .ok()
            .and_then(|payload| rest.get(len..len.checked_add(payload)?))
        else {
            break;
        };
        let binary = header.opcode == OpCode::Binary;
        match (partial.take(), header.fin) {
            (None, true) => messages.push((binary, Cow::Borrowed(payload))),
            (None, false) => partial = Some((binary, payload.to_vec())),
            (Some((binary, mut joined)), fin) => {
                joined.extend_from_slice(payload);
                if fin {
                    messages.push((binary, Cow::Owned(joined)));
                } else {
                    partial = Some((binary, joined));
                }
            }
        }
        rest = rest.get(len + payload.len()..).unwrap_or_default();
    }
    messages
}

/// A kick's close code: one a server may send (as the control command's own check), with a
/// reason short enough for a Close frame.
fn close_code(digits: &[u8]) -> Result<u16, WireError> {
    count_of(digits)
        .ok()
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| crate::ws::message::is_valid_close_code(*code) && *code != 1010)
        .ok_or(WireError::BadCloseCode)
}

fn kind_flag(binary: bool) -> &'static [u8] {
    if binary { b"b" } else { b"t" }
}

/// The flag of a single message: binary, or text that must be UTF-8 (what a client is sent
/// unread must not break its stream).
fn message_kind(flag: &[u8], message: &[u8]) -> Result<bool, WireError> {
    match flag {
        b"b" => Ok(true),
        b"t" if std::str::from_utf8(message).is_ok() => Ok(false),
        b"t" => Err(WireError::TextNotUtf8),
        _ => Err(WireError::BadKind),
    }
}

fn count_of(bytes: &[u8]) -> Result<u64, WireError> {
    if bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(WireError::BadCount);
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(WireError::BadCount)
}

/// True when `frames` is exactly `messages` whole, unmasked text or binary messages (each
/// possibly fragmented into continuation frames), as a node's batch is: what another node
/// queues to its clients unread must not break their streams.
fn check_frames(frames: &[u8], messages: u64) -> Result<(), WireError> {
    let mut rest = frames;
    let mut complete = 0_u64;
    let mut in_message = false;
    while !rest.is_empty() {
        let Ok(Decoded::Done { item: header, len }) = frame::decode_header(rest, u64::MAX >> 1)
        else {
            return Err(WireError::BadFrames);
        };
        let in_order = matches!(
            (header.opcode, in_message),
            (OpCode::Text | OpCode::Binary, false) | (OpCode::Continuation, true)
        );
        if header.mask.is_some() || !in_order {
            return Err(WireError::BadFrames);
        }
        let total = usize::try_from(header.payload_len)
            .ok()
            .and_then(|payload| payload.checked_add(len))
            .filter(|total| *total <= rest.len())
            .ok_or(WireError::BadFrames)?;
        in_message = !header.fin;
        if header.fin {
            complete += 1;
        }
        rest = rest.get(total..).unwrap_or_default();
    }
    if in_message || complete != messages {
        return Err(WireError::BadFrames);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::encode_frame;

    fn frames(texts: &[&str]) -> Vec<u8> {
        texts
            .iter()
            .flat_map(|text| encode_frame(true, OpCode::Text, text.as_bytes()))
            .collect()
    }

    /// What the history script does in Lua: prefix, then epoch, offset and frame as fields,
    /// then suffix.
    fn as_the_script_writes(options: &[u8]) -> Vec<u8> {
        let (prefix, suffix) = kept_parts("node-a", "news.x", options);
        let frame = frames(&["hi"]);
        let mut out = prefix;
        for field in [&b"00ff-1"[..], b"17", &frame] {
            out.extend_from_slice(format!("{}:", field.len()).as_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&suffix);
        out
    }

    #[test]
    fn a_kept_message_built_by_the_script_decodes() {
        let frame = frames(&["hi"]);
        for options in [&b""[..], br#"{"retain":true}"#] {
            let bytes = as_the_script_writes(options);
            let expected = ClusterMessage::Kept {
                origin: "node-a",
                topic: "news.x",
                epoch: "00ff-1",
                offset: 17,
                frame: &frame,
                options,
            };
            assert_eq!(ClusterMessage::decode(&bytes), Ok(expected));
            let mut encoded = Vec::new();
            expected.encode(&mut encoded);
            assert_eq!(encoded, bytes);
        }
    }

    #[test]
    fn a_kept_message_with_a_bad_epoch_or_frames_is_refused() {
        let two = frames(&["a", "b"]);
        let mut out = Vec::new();
        ClusterMessage::Kept {
            origin: "a",
            topic: "t",
            epoch: "e",
            offset: 1,
            frame: &two,
            options: b"",
        }
        .encode(&mut out);
        assert_eq!(ClusterMessage::decode(&out), Err(WireError::BadFrames));
        let one = frames(&["a"]);
        for epoch in ["", "XYZ", &"a".repeat(33)] {
            let mut out = Vec::new();
            ClusterMessage::Kept {
                origin: "a",
                topic: "t",
                epoch,
                offset: 1,
                frame: &one,
                options: b"",
            }
            .encode(&mut out);
            assert_eq!(
                ClusterMessage::decode(&out),
                Err(WireError::BadEpoch),
                "{epoch}"
            );
        }
    }

    #[test]
    fn messages_round_trip() {
        let batch = frames(&["one", "two"]);
        for message in [
            ClusterMessage::Broadcast {
                origin: "node-a",
                messages: 2,
                frames: &batch,
            },
            ClusterMessage::Publish {
                origin: "node-b",
                topic: "news.sport",
                messages: 2,
                frames: &batch,
                options: b"",
            },
            ClusterMessage::Publish {
                origin: "node-b",
                topic: "news.sport",
                messages: 1,
                frames: &frames(&["one"]),
                options: br#"{"exclude_authid":["alice"]}"#,
            },
            ClusterMessage::Kept {
                origin: "node-b",
                topic: "news.sport",
                epoch: "0123456789abcdef",
                offset: 42,
                frame: &frames(&["one"]),
                options: b"",
            },
            ClusterMessage::Kept {
                origin: "node-b",
                topic: "news.sport",
                epoch: "0123456789abcdef",
                offset: 1,
                frame: &frames(&["one"]),
                options: br#"{"retain":true}"#,
            },
            ClusterMessage::Direct {
                origin: "node-c",
                token: Token::from_array([b'a'; 32]),
                binary: false,
                message: "é".as_bytes(),
            },
            ClusterMessage::ToUser {
                origin: "node-c",
                user: "alice",
                binary: true,
                message: &[0xff, 0],
            },
            ClusterMessage::Heartbeat {
                origin: "node-d",
                listening: 5,
                groups: b"7:workers3:ops",
            },
            ClusterMessage::Ask {
                origin: "node-d",
                id: 7,
                question: Question::Direct {
                    token: Token::from_array([b'z'; 32]),
                    binary: false,
                    message: b"hi",
                },
            },
            ClusterMessage::Ask {
                origin: "node-d",
                id: 8,
                question: Question::ToUser {
                    user: "bob",
                    binary: true,
                    message: &[1],
                },
            },
            ClusterMessage::Ask {
                origin: "node-d",
                id: 9,
                question: Question::UserOnline { user: "bob" },
            },
            ClusterMessage::Answer {
                origin: "node-e",
                id: 9,
                count: 3,
                body: b"",
            },
            ClusterMessage::Ask {
                origin: "node-d",
                id: 12,
                question: Question::Status,
            },
            ClusterMessage::Ask {
                origin: "node-d",
                id: 15,
                question: Question::Barrier,
            },
            ClusterMessage::Ask {
                origin: "node-d",
                id: 13,
                question: Question::Subscribe {
                    target: Subject::User("bob"),
                    topic: "news.sport",
                    options: JoinOptions::default(),
                },
            },
            ClusterMessage::Ask {
                origin: "node-d",
                id: 16,
                question: Question::Subscribe {
                    target: Subject::User("bob"),
                    topic: "news.sport",
                    options: JoinOptions { get_retained: true },
                },
            },
            ClusterMessage::Ask {
                origin: "node-d",
                id: 14,
                question: Question::Unsubscribe {
                    target: Subject::Token(Token::from_array([b'q'; 32])),
                    topic: "news",
                },
            },
            ClusterMessage::Answer {
                origin: "node-e",
                id: 12,
                count: 0,
                body: br#"{"connections":1}"#,
            },
            ClusterMessage::Ask {
                origin: "node-d",
                id: 10,
                question: Question::KickToken {
                    token: Token::from_array([b'k'; 32]),
                    code: 4000,
                    reason: "bye",
                },
            },
            ClusterMessage::Ask {
                origin: "node-d",
                id: 15,
                question: Question::TopicCount {
                    topic: "news.sport",
                },
            },
            ClusterMessage::Ask {
                origin: "node-d",
                id: 11,
                question: Question::KickUser {
                    user: "bob",
                    code: 1000,
                    reason: "",
                },
            },
        ] {
            let mut out = Vec::new();
            message.encode(&mut out);
            assert_eq!(ClusterMessage::decode(&out), Ok(message));
        }
        let mut out = Vec::new();
        ClusterMessage::Broadcast {
            origin: "n",
            messages: 0,
            frames: &[],
        }
        .encode(&mut out);
        assert_eq!(out, b"1b1:n1:00:");
    }

    fn auth_request() -> AuthRequest<'static> {
        AuthRequest {
            id: 41,
            listener: "tcp://127.0.0.1:8099",
            remote: "127.0.0.1:50000",
            origin: "https://example.com",
            path: "/ws",
            query: "room=1",
            cookie: b"PHPSESSID=abc",
            token: Some(Token::from_array([b't'; 32])),
            user: "alice",
        }
    }

    #[test]
    fn authorizer_messages_round_trip() {
        let topics = crate::control::authorizer::TopicList::parse(b"4:news4:chat").unwrap();
        for message in [
            ClusterMessage::Authorizers {
                origin: "node-a",
                count: 2,
            },
            ClusterMessage::Authorizers {
                origin: "node-a",
                count: 0,
            },
            ClusterMessage::Authorize {
                origin: "node-b",
                request: auth_request(),
            },
            ClusterMessage::Authorize {
                origin: "node-b",
                request: AuthRequest {
                    token: None,
                    user: "",
                    ..auth_request()
                },
            },
            ClusterMessage::Authorized {
                origin: "node-a",
                id: 41,
                decision: Some(Decision::Allow {
                    user: Some("bob"),
                    topics,
                }),
            },
            ClusterMessage::Authorized {
                origin: "node-a",
                id: 42,
                decision: Some(Decision::Allow {
                    user: None,
                    topics: crate::control::authorizer::TopicList::EMPTY,
                }),
            },
            ClusterMessage::Authorized {
                origin: "node-a",
                id: 43,
                decision: Some(Decision::Deny {
                    status: 403,
                    reason: "not today",
                }),
            },
            ClusterMessage::Authorized {
                origin: "node-a",
                id: 44,
                decision: None,
            },
        ] {
            let mut out = Vec::new();
            message.encode(&mut out);
            assert_eq!(ClusterMessage::decode(&out), Ok(message));
        }
    }

    #[test]
    fn a_relayed_request_or_decision_must_be_one_whole_frame() {
        let mut frame = Vec::new();
        auth_request().encode(&mut frame);
        let encode = |kind: u8, fields: &[&[u8]]| {
            let mut out = vec![VERSION, kind];
            fields::append_fields(&mut out, fields);
            out
        };
        assert!(ClusterMessage::decode(&encode(AUTHORIZE, &[b"n", &frame])).is_ok());
        let truncated = &frame[..frame.len() - 1];
        let mut trailing = frame.clone();
        trailing.push(b'0');
        let mut not_z = frame.clone();
        if let Some(at) = not_z.iter().position(|byte| *byte == b'z') {
            not_z[at] = b'Z';
        }
        for bad in [truncated, &trailing, &not_z, b""] {
            assert_eq!(
                ClusterMessage::decode(&encode(AUTHORIZE, &[b"n", bad])),
                Err(WireError::BadRequest)
            );
        }
        let mut decision = Vec::new();
        Command::Authorize {
            id: 7,
            decision: Decision::Deny {
                status: 403,
                reason: "no",
            },
        }
        .encode(&mut decision);
        assert!(ClusterMessage::decode(&encode(AUTHORIZED, &[b"n", b"7", &decision])).is_ok());
        // Another id than the message's, a bad status, not a Z frame.
        let mut bad_status = Vec::new();
        crate::control::codec::encode(
            b'Z',
            &fields::to_payload(&[b"7", b"deny", b"200"]),
            &mut bad_status,
        );
        for bad in [&decision[..], &bad_status, &frame] {
            let id: &[u8] = if bad == &decision[..] { b"8" } else { b"7" };
            assert_eq!(
                ClusterMessage::decode(&encode(AUTHORIZED, &[b"n", id, bad])),
                Err(WireError::BadDecision)
            );
        }
        assert!(ClusterMessage::decode(&encode(AUTHORIZERS, &[b"n", b"x"])).is_err());
    }

    #[test]
    fn wamp_messages_and_registrations_round_trip_and_bad_entries_are_refused() {
        let entry = |uri, present| RegistrationEntry {
            realm: "realm1",
            uri,
            policy: "prefix",
            invoke: "roundrobin",
            present,
        };
        let mut entries = Vec::new();
        entry("com.app.add", true).append_to(&mut entries);
        entry("com.app.", false).append_to(&mut entries);
        assert_eq!(
            registrations_in(&entries),
            Some(vec![entry("com.app.add", true), entry("com.app.", false)])
        );
        assert_eq!(registrations_in(b""), Some(Vec::new()));
        let mut wamp = Vec::new();
        append_wamp(&mut wamp, "realm1", &[0x93, 0x10, 0x01, 0x80]);
        append_wamp(&mut wamp, "realm2", b"");
        assert_eq!(
            wamp_messages_in(&wamp),
            Some(vec![
                ("realm1", &[0x93, 0x10, 0x01, 0x80][..]),
                ("realm2", &b""[..])
            ])
        );
        assert_eq!(wamp_messages_in(b"6:realm1"), None);
        for message in [
            ClusterMessage::Wamp {
                origin: "node-a",
                messages: &wamp,
            },
            ClusterMessage::Registrations {
                origin: "node-b",
                sync: RegistrationSync::All,
                entries: &entries,
            },
            ClusterMessage::Registrations {
                origin: "node-b",
                sync: RegistrationSync::Changes,
                entries: b"",
            },
            ClusterMessage::Registrations {
                origin: "node-b",
                sync: RegistrationSync::AllAndAsk,
                entries: b"",
            },
        ] {
            let mut out = Vec::new();
            message.encode(&mut out);
            assert_eq!(ClusterMessage::decode(&out), Ok(message));
        }
        // Four fields of an entry, a present flag that is no 1 or 0, a bad sync flag.
        let refused = |sync: &[u8], entries: &[u8]| {
            let mut out = vec![VERSION, REGISTRATIONS];
            fields::append_fields(&mut out, &[b"n", sync, entries]);
            ClusterMessage::decode(&out).map(|_| ())
        };
        let mut short = Vec::new();
        fields::append_fields(&mut short, &[b"r", b"u", b"exact", b"single"]);
        let mut bad_flag = short.clone();
        fields::append_fields(&mut bad_flag, &[b"yes"]);
        for (sync, entries) in [(&b"1"[..], &short[..]), (b"1", &bad_flag), (b"3", b"")] {
            assert_eq!(
                refused(sync, entries),
                Err(WireError::BadRegistrations),
                "{entries:?}"
            );
        }
    }

    #[test]
    fn a_batch_holds_whole_messages_of_its_origin_and_no_batch() {
        let encoded = |message: ClusterMessage<'_>| {
            let mut out = Vec::new();
            message.encode(&mut out);
            out
        };
        let heartbeat = ClusterMessage::Heartbeat {
            origin: "a#1",
            listening: 0,
            groups: b"",
        };
        let direct = ClusterMessage::Direct {
            origin: "a#1",
            token: Token::from_array([b'x'; 32]),
            binary: false,
            message: b"hi",
        };
        let mut messages = Vec::new();
        append_to_batch(&mut messages, &encoded(heartbeat));
        append_to_batch(&mut messages, &encoded(direct));
        let batch = ClusterMessage::Batch {
            origin: "a#1",
            messages: &messages,
        };
        let bytes = encoded(batch);
        assert_eq!(ClusterMessage::decode(&bytes), Ok(batch));
        assert_eq!(batch_in("a#1", &messages), Some(vec![heartbeat, direct]));
        assert_eq!(decode_all(&bytes), Ok(vec![heartbeat, direct]));
        assert_eq!(decode_all(&encoded(direct)), Ok(vec![direct]));
        // Another origin inside, a batch inside, a message cut short.
        assert_eq!(batch_in("b#2", &messages), None);
        let mut nested = Vec::new();
        append_to_batch(&mut nested, &bytes);
        assert_eq!(batch_in("a#1", &nested), None);
        let mut cut = Vec::new();
        append_to_batch(&mut cut, &encoded(heartbeat)[..5]);
        assert_eq!(batch_in("a#1", &cut), None);
        let refused = encoded(ClusterMessage::Batch {
            origin: "a#1",
            messages: &nested,
        });
        assert_eq!(ClusterMessage::decode(&refused), Err(WireError::BadBatch));
    }

    #[test]
    fn only_whole_unmasked_data_messages_pass() {
        let whole = frames(&["a"]);
        let ok = |frames: &[u8], messages| check_frames(frames, messages).is_ok();
        assert!(ok(&whole, 1));
        assert!(!ok(&whole, 2));
        assert!(!ok(&whole[..whole.len() - 1], 1));
        let masked = crate::ws::frame::encode_masked_frame(true, OpCode::Text, b"a", [1; 4]);
        assert!(!ok(&masked, 1));
        let ping = encode_frame(true, OpCode::Ping, b"");
        assert!(!ok(&ping, 1));
        // A fragmented message is one message; a dangling fragment is none.
        let mut fragmented = encode_frame(false, OpCode::Binary, b"a");
        fragmented.extend(encode_frame(true, OpCode::Continuation, b"b"));
        assert!(ok(&fragmented, 1));
        assert!(!ok(&fragmented[..3], 1));
        let stray = encode_frame(true, OpCode::Continuation, b"b");
        assert!(!ok(&stray, 1));
        let mut interleaved = encode_frame(false, OpCode::Text, b"a");
        interleaved.extend(encode_frame(true, OpCode::Text, b"b"));
        assert!(!ok(&interleaved, 1));
        let mut pinged = encode_frame(false, OpCode::Text, b"a");
        pinged.extend(encode_frame(true, OpCode::Ping, b""));
        pinged.extend(encode_frame(true, OpCode::Continuation, b"b"));
        assert!(!ok(&pinged, 1));
    }

    #[test]
    fn messages_come_out_of_their_frames() {
        let mut batch = frames(&["one"]);
        batch.extend(encode_frame(false, OpCode::Binary, b"a"));
        batch.extend(encode_frame(true, OpCode::Continuation, b"b"));
        let messages = messages_in(&batch);
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[0],
            (false, std::borrow::Cow::Borrowed(&b"one"[..]))
        );
        assert!(messages[1].0);
        assert_eq!(&*messages[1].1, b"ab");
    }

    #[test]
    fn hostile_bytes_are_errors() {
        for bad in [
            &b""[..],
            b"2b",
            b"1",
            b"1q",
            b"1b1:n",
            b"1b1:n1:x0:",
            b"1b1:n1:10:",
            b"1b1:n2:010:",
            b"1x1:n1:t1:0",
            b"1b1:\xff1:00:",
            b"1b1:n20:999999999999999999990:",
            b"1d1:n3:tok1:t1:x",
            b"1d1:n32:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1:q1:x",
            b"1u1:n1:u1:t1:\xff",
            b"1u1:n1:u1:t",
            b"1h",
            b"1h1:n3:2561:x",
            b"1h1:n1:12:9:",
            b"1e1:n3:0e1",
            b"1q1:n1:11:z1:u1:t0:",
            b"1a1:n1:x1:1",
            b"1q1:n1:11:K3:bob4:10101:x",
            b"1q1:n1:11:K3:bob3:9991:x",
            // H for no topic name.
            b"1q1:n1:11:H0:1:t0:",
        ] {
            assert!(ClusterMessage::decode(bad).is_err(), "{bad:?}");
        }
        assert_eq!(decimal(0, &mut [0; 20]), b"0");
        assert_eq!(decimal(u64::MAX, &mut [0; 20]), b"18446744073709551615");
    }
}
