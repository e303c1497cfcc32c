//! `GET /api/status`: what the collector received, and how far export and forwarding
//! got (queued, sent, retried, dropped), so a user can see that nothing is being lost.

use crate::export::{Exporter, Forwarder};
use crate::receive::ingest::Ingestor;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Clone)]
pub struct StatusSources {
    pub ingestor: Ingestor,
    pub exporter: Option<Arc<Exporter>>,
    pub forwarder: Option<Arc<Forwarder>>,
}

impl StatusSources {
    pub fn status(&self) -> Value {
        let c = &self.ingestor.counters;
        let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
        let ((in_memory, evicted), waiting) = {
            let collector = self
                .ingestor
                .collector
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            (collector.session_counts(), collector.pending_count())
        };
        json!({
            "sessions": {
                "in_memory": in_memory,
                "evicted": evicted,
            },
            "received": {
                "requests": load(&c.requests),
                "records": load(&c.records),
                "duplicate_records": load(&c.duplicates),
                "unattributed_records": load(&c.unattributed),
                // Unattributed records kept (since start, or from before a restart)
                // that may still move into their session.
                "waiting_for_session": waiting,
                "refused_requests": load(&c.rejected_requests),
                "requests_in_flight": self.ingestor.requests_in_flight(),
            },
            "export": self.exporter.as_ref().map(|e| {
                let s = e.stats();
                json!({
                    "enqueued_spans": s.enqueued_spans,
                    "refused_spans": s.refused_spans,
                    "sent_spans": s.sent_spans,
                    "sent_requests": s.sent_requests,
                    "retries": s.retries,
                    "dropped_spans": s.dropped_spans,
                    "rejected_spans": s.rejected_spans,
                    "queue_bytes": s.queue_bytes,
                    "queue_max_bytes": s.queue_max_bytes,
                    "last_error": s.last_error,
                })
            }),
            "forward": self.forwarder.as_ref().map(|f| {
                let s = f.stats();
                json!({
                    "enqueued_requests": s.enqueued_requests,
                    "refused_requests": s.refused_requests,
                    "sent_requests": s.sent_requests,
                    "retries": s.retries,
                    "dropped_requests": s.dropped_requests,
                    "queue_bytes": s.queue_bytes,
                    "queue_max_bytes": s.queue_max_bytes,
                    "last_error": s.last_error,
                })
            }),
        })
    }
}

pub fn router(sources: StatusSources) -> axum::Router {
    axum::Router::new()
        .route(
            "/api/status",
            get(|State(s): State<StatusSources>| async move { axum::Json(s.status()) }),
        )
        .with_state(sources)
}
