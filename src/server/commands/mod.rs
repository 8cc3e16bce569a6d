//! Executing control commands: one function over the hub that turns a parsed `Command`
//! into an `Outcome` (a reply now, a reply later, none, or quit).
//!
//! Parsing stays in `control/`, the socket and the order of replies in `ControlConn`; a
//! command's effect on clients goes through the hub, the one path to them. The HTTP API of
//! a later issue executes the same commands.

use std::rc::Rc;
use std::time::Instant;

use crate::cluster::{ListKind, Question, Subject};
use crate::config::{AuthMode, TokenReuse};
use crate::control::authorizer::Decision;
use crate::control::codec::ControlError;
use crate::control::command::{Command, Page, PageRequest, Refusal, Reply, Target};
use crate::control::subscribe::JoinOptions;
use crate::control::topic::Topic;
use crate::resume::Position;
use crate::router::options::PublishOptions;
use crate::server::hub::{Asked, Fragment, FragmentResult, Hub, Message};
use crate::server::outbound::{BatchFor, FrameBatch, shared_frame};
use crate::server::settings::Settings;
use crate::server::slab::Key;
use crate::server::stats::Stats;
use crate::wamp::{Dict, Serializer, Value};
use crate::ws::frame::OpCode;
use crate::ws::message::MessageKind;

/// What became of a command, for the connection that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing goes back.
    Done,
    Reply(Reply),
    /// The reply comes later, under this ticket; the replies of later commands wait
    /// behind it, since the protocol has no request ids.
    Later(Ticket),
    /// `Later`, and the commands after it on the connection are not even executed before
    /// the ticket resolves: what they do must not overtake what this one does on this node
    /// (a publication to a topic whose history is in Redis, delivered here once positioned).
    LaterInOrder(Ticket),
    /// Nothing goes back, but the commands after it wait for the ticket as after
    /// `LaterInOrder` (`x` to such a topic).
    Hold(Ticket),
    /// Close the connection once the replies due are written (`q`, `Q`).
    Quit,
}

/// Names a reply that comes later; unique for the server's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(pub u64);

/// What a control connection hands its commands to.
pub trait Commands {
    fn execute(&mut self, command: Command<'_>) -> Result<Outcome, ControlError>;
    /// Everything read so far has been executed: what was batched goes out now.
    fn end_of_input(&mut self);
}

/// Everything a command may read or change, borrowed for one connection's turn.
pub struct Backend<'a> {
    /// The connection the commands come from (it owns the locks it takes).
    pub me: Key,
    pub hub: &'a mut Hub,
    /// Broadcasts, or publications to one topic, decoded one after the other, queued to
    /// their recipients together; always empty between turns, so every control
    /// connection can use the same one.
    pub batch: &'a mut FrameBatch,
    pub settings: &'a Settings,
    pub stats: &'a mut Stats,
    pub started: Instant,
    pub control_connections: usize,
    pub now: Instant,
}

impl Commands for Backend<'_> {
    fn execute(&mut self, command: Command<'_>) -> Result<Outcome, ControlError> {
        self.stats.control_frames += 1;
        // Anything but a broadcast or a publication may queue to a client or report
        // counters: what is batched goes out first, in order. (A broadcast or publication
        // for another audience sends the batch itself.)
        if !matches!(
            command,
            Command::Broadcast { .. } | Command::Publish { .. } | Command::PublishAt { .. }
        ) {
            self.settle();
        }
        execute(command, self)
    }

    fn end_of_input(&mut self) {
        self.settle();
    }
}

