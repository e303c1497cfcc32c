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

/// The number 1 to 32 lowercase hex digits spell (`None` for any other text). Eight
/// digits at a time as one 64-bit word ([`eight_digits`]), the rest (ids of other
/// lengths) a table look-up a digit: no branch per digit, where a parse with
/// `from_str_radix` checks each digit's case and the sum's overflow.
pub fn lowercase_hex_value(digits: &[u8]) -> Option<u128> {
    if digits.is_empty() || digits.len() > 32 {
        return None;
    }
    let mut chunks = digits.chunks_exact(8);
    let mut value = 0u128;
    for chunk in &mut chunks {
        let chunk = chunk.try_into().expect("chunks of eight");
        value = (value << 32) | u128::from(eight_digits(chunk)?);
    }
    let mut not_hex = 0u8;
    for &b in chunks.remainder() {
        let digit = DIGIT_VALUES[usize::from(b)];
        not_hex |= digit;
        value = (value << 4) | u128::from(digit & 0xf);
    }
    (not_hex & NOT_HEX == 0).then_some(value)
}

/// The number eight lowercase hex digits spell, read as one word: each byte is
/// checked against the digits' and letters' ranges by adding to it what carries it
/// into its top bit at the range's ends (no byte carries into the next, as all are
/// ASCII), and the digits' values are then packed by shifts.
fn eight_digits(digits: [u8; 8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOP: u64 = 0x80 * ONES;
    let word = u64::from_be_bytes(digits);
    if word & TOP != 0 {
        return None;
    }
    let at_least = |low: u64| word + (0x80 - low) * ONES;
    let digit = at_least(0x30) & !at_least(0x3a);
    let letter = at_least(0x61) & !at_least(0x67);
    if (digit | letter) & TOP != TOP {
        return None;
    }
    // '0'..'9' end in 0..9 and 'a'..'f' in 1..6: letters are worth 9 more.
    let nibbles = (word & (0x0f * ONES)) + ((letter & TOP) >> 7) * 9;
    let pairs = (nibbles | (nibbles >> 4)) & 0x00ff_00ff_00ff_00ff;
    let quads = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    Some(((quads | (quads >> 16)) & 0xffff_ffff) as u32)
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
