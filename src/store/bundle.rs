//! One bundle directory: `manifest.json`, an append-only `trace.jsonl` ordered by
//! `seq`, and the payload pack `payloads.jsonl` holding the OTLP records behind the
//! events (older bundles: `payloads/N.json`, one file per Export).
//!
//! Durability: the write path ([`Bundle::create`], [`Bundle::append_payload`],
//! [`Bundle::append_events`]) writes without an fsync and logs every write to a
//! [`WalBatch`]; the collector acknowledges an Export once the write-ahead log entry
//! holding it is fsynced (see [`super::wal`]). A torn last line (a crash in the
//! middle of a write, never acknowledged) is cut off when the bundle is opened again.
//!
//! Replay speed: opening a data directory reads every event. The log is read in
//! blocks whose lines are parsed on several threads, and evidence-only events (most
//! of a bundle: spans and log records the reducer does not use) are not built, only
//! the ids replay indexes are read from them (see [`OpeningBundle::replay`]).

use super::event_line::Sequenced;
use super::manifest::{MANIFEST_FILE_NAME, Manifest, PAYLOADS_DIR_NAME, RAW_EVENT_LOG_FILE_NAME};
use super::spare::Spare;
use super::wal::WalBatch;
use super::writeback;
use crate::normalize::raw_event::RawPayloadRef;
use crate::normalize::{RawEvent, RawEventPayload};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// `trace.jsonl`, opened for appending on the first append (and again after
    /// [`Bundle::close_files`]).
    log: Option<File>,
    /// Where the next event line goes (`None`: ask the file, once opened or after a
    /// failed write).
    log_len: Option<u64>,
    /// How far the log's writeback has been started.
    log_writeback: writeback::Cursor,
    /// The payload pack, opened on the first append, and where its next line goes.
    pack: Option<(File, u64, writeback::Cursor)>,
    next_seq: u64,
    next_payload: u64,
}

/// A bundle whose manifest is read (or written) but whose events are not read yet.
pub struct OpeningBundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// One stored event, as replay sees it.
#[derive(Debug)]
pub enum StoredEvent<'a> {
    /// An event the reducer uses (or any event, when the log is read in full).
    Full(Box<RawEvent>),
    /// An evidence-only event (`otel_log`, `otel_span`, `otel_metric`): only the ids
    /// replay indexes, borrowed from the line.
    EvidenceOnly {
        seq: u64,
        codex_turn_id: Option<&'a str>,
        record_id: Option<&'a str>,
        trace_id: Option<&'a str>,
    },
}

impl StoredEvent<'_> {
    pub fn seq(&self) -> u64 {
        match self {
            StoredEvent::Full(e) => e.seq,
            StoredEvent::EvidenceOnly { seq, .. } => *seq,
        }
    }

    pub fn codex_turn_id(&self) -> Option<&str> {
        match self {
            StoredEvent::Full(e) => e.codex_turn_id.as_deref(),
            StoredEvent::EvidenceOnly { codex_turn_id, .. } => *codex_turn_id,
        }
    }

    /// The OTLP record behind the event (`evidence.record_id`).
    pub fn record_id(&self) -> Option<&str> {
        match self {
            StoredEvent::Full(e) => e.evidence.as_ref().map(|ev| ev.record_id.as_str()),
            StoredEvent::EvidenceOnly { record_id, .. } => *record_id,
        }
    }

    /// `evidence.trace_id`.
    pub fn trace_id(&self) -> Option<&str> {
        match self {
            StoredEvent::Full(e) => e.evidence.as_ref().and_then(|ev| ev.trace_id.as_deref()),
            StoredEvent::EvidenceOnly { trace_id, .. } => *trace_id,
        }
    }
}

impl Bundle {
    /// Opens a bundle, creating it if needed, and returns the events it holds.
    pub fn open(
        dir: &Path,
        rollout_id: &str,
        started_at_unix_ms: i64,
    ) -> Result<(Bundle, Vec<RawEvent>)> {
        let opening = Bundle::opening(dir, rollout_id, started_at_unix_ms)?;
        let mut events = Vec::new();
        let bundle = opening.read(true, |event| {
            if let StoredEvent::Full(event) = event {
                events.push(*event);
            }
        })?;
        Ok((bundle, events))
    }

