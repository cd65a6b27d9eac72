//! From the scanned state to the report: timeline and change points, who is
//! affected (risk ratios after MacroBase), where the time went, and the
//! causes recognized.

use crate::dims::{self, DIMENSIONS, EMPTY, OTHER};
use crate::scan::{Bucket, Outcome, Scan, TopK};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct Options {
    /// Display interval; `None` picks one giving at most [`MAX_INTERVALS`].
    pub interval_ms: Option<i64>,
    /// Least share of slow logins an explanation must cover.
    pub min_support: f64,
    /// Least risk ratio an explanation must have.
    pub min_risk_ratio: f64,
    /// Kubernetes deployment named in the rollback command.
    pub deployment: String,
}

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
const MAX_EXPLANATIONS: usize = 10;
/// A pair is reported only if it beats both of its parts by this factor.
const PAIR_GAIN: f64 = 1.2;
/// Below this share of slow logins there is no incident to explain, only
/// the tail every service has.
pub const EVERYDAY_SLOW_SHARE: f64 = 0.01;
/// An explanation must be this many percentage points more common among
/// slow logins than among all: 100% against 94% says little.
const MIN_SHARE_GAP: f64 = 10.0;
/// Fewer slow logins than this are anecdotes, whatever their share.
const MIN_SLOW_LOGINS: f64 = 30.0;
const SURGE_FACTOR: f64 = 1.5;
const ATTACK_FAILURE_RATIO: f64 = 0.3;
/// An address is a heavy hitter from this share of the failed logins.
const HEAVY_IP_SHARE: f64 = 0.05;
const FEW_IPS: usize = 10;

#[derive(Debug, Serialize)]
pub struct Report {
    pub files: Vec<String>,
    pub lines: u64,
    pub bad_lines: u64,
    pub bad_examples: Vec<BadLine>,
    pub outside_range: u64,
    pub logins: u64,
    pub slow_logins: u64,
    pub threshold_ms: f64,
    pub from: Option<String>,
    pub to: Option<String>,
    pub interval_s: f64,
    pub timeline: Vec<Interval>,
    pub change_points: Vec<ChangePoint>,
    pub incident: Option<Incident>,
    pub affected: Vec<Explanation>,
    pub stages: Stages,
    pub causes: Vec<Cause>,
}

#[derive(Debug, Serialize)]
pub struct BadLine {
    pub file: String,
    pub line: u64,
    pub error: String,
}

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

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub attributes: Vec<String>,
    pub slow_logins: u64,
    pub logins: u64,
    pub slow_pct: f64,
    pub all_pct: f64,
    /// `None` when every slow login has these attributes and no other login is slow.
    pub risk_ratio: Option<f64>,
    /// Pair counts come from a uniform sample once the log outgrows it.
    pub estimated: bool,
    pub sentence: String,
}

#[derive(Debug, Serialize, Default)]
pub struct StageMeans {
    pub logins: u64,
    pub total_ms: f64,
    pub queue_ms: f64,
    pub hash_ms: f64,
    pub db_ms: f64,
    pub session_ms: f64,
    /// Time outside the timed stages (parsing, rate limiting, scheduling).
    pub other_ms: f64,
}

