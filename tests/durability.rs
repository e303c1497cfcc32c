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
    let mut graph = graph_json(&server, ROLLOUT);
    server.shutdown().await.unwrap();
    assert_contiguous_and_unique(&read_trace(dir.path(), ROLLOUT));
    strip_raw(&mut graph);
    graph
}

async fn stripped_graph_after_restart(dir: &Path) -> serde_json::Value {
    let server = start(ServeConfig::ephemeral(dir)).await.unwrap();
    let mut graph = graph_json(&server, ROLLOUT);
    server.shutdown().await.unwrap();
    strip_raw(&mut graph);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_capture_matches_an_uninterrupted_run() {
    let requests = fixture_requests(FIXTURE);
    let expected = baseline_graph(&requests).await;
    assert_tool_call_ok_graph(&expected);

    for split in 1..requests.len() {
        let dir = tempfile::tempdir().unwrap();

        let first = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
        send_all_grpc(first.grpc_addr, &requests[..split]).await;
        let mut before = graph_json(&first, ROLLOUT);
        first.shutdown().await.unwrap();
        strip_raw(&mut before);
        let stored_before = read_trace(dir.path(), ROLLOUT).len();

        // Reopening replays the bundle into the same graph.
        assert_same_graph(
            &stripped_graph_after_restart(dir.path()).await,
            &before,
            &format!("split {split}: replay after restart"),
        );

        let second = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
        // A request already stored before the restart, sent again: nothing new.
        send_grpc(second.grpc_addr, &requests[0]).await.unwrap();
        assert_eq!(
            read_trace(dir.path(), ROLLOUT).len(),
            stored_before,
            "split {split}: re-sent request stored again"
        );
        send_all_grpc(second.grpc_addr, &requests[split..]).await;
        // And one sent in this run, again.
        send_grpc(second.grpc_addr, requests.last().unwrap())
            .await
            .unwrap();
        let mut graph = graph_json(&second, ROLLOUT);
        second.shutdown().await.unwrap();
        strip_raw(&mut graph);

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
    let requests = fixture_requests(FIXTURE);
    let expected = baseline_graph(&requests).await;
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
    let mut graph = graph_json(&second, ROLLOUT);
    second.shutdown().await.unwrap();
    strip_raw(&mut graph);

    let events = read_trace(dir.path(), ROLLOUT);
    assert_contiguous_and_unique(&events);
    assert_same_graph(&graph, &expected, "after the torn line");
}
