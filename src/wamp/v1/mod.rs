//! WAMP v1 (WebSocket subprotocol `wamp`): its nine messages as values, sans-IO like the v2
//! codec beside it. `decode` takes the text of one WebSocket message and says which message
//! it is or why it is not one; `encode` gives the compact JSON of one. `curie` holds the
//! per-session PREFIX table that expands CURIEs to URIs.
//!
//! The spec is the archived "WAMP v1 Specification" (wamp-proto, `page_t_spec_wamp1.html`,
//! removed from the site in 2015): "All messages are transmitted as WebSocket messages of
//! payload type text, and hence UTF-8 encoded, with the payload being valid JSON." A message
//! is a JSON list whose first element is the type id:
//!
//! | id | message     | elements after the id                          | direction |
//! | -- | ----------- | ---------------------------------------------- | --------- |
//! | 0  | WELCOME     | sessionId, protocolVersion, serverIdent        | to client |
//! | 1  | PREFIX      | prefix, URI                                    | to server |
//! | 2  | CALL        | callID, procURI, arg*                          | to server |
//! | 3  | CALLRESULT  | callID, result                                 | to client |
//! | 4  | CALLERROR   | callID, errorURI, errorDesc (, errorDetails)   | to client |
//! | 5  | SUBSCRIBE   | topicURI                                       | to server |
//! | 6  | UNSUBSCRIBE | topicURI                                       | to server |
//! | 7  | PUBLISH     | topicURI, event (, excludeMe \| exclude (, eligible)) | to server |
//! | 8  | EVENT       | topicURI, event                                | to client |
//!
//! The codec checks shapes only: element count and types. It does not check direction (the
//! router decides what a server accepts), resolve CURIEs (see `curie::Prefixes`), or check
//! that WELCOME's protocolVersion is 1.
//!
//! Values are decoded by the v2 JSON decoder (`wamp::json`), so a v1 event and a v2 one are
//! the same `Value`. That decoder reads a string starting with NUL as v2's base64 binary
//! ("Binary conversion of JSON Strings"); v1 has no such rule, but no v1 peer sends such
//! strings, a valid one comes back out byte for byte, and one with invalid base64 after the
//! NUL is refused as `Syntax` rather than passed on as something a v2 peer would misread.

pub mod curie;

use std::fmt;

use crate::wamp::json::{self, write_str, write_u64, write_value};
use crate::wamp::serializer::{DecodeError, MAX_DEPTH};
use crate::wamp::value::Value;

pub use curie::{CurieError, Prefixes};

/// The WebSocket subprotocol of WAMP v1.
pub const SUBPROTOCOL: &str = "wamp";

/// WELCOME's protocolVersion: "currently it MUST be 1".
pub const PROTOCOL_VERSION: u64 = 1;

/// The nine message types of WAMP v1, by the spec's "MessageType ID" table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum V1MessageType {
    Welcome,
    Prefix,
    Call,
    CallResult,
    CallError,
    Subscribe,
    Unsubscribe,
    Publish,
    Event,
}

impl V1MessageType {
    pub const ALL: [V1MessageType; 9] = [
        V1MessageType::Welcome,
        V1MessageType::Prefix,
        V1MessageType::Call,
        V1MessageType::CallResult,
        V1MessageType::CallError,
        V1MessageType::Subscribe,
        V1MessageType::Unsubscribe,
        V1MessageType::Publish,
        V1MessageType::Event,
    ];

    pub fn from_code(code: u64) -> Option<V1MessageType> {
        V1MessageType::ALL
            .into_iter()
            .find(|message_type| message_type.code() == code)
    }

    /// The type id, a message's first element.
    pub fn code(self) -> u64 {
        match self {
            V1MessageType::Welcome => 0,
            V1MessageType::Prefix => 1,
            V1MessageType::Call => 2,
            V1MessageType::CallResult => 3,
            V1MessageType::CallError => 4,
            V1MessageType::Subscribe => 5,
            V1MessageType::Unsubscribe => 6,
            V1MessageType::Publish => 7,
            V1MessageType::Event => 8,
        }
    }

