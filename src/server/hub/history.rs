//! The history of topics (`[history]`): per topic, the last publications, each with its
//! position, for plain clients and WAMP sessions that resume after a reconnect (README,
//! "Missed messages"). Plain and WAMP publications of the backend realm share it: the router
//! asks it through `router::Chronicle` (`wamp::Keeper`), so each gets one position.
//!
//! An entry shares the frame the publication was delivered with (the same `Rc`) and holds
//! the position notice positioned clients got before it; a WAMP publication's arguments (and
//! publisher, audience) are kept once beside it (`WampSide`), for WAMP readers, so a WAMP
//! round trip is exact; nothing is copied per reader. A topic's
//! state lives on while its subscribers come and go: a client may have been its only one.
//! Bounds: `size` entries per topic and `max_age` (pruned when the topic is touched), and
//! `max_bytes` over every topic, where the oldest publication of any topic goes first (a
//! global queue in publication order; an entry that already left its topic is skipped, and
//! the queue is compacted when such leftovers outnumber live entries). A topic state
//! without entries (made by a position read, or emptied) stays, so offsets keep counting in
//! its epoch; only the budget forgets it, and its next publication opens a new epoch.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::resume::{Position, Reload, position_notice};
use crate::router::broker::Disclosure;
use crate::router::options::Audience;
use crate::server::outbound::shared_frame;
use crate::wamp::Payload;
use crate::ws::frame::OpCode;

/// Bytes counted per entry besides its frames: the bookkeeping, so that many empty
/// publications still meet the budget.
pub const ENTRY_OVERHEAD: usize = 64;
/// Bytes counted per topic state.
pub const STATE_OVERHEAD: usize = 128;

/// The `[history]` bounds as they apply now.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub size: usize,
    pub max_age: Duration,
    pub max_bytes: usize,
}

/// One publication kept: its frame as delivered and the notice that went before it.
#[derive(Clone)]
pub struct Entry {
    pub offset: u64,
    pub notice: Rc<[u8]>,
    pub frame: Rc<[u8]>,
    /// What WAMP sessions need beyond the frame, when there is any (a WAMP publication, or a
    /// plain one with an audience): shared, never copied per reader.
    pub wamp: Option<Rc<WampSide>>,
    at: Instant,
}

/// The WAMP side of a kept publication.
#[derive(Debug, Default)]
pub struct WampSide {
    /// A WAMP publication's arguments as published, so a WAMP round trip is exact; `None`
    /// for a plain one (its frame converts: `router::plain::from_plain`).
    pub payload: Option<Payload>,
    pub publication: Option<u64>,
    /// The publisher, when its EVENTs disclosed it.
    pub publisher: Option<Disclosure>,
    /// Who may receive it (PUBLISH's exclude/eligible options); `None`: everyone.
    pub audience: Option<Rc<Audience>>,
}

impl WampSide {
    fn bytes(&self) -> usize {
        self.payload.as_ref().map_or(0, Payload::heap_size)
    }
}

impl Entry {
    fn bytes(&self) -> usize {
        self.notice.len()
            + self.frame.len()
            + self.wamp.as_ref().map_or(0, |side| side.bytes())
            + ENTRY_OVERHEAD
    }

    /// When it was published.
    pub fn at(&self) -> Instant {
        self.at
    }
}

struct TopicHistory {
    epoch: Rc<str>,
    generation: u64,
    /// The offset of the topic's last publication in this epoch (0: none yet).
    last: u64,
    /// The offset up to which plain members have been handed the publications. A WAMP
    /// publication is kept when the router takes it, and its plain side follows in the
    /// router's actions, later in the same turn: a plain client that resumes in between is
    /// replayed up to here only, and gets the rest live, so none comes twice.
    delivered: u64,
    /// Contiguous offsets, oldest first, up to `last`.
    entries: VecDeque<Entry>,
}

/// What a resume from a position gets.
pub enum Replay {
    /// The publications after the client's offset, oldest first (perhaps none).
    Missed(Vec<Entry>),
    /// Not from the history: the client reloads; the topic's position when it has one.
    Reload(Reload, Option<Position>),
}

pub struct History {
    /// 8 hex digits drawn at start: a restart is a new epoch for every topic.
    base: String,
    generations: u64,
    topics: HashMap<Rc<str>, TopicHistory>,
    /// (topic, generation, offset) of every entry, in publication order, with leftovers of
    /// entries that already left their topic.
    order: VecDeque<(Rc<str>, u64, u64)>,
    publications: usize,
    bytes: usize,
}

