//! The history of topics in Redis (`[history]` with `[cluster]`; README "Missed messages").
//! Reads (`Position`, `Range`) run on a thread of its own with a fourth Redis connection,
//! so that the loop never waits on Redis: it hands requests over and takes the answers when
//! they come, as with claims. Publications run on the publisher's connection (`link.rs`),
//! in order with the node's other messages, and are answered the same way.
//!
//! Redis is the sequencer and the store. Per topic, a hash `PREFIX:position:TOPIC` holds
//! the epoch (set once, to a random value, when the hash is missing: a Redis restarted
//! without persistence, or a topic abandoned past its TTL, begins a new epoch) and the last
//! offset; a stream `PREFIX:history:TOPIC` holds the publications, the entry of offset N
//! under the id `0-N` with the frame as the WebSocket clients get it (`f`) and when it was
//! published (`t`, Unix milliseconds). One Lua script per publication, atomic in Redis,
//! takes the next offset, appends the entry (trimmed to `[history] size`, exactly), refreshes
//! both keys' TTL and PUBLISHes the positioned publication (`wire::ClusterMessage::Kept`) on
//! the all-channel: every node, the publishing one included, hears the publications of a
//! topic in the order of their offsets, and mirrors them.
//!
//! `max_age` is applied on read: a range whose first wanted entry is older is `gone`. The
//! keys expire `KEY_TTL_AGES` times `max_age` after the topic's last publication or
//! position read, so an abandoned topic leaves nothing behind.
//!
//! A request the thread cannot run (Redis away, or it refused the script) is answered
//! `Unavailable` at once: the loop decides what that means (README).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use super::link::{Inbound, POLL};
use super::reconnecting::Reconnecting;
use crate::resume::Position;

/// The keys of a topic expire this many times `[history] max_age` after their last use.
pub const KEY_TTL_AGES: u32 = 4;

/// `KEYS[1]` the position hash, `KEYS[2]` the stream. `ARGV`: 1 an epoch for a new history,
/// 2 `size`, 3 the TTL in ms, 4 the channel, 5 and 6 the `Kept` message's prefix and suffix,
/// 7 the frame, 8 now (Unix ms). Returns `{epoch, offset}`.
const PUBLISH_SCRIPT: &str = "\
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('DEL', KEYS[2])
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local offset = string.format('%d', redis.call('HINCRBY', KEYS[1], 'last', 1))
redis.call('XADD', KEYS[2], 'MAXLEN', '=', ARGV[2], '0-' .. offset, 'f', ARGV[7], 't', ARGV[8])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. string.len(epoch) .. ':' .. epoch
  .. string.len(offset) .. ':' .. offset .. string.len(ARGV[7]) .. ':' .. ARGV[7] .. ARGV[6])
return {epoch, offset}";

/// The topic's position, its history begun (epoch `ARGV[1]`) when it has none, so a
/// publication after the read continues from it (the page-load pattern). `ARGV[2]`: TTL.
const POSITION_SCRIPT: &str = "\
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'last', 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {redis.call('HGET', KEYS[1], 'epoch'), redis.call('HGET', KEYS[1], 'last') or '0'}";

/// The entries from offset `ARGV[1]` on (at most `ARGV[2]`) with the position they were
/// read at, together: `{epoch, last, entries}`, or `{}` when the topic has no history.
const RANGE_SCRIPT: &str = "\
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {} end
local last = redis.call('HGET', KEYS[1], 'last') or '0'
return {epoch, last, redis.call('XRANGE', KEYS[2], '0-' .. ARGV[1], '+', 'COUNT', ARGV[2])}";

/// What the loop asks the history thread; each is answered under its `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryRequest {
    /// Position `frame` in `topic` and publish it to every node (`prefix`, `suffix`:
    /// `wire::kept_parts`).
    Publish {
        id: u64,
        topic: String,
        frame: Vec<u8>,
        prefix: Vec<u8>,
        suffix: Vec<u8>,
        size: usize,
        ttl: Duration,
    },
    /// The topic's position (`G`).
    Position {
        id: u64,
        topic: String,
        ttl: Duration,
    },
    /// The entries after offset `after`, at most `count` (a resume the mirror cannot serve).
    Range {
        id: u64,
        topic: String,
        after: u64,
        count: usize,
    },
}

/// One publication as the stream holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub offset: u64,
    pub frame: Vec<u8>,
    /// Unix milliseconds.
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryOutcome {
    /// A publication's position, or the topic's (`Publish`, `Position`).
    Positioned(Position),
    /// `Range`: the position when read (`None`: no history in Redis) and the entries.
    Range {
        position: Option<Position>,
        entries: Vec<StoredEntry>,
    },
    /// Redis could not be asked, or refused.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryAnswer {
    pub id: u64,
    pub outcome: HistoryOutcome,
}

/// Names the Redis keys of topics' histories.
#[derive(Debug, Clone)]
pub struct HistoryKeys {
    pub prefix: String,
    /// Where the publish script publishes (`LinkSettings::all_channel`).
    pub channel: String,
}

