//! Claims of tokens across the nodes (`token_reuse = "refuse"`), on a thread of their own
//! with a third Redis connection, so that the loop never waits on Redis.
//!
//! A claim is a Redis key `PREFIX:claim:TOKEN` holding the instance name of the node whose
//! connection holds the token, expiring when the token does. Claiming is one Lua script,
//! atomic in Redis: the key is taken unless another node holds it and that node is alive,
//! which is what its key `PREFIX:alive:INSTANCE` says: set on each heartbeat to expire
//! after three, like the node's membership. Two upgrades of one token on two nodes at the
//! same instant are thus ordered by Redis, and one of them is refused; a node that died
//! leaves claims that no longer count once its alive key has expired, without anyone
//! cleaning them. A claim is released (the key deleted, if still this node's) when its
//! connection closes, and every claim at once when the node stops (its alive key deleted).
//!
//! The script reads the holder's alive key, which it is not given as a key: a standalone
//! Redis (or a replicated one) allows that; a Redis Cluster would not, and wson does not
//! support one (its pub/sub spans shards differently anyway).
//!
//! The thread remembers the tokens it holds: after Redis comes back (empty, if it was
//! restarted), it sets its alive key and claims them again. What it cannot reach Redis for
//! it answers `Unavailable` at once, and keeps, to claim once Redis is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use super::link::{Inbound, POLL};
use super::reconnecting::Reconnecting;
use crate::token::Token;

/// Claims `KEYS[1]` for `ARGV[1]` (this instance) until `ARGV[3]` (Unix seconds), unless
/// another instance that is alive (its key `ARGV[2]..holder` exists) holds it: returns the
/// holder then, else the empty string.
const CLAIM_SCRIPT: &str = "\
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. holder) == 1 then
  return holder
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return ''";

/// Deletes the claim `KEYS[1]` if this instance (`ARGV[1]`) holds it.
const RELEASE_SCRIPT: &str = "\
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Most claims sent again in one round trip after Redis comes back.
const REASSERT_BATCH: usize = 1000;

/// What the loop asks the claims thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRequest {
    /// Claim `token` for this node until `expires_at` (Unix seconds); answered under `id`.
    Claim {
        id: u64,
        token: Token,
        expires_at: u64,
    },
    /// The connection holding `token` closed.
    Release { token: Token },
    /// The node's heartbeat: its claims count for `ttl` more.
    Alive { ttl: Duration },
    /// The node stops: its claims stop counting now (the thread ends).
    Leave,
    /// The link has reached Redis again: connect now, rather than after the backoff.
    Connect,
}

/// How a claim went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This node holds the token now.
    Granted,
    /// A live node holds it (its instance name).
    HeldElsewhere(String),
    /// Redis could not be asked: admitted on this node's knowledge alone (and claimed once
    /// Redis is back).
    Unavailable,
}

/// The answer to `ClaimRequest::Claim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimAnswer {
    pub id: u64,
    pub token: Token,
    pub outcome: ClaimOutcome,
}

/// The Redis keys of one node's claims.
#[derive(Debug, Clone)]
pub struct ClaimKeys {
    pub prefix: String,
    pub instance: String,
}

impl ClaimKeys {
    fn claim(&self, token: &Token) -> Vec<u8> {
        let mut key = format!("{}:claim:", self.prefix).into_bytes();
        key.extend_from_slice(token.as_bytes());
        key
    }

    fn alive_prefix(&self) -> String {
        format!("{}:alive:", self.prefix)
    }

    fn alive(&self) -> String {
        format!("{}{}", self.alive_prefix(), self.instance)
    }
}

fn claim_command(keys: &ClaimKeys, token: &Token, expires_at: u64) -> redis::Cmd {
    let mut command = redis::cmd("EVAL");
    command
        .arg(CLAIM_SCRIPT)
        .arg(1)
        .arg(keys.claim(token))
        .arg(keys.instance.as_str())
        .arg(keys.alive_prefix())
        .arg(expires_at);
    command
}

/// The thread's state: its connection, if any, and the tokens this node holds.
struct Claims<'a> {
    redis: Reconnecting<'a>,
    keys: ClaimKeys,
    held: HashMap<Token, u64>,
    alive_ttl: Option<Duration>,
}

