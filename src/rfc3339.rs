//! RFC 3339 §5.6 `date-time` values (the OpenAPI `format: date-time` of a token API's
//! `expireAt` and `createdAt`: `docs/providers.md#openapi-token-api`), read into milliseconds
//! since the Unix epoch. Strict: a full date, `T` (either case, or a space as §5.6 allows),
//! a full time with optional fraction, and `Z` or a numeric offset — a time without an offset
//! names no instant and is refused. Written here rather than taken from a date crate: this is
//! the only date-time format the core reads, and a general date library would cost the wasm
//! builds far more than these lines.

/// Milliseconds since the epoch of an RFC 3339 `date-time`, or `None` if `s` is not one (or is
/// before 1970).
pub fn parse_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(13, b':') && at(16, b':')) {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= month_days[(month - 1) as usize]
        && hour <= 23
        && minute <= 59
        && second <= 60; // a leap second counts as the last second of its minute
    if !valid {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if at(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && at(i + 3, b':') => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let s = h * 3600 + m * 60;
            if *sign == b'+' {
                s
            } else {
                -s
            }
        }
        _ => return None,
    };
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59)
            - offset_s;
    u64::try_from(secs * 1000 + millis).ok()
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (the civil-from-days inverse:
/// eras of 400 years, March-based years so the leap day comes last).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_ms;

    #[test]
    fn instants() {
        let table: &[(&str, Option<u64>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2026-11-30T06:09:45Z", Some(1_796_018_985_000)),
            ("2026-11-30t06:09:45z", Some(1_796_018_985_000)),
            ("2026-11-30 06:09:45Z", Some(1_796_018_985_000)),
            ("2026-11-30T07:09:45+01:00", Some(1_796_018_985_000)),
            ("2026-11-30T00:39:45-05:30", Some(1_796_018_985_000)),
            ("2026-11-30T06:09:45.123Z", Some(1_796_018_985_123)),
            ("2026-11-30T06:09:45.1Z", Some(1_796_018_985_100)),
            ("2026-11-30T06:09:45.123999Z", Some(1_796_018_985_123)),
            ("2000-02-29T00:00:00Z", Some(951_782_400_000)),
            ("2024-02-29T12:00:00Z", Some(1_709_208_000_000)),
            ("2016-12-31T23:59:60Z", Some(1_483_228_799_000)),
            ("2027-11-30T06:09:45.000000Z", Some(1_827_554_985_000)),
        ];
        for (text, want) in table {
            assert_eq!(parse_ms(text), *want, "{text}");
        }
    }

    #[test]
    fn refused() {
        for text in [
            "",
            "2026-11-30",
            "2026-11-30T06:09:45",       // no offset: no instant
            "2026-11-30T06:09Z",         // no seconds
            "2026-11-30T06:09:45.Z",     // empty fraction
            "2026-11-30T06:09:45+0100",  // offset without colon
            "2026-11-30T06:09:45+24:00", // offset hour out of range
            "2026-11-30T06:09:45Zjunk",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z", // not a leap year
            "1900-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-30T24:00:00Z",
            "2026-11-30T23:60:00Z",
            "2026-11-30T23:59:61Z",
            "2026-11-30X06:09:45Z",
            "+2026-11-30T06:09:45Z",
            "2026-1-30T06:09:45Z",
            "1969-12-31T23:59:59Z", // before the epoch
            "2026-11-30T06:09:45.123+01:00x",
            "１９７０-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_ms(text), None, "{text}");
        }
    }
}
