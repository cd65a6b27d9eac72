//! The judge: what a baseline and a canary observed, in; a verdict with a
//! score, out. Pure: no I/O and no clock, so every case is a unit test.
//!
//! Like Kayenta's judge, each metric is classified pass or fail by a
//! statistical test *and* an effect size: with thousands of logins a 1%
//! difference is "significant" yet harmless, and a large but noisy
//! difference on ten samples is not yet evidence. The score is the weighted
//! share of passing metrics; a failing critical metric fails the canary
//! whatever the score.

use crate::stats::{self, MannWhitney};
use serde::Serialize;

/// What one side (baseline or canary) observed over the comparison window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observations {
    /// Latency samples in ms of logins that were answered (200 or 401): from
    /// an event log one per login, from Prometheus one quantile per step.
    pub latency_ms: Vec<f64>,
    /// Login attempts, whatever their outcome.
    pub attempts: u64,
    /// Attempts answered 5xx (errors, unavailable, overloaded/shed).
    pub errors: u64,
    /// Attempts answered 401: a canary that breaks verification shows here.
    pub auth_failures: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct JudgeConfig {
    /// A difference counts only with p below 1 - confidence.
    pub confidence: f64,
    /// Canary latency may exceed the baseline's by this share (0.10 = 10%).
    pub allowed_latency_increase: f64,
    /// Canary error rate may exceed the baseline's by this much (absolute).
    pub allowed_error_increase: f64,
    /// Canary 401 rate may exceed the baseline's by this much (absolute).
    pub allowed_auth_failure_increase: f64,
    /// Fewer latency samples than this on a side is no data (a fail).
    pub min_latency_samples: usize,
    pub pass_threshold: f64,
    pub marginal_threshold: f64,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            confidence: 0.98,
            allowed_latency_increase: 0.10,
            allowed_error_increase: 0.01,
            allowed_auth_failure_increase: 0.05,
            min_latency_samples: 10,
            pass_threshold: 95.0,
            marginal_threshold: 75.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Marginal,
    Fail,
}

