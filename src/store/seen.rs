//! The ids of the records stored so far, so a record sent twice is stored once.
//!
//! Every record ever stored is in this set, so it grows to millions of ids. One
//! `HashSet` of that size doubles now and then, copying every id while the storer
//! waits (tens of milliseconds at a million ids, which every Export in flight would
//! wait for too). The ids are split over [`SHARDS`] sets, so each doubling copies a
//! small share of them. Record ids are cut from a SHA-256 digest, so their bits are
//! already uniform: they need no hashing of their own.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// Sets the ids are split over.
const SHARDS: usize = 64;

#[derive(Default)]
pub struct SeenRecords {
    shards: Vec<HashSet<u128, BuildHasherDefault<UniformIdHasher>>>,
}

impl SeenRecords {
    pub fn new() -> Self {
        SeenRecords {
            shards: (0..SHARDS).map(|_| HashSet::default()).collect(),
        }
    }

    fn shard(id: u128) -> usize {
        (id >> 120) as usize % SHARDS
    }

    /// Adds `id`; false if it was there already.
    pub fn insert(&mut self, id: u128) -> bool {
        self.shards[Self::shard(id)].insert(id)
    }

    pub fn contains(&self, id: u128) -> bool {
        self.shards[Self::shard(id)].contains(&id)
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(HashSet::is_empty)
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
    }
}