    /// Reads a bundle's manifest, creating the bundle if needed; its events are read
    /// next, by [`OpeningBundle::replay`].
    pub fn opening(dir: &Path, rollout_id: &str, started_at_unix_ms: i64) -> Result<OpeningBundle> {
        let manifest_path = dir.join(MANIFEST_FILE_NAME);
        let manifest = if manifest_path.exists() {
            serde_json::from_slice(&fs::read(&manifest_path)?)
                .with_context(|| format!("reading {}", manifest_path.display()))?
        } else {
            fs::create_dir_all(dir.join(PAYLOADS_DIR_NAME))?;
            let manifest = Manifest::new(rollout_id, started_at_unix_ms);
            write_atomically(&manifest_path, &serde_json::to_vec_pretty(&manifest)?)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            manifest
        };
        Ok(OpeningBundle {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Reserves the next payload file; returns its id and path relative to the bundle.
    pub fn next_payload_ref(&mut self) -> (String, String) {
        let n = self.next_payload;
        self.next_payload += 1;
        (
            format!("raw_payload:{n}"),
            format!("{PAYLOADS_DIR_NAME}/{n}.json"),
        )
    }

    /// Writes a payload file, appends the events with their sequence numbers, fsyncs
    /// (the write path without the write-ahead log: tools and tests that build bundles).
    pub fn append(
        &mut self,
        payload: Option<(&str, &[u8])>,
        events: &mut [RawEvent],
    ) -> Result<()> {
        if let Some((path, body)) = payload {
            let full = self.dir.join(path);
            let mut file = File::create(&full)?;
            file.write_all(body)?;
            file.sync_all()?;
        }
        let mut buf = Vec::new();
        numbered_lines(&mut self.next_seq, events, None, &mut buf)?;
        self.log_len = None;
        let mut log = self.open_log()?;
        log.write_all(&buf)?;
        log.sync_data()?;
        if payload.is_some() {
            sync_dir(&self.dir.join(PAYLOADS_DIR_NAME))?;
        }
        Ok(())
    }

    /// Creates a new bundle (manifest and empty log) without an fsync; the changes go
    /// to `batch`, the write-ahead log makes them durable. With a `spare` (an empty
    /// bundle made ahead, see [`super::spare`]) the bundle is that spare renamed into
    /// place, with its files already open: no file is created or opened here.
    pub fn create(
        dir: &Path,
        rollout_id: &str,
        started_at_unix_ms: i64,
        spare: Option<Spare>,
        batch: &mut WalBatch,
    ) -> Result<Bundle> {
        let spare = spare.and_then(|spare| match fs::rename(&spare.dir, dir) {
            Ok(()) => Some(spare),
            Err(err) => {
                // A folder already there (a bundle whose creation was never logged).
                tracing::debug!(%err, dir = %dir.display(), "spare bundle not used");
                let _ = fs::remove_dir_all(&spare.dir);
                None
            }
        });
        let from_spare = spare.is_some();
        if !from_spare {
            fs::create_dir_all(dir)?;
        }
        if let Some(parent) = dir.parent() {
            batch.created_in(parent);
        }
        batch.created_in(dir);
        let manifest = Manifest::new(rollout_id, started_at_unix_ms);
        let (log, pack) = match spare {
            // The spare's files are still open after the rename: no path is opened.
            Some(spare) => {
                // The spare's manifest is empty: written in place, no new file. A crash
                // before the log entry is durable leaves it unreadable, which
                // `Bundle::opening` takes as a bundle never acknowledged.
                use std::os::unix::fs::FileExt;
                let bytes = serde_json::to_vec_pretty(&manifest)?;
                spare.manifest.write_all_at(&bytes, 0)?;
                batch.replace(&dir.join(MANIFEST_FILE_NAME), &bytes);
                (
                    spare.log,
                    Some((spare.pack, 0, writeback::Cursor::default())),
                )
            }
            None => {
                let log = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(RAW_EVENT_LOG_FILE_NAME))?;
                (log, None)
            }
        };
        let bundle = Bundle {
            dir: dir.to_path_buf(),
            log: Some(log),
            manifest,
            log_len: None,
            log_writeback: writeback::Cursor::default(),
            pack,
            next_seq: 1,
            next_payload: 1,
        };
        if !from_spare {
            bundle.save_manifest_logged(batch)?;
        }
        Ok(bundle)
    }

    /// Appends one Export's payload (a JSON array of its OTLP records, which `fill`
    /// appends to the buffer it is given, as one line) to the bundle's payload pack,
    /// logging the write to `batch`; returns the pack's path (relative to the bundle)
    /// and the byte offset of the line.
    pub fn append_payload(
        &mut self,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<()>,
        batch: &mut WalBatch,
    ) -> Result<(String, u64)> {
        let full = self.dir.join(PAYLOAD_PACK);
        let (file, end, writeback) = match &mut self.pack {
            Some(pack) => pack,
            None => {
                let file = OpenOptions::new().create(true).append(true).open(&full)?;
                let end = file.metadata()?.len();
                self.pack.insert((file, end, writeback::Cursor::at(end)))
            }
        };
        let offset = *end;
        let line = |out: &mut Vec<u8>| {
            fill(out)?;
            out.push(b'\n');
            Ok(())
        };
        match batch.append_through(file, &full, offset, line) {
            Ok(appended) => *end += appended,
            Err(err) => {
                // Part of the line may be written: the next append asks the file its length.
                self.pack = None;
                return Err(err);
            }
        }
        writeback.appended(file, *end);
        Ok((PAYLOAD_PACK.to_string(), offset))
    }

    /// Appends the events with their sequence numbers to `trace.jsonl`, logging the
    /// write to `batch` (durable once the batch is committed).
    pub fn append_events<E: Sequenced>(
        &mut self,
        events: &mut [E],
        batch: &mut WalBatch,
    ) -> Result<()> {
        self.append_lines(events, None, batch).map(drop)
    }

    /// [`Bundle::append_events`], also telling where the lines went: returns the
    /// offset of the first in `trace.jsonl`, and fills `ends` with where each ends
    /// (counted from that offset). With no events nothing is written, and the offset
    /// means nothing.
    pub fn append_events_measured<E: Sequenced>(
        &mut self,
        events: &mut [E],
        ends: &mut Vec<usize>,
        batch: &mut WalBatch,
    ) -> Result<u64> {
        self.append_lines(events, Some(ends), batch)
    }

    fn append_lines<E: Sequenced>(
        &mut self,
        events: &mut [E],
        ends: Option<&mut Vec<usize>>,
        batch: &mut WalBatch,
    ) -> Result<u64> {
        if events.is_empty() {
            return Ok(self.log_len.unwrap_or(0));
        }
        let offset = match self.log_len {
            Some(len) => len,
            None => {
                // What the file held before is the checkpoint's to write back.
                let len = self.open_log()?.metadata()?.len();
                self.log_writeback = writeback::Cursor::at(len);
                len
            }
        };
        let path = self.dir.join(RAW_EVENT_LOG_FILE_NAME);
        let log = self.log.as_ref().expect("opened with its length, above");
        let next_seq = &mut self.next_seq;
        let lines = |out: &mut Vec<u8>| numbered_lines(next_seq, events, ends, out);
        let end = match batch.append_through(log, &path, offset, lines) {
            Ok(appended) => offset + appended,
            Err(err) => {
                // Part of the lines may be written: the next append asks the file its length.
                self.log_len = None;
                return Err(err);
            }
        };
        self.log_len = Some(end);
        self.log_writeback.appended(log, end);
        Ok(offset)
    }

    /// `trace.jsonl`, opened for appending if it is not.
    fn open_log(&mut self) -> Result<&File> {
        if self.log.is_none() {
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(RAW_EVENT_LOG_FILE_NAME))?;
            self.log_len = None;
            self.log = Some(log);
        }
        Ok(self.log.as_ref().expect("opened above"))
    }

    /// Whether the bundle holds any of its files open.
    pub fn has_open_files(&self) -> bool {
        self.log.is_some() || self.pack.is_some()
    }

    /// Closes the bundle's files (the next append opens them again): a collector with
    /// more sessions than it may hold files open for closes those of the quietest.
    /// Nothing is lost: what was written is in the page cache and the write-ahead log,
    /// and the checkpoint's `syncfs` makes it durable whether the file is open or not.
    pub fn close_files(&mut self) {
        self.log = None;
        self.log_len = None;
        self.pack = None;
    }

    /// Writes the manifest (no fsync), logging it to `batch`.
    pub fn save_manifest_logged(&self, batch: &mut WalBatch) -> Result<()> {
        let path = self.dir.join(MANIFEST_FILE_NAME);
        let bytes = serde_json::to_vec_pretty(&self.manifest)?;
        // Renamed into place: a crash before the log entry is durable leaves the old
        // manifest (or none), never a torn one.
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, &bytes)?;
        fs::rename(&tmp, &path)?;
        batch.replace(&path, &bytes);
        Ok(())
    }

