//! Authenticators and authorizers written by the application: WAMP procedures of a realm
//! that the router itself calls (Crossbar's "dynamic" authenticator and `authorizer` role).
//!
//! The router calls them through its dealer as a caller of its own, `ROUTER_CALLER`, with a
//! ticket as the request id; the answer (RESULT, ERROR, the callee leaving, the
//! `dynamic_auth_timeout` deadline, or no callee at all) comes back as an [`Outcome`] for the
//! ticket.
//!
//! Authorization keeps a session's order. Each PUBLISH, SUBSCRIBE, CALL and REGISTER of a
//! session whose role has an authorizer passes its session's [`Gate`]: a fresh cached answer
//! lets it through at once; otherwise the authorizer is asked and the message is held, and
//! every later one of the four waits behind it, so a session's actions happen in the order it
//! sent them even when answers take time (Crossbar authorizes each message on its own and
//! may reorder them). Other messages (YIELD, ERROR, CANCEL, UNSUBSCRIBE, UNREGISTER) are
//! never held: a callee's YIELD must not wait for its own subscribe to be authorized.
//!
//! Answers are cached per session, never per role: Crossbar caches per (realm, role, URI,
//! action), so one user's "allow" would let every user of the role in (crossbar #212 asks for
//! a flush). A cached answer lives `authorization_cache_lifetime`, goes with its session, and
//! `Router::flush_authorizations` drops every one.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::router::auth::{Action, Authorization};
use crate::router::error::{Refusal, Violation};
use crate::router::options::{CallOptions, PublishOptions, RegisterOptions, SubscribeOptions};
use crate::router::realm::{Ctx, Realm, refusal_message};
use crate::router::uri::{self, Match};
use crate::wamp::{Dict, Message, MessageType, Payload, Value};

/// The caller id of the router's own calls; session ids start at 1.
pub const ROUTER_CALLER: u64 = 0;

/// ERROR for an action the authorizer could not decide (it failed, answered nonsense, timed
/// out or is not registered): Crossbar's `ApplicationError.AUTHORIZATION_FAILED`.
pub const AUTHORIZATION_FAILED: &str = "wamp.error.authorization_failed";

/// ABORT reason when an authenticator names a role the realm does not define (Crossbar
/// `pending.py` `_assign_principal`).
pub const NO_SUCH_ROLE: &str = "wamp.error.no_such_role";

/// ABORT reason when neither HELLO nor the authenticator names an authid (Crossbar
/// `pending.py` `_assign_principal`: "no authid assigned").
pub const NO_SUCH_PRINCIPAL: &str = "wamp.error.no_such_principal";

/// The authprovider of a login an authenticator decided (Crossbar's name).
pub const DYNAMIC_PROVIDER: &str = "dynamic";

/// How a call of the router's ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The callee's final YIELD.
    Result(Payload),
    /// The callee's ERROR.
    Error { error: String, payload: Payload },
    /// No answer will come: no callee, the callee left, the deadline passed.
    Failed(&'static str),
}

/// An answer for the router: `ticket` names the call.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub ticket: u64,
    pub outcome: Outcome,
}

impl Outcome {
    /// The outcome a reply to `ROUTER_CALLER` carries; `None` for a progressive RESULT (the
    /// final one decides) and for anything a caller never gets.
    pub fn of_reply(message: Message) -> Option<(u64, Outcome)> {
        match message {
            Message::Result {
                request,
                details,
                payload,
            } => {
                let progress = matches!(details.get("progress"), Some(Value::Bool(true)));
                (!progress).then_some((request, Outcome::Result(payload)))
            }
            Message::Error {
                request,
                error,
                payload,
                ..
            } => Some((request, Outcome::Error { error, payload })),
            _ => None,
        }
    }

    /// Why the call gave no usable answer, for the log and the refusal.
    pub fn failure(&self) -> String {
        match self {
            Outcome::Result(_) => "the answer is not what was asked for".to_owned(),
            Outcome::Error { error, payload } => match payload.args.first() {
                Some(Value::String(text)) => format!("{error}: {text}"),
                _ => error.clone(),
            },
            Outcome::Failed(reason) => (*reason).to_owned(),
        }
    }
}

/// The action a message asks to do, on which URI with which match policy, if it is one an
/// authorizer decides.
pub fn authorizable(message: &Message) -> Option<(Action, &str, Match, &Dict)> {
    let policy = |options: &Dict| match options.str("match") {
        Some(Ok(name)) => Match::parse(name).unwrap_or(Match::Exact),
        _ => Match::Exact,
    };
    match message {
        Message::Publish { topic, options, .. } => {
            Some((Action::Publish, topic, Match::Exact, options))
        }
        Message::Subscribe { topic, options, .. } => {
            Some((Action::Subscribe, topic, policy(options), options))
        }
        Message::Call {
            procedure, options, ..
        } => Some((Action::Call, procedure, Match::Exact, options)),
        Message::Register {
            procedure, options, ..
        } => Some((Action::Register, procedure, policy(options), options)),
        _ => None,
    }
}

