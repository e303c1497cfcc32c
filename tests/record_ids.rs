//! Every record of every captured Codex session gets the same id from its bytes as
//! sent (gRPC and OTLP/HTTP protobuf) as from the decoded record encoded again (what
//! OTLP/JSON gets, and what earlier versions of the collector stored): a record is
//! recognised whichever way it comes, and across an upgrade.

use rollout_collector::normalize::Signal;
use rollout_collector::receive::decode::{Received, decode_protobuf};
use rollout_collector::receive::import;
use std::path::Path;

#[test]
fn ids_from_the_bytes_sent_equal_ids_from_the_decoded_records() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex");
    let mut requests = 0;
    let mut records = 0;
    for fixture in std::fs::read_dir(&fixtures).unwrap() {
        let dir = fixture.unwrap().path().join("requests");
        if !dir.is_dir() {
            continue;
        }
        for file in import::collect_files(&[dir]).unwrap() {
            let name = file.file_name().unwrap().to_str().unwrap().to_string();
            let kind = ["logs", "traces", "metrics"]
                .into_iter()
                .find(|k| name.ends_with(&format!("{k}.pb")))
                .unwrap();
            let bytes = std::fs::read(&file).unwrap();
            let decoded = decode_protobuf(kind, &bytes).unwrap().normalize().unwrap();
            let (as_sent, signal, protobuf) =
                Received::Protobuf(Signal::parse(kind).unwrap(), bytes.clone().into())
                    .normalize(true)
                    .unwrap();
            assert_eq!(signal.as_str(), kind);
            assert_eq!(protobuf.as_deref(), Some(&bytes[..]), "forwarded as sent");
            assert_eq!(as_sent.len(), decoded.len(), "{}", file.display());
            for (a, b) in as_sent.iter().zip(&decoded) {
                assert_eq!(a.record_id, b.record_id, "{}", file.display());
            }
            requests += 1;
            records += decoded.len();
        }
    }
    assert!(
        requests > 40 && records > 1000,
        "{requests} requests, {records} records"
    );
}

#[test]
fn undecodable_protobuf_is_an_error_not_a_panic() {
    for body in [&b"\x0a\xff\xff"[..], b"\x0b", b"\xff"] {
        let result = Received::Protobuf(Signal::Traces, bytes::Bytes::copy_from_slice(body))
            .normalize(false);
        assert!(result.unwrap_err().contains("invalid protobuf"));
    }
}