impl History {
    pub fn new(base: String) -> History {
        History {
            base,
            generations: 0,
            topics: HashMap::new(),
            order: VecDeque::new(),
            publications: 0,
            bytes: 0,
        }
    }

    /// 8 random hex digits, or the clock's when randomness fails (still new per start).
    pub fn random_base() -> String {
        let mut random = [0u8; 4];
        if getrandom::fill(&mut random).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| {
                    elapsed.subsec_nanos() ^ elapsed.as_secs() as u32
                });
            random = nanos.to_be_bytes();
        }
        random.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// True when `topic` starts with one of `prefixes`.
    pub fn covers(prefixes: &[String], topic: &str) -> bool {
        prefixes
            .iter()
            .any(|prefix| topic.starts_with(prefix.as_str()))
    }

    /// Publications held, all topics.
    pub fn publications(&self) -> usize {
        self.publications
    }

    /// Bytes counted against `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Topics with a history state.
    pub fn topics(&self) -> usize {
        self.topics.len()
    }

    /// The topic's state, made when absent, and its name as the map holds it.
    fn state(&mut self, topic: &str) -> (Rc<str>, &mut TopicHistory) {
        let name = match self.topics.get_key_value(topic) {
            Some((name, _)) => Rc::clone(name),
            None => Rc::from(topic),
        };
        let History {
            base,
            generations,
            topics,
            bytes,
            ..
        } = self;
        let state = topics.entry(Rc::clone(&name)).or_insert_with(|| {
            *generations += 1;
            *bytes += STATE_OVERHEAD + topic.len();
            TopicHistory {
                epoch: Rc::from(format!("{base}-{generations}")),
                generation: *generations,
                last: 0,
                delivered: 0,
                entries: VecDeque::new(),
            }
        });
        (name, state)
    }

    /// The topic's position now, its state made when it has none, so a publication after
    /// this read continues from it (the page-load pattern).
    pub fn position(&mut self, topic: &str, rules: Rules, now: Instant) -> Position {
        self.prune_age(topic, rules, now);
        let (_, state) = self.state(topic);
        let position = Position {
            epoch: state.epoch.to_string(),
            offset: state.last,
        };
        self.enforce_budget(rules.max_bytes, Some(topic));
        position
    }

    /// Keeps one publication: `frame` is the shared frame it is delivered with. Returns its
    /// position and the notice positioned clients get before it.
    pub fn record(
        &mut self,
        topic: &str,
        frame: Rc<[u8]>,
        rules: Rules,
        now: Instant,
    ) -> (Position, Rc<[u8]>) {
        let (position, notice) = self.record_with(topic, frame, None, rules, now);
        // The plain path delivers what it records within the same hub call.
        self.mark_delivered(topic, &position);
        (position, notice)
    }

    /// Plain members have been handed the publication at `position` (and every earlier one).
    pub fn mark_delivered(&mut self, topic: &str, position: &Position) {
        if let Some(state) = self.topics.get_mut(topic)
            && *state.epoch == *position.epoch
        {
            state.delivered = state.delivered.max(position.offset);
        }
    }

    /// `record`, with the publication's WAMP side; not yet delivered to plain members (see
    /// `mark_delivered`).
    pub fn record_with(
        &mut self,
        topic: &str,
        frame: Rc<[u8]>,
        wamp: Option<Rc<WampSide>>,
        rules: Rules,
        now: Instant,
    ) -> (Position, Rc<[u8]>) {
        self.prune_age(topic, rules, now);
        let (topic_key, state) = self.state(topic);
        state.last += 1;
        let position = Position {
            epoch: state.epoch.to_string(),
            offset: state.last,
        };
        let notice = shared_frame(
            true,
            OpCode::Text,
            position_notice(topic, &position).as_bytes(),
        );
        let entry = Entry {
            offset: state.last,
            notice: Rc::clone(&notice),
            frame,
            wamp,
            at: now,
        };
        let generation = state.generation;
        let added = entry.bytes();
        state.entries.push_back(entry);
        let mut dropped = Vec::new();
        while state.entries.len() > rules.size {
            if let Some(old) = state.entries.pop_front() {
                dropped.push(old.bytes());
            }
        }
        self.order
            .push_back((topic_key, generation, position.offset));
        self.publications += 1;
        self.bytes += added;
        for bytes in dropped {
            self.publications -= 1;
            self.bytes -= bytes;
        }
        self.enforce_budget(rules.max_bytes, Some(topic));
        self.compact();
        (position, notice)
    }

    /// The topic's position as held, without making a state (`None`: none held).
    pub fn known_position(&self, topic: &str) -> Option<Position> {
        self.topics.get(topic).map(|state| Position {
            epoch: state.epoch.to_string(),
            offset: state.last,
        })
    }

    /// Keeps a publication at a position given elsewhere (the cluster's history in Redis:
    /// this history is then a mirror of it). Another epoch replaces what the topic held; a
    /// gap (publications this node never heard) drops what it held, so the entries stay
    /// contiguous. Returns the notice positioned clients get before it, or `None` when the
    /// position is one the mirror holds or passed already (heard twice).
    pub fn record_at(
        &mut self,
        topic: &str,
        at: &Position,
        frame: Rc<[u8]>,
        rules: Rules,
        now: Instant,
    ) -> Option<Rc<[u8]>> {
        self.prune_age(topic, rules, now);
        let (topic_key, _) = self.state(topic);
        let History {
            generations,
            topics,
            publications,
            bytes,
            order,
            ..
        } = self;
        let state = topics.get_mut(topic)?;
        let new_epoch = *state.epoch != *at.epoch;
        if !new_epoch && at.offset <= state.last {
            return None;
        }
        if new_epoch || at.offset != state.last + 1 {
            for old in state.entries.drain(..) {
                *publications -= 1;
                *bytes -= old.bytes();
            }
        }
        if new_epoch {
            // Leftovers of `order` must not match the new epoch's offsets.
            *generations += 1;
            state.generation = *generations;
            state.epoch = Rc::from(at.epoch.as_str());
        }
        state.last = at.offset;
        // The cluster's path delivers what it records within the same hub call.
        state.delivered = at.offset;
        let notice = shared_frame(true, OpCode::Text, position_notice(topic, at).as_bytes());
        let entry = Entry {
            offset: at.offset,
            notice: Rc::clone(&notice),
            frame,
            wamp: None,
            at: now,
        };
        *bytes += entry.bytes();
        *publications += 1;
        state.entries.push_back(entry);
        while state.entries.len() > rules.size {
            if let Some(old) = state.entries.pop_front() {
                *publications -= 1;
                *bytes -= old.bytes();
            }
        }
        order.push_back((topic_key, state.generation, at.offset));
        self.enforce_budget(rules.max_bytes, Some(topic));
        self.compact();
        Some(notice)
    }

    /// What a plain client that saw `topic` up to `seen` missed, up to what plain members
    /// have been handed (the rest reaches it live), or why it must reload.
    pub fn replay_delivered(
        &mut self,
        topic: &str,
        seen: &Position,
        rules: Rules,
        now: Instant,
    ) -> Replay {
        let delivered = self.topics.get(topic).map_or(0, |state| state.delivered);
        match self.replay(topic, seen, rules, now) {
            Replay::Missed(mut entries) => {
                entries.retain(|entry| entry.offset <= delivered);
                Replay::Missed(entries)
            }
            reload @ Replay::Reload(..) => reload,
        }
    }

    /// What a client that saw `topic` up to `seen` missed, or why it must reload.
    pub fn replay(&mut self, topic: &str, seen: &Position, rules: Rules, now: Instant) -> Replay {
        self.prune_age(topic, rules, now);
        let Some(state) = self.topics.get(topic) else {
            return Replay::Reload(Reload::Epoch, None);
        };
        let current = Position {
            epoch: state.epoch.to_string(),
            offset: state.last,
        };
        if *state.epoch != *seen.epoch {
            return Replay::Reload(Reload::Epoch, Some(current));
        }
        if seen.offset > state.last {
            return Replay::Reload(Reload::Ahead, Some(current));
        }
        // Entries hold offsets first..=last; the client needs seen+1..=last.
        let first = state.entries.front().map_or(state.last + 1, |e| e.offset);
        if seen.offset + 1 < first {
            return Replay::Reload(Reload::Gone, Some(current));
        }
        let skip = usize::try_from(seen.offset + 1 - first).unwrap_or(usize::MAX);
        Replay::Missed(state.entries.iter().skip(skip).cloned().collect())
    }

    /// The entry at `position`, while the history still holds it.
    pub fn entry(&self, topic: &str, position: &Position) -> Option<&Entry> {
        let state = self.topics.get(topic)?;
        if *state.epoch != *position.epoch {
            return None;
        }
        let first = state.entries.front()?.offset;
        let index = usize::try_from(position.offset.checked_sub(first)?).ok()?;
        state
            .entries
            .get(index)
            .filter(|e| e.offset == position.offset)
    }

    /// Gives the entry at `position` its WAMP side, when it has none yet (a plain
    /// publication whose PUBLISH options named an audience).
    pub fn attach(&mut self, topic: &str, position: &Position, wamp: Rc<WampSide>) {
        let Some(state) = self.topics.get_mut(topic) else {
            return;
        };
        if *state.epoch != *position.epoch {
            return;
        }
        let Some(first) = state.entries.front().map(|e| e.offset) else {
            return;
        };
        let Some(index) = position
            .offset
            .checked_sub(first)
            .and_then(|index| usize::try_from(index).ok())
        else {
            return;
        };
        if let Some(entry) = state.entries.get_mut(index)
            && entry.wamp.is_none()
        {
            let added = wamp.bytes();
            entry.wamp = Some(wamp);
            self.bytes += added;
        }
    }

    /// The last `limit` entries of `topic`, newest first, with the topic's epoch.
    pub fn recent(
        &mut self,
        topic: &str,
        limit: usize,
        rules: Rules,
        now: Instant,
    ) -> (Rc<str>, Vec<Entry>) {
        self.prune_age(topic, rules, now);
        match self.topics.get(topic) {
            Some(state) => (
                Rc::clone(&state.epoch),
                state.entries.iter().rev().take(limit).cloned().collect(),
            ),
            None => (Rc::from(""), Vec::new()),
        }
    }

    fn prune_age(&mut self, topic: &str, rules: Rules, now: Instant) {
        let Some(state) = self.topics.get_mut(topic) else {
            return;
        };
        while let Some(front) = state.entries.front() {
            if now.saturating_duration_since(front.at) <= rules.max_age {
                break;
            }
            let bytes = front.bytes();
            state.entries.pop_front();
            self.publications -= 1;
            self.bytes -= bytes;
        }
    }

    /// Drops the oldest publications of any topic, then (past every entry) topic states
    /// without entries, until the budget holds; `keep` is the topic being written.
    fn enforce_budget(&mut self, max_bytes: usize, keep: Option<&str>) {
        while self.bytes > max_bytes {
            let Some((topic, generation, offset)) = self.order.pop_front() else {
                break;
            };
            let Some(state) = self.topics.get_mut(&topic) else {
                continue;
            };
            let live = state.generation == generation
                && state.entries.front().is_some_and(|e| e.offset == offset);
            if live && let Some(old) = state.entries.pop_front() {
                self.publications -= 1;
                self.bytes -= old.bytes();
            }
        }
        if self.bytes > max_bytes {
            let empty: Vec<Rc<str>> = self
                .topics
                .iter()
                .filter(|(name, state)| state.entries.is_empty() && Some(&***name) != keep)
                .map(|(name, _)| Rc::clone(name))
                .collect();
            for name in empty {
                if self.bytes <= max_bytes {
                    break;
                }
                self.topics.remove(&name);
                self.bytes -= STATE_OVERHEAD + name.len();
            }
        }
    }

    /// Drops the leftovers of `order` once they outnumber the live entries.
    fn compact(&mut self) {
        if self.order.len() <= 2 * self.publications + 64 {
            return;
        }
        let topics = &self.topics;
        self.order.retain(|(topic, generation, offset)| {
            topics.get(topic).is_some_and(|state| {
                state.generation == *generation
                    && state.entries.front().is_some_and(|e| e.offset <= *offset)
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        size: 3,
        max_age: Duration::from_secs(60),
        max_bytes: 1 << 20,
    };

    fn frame(text: &str) -> Rc<[u8]> {
        shared_frame(true, OpCode::Text, text.as_bytes())
    }

    fn offsets(replay: Replay) -> Vec<u64> {
        match replay {
            Replay::Missed(entries) => entries.iter().map(|e| e.offset).collect(),
            Replay::Reload(reload, _) => panic!("reload {reload:?}"),
        }
    }

    fn reload(replay: Replay) -> Reload {
        match replay {
            Replay::Missed(_) => panic!("a replay"),
            Replay::Reload(reload, _) => reload,
        }
    }

    #[test]
    fn offsets_count_from_one_in_an_epoch_of_this_start() {
        let mut history = History::new("0badcafe".to_owned());
        let now = Instant::now();
        let before = history.position("news", RULES, now);
        assert_eq!(
            before,
            Position {
                epoch: "0badcafe-1".to_owned(),
                offset: 0
            }
        );
        let (first, _) = history.record("news", frame("a"), RULES, now);
        let (second, notice) = history.record("news", frame("b"), RULES, now);
        assert_eq!((first.offset, second.offset), (1, 2));
        assert_eq!(
            &notice[2..],
            br#"{"wson":"position","topic":"news","epoch":"0badcafe-1","offset":2}"#
        );
        let (other, _) = history.record("chat", frame("c"), RULES, now);
        assert_eq!(
            other,
            Position {
                epoch: "0badcafe-2".to_owned(),
                offset: 1
            }
        );
    }

    #[test]
    fn a_resume_gets_what_follows_its_offset_or_a_reason_to_reload() {
        let mut history = History::new("0badcafe".to_owned());
        let now = Instant::now();
        let epoch = history.position("news", RULES, now).epoch;
        for text in ["1", "2", "3", "4", "5"] {
            history.record("news", frame(text), RULES, now);
        }
        let at = |offset| Position {
            epoch: epoch.clone(),
            offset,
        };
        assert_eq!(
            offsets(history.replay("news", &at(2), RULES, now)),
            [3, 4, 5]
        );
        assert_eq!(
            offsets(history.replay("news", &at(5), RULES, now)),
            Vec::<u64>::new()
        );
        assert_eq!(
            reload(history.replay("news", &at(1), RULES, now)),
            Reload::Gone
        );
        assert_eq!(
            reload(history.replay("news", &at(6), RULES, now)),
            Reload::Ahead
        );
        let stale = Position {
            epoch: "12345678-1".to_owned(),
            offset: 5,
        };
        assert_eq!(
            reload(history.replay("news", &stale, RULES, now)),
            Reload::Epoch
        );
        assert_eq!(
            reload(history.replay("chat", &at(0), RULES, now)),
            Reload::Epoch
        );
        assert_eq!(history.publications(), 3, "size keeps the last 3");
    }

    #[test]
    fn age_drops_old_publications() {
        let mut history = History::new("0badcafe".to_owned());
        let start = Instant::now();
        let (old, _) = history.record("news", frame("old"), RULES, start);
        let later = start + Duration::from_secs(61);
        history.record("news", frame("new"), RULES, later);
        assert_eq!(history.publications(), 1);
        let seen = Position { offset: 0, ..old };
        assert_eq!(
            reload(history.replay("news", &seen, RULES, later)),
            Reload::Gone
        );
    }

    #[test]
    fn the_budget_drops_the_oldest_of_any_topic_first() {
        let mut history = History::new("0badcafe".to_owned());
        let now = Instant::now();
        let rules = Rules { size: 100, ..RULES };
        let (a1, _) = history.record("a", frame("1"), rules, now);
        history.record("b", frame("2"), rules, now);
        history.record("a", frame("3"), rules, now);
        let budget = history.bytes();
        let rules = Rules {
            max_bytes: budget,
            ..rules
        };
        history.record("b", frame("4"), rules, now);
        assert_eq!(history.publications(), 3, "one went");
        assert!(history.bytes() <= budget);
        let seen = Position {
            offset: 0,
            ..a1.clone()
        };
        assert_eq!(reload(history.replay("a", &seen, rules, now)), Reload::Gone);
        assert_eq!(offsets(history.replay("a", &a1, rules, now)), [2]);
    }

    fn at(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: epoch.to_owned(),
            offset,
        }
    }

    #[test]
    fn a_mirror_keeps_given_positions_and_stays_contiguous() {
        let mut history = History::new("0badcafe".to_owned());
        let now = Instant::now();
        let rules = Rules { size: 10, ..RULES };
        // A node that joins late hears offset 5 first.
        let notice = history.record_at("news", &at("00ff", 5), frame("5"), rules, now);
        assert!(
            notice.is_some_and(|n| n.ends_with(br#""epoch":"00ff","offset":5}"#)),
            "the notice names the given position"
        );
        history.record_at("news", &at("00ff", 6), frame("6"), rules, now);
        assert!(
            history
                .record_at("news", &at("00ff", 6), frame("6"), rules, now)
                .is_none(),
            "heard twice: kept once"
        );
        assert_eq!(
            offsets(history.replay("news", &at("00ff", 4), rules, now)),
            [5, 6]
        );
        assert_eq!(
            reload(history.replay("news", &at("00ff", 3), rules, now)),
            Reload::Gone
        );
        // A gap: what came before it goes.
        history.record_at("news", &at("00ff", 9), frame("9"), rules, now);
        assert_eq!(history.publications(), 1);
        assert_eq!(
            offsets(history.replay("news", &at("00ff", 8), rules, now)),
            [9]
        );
        assert_eq!(history.known_position("news"), Some(at("00ff", 9)));
        // Another epoch replaces the topic's entries.
        history.record_at("news", &at("abcd", 1), frame("1"), rules, now);
        assert_eq!(history.publications(), 1);
        assert_eq!(
            reload(history.replay("news", &at("00ff", 9), rules, now)),
            Reload::Epoch
        );
        assert_eq!(
            offsets(history.replay("news", &at("abcd", 0), rules, now)),
            [1]
        );
        assert_eq!(history.known_position("chat"), None);
    }

    #[test]
    fn leftovers_of_the_order_are_compacted() {
        let mut history = History::new("0badcafe".to_owned());
        let now = Instant::now();
        let rules = Rules { size: 1, ..RULES };
        for _ in 0..1000 {
            history.record("a", frame("x"), rules, now);
        }
        assert_eq!(history.publications(), 1);
        assert!(
            history.order.len() <= 2 + 64 + 1,
            "one live entry, few leftovers"
        );
    }

    #[test]
    fn entries_are_found_by_position_listed_newest_first_and_given_a_wamp_side() {
        let mut history = History::new("0badcafe".to_owned());
        let now = Instant::now();
        for text in ["1", "2", "3", "4"] {
            history.record("news", frame(text), RULES, now);
        }
        let at = |offset| Position {
            epoch: "0badcafe-1".to_owned(),
            offset,
        };
        assert!(history.entry("news", &at(1)).is_none(), "size 3 let it go");
        assert_eq!(history.entry("news", &at(3)).map(|e| e.offset), Some(3));
        assert!(history.entry("news", &at(5)).is_none());
        let stale = Position {
            epoch: "12345678-1".to_owned(),
            offset: 3,
        };
        assert!(history.entry("news", &stale).is_none());
        let (epoch, recent) = history.recent("news", 2, RULES, now);
        assert_eq!(&*epoch, "0badcafe-1");
        assert_eq!(recent.iter().map(|e| e.offset).collect::<Vec<_>>(), [4, 3]);
        assert!(history.recent("chat", 2, RULES, now).1.is_empty());

        let before = history.bytes();
        let side = WampSide {
            payload: Some(Payload {
                args: vec![crate::wamp::Value::from("x".repeat(100).as_str())],
                kwargs: crate::wamp::Dict::new(),
            }),
            ..WampSide::default()
        };
        history.attach("news", &at(3), Rc::new(side));
        assert!(history.bytes() >= before + 100, "its arguments count");
        assert!(
            history
                .entry("news", &at(3))
                .is_some_and(|e| e.wamp.is_some())
        );
        // Pushed out by size: the budget gives back what the entry counted.
        let mut plain = History::new("0badcafe".to_owned());
        for text in ["1", "2", "3", "4", "5", "6", "7"] {
            plain.record("news", frame(text), RULES, now);
        }
        for text in ["5", "6", "7"] {
            history.record("news", frame(text), RULES, now);
        }
        assert_eq!(history.bytes(), plain.bytes());
    }

    #[test]
    fn a_plain_replay_stops_where_the_plain_side_has_got_to() {
        let mut history = History::new("0badcafe".to_owned());
        let now = Instant::now();
        let rules = Rules { size: 10, ..RULES };
        history.record("news", frame("plain 1"), rules, now);
        let side = || Some(Rc::new(WampSide::default()));
        let (wamp_2, _) = history.record_with("news", frame("wamp 2"), side(), rules, now);
        history.record_with("news", frame("wamp 3"), side(), rules, now);
        let seen = Position {
            epoch: "0badcafe-1".to_owned(),
            offset: 0,
        };
        assert_eq!(
            offsets(history.replay_delivered("news", &seen, rules, now)),
            [1],
            "2 and 3 wait in the router's actions: they come live"
        );
        assert_eq!(
            offsets(history.replay("news", &seen, rules, now)),
            [1, 2, 3]
        );
        history.mark_delivered("news", &wamp_2);
        assert_eq!(
            offsets(history.replay_delivered("news", &seen, rules, now)),
            [1, 2]
        );
        history.record("news", frame("plain 4"), rules, now);
        assert_eq!(
            offsets(history.replay_delivered("news", &seen, rules, now)),
            [1, 2, 3, 4]
        );
    }
}
