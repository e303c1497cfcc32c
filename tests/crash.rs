//! `serve` killed with SIGKILL (no shutdown, no final checkpoint) keeps every record it
//! acknowledged, after its write-ahead log has been checkpointed twice, so that the
//! segment it was writing when killed is written over the first one's file. A machine
//! crash would also lose bundle bytes not yet written back: the test cuts every bundle
//! file back to its length when that segment was first seen, so that the next start
//! must replay the log (and none of the reused file's older entries) to restore them.

mod common;

use common::{logs_request, prompts_in, user_prompt_record};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_rollout-collector");
const SESSIONS: usize = 12;
const RECORDS_PER_REQUEST: usize = 40;
/// Large prompts, so that a few dozen requests fill two log segments (16 MiB each).
const PROMPT_BYTES: usize = 8 << 10;
/// Requests acknowledged after the third segment was started, before the kill.
const REQUESTS_IN_REUSED_SEGMENT: usize = 6;

fn conversation(session: usize) -> String {
    format!("00000000-0000-4000-8000-{session:012}")
}

/// Every bundle file under `data/rollouts`, with its length.
fn bundle_file_lengths(data: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    for bundle in std::fs::read_dir(data.join("rollouts")).unwrap() {
        for file in std::fs::read_dir(bundle.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                let len = std::fs::metadata(&path).unwrap().len();
                files.push((path, len));
            }
        }
    }
    files
}

/// A child process killed when the test ends, failed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_killed_collector_keeps_every_acknowledged_record() {
    let data = tempfile::tempdir().unwrap();
    let mut serve = KillOnDrop(
        Command::new(BIN)
            .arg("--data-dir")
            .arg(data.path())
            .args(["serve", "--grpc-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // serve says where it listens on stderr; the rest of it is read (and dropped) so
    // that its logging never blocks on a full pipe.
    let stderr = BufReader::new(serve.0.stderr.take().unwrap());
    let (listening, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("rollout-collector: OTLP/gRPC on ") {
                let _ = listening.send(rest.split(',').next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = address.recv().expect("serve exited before listening");
    let mut client = LogsServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    // The log of a new data directory starts at segment 1; segment 3 is written over
    // its file (kept as the spare by the first checkpoint).
    let wal = data.path().join("wal");
    let segment_1 = std::fs::metadata(wal.join("000000000001.wal"))
        .unwrap()
        .ino();
    let segment_3 = wal.join("000000000003.wal");
    let filler = "p".repeat(PROMPT_BYTES);
    let mut acknowledged: Vec<Vec<String>> = vec![Vec::new(); SESSIONS];
    let mut in_reused_segment = 0;
    let mut durable_lengths = Vec::new();
    let mut request = 0;
    while in_reused_segment < REQUESTS_IN_REUSED_SEGMENT {
        assert!(request < 2_000, "the log was not checkpointed twice");
        let session = request % SESSIONS;
        let prompts: Vec<String> = (0..RECORDS_PER_REQUEST)
            .map(|i| format!("{request}.{i} {filler}"))
            .collect();
        let records = prompts
            .iter()
            .map(|prompt| user_prompt_record(&conversation(session), prompt))
            .collect();
        let answer = client.export(logs_request(records, "")).await.unwrap();
        assert_eq!(answer.into_inner().partial_success, None);
        acknowledged[session].extend(prompts);
        request += 1;
        if let Ok(reused) = std::fs::metadata(&segment_3) {
            if in_reused_segment == 0 {
                assert_eq!(reused.ino(), segment_1, "segment 3 is a new file");
                // What segments 1 and 2 logged was made durable by the checkpoints (or
                // is still in the log); what follows is in the log only.
                durable_lengths = bundle_file_lengths(data.path());
            }
            in_reused_segment += 1;
        }
    }
    serve.0.kill().unwrap();
    serve.0.wait().unwrap();
    let mut cut = 0;
    for (path, len) in &durable_lengths {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        cut += file.metadata().unwrap().len() - len;
        file.set_len(*len).unwrap();
    }
    assert!(
        cut > 0,
        "nothing was acknowledged after segment 3 was started"
    );

    // The next start (here `list`) replays the log before it reads the bundles.
    let list = Command::new(BIN)
        .arg("--data-dir")
        .arg(data.path())
        .arg("list")
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listed = String::from_utf8(list.stdout).unwrap();
    for (session, prompts) in acknowledged.iter().enumerate() {
        assert!(listed.contains(&conversation(session)), "{listed}");
        let stored = prompts_in(data.path(), &conversation(session));
        assert_eq!(stored.len(), prompts.len(), "session {session}");
        assert!(
            stored == *prompts,
            "session {session}: other prompts stored"
        );
    }
}
