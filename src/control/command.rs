//! Meaning of control frames: a `RawFrame` from `control::codec` becomes a `Command`, and
//! what wson answers is a `Reply` encoded back into the same framing.
//!
//! The command set is the PHP ws(s)on's (`b B c C d D l f F i I s S m p P q Q`), plus `t`
//! (status), plus wson's users, topics, events, authorizer and WAMP authorization commands
//! (`u U w W o g y k K j J r R x X h H v e z Z O`), whose payloads are fields
//! (`control::fields`), plus `V` (WAMP messages). Every command byte either maps to a
//! `Command` or is `ControlError::UnknownCommand`; every field is checked here and borrowed
//! from the payload, typed (a `Token`, a `Topic`, a close code); every `ControlError` maps to
//! the reply `0E` (`Reply::from_error`). Executing a command against the hub belongs to the
//! server, not here. COMMANDS.md is the reference for every rule.

use std::num::NonZeroUsize;

use crate::auth::MAX_USER_LEN;
use crate::control::authorizer::{self, Decision, TopicList};
use crate::control::codec::{
    self, ControlError, FieldAt, MAX_CURSOR_LEN, MAX_GROUP_LEN, MAX_REASON_LEN, RawFrame,
};
use crate::control::event::{EventKinds, KindsError};
use crate::control::fields::{self, Decimal, Fields};
use crate::control::topic::Topic;
use crate::token::{TOKEN_LEN, Token};
use crate::ws::message::is_valid_close_code;

/// The close code of a kick (`k`/`K`) that names none.
pub const DEFAULT_KICK_CODE: u16 = 4000;
/// The close reason of a kick that names none.
pub const DEFAULT_KICK_REASON: &str = "kicked";
/// Most decimal digits a number field may have (as a length field).
const MAX_NUMBER_DIGITS: usize = fields::MAX_FIELD_LENGTH_DIGITS;

/// Where a fragment sits in the message being sent to the locked client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentPosition {
    /// `f`/`F`: opens the message (text or binary, not FIN).
    First,
    /// `i`/`I`: continues it (a continuation frame, not FIN).
    Middle,
    /// `s`/`S`: ends it (a continuation frame with FIN) and unlocks the client.
    Last,
}

/// Whom a command addresses: the open connection(s) holding a token (lower-case command),
/// or every open connection of a user (upper case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Token(Token),
    User(&'a str),
}

/// Which page of a list (`g`, `y`, `h`, `v`) a command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<'a> {
    /// Empty: the first page. Else the last name of the page before: the page starts after
    /// it (names are ordered bytewise).
    pub cursor: &'a [u8],
    /// The most items wanted; `None`: the configured `max_list_page`.
    pub limit: Option<NonZeroUsize>,
}

impl PageRequest<'_> {
    /// The first page, as long as the server allows.
    pub const FIRST: PageRequest<'static> = PageRequest {
        cursor: b"",
        limit: None,
    };

    /// How many items to send: the limit asked for, lowered to `max_list_page` (and at
    /// least 1).
    pub fn limit_within(&self, max_list_page: usize) -> usize {
        let max = max_list_page.max(1);
        self.limit.map_or(max, |limit| limit.get().min(max))
    }
}

/// A command a backend sent on the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `b` (text) / `B` (binary): the message to every client.
    Broadcast { binary: bool, message: &'a [u8] },
    /// `c`/`C` (confirmed: reply `A`/`N`) and `d`/`D` (no reply): the message to the client
    /// holding `token`. An empty message sends nothing: with `confirm` it is an online check.
    Direct {
        confirm: bool,
        binary: bool,
        token: Token,
        message: &'a [u8],
    },
    /// `l`: lock the client holding `token` for a fragmented message from this connection.
    Lock { token: Token },
    /// `f F i I s S`: one fragment to the client this connection locked. As in ws(s)on,
    /// `i`/`I` and `s`/`S` go out as continuation frames whatever their case; `binary`
    /// keeps the case anyway.
    Fragment {
        position: FragmentPosition,
        binary: bool,
        message: &'a [u8],
    },
    /// `m`: asks for the domain of the least loaded listener.
    Domain,
    /// `p`: ping; the answer is `0P`.
    Ping,
    /// `P`: pong, the answer to wson's `0p`.
    Pong,
    /// `q`/`Q`: close this control connection.
    Quit,
    /// `t`: asks for the status JSON.
    Status,
    /// `u`/`U` (no reply) and `w`/`W` (confirmed: reply `#n`, n = connections it was queued
    /// for): the message, text or binary, to every open connection of `user`. An empty
    /// message is sent as an empty message.
    ToUser {
        confirm: bool,
        binary: bool,
        user: &'a str,
        message: &'a [u8],
    },
    /// `o`: reply `#n`, the user's open connections.
    UserOnline { user: &'a str },
    /// `g`: reply `L`, a page of the user's tokens (items: token, open connections holding it).
    UserTokens {
        user: &'a str,
        page: PageRequest<'a>,
    },
    /// `y`: reply `L`, a page of the online users (items: user, open connections).
    OnlineUsers { page: PageRequest<'a> },
    /// `k` (a token) / `K` (a user): reply `#n`; close every open connection of the target
    /// with this Close code and reason (defaults `DEFAULT_KICK_CODE`, `DEFAULT_KICK_REASON`).
    Kick {
        target: Target<'a>,
        code: u16,
        reason: &'a str,
    },
    /// `j` (a token's connections) / `J` (a user: its current and future connections until
    /// `R`): reply `#n` or `!`.
    Subscribe {
        target: Target<'a>,
        topic: Topic<'a>,
        /// Subscribe options, a JSON object with WAMP SUBSCRIBE's names (`get_retained`;
        /// UTF-8, judged by the server, which knows `[wamp] max_depth`); empty: none.
        options: &'a [u8],
    },
    /// `r` / `R`: reply `#n`, the connections that were subscribed.
    Unsubscribe {
        target: Target<'a>,
        topic: Topic<'a>,
    },
    /// `x` (text) / `X` (binary): the message to every connection subscribed to the topic,
    /// once each. No reply.
    Publish {
        binary: bool,
        topic: Topic<'a>,
        message: &'a [u8],
        /// WAMP PUBLISH options for the backend realm's WAMP subscribers, a JSON object
        /// (UTF-8, judged by the server, which knows `[wamp] max_depth`); empty: none.
        options: &'a [u8],
    },
    /// `Y`: as `x`/`X` (the kind field says which: empty or `text`, or `binary`), and keeps
    /// it in the topic's history; reply `@`, its position (empty without a history).
    PublishAt {
        binary: bool,
        topic: Topic<'a>,
        message: &'a [u8],
        /// As for `Publish`.
        options: &'a [u8],
    },
    /// `G`: reply `@`, the topic's position now (empty without a history).
    Position { topic: Topic<'a> },
    /// `h`: reply `L`, a page of a topic's subscribers (items: user, subscribed connections).
    Subscribers {
        topic: Topic<'a>,
        page: PageRequest<'a>,
    },
    /// `H`: reply `#users connections` for the topic.
    SubscriberCount { topic: Topic<'a> },
    /// `v`: reply `L`, a page of the topics with a subscriber (items: topic, connections).
    Topics { page: PageRequest<'a> },
    /// `e`: this connection listens to events of `kinds` from now on, alone or as a member
    /// of `group`; again, it replaces both. No reply.
    Listen {
        group: Option<&'a str>,
        kinds: EventKinds,
    },
    /// `z`: this connection answers authorization requests from now on. The payload is
    /// ignored. No reply.
    Authorizer,
    /// `Z`: an authorizer's answer to request `id`. No reply.
    Authorize { id: u64, decision: Decision<'a> },
    /// `V`: one WAMP v2 message in JSON (wamp.2.json rules) from the backend's WAMP session:
    /// PUBLISH, SUBSCRIBE, REGISTER, CALL, YIELD... The router's messages come back as `V`
    /// frames; no reply otherwise. The router decodes it: the codec only frames it.
    Wamp { message: &'a [u8] },
    /// `O`: reply `#n`; drop the WAMP authorizer answers cached by every session (`None`)
    /// or by the sessions of this authid; n = answers dropped.
    FlushAuthorizations { authid: Option<&'a str> },
}

impl Command<'_> {
    /// The byte that names this command on the wire (`Quit` is sent as `q`).
    pub fn command_byte(&self) -> u8 {
        match *self {
            Command::Broadcast { binary, .. } => pick(binary, b'B', b'b'),
            Command::Direct {
                confirm, binary, ..
            } => match (confirm, binary) {
                (true, false) => b'c',
                (true, true) => b'C',
                (false, false) => b'd',
                (false, true) => b'D',
            },
            Command::Lock { .. } => b'l',
            Command::Fragment {
                position, binary, ..
            } => match position {
                FragmentPosition::First => pick(binary, b'F', b'f'),
                FragmentPosition::Middle => pick(binary, b'I', b'i'),
                FragmentPosition::Last => pick(binary, b'S', b's'),
            },
            Command::Domain => b'm',
            Command::Ping => b'p',
            Command::Pong => b'P',
            Command::Quit => b'q',
            Command::Status => b't',
            Command::ToUser {
                confirm, binary, ..
            } => match (confirm, binary) {
                (false, false) => b'u',
                (false, true) => b'U',
                (true, false) => b'w',
                (true, true) => b'W',
            },
            Command::UserOnline { .. } => b'o',
            Command::UserTokens { .. } => b'g',
            Command::OnlineUsers { .. } => b'y',
            Command::Kick { target, .. } => by_target(target, b'k', b'K'),
            Command::Subscribe { target, .. } => by_target(target, b'j', b'J'),
            Command::Unsubscribe { target, .. } => by_target(target, b'r', b'R'),
            Command::Publish { binary, .. } => pick(binary, b'X', b'x'),
            Command::Subscribers { .. } => b'h',
            Command::SubscriberCount { .. } => b'H',
            Command::PublishAt { .. } => b'Y',
            Command::Position { .. } => b'G',
            Command::Topics { .. } => b'v',
            Command::Listen { .. } => b'e',
            Command::Authorizer => b'z',
            Command::Authorize { .. } => b'Z',
            Command::Wamp { .. } => b'V',
            Command::FlushAuthorizations { .. } => b'O',
        }
    }

    /// Appends this command as a frame to `out`, as a backend would send it. Commands made
    /// of fields are written in their shortest form: trailing optional fields that hold the
    /// default are left out, numbers have no leading zeros, kinds are listed in
    /// `EventKind::ALL` order (every kind: the empty field).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let command = self.command_byte();
        match *self {
            Command::Broadcast { message, .. }
            | Command::Fragment { message, .. }
            | Command::Wamp { message } => {
                codec::encode(command, message, out);
            }
            Command::Direct { token, message, .. } => {
                codec::encode_header(command, TOKEN_LEN.saturating_add(message.len()), out);
                out.extend_from_slice(token.as_bytes());
                out.extend_from_slice(message);
            }
            Command::Lock { token } => codec::encode(command, token.as_bytes(), out),
            Command::Domain
            | Command::Ping
            | Command::Pong
            | Command::Quit
            | Command::Status
            | Command::Authorizer => {
                codec::encode(command, &[], out);
            }
            Command::ToUser { user, message, .. } => {
                encode_fields(command, &[user.as_bytes(), message], 2, out);
            }
            Command::UserOnline { user } => encode_fields(command, &[user.as_bytes()], 1, out),
            Command::UserTokens { user, page } => {
                let limit = page_limit(page);
                encode_fields(
                    command,
                    &[user.as_bytes(), page.cursor, limit.as_bytes()],
                    1,
                    out,
                );
            }
            Command::OnlineUsers { page } | Command::Topics { page } => {
                let limit = page_limit(page);
                encode_fields(command, &[page.cursor, limit.as_bytes()], 0, out);
            }
            Command::Kick {
                ref target,
                code,
                reason,
            } => {
                let code = if code == DEFAULT_KICK_CODE {
                    Decimal::empty()
                } else {
                    Decimal::new(u64::from(code))
                };
                let reason = if reason == DEFAULT_KICK_REASON {
                    ""
                } else {
                    reason
                };
                encode_fields(
                    command,
                    &[target_bytes(target), code.as_bytes(), reason.as_bytes()],
                    1,
                    out,
                );
            }
            Command::Subscribe {
                ref target,
                topic,
                options,
            } => {
                encode_fields(
                    command,
                    &[target_bytes(target), topic.as_bytes(), options],
                    2,
                    out,
                );
            }
            Command::Unsubscribe { ref target, topic } => {
                encode_fields(command, &[target_bytes(target), topic.as_bytes()], 2, out);
            }
            Command::Publish {
                topic,
                message,
                options,
                ..
            } => {
                encode_fields(command, &[topic.as_bytes(), message, options], 2, out);
            }
            Command::Subscribers { topic, page } => {
                let limit = page_limit(page);
                encode_fields(
                    command,
                    &[topic.as_bytes(), page.cursor, limit.as_bytes()],
                    1,
                    out,
                );
            }
            Command::SubscriberCount { topic } | Command::Position { topic } => {
                encode_fields(command, &[topic.as_bytes()], 1, out);
            }
            Command::PublishAt {
                binary,
                topic,
                message,
                options,
            } => {
                let kind: &[u8] = if binary { b"binary" } else { b"" };
                encode_fields(command, &[topic.as_bytes(), message, kind, options], 2, out);
            }
            Command::Listen { group, kinds } => {
                let mut names = Vec::new();
                kinds.encode(&mut names);
                encode_fields(command, &[group.unwrap_or("").as_bytes(), &names], 0, out);
            }
            Command::FlushAuthorizations { authid } => {
                encode_fields(command, &[authid.unwrap_or("").as_bytes()], 0, out);
            }
            Command::Authorize { id, decision } => {
                let id = Decimal::new(id);
                let mut payload = Vec::new();
                match decision {
                    Decision::Allow { user, topics } => {
                        let head = [
                            id.as_bytes(),
                            authorizer::ALLOW,
                            user.unwrap_or("").as_bytes(),
                        ];
                        let required = if topics.is_empty() { 2 } else { 3 };
                        fields::append_fields(&mut payload, trimmed(&head, required));
                        topics.append_fields(&mut payload);
                    }
                    Decision::Deny { status, reason } => {
                        let status = Decimal::new(u64::from(status));
                        fields::append_fields(
                            &mut payload,
                            trimmed(
                                &[
                                    id.as_bytes(),
                                    authorizer::DENY,
                                    status.as_bytes(),
                                    reason.as_bytes(),
                                ],
                                3,
                            ),
                        );
                    }
                }
                codec::encode(command, &payload, out);
            }
        }
    }

    /// Checks every topic this command names against the configured `[topics]
    /// max_name_length` (the codec allows `topic::MAX_TOPIC_LEN`); a longer one is `0E`.
    pub fn check_topic_len(&self, max_name_length: usize) -> Result<(), ControlError> {
        let command = self.command_byte();
        let check = |topic: Topic<'_>, number| {
            topic
                .check_max_len(max_name_length)
                .map_err(|error| ControlError::BadTopic {
                    command,
                    field: FieldAt {
                        number,
                        name: "topic",
                    },
                    error,
                })
        };
        match *self {
            Command::Subscribe { topic, .. } | Command::Unsubscribe { topic, .. } => {
                check(topic, 2)
            }
            Command::Publish { topic, .. }
            | Command::PublishAt { topic, .. }
            | Command::Position { topic }
            | Command::Subscribers { topic, .. }
            | Command::SubscriberCount { topic } => check(topic, 1),
            Command::Authorize {
                decision: Decision::Allow { topics, .. },
                ..
            } => topics
                .iter()
                .zip(4..)
                .try_for_each(|(topic, number)| check(topic, number)),
            Command::Broadcast { .. }
            | Command::Direct { .. }
            | Command::Lock { .. }
            | Command::Fragment { .. }
            | Command::Domain
            | Command::Ping
            | Command::Pong
            | Command::Quit
            | Command::Status
            | Command::ToUser { .. }
            | Command::UserOnline { .. }
            | Command::UserTokens { .. }
            | Command::OnlineUsers { .. }
            | Command::Kick { .. }
            | Command::Topics { .. }
            | Command::Listen { .. }
            | Command::Authorizer
            | Command::Wamp { .. }
            | Command::FlushAuthorizations { .. }
            | Command::Authorize {
                decision: Decision::Deny { .. },
                ..
            } => Ok(()),
        }
    }
}

fn pick(binary: bool, binary_byte: u8, text_byte: u8) -> u8 {
    if binary { binary_byte } else { text_byte }
}

fn by_target(target: Target<'_>, token_byte: u8, user_byte: u8) -> u8 {
    match target {
        Target::Token(_) => token_byte,
        Target::User(_) => user_byte,
    }
}

fn target_bytes<'t>(target: &'t Target<'_>) -> &'t [u8] {
    match target {
        Target::Token(token) => token.as_bytes(),
        Target::User(user) => user.as_bytes(),
    }
}

fn page_limit(page: PageRequest<'_>) -> Decimal {
    page.limit
        .map_or(Decimal::empty(), |limit| Decimal::new(limit.get() as u64))
}

/// The fields without the trailing empty ones past the first `required`.
fn trimmed<'f>(fields: &'f [&'f [u8]], required: usize) -> &'f [&'f [u8]] {
    let used = fields
        .iter()
        .rposition(|field| !field.is_empty())
        .map_or(0, |last| last + 1)
        .max(required);
    fields.get(..used).unwrap_or(fields)
}

fn encode_fields(command: u8, fields: &[&[u8]], required: usize, out: &mut Vec<u8>) {
    fields::encode_fields_frame(command, trimmed(fields, required), out);
}

/// A text message must be UTF-8 as a whole (fragments are checked across frames by the
/// server, which knows where a fragmented message starts and ends).
fn text(command: u8, message: &[u8]) -> Result<&[u8], ControlError> {
    match std::str::from_utf8(message) {
        Ok(_) => Ok(message),
        Err(error) => Err(ControlError::InvalidUtf8 {
            command,
            offset: error.valid_up_to(),
        }),
    }
}

/// Reads a fields payload one named field at a time, numbering them for errors.
struct Reader<'a> {
    command: u8,
    fields: Fields<'a>,
    /// Fields read so far.
    read: usize,
}

/// One field and where it is.
type Field<'a> = (&'a [u8], FieldAt);

impl<'a> Reader<'a> {
    fn new(command: u8, payload: &'a [u8]) -> Self {
        Reader {
            command,
            fields: Fields::new(payload),
            read: 0,
        }
    }

    fn at(&self, name: &'static str) -> FieldAt {
        FieldAt {
            number: self.read.saturating_add(1),
            name,
        }
    }

    /// The next field; `None` at the end of the payload.
    fn next(&mut self, name: &'static str) -> Result<Option<Field<'a>>, ControlError> {
        let at = self.at(name);
        match self.fields.next() {
            None => Ok(None),
            // COMMANDS.md, Fields: a missing colon, a non-digit in a length, a length past
            // the end of the payload: 0E.
            Some(Err(error)) => Err(ControlError::FieldSyntax {
                command: self.command,
                field: at.number,
                error,
            }),
            Some(Ok(bytes)) => {
                self.read = at.number;
                Ok(Some((bytes, at)))
            }
        }
    }

    fn required(&mut self, name: &'static str) -> Result<Field<'a>, ControlError> {
        let at = self.at(name);
        self.next(name)?.ok_or(ControlError::MissingField {
            command: self.command,
            field: at,
        })
    }

    /// COMMANDS.md, Fields: a left-out optional field is the same as an empty one.
    fn optional(&mut self, name: &'static str) -> Result<Field<'a>, ControlError> {
        let at = self.at(name);
        Ok(self.next(name)?.unwrap_or((b"", at)))
    }

    /// COMMANDS.md, Fields: more fields than the command takes is 0E.
    fn finish(mut self) -> Result<(), ControlError> {
        let max = self.read;
        match self.next("extra")? {
            None => Ok(()),
            Some(_) => Err(ControlError::TooManyFields {
                command: self.command,
                max,
            }),
        }
    }

    fn user(&mut self) -> Result<&'a str, ControlError> {
        let field = self.required("user")?;
        user(self.command, field)
    }

    fn token(&mut self) -> Result<Token, ControlError> {
        let (bytes, field) = self.required("token")?;
        Token::from_slice(bytes).ok_or(ControlError::BadToken {
            command: self.command,
            field,
            len: bytes.len(),
        })
    }

    fn target(&mut self, by_user: bool) -> Result<Target<'a>, ControlError> {
        Ok(if by_user {
            Target::User(self.user()?)
        } else {
            Target::Token(self.token()?)
        })
    }

    fn topic(&mut self) -> Result<Topic<'a>, ControlError> {
        let field = self.required("topic")?;
        topic(self.command, field)
    }

    /// A message field: any bytes for binary commands, UTF-8 for text ones.
    fn message(&mut self, binary: bool) -> Result<&'a [u8], ControlError> {
        let (bytes, _) = self.required("message")?;
        if binary {
            Ok(bytes)
        } else {
            text(self.command, bytes)
        }
    }

    /// WAMP options (PUBLISH for `x X Y`, SUBSCRIBE for `j J`): JSON text, whose meaning
    /// the server judges.
    fn options(&mut self) -> Result<&'a [u8], ControlError> {
        let (bytes, _) = self.optional("options")?;
        text(self.command, bytes)
    }

    fn page(&mut self) -> Result<PageRequest<'a>, ControlError> {
        let (cursor, field) = self.optional("cursor")?;
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(ControlError::BadCursor {
                command: self.command,
                field,
                len: cursor.len(),
            });
        }
        let (limit, field) = self.optional("limit")?;
        let limit = if limit.is_empty() {
            None
        } else {
            // COMMANDS.md: limit is 1 or more; larger values are lowered by the server, so
            // one past usize is as good as usize::MAX.
            let value = number(
                self.command,
                (limit, field),
                "a decimal number of at least 1",
            )?;
            let value = usize::try_from(value).unwrap_or(usize::MAX);
            Some(NonZeroUsize::new(value).ok_or(ControlError::BadNumber {
                command: self.command,
                field,
                expected: "a decimal number of at least 1",
            })?)
        };
        Ok(PageRequest { cursor, limit })
    }

    /// The close code of a kick: empty or left out is `DEFAULT_KICK_CODE`.
    fn code(&mut self) -> Result<u16, ControlError> {
        let (bytes, field) = self.optional("code")?;
        if bytes.is_empty() {
            return Ok(DEFAULT_KICK_CODE);
        }
        let code = number(self.command, (bytes, field), "a decimal close code")?;
        // RFC 6455 §7.4: only codes that may be sent on the wire; 1010 is the client's
        // ("the client ... expected the server to negotiate one or more extension").
        u16::try_from(code)
            .ok()
            .filter(|code| is_valid_close_code(*code) && *code != 1010)
            .ok_or(ControlError::BadCode {
                command: self.command,
                field,
                code,
            })
    }

    /// A reason: UTF-8, at most `MAX_REASON_LEN` bytes (RFC 6455 §5.5: a Close payload is at
    /// most 125 bytes, two of them the code).
    fn reason(&mut self) -> Result<&'a str, ControlError> {
        let (bytes, field) = self.optional("reason")?;
        let bad = |not_utf8_at| ControlError::BadReason {
            command: self.command,
            field,
            len: bytes.len(),
            not_utf8_at,
        };
        let reason = std::str::from_utf8(bytes).map_err(|error| bad(Some(error.valid_up_to())))?;
        if reason.len() > MAX_REASON_LEN {
            return Err(bad(None));
        }
        Ok(reason)
    }

    fn group(&mut self) -> Result<Option<&'a str>, ControlError> {
        let (bytes, field) = self.optional("group")?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let valid = bytes.len() <= MAX_GROUP_LEN
            && bytes
                .iter()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'));
        std::str::from_utf8(bytes)
            .ok()
            .filter(|_| valid)
            .map(Some)
            .ok_or(ControlError::BadGroup {
                command: self.command,
                field,
                len: bytes.len(),
            })
    }

    /// A WAMP authid: empty or left out is none (every session); else UTF-8 (WAMP strings
    /// are), of any length the frame allows: the router sets no bound on authids.
    fn authid(&mut self) -> Result<Option<&'a str>, ControlError> {
        let (bytes, _) = self.optional("authid")?;
        if bytes.is_empty() {
            return Ok(None);
        }
        std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|error| ControlError::InvalidUtf8 {
                command: self.command,
                offset: error.valid_up_to(),
            })
    }

    fn kinds(&mut self) -> Result<EventKinds, ControlError> {
        let (bytes, field) = self.optional("kinds")?;
        EventKinds::parse(bytes).map_err(|error| match error {
            KindsError::Unknown { offset } => ControlError::UnknownEventKind {
                command: self.command,
                field,
                offset,
            },
            KindsError::Repeated { kind } => ControlError::RepeatedEventKind {
                command: self.command,
                field,
                kind,
            },
        })
    }
}

