//! The write-ahead log behind group commit.
//!
//! Every change to a bundle (bytes appended to `trace.jsonl` or a payload pack, a
//! manifest written, a bundle removed) is written to the bundle files without an fsync
//! and recorded, byte for byte, in `<data>/wal/<n>.wal`. An Export is acknowledged once
//! the WAL entry holding its changes is fsynced: concurrent Exports share one fsync
//! (group commit: whoever waits first syncs for everyone written so far).
//!
//! A checkpoint (in the background, every [`CHECKPOINT_INTERVAL`] or when a segment
//! passes [`SEGMENT_BYTES`]) closes the segment with an end mark, starts a new one,
//! makes the bundle files and directories the old segment changed durable (one
//! `syncfs` on Linux, see [`super::file_system_sync`]), then keeps the old segment's
//! file as the spare ([`SPARE_FILE_NAME`]) that the next checkpoint's segment is
//! written over. On open, the segments left are replayed in order (writes at their
//! offsets, files cut back to the end of their last logged write, so bytes never
//! acknowledged are dropped), everything is fsynced and the segments are deleted:
//! bundles are then exactly what was acknowledged.
//!
//! Why a segment is written over an old one: an fsync of a file that grew must commit
//! the file system's journal (the new size and blocks), and on ext4 that commit waits
//! for the bundle data a checkpoint is writing back at the same time. Bytes written
//! over blocks already on disk change no metadata, so the log's fsync only writes them.
//! What the old segment held is still there past the new entries; an entry's checksum
//! is mixed with its segment's number, so an old entry never passes for a new one, and
//! replay goes on to the next segment only past an end mark.

use super::checksum::{checksum, lanes_checksum};
use super::dirty_paths::DirtyPaths;
use super::file_system_sync::FileSystemSync;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

pub const WAL_DIR_NAME: &str = "wal";
/// A segment past this size is checkpointed at once. Small, so that under load a
/// checkpoint comes about every second and each has little to write back: a
/// checkpoint's `syncfs` slows the log's own fsyncs while it runs (with 128 MiB, Exports
/// waited up to 0.3 s behind it; see BENCHMARKS.md). It also bounds what a restart replays.
pub const SEGMENT_BYTES: u64 = 16 << 20;
/// Changes are checkpointed into the bundles at least this often.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);
/// The file the last checkpointed segment is kept as, to be written over by a later one.
pub const SPARE_FILE_NAME: &str = "spare.wal";
/// A segment's file is kept as the spare only up to this size (after a large import,
/// it is deleted instead).
const MAX_SPARE_BYTES: u64 = 4 * SEGMENT_BYTES;
/// Entries whose checksum ([`lanes_checksum`]) is mixed with their segment's number.
const MAGIC: u32 = 0x3357_4352; // "RCW3"
/// Entries written before the checksum took four lanes ([`checksum`], mixed with the
/// segment's number), still replayed.
const MAGIC_ONE_LANE: u32 = 0x3257_4352; // "RCW2"
/// Entries written before segments were reused (plain checksum), still replayed.
const MAGIC_UNNUMBERED: u32 = 0x5243_574c; // "RCWL"
/// An entry's header: magic, body length (u32) and checksum of the body (u64).
const HEADER_LEN: usize = 16;
/// At most this much room is set aside in a new batch (after a large import, say),
/// and a logged entry's buffer is kept for the next batch only up to this size.
const MAX_BATCH_ROOM: usize = 4 << 20;

const OP_WRITE: u8 = 1;
const OP_REPLACE: u8 = 2;
const OP_REMOVE_DIR: u8 = 3;
/// The body of the entry that ends a segment: replay goes on to the next one.
const END_OF_SEGMENT: &[u8] = &[4];

/// Changes made under the collector lock, logged together as one WAL entry.
pub struct WalBatch {
    root: PathBuf,
    /// The log entry: [`HEADER_LEN`] bytes left for its header, then the changes.
    body: Vec<u8>,
    /// Files and directories the changes touched (fsynced at the next checkpoint).
    dirty: DirtyPaths,
}

