//! `sesame canary`: is the new version at least as good as the old one?
//! Reads both sides from event logs or Prometheus, asks the [`judge`], and
//! answers with an exit code a pipeline can act on.

pub mod eventlog;
pub mod judge;
pub mod prometheus;

use chrono::{DateTime, Utc};
use judge::{JudgeConfig, Judgement, MetricResult, Observations};
use sesame_domain::{Clock, SystemClock};
use sesame_toolkit::duration;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit code when there was nothing to judge: bad input, Prometheus down.
pub const EXIT_CANNOT_JUDGE: u8 = 3;

/// Compare a canary with its baseline: latency by a Mann-Whitney U test with
/// an effect size, error and 401 rates by a proportion test, weighted into a
/// score. Exit code: 0 pass, 1 fail, 2 marginal, 3 could not judge.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["baseline_log", "prometheus"])))]
pub struct CanaryArgs {
    /// Event logs (JSON lines) written by the baseline instances: plain or
    /// gzip, several files (one per pod, rotated ones), `-` for standard input.
    #[arg(long, env = "SESAME_CANARY_BASELINE_LOG", value_name = "EVENTLOG", num_args = 1.., requires = "canary_log")]
    pub baseline_log: Vec<PathBuf>,
    /// Event logs written by the canary instances over the same period (as
    /// for --baseline-log; only one side can be standard input).
    #[arg(long, env = "SESAME_CANARY_CANARY_LOG", value_name = "EVENTLOG", num_args = 1.., requires = "baseline_log")]
    pub canary_log: Vec<PathBuf>,
    /// Prometheus base URL, e.g. http://prometheus.monitoring:9090.
    #[arg(long, env = "SESAME_CANARY_PROMETHEUS", requires_all = ["baseline", "canary"], conflicts_with = "baseline_log")]
    pub prometheus: Option<String>,
    /// Label selector of the baseline's series, e.g. 'track="stable"'.
    #[arg(long, env = "SESAME_CANARY_BASELINE", requires = "prometheus")]
    pub baseline: Option<String>,
    /// Label selector of the canary's series, e.g. 'track="canary"'.
    #[arg(long, env = "SESAME_CANARY_CANARY", requires = "prometheus")]
    pub canary: Option<String>,
    /// End of the window (RFC 3339; default: now).
    #[arg(long, env = "SESAME_CANARY_END")]
    pub end: Option<DateTime<Utc>>,
    /// Length of the window that ends at --end (e.g. 10m, 1h, 90s, 1h30m).
    #[arg(long, env = "SESAME_CANARY_WINDOW", default_value = "10m", value_parser = duration::parse)]
    pub window: Duration,
    /// Prometheus step: one latency sample per step and side.
    #[arg(long, env = "SESAME_CANARY_STEP", default_value = "30s", value_parser = duration::parse)]
    pub step: Duration,
    /// Latency quantile read from the histogram at each step.
    #[arg(long, env = "SESAME_CANARY_QUANTILE", default_value_t = 0.99)]
    pub quantile: f64,
    /// Confidence a difference needs to count.
    #[arg(long, env = "SESAME_CANARY_CONFIDENCE", default_value_t = 0.98)]
    pub confidence: f64,
    /// Allowed rise of the canary's median latency, as a share (0.10 = 10%).
    #[arg(
        long,
        env = "SESAME_CANARY_MAX_LATENCY_INCREASE",
        default_value_t = 0.10
    )]
    pub max_latency_increase: f64,
    /// Allowed rise of the 5xx rate, absolute (0.01 = one point).
    #[arg(long, env = "SESAME_CANARY_MAX_ERROR_INCREASE", default_value_t = 0.01)]
    pub max_error_increase: f64,
    /// Allowed rise of the 401 rate, absolute.
    #[arg(
        long,
        env = "SESAME_CANARY_MAX_AUTH_FAILURE_INCREASE",
        default_value_t = 0.05
    )]
    pub max_auth_failure_increase: f64,
    /// Latency samples each side needs; fewer is no data, which fails.
    #[arg(long, env = "SESAME_CANARY_MIN_SAMPLES", default_value_t = 10)]
    pub min_samples: usize,
    /// Score at or above which the canary passes.
    #[arg(long, env = "SESAME_CANARY_PASS_THRESHOLD", default_value_t = 95.0)]
    pub pass_threshold: f64,
    /// Score at or above which a non-passing canary is marginal, not failed.
    #[arg(long, env = "SESAME_CANARY_MARGINAL_THRESHOLD", default_value_t = 75.0)]
    pub marginal_threshold: f64,
    /// Print the judgement as JSON.
    #[arg(long, env = "SESAME_CANARY_JSON")]
    pub json: bool,
}

