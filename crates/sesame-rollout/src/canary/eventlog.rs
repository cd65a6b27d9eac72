//! One side of the comparison from an event log written by `sesame serve`
//! (`SESAME_EVENT_LOG`): one [`LoginEvent`] per line. Other lines are skipped
//! and counted, so `kubectl logs` output (events on stdout, diagnostics on
//! stderr, merged) can be judged as it comes.

use super::judge::Observations;
use anyhow::Context;
use sesame_domain::event::LoginEvent;
use std::io::BufRead;
use std::path::Path;

pub fn read(path: &Path) -> anyhow::Result<Observations> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (seen, skipped) = observe(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    if skipped > 0 {
        eprintln!(
            "sesame canary: {}: skipped {skipped} lines that are not login events",
            path.display()
        );
    }
    Ok(seen)
}

/// The observations, and how many lines were not login events.
pub fn observe(reader: impl BufRead) -> anyhow::Result<(Observations, u64)> {
    let mut seen = Observations::default();
    let mut skipped = 0;
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event = match serde_json::from_str::<LoginEvent>(&line) {
            Ok(event) if !event.outcome.is_empty() => event,
            _ => {
                skipped += 1;
                continue;
            }
        };
        // The caller's mistake, not the service's: no attempt (as in the SLO).
        if event.outcome == "bad_request" {
            continue;
        }
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
    Ok((seen, skipped))
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
        let (seen, skipped) = observe(log.as_bytes()).unwrap();
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
        let (seen, skipped) = observe(mixed.as_bytes()).unwrap();
        assert_eq!(skipped, 2);
        assert_eq!(seen.attempts, 1);
        assert_eq!(seen.latency_ms, vec![30.5]);
    }
}
