//! Runs the real `codex exec` against the Rust Responses API mock (no OTel):
//! one exec_command call, then a final message.

mod support;

use serde_json::json;
use support::codex_cli::{codex_or_skip, run_codex_exec};
use support::mock_responses::{MockResponses, Step, ToolCall, py_dumps};

#[test]
fn py_dumps_matches_python_json_dumps() {
    assert_eq!(
        py_dumps(&json!({"cmd": "echo hi"})),
        r#"{"cmd": "echo hi"}"#
    );
    assert_eq!(
        py_dumps(&json!([1, "\u{e9}\n", null, {}])),
        r#"[1, "\u00e9\n", null, {}]"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_runs_a_tool_call_against_the_mock() {
    let Some(codex) = codex_or_skip("codex_exec_runs_a_tool_call_against_the_mock") else {
        return;
    };
    let mock = MockResponses::start(vec![
        Step::Calls(vec![ToolCall::exec("echo hello-from-tool", "call_ok_1")]),
        Step::message("All done."),
    ])
    .await
    .expect("start mock");

    let run = run_codex_exec(
        &codex,
        "say hello using a tool",
        &mock.base_url(),
        None,
        false,
        &[],
    )
    .await
    .expect("run codex exec");

    assert!(run.success(), "codex exec failed\n{}", run.describe());
    assert!(
        run.stdout.contains("All done."),
        "stdout lacks the final message\n{}",
        run.describe()
    );

    let responses = mock.responses_requests();
    assert_eq!(
        responses.len(),
        2,
        "expected 2 /responses POSTs, got {:?}",
        mock.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    for r in &responses {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/responses");
        assert_eq!(r.header("authorization"), Some("Bearer x"));
        let md = r.turn_metadata().expect("x-codex-turn-metadata header");
        assert!(
            md.get("turn_id").and_then(|v| v.as_str()).is_some(),
            "metadata: {md}"
        );
    }
    // No [otel] trace exporter: Codex sends no traceparent.
    assert!(responses.iter().all(|r| r.traceparent().is_none()));

    let second = &responses[1];
    let output = second.tool_output_item("call_ok_1").unwrap_or_else(|| {
        panic!(
            "no function_call_output for call_ok_1 in {:?}",
            second.input_types()
        )
    });
    assert_eq!(output["type"], "function_call_output");
    let text = second.tool_output("call_ok_1").unwrap();
    assert!(text.contains("hello-from-tool"), "tool output: {text}");
    // Codex echoes the call back with our (Python-style) arguments string.
    let call = second
        .input()
        .iter()
        .find(|x| x["type"] == "function_call" && x["call_id"] == "call_ok_1")
        .expect("function_call echoed in the second request");
    assert_eq!(call["arguments"], r#"{"cmd": "echo hello-from-tool"}"#);

    mock.shutdown().await;
}
