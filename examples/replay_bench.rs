//! Replay benchmark: writes a data directory of synthetic Codex sessions (copies of
//! the `tool-call-ok` fixture's turn, see `benches/support/synthetic.rs`), then
//! times what a restart does: `Collector::open` (read and replay every bundle) and
//! building every rollout's graph.
//!
//! ```text
//! cargo run --release --example replay_bench -- --events 1000000 --sessions 1
//! cargo run --release --example replay_bench -- --events 1000000 --sessions 1000 --runs 3
//! ```
//!
//! It prints events replayed, wall time (open, graphs, total), events/s, the memory
//! the replayed rollouts hold, and a digest of every graph (the same data must give
//! the same digest before and after a change to the replay path).

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

use clap::Parser;
use rollout_collector::collector::Collector;
use rollout_collector::store::DataDir;
use sha2::{Digest, Sha256};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting the bytes in use (to measure what replay holds).
struct Counting;

static HEAP_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HEAP_BYTES.fetch_add(new_size, Ordering::Relaxed);
        HEAP_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap_bytes() -> usize {
    HEAP_BYTES.load(Ordering::Relaxed)
}

#[derive(Parser, Debug)]
#[command(
    name = "replay_bench",
    about = "Time Collector::open and graph building over a synthetic data directory"
)]
struct Args {
    /// Events to write in all (rounded to whole turns)
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Sessions (bundles) the events are spread over
    #[arg(long, default_value_t = 1)]
    sessions: u64,
    /// Data directory; written when it holds no bundles yet (default: a temporary one)
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Timed replays (the best and the median are reported)
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let temp = tempfile::tempdir()?;
    let root = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let data_dir = DataDir::new(&root);
    if data_dir.rollout_dirs().is_empty() {
        let template = synthetic::Template::load();
        let per_session = args.events.div_ceil(args.sessions);
        let turns = per_session.div_ceil(template.events_per_turn() as u64);
        let started = Instant::now();
        let written = template.write_data_dir(&root, args.sessions, turns);
        eprintln!(
            "wrote {written} events ({} sessions x {turns} turns x {} events) to {} in {:.1} s",
            args.sessions,
            template.events_per_turn(),
            root.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let (events, bytes) = stored_events(&data_dir)?;
    let heap_before = heap_bytes();

    let mut times = Vec::new();
    let mut digest = String::new();
    let (mut held_open, mut held_graphs) = (0, 0);
    let mut kept = 0;
    let mut rollouts = 0;
    let mut held_evicted = 0;
    for run in 0..args.runs {
        let started = Instant::now();
        let mut collector = Collector::open(data_dir.clone())?;
        let opened = started.elapsed();
        held_open = heap_bytes().saturating_sub(heap_before);
        let ids = collector.rollout_ids();
        let graphs: Vec<_> = ids
            .iter()
            .map(|id| collector.graph(id).expect("graph"))
            .collect();
        let total = started.elapsed();
        times.push((opened, total));
        held_graphs = heap_bytes().saturating_sub(heap_before);
        rollouts = ids.len();
        kept = graphs.iter().map(|g| g.telemetry.event_count).sum::<u64>();
        let mut hasher = Sha256::new();
        for graph in &graphs {
            hasher.update(serde_json::to_vec(&**graph)?);
        }
        digest = hex::encode(&hasher.finalize()[..8]);
        drop(graphs);
        if run + 1 == args.runs && args.data_dir.is_none() {
            // What stays of each session once it is finished and evicted (what `list`
            // shows, and its conversation, trace and turn ids). Closing writes to the
            // bundles, so not on a data directory kept for later runs.
            collector.close_idle(std::time::Duration::ZERO, true)?;
            collector.close_idle(std::time::Duration::ZERO, true)?;
            assert_eq!(collector.session_counts().0, 0, "every session evicted");
            held_evicted = heap_bytes().saturating_sub(heap_before);
        }
        drop(collector);
    }
    times.sort_by_key(|t| t.1);
    let (best_open, best) = times[0];
    let (_, median) = times[times.len() / 2];
    println!(
        "replayed {events} events ({:.0} MB of trace.jsonl, {} sessions, {kept} kept for reduce)",
        bytes as f64 / 1e6,
        data_dir.rollout_dirs().len()
    );
    println!(
        "best of {}: {:.3} s ({:.3} s open + {:.3} s graphs), {:.0} events/s; median {:.3} s",
        args.runs,
        best.as_secs_f64(),
        best_open.as_secs_f64(),
        (best - best_open).as_secs_f64(),
        events as f64 / best.as_secs_f64(),
        median.as_secs_f64()
    );
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "memory: peak RSS {} MiB; heap held after open {:.1} MiB, with every graph built {:.1} MiB \
         ({:.0} bytes per rollout, {:.0} per kept event)",
        status_kib("VmHWM") / 1024,
        mib(held_open),
        mib(held_graphs),
        held_graphs as f64 / rollouts.max(1) as f64,
        held_graphs as f64 / kept.max(1) as f64
    );
    println!(
        "every session closed and evicted: heap held {:.2} MiB ({:.0} bytes per session)",
        mib(held_evicted),
        held_evicted as f64 / rollouts.max(1) as f64
    );
    let rollout_bytes = synthetic_rollout_bytes();
    println!(
        "one {}-turn rollout in memory: {} kept events, {} bytes of events ({:.0} per kept \
         event), {} bytes with its graph",
        rollout_bytes.0,
        rollout_bytes.1,
        rollout_bytes.2,
        rollout_bytes.2 as f64 / rollout_bytes.1 as f64,
        rollout_bytes.3
    );
    println!("graph digest {digest}");
    Ok(())
}

/// What one rollout's state holds: (turns, kept events, heap bytes of the state,
/// heap bytes with its cached graph), for a 3-turn synthetic session (the loadgen's
/// default session length) pushed event by event as the collector does.
fn synthetic_rollout_bytes() -> (u64, usize, usize, usize) {
    let turns = 3;
    let template = synthetic::Template::load();
    let before = heap_bytes();
    let events = template.session(0, turns);
    let mut state = rollout_collector::reduce::RolloutState::new(&template.session_id(0));
    for event in events {
        state.push(event);
    }
    let held = heap_bytes() - before;
    let graph = state.graph();
    let with_graph = heap_bytes() - before;
    let kept = graph.telemetry.event_count as usize;
    drop(graph);
    (turns, kept + 1, held, with_graph)
}

/// Events and bytes in every bundle's `trace.jsonl`.
fn stored_events(data_dir: &DataDir) -> anyhow::Result<(u64, u64)> {
    let (mut events, mut bytes) = (0, 0);
    for dir in data_dir.rollout_dirs() {
        let mut log = std::fs::File::open(dir.join("trace.jsonl"))?;
        let mut block = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut log, &mut block)?;
            if n == 0 {
                break;
            }
            events += memchr::memchr_iter(b'\n', &block[..n]).count() as u64;
            bytes += n as u64;
        }
    }
    Ok((events, bytes))
}

/// A `/proc/self/status` figure, in KiB (0 where there is none).
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
