//! The one path every receiver takes: decode, normalize, then store durably through
//! the collector, with a bound on requests waiting for storage (backpressure).
//!
//! Requests are decoded (protobuf as it was sent, see [`Received`]) and normalized in
//! parallel (tokio's blocking pool), then stored by one
//! thread, the storer, which takes every request waiting, stores them all under a
//! single hold of the collector lock and logs them as one write-ahead-log entry. A
//! second thread, the syncer, waits for that entry to be fsynced and answers the
//! requests; meanwhile the storer goes on with the next requests. So the collector
//! lock is never contended by requests (no thread holding it is preempted by another
//! waiting for it), and one fsync serves every request that arrived meanwhile.

use super::decode::Received;
use crate::changes::RolloutChanges;
use crate::collector::{Collector, IngestReport};
use crate::export::Forwarder;
use crate::export::queue::QueueError;
use crate::normalize::{NormalizedRecord, Signal};
use crate::store::wal::{Ticket, Wal};
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{Semaphore, oneshot, watch};

/// Most requests the storer takes in one hold of the collector lock.
const MAX_REQUESTS_PER_ROUND: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The request does not decode: INVALID_ARGUMENT / 400, not to be sent again.
    #[error("{0}")]
    Undecodable(String),
    // Busy and ForwardQueueFull answer RESOURCE_EXHAUSTED / 429: the sender retries.
    /// Too many requests are waiting for storage: the sender should retry.
    #[error("the collector is busy storing earlier requests; retry later")]
    Busy,
    /// The `--forward-endpoint` queue is full (the downstream is down): retry later.
    #[error(
        "the forward queue is full (the --forward-endpoint downstream is behind): {0}; retry later"
    )]
    ForwardQueueFull(String),
    #[error("storage failed: {0}")]
    Storage(String),
}

/// Counters for what has been received.
#[derive(Default, Debug)]
pub struct Counters {
    pub requests: AtomicU64,
    pub records: AtomicU64,
    pub duplicates: AtomicU64,
    pub unattributed: AtomicU64,
    pub rejected_requests: AtomicU64,
}

#[derive(Clone)]
pub struct Ingestor {
    pub collector: Arc<Mutex<Collector>>,
    permits: Arc<Semaphore>,
    max_pending_requests: usize,
    pub max_message_bytes: usize,
    pub counters: Arc<Counters>,
    forwarder: Option<Arc<Forwarder>>,
    /// Records accepted so far, for those who wait on progress.
    accepted_records: Arc<watch::Sender<u64>>,
    /// Normalized requests on their way to the storer.
    to_storer: mpsc::Sender<StoreJob>,
}

/// One normalized request for the storer.
struct StoreJob {
    records: Vec<NormalizedRecord>,
    /// The request as received, to forward (`--forward-endpoint`).
    forward: Option<(Arc<Forwarder>, Signal, Bytes)>,
    answer: Answer,
}

