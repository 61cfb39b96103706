//! Timestamps on the command line: ISO8601 (`2026-11-24T10:00:00Z`,
//! `2026-11-24T10:00:00.250+02:00`, `2026-11-24`) or epoch milliseconds.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn num(s: &str, what: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} '{s}'"));
    }
    s.parse().map_err(|_| format!("bad {what} '{s}'"))
}

/// Parse an ISO8601 date-time into epoch milliseconds. Without a zone
/// designator the time is taken as UTC.
pub fn parse_iso8601(s: &str) -> Result<i64, String> {
    let err =
        |why: String| format!("invalid time '{s}': {why} (expected e.g. 2026-11-24T10:00:00Z)");
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let parts: Vec<&str> = date.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 {
        return Err(err("date must be YYYY-MM-DD".into()));
    }
    let (y, mo, d) = (
        num(parts[0], "year").map_err(err)?,
        num(parts[1], "month").map_err(err)?,
        num(parts[2], "day").map_err(err)?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return Err(err("no such date".into()));
    }
    // Split off the zone: Z, +HH:MM, -HH:MM, +HHMM, +HH.
    let (time, offset_min) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let zone = &rest[i + 1..];
        let digits: String = zone.chars().filter(|c| *c != ':').collect();
        let (hh, mm) = match digits.len() {
            2 => (num(&digits, "zone").map_err(err)?, 0),
            4 => (
                num(&digits[..2], "zone").map_err(err)?,
                num(&digits[2..], "zone").map_err(err)?,
            ),
            _ => return Err(err(format!("bad zone offset '{zone}'"))),
        };
        if hh > 23 || mm > 59 {
            return Err(err(format!("bad zone offset '{zone}'")));
        }
        let sign = if rest.as_bytes()[i] == b'-' { -1 } else { 1 };
        (&rest[..i], sign * (hh * 60 + mm))
    } else {
        (rest, 0)
    };
    let (mut h, mut mi, mut sec, mut ms) = (0, 0, 0, 0);
    if !time.is_empty() {
        let (hms, frac) = match time.split_once(['.', ',']) {
            Some((a, b)) => (a, Some(b)),
            None => (time, None),
        };
        let f: Vec<&str> = hms.split(':').collect();
        if f.len() < 2 || f.len() > 3 || f.iter().any(|p| p.len() != 2) {
            return Err(err("time must be HH:MM[:SS[.mmm]]".into()));
        }
        h = num(f[0], "hour").map_err(err)?;
        mi = num(f[1], "minute").map_err(err)?;
        if f.len() == 3 {
            sec = num(f[2], "second").map_err(err)?;
        }
        if let Some(frac) = frac {
            num(frac, "fraction").map_err(err)?;
            let padded: String = frac.chars().chain("000".chars()).take(3).collect();
            ms = num(&padded, "fraction").map_err(err)?;
        }
        if h > 23 || mi > 59 || sec > 60 {
            return Err(err("time out of range".into()));
        }
    }
    let days = days_from_civil(y, mo, d);
    Ok((((days * 24 + h) * 60 + mi - offset_min) * 60 + sec) * 1000 + ms)
}

/// A time given as epoch milliseconds (all digits) or ISO8601.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("invalid time '{s}'"));
    }
    parse_iso8601(s)
}

/// Epoch milliseconds as `2026-11-24T10:00:00.000Z`.
pub fn format_ms(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

pub use shard::record::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_iso8601("2026-11-24T10:00:00Z"), Ok(1_795_514_400_000));
        assert_eq!(
            parse_iso8601("2026-11-24T12:00:00+02:00"),
            Ok(1_795_514_400_000)
        );
        assert_eq!(
            parse_iso8601("2026-11-24T07:30:00-0230"),
            Ok(1_795_514_400_000)
        );
        assert_eq!(
            parse_iso8601("2026-11-24T10:00:00.5Z"),
            Ok(1_795_514_400_500)
        );
        assert_eq!(
            parse_iso8601("2026-11-24T10:00:00.123456Z"),
            Ok(1_795_514_400_123)
        );
        assert_eq!(parse_iso8601("2026-11-24T10:00Z"), Ok(1_795_514_400_000));
        assert_eq!(parse_iso8601("2026-11-24"), Ok(1_795_478_400_000));
        assert_eq!(parse_iso8601("2000-02-29T00:00:00"), Ok(951_782_400_000));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30",
            "2025-02-29",
            "2026-11-24T25:00:00Z",
            "2026-11-24T10:00:00+2",
            "26-11-24T10:00:00Z",
            "2026-11-24T10",
        ] {
            assert!(parse_iso8601(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn epoch_ms_or_iso() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
    }

    #[test]
    fn formats_round_trip() {
        for ms in [0, 1_795_514_400_123, 951_782_400_000, -1000] {
            assert_eq!(parse_iso8601(&format_ms(ms)), Ok(ms));
        }
        assert_eq!(format_ms(1_795_514_400_000), "2026-11-24T10:00:00.000Z");
    }
}
