//! WAMP across the nodes of a cluster (`[cluster]`, README "Scaling out"): sessions of
//! different nodes publish to, subscribe to, call and answer each other.
//!
//! Each other node's router is a hidden session in each realm here (`Link::Node`), made
//! when the node first speaks in the realm and gone with the node. It speaks as a client
//! would, so the broker and dealer keep one path:
//!
//! - A publication of a session here (and a meta event) goes to every node as PUBLISH with
//!   its id, audience, `retain`, disclosed publisher and whether the plain side hears it;
//!   each node delivers it to its own subscribers as the publishing node did to its own
//!   (`Realm::fan_out`): one publication id everywhere.
//! - A node tells the others which procedures its sessions registered (`NodeRegistration`;
//!   the full list when a node joins or Redis comes back); the others make that node's
//!   session a callee of each. REGISTERED for a procedure new on a node waits until every
//!   other node has answered a question asked after the news (`Action::AwaitNodes`), so
//!   whatever follows REGISTERED finds it anywhere. A call that picks a node's session
//!   becomes a CALL to that node, where this node's session is the caller and a callee of
//!   its own is picked (never another node's: a call crosses once; with none any more, the
//!   call comes back as `NOT_HERE` and is routed again). INVOCATION there is CALL here,
//!   INTERRUPT is CANCEL, and the answers go back RESULT as YIELD and ERROR(CALL) as
//!   ERROR(INVOCATION), so progressive results, the cancel modes and timeouts follow from
//!   the dealer's rules on both sides.
//! - A node gone leaves its sessions: calls to its callees fail with `wamp.error.canceled`,
//!   the invocations of its callers are interrupted.
//! - Meta procedures: `wamp.session.count`, `list`, `kill_by_authid` and `kill_by_authrole`,
//!   and `get` and `kill` of a session not here, are called on every node too (as CALLs of
//!   this node's session there, answered for that node's own sessions), and the caller gets
//!   the answers put together once every node has answered or gone (a node that stops
//!   answering is gone within three heartbeats). The subscription and
//!   registration procedures answer for this node (their ids are each node's).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Instant;

use crate::cluster::wire::RegistrationEntry;
use crate::router::broker::{self, Disclosure, Publication};
use crate::router::error::{Refusal, Violation};
use crate::router::options::{Invoke, PeerFeatures, PublishOptions, RegisterOptions};
use crate::router::realm::{Ctx, Realm};
use crate::router::session::{BACKEND_AUTHROLE, Link, NodeRef, Session};
use crate::router::uri::Match;
use crate::router::{Action, Chronicle, NoHistory, Router};
use crate::wamp::{Dict, Message, MessageType, Payload, Value};

/// A forwarded publication's option saying the backend realm's plain side hears it (a
/// session published it, not the router).
const PLAIN_SIDE: &str = "x_wson_plain_side";

/// The error a node answers a call another node passed on when it has no callee for it
/// (any more: the other node's route was stale, as a callee left or unregistered while the
/// news travelled). Its details are the call's options and procedure, its payload the
/// call's: the other node routes it again without that node. Never reaches a client.
pub const NOT_HERE: &str = "x_wson.error.no_callee_here";

/// This node's callees of one registration came (`present`) or went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRegistration {
    pub uri: String,
    pub policy: Match,
    pub invoke: Invoke,
    pub present: bool,
}

/// A meta call the other nodes answer too: the caller's CALL and this node's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Gather {
    pub caller: u64,
    pub request: u64,
    pub procedure: String,
    pub payload: Payload,
    pub local: Result<Vec<Value>, Refusal>,
}

/// Whether meta procedure `procedure`, answered `local` here, asks the other nodes too.
pub fn asks_other_nodes(procedure: &str, local: &Result<Vec<Value>, Refusal>) -> bool {
    match procedure {
        "wamp.session.count"
        | "wamp.session.list"
        | "wamp.session.kill_by_authid"
        | "wamp.session.kill_by_authrole" => local.is_ok(),
        // A session found here is the answer.
        "wamp.session.get" | "wamp.session.kill" => {
            matches!(local, Err(Refusal::NoSuchSession { .. }))
        }
        _ => false,
    }
}

/// A gather under way: what came, and the CALLs (node session, request) still unanswered.
#[derive(Debug)]
struct Gathering {
    realm: usize,
    call: Gather,
    answers: Vec<Vec<Value>>,
    waiting: Vec<(u64, u64)>,
}

