//! Which rollout each conversation, trace and turn belongs to.
//!
//! Entries stay for every session ever seen (evicted ones too: a late span names
//! only its trace), so they are kept small. Each id is a 128-bit key: trace ids and
//! UUIDs are 128-bit numbers written out in lowercase hex, and any other id is
//! hashed to 128 bits. Each rollout id is one shared `Arc<str>`. An entry takes 32
//! bytes instead of two `String`s with their heap copies. Which conversations a
//! rollout holds besides its own (its spawned sub-agents) is kept per rollout, so it
//! is found without scanning every conversation.

use crate::fast_hash::HashMap;
use crate::hex_digits::lowercase_hex_value;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};

/// A rollout id, shared by every entry that points at it.
pub type RolloutId = Arc<str>;

#[derive(Default)]
pub struct Attribution {
    conversations: HashMap<u128, RolloutId>,
    traces: HashMap<u128, RolloutId>,
    turns: HashMap<u128, RolloutId>,
    /// Conversations tied to a rollout other than its own (spawned sub-agents).
    children: HashMap<RolloutId, Vec<String>>,
    /// The keys of the ids tied since [`Attribution::take_newly_tied`] was last called.
    newly_tied: Vec<u128>,
}

impl Attribution {
    pub fn conversation(&self, conversation: &str) -> Option<&RolloutId> {
        self.conversations.get(&id_key(conversation))
    }

    pub fn trace(&self, trace: &str) -> Option<&RolloutId> {
        self.traces.get(&id_key(trace))
    }

    pub fn turn(&self, turn: &str) -> Option<&RolloutId> {
        self.turns.get(&id_key(turn))
    }

    /// The rollout these ids are tied to: the conversation's, else the trace's, else
    /// the turn's (as [`Attribution::rollout_named`], keying only the ids it gets to:
    /// most records name their conversation).
    pub fn rollout_named_by(
        &self,
        conversation: Option<&str>,
        trace: Option<&str>,
        turn: Option<&str>,
    ) -> Option<&RolloutId> {
        conversation
            .and_then(|c| self.conversation(c))
            .or_else(|| trace.and_then(|t| self.trace(t)))
            .or_else(|| turn.and_then(|t| self.turn(t)))
    }

    /// The rollout the ids in `named` are tied to: the conversation's, else the
    /// trace's, else the turn's.
    pub fn rollout_named(&self, named: &NamedIds) -> Option<&RolloutId> {
        [&self.conversations, &self.traces, &self.turns]
            .into_iter()
            .zip(named.slots())
            .find_map(|(map, key)| map.get(&key?))
    }

    /// The shared id of `rollout` (one allocation per rollout, however many entries
    /// point at it).
    pub fn rollout_id(&self, rollout: &str) -> RolloutId {
        match self.conversations.get(&id_key(rollout)) {
            Some(id) if &**id == rollout => id.clone(),
            _ => Arc::from(rollout),
        }
    }

    /// Ties `conversation` to `rollout` (a rollout's own conversation, or a sub-agent
    /// spawned in it), replacing what it was tied to.
    pub fn tie_conversation(&mut self, conversation: &str, rollout: &RolloutId) {
        let key = id_key(conversation);
        let before = self.conversations.insert(key, rollout.clone());
        if before.as_ref() != Some(rollout) {
            self.newly_tied.push(key);
        }
        if let Some(before) = before.filter(|b| **b != **rollout) {
            self.forget_child(&before, conversation);
        }
        if conversation != &**rollout {
            let children = self.children.entry(rollout.clone()).or_default();
            if !children.iter().any(|c| c == conversation) {
                children.push(conversation.to_string());
            }
        }
    }

    /// Ties `trace` to `rollout` unless it is tied already.
    pub fn tie_trace(&mut self, trace: &str, rollout: &RolloutId) {
        if let Entry::Vacant(entry) = self.traces.entry(id_key(trace)) {
            self.newly_tied.push(*entry.key());
            entry.insert(rollout.clone());
        }
    }

    /// Ties `turn` to `rollout` unless it is tied already.
    pub fn tie_turn(&mut self, turn: &str, rollout: &RolloutId) {
        if let Entry::Vacant(entry) = self.turns.entry(id_key(turn)) {
            self.newly_tied.push(*entry.key());
            entry.insert(rollout.clone());
        }
    }

    /// The keys ([`id_key`]) of the conversations, traces and turns tied to a rollout
    /// since the last call (what may tie records waiting for their session).
    pub fn take_newly_tied(&mut self) -> Vec<u128> {
        std::mem::take(&mut self.newly_tied)
    }

    /// The conversations tied to `rollout` other than its own.
    pub fn children_of(&self, rollout: &str) -> &[String] {
        self.children.get(rollout).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Everything tied to rollout `from` is tied to `into` from now on (`from` was
    /// merged into `into`).
    pub fn move_rollout(&mut self, from: &str, into: &RolloutId) {
        for map in [&mut self.conversations, &mut self.traces, &mut self.turns] {
            for rollout in map.values_mut() {
                if &**rollout == from {
                    *rollout = into.clone();
                }
            }
        }
        let moved = self.children.remove(from).unwrap_or_default();
        let children = self.children.entry(into.clone()).or_default();
        for child in moved
            .into_iter()
            .chain((from != &**into).then(|| from.to_string()))
        {
            if !children.contains(&child) {
                children.push(child);
            }
        }
    }

    fn forget_child(&mut self, rollout: &str, conversation: &str) {
        if let Some(children) = self.children.get_mut(rollout) {
            children.retain(|c| c != conversation);
            if children.is_empty() {
                self.children.remove(rollout);
            }
        }
    }
}

/// The conversation, trace and turn ids a record names, as keys ([`id_key`]): 64
/// bytes, where the three strings took three `Option<String>`s and their copies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NamedIds {
    keys: [u128; 3],
    /// Bit `i` set: `keys[i]` is named (conversation, trace, turn).
    named: u8,
}

impl NamedIds {
    pub fn new(conversation: Option<&str>, trace: Option<&str>, turn: Option<&str>) -> Self {
        let mut named = NamedIds::default();
        for (i, id) in [conversation, trace, turn].into_iter().enumerate() {
            if let Some(id) = id {
                named.keys[i] = id_key(id);
                named.named |= 1 << i;
            }
        }
        named
    }

