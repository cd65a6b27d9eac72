//! `--html FILE`: one self-contained page (inline CSS and SVG, no scripts or
//! fetches) with latency over time, throughput over time and the percentile
//! curve per operation.

use crate::report::{fmt_ms, Latency, Report};
use std::fmt::Write as _;

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

struct Series<'a> {
    name: &'a str,
    points: Vec<(f64, f64)>,
}

/// How the x axis of a chart is drawn.
enum XAxis {
    Seconds,
    /// Percentiles, spaced by log10(1 / (1 - p)).
    Percentile,
}

pub fn render(r: &Report) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sesame load: {}</title><style>{}</style></head><body>",
        escape(&r.target),
        CSS
    );
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

    let secs = |f: fn(&crate::runner::TimelinePoint) -> f64| -> Vec<(f64, f64)> {
        r.timeline
            .iter()
            .map(|p| (p.second as f64 + 1.0, f(p)))
            .collect()
    };
    page.push_str("<h2>Latency over time</h2>");
    page.push_str(&chart(
        &[
            Series {
                name: "p50",
                points: secs(|p| p.p50_ms),
            },
            Series {
                name: "p99",
                points: secs(|p| p.p99_ms),
            },
            Series {
                name: "max",
                points: secs(|p| p.max_ms),
            },
        ],
        XAxis::Seconds,
        "ms (log), by second of completion",
    ));
    page.push_str("<h2>Throughput over time</h2>");
    let mut throughput = vec![Series {
        name: "answered/s",
        points: secs(|p| p.completed as f64),
    }];
    if r.intended.is_some() {
        throughput.insert(
            0,
            Series {
                name: "intended/s",
                points: secs(|p| p.intended as f64),
            },
        );
    }
    throughput.push(Series {
        name: "errors/s",
        points: secs(|p| p.errors as f64),
    });
    page.push_str(&chart(
        &throughput,
        XAxis::Seconds,
        "requests per second (log)",
    ));
    page.push_str("<h2>Latency by percentile</h2>");
    let curves: Vec<Series> = r
        .operations
        .iter()
        .map(|op| Series {
            name: &op.name,
            points: op
                .percentile_curve
                .iter()
                .map(|c| (c.percentile, c.ms))
                .collect(),
        })
        .collect();
    page.push_str(&chart(&curves, XAxis::Percentile, "ms (log)"));
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

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 130.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 36.0;

/// A line chart with a log y axis (latency spans decades).
fn chart(series: &[Series], x_axis: XAxis, y_label: &str) -> String {
    let xs = |x: f64| match x_axis {
        XAxis::Seconds => x,
        // 100 % is drawn one decade past 99.999 %.
        XAxis::Percentile => (1.0 / (1.0 - (x / 100.0).min(0.999_999))).log10(),
    };
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(x, y)| (xs(x), y)))
        .collect();
    if all.is_empty() {
        return "<p>no data</p>".into();
    }
    let (x_min, x_max) = match x_axis {
        XAxis::Seconds => (0.0, all.iter().map(|p| p.0).fold(1.0, f64::max)),
        XAxis::Percentile => (0.0, 6.0),
    };
    // Zeros cannot sit on a log axis; they are drawn on its floor.
    let positive = all.iter().map(|p| p.1).filter(|y| *y > 0.0);
    let y_lo = positive.clone().fold(f64::INFINITY, f64::min);
    let y_hi = positive.fold(0.0, f64::max);
    let (y_lo, y_hi) = if y_hi > 0.0 {
        (
            10f64.powf(y_lo.log10().floor()),
            10f64.powf(y_hi.log10().ceil().max(y_lo.log10().floor() + 1.0)),
        )
    } else {
        (0.1, 1.0)
    };
    let px = |x: f64| LEFT + (x - x_min) / (x_max - x_min).max(1e-9) * (W - LEFT - RIGHT);
    let py = |y: f64| {
        let y = y.max(y_lo);
        TOP + (1.0 - (y / y_lo).log10() / (y_hi / y_lo).log10()) * (H - TOP - BOTTOM)
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">"
    );
    let _ = write!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>",
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    let mut decade = y_lo;
    while decade <= y_hi * 1.0001 {
        let y = py(decade);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            axis_number(decade)
        );
        decade *= 10.0;
    }
    let x_ticks: Vec<(f64, String)> = match x_axis {
        XAxis::Seconds => {
            let step = nice_step(x_max - x_min);
            (0..=((x_max - x_min) / step) as usize)
                .map(|i| {
                    let x = x_min + i as f64 * step;
                    (x, format!("{x}s"))
                })
                .collect()
        }
        XAxis::Percentile => ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "max"]
            .iter()
            .enumerate()
            .map(|(i, label)| (i as f64, (*label).to_owned()))
            .collect(),
    };
    for (x, label) in x_ticks {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            px(x),
            H - BOTTOM + 16.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{}\" class=\"label\">{}</text>",
        H - 4.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(xs(x)), py(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            points.join(" ")
        );
        let ly = TOP + 14.0 + 18.0 * i as f64;
        let _ = write!(
            svg,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/><text x=\"{}\" y=\"{}\">{}</text>",
            W - RIGHT + 10.0,
            W - RIGHT + 30.0,
            W - RIGHT + 36.0,
            ly + 4.0,
            escape(s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn nice_step(span: f64) -> f64 {
    let raw = (span / 8.0).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn axis_number(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CSS: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}td:first-child,th:first-child{text-align:left}tr.op{font-weight:bold;border-top:1px solid #ccc}tr.outcome td:first-child{padding-left:24px}tr.bad{color:#c00}svg text{font:11px sans-serif;fill:#333}.note{color:#666;font-size:12px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_escaping() {
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(60.0), 10.0);
        assert_eq!(nice_step(3.0), 1.0);
        assert_eq!(escape("<a&\">"), "&lt;a&amp;&quot;&gt;");
    }
}
