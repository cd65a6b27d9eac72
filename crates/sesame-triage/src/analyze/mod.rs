//! From the scanned state to the report, once over aggregated state (never
//! per line), in three parts:
//!
//! - `timeline`: display intervals, p99 change points, the incident window
//!   and the baseline before it;
//! - `explain`: who is affected (risk ratios after MacroBase), where the
//!   time went, and which stage grew in each group and in each slow login;
//! - `causes`: what happened, one cause per material share of the slow
//!   logins, ranked by that share.

mod causes;
mod explain;
mod timeline;

pub use causes::Cause;
pub use explain::{Explanation, StageMeans, Stages, STAGES};
pub use timeline::{ChangePoint, Incident, Interval};

use crate::scan::Scan;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct Options {
    /// Display interval; `None` picks one giving at most 60 rows.
    pub interval_ms: Option<i64>,
    /// Least share of slow logins an explanation must cover.
    pub min_support: f64,
    /// Least risk ratio an explanation must have.
    pub min_risk_ratio: f64,
    /// Kubernetes deployment named in the rollback command.
    pub deployment: String,
    /// Moments to mark on the timeline (label, epoch ms).
    pub marks: Vec<(String, i64)>,
}

/// Below this share of slow logins there is no incident to explain, only
/// the tail every service has.
pub const EVERYDAY_SLOW_SHARE: f64 = 0.01;

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
    /// Ranked by the share of slow logins each explains.
    pub causes: Vec<Cause>,
    /// The moments given with `--mark`, in time order.
    pub marks: Vec<Mark>,
}

/// A moment marked on the timeline.
#[derive(Debug, Serialize)]
pub struct Mark {
    pub label: String,
    pub at: String,
    /// Where it falls on the timeline, in rows from the first (fractional;
    /// outside `0..rows` when it is outside the logs' time range).
    #[serde(skip)]
    pub row: f64,
}

#[derive(Debug, Serialize)]
pub struct BadLine {
    pub file: String,
    pub line: u64,
    pub error: String,
}

pub fn analyze(scan: &Scan, options: &Options) -> Report {
    let timeline = timeline::Timeline::build(scan, options);
    let stages = explain::stages(scan);
    let attribution = explain::Attribution::new(scan, &stages.normal);
    let explain::Explained { affected, focus } = explain::explain(scan, options, &attribution);
    let causes = causes::Evidence {
        scan,
        options,
        timeline: &timeline,
        attribution: &attribution,
        focus: &focus,
    }
    .causes();
    let timeline::Timeline {
        width_ms,
        rows,
        change_points,
        incident,
        ..
    } = timeline;
    let first_row_ms = rows.first().map(|r| r.start_ms).unwrap_or_default();
    let mut marks: Vec<Mark> = options
        .marks
        .iter()
        .map(|(label, at)| Mark {
            label: label.clone(),
            at: iso(*at),
            row: (at - first_row_ms) as f64 / width_ms.max(1) as f64,
        })
        .collect();
    marks.sort_by(|a, b| a.row.total_cmp(&b.row));
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
        timeline: rows,
        change_points,
        incident,
        affected,
        stages,
        causes,
        marks,
    }
}

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
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

