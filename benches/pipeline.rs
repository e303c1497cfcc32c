//! Criterion benches of the data path, in events (or records) per second:
//!
//! - `normalize`: decode and normalize the `tool-call-ok` fixture's Export requests.
//! - `reduce`: build a rollout's graph from its events, in one go (`reduce::reduce`),
//!   through [`RolloutState`] (push every event, then one graph), and live (a graph
//!   after every Export-sized batch).
//! - `store`: `Collector::store` of Export-sized batches of normalized records, and
//!   their write-ahead log entry (the storer's work; without the fsync).
//! - `replay`: `Collector::open` of a data directory plus every graph, as on restart.
//!
//! ```text
//! cargo bench --bench pipeline            # all
//! cargo bench --bench pipeline -- reduce  # one group
//! ```
//!
//! The 1,000,000-event replay is `examples/replay_bench.rs`.

#[path = "support/synthetic.rs"]
mod synthetic;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rollout_collector::collector::Collector;
use rollout_collector::normalize::RawEvent;
use rollout_collector::normalize::Signal;
use rollout_collector::receive::decode::normalize_protobuf;
use rollout_collector::receive::import;
use rollout_collector::reduce::{self, RolloutState};
use rollout_collector::store::DataDir;
use std::hint::black_box;
use std::time::Duration;

fn normalize(c: &mut Criterion) {
    let files = import::collect_files(&[synthetic::fixture_requests()]).expect("fixture files");
    let requests: Vec<(Signal, Vec<u8>)> = files
        .iter()
        .map(|f| {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let kind = ["logs", "traces", "metrics"]
                .into_iter()
                .find(|k| name.ends_with(&format!("{k}.pb")))
                .expect("a *-logs.pb, *-traces.pb or *-metrics.pb file");
            let signal = Signal::parse(kind).expect("a signal");
            (signal, std::fs::read(f).expect("fixture request"))
        })
        .collect();
    let normalize_all = |requests: &[(Signal, Vec<u8>)]| {
        requests
            .iter()
            .map(|(signal, bytes)| normalize_protobuf(*signal, bytes).expect("protobuf").len())
            .sum::<usize>()
    };
    let records = normalize_all(&requests);
    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(records as u64));
    group.bench_function("decode_and_normalize_records", |b| {
        b.iter(|| normalize_all(black_box(&requests)))
    });
    group.finish();
}

fn reduce(c: &mut Criterion) {
    let template = synthetic::Template::load();
    let mut group = c.benchmark_group("reduce");
    for turns in [10, 100] {
        let id = template.session_id(0);
        let events = template.session(0, turns);
        let kept: Vec<RawEvent> = events
            .iter()
            .filter(|e| !e.payload.is_evidence_only())
            .cloned()
            .collect();
        // The graph of a rollout's state (it holds the events that are not evidence
        // only), as the collector builds it.
        group.throughput(Throughput::Elements(kept.len() as u64));
        group.bench_function(format!("graph_of_kept_events/{turns}_turns"), |b| {
            b.iter_batched(
                || {
                    let mut state = RolloutState::new(&id);
                    for event in &kept {
                        state.push(event.clone());
                    }
                    state
                },
                |mut state| state.graph(),
                BatchSize::LargeInput,
            )
        });
        // `reduce::reduce` over a slice of events (copies what it reads of them first).
        group.bench_function(format!("reduce_fn/{turns}_turns"), |b| {
            b.iter(|| reduce::reduce(&id, black_box(&kept)))
        });
        // Every stored event, pushed one by one, then one graph (a replay).
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_function(format!("push_then_graph/{turns}_turns"), |b| {
            b.iter_batched(
                || events.clone(),
                |events| {
                    let mut state = RolloutState::new(&id);
                    for event in events {
                        state.push(event);
                    }
                    state.graph()
                },
                BatchSize::LargeInput,
            )
        });
    }
    // Live: a graph after every batch of 200 events, as `serve` does per Export.
    let turns = 10;
    let id = template.session_id(0);
    let events = template.session(0, turns);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function(format!("live_graph_per_200_events/{turns}_turns"), |b| {
        b.iter_batched(
            || events.clone(),
            |events| {
                let mut state = RolloutState::new(&id);
                let mut batch = 0;
                for event in events {
                    state.push(event);
                    batch += 1;
                    if batch == 200 {
                        black_box(state.graph());
                        batch = 0;
                    }
                }
                state.graph()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// The storer's work per Export: `Collector::store` of 200 normalized records mixing
/// 8 sessions, then the write-ahead log entry (written, not fsynced).
fn store(c: &mut Criterion) {
    let template = synthetic::Template::load();
    let (sessions, turns) = (8, 3);
    let mut records = Vec::new();
    for turn in 0..turns {
        let per_session: Vec<_> = (0..sessions)
            .map(|session| template.turn_records(session, turn))
            .collect();
        // Round robin over the sessions, as a batching exporter mixes them.
        let longest = per_session.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..longest {
            for session in &per_session {
                records.extend(session.get(i).cloned());
            }
        }
    }
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function(
        format!("store_and_log/{sessions}_sessions_x_{turns}_turns"),
        |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let collector = Collector::open(DataDir::new(dir.path())).expect("collector");
                    (dir, collector, records.clone())
                },
                |(dir, mut collector, records)| {
                    let mut records = records.into_iter();
                    loop {
                        let export: Vec<_> = records.by_ref().take(200).collect();
                        if export.is_empty() {
                            break;
                        }
                        collector.store(export).expect("store");
                        collector.log_changes().expect("log");
                    }
                    (dir, collector)
                },
                BatchSize::PerIteration,
            )
        },
    );
    group.finish();
}

fn replay(c: &mut Criterion) {
    let template = synthetic::Template::load();
    let mut group = c.benchmark_group("replay");
    for (sessions, turns) in [(100, 2), (1, 200)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let events = template.write_data_dir(dir.path(), sessions, turns);
        group.throughput(Throughput::Elements(events));
        group.bench_function(
            format!("open_and_graphs/{sessions}_sessions_x_{turns}_turns"),
            |b| {
                b.iter(|| {
                    let mut collector =
                        Collector::open(DataDir::new(dir.path())).expect("collector");
                    for id in collector.rollout_ids() {
                        black_box(collector.graph(&id));
                    }
                    collector
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = normalize, reduce, store, replay
}
criterion_main!(benches);
