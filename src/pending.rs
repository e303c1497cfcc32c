//! Records waiting for their session.
//!
//! A record that names no conversation, trace or turn the collector knows is stored in
//! the `unattributed` bundle and waits here, for [`PENDING_TTL`], to be moved into its
//! session once one of the ids it names is tied to one. Some such records are a turn's
//! spans that came before the log records tying their trace to the session; others
//! never find a session: each `codex exec` run exports about 230 spans of startup and
//! plumbing traces that no session record names.
//!
//! Each waiting record is listed under the ids it names, so what a request teaches is
//! checked against the records waiting on those ids only. (Checking every waiting
//! record on every request cost time in proportion to how many wait: tens of thousands
//! with a few hundred Codex runs in ten minutes.)

use crate::attribution::id_key;
use crate::normalize::NormalizedRecord;
use crate::store::seen::{RecordIdTable, SeenRecords};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long an unattributed record waits for the record that ties it to a session.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// At most this many records wait (about 0.8 KB each); past it the oldest stop waiting
/// first. Under heavy load the wait is then shorter than [`PENDING_TTL`] (50,000 is
/// about 10 s of records when half of 10,000 a second wait, as with short `codex
/// exec` runs), which still covers a turn's spans that come a few seconds before the
/// log records tying their trace: Codex exports each signal on its own schedule.
pub const MAX_PENDING: usize = 50_000;

/// A record waiting for its session, and when it came.
pub struct Pending {
    pub record: NormalizedRecord,
    pub received: Instant,
    /// Where the record's evidence is in the `unattributed` bundle's payload pack (the
    /// offset of its line, and its index there); `record.evidence` is then left empty
    /// (most of a record's size: read back only if the record finds its session).
    pub evidence_at: Option<(u64, usize)>,
}

impl Pending {
    /// `record`, waiting from `received`; with `evidence_at`, its evidence is dropped
    /// from memory (see [`Pending::evidence_at`]).
    pub fn new(
        mut record: NormalizedRecord,
        received: Instant,
        evidence_at: Option<(u64, usize)>,
    ) -> Self {
        if evidence_at.is_some() {
            record.evidence = serde_json::value::RawValue::NULL.to_owned();
        }
        Pending {
            record,
            received,
            evidence_at,
        }
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
    /// (by [`id_key`]).
    by_id: HashMap<u128, Vec<u64>>,
    /// The record ids of the records waiting (to tell a record sent twice).
    record_ids: RecordIdTable,
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
        if let Some(id) = SeenRecords::id_of(&waiting.record.record_id) {
            self.record_ids.insert(id);
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        for id in ids_named(&waiting.record) {
            let waiting = self.by_id.entry(id_key(id)).or_default();
            if waiting.last() != Some(&arrival) {
                waiting.push(arrival);
            }
        }
        self.arrivals.push_back(arrival);
        self.waiting.insert(arrival, waiting);
    }

    /// Takes out, in the order they came, the records that `rollout_of` ties to a
    /// rollout now, among those naming one of the ids `learned` (by [`id_key`]).
    pub fn take_resolved(
        &mut self,
        learned: &[u128],
        rollout_of: impl Fn(&NormalizedRecord) -> Option<String>,
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
                .and_then(|p| rollout_of(&p.record))
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
        if let Some(id) = SeenRecords::id_of(&pending.record.record_id) {
            self.record_ids.remove(&id);
        }
        for id in ids_named(&pending.record) {
            let key = id_key(id);
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

/// The ids a record names that can tie it to a session.
fn ids_named(record: &NormalizedRecord) -> impl Iterator<Item = &str> {
    let a = &record.attribution;
    [&a.conversation_id, &a.trace_id, &a.turn_id]
        .into_iter()
        .filter_map(|id| id.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Attribution, Signal};

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
            evidence: serde_json::value::to_raw_value(&n).unwrap(),
        }
    }

    #[test]
    fn only_records_naming_a_learned_id_are_checked_and_come_out_in_arrival_order() {
        let now = Instant::now();
        let mut pending = PendingRecords::default();
        pending.add(Pending::new(record(1, Some("trace-a"), None), now, None));
        pending.add(Pending::new(
            record(2, Some("trace-b"), Some("turn-b")),
            now,
            None,
        ));
        pending.add(Pending::new(record(3, None, Some("turn-a")), now, None));
        pending.add(Pending::new(record(4, Some("trace-a"), None), now, None));
        // Everything would resolve, but only what names trace-a or turn-a is asked.
        let resolved = pending.take_resolved(&[id_key("trace-a"), id_key("turn-a")], |_| {
            Some("rollout".to_string())
        });
        let ids: Vec<_> = resolved
            .iter()
            .map(|(_, p)| p.record.record_id.clone())
            .collect();
        assert_eq!(
            ids,
            [
                record(1, None, None).record_id,
                record(3, None, None).record_id,
                record(4, None, None).record_id
            ]
        );
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
            .map(|n| Pending::new(record(n, Some("trace"), None), now, None))
            .collect();
        let mut pending = PendingRecords::restored(restored);
        let resolved = pending.take_resolved(&[], |r| {
            (r.record_id == record(2, None, None).record_id).then(|| "r".to_string())
        });
        assert_eq!(resolved.len(), 1);
        assert!(pending.take_resolved(&[], |_| Some("r".into())).is_empty());
        assert_eq!(pending.len(), 2);
    }

    #[test]
    fn records_expire_oldest_first_and_the_arrival_queue_stays_short() {
        let start = Instant::now();
        let mut pending = PendingRecords::default();
        pending.add(Pending::new(record(1, Some("old"), None), start, None));
        for n in 2..=200u8 {
            pending.add(Pending::new(
                record(n, Some("taken"), None),
                start + PENDING_TTL / 2,
                None,
            ));
        }
        pending.add(Pending::new(
            record(201, Some("young"), None),
            start + PENDING_TTL / 2,
            None,
        ));
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
            pending.add(Pending::new(
                record(n, Some(&format!("trace-{n}")), None),
                now,
                None,
            ));
        }
        pending.expire_past(now, 4);
        assert_eq!(pending.len(), 4);
        assert!((1..=6).all(|n| !pending.contains(n)));
        assert!((7..=10).all(|n| pending.contains(n)));
        assert_eq!(pending.by_id.len(), 4);
    }
}
