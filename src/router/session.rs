//! Sessions: what the router knows of a peer.
//!
//! A WebSocket client goes through `Phase`:
//!
//! ```text
//! open() -> Establishing --HELLO: realm known, room, cookie/anonymous login--> Established
//!             |   \--HELLO: ticket/wampcra/cryptosign--CHALLENGE--> Authenticating
//!             |                    AUTHENTICATE right --WELCOME--> Established
//!             |                    wrong, too long, ABORT, anything else --> ABORT + Close
//!             |   \--HELLO: wampcra/cryptosign, not static, realm has an authenticator
//!             |          --> AwaitingAuthenticator --secret/pubkey--CHALLENGE--> Authenticating
//!             |   Authenticating (ticket, authenticator) --AUTHENTICATE--> AwaitingAuthenticator
//!             |          --role--WELCOME--> Established; error, timeout, absent --> ABORT
//!             |  HELLO to an unknown realm, over max_sessions, no login method, bad bytes
//!             +--> ABORT + Close --> Closing
//! Established --GOODBYE/ABORT, protocol violation, kill--> Closing
//! gone() removes the client in any phase.
//! ```
//!
//! WAMP v2, "Session Establishment": "the first message sent MUST be `HELLO`"; a router
//! answers with `WELCOME` or `ABORT`. In `Closing` the router has sent its last message
//! (ABORT or GOODBYE) and asked the hub to close; WAMP v2, "Protocol errors": nothing more is
//! processed ("without waiting for or processing any messages subsequently received").
//!
//! A control connection gets a backend `Session` on its first message, in the backend realm,
//! and keeps it until `gone()`. An established session's data lives in its realm (`Session`),
//! keyed by its id.

use std::rc::Rc;

use crate::config::wamp_realm::AuthMethod;
use crate::router::auth::Pending;
use crate::router::dynamic::Gate;
use crate::router::options::PeerFeatures;
use crate::server::slab::Key;
use crate::wamp::{Dict, Serializer};

/// Where a WebSocket client is in its WAMP life.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Subprotocol chosen; awaiting HELLO. `cookie_user`: the wson cookies' user, `None`
    /// when the upgrade was admitted without cookies (then `cookie` is no login method).
    Establishing {
        serializer: Serializer,
        cookie_user: Option<String>,
    },
    /// CHALLENGE sent; awaiting AUTHENTICATE.
    Authenticating { attempt: Attempt, pending: Pending },
    /// The realm's authenticator was called (router call `ticket`): for WAMP-CRA and
    /// WAMP-Cryptosign before the CHALLENGE (it names the secret or the public key), for
    /// WAMP-Ticket after the AUTHENTICATE (it judges the ticket).
    AwaitingAuthenticator { asking: Asking, ticket: u64 },
    /// WELCOME sent; the session is `realms[realm].sessions[session]`.
    Established {
        realm: usize,
        session: u64,
        serializer: Serializer,
    },
    /// A WAMP v1 client: WELCOME sent at `open_v1`, the session is
    /// `realms[realm].sessions[session]` (v1 has no HELLO: it joins the backend realm at once).
    EstablishedV1 {
        realm: usize,
        session: u64,
        state: Box<crate::router::v1::V1State>,
    },
    /// ABORT or GOODBYE sent and Close asked for; everything received is dropped.
    Closing,
}

/// A login under way. The session id is drawn at HELLO (the WAMP-CRA challenge names it);
/// the session joins `realm` on success.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub serializer: Serializer,
    pub realm: String,
    pub session: u64,
    pub features: PeerFeatures,
}

/// A login the realm's authenticator decides: who asks to be `authid` by `method`.
#[derive(Debug, Clone, PartialEq)]
pub struct Asking {
    pub attempt: Attempt,
    pub method: AuthMethod,
    /// Empty: the client named none.
    pub authid: String,
    /// HELLO's `authextra`, passed on to the authenticator (taken when it is asked).
    pub authextra: Option<Dict>,
}

