//! The report as one self-contained HTML page: inline SVG charts and
//! tables, no script, no external resource, so it can be attached to an
//! incident ticket as is.

use crate::analyze::{duration, Interval, Report};
use crate::render::{interval_name, nobody_stands_out, thousands};
use sesame_toolkit::chart::Chart;
use sesame_toolkit::html::{escape, page_start};
use std::fmt::Write;

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}\
td:first-child,th:first-child{text-align:left}.cause{background:#fff4e5;padding:.5em 1em;margin:.5em 0;border-left:4px solid #e80}\
code{background:#f2f2f2;padding:1px 4px}";

/// A chart over the timeline: x is the interval's index, labelled with its
/// time of day; change points are dashed red lines.
fn timeline_chart<'a>(r: &'a Report, label: &'a str) -> Chart<'a> {
    let n = r.timeline.len();
    let ticks = 6.min(n);
    let times = (0..ticks).map(|k| {
        let i = k * n.saturating_sub(1) / (ticks - 1).max(1);
        let start = &r.timeline[i].start;
        (i as f64, start.get(11..16).unwrap_or(start).to_owned())
    });
    let chart = Chart::new(label)
        .x_range(0.0, n.saturating_sub(1).max(1) as f64)
        .x_ticks(times);
    let chart = r.change_points.iter().fold(chart, |chart, c| {
        chart.marker(c.interval as f64, format!("change point {}", c.at))
    });
    r.marks
        .iter()
        .filter(|m| (0.0..=n as f64).contains(&m.row))
        .fold(chart, |chart, m| {
            chart.labelled_marker(m.row, &m.label, format!("{} {}", m.label, m.at))
        })
}

/// One column of the timeline, as points of a chart.
fn column(r: &Report, f: fn(&Interval) -> f64) -> Vec<(f64, f64)> {
    r.timeline
        .iter()
        .enumerate()
        .map(|(i, row)| (i as f64, f(row)))
        .collect()
}

pub fn render(r: &Report) -> String {
    let mut h = page_start("sesame triage", CSS);
    let _ = write!(
        h,
        "<h1>sesame triage</h1><p>{} logins in {} file(s), {} to {}; {} slow (&ge; {}).</p>",
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
    let charts = [
        timeline_chart(r, "Latency")
            .log_y()
            .y_format(duration)
            .line_in("#1565c0", "p50", column(r, |i| i.p50_ms))
            .line_in("#c62828", "p99", column(r, |i| i.p99_ms)),
        timeline_chart(r, "Logins per second")
            .y_format(|v| format!("{v:.0}"))
            .line_in("#2e7d32", "rate", column(r, |i| i.rate_per_s)),
        timeline_chart(r, "Outcomes (% of logins)")
            .y_format(|v| format!("{v:.0}%"))
            .line_in("#6a1b9a", "slow", column(r, |i| i.slow_pct))
            .line_in("#ef6c00", "401", column(r, |i| i.failed_pct))
            .line_in("#795548", "429", column(r, |i| i.rate_limited_pct))
            .line_in("#00838f", "shed", column(r, |i| i.shed_pct))
            .line_in("#d00", "error", column(r, |i| i.error_pct)),
    ];
    for chart in charts {
        let _ = write!(h, "<h3>{}</h3>{}", escape(chart.label()), chart.svg());
    }
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
    for (name, slow, normal) in r.stages.rows() {
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
