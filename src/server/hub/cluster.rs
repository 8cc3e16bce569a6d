//! The hub's side of the cluster (`[cluster]`): what a control connection broadcasts or
//! publishes here goes to the other nodes as the frames already built for this node's
//! clients, and what the other nodes publish is queued to this node's clients the same way
//! a local batch is. Questions only the whole cluster can answer (`c`, `w`, `o`) are asked
//! of every live node (heard within three heartbeats) and answered once each has answered or
//! `request_timeout` has passed. The hub owns the link's loop end; the link's threads own
//! the Redis connections.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use std::num::NonZeroUsize;

use crate::cluster::{ClusterMessage, Link, ListKind, Question, RedisState, Subject, wire};
use crate::control::command::{Page, PageRequest, Refusal, Reply};
use crate::control::event::EventKinds;
use crate::control::fields;
use crate::resume::Position;
use crate::server::commands::Ticket;
use crate::server::hub::cluster_admission::AdmissionSide;
use crate::server::hub::cluster_count::UserCount;
use crate::server::hub::cluster_history::KeptSide;
use crate::server::hub::{Hub, Message};
use crate::server::outbound::BatchFor;
use crate::server::settings::Settings;
use crate::server::slab::Key;
use crate::server::stats::Stats;
use crate::token::Token;

/// Bytes of messages for one destination past which a new Redis message begins.
const MAX_BATCH: usize = 256 * 1024;
/// Bytes a loop turn holds for the other nodes before it publishes them (`flush`).
const MAX_TURN: usize = 4 * MAX_BATCH;

/// Heartbeats a node may miss before it counts as gone.
pub(super) const MISSED_HEARTBEATS: u32 = 3;

/// The cluster's figures for the status reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFigures {
    pub node_id: String,
    pub redis: RedisState,
    /// Other nodes heard within three heartbeats.
    pub nodes: usize,
    /// Messages handed to the publisher, and received from the channels (own ones included).
    pub sent: u64,
    pub received: u64,
    /// Messages dropped because the queue to Redis was full, or lost when Redis went away
    /// under them: the other nodes never got them.
    pub dropped: u64,
    /// Messages from the channel that were no wson message (logged).
    pub refused: u64,
    /// The event kinds the other nodes' listeners hear: what this node forwards.
    pub events_wanted: EventKinds,
    /// Other live nodes with a connect authorizer.
    pub authorizer_nodes: usize,
    /// Tokens this node holds (or is claiming) cluster-wide.
    pub claims: usize,
    /// Upgrades admitted without a cluster-wide claim of their token (Redis away or slow).
    pub claims_skipped: u64,
    /// Resumes served from Redis (the node's mirror of the history could not).
    pub history_fetches: u64,
    /// Publications to topics with history delivered here only, without a position (Redis
    /// out of reach).
    pub history_unpositioned: u64,
}

/// How a cluster-wide question goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// No cluster, or no other node alive: this node's answer is the whole answer.
    Alone,
    /// This node has lost Redis: nobody can answer for the others.
    Unavailable,
    /// Asked; the reply comes under this ticket (`take_cluster_replies`).
    Later(Ticket),
}

/// What a question's answers make.
#[derive(Debug, Clone)]
enum Answering {
    /// `c`, `C`: `A` when any node reached the token, else `N`.
    Confirm(Token),
    /// `w`, `W`, `o`, `k`, `K`: the sum.
    Count,
    /// `t`: this node's status with every node's, and their sums. `nodes`: (node, status).
    Status {
        local: String,
        nodes: Vec<(String, Vec<u8>)>,
    },
    /// `j`, `J`: the sum, unless no node subscribed any connection and one refused (the first
    /// refusal heard, this node's first).
    Subscription { refusal: Option<Refusal> },
    /// `m`: the freest listener's domain of the node with the fewest connections (this
    /// node's on a tie), as (connections, domain).
    Freest { best: (u64, String) },
    /// `g`, `y`, `h`, `v`: every node's page after the same cursor, merged.
    Pages { limit: usize, pages: Vec<Page> },
    /// `H`: the connections added (the count), the users each counted once.
    Users(UserCount),
}

/// Who waits for a question's answers.
#[derive(Debug, Clone, Copy)]
enum Asker {
    /// A control connection's command, whose reply comes under `ticket`.
    Control { key: Key, ticket: Ticket },
    /// The router's held reply `ticket` (`Question::Barrier`).
    Router { ticket: u64 },
}

struct Pending {
    asker: Asker,
    answering: Answering,
    /// Nodes yet to answer.
    waiting: Vec<String>,
    count: u64,
    deadline: Instant,
}

