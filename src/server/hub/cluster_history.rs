//! The hub's side of the history in Redis (`[history]` with `[cluster]`; README "Missed
//! messages"; `cluster::kept` is the Redis side).
//!
//! A publication to a topic with history goes to Redis, which positions it and publishes
//! it on the all-channel (`Kept`): every node, this one included, delivers it when it
//! arrives, in the order of its offsets, and keeps it in its mirror (`History::record_at`).
//! The control connection that published waits (`Outcome::LaterInOrder`, `Hold`) until
//! this node has delivered it, so its next commands cannot overtake it here.
//!
//! A resume the mirror can serve is served as on a single node. One it cannot (the node
//! started after the client's offset, the mirror lags, lost its entries to its own bounds)
//! asks Redis for the range; live publications of that topic for that client are held
//! meanwhile (at most `[history] max_held`, past which the client is told `gone`), then
//! the fetched range is replayed and the held ones with a later offset follow.
//!
//! With Redis out of reach, a publication is delivered to this node's clients only, without
//! a position: positioned clients get a `reload` notice (`unpositioned`) before it.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cluster::kept::{KEY_TTL_AGES, unix_millis};
use crate::cluster::{HistoryAnswer, HistoryOutcome, HistoryRequest, RedisState, StoredEntry};
use crate::control::command::{Refusal, Reply};
use crate::resume::{Position, Reload, Resume, position_notice, reload_notice};
use crate::server::commands::Ticket;
use crate::server::hub::Hub;
use crate::server::hub::cluster::Asked;
use crate::server::hub::delivery::history_rules;
use crate::server::outbound::shared_frame;
use crate::server::settings::Settings;
use crate::server::slab::Key;
use crate::server::stats::Stats;
use crate::ws::frame::OpCode;

/// How long past `[cluster] request_timeout` a request may go unanswered by the history
/// thread (its own Redis timeouts are shorter) before its asker is let go.
const GRACE: Duration = Duration::from_secs(5);

/// A publication handed to Redis, for `asker` (a control or HTTP connection).
struct Publishing {
    /// `None`: nobody waits (a publication of the hub's own).
    asker: Option<Key>,
    ticket: Ticket,
    topic: String,
    frame: Rc<[u8]>,
    deadline: Instant,
}

/// A publication Redis positioned, whose asker waits until this node has delivered it.
struct Delivering {
    asker: Key,
    ticket: Ticket,
    topic: String,
    position: Position,
    deadline: Instant,
}

/// A live publication held for a resume being fetched: (epoch, offset, notice, frame).
type Held = (Rc<str>, u64, Rc<[u8]>, Rc<[u8]>);

/// A resume served from Redis: what arrives live for `client` in `topic` meanwhile.
struct Fetch {
    client: Key,
    topic: String,
    seen: Position,
    held: Vec<Held>,
    /// Past `max_held`: told `gone` already; nothing more is held or replayed.
    overflowed: bool,
    deadline: Instant,
}

/// What the hub's cluster side keeps for the history.
#[derive(Default)]
pub(super) struct KeptSide {
    publishing: HashMap<u64, Publishing>,
    delivering: Vec<Delivering>,
    /// `G` asked of Redis: the asker, its ticket and the topic.
    reading: HashMap<u64, (Key, Ticket, String)>,
    fetching: HashMap<u64, Fetch>,
    /// Resumes served from Redis.
    pub(super) fetches: u64,
    /// Publications delivered here only, without a position (Redis out of reach).
    pub(super) unpositioned: u64,
}

impl Hub {
    /// True when `topic`'s history is in Redis: `[cluster]` and `[history] prefixes`.
    pub fn cluster_keeps_history(&self, topic: &str, settings: &Settings) -> bool {
        self.clustered() && self.keeps_history(topic, settings)
    }

    /// The topic's position as this node's mirror has it (`G` with Redis away).
    pub fn mirrored_position(&self, topic: &str) -> Option<Position> {
        self.history.known_position(topic)
    }

    /// A fresh id from the cluster's counter (tickets are unique for the server's life),
    /// or `None` when Redis is not up.
    fn history_request_id(&mut self) -> Option<u64> {
        let cluster = self.cluster.as_mut()?;
        if cluster.link.state() != RedisState::Up {
            return None;
        }
        Some(cluster.next_id())
    }

