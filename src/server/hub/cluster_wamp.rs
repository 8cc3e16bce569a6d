//! The hub's side of WAMP across nodes (`router::nodes`): the router's messages for other
//! nodes go over the cluster link as WAMP's MessagePack, and what the other nodes' routers
//! say is handed to this node's router. The hub only carries; the router decides.

use std::time::Instant;

use super::Hub;
use crate::cluster::wire::{self, RegistrationEntry};
use crate::cluster::{ClusterMessage, RegistrationSync};
use crate::router::nodes::NodeRegistration;
use crate::router::session::NodeRef;
use crate::server::settings::Settings;
use crate::wamp::{Message, Serializer};

impl Hub {
    /// The router's `message` for node `to` (every node: `None`) in `realm`, batched with
    /// what this loop turn sends there next (`ClusterSide::send_wamp`).
    pub(super) fn cluster_wamp_send(
        &mut self,
        to: Option<NodeRef>,
        realm: &str,
        message: &Message,
    ) {
        let to = match to {
            Some(node) => match self.router.node_name(node) {
                Some(name) => Some(name.to_owned()),
                // Gone since the router addressed it: its session left with it.
                None => return,
            },
            None => None,
        };
        let bytes = Serializer::MsgPack.encode(message);
        if let Some(cluster) = &mut self.cluster {
            cluster.send_wamp(to.as_deref(), realm, &bytes);
        }
    }

    /// This node's callees of a registration came or went: every other node hears it.
    pub(super) fn cluster_announce(&mut self, realm: &str, registration: &NodeRegistration) {
        let mut entries = Vec::new();
        entry(realm, registration).append_to(&mut entries);
        self.cluster_publish(None, |origin, out| {
            ClusterMessage::Registrations {
                origin,
                sync: RegistrationSync::Changes,
                entries: &entries,
            }
            .encode(out);
        });
    }

    /// Every registration of this node's sessions: `All` to node `to`, a node that
    /// joined or asked; `AllAndAsk` to every node when this node's link (re)joins the
    /// channel, as what the others said meanwhile is lost (a node that comes up before it
    /// hears the list, one that comes up after answers with its own).
    pub(super) fn cluster_sync_registrations(&mut self, to: Option<&str>) {
        let mut entries = Vec::new();
        for (realm, registration) in self.router.local_registrations() {
            entry(&realm, &registration).append_to(&mut entries);
        }
        let sync = match to {
            Some(_) => RegistrationSync::All,
            None => RegistrationSync::AllAndAsk,
        };
        self.cluster_publish(to, |origin, out| {
            ClusterMessage::Registrations {
                origin,
                sync,
                entries: &entries,
            }
            .encode(out);
        });
    }

    /// Node `node` was heard for the first time: the router speaks to it from now on, and
    /// it learns this node's registrations.
    pub(super) fn cluster_node_joined(&mut self, node: &str) {
        self.router.node_joined(node);
        self.cluster_sync_registrations(Some(node));
    }

    /// Node `origin`'s router said `messages` (checked whole by the wire codec).
    pub(super) fn cluster_wamp_receive(
        &mut self,
        origin: &str,
        messages: &[u8],
        settings: &Settings,
    ) {
        let now = Instant::now();
        for (realm, message) in wire::wamp_messages_in(messages).unwrap_or_default() {
            match Serializer::MsgPack.decode(message, settings.wamp.max_depth) {
                Ok(message) => {
                    let mut keeper = super::wamp::Keeper::new(&mut self.history, &self.keeping);
                    self.router.from_node(
                        origin,
                        realm,
                        message,
                        now,
                        &mut keeper,
                        &mut self.actions,
                    );
                }
                Err(error) => {
                    log::warn!(node = origin, reason:% = error; "cluster: a WAMP message from another node that does not decode; dropped");
                }
            }
        }
    }

    /// Node `origin` told which procedures its sessions registered (checked whole by the
    /// wire codec).
    pub(super) fn cluster_registrations_receive(
        &mut self,
        origin: &str,
        sync: RegistrationSync,
        entries: &[u8],
    ) {
        let Some(entries) = wire::registrations_in(entries) else {
            return;
        };
        let full = sync != RegistrationSync::Changes;
        self.router
            .node_registrations(origin, full, &entries, Instant::now(), &mut self.actions);
        if sync == RegistrationSync::AllAndAsk {
            self.cluster_sync_registrations(Some(origin));
        }
    }
}

fn entry<'a>(realm: &'a str, registration: &'a NodeRegistration) -> RegistrationEntry<'a> {
    RegistrationEntry {
        realm,
        uri: &registration.uri,
        policy: registration.policy.name(),
        invoke: registration.invoke.name(),
        present: registration.present,
    }
}
