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

/// `key`, then the integer, or `null`.
pub fn push_optional_integer_member(
    out: &mut impl JsonOut,
    key: &str,
    n: Option<impl itoa::Integer>,
) {
    match n {
        Some(n) => push_integer_member(out, key, n),
        None => {
            out.push_text(key);
            out.push_text("null");
        }
    }
}

/// Where the first byte that JSON escapes is: below 0x20, `"` or `\`. Eight bytes are
/// checked at a time: the last word of a string overlaps the one before it, and a
/// string of four to seven bytes is read as two overlapping halves of one word. The
/// first byte a word flags is the first to escape in it (see [`escape_flags`]).
#[inline]
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    let n = bytes.len();
    if n < 8 {
        return first_to_escape_in_short(bytes);
    }
    let word_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let mut at = 0;
    while at + 8 <= n {
        let flags = escape_flags(word_at(at));
        if flags != 0 {
            return Some(at + first_flagged(flags));
        }
        at += 8;
    }
    if at == n {
        return None;
    }
    // The bytes of the last word before `at` were checked clear: none is flagged.
    let last = n - 8;
    let flags = escape_flags(word_at(last));
    (flags != 0).then(|| last + first_flagged(flags))
}

/// [`first_to_escape`] of a string under eight bytes.
fn first_to_escape_in_short(bytes: &[u8]) -> Option<usize> {
    let n = bytes.len();
    if n < 4 {
        return bytes.iter().position(|&b| needs_escape(b));
    }
    let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    // Bytes 0..4 of the string, then bytes n-4..n (which may overlap them).
    let flags = escape_flags(u64::from(half(0)) | u64::from(half(n - 4)) << 32);
    (flags != 0).then(|| match first_flagged(flags) {
        low @ 0..4 => low,
        // The first half was clear, so nothing borrowed into the second.
        high => n + high - 8,
    })
}

/// The byte a flag of [`escape_flags`] stands for.
fn first_flagged(flags: u64) -> usize {
    (flags.trailing_zeros() / 8) as usize
}

/// The high bit of each of the eight bytes of `w` that is below 0x20, `"` or `\`,
/// and of some bytes above such a byte. (A byte is flagged when it is below 0x20, or is
/// zero after the xor with `"` or `\`. A borrow can also flag a byte above a flagged
/// one, but never one below the first: the first flag is always right, and a word with
/// none has no flag.)
fn escape_flags(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let quote = zero_byte(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(w ^ (ONES * u64::from(b'\\')));
    (below_space | quote | backslash) & HIGHS
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
    fn an_escaped_byte_is_found_at_any_place_in_a_string_of_any_length() {
        // Each length reads words differently: by bytes (under 4), as two halves (4 to
        // 7), by whole words, and with a last word overlapping the one before.
        for len in 0..=26 {
            for at in 0..len {
                for escaped in ['\u{0}', '\u{1f}', '"', '\\'] {
                    for after in [' ', '!', '\u{1f}'] {
                        let mut chars = vec!['a'; len];
                        chars[at] = escaped;
                        if at + 1 < len {
                            chars[at + 1] = after;
                        }
                        let s: String = chars.into_iter().collect();
                        assert_eq!(written(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_flag_borrowed_from_an_escaped_byte_does_not_hide_the_next_one() {
        // 0x1f then `!` (0x21, one above the space): the borrow of the first flags the
        // second in the word's arithmetic. Only the first flag is taken, and the search
        // goes on from the byte after it, in a word of its own.
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
