//! Reading OTLP attributes by value. Codex mixes strings, integers and booleans for the
//! same fields (even inside one record), so every accessor accepts any scalar form.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

/// A borrowed view of an OTLP attribute list.
#[derive(Clone, Copy)]
pub struct Attributes<'a>(pub &'a [KeyValue]);

impl<'a> Attributes<'a> {
    pub fn value(&self, key: &str) -> Option<&'a Value> {
        self.0
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    /// The value as text: strings as they are, numbers and booleans formatted.
    pub fn string(&self, key: &str) -> Option<String> {
        self.value(key).and_then(value_to_string)
    }

    /// A non-empty string value.
    pub fn non_empty(&self, key: &str) -> Option<String> {
        self.string(key).filter(|s| !s.is_empty())
    }

    /// The value as an integer: integers, whole doubles, and strings that parse.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.value(key)? {
            Value::IntValue(i) => Some(*i),
            Value::DoubleValue(d) if d.fract() == 0.0 => Some(*d as i64),
            Value::StringValue(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a boolean: booleans, and the strings "true"/"false" (any case).
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.value(key)? {
            Value::BoolValue(b) => Some(*b),
            Value::StringValue(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            Value::IntValue(i) => Some(*i != 0),
            _ => None,
        }
    }

    /// The first present string among several keys (names differ between Codex versions).
    pub fn first_string(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.non_empty(k))
    }
}

pub fn value_to_string(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The attribute list serialized as [`to_json`] would give it (keys sorted, the last
/// of equal keys kept), without building JSON values first.
pub struct AttrsJson<'a>(pub &'a [KeyValue]);

impl serde::Serialize for AttrsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut sorted: Vec<&KeyValue> = self.0.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        let mut map = s.serialize_map(None)?;
        for (i, kv) in sorted.iter().enumerate() {
            if sorted.get(i + 1).is_some_and(|next| next.key == kv.key) {
                continue;
            }
            map.serialize_entry(&kv.key, &AnyJson(kv.value.as_ref()))?;
        }
        map.end()
    }
}

/// An attribute value serialized as [`any_to_json`] would give it.
pub struct AnyJson<'a>(pub Option<&'a AnyValue>);

impl serde::Serialize for AnyJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        match self.0.and_then(|v| v.value.as_ref()) {
            None => s.serialize_unit(),
            Some(Value::StringValue(v)) => s.serialize_str(v),
            Some(Value::IntValue(i)) => s.serialize_i64(*i),
            Some(Value::DoubleValue(d)) if d.is_finite() => s.serialize_f64(*d),
            Some(Value::DoubleValue(_)) => s.serialize_unit(),
            Some(Value::BoolValue(b)) => s.serialize_bool(*b),
            Some(Value::BytesValue(b)) => s.serialize_str(&super::hex_string(b)),
            Some(Value::ArrayValue(a)) => {
                let mut seq = s.serialize_seq(Some(a.values.len()))?;
                for v in &a.values {
                    seq.serialize_element(&AnyJson(Some(v)))?;
                }
                seq.end()
            }
            Some(Value::KvlistValue(kv)) => AttrsJson(&kv.values).serialize(s),
            #[allow(unreachable_patterns)]
            Some(_) => s.serialize_unit(),
        }
    }
}

/// The whole attribute list as a JSON object, for evidence and display.
pub fn to_json(attrs: &[KeyValue]) -> serde_json::Map<String, serde_json::Value> {
    attrs
        .iter()
        .map(|kv| (kv.key.clone(), any_to_json(kv.value.as_ref())))
        .collect()
}

pub fn any_to_json(value: Option<&AnyValue>) -> serde_json::Value {
    use serde_json::Value as J;
    match value.and_then(|v| v.value.as_ref()) {
        None => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => J::from(*d),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::BytesValue(b)) => J::String(super::hex_string(b)),
        Some(Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|v| any_to_json(Some(v))).collect())
        }
        Some(Value::KvlistValue(kv)) => J::Object(to_json(&kv.values)),
        #[allow(unreachable_patterns)]
        Some(_) => J::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn attrs_json_writes_what_to_json_gives() {
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
        let attrs = [
            kv("z", Value::StringValue("a \"quoted\"\nline".into())),
            kv("b", Value::IntValue(-7)),
            kv("b", Value::DoubleValue(1.5)),
            kv("nan", Value::DoubleValue(f64::NAN)),
            kv("bytes", Value::BytesValue(vec![1, 254])),
            kv("t", Value::BoolValue(true)),
            kv(
                "arr",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::IntValue(3)),
                    }],
                }),
            ),
            kv(
                "kv",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("y", Value::IntValue(1)), kv("x", Value::IntValue(2))],
                }),
            ),
            KeyValue {
                key: "none".into(),
                value: None,
                ..Default::default()
            },
        ];
        assert_eq!(
            serde_json::to_string(&AttrsJson(&attrs)).unwrap(),
            serde_json::to_string(&to_json(&attrs)).unwrap()
        );
    }

    #[test]
    fn numbers_parse_from_strings_and_ints() {
        let attrs = [
            kv("a", Value::StringValue("40".into())),
            kv("b", Value::IntValue(7)),
            kv("c", Value::StringValue("true".into())),
            kv("d", Value::BoolValue(false)),
        ];
        let a = Attributes(&attrs);
        assert_eq!(a.int("a"), Some(40));
        assert_eq!(a.int("b"), Some(7));
        assert_eq!(a.string("b").as_deref(), Some("7"));
        assert_eq!(a.bool("c"), Some(true));
        assert_eq!(a.bool("d"), Some(false));
        assert_eq!(a.int("missing"), None);
    }
}
