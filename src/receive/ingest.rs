//! The one path every receiver takes: normalize, then store durably through the
//! collector, with a bound on requests waiting for storage (backpressure).

use super::decode::ExportRequest;
use crate::collector::{Collector, IngestReport};
use crate::export::Forwarder;
use crate::export::queue::QueueError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, watch};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
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
}

impl Ingestor {
    pub fn new(
        collector: Arc<Mutex<Collector>>,
        max_pending_requests: usize,
        max_message_bytes: usize,
    ) -> Self {
        Ingestor {
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

    /// Stores a request; returns once its events are durable.
    pub async fn ingest(&self, request: ExportRequest) -> Result<IngestReport, IngestError> {
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            self.counters
                .rejected_requests
                .fetch_add(1, Ordering::Relaxed);
            return Err(IngestError::Busy);
        };
        let collector = self.collector.clone();
        let forwarder = self.forwarder.clone();
        let report = tokio::task::spawn_blocking(move || {
            let records = request.normalize();
            // Encoded before taking the lock (only needed when forwarding).
            let forward = forwarder.map(|f| (f, request.signal(), request.encode()));
            let mut collector = collector.lock().unwrap_or_else(|p| p.into_inner());
            // Forwarded first: a request refused because the forward queue is full is
            // stored and forwarded when sent again. One re-sent whole (all its records
            // stored already) is not forwarded twice.
            if let Some((forwarder, signal, body)) = forward
                && (records.is_empty() || collector.has_new(&records))
            {
                forwarder.enqueue(signal, &body).map_err(|e| match e {
                    QueueError::Full { .. } => IngestError::ForwardQueueFull(e.to_string()),
                    other => IngestError::Storage(other.to_string()),
                })?;
            }
            let (report, ticket) = collector
                .ingest_logged(records)
                .map_err(|e| IngestError::Storage(format!("{e:#}")))?;
            let (wal, changes) = (collector.wal.clone(), collector.change_sender());
            // Group commit: the fsync happens without the lock, shared with the
            // requests stored meanwhile. The answer waits for it.
            drop(collector);
            wal.wait(ticket)
                .map_err(|e| IngestError::Storage(format!("{e:#}")))?;
            for rollout in &report.rollouts_touched {
                let _ = changes.send(rollout.clone());
            }
            Ok(report)
        })
        .await
        .map_err(|e| IngestError::Storage(e.to_string()))??;
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