    /// A publication for the publisher's connection, behind what this loop turn sent the
    /// other nodes before it (flushed now): Redis orders it among them as they were sent.
    fn ask_publish(&mut self, request: HistoryRequest) -> bool {
        self.cluster.as_mut().is_some_and(|cluster| {
            cluster.flush();
            cluster.link.publish_kept(request)
        })
    }

    fn ask_history(&mut self, request: HistoryRequest) -> bool {
        self.cluster
            .as_mut()
            .is_some_and(|cluster| cluster.link.ask_history(request))
    }

    /// Hands one publication of `asker`'s (a control or HTTP connection; `None` for one
    /// nobody waits for) to Redis: `Some(ticket)`, resolved once this node has delivered it
    /// positioned; `None` when Redis is out of reach, and then it has been delivered to this
    /// node's clients, unpositioned.
    #[allow(clippy::too_many_arguments)]
    pub fn cluster_publish_kept(
        &mut self,
        asker: Option<Key>,
        topic: &str,
        frame: &Rc<[u8]>,
        options: &[u8],
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) -> Option<Ticket> {
        let asked = self.history_request_id().and_then(|id| {
            let cluster = self.cluster.as_ref()?;
            let (prefix, suffix) =
                crate::cluster::wire::kept_parts(cluster.link.instance(), topic, options);
            let request = HistoryRequest::Publish {
                id,
                topic: topic.to_owned(),
                frame: frame.to_vec(),
                prefix,
                suffix,
                size: settings.history.size,
                ttl: settings.history.max_age * KEY_TTL_AGES,
            };
            self.ask_publish(request).then_some(id)
        });
        let Some(id) = asked else {
            self.deliver_unpositioned(topic, frame, 1, settings, stats);
            return None;
        };
        let ticket = Ticket(id);
        if let Some(cluster) = &mut self.cluster {
            cluster.kept.publishing.insert(
                id,
                Publishing {
                    asker,
                    ticket,
                    topic: topic.to_owned(),
                    frame: Rc::clone(frame),
                    deadline: now + settings.cluster.request_timeout + GRACE,
                },
            );
        }
        Some(ticket)
    }

    /// `G` of a topic whose history is in Redis.
    pub fn cluster_history_position(
        &mut self,
        asker: Key,
        topic: &str,
        settings: &Settings,
        _now: Instant,
    ) -> Asked {
        let Some(id) = self.history_request_id() else {
            return Asked::Unavailable;
        };
        let request = HistoryRequest::Position {
            id,
            topic: topic.to_owned(),
            ttl: settings.history.max_age * KEY_TTL_AGES,
        };
        if !self.ask_history(request) {
            return Asked::Unavailable;
        }
        let ticket = Ticket(id);
        if let Some(cluster) = &mut self.cluster {
            cluster
                .kept
                .reading
                .insert(id, (asker, ticket, topic.to_owned()));
        }
        Asked::Later(ticket)
    }

    /// Delivers publications (`messages` whole frames in `frames`) Redis did not position
    /// to this node's members of `topic`: as they are to plain ones, after a `reload` notice
    /// (`unpositioned`) to positioned ones.
    pub(super) fn deliver_unpositioned(
        &mut self,
        topic: &str,
        frames: &Rc<[u8]>,
        messages: usize,
        settings: &Settings,
        stats: &mut Stats,
    ) {
        if let Some(cluster) = &mut self.cluster {
            cluster.kept.unpositioned += 1;
        }
        let position = self.history.known_position(topic);
        let text = reload_notice(topic, Reload::Unpositioned, position.as_ref());
        let notice = shared_frame(true, OpCode::Text, text.as_bytes());
        let (plain, positioned) = self.members_by_position(topic, &[]);
        let noticed = [(&notice, 1), (frames, messages)];
        self.deliver_split(
            &plain,
            frames,
            messages,
            &positioned,
            &noticed,
            settings,
            stats,
        );
    }

