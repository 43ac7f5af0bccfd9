//! Capture times to FILETIMEs: PowerShell's `/Date(ms)/`, ISO-8601 with or without an offset,
//! and how a local time without an offset is brought to UTC (`--capture-tz`, else the image's
//! bias, else UTC).
use super::Precision;
use crate::error::Fault;
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
pub(super) fn parse_date(
    text: &str,
    precision: Precision,
    time: &TimeContext,
    tz_used: &mut BTreeSet<&'static str>,
) -> std::result::Result<(u64, Precision), Fault> {
    let t = text.trim();
    if let Some(inner) = t
        .strip_prefix("/Date(")
        .or_else(|| t.strip_prefix("\\/Date("))
    {
        let inner = inner.trim_end_matches('/').trim_end_matches('\\');
        let inner = inner
            .strip_suffix(')')
            .ok_or_else(|| fault!(Time, "bad date {t:?}"))?;
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
            .map_err(|_| fault!(Time, "bad date {t:?}"))?;
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
        return Ok((local_ticks(dt, t, time, tz_used)?, precision));
    }
    Err(fault!(Time, "bad date {t:?}"))
}

/// A local time without an offset to a FILETIME: `--capture-tz`, else the image's bias, else UTC.
fn local_ticks(
    dt: jiff::civil::DateTime,
    t: &str,
    time: &TimeContext,
    tz_used: &mut BTreeSet<&'static str>,
) -> std::result::Result<u64, Fault> {
    let (offset, source) = match (time.capture_tz_minutes, time.image_offset_minutes) {
        (Some(m), _) => (m, "capture_tz"),
        (None, Some(m)) => (m, "image_bias"),
        (None, None) => (0, "assumed_utc"),
    };
    tz_used.insert(source);
    let as_utc = dt
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|_| fault!(Time, "date out of range {t:?}"))?
        .timestamp();
    let ticks = timestamp_ticks(as_utc) - (offset as i128) * 60 * filetime::TICKS_PER_SECOND;
    clamp_zero(ticks, t)
}

/// Which number comes first in a culture's `a/b/yyyy` dates.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DateOrder {
    /// `M/d/yyyy` (en-US).
    MonthFirst,
    /// `d/M/yyyy` (en-GB, fr-FR, es-ES, de-DE's `dd.MM.yyyy`, ...).
    DayFirst,
}

/// `--capture-culture`: the date order a culture name implies (the year-first cultures, ja-JP,
/// zh-CN, ko-KR, tell it by their shape; any order serves them). `None` for a name that is not a
/// culture tag.
pub fn culture_order(name: &str) -> Option<DateOrder> {
    let n = name.trim().to_ascii_lowercase();
    let (lang, region) = n.split_once('-').unwrap_or((n.as_str(), ""));
    let tag_ok = (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_lowercase())
        && region.chars().all(|c| c.is_ascii_alphanumeric());
    if !tag_ok {
        return None;
    }
    // The cultures Windows formats month first; every other one puts the day first.
    Some(match n.as_str() {
        "en-us" | "en-ph" | "es-us" | "fil-ph" | "en-bz" | "en-029" => DateOrder::MonthFirst,
        _ => DateOrder::DayFirst,
    })
}

/// A date as a .NET culture prints it (`1/14/2026 7:17:53 AM`, `14.01.2026 07:17:53`,
/// `2022/3/9 10:31:36`, `2020-08-28 오후 12:52:04`), split but not yet given an order.
#[derive(Clone, Debug)]
pub(super) struct CultureDate {
    /// The date's three numbers as written.
    parts: [u32; 3],
    year_first: bool,
    separator: char,
    hms: (u32, u32, u32),
    /// `Some(true)` after noon, from an AM/PM marker in any of the languages Windows prints one.
    pm: Option<bool>,
    marker_first: bool,
}

/// AM/PM markers: English, Korean (오전/오후), Chinese (上午/下午), Japanese (午前/午後).
const MARKERS: &[(&str, bool)] = &[
    ("AM", false),
    ("PM", true),
    ("A.M.", false),
    ("P.M.", true),
    ("오전", false),
    ("오후", true),
    ("上午", false),
    ("下午", true),
    ("午前", false),
    ("午後", true),
];

impl CultureDate {
    pub(super) fn parse(text: &str) -> std::result::Result<CultureDate, Fault> {
        let t = text.trim();
        let mut date = None;
        let mut hms = None;
        let mut pm = None;
        let mut marker_first = false;
        for token in t.split_whitespace() {
            let upper = token.to_uppercase();
            if let Some((_, is_pm)) = MARKERS.iter().find(|(m, _)| *m == upper) {
                pm = Some(*is_pm);
                marker_first = hms.is_none();
            } else if token.contains(':') {
                let mut n = token
                    .split(':')
                    .map(|p| p.split('.').next().unwrap_or(p).parse::<u32>());
                let (Some(Ok(h)), Some(Ok(m))) = (n.next(), n.next()) else {
                    return Err(fault!(Time, "bad time in {t:?}"));
                };
                let s = match n.next() {
                    Some(Ok(s)) => s,
                    None => 0,
                    Some(Err(_)) => return Err(fault!(Time, "bad time in {t:?}")),
                };
                hms = Some((h, m, s));
            } else if let Some(separator) = ['/', '.', '-'].into_iter().find(|c| token.contains(*c))
            {
                let nums: Vec<&str> = token.trim_end_matches('.').split(separator).collect();
                let parsed: Vec<u32> = nums.iter().filter_map(|p| p.parse().ok()).collect();
                if nums.len() != 3 || parsed.len() != 3 {
                    return Err(fault!(Time, "bad date in {t:?}"));
                }
                let year_first = nums[0].len() == 4;
                if !year_first && nums[2].len() != 4 {
                    return Err(fault!(Time, "no four-digit year in {t:?}"));
                }
                date = Some(([parsed[0], parsed[1], parsed[2]], year_first, separator));
            } else {
                return Err(fault!(Time, "unrecognised {token:?} in date {t:?}"));
            }
        }
        let (parts, year_first, separator) =
            date.ok_or_else(|| fault!(Time, "no date in {t:?}"))?;
        let hms = hms.ok_or_else(|| fault!(Time, "no time in {t:?}"))?;
        Ok(CultureDate {
            parts,
            year_first,
            separator,
            hms,
            pm,
            marker_first,
        })
    }