impl Gathering {
    /// The caller's answer from this node's and the others' (errors count as nothing found).
    fn combine(self) -> (u64, Message) {
        let Gather {
            caller,
            request,
            procedure,
            local,
            ..
        } = self.call;
        let mut answers = self.answers;
        let result = match (procedure.as_str(), local) {
            ("wamp.session.count", Ok(local)) => {
                let count = std::iter::once(&local)
                    .chain(&answers)
                    .filter_map(|args| args.first()?.as_u64().ok())
                    .fold(0_u64, u64::saturating_add);
                Ok(vec![Value::from(count)])
            }
            ("wamp.session.get" | "wamp.session.kill", local) => {
                answers.into_iter().next().map_or(local, Ok)
            }
            (_, Ok(local)) => {
                // Lists of session ids: every node's, in order.
                answers.insert(0, local);
                let mut ids: Vec<u64> = answers
                    .iter()
                    .filter_map(|args| match args.first() {
                        Some(Value::List(ids)) => Some(ids),
                        _ => None,
                    })
                    .flatten()
                    .filter_map(|id| id.as_u64().ok())
                    .collect();
                ids.sort_unstable();
                Ok(vec![Value::List(
                    ids.into_iter().map(Value::from).collect(),
                )])
            }
            (_, Err(refusal)) => Err(refusal),
        };
        (caller, crate::router::dealer::call_answer(request, result))
    }
}

/// The other nodes the router has heard of, numbered, and their sessions in the realms.
#[derive(Debug, Default)]
pub struct Nodes {
    refs: HashMap<String, NodeRef>,
    names: HashMap<NodeRef, String>,
    next: u32,
    /// (realm index, node) -> the node's session in the realm.
    sessions: HashMap<(usize, NodeRef), u64>,
    /// Replies waiting for every node's answer: ticket -> (realm index, session, reply).
    held: HashMap<u64, (usize, u64, Message)>,
    next_ticket: u64,
    /// Meta calls the other nodes answer too, by ticket; and the CALLs sent for them:
    /// (node session, request) -> ticket.
    gathering: HashMap<u64, Gathering>,
    gather_calls: HashMap<(u64, u64), u64>,
}

impl Nodes {
    /// Any other node: publications and registrations are told.
    pub fn any(&self) -> bool {
        !self.refs.is_empty()
    }

    pub(super) fn hold(&mut self, realm: usize, session: u64, reply: Message) -> u64 {
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.held.insert(self.next_ticket, (realm, session, reply));
        self.next_ticket
    }

    fn add(&mut self, name: &str) -> NodeRef {
        if let Some(&node) = self.refs.get(name) {
            return node;
        }
        let node = NodeRef(self.next);
        self.next = self.next.wrapping_add(1);
        self.refs.insert(name.to_owned(), node);
        self.names.insert(node, name.to_owned());
        node
    }
}

/// The caller a node's CALL discloses (`caller`, `caller_authid`, `caller_authrole`, as its
/// INVOCATION would have): `None` when its node did not disclose it.
pub fn forwarded_caller(options: &Dict) -> Option<(Value, Value, Value)> {
    let caller = options.uint("caller")?.ok()?;
    let authid = options.str("caller_authid")?.ok()?;
    let authrole = options.str("caller_authrole")?.ok()?;
    Some((
        Value::from(caller),
        Value::from(authid),
        Value::from(authrole),
    ))
}

/// `NOT_HERE` for a CALL of another node's session (see there).
pub fn not_here(request: u64, options: &Dict, procedure: String, payload: Payload) -> Message {
    let mut details = options.clone();
    details.insert("procedure", Value::from(procedure));
    Message::Error {
        request_type: MessageType::Call,
        request,
        details,
        error: NOT_HERE.to_owned(),
        payload,
    }
}

/// The publisher a node's PUBLISH discloses, as EVENT details name it.
fn forwarded_publisher(options: &Dict) -> Option<Disclosure> {
    Some(Disclosure {
        session: options.uint("publisher")?.ok()?,
        authid: Rc::from(options.str("publisher_authid")?.ok()?),
        authrole: Rc::from(options.str("publisher_authrole")?.ok()?),
    })
}

impl Realm {
    /// Callees of registration `id` on this node (not another node's session).
    pub(super) fn local_callees(&self, id: u64) -> usize {
        self.dealer.get(id).map_or(0, |registration| {
            registration
                .callees
                .iter()
                .filter(|callee| self.sessions.get(callee).is_some_and(|s| !s.is_node()))
                .count()
        })
    }

    /// Tells the other nodes that this node's callees of (`uri`, `options`) came or went
    /// (true when told: there are other nodes). The meta procedures stay each node's own.
    pub(super) fn announce_registration(
        &self,
        ctx: &mut Ctx<'_>,
        uri: &str,
        options: RegisterOptions,
        present: bool,
    ) -> bool {
        if !ctx.clustered || uri.starts_with("wamp.") {
            return false;
        }
        ctx.out.push(Action::NodeRegistration {
            realm: self.name.clone(),
            registration: NodeRegistration {
                uri: uri.to_owned(),
                policy: options.policy,
                invoke: options.invoke,
                present,
            },
        });
        true
    }

