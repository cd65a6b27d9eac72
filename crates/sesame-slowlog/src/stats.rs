//! Per-attribute statistics with pt-query-digest's bucketed percentiles.
//!
//! pt-query-digest's EventAggregator keeps no values, only counts in 1000
//! logarithmic buckets (each 5% wider than the previous, from 1us; bucket 0
//! holds everything below). Its 95th percentile and median are the lower
//! bound of the bucket where the count crosses 95% and 50% (for one or two
//! values, or all equal, the exact values). sesame keeps the same buckets
//! and the same arithmetic, so both tools print the same numbers; the error
//! against exact quantiles is below 5%. Memory is bounded per class: only
//! the bucket range actually used is stored.

use std::sync::OnceLock;

const BUCKET_SIZE: f64 = 1.05;
const BUCKETS: usize = 1000;
const MIN_BUCKET: f64 = 0.000001;

fn base_log() -> f64 {
    BUCKET_SIZE.ln()
}

fn base_offset() -> f64 {
    (1.0 - MIN_BUCKET.ln() / base_log()).abs()
}

/// `bucket_idx` of pt-query-digest.
pub fn bucket_index(value: f64) -> usize {
    if value < MIN_BUCKET {
        return 0;
    }
    // Small integers (rows) are the common case: look them up.
    if value < SMALL_INTS as f64 && value.fract() == 0.0 {
        return small_int_buckets()[value as usize] as usize;
    }
    bucket_index_slow(value)
}

fn bucket_index_slow(value: f64) -> usize {
    let index = (base_offset() + value.ln() / base_log()) as usize;
    index.min(BUCKETS - 1)
}

const SMALL_INTS: usize = 4096;

fn small_int_buckets() -> &'static [u16; SMALL_INTS] {
    static TABLE: OnceLock<[u16; SMALL_INTS]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [0; SMALL_INTS];
        for (value, slot) in table.iter_mut().enumerate().skip(1) {
            *slot = bucket_index_slow(value as f64) as u16;
        }
        table
    })
}

/// `bucket_value` of pt-query-digest: the lower bound of a bucket.
pub fn bucket_value(index: usize) -> f64 {
    static VALUES: OnceLock<Vec<f64>> = OnceLock::new();
    VALUES.get_or_init(|| {
        (0..BUCKETS)
            .map(|i| {
                if i == 0 {
                    0.0
                } else {
                    BUCKET_SIZE.powi(i as i32 - 1) * MIN_BUCKET
                }
            })
            .collect()
    })[index]
}

#[derive(Debug, Clone, Default)]
pub struct Metric {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    buckets: Buckets,
}

/// Counts for the bucket range `[low, low + counts.len())`.
#[derive(Debug, Clone, Default)]
struct Buckets {
    low: usize,
    counts: Vec<u64>,
}

impl Buckets {
    fn add(&mut self, index: usize, n: u64) {
        if self.counts.is_empty() {
            self.low = index;
        } else if index < self.low {
            let grow = self.low - index;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.low = index;
        }
        let at = index - self.low;
        if at >= self.counts.len() {
            self.counts.resize(at + 1, 0);
        }
        self.counts[at] += n;
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (self.low + i, *n))
    }
}

/// What the report prints for one attribute of one class.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    /// Only where buckets were kept (not in mysqldumpslow mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pct_95: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median: Option<f64>,
}

impl Metric {
    pub fn add(&mut self, value: f64, with_quantiles: bool) {
        if self.count == 0 || value < self.min {
            self.min = value;
        }
        if self.count == 0 || value > self.max {
            self.max = value;
        }
        self.count += 1;
        self.sum += value;
        if with_quantiles {
            self.buckets.add(bucket_index(value), 1);
        }
    }

    pub fn merge(&mut self, other: &Metric) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 || other.min < self.min {
            self.min = other.min;
        }
        if self.count == 0 || other.max > self.max {
            self.max = other.max;
        }
        self.count += other.count;
        self.sum += other.sum;
        for (index, n) in other.buckets.iter() {
            self.buckets.add(index, n);
        }
    }

    /// pt-query-digest's `_calc_metrics` (95th percentile and median).
    pub fn summary(&self) -> Option<Summary> {
        if self.count == 0 {
            return None;
        }
        let n = self.count;
        let (pct_95, median) = if n == 1 || self.max == self.min {
            (Some(self.max), Some(self.max))
        } else if n == 2 {
            (Some(self.max), Some((self.min + self.max) / 2.0))
        } else if self.buckets.counts.is_empty() {
            (None, None)
        } else {
            let (pct_95, median) = self.bucket_quantiles();
            (Some(pct_95), Some(median))
        };
        Some(Summary {
            sum: self.sum,
            min: self.min,
            max: self.max,
            avg: self.sum / n as f64,
            pct_95,
            median,
        })
    }

    fn bucket_quantiles(&self) -> (f64, f64) {
        let n = self.count;
        let cutoff = if n >= 10 { (n as f64 * 0.95) as u64 } else { n };
        let top = n - cutoff;
        let mid = n / 2;
        let (mut left, mut seen) = (n, 0);
        let (mut median, mut bucket_95) = (0.0, 0);
        let mut prev = BUCKETS - 1;
        for (index, count) in self.buckets.iter().rev() {
            left -= count;
            seen += count;
            if bucket_95 == 0 && seen > top {
                bucket_95 = index;
            }
            if median == 0.0 && left <= mid {
                median = if cutoff % 2 == 1 || count > 1 {
                    bucket_value(index)
                } else {
                    (bucket_value(index) + bucket_value(prev)) / 2.0
                };
            }
            prev = index;
        }
        (bucket_value(bucket_95), median)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_pt_query_digest() {
        // perl -e 'require "/usr/bin/pt-query-digest"; print EventAggregator::bucket_idx($v)'
        assert_eq!(bucket_index(0.0), 0);
        assert_eq!(bucket_index(0.000001), 1);
        assert_eq!(bucket_index(0.000218), 111);
        assert_eq!(bucket_index(1.0), 284);
        assert_eq!(bucket_index(2.0), 298);
        assert!((bucket_value(298) - 1.96436335480179).abs() < 1e-12);
        assert_eq!(bucket_index(1e30), 999);
    }

    #[test]
    fn one_or_two_values_are_exact() {
        let mut m = Metric::default();
        m.add(0.5, true);
        assert_eq!(m.summary().unwrap().median, Some(0.5));
        m.add(1.5, true);
        let s = m.summary().unwrap();
        assert_eq!((s.pct_95, s.median, s.avg), (Some(1.5), Some(1.0), 1.0));
    }

    #[test]
    fn quantiles_are_bucket_lower_bounds_within_five_percent() {
        let mut m = Metric::default();
        for i in 1..=100 {
            m.add(f64::from(i) / 1000.0, true);
        }
        let s = m.summary().unwrap();
        let (pct_95, median) = (s.pct_95.unwrap(), s.median.unwrap());
        assert!(pct_95 <= 0.095 && pct_95 > 0.095 / 1.05, "{s:?}");
        assert!(median <= 0.051 && median > 0.050 / 1.05, "{s:?}");
    }
}
