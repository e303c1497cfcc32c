//! JSON text written by hand, byte for byte as `serde_json` writes it (compact).
//!
//! The store's event lines and normalize's record evidence are written for every
//! record received. Through `serde_json`, each string is escaped a byte at a time
//! (a table look-up and a branch per byte). Here a string is scanned eight bytes at a
//! time for the few bytes JSON escapes, and the runs between them are copied whole;
//! most strings (ids, names, attribute keys) have none.

/// Where JSON text goes: bytes (the write-ahead log's buffer, which the event lines are
/// written into) or a `String` (a record's evidence, which is then not checked for
/// UTF-8 once more: only `str`s and ASCII go in).
pub trait JsonOut {
    fn push_text(&mut self, text: &str);
    fn push_ascii(&mut self, byte: u8);
    fn reserve(&mut self, additional: usize);
}

impl JsonOut for Vec<u8> {
    fn push_text(&mut self, text: &str) {
        self.extend_from_slice(text.as_bytes());
    }
    fn push_ascii(&mut self, byte: u8) {
        self.push(byte);
    }
    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }
}

impl JsonOut for String {
    fn push_text(&mut self, text: &str) {
        self.push_str(text);
    }
    fn push_ascii(&mut self, byte: u8) {
        debug_assert!(byte.is_ascii());
        self.push(char::from(byte));
    }
    fn reserve(&mut self, additional: usize) {
        String::reserve(self, additional);
    }
}

/// Appends `s` as a JSON string, quoted and escaped as `serde_json` does: `"` and `\`
/// with a backslash, the short forms `\b \t \n \f \r`, other bytes below 0x20 as
/// `\u00XX` (lowercase hex); everything else, non-ASCII included, as it is.
pub fn push_string(out: &mut impl JsonOut, s: &str) {
    out.reserve(s.len() + 2);
    out.push_ascii(b'"');
    let mut start = 0;
    while let Some(at) = first_to_escape(&s.as_bytes()[start..]).map(|i| start + i) {
        // The byte at `at` is ASCII, so both slices end on character boundaries.
        out.push_text(&s[start..at]);
        push_escape(out, s.as_bytes()[at]);
        start = at + 1;
    }
    out.push_text(&s[start..]);
    out.push_ascii(b'"');
}

/// Appends an integer.
pub fn push_integer(out: &mut impl JsonOut, n: impl itoa::Integer) {
    out.push_text(itoa::Buffer::new().format(n));
}

/// Appends an integer as a JSON string (`"123"`), as OTLP/JSON writes 64-bit times.
pub fn push_integer_string(out: &mut impl JsonOut, n: impl itoa::Integer) {
    out.push_ascii(b'"');
    push_integer(out, n);
    out.push_ascii(b'"');
}

/// `key` (the JSON text before the value, such as `,"name":`), then `value` as a JSON
/// string.
pub fn push_member(out: &mut impl JsonOut, key: &str, value: &str) {
    out.push_text(key);
    push_string(out, value);
}

/// `key`, then `value` as a JSON string, or `null`.
pub fn push_optional_member(out: &mut impl JsonOut, key: &str, value: Option<&str>) {
    match value {
        Some(value) => push_member(out, key, value),
        None => {
            out.push_text(key);
            out.push_text("null");
        }
    }
}

/// `key`, then the integer.
pub fn push_integer_member(out: &mut impl JsonOut, key: &str, n: impl itoa::Integer) {
    out.push_text(key);
    push_integer(out, n);
}

/// Where the first byte that JSON escapes is: below 0x20, `"` or `\`. Eight bytes are
/// checked at a time; only a word holding one is searched byte by byte.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        if any_to_escape(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
            return word.iter().position(|&b| needs_escape(b)).map(|i| at + i);
        }
        at += 8;
    }
    let rest = words.remainder();
    // The last few bytes: in the word that ends the string, when it is that long.
    if let Some(last) = bytes.len().checked_sub(8)
        && !any_to_escape(u64::from_le_bytes(
            bytes[last..].try_into().expect("8 bytes"),
        ))
    {
        return None;
    }
    rest.iter().position(|&b| needs_escape(b)).map(|i| at + i)
}

/// Whether any of the eight bytes of `w` is below 0x20, `"` or `\`. (A byte is
/// flagged when it is below 0x20, or is zero after the xor with `"` or `\`. A borrow
/// can also flag a byte above a flagged one, but never flags a word with none.)
fn any_to_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let quote = zero_byte(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(w ^ (ONES * u64::from(b'\\')));
    (below_space | quote | backslash) & HIGHS != 0
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn push_escape(out: &mut impl JsonOut, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x09 => b't',
        0x0a => b'n',
        0x0c => b'f',
        0x0d => b'r',
        _ => {
            out.push_text("\\u00");
            out.push_ascii(HEX[usize::from(b >> 4)]);
            out.push_ascii(HEX[usize::from(b & 0xf)]);
            return;
        }
    };
    out.push_ascii(b'\\');
    out.push_ascii(short);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Written as bytes, and as a `String`: the same text.
    fn written(s: &str) -> String {
        let mut bytes: Vec<u8> = Vec::new();
        push_string(&mut bytes, s);
        let mut text = String::new();
        push_string(&mut text, s);
        assert_eq!(bytes, text.as_bytes());
        text
    }

    #[test]
    fn every_byte_that_json_escapes_is_escaped_as_serde_json_does() {
        for b in 0u8..0x80 {
            let c = char::from(b);
            for s in [
                c.to_string(),
                format!("abcdefg{c}"),
                format!("{c}abcdefghij{c}"),
            ] {
                assert_eq!(
                    written(&s),
                    serde_json::to_string(&s).unwrap(),
                    "byte {b:#x}"
                );
            }
        }
    }

    #[test]
    fn a_flag_borrowed_from_an_escaped_byte_does_not_hide_the_next_one() {
        // 0x1f then `!` (0x21, one above the space): the borrow of the first flags the
        // second in the word's arithmetic; only the byte search says which is escaped.
        let s = "\u{1f}!\"\u{0}\\ \u{7f}é\u{1f}\u{20}";
        assert_eq!(written(s), serde_json::to_string(s).unwrap());
    }

    proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(s in any::<String>()) {
            prop_assert_eq!(written(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn strings_of_json_special_bytes_are_written_as_serde_json_writes_them(
            s in "[\\x00-\\x22\\x5a-\\x5e a-z\u{80}-\u{10ffff}]{0,40}"
        ) {
            prop_assert_eq!(written(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn integers_are_written_as_serde_json_writes_them(n in any::<i64>(), u in any::<u64>()) {
            let mut out = String::new();
            push_integer(&mut out, n);
            out.push(' ');
            push_integer_string(&mut out, u);
            prop_assert_eq!(
                out,
                format!("{} {}", serde_json::to_string(&n).unwrap(), serde_json::to_string(&u.to_string()).unwrap())
            );
        }
    }
}
