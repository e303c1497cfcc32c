//! The `rollout-collector` binary as a user runs it: `import` captured requests, then
//! `list` and `show` (tree and `--json`), and clear errors for bad input.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_rollout-collector");
const TOOL_CALL_OK: &str = "01a200f0-09c5-7f30-b451-62bbbee265fa";

fn run(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/codex/{name}/requests",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn import_then_list_and_show_the_session() {
    let data = tempfile::tempdir().unwrap();
    let imported = run(data.path(), &["import", &fixture("tool-call-ok")]);
    assert!(imported.status.success());
    assert!(String::from_utf8_lossy(&imported.stderr).contains(TOOL_CALL_OK));

    let list = stdout(&run(data.path(), &["list"]));
    let row = list.lines().find(|l| l.starts_with(TOOL_CALL_OK)).unwrap();
    assert!(
        row.contains("completed") && row.contains("0.169.0"),
        "{row}"
    );

    let tree = stdout(&run(data.path(), &["show", TOOL_CALL_OK]));
    let expect = [
        "└ thread ",
        "   └ turn ",
        "[completed]",
        "tokens in 300 (cached 30) out 21 (reasoning 6)",
        "      ├ model call gpt-5.1-codex  [completed]",
        "http [200]",
        "      │  └ tool exec_command call_ok_1  [completed]",
        "approval approved by Config  exit 0",
        "$ echo hello-from-tool  → hello-from-tool",
        "      └ model call gpt-5.1-codex",
    ];
    for piece in expect {
        assert!(tree.contains(piece), "{piece:?} not in\n{tree}");
    }

    let json: serde_json::Value = serde_json::from_str(&stdout(&run(
        data.path(),
        &["show", TOOL_CALL_OK, "--json"],
    )))
    .unwrap();
    assert_eq!(json["rollout_id"], TOOL_CALL_OK);
    assert_eq!(
        json["tool_calls"]["call_ok_1"]["execution"]["status"],
        "completed"
    );

    // Importing the same files again adds nothing.
    let before = std::fs::read(
        data.path()
            .join("rollouts")
            .join(TOOL_CALL_OK)
            .join("trace.jsonl"),
    )
    .unwrap();
    assert!(
        run(data.path(), &["import", &fixture("tool-call-ok")])
            .status
            .success()
    );
    let after = std::fs::read(
        data.path()
            .join("rollouts")
            .join(TOOL_CALL_OK)
            .join("trace.jsonl"),
    )
    .unwrap();
    assert_eq!(before, after);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let missing = run(&data.path().join("never-used"), &["show", "nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no data directory"));

    assert!(
        run(data.path(), &["import", &fixture("tool-call-ok")])
            .status
            .success()
    );
    let unknown = run(data.path(), &["show", "nope"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no session nope"));

    let bad = run(
        data.path(),
        &[
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--export-endpoint",
            "ftp://x",
        ],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("expected http://HOST:PORT"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let header = run(data.path(), &["serve", "--export-header", "no-equals"]);
    assert!(!header.status.success());
    assert!(String::from_utf8_lossy(&header.stderr).contains("expected KEY=VALUE"));
}