/// The hub's end of the cluster.
pub(super) struct ClusterSide {
    pub(super) link: Link,
    refused: u64,
    pub(super) heartbeat: Duration,
    request_timeout: Duration,
    next_heartbeat: Instant,
    /// Other nodes by id, with when each was last heard.
    peers: HashMap<String, Instant>,
    /// What the other nodes' event listeners hear, and which groups have members there
    /// (from their heartbeats).
    listening: HashMap<String, (EventKinds, Vec<String>)>,
    next_question: u64,
    pending: HashMap<u64, Pending>,
    /// Most questions waiting for answers (`[cluster] max_queue`).
    max_pending: usize,
    /// Replies due to control connections, taken by the server.
    pub(super) replies: Vec<(Key, Ticket, Reply)>,
    /// Status questions of other nodes (asker, question id): the server, which has every
    /// figure, answers them.
    statuses_wanted: Vec<(String, u64)>,
    /// Messages for the other nodes this loop turn, batched by consecutive destination
    /// (`None`: every node): (destination, messages, their bytes).
    out: Vec<(Option<String>, Vec<Vec<u8>>, usize)>,
    /// WAMP messages sent last, for one destination, not yet one `Wamp` message of `out`:
    /// (destination, realm and message pairs).
    open_wamp: Option<(Option<String>, Vec<u8>)>,
    /// The router's held replies whose barrier is answered (or timed out).
    settled: Vec<u64>,
    /// `Link::came_up` when last seen: when it comes up again, the registrations are told
    /// again.
    came_up: u64,
    /// Authorizers on other nodes and claims of tokens (`cluster_admission.rs`).
    pub(super) admission: AdmissionSide,
    /// The history in Redis (`cluster_history.rs`).
    pub(super) kept: KeptSide,
}

impl ClusterSide {
    /// A question's or a history request's id, which is also its ticket: unique for the
    /// server's life.
    pub(super) fn next_id(&mut self) -> u64 {
        let id = self.next_question;
        self.next_question += 1;
        id
    }

    pub(super) fn alive(&self, now: Instant) -> Vec<String> {
        let span = self.heartbeat * MISSED_HEARTBEATS;
        self.peers
            .iter()
            .filter(|(_, heard)| now.saturating_duration_since(**heard) <= span)
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// Sends a message once the loop turn ends (`flush`), with the messages sent just before
    /// it to the same destination (`None`: every node) as one Redis message; the order of all
    /// is kept.
    pub(super) fn send(&mut self, to: Option<&str>, message: impl FnOnce(&str, &mut Vec<u8>)) {
        self.close_wamp();
        self.push(to, message);
        self.flush_when_full();
    }

    /// A turn that sends more than `MAX_TURN` bytes publishes what it has so far (in
    /// order): what waits for the turn's end stays bounded.
    fn flush_when_full(&mut self) {
        let waiting: usize = self.out.iter().map(|(_, _, size)| size).sum();
        let open = self.open_wamp.as_ref().map_or(0, |(_, pairs)| pairs.len());
        if waiting + open > MAX_TURN {
            self.flush();
        }
    }

    /// `send` for one WAMP message of `realm`: consecutive ones for one destination share
    /// one `Wamp` message (less to frame and check per message than one each).
    pub(super) fn send_wamp(&mut self, to: Option<&str>, realm: &str, message: &[u8]) {
        let joins = self
            .open_wamp
            .as_ref()
            .is_some_and(|(node, pairs)| node.as_deref() == to && pairs.len() < MAX_BATCH);
        if !joins {
            self.close_wamp();
            self.open_wamp = Some((to.map(str::to_owned), Vec::new()));
        }
        if let Some((_, pairs)) = &mut self.open_wamp {
            wire::append_wamp(pairs, realm, message);
        }
        self.flush_when_full();
    }

    /// The open `Wamp` message joins the batch.
    fn close_wamp(&mut self) {
        if let Some((to, pairs)) = self.open_wamp.take() {
            self.push(to.as_deref(), |origin, out| {
                ClusterMessage::Wamp {
                    origin,
                    messages: &pairs,
                }
                .encode(out);
            });
        }
    }

    fn push(&mut self, to: Option<&str>, message: impl FnOnce(&str, &mut Vec<u8>)) {
        let mut bytes = Vec::with_capacity(128);
        message(self.link.instance(), &mut bytes);
        let joins = self.out.last().is_some_and(|(node, batch, size)| {
            node.as_deref() == to && !batch.is_empty() && size + bytes.len() <= MAX_BATCH
        });
        if !joins {
            self.out.push((to.map(str::to_owned), Vec::new(), 0));
        }
        if let Some((_, batch, size)) = self.out.last_mut() {
            *size += bytes.len();
            batch.push(bytes);
        }
    }

    /// Publishes what the loop turn sent: a batch as one Redis message, a lone message as
    /// itself.
    pub(super) fn flush(&mut self) {
        self.close_wamp();
        for (to, mut batch, _) in std::mem::take(&mut self.out) {
            let bytes = if batch.len() == 1 {
                batch.pop().unwrap_or_default()
            } else {
                let mut messages = Vec::new();
                for message in &batch {
                    wire::append_to_batch(&mut messages, message);
                }
                let mut bytes = Vec::with_capacity(messages.len() + 64);
                ClusterMessage::Batch {
                    origin: self.link.instance(),
                    messages: &messages,
                }
                .encode(&mut bytes);
                bytes
            };
            match to {
                Some(node) => self.link.publish_to(&node, bytes),
                None => self.link.publish(bytes),
            }
        }
    }

    fn finish(&mut self, id: u64) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        let (control, ticket) = match pending.asker {
            Asker::Control { key, ticket } => (key, ticket),
            Asker::Router { ticket } => {
                self.settled.push(ticket);
                return;
            }
        };
        let reply = match pending.answering {
            Answering::Confirm(token) if pending.count > 0 => Reply::Ack(token),
            Answering::Confirm(token) => Reply::Nack(token),
            Answering::Count => Reply::Count(pending.count),
            Answering::Status { local, nodes } => {
                Reply::Status(cluster_status(self.link.node_id(), &local, &nodes))
            }
            Answering::Subscription {
                refusal: Some(refusal),
            } if pending.count == 0 => Reply::Refused(refusal),
            Answering::Subscription { .. } => Reply::Count(pending.count),
            Answering::Freest { best } => Reply::Domain(best.1),
            Answering::Pages { limit, pages } => Reply::Page(merge_pages(limit, &pages)),
            Answering::Users(users) => Reply::TopicCount {
                users: users.total(),
                connections: pending.count,
            },
        };
        self.replies.push((control, ticket, reply));
    }
}