    /// `message`, which the dealer addressed to node `node`'s session, as that node takes
    /// it from this node's session (see the module's doc).
    pub(super) fn send_to_node(&self, node: NodeRef, message: Message, out: &mut Vec<Action>) {
        let message = match message {
            Message::Invocation {
                request,
                registration,
                mut details,
                payload,
            } => {
                let procedure = match details.str("procedure") {
                    Some(Ok(procedure)) => procedure.to_owned(),
                    Some(Err(())) | None => match self.dealer.get(registration) {
                        Some(registration) => registration.uri.clone(),
                        None => return,
                    },
                };
                // The rest of the details are CALL options by the same names (the caller's
                // identity is read back by `forwarded_caller`).
                let mut options = Dict::new();
                for (key, value) in details.iter() {
                    if key != "procedure" {
                        options.insert(key, value.clone());
                    }
                }
                details = options;
                Message::Call {
                    request,
                    options: details,
                    procedure,
                    payload,
                }
            }
            Message::Interrupt { request, options } => Message::Cancel { request, options },
            Message::Result {
                request,
                details,
                payload,
            } => Message::Yield {
                request,
                options: details,
                payload,
            },
            Message::Error {
                request_type: MessageType::Call,
                request,
                details,
                error,
                payload,
            } => Message::Error {
                request_type: MessageType::Invocation,
                request,
                details,
                error,
                payload,
            },
            other => {
                log::debug!(realm = self.name, message = other.message_type().name(); "no message for another node; dropped");
                return;
            }
        };
        out.push(Action::Node {
            to: Some(node),
            realm: self.name.clone(),
            message,
        });
    }

    /// Passes publication `publication` on to the other nodes (see `publish`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn publish_to_nodes(
        &self,
        ctx: &mut Ctx<'_>,
        publication: u64,
        topic: &str,
        options: &PublishOptions,
        disclosed: Option<&Disclosure>,
        plain_side: bool,
        payload: Payload,
    ) {
        let mut forwarded = Dict::new();
        options.audience.write_to(&mut forwarded);
        if options.retain {
            forwarded.insert("retain", Value::Bool(true));
        }
        broker::disclose(&mut forwarded, disclosed);
        if plain_side {
            forwarded.insert(PLAIN_SIDE, Value::Bool(true));
        }
        ctx.out.push(Action::Node {
            to: None,
            realm: self.name.clone(),
            message: Message::Publish {
                request: publication,
                options: forwarded,
                topic: topic.to_owned(),
                payload,
            },
        });
    }

    /// Another node's publication `publication`: to this node's subscribers (and the plain
    /// side, whose event listeners its node told).
    fn node_publish(
        &mut self,
        ctx: &mut Ctx<'_>,
        publication: u64,
        options: &Dict,
        topic: &str,
        payload: Payload,
    ) -> Result<(), Violation> {
        let parsed = PublishOptions::parse(options)?;
        let publisher = forwarded_publisher(options);
        let heard = matches!(options.bool(PLAIN_SIDE), Some(Ok(true)));
        let plain_side = (ctx.backend_realm && heard).then(|| {
            let authid = publisher
                .as_ref()
                .map_or_else(String::new, |p| p.authid.to_string());
            (authid, false)
        });
        self.fan_out(
            ctx,
            &Publication {
                id: publication,
                topic,
                publisher: publisher.as_ref(),
                exclude_session: None,
                audience: &parsed.audience,
                position: None,
            },
            parsed.retain,
            payload,
            plain_side,
        );
        Ok(())
    }

    /// Node `node` has no callee for `call` after all (`NOT_HERE`): it is no callee of the
    /// procedure here any more (its news will agree), and the call is routed again, as it
    /// was authorized: to another callee, or to no_such_procedure.
    pub(super) fn call_again(
        &mut self,
        ctx: &mut Ctx<'_>,
        node: u64,
        call: &crate::router::dealer::Call,
        mut details: Dict,
        payload: Payload,
    ) {
        let Some(Ok(procedure)) = details.str("procedure").map(|p| p.map(str::to_owned)) else {
            return;
        };
        let stale = self
            .dealer
            .best_match(&procedure)
            .map(|r| (r.uri.clone(), r.policy));
        if let Some((uri, policy)) = stale {
            self.node_unregister(node, &uri, policy);
        }
        // The INVOCATION details it carried back, as the CALL options they came from.
        let disclosed = details.get("caller").is_some();
        let mut options = Dict::new();
        for key in ["receive_progress", "timeout"] {
            if let Some(value) = details.get(key) {
                options.insert(key, value.clone());
            }
        }
        details = options;
        let decided = ctx.decided.replace(crate::router::auth::Authorization {
            allow: true,
            disclose: disclosed,
        });
        let call_message = Message::Call {
            request: call.caller_request,
            options: details,
            procedure,
            payload,
        };
        if call.caller == crate::router::dynamic::ROUTER_CALLER {
            // The router's own calls are not routed again: they fail as no callee.
            ctx.decided = decided;
            let text = "the callee left as the call went to it";
            self.fail_caller(ctx, call, "wamp.error.no_such_procedure", text);
            return;
        }
        if let Err(violation) = self.dispatch(ctx, call.caller, call_message) {
            log::debug!(reason:% = violation; "a call routed again was refused");
        }
        ctx.decided = decided;
    }

    /// Node session `id` becomes a callee of a registration of its node, unless that
    /// conflicts with one here (a `single` procedure registered on two nodes at once, or
    /// two invoke policies): then each node keeps calling its own, and the log says so.
    fn node_register(&mut self, ctx: &mut Ctx<'_>, id: u64, registration: &NodeRegistration) {
        let options = RegisterOptions {
            policy: registration.policy,
            invoke: registration.invoke,
        };
        let uri = registration.uri.as_str();
        if let Some(existing) = self.dealer.lookup(uri, options.policy) {
            if existing.callees.contains(&id) {
                return;
            }
            if existing.invoke == Invoke::Single || existing.invoke != options.invoke {
                log::warn!(realm = self.name, procedure = uri, here = existing.invoke.name(), there = options.invoke.name(); "cluster: a procedure registered here and on another node that cannot share it; each node calls its own");
                return;
            }
        }
        self.add_callee(ctx, id, uri, options);
    }

    /// Node session `id` is no callee of (`uri`, `policy`) any more.
    fn node_unregister(&mut self, id: u64, uri: &str, policy: Match) {
        let Some(registration) = self.dealer.lookup(uri, policy).map(|r| r.id) else {
            return;
        };
        if self.dealer.unregister(registration, id).is_some()
            && let Some(session) = self.sessions.get_mut(&id)
        {
            session.registrations.retain(|&r| r != registration);
        }
    }

    /// Node session `id` leaves with its node: calls to its callees fail, its callers'
    /// invocations are interrupted, its registrations go (without meta events: they were
    /// its node's to publish).
    fn node_leave(&mut self, ctx: &mut Ctx<'_>, id: u64) {
        self.dealer_session_gone(ctx, id);
        let registrations = self
            .sessions
            .get(&id)
            .map(|session| session.registrations.clone())
            .unwrap_or_default();
        for registration in registrations {
            self.dealer.unregister(registration, id);
        }
        self.sessions.remove(&id);
    }
}

