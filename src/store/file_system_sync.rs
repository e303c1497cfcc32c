//! Making many files durable at once, for the write-ahead log's checkpoints.
//!
//! A checkpoint must make durable every bundle file and directory its segment
//! changed: thousands of them every few seconds when many sessions are active. An
//! fsync of each one asks the disk to flush its cache once per file, and the
//! write-ahead log's own fsyncs (which every acknowledged Export waits for) queue up
//! behind those flushes. On Linux, one `syncfs` of the data directory's file system
//! writes back everything and flushes the disk once. Since Linux 5.8 it reports
//! writeback errors of the file system that happened since the descriptor it is
//! given last reported one, so that descriptor is opened once, with the log, and
//! kept: an error of a background writeback between two checkpoints is not missed.
//! Paths on another file system (a bundle folder mounted or linked elsewhere), and
//! other systems, get one fsync per path.

use super::dirty_paths::DirtyPaths;
use anyhow::Result;
use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

/// Threads fsyncing files one by one (fsyncs overlap well on SSDs).
const SYNC_THREADS: usize = 8;

pub struct FileSystemSync {
    /// The data directory, open for as long as the log is.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    root: File,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    device: u64,
}

impl FileSystemSync {
    pub fn new(root: &Path) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let root_file = File::open(root)?;
        let device = root_file.metadata()?.dev();
        Ok(FileSystemSync {
            root: root_file,
            device,
        })
    }

    /// Makes every file and directory in `paths` (those that still exist) durable.
    pub fn sync(&self, paths: &DirtyPaths) -> Result<()> {
        let existing: Vec<(&Path, std::fs::Metadata)> = paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok().map(|m| (p, m)))
            .collect();
        if existing.is_empty() {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            use std::os::unix::io::AsRawFd;
            let elsewhere: Vec<&Path> = existing
                .iter()
                .filter(|(_, meta)| meta.dev() != self.device)
                .map(|(path, _)| *path)
                .collect();
            if elsewhere.len() < existing.len() {
                // SAFETY: `self.root` is an open descriptor for the life of `self`.
                if unsafe { libc::syncfs(self.root.as_raw_fd()) } != 0 {
                    let err = std::io::Error::last_os_error();
                    anyhow::bail!("syncfs of the data directory's file system: {err}");
                }
            }
            fsync_each(&elsewhere)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let all: Vec<&Path> = existing.iter().map(|(path, _)| *path).collect();
            fsync_each(&all)
        }
    }
}

/// fsyncs files and directories, several at a time.
fn fsync_each(paths: &[&Path]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let threads = SYNC_THREADS.min(paths.len());
    let errors: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let errors = &errors;
            s.spawn(move || {
                for p in paths.iter().skip(t).step_by(threads) {
                    if let Err(e) = File::open(p).and_then(|f| f.sync_all()) {
                        errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(anyhow::anyhow!("fsync {}: {e}", p.display()));
                    }
                }
            });
        }
    });
    match errors.into_inner().unwrap_or_default().into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_existing_paths_and_skips_gone_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trace.jsonl");
        std::fs::write(&file, b"{}\n").unwrap();
        let sync = FileSystemSync::new(dir.path()).unwrap();
        let mut paths = DirtyPaths::default();
        paths.insert(&file);
        paths.insert(dir.path());
        paths.insert(&dir.path().join("removed meanwhile"));
        sync.sync(&paths).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"{}\n");
        fsync_each(&[&file]).unwrap();
        assert!(fsync_each(&[&dir.path().join("missing")]).is_err());
    }
}
