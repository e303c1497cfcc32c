//! What the span exporter is told: where to send, how, and what to include.

use super::queue::DEFAULT_MAX_BYTES;
use super::retry::RetryPolicy;
use super::sender::Destination;
use super::spans::SpanOptions;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportConfig {
    /// The downstream: endpoint, protocol, headers, TLS, gzip, timeout.
    pub to: Destination,
    /// Put prompt text, tool arguments and output on spans. Off by default.
    pub include_content: bool,
    /// Cap of each content value, in bytes.
    pub content_cap_bytes: usize,
    /// Limit of unsent data in the durable queue, in bytes (default 256 MiB).
    pub queue_max_bytes: u64,
    /// Most spans in one export request.
    pub batch_max_spans: usize,
    /// Most encoded bytes in one export request (a single larger span still goes).
    pub batch_max_bytes: usize,
    pub retry: RetryPolicy,
}

impl ExportConfig {
    /// Defaults for everything but the endpoint.
    pub fn new(endpoint: impl Into<String>) -> ExportConfig {
        ExportConfig {
            to: Destination::new(endpoint),
            include_content: false,
            content_cap_bytes: SpanOptions::default().content_cap_bytes,
            queue_max_bytes: DEFAULT_MAX_BYTES,
            batch_max_spans: 512,
            batch_max_bytes: 2 * 1024 * 1024,
            retry: RetryPolicy::default(),
        }
    }

    pub fn span_options(&self) -> SpanOptions {
        SpanOptions {
            include_content: self.include_content,
            content_cap_bytes: self.content_cap_bytes,
        }
    }
}
