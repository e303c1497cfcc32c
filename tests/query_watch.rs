//! The gRPC RolloutService of `serve`: WatchRollout streams a session's graph as its
//! Export requests arrive; ListRollouts and GetRollout answer what is stored, with
//! NOT_FOUND and INVALID_ARGUMENT for unknown and empty ids. No sleeps: the stream is
//! read after each request, with a timeout only as a failure guard.

mod common;

use common::*;
use rollout_collector::proto::rollout_service_client::RolloutServiceClient;
use rollout_collector::proto::{
    GetRolloutRequest, ListRolloutsRequest, Rollout, WatchRolloutRequest,
};
use rollout_collector::serve::{ServeConfig, Server, start};
use std::time::Duration;
use tonic::transport::Channel;

const ROLLOUT: &str = TOOL_CALL_OK_ROLLOUT;
/// Failure guard for one stream message; never reached when all is well.
const WAIT: Duration = Duration::from_secs(20);

async fn client(server: &Server) -> RolloutServiceClient<Channel> {
    RolloutServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .expect("connect")
}

async fn get(
    client: &mut RolloutServiceClient<Channel>,
    id: &str,
) -> Result<Rollout, tonic::Status> {
    client
        .get_rollout(GetRolloutRequest {
            rollout_id: id.to_string(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn next(stream: &mut tonic::Streaming<Rollout>, after: &str) -> Rollout {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap_or_else(|_| panic!("no WatchRollout message within {WAIT:?} after {after}"))
        .expect("stream error")
        .unwrap_or_else(|| panic!("WatchRollout stream ended after {after}"))
}

fn graph(rollout: &Rollout) -> serde_json::Value {
    serde_json::from_str(&rollout.graph_json).expect("graph_json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_rollout_streams_the_graph_as_requests_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let mut client = client(&server).await;

    // Watching a rollout not seen yet is fine: the stream waits for it.
    let mut stream = client
        .watch_rollout(WatchRolloutRequest {
            rollout_id: ROLLOUT.into(),
        })
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        get(&mut client, ROLLOUT).await.unwrap_err().code(),
        tonic::Code::NotFound
    );

    // Every request of this fixture adds to the rollout: after each, the stream's next
    // message is the graph as it is now (asked for separately), with more events.
    let requests = fixture_requests("tool-call-ok");
    let mut seen: Vec<Rollout> = Vec::new();
    for captured in &requests {
        send_grpc(server.grpc_addr, captured)
            .await
            .unwrap_or_else(|s| panic!("{}: {s:?}", captured.file));
        let now = get(&mut client, ROLLOUT)
            .await
            .unwrap_or_else(|s| panic!("after {}: {s:?}", captured.file));
        let update = next(&mut stream, &captured.file).await;
        assert_eq!(update.summary, now.summary, "after {}", captured.file);
        assert_eq!(update.graph_json, now.graph_json, "after {}", captured.file);
        let summary = update.summary.as_ref().expect("summary");
        assert_eq!(summary.rollout_id, ROLLOUT);
        if let Some(previous) = seen.last().and_then(|p| p.summary.as_ref()) {
            assert!(
                summary.event_count > previous.event_count,
                "after {}: {} events, {} before",
                captured.file,
                summary.event_count,
                previous.event_count
            );
        }
        seen.push(update);
    }

    // The first update was while the session ran; the last is the closed session (its
    // exit-time flush record was in the last request).
    let first = seen.first().unwrap().summary.clone().unwrap();
    assert_eq!(first.status, "running", "{first:?}");
    let last = seen.last().unwrap();
    let summary = last.summary.clone().unwrap();
    assert_eq!(summary.status, "completed", "{summary:?}");
    assert_eq!(
        (
            summary.turn_count,
            summary.inference_call_count,
            summary.tool_call_count
        ),
        (1, 2, 1)
    );
    assert_eq!((summary.input_tokens, summary.output_tokens), (300, 21));
    assert_tool_call_ok_graph(&graph(last));
    assert_eq!(graph(last), graph_json(&server, ROLLOUT));

    // Requests re-sent whole change nothing, so the stream sends nothing more (checked
    // below: the next item is the end at shutdown). A new watcher gets the current
    // graph at once.
    send_all_grpc(server.grpc_addr, &requests).await;
    let mut late = client
        .watch_rollout(WatchRolloutRequest {
            rollout_id: ROLLOUT.into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let current = next(&mut late, "subscribing").await;
    assert_eq!(current.graph_json, last.graph_json);

    // Shutting the server down ends the streams with UNAVAILABLE, and does not wait
    // for the watchers to hang up.
    drop(client);
    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("shutdown hangs while a WatchRollout stream is open")
        .unwrap();
    for s in [&mut stream, &mut late] {
        let end = tokio::time::timeout(WAIT, s.message())
            .await
            .expect("the stream did not end at shutdown");
        match end {
            Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
            Ok(other) => panic!("expected UNAVAILABLE at shutdown, got {other:?}"),
        }
    }
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_get_rollouts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let mut client = client(&server).await;

    let empty = client
        .list_rollouts(ListRolloutsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(empty.rollouts.is_empty(), "{empty:?}");

    send_all_grpc(server.grpc_addr, &fixture_requests("tool-call-ok")).await;

    let list = client
        .list_rollouts(ListRolloutsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.rollouts.len(), 1, "{list:?}");
    let row = &list.rollouts[0];
    assert_eq!(row.rollout_id, ROLLOUT);
    assert_eq!(row.status, "completed");
    assert_eq!(row.codex_version, "0.169.0");
    assert_eq!(
        (
            row.turn_count,
            row.inference_call_count,
            row.tool_call_count
        ),
        (1, 2, 1)
    );
    assert_eq!((row.input_tokens, row.output_tokens), (300, 21));
    assert!(row.record_count > 0 && row.event_count > 0, "{row:?}");
    assert!(
        row.first_seen_unix_ms > 0 && row.first_seen_unix_ms <= row.last_seen_unix_ms,
        "{row:?}"
    );

    let rollout = get(&mut client, ROLLOUT).await.expect("get");
    assert_eq!(rollout.summary.as_ref(), Some(row));
    assert_tool_call_ok_graph(&graph(&rollout));
    assert_eq!(graph(&rollout), graph_json(&server, ROLLOUT));

    let unknown = get(&mut client, "01a200f0-0000-7000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    let empty_id = get(&mut client, "").await.unwrap_err();
    assert_eq!(
        empty_id.code(),
        tonic::Code::InvalidArgument,
        "{empty_id:?}"
    );
    let watch_empty = client
        .watch_rollout(WatchRolloutRequest {
            rollout_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        watch_empty.code(),
        tonic::Code::InvalidArgument,
        "{watch_empty:?}"
    );

    drop(client);
    server.shutdown().await.unwrap();
}
