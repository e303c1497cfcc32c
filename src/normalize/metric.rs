//! Codex metrics: aggregates without session ids. Kept and counted, never reduced.

use super::raw_event::RawEventPayload as P;
use super::time::nanos_to_ms;
use super::{
    Attribution, NormalizedRecord, PendingEvent, RecordJson, Signal, record_id, resource_key,
};
use crate::receive::otlp::MetricsRequest;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};

pub fn normalize(request: &MetricsRequest) -> Vec<NormalizedRecord> {
    let mut out = Vec::with_capacity(request.record_count());
    for resource_metrics in &request.resources {
        let resource = resource_key(&resource_metrics.resource);
        for scope_metrics in &resource_metrics.scopes {
            for record in &scope_metrics.records {
                let metric = &record.metric;
                let (points, time) = points_and_time(metric);
                out.push(NormalizedRecord {
                    record_id: record_id(Signal::Metrics, &resource, record.wire),
                    signal: Signal::Metrics,
                    attribution: Attribution::default(),
                    events: vec![PendingEvent {
                        wall_time_unix_ms: time,
                        payload: P::OtelMetric {
                            name: metric.name.clone(),
                            points,
                        },
                    }],
                    evidence: RecordJson::of(&serde_json::json!({
                        "name": metric.name,
                        "unit": metric.unit,
                        "description": metric.description,
                        "points": points,
                    }))
                    .expect("metric evidence serializes"),
                });
            }
        }
    }
    out
}

fn points_and_time(metric: &Metric) -> (usize, i64) {
    let times = |ts: &mut dyn Iterator<Item = u64>| ts.max().map(nanos_to_ms).unwrap_or(0);
    match &metric.data {
        Some(Data::Gauge(g)) => (
            g.data_points.len(),
            times(&mut g.data_points.iter().map(|p| p.time_unix_nano)),
        ),
        Some(Data::Sum(s)) => (
            s.data_points.len(),
            times(&mut s.data_points.iter().map(|p| p.time_unix_nano)),
        ),
        Some(Data::Histogram(h)) => (
            h.data_points.len(),
            times(&mut h.data_points.iter().map(|p| p.time_unix_nano)),
        ),
        Some(Data::ExponentialHistogram(h)) => (
            h.data_points.len(),
            times(&mut h.data_points.iter().map(|p| p.time_unix_nano)),
        ),
        Some(Data::Summary(s)) => (
            s.data_points.len(),
            times(&mut s.data_points.iter().map(|p| p.time_unix_nano)),
        ),
        None => (0, 0),
    }
}
