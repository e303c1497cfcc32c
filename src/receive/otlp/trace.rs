//! `opentelemetry.proto.trace.v1.Span`, read in place.

use super::common::{KeyValue, push_key_value, push_record_attribute};
use super::request::{Record, Request};
use super::wire::{DecodeError, Depth, Field, for_each_field};

/// `ExportTraceServiceRequest`.
pub type TracesRequest<'a> = Request<'a, Span<'a>>;

/// The fields of a span that normalize reads, and the span as sent. Links and status
/// are checked, not kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Span<'a> {
    /// The span's encoding, as sent (what its id hashes).
    pub wire: &'a [u8],
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub name: &'a str,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Vec<KeyValue<'a>>,
    pub events: Vec<SpanEvent<'a>>,
}

/// `Span.Event`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanEvent<'a> {
    pub time_unix_nano: u64,
    pub name: &'a str,
    pub attributes: Vec<KeyValue<'a>>,
}

impl<'a> Record<'a> for Span<'a> {
    fn decode(message: &'a [u8], depth: Depth) -> Result<Self, DecodeError> {
        let mut span = Span {
            wire: message,
            ..Default::default()
        };
        for_each_field(message, |field| {
            match field.number {
                1 => span.trace_id = field.bytes()?,
                2 => span.span_id = field.bytes()?,
                3 => {
                    field.string()?;
                }
                4 => span.parent_span_id = field.bytes()?,
                5 => span.name = field.string()?,
                6 => span.kind = field.varint()? as i32,
                7 => span.start_time_unix_nano = field.fixed64()?,
                8 => span.end_time_unix_nano = field.fixed64()?,
                9 => push_record_attribute(&mut span.attributes, field, depth)?,
                10 | 12 | 14 => {
                    field.varint()?;
                }
                11 => span.events.push(SpanEvent::decode(field, depth)?),
                13 => check_link(field, depth)?,
                15 => check_status(field, depth)?,
                16 => {
                    field.fixed32()?;
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(span)
    }
}

impl<'a> SpanEvent<'a> {
    fn decode(field: Field<'a>, depth: Depth) -> Result<Self, DecodeError> {
        let (message, depth) = field.message(depth)?;
        let mut event = SpanEvent::default();
        for_each_field(message, |field| {
            match field.number {
                1 => event.time_unix_nano = field.fixed64()?,
                2 => event.name = field.string()?,
                3 => push_key_value(&mut event.attributes, field, depth)?,
                4 => {
                    field.varint()?;
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(event)
    }
}

/// Checks a `Span.Link`, which nothing here uses.
fn check_link(field: Field<'_>, depth: Depth) -> Result<(), DecodeError> {
    let (message, depth) = field.message(depth)?;
    let mut attributes = Vec::new();
    for_each_field(message, |field| {
        match field.number {
            1 | 2 => {
                field.bytes()?;
            }
            3 => {
                field.string()?;
            }
            4 => push_key_value(&mut attributes, field, depth)?,
            5 => {
                field.varint()?;
            }
            6 => {
                field.fixed32()?;
            }
            _ => {}
        }
        Ok(())
    })
}

/// Checks a `Status`, which nothing here uses.
fn check_status(field: Field<'_>, depth: Depth) -> Result<(), DecodeError> {
    let (message, _) = field.message(depth)?;
    for_each_field(message, |field| {
        match field.number {
            2 => {
                field.string()?;
            }
            3 => {
                field.varint()?;
            }
            _ => {}
        }
        Ok(())
    })
}
