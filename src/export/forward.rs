//! `--forward-endpoint`: passes Codex's original telemetry through, untouched, to an
//! existing pipeline.
//!
//! Every Export request the collector accepts is appended, as received (re-encoded
//! protobuf of the same message), to a durable queue in `<data_dir>/forward-queue/`
//! *before* the sender gets its OK, then sent downstream one request at a time by a
//! background task, in order, retrying retryable failures for ever (backoff, or the
//! delay the server asked for). So a downstream outage loses nothing and does not
//! block receiving until the queue is full; then the collector answers
//! RESOURCE_EXHAUSTED / 429 and the sender retries (what it sends again is stored once
//! and forwarded once).

use super::queue::{DiskQueue, QueueError};
use super::retry::{RetryPolicy, wait_or_stop};
use super::send_task::SendTask;
use super::sender::{Destination, SendError, Transport};
use crate::normalize::Signal;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The queue's folder under the data directory.
pub const FORWARD_QUEUE_DIR: &str = "forward-queue";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    pub to: Destination,
    /// Limit of unsent data in the durable queue, in bytes (default 256 MiB).
    pub queue_max_bytes: u64,
    pub retry: RetryPolicy,
}

impl ForwardConfig {
    pub fn new(endpoint: impl Into<String>) -> ForwardConfig {
        ForwardConfig {
            to: Destination::new(endpoint),
            queue_max_bytes: super::queue::DEFAULT_MAX_BYTES,
            retry: RetryPolicy::default(),
        }
    }
}

/// Counters since start, plus the queue's fill.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardStats {
    pub enqueued_requests: u64,
    /// Requests refused because the queue was full (the sender was told to retry).
    pub refused_requests: u64,
    pub sent_requests: u64,
    pub retries: u64,
    /// Requests the downstream refused for good.
    pub dropped_requests: u64,
    pub queue_bytes: u64,
    pub queue_max_bytes: u64,
    pub last_error: Option<String>,
}

struct Shared {
    queue: Mutex<DiskQueue>,
    notify: Notify,
    stats: watch::Sender<ForwardStats>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, DiskQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Forwarder {
    shared: Arc<Shared>,
    sending: SendTask,
}

/// A queued request: one byte naming the signal, then the encoded Export request.
fn record_of(signal: Signal, body: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(body.len() + 1);
    record.push(match signal {
        Signal::Logs => b'l',
        Signal::Traces => b't',
        Signal::Metrics => b'm',
    });
    record.extend_from_slice(body);
    record
}

fn parse_record(record: &[u8]) -> Option<(Signal, &[u8])> {
    let (tag, body) = record.split_first()?;
    let signal = match tag {
        b'l' => Signal::Logs,
        b't' => Signal::Traces,
        b'm' => Signal::Metrics,
        _ => return None,
    };
    Some((signal, body))
}

impl Forwarder {
    /// Opens (or creates) the queue and starts sending. Must be called within a tokio
    /// runtime. Fails on a bad endpoint, headers or CA file, or an unusable queue.
    pub fn start(config: ForwardConfig, data_dir: &Path) -> anyhow::Result<Forwarder> {
        let transport = Transport::new(&config.to)?;
        let queue = DiskQueue::open(&data_dir.join(FORWARD_QUEUE_DIR), config.queue_max_bytes)?;
        let stats = ForwardStats {
            queue_bytes: queue.used_bytes(),
            queue_max_bytes: queue.max_bytes(),
            ..ForwardStats::default()
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            notify: Notify::new(),
            stats: watch::Sender::new(stats),
        });
        let sending = SendTask::spawn(|stop| send_loop(shared.clone(), transport, config, stop));
        Ok(Forwarder { shared, sending })
    }

