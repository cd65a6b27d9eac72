//! Text and JSON reports.

use crate::digest::{Class, Digest, MAX_DISTINCT};
use crate::fingerprint::checksum;
use crate::parse::{METRICS, QUERY_TIME};
use crate::read::FileRead;
use crate::stats::{Metric, Summary};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

/// Everything a report needs, in rank order.
pub struct Ranked<'a> {
    pub digest: &'a Digest,
    pub classes: Vec<(&'a [u8], &'a Class)>,
    pub files: &'a [FileRead],
    pub elapsed: Duration,
    pub not_listed: NotListed,
}

/// Classes pt-query-digest's report leaves out (fingerprint mode): those
/// without any Query_time, and, ranked by total query time, those after
/// the listed ones reach all of it (see [`pt_limit_100_percent`]).
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct NotListed {
    pub classes_without_query_time: u64,
    pub queries_without_query_time: u64,
    pub classes_zero_time: u64,
    pub queries_zero_time: u64,
}

/// How many of `classes`, ranked by total query time, pt-query-digest's
/// `--limit 100%` lists: it stops once the listed classes add up to the
/// total query time, so the classes of zero time after them are left out,
/// unless the whole log took no time at all.
pub fn pt_limit_100_percent(classes: &[(&[u8], &Class)]) -> usize {
    let time = |class: &Class| class.metrics[QUERY_TIME].sum;
    // Summed in rank order, as below: the running sum reaches the total
    // exactly, whatever the rounding.
    let total: f64 = classes.iter().map(|(_, class)| time(class)).sum();
    if total == 0.0 {
        return classes.len();
    }
    let mut listed_time = 0.0;
    classes
        .iter()
        .take_while(|(_, class)| {
            let more = listed_time < total;
            listed_time += time(class);
            more
        })
        .count()
}

impl Ranked<'_> {
    fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// For JSON, whose encoder escapes control characters.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// For a terminal: bytes that are not UTF-8 as `\xff`, control characters
