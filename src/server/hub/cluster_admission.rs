//! Admission across the cluster: the connect authorizer of another node, and one live
//! connection per token cluster-wide under `token_reuse = "refuse"`.
//!
//! **Authorizers.** A node with authorizers says so on each heartbeat (an `Authorizers`
//! message; once more with 0 when its last one leaves). An upgrade on a node without one
//! goes, as an `Authorize` message, to one of the live nodes that have one (round robin);
//! that node sends it to its authorizer under an id of its own and sends the decision back
//! (`Authorized`), or none when it has no authorizer (any more), too many waiting, or its
//! authorizer did not answer in time. The asking node waits as for its own authorizer, up
//! to its own `[authorizer] timeout`, and falls back the same way.
//!
//! **Claims.** Under `token_reuse = "refuse"` an upgrade whose token comes from cookies
//! (any node may see it) is held, after the local check, until the link's claims thread
//! has claimed the token in Redis (`cluster::claims`): granted, it is admitted; held by a
//! live node, it is refused with 429 as a token connected here is. With Redis away (known
//! down, the queue to the thread full, no answer within `[cluster] request_timeout`) it is
//! admitted on this node's knowledge, counted in `cluster_claims_skipped`, and claimed once
//! Redis is back. The claim is released when the token's last connection here closes.
//! `token_reuse = "replace"` asks the other nodes to close the token's connections (the
//! kick question, unanswered); `share` needs nothing.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Instant;

use super::admission::{Admission, ClaimStep};
use super::authorizer::{Claimed, Waiting, WaitingFor};
use super::cluster::MISSED_HEARTBEATS;
use super::{CLOSE_REPLACED, Hub};
use crate::cluster::wire;
use crate::cluster::{ClaimOutcome, ClaimRequest, ClusterMessage, Question, RedisState};
use crate::control::authorizer::{AuthRequest, Decision};
use crate::server::conn::Upgrade;
use crate::server::settings::Settings;
use crate::server::slab::Key;
use crate::server::stats::Stats;
use crate::token::Token;

/// What the hub keeps of admission across nodes.
pub(super) struct AdmissionSide {
    /// Other nodes that said they have an authorizer, with when they last said so.
    authorizer_nodes: HashMap<String, Instant>,
    /// Where the next pick among them starts.
    next_authorizer_node: usize,
    /// The authorizer count this node last announced.
    announced: usize,
    next_announce: Instant,
    /// Tokens this node has claimed or is claiming: released when their last connection
    /// here closes.
    claimed: HashSet<Token>,
    pub(super) claims_skipped: u64,
}

impl AdmissionSide {
    pub(super) fn new(now: Instant) -> AdmissionSide {
        AdmissionSide {
            authorizer_nodes: HashMap::new(),
            next_authorizer_node: 0,
            announced: 0,
            next_announce: now,
            claimed: HashSet::new(),
            claims_skipped: 0,
        }
    }

    /// The nodes of `alive` with an authorizer, by name.
    pub(super) fn authorizer_nodes(&self, alive: &[String]) -> Vec<String> {
        let mut nodes: Vec<String> = alive
            .iter()
            .filter(|node| self.authorizer_nodes.contains_key(*node))
            .cloned()
            .collect();
        nodes.sort_unstable();
        nodes
    }

    pub(super) fn claims(&self) -> usize {
        self.claimed.len()
    }
}

impl Hub {
    /// On each heartbeat: the node's claims stay alive, and its authorizers are announced.
    pub(super) fn cluster_admission_tick(&mut self, now: Instant) {
        let authorizers = self.authorizers.count();
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let span = cluster.heartbeat * MISSED_HEARTBEATS;
        cluster
            .admission
            .authorizer_nodes
            .retain(|_, heard| now.saturating_duration_since(*heard) <= span);
        if now < cluster.admission.next_announce {
            return;
        }
        cluster.admission.next_announce = now + cluster.heartbeat;
        // Refused only when the thread's queue is full: the next heartbeat says it again.
        cluster.link.ask_claims(ClaimRequest::Alive { ttl: span });
        if authorizers > 0 || cluster.admission.announced > 0 {
            cluster.admission.announced = authorizers;
            let count = authorizers as u64;
            cluster.send(None, |origin, out| {
                ClusterMessage::Authorizers { origin, count }.encode(out);
            });
        }
    }

    // --- The authorizer of another node ---------------------------------------------------

