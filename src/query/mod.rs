//! query: what the collector keeps, for people and programs: `list` and `show` on the
//! command line ([`summary`], [`tree`]), the gRPC RolloutService ([`grpc`]) and an
//! HTTP JSON API ([`http`], and the counters in [`status`]).

pub mod grpc;
pub mod http;
pub mod status;
pub mod summary;
pub mod tree;
