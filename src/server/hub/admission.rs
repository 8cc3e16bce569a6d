//! Admission: a socket accepted or refused at `max_connections`, an upgrade admitted
//! (`token_reuse`, the seat, the user's topics, the 101) and, with an authorizer, held until
//! its answer, a fallback, or a timeout. With `[cluster]`, the authorizer may be another
//! node's, and `token_reuse = "refuse"` holds an upgrade until its token is claimed
//! cluster-wide (`cluster_admission.rs`), in the same table of waiting upgrades.

use super::*;
use crate::server::conn::App;
use authorizer::{Claimed, WaitingFor};

/// The wson user of every connection admitted without cookies for a WAMP login, whatever
/// its WAMP authid: the hub indexes each connection under a user, and the WAMP login comes
/// after the upgrade. The control socket sees them all as this one user.
pub const WAMP_LOGIN_USER: &str = "wamp:login";

/// Who an admitted connection is.
pub(super) struct Admission<'a> {
    pub token: Token,
    pub user: &'a str,
    /// When its token expires, Unix seconds.
    pub expires_at: u64,
    pub upgrade: &'a Upgrade,
}

/// What the cluster-wide claim of a token (`token_reuse = "refuse"`) says for now.
pub(super) enum ClaimStep {
    /// No claim needed or possible (no cluster, Redis away): admit on this node's knowledge.
    Admit,
    /// Asked: the upgrade waits for the answer.
    Wait,
    /// An upgrade of this node's is claiming the same token: refused as connected.
    Busy,
}

impl Hub {
    /// Takes a freshly accepted connection, or refuses it: closed at once when its address
    /// is blocked, a 503 at `max_connections`, a 429 over a per-address limit (refused
    /// sockets no longer count toward `max_connections`; at most `max_lingering` are kept
    /// while their response goes out). Returns the key to register the stream under, or
    /// `None` when nothing is kept.
    pub fn admit_socket(
        &mut self,
        mut stream: Stream,
        listener: usize,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) -> Option<Key> {
        stats.connections_accepted += 1;
        let peer = stream.peer_address();
        if let Some(PeerAddress::Ip(address)) = peer
            && in_ranges(&settings.access.blocked, address)
        {
            // Nothing is sent: a blocked peer learns nothing and costs no write; dropping
            // the stream closes it.
            stats.refused_blocked += 1;
            log::warn!(peer = stream.peer(), reason = "blocked address"; "connection refused");
            return None;
        }
        let behind_proxy =
            peer.is_some_and(|peer| is_trusted(&settings.access.trusted_proxies, peer));
        let mut charged = None;
        let refusal = if self.live >= settings.max_connections {
            log::warn!(
                peer = stream.peer(),
                status = 503,
                reason = "max_connections reached",
                max_connections = settings.max_connections;
                "connection refused"
            );
            Some((Status::ServiceUnavailable, None, "max_connections reached"))
        } else {
            // A proxy carries many clients: its forwarded address is judged with the head.
            match peer {
                Some(PeerAddress::Ip(address)) if !behind_proxy => {
                    match self.access.admit(address, &settings.access_limits(), now) {
                        Admit::Charged(key) => {
                            charged = Some(key);
                            None
                        }
                        Admit::Untracked => None,
                        Admit::Refused(limited) => {
                            let retry_after = limited.retry_after(settings.busy_retry_after());
                            stats.refused_rate_limited += 1;
                            log::warn!(
                                peer = stream.peer(),
                                status = 429,
                                retry_after,
                                reason = limited.reason();
                                "connection refused"
                            );
                            Some((Status::TooManyRequests, Some(retry_after), limited.reason()))
                        }
                    }
                }
                Some(PeerAddress::Ip(_) | PeerAddress::Unix) | None => None,
            }
        };
        if let Some((status, retry_after, why)) = refusal {
            stats.refused(status.code());
            if self.winding >= settings.max_lingering {
                // No room to linger: best effort, the fresh socket's buffer takes a short
                // response.
                let _ = std::io::Write::write(
                    &mut stream,
                    &handshake::refusal_response(status, retry_after, why),
                );
                return None;
            }
        }
        let mut conn = Conn::new(stream, now, settings);
        if let Some((status, retry_after, why)) = refusal {
            // Kept until the response is written and the peer has closed, so its request
            // does not turn our close into a reset that destroys the response.
            conn.refuse(status, retry_after, why, settings, now);
        }
        let refuse = refusal.is_some();
        let inserted = self.clients.insert(Client {
            conn,
            listener,
            seat: None,
            waiting: None,
            winding: refuse,
            flush_scheduled: false,
            staged: staging::UNMARKED,
            charged,
            behind_proxy,
        });
        let Some(key) = inserted else {
            if let Some(address) = charged {
                self.access.release(address);
            }
            return None;
        };
        if refuse {
            self.winding += 1;
        } else {
            self.live += 1;
        }
        if let Some(load) = self.listeners.get_mut(listener) {
            load.connections += 1;
        }
        Some(key)
    }

