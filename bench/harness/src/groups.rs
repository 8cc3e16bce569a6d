//! Messages to groups of clients (issue 10): a publication (`x`) to a topic, or a message
//! (`u`) to every connection of a user. Both are the same workload to the generator: the
//! clients fall into groups, each trigger goes to one group picked at random (fixed seed),
//! and every member of that group must get it exactly once, in order.
//!
//! Each message names its phase, its sequence number in the phase, its group and its
//! sequence number within the group. A client knows its group, so it checks the group and
//! expects the group's sequence numbers one after the other: a number past the one expected
//! leaves the skipped ones outstanding (arriving later: reordered; never: lost), a number
//! below it that was not skipped is a duplicate. That takes one counter per client, where a
//! bitmap per client over every trigger would not fit at 100,000 publications and 10,000
//! clients.
//!
//! The WAMP EVENT fan-out of issue 11 is the same workload through a WAMP publisher
//! (`via_wamp`): each trigger is a PUBLISH from one client session, and each subscriber gets
//! the payload as the one argument of an EVENT naming its subscription.

use std::collections::HashMap;
use std::time::Instant;

use wson::control::fields;

use crate::generator::{Outbox, Tally, Workload, read_hex, write_hex};
use crate::wamp;

/// Bytes of a payload that identify it: tag, phase, sequence, group, sequence in the group.
const ID_LEN: usize = 33;
const TAG: u8 = b'G';
/// No group.
const NONE: u32 = u32::MAX;

/// Who gets what: the groups, their names on the control wire, and each client's group.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// `x` (publish to a topic) or `u` (to every connection of a user).
    pub command: u8,
    /// Each group's name: the topic, or the user.
    pub names: Vec<String>,
    /// Per client (by index): its group, or `None`.
    pub member_of: Vec<Option<u32>>,
}

impl GroupSpec {
    /// Clients `0..clients` spread over `topics` topics `bench.t{k}` (client i in topic
    /// i % topics), or, with `topics` = 1, all in `bench.all`.
    pub fn topics(clients: usize, topics: usize) -> GroupSpec {
        let topics = topics.clamp(1, clients.max(1));
        let names = if topics == 1 {
            vec!["bench.all".to_string()]
        } else {
            (0..topics).map(|k| format!("bench.t{k}")).collect()
        };
        GroupSpec {
            command: b'x',
            names,
            member_of: (0..clients)
                .map(|i| u32::try_from(i % topics).ok())
                .collect(),
        }
    }

    /// Clients `0..clients`, `per_user` consecutive ones per user `u{i / per_user}` (the
    /// generator's naming with `set_clients_per_user`).
    pub fn users(clients: usize, per_user: usize) -> GroupSpec {
        let per_user = per_user.max(1);
        let users = clients.div_ceil(per_user);
        GroupSpec {
            command: b'u',
            names: (0..users).map(|u| format!("u{u}")).collect(),
            member_of: (0..clients)
                .map(|i| u32::try_from(i / per_user).ok())
                .collect(),
        }
    }

    /// Members per group.
    pub fn sizes(&self) -> Vec<u32> {
        let mut sizes = vec![0u32; self.names.len()];
        for group in self.member_of.iter().flatten() {
            if let Some(size) = sizes.get_mut(*group as usize) {
                *size += 1;
            }
        }
        sizes
    }

    /// The frames that subscribe every member of every group: `j` per token (`by_user`
    /// false; `tokens` by client index) or `J` per user of `users` (by client index; each
    /// user once). Returns the frames and how many there are.
    pub fn subscribe_frames(
        &self,
        tokens: &[[u8; 32]],
        users: &[String],
        by_user: bool,
    ) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut count = 0;
        let mut done: HashMap<&str, ()> = HashMap::new();
        for (index, group) in self.member_of.iter().enumerate() {
            let Some(topic) = group.and_then(|g| self.names.get(g as usize)) else {
                continue;
            };
            if by_user {
                let Some(user) = users.get(index) else {
                    continue;
                };
                if done.insert(user.as_str(), ()).is_some() {
                    continue;
                }
                fields::encode_fields_frame(b'J', &[user.as_bytes(), topic.as_bytes()], &mut out);
            } else {
                let Some(token) = tokens.get(index) else {
                    continue;
                };
                fields::encode_fields_frame(b'j', &[token, topic.as_bytes()], &mut out);
            }
            count += 1;
        }
        (out, count)
    }
}

