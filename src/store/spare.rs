//! Spare bundle directories, made ahead of time by a background thread.
//!
//! Creating a directory and its files allocates inodes, and on a busy file system
//! (a write-ahead-log checkpoint fsyncing thousands of bundle files) that can stall
//! for tens of milliseconds. A new session's bundle is created under the collector
//! lock, so such a stall would hold up every Export. Instead a new bundle takes a
//! spare, `spare-bundles/<n>/` with an empty `trace.jsonl`, `payloads.jsonl` and
//! `manifest.json`, and renames it into place; the thread makes the next one.
//!
//! A spare comes with its three files already open (they stay open across the
//! rename), so the storer opens no file by path for a new session: on a busy file
//! system such an open (of a file that exists, with `O_TRUNC`) was seen to stall as
//! long as the creations here (BENCHMARKS.md, session 11).
//!
//! Spares hold no data: the folder is emptied when the data directory is opened.

use super::bundle::PAYLOAD_PACK;
use super::manifest::{MANIFEST_FILE_NAME, RAW_EVENT_LOG_FILE_NAME};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

pub const SPARE_DIR_NAME: &str = "spare-bundles";
/// Spares kept ready: enough for a burst of new sessions between two refills (each
/// holds three open descriptors).
const READY_TARGET: usize = 32;

/// The pool; dropping it stops its thread (and waits for it).
pub struct SpareBundles {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a spare is taken (the thread makes another).
    wanted: Condvar,
    /// Signalled when a spare is ready.
    made: Condvar,
}

/// A spare bundle directory and its files, open to write.
pub struct Spare {
    pub dir: PathBuf,
    /// `trace.jsonl`, open to append.
    pub log: File,
    /// The payload pack, open to append.
    pub pack: File,
    /// `manifest.json`, open to write.
    pub manifest: File,
}

struct State {
    ready: Vec<Spare>,
    next: u64,
    stopped: bool,
}

impl SpareBundles {
    /// Empties `<root>/spare-bundles/` and starts the thread that keeps it filled.
    pub fn start(root: &Path) -> std::io::Result<SpareBundles> {
        let dir = root.join(SPARE_DIR_NAME);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ready: Vec::new(),
                next: 0,
                stopped: false,
            }),
            wanted: Condvar::new(),
            made: Condvar::new(),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("spare-bundles".into())
            .spawn(move || refill(&for_thread, &dir))?;
        Ok(SpareBundles {
            shared,
            thread: Some(thread),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// A ready spare, if there is one (the caller renames it away).
    pub fn take(&self) -> Option<Spare> {
        let spare = self.state().ready.pop();
        self.shared.wanted.notify_one();
        spare
    }

    /// Waits until a spare is ready, then takes it.
    #[cfg(test)]
    pub fn take_when_ready(&self) -> Spare {
        let mut state = self.state();
        loop {
            if let Some(spare) = state.ready.pop() {
                self.shared.wanted.notify_one();
                return spare;
            }
            state = self
                .shared
                .made
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for SpareBundles {
    fn drop(&mut self) {
        self.state().stopped = true;
        self.shared.wanted.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn refill(shared: &Shared, dir: &Path) {
    loop {
        let n = {
            let mut state = shared.lock();
            while state.ready.len() >= READY_TARGET && !state.stopped {
                state = shared.wanted.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.stopped {
                return;
            }
            state.next += 1;
            state.next
        };
        let path = dir.join(n.to_string());
        match make_spare(&path) {
            Ok(spare) => {
                shared.lock().ready.push(spare);
                shared.made.notify_all();
            }
            Err(err) => {
                // New bundles are then created in place, as without spares.
                tracing::warn!(%err, "cannot prepare a spare bundle directory");
                let _ = fs::remove_dir_all(&path);
                let state = shared.lock();
                // Try again in a second, or stop.
                let _ = shared.wanted.wait_timeout_while(
                    state,
                    std::time::Duration::from_secs(1),
                    |s| !s.stopped,
                );
            }
        }
    }
}

fn make_spare(path: &Path) -> std::io::Result<Spare> {
    fs::create_dir(path)?;
    let append = |name: &str| {
        OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path.join(name))
    };
    Ok(Spare {
        log: append(RAW_EVENT_LOG_FILE_NAME)?,
        pack: append(PAYLOAD_PACK)?,
        manifest: File::create_new(path.join(MANIFEST_FILE_NAME))?,
        dir: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spares_are_empty_bundles_and_leftovers_are_cleared() {
        let root = tempfile::tempdir().unwrap();
        let leftover = root.path().join(SPARE_DIR_NAME).join("7");
        fs::create_dir_all(&leftover).unwrap();
        fs::write(leftover.join("junk"), b"x").unwrap();
        let spares = SpareBundles::start(root.path()).unwrap();
        assert!(!leftover.join("junk").exists());
        let spare = spares.take_when_ready();
        for name in [RAW_EVENT_LOG_FILE_NAME, PAYLOAD_PACK, MANIFEST_FILE_NAME] {
            assert_eq!(fs::metadata(spare.dir.join(name)).unwrap().len(), 0);
        }
        // The open files are the spare's own.
        use std::io::Write;
        (&spare.log).write_all(b"{}\n").unwrap();
        assert_eq!(
            fs::read(spare.dir.join(RAW_EVENT_LOG_FILE_NAME)).unwrap(),
            b"{}\n"
        );
        let other = spares.take_when_ready();
        assert_ne!(spare.dir, other.dir);
    }
}
