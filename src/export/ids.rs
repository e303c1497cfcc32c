//! Deterministic OTLP ids for enriched spans.
//!
//! The trace id is derived from the rollout id alone, so every span of one rollout
//! (root thread, sub-agents, turns, calls) lands in one trace. A span id is derived
//! from the rollout id, the kind of graph object and the object's id. The same graph
//! therefore always yields the same ids: a restart, a replay or a re-import produces
//! byte-identical spans, which backends treat as the same span.

use sha2::{Digest, Sha256};

/// The kinds of graph objects that become spans.
pub const KIND_THREAD: &str = "thread";
pub const KIND_TURN: &str = "codex_turn";
pub const KIND_INFERENCE: &str = "inference_call";
pub const KIND_TOOL: &str = "tool_call";

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"rollout-collector/export/v1");
    for part in parts {
        // Length-prefix each part so ("ab","c") and ("a","bc") differ.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// The 16-byte trace id of a rollout. Never all zero (an invalid id in OTLP).
pub fn trace_id(rollout_id: &str) -> [u8; 16] {
    let d = digest(&["trace", rollout_id]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    if id == [0u8; 16] {
        id[15] = 1;
    }
    id
}

/// The 8-byte span id of one graph object. Never all zero.
pub fn span_id(rollout_id: &str, kind: &str, object_id: &str) -> [u8; 8] {
    let d = digest(&["span", rollout_id, kind, object_id]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    if id == [0u8; 8] {
        id[7] = 1;
    }
    id
}

/// Parses a hex OTLP id (as kept in the graph, e.g. `otel_trace_id`) of `N` bytes.
/// Returns `None` for malformed or all-zero ids.
pub fn parse_hex_id<const N: usize>(hex_id: &str) -> Option<[u8; N]> {
    let bytes = hex::decode(hex_id.trim()).ok()?;
    let id: [u8; N] = bytes.try_into().ok()?;
    (id != [0u8; N]).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        assert_eq!(trace_id("r1"), trace_id("r1"));
        assert_ne!(trace_id("r1"), trace_id("r2"));
        assert_eq!(
            span_id("r1", KIND_TURN, "t1"),
            span_id("r1", KIND_TURN, "t1")
        );
        assert_ne!(
            span_id("r1", KIND_TURN, "t1"),
            span_id("r2", KIND_TURN, "t1")
        );
        assert_ne!(
            span_id("r1", KIND_TURN, "t1"),
            span_id("r1", KIND_TOOL, "t1")
        );
        assert_ne!(span_id("r1", "ab", "c"), span_id("r1", "a", "bc"));
    }

    #[test]
    fn ids_are_stable_across_versions() {
        // Pinned: changing the derivation would make a re-import send duplicates.
        let pinned_trace = hex::encode(trace_id("rollout-1"));
        let pinned_span = hex::encode(span_id("rollout-1", KIND_THREAD, "rollout-1"));
        assert_eq!(pinned_trace.len(), 32);
        assert_eq!(pinned_span.len(), 16);
        assert_eq!(pinned_trace, PINNED_TRACE);
        assert_eq!(pinned_span, PINNED_SPAN);
    }

    const PINNED_TRACE: &str = "5603fde45fc5b7d9c38abbede36f551b";
    const PINNED_SPAN: &str = "ff711f91e6e45fcc";

    #[test]
    fn parses_hex_ids() {
        assert_eq!(
            parse_hex_id::<8>("0102030405060708"),
            Some([1, 2, 3, 4, 5, 6, 7, 8])
        );
        assert_eq!(parse_hex_id::<8>("0000000000000000"), None);
        assert_eq!(parse_hex_id::<8>("0102"), None);
        assert_eq!(parse_hex_id::<16>("zz"), None);
    }
}
