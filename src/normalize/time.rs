//! Timestamps. Codex leaves `time_unix_nano` unset on log records and puts the event
//! time in the attribute `event.timestamp` (ISO-8601 UTC, milliseconds).

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff...](Z|±HH:MM)` into Unix milliseconds.
pub fn parse_iso8601_ms(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| short_integer(b.get(range)?);
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        // The first three digits, padded with zeros: milliseconds.
        let digits = &b[start..i];
        for place in 0..3 {
            millis = millis * 10 + digits.get(place).map_or(0, |d| i64::from(d - b'0'));
        }
    }
    let offset_minutes = match b.get(i) {
        None | Some(b'Z') | Some(b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let h = num(i + 1..i + 3)?;
            let m = if b.get(i + 3) == Some(&b':') {
                num(i + 4..i + 6)?
            } else {
                num(i + 3..i + 5).unwrap_or(0)
            };
            let total = h * 60 + m;
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// A field of at most four bytes read as `str::parse::<i64>` reads it (a sign, then
/// digits only), without a UTF-8 check or a parser's generality: each event time of
/// a log record is read with six or more of these.
fn short_integer(field: &[u8]) -> Option<i64> {
    let (negative, digits) = match field {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0i64, |value, d| value * 10 + i64::from(d - b'0'));
    Some(if negative { -value } else { value })
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.fffZ`, the form Codex writes in
/// `event.timestamp` (the inverse of [`parse_iso8601_ms`]).
pub fn format_iso8601_ms(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

pub fn nanos_to_ms(nanos: u64) -> i64 {
    (nanos / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codex_event_timestamps() {
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso8601_ms("2026-11-22T01:47:41.009Z"),
            Some(1_795_312_061_009)
        );
        assert_eq!(
            parse_iso8601_ms("2026-11-22T02:47:41.009+01:00"),
            Some(1_795_312_061_009)
        );
        assert_eq!(
            parse_iso8601_ms("2026-11-22T01:47:41.0091234Z"),
            Some(1_795_312_061_009)
        );
        assert_eq!(parse_iso8601_ms("not a time"), None);
        assert_eq!(parse_iso8601_ms("2026-13-22T01:47:41Z"), None);
    }

    #[test]
    fn fields_are_read_as_str_parse_reads_them() {
        let alphabet = [b'0', b'7', b'9', b'+', b'-', b' ', b'a', b'/', b':', 0xc3];
        // Every string of up to four bytes of the alphabet.
        let mut fields: Vec<Vec<u8>> = vec![vec![]];
        let mut of_length = fields.clone();
        for _ in 0..4 {
            of_length = of_length
                .iter()
                .flat_map(|f| alphabet.iter().map(move |&c| [f.as_slice(), &[c]].concat()))
                .collect();
            fields.extend(of_length.iter().cloned());
        }
        for field in &fields {
            let parsed = std::str::from_utf8(field)
                .ok()
                .and_then(|s| s.parse::<i64>().ok());
            assert_eq!(short_integer(field), parsed, "{field:?}");
        }
    }

    #[test]
    fn milliseconds_are_the_first_three_digits_padded() {
        for (fraction, millis) in [
            ("", 0),
            (".", 0),
            (".5", 500),
            (".05", 50),
            (".009", 9),
            (".0091234", 9),
            (".999999", 999),
        ] {
            let text = format!("2026-11-22T01:47:41{fraction}Z");
            assert_eq!(
                parse_iso8601_ms(&text),
                Some(1_795_312_061_000 + millis),
                "{text}"
            );
        }
        assert_eq!(parse_iso8601_ms("2026-11-22T01:47:41.5x"), None);
        assert_eq!(
            parse_iso8601_ms("+026-11-22T01:47:41Z"),
            Some(-61_318_591_939_000)
        );
    }

    #[test]
    fn formats_what_it_parses() {
        assert_eq!(format_iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_iso8601_ms(1_795_312_061_009),
            "2026-11-22T01:47:41.009Z"
        );
        for ms in [0, 951_782_400_123, 1_795_312_061_009, 4_102_444_800_999] {
            assert_eq!(parse_iso8601_ms(&format_iso8601_ms(ms)), Some(ms));
        }
    }
}
