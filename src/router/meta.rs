//! The WAMP meta API (WAMP v2 advanced, "Session Meta API", "Subscription Meta API",
//! "Registration Meta API"), with Crossbar's argument and result shapes
//! (`crossbar/router/service.py` `RouterServiceAgent`), so listeners written for Crossbar
//! work unchanged:
//!
//! | procedure                              | arguments                          | result            |
//! |----------------------------------------|------------------------------------|-------------------|
//! | `wamp.session.count`                   | `[filter_authroles]`               | `[n]`             |
//! | `wamp.session.list`                    | `[filter_authroles]`               | `[[id..]]`        |
//! | `wamp.session.get`                     | `[session_id]`                     | `[details]`       |
//! | `wamp.session.kill`                    | `[session_id]`, `{reason, message}`| `[null]`          |
//! | `wamp.session.kill_by_authid`          | `[authid]`, `{reason, message}`    | `[[id..]]`        |
//! | `wamp.session.kill_by_authrole`        | `[authrole]`, `{reason, message}`  | `[[id..]]`        |
//! | `wamp.subscription.list`               | `[session_id]`                     | `[{exact, prefix, wildcard}]` |
//! | `wamp.subscription.lookup`             | `[topic, {match}]`                 | `[id \| null]`    |
//! | `wamp.subscription.match`              | `[topic]`                          | `[[id..] \| null]`|
//! | `wamp.subscription.get`                | `[id]`                             | `[{id, created, uri, match}]` |
//! | `wamp.subscription.list_subscribers`   | `[id]`                             | `[[session..]]`   |
//! | `wamp.subscription.count_subscribers`  | `[id]`                             | `[n]`             |
//! | `wamp.subscription.get_events`         | `[id, limit]` (limit 10)           | `[[event..]]`     |
//! | `wamp.registration.list`/`lookup`/`match`/`get`/`list_callees`/`count_callees` | likewise | `get` adds `invoke` |
//!
//! `get_events` answers from the topic history (`[history]`, kept by the hub): the last
//! `limit` publications of an exact subscription's topic, newest first (Crossbar
//! `realmstore.py`: "at most limit events in reverse chronological order"), each as
//! Crossbar's event store has it (`time_ns`, `realm`, `session_id`, `authid`, `authrole`,
//! `publication`, `topic`, `args`, `kwargs`; the publisher's fields only when its EVENTs
//! disclosed it, `publication` null for a plain publication no WAMP session heard) plus
//! `_wson_position`. A pattern subscription, or a topic without history, is
//! `wamp.error.history_unavailable` as in Crossbar; events the caller could not have
//! received (PUBLISH's exclude/eligible options) are left out.
//!
//! Arguments may come positionally or as keyword arguments of the same names. Backend
//! sessions (`trusted`) are hidden from the session procedures and events as Crossbar hides
//! its internal sessions (`is_restricted_session`); callers other than the backend do not
//! see `wamp.` and `crossbar.` subscriptions and registrations (`is_protected_uri`).
//!
//! Events: `wamp.session.on_join [details]`, `wamp.session.on_leave [session_id]` (Crossbar
//! `session.py` publishes the id alone; the spec lists authid and authrole too),
//! `wamp.subscription.on_create [session_id, {id, created, uri, match}]`,
//! `on_subscribe`/`on_unsubscribe`/`on_delete [session_id, subscription_id]`, and the same
//! for registrations (`on_create` details add `invoke`). They are ordinary publications of
//! the realm, from the router: as in Crossbar, a session that caused one receives it if it
//! subscribed to it (its own on_join and on_leave excepted: it cannot be subscribed yet, and
//! it is gone).

use crate::router::KeptEvent;
use crate::router::broker::{POSITION_DETAIL, Subscription, position_value};
use crate::router::error::Refusal;
use crate::router::options::PublishOptions;
use crate::router::realm::{Ctx, Publisher, Realm};
use crate::router::session::Link;
use crate::router::uri::{self, Match};
use crate::wamp::{Dict, Message, Payload, Value};

const META_PROCEDURES: [&str; 19] = [
    "wamp.session.count",
    "wamp.session.list",
    "wamp.session.get",
    "wamp.session.kill",
    "wamp.session.kill_by_authid",
    "wamp.session.kill_by_authrole",
    "wamp.subscription.list",
    "wamp.subscription.lookup",
    "wamp.subscription.match",
    "wamp.subscription.get",
    "wamp.subscription.list_subscribers",
    "wamp.subscription.count_subscribers",
    "wamp.subscription.get_events",
    "wamp.registration.list",
    "wamp.registration.lookup",
    "wamp.registration.match",
    "wamp.registration.get",
    "wamp.registration.list_callees",
    "wamp.registration.count_callees",
];

/// `wamp.subscription.get_events` without a `limit` (Crossbar's default).
const DEFAULT_EVENTS_LIMIT: usize = 10;

/// The reason of GOODBYE to a killed session unless the caller gives one (WAMP v2,
/// "wamp.session.kill": "the reason defaults to `wamp.close.killed`").
pub const KILLED: &str = "wamp.close.killed";

/// Argument `index`, or keyword argument `name`.
fn argument<'a>(payload: &'a Payload, index: usize, name: &str) -> Option<&'a Value> {
    payload
        .args
        .get(index)
        .or_else(|| payload.kwargs.get(name))
        .filter(|value| !matches!(value, Value::Null))
}