impl Backend<'_> {
    /// Adds a message for `audience` to the batch, sending the batch first when it is
    /// full or for another audience. A message too large for an empty batch goes out on
    /// its own, without the extra copy. (A publication to a topic that keeps a history is
    /// never batched: `publish_to_topic` sends it as its own frame, which the history shares.)
    fn queue_batched(&mut self, audience: BatchFor<'_>, binary: bool, message: &[u8]) {
        if !self.batch.accepts(audience, message.len()) {
            self.send_batch();
            if !self.batch.accepts(audience, message.len()) {
                let frame = shared_frame(true, data_opcode(binary), message);
                send_to(
                    self.hub,
                    audience,
                    Chunk::Shared(&frame),
                    1,
                    self.settings,
                    self.stats,
                );
                return;
            }
        }
        self.batch.push(audience, data_opcode(binary), message);
    }

    /// What is batched goes on: broadcasts to everyone, publications to their topic's
    /// staged chunk (`hub/staging.rs`), both to the other nodes.
    fn send_batch(&mut self) {
        let Backend {
            batch,
            hub,
            settings,
            stats,
            ..
        } = self;
        batch.send(|audience, frames, messages| {
            send_to(
                hub,
                audience,
                Chunk::Bytes(frames),
                messages,
                settings,
                stats,
            );
        });
    }

    /// Everything batched and staged goes out, in order: before anything else reaches a
    /// client or changes who a topic's members are.
    fn settle(&mut self) {
        self.send_batch();
        self.hub.seal_staged(self.settings, self.stats);
    }
}

/// Frames as the batch holds them, or already shared.
#[derive(Clone, Copy)]
enum Chunk<'a> {
    Bytes(&'a [u8]),
    Shared(&'a Rc<[u8]>),
}

impl Chunk<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Bytes(bytes) => bytes,
            Chunk::Shared(shared) => shared,
        }
    }
}

/// Queues `messages` whole frames to their audience: a broadcast at once as one shared
/// chunk (after the publications staged before it), a publication to its topic's staged
/// chunk; and forwards them to the other nodes in the order they came.
fn send_to(
    hub: &mut Hub,
    audience: BatchFor<'_>,
    frames: Chunk<'_>,
    messages: usize,
    settings: &Settings,
    stats: &mut Stats,
) {
    match audience {
        BatchFor::Everyone => {
            hub.seal_staged(settings, stats);
            let copied;
            let shared = match frames {
                Chunk::Shared(shared) => shared,
                Chunk::Bytes(bytes) => {
                    copied = Rc::from(bytes);
                    &copied
                }
            };
            hub.broadcast(shared, messages, settings, stats);
        }
        BatchFor::Topic(topic) => {
            hub.stage_publication(topic, frames.bytes(), messages, settings, stats);
        }
    }
    hub.cluster_forward(audience, frames.bytes(), messages);
}

