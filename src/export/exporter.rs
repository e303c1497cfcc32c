//! The exporter: graphs in ([`Exporter::offer`]), OTLP out, through the durable queue.
//!
//! `offer` is synchronous and never waits on the network: it builds the spans of the
//! graph's complete objects, drops those already enqueued once (the persistent
//! sent-set), and appends the rest to the queue as batches. A background tokio task
//! drains the queue: it merges queued batches into requests of at most
//! `batch_max_spans` spans, sends them, and retries retryable failures for ever with
//! deterministic exponential backoff (or the delay the server asked for), so a
//! downstream outage only makes the queue grow. A batch is removed from the queue only
//! once the downstream accepted it (or refused it for good: counted and logged as
//! `dropped_spans`).

use super::config::ExportConfig;
use super::joined_request::JoinedRequest;
use super::queue::{DiskQueue, QueueError, sent_key};
use super::retry::wait_or_stop;
use super::send_task::SendTask;
use super::sender::{SendError, Transport};
use super::spans::{SpanOptions, build_spans_where, resource, scope};
use crate::normalize::Signal;
use crate::reduce::graph::RolloutGraph;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The queue's folder under the data directory.
pub const QUEUE_DIR: &str = "export-queue";

/// Counters since start, plus the queue's fill.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Spans appended to the queue.
    pub enqueued_spans: u64,
    /// Spans not enqueued because the queue was full (offered again later).
    pub refused_spans: u64,
    /// Spans the downstream accepted.
    pub sent_spans: u64,
    pub sent_requests: u64,
    /// Failed attempts that will be retried.
    pub retries: u64,
    /// Spans the downstream refused for good (a permanent error), or unreadable.
    pub dropped_spans: u64,
    /// Spans the downstream reported rejected in a partial success.
    pub rejected_spans: u64,
    pub queue_bytes: u64,
    pub queue_max_bytes: u64,
    pub last_error: Option<String>,
}

/// What one [`Exporter::offer`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OfferReport {
    /// Spans of the graph's complete objects.
    pub complete_spans: usize,
    /// Of those, newly enqueued.
    pub enqueued_spans: usize,
    /// Of those, refused (queue full or I/O error); a later offer retries them.
    pub refused_spans: usize,
}

struct Shared {
    queue: Mutex<DiskQueue>,
    notify: Notify,
    stats: watch::Sender<ExportStats>,
    span_options: SpanOptions,
    batch_max_spans: usize,
    batch_max_bytes: usize,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, DiskQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Exporter {
    shared: Arc<Shared>,
    sending: SendTask,
}

impl Exporter {
    /// Opens (or creates) the queue in `<data_dir>/export-queue/` and starts the
    /// sending task. Must be called within a tokio runtime. Fails on a bad endpoint or
    /// headers, or if the queue cannot be opened; an unreachable endpoint is no error.
    pub fn start(config: ExportConfig, data_dir: &Path) -> anyhow::Result<Exporter> {
        let transport = Transport::new(&config.to)?;
        let queue = DiskQueue::open(&data_dir.join(QUEUE_DIR), config.queue_max_bytes)?;
        let stats = ExportStats {
            queue_bytes: queue.used_bytes(),
            queue_max_bytes: queue.max_bytes(),
            ..ExportStats::default()
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            notify: Notify::new(),
            stats: watch::Sender::new(stats),
            span_options: config.span_options(),
            batch_max_spans: config.batch_max_spans.max(1),
            batch_max_bytes: config.batch_max_bytes.max(1024),
        });
        let sending = SendTask::spawn(|stop| send_loop(shared.clone(), transport, config, stop));
        Ok(Exporter { shared, sending })
    }

    /// Enqueues the spans of `graph`'s complete objects that were never enqueued
    /// before. Cheap when nothing is new; never waits on the downstream.
    pub fn offer(&self, graph: &RolloutGraph) -> OfferReport {
        let mut queue = self.shared.queue();
        let mut report = self.enqueue_new(&mut queue, graph);
        self.finish_offers(queue, std::iter::once(&mut report));
        report
    }

    /// [`Exporter::offer`] for each graph, with one fsync for them all. Each graph is
    /// asked for when its turn comes, so only one is held at a time.
    pub fn offer_each(
        &self,
        graphs: impl IntoIterator<Item = Arc<RolloutGraph>>,
    ) -> Vec<(String, OfferReport)> {
        let mut offered = Vec::new();
        for graph in graphs {
            let mut queue = self.shared.queue();
            let report = self.enqueue_new(&mut queue, &graph);
            drop(queue);
            offered.push((graph.rollout_id.clone(), report));
        }
        self.finish_offers(
            self.shared.queue(),
            offered.iter_mut().map(|(_, report)| report),
        );
        offered
    }

