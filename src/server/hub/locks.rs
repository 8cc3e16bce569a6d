//! The fragment-lock table: which client each control connection holds for a fragmented
//! send, what the message's fragments looked like so far, and the data held back for the
//! client meanwhile.
//!
//! A lock exists only while its client is open and its owner connected: the hub drops it
//! when the client leaves `Open` (deferred data would follow our Close, which is
//! forbidden) and closes the client with 1011 when the owner goes away.

use std::collections::HashMap;
use std::rc::Rc;

use crate::control::command::FragmentPosition;
use crate::server::outbound::{OutQueue, shared_frame};
use crate::server::slab::Key;
use crate::ws::frame::OpCode;
use crate::ws::message::MessageKind;

#[derive(Default)]
pub struct Locks {
    /// Locked client -> its lock.
    by_client: HashMap<Key, Lock>,
    /// Control connection -> the client it holds.
    by_owner: HashMap<Key, Key>,
}

pub struct Lock {
    owner: Key,
    /// The kind of the fragmented message once its first fragment went out.
    started: Option<MessageKind>,
    /// Data frames that arrived for the client meanwhile, delivered after the last fragment.
    deferred: OutQueue,
    /// The bytes of a code point split between text fragments (at most 3), checked with
    /// the next fragment.
    utf8_carry: Vec<u8>,
}

/// One piece of a fragmented message from a control connection.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    pub position: FragmentPosition,
    pub kind: MessageKind,
    pub payload: &'a [u8],
}

/// The answer to a fragment command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentResult {
    Sent,
    /// No lock held, or out of order (`i`/`s` before `f`, `f` twice).
    Refused,
    Overflow {
        queued: usize,
    },
    /// The text so far cannot be UTF-8 (offset within this fragment); nothing was sent.
    InvalidText {
        offset: usize,
    },
}

/// A fragment turned into its frame, for the hub to queue.
pub enum Encoded {
    Frame { frame: Rc<[u8]>, fin: bool },
    Failed(FragmentResult),
}

/// Holds `frame` back behind a fragmented message, unless the client's queue (`queued`
/// bytes) and what is held already would pass `max_outbound`; then the bytes queued in all
/// are the error, and the client is a slow consumer.
pub fn hold(
    deferred: &mut OutQueue,
    queued: usize,
    frame: Rc<[u8]>,
    max_outbound: usize,
) -> Result<(), usize> {
    let queued = queued + deferred.pending_bytes();
    if queued + frame.len() > max_outbound {
        return Err(queued);
    }
    deferred.push(frame);
    Ok(())
}

impl Locks {
    /// The frames held back for `client`, when it is locked. Free when nothing is locked,
    /// which is the case on every broadcast but the rare one that meets a fragmented send.
    pub fn deferred_for(&mut self, client: Key) -> Option<&mut OutQueue> {
        if self.by_client.is_empty() {
            return None;
        }
        self.by_client
            .get_mut(&client)
            .map(|lock| &mut lock.deferred)
    }

    pub fn is_held_by(&self, owner: Key) -> bool {
        self.by_owner.contains_key(&owner)
    }

    pub fn client_of(&self, owner: Key) -> Option<Key> {
        self.by_owner.get(&owner).copied()
    }

    /// Locks `client` for `owner`; false when either already has a lock.
    pub fn lock(&mut self, client: Key, owner: Key) -> bool {
        if self.by_client.contains_key(&client) || self.by_owner.contains_key(&owner) {
            return false;
        }
        self.by_client.insert(
            client,
            Lock {
                owner,
                started: None,
                deferred: OutQueue::default(),
                utf8_carry: Vec::new(),
            },
        );
        self.by_owner.insert(owner, client);
        true
    }

    /// Removes the lock on `client`, if any, and returns what it held back.
    pub fn release_client(&mut self, client: Key) -> Option<OutQueue> {
        let lock = self.by_client.remove(&client)?;
        self.by_owner.remove(&lock.owner);
        Some(lock.deferred)
    }

    /// Removes `owner`'s lock, if any, and returns the client it held.
    pub fn release_owner(&mut self, owner: Key) -> Option<Key> {
        let client = self.by_owner.remove(&owner)?;
        self.by_client.remove(&client);
        Some(client)
    }

    /// Bytes held back for `client`.
    pub fn deferred_bytes(&self, client: Key) -> usize {
        self.by_client
            .get(&client)
            .map_or(0, |lock| lock.deferred.pending_bytes())
    }

    /// Checks a fragment from `owner` against its lock and encodes its frame. The lock
    /// records the message's kind with the first fragment; the caller queues the frame and,
    /// for the last one, releases the lock.
    pub fn encode(&mut self, owner: Key, fragment: Fragment<'_>) -> Encoded {
        let Fragment {
            position,
            kind,
            payload,
        } = fragment;
        let Some(lock) = self
            .by_owner
            .get(&owner)
            .and_then(|client| self.by_client.get_mut(client))
        else {
            return Encoded::Failed(FragmentResult::Refused);
        };
        let opcode = match (position, lock.started) {
            (FragmentPosition::First, None) => kind.opcode(),
            (FragmentPosition::Middle | FragmentPosition::Last, Some(_)) => OpCode::Continuation,
            (FragmentPosition::First, Some(_))
            | (FragmentPosition::Middle | FragmentPosition::Last, None) => {
                return Encoded::Failed(FragmentResult::Refused);
            }
        };
        let fin = position == FragmentPosition::Last;
        let text = match (position, lock.started) {
            (FragmentPosition::First, _) => kind == MessageKind::Text,
            (_, started) => started == Some(MessageKind::Text),
        };
        if text && let Err(offset) = check_text_fragment(&mut lock.utf8_carry, payload, fin) {
            return Encoded::Failed(FragmentResult::InvalidText { offset });
        }
        if position == FragmentPosition::First {
            // Only the first fragment sets the kind; `i`/`I` are continuations either way.
            lock.started = Some(kind);
        }
        Encoded::Frame {
            frame: shared_frame(fin, opcode, payload),
            fin,
        }
    }
}

/// Checks one text fragment, with the partial code point the previous one ended with.
/// Keeps the new partial code point in `carry`; at the last fragment none may remain.
fn check_text_fragment(carry: &mut Vec<u8>, payload: &[u8], fin: bool) -> Result<(), usize> {
    let carried = carry.len();
    let mut joined = std::mem::take(carry);
    joined.extend_from_slice(payload);
    match std::str::from_utf8(&joined) {
        Ok(_) => Ok(()),
        Err(error) if error.error_len().is_none() && !fin => {
            *carry = joined.get(error.valid_up_to()..).unwrap_or(&[]).to_vec();
            Ok(())
        }
        Err(error) => Err(error.valid_up_to().saturating_sub(carried)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fragments_may_split_a_code_point() {
        let euro = "€".as_bytes();
        let mut carry = Vec::new();
        assert_eq!(check_text_fragment(&mut carry, &euro[..1], false), Ok(()));
        assert_eq!(carry, &euro[..1]);
        assert_eq!(check_text_fragment(&mut carry, &euro[1..], true), Ok(()));
        assert!(carry.is_empty());
    }

    #[test]
    fn a_code_point_left_open_at_the_last_fragment_is_invalid() {
        let mut carry = Vec::new();
        assert_eq!(
            check_text_fragment(&mut carry, &"€".as_bytes()[..2], true),
            Err(0)
        );
    }

    #[test]
    fn invalid_bytes_fail_at_their_fragment() {
        let mut carry = Vec::new();
        assert_eq!(check_text_fragment(&mut carry, b"ab\xffcd", false), Err(2));
    }
}