impl Claims<'_> {
    /// Connects when due; on a new connection, sets the alive key and claims again what
    /// this node holds.
    fn connect(&mut self) {
        if self.redis.connect() {
            self.refresh_alive();
            self.reassert();
        }
    }

    fn run<T: redis::FromRedisValue>(&mut self, command: &redis::Cmd) -> Option<T> {
        self.redis.run(command)
    }

    /// `run`, and once more on a new connection when the one it had turned out dead: a
    /// Redis restarted since the last command shows only now, and the claim should not
    /// pay for it.
    fn run_retrying<T: redis::FromRedisValue>(&mut self, command: &redis::Cmd) -> Option<T> {
        let had_connection = self.redis.is_connected();
        match self.run(command) {
            Some(value) => Some(value),
            None if had_connection && !self.redis.is_connected() => {
                self.connect();
                self.run(command)
            }
            None => None,
        }
    }

    fn refresh_alive(&mut self) {
        let Some(ttl) = self.alive_ttl else {
            return;
        };
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut command = redis::cmd("SET");
        command.arg(self.keys.alive()).arg(1).arg("PX").arg(millis);
        let _: Option<()> = self.run(&command);
    }

    /// Claims again every token held, in batches of one round trip each.
    fn reassert(&mut self) {
        let held: Vec<(Token, u64)> = self.held.iter().map(|(t, e)| (*t, *e)).collect();
        for batch in held.chunks(REASSERT_BATCH) {
            let mut pipe = redis::pipe();
            for (token, expires_at) in batch {
                pipe.add_command(claim_command(&self.keys, token, *expires_at));
            }
            let Some(holders) = self
                .redis
                .query(|connection| pipe.query::<Vec<String>>(connection))
            else {
                return;
            };
            for ((token, _), holder) in batch.iter().zip(holders) {
                if !holder.is_empty() {
                    // Both nodes admitted it while Redis was away: the other keeps the
                    // claim; this connection stays until it closes.
                    log::warn!(holder = holder.as_str(); "cluster: a token is connected on two nodes since Redis was away");
                    self.held.remove(token);
                }
            }
        }
    }

    fn claim(&mut self, token: Token, expires_at: u64) -> ClaimOutcome {
        let command = claim_command(&self.keys, &token, expires_at);
        let outcome = match self.run_retrying::<String>(&command) {
            Some(holder) if holder.is_empty() => ClaimOutcome::Granted,
            Some(holder) => ClaimOutcome::HeldElsewhere(holder),
            None => ClaimOutcome::Unavailable,
        };
        match outcome {
            ClaimOutcome::Granted | ClaimOutcome::Unavailable => {
                self.held.insert(token, expires_at);
            }
            ClaimOutcome::HeldElsewhere(_) => {}
        }
        outcome
    }

    fn release(&mut self, token: &Token) {
        if self.held.remove(token).is_none() {
            return;
        }
        let mut command = redis::cmd("EVAL");
        command
            .arg(RELEASE_SCRIPT)
            .arg(1)
            .arg(self.keys.claim(token))
            .arg(self.keys.instance.as_str());
        let _: Option<i64> = self.run_retrying(&command);
    }

    /// The node stops: its alive key goes, so its claims stop counting at once.
    fn leave(&mut self) {
        let mut command = redis::cmd("DEL");
        command.arg(self.keys.alive());
        let _: Option<i64> = self.run(&command);
    }
}

/// The claims thread: answers each request in order until `stop`.
pub(super) fn claims_loop(
    client: &redis::Client,
    keys: ClaimKeys,
    requests: &Receiver<ClaimRequest>,
    stop: &AtomicBool,
    inbound: &SyncSender<Inbound>,
    wake: &(dyn Fn() + Send + Sync),
) {
    let mut claims = Claims {
        redis: Reconnecting::new(client, "claims"),
        keys,
        held: HashMap::new(),
        alive_ttl: None,
    };
    while !stop.load(Ordering::SeqCst) {
        claims.connect();
        let request = match requests.recv_timeout(POLL) {
            Ok(request) => request,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match request {
            ClaimRequest::Claim {
                id,
                token,
                expires_at,
            } => {
                let outcome = claims.claim(token, expires_at);
                let answer = ClaimAnswer { id, token, outcome };
                if inbound.send(Inbound::Claimed(answer)).is_err() {
                    break;
                }
                wake();
            }
            ClaimRequest::Release { token } => claims.release(&token),
            ClaimRequest::Alive { ttl } => {
                claims.alive_ttl = Some(ttl);
                claims.refresh_alive();
            }
            ClaimRequest::Leave => break,
            ClaimRequest::Connect => {
                claims.redis.reset();
                claims.connect();
            }
        }
    }
    claims.leave();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_prefix_the_token_and_the_instance() {
        let keys = ClaimKeys {
            prefix: "wson".to_owned(),
            instance: "a#00ff".to_owned(),
        };
        let token = Token::from_array([b'k'; 32]);
        let mut expected = b"wson:claim:".to_vec();
        expected.extend_from_slice(&[b'k'; 32]);
        assert_eq!(keys.claim(&token), expected);
        assert_eq!(keys.alive(), "wson:alive:a#00ff");
        assert!(keys.alive().starts_with(&keys.alive_prefix()));
    }
}
