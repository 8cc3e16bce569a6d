//! The one path a message takes to clients: `offer` per recipient (queue, or hold behind a
//! fragmented message, and the flush list), over every client (broadcast), a token's
//! holders, a user's connections or a topic's members; and fragmented messages.

use super::*;
use crate::resume::Position;
use crate::server::conn::{App, Audience};
use crate::server::hub::history::{History, Replay, Rules};
use crate::server::outbound::Variants;
use crate::ws::deflate::Deflater;
use crate::ws::frame::OpCode;

/// The `[history]` bounds as they apply now.
pub(super) fn history_rules(settings: &Settings) -> Rules {
    Rules {
        size: settings.history.size,
        max_age: settings.history.max_age,
        max_bytes: settings.history.max_bytes,
    }
}

/// A kept publication as positioned clients get it: its position notice, then its frame.
pub(super) type NoticeAndFrame = (Rc<[u8]>, Rc<[u8]>);

/// What became of a frame offered to one client.
pub(super) enum Offered {
    /// Queued, or held behind its fragmented message.
    Reached,
    /// Not open: nothing queued.
    Skipped,
    /// Over `max_outbound_buffer`: the client is to be dropped.
    Overflow { queued: usize },
}

/// Offers a data frame to one client: queued (and the client put on the flush list), or
/// held behind its fragmented message. The one step every delivery takes, once per
/// recipient: inlined into the loops that walk the recipients.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn offer(
    client: &mut Client,
    key: Key,
    locks: &mut Locks,
    to_flush: &mut Vec<Key>,
    frames: &mut Variants<'_>,
    deflater: &mut Deflater,
    audience: Audience,
    settings: &Settings,
) -> Offered {
    let max_outbound = settings.max_outbound_buffer;
    let compression = &settings.compression;
    let Some(deferred) = locks.deferred_for(key) else {
        return match client
            .conn
            .queue_shared(frames, deflater, compression, audience, max_outbound)
        {
            Delivery::Queued => {
                if !client.flush_scheduled {
                    client.flush_scheduled = true;
                    to_flush.push(key);
                }
                Offered::Reached
            }
            Delivery::NotOpen => Offered::Skipped,
            Delivery::Overflow { queued } => Offered::Overflow { queued },
        };
    };
    if !client.conn.is_open() {
        return Offered::Skipped;
    }
    let frame = frames.for_client(client.conn.deflate_window(), deflater, compression);
    match locks::hold(
        deferred,
        client.conn.queued_bytes(),
        frame.clone(),
        max_outbound,
    ) {
        Ok(()) => Offered::Reached,
        Err(queued) => Offered::Overflow { queued },
    }
}

/// Whom a message is for, as the index that lists them.
pub(super) enum Among<'a> {
    Token(&'a Token),
    User(&'a str),
    Topic(TopicId),
}

/// What a delivery queues: one message, encoded once it is known to have a recipient, or
/// frames already encoded together (a batch).
pub(super) enum Outgoing<'a> {
    Message(Message<'a>),
    Frames {
        frames: &'a Rc<[u8]>,
        messages: usize,
    },
}

/// A data message for one or more clients, before it is encoded.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub binary: bool,
    pub payload: &'a [u8],
}

impl Message<'_> {
    /// The unmasked frame every recipient shares.
    pub(super) fn frame(&self) -> Rc<[u8]> {
        shared_frame(
            true,
            MessageKind::from_binary(self.binary).opcode(),
            self.payload,
        )
    }
}

/// The parts of the hub a delivery writes to, borrowed apart from the index it walks.
pub(super) struct Recipients<'a> {
    pub(super) clients: &'a mut Slab<Client>,
    pub(super) locks: &'a mut Locks,
    pub(super) to_flush: &'a mut Vec<Key>,
    pub(super) deflater: &'a mut Deflater,
}

impl Hub {
    /// Every client, to deliver to a list of keys the caller holds (not one of the hub's
    /// own indexes, which `deliver_to` walks in place).
    pub(super) fn recipients(&mut self) -> Recipients<'_> {
        Recipients {
            clients: &mut self.clients,
            locks: &mut self.locks,
            to_flush: &mut self.to_flush,
            deflater: &mut self.deflater,
        }
    }
}

