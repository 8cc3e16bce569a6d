//! The hub's side of the cluster (`[cluster]`): what a control connection broadcasts or
//! publishes here goes to the other nodes as the frames already built for this node's
//! clients, and what the other nodes publish is queued to this node's clients the same way
//! a local batch is. The hub owns the link's loop end; the link's threads own the Redis
//! connections.

use std::rc::Rc;

use std::time::Instant;

use crate::cluster::{ClusterMessage, Link, RedisState, wire};
use crate::server::hub::{Hub, Message};
use crate::server::outbound::BatchFor;
use crate::server::settings::Settings;
use crate::server::stats::Stats;
use crate::token::Token;

/// The cluster's figures for the status reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFigures {
    pub node_id: String,
    pub redis: RedisState,
    /// Messages handed to the publisher, and received from the channel (own ones included).
    pub sent: u64,
    pub received: u64,
    /// Messages dropped because the queue to Redis was full, or lost when Redis went away
    /// under them: the other nodes never got them.
    pub dropped: u64,
    /// Messages from the channel that were no wson message (logged).
    pub refused: u64,
}

impl Hub {
    /// Joins the cluster through `link`.
    pub fn join_cluster(&mut self, link: Link) {
        self.cluster = Some(ClusterSide { link, refused: 0 });
    }

    /// A control batch, just queued to this node's clients: the same frames to the others,
    /// as one Redis message.
    pub fn cluster_forward(&mut self, audience: BatchFor<'_>, frames: &[u8], messages: usize) {
        let messages = messages as u64;
        self.cluster_send(frames.len(), |origin, out| {
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
                },
            };
            message.encode(out);
        });
    }

    /// An unconfirmed direct message (`d`, `D`), just queued to this node's holders of
    /// `token`: to the other nodes' holders too.
    pub fn cluster_direct(&mut self, token: &Token, message: Message<'_>) {
        self.cluster_send(message.payload.len(), |origin, out| {
            let direct = ClusterMessage::Direct {
                origin,
                token: *token,
                binary: message.binary,
                message: message.payload,
            };
            direct.encode(out);
        });
    }

    /// An unconfirmed message to a user (`u`, `U`), just queued to this node's connections
    /// of `user`: to the other nodes' too.
    pub fn cluster_to_user(&mut self, user: &str, message: Message<'_>) {
        self.cluster_send(message.payload.len(), |origin, out| {
            let to_user = ClusterMessage::ToUser {
                origin,
                user,
                binary: message.binary,
                message: message.payload,
            };
            to_user.encode(out);
        });
    }

    /// Encodes a message naming this node (`size`: about the bytes it carries) and hands it
    /// to the link; nothing without a cluster.
    fn cluster_send(&mut self, size: usize, encode: impl FnOnce(&str, &mut Vec<u8>)) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let mut bytes = Vec::with_capacity(size.saturating_add(128));
        encode(cluster.link.node_id(), &mut bytes);
        cluster.link.publish(bytes);
    }

    /// What the other nodes published since the last call, queued to this node's clients.
    pub fn cluster_receive(&mut self, settings: &Settings, stats: &mut Stats) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let messages = cluster.link.receive();
        let own = cluster.link.node_id().to_owned();
        for bytes in messages {
            let message = match ClusterMessage::decode(&bytes) {
                Ok(message) => message,
                Err(error) => {
                    if let Some(cluster) = &mut self.cluster {
                        cluster.refused += 1;
                    }
                    log::warn!(reason:% = error; "cluster: a message on the channel is no wson message; dropped");
                    continue;
                }
            };
            if message.origin() == own {
                continue;
            }
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
                    ..
                } => {
                    let shared: Rc<[u8]> = Rc::from(frames);
                    self.publish(topic, &shared, messages_of(messages), settings, stats);
                    // One namespace on every node: this node's WAMP subscribers of the
                    // backend realm hear it too, as they would a local `x`.
                    if self.router.backend_realm_listens(topic) {
                        let now = Instant::now();
                        for (binary, message) in wire::messages_in(frames) {
                            self.wamp_publish_from_plain(topic, binary, &message, settings, now);
                        }
                    }
                }
                ClusterMessage::Direct {
                    token,
                    binary,
                    message,
                    ..
                } => {
                    let message = Message {
                        binary,
                        payload: message,
                    };
                    self.direct(&token, message, settings, stats);
                }
                ClusterMessage::ToUser {
                    user,
                    binary,
                    message,
                    ..
                } => {
                    let message = Message {
                        binary,
                        payload: message,
                    };
                    self.to_user(user, message, settings, stats);
                }
            }
        }
    }

    pub fn cluster_figures(&self) -> Option<ClusterFigures> {
        let cluster = self.cluster.as_ref()?;
        Some(ClusterFigures {
            node_id: cluster.link.node_id().to_owned(),
            redis: cluster.link.state(),
            sent: cluster.link.sent,
            received: cluster.link.received,
            dropped: cluster.link.dropped + cluster.link.lost(),
            refused: cluster.refused,
        })
    }

    /// Stops the link's threads (wson is stopping).
    pub fn leave_cluster(&mut self) {
        if let Some(cluster) = &mut self.cluster {
            cluster.link.stop();
        }
    }
}

fn messages_of(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

/// The hub's end of the cluster.
pub(super) struct ClusterSide {
    link: Link,
    refused: u64,
}
