//! The hub's side of the cluster (`[cluster]`): what a control connection broadcasts or
//! publishes here goes to the other nodes as the frames already built for this node's
//! clients, and what the other nodes publish is queued to this node's clients the same way
//! a local batch is. The hub owns the link's loop end; the link's threads own the Redis
//! connections.

use std::rc::Rc;

use crate::cluster::{ClusterMessage, Link, RedisState};
use crate::server::hub::Hub;
use crate::server::outbound::BatchFor;
use crate::server::settings::Settings;
use crate::server::stats::Stats;

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
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let origin = cluster.link.node_id();
        let messages = messages as u64;
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
        let mut bytes = Vec::with_capacity(frames.len() + origin.len() + 64);
        message.encode(&mut bytes);
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
                    let frames: Rc<[u8]> = Rc::from(frames);
                    self.publish(topic, &frames, messages_of(messages), settings, stats);
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
