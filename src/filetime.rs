//! FILETIME (100 ns ticks since 1601-01-01 UTC) to and from ISO-8601 UTC with 7 fractional digits.
//! i128 arithmetic throughout, so no input value can overflow.

/// Ticks between 1601-01-01 and 1970-01-01.
pub const UNIX_EPOCH_TICKS: i128 = 116_444_736_000_000_000;
pub const TICKS_PER_SECOND: i128 = 10_000_000;

/// Renders a FILETIME as `YYYY-MM-DDTHH:MM:SS.fffffffZ`. Values beyond year 9999 (jiff's range)
/// render as `None`; callers keep the raw integer beside it.
pub fn to_iso(filetime: u64) -> Option<String> {
    let ticks = filetime as i128 - UNIX_EPOCH_TICKS;
    let secs = ticks.div_euclid(TICKS_PER_SECOND);
    let frac = ticks.rem_euclid(TICKS_PER_SECOND);
    let ts = jiff::Timestamp::from_second(i64::try_from(secs).ok()?).ok()?;
    Some(format!("{}.{:07}Z", ts.strftime("%Y-%m-%dT%H:%M:%S"), frac))
}

/// Parses an RFC 3339 / ISO-8601 timestamp with `Z` or a numeric offset (up to 9 fractional digits)
/// into a FILETIME. Times before 1601 (a zero FILETIME shown in a negative offset is still 1601 UTC)
/// clamp to `None`.
pub fn from_iso(text: &str) -> Option<u64> {
    let ts: jiff::Timestamp = text.trim().parse().ok()?;
    let ticks = from_unix_parts(ts.as_second(), ts.subsec_nanosecond() as i64 / 100)?;
    Some(ticks)
}

/// FILETIME from Unix seconds plus extra 100 ns ticks; `None` if before 1601 or past u64.
pub fn from_unix_parts(unix_seconds: i64, extra_ticks: i64) -> Option<u64> {
    let ticks = (unix_seconds as i128) * TICKS_PER_SECOND + extra_ticks as i128 + UNIX_EPOCH_TICKS;
    u64::try_from(ticks).ok()
}

/// FILETIME from Unix milliseconds (PowerShell 5.1 `\/Date(ms)\/`).
pub fn from_unix_millis(ms: i64) -> Option<u64> {
    let ticks = (ms as i128) * 10_000 + UNIX_EPOCH_TICKS;
    u64::try_from(ticks).ok()
}

/// Signed difference `a - b` in seconds, as f64 (for deltas in reports).
pub fn delta_seconds(a: u64, b: u64) -> f64 {
    (a as i128 - b as i128) as f64 / TICKS_PER_SECOND as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_1601() {
        assert_eq!(to_iso(0).unwrap(), "1601-01-01T00:00:00.0000000Z");
    }

    #[test]
    fn full_precision_round_trip() {
        let ft = 133_590_404_967_890_123u64;
        let s = to_iso(ft).unwrap();
        assert_eq!(s, "2024-05-01T12:34:56.7890123Z");
        assert_eq!(from_iso(&s), Some(ft));
    }

    #[test]
    fn offsets_and_zero_in_local_time() {
        assert_eq!(from_iso("1601-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(from_iso("1600-12-31T19:00:00-05:00"), Some(0));
        assert_eq!(
            from_iso("2024-03-14T09:59:12.1234567+01:00"),
            from_iso("2024-03-14T08:59:12.1234567Z")
        );
        assert_eq!(from_unix_millis(-11_644_473_600_000), Some(0));
    }

    #[test]
    fn extremes_do_not_panic() {
        assert!(to_iso(u64::MAX).is_none());
        assert!(from_iso("not a date").is_none());
        assert!(from_iso("1500-01-01T00:00:00Z").is_none());
    }
}
