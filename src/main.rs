//! The `rollout-collector` command line.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rollout_collector::collector::Collector;
use rollout_collector::export::queue::DEFAULT_MAX_BYTES as DEFAULT_QUEUE_MAX_BYTES;
use rollout_collector::export::{ExportConfig, ForwardConfig, Protocol, SpanOptions};
use rollout_collector::normalize::time::format_iso8601_ms;
use rollout_collector::query::{summary, tree};
use rollout_collector::receive::import;
use rollout_collector::serve::{self, ServeConfig};
use rollout_collector::store::DataDir;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "rollout-collector",
    version,
    about = "Receives the Codex CLI's OpenTelemetry, rebuilds each session as a rollout graph \
             (threads, turns, model calls, tool calls), keeps it, and re-exports clean spans.",
    after_help = "Point Codex at it in ~/.codex/config.toml:\n  [otel]\n  exporter = { otlp-grpc = { endpoint = \"http://127.0.0.1:4317\" } }\n  trace_exporter = { otlp-grpc = { endpoint = \"http://127.0.0.1:4317\" } }"
)]
struct Cli {
    /// Data directory (bundles, export queue). Default: $XDG_DATA_HOME/rollout-collector
    /// or ~/.local/share/rollout-collector.
    #[arg(long, global = true, env = "ROLLOUT_COLLECTOR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive OTLP over gRPC and HTTP, keep and reduce it, serve queries.
    Serve(Box<ServeArgs>),
    /// Read captured OTLP (*-logs.pb, *-traces.pb, *-metrics.pb, folders of them, or
    /// OTLP/JSON lines files) through the same pipeline as `serve`.
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Close sessions whose last event is older than this many seconds.
        #[arg(long, default_value_t = 300)]
        idle_timeout_secs: u64,
    },
    /// List every session: id, status, Codex version, first and last seen, counts.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one session as a tree, or with --json as a graph shaped like Codex's state.json.
    Show {
        rollout_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// OTLP/gRPC listen address.
    #[arg(
        long,
        default_value = "127.0.0.1:4317",
        env = "ROLLOUT_COLLECTOR_GRPC_ADDR"
    )]
    grpc_addr: String,
    /// OTLP/HTTP listen address (also serves the JSON query API under /api).
    #[arg(
        long,
        default_value = "127.0.0.1:4318",
        env = "ROLLOUT_COLLECTOR_HTTP_ADDR"
    )]
    http_addr: String,
    /// Largest accepted Export request, in bytes (decoded, after gzip).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_message_bytes: usize,
    /// Close a session (and its open turn) after this many seconds without records.
    #[arg(long, default_value_t = 300)]
    idle_timeout_secs: u64,
    /// Export requests waiting to be stored before new ones get RESOURCE_EXHAUSTED / 429.
    #[arg(long, default_value_t = 256)]
    max_pending_requests: usize,
    #[command(flatten)]
    export: ExportArgs,
    #[command(flatten)]
    forward: ForwardArgs,
    /// At shutdown, seconds to wait for the export and forward queues to drain (the
    /// rest stays queued on disk and is sent after the next start).
    #[arg(long, default_value_t = 5)]
    drain_timeout_secs: u64,
}

/// Re-export of enriched spans (one trace per Codex session).
#[derive(clap::Args)]
#[command(next_help_heading = "Export of enriched spans")]
struct ExportArgs {
    /// Send enriched spans there: http(s)://HOST:4317 (OTLP/gRPC) or
    /// http(s)://HOST:4318/v1/traces (OTLP/HTTP). Off when not set.
    #[arg(long, env = "ROLLOUT_COLLECTOR_EXPORT_ENDPOINT")]
    export_endpoint: Option<String>,
    /// grpc or http/protobuf. Default: http/protobuf if the endpoint has a /v1/ path
    /// or port 4318, else grpc.
    #[arg(long)]
    export_protocol: Option<Protocol>,
    /// A header (gRPC metadata) sent with every request, KEY=VALUE; repeatable.
    #[arg(long = "export-header", value_name = "KEY=VALUE", value_parser = parse_header)]
    export_headers: Vec<(String, String)>,
    /// PEM file of extra root certificates for an https:// endpoint (a private CA).
    #[arg(long)]
    export_ca_file: Option<PathBuf>,
    /// Gzip export requests.
    #[arg(long)]
    export_gzip: bool,
    /// Put prompt text, tool arguments and tool output on the spans (off by default:
    /// they may hold secrets). Each value is capped at --export-content-max-bytes.
    #[arg(long)]
    export_include_content: bool,
    /// Cap of each content value on a span, in bytes.
    #[arg(long, default_value_t = SpanOptions::default().content_cap_bytes)]
    export_content_max_bytes: usize,
    /// Limit of the durable export queue (<data-dir>/export-queue), in bytes. When
    /// full, new spans wait in the graph and are offered again; nothing is dropped.
    #[arg(long, default_value_t = DEFAULT_QUEUE_MAX_BYTES)]
    export_queue_max_bytes: u64,
}