/// A user: 1 to `MAX_USER_LEN` bytes of UTF-8, what the `user` cookie can decode to.
fn user(command: u8, (bytes, field): Field<'_>) -> Result<&str, ControlError> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|user| (1..=MAX_USER_LEN).contains(&user.len()))
        .ok_or(ControlError::BadUser {
            command,
            field,
            len: bytes.len(),
        })
}

fn topic(command: u8, (bytes, field): Field<'_>) -> Result<Topic<'_>, ControlError> {
    Topic::parse(bytes).map_err(|error| ControlError::BadTopic {
        command,
        field,
        error,
    })
}

/// 1 to 20 decimal digits (leading zeros accepted, as in lengths) of a value that fits a u64.
fn number(
    command: u8,
    (bytes, field): Field<'_>,
    expected: &'static str,
) -> Result<u64, ControlError> {
    Some(bytes)
        .filter(|bytes| bytes.len() <= MAX_NUMBER_DIGITS)
        .and_then(fields::decimal_value)
        .ok_or(ControlError::BadNumber {
            command,
            field,
            expected,
        })
}

/// What a frame means. Payloads of `m p P q Q t z` are ignored, as the PHP ws(s)on did for
/// its own.
pub fn parse(frame: RawFrame<'_>) -> Result<Command<'_>, ControlError> {
    let RawFrame { command, payload } = frame;
    let fragment = |position, binary| {
        Ok(Command::Fragment {
            position,
            binary,
            message: payload,
        })
    };
    match command {
        b'b' => Ok(Command::Broadcast {
            binary: false,
            message: text(command, payload)?,
        }),
        b'B' => Ok(Command::Broadcast {
            binary: true,
            message: payload,
        }),
        b'c' | b'C' | b'd' | b'D' => {
            // COMMANDS.md, c/C/d/D: the payload is the 32-byte token, then the message
            // (possibly empty); a shorter payload is 0E.
            let Some((token, message)) = payload.split_first_chunk::<TOKEN_LEN>() else {
                return Err(ControlError::ShortToken {
                    command,
                    len: payload.len(),
                });
            };
            let binary = matches!(command, b'C' | b'D');
            Ok(Command::Direct {
                confirm: matches!(command, b'c' | b'C'),
                binary,
                token: Token::from_array(*token),
                message: if binary {
                    message
                } else {
                    text(command, message)?
                },
            })
        }
        // COMMANDS.md, l: the payload is exactly the 32-byte token; any other length is 0E.
        b'l' => Token::from_slice(payload)
            .map(|token| Command::Lock { token })
            .ok_or(ControlError::LockPayload { len: payload.len() }),
        b'f' => fragment(FragmentPosition::First, false),
        b'F' => fragment(FragmentPosition::First, true),
        b'i' => fragment(FragmentPosition::Middle, false),
        b'I' => fragment(FragmentPosition::Middle, true),
        b's' => fragment(FragmentPosition::Last, false),
        b'S' => fragment(FragmentPosition::Last, true),
        b'm' => Ok(Command::Domain),
        b'p' => Ok(Command::Ping),
        b'P' => Ok(Command::Pong),
        b'q' | b'Q' => Ok(Command::Quit),
        b't' => Ok(Command::Status),
        b'z' => Ok(Command::Authorizer),
        // COMMANDS.md, V: JSON is UTF-8 text; what it says is the router's to judge.
        b'V' => Ok(Command::Wamp {
            message: text(command, payload)?,
        }),
        b'u' | b'U' | b'w' | b'W' | b'o' | b'g' | b'y' | b'k' | b'K' | b'j' | b'J' | b'r'
        | b'R' | b'x' | b'X' | b'h' | b'H' | b'v' | b'e' | b'Z' | b'O' | b'Y' | b'G' => {
            parse_fields(command, payload)
        }
        // COMMANDS.md, Errors: an unknown command byte is 0E (the PHP ws(s)on skipped it).
        byte => Err(ControlError::UnknownCommand { byte }),
    }
}

/// The commands whose payload is fields (COMMANDS.md, "Fields"), in the field order of
/// COMMANDS.md's table; `?` fields are optional.
fn parse_fields(command: u8, payload: &[u8]) -> Result<Command<'_>, ControlError> {
    let mut reader = Reader::new(command, payload);
    let parsed = match command {
        // user, message
        b'u' | b'U' | b'w' | b'W' => {
            let binary = matches!(command, b'U' | b'W');
            Command::ToUser {
                confirm: matches!(command, b'w' | b'W'),
                binary,
                user: reader.user()?,
                message: reader.message(binary)?,
            }
        }
        // user
        b'o' => Command::UserOnline {
            user: reader.user()?,
        },
        // user, cursor?, limit?
        b'g' => Command::UserTokens {
            user: reader.user()?,
            page: reader.page()?,
        },
        // cursor?, limit?
        b'y' => Command::OnlineUsers {
            page: reader.page()?,
        },
        // token | user, code?, reason?
        b'k' | b'K' => {
            let target = reader.target(command == b'K')?;
            let code = reader.code()?;
            let reason = reader.reason()?;
            Command::Kick {
                target,
                code,
                reason: if reason.is_empty() {
                    DEFAULT_KICK_REASON
                } else {
                    reason
                },
            }
        }
        // token | user, topic, options?
        b'j' | b'J' => Command::Subscribe {
            target: reader.target(command == b'J')?,
            topic: reader.topic()?,
            options: reader.options()?,
        },
        // token | user, topic
        b'r' | b'R' => Command::Unsubscribe {
            target: reader.target(command == b'R')?,
            topic: reader.topic()?,
        },
        // topic, message, options?
        b'x' | b'X' => {
            let binary = command == b'X';
            Command::Publish {
                binary,
                topic: reader.topic()?,
                message: reader.message(binary)?,
                options: reader.options()?,
            }
        }
        // topic, message, kind?: the kind comes last but decides how the message is read.
        b'Y' => {
            let topic = reader.topic()?;
            let (message, _) = reader.required("message")?;
            let binary = match reader.optional("kind")? {
                (b"" | b"text", _) => false,
                (b"binary", _) => true,
                (_, field) => return Err(ControlError::BadKind { command, field }),
            };
            let message = if binary {
                message
            } else {
                text(command, message)?
            };
            Command::PublishAt {
                binary,
                topic,
                message,
                options: reader.options()?,
            }
        }
        // topic
        b'G' => Command::Position {
            topic: reader.topic()?,
        },
        // topic, cursor?, limit?
        b'h' => Command::Subscribers {
            topic: reader.topic()?,
            page: reader.page()?,
        },
        // topic
        b'H' => Command::SubscriberCount {
            topic: reader.topic()?,
        },
        // cursor?, limit?
        b'v' => Command::Topics {
            page: reader.page()?,
        },
        // group?, kinds?
        b'e' => Command::Listen {
            group: reader.group()?,
            kinds: reader.kinds()?,
        },
        // authid?
        b'O' => Command::FlushAuthorizations {
            authid: reader.authid()?,
        },
        // id, allow, user?, topic... | id, deny, status, reason?
        b'Z' => return parse_authorize(reader, payload),
        byte => return Err(ControlError::UnknownCommand { byte }),
    };
    reader.finish()?;
    Ok(parsed)
}

fn parse_authorize<'a>(
    mut reader: Reader<'a>,
    payload: &'a [u8],
) -> Result<Command<'a>, ControlError> {
    let command = reader.command;
    let id = reader.required("id")?;
    let id = number(command, id, "a decimal request id")?;
    let (decision, field) = reader.required("decision")?;
    let decision = match decision {
        authorizer::ALLOW => {
            // The user may be empty (keep the cookie's), so left out when no topic follows.
            let user = match reader.next("user")? {
                None | Some((b"", _)) => None,
                Some(field) => Some(user(command, field)?),
            };
            let start = reader.fields.offset();
            while let Some(field) = reader.next("topic")? {
                topic(command, field)?;
            }
            let topics = payload.get(start..).unwrap_or_default();
            Decision::Allow {
                user,
                topics: TopicList::from_checked_fields(topics),
            }
        }
        authorizer::DENY => {
            let (bytes, field) = reader.required("status")?;
            let status = number(command, (bytes, field), "a decimal HTTP status")?;
            let status = u16::try_from(status)
                .ok()
                .filter(|status| {
                    (authorizer::MIN_DENY_STATUS..=authorizer::MAX_DENY_STATUS).contains(status)
                })
                .ok_or(ControlError::BadStatus {
                    command,
                    field,
                    status,
                })?;
            let reason = reader.reason()?;
            reader.finish()?;
            Decision::Deny { status, reason }
        }
        _ => return Err(ControlError::BadDecision { command, field }),
    };
    Ok(Command::Authorize { id, decision })
}

