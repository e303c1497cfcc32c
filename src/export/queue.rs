//! The durable, bounded queue of a sender: `<data_dir>/export-queue/` (the exporter's
//! batches of enriched spans) and `<data_dir>/forward-queue/` (the forwarder's
//! original requests, see [`super::forward`]).
//!
//! Layout:
//! - `seg-<20 digits>.q`: segment files, appended to. Each record is a 4-byte
//!   little-endian length followed by the record: an encoded
//!   `ExportTraceServiceRequest` (export), or a signal byte and an encoded request
//!   (forward).
//!   A segment is closed once it passes [`SEGMENT_TARGET_BYTES`].
//! - `head`: the position of the first unsent record, rewritten in place after each
//!   delivered batch (two checksummed slots, written in turn, so a torn write leaves
//!   the other). Fully sent segments are deleted; an emptied tail segment is cut back
//!   to zero instead of replaced, so a busy queue creates no files. (`ack`, the text
//!   file of earlier versions, is read when there is no `head`.)
//! - `sent-spans` (export only): the set of spans already enqueued, 24 bytes each (trace id + span
//!   id), appended to. A span in it is never enqueued again, so offering the same
//!   graph twice, after a restart or a re-import, sends nothing twice. Keys are written
//!   only after the records holding their spans are fsynced, and are not fsynced
//!   themselves: a crash may forget a key (its span is enqueued and sent again, with
//!   the same ids), never remember one whose span is lost.
//!
//! **Limit.** The unsent records may take at most `max_bytes` (default
//! [`DEFAULT_MAX_BYTES`], 256 MiB). **When full, new batches are refused, never the
//! old ones dropped**: [`DiskQueue::push`] returns [`QueueError::Full`], the caller
//! counts and logs it, and the refused spans are *not* marked sent, so the next offer
//! of the same graph (every update, and the replay after a restart) enqueues them
//! again once the queue has drained. Nothing already queued is lost.
//!
//! A torn record at the end of the last segment (a crash mid-write) is cut off when
//! the queue is opened; it was never acknowledged to anyone, and its spans were not
//! yet marked sent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Default limit of unsent bytes in the queue: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// A segment is closed and a new one started past this size.
pub const SEGMENT_TARGET_BYTES: u64 = 8 * 1024 * 1024;
/// Largest single record accepted.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
const HEADER: u64 = 4;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("export queue full: {used} of {max} bytes used, {needed} more needed")]
    Full { used: u64, max: u64, needed: u64 },
    #[error("export queue record too large: {0} bytes")]
    TooLarge(usize),
    #[error("export queue I/O: {0}")]
    Io(#[from] io::Error),
}

/// A position in the queue: segment number and byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Records read from the head of the queue, each with the head position once it
/// (and every record before it) is sent.
#[derive(Debug)]
pub struct Peeked {
    pub records: Vec<(Vec<u8>, Position)>,
}

pub struct DiskQueue {
    dir: PathBuf,
    max_bytes: u64,
    /// Segment numbers and lengths, oldest first. Never empty once opened.
    segments: VecDeque<(u64, u64)>,
    writer: File,
    /// Records appended since the last fsync of `writer`.
    unsynced: bool,
    ack: Position,
    head: AckFile,
    sent_file: File,
    sent: SentSpans,
    /// Keys marked since the last sync: written to `sent_file` once the records are
    /// durable.
    unwritten_keys: Vec<u8>,
}