/// A payload of `size` bytes (at least `ID_LEN`).
fn payload(size: usize, phase: u32, seq: u32, group: u32, group_seq: u32) -> Vec<u8> {
    let mut bytes = vec![b'.'; size.max(ID_LEN)];
    bytes[0] = TAG;
    write_hex(&mut bytes[1..9], phase);
    write_hex(&mut bytes[9..17], seq);
    write_hex(&mut bytes[17..25], group);
    write_hex(&mut bytes[25..33], group_seq);
    bytes
}

/// (phase, seq, group, group_seq) of a payload made by `payload`.
fn parse(bytes: &[u8]) -> Option<(u32, u32, u32, u32)> {
    if *bytes.first()? != TAG {
        return None;
    }
    Some((
        read_hex(bytes.get(1..)?)?,
        read_hex(bytes.get(9..)?)?,
        read_hex(bytes.get(17..)?)?,
        read_hex(bytes.get(25..)?)?,
    ))
}

/// The running phase: messages to random groups, at most `window` not yet received by
/// every member.
pub struct Groups {
    id: u32,
    size: usize,
    window: u32,
    /// Send a whole window at once, and the next only when all of it has arrived.
    burst: bool,
    max: u32,
    command: u8,
    names: Vec<String>,
    /// Groups with at least one member (only those are picked).
    pickable: Vec<u32>,
    sizes: Vec<u32>,
    member_of: Vec<u32>,
    rng: u64,
    sent: u32,
    completed: u32,
    sent_at: Vec<Instant>,
    remaining: Vec<u32>,
    group_of: Vec<u32>,
    group_seq_of: Vec<u32>,
    /// Per group: messages sent to it so far.
    group_sent: Vec<u32>,
    /// Per client: the sequence number in its group it expects next.
    expect: Vec<u32>,
    /// Per client with a gap: the group sequence numbers it skipped over.
    skipped: HashMap<usize, Vec<u32>>,
    /// Publications go as WAMP PUBLISH from this client, and arrive as EVENT.
    wamp: Option<ViaWamp>,
}

struct ViaWamp {
    publisher: usize,
    /// Per client: the subscription id its EVENTs must name (0: none).
    subscriptions: Vec<u64>,
}

impl Groups {
    pub fn new(spec: &GroupSpec, id: u32, size: usize, window: u32, max: u32) -> Groups {
        let sizes = spec.sizes();
        let pickable = (0..sizes.len())
            .filter(|&g| sizes[g] > 0)
            .filter_map(|g| u32::try_from(g).ok())
            .collect();
        let reserve = (max as usize).min(1 << 20);
        Groups {
            id,
            size,
            window,
            burst: false,
            max,
            command: spec.command,
            names: spec.names.clone(),
            pickable,
            group_sent: vec![0; sizes.len()],
            sizes,
            member_of: spec.member_of.iter().map(|g| g.unwrap_or(NONE)).collect(),
            rng: 0x2545_F491_4F6C_DD1D ^ u64::from(id),
            sent: 0,
            completed: 0,
            sent_at: Vec::with_capacity(reserve),
            remaining: Vec::with_capacity(reserve),
            group_of: Vec::with_capacity(reserve),
            group_seq_of: Vec::with_capacity(reserve),
            expect: vec![0; spec.member_of.len()],
            skipped: HashMap::new(),
            wamp: None,
        }
    }

    /// Publishes with WAMP PUBLISH (`[16, request, {}, topic, [payload]]`) from the client
    /// session `publisher`; each member expects EVENTs naming its subscription id
    /// (`subscriptions`, by client index).
    pub fn via_wamp(mut self, publisher: usize, subscriptions: Vec<u64>) -> Groups {
        self.wamp = Some(ViaWamp {
            publisher,
            subscriptions,
        });
        self
    }

    /// Windows in bursts: `window` messages written together, the next burst when every
    /// one of them has arrived. A sliding window of thousands of publications over many
    /// topics settles in one of two rhythms, depending on how the first window's bytes
    /// happened to reach wson (at once, or in pieces that then circulate as separate
    /// groups): about 32 or about 9 messages per `writev` at 100 x 32 in flight, and a
    /// 2.5x difference in CPU per delivery between runs. In bursts, every window reaches
    /// wson whole, as a broadcast window of 32 does.
    pub fn in_bursts(mut self) -> Groups {
        self.burst = true;
        self
    }