/// Pass-through of Codex's original telemetry, untouched.
#[derive(clap::Args)]
#[command(next_help_heading = "Forwarding of the original telemetry")]
struct ForwardArgs {
    /// Also pass every accepted Export request (logs, traces, metrics) there,
    /// untouched: http(s)://HOST:4317 (OTLP/gRPC) or http(s)://HOST:4318 (OTLP/HTTP).
    /// Off when not set.
    #[arg(long, env = "ROLLOUT_COLLECTOR_FORWARD_ENDPOINT")]
    forward_endpoint: Option<String>,
    /// grpc or http/protobuf. Default: http/protobuf if the endpoint has a /v1/ path
    /// or port 4318, else grpc.
    #[arg(long)]
    forward_protocol: Option<Protocol>,
    /// A header (gRPC metadata) sent with every request, KEY=VALUE; repeatable.
    #[arg(long = "forward-header", value_name = "KEY=VALUE", value_parser = parse_header)]
    forward_headers: Vec<(String, String)>,
    /// PEM file of extra root certificates for an https:// endpoint.
    #[arg(long)]
    forward_ca_file: Option<PathBuf>,
    /// Gzip forwarded requests.
    #[arg(long)]
    forward_gzip: bool,
    /// Limit of the durable forward queue (<data-dir>/forward-queue), in bytes. When
    /// full, Export requests get RESOURCE_EXHAUSTED / 429 until it drains.
    #[arg(long, default_value_t = DEFAULT_QUEUE_MAX_BYTES)]
    forward_queue_max_bytes: u64,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("{text:?}: expected KEY=VALUE")),
    }
}

/// The protocol asked for, or the one the endpoint implies: OTLP/HTTP for a /v1/ path
/// or port 4318, else OTLP/gRPC.
fn protocol_of(endpoint: &str, asked: Option<Protocol>) -> Protocol {
    let http_port = endpoint
        .parse::<http::Uri>()
        .is_ok_and(|u| u.port_u16() == Some(4318));
    asked.unwrap_or(if endpoint.contains("/v1/") || http_port {
        Protocol::HttpProtobuf
    } else {
        Protocol::Grpc
    })
}

impl ExportArgs {
    fn config(&self) -> Option<ExportConfig> {
        let endpoint = self.export_endpoint.clone()?;
        let mut config = ExportConfig::new(endpoint.clone());
        config.to.protocol = protocol_of(&endpoint, self.export_protocol);
        config.to.headers = self.export_headers.clone();
        config.to.ca_file = self.export_ca_file.clone();
        config.to.gzip = self.export_gzip;
        config.include_content = self.export_include_content;
        config.content_cap_bytes = self.export_content_max_bytes;
        config.queue_max_bytes = self.export_queue_max_bytes;
        Some(config)
    }
}

