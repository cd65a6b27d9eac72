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
    /// The flat objects sesame writes take a fast path; anything it does not
    /// handle (escapes, nesting, a missing field) goes through serde_json,
    /// which also words the error of a bad line.
    pub fn parse(line: &'a [u8]) -> Result<Self, String> {
        match Self::parse_fast(line) {
            Some(record) => Ok(record),
            None => Self::parse_serde(line),
        }
    }

    /// The fast path alone: `None` where it hands the line to serde. For
    /// the fuzz target, which checks the two agree.
    pub fn parse_fast(line: &'a [u8]) -> Option<Self> {
        std::str::from_utf8(line).ok().and_then(fast::parse)
    }

    /// The serde path alone (what `parse` falls back to).
    pub fn parse_serde(line: &'a [u8]) -> Result<Self, String> {
        serde_json::from_slice(line).map_err(|e| e.to_string())
    }

    pub fn stages(&self) -> [f64; 4] {
        [self.queue_ms, self.hash_ms, self.db_ms, self.session_ms]
    }
}

mod fast {
    use super::Record;
    use std::borrow::Cow;

    enum Value<'a> {
        Str(&'a str),
        Num(f64),
        Null,
        /// true or false.
        Bool,
    }

    struct Cursor<'a> {
        text: &'a str,
        at: usize,
    }

    impl<'a> Cursor<'a> {
        fn peek(&mut self) -> Option<u8> {
            let bytes = self.text.as_bytes();
            // JSON's whitespace only (not form feed, as Rust's would have it).
            while self.at < bytes.len() && matches!(bytes[self.at], b' ' | b'\t' | b'\n' | b'\r') {
                self.at += 1;
            }
            bytes.get(self.at).copied()
        }

        fn expect(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.at += 1)
        }

        /// A string without escapes, borrowed; `None` for anything else.
        fn string(&mut self) -> Option<&'a str> {
            self.expect(b'"')?;
            let rest = &self.text.as_bytes()[self.at..];
            let end = memchr::memchr2(b'"', b'\\', rest)?;
            if rest[end] != b'"' {
                return None;
            }
            let s = &self.text[self.at..self.at + end];
            // Raw control characters are not JSON: serde refuses them.
            if s.bytes().any(|b| b < 0x20) {
                return None;
            }
            self.at += end + 1;
            Some(s)
        }

        fn value(&mut self) -> Option<Value<'a>> {
            match self.peek()? {
                b'"' => self.string().map(Value::Str),
                b'-' | b'0'..=b'9' => {
                    let rest = &self.text.as_bytes()[self.at..];
                    let len = rest
                        .iter()
                        .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                        .unwrap_or(rest.len());
                    let literal = &self.text[self.at..self.at + len];
                    // JSON's number grammar, not Rust's (which takes `01`,
                    // `1.` or `-.5`), and only finite values, as serde.
                    if !is_json_number(literal.as_bytes()) {
                        return None;
                    }
                    let n: f64 = literal.parse().ok()?;
                    if !n.is_finite() {
                        return None;
                    }
                    self.at += len;
                    Some(Value::Num(n))
                }
                b't' | b'f' | b'n' => {
                    let word = ["true", "false", "null"]
                        .into_iter()
                        .find(|w| self.text[self.at..].starts_with(w))?;
                    self.at += word.len();
                    Some(if word == "null" {
                        Value::Null
                    } else {
                        Value::Bool
                    })
                }
                _ => None,
            }
        }
    }

    /// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    fn is_json_number(s: &[u8]) -> bool {
        let mut i = 0;
        let digits = |i: &mut usize| {
            let start = *i;
            while *i < s.len() && s[*i].is_ascii_digit() {
                *i += 1;
            }
            *i > start
        };
        if s.get(i) == Some(&b'-') {
            i += 1;
        }
        match s.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return false,
        }
        if s.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return false;
            }
        }
        if matches!(s.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(s.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return false;
            }
        }
        i == s.len()
    }

    /// The fields the fast path reads, in the order of its `seen` bits.
    const FIELDS: [&str; 16] = [
        "ts",
        "outcome",
        "user",
        "ip",
        "region",
        "platform",
        "app_version",
        "instance",
        "server_version",
        "db_role",
        "shard",
        "total_ms",
        "queue_ms",
        "hash_ms",
        "db_ms",
        "session_ms",
    ];

    pub fn parse(text: &str) -> Option<Record<'_>> {
        let mut c = Cursor { text, at: 0 };
        // Fields already read: a second one is serde's error to word.
        let mut seen = 0u32;
        let mut r = Record {
            ts: Cow::Borrowed(""),
            outcome: Cow::Borrowed(""),
            user: Cow::Borrowed(""),
            ip: Cow::Borrowed(""),
            region: Cow::Borrowed(""),
            platform: Cow::Borrowed(""),
            app_version: Cow::Borrowed(""),
            instance: Cow::Borrowed(""),
            server_version: Cow::Borrowed(""),
            db_role: Cow::Borrowed(""),
            shard: None,
            total_ms: f64::NAN,
            queue_ms: 0.0,
            hash_ms: 0.0,
            db_ms: 0.0,
            session_ms: 0.0,
        };
        let mut has_ts = false;
        c.expect(b'{')?;
        if c.peek()? != b'}' {
            loop {
                let key = c.string()?;
                c.expect(b':')?;
                let value = c.value()?;
                if let Some(bit) = FIELDS.iter().position(|f| *f == key) {
                    if seen & (1 << bit) != 0 {
                        return None;
                    }
                    seen |= 1 << bit;
                }
                match (key, value) {
                    ("ts", Value::Str(s)) => {
                        r.ts = Cow::Borrowed(s);
                        has_ts = true;
                    }
                    ("outcome", Value::Str(s)) => r.outcome = Cow::Borrowed(s),
                    ("user", Value::Str(s)) => r.user = Cow::Borrowed(s),
                    ("ip", Value::Str(s)) => r.ip = Cow::Borrowed(s),
                    ("region", Value::Str(s)) => r.region = Cow::Borrowed(s),
                    ("platform", Value::Str(s)) => r.platform = Cow::Borrowed(s),
                    ("app_version", Value::Str(s)) => r.app_version = Cow::Borrowed(s),
                    ("instance", Value::Str(s)) => r.instance = Cow::Borrowed(s),
                    ("server_version", Value::Str(s)) => r.server_version = Cow::Borrowed(s),
                    ("db_role", Value::Str(s)) => r.db_role = Cow::Borrowed(s),
                    ("shard", Value::Str(s)) => r.shard = Some(Cow::Borrowed(s)),
                    ("shard", Value::Null) => r.shard = None,
                    ("total_ms", Value::Num(n)) => r.total_ms = n,
                    ("queue_ms", Value::Num(n)) => r.queue_ms = n,
                    ("hash_ms", Value::Num(n)) => r.hash_ms = n,
                    ("db_ms", Value::Num(n)) => r.db_ms = n,
                    ("session_ms", Value::Num(n)) => r.session_ms = n,
                    (
                        "ts" | "outcome" | "user" | "ip" | "region" | "platform" | "app_version"
                        | "instance" | "server_version" | "db_role" | "shard" | "total_ms"
                        | "queue_ms" | "hash_ms" | "db_ms" | "session_ms",
                        _,
                    ) => return None,
                    _ => {}
                }
                match c.peek()? {
                    b',' => c.at += 1,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        c.expect(b'}')?;
        (c.peek().is_none() && has_ts && !r.total_ms.is_nan()).then_some(r)
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
    /// Lines on which the fast path once disagreed with serde (found by the
    /// event_log fuzz target): it must hand them to serde, or read them as
    /// serde does.
    #[test]
    fn the_fast_path_reads_what_serde_reads() {
        let lines = [
            r#"{"ts":"t","total_ms":1,"total_ms":2}"#,
            r#"{"ts":"t","total_ms":2e308}"#,
            r#"{"ts":"t","total_ms":01}"#,
            r#"{"ts":"t","total_ms":1.}"#,
            r#"{"ts":"t","total_ms":-.5}"#,
            r#"{"ts":"t","total_ms":1,"shard":true}"#,
            "{\"ts\":\"t\u{1}x\",\"total_ms\":1}",
            "{\"ts\":\"t\",\u{c}\"total_ms\":1}",
            r#"{"ts":"t","total_ms":1.5e3,"shard":null,"user":"ann"}"#,
        ];
        for line in lines {
            let fast = Record::parse_fast(line.as_bytes());
            let slow = Record::parse_serde(line.as_bytes());
            match (fast, slow) {
                (Some(f), Ok(s)) => assert_eq!(format!("{f:?}"), format!("{s:?}"), "{line}"),
                (Some(f), Err(e)) => panic!("{line}: fast read {f:?}, serde said {e}"),
                (None, _) => {}
            }
        }
        assert!(
            Record::parse_fast(lines[8].as_bytes()).is_some(),
            "a plain line is fast"
        );
    }

    use super::*;

    #[test]
    fn the_fast_path_reads_what_serde_reads_and_leaves_it_the_rest() {
        let lines = [
            r#"{"ts":"2026-11-26T10:05:00.123Z","outcome":"ok","status":200,"user":"ann","ip":"10.0.0.1","shard":null,"total_ms":31.5,"queue_ms":1e-3,"hash_ms":25,"client_ts":"x","extra":true}"#,
            r#" { "total_ms" : -0.5 , "ts" : "t", "shard" : "-40" } "#,
            r#"{"ts":"t","total_ms":1,"user":"a\"b"}"#,
            r#"{"ts":"t","total_ms":1,"client":{"region":"eu"}}"#,
        ];
        for line in lines {
            let serde: Record = serde_json::from_str(line).unwrap();
            let parsed = Record::parse(line.as_bytes()).unwrap();
            assert_eq!(format!("{parsed:?}"), format!("{serde:?}"), "{line}");
        }
        assert!(fast::parse(lines[0]).is_some() && fast::parse(lines[1]).is_some());
        assert!(fast::parse(lines[2]).is_none() && fast::parse(lines[3]).is_none());
        for bad in [
            r#"{"ts":"t"}"#,
            r#"{"ts":"t","total_ms":"3"}"#,
            r#"{"ts":"t","total_ms":3"#,
            "[]",
            "",
        ] {
            assert!(Record::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

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