impl StageMeans {
    fn parts(&self) -> [(&'static str, f64); 5] {
        [
            ("queue", self.queue_ms),
            ("hash", self.hash_ms),
            ("db", self.db_ms),
            ("session", self.session_ms),
            ("other", self.other_ms),
        ]
    }
}

#[derive(Debug, Serialize)]
pub struct Stages {
    pub slow: StageMeans,
    pub normal: StageMeans,
    pub dominant: Option<String>,
    pub sentence: String,
}

#[derive(Debug, Serialize)]
pub struct Cause {
    /// `attack`, `surge`, `deploy`, `replica_lag`, `slow_database`,
    /// `queueing`, `slow_hash`, `slow_session_store`, `outside_stages`.
    pub kind: &'static str,
    pub summary: String,
    pub action: Option<String>,
}

pub fn analyze(scan: &Scan, options: &Options) -> Report {
    let width_ms = interval_width(scan, options);
    let intervals = intervals(scan, width_ms);
    let timeline: Vec<Interval> = intervals
        .iter()
        .map(|(start, b)| row(scan, width_ms, *start, b))
        .collect();
    let change_points = change_points(&timeline);
    let windows = Windows::find(&change_points, timeline.len());
    let incident = windows.incident.map(|(from, to)| Incident {
        from: timeline[from].start.clone(),
        to: iso(intervals[to - 1].0 + width_ms),
        baseline_from: windows
            .baseline
            .map(|(from, _)| timeline[from].start.clone()),
    });
    let affected = explain(scan, options);
    let stages = stages(scan);
    let evidence = Evidence {
        scan,
        options,
        width_ms,
        intervals: &intervals,
        change_points: &change_points,
        windows: &windows,
        stages: &stages,
        affected: &affected,
    };
    let causes = evidence.causes();
    Report {
        files: scan.files.clone(),
        lines: scan.lines,
        bad_lines: scan.bad_lines,
        bad_examples: scan
            .bad_examples
            .iter()
            .map(|b| BadLine {
                file: b.file.clone(),
                line: b.line,
                error: b.error.clone(),
            })
            .collect(),
        outside_range: scan.outside_range,
        logins: scan.logins,
        slow_logins: scan.slow,
        threshold_ms: scan.settings.threshold_ms,
        from: scan.first_ms.map(iso),
        to: scan.last_ms.map(iso),
        interval_s: width_ms as f64 / 1000.0,
        timeline,
        change_points,
        incident,
        affected,
        stages,
        causes,
    }
}

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
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
fn covered_s(scan: &Scan, from: i64, to: i64) -> f64 {
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
        error_pct: pct(o[Outcome::Error as usize], b.logins),
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
struct Windows {
    incident: Option<(usize, usize)>,
    baseline: Option<(usize, usize)>,
    /// Index into the change points of the incident's start.
    change_point: Option<usize>,
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

fn risk_ratio(slow_x: f64, all_x: f64, slow: f64, all: f64) -> Option<f64> {
    let inside = slow_x / all_x;
    let outside_all = all - all_x;
    let outside = if outside_all > 0.0 {
        (slow - slow_x) / outside_all
    } else {
        0.0
    };
    (outside > 0.0).then(|| inside / outside)
}

fn candidate_order(a: &Explanation, b: &Explanation) -> std::cmp::Ordering {
    let rr = |e: &Explanation| e.risk_ratio.unwrap_or(f64::INFINITY);
    // Equal risk: the more specific explanation (fewer logins) first.
    rr(b)
        .total_cmp(&rr(a))
        .then(a.all_pct.total_cmp(&b.all_pct))
}

/// Who is affected: attribute values and pairs of them that slow logins
/// have far more often than logins at large (MacroBase: support among the
/// outliers, then risk ratio; pairs only of values with support, apriori).
fn explain(scan: &Scan, options: &Options) -> Vec<Explanation> {
    let (slow, all) = (scan.slow as f64, scan.logins as f64);
    if scan.slow == 0 {
        return Vec::new();
    }
    let dicts = &scan.dictionaries;
    let describe = |attrs: &[(usize, u16)], slow_x: f64, all_x: f64, estimated: bool| {
        let labels: Vec<String> = attrs.iter().map(|&(d, v)| dicts.label(d, v)).collect();
        let risk_ratio = risk_ratio(slow_x, all_x, slow, all);
        let (slow_pct, all_pct) = (100.0 * slow_x / slow, 100.0 * all_x / all);
        let sentence = format!(
            "{} of slow logins are {}, against {} of all logins ({})",
            percent(slow_pct),
            labels.join(" and "),
            percent(all_pct),
            match risk_ratio {
                Some(rr) => format!("{rr:.1}x as likely to be slow"),
                None => "no other login is slow".to_owned(),
            }
        );
        Explanation {
            attributes: labels,
            slow_logins: slow_x.round() as u64,
            logins: all_x.round() as u64,
            slow_pct,
            all_pct,
            risk_ratio,
            estimated,
            sentence,
        }
    };

    // Single values, exact.
    let mut supported: Vec<(usize, u16)> = Vec::new();
    // Risk ratio and logins of each supported value.
    let mut single_rr: FxHashMap<(usize, u16), (f64, f64)> = FxHashMap::default();
    let mut found = Vec::new();
    for (dim, counts) in scan.counts.iter().enumerate() {
        for (id, &[all_x, slow_x]) in counts.iter().enumerate() {
            let id = id as u16;
            let needed = (options.min_support * slow).max(MIN_SLOW_LOGINS);
            if id == EMPTY || id == OTHER || (slow_x as f64) < needed {
                continue;
            }
            supported.push((dim, id));
            let e = describe(&[(dim, id)], slow_x as f64, all_x as f64, false);
            single_rr.insert(
                (dim, id),
                (e.risk_ratio.unwrap_or(f64::INFINITY), all_x as f64),
            );
            let strong = e.risk_ratio.is_none_or(|rr| rr >= options.min_risk_ratio);
            if all_x < scan.logins && strong && e.slow_pct - e.all_pct >= MIN_SHARE_GAP {
                found.push(e);
            }
        }
    }

    // Pairs of supported values, counted in the samples.
    let mut position: Vec<Vec<Option<usize>>> =
        scan.counts.iter().map(|c| vec![None; c.len()]).collect();
    for (i, &(dim, id)) in supported.iter().enumerate() {
        position[dim][usize::from(id)] = Some(i);
    }
    let mut pair_counts: FxHashMap<(usize, usize), [u64; 2]> = FxHashMap::default();
    for (class, sample) in [&scan.normal_sample, &scan.slow_sample]
        .into_iter()
        .enumerate()
    {
        let mut present = Vec::with_capacity(DIMENSIONS);
        for tuple in &sample.tuples {
            present.clear();
            present.extend(
                tuple
                    .iter()
                    .enumerate()
                    .filter_map(|(dim, &id)| position[dim].get(usize::from(id)).copied().flatten()),
            );
            for (i, &a) in present.iter().enumerate() {
                for &b in &present[i + 1..] {
                    pair_counts.entry((a, b)).or_default()[class] += 1;
                }
            }
        }
    }
    let scale = |sample: &crate::scan::Sample| {
        if sample.tuples.is_empty() {
            0.0
        } else {
            sample.seen as f64 / sample.tuples.len() as f64
        }
    };
    let (normal_scale, slow_scale) = (scale(&scan.normal_sample), scale(&scan.slow_sample));
    let estimated = normal_scale > 1.0 || slow_scale > 1.0;
    for (&(a, b), &[normal_n, slow_n]) in &pair_counts {
        let slow_x = slow_n as f64 * slow_scale;
        if slow_x < (options.min_support * slow).max(MIN_SLOW_LOGINS) {
            continue;
        }
        let all_x = slow_x + normal_n as f64 * normal_scale;
        let (x, y) = (supported[a], supported[b]);
        let e = describe(&[x, y], slow_x, all_x, estimated);
        let parts_best = single_rr[&x].0.max(single_rr[&y].0);
        let parts_smallest = single_rr[&x].1.min(single_rr[&y].1);
        let rr = e.risk_ratio.unwrap_or(f64::INFINITY);
        // A pair must say more than its parts: a higher risk, or (when
        // nothing else is slow at all) the same slow logins in fewer logins.
        let sharper = rr > parts_best * PAIR_GAIN
            || (rr.is_infinite() && all_x < parts_smallest * (1.0 / PAIR_GAIN));
        if rr >= options.min_risk_ratio && sharper && e.slow_pct - e.all_pct >= MIN_SHARE_GAP {
            found.push(e);
        }
    }
    found.sort_by(candidate_order);
    found.truncate(MAX_EXPLANATIONS);
    found
}

/// `87%`, `6%`, `0.4%`.
pub fn percent(p: f64) -> String {
    if p >= 9.5 || p == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// `850 us`, `31 ms`, `2.3 s`.
pub fn duration(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0} us", ms * 1000.0)
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

fn means(sums: &crate::scan::StageSums) -> StageMeans {
    let n = sums.logins.max(1) as f64;
    let [queue, hash, db, session] = sums.stages_ms.map(|s| s / n);
    let total = sums.total_ms / n;
    StageMeans {
        logins: sums.logins,
        total_ms: total,
        queue_ms: queue,
        hash_ms: hash,
        db_ms: db,
        session_ms: session,
        other_ms: (total - queue - hash - db - session).max(0.0),
    }
}

/// Where the time went: mean stage times of slow and normal logins; the
/// dominant stage is the one that grew the most.
fn stages(scan: &Scan) -> Stages {
    let normal = means(&scan.stage_sums[0]);
    let slow = means(&scan.stage_sums[1]);
    if slow.logins == 0 {
        return Stages {
            sentence: format!(
                "No login took {} or more.",
                duration(scan.settings.threshold_ms)
            ),
            slow,
            normal,
            dominant: None,
        };
    }
    let extra = slow.total_ms - normal.total_ms;
    let (name, grew) = slow
        .parts()
        .iter()
        .zip(normal.parts())
        .map(|(&(name, s), (_, n))| (name, s - n))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("five stages");
    let sentence = format!(
        "Slow logins took {} on average against {} for the others; the {name} stage grew by {}, {} of the difference.",
        duration(slow.total_ms),
        duration(normal.total_ms),
        duration(grew),
        percent(100.0 * grew / extra.max(f64::EPSILON)),
    );
    Stages {
        slow,
        normal,
        dominant: Some(name.to_owned()),
        sentence,
    }
}

/// What the causes are judged on.
struct Evidence<'a> {
    scan: &'a Scan,
    options: &'a Options,
    width_ms: i64,
    intervals: &'a [(i64, Bucket)],
    change_points: &'a [ChangePoint],
    windows: &'a Windows,
    stages: &'a Stages,
    affected: &'a [Explanation],
}

/// Totals over a range of intervals.
struct WindowStats {
    logins: u64,
    seconds: f64,
    failures: u64,
    versions: FxHashMap<u16, u64>,
    failing_ips: TopK,
}

impl WindowStats {
    fn failure_ratio(&self) -> f64 {
        self.failures as f64 / self.logins.max(1) as f64
    }

    fn rate(&self) -> f64 {
        self.logins as f64 / self.seconds
    }

    fn version_share(&self, version: u16) -> f64 {
        self.versions.get(&version).copied().unwrap_or(0) as f64 / self.logins.max(1) as f64
    }
}

impl Evidence<'_> {
    fn window(&self, (from, to): (usize, usize)) -> WindowStats {
        let mut stats = WindowStats {
            logins: 0,
            seconds: 0.0,
            failures: 0,
            versions: FxHashMap::default(),
            failing_ips: TopK::with_capacity(64),
        };
        for (_, b) in &self.intervals[from..to] {
            stats.logins += b.logins;
            stats.failures += b.outcomes[Outcome::InvalidCredentials as usize]
                + b.outcomes[Outcome::RateLimited as usize];
            for &(v, n) in &b.versions {
                *stats.versions.entry(v).or_default() += n;
            }
            stats.failing_ips.merge(&b.failing_ips);
        }
        let start = self.intervals[from].0;
        stats.seconds = covered_s(self.scan, start, self.intervals[to - 1].0 + self.width_ms);
        stats
    }

    fn at(&self, interval: usize) -> String {
        self.change_points
            .iter()
            .find(|c| c.interval == interval)
            .map_or_else(|| iso(self.intervals[interval].0), |c| c.at.clone())
    }

    fn causes(&self) -> Vec<Cause> {
        let whole = (0, self.intervals.len());
        if self.intervals.is_empty() {
            return Vec::new();
        }
        let incident = self.window(self.windows.incident.unwrap_or(whole));
        let baseline = self.windows.baseline.map(|w| self.window(w));
        let mut causes = Vec::new();
        let attack = self.attack(&incident, baseline.as_ref());
        // The attackers' own traffic is no surge of demand.
        let attack_logins = attack.as_ref().map_or(0, |(_, n)| *n);
        causes.extend(attack.map(|(cause, _)| cause));
        causes.extend(self.surge(&incident, baseline.as_ref(), attack_logins));
        causes.extend(self.deploy(&incident, baseline.as_ref()));
        causes.extend(self.stage_cause());
        causes
    }

    /// A likely attack, and the failed logins of its addresses.
    fn attack(
        &self,
        incident: &WindowStats,
        baseline: Option<&WindowStats>,
    ) -> Option<(Cause, u64)> {
        let ratio = incident.failure_ratio();
        let before = baseline.map(WindowStats::failure_ratio);
        if ratio < ATTACK_FAILURE_RATIO || before.is_some_and(|b| ratio < 2.0 * b) {
            return None;
        }
        let mut ips = incident.failing_ips.counts.clone();
        ips.sort_by_key(|ip| std::cmp::Reverse(ip.1));
        let heavy: Vec<(IpAddr, u64)> = ips
            .into_iter()
            .filter(|(_, n)| *n as f64 >= HEAVY_IP_SHARE * incident.failures as f64)
            .take(FEW_IPS + 1)
            .collect();
        let heavy_failures: u64 = heavy.iter().map(|(_, n)| n).sum();
        let share = heavy_failures as f64 / incident.failures.max(1) as f64;
        let before = before.map_or(String::new(), |b| {
            format!(" (against {} before)", percent(100.0 * b))
        });
        if heavy.is_empty() || heavy.len() > FEW_IPS || share < 0.5 {
            return Some((Cause {
                kind: "attack",
                summary: format!(
                    "Possible distributed credential stuffing: {} of logins failed{before}, from many addresses.",
                    percent(100.0 * ratio)
                ),
                action: Some(
                    "Check the user_shape and ip rows above for what the attempts share; tighten per-account limits and block at the edge."
                        .to_owned(),
                ),
            }, 0));
        }
        let addresses: Vec<String> = heavy.iter().map(|(ip, _)| ip.to_string()).collect();
        let cause = Cause {
            kind: "attack",
            summary: format!(
                "Likely attack (credential stuffing): {} of logins failed{before}; {} address{} sent {} of the failed logins: {}.",
                percent(100.0 * ratio),
                heavy.len(),
                if heavy.len() == 1 { "" } else { "es" },
                percent(100.0 * share),
                addresses.join(", ")
            ),
            action: Some(format!(
                "Block them at the edge (ingress or WAF deny list: {}) and check that rate limiting rejects them before hashing (sesame_rate_limited_total).",
                addresses
                    .iter()
                    .map(|a| if a.contains(':') { format!("{a}/128") } else { format!("{a}/32") })
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        };
        Some((cause, heavy_failures))
    }

    fn surge(
        &self,
        incident: &WindowStats,
        baseline: Option<&WindowStats>,
        attack_logins: u64,
    ) -> Option<Cause> {
        let baseline = baseline?;
        let rate = incident.logins.saturating_sub(attack_logins) as f64 / incident.seconds;
        let factor = rate / baseline.rate().max(f64::EPSILON);
        if factor < SURGE_FACTOR {
            return None;
        }
        let at = self.at(self.windows.incident?.0);
        Some(Cause {
            kind: "surge",
            summary: format!(
                "Traffic surge: {:.1}x the baseline rate from {} ({:.0}/s against {:.0}/s before).",
                factor,
                short_time(&at),
                rate,
                baseline.rate()
            ),
            action: Some(format!(
                "If the demand is real, add hash capacity (sesame plan --peak-logins N gives the replicas): kubectl scale deployment/{} --replicas=N; until then the service sheds the excess (503 overloaded).",
                self.options.deployment
            )),
        })
    }

    fn deploy(&self, incident: &WindowStats, baseline: Option<&WindowStats>) -> Option<Cause> {
        let baseline = baseline?;
        let (start, _) = self.windows.incident?;
        let new = incident
            .versions
            .keys()
            .copied()
            .filter(|&v| v != EMPTY && baseline.version_share(v) < 0.05)
            .filter(|&v| incident.version_share(v) >= 0.2)
            .max_by(|&a, &b| {
                incident
                    .version_share(a)
                    .total_cmp(&incident.version_share(b))
            })?;
        // It must arrive with the change, not long before or after it.
        let timeline = &self.scan.timeline;
        let first_seen_ms = timeline.buckets.iter().enumerate().find_map(|(i, b)| {
            let b = b.as_ref()?;
            b.versions
                .iter()
                .any(|&(v, n)| v == new && n as f64 >= 0.01 * b.logins as f64)
                .then(|| timeline.start_ms + i as i64 * timeline.width_ms)
        })?;
        let change_ms = self.intervals[start].0;
        if (first_seen_ms - change_ms).abs() > self.width_ms * 2 {
            return None;
        }
        let names = &self.scan.dictionaries.0[dims::SERVER_VERSION];
        let previous = baseline
            .versions
            .iter()
            .filter(|(&v, _)| v != EMPTY)
            .max_by_key(|(_, &n)| n)
            .map(|(&v, _)| names.name(v).to_owned());
        let change = self.windows.change_point.map(|k| &self.change_points[k]);
        Some(Cause {
            kind: "deploy",
            summary: format!(
                "Deploy: server_version {} appeared at {}, with the latency change{}; it served {} of logins after it{}.",
                names.name(new),
                short_time(&iso(first_seen_ms)),
                change.map_or(String::new(), |c| format!(
                    " (p99 {} -> {})",
                    duration(c.p99_before_ms),
                    duration(c.p99_after_ms)
                )),
                percent(100.0 * incident.version_share(new)),
                previous.as_ref().map_or(String::new(), |p| format!(", {p} before"))
            ),
            action: Some(format!(
                "Roll back: kubectl rollout undo deployment/{0} (then kubectl rollout status deployment/{0}){1}.",
                self.options.deployment,
                previous.map_or(String::new(), |p| format!(" to return to {p}"))
            )),
        })
    }

    /// The dominant stage, read as a cause.
    fn stage_cause(&self) -> Option<Cause> {
        let dominant = self.stages.dominant.as_deref()?;
        if (self.scan.slow as f64) < EVERYDAY_SLOW_SHARE * self.scan.logins as f64 {
            return None;
        }
        let grew = |name: &str| {
            let s = self.stages.slow.parts();
            let n = self.stages.normal.parts();
            let i = s.iter().position(|(p, _)| *p == name).expect("a stage");
            s[i].1 - n[i].1
        };
        let by = duration(grew(dominant));
        let focus = self.affected.first().map_or(String::new(), |e| {
            format!(", concentrated on {}", e.attributes.join(" and "))
        });
        let cause = match dominant {
            "db" => {
                let replica_share = self.slow_share(dims::DB_ROLE, "replica");
                if replica_share >= 0.5 {
                    Cause {
                        kind: "replica_lag",
                        summary: format!(
                            "Slow replica reads: the db stage of slow logins grew by {by} and {} of them read a replica{focus} (replica lag or an overloaded replica).",
                            percent(100.0 * replica_share)
                        ),
                        action: Some("Check replica lag (sesame_replica_lag_seconds) and take a lagging replica out of rotation; digest its slow query log with: sesame slowlog /var/log/mysql/mysql-slow.log".to_owned()),
                    }
                } else {
                    Cause {
                        kind: "slow_database",
                        summary: format!("Slow database: the db stage of slow logins grew by {by}{focus}."),
                        action: Some("Digest the MySQL slow query log for the queries that grew: sesame slowlog /var/log/mysql/mysql-slow.log".to_owned()),
                    }
                }
            }
            "queue" => Cause {
                kind: "queueing",
                summary: format!("Queueing: slow logins waited {by} longer for a hash worker; arrivals exceeded hash capacity."),
                action: Some("Find what raised the arrivals (surge or attack above), block abusers, add replicas; keep the latency budget so excess is shed, not queued.".to_owned()),
            },
            "hash" => Cause {
                kind: "slow_hash",
                summary: format!("Hashing got slower by {by}{focus}: raised Argon2 parameters (a config change or deploy) or starved CPUs (throttling, noisy neighbours)."),
                action: Some("Compare the deployed hash parameters with `sesame calibrate` on the same nodes and check CPU throttling.".to_owned()),
            },
            "session" => Cause {
                kind: "slow_session_store",
                summary: format!("The session store (Redis) got slower by {by}{focus}."),
                action: Some("Check Redis latency (redis-cli --latency) and memory.".to_owned()),
            },
            _ => Cause {
                kind: "outside_stages",
                summary: format!("Slow logins spent {by} more outside the timed stages (network, parsing, scheduling){focus}."),
                action: None,
            },
        };
        Some(cause)
    }

    fn slow_share(&self, dim: usize, value: &str) -> f64 {
        let id = self.scan.dictionaries.0[dim].id(value);
        let slow_x = id
            .and_then(|id| self.scan.counts[dim].get(usize::from(id)))
            .map_or(0, |c| c[1]);
        slow_x as f64 / self.scan.slow.max(1) as f64
    }
}

/// `10:05:00` from an RFC 3339 time.
pub fn short_time(iso: &str) -> String {
    iso.get(11..19).unwrap_or(iso).to_owned()
}
