//! Queued trace Export requests joined into one, as their encodings: equal resources
//! (and schema URLs) become one `ResourceSpans`, equal scopes within it one
//! `ScopeSpans`, and the spans follow in the order queued. Nothing is decoded into
//! messages or encoded again; the queue's requests were all encoded by prost, so equal
//! values have equal bytes.

use crate::receive::otlp::DecodeError;
use crate::receive::otlp::request::decode_level;
use crate::receive::otlp::wire::for_each_field;
use prost::encoding::{encode_varint, encoded_len_varint};

/// An `ExportTraceServiceRequest` read from its encoding, to which others are joined.
#[derive(Default)]
pub struct JoinedRequest<'a> {
    resources: Vec<Level<'a, Level<'a, &'a [u8]>>>,
    spans: usize,
}

/// A `ResourceSpans` or a `ScopeSpans`: whose (field 1, absent or its encoding), the
/// schema URL (field 3), and the children (field 2).
struct Level<'a, T> {
    whose: Option<&'a [u8]>,
    schema_url: &'a str,
    children: Vec<T>,
}

impl<'a> JoinedRequest<'a> {
    /// Reads the encoded request `wire`.
    pub fn read(wire: &'a [u8]) -> Result<Self, DecodeError> {
        let mut spans = 0;
        let mut resources = Vec::new();
        for_each_field(wire, |field| {
            if field.number == 1 {
                let resource = read_level(field.bytes()?, |scope| {
                    let scope = read_level(scope, Ok)?;
                    spans += scope.children.len();
                    Ok(scope)
                })?;
                resources.push(resource);
            }
            Ok(())
        })?;
        Ok(JoinedRequest { resources, spans })
    }

    /// How many spans it holds.
    pub fn spans(&self) -> usize {
        self.spans
    }

    /// Adds `request`, joining its resources and scopes with equal ones already here.
    pub fn join(&mut self, request: JoinedRequest<'a>) {
        self.spans += request.spans;
        for resource in request.resources {
            match self
                .resources
                .iter_mut()
                .find(|r| r.whose == resource.whose && r.schema_url == resource.schema_url)
            {
                None => self.resources.push(resource),
                Some(joined) => {
                    for scope in resource.children {
                        match joined
                            .children
                            .iter_mut()
                            .find(|s| s.whose == scope.whose && s.schema_url == scope.schema_url)
                        {
                            None => joined.children.push(scope),
                            Some(s) => s.children.extend(scope.children),
                        }
                    }
                }
            }
        }
    }

    /// The joined request's encoding.
    pub fn encode(&self) -> Vec<u8> {
        let scope_len = |s: &Level<&[u8]>| {
            level_len(
                s.whose,
                s.schema_url,
                s.children.iter().map(|span| span.len()),
            )
        };
        let resource_len = |r: &Level<Level<&[u8]>>| {
            level_len(r.whose, r.schema_url, r.children.iter().map(scope_len))
        };
        let total: usize = self
            .resources
            .iter()
            .map(|r| field_len(resource_len(r)))
            .sum();
        let mut out = Vec::with_capacity(total);
        for resource in &self.resources {
            put_key_len(&mut out, 1, resource_len(resource));
            put_optional(&mut out, 1, resource.whose);
            for scope in &resource.children {
                put_key_len(&mut out, 2, scope_len(scope));
                put_optional(&mut out, 1, scope.whose);
                for span in &scope.children {
                    put_key_len(&mut out, 2, span.len());
                    out.extend_from_slice(span);
                }
                put_optional(&mut out, 3, present(scope.schema_url));
            }
            put_optional(&mut out, 3, present(resource.schema_url));
        }
        debug_assert_eq!(out.len(), total);
        out
    }
}

fn read_level<'a, T>(
    message: &'a [u8],
    mut child: impl FnMut(&'a [u8]) -> Result<T, DecodeError>,
) -> Result<Level<'a, T>, DecodeError> {
    let mut whose = None;
    let mut children = Vec::new();
    let schema_url = decode_level(
        message,
        |field| {
            whose = Some(field.bytes()?);
            Ok(())
        },
        |field| {
            children.push(child(field.bytes()?)?);
            Ok(())
        },
    )?;
    Ok(Level {
        whose,
        schema_url,
        children,
    })
}

