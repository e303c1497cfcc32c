//! The collector: normalized records in, durable bundles and live graphs out.
//!
//! It attributes each record to a rollout (Codex's conversation id; a sub-agent's
//! records join the rollout of the parent that spawned it; spans without a
//! conversation id join by trace or turn id), drops records already stored (the same
//! record sent twice), appends the rest to the rollout's bundle, and updates the
//! rollout's graph. Records that cannot be attributed yet are stored in the
//! `unattributed` bundle and moved to their rollout once a later record ties their
//! trace to it.
//!
//! A record sent twice is found by its id in the set of the rollout it belongs to
//! (or among the records still waiting for their session). Those sets leave memory
//! with their rollout's events when it is evicted, and come back with them.

use crate::attribution::{Attribution, RolloutId};
use crate::changes::RolloutChanges;
use crate::fast_hash::HashMap;
use crate::normalize::raw_event::{RAW_EVENT_SCHEMA_VERSION, RawPayloadRef};
use crate::normalize::{ExecutionStatus, NormalizedRecord, RawEvent, RawEventPayload, Signal};
use crate::pending::{Pending, PendingRecords, StoredLines, WaitingRecordReader, waiting_in_log};
use crate::proto::RolloutSummary;
use crate::query::summary::summarize;
use crate::reduce::graph::RolloutGraph;
use crate::reduce::{RolloutSnapshot, RolloutState};
use crate::store::bundle::StoredEvent;
use crate::store::event_line::{EventLine, EvidenceLine, SharedLineParts};
use crate::store::seen::SeenRecords;
use crate::store::spare::SpareBundles;
use crate::store::wal::{Ticket, Wal, WalBatch};
use crate::store::{Bundle, DataDir, METRICS, UNATTRIBUTED};
use anyhow::Result;
use std::sync::Arc;
use tokio::sync::broadcast;

/// What one ingest did, for the Export answer and the counters.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicates: usize,
    /// Records kept as unattributed evidence (not tied to a session yet).
    pub unattributed: usize,
    pub rollouts_touched: Vec<String>,
}

pub struct Collector {
    pub data_dir: DataDir,
    bundles: HashMap<String, Bundle>,
    /// Rollouts whose events are in memory (and the `unattributed` and `metrics`
    /// bundles' counts).
    pub rollouts: HashMap<String, RolloutState>,
    /// Sessions whose events were let go of (finished and quiet; read back from their
    /// bundles when needed): what `list` shows of each, its `rollout_id` left empty
    /// (it is the key).
    evicted: HashMap<RolloutId, RolloutSummary>,
    /// Which rollout each conversation, trace and turn belongs to.
    ids: Attribution,
    /// The ids of the records stored in each rollout in memory (and in `metrics`).
    seen: HashMap<String, SeenRecords>,
    /// Records waiting for their session.
    pending: PendingRecords,
    changes: Arc<RolloutChanges>,
    /// When each rollout last received a record (for the idle close).
    last_received: HashMap<String, std::time::Instant>,
    /// Group commit: bundle changes are made durable through this log.
    pub wal: Arc<Wal>,
    /// Changes made since the last [`Wal::log`].
    batch: WalBatch,
    /// Empty bundles made ahead for new sessions (`serve` only).
    spares: Option<SpareBundles>,
    /// At most this many bundles hold their files open (see
    /// [`crate::store::open_files`]); known once first needed.
    max_open_bundles: Option<usize>,
    /// How many bundles hold files open, at most: counted up as records open a
    /// bundle's files, and made exact by [`Collector::limit_open_files`].
    bundles_with_open_files: usize,
}

impl Collector {
    /// Opens the data directory and replays every bundle in it.
    pub fn open(data_dir: DataDir) -> Result<Collector> {
        std::fs::create_dir_all(&data_dir.root)?;
        // What an earlier run acknowledged but did not checkpoint goes into the bundles
        // before they are read.
        let wal = Wal::open(&data_dir.root)?;
        let mut collector = Collector {
            batch: wal.batch(),
            wal,
            data_dir,
            bundles: HashMap::default(),
            rollouts: HashMap::default(),
            evicted: HashMap::default(),
            ids: Attribution::default(),
            seen: HashMap::default(),
            pending: PendingRecords::default(),
            changes: Arc::default(),
            last_received: HashMap::default(),
            spares: None,
            max_open_bundles: None,
            bundles_with_open_files: 0,
        };
        for dir in collector.data_dir.rollout_dirs() {
            let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            if collector.data_dir.set_aside_if_never_acknowledged(&dir)? {
                continue;
            }
            collector.replay_bundle(&dir, &name)?;
        }
        // Unattributed records not moved yet wait again for their session.
        for special in [UNATTRIBUTED, METRICS] {
            let dir = collector.data_dir.rollout_dir(special);
            if !dir.exists() {
                continue;
            }
            let state = collector
                .rollouts
                .entry(special.to_string())
                .or_insert_with(|| RolloutState::new(special));
            if special == UNATTRIBUTED {
                let bundle = Bundle::opening(&dir, special, 0)?
                    .replay(|event| state.count_record(event.record_id()))?;
                // The records not moved yet wait again for their session. Every session
                // is in memory now: those moved to their rollout before the restart are
                // in its set.
                let waiting = waiting_in_log(&bundle.dir, |named, id| {
                    collector
                        .ids
                        .rollout_named(named)
                        .and_then(|rollout| collector.seen.get(&**rollout))
                        .is_some_and(|seen| seen.contains(id))
                })?;
                collector.pending = PendingRecords::restored(waiting);
                collector.bundles.insert(special.to_string(), bundle);
                continue;
            }
            let mut ids = Vec::new();
            let bundle = Bundle::opening(&dir, special, 0)?.replay(|event| {
                ids.extend(event.record_id().and_then(SeenRecords::id_of));
                state.count_record(event.record_id());
            })?;
            collector
                .seen
                .entry(special.to_string())
                .or_default()
                .insert_all(ids);
            collector.bundles.insert(special.to_string(), bundle);
        }
        // Pending records whose session became known before a crash cut the move short.
        // The ids read back were tied before the records waiting were listed: all of
        // those are checked at once (`PendingRecords::restored`), not id by id.
        collector.ids.take_newly_tied();
        collector.ingest(Vec::new())?;
        Ok(collector)
    }

