//! Per-class aggregates: the only state kept while reading, so memory grows
//! with the number of query classes, not with the log.

use crate::dumpslow::Abstractor;
use crate::fingerprint::{cache_key, Fingerprinter};
use crate::parse::{Entry, Parsed, LOCK_TIME, QUERY_TIME};
use crate::stats::Metric;
use regex::bytes::Regex;
use rustc_hash::FxHashMap;

/// How entries are grouped into classes.
pub enum Grouping {
    /// pt-query-digest's fingerprint.
    Fingerprint,
    /// mysqldumpslow's statement abstraction; `keep_lock_time` is `-l`.
    Mysqldumpslow {
        abstractor: Box<Abstractor>,
        keep_lock_time: bool,
    },
}

/// Distinct values kept per class and attribute (users, hosts, databases);
/// past this the report says "at least".
pub const MAX_DISTINCT: usize = 100;

#[derive(Debug, Default, Clone)]
pub struct Class {
    pub count: u64,
    pub metrics: [Metric; 5],
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    /// The slowest query of the class, as logged.
    pub example: Vec<u8>,
    pub example_time: Option<f64>,
    pub users: FxHashMap<Box<[u8]>, u64>,
    pub hosts: FxHashMap<Box<[u8]>, u64>,
    pub databases: FxHashMap<Box<[u8]>, u64>,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Malformed {
    /// Entries with header lines but no query text: skipped.
    pub no_query: u64,
    /// Entries without a `# Query_time:` header: counted in their class,
    /// without timings.
    pub no_query_time: u64,
    /// Header values that are not numbers: left out.
    pub bad_value: u64,
}

impl Malformed {
    pub fn total(&self) -> u64 {
        self.no_query + self.no_query_time + self.bad_value
    }

    fn merge(&mut self, other: &Malformed) {
        self.no_query += other.no_query;
        self.no_query_time += other.no_query_time;
        self.bad_value += other.bad_value;
    }
}

/// One worker's aggregates; [`Digest::merge`] combines workers.
#[derive(Default)]
pub struct Digest {
    pub classes: FxHashMap<Box<[u8]>, Class>,
    pub events: u64,
    pub filtered_out: u64,
    pub malformed: Malformed,
}

pub struct Aggregator<'a> {
    grouping: &'a Grouping,
    grep: Option<&'a Regex>,
    fingerprinter: Fingerprinter,
    classes: Vec<(Box<[u8]>, Class)>,
    by_key: FxHashMap<Box<[u8]>, usize>,
    /// [`cache_key`] to class: most queries skip fingerprinting.
    by_cache_key: FxHashMap<Box<[u8]>, usize>,
    cache_key: Vec<u8>,
    events: u64,
    filtered_out: u64,
    malformed: Malformed,
}

/// Cache entries per worker; the cache starts over when full, so memory
/// stays bounded when queries have no common shape.
const CACHE_LIMIT: usize = 4096;

impl<'a> Aggregator<'a> {
    pub fn new(grouping: &'a Grouping, grep: Option<&'a Regex>) -> Self {
        Self {
            grouping,
            grep,
            fingerprinter: Fingerprinter::default(),
            classes: Vec::new(),
            by_key: FxHashMap::default(),
            by_cache_key: FxHashMap::default(),
            cache_key: Vec::new(),
            events: 0,
            filtered_out: 0,
            malformed: Malformed::default(),
        }
    }

