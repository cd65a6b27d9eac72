//! The login event: one per login attempt, one JSON object per line in the
//! event log. It is the shared schema of `serve` (writer), `triage` and
//! `load --replay` (readers). It holds no secret, by construction: there is no
//! field a password or token could go in.

use crate::store::DbRole;
use serde::{Deserialize, Serialize};

/// How a login attempt ended: the `outcome` of its event and the label of
/// its metrics. Shed counters, `sesame triage`, the canary judge and the SLO
/// alerts all read it, so each value names one cause: `overloaded` only when
/// the hash queue refused or dropped the login, `unavailable` when a store
/// could not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// Unknown user or wrong password (indistinguishable).
    InvalidCredentials,
    RateLimited,
    /// Shed by admission, or expired in the hash queue.
    Overloaded,
    /// A database or the session store did not answer within the budget.
    Unavailable,
    /// Malformed or invalid input (400, 413, 415, 422).
    BadRequest,
    /// The client went away before the answer.
    ClientGone,
    /// An internal error.
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::InvalidCredentials,
        Outcome::RateLimited,
        Outcome::Overloaded,
        Outcome::Unavailable,
        Outcome::BadRequest,
        Outcome::ClientGone,
        Outcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::InvalidCredentials => "invalid_credentials",
            Outcome::RateLimited => "rate_limited",
            Outcome::Overloaded => "overloaded",
            Outcome::Unavailable => "unavailable",
            Outcome::BadRequest => "bad_request",
            Outcome::ClientGone => "client_gone",
            Outcome::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The service failed the user (not the user's input or credentials,
    /// not a rate limit): what error-rate SLOs and the canary count.
    pub fn is_service_error(self) -> bool {
        matches!(
            self,
            Outcome::Overloaded | Outcome::Unavailable | Outcome::Error
        )
    }
}

/// The timed stages of a login, in order: the `stage` label of
/// `sesame_login_stage_duration_seconds` and the `*_ms` fields of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Waiting for a hash worker.
    Queue,
    /// Argon2id itself.
    Hash,
    /// The user lookup.
    Db,
    /// Storing the session.
    Session,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Queue, Stage::Hash, Stage::Db, Stage::Session];

    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Queue => "queue",
            Stage::Hash => "hash",
            Stage::Db => "db",
            Stage::Session => "session",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|stage| stage.as_str() == s)
    }

    /// This stage's time in `event`, in milliseconds.
    pub fn ms(self, event: &LoginEvent) -> f64 {
        match self {
            Stage::Queue => event.queue_ms,
            Stage::Hash => event.hash_ms,
            Stage::Db => event.db_ms,
            Stage::Session => event.session_ms,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginEvent {
    /// Server time the attempt arrived, RFC 3339 with milliseconds.
    pub ts: String,
    /// How the attempt ended; absent only in a line that is not sesame's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    pub status: u16,
    pub user: String,
    pub ip: String,
    pub region: String,
    pub platform: String,
    pub app_version: String,
    pub instance: String,
    pub server_version: String,
    /// Which copy of the data answered the lookup; `""` when the login
    /// never reached it.
    #[serde(with = "db_role_text")]
    pub db_role: Option<DbRole>,
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
    /// Why a login was `unavailable` or an `error` (which store, what it
    /// said); never a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// `db_role` as the event log has always written it: the role's name, or
/// `""` when there is none.
mod db_role_text {
    use crate::store::DbRole;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(role: &Option<DbRole>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(role.map_or("", DbRole::as_str))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DbRole>, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "" => Ok(None),
            other => DbRole::parse(other)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown db_role {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_missing_fields() {
        let e = LoginEvent {
            ts: "2026-11-26T06:00:00.000Z".into(),
            outcome: Some(Outcome::Ok),
            db_role: Some(DbRole::Replica),
            status: 200,
            user: "siokcronin".into(),
            total_ms: 31.5,
            ..Default::default()
        };
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains("shard"), "absent shard is omitted: {line}");
        assert!(line.contains(r#""outcome":"ok""#), "{line}");
        assert!(line.contains(r#""db_role":"replica""#), "{line}");
        assert_eq!(serde_json::from_str::<LoginEvent>(&line).unwrap(), e);
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{outcome}\""));
        }
        assert_eq!(Outcome::parse("slow"), None);
        let sparse: LoginEvent = serde_json::from_str(r#"{"ts":"x","total_ms":3}"#).unwrap();
        assert_eq!(sparse.total_ms, 3.0);
        assert_eq!((sparse.outcome, sparse.db_role), (None, None));
        let unreached: LoginEvent =
            serde_json::from_str(r#"{"outcome":"overloaded","db_role":""}"#).unwrap();
        assert_eq!(unreached.db_role, None);
        assert!(serde_json::to_string(&unreached)
            .unwrap()
            .contains(r#""db_role":"""#));
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.as_str()), Some(stage));
        }
        // Counting arrays index by `outcome as usize` (sesame triage).
        for (i, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, i);
        }
        assert!(serde_json::from_str::<LoginEvent>(r#"{"db_role":"leader"}"#).is_err());
    }
}