    /// Reads a session's bundle back: its events into a new [`RolloutState`], its
    /// record ids into the seen set, its conversations, traces and turns into the
    /// attribution maps, and the bundle, open for appending, into `bundles`.
    fn replay_bundle(&mut self, dir: &std::path::Path, name: &str) -> Result<()> {
        let opening = Bundle::opening(dir, name, 0)?;
        let rollout_id = opening.manifest.rollout_id.clone();
        let shared = self.ids.rollout_id(&rollout_id);
        self.ids.tie_conversation(&rollout_id, &shared);
        for child in &opening.manifest.child_thread_ids {
            self.ids.tie_conversation(child, &shared);
        }
        let state = self
            .rollouts
            .entry(rollout_id.clone())
            .or_insert_with(|| RolloutState::new(&rollout_id));
        let (mut seen, ids) = (Vec::new(), &mut self.ids);
        // Neighbouring events mostly share their trace and turn: tie each once.
        let (mut last_trace, mut last_turn) = (String::new(), String::new());
        let bundle = opening.replay(|event| {
            seen.extend(event.record_id().and_then(SeenRecords::id_of));
            if let Some(trace) = event.trace_id()
                && differs_from_last(&mut last_trace, trace)
            {
                ids.tie_trace(trace, &shared);
            }
            if let Some(turn) = event.codex_turn_id()
                && differs_from_last(&mut last_turn, turn)
            {
                ids.tie_turn(turn, &shared);
            }
            match event {
                StoredEvent::Full(event) => state.push(*event),
                StoredEvent::EvidenceOnly { record_id, .. } => state.count_record(record_id),
            }
        })?;
        self.seen
            .entry(rollout_id.clone())
            .or_default()
            .insert_all(seen);
        // The idle clock of a replayed session starts again.
        self.last_received
            .insert(rollout_id.clone(), std::time::Instant::now());
        self.bundles.insert(rollout_id, bundle);
        Ok(())
    }

    /// Brings an evicted rollout's events back into memory (from its bundle), before
    /// anything reads or adds to them.
    fn make_resident(&mut self, rollout: &str) -> Result<()> {
        if !self.evicted.contains_key(rollout) {
            return Ok(());
        }
        let dir = self.data_dir.rollout_dir(rollout);
        if let Err(err) = self.replay_bundle(&dir, rollout) {
            // Still evicted: what `list` shows of it stays.
            self.rollouts.remove(rollout);
            return Err(err);
        }
        self.evicted.remove(rollout);
        Ok(())
    }

    /// From now on, new sessions' bundles are made ahead of time by a background
    /// thread (see [`crate::store::spare`]), so a new session never waits for the
    /// file system under the collector lock.
    pub fn prepare_spare_bundles(&mut self) -> Result<()> {
        self.spares = Some(SpareBundles::start(&self.data_dir.root)?);
        Ok(())
    }

    /// Subscribes to rollout changes (the id of each rollout whose graph changed).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// Whether any of `records` may never have been stored (a request re-sent whole
    /// was). A record of an evicted rollout counts as new: its ids are not in memory.
    pub fn has_new(&self, records: &[NormalizedRecord]) -> bool {
        records.iter().any(|record| {
            let Some(id) = SeenRecords::id_of(&record.record_id) else {
                return true;
            };
            match self.target_of(record) {
                Some(rollout) => self.seen.get(rollout).is_none_or(|seen| !seen.contains(id)),
                None => !self.pending.contains(id),
            }
        })
    }

    /// The rollouts `records` go to, each with how many go there, and for each record
    /// the index of its rollout in that list (`None`: its session is not known yet).
    /// Each rollout's name is copied once, not once per record.
    fn targets_of(
        &self,
        records: &[NormalizedRecord],
    ) -> (Vec<(String, usize)>, Vec<Option<usize>>) {
        let mut index_of: HashMap<&str, usize> = HashMap::default();
        let mut rollouts: Vec<(String, usize)> = Vec::new();
        let targets = records
            .iter()
            .map(|record| {
                let rollout = self.target_of(record)?;
                let index = *index_of.entry(rollout).or_insert_with(|| {
                    rollouts.push((rollout.to_owned(), 0));
                    rollouts.len() - 1
                });
                rollouts[index].1 += 1;
                Some(index)
            })
            .collect();
        (rollouts, targets)
    }

    /// The rollout a record is stored in once what it names is learned (`None`:
    /// unattributed for now).
    fn target_of(&self, record: &NormalizedRecord) -> Option<&str> {
        match self.rollout_named_by(record) {
            Some(rollout) => Some(rollout),
            None if record.signal == Signal::Metrics => Some(METRICS),
            None => None,
        }
    }

    /// Whether `record` is not stored in `rollout` yet; from now on it counts as
    /// stored there. An evicted rollout is read back first, with its ids.
    fn admit(&mut self, rollout: &str, record: &NormalizedRecord) -> Result<bool> {
        let Some(id) = SeenRecords::id_of(&record.record_id) else {
            return Ok(true);
        };
        self.make_resident(rollout)?;
        Ok(self.seen.entry(rollout.to_string()).or_default().insert(id))
    }