    /// The spec's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            V1MessageType::Welcome => "WELCOME",
            V1MessageType::Prefix => "PREFIX",
            V1MessageType::Call => "CALL",
            V1MessageType::CallResult => "CALLRESULT",
            V1MessageType::CallError => "CALLERROR",
            V1MessageType::Subscribe => "SUBSCRIBE",
            V1MessageType::Unsubscribe => "UNSUBSCRIBE",
            V1MessageType::Publish => "PUBLISH",
            V1MessageType::Event => "EVENT",
        }
    }
}

/// A WAMP v1 message. Ids (session ids, call ids) are strings in v1, unlike v2's integers.
#[derive(Debug, Clone, PartialEq)]
pub enum V1Message {
    /// `[0, sessionId, protocolVersion, serverIdent]`: the server's first message.
    Welcome {
        session: String,
        protocol_version: u64,
        server_ident: String,
    },
    /// `[1, prefix, URI]`: from now on `prefix:rest` stands for `URI` + `rest`.
    Prefix { prefix: String, uri: String },
    /// `[2, callID, procURI, arg*]`: "followed by zero or more call arguments".
    Call {
        call_id: String,
        procedure: String,
        args: Vec<Value>,
    },
    /// `[3, callID, result]`: "The result is always present and can be any JSON
    /// serializable value, include the JSON value null."
    CallResult { call_id: String, result: Value },
    /// `[4, callID, errorURI, errorDesc]` or `[4, callID, errorURI, errorDesc, errorDetails]`.
    /// "If errorDetails is present, it MUST be not null": `decode` refuses a null one, and
    /// `encode` writes `Some(Value::Null)` as absent.
    CallError {
        call_id: String,
        error_uri: String,
        description: String,
        details: Option<Value>,
    },
    /// `[5, topicURI]`.
    Subscribe { topic: String },
    /// `[6, topicURI]`.
    Unsubscribe { topic: String },
    /// `[7, topicURI, event]` and the forms with recipients (see `Recipients`).
    Publish {
        topic: String,
        event: Value,
        recipients: Recipients,
    },
    /// `[8, topicURI, event]`: "The topicURI MUST be a fully qualified URI for the topic."
    Event { topic: String, event: Value },
}

/// What PUBLISH says about who receives the event: the elements after `event`. The spec
/// gives `[7, topicURI, event]`, `[7, topicURI, event, excludeMe]` and
/// `[7, topicURI, event, exclude, eligible]`, and its own example "PUBLISH message with
/// exclude list" is `[7, "event:myevent1", "hello", ["NwtXQ8rdfPsy-ewS", ...]]`: a 4th
/// element that is a list is `exclude` alone (autobahn reads it the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// No 4th element. (autobahn's v1 server then excludes the publisher; that is the
    /// router's rule, not the codec's.)
    Default,
    /// A bool 4th element: "they can opt to not receive their published event by passing the
    /// optional parameter excludeMe to TRUE".
    ExcludeMe(bool),
    /// A list of session ids as 4th element, and optionally a 5th: the sessions eligible.
    Lists {
        exclude: Vec<String>,
        eligible: Option<Vec<String>>,
    },
}

/// Why bytes are not a WAMP v1 message. A v1 server has no error message for a malformed
/// one ("WAMPv1 has no feedback mechanism"); the caller drops it or closes the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum V1DecodeError {
    /// Not JSON ("with the payload being valid JSON"), trailing text after the value, a dict
    /// key that repeats, or a NUL-led string whose rest is not base64 (see the module docs).
    Syntax { detail: String },
    /// Lists and dicts nest deeper than allowed; `max` is the bound applied.
    TooDeep { max: usize },
    /// The value is not a non-empty list starting with a non-negative integer type id.
    NotAMessage,
    /// The type id names none of the nine v1 messages.
    UnknownType { code: u64 },
    /// A known message with more or fewer elements (the type id included) than its shape.
    WrongArity {
        message: &'static str,
        len: usize,
        expected: &'static str,
    },
    /// A known message with an element of the wrong type, named as in the spec.
    BadField {
        message: &'static str,
        field: &'static str,
    },
}