impl Ingestor {
    pub fn new(
        collector: Arc<Mutex<Collector>>,
        max_pending_requests: usize,
        max_message_bytes: usize,
    ) -> Self {
        Ingestor {
            to_storer: start_storer(Arc::downgrade(&collector)),
            collector,
            permits: Arc::new(Semaphore::new(max_pending_requests.max(1))),
            max_pending_requests: max_pending_requests.max(1),
            max_message_bytes,
            counters: Arc::new(Counters::default()),
            forwarder: None,
            accepted_records: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Also passes every stored request, untouched, to `forwarder`, before the OK.
    pub fn with_forwarder(mut self, forwarder: Arc<Forwarder>) -> Self {
        self.forwarder = Some(forwarder);
        self
    }

    /// Follows the number of records accepted (stored, duplicates excluded).
    pub fn watch_accepted_records(&self) -> watch::Receiver<u64> {
        self.accepted_records.subscribe()
    }

    /// Requests accepted and not yet stored (each holds one of `max_pending_requests`).
    pub fn requests_in_flight(&self) -> usize {
        self.max_pending_requests - self.permits.available_permits()
    }

    /// Decodes, normalizes and stores a request; returns once its events are durable.
    /// A request that could not be stored is logged: its sender only hears that it
    /// should retry.
    pub async fn ingest(&self, request: Received) -> Result<IngestReport, IngestError> {
        let stored = self.decode_and_store(request).await;
        if let Err(IngestError::Storage(error)) = &stored {
            tracing::error!(%error, "a request was refused (retry later): storing it failed");
        }
        stored
    }

    async fn decode_and_store(&self, request: Received) -> Result<IngestReport, IngestError> {
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            self.counters
                .rejected_requests
                .fetch_add(1, Ordering::Relaxed);
            return Err(IngestError::Busy);
        };
        let forwarder = self.forwarder.clone();
        // Decoded and normalized here, in parallel (tokio's blocking pool), not on the
        // server's threads nor by the storer.
        let job = tokio::task::spawn_blocking(move || {
            let (records, signal, protobuf) = request.normalize(forwarder.is_some())?;
            let forward = forwarder.zip(protobuf).map(|(f, body)| (f, signal, body));
            Ok((records, forward))
        })
        .await
        .map_err(|e| IngestError::Storage(e.to_string()))?
        .map_err(IngestError::Undecodable)?;
        let (answer, answered) = oneshot::channel();
        let (records, forward) = job;
        self.to_storer
            .send(StoreJob {
                records,
                forward,
                answer,
            })
            .map_err(|_| IngestError::Storage("the storer has stopped".into()))?;
        let report = answered
            .await
            .map_err(|_| IngestError::Storage("the storer has stopped".into()))??;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .records
            .fetch_add(report.accepted as u64, Ordering::Relaxed);
        self.counters
            .duplicates
            .fetch_add(report.duplicates as u64, Ordering::Relaxed);
        self.counters
            .unattributed
            .fetch_add(report.unattributed as u64, Ordering::Relaxed);
        self.accepted_records
            .send_modify(|n| *n += report.accepted as u64);
        Ok(report)
    }
}

/// The `partial_success.error_message` for a stored request: records kept but not
/// tied to a session are reported as a warning (none are rejected).
pub fn warning(report: &IngestReport) -> String {
    if report.unattributed == 0 {
        String::new()
    } else {
        format!(
            "{} records carry no Codex conversation id (yet); kept as unattributed evidence",
            report.unattributed
        )
    }
}

/// Starts the storer and the syncer threads (see the module docs). Both end once
/// every [`Ingestor`] is dropped, or the collector is.
fn start_storer(collector: Weak<Mutex<Collector>>) -> mpsc::Sender<StoreJob> {
    let (jobs, incoming) = mpsc::channel::<StoreJob>();
    let (rounds, to_sync) = mpsc::channel::<StoredRound>();
    std::thread::Builder::new()
        .name("ingest-storer".into())
        .spawn(move || store_rounds(collector, incoming, rounds))
        .expect("start the ingest storer thread");
    std::thread::Builder::new()
        .name("ingest-syncer".into())
        .spawn(move || sync_rounds(to_sync))
        .expect("start the ingest syncer thread");
    jobs
}

type Answer = oneshot::Sender<Result<IngestReport, IngestError>>;

/// Requests stored in one round, waiting for their write-ahead-log entry.
struct StoredRound {
    wal: Arc<Wal>,
    ticket: Result<Ticket, String>,
    changes: Arc<RolloutChanges>,
    /// Each request's answer, and what storing it gave (sent once durable).
    outcomes: Vec<(Answer, Result<IngestReport, IngestError>)>,
}

fn store_rounds(
    collector: Weak<Mutex<Collector>>,
    incoming: mpsc::Receiver<StoreJob>,
    rounds: mpsc::Sender<StoredRound>,
) {
    while let Ok(first) = incoming.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_REQUESTS_PER_ROUND {
            match incoming.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let Some(shared) = collector.upgrade() else {
            for job in jobs {
                let _ = job
                    .answer
                    .send(Err(IngestError::Storage("the collector is closed".into())));
            }
            return;
        };
        let mut locked = shared.lock().unwrap_or_else(|p| p.into_inner());
        let outcomes: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let outcome = store_one(&mut locked, job.records, job.forward);
                (job.answer, outcome)
            })
            .collect();
        // One entry for the round; logged even after an error, so it matches the files.
        let ticket = locked.log_changes().map_err(|e| format!("{e:#}"));
        let round = StoredRound {
            wal: locked.wal.clone(),
            ticket,
            changes: locked.changes(),
            outcomes,
        };
        drop(locked);
        // Not held while the answers go out: a server shut down after its last answer
        // closes the collector at once.
        drop(shared);
        if rounds.send(round).is_err() {
            return;
        }
    }
}

/// Stores one request's records (under the collector lock; not yet durable).
fn store_one(
    collector: &mut Collector,
    records: Vec<NormalizedRecord>,
    forward: Option<(Arc<Forwarder>, Signal, Bytes)>,
) -> Result<IngestReport, IngestError> {
    // Forwarded first: a request refused because the forward queue is full is stored
    // and forwarded when sent again. One re-sent whole (all its records stored
    // already) is not forwarded twice.
    if let Some((forwarder, signal, body)) = forward
        && (records.is_empty() || collector.has_new(&records))
    {
        forwarder.enqueue(signal, &body).map_err(|e| match e {
            QueueError::Full { .. } => IngestError::ForwardQueueFull(e.to_string()),
            other => IngestError::Storage(other.to_string()),
        })?;
    }
    collector
        .store(records)
        .map_err(|e| IngestError::Storage(format!("{e:#}")))
}

/// Answers each round's requests once its entry is durable, then announces the
/// rollouts they changed.
fn sync_rounds(to_sync: mpsc::Receiver<StoredRound>) {
    while let Ok(round) = to_sync.recv() {
        let StoredRound {
            wal,
            ticket,
            changes,
            outcomes,
        } = round;
        let durable = match ticket {
            Ok(ticket) => wal.wait(ticket).map_err(|e| format!("{e:#}")),
            Err(e) => Err(e),
        };
        // Let go of the log before answering: once the last request is answered the
        // server may be shut down, and the log must close with the collector.
        drop(wal);
        for (answer, outcome) in outcomes {
            let outcome = match (&durable, outcome) {
                (Ok(()), outcome) => outcome,
                (Err(e), _) => Err(IngestError::Storage(e.clone())),
            };
            if let Ok(report) = &outcome {
                for rollout in &report.rollouts_touched {
                    changes.announce(rollout);
                }
            }
            let _ = answer.send(outcome);
        }
    }
}