impl ForwardArgs {
    fn config(&self) -> Option<ForwardConfig> {
        let endpoint = self.forward_endpoint.clone()?;
        let mut config = ForwardConfig::new(endpoint.clone());
        config.to.protocol = protocol_of(&endpoint, self.forward_protocol);
        config.to.headers = self.forward_headers.clone();
        config.to.ca_file = self.forward_ca_file.clone();
        config.to.gzip = self.forward_gzip;
        config.queue_max_bytes = self.forward_queue_max_bytes;
        Some(config)
    }
}

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (overridden by `$_RJEM_MALLOC_CONF`): freed memory goes back to
/// the system within a quarter of a second, by a background thread, from two arenas (the
/// collector's work is one storer plus short normalize tasks, not many busy threads).
/// A quarter of a second rather than one: with sessions coming and going, peak RSS was
/// 2.3 MiB lower and CPU the same; returning memory at once (0) cost a third more CPU
/// (BENCHMARKS.md, session 9).
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] =
    b"background_thread:true,narenas:2,dirty_decay_ms:250,muzzy_decay_ms:0\0";

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let data_dir = DataDir::new(cli.data_dir.clone().unwrap_or_else(DataDir::default_path));
    match cli.command {
        Command::Serve(args) => {
            raise_open_file_limit();
            let config =
                ServeConfig {
                    grpc_addr: args.grpc_addr.parse().with_context(|| {
                        format!("--grpc-addr {}: not an address", args.grpc_addr)
                    })?,
                    http_addr: args.http_addr.parse().with_context(|| {
                        format!("--http-addr {}: not an address", args.http_addr)
                    })?,
                    data_dir,
                    max_message_bytes: args.max_message_bytes,
                    idle_timeout: Duration::from_secs(args.idle_timeout_secs),
                    max_pending_requests: args.max_pending_requests,
                    export: args.export.config(),
                    forward: args.forward.config(),
                    drain_timeout: Duration::from_secs(args.drain_timeout_secs),
                };
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let server = serve::start(config).await?;
                eprintln!(
                    "rollout-collector: OTLP/gRPC on {}, OTLP/HTTP on {}",
                    server.grpc_addr, server.http_addr
                );
                tokio::signal::ctrl_c().await?;
                server.shutdown().await
            })
        }
        Command::Import {
            paths,
            idle_timeout_secs,
        } => {
            let files = import::collect_files(&paths)?;
            if files.is_empty() {
                bail!("no *.pb or OTLP/JSON lines files found in {paths:?}");
            }
            let mut collector = Collector::open(data_dir.clone())?;
            let bar = indicatif::ProgressBar::new(files.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
                    .expect("template"),
            );
            let summary = import::import(
                &mut collector,
                &files,
                Duration::from_secs(idle_timeout_secs),
                |_| bar.inc(1),
            )?;
            bar.finish_and_clear();
            eprintln!(
                "imported {} requests from {} files: {} records stored, {} already stored, {} not tied to any session; sessions: {}",
                summary.requests,
                summary.files,
                summary.report.accepted,
                summary.report.duplicates,
                summary.report.unattributed,
                summary.rollouts.join(", ")
            );
            Ok(())
        }
        Command::List { json } => {
            let mut collector = open_existing(&data_dir)?;
            let mut rows: Vec<_> = collector
                .rollout_ids()
                .iter()
                .filter_map(|id| collector.summary(id))
                .collect();
            rows.sort_by_key(|s| std::cmp::Reverse(s.last_seen_unix_ms));
            if json {
                let list: Vec<_> = rows.iter().map(summary::summary_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<38} {:<10} {:<8} {:<24} {:<24} {:>8} {:>7} {:>5} {:>5} {:>5}",
                    "CONVERSATION",
                    "STATUS",
                    "CODEX",
                    "FIRST SEEN",
                    "LAST SEEN",
                    "RECORDS",
                    "EVENTS",
                    "TURNS",
                    "CALLS",
                    "TOOLS"
                );
                for s in rows {
                    println!(
                        "{:<38} {:<10} {:<8} {:<24} {:<24} {:>8} {:>7} {:>5} {:>5} {:>5}",
                        s.rollout_id,
                        s.status,
                        s.codex_version,
                        format_iso8601_ms(s.first_seen_unix_ms),
                        format_iso8601_ms(s.last_seen_unix_ms),
                        s.record_count,
                        s.event_count,
                        s.turn_count,
                        s.inference_call_count,
                        s.tool_call_count
                    );
                }
            }
            Ok(())
        }
        Command::Show { rollout_id, json } => {
            let mut collector = open_existing(&data_dir)?;
            let Some(graph) = collector.graph(&rollout_id) else {
                bail!(
                    "no session {rollout_id} in {} (see `rollout-collector list`)",
                    data_dir.root.display()
                );
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&*graph)?);
            } else {
                print!("{}", tree::render(&graph));
            }
            Ok(())
        }
    }
}

/// Each session being written keeps its bundle's two files open, so a busy
/// collector needs more than the usual soft limit of 1024 descriptors: raise it to
/// the hard limit (what any process may do).
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return;
        }
        let wanted = limit.rlim_max;
        limit.rlim_cur = wanted;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            tracing::warn!(
                "could not raise the open-file limit to {wanted}; a collector with many sessions may run out"
            );
        }
    }
}

fn open_existing(data_dir: &DataDir) -> Result<Collector> {
    if !data_dir.exists() {
        bail!(
            "no data directory at {} (run `rollout-collector serve` or `import` first, or pass --data-dir)",
            data_dir.root.display()
        );
    }
    Collector::open(data_dir.clone())
}