impl fmt::Display for V1DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V1DecodeError::Syntax { detail } => write!(f, "invalid JSON: {detail}"),
            V1DecodeError::TooDeep { max } => write!(f, "nested deeper than {max} levels"),
            V1DecodeError::NotAMessage => f.write_str("not a list starting with a message type"),
            V1DecodeError::UnknownType { code } => write!(f, "unknown WAMP v1 message type {code}"),
            V1DecodeError::WrongArity {
                message,
                len,
                expected,
            } => write!(f, "{message}: {len} elements, expected {expected}"),
            V1DecodeError::BadField { message, field } => write!(f, "{message}: invalid {field}"),
        }
    }
}

impl std::error::Error for V1DecodeError {}

impl V1Message {
    pub fn message_type(&self) -> V1MessageType {
        match self {
            V1Message::Welcome { .. } => V1MessageType::Welcome,
            V1Message::Prefix { .. } => V1MessageType::Prefix,
            V1Message::Call { .. } => V1MessageType::Call,
            V1Message::CallResult { .. } => V1MessageType::CallResult,
            V1Message::CallError { .. } => V1MessageType::CallError,
            V1Message::Subscribe { .. } => V1MessageType::Subscribe,
            V1Message::Unsubscribe { .. } => V1MessageType::Unsubscribe,
            V1Message::Publish { .. } => V1MessageType::Publish,
            V1Message::Event { .. } => V1MessageType::Event,
        }
    }

    /// The type id: the message's first element.
    pub fn code(&self) -> u64 {
        self.message_type().code()
    }

    /// The spec's name of the message type.
    pub fn name(&self) -> &'static str {
        self.message_type().name()
    }

    /// How deeply lists and dicts nest in the encoded message: 1 for the message's own list,
    /// plus its deepest value. `decode(&encode(m), d)` succeeds exactly when `d >= depth()`.
    pub fn depth(&self) -> usize {
        let inner = match self {
            V1Message::Welcome { .. }
            | V1Message::Prefix { .. }
            | V1Message::Subscribe { .. }
            | V1Message::Unsubscribe { .. } => 0,
            V1Message::Call { args, .. } => args.iter().map(Value::depth).max().unwrap_or(0),
            V1Message::CallResult { result, .. } => result.depth(),
            V1Message::CallError { details, .. } => match details {
                Some(Value::Null) | None => 0,
                Some(details) => details.depth(),
            },
            V1Message::Event { event, .. } => event.depth(),
            V1Message::Publish {
                event, recipients, ..
            } => {
                let lists = match recipients {
                    Recipients::Default | Recipients::ExcludeMe(_) => 0,
                    Recipients::Lists { .. } => 1,
                };
                event.depth().max(lists)
            }
        };
        1 + inner
    }
}

/// The message in `bytes`, the text of one WebSocket message, or why it is not one.
/// `max_depth` bounds how deeply lists and dicts nest (the message itself is depth 1; above
/// `MAX_DEPTH` it is `MAX_DEPTH`), checked while parsing, so no input can exhaust the stack.
/// JSON whitespace around and inside the value is allowed; anything after it is not.
pub fn decode(bytes: &[u8], max_depth: usize) -> Result<V1Message, V1DecodeError> {
    let max_depth = max_depth.min(MAX_DEPTH);
    let value = json::decode(bytes, max_depth).map_err(|error| match error {
        DecodeError::Syntax { detail } => V1DecodeError::Syntax { detail },
        DecodeError::TooDeep { max } => V1DecodeError::TooDeep { max },
        // `json::decode` reads a value, never a v2 message, so it gives only the two above;
        // anything else would still be a value that failed to parse.
        other @ (DecodeError::NotAMessage
        | DecodeError::UnknownType { .. }
        | DecodeError::BadField { .. }
        | DecodeError::IdOutOfRange { .. }) => V1DecodeError::Syntax {
            detail: other.to_string(),
        },
    })?;
    from_value(value)
}

