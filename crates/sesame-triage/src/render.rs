//! The report as text for a terminal: four sections, in the order an
//! operator asks the questions.

use crate::analyze::{duration, percent, Report, EVERYDAY_SLOW_SHARE};
use std::fmt::Write;

/// `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Interval start as shown in the timeline: the time of day when the log
/// stays within one day, the date too otherwise.
fn when(iso: &str, one_day: bool) -> String {
    if one_day {
        iso.get(11..19).unwrap_or(iso).to_owned()
    } else {
        format!(
            "{} {}",
            iso.get(5..10).unwrap_or(iso),
            iso.get(11..16).unwrap_or("")
        )
    }
}

pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let o = &mut out;
    let one_day = match (&r.from, &r.to) {
        (Some(from), Some(to)) => from.get(..10) == to.get(..10),
        _ => true,
    };
    let _ = writeln!(
        o,
        "sesame triage: {} logins in {} file{}, {} to {}",
        thousands(r.logins),
        r.files.len(),
        if r.files.len() == 1 { "" } else { "s" },
        r.from.as_deref().unwrap_or("-"),
        r.to.as_deref().unwrap_or("-"),
    );
    let _ = writeln!(
        o,
        "slow (>= {}): {} logins, {}",
        duration(r.threshold_ms),
        thousands(r.slow_logins),
        percent(100.0 * r.slow_logins as f64 / r.logins.max(1) as f64)
    );
    if r.bad_lines > 0 {
        let _ = writeln!(
            o,
            "bad lines: {} of {} skipped",
            thousands(r.bad_lines),
            thousands(r.lines)
        );
        for b in &r.bad_examples {
            let _ = writeln!(o, "  {}:{}: {}", b.file, b.line, b.error);
        }
    }
    if r.outside_range > 0 {
        let _ = writeln!(
            o,
            "outside --since/--until: {} logins skipped",
            thousands(r.outside_range)
        );
    }

    let _ = writeln!(o, "\n1. TIMELINE (per {})", interval_name(r.interval_s));
    let _ = writeln!(
        o,
        "{:<12} {:>9} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "start", "logins/s", "p50", "p99", "slow%", "401%", "429%", "shed%", "err%"
    );
    for (i, row) in r.timeline.iter().enumerate() {
        let mark = r
            .change_points
            .iter()
            .find(|c| c.interval == i)
            .map_or(String::new(), |c| {
                format!(
                    "  <- p99 {} -> {}",
                    duration(c.p99_before_ms),
                    duration(c.p99_after_ms)
                )
            });
        // The --mark moments that fall in this row.
        let marked: Vec<&str> = r
            .marks
            .iter()
            .filter(|m| m.row.floor() == i as f64)
            .map(|m| m.label.as_str())
            .collect();
        let mark = if marked.is_empty() {
            mark
        } else {
            format!("{mark}  <- {}", marked.join(", "))
        };
        let _ = writeln!(
            o,
            "{:<12} {:>9.1} {:>8} {:>8} {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>6.1}{mark}",
            when(&row.start, one_day),
            row.rate_per_s,
            duration(row.p50_ms),
            duration(row.p99_ms),
            row.slow_pct,
            row.failed_pct,
            row.rate_limited_pct,
            row.shed_pct,
            row.error_pct,
        );
    }
    match &r.incident {
        Some(i) => {
            let _ = writeln!(
                o,
                "Latency rose at {} and stayed up until {}{}.",
                i.from,
                i.to,
                i.baseline_from
                    .as_ref()
                    .map_or(String::new(), |b| format!(" (baseline: {b} to {})", i.from))
            );
        }
        None => {
            let _ = writeln!(o, "No change point: p99 held steady over the log.");
        }
    }

    let _ = writeln!(
        o,
        "\n2. WHO IS AFFECTED (what slow logins have far more often than all logins)"
    );
    if r.affected.is_empty() {
        let _ = writeln!(o, "{}", nobody_stands_out(r));
    }
    for (i, e) in r.affected.iter().enumerate() {
        let _ = writeln!(
            o,
            "{:>2}. {}{}",
            i + 1,
            e.sentence,
            if e.estimated { " [sampled]" } else { "" }
        );
    }

    let _ = writeln!(o, "\n3. WHERE THE TIME WENT (mean per login)");
    let _ = writeln!(o, "{:<10} {:>10} {:>10}", "stage", "slow", "normal");
    for (name, slow, normal) in r.stages.rows() {
        let dominant = if r.stages.dominant.as_deref() == Some(name) {
            "  <- dominant"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "{name:<10} {:>10} {:>10}{dominant}",
            duration(slow),
            duration(normal)
        );
    }
    let _ = writeln!(o, "{}", r.stages.sentence);

    let _ = writeln!(
        o,
        "\n4. CAUSES (ranked by the share of slow logins each explains)"
    );
    if r.causes.is_empty() {
        let _ = writeln!(o, "None recognized.");
    }
    for c in &r.causes {
        let _ = writeln!(o, "- [{}] {}", c.kind, c.summary);
        if let Some(action) = &c.action {
            let _ = writeln!(o, "  -> {action}");
        }
    }
    out
}

pub fn interval_name(seconds: f64) -> String {
    let s = seconds as i64;
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Why no explanation was found: nothing to explain, or nothing singled out.
pub fn nobody_stands_out(r: &Report) -> &'static str {
    if (r.slow_logins as f64) < EVERYDAY_SLOW_SHARE * r.logins as f64 {
        "Too few slow logins to explain: the everyday tail, not an incident."
    } else {
        "No attribute or pair stands out: slowness is across the board (capacity, a shared dependency)."
    }
}
