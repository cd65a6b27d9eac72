//! `sesame triage`: what happened to logins, from the event log. One
//! streaming pass (plain or gzip, many instances' files) into bounded state,
//! then a report: the timeline with its change points, who is affected,
//! where the time went, and the causes it recognizes, ranked by the share of
//! the slow logins each explains.

pub mod analyze;
pub mod dims;
pub mod html;
pub mod input;
pub mod record;
mod render;
pub mod rng;
pub mod scan;
pub mod synth;

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

pub use analyze::Report;

#[derive(Debug, Clone, clap::Args)]
pub struct TriageArgs {
    /// Event logs (JSON lines, plain or gzip, `-` for standard input): one
    /// per instance is fine, they are merged by time.
    #[arg(required = true, value_name = "EVENTLOG")]
    pub eventlogs: Vec<PathBuf>,
    /// Only logins at or after this time: RFC 3339, `YYYY-MM-DD HH:MM[:SS]`
    /// in UTC, or a span back from now (`90s`, `30m`, `1h`, `2d`, `1h30m`).
    #[arg(long, env = "SESAME_TRIAGE_SINCE", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only logins before this time (same forms as --since).
    #[arg(long, env = "SESAME_TRIAGE_UNTIL", value_parser = parse_time)]
    pub until: Option<i64>,
    /// A login this slow or slower counts as slow: the latency SLO's
    /// threshold (250 ms in deploy/prometheus).
    #[arg(long, env = "SESAME_TRIAGE_THRESHOLD_MS", default_value_t = 250.0)]
    pub threshold_ms: f64,
    /// Timeline interval (`30s`, `1m`, `5m`, `1h`, any duration); by default
    /// one that gives at most 60 rows.
    #[arg(long, env = "SESAME_TRIAGE_INTERVAL", value_parser = parse_interval)]
    pub interval: Option<i64>,
    /// Print the report as JSON instead of text.
    #[arg(long, env = "SESAME_TRIAGE_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
    /// Also write the report as a self-contained HTML page (inline SVG charts).
    #[arg(long, env = "SESAME_TRIAGE_HTML", value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write the source addresses of the attack triage found (the first
    /// attack cause) as a block list for `sesame serve --deny-list`; no
    /// file is written when there is no attack.
    #[arg(long, env = "SESAME_TRIAGE_DENY_LIST", value_name = "FILE")]
    pub deny_list: Option<PathBuf>,
    /// Least share of slow logins an attribute (or pair) must cover to be named.
    #[arg(long, env = "SESAME_TRIAGE_MIN_SUPPORT", default_value_t = 0.05)]
    pub min_support: f64,
    /// Least risk ratio (how much likelier its logins are to be slow).
    #[arg(long, env = "SESAME_TRIAGE_MIN_RISK_RATIO", default_value_t = 2.0)]
    pub min_risk_ratio: f64,
    /// Kubernetes deployment named in the rollback command.
    #[arg(long, env = "SESAME_TRIAGE_DEPLOYMENT", default_value = "sesame")]
    pub deployment: String,
    /// Marks a moment on the timeline, `LABEL=TIME` (TIME as for --since):
    /// a deploy, an alert, a mitigation. Repeatable; drawn on the HTML
    /// charts and listed in the report.
    #[arg(long = "mark", value_name = "LABEL=TIME", value_parser = parse_mark)]
    pub marks: Vec<(String, i64)>,
}

fn parse_mark(s: &str) -> Result<(String, i64), String> {
    let (label, time) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not LABEL=TIME"))?;
    if label.trim().is_empty() {
        return Err(format!("{s:?} has no label before `=`"));
    }
    Ok((label.trim().to_owned(), parse_time(time.trim())?))
}

