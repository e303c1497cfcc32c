//! `rollout-collector import`: captured OTLP through the same pipeline as `serve`.
//! Takes `*-logs.pb`, `*-traces.pb`, `*-metrics.pb` (one Export request each), folders
//! of them, and OTLP/JSON lines files (the OpenTelemetry Collector file exporter's
//! format: one `{"resourceLogs"|"resourceSpans"|"resourceMetrics": ...}` per line).

use super::decode::{Received, decode_json};
use crate::collector::{Collector, IngestReport};
use crate::normalize::Signal;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct ImportSummary {
    pub files: usize,
    pub requests: usize,
    pub report: IngestReport,
    pub rollouts: Vec<String>,
}

/// The files to import, in order: folders are walked, and their files sorted by name
/// (the captures' names are their arrival order).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            bail!("{}: no such file or folder", path.display());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if kind_of(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

enum FileKind {
    Protobuf(Signal),
    JsonLines,
}

fn kind_of(path: &Path) -> Option<FileKind> {
    let name = path.file_name()?.to_str()?;
    if let Some(stem) = name.strip_suffix(".pb") {
        for signal in [Signal::Logs, Signal::Traces, Signal::Metrics] {
            if stem.ends_with(signal.as_str()) {
                return Some(FileKind::Protobuf(signal));
            }
        }
        return None;
    }
    (name.ends_with(".jsonl") || name.ends_with(".json")).then_some(FileKind::JsonLines)
}

/// Reads one file into Export requests (protobuf ones are read in place when
/// normalized).
pub fn read_file(path: &Path) -> Result<Vec<Received>> {
    match kind_of(path) {
        Some(FileKind::Protobuf(signal)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(vec![Received::Protobuf(signal, bytes.into())])
        }
        Some(FileKind::JsonLines) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut out = Vec::new();
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let value: serde_json::Value = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
                let kind = ["resourceLogs", "resourceSpans", "resourceMetrics"]
                    .into_iter()
                    .zip(["logs", "traces", "metrics"])
                    .find(|(key, _)| value.get(*key).is_some())
                    .map(|(_, kind)| kind)
                    .with_context(|| {
                        format!(
                            "{}:{}: no resourceLogs, resourceSpans or resourceMetrics",
                            path.display(),
                            n + 1
                        )
                    })?;
                out.push(Received::Decoded(
                    decode_json(kind, line.as_bytes())
                        .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?,
                ));
            }
            Ok(out)
        }
        None => bail!(
            "{}: expected *-logs.pb, *-traces.pb, *-metrics.pb or an OTLP/JSON lines file",
            path.display()
        ),
    }
}

/// Imports files into the collector, then closes the rollouts that are idle by their
/// own clock (a capture of a finished session is closed at once).
pub fn import(
    collector: &mut Collector,
    files: &[PathBuf],
    idle: std::time::Duration,
    on_file: impl Fn(&Path),
) -> Result<ImportSummary> {
    let mut summary = ImportSummary {
        files: files.len(),
        ..Default::default()
    };
    let mut touched = std::collections::BTreeSet::new();
    for file in files {
        for request in read_file(file)? {
            summary.requests += 1;
            let (records, _, _) = request
                .normalize(false)
                .map_err(|e| anyhow::anyhow!("{}: not an OTLP request: {e}", file.display()))?;
            let report = collector.ingest(records)?;
            summary.report.accepted += report.accepted;
            summary.report.duplicates += report.duplicates;
            touched.extend(report.rollouts_touched);
        }
        on_file(file);
    }
    collector.close_idle(idle, true)?;
    // Records unattributed when their request was read may have been tied to a session
    // by a later one: report those still not tied to any.
    summary.report.unattributed = collector.pending_count();
    summary.rollouts = touched.into_iter().collect();
    Ok(summary)
}