impl Recipients<'_> {
    /// Queues `outgoing` to each of `keys` (each once: `keys` has no repeats), encoded
    /// once and shared, and only when there is someone to send it to. Returns the number of
    /// recipients and the clients to drop as slow consumers.
    pub(super) fn deliver(
        &mut self,
        keys: &[Key],
        outgoing: Outgoing<'_>,
        audience: Audience,
        settings: &Settings,
        stats: &mut Stats,
    ) -> (usize, Vec<(Key, usize)>) {
        if keys.is_empty() {
            return (0, Vec::new());
        }
        let (frame, messages) = match outgoing {
            Outgoing::Message(message) => (&message.frame(), 1),
            Outgoing::Frames { frames, messages } => (frames, messages),
        };
        let mut variants = Variants::new(frame);
        let mut recipients = 0;
        let mut overflowed = Vec::new();
        for &key in keys {
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            match offer(
                client,
                key,
                self.locks,
                self.to_flush,
                &mut variants,
                self.deflater,
                audience,
                settings,
            ) {
                Offered::Reached => recipients += 1,
                Offered::Skipped => {}
                Offered::Overflow { queued } => overflowed.push((key, queued)),
            }
        }
        stats.messages_out += (recipients as u64).saturating_mul(messages as u64);
        (recipients, overflowed)
    }
}
impl Hub {
    /// Queues one shared chunk, `messages` whole frames, to every open client. Returns
    /// the number of recipients.
    pub fn broadcast(
        &mut self,
        frames: &Rc<[u8]>,
        messages: usize,
        settings: &Settings,
        stats: &mut Stats,
    ) -> usize {
        let mut recipients = 0;
        let mut overflowed = Vec::new();
        let mut variants = Variants::new(frames);
        for (key, client) in self.clients.iter_mut() {
            match offer(
                client,
                key,
                &mut self.locks,
                &mut self.to_flush,
                &mut variants,
                &mut self.deflater,
                Audience::Plain,
                settings,
            ) {
                Offered::Reached => recipients += 1,
                Offered::Skipped => {}
                Offered::Overflow { queued } => overflowed.push((key, queued)),
            }
        }
        stats.messages_out += (recipients as u64).saturating_mul(messages as u64);
        self.drop_slow_consumers(overflowed, stats);
        recipients
    }

