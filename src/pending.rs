//! Records waiting for their session.
//!
//! A record that names no conversation, trace or turn the collector knows is stored in
//! the `unattributed` bundle and waits here, for [`PENDING_TTL`], to be moved into its
//! session once one of the ids it names is tied to one. Some such records are a turn's
//! spans that came before the log records tying their trace to the session; others
//! never find a session: each `codex exec` run exports about 230 spans of startup and
//! plumbing traces that no session record names.
//!
//! A waiting record is kept as the ids it names and where its lines are on disk (the
//! newest also whole), read back when it moves; after a restart the records still
//! waiting are found again in the `unattributed` log ([`waiting_in_log`]).
//!
//! Each waiting record is listed under the ids it names, so what a request teaches is
//! checked against the records waiting on those ids only. (Checking every waiting
//! record on every request cost time in proportion to how many wait: tens of thousands
//! with a few hundred Codex runs in ten minutes.)

use crate::attribution::NamedIds;
use crate::normalize::raw_event::{RawEvent, RawPayloadRef};
use crate::normalize::{Attribution, NormalizedRecord, PendingEvent, RecordJson, Signal};
use crate::store::bundle::{EventLineReader, for_each_line, read_pack_line, read_payload};
use crate::store::manifest::RAW_EVENT_LOG_FILE_NAME;
use crate::store::seen::{RecordIdTable, SeenRecords};
use anyhow::{Context, Result};
use serde_json::value::RawValue;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long an unattributed record waits for the record that ties it to a session.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// At most this many records wait (about 0.2 KB each, with the tables); past it the
/// oldest stop waiting first. Under heavy load the wait is then shorter than
/// [`PENDING_TTL`] (50,000 is about 10 s of records when half of 10,000 a second
/// wait, as with short `codex exec` runs), which still covers a turn's spans that come
/// a few seconds before the log records tying their trace: Codex exports each signal
/// on its own schedule.
pub const MAX_PENDING: usize = 50_000;

/// Of the newest this many records that came to wait, those still waiting are also
/// held whole (without their evidence, about 1 KB each): most records that find their
/// session do so within a few requests (a turn's spans sent just before the log records
/// naming their trace), and are then moved without reading their events back. Older
/// ones wait as [`Pending`] alone.
pub const HELD_WHOLE: usize = 4_096;

/// A record waiting for its session: what finds it a session, and where it is. The
/// record itself (its events, ids and evidence) is in the `unattributed` bundle, read
/// back if it finds its session ([`WaitingRecordReader`]); the newest are also held
/// whole ([`HELD_WHOLE`]).
#[derive(Debug)]
pub struct Pending {
    pub received: Instant,
    pub record_id: Option<u128>,
    /// The conversation, trace and turn it names.
    pub named: NamedIds,
    /// Its event lines in the `unattributed` bundle's `trace.jsonl`.
    pub lines: StoredLines,
    held: Option<Box<HeldRecord>>,
}

/// A waiting record held whole, without its evidence, and where that is: the offset of
/// its line in the `unattributed` payload pack, and its index there.
#[derive(Debug)]
struct HeldRecord {
    record: NormalizedRecord,
    evidence_at: (u64, usize),
}

/// Where a record's event lines are in a bundle's `trace.jsonl` (a record's events are
/// stored together).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredLines {
    pub offset: u64,
    pub len: u32,
}

impl StoredLines {
    /// Where the event lines of each of `records` went, from where their lines went
    /// (`offset` and `ends`, as [`crate::store::Bundle::append_events_measured`] gives
    /// them).
    pub fn of_records(
        records: &[NormalizedRecord],
        offset: u64,
        ends: &[usize],
    ) -> Vec<StoredLines> {
        let mut start = 0;
        let mut next_line = 0;
        records
            .iter()
            .map(|record| {
                next_line += record.events.len();
                let end = next_line.checked_sub(1).map_or(start, |last| ends[last]);
                let lines = StoredLines {
                    offset: offset + start as u64,
                    len: (end - start) as u32,
                };
                start = end;
                lines
            })
            .collect()
    }
}