impl Router {
    /// Node `node` (an instance name) was heard: from now on publications and
    /// registrations are told to the other nodes.
    pub fn node_joined(&mut self, node: &str) {
        self.nodes.add(node);
    }

    /// Every other node answered since reply `ticket` (`Action::AwaitNodes`) was held, or
    /// none could: what this node told them before has arrived; the reply goes.
    pub fn nodes_settled(&mut self, ticket: u64, out: &mut Vec<Action>) {
        let start = out.len();
        let Some((realm, session, reply)) = self.nodes.held.remove(&ticket) else {
            return;
        };
        if let Some(realm) = self.realms.get(realm) {
            realm.send(session, reply, out);
        }
        self.translate_v1(start, out);
    }

    /// Calls meta procedure `gather` on every other node (see the module's doc); with none,
    /// the caller gets this node's answer.
    pub(super) fn start_gather(&mut self, realm: usize, gather: Gather, out: &mut Vec<Action>) {
        let nodes: Vec<NodeRef> = self.nodes.refs.values().copied().collect();
        self.nodes.next_ticket = self.nodes.next_ticket.wrapping_add(1);
        let ticket = self.nodes.next_ticket;
        let mut waiting = Vec::new();
        let name = self
            .realms
            .get(realm)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        for node in nodes {
            let Some(session) = self.node_session(realm, node) else {
                continue;
            };
            let Some(request) = self
                .realms
                .get_mut(realm)
                .and_then(|r| r.sessions.get_mut(&session))
                .map(|s| s.invocation_ids.next_id())
            else {
                continue;
            };
            waiting.push((session, request));
            self.nodes.gather_calls.insert((session, request), ticket);
            out.push(Action::Node {
                to: Some(node),
                realm: name.clone(),
                message: Message::Call {
                    request,
                    options: Dict::new(),
                    procedure: gather.procedure.clone(),
                    payload: gather.payload.clone(),
                },
            });
        }
        let gathering = Gathering {
            realm,
            call: gather,
            answers: Vec::new(),
            waiting,
        };
        if gathering.waiting.is_empty() {
            self.finish_gather(gathering, out);
        } else {
            self.nodes.gathering.insert(ticket, gathering);
        }
    }