fn invalid(procedure: &'static str, detail: &'static str) -> Refusal {
    Refusal::InvalidArgument { procedure, detail }
}

fn id_argument(payload: &Payload, name: &str, procedure: &'static str) -> Result<u64, Refusal> {
    argument(payload, 0, name)
        .and_then(|value| value.as_u64().ok())
        .ok_or_else(|| invalid(procedure, "the first argument must be an id"))
}

fn string_argument<'a>(
    payload: &'a Payload,
    index: usize,
    name: &str,
    procedure: &'static str,
) -> Result<&'a str, Refusal> {
    argument(payload, index, name)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(procedure, "a string argument is missing"))
}

fn ids(ids: impl Iterator<Item = u64>) -> Value {
    Value::List(ids.map(Value::from).collect())
}

fn by_policy(entries: impl Iterator<Item = (Match, u64)>) -> Value {
    let mut exact = Vec::new();
    let mut prefix = Vec::new();
    let mut wildcard = Vec::new();
    for (policy, id) in entries {
        match policy {
            Match::Exact => exact.push(Value::from(id)),
            Match::Prefix => prefix.push(Value::from(id)),
            Match::Wildcard => wildcard.push(Value::from(id)),
        }
    }
    let mut dict = Dict::new();
    dict.insert("exact", Value::List(exact));
    dict.insert("prefix", Value::List(prefix));
    dict.insert("wildcard", Value::List(wildcard));
    Value::Dict(dict)
}

fn id_or_null(id: Option<u64>) -> Value {
    id.map_or(Value::Null, Value::from)
}

impl Realm {
    pub(super) fn is_meta_procedure(procedure: &str) -> bool {
        META_PROCEDURES.contains(&procedure)
    }

    /// Publishes a meta event.
    pub(super) fn meta_event(&mut self, ctx: &mut Ctx<'_>, topic: &'static str, args: Vec<Value>) {
        let payload = Payload {
            args,
            kwargs: Dict::new(),
        };
        let publication = ctx.global_ids.next_id();
        self.publish(
            ctx,
            publication,
            Publisher::Router,
            topic,
            &PublishOptions::default(),
            payload,
            None,
        );
    }

    /// `wamp.session.get`, `on_join` (Crossbar's `SessionDetails.marshal()` keys).
    pub(super) fn session_details(&self, id: u64) -> Option<Dict> {
        let session = self.sessions.get(&id)?;
        let mut details = Dict::new();
        details.insert("realm", Value::from(self.name.as_str()));
        details.insert("session", Value::from(id));
        details.insert("authid", Value::from(&*session.authid));
        details.insert("authrole", Value::from(&*session.authrole));
        details.insert("authmethod", Value::from(session.authmethod));
        details.insert("authprovider", Value::from(session.authprovider));
        details.insert("authextra", Value::Dict(session.authextra.clone()));
        details.insert(
            "serializer",
            session.serializer_name().map_or(Value::Null, Value::from),
        );
        details.insert("transport", Value::Null);
        details.insert("resumed", Value::Bool(false));
        details.insert("resumable", Value::Bool(false));
        details.insert("resume_token", Value::Null);
        Some(details)
    }

    pub(super) fn subscription_details(&self, id: u64) -> Option<Dict> {
        let subscription = self.broker.get(id)?;
        let mut details = Dict::new();
        details.insert("id", Value::from(id));
        details.insert("created", Value::from(subscription.created.as_str()));
        details.insert("uri", Value::from(subscription.uri.as_str()));
        details.insert("match", Value::from(subscription.policy.name()));
        Some(details)
    }

    pub(super) fn registration_details(&self, id: u64) -> Option<Dict> {
        let registration = self.dealer.get(id)?;
        let mut details = Dict::new();
        details.insert("id", Value::from(id));
        details.insert("created", Value::from(registration.created.as_str()));
        details.insert("uri", Value::from(registration.uri.as_str()));
        details.insert("match", Value::from(registration.policy.name()));
        details.insert("invoke", Value::from(registration.invoke.name()));
        Some(details)
    }

    /// Subscription `id`, unless its topic is protected and the caller not `trusted`.
    fn shown_subscription(&self, id: u64, trusted: bool) -> Result<&Subscription, Refusal> {
        let subscription = self
            .broker
            .get(id)
            .ok_or(Refusal::NoSuchSubscription { subscription: id })?;
        if !trusted && uri::is_protected(&subscription.uri) {
            return Err(Refusal::NotAuthorizedProtected {
                uri: subscription.uri.clone(),
            });
        }
        Ok(subscription)
    }

    /// A visible session (not a backend one, nor another node's router).
    fn visible(&self, id: u64) -> bool {
        self.sessions.get(&id).is_some_and(|s| !s.is_hidden())
    }

