//! More sessions than the collector may hold files open for. Each session being
//! written keeps two bundle files open; past the open-file limit the collector used to
//! refuse every request that touched a new session ("Too many open files"), and could
//! not start again on a data directory holding that many sessions. This test binary
//! lowers its own limit (the limit is per process), so only this test runs with it.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use rollout_collector::serve::{ServeConfig, start};

/// 512 descriptors: at most 128 bundles hold their files open (a quarter of the
/// limit), beside 32 spare bundles of 3 files each, the log, sockets and the runtime.
const OPEN_FILE_LIMIT: u64 = 512;
/// Twice as many bundle files as the limit, were they all kept open.
const SESSIONS: usize = 512;

fn lower_open_file_limit(to: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = to.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

fn conversation(session: usize) -> String {
    format!("0199aaaa-1111-7222-8333-{session:012}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_sessions_than_open_files_are_all_stored_and_open_again_after_a_restart() {
    lower_open_file_limit(OPEN_FILE_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let mut client = LogsServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    for session in 0..SESSIONS {
        client
            .export(user_prompt_request(&conversation(session), "first"))
            .await
            .unwrap_or_else(|status| panic!("session {session}: {status:?}"));
    }
    // The first sessions' files were closed for the later ones: writing to them again
    // opens them again.
    for session in 0..8 {
        client
            .export(user_prompt_request(&conversation(session), "second"))
            .await
            .unwrap_or_else(|status| panic!("session {session} again: {status:?}"));
    }
    let in_memory = |status: serde_json::Value| status["sessions"]["in_memory"].as_u64();
    assert_eq!(in_memory(status(&server).await), Some(SESSIONS as u64));
    drop(client);
    server.shutdown().await.unwrap();

    // Every session is whole on disk, and the collector starts again on all of them.
    for session in 0..SESSIONS {
        let expected = if session < 8 {
            vec!["first", "second"]
        } else {
            vec!["first"]
        };
        assert_eq!(prompts_in(dir.path(), &conversation(session)), expected);
    }
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    assert_eq!(in_memory(status(&server).await), Some(SESSIONS as u64));
    let mut client = LogsServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let last = conversation(SESSIONS - 1);
    client
        .export(user_prompt_request(&last, "after the restart"))
        .await
        .unwrap();
    drop(client);
    server.shutdown().await.unwrap();
    assert_eq!(
        prompts_in(dir.path(), &last),
        ["first", "after the restart"]
    );
}