    /// An upgrade that passed its checks: admitted now, or after the authorizer answers.
    pub(super) fn upgrade(
        &mut self,
        key: Key,
        upgrade: Upgrade,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        if upgrade.wamp_login {
            self.admit_for_wamp_login(key, &upgrade, settings, stats, now);
            return;
        }
        match (settings.auth, &upgrade.identity) {
            (AuthMode::Cookie, Some(identity)) => {
                let admission = Admission {
                    token: identity.token,
                    user: &identity.user,
                    expires_at: identity.expires_at,
                    upgrade: &upgrade,
                };
                self.admit(key, &admission, &[], settings, stats, now);
            }
            // A reload switched `auth` between the check and now: ask, as it says now.
            (AuthMode::Cookie, None)
            | (AuthMode::Authorizer | AuthMode::CookieAndAuthorizer, _) => {
                self.ask_authorizer(key, upgrade, settings, stats, now);
            }
        }
    }

    /// Admits an upgrade without cookies for a WAMP login: a fresh random token (as for the
    /// authorizer), the user [`WAMP_LOGIN_USER`]. Refused with 403, as a plain client without
    /// cookies, when a reload turned the WAMP logins off since the check.
    fn admit_for_wamp_login(
        &mut self,
        key: Key,
        upgrade: &Upgrade,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        if !crate::server::conn::wamp_login_possible(settings, &upgrade.protocols)
            || matches!(
                self.choose_app(&upgrade.protocols),
                App::Plain | App::WampV1
            )
        {
            self.deny(key, 403, "no wson cookies", settings, stats, now);
            return;
        }
        let mut random = [0u8; 32];
        if getrandom::fill(&mut random).is_err() {
            self.deny(key, 503, "no randomness for a token", settings, stats, now);
            return;
        }
        let admission = Admission {
            token: auth::token_from_random(random),
            user: WAMP_LOGIN_USER,
            expires_at: auth::unix_now().saturating_add(settings.token_lifetime.as_secs()),
            upgrade,
        };
        self.admit(key, &admission, &[], settings, stats, now);
    }

    /// Admits an upgrade: `token_reuse` decides about a token already held, then the
    /// connection takes its seat, joins its user's topics and `topics`, and gets its 101.
    fn admit(
        &mut self,
        key: Key,
        admission: &Admission<'_>,
        topics: &[&str],
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        if !self.admitting(key) {
            return;
        }
        let token = admission.token;
        let holders = self.holders(&token).to_vec();
        if !holders.is_empty() {
            match settings.users.token_reuse {
                TokenReuse::Refuse => {
                    let reason = "token already connected";
                    self.refuse_busy(key, admission.user, reason, settings, stats, now);
                    return;
                }
                TokenReuse::Replace => {
                    for holder in holders {
                        self.end_session(
                            holder,
                            CLOSE_REPLACED,
                            "replaced",
                            DisconnectCause::Replaced,
                            settings,
                            now,
                        );
                    }
                }
                TokenReuse::Share => {}
            }
        }
        // A token from cookies may be another node's too (a fresh random one cannot).
        if admission.upgrade.identity.is_some() {
            match settings.users.token_reuse {
                TokenReuse::Refuse => {
                    let claim = Claimed {
                        token,
                        user: admission.user.to_owned(),
                        expires_at: admission.expires_at,
                        topics: topics.iter().map(|topic| (*topic).to_owned()).collect(),
                    };
                    match self.cluster_claim(key, claim, admission.upgrade, settings, now) {
                        ClaimStep::Admit => {}
                        ClaimStep::Wait => return,
                        ClaimStep::Busy => {
                            let reason = "token being claimed";
                            self.refuse_busy(key, admission.user, reason, settings, stats, now);
                            return;
                        }
                    }
                }
                TokenReuse::Replace => self.cluster_replace(token),
                TokenReuse::Share => {}
            }
        }
        self.open_seat(key, admission, topics, settings, stats, now);
    }