    /// The answer of node session `session` to CALL `request`, if it was a gather's
    /// (`Some(answer)`: its args, or `None` for an error): taken; else false.
    fn gather_answer(
        &mut self,
        session: u64,
        request: u64,
        answer: Option<Vec<Value>>,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(ticket) = self.nodes.gather_calls.remove(&(session, request)) else {
            return false;
        };
        let Some(gathering) = self.nodes.gathering.get_mut(&ticket) else {
            return true;
        };
        gathering.waiting.retain(|&call| call != (session, request));
        gathering.answers.extend(answer);
        if gathering.waiting.is_empty()
            && let Some(gathering) = self.nodes.gathering.remove(&ticket)
        {
            self.finish_gather(gathering, out);
        }
        true
    }

    fn finish_gather(&mut self, gathering: Gathering, out: &mut Vec<Action>) {
        let realm = gathering.realm;
        let (caller, message) = gathering.combine();
        if let Some(realm) = self.realms.get(realm) {
            realm.send(caller, message, out);
        }
    }

    /// The instance name of `node`.
    pub fn node_name(&self, node: NodeRef) -> Option<&str> {
        self.nodes.names.get(&node).map(String::as_str)
    }

    /// Node `node` is gone: its sessions leave every realm.
    pub fn node_gone(
        &mut self,
        node: &str,
        now: Instant,
        history: &mut dyn Chronicle,
        out: &mut Vec<Action>,
    ) {
        let start = out.len();
        let Some(node) = self.nodes.refs.remove(node) else {
            return;
        };
        self.nodes.names.remove(&node);
        let mut sessions: Vec<(usize, u64)> = Vec::new();
        self.nodes.sessions.retain(|&(realm, of), &mut session| {
            if of == node {
                sessions.push((realm, session));
            }
            of != node
        });
        for (realm, session) in sessions {
            // Its answers to meta calls will not come.
            let unanswered: Vec<(u64, u64)> = self
                .nodes
                .gather_calls
                .keys()
                .filter(|(of, _)| *of == session)
                .copied()
                .collect();
            for (of, request) in unanswered {
                self.gather_answer(of, request, None, out);
            }
            self.with_realm(realm, now, history, out, |realm, ctx| {
                realm.node_leave(ctx, session)
            });
        }
        self.translate_v1(start, out);
    }

    /// Node `node`'s session in realm `realm` (made on first use).
    fn node_session(&mut self, realm: usize, node: NodeRef) -> Option<u64> {
        if let Some(&session) = self.nodes.sessions.get(&(realm, node)) {
            return Some(session);
        }
        let name = self.nodes.names.get(&node)?;
        let id = self.global_ids.next_id();
        let features = PeerFeatures {
            // Its node passes a CANCEL on to a callee that takes it, or answers for it.
            callee_call_canceling: true,
        };
        let session = Session::new(
            id,
            Link::Node { node },
            Rc::from(name.as_str()),
            Rc::from(BACKEND_AUTHROLE),
            features,
        );
        self.realms.get_mut(realm)?.sessions.insert(id, session);
        self.nodes.sessions.insert((realm, node), id);
        Some(id)
    }

    /// The index of configured realm `name`; `None` for a realm this node does not have
    /// (the nodes' configs differ).
    fn configured_realm(&mut self, name: &str) -> Option<usize> {
        if !self.config.realms.iter().any(|realm| realm == name) {
            log::debug!(realm = name; "cluster: a WAMP message for a realm this node does not have; dropped");
            return None;
        }
        Some(self.realm_index(name))
    }

    /// A WAMP message from node `node`'s router in realm `realm` (see the module's doc).
    pub fn from_node(
        &mut self,
        node: &str,
        realm: &str,
        message: Message,
        now: Instant,
        history: &mut dyn Chronicle,
        out: &mut Vec<Action>,
    ) {
        let start = out.len();
        let Some(index) = self.configured_realm(realm) else {
            return;
        };
        let node = self.nodes.add(node);
        let kind = message.message_type().name();
        let result = match message {
            Message::Publish {
                request,
                options,
                topic,
                payload,
            } => self.with_realm(index, now, history, out, |realm, ctx| {
                realm.node_publish(ctx, request, &options, &topic, payload)
            }),
            message @ (Message::Call { .. }
            | Message::Cancel { .. }
            | Message::Yield { .. }
            | Message::Error {
                request_type: MessageType::Invocation,
                ..
            }) => {
                let Some(session) = self.node_session(index, node) else {
                    return;
                };
                // An answer to a meta call of this node's (`start_gather`)?
                let answered = match &message {
                    Message::Yield { request, .. } | Message::Error { request, .. } => {
                        Some(*request)
                    }
                    _ => None,
                };
                if let Some(request) = answered
                    && self.nodes.gather_calls.contains_key(&(session, request))
                {
                    let answer = match message {
                        Message::Yield { payload, .. } => Some(payload.args),
                        _ => None,
                    };
                    self.gather_answer(session, request, answer, out);
                    self.translate_v1(start, out);
                    return;
                }
                self.with_realm(index, now, history, out, |realm, ctx| {
                    realm.dispatch(ctx, session, message)
                })
            }
            _ => Some(Err(Violation::NotForRouter { message: kind })),
        };
        if let Some(Err(violation)) = result {
            log::warn!(realm = realm, message = kind, reason:% = violation; "cluster: a WAMP message from another node dropped");
        }
        self.translate_v1(start, out);
    }