    /// What the date says of its culture's order: `Some` when only one order makes it a date,
    /// `None` when both do (and differ) or when its shape says (year first, dotted).
    pub(super) fn order_evidence(&self) -> Option<DateOrder> {
        if self.year_first || self.separator == '.' {
            return None;
        }
        match (self.parts[0] > 12, self.parts[1] > 12) {
            (true, false) => Some(DateOrder::DayFirst),
            (false, true) => Some(DateOrder::MonthFirst),
            _ => None,
        }
    }

    /// Whether the order matters and the date does not tell it (both numbers ≤ 12 and unequal).
    pub(super) fn is_ambiguous(&self) -> bool {
        !self.year_first
            && self.separator != '.'
            && self.parts[0] <= 12
            && self.parts[1] <= 12
            && self.parts[0] != self.parts[1]
    }

    /// The .NET pattern this date was written in, for the report.
    pub(super) fn pattern(&self, order: Option<DateOrder>) -> String {
        let s = self.separator;
        let date = if self.year_first {
            format!("yyyy{s}M{s}d")
        } else if self.separator == '.' || order == Some(DateOrder::DayFirst) {
            format!("d{s}M{s}yyyy")
        } else {
            format!("M{s}d{s}yyyy")
        };
        match (self.pm.is_some(), self.marker_first) {
            (true, true) => format!("{date} tt h:mm:ss"),
            (true, false) => format!("{date} h:mm:ss tt"),
            (false, _) => format!("{date} H:mm:ss"),
        }
    }

    fn civil(
        &self,
        order: Option<DateOrder>,
        t: &str,
    ) -> std::result::Result<jiff::civil::DateTime, Fault> {
        let [a, b, c] = self.parts;
        let (year, month, day) = if self.year_first {
            (a, b, c)
        } else if self.separator == '.' {
            (c, b, a)
        } else {
            match order {
                Some(DateOrder::MonthFirst) => (c, a, b),
                Some(DateOrder::DayFirst) => (c, b, a),
                None if a == b => (c, a, b),
                None => return Err(fault!(Time, "day and month cannot be told apart in {t:?}")),
            }
        };
        let (mut h, m, s) = self.hms;
        match self.pm {
            Some(_) if h == 0 || h > 12 => {
                return Err(fault!(Time, "hour {h} beside AM/PM in {t:?}"))
            }
            Some(true) if h < 12 => h += 12,
            Some(false) if h == 12 => h = 0,
            _ => {}
        }
        let small = |v: u32| i8::try_from(v).ok();
        let (Some(month), Some(day), Some(h), Some(m), Some(s), Ok(year)) = (
            small(month),
            small(day),
            small(h),
            small(m),
            small(s),
            i16::try_from(year),
        ) else {
            return Err(fault!(Time, "date out of range {t:?}"));
        };
        jiff::civil::DateTime::new(year, month, day, h, m, s, 0)
            .map_err(|_| fault!(Time, "not a date {t:?}"))
    }
}

/// A culture-formatted local time to a FILETIME (whole seconds), converted like any local time.
/// Any time on 1/1/1601, in any zone, is the zero timestamp.
pub(super) fn parse_culture_date(
    text: &str,
    order: Option<DateOrder>,
    time: &TimeContext,
    tz_used: &mut BTreeSet<&'static str>,
) -> std::result::Result<(u64, Precision), Fault> {
    let t = text.trim();
    let date = CultureDate::parse(t)?;
    let dt = date.civil(order, t)?;
    // FILETIME 0 shown in the host's zone, whatever the zone (and whatever we take it to be).
    if (dt.year(), dt.month(), dt.day()) == (1601, 1, 1) {
        return Ok((0, Precision::Second));
    }
    Ok((local_ticks(dt, t, time, tz_used)?, Precision::Second))
}

fn timestamp_ticks(ts: jiff::Timestamp) -> i128 {
    (ts.as_second() as i128) * filetime::TICKS_PER_SECOND
        + (ts.subsec_nanosecond() as i128) / 100
        + filetime::UNIX_EPOCH_TICKS
}

fn clamp_zero(ticks: i128, text: &str) -> std::result::Result<u64, Fault> {
    if ticks < ZERO_WINDOW_TICKS {
        if ticks < -ZERO_WINDOW_TICKS {
            return Err(fault!(Time, "date before 1601 {text:?}"));
        }
        return Ok(0);
    }
    u64::try_from(ticks).map_err(|_| fault!(Time, "date out of range {text:?}"))
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