impl CanaryArgs {
    fn judge_config(&self) -> anyhow::Result<JudgeConfig> {
        anyhow::ensure!(
            self.confidence > 0.0 && self.confidence < 1.0,
            "--confidence must be between 0 and 1"
        );
        anyhow::ensure!(
            self.marginal_threshold <= self.pass_threshold,
            "--marginal-threshold must not exceed --pass-threshold"
        );
        Ok(JudgeConfig {
            confidence: self.confidence,
            allowed_latency_increase: self.max_latency_increase,
            allowed_error_increase: self.max_error_increase,
            allowed_auth_failure_increase: self.max_auth_failure_increase,
            min_latency_samples: self.min_samples,
            pass_threshold: self.pass_threshold,
            marginal_threshold: self.marginal_threshold,
        })
    }
}

pub fn run(args: CanaryArgs) -> anyhow::Result<ExitCode> {
    run_with_clock(args, &SystemClock)
}

/// As [`run`], with "now" (the default end of the window) from `clock`.
pub fn run_with_clock(args: CanaryArgs, clock: &dyn Clock) -> anyhow::Result<ExitCode> {
    match evaluate(&args, clock) {
        Ok(judgement) => {
            let report = if args.json {
                serde_json::to_string_pretty(&judgement)? + "\n"
            } else {
                render(&judgement)
            };
            sesame_toolkit::output::emit(&report)?;
            Ok(ExitCode::from(judgement.verdict.exit_code()))
        }
        Err(e) => {
            eprintln!("sesame canary: cannot judge: {e:#}");
            Ok(ExitCode::from(EXIT_CANNOT_JUDGE))
        }
    }
}

pub fn evaluate(args: &CanaryArgs, clock: &dyn Clock) -> anyhow::Result<Judgement> {
    let config = args.judge_config()?;
    let (baseline, canary) = observe(args, clock)?;
    Ok(judge::judge(&baseline, &canary, &config))
}

fn observe(args: &CanaryArgs, clock: &dyn Clock) -> anyhow::Result<(Observations, Observations)> {
    if !args.baseline_log.is_empty() && !args.canary_log.is_empty() {
        let stdin = |paths: &[PathBuf]| paths.iter().any(|p| sesame_toolkit::input::is_stdin(p));
        anyhow::ensure!(
            !(stdin(&args.baseline_log) && stdin(&args.canary_log)),
            "only one side can be read from standard input (-)"
        );
        return Ok((
            eventlog::read(&args.baseline_log)?,
            eventlog::read(&args.canary_log)?,
        ));
    }
    let (Some(url), Some(b), Some(c)) = (&args.prometheus, &args.baseline, &args.canary) else {
        anyhow::bail!(
            "give --baseline-log and --canary-log, or --prometheus with --baseline and --canary"
        );
    };
    let window = prometheus::Window {
        end: args.end.unwrap_or_else(|| clock.now()),
        length: args.window,
        step: args.step,
        quantile: args.quantile,
    };
    let client = prometheus::Client::new(url)?;
    Ok((client.observe(b, &window)?, client.observe(c, &window)?))
}

pub fn render(j: &Judgement) -> String {
    let mut out = String::new();
    let verdict = format!("{:?}", j.verdict).to_uppercase();
    let _ = writeln!(
        out,
        "canary {verdict}: score {:.0} (pass >= {:.0}, marginal >= {:.0})",
        j.score, j.config.pass_threshold, j.config.marginal_threshold
    );
    let _ = writeln!(
        out,
        "{:<18} {:>6}  {:>12}  {:>12}  {:>9}  {:<7}  why",
        "metric", "weight", "baseline", "canary", "p-value", "result"
    );
    for m in &j.metrics {
        let value = |v: Option<f64>| match (v, m.name) {
            (None, _) => "-".to_owned(),
            (Some(v), "latency") => format!("{v:.1} ms"),
            (Some(v), _) => format!("{:.2}%", v * 100.0),
        };
        let result = match m.result {
            MetricResult::Pass => "pass",
            MetricResult::Fail => "FAIL",
            MetricResult::NoData => "NODATA",
        };
        let _ = writeln!(
            out,
            "{:<18} {:>5}{}  {:>12}  {:>12}  {:>9}  {:<7}  {}",
            m.name,
            m.weight,
            if m.critical { "*" } else { " " },
            value(m.baseline),
            value(m.canary),
            m.p_value.map_or("-".into(), |p| format!("{p:.2e}")),
            result,
            m.reason
        );
    }
    let _ = writeln!(
        out,
        "latency is the median of each side; * critical: failing it fails the canary"
    );
    out
}
