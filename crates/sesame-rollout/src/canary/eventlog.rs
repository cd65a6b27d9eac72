//! One side of the comparison from event logs written by `sesame serve`
//! (`SESAME_EVENT_LOG`): one [`LoginEvent`] per line, read through
//! [`sesame_toolkit::input`] (plain or gzip, several files, `-` for standard
//! input), as `sesame triage` reads them. Other lines are skipped and
//! counted, so `kubectl logs` output (events on stdout, diagnostics on
//! stderr, merged) can be judged as it comes, binary garbage included.

use super::judge::Observations;
use sesame_domain::event::{LoginEvent, Outcome};
use sesame_toolkit::input;
use std::path::PathBuf;

pub fn read(paths: &[PathBuf]) -> anyhow::Result<Observations> {
    let mut tally = Tally::default();
    input::for_each_line(paths, |line| tally.line(line))?;
    if tally.skipped > 0 {
        eprintln!(
            "sesame canary: {}: skipped {} lines that are not login events",
            input::names(paths),
            tally.skipped
        );
    }
    Ok(tally.seen)
}

/// The observations in `log` (whole lines), and how many lines were not
/// login events.
pub fn observe(log: &[u8]) -> (Observations, u64) {
    let mut tally = Tally::default();
    input::lines(log).for_each(|line| tally.line(line));
    (tally.seen, tally.skipped)
}

#[derive(Default)]
struct Tally {
    seen: Observations,
    /// Lines that are not login events.
    skipped: u64,
}

impl Tally {
    fn line(&mut self, line: &[u8]) {
        if line.trim_ascii().is_empty() {
            return;
        }
        let event = match serde_json::from_slice::<LoginEvent>(line) {
            Ok(event) if event.outcome.is_some() => event,
            _ => {
                self.skipped += 1;
                return;
            }
        };
        // The caller's mistake, not the service's: no attempt (as in the SLO).
        if event.outcome == Some(Outcome::BadRequest) {
            return;
        }
        let seen = &mut self.seen;
        seen.attempts += 1;
        match event.status {
            200 => seen.latency_ms.push(event.total_ms),
            401 => {
                seen.auth_failures += 1;
                seen.latency_ms.push(event.total_ms);
            }
            s if s >= 500 => seen.errors += 1,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outcomes_and_keeps_latency_of_answered_logins() {
        let log = r#"{"ts":"2026-11-26T06:00:00.000Z","outcome":"ok","status":200,"total_ms":30.5}
{"ts":"2026-11-26T06:00:00.010Z","outcome":"invalid_credentials","status":401,"total_ms":29.0}

{"ts":"2026-11-26T06:00:00.020Z","outcome":"overloaded","status":503,"total_ms":0.4}
{"ts":"2026-11-26T06:00:00.030Z","outcome":"rate_limited","status":429,"total_ms":0.2}
{"ts":"2026-11-26T06:00:00.040Z","outcome":"bad_request","status":400,"total_ms":0.1}
"#;
        let (seen, skipped) = observe(log.as_bytes());
        assert_eq!(skipped, 0);
        assert_eq!(
            seen,
            Observations {
                latency_ms: vec![30.5, 29.0],
                attempts: 4,
                errors: 1,
                auth_failures: 1,
            }
        );
    }

    #[test]
    fn skips_what_is_not_a_login_event() {
        let mixed = r#"{"timestamp":"2026-11-26T06:00:00Z","level":"INFO","fields":{"message":"sesame is serving"}}
not json at all
{"ts":"2026-11-26T06:00:00.000Z","outcome":"ok","status":200,"total_ms":30.5}
"#;
        let (seen, skipped) = observe(mixed.as_bytes());
        assert_eq!(skipped, 2);
        assert_eq!(seen.attempts, 1);
        assert_eq!(seen.latency_ms, vec![30.5]);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_skipped_not_fatal() {
        // Before the shared input, a line of binary garbage (a cut write, a
        // stray control sequence) stopped the whole read as "not UTF-8".
        let mut log = b"{\"ts\":\"2026-11-26T06:00:00.000Z\",\"outcome\":\"ok\",\"status\":200,\"total_ms\":30.5}\n".to_vec();
        log.extend_from_slice(b"\xff\xfe garbage\r\n");
        log.extend_from_slice(b"{\"ts\":\"2026-11-26T06:00:00.100Z\",\"outcome\":\"ok\",\"status\":200,\"total_ms\":31.0}\r\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, &log).unwrap();
        let seen = read(&[path]).unwrap();
        assert_eq!(seen.latency_ms, vec![30.5, 31.0]);
        assert_eq!(seen.attempts, 2);
    }
}