    /// Attributes, stores durably and reduces a batch of records. Returns only once
    /// every event is on disk, and then announces the rollouts it changed.
    pub fn ingest(&mut self, records: Vec<NormalizedRecord>) -> Result<IngestReport> {
        let result = self.store(records);
        // Logged even after an error, so the log matches the files.
        let ticket = self.log_changes()?;
        let report = result?;
        self.wal.wait(ticket)?;
        self.announce(&report.rollouts_touched);
        Ok(report)
    }

    /// Logs every write made since the last call as one write-ahead-log entry; the
    /// writes are durable once `self.wal.wait(ticket)` returns.
    pub fn log_changes(&mut self) -> Result<Ticket> {
        self.wal
            .log(std::mem::replace(&mut self.batch, self.wal.batch()))
    }

    /// Who is told about rollouts that changed: watchers ([`Collector::subscribe`])
    /// and the export feed.
    pub fn changes(&self) -> Arc<RolloutChanges> {
        self.changes.clone()
    }

    fn announce(&self, rollouts: &[String]) {
        for rollout in rollouts {
            self.changes.announce(rollout);
        }
    }

    /// Attributes, writes and reduces records, without making them durable: the
    /// writes go to the write-ahead log with the next [`Collector::log_changes`].
    /// Changes are not announced ([`Collector::changes`], once durable).
    pub fn store(&mut self, records: Vec<NormalizedRecord>) -> Result<IngestReport> {
        let mut report = IngestReport::default();
        let received = records.len();
        // Learning from a record sent twice learns nothing new.
        self.learn(&records)?;
        let (rollouts, targets) = self.targets_of(&records);
        let mut groups: Vec<Vec<NormalizedRecord>> = rollouts
            .iter()
            .map(|(_, records)| Vec::with_capacity(*records))
            .collect();
        let mut unresolved = Vec::new();
        let mut unresolved_ids = SeenRecords::new();
        for (record, target) in records.into_iter().zip(targets) {
            match target {
                Some(group) => groups[group].push(record),
                None => {
                    let new = SeenRecords::id_of(&record.record_id)
                        .is_none_or(|id| !self.pending.contains(id) && unresolved_ids.insert(id));
                    if new {
                        unresolved.push(record);
                    } else {
                        report.duplicates += 1;
                    }
                }
            }
        }
        let mut by_rollout: HashMap<String, Vec<NormalizedRecord>> = rollouts
            .into_iter()
            .map(|(rollout, _)| rollout)
            .zip(groups)
            .collect();
        for (rollout, records) in by_rollout.iter_mut() {
            self.make_resident(rollout)?;
            let seen = self.seen.entry(rollout.clone()).or_default();
            records.retain(|record| {
                let new = SeenRecords::id_of(&record.record_id).is_none_or(|id| seen.insert(id));
                report.duplicates += usize::from(!new);
                new
            });
        }
        by_rollout.retain(|_, records| !records.is_empty());
        report.accepted = received - report.duplicates;
        // Earlier unattributed records, and this batch's, that what we learned ties to a
        // session; what those name (a turn's trace) may tie more of them.
        let now = std::time::Instant::now();
        self.pending.expire(now);
        let mut reader = WaitingRecordReader::new(&self.data_dir.rollout_dir(UNATTRIBUTED));
        loop {
            let mut resolved = Vec::new();
            let learned = self.ids.take_newly_tied();
            let ids = &self.ids;
            let tied = self.pending.take_resolved(&learned, |named| {
                ids.rollout_named(named).map(|r| r.to_string())
            });
            for (rollout, pending) in tied {
                // A record that cannot be read back stays where it is, in `unattributed`;
                // the request that tied it is not failed for it.
                let record = match reader.read(pending) {
                    Ok(record) => record,
                    Err(err) => {
                        tracing::error!(%rollout, "a record waiting for its session could not be read back: {err:#}");
                        continue;
                    }
                };
                // Moved already when a restart cut the move short: not moved twice.
                if self.admit(&rollout, &record)? {
                    resolved.push(record.clone());
                    by_rollout.entry(rollout).or_default().push(record);
                }
            }
            let mut still_unresolved = Vec::new();
            for record in std::mem::take(&mut unresolved) {
                match self.rollout_of(&record) {
                    Some(rollout) => {
                        if self.admit(&rollout, &record)? {
                            resolved.push(record.clone());
                            by_rollout.entry(rollout).or_default().push(record);
                        } else {
                            report.duplicates += 1;
                            report.accepted -= 1;
                        }
                    }
                    None => still_unresolved.push(record),
                }
            }
            unresolved = still_unresolved;
            if resolved.is_empty() {
                break;
            }
            self.learn(&resolved)?;
        }
        if !unresolved.is_empty() {
            report.unattributed = unresolved.len();
            by_rollout.insert(UNATTRIBUTED.to_string(), unresolved);
        }
        let mut targets: Vec<String> = by_rollout.keys().cloned().collect();
        targets.sort();
        for rollout in targets {
            let records = by_rollout.remove(&rollout).unwrap_or_default();
            let (pack_offset, lines) = self.append(&rollout, &records)?;
            if rollout == UNATTRIBUTED {
                // A record with no event could not be read back: it does not wait.
                for (index, (record, lines)) in records.into_iter().zip(lines).enumerate() {
                    if lines.len > 0 {
                        let evidence_at = (pack_offset, index);
                        self.pending
                            .add(Pending::new(record, now, lines, evidence_at));
                    }
                }
            }
            if rollout != UNATTRIBUTED && rollout != METRICS {
                self.last_received.insert(rollout.clone(), now);
                report.rollouts_touched.push(rollout);
            }
        }
        self.limit_open_files();
        Ok(report)
    }

