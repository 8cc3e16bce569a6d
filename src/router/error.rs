//! The router's two kinds of failure and what the peer sees of each:
//!
//! - `Violation`: the peer broke the protocol. WAMP v2, "Protocol errors": implementations
//!   "MUST send an ABORT message to the offending peer, having reason
//!   `wamp.error.protocol_violation`", "MUST abort the WAMP session ... without waiting for or
//!   processing any messages subsequently received from the peer" and "SHOULD also drop the
//!   WAMP connection at transport level". The `Display` goes in `ABORT.Details.message`.
//! - `Refusal`: a well-formed request the router will not carry out: an `ERROR` reply with
//!   `Refusal::uri` and the `Display` as the only positional argument (as Crossbar's
//!   `message.Error(.., [text])` replies do).

use std::fmt;

use crate::router::uri::UriError;
use crate::wamp::{DecodeError, MessageType};

/// `ABORT` reason for every violation.
pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";

#[derive(Debug, Clone, PartialEq)]
pub enum Violation {
    /// The bytes are not a WAMP message.
    Decode(DecodeError),
    /// WAMP v2, "Session Establishment": the first message must be HELLO.
    BeforeWelcome { message: &'static str },
    /// "receiving a second `HELLO` within the lifetime of a session".
    SecondHello,
    /// A message only a router sends (WELCOME, EVENT, RESULT, CHALLENGE...), or AUTHENTICATE
    /// after the session was established (it answers a CHALLENGE only).
    NotForRouter { message: &'static str },
    /// `ERROR` answering anything but an INVOCATION ("Receiving `ERROR` message with invalid
    /// REQUEST.Type").
    ErrorForRequestType { request_type: MessageType },
    /// A request id reused while its request is still in flight (WAMP v2, "Protocol
    /// errors": "Receiving message with non-sequential session scope request ID").
    RequestInFlight { message: &'static str, request: u64 },
    /// An option or detail of the wrong type or value (as autobahn's `Message.parse`, which
    /// Crossbar uses, raises `ProtocolError` for).
    BadOption {
        message: &'static str,
        option: &'static str,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Decode(error) => write!(f, "undecodable message: {error}"),
            Violation::BeforeWelcome { message } => {
                write!(f, "{message} received before the session was established")
            }
            Violation::SecondHello => {
                f.write_str("HELLO received after the session was established")
            }
            Violation::NotForRouter { message } => {
                write!(f, "{message} is not a message a router accepts")
            }
            Violation::ErrorForRequestType { request_type } => {
                write!(f, "ERROR for a {} request", request_type.name())
            }
            Violation::RequestInFlight { message, request } => {
                write!(
                    f,
                    "{message} with request id {request}, which is still in flight"
                )
            }
            Violation::BadOption { message, option } => {
                write!(f, "{message}: invalid type or value for '{option}'")
            }
        }
    }
}

/// A request refused with an `ERROR`.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    InvalidUri {
        uri: String,
        error: UriError,
    },
    /// `wamp.` URIs are the router's: Crossbar refuses PUBLISH and REGISTER there for any
    /// session not `trusted` (`broker.py` `processPublish`, `dealer.py` `processRegister`).
    RestrictedUri {
        uri: String,
    },
    NoSuchSubscription {
        subscription: u64,
    },
    NoSuchRegistration {
        registration: u64,
    },
    NoSuchProcedure {
        procedure: String,
    },
    ProcedureAlreadyExists {
        procedure: String,
    },
    /// Crossbar `dealer.py` `processRegister`: a shared registration with another `invoke`.
    InvocationPolicyConflict {
        procedure: String,
        existing: &'static str,
        requested: &'static str,
    },
    TooManySubscriptions {
        max: usize,
    },
    TooManyRegistrations {
        max: usize,
    },
    /// The caller has `max_pending_calls_per_session` calls waiting.
    TooManyPendingCalls {
        max: usize,
    },
    /// Every callee that could take the call has `max_pending_calls_per_callee` invocations.
    NoAvailableCallee {
        procedure: String,
        max: usize,
    },
    /// A meta procedure's argument of the wrong type.
    InvalidArgument {
        procedure: &'static str,
        detail: &'static str,
    },
    NoSuchSession {
        session: u64,
    },
    /// Crossbar `service.py`: untrusted callers may not inspect `wamp.`/`crossbar.` URIs.
    NotAuthorizedProtected {
        uri: String,
    },
    /// The session's role has no permission for the action on the URI (`[wamp.realm.NAME]`
    /// roles).
    NotAuthorized {
        action: &'static str,
        uri: String,
    },
    /// The role's authorizer gave no answer (it failed, timed out, is not registered, or
    /// answered something else than a decision).
    AuthorizationFailed {
        action: &'static str,
        uri: String,
        reason: String,
    },
    /// `wamp.subscription.get_events` for a subscription without an event history (Crossbar
    /// `service.py`: "event history for the given subscription is not available or
    /// enabled"): not an exact subscription to a `[history]` topic of the backend realm.
    HistoryUnavailable,
}

