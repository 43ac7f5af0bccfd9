//! Capture times to FILETIMEs: PowerShell's `/Date(ms)/`, ISO-8601 with or without an offset,
//! and how a local time without an offset is brought to UTC (`--capture-tz`, else the image's
//! bias, else UTC).
use super::Precision;
use crate::filetime;
use std::collections::BTreeSet;

/// FILETIMEs below one day after 1601 are zero timestamps shown in some local time zone
/// (`1601-01-01T01:00:00+01:00`, or `1600-12-31` when the offset was applied the other way).
const ZERO_WINDOW_TICKS: i128 = 24 * 3600 * filetime::TICKS_PER_SECOND;

/// How local times that carry no UTC offset are converted.
#[derive(Clone, Debug, Default)]
pub struct TimeContext {
    /// `--capture-tz`, in minutes east of UTC.
    pub capture_tz_minutes: Option<i64>,
    /// The image's offset (minutes east of UTC, i.e. minus KUSER TimeZoneBias).
    pub image_offset_minutes: Option<i64>,
}

/// Parses a PowerShell / ISO-8601 date into a FILETIME with its precision. Accepts
/// `/Date(ms)/` (5.1, UTC), `/Date(ms+hhmm)/`, RFC 3339 with `Z` or an offset, and naive local
/// times (converted with `--capture-tz`, else the image's bias, else taken as UTC). `precision` is
/// the format's own, for the ISO forms; the zone source used is added to `tz_used`.
pub fn parse_date(
    text: &str,
    precision: Precision,
    time: &TimeContext,
    tz_used: &mut BTreeSet<&'static str>,
) -> std::result::Result<(u64, Precision), String> {
    let t = text.trim();
    if let Some(inner) = t
        .strip_prefix("/Date(")
        .or_else(|| t.strip_prefix("\\/Date("))
    {
        let inner = inner.trim_end_matches('/').trim_end_matches('\\');
        let inner = inner
            .strip_suffix(')')
            .ok_or_else(|| format!("bad date {t:?}"))?;
        // An optional `+hhmm` suffix names the local zone; the number itself is UTC.
        let digits_end = inner
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '+' || *c == '-')
            .map(|(i, _)| i)
            .unwrap_or(inner.len());
        let ms: i64 = inner
            .get(..digits_end)
            .unwrap_or("")
            .parse()
            .map_err(|_| format!("bad date {t:?}"))?;
        let ticks = (ms as i128) * 10_000 + filetime::UNIX_EPOCH_TICKS;
        tz_used.insert("utc");
        return Ok((clamp_zero(ticks, t)?, Precision::Millisecond));
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        let has_offset = !(t.ends_with('Z') || t.ends_with('z'));
        tz_used.insert(if has_offset { "offset_in_file" } else { "utc" });
        return Ok((clamp_zero(timestamp_ticks(ts), t)?, precision));
    }
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        let (offset, source) = match (time.capture_tz_minutes, time.image_offset_minutes) {
            (Some(m), _) => (m, "capture_tz"),
            (None, Some(m)) => (m, "image_bias"),
            (None, None) => (0, "assumed_utc"),
        };
        tz_used.insert(source);
        let as_utc = dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|_| format!("date out of range {t:?}"))?
            .timestamp();
        let ticks = timestamp_ticks(as_utc) - (offset as i128) * 60 * filetime::TICKS_PER_SECOND;
        return Ok((clamp_zero(ticks, t)?, precision));
    }
    Err(format!("bad date {t:?}"))
}

fn timestamp_ticks(ts: jiff::Timestamp) -> i128 {
    (ts.as_second() as i128) * filetime::TICKS_PER_SECOND
        + (ts.subsec_nanosecond() as i128) / 100
        + filetime::UNIX_EPOCH_TICKS
}

fn clamp_zero(ticks: i128, text: &str) -> std::result::Result<u64, String> {
    if ticks < ZERO_WINDOW_TICKS {
        if ticks < -ZERO_WINDOW_TICKS {
            return Err(format!("date before 1601 {text:?}"));
        }
        return Ok(0);
    }
    u64::try_from(ticks).map_err(|_| format!("date out of range {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureFormat;

    fn ctx_parse(format: CaptureFormat, text: &str, tz: &TimeContext) -> Option<(u64, Precision)> {
        parse_date(text, format.precision(), tz, &mut BTreeSet::new()).ok()
    }

    #[test]
    fn dates_in_every_form() {
        let tz = TimeContext::default();
        let ms = 1_710_406_752_123i64;
        let expect = filetime::from_unix_millis(ms).unwrap();
        assert_eq!(
            ctx_parse(CaptureFormat::Ps51, "/Date(1710406752123)/", &tz),
            Some((expect, Precision::Millisecond))
        );
        assert_eq!(
            ctx_parse(CaptureFormat::Ps51, "/Date(1710406752123+0100)/", &tz),
            Some((expect, Precision::Millisecond))
        );
        assert_eq!(
            ctx_parse(CaptureFormat::Ps51, "/Date(-11644473600000)/", &tz),
            Some((0, Precision::Millisecond))
        );
        for zero in [
            "1601-01-01T01:00:00+01:00",
            "1600-12-31T19:00:00-05:00",
            "1601-01-01T00:00:00Z",
        ] {
            assert_eq!(
                ctx_parse(CaptureFormat::Ps7, zero, &tz).map(|t| t.0),
                Some(0),
                "{zero}"
            );
        }
        let local = TimeContext {
            capture_tz_minutes: Some(60),
            image_offset_minutes: Some(-300),
        };
        assert_eq!(
            ctx_parse(CaptureFormat::Ps7, "2024-03-14T09:59:12.1234567", &local).map(|t| t.0),
            filetime::from_iso("2024-03-14T08:59:12.1234567Z")
        );
        assert!(ctx_parse(CaptureFormat::Ps7, "yesterday", &tz).is_none());
        assert!(ctx_parse(CaptureFormat::Ps51, "/Date(99999999999999999999)/", &tz).is_none());
        assert!(ctx_parse(CaptureFormat::Ps51, "/Date(-99999999999999)/", &tz).is_none());
    }
}