impl Pending {
    /// `record`, waiting from `received`, stored in `lines`; held whole (until
    /// [`HELD_WHOLE`] newer records wait) with `evidence_at`, the offset of its payload
    /// line in the `unattributed` pack and its index there.
    pub fn new(
        mut record: NormalizedRecord,
        received: Instant,
        lines: StoredLines,
        evidence_at: (u64, usize),
    ) -> Self {
        let a = &record.attribution;
        let named = NamedIds::new(
            a.conversation_id.as_deref(),
            a.trace_id.as_deref(),
            a.turn_id.as_deref(),
        );
        let record_id = SeenRecords::id_of(&record.record_id);
        record.evidence = RecordJson::null();
        Pending {
            received,
            record_id,
            named,
            lines,
            held: Some(Box::new(HeldRecord {
                record,
                evidence_at,
            })),
        }
    }

    /// A record read back after a restart: not held whole.
    pub fn stored(record_id: u128, named: NamedIds, received: Instant, lines: StoredLines) -> Self {
        Pending {
            received,
            record_id: Some(record_id),
            named,
            lines,
            held: None,
        }
    }
}

/// A waiting record rebuilt from its event lines (`events`, in order): its events and
/// the ids its lines keep, without its evidence; and where that evidence is. `None` if
/// the lines hold no record's event.
///
/// A waiting record names no conversation (one that names a conversation has a
/// session); its service name and version are not kept (the rollout takes them from
/// its own records).
pub fn stored_record(events: Vec<RawEvent>) -> Option<(NormalizedRecord, RawPayloadRef)> {
    let mut events = events.into_iter();
    let first = events.next()?;
    let evidence = first.evidence?;
    let payload = evidence.raw_payload?;
    let mut record = NormalizedRecord {
        record_id: evidence.record_id,
        signal: Signal::parse(&evidence.signal).unwrap_or(Signal::Logs),
        attribution: Attribution {
            trace_id: evidence.trace_id,
            span_id: evidence.span_id,
            parent_span_id: evidence.parent_span_id,
            turn_id: first.codex_turn_id,
            ..Default::default()
        },
        events: vec![PendingEvent {
            wall_time_unix_ms: first.wall_time_unix_ms,
            payload: first.payload,
        }],
        evidence: RecordJson::null(),
    };
    record.events.extend(events.map(|event| PendingEvent {
        wall_time_unix_ms: event.wall_time_unix_ms,
        payload: event.payload,
    }));
    Some((record, payload))
}

/// The unattributed records in `bundle_dir`'s `trace.jsonl` still waiting for their
/// session (the newest [`MAX_PENDING`]), leaving out those already moved to a rollout
/// (`moved`: given what the record names and its id). Only what each line needs to
/// wait is read.
pub fn waiting_in_log(
    bundle_dir: &Path,
    moved: impl Fn(&NamedIds, u128) -> bool,
) -> Result<Vec<Pending>> {
    #[derive(serde::Deserialize)]
    struct WaitingLine<'a> {
        #[serde(borrow)]
        codex_turn_id: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        evidence: Option<WaitingEvidence<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct WaitingEvidence<'a> {
        #[serde(borrow)]
        record_id: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        trace_id: Option<std::borrow::Cow<'a, str>>,
    }
    let received = std::time::Instant::now();
    let mut waiting: VecDeque<Pending> = VecDeque::new();
    let mut last_record: Option<u128> = None;
    for_each_line(&bundle_dir.join(RAW_EVENT_LOG_FILE_NAME), |offset, line| {
        let parsed: WaitingLine = serde_json::from_slice(line)
            .with_context(|| format!("bad unattributed event line at {offset}"))?;
        let Some(id) = parsed
            .evidence
            .as_ref()
            .and_then(|ev| SeenRecords::id_of(&ev.record_id))
        else {
            last_record = None;
            return Ok(());
        };
        let len = line.len() as u32 + 1;
        // A record's events are stored together.
        if last_record == Some(id) {
            if let Some(last) = waiting.back_mut().filter(|last| last.record_id == Some(id)) {
                last.lines.len += len;
            }
            return Ok(());
        }
        last_record = Some(id);
        let named = NamedIds::new(
            None,
            parsed
                .evidence
                .as_ref()
                .and_then(|ev| ev.trace_id.as_deref()),
            parsed.codex_turn_id.as_deref(),
        );
        if moved(&named, id) {
            return Ok(());
        }
        waiting.push_back(Pending::stored(
            id,
            named,
            received,
            StoredLines { offset, len },
        ));
        if waiting.len() > MAX_PENDING {
            waiting.pop_front();
        }
        Ok(())
    })?;
    Ok(waiting.into())
}

