//! Recording: HdrHistograms of latency per operation and outcome, sharded so
//! that workers on different threads rarely share a lock.

use crate::scenario::Op;
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// An HTTP answer with this status.
    Status(u16),
    /// No full answer before the deadline (`--timeout` after the intended
    /// send time).
    Timeout,
    /// The deadline passed while the request waited for a free connection:
    /// it was never sent, and counts as a timeout of its own kind.
    Unsent,
    /// The connection could not be opened.
    Connect,
    /// The connection failed mid-request.
    Io,
}

impl Outcome {
    pub fn is_error_for(self, op: Op) -> bool {
        match self {
            Outcome::Status(status) => !op.expects(status),
            _ => true,
        }
    }

    /// The name errors are counted under.
    pub fn error_kind(self) -> String {
        match self {
            Outcome::Status(status) => format!("http {status}"),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Status(status) => write!(f, "{status}"),
            Outcome::Timeout => f.write_str("timeout"),
            Outcome::Unsent => f.write_str("timeout before send"),
            Outcome::Connect => f.write_str("connect error"),
            Outcome::Io => f.write_str("connection error"),
        }
    }
}

/// Latencies are recorded in microseconds, from 1 µs to an hour, to 3
/// significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// What happened during one progress tick.
pub struct Tick {
    pub completed: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
    /// Requests completed, per operation and outcome.
    pub counts: HashMap<(Op, Outcome), u64>,
}

impl Default for Tick {
    fn default() -> Self {
        Self {
            completed: 0,
            errors: 0,
            latency: new_histogram(),
            counts: HashMap::new(),
        }
    }
}

/// Everything recorded over a run.
#[derive(Default)]
pub struct Totals {
    /// From the intended send time, per operation and outcome.
    pub latency: BTreeMap<(Op, Outcome), Histogram<u64>>,
    /// From the actual send, per operation (what a closed-loop tool reports).
    pub service: BTreeMap<Op, Histogram<u64>>,
}

#[derive(Default)]
struct Shard {
    latency: HashMap<(Op, Outcome), Histogram<u64>>,
    service: HashMap<Op, Histogram<u64>>,
    tick: Tick,
}

pub struct Recorders {
    shards: Vec<Mutex<Shard>>,
}

impl Recorders {
    pub fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    /// `service` is `None` for a request that was never sent.
    pub fn record(
        &self,
        shard: usize,
        op: Op,
        outcome: Outcome,
        latency: Duration,
        service: Option<Duration>,
    ) {
        let latency = micros(latency);
        let mut shard = self.shards[shard % self.shards.len()]
            .lock()
            .expect("recorder lock");
        shard
            .latency
            .entry((op, outcome))
            .or_insert_with(new_histogram)
            .saturating_record(latency);
        if let Some(service) = service {
            shard
                .service
                .entry(op)
                .or_insert_with(new_histogram)
                .saturating_record(micros(service));
        }
        shard.tick.completed += 1;
        shard.tick.errors += u64::from(outcome.is_error_for(op));
        shard.tick.latency.saturating_record(latency);
        *shard.tick.counts.entry((op, outcome)).or_default() += 1;
    }

    /// What was recorded since the last call.
    pub fn take_tick(&self) -> Tick {
        let mut tick = Tick::default();
        for shard in &self.shards {
            let taken = std::mem::take(&mut shard.lock().expect("recorder lock").tick);
            tick.completed += taken.completed;
            tick.errors += taken.errors;
            tick.latency
                .add(&taken.latency)
                .expect("histograms share bounds");
            for (key, n) in taken.counts {
                *tick.counts.entry(key).or_default() += n;
            }
        }
        tick
    }

    pub fn into_totals(self) -> Totals {
        let mut totals = Totals::default();
        for shard in self.shards {
            let shard = shard.into_inner().expect("recorder lock");
            for (key, h) in shard.latency {
                merge(totals.latency.entry(key).or_insert_with(new_histogram), &h);
            }
            for (key, h) in shard.service {
                merge(totals.service.entry(key).or_insert_with(new_histogram), &h);
            }
        }
        totals
    }
}

fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    into.add(from).expect("histograms share bounds");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_per_operation_and_outcome_and_counts_errors() {
        let r = Recorders::new(4);
        let ms = Duration::from_millis;
        r.record(0, Op::Login, Outcome::Status(200), ms(30), Some(ms(20)));
        r.record(1, Op::Login, Outcome::Status(200), ms(40), Some(ms(40)));
        r.record(2, Op::Login, Outcome::Status(503), ms(1), Some(ms(1)));
        r.record(
            3,
            Op::WrongPassword,
            Outcome::Status(401),
            ms(30),
            Some(ms(30)),
        );
        r.record(5, Op::Login, Outcome::Unsent, ms(10_000), None);
        let tick = r.take_tick();
        assert_eq!((tick.completed, tick.errors), (5, 2));
        assert_eq!(tick.counts[&(Op::Login, Outcome::Status(200))], 2);
        assert_eq!(tick.counts[&(Op::Login, Outcome::Unsent)], 1);
        assert_eq!(tick.counts.values().sum::<u64>(), 5);
        assert_eq!(r.take_tick().completed, 0);
        let totals = r.into_totals();
        let ok = &totals.latency[&(Op::Login, Outcome::Status(200))];
        assert_eq!(ok.len(), 2);
        assert_eq!(ok.max(), ok.highest_equivalent(40_000));
        assert_eq!(totals.service[&Op::Login].len(), 3);
        assert_eq!(Outcome::Unsent.error_kind(), "timeout before send");
        assert_eq!(Outcome::Status(503).error_kind(), "http 503");
    }
}
