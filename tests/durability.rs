//! Durability across restarts: a capture split over two server runs (with a request
//! re-sent) stores the same events and builds the same graph as one uninterrupted
//! run; a torn last line in `trace.jsonl` is cut off on reopen.

mod common;

use common::*;
use rollout_collector::serve::{ServeConfig, start};
use std::io::Write;
use std::path::Path;

const FIXTURE: &str = "tool-call-ok";
const ROLLOUT: &str = TOOL_CALL_OK_ROLLOUT;

/// The graph of one uninterrupted run over the whole capture, without `raw_*` keys.
async fn baseline_graph(requests: &[Captured]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    send_all_grpc(server.grpc_addr, requests).await;
    let graph = graph_json(&server, ROLLOUT);
    server.shutdown().await.unwrap();
    assert_contiguous_and_unique(&read_trace(dir.path(), ROLLOUT));
    graph
}

async fn graph_after_restart(dir: &Path) -> serde_json::Value {
    let server = start(ServeConfig::ephemeral(dir)).await.unwrap();
    let graph = graph_json(&server, ROLLOUT);
    server.shutdown().await.unwrap();
    graph
}

fn assert_same_graph(actual: &serde_json::Value, expected: &serde_json::Value, what: &str) {
    if actual != expected {
        panic!(
            "{what}: graphs differ\n--- expected\n{}\n--- actual\n{}",
            serde_json::to_string_pretty(expected).unwrap(),
            serde_json::to_string_pretty(actual).unwrap()
        );
    }
}

/// What `strict = false` compares: the semantic collections only; `strict` compares
/// the whole graph but its raw_* keys (payload ids depend on batching).
fn view(mut graph: serde_json::Value, strict: bool) -> serde_json::Value {
    strip_raw(&mut graph);
    if strict {
        return graph;
    }
    let keep = [
        "codex_turns",
        "inference_calls",
        "tool_calls",
        "terminal_sessions",
        "terminal_operations",
        "conversation_items",
        "interaction_edges",
    ];
    graph
        .as_object_mut()
        .unwrap()
        .retain(|k, _| keep.contains(&k.as_str()));
    graph
}

