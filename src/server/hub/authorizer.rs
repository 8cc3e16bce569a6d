//! The connect authorizers and the upgrades waiting for their answers.
//!
//! Control connections that sent `z` share the requests round robin. Each waiting upgrade
//! has an id (unique for the server's life, the one the answer names), what it waits for,
//! and a deadline. An upgrade sent to an authorizer here keeps its encoded request, so that
//! when that authorizer goes away the request can be sent to another. With `[cluster]`, the
//! same table holds an upgrade sent to another node's authorizer, another node's upgrade
//! relayed to an authorizer here, and an upgrade waiting for the cluster-wide claim of its
//! token (`token_reuse = "refuse"`): each ends the same ways (an answer, the deadline, its
//! client gone).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use crate::server::conn::Upgrade;
use crate::server::slab::Key;
use crate::token::Token;

#[derive(Default)]
pub struct Authorizers {
    members: Vec<Key>,
    /// Where the next pick starts.
    next: usize,
    waiting: HashMap<u64, Waiting>,
    /// How many of `waiting` are authorizations (not claims).
    authorizations: usize,
    last_id: u64,
}

/// An upgrade waiting for an answer.
pub struct Waiting {
    pub deadline: Instant,
    pub what: WaitingFor,
}

/// What an upgrade waits for, and who waits.
pub enum WaitingFor {
    /// This node's upgrade, sent to an authorizer of this node.
    Authorizer {
        client: Key,
        upgrade: Upgrade,
        authorizer: Key,
        /// The request frame as sent, to send again to another authorizer.
        request: Rc<[u8]>,
    },
    /// This node's upgrade, sent to the authorizer of another node (its instance name),
    /// which answers with the decision.
    OtherNode {
        client: Key,
        upgrade: Upgrade,
        node: String,
    },
    /// Another node's upgrade, sent to an authorizer of this node: the answer goes back to
    /// `node` under `id`, its own request id.
    Relayed {
        node: String,
        id: u64,
        authorizer: Key,
        request: Rc<[u8]>,
    },
    /// This node's upgrade, admitted as `admission` once the claim of its token answers.
    Claim {
        client: Key,
        upgrade: Upgrade,
        admission: Claimed,
    },
}

/// An admission decided but for the cluster-wide claim of its token.
pub struct Claimed {
    pub token: Token,
    pub user: String,
    /// When the token expires, Unix seconds.
    pub expires_at: u64,
    /// The authorizer's topics, joined once admitted.
    pub topics: Vec<String>,
}

impl WaitingFor {
    /// The authorizer of this node it was sent to.
    fn authorizer(&self) -> Option<Key> {
        match self {
            WaitingFor::Authorizer { authorizer, .. } | WaitingFor::Relayed { authorizer, .. } => {
                Some(*authorizer)
            }
            WaitingFor::OtherNode { .. } | WaitingFor::Claim { .. } => None,
        }
    }

    /// True for a question to an authorizer (here or on another node), which
    /// `[authorizer] max_pending` bounds; a claim is bounded by the connections.
    fn is_authorization(&self) -> bool {
        match self {
            WaitingFor::Authorizer { .. }
            | WaitingFor::OtherNode { .. }
            | WaitingFor::Relayed { .. } => true,
            WaitingFor::Claim { .. } => false,
        }
    }
}

impl Authorizers {
    /// `control` answers requests from now on (again: no change).
    pub fn register(&mut self, control: Key) {
        if !self.members.contains(&control) {
            self.members.push(control);
        }
    }

    pub fn count(&self) -> usize {
        self.members.len()
    }

    /// Upgrades waiting for an authorizer, here or on another node (not for a claim).
    pub fn waiting(&self) -> usize {
        self.authorizations
    }

    /// The next authorizer, round robin; `None` when none is connected.
    pub fn pick(&mut self) -> Option<Key> {
        let count = self.members.len();
        let member = *self.members.get(self.next % count.max(1))?;
        self.next = (self.next % count + 1) % count;
        Some(member)
    }

    /// A new id, never given before.
    pub fn new_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    pub fn wait(&mut self, id: u64, waiting: Waiting) {
        if waiting.what.is_authorization() {
            self.authorizations += 1;
        }
        if let Some(replaced) = self.waiting.insert(id, waiting)
            && replaced.what.is_authorization()
        {
            self.authorizations = self.authorizations.saturating_sub(1);
        }
    }

    /// Takes the upgrade waiting under `id`: answered, timed out, or its client gone.
    pub fn take(&mut self, id: u64) -> Option<Waiting> {
        let waiting = self.waiting.remove(&id)?;
        if waiting.what.is_authorization() {
            self.authorizations = self.authorizations.saturating_sub(1);
        }
        Some(waiting)
    }

    /// Takes the authorization waiting under `id`, leaving a claim where it is (an
    /// authorizer's `Z` cannot answer a claim, whatever id it names).
    pub fn take_authorization(&mut self, id: u64) -> Option<Waiting> {
        match self.waiting.get(&id) {
            Some(waiting) if waiting.what.is_authorization() => self.take(id),
            Some(_) | None => None,
        }
    }

    /// Takes the claim waiting under `id`.
    pub fn take_claim(&mut self, id: u64) -> Option<Waiting> {
        match self.waiting.get(&id) {
            Some(waiting) if !waiting.what.is_authorization() => self.take(id),
            Some(_) | None => None,
        }
    }

