//! What the backend asks of users and topics: counts and pages, kicks, subscriptions. A
//! connection joins or leaves a topic here, with its `subscribed`/`unsubscribed` and
//! `join`/`leave` events.

use super::delivery::{Message as PlainMessage, Outgoing};
use super::*;
use crate::control::subscribe::JoinOptions;
use crate::router::plain;
use crate::server::conn::{App, Audience};

/// The page of a list reply from one page of names and counts.
fn page_reply(items: Vec<(Rc<str>, usize)>, more: bool) -> Page {
    let next_cursor = match (more, items.last()) {
        (true, Some((name, _))) => name.as_bytes().to_vec(),
        (true, None) | (false, _) => Vec::new(),
    };
    Page {
        next_cursor,
        items: items
            .into_iter()
            .map(|(name, count)| (name.as_bytes().to_vec(), count as u64))
            .collect(),
    }
}
impl Hub {
    /// The user's open connections.
    pub fn user_connections(&self, user: &str) -> usize {
        self.users.connections(user).len()
    }

    /// A page of the user's tokens with the open connections holding each.
    pub fn user_tokens(&self, user: &str, page: &PageRequest<'_>, max_list_page: usize) -> Page {
        let mut counts: std::collections::BTreeMap<Token, usize> =
            std::collections::BTreeMap::new();
        for key in self.users.connections(user) {
            if let Some(seat) = self
                .clients
                .get(*key)
                .and_then(|client| client.seat.as_ref())
            {
                *counts.entry(seat.token).or_default() += 1;
            }
        }
        let limit = page.limit_within(max_list_page);
        let mut after = counts.into_iter().filter(|(token, _)| {
            page.cursor.is_empty() || token.as_bytes().as_slice() > page.cursor
        });
        let items: Vec<(Vec<u8>, u64)> = after
            .by_ref()
            .take(limit)
            .map(|(token, count)| (token.as_bytes().to_vec(), count as u64))
            .collect();
        let more = after.next().is_some();
        let next_cursor = match (more, items.last()) {
            (true, Some((token, _))) => token.clone(),
            (true, None) | (false, _) => Vec::new(),
        };
        Page { next_cursor, items }
    }

    /// A page of the online users with their open connections.
    pub fn online_users(&self, page: &PageRequest<'_>, max_list_page: usize) -> Page {
        let (items, more) = self
            .users
            .page(page.cursor, page.limit_within(max_list_page));
        page_reply(items, more)
    }

    /// Closes every open connection holding `token` with this Close; returns how many.
    pub fn kick_token(
        &mut self,
        token: &Token,
        code: u16,
        reason: &str,
        settings: &Settings,
        now: Instant,
    ) -> usize {
        let holders = self.holders(token).to_vec();
        self.kick(&holders, code, reason, settings, now)
    }

    /// Closes every open connection of `user` with this Close; returns how many.
    pub fn kick_user(
        &mut self,
        user: &str,
        code: u16,
        reason: &str,
        settings: &Settings,
        now: Instant,
    ) -> usize {
        let connections = self.users.connections(user).to_vec();
        self.kick(&connections, code, reason, settings, now)
    }

    fn kick(
        &mut self,
        keys: &[Key],
        code: u16,
        reason: &str,
        settings: &Settings,
        now: Instant,
    ) -> usize {
        for &key in keys {
            self.end_session(key, code, reason, DisconnectCause::Kicked, settings, now);
        }
        keys.len()
    }

    /// Subscribes the open connections holding `token`; returns how many are subscribed
    /// now. All or nothing: a connection at `max_per_connection` refuses the whole command.
    /// With `get_retained`, each gets the topic's retained event in the same step (one
    /// already subscribed too, as a second WAMP SUBSCRIBE gets it again).
    pub fn subscribe_token(
        &mut self,
        token: &Token,
        topic: &str,
        options: JoinOptions,
        settings: &Settings,
        stats: &mut Stats,
    ) -> Result<usize, Refusal> {
        self.settle_before_retained(options, settings, stats);
        let holders = self.plain_only(self.holders(token));
        if holders.is_empty() {
            return Ok(0);
        }
        let due = self.retained_due(&holders, topic, options);
        let subscribed = self.subscribe_connections(&holders, topic, settings)?;
        for key in holders {
            self.resume_joined(key, settings, stats);
        }
        self.send_retained(&due, topic, settings, stats);
        Ok(subscribed)
    }

