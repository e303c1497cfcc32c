//! store: the data directory. One bundle per rollout under `rollouts/`, laid out like
//! Codex's own rollout-trace bundles; records that cannot be tied to a session yet
//! go to the `unattributed/` bundle, and metrics to `metrics/`.

pub mod bundle;
pub mod manifest;
pub mod wal;

use std::path::{Path, PathBuf};

pub use bundle::Bundle;

pub const UNATTRIBUTED: &str = "unattributed";
pub const METRICS: &str = "metrics";

#[derive(Clone, Debug)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// `$ROLLOUT_COLLECTOR_DATA_DIR`, else `$XDG_DATA_HOME/rollout-collector`, else
    /// `~/.local/share/rollout-collector`, else `./rollout-data`.
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("rollout-collector");
        }
        if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(home).join(".local/share/rollout-collector");
        }
        PathBuf::from("rollout-data")
    }

    pub fn rollout_dir(&self, rollout_id: &str) -> PathBuf {
        match rollout_id {
            UNATTRIBUTED | METRICS => self.root.join(rollout_id),
            id => self.root.join("rollouts").join(sanitize(id)),
        }
    }

    /// Every rollout bundle present, by directory.
    pub fn rollout_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.root.join("rollouts"))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    }

    pub fn exists(&self) -> bool {
        Path::new(&self.root).exists()
    }
}

/// Conversation ids are UUIDs; anything else is made safe for a file name.
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