    /// Appends the graph's new spans to the queue (not yet durable) and marks them.
    fn enqueue_new(&self, queue: &mut DiskQueue, graph: &RolloutGraph) -> OfferReport {
        let trace_id = super::ids::trace_id(&graph.rollout_id);
        let already_sent = std::cell::Cell::new(0usize);
        let new = build_spans_where(graph, &self.shared.span_options, &|span_id| {
            let sent = queue.is_sent(&sent_key(&trace_id, span_id));
            if sent {
                already_sent.set(already_sent.get() + 1);
            }
            !sent
        });
        let mut report = OfferReport {
            complete_spans: already_sent.get() + new.len(),
            ..OfferReport::default()
        };
        let total_new = new.len();
        for chunk in chunk_spans(
            new,
            self.shared.batch_max_spans,
            self.shared.batch_max_bytes,
        ) {
            let keys: Vec<[u8; 24]> = chunk
                .iter()
                .map(|s| sent_key(&s.trace_id, &s.span_id))
                .collect();
            let record = request_of(chunk).encode_to_vec();
            // The keys reach the sent-set file only after the record is fsynced: a
            // crash in between re-sends (same ids), never loses.
            match queue.append(&record) {
                Ok(()) => {
                    queue.mark_sent(&keys);
                    report.enqueued_spans += keys.len();
                }
                Err(e) => {
                    if matches!(e, QueueError::Full { .. }) {
                        tracing::warn!(rollout_id = %graph.rollout_id, error = %e,
                            "export queue full: spans refused, will be offered again");
                    } else {
                        tracing::error!(rollout_id = %graph.rollout_id, error = %e,
                            "export queue: cannot enqueue spans");
                    }
                    self.shared
                        .stats
                        .send_modify(|s| s.last_error = Some(e.to_string()));
                    break;
                }
            }
        }
        report.refused_spans = total_new - report.enqueued_spans;
        report
    }

    /// Makes what the offers enqueued durable and updates the stats. If the fsync
    /// fails, every span they enqueued counts as refused (offered again later).
    fn finish_offers<'r>(
        &self,
        mut queue: MutexGuard<'_, DiskQueue>,
        reports: impl Iterator<Item = &'r mut OfferReport>,
    ) {
        let synced = queue.sync();
        if let Err(e) = &synced {
            tracing::error!(error = %e, "export queue: cannot make spans durable");
            self.shared
                .stats
                .send_modify(|s| s.last_error = Some(e.to_string()));
        }
        let queue_bytes = queue.used_bytes();
        drop(queue);
        let (mut enqueued, mut refused) = (0, 0);
        for report in reports {
            if synced.is_err() {
                report.refused_spans += report.enqueued_spans;
                report.enqueued_spans = 0;
            }
            enqueued += report.enqueued_spans;
            refused += report.refused_spans;
        }
        self.shared.stats.send_modify(|s| {
            s.enqueued_spans += enqueued as u64;
            s.refused_spans += refused as u64;
            s.queue_bytes = queue_bytes;
        });
        if enqueued > 0 {
            self.shared.notify.notify_one();
        }
    }

    pub fn stats(&self) -> ExportStats {
        self.shared.stats.borrow().clone()
    }

    /// Follows the stats as they change (for health endpoints, or to wait in tests).
    pub fn watch_stats(&self) -> watch::Receiver<ExportStats> {
        self.shared.stats.subscribe()
    }

    /// Waits up to `grace` for the queue to drain, then stops the sending task. What
    /// is still queued stays on disk and is sent after the next start.
    pub async fn shutdown(&self, grace: Duration) {
        let mut stats = self.watch_stats();
        let drained = stats.wait_for(|s| s.queue_bytes == 0);
        self.sending.stop_after(drained, grace).await;
    }
}