    /// The conversation, trace and turn keys, in that order (`None`: not named).
    fn slots(&self) -> [Option<u128>; 3] {
        std::array::from_fn(|i| (self.named & (1 << i) != 0).then_some(self.keys[i]))
    }

    /// The keys named, conversation first.
    pub fn keys(&self) -> impl Iterator<Item = u128> + use<> {
        self.slots().into_iter().flatten()
    }
}

/// The 128-bit key of an id: its value when it is 32 lowercase hex digits, with or
/// without a UUID's dashes; otherwise a keyed 128-bit hash of it. Ids that differ
/// in any way (case too) get different keys, as the strings were different keys.
pub fn id_key(id: &str) -> u128 {
    let bytes = id.as_bytes();
    let value = match bytes.len() {
        32 => lowercase_hex_value(bytes),
        36 if [8, 13, 18, 23].iter().all(|&i| bytes[i] == b'-') => {
            let mut digits = [0u8; 32];
            digits[..8].copy_from_slice(&bytes[..8]);
            digits[8..12].copy_from_slice(&bytes[9..13]);
            digits[12..16].copy_from_slice(&bytes[14..18]);
            digits[16..20].copy_from_slice(&bytes[19..23]);
            digits[20..].copy_from_slice(&bytes[24..]);
            lowercase_hex_value(&digits)
        }
        _ => None,
    };
    value.unwrap_or_else(|| hashed(bytes))
}

/// Two independently keyed 64-bit SipHashes of `bytes` (keys chosen at random per
/// process: the maps are rebuilt from the bundles at every start).
fn hashed(bytes: &[u8]) -> u128 {
    static KEYS: OnceLock<[std::collections::hash_map::RandomState; 2]> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    let half = |state: &std::collections::hash_map::RandomState| {
        let mut hasher = state.build_hasher();
        hasher.write(bytes);
        hasher.finish()
    };
    (u128::from(half(&keys[0])) << 64) | u128::from(half(&keys[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_and_uuids_are_their_value_and_other_ids_are_hashed() {
        let uuid = "019a5c3e-7b1f-7c2a-9d4e-0123456789ab";
        assert_eq!(id_key(uuid), 0x019a5c3e7b1f7c2a9d4e0123456789ab);
        assert_ne!(id_key(&uuid.to_uppercase()), id_key(uuid));
        assert_eq!(id_key(&uuid.to_uppercase()), id_key(&uuid.to_uppercase()));
        let trace = "0af7651916cd43dd8448eb211c80319c";
        assert_eq!(id_key(trace), 0x0af7651916cd43dd8448eb211c80319c);
        // Not hex: hashed, and the same id always gives the same key.
        assert_eq!(id_key("turn-1"), id_key("turn-1"));
        assert_ne!(id_key("turn-1"), id_key("turn-2"));
        assert_ne!(id_key("+af7651916cd43dd8448eb211c80319c"), id_key(trace));
        // Dashes in the wrong places are not a UUID.
        assert_ne!(id_key("019a5c3e7-b1f-7c2a-9d4e-0123456789ab"), id_key(uuid));
    }

    #[test]
    fn sub_agents_are_listed_with_their_rollout_and_follow_a_merge() {
        let mut ids = Attribution::default();
        let parent: RolloutId = Arc::from("parent");
        let child: RolloutId = Arc::from("child");
        ids.tie_conversation("parent", &parent);
        ids.tie_conversation("child", &child);
        ids.tie_conversation("grandchild", &child);
        ids.tie_trace("t1", &child);
        ids.tie_turn("u1", &child);
        assert_eq!(ids.children_of("child"), ["grandchild"]);
        assert!(ids.children_of("parent").is_empty());

        ids.move_rollout("child", &parent);
        assert_eq!(ids.children_of("parent"), ["grandchild", "child"]);
        assert!(ids.children_of("child").is_empty());
        for found in [
            ids.conversation("child"),
            ids.conversation("grandchild"),
            ids.trace("t1"),
            ids.turn("u1"),
        ] {
            assert_eq!(found.map(|r| &**r), Some("parent"));
        }
        // Tying a conversation elsewhere takes it off its former rollout's list.
        let other: RolloutId = Arc::from("other");
        ids.tie_conversation("grandchild", &other);
        assert_eq!(ids.children_of("parent"), ["child"]);
        assert_eq!(ids.children_of("other"), ["grandchild"]);
        // A trace or turn keeps the rollout it was first tied to.
        ids.tie_trace("t1", &other);
        assert_eq!(ids.trace("t1").map(|r| &**r), Some("parent"));
        assert_eq!(ids.rollout_id("parent").as_ptr(), parent.as_ptr());
    }
}