impl WalBatch {
    /// A batch for the data directory `root` (paths are logged relative to it), made
    /// in the memory of `body` (emptied first), with room for `bytes` of changes
    /// before it has to grow (and copy what it holds).
    fn in_buffer(root: &Path, mut body: Vec<u8>, bytes: usize) -> Self {
        if body.capacity() < HEADER_LEN + bytes {
            // Not grown in place: that would copy what it held.
            body = Vec::with_capacity(HEADER_LEN + bytes);
        }
        body.clear();
        body.resize(HEADER_LEN, 0);
        WalBatch {
            root: root.to_path_buf(),
            body,
            dirty: DirtyPaths::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.body.len() == HEADER_LEN
    }

    fn op(&mut self, kind: u8, path: &Path, offset: u64, data: &[u8]) {
        self.op_header(kind, path, offset, data.len() as u64);
        self.body.extend_from_slice(data);
    }

    fn op_header(&mut self, kind: u8, path: &Path, offset: u64, data_len: u64) {
        let path = path.strip_prefix(&self.root).unwrap_or(path);
        let p = path.as_os_str().as_encoded_bytes();
        self.body.push(kind);
        self.body.extend_from_slice(&(p.len() as u32).to_le_bytes());
        self.body.extend_from_slice(p);
        self.body.extend_from_slice(&offset.to_le_bytes());
        self.body.extend_from_slice(&data_len.to_le_bytes());
    }

    fn touch(&mut self, path: &Path) {
        self.dirty.insert_with_parent(path);
    }

    /// `data` was written to `path` at `offset` (an append: the file ends there). For
    /// tests: the store makes its appends in the entry ([`WalBatch::start_write`]).
    #[cfg(test)]
    pub fn write(&mut self, path: &Path, offset: u64, data: &[u8]) {
        self.op(OP_WRITE, path, offset, data);
        self.touch(path);
    }

    /// Appends bytes to `file` (`path`, which ends at `offset`) and logs the write. The
    /// bytes are made once, in the entry itself: `make` appends them to the buffer it
    /// is given, and the file is written from there (they are not made in a buffer of
    /// their own and copied into the entry). Nothing is logged when `make` or the
    /// write fails; the file may then hold part of the bytes, so its caller must ask it
    /// its length again. Returns how many bytes were appended.
    pub fn append_through(
        &mut self,
        file: &File,
        path: &Path,
        offset: u64,
        make: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<u64> {
        let write = self.start_write(path, offset);
        let appended =
            make(self.buffer()).and_then(|()| Ok((&*file).write_all(self.written(&write))?));
        match appended {
            Ok(()) => {
                let len = self.written(&write).len() as u64;
                self.finish_write(write, path);
                Ok(len)
            }
            Err(err) => {
                self.abandon_write(write);
                Err(err)
            }
        }
    }

    /// Starts logging a write of `path` at `offset` whose bytes are then appended to
    /// [`WalBatch::buffer`]; ends with [`WalBatch::finish_write`] or
    /// [`WalBatch::abandon_write`] (see [`WalBatch::append_through`]).
    fn start_write(&mut self, path: &Path, offset: u64) -> InPlaceWrite {
        let op = self.body.len();
        self.op_header(OP_WRITE, path, offset, 0);
        InPlaceWrite {
            op,
            data: self.body.len(),
        }
    }

    /// Where the bytes of the write started last go (append only).
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }

    /// The bytes of `write` so far.
    fn written(&self, write: &InPlaceWrite) -> &[u8] {
        &self.body[write.data..]
    }

    /// The file has the bytes of `write`: they are logged.
    fn finish_write(&mut self, write: InPlaceWrite, path: &Path) {
        let len = (self.body.len() - write.data) as u64;
        self.body[write.data - 8..write.data].copy_from_slice(&len.to_le_bytes());
        self.touch(path);
    }

    /// The file did not get the bytes of `write`: nothing of it is logged.
    fn abandon_write(&mut self, write: InPlaceWrite) {
        self.body.truncate(write.op);
    }

    /// `path` was replaced whole by `data`.
    pub fn replace(&mut self, path: &Path, data: &[u8]) {
        self.op(OP_REPLACE, path, 0, data);
        self.touch(path);
    }

    /// Directory `path` was removed with everything in it.
    pub fn remove_dir(&mut self, path: &Path) {
        self.op(OP_REMOVE_DIR, path, 0, &[]);
        self.dirty.remove_tree(path);
        if let Some(parent) = path.parent() {
            self.dirty.insert(parent);
        }
    }

    /// A directory was created under `parent` (fsync `parent` at the checkpoint).
    pub fn created_in(&mut self, parent: &Path) {
        self.dirty.insert(parent);
    }
}

/// A write being logged in place (see [`WalBatch::append_through`]): where its entry
/// operation and its bytes start in the batch.
#[must_use = "finish or abandon the write"]
struct InPlaceWrite {
    op: usize,
    data: usize,
}

/// What a caller waits on: the entry is durable once the WAL is synced past it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

struct State {
    segment: Arc<File>,
    segment_no: u64,
    segment_len: u64,
    written: u64,
    synced: u64,
    syncing: bool,
    failed: Option<String>,
    dirty: DirtyPaths,
    last_checkpoint: Instant,
}

pub struct Wal {
    root: PathBuf,
    dir: PathBuf,
    state: Mutex<State>,
    synced: Condvar,
    checkpointing: Mutex<()>,
    /// Makes a checkpoint's bundle files durable.
    files: FileSystemSync,
    /// The size of the last entry's changes: a new batch starts with that much room.
    last_entry_len: AtomicUsize,
    /// The buffer of the last entry logged, for the next batch to be made in: a
    /// buffer made anew grows by doubling, copying all it holds each time, and its
    /// pages are new to the process. (The collector makes its next batch before it
    /// logs the current one, so two buffers take turns.)
    reusable_buffer: Mutex<Vec<u8>>,
}

impl State {
    /// Writes `entry` at the end of what the segment holds (over an old segment's
    /// bytes when its file is reused).
    fn append(&mut self, entry: &[u8]) -> std::io::Result<()> {
        self.segment.write_all_at(entry, self.segment_len)?;
        self.segment_len += entry.len() as u64;
        Ok(())
    }
}

/// Fills in the header of `entry` (whose body's checksum is `body_sum`) for segment
/// `segment_no`.
fn seal(entry: &mut [u8], body_sum: u64, segment_no: u64) {
    let (header, body) = entry.split_at_mut(HEADER_LEN);
    header[..4].copy_from_slice(&MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&(body.len() as u32).to_le_bytes());
    header[8..].copy_from_slice(&(body_sum ^ segment_no).to_le_bytes());
}

/// The entry that ends segment `segment_no`.
fn end_of_segment(segment_no: u64) -> Vec<u8> {
    let mut entry = vec![0; HEADER_LEN];
    entry.extend_from_slice(END_OF_SEGMENT);
    seal(&mut entry, lanes_checksum(END_OF_SEGMENT), segment_no);
    entry
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:012}.wal"))
}

fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(out);
    };
    for entry in entries {
        let path = entry?.path();
        if let Some(n) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((n, path));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))
}

impl Wal {
    /// Replays what an earlier run left in `<root>/wal` into the bundles, then starts
    /// an empty log and its background checkpointer.
    pub fn open(root: &Path) -> Result<Arc<Wal>> {
        let dir = root.join(WAL_DIR_NAME);
        fs::create_dir_all(&dir)?;
        let old = segments(&dir)?;
        let files = FileSystemSync::new(root)?;
        if !old.is_empty() {
            recover(root, &old, &files)?;
            for (_, path) in &old {
                fs::remove_file(path)?;
            }
        }
        // A spare left by an earlier run may hold entries numbered like the segments
        // about to be written (the numbers start again at 1 when no segment is left).
        match fs::remove_file(dir.join(SPARE_FILE_NAME)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
            _ => {}
        }
        let segment_no = old.last().map(|(n, _)| n + 1).unwrap_or(1);
        let segment = File::create(segment_path(&dir, segment_no))?;
        sync_dir(&dir)?;
        sync_dir(root)?;
        let wal = Arc::new(Wal {
            root: root.to_path_buf(),
            dir,
            state: Mutex::new(State {
                segment: Arc::new(segment),
                segment_no,
                segment_len: 0,
                written: 0,
                synced: 0,
                syncing: false,
                failed: None,
                dirty: DirtyPaths::default(),
                last_checkpoint: Instant::now(),
            }),
            synced: Condvar::new(),
            checkpointing: Mutex::new(()),
            files,
            last_entry_len: AtomicUsize::new(0),
            reusable_buffer: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&wal);
        std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || checkpointer(weak))?;
        Ok(wal)
    }

