//! `opentelemetry.proto.common.v1` and `resource.v1`, read in place: attribute values,
//! key-value pairs, the resource and the instrumentation scope.
//!
//! A message field sent twice is merged as prost merges it (repeated fields append,
//! scalars are replaced, an array or key-value list value continues one of the same kind).

use super::wire::{
    DecodeError, Depth, Field, for_each_field, take_length_delimited, take_varint, text,
};

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
    let pair = match plain_key_value(message, depth) {
        Some(pair) => pair,
        None => key_value(message, depth)?,
    };
    attributes.push(pair);
    Ok(())
}

/// A `KeyValue` as exporters write it, read without the field loop: the key, then a
/// value holding one string, bool, int or double, and nothing else. `None` for any
/// other message (another shape, an error), which [`key_value`] then reads. Every
/// attribute of a request comes through here (about fifteen a span): with this path an
/// attribute takes about 250 instructions, its push included, against 460 through the
/// loop alone (callgrind, the load generator's sessions).
#[inline]
fn plain_key_value<'a>(message: &'a [u8], depth: Depth) -> Option<KeyValue<'a>> {
    const KEY: u8 = 1 << 3 | 2;
    const VALUE: u8 = 2 << 3 | 2;
    const STRING: u8 = 1 << 3 | 2;
    const BOOL: u8 = 2 << 3;
    const INT: u8 = 3 << 3;
    const DOUBLE: u8 = 4 << 3 | 1;
    let mut rest = message;
    let key = text(take_length_delimited(&mut rest, KEY)?)?;
    let mut bytes = take_length_delimited(&mut rest, VALUE)?;
    if !rest.is_empty() || depth.enter().is_err() {
        return None;
    }
    let value = match *bytes.first()? {
        STRING => AnyValue::String(text(take_length_delimited(&mut bytes, STRING)?)?),
        BOOL => AnyValue::Bool(take_varint(&mut bytes, BOOL)? != 0),
        INT => AnyValue::Int(take_varint(&mut bytes, INT)? as i64),
        DOUBLE => {
            // The key, then exactly the 8 bytes of the value.
            let bits: [u8; 8] = bytes.get(1..)?.try_into().ok()?;
            bytes = &[];
            AnyValue::Double(f64::from_bits(u64::from_le_bytes(bits)))
        }
        _ => return None,
    };
    bytes.is_empty().then_some(KeyValue { key, value })
}

/// A `KeyValue` message, field by field.
fn key_value<'a>(message: &'a [u8], depth: Depth) -> Result<KeyValue<'a>, DecodeError> {
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
    Ok(pair)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A length-delimited field of a one-byte key (and a one-byte length).
    fn field(key: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![key, value.len() as u8];
        out.extend_from_slice(value);
        out
    }

    fn pair(key: &str, any_value: &[u8]) -> Vec<u8> {
        let mut out = field(0x0a, key.as_bytes());
        out.extend(field(0x12, any_value));
        out
    }

    #[test]
    fn exporters_attributes_are_read_without_the_field_loop() {
        let mut double = vec![0x21];
        double.extend(2.5f64.to_bits().to_le_bytes());
        for (any_value, expected) in [
            (field(0x0a, b"codex_exec"), AnyValue::String("codex_exec")),
            (field(0x0a, b""), AnyValue::String("")),
            (vec![0x10, 1], AnyValue::Bool(true)),
            (vec![0x18, 0x96, 0x01], AnyValue::Int(150)),
            (
                vec![
                    0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                AnyValue::Int(-1),
            ),
            (double, AnyValue::Double(2.5)),
        ] {
            let message = pair("service.name", &any_value);
            let expected = KeyValue {
                key: "service.name",
                value: expected,
            };
            assert_eq!(
                plain_key_value(&message, Depth::TOP),
                Some(expected.clone())
            );
            assert_eq!(key_value(&message, Depth::TOP), Ok(expected));
        }
    }

    #[test]
    fn other_shapes_are_left_to_the_field_loop() {
        let string = field(0x0a, b"v");
        let mut trailing = pair("k", &string);
        trailing.extend([0x18, 1]); // a third field
        let mut twice = string.clone();
        twice.extend(field(0x0a, b"w")); // the value's field sent twice
        let mut value_first = field(0x12, &string);
        value_first.extend(field(0x0a, b"k"));
        let mut key_not_utf8 = field(0x0a, &[0xc3]);
        key_not_utf8.extend(field(0x12, &string));
        for message in [
            trailing,
            pair("k", &twice),
            value_first,
            field(0x12, &string),                // no key
            pair("k", &[]),                      // no value
            pair("k", &field(0x2a, &[])),        // an array
            pair("k", &field(0x3a, &[0x0a, 0])), // a key-value list
            pair("k", &field(0x0a, &[0xff])),    // not UTF-8
            key_not_utf8,
            pair("k", &[0x21, 0, 0]), // a double cut short
        ] {
            assert_eq!(plain_key_value(&message, Depth::TOP), None, "{message:?}");
        }
        assert_eq!(plain_key_value(&pair("k", &string), Depth::new(0)), None);
    }

    /// A `KeyValue` as an exporter writes it, of any of the kinds of value.
    fn key_value_message() -> impl Strategy<Value = Vec<u8>> {
        let any_value = prop_oneof![
            "[a-z.]{0,12}".prop_map(|s| field(0x0a, s.as_bytes())),
            any::<bool>().prop_map(|b| vec![0x10, u8::from(b)]),
            (0u8..0x80).prop_map(|i| vec![0x18, i]),
            any::<f64>().prop_map(|d| {
                let mut out = vec![0x21];
                out.extend(d.to_bits().to_le_bytes());
                out
            }),
        ];
        ("[a-z.]{0,12}", any_value).prop_map(|(key, value)| pair(&key, &value))
    }

    proptest! {
        #[test]
        fn the_fast_path_reads_what_the_field_loop_reads(
            message in key_value_message(),
            changed in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
            cut in any::<prop::sample::Index>(),
            depth in 0u32..3,
        ) {
            let mut message = message;
            if let Some((at, byte)) = changed {
                let at = at.index(message.len());
                message[at] = byte;
            }
            // Whole, or cut short at any byte.
            for message in [&message[..], &message[..cut.index(message.len() + 1)]] {
                let depth = Depth::new(depth);
                if let Some(pair) = plain_key_value(message, depth) {
                    prop_assert_eq!(key_value(message, depth), Ok(pair));
                }
            }
        }
    }
}
