//! Backpressure: when `--max-pending-requests` Export requests are already waiting for
//! storage, the next one is refused with gRPC RESOURCE_EXHAUSTED or HTTP 429 (which
//! OTLP senders retry), nothing is stored for it, and the waiting ones still succeed.

mod common;

use common::*;
use rollout_collector::serve::{ServeConfig, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Holding the storage lock across awaits is the point: it keeps the first request waiting.
#[allow(clippy::await_holding_lock)]
async fn a_full_collector_answers_resource_exhausted_and_429_then_recovers() {
    let requests = fixture_requests("tool-call-ok");
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::ephemeral(dir.path());
    config.max_pending_requests = 1;
    let server = start(config).await.unwrap();

    // Hold storage so the first request stays in flight.
    let storage = server.collector.lock().unwrap();
    let addr = server.grpc_addr;
    let first = requests[0].clone();
    let in_flight = tokio::spawn(async move { send_grpc(addr, &first).await });
    while server.ingestor.requests_in_flight() == 0 {
        tokio::task::yield_now().await;
    }

    let refused = send_grpc(server.grpc_addr, &requests[1]).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(refused.message().contains("busy"), "{}", refused.message());

    let path = format!("/v1/{}", requests[1].kind);
    let response = reqwest::Client::new()
        .post(format!("http://{}{path}", server.http_addr))
        .header("content-type", "application/x-protobuf")
        .body(requests[1].bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));

    drop(storage);
    in_flight
        .await
        .unwrap()
        .expect("the waiting request is stored");
    assert_eq!(server.ingestor.requests_in_flight(), 0);
    // Refused requests stored nothing; sent again, they are accepted.
    let stored = server
        .ingestor
        .counters
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(stored, 1);
    send_grpc(server.grpc_addr, &requests[1]).await.unwrap();
    server.shutdown().await.unwrap();
}