impl Hub {
    /// True with `[cluster] redis`.
    pub fn clustered(&self) -> bool {
        self.cluster.is_some()
    }

    /// Joins the cluster through `link`.
    pub fn join_cluster(
        &mut self,
        link: Link,
        heartbeat: Duration,
        request_timeout: Duration,
        max_pending: usize,
        now: Instant,
    ) {
        self.events.forward_to_cluster();
        self.cluster = Some(ClusterSide {
            max_pending,
            link,
            refused: 0,
            heartbeat,
            request_timeout,
            next_heartbeat: now,
            peers: HashMap::new(),
            listening: HashMap::new(),
            next_question: 1,
            pending: HashMap::new(),
            replies: Vec::new(),
            statuses_wanted: Vec::new(),
            out: Vec::new(),
            open_wamp: None,
            settled: Vec::new(),
            came_up: 0,
            admission: AdmissionSide::new(now),
            kept: KeptSide::default(),
        });
        // The claims thread learns the node's liveness before its first claim.
        self.cluster_admission_tick(now);
    }

    /// Encodes a message naming this node and hands it to the link (to node `to`, else to
    /// every node); nothing without a cluster.
    pub(super) fn cluster_publish(
        &mut self,
        to: Option<&str>,
        encode: impl FnOnce(&str, &mut Vec<u8>),
    ) {
        if let Some(cluster) = &mut self.cluster {
            cluster.send(to, encode);
        }
    }

    /// A control batch, just queued to this node's clients: the same frames to the others,
    /// as one Redis message.
    pub fn cluster_forward(&mut self, audience: BatchFor<'_>, frames: &[u8], messages: usize) {
        self.cluster_forward_with(audience, frames, messages, b"");
    }

    /// `cluster_forward`, with the WAMP PUBLISH options of a publication (`x` with options,
    /// one message) for the other nodes' WAMP subscribers.
    pub fn cluster_forward_with(
        &mut self,
        audience: BatchFor<'_>,
        frames: &[u8],
        messages: usize,
        options: &[u8],
    ) {
        let messages = messages as u64;
        self.cluster_publish(None, |origin, out| {
            let message = match audience {
                BatchFor::Everyone => ClusterMessage::Broadcast {
                    origin,
                    messages,
                    frames,
                },
                BatchFor::Topic(topic) => ClusterMessage::Publish {
                    origin,
                    topic,
                    messages,
                    frames,
                    options,
                },
            };
            message.encode(out);
        });
    }

    /// An unconfirmed message to a token's (`d`, `D`) or a user's (`u`, `U`) connections,
    /// just queued to this node's: to the other nodes' too.
    pub fn cluster_send_to(&mut self, to: Subject<'_>, message: Message<'_>) {
        self.cluster_publish(None, |origin, out| {
            let (binary, payload) = (message.binary, message.payload);
            let message = match to {
                Subject::Token(token) => ClusterMessage::Direct {
                    origin,
                    token,
                    binary,
                    message: payload,
                },
                Subject::User(user) => ClusterMessage::ToUser {
                    origin,
                    user,
                    binary,
                    message: payload,
                },
            };
            message.encode(out);
        });
    }

    /// Asks every live node `question` for control connection `control`; `local` is this
    /// node's own answer (its count, or 1 for a confirmed delivery here).
    pub fn cluster_ask(
        &mut self,
        control: Key,
        question: Question<'_>,
        local: u64,
        now: Instant,
    ) -> Asked {
        let answering = match question {
            Question::Direct { token, .. } => Answering::Confirm(token),
            _ => Answering::Count,
        };
        self.ask_cluster(control, question, local, answering, now)
    }

    /// `j`, `J` with the other nodes: `local` is this node's result.
    pub fn cluster_ask_subscribe(
        &mut self,
        control: Key,
        question: Question<'_>,
        local: Result<usize, Refusal>,
        now: Instant,
    ) -> Asked {
        let (count, refusal) = match local {
            Ok(count) => (count as u64, None),
            Err(refusal) => (0, Some(refusal)),
        };
        let answering = Answering::Subscription { refusal };
        self.ask_cluster(control, question, count, answering, now)
    }

    /// `g`, `y`, `h`, `v` with the other nodes: `local` is this node's page of at most
    /// `limit` items.
    pub fn cluster_ask_page(
        &mut self,
        control: Key,
        question: Question<'_>,
        local: Page,
        limit: usize,
        now: Instant,
    ) -> Asked {
        let answering = Answering::Pages {
            limit,
            pages: vec![local],
        };
        self.ask_cluster(control, question, 0, answering, now)
    }

