//! The protobuf wire format, read in place: a message is a run of fields, each a key
//! (field number and wire type) and a value. Nothing is copied; strings and bytes are
//! slices of the message.
//!
//! The rules are prost's, so that a request is refused here exactly when prost would
//! refuse it: a key of field 0 or of wire type 6 or 7, a varint longer than ten bytes,
//! a value cut short, a group not closed, a known field with the wrong wire type, a
//! string that is not UTF-8, or messages nested more than [`NESTING_LIMIT`] deep.
//! Unknown fields (groups included) are skipped.

use std::fmt;

/// How deep messages may nest inside a request (prost's recursion limit).
pub const NESTING_LIMIT: u32 = 100;

/// Why a request could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(String);

impl DecodeError {
    pub fn new(message: impl Into<String>) -> Self {
        DecodeError(message.into())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// One field's value, by wire type.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    LengthDelimited(&'a [u8]),
    /// A group (wire types 3 and 4), skipped whole: OTLP has none.
    Group,
    Fixed32(u32),
}

/// A field of a message: its number and value.
#[derive(Clone, Copy, Debug)]
pub struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
}

impl<'a> Field<'a> {
    fn wrong_type(&self, expected: &str) -> DecodeError {
        DecodeError(format!(
            "field {} should be {expected}, got {}",
            self.number,
            match self.value {
                Value::Varint(_) => "a varint",
                Value::Fixed64(_) => "64 bits",
                Value::LengthDelimited(_) => "length-delimited",
                Value::Group => "a group",
                Value::Fixed32(_) => "32 bits",
            }
        ))
    }

    #[inline]
    pub fn varint(&self) -> Result<u64, DecodeError> {
        match self.value {
            Value::Varint(v) => Ok(v),
            _ => Err(self.wrong_type("a varint")),
        }
    }

    #[inline]
    pub fn fixed64(&self) -> Result<u64, DecodeError> {
        match self.value {
            Value::Fixed64(v) => Ok(v),
            _ => Err(self.wrong_type("64 bits")),
        }
    }

    #[inline]
    pub fn fixed32(&self) -> Result<u32, DecodeError> {
        match self.value {
            Value::Fixed32(v) => Ok(v),
            _ => Err(self.wrong_type("32 bits")),
        }
    }

    /// A bytes field, or an embedded message's encoding.
    #[inline]
    pub fn bytes(&self) -> Result<&'a [u8], DecodeError> {
        match self.value {
            Value::LengthDelimited(v) => Ok(v),
            _ => Err(self.wrong_type("length-delimited")),
        }
    }

    #[inline]
    pub fn string(&self) -> Result<&'a str, DecodeError> {
        text(self.bytes()?)
            .ok_or_else(|| DecodeError(format!("field {}: string is not UTF-8", self.number)))
    }

    /// An embedded message, with the nesting depth it may still use.
    #[inline]
    pub fn message(&self, depth: Depth) -> Result<(&'a [u8], Depth), DecodeError> {
        let bytes = self.bytes()?;
        Ok((bytes, depth.enter()?))
    }
}

/// `bytes` as a string, if they are UTF-8.
#[inline]
pub fn text(bytes: &[u8]) -> Option<&str> {
    // Nearly every string of a request is ASCII (keys, ids, names), and most are
    // short: `is_ascii` checks those a word at a time, where `from_utf8` goes a byte
    // at a time until its words are aligned.
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

/// The value of the field at the front of `rest`, taken off it, when the field's key
/// is the single byte `key` (a field number below 16) of a length-delimited field.
/// `None` for anything else (another key, a value cut short), and `rest` may then be
/// partly read. For fast paths that read a copy of a message's bytes and, on `None`,
/// read the message again with [`for_each_field`], which gives the error if any.
#[inline]
pub fn take_length_delimited<'a>(rest: &mut &'a [u8], key: u8) -> Option<&'a [u8]> {
    debug_assert_eq!(key & 7, 2);
    let (&first, after) = rest.split_first()?;
    if first != key {
        return None;
    }
    *rest = after;
    let len = usize::try_from(varint(rest).ok()?).ok()?;
    take(rest, len).ok()
}