impl DiskQueue {
    pub fn open(dir: &Path, max_bytes: u64) -> Result<DiskQueue, QueueError> {
        fs::create_dir_all(dir)?;
        let mut numbers: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("seg-")?.strip_suffix(".q")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        let mut head = AckFile::open(dir)?;
        let mut ack = head.read(dir)?.unwrap_or(Position {
            segment: numbers.first().copied().unwrap_or(0),
            offset: 0,
        });
        // Segments wholly before the ack position were sent.
        for n in numbers.iter().filter(|n| **n < ack.segment) {
            fs::remove_file(segment_path(dir, *n))?;
        }
        numbers.retain(|n| *n >= ack.segment);
        if numbers.first() != Some(&ack.segment) {
            // The acked segment is gone (fully sent); resume at the next one.
            ack = Position {
                segment: numbers.first().copied().unwrap_or(ack.segment),
                offset: 0,
            };
        }
        if numbers.is_empty() {
            numbers.push(ack.segment);
        }
        let mut segments = VecDeque::new();
        let last = *numbers.last().expect("not empty");
        for n in numbers {
            let path = segment_path(dir, n);
            let file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)?;
            let len = valid_length(&path)?;
            if len != file.metadata()?.len() {
                if n == last {
                    file.set_len(len)?;
                } else {
                    tracing::warn!(
                        segment = n,
                        "export queue: torn record inside a closed segment"
                    );
                }
            }
            segments.push_back((n, len));
        }
        let writer = OpenOptions::new()
            .append(true)
            .open(segment_path(dir, last))?;
        if ack.offset > segments[0].1 {
            ack.offset = segments[0].1;
        }
        let sent_path = dir.join("sent-spans");
        let mut sent = SentSpans::default();
        if let Ok(bytes) = fs::read(&sent_path) {
            for chunk in bytes.chunks_exact(24) {
                sent.insert(chunk.try_into().expect("24 bytes"));
            }
            let whole = (bytes.len() / 24 * 24) as u64;
            if whole != bytes.len() as u64 {
                OpenOptions::new()
                    .write(true)
                    .open(&sent_path)?
                    .set_len(whole)?;
            }
        }
        let sent_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&sent_path)?;
        Ok(DiskQueue {
            dir: dir.to_path_buf(),
            max_bytes,
            segments,
            writer,
            unsynced: false,
            ack,
            head,
            sent_file,
            sent,
            unwritten_keys: Vec::new(),
        })
    }

    /// Bytes of unsent records (with their headers).
    pub fn used_bytes(&self) -> u64 {
        self.segments.iter().map(|(_, len)| len).sum::<u64>() - self.ack.offset
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.used_bytes() == 0
    }

    /// Appends one record durably (fsync). Refuses it when the queue would pass its limit.
    pub fn push(&mut self, record: &[u8]) -> Result<(), QueueError> {
        self.append(record)?;
        self.sync()
    }

    /// Appends one record without an fsync: it is durable after the next
    /// [`DiskQueue::sync`]. Refuses it when the queue would pass its limit.
    pub fn append(&mut self, record: &[u8]) -> Result<(), QueueError> {
        if record.len() > MAX_RECORD_BYTES {
            return Err(QueueError::TooLarge(record.len()));
        }
        let needed = HEADER + record.len() as u64;
        let used = self.used_bytes();
        if used + needed > self.max_bytes {
            return Err(QueueError::Full {
                used,
                max: self.max_bytes,
                needed,
            });
        }
        let (tail, tail_len) = *self.segments.back().expect("never empty");
        if tail_len > 0 && tail_len + needed > SEGMENT_TARGET_BYTES {
            // The closed segment's records become durable before the next one starts.
            self.sync()?;
            let next = tail + 1;
            let path = segment_path(&self.dir, next);
            self.writer = OpenOptions::new().create(true).append(true).open(path)?;
            self.segments.push_back((next, 0));
        }
        let mut buf = Vec::with_capacity(needed as usize);
        buf.extend_from_slice(&(record.len() as u32).to_le_bytes());
        buf.extend_from_slice(record);
        self.unsynced = true;
        self.writer.write_all(&buf)?;
        self.segments.back_mut().expect("never empty").1 += needed;
        Ok(())
    }

    /// Makes every appended record durable, then writes the keys marked since.
    pub fn sync(&mut self) -> Result<(), QueueError> {
        if self.unsynced {
            self.writer.sync_data()?;
            self.unsynced = false;
        }
        if !self.unwritten_keys.is_empty() {
            self.sent_file.write_all(&self.unwritten_keys)?;
            self.unwritten_keys.clear();
        }
        Ok(())
    }

    /// Up to `max_records` records from the head (at least one if any), at most
    /// `max_bytes` in total unless the first alone is larger.
    pub fn peek(&self, max_records: usize, max_bytes: usize) -> Result<Peeked, QueueError> {
        let mut records = Vec::new();
        let mut total = 0usize;
        let mut pos = self.ack;
        'segments: for (n, len) in self.segments.iter().copied() {
            if n < pos.segment {
                continue;
            }
            if n > pos.segment {
                pos = Position {
                    segment: n,
                    offset: 0,
                };
            }
            if pos.offset >= len {
                continue;
            }
            let mut file = BufReader::new(File::open(segment_path(&self.dir, n))?);
            file.seek(SeekFrom::Start(pos.offset))?;
            while pos.offset + HEADER <= len {
                if records.len() >= max_records {
                    break 'segments;
                }
                let mut header = [0u8; 4];
                file.read_exact(&mut header)?;
                let size = u32::from_le_bytes(header) as usize;
                if !records.is_empty() && total + size > max_bytes {
                    break 'segments;
                }
                let mut record = vec![0u8; size];
                file.read_exact(&mut record)?;
                total += size;
                pos.offset += HEADER + size as u64;
                records.push((record, pos));
            }
        }
        Ok(Peeked { records })
    }

    /// Marks everything before `next` as sent, persists it and deletes sent segments.
    pub fn ack(&mut self, next: Position) -> Result<(), QueueError> {
        self.ack = next;
        let mut removed = Vec::new();
        while self.segments.len() > 1 {
            let (n, len) = self.segments[0];
            if n < self.ack.segment || (n == self.ack.segment && self.ack.offset >= len) {
                self.segments.pop_front();
                if n == self.ack.segment {
                    self.ack = Position {
                        segment: self.segments[0].0,
                        offset: 0,
                    };
                }
                removed.push(n);
            } else {
                break;
            }
        }
        // An empty queue: the tail segment is cut back to zero so it does not grow
        // forever. Cut before the head is written: a crash in between leaves a head past
        // the end, which opening clamps to it.
        if self.segments.len() == 1 && self.ack.offset > 0 && self.ack.offset == self.segments[0].1
        {
            self.writer.set_len(0)?;
            self.segments[0].1 = 0;
            self.ack.offset = 0;
        }
        self.head.write(self.ack)?;
        // Deleted once the head no longer points into them.
        for n in removed {
            fs::remove_file(segment_path(&self.dir, n))?;
        }
        Ok(())
    }

    pub fn is_sent(&self, key: &[u8; 24]) -> bool {
        self.sent.contains(key)
    }

    /// Records spans as enqueued, so they are never enqueued again. The keys reach
    /// the `sent-spans` file at the next [`DiskQueue::sync`], after the records
    /// appended before them; they are not fsynced themselves (see the module docs).
    pub fn mark_sent(&mut self, keys: &[[u8; 24]]) {
        for key in keys {
            if self.sent.insert(key) {
                self.unwritten_keys.extend_from_slice(key);
            }
        }
    }

    pub fn sent_count(&self) -> usize {
        self.sent.len()
    }
}

