//! `opentelemetry.proto.metrics.v1.Metric`: few and small (Codex sends a handful per
//! minute), so each is decoded whole by prost, from its bytes as sent.

use super::request::{Record, Request};
use super::wire::{DecodeError, Depth};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use prost::Message;

/// `ExportMetricsServiceRequest`.
pub type MetricsRequest<'a> = Request<'a, MetricRecord<'a>>;

/// A metric, decoded, and its encoding as sent.
#[derive(Debug, PartialEq)]
pub struct MetricRecord<'a> {
    pub wire: &'a [u8],
    pub metric: Metric,
}

impl<'a> Record<'a> for MetricRecord<'a> {
    fn decode(message: &'a [u8], _depth: Depth) -> Result<Self, DecodeError> {
        let metric = Metric::decode(message).map_err(|e| DecodeError::new(e.to_string()))?;
        Ok(MetricRecord {
            wire: message,
            metric,
        })
    }
}