    fn next_group(&mut self) -> u32 {
        // xorshift64, as the direct phase: deterministic, uniform enough.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let n = self.pickable.len() as u64;
        self.pickable[(self.rng % n) as usize]
    }
}

impl Workload for Groups {
    fn trigger(&mut self, sending: bool, now: Instant, out: &mut Outbox) -> u64 {
        if self.burst && self.completed < self.sent {
            return u64::from(self.sent);
        }
        let mut publications = Vec::new();
        while sending
            && !self.pickable.is_empty()
            && self.sent < self.max
            && self.sent - self.completed < self.window
        {
            let group = self.next_group();
            let g = group as usize;
            let group_seq = self.group_sent[g];
            self.group_sent[g] += 1;
            let body = payload(self.size, self.id, self.sent, group, group_seq);
            match &self.wamp {
                Some(_) => wamp::publish_frame(
                    u64::from(self.sent) + 1,
                    &self.names[g],
                    &body,
                    &mut publications,
                ),
                None => fields::encode_fields_frame(
                    self.command,
                    &[self.names[g].as_bytes(), &body],
                    &mut out.control,
                ),
            }
            self.sent_at.push(now);
            self.remaining.push(self.sizes[g]);
            self.group_of.push(group);
            self.group_seq_of.push(group_seq);
            self.sent += 1;
        }
        if let Some(via) = &self.wamp
            && !publications.is_empty()
        {
            out.clients.push((via.publisher, publications));
        }
        u64::from(self.sent)
    }

    fn done(&self, sending: bool) -> bool {
        self.completed == self.sent && (self.sent == self.max || !sending)
    }

    fn outstanding(&self) -> u64 {
        self.remaining.iter().map(|&r| u64::from(r)).sum()
    }

    fn on_client_message(&mut self, body: &[u8], index: usize, tally: &mut Tally, now: Instant) {
        let Some(via) = &self.wamp else {
            self.check(body, index, tally, now);
            return;
        };
        // EVENT [36, subscription, publication, details, [payload]]
        let expected = via.subscriptions.get(index).copied().unwrap_or(0);
        match wamp::head(body) {
            Some((wamp::EVENT, [Some(subscription), ..])) if subscription == expected => {}
            _ => {
                tally.anomalies.stray += 1;
                return;
            }
        }
        match wamp::string_arg(body) {
            Some(payload) => self.check(&payload, index, tally, now),
            None => tally.anomalies.stray += 1,
        }
    }

    fn on_control_frame(&mut self, _command: u8, _payload: &[u8], tally: &mut Tally, _: Instant) {
        // `x` and `u` have no reply: anything else (a `0E`) is wrong.
        tally.anomalies.stray += 1;
    }
}

