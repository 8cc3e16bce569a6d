//! WAMP v2 messages as values: one variant per message type of the basic and advanced
//! profiles that a router sends or receives, with the fields the spec gives it in order.
//!
//! Ids are `u64` in the spec's range [1, 2^53] (checked when decoding); URIs are checked by
//! the router, which knows whether the realm wants the loose or the strict rules.
//!
//! `Message::from_value` reads a decoded list element by element against the layout in each
//! variant's doc comment; `Message::elements` gives the same layout back, borrowed, for the
//! encoders to write without building a `Value` first.

use crate::wamp::serializer::DecodeError;
use crate::wamp::value::{Dict, Value};

/// The largest WAMP id: "IDs ... MUST be ... between 1 and 2^53 inclusive" (WAMP v2, "IDs").
pub const MAX_ID: u64 = 1 << 53;

/// A message type code (the first element of every message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Hello = 1,
    Welcome = 2,
    Abort = 3,
    Challenge = 4,
    Authenticate = 5,
    Goodbye = 6,
    Error = 8,
    Publish = 16,
    Published = 17,
    Subscribe = 32,
    Subscribed = 33,
    Unsubscribe = 34,
    Unsubscribed = 35,
    Event = 36,
    Call = 48,
    Cancel = 49,
    Result = 50,
    Register = 64,
    Registered = 65,
    Unregister = 66,
    Unregistered = 67,
    Invocation = 68,
    Interrupt = 69,
    Yield = 70,
}

impl MessageType {
    pub fn from_code(code: u64) -> Option<MessageType> {
        Some(match code {
            1 => MessageType::Hello,
            2 => MessageType::Welcome,
            3 => MessageType::Abort,
            4 => MessageType::Challenge,
            5 => MessageType::Authenticate,
            6 => MessageType::Goodbye,
            8 => MessageType::Error,
            16 => MessageType::Publish,
            17 => MessageType::Published,
            32 => MessageType::Subscribe,
            33 => MessageType::Subscribed,
            34 => MessageType::Unsubscribe,
            35 => MessageType::Unsubscribed,
            36 => MessageType::Event,
            48 => MessageType::Call,
            49 => MessageType::Cancel,
            50 => MessageType::Result,
            64 => MessageType::Register,
            65 => MessageType::Registered,
            66 => MessageType::Unregister,
            67 => MessageType::Unregistered,
            68 => MessageType::Invocation,
            69 => MessageType::Interrupt,
            70 => MessageType::Yield,
            _ => return None,
        })
    }

    pub fn code(self) -> u64 {
        self as u64
    }

    pub fn name(self) -> &'static str {
        match self {
            MessageType::Hello => "HELLO",
            MessageType::Welcome => "WELCOME",
            MessageType::Abort => "ABORT",
            MessageType::Challenge => "CHALLENGE",
            MessageType::Authenticate => "AUTHENTICATE",
            MessageType::Goodbye => "GOODBYE",
            MessageType::Error => "ERROR",
            MessageType::Publish => "PUBLISH",
            MessageType::Published => "PUBLISHED",
            MessageType::Subscribe => "SUBSCRIBE",
            MessageType::Subscribed => "SUBSCRIBED",
            MessageType::Unsubscribe => "UNSUBSCRIBE",
            MessageType::Unsubscribed => "UNSUBSCRIBED",
            MessageType::Event => "EVENT",
            MessageType::Call => "CALL",
            MessageType::Cancel => "CANCEL",
            MessageType::Result => "RESULT",
            MessageType::Register => "REGISTER",
            MessageType::Registered => "REGISTERED",
            MessageType::Unregister => "UNREGISTER",
            MessageType::Unregistered => "UNREGISTERED",
            MessageType::Invocation => "INVOCATION",
            MessageType::Interrupt => "INTERRUPT",
            MessageType::Yield => "YIELD",
        }
    }
}

/// The application payload of PUBLISH, EVENT, CALL, INVOCATION, YIELD, RESULT and ERROR.
/// Empty means absent: a message is encoded with `[.., args, kwargs]` when kwargs has
/// entries, `[.., args]` when only args has, and neither otherwise (as Crossbar does).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload {
    pub args: Vec<Value>,
    pub kwargs: Dict,
}

impl Payload {
    pub fn is_empty(&self) -> bool {
        self.args.is_empty() && self.kwargs.is_empty()
    }

    /// About how many bytes the arguments hold in memory (see `Value::heap_size`).
    pub fn heap_size(&self) -> usize {
        self.args
            .iter()
            .fold(self.kwargs.heap_size(), |sum, value| {
                sum.saturating_add(value.heap_size())
            })
    }
}

