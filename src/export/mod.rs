//! export: enriched, semantic spans from rollout graphs, sent on over OTLP; and the
//! pass-through of the original telemetry (`--forward-endpoint`).
//!
//! - [`spans`]: a pure function from a graph to the spans of its complete objects
//!   (`invoke_agent codex` → `turn` → `chat {model}` / `execute_tool {tool}`), with
//!   GenAI and OpenInference attributes.
//! - [`ids`]: deterministic trace and span ids, so nothing is ever sent twice under
//!   different ids.
//! - [`queue`]: the bounded, durable queue (one per sender) and the
//!   persistent set of spans already enqueued. Default limit 256 MiB of unsent data;
//!   when full, *new* batches are refused (counted, logged, offered again later),
//!   queued ones are never dropped.
//! - [`send_task`]: the background sending task of a queue, and its graceful stop.
//! - [`retry`]: backoff and server-requested delays, shared by both senders.
//! - [`sender`]: OTLP/gRPC and OTLP/HTTP (protobuf) clients for any signal, over
//!   http or https, and retry classification.
//! - [`exporter`]: [`Exporter`], the entry point: `start`, `offer`, `shutdown`.
//! - [`feed`]: follows the collector's changes and offers changed graphs (serve).
//! - [`forward`]: [`Forwarder`], Codex's original requests passed through untouched
//!   (`--forward-endpoint`), through a durable queue of their own.
//!
//! ```no_run
//! # async fn demo(graph: rollout_collector::reduce::graph::RolloutGraph) -> anyhow::Result<()> {
//! use rollout_collector::export::{ExportConfig, Exporter};
//! let exporter = Exporter::start(ExportConfig::new("http://127.0.0.1:4317"), "data".as_ref())?;
//! exporter.offer(&graph); // after every graph update; cheap, never blocks on the network
//! exporter.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

pub mod config;
pub mod encoded_codec;
pub mod exporter;
pub mod feed;
pub mod forward;
pub mod ids;
pub mod joined_request;
pub mod queue;
pub mod retry;
pub mod send_task;
pub mod sender;
pub mod spans;

pub use config::ExportConfig;
pub use exporter::{ExportStats, Exporter, OfferReport, QUEUE_DIR};
pub use forward::{ForwardConfig, ForwardStats, Forwarder};
pub use sender::{Destination, Protocol};
pub use spans::{SpanOptions, build_spans, build_spans_where};
