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
/// A one in each byte of a word (the words of [`eight_digits`] and [`eight_digits_of`]).
const ONES: u64 = 0x0101_0101_0101_0101;

/// The number 1 to 32 lowercase hex digits spell (`None` for any other text). Eight
/// digits at a time as one 64-bit word (`eight_digits`), the rest (ids of other
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

/// Writes `bytes` into `out` as lowercase hex: four bytes at a time as one word
/// (`eight_digits_of`), the rest a digit pair per byte from a table (`hex`'s encoder
/// goes through a chunked iterator, which showed in profiles). `out` must be twice as
/// long as `bytes`. Only ASCII digits and `a`..`f` are written.
pub fn write_lowercase_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    assert_eq!(out.len(), 2 * bytes.len(), "two digits a byte");
    let mut words = bytes.chunks_exact(4);
    let mut digits = out.chunks_exact_mut(8);
    for (word, eight) in (&mut words).zip(&mut digits) {
        let word = u32::from_be_bytes(word.try_into().expect("chunks of four"));
        eight.copy_from_slice(&eight_digits_of(word));
    }
    let rest = digits.into_remainder();
    for (pair, &byte) in rest.chunks_exact_mut(2).zip(words.remainder()) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

/// The eight lowercase hex digits of `word`, most significant first: its nibbles
/// spread one a byte by shifts, then each made a digit, those over 9 moved on to the
/// letters (no byte carries into the next: each is at most 15 before, `f` after).
fn eight_digits_of(word: u32) -> [u8; 8] {
    let word = u64::from(word);
    let halves = ((word & 0xffff_0000) << 16) | (word & 0x0000_ffff);
    let bytes = ((halves & 0x0000_ff00_0000_ff00) << 8) | (halves & 0x0000_00ff_0000_00ff);
    let nibbles = ((bytes & 0x00f0_00f0_00f0_00f0) << 4) | (bytes & 0x000f_000f_000f_000f);
    // A nibble of 10 or more reaches the top bit with 0x76 added.
    let letters = ((nibbles + 0x76 * ONES) >> 7) & ONES;
    (nibbles + b'0' as u64 * ONES + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
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

    #[test]
    fn any_byte_anywhere_in_any_length_is_written_as_two_lowercase_digits() {
        for len in 0..=13 {
            for place in 0..len {
                for byte in 0..=u8::MAX {
                    let mut bytes: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
                    bytes[place] = byte;
                    let mut out = vec![0; 2 * len];
                    write_lowercase_hex(&bytes, &mut out);
                    let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        expected,
                        "{byte:#x} at {place} of {len}"
                    );
                }
            }
        }
    }
}