impl HistoryKeys {
    fn position(&self, topic: &str) -> String {
        format!("{}:position:{topic}", self.prefix)
    }

    fn stream(&self, topic: &str) -> String {
        format!("{}:history:{topic}", self.prefix)
    }
}

/// A fresh epoch: 16 random hex digits (the clock's nanoseconds if randomness fails).
fn fresh_epoch() -> String {
    let mut random = [0_u8; 8];
    if getrandom::fill(&mut random).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        random = (nanos as u64).to_be_bytes();
    }
    random.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        redis::Value::SimpleString(text) => Some(text.clone()),
        redis::Value::Int(number) => Some(number.to_string()),
        _ => None,
    }
}

fn number(value: &redis::Value) -> Option<u64> {
    text(value)?.parse().ok()
}

/// `{epoch, offset}` as the publish and position scripts answer.
fn position_of(value: &redis::Value) -> Option<Position> {
    let redis::Value::Array(items) = value else {
        return None;
    };
    let [epoch, offset] = items.as_slice() else {
        return None;
    };
    Some(Position {
        epoch: text(epoch)?,
        offset: number(offset)?,
    })
}

/// One XRANGE entry: `[id, [field, value, ...]]`, the id `0-OFFSET`.
fn entry_of(value: &redis::Value) -> Option<StoredEntry> {
    let redis::Value::Array(parts) = value else {
        return None;
    };
    let [id, redis::Value::Array(fields)] = parts.as_slice() else {
        return None;
    };
    let offset = text(id)?.strip_prefix("0-")?.parse().ok()?;
    let mut frame = None;
    let mut at_ms = 0;
    for pair in fields.chunks(2) {
        match pair {
            [
                redis::Value::BulkString(name),
                redis::Value::BulkString(value),
            ] => match name.as_slice() {
                b"f" => frame = Some(value.clone()),
                b"t" => {
                    at_ms = std::str::from_utf8(value).ok()?.parse().ok()?;
                }
                _ => {}
            },
            _ => return None,
        }
    }
    Some(StoredEntry {
        offset,
        frame: frame?,
        at_ms,
    })
}

/// The range script's answer.
fn range_of(value: &redis::Value) -> Option<HistoryOutcome> {
    let redis::Value::Array(items) = value else {
        return None;
    };
    match items.as_slice() {
        [] => Some(HistoryOutcome::Range {
            position: None,
            entries: Vec::new(),
        }),
        [epoch, last, redis::Value::Array(entries)] => Some(HistoryOutcome::Range {
            position: Some(Position {
                epoch: text(epoch)?,
                offset: number(last)?,
            }),
            entries: entries.iter().map(entry_of).collect::<Option<_>>()?,
        }),
        _ => None,
    }
}

/// The publish script's command for `request` (a `Publish`; anything else is a no-op
/// PING), run by the publisher thread among the node's other messages.
pub(super) fn publish_command(keys: &HistoryKeys, request: &HistoryRequest) -> redis::Cmd {
    let HistoryRequest::Publish {
        topic,
        frame,
        prefix,
        suffix,
        size,
        ttl,
        ..
    } = request
    else {
        return redis::cmd("PING");
    };
    let mut command = redis::cmd("EVAL");
    command
        .arg(PUBLISH_SCRIPT)
        .arg(2)
        .arg(keys.position(topic))
        .arg(keys.stream(topic))
        .arg(fresh_epoch())
        .arg(*size)
        .arg(millis(*ttl))
        .arg(keys.channel.as_str())
        .arg(prefix.as_slice())
        .arg(suffix.as_slice())
        .arg(frame.as_slice())
        .arg(unix_millis());
    command
}

/// The answer to a `Publish` from what its script returned (`None`: it could not run).
pub(super) fn publish_answer(
    request: &HistoryRequest,
    value: Option<&redis::Value>,
) -> HistoryAnswer {
    HistoryAnswer {
        id: request.id(),
        outcome: value
            .and_then(position_of)
            .map_or(HistoryOutcome::Unavailable, HistoryOutcome::Positioned),
    }
}

struct Store<'a> {
    redis: Reconnecting<'a>,
    keys: HistoryKeys,
}