    /// Refuses an upgrade whose token is connected already (`token_reuse = "refuse"`): 429,
    /// with a `Retry-After` by which a dead holder is found.
    pub(super) fn refuse_busy(
        &mut self,
        key: Key,
        user: &str,
        reason: &str,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        log::warn!(
            peer = client.conn.peer(),
            status = 429,
            reason,
            user;
            "handshake refused"
        );
        stats.refused(429);
        let retry = settings.busy_retry_after();
        client
            .conn
            .refuse(Status::TooManyRequests, Some(retry), reason, settings, now);
        self.settle(key, settings);
    }

    /// The client is still waiting for its upgrade's answer (not gone, not refused).
    fn admitting(&self, key: Key) -> bool {
        self.clients
            .get(key)
            .is_some_and(|client| client.conn.is_admitting())
    }

    /// Opens an admitted upgrade: the connection takes its seat, joins its user's topics
    /// and `topics`, and gets its 101.
    pub(super) fn open_seat(
        &mut self,
        key: Key,
        admission: &Admission<'_>,
        topics: &[&str],
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        if !self.admitting(key) {
            return;
        }
        let token = admission.token;
        let app = self.choose_app(&admission.upgrade.protocols);
        let user = self.users.join(admission.user, key);
        self.tokens.entry(token).or_default().push(key);
        let listener_name = {
            let Some(client) = self.clients.get_mut(key) else {
                return;
            };
            log::debug!(peer = client.conn.peer(), user = admission.user; "client open");
            client.seat = Some(Seat {
                token,
                user: Rc::clone(&user),
                topics: Vec::new(),
                resume: match app {
                    App::Plain => admission.upgrade.resume.clone(),
                    App::Wamp(_) | App::WampV1 => None,
                },
            });
            self.listeners
                .get(client.listener)
                .map(|load| load.name.clone())
                .unwrap_or_default()
        };
        if let Some(client) = self.clients.get(key) {
            let remote = client.conn.peer();
            let upgrade = admission.upgrade;
            self.events.emit(&Event::Connected {
                token,
                user: &user,
                listener: &listener_name,
                remote: &remote,
                origin: upgrade.origin.as_deref().unwrap_or(""),
                path: &upgrade.path,
                subprotocol: match app {
                    App::Plain => "",
                    App::Wamp(serializer) => serializer.subprotocol(),
                    App::WampV1 => crate::wamp::v1::SUBPROTOCOL,
                },
            });
        }
        if let App::Wamp(serializer) = app {
            let cookie_user = (!admission.upgrade.wamp_login).then_some(&*user);
            self.open_wamp(key, serializer, cookie_user, now);
        }
        if app == App::WampV1 {
            // v1 has no login of its own: only the cookies' user (None: the router closes).
            let cookie_user = (!admission.upgrade.wamp_login).then_some(&*user);
            self.router
                .open_v1(key, cookie_user, now, &mut self.actions);
        }
        // Plain topics carry plain messages: a WAMP session subscribes through the router.
        let topics = if app == App::Plain { topics } else { &[] };
        let user_topics = if app == App::Plain {
            self.users.subscriptions(&user).to_vec()
        } else {
            Vec::new()
        };
        // The user subscriptions that ask for the retained event: the router's pending work
        // first (`settle_before_retained`), and the topics its `resume` does not name.
        let mut retained = Vec::new();
        for held in &user_topics {
            let Some(name) = self.topics.name(held.topic).cloned() else {
                continue;
            };
            if self.retained_due(&[key], &name, held.options).is_empty() {
                continue;
            }
            if retained.is_empty() {
                self.settle_before_retained(held.options, settings, stats);
            }
            retained.push((held.topic, name));
        }
        for topic in user_topics.iter().map(|held| held.topic) {
            if self.join_topic(key, topic, settings).is_err() {
                log::warn!(
                    user = &*user,
                    reason = Refusal::TopicLimitPerConnection.reason();
                    "user subscription not applied to a new connection"
                );
            }
        }
        for name in topics {
            let joined = self
                .topics
                .get_or_create(name, settings.topics.max_topics)
                .map_err(|_| Refusal::TopicLimit)
                .and_then(|topic| self.join_topic(key, topic, settings));
            if let Err(refusal) = joined {
                log::warn!(
                    user = &*user,
                    topic = *name,
                    reason = refusal.reason();
                    "authorizer topic not joined"
                );
            }
        }
        let accepted = self.with_session(key, settings, stats, now, |conn, ctx| {
            conn.accept(admission.expires_at, app, ctx)
        });
        match accepted {
            Some(Ok(())) => {
                // After the 101 and in the same turn: what it missed, and the retained
                // events its user subscriptions ask for, go before anything published from
                // now on.
                self.resume_joined(key, settings, stats);
                for (topic, name) in &retained {
                    let joined = self
                        .clients
                        .get(key)
                        .and_then(|client| client.seat.as_ref())
                        .is_some_and(|seat| seat.topics.contains(topic));
                    if joined {
                        self.send_retained(&[key], name, settings, stats);
                    }
                }
                self.settle(key, settings);
            }
            Some(Err(gone)) => self.close(key, &gone),
            None => {}
        }
    }