    /// Appends one Export request durably (blocking I/O: call it off the async
    /// threads). Err(Full) when the queue is at its limit.
    pub fn enqueue(&self, signal: Signal, body: &[u8]) -> Result<(), QueueError> {
        let mut queue = self.shared.queue();
        let result = queue.push(&record_of(signal, body));
        let queue_bytes = queue.used_bytes();
        drop(queue);
        self.shared.stats.send_modify(|s| {
            s.queue_bytes = queue_bytes;
            match &result {
                Ok(()) => s.enqueued_requests += 1,
                Err(e) => {
                    s.refused_requests += 1;
                    s.last_error = Some(e.to_string());
                }
            }
        });
        if result.is_ok() {
            self.shared.notify.notify_one();
        }
        result
    }

    pub fn stats(&self) -> ForwardStats {
        self.shared.stats.borrow().clone()
    }

    pub fn watch_stats(&self) -> watch::Receiver<ForwardStats> {
        self.shared.stats.subscribe()
    }

    /// Waits up to `grace` for the queue to drain, then stops. What is still queued
    /// stays on disk and is sent after the next start.
    pub async fn shutdown(&self, grace: Duration) {
        let mut stats = self.watch_stats();
        let drained = stats.wait_for(|s| s.queue_bytes == 0);
        self.sending.stop_after(drained, grace).await;
    }
}

async fn send_loop(
    shared: Arc<Shared>,
    mut transport: Transport,
    config: ForwardConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempt: u32 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        // Register interest before looking, so an enqueue in between is not missed.
        let notified = shared.notify.notified();
        let s = shared.clone();
        let head = tokio::task::spawn_blocking(move || s.queue().peek(1, usize::MAX)).await;
        let (record, position) = match head {
            Ok(Ok(mut peeked)) if !peeked.records.is_empty() => peeked.records.remove(0),
            Ok(Ok(_)) => {
                tokio::select! {
                    _ = notified => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "forward queue: cannot read");
                shared
                    .stats
                    .send_modify(|s| s.last_error = Some(e.to_string()));
                if wait_or_stop(&mut stop, config.retry.max_backoff).await {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        let outcome = match parse_record(&record) {
            Some((signal, body)) => tokio::select! {
                r = transport.send(signal, bytes::Bytes::copy_from_slice(body)) => r,
                _ = stop.changed() => return,
            },
            None => Err(SendError::Permanent {
                message: "forward queue: unreadable record".into(),
            }),
        };
        let done = match outcome {
            Ok(sent) => {
                attempt = 0;
                if sent.rejected > 0 {
                    tracing::warn!(rejected = sent.rejected, message = %sent.message,
                        "forward: downstream rejected some records");
                }
                Some(Ok(()))
            }
            Err(SendError::Retryable { delay, message }) => {
                let delay = config.retry.delay(attempt, delay);
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = %message, retry_in = ?delay,
                    "forward: downstream unavailable, will retry");
                shared.stats.send_modify(|s| {
                    s.retries += 1;
                    s.last_error = Some(message);
                });
                if wait_or_stop(&mut stop, delay).await {
                    return;
                }
                None
            }
            Err(SendError::Permanent { message }) => {
                attempt = 0;
                tracing::error!(error = %message, "forward: downstream refused a request for good; dropped");
                Some(Err(message))
            }
        };
        let Some(result) = done else { continue };
        let s = shared.clone();
        let acked = tokio::task::spawn_blocking(move || {
            let mut queue = s.queue();
            queue.ack(position).map(|()| queue.used_bytes())
        })
        .await;
        match acked {
            Ok(Ok(queue_bytes)) => shared.stats.send_modify(|s| {
                s.queue_bytes = queue_bytes;
                match result {
                    Ok(()) => s.sent_requests += 1,
                    Err(message) => {
                        s.dropped_requests += 1;
                        s.last_error = Some(message);
                    }
                }
            }),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "forward queue: cannot record progress; forwarding stopped");
                shared
                    .stats
                    .send_modify(|s| s.last_error = Some(e.to_string()));
                return;
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_name_their_signal() {
        for signal in [Signal::Logs, Signal::Traces, Signal::Metrics] {
            let record = record_of(signal, b"\x0a\x00");
            assert_eq!(parse_record(&record), Some((signal, &b"\x0a\x00"[..])));
        }
        assert_eq!(parse_record(b""), None);
        assert_eq!(parse_record(b"x123"), None);
    }
}
