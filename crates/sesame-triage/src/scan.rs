//! One pass over the event log into bounded state: a latency histogram and
//! counters per time bucket, exact counts per dimension value, uniform
//! samples of slow and normal logins for pairs of dimensions (the slow ones
//! with their stage times), stage sums.
//! Nothing here grows with the number of lines.

use crate::dims::{self, Dictionaries, Tuple, DIMENSIONS};
use crate::record::{parse_ts, Record};
use crate::rng::Rng;
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;
use sesame_domain::event::Outcome;
use std::hash::BuildHasher;
use std::net::IpAddr;

/// Bucket widths the timeline may use, each a multiple of the one before:
/// it starts at the finest and coarsens when the span needs more buckets
/// than [`MAX_BUCKETS`].
pub const WIDTHS_MS: [i64; 8] = [
    10_000,
    60_000,
    300_000,
    900_000,
    3_600_000,
    21_600_000,
    86_400_000,
    604_800_000,
];
const MAX_BUCKETS: usize = 2048;

/// Latency is kept in tenths of a millisecond, up to an hour.
const LATENCY_UNITS_PER_MS: f64 = 10.0;
const LATENCY_MAX: u64 = 36_000_000;

/// Logins sampled per class (slow, normal) for pair statistics. Under this
/// many, the sample is the whole population and pair counts are exact.
const SAMPLE_SIZE: usize = 200_000;
/// Heavy hitters kept per bucket among failed logins' addresses.
const TOP_IPS: usize = 8;
/// Bad lines quoted in the report.
const BAD_EXAMPLES: usize = 5;

/// Outcome counts: one slot per outcome of the event schema (in
/// `Outcome::ALL` order), then one for anything else.
pub const OUTCOME_SLOTS: usize = Outcome::ALL.len() + 1;

/// The counting slot of an event's outcome text.
pub fn outcome_slot(text: &str) -> usize {
    Outcome::parse(text).map_or(Outcome::ALL.len(), |o| o as usize)
}

/// What an attacker's attempts end in: wrong passwords, then throttling.
fn is_failure(slot: usize) -> bool {
    slot == Outcome::InvalidCredentials as usize || slot == Outcome::RateLimited as usize
}

#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub threshold_ms: f64,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// Everything known about the logins of one time bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub latency: Histogram<u32>,
    pub logins: u64,
    pub slow: u64,
    pub outcomes: [u64; OUTCOME_SLOTS],
    /// Logins per server_version id.
    pub versions: Vec<(u16, u64)>,
    /// Approximate top addresses among failed logins (space-saving).
    pub failing_ips: TopK,
}

impl Default for Bucket {
    fn default() -> Self {
        Self::new()
    }
}

impl Bucket {
    pub fn new() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, LATENCY_MAX, 2).expect("valid bounds"),
            logins: 0,
            slow: 0,
            outcomes: [0; OUTCOME_SLOTS],
            versions: Vec::new(),
            failing_ips: TopK::with_capacity(TOP_IPS),
        }
    }

    pub fn merge(&mut self, other: &Bucket) {
        self.latency.add(&other.latency).expect("same bounds");
        self.logins += other.logins;
        self.slow += other.slow;
        for (mine, theirs) in self.outcomes.iter_mut().zip(other.outcomes) {
            *mine += theirs;
        }
        for &(version, n) in &other.versions {
            self.add_version(version, n);
        }
        self.failing_ips.merge(&other.failing_ips);
    }

    fn add_version(&mut self, version: u16, n: u64) {
        match self.versions.iter_mut().find(|(v, _)| *v == version) {
            Some((_, count)) => *count += n,
            None => self.versions.push((version, n)),
        }
    }

    /// Latency quantile in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / LATENCY_UNITS_PER_MS
    }
}

/// Every address that failed a login, with its first failure and its
/// counts: what names the addresses of a distributed attack, each of which
/// sends too little to stand out among the heavy hitters. Successes are
/// counted for addresses already in it (an address that succeeded only
/// before its first failure looks worse than it is, never better). Past
/// [`MAX_FAILING_ADDRESSES`] new addresses are left out.
#[derive(Debug, Clone, Default)]
pub struct FailingAddresses {
    pub by_ip: FxHashMap<IpAddr, AddressRecord>,
}