/// How the router reaches a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Client {
        key: Key,
        serializer: Serializer,
    },
    Backend {
        key: Key,
    },
    /// A WAMP v1 client (JSON only); messages to it are translated by `Router::translate_v1`.
    V1 {
        key: Key,
    },
    /// The router of another node of the cluster, in this realm (`nodes`): a caller for the
    /// calls its sessions make to callees here, a callee for the procedures its sessions
    /// registered, hidden from the meta API.
    Node {
        node: NodeRef,
    },
}

/// Another node of the cluster, as the router numbers the nodes it has heard of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeRef(pub u32);

/// The authrole of backend sessions: Crossbar's router-internal sessions are `trusted`
/// (`crossbar/router/router.py` `RESERVED_ROLES`); they may use `wamp.` URIs, are always
/// disclosed as publisher or caller (`router.py` `authorize`: `auto_disclose_trusted`), and
/// are hidden from the session meta API (`service.py` `is_restricted_session`).
pub const BACKEND_AUTHROLE: &str = "trusted";
/// The authid of backend sessions.
pub const BACKEND_AUTHID: &str = "backend";

/// An established session.
#[derive(Debug)]
pub struct Session {
    pub id: u64,
    pub link: Link,
    pub authid: Rc<str>,
    pub authrole: Rc<str>,
    /// How it logged in: `cookie`, `anonymous`, `ticket`, `wampcra` (backend: `cookie`, as
    /// before logins had methods).
    pub authmethod: &'static str,
    /// Who vouched for the login: `static` (config, cookies, anonymous) or `dynamic` (an
    /// authenticator).
    pub authprovider: &'static str,
    /// WELCOME's `authextra`, from an authenticator's `extra`.
    pub authextra: Dict,
    pub features: PeerFeatures,
    /// Subscription ids, each once.
    pub subscriptions: Vec<u64>,
    /// Registration ids, each once.
    pub registrations: Vec<u64>,
    /// Calls this session made that wait for their result.
    pub calls_as_caller: usize,
    /// Invocations sent to this session that wait for its YIELD or ERROR.
    pub calls_as_callee: usize,
    /// INVOCATION request ids (session scope).
    pub invocation_ids: crate::router::ids::SequentialIds,
    /// Actions held for, and answers cached from, the role's authorizer.
    pub gate: Gate,
}

impl Session {
    pub fn new(
        id: u64,
        link: Link,
        authid: Rc<str>,
        authrole: Rc<str>,
        features: PeerFeatures,
    ) -> Session {
        Session {
            id,
            link,
            authid,
            authrole,
            authmethod: "cookie",
            authprovider: crate::router::auth::STATIC_PROVIDER,
            authextra: Dict::new(),
            features,
            subscriptions: Vec::new(),
            registrations: Vec::new(),
            calls_as_caller: 0,
            calls_as_callee: 0,
            invocation_ids: crate::router::ids::SequentialIds::new(),
            gate: Gate::default(),
        }
    }

    pub fn is_backend(&self) -> bool {
        matches!(self.link, Link::Backend { .. })
    }

    /// Another node's router (see `Link::Node`).
    pub fn is_node(&self) -> bool {
        matches!(self.link, Link::Node { .. })
    }

    /// Not shown by the session meta API, nor announced by its events: backend sessions (as
    /// Crossbar's router-internal ones) and the other nodes' routers.
    pub fn is_hidden(&self) -> bool {
        self.is_backend() || self.is_node()
    }

    /// Never authorized: a backend session of role `trusted` (`[wamp] backend_authrole`),
    /// and another node's router (its sessions were authorized on their own node). A client
    /// is never trusted, whatever role it got.
    pub fn is_trusted(&self) -> bool {
        (self.is_backend() && *self.authrole == *BACKEND_AUTHROLE) || self.is_node()
    }

    /// WAMP v2, "Session Meta API" / Crossbar `SessionDetails.marshal()`.
    pub fn serializer_name(&self) -> Option<&'static str> {
        match self.link {
            Link::Client { serializer, .. } => Some(match serializer {
                Serializer::Json => "json",
                Serializer::MsgPack => "msgpack",
                Serializer::Cbor => "cbor",
            }),
            Link::V1 { .. } => Some("json"),
            Link::Backend { .. } | Link::Node { .. } => None,
        }
    }
}