    /// Runs meta procedure `procedure` for session `caller`: `None` when it is not one.
    pub(super) fn meta_call(
        &mut self,
        ctx: &mut Ctx<'_>,
        caller: u64,
        procedure: &str,
        payload: &Payload,
    ) -> Option<Result<Vec<Value>, Refusal>> {
        let &name = META_PROCEDURES.iter().find(|&&name| name == procedure)?;
        let trusted = self.sessions.get(&caller).is_some_and(|s| s.is_backend());
        let shown = |uri: &str| trusted || !uri::is_protected(uri);
        let result = match name {
            "wamp.session.count" | "wamp.session.list" => {
                let filter = match argument(payload, 0, "filter_authroles") {
                    None => None,
                    Some(Value::List(roles)) => {
                        Some(roles.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                    }
                    Some(_) => {
                        return Some(Err(invalid(name, "filter_authroles must be a list")));
                    }
                };
                let mut sessions = self
                    .sessions
                    .values()
                    .filter(|s| !s.is_hidden())
                    .filter(|s| filter.as_ref().is_none_or(|f| f.contains(&&*s.authrole)))
                    .map(|s| s.id)
                    .collect::<Vec<_>>();
                sessions.sort_unstable();
                if name == "wamp.session.count" {
                    Ok(vec![Value::from(
                        u64::try_from(sessions.len()).unwrap_or(u64::MAX),
                    )])
                } else {
                    Ok(vec![ids(sessions.into_iter())])
                }
            }
            "wamp.session.get" => id_argument(payload, "session_id", name).and_then(|id| {
                self.session_details(id)
                    .filter(|_| self.visible(id))
                    .map(|details| vec![Value::Dict(details)])
                    .ok_or(Refusal::NoSuchSession { session: id })
            }),
            "wamp.session.kill" => id_argument(payload, "session_id", name).and_then(|id| {
                // "Specifying the caller's own session will result in a
                // `wamp.error.no_such_session` since no _other_ session with that ID exists."
                if id == caller || !self.visible(id) {
                    return Err(Refusal::NoSuchSession { session: id });
                }
                let goodbye = goodbye(payload)?;
                self.kill(ctx, id, goodbye);
                Ok(vec![Value::Null])
            }),
            "wamp.session.kill_by_authid" | "wamp.session.kill_by_authrole" => {
                let (key, by_authid) = if name == "wamp.session.kill_by_authid" {
                    ("authid", true)
                } else {
                    ("authrole", false)
                };
                string_argument(payload, 0, key, name).and_then(|wanted| {
                    let goodbye = goodbye(payload)?;
                    let mut victims = self
                        .sessions
                        .values()
                        .filter(|s| !s.is_hidden() && s.id != caller)
                        .filter(|s| {
                            if by_authid {
                                &*s.authid == wanted
                            } else {
                                &*s.authrole == wanted
                            }
                        })
                        .map(|s| s.id)
                        .collect::<Vec<_>>();
                    victims.sort_unstable();
                    for &victim in &victims {
                        self.kill(ctx, victim, goodbye.clone());
                    }
                    Ok(vec![ids(victims.into_iter())])
                })
            }
            "wamp.subscription.list" | "wamp.registration.list" => {
                let subscriptions = name == "wamp.subscription.list";
                match argument(payload, 0, "session_id") {
                    Some(value) => match value.as_u64() {
                        Ok(id) if self.visible(id) => {
                            let session = self.sessions.get(&id);
                            let entries = session
                                .map(|s| {
                                    if subscriptions {
                                        s.subscriptions
                                            .iter()
                                            .filter_map(|&sid| self.broker.get(sid))
                                            .map(|sub| (sub.policy, sub.id))
                                            .collect::<Vec<_>>()
                                    } else {
                                        s.registrations
                                            .iter()
                                            .filter_map(|&rid| self.dealer.get(rid))
                                            .map(|reg| (reg.policy, reg.id))
                                            .collect::<Vec<_>>()
                                    }
                                })
                                .unwrap_or_default();
                            Ok(vec![by_policy(entries.into_iter())])
                        }
                        Ok(id) => Err(Refusal::NoSuchSession { session: id }),
                        Err(()) => Err(invalid(name, "session_id must be an id")),
                    },
                    None if subscriptions => {
                        let mut entries = self
                            .broker
                            .iter()
                            .filter(|s| shown(&s.uri))
                            .map(|s| (s.policy, s.id))
                            .collect::<Vec<_>>();
                        entries.sort_unstable_by_key(|&(_, id)| id);
                        Ok(vec![by_policy(entries.into_iter())])
                    }
                    None => {
                        let mut entries = self
                            .dealer
                            .iter()
                            .filter(|r| shown(&r.uri))
                            .map(|r| (r.policy, r.id))
                            .collect::<Vec<_>>();
                        entries.sort_unstable_by_key(|&(_, id)| id);
                        Ok(vec![by_policy(entries.into_iter())])
                    }
                }
            }
            "wamp.subscription.lookup" | "wamp.registration.lookup" => string_argument(
                payload,
                0,
                if name == "wamp.subscription.lookup" {
                    "topic"
                } else {
                    "procedure"
                },
                name,
            )
            .and_then(|uri| {
                let policy = match argument(payload, 1, "options") {
                    None => Ok(Match::Exact),
                    Some(Value::Dict(options)) => match options.str("match") {
                        None => Ok(Match::Exact),
                        Some(Ok(policy)) => Match::parse(policy)
                            .ok_or_else(|| invalid(name, "unknown match policy")),
                        Some(Err(())) => Err(invalid(name, "match must be a string")),
                    },
                    Some(_) => Err(invalid(name, "options must be a dict")),
                }?;
                let found = if name == "wamp.subscription.lookup" {
                    self.broker
                        .lookup(uri, policy)
                        .map(|s| (s.id, s.uri.as_str()))
                } else {
                    self.dealer
                        .lookup(uri, policy)
                        .map(|r| (r.id, r.uri.as_str()))
                };
                Ok(vec![id_or_null(
                    found.filter(|&(_, uri)| shown(uri)).map(|(id, _)| id),
                )])
            }),
            "wamp.subscription.match" => string_argument(payload, 0, "topic", name).map(|topic| {
                let mut matches = Vec::new();
                self.broker.for_each_match(topic, |s| {
                    if shown(&s.uri) {
                        matches.push(s.id);
                    }
                });
                if matches.is_empty() {
                    vec![Value::Null]
                } else {
                    vec![ids(matches.into_iter())]
                }
            }),
            "wamp.registration.match" => {
                string_argument(payload, 0, "procedure", name).map(|procedure| {
                    let found = self
                        .dealer
                        .best_match(procedure)
                        .filter(|r| shown(&r.uri))
                        .map(|r| r.id);
                    vec![id_or_null(found)]
                })
            }
            "wamp.subscription.get"
            | "wamp.subscription.list_subscribers"
            | "wamp.subscription.count_subscribers" => {
                id_argument(payload, "subscription_id", name).and_then(|id| {
                    let subscription = self.shown_subscription(id, trusted)?;
                    Ok(vec![match name {
                        "wamp.subscription.get" => self
                            .subscription_details(id)
                            .map_or(Value::Null, Value::Dict),
                        "wamp.subscription.list_subscribers" => {
                            let mut sessions = subscription.subscribers().collect::<Vec<_>>();
                            sessions.sort_unstable();
                            ids(sessions.into_iter())
                        }
                        _ => Value::from(
                            u64::try_from(subscription.subscriber_count()).unwrap_or(u64::MAX),
                        ),
                    }])
                })
            }
            "wamp.subscription.get_events" => {
                id_argument(payload, "subscription_id", name).and_then(|id| {
                    let subscription = self.shown_subscription(id, trusted)?;
                    // Crossbar `service.py` `subscription_get_events(.., limit=10, ..)`.
                    let limit = match argument(payload, 1, "limit") {
                        None => DEFAULT_EVENTS_LIMIT,
                        Some(value) => value
                            .as_u64()
                            .ok()
                            .and_then(|limit| usize::try_from(limit).ok())
                            .ok_or_else(|| invalid(name, "limit must be a non-negative integer"))?,
                    };
                    if subscription.policy != Match::Exact || !ctx.backend_realm {
                        return Err(Refusal::HistoryUnavailable);
                    }
                    let topic = subscription.uri.clone();
                    let events = ctx
                        .history
                        .recent(&topic, limit)
                        .ok_or(Refusal::HistoryUnavailable)?;
                    let caller_session = self.sessions.get(&caller);
                    let admitted = |event: &KeptEvent| {
                        trusted
                            || event.audience.as_ref().is_none_or(|audience| {
                                caller_session.is_some_and(|s| {
                                    audience.admits(caller, &s.authid, &s.authrole)
                                })
                            })
                    };
                    let events = events
                        .iter()
                        .filter(|event| admitted(event))
                        .map(|event| Value::Dict(self.event_record(&topic, event)))
                        .collect();
                    Ok(vec![Value::List(events)])
                })
            }
            "wamp.registration.get"
            | "wamp.registration.list_callees"
            | "wamp.registration.count_callees" => id_argument(payload, "registration_id", name)
                .and_then(|id| {
                    let registration = self
                        .dealer
                        .get(id)
                        .ok_or(Refusal::NoSuchRegistration { registration: id })?;
                    if !shown(&registration.uri) {
                        return Err(Refusal::NotAuthorizedProtected {
                            uri: registration.uri.clone(),
                        });
                    }
                    // This node's callees: another node's callees are its own to list.
                    let callees =
                        registration.callees.iter().copied().filter(|callee| {
                            self.sessions.get(callee).is_none_or(|s| !s.is_node())
                        });
                    Ok(vec![match name {
                        "wamp.registration.get" => self
                            .registration_details(id)
                            .map_or(Value::Null, Value::Dict),
                        "wamp.registration.list_callees" => ids(callees),
                        _ => Value::from(u64::try_from(callees.count()).unwrap_or(u64::MAX)),
                    }])
                }),
            _ => return None,
        };
        Some(result)
    }

    /// A kept publication as `get_events` lists it (Crossbar `realmstore.py` `store_event`).
    fn event_record(&self, topic: &str, event: &KeptEvent) -> Dict {
        let mut record = Dict::new();
        record.insert("time_ns", Value::from(event.time_ns));
        record.insert("realm", Value::from(self.name.as_str()));
        let publisher = event.publisher.as_ref();
        record.insert(
            "session_id",
            publisher.map_or(Value::Null, |p| Value::from(p.session)),
        );
        record.insert(
            "authid",
            publisher.map_or(Value::Null, |p| Value::from(&*p.authid)),
        );
        record.insert(
            "authrole",
            publisher.map_or(Value::Null, |p| Value::from(&*p.authrole)),
        );
        record.insert("publication", id_or_null(event.publication));
        record.insert("topic", Value::from(topic));
        record.insert("args", Value::List(event.payload.args.clone()));
        record.insert("kwargs", Value::Dict(event.payload.kwargs.clone()));
        record.insert(POSITION_DETAIL, position_value(&event.position));
        record
    }

    /// Sends GOODBYE to client session `id`, which leaves; the router closes its connection.
    fn kill(&mut self, ctx: &mut Ctx<'_>, id: u64, goodbye: Message) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let link = session.link;
        crate::router::realm::send_via(link, goodbye, ctx.out);
        self.leave(ctx, id);
        if let Link::Client { key, .. } | Link::V1 { key } = link {
            ctx.closed.push(key);
        }
    }
}

/// The GOODBYE of `wamp.session.kill*`: keyword arguments `reason` (a URI) and `message`.
fn goodbye(payload: &Payload) -> Result<Message, Refusal> {
    let reason = match payload.kwargs.get("reason") {
        None | Some(Value::Null) => KILLED.to_owned(),
        Some(Value::String(reason)) if uri::check(reason, Match::Exact, false).is_ok() => {
            reason.clone()
        }
        Some(Value::String(reason)) => {
            return Err(Refusal::InvalidUri {
                uri: reason.clone(),
                error: uri::check(reason, Match::Exact, false)
                    .err()
                    .unwrap_or(uri::UriError::EmptyComponent { offset: 0 }),
            });
        }
        Some(_) => {
            return Err(invalid("wamp.session.kill", "reason must be a URI"));
        }
    };
    let mut details = Dict::new();
    if let Some(Value::String(message)) = payload.kwargs.get("message") {
        details.insert("message", Value::from(message.as_str()));
    }
    Ok(Message::Goodbye { details, reason })
}

#[cfg(test)]
mod tests {
    use crate::router::Peer;
    use crate::router::testing::{Harness, Out, config, to};
    use crate::wamp::Message;