/// The message in a decoded JSON value: a list of the type id then the elements of that
/// type's shape, each of its type.
pub fn from_value(value: Value) -> Result<V1Message, V1DecodeError> {
    use V1MessageType as T;
    let Value::List(items) = value else {
        return Err(V1DecodeError::NotAMessage);
    };
    let len = items.len();
    let mut items = items.into_iter();
    let code = match items.next() {
        Some(first) => first.as_u64().map_err(|()| V1DecodeError::NotAMessage)?,
        None => return Err(V1DecodeError::NotAMessage),
    };
    let message_type = V1MessageType::from_code(code).ok_or(V1DecodeError::UnknownType { code })?;
    let message = message_type.name();
    let (arity_ok, expected) = match message_type {
        T::Welcome => (len == 4, "4"),
        T::Prefix | T::CallResult | T::Event => (len == 3, "3"),
        T::Call => (len >= 3, "3 or more"),
        T::CallError => (len == 4 || len == 5, "4 or 5"),
        T::Subscribe | T::Unsubscribe => (len == 2, "2"),
        T::Publish => ((3..=5).contains(&len), "3 to 5"),
    };
    if !arity_ok {
        return Err(V1DecodeError::WrongArity {
            message,
            len,
            expected,
        });
    }
    let mut f = Fields { message, items };
    let decoded = match message_type {
        T::Welcome => V1Message::Welcome {
            session: f.string("sessionId")?,
            protocol_version: f.uint("protocolVersion")?,
            server_ident: f.string("serverIdent")?,
        },
        T::Prefix => V1Message::Prefix {
            prefix: f.string("prefix")?,
            uri: f.string("URI")?,
        },
        T::Call => V1Message::Call {
            call_id: f.string("callID")?,
            procedure: f.string("procURI")?,
            args: f.items.by_ref().collect(),
        },
        T::CallResult => V1Message::CallResult {
            call_id: f.string("callID")?,
            result: f.value("result")?,
        },
        T::CallError => V1Message::CallError {
            call_id: f.string("callID")?,
            error_uri: f.string("errorURI")?,
            description: f.string("errorDesc")?,
            // "If errorDetails is present, it MUST be not null".
            details: match f.items.next() {
                None => None,
                Some(Value::Null) => return Err(f.bad("errorDetails")),
                Some(details) => Some(details),
            },
        },
        T::Subscribe => V1Message::Subscribe {
            topic: f.string("topicURI")?,
        },
        T::Unsubscribe => V1Message::Unsubscribe {
            topic: f.string("topicURI")?,
        },
        T::Publish => V1Message::Publish {
            topic: f.string("topicURI")?,
            event: f.value("event")?,
            recipients: match (f.items.next(), f.items.next()) {
                // autobahn 0.8's `publish(topic, event)` sends `[7, topic, event, null]`, and
                // its own server reads the null as absent.
                (None, _) | (Some(Value::Null), None) => Recipients::Default,
                (Some(Value::Bool(exclude_me)), None) => Recipients::ExcludeMe(exclude_me),
                (Some(Value::Bool(_)), Some(_)) => return Err(f.bad("exclude")),
                (Some(exclude), eligible) => Recipients::Lists {
                    exclude: f.session_ids(exclude, "exclude")?,
                    eligible: match eligible {
                        Some(eligible) => Some(f.session_ids(eligible, "eligible")?),
                        None => None,
                    },
                },
            },
        },
        T::Event => V1Message::Event {
            topic: f.string("topicURI")?,
            event: f.value("event")?,
        },
    };
    Ok(decoded)
}

