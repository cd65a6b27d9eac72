//! `--html FILE`: one self-contained page (inline CSS and SVG, no scripts or
//! fetches) with latency over time, throughput over time and the percentile
//! curve per operation.

use crate::report::{fmt_ms, Latency, Report};
use crate::runner::TimelinePoint;
use sesame_toolkit::chart::Chart;
use sesame_toolkit::html::{escape, page_start};
use std::fmt::Write as _;

pub fn render(r: &Report) -> String {
    let mut page = page_start(&format!("sesame load: {}", r.target), CSS);
    let _ = write!(
        page,
        "<h1>sesame load report</h1><p>{} &rarr; <b>{}</b> ({}), started {}<br>schedule: {}; {} connections; ran {:.2} s</p>",
        escape(&r.tool),
        escape(&r.target),
        escape(&r.mode),
        escape(&r.started_at),
        escape(&r.schedule),
        r.connections,
        r.elapsed_s
    );
    let mut rates = String::new();
    if let Some(i) = r.intended {
        let _ = write!(rates, "intended {} ({:.1}/s); ", i.requests, i.per_second);
    }
    let _ = write!(
        page,
        "<p>{rates}sent {} ({:.1}/s); answered {} ({:.1}/s); <b>errors {}</b>{}</p>",
        r.sent.requests,
        r.sent.per_second,
        r.answered.requests,
        r.answered.per_second,
        r.errors,
        if r.errors_by_kind.is_empty() {
            String::new()
        } else {
            let kinds: Vec<String> = r
                .errors_by_kind
                .iter()
                .map(|(k, n)| format!("{}: {n}", escape(k)))
                .collect();
            format!(" ({})", kinds.join(", "))
        }
    );
    page.push_str(&table(r));

    let secs = |f: fn(&TimelinePoint) -> f64| -> Vec<(f64, f64)> {
        r.timeline
            .iter()
            .map(|p| (p.second as f64 + 1.0, f(p)))
            .collect()
    };
    let last_second = r
        .timeline
        .iter()
        .map(|p| p.second as f64 + 1.0)
        .fold(1.0, f64::max);
    let over_time = |label: &'static str, caption: &'static str| {
        Chart::new(label)
            .log_y()
            .caption(caption)
            .x_range(0.0, last_second)
            .x_format(|s| format!("{s}s"))
    };
    let latency = over_time("Latency over time", "ms (log), by second of completion")
        .line("p50", secs(|p| p.p50_ms))
        .line("p99", secs(|p| p.p99_ms))
        .line("max", secs(|p| p.max_ms));
    let mut throughput = over_time("Throughput over time", "requests per second (log)");
    if r.intended.is_some() {
        throughput = throughput.line("intended/s", secs(|p| p.intended as f64));
    }
    let throughput = throughput
        .line("answered/s", secs(|p| p.completed as f64))
        .line("errors/s", secs(|p| p.errors as f64));
    let percentiles = r.operations.iter().fold(
        Chart::new("Latency by percentile")
            .log_y()
            .caption("ms (log)")
            .x_range(0.0, 6.0)
            .x_ticks(
                PERCENTILE_TICKS
                    .iter()
                    .zip(0..)
                    .map(|(label, x)| (f64::from(x), (*label).to_owned())),
            ),
        |chart, op| {
            let curve = op.percentile_curve.iter();
            chart.line(&op.name, curve.map(|c| (percentile_x(c.percentile), c.ms)))
        },
    );
    for chart in [latency, throughput, percentiles] {
        let _ = write!(page, "<h2>{}</h2>{}", escape(chart.label()), chart.svg());
    }
    page.push_str("<p class=note>Latency is measured from each request's intended send time (no coordinated omission); service time from its actual send.</p></body></html>\n");
    page
}

fn table(r: &Report) -> String {
    let mut t = String::from("<table><tr><th>operation / outcome</th><th>count</th><th>rate/s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>p99.99</th><th>max</th><th>errors</th></tr>");
    let row = |t: &mut String,
               name: &str,
               class: &str,
               l: &Latency,
               rate: String,
               errors: String| {
        let _ = write!(
            t,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{rate}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{errors}</td></tr>",
            escape(name),
            l.count,
            fmt_ms(l.p50),
            fmt_ms(l.p90),
            fmt_ms(l.p99),
            fmt_ms(l.p99_9),
            fmt_ms(l.p99_99),
            fmt_ms(l.max)
        );
    };
    for op in &r.operations {
        row(
            &mut t,
            &op.name,
            "op",
            &op.latency,
            format!("{:.1}", op.per_second),
            op.errors.to_string(),
        );
        for o in &op.outcomes {
            let class = if o.expected { "outcome" } else { "outcome bad" };
            row(
                &mut t,
                &o.outcome,
                class,
                &o.latency,
                String::new(),
                String::new(),
            );
        }
    }
    row(
        &mut t,
        "all",
        "op",
        &r.latency,
        format!("{:.1}", r.answered.per_second),
        r.errors.to_string(),
    );
    row(
        &mut t,
        "all, service time",
        "outcome",
        &r.service_time,
        String::new(),
        String::new(),
    );
    t.push_str("</table><p class=note>Milliseconds. Outcomes in red are not what the operation expects and count as errors.</p>");
    t
}

/// The percentile axis' labels, a decade of 1 / (1 - p) apart.
const PERCENTILE_TICKS: [&str; 7] = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "max"];

/// Where percentile `p` stands on that axis: log10(1 / (1 - p)), with
/// 100 % drawn one decade past 99.999 %.
fn percentile_x(p: f64) -> f64 {
    (1.0 / (1.0 - (p / 100.0).min(0.999_999))).log10()
}

const CSS: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}td:first-child,th:first-child{text-align:left}tr.op{font-weight:bold;border-top:1px solid #ccc}tr.outcome td:first-child{padding-left:24px}tr.bad{color:#c00}svg text{font:11px sans-serif;fill:#333}.note{color:#666;font-size:12px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_spaced_by_decades() {
        assert_eq!(percentile_x(0.0), 0.0);
        assert!((percentile_x(90.0) - 1.0).abs() < 1e-9);
        assert!((percentile_x(99.9) - 3.0).abs() < 1e-9);
        assert!((percentile_x(100.0) - 6.0).abs() < 1e-9);
    }
}