    fn result(out: &[Out], key: crate::server::slab::Key) -> String {
        to(out, key).pop().unwrap_or_default()
    }

    fn subscribed(out: &[Out]) -> u64 {
        out.iter()
            .find_map(|out| match out {
                Out::To(_, Message::Subscribed { subscription, .. }) => Some(*subscription),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no SUBSCRIBED in {out:?}"))
    }

    #[test]
    fn join_and_leave_events_in_crossbar_shapes() {
        let mut h = Harness::new(config());
        let (watcher, _) = h.join("watcher");
        h.send(watcher, r#"[32,1,{},"wamp.session.on_join"]"#);
        h.send(watcher, r#"[32,2,{},"wamp.session.on_leave"]"#);
        let (alice, alice_id) = h.join_as(crate::wamp::Serializer::MsgPack, "realm1", "alice");
        let out = h.send(alice, r#"[32,1,{},"t"]"#);
        assert!(to(&out, watcher).is_empty());
        let key = h.connect(crate::wamp::Serializer::Json, "bob");
        let out = h.send(
            key,
            &format!(r#"[1,"realm1",{}]"#, crate::router::testing::HELLO_FEATURES),
        );
        let joined = to(&out, watcher);
        assert_eq!(joined.len(), 1);
        assert!(
            joined[0].contains(r#"{"realm":"realm1","session":"#),
            "{joined:?}"
        );
        assert!(joined[0].contains(r#""authid":"bob","authrole":"user","authmethod":"cookie","authprovider":"static","authextra":{},"serializer":"json","transport":null,"resumed":false,"resumable":false,"resume_token":null}"#), "{joined:?}");
        let out = h.gone(Peer::Client(alice));
        let left = to(&out, watcher);
        assert_eq!(left.len(), 1);
        assert!(
            left[0].ends_with(&format!(",{{}},[{alice_id}]]")),
            "{left:?}"
        );
        // A backend session is invisible to the session meta API.
        let control = h.key();
        let out = h.backend(control, r#"[32,1,{},"u"]"#);
        assert!(to(&out, watcher).is_empty());
    }

    #[test]
    fn subscription_events_follow_the_reply() {
        let mut h = Harness::new(config());
        let (watcher, _) = h.join("watcher");
        for (request, topic) in ["on_create", "on_subscribe", "on_unsubscribe", "on_delete"]
            .iter()
            .enumerate()
        {
            h.send(
                watcher,
                &format!(r#"[32,{},{{}},"wamp.subscription.{topic}"]"#, request + 1),
            );
        }
        let (a, a_id) = h.join("a");
        let out = h.send(a, r#"[32,7,{"match":"prefix"},"com."]"#);
        let [
            Out::To(_, Message::Subscribed { subscription, .. }),
            rest @ ..,
        ] = out.as_slice()
        else {
            panic!("{out:?}");
        };
        let events = to(rest, watcher);
        assert_eq!(events.len(), 2);
        assert!(
            events[0].contains(&format!(r#"[{a_id},{{"id":{subscription},"created":""#)),
            "{events:?}"
        );
        assert!(
            events[0].contains(r#""uri":"com.","match":"prefix"}]"#),
            "{events:?}"
        );
        assert!(events[1].ends_with(&format!(r#"[{a_id},{subscription}]]"#)));
        let out = h.send(a, &format!("[34,8,{subscription}]"));
        let events = to(&out, watcher);
        assert_eq!(events.len(), 2);
        // The watcher's own subscriptions to wamp. topics made no events, and it receives
        // the events a session causes as Crossbar does, its own included.
        let out = h.send(watcher, r#"[32,9,{},"mine"]"#);
        assert_eq!(to(&out, watcher).len(), 3);
        let out = h.gone(Peer::Client(a));
        assert!(to(&out, watcher).is_empty());
    }

    #[test]
    fn registration_events_and_cleanup_on_leave() {
        let mut h = Harness::new(config());
        let (watcher, _) = h.join("watcher");
        for topic in ["on_create", "on_register", "on_unregister", "on_delete"] {
            h.send(
                watcher,
                &format!(r#"[32,1,{{}},"wamp.registration.{topic}"]"#),
            );
        }
        h.send(watcher, r#"[32,1,{},"wamp.session.on_leave"]"#);
        let (a, a_id) = h.join("a");
        let out = h.send(a, r#"[64,1,{"invoke":"roundrobin"},"p"]"#);
        let events = to(&out, watcher);
        assert_eq!(events.len(), 2);
        assert!(
            events[0].contains(r#""uri":"p","match":"exact","invoke":"roundrobin"}]"#),
            "{events:?}"
        );
        let out = h.gone(Peer::Client(a));
        let events = to(&out, watcher);
        assert_eq!(events.len(), 3);
        assert!(events[0].ends_with(&format!("[{a_id}]]")));
        assert!(events[1].contains(&format!("[{a_id},")));
    }

    #[test]
    fn session_procedures() {
        let mut h = Harness::new(config());
        let (a, a_id) = h.join("a");
        let (_b, b_id) = h.join("b");
        let control = h.key();
        h.backend(control, r#"[32,1,{},"x"]"#);
        assert_eq!(
            result(&h.send(a, r#"[48,1,{},"wamp.session.count"]"#), a),
            "[50,1,{},[2]]"
        );
        assert_eq!(
            result(
                &h.send(a, r#"[48,2,{},"wamp.session.count",[["trusted"]]]"#),
                a
            ),
            "[50,2,{},[0]]"
        );
        let mut ids = [a_id, b_id];
        ids.sort();
        assert_eq!(
            result(&h.send(a, r#"[48,3,{},"wamp.session.list"]"#), a),
            format!("[50,3,{{}},[[{},{}]]]", ids[0], ids[1])
        );
        let got = result(
            &h.send(a, &format!(r#"[48,4,{{}},"wamp.session.get",[{b_id}]]"#)),
            a,
        );
        assert!(
            got.starts_with(&format!(
                r#"[50,4,{{}},[{{"realm":"realm1","session":{b_id},"authid":"b""#
            )),
            "{got}"
        );
        assert_eq!(
            result(&h.send(a, r#"[48,5,{},"wamp.session.get",[1]]"#), a),
            r#"[8,48,5,{},"wamp.error.no_such_session",["no session with ID 1 exists on this router"]]"#
        );
        assert_eq!(
            result(
                &h.send(a, r#"[48,6,{},"wamp.session.get",[],{"session_id":"x"}]"#),
                a
            ),
            r#"[8,48,6,{},"wamp.error.invalid_argument",["wamp.session.get: the first argument must be an id"]]"#
        );
    }

    #[test]
    fn kill_says_goodbye_and_closes() {
        let mut h = Harness::new(config());
        let (a, a_id) = h.join("a");
        let (b, b_id) = h.join("b");
        assert!(
            result(
                &h.send(a, &format!(r#"[48,1,{{}},"wamp.session.kill",[{a_id}]]"#)),
                a
            )
            .contains("no_such_session")
        );
        let out = h.send(
            a,
            &format!(
                r#"[48,2,{{}},"wamp.session.kill",[{b_id}],{{"reason":"com.bye","message":"go"}}]"#
            ),
        );
        assert_eq!(to(&out, b), vec![r#"[6,{"message":"go"},"com.bye"]"#]);
        assert_eq!(to(&out, a), vec!["[50,2,{},[null]]"]);
        assert_eq!(
            out.last(),
            Some(&Out::Close(b, 1000, "wamp.close.killed".into()))
        );
        assert!(h.send(b, r#"[32,1,{},"t"]"#).is_empty());
        assert_eq!(h.router.figures().sessions, 1);
        let (c, c_id) = h.join("victim");
        let (d, d_id) = h.join("victim");
        let out = h.send(a, r#"[48,3,{},"wamp.session.kill_by_authid",["victim"]]"#);
        let mut ids = [c_id, d_id];
        ids.sort();
        assert_eq!(
            to(&out, a),
            vec![format!("[50,3,{{}},[[{},{}]]]", ids[0], ids[1])]
        );
        assert_eq!(to(&out, c), vec![r#"[6,{},"wamp.close.killed"]"#]);
        assert_eq!(to(&out, d).len(), 1);
        assert_eq!(
            result(
                &h.send(a, r#"[48,4,{},"wamp.session.kill_by_authrole",["user"]]"#),
                a
            ),
            "[50,4,{},[[]]]"
        );
        assert!(
            result(
                &h.send(
                    a,
                    r#"[48,5,{},"wamp.session.kill",[1],{"reason":"bad uri"}]"#
                ),
                a
            )
            .contains("no_such_session")
        );
    }

    #[test]
    fn subscription_procedures() {
        let mut h = Harness::new(config());
        let (a, a_id) = h.join("a");
        let (b, b_id) = h.join("b");
        let out = h.send(a, r#"[32,1,{},"t.x"]"#);
        let sub = match out.first() {
            Some(Out::To(_, Message::Subscribed { subscription, .. })) => *subscription,
            _ => panic!(),
        };
        h.send(b, r#"[32,1,{},"t.x"]"#);
        h.send(b, r#"[32,2,{"match":"wildcard"},"t."]"#);
        h.send(b, r#"[32,3,{},"wamp.session.on_join"]"#);
        let list = result(&h.send(a, r#"[48,1,{},"wamp.subscription.list"]"#), a);
        assert_eq!(
            list,
            format!(
                r#"[50,1,{{}},[{{"exact":[{sub}],"prefix":[],"wildcard":[{}]}}]]"#,
                sub + 1
            )
        );
        let list = result(
            &h.send(
                a,
                &format!(r#"[48,2,{{}},"wamp.subscription.list",[{a_id}]]"#),
            ),
            a,
        );
        assert_eq!(
            list,
            format!(r#"[50,2,{{}},[{{"exact":[{sub}],"prefix":[],"wildcard":[]}}]]"#)
        );
        assert_eq!(
            result(
                &h.send(a, r#"[48,3,{},"wamp.subscription.lookup",["t.x"]]"#),
                a
            ),
            format!("[50,3,{{}},[{sub}]]")
        );
        assert_eq!(
            result(
                &h.send(
                    a,
                    r#"[48,4,{},"wamp.subscription.lookup",["t.",{"match":"wildcard"}]]"#
                ),
                a
            ),
            format!("[50,4,{{}},[{}]]", sub + 1)
        );
        assert_eq!(
            result(
                &h.send(a, r#"[48,5,{},"wamp.subscription.lookup",["nope"]]"#),
                a
            ),
            "[50,5,{},[null]]"
        );
        assert_eq!(
            result(
                &h.send(a, r#"[48,6,{},"wamp.subscription.match",["t.x"]]"#),
                a
            ),
            format!("[50,6,{{}},[[{sub},{}]]]", sub + 1)
        );
        assert_eq!(
            result(
                &h.send(a, r#"[48,7,{},"wamp.subscription.match",["q"]]"#),
                a
            ),
            "[50,7,{},[null]]"
        );
        let got = result(
            &h.send(
                a,
                &format!(r#"[48,8,{{}},"wamp.subscription.get",[{sub}]]"#),
            ),
            a,
        );
        assert!(
            got.contains(&format!(r#"{{"id":{sub},"created":""#))
                && got.ends_with(r#""uri":"t.x","match":"exact"}]]"#),
            "{got}"
        );
        let mut ids = [a_id, b_id];
        ids.sort();
        assert_eq!(
            result(
                &h.send(
                    a,
                    &format!(r#"[48,9,{{}},"wamp.subscription.list_subscribers",[{sub}]]"#)
                ),
                a
            ),
            format!("[50,9,{{}},[[{},{}]]]", ids[0], ids[1])
        );
        assert_eq!(
            result(
                &h.send(
                    a,
                    &format!(r#"[48,10,{{}},"wamp.subscription.count_subscribers",[{sub}]]"#)
                ),
                a
            ),
            "[50,10,{},[2]]"
        );
        assert_eq!(
            result(
                &h.send(a, r#"[48,11,{},"wamp.subscription.get",[99999]]"#),
                a
            ),
            r#"[8,48,11,{},"wamp.error.no_such_subscription",["no subscription 99999 for this session"]]"#
        );
        let meta_sub = sub + 2;
        assert_eq!(
            result(
                &h.send(
                    a,
                    &format!(r#"[48,12,{{}},"wamp.subscription.get",[{meta_sub}]]"#)
                ),
                a
            ),
            r#"[8,48,12,{},"wamp.error.not_authorized",["not authorized for protected URI \"wamp.session.on_join\""]]"#
        );
        // The backend sees protected subscriptions too.
        let control = h.key();
        let out = h.backend(
            control,
            &format!(r#"[48,13,{{}},"wamp.subscription.count_subscribers",[{meta_sub}]]"#),
        );
        assert_eq!(to(&out, control), vec!["[50,13,{},[1]]"]);
    }

    #[test]
    fn registration_procedures() {
        let mut h = Harness::new(config());
        let (a, a_id) = h.join("a");
        let (b, b_id) = h.join("b");
        let out = h.send(a, r#"[64,1,{"invoke":"first"},"p.x"]"#);
        let reg = match out.first() {
            Some(Out::To(_, Message::Registered { registration, .. })) => *registration,
            _ => panic!(),
        };
        h.send(b, r#"[64,1,{"invoke":"first"},"p.x"]"#);
        h.send(b, r#"[64,2,{"match":"prefix"},"p."]"#);
        assert_eq!(
            result(&h.send(a, r#"[48,1,{},"wamp.registration.list"]"#), a),
            format!(
                r#"[50,1,{{}},[{{"exact":[{reg}],"prefix":[{}],"wildcard":[]}}]]"#,
                reg + 1
            )
        );
        assert_eq!(
            result(
                &h.send(
                    a,
                    &format!(r#"[48,2,{{}},"wamp.registration.list",[{b_id}]]"#)
                ),
                a
            ),
            format!(
                r#"[50,2,{{}},[{{"exact":[{reg}],"prefix":[{}],"wildcard":[]}}]]"#,
                reg + 1
            )
        );
        assert_eq!(
            result(
                &h.send(
                    a,
                    r#"[48,3,{},"wamp.registration.lookup",["p.",{"match":"prefix"}]]"#
                ),
                a
            ),
            format!("[50,3,{{}},[{}]]", reg + 1)
        );
        assert_eq!(
            result(
                &h.send(a, r#"[48,4,{},"wamp.registration.match",["p.x"]]"#),
                a
            ),
            format!("[50,4,{{}},[{reg}]]")
        );
        assert_eq!(
            result(
                &h.send(a, r#"[48,5,{},"wamp.registration.match",["p.y"]]"#),
                a
            ),
            format!("[50,5,{{}},[{}]]", reg + 1)
        );
        assert_eq!(
            result(
                &h.send(a, r#"[48,6,{},"wamp.registration.match",["q"]]"#),
                a
            ),
            "[50,6,{},[null]]"
        );
        let got = result(
            &h.send(
                a,
                &format!(r#"[48,7,{{}},"wamp.registration.get",[{reg}]]"#),
            ),
            a,
        );
        assert!(
            got.ends_with(r#""uri":"p.x","match":"exact","invoke":"first"}]]"#),
            "{got}"
        );
        assert_eq!(
            result(
                &h.send(
                    a,
                    &format!(r#"[48,8,{{}},"wamp.registration.list_callees",[{reg}]]"#)
                ),
                a
            ),
            format!("[50,8,{{}},[[{a_id},{b_id}]]]")
        );
        assert_eq!(
            result(
                &h.send(
                    a,
                    &format!(r#"[48,9,{{}},"wamp.registration.count_callees",[{reg}]]"#)
                ),
                a
            ),
            "[50,9,{},[2]]"
        );
        assert!(
            result(
                &h.send(a, r#"[48,10,{},"wamp.registration.get",[424242]]"#),
                a
            )
            .contains("wamp.error.no_such_registration")
        );
        assert!(
            result(
                &h.send(a, r#"[48,11,{},"wamp.registration.list",[424242]]"#),
                a
            )
            .contains("wamp.error.no_such_session")
        );
        assert!(
            result(&h.send(a, r#"[48,12,{},"wamp.nothing"]"#), a)
                .contains("wamp.error.no_such_procedure")
        );
    }

    #[test]
    fn get_events_lists_the_kept_publications_newest_first_as_crossbar_does() {
        let mut h = Harness::new(config());
        h.history.size = 100;
        let (p, sp) = h.join("pub");
        let (a, _) = h.join("a");
        let sub = subscribed(&h.send(a, r#"[32,1,{},"kept.news"]"#));
        for n in 1..=12 {
            h.send(
                p,
                &format!(r#"[16,{n},{{}},"kept.news",[{n}],{{"n":{n}}}]"#),
            );
        }
        h.send(p, r#"[16,13,{"disclose_me":true},"kept.news",["last"]]"#);
        let answer = result(
            &h.send(
                a,
                &format!(r#"[48,1,{{}},"wamp.subscription.get_events",[{sub}]]"#),
            ),
            a,
        );
        let value: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let events = value[3][0].as_array().unwrap_or_else(|| panic!("{answer}"));
        assert_eq!(events.len(), 10, "Crossbar's default limit");
        let newest = &events[0];
        assert_eq!(newest["args"], serde_json::json!(["last"]));
        assert_eq!(newest["session_id"], sp);
        assert_eq!(newest["authid"], "pub");
        assert_eq!(newest["topic"], "kept.news");
        assert_eq!(newest["realm"], "realm1");
        assert!(newest["publication"].is_u64());
        let offsets: Vec<u64> = events
            .iter()
            .map(|e| e["_wson_position"]["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(offsets, (4..=13).rev().collect::<Vec<u64>>());
        assert_eq!(events[1]["kwargs"], serde_json::json!({"n": 12}));
        assert!(events[1]["authid"].is_null(), "undisclosed: {}", events[1]);
        let answer = result(
            &h.send(
                a,
                &format!(r#"[48,2,{{}},"wamp.subscription.get_events",[{sub},2]]"#),
            ),
            a,
        );
        let value: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(value[3][0].as_array().unwrap().len(), 2);
        let answer = result(
            &h.send(
                a,
                &format!(r#"[48,3,{{}},"wamp.subscription.get_events",[{sub}],{{"limit":-1}}]"#),
            ),
            a,
        );
        assert!(answer.contains("wamp.error.invalid_argument"), "{answer}");
    }

    #[test]
    fn get_events_without_a_history_is_history_unavailable() {
        let mut h = Harness::new(config());
        let (a, _) = h.join("a");
        let plain = subscribed(&h.send(a, r#"[32,1,{},"plain.news"]"#));
        let prefix = subscribed(&h.send(a, r#"[32,2,{"match":"prefix"},"kept."]"#));
        for (request, sub) in [(3, plain), (4, prefix)] {
            let answer = result(
                &h.send(
                    a,
                    &format!(r#"[48,{request},{{}},"wamp.subscription.get_events",[{sub}]]"#),
                ),
                a,
            );
            assert_eq!(
                answer,
                format!(
                    r#"[8,48,{request},{{}},"wamp.error.history_unavailable",["event history for the given subscription is not available or enabled"]]"#
                )
            );
        }
        let answer = result(
            &h.send(a, r#"[48,5,{},"wamp.subscription.get_events",[424242]]"#),
            a,
        );
        assert!(
            answer.contains("wamp.error.no_such_subscription"),
            "{answer}"
        );
        // An empty history is an empty list, not an error (Crossbar: None is "unavailable").
        let kept = subscribed(&h.send(a, r#"[32,6,{},"kept.quiet"]"#));
        let answer = result(
            &h.send(
                a,
                &format!(r#"[48,7,{{}},"wamp.subscription.get_events",[{kept}]]"#),
            ),
            a,
        );
        assert_eq!(answer, "[50,7,{},[[]]]");
    }
}