/// Carries out one command.
pub fn execute(command: Command<'_>, ctx: &mut Backend<'_>) -> Result<Outcome, ControlError> {
    let command_byte = command.command_byte();
    Ok(match command {
        Command::Broadcast { binary, message } => {
            ctx.queue_batched(BatchFor::Everyone, binary, message);
            Outcome::Done
        }
        Command::Direct {
            confirm,
            binary,
            token,
            message,
        } => {
            let outgoing = Message {
                binary,
                payload: message,
            };
            let delivered = if message.is_empty() {
                // ws(s)on: an empty message only asks whether the client is online.
                ctx.hub.is_online(&token)
            } else {
                ctx.hub.direct(&token, outgoing, ctx.settings, ctx.stats) > 0
            };
            match (confirm, delivered) {
                (false, _) => {
                    // The token's connections on the other nodes too, unless it is here and
                    // so nowhere else (one connection per token cluster-wide, or the newest:
                    // `refuse` and `replace`; with `share` it may be anywhere).
                    let only_here =
                        delivered && ctx.settings.users.token_reuse != TokenReuse::Share;
                    if !message.is_empty() && !only_here {
                        ctx.hub.cluster_send_to(Subject::Token(token), outgoing);
                    }
                    Outcome::Done
                }
                (true, true) => Outcome::Reply(Reply::Ack(token)),
                // Not here: maybe on another node, which delivers it if so.
                (true, false) => {
                    let question = Question::Direct {
                        token,
                        binary,
                        message,
                    };
                    match ctx.hub.cluster_ask(ctx.me, question, 0, ctx.now) {
                        Asked::Alone => Outcome::Reply(Reply::Nack(token)),
                        asked => asked_outcome(asked),
                    }
                }
            }
        }
        // One lock per control connection: finish the message in progress first.
        Command::Lock { token } => match ctx.hub.lock(&token, ctx.me) {
            true => Outcome::Reply(Reply::Ack(token)),
            false => Outcome::Reply(Reply::Nack(token)),
        },
        Command::Fragment {
            position,
            binary,
            message,
        } => {
            let fragment = Fragment {
                position,
                kind: MessageKind::from_binary(binary),
                payload: message,
            };
            match ctx.hub.fragment(ctx.me, fragment, ctx.settings, ctx.stats) {
                FragmentResult::InvalidText { offset } => {
                    return Err(ControlError::InvalidUtf8 {
                        command: command_byte,
                        offset,
                    });
                }
                FragmentResult::Sent => Outcome::Reply(Reply::FragmentAck),
                FragmentResult::Refused | FragmentResult::Overflow { .. } => {
                    Outcome::Reply(Reply::FragmentNack)
                }
            }
        }
        Command::Domain => {
            let (load, domain) = ctx.hub.freest_listener(ctx.settings);
            // Load balancing must answer: with Redis away, this node's freest listener.
            match ctx
                .hub
                .cluster_ask_freest(ctx.me, (load, domain.clone()), ctx.now)
            {
                Asked::Later(ticket) => Outcome::Later(ticket),
                Asked::Alone | Asked::Unavailable => Outcome::Reply(Reply::Domain(domain)),
            }
        }
        Command::Ping => Outcome::Reply(Reply::Pong),
        Command::Pong => Outcome::Done,
        Command::Quit => Outcome::Quit,
        Command::Status => {
            let local = status_json(
                ctx.hub,
                ctx.settings,
                ctx.stats,
                ctx.started,
                ctx.control_connections,
                ctx.now,
            );
            // A health check must answer: with Redis away, this node's figures alone.
            match ctx.hub.cluster_ask_status(ctx.me, local.clone(), ctx.now) {
                Asked::Later(ticket) => Outcome::Later(ticket),
                Asked::Alone | Asked::Unavailable => Outcome::Reply(Reply::Status(local)),
            }
        }
        Command::ToUser {
            confirm,
            binary,
            user,
            message,
        } => {
            let message = Message {
                binary,
                payload: message,
            };
            let reached = ctx.hub.to_user(user, message, ctx.settings, ctx.stats) as u64;
            if !confirm {
                // The user's connections on the other nodes too.
                ctx.hub.cluster_send_to(Subject::User(user), message);
                return Ok(Outcome::Done);
            }
            let question = Question::ToUser {
                user,
                binary: message.binary,
                message: message.payload,
            };
            match ctx.hub.cluster_ask(ctx.me, question, reached, ctx.now) {
                Asked::Alone => Outcome::Reply(Reply::Count(reached)),
                asked => asked_outcome(asked),
            }
        }
        Command::UserOnline { user } => {
            let here = ctx.hub.user_connections(user) as u64;
            let question = Question::UserOnline { user };
            match ctx.hub.cluster_ask(ctx.me, question, here, ctx.now) {
                Asked::Alone => Outcome::Reply(Reply::Count(here)),
                asked => asked_outcome(asked),
            }
        }
        Command::UserTokens { user, page } => {
            let local = ctx.hub.user_tokens(user, &page, ctx.settings.max_list_page);
            cluster_page(ctx, ListKind::UserTokens, user, &page, local)
        }
        Command::OnlineUsers { page } => {
            let local = ctx.hub.online_users(&page, ctx.settings.max_list_page);
            cluster_page(ctx, ListKind::OnlineUsers, "", &page, local)
        }
        Command::Kick {
            target,
            code,
            reason,
        } => {
            let (closed, question) = match target {
                Target::Token(token) => (
                    ctx.hub
                        .kick_token(&token, code, reason, ctx.settings, ctx.now),
                    Question::KickToken {
                        token,
                        code,
                        reason,
                    },
                ),
                Target::User(user) => (
                    ctx.hub.kick_user(user, code, reason, ctx.settings, ctx.now),
                    Question::KickUser { user, code, reason },
                ),
            };
            let closed = closed as u64;
            match ctx.hub.cluster_ask(ctx.me, question, closed, ctx.now) {
                Asked::Alone => Outcome::Reply(Reply::Count(closed)),
                asked => asked_outcome(asked),
            }
        }
        Command::Subscribe {
            target,
            topic,
            options,
        } => {
            command.check_topic_len(ctx.settings.topics.max_name_length)?;
            let options = JoinOptions::parse(command_byte, options, ctx.settings.wamp.max_depth)?;
            let (subscribed, subject) = match target {
                Target::Token(token) => (
                    ctx.hub.subscribe_token(
                        &token,
                        topic.as_str(),
                        options,
                        ctx.settings,
                        ctx.stats,
                    ),
                    Subject::Token(token),
                ),
                Target::User(user) => (
                    ctx.hub
                        .subscribe_user(user, topic.as_str(), options, ctx.settings, ctx.stats),
                    Subject::User(user),
                ),
            };
            let question = Question::Subscribe {
                target: subject,
                topic: topic.as_str(),
                options,
            };
            match ctx
                .hub
                .cluster_ask_subscribe(ctx.me, question, subscribed, ctx.now)
            {
                Asked::Alone => match subscribed {
                    Ok(count) => Outcome::Reply(Reply::Count(count as u64)),
                    Err(refusal) => Outcome::Reply(Reply::Refused(refusal)),
                },
                asked => asked_outcome(asked),
            }
        }
        Command::Unsubscribe { target, topic } => {
            command.check_topic_len(ctx.settings.topics.max_name_length)?;
            let (left, subject) = match target {
                Target::Token(token) => (
                    ctx.hub.unsubscribe_token(&token, topic.as_str()),
                    Subject::Token(token),
                ),
                Target::User(user) => (
                    ctx.hub.unsubscribe_user(user, topic.as_str()),
                    Subject::User(user),
                ),
            };
            let question = Question::Unsubscribe {
                target: subject,
                topic: topic.as_str(),
            };
            let left = left as u64;
            match ctx.hub.cluster_ask(ctx.me, question, left, ctx.now) {
                Asked::Alone => Outcome::Reply(Reply::Count(left)),
                asked => asked_outcome(asked),
            }
        }
        Command::Publish {
            binary,
            topic,
            message,
            options,
        } => {
            command.check_topic_len(ctx.settings.topics.max_name_length)?;
            match publish_to_topic(ctx, command.command_byte(), topic, binary, message, options)? {
                Published::Now(_) | Published::Unpositioned => Outcome::Done,
                Published::Later(ticket) => Outcome::Hold(ticket),
            }
        }
        Command::PublishAt {
            binary,
            topic,
            message,
            options,
        } => {
            command.check_topic_len(ctx.settings.topics.max_name_length)?;
            let byte = command.command_byte();
            match publish_to_topic(ctx, byte, topic, binary, message, options)? {
                Published::Now(position) => Outcome::Reply(Reply::Position(position)),
                Published::Later(ticket) => Outcome::LaterInOrder(ticket),
                // Delivered on this node only, without a position (README, "Missed
                // messages"): the backend learns that it has none.
                Published::Unpositioned => {
                    Outcome::Reply(Reply::Refused(Refusal::ClusterUnavailable))
                }
            }
        }
        Command::Position { topic } => {
            command.check_topic_len(ctx.settings.topics.max_name_length)?;
            if ctx.hub.cluster_keeps_history(topic.as_str(), ctx.settings) {
                // Redis has the position; with Redis away, this node's mirror may know it.
                return Ok(
                    match ctx.hub.cluster_history_position(
                        ctx.me,
                        topic.as_str(),
                        ctx.settings,
                        ctx.now,
                    ) {
                        Asked::Later(ticket) => Outcome::Later(ticket),
                        Asked::Alone | Asked::Unavailable => {
                            match ctx.hub.mirrored_position(topic.as_str()) {
                                Some(position) => Outcome::Reply(Reply::Position(Some(position))),
                                None => Outcome::Reply(Reply::Refused(Refusal::ClusterUnavailable)),
                            }
                        }
                    },
                );
            }
            let position = ctx
                .hub
                .history_position(topic.as_str(), ctx.settings, ctx.now);
            Outcome::Reply(Reply::Position(position))
        }
        Command::Subscribers { topic, page } => {
            command.check_topic_len(ctx.settings.topics.max_name_length)?;
            let max = ctx.settings.max_list_page;
            let local = ctx.hub.subscribers(topic.as_str(), &page, max);
            cluster_page(ctx, ListKind::Subscribers, topic.as_str(), &page, local)
        }
        Command::SubscriberCount { topic } => {
            command.check_topic_len(ctx.settings.topics.max_name_length)?;
            let (users, connections) = ctx.hub.subscriber_count(topic.as_str());
            let max_names = ctx.settings.cluster.max_count_users;
            match ctx
                .hub
                .cluster_ask_topic_count(ctx.me, topic.as_str(), max_names, ctx.now)
            {
                Asked::Alone => Outcome::Reply(Reply::TopicCount {
                    users: users as u64,
                    connections: connections as u64,
                }),
                asked => asked_outcome(asked),
            }
        }
        Command::Topics { page } => {
            let local = ctx.hub.topics(&page, ctx.settings.max_list_page);
            cluster_page(ctx, ListKind::Topics, "", &page, local)
        }
        Command::Listen { group, kinds } => {
            ctx.hub.listen(ctx.me, group, kinds);
            Outcome::Done
        }
        Command::Authorizer => {
            ctx.hub.register_authorizer(ctx.me);
            Outcome::Done
        }
        Command::Authorize { id, decision } => {
            command.check_topic_len(ctx.settings.topics.max_name_length)?;
            if let Decision::Allow { user: None, .. } = decision
                && ctx.settings.auth == AuthMode::Authorizer
            {
                return Err(ControlError::AllowWithoutUser { id });
            }
            ctx.hub
                .decide(id, &decision, ctx.settings, ctx.stats, ctx.now);
            Outcome::Done
        }
        Command::Wamp { message } => {
            if ctx.settings.wamp.realms.is_empty() {
                return Err(ControlError::BadWampMessage {
                    detail: "WAMP is off ([wamp] realms is empty)".to_owned(),
                });
            }
            let message = Serializer::Json
                .decode(message, ctx.settings.wamp.max_depth)
                .map_err(|error| ControlError::BadWampMessage {
                    detail: error.to_string(),
                })?;
            ctx.hub.wamp_from_backend(ctx.me, message, ctx.now);
            Outcome::Done
        }
        // With WAMP off there is no session, so nothing to drop: `#0`, not an error (the
        // backend may flush after any permission change without knowing the config).
        Command::FlushAuthorizations { authid } => {
            let dropped = ctx.hub.wamp_flush_authorizations(authid);
            Outcome::Reply(Reply::Count(dropped as u64))
        }
    })
}

