//! A realm: its sessions, its broker and dealer, and the handling of what an established
//! session sends. WAMP v2, "Realms": "A Router ... MUST route messages only within a realm".
//!
//! `Ctx` carries what one step of the router needs besides the realm (config, id sources,
//! the time, the action list), so a handler borrows the realm mutably and the rest alongside.

use std::rc::Rc;
use std::time::{Instant, SystemTime};

use crate::resume::Position;
use crate::router::auth;
use crate::router::broker::{Broker, Disclosure, Member, Publication, RetainRefused, Retained};
use crate::router::dealer::Dealer;
use crate::router::dynamic::Answer;
use crate::router::error::{Refusal, Violation};
use crate::router::ids::{GlobalIds, SequentialIds};
use crate::router::options::{PublishOptions, SubscribeOptions};
use crate::router::session::{Link, Session};
use crate::router::uri::{self, Match};
use crate::router::{Action, Publishing, RouterConfig};
use crate::server::slab::Key;
use crate::wamp::{Dict, Message, MessageType, Payload, Value};

/// One step's context.
pub struct Ctx<'a> {
    pub config: &'a RouterConfig,
    /// `config.realm_settings`' roles, compiled.
    pub policies: &'a auth::Policies,
    pub global_ids: &'a mut GlobalIds,
    /// Subscription and registration ids (router scope).
    pub router_ids: &'a mut SequentialIds,
    pub now: Instant,
    /// The wall clock at `now`, for `created` timestamps.
    pub wall_now: SystemTime,
    /// The topic history, which the hub owns (`Chronicle`).
    pub history: &'a mut dyn crate::router::Chronicle,
    pub out: &'a mut Vec<Action>,
    /// Clients this step closed (killed through the meta API): the router moves them to
    /// `Phase::Closing`.
    pub closed: Vec<Key>,
    /// The realm is the backend realm: its publications go to the plain side too.
    pub backend_realm: bool,
    /// Other nodes are known: publications and registrations are told to them (`nodes`).
    pub clustered: bool,
    /// Replies held until every other node has heard what this step told them
    /// (`nodes`): (session, message).
    pub held_replies: Vec<(u64, Message)>,
    /// Meta calls the other nodes answer too (`nodes`).
    pub gathers: Vec<crate::router::nodes::Gather>,
    /// The authorizer's answer for the held action being carried out now.
    pub decided: Option<auth::Authorization>,
    /// Answers to the router's calls that the realm does not settle itself (authenticators'):
    /// the router settles them after the step.
    pub answers: Vec<Answer>,
}

/// Who publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher {
    /// A session of the realm.
    Session(u64),
    /// The plain side (`publish_from_plain`): no session, nothing to exclude.
    Plain,
    /// The router itself (meta events).
    Router,
    /// Another node's router, passing on a publication of its own (`nodes`).
    Node,
}

#[derive(Debug)]
pub struct Realm {
    pub name: String,
    pub sessions: std::collections::HashMap<u64, Session>,
    pub broker: Broker,
    pub dealer: Dealer,
    /// Authorizer calls in flight: ticket -> the session whose held action waits.
    pub authorizing: std::collections::HashMap<u64, u64>,
}

/// Serializes `message` for one session.
pub fn send_via(link: Link, message: Message, out: &mut Vec<Action>) {
    match link {
        Link::Client { key, serializer } => out.push(Action::Send {
            to: vec![key],
            binary: serializer.is_binary(),
            bytes: Rc::from(serializer.encode(&message)),
        }),
        Link::Backend { key } => out.push(Action::Control { to: key, message }),
        Link::V1 { key } => out.push(Action::V1 { to: key, message }),
        // Only its realm knows what a node's message becomes: `Realm::send` takes it.
        Link::Node { node } => {
            log::error!(node = node.0, message = message.message_type().name(); "a message for another node without its realm dropped");
        }
    }
}

