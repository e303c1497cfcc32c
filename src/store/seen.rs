//! The ids of the records stored in one rollout, so a record sent twice is stored once.
//!
//! The collector keeps one set per rollout in memory, and lets go of it with the
//! rollout's events when the rollout is evicted: the ids come back from the bundle
//! with the events (a late record, or a record sent again, reads the rollout back
//! first). So memory holds the ids of the sessions in memory, not of every record
//! ever stored. Record ids are cut from a SHA-256 digest, so their bits are already
//! uniform: they need no hashing of their own.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// Record ids, as the 128-bit numbers their hex spells.
#[derive(Default)]
pub struct SeenRecords {
    ids: HashSet<u128, BuildHasherDefault<UniformIdHasher>>,
}

impl SeenRecords {
    pub fn new() -> Self {
        SeenRecords::default()
    }

    /// The number a record id spells (its hex digits), if it is one.
    pub fn id_of(record_id: &str) -> Option<u128> {
        u128::from_str_radix(record_id, 16).ok()
    }

    /// Adds `id`; false if it was there already.
    pub fn insert(&mut self, id: u128) -> bool {
        self.ids.insert(id)
    }

    pub fn contains(&self, id: u128) -> bool {
        self.ids.contains(&id)
    }

    pub fn remove(&mut self, id: u128) -> bool {
        self.ids.remove(&id)
    }

    /// Adds every id of `other` (a rollout merged into this one).
    pub fn absorb(&mut self, other: SeenRecords) {
        if other.ids.len() > self.ids.len() {
            let smaller = std::mem::replace(&mut self.ids, other.ids);
            self.ids.extend(smaller);
        } else {
            self.ids.extend(other.ids);
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Hashes an id whose bits are uniform already, by folding it to 64 bits.
#[derive(Default)]
struct UniformIdHasher(u64);

impl Hasher for UniformIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, id: u128) {
        self.0 ^= (id as u64) ^ ((id >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used for u128 keys; kept correct for any other input.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_once() {
        let mut seen = SeenRecords::new();
        let ids: Vec<u128> = (0..10_000u128)
            .map(|n| n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
            .collect();
        assert!(ids.iter().all(|id| seen.insert(*id)));
        assert!(ids.iter().all(|id| !seen.insert(*id)));
        assert!(ids.iter().all(|id| seen.contains(*id)));
        assert!(!seen.contains(1));
        assert_eq!(seen.len(), ids.len());
        assert!(SeenRecords::new().is_empty());
        assert!(seen.remove(ids[0]) && !seen.contains(ids[0]));
    }

    #[test]
    fn a_merged_set_holds_both() {
        let (mut small, mut large) = (SeenRecords::new(), SeenRecords::new());
        small.insert(1);
        (2..100).for_each(|id| {
            large.insert(id);
        });
        small.absorb(large);
        assert_eq!(small.len(), 99);
        assert!((1..100).all(|id| small.contains(id)));
        assert_eq!(SeenRecords::id_of("ff"), Some(255));
        assert_eq!(SeenRecords::id_of("not hex"), None);
    }
}
