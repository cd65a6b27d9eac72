//! When requests are due. An open-loop schedule is fixed in advance by a rate
//! profile and an arrival process, never by how fast the target answers: that
//! is what lets a slow answer show up as latency instead of as fewer requests.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Hold `rate` requests per second for `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub rate: f64,
    pub duration: Duration,
}

/// A piecewise-constant request rate: one stage for `--rate`, several for
/// `--stages "50/s:30s,200/s:1m,0/s:10s"`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateProfile {
    stages: Vec<Stage>,
}

impl RateProfile {
    pub fn constant(rate: f64, duration: Duration) -> Self {
        Self {
            stages: vec![Stage { rate, duration }],
        }
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    pub fn total_duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The mean number of arrivals the profile asks for.
    pub fn expected_requests(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.rate * s.duration.as_secs_f64())
            .sum()
    }

    /// The same profile cut off at `limit`.
    pub fn truncated(&self, limit: Duration) -> Self {
        let mut left = limit;
        let mut stages = Vec::new();
        for stage in &self.stages {
            if left.is_zero() {
                break;
            }
            let duration = stage.duration.min(left);
            left -= duration;
            stages.push(Stage { duration, ..*stage });
        }
        Self { stages }
    }
}

impl FromStr for RateProfile {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let stages = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|stage| {
                let (rate, duration) = stage.split_once(':').ok_or_else(|| {
                    format!("stage {stage:?} is not RATE:DURATION, e.g. 50/s:30s")
                })?;
                Ok(Stage {
                    rate: parse_rate(rate)?,
                    duration: sesame_toolkit::duration::parse(duration)
                        .map_err(|e| format!("stage {stage:?}: {e}"))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if stages.is_empty() {
            return Err("no stages given".into());
        }
        Ok(Self { stages })
    }
}

impl fmt::Display for RateProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, stage) in self.stages.iter().enumerate() {
            if i > 0 {
                f.write_str(", then ")?;
            }
            write!(
                f,
                "{}/s for {}",
                stage.rate,
                humantime::format_duration(stage.duration)
            )?;
        }
        Ok(())
    }
}

/// `200`, `200/s`, `12000/m`, `12000/min`, `720000/h`: requests per second.
pub fn parse_rate(raw: &str) -> Result<f64, String> {
    let raw = raw.trim();
    let (count, per_seconds) = match raw.split_once('/') {
        None => (raw, 1.0),
        Some((count, unit)) => match unit.trim() {
            "s" | "sec" => (count, 1.0),
            "m" | "min" => (count, 60.0),
            "h" => (count, 3600.0),
            other => return Err(format!("unknown rate unit {other:?}: use /s, /m or /h")),
        },
    };
    let count: f64 = count
        .trim()
        .parse()
        .map_err(|_| format!("rate {raw:?} is not a number per unit, e.g. 200/s"))?;
    if !count.is_finite() || count < 0.0 {
        return Err(format!("rate {raw:?} must be zero or positive"));
    }
    Ok(count / per_seconds)
}

/// How arrivals are spread within a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalProcess {
    /// Evenly spaced, 1/rate apart (as wrk2 does).
    Uniform,
    /// Independent arrivals: exponential gaps, as many clients acting alone
    /// produce; bursts happen, as in production.
    Poisson,
}

/// The arrival times of one profile, from the run's start, in order.
///
/// Arrivals are generated in "work" units (the expected count so far) and
/// mapped to time through the profile, so a rate change between stages never
/// distorts the process: gaps are 1 work unit (uniform) or Exp(1) (Poisson).
pub struct ArrivalTimes {
    profile: RateProfile,
    process: ArrivalProcess,
    rng: StdRng,
    work: f64,
    started: bool,
    stage: usize,
    stage_work: f64,
    stage_time: Duration,
}

impl ArrivalTimes {
    pub fn new(profile: RateProfile, process: ArrivalProcess, seed: u64) -> Self {
        Self {
            profile,
            process,
            rng: StdRng::seed_from_u64(seed),
            work: 0.0,
            started: false,
            stage: 0,
            stage_work: 0.0,
            stage_time: Duration::ZERO,
        }
    }

    fn gap(&mut self) -> f64 {
        match self.process {
            ArrivalProcess::Uniform => 1.0,
            // Inverse transform; 1 - u is in (0, 1], so the log is finite.
            ArrivalProcess::Poisson => -(1.0 - self.rng.random::<f64>()).ln(),
        }
    }
}

impl Iterator for ArrivalTimes {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // Uniform arrivals start at once; Poisson ones after a first gap.
        if self.started || self.process == ArrivalProcess::Poisson {
            self.work += self.gap();
        }
        self.started = true;
        while let Some(stage) = self.profile.stages.get(self.stage) {
            let capacity = stage.rate * stage.duration.as_secs_f64();
            if self.work < self.stage_work + capacity {
                let into = (self.work - self.stage_work) / stage.rate;
                return Some(self.stage_time + Duration::from_secs_f64(into));
            }
            self.stage_work += capacity;
            self.stage_time += stage.duration;
            self.stage += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stages_and_rates() {
        let p: RateProfile = "50/s:30s, 200/s:1m,0/s:10s".parse().unwrap();
        assert_eq!(p.stages().len(), 3);
        assert_eq!(p.stages()[1].rate, 200.0);
        assert_eq!(p.stages()[1].duration, Duration::from_secs(60));
        assert_eq!(p.total_duration(), Duration::from_secs(100));
        assert_eq!(p.expected_requests(), 50.0 * 30.0 + 200.0 * 60.0);
        assert_eq!(parse_rate("120/m").unwrap(), 2.0);
        assert_eq!(parse_rate("7").unwrap(), 7.0);
        for bad in ["", "x/s", "5/d", "-1/s", "50/s", "50/s:soon"] {
            assert!(bad.parse::<RateProfile>().is_err(), "{bad}");
        }
    }

    #[test]
    fn uniform_arrivals_follow_each_stage() {
        let p: RateProfile = "10/s:1s,0/s:1s,20/s:1s".parse().unwrap();
        let times: Vec<Duration> = ArrivalTimes::new(p, ArrivalProcess::Uniform, 0).collect();
        assert_eq!(times.len(), 30);
        assert_eq!(times[0], Duration::ZERO);
        assert!((times[1].as_secs_f64() - 0.1).abs() < 1e-9);
        // Nothing is due during the idle stage; the third starts at 2 s.
        assert!(times
            .iter()
            .all(|t| t.as_secs_f64() < 1.0 || t.as_secs_f64() >= 2.0));
        assert!((times[10].as_secs_f64() - 2.0).abs() < 1e-9);
        assert!((times[11].as_secs_f64() - 2.05).abs() < 1e-9);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn truncation_cuts_the_profile() {
        let p: RateProfile = "10/s:5s,20/s:5s".parse().unwrap();
        let cut = p.truncated(Duration::from_secs(7));
        assert_eq!(cut.total_duration(), Duration::from_secs(7));
        assert_eq!(cut.expected_requests(), 90.0);
    }
}