fn data_opcode(binary: bool) -> OpCode {
    MessageKind::from_binary(binary).opcode()
}

/// A page of `list` for the whole cluster: every node's page after the same cursor,
/// merged; this node's alone without other nodes.
fn cluster_page(
    ctx: &mut Backend<'_>,
    list: ListKind,
    subject: &str,
    page: &PageRequest<'_>,
    local: Page,
) -> Outcome {
    if !ctx.hub.clustered() {
        return Outcome::Reply(Reply::Page(local));
    }
    let limit = page.limit_within(ctx.settings.max_list_page);
    let question = Question::Page {
        list,
        subject,
        cursor: page.cursor,
        limit: limit as u64,
    };
    match ctx
        .hub
        .cluster_ask_page(ctx.me, question, local.clone(), limit, ctx.now)
    {
        Asked::Alone => Outcome::Reply(Reply::Page(local)),
        asked => asked_outcome(asked),
    }
}

/// A cluster-wide question's outcome when other nodes are involved.
fn asked_outcome(asked: Asked) -> Outcome {
    match asked {
        Asked::Later(ticket) => Outcome::Later(ticket),
        Asked::Unavailable | Asked::Alone => {
            Outcome::Reply(Reply::Refused(Refusal::ClusterUnavailable))
        }
    }
}