    pub fn add(&mut self, parsed: Parsed<'_>) {
        let mut entry = match parsed {
            Parsed::Entry(entry) => entry,
            Parsed::NoQuery(_) => {
                self.malformed.no_query += 1;
                return;
            }
        };
        if self.grep.is_some_and(|re| !re.is_match(entry.query)) {
            self.filtered_out += 1;
            return;
        }
        self.events += 1;
        if entry.metrics[QUERY_TIME].is_none() {
            self.malformed.no_query_time += 1;
        }
        if entry.bad_value {
            self.malformed.bad_value += 1;
        }
        match self.grouping {
            Grouping::Fingerprint => {
                let index = self.fingerprint_class(entry.query);
                let class = &mut self.classes[index].1;
                class.add(&entry, true);
                if class.example.is_empty() || entry.metrics[QUERY_TIME] > class.example_time {
                    class.example_time = entry.metrics[QUERY_TIME];
                    class.example.clear();
                    class.example.extend_from_slice(entry.query);
                }
                class.note_user_host(&entry, UserHostStyle::PtQueryDigest);
            }
            Grouping::Mysqldumpslow {
                abstractor,
                keep_lock_time,
            } => {
                if !keep_lock_time {
                    if let (Some(t), Some(l)) =
                        (entry.metrics[QUERY_TIME], entry.metrics[LOCK_TIME])
                    {
                        entry.metrics[QUERY_TIME] = Some(t - l);
                    }
                }
                let index = self.class_index(&abstractor.statement(entry.query));
                let class = &mut self.classes[index].1;
                class.add(&entry, false);
                class.note_user_host(&entry, UserHostStyle::Mysqldumpslow);
            }
        }
    }

    fn fingerprint_class(&mut self, query: &[u8]) -> usize {
        if !cache_key(query, &mut self.cache_key) {
            let fingerprint = self.fingerprinter.fingerprint(query).to_vec();
            return self.class_index(&fingerprint);
        }
        if let Some(&index) = self.by_cache_key.get(&self.cache_key[..]) {
            return index;
        }
        let fingerprint = self.fingerprinter.fingerprint(query).to_vec();
        let index = self.class_index(&fingerprint);
        if self.by_cache_key.len() >= CACHE_LIMIT {
            self.by_cache_key.clear();
        }
        self.by_cache_key.insert(self.cache_key[..].into(), index);
        index
    }

    fn class_index(&mut self, key: &[u8]) -> usize {
        if let Some(&index) = self.by_key.get(key) {
            return index;
        }
        self.classes.push((key.into(), Class::default()));
        self.by_key.insert(key.into(), self.classes.len() - 1);
        self.classes.len() - 1
    }

    pub fn finish(self) -> Digest {
        Digest {
            classes: self.classes.into_iter().collect(),
            events: self.events,
            filtered_out: self.filtered_out,
            malformed: self.malformed,
        }
    }
}

#[derive(Clone, Copy)]
enum UserHostStyle {
    /// `user` and `host` (or the IP when the host is empty).
    PtQueryDigest,
    /// The raw `user[user]` and `host` words.
    Mysqldumpslow,
}

impl Class {
    fn add(&mut self, entry: &Entry<'_>, with_quantiles: bool) {
        self.count += 1;
        for (metric, value) in self.metrics.iter_mut().zip(entry.metrics) {
            if let Some(value) = value {
                metric.add(value, with_quantiles);
            }
        }
        if let Some(ts) = entry.timestamp {
            self.first_seen = Some(self.first_seen.map_or(ts, |f| f.min(ts)));
            self.last_seen = Some(self.last_seen.map_or(ts, |l| l.max(ts)));
        }
        if let Some(db) = entry.db.or(entry.schema) {
            count_distinct(&mut self.databases, trim_quotes(db), 1);
        }
    }

    fn note_user_host(&mut self, entry: &Entry<'_>, style: UserHostStyle) {
        let Some(line) = entry.user_host else {
            return;
        };
        let (user, host) = match style {
            UserHostStyle::PtQueryDigest => pt_user_host(line),
            UserHostStyle::Mysqldumpslow => dumpslow_user_host(line),
        };
        if !user.is_empty() {
            count_distinct(&mut self.users, user, 1);
        }
        if !host.is_empty() {
            count_distinct(&mut self.hosts, host, 1);
        }
    }