    /// Sends the upgrade to an authorizer and keeps it waiting, or falls back.
    fn ask_authorizer(
        &mut self,
        key: Key,
        upgrade: Upgrade,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        if self.authorizers.waiting() >= settings.authorizer.max_pending {
            log::warn!(
                status = 503,
                reason = "too many upgrades wait for the authorizer",
                max_pending = settings.authorizer.max_pending;
                "handshake refused"
            );
            self.deny(
                key,
                503,
                "too many upgrades wait for the authorizer",
                settings,
                stats,
                now,
            );
            return;
        }
        let Some(client) = self.clients.get(key) else {
            return;
        };
        let id = self.authorizers.new_id();
        let remote = client.conn.peer();
        let listener = self
            .listeners
            .get(client.listener)
            .map_or("", |load| load.name.as_str());
        let (path, query) = upgrade
            .path
            .split_once('?')
            .unwrap_or((upgrade.path.as_str(), ""));
        let request = AuthRequest {
            id,
            listener,
            remote: &remote,
            origin: upgrade.origin.as_deref().unwrap_or(""),
            path,
            query,
            cookie: &upgrade.cookies,
            token: upgrade.identity.as_ref().map(|identity| identity.token),
            user: upgrade
                .identity
                .as_ref()
                .map_or("", |identity| identity.user.as_str()),
        };
        let mut bytes = Vec::new();
        request.encode(&mut bytes);
        let request: Rc<[u8]> = Rc::from(bytes);
        let Some(authorizer) = self.authorizers.pick() else {
            // None here: another node's, when one has any.
            if let Some(node) = self.cluster_authorizer_node(now) {
                let deadline = now + settings.authorizer.timeout;
                self.forward_authorization(&node, &request);
                self.authorizers.wait(
                    id,
                    Waiting {
                        deadline,
                        what: WaitingFor::OtherNode {
                            client: key,
                            upgrade,
                            node,
                        },
                    },
                );
                if let Some(client) = self.clients.get_mut(key) {
                    client.waiting = Some(id);
                }
                return;
            }
            let why = match self.clustered() {
                true => "no authorizer connected on any node",
                false => "no authorizer connected",
            };
            self.fall_back(key, upgrade, why, settings, stats, now);
            return;
        };
        self.events.send(authorizer, Rc::clone(&request));
        self.authorizers.wait(
            id,
            Waiting {
                deadline: now + settings.authorizer.timeout,
                what: WaitingFor::Authorizer {
                    client: key,
                    upgrade,
                    authorizer,
                    request,
                },
            },
        );
        if let Some(client) = self.clients.get_mut(key) {
            client.waiting = Some(id);
        }
    }

