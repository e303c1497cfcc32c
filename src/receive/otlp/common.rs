//! `opentelemetry.proto.common.v1` and `resource.v1`, read in place: attribute values,
//! key-value pairs, the resource and the instrumentation scope.
//!
//! A message field sent twice is merged as prost merges it (repeated fields append,
//! scalars are replaced, an array or key-value list value continues one of the same kind).

use super::wire::{DecodeError, Depth, Field, for_each_field};

/// An attribute value (`AnyValue`).
#[derive(Clone, Debug, PartialEq)]
pub enum AnyValue<'a> {
    /// No value was set.
    Empty,
    String(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(Vec<AnyValue<'a>>),
    Kvlist(Vec<KeyValue<'a>>),
    /// A reference into a profile's string table: meaningless outside profiles.
    StringIndex(i32),
}

/// An attribute (`KeyValue`).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue<'a> {
    pub key: &'a str,
    pub value: AnyValue<'a>,
}

/// The resource's attributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resource<'a> {
    pub attributes: Vec<KeyValue<'a>>,
}

/// The instrumentation scope's name.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scope<'a> {
    pub name: &'a str,
}

/// Merges the `AnyValue` message `message` into `value`.
pub fn merge_any_value<'a>(
    value: &mut AnyValue<'a>,
    message: &'a [u8],
    depth: Depth,
) -> Result<(), DecodeError> {
    for_each_field(message, |field| {
        match field.number {
            1 => *value = AnyValue::String(field.string()?),
            2 => *value = AnyValue::Bool(field.varint()? != 0),
            3 => *value = AnyValue::Int(field.varint()? as i64),
            4 => *value = AnyValue::Double(f64::from_bits(field.fixed64()?)),
            5 => {
                let (array, depth) = field.message(depth)?;
                let mut values = match std::mem::replace(value, AnyValue::Empty) {
                    AnyValue::Array(values) => values,
                    _ => Vec::new(),
                };
                for_each_field(array, |element| {
                    if element.number == 1 {
                        let (element, depth) = element.message(depth)?;
                        let mut item = AnyValue::Empty;
                        merge_any_value(&mut item, element, depth)?;
                        values.push(item);
                    }
                    Ok(())
                })?;
                *value = AnyValue::Array(values);
            }
            6 => {
                let (list, depth) = field.message(depth)?;
                let mut pairs = match std::mem::replace(value, AnyValue::Empty) {
                    AnyValue::Kvlist(pairs) => pairs,
                    _ => Vec::new(),
                };
                for_each_field(list, |pair| {
                    if pair.number == 1 {
                        push_key_value(&mut pairs, pair, depth)?;
                    }
                    Ok(())
                })?;
                *value = AnyValue::Kvlist(pairs);
            }
            7 => *value = AnyValue::Bytes(field.bytes()?),
            8 => *value = AnyValue::StringIndex(field.varint()? as i32),
            _ => {}
        }
        Ok(())
    })
}

/// Appends the `KeyValue` message in `field` to `attributes`.
pub fn push_key_value<'a>(
    attributes: &mut Vec<KeyValue<'a>>,
    field: Field<'a>,
    depth: Depth,
) -> Result<(), DecodeError> {
    let (message, depth) = field.message(depth)?;
    let mut pair = KeyValue {
        key: "",
        value: AnyValue::Empty,
    };
    for_each_field(message, |field| {
        match field.number {
            1 => pair.key = field.string()?,
            2 => {
                let (value, depth) = field.message(depth)?;
                merge_any_value(&mut pair.value, value, depth)?;
            }
            3 => {
                field.varint()?;
            }
            _ => {}
        }
        Ok(())
    })?;
    attributes.push(pair);
    Ok(())
}

/// Appends an attribute of a span or log record: the list gets room for sixteen with
/// its first (Codex's spans carry about ten), instead of growing from four, then eight,
/// then sixteen. The lists that are only checked, or rarely long, grow as usual.
pub fn push_record_attribute<'a>(
    attributes: &mut Vec<KeyValue<'a>>,
    field: Field<'a>,
    depth: Depth,
) -> Result<(), DecodeError> {
    if attributes.capacity() == 0 {
        attributes.reserve(16);
    }
    push_key_value(attributes, field, depth)
}

/// Merges the `Resource` message in `field` into `resource`.
pub fn merge_resource<'a>(
    resource: &mut Resource<'a>,
    field: Field<'a>,
    depth: Depth,
) -> Result<(), DecodeError> {
    let (message, depth) = field.message(depth)?;
    for_each_field(message, |field| {
        match field.number {
            1 => push_key_value(&mut resource.attributes, field, depth)?,
            2 => {
                field.varint()?;
            }
            3 => check_entity_ref(field, depth)?,
            _ => {}
        }
        Ok(())
    })
}

/// Merges the `InstrumentationScope` message in `field` into `scope`.
pub fn merge_scope<'a>(
    scope: &mut Scope<'a>,
    field: Field<'a>,
    depth: Depth,
) -> Result<(), DecodeError> {
    let (message, depth) = field.message(depth)?;
    let mut ignored = Vec::new();
    for_each_field(message, |field| {
        match field.number {
            1 => scope.name = field.string()?,
            2 => {
                field.string()?;
            }
            3 => push_key_value(&mut ignored, field, depth)?,
            4 => {
                field.varint()?;
            }
            _ => {}
        }
        Ok(())
    })
}

/// Checks a resource's `EntityRef` (all strings), which nothing here uses.
fn check_entity_ref(field: Field<'_>, depth: Depth) -> Result<(), DecodeError> {
    let (message, _) = field.message(depth)?;
    for_each_field(message, |field| {
        if (1..=4).contains(&field.number) {
            field.string()?;
        }
        Ok(())
    })
}