impl Verdict {
    /// 0 pass, 1 fail, 2 marginal: scripts and Argo's job provider read this.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Marginal => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricResult {
    Pass,
    /// Significantly worse than allowed.
    Fail,
    /// Too little data on a side to judge, which is no pass.
    NoData,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricJudgement {
    pub name: &'static str,
    pub weight: f64,
    pub critical: bool,
    pub result: MetricResult,
    /// Median latency in ms, or a rate in [0, 1].
    pub baseline: Option<f64>,
    pub canary: Option<f64>,
    /// Latency: canary median / baseline median. Rates: canary - baseline.
    pub effect: Option<f64>,
    pub p_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mann_whitney: Option<MannWhitney>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub score: f64,
    pub config: JudgeConfig,
    pub metrics: Vec<MetricJudgement>,
}

// Weights add up to 100. Latency is what users feel and what the SLO holds;
// errors are critical; a rise in 401s alone is marginal (80), since a
// credential-stuffing wave landing on one side can cause it too, and needs a
// person to look.
const LATENCY_WEIGHT: f64 = 50.0;
const ERROR_WEIGHT: f64 = 30.0;
const AUTH_FAILURE_WEIGHT: f64 = 20.0;

pub fn judge(baseline: &Observations, canary: &Observations, config: &JudgeConfig) -> Judgement {
    let metrics = vec![
        judge_latency(baseline, canary, config),
        judge_rate(
            RateMetric {
                name: "error_rate",
                weight: ERROR_WEIGHT,
                critical: true,
                allowed_increase: config.allowed_error_increase,
                hits: |o| o.errors,
            },
            baseline,
            canary,
            config,
        ),
        judge_rate(
            RateMetric {
                name: "auth_failure_rate",
                weight: AUTH_FAILURE_WEIGHT,
                critical: false,
                allowed_increase: config.allowed_auth_failure_increase,
                hits: |o| o.auth_failures,
            },
            baseline,
            canary,
            config,
        ),
    ];
    let total: f64 = metrics.iter().map(|m| m.weight).sum();
    let passed: f64 = metrics
        .iter()
        .filter(|m| m.result == MetricResult::Pass)
        .map(|m| m.weight)
        .sum();
    let score = 100.0 * passed / total;
    let critical_failed = metrics
        .iter()
        .any(|m| m.critical && m.result != MetricResult::Pass);
    let verdict = if critical_failed || score < config.marginal_threshold {
        Verdict::Fail
    } else if score < config.pass_threshold {
        Verdict::Marginal
    } else {
        Verdict::Pass
    };
    Judgement {
        verdict,
        score,
        config: *config,
        metrics,
    }
}

fn judge_latency(
    baseline: &Observations,
    canary: &Observations,
    config: &JudgeConfig,
) -> MetricJudgement {
    let mut m = MetricJudgement {
        name: "latency",
        weight: LATENCY_WEIGHT,
        critical: false,
        result: MetricResult::NoData,
        baseline: stats::median(&baseline.latency_ms),
        canary: stats::median(&canary.latency_ms),
        effect: None,
        p_value: None,
        mann_whitney: None,
        reason: String::new(),
    };
    let fewest = baseline.latency_ms.len().min(canary.latency_ms.len());
    if fewest < config.min_latency_samples {
        m.reason = format!(
            "{} baseline and {} canary samples; {} needed on each side",
            baseline.latency_ms.len(),
            canary.latency_ms.len(),
            config.min_latency_samples
        );
        return m;
    }
    let test = stats::mann_whitney_u(&canary.latency_ms, &baseline.latency_ms)
        .expect("both samples are non-empty");
    let ratio = match (m.canary, m.baseline) {
        (Some(c), Some(b)) if b > 0.0 => c / b,
        (Some(c), Some(_)) if c > 0.0 => f64::INFINITY,
        _ => 1.0,
    };
    let significant = test.p_value < 1.0 - config.confidence;
    let too_slow = ratio > 1.0 + config.allowed_latency_increase;
    m.effect = Some(ratio);
    m.p_value = Some(test.p_value);
    m.mann_whitney = Some(test);
    let change = format!("median {:+.1}%", (ratio - 1.0) * 100.0);
    let allowed = format!("{:.0}%", config.allowed_latency_increase * 100.0);
    (m.result, m.reason) = match (significant, too_slow) {
        (true, true) => (
            MetricResult::Fail,
            format!("{change}, significant, more than the {allowed} allowed"),
        ),
        (true, false) => (
            MetricResult::Pass,
            format!("{change}, significant but within the {allowed} allowed"),
        ),
        (false, _) => (MetricResult::Pass, format!("{change}, not significant")),
    };
    m
}

struct RateMetric {
    name: &'static str,
    weight: f64,
    critical: bool,
    allowed_increase: f64,
    hits: fn(&Observations) -> u64,
}

fn judge_rate(
    metric: RateMetric,
    baseline: &Observations,
    canary: &Observations,
    config: &JudgeConfig,
) -> MetricJudgement {
    let rate =
        |o: &Observations| (o.attempts > 0).then(|| (metric.hits)(o) as f64 / o.attempts as f64);
    let mut m = MetricJudgement {
        name: metric.name,
        weight: metric.weight,
        critical: metric.critical,
        result: MetricResult::NoData,
        baseline: rate(baseline),
        canary: rate(canary),
        effect: None,
        p_value: None,
        mann_whitney: None,
        reason: String::new(),
    };
    let (Some(b), Some(c)) = (m.baseline, m.canary) else {
        m.reason = format!(
            "{} baseline and {} canary attempts",
            baseline.attempts, canary.attempts
        );
        return m;
    };
    let p = stats::proportion_increase_p(
        (metric.hits)(canary),
        canary.attempts,
        (metric.hits)(baseline),
        baseline.attempts,
    );
    let increase = c - b;
    m.effect = Some(increase);
    m.p_value = Some(p);
    let change = format!("{:+.2} points", increase * 100.0);
    let allowed = format!("{:.2}", metric.allowed_increase * 100.0);
    let significant = p < 1.0 - config.confidence;
    (m.result, m.reason) = if significant && increase > metric.allowed_increase {
        (
            MetricResult::Fail,
            format!("{change}, significant, more than the {allowed} allowed"),
        )
    } else if significant {
        (
            MetricResult::Pass,
            format!("{change}, significant but within the {allowed} allowed"),
        )
    } else {
        (MetricResult::Pass, format!("{change}, not significant"))
    };
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(latency_ms: Vec<f64>, attempts: u64, errors: u64, auth_failures: u64) -> Observations {
        Observations {
            latency_ms,
            attempts,
            errors,
            auth_failures,
        }
    }

    fn result(j: &Judgement, name: &str) -> MetricResult {
        j.metrics.iter().find(|m| m.name == name).unwrap().result
    }

    #[test]
    fn a_big_difference_on_few_noisy_samples_is_not_yet_evidence() {
        // Medians 30 vs 36 ms (+20%), but twelve samples spread 10-60 ms.
        let base = vec![12., 45., 30., 18., 55., 22., 38., 27., 60., 15., 33., 29.];
        let canary = vec![14., 50., 36., 20., 58., 25., 41., 36., 36., 17., 44., 31.];
        let j = judge(
            &side(base, 12, 0, 0),
            &side(canary, 12, 0, 0),
            &JudgeConfig::default(),
        );
        assert_eq!(result(&j, "latency"), MetricResult::Pass, "{j:?}");
        assert!(j.metrics[0].effect.unwrap() > 1.1);
        assert!(j.metrics[0].p_value.unwrap() > 0.02);
    }

    #[test]
    fn faster_and_cleaner_passes() {
        let base: Vec<f64> = (0..500).map(|i| 30.0 + (i % 10) as f64).collect();
        let canary: Vec<f64> = base.iter().map(|v| v * 0.7).collect();
        let j = judge(
            &side(base, 500, 5, 20),
            &side(canary, 500, 0, 10),
            &JudgeConfig::default(),
        );
        assert_eq!(j.verdict, Verdict::Pass, "{j:?}");
        assert_eq!(j.score, 100.0);
    }

    #[test]
    fn no_errors_on_either_side_is_a_pass_not_a_division_by_zero() {
        let lat: Vec<f64> = (0..50).map(f64::from).collect();
        let j = judge(
            &side(lat.clone(), 50, 0, 0),
            &side(lat, 50, 0, 0),
            &JudgeConfig::default(),
        );
        assert_eq!(result(&j, "error_rate"), MetricResult::Pass);
        assert_eq!(j.metrics[1].p_value, Some(1.0));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Verdict::Pass.exit_code(), 0);
        assert_eq!(Verdict::Fail.exit_code(), 1);
        assert_eq!(Verdict::Marginal.exit_code(), 2);
    }
}