    /// Queues a message to every open connection holding `token`; returns how many.
    pub fn direct(
        &mut self,
        token: &Token,
        message: Message<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> usize {
        self.deliver_to(
            Among::Token(token),
            Outgoing::Message(message),
            settings,
            stats,
        )
    }

    /// Queues a message to every open connection of `user`; returns how many.
    pub fn to_user(
        &mut self,
        user: &str,
        message: Message<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> usize {
        self.deliver_to(
            Among::User(user),
            Outgoing::Message(message),
            settings,
            stats,
        )
    }

    /// Queues one shared chunk, `messages` whole frames, to every connection subscribed to
    /// `topic`. A topic with history keeps each publication and answers the last one's
    /// position; without, the cost is a prefix check per configured prefix.
    pub fn publish(
        &mut self,
        topic: &str,
        frames: &Rc<[u8]>,
        messages: usize,
        settings: &Settings,
        stats: &mut Stats,
    ) -> Option<Position> {
        if self.keeps_history(topic, settings) {
            if self.clustered() {
                // Positions come from Redis alone (`cluster_history.rs`): a publication that
                // did not go through it has none, and must not take one of the mirror's.
                self.deliver_unpositioned(topic, frames, messages, settings, stats);
                return None;
            }
            return Some(self.publish_kept(topic, frames, messages, settings, stats));
        }
        if let Some(id) = self.topics.get(topic) {
            let outgoing = Outgoing::Frames { frames, messages };
            self.deliver_to(Among::Topic(id), outgoing, settings, stats);
        }
        None
    }

    /// True when `[history] prefixes` covers `topic`.
    pub fn keeps_history(&self, topic: &str, settings: &Settings) -> bool {
        History::covers(&settings.history.prefixes, topic)
    }

    /// The topic's position now (`G`), or `None` when it keeps no history.
    pub fn history_position(
        &mut self,
        topic: &str,
        settings: &Settings,
        now: Instant,
    ) -> Option<Position> {
        self.keeps_history(topic, settings)
            .then(|| self.history.position(topic, history_rules(settings), now))
    }

    /// Keeps each publication of the chunk, then delivers: the chunk as it is to plain
    /// members, each publication after its position notice to positioned ones.
    fn publish_kept(
        &mut self,
        topic: &str,
        frames: &Rc<[u8]>,
        messages: usize,
        settings: &Settings,
        stats: &mut Stats,
    ) -> Position {
        let rules = history_rules(settings);
        let now = Instant::now();
        // WAMP publications of this turn got their positions when the router took them, and
        // wait in the router's actions for their plain side: they go first, so positioned
        // clients get every topic's offsets in order.
        self.settle_router(settings, stats, now);
        // Local publications to a kept topic come one per chunk (`queue_batched`); a batch
        // from another node is split, one copy per publication.
        let singles: Vec<Rc<[u8]>> = if messages == 1 {
            vec![Rc::clone(frames)]
        } else {
            crate::cluster::wire::messages_in(frames)
                .iter()
                .map(|(binary, payload)| {
                    shared_frame(true, MessageKind::from_binary(*binary).opcode(), payload)
                })
                .collect()
        };
        let mut kept = Vec::with_capacity(singles.len());
        let mut last = None;
        for frame in singles {
            let (position, notice) = self.history.record(topic, Rc::clone(&frame), rules, now);
            kept.push((notice, frame));
            last = Some(position);
        }
        let position = match last {
            Some(position) => position,
            None => self.history.position(topic, rules, now),
        };
        self.deliver_kept(topic, frames, messages, &kept, settings, stats);
        position
    }

    /// Delivers kept publications to `topic`'s members: `frames` (`messages` whole frames) as
    /// they are to plain members, each (notice, frame) of `kept` to positioned ones.
    pub(super) fn deliver_kept(
        &mut self,
        topic: &str,
        frames: &Rc<[u8]>,
        messages: usize,
        kept: &[NoticeAndFrame],
        settings: &Settings,
        stats: &mut Stats,
    ) {
        let (plain, positioned) = self.members_by_position(topic, &[]);
        let noticed: Vec<(&Rc<[u8]>, usize)> = kept
            .iter()
            .flat_map(|(notice, frame)| [(notice, 1), (frame, 1)])
            .collect();
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

    /// The members of `topic`: (plain ones, positioned ones), the positioned ones in
    /// `except` left out.
    pub(super) fn members_by_position(&self, topic: &str, except: &[Key]) -> (Vec<Key>, Vec<Key>) {
        let Some(id) = self.topics.get(topic) else {
            return (Vec::new(), Vec::new());
        };
        let clients = &self.clients;
        let (positioned, plain): (Vec<Key>, Vec<Key>) =
            self.topics.members(id).iter().partition(|key| {
                clients
                    .get(**key)
                    .and_then(|client| client.seat.as_ref())
                    .is_some_and(|seat| seat.resume.is_some())
            });
        let positioned = positioned
            .into_iter()
            .filter(|key| !except.contains(key))
            .collect();
        (plain, positioned)
    }

    /// `frames` (`messages` whole ones) to `plain`, and the chunks of `noticed` (each with
    /// its message count), one after the other, to `positioned`: a publication with its
    /// position notices. Slow consumers are dropped after both walks.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver_split(
        &mut self,
        plain: &[Key],
        frames: &Rc<[u8]>,
        messages: usize,
        positioned: &[Key],
        noticed: &[(&Rc<[u8]>, usize)],
        settings: &Settings,
        stats: &mut Stats,
    ) {
        let mut recipients = self.recipients();
        let outgoing = Outgoing::Frames { frames, messages };
        let (_, mut overflowed) =
            recipients.deliver(plain, outgoing, Audience::Plain, settings, stats);
        if !positioned.is_empty() {
            for &(frames, messages) in noticed {
                let outgoing = Outgoing::Frames { frames, messages };
                let (_, over) =
                    recipients.deliver(positioned, outgoing, Audience::Plain, settings, stats);
                overflowed.extend(over);
            }
        }
        overflowed.sort_by_key(|(key, _)| key.to_usize());
        overflowed.dedup_by_key(|(key, _)| *key);
        self.drop_slow_consumers(overflowed, stats);
    }

    /// Serves the `resume` items of the topics the client has joined: what it missed, in
    /// order, or a reload notice. Called once it is open, and on each later join, within
    /// the hub call that made it join, so no publication slips between.
    pub(super) fn resume_joined(&mut self, key: Key, settings: &Settings, stats: &mut Stats) {
        let due: Vec<crate::resume::Resume> = {
            let Some(client) = self.clients.get_mut(key) else {
                return;
            };
            if !client.conn.is_open() {
                return;
            }
            let Some(seat) = client.seat.as_mut() else {
                return;
            };
            let Some(pending) = seat.resume.as_mut() else {
                return;
            };
            let topics = &self.topics;
            let joined = &seat.topics;
            let (due, waiting): (Vec<_>, Vec<_>) = pending.drain(..).partition(|item| {
                topics
                    .get(&item.topic)
                    .is_some_and(|id| joined.contains(&id))
            });
            *pending = waiting;
            due
        };
        if due.is_empty() {
            return;
        }
        let rules = history_rules(settings);
        let now = Instant::now();
        let mut frames: Vec<Rc<[u8]>> = Vec::new();
        for item in due {
            let answer = if self.keeps_history(&item.topic, settings) {
                self.history
                    .replay_delivered(&item.topic, &item.position, rules, now)
            } else {
                Replay::Reload(crate::resume::Reload::Off, None)
            };
            // With `[cluster]` the history is in Redis: what this node's mirror cannot
            // serve is fetched from there (`cluster_history.rs`), unless Redis is away.
            if let Replay::Reload(reload, _) = &answer
                && *reload != crate::resume::Reload::Off
                && self.cluster_fetch(key, &item, settings, now)
            {
                continue;
            }
            match answer {
                Replay::Missed(entries) => {
                    for entry in entries {
                        frames.push(entry.notice);
                        frames.push(entry.frame);
                    }
                }
                Replay::Reload(reload, position) => {
                    let text = crate::resume::reload_notice(&item.topic, reload, position.as_ref());
                    frames.push(shared_frame(true, OpCode::Text, text.as_bytes()));
                }
            }
        }
        self.send_frames(key, &frames, settings, stats);
    }

    /// Queues frames, one message each, to one client, in order; a slow consumer is dropped.
    pub(super) fn send_frames(
        &mut self,
        client: Key,
        frames: &[Rc<[u8]>],
        settings: &Settings,
        stats: &mut Stats,
    ) {
        let mut recipients = self.recipients();
        let mut overflowed = Vec::new();
        for frames in frames {
            let outgoing = Outgoing::Frames {
                frames,
                messages: 1,
            };
            let (_, over) =
                recipients.deliver(&[client], outgoing, Audience::Plain, settings, stats);
            if !over.is_empty() {
                overflowed = over;
                break;
            }
        }
        self.drop_slow_consumers(overflowed, stats);
    }

    /// Walks the index that names the audience in place (its keys are not copied) and
    /// queues the message to each; slow consumers are dropped after the walk.
    pub(super) fn deliver_to(
        &mut self,
        among: Among<'_>,
        outgoing: Outgoing<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> usize {
        let Hub {
            clients,
            tokens,
            users,
            topics,
            locks,
            to_flush,
            deflater,
            ..
        } = self;
        let keys = match among {
            Among::Token(token) => tokens.get(token).map_or(&[][..], KeyList::as_slice),
            Among::User(user) => users.connections(user),
            Among::Topic(id) => topics.members(id),
        };
        let mut recipients = Recipients {
            clients,
            locks,
            to_flush,
            deflater,
        };
        let (count, overflowed) =
            recipients.deliver(keys, outgoing, Audience::Plain, settings, stats);
        self.drop_slow_consumers(overflowed, stats);
        count
    }

    /// The open connections holding `token`.
    pub(super) fn holders(&self, token: &Token) -> &[Key] {
        self.tokens.get(token).map_or(&[], KeyList::as_slice)
    }

    /// True when an open connection holds `token` (a `c` with an empty message).
    pub fn is_online(&self, token: &Token) -> bool {
        self.tokens
            .get(token)
            .is_some_and(|holders| !holders.is_empty())
    }

    /// Locks the open client holding `token` for `owner`'s fragmented send. One lock per
    /// owner: false while it still holds one, or when the token is not held by exactly
    /// one open client, or that client is locked by another.
    pub fn lock(&mut self, token: &Token, owner: Key) -> bool {
        if self.locks.is_held_by(owner) {
            return false;
        }
        match *self.holders(token) {
            // A WAMP session takes only the router's messages.
            [key]
                if self
                    .clients
                    .get(key)
                    .is_some_and(|client| client.conn.app() == Some(App::Plain)) =>
            {
                self.locks.lock(key, owner)
            }
            _ => false,
        }
    }

    /// Sends one fragment of `owner`'s locked message. The last one unlocks the client and
    /// releases the data held back meanwhile, in the order it arrived.
    pub fn fragment(
        &mut self,
        owner: Key,
        fragment: Fragment<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> FragmentResult {
        let Some(key) = self.locks.client_of(owner) else {
            return FragmentResult::Refused;
        };
        let (frame, fin) = match self.locks.encode(owner, fragment) {
            Encoded::Frame { frame, fin } => (frame, fin),
            Encoded::Failed(result) => return result,
        };
        let deferred = self.locks.deferred_bytes(key);
        let Some(client) = self.clients.get_mut(key) else {
            return FragmentResult::Refused;
        };
        let queued = client.conn.queued_bytes() + deferred;
        if queued + frame.len() > settings.max_outbound_buffer {
            self.drop_slow_consumer(key, queued, stats);
            return FragmentResult::Overflow { queued };
        }
        client.conn.push_frame(frame);
        if fin {
            stats.messages_out += 1;
            if let Some(deferred) = self.locks.release_client(key) {
                client.conn.append(deferred);
            }
        }
        self.schedule_flush(key);
        FragmentResult::Sent
    }
}
