//! Event listeners and the outbox of frames for control connections.
//!
//! The hub emits an event once, encoded once; the outbox holds it with its route until the
//! server drains it at the end of the turn into the control connections' queues. A listener
//! without a group gets every event of its kinds. Listeners naming the same group share what
//! the group gets: each event to one member that wants its kind, round robin, picked when
//! the outbox is drained, so a member that is dropped for a full queue is skipped and the
//! event goes to the next one. The outbox also carries authorization requests, routed to
//! one authorizer.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use crate::control::event::{Event, EventKind, EventKinds};
use crate::server::slab::Key;

pub struct Events {
    listeners: BTreeMap<Key, Listener>,
    groups: BTreeMap<Rc<str>, Group>,
    /// Every kind some listener hears, here or (in a cluster) on another node: an event of
    /// another kind is not even encoded.
    wanted: EventKinds,
    /// The kinds the other nodes' listeners hear.
    remote_wanted: EventKinds,
    /// In a cluster: the frames of the events the other nodes want, for the next message
    /// to them (`take_forward`).
    forward: Option<Vec<u8>>,
    outbox: VecDeque<Outgoing>,
    /// Listeners dropped for a full queue, since start.
    dropped: u64,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            listeners: BTreeMap::new(),
            groups: BTreeMap::new(),
            wanted: EventKinds::NONE,
            remote_wanted: EventKinds::NONE,
            forward: None,
            outbox: VecDeque::new(),
            dropped: 0,
        }
    }
}

struct Listener {
    group: Option<Rc<str>>,
    kinds: EventKinds,
}

struct Group {
    /// Members in the order they joined, with the kinds each hears.
    members: Vec<(Key, EventKinds)>,
    /// Where the next event's search for a member starts.
    next: usize,
}

struct Outgoing {
    route: Route,
    frame: Rc<[u8]>,
}

enum Route {
    To(Key),
    Group { name: Rc<str>, kind: EventKind },
}

/// What the server does with a frame for a control connection: queue it, or say the
/// connection's queue is over its bound (then the hub drops the connection as a listener
/// and the server closes it).
pub trait ControlSink {
    fn offer(&mut self, to: Key, frame: &Rc<[u8]>) -> Offer;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// Over the bound: the connection is to be dropped.
    Full,
    /// No such connection (closed meanwhile).
    Gone,
}

impl Events {
    /// `control` listens from now on, alone or in `group`; a second call replaces the first.
    pub fn listen(&mut self, control: Key, group: Option<&str>, kinds: EventKinds) {
        self.forget(control);
        let group = group.map(|name| {
            let (name, group) = match self.groups.get_key_value(name) {
                Some((name, _)) => (Rc::clone(name), None),
                None => (
                    Rc::from(name),
                    Some(Group {
                        members: Vec::new(),
                        next: 0,
                    }),
                ),
            };
            if let Some(group) = group {
                self.groups.insert(Rc::clone(&name), group);
            }
            if let Some(group) = self.groups.get_mut(&name) {
                group.members.push((control, kinds));
            }
            name
        });
        self.listeners.insert(control, Listener { group, kinds });
        self.recompute_wanted();
    }

    /// `control` no longer listens (it closed).
    pub fn forget(&mut self, control: Key) {
        let Some(listener) = self.listeners.remove(&control) else {
            return;
        };
        if let Some(name) = listener.group
            && let Some(group) = self.groups.get_mut(&name)
        {
            if let Some(index) = group
                .members
                .iter()
                .position(|(member, _)| *member == control)
            {
                group.members.remove(index);
                // The member after the one removed keeps its turn.
                if index < group.next {
                    group.next -= 1;
                }
            }
            if group.members.is_empty() {
                self.groups.remove(&name);
            }
        }
        self.recompute_wanted();
    }

    fn recompute_wanted(&mut self) {
        self.wanted = self.local_kinds().union(self.remote_wanted);
    }

    /// The kinds this node's listeners hear.
    pub fn local_kinds(&self) -> EventKinds {
        self.listeners
            .values()
            .fold(EventKinds::NONE, |wanted, listener| {
                listener.kinds.iter().fold(wanted, EventKinds::with)
            })
    }

