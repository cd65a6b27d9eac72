//! The timeline: the scan's buckets merged into display intervals, the
//! points where p99 shifted, and the incident window (from the largest rise
//! to the next fall) with the baseline before it.

use super::{iso, Options};
use crate::scan::{Bucket, Scan};
use serde::Serialize;
use sesame_domain::event::Outcome;

const MAX_INTERVALS: i64 = 60;
const NICE_INTERVALS_MS: [i64; 13] = [
    10_000,
    30_000,
    60_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    604_800_000,
];
/// An interval with fewer logins has too noisy a p99 to place a change point.
const MIN_LOGINS_PER_INTERVAL: u64 = 20;
/// A change point must move p99 by this factor at least...
const MIN_SHIFT: f64 = 1.5;
/// ...and stand out of the noise by this many standard errors.
const MIN_T: f64 = 4.0;
const MAX_CHANGE_POINTS: usize = 6;

#[derive(Debug, Serialize)]
pub struct Interval {
    pub start: String,
    #[serde(skip)]
    pub start_ms: i64,
    pub logins: u64,
    pub rate_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub slow_pct: f64,
    pub failed_pct: f64,
    pub rate_limited_pct: f64,
    pub shed_pct: f64,
    pub error_pct: f64,
}

#[derive(Debug, Serialize)]
pub struct ChangePoint {
    pub at: String,
    pub interval: usize,
    pub p99_before_ms: f64,
    pub p99_after_ms: f64,
}

impl ChangePoint {
    pub fn is_up(&self) -> bool {
        self.p99_after_ms > self.p99_before_ms
    }
}

/// The stretch of time the latency was raised, and the normal one before.
#[derive(Debug, Serialize)]
pub struct Incident {
    pub from: String,
    pub to: String,
    pub baseline_from: Option<String>,
}

/// Everything known about time: the report's rows, and what the causes
/// judge windows of time on.
pub(super) struct Timeline {
    pub width_ms: i64,
    /// Display intervals: start and merged bucket, empty ones included.
    pub intervals: Vec<(i64, Bucket)>,
    pub rows: Vec<Interval>,
    pub change_points: Vec<ChangePoint>,
    pub windows: Windows,
    pub incident: Option<Incident>,
}

impl Timeline {
    pub fn build(scan: &Scan, options: &Options) -> Self {
        let width_ms = interval_width(scan, options);
        let intervals = intervals(scan, width_ms);
        let rows: Vec<Interval> = intervals
            .iter()
            .map(|(start, b)| row(scan, width_ms, *start, b))
            .collect();
        let change_points = change_points(&rows);
        let windows = Windows::find(&change_points, rows.len());
        let incident = windows.incident.map(|(from, to)| Incident {
            from: rows[from].start.clone(),
            to: iso(intervals[to - 1].0 + width_ms),
            baseline_from: windows.baseline.map(|(from, _)| rows[from].start.clone()),
        });
        Self {
            width_ms,
            intervals,
            rows,
            change_points,
            windows,
            incident,
        }
    }
}

fn interval_width(scan: &Scan, options: &Options) -> i64 {
    let base = scan.timeline.width_ms;
    if let Some(wanted) = options.interval_ms {
        return ((wanted + base - 1) / base).max(1) * base;
    }
    let span = base * scan.timeline.buckets.len() as i64;
    NICE_INTERVALS_MS
        .iter()
        .copied()
        .filter(|w| w % base == 0)
        .find(|w| (span + w - 1) / w <= MAX_INTERVALS)
        .unwrap_or(base)
}

