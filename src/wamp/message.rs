//! WAMP v2 messages as values: one variant per message type of the basic and advanced
//! profiles that a router sends or receives, with the fields the spec gives it in order.
//!
//! Ids are `u64` in the spec's range [1, 2^53] (checked when decoding); URIs are checked by
//! the router, which knows whether the realm wants the loose or the strict rules.

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
    /// `[UNSUBSCRIBED, UNSUBSCRIBE.Request|id]` (the router's own unsubscribe, Details, is
    /// not sent by wson).
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
