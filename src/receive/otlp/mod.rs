//! OTLP Export requests read in place from their protobuf: strings, bytes and each
//! record's own encoding are slices of the request, not copies (decoding into owned
//! messages was a fifth of the collector's CPU under load).
//!
//! Accepts and refuses what prost does (see [`wire`]); keeps only what normalize reads.

pub mod common;
pub mod logs;
pub mod metrics;
pub mod request;
pub mod trace;
pub mod wire;

pub use common::{AnyValue, KeyValue, Resource, Scope};
pub use logs::{LogRecord, LogsRequest};
pub use metrics::{MetricRecord, MetricsRequest};
pub use request::{Record, Request};
pub use trace::{Span, SpanEvent, TracesRequest};
pub use wire::DecodeError;
