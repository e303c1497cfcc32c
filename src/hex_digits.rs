//! Lowercase hex digits: read as the number they spell (the ids of records, traces,
//! spans, turns and conversations, looked up for every record), and written from bytes
//! (the ids normalize makes for every record).

/// What a byte is worth as a lowercase hex digit; [`NOT_HEX`] for any other byte.
const DIGIT_VALUES: [u8; 256] = {
    let mut values = [NOT_HEX; 256];
    let mut i = 0;
    while i < 16 {
        let digit = if i < 10 { b'0' + i } else { b'a' + i - 10 };
        values[digit as usize] = i;
        i += 1;
    }
    values
};
const NOT_HEX: u8 = 0x10;

/// The number 1 to 32 lowercase hex digits spell (`None` for any other text). Two
/// 64-bit halves, each digit a table look-up: no branch per digit, where a parse with
/// `from_str_radix` checks each digit's case and the sum's overflow.
pub fn lowercase_hex_value(digits: &[u8]) -> Option<u128> {
    if digits.is_empty() || digits.len() > 32 {
        return None;
    }
    let (high, low) = digits.split_at(digits.len().saturating_sub(16));
    let mut not_hex = 0u8;
    let mut read = |digits: &[u8]| {
        digits.iter().fold(0u64, |value, &b| {
            let digit = DIGIT_VALUES[usize::from(b)];
            not_hex |= digit;
            (value << 4) | u64::from(digit & 0xf)
        })
    };
    let (high, low) = (read(high), read(low));
    (not_hex & NOT_HEX == 0).then(|| (u128::from(high) << 64) | u128::from(low))
}

/// Writes `bytes` into `out` as lowercase hex, a digit pair per byte from a table
/// (`hex`'s encoder goes through a chunked iterator, which showed in profiles). `out`
/// must be twice as long as `bytes`.
pub fn write_lowercase_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    assert_eq!(out.len(), 2 * bytes.len(), "two digits a byte");
    for (pair, &byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_byte_anywhere_in_any_length_is_read_as_a_lowercase_hex_parse_would() {
        let id = b"0af7651916cd43dd8448eb211c80319c";
        for len in 1..=id.len() {
            for place in 0..len {
                for byte in 0..=u8::MAX {
                    let mut digits = id[..len].to_vec();
                    digits[place] = byte;
                    let lowercase_hex = byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
                    let expected = lowercase_hex.then(|| {
                        u128::from_str_radix(std::str::from_utf8(&digits).unwrap(), 16).unwrap()
                    });
                    assert_eq!(
                        lowercase_hex_value(&digits),
                        expected,
                        "{byte:#x} at {place} of {len}"
                    );
                }
            }
        }
        assert_eq!(lowercase_hex_value(b""), None);
        assert_eq!(lowercase_hex_value(&[b'0'; 33]), None);
    }
}