    /// Subscribes a user: every current connection now, and every future one until
    /// `unsubscribe_user`, each with `options` (a later `J` replaces them). Returns the
    /// current connections subscribed.
    pub fn subscribe_user(
        &mut self,
        user: &str,
        topic: &str,
        options: JoinOptions,
        settings: &Settings,
        stats: &mut Stats,
    ) -> Result<usize, Refusal> {
        self.settle_before_retained(options, settings, stats);
        let connections = self.plain_only(self.users.connections(user));
        self.check_room(&connections, topic, settings)?;
        let known = self.topics.get(topic).is_some_and(|id| {
            self.users
                .subscriptions(user)
                .iter()
                .any(|held| held.topic == id)
        });
        if !known && self.users.subscription_count() >= settings.topics.max_user_subscriptions {
            return Err(Refusal::UserSubscriptionLimit);
        }
        let due = self.retained_due(&connections, topic, options);
        let id = self
            .topics
            .get_or_create(topic, settings.topics.max_topics)
            .map_err(|_| Refusal::TopicLimit)?;
        if self.users.subscribe(user, id, options) {
            self.topics.add_user_subscriber(id);
        }
        for key in &connections {
            self.join_topic(*key, id, settings)?;
        }
        for key in &connections {
            self.resume_joined(*key, settings, stats);
        }
        self.send_retained(&due, topic, settings, stats);
        Ok(connections.len())
    }

    /// Before a join that reads a retained event: what the router has still to carry out
    /// (a WAMP publication's plain side, from earlier in this turn) goes out first, to the
    /// members before the join. Else the joining connection would get such a publication
    /// after the retained event it may be, twice, or out of order. First of all, since
    /// carrying it out may drop a slow consumer among the connections about to join.
    pub(super) fn settle_before_retained(
        &mut self,
        options: JoinOptions,
        settings: &Settings,
        stats: &mut Stats,
    ) {
        if options.get_retained {
            self.settle_router(settings, stats, Instant::now());
        }
    }

    /// The connections among `keys` that are to get `topic`'s retained event on joining it:
    /// all of them with `get_retained`, but one whose upgrade's `resume` names the topic and
    /// is not served yet: its replay (or reload notice) holds the retained value already.
    /// Read before joining, since joining serves the resume items.
    pub(super) fn retained_due(&self, keys: &[Key], topic: &str, options: JoinOptions) -> Vec<Key> {
        if !options.get_retained {
            return Vec::new();
        }
        keys.iter()
            .copied()
            .filter(|key| {
                !self
                    .clients
                    .get(*key)
                    .and_then(|client| client.seat.as_ref())
                    .and_then(|seat| seat.resume.as_ref())
                    .is_some_and(|items| items.iter().any(|item| item.topic == topic))
            })
            .collect()
    }

    /// Queues `topic`'s retained event (the backend realm broker's, the one store of both
    /// sides) to `keys` as a plain message, encoded once for all of them. Nothing when the
    /// topic retains nothing or WAMP is off. A positioned connection gets no position notice
    /// before it: the retained event has no position of its own.
    pub(super) fn send_retained(
        &mut self,
        keys: &[Key],
        topic: &str,
        settings: &Settings,
        stats: &mut Stats,
    ) {
        if keys.is_empty() {
            return;
        }
        let Some(payload) = self.router.backend_retained(topic) else {
            return;
        };
        let (binary, bytes) = plain::to_plain(payload);
        let message = PlainMessage {
            binary,
            payload: &bytes,
        };
        let mut recipients = self.recipients();
        let (_, overflowed) = recipients.deliver(
            keys,
            Outgoing::Message(message),
            Audience::Plain,
            settings,
            stats,
        );
        self.drop_slow_consumers(overflowed, stats);
    }

    fn subscribe_connections(
        &mut self,
        keys: &[Key],
        topic: &str,
        settings: &Settings,
    ) -> Result<usize, Refusal> {
        self.check_room(keys, topic, settings)?;
        let id = self
            .topics
            .get_or_create(topic, settings.topics.max_topics)
            .map_err(|_| Refusal::TopicLimit)?;
        for key in keys {
            self.join_topic(*key, id, settings)?;
        }
        Ok(keys.len())
    }

    /// Refuses before anything changes: a new topic past `max_topics`, or a connection
    /// that would pass `max_per_connection`.
    fn check_room(&self, keys: &[Key], topic: &str, settings: &Settings) -> Result<(), Refusal> {
        let existing = self.topics.get(topic);
        if existing.is_none() && self.topics.len() >= settings.topics.max_topics {
            return Err(Refusal::TopicLimit);
        }
        let full = keys.iter().any(|key| {
            self.clients
                .get(*key)
                .and_then(|client| client.seat.as_ref())
                .is_some_and(|seat| {
                    !existing.is_some_and(|id| seat.topics.contains(&id))
                        && seat.topics.len() >= settings.topics.max_per_connection
                })
        });
        if full {
            return Err(Refusal::TopicLimitPerConnection);
        }
        Ok(())
    }

