//! A slab with generation-checked keys: the store for connections.
//!
//! mio hands back whatever token a socket was registered with, and an event can arrive
//! for a connection that was closed earlier in the same turn. A key carries the slot's
//! generation, bumped on every removal, so a stale key finds nothing instead of a newer
//! connection that reused the slot.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// Bits of the generation kept in an encoded key (the rest carries the index); 29, so a
    /// packed key leaves room for the server's two bits of connection kind in a token.
    const GENERATION_BITS: u32 = 29;

    /// Packs the key into a `usize` (for mio tokens). Generations wrap at 2^29: a
    /// stale event would need a slot reused half a billion times within one poll turn.
    pub fn to_usize(self) -> usize {
        let generation = u64::from(self.generation & ((1 << Self::GENERATION_BITS) - 1));
        usize::try_from((generation << 32) | u64::from(self.index)).unwrap_or(usize::MAX)
    }

    pub fn from_usize(raw: usize) -> Option<Key> {
        let raw = u64::try_from(raw).ok()?;
        let generation = u32::try_from(raw >> 32).ok()?;
        if generation >= 1 << Self::GENERATION_BITS {
            return None;
        }
        let index = u32::try_from(raw & 0xffff_ffff).ok()?;
        Some(Key { index, generation })
    }
}

struct Entry<T> {
    generation: u32,
    value: Option<T>,
}

pub struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value`; `None` only when 2^32 slots are in use.
    pub fn insert(&mut self, value: T) -> Option<Key> {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.entries.len()).ok()?;
                self.entries.push(Entry {
                    generation: 0,
                    value: None,
                });
                index
            }
        };
        let entry = self.entries.get_mut(usize::try_from(index).ok()?)?;
        entry.value = Some(value);
        self.len += 1;
        Some(Key {
            index,
            generation: entry.generation & ((1 << Key::GENERATION_BITS) - 1),
        })
    }

    fn entry(&self, key: Key) -> Option<&Entry<T>> {
        let entry = self.entries.get(usize::try_from(key.index).ok()?)?;
        (entry.generation & ((1 << Key::GENERATION_BITS) - 1) == key.generation).then_some(entry)
    }

    pub fn get(&self, key: Key) -> Option<&T> {
        self.entry(key)?.value.as_ref()
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let entry = self.entries.get_mut(usize::try_from(key.index).ok()?)?;
        if entry.generation & ((1 << Key::GENERATION_BITS) - 1) != key.generation {
            return None;
        }
        entry.value.as_mut()
    }

    pub fn remove(&mut self, key: Key) -> Option<T> {
        let entry = self.entries.get_mut(usize::try_from(key.index).ok()?)?;
        if entry.generation & ((1 << Key::GENERATION_BITS) - 1) != key.generation {
            return None;
        }
        let value = entry.value.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    /// Keys of every stored value, in slot order (a snapshot: safe to mutate while using it).
    pub fn keys(&self) -> Vec<Key> {
        self.iter().map(|(key, _)| key).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| {
                let value = entry.value.as_ref()?;
                Some((
                    Key {
                        index: u32::try_from(index).ok()?,
                        generation: entry.generation & ((1 << Key::GENERATION_BITS) - 1),
                    },
                    value,
                ))
            })
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Key, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(index, entry)| {
                let generation = entry.generation & ((1 << Key::GENERATION_BITS) - 1);
                let value = entry.value.as_mut()?;
                Some((
                    Key {
                        index: u32::try_from(index).ok()?,
                        generation,
                    },
                    value,
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_key_finds_nothing_after_slot_reuse() {
        let mut slab = Slab::default();
        let first = slab.insert("a").unwrap();
        assert_eq!(slab.remove(first), Some("a"));
        let second = slab.insert("b").unwrap();
        assert_ne!(first, second);
        assert_eq!(slab.get(first), None);
        assert_eq!(slab.get(second), Some(&"b"));
        assert_eq!(slab.remove(first), None);
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn key_round_trips_through_usize() {
        let mut slab = Slab::default();
        for _ in 0..5 {
            let key = slab.insert(1).unwrap();
            slab.remove(key);
        }
        let key = slab.insert(2).unwrap();
        assert_eq!(Key::from_usize(key.to_usize()), Some(key));
    }

    #[test]
    fn iter_skips_free_slots() {
        let mut slab = Slab::default();
        let a = slab.insert(1).unwrap();
        let b = slab.insert(2).unwrap();
        slab.remove(a);
        let got: Vec<_> = slab.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(got, vec![(b, 2)]);
    }
}