    /// Sets how many bundles may hold their files open at once (by default a quarter
    /// of the open-file limit, see [`crate::store::open_files`]).
    pub fn set_max_open_bundles(&mut self, bundles: usize) {
        self.max_open_bundles = Some(bundles.max(1));
    }

    /// Once more bundles than allowed hold files open, closes the files of the
    /// quietest (by their last record), down to three quarters of the budget, so that
    /// this is not done again at the next request. `unattributed` and `metrics`,
    /// written all the time, go last.
    fn limit_open_files(&mut self) {
        let budget = *self
            .max_open_bundles
            .get_or_insert_with(crate::store::open_files::bundle_budget);
        if self.bundles_with_open_files <= budget {
            return;
        }
        let now = std::time::Instant::now();
        let mut open: Vec<(std::time::Instant, &String)> = self
            .bundles
            .iter()
            .filter(|(_, bundle)| bundle.has_open_files())
            .map(|(id, _)| (self.last_received.get(id).copied().unwrap_or(now), id))
            .collect();
        if open.len() <= budget {
            self.bundles_with_open_files = open.len();
            return;
        }
        open.sort_unstable();
        let quietest: Vec<String> = open[..open.len() - budget * 3 / 4]
            .iter()
            .map(|(_, id)| (*id).clone())
            .collect();
        self.bundles_with_open_files = open.len() - quietest.len();
        for id in quietest {
            if let Some(bundle) = self.bundles.get_mut(&id) {
                bundle.close_files();
            }
        }
    }

    /// Learns which conversation, trace and turn belong to which rollout. A spawned
    /// sub-agent joins its parent's rollout; if its records came first and made a
    /// rollout of their own, that rollout is merged into the parent's.
    fn learn(&mut self, records: &[NormalizedRecord]) -> Result<()> {
        for record in records {
            let Some(conversation) = &record.attribution.conversation_id else {
                continue;
            };
            if self.ids.conversation(conversation).is_none() {
                let own: RolloutId = conversation.as_str().into();
                self.add_conversation(conversation, &own);
            }
        }
        for record in records {
            let (Some(parent), Some(child)) = (
                &record.attribution.conversation_id,
                &record.attribution.spawned_conversation_id,
            ) else {
                continue;
            };
            let rollout = self
                .ids
                .conversation(parent)
                .expect("learned above")
                .clone();
            match self.ids.conversation(child).cloned() {
                None => self.add_conversation(child, &rollout),
                Some(own) if own != rollout => self.merge(&own, &rollout)?,
                Some(_) => {}
            }
        }
        for record in records {
            let Some(rollout) = record
                .attribution
                .conversation_id
                .as_ref()
                .and_then(|c| self.ids.conversation(c))
                .cloned()
            else {
                continue;
            };
            if let Some(trace) = &record.attribution.trace_id {
                self.ids.tie_trace(trace, &rollout);
            }
            if let Some(turn) = &record.attribution.turn_id {
                self.ids.tie_turn(turn, &rollout);
            }
        }
        // Spans naming a known turn tie their whole trace to it.
        for record in records {
            if let (None, Some(turn), Some(trace)) = (
                &record.attribution.conversation_id,
                &record.attribution.turn_id,
                &record.attribution.trace_id,
            ) && let Some(rollout) = self.ids.turn(turn).cloned()
            {
                self.ids.tie_trace(trace, &rollout);
            }
        }
        Ok(())
    }

    /// Moves every event of rollout `from` (a sub-agent seen before its parent's spawn
    /// result) into rollout `into`, payload files included, then removes `from`.
    fn merge(&mut self, from: &str, into: &RolloutId) -> Result<()> {
        self.make_resident(from)?;
        self.make_resident(into)?;
        if let Some(source) = self.bundles.remove(from) {
            self.move_bundle(source, into)?;
        }
        self.rollouts.remove(from);
        self.last_received.remove(from);
        if let Some(ids) = self.seen.remove(from) {
            self.seen.entry(into.to_string()).or_default().absorb(ids);
        }
        let mut moved = self.ids.children_of(from).to_vec();
        moved.push(from.to_string());
        self.ids.move_rollout(from, into);
        for conversation in moved {
            self.list_in_manifest(&conversation, into);
        }
        Ok(())
    }

    fn move_bundle(&mut self, source: Bundle, into: &str) -> Result<()> {
        let events = crate::store::bundle::read_events(
            &source
                .dir
                .join(crate::store::manifest::RAW_EVENT_LOG_FILE_NAME),
        )?;
        self.bundle_with_open_files(into, 0)?;
        let target = self.bundles.get_mut(into).expect("bundle");
        let batch = &mut self.batch;
        let mut moved_payloads: HashMap<(String, Option<u64>), RawPayloadRef> = HashMap::default();
        let mut moved = Vec::with_capacity(events.len());
        for mut event in events {
            if matches!(event.payload, RawEventPayload::RolloutStarted { .. }) {
                continue;
            }
            if let Some(old) = event
                .evidence
                .as_mut()
                .and_then(|ev| ev.raw_payload.as_mut())
            {
                let key = (old.path.clone(), old.offset);
                if !moved_payloads.contains_key(&key) {
                    let records = crate::store::bundle::read_payload(&source.dir, old)?;
                    let (path, offset) = target
                        .append_payload(|out| Ok(serde_json::to_writer(out, &records)?), batch)?;
                    moved_payloads.insert(
                        key.clone(),
                        RawPayloadRef {
                            raw_payload_id: pack_payload_id(offset),
                            kind: old.kind.clone(),
                            path,
                            index: 0,
                            offset: Some(offset),
                        },
                    );
                }
                let new = &moved_payloads[&key];
                old.raw_payload_id = new.raw_payload_id.clone();
                old.path = new.path.clone();
                old.offset = new.offset;
            }
            event.rollout_id = into.to_string();
            moved.push(event);
        }
        target.append_events(&mut moved, batch)?;
        std::fs::remove_dir_all(&source.dir)?;
        batch.remove_dir(&source.dir);
        let state = self
            .rollouts
            .entry(into.to_string())
            .or_insert_with(|| RolloutState::new(into));
        for event in moved {
            state.push(event);
        }
        Ok(())
    }