    /// One open connection joins a topic (a no-op when it is in already): `subscribed`,
    /// and `join` when it is its user's first connection there.
    /// The plain sessions among `keys`: plain topics carry plain messages, and a WAMP
    /// session subscribes through the router instead.
    fn plain_only(&self, keys: &[Key]) -> Vec<Key> {
        keys.iter()
            .copied()
            .filter(|key| {
                self.clients
                    .get(*key)
                    .is_some_and(|client| client.conn.app() == Some(App::Plain))
            })
            .collect()
    }

    pub(super) fn join_topic(
        &mut self,
        key: Key,
        topic: TopicId,
        settings: &Settings,
    ) -> Result<(), Refusal> {
        let Some(seat) = self
            .clients
            .get_mut(key)
            .and_then(|client| client.seat.as_mut())
        else {
            return Ok(());
        };
        if seat.topics.contains(&topic) {
            return Ok(());
        }
        if seat.topics.len() >= settings.topics.max_per_connection {
            self.topics.forget_if_unused(topic);
            return Err(Refusal::TopicLimitPerConnection);
        }
        seat.topics.push(topic);
        let presence = self.topics.add_member(topic, key, &seat.user);
        let Some(name) = self.topics.name(topic) else {
            return Ok(());
        };
        self.events.emit(&Event::Subscribed {
            token: seat.token,
            user: &seat.user,
            topic: name,
        });
        if presence == Presence::User {
            self.events.emit(&Event::Join {
                user: &seat.user,
                topic: name,
            });
        }
        Ok(())
    }

    /// Unsubscribes the open connections holding `token`; returns how many were
    /// subscribed.
    pub fn unsubscribe_token(&mut self, token: &Token, topic: &str) -> usize {
        let Some(id) = self.topics.get(topic) else {
            return 0;
        };
        let holders = self.holders(token).to_vec();
        holders
            .iter()
            .filter(|key| self.leave_topic(**key, id))
            .count()
    }

    /// Ends a user's subscription and unsubscribes each of its connections; returns how
    /// many were subscribed.
    pub fn unsubscribe_user(&mut self, user: &str, topic: &str) -> usize {
        let Some(id) = self.topics.get(topic) else {
            return 0;
        };
        let connections = self.users.connections(user).to_vec();
        // Connections first: the user's subscription keeps the topic alive meanwhile.
        let left = connections
            .iter()
            .filter(|key| self.leave_topic(**key, id))
            .count();
        if self.users.unsubscribe(user, id) {
            self.topics.remove_user_subscriber(id);
        }
        left
    }

    /// One connection leaves a topic: `unsubscribed`, and `leave` when it was its user's
    /// last connection there. False when it was not in it.
    fn leave_topic(&mut self, key: Key, topic: TopicId) -> bool {
        let Some(seat) = self
            .clients
            .get_mut(key)
            .and_then(|client| client.seat.as_mut())
        else {
            return false;
        };
        let Some(position) = seat.topics.iter().position(|held| *held == topic) else {
            return false;
        };
        seat.topics.swap_remove(position);
        let Some(name) = self.topics.name(topic).cloned() else {
            return false;
        };
        let presence = self.topics.remove_member(topic, key, &seat.user);
        self.events.emit(&Event::Unsubscribed {
            token: seat.token,
            user: &seat.user,
            topic: &name,
        });
        if presence == Presence::User {
            self.events.emit(&Event::Leave {
                user: &seat.user,
                topic: &name,
            });
        }
        true
    }

    /// A page of a topic's users with their subscribed connections.
    pub fn subscribers(&self, topic: &str, page: &PageRequest<'_>, max_list_page: usize) -> Page {
        match self.topics.get(topic) {
            Some(id) => {
                let (items, more) =
                    self.topics
                        .page_users(id, page.cursor, page.limit_within(max_list_page));
                page_reply(items, more)
            }
            None => Page::default(),
        }
    }

    /// Users and connections subscribed to a topic.
    pub fn subscriber_count(&self, topic: &str) -> (usize, usize) {
        self.topics
            .get(topic)
            .map_or((0, 0), |id| self.topics.counts(id))
    }

    /// A page of the topics with their subscribed connections.
    pub fn topics(&self, page: &PageRequest<'_>, max_list_page: usize) -> Page {
        let (items, more) = self
            .topics
            .page(page.cursor, page.limit_within(max_list_page));
        page_reply(items, more)
    }
}