/// This node's status, the `t` reply's JSON (what another node's `t` asks for too).
pub fn status_json(
    hub: &Hub,
    settings: &Settings,
    stats: &Stats,
    started: Instant,
    control_connections: usize,
    now: Instant,
) -> String {
    let listeners: Vec<serde_json::Value> = hub
        .listener_loads()
        .enumerate()
        .map(|(index, (name, connections))| {
            serde_json::json!({
                "endpoint": name,
                "domain": settings.domains.get(index),
                "connections": connections,
            })
        })
        .collect();
    let figures = hub.figures();
    let mut status = serde_json::json!({
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": now.saturating_duration_since(started).as_secs(),
        "connections": figures.connections,
        "lingering": figures.lingering,
        "listeners": listeners,
        "control_connections": control_connections,
        "messages_in": stats.messages_in,
        "messages_out": stats.messages_out,
        "bytes_in": stats.bytes_in,
        "bytes_out": stats.bytes_out,
        "control_frames": stats.control_frames,
        "connections_accepted": stats.connections_accepted,
        "handshakes_refused": stats.handshakes_refused,
        "refused_blocked": stats.refused_blocked,
        "refused_rate_limited": stats.refused_rate_limited,
        "tracked_addresses": figures.tracked_addresses,
        "history_publications": figures.history_publications,
        "history_bytes": figures.history_bytes,
        "history_topics": figures.history_topics,
        "protocol_errors": stats.protocol_errors,
        "slow_consumers_dropped": stats.slow_consumers_dropped,
        "users_online": figures.users_online,
        "topics": figures.topics,
        "user_subscriptions": figures.user_subscriptions,
        "event_listeners": figures.event_listeners,
        "event_listeners_dropped": figures.event_listeners_dropped,
        "authorizers": figures.authorizers,
        "authorizations_waiting": figures.authorizations_waiting,
        "wamp_sessions": figures.wamp.sessions,
        "wamp_subscriptions": figures.wamp.subscriptions,
        "wamp_registrations": figures.wamp.registrations,
        "wamp_pending_calls": figures.wamp.pending_calls,
        "wamp_retained_events": figures.wamp.retained_events,
        "wamp_retained_bytes": figures.wamp.retained_bytes,
        "wamp_authorizations_waiting": figures.wamp.authorizations_waiting,
        "wamp_cached_authorizations": figures.wamp.cached_authorizations,
    });
    let cluster = hub.cluster_figures(now);
    if let (Some(cluster), Some(object)) = (cluster, status.as_object_mut()) {
        object.insert("cluster_node".into(), cluster.node_id.into());
        object.insert("cluster_nodes".into(), (cluster.nodes + 1).into());
        object.insert("cluster_redis".into(), cluster.redis.name().into());
        object.insert("cluster_sent".into(), cluster.sent.into());
        object.insert("cluster_received".into(), cluster.received.into());
        object.insert("cluster_dropped".into(), cluster.dropped.into());
        object.insert("cluster_refused".into(), cluster.refused.into());
        let wanted: Vec<&str> = cluster
            .events_wanted
            .iter()
            .map(|kind| kind.name())
            .collect();
        object.insert("cluster_events_wanted".into(), wanted.into());
        object.insert(
            "cluster_authorizer_nodes".into(),
            cluster.authorizer_nodes.into(),
        );
        object.insert("cluster_claims".into(), cluster.claims.into());
        object.insert(
            "cluster_claims_skipped".into(),
            cluster.claims_skipped.into(),
        );
        object.insert(
            "cluster_history_fetches".into(),
            cluster.history_fetches.into(),
        );
        object.insert(
            "cluster_history_unpositioned".into(),
            cluster.history_unpositioned.into(),
        );
    }
    status.to_string()
}