    /// `m` with the other nodes: `local` is this node's (connections, freest domain).
    pub fn cluster_ask_freest(
        &mut self,
        control: Key,
        local: (u64, String),
        now: Instant,
    ) -> Asked {
        let answering = Answering::Freest { best: local };
        self.ask_cluster(control, Question::Freest, 0, answering, now)
    }

    /// `H` with the other nodes: this node's connections and users of `topic` are counted
    /// here.
    pub fn cluster_ask_topic_count(
        &mut self,
        control: Key,
        topic: &str,
        max_names: usize,
        now: Instant,
    ) -> Asked {
        if !self.clustered() {
            return Asked::Alone;
        }
        let (connections, users) = self.topic_count_here(topic, max_names);
        let question = Question::TopicCount { topic };
        let answering = Answering::Users(users);
        self.ask_cluster(control, question, connections, answering, now)
    }

    /// `t` with the other nodes: `local` is this node's status JSON.
    pub fn cluster_ask_status(&mut self, control: Key, local: String, now: Instant) -> Asked {
        let answering = Answering::Status {
            local,
            nodes: Vec::new(),
        };
        self.ask_cluster(control, Question::Status, 0, answering, now)
    }

    /// The router holds reply `ticket` until every live node has answered: `false` when
    /// none can (no other node, Redis down, too many questions waiting): then it goes at
    /// once.
    pub(super) fn cluster_barrier(&mut self, ticket: u64, now: Instant) -> bool {
        let asker = Asker::Router { ticket };
        let asked = self.ask(asker, Question::Barrier, 0, Answering::Count, now);
        matches!(asked, Asked::Later(_))
    }

    fn ask_cluster(
        &mut self,
        control: Key,
        question: Question<'_>,
        local: u64,
        answering: Answering,
        now: Instant,
    ) -> Asked {
        // The ticket is the question's id, known once asked.
        let asker = Asker::Control {
            key: control,
            ticket: Ticket(0),
        };
        self.ask(asker, question, local, answering, now)
    }

    fn ask(
        &mut self,
        asker: Asker,
        question: Question<'_>,
        local: u64,
        answering: Answering,
        now: Instant,
    ) -> Asked {
        let Some(cluster) = &mut self.cluster else {
            return Asked::Alone;
        };
        if cluster.link.state() != RedisState::Up {
            return Asked::Unavailable;
        }
        let waiting = cluster.alive(now);
        if waiting.is_empty() {
            return Asked::Alone;
        }
        if cluster.pending.len() >= cluster.max_pending {
            log::warn!(max = cluster.max_pending; "cluster: max_queue questions wait for answers already; refused");
            return Asked::Unavailable;
        }
        let id = cluster.next_id();
        cluster.send(None, |origin, out| {
            ClusterMessage::Ask {
                origin,
                id,
                question,
            }
            .encode(out);
        });
        let ticket = Ticket(id);
        let asker = match asker {
            Asker::Control { key, .. } => Asker::Control { key, ticket },
            Asker::Router { .. } => asker,
        };
        cluster.pending.insert(
            id,
            Pending {
                asker,
                answering,
                waiting,
                count: local,
                deadline: now + cluster.request_timeout,
            },
        );
        Asked::Later(ticket)
    }

    /// The replies to cluster-wide questions that are complete, for the server to hand to
    /// their control connections.
    pub fn take_cluster_replies(&mut self) -> Vec<(Key, Ticket, Reply)> {
        self.cluster
            .as_mut()
            .map(|cluster| std::mem::take(&mut cluster.replies))
            .unwrap_or_default()
    }

    /// Heartbeats when due, forgets silent nodes, and answers questions whose time is up
    /// with the answers that came.
    pub fn cluster_tick(&mut self, now: Instant) {
        let listening = self.events.local_kinds().bits();
        let names: Vec<&[u8]> = self.events.group_names().map(str::as_bytes).collect();
        let groups = fields::to_payload(&names);
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        if now >= cluster.next_heartbeat {
            cluster.next_heartbeat = now + cluster.heartbeat;
            cluster.send(None, |origin, out| {
                ClusterMessage::Heartbeat {
                    origin,
                    listening,
                    groups: &groups,
                }
                .encode(out);
            });
        }
        let span = cluster.heartbeat * MISSED_HEARTBEATS;
        let mut gone = Vec::new();
        cluster.peers.retain(|node, heard| {
            let alive = now.saturating_duration_since(*heard) <= span;
            if !alive {
                log::warn!(node = node.as_str(); "cluster: a node has not been heard for three heartbeats: gone");
                gone.push(node.clone());
            }
            alive
        });
        if !gone.is_empty() {
            let peers = &cluster.peers;
            cluster.listening.retain(|node, _| peers.contains_key(node));
            let remote = remote_kinds(&cluster.listening);
            self.events.set_remote_wanted(remote);
        }
        for node in gone {
            let mut keeper = super::wamp::Keeper::new(&mut self.history, &self.keeping);
            self.router
                .node_gone(&node, now, &mut keeper, &mut self.actions);
        }
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let due: Vec<u64> = cluster
            .pending
            .iter()
            .filter(|(_, pending)| pending.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(pending) = cluster.pending.get(&id) {
                log::warn!(silent:? = pending.waiting; "cluster: nodes did not answer within request_timeout; answered with the others");
            }
            cluster.finish(id);
        }
        self.cluster_admission_tick(now);
    }

