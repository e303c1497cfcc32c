//! The ids of the records stored in one rollout, so a record sent twice is stored once.
//!
//! The collector keeps one set per rollout in memory, and lets go of it with the
//! rollout's events when the rollout is evicted: the ids come back from the bundle
//! with the events (a late record, or a record sent again, reads the rollout back
//! first). So memory holds the ids of the sessions in memory, not of every record
//! ever stored. Record ids are cut from a SHA-256 digest, so their bits are already
//! uniform: they need no hashing of their own.

use crate::hex_digits::lowercase_hex_value;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// Record ids, as the 128-bit numbers their hex spells.
///
/// Most ids sit in a sorted vector: 16 bytes each, where a hash table of `u128`
/// takes 32 to 64 by the time its capacity doubles (a session of 258 records took
/// 8.7 KB, BENCHMARKS.md). New ids go to a small table first and are merged in
/// once it holds an eighth as many as the vector (at least [`RECENT_MIN`]), so an
/// insert moves about eight ids on average, however large the session.
#[derive(Default)]
pub struct SeenRecords {
    settled: Vec<u128>,
    recent: RecordIdTable,
}

/// Ids that come and go (records waiting for their session): a plain table, where
/// removing from [`SeenRecords`]' sorted vector would move everything after the id.
pub type RecordIdTable = HashSet<u128, BuildHasherDefault<UniformIdHasher>>;

/// The recent table is merged in past this many ids, or an eighth of the settled ones.
const RECENT_MIN: usize = 32;

impl SeenRecords {
    pub fn new() -> Self {
        SeenRecords::default()
    }

    /// The number a record id spells (its hex digits), if it is one. The ids normalize
    /// makes are lowercase; others are read as `from_str_radix` reads them.
    pub fn id_of(record_id: &str) -> Option<u128> {
        lowercase_hex_value(record_id.as_bytes())
            .or_else(|| u128::from_str_radix(record_id, 16).ok())
    }

    /// Adds `id`; false if it was there already.
    pub fn insert(&mut self, id: u128) -> bool {
        if self.settled.binary_search(&id).is_ok() || !self.recent.insert(id) {
            return false;
        }
        if self.recent.len() > RECENT_MIN.max(self.settled.len() / 8) {
            self.settle();
        }
        true
    }

    /// Adds many ids at once (a bundle read back, a merged rollout, the recent table):
    /// one sort, no search per id.
    pub fn insert_all(&mut self, mut ids: Vec<u128>) {
        ids.extend(self.recent.drain());
        ids.sort_unstable();
        ids.dedup();
        self.merge_sorted(ids);
    }

    pub fn contains(&self, id: u128) -> bool {
        self.recent.contains(&id) || self.settled.binary_search(&id).is_ok()
    }

    /// Adds every id of `other` (a rollout merged into this one).
    pub fn absorb(&mut self, other: SeenRecords) {
        let mut ids = other.settled;
        ids.extend(other.recent);
        self.insert_all(ids);
    }

    pub fn len(&self) -> usize {
        self.settled.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves the recent ids into the sorted ones.
    fn settle(&mut self) {
        self.insert_all(Vec::new());
    }

    /// Merges sorted, distinct ids into the settled ones, in a vector of exactly their
    /// size, and lets go of the recent table (emptied by the caller; most sets stop
    /// growing, so it is not kept at the size it grew to).
    fn merge_sorted(&mut self, mut new: Vec<u128>) {
        self.recent = RecordIdTable::default();
        if self.settled.is_empty() {
            new.shrink_to_fit();
            self.settled = new;
            return;
        }
        let mut merged = Vec::with_capacity(self.settled.len() + new.len());
        let (mut old, mut new) = (self.settled.iter().peekable(), new.iter().peekable());
        while let (Some(&&a), Some(&&b)) = (old.peek(), new.peek()) {
            // Equal when a merged rollout's ids overlap these.
            if a <= b {
                merged.push(a);
                old.next();
                if a == b {
                    new.next();
                }
            } else {
                merged.push(b);
                new.next();
            }
        }
        merged.extend(old);
        merged.extend(new);
        self.settled = merged;
    }
}

/// Hashes an id whose bits are uniform already, by folding it to 64 bits.
#[derive(Default)]
pub struct UniformIdHasher(u64);

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
    fn a_record_id_is_the_number_its_hex_digits_spell_in_either_case() {
        let id = "9c2e2cd6e18d92b047e16d94";
        assert_eq!(SeenRecords::id_of(id), Some(0x9c2e2cd6e18d92b047e16d94));
        assert_eq!(
            SeenRecords::id_of(&id.to_uppercase()),
            SeenRecords::id_of(id)
        );
        assert_eq!(SeenRecords::id_of("not hex"), None);
        assert_eq!(SeenRecords::id_of(""), None);
    }

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

    #[test]
    fn ids_stay_found_as_they_move_from_recent_to_settled() {
        let mut seen = SeenRecords::new();
        for n in 0..1_000u128 {
            let id = n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
            assert!(seen.insert(id), "{n} is new");
            assert!(seen.contains(id) && !seen.insert(id), "{n} is seen at once");
        }
        assert!(seen.recent.len() <= RECENT_MIN.max(seen.settled.len() / 8));
        assert!(seen.settled.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(seen.len(), 1_000);
    }

    #[test]
    fn ids_added_at_once_are_found_once() {
        let mut seen = SeenRecords::new();
        seen.insert_all(vec![5, 3, 5, 9]);
        assert_eq!(seen.len(), 3);
        assert!(!seen.insert(3) && seen.insert(4));
        seen.insert_all(vec![4, 10, 1]);
        assert_eq!(seen.len(), 6);
        assert!([1, 3, 4, 5, 9, 10].iter().all(|id| seen.contains(*id)));
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
        let mut again = SeenRecords::new();
        (50..150).for_each(|id| {
            again.insert(id);
        });
        small.absorb(again);
        assert_eq!(small.len(), 149, "ids in both sets are kept once");
        assert!((1..150).all(|id| small.contains(id)));
        assert_eq!(SeenRecords::id_of("ff"), Some(255));
        assert_eq!(SeenRecords::id_of("not hex"), None);
    }
}