    /// A positioned publication heard on the channel (any node's, this one's included):
    /// kept in the mirror and delivered, unless heard already.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cluster_kept_received(
        &mut self,
        topic: &str,
        epoch: &str,
        offset: u64,
        frame: &[u8],
        options: &[u8],
        settings: &Settings,
        stats: &mut Stats,
    ) {
        let frame: Rc<[u8]> = Rc::from(frame);
        if !self.keeps_history(topic, settings) {
            // This node's `[history] prefixes` differ: a publication like any other here.
            self.publish(topic, &frame, 1, settings, stats);
        } else {
            let now = Instant::now();
            let position = Position {
                epoch: epoch.to_owned(),
                offset,
            };
            let rules = history_rules(settings);
            let Some(notice) =
                self.history
                    .record_at(topic, &position, Rc::clone(&frame), rules, now)
            else {
                return;
            };
            let held = self.hold_for_fetches(topic, &position, &notice, &frame, settings, stats);
            let (plain, positioned) = self.members_by_position(topic, &held);
            let noticed = [(&notice, 1), (&frame, 1)];
            self.deliver_split(&plain, &frame, 1, &positioned, &noticed, settings, stats);
            self.delivered_here(topic, &position);
            self.kept_to_wamp(topic, &frame, options, Some(&position), settings);
            return;
        }
        self.kept_to_wamp(topic, &frame, options, None, settings);
    }

    /// The backend realm's WAMP subscribers hear a publication that came back from Redis,
    /// with its position when it has one.
    fn kept_to_wamp(
        &mut self,
        topic: &str,
        frame: &[u8],
        options: &[u8],
        position: Option<&Position>,
        settings: &Settings,
    ) {
        let options = match crate::server::commands::publish_options(b'x', options, settings) {
            Ok(options) => options,
            Err(error) => {
                log::warn!(topic, reason:% = error; "cluster publication's WAMP options refused");
                return;
            }
        };
        if let Some((binary, message)) = crate::cluster::wire::messages_in(frame).first() {
            self.wamp_publish_from_plain(
                topic,
                *binary,
                message,
                &options,
                position,
                settings,
                Instant::now(),
            );
        }
    }

    /// Holds a live publication for the clients whose resume of `topic` is being fetched;
    /// returns them (they get nothing now). One past `max_held` is told `gone` and holds
    /// nothing more.
    fn hold_for_fetches(
        &mut self,
        topic: &str,
        position: &Position,
        notice: &Rc<[u8]>,
        frame: &Rc<[u8]>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> Vec<Key> {
        let Some(cluster) = &mut self.cluster else {
            return Vec::new();
        };
        let mut held = Vec::new();
        let mut overflowing = Vec::new();
        let epoch: Rc<str> = Rc::from(position.epoch.as_str());
        for fetch in cluster.kept.fetching.values_mut() {
            if fetch.topic != topic || fetch.overflowed {
                continue;
            }
            if fetch.held.len() >= settings.history.max_held {
                fetch.overflowed = true;
                fetch.held.clear();
                overflowing.push(fetch.client);
                continue;
            }
            fetch.held.push((
                Rc::clone(&epoch),
                position.offset,
                Rc::clone(notice),
                Rc::clone(frame),
            ));
            held.push(fetch.client);
        }
        for client in overflowing {
            // Told now, it gets this publication and those after it live.
            let text = reload_notice(topic, Reload::Gone, Some(position));
            let notice = shared_frame(true, OpCode::Text, text.as_bytes());
            self.send_frames(client, &[notice], settings, stats);
        }
        held
    }

    /// This node has delivered `position` of `topic`: the askers waiting for it go on.
    /// (Only askers wait: a publication nobody waits for is not listed.)
    fn delivered_here(&mut self, topic: &str, position: &Position) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let mut done = Vec::new();
        cluster.kept.delivering.retain(|waiting| {
            let reached = waiting.topic == topic
                && waiting.position.epoch == position.epoch
                && waiting.position.offset <= position.offset;
            if reached {
                done.push((waiting.asker, waiting.ticket, waiting.position.clone()));
            }
            !reached
        });
        for (asker, ticket, position) in done {
            cluster
                .replies
                .push((asker, ticket, Reply::Position(Some(position))));
        }
    }

    /// Starts serving `item` of `client` from Redis (the mirror could not); false when
    /// Redis is out of reach (the caller answers from the mirror).
    pub(super) fn cluster_fetch(
        &mut self,
        client: Key,
        item: &Resume,
        settings: &Settings,
        now: Instant,
    ) -> bool {
        let Some(id) = self.history_request_id() else {
            return false;
        };
        let request = HistoryRequest::Range {
            id,
            topic: item.topic.clone(),
            after: item.position.offset,
            count: settings.history.size,
        };
        if !self.ask_history(request) {
            return false;
        }
        if let Some(cluster) = &mut self.cluster {
            cluster.kept.fetches += 1;
            cluster.kept.fetching.insert(
                id,
                Fetch {
                    client,
                    topic: item.topic.clone(),
                    seen: item.position.clone(),
                    held: Vec::new(),
                    overflowed: false,
                    deadline: now + settings.cluster.request_timeout + GRACE,
                },
            );
        }
        true
    }

    /// The history thread's answers since the last call.
    pub(super) fn cluster_history_answered(&mut self, settings: &Settings, stats: &mut Stats) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        for answer in cluster.link.take_history_answers() {
            self.history_answered(answer, settings, stats);
        }
    }

    fn history_answered(&mut self, answer: HistoryAnswer, settings: &Settings, stats: &mut Stats) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let HistoryAnswer { id, outcome } = answer;
        if let Some(publishing) = cluster.kept.publishing.remove(&id) {
            let Publishing {
                asker,
                ticket,
                topic,
                frame,
                ..
            } = publishing;
            match outcome {
                HistoryOutcome::Positioned(position) => {
                    let Some(asker) = asker else {
                        return;
                    };
                    let heard = self.history.known_position(&topic).is_some_and(|mirror| {
                        mirror.epoch == position.epoch && mirror.offset >= position.offset
                    });
                    if heard {
                        cluster
                            .replies
                            .push((asker, ticket, Reply::Position(Some(position))));
                    } else {
                        cluster.kept.delivering.push(Delivering {
                            asker,
                            ticket,
                            topic,
                            position,
                            deadline: Instant::now() + settings.cluster.request_timeout,
                        });
                    }
                }
                HistoryOutcome::Range { .. } | HistoryOutcome::Unavailable => {
                    if let Some(asker) = asker {
                        let refused = Reply::Refused(Refusal::ClusterUnavailable);
                        cluster.replies.push((asker, ticket, refused));
                    }
                    self.deliver_unpositioned(&topic, &frame, 1, settings, stats);
                }
            }
            return;
        }
        if let Some((asker, ticket, topic)) = cluster.kept.reading.remove(&id) {
            let reply = match outcome {
                HistoryOutcome::Positioned(position) => Reply::Position(Some(position)),
                HistoryOutcome::Range { .. } | HistoryOutcome::Unavailable => {
                    match self.history.known_position(&topic) {
                        Some(position) => Reply::Position(Some(position)),
                        None => Reply::Refused(Refusal::ClusterUnavailable),
                    }
                }
            };
            cluster.replies.push((asker, ticket, reply));
            return;
        }
        if let Some(fetch) = cluster.kept.fetching.remove(&id) {
            self.fetched(fetch, outcome, settings, stats);
        }
    }

    /// Serves a resume from what Redis answered, then what was held meanwhile.
    fn fetched(
        &mut self,
        fetch: Fetch,
        outcome: HistoryOutcome,
        settings: &Settings,
        stats: &mut Stats,
    ) {
        let Fetch {
            client,
            topic,
            seen,
            held,
            overflowed,
            ..
        } = fetch;
        if overflowed {
            return;
        }
        let mut frames: Vec<Rc<[u8]>> = Vec::new();
        let reload = |reload: Reload, position: Option<&Position>| {
            let text = reload_notice(&topic, reload, position);
            shared_frame(true, OpCode::Text, text.as_bytes())
        };
        // The last offset the client has of `seen.epoch` once served: held ones up to it are
        // in the replay already.
        let mut served = None;
        match outcome {
            HistoryOutcome::Range { position: None, .. } => {
                frames.push(reload(Reload::Epoch, None))
            }
            HistoryOutcome::Range {
                position: Some(position),
                entries,
            } => match replay_from(&seen, &position, entries, settings.history.max_age) {
                Ok(entries) => {
                    served = Some(seen.offset);
                    for entry in entries {
                        let at = Position {
                            epoch: position.epoch.clone(),
                            offset: entry.offset,
                        };
                        let notice = position_notice(&topic, &at);
                        frames.push(shared_frame(true, OpCode::Text, notice.as_bytes()));
                        frames.push(Rc::from(entry.frame));
                        served = Some(entry.offset);
                    }
                }
                Err(why) => frames.push(reload(why, Some(&position))),
            },
            // Redis could not be asked after all: the mirror's answer.
            HistoryOutcome::Positioned(_) | HistoryOutcome::Unavailable => {
                let rules = history_rules(settings);
                match self.history.replay(&topic, &seen, rules, Instant::now()) {
                    crate::server::hub::history::Replay::Missed(entries) => {
                        served = Some(seen.offset);
                        for entry in entries {
                            served = Some(entry.offset);
                            frames.push(entry.notice);
                            frames.push(entry.frame);
                        }
                    }
                    crate::server::hub::history::Replay::Reload(why, position) => {
                        frames.push(reload(why, position.as_ref()));
                    }
                }
            }
        }
        frames.extend(held_after(held, &seen.epoch, served));
        self.send_frames(client, &frames, settings, stats);
    }

    /// Askers and resumes the history thread left unanswered past their deadline: let go.
    pub fn cluster_history_tick(&mut self, settings: &Settings, stats: &mut Stats, now: Instant) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let kept = &mut cluster.kept;
        let mut late = Vec::new();
        kept.publishing.retain(|_, publishing| {
            let due = publishing.deadline <= now;
            if due && let Some(asker) = publishing.asker {
                late.push((
                    asker,
                    publishing.ticket,
                    Reply::Refused(Refusal::ClusterUnavailable),
                ));
            }
            !due
        });
        kept.delivering.retain(|waiting| {
            let due = waiting.deadline <= now;
            if due {
                // Positioned in Redis, not heard here (the subscription is down): the
                // backend has its position; this node's clients may resume for it.
                late.push((
                    waiting.asker,
                    waiting.ticket,
                    Reply::Position(Some(waiting.position.clone())),
                ));
            }
            !due
        });
        if !late.is_empty() {
            log::warn!(publications = late.len(); "cluster: history publications not heard back from Redis in time");
        }
        cluster.replies.extend(late);
        let due: Vec<u64> = kept
            .fetching
            .iter()
            .filter(|(_, fetch)| fetch.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(cluster) = &mut self.cluster
                && let Some(fetch) = cluster.kept.fetching.remove(&id)
            {
                self.fetched(fetch, HistoryOutcome::Unavailable, settings, stats);
            }
        }
    }
}

