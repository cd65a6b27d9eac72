//! Durations on the command line: one grammar for every flag of every
//! command (`--max-replica-lag`, `canary --window/--step`, `triage
//! --interval/--since/--until`, `load --duration/--timeout/--stages`).
//!
//! It is [humantime]'s, plus one form of our own: a bare number is seconds.
//!
//! - `5`, `2.5`, `0`: seconds;
//! - a number and a unit: `500ms`, `5s`, `1.5s`, `10m`, `1h`, `3d`, `2w`;
//!   units from `ns` to `y` (`M` is a month, `m` a minute), long names too
//!   (`10min`, `2 hours`);
//! - several of them: `1h30m`, `1h 30m`.
//!
//! Before this module each tool had a grammar of its own; every form any of
//! them documented still parses to the same value. Where they disagreed,
//! humantime's reading won: `5d` (refused by `canary`) and `1y` (refused by
//! `triage`) are now five days and a year, and fractions with a unit
//! (`1.5m`) and bare numbers (`load --timeout 10`) are accepted by every flag.

use std::time::Duration;

/// Parses `text` as a duration (see the module's grammar). Surrounding
/// whitespace is ignored. Ready for clap:
/// `#[arg(value_parser = sesame_toolkit::duration::parse)]`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if is_bare_number(text) {
        return text
            .parse::<f64>()
            .ok()
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
            .ok_or_else(|| format!("{text:?} is too long a duration"));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("{text:?} is not a duration ({e}): write e.g. 90s, 500ms, 10m, 1h30m, 2d, or a number of seconds")
    })
}

/// Digits with at most one decimal point: what a bare number of seconds
/// looks like (not `1e3`, `inf` or `-5`, which `f64` would also take).
fn is_bare_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().any(u8::is_ascii_digit)
        && bytes.iter().all(|b| b.is_ascii_digit() || *b == b'.')
        && bytes.iter().filter(|b| **b == b'.').count() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Result<Duration, String> {
        Ok(Duration::from_secs_f64(s))
    }

    #[test]
    fn a_bare_number_is_seconds() {
        assert_eq!(parse("45"), secs(45.0));
        assert_eq!(parse("2.5"), secs(2.5));
        assert_eq!(parse("0"), secs(0.0));
        assert_eq!(parse(" 5 "), secs(5.0));
        assert_eq!(parse(".5"), secs(0.5));
    }

    /// Every form the four grammars that came before accepted, and what
    /// they meant: `sesame serve --max-replica-lag` (`5`, `2.5`, `5s`,
    /// `500ms`, `1m`), `canary --window` (`90s`, `10m`, `1h`, `45`),
    /// `triage --interval` / `--since` (`30s`, `1m`, `5m`, `1h`, `2d`, `3d`)
    /// and humantime in `load` (`10s`, `1m`, `2h 37min`).
    #[test]
    fn every_form_the_tools_documented_keeps_its_value() {
        let cases = [
            ("5", 5.0),
            ("2.5", 2.5),
            ("5s", 5.0),
            ("500ms", 0.5),
            ("1m", 60.0),
            ("2.5s", 2.5),
            ("1.5m", 90.0),
            ("5 s", 5.0),
            ("90s", 90.0),
            ("10m", 600.0),
            ("1h", 3600.0),
            ("30s", 30.0),
            ("5m", 300.0),
            ("2d", 2.0 * 86_400.0),
            ("3d", 3.0 * 86_400.0),
            ("10s", 10.0),
            ("2h 37min", 9420.0),
            ("1h30m", 5400.0),
        ];
        for (text, seconds) in cases {
            assert_eq!(parse(text), secs(seconds), "{text}");
        }
    }

    #[test]
    fn where_the_old_grammars_refused_humantime_reads() {
        // canary refused days, triage refused years.
        assert_eq!(parse("5d"), secs(5.0 * 86_400.0));
        assert_eq!(parse("1y"), secs(365.25 * 86_400.0));
        // A capital M is a month, a small one a minute.
        assert_eq!(parse("1M"), secs(30.44 * 86_400.0));
    }

    #[test]
    fn nonsense_is_refused_with_the_forms_to_use() {
        for text in [
            "",
            "m",
            "5x",
            "-5",
            "1e3",
            "inf",
            "1.2.3",
            "5 parsecs",
            "1h,",
            "yesterday",
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains("90s"), "{text}: {e}");
        }
        assert!(parse("1e300").is_err());
        assert!(parse(&"9".repeat(400)).unwrap_err().contains("too long"));
    }
}