/// Reads waiting records back from the `unattributed` bundle (`trace.jsonl` for the
/// record, the payload pack for its evidence), keeping the pack lines it read: the
/// records of one request share one.
pub struct WaitingRecordReader {
    bundle_dir: PathBuf,
    /// `trace.jsonl`, opened at the first read.
    log: Option<EventLineReader>,
    pack_lines: HashMap<u64, Vec<Box<RawValue>>>,
}

impl WaitingRecordReader {
    pub fn new(bundle_dir: &Path) -> Self {
        WaitingRecordReader {
            bundle_dir: bundle_dir.to_path_buf(),
            log: None,
            pack_lines: HashMap::new(),
        }
    }

    /// The record `pending` waits with, whole: its events, ids and evidence.
    pub fn read(&mut self, pending: Pending) -> Result<NormalizedRecord> {
        if let Some(held) = pending.held {
            let HeldRecord {
                mut record,
                evidence_at: (line_at, index),
            } = *held;
            record.evidence = self.pack_evidence(line_at, index)?;
            return Ok(record);
        }
        let log = match &mut self.log {
            Some(log) => log,
            None => self.log.insert(EventLineReader::open(
                &self.bundle_dir.join(RAW_EVENT_LOG_FILE_NAME),
            )?),
        };
        let StoredLines { offset, len } = pending.lines;
        let (mut record, payload) = stored_record(log.read(offset, len as usize)?)
            .with_context(|| format!("no waiting record in the event lines at {offset}"))?;
        record.evidence = match payload.offset {
            Some(line_at) => self.pack_evidence(line_at, payload.index)?,
            // A payload file of a bundle written before packs.
            None => RecordJson::of(
                read_payload(&self.bundle_dir, &payload)?
                    .get(payload.index)
                    .unwrap_or(&serde_json::Value::Null),
            )?,
        };
        Ok(record)
    }

    /// Record `index` of the payload pack line at `line_at`.
    fn pack_evidence(&mut self, line_at: u64, index: usize) -> Result<RecordJson> {
        let line = match self.pack_lines.entry(line_at) {
            Entry::Occupied(line) => line.into_mut(),
            Entry::Vacant(slot) => slot.insert(read_pack_line(&self.bundle_dir, line_at)?),
        };
        let evidence = line
            .get_mut(index)
            .with_context(|| format!("no record {index} in the payload line at {line_at}"))?;
        Ok(std::mem::replace(evidence, RawValue::NULL.to_owned()).into())
    }
}

#[derive(Default)]
pub struct PendingRecords {
    /// By arrival number.
    waiting: HashMap<u64, Pending>,
    /// Arrival numbers, oldest first: the order records expire in. Numbers of records
    /// taken out meanwhile stay until they reach the front (or the queue is compacted).
    arrivals: VecDeque<u64>,
    next_arrival: u64,
    /// The arrival numbers of the records naming each conversation, trace and turn id
    /// (by [`crate::attribution::id_key`]).
    by_id: HashMap<u128, Vec<u64>>,
    /// The record ids of the records waiting (to tell a record sent twice).
    record_ids: RecordIdTable,
    /// The arrival numbers of the records held whole, oldest first (some may have been
    /// taken out since).
    held: VecDeque<u64>,
    /// Every record is checked at the next [`PendingRecords::take_resolved`]: they were
    /// read back after a restart, and the ids learned meanwhile were not listed.
    check_all: bool,
}