impl Groups {
    /// Checks one delivered payload against what its client expects.
    fn check(&mut self, body: &[u8], index: usize, tally: &mut Tally, now: Instant) {
        let Some((id, seq, group, group_seq)) = parse(body) else {
            tally.anomalies.stray += 1;
            return;
        };
        let s = seq as usize;
        let mine = self.member_of.get(index).copied().unwrap_or(NONE);
        if id != self.id
            || seq >= self.sent
            || group != mine
            || self.group_of[s] != group
            || self.group_seq_of[s] != group_seq
        {
            tally.anomalies.stray += 1;
            return;
        }
        let expect = &mut self.expect[index];
        if group_seq == *expect {
            *expect += 1;
        } else if group_seq > *expect {
            self.skipped
                .entry(index)
                .or_default()
                .extend(*expect..group_seq);
            *expect = group_seq + 1;
        } else {
            let late = self.skipped.get_mut(&index).and_then(|skipped| {
                let at = skipped.iter().position(|&k| k == group_seq)?;
                Some(skipped.swap_remove(at))
            });
            if late.is_none() {
                tally.anomalies.duplicated += 1;
                return;
            }
            tally.anomalies.reordered += 1;
        }
        let slot = &mut self.remaining[s];
        if *slot == 0 {
            tally.anomalies.duplicated += 1;
            return;
        }
        *slot -= 1;
        tally.delivered += 1;
        tally.last_progress = Some(now);
        if *slot == 0 {
            self.completed += 1;
            tally.latencies.push(now - self.sent_at[s]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_spread_clients_evenly() {
        let spec = GroupSpec::topics(1000, 100);
        assert_eq!(spec.sizes(), vec![10; 100]);
        assert_eq!(GroupSpec::topics(5, 1).sizes(), vec![5]);
        assert_eq!(GroupSpec::users(10, 3).sizes(), vec![3, 3, 3, 1]);
    }

    #[test]
    fn every_member_gets_each_message_once_in_order() {
        let spec = GroupSpec::topics(6, 2);
        let mut groups = Groups::new(&spec, 7, 40, 4, 100);
        let mut out = Outbox::default();
        let now = Instant::now();
        assert_eq!(groups.trigger(true, now, &mut out), 4);
        let mut tally = Tally::default();
        // Deliver every message to every member of its group.
        for seq in 0..4usize {
            let group = groups.group_of[seq];
            let body = payload(40, 7, seq as u32, group, groups.group_seq_of[seq]);
            for client in 0..6 {
                if spec.member_of[client] == Some(group) {
                    groups.on_client_message(&body, client, &mut tally, now);
                }
            }
        }
        assert_eq!(tally.delivered, 12);
        assert_eq!(tally.anomalies.total(), 0);
        assert!(groups.done(false));
        // The same message again is a duplicate; to the other group's client, stray.
        let body = payload(40, 7, 0, groups.group_of[0], groups.group_seq_of[0]);
        let member = spec
            .member_of
            .iter()
            .position(|g| *g == Some(groups.group_of[0]))
            .unwrap();
        groups.on_client_message(&body, member, &mut tally, now);
        assert_eq!(tally.anomalies.duplicated, 1);
        let other = spec
            .member_of
            .iter()
            .position(|g| *g != Some(groups.group_of[0]))
            .unwrap();
        groups.on_client_message(&body, other, &mut tally, now);
        assert_eq!(tally.anomalies.stray, 1);
    }

    #[test]
    fn a_burst_waits_for_the_whole_window() {
        let spec = GroupSpec::topics(4, 2);
        let mut groups = Groups::new(&spec, 2, 40, 3, 100).in_bursts();
        let now = Instant::now();
        assert_eq!(groups.trigger(true, now, &mut Outbox::default()), 3);
        let mut tally = Tally::default();
        let deliver = |groups: &mut Groups, seq: usize, tally: &mut Tally| {
            let group = groups.group_of[seq];
            let body = payload(40, 2, seq as u32, group, groups.group_seq_of[seq]);
            for client in 0..4 {
                if spec.member_of[client] == Some(group) {
                    groups.on_client_message(&body, client, tally, now);
                }
            }
        };
        deliver(&mut groups, 0, &mut tally);
        assert_eq!(groups.trigger(true, now, &mut Outbox::default()), 3);
        deliver(&mut groups, 1, &mut tally);
        deliver(&mut groups, 2, &mut tally);
        assert_eq!(groups.trigger(true, now, &mut Outbox::default()), 6);
        assert_eq!(tally.anomalies.total(), 0);
    }

    #[test]
    fn a_late_message_is_reordered_not_duplicated() {
        let spec = GroupSpec::topics(1, 1);
        let mut groups = Groups::new(&spec, 1, 40, 8, 3);
        let now = Instant::now();
        groups.trigger(true, now, &mut Outbox::default());
        let mut tally = Tally::default();
        for seq in [0u32, 2, 1] {
            groups.on_client_message(&payload(40, 1, seq, 0, seq), 0, &mut tally, now);
        }
        assert_eq!(tally.delivered, 3);
        assert_eq!(tally.anomalies.reordered, 1);
        assert_eq!(tally.anomalies.duplicated, 0);
        assert_eq!(groups.outstanding(), 0);
    }

    #[test]
    fn subscribe_frames_name_each_user_once() {
        let spec = GroupSpec::topics(4, 1);
        let users: Vec<String> = ["a", "a", "b", "b"].iter().map(|u| u.to_string()).collect();
        let (frames, count) = spec.subscribe_frames(&[[b'x'; 32]; 4], &users, true);
        assert_eq!(count, 2);
        assert_eq!(frames, b"14J1:a9:bench.all14J1:b9:bench.all".to_vec());
        let (frames, count) = spec.subscribe_frames(&[[b'x'; 32]; 4], &users, false);
        assert_eq!(count, 4);
        assert!(frames.starts_with(b"46j32:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx9:bench.all"));
    }
}