    /// What the other nodes published since the last call: publications queued to this
    /// node's clients, questions answered, answers counted.
    pub fn cluster_receive(&mut self, settings: &Settings, stats: &mut Stats) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let messages = cluster.link.receive();
        let came_up = std::mem::replace(&mut cluster.came_up, cluster.link.came_up);
        if came_up != cluster.link.came_up {
            // Up (again): what was said meanwhile, both ways, is lost.
            self.cluster_sync_registrations(None);
        }
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let own = cluster.link.instance().to_owned();
        let now = Instant::now();
        for bytes in messages {
            let decoded = match wire::decode_all(&bytes) {
                Ok(decoded) => decoded,
                Err(error) => {
                    if let Some(cluster) = &mut self.cluster {
                        cluster.refused += 1;
                    }
                    log::warn!(reason:% = error; "cluster: a message on the channel is no wson message; dropped");
                    continue;
                }
            };
            // A batch's messages share its origin.
            let Some(origin) = decoded.first().map(ClusterMessage::origin) else {
                continue;
            };
            if origin == own {
                // What Redis positioned for this node comes back like any node's: it is
                // delivered here only now, in the order of its offset.
                for message in decoded {
                    if let ClusterMessage::Kept { .. } = message {
                        self.cluster_handle(message, settings, stats);
                    }
                }
                continue;
            }
            if let Some(cluster) = &mut self.cluster {
                let known = cluster.peers.insert(origin.to_owned(), now).is_some();
                if !known {
                    let name = node_name(origin);
                    if name == cluster.link.node_id() {
                        log::error!(node = name; "cluster: another node uses this node's node_id; give each node its own");
                    } else {
                        log::info!(node = origin; "cluster: a node joined");
                    }
                    self.cluster_node_joined(origin);
                }
            }
            for message in decoded {
                self.cluster_handle(message, settings, stats);
            }
        }
        self.cluster_claims_answered(settings, stats, now);
        self.cluster_history_answered(settings, stats);
    }

    fn cluster_handle(
        &mut self,
        message: ClusterMessage<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) {
        match message {
            ClusterMessage::Broadcast {
                messages, frames, ..
            } => {
                let frames: Rc<[u8]> = Rc::from(frames);
                self.broadcast(&frames, messages_of(messages), settings, stats);
            }
            ClusterMessage::Publish {
                topic,
                messages,
                frames,
                options,
                ..
            } => {
                let shared: Rc<[u8]> = Rc::from(frames);
                let count = messages_of(messages);
                let last = self.publish(topic, &shared, count, settings, stats);
                // One namespace on every node: this node's WAMP subscribers of the backend
                // realm hear it too, as they would a local `x`, with its options.
                let options = match crate::server::commands::publish_options(
                    b'x', options, settings,
                ) {
                    Ok(options) => options,
                    Err(error) => {
                        log::warn!(topic, reason:% = error; "cluster publication's WAMP options refused");
                        return;
                    }
                };
                if self.router.backend_realm_listens(topic) || super::wamp::retains(&options) {
                    let now = Instant::now();
                    let batch = wire::messages_in(frames);
                    // A kept batch was recorded in one go: its offsets end at `last`.
                    let first = last.as_ref().map(|last| {
                        let before = u64::try_from(batch.len()).unwrap_or(u64::MAX);
                        last.offset.saturating_add(1).saturating_sub(before)
                    });
                    for (index, (binary, message)) in batch.into_iter().enumerate() {
                        let position = last.as_ref().zip(first).map(|(last, first)| Position {
                            epoch: last.epoch.clone(),
                            offset: first.saturating_add(index as u64),
                        });
                        self.wamp_publish_from_plain(
                            topic,
                            binary,
                            &message,
                            &options,
                            position.as_ref(),
                            settings,
                            now,
                        );
                    }
                }
            }
            ClusterMessage::Kept {
                topic,
                epoch,
                offset,
                frame,
                options,
                ..
            } => self.cluster_kept_received(topic, epoch, offset, frame, options, settings, stats),
            ClusterMessage::Direct {
                token,
                binary,
                message,
                ..
            } => {
                self.direct(
                    &token,
                    Message {
                        binary,
                        payload: message,
                    },
                    settings,
                    stats,
                );
            }
            ClusterMessage::ToUser {
                user,
                binary,
                message,
                ..
            } => {
                self.to_user(
                    user,
                    Message {
                        binary,
                        payload: message,
                    },
                    settings,
                    stats,
                );
            }
            ClusterMessage::Heartbeat {
                origin,
                listening,
                groups,
            } => {
                let Some(cluster) = &mut self.cluster else {
                    return;
                };
                let groups = wire::group_names(groups)
                    .map(|name| String::from_utf8_lossy(name).into_owned())
                    .collect();
                let kinds = EventKinds::from_bits(listening);
                cluster.listening.insert(origin.to_owned(), (kinds, groups));
                let remote = remote_kinds(&cluster.listening);
                self.events.set_remote_wanted(remote);
            }
            ClusterMessage::Events { origin, frames } => {
                let Some(events) = wire::events_in(frames) else {
                    return;
                };
                let Some(cluster) = &self.cluster else {
                    return;
                };
                let me = cluster.link.instance().to_owned();
                let listening = cluster.listening.clone();
                for (frame, event) in events {
                    let frame: Rc<[u8]> = Rc::from(frame);
                    let delivers = |group: &str| delivers_group(&me, origin, group, &listening);
                    self.events.deliver_remote(&frame, event.kind(), delivers);
                }
            }
            ClusterMessage::Ask {
                origin,
                id,
                question: Question::Status,
            } => {
                if let Some(cluster) = &mut self.cluster {
                    cluster.statuses_wanted.push((origin.to_owned(), id));
                }
            }
            ClusterMessage::Ask {
                origin,
                id,
                question:
                    Question::Page {
                        list,
                        subject,
                        cursor,
                        limit,
                    },
            } => {
                let request = PageRequest {
                    cursor,
                    limit: usize::try_from(limit).ok().and_then(NonZeroUsize::new),
                };
                let max = settings.max_list_page;
                let page = match list {
                    ListKind::UserTokens => self.user_tokens(subject, &request, max),
                    ListKind::OnlineUsers => self.online_users(&request, max),
                    ListKind::Subscribers => self.subscribers(subject, &request, max),
                    ListKind::Topics => self.topics(&request, max),
                };
                self.cluster_answer(origin, id, 0, &page_body(&page));
            }
            ClusterMessage::Ask {
                origin,
                id,
                question: Question::Freest,
            } => {
                let (load, domain) = self.freest_listener(settings);
                self.cluster_answer(origin, id, load, domain.as_bytes());
            }
            ClusterMessage::Ask {
                origin,
                id,
                question:
                    Question::Subscribe {
                        target,
                        topic,
                        options,
                    },
            } => {
                // This node's own broker: retained publications reach every node's.
                let subscribed = match target {
                    Subject::Token(token) => {
                        self.subscribe_token(&token, topic, options, settings, stats)
                    }
                    Subject::User(user) => {
                        self.subscribe_user(user, topic, options, settings, stats)
                    }
                };
                match subscribed {
                    Ok(count) => self.cluster_answer(origin, id, count as u64, b""),
                    Err(refusal) => {
                        self.cluster_answer(origin, id, 0, refusal.reason().as_bytes());
                    }
                }
            }
            ClusterMessage::Ask {
                origin,
                id,
                question: Question::TopicCount { topic },
            } => {
                let max_names = settings.cluster.max_count_users;
                let (connections, users) = self.topic_count_answer(topic, max_names);
                self.cluster_answer(origin, id, connections, &users);
            }
            ClusterMessage::Ask {
                origin,
                id,
                question,
            } => {
                let count = self.answer_here(question, settings, stats);
                self.cluster_answer(origin, id, count, b"");
            }
            ClusterMessage::Wamp { origin, messages } => {
                self.cluster_wamp_receive(origin, messages, settings);
            }
            // Unpacked by `wire::decode_all`, which refuses one inside another.
            ClusterMessage::Batch { .. } => {}
            ClusterMessage::Registrations {
                origin,
                sync,
                entries,
            } => self.cluster_registrations_receive(origin, sync, entries),
            ClusterMessage::Answer {
                origin,
                id,
                count,
                body,
            } => {
                let Some(cluster) = &mut self.cluster else {
                    return;
                };
                let Some(pending) = cluster.pending.get_mut(&id) else {
                    return;
                };
                let Some(at) = pending.waiting.iter().position(|node| node == origin) else {
                    return;
                };
                pending.waiting.swap_remove(at);
                pending.count = pending.count.saturating_add(count);
                match &mut pending.answering {
                    Answering::Status { nodes, .. } => {
                        nodes.push((node_name(origin).to_owned(), body.to_vec()));
                    }
                    Answering::Subscription { refusal } if refusal.is_none() => {
                        *refusal = Refusal::from_reason(body);
                    }
                    Answering::Freest { best } if count < best.0 => {
                        *best = (count, String::from_utf8_lossy(body).into_owned());
                    }
                    Answering::Pages { pages, .. } => {
                        if let Some(page) = page_from_body(body) {
                            pages.push(page);
                        }
                    }
                    Answering::Users(users) => users.add_body(body),
                    Answering::Confirm(_)
                    | Answering::Count
                    | Answering::Subscription { .. }
                    | Answering::Freest { .. } => {}
                }
                if pending.waiting.is_empty() {
                    cluster.finish(id);
                }
            }
            ClusterMessage::Authorizers { origin, count } => {
                self.heard_authorizers(origin, count, Instant::now());
            }
            ClusterMessage::Authorize { origin, request } => {
                self.relay_authorization(origin, request, settings, Instant::now());
            }
            ClusterMessage::Authorized {
                origin,
                id,
                decision,
            } => self.authorized_elsewhere(origin, id, decision, settings, stats),
        }
    }

    /// This node's part of another node's question: delivered to (or counted among) its
    /// own connections.
    fn answer_here(
        &mut self,
        question: Question<'_>,
        settings: &Settings,
        stats: &mut Stats,
    ) -> u64 {
        let count = match question {
            Question::Direct {
                token, message: [], ..
            } => usize::from(self.is_online(&token)),
            Question::Direct {
                token,
                binary,
                message,
            } => self.direct(
                &token,
                Message {
                    binary,
                    payload: message,
                },
                settings,
                stats,
            ),
            Question::ToUser {
                user,
                binary,
                message,
            } => self.to_user(
                user,
                Message {
                    binary,
                    payload: message,
                },
                settings,
                stats,
            ),
            Question::UserOnline { user } => self.user_connections(user),
            Question::KickToken {
                token,
                code,
                reason,
            } => self.kick_token(&token, code, reason, settings, Instant::now()),
            Question::KickUser { user, code, reason } => {
                self.kick_user(user, code, reason, settings, Instant::now())
            }
            Question::Unsubscribe { target, topic } => match target {
                Subject::Token(token) => self.unsubscribe_token(&token, topic),
                Subject::User(user) => self.unsubscribe_user(user, topic),
            },
            // Answered by the server (`take_statuses_wanted`), which has every figure, and
            // in `cluster_handle` (a refusal to carry).
            Question::Status
            | Question::Subscribe { .. }
            | Question::Freest
            | Question::Page { .. }
            | Question::Barrier
            | Question::TopicCount { .. } => 0,
        };
        count as u64
    }

    /// What this loop turn has for the other nodes, published: the events they want,
    /// emitted since the last call, as one message, after what the turn sent before.
    pub fn cluster_flush(&mut self) {
        let frames = self.events.take_forward();
        if !frames.is_empty() {
            self.cluster_publish(None, |origin, out| {
                ClusterMessage::Events {
                    origin,
                    frames: &frames,
                }
                .encode(out);
            });
        }
        if let Some(cluster) = &mut self.cluster {
            cluster.flush();
        }
    }

    /// Answers question `id` of node `to` (an instance name).
    pub fn cluster_answer(&mut self, to: &str, id: u64, count: u64, body: &[u8]) {
        self.cluster_publish(Some(to), |me, out| {
            ClusterMessage::Answer {
                origin: me,
                id,
                count,
                body,
            }
            .encode(out);
        });
    }

    /// The router's held replies whose barrier is answered, sent.
    pub fn cluster_settle_replies(&mut self) {
        let settled = self
            .cluster
            .as_mut()
            .map(|cluster| std::mem::take(&mut cluster.settled))
            .unwrap_or_default();
        for ticket in settled {
            self.router.nodes_settled(ticket, &mut self.actions);
        }
    }

    /// The other nodes' status questions since the last call: (asker, question id).
    pub fn take_statuses_wanted(&mut self) -> Vec<(String, u64)> {
        self.cluster
            .as_mut()
            .map(|cluster| std::mem::take(&mut cluster.statuses_wanted))
            .unwrap_or_default()
    }

    pub fn cluster_figures(&self, now: Instant) -> Option<ClusterFigures> {
        let cluster = self.cluster.as_ref()?;
        Some(ClusterFigures {
            node_id: cluster.link.node_id().to_owned(),
            redis: cluster.link.state(),
            nodes: cluster.alive(now).len(),
            sent: cluster.link.sent,
            received: cluster.link.received,
            dropped: cluster.link.dropped + cluster.link.lost(),
            refused: cluster.refused,
            events_wanted: self.events.remote_wanted(),
            authorizer_nodes: cluster
                .admission
                .authorizer_nodes(&cluster.alive(now))
                .len(),
            claims: cluster.admission.claims(),
            claims_skipped: cluster.admission.claims_skipped,
            history_fetches: cluster.kept.fetches,
            history_unpositioned: cluster.kept.unpositioned,
        })
    }

    /// Stops the link's threads (wson is stopping).
    pub fn leave_cluster(&mut self) {
        if let Some(cluster) = &mut self.cluster {
            cluster.flush();
            cluster.link.stop();
        }
    }
}