impl PendingRecords {
    /// Records read back from the `unattributed` bundle; all are checked at the next
    /// [`PendingRecords::take_resolved`].
    pub fn restored(records: Vec<Pending>) -> Self {
        let mut pending = PendingRecords::default();
        for waiting in records {
            pending.add(waiting);
        }
        pending.check_all = true;
        pending
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Whether the record with this id is waiting.
    pub fn contains(&self, record_id: u128) -> bool {
        self.record_ids.contains(&record_id)
    }

    pub fn add(&mut self, waiting: Pending) {
        if let Some(id) = waiting.record_id {
            self.record_ids.insert(id);
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        for key in waiting.named.keys() {
            let waiting = self.by_id.entry(key).or_default();
            if waiting.last() != Some(&arrival) {
                waiting.push(arrival);
            }
        }
        self.arrivals.push_back(arrival);
        if waiting.held.is_some() {
            self.held.push_back(arrival);
            if self.held.len() > HELD_WHOLE
                && let Some(oldest) = self.held.pop_front()
                && let Some(older) = self.waiting.get_mut(&oldest)
            {
                older.held = None;
            }
        }
        self.waiting.insert(arrival, waiting);
    }

    /// Takes out, in the order they came, the records that `rollout_of` ties to a
    /// rollout now, among those naming one of the ids `learned` (by
    /// [`crate::attribution::id_key`]).
    pub fn take_resolved(
        &mut self,
        learned: &[u128],
        rollout_of: impl Fn(&NamedIds) -> Option<String>,
    ) -> Vec<(String, Pending)> {
        if self.waiting.is_empty() {
            self.check_all = false;
            return Vec::new();
        }
        let mut candidates: Vec<u64> = if std::mem::take(&mut self.check_all) {
            self.waiting.keys().copied().collect()
        } else {
            learned
                .iter()
                .filter_map(|key| self.by_id.get(key))
                .flatten()
                .copied()
                .collect()
        };
        candidates.sort_unstable();
        candidates.dedup();
        let mut resolved = Vec::new();
        for arrival in candidates {
            let Some(rollout) = self
                .waiting
                .get(&arrival)
                .and_then(|p| rollout_of(&p.named))
            else {
                continue;
            };
            if let Some(pending) = self.remove(arrival) {
                resolved.push((rollout, pending));
            }
        }
        resolved
    }

    /// Lets go of the records that have waited [`PENDING_TTL`] by `now`, and of the
    /// oldest past [`MAX_PENDING`] (they stay in the `unattributed` bundle).
    pub fn expire(&mut self, now: Instant) {
        self.expire_past(now, MAX_PENDING);
    }

    fn expire_past(&mut self, now: Instant, max: usize) {
        while let Some(&oldest) = self.arrivals.front() {
            match self.waiting.get(&oldest) {
                Some(pending)
                    if now.duration_since(pending.received) < PENDING_TTL
                        && self.waiting.len() <= max =>
                {
                    break;
                }
                Some(_) => {
                    self.remove(oldest);
                }
                None => {}
            }
            self.arrivals.pop_front();
        }
        // Records taken out behind one still waiting: keep the queue about as long as
        // what waits.
        if self.arrivals.len() > 64 + 2 * self.waiting.len() {
            let waiting = &self.waiting;
            self.arrivals
                .retain(|arrival| waiting.contains_key(arrival));
        }
    }

    fn remove(&mut self, arrival: u64) -> Option<Pending> {
        let pending = self.waiting.remove(&arrival)?;
        if let Some(id) = pending.record_id {
            self.record_ids.remove(&id);
        }
        for key in pending.named.keys() {
            if let Some(waiting) = self.by_id.get_mut(&key) {
                waiting.retain(|a| *a != arrival);
                if waiting.is_empty() {
                    self.by_id.remove(&key);
                }
            }
        }
        Some(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::id_key;

    const LINES: StoredLines = StoredLines { offset: 0, len: 0 };

    fn id(n: u8) -> Option<u128> {
        SeenRecords::id_of(&record(n, None, None).record_id)
    }

    /// Record `n`, waiting from `at` (its lines anywhere, not held whole).
    fn waiting(n: u8, trace: Option<&str>, turn: Option<&str>, at: Instant) -> Pending {
        let named = NamedIds::new(None, trace, turn);
        Pending::stored(id(n).unwrap(), named, at, LINES)
    }

    fn record(n: u8, trace: Option<&str>, turn: Option<&str>) -> NormalizedRecord {
        NormalizedRecord {
            record_id: format!("{n:024x}"),
            signal: Signal::Traces,
            attribution: Attribution {
                trace_id: trace.map(str::to_string),
                turn_id: turn.map(str::to_string),
                ..Default::default()
            },
            events: Vec::new(),
            evidence: RecordJson::of(&n).unwrap(),
        }
    }

    #[test]
    fn only_records_naming_a_learned_id_are_checked_and_come_out_in_arrival_order() {
        let now = Instant::now();
        let mut pending = PendingRecords::default();
        pending.add(waiting(1, Some("trace-a"), None, now));
        pending.add(waiting(2, Some("trace-b"), Some("turn-b"), now));
        pending.add(waiting(3, None, Some("turn-a"), now));
        pending.add(waiting(4, Some("trace-a"), None, now));
        // Everything would resolve, but only what names trace-a or turn-a is asked.
        let resolved = pending.take_resolved(&[id_key("trace-a"), id_key("turn-a")], |_| {
            Some("rollout".to_string())
        });
        let ids: Vec<_> = resolved.iter().map(|(_, p)| p.record_id).collect();
        assert_eq!(ids, [id(1), id(3), id(4)]);
        assert_eq!(pending.len(), 1);
        assert!(pending.contains(2));
        assert!(!pending.contains(1));
        // Not tied yet: stays.
        assert!(
            pending
                .take_resolved(&[id_key("turn-b")], |_| None)
                .is_empty()
        );
        assert_eq!(pending.len(), 1);
        let resolved = pending.take_resolved(&[id_key("turn-b")], |_| Some("r".into()));
        assert_eq!(resolved.len(), 1);
        assert!(pending.is_empty());
        assert!(pending.by_id.is_empty());
    }

    #[test]
    fn restored_records_are_all_checked_once() {
        let now = Instant::now();
        let restored = (1..=3)
            .map(|n| waiting(n, Some(&format!("trace-{n}")), None, now))
            .collect();
        let mut pending = PendingRecords::restored(restored);
        let resolved = pending.take_resolved(&[], |named| {
            (*named == NamedIds::new(None, Some("trace-2"), None)).then(|| "r".to_string())
        });
        assert_eq!(resolved.len(), 1);
        assert!(pending.take_resolved(&[], |_| Some("r".into())).is_empty());
        assert_eq!(pending.len(), 2);
    }

    #[test]
    fn records_expire_oldest_first_and_the_arrival_queue_stays_short() {
        let start = Instant::now();
        let mut pending = PendingRecords::default();
        pending.add(waiting(1, Some("old"), None, start));
        for n in 2..=200u8 {
            pending.add(waiting(n, Some("taken"), None, start + PENDING_TTL / 2));
        }
        pending.add(waiting(201, Some("young"), None, start + PENDING_TTL / 2));
        pending.take_resolved(&[id_key("taken")], |_| Some("r".into()));
        assert_eq!(pending.len(), 2);
        pending.expire(start + PENDING_TTL);
        assert_eq!(pending.len(), 1);
        assert!(pending.contains(201));
        assert!(pending.arrivals.len() <= 64 + 2);
        pending.expire(start + PENDING_TTL * 2);
        assert!(pending.is_empty());
        assert!(pending.arrivals.is_empty());
        assert!(pending.by_id.is_empty());
    }

    #[test]
    fn past_the_most_that_may_wait_the_oldest_stop_waiting() {
        let now = Instant::now();
        let mut pending = PendingRecords::default();
        for n in 1..=10u8 {
            pending.add(waiting(n, Some(&format!("trace-{n}")), None, now));
        }
        pending.expire_past(now, 4);
        assert_eq!(pending.len(), 4);
        assert!((1..=6).all(|n| !pending.contains(n)));
        assert!((7..=10).all(|n| pending.contains(n)));
        assert_eq!(pending.by_id.len(), 4);
    }

    #[test]
    fn a_record_is_rebuilt_from_its_event_lines_without_its_evidence() {
        use crate::normalize::RawEventPayload;
        use crate::normalize::raw_event::{Evidence, RAW_EVENT_SCHEMA_VERSION};
        let payload = RawPayloadRef {
            raw_payload_id: "pack:7".into(),
            kind: "otlp_traces".into(),
            path: "payloads.jsonl".into(),
            index: 3,
            offset: Some(7),
        };
        let line = |seq, wall_time_unix_ms, payload_kind| RawEvent {
            schema_version: RAW_EVENT_SCHEMA_VERSION,
            seq,
            wall_time_unix_ms,
            rollout_id: "unattributed".into(),
            thread_id: None,
            codex_turn_id: Some("turn-1".into()),
            payload: payload_kind,
            evidence: Some(Evidence {
                record_id: "ab".repeat(12),
                signal: "traces".into(),
                trace_id: Some("trace-1".into()),
                span_id: Some("span-1".into()),
                parent_span_id: None,
                raw_payload: Some(payload.clone()),
            }),
        };
        let started = RawEventPayload::CodexTurnStarted {
            codex_turn_id: "turn-1".into(),
            thread_id: None,
            source: "run_turn".into(),
        };
        let ended = RawEventPayload::CodexTurnEnded {
            codex_turn_id: "turn-1".into(),
            source: "run_turn".into(),
        };
        let (record, at) = stored_record(vec![
            line(5, 10, started.clone()),
            line(6, 20, ended.clone()),
        ])
        .unwrap();
        assert_eq!(at, payload);
        assert_eq!(record.record_id, "ab".repeat(12));
        assert_eq!(record.signal, Signal::Traces);
        assert_eq!(record.attribution.trace_id.as_deref(), Some("trace-1"));
        assert_eq!(record.attribution.span_id.as_deref(), Some("span-1"));
        assert_eq!(record.attribution.turn_id.as_deref(), Some("turn-1"));
        assert_eq!(record.attribution.conversation_id, None);
        let events: Vec<_> = record
            .events
            .iter()
            .map(|e| (e.wall_time_unix_ms, e.payload.clone()))
            .collect();
        assert_eq!(events, [(10, started), (20, ended)]);
        assert_eq!(record.evidence.get(), "null");
        assert!(stored_record(Vec::new()).is_none());
        // What it names is what the record named.
        let waiting = Pending::new(record, Instant::now(), LINES, (0, 0));
        assert_eq!(
            waiting.named,
            NamedIds::new(None, Some("trace-1"), Some("turn-1"))
        );
        assert_eq!(waiting.record_id, SeenRecords::id_of(&"ab".repeat(12)));
    }

    #[test]
    fn only_the_newest_waiting_records_are_held_whole() {
        let now = Instant::now();
        let mut pending = PendingRecords::default();
        let count = HELD_WHOLE + 10;
        for n in 0..count {
            let mut r = record(0, Some("trace"), None);
            r.record_id = format!("{n:024x}");
            pending.add(Pending::new(r, now, LINES, (0, n)));
        }
        let held = |arrival: u64| pending.waiting[&arrival].held.is_some();
        assert!((0..10).all(|a| !held(a)));
        assert!((10..count as u64).all(held));
        assert_eq!(pending.held.len(), HELD_WHOLE);
        // A held record keeps its events, not its evidence (that stays in the pack).
        let newest = pending.waiting[&(count as u64 - 1)].held.as_ref().unwrap();
        assert_eq!(newest.evidence_at, (0, count - 1));
        assert_eq!(newest.record.evidence.get(), "null");
    }
}