/// About 40 MB at most: a day of a large deployment's failed logins.
pub const MAX_FAILING_ADDRESSES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AddressRecord {
    pub first_failure_ms: i64,
    pub failures: u32,
    pub successes: u32,
    /// Accounts its failures went to, counted as changes of account from
    /// one failure to the next: one for a user who forgot a password, one
    /// per attempt for a stuffing list.
    pub accounts: u32,
    last_account: u64,
}

impl FailingAddresses {
    fn failed(&mut self, ip: IpAddr, ts: i64, user: &str) {
        let account = rustc_hash::FxBuildHasher.hash_one(user);
        if let Some(r) = self.by_ip.get_mut(&ip) {
            r.failures += 1;
            r.first_failure_ms = r.first_failure_ms.min(ts);
            if r.last_account != account {
                r.accounts += 1;
                r.last_account = account;
            }
        } else if self.by_ip.len() < MAX_FAILING_ADDRESSES {
            self.by_ip.insert(
                ip,
                AddressRecord {
                    first_failure_ms: ts,
                    failures: 1,
                    successes: 0,
                    accounts: 1,
                    last_account: account,
                },
            );
        }
    }

    fn succeeded(&mut self, ip: IpAddr) {
        if let Some(r) = self.by_ip.get_mut(&ip) {
            r.successes += 1;
        }
    }
}

/// Space-saving heavy hitters: a bounded set of counters; a newcomer takes
/// over the smallest one, so counts are upper bounds and true heavy hitters
/// are never lost.
#[derive(Debug, Clone)]
pub struct TopK {
    pub counts: Vec<(IpAddr, u64)>,
    capacity: usize,
}

impl TopK {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            counts: Vec::new(),
            capacity,
        }
    }

    pub fn add(&mut self, ip: IpAddr, n: u64) {
        if let Some(entry) = self.counts.iter_mut().find(|(i, _)| *i == ip) {
            entry.1 += n;
        } else if self.counts.len() < self.capacity {
            self.counts.push((ip, n));
        } else if let Some(smallest) = self.counts.iter_mut().min_by_key(|(_, c)| *c) {
            *smallest = (ip, smallest.1 + n);
        }
    }

    pub fn merge(&mut self, other: &TopK) {
        for &(ip, n) in &other.counts {
            self.add(ip, n);
        }
    }
}

/// The timeline: buckets of one width, contiguous from `start`.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub width_ms: i64,
    pub start_ms: i64,
    pub buckets: Vec<Option<Box<Bucket>>>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self {
            width_ms: WIDTHS_MS[0],
            start_ms: 0,
            buckets: Vec::new(),
        }
    }
}

impl Timeline {
    /// The bucket for `ts`, coarsening the timeline if the span needs it;
    /// `None` only past the coarsest width.
    fn bucket(&mut self, ts: i64) -> Option<&mut Bucket> {
        loop {
            let key = ts.div_euclid(self.width_ms) * self.width_ms;
            if self.buckets.is_empty() {
                self.start_ms = key;
            }
            let span = if key < self.start_ms {
                (self.start_ms - key) / self.width_ms + self.buckets.len() as i64
            } else {
                ((key - self.start_ms) / self.width_ms + 1).max(self.buckets.len() as i64)
            };
            if span as usize > MAX_BUCKETS {
                if !self.coarsen() {
                    return None;
                }
                continue;
            }
            if key < self.start_ms {
                let extra = ((self.start_ms - key) / self.width_ms) as usize;
                self.buckets.splice(0..0, std::iter::repeat_n(None, extra));
                self.start_ms = key;
            }
            let index = ((key - self.start_ms) / self.width_ms) as usize;
            if index >= self.buckets.len() {
                self.buckets.resize(index + 1, None);
            }
            return Some(self.buckets[index].get_or_insert_with(|| Box::new(Bucket::new())));
        }
    }