    fn add_conversation(&mut self, conversation: &str, rollout: &RolloutId) {
        self.ids.tie_conversation(conversation, rollout);
        self.list_in_manifest(conversation, rollout);
    }

    /// Lists a sub-agent's `conversation` in the manifest of `rollout`'s bundle (if
    /// open; a bundle created later lists its rollout's children from `ids`).
    fn list_in_manifest(&mut self, conversation: &str, rollout: &RolloutId) {
        if conversation != &**rollout
            && let Some(bundle) = self.bundles.get_mut(&**rollout)
            && !bundle
                .manifest
                .child_thread_ids
                .iter()
                .any(|c| c == conversation)
        {
            bundle
                .manifest
                .child_thread_ids
                .push(conversation.to_string());
            if let Err(err) = bundle.save_manifest_logged(&mut self.batch) {
                tracing::warn!(%err, rollout = &**rollout, "could not update the manifest");
            }
        }
    }

    fn rollout_of(&self, record: &NormalizedRecord) -> Option<String> {
        self.rollout_named_by(record).map(str::to_owned)
    }

    /// The rollout the ids `record` names are tied to ([`Attribution::rollout_named_by`]).
    fn rollout_named_by(&self, record: &NormalizedRecord) -> Option<&str> {
        let a = &record.attribution;
        self.ids
            .rollout_named_by(
                a.conversation_id.as_deref(),
                a.trace_id.as_deref(),
                a.turn_id.as_deref(),
            )
            .map(|r| &**r)
    }

    /// [`Collector::bundle`], about to be written to: counted among the bundles that
    /// hold files open unless it was already.
    fn bundle_with_open_files(&mut self, rollout: &str, started_at: i64) -> Result<()> {
        let was_open = self
            .bundles
            .get(rollout)
            .is_some_and(|bundle| bundle.has_open_files());
        self.bundle(rollout, started_at)?;
        self.bundles_with_open_files += usize::from(!was_open);
        Ok(())
    }

    fn bundle(&mut self, rollout: &str, started_at: i64) -> Result<&mut Bundle> {
        self.make_resident(rollout)?;
        if !self.bundles.contains_key(rollout) {
            let dir = self.data_dir.rollout_dir(rollout);
            let mut bundle = if dir
                .join(crate::store::manifest::MANIFEST_FILE_NAME)
                .exists()
            {
                Bundle::open(&dir, rollout, started_at)?.0
            } else {
                let spare = match rollout {
                    UNATTRIBUTED | METRICS => None,
                    _ => self.spares.as_ref().and_then(|s| s.take()),
                };
                Bundle::create(&dir, rollout, started_at, spare, &mut self.batch)?
            };
            let mut first = vec![RawEvent {
                schema_version: RAW_EVENT_SCHEMA_VERSION,
                seq: 0,
                wall_time_unix_ms: started_at,
                rollout_id: rollout.to_string(),
                thread_id: None,
                codex_turn_id: None,
                payload: RawEventPayload::RolloutStarted {
                    trace_id: bundle.manifest.trace_id.clone(),
                    root_thread_id: rollout.to_string(),
                },
                evidence: None,
            }];
            bundle.append_events(&mut first, &mut self.batch)?;
            let children = self.ids.children_of(rollout).to_vec();
            if !children.is_empty() {
                bundle.manifest.child_thread_ids = children;
                bundle.save_manifest_logged(&mut self.batch)?;
            }
            let state = self
                .rollouts
                .entry(rollout.to_string())
                .or_insert_with(|| RolloutState::new(rollout));
            state.push(first.remove(0));
            self.bundles.insert(rollout.to_string(), bundle);
        }
        Ok(self.bundles.get_mut(rollout).expect("bundle"))
    }