/// `10:05:00` from an RFC 3339 time.
pub fn short_time(iso: &str) -> String {
    iso.get(11..19).unwrap_or(iso).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Settings;

    /// One login a second from 10:00, `region` and stage times as given.
    fn scan(logins: &[(&str, &str, [f64; 4])]) -> Scan {
        let mut scan = Scan::new(Settings {
            threshold_ms: 250.0,
            ..Settings::default()
        });
        scan.start_file("test.log");
        for (i, (region, db_role, [queue, hash, db, session])) in logins.iter().enumerate() {
            let ts = iso(1_795_687_200_000 + i as i64 * 1000);
            let total = queue + hash + db + session + 0.5;
            let line = format!(
                r#"{{"ts":"{ts}","outcome":"ok","region":"{region}","db_role":"{db_role}","total_ms":{total},"queue_ms":{queue},"hash_ms":{hash},"db_ms":{db},"session_ms":{session}}}"#
            );
            scan.line(line.as_bytes());
        }
        scan
    }

    fn options() -> Options {
        Options {
            interval_ms: None,
            min_support: 0.05,
            min_risk_ratio: 2.0,
            deployment: "sesame".to_owned(),
            marks: Vec::new(),
        }
    }

    #[test]
    fn a_surge_that_saturates_the_cores_explains_its_slow_hashes_and_waits_first() {
        // Ten minutes at one login a second, then ten at four a second, on
        // cores the surge saturates: its slow logins wait in the queue, hash
        // slowly and wait for a core outside the timed stages, none of them
        // in a group of its own.
        let mut scan = Scan::new(Settings {
            threshold_ms: 250.0,
            ..Settings::default()
        });
        scan.start_file("surge.log");
        let mut ms = 1_795_687_200_000;
        let mut line = |ms: i64, region: &str, queue: f64, hash: f64, other: f64| {
            let ts = iso(ms);
            let total = queue + hash + 2.0 + 0.5 + other;
            scan.line(format!(
                r#"{{"ts":"{ts}","outcome":"ok","region":"{region}","db_role":"replica","total_ms":{total},"queue_ms":{queue},"hash_ms":{hash},"db_ms":2.0,"session_ms":0.5}}"#
            ).as_bytes());
        };
        for i in 0..600 {
            line(ms, ["eu", "us", "ap"][i % 3], 0.0, 25.0, 1.0);
            ms += 1000;
        }
        for i in 0..2400 {
            let region = ["eu", "us", "ap"][i % 3];
            match i % 10 {
                0..3 => line(ms, region, 1.0, 400.0, 1.0),
                3..5 => line(ms, region, 1.0, 30.0, 350.0),
                5 => line(ms, region, 300.0, 40.0, 1.0),
                _ => line(ms, region, 5.0, 60.0, 5.0),
            }
            ms += 250;
        }
        let r = analyze(&scan, &options());
        let first = &r.causes[0];
        assert_eq!(
            (first.kind, first.stage),
            ("surge", Some("hash")),
            "{:#?}",
            r.causes
        );
        assert!((first.slow_pct - 100.0).abs() < 0.5, "{first:?}");
        assert!(
            first.summary.contains("queue 17%, hash 50%, other 33%"),
            "{}",
            first.summary
        );
    }

    #[test]
    fn each_stage_that_slowed_a_material_share_is_a_cause_ranked_by_it() {
        let normal = [1.0, 25.0, 2.0, 0.5];
        let mut logins = Vec::new();
        for i in 0..3000 {
            let region = ["eu", "us", "ap"][i % 3];
            let db_role = if i % 20 == 0 { "primary" } else { "replica" };
            logins.push((region, db_role, normal));
        }
        // 200 slow in eu's db, 60 slow in ap's hashing, 10 in the session
        // store (the everyday tail, below a material share).
        for i in 0..270 {
            let (region, stages) = match i {
                0..200 => ("eu", [1.0, 25.0, 900.0, 0.5]),
                200..260 => ("ap", [1.0, 700.0, 2.0, 0.5]),
                _ => ("us", [1.0, 25.0, 2.0, 600.0]),
            };
            logins.insert(i * 11, (region, "replica", stages));
        }
        let r = analyze(&scan(&logins), &options());
        let kinds: Vec<_> = r.causes.iter().map(|c| (c.kind, c.stage)).collect();
        assert_eq!(
            kinds,
            [("replica_lag", Some("db")), ("slow_hash", Some("hash"))],
            "{:#?}",
            r.causes
        );
        let (db, hash) = (&r.causes[0], &r.causes[1]);
        assert!((db.slow_pct - 100.0 * 200.0 / 270.0).abs() < 0.1, "{db:?}");
        assert_eq!((db.slow_logins, hash.slow_logins), (200, 60));
        assert_eq!(db.group, ["region=eu"]);
        assert_eq!(hash.group, ["region=ap"]);
        assert!(hash
            .summary
            .contains("in 22% of slow logins, concentrated on region=ap"));
        assert!(
            r.stages.sentence.contains("the hash stage by"),
            "{}",
            r.stages.sentence
        );
    }
}
