//! `manifest.json` of a bundle, as in Codex's rollout-trace bundles, plus the threads
//! the rollout holds (sub-agents land in their parent's bundle).

use serde::{Deserialize, Serialize};

pub const MANIFEST_FILE_NAME: &str = "manifest.json";
pub const RAW_EVENT_LOG_FILE_NAME: &str = "trace.jsonl";
pub const PAYLOADS_DIR_NAME: &str = "payloads";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub trace_id: String,
    pub rollout_id: String,
    pub root_thread_id: String,
    pub started_at_unix_ms: i64,
    pub raw_event_log: String,
    pub payloads_dir: String,
    /// Threads of this rollout other than the root (spawned sub-agents).
    #[serde(default)]
    pub child_thread_ids: Vec<String>,
}

impl Manifest {
    pub fn new(rollout_id: &str, started_at_unix_ms: i64) -> Self {
        Manifest {
            schema_version: 1,
            trace_id: format!("otel:{rollout_id}"),
            rollout_id: rollout_id.to_string(),
            root_thread_id: rollout_id.to_string(),
            started_at_unix_ms,
            raw_event_log: RAW_EVENT_LOG_FILE_NAME.into(),
            payloads_dir: PAYLOADS_DIR_NAME.into(),
            child_thread_ids: Vec::new(),
        }
    }
}