    fn coarsen(&mut self) -> bool {
        let Some(&wider) = WIDTHS_MS.iter().find(|&&w| w > self.width_ms) else {
            return false;
        };
        let old = std::mem::take(&mut self.buckets);
        let old_start = self.start_ms;
        let old_width = self.width_ms;
        self.width_ms = wider;
        self.start_ms = old_start.div_euclid(wider) * wider;
        for (i, bucket) in old.into_iter().enumerate() {
            let Some(bucket) = bucket else { continue };
            let ts = old_start + i as i64 * old_width;
            let index = ((ts - self.start_ms) / wider) as usize;
            if index >= self.buckets.len() {
                self.buckets.resize(index + 1, None);
            }
            match &mut self.buckets[index] {
                Some(existing) => existing.merge(&bucket),
                slot => *slot = Some(bucket),
            }
        }
        true
    }
}

/// Milliseconds of one login by stage: queue, hash, db, session, and the
/// time outside them (other).
pub type StageTimes = [f32; 5];

/// A uniform sample (reservoir) of value tuples; the slow logins' sample
/// also keeps each one's stage times, so that the analysis can tell which
/// stage grew in which group.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub tuples: Vec<Tuple>,
    /// Parallel to `tuples` when stage times are offered (slow logins only).
    pub stages: Vec<StageTimes>,
    pub seen: u64,
}

impl Sample {
    fn offer(&mut self, tuple: Tuple, stages: Option<StageTimes>, rng: &mut Rng) {
        self.seen += 1;
        if self.tuples.len() < SAMPLE_SIZE {
            self.tuples.push(tuple);
            self.stages.extend(stages);
        } else {
            let slot = rng.below(self.seen) as usize;
            if slot < SAMPLE_SIZE {
                self.tuples[slot] = tuple;
                if let (Some(stages), Some(kept)) = (stages, self.stages.get_mut(slot)) {
                    *kept = stages;
                }
            }
        }
    }
}

/// Sums of milliseconds by stage for one class of logins.
#[derive(Debug, Clone, Default)]
pub struct StageSums {
    pub logins: u64,
    pub total_ms: f64,
    /// queue, hash, db, session.
    pub stages_ms: [f64; 4],
}

#[derive(Debug, Clone)]
pub struct BadLine {
    pub file: String,
    pub line: u64,
    pub error: String,
}

#[derive(Debug)]
pub struct Scan {
    pub settings: Settings,
    pub files: Vec<String>,
    pub lines: u64,
    pub bad_lines: u64,
    pub bad_examples: Vec<BadLine>,
    pub outside_range: u64,
    pub logins: u64,
    pub slow: u64,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub timeline: Timeline,
    pub dictionaries: Dictionaries,
    /// Per dimension, per value id: [all logins, slow logins].
    pub counts: Vec<Vec<[u64; 2]>>,
    pub slow_sample: Sample,
    pub normal_sample: Sample,
    /// [normal, slow].
    pub stage_sums: [StageSums; 2],
    pub failing_addresses: FailingAddresses,
    rng: Rng,
    line_in_file: u64,
}