    pub fn merge(&mut self, other: Class) {
        self.count += other.count;
        for (mine, theirs) in self.metrics.iter_mut().zip(&other.metrics) {
            mine.merge(theirs);
        }
        self.first_seen = min_option(self.first_seen, other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        if other.example_time > self.example_time || self.example.is_empty() {
            self.example = other.example;
            self.example_time = other.example_time;
        }
        for (mine, theirs) in [
            (&mut self.users, other.users),
            (&mut self.hosts, other.hosts),
            (&mut self.databases, other.databases),
        ] {
            for (value, n) in theirs {
                count_distinct(mine, &value, n);
            }
        }
    }
}

fn min_option(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn count_distinct(values: &mut FxHashMap<Box<[u8]>, u64>, value: &[u8], n: u64) {
    if let Some(count) = values.get_mut(value) {
        *count += n;
    } else if values.len() < MAX_DISTINCT {
        values.insert(value.into(), n);
    }
}

fn trim_quotes(db: &[u8]) -> &[u8] {
    db.strip_prefix(b"`")
        .and_then(|d| d.strip_suffix(b"`"))
        .unwrap_or(db)
}

/// `# User@Host: app[app] @ localhost [127.0.0.1]  Id: 8` as pt-query-digest
/// reads it: user `app`, host `localhost` (the IP when the host is empty).
fn pt_user_host(line: &[u8]) -> (&[u8], &[u8]) {
    let user_end = line.iter().position(|&b| b == b'[').unwrap_or(line.len());
    let user = line[..user_end].trim_ascii();
    let Some(at) = memchr::memmem::find(line, b"@ ") else {
        return (user, b"");
    };
    let rest = &line[at + 2..];
    let host_end = rest
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let host = &rest[..host_end];
    if !host.is_empty() && !host.starts_with(b"[") {
        return (user, host);
    }
    let ip = rest
        .iter()
        .position(|&b| b == b'[')
        .and_then(|open| {
            let after = &rest[open + 1..];
            after
                .iter()
                .position(|&b| b == b']')
                .map(|close| &after[..close])
        })
        .unwrap_or(b"");
    (user, ip)
}

/// mysqldumpslow's `User\@Host:\s+(\S+)\s+\@\s+(\S+)`.
fn dumpslow_user_host(line: &[u8]) -> (&[u8], &[u8]) {
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    match (words.next(), words.next(), words.next()) {
        (Some(user), Some(b"@"), Some(host)) => (user, host),
        _ => (b"", b""),
    }
}

impl Digest {
    pub fn merge(&mut self, other: Digest) {
        self.events += other.events;
        self.filtered_out += other.filtered_out;
        self.malformed.merge(&other.malformed);
        for (key, class) in other.classes {
            match self.classes.get_mut(&key) {
                Some(mine) => mine.merge(class),
                None => {
                    self.classes.insert(key, class);
                }
            }
        }
    }

    /// All classes together, like pt-query-digest's "Overall" line.
    pub fn overall(&self) -> [Metric; 5] {
        let mut overall: [Metric; 5] = Default::default();
        for class in self.classes.values() {
            for (total, metric) in overall.iter_mut().zip(&class.metrics) {
                total.merge(metric);
            }
        }
        overall
    }

    pub fn time_range(&self) -> (Option<i64>, Option<i64>) {
        let first = self.classes.values().filter_map(|c| c.first_seen).min();
        let last = self.classes.values().filter_map(|c| c.last_seen).max();
        (first, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_host_lines() {
        assert_eq!(
            pt_user_host(b"app[app] @ localhost [127.0.0.1]  Id: 8"),
            (&b"app"[..], &b"localhost"[..])
        );
        assert_eq!(
            pt_user_host(b"app[app] @  [10.0.0.5]"),
            (&b"app"[..], &b"10.0.0.5"[..])
        );
        assert_eq!(
            dumpslow_user_host(b"root[root] @ localhost []"),
            (&b"root[root]"[..], &b"localhost"[..])
        );
    }
}
