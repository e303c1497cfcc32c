//! End to end with the real Codex CLI (npm `@openai/codex@0.169.0`): `codex exec`
//! runs against the project's mock of the Responses API and exports its telemetry to
//! a running `serve`. Codex's own rollout trace of the same run, reduced by
//! `codex debug trace-reduce`, is the oracle for the graph the collector rebuilt. The
//! collector re-exports enriched spans and forwards the original telemetry to real
//! downstream OTLP servers on loopback.

#[path = "common/otlp_sink.rs"]
#[allow(dead_code)]
mod otlp_sink;
mod support;

use otlp_sink::Sink;
use rollout_collector::export::{ExportConfig, ForwardConfig, SpanOptions, build_spans};
use rollout_collector::serve::{self, ServeConfig};
use support::codex_cli::{self, CodexExecOptions};
use support::fidelity;
use support::mock_responses::{MockResponses, Step};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_session_is_rebuilt_like_codexs_own_reducer() {
    let Some(codex) =
        codex_cli::codex_or_skip("codex_exec_session_is_rebuilt_like_codexs_own_reducer")
    else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let (export_sink, forward_sink) = (Sink::start().await, Sink::start().await);
    let mut config = ServeConfig::ephemeral(data.path());
    config.export = Some(ExportConfig::new(export_sink.endpoint()));
    config.forward = Some(ForwardConfig::new(forward_sink.endpoint()));
    let server = serve::start(config).await.unwrap();
    let mock = MockResponses::start(vec![
        Step::exec("echo hello-from-tool", "call_e2e_1"),
        Step::message("All done."),
    ])
    .await
    .unwrap();

    let endpoint = format!("http://{}", server.grpc_addr);
    let options = CodexExecOptions::new("say hello using a tool", mock.base_url())
        .otlp(endpoint, true)
        .rollout_trace(true);
    let run = codex_cli::run_codex_exec_with(&codex, &options)
        .await
        .unwrap();
    assert!(run.success(), "codex exec failed: {}", run.describe());

    // Codex flushed its exporters before exiting, and every Export was answered only
    // once stored: the session is complete in the collector now.
    let rollout_id = {
        let collector = server.collector.lock().unwrap();
        let ids = collector.rollout_ids();
        assert_eq!(ids.len(), 1, "one session: {ids:?}");
        ids[0].clone()
    };
    let graph = server.collector.lock().unwrap().graph(&rollout_id).unwrap();

    // The raw events: one turn, its model calls and its tool call.
    let events = rollout_collector::store::bundle::read_events(
        &data
            .path()
            .join("rollouts")
            .join(&rollout_id)
            .join("trace.jsonl"),
    )
    .unwrap();
    let count = |t: &str| events.iter().filter(|e| e.payload.type_name() == t).count();
    assert_eq!(count("thread_started"), 1);
    assert_eq!(count("user_prompt"), 1);
    assert_eq!(count("inference_attempt"), 2);
    assert_eq!(count("inference_completed"), 2);
    assert_eq!(count("tool_call_approval"), 1);
    assert_eq!(count("tool_call_ended"), 1);
    assert!(count("codex_turn_started") >= 1, "turn spans arrived");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "seq is contiguous from 1"
    );

    assert_eq!(graph.codex_turns.len(), 1);
    assert_eq!(graph.inference_calls.len(), 2);
    let tool = &graph.tool_calls["call_e2e_1"];
    assert_eq!(tool.tool_name.as_deref(), Some("exec_command"));
    let op = &graph.terminal_operations[tool.terminal_operation_id.as_ref().unwrap()];
    assert_eq!(op.result.as_ref().unwrap().exit_code, Some(0));

    // Codex's own reducer on the same run is the oracle.
    let bundles = run.trace_bundles();
    assert_eq!(bundles.len(), 1, "one rollout trace bundle");
    let oracle = codex_cli::trace_reduce(&codex, &bundles[0]).await.unwrap();
    assert_eq!(oracle["rollout_id"], rollout_id.as_str());
    // The collector closes the session when Codex exits (its exit-time flush record)
    // or after the idle timeout; the oracle knows the process ended.
    let mut candidate = serde_json::to_value(&*graph).unwrap();
    if candidate["status"] == "running" {
        server
            .collector
            .lock()
            .unwrap()
            .close_idle(std::time::Duration::ZERO, false)
            .unwrap();
        candidate =
            serde_json::to_value(&*server.collector.lock().unwrap().graph(&rollout_id).unwrap())
                .unwrap();
    }
    let score = fidelity::score(&fidelity::merge(&[oracle]), &candidate);
    assert_eq!(
        score.matched,
        score.total,
        "fidelity {:.3}:\n{}",
        score.ratio(),
        score.mismatches.join("\n")
    );

    // Downstream: one clean trace for the session, and Codex's telemetry untouched.
    let graph = server.collector.lock().unwrap().graph(&rollout_id).unwrap();
    let expected: std::collections::BTreeSet<Vec<u8>> =
        build_spans(&graph, &SpanOptions::default())
            .into_iter()
            .map(|s| s.span_id)
            .collect();
    export_sink
        .wait_until("the session's enriched spans", |a| {
            a.spans()
                .into_iter()
                .map(|s| s.span_id)
                .collect::<std::collections::BTreeSet<_>>()
                == expected
        })
        .await;
    let names: Vec<String> = export_sink
        .accepted()
        .spans()
        .into_iter()
        .map(|s| s.name)
        .collect();
    for want in ["invoke_agent codex", "turn", "execute_tool exec_command"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert_eq!(names.iter().filter(|n| n.starts_with("chat ")).count(), 2);
    let stored_requests = server
        .ingestor
        .counters
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    forward_sink
        .wait_until("Codex's requests, forwarded", |a| {
            a.requests() as u64 == stored_requests
        })
        .await;

    mock.shutdown().await;
    server.shutdown().await.unwrap();
}
