//! An Export request of any signal: resources, each with scopes, each with records.
//! The three signals share this shape and its field numbers; only the record differs.

use super::common::{Resource, Scope, merge_resource, merge_scope};
use super::wire::{DecodeError, Depth, Field, for_each_field};

/// A log record, span or metric, read from its message.
pub trait Record<'a>: Sized {
    /// `message` is the record's encoding; `depth` what nesting it may still use.
    fn decode(message: &'a [u8], depth: Depth) -> Result<Self, DecodeError>;
}

/// `Export{Logs,Trace,Metrics}ServiceRequest`.
#[derive(Debug, PartialEq)]
pub struct Request<'a, R> {
    pub resources: Vec<ResourceRecords<'a, R>>,
}

/// `Resource{Logs,Spans,Metrics}`.
#[derive(Debug, PartialEq)]
pub struct ResourceRecords<'a, R> {
    pub resource: Resource<'a>,
    pub scopes: Vec<ScopeRecords<'a, R>>,
}

/// `Scope{Logs,Spans,Metrics}`.
#[derive(Debug, PartialEq)]
pub struct ScopeRecords<'a, R> {
    pub scope: Scope<'a>,
    pub records: Vec<R>,
}

impl<R> Request<'_, R> {
    /// How many records the request holds, over all its resources and scopes.
    pub fn record_count(&self) -> usize {
        self.resources
            .iter()
            .flat_map(|resource| &resource.scopes)
            .map(|scope| scope.records.len())
            .sum()
    }

    /// Every record of the request, in the order sent.
    pub fn records(&self) -> impl Iterator<Item = &R> {
        self.resources
            .iter()
            .flat_map(|resource| &resource.scopes)
            .flat_map(|scope| &scope.records)
    }
}

impl<'a, R: Record<'a>> Request<'a, R> {
    /// Reads the request `wire`, refusing it whole if any of it is malformed.
    pub fn decode(wire: &'a [u8]) -> Result<Self, DecodeError> {
        let mut resources = Vec::new();
        for_each_field(wire, |field| {
            if field.number == 1 {
                let (message, depth) = field.message(Depth::TOP)?;
                resources.push(ResourceRecords::decode(message, depth)?);
            }
            Ok(())
        })?;
        Ok(Request { resources })
    }
}

impl<'a, R: Record<'a>> ResourceRecords<'a, R> {
    fn decode(message: &'a [u8], depth: Depth) -> Result<Self, DecodeError> {
        let mut resource = Resource::default();
        let mut scopes = Vec::new();
        decode_level(
            message,
            |field| merge_resource(&mut resource, field, depth),
            |field| {
                let (message, depth) = field.message(depth)?;
                scopes.push(ScopeRecords::decode(message, depth)?);
                Ok(())
            },
        )?;
        Ok(ResourceRecords { resource, scopes })
    }
}

impl<'a, R: Record<'a>> ScopeRecords<'a, R> {
    fn decode(message: &'a [u8], depth: Depth) -> Result<Self, DecodeError> {
        let mut scope = Scope::default();
        let mut records = Vec::new();
        decode_level(
            message,
            |field| merge_scope(&mut scope, field, depth),
            |field| {
                let (message, depth) = field.message(depth)?;
                records.push(R::decode(message, depth)?);
                Ok(())
            },
        )?;
        Ok(ScopeRecords { scope, records })
    }
}

/// A resource's or scope's records (`Resource{Logs,Spans,Metrics}`,
/// `Scope{Logs,Spans,Metrics}`): field 1 says whose they are, field 2 is each of them,
/// field 3 is a schema URL, which is returned (the last one sent).
pub fn decode_level<'a>(
    message: &'a [u8],
    mut whose: impl FnMut(Field<'a>) -> Result<(), DecodeError>,
    mut each: impl FnMut(Field<'a>) -> Result<(), DecodeError>,
) -> Result<&'a str, DecodeError> {
    let mut schema_url = "";
    for_each_field(message, |field| match field.number {
        1 => whose(field),
        2 => each(field),
        3 => {
            schema_url = field.string()?;
            Ok(())
        }
        _ => Ok(()),
    })?;
    Ok(schema_url)
}