/// The value of the varint field at the front of `rest` whose key is the single byte
/// `key`, as [`take_length_delimited`] does for length-delimited fields.
#[inline]
pub fn take_varint(rest: &mut &[u8], key: u8) -> Option<u64> {
    debug_assert_eq!(key & 7, 0);
    let (&first, after) = rest.split_first()?;
    if first != key {
        return None;
    }
    *rest = after;
    varint(rest).ok()
}

/// How many more levels of messages may nest.
#[derive(Clone, Copy, Debug)]
pub struct Depth(u32);

impl Depth {
    pub const TOP: Depth = Depth(NESTING_LIMIT);

    /// `left` more levels, for tests of the limit.
    #[cfg(test)]
    pub fn new(left: u32) -> Depth {
        Depth(left)
    }

    pub fn enter(self) -> Result<Depth, DecodeError> {
        match self.0 {
            0 => Err(DecodeError::new("messages nested too deeply")),
            left => Ok(Depth(left - 1)),
        }
    }
}

/// Calls `each` with every field of `message`, in order.
#[inline]
pub fn for_each_field<'a>(
    message: &'a [u8],
    mut each: impl FnMut(Field<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut rest = message;
    while !rest.is_empty() {
        each(next_field(&mut rest, NESTING_LIMIT)?)?;
    }
    Ok(())
}

/// Reads one field off `rest`; a group may hold `groups` more levels of groups.
///
/// Most fields of a request have a one-byte key and are a one-byte varint or a value
/// under 128 bytes: those are read here, inlined into each message's loop, and the
/// rest by [`any_field`].
#[inline]
fn next_field<'a>(rest: &mut &'a [u8], groups: u32) -> Result<Field<'a>, DecodeError> {
    if let [key, first, ..] = **rest
        && (8..0x80).contains(&key)
        && first < 0x80
    {
        let number = u32::from(key >> 3);
        match key & 7 {
            0 => {
                *rest = &rest[2..];
                return Ok(Field {
                    number,
                    value: Value::Varint(u64::from(first)),
                });
            }
            2 if rest.len() >= 2 + usize::from(first) => {
                let (value, after) = rest[2..].split_at(usize::from(first));
                *rest = after;
                return Ok(Field {
                    number,
                    value: Value::LengthDelimited(value),
                });
            }
            _ => {}
        }
    }
    any_field(rest, groups)
}

/// [`next_field`] of any field.
#[inline(never)]
fn any_field<'a>(rest: &mut &'a [u8], groups: u32) -> Result<Field<'a>, DecodeError> {
    let (number, wire_type) = key(rest)?;
    let value = match wire_type {
        0 => Value::Varint(varint(rest)?),
        1 => Value::Fixed64(u64::from_le_bytes(
            take(rest, 8)?.try_into().expect("8 bytes"),
        )),
        2 => {
            let len = varint(rest)?;
            let len = usize::try_from(len).map_err(|_| underflow())?;
            Value::LengthDelimited(take(rest, len)?)
        }
        3 => {
            skip_group(rest, number, groups)?;
            Value::Group
        }
        4 => return Err(DecodeError::new("unexpected end of group")),
        5 => Value::Fixed32(u32::from_le_bytes(
            take(rest, 4)?.try_into().expect("4 bytes"),
        )),
        other => return Err(DecodeError(format!("invalid wire type {other}"))),
    };
    Ok(Field { number, value })
}

#[inline]
fn key(rest: &mut &[u8]) -> Result<(u32, u8), DecodeError> {
    let key = varint(rest)?;
    let key = u32::try_from(key).map_err(|_| DecodeError(format!("invalid key {key}")))?;
    let number = key >> 3;
    if number == 0 {
        return Err(DecodeError::new("invalid field number 0"));
    }
    Ok((number, (key & 7) as u8))
}

/// Skips a group's fields up to its end key. Groups nest at most [`NESTING_LIMIT`]
/// deep, so that a request cannot exhaust the stack.
fn skip_group(rest: &mut &[u8], number: u32, groups: u32) -> Result<(), DecodeError> {
    if groups == 0 {
        return Err(DecodeError::new("groups nested too deeply"));
    }
    loop {
        if rest.is_empty() {
            return Err(underflow());
        }
        let mut peek = *rest;
        let (inner, wire_type) = key(&mut peek)?;
        if wire_type == 4 {
            if inner != number {
                return Err(DecodeError::new("unexpected end of group"));
            }
            *rest = peek;
            return Ok(());
        }
        next_field(rest, groups - 1)?;
    }
}