/// The frames (notice, publication) of the live publications held during a fetch that the
/// replay did not give: another epoch's, or later than `served`, the last offset of `epoch`
/// the client has once replayed (`None`: it was told to reload, and gets them all).
fn held_after(held: Vec<Held>, epoch: &str, served: Option<u64>) -> Vec<Rc<[u8]>> {
    let mut frames = Vec::new();
    for (held_epoch, offset, notice, frame) in held {
        let replayed = *held_epoch == *epoch && served.is_some_and(|last| offset <= last);
        if !replayed {
            frames.push(notice);
            frames.push(frame);
        }
    }
    frames
}

/// The entries a client at `seen` missed, from a range read at `position`, or why it
/// reloads. `entries` start after `seen.offset` (XRANGE from `seen.offset + 1`).
fn replay_from(
    seen: &Position,
    position: &Position,
    entries: Vec<StoredEntry>,
    max_age: Duration,
) -> Result<Vec<StoredEntry>, Reload> {
    if seen.epoch != position.epoch {
        return Err(Reload::Epoch);
    }
    if seen.offset > position.offset {
        return Err(Reload::Ahead);
    }
    if seen.offset == position.offset {
        return Ok(Vec::new());
    }
    let oldest = unix_millis().saturating_sub(u64::try_from(max_age.as_millis()).unwrap_or(0));
    match entries.first() {
        Some(first) if first.offset == seen.offset + 1 && first.at_ms >= oldest => {}
        // Trimmed (`size`), expired (`max_age`), or gone with the stream.
        Some(_) | None => return Err(Reload::Gone),
    }
    // Not what a node stored (another writer of the keys): no byte of it reaches a client.
    let contiguous = entries
        .iter()
        .zip(seen.offset + 1..)
        .all(|(entry, offset)| {
            entry.offset == offset && crate::cluster::wire::is_one_message(&entry.frame)
        });
    if !contiguous {
        return Err(Reload::Gone);
    }
    Ok(entries
        .into_iter()
        .filter(|entry| entry.offset <= position.offset)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: epoch.to_owned(),
            offset,
        }
    }

    fn stored(offsets: std::ops::RangeInclusive<u64>, at_ms: u64) -> Vec<StoredEntry> {
        offsets
            .map(|offset| StoredEntry {
                offset,
                frame: crate::ws::frame::encode_frame(true, OpCode::Text, b"m"),
                at_ms,
            })
            .collect()
    }

    #[test]
    fn held_publications_follow_the_replay_without_a_repeat() {
        let held = |epoch: &str, offset: u64| -> Held {
            let text = format!("{epoch}:{offset}");
            (
                Rc::from(epoch),
                offset,
                Rc::from(&b"notice"[..]),
                Rc::from(text.as_bytes()),
            )
        };
        let publications = |frames: Vec<Rc<[u8]>>| -> Vec<String> {
            frames
                .chunks(2)
                .map(|pair| String::from_utf8_lossy(&pair[1]).into_owned())
                .collect()
        };
        // Replayed up to 7: the held 6 and 7 came in the range already.
        let during = vec![held("e", 6), held("e", 7), held("e", 8), held("e", 9)];
        assert_eq!(
            publications(held_after(during, "e", Some(7))),
            ["e:8", "e:9"]
        );
        // Told to reload: every held one follows, whatever its epoch.
        let during = vec![held("e", 6), held("f", 1)];
        assert_eq!(publications(held_after(during, "e", None)), ["e:6", "f:1"]);
        // A new epoch begun meanwhile is never taken for a repeat.
        let during = vec![held("f", 1), held("f", 2)];
        assert_eq!(
            publications(held_after(during, "e", Some(9))),
            ["f:1", "f:2"]
        );
    }

    #[test]
    fn a_range_is_replayed_when_it_follows_the_client_or_says_why_not() {
        let now = unix_millis();
        let age = Duration::from_secs(60);
        let offsets = |result: Result<Vec<StoredEntry>, Reload>| {
            result.map(|entries| entries.iter().map(|e| e.offset).collect::<Vec<_>>())
        };
        assert_eq!(
            offsets(replay_from(
                &at("e", 3),
                &at("e", 5),
                stored(4..=5, now),
                age
            )),
            Ok(vec![4, 5])
        );
        assert_eq!(
            offsets(replay_from(&at("e", 5), &at("e", 5), Vec::new(), age)),
            Ok(vec![])
        );
        assert_eq!(
            offsets(replay_from(
                &at("old", 3),
                &at("e", 5),
                stored(4..=5, now),
                age
            )),
            Err(Reload::Epoch)
        );
        assert_eq!(
            offsets(replay_from(&at("e", 6), &at("e", 5), Vec::new(), age)),
            Err(Reload::Ahead)
        );
        assert_eq!(
            offsets(replay_from(
                &at("e", 1),
                &at("e", 5),
                stored(4..=5, now),
                age
            )),
            Err(Reload::Gone),
            "trimmed"
        );
        assert_eq!(
            offsets(replay_from(&at("e", 3), &at("e", 5), Vec::new(), age)),
            Err(Reload::Gone),
            "the stream is gone"
        );
        assert_eq!(
            offsets(replay_from(
                &at("e", 3),
                &at("e", 5),
                stored(4..=5, now - 61_000),
                age
            )),
            Err(Reload::Gone),
            "older than max_age"
        );
        let mut masked = stored(4..=5, now);
        masked[1].frame = vec![0x81, 0x81, 1, 2, 3, 4, 5];
        assert_eq!(
            offsets(replay_from(&at("e", 3), &at("e", 5), masked, age)),
            Err(Reload::Gone),
            "not a frame a node stored"
        );
    }
}
