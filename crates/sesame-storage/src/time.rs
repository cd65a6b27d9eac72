//! Timestamps are stored as integer milliseconds since the epoch (UTC): the
//! same column type on every backend, and cheap to compare.

use chrono::{DateTime, Utc};

pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
