//! The same records give the same graph, however they are batched and ordered.

use proptest::prelude::*;
use rollout_collector::collector::Collector;
use rollout_collector::normalize::NormalizedRecord;
use rollout_collector::receive::import;
use rollout_collector::store::DataDir;
use serde_json::Value;
use std::path::Path;

fn records(fixture: &str) -> Vec<NormalizedRecord> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/codex")
        .join(fixture)
        .join("requests");
    let files = import::collect_files(&[dir]).unwrap();
    files
        .iter()
        .flat_map(|f| import::read_file(f).unwrap())
        .flat_map(|r| r.normalize(false).unwrap().0)
        .collect()
}

/// The graph without what depends on storage layout (payload file ids).
fn graph_of(batches: Vec<Vec<NormalizedRecord>>) -> Value {
    let data = tempfile::tempdir().unwrap();
    let mut collector = Collector::open(DataDir::new(data.path())).unwrap();
    for batch in batches {
        collector.ingest(batch).unwrap();
    }
    let ids = collector.rollout_ids();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let mut graph = serde_json::to_value(&*collector.graph(&ids[0]).unwrap()).unwrap();
    strip_raw(&mut graph);
    graph
}

fn strip_raw(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with("raw_"));
            map.values_mut().for_each(strip_raw);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_raw),
        _ => {}
    }
}

/// Deterministic shuffle and re-batching from a seed.
fn reshuffle(
    mut records: Vec<NormalizedRecord>,
    seed: u64,
    max_batch: usize,
) -> Vec<Vec<NormalizedRecord>> {
    let mut state = seed | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in (1..records.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        records.swap(i, j);
    }
    let mut batches = Vec::new();
    while !records.is_empty() {
        let n = 1 + (next() as usize % max_batch).min(records.len() - 1);
        batches.push(records.drain(..n.min(records.len())).collect());
    }
    batches
}

fn check(fixture: &str, seed: u64, max_batch: usize) {
    let all = records(fixture);
    let baseline = graph_of(vec![all.clone()]);
    let shuffled = graph_of(reshuffle(all, seed, max_batch));
    if baseline != shuffled {
        panic!(
            "{fixture}: graph changed with seed {seed} at {}",
            first_difference(&baseline, &shuffled, String::new())
        );
    }
}

/// Graphs reduced from snapshots taken between batches (as the export feed does,
/// some still held while more records arrive) are those of the records stored so
/// far, and the last equals the graph of all records stored at once.
fn check_snapshots(fixture: &str, seed: u64, max_batch: usize) {
    let all = records(fixture);
    let baseline = graph_of(vec![all.clone()]);
    let data = tempfile::tempdir().unwrap();
    let mut collector = Collector::open(DataDir::new(data.path())).unwrap();
    let mut held = Vec::new();
    let mut stored = Vec::new();
    for (n, batch) in reshuffle(all, seed, max_batch).into_iter().enumerate() {
        stored.extend(batch.clone());
        collector.ingest(batch).unwrap();
        let ids = collector.rollout_ids();
        let Some(id) = ids.first() else { continue };
        let snapshot = collector.snapshot(id).unwrap();
        // Held after enough snapshots to merge chunks, and while more are sealed.
        if n == 6 || n == 8 {
            held.push((snapshot, stored.clone()));
        }
    }
    for (snapshot, stored_then) in held {
        let mut then = serde_json::to_value(&*snapshot.graph()).unwrap();
        strip_raw(&mut then);
        assert_eq!(
            then,
            graph_of(vec![stored_then]),
            "{fixture}: a held snapshot changed"
        );
    }
    let id = &collector.rollout_ids()[0];
    let mut last = serde_json::to_value(&*collector.snapshot(id).unwrap().graph()).unwrap();
    strip_raw(&mut last);
    if baseline != last {
        panic!(
            "{fixture}: graph from snapshots differs at {}",
            first_difference(&baseline, &last, String::new())
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    #[test]
    fn spans_and_logs_in_any_order(seed in any::<u64>(), max_batch in 1usize..400) {
        check("tool-call-ok", seed, max_batch);
    }

    #[test]
    fn sub_agents_in_any_order(seed in any::<u64>(), max_batch in 50usize..800) {
        check("multi-agent-app-server", seed, max_batch);
    }

    #[test]
    fn snapshots_between_batches_share_events_safely(seed in any::<u64>(), max_batch in 5usize..40) {
        check_snapshots("tool-call-ok", seed, max_batch);
    }

    #[test]
    fn logs_only_in_any_order(seed in any::<u64>(), max_batch in 1usize..30) {
        check("logs-only", seed, max_batch);
    }
}

fn first_difference(a: &Value, b: &Value, path: String) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                if y.get(k) != Some(v) {
                    return first_difference(
                        v,
                        y.get(k).unwrap_or(&Value::Null),
                        format!("{path}.{k}"),
                    );
                }
            }
            format!(
                "{path}: keys {:?} vs {:?}",
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>()
            )
        }
        _ => format!("{path}: {a} vs {b}"),
    }
}