    /// The groups that have members on this node.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(|name| &**name)
    }

    /// From now on the events the other nodes want are kept for them (`take_forward`).
    pub fn forward_to_cluster(&mut self) {
        self.forward.get_or_insert_with(Vec::new);
    }

    /// The kinds the other nodes' listeners hear, as last heard.
    pub fn remote_wanted(&self) -> EventKinds {
        self.remote_wanted
    }

    /// The kinds the other nodes' listeners hear now.
    pub fn set_remote_wanted(&mut self, kinds: EventKinds) {
        self.remote_wanted = kinds;
        self.recompute_wanted();
    }

    /// The frames of the events the other nodes want, since the last call.
    pub fn take_forward(&mut self) -> Vec<u8> {
        self.forward
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// An event another node emitted (`frame`, of `kind`): to this node's listeners without a
    /// group, and to the groups `deliver_group` names (the one node that delivers for each).
    pub fn deliver_remote(
        &mut self,
        frame: &Rc<[u8]>,
        kind: EventKind,
        deliver_group: impl Fn(&str) -> bool,
    ) {
        self.route(frame, kind, deliver_group);
    }

    pub fn listeners(&self) -> usize {
        self.listeners.len()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// True when some listener hears `kind`: worth building the event.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.wanted.contains(kind)
    }

    /// Queues `event` for every listener and group that hears its kind.
    pub fn emit(&mut self, event: &Event<'_>) {
        let kind = event.kind();
        if !self.wants(kind) {
            return;
        }
        let mut bytes = Vec::new();
        event.encode(&mut bytes);
        if let Some(forward) = &mut self.forward
            && self.remote_wanted.contains(kind)
        {
            forward.extend_from_slice(&bytes);
        }
        let frame: Rc<[u8]> = Rc::from(bytes);
        // A group with members here hears this node's events here.
        self.route(&frame, kind, |_| true);
    }

    /// Queues `frame` (an event of `kind`) for every listener without a group that hears
    /// it, and for the groups `group_here` accepts that have a member hearing it.
    fn route(&mut self, frame: &Rc<[u8]>, kind: EventKind, group_here: impl Fn(&str) -> bool) {
        for (&key, listener) in &self.listeners {
            if listener.group.is_none() && listener.kinds.contains(kind) {
                self.outbox.push_back(Outgoing {
                    route: Route::To(key),
                    frame: Rc::clone(frame),
                });
            }
        }
        for (name, group) in &self.groups {
            if group.members.iter().any(|(_, kinds)| kinds.contains(kind)) && group_here(name) {
                self.outbox.push_back(Outgoing {
                    route: Route::Group {
                        name: Rc::clone(name),
                        kind,
                    },
                    frame: Rc::clone(frame),
                });
            }
        }
    }

    /// Queues a frame for one control connection (an authorization request).
    pub fn send(&mut self, to: Key, frame: Rc<[u8]>) {
        self.outbox.push_back(Outgoing {
            route: Route::To(to),
            frame,
        });
    }

    /// Hands every queued frame to `sink`, in order; returns the control connections whose
    /// queues were full, which no longer listen and are to be closed.
    pub fn drain(&mut self, sink: &mut dyn ControlSink) -> Vec<Key> {
        let mut full = Vec::new();
        while let Some(Outgoing { route, frame }) = self.outbox.pop_front() {
            match route {
                Route::To(key) => {
                    if full.contains(&key) {
                        continue;
                    }
                    if sink.offer(key, &frame) == Offer::Full {
                        full.push(key);
                        self.drop_listener(key);
                    }
                }
                Route::Group { name, kind } => {
                    while let Some(member) = self.next_member(&name, kind) {
                        match sink.offer(member, &frame) {
                            Offer::Queued => break,
                            Offer::Full => {
                                full.push(member);
                                self.drop_listener(member);
                            }
                            Offer::Gone => self.forget(member),
                        }
                    }
                }
            }
        }
        full
    }

    fn drop_listener(&mut self, key: Key) {
        if self.listeners.contains_key(&key) {
            self.dropped += 1;
            self.forget(key);
        }
    }

    /// The next member of `name` that hears `kind`, moving the group's cursor past it.
    fn next_member(&mut self, name: &str, kind: EventKind) -> Option<Key> {
        let group = self.groups.get_mut(name)?;
        let count = group.members.len();
        for step in 0..count {
            let index = (group.next + step) % count;
            if let Some(&(key, kinds)) = group.members.get(index)
                && kinds.contains(kind)
            {
                group.next = (index + 1) % count;
                return Some(key);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::slab::Slab;
    use crate::token::Token;

    fn keys(n: usize) -> Vec<Key> {
        let mut slab = Slab::default();
        (0..n).map(|_| slab.insert(()).unwrap()).collect()
    }

    /// Records what each connection got; the ones in `full` refuse everything.
    #[derive(Default)]
    struct Recorder {
        got: Vec<(Key, Vec<u8>)>,
        full: Vec<Key>,
    }

    impl ControlSink for Recorder {
        fn offer(&mut self, to: Key, frame: &Rc<[u8]>) -> Offer {
            if self.full.contains(&to) {
                return Offer::Full;
            }
            self.got.push((to, frame.to_vec()));
            Offer::Queued
        }
    }

    fn join(n: u8) -> Event<'static> {
        let _ = n;
        Event::Join {
            user: "alice",
            topic: "news",
        }
    }

    fn message(payload: &'static [u8]) -> Event<'static> {
        Event::Message {
            token: Token::from_array([b'a'; 32]),
            user: "alice",
            binary: false,
            payload,
        }
    }

    #[test]
    fn nothing_is_encoded_without_a_listener_for_the_kind() {
        let k = keys(1);
        let mut events = Events::default();
        events.emit(&join(0));
        events.listen(k[0], None, EventKinds::NONE.with(EventKind::Message));
        events.emit(&join(0));
        assert!(events.outbox.is_empty());
        assert!(events.wants(EventKind::Message));
        assert!(!events.wants(EventKind::Join));
    }

    #[test]
    fn every_plain_listener_gets_every_event_of_its_kinds() {
        let k = keys(2);
        let mut events = Events::default();
        events.listen(k[0], None, EventKinds::ALL);
        events.listen(k[1], None, EventKinds::ALL);
        events.emit(&message(b"hi"));
        let mut sink = Recorder::default();
        assert!(events.drain(&mut sink).is_empty());
        assert_eq!(sink.got.len(), 2);
        assert_eq!(sink.got[0].1, sink.got[1].1);
    }

    #[test]
    fn a_group_shares_events_round_robin() {
        let k = keys(3);
        let mut events = Events::default();
        for key in &k {
            events.listen(*key, Some("workers"), EventKinds::ALL);
        }
        for _ in 0..6 {
            events.emit(&message(b"m"));
        }
        let mut sink = Recorder::default();
        events.drain(&mut sink);
        let order: Vec<Key> = sink.got.iter().map(|(key, _)| *key).collect();
        assert_eq!(order, vec![k[0], k[1], k[2], k[0], k[1], k[2]]);
    }

    #[test]
    fn a_full_member_is_dropped_and_its_event_goes_to_the_next() {
        let k = keys(3);
        let mut events = Events::default();
        for key in &k {
            events.listen(*key, Some("workers"), EventKinds::ALL);
        }
        events.emit(&message(b"m"));
        let mut sink = Recorder {
            full: vec![k[0]],
            ..Recorder::default()
        };
        assert_eq!(events.drain(&mut sink), vec![k[0]]);
        assert_eq!(sink.got.len(), 1);
        assert_eq!(sink.got[0].0, k[1]);
        assert_eq!(events.listeners(), 2);
        assert_eq!(events.dropped(), 1);
    }

    #[test]
    fn group_members_only_get_the_kinds_they_asked_for() {
        let k = keys(2);
        let mut events = Events::default();
        events.listen(k[0], Some("g"), EventKinds::NONE.with(EventKind::Join));
        events.listen(k[1], Some("g"), EventKinds::NONE.with(EventKind::Message));
        events.emit(&message(b"m"));
        events.emit(&join(0));
        events.emit(&message(b"m"));
        let mut sink = Recorder::default();
        events.drain(&mut sink);
        let order: Vec<Key> = sink.got.iter().map(|(key, _)| *key).collect();
        assert_eq!(order, vec![k[1], k[0], k[1]]);
    }

    #[test]
    fn listening_again_replaces_the_group_and_kinds() {
        let k = keys(1);
        let mut events = Events::default();
        events.listen(k[0], Some("g"), EventKinds::ALL);
        events.listen(k[0], None, EventKinds::NONE.with(EventKind::Join));
        assert!(events.groups.is_empty());
        assert!(!events.wants(EventKind::Message));
        events.forget(k[0]);
        assert_eq!(events.listeners(), 0);
    }
}