    /// Node `node` says which procedures its sessions registered: all of them (`full`),
    /// or the ones that changed.
    pub fn node_registrations(
        &mut self,
        node: &str,
        full: bool,
        entries: &[RegistrationEntry<'_>],
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let start = out.len();
        let node = self.nodes.add(node);
        let mut realms: Vec<&str> = entries.iter().map(|entry| entry.realm).collect();
        if full {
            // Every realm where the node is a callee, to drop what it no longer lists.
            for &(realm, of) in self.nodes.sessions.keys() {
                if let (true, Some(realm)) = (of == node, self.realms.get(realm)) {
                    realms.push(realm.name.as_str());
                }
            }
        }
        let realms: Vec<String> = realms
            .into_iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for name in realms {
            let Some(index) = self.configured_realm(&name) else {
                continue;
            };
            let Some(session) = self.node_session(index, node) else {
                continue;
            };
            let mut listed: Vec<NodeRegistration> = Vec::new();
            for entry in entries.iter().filter(|entry| entry.realm == name) {
                let (Some(policy), Some(invoke)) =
                    (Match::parse(entry.policy), Invoke::parse(entry.invoke))
                else {
                    log::warn!(realm = name, procedure = entry.uri; "cluster: a registration with an unknown match or invoke policy from another node; dropped");
                    continue;
                };
                listed.push(NodeRegistration {
                    uri: entry.uri.to_owned(),
                    policy,
                    invoke,
                    present: entry.present,
                });
            }
            // Registrations only: nothing is published.
            self.with_realm(index, now, &mut NoHistory, out, |realm, ctx| {
                if full {
                    let stale: Vec<(String, Match)> = realm
                        .sessions
                        .get(&session)
                        .map(|s| s.registrations.clone())
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|id| realm.dealer.get(id))
                        .filter(|r| {
                            !listed
                                .iter()
                                .any(|l| l.present && l.uri == r.uri && l.policy == r.policy)
                        })
                        .map(|r| (r.uri.clone(), r.policy))
                        .collect();
                    for (uri, policy) in stale {
                        realm.node_unregister(session, &uri, policy);
                    }
                }
                for registration in &listed {
                    if registration.present {
                        realm.node_register(ctx, session, registration);
                    } else {
                        realm.node_unregister(session, &registration.uri, registration.policy);
                    }
                }
            });
        }
        self.translate_v1(start, out);
    }