    /// Appends `records` to `rollout`'s bundle; returns the offset of their payload
    /// line in its pack, and (in `unattributed` only: none otherwise) where each one's
    /// event lines went.
    fn append(
        &mut self,
        rollout: &str,
        records: &[NormalizedRecord],
    ) -> Result<(u64, Vec<StoredLines>)> {
        let started_at = records
            .iter()
            .flat_map(|r| r.events.iter().map(|e| e.wall_time_unix_ms))
            .min()
            .unwrap_or(0);
        self.bundle_with_open_files(rollout, started_at)?;
        let bundle = self.bundles.get_mut(rollout).expect("bundle");
        let kind = format!(
            "otlp_{}",
            records.first().map(|r| r.signal.as_str()).unwrap_or("logs")
        );
        // The records' evidence as a JSON array (what `serde_json` makes of a list of
        // raw values), with room for the whole line: no regrowth.
        let payload = |out: &mut Vec<u8>| {
            out.reserve(
                records
                    .iter()
                    .map(|r| r.evidence.get().len() + 1)
                    .sum::<usize>()
                    + 2,
            );
            out.push(b'[');
            for (index, record) in records.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(record.evidence.get().as_bytes());
            }
            out.push(b']');
            Ok(())
        };
        let (path, offset) = bundle.append_payload(payload, &mut self.batch)?;
        let payload_id = pack_payload_id(offset);
        let shared = SharedLineParts::new(rollout, &payload_id, &kind, &path, offset);
        let mut lines = Vec::with_capacity(records.len() * 2);
        for (index, record) in records.iter().enumerate() {
            let attribution = &record.attribution;
            for pending in &record.events {
                let thread_id = attribution
                    .conversation_id
                    .as_deref()
                    .or(match &pending.payload {
                        RawEventPayload::CodexTurnStarted { thread_id, .. } => thread_id.as_deref(),
                        _ => None,
                    });
                lines.push(EventLine::new(
                    pending.wall_time_unix_ms,
                    &shared,
                    thread_id,
                    attribution.turn_id.as_deref(),
                    &pending.payload,
                    EvidenceLine {
                        record_id: &record.record_id,
                        signal: record.signal.as_str(),
                        trace_id: attribution.trace_id.as_deref(),
                        span_id: attribution.span_id.as_deref(),
                        parent_span_id: attribution.parent_span_id.as_deref(),
                        index,
                    },
                ));
            }
        }
        // Where each record's lines went matters only for records that wait.
        let mut stored = Vec::new();
        if rollout == UNATTRIBUTED {
            let mut ends = Vec::with_capacity(lines.len());
            let at = bundle.append_events_measured(&mut lines, &mut ends, &mut self.batch)?;
            stored = StoredLines::of_records(records, at, &ends);
        } else {
            bundle.append_events(&mut lines, &mut self.batch)?;
        }
        let state = self
            .rollouts
            .entry(rollout.to_string())
            .or_insert_with(|| RolloutState::new(rollout));
        let keeps_events = rollout != UNATTRIBUTED && rollout != METRICS;
        for line in &lines {
            if keeps_events {
                state.push_line(line);
            } else {
                state.count_record(Some(line.evidence.record_id));
            }
        }
        Ok((offset, stored))
    }

    /// Closes rollouts that went quiet: those with no record received for `idle`
    /// (live), or, with `by_event_time`, whose last event is older than `idle` (import).
    pub fn close_idle(
        &mut self,
        idle: std::time::Duration,
        by_event_time: bool,
    ) -> Result<Vec<String>> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let now = std::time::Instant::now();
        let (mut to_close, mut to_evict) = (Vec::new(), Vec::new());
        for (id, state) in self.rollouts.iter_mut() {
            if id == UNATTRIBUTED || id == METRICS {
                continue;
            }
            let quiet = if by_event_time {
                now_ms - state.last_wall_time_unix_ms >= idle.as_millis() as i64
            } else {
                self.last_received
                    .get(id)
                    .is_none_or(|t| now.duration_since(*t) >= idle)
            };
            // Quiet first: is_open may reduce the rollout, and most are not quiet.
            if !quiet {
                continue;
            }
            if state.is_open() {
                to_close.push((id.clone(), state.last_wall_time_unix_ms));
            } else {
                // Finished, and the export feed has seen it finish (a sweep ago).
                to_evict.push(id.clone());
            }
        }
        for id in to_evict {
            self.evict(&id);
        }
        to_close.sort();
        let mut closed = Vec::new();
        for (id, last) in to_close {
            let mut events = vec![RawEvent {
                schema_version: RAW_EVENT_SCHEMA_VERSION,
                seq: 0,
                wall_time_unix_ms: last,
                rollout_id: id.clone(),
                thread_id: None,
                codex_turn_id: None,
                payload: RawEventPayload::RolloutEnded {
                    status: ExecutionStatus::Completed,
                    reason: "idle_timeout".into(),
                },
                evidence: None,
            }];
            self.bundle(&id, last)?;
            let bundle = self.bundles.get_mut(&id).expect("bundle");
            bundle.append_events(&mut events, &mut self.batch)?;
            // A closed session is seldom written to again: it need not hold files.
            bundle.close_files();
            if let Some(state) = self.rollouts.get_mut(&id) {
                state.push(events.remove(0));
            }
            closed.push(id);
        }
        if !closed.is_empty() {
            self.wal
                .commit(std::mem::replace(&mut self.batch, self.wal.batch()))?;
            self.announce(&closed);
        }
        Ok(closed)
    }

    /// Lets go of a finished rollout's events and closes its bundle's files; both
    /// come back from the bundle if a record or a query needs them.
    fn evict(&mut self, rollout_id: &str) {
        let Some(mut state) = self.rollouts.remove(rollout_id) else {
            return;
        };
        let mut summary = summarize(&state.snapshot().graph());
        summary.rollout_id = String::new();
        self.evicted
            .insert(self.ids.rollout_id(rollout_id), summary);
        self.bundles.remove(rollout_id);
        self.seen.remove(rollout_id);
        // Its idle clock starts again if it is read back.
        self.last_received.remove(rollout_id);
    }

    pub fn graph(&mut self, rollout_id: &str) -> Option<Arc<RolloutGraph>> {
        if rollout_id == UNATTRIBUTED || rollout_id == METRICS {
            return None;
        }
        self.resident_state(rollout_id).map(|s| s.graph())
    }

    /// A rollout's events as of now, to reduce without holding the collector (the
    /// export feed: it looks at a rollout once per change and keeps no graph).
    pub fn snapshot(&mut self, rollout_id: &str) -> Option<RolloutSnapshot> {
        if rollout_id == UNATTRIBUTED || rollout_id == METRICS {
            return None;
        }
        self.resident_state(rollout_id).map(|s| s.snapshot())
    }

    /// What `list` shows of a rollout (kept without the events once it is evicted).
    pub fn summary(&mut self, rollout_id: &str) -> Option<RolloutSummary> {
        if let Some(kept) = self.evicted.get(rollout_id) {
            return Some(RolloutSummary {
                rollout_id: rollout_id.to_string(),
                ..kept.clone()
            });
        }
        self.snapshot(rollout_id).map(|s| summarize(&s.graph()))
    }

    /// A rollout's state with its events in memory (read back if it was evicted).
    fn resident_state(&mut self, rollout_id: &str) -> Option<&mut RolloutState> {
        if let Err(err) = self.make_resident(rollout_id) {
            tracing::error!(%err, rollout_id, "could not read an evicted session back from its bundle");
            return None;
        }
        self.rollouts.get_mut(rollout_id)
    }

    /// Ids of every rollout (sessions only).
    pub fn rollout_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .rollouts
            .keys()
            .filter(|k| k.as_str() != UNATTRIBUTED && k.as_str() != METRICS)
            .cloned()
            .chain(self.evicted.keys().map(|k| k.to_string()))
            .collect();
        ids.sort();
        ids
    }

    /// Sessions whose events are in memory, and sessions evicted (finished and quiet;
    /// their events are read back from their bundles when needed).
    pub fn session_counts(&self) -> (usize, usize) {
        let resident = self
            .rollouts
            .keys()
            .filter(|id| id.as_str() != UNATTRIBUTED && id.as_str() != METRICS)
            .count();
        (resident, self.evicted.len())
    }

    /// Records kept as unattributed evidence that are still waiting for their session.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Counts of what is kept outside sessions: (unattributed records, metric records).
    pub fn outside_counts(&self) -> (u64, u64) {
        let count = |k: &str| self.rollouts.get(k).map(|s| s.record_count).unwrap_or(0);
        (count(UNATTRIBUTED), count(METRICS))
    }
}