    /// The authorizer's answer to request `id`; an id no longer waiting is ignored. With
    /// `auth = "authorizer"` an allow must name the user (the commands layer checks).
    pub fn decide(
        &mut self,
        id: u64,
        decision: &Decision<'_>,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        let Some(waiting) = self.authorizers.take_authorization(id) else {
            log::debug!(id; "authorizer answer for no waiting upgrade");
            return;
        };
        match waiting.what {
            WaitingFor::Authorizer {
                client, upgrade, ..
            }
            | WaitingFor::OtherNode {
                client, upgrade, ..
            } => self.apply_decision(client, &upgrade, decision, settings, stats, now),
            WaitingFor::Relayed { node, id, .. } => {
                self.answer_relayed(&node, id, Some(*decision));
            }
            // `take_authorization` leaves claims where they are.
            WaitingFor::Claim { .. } => {}
        }
    }

    /// Admits or refuses upgrade `key` as an authorizer decided (this node's or another's).
    pub(super) fn apply_decision(
        &mut self,
        key: Key,
        upgrade: &Upgrade,
        decision: &Decision<'_>,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        if let Some(client) = self.clients.get_mut(key) {
            client.waiting = None;
        }
        match decision {
            Decision::Allow { user, topics } => {
                let topics: Vec<&str> = topics.iter().map(|topic| topic.as_str()).collect();
                self.allow(key, upgrade, *user, &topics, settings, stats, now);
            }
            Decision::Deny { status, reason } => {
                log::warn!(status = *status, reason = "authorizer denied"; "handshake refused");
                self.deny(key, *status, reason, settings, stats, now);
            }
        }
        self.to_drive.push(key);
    }

    /// Admits a waiting upgrade as `user` (or the cookie's user); with no cookies wson
    /// gives the connection a token of its own, valid for `token_lifetime`.
    #[allow(clippy::too_many_arguments)]
    fn allow(
        &mut self,
        key: Key,
        upgrade: &Upgrade,
        user: Option<&str>,
        topics: &[&str],
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        let cookie_user = upgrade
            .identity
            .as_ref()
            .map(|identity| identity.user.as_str());
        let Some(user) = user.or(cookie_user) else {
            // The commands layer refuses such an answer; a fallback never gives one.
            self.deny(
                key,
                500,
                "the authorizer named no user",
                settings,
                stats,
                now,
            );
            return;
        };
        let (token, expires_at) = match &upgrade.identity {
            Some(identity) => (identity.token, identity.expires_at),
            None => {
                let mut random = [0u8; 32];
                if getrandom::fill(&mut random).is_err() {
                    self.deny(key, 503, "no randomness for a token", settings, stats, now);
                    return;
                }
                (
                    auth::token_from_random(random),
                    auth::unix_now().saturating_add(settings.token_lifetime.as_secs()),
                )
            }
        };
        let admission = Admission {
            token,
            user,
            expires_at,
            upgrade,
        };
        self.admit(key, &admission, topics, settings, stats, now);
    }

    fn deny(
        &mut self,
        key: Key,
        status: u16,
        reason: &str,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        stats.refused(status);
        client
            .conn
            .refuse_with(handshake::denial_response(status, reason), settings, now);
        self.settle(key, settings);
    }

    /// No authorizer answered (none connected, gone, or too slow): the configured fallback.
    pub(super) fn fall_back(
        &mut self,
        key: Key,
        upgrade: Upgrade,
        why: &str,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        match settings.authorizer.fallback {
            AuthorizerFallback::Allow if upgrade.identity.is_some() => {
                log::warn!(reason = why; "upgrade allowed by the fallback");
                self.allow(key, &upgrade, None, &[], settings, stats, now);
            }
            AuthorizerFallback::Allow | AuthorizerFallback::Deny => {
                let status = settings.authorizer.fallback_status;
                log::warn!(status, reason = why; "handshake refused");
                self.deny(key, status, why, settings, stats, now);
            }
        }
        self.to_drive.push(key);
    }

    /// The upgrades whose authorizer took too long fall back.
    pub(super) fn expire_authorizations(
        &mut self,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        for id in self.authorizers.expired(now) {
            let why = "the authorizer did not answer in time";
            self.stop_waiting(id, why, settings, stats, now);
        }
    }

    /// Request `id` gets no answer any more: its upgrade stops waiting and falls back.
    pub(super) fn stop_waiting(
        &mut self,
        id: u64,
        why: &str,
        settings: &Settings,
        stats: &mut Stats,
        now: Instant,
    ) {
        let Some(waiting) = self.authorizers.take(id) else {
            return;
        };
        match waiting.what {
            WaitingFor::Authorizer {
                client, upgrade, ..
            }
            | WaitingFor::OtherNode {
                client, upgrade, ..
            } => {
                if let Some(waiting) = self.clients.get_mut(client) {
                    waiting.waiting = None;
                }
                self.fall_back(client, upgrade, why, settings, stats, now);
            }
            // The asking node falls back, now rather than at its own deadline.
            WaitingFor::Relayed { node, id, .. } => self.answer_relayed(&node, id, None),
            WaitingFor::Claim {
                client,
                upgrade,
                admission,
            } => self.claim_unanswered(client, &upgrade, &admission, settings, stats, now),
        }
    }
}
