//! The report as one self-contained HTML page: inline SVG charts and
//! tables, no script, no external resource, so it can be attached to an
//! incident ticket as is.

use crate::analyze::{duration, Report};
use crate::render::{interval_name, nobody_stands_out, thousands};
use std::fmt::Write;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<f64>,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 30.0;

/// A line chart over the timeline; `log` scales y logarithmically (latency
/// spans decades). Change points are drawn as vertical red lines.
fn chart(r: &Report, title: &str, series: &[Series], log: bool, unit: fn(f64) -> String) -> String {
    let n = r.timeline.len().max(1);
    let all = series.iter().flat_map(|s| s.values.iter().copied());
    let positive = all.clone().filter(|v| *v > 0.0);
    let (lo, hi) = if log {
        let lo = positive.clone().fold(f64::INFINITY, f64::min);
        let hi = positive.fold(0.0, f64::max);
        if hi > 0.0 {
            (lo.min(hi / 10.0), hi * 1.5)
        } else {
            (0.1, 1.0)
        }
    } else {
        (0.0, all.fold(0.0, f64::max).max(1e-9) * 1.1)
    };
    let scale = |v: f64| if log { v.max(lo).ln() } else { v };
    let (slo, shi) = (scale(lo), scale(hi));
    let x = |i: usize| LEFT + (WIDTH - LEFT - 10.0) * i as f64 / (n.max(2) - 1) as f64;
    let y = |v: f64| {
        10.0 + (HEIGHT - BOTTOM - 10.0) * (1.0 - (scale(v) - slo) / (shi - slo).max(1e-12))
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<h3>{}</h3><svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{0}">"#,
        escape(title)
    );
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="10" width="{}" height="{}" fill="#fafafa" stroke="#ccc"/>"##,
        WIDTH - LEFT - 10.0,
        HEIGHT - BOTTOM - 10.0
    );
    for k in 0..=4 {
        let v = if log {
            (slo + (shi - slo) * k as f64 / 4.0).exp()
        } else {
            hi * k as f64 / 4.0
        };
        let _ = write!(
            svg,
            r##"<text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#555">{}</text>"##,
            LEFT - 4.0,
            y(v) + 4.0,
            escape(&unit(v))
        );
    }
    let ticks = 6.min(n);
    for k in 0..ticks {
        let i = k * (n - 1) / (ticks - 1).max(1);
        if let Some(row) = r.timeline.get(i) {
            let anchor = if k + 1 == ticks && ticks > 1 {
                "end"
            } else {
                "middle"
            };
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="{anchor}" fill="#555">{}</text>"##,
                x(i),
                HEIGHT - 10.0,
                escape(row.start.get(11..16).unwrap_or(&row.start))
            );
        }
    }
    for c in &r.change_points {
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="10" y2="{1}" stroke="#d00" stroke-dasharray="4 3"><title>change point {2}</title></line>"##,
            x(c.interval),
            HEIGHT - BOTTOM,
            escape(&c.at)
        );
    }
    for (k, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.8" points="{}"/><text x="{}" y="24" font-size="12" fill="{0}">{}</text>"#,
            s.color,
            points.join(" "),
            LEFT + 10.0 + 90.0 * k as f64,
            escape(s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>sesame triage</title><style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.cause{{background:#fff4e5;padding:.5em 1em;margin:.5em 0;border-left:4px solid #e80}}
code{{background:#f2f2f2;padding:1px 4px}}</style></head><body><h1>sesame triage</h1><p>{} logins in {} file(s), {} to {}; {} slow (&ge; {}).</p>"#,
        thousands(r.logins),
        r.files.len(),
        escape(r.from.as_deref().unwrap_or("-")),
        escape(r.to.as_deref().unwrap_or("-")),
        thousands(r.slow_logins),
        duration(r.threshold_ms)
    );
    if r.bad_lines > 0 {
        let _ = write!(h, "<p>{} bad line(s) skipped.</p>", thousands(r.bad_lines));
    }

    let _ = write!(
        h,
        "<h2>1. Timeline (per {})</h2>",
        interval_name(r.interval_s)
    );
    let col =
        |f: fn(&crate::analyze::Interval) -> f64| r.timeline.iter().map(f).collect::<Vec<_>>();
    h.push_str(&chart(
        r,
        "Latency",
        &[
            Series {
                name: "p50",
                color: "#1565c0",
                values: col(|i| i.p50_ms),
            },
            Series {
                name: "p99",
                color: "#c62828",
                values: col(|i| i.p99_ms),
            },
        ],
        true,
        duration,
    ));
    h.push_str(&chart(
        r,
        "Logins per second",
        &[Series {
            name: "rate",
            color: "#2e7d32",
            values: col(|i| i.rate_per_s),
        }],
        false,
        |v| format!("{v:.0}"),
    ));
    h.push_str(&chart(
        r,
        "Outcomes (% of logins)",
        &[
            Series {
                name: "slow",
                color: "#6a1b9a",
                values: col(|i| i.slow_pct),
            },
            Series {
                name: "401",
                color: "#ef6c00",
                values: col(|i| i.failed_pct),
            },
            Series {
                name: "429",
                color: "#795548",
                values: col(|i| i.rate_limited_pct),
            },
            Series {
                name: "shed",
                color: "#00838f",
                values: col(|i| i.shed_pct),
            },
            Series {
                name: "error",
                color: "#d00",
                values: col(|i| i.error_pct),
            },
        ],
        false,
        |v| format!("{v:.0}%"),
    ));
    for c in &r.change_points {
        let _ = write!(
            h,
            "<p>Change point at {}: p99 {} &rarr; {}.</p>",
            escape(&c.at),
            duration(c.p99_before_ms),
            duration(c.p99_after_ms)
        );
    }

    h.push_str("<h2>2. Who is affected</h2>");
    if r.affected.is_empty() {
        let _ = write!(h, "<p>{}</p>", nobody_stands_out(r));
    } else {
        h.push_str("<ol>");
        for e in &r.affected {
            let _ = write!(h, "<li>{}</li>", escape(&e.sentence));
        }
        h.push_str("</ol>");
    }

    h.push_str("<h2>3. Where the time went</h2><table><tr><th>stage (mean)</th><th>slow</th><th>normal</th></tr>");
    let (s, n) = (&r.stages.slow, &r.stages.normal);
    for (name, slow, normal) in [
        ("queue", s.queue_ms, n.queue_ms),
        ("hash", s.hash_ms, n.hash_ms),
        ("db", s.db_ms, n.db_ms),
        ("session", s.session_ms, n.session_ms),
        ("other", s.other_ms, n.other_ms),
        ("total", s.total_ms, n.total_ms),
    ] {
        let strong = r.stages.dominant.as_deref() == Some(name);
        let _ = write!(
            h,
            "<tr><td>{}{name}{}</td><td>{}</td><td>{}</td></tr>",
            if strong { "<b>" } else { "" },
            if strong { "</b>" } else { "" },
            duration(slow),
            duration(normal)
        );
    }
    let _ = write!(h, "</table><p>{}</p>", escape(&r.stages.sentence));

    h.push_str("<h2>4. Causes (ranked by the share of slow logins each explains)</h2>");
    if r.causes.is_empty() {
        h.push_str("<p>None recognized.</p>");
    }
    for c in &r.causes {
        let _ = write!(
            h,
            r#"<div class="cause"><b>{}</b>: {}"#,
            c.kind,
            escape(&c.summary)
        );
        if let Some(action) = &c.action {
            let _ = write!(h, "<br>&rarr; <code>{}</code>", escape(action));
        }
        h.push_str("</div>");
    }

    h.push_str("<h2>Timeline table</h2><table><tr><th>start</th><th>logins/s</th><th>p50</th><th>p99</th><th>slow%</th><th>401%</th><th>429%</th><th>shed%</th><th>err%</th></tr>");
    for i in &r.timeline {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            escape(&i.start),
            i.rate_per_s,
            duration(i.p50_ms),
            duration(i.p99_ms),
            i.slow_pct,
            i.failed_pct,
            i.rate_limited_pct,
            i.shed_pct,
            i.error_pct
        );
    }
    h.push_str("</table></body></html>\n");
    h
}
