//! Reading OTLP attributes by value. Codex mixes strings, integers and booleans for the
//! same fields (even inside one record), so every accessor accepts any scalar form.

use crate::receive::otlp::{AnyValue, KeyValue};
use std::borrow::Cow;

/// A borrowed view of an OTLP attribute list.
#[derive(Clone, Copy)]
pub struct Attributes<'a>(pub &'a [KeyValue<'a>]);

impl<'a> Attributes<'a> {
    /// The value of the first attribute named `key` (the evidence, `record_json`, keeps the
    /// last of equal keys).
    pub fn value(&self, key: &str) -> Option<&'a AnyValue<'a>> {
        self.0
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
            .filter(|v| !matches!(v, AnyValue::Empty))
    }

    /// The value as text: strings as they are, numbers and booleans formatted.
    pub fn string(&self, key: &str) -> Option<String> {
        self.text(key).map(Cow::into_owned)
    }

    /// [`Attributes::string`], borrowed from the request when the value is a string
    /// (what is only compared, or copied once it passes a check, need not be copied first).
    pub fn text(&self, key: &str) -> Option<Cow<'a, str>> {
        self.value(key).and_then(value_to_text)
    }

    /// A non-empty string value.
    pub fn non_empty(&self, key: &str) -> Option<String> {
        self.non_empty_text(key).map(Cow::into_owned)
    }

    /// [`Attributes::non_empty`], borrowed when the value is a string.
    pub fn non_empty_text(&self, key: &str) -> Option<Cow<'a, str>> {
        self.text(key).filter(|s| !s.is_empty())
    }

    /// The value as an integer: integers, whole doubles, and strings that parse.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.value(key)? {
            AnyValue::Int(i) => Some(*i),
            AnyValue::Double(d) if d.fract() == 0.0 => Some(*d as i64),
            AnyValue::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a boolean: booleans, and the strings "true"/"false" (any case).
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.value(key)? {
            AnyValue::Bool(b) => Some(*b),
            AnyValue::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            AnyValue::Int(i) => Some(*i != 0),
            _ => None,
        }
    }

    /// The first present string among several keys (names differ between Codex
    /// versions), borrowed when it is a string.
    pub fn first_text(&self, keys: &[&str]) -> Option<Cow<'a, str>> {
        keys.iter().find_map(|k| self.non_empty_text(k))
    }
}

pub fn value_to_string(value: &AnyValue) -> Option<String> {
    value_to_text(value).map(Cow::into_owned)
}

/// [`value_to_string`], borrowed when the value is a string.
pub fn value_to_text<'a>(value: &AnyValue<'a>) -> Option<Cow<'a, str>> {
    match value {
        AnyValue::String(s) => Some(Cow::Borrowed(s)),
        AnyValue::Int(i) => Some(Cow::Owned(i.to_string())),
        AnyValue::Double(d) => Some(Cow::Owned(d.to_string())),
        AnyValue::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &'static str, value: AnyValue<'static>) -> KeyValue<'static> {
        KeyValue { key, value }
    }

    #[test]
    fn numbers_parse_from_strings_and_ints() {
        let attrs = [
            kv("a", AnyValue::String("40")),
            kv("b", AnyValue::Int(7)),
            kv("c", AnyValue::String("true")),
            kv("d", AnyValue::Bool(false)),
            kv("e", AnyValue::Empty),
        ];
        let a = Attributes(&attrs);
        assert_eq!(a.int("a"), Some(40));
        assert_eq!(a.int("b"), Some(7));
        assert_eq!(a.string("b").as_deref(), Some("7"));
        assert_eq!(a.bool("c"), Some(true));
        assert_eq!(a.bool("d"), Some(false));
        assert_eq!(a.int("missing"), None);
        assert!(a.value("e").is_none());
    }
}
