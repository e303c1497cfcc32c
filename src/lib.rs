//! rollout-collector: receives the Codex CLI's OpenTelemetry, rebuilds rollout graphs
//! the way Codex's own rollout-trace reducer does, keeps them, and re-exports enriched
//! semantic spans.
//!
//! The data path, one module each: [`receive`] → [`normalize`] → [`store`] →
//! [`reduce`] → [`export`], with [`query`] serving what is kept. [`collector`] joins
//! normalize, store and reduce.

pub mod attribution;
pub mod changes;
pub mod collector;
pub mod export;
pub mod fast_hash;
pub mod hex_digits;
pub mod json_text;
pub mod normalize;
pub mod pending;
pub mod query;
pub mod receive;
pub mod reduce;
pub mod serve;
pub mod store;

pub mod proto {
    //! The RolloutService query API (`proto/rollout/v1/rollout.proto`).
    tonic::include_proto!("rollout.v1");
}
