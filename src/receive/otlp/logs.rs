//! `opentelemetry.proto.logs.v1.LogRecord`, read in place.

use super::common::{AnyValue, KeyValue, merge_any_value, push_record_attribute};
use super::request::{Record, Request};
use super::wire::{DecodeError, Depth, for_each_field};

/// `ExportLogsServiceRequest`.
pub type LogsRequest<'a> = Request<'a, LogRecord<'a>>;

/// The fields of a log record that normalize reads, and the record as sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogRecord<'a> {
    /// The record's encoding, as sent (what its id hashes).
    pub wire: &'a [u8],
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_text: &'a str,
    pub body: Option<AnyValue<'a>>,
    pub attributes: Vec<KeyValue<'a>>,
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub event_name: &'a str,
}

impl<'a> Record<'a> for LogRecord<'a> {
    fn decode(message: &'a [u8], depth: Depth) -> Result<Self, DecodeError> {
        let mut record = LogRecord {
            wire: message,
            ..Default::default()
        };
        for_each_field(message, |field| {
            match field.number {
                1 => record.time_unix_nano = field.fixed64()?,
                2 | 7 => {
                    field.varint()?;
                }
                3 => record.severity_text = field.string()?,
                5 => {
                    let (body, depth) = field.message(depth)?;
                    merge_any_value(record.body.get_or_insert(AnyValue::Empty), body, depth)?;
                }
                6 => push_record_attribute(&mut record.attributes, field, depth)?,
                8 => {
                    field.fixed32()?;
                }
                9 => record.trace_id = field.bytes()?,
                10 => record.span_id = field.bytes()?,
                11 => record.observed_time_unix_nano = field.fixed64()?,
                12 => record.event_name = field.string()?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(record)
    }
}