    /// Every procedure this node's sessions registered, by realm: what a node that joins
    /// is told.
    pub fn local_registrations(&self) -> Vec<(String, NodeRegistration)> {
        let mut registrations = Vec::new();
        for realm in &self.realms {
            for registration in realm.dealer.iter() {
                if registration.uri.starts_with("wamp.")
                    || realm.local_callees(registration.id) == 0
                {
                    continue;
                }
                registrations.push((
                    realm.name.clone(),
                    NodeRegistration {
                        uri: registration.uri.clone(),
                        policy: registration.policy,
                        invoke: registration.invoke,
                        present: true,
                    },
                ));
            }
        }
        registrations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::testing::{Harness, Out, config, json};
    use crate::server::slab::Key;

    /// Hands what `from` asked for other nodes to `to`, as the hub would (`from` is node
    /// `name` to `to`); returns what `to` then asked for.
    fn carry(from: &[Out], name: &str, to: &mut Harness) -> Vec<Out> {
        let mut actions = Vec::new();
        for out in from {
            match out {
                Out::Node(_, realm, message) => {
                    to.router.from_node(
                        name,
                        realm,
                        message.clone(),
                        to.now,
                        &mut to.history,
                        &mut actions,
                    );
                }
                Out::NodeRegistration(realm, registration) => {
                    let entry = RegistrationEntry {
                        realm,
                        uri: &registration.uri,
                        policy: registration.policy.name(),
                        invoke: registration.invoke.name(),
                        present: registration.present,
                    };
                    to.router
                        .node_registrations(name, false, &[entry], to.now, &mut actions);
                }
                _ => {}
            }
        }
        to.decode(actions)
    }

    /// What `out` held for the other nodes, sent as if they all answered.
    fn settle(node: &mut Harness, out: Vec<Out>) -> Vec<Out> {
        let mut settled = Vec::new();
        for out in out {
            let Out::AwaitNodes(ticket) = out else {
                settled.push(out);
                continue;
            };
            let mut actions = Vec::new();
            node.router.nodes_settled(ticket, &mut actions);
            settled.extend(node.decode(actions));
        }
        settled
    }

    /// `text` from client `key`, with what it held for the other nodes settled.
    fn send_settled(node: &mut Harness, key: Key, text: &str) -> Vec<Out> {
        let out = node.send(key, text);
        settle(node, out)
    }

    fn to_client(out: &[Out], key: Key) -> Vec<String> {
        out.iter()
            .filter_map(|out| match out {
                Out::To(to, message) if *to == key => Some(json(message)),
                _ => None,
            })
            .collect()
    }

    fn two_nodes() -> (Harness, Harness) {
        let (mut a, mut b) = (Harness::new(config()), Harness::new(config()));
        a.router.node_joined("b");
        b.router.node_joined("a");
        (a, b)
    }

    #[test]
    fn a_call_crosses_once_and_the_answers_come_back_as_the_callee_sent_them() {
        let (mut a, mut b) = two_nodes();
        let (callee, _) = a.join("alice");
        let registered = send_settled(&mut a, callee, r#"[64,1,{},"com.x"]"#);
        assert!(
            registered.contains(&Out::NodeRegistration(
                "realm1".into(),
                NodeRegistration {
                    uri: "com.x".into(),
                    policy: Match::Exact,
                    invoke: Invoke::Single,
                    present: true,
                }
            )),
            "{registered:?}"
        );
        carry(&registered, "a", &mut b);
        let (caller, caller_id) = b.join("bob");
        let call = b.send(
            caller,
            r#"[48,7,{"disclose_me":true,"receive_progress":true},"com.x",[1]]"#,
        );
        let [Out::Node(Some(_), realm, message)] = call.as_slice() else {
            panic!("{call:?}");
        };
        assert_eq!(realm, "realm1");
        assert_eq!(
            json(message),
            format!(
                r#"[48,1,{{"caller":{caller_id},"caller_authid":"bob","caller_authrole":"user","receive_progress":true}},"com.x",[1]]"#
            )
        );
        let invocation = carry(&call, "b", &mut a);
        assert_eq!(
            to_client(&invocation, callee),
            [format!(
                r#"[68,1,1,{{"caller":{caller_id},"caller_authid":"bob","caller_authrole":"user","receive_progress":true}},[1]]"#
            )]
        );
        let progress = a.send(callee, r#"[70,1,{"progress":true},["half"]]"#);
        let done = a.send(callee, r#"[70,1,{},["all"]]"#);
        let mut results = carry(&progress, "a", &mut b);
        results.extend(carry(&done, "a", &mut b));
        assert_eq!(
            to_client(&results, caller),
            [
                r#"[50,7,{"progress":true},["half"]]"#,
                r#"[50,7,{},["all"]]"#
            ]
        );
        // A call crosses once: a shared procedure with callees on both nodes; what b
        // passes to a goes to a's own callee, never back to b.
        let shared = send_settled(&mut a, callee, r#"[64,2,{"invoke":"roundrobin"},"com.s"]"#);
        carry(&shared, "a", &mut b);
        let (b_callee, _) = b.join("carol");
        let shared = send_settled(
            &mut b,
            b_callee,
            r#"[64,1,{"invoke":"roundrobin"},"com.s"]"#,
        );
        carry(&shared, "b", &mut a);
        let mut crossed = 0;
        for request in 10..14 {
            let call = b.send(caller, &format!(r#"[48,{request},{{}},"com.s",[]]"#));
            if to_client(&call, b_callee).len() == 1 {
                continue;
            }
            crossed += 1;
            let invocation = carry(&call, "b", &mut a);
            assert_eq!(to_client(&invocation, callee).len(), 1, "{invocation:?}");
            assert!(
                !invocation.iter().any(|out| matches!(out, Out::Node(..))),
                "{invocation:?}"
            );
        }
        assert_eq!(crossed, 2, "round robin over b's callee and node a");
    }

    #[test]
    fn a_node_gone_cancels_its_calls_and_a_full_list_drops_what_it_no_longer_names() {
        let (mut a, mut b) = two_nodes();
        let (callee, _) = a.join("alice");
        let mut told = send_settled(&mut a, callee, r#"[64,1,{},"com.x"]"#);
        told.extend(send_settled(&mut a, callee, r#"[64,2,{},"com.z"]"#));
        carry(&told, "a", &mut b);
        let (caller, _) = b.join("bob");
        let call = b.send(caller, r#"[48,1,{},"com.x",[]]"#);
        assert!(matches!(call.as_slice(), [Out::Node(..)]), "{call:?}");
        // A full list without com.x: b stops routing it (com.z stays).
        let entry = RegistrationEntry {
            realm: "realm1",
            uri: "com.z",
            policy: "exact",
            invoke: "single",
            present: true,
        };
        let mut out = Vec::new();
        b.router
            .node_registrations("a", true, &[entry], b.now, &mut out);
        let refused = b.send(caller, r#"[48,2,{},"com.x",[]]"#);
        assert_eq!(
            to_client(&refused, caller),
            [
                r#"[8,48,2,{},"wamp.error.no_such_procedure",["no callee registered for procedure <com.x>"]]"#
            ]
        );
        // Node a gone: the call in flight fails as canceled; com.z is no longer routed.
        let mut out = Vec::new();
        b.router.node_gone("a", b.now, &mut b.history, &mut out);
        let out = b.decode(out);
        let failed = to_client(&out, caller);
        assert_eq!(failed.len(), 1, "{out:?}");
        assert!(
            failed[0].starts_with(r#"[8,48,1,{},"wamp.error.canceled""#),
            "{failed:?}"
        );
        let refused = b.send(caller, r#"[48,3,{},"com.z",[]]"#);
        assert!(to_client(&refused, caller)[0].contains("no_such_procedure"));
        assert_eq!(b.router.figures().registrations, 0);
    }

    #[test]
    fn registered_waits_until_the_other_nodes_have_heard_and_only_when_new_here() {
        let (mut a, _) = two_nodes();
        let (callee, _) = a.join("alice");
        let out = a.send(callee, r#"[64,1,{},"com.q"]"#);
        // Told (with the meta events), then held.
        assert!(
            matches!(out.first(), Some(Out::NodeRegistration(..))),
            "{out:?}"
        );
        assert!(matches!(out.last(), Some(Out::AwaitNodes(_))), "{out:?}");
        assert!(to_client(&out, callee).is_empty());
        let out = settle(&mut a, out);
        assert_eq!(to_client(&out, callee), [r#"[65,1,1]"#]);
        // A second callee of a shared procedure changes nothing for the others.
        let (second, _) = a.join("bob");
        a.send(callee, r#"[64,2,{"invoke":"first"},"com.r"]"#);
        let out = a.send(second, r#"[64,1,{"invoke":"first"},"com.r"]"#);
        assert_eq!(to_client(&out, second), [r#"[65,1,2]"#]);
        // No other node: nothing to wait for.
        let mut alone = Harness::new(config());
        let (callee, _) = alone.join("alice");
        let out = alone.send(callee, r#"[64,1,{},"com.q"]"#);
        assert_eq!(to_client(&out, callee), [r#"[65,1,1]"#]);
    }

    #[test]
    fn a_call_on_a_stale_route_comes_back_and_goes_to_another_callee() {
        let (mut a, mut b) = two_nodes();
        let (on_a, _) = a.join("alice");
        let (on_b, _) = b.join("bob");
        let shared = r#"[64,1,{"invoke":"roundrobin"},"com.s"]"#;
        let told = send_settled(&mut a, on_a, shared);
        carry(&told, "a", &mut b);
        send_settled(&mut b, on_b, shared);
        // a's callee leaves; b has not heard yet.
        a.gone(crate::router::Peer::Client(on_a));
        let (caller, _) = b.join("carol");
        let mut reached_b = 0;
        for request in 1..=2 {
            let call = b.send(
                caller,
                &format!(r#"[48,{request},{{}},"com.s",[{request}]]"#),
            );
            let back = carry(&call, "b", &mut a);
            let mut out = call;
            out.extend(carry(&back, "a", &mut b));
            for invocation in to_client(&out, on_b) {
                assert!(
                    invocation.ends_with(&format!("[{request}]]")),
                    "{invocation}"
                );
                reached_b += 1;
            }
        }
        assert_eq!(reached_b, 2, "both calls end at b's callee");
        // The stale route is gone: the next call stays on b.
        let call = b.send(caller, r#"[48,3,{},"com.s",[]]"#);
        assert_eq!(to_client(&call, on_b).len(), 1, "{call:?}");
    }

    #[test]
    fn a_single_procedure_of_two_nodes_stays_each_nodes_own() {
        let (mut a, mut b) = two_nodes();
        let (on_a, _) = a.join("alice");
        let (on_b, _) = b.join("bob");
        let from_a = send_settled(&mut a, on_a, r#"[64,1,{},"com.x"]"#);
        let from_b = send_settled(&mut b, on_b, r#"[64,1,{},"com.x"]"#);
        assert!(carry(&from_a, "a", &mut b).is_empty());
        assert!(carry(&from_b, "b", &mut a).is_empty());
        // Each calls its own: nothing goes to the other node.
        let (caller, _) = b.join("carol");
        let call = b.send(caller, r#"[48,1,{},"com.x",[]]"#);
        assert_eq!(to_client(&call, on_b).len(), 1, "{call:?}");
    }
}