impl Scan {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            files: Vec::new(),
            lines: 0,
            bad_lines: 0,
            bad_examples: Vec::new(),
            outside_range: 0,
            logins: 0,
            slow: 0,
            first_ms: None,
            last_ms: None,
            timeline: Timeline::default(),
            dictionaries: Dictionaries::default(),
            counts: vec![Vec::new(); DIMENSIONS],
            slow_sample: Sample::default(),
            normal_sample: Sample::default(),
            failing_addresses: FailingAddresses::default(),
            stage_sums: Default::default(),
            rng: Rng::new(0x005e_5a3e),
            line_in_file: 0,
        }
    }

    pub fn start_file(&mut self, name: &str) {
        self.files.push(name.to_owned());
        self.line_in_file = 0;
    }

    pub fn line(&mut self, line: &[u8]) {
        self.line_in_file += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.lines += 1;
        let record = match Record::parse(line) {
            Ok(record) => record,
            Err(e) => return self.bad(e),
        };
        let Some(ts) = parse_ts(&record.ts) else {
            return self.bad(format!("bad ts {:?}", record.ts));
        };
        if !record.total_ms.is_finite() || record.total_ms < 0.0 {
            return self.bad(format!("bad total_ms {}", record.total_ms));
        }
        let in_range = self.settings.since_ms.is_none_or(|since| ts >= since)
            && self.settings.until_ms.is_none_or(|until| ts < until);
        if !in_range {
            self.outside_range += 1;
            return;
        }
        self.add(ts, &record);
    }

    fn bad(&mut self, error: String) {
        self.bad_lines += 1;
        if self.bad_examples.len() < BAD_EXAMPLES {
            self.bad_examples.push(BadLine {
                file: self.files.last().cloned().unwrap_or_default(),
                line: self.line_in_file,
                error,
            });
        }
    }

    fn add(&mut self, ts: i64, record: &Record) {
        let slow = record.total_ms >= self.settings.threshold_ms;
        let outcome = outcome_slot(&record.outcome);
        let tuple = self.dictionaries.tuple(record);
        let Some(bucket) = self.timeline.bucket(ts) else {
            self.outside_range += 1;
            return;
        };
        bucket
            .latency
            .saturating_record(((record.total_ms * LATENCY_UNITS_PER_MS) as u64).max(1));
        bucket.logins += 1;
        bucket.slow += u64::from(slow);
        bucket.outcomes[outcome] += 1;
        bucket.add_version(tuple[dims::SERVER_VERSION], 1);
        if is_failure(outcome) {
            if let Ok(ip) = record.ip.parse::<IpAddr>() {
                bucket.failing_ips.add(ip, 1);
                self.failing_addresses.failed(ip, ts, &record.user);
            }
        } else if outcome == Outcome::Ok as usize && !self.failing_addresses.by_ip.is_empty() {
            if let Ok(ip) = record.ip.parse::<IpAddr>() {
                self.failing_addresses.succeeded(ip);
            }
        }

        self.logins += 1;
        self.slow += u64::from(slow);
        self.first_ms = Some(self.first_ms.map_or(ts, |t| t.min(ts)));
        self.last_ms = Some(self.last_ms.map_or(ts, |t| t.max(ts)));
        for (dim, &id) in tuple.iter().enumerate() {
            let counts = &mut self.counts[dim];
            if counts.len() <= usize::from(id) {
                counts.resize(usize::from(id) + 1, [0, 0]);
            }
            counts[usize::from(id)][0] += 1;
            counts[usize::from(id)][1] += u64::from(slow);
        }
        if slow {
            let [queue, hash, db, session] = record.stages();
            let other = record.total_ms - (queue + hash + db + session);
            let times = [queue, hash, db, session, other.max(0.0)].map(|ms| ms as f32);
            self.slow_sample.offer(tuple, Some(times), &mut self.rng);
        } else {
            self.normal_sample.offer(tuple, None, &mut self.rng);
        }
        let sums = &mut self.stage_sums[usize::from(slow)];
        sums.logins += 1;
        sums.total_ms += record.total_ms;
        for (sum, ms) in sums.stages_ms.iter_mut().zip(record.stages()) {
            *sum += ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_address_counts_the_accounts_it_failed_on() {
        let mut table = FailingAddresses::default();
        let forgetful: IpAddr = "11.0.0.1".parse().unwrap();
        let stuffer: IpAddr = "198.19.255.1".parse().unwrap();
        for (n, ts) in (0..6).zip(100..) {
            table.failed(forgetful, ts, "alice");
            table.failed(stuffer, 200 - ts, &format!("victim{n}"));
        }
        table.succeeded(forgetful);
        table.succeeded("11.0.0.2".parse().unwrap()); // never failed: not kept
        let f = table.by_ip[&forgetful];
        assert_eq!(
            (f.failures, f.accounts, f.successes, f.first_failure_ms),
            (6, 1, 1, 100)
        );
        let s = table.by_ip[&stuffer];
        assert_eq!((s.failures, s.accounts, s.first_failure_ms), (6, 6, 95));
        assert_eq!(table.by_ip.len(), 2);
    }
}
