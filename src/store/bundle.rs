//! One bundle directory: `manifest.json`, an append-only `trace.jsonl` ordered by
//! `seq`, and the payload pack `payloads.jsonl` holding the OTLP records behind the
//! events (older bundles: `payloads/N.json`, one file per Export).
//!
//! Durability: the write path ([`Bundle::create`], [`Bundle::append_payload`],
//! [`Bundle::append_events`]) writes without an fsync and logs every write to a
//! [`WalBatch`]; the collector acknowledges an Export once the write-ahead log entry
//! holding it is fsynced (see [`super::wal`]). A torn last line (a crash in the
//! middle of a write, never acknowledged) is cut off when the bundle is opened again.

use super::manifest::{MANIFEST_FILE_NAME, Manifest, PAYLOADS_DIR_NAME, RAW_EVENT_LOG_FILE_NAME};
use super::wal::WalBatch;
use crate::normalize::RawEvent;
use crate::normalize::raw_event::RawPayloadRef;
use anyhow::{Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    log: File,
    next_seq: u64,
    next_payload: u64,
}

impl Bundle {
    /// Opens a bundle, creating it if needed, and returns the events it holds.
    pub fn open(
        dir: &Path,
        rollout_id: &str,
        started_at_unix_ms: i64,
    ) -> Result<(Bundle, Vec<RawEvent>)> {
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
        let log_path = dir.join(RAW_EVENT_LOG_FILE_NAME);
        let events = read_events(&log_path)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let next_payload = fs::read_dir(dir.join(PAYLOADS_DIR_NAME))
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
        let next_seq = events.last().map(|e| e.seq + 1).unwrap_or(1);
        Ok((
            Bundle {
                dir: dir.to_path_buf(),
                manifest,
                log,
                next_seq,
                next_payload,
            },
            events,
        ))
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

    /// Writes a payload file, appends the events with their sequence numbers, fsyncs.
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
        let mut buf = Vec::with_capacity(events.len() * 256);
        for event in events.iter_mut() {
            event.seq = self.next_seq;
            self.next_seq += 1;
            serde_json::to_writer(&mut buf, event)?;
            buf.push(b'\n');
        }
        self.log.write_all(&buf)?;
        self.log.sync_data()?;
        if payload.is_some() {
            sync_dir(&self.dir.join(PAYLOADS_DIR_NAME))?;
        }
        Ok(())
    }

    /// Creates a new bundle (manifest and empty log) without an fsync; the changes go
    /// to `batch`, the write-ahead log makes them durable.
    pub fn create(
        dir: &Path,
        rollout_id: &str,
        started_at_unix_ms: i64,
        batch: &mut WalBatch,
    ) -> Result<Bundle> {
        fs::create_dir_all(dir)?;
        if let Some(parent) = dir.parent() {
            batch.created_in(parent);
        }
        batch.created_in(dir);
        let manifest = Manifest::new(rollout_id, started_at_unix_ms);
        let bundle = Bundle {
            dir: dir.to_path_buf(),
            log: OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(RAW_EVENT_LOG_FILE_NAME))?,
            manifest,
            next_seq: 1,
            next_payload: 1,
        };
        bundle.save_manifest_logged(batch)?;
        Ok(bundle)
    }

    /// Appends one Export's payload (a JSON array of the OTLP records, one line) to the
    /// bundle's payload pack, logging the write to `batch`; returns the pack's path
    /// (relative to the bundle) and the byte offset of the line.
    pub fn append_payload(&mut self, body: &[u8], batch: &mut WalBatch) -> Result<(String, u64)> {
        let full = self.dir.join(PAYLOAD_PACK);
        let mut file = OpenOptions::new().create(true).append(true).open(&full)?;
        let offset = file.metadata()?.len();
        let mut line = Vec::with_capacity(body.len() + 1);
        line.extend_from_slice(body);
        line.push(b'\n');
        file.write_all(&line)?;
        batch.write(&full, offset, &line);
        Ok((PAYLOAD_PACK.to_string(), offset))
    }

    /// Appends the events with their sequence numbers to `trace.jsonl`, logging the
    /// write to `batch` (durable once the batch is committed).
    pub fn append_events(&mut self, events: &mut [RawEvent], batch: &mut WalBatch) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(events.len() * 256);
        for event in events.iter_mut() {
            event.seq = self.next_seq;
            self.next_seq += 1;
            serde_json::to_writer(&mut buf, event)?;
            buf.push(b'\n');
        }
        let offset = self.log.metadata()?.len();
        self.log.write_all(&buf)?;
        batch.write(&self.dir.join(RAW_EVENT_LOG_FILE_NAME), offset, &buf);
        Ok(())
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

/// The payload pack of a bundle: one line per stored Export (a JSON array of its OTLP
/// records), addressed by byte offset.
pub const PAYLOAD_PACK: &str = "payloads.jsonl";

/// The OTLP records of one stored payload: a line of the pack (`offset` set) or a whole
/// `payloads/N.json` file (bundles written before packs).
pub fn read_payload(bundle_dir: &Path, payload: &RawPayloadRef) -> Result<Vec<serde_json::Value>> {
    use std::io::{BufRead, Seek, SeekFrom};
    let path = bundle_dir.join(&payload.path);
    let body = match payload.offset {
        Some(offset) => {
            let mut file = File::open(&path).with_context(|| format!("{}", path.display()))?;
            file.seek(SeekFrom::Start(offset))?;
            let mut line = Vec::new();
            std::io::BufReader::new(file).read_until(b'\n', &mut line)?;
            line
        }
        None => fs::read(&path).with_context(|| format!("{}", path.display()))?,
    };
    Ok(serde_json::from_slice(&body)?)
}

/// Reads `trace.jsonl`, cutting off a torn last line.
pub fn read_events(path: &Path) -> Result<Vec<RawEvent>> {
    let Ok(file) = File::open(path) else {
        return Ok(Vec::new());
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut events = Vec::new();
    let mut line = Vec::new();
    let mut good_len = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            break; // torn write: never acknowledged
        }
        match serde_json::from_slice::<RawEvent>(&line) {
            Ok(event) => events.push(event),
            Err(err) if line.iter().all(|b| b.is_ascii_whitespace()) => drop(err),
            Err(err) => {
                return Err(err).with_context(|| format!("{}: bad event line", path.display()));
            }
        }
        good_len += n as u64;
    }
    let len = fs::metadata(path)?.len();
    if len != good_len {
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(good_len)?;
    }
    Ok(events)
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