fn parse_time(s: &str) -> Result<i64, String> {
    // `1h`: an hour before now (a unit is required, so a bare number is
    // never mistaken for a span).
    if s.ends_with(|c: char| c.is_ascii_alphabetic()) {
        if let Ok(back) = parse_interval(s) {
            return Ok(chrono::Utc::now().timestamp_millis() - back);
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
    .map(|t| t.and_utc().timestamp_millis())
    .ok_or_else(|| {
        format!("{s:?} is not RFC 3339, YYYY-MM-DD HH:MM[:SS] nor a span back from now like 1h")
    })
}

/// A timeline interval, in ms: any duration ([`sesame_toolkit::duration`]),
/// at least a millisecond.
fn parse_interval(s: &str) -> Result<i64, String> {
    let interval = sesame_toolkit::duration::parse(s)?;
    match i64::try_from(interval.as_millis()) {
        Ok(ms) if ms > 0 => Ok(ms),
        Ok(_) => Err("interval must be positive".to_owned()),
        Err(_) => Err(format!("{s:?} is too long an interval")),
    }
}

/// Reads every log into one scan. A reader thread reads and decompresses
/// while this one parses, with a few chunks in flight (bounded memory).
pub fn scan(args: &TriageArgs) -> anyhow::Result<scan::Scan> {
    let mut scan = scan::Scan::new(scan::Settings {
        threshold_ms: args.threshold_ms,
        since_ms: args.since,
        until_ms: args.until,
    });
    let chunks = input::Chunks::read(&args.eventlogs);
    let recycle = chunks.recycler();
    let mut started = 0;
    let mut start_files_to = |scan: &mut scan::Scan, file: usize| {
        for path in args.eventlogs.get(started..file).unwrap_or_default() {
            scan.start_file(&path.display().to_string());
        }
        started = started.max(file);
    };
    for chunk in chunks {
        let chunk = chunk?;
        start_files_to(&mut scan, chunk.file + 1);
        for line in input::lines(&chunk.data) {
            scan.line(line);
        }
        recycle(chunk.data);
    }
    // Empty files count among those read.
    start_files_to(&mut scan, args.eventlogs.len());
    Ok(scan)
}

pub fn report(args: &TriageArgs) -> anyhow::Result<Report> {
    let scan = scan(args)?;
    Ok(analyze::analyze(
        &scan,
        &analyze::Options {
            interval_ms: args.interval,
            min_support: args.min_support,
            min_risk_ratio: args.min_risk_ratio,
            deployment: args.deployment.clone(),
            marks: args.marks.clone(),
        },
    ))
}

pub fn run(args: TriageArgs) -> anyhow::Result<ExitCode> {
    let report = report(&args)?;
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(&report))
            .with_context(|| format!("write {}", path.display()))?;
    }
    if let Some(path) = &args.deny_list {
        write_deny_list(path, &report)?;
    }
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render::text(&report)
    };
    // `sesame triage ... | head` is fine: a closed pipe is no error.
    sesame_toolkit::output::emit(&text)?;
    // Nothing readable at all is an error; some bad lines are a finding.
    if report.lines > 0 && report.bad_lines == report.lines {
        anyhow::bail!("no line of the input is a sesame login event");
    }
    Ok(ExitCode::SUCCESS)
}

/// The addresses of the report's first attack, one per line, with where
/// they came from, as the block list `sesame serve --deny-list` reads;
/// written whole to a temporary file and renamed, so that a service polling
/// the file never reads half of it. Whether there was an attack to write.
pub fn write_deny_list(path: &std::path::Path, report: &Report) -> anyhow::Result<bool> {
    let Some(attack) = report.causes.iter().find(|c| !c.addresses.is_empty()) else {
        return Ok(false);
    };
    let mut text = format!(
        "# sesame triage, {}: {} addresses\n# {}\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        attack.addresses.len(),
        attack.summary
    );
    for address in &attack.addresses {
        text.push_str(address);
        text.push('\n');
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).with_context(|| format!("write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("write {}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_a_label_and_a_time() {
        assert_eq!(
            parse_mark("alert fired=2026-11-26T10:00:00Z"),
            Ok(("alert fired".to_owned(), 1_795_687_200_000))
        );
        assert!(parse_mark("2026-11-26T10:00:00Z").is_err());
        assert!(parse_mark("=2026-11-26T10:00:00Z").is_err());
        assert!(parse_mark("deploy=yesterday").is_err());
    }

    #[test]
    fn times_are_absolute_or_a_span_back_from_now() {
        assert_eq!(parse_time("2026-11-26T10:00:00Z"), Ok(1_795_687_200_000));
        assert_eq!(parse_time("2026-11-26 10:00"), Ok(1_795_687_200_000));
        let now = chrono::Utc::now().timestamp_millis();
        let hour_ago = parse_time("1h").unwrap();
        assert!((now - 3_600_000 - hour_ago).abs() < 5_000, "{hour_ago}");
        // `1y` was refused before triage shared the toolkit's durations;
        // humantime reads it as a year (365.25 days).
        let year_ago = parse_time("1y").unwrap();
        assert!(
            (now - 31_557_600_000 - year_ago).abs() < 5_000,
            "{year_ago}"
        );
        assert!(parse_time("1x").is_err());
        assert!(parse_time("2026").is_err(), "a bare number is neither");
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn intervals_are_durations_of_a_millisecond_or_more() {
        for (text, ms) in [
            ("30s", 30_000),
            ("1m", 60_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("2d", 172_800_000),
            ("90", 90_000),
            ("1.5m", 90_000),
            ("1h30m", 5_400_000),
        ] {
            assert_eq!(parse_interval(text), Ok(ms), "{text}");
        }
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("500us").is_err());
        assert!(parse_interval("5x").is_err());
    }
}