/// A page as an answer's body: the fields next cursor, then name and count for each item.
fn page_body(page: &Page) -> Vec<u8> {
    let counts: Vec<String> = page
        .items
        .iter()
        .map(|(_, count)| count.to_string())
        .collect();
    let mut values: Vec<&[u8]> = vec![&page.next_cursor];
    for ((name, _), count) in page.items.iter().zip(&counts) {
        values.push(name);
        values.push(count.as_bytes());
    }
    fields::to_payload(&values)
}

fn page_from_body(body: &[u8]) -> Option<Page> {
    let values: Vec<&[u8]> = fields::Fields::new(body).collect::<Result<_, _>>().ok()?;
    let (next_cursor, items) = values.split_first()?;
    if items.len() % 2 != 0 {
        return None;
    }
    let items = items
        .chunks_exact(2)
        .map(|pair| {
            let count = std::str::from_utf8(pair.get(1)?).ok()?.parse().ok()?;
            Some((pair.first()?.to_vec(), count))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Page {
        next_cursor: next_cursor.to_vec(),
        items,
    })
}

/// The cluster's page from every node's page after the same cursor: the first `limit` names
/// of them all (each node's first `limit` holds every name the cluster's first `limit` can),
/// counts added over the nodes, and a next cursor when any node or the merge had more.
fn merge_pages(limit: usize, pages: &[Page]) -> Page {
    let mut merged: std::collections::BTreeMap<&[u8], u64> = std::collections::BTreeMap::new();
    for page in pages {
        for (name, count) in &page.items {
            let total = merged.entry(name).or_default();
            *total = total.saturating_add(*count);
        }
    }
    let more = merged.len() > limit || pages.iter().any(|page| !page.next_cursor.is_empty());
    let items: Vec<(Vec<u8>, u64)> = merged
        .into_iter()
        .take(limit)
        .map(|(name, count)| (name.to_vec(), count))
        .collect();
    let next_cursor = match items.last() {
        Some((name, _)) if more => name.clone(),
        _ => Vec::new(),
    };
    Page { next_cursor, items }
}

/// What the other nodes' listeners hear, together.
fn remote_kinds(listening: &HashMap<String, (EventKinds, Vec<String>)>) -> EventKinds {
    listening
        .values()
        .fold(EventKinds::NONE, |kinds, (theirs, _)| kinds.union(*theirs))
}

/// Whether this node (`me`, which has members of `group`) delivers to `group` an event that
/// node `origin` emitted: each event goes to one member cluster-wide. The origin's members
/// get it when it has any; else the members on the node with the smallest name. Known from
/// heartbeats, so for a heartbeat after a group changes an event may reach it twice or not.
fn delivers_group(
    me: &str,
    origin: &str,
    group: &str,
    listening: &HashMap<String, (EventKinds, Vec<String>)>,
) -> bool {
    let has_members = |node: &str| {
        listening
            .get(node)
            .is_some_and(|(_, groups)| groups.iter().any(|name| name == group))
    };
    if has_members(origin) {
        return false;
    }
    !listening
        .keys()
        .any(|node| node.as_str() < me && has_members(node))
}

/// Status keys that add up across nodes: the counters and gauges of `t` (not the pid, the
/// uptime, nor the cluster's own figures).
fn sums_up(key: &str) -> bool {
    !matches!(key, "pid" | "uptime_secs") && !key.starts_with("cluster_")
}

/// `t` for the whole cluster: this node's status, then `cluster_status`: every node's
/// status by name (this one first; a node whose answer is no JSON object shows as null) and
/// `sum`, each integer key added over the nodes that have it.
fn cluster_status(me: &str, local: &str, nodes: &[(String, Vec<u8>)]) -> String {
    let parse = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).ok();
    let Some(mut status) = parse(local.as_bytes()).filter(serde_json::Value::is_object) else {
        return local.to_owned();
    };
    let mut statuses = vec![(me.to_owned(), status.clone())];
    for (node, body) in nodes {
        let answer = parse(body).filter(serde_json::Value::is_object);
        statuses.push((node.clone(), answer.unwrap_or(serde_json::Value::Null)));
    }
    let mut sum = serde_json::Map::new();
    for (_, node_status) in &statuses {
        let Some(object) = node_status.as_object() else {
            continue;
        };
        for (key, value) in object {
            let (true, Some(value)) = (sums_up(key), value.as_u64()) else {
                continue;
            };
            let total = sum
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
                .saturating_add(value);
            sum.insert(key.clone(), total.into());
        }
    }
    let nodes: Vec<serde_json::Value> = statuses
        .into_iter()
        .map(|(node, status)| serde_json::json!({"node": node, "status": status}))
        .collect();
    if let Some(object) = status.as_object_mut() {
        object.insert(
            "cluster_status".into(),
            serde_json::json!({"nodes": nodes, "sum": sum}),
        );
    }
    status.to_string()
}