/// The WAMP PUBLISH options of `x`/`X` (empty: none) as the router takes them, checked
/// as a session's PUBLISH options are: a JSON object within `[wamp] max_depth`, each known
/// option of its type. Shared with the cluster, whose nodes get the options as sent.
pub(crate) fn publish_options(
    command: u8,
    options: &[u8],
    settings: &Settings,
) -> Result<Dict, ControlError> {
    if options.is_empty() {
        return Ok(Dict::new());
    }
    let refused = |detail: String| ControlError::BadPublishOptions { command, detail };
    let value = crate::wamp::json::decode(options, settings.wamp.max_depth)
        .map_err(|error| refused(error.to_string()))?;
    let Value::Dict(options) = value else {
        return Err(refused("not a JSON object".to_owned()));
    };
    PublishOptions::parse(&options).map_err(|violation| refused(violation.to_string()))?;
    Ok(options)
}

/// What became of a publication.
enum Published {
    /// Delivered, with its position when the topic keeps a history on this node.
    Now(Option<Position>),
    /// Handed to Redis, which positions it (`[cluster]`, a topic with history): delivered
    /// on every node once it comes back on the channel; its position under this ticket.
    Later(Ticket),
    /// Redis could not position it: delivered on this node only, without a position.
    Unpositioned,
}