/// A WAMP v2 message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `[HELLO, Realm|uri, Details|dict]`
    Hello { realm: String, details: Dict },
    /// `[WELCOME, Session|id, Details|dict]`
    Welcome { session: u64, details: Dict },
    /// `[ABORT, Details|dict, Reason|uri]`
    Abort { details: Dict, reason: String },
    /// `[CHALLENGE, AuthMethod|string, Extra|dict]`
    Challenge { method: String, extra: Dict },
    /// `[AUTHENTICATE, Signature|string, Extra|dict]`
    Authenticate { signature: String, extra: Dict },
    /// `[GOODBYE, Details|dict, Reason|uri]`
    Goodbye { details: Dict, reason: String },
    /// `[ERROR, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri, Arguments|list, ArgumentsKw|dict]`
    Error {
        request_type: MessageType,
        request: u64,
        details: Dict,
        error: String,
        payload: Payload,
    },
    /// `[PUBLISH, Request|id, Options|dict, Topic|uri, Arguments|list, ArgumentsKw|dict]`
    Publish {
        request: u64,
        options: Dict,
        topic: String,
        payload: Payload,
    },
    /// `[PUBLISHED, PUBLISH.Request|id, Publication|id]`
    Published { request: u64, publication: u64 },
    /// `[SUBSCRIBE, Request|id, Options|dict, Topic|uri]`
    Subscribe {
        request: u64,
        options: Dict,
        topic: String,
    },
    /// `[SUBSCRIBED, SUBSCRIBE.Request|id, Subscription|id]`
    Subscribed { request: u64, subscription: u64 },
    /// `[UNSUBSCRIBE, Request|id, SUBSCRIBED.Subscription|id]`
    Unsubscribe { request: u64, subscription: u64 },
    /// `[UNSUBSCRIBED, UNSUBSCRIBE.Request|id]`. Some peers add a Details dict as a third
    /// element: decoding accepts and drops it. (The router's own unsubscribe, `[UNSUBSCRIBED,
    /// 0, Details]`, is not sent by wson, and its request 0 is refused like any other.)
    Unsubscribed { request: u64 },
    /// `[EVENT, SUBSCRIBED.Subscription|id, PUBLISHED.Publication|id, Details|dict, Arguments|list, ArgumentsKw|dict]`
    Event {
        subscription: u64,
        publication: u64,
        details: Dict,
        payload: Payload,
    },
    /// `[CALL, Request|id, Options|dict, Procedure|uri, Arguments|list, ArgumentsKw|dict]`
    Call {
        request: u64,
        options: Dict,
        procedure: String,
        payload: Payload,
    },
    /// `[CANCEL, CALL.Request|id, Options|dict]`
    Cancel { request: u64, options: Dict },
    /// `[RESULT, CALL.Request|id, Details|dict, Arguments|list, ArgumentsKw|dict]`
    Result {
        request: u64,
        details: Dict,
        payload: Payload,
    },
    /// `[REGISTER, Request|id, Options|dict, Procedure|uri]`
    Register {
        request: u64,
        options: Dict,
        procedure: String,
    },
    /// `[REGISTERED, REGISTER.Request|id, Registration|id]`
    Registered { request: u64, registration: u64 },
    /// `[UNREGISTER, Request|id, REGISTERED.Registration|id]`
    Unregister { request: u64, registration: u64 },
    /// `[UNREGISTERED, UNREGISTER.Request|id]`
    Unregistered { request: u64 },
    /// `[INVOCATION, Request|id, REGISTERED.Registration|id, Details|dict, CALL.Arguments|list, CALL.ArgumentsKw|dict]`
    Invocation {
        request: u64,
        registration: u64,
        details: Dict,
        payload: Payload,
    },
    /// `[INTERRUPT, INVOCATION.Request|id, Options|dict]`
    Interrupt { request: u64, options: Dict },
    /// `[YIELD, INVOCATION.Request|id, Options|dict, Arguments|list, ArgumentsKw|dict]`
    Yield {
        request: u64,
        options: Dict,
        payload: Payload,
    },
}

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Hello { .. } => MessageType::Hello,
            Message::Welcome { .. } => MessageType::Welcome,
            Message::Abort { .. } => MessageType::Abort,
            Message::Challenge { .. } => MessageType::Challenge,
            Message::Authenticate { .. } => MessageType::Authenticate,
            Message::Goodbye { .. } => MessageType::Goodbye,
            Message::Error { .. } => MessageType::Error,
            Message::Publish { .. } => MessageType::Publish,
            Message::Published { .. } => MessageType::Published,
            Message::Subscribe { .. } => MessageType::Subscribe,
            Message::Subscribed { .. } => MessageType::Subscribed,
            Message::Unsubscribe { .. } => MessageType::Unsubscribe,
            Message::Unsubscribed { .. } => MessageType::Unsubscribed,
            Message::Event { .. } => MessageType::Event,
            Message::Call { .. } => MessageType::Call,
            Message::Cancel { .. } => MessageType::Cancel,
            Message::Result { .. } => MessageType::Result,
            Message::Register { .. } => MessageType::Register,
            Message::Registered { .. } => MessageType::Registered,
            Message::Unregister { .. } => MessageType::Unregister,
            Message::Unregistered { .. } => MessageType::Unregistered,
            Message::Invocation { .. } => MessageType::Invocation,
            Message::Interrupt { .. } => MessageType::Interrupt,
            Message::Yield { .. } => MessageType::Yield,
        }
    }
}

