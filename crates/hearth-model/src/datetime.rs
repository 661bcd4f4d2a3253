//! FHIR dates as ranges of time: `2020` is the whole year, `2020-03-01T10:00Z`
//! is one second. History (`_since`, `_at`) and search compare these ranges.

use chrono::{DateTime, FixedOffset, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// A half-open range of instants `[start, end)` in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: i64,
    pub end: i64,
}

/// Parses a FHIR date, dateTime or instant into the range it denotes.
/// A value without a time zone is read as UTC.
pub fn range(text: &str) -> Option<Range> {
    let (date_part, time_part) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut parts = date_part.split('-');
    let year: i32 = parse_digits(parts.next()?, 4)?;
    let month = optional_digits(parts.next(), 2)?;
    let day = optional_digits(parts.next(), 2)?;
    if parts.next().is_some() {
        return None;
    }
    let start_date = NaiveDate::from_ymd_opt(year, month.unwrap_or(1), day.unwrap_or(1))?;
    let Some(time) = time_part else {
        let end_date = match (month, day) {
            (None, _) => start_date.checked_add_months(Months::new(12))?,
            (Some(_), None) => start_date.checked_add_months(Months::new(1))?,
            (Some(_), Some(_)) => start_date.succ_opt()?,
        };
        return Some(Range {
            start: utc_ms(start_date.and_time(NaiveTime::MIN)),
            end: utc_ms(end_date.and_time(NaiveTime::MIN)),
        });
    };
    day?;
    let (clock, offset) = split_zone(time)?;
    let (hms, fraction) = match clock.split_once('.') {
        Some((h, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (h, Some(f)),
        Some(_) => return None,
        None => (clock, None),
    };
    let mut fields = hms.split(':');
    let hour: u32 = parse_digits(fields.next()?, 2)?;
    let minute: u32 = parse_digits(fields.next()?, 2)?;
    let second = optional_digits(fields.next(), 2)?;
    if fields.next().is_some() {
        return None;
    }
    let naive = start_date.and_hms_opt(hour, minute, second.unwrap_or(0))?;
    let local = offset.from_local_datetime(&naive).single()?;
    let start = local.timestamp_millis();
    // Precision: minutes without seconds, whole seconds, or the given fraction.
    let width = match (second, fraction) {
        (None, _) => 60_000,
        (Some(_), None) => 1_000,
        (Some(_), Some(f)) => {
            let digits = f.len().min(3) as u32;
            let millis: i64 = f[..digits as usize].parse().ok()?;
            return Some(Range {
                start: start + millis * 10_i64.pow(3 - digits),
                end: start + millis * 10_i64.pow(3 - digits) + 10_i64.pow(3 - digits),
            });
        }
    };
    Some(Range {
        start,
        end: start + width,
    })
}

/// Formats milliseconds since the epoch as a FHIR instant (UTC, millisecond precision).
pub fn format_instant(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => String::new(),
    }
}

/// The current time in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Converts milliseconds since the epoch to a chrono UTC time.
pub fn to_utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn split_zone(time: &str) -> Option<(&str, FixedOffset)> {
    if let Some(clock) = time.strip_suffix('Z') {
        return Some((clock, FixedOffset::east_opt(0)?));
    }
    match time.rfind(['+', '-']) {
        Some(pos) => {
            let (clock, zone) = time.split_at(pos);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            let hours: i32 = parse_digits(h, 2)?;
            let minutes: i32 = parse_digits(m, 2)?;
            if hours > 14 || minutes > 59 {
                return None;
            }
            Some((
                clock,
                FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))?,
            ))
        }
        // FHIR requires a zone once a time is given; search and history
        // parameters are lenient and read a missing zone as UTC.
        None => Some((time, FixedOffset::east_opt(0)?)),
    }
}

fn parse_digits<T: std::str::FromStr>(s: &str, len: usize) -> Option<T> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// `Some(None)` for an absent part, `None` for a malformed one.
fn optional_digits(part: Option<&str>, len: usize) -> Option<Option<u32>> {
    match part {
        None => Some(None),
        Some(p) => parse_digits(p, len).map(Some),
    }
}

fn utc_ms(naive: NaiveDateTime) -> i64 {
    naive.and_utc().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn dates_cover_their_precision() {
        assert_eq!(
            range("2020"),
            Some(Range {
                start: ms("2020-01-01T00:00:00Z"),
                end: ms("2021-01-01T00:00:00Z")
            })
        );
        assert_eq!(
            range("2020-02"),
            Some(Range {
                start: ms("2020-02-01T00:00:00Z"),
                end: ms("2020-03-01T00:00:00Z")
            })
        );
        assert_eq!(
            range("2020-02-29"),
            Some(Range {
                start: ms("2020-02-29T00:00:00Z"),
                end: ms("2020-03-01T00:00:00Z")
            })
        );
        assert_eq!(range("2019-02-29"), None);
    }

    #[test]
    fn times_honour_zones_and_fractions() {
        assert_eq!(
            range("2020-01-01T10:00:00+02:00").unwrap().start,
            ms("2020-01-01T08:00:00Z")
        );
        assert_eq!(
            range("2020-01-01T10:00:00Z").unwrap().end
                - range("2020-01-01T10:00:00Z").unwrap().start,
            1000
        );
        let r = range("2020-01-01T10:00:00.12Z").unwrap();
        assert_eq!(
            (r.start, r.end),
            (
                ms("2020-01-01T10:00:00.120Z"),
                ms("2020-01-01T10:00:00.130Z")
            )
        );
        assert_eq!(
            range("2020-01-01T10:00Z").unwrap().end - range("2020-01-01T10:00Z").unwrap().start,
            60_000
        );
        assert_eq!(range("2020-01-01T25:00:00Z"), None);
        assert_eq!(range("2020-01-01T10:00:00+15:00"), None);
    }

    #[test]
    fn instants_format_in_utc_milliseconds() {
        assert_eq!(
            format_instant(ms("2020-01-01T08:00:00.5Z")),
            "2020-01-01T08:00:00.500Z"
        );
    }
}