/// Why a well-formed command was not carried out: the reply `{len}!{reason}`. The
/// connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The connection is in `[topics] max_per_connection` topics already.
    TopicLimitPerConnection,
    /// `[topics] max_topics` topics have subscribers already.
    TopicLimit,
    /// `[topics] max_user_subscriptions` user subscriptions exist already.
    UserSubscriptionLimit,
    /// A cluster-wide command (`c w o k K j J r R g y h v`) while this node has lost Redis: it cannot
    /// know about the other nodes.
    ClusterUnavailable,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::TopicLimitPerConnection,
        Refusal::TopicLimit,
        Refusal::UserSubscriptionLimit,
        Refusal::ClusterUnavailable,
    ];

    /// The reason as sent, ASCII text for a log.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::TopicLimitPerConnection => "topic limit per connection reached",
            Refusal::TopicLimit => "topic limit reached",
            Refusal::UserSubscriptionLimit => "user subscription limit reached",
            Refusal::ClusterUnavailable => "cluster unavailable: Redis is down",
        }
    }

    pub fn from_reason(reason: &[u8]) -> Option<Refusal> {
        Refusal::ALL
            .into_iter()
            .find(|refusal| refusal.reason().as_bytes() == reason)
    }
}

/// One page of a list, owned: the reply `{len}L{fields}`. The server can write a page
/// straight from its index with `encode_page` instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Empty: this was the last page. Else the cursor of the next.
    pub next_cursor: Vec<u8>,
    /// Names and their counts, in order.
    pub items: Vec<(Vec<u8>, u64)>,
}

impl Page {
    /// Appends `{len}L{fields}` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_page_items(
            &self.next_cursor,
            self.items
                .iter()
                .map(|(name, count)| (name.as_slice(), *count)),
            out,
        );
    }

    /// Reads the payload of an `L` reply, as a backend does: the cursor, then name and count
    /// pairs. `None` when it is not that.
    pub fn parse(payload: &[u8]) -> Option<Page> {
        let mut fields = Fields::new(payload);
        let next_cursor = fields.next()?.ok()?.to_vec();
        let mut items = Vec::new();
        while let Some(name) = fields.next() {
            let count = fields.next()?.ok()?;
            items.push((name.ok()?.to_vec(), decimal(count)?));
        }
        Some(Page { next_cursor, items })
    }
}