/// The most elements a message has: ERROR with Arguments and ArgumentsKw.
const MAX_ELEMENTS: usize = 7;

/// One element of a message's list, borrowed from the message: what the encoders write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Element<'a> {
    /// The type code, an id or ERROR's request type.
    Uint(u64),
    Str(&'a str),
    Dict(&'a Dict),
    List(&'a [Value]),
}

/// A message's elements in order, without allocating.
#[derive(Debug)]
pub(crate) struct Elements<'a> {
    items: [Element<'a>; MAX_ELEMENTS],
    len: usize,
}

impl<'a> Elements<'a> {
    fn new(message_type: MessageType) -> Elements<'a> {
        Elements {
            items: [Element::Uint(message_type.code()); MAX_ELEMENTS],
            len: 1,
        }
    }

    fn extend<const N: usize>(&mut self, elements: [Element<'a>; N]) {
        for element in elements {
            // Never full: no variant has more than MAX_ELEMENTS elements
            // (`every_layout_fits_and_decodes_back` checks each at its longest).
            if let Some(slot) = self.items.get_mut(self.len) {
                *slot = element;
                self.len += 1;
            }
        }
    }

    /// "Arguments|list" and "ArgumentsKw|dict" are optional, and args must precede kwargs.
    fn payload(&mut self, payload: &'a Payload) {
        if !payload.kwargs.is_empty() {
            self.extend([Element::List(&payload.args), Element::Dict(&payload.kwargs)]);
        } else if !payload.args.is_empty() {
            self.extend([Element::List(&payload.args)]);
        }
    }

    pub(crate) fn as_slice(&self) -> &[Element<'a>] {
        self.items.get(..self.len).unwrap_or(&self.items)
    }
}

impl Message {
    /// The message in a decoded value: a list whose first element is the type code, then the
    /// elements that type has in the spec (see each variant), each of its type.
    pub fn from_value(value: Value) -> Result<Message, DecodeError> {
        let Value::List(items) = value else {
            return Err(DecodeError::NotAMessage);
        };
        let mut items = items.into_iter();
        let code = match items.next() {
            Some(first) => first.as_u64().map_err(|()| DecodeError::NotAMessage)?,
            None => return Err(DecodeError::NotAMessage),
        };
        let message_type = MessageType::from_code(code).ok_or(DecodeError::UnknownType { code })?;
        let mut fields = Fields {
            message: message_type.name(),
            items,
        };
        let f = &mut fields;
        let message = match message_type {
            MessageType::Hello => Message::Hello {
                realm: f.string("Realm")?,
                details: f.dict("Details")?,
            },
            MessageType::Welcome => Message::Welcome {
                session: f.id("Session")?,
                details: f.dict("Details")?,
            },
            MessageType::Abort => Message::Abort {
                details: f.dict("Details")?,
                reason: f.string("Reason")?,
            },
            MessageType::Challenge => Message::Challenge {
                method: f.string("AuthMethod")?,
                extra: f.dict("Extra")?,
            },
            MessageType::Authenticate => Message::Authenticate {
                signature: f.string("Signature")?,
                extra: f.dict("Extra")?,
            },
            MessageType::Goodbye => Message::Goodbye {
                details: f.dict("Details")?,
                reason: f.string("Reason")?,
            },
            MessageType::Error => Message::Error {
                request_type: f.message_type("REQUEST.Type")?,
                request: f.id("REQUEST.Request")?,
                details: f.dict("Details")?,
                error: f.string("Error")?,
                payload: f.payload()?,
            },
            MessageType::Publish => Message::Publish {
                request: f.id("Request")?,
                options: f.dict("Options")?,
                topic: f.string("Topic")?,
                payload: f.payload()?,
            },
            MessageType::Published => Message::Published {
                request: f.id("PUBLISH.Request")?,
                publication: f.id("Publication")?,
            },
            MessageType::Subscribe => Message::Subscribe {
                request: f.id("Request")?,
                options: f.dict("Options")?,
                topic: f.string("Topic")?,
            },
            MessageType::Subscribed => Message::Subscribed {
                request: f.id("SUBSCRIBE.Request")?,
                subscription: f.id("Subscription")?,
            },
            MessageType::Unsubscribe => Message::Unsubscribe {
                request: f.id("Request")?,
                subscription: f.id("SUBSCRIBED.Subscription")?,
            },
            MessageType::Unsubscribed => {
                let request = f.id("UNSUBSCRIBE.Request")?;
                f.optional_dict("Details")?;
                Message::Unsubscribed { request }
            }
            MessageType::Event => Message::Event {
                subscription: f.id("SUBSCRIBED.Subscription")?,
                publication: f.id("PUBLISHED.Publication")?,
                details: f.dict("Details")?,
                payload: f.payload()?,
            },
            MessageType::Call => Message::Call {
                request: f.id("Request")?,
                options: f.dict("Options")?,
                procedure: f.string("Procedure")?,
                payload: f.payload()?,
            },
            MessageType::Cancel => Message::Cancel {
                request: f.id("CALL.Request")?,
                options: f.dict("Options")?,
            },
            MessageType::Result => Message::Result {
                request: f.id("CALL.Request")?,
                details: f.dict("Details")?,
                payload: f.payload()?,
            },
            MessageType::Register => Message::Register {
                request: f.id("Request")?,
                options: f.dict("Options")?,
                procedure: f.string("Procedure")?,
            },
            MessageType::Registered => Message::Registered {
                request: f.id("REGISTER.Request")?,
                registration: f.id("Registration")?,
            },
            MessageType::Unregister => Message::Unregister {
                request: f.id("Request")?,
                registration: f.id("REGISTERED.Registration")?,
            },
            MessageType::Unregistered => Message::Unregistered {
                request: f.id("UNREGISTER.Request")?,
            },
            MessageType::Invocation => Message::Invocation {
                request: f.id("Request")?,
                registration: f.id("REGISTERED.Registration")?,
                details: f.dict("Details")?,
                payload: f.payload()?,
            },
            MessageType::Interrupt => Message::Interrupt {
                request: f.id("INVOCATION.Request")?,
                options: f.dict("Options")?,
            },
            MessageType::Yield => Message::Yield {
                request: f.id("INVOCATION.Request")?,
                options: f.dict("Options")?,
                payload: f.payload()?,
            },
        };
        fields.end()?;
        Ok(message)
    }

    /// The message as the list `from_value` reads (a copy; the encoders do not need it).
    pub fn to_value(&self) -> Value {
        let elements = self.elements();
        Value::List(
            elements
                .as_slice()
                .iter()
                .map(|element| match *element {
                    Element::Uint(u) => Value::from(u),
                    Element::Str(s) => Value::from(s),
                    Element::Dict(d) => Value::Dict(d.clone()),
                    Element::List(items) => Value::List(items.to_vec()),
                })
                .collect(),
        )
    }

    /// The elements of the message's list, in order.
    pub(crate) fn elements(&self) -> Elements<'_> {
        use Element::{Dict as D, Str as S, Uint as U};
        let mut e = Elements::new(self.message_type());
        match self {
            Message::Hello { realm, details } => e.extend([S(realm), D(details)]),
            Message::Welcome { session, details } => e.extend([U(*session), D(details)]),
            Message::Abort { details, reason } => e.extend([D(details), S(reason)]),
            Message::Challenge { method, extra } => e.extend([S(method), D(extra)]),
            Message::Authenticate { signature, extra } => e.extend([S(signature), D(extra)]),
            Message::Goodbye { details, reason } => e.extend([D(details), S(reason)]),
            Message::Error {
                request_type,
                request,
                details,
                error,
                payload,
            } => {
                e.extend([U(request_type.code()), U(*request), D(details), S(error)]);
                e.payload(payload);
            }
            Message::Publish {
                request,
                options,
                topic,
                payload,
            } => {
                e.extend([U(*request), D(options), S(topic)]);
                e.payload(payload);
            }
            Message::Published {
                request,
                publication,
            } => e.extend([U(*request), U(*publication)]),
            Message::Subscribe {
                request,
                options,
                topic,
            } => e.extend([U(*request), D(options), S(topic)]),
            Message::Subscribed {
                request,
                subscription,
            } => e.extend([U(*request), U(*subscription)]),
            Message::Unsubscribe {
                request,
                subscription,
            } => e.extend([U(*request), U(*subscription)]),
            Message::Unsubscribed { request } => e.extend([U(*request)]),
            Message::Event {
                subscription,
                publication,
                details,
                payload,
            } => {
                e.extend([U(*subscription), U(*publication), D(details)]);
                e.payload(payload);
            }
            Message::Call {
                request,
                options,
                procedure,
                payload,
            } => {
                e.extend([U(*request), D(options), S(procedure)]);
                e.payload(payload);
            }
            Message::Cancel { request, options } => e.extend([U(*request), D(options)]),
            Message::Result {
                request,
                details,
                payload,
            } => {
                e.extend([U(*request), D(details)]);
                e.payload(payload);
            }
            Message::Register {
                request,
                options,
                procedure,
            } => e.extend([U(*request), D(options), S(procedure)]),
            Message::Registered {
                request,
                registration,
            } => e.extend([U(*request), U(*registration)]),
            Message::Unregister {
                request,
                registration,
            } => e.extend([U(*request), U(*registration)]),
            Message::Unregistered { request } => e.extend([U(*request)]),
            Message::Invocation {
                request,
                registration,
                details,
                payload,
            } => {
                e.extend([U(*request), U(*registration), D(details)]);
                e.payload(payload);
            }
            Message::Interrupt { request, options } => e.extend([U(*request), D(options)]),
            Message::Yield {
                request,
                options,
                payload,
            } => {
                e.extend([U(*request), D(options)]);
                e.payload(payload);
            }
        }
        e
    }
}

/// The elements of a message after its type code, read in order.
struct Fields {
    message: &'static str,
    items: std::vec::IntoIter<Value>,
}

impl Fields {
    fn bad(&self, field: &'static str) -> DecodeError {
        DecodeError::BadField {
            message: self.message,
            field,
        }
    }

    fn next(&mut self, field: &'static str) -> Result<Value, DecodeError> {
        self.items.next().ok_or_else(|| self.bad(field))
    }

    /// WAMP v2, "IDs": sessions, publications, subscriptions, registrations and requests "are
    /// identified in WAMP using IDs that are integers between (inclusive) 1 and 2^53". A
    /// negative or non-integer id is of the wrong type (`BadField`); an integer outside the
    /// range is `IdOutOfRange`.
    fn id(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let id = match self.next(field)? {
            Value::Integer(i) => u64::try_from(i).map_err(|_| self.bad(field))?,
            Value::Unsigned(u) => u,
            _ => return Err(self.bad(field)),
        };
        if (1..=MAX_ID).contains(&id) {
            Ok(id)
        } else {
            Err(DecodeError::IdOutOfRange {
                message: self.message,
                id,
            })
        }
    }

    fn message_type(&mut self, field: &'static str) -> Result<MessageType, DecodeError> {
        let code = self.next(field)?.as_u64().map_err(|()| self.bad(field))?;
        MessageType::from_code(code).ok_or_else(|| self.bad(field))
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        match self.next(field)? {
            Value::String(s) => Ok(s),
            _ => Err(self.bad(field)),
        }
    }

    fn dict(&mut self, field: &'static str) -> Result<Dict, DecodeError> {
        match self.next(field)? {
            Value::Dict(d) => Ok(d),
            _ => Err(self.bad(field)),
        }
    }

    /// A dict that may end the message, read and dropped.
    fn optional_dict(&mut self, field: &'static str) -> Result<(), DecodeError> {
        match self.items.next() {
            None | Some(Value::Dict(_)) => Ok(()),
            Some(_) => Err(self.bad(field)),
        }
    }

    /// "Arguments|list" then "ArgumentsKw|dict", each optional; kwargs without args is not a
    /// valid message, so a dict where Arguments belongs is a bad Arguments.
    fn payload(&mut self) -> Result<Payload, DecodeError> {
        let args = match self.items.next() {
            None => return Ok(Payload::default()),
            Some(Value::List(args)) => args,
            Some(_) => return Err(self.bad("Arguments")),
        };
        let kwargs = match self.items.next() {
            None => Dict::new(),
            Some(Value::Dict(kwargs)) => kwargs,
            Some(_) => return Err(self.bad("ArgumentsKw")),
        };
        Ok(Payload { args, kwargs })
    }

    /// Elements beyond the spec's are refused.
    fn end(mut self) -> Result<(), DecodeError> {
        match self.items.next() {
            None => Ok(()),
            Some(_) => Err(self.bad("end of list")),
        }
    }
}

/// Messages for tests elsewhere in `wamp`: every variant, payloads absent, args only, kwargs
/// only (after empty args) and both, and every kind of value.
#[cfg(test)]
pub(crate) fn every_message() -> Vec<Message> {
    fn dict(entries: &[(&str, Value)]) -> Dict {
        Dict(
            entries
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
        )
    }
    let all_values = vec![
        Value::Null,
        Value::Bool(true),
        Value::Bool(false),
        Value::Integer(-1),
        Value::Integer(i64::MIN),
        Value::Integer(i64::MAX),
        Value::Unsigned(u64::MAX),
        Value::Float(1.5),
        Value::Float(-0.25e-300),
        Value::Float(1.0),
        Value::String("quote \" backslash \\ tab \t nul \u{1} ünï €".to_owned()),
        Value::String(String::new()),
        Value::Bytes(vec![0x10, 0xe3, 0xff, 0x90, 0, 1]),
        Value::Bytes(Vec::new()),
        Value::List(vec![Value::List(vec![]), Value::Dict(Dict::new())]),
        Value::Dict(dict(&[("z", Value::Integer(1)), ("a", Value::from("x"))])),
    ];
    let kwargs = dict(&[
        ("zebra", Value::Integer(1)),
        ("apple", Value::List(all_values.clone())),
        ("mango", Value::Bytes(b"\x00\xff".to_vec())),
    ]);
    let payloads = [
        Payload::default(),
        Payload {
            args: all_values.clone(),
            kwargs: Dict::new(),
        },
        Payload {
            args: Vec::new(),
            kwargs: kwargs.clone(),
        },
        Payload {
            args: vec![Value::from("Hello")],
            kwargs: kwargs.clone(),
        },
    ];
    let options = dict(&[
        ("match", Value::from("prefix")),
        ("acknowledge", true.into()),
    ]);
    let mut messages = vec![
        Message::Hello {
            realm: "realm1".to_owned(),
            details: dict(&[(
                "roles",
                Value::Dict(dict(&[("subscriber", Value::Dict(Dict::new()))])),
            )]),
        },
        Message::Welcome {
            session: MAX_ID,
            details: Dict::new(),
        },
        Message::Abort {
            details: dict(&[("message", Value::from("no"))]),
            reason: "wamp.error.no_such_realm".to_owned(),
        },
        Message::Challenge {
            method: "wampcra".to_owned(),
            extra: dict(&[("challenge", Value::from("{\"nonce\":1}"))]),
        },
        Message::Authenticate {
            signature: "c2lnbmF0dXJl".to_owned(),
            extra: Dict::new(),
        },
        Message::Goodbye {
            details: Dict::new(),
            reason: "wamp.close.normal".to_owned(),
        },
        Message::Published {
            request: 1,
            publication: MAX_ID,
        },
        Message::Subscribe {
            request: 2,
            options: options.clone(),
            topic: "com.myapp".to_owned(),
        },
        Message::Subscribed {
            request: 2,
            subscription: 3,
        },
        Message::Unsubscribe {
            request: 4,
            subscription: 3,
        },
        Message::Unsubscribed { request: 4 },
        Message::Cancel {
            request: 5,
            options: dict(&[("mode", Value::from("kill"))]),
        },
        Message::Register {
            request: 6,
            options: options.clone(),
            procedure: "com.myapp.add".to_owned(),
        },
        Message::Registered {
            request: 6,
            registration: 7,
        },
        Message::Unregister {
            request: 8,
            registration: 7,
        },
        Message::Unregistered { request: 8 },
        Message::Interrupt {
            request: 9,
            options: Dict::new(),
        },
    ];
    for payload in payloads {
        messages.extend([
            Message::Error {
                request_type: MessageType::Call,
                request: 10,
                details: Dict::new(),
                error: "com.myapp.error".to_owned(),
                payload: payload.clone(),
            },
            Message::Publish {
                request: 11,
                options: options.clone(),
                topic: "com.myapp.topic".to_owned(),
                payload: payload.clone(),
            },
            Message::Event {
                subscription: 12,
                publication: 13,
                details: dict(&[("publisher", Value::Integer(5))]),
                payload: payload.clone(),
            },
            Message::Call {
                request: 14,
                options: Dict::new(),
                procedure: "com.myapp.add".to_owned(),
                payload: payload.clone(),
            },
            Message::Result {
                request: 14,
                details: Dict::new(),
                payload: payload.clone(),
            },
            Message::Invocation {
                request: 15,
                registration: 7,
                details: Dict::new(),
                payload: payload.clone(),
            },
            Message::Yield {
                request: 15,
                options: Dict::new(),
                payload,
            },
        ]);
    }
    messages
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashSet;

    use super::*;

    fn list(items: Vec<Value>) -> Value {
        Value::List(items)
    }

    fn int(i: i64) -> Value {
        Value::Integer(i)
    }

    fn s(text: &str) -> Value {
        Value::from(text)
    }

    fn empty() -> Value {
        Value::Dict(Dict::new())
    }

    fn bad(message: &'static str, field: &'static str) -> Result<Message, DecodeError> {
        Err(DecodeError::BadField { message, field })
    }

    #[test]
    fn every_layout_fits_and_decodes_back() {
        let messages = every_message();
        let codes: HashSet<u64> = messages
            .iter()
            .map(|message| message.message_type().code())
            .collect();
        assert_eq!(codes.len(), 24, "every message type is exercised");
        for message in messages {
            let elements = message.elements();
            assert!(elements.len <= MAX_ELEMENTS);
            assert_eq!(
                elements.as_slice().first(),
                Some(&Element::Uint(message.message_type().code()))
            );
            assert_eq!(Message::from_value(message.to_value()), Ok(message.clone()));
        }
    }

    #[test]
    fn message_type_codes_round_trip() {
        for code in 0..=255 {
            if let Some(message_type) = MessageType::from_code(code) {
                assert_eq!(message_type.code(), code);
                assert!(!message_type.name().is_empty());
            }
        }
    }

    #[test]
    fn not_a_list_or_no_leading_integer_is_not_a_message() {
        for value in [
            empty(),
            s("[1]"),
            int(1),
            list(vec![]),
            list(vec![s("1"), s("realm1"), empty()]),
            list(vec![int(-1), s("realm1"), empty()]),
            list(vec![Value::Float(1.0), s("realm1"), empty()]),
        ] {
            assert_eq!(
                Message::from_value(value.clone()),
                Err(DecodeError::NotAMessage),
                "{value:?}"
            );
        }
    }

    #[test]
    fn unknown_type_code_is_named() {
        for code in [0, 7, 9, 71, 255, u64::MAX] {
            assert_eq!(
                Message::from_value(list(vec![Value::from(code), empty()])),
                Err(DecodeError::UnknownType { code })
            );
        }
    }

    #[test]
    fn ids_are_between_1_and_2_pow_53() {
        let published = |id: Value| Message::from_value(list(vec![int(17), int(1), id]));
        assert_eq!(
            published(Value::from(MAX_ID)),
            Ok(Message::Published {
                request: 1,
                publication: MAX_ID
            })
        );
        for id in [0, MAX_ID + 1, u64::MAX] {
            assert_eq!(
                published(Value::from(id)),
                Err(DecodeError::IdOutOfRange {
                    message: "PUBLISHED",
                    id
                })
            );
        }
        // Negative and non-integer ids are of the wrong type.
        for id in [int(-1), Value::Float(5.0), s("5"), Value::Null] {
            assert_eq!(published(id), bad("PUBLISHED", "Publication"));
        }
    }

    #[test]
    fn request_ids_of_replies_are_checked_too() {
        let error =
            |request: u64| list(vec![int(8), int(48), Value::from(request), empty(), s("e")]);
        assert_eq!(
            Message::from_value(error(0)),
            Err(DecodeError::IdOutOfRange {
                message: "ERROR",
                id: 0
            })
        );
        assert_eq!(
            Message::from_value(list(vec![int(50), Value::from(MAX_ID + 1), empty()])),
            Err(DecodeError::IdOutOfRange {
                message: "RESULT",
                id: MAX_ID + 1
            })
        );
        assert_eq!(
            Message::from_value(list(vec![int(2), int(0), empty()])),
            Err(DecodeError::IdOutOfRange {
                message: "WELCOME",
                id: 0
            })
        );
    }

    #[test]
    fn error_request_type_must_be_a_known_type() {
        let error = |request_type: Value| {
            Message::from_value(list(vec![int(8), request_type, int(1), empty(), s("e")]))
        };
        assert!(matches!(
            error(int(32)),
            Ok(Message::Error {
                request_type: MessageType::Subscribe,
                ..
            })
        ));
        for request_type in [int(7), int(-48), s("CALL"), int(1000)] {
            assert_eq!(error(request_type), bad("ERROR", "REQUEST.Type"));
        }
    }

    #[test]
    fn each_field_has_its_type() {
        assert_eq!(
            Message::from_value(list(vec![int(1), int(1), empty()])),
            bad("HELLO", "Realm")
        );
        assert_eq!(
            Message::from_value(list(vec![int(1), s("realm1"), list(vec![])])),
            bad("HELLO", "Details")
        );
        assert_eq!(
            Message::from_value(list(vec![int(32), int(1), Value::Null, s("t")])),
            bad("SUBSCRIBE", "Options")
        );
        assert_eq!(
            Message::from_value(list(vec![int(32), int(1), empty(), Value::Bytes(vec![])])),
            bad("SUBSCRIBE", "Topic")
        );
        assert_eq!(
            Message::from_value(list(vec![int(6), s("bye"), s("wamp.close.normal")])),
            bad("GOODBYE", "Details")
        );
    }

    #[test]
    fn missing_elements_are_named() {
        assert_eq!(
            Message::from_value(list(vec![int(1), s("realm1")])),
            bad("HELLO", "Details")
        );
        assert_eq!(
            Message::from_value(list(vec![int(16), int(1), empty()])),
            bad("PUBLISH", "Topic")
        );
        assert_eq!(
            Message::from_value(list(vec![int(8), int(48)])),
            bad("ERROR", "REQUEST.Request")
        );
    }

    #[test]
    fn extra_elements_are_refused() {
        assert_eq!(
            Message::from_value(list(vec![int(17), int(1), int(2), int(3)])),
            bad("PUBLISHED", "end of list")
        );
        assert_eq!(
            Message::from_value(list(vec![int(32), int(1), empty(), s("t"), list(vec![])])),
            bad("SUBSCRIBE", "end of list")
        );
        // Arguments and ArgumentsKw, then anything more.
        assert_eq!(
            Message::from_value(list(vec![
                int(36),
                int(1),
                int(2),
                empty(),
                list(vec![]),
                empty(),
                int(0)
            ])),
            bad("EVENT", "end of list")
        );
    }

    #[test]
    fn kwargs_without_args_is_a_bad_arguments() {
        assert_eq!(
            Message::from_value(list(vec![int(16), int(1), empty(), s("t"), empty()])),
            bad("PUBLISH", "Arguments")
        );
        assert_eq!(
            Message::from_value(list(vec![
                int(16),
                int(1),
                empty(),
                s("t"),
                list(vec![]),
                list(vec![])
            ])),
            bad("PUBLISH", "ArgumentsKw")
        );
    }

    #[test]
    fn payload_absent_empty_or_present_encodes_as_crossbar_does() {
        let event = |payload: Payload| Message::Event {
            subscription: 1,
            publication: 2,
            details: Dict::new(),
            payload,
        };
        let head = || vec![int(36), int(1), int(2), empty()];
        // Decoded `[]` and `{}` are the same as absent.
        let mut with_empty = head();
        with_empty.extend([list(vec![]), empty()]);
        assert_eq!(
            Message::from_value(list(with_empty)),
            Ok(event(Payload::default()))
        );
        assert_eq!(event(Payload::default()).to_value(), list(head()));

        let args_only = Payload {
            args: vec![int(1)],
            kwargs: Dict::new(),
        };
        let mut expected = head();
        expected.push(list(vec![int(1)]));
        assert_eq!(event(args_only).to_value(), list(expected));

        let mut kwargs = Dict::new();
        kwargs.insert("a", int(1));
        let kwargs_only = Payload {
            args: Vec::new(),
            kwargs: kwargs.clone(),
        };
        let mut expected = head();
        expected.extend([list(vec![]), Value::Dict(kwargs)]);
        assert_eq!(event(kwargs_only).to_value(), list(expected));
    }

    #[test]
    fn unsubscribed_with_details_is_accepted_and_the_details_dropped() {
        let mut details = Dict::new();
        details.insert("reason", s("wamp.error.gone"));
        assert_eq!(
            Message::from_value(list(vec![int(35), int(4), Value::Dict(details)])),
            Ok(Message::Unsubscribed { request: 4 })
        );
        assert_eq!(
            Message::from_value(list(vec![int(35), int(4), s("details")])),
            bad("UNSUBSCRIBED", "Details")
        );
        assert_eq!(
            Message::from_value(list(vec![int(35), int(4), empty(), empty()])),
            bad("UNSUBSCRIBED", "end of list")
        );
        // The router-initiated form carries request 0.
        assert_eq!(
            Message::from_value(list(vec![int(35), int(0), empty()])),
            Err(DecodeError::IdOutOfRange {
                message: "UNSUBSCRIBED",
                id: 0
            })
        );
        // Other messages take no such extra.
        assert_eq!(
            Message::from_value(list(vec![int(67), int(4), empty()])),
            bad("UNREGISTERED", "end of list")
        );
    }
}
