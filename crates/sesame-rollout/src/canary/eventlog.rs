//! One side of the comparison from an event log written by `sesame serve`
//! (`SESAME_EVENT_LOG`): one [`LoginEvent`] per line.

use super::judge::Observations;
use anyhow::Context;
use sesame_domain::event::LoginEvent;
use std::io::BufRead;
use std::path::Path;

pub fn read(path: &Path) -> anyhow::Result<Observations> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    observe(std::io::BufReader::new(file)).with_context(|| format!("reading {}", path.display()))
}

pub fn observe(reader: impl BufRead) -> anyhow::Result<Observations> {
    let mut seen = Observations::default();
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event: LoginEvent = serde_json::from_str(&line)
            .with_context(|| format!("line {}: not a login event", index + 1))?;
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
    Ok(seen)
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
        let seen = observe(log.as_bytes()).unwrap();
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
    fn names_the_bad_line() {
        let err = observe("{\"status\":200}\nnot json\n".as_bytes()).unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }
}