    /// An empty batch of changes for this data directory.
    pub fn batch(&self) -> WalBatch {
        let room = self
            .last_entry_len
            .load(Ordering::Relaxed)
            .min(MAX_BATCH_ROOM);
        let buffer = std::mem::take(
            &mut *self
                .reusable_buffer
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        WalBatch::in_buffer(&self.root, buffer, room)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs a batch (not yet durable); wait on the ticket before acknowledging.
    pub fn log(&self, batch: WalBatch) -> Result<Ticket> {
        if batch.is_empty() {
            return Ok(Ticket(self.lock().written));
        }
        // The header goes in the room left for it: the changes are not copied.
        let WalBatch {
            body: mut entry,
            dirty,
            ..
        } = batch;
        let body_sum = lanes_checksum(&entry[HEADER_LEN..]);
        self.last_entry_len
            .store(entry.len() - HEADER_LEN, Ordering::Relaxed);
        let mut st = self.lock();
        if let Some(err) = &st.failed {
            bail!("the write-ahead log failed earlier: {err}");
        }
        seal(&mut entry, body_sum, st.segment_no);
        if let Err(err) = st.append(&entry) {
            st.failed = Some(err.to_string());
            bail!("writing the write-ahead log: {err}");
        }
        st.written += 1;
        st.dirty.extend(dirty);
        let ticket = Ticket(st.written);
        drop(st);
        if entry.capacity() <= HEADER_LEN + MAX_BATCH_ROOM {
            *self
                .reusable_buffer
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = entry;
        }
        Ok(ticket)
    }

    /// Returns once the entry behind `ticket` is on disk. One caller fsyncs the log
    /// for every entry written so far; the others wait for that fsync.
    pub fn wait(&self, ticket: Ticket) -> Result<()> {
        let mut st = self.lock();
        loop {
            if st.synced >= ticket.0 {
                return Ok(());
            }
            if let Some(err) = &st.failed {
                bail!("the write-ahead log failed: {err}");
            }
            if st.syncing {
                st = self.synced.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.syncing = true;
            let target = st.written;
            let segment = st.segment.clone();
            drop(st);
            let result = segment.sync_data();
            st = self.lock();
            st.syncing = false;
            match result {
                Ok(()) => st.synced = st.synced.max(target),
                Err(err) => st.failed = Some(format!("fsync: {err}")),
            }
            self.synced.notify_all();
        }
    }

    /// Logs a batch and waits until it is durable.
    pub fn commit(&self, batch: WalBatch) -> Result<()> {
        let ticket = self.log(batch)?;
        self.wait(ticket)
    }

    /// Moves what the current segment holds into the bundles for good: ends it, starts
    /// a new segment (over the spare, when there is one), fsyncs every file the old
    /// one changed, then keeps its file as the spare.
    ///
    /// The log's state lock is held only to swap segments, never across an fsync, so
    /// requests are logged (into the new segment) while the old one is synced. That
    /// sync takes the group commit's turn (`syncing`): no waiter can count an entry of
    /// the old segment as durable before it is.
    pub fn checkpoint(&self) -> Result<()> {
        let _one = self.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        let next = {
            let mut st = self.lock();
            st.last_checkpoint = Instant::now();
            if st.segment_len == 0 && st.dirty.is_empty() {
                return Ok(());
            }
            // Only checkpoints change the segment number, and they run one at a time.
            st.segment_no + 1
        };
        let file = self.next_segment_file(next)?;
        sync_dir(&self.dir)?;
        let (old, target, dirty) = {
            let mut st = self.lock();
            while st.syncing {
                st = self.synced.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            let end = end_of_segment(st.segment_no);
            if let Err(err) = st.append(&end) {
                st.failed = Some(format!("ending a segment: {err}"));
                self.synced.notify_all();
                bail!("ending a write-ahead log segment: {err}");
            }
            st.syncing = true;
            st.segment_no = next;
            st.segment_len = 0;
            (
                std::mem::replace(&mut st.segment, Arc::new(file)),
                st.written,
                std::mem::take(&mut st.dirty),
            )
        };
        // Entries of the old segment become durable here, with it.
        let synced = old.sync_data();
        {
            let mut st = self.lock();
            st.syncing = false;
            match &synced {
                Ok(()) => st.synced = st.synced.max(target),
                Err(err) => st.failed = Some(format!("fsync: {err}")),
            }
            self.synced.notify_all();
        }
        synced?;
        self.files.sync(&dirty)?;
        let spare = self.dir.join(SPARE_FILE_NAME);
        for (n, path) in segments(&self.dir)? {
            if n >= next {
                continue;
            }
            let reusable = n + 1 == next
                && !spare.exists()
                && fs::metadata(&path).is_ok_and(|m| m.len() <= MAX_SPARE_BYTES);
            if reusable {
                fs::rename(path, &spare)?;
            } else {
                fs::remove_file(path)?;
            }
        }
        sync_dir(&self.dir)
    }

    /// The file of segment `n`: the spare renamed, or a new file.
    fn next_segment_file(&self, n: u64) -> Result<File> {
        let path = segment_path(&self.dir, n);
        match fs::rename(self.dir.join(SPARE_FILE_NAME), &path) {
            Ok(()) => Ok(OpenOptions::new().write(true).open(&path)?),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(File::create(&path)?),
            Err(err) => Err(err.into()),
        }
    }

    fn due(&self) -> bool {
        let st = self.lock();
        st.segment_len >= SEGMENT_BYTES
            || (!st.dirty.is_empty() && st.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Leave tidy bundles behind (what is acknowledged is durable either way).
        if let Err(err) = self.checkpoint() {
            tracing::warn!(%err, "final checkpoint of the write-ahead log failed");
        }
    }
}

fn checkpointer(wal: Weak<Wal>) {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let Some(wal) = wal.upgrade() else { return };
        if wal.due()
            && let Err(err) = wal.checkpoint()
        {
            tracing::error!(%err, "checkpoint of the write-ahead log failed");
            wal.lock().failed = Some(format!("checkpoint: {err:#}"));
            wal.synced.notify_all();
        }
    }
}

/// Applies the segments left by an earlier run, in order, then fsyncs what they touched.
fn recover(root: &Path, segments: &[(u64, PathBuf)], files: &FileSystemSync) -> Result<()> {
    let mut ends: BTreeMap<PathBuf, u64> = BTreeMap::new();
    let mut dirty = DirtyPaths::default();
    let resolve = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            root.join(p)
        }
    };
    let mut applied = 0usize;
    for &(segment_no, ref seg) in segments {
        let mut data = Vec::new();
        File::open(seg)?.read_to_end(&mut data)?;
        let mut pos = 0usize;
        let mut ended = false;
        while pos + HEADER_LEN <= data.len() {
            let magic = u32::from_le_bytes(data[pos..pos + 4].try_into()?);
            let len = u32::from_le_bytes(data[pos + 4..pos + 8].try_into()?) as usize;
            let sum = u64::from_le_bytes(data[pos + 8..pos + 16].try_into()?);
            let Some(body) = data.get(pos + HEADER_LEN..pos + HEADER_LEN + len) else {
                break;
            };
            let whole = match magic {
                MAGIC => lanes_checksum(body) ^ segment_no == sum,
                MAGIC_ONE_LANE => checksum(body) ^ segment_no == sum,
                MAGIC_UNNUMBERED => checksum(body) == sum,
                _ => false,
            };
            if !whole {
                // A torn entry, or one of the older segment this file was written
                // over: nothing from here on was acknowledged.
                break;
            }
            pos += HEADER_LEN + len;
            if (magic == MAGIC || magic == MAGIC_ONE_LANE) && body == END_OF_SEGMENT {
                ended = true;
                break;
            }
            apply(body, &resolve, &mut ends, &mut dirty)?;
            applied += 1;
        }
        // Entries of a later segment count only after one that was ended whole.
        if !ended && pos != data.len() {
            break;
        }
    }
    // Bytes after the last logged write of a file were never acknowledged.
    for (path, end) in &ends {
        if let Ok(meta) = fs::metadata(path)
            && meta.len() > *end
        {
            OpenOptions::new().write(true).open(path)?.set_len(*end)?;
        }
    }
    files.sync(&dirty)?;
    // Only news after a crash (a clean shutdown leaves nothing to replay): keeps
    // `list` and `show` quiet.
    if applied > 0 {
        tracing::info!(
            entries = applied,
            "write-ahead log replayed into the bundles"
        );
    }
    Ok(())
}

fn apply(
    mut body: &[u8],
    resolve: &dyn Fn(&Path) -> PathBuf,
    ends: &mut BTreeMap<PathBuf, u64>,
    dirty: &mut DirtyPaths,
) -> Result<()> {
    fn take<'a>(body: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
        if body.len() < n {
            bail!("short write-ahead log entry");
        }
        let (head, rest) = body.split_at(n);
        *body = rest;
        Ok(head)
    }
    while !body.is_empty() {
        let kind = take(&mut body, 1)?[0];
        let plen = u32::from_le_bytes(take(&mut body, 4)?.try_into()?) as usize;
        let path = PathBuf::from(std::ffi::OsStr::new(
            std::str::from_utf8(take(&mut body, plen)?).context("non-UTF-8 path in the log")?,
        ));
        let path = resolve(&path);
        let offset = u64::from_le_bytes(take(&mut body, 8)?.try_into()?);
        let dlen = u64::from_le_bytes(take(&mut body, 8)?.try_into()?) as usize;
        let data = take(&mut body, dlen)?;
        let mark_parents = |dirty: &mut DirtyPaths, p: &Path| {
            let mut cur = p.parent();
            while let Some(dir) = cur {
                dirty.insert(dir);
                if dir.exists() {
                    break;
                }
                cur = dir.parent();
            }
        };
        match kind {
            OP_WRITE => {
                if let Some(parent) = path.parent() {
                    mark_parents(dirty, &path);
                    fs::create_dir_all(parent)?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)?;
                file.write_all_at(data, offset)?;
                ends.insert(path.clone(), offset + data.len() as u64);
                dirty.insert(&path);
            }
            OP_REPLACE => {
                if let Some(parent) = path.parent() {
                    mark_parents(dirty, &path);
                    fs::create_dir_all(parent)?;
                }
                let mut file = File::create(&path)?;
                file.seek(SeekFrom::Start(0))?;
                file.write_all(data)?;
                ends.remove(&path);
                dirty.insert(&path);
            }
            OP_REMOVE_DIR => {
                if path.exists() {
                    fs::remove_dir_all(&path)?;
                }
                ends.retain(|p, _| !p.starts_with(&path));
                dirty.remove_tree(&path);
                if let Some(parent) = path.parent() {
                    dirty.insert(parent);
                }
            }
            other => bail!("unknown write-ahead log operation {other}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_logged_writes_and_cuts_unlogged_tails() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("b/trace.jsonl");
        {
            let wal = Wal::open(root.path()).unwrap();
            let mut batch = wal.batch();
            batch.write(&file, 0, b"one\n");
            // A write made in the entry, and one given up (its file was not written).
            let given_up = batch.start_write(&file, 4);
            batch.buffer().extend_from_slice(b"never written\n");
            batch.abandon_write(given_up);
            let write = batch.start_write(&file, 4);
            batch.buffer().extend_from_slice(b"two\n");
            assert_eq!(batch.written(&write), b"two\n");
            batch.finish_write(write, &file);
            wal.commit(batch).unwrap();
            // Simulate a crash: the bundle file lost its unsynced data and holds a
            // tail that was never logged; the WAL is not checkpointed.
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(&file, b"one\ntw").unwrap();
            let st = wal.lock();
            let seg = segment_path(&wal.dir, st.segment_no);
            drop(st);
            let copy = root.path().join("saved.wal");
            fs::copy(&seg, &copy).unwrap();
            drop(wal);
            fs::copy(&copy, &seg).unwrap();
            fs::write(&file, b"one\ntwo\ngarbage").unwrap();
        }
        let _wal = Wal::open(root.path()).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"one\ntwo\n");
        assert_eq!(segments(&root.path().join(WAL_DIR_NAME)).unwrap().len(), 1);
    }

    #[test]
    fn a_logged_entry_lends_its_buffer_to_the_next_batch_unless_it_grew_too_large() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("b/trace.jsonl");
        let wal = Wal::open(root.path()).unwrap();
        let spare = |wal: &Wal| wal.reusable_buffer.lock().unwrap().capacity();
        let mut batch = wal.batch();
        batch.write(&file, 0, &[b'a'; 100_000]);
        wal.commit(batch).unwrap();
        assert!(spare(&wal) >= HEADER_LEN + 100_000, "kept");
        let mut batch = wal.batch();
        assert!(batch.is_empty());
        assert!(batch.body.capacity() >= HEADER_LEN + 100_000);
        assert_eq!(spare(&wal), 0, "lent");
        batch.write(&file, 0, &vec![b'b'; MAX_BATCH_ROOM + 1]);
        wal.commit(batch).unwrap();
        assert_eq!(spare(&wal), 0, "too large to keep");
        let batch = wal.batch();
        assert!(batch.is_empty());
        assert!(batch.body.capacity() <= HEADER_LEN + MAX_BATCH_ROOM);
    }

    /// One entry of segment `segment_no`, as [`Wal::log`] writes it.
    fn entry(root: &Path, segment_no: u64, change: impl FnOnce(&mut WalBatch)) -> Vec<u8> {
        let mut batch = WalBatch::in_buffer(root, Vec::new(), 0);
        change(&mut batch);
        let sum = lanes_checksum(&batch.body[HEADER_LEN..]);
        seal(&mut batch.body, sum, segment_no);
        batch.body
    }

    #[test]
    fn a_reused_segment_replays_none_of_what_it_held_before() {
        let root = tempfile::tempdir().unwrap();
        let (x, y) = (root.path().join("b/x"), root.path().join("b/y"));
        fs::create_dir_all(root.path().join("b")).unwrap();
        let dir = root.path().join(WAL_DIR_NAME);
        let wal = Wal::open(root.path()).unwrap();
        let mut batch = wal.batch();
        batch.write(&y, 0, b"a");
        wal.commit(batch).unwrap();
        let mut batch = wal.batch();
        batch.write(&x, 0, b"stale\n");
        wal.commit(batch).unwrap();
        fs::write(&x, b"stale\n").unwrap();
        wal.checkpoint().unwrap();
        let mut batch = wal.batch();
        batch.replace(&x, b"fresh\n");
        wal.commit(batch).unwrap();
        fs::write(&x, b"fresh\n").unwrap();
        wal.checkpoint().unwrap();
        // Segment 3 is written over segment 1's file, whose first change (to y) was
        // as long as the one below: segment 1's change to x follows it whole.
        let segment = segment_path(&dir, 3);
        assert_eq!(wal.lock().segment_no, 3);
        let old_len = fs::metadata(&segment).unwrap().len();
        assert!(old_len > 0, "segment 3 reuses a file");
        let mut batch = wal.batch();
        batch.write(&y, 0, b"b");
        wal.commit(batch).unwrap();
        assert_eq!(
            fs::metadata(&segment).unwrap().len(),
            old_len,
            "written over"
        );
        // A crash now: y lost its unsynced byte, the log is not checkpointed.
        let spare = dir.join(SPARE_FILE_NAME);
        let saved = [fs::read(&segment).unwrap(), fs::read(&spare).unwrap()];
        drop(wal);
        fs::remove_dir_all(&dir).unwrap();
        fs::create_dir(&dir).unwrap();
        fs::write(&segment, &saved[0]).unwrap();
        fs::write(&spare, &saved[1]).unwrap();
        fs::write(&y, b"").unwrap();
        let _wal = Wal::open(root.path()).unwrap();
        assert_eq!(fs::read(&y).unwrap(), b"b");
        assert_eq!(
            fs::read(&x).unwrap(),
            b"fresh\n",
            "segment 1's entry not replayed"
        );
    }

    /// An entry as earlier versions wrote it: `magic`, and that version's checksum.
    fn old_entry(magic: u32, entry: &mut [u8], segment_no: u64) {
        let sum = match magic {
            MAGIC_UNNUMBERED => checksum(&entry[HEADER_LEN..]),
            MAGIC_ONE_LANE => checksum(&entry[HEADER_LEN..]) ^ segment_no,
            _ => unreachable!("not an earlier version's magic"),
        };
        entry[..4].copy_from_slice(&magic.to_le_bytes());
        entry[8..HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
    }

    #[test]
    fn replay_goes_on_to_the_next_segment_only_past_an_end_mark() {
        for ended in [true, false] {
            let root = tempfile::tempdir().unwrap();
            let file = root.path().join("b/trace.jsonl");
            let dir = root.path().join(WAL_DIR_NAME);
            fs::create_dir_all(&dir).unwrap();
            // Segment 3 as written before segments were reused: plain checksums, and
            // it ends at the end of its file.
            let mut old = entry(root.path(), 0, |b| b.write(&file, 0, b"one\n"));
            old_entry(MAGIC_UNNUMBERED, &mut old, 3);
            fs::write(segment_path(&dir, 3), old).unwrap();
            // Segment 4 as written before the checksum took four lanes.
            let mut four = entry(root.path(), 4, |b| b.write(&file, 4, b"two\n"));
            old_entry(MAGIC_ONE_LANE, &mut four, 4);
            let mut end = end_of_segment(4);
            old_entry(MAGIC_ONE_LANE, &mut end, 4);
            four.extend(end);
            fs::write(segment_path(&dir, 4), four).unwrap();
            // Segment 5, written over a file that held segment 2, ended or not.
            let mut five = entry(root.path(), 5, |b| b.write(&file, 8, b"three\n"));
            if ended {
                five.extend(end_of_segment(5));
            }
            five.extend(entry(root.path(), 2, |b| b.write(&file, 14, b"old\n")));
            fs::write(segment_path(&dir, 5), five).unwrap();
            let six = entry(root.path(), 6, |b| b.write(&file, 14, b"six\n"));
            fs::write(segment_path(&dir, 6), six).unwrap();
            let _wal = Wal::open(root.path()).unwrap();
            let expected: &[u8] = if ended {
                b"one\ntwo\nthree\nsix\n"
            } else {
                b"one\ntwo\nthree\n"
            };
            assert_eq!(fs::read(&file).unwrap(), expected, "ended: {ended}");
        }
    }

    #[test]
    fn checkpoints_while_requests_commit_lose_nothing() {
        use std::os::unix::fs::FileExt;
        let root = tempfile::tempdir().unwrap();
        let wal = Wal::open(root.path()).unwrap();
        let first_segment = wal.lock().segment_no;
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let checkpointer = s.spawn(|| {
                let mut checkpoints = 0;
                while !done.load(Ordering::Relaxed) {
                    wal.checkpoint().unwrap();
                    checkpoints += 1;
                }
                checkpoints
            });
            let writers: Vec<_> = (0..4)
                .map(|w| {
                    let wal = &wal;
                    let path = root.path().join(format!("b{w}/trace.jsonl"));
                    s.spawn(move || {
                        fs::create_dir_all(path.parent().unwrap()).unwrap();
                        let file = File::create(&path).unwrap();
                        for n in 0..200u64 {
                            let line = format!("{n:07}\n");
                            file.write_all_at(line.as_bytes(), n * 8).unwrap();
                            let mut batch = wal.batch();
                            batch.write(&path, n * 8, line.as_bytes());
                            wal.commit(batch).unwrap();
                        }
                    })
                })
                .collect();
            for writer in writers {
                writer.join().unwrap();
            }
            done.store(true, Ordering::Relaxed);
            assert!(checkpointer.join().unwrap() > 0);
        });
        assert!(wal.lock().segment_no > first_segment);
        let st = wal.lock();
        assert_eq!((st.synced, st.syncing), (st.written, false));
        drop(st);
        drop(wal);
        let _reopened = Wal::open(root.path()).unwrap();
        for w in 0..4 {
            let lines = fs::read_to_string(root.path().join(format!("b{w}/trace.jsonl"))).unwrap();
            let expected: String = (0..200).map(|n| format!("{n:07}\n")).collect();
            assert_eq!(lines, expected);
        }
        assert_eq!(segments(&root.path().join(WAL_DIR_NAME)).unwrap().len(), 1);
    }
}
