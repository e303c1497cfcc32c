//! receive: OTLP in, over gRPC ([`grpc`]) and HTTP ([`http`]), and from captured
//! files ([`import`]). Every path decodes, normalizes and hands records to the
//! collector through [`ingest`], answering only once they are stored.

pub mod answer;
pub mod decode;
pub mod grpc;
pub mod http;
pub mod import;
pub mod ingest;
pub mod otlp;