/// The spans already enqueued, by trace: the exporter gives each rollout one trace,
/// so its spans share one 16-byte trace id and each adds only its 8-byte span id
/// instead of a 24-byte key. The `sent-spans` file keeps 24-byte keys.
#[derive(Default)]
struct SentSpans {
    by_trace: HashMap<[u8; 16], HashSet<[u8; 8]>>,
}

impl SentSpans {
    fn split(key: &[u8; 24]) -> ([u8; 16], [u8; 8]) {
        let (trace, span) = key.split_at(16);
        (
            trace.try_into().expect("16 bytes"),
            span.try_into().expect("8 bytes"),
        )
    }

    fn contains(&self, key: &[u8; 24]) -> bool {
        let (trace, span) = Self::split(key);
        self.by_trace
            .get(&trace)
            .is_some_and(|spans| spans.contains(&span))
    }

    /// Adds `key`; false if it was there already.
    fn insert(&mut self, key: &[u8; 24]) -> bool {
        let (trace, span) = Self::split(key);
        self.by_trace.entry(trace).or_default().insert(span)
    }

    fn len(&self) -> usize {
        self.by_trace.values().map(HashSet::len).sum()
    }
}

/// The key of a span in the sent-set.
pub fn sent_key(trace_id: &[u8], span_id: &[u8]) -> [u8; 24] {
    let mut key = [0u8; 24];
    let t = trace_id.len().min(16);
    key[..t].copy_from_slice(&trace_id[..t]);
    let s = span_id.len().min(8);
    key[16..16 + s].copy_from_slice(&span_id[..s]);
    key
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:020}.q"))
}