/// One request with the collector's resource and scope.
pub fn request_of(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn chunk_spans(spans: Vec<Span>, max_spans: usize, max_bytes: usize) -> Vec<Vec<Span>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for span in spans {
        let len = span.encoded_len() + 8;
        if !current.is_empty() && (current.len() >= max_spans || bytes + len > max_bytes) {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += len;
        current.push(span);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// A request assembled from the head of the queue.
struct Batch {
    /// Its encoding (shared, not copied, by each attempt to send it).
    body: Bytes,
    spans: usize,
    ack: super::queue::Position,
    /// Records that could not be decoded (skipped, counted as dropped).
    corrupt_records: usize,
}

/// Joins queued requests (their resources and scopes, as encoded) into one of at most
/// `batch_max_spans` spans, unless the first alone has more.
fn next_batch(shared: &Shared) -> Result<Option<Batch>, QueueError> {
    let queue = shared.queue();
    let peeked = queue.peek(shared.batch_max_spans, shared.batch_max_bytes)?;
    drop(queue);
    let mut joined = JoinedRequest::default();
    let mut ack = None;
    let mut corrupt_records = 0;
    for (record, position) in &peeked.records {
        let Ok(request) = JoinedRequest::read(record) else {
            tracing::error!("export queue: undecodable record skipped");
            ack = Some(*position);
            corrupt_records += 1;
            continue;
        };
        if joined.spans() > 0 && joined.spans() + request.spans() > shared.batch_max_spans {
            break;
        }
        joined.join(request);
        ack = Some(*position);
    }
    Ok(ack.map(|ack| Batch {
        body: Bytes::from(joined.encode()),
        spans: joined.spans(),
        ack,
        corrupt_records,
    }))
}

async fn send_loop(
    shared: Arc<Shared>,
    mut transport: Transport,
    config: ExportConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempt: u32 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        // Register interest before looking, so an offer in between is not missed.
        let notified = shared.notify.notified();
        let batch = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || next_batch(&shared)).await
        };
        let batch = match batch {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "export queue: cannot read");
                shared
                    .stats
                    .send_modify(|s| s.last_error = Some(e.to_string()));
                if wait_or_stop(&mut stop, config.retry.max_backoff).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "export queue: reader panicked");
                return;
            }
        };
        let Some(batch) = batch else {
            tokio::select! {
                _ = notified => {}
                _ = stop.changed() => return,
            }
            continue;
        };
        if batch.spans == 0 {
            // Only undecodable records: skip them.
            if ack(&shared, &batch, |_| {}).await.is_err() {
                return;
            }
            continue;
        }
        let outcome = tokio::select! {
            r = transport.send(Signal::Traces, batch.body.clone()) => r,
            _ = stop.changed() => return,
        };
        match outcome {
            Ok(sent) => {
                attempt = 0;
                if sent.rejected > 0 {
                    tracing::warn!(rejected = sent.rejected, message = %sent.message,
                        "export: downstream rejected some spans");
                }
                let spans = batch.spans as u64;
                let update = |s: &mut ExportStats| {
                    s.sent_spans += spans;
                    s.sent_requests += 1;
                    s.rejected_spans += sent.rejected.max(0) as u64;
                };
                if ack(&shared, &batch, update).await.is_err() {
                    return;
                }
            }
            Err(SendError::Retryable { delay, message }) => {
                let delay = config.retry.delay(attempt, delay);
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = %message, retry_in = ?delay, "export: downstream unavailable, will retry");
                shared.stats.send_modify(|s| {
                    s.retries += 1;
                    s.last_error = Some(message);
                });
                if wait_or_stop(&mut stop, delay).await {
                    return;
                }
            }
            Err(SendError::Permanent { message }) => {
                attempt = 0;
                tracing::error!(error = %message, spans = batch.spans,
                    "export: downstream refused spans for good; dropped");
                let spans = batch.spans as u64;
                let update = |s: &mut ExportStats| {
                    s.dropped_spans += spans;
                    s.last_error = Some(message);
                };
                if ack(&shared, &batch, update).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Removes a batch from the queue and applies `update` to the stats in the same step
/// (so a watcher sees the queue shrink and the counters move together). Err: the
/// queue is unusable; the task ends.
async fn ack(
    shared: &Arc<Shared>,
    batch: &Batch,
    update: impl FnOnce(&mut ExportStats),
) -> Result<(), ()> {
    let position = batch.ack;
    let corrupt = batch.corrupt_records as u64;
    let s2 = shared.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut queue = s2.queue();
        queue.ack(position).map(|()| queue.used_bytes())
    })
    .await;
    match result {
        Ok(Ok(queue_bytes)) => {
            shared.stats.send_modify(|s| {
                s.queue_bytes = queue_bytes;
                s.dropped_spans += corrupt;
                update(s);
            });
            Ok(())
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "export queue: cannot record progress; export stopped");
            shared
                .stats
                .send_modify(|s| s.last_error = Some(e.to_string()));
            Err(())
        }
        Err(_) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u8) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            name: "x".into(),
            ..Span::default()
        }
    }

    #[test]
    fn chunks_by_count_and_bytes() {
        let spans: Vec<Span> = (1..=5).map(span).collect();
        let chunks = chunk_spans(spans.clone(), 2, usize::MAX);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        let chunks = chunk_spans(spans, 100, 1);
        assert_eq!(chunks.len(), 5);
    }
}