/// The `node_id` part of an instance name (`NODE_ID#NONCE`).
fn node_name(instance: &str) -> &str {
    instance.rsplit_once('#').map_or(instance, |(name, _)| name)
}

fn messages_of(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(next: &str, items: &[(&str, u64)]) -> Page {
        Page {
            next_cursor: next.as_bytes().to_vec(),
            items: items
                .iter()
                .map(|(name, count)| (name.as_bytes().to_vec(), *count))
                .collect(),
        }
    }

    #[test]
    fn pages_merge_in_order_with_counts_added_and_a_cursor_when_more() {
        // Two nodes, limit 3: a has {ann, bob, cat, dan...}, b has {bob, eve}.
        let merged = merge_pages(
            3,
            &[
                page("cat", &[("ann", 1), ("bob", 1), ("cat", 2)]),
                page("", &[("bob", 2), ("eve", 1)]),
            ],
        );
        assert_eq!(merged, page("cat", &[("ann", 1), ("bob", 3), ("cat", 2)]));
        // Everything fits: no cursor.
        let merged = merge_pages(5, &[page("", &[("a", 1)]), page("", &[("b", 1)])]);
        assert_eq!(merged, page("", &[("a", 1), ("b", 1)]));
        // More names than the limit in the merge alone.
        let merged = merge_pages(1, &[page("", &[("a", 1)]), page("", &[("b", 1)])]);
        assert_eq!(merged, page("a", &[("a", 1)]));
        assert_eq!(merge_pages(2, &[]), Page::default());
    }

    #[test]
    fn a_page_survives_its_body_and_bad_bodies_are_none() {
        let original = page("b", &[("a", 1), ("b", 20)]);
        assert_eq!(page_from_body(&page_body(&original)), Some(original));
        assert_eq!(page_from_body(b""), None);
        assert_eq!(page_from_body(b"0:1:a"), None);
        assert_eq!(page_from_body(b"0:1:a1:x"), None);
    }
}