    /// Node `origin` has `count` authorizers.
    pub(super) fn heard_authorizers(&mut self, origin: &str, count: u64, now: Instant) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let nodes = &mut cluster.admission.authorizer_nodes;
        if count > 0 {
            nodes.insert(origin.to_owned(), now);
        } else {
            nodes.remove(origin);
        }
    }

    /// A live node with an authorizer to ask (round robin), when Redis is up.
    pub(super) fn cluster_authorizer_node(&mut self, now: Instant) -> Option<String> {
        let cluster = self.cluster.as_mut()?;
        if cluster.link.state() != RedisState::Up {
            return None;
        }
        let nodes = cluster.admission.authorizer_nodes(&cluster.alive(now));
        let count = nodes.len();
        let at = cluster.admission.next_authorizer_node % count.max(1);
        let node = nodes.into_iter().nth(at)?;
        cluster.admission.next_authorizer_node = (at + 1) % count;
        Some(node)
    }

    /// Sends this node's request frame (a `z` frame, its id this node's) to `node`.
    pub(super) fn forward_authorization(&mut self, node: &str, frame: &[u8]) {
        let Some(request) = wire::request_in(frame) else {
            return;
        };
        self.cluster_publish_to(node, |origin, out| {
            ClusterMessage::Authorize { origin, request }.encode(out);
        });
    }

    /// Another node's upgrade for an authorizer of this node: sent to one under a new id,
    /// or answered with no decision at once.
    pub(super) fn relay_authorization(
        &mut self,
        origin: &str,
        request: AuthRequest<'_>,
        settings: &Settings,
        now: Instant,
    ) {
        let authorizer = match self.authorizers.waiting() < settings.authorizer.max_pending {
            true => self.authorizers.pick(),
            false => None,
        };
        let Some(authorizer) = authorizer else {
            self.answer_relayed(origin, request.id, None);
            return;
        };
        let id = self.authorizers.new_id();
        let mut bytes = Vec::new();
        AuthRequest { id, ..request }.encode(&mut bytes);
        let frame: Rc<[u8]> = Rc::from(bytes);
        self.events.send(authorizer, Rc::clone(&frame));
        self.authorizers.wait(
            id,
            Waiting {
                deadline: now + settings.authorizer.timeout,
                what: WaitingFor::Relayed {
                    node: origin.to_owned(),
                    id: request.id,
                    authorizer,
                    request: frame,
                },
            },
        );
    }

    /// The decision for node `node`'s request `id` (none: it falls back).
    pub(super) fn answer_relayed(&mut self, node: &str, id: u64, decision: Option<Decision<'_>>) {
        self.cluster_publish_to(node, |origin, out| {
            ClusterMessage::Authorized {
                origin,
                id,
                decision,
            }
            .encode(out);
        });
    }

    /// Node `origin` answers this node's request `id`.
    pub(super) fn authorized_elsewhere(
        &mut self,
        origin: &str,
        id: u64,
        decision: Option<Decision<'_>>,
        settings: &Settings,
        stats: &mut Stats,
    ) {
        let now = Instant::now();
        // Only the node asked answers (and only an upgrade sent to another node).
        let Some(waiting) = self.authorizers.take_authorization(id) else {
            return;
        };
        let (client, upgrade) = match waiting.what {
            WaitingFor::OtherNode {
                client,
                upgrade,
                node,
            } if node == origin => (client, upgrade),
            what => {
                self.authorizers.wait(
                    id,
                    Waiting {
                        deadline: waiting.deadline,
                        what,
                    },
                );
                return;
            }
        };
        match decision {
            Some(decision) => {
                self.apply_decision(client, &upgrade, &decision, settings, stats, now);
            }
            None => {
                if let Some(waiting) = self.clients.get_mut(client) {
                    waiting.waiting = None;
                }
                let why = "the other node's authorizer did not answer";
                self.fall_back(client, upgrade, why, settings, stats, now);
            }
        }
    }

    // --- One connection per token cluster-wide ------------------------------------------

    /// `token_reuse = "refuse"`, no connection here holding the token: claims it
    /// cluster-wide, holding upgrade `key` until the answer, when Redis is up.
    pub(super) fn cluster_claim(
        &mut self,
        key: Key,
        claim: Claimed,
        upgrade: &Upgrade,
        settings: &Settings,
        now: Instant,
    ) -> ClaimStep {
        let Some(cluster) = &mut self.cluster else {
            return ClaimStep::Admit;
        };
        let token = claim.token;
        if cluster.admission.claimed.contains(&token) {
            return ClaimStep::Busy;
        }
        let id = self.authorizers.new_id();
        let request = ClaimRequest::Claim {
            id,
            token,
            expires_at: claim.expires_at,
        };
        let up = cluster.link.state() == RedisState::Up;
        // Known down: asked all the same (answered at once), so the thread claims it once
        // Redis is back; the upgrade does not wait.
        if !cluster.link.ask_claims(request) {
            cluster.admission.claims_skipped += 1;
            log::warn!(reason = "the queue to the claims thread is full"; "cluster: admitted without a cluster-wide claim of its token");
            return ClaimStep::Admit;
        }
        cluster.admission.claimed.insert(token);
        if !up {
            cluster.admission.claims_skipped += 1;
            log::debug!(reason = "Redis is down"; "cluster: admitted without a cluster-wide claim of its token");
            return ClaimStep::Admit;
        }
        self.authorizers.wait(
            id,
            Waiting {
                deadline: now + settings.cluster.request_timeout,
                what: WaitingFor::Claim {
                    client: key,
                    upgrade: upgrade.clone(),
                    admission: claim,
                },
            },
        );
        if let Some(client) = self.clients.get_mut(key) {
            client.waiting = Some(id);
        }
        ClaimStep::Wait
    }

    /// The claims thread's answers: each waiting upgrade admitted or refused.
    pub(super) fn cluster_claims_answered(
        &mut self,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        for answer in cluster.link.take_claim_answers() {
            let token = answer.token;
            let waiting = self.authorizers.take_claim(answer.id);
            let Some(Waiting {
                what:
                    WaitingFor::Claim {
                        client,
                        upgrade,
                        admission,
                    },
                ..
            }) = waiting
            else {
                self.claim_answered_late(token, &answer.outcome);
                continue;
            };
            if let Some(waiting) = self.clients.get_mut(client) {
                waiting.waiting = None;
            }
            match answer.outcome {
                ClaimOutcome::Granted => {
                    self.open_claimed(client, &upgrade, &admission, settings, stats, now);
                }
                ClaimOutcome::Unavailable => {
                    self.count_skipped_claim("Redis is away");
                    self.open_claimed(client, &upgrade, &admission, settings, stats, now);
                }
                ClaimOutcome::HeldElsewhere(node) => {
                    self.forget_claim(&token);
                    log::debug!(holder = node.as_str(); "cluster: token connected on another node");
                    let reason = "token already connected on another node";
                    self.refuse_busy(client, &admission.user, reason, settings, stats, now);
                }
            }
            self.to_drive.push(client);
        }
    }

    /// A claim answered after its upgrade stopped waiting (closed, or admitted at the
    /// deadline): released when nothing here holds the token, forgotten when another node
    /// holds it.
    fn claim_answered_late(&mut self, token: Token, outcome: &ClaimOutcome) {
        let held_here = !self.holders(&token).is_empty();
        match outcome {
            ClaimOutcome::HeldElsewhere(node) => {
                if held_here {
                    log::warn!(holder = node.as_str(); "cluster: a token is connected on two nodes (admitted here before its claim answered)");
                }
                self.forget_claim(&token);
            }
            ClaimOutcome::Granted | ClaimOutcome::Unavailable => {
                if !held_here {
                    self.cluster_release_claim(&token);
                }
            }
        }
    }

    /// The claim did not answer within `request_timeout`: admitted on this node's
    /// knowledge (the claim, when it comes, is kept or released).
    pub(super) fn claim_unanswered(
        &mut self,
        key: Key,
        upgrade: &Upgrade,
        admission: &Claimed,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        if let Some(client) = self.clients.get_mut(key) {
            client.waiting = None;
        }
        self.count_skipped_claim("no answer within request_timeout");
        self.open_claimed(key, upgrade, admission, settings, stats, now);
        self.to_drive.push(key);
    }

    fn count_skipped_claim(&mut self, why: &str) {
        if let Some(cluster) = &mut self.cluster {
            cluster.admission.claims_skipped += 1;
        }
        log::warn!(reason = why; "cluster: admitted without a cluster-wide claim of its token");
    }

    fn open_claimed(
        &mut self,
        key: Key,
        upgrade: &Upgrade,
        claimed: &Claimed,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        let admission = Admission {
            token: claimed.token,
            user: &claimed.user,
            expires_at: claimed.expires_at,
            upgrade,
        };
        let topics: Vec<&str> = claimed.topics.iter().map(String::as_str).collect();
        self.open_seat(key, &admission, &topics, settings, stats, now);
    }

    fn forget_claim(&mut self, token: &Token) {
        if let Some(cluster) = &mut self.cluster {
            cluster.admission.claimed.remove(token);
        }
    }

    /// The last connection here holding `token` closed: its claim, if any, is released.
    pub(super) fn cluster_release_claim(&mut self, token: &Token) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        if cluster.admission.claimed.remove(token) {
            // Dropped when the queue is full: the key expires with the token, and stops
            // counting when this node stops.
            cluster
                .link
                .ask_claims(ClaimRequest::Release { token: *token });
        }
    }

    /// `token_reuse = "replace"`: the other nodes close the token's connections, as this
    /// node closed its own (the kick question, under an id no question waits on, so their
    /// answers are dropped).
    pub(super) fn cluster_replace(&mut self, token: Token) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        if cluster.link.state() != RedisState::Up {
            return;
        }
        let question = Question::KickToken {
            token,
            code: CLOSE_REPLACED,
            reason: "replaced",
        };
        cluster.send(None, |origin, out| {
            ClusterMessage::Ask {
                origin,
                id: UNANSWERED,
                question,
            }
            .encode(out);
        });
    }

    fn cluster_publish_to(&mut self, node: &str, encode: impl FnOnce(&str, &mut Vec<u8>)) {
        if let Some(cluster) = &mut self.cluster {
            cluster.send(Some(node), encode);
        }
    }
}

/// The id of a question nobody waits for: questions are numbered from 1.
const UNANSWERED: u64 = 0;
