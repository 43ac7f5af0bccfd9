//! FILETIME (100 ns ticks since 1601-01-01 UTC) to and from ISO-8601 UTC with 7 fractional digits.
//! i128 arithmetic throughout, so no input value can overflow.

/// Ticks between 1601-01-01 and 1970-01-01.
pub const UNIX_EPOCH_TICKS: i128 = 116_444_736_000_000_000;
pub const TICKS_PER_SECOND: i128 = 10_000_000;

/// Renders a FILETIME as `YYYY-MM-DDTHH:MM:SS.fffffffZ`. Values beyond year 9999 (jiff's range)
/// render as `None`; callers keep the raw integer beside it.
///
/// Written out digit by digit: every decoded endpoint renders one, and formatting through
/// `strftime` costs a tenth of decoding's CPU time.
pub fn to_iso(filetime: u64) -> Option<String> {
    let ticks = filetime as i128 - UNIX_EPOCH_TICKS;
    let secs = ticks.div_euclid(TICKS_PER_SECOND);
    let frac = ticks.rem_euclid(TICKS_PER_SECOND) as u32;
    // The range jiff parses back (`from_iso`), which ends 26 hours before year 9999 does.
    if secs > i128::from(jiff::Timestamp::MAX.as_second()) {
        return None;
    }
    let days = i64::try_from(secs.div_euclid(86_400)).ok()?;
    let second_of_day = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    let mut text = [0u8; 28];
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for i in (at..at + digits).rev() {
            text[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, second_of_day / 3600, 2);
    put(14, second_of_day / 60 % 60, 2);
    put(17, second_of_day % 60, 2);
    put(20, frac, 7);
    for (at, separator) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        text[at] = separator;
    }
    text[27] = b'Z';
    String::from_utf8(text.to_vec()).ok()
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

/// Boot and acquisition time (FILETIMEs), the window a create time must fall in.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub boot: Option<u64>,
    pub acquisition: Option<u64>,
}

impl TimeWindow {
    /// Whether `t` lies in boot..=acquisition: `Some(false)` when a known bound excludes it,
    /// `Some(true)` when both bounds are known and include it, `None` when an unknown bound
    /// decides. Flagging a time as out of range needs `Some(false)`; counting it as evidence of a
    /// time field needs `Some(true)`: an unknown bound is neither an accusation nor a proof.
    pub fn contains(&self, t: u64) -> Option<bool> {
        if self.boot.is_some_and(|b| t < b) || self.acquisition.is_some_and(|a| t > a) {
            return Some(false);
        }
        (self.boot.is_some() && self.acquisition.is_some()).then_some(true)
    }
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

    /// The digit-by-digit rendering against jiff's `strftime` over the whole range, its edges and
    /// the day and year boundaries.
    #[test]
    fn rendering_agrees_with_jiff() {
        fn by_jiff(filetime: u64) -> Option<String> {
            let ticks = filetime as i128 - UNIX_EPOCH_TICKS;
            let secs = ticks.div_euclid(TICKS_PER_SECOND);
            let frac = ticks.rem_euclid(TICKS_PER_SECOND);
            let ts = jiff::Timestamp::from_second(i64::try_from(secs).ok()?).ok()?;
            Some(format!("{}.{:07}Z", ts.strftime("%Y-%m-%dT%H:%M:%S"), frac))
        }
        // 10000-01-01T00:00:00Z is 253,402,300,800 Unix seconds.
        let last_9999 = from_unix_parts(253_402_300_800, 0).unwrap() - 1;
        let mut values = vec![
            0,
            1,
            9_999_999,
            10_000_000,
            last_9999,
            last_9999 + 1,
            u64::MAX,
        ];
        for year in [1601, 1700, 1900, 1970, 2000, 2024, 2100, 2400, 9999] {
            for date in [
                "01-01T00:00:00",
                "02-28T23:59:59",
                "03-01T00:00:00",
                "12-31T23:59:59",
            ] {
                // (jiff cannot parse the last day of 9999 itself.)
                if let Some(t) = from_iso(&format!("{year}-{date}Z")) {
                    values.extend([t, t.saturating_sub(1), t + 1]);
                }
            }
        }
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            values.push(seed % (last_9999 + 1000));
        }
        for v in values {
            assert_eq!(to_iso(v), by_jiff(v), "{v}");
        }
    }

    #[test]
    fn extremes_do_not_panic() {
        assert!(to_iso(u64::MAX).is_none());
        assert!(from_iso("not a date").is_none());
        assert!(from_iso("1500-01-01T00:00:00Z").is_none());
    }

    #[test]
    fn time_window_unknown_bounds_decide_nothing() {
        let both = TimeWindow {
            boot: Some(100),
            acquisition: Some(200),
        };
        assert_eq!(both.contains(99), Some(false));
        assert_eq!(both.contains(100), Some(true));
        assert_eq!(both.contains(200), Some(true));
        assert_eq!(both.contains(201), Some(false));
        let boot_only = TimeWindow {
            boot: Some(100),
            acquisition: None,
        };
        assert_eq!(boot_only.contains(99), Some(false));
        assert_eq!(boot_only.contains(u64::MAX), None);
        assert_eq!(TimeWindow::default().contains(0), None);
    }
}
