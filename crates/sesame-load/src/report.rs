//! The report: achieved against intended rate, latency percentiles per
//! operation and outcome, errors by kind, and the timeline; printed as text
//! and written as JSON (`--json`) or HTML (`--html`).

use crate::runner::{RunData, TimelinePoint};
use crate::scenario::Op;
use crate::stats::{new_histogram, Outcome};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub tool: String,
    /// `open-loop` or `closed-loop`.
    pub mode: String,
    pub schedule: String,
    pub target: String,
    pub started_at: String,
    pub connections: usize,
    pub elapsed_s: f64,
    /// What the schedule asked for; absent in closed-loop mode.
    pub intended: Option<Rate>,
    pub sent: Rate,
    /// Requests that got an HTTP answer, whatever its status.
    pub answered: Rate,
    pub errors: u64,
    /// Transport failures by kind, and statuses the operation did not expect
    /// (`http 503`).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// All operations, from each request's intended send time.
    pub latency: Latency,
    /// All operations, from each request's actual send: what a closed-loop
    /// tool would report. Compare with `latency` to see queueing.
    pub service_time: Latency,
    pub operations: Vec<OperationReport>,
    pub timeline: Vec<TimelinePoint>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Rate {
    pub requests: u64,
    pub per_second: f64,
}

/// Milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p99_9: q(0.999),
            p99_99: q(0.9999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationReport {
    pub name: String,
    pub count: u64,
    pub per_second: f64,
    pub errors: u64,
    pub latency: Latency,
    pub service_time: Latency,
    pub outcomes: Vec<OutcomeReport>,
    /// Latency (ms) by percentile, from 0 to 99.999 and the maximum.
    pub percentile_curve: Vec<CurvePoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutcomeReport {
    /// An HTTP status, or a failure kind such as `timeout`.
    pub outcome: String,
    pub expected: bool,
    pub latency: Latency,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CurvePoint {
    pub percentile: f64,
    pub ms: f64,
}

impl Report {
    pub fn operation(&self, name: &str) -> Option<&OperationReport> {
        self.operations.iter().find(|o| o.name == name)
    }
}

/// What the report says about the run besides the measurements.
pub struct RunInfo {
    pub mode: &'static str,
    pub schedule: String,
    pub target: String,
    pub connections: usize,
    /// The span the schedule covered, for the intended rate (open loop).
    pub intended_span: Option<std::time::Duration>,
}

pub fn build(info: RunInfo, data: RunData) -> Report {
    let elapsed = data.elapsed.as_secs_f64().max(1e-9);
    let rate = |requests: u64, seconds: f64| Rate {
        requests,
        per_second: requests as f64 / seconds.max(1e-9),
    };
    let mut all = new_histogram();
    let mut all_service = new_histogram();
    let mut errors_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut answered = 0;
    let mut operations = Vec::new();
    for op in Op::ALL {
        let outcomes: Vec<(&Outcome, &Histogram<u64>)> = data
            .totals
            .latency
            .range((op, Outcome::Status(0))..=(op, Outcome::Io))
            .map(|((_, outcome), h)| (outcome, h))
            .collect();
        if outcomes.is_empty() {
            continue;
        }
        let mut latency = new_histogram();
        let mut errors = 0;
        for (outcome, h) in &outcomes {
            latency.add(*h).expect("histograms share bounds");
            if let Outcome::Status(_) = outcome {
                answered += h.len();
            }
            if outcome.is_error_for(op) {
                errors += h.len();
                *errors_by_kind.entry(outcome.error_kind()).or_default() += h.len();
            }
        }
        let service = data
            .totals
            .service
            .get(&op)
            .cloned()
            .unwrap_or_else(new_histogram);
        all.add(&latency).expect("histograms share bounds");
        all_service.add(&service).expect("histograms share bounds");
        operations.push(OperationReport {
            name: op.name().into(),
            count: latency.len(),
            per_second: latency.len() as f64 / elapsed,
            errors,
            latency: Latency::of(&latency),
            service_time: Latency::of(&service),
            outcomes: outcomes
                .iter()
                .map(|(outcome, h)| OutcomeReport {
                    outcome: outcome.to_string(),
                    expected: !outcome.is_error_for(op),
                    latency: Latency::of(h),
                })
                .collect(),
            percentile_curve: percentile_curve(&latency),
        });
    }
    Report {
        tool: format!("sesame load {}", env!("CARGO_PKG_VERSION")),
        mode: info.mode.into(),
        schedule: info.schedule,
        target: info.target,
        started_at: data
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        connections: info.connections,
        elapsed_s: elapsed,
        intended: info
            .intended_span
            .map(|span| rate(data.issued, span.as_secs_f64())),
        sent: rate(data.sent, elapsed),
        answered: rate(answered, elapsed),
        errors: errors_by_kind.values().sum(),
        errors_by_kind,
        latency: Latency::of(&all),
        service_time: Latency::of(&all_service),
        operations,
        timeline: data.timeline,
    }
}

/// Points evenly spaced in log(1 / (1 - p)), as HdrHistogram plots them, so
/// the tail gets as much room as the body.
fn percentile_curve(h: &Histogram<u64>) -> Vec<CurvePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<CurvePoint> = (0..=50)
        .map(|i| {
            let percentile = 100.0 * (1.0 - 10f64.powf(-f64::from(i) / 10.0));
            CurvePoint {
                percentile,
                ms: h.value_at_quantile(percentile / 100.0) as f64 / 1000.0,
            }
        })
        .collect();
    points.push(CurvePoint {
        percentile: 100.0,
        ms: h.max() as f64 / 1000.0,
    });
    points
}

/// The report as a terminal table.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} -> {} ({})", r.tool, r.target, r.mode);
    let _ = writeln!(
        out,
        "schedule: {}; {} connections; ran {:.2} s",
        r.schedule, r.connections, r.elapsed_s
    );
    if let Some(intended) = r.intended {
        let _ = writeln!(
            out,
            "intended {} requests ({:.1}/s); sent {} ({:.1}/s); answered {} ({:.1}/s)",
            intended.requests,
            intended.per_second,
            r.sent.requests,
            r.sent.per_second,
            r.answered.requests,
            r.answered.per_second
        );
    } else {
        let _ = writeln!(
            out,
            "sent {} ({:.1}/s); answered {} ({:.1}/s)",
            r.sent.requests, r.sent.per_second, r.answered.requests, r.answered.per_second
        );
    }
    let title = if r.mode == "closed-loop" {
        "latency (ms; closed loop: measured from each actual send, a ceiling test, not user latency)"
    } else {
        "latency (ms, from each request's intended send time)"
    };
    let _ = writeln!(out, "\n{title}");
    let _ = writeln!(
        out,
        "{:<26} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "operation / outcome",
        "count",
        "rate/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        "errors"
    );
    let row =
        |out: &mut String, name: &str, l: &Latency, rate: Option<f64>, errors: Option<u64>| {
            let _ = writeln!(
                out,
                "{:<26} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
                name,
                l.count,
                rate.map(|r| format!("{r:.1}")).unwrap_or_default(),
                fmt_ms(l.p50),
                fmt_ms(l.p90),
                fmt_ms(l.p99),
                fmt_ms(l.p99_9),
                fmt_ms(l.p99_99),
                fmt_ms(l.max),
                errors.map(|e| e.to_string()).unwrap_or_default()
            );
        };
    for op in &r.operations {
        row(
            &mut out,
            &op.name,
            &op.latency,
            Some(op.per_second),
            Some(op.errors),
        );
        for o in &op.outcomes {
            let mark = if o.expected { "" } else { " !" };
            row(
                &mut out,
                &format!("  {}{mark}", o.outcome),
                &o.latency,
                None,
                None,
            );
        }
    }
    row(
        &mut out,
        "all",
        &r.latency,
        Some(r.answered.per_second),
        Some(r.errors),
    );
    if r.mode != "closed-loop" {
        row(&mut out, "all, service time", &r.service_time, None, None);
    }
    if r.errors_by_kind.is_empty() {
        let _ = writeln!(out, "\nerrors: none");
    } else {
        let kinds: Vec<String> = r
            .errors_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind}: {n}"))
            .collect();
        let _ = writeln!(out, "\nerrors: {} ({})", r.errors, kinds.join(", "));
    }
    out
}

pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_spans_body_and_tail() {
        let mut h = new_histogram();
        for v in 1..=100_000u64 {
            h.record(v).unwrap();
        }
        let curve = percentile_curve(&h);
        assert_eq!(curve.first().unwrap().percentile, 0.0);
        assert!((curve[50].percentile - 99.999).abs() < 1e-9);
        assert_eq!(curve.last().unwrap().percentile, 100.0);
        assert!(curve.windows(2).all(|w| w[0].ms <= w[1].ms));
        let l = Latency::of(&h);
        assert!((l.p99 - 99.0).abs() < 0.1, "{l:?}");
    }
}