/// An authorizer's answer: `true`, `false`, or `{allow, disclose, cache}` (Crossbar
/// `router.py` `authorize`; a dict with other keys, or anything else, is no answer).
pub fn authorizer_answer(payload: &Payload) -> Option<(Authorization, bool)> {
    match payload.args.first()? {
        Value::Bool(allow) => Some((
            Authorization {
                allow: *allow,
                disclose: false,
            },
            false,
        )),
        Value::Dict(answer) => {
            let mut allow = false;
            let mut disclose = false;
            let mut cache = false;
            for (key, value) in answer.iter() {
                let Value::Bool(flag) = value else {
                    return None;
                };
                match key {
                    "allow" => allow = *flag,
                    "disclose" => disclose = *flag,
                    "cache" => cache = *flag,
                    // Crossbar accepts "validate" (payload validation, which wson lacks).
                    "validate" => {}
                    _ => return None,
                }
            }
            Some((Authorization { allow, disclose }, cache))
        }
        _ => None,
    }
}

/// Who an authenticator says a login is.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The authid the session gets (the authenticator may replace the one asked for).
    pub authid: Option<String>,
    pub role: String,
    /// WAMP-CRA: the secret that signs the challenge.
    pub secret: Option<String>,
    /// WAMP-CRA salted: salt, iterations, keylen.
    pub salted: Option<(String, u32, u32)>,
    /// WAMP-Cryptosign: the hex Ed25519 public key that must sign the challenge.
    pub pubkey: Option<String>,
    /// `extra`: WELCOME's `authextra`.
    pub extra: Option<Dict>,
}

/// Reads an authenticator's RESULT: a role name, or a dict with `role` and optionally
/// `authid`, `secret`, `salt` + `iterations` + `keylen`, `pubkey`, `extra` (Crossbar
/// `pending.py` `_assign_principal`, `wampcra.py` `_compute_challenge`, `cryptosign.py`
/// `on_authenticate_ok`). `max_iterations`
/// bounds the PBKDF2 work one login can ask of the loop.
pub fn principal(payload: &Payload, max_iterations: u32) -> Result<Principal, &'static str> {
    let dict = match payload.args.first() {
        Some(Value::String(role)) if !role.is_empty() => {
            return Ok(Principal {
                authid: None,
                role: role.clone(),
                secret: None,
                salted: None,
                pubkey: None,
                extra: None,
            });
        }
        Some(Value::Dict(dict)) => dict,
        _ => return Err("the authenticator answered neither a role nor a dict"),
    };
    let text = |key: &str| match dict.get(key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => {
            Err("the authenticator answered a non-string authid, role, secret, salt or pubkey")
        }
    };
    let role = text("role")?.filter(|role| !role.is_empty());
    let Some(role) = role else {
        return Err("the authenticator answered no role");
    };
    let number = |key: &str, default: u32, max: u32| match dict.get(key) {
        None => Ok(default),
        Some(Value::Integer(n)) => u32::try_from(*n)
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or("the authenticator answered iterations or keylen out of range"),
        Some(Value::Unsigned(n)) => u32::try_from(*n)
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or("the authenticator answered iterations or keylen out of range"),
        Some(_) => Err("the authenticator answered a non-integer iterations or keylen"),
    };
    let salted = match text("salt")? {
        Some(salt) => Some((
            salt,
            number("iterations", 1000, max_iterations)?,
            number("keylen", 32, crate::config::wamp_realm::MAX_KEYLEN)?,
        )),
        None => None,
    };
    let extra = match dict.get("extra") {
        None | Some(Value::Null) => None,
        Some(Value::Dict(extra)) => Some(extra.clone()),
        Some(_) => return Err("the authenticator answered an extra that is not a dict"),
    };
    Ok(Principal {
        authid: text("authid")?.filter(|authid| !authid.is_empty()),
        role,
        secret: text("secret")?,
        salted,
        pubkey: text("pubkey")?,
        extra,
    })
}

/// A session's authorization state when its role has an authorizer.
#[derive(Debug, Default)]
pub struct Gate {
    /// The ticket of the authorizer call deciding `held.front()`.
    pub asking: Option<u64>,
    /// Actions waiting, in the order the session sent them.
    pub held: VecDeque<Message>,
    /// Cached answers with the time each stops counting.
    cache: HashMap<(Action, String), (Authorization, Instant)>,
}

impl Gate {
    /// True while an action waits: a new one must queue behind it.
    pub fn busy(&self) -> bool {
        self.asking.is_some() || !self.held.is_empty()
    }