impl Refusal {
    pub fn uri(&self) -> &'static str {
        match self {
            Refusal::InvalidUri { .. } | Refusal::RestrictedUri { .. } => "wamp.error.invalid_uri",
            Refusal::NoSuchSubscription { .. } => "wamp.error.no_such_subscription",
            Refusal::NoSuchRegistration { .. } => "wamp.error.no_such_registration",
            Refusal::NoSuchProcedure { .. } => "wamp.error.no_such_procedure",
            Refusal::ProcedureAlreadyExists { .. } => "wamp.error.procedure_already_exists",
            Refusal::InvocationPolicyConflict { .. } => {
                "wamp.error.procedure_exists_with_different_invocation_policy"
            }
            // No Crossbar counterpart (it has no such limits); the spec's closest: the
            // session is not allowed more.
            Refusal::TooManySubscriptions { .. } | Refusal::TooManyRegistrations { .. } => {
                "wamp.error.not_authorized"
            }
            // The router cancels the call before it starts.
            Refusal::TooManyPendingCalls { .. } => "wamp.error.canceled",
            // WAMP v2 advanced, "URIs": "A Dealer could not perform a call, since a procedure
            // with the given URI is registered, but all available registrations have
            // responded with `wamp.error.unavailable`": here, are busy.
            Refusal::NoAvailableCallee { .. } => "wamp.error.no_available_callee",
            Refusal::InvalidArgument { .. } => "wamp.error.invalid_argument",
            Refusal::NoSuchSession { .. } => "wamp.error.no_such_session",
            Refusal::NotAuthorizedProtected { .. } | Refusal::NotAuthorized { .. } => {
                "wamp.error.not_authorized"
            }
            Refusal::AuthorizationFailed { .. } => crate::router::dynamic::AUTHORIZATION_FAILED,
            Refusal::HistoryUnavailable => "wamp.error.history_unavailable",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InvalidUri { uri, error } => write!(f, "invalid URI '{uri}': {error}"),
            Refusal::RestrictedUri { uri } => write!(f, "restricted URI '{uri}'"),
            Refusal::NoSuchSubscription { subscription } => {
                write!(f, "no subscription {subscription} for this session")
            }
            Refusal::NoSuchRegistration { registration } => {
                write!(f, "no registration {registration} for this session")
            }
            Refusal::NoSuchProcedure { procedure } => {
                write!(f, "no callee registered for procedure <{procedure}>")
            }
            Refusal::ProcedureAlreadyExists { procedure } => {
                write!(f, "register for already registered procedure '{procedure}'")
            }
            Refusal::InvocationPolicyConflict {
                procedure,
                existing,
                requested,
            } => write!(
                f,
                "register for already registered procedure '{procedure}' with conflicting \
                 invocation policy (has {existing} and {requested} was requested)"
            ),
            // Crossbar `broker.py`/`dealer.py`: "session is not authorized to publish to
            // topic '{}'" and the like; the role is not named.
            Refusal::NotAuthorized { action, uri } => {
                write!(f, "session is not authorized to {action} '{uri}'")
            }
            Refusal::TooManySubscriptions { max } => {
                write!(f, "the session has {max} subscriptions, the most allowed")
            }
            Refusal::TooManyRegistrations { max } => {
                write!(f, "the session has {max} registrations, the most allowed")
            }
            Refusal::TooManyPendingCalls { max } => {
                write!(f, "the session has {max} calls pending, the most allowed")
            }
            Refusal::NoAvailableCallee { procedure, max } => write!(
                f,
                "every callee of <{procedure}> has {max} invocations pending, the most allowed"
            ),
            Refusal::InvalidArgument { procedure, detail } => {
                write!(f, "{procedure}: {detail}")
            }
            Refusal::NoSuchSession { session } => {
                write!(f, "no session with ID {session} exists on this router")
            }
            Refusal::NotAuthorizedProtected { uri } => {
                write!(f, "not authorized for protected URI \"{uri}\"")
            }
            // Crossbar `broker.py`/`dealer.py` `on_authorize_error`: "failed to authorize
            // session for subscribing to topic URI '{}': {}" and the like.
            Refusal::AuthorizationFailed {
                action,
                uri,
                reason,
            } => {
                write!(
                    f,
                    "failed to authorize session for {action} '{uri}': {reason}"
                )
            }
            Refusal::HistoryUnavailable => {
                f.write_str("event history for the given subscription is not available or enabled")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_read_as_sentences() {
        assert_eq!(
            Violation::BeforeWelcome {
                message: "SUBSCRIBE"
            }
            .to_string(),
            "SUBSCRIBE received before the session was established"
        );
        assert_eq!(
            Violation::BadOption {
                message: "PUBLISH",
                option: "exclude"
            }
            .to_string(),
            "PUBLISH: invalid type or value for 'exclude'"
        );
    }

    #[test]
    fn refusals_map_to_their_uris() {
        assert_eq!(
            Refusal::RestrictedUri {
                uri: "wamp.x".into()
            }
            .uri(),
            "wamp.error.invalid_uri"
        );
        assert_eq!(
            Refusal::NoAvailableCallee {
                procedure: "p".into(),
                max: 1
            }
            .uri(),
            "wamp.error.no_available_callee"
        );
        assert_eq!(
            Refusal::TooManyPendingCalls { max: 1 }.uri(),
            "wamp.error.canceled"
        );
    }
}