/// The scan's buckets merged into display intervals, empty ones included.
fn intervals(scan: &Scan, width_ms: i64) -> Vec<(i64, Bucket)> {
    let mut out: Vec<(i64, Bucket)> = Vec::new();
    for (i, bucket) in scan.timeline.buckets.iter().enumerate() {
        let ts = scan.timeline.start_ms + i as i64 * scan.timeline.width_ms;
        let start = ts.div_euclid(width_ms) * width_ms;
        if out.last().is_none_or(|(s, _)| *s != start) {
            out.push((start, Bucket::new()));
        }
        if let Some(bucket) = bucket {
            out.last_mut().expect("pushed").1.merge(bucket);
        }
    }
    out
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Seconds of `[from, to)` that the log covers: the first and last
/// intervals are usually partial, and rates must not read low there.
pub(super) fn covered_s(scan: &Scan, from: i64, to: i64) -> f64 {
    let (first, last) = (scan.first_ms.unwrap_or(from), scan.last_ms.unwrap_or(to));
    let covered = to.min(last + 1) - from.max(first);
    covered.max(1000) as f64 / 1000.0
}

fn row(scan: &Scan, width_ms: i64, start: i64, b: &Bucket) -> Interval {
    let o = &b.outcomes;
    Interval {
        start: iso(start),
        start_ms: start,
        logins: b.logins,
        rate_per_s: b.logins as f64 / covered_s(scan, start, start + width_ms),
        p50_ms: if b.logins > 0 {
            b.quantile_ms(0.5)
        } else {
            0.0
        },
        p99_ms: if b.logins > 0 {
            b.quantile_ms(0.99)
        } else {
            0.0
        },
        slow_pct: pct(b.slow, b.logins),
        failed_pct: pct(o[Outcome::InvalidCredentials as usize], b.logins),
        rate_limited_pct: pct(o[Outcome::RateLimited as usize], b.logins),
        shed_pct: pct(o[Outcome::Overloaded as usize], b.logins),
        error_pct: pct(
            o[Outcome::Unavailable as usize] + o[Outcome::Error as usize],
            b.logins,
        ),
    }
}

/// Where p99 shifted: binary segmentation of log(p99) per interval, each
/// split the least-squares best two-level fit, kept if it moves p99 by
/// [`MIN_SHIFT`] and stands [`MIN_T`] standard errors out of the noise.
fn change_points(timeline: &[Interval]) -> Vec<ChangePoint> {
    let points: Vec<(usize, f64)> = timeline
        .iter()
        .enumerate()
        .filter(|(_, i)| i.logins >= MIN_LOGINS_PER_INTERVAL)
        .map(|(index, i)| (index, i.p99_ms.max(0.1).ln()))
        .collect();
    let mut splits = Vec::new();
    segment(&points, &mut splits);
    splits.sort_unstable();
    splits.truncate(MAX_CHANGE_POINTS);
    // Before and after are the medians of the neighbouring segments.
    let mut bounds = vec![0];
    bounds.extend(&splits);
    bounds.push(points.len());
    let median_p99 = |from: usize, to: usize| {
        let mut v: Vec<f64> = points[from..to].iter().map(|p| p.1).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2].exp()
    };
    splits
        .iter()
        .enumerate()
        .map(|(k, &split)| {
            let interval = points[split].0;
            ChangePoint {
                at: timeline[interval].start.clone(),
                interval,
                p99_before_ms: median_p99(bounds[k], split),
                p99_after_ms: median_p99(split, bounds[k + 2]),
            }
        })
        .collect()
}

/// Appends to `splits` the indexes (into `points`) where segments start.
fn segment(points: &[(usize, f64)], splits: &mut Vec<usize>) {
    fn best_split(xs: &[f64]) -> Option<(usize, f64, f64)> {
        let n = xs.len();
        if n < 2 {
            return None;
        }
        let total: f64 = xs.iter().sum();
        let mut left = 0.0;
        let mut best: Option<(usize, f64, f64)> = None;
        for k in 1..n {
            left += xs[k - 1];
            let (n1, n2) = (k as f64, (n - k) as f64);
            let (m1, m2) = (left / n1, (total - left) / n2);
            let gain = n1 * n2 / n as f64 * (m1 - m2).powi(2);
            if best.is_none_or(|(_, g, _)| gain > g) {
                best = Some((k, gain, m2 - m1));
            }
        }
        best
    }
    fn recurse(points: &[(usize, f64)], offset: usize, splits: &mut Vec<usize>) {
        let xs: Vec<f64> = points.iter().map(|p| p.1).collect();
        let Some((k, _, shift)) = best_split(&xs) else {
            return;
        };
        if shift.abs() < MIN_SHIFT.ln() {
            return;
        }
        let (left, right) = xs.split_at(k);
        let sse = |s: &[f64]| {
            let m = s.iter().sum::<f64>() / s.len() as f64;
            s.iter().map(|x| (x - m).powi(2)).sum::<f64>()
        };
        let dof = (xs.len() as f64 - 2.0).max(1.0);
        let variance = (sse(left) + sse(right)) / dof;
        let standard_error =
            (variance * (1.0 / left.len() as f64 + 1.0 / right.len() as f64)).sqrt();
        // A floor on the noise: p99 of a few dozen logins wobbles by ~5%.
        if shift.abs() / standard_error.max(0.05) < MIN_T {
            return;
        }
        splits.push(offset + k);
        recurse(&points[..k], offset, splits);
        recurse(&points[k..], offset + k, splits);
    }
    recurse(points, 0, splits);
}

/// Interval index ranges `[from, to)`: the incident (from the largest rise
/// of p99 to the next fall, or the end) and the baseline before it.
pub(super) struct Windows {
    pub incident: Option<(usize, usize)>,
    pub baseline: Option<(usize, usize)>,
    /// Index into the change points of the incident's start.
    pub change_point: Option<usize>,
}

impl Windows {
    fn find(change_points: &[ChangePoint], intervals: usize) -> Self {
        let rise = change_points
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_up())
            .max_by(|(_, a), (_, b)| {
                (a.p99_after_ms / a.p99_before_ms).total_cmp(&(b.p99_after_ms / b.p99_before_ms))
            });
        let Some((k, rise)) = rise else {
            return Self {
                incident: None,
                baseline: None,
                change_point: None,
            };
        };
        let end = change_points[k + 1..]
            .iter()
            .find(|c| !c.is_up())
            .map_or(intervals, |c| c.interval);
        let baseline_start = change_points[..k].last().map_or(0, |c| c.interval);
        Self {
            incident: Some((rise.interval, end)),
            baseline: (baseline_start < rise.interval).then_some((baseline_start, rise.interval)),
            change_point: Some(k),
        }
    }
}