/// `x`, `X` and `Y`: the message to the topic's plain subscribers (batched with the
/// publications around it unless the topic keeps a history, which shares its frame, or WAMP
/// options come with it), to the other nodes, and to the backend realm's WAMP subscribers.
/// The publication's position when the topic keeps a history.
fn publish_to_topic(
    ctx: &mut Backend<'_>,
    command: u8,
    topic: Topic<'_>,
    binary: bool,
    message: &[u8],
    options: &[u8],
) -> Result<Published, ControlError> {
    let wamp_options = publish_options(command, options, ctx.settings)?;
    let audience = BatchFor::Topic(topic.as_str());
    if ctx.hub.cluster_keeps_history(topic.as_str(), ctx.settings) {
        // After the batch before it, in order; Redis numbers it, and every node (this one
        // included) delivers it when it comes back positioned, WAMP subscribers too. (Without
        // Redis it is delivered here at once: what is staged goes first.)
        ctx.settle();
        let frame = shared_frame(true, data_opcode(binary), message);
        let published = ctx.hub.cluster_publish_kept(
            Some(ctx.me),
            topic.as_str(),
            &frame,
            options,
            ctx.settings,
            ctx.stats,
            ctx.now,
        );
        if let Some(ticket) = published {
            return Ok(Published::Later(ticket));
        }
        ctx.hub.wamp_publish_from_plain(
            topic.as_str(),
            binary,
            message,
            &wamp_options,
            None,
            ctx.settings,
            ctx.now,
        );
        return Ok(Published::Unpositioned);
    }
    let position = if options.is_empty() && !ctx.hub.keeps_history(topic.as_str(), ctx.settings) {
        ctx.queue_batched(audience, binary, message);
        None
    } else {
        // One publication of its own, after the batch before it: in order.
        ctx.settle();
        let frame = shared_frame(true, data_opcode(binary), message);
        let position = ctx
            .hub
            .publish(topic.as_str(), &frame, 1, ctx.settings, ctx.stats);
        ctx.hub.cluster_forward_with(audience, &frame, 1, options);
        position
    };
    // One namespace: the backend realm's WAMP subscribers hear it as an EVENT.
    ctx.hub.wamp_publish_from_plain(
        topic.as_str(),
        binary,
        message,
        &wamp_options,
        position.as_ref(),
        ctx.settings,
        ctx.now,
    );
    Ok(Published::Now(position))
}