/// The length of a level's message: whose, children of these lengths, schema URL.
fn level_len(
    whose: Option<&[u8]>,
    schema_url: &str,
    children: impl Iterator<Item = usize>,
) -> usize {
    whose.map_or(0, |w| field_len(w.len()))
        + children.map(field_len).sum::<usize>()
        + present(schema_url).map_or(0, |url| field_len(url.len()))
}

/// A schema URL as the encoding has it: absent when empty.
fn present(schema_url: &str) -> Option<&[u8]> {
    (!schema_url.is_empty()).then_some(schema_url.as_bytes())
}

/// A length-delimited field's size (its key is one byte: fields 1 to 3).
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn put_key_len(out: &mut Vec<u8>, number: u8, len: usize) {
    out.push(number << 3 | 2);
    encode_varint(len as u64, out);
}

fn put_optional(out: &mut Vec<u8>, number: u8, value: Option<&[u8]>) {
    if let Some(value) = value {
        put_key_len(out, number, value.len());
        out.extend_from_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;
    use prost::Message;

    /// What joining means, on decoded messages.
    fn join_decoded(into: &mut ExportTraceServiceRequest, from: ExportTraceServiceRequest) {
        for rs in from.resource_spans {
            let existing = into
                .resource_spans
                .iter_mut()
                .find(|m| m.resource == rs.resource && m.schema_url == rs.schema_url);
            let Some(existing) = existing else {
                into.resource_spans.push(rs);
                continue;
            };
            for ss in rs.scope_spans {
                match existing
                    .scope_spans
                    .iter_mut()
                    .find(|m| m.scope == ss.scope && m.schema_url == ss.schema_url)
                {
                    Some(m) => m.spans.extend(ss.spans),
                    None => existing.scope_spans.push(ss),
                }
            }
        }
    }

    fn span_count(request: &ExportTraceServiceRequest) -> usize {
        let scopes = request.resource_spans.iter().flat_map(|r| &r.scope_spans);
        scopes.map(|s| s.spans.len()).sum()
    }

    fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
        let span = (any::<u8>(), "[a-z]{0,3}").prop_map(|(id, name)| Span {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            name,
            ..Span::default()
        });
        let scope = (
            prop::option::of("[ab]".prop_map(|name| InstrumentationScope {
                name,
                ..Default::default()
            })),
            "(|s)",
            prop::collection::vec(span, 0..3),
        )
            .prop_map(|(scope, schema_url, spans)| ScopeSpans {
                scope,
                spans,
                schema_url,
            });
        let resource = (
            prop::option::of(0..2u8).prop_map(|r| {
                r.map(|n| Resource {
                    dropped_attributes_count: u32::from(n),
                    ..Default::default()
                })
            }),
            "(|u)",
            prop::collection::vec(scope, 0..3),
        )
            .prop_map(|(resource, schema_url, scope_spans)| ResourceSpans {
                resource,
                scope_spans,
                schema_url,
            });
        prop::collection::vec(resource, 0..3)
            .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
    }

    proptest! {
        #[test]
        fn joins_as_the_decoded_requests_join(requests in prop::collection::vec(request(), 1..4)) {
            let wires: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
            let mut joined = JoinedRequest::default();
            let mut expected = ExportTraceServiceRequest::default();
            for (wire, request) in wires.iter().zip(&requests) {
                let queued = JoinedRequest::read(wire).unwrap();
                prop_assert_eq!(queued.spans(), span_count(request));
                joined.join(queued);
                join_decoded(&mut expected, request.clone());
            }
            let encoded = joined.encode();
            prop_assert_eq!(&encoded, &expected.encode_to_vec());
            prop_assert_eq!(joined.spans(), requests.iter().map(span_count).sum::<usize>());
        }
    }

    #[test]
    fn a_broken_request_is_refused() {
        let wire = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans::default()],
        }
        .encode_to_vec();
        assert!(JoinedRequest::read(&wire[..wire.len() - 1]).is_err());
        assert!(JoinedRequest::read(&[0x0a, 5, 1]).is_err());
    }
}
