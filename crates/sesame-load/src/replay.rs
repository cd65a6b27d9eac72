//! Replaying a sesame event log (`sesame serve --event-log FILE`): the
//! recorded arrival times, users, addresses, regions, platforms and outcomes.
//!
//! Logs hold no passwords, so each recorded user becomes a seeded synthetic
//! user (in order of first appearance, so one busy account stays one busy
//! account), recorded failures are replayed as wrong passwords, and attempts
//! the server answered without checking the password (rate limited, shed,
//! storage down) are replayed as logins with the right one.

use crate::scenario::{Arrival, ClientProfile, Op};
use anyhow::bail;
use chrono::{DateTime, Utc};
use sesame_domain::event::{LoginEvent, Outcome};
use sesame_toolkit::input;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub struct Replay {
    /// In time order, `at` scaled by the speed.
    pub arrivals: Vec<Arrival>,
    pub clients: Vec<ClientProfile>,
    /// Distinct recorded users; more than the seeded users means several
    /// recorded users share one synthetic user.
    pub distinct_users: usize,
    /// Lines that were not events, and malformed requests (`bad_request`),
    /// which cannot be reproduced without their bodies.
    pub skipped: usize,
    /// From the first to the last arrival, after scaling.
    pub span: Duration,
}

/// Reads the event logs at `paths` (plain or gzip, `-` for standard input,
/// in any order: arrivals are sorted by time) into a replay at `speed`.
pub fn load(paths: &[PathBuf], speed: f64, seeded_users: u32) -> anyhow::Result<Replay> {
    if !(speed.is_finite() && speed > 0.0) {
        bail!("--speed must be a positive number");
    }
    let mut events: Vec<(DateTime<Utc>, LoginEvent)> = Vec::new();
    let mut skipped = 0;
    input::for_each_line(paths, |line| {
        if line.trim_ascii().is_empty() {
            return;
        }
        let parsed = serde_json::from_slice::<LoginEvent>(line)
            .ok()
            .and_then(|e| Some((DateTime::parse_from_rfc3339(&e.ts).ok()?.to_utc(), e)));
        match parsed {
            Some((_, e)) if matches!(e.outcome, None | Some(Outcome::BadRequest)) => skipped += 1,
            Some(event) => events.push(event),
            None => skipped += 1,
        }
    })?;
    if events.is_empty() {
        bail!("{} holds no login events to replay", input::names(paths));
    }
    // Logs merged from several instances interleave; arrival order is by time.
    events.sort_by_key(|(ts, _)| *ts);
    let first = events[0].0;
    let seeded_users = seeded_users.max(1);
    let mut users: HashMap<String, u32> = HashMap::new();
    let mut client_ids: HashMap<ClientProfile, u32> = HashMap::new();
    let mut clients = Vec::new();
    let arrivals: Vec<Arrival> = events
        .into_iter()
        .map(|(ts, event)| {
            let offset = (ts - first).to_std().unwrap_or_default();
            let next_user = users.len() as u32;
            let user = *users.entry(event.user).or_insert(next_user) % seeded_users;
            let profile = ClientProfile {
                ip: event.ip,
                region: event.region,
                platform: event.platform,
                app_version: event.app_version,
            };
            let client = *client_ids.entry(profile.clone()).or_insert_with(|| {
                clients.push(profile);
                clients.len() as u32 - 1
            });
            Arrival {
                at: Some(offset.div_f64(speed)),
                op: if event.outcome == Some(Outcome::InvalidCredentials) {
                    Op::WrongPassword
                } else {
                    Op::Login
                },
                user,
                client,
            }
        })
        .collect();
    Ok(Replay {
        span: arrivals.last().and_then(|a| a.at).unwrap_or_default(),
        arrivals,
        clients,
        distinct_users: users.len(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(ts: &str, user: &str, outcome: &str, ip: &str) -> String {
        let e = LoginEvent {
            ts: ts.into(),
            outcome: Outcome::parse(outcome),
            user: user.into(),
            ip: ip.into(),
            region: "eu-west".into(),
            platform: "ios".into(),
            ..Default::default()
        };
        serde_json::to_string(&e).unwrap()
    }

    #[test]
    fn maps_users_outcomes_and_time() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for l in [
            line("2026-11-26T06:00:01.000Z", "bob", "ok", "10.0.0.2"),
            line("2026-11-26T06:00:00.000Z", "alice", "ok", "10.0.0.1"),
            "not json".to_owned(),
            line(
                "2026-11-26T06:00:00.500Z",
                "alice",
                "invalid_credentials",
                "10.0.0.1",
            ),
            line("2026-11-26T06:00:00.600Z", "x", "bad_request", "10.0.0.3"),
            line(
                "2026-11-26T06:00:02.000Z",
                "carol",
                "rate_limited",
                "10.0.0.1",
            ),
        ] {
            writeln!(f, "{l}").unwrap();
        }
        let replay = load(&[f.path().to_owned()], 2.0, 2).unwrap();
        let at: Vec<f64> = replay
            .arrivals
            .iter()
            .map(|a| a.at.unwrap().as_secs_f64())
            .collect();
        assert_eq!(at, [0.0, 0.25, 0.5, 1.0]);
        let ops: Vec<Op> = replay.arrivals.iter().map(|a| a.op).collect();
        assert_eq!(ops, [Op::Login, Op::WrongPassword, Op::Login, Op::Login]);
        // alice -> 0, bob -> 1, carol -> 2 wraps onto 0 with two seeded users.
        let users: Vec<u32> = replay.arrivals.iter().map(|a| a.user).collect();
        assert_eq!(users, [0, 0, 1, 0]);
        assert_eq!(replay.distinct_users, 3);
        assert_eq!(replay.skipped, 2);
        assert_eq!(replay.clients.len(), 2);
        assert_eq!(
            replay.clients[replay.arrivals[2].client as usize].ip,
            "10.0.0.2"
        );
        assert_eq!(replay.span, Duration::from_secs(1));
    }
}