    pub fn save_manifest(&self) -> Result<()> {
        write_atomically(
            &self.dir.join(MANIFEST_FILE_NAME),
            &serde_json::to_vec_pretty(&self.manifest)?,
        )
    }
}

/// Gives the events the next sequence numbers (from `next_seq`, which moves past them)
/// and appends them to `out` as log lines. With `ends`, where each line ends (counted
/// from where `out` ended).
fn numbered_lines<E: Sequenced>(
    next_seq: &mut u64,
    events: &mut [E],
    mut ends: Option<&mut Vec<usize>>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    // An evidence event's line is about 500 bytes: room for most without regrowth.
    out.reserve(events.len() * 512);
    for event in events.iter_mut() {
        event.set_seq(*next_seq);
        *next_seq += 1;
        event.write_json(out)?;
        out.push(b'\n');
        if let Some(ends) = ends.as_deref_mut() {
            ends.push(out.len() - start);
        }
    }
    Ok(())
}

impl OpeningBundle {
    /// Reads the events in `seq` order, handing each to `on_event`: the events the
    /// reducer uses in full, evidence-only events as their ids. Cuts off a torn last
    /// line. The bundle opens its log for appending when first appended to.
    pub fn replay(self, on_event: impl FnMut(StoredEvent<'_>)) -> Result<Bundle> {
        self.read(false, on_event)
    }

    fn read(self, full: bool, on_event: impl FnMut(StoredEvent<'_>)) -> Result<Bundle> {
        let log_path = self.dir.join(RAW_EVENT_LOG_FILE_NAME);
        let last_seq = scan_log(&log_path, full, on_event)?;
        let next_payload = fs::read_dir(self.dir.join(PAYLOADS_DIR_NAME))
            .map(|entries| {
                entries
                    .filter_map(|e| {
                        e.ok()?
                            .file_name()
                            .to_str()?
                            .strip_suffix(".json")?
                            .parse::<u64>()
                            .ok()
                    })
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
            + 1;
        Ok(Bundle {
            dir: self.dir,
            manifest: self.manifest,
            // Opened by the first append: a replayed bundle holds no file open.
            log: None,
            log_len: None,
            log_writeback: writeback::Cursor::default(),
            pack: None,
            next_seq: last_seq.map(|s| s + 1).unwrap_or(1),
            next_payload,
        })
    }
}

/// The payload pack of a bundle: one line per stored Export (a JSON array of its OTLP
/// records), addressed by byte offset.
pub const PAYLOAD_PACK: &str = "payloads.jsonl";

/// The OTLP records of one stored payload: a line of the pack (`offset` set) or a whole
/// `payloads/N.json` file (bundles written before packs).
pub fn read_payload(bundle_dir: &Path, payload: &RawPayloadRef) -> Result<Vec<serde_json::Value>> {
    let path = bundle_dir.join(&payload.path);
    Ok(serde_json::from_slice(&payload_bytes(
        &path,
        payload.offset,
    )?)?)
}

/// The records of the payload pack line at `offset` in `<bundle_dir>/payloads.jsonl`,
/// each exactly as stored.
pub fn read_pack_line(
    bundle_dir: &Path,
    offset: u64,
) -> Result<Vec<Box<serde_json::value::RawValue>>> {
    let path = bundle_dir.join(PAYLOAD_PACK);
    serde_json::from_slice(&payload_bytes(&path, Some(offset))?)
        .with_context(|| format!("{} at {offset}", path.display()))
}

/// The line at `offset` of the file at `path`, or (no offset) the whole file.
fn payload_bytes(path: &Path, offset: Option<u64>) -> Result<Vec<u8>> {
    use std::io::{BufRead, Seek, SeekFrom};
    let Some(offset) = offset else {
        return fs::read(path).with_context(|| format!("{}", path.display()));
    };
    let mut file = File::open(path).with_context(|| format!("{}", path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    let mut line = Vec::new();
    std::io::BufReader::new(file).read_until(b'\n', &mut line)?;
    Ok(line)
}

/// Reads lines of a bundle's `trace.jsonl` by where they are, a block at a time: the
/// lines asked for one after another are often next to each other (the records of one
/// Export), and are then read with one system call.
pub struct EventLineReader {
    log: File,
    /// What was read last, and the offset it starts at.
    block: Vec<u8>,
    block_at: u64,
}

/// How much [`EventLineReader`] reads at a time (at least).
const READ_AHEAD_BYTES: usize = 64 << 10;

impl EventLineReader {
    pub fn open(path: &Path) -> Result<Self> {
        Ok(EventLineReader {
            log: File::open(path).with_context(|| format!("{}", path.display()))?,
            block: Vec::new(),
            block_at: 0,
        })
    }

    /// The events of the lines that take `len` bytes from `offset`.
    pub fn read(&mut self, offset: u64, len: usize) -> Result<Vec<RawEvent>> {
        let end = offset + len as u64;
        let held = self.block_at..=self.block_at + self.block.len() as u64;
        if !(held.contains(&offset) && held.contains(&end)) {
            self.fill(offset, len)
                .with_context(|| format!("event lines at {offset}, {len} bytes"))?;
        }
        let from = (offset - self.block_at) as usize;
        self.block[from..from + len]
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                serde_json::from_slice(line)
                    .with_context(|| format!("bad event line in the {len} bytes at {offset}"))
            })
            .collect()
    }

    /// Reads at least `len` bytes from `offset`, and what follows up to a block.
    fn fill(&mut self, offset: u64, len: usize) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.block.resize(len.max(READ_AHEAD_BYTES), 0);
        self.block_at = offset;
        let mut filled = 0;
        while filled < len {
            match self
                .log
                .read_at(&mut self.block[filled..], offset + filled as u64)
            {
                Ok(0) => {
                    self.block.truncate(filled);
                    anyhow::bail!("the file ends {filled} bytes in");
                }
                Ok(n) => filled += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.block.truncate(filled);
                    return Err(err.into());
                }
            }
        }
        self.block.truncate(filled);
        Ok(())
    }
}

/// Hands each whole line of the file at `path` to `on_line`, with its offset.
pub fn for_each_line(path: &Path, mut on_line: impl FnMut(u64, &[u8]) -> Result<()>) -> Result<()> {
    use std::io::BufRead;
    let file = File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut offset = 0u64;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        on_line(offset, &line[..read - 1])?;
        offset += read as u64;
    }
}

/// Reads `trace.jsonl`, cutting off a torn last line.
pub fn read_events(path: &Path) -> Result<Vec<RawEvent>> {
    let mut events = Vec::new();
    scan_log(path, true, |event| {
        if let StoredEvent::Full(event) = event {
            events.push(*event);
        }
    })?;
    Ok(events)
}

/// How much of the log is read and parsed at a time (split between the threads).
const BLOCK_BYTES: u64 = 8 << 20;
/// Below this, a block is parsed on the calling thread alone.
const PARALLEL_MIN_BYTES: usize = 256 << 10;

/// Reads the log block by block, hands every event to `on_event` in order, cuts off
/// a torn last line (a write never acknowledged), and returns the last `seq`.
fn scan_log(
    path: &Path,
    full: bool,
    mut on_event: impl FnMut(StoredEvent<'_>),
) -> Result<Option<u64>> {
    let Ok(mut file) = File::open(path) else {
        return Ok(None);
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    // Sized to the log, not to a whole block: a session read back is often a few
    // hundred KiB, and this runs under the collector lock, many times a second
    // when sessions come back after their idle close.
    let length = file.metadata().map_or(BLOCK_BYTES, |m| m.len());
    let mut buf = Vec::with_capacity(length.min(BLOCK_BYTES) as usize + (64 << 10));
    let mut good_len = 0u64;
    let mut last_seq = None;
    loop {
        let read = (&mut file).take(BLOCK_BYTES).read_to_end(&mut buf)?;
        let complete = memchr::memrchr(b'\n', &buf).map_or(0, |i| i + 1);
        if complete > 0 {
            let parts = parse_block(&buf[..complete], full, threads)
                .with_context(|| format!("{}: bad event line", path.display()))?;
            for event in parts.into_iter().flatten() {
                last_seq = Some(event.seq());
                on_event(event);
            }
            good_len += complete as u64;
            buf.drain(..complete);
        }
        if read == 0 {
            break;
        }
    }
    if !buf.is_empty() {
        // torn write: never acknowledged
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(good_len)?;
    }
    Ok(last_seq)
}

/// Parses whole lines, split between `threads` threads at line ends; the parts come
/// back in order.
fn parse_block(
    block: &[u8],
    full: bool,
    threads: usize,
) -> serde_json::Result<Vec<Vec<StoredEvent<'_>>>> {
    if threads <= 1 || block.len() < PARALLEL_MIN_BYTES {
        return Ok(vec![parse_lines(block, full)?]);
    }
    let mut parts = Vec::with_capacity(threads);
    let mut rest = block;
    for n in (1..=threads).rev() {
        let cut = if n == 1 {
            rest.len()
        } else {
            let at = rest.len() / n;
            memchr::memchr(b'\n', &rest[at..]).map_or(rest.len(), |i| at + i + 1)
        };
        let (part, tail) = rest.split_at(cut);
        parts.push(part);
        rest = tail;
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts[1..]
            .iter()
            .map(|part| scope.spawn(move || parse_lines(part, full)))
            .collect();
        let mut out = vec![parse_lines(parts[0], full)?];
        for handle in handles {
            out.push(handle.join().expect("event log parser panicked")?);
        }
        Ok(out)
    })
}

fn parse_lines(lines: &[u8], full: bool) -> serde_json::Result<Vec<StoredEvent<'_>>> {
    let mut events = Vec::with_capacity(lines.len() / 400 + 1);
    let mut rest = lines;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        if let Some(event) = parse_line(line, full)? {
            events.push(event);
        }
    }
    Ok(events)
}