/// `[ERROR, request_type, request, {}, uri, [text]]` for a refusal.
pub fn refusal_message(request_type: MessageType, request: u64, refusal: &Refusal) -> Message {
    Message::Error {
        request_type,
        request,
        details: Dict::new(),
        error: refusal.uri().to_owned(),
        payload: Payload {
            args: vec![Value::String(refusal.to_string())],
            kwargs: Dict::new(),
        },
    }
}

/// ISO 8601 UTC with milliseconds, as autobahn's `utcnow()` (`2024-05-23T13:03:44.123Z`).
pub fn iso8601(time: SystemTime) -> String {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Realm {
    pub fn new(name: String) -> Realm {
        Realm {
            name,
            sessions: std::collections::HashMap::new(),
            broker: Broker::default(),
            dealer: Dealer::default(),
            authorizing: std::collections::HashMap::new(),
        }
    }

    /// Sends `message` to session `id` (if it is still here).
    pub fn send(&self, id: u64, message: Message, out: &mut Vec<Action>) {
        match self.sessions.get(&id).map(|session| session.link) {
            Some(Link::Node { node }) => self.send_to_node(node, message, out),
            Some(link) => send_via(link, message, out),
            None => {}
        }
    }

    /// May session `id` do `action` on `uri`? A trusted backend: always. A held action
    /// carries its authorizer's answer in `ctx.decided`; otherwise the role's permissions
    /// decide (a role with an authorizer has none: no).
    pub fn authorization(
        &self,
        ctx: &Ctx<'_>,
        id: u64,
        uri: &str,
        action: auth::Action,
    ) -> auth::Authorization {
        match self.sessions.get(&id) {
            Some(session) if !session.is_trusted() => ctx.decided.unwrap_or_else(|| {
                ctx.policies
                    .authorize(&self.name, &session.authrole, uri, action)
            }),
            Some(_) => auth::Authorization {
                allow: true,
                disclose: false,
            },
            None => auth::Authorization {
                allow: false,
                disclose: false,
            },
        }
    }

    fn refuse(
        &self,
        id: u64,
        request_type: MessageType,
        request: u64,
        refusal: &Refusal,
        out: &mut Vec<Action>,
    ) {
        self.send(id, refusal_message(request_type, request, refusal), out);
    }

    /// A message from established session `id`, past its gate (see `dynamic`). HELLO,
    /// GOODBYE and ABORT are the router's.
    pub(super) fn dispatch(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        message: Message,
    ) -> Result<(), Violation> {
        match message {
            Message::Publish {
                request,
                options,
                topic,
                payload,
            } => self.on_publish(ctx, id, request, &options, topic, payload),
            Message::Subscribe {
                request,
                options,
                topic,
            } => self.on_subscribe(ctx, id, request, &options, &topic),
            Message::Unsubscribe {
                request,
                subscription,
            } => {
                self.on_unsubscribe(ctx, id, request, subscription);
                Ok(())
            }
            Message::Register {
                request,
                options,
                procedure,
            } => self.on_register(ctx, id, request, &options, &procedure),
            Message::Unregister {
                request,
                registration,
            } => {
                self.on_unregister(ctx, id, request, registration);
                Ok(())
            }
            Message::Call {
                request,
                options,
                procedure,
                payload,
            } => self.on_call(ctx, id, request, &options, procedure, payload),
            Message::Cancel { request, options } => self.on_cancel(ctx, id, request, &options),
            Message::Yield {
                request,
                options,
                payload,
            } => self.on_yield(ctx, id, request, &options, payload),
            Message::Error {
                request_type: MessageType::Invocation,
                request,
                details,
                error,
                payload,
            } => {
                self.on_invocation_error(ctx, id, request, details, error, payload);
                Ok(())
            }
            Message::Error { request_type, .. } => {
                Err(Violation::ErrorForRequestType { request_type })
            }
            other @ (Message::Hello { .. }
            | Message::Welcome { .. }
            | Message::Abort { .. }
            | Message::Challenge { .. }
            | Message::Authenticate { .. }
            | Message::Goodbye { .. }
            | Message::Published { .. }
            | Message::Subscribed { .. }
            | Message::Unsubscribed { .. }
            | Message::Event { .. }
            | Message::Result { .. }
            | Message::Registered { .. }
            | Message::Unregistered { .. }
            | Message::Invocation { .. }
            | Message::Interrupt { .. }) => Err(Violation::NotForRouter {
                message: other.message_type().name(),
            }),
        }
    }

    /// Adds an established session; the caller sent WELCOME. Publishes `wamp.session.on_join`
    /// for sessions the meta API shows.
    pub fn join(&mut self, ctx: &mut Ctx<'_>, session: Session) {
        let id = session.id;
        let visible = !session.is_hidden();
        self.sessions.insert(id, session);
        if visible && let Some(details) = self.session_details(id) {
            self.meta_event(ctx, "wamp.session.on_join", vec![Value::Dict(details)]);
        }
    }

    /// Session `id` leaves: its calls are failed or interrupted, its subscriptions and
    /// registrations go; then the meta events, which it no longer receives (Crossbar
    /// `session.py` clears the session id "so that we don't publish to ourselves").
    pub fn leave(&mut self, ctx: &mut Ctx<'_>, id: u64) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let link = session.link;
        let visible = !session.is_hidden();
        let subscriptions = session.subscriptions.clone();
        let registrations = session.registrations.clone();
        self.dealer_session_gone(ctx, id);
        let mut events: Vec<(&'static str, u64)> = Vec::new();
        for subscription in subscriptions {
            // Crossbar: meta events "but not for the meta API itself!".
            let meta = self
                .broker
                .get(subscription)
                .is_some_and(|s| s.uri.starts_with("wamp."));
            if let Some(deleted) = self.broker.unsubscribe(subscription, id, &link)
                && !meta
            {
                events.push(("wamp.subscription.on_unsubscribe", subscription));
                if deleted {
                    events.push(("wamp.subscription.on_delete", subscription));
                }
            }
        }
        for registration in registrations {
            let meta = self
                .dealer
                .get(registration)
                .is_some_and(|r| r.uri.starts_with("wamp."));
            if let Some(deleted) = self.remove_callee(ctx, id, registration)
                && !meta
            {
                events.push(("wamp.registration.on_unregister", registration));
                if deleted {
                    events.push(("wamp.registration.on_delete", registration));
                }
            }
        }
        self.sessions.remove(&id);
        // Crossbar publishes on_leave first (`session.py` `onLeave`, `onMessage` for GOODBYE)
        // and the subscription/registration events after (`callLater(0, ..)` in
        // `broker.py`/`dealer.py` `detach`); its on_leave carries the session id alone.
        if visible {
            self.meta_event(ctx, "wamp.session.on_leave", vec![Value::from(id)]);
        }
        for (topic, object) in events {
            self.meta_event(ctx, topic, vec![Value::from(id), Value::from(object)]);
        }
    }

    fn on_subscribe(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        request: u64,
        options: &Dict,
        topic: &str,
    ) -> Result<(), Violation> {
        let raw_options = options;
        let options = SubscribeOptions::parse(raw_options)?;
        let resume = crate::router::options::resume_option(raw_options, options.policy);
        if !self.sessions.contains_key(&id) {
            return Ok(());
        }
        let resume = match resume {
            Ok(resume) => resume,
            Err(detail) => {
                let refusal = Refusal::InvalidArgument {
                    procedure: "SUBSCRIBE",
                    detail,
                };
                self.refuse(id, MessageType::Subscribe, request, &refusal, ctx.out);
                return Ok(());
            }
        };
        if let Err(error) = uri::check(topic, options.policy, ctx.config.strict_uris) {
            let refusal = Refusal::InvalidUri {
                uri: topic.to_owned(),
                error,
            };
            self.refuse(id, MessageType::Subscribe, request, &refusal, ctx.out);
            return Ok(());
        }
        // Crossbar `broker.py` `processSubscribe`: after the URI check, `router.authorize`.
        if !self
            .authorization(ctx, id, topic, auth::Action::Subscribe)
            .allow
        {
            let refusal = Refusal::NotAuthorized {
                action: "subscribe to",
                uri: topic.to_owned(),
            };
            self.refuse(id, MessageType::Subscribe, request, &refusal, ctx.out);
            return Ok(());
        }
        let Some(session) = self.sessions.get(&id) else {
            return Ok(());
        };
        let already = self
            .broker
            .lookup(topic, options.policy)
            .is_some_and(|subscription| subscription.subscribers().any(|s| s == id));
        if !already && session.subscriptions.len() >= ctx.config.max_subscriptions_per_session {
            let refusal = Refusal::TooManySubscriptions {
                max: ctx.config.max_subscriptions_per_session,
            };
            self.refuse(id, MessageType::Subscribe, request, &refusal, ctx.out);
            return Ok(());
        }
        let link = session.link;
        let member = Member {
            session: id,
            authid: Rc::clone(&session.authid),
            authrole: Rc::clone(&session.authrole),
        };
        let wall_now = ctx.wall_now;
        let subscribed =
            self.broker
                .subscribe(topic, options.policy, &link, member, ctx.router_ids, || {
                    iso8601(wall_now)
                });
        if subscribed.added
            && let Some(session) = self.sessions.get_mut(&id)
        {
            session.subscriptions.push(subscribed.id);
        }
        self.send(
            id,
            Message::Subscribed {
                request,
                subscription: subscribed.id,
            },
            ctx.out,
        );
        // WAMP v2 advanced, "Event Retention": "the Broker MUST send the retained event ...
        // when the Subscriber's `get_retained` option is true"; Crossbar keeps it on the
        // exact-match observation of the topic, so pattern subscriptions get none.
        if options.get_retained
            && options.policy == Match::Exact
            && let Some(retained) = self.broker.retained(topic)
            && retained
                .audience
                .admits(id, &self.session_authid(id), &self.session_authrole(id))
        {
            let mut details = Dict::new();
            crate::router::broker::disclose(&mut details, retained.publisher.as_ref());
            details.insert("retained", Value::Bool(true));
            let message = Message::Event {
                subscription: subscribed.id,
                publication: ctx.global_ids.next_id(),
                details,
                payload: retained.payload.clone(),
            };
            self.send(id, message, ctx.out);
        }
        // `_wson_resume`: what the session missed, within this step, so no publication comes
        // between the replay and the live EVENTs (none is lost or twice at the seam).
        if let Some(seen) = resume {
            let missed = if ctx.backend_realm {
                ctx.history.missed(topic, &seen)
            } else {
                crate::router::Missed::Reload(crate::resume::Reload::Off, None)
            };
            let member = Member {
                session: id,
                authid: self.session_authid(id),
                authrole: self.session_authrole(id),
            };
            let global_ids = &mut *ctx.global_ids;
            let events =
                crate::router::broker::resume_events(subscribed.id, missed, &member, || {
                    global_ids.next_id()
                });
            for event in events {
                self.send(id, event, ctx.out);
            }
        }
        // Crossbar `broker.py` `processSubscribe`: on_create when the subscription is new,
        // on_subscribe when the session is; none for `wamp.` topics; after SUBSCRIBED.
        if !topic.starts_with("wamp.") {
            if subscribed.created
                && let Some(details) = self.subscription_details(subscribed.id)
            {
                self.meta_event(
                    ctx,
                    "wamp.subscription.on_create",
                    vec![Value::from(id), Value::Dict(details)],
                );
            }
            if subscribed.added {
                self.meta_event(
                    ctx,
                    "wamp.subscription.on_subscribe",
                    vec![Value::from(id), Value::from(subscribed.id)],
                );
            }
        }
        Ok(())
    }

    fn session_authid(&self, id: u64) -> Rc<str> {
        self.sessions
            .get(&id)
            .map_or_else(|| Rc::from(""), |session| Rc::clone(&session.authid))
    }

    fn session_authrole(&self, id: u64) -> Rc<str> {
        self.sessions
            .get(&id)
            .map_or_else(|| Rc::from(""), |session| Rc::clone(&session.authrole))
    }

    fn on_unsubscribe(&mut self, ctx: &mut Ctx<'_>, id: u64, request: u64, subscription: u64) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let link = session.link;
        let uri = self.broker.get(subscription).map(|s| s.uri.clone());
        match self.broker.unsubscribe(subscription, id, &link) {
            None => {
                let refusal = Refusal::NoSuchSubscription { subscription };
                self.refuse(id, MessageType::Unsubscribe, request, &refusal, ctx.out);
            }
            Some(deleted) => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.subscriptions.retain(|&s| s != subscription);
                }
                self.send(id, Message::Unsubscribed { request }, ctx.out);
                if uri.is_some_and(|uri| !uri.starts_with("wamp.")) {
                    self.meta_event(
                        ctx,
                        "wamp.subscription.on_unsubscribe",
                        vec![Value::from(id), Value::from(subscription)],
                    );
                    if deleted {
                        self.meta_event(
                            ctx,
                            "wamp.subscription.on_delete",
                            vec![Value::from(id), Value::from(subscription)],
                        );
                    }
                }
            }
        }
    }

    fn on_publish(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        request: u64,
        options: &Dict,
        topic: String,
        payload: Payload,
    ) -> Result<(), Violation> {
        let mut options = PublishOptions::parse(options)?;
        let authorization = self.authorization(ctx, id, &topic, auth::Action::Publish);
        let Some(session) = self.sessions.get(&id) else {
            return Ok(());
        };
        // Crossbar `broker.py` `processPublish` answers a refused PUBLISH only when it asked
        // for acknowledgement: "if publish.acknowledge: reply = message.Error(..)".
        let refusal = match uri::check(&topic, Match::Exact, ctx.config.strict_uris) {
            Err(error) => Some(Refusal::InvalidUri {
                uri: topic.clone(),
                error,
            }),
            Ok(()) if topic.starts_with("wamp.") && !session.is_backend() => {
                Some(Refusal::RestrictedUri { uri: topic.clone() })
            }
            Ok(()) if !authorization.allow => Some(Refusal::NotAuthorized {
                action: "publish to",
                uri: topic.clone(),
            }),
            Ok(()) => None,
        };
        if let Some(refusal) = refusal {
            if options.acknowledge {
                self.refuse(id, MessageType::Publish, request, &refusal, ctx.out);
            }
            return Ok(());
        }
        // Crossbar `broker.py`: the permission's `disclose` discloses the publisher whatever
        // it asked ("if authorization['disclose']: disclose = True").
        options.disclose_me |= authorization.disclose;
        let publication = ctx.global_ids.next_id();
        if options.acknowledge {
            // Crossbar `broker.py`: "send publish acknowledge before dispatching".
            let published = Message::Published {
                request,
                publication,
            };
            self.send(id, published, ctx.out);
        }
        self.publish(
            ctx,
            publication,
            Publisher::Session(id),
            &topic,
            &options,
            payload,
            None,
        );
        Ok(())
    }

    /// Fans out publication `publication`, which the caller checked. Publications of the
    /// backend realm also go to the plain side, except the router's own meta events and
    /// what came from the plain side. With other nodes, a session's publication and a meta
    /// event go to them too (what came from the plain side went there as plain frames).
    /// `kept`: the position the hub's history gave a plain publication before it came here.
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &mut self,
        ctx: &mut Ctx<'_>,
        publication: u64,
        publisher: Publisher,
        topic: &str,
        options: &PublishOptions,
        payload: Payload,
        kept: Option<&Position>,
    ) {
        let session = match publisher {
            Publisher::Session(id) => self.sessions.get(&id),
            Publisher::Plain | Publisher::Router | Publisher::Node => None,
        };
        let disclosure = session.map(|session| Disclosure {
            session: session.id,
            authid: Rc::clone(&session.authid),
            authrole: Rc::clone(&session.authrole),
        });
        // WAMP v2 advanced, "Publisher Identification": disclosed on request, and by the
        // broker's own rule; Crossbar discloses `trusted` sessions always (`router.py`
        // `authorize`: auto_disclose_trusted).
        let disclosed = disclosure
            .clone()
            .filter(|_| options.disclose_me || session.is_some_and(Session::is_backend));
        let plain_side = (ctx.backend_realm && session.is_some()).then(|| {
            disclosure
                .as_ref()
                .map_or_else(String::new, |d| d.authid.to_string())
        });
        let exclude_session = match publisher {
            Publisher::Session(id) if options.exclude_me => Some(id),
            Publisher::Session(_) | Publisher::Plain | Publisher::Router | Publisher::Node => None,
        };
        if ctx.clustered && matches!(publisher, Publisher::Session(_) | Publisher::Router) {
            self.publish_to_nodes(
                ctx,
                publication,
                topic,
                options,
                disclosed.as_ref(),
                plain_side.is_some(),
                payload.clone(),
            );
        }
        let plain_side = plain_side.map(|publisher_authid| (publisher_authid, true));
        self.fan_out(
            ctx,
            &Publication {
                id: publication,
                topic,
                publisher: disclosed.as_ref(),
                exclude_session,
                audience: &options.audience,
                position: kept,
            },
            options.retain,
            payload,
            plain_side,
        );
    }

    /// Retains (when asked) and delivers a publication to this node's subscribers, then to
    /// the plain side when `plain_side` names the publisher's authid (and whether the event
    /// listeners are told). A publication for the plain side (a session's or another node's
    /// in the backend realm) is first kept by the history when its topic has one: its EVENTs
    /// carry the position it got (`_wson_position`).
    pub(super) fn fan_out(
        &mut self,
        ctx: &mut Ctx<'_>,
        publication: &Publication<'_>,
        retain: bool,
        payload: Payload,
        plain_side: Option<(String, bool)>,
    ) {
        let recorded = match (&plain_side, publication.position) {
            (Some(_), None) => ctx.history.record(&Publishing {
                topic: publication.topic,
                payload: &payload,
                publication: publication.id,
                publisher: publication.publisher,
                audience: publication.audience,
                exclude_session: publication.exclude_session,
            }),
            (Some(_) | None, _) => None,
        };
        let publication = &Publication {
            position: publication.position.or(recorded.as_ref()),
            ..*publication
        };
        let topic = publication.topic;
        if retain {
            let retained = Retained {
                payload: payload.clone(),
                publisher: publication.publisher.cloned(),
                audience: publication.audience.clone(),
            };
            let kept = self.broker.retain(
                topic,
                retained,
                ctx.config.max_retained,
                ctx.config.max_retained_bytes,
            );
            if let Err(refused) = kept {
                let reason = match refused {
                    RetainRefused::Topics => "max_retained topics retain already",
                    RetainRefused::Bytes => "the retained events would pass max_retained_bytes",
                };
                log::debug!(realm = self.name, topic = topic, reason; "retained event dropped");
            }
        }
        let payload = self.broker.dispatch(publication, payload, ctx.out);
        if let Some((publisher_authid, tell_listeners)) = plain_side {
            ctx.out.push(Action::Plain {
                topic: topic.to_owned(),
                payload,
                publisher_authid,
                tell_listeners,
                position: recorded,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso8601_matches_autobahn() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_400_850_224_123);
        assert_eq!(iso8601(time), "2014-05-23T13:03:44.123Z");
        assert_eq!(iso8601(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(iso8601(leap), "2000-02-29T00:00:00.000Z");
    }
}
