//! The login event: one per login attempt, one JSON object per line in the
//! event log. It is the shared schema of `serve` (writer), `triage` and
//! `load --replay` (readers). It holds no secret, by construction: there is no
//! field a password or token could go in.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginEvent {
    /// Server time the attempt arrived, RFC 3339 with milliseconds.
    pub ts: String,
    /// `ok`, `invalid_credentials`, `rate_limited`, `overloaded`,
    /// `unavailable`, `bad_request` or `error`.
    pub outcome: String,
    pub status: u16,
    pub user: String,
    pub ip: String,
    pub region: String,
    pub platform: String,
    pub app_version: String,
    pub instance: String,
    pub server_version: String,
    pub db_role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The timestamp the client sent: recorded, never trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ts: Option<String>,
    pub total_ms: f64,
    pub queue_ms: f64,
    pub hash_ms: f64,
    pub db_ms: f64,
    pub session_ms: f64,
    pub request_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_missing_fields() {
        let e = LoginEvent {
            ts: "2026-11-26T06:00:00.000Z".into(),
            outcome: "ok".into(),
            status: 200,
            user: "siokcronin".into(),
            total_ms: 31.5,
            ..Default::default()
        };
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains("shard"), "absent shard is omitted: {line}");
        assert_eq!(serde_json::from_str::<LoginEvent>(&line).unwrap(), e);
        let sparse: LoginEvent = serde_json::from_str(r#"{"ts":"x","total_ms":3}"#).unwrap();
        assert_eq!(sparse.total_ms, 3.0);
    }
}
