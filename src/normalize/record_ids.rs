//! Record ids: a stable hash of each OTLP record, so that a record sent twice is stored
//! once.
//!
//! The id hashes the signal, the resource (service name and version) and the record's
//! protobuf bytes as sent (a request that came as OTLP/JSON is encoded first, which
//! gives the bytes a prost encoder such as Codex's sends: a record has one id whichever
//! way it came).

use super::Signal;
use sha2::{Digest, Sha256};

pub(crate) fn record_id(signal: Signal, resource_key: &str, record: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(signal.as_str().as_bytes());
    hasher.update(resource_key.as_bytes());
    hasher.update(record);
    super::hex_string(&hasher.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_by_signal_resource_and_bytes() {
        let id = record_id(Signal::Traces, "svc|1", b"span");
        assert_eq!(id.len(), 24);
        assert_eq!(id, record_id(Signal::Traces, "svc|1", b"span"));
        assert_ne!(id, record_id(Signal::Logs, "svc|1", b"span"));
        assert_ne!(id, record_id(Signal::Traces, "svc|2", b"span"));
        assert_ne!(id, record_id(Signal::Traces, "svc|1", b"spam"));
    }
}