/// The fields of a stored event that replay reads from an evidence-only event.
#[derive(Deserialize)]
struct EventHead<'a> {
    seq: u64,
    #[serde(borrow, default)]
    codex_turn_id: Option<&'a str>,
    #[serde(borrow)]
    payload: PayloadHead<'a>,
    #[serde(borrow, default)]
    evidence: Option<EvidenceHead<'a>>,
}

#[derive(Deserialize)]
struct PayloadHead<'a> {
    #[serde(rename = "type", borrow)]
    type_name: &'a str,
}

#[derive(Deserialize)]
struct EvidenceHead<'a> {
    #[serde(borrow)]
    record_id: &'a str,
    #[serde(borrow, default)]
    trace_id: Option<&'a str>,
}

/// One line; `None` for a blank one. Unless `full`, an evidence-only event is read
/// as its ids. (A line whose ids need unescaping is read in full.)
fn parse_line(line: &[u8], full: bool) -> serde_json::Result<Option<StoredEvent<'_>>> {
    if !full
        && let Ok(head) = serde_json::from_slice::<EventHead>(line)
        && RawEventPayload::is_evidence_only_type(head.payload.type_name)
    {
        return Ok(Some(StoredEvent::EvidenceOnly {
            seq: head.seq,
            codex_turn_id: head.codex_turn_id,
            record_id: head.evidence.as_ref().map(|ev| ev.record_id),
            trace_id: head.evidence.and_then(|ev| ev.trace_id),
        }));
    }
    match serde_json::from_slice::<RawEvent>(line) {
        Ok(event) => Ok(Some(StoredEvent::Full(Box::new(event)))),
        Err(_) if line.iter().all(|b| b.is_ascii_whitespace()) => Ok(None),
        Err(err) => Err(err),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::raw_event::Evidence;

    fn event(n: u64, payload: RawEventPayload, turn: Option<&str>) -> RawEvent {
        RawEvent {
            schema_version: 1,
            seq: 0,
            wall_time_unix_ms: 1_000 + n as i64,
            rollout_id: "r".into(),
            thread_id: Some("r".into()),
            codex_turn_id: turn.map(str::to_string),
            payload,
            evidence: Some(Evidence {
                record_id: format!("{n:024x}"),
                signal: "traces".into(),
                trace_id: Some(format!("{:032x}", n / 10)),
                span_id: Some(format!("{n:016x}")),
                parent_span_id: None,
                raw_payload: None,
            }),
        }
    }

    /// Enough events for several parser threads, mostly evidence only, some with ids
    /// that need unescaping.
    fn events() -> Vec<RawEvent> {
        (0..3_000u64)
            .map(|n| match n % 7 {
                0 => event(
                    n,
                    RawEventPayload::UserPrompt {
                        prompt: Some(format!("prompt \"{n}\"\n")),
                        prompt_length: None,
                    },
                    Some("turn-1"),
                ),
                1 => event(
                    n,
                    RawEventPayload::OtelLog {
                        event_name: None,
                        scope: "s".into(),
                    },
                    Some("turn\"2"),
                ),
                2 => event(
                    n,
                    RawEventPayload::OtelMetric {
                        name: "m".into(),
                        points: 1,
                    },
                    None,
                ),
                _ => event(
                    n,
                    RawEventPayload::OtelSpan {
                        name: format!("span {n} with some padding to make lines longer"),
                    },
                    Some("turn-3"),
                ),
            })
            .collect()
    }

    #[test]
    fn a_bundle_from_a_spare_writes_through_the_spares_open_files() {
        use crate::store::spare::SpareBundles;
        use crate::store::wal::Wal;
        let root = tempfile::tempdir().unwrap();
        let spares = SpareBundles::start(root.path()).unwrap();
        let wal = Wal::open(root.path()).unwrap();
        let spare = spares.take_when_ready();
        let spare_dir = spare.dir.clone();
        let dir = root.path().join("rollouts").join("r");
        fs::create_dir_all(root.path().join("rollouts")).unwrap();

        let mut batch = wal.batch();
        let mut bundle = Bundle::create(&dir, "r", 7, Some(spare), &mut batch).unwrap();
        let mut written = events()[..20].to_vec();
        bundle.append_events(&mut written, &mut batch).unwrap();
        let (pack, offset) = bundle
            .append_payload(
                |out| {
                    out.extend_from_slice(b"[1]");
                    Ok(())
                },
                &mut batch,
            )
            .unwrap();
        wal.commit(batch).unwrap();
        drop(bundle);

        assert!(!spare_dir.exists(), "the spare was not renamed into place");
        assert_eq!(
            read_events(&dir.join(RAW_EVENT_LOG_FILE_NAME)).unwrap(),
            written
        );
        assert_eq!((pack.as_str(), offset), (PAYLOAD_PACK, 0));
        assert_eq!(fs::read(dir.join(PAYLOAD_PACK)).unwrap(), b"[1]\n");
        let opening = Bundle::opening(&dir, "other", 0).unwrap();
        assert_eq!(opening.manifest, Manifest::new("r", 7));
    }

    #[test]
    fn replay_reads_what_read_events_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (mut bundle, none) = Bundle::open(dir.path(), "r", 0).unwrap();
        assert!(none.is_empty());
        let mut written = events();
        bundle.append(None, &mut written).unwrap();
        drop(bundle);

        let full = read_events(&dir.path().join(RAW_EVENT_LOG_FILE_NAME)).unwrap();
        assert_eq!(full, written);

        let mut replayed = Vec::new();
        let mut bundle = Bundle::opening(dir.path(), "r", 0)
            .unwrap()
            .replay(|e| {
                let ids = (
                    e.seq(),
                    e.codex_turn_id().map(str::to_string),
                    e.record_id().map(str::to_string),
                    e.trace_id().map(str::to_string),
                );
                let kept = match e {
                    StoredEvent::Full(e) => Some(*e),
                    StoredEvent::EvidenceOnly { .. } => None,
                };
                replayed.push((ids, kept));
            })
            .unwrap();
        assert_eq!(replayed.len(), written.len());
        for (e, (ids, kept)) in written.iter().zip(&replayed) {
            let expected = (
                e.seq,
                e.codex_turn_id.clone(),
                e.evidence.as_ref().map(|ev| ev.record_id.clone()),
                e.evidence.as_ref().and_then(|ev| ev.trace_id.clone()),
            );
            assert_eq!(*ids, expected);
            match kept {
                Some(kept) => assert_eq!(kept, e),
                None => assert!(e.payload.is_evidence_only()),
            }
        }
        // Semantic events, and evidence-only ones whose ids need unescaping, in full.
        assert!(
            replayed.iter().all(|(_, kept)| kept
                .as_ref()
                .is_none_or(|e| !e.payload.is_evidence_only()
                    || e.codex_turn_id.as_deref() == Some("turn\"2")))
        );

        // Appending continues the sequence.
        let mut more = vec![written[3].clone()];
        bundle.append(None, &mut more).unwrap();
        assert_eq!(more[0].seq, written.len() as u64 + 1);
    }

    #[test]
    fn torn_last_line_is_cut_and_blank_lines_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut bundle, _) = Bundle::open(dir.path(), "r", 0).unwrap();
        let mut written = events()[..5].to_vec();
        bundle.append(None, &mut written).unwrap();
        drop(bundle);
        let log = dir.path().join(RAW_EVENT_LOG_FILE_NAME);
        let good = fs::read(&log).unwrap();
        let mut damaged = good.clone();
        damaged.extend_from_slice(b"\n  \n{\"schema_version\":1,\"seq\":6,\"wall");
        fs::write(&log, &damaged).unwrap();
        let (_, events) = Bundle::open(dir.path(), "r", 0).unwrap();
        assert_eq!(events, written);
        assert_eq!(fs::read(&log).unwrap().len(), good.len() + 4);
    }

    #[test]
    fn a_bad_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(RAW_EVENT_LOG_FILE_NAME);
        fs::write(&log, b"{\"seq\":1}\n").unwrap();
        assert!(read_events(&log).is_err());
        assert!(
            Bundle::opening(dir.path(), "r", 0)
                .unwrap()
                .replay(|_| {})
                .is_err()
        );
    }

    #[test]
    fn evidence_only_by_type_name() {
        for e in events().iter().take(7) {
            assert_eq!(
                RawEventPayload::is_evidence_only_type(e.payload.type_name()),
                e.payload.is_evidence_only()
            );
        }
    }

    #[test]
    fn event_lines_are_read_back_by_where_they_are_across_read_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let bundle_dir = dir.path().join("r");
        let mut bundle = Bundle::opening(&bundle_dir, "r", 0)
            .unwrap()
            .replay(|_| {})
            .unwrap();
        let wal = crate::store::wal::Wal::open(dir.path()).unwrap();
        let mut written = events();
        let mut ends = Vec::new();
        let mut batch = wal.batch();
        let offset = bundle
            .append_events_measured(&mut written, &mut ends, &mut batch)
            .unwrap();
        assert_eq!(ends.len(), written.len());
        assert!(*ends.last().unwrap() > 3 * READ_AHEAD_BYTES);
        let line = |i: usize| {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            (offset + start as u64, ends[i] - start)
        };
        let mut reader = EventLineReader::open(&bundle_dir.join(RAW_EVENT_LOG_FILE_NAME)).unwrap();
        // Forward one by one (most from a block read before), then two lines at once
        // across a block's end, then back to the start.
        for (i, event) in written.iter().enumerate() {
            let (at, len) = line(i);
            assert_eq!(
                reader.read(at, len).unwrap(),
                std::slice::from_ref(event),
                "line {i}"
            );
        }
        let straddling = (0..written.len() - 1)
            .find(|&i| line(i + 1).0 + line(i + 1).1 as u64 > offset + READ_AHEAD_BYTES as u64)
            .unwrap();
        let (at, len) = line(straddling);
        let both = len + line(straddling + 1).1;
        assert_eq!(
            reader.read(at, both).unwrap(),
            written[straddling..straddling + 2]
        );
        assert_eq!(
            reader.read(line(0).0, line(0).1).unwrap(),
            [written[0].clone()]
        );
        // Past the end of the file: an error, not a short answer.
        let (at, len) = line(written.len() - 1);
        assert!(reader.read(at, len + 10).is_err());
    }
}