/// Events of the stored trace that came from OTLP records (not collector-decided).
fn recorded(dir: &Path) -> usize {
    read_trace(dir, ROLLOUT)
        .iter()
        .filter(|e| e.evidence.is_some())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_capture_matches_an_uninterrupted_run() {
    restart_mid_capture(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_capture_matches_an_uninterrupted_run_exactly() {
    restart_mid_capture(true).await;
}

async fn restart_mid_capture(strict: bool) {
    let requests = fixture_requests(FIXTURE);
    let expected = view(baseline_graph(&requests).await, strict);
    assert_tool_call_ok_graph(&expected);

    for split in 1..requests.len() {
        let dir = tempfile::tempdir().unwrap();

        let first = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
        send_all_grpc(first.grpc_addr, &requests[..split]).await;
        let before = view(graph_json(&first, ROLLOUT), strict);
        first.shutdown().await.unwrap();
        let stored_before = recorded(dir.path());

        // Reopening replays the bundle into the same graph.
        assert_same_graph(
            &view(graph_after_restart(dir.path()).await, strict),
            &before,
            &format!("split {split}: replay after restart"),
        );

        let second = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
        // A request already stored before the restart, sent again: nothing new.
        send_grpc(second.grpc_addr, &requests[0]).await.unwrap();
        assert_eq!(
            recorded(dir.path()),
            stored_before,
            "split {split}: re-sent request stored again"
        );
        send_all_grpc(second.grpc_addr, &requests[split..]).await;
        // And one sent in this run, again.
        send_grpc(second.grpc_addr, requests.last().unwrap())
            .await
            .unwrap();
        let graph = view(graph_json(&second, ROLLOUT), strict);
        second.shutdown().await.unwrap();

        let events = read_trace(dir.path(), ROLLOUT);
        assert_contiguous_and_unique(&events);
        assert_eq!(
            events
                .iter()
                .filter(|e| e.payload.type_name() == "rollout_started")
                .count(),
            1,
            "split {split}"
        );
        assert_same_graph(&graph, &expected, &format!("split {split}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_last_line_is_cut_off_and_the_bundle_keeps_working() {
    torn_last_line(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_last_line_is_cut_off_and_the_graph_is_exactly_the_same() {
    torn_last_line(true).await;
}

async fn torn_last_line(strict: bool) {
    let requests = fixture_requests(FIXTURE);
    let expected = view(baseline_graph(&requests).await, strict);
    let dir = tempfile::tempdir().unwrap();
    let split = requests.len() - 1;

    let first = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    send_all_grpc(first.grpc_addr, &requests[..split]).await;
    first.shutdown().await.unwrap();

    // A crash in the middle of an append: half a line, never acknowledged.
    let path = trace_path(dir.path(), ROLLOUT);
    let intact = std::fs::read(&path).unwrap();
    assert!(intact.ends_with(b"\n"));
    let last_line = intact[..intact.len() - 1]
        .rsplit(|b| *b == b'\n')
        .next()
        .unwrap()
        .to_vec();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(&last_line[..last_line.len() / 2]).unwrap();
    drop(file);

    let second = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        intact,
        "the torn line was not cut off on open"
    );
    send_all_grpc(second.grpc_addr, &requests[split..]).await;
    let graph = view(graph_json(&second, ROLLOUT), strict);
    second.shutdown().await.unwrap();

    let events = read_trace(dir.path(), ROLLOUT);
    assert_contiguous_and_unique(&events);
    assert_same_graph(&graph, &expected, "after the torn line");
}

/// A crash right after a new session's bundle was taken from the spares: the folder
/// is in place with an empty manifest, and nothing of it was acknowledged. The next
/// start sets it aside under `discarded/` and opens everything else; the same
/// requests sent again build the graph of an uninterrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_cut_short_at_creation_is_set_aside() {
    let requests = fixture_requests(FIXTURE);
    let expected = view(baseline_graph(&requests).await, true);
    let dir = tempfile::tempdir().unwrap();

    let first = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    send_all_grpc(first.grpc_addr, &requests).await;
    first.shutdown().await.unwrap();
    // Another session whose first Export never reached the write-ahead log.
    let cut = dir.path().join("rollouts").join("cut-short-session");
    std::fs::create_dir_all(&cut).unwrap();
    for name in ["trace.jsonl", "payloads.jsonl", "manifest.json"] {
        std::fs::write(cut.join(name), b"").unwrap();
    }
    std::fs::write(cut.join("trace.jsonl"), b"{\"seq\":1,\"tor").unwrap();

    let second = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    assert!(
        !cut.exists(),
        "the cut-short bundle is still among the rollouts"
    );
    assert!(
        dir.path()
            .join("discarded/cut-short-session/trace.jsonl")
            .exists(),
        "the cut-short bundle was not kept under discarded/"
    );
    send_all_grpc(second.grpc_addr, &requests).await;
    let graph = view(graph_json(&second, ROLLOUT), true);
    let listed = second.collector.lock().unwrap().rollout_ids();
    second.shutdown().await.unwrap();
    assert_eq!(listed, vec![ROLLOUT.to_string()]);
    assert_same_graph(
        &graph,
        &expected,
        "after setting the cut-short bundle aside",
    );
}

/// Files this process has open under `dir`.
fn open_files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .collect()
}

/// Sends the first half of the capture, closes the session as the idle sweep does,
/// optionally lets the sweep evict it (twice, with a query reading it back between),
/// then sends the rest. Returns the final graph and the summaries `list` gave of the
/// closed session before and after the eviction.
async fn close_midway(requests: &[Captured], evict: bool) -> (serde_json::Value, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let (first, rest) = requests.split_at(requests.len() / 2);
    send_all_grpc(server.grpc_addr, first).await;
    let sweep = || {
        server
            .collector
            .lock()
            .unwrap()
            .close_idle(std::time::Duration::ZERO, false)
            .unwrap()
    };
    let listed = || format!("{:?}", server.collector.lock().unwrap().summary(ROLLOUT));
    let counts = || server.collector.lock().unwrap().session_counts();
    assert_eq!(sweep(), vec![ROLLOUT.to_string()], "closed by the sweep");
    let mut summaries = vec![listed()];
    let closed_graph = graph_json(&server, ROLLOUT);
    if evict {
        let bundle = dir.path().join("rollouts").join(ROLLOUT);
        assert_eq!(
            open_files_under(&bundle),
            Vec::<std::path::PathBuf>::new(),
            "a closed session's bundle files are closed (its next record opens them)"
        );
        assert!(sweep().is_empty(), "a closed session is not closed again");
        assert_eq!(counts(), (0, 1), "the finished session was evicted");
        assert_eq!(
            open_files_under(&bundle),
            Vec::<std::path::PathBuf>::new(),
            "an evicted session's bundle files are closed"
        );
        summaries.push(listed());
        assert_eq!(
            server.collector.lock().unwrap().rollout_ids(),
            vec![ROLLOUT.to_string()],
            "an evicted session is still listed"
        );
        assert_eq!(counts(), (0, 1), "list reads nothing back");
        assert_same_graph(
            &graph_json(&server, ROLLOUT),
            &closed_graph,
            "read back after the eviction",
        );
        assert_eq!(counts(), (1, 0), "a query reads the session back");
        sweep();
        assert_eq!(counts(), (0, 1), "evicted again");
        // Its record ids left memory with it, and come back with its events: the
        // first half sent again stores nothing.
        let stored = read_trace(dir.path(), ROLLOUT).len();
        send_all_grpc(server.grpc_addr, first).await;
        assert_eq!(counts(), (1, 0), "records sent again read the session back");
        assert_eq!(
            read_trace(dir.path(), ROLLOUT).len(),
            stored,
            "records sent again to an evicted session are not stored again"
        );
        sweep();
        assert_eq!(counts(), (0, 1), "evicted once more");
    }
    // Late records of the evicted session read it back and join it.
    send_all_grpc(server.grpc_addr, rest).await;
    assert_eq!(counts(), (1, 0));
    let graph = view(graph_json(&server, ROLLOUT), true);
    server.shutdown().await.unwrap();
    assert_contiguous_and_unique(&read_trace(dir.path(), ROLLOUT));
    assert_same_graph(
        &view(graph_after_restart(dir.path()).await, true),
        &graph,
        "after a restart",
    );
    (graph, summaries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_session_is_read_back_whole() {
    let requests = fixture_requests(FIXTURE);
    let (expected, _) = close_midway(&requests, false).await;
    let (graph, summaries) = close_midway(&requests, true).await;
    assert_eq!(
        summaries[0], summaries[1],
        "list shows the same before and after"
    );
    assert_same_graph(&graph, &expected, "with the session evicted midway");
}
