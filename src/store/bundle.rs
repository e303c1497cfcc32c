//! One bundle directory: `manifest.json`, an append-only `trace.jsonl` ordered by
//! `seq`, and `payloads/N.json` holding the OTLP records behind the events.
//!
//! Durability: [`Bundle::append`] writes the payload file and the event lines, then
//! fsyncs both (and the directory when a file is new) before returning, so an Export
//! is acknowledged only once its events are on disk. A torn last line (a crash in the
//! middle of a write, never acknowledged) is cut off when the bundle is opened again.

use super::manifest::{MANIFEST_FILE_NAME, Manifest, PAYLOADS_DIR_NAME, RAW_EVENT_LOG_FILE_NAME};
use crate::normalize::RawEvent;
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

    pub fn save_manifest(&self) -> Result<()> {
        write_atomically(
            &self.dir.join(MANIFEST_FILE_NAME),
            &serde_json::to_vec_pretty(&self.manifest)?,
        )
    }
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