#[inline]
fn take<'a>(rest: &mut &'a [u8], len: usize) -> Result<&'a [u8], DecodeError> {
    if rest.len() < len {
        return Err(underflow());
    }
    let (value, after) = rest.split_at(len);
    *rest = after;
    Ok(value)
}

fn underflow() -> DecodeError {
    DecodeError::new("a value runs past the end of its message")
}

/// A base-128 varint of at most ten bytes (prost also refuses a tenth byte above 1).
#[inline]
fn varint(rest: &mut &[u8]) -> Result<u64, DecodeError> {
    // Most keys and lengths fit in one byte.
    if let Some((&byte, after)) = rest.split_first()
        && byte < 0x80
    {
        *rest = after;
        return Ok(u64::from(byte));
    }
    long_varint(rest)
}

fn long_varint(rest: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for (i, byte) in rest.iter().take(10).enumerate() {
        if i == 9 && *byte > 1 {
            return Err(DecodeError::new("invalid varint"));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Ok(value);
        }
    }
    Err(if rest.len() < 10 {
        underflow()
    } else {
        DecodeError::new("invalid varint")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &[u8]) -> Result<Vec<(u32, String)>, DecodeError> {
        let mut out = Vec::new();
        for_each_field(message, |f| {
            out.push((f.number, format!("{:?}", f.value)));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn a_string_is_read_exactly_when_it_is_utf8() {
        let long = "span.name.with.a.long.key".repeat(3);
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"thread.id".to_vec(),
            long.clone().into_bytes(),
            "caf\u{e9} \u{1f980}".as_bytes().to_vec(),
        ];
        // A byte that is not UTF-8, or starts a sequence cut short, anywhere in a
        // string of any length.
        for bad in [0xff, 0x80, 0xc3] {
            for at in 0..long.len() {
                let mut bytes = long.clone().into_bytes();
                bytes[at] = bad;
                cases.push(bytes);
            }
        }
        for bytes in cases {
            let field = Field {
                number: 1,
                value: Value::LengthDelimited(&bytes),
            };
            assert_eq!(field.string().ok(), std::str::from_utf8(&bytes).ok());
        }
    }

    #[test]
    fn the_short_field_path_reads_what_the_general_one_reads() {
        // Every key byte and first value byte, with values cut short or not.
        for key in 0..=u8::MAX {
            for first in 0..=u8::MAX {
                for tail in [0, 1, 9, 127, 200] {
                    let mut message = vec![key, first];
                    message.extend((0..tail).map(|i| i as u8 | 1));
                    let (mut short, mut general) = (&message[..], &message[..]);
                    let read = next_field(&mut short, 4);
                    let expected = any_field(&mut general, 4);
                    assert_eq!(format!("{read:?}"), format!("{expected:?}"), "{message:?}");
                    if read.is_ok() {
                        assert_eq!(short, general, "{message:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn reads_each_wire_type() {
        let message = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1a, 2, b'h', b'i', // 3: "hi"
            0x25, 2, 0, 0, 0, // 4: fixed32 2
            0x2b, 0x08, 1, 0x2c, // 5: a group holding field 1
        ];
        assert_eq!(
            fields(&message).unwrap(),
            vec![
                (1, "Varint(150)".to_string()),
                (2, "Fixed64(1)".to_string()),
                (3, "LengthDelimited([104, 105])".to_string()),
                (4, "Fixed32(2)".to_string()),
                (5, "Group".to_string()),
            ]
        );
    }

    #[test]
    fn refuses_what_prost_refuses() {
        for broken in [
            &[0x08][..],      // a varint cut short
            &[0x0a, 3, 1],    // bytes cut short
            &[0x00, 1],       // field 0
            &[0x0e],          // wire type 6
            &[0x0c],          // an end group with no start
            &[0x0b, 0x08, 1], // a group not closed
            &[0x0b, 0x14],    // a group closed by another number
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ], // 11th bit set
        ] {
            assert!(fields(broken).is_err(), "{broken:?}");
        }
        assert!(Depth(0).enter().is_err());
        let mut nested = vec![0x0b; 200];
        nested.extend([0x0c; 200]);
        assert!(fields(&nested).is_err(), "groups 200 deep");
        assert_eq!(fields(&[]).unwrap(), vec![]);
    }
}