/// The length of the whole records at the start of a segment file.
fn valid_length(path: &Path) -> io::Result<u64> {
    let file_len = fs::metadata(path)?.len();
    let mut file = BufReader::new(File::open(path)?);
    let mut pos = 0u64;
    loop {
        if pos + HEADER > file_len {
            return Ok(pos);
        }
        let mut header = [0u8; 4];
        file.read_exact(&mut header)?;
        let size = u32::from_le_bytes(header) as u64;
        if pos + HEADER + size > file_len {
            return Ok(pos);
        }
        file.seek_relative(size as i64)?;
        pos += HEADER + size;
    }
}

/// The `head` file: the queue's first unsent position, in two slots written in turn.
/// A slot is `[generation, segment, offset, checksum]`, 4 little-endian u64s; the valid
/// slot with the higher generation wins.
struct AckFile {
    file: File,
    generation: u64,
}

const SLOT_BYTES: usize = 32;

impl AckFile {
    fn open(dir: &Path) -> io::Result<AckFile> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join("head"))?;
        Ok(AckFile {
            file,
            generation: 0,
        })
    }

    /// The stored position, from `head`, or else from the `ack` text file of
    /// earlier versions.
    fn read(&mut self, dir: &Path) -> io::Result<Option<Position>> {
        use std::os::unix::fs::FileExt;
        let mut bytes = [0u8; 2 * SLOT_BYTES];
        let n = self.file.read_at(&mut bytes, 0)?;
        let best = bytes[..n]
            .chunks_exact(SLOT_BYTES)
            .filter_map(|slot| {
                let word =
                    |i: usize| u64::from_le_bytes(slot[i * 8..i * 8 + 8].try_into().unwrap());
                let (generation, segment, offset) = (word(0), word(1), word(2));
                (word(3) == slot_checksum(generation, segment, offset))
                    .then_some((generation, Position { segment, offset }))
            })
            .max_by_key(|(generation, _)| *generation);
        if let Some((generation, position)) = best {
            self.generation = generation;
            return Ok(Some(position));
        }
        read_legacy_ack(&dir.join("ack"))
    }

    /// Stores `position` durably, in the slot not holding the latest one.
    fn write(&mut self, position: Position) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.generation += 1;
        let g = self.generation;
        let mut slot = [0u8; SLOT_BYTES];
        for (i, word) in [
            g,
            position.segment,
            position.offset,
            slot_checksum(g, position.segment, position.offset),
        ]
        .into_iter()
        .enumerate()
        {
            slot[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        self.file.write_all_at(&slot, (g % 2) * SLOT_BYTES as u64)?;
        self.file.sync_data()
    }
}

