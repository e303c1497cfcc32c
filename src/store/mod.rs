//! store: the data directory. One bundle per rollout under `rollouts/`, laid out like
//! Codex's own rollout-trace bundles; records that cannot be tied to a session yet
//! go to the `unattributed/` bundle, and metrics to `metrics/`.

pub mod bundle;
pub mod checksum;
pub mod dirty_paths;
pub mod event_line;
pub mod file_system_sync;
pub mod manifest;
pub mod open_files;
pub mod seen;
pub mod spare;
pub mod wal;
pub mod writeback;

use std::path::{Path, PathBuf};

pub use bundle::Bundle;

pub const UNATTRIBUTED: &str = "unattributed";
pub const METRICS: &str = "metrics";
/// Where bundles that were never acknowledged are set aside when found at open.
pub const DISCARDED_DIR_NAME: &str = "discarded";

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

    /// Moves a bundle whose manifest cannot be read to `discarded/` and says so.
    /// Such a bundle was never acknowledged: a manifest is written before anything
    /// else of its bundle, and the write-ahead log restores every acknowledged one
    /// whole before bundles are read. Kept, not deleted, so nothing is lost to a bug.
    pub fn set_aside_if_never_acknowledged(&self, bundle_dir: &Path) -> std::io::Result<bool> {
        let manifest = bundle_dir.join(manifest::MANIFEST_FILE_NAME);
        let readable = match std::fs::read(&manifest) {
            Ok(bytes) => serde_json::from_slice::<manifest::Manifest>(&bytes).is_ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if readable {
            return Ok(false);
        }
        let discarded = self.root.join(DISCARDED_DIR_NAME);
        std::fs::create_dir_all(&discarded)?;
        let name = bundle_dir.file_name().unwrap_or_default();
        let mut target = discarded.join(name);
        let mut n = 1;
        while target.exists() {
            n += 1;
            target = discarded.join(format!("{}.{n}", name.to_string_lossy()));
        }
        std::fs::rename(bundle_dir, &target)?;
        tracing::warn!(bundle = %bundle_dir.display(), moved_to = %target.display(),
            "bundle with an unreadable manifest (created but never acknowledged) set aside");
        Ok(true)
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