/// The elements of one message after its type id, taken in order; the arity was checked
/// before, so a missing element here cannot happen but is still an error, not a panic.
struct Fields {
    message: &'static str,
    items: std::vec::IntoIter<Value>,
}

impl Fields {
    fn bad(&self, field: &'static str) -> V1DecodeError {
        V1DecodeError::BadField {
            message: self.message,
            field,
        }
    }

    fn value(&mut self, field: &'static str) -> Result<Value, V1DecodeError> {
        self.items.next().ok_or_else(|| self.bad(field))
    }

    fn string(&mut self, field: &'static str) -> Result<String, V1DecodeError> {
        match self.items.next() {
            Some(Value::String(s)) => Ok(s),
            _ => Err(self.bad(field)),
        }
    }

    fn uint(&mut self, field: &'static str) -> Result<u64, V1DecodeError> {
        match self.items.next() {
            Some(value) => value.as_u64().map_err(|()| self.bad(field)),
            None => Err(self.bad(field)),
        }
    }

    /// PUBLISH's exclude or eligible: a list of session ids, which are strings in v1.
    fn session_ids(&self, value: Value, field: &'static str) -> Result<Vec<String>, V1DecodeError> {
        let Value::List(items) = value else {
            return Err(self.bad(field));
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(self.bad(field)),
            })
            .collect()
    }
}

/// The compact JSON of `message`, as autobahn sends v1 messages with ujson (no spaces;
/// Python's own `json.dumps` puts a space after each comma, which peers read the same).
pub fn encode(message: &V1Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(message, &mut out);
    out
}

/// Appends the bytes of `message` to `out` (see `encode`), so a caller can reuse a buffer.
pub fn encode_into(message: &V1Message, out: &mut Vec<u8>) {
    out.push(b'[');
    write_u64(out, message.code());
    match message {
        V1Message::Welcome {
            session,
            protocol_version,
            server_ident,
        } => {
            str_element(out, session);
            out.push(b',');
            write_u64(out, *protocol_version);
            str_element(out, server_ident);
        }
        V1Message::Prefix { prefix, uri } => {
            str_element(out, prefix);
            str_element(out, uri);
        }
        V1Message::Call {
            call_id,
            procedure,
            args,
        } => {
            str_element(out, call_id);
            str_element(out, procedure);
            for arg in args {
                out.push(b',');
                write_value(out, arg);
            }
        }
        V1Message::CallResult { call_id, result } => {
            str_element(out, call_id);
            out.push(b',');
            write_value(out, result);
        }
        V1Message::CallError {
            call_id,
            error_uri,
            description,
            details,
        } => {
            str_element(out, call_id);
            str_element(out, error_uri);
            str_element(out, description);
            match details {
                // "If errorDetails is present, it MUST be not null."
                None | Some(Value::Null) => {}
                Some(details) => {
                    out.push(b',');
                    write_value(out, details);
                }
            }
        }
        V1Message::Subscribe { topic } | V1Message::Unsubscribe { topic } => {
            str_element(out, topic);
        }
        V1Message::Publish {
            topic,
            event,
            recipients,
        } => {
            str_element(out, topic);
            out.push(b',');
            write_value(out, event);
            match recipients {
                Recipients::Default => {}
                Recipients::ExcludeMe(exclude_me) => {
                    out.extend_from_slice(if *exclude_me { b",true" } else { b",false" });
                }
                Recipients::Lists { exclude, eligible } => {
                    out.push(b',');
                    write_str_list(out, exclude);
                    if let Some(eligible) = eligible {
                        out.push(b',');
                        write_str_list(out, eligible);
                    }
                }
            }
        }
        V1Message::Event { topic, event } => {
            str_element(out, topic);
            out.push(b',');
            write_value(out, event);
        }
    }
    out.push(b']');
}

/// A string element after the ones already written.
fn str_element(out: &mut Vec<u8>, s: &str) {
    out.push(b',');
    write_str(out, s);
}

fn write_str_list(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_str(out, item);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests;