fn slot_checksum(generation: u64, segment: u64, offset: u64) -> u64 {
    let mut words = [0u8; 24];
    for (i, word) in [generation, segment, offset].into_iter().enumerate() {
        words[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
    }
    crate::store::checksum::checksum(&words)
}

fn read_legacy_ack(path: &Path) -> io::Result<Option<Position>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut parts = text.split_whitespace().map(|p| p.parse::<u64>());
    match (parts.next(), parts.next()) {
        (Some(Ok(segment)), Some(Ok(offset))) => Ok(Some(Position { segment, offset })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(p: &Peeked) -> Vec<Vec<u8>> {
        p.records.iter().map(|(r, _)| r.clone()).collect()
    }

    #[test]
    fn push_peek_ack_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), 1024).unwrap();
        assert!(q.is_empty());
        q.push(b"one").unwrap();
        q.push(b"two").unwrap();
        q.push(b"three").unwrap();
        let p = q.peek(2, usize::MAX).unwrap();
        assert_eq!(bodies(&p), vec![b"one".to_vec(), b"two".to_vec()]);
        q.ack(p.records[1].1).unwrap();
        drop(q);
        let mut q = DiskQueue::open(dir.path(), 1024).unwrap();
        let p = q.peek(10, usize::MAX).unwrap();
        assert_eq!(bodies(&p), vec![b"three".to_vec()]);
        q.ack(p.records[0].1).unwrap();
        assert!(q.is_empty());
        q.push(b"four").unwrap();
        drop(q);
        let q = DiskQueue::open(dir.path(), 1024).unwrap();
        assert_eq!(
            bodies(&q.peek(10, usize::MAX).unwrap()),
            vec![b"four".to_vec()]
        );
    }

    #[test]
    fn full_queue_refuses_new_records_and_keeps_old() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), 24).unwrap();
        q.push(&[1u8; 8]).unwrap();
        q.push(&[2u8; 8]).unwrap();
        assert!(matches!(q.push(&[3u8; 8]), Err(QueueError::Full { .. })));
        let p = q.peek(1, usize::MAX).unwrap();
        assert_eq!(bodies(&p), vec![vec![1u8; 8]]);
        q.ack(p.records[0].1).unwrap();
        q.push(&[3u8; 8]).unwrap();
        let p = q.peek(10, usize::MAX).unwrap();
        assert_eq!(bodies(&p), vec![vec![2u8; 8], vec![3u8; 8]]);
    }

    #[test]
    fn torn_tail_is_cut_and_segments_roll() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; (SEGMENT_TARGET_BYTES / 2) as usize];
        let mut q = DiskQueue::open(dir.path(), u64::MAX).unwrap();
        q.push(&big).unwrap();
        q.push(&big).unwrap(); // rolls into a second segment
        q.push(b"x").unwrap();
        drop(q);
        let last = segment_path(dir.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap(); // a torn record
        drop(f);
        let mut q = DiskQueue::open(dir.path(), u64::MAX).unwrap();
        let p = q.peek(10, usize::MAX).unwrap();
        assert_eq!(p.records.len(), 3);
        assert_eq!(p.records[2].0, b"x".to_vec());
        q.ack(p.records[2].1).unwrap();
        assert!(q.is_empty());
        let segs = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("seg-")
            })
            .count();
        assert_eq!(segs, 1);
    }

    #[test]
    fn sent_set_persists() {
        let dir = tempfile::tempdir().unwrap();
        let key = sent_key(&[1; 16], &[2; 8]);
        let mut q = DiskQueue::open(dir.path(), 1024).unwrap();
        assert!(!q.is_sent(&key));
        q.mark_sent(&[key]);
        q.sync().unwrap();
        drop(q);
        let q = DiskQueue::open(dir.path(), 1024).unwrap();
        assert!(q.is_sent(&key));
        assert_eq!(q.sent_count(), 1);
    }

    #[test]
    fn head_survives_a_torn_slot_and_reads_the_legacy_ack() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), 1024).unwrap();
        for r in [b"a", b"b", b"c"] {
            q.push(r).unwrap();
        }
        let p = q.peek(1, usize::MAX).unwrap();
        q.ack(p.records[0].1).unwrap(); // generation 1: after "a"
        let p = q.peek(1, usize::MAX).unwrap();
        q.ack(p.records[0].1).unwrap(); // generation 2: after "b"
        drop(q);
        // A crash tore the newest slot (generation 2 is in slot 0): the older one holds.
        let head = dir.path().join("head");
        let mut bytes = fs::read(&head).unwrap();
        bytes[8] ^= 0xff;
        fs::write(&head, &bytes).unwrap();
        let q = DiskQueue::open(dir.path(), 1024).unwrap();
        assert_eq!(
            bodies(&q.peek(10, usize::MAX).unwrap()),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
        drop(q);
        // A queue written by an earlier version: its text `ack`, no `head`.
        fs::remove_file(&head).unwrap();
        fs::write(dir.path().join("ack"), format!("0 {}\n", HEADER + 1)).unwrap();
        let q = DiskQueue::open(dir.path(), 1024).unwrap();
        assert_eq!(
            bodies(&q.peek(10, usize::MAX).unwrap()),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
    }

    #[test]
    fn a_busy_queue_creates_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), 1024).unwrap();
        let names = || {
            let mut n: Vec<String> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        let before = names();
        for _ in 0..5 {
            q.push(b"record").unwrap();
            let p = q.peek(10, usize::MAX).unwrap();
            q.ack(p.records[0].1).unwrap();
            assert!(q.is_empty());
        }
        assert_eq!(names(), before);
        drop(q);
        let mut q = DiskQueue::open(dir.path(), 1024).unwrap();
        assert!(q.is_empty());
        q.push(b"next").unwrap();
        assert_eq!(
            bodies(&q.peek(10, usize::MAX).unwrap()),
            vec![b"next".to_vec()]
        );
    }
}