    /// The cached answer for `action` on `uri`, if still fresh at `now`.
    pub fn cached(&mut self, action: Action, uri: &str, now: Instant) -> Option<Authorization> {
        let key = (action, uri.to_owned());
        match self.cache.get(&key) {
            Some(&(authorization, until)) if now < until => Some(authorization),
            Some(_) => {
                self.cache.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keeps an answer until `until`; with `max` answers kept, the stale ones go first, then
    /// all (a session asking about ever new URIs must not grow the cache).
    pub fn remember(
        &mut self,
        action: Action,
        uri: &str,
        authorization: Authorization,
        until: Instant,
        now: Instant,
        max: usize,
    ) {
        if self.cache.len() >= max {
            self.cache.retain(|_, (_, until)| now < *until);
            if self.cache.len() >= max {
                self.cache.clear();
            }
        }
        self.cache
            .insert((action, uri.to_owned()), (authorization, until));
    }

    /// Drops every cached answer; returns how many there were.
    pub fn flush(&mut self) -> usize {
        let count = self.cache.len();
        self.cache.clear();
        count
    }

    pub fn cached_count(&self) -> usize {
        self.cache.len()
    }
}

impl Realm {
    /// A message from established session `id`: through its gate when its role has an
    /// authorizer and the message is an action one decides, else straight on.
    pub fn handle(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        message: Message,
    ) -> Result<(), Violation> {
        // The cheap test first: most messages are no action an authorizer decides.
        let gated = |realm: &Realm| {
            realm.sessions.get(&id).is_some_and(|session| {
                !session.is_trusted()
                    && ctx
                        .policies
                        .authorizer(&realm.name, &session.authrole)
                        .is_some()
            })
        };
        let Some((action, uri, policy, options)) = authorizable(&message).filter(|_| gated(self))
        else {
            return self.dispatch(ctx, id, message);
        };
        // What the handler would refuse before authorizing goes to it unasked: the authorizer
        // only ever sees well-formed requests, and a violation ends the session now, not
        // when an answer comes.
        match action {
            Action::Publish => PublishOptions::parse(options).map(drop)?,
            Action::Subscribe => SubscribeOptions::parse(options).map(drop)?,
            Action::Call => CallOptions::parse(options).map(drop)?,
            Action::Register => RegisterOptions::parse(options).map(drop)?,
        }
        if uri::check(uri, policy, ctx.config.strict_uris).is_err() {
            return self.dispatch(ctx, id, message);
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return Ok(());
        };
        if session.gate.held.len() >= ctx.config.max_waiting_authorizations {
            let reason = format!(
                "{} actions of the session wait for the authorizer, the most allowed",
                ctx.config.max_waiting_authorizations
            );
            self.refuse_held(ctx, id, &message, reason);
            return Ok(());
        }
        session.gate.held.push_back(message);
        self.open_gate(ctx, id);
        Ok(())
    }

    /// Carries out the held actions of `id` in order while cached answers decide them, and
    /// asks the authorizer about the first one that has none.
    fn open_gate(&mut self, ctx: &mut Ctx<'_>, id: u64) {
        loop {
            let Some(session) = self.sessions.get_mut(&id) else {
                return;
            };
            if session.gate.asking.is_some() {
                return;
            }
            let Some(front) = session.gate.held.front() else {
                return;
            };
            let Some((action, uri, options)) = authorizable(front)
                .map(|(action, uri, _, options)| (action, uri.to_owned(), options.clone()))
            else {
                session.gate.held.pop_front();
                continue;
            };
            if let Some(authorization) = session.gate.cached(action, &uri, ctx.now) {
                if let Some(message) = session.gate.held.pop_front() {
                    self.dispatch_decided(ctx, id, message, authorization);
                }
                continue;
            }
            let args = vec![
                Value::Dict(self.session_details(id).unwrap_or_default()),
                Value::String(uri),
                Value::from(action.name()),
                Value::Dict(options),
            ];
            let Some(authorizer) = self
                .sessions
                .get(&id)
                .and_then(|session| ctx.policies.authorizer(&self.name, &session.authrole))
                .map(str::to_owned)
            else {
                return;
            };
            let ticket = ctx.router_ids.next_id();
            let payload = Payload {
                args,
                kwargs: Dict::new(),
            };
            match self.call_for_router(ctx, ticket, &authorizer, payload) {
                Ok(()) => {
                    self.authorizing.insert(ticket, id);
                    if let Some(session) = self.sessions.get_mut(&id) {
                        session.gate.asking = Some(ticket);
                    }
                    return;
                }
                Err(reason) => {
                    log::warn!(realm = self.name, authorizer = authorizer, reason; "WAMP authorizer not called");
                    let held = self
                        .sessions
                        .get_mut(&id)
                        .and_then(|session| session.gate.held.pop_front());
                    if let Some(message) = held {
                        self.refuse_held(ctx, id, &message, reason.to_owned());
                    }
                }
            }
        }
    }

    /// The answer to the router's call `ticket`: an authorizer's is settled here, the rest
    /// (authenticators') go to the router.
    pub(super) fn answered(&mut self, ctx: &mut Ctx<'_>, ticket: u64, outcome: Outcome) {
        let Some(id) = self.authorizing.remove(&ticket) else {
            ctx.answers.push(Answer { ticket, outcome });
            return;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if session.gate.asking != Some(ticket) {
            return;
        }
        session.gate.asking = None;
        let Some(message) = session.gate.held.pop_front() else {
            return;
        };
        let decision = match &outcome {
            Outcome::Result(payload) => authorizer_answer(payload),
            Outcome::Error { .. } | Outcome::Failed(_) => None,
        };
        match decision {
            Some((authorization, cache)) => {
                if cache
                    && let Some(lifetime) = ctx.config.authorization_cache_lifetime
                    && let Some(until) = ctx.now.checked_add(lifetime)
                    && let Some((action, uri, ..)) = authorizable(&message)
                {
                    session.gate.remember(
                        action,
                        uri,
                        authorization,
                        until,
                        ctx.now,
                        ctx.config.max_cached_authorizations,
                    );
                }
                self.dispatch_decided(ctx, id, message, authorization);
            }
            None => {
                let reason = match outcome {
                    Outcome::Result(_) => {
                        "the answer is neither a bool nor {allow, disclose, cache}".to_owned()
                    }
                    other => other.failure(),
                };
                log::info!(realm = self.name, session = id, reason:% = reason; "WAMP authorizer failed");
                self.refuse_held(ctx, id, &message, reason);
            }
        }
        self.open_gate(ctx, id);
    }

    /// Carries out a held action with its authorizer's answer.
    fn dispatch_decided(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        message: Message,
        authorization: Authorization,
    ) {
        ctx.decided = Some(authorization);
        let result = self.dispatch(ctx, id, message);
        ctx.decided = None;
        if let Err(violation) = result {
            // The options were checked when it was held; only a reused request id is left.
            log::debug!(realm = self.name, session = id, reason:% = violation; "held WAMP action dropped");
        }
    }

    /// ERROR `wamp.error.authorization_failed` for a held action (none for a PUBLISH that
    /// asked no acknowledgement, as Crossbar).
    fn refuse_held(&self, ctx: &mut Ctx<'_>, id: u64, message: &Message, reason: String) {
        let (request_type, request, action) = match message {
            Message::Publish {
                request, options, ..
            } => {
                if !matches!(options.get("acknowledge"), Some(Value::Bool(true))) {
                    return;
                }
                (MessageType::Publish, *request, "publishing to topic")
            }
            Message::Subscribe { request, .. } => {
                (MessageType::Subscribe, *request, "subscribing to topic")
            }
            Message::Call { request, .. } => (MessageType::Call, *request, "calling procedure"),
            Message::Register { request, .. } => {
                (MessageType::Register, *request, "registering procedure")
            }
            _ => return,
        };
        let uri = authorizable(message).map_or("", |(_, uri, ..)| uri);
        let refusal = Refusal::AuthorizationFailed {
            action,
            uri: uri.to_owned(),
            reason,
        };
        self.send(
            id,
            refusal_message(request_type, request, &refusal),
            ctx.out,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::wamp_realm::{AuthMethod, RealmSettings, Role, WampRealms};
    use crate::router::auth::compute_wcs;
    use crate::router::auth::hex;
    use crate::router::auth::tests::{sign_challenge, signing_key};
    use crate::router::testing::{Harness, Out, config, invocation, registered, to};
    use crate::router::{Peer, RouterConfig};
    use crate::server::slab::Key;
    use crate::wamp::Serializer;

    /// realm1 with a dynamic authenticator `test.auth`, roles `member` (may do everything)
    /// and `dyn` (asks `test.authorize`); cookie sessions are `dyn`.
    fn dynamic_config() -> RouterConfig {
        let mut realms = WampRealms::NONE;
        realms.by_name.insert(
            "realm1".to_owned(),
            RealmSettings {
                auth: vec![
                    AuthMethod::Ticket,
                    AuthMethod::Wampcra,
                    AuthMethod::Cryptosign,
                ],
                anonymous_role: "anonymous".to_owned(),
                principals: Vec::new(),
                roles: vec![
                    Role {
                        name: "member".to_owned(),
                        permissions: vec![crate::router::auth::tests::permission(
                            "",
                            Match::Prefix,
                            &["call", "register", "publish", "subscribe"],
                        )],
                        authorizer: None,
                    },
                    Role {
                        name: "dyn".to_owned(),
                        permissions: Vec::new(),
                        authorizer: Some("test.authorize".to_owned()),
                    },
                ],
                authenticator: Some("test.auth".to_owned()),
            },
        );
        RouterConfig {
            authrole: "dyn".to_owned(),
            realm_settings: realms,
            max_waiting_authorizations: 3,
            ..config()
        }
    }

    /// The backend (trusted, never asked) registers `procedure`.
    fn backend_registers(h: &mut Harness, procedure: &str) -> Key {
        let control = h.key();
        registered(&h.backend(control, &format!(r#"[64,1,{{}},"{procedure}"]"#)));
        control
    }

    fn hello(h: &mut Harness, method: &str, authid: &str) -> (Key, Vec<Out>) {
        let key = h.connect_cookieless(Serializer::Json);
        let text = format!(
            r#"[1,"realm1",{{"roles":{{"caller":{{}}}},"authmethods":["{method}"],"authid":"{authid}"}}]"#
        );
        let out = h.send(key, &text);
        (key, out)
    }

    fn abort_reason(out: &[Out], key: Key) -> String {
        out.iter()
            .find_map(|out| match out {
                Out::To(to, Message::Abort { reason, .. }) if *to == key => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no ABORT in {out:?}"))
    }

    #[test]
    fn a_wampcra_login_gets_its_secret_and_role_from_the_authenticator() {
        let mut h = Harness::new(dynamic_config());
        let control = backend_registers(&mut h, "test.auth");
        let (key, out) = hello(&mut h, "wampcra", "carl");
        let (request, text) = invocation(&out, control);
        assert!(
            text.contains(r#"["realm1","carl",{"transport":{"type":"websocket"},"session":"#),
            "{text}"
        );
        assert!(
            text.contains(r#""authmethod":"wampcra","authid":"carl""#),
            "{text}"
        );
        // Nothing reaches the client until the authenticator answers.
        assert!(to(&out, key).is_empty());
        let answer =
            format!(r#"[70,{request},{{}},[{{"role":"member","secret":"s3","extra":{{"n":1}}}}]]"#);
        let out = h.backend(control, &answer);
        let [Out::To(_, Message::Challenge { extra, .. })] = out.as_slice() else {
            panic!("{out:?}");
        };
        let challenge = extra.str("challenge").unwrap().unwrap().to_owned();
        assert!(
            challenge.contains(r#""authprovider": "dynamic""#),
            "{challenge}"
        );
        assert!(challenge.contains(r#""authrole": "member""#), "{challenge}");
        let signature = compute_wcs(b"s3", challenge.as_bytes());
        let out = h.send(key, &format!(r#"[5,"{signature}",{{}}]"#));
        let [Out::To(_, Message::Welcome { details, .. }), ..] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(details.str("authid"), Some(Ok("carl")));
        assert_eq!(details.str("authrole"), Some(Ok("member")));
        assert_eq!(details.str("authprovider"), Some(Ok("dynamic")));
        let mut extra = Dict::new();
        extra.insert("n", Value::from(1_u64));
        assert_eq!(details.get("authextra"), Some(&Value::Dict(extra)));
    }

    #[test]
    fn a_wrong_signature_after_a_dynamic_secret_fails_like_any_login() {
        let mut h = Harness::new(dynamic_config());
        let control = backend_registers(&mut h, "test.auth");
        let (key, out) = hello(&mut h, "wampcra", "carl");
        let (request, _) = invocation(&out, control);
        h.backend(
            control,
            &format!(r#"[70,{request},{{}},[{{"role":"member","secret":"s3","salt":"x","iterations":10,"keylen":16}}]]"#),
        );
        let out = h.send(key, r#"[5,"bm90IGl0",{}]"#);
        assert_eq!(abort_reason(&out, key), "wamp.error.not_authorized");
        assert!(out.contains(&Out::LoginFailed(key)));
    }

    /// A cryptosign HELLO announcing test vector 0's public key, with `authid` if any.
    fn cryptosign_hello(h: &mut Harness, authid: Option<&str>) -> (Key, Vec<Out>) {
        let key = h.connect_cookieless(Serializer::Json);
        let pubkey = hex(signing_key(0).verifying_key().as_bytes());
        let authid = authid.map_or_else(String::new, |authid| format!(r#","authid":"{authid}""#));
        let text = format!(
            r#"[1,"realm1",{{"roles":{{"caller":{{}}}},"authmethods":["cryptosign"]{authid},"authextra":{{"pubkey":"{pubkey}"}}}}]"#
        );
        let out = h.send(key, &text);
        (key, out)
    }

    #[test]
    fn a_cryptosign_login_gets_its_key_and_role_from_the_authenticator() {
        let mut h = Harness::new(dynamic_config());
        let control = backend_registers(&mut h, "test.auth");
        let pubkey = hex(signing_key(0).verifying_key().as_bytes());
        for (authid, answer_authid, welcomed) in [
            (Some("cleo"), "", "cleo"),
            // No authid: the authenticator, asked with null, names it.
            (None, r#","authid":"cleo2""#, "cleo2"),
        ] {
            let (key, out) = cryptosign_hello(&mut h, authid);
            let (request, text) = invocation(&out, control);
            let asked_authid = authid.map_or("null".to_owned(), |authid| format!(r#""{authid}""#));
            assert!(
                text.contains(&format!(
                    r#""authmethod":"cryptosign","authid":{asked_authid},"authrole":null,"authextra":{{"pubkey":"{pubkey}"}}"#
                )),
                "{text}"
            );
            assert!(to(&out, key).is_empty());
            let answer = format!(
                r#"[70,{request},{{}},[{{"role":"member","pubkey":"{pubkey}"{answer_authid}}}]]"#
            );
            let out = h.backend(control, &answer);
            let [Out::To(_, Message::Challenge { method, extra })] = out.as_slice() else {
                panic!("{out:?}");
            };
            assert_eq!(method, "cryptosign");
            let signature = sign_challenge(&signing_key(0), extra);
            let out = h.send(key, &format!(r#"[5,"{signature}",{{}}]"#));
            let [Out::To(_, Message::Welcome { details, .. }), ..] = out.as_slice() else {
                panic!("{out:?}");
            };
            assert_eq!(details.str("authid"), Some(Ok(welcomed)));
            assert_eq!(details.str("authmethod"), Some(Ok("cryptosign")));
            assert_eq!(details.str("authprovider"), Some(Ok("dynamic")));
        }
        // The answer's key signs (Crossbar), whatever HELLO announced.
        let (key, out) = cryptosign_hello(&mut h, Some("cleo"));
        let (request, _) = invocation(&out, control);
        let other = hex(signing_key(1).verifying_key().as_bytes());
        let out = h.backend(
            control,
            &format!(r#"[70,{request},{{}},[{{"role":"member","pubkey":"{other}"}}]]"#),
        );
        let [Out::To(_, Message::Challenge { extra, .. })] = out.as_slice() else {
            panic!("{out:?}");
        };
        let signature = sign_challenge(&signing_key(0), extra);
        let out = h.send(key, &format!(r#"[5,"{signature}",{{}}]"#));
        assert_eq!(abort_reason(&out, key), "wamp.error.not_authorized");
        assert!(out.contains(&Out::LoginFailed(key)));
    }

    #[test]
    fn a_cryptosign_answer_needs_a_usable_pubkey_and_someone_names_the_authid() {
        let mut h = Harness::new(dynamic_config());
        let control = backend_registers(&mut h, "test.auth");
        let pubkey = hex(signing_key(0).verifying_key().as_bytes());
        for (authid, answer, reason) in [
            (
                Some("cleo"),
                r#"{"role":"member"}"#.to_owned(),
                "wamp.error.not_authorized",
            ),
            (
                Some("cleo"),
                r#"{"role":"member","pubkey":"00ff"}"#.to_owned(),
                "wamp.error.not_authorized",
            ),
            (
                None,
                format!(r#"{{"role":"member","pubkey":"{pubkey}"}}"#),
                NO_SUCH_PRINCIPAL,
            ),
        ] {
            let (key, out) = cryptosign_hello(&mut h, authid);
            let (request, _) = invocation(&out, control);
            let out = h.backend(control, &format!(r#"[70,{request},{{}},[{answer}]]"#));
            assert_eq!(abort_reason(&out, key), reason, "{answer}");
            assert!(!out.contains(&Out::LoginFailed(key)));
        }
    }

    #[test]
    fn a_ticket_is_judged_by_the_authenticator_after_authenticate() {
        let mut h = Harness::new(dynamic_config());
        let control = backend_registers(&mut h, "test.auth");
        let (key, out) = hello(&mut h, "ticket", "tina");
        assert_eq!(to(&out, key), vec![r#"[4,"ticket",{}]"#]);
        let out = h.send(key, r#"[5,"open sesame",{}]"#);
        let (request, text) = invocation(&out, control);
        assert!(text.contains(r#""ticket":"open sesame""#), "{text}");
        let out = h.backend(control, &format!(r#"[70,{request},{{}},["member"]]"#));
        let [Out::To(_, Message::Welcome { details, .. }), ..] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(details.str("authmethod"), Some(Ok("ticket")));
        assert_eq!(details.str("authrole"), Some(Ok("member")));
    }

    #[test]
    fn authenticator_errors_absence_timeouts_and_unknown_roles_abort() {
        let mut h = Harness::new(dynamic_config());
        // Not registered: refused at once.
        let (key, out) = hello(&mut h, "wampcra", "carl");
        assert_eq!(abort_reason(&out, key), "wamp.error.not_authorized");
        let control = backend_registers(&mut h, "test.auth");
        // An error: its URI and message, as Crossbar forwards them.
        let (key, out) = hello(&mut h, "wampcra", "carl");
        let (request, _) = invocation(&out, control);
        let out = h.backend(
            control,
            &format!(r#"[8,68,{request},{{}},"com.example.no_such_user",["who?"]]"#),
        );
        assert_eq!(
            to(&out, key),
            vec![r#"[3,{"message":"who?"},"com.example.no_such_user"]"#]
        );
        // A role the realm lacks.
        let (key, out) = hello(&mut h, "wampcra", "carl");
        let (request, _) = invocation(&out, control);
        let out = h.backend(
            control,
            &format!(r#"[70,{request},{{}},[{{"role":"king","secret":"s"}}]]"#),
        );
        assert_eq!(abort_reason(&out, key), "wamp.error.no_such_role");
        // No secret for wampcra, or nonsense.
        for answer in [r#"{"role":"member"}"#, "42"] {
            let (key, out) = hello(&mut h, "wampcra", "carl");
            let (request, _) = invocation(&out, control);
            let out = h.backend(control, &format!(r#"[70,{request},{{}},[{answer}]]"#));
            assert_eq!(abort_reason(&out, key), "wamp.error.not_authorized");
        }
        // No answer in dynamic_auth_timeout; the late answer does nothing.
        let (key, out) = hello(&mut h, "wampcra", "carl");
        let (request, _) = invocation(&out, control);
        let out = h.advance(Duration::from_secs(6));
        assert_eq!(abort_reason(&out, key), "wamp.error.not_authorized");
        let out = h.backend(control, &format!(r#"[70,{request},{{}},["member"]]"#));
        assert!(to(&out, key).is_empty(), "{out:?}");
        // The client left while the authenticator thought.
        let (key, out) = hello(&mut h, "wampcra", "carl");
        let (request, _) = invocation(&out, control);
        h.gone(Peer::Client(key));
        let out = h.backend(control, &format!(r#"[70,{request},{{}},["member"]]"#));
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(h.router.figures().sessions, 1);
    }

    /// A cookie session of role `dyn`, and the backend as its authorizer.
    fn dyn_session(h: &mut Harness) -> (Key, Key) {
        let control = backend_registers(h, "test.authorize");
        let (key, _) = h.join("dora");
        (key, control)
    }

    #[test]
    fn actions_wait_in_order_for_the_authorizer() {
        let mut h = Harness::new(dynamic_config());
        let (key, control) = dyn_session(&mut h);
        let out = h.send(key, r#"[32,1,{},"com.a"]"#);
        let (first, text) = invocation(&out, control);
        assert!(
            text.contains(r#""authid":"dora","authrole":"dyn""#),
            "{text}"
        );
        assert!(text.ends_with(r#""com.a","subscribe",{}]]"#), "{text}");
        // Held behind the first: no second question yet.
        let out = h.send(key, r#"[16,2,{"acknowledge":true},"com.b",[1]]"#);
        assert!(out.is_empty(), "{out:?}");
        let out = h.backend(control, &format!("[70,{first},{{}},[true]]"));
        let replies = to(&out, key);
        assert!(replies[0].starts_with("[33,1,"), "{replies:?}");
        let (second, text) = invocation(&out, control);
        assert!(
            text.contains(r#""com.b","publish",{"acknowledge":true}"#),
            "{text}"
        );
        let out = h.backend(
            control,
            &format!(r#"[70,{second},{{}},[{{"allow":false}}]]"#),
        );
        assert_eq!(
            to(&out, key),
            vec![
                r#"[8,16,2,{},"wamp.error.not_authorized",["session is not authorized to publish to 'com.b'"]]"#
            ]
        );
    }

    #[test]
    fn cached_answers_decide_alone_until_flushed_or_gone() {
        let mut h = Harness::new(dynamic_config());
        let (key, control) = dyn_session(&mut h);
        let out = h.send(key, r#"[48,1,{},"com.p"]"#);
        let (request, _) = invocation(&out, control);
        let out = h.backend(
            control,
            &format!(r#"[70,{request},{{}},[{{"allow":true,"cache":true}}]]"#),
        );
        // Allowed, then no such procedure: the call went on to the dealer.
        assert!(to(&out, key)[0].contains("wamp.error.no_such_procedure"));
        assert_eq!(h.router.figures().cached_authorizations, 1);
        let out = h.send(key, r#"[48,2,{},"com.p"]"#);
        assert_eq!(to(&out, key).len(), 1);
        assert!(
            !out.iter().any(|out| matches!(out, Out::Control(..))),
            "{out:?}"
        );
        // Another session of the same role asks for itself (never per role).
        let (other, _) = h.join("olga");
        let out = h.send(other, r#"[48,1,{},"com.p"]"#);
        invocation(&out, control);
        assert_eq!(h.router.flush_authorizations(Some("nobody")), 0);
        assert_eq!(h.router.flush_authorizations(Some("dora")), 1);
        let out = h.send(key, r#"[48,3,{},"com.p"]"#);
        let (request, _) = invocation(&out, control);
        h.backend(
            control,
            &format!(r#"[70,{request},{{}},[{{"allow":true,"cache":true}}]]"#),
        );
        assert_eq!(h.router.figures().cached_authorizations, 1);
        h.gone(Peer::Client(key));
        assert_eq!(h.router.figures().cached_authorizations, 0);
    }

    #[test]
    fn authorizer_failures_are_authorization_failed() {
        let mut h = Harness::new(dynamic_config());
        let (key, control) = dyn_session(&mut h);
        // An error, nonsense, a timeout.
        let out = h.send(key, r#"[32,1,{},"com.a"]"#);
        let (request, _) = invocation(&out, control);
        let out = h.backend(control, &format!(r#"[8,68,{request},{{}},"com.oops",[]]"#));
        assert_eq!(
            to(&out, key),
            vec![
                r#"[8,32,1,{},"wamp.error.authorization_failed",["failed to authorize session for subscribing to topic 'com.a': com.oops"]]"#
            ]
        );
        let out = h.send(key, r#"[32,2,{},"com.a"]"#);
        let (request, _) = invocation(&out, control);
        let out = h.backend(control, &format!(r#"[70,{request},{{}},[{{"allow":1}}]]"#));
        assert!(to(&out, key)[0].contains("authorization_failed"));
        let out = h.send(key, r#"[64,3,{},"com.r"]"#);
        invocation(&out, control);
        let out = h.advance(Duration::from_secs(6));
        assert!(to(&out, key)[0].starts_with(r#"[8,64,3,{},"wamp.error.authorization_failed""#));
        // Bad options are a violation now, not when an answer comes; bad URIs are refused
        // unasked.
        let out = h.send(key, r#"[32,4,{},"com..bad"]"#);
        assert!(to(&out, key)[0].contains("wamp.error.invalid_uri"));
        // Held past max_waiting_authorizations (3): refused at once.
        let out = h.send(key, r#"[32,5,{},"com.x"]"#);
        invocation(&out, control);
        h.send(key, r#"[32,6,{},"com.x"]"#);
        h.send(key, r#"[32,7,{},"com.x"]"#);
        let out = h.send(key, r#"[32,8,{},"com.x"]"#);
        assert!(to(&out, key)[0].starts_with(r#"[8,32,8,{},"wamp.error.authorization_failed""#));
        let out = h.send(key, r#"[32,9,{"match":7},"com.x"]"#);
        assert!(
            matches!(out.first(), Some(Out::To(_, Message::Abort { .. }))),
            "{out:?}"
        );
    }

    #[test]
    fn a_backend_of_another_role_than_trusted_is_checked_like_a_client() {
        let backend_as = |role: &str| {
            Harness::new(RouterConfig {
                backend_authrole: role.to_owned(),
                ..dynamic_config()
            })
        };
        let mut h = backend_as("member");
        let control = h.key();
        registered(&h.backend(control, r#"[64,1,{},"test.authorize"]"#));
        let mut h = backend_as("nobody");
        let control = h.key();
        let out = h.backend(control, r#"[64,1,{},"test.authorize"]"#);
        assert!(
            to(&out, control)[0].contains("wamp.error.not_authorized"),
            "{out:?}"
        );
        // A role with an authorizer asks it, even for registering the authorizer itself.
        let mut h = backend_as("dyn");
        let control = h.key();
        let out = h.backend(control, r#"[64,1,{},"test.authorize"]"#);
        assert!(
            to(&out, control)[0].contains("the procedure is not registered"),
            "{out:?}"
        );
    }

    #[test]
    fn without_a_registered_authorizer_every_action_fails() {
        let mut h = Harness::new(dynamic_config());
        let (key, _) = h.join("dora");
        let out = h.send(key, r#"[16,1,{"acknowledge":true},"com.b",[]]"#);
        assert!(to(&out, key)[0].contains("the procedure is not registered"));
        // Without acknowledge, no reply (as Crossbar).
        let out = h.send(key, r#"[16,2,{},"com.b",[]]"#);
        assert!(to(&out, key).is_empty());
    }

    fn payload(value: Value) -> Payload {
        Payload {
            args: vec![value],
            kwargs: Dict::new(),
        }
    }

    fn dict(pairs: &[(&str, Value)]) -> Value {
        let mut dict = Dict::new();
        for (key, value) in pairs {
            dict.insert(*key, value.clone());
        }
        Value::Dict(dict)
    }

    #[test]
    fn authorizer_answers_as_crossbar_reads_them() {
        let allow = Authorization {
            allow: true,
            disclose: false,
        };
        assert_eq!(
            authorizer_answer(&payload(Value::Bool(true))),
            Some((allow, false))
        );
        assert_eq!(
            authorizer_answer(&payload(dict(&[
                ("allow", Value::Bool(true)),
                ("disclose", Value::Bool(true)),
                ("cache", Value::Bool(true)),
            ]))),
            Some((
                Authorization {
                    allow: true,
                    disclose: true
                },
                true
            ))
        );
        // Unknown keys, non-boolean values, other types: no answer.
        for bad in [
            dict(&[("allow", Value::Bool(true)), ("role", Value::Bool(true))]),
            dict(&[("allow", Value::from("yes"))]),
            Value::from(1_u64),
            Value::Null,
        ] {
            assert_eq!(authorizer_answer(&payload(bad)), None);
        }
        assert_eq!(authorizer_answer(&Payload::default()), None);
    }

    #[test]
    fn principals_as_crossbar_reads_them() {
        let role = principal(&payload(Value::from("basic-user")), 1000).unwrap();
        assert_eq!(role.role, "basic-user");
        let full = principal(
            &payload(dict(&[
                ("role", Value::from("app-user")),
                ("secret", Value::from("abc")),
                ("authid", Value::from("alice2")),
                ("salt", Value::from("s")),
                ("iterations", Value::from(10_u64)),
                ("extra", dict(&[("x", Value::from(1_u64))])),
                ("disclose", Value::Bool(true)),
            ])),
            1000,
        )
        .unwrap();
        assert_eq!(full.secret.as_deref(), Some("abc"));
        assert_eq!(full.authid.as_deref(), Some("alice2"));
        assert_eq!(full.salted, Some(("s".to_owned(), 10, 32)));
        assert_eq!(full.pubkey, None);
        assert!(full.extra.is_some());
        for bad in [
            dict(&[("secret", Value::from("abc"))]),
            dict(&[("role", Value::from(""))]),
            dict(&[("role", Value::from(1_u64))]),
            dict(&[("role", Value::from("r")), ("pubkey", Value::from(1_u64))]),
            dict(&[
                ("role", Value::from("r")),
                ("salt", Value::from("s")),
                ("iterations", Value::from(1001_u64)),
            ]),
            Value::Null,
        ] {
            assert!(principal(&payload(bad), 1000).is_err());
        }
    }

    #[test]
    fn the_cache_forgets_stale_answers_and_stays_bounded() {
        let now = Instant::now();
        let allow = Authorization {
            allow: true,
            disclose: false,
        };
        let mut gate = Gate::default();
        let soon = now + Duration::from_secs(1);
        gate.remember(Action::Call, "a", allow, soon, now, 2);
        assert_eq!(gate.cached(Action::Call, "a", now), Some(allow));
        assert_eq!(gate.cached(Action::Publish, "a", now), None);
        assert_eq!(gate.cached(Action::Call, "a", soon), None);
        gate.remember(Action::Call, "a", allow, soon, now, 2);
        gate.remember(Action::Call, "b", allow, soon, now, 2);
        gate.remember(Action::Call, "c", allow, soon, now, 2);
        assert!(gate.cached_count() <= 2);
        assert_eq!(gate.cached(Action::Call, "c", now), Some(allow));
        assert_eq!(gate.flush(), 1);
        assert_eq!(gate.cached_count(), 0);
    }

    #[test]
    fn replies_to_the_router_become_outcomes() {
        let mut details = Dict::new();
        details.insert("progress", Value::Bool(true));
        let progress = Message::Result {
            request: 7,
            details,
            payload: Payload::default(),
        };
        assert_eq!(Outcome::of_reply(progress), None);
        let result = Message::Result {
            request: 7,
            details: Dict::new(),
            payload: payload(Value::Bool(true)),
        };
        assert_eq!(
            Outcome::of_reply(result),
            Some((7, Outcome::Result(payload(Value::Bool(true)))))
        );
    }
}