/// (escape sequences start with one) as `\x1b`, `\u{9b}`, `\r`, ...; newlines
/// and tabs are kept where `lines` (a query as logged), else `\n`, `\t`.
fn escaped(bytes: &[u8], lines: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' | '\t' if lines => out.push(c),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() && c.is_ascii() => {
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A message (a file name in it may hold anything) for a terminal.
pub fn printable(message: &str) -> String {
    escaped(message.as_bytes(), false)
}

/// A single-line value (fingerprint, user, host, database) for a terminal.
fn line(bytes: &[u8]) -> String {
    escaped(bytes, false)
}

fn utc(ts: Option<i64>) -> Option<String> {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn is_time(metric: usize) -> bool {
    metric < 2
}

/// pt-query-digest style: `444us`, `2.46ms`, `12.3s`.
fn seconds(s: f64) -> String {
    if s == 0.0 {
        "0".into()
    } else if s < 0.001 {
        format!("{:.0}us", s * 1e6)
    } else if s < 1.0 {
        format!("{}ms", three_digits(s * 1e3))
    } else {
        format!("{}s", three_digits(s))
    }
}

fn three_digits(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn amount(v: f64) -> String {
    if v >= 1e9 {
        format!("{}G", three_digits(v / 1e9))
    } else if v >= 1e6 {
        format!("{}M", three_digits(v / 1e6))
    } else if v >= 1e4 {
        format!("{}k", three_digits(v / 1e3))
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn value(metric: usize, v: f64) -> String {
    if is_time(metric) {
        seconds(v)
    } else {
        amount(v)
    }
}

fn metric_table(out: &mut String, metrics: &[Metric; 5]) {
    let _ = writeln!(
        out,
        "# {:<14} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "Attribute", "total", "min", "max", "avg", "95%", "median"
    );
    for (index, metric) in metrics.iter().enumerate() {
        let Some(s) = metric.summary() else { continue };
        let v = |x| value(index, x);
        let q = |x: Option<f64>| x.map_or_else(|| "-".into(), v);
        let _ = writeln!(
            out,
            "# {:<14} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            METRICS[index],
            v(s.sum),
            v(s.min),
            v(s.max),
            v(s.avg),
            q(s.pct_95),
            q(s.median)
        );
    }
}

fn top_values(values: &FxHashMap<Box<[u8]>, u64>) -> String {
    let mut sorted: Vec<_> = values.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut shown: Vec<String> = sorted
        .iter()
        .take(3)
        .map(|(v, n)| format!("{} ({n})", line(v)))
        .collect();
    if sorted.len() > 3 {
        let more = if sorted.len() >= MAX_DISTINCT {
            "at least "
        } else {
            ""
        };
        shown.push(format!("{more}{} more", sorted.len() - 3));
    }
    shown.join(", ")
}

fn summary_lines(out: &mut String, r: &Ranked<'_>) {
    let d = r.digest;
    let secs = r.elapsed.as_secs_f64();
    let mb = r.bytes() as f64 / 1e6;
    let _ = writeln!(
        out,
        "# sesame slowlog: {} file(s), {:.1} MB in {:.2} s ({:.0} MB/s); {} queries in {} classes",
        r.files.len(),
        mb,
        secs,
        mb / secs.max(1e-9),
        d.events,
        d.classes.len()
    );
    if let (Some(first), Some(last)) = d.time_range() {
        let _ = writeln!(
            out,
            "# Time range: {} to {} UTC",
            utc(Some(first)).unwrap_or_default(),
            utc(Some(last)).unwrap_or_default()
        );
    }
    if d.filtered_out > 0 {
        let _ = writeln!(out, "# -g skipped {} queries", d.filtered_out);
    }
    let m = d.malformed;
    if m.total() > 0 {
        let _ = writeln!(
            out,
            "# Malformed entries: {} without query text (skipped), {} without Query_time (counted, no timings), {} with a non-numeric value (value left out)",
            m.no_query, m.no_query_time, m.bad_value
        );
    }
    let n = r.not_listed;
    let mut left_out = Vec::new();
    if n.classes_without_query_time > 0 {
        left_out.push(format!(
            "{} without Query_time",
            classes_and_queries(n.classes_without_query_time, n.queries_without_query_time)
        ));
    }
    if n.classes_zero_time > 0 {
        left_out.push(format!(
            "{} of zero time",
            classes_and_queries(n.classes_zero_time, n.queries_zero_time)
        ));
    }
    if !left_out.is_empty() {
        let _ = writeln!(out, "# Not listed: {}", left_out.join(", "));
    }
    for file in r.files {
        if let Some(warning) = &file.warning {
            let _ = writeln!(out, "# Warning: {}", printable(warning));
        }
        if let Some(error) = &file.error {
            let _ = writeln!(
                out,
                "# Error: {} (read {} bytes before it)",
                printable(error),
                file.bytes
            );
        }
    }
}

fn classes_and_queries(classes: u64, queries: u64) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{} ({})",
        plural(classes, "class", "classes"),
        plural(queries, "query", "queries")
    )
}

pub fn write_digest_text(r: &Ranked<'_>, out: &mut impl Write) -> io::Result<()> {
    let mut s = String::new();
    summary_lines(&mut s, r);
    let overall = r.digest.overall();
    if overall.iter().any(|metric| metric.count > 0) {
        s.push_str("# Overall\n");
        metric_table(&mut s, &overall);
    }
    let total_time = overall[0].sum;
    s.push_str("\n# Profile\n");
    let _ = writeln!(
        s,
        "# {:>4} {:<34} {:>9} {:>10} {:>6} {:>9}  Fingerprint",
        "Rank", "Query ID", "Calls", "Time", "%", "R/Call"
    );
    for (rank, (key, class)) in r.classes.iter().enumerate() {
        let time = class.metrics[0].sum;
        let _ = writeln!(
            s,
            "# {:>4} 0x{} {:>9} {:>10} {:>5.1}% {:>9}  {}",
            rank + 1,
            checksum(key),
            class.count,
            seconds(time),
            100.0 * time / total_time.max(f64::MIN_POSITIVE),
            seconds(time / class.count as f64),
            shorten(&line(key), 60)
        );
    }
    for (rank, (key, class)) in r.classes.iter().enumerate() {
        let _ = writeln!(s, "\n# Query {}: ID 0x{}", rank + 1, checksum(key));
        let _ = write!(
            s,
            "# Count: {} ({:.1}% of all queries)",
            class.count,
            100.0 * class.count as f64 / r.digest.events.max(1) as f64
        );
        if let (Some(first), Some(last)) = (utc(class.first_seen), utc(class.last_seen)) {
            let _ = write!(s, ", first {first}, last {last} UTC");
        }
        s.push('\n');
        metric_table(&mut s, &class.metrics);
        for (label, values) in [
            ("Databases", &class.databases),
            ("Users", &class.users),
            ("Hosts", &class.hosts),
        ] {
            if !values.is_empty() {
                let _ = writeln!(s, "# {label}: {}", top_values(values));
            }
        }
        let _ = writeln!(s, "# Fingerprint: {}", line(key));
        let slowest = class
            .example_time
            .map(seconds)
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(
            s,
            "# Slowest example ({slowest}):\n{}\\G",
            escaped(&class.example, true)
        );
    }
    out.write_all(s.as_bytes())
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut short: String = s.chars().take(max - 3).collect();
    short.push_str("...");
    short
}

/// mysqldumpslow's report, line for line (MariaDB's variant, which adds
/// Rows_examined and Rows_affected).
pub fn write_dumpslow_text(r: &Ranked<'_>, out: &mut impl Write) -> io::Result<()> {
    let mut s = String::new();
    for (key, class) in &r.classes {
        let c = class.count as f64;
        let sum = |i: usize| class.metrics[i].sum;
        let name = |values: &FxHashMap<Box<[u8]>, u64>, what: &str| match values.len() {
            1 => line(values.keys().next().expect("one")),
            n => format!("{n}{what}"),
        };
        let _ = write!(
            s,
            "Count: {}  Time={:.2}s ({}s)  Lock={:.2}s ({}s)  Rows_sent={:.1} ({}), Rows_examined={:.1} ({}), Rows_affected={:.1} ({}), {}@{}\n{}\n\n",
            class.count,
            sum(0) / c,
            sum(0) as i64,
            sum(1) / c,
            sum(1) as i64,
            sum(2) / c,
            sum(2) as i64,
            sum(3) / c,
            sum(3) as i64,
            sum(4) / c,
            sum(4) as i64,
            name(&class.users, "users"),
            name(&class.hosts, "hosts"),
            escaped(key, true)
        );
    }
    out.write_all(s.as_bytes())
}

#[derive(Serialize)]
struct JsonReport<'a> {
    mode: &'a str,
    files: &'a [FileRead],
    seconds: f64,
    queries: u64,
    classes_total: usize,
    /// Classes not in `classes`, and why (pt-query-digest's rules).
    not_listed: NotListed,
    filtered_out: u64,
    malformed: crate::digest::Malformed,
    first_seen: Option<String>,
    last_seen: Option<String>,
    overall: FxHashMap<&'static str, Summary>,
    classes: Vec<JsonClass>,
}

#[derive(Serialize)]
struct JsonClass {
    rank: usize,
    /// Fingerprint mode: pt-query-digest's query ID and fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    /// mysqldumpslow mode: the abstracted statement.
    #[serde(skip_serializing_if = "Option::is_none")]
    statement: Option<String>,
    count: u64,
    first_seen: Option<String>,
    last_seen: Option<String>,
    metrics: FxHashMap<&'static str, Summary>,
    databases: FxHashMap<String, u64>,
    users: FxHashMap<String, u64>,
    hosts: FxHashMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    example: Option<String>,
}

fn summaries(metrics: &[Metric; 5]) -> FxHashMap<&'static str, Summary> {
    metrics
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((METRICS[i], m.summary()?)))
        .collect()
}

