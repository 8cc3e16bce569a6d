//! A short list of connection keys that costs no allocation while it holds one: a token
//! is held by one connection (or a few, with `token_reuse = "share"`), a user has one
//! connection (or a few tabs). Every idle connection pays for these lists, so the common
//! case stays inline.

use crate::server::slab::Key;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyList {
    #[default]
    Empty,
    One(Key),
    Many(Vec<Key>),
}

impl KeyList {
    pub fn as_slice(&self) -> &[Key] {
        match self {
            KeyList::Empty => &[],
            KeyList::One(key) => std::slice::from_ref(key),
            KeyList::Many(keys) => keys,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Appends `key` (the caller keeps keys unique).
    pub fn push(&mut self, key: Key) {
        *self = match std::mem::take(self) {
            KeyList::Empty => KeyList::One(key),
            KeyList::One(first) => KeyList::Many(vec![first, key]),
            KeyList::Many(mut keys) => {
                keys.push(key);
                KeyList::Many(keys)
            }
        };
    }

    /// Removes `key` (the order of the others may change).
    pub fn remove(&mut self, key: Key) {
        *self = match std::mem::take(self) {
            KeyList::One(held) if held == key => KeyList::Empty,
            KeyList::Many(mut keys) => {
                if let Some(position) = keys.iter().position(|held| *held == key) {
                    keys.swap_remove(position);
                }
                match keys.as_slice() {
                    [] => KeyList::Empty,
                    [only] => KeyList::One(*only),
                    _ => KeyList::Many(keys),
                }
            }
            unchanged @ (KeyList::Empty | KeyList::One(_)) => unchanged,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::slab::Slab;

    #[test]
    fn grows_and_shrinks_back_to_inline() {
        let mut slab = Slab::default();
        let k: Vec<Key> = (0..3).map(|_| slab.insert(()).unwrap()).collect();
        let mut list = KeyList::default();
        assert!(list.is_empty());
        list.push(k[0]);
        assert_eq!(list, KeyList::One(k[0]));
        list.push(k[1]);
        list.push(k[2]);
        assert_eq!(list.as_slice(), &k[..]);
        list.remove(k[0]);
        assert_eq!(list.as_slice(), &[k[2], k[1]]);
        list.push(k[0]);
        list.remove(k[1]);
        assert_eq!(list.as_slice(), &[k[2], k[0]]);
        list.remove(k[0]);
        assert_eq!(list, KeyList::One(k[2]));
        list.remove(k[1]);
        assert_eq!(list.len(), 1);
        list.remove(k[2]);
        assert_eq!(list, KeyList::Empty);
    }
}
