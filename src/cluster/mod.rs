//! Several wson nodes joined by Redis (`[cluster]`, README "Scaling out").
//!
//! `wire` is the sans-IO codec of what nodes say to each other. `link` runs the Redis
//! connections on threads of their own (a blocking client: no async runtime; `claims` is the
//! thread that claims tokens, `kept` the one that keeps topics' histories in Redis), bridged to the mio loop by channels and a `mio::Waker`: the
//! loop only ever `try_send`s and `try_recv`s, so it never waits on Redis, whatever Redis
//! does.

pub mod claims;
pub mod kept;
pub mod link;
mod reconnecting;
pub mod wire;

pub use claims::{ClaimAnswer, ClaimOutcome, ClaimRequest};
pub use kept::{HistoryAnswer, HistoryOutcome, HistoryRequest, StoredEntry};
pub use link::{Inbound, Link, LinkSettings, RedisState};
pub use wire::{ClusterMessage, ListKind, Question, RegistrationSync, Subject, WireError};

/// The name a node gets without `[cluster] node_id`: HOST:PID.
pub fn default_node_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}