/// The id of the payload stored at `offset` of a bundle's payload pack.
fn pack_payload_id(offset: u64) -> String {
    format!("raw_payload:pack@{offset}")
}

/// Whether `id` differs from the one seen last (`last`, then set to `id`):
/// neighbouring events mostly share their trace and turn, tied once for all.
fn differs_from_last(last: &mut String, id: &str) -> bool {
    if id == last.as_str() {
        return false;
    }
    last.clear();
    last.push_str(id);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Attribution as RecordIds, PendingEvent};
    use crate::store::manifest::RAW_EVENT_LOG_FILE_NAME;

    fn record(n: u8, conversation: Option<&str>, trace: &str) -> NormalizedRecord {
        NormalizedRecord {
            record_id: format!("{n:024x}"),
            signal: if conversation.is_some() {
                Signal::Logs
            } else {
                Signal::Traces
            },
            attribution: RecordIds {
                conversation_id: conversation.map(str::to_string),
                trace_id: Some(trace.to_string()),
                ..Default::default()
            },
            events: vec![PendingEvent {
                wall_time_unix_ms: 1_795_312_060_000 + i64::from(n),
                payload: RawEventPayload::OtelSpan {
                    name: format!("span {n}"),
                },
            }],
            evidence: crate::normalize::RecordJson::of(&serde_json::json!({ "n": n })).unwrap(),
        }
    }

    fn records_in(collector: &mut Collector, rollout: &str) -> u64 {
        collector.graph(rollout).unwrap().telemetry.record_count
    }

    /// The bundle files under `dir` this process holds open.
    fn open_bundle_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| {
                target.starts_with(dir)
                    && target.file_name().is_some_and(|name| {
                        name == RAW_EVENT_LOG_FILE_NAME
                            || name == crate::store::bundle::PAYLOAD_PACK
                    })
            })
            .count()
    }

    #[test]
    fn sessions_past_the_open_file_budget_close_their_files_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let mut collector = Collector::open(DataDir::new(&root)).unwrap();
        collector.set_max_open_bundles(4);
        // 12 sessions, written to in turn three times: most appends go to a bundle
        // whose files were closed for the quieter ones.
        let (sessions, rounds) = (12u8, 3u8);
        for round in 0..rounds {
            for session in 0..sessions {
                let n = round * sessions + session;
                let conversation = format!("conversation-{session}");
                collector
                    .ingest(vec![record(n, Some(&conversation), &format!("trace-{n}"))])
                    .unwrap();
                // Two files per bundle, for at most 4 bundles.
                let open = open_bundle_files(&root);
                assert!(open <= 8, "{open} bundle files open after record {n}");
            }
        }
        let check = |collector: &mut Collector| {
            for session in 0..sessions {
                let rollout = format!("conversation-{session}");
                assert_eq!(records_in(collector, &rollout), u64::from(rounds));
                let log = std::fs::read_to_string(
                    DataDir::new(&root)
                        .rollout_dir(&rollout)
                        .join(RAW_EVENT_LOG_FILE_NAME),
                )
                .unwrap();
                // `rollout_started` and one line per record, numbered without a gap.
                let seqs: Vec<u64> = log
                    .lines()
                    .map(|line| serde_json::from_str::<RawEvent>(line).unwrap().seq)
                    .collect();
                assert_eq!(seqs, (1..=u64::from(rounds) + 1).collect::<Vec<_>>());
            }
        };
        check(&mut collector);
        // A restart opens no bundle file until one is written to.
        drop(collector);
        let mut collector = Collector::open(DataDir::new(&root)).unwrap();
        assert_eq!(open_bundle_files(&root), 0);
        check(&mut collector);
    }

    #[test]
    fn records_waiting_for_their_session_join_it_when_their_trace_is_tied_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::open(DataDir::new(dir.path())).unwrap();
        let report = collector
            .ingest(vec![record(1, None, "trace-1"), record(2, None, "trace-2")])
            .unwrap();
        assert_eq!(report.unattributed, 2);
        assert_eq!(collector.pending_count(), 2);

        // A log record of the session names trace-1: the span waiting on it moves.
        collector
            .ingest(vec![record(3, Some("conversation"), "trace-1")])
            .unwrap();
        assert_eq!(collector.pending_count(), 1);
        assert_eq!(records_in(&mut collector, "conversation"), 2);

        // After a restart the other span still waits, and moves once trace-2 is tied.
        drop(collector);
        let mut collector = Collector::open(DataDir::new(dir.path())).unwrap();
        assert_eq!(collector.pending_count(), 1);
        assert_eq!(records_in(&mut collector, "conversation"), 2);
        collector
            .ingest(vec![record(4, Some("conversation"), "trace-2")])
            .unwrap();
        assert_eq!(collector.pending_count(), 0);
        assert_eq!(records_in(&mut collector, "conversation"), 4);

        // Each moved record took its evidence along, read back from where it waited.
        let pack = std::fs::read_to_string(
            DataDir::new(dir.path())
                .rollout_dir("conversation")
                .join(crate::store::bundle::PAYLOAD_PACK),
        )
        .unwrap();
        for n in 1..=4 {
            assert_eq!(pack.matches(&format!("{{\"n\":{n}}}")).count(), 1, "{pack}");
        }

        // Moved records do not wait again after the next restart, and are not doubled.
        drop(collector);
        let mut collector = Collector::open(DataDir::new(dir.path())).unwrap();
        assert_eq!(collector.pending_count(), 0);
        assert_eq!(records_in(&mut collector, "conversation"), 4);
    }

    #[test]
    fn a_waiting_record_moves_with_all_its_events_and_ids() {
        // Held whole (it came last), and read back from its lines after a restart.
        for restart in [false, true] {
            a_waiting_record_moves_with_all_its_events_and_ids_after(restart);
        }
    }

    fn a_waiting_record_moves_with_all_its_events_and_ids_after(restart: bool) {
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::open(DataDir::new(dir.path())).unwrap();
        // One request of records with one, two and three events.
        let with_events = |n: u8, count: usize| {
            let mut r = record(n, None, "trace-1");
            r.attribution.span_id = Some(format!("span-{n}"));
            r.attribution.turn_id = Some("turn-1".into());
            r.events = (0..count)
                .map(|i| PendingEvent {
                    wall_time_unix_ms: 1_795_312_060_000 + i as i64,
                    payload: RawEventPayload::OtelSpan {
                        name: format!("span {n}.{i}"),
                    },
                })
                .collect();
            r
        };
        let waiting = vec![with_events(1, 1), with_events(2, 2), with_events(3, 3)];
        collector.ingest(waiting.clone()).unwrap();
        assert_eq!(collector.pending_count(), 3);
        if restart {
            drop(collector);
            collector = Collector::open(DataDir::new(dir.path())).unwrap();
            assert_eq!(collector.pending_count(), 3);
        }
        collector
            .ingest(vec![record(4, Some("conversation"), "trace-1")])
            .unwrap();
        assert_eq!(collector.pending_count(), 0);

        let events = crate::store::bundle::read_events(
            &DataDir::new(dir.path())
                .rollout_dir("conversation")
                .join(RAW_EVENT_LOG_FILE_NAME),
        )
        .unwrap();
        for record in &waiting {
            let moved: Vec<_> = events
                .iter()
                .filter(|e| {
                    e.evidence
                        .as_ref()
                        .is_some_and(|ev| ev.record_id == record.record_id)
                })
                .collect();
            let payloads: Vec<_> = moved.iter().map(|e| e.payload.clone()).collect();
            let expected: Vec<_> = record.events.iter().map(|e| e.payload.clone()).collect();
            assert_eq!(payloads, expected);
            for event in moved {
                let ev = event.evidence.as_ref().unwrap();
                assert_eq!(ev.trace_id.as_deref(), Some("trace-1"));
                assert_eq!(ev.span_id, record.attribution.span_id);
                assert_eq!(event.codex_turn_id.as_deref(), Some("turn-1"));
                assert_eq!(event.rollout_id, "conversation");
            }
        }
    }

    #[test]
    fn a_waiting_record_that_cannot_be_read_back_does_not_fail_the_request_that_ties_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::open(DataDir::new(dir.path())).unwrap();
        collector.ingest(vec![record(1, None, "trace-1")]).unwrap();
        // After a restart it waits as where it is (not held whole), and its event line
        // is then damaged on disk (same length, no longer JSON).
        drop(collector);
        let mut collector = Collector::open(DataDir::new(dir.path())).unwrap();
        assert_eq!(collector.pending_count(), 1);
        let log = DataDir::new(dir.path())
            .rollout_dir(UNATTRIBUTED)
            .join(RAW_EVENT_LOG_FILE_NAME);
        let damaged: Vec<u8> = std::fs::read(&log)
            .unwrap()
            .into_iter()
            .map(|b| if b == b'\n' { b } else { b'x' })
            .collect();
        std::fs::write(&log, damaged).unwrap();

        let report = collector
            .ingest(vec![record(2, Some("conversation"), "trace-1")])
            .unwrap();
        assert_eq!(report.accepted, 1);
        assert_eq!(collector.pending_count(), 0);
        assert_eq!(records_in(&mut collector, "conversation"), 1);
    }
}