    /// Points a waiting request at another authorizer.
    pub fn reassign(&mut self, id: u64, authorizer: Key) {
        if let Some(waiting) = self.waiting.get_mut(&id) {
            match &mut waiting.what {
                WaitingFor::Authorizer { authorizer: to, .. }
                | WaitingFor::Relayed { authorizer: to, .. } => *to = authorizer,
                WaitingFor::OtherNode { .. } | WaitingFor::Claim { .. } => {}
            }
        }
    }

    /// The request frame sent for `id` to an authorizer of this node.
    pub fn request(&self, id: u64) -> Option<Rc<[u8]>> {
        match &self.waiting.get(&id)?.what {
            WaitingFor::Authorizer { request, .. } | WaitingFor::Relayed { request, .. } => {
                Some(Rc::clone(request))
            }
            WaitingFor::OtherNode { .. } | WaitingFor::Claim { .. } => None,
        }
    }

    /// `control` is gone; returns the ids of the requests it had not answered, in order.
    pub fn forget(&mut self, control: Key) -> Vec<u64> {
        self.members.retain(|member| *member != control);
        let mut orphans: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, waiting)| waiting.what.authorizer() == Some(control))
            .map(|(id, _)| *id)
            .collect();
        orphans.sort_unstable();
        orphans
    }

    /// Ids whose deadline has passed, in order.
    pub fn expired(&self, now: Instant) -> Vec<u64> {
        let mut expired: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, waiting)| now >= waiting.deadline)
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::slab::Slab;

    fn keys(n: usize) -> Vec<Key> {
        let mut slab = Slab::default();
        (0..n).map(|_| slab.insert(()).unwrap()).collect()
    }

    fn waiting(client: Key, authorizer: Key, deadline: Instant) -> Waiting {
        Waiting {
            deadline,
            what: WaitingFor::Authorizer {
                client,
                authorizer,
                request: Rc::from(&b"0z"[..]),
                upgrade: upgrade(),
            },
        }
    }

    fn upgrade() -> Upgrade {
        Upgrade {
            identity: None,
            origin: None,
            path: "/".to_owned(),
            cookies: Vec::new(),
            protocols: Vec::new(),
            wamp_login: false,
            resume: None,
        }
    }

    fn claim(client: Key, token: Token, deadline: Instant) -> Waiting {
        Waiting {
            deadline,
            what: WaitingFor::Claim {
                client,
                upgrade: upgrade(),
                admission: Claimed {
                    token,
                    user: "alice".to_owned(),
                    expires_at: 0,
                    topics: Vec::new(),
                },
            },
        }
    }

    #[test]
    fn claims_wait_beside_authorizations_without_counting_as_them() {
        let k = keys(3);
        let now = Instant::now();
        let token = Token::from_array([b'a'; 32]);
        let mut authorizers = Authorizers::default();
        let asked = authorizers.new_id();
        let claimed = authorizers.new_id();
        authorizers.wait(asked, waiting(k[0], k[2], now));
        authorizers.wait(claimed, claim(k[1], token, now));
        assert_eq!(authorizers.waiting(), 1);
        // An authorizer's answer cannot take a claim, nor a claim's answer an authorization.
        assert!(authorizers.take_authorization(claimed).is_none());
        assert!(authorizers.take_claim(asked).is_none());
        assert_eq!(authorizers.forget(k[2]), vec![asked]);
        assert!(authorizers.take_claim(claimed).is_some());
        assert!(authorizers.take_authorization(asked).is_some());
        assert_eq!(authorizers.waiting(), 0);
    }

    #[test]
    fn authorizers_take_turns() {
        let k = keys(3);
        let mut authorizers = Authorizers::default();
        assert_eq!(authorizers.pick(), None);
        authorizers.register(k[0]);
        authorizers.register(k[1]);
        authorizers.register(k[1]);
        assert_eq!(authorizers.count(), 2);
        let picks: Vec<Key> = (0..4).filter_map(|_| authorizers.pick()).collect();
        assert_eq!(picks, vec![k[0], k[1], k[0], k[1]]);
        authorizers.forget(k[0]);
        assert_eq!(authorizers.pick(), Some(k[1]));
        assert_eq!(authorizers.pick(), Some(k[1]));
    }

    #[test]
    fn a_gone_authorizer_leaves_its_requests_to_others() {
        let k = keys(4);
        let now = Instant::now();
        let mut authorizers = Authorizers::default();
        authorizers.register(k[0]);
        authorizers.register(k[1]);
        let first = authorizers.new_id();
        let second = authorizers.new_id();
        let third = authorizers.new_id();
        authorizers.wait(first, waiting(k[2], k[0], now));
        authorizers.wait(second, waiting(k[3], k[1], now));
        authorizers.wait(third, waiting(k[3], k[0], now));
        assert_eq!(authorizers.forget(k[0]), vec![first, third]);
        authorizers.reassign(first, k[1]);
        assert_eq!(authorizers.forget(k[1]), vec![first, second]);
    }

    #[test]
    fn ids_are_never_reused_and_deadlines_expire() {
        let k = keys(2);
        let now = Instant::now();
        let mut authorizers = Authorizers::default();
        let id = authorizers.new_id();
        authorizers.wait(id, waiting(k[0], k[1], now));
        assert!(authorizers.take(id).is_some());
        assert!(authorizers.take(id).is_none());
        assert_ne!(authorizers.new_id(), id);
        let later = authorizers.new_id();
        authorizers.wait(
            later,
            waiting(k[0], k[1], now + std::time::Duration::from_secs(5)),
        );
        assert!(authorizers.expired(now).is_empty());
        assert_eq!(
            authorizers.expired(now + std::time::Duration::from_secs(5)),
            vec![later]
        );
    }
}
