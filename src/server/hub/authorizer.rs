//! The connect authorizers and the upgrades waiting for their answers.
//!
//! Control connections that sent `z` share the requests round robin. Each waiting upgrade
//! has an id (unique for the server's life, the one the answer names), the authorizer it
//! was sent to, a deadline, and its encoded request, so that when that authorizer goes
//! away the request can be sent to another.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use crate::server::conn::Upgrade;
use crate::server::slab::Key;

#[derive(Default)]
pub struct Authorizers {
    members: Vec<Key>,
    /// Where the next pick starts.
    next: usize,
    waiting: HashMap<u64, Waiting>,
    last_id: u64,
}

/// An upgrade waiting for an answer.
pub struct Waiting {
    pub client: Key,
    pub authorizer: Key,
    pub deadline: Instant,
    /// The request frame as sent, to send again to another authorizer.
    pub request: Rc<[u8]>,
    pub upgrade: Upgrade,
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

    pub fn waiting(&self) -> usize {
        self.waiting.len()
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
        self.waiting.insert(id, waiting);
    }

    /// Takes the upgrade waiting under `id`: answered, timed out, or its client gone.
    pub fn take(&mut self, id: u64) -> Option<Waiting> {
        self.waiting.remove(&id)
    }

    /// Points a waiting request at another authorizer.
    pub fn reassign(&mut self, id: u64, authorizer: Key) {
        if let Some(waiting) = self.waiting.get_mut(&id) {
            waiting.authorizer = authorizer;
        }
    }

    /// `control` is gone; returns the ids of the requests it had not answered, in order.
    pub fn forget(&mut self, control: Key) -> Vec<u64> {
        self.members.retain(|member| *member != control);
        let mut orphans: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, waiting)| waiting.authorizer == control)
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
            client,
            authorizer,
            deadline,
            request: Rc::from(&b"0z"[..]),
            upgrade: Upgrade {
                identity: None,
                origin: None,
                path: "/".to_owned(),
                cookies: Vec::new(),
                protocols: Vec::new(),
                wamp_login: false,
            },
        }
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