/// Appends one page, `{len}L{fields}`, to `out` from `items`, the names after the request's
/// cursor in bytewise order with their counts (a range of the server's ordered index,
/// mapped): takes the first `limit` (at least 1) and, when more remain, makes the last name
/// taken the next cursor. Reads `items` twice (lengths, then bytes); allocates nothing.
pub fn encode_page<'n, I>(items: I, limit: usize, out: &mut Vec<u8>)
where
    I: IntoIterator<Item = (&'n [u8], u64)>,
    I::IntoIter: Clone,
{
    let items = items.into_iter();
    let limit = limit.max(1);
    let mut last: &[u8] = b"";
    let mut more = false;
    for (index, (name, _)) in items.clone().enumerate() {
        if index == limit {
            more = true;
            break;
        }
        last = name;
    }
    let next_cursor = if more { last } else { b"" };
    encode_page_items(next_cursor, items.take(limit), out);
}

/// Appends `{len}L{fields}`: `next_cursor`, then each item's name and count.
pub fn encode_page_items<'n, I>(next_cursor: &[u8], items: I, out: &mut Vec<u8>)
where
    I: Iterator<Item = (&'n [u8], u64)> + Clone,
{
    let payload_len = items.clone().fold(
        fields::field_len(next_cursor.len()),
        |total, (name, count)| {
            total
                .saturating_add(fields::field_len(name.len()))
                .saturating_add(fields::field_len(Decimal::new(count).as_bytes().len()))
        },
    );
    out.reserve(payload_len.saturating_add(codec::MAX_LENGTH_DIGITS + 1));
    codec::encode_header(Reply::PAGE_BYTE, payload_len, out);
    fields::append_field(out, next_cursor);
    for (name, count) in items {
        fields::append_field(out, name);
        fields::append_field(out, Decimal::new(count).as_bytes());
    }
}

/// A decimal number as wson writes it in replies: digits only.
fn decimal(bytes: &[u8]) -> Option<u64> {
    Some(bytes)
        .filter(|bytes| bytes.len() <= MAX_NUMBER_DIGITS)
        .and_then(fields::decimal_value)
}

/// What wson sends back on a control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `32A{token}`: `c`/`C` delivered (or the client is online), or `l` locked.
    Ack(Token),
    /// `32N{token}`: for `c`/`C`, no open client holds the token (absent or closing); for
    /// `l`, the client cannot be locked.
    Nack(Token),
    /// `0a`: the fragment was queued for the locked client.
    FragmentAck,
    /// `0n`: this connection holds no lock (or the locked client is gone).
    FragmentNack,
    /// `{len}M{domain}`: the answer to `m`.
    Domain(String),
    /// `0p`: wson pings an idle control connection; the backend answers `0P`.
    Ping,
    /// `0P`: the answer to the backend's `0p`.
    Pong,
    /// `{len}T{json}`: the answer to `t`.
    Status(String),
    /// `0E`: protocol error; wson closes the connection after sending it.
    Error,
    /// `{len}#{n}`: the answer to `w W o k K j J r R O`.
    Count(u64),
    /// `{len}#{users} {connections}`: the answer to `H`.
    TopicCount { users: u64, connections: u64 },
    /// `{len}L{fields}`: one page of a list, the answer to `g y h v`.
    Page(Page),
    /// `{len}!{reason}`: the command was well formed but not carried out (`j`, `J`).
    Refused(Refusal),
    /// `{len}@{epoch}:{offset}`: a topic's position, the answer to `Y` and `G`; `0@` for a
    /// topic without history.
    Position(Option<crate::resume::Position>),
}

impl Reply {
    /// Wire bytes of `Reply::Error`.
    pub const ERROR_BYTES: &'static [u8] = b"0E";
    /// Wire bytes of `Reply::Ping`, the idle-connection ping.
    pub const PING_BYTES: &'static [u8] = b"0p";
    /// Wire bytes of `Reply::Pong`.
    pub const PONG_BYTES: &'static [u8] = b"0P";
    /// Wire bytes of `Reply::FragmentAck`.
    pub const FRAGMENT_ACK_BYTES: &'static [u8] = b"0a";
    /// Wire bytes of `Reply::FragmentNack`.
    pub const FRAGMENT_NACK_BYTES: &'static [u8] = b"0n";
    /// The byte of `Count` and `TopicCount`.
    pub const COUNT_BYTE: u8 = b'#';
    /// The byte of `Page`.
    pub const PAGE_BYTE: u8 = b'L';
    /// The byte of `Refused`.
    pub const REFUSED_BYTE: u8 = b'!';
    /// The byte of `Position`.
    pub const POSITION_BYTE: u8 = b'@';

    /// The byte that names this reply on the wire.
    pub fn command_byte(&self) -> u8 {
        match self {
            Reply::Ack(_) => b'A',
            Reply::Nack(_) => b'N',
            Reply::FragmentAck => b'a',
            Reply::FragmentNack => b'n',
            Reply::Domain(_) => b'M',
            Reply::Ping => b'p',
            Reply::Pong => b'P',
            Reply::Status(_) => b'T',
            Reply::Error => b'E',
            Reply::Count(_) | Reply::TopicCount { .. } => Reply::COUNT_BYTE,
            Reply::Page(_) => Reply::PAGE_BYTE,
            Reply::Refused(_) => Reply::REFUSED_BYTE,
            Reply::Position(_) => Reply::POSITION_BYTE,
        }
    }

    /// Appends `32A{token}`, `32N{token}`, `0a`, `0n`, `{len}M{domain}`, `0p`, `0P`,
    /// `{len}T{json}`, `0E`, `{len}#{numbers}`, `{len}L{fields}` or `{len}!{reason}` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let command = self.command_byte();
        let payload: &[u8] = match self {
            Reply::Ack(token) | Reply::Nack(token) => token.as_bytes(),
            Reply::Domain(text) | Reply::Status(text) => text.as_bytes(),
            Reply::FragmentAck | Reply::FragmentNack | Reply::Ping | Reply::Pong | Reply::Error => {
                &[]
            }
            Reply::Count(count) => {
                return codec::encode(command, Decimal::new(*count).as_bytes(), out);
            }
            Reply::TopicCount { users, connections } => {
                let users = Decimal::new(*users);
                let connections = Decimal::new(*connections);
                let (users, connections) = (users.as_bytes(), connections.as_bytes());
                let len = users
                    .len()
                    .saturating_add(1)
                    .saturating_add(connections.len());
                codec::encode_header(command, len, out);
                out.extend_from_slice(users);
                out.push(b' ');
                out.extend_from_slice(connections);
                return;
            }
            Reply::Page(page) => return page.encode(out),
            Reply::Refused(refusal) => refusal.reason().as_bytes(),
            Reply::Position(None) => &[],
            Reply::Position(Some(position)) => {
                let text = format!("{}:{}", position.epoch, position.offset);
                return codec::encode(command, text.as_bytes(), out);
            }
        };
        codec::encode(command, payload, out);
    }

    /// Reads a frame wson sent, as a backend does (for tests and clients); `None` for a byte
    /// that is no reply (events `e` and authorization requests `z` have their own parsers)
    /// or a payload the reply never has.
    pub fn decode(frame: RawFrame<'_>) -> Option<Reply> {
        let RawFrame { command, payload } = frame;
        let empty = |reply| payload.is_empty().then_some(reply);
        let text = || String::from_utf8(payload.to_vec()).ok();
        match command {
            b'A' => Token::from_slice(payload).map(Reply::Ack),
            b'N' => Token::from_slice(payload).map(Reply::Nack),
            b'a' => empty(Reply::FragmentAck),
            b'n' => empty(Reply::FragmentNack),
            b'M' => text().map(Reply::Domain),
            b'p' => empty(Reply::Ping),
            b'P' => empty(Reply::Pong),
            b'T' => text().map(Reply::Status),
            b'E' => empty(Reply::Error),
            Reply::COUNT_BYTE => {
                let mut numbers = payload.split(|byte| *byte == b' ').map(decimal);
                match (numbers.next(), numbers.next(), numbers.next()) {
                    (Some(count), None, None) => count.map(Reply::Count),
                    (Some(users), Some(connections), None) => Some(Reply::TopicCount {
                        users: users?,
                        connections: connections?,
                    }),
                    _ => None,
                }
            }
            Reply::PAGE_BYTE => Page::parse(payload).map(Reply::Page),
            Reply::REFUSED_BYTE => Refusal::from_reason(payload).map(Reply::Refused),
            Reply::POSITION_BYTE if payload.is_empty() => Some(Reply::Position(None)),
            Reply::POSITION_BYTE => {
                let text = std::str::from_utf8(payload).ok()?;
                let (epoch, offset) = text.rsplit_once(':')?;
                let valid = !epoch.is_empty()
                    && epoch.len() <= crate::resume::MAX_EPOCH_LEN
                    && epoch
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'));
                let offset = decimal(offset.as_bytes())?;
                valid.then(|| {
                    Reply::Position(Some(crate::resume::Position {
                        epoch: epoch.to_owned(),
                        offset,
                    }))
                })
            }
            _ => None,
        }
    }

    /// What the backend sees for a protocol error: always `0E`, then the server closes the
    /// connection. Exhaustive, so a new error variant must be given its answer here.
    pub fn from_error(error: &ControlError) -> Reply {
        match error {
            ControlError::NotADigit { .. }
            | ControlError::EmptyLength { .. }
            | ControlError::LengthTooLong { .. }
            | ControlError::FrameTooLarge { .. }
            | ControlError::UnknownCommand { .. }
            | ControlError::ShortToken { .. }
            | ControlError::LockPayload { .. }
            | ControlError::InvalidUtf8 { .. }
            | ControlError::FieldSyntax { .. }
            | ControlError::TooManyFields { .. }
            | ControlError::MissingField { .. }
            | ControlError::BadUser { .. }
            | ControlError::BadToken { .. }
            | ControlError::BadTopic { .. }
            | ControlError::BadCode { .. }
            | ControlError::BadReason { .. }
            | ControlError::BadNumber { .. }
            | ControlError::BadCursor { .. }
            | ControlError::BadKind { .. }
            | ControlError::BadGroup { .. }
            | ControlError::UnknownEventKind { .. }
            | ControlError::RepeatedEventKind { .. }
            | ControlError::BadDecision { .. }
            | ControlError::BadStatus { .. }
            | ControlError::AllowWithoutUser { .. }
            | ControlError::BadWampMessage { .. }
            | ControlError::BadPublishOptions { .. }
            | ControlError::BadSubscribeOptions { .. } => Reply::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::authorizer::AuthRequest;
    use crate::control::event::{self, Event, EventKind};
    use crate::control::fields::FieldError;
    use crate::control::topic::TopicError;

    #[test]
    fn text_pushes_must_be_utf8_but_binary_ones_need_not() {
        let bad = b"ok\xff";
        assert_eq!(
            parse(RawFrame {
                command: b'b',
                payload: bad
            }),
            Err(ControlError::InvalidUtf8 {
                command: b'b',
                offset: 2
            })
        );
        assert!(
            parse(RawFrame {
                command: b'B',
                payload: bad
            })
            .is_ok()
        );
        let mut direct = [b'a'; 32].to_vec();
        direct.extend_from_slice(bad);
        assert_eq!(
            parse(RawFrame {
                command: b'c',
                payload: &direct
            }),
            Err(ControlError::InvalidUtf8 {
                command: b'c',
                offset: 2
            })
        );
        assert!(
            parse(RawFrame {
                command: b'D',
                payload: &direct
            })
            .is_ok()
        );
        assert_eq!(
            Reply::from_error(&ControlError::InvalidUtf8 {
                command: b'd',
                offset: 0
            }),
            Reply::Error
        );
    }
    use crate::decoded::Decoded;
    use proptest::prelude::*;

    const MAX: usize = 65_536;
    /// The token of wson's README examples (it happens to start with "32").
    const TOKEN: &[u8; 32] = b"32febad1f0cf83f38aceb31ad63866c4";

    fn token() -> Token {
        Token::from_array(*TOKEN)
    }

    /// Decodes and parses exactly one frame that fills `input`.
    fn command(input: &[u8]) -> Result<Command<'_>, ControlError> {
        match codec::decode(input, MAX)? {
            Decoded::Done { item, len } => {
                assert_eq!(len, input.len(), "one frame must fill {input:?}");
                parse(item)
            }
            Decoded::Incomplete => panic!("incomplete: {input:?}"),
        }
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn reply_bytes(reply: &Reply) -> Vec<u8> {
        let mut out = Vec::new();
        reply.encode(&mut out);
        out
    }

    /// A command with its token made visible (Token's Debug is redacted on purpose) and its
    /// borrowed bytes copied, so results from different buffers compare.
    #[derive(Debug, PartialEq, Eq)]
    struct Seen {
        command: String,
        token: Option<Vec<u8>>,
    }

    fn seen(command: &Command<'_>) -> Seen {
        let token = match command {
            Command::Direct { token, .. }
            | Command::Lock { token }
            | Command::Kick {
                target: Target::Token(token),
                ..
            }
            | Command::Subscribe {
                target: Target::Token(token),
                ..
            }
            | Command::Unsubscribe {
                target: Target::Token(token),
                ..
            } => Some(token.as_bytes().to_vec()),
            _ => None,
        };
        Seen {
            command: format!("{command:?}"),
            token,
        }
    }

    /// The server's read loop in small: buffer each chunk, decode and parse until
    /// `Incomplete`; stop at the first error.
    fn commands_from_chunks(chunks: &[&[u8]]) -> (Vec<Seen>, Option<ControlError>) {
        let mut buffer = Vec::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buffer.extend_from_slice(chunk);
            loop {
                let (parsed, len) = match codec::decode(&buffer, MAX) {
                    Ok(Decoded::Done { item, len }) => (parse(item), len),
                    Ok(Decoded::Incomplete) => break,
                    Err(error) => return (out, Some(error)),
                };
                match parsed {
                    Ok(command) => out.push(seen(&command)),
                    Err(error) => return (out, Some(error)),
                }
                buffer.drain(..len);
            }
        }
        (out, None)
    }

    fn assert_same_at_every_split(input: &[u8]) -> (Vec<Seen>, Option<ControlError>) {
        let whole = commands_from_chunks(&[input]);
        for cut in 0..=input.len() {
            let (head, tail) = input.split_at(cut);
            assert_eq!(commands_from_chunks(&[head, tail]), whole, "cut at {cut}");
            for second in cut..=input.len() {
                let (middle, end) = tail.split_at(second - cut);
                assert_eq!(
                    commands_from_chunks(&[head, middle, end]),
                    whole,
                    "cuts at {cut} and {second}"
                );
            }
        }
        whole
    }

    // wson README examples, one per command.

    #[test]
    fn b_is_text_broadcast() {
        assert_eq!(
            command(b"15bHello, World!!!"),
            Ok(Command::Broadcast {
                binary: false,
                message: b"Hello, World!!!"
            })
        );
    }

    #[test]
    fn upper_b_is_binary_broadcast() {
        let input = cat(&[b"10B", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff]]);
        assert_eq!(
            command(&input),
            Ok(Command::Broadcast {
                binary: true,
                message: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff]
            })
        );
    }

    #[test]
    fn c_is_confirmed_text_direct_with_token_first() {
        let input: &[u8] = b"38c32febad1f0cf83f38aceb31ad63866c4Direct";
        assert_eq!(
            command(input),
            Ok(Command::Direct {
                confirm: true,
                binary: false,
                token: token(),
                message: b"Direct"
            })
        );
    }

    #[test]
    fn upper_c_is_confirmed_binary_direct() {
        let input: &[u8] = b"34C32febad1f0cf83f38aceb31ad63866c4\x00\xFF";
        assert_eq!(
            command(input),
            Ok(Command::Direct {
                confirm: true,
                binary: true,
                token: token(),
                message: b"\x00\xFF"
            })
        );
    }

    #[test]
    fn c_with_only_a_token_is_an_online_check() {
        let input: &[u8] = b"32c32febad1f0cf83f38aceb31ad63866c4";
        assert_eq!(
            command(input),
            Ok(Command::Direct {
                confirm: true,
                binary: false,
                token: token(),
                message: b""
            })
        );
    }

    #[test]
    fn d_is_unconfirmed_text_direct() {
        let input: &[u8] = b"44d32febad1f0cf83f38aceb31ad63866c4New message!";
        assert_eq!(
            command(input),
            Ok(Command::Direct {
                confirm: false,
                binary: false,
                token: token(),
                message: b"New message!"
            })
        );
    }

    #[test]
    fn upper_d_is_unconfirmed_binary_direct() {
        let input: &[u8] = b"33D32febad1f0cf83f38aceb31ad63866c4\xFF";
        assert_eq!(
            command(input),
            Ok(Command::Direct {
                confirm: false,
                binary: true,
                token: token(),
                message: b"\xFF"
            })
        );
    }

    #[test]
    fn l_locks_by_token() {
        let input: &[u8] = b"32l32febad1f0cf83f38aceb31ad63866c4";
        assert_eq!(command(input), Ok(Command::Lock { token: token() }));
        assert!(matches!(command(input), Ok(Command::Lock { token }) if token.as_bytes() == TOKEN));
    }

    #[test]
    fn f_and_upper_f_open_a_fragmented_message() {
        assert_eq!(
            command(b"5fHello"),
            Ok(Command::Fragment {
                position: FragmentPosition::First,
                binary: false,
                message: b"Hello"
            })
        );
        assert_eq!(
            command(b"1F\xff"),
            Ok(Command::Fragment {
                position: FragmentPosition::First,
                binary: true,
                message: b"\xff"
            })
        );
    }

    #[test]
    fn i_and_upper_i_continue_it_keeping_the_case() {
        assert_eq!(
            command(b"2i, "),
            Ok(Command::Fragment {
                position: FragmentPosition::Middle,
                binary: false,
                message: b", "
            })
        );
        let input = cat(&[b"10I", &[0; 10]]);
        assert_eq!(
            command(&input),
            Ok(Command::Fragment {
                position: FragmentPosition::Middle,
                binary: true,
                message: &[0; 10]
            })
        );
    }

    #[test]
    fn s_and_upper_s_end_it() {
        assert_eq!(
            command(b"6sWorld!"),
            Ok(Command::Fragment {
                position: FragmentPosition::Last,
                binary: false,
                message: b"World!"
            })
        );
        assert_eq!(
            command(b"5S\x01\x02\x03\x04\x05"),
            Ok(Command::Fragment {
                position: FragmentPosition::Last,
                binary: true,
                message: b"\x01\x02\x03\x04\x05"
            })
        );
    }

    #[test]
    fn payloadless_commands() {
        assert_eq!(command(b"0m"), Ok(Command::Domain));
        assert_eq!(command(b"0p"), Ok(Command::Ping));
        assert_eq!(command(b"0P"), Ok(Command::Pong));
        assert_eq!(command(b"0q"), Ok(Command::Quit));
        assert_eq!(command(b"0Q"), Ok(Command::Quit));
        assert_eq!(command(b"0t"), Ok(Command::Status));
    }

    #[test]
    fn payload_of_a_payloadless_command_is_ignored_as_in_wson() {
        assert_eq!(command(b"3pabc"), Ok(Command::Ping));
        assert_eq!(command(b"1t{"), Ok(Command::Status));
    }

    // One test per error the command layer adds.

    #[test]
    fn unknown_command_byte_is_unknown_command() {
        assert_eq!(
            command(b"0~"),
            Err(ControlError::UnknownCommand { byte: b'~' })
        );
        // Reply-only bytes are not commands either (`e` and `z` are both: a listener's and
        // an authorizer's commands, and wson's event and request frames).
        for byte in *b"AaNnMETL#!" {
            let input = [b'0', byte];
            assert_eq!(command(&input), Err(ControlError::UnknownCommand { byte }));
        }
        assert_eq!(
            command(b"2\x00hi"),
            Err(ControlError::UnknownCommand { byte: 0 })
        );
    }

    #[test]
    fn direct_shorter_than_a_token_is_short_token() {
        for byte in *b"cCdD" {
            let input = cat(&[b"31", &[byte], &TOKEN[..31]]);
            assert_eq!(
                command(&input),
                Err(ControlError::ShortToken {
                    command: byte,
                    len: 31
                })
            );
        }
        assert_eq!(
            command(b"0c"),
            Err(ControlError::ShortToken {
                command: b'c',
                len: 0
            })
        );
    }

    #[test]
    fn lock_payload_other_than_a_token_is_lock_payload() {
        assert_eq!(
            command(&cat(&[b"31l", &TOKEN[..31]])),
            Err(ControlError::LockPayload { len: 31 })
        );
        assert_eq!(
            command(&cat(&[b"33l", TOKEN, b"x"])),
            Err(ControlError::LockPayload { len: 33 })
        );
        assert_eq!(command(b"0l"), Err(ControlError::LockPayload { len: 0 }));
    }

    #[test]
    fn every_error_is_answered_0e() {
        let errors = [
            ControlError::NotADigit { byte: b' ' },
            ControlError::EmptyLength { command: b'b' },
            ControlError::LengthTooLong { digits: 21 },
            ControlError::FrameTooLarge {
                len: 99_999,
                max: MAX,
            },
            ControlError::UnknownCommand { byte: b'x' },
            ControlError::ShortToken {
                command: b'c',
                len: 3,
            },
            ControlError::LockPayload { len: 3 },
        ];
        for error in &errors {
            assert_eq!(Reply::from_error(error), Reply::Error, "{error}");
        }
        assert_eq!(reply_bytes(&Reply::Error), b"0E");
    }

    #[test]
    fn codec_errors_come_through_the_same_path() {
        assert_eq!(
            command(b"bHello"),
            Err(ControlError::EmptyLength { command: b'b' })
        );
    }

    // Replies.

    #[test]
    fn replies_have_wsons_bytes() {
        assert_eq!(
            reply_bytes(&Reply::Ack(token())),
            b"32A32febad1f0cf83f38aceb31ad63866c4"
        );
        assert_eq!(
            reply_bytes(&Reply::Nack(token())),
            b"32N32febad1f0cf83f38aceb31ad63866c4"
        );
        assert_eq!(reply_bytes(&Reply::FragmentAck), b"0a");
        assert_eq!(reply_bytes(&Reply::FragmentNack), b"0n");
        assert_eq!(
            reply_bytes(&Reply::Domain("ws1.example.com".into())),
            b"15Mws1.example.com"
        );
        assert_eq!(reply_bytes(&Reply::Ping), b"0p");
        assert_eq!(reply_bytes(&Reply::Pong), b"0P");
        assert_eq!(
            reply_bytes(&Reply::Status(r#"{"pid":1}"#.into())),
            br#"9T{"pid":1}"#
        );
        assert_eq!(reply_bytes(&Reply::Error), b"0E");
    }

    #[test]
    fn reply_consts_match_their_encoding() {
        assert_eq!(reply_bytes(&Reply::Error), Reply::ERROR_BYTES);
        assert_eq!(reply_bytes(&Reply::Ping), Reply::PING_BYTES);
        assert_eq!(reply_bytes(&Reply::Pong), Reply::PONG_BYTES);
        assert_eq!(reply_bytes(&Reply::FragmentAck), Reply::FRAGMENT_ACK_BYTES);
        assert_eq!(
            reply_bytes(&Reply::FragmentNack),
            Reply::FRAGMENT_NACK_BYTES
        );
    }

    #[test]
    fn multibyte_domain_length_counts_bytes() {
        assert_eq!(
            reply_bytes(&Reply::Domain("é.example".into())),
            "10Mé.example".as_bytes()
        );
    }

    // Streams.

    #[test]
    fn fragmented_send_session_is_the_same_at_every_split() {
        let input = cat(&[
            b"32l",
            TOKEN,
            b"5fHello2i, 6sWorld!",
            b"15bHello, World!!!",
            b"38c",
            TOKEN,
            b"Direct0p0m0t0P0q",
        ]);
        let (commands, error) = assert_same_at_every_split(&input);
        assert_eq!(error, None);
        let bytes: Vec<&str> = commands
            .iter()
            .map(|seen| seen.command.split([' ', '{']).next().unwrap_or(""))
            .collect();
        assert_eq!(
            bytes,
            [
                "Lock",
                "Fragment",
                "Fragment",
                "Fragment",
                "Broadcast",
                "Direct",
                "Ping",
                "Domain",
                "Status",
                "Pong",
                "Quit"
            ]
        );
        assert_eq!(commands[0].token.as_deref(), Some(&TOKEN[..]));
        assert_eq!(commands[5].token.as_deref(), Some(&TOKEN[..]));
    }

    #[test]
    fn every_wson_example_stream_is_the_same_at_every_split() {
        let input = cat(&[
            b"15bHello, World!!!",
            b"10B\x00\x01\x02\x03\x04\x05\x06\x07\x08\xff",
            b"34C32febad1f0cf83f38aceb31ad63866c4\x00\xFF",
            b"44d32febad1f0cf83f38aceb31ad63866c4New message!",
            b"33D32febad1f0cf83f38aceb31ad63866c4\xFF",
            b"1F\xff10I\x00\x00\x00\x00\x00\x00\x00\x00\x00\x005S\x01\x02\x03\x04\x05",
            b"0Q",
        ]);
        let (commands, error) = assert_same_at_every_split(&input);
        assert_eq!(error, None);
        assert_eq!(commands.len(), 9);
    }

    #[test]
    fn stream_stops_at_its_first_error_at_every_split() {
        let input = cat(&[b"0p32l", TOKEN, b"31c", &TOKEN[..31], b"0p"]);
        let (commands, error) = assert_same_at_every_split(&input);
        assert_eq!(commands.len(), 2);
        assert_eq!(
            error,
            Some(ControlError::ShortToken {
                command: b'c',
                len: 31
            })
        );

        let (commands, error) = assert_same_at_every_split(b"0p2~hi0p");
        assert_eq!(commands.len(), 1);
        assert_eq!(error, Some(ControlError::UnknownCommand { byte: b'~' }));
    }

    // Property tests.

    fn build<'a>(
        kind: u8,
        flag_a: bool,
        flag_b: bool,
        token: [u8; TOKEN_LEN],
        message: &'a [u8],
    ) -> Command<'a> {
        let position = match (flag_a, flag_b) {
            (true, _) => FragmentPosition::First,
            (false, true) => FragmentPosition::Middle,
            (false, false) => FragmentPosition::Last,
        };
        match kind {
            0 => Command::Broadcast {
                binary: flag_a,
                message,
            },
            1 => Command::Direct {
                confirm: flag_a,
                binary: flag_b,
                token: Token::from_array(token),
                message,
            },
            2 => Command::Lock {
                token: Token::from_array(token),
            },
            3 => Command::Fragment {
                position,
                binary: flag_b,
                message,
            },
            4 => Command::Domain,
            5 => Command::Ping,
            6 => Command::Pong,
            7 => Command::Quit,
            _ => Command::Status,
        }
    }

    proptest! {
        #[test]
        fn command_encode_then_decode_round_trips(
            kind in 0_u8..9,
            flag_a in any::<bool>(),
            flag_b in any::<bool>(),
            token in any::<[u8; TOKEN_LEN]>(),
            message in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let original = build(kind, flag_a, flag_b, token, &message);
            let mut buf = Vec::new();
            original.encode(&mut buf);
            let Decoded::Done { item, len } = codec::decode(&buf, MAX).unwrap() else {
                panic!("incomplete");
            };
            prop_assert_eq!(len, buf.len());
            let whole_text = matches!(
                original,
                Command::Broadcast { binary: false, .. } | Command::Direct { binary: false, .. }
            );
            if whole_text && std::str::from_utf8(&message).is_err() {
                let refused = matches!(parse(item), Err(ControlError::InvalidUtf8 { .. }));
                prop_assert!(refused);
                return Ok(());
            }
            let parsed = parse(item).unwrap();
            prop_assert_eq!(parsed, original);
            prop_assert_eq!(seen(&parsed), seen(&original));
            if let Command::Direct { token: parsed_token, .. } | Command::Lock { token: parsed_token } = parsed {
                prop_assert_eq!(parsed_token.as_bytes(), &token);
            }
        }

        #[test]
        fn reply_encode_then_decode_round_trips(
            kind in 0_u8..9,
            token in any::<[u8; TOKEN_LEN]>(),
            text in ".{0,200}",
        ) {
            let token = Token::from_array(token);
            let reply = match kind {
                0 => Reply::Ack(token),
                1 => Reply::Nack(token),
                2 => Reply::FragmentAck,
                3 => Reply::FragmentNack,
                4 => Reply::Domain(text.clone()),
                5 => Reply::Ping,
                6 => Reply::Pong,
                7 => Reply::Status(text.clone()),
                _ => Reply::Error,
            };
            let bytes = reply_bytes(&reply);
            let Decoded::Done { item, len } = codec::decode(&bytes, MAX).unwrap() else {
                panic!("incomplete");
            };
            prop_assert_eq!(len, bytes.len());
            prop_assert_eq!(item.command, reply.command_byte());
            let expected: &[u8] = match &reply {
                Reply::Ack(token) | Reply::Nack(token) => token.as_bytes(),
                Reply::Domain(text) | Reply::Status(text) => text.as_bytes(),
                _ => b"",
            };
            prop_assert_eq!(item.payload, expected);
        }

        #[test]
        fn parse_never_panics(command in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..80)) {
            let result = parse(RawFrame { command, payload: &payload });
            if let Ok(parsed) = result {
                prop_assert_eq!(parsed.command_byte() == command, !matches!(command, b'Q'));
            }
        }

        #[test]
        fn decode_and_parse_never_panic_and_ignore_splits(
            input in proptest::collection::vec(
                prop_oneof![3 => b'0'..=b'9', 3 => proptest::sample::select(b"bBcCdDlfFiIsSmpPqQtuUwWogykKjJrRxXhHvezZOG:".to_vec()), 1 => any::<u8>()],
                0..80),
            cut in any::<prop::sample::Index>(),
        ) {
            let whole = commands_from_chunks(&[&input]);
            let (head, tail) = input.split_at(cut.index(input.len() + 1));
            prop_assert_eq!(commands_from_chunks(&[head, tail]), whole);
        }
    }

    // Issue 10: commands made of fields.

    /// `{len}{command}{fields}`.
    fn fields_frame(command: u8, fields: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        fields::encode_fields_frame(command, fields, &mut out);
        out
    }

    fn at(number: usize, name: &'static str) -> FieldAt {
        FieldAt { number, name }
    }

    fn news() -> Topic<'static> {
        Topic::parse(b"news.sport").unwrap()
    }

    /// Encodes `expected`, checks the bytes are `input`, and that `input` parses to it.
    fn assert_command(input: &[u8], expected: Command<'_>) {
        assert_eq!(command(input), Ok(expected), "{input:?}");
        let mut out = Vec::new();
        expected.encode(&mut out);
        assert_eq!(
            out,
            input,
            "{expected:?} encodes to {:?}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn u_and_w_send_to_every_connection_of_a_user() {
        assert_command(
            b"18u5:alice9:New order",
            Command::ToUser {
                confirm: false,
                binary: false,
                user: "alice",
                message: b"New order",
            },
        );
        assert_command(
            b"11U5:alice2:\x00\xff",
            Command::ToUser {
                confirm: false,
                binary: true,
                user: "alice",
                message: b"\x00\xff",
            },
        );
        assert_command(
            b"14w5:alice5:Hello",
            Command::ToUser {
                confirm: true,
                binary: false,
                user: "alice",
                message: b"Hello",
            },
        );
        assert_command(
            b"8W3:bob1:\xff",
            Command::ToUser {
                confirm: true,
                binary: true,
                user: "bob",
                message: b"\xff",
            },
        );
        // An empty message is sent as one; the field is still required.
        assert_command(
            b"7u3:bob0:",
            Command::ToUser {
                confirm: false,
                binary: false,
                user: "bob",
                message: b"",
            },
        );
        assert_eq!(
            command(b"5u3:bob"),
            Err(ControlError::MissingField {
                command: b'u',
                field: at(2, "message")
            })
        );
        assert_eq!(
            command(b"8w3:bob1:\xff"),
            Err(ControlError::InvalidUtf8 {
                command: b'w',
                offset: 0
            })
        );
    }

    #[test]
    fn o_g_y_ask_about_users() {
        assert_command(b"7o5:alice", Command::UserOnline { user: "alice" });
        assert_command(
            b"7g5:alice",
            Command::UserTokens {
                user: "alice",
                page: PageRequest::FIRST,
            },
        );
        assert_command(
            b"45g5:alice32:32febad1f0cf83f38aceb31ad63866c41:1",
            Command::UserTokens {
                user: "alice",
                page: PageRequest {
                    cursor: TOKEN,
                    limit: NonZeroUsize::new(1),
                },
            },
        );
        assert_command(
            b"0y",
            Command::OnlineUsers {
                page: PageRequest::FIRST,
            },
        );
        assert_command(
            b"7y5:alice",
            Command::OnlineUsers {
                page: PageRequest {
                    cursor: b"alice",
                    limit: None,
                },
            },
        );
        assert_command(
            b"7y0:3:100",
            Command::OnlineUsers {
                page: PageRequest {
                    cursor: b"",
                    limit: NonZeroUsize::new(100),
                },
            },
        );
        // Left out and empty are the same; leading zeros are accepted.
        assert_eq!(command(b"4y0:0:"), command(b"0y"));
        assert_eq!(command(b"6y0:2:07"), command(b"5y0:1:7"));
    }

    #[test]
    fn page_limit_is_lowered_to_the_configured_page() {
        let page = |limit| PageRequest {
            cursor: b"",
            limit: NonZeroUsize::new(limit),
        };
        assert_eq!(PageRequest::FIRST.limit_within(1000), 1000);
        assert_eq!(page(5).limit_within(1000), 5);
        assert_eq!(page(5000).limit_within(1000), 1000);
        assert_eq!(PageRequest::FIRST.limit_within(0), 1);
        // A limit past usize (but within 20 digits) is as large as it gets.
        assert_eq!(
            command(b"25y0:20:99999999999999999999"),
            Err(ControlError::BadNumber {
                command: b'y',
                field: at(2, "limit"),
                expected: "a decimal number of at least 1"
            })
        );
        assert_eq!(
            command(b"25y0:20:18446744073709551615"),
            Ok(Command::OnlineUsers {
                page: PageRequest {
                    cursor: b"",
                    limit: NonZeroUsize::new(usize::try_from(u64::MAX).unwrap_or(usize::MAX))
                }
            })
        );
    }

    #[test]
    fn k_and_upper_k_kick_with_defaults() {
        assert_command(
            b"35k32:32febad1f0cf83f38aceb31ad63866c4",
            Command::Kick {
                target: Target::Token(token()),
                code: DEFAULT_KICK_CODE,
                reason: DEFAULT_KICK_REASON,
            },
        );
        assert_command(
            b"21K5:alice4:40086:banned",
            Command::Kick {
                target: Target::User("alice"),
                code: 4008,
                reason: "banned",
            },
        );
        assert_command(
            b"17K5:alice0:6:logout",
            Command::Kick {
                target: Target::User("alice"),
                code: 4000,
                reason: "logout",
            },
        );
        // Explicit defaults are the defaults (and re-encode without them).
        assert_eq!(command(b"21K5:alice4:40006:kicked"), command(b"7K5:alice"));
        assert_eq!(command(b"11K5:alice0:0:"), command(b"7K5:alice"));
        // Every code that may be sent, but 1010.
        for code in [1000_u16, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
            let digits = code.to_string();
            let input = fields_frame(b'K', &[b"a", digits.as_bytes()]);
            assert!(
                matches!(command(&input), Ok(Command::Kick { code: parsed, .. }) if parsed == code),
                "{code}"
            );
        }
    }

    #[test]
    fn j_upper_j_r_upper_r_subscribe_and_unsubscribe() {
        assert_command(
            b"48j32:32febad1f0cf83f38aceb31ad63866c410:news.sport",
            Command::Subscribe {
                target: Target::Token(token()),
                topic: news(),
                options: b"",
            },
        );
        assert_command(
            b"20J5:alice10:news.sport",
            Command::Subscribe {
                target: Target::User("alice"),
                topic: news(),
                options: b"",
            },
        );
        assert_command(
            b"48r32:32febad1f0cf83f38aceb31ad63866c410:news.sport",
            Command::Unsubscribe {
                target: Target::Token(token()),
                topic: news(),
            },
        );
        assert_command(
            b"20R5:alice10:news.sport",
            Command::Unsubscribe {
                target: Target::User("alice"),
                topic: news(),
            },
        );
    }

    #[test]
    fn j_and_upper_j_take_subscribe_options_as_a_third_field() {
        assert_command(
            b"44J5:alice10:news.sport21:{\"get_retained\":true}",
            Command::Subscribe {
                target: Target::User("alice"),
                topic: news(),
                options: br#"{"get_retained":true}"#,
            },
        );
        assert_command(
            b"72j32:32febad1f0cf83f38aceb31ad63866c410:news.sport21:{\"get_retained\":true}",
            Command::Subscribe {
                target: Target::Token(token()),
                topic: news(),
                options: br#"{"get_retained":true}"#,
            },
        );
        // An empty options field is none, and re-encodes without it.
        assert_eq!(
            command(b"22J5:alice10:news.sport0:"),
            command(b"20J5:alice10:news.sport")
        );
        // The parser only asks for UTF-8; what the JSON says is the server's to judge.
        assert!(matches!(
            command(b"25J5:alice10:news.sport3:{x}"),
            Ok(Command::Subscribe {
                options: b"{x}",
                ..
            })
        ));
        assert_eq!(
            command(b"24J5:alice10:news.sport2:\xff{"),
            Err(ControlError::InvalidUtf8 {
                command: b'J',
                offset: 0
            })
        );
        // One field more than j/J take; r/R take no options.
        assert_eq!(
            command(b"27J5:alice10:news.sport2:{}1:x"),
            Err(ControlError::TooManyFields {
                command: b'J',
                max: 3
            })
        );
        assert_eq!(
            command(b"24R5:alice10:news.sport2:{}"),
            Err(ControlError::TooManyFields {
                command: b'R',
                max: 2
            })
        );
    }

    #[test]
    fn x_and_upper_x_publish() {
        assert_command(
            b"20x10:news.sport5:Goal!",
            Command::Publish {
                binary: false,
                topic: news(),
                message: b"Goal!",
                options: b"",
            },
        );
        assert_command(
            b"17X10:news.sport2:\x00\xff",
            Command::Publish {
                binary: true,
                topic: news(),
                message: b"\x00\xff",
                options: b"",
            },
        );
        assert_command(
            b"48X10:news.sport2:\x00\xff28:{\"exclude_authid\":[\"alice\"]}",
            Command::Publish {
                binary: true,
                topic: news(),
                message: b"\x00\xff",
                options: br#"{"exclude_authid":["alice"]}"#,
            },
        );
        assert_eq!(
            command(b"19x10:news.sport0:2:\xff\xfe"),
            Err(ControlError::InvalidUtf8 {
                command: b'x',
                offset: 0
            })
        );
        assert_eq!(
            command(b"17x10:news.sport2:\x00\xff"),
            Err(ControlError::InvalidUtf8 {
                command: b'x',
                offset: 1
            })
        );
    }

    #[test]
    fn h_upper_h_v_ask_about_topics() {
        assert_command(
            b"13h10:news.sport",
            Command::Subscribers {
                topic: news(),
                page: PageRequest::FIRST,
            },
        );
        assert_command(
            b"23h10:news.sport5:alice1:2",
            Command::Subscribers {
                topic: news(),
                page: PageRequest {
                    cursor: b"alice",
                    limit: NonZeroUsize::new(2),
                },
            },
        );
        assert_command(
            b"13H10:news.sport",
            Command::SubscriberCount { topic: news() },
        );
        assert_command(
            b"0v",
            Command::Topics {
                page: PageRequest::FIRST,
            },
        );
    }

    #[test]
    fn e_listens_with_a_group_and_kinds() {
        assert_command(
            b"0e",
            Command::Listen {
                group: None,
                kinds: EventKinds::ALL,
            },
        );
        assert_command(
            b"18e7:workers7:message",
            Command::Listen {
                group: Some("workers"),
                kinds: EventKinds::NONE.with(EventKind::Message),
            },
        );
        assert_command(
            b"15e0:10:join,leave",
            Command::Listen {
                group: None,
                kinds: EventKinds::NONE
                    .with(EventKind::Join)
                    .with(EventKind::Leave),
            },
        );
        // Kinds are a set: any order parses, the encoding lists them in one order.
        assert_eq!(
            command(b"15e0:10:leave,join"),
            command(b"15e0:10:join,leave")
        );
        let longest = "a".repeat(MAX_GROUP_LEN);
        let input = fields_frame(b'e', &[longest.as_bytes()]);
        assert_eq!(
            command(&input),
            Ok(Command::Listen {
                group: Some(&longest),
                kinds: EventKinds::ALL
            })
        );
        assert!(command(b"15e12:a-b_c.D-0.9Z").is_ok());
    }

    #[test]
    fn upper_o_flushes_every_sessions_authorizations_or_one_authids() {
        assert_command(b"0O", Command::FlushAuthorizations { authid: None });
        assert_command(
            b"7O5:alice",
            Command::FlushAuthorizations {
                authid: Some("alice"),
            },
        );
        // Left out and empty are the same: every session.
        assert_eq!(command(b"2O0:"), command(b"0O"));
        // An authid is any UTF-8, longer than a cookie user may be too.
        let long = "é".repeat(MAX_USER_LEN);
        assert_eq!(
            command(&fields_frame(b'O', &[long.as_bytes()])),
            Ok(Command::FlushAuthorizations {
                authid: Some(&long)
            })
        );
        assert_eq!(
            command(b"5O3:a\xffb"),
            Err(ControlError::InvalidUtf8 {
                command: b'O',
                offset: 1
            })
        );
        assert_eq!(
            command(b"12O5:alice3:bob"),
            Err(ControlError::TooManyFields {
                command: b'O',
                max: 1
            })
        );
        assert_eq!(
            command(b"5Oalice"),
            Err(ControlError::FieldSyntax {
                command: b'O',
                field: 1,
                error: FieldError::NotADigit {
                    offset: 0,
                    byte: b'a'
                }
            })
        );
    }

    #[test]
    fn z_registers_an_authorizer_and_ignores_its_payload() {
        assert_command(b"0z", Command::Authorizer);
        assert_command(
            br#"25V[16,1,{},"news.sport",[]]"#,
            Command::Wamp {
                message: br#"[16,1,{},"news.sport",[]]"#,
            },
        );
        assert_eq!(
            command(b"2V\xff["),
            Err(ControlError::InvalidUtf8 {
                command: b'V',
                offset: 0
            })
        );
        assert_eq!(command(b"3zabc"), Ok(Command::Authorizer));
    }

    #[test]
    fn upper_z_allows_or_denies() {
        let topics = fields::to_payload(&[b"news.sport"]);
        assert_command(
            b"25Z1:75:allow0:10:news.sport",
            Command::Authorize {
                id: 7,
                decision: Decision::Allow {
                    user: None,
                    topics: TopicList::parse(&topics).unwrap(),
                },
            },
        );
        assert_command(
            b"10Z1:85:allow",
            Command::Authorize {
                id: 8,
                decision: Decision::Allow {
                    user: None,
                    topics: TopicList::EMPTY,
                },
            },
        );
        assert_command(
            b"15Z1:85:allow3:bob",
            Command::Authorize {
                id: 8,
                decision: Decision::Allow {
                    user: Some("bob"),
                    topics: TopicList::EMPTY,
                },
            },
        );
        assert_command(
            b"30Z1:94:deny3:40313:not your room",
            Command::Authorize {
                id: 9,
                decision: Decision::Deny {
                    status: 403,
                    reason: "not your room",
                },
            },
        );
        assert_command(
            b"15Z2:104:deny3:503",
            Command::Authorize {
                id: 10,
                decision: Decision::Deny {
                    status: 503,
                    reason: "",
                },
            },
        );
        // An empty user is the same as none.
        assert_eq!(command(b"12Z1:85:allow0:"), command(b"10Z1:85:allow"));
        // Several topics, iterated in order.
        let input = fields_frame(b'Z', &[b"1", b"allow", b"bob", b"a", b"b.c", b"a"]);
        let Ok(Command::Authorize {
            decision: Decision::Allow { user, topics },
            ..
        }) = command(&input)
        else {
            panic!("not an allow");
        };
        assert_eq!(user, Some("bob"));
        let names: Vec<&str> = topics.iter().map(|topic| topic.as_str()).collect();
        assert_eq!(names, ["a", "b.c", "a"]);
    }

    // One test per ControlError a fields command can give.

    #[test]
    fn malformed_fields_are_field_syntax_naming_the_field() {
        assert_eq!(
            command(b"5ohello"),
            Err(ControlError::FieldSyntax {
                command: b'o',
                field: 1,
                error: FieldError::NotADigit {
                    offset: 0,
                    byte: b'h'
                }
            })
        );
        assert_eq!(
            command(b"9x1:a5Goal!"),
            Err(ControlError::FieldSyntax {
                command: b'x',
                field: 2,
                error: FieldError::MissingColon {
                    offset: 3,
                    found: Some(b'G')
                }
            })
        );
        // The usual mistake: a length that forgets the digits and colons.
        assert_eq!(
            command(b"19x10:news.sport5:Goal"),
            Err(ControlError::FieldSyntax {
                command: b'x',
                field: 2,
                error: FieldError::PastTheEnd {
                    offset: 13,
                    declared: 5,
                    left: 4
                }
            })
        );
        let input = cat(&[b"22y", &[b'0'; 21], b":"]);
        assert_eq!(
            command(&input),
            Err(ControlError::FieldSyntax {
                command: b'y',
                field: 1,
                error: FieldError::LengthTooLong { offset: 0 }
            })
        );
        // A malformed extra field is a syntax error, not "too many fields".
        assert_eq!(
            command(b"8o5:alicex"),
            Err(ControlError::FieldSyntax {
                command: b'o',
                field: 2,
                error: FieldError::NotADigit {
                    offset: 7,
                    byte: b'x'
                }
            })
        );
    }

    #[test]
    fn extra_fields_are_too_many_fields() {
        assert_eq!(
            command(b"9o5:alice0:"),
            Err(ControlError::TooManyFields {
                command: b'o',
                max: 1
            })
        );
        assert_eq!(
            command(b"7y0:0:1:x"),
            Err(ControlError::TooManyFields {
                command: b'y',
                max: 2
            })
        );
        assert_eq!(
            command(b"18Z1:94:deny3:4030:0:"),
            Err(ControlError::TooManyFields {
                command: b'Z',
                max: 4
            })
        );
    }

    #[test]
    fn left_out_required_fields_are_missing_field() {
        let cases: [(&[u8], u8, FieldAt); 8] = [
            (b"0u", b'u', at(1, "user")),
            (b"0o", b'o', at(1, "user")),
            (b"0k", b'k', at(1, "token")),
            (b"0J", b'J', at(1, "user")),
            (b"7J5:alice", b'J', at(2, "topic")),
            (b"0H", b'H', at(1, "topic")),
            (b"3Z1:7", b'Z', at(2, "decision")),
            (b"9Z1:74:deny", b'Z', at(3, "status")),
        ];
        for (input, command_byte, field) in cases {
            assert_eq!(
                command(input),
                Err(ControlError::MissingField {
                    command: command_byte,
                    field
                }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn user_not_1_to_255_bytes_of_utf8_is_bad_user() {
        let long = "u".repeat(MAX_USER_LEN + 1);
        let longest = "u".repeat(MAX_USER_LEN);
        for (user, ok) in [
            (&b""[..], false),
            (b"\xff", false),
            (long.as_bytes(), false),
            (longest.as_bytes(), true),
            ("é".as_bytes(), true),
        ] {
            let input = fields_frame(b'o', &[user]);
            let expected = if ok {
                Ok(Command::UserOnline {
                    user: std::str::from_utf8(user).unwrap(),
                })
            } else {
                Err(ControlError::BadUser {
                    command: b'o',
                    field: at(1, "user"),
                    len: user.len(),
                })
            };
            assert_eq!(command(&input), expected, "{user:?}");
        }
        // The user of an allow too (empty is allowed there: keep the cookie's).
        assert_eq!(
            command(&fields_frame(b'Z', &[b"1", b"allow", b"\xff"])),
            Err(ControlError::BadUser {
                command: b'Z',
                field: at(3, "user"),
                len: 1
            })
        );
    }

    #[test]
    fn token_not_32_bytes_is_bad_token() {
        for (command_byte, len) in [(b'k', 31), (b'j', 33), (b'r', 0)] {
            let token = vec![b'a'; len];
            let input = fields_frame(command_byte, &[&token, b"news"]);
            let input = if command_byte == b'k' {
                fields_frame(command_byte, &[&token])
            } else {
                input
            };
            assert_eq!(
                command(&input),
                Err(ControlError::BadToken {
                    command: command_byte,
                    field: at(1, "token"),
                    len
                })
            );
        }
    }

    #[test]
    fn invalid_topics_are_bad_topic() {
        let cases: [(&[u8], TopicError); 5] = [
            (b"", TopicError::Empty),
            (b"news..sport", TopicError::EmptyComponent { offset: 5 }),
            (b"news sport", TopicError::Whitespace { offset: 4 }),
            (b"news.#", TopicError::Hash { offset: 5 }),
            (b"wamp.session.on_join", TopicError::Reserved),
        ];
        for (topic, error) in cases {
            assert_eq!(
                command(&fields_frame(b'x', &[topic, b"m"])),
                Err(ControlError::BadTopic {
                    command: b'x',
                    field: at(1, "topic"),
                    error
                }),
                "{topic:?}"
            );
        }
        assert_eq!(
            command(&fields_frame(b'J', &[b"alice", &[b'a'; 256]])),
            Err(ControlError::BadTopic {
                command: b'J',
                field: at(2, "topic"),
                error: TopicError::TooLong { len: 256, max: 255 }
            })
        );
        assert_eq!(
            command(&fields_frame(b'Z', &[b"1", b"allow", b"", b"a", b"a b"])),
            Err(ControlError::BadTopic {
                command: b'Z',
                field: at(5, "topic"),
                error: TopicError::Whitespace { offset: 1 }
            })
        );
    }

    #[test]
    fn configured_topic_length_is_checked_by_check_topic_len() {
        let input = fields_frame(b'Z', &[b"1", b"allow", b"", b"ab", b"abcd"]);
        let parsed = command(&input).unwrap();
        assert_eq!(parsed.check_topic_len(4), Ok(()));
        assert_eq!(
            parsed.check_topic_len(3),
            Err(ControlError::BadTopic {
                command: b'Z',
                field: at(5, "topic"),
                error: TopicError::TooLong { len: 4, max: 3 }
            })
        );
        let parsed = command(b"20x10:news.sport5:Goal!").unwrap();
        assert!(parsed.check_topic_len(10).is_ok());
        assert!(matches!(
            parsed.check_topic_len(9),
            Err(ControlError::BadTopic {
                field: FieldAt { number: 1, .. },
                ..
            })
        ));
        let parsed = command(b"20J5:alice10:news.sport").unwrap();
        assert!(matches!(
            parsed.check_topic_len(9),
            Err(ControlError::BadTopic {
                field: FieldAt { number: 2, .. },
                ..
            })
        ));
        assert_eq!(command(b"0y").unwrap().check_topic_len(1), Ok(()));
    }

    #[test]
    fn close_code_wson_may_not_send_is_bad_code() {
        for code in [
            0_u64, 999, 1004, 1005, 1006, 1010, 1015, 2999, 5000, 65_535, 65_536,
        ] {
            let digits = code.to_string();
            assert_eq!(
                command(&fields_frame(b'K', &[b"alice", digits.as_bytes()])),
                Err(ControlError::BadCode {
                    command: b'K',
                    field: at(2, "code"),
                    code
                }),
                "{code}"
            );
        }
        assert_eq!(
            command(&fields_frame(b'K', &[b"alice", b"4000 "])),
            Err(ControlError::BadNumber {
                command: b'K',
                field: at(2, "code"),
                expected: "a decimal close code"
            })
        );
    }

    #[test]
    fn reason_not_utf8_or_over_123_bytes_is_bad_reason() {
        let longest = "r".repeat(MAX_REASON_LEN);
        assert!(command(&fields_frame(b'K', &[b"alice", b"", longest.as_bytes()])).is_ok());
        let long = "r".repeat(MAX_REASON_LEN + 1);
        assert_eq!(
            command(&fields_frame(b'K', &[b"alice", b"", long.as_bytes()])),
            Err(ControlError::BadReason {
                command: b'K',
                field: at(3, "reason"),
                len: 124,
                not_utf8_at: None
            })
        );
        assert_eq!(
            command(&fields_frame(b'Z', &[b"1", b"deny", b"403", b"no\xff"])),
            Err(ControlError::BadReason {
                command: b'Z',
                field: at(4, "reason"),
                len: 3,
                not_utf8_at: Some(2)
            })
        );
    }

    #[test]
    fn numbers_out_of_rule_are_bad_number() {
        let limit = |digits: &[u8]| command(&fields_frame(b'v', &[b"", digits])).map(|_| ());
        let bad_limit: Result<(), ControlError> = Err(ControlError::BadNumber {
            command: b'v',
            field: at(2, "limit"),
            expected: "a decimal number of at least 1",
        });
        for digits in [&b"0"[..], b"000", b"-1", b"+1", b"1.0", b" 1", b"1e3"] {
            assert_eq!(limit(digits), bad_limit, "{digits:?}");
        }
        assert_eq!(limit(&[b'1'; 21]), bad_limit);
        assert!(limit(b"00000000000000000001").is_ok());
        assert_eq!(
            command(&fields_frame(b'Z', &[b"x", b"deny", b"403"])),
            Err(ControlError::BadNumber {
                command: b'Z',
                field: at(1, "id"),
                expected: "a decimal request id"
            })
        );
        assert_eq!(
            command(&fields_frame(b'Z', &[b"1", b"deny", b""])),
            Err(ControlError::BadNumber {
                command: b'Z',
                field: at(3, "status"),
                expected: "a decimal HTTP status"
            })
        );
    }

    #[test]
    fn cursor_over_255_bytes_is_bad_cursor() {
        assert!(command(&fields_frame(b'h', &[b"t", &[0xff; 255]])).is_ok());
        assert_eq!(
            command(&fields_frame(b'h', &[b"t", &[0xff; 256]])),
            Err(ControlError::BadCursor {
                command: b'h',
                field: at(2, "cursor"),
                len: 256
            })
        );
    }

    #[test]
    fn group_out_of_its_charset_or_length_is_bad_group() {
        let long = "g".repeat(MAX_GROUP_LEN + 1);
        for group in [long.as_bytes(), b"a b", b"a,b", "é".as_bytes(), b"a\x00"] {
            assert_eq!(
                command(&fields_frame(b'e', &[group])),
                Err(ControlError::BadGroup {
                    command: b'e',
                    field: at(1, "group"),
                    len: group.len()
                }),
                "{group:?}"
            );
        }
    }

    #[test]
    fn unknown_or_repeated_event_kinds_are_refused() {
        assert_eq!(
            command(b"19e0:14:message,typing"),
            Err(ControlError::UnknownEventKind {
                command: b'e',
                field: at(2, "kinds"),
                offset: 8
            })
        );
        assert_eq!(
            command(b"18e0:13:message, join"),
            Err(ControlError::UnknownEventKind {
                command: b'e',
                field: at(2, "kinds"),
                offset: 8
            })
        );
        assert_eq!(
            command(b"20e0:15:message,message"),
            Err(ControlError::RepeatedEventKind {
                command: b'e',
                field: at(2, "kinds"),
                kind: EventKind::Message
            })
        );
    }

    #[test]
    fn decision_other_than_allow_or_deny_is_bad_decision() {
        for decision in [&b""[..], b"Allow", b"yes", b"allow "] {
            assert_eq!(
                command(&fields_frame(b'Z', &[b"1", decision])),
                Err(ControlError::BadDecision {
                    command: b'Z',
                    field: at(2, "decision")
                }),
                "{decision:?}"
            );
        }
    }

    #[test]
    fn deny_status_outside_400_to_599_is_bad_status() {
        for status in [0_u64, 200, 399, 600, 65_536] {
            let digits = status.to_string();
            assert_eq!(
                command(&fields_frame(b'Z', &[b"1", b"deny", digits.as_bytes()])),
                Err(ControlError::BadStatus {
                    command: b'Z',
                    field: at(3, "status"),
                    status
                }),
                "{status}"
            );
        }
        assert!(command(&fields_frame(b'Z', &[b"1", b"deny", b"400"])).is_ok());
        assert!(command(&fields_frame(b'Z', &[b"1", b"deny", b"599"])).is_ok());
    }

    /// One of each error variant, for the properties every error shares.
    fn every_error() -> Vec<ControlError> {
        vec![
            ControlError::NotADigit { byte: b' ' },
            ControlError::EmptyLength { command: b'b' },
            ControlError::LengthTooLong { digits: 21 },
            ControlError::FrameTooLarge {
                len: 99_999,
                max: MAX,
            },
            ControlError::UnknownCommand { byte: b'\x1b' },
            ControlError::ShortToken {
                command: b'c',
                len: 3,
            },
            ControlError::LockPayload { len: 3 },
            ControlError::InvalidUtf8 {
                command: b'x',
                offset: 1,
            },
            ControlError::FieldSyntax {
                command: b'x',
                field: 2,
                error: FieldError::NotADigit {
                    offset: 3,
                    byte: b'\n',
                },
            },
            ControlError::TooManyFields {
                command: b'o',
                max: 1,
            },
            ControlError::MissingField {
                command: b'u',
                field: at(2, "message"),
            },
            ControlError::BadUser {
                command: b'o',
                field: at(1, "user"),
                len: 0,
            },
            ControlError::BadToken {
                command: b'k',
                field: at(1, "token"),
                len: 31,
            },
            ControlError::BadTopic {
                command: b'j',
                field: at(2, "topic"),
                error: TopicError::Reserved,
            },
            ControlError::BadCode {
                command: b'K',
                field: at(2, "code"),
                code: 1010,
            },
            ControlError::BadReason {
                command: b'K',
                field: at(3, "reason"),
                len: 124,
                not_utf8_at: None,
            },
            ControlError::BadReason {
                command: b'Z',
                field: at(4, "reason"),
                len: 3,
                not_utf8_at: Some(2),
            },
            ControlError::BadNumber {
                command: b'y',
                field: at(2, "limit"),
                expected: "a decimal number of at least 1",
            },
            ControlError::BadCursor {
                command: b'y',
                field: at(1, "cursor"),
                len: 256,
            },
            ControlError::BadGroup {
                command: b'e',
                field: at(1, "group"),
                len: 65,
            },
            ControlError::UnknownEventKind {
                command: b'e',
                field: at(2, "kinds"),
                offset: 0,
            },
            ControlError::RepeatedEventKind {
                command: b'e',
                field: at(2, "kinds"),
                kind: EventKind::Join,
            },
            ControlError::BadDecision {
                command: b'Z',
                field: at(2, "decision"),
            },
            ControlError::BadStatus {
                command: b'Z',
                field: at(3, "status"),
                status: 200,
            },
            ControlError::AllowWithoutUser { id: 7 },
        ]
    }

    #[test]
    fn every_new_error_is_answered_0e_in_one_printable_ascii_line() {
        for error in every_error() {
            assert_eq!(Reply::from_error(&error), Reply::Error, "{error}");
            let text = error.to_string();
            assert!(
                text.chars().all(|c| c == ' ' || c.is_ascii_graphic()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn errors_never_print_the_token() {
        let input = cat(&[b"34k31:", &TOKEN[..31]]);
        let error = command(&input).unwrap_err();
        assert!(
            !error
                .to_string()
                .contains(std::str::from_utf8(&TOKEN[..31]).unwrap())
        );
        assert!(!format!("{error:?}").contains("32febad1f0cf83f38aceb31ad63866c"));
    }

    // Issue 10: replies.

    #[test]
    fn counts_are_decimal_numbers_separated_by_a_space() {
        assert_eq!(reply_bytes(&Reply::Count(3)), b"1#3");
        assert_eq!(reply_bytes(&Reply::Count(0)), b"1#0");
        assert_eq!(reply_bytes(&Reply::Count(1234)), b"4#1234");
        assert_eq!(
            reply_bytes(&Reply::TopicCount {
                users: 2,
                connections: 5
            }),
            b"3#2 5"
        );
        assert_eq!(
            reply_bytes(&Reply::TopicCount {
                users: 10,
                connections: 125
            }),
            b"6#10 125"
        );
    }

    #[test]
    fn refusals_have_their_exact_texts() {
        assert_eq!(
            reply_bytes(&Reply::Refused(Refusal::TopicLimitPerConnection)),
            b"34!topic limit per connection reached"
        );
        assert_eq!(
            reply_bytes(&Reply::Refused(Refusal::TopicLimit)),
            b"19!topic limit reached"
        );
        assert_eq!(
            reply_bytes(&Reply::Refused(Refusal::UserSubscriptionLimit)),
            b"31!user subscription limit reached"
        );
        for refusal in Refusal::ALL {
            assert_eq!(
                Refusal::from_reason(refusal.reason().as_bytes()),
                Some(refusal)
            );
            assert!(refusal.reason().is_ascii());
        }
    }

    #[test]
    fn page_is_cursor_then_name_count_pairs() {
        let page = Page {
            next_cursor: b"bob".to_vec(),
            items: vec![(b"alice".to_vec(), 2), (b"bob".to_vec(), 1)],
        };
        assert_eq!(
            reply_bytes(&Reply::Page(page.clone())),
            b"23L3:bob5:alice1:23:bob1:1"
        );
        assert_eq!(reply_bytes(&Reply::Page(Page::default())), b"2L0:");
        assert_eq!(Page::parse(b"3:bob5:alice1:23:bob1:1"), Some(page));
        assert_eq!(Page::parse(b""), None, "no cursor");
        assert_eq!(Page::parse(b"0:5:alice"), None, "no count");
        assert_eq!(Page::parse(b"0:5:alice1:x"), None, "count not decimal");
    }

    #[test]
    fn encode_page_takes_limit_items_and_sets_the_cursor_when_more_remain() {
        let index: [(&[u8], u64); 3] = [(b"alice", 2), (b"bob", 1), (b"carol", 3)];
        let page = |items: &[(&[u8], u64)], limit| {
            let mut out = Vec::new();
            encode_page(items.iter().copied(), limit, &mut out);
            out
        };
        assert_eq!(page(&index, 2), b"23L3:bob5:alice1:23:bob1:1");
        assert_eq!(page(&index, 3), b"30L0:5:alice1:23:bob1:15:carol1:3");
        assert_eq!(page(&index, 1000), page(&index, 3));
        assert_eq!(page(&index[1..], 1), b"13L3:bob3:bob1:1");
        assert_eq!(page(&index[2..], 1), b"12L0:5:carol1:3");
        assert_eq!(page(&[], 10), b"2L0:");
        // A limit of 0 cannot be asked for; it is taken as 1.
        assert_eq!(page(&index, 0), page(&index, 1));
        // The owned form encodes the same bytes.
        let owned = Page {
            next_cursor: b"bob".to_vec(),
            items: vec![(b"alice".to_vec(), 2), (b"bob".to_vec(), 1)],
        };
        assert_eq!(reply_bytes(&Reply::Page(owned)), page(&index, 2));
    }

    #[test]
    fn decode_reads_every_reply_back() {
        let replies = [
            Reply::Ack(token()),
            Reply::Nack(token()),
            Reply::FragmentAck,
            Reply::FragmentNack,
            Reply::Domain("ws1.example.com".into()),
            Reply::Ping,
            Reply::Pong,
            Reply::Status("{}".into()),
            Reply::Error,
            Reply::Count(7),
            Reply::TopicCount {
                users: 1,
                connections: 2,
            },
            Reply::Page(Page {
                next_cursor: vec![],
                items: vec![(b"news".to_vec(), 3)],
            }),
            Reply::Refused(Refusal::TopicLimit),
            Reply::Position(None),
            Reply::Position(Some(crate::resume::Position {
                epoch: "1a2b3c4d-1".to_owned(),
                offset: 42,
            })),
        ];
        for reply in replies {
            let bytes = reply_bytes(&reply);
            let Ok(Decoded::Done { item, .. }) = codec::decode(&bytes, MAX) else {
                panic!("{bytes:?}");
            };
            assert_eq!(Reply::decode(item), Some(reply));
        }
        let decode = |command, payload| Reply::decode(RawFrame { command, payload });
        assert_eq!(decode(b'#', b""), None);
        assert_eq!(decode(b'#', b"1 2 3"), None);
        assert_eq!(decode(b'#', b"1  2"), None);
        assert_eq!(decode(b'!', b"nope"), None);
        assert_eq!(decode(b'a', b"x"), None);
        assert_eq!(decode(b'e', b""), None);
        assert_eq!(decode(b'@', b"1a2b3c4d-1"), None);
        assert_eq!(decode(b'@', b"XY:1"), None);
        assert_eq!(decode(b'@', b"ab:"), None);
    }

    #[test]
    fn upper_y_kind_says_text_or_binary_and_text_must_be_utf8() {
        let news = Topic::parse(b"news").unwrap();
        let publish = |binary, message| Command::PublishAt {
            binary,
            topic: news,
            message,
            options: b"",
        };
        assert_eq!(command(b"10Y4:news2:hi"), Ok(publish(false, b"hi")));
        assert_eq!(command(b"16Y4:news2:hi4:text"), Ok(publish(false, b"hi")));
        assert_eq!(
            command(b"18Y4:news2:\xff\x006:binary"),
            Ok(publish(true, b"\xff\x00"))
        );
        assert!(matches!(
            command(b"16Y4:news2:hi4:json"),
            Err(ControlError::BadKind { command: b'Y', .. })
        ));
        assert!(matches!(
            command(b"10Y4:news2:\xff\x00"),
            Err(ControlError::InvalidUtf8 { command: b'Y', .. })
        ));
        assert_eq!(command(b"6G4:news"), Ok(Command::Position { topic: news }));
        assert!(matches!(
            command(b"2G0:"),
            Err(ControlError::BadTopic { command: b'G', .. })
        ));
    }

    #[test]
    fn new_command_stream_is_the_same_at_every_split() {
        let input = cat(&[
            b"7o5:alice",
            b"20x10:news.sport5:Goal!",
            b"48j32:",
            TOKEN,
            b"10:news.sport",
            b"0y0e0z",
            b"15Z1:85:allow3:bob",
            b"0O7O5:alice",
        ]);
        let (commands, error) = assert_same_at_every_split(&input);
        assert_eq!(error, None);
        assert_eq!(commands.len(), 9);
        assert_eq!(commands[2].token.as_deref(), Some(&TOKEN[..]));
        let (commands, error) = assert_same_at_every_split(b"0y9x1:a5Goal!0y");
        assert_eq!(commands.len(), 1);
        assert!(matches!(error, Some(ControlError::FieldSyntax { .. })));
    }

    // COMMANDS.md: every example is checked against the codec, so the document cannot drift.

    /// `\xHH` is one byte; everything else stands for itself (COMMANDS.md, Notation).
    fn unescape(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = text.as_bytes();
        while let Some((&first, tail)) = rest.split_first() {
            if let [b'\\', b'x', high, low, after @ ..] = rest {
                let hex = std::str::from_utf8(&[*high, *low]).unwrap().to_owned();
                out.push(u8::from_str_radix(&hex, 16).unwrap());
                rest = after;
            } else {
                out.push(first);
                rest = tail;
            }
        }
        out
    }

    /// The `->` and `<-` lines of COMMANDS.md's code blocks, in order, without the arrow.
    fn documented_exchanges() -> Vec<(bool, String)> {
        let doc = include_str!("../../COMMANDS.md");
        let mut in_block = false;
        let mut lines = Vec::new();
        for line in doc.split('\n') {
            if line.starts_with("```") {
                in_block = !in_block;
                continue;
            }
            if !in_block {
                continue;
            }
            if let Some(sent) = line.strip_prefix("-> ") {
                lines.push((true, sent.to_owned()));
            } else if let Some(received) = line.strip_prefix("<- ") {
                lines.push((false, received.to_owned()));
            }
        }
        lines
    }

    /// Every `->` line is frames that parse and encode back to exactly those bytes, except
    /// the last frame of a line answered `<- 0E`, which must not parse. Every `<-` line is
    /// one frame that decodes as a reply, an event or an authorization request and encodes
    /// back to exactly its bytes.
    #[test]
    fn every_example_of_commands_md_is_byte_exact() {
        let lines = documented_exchanges();
        assert!(lines.len() > 60, "only {} example lines found", lines.len());
        let mut new_commands = std::collections::BTreeSet::new();
        let mut new_replies = std::collections::BTreeSet::new();
        for (index, (sent, text)) in lines.iter().enumerate() {
            let bytes = unescape(text);
            if *sent {
                let refused = lines
                    .get(index + 1)
                    .is_some_and(|(sent, next)| !sent && next == "0E");
                let mut rest = &bytes[..];
                loop {
                    let decoded = codec::decode(rest, MAX).map_err(|error| error.to_string());
                    let parsed = match decoded {
                        Ok(Decoded::Done { item, len }) => parse(item)
                            .map(|parsed| (parsed, len))
                            .map_err(|error| error.to_string()),
                        Ok(Decoded::Incomplete) => Err("incomplete".to_owned()),
                        Err(error) => Err(error),
                    };
                    match parsed {
                        Ok((parsed, len)) => {
                            let mut again = Vec::new();
                            parsed.encode(&mut again);
                            assert_eq!(
                                String::from_utf8_lossy(&again),
                                String::from_utf8_lossy(&rest[..len]),
                                "-> {text}"
                            );
                            new_commands.insert(parsed.command_byte());
                            rest = &rest[len..];
                            if rest.is_empty() {
                                assert!(!refused, "-> {text} parses, but the doc answers 0E");
                                break;
                            }
                        }
                        Err(error) => {
                            assert!(refused, "-> {text}: {error}");
                            break;
                        }
                    }
                }
            } else {
                let Ok(Decoded::Done { item, len }) = codec::decode(&bytes, usize::MAX) else {
                    panic!("<- {text} is not one frame");
                };
                assert_eq!(len, bytes.len(), "<- {text} is not exactly one frame");
                let mut again = Vec::new();
                match item.command {
                    event::EVENT_BYTE => Event::parse(item.payload)
                        .unwrap_or_else(|| panic!("<- {text} is not an event"))
                        .encode(&mut again),
                    authorizer::REQUEST_BYTE => AuthRequest::parse(item.payload)
                        .unwrap_or_else(|| panic!("<- {text} is not an authorization request"))
                        .encode(&mut again),
                    crate::control::wamp::WAMP_BYTE => {
                        let message = crate::wamp::Serializer::Json
                            .decode(item.payload, 32)
                            .unwrap_or_else(|error| panic!("<- {text} is not WAMP: {error}"));
                        crate::control::wamp::encode_frame(&message, &mut again);
                    }
                    _ => Reply::decode(item)
                        .unwrap_or_else(|| panic!("<- {text} is not a reply"))
                        .encode(&mut again),
                }
                assert_eq!(
                    String::from_utf8_lossy(&again),
                    String::from_utf8_lossy(&bytes),
                    "<- {text}"
                );
                new_replies.insert(item.command);
            }
        }
        // Every command and reply of issue 10 has at least one example.
        let commands: std::collections::BTreeSet<u8> =
            b"uUwWogykKjJrRxXhHvezZVO".iter().copied().collect();
        let missing: Vec<char> = commands
            .difference(&new_commands)
            .map(|b| char::from(*b))
            .collect();
        assert!(
            missing.is_empty(),
            "commands without an example: {missing:?}"
        );
        let replies: std::collections::BTreeSet<u8> = b"#L!ezV".iter().copied().collect();
        let missing: Vec<char> = replies
            .difference(&new_replies)
            .map(|b| char::from(*b))
            .collect();
        assert!(
            missing.is_empty(),
            "replies without an example: {missing:?}"
        );
    }

    // Issue 10: properties.

    /// A valid fields command from drawn parts.
    #[allow(clippy::too_many_arguments)]
    fn build_fields_command<'a>(
        kind: u8,
        flag: bool,
        user: &'a str,
        topic: Topic<'a>,
        message: &'a [u8],
        cursor: &'a [u8],
        limit: Option<NonZeroUsize>,
        code: u16,
        reason: &'a str,
        number: u64,
        kinds: u8,
        topics: TopicList<'a>,
    ) -> Command<'a> {
        let target = if flag {
            Target::User(user)
        } else {
            Target::Token(token())
        };
        let page = PageRequest { cursor, limit };
        let kinds = EventKind::ALL
            .into_iter()
            .enumerate()
            .filter(|(index, _)| kinds & (1 << index) != 0)
            .fold(EventKinds::NONE, |kinds, (_, kind)| kinds.with(kind));
        let kinds = if kinds == EventKinds::NONE {
            EventKinds::ALL
        } else {
            kinds
        };
        match kind {
            0 => Command::ToUser {
                confirm: flag,
                binary: true,
                user,
                message,
            },
            1 => Command::UserOnline { user },
            2 => Command::UserTokens { user, page },
            3 => Command::OnlineUsers { page },
            4 => Command::Kick {
                target,
                code,
                reason,
            },
            5 => Command::Subscribe {
                target,
                topic,
                options: if flag {
                    br#"{"get_retained":true}"#
                } else {
                    b""
                },
            },
            6 => Command::Unsubscribe { target, topic },
            7 => Command::Publish {
                binary: true,
                topic,
                message,
                options: if flag { b"{}" } else { b"" },
            },
            8 => Command::Subscribers { topic, page },
            9 => Command::SubscriberCount { topic },
            10 => Command::Topics { page },
            11 => Command::Listen {
                group: if flag { Some(user) } else { None },
                kinds,
            },
            12 => Command::Authorizer,
            13 => Command::Authorize {
                id: number,
                decision: Decision::Allow {
                    user: flag.then_some(user),
                    topics,
                },
            },
            14 => Command::FlushAuthorizations {
                authid: flag.then_some(user),
            },
            _ => Command::Authorize {
                id: number,
                decision: Decision::Deny {
                    status: 400 + (code % 200),
                    reason,
                },
            },
        }
    }

    proptest! {
        #[test]
        fn fields_command_encode_then_parse_round_trips(
            kind in 0_u8..16,
            flag in any::<bool>(),
            user in "[a-z]{1,12}",
            topic in "[a-z]{1,6}(\\.[a-z0-9_]{1,6}){0,3}",
            message in proptest::collection::vec(any::<u8>(), 0..100),
            cursor in proptest::collection::vec(any::<u8>(), 0..40),
            limit in proptest::option::of(1_usize..100_000),
            code in proptest::sample::select(vec![1000_u16, 1001, 1003, 1008, 1011, 1014, 3000, 4001, 4999]),
            reason in "[a-zA-Z ]{1,40}",
            number in any::<u64>(),
            kinds in any::<u8>(),
            topic_names in proptest::collection::vec("[a-z]{1,5}", 0..4),
        ) {
            let topic = Topic::parse(topic.as_bytes()).unwrap();
            let topic_fields: Vec<&[u8]> = topic_names.iter().map(String::as_bytes).collect();
            let topic_payload = fields::to_payload(&topic_fields);
            let topics = TopicList::parse(&topic_payload).unwrap();
            let original = build_fields_command(
                kind, flag, &user, topic, &message, &cursor,
                limit.and_then(NonZeroUsize::new), code, &reason, number, kinds, topics,
            );
            let mut buf = Vec::new();
            original.encode(&mut buf);
            let Decoded::Done { item, len } = codec::decode(&buf, usize::MAX).unwrap() else {
                panic!("incomplete");
            };
            prop_assert_eq!(len, buf.len());
            let parsed = parse(item).unwrap();
            prop_assert_eq!(parsed, original);
            prop_assert_eq!(seen(&parsed), seen(&original));
            // And encoding again gives the same bytes: the encoding is canonical.
            let mut again = Vec::new();
            parsed.encode(&mut again);
            prop_assert_eq!(again, buf);
        }

        #[test]
        fn whatever_parses_re_encodes_to_an_equal_command(
            command_byte in proptest::sample::select(b"uUwWogykKjJrRxXhHvezZO".to_vec()),
            fields in proptest::collection::vec(
                prop_oneof![
                    Just(Vec::new()),
                    proptest::sample::select(vec![
                        b"alice".to_vec(), b"news.sport".to_vec(), b"1".to_vec(), b"0".to_vec(),
                        b"4000".to_vec(), b"1010".to_vec(), b"allow".to_vec(), b"deny".to_vec(),
                        b"403".to_vec(), b"message,join".to_vec(), b"wamp.x".to_vec(),
                        TOKEN.to_vec(), b"kicked".to_vec(), b"007".to_vec(),
                    ]),
                    proptest::collection::vec(any::<u8>(), 0..8),
                ],
                0..6),
        ) {
            let borrowed: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
            let payload = fields::to_payload(&borrowed);
            match parse(RawFrame { command: command_byte, payload: &payload }) {
                Ok(parsed) => {
                    let mut again = Vec::new();
                    parsed.encode(&mut again);
                    let Decoded::Done { item, .. } = codec::decode(&again, usize::MAX).unwrap() else {
                        panic!("incomplete");
                    };
                    prop_assert_eq!(parse(item), Ok(parsed));
                }
                Err(error) => {
                    prop_assert_eq!(Reply::from_error(&error), Reply::Error);
                    let text = error.to_string();
                    prop_assert!(text.chars().all(|c| c == ' ' || c.is_ascii_graphic()));
                }
            }
        }

        #[test]
        fn new_replies_round_trip(
            count in any::<u64>(),
            users in any::<u64>(),
            cursor in proptest::collection::vec(any::<u8>(), 0..20),
            items in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..20), any::<u64>()), 0..6),
            which in 0_usize..3,
        ) {
            for reply in [
                Reply::Count(count),
                Reply::TopicCount { users, connections: count },
                Reply::Page(Page { next_cursor: cursor.clone(), items: items.clone() }),
                Reply::Refused(Refusal::ALL[which]),
            ] {
                let bytes = reply_bytes(&reply);
                let Decoded::Done { item, len } = codec::decode(&bytes, usize::MAX).unwrap() else {
                    panic!("incomplete");
                };
                prop_assert_eq!(len, bytes.len());
                prop_assert_eq!(Reply::decode(item), Some(reply));
            }
        }
    }
}