impl Store<'_> {
    /// `run`, once more on a new connection when the one it had was dead (a Redis restart
    /// shows only at the next command). Not after a timeout unless `idempotent`: a
    /// publication may have been positioned then, and must not be twice (its answer is
    /// lost, and the loop counts it unpositioned although the channel brings it).
    fn run_retrying(&mut self, command: &redis::Cmd, idempotent: bool) -> Option<redis::Value> {
        let had_connection = self.redis.is_connected();
        match self.redis.run(command) {
            Some(value) => Some(value),
            None if had_connection
                && !self.redis.is_connected()
                && (idempotent || !self.redis.timed_out()) =>
            {
                self.redis.connect();
                self.redis.run(command)
            }
            None => None,
        }
    }

    fn answer(&mut self, request: &HistoryRequest) -> HistoryOutcome {
        let mut command = redis::cmd("EVAL");
        match request {
            HistoryRequest::Publish { .. } => {
                let command = publish_command(&self.keys, request);
                let value = self.run_retrying(&command, false);
                publish_answer(request, value.as_ref()).outcome
            }
            HistoryRequest::Position { topic, ttl, .. } => {
                command
                    .arg(POSITION_SCRIPT)
                    .arg(2)
                    .arg(self.keys.position(topic))
                    .arg(self.keys.stream(topic))
                    .arg(fresh_epoch())
                    .arg(millis(*ttl));
                let value = self.run_retrying(&command, true);
                value
                    .as_ref()
                    .and_then(position_of)
                    .map_or(HistoryOutcome::Unavailable, HistoryOutcome::Positioned)
            }
            HistoryRequest::Range {
                topic,
                after,
                count,
                ..
            } => {
                command
                    .arg(RANGE_SCRIPT)
                    .arg(2)
                    .arg(self.keys.position(topic))
                    .arg(self.keys.stream(topic))
                    .arg(after.saturating_add(1))
                    .arg(*count);
                let value = self.run_retrying(&command, true);
                value
                    .as_ref()
                    .and_then(range_of)
                    .unwrap_or(HistoryOutcome::Unavailable)
            }
        }
    }
}

impl HistoryRequest {
    fn id(&self) -> u64 {
        match self {
            HistoryRequest::Publish { id, .. }
            | HistoryRequest::Position { id, .. }
            | HistoryRequest::Range { id, .. } => *id,
        }
    }
}

/// The history thread: answers each request in order until `stop`.
pub(super) fn history_loop(
    client: &redis::Client,
    keys: HistoryKeys,
    requests: &Receiver<HistoryRequest>,
    stop: &AtomicBool,
    inbound: &SyncSender<Inbound>,
    wake: &(dyn Fn() + Send + Sync),
) {
    let mut store = Store {
        redis: Reconnecting::new(client, "history"),
        keys,
    };
    while !stop.load(Ordering::SeqCst) {
        store.redis.connect();
        let request = match requests.recv_timeout(POLL) {
            Ok(request) => request,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // A request met without a connection tries one at once: the backoff is for the
        // idle thread, not for a publication waiting.
        if !store.redis.is_connected() {
            store.redis.retry_now();
            store.redis.connect();
        }
        let outcome = store.answer(&request);
        let answer = HistoryAnswer {
            id: request.id(),
            outcome,
        };
        if inbound.send(Inbound::History(answer)).is_err() {
            break;
        }
        wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn keys_of_a_topic_do_not_meet_another_topics() {
        let keys = HistoryKeys {
            prefix: "wson".to_owned(),
            channel: "wson:all".to_owned(),
        };
        assert_eq!(keys.stream("news"), "wson:history:news");
        assert_eq!(keys.position("news"), "wson:position:news");
        // A topic named like another's key is another key.
        assert_ne!(keys.stream("news:x"), keys.position("news"));
    }

    #[test]
    fn epochs_are_what_a_resume_accepts() {
        let epoch = fresh_epoch();
        assert_eq!(epoch.len(), 16);
        let resume = format!("news@{epoch}:3");
        assert!(crate::resume::parse_value(&resume, 1).is_ok());
    }

    #[test]
    fn script_answers_are_read_and_odd_ones_refused() {
        let position = Value::Array(vec![bulk("00ff"), Value::Int(7)]);
        assert_eq!(
            position_of(&position),
            Some(Position {
                epoch: "00ff".to_owned(),
                offset: 7
            })
        );
        assert_eq!(position_of(&Value::Array(vec![bulk("00ff")])), None);
        let entry = |id: &str, frame: &str, at: &str| {
            Value::Array(vec![
                bulk(id),
                Value::Array(vec![bulk("f"), bulk(frame), bulk("t"), bulk(at)]),
            ])
        };
        let range = Value::Array(vec![
            bulk("00ff"),
            bulk("9"),
            Value::Array(vec![entry("0-8", "a", "1000"), entry("0-9", "b", "1001")]),
        ]);
        assert_eq!(
            range_of(&range),
            Some(HistoryOutcome::Range {
                position: Some(Position {
                    epoch: "00ff".to_owned(),
                    offset: 9
                }),
                entries: vec![
                    StoredEntry {
                        offset: 8,
                        frame: b"a".to_vec(),
                        at_ms: 1000
                    },
                    StoredEntry {
                        offset: 9,
                        frame: b"b".to_vec(),
                        at_ms: 1001
                    },
                ],
            })
        );
        assert_eq!(
            range_of(&Value::Array(Vec::new())),
            Some(HistoryOutcome::Range {
                position: None,
                entries: Vec::new()
            })
        );
        let bad_id = Value::Array(vec![
            bulk("00ff"),
            bulk("9"),
            Value::Array(vec![entry("1700000000000-0", "a", "1")]),
        ]);
        assert_eq!(range_of(&bad_id), None);
    }
}