fn strings(values: &FxHashMap<Box<[u8]>, u64>) -> FxHashMap<String, u64> {
    values.iter().map(|(k, v)| (text(k), *v)).collect()
}

pub fn write_json(r: &Ranked<'_>, fingerprints: bool, out: &mut impl Write) -> io::Result<()> {
    let (first, last) = r.digest.time_range();
    let report = JsonReport {
        mode: if fingerprints {
            "fingerprint"
        } else {
            "mysqldumpslow"
        },
        files: r.files,
        seconds: r.elapsed.as_secs_f64(),
        queries: r.digest.events,
        classes_total: r.digest.classes.len(),
        not_listed: r.not_listed,
        filtered_out: r.digest.filtered_out,
        malformed: r.digest.malformed,
        first_seen: utc(first),
        last_seen: utc(last),
        overall: summaries(&r.digest.overall()),
        classes: r
            .classes
            .iter()
            .enumerate()
            .map(|(rank, (key, class))| JsonClass {
                rank: rank + 1,
                id: fingerprints.then(|| format!("0x{}", checksum(key))),
                fingerprint: fingerprints.then(|| text(key)),
                statement: (!fingerprints).then(|| text(key)),
                count: class.count,
                first_seen: utc(class.first_seen),
                last_seen: utc(class.last_seen),
                metrics: summaries(&class.metrics),
                databases: strings(&class.databases),
                users: strings(&class.users),
                hosts: strings(&class.hosts),
                example: fingerprints.then(|| text(&class.example)),
            })
            .collect(),
    };
    serde_json::to_writer(&mut *out, &report)?;
    out.write_all(b"\n")
}
