//! One event-log line, parsed without copying: the fields triage reads,
//! borrowed from the line (the schema is `sesame_domain::event::LoginEvent`;
//! a DOM per line would cost most of the throughput budget).

use serde::Deserialize;
use std::borrow::Cow;

#[derive(Debug, Deserialize)]
pub struct Record<'a> {
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(default, borrow)]
    pub outcome: Cow<'a, str>,
    #[serde(default, borrow)]
    pub user: Cow<'a, str>,
    #[serde(default, borrow)]
    pub ip: Cow<'a, str>,
    #[serde(default, borrow)]
    pub region: Cow<'a, str>,
    #[serde(default, borrow)]
    pub platform: Cow<'a, str>,
    #[serde(default, borrow)]
    pub app_version: Cow<'a, str>,
    #[serde(default, borrow)]
    pub instance: Cow<'a, str>,
    #[serde(default, borrow)]
    pub server_version: Cow<'a, str>,
    #[serde(default, borrow)]
    pub db_role: Cow<'a, str>,
    #[serde(default, borrow)]
    pub shard: Option<Cow<'a, str>>,
    pub total_ms: f64,
    #[serde(default)]
    pub queue_ms: f64,
    #[serde(default)]
    pub hash_ms: f64,
    #[serde(default)]
    pub db_ms: f64,
    #[serde(default)]
    pub session_ms: f64,
}

impl<'a> Record<'a> {
    pub fn parse(line: &'a [u8]) -> Result<Self, String> {
        serde_json::from_slice(line).map_err(|e| e.to_string())
    }

    pub fn stages(&self) -> [f64; 4] {
        [self.queue_ms, self.hash_ms, self.db_ms, self.session_ms]
    }
}

/// Milliseconds since the Unix epoch. The writer's own form
/// (`2026-11-26T10:05:00.123Z`) is decoded by hand; any other RFC 3339 form
/// goes through chrono.
pub fn parse_ts(ts: &str) -> Option<i64> {
    fast_utc_millis(ts.as_bytes()).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(ts)
            .ok()
            .map(|t| t.timestamp_millis())
    })
}

fn fast_utc_millis(b: &[u8]) -> Option<i64> {
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        b[range].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second, millis) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's).
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
    use super::*;

    #[test]
    fn fast_path_agrees_with_chrono() {
        for ts in [
            "2026-11-26T10:05:00.123Z",
            "2000-02-29T23:59:59.999Z",
            "1970-01-01T00:00:00.000Z",
        ] {
            let expected = chrono::DateTime::parse_from_rfc3339(ts)
                .unwrap()
                .timestamp_millis();
            assert_eq!(fast_utc_millis(ts.as_bytes()), Some(expected), "{ts}");
        }
        assert_eq!(
            parse_ts("2026-11-26T11:05:00+01:00"),
            parse_ts("2026-11-26T10:05:00.000Z")
        );
        assert_eq!(parse_ts("yesterday"), None);
    }
}
