//! The causes: what happened, each with the next command. Root causes are
//! judged on windows of time (an attack, a surge, a deploy at the change
//! point); stage causes on the slow logins themselves: every stage that grew
//! in a material share of them is one cause (a slow replica, slow hashing,
//! ...), concentrated on the group that holds those slow logins. All are
//! ranked by the share of slow logins they explain, so two incidents at
//! once are two causes, and the second is the one left after fixing the
//! first.

use super::explain::{Attribution, Explanation, STAGES};
use super::timeline::{covered_s, Timeline};
use super::{duration, iso, percent, short_time, Options};
use crate::dims::{self, EMPTY};
use crate::scan::{Scan, TopK};
use rustc_hash::FxHashMap;
use serde::Serialize;
use sesame_domain::event::{Outcome, Stage};
use std::net::IpAddr;

const SURGE_FACTOR: f64 = 1.5;
const ATTACK_FAILURE_RATIO: f64 = 0.3;
/// An address is a heavy hitter from this share of the failed logins.
const HEAVY_IP_SHARE: f64 = 0.05;
const FEW_IPS: usize = 10;
/// An address of a distributed attack: failed at least this often, on at
/// least this many accounts, and succeeded at most once in five tries (a
/// stuffing list holds some valid pairs; a user who forgot a password fails
/// on one account).
const WAVE_MIN_FAILURES: u32 = 3;
const WAVE_MIN_ACCOUNTS: u32 = 3;
/// Addresses a summary shows; the report's `addresses` has them all.
const SHOWN_ADDRESSES: usize = 5;

/// Indexes in [`STAGES`].
const QUEUE: usize = 0;
const HASH: usize = 1;
const OUTSIDE: usize = 4;
/// The stages extra demand slows: the wait for a hash worker and, once it
/// saturates the cores, the hash itself and the time outside the timed
/// stages (the runtime waiting for a core). A surge drill on a fleet whose
/// instances share their cores put most of its slow logins in the last
/// two, and triage named those symptoms before the surge.
const DEMAND_STAGES: [usize; 3] = [QUEUE, HASH, OUTSIDE];

#[derive(Debug, Serialize)]
pub struct Cause {
    /// `attack`, `surge`, `deploy`, `replica_lag`, `slow_database`,
    /// `queueing`, `slow_hash`, `slow_session_store`, `outside_stages`.
    pub kind: &'static str,
    pub summary: String,
    pub action: Option<String>,
    /// Share of the slow logins it explains, in percent: what the causes
    /// are ranked by. A root cause (attack, surge, deploy) explains the
    /// slow logins of the stage it slowed.
    pub slow_pct: f64,
    /// Those slow logins (from the sample of slow logins once the log
    /// outgrows it).
    pub slow_logins: u64,
    /// The stage that grew in them: `queue`, `hash`, `db`, `session` or
    /// `other`.
    pub stage: Option<&'static str>,
    /// Whom it hit, as in "who is affected"; empty when no group holds its
    /// slow logins (across the board).
    pub group: Vec<String>,
    /// An attack's source addresses, all of them: what `--deny-list`
    /// writes and `sesame serve --deny-list` reads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

impl Cause {
    fn new(kind: &'static str, summary: String, action: Option<String>) -> Self {
        Self {
            kind,
            summary,
            action,
            slow_pct: 0.0,
            slow_logins: 0,
            stage: None,
            group: Vec::new(),
            addresses: Vec::new(),
        }
    }
}

/// What the causes are judged on.
pub(super) struct Evidence<'a> {
    pub scan: &'a Scan,
    pub options: &'a Options,
    pub timeline: &'a Timeline,
    pub attribution: &'a Attribution<'a>,
    /// Each stage that grew in a material share of the slow logins, with
    /// the group those are concentrated on.
    pub focus: &'a [(usize, Option<Explanation>)],
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
        let intervals = &self.timeline.intervals;
        let mut stats = WindowStats {
            logins: 0,
            seconds: 0.0,
            failures: 0,
            versions: FxHashMap::default(),
            failing_ips: TopK::with_capacity(64),
        };
        for (_, b) in &intervals[from..to] {
            stats.logins += b.logins;
            stats.failures += b.outcomes[Outcome::InvalidCredentials as usize]
                + b.outcomes[Outcome::RateLimited as usize];
            for &(v, n) in &b.versions {
                *stats.versions.entry(v).or_default() += n;
            }
            stats.failing_ips.merge(&b.failing_ips);
        }
        let start = intervals[from].0;
        let end = intervals[to - 1].0 + self.timeline.width_ms;
        stats.seconds = covered_s(self.scan, start, end);
        stats
    }

    fn at(&self, interval: usize) -> String {
        self.timeline
            .change_points
            .iter()
            .find(|c| c.interval == interval)
            .map_or_else(
                || iso(self.timeline.intervals[interval].0),
                |c| c.at.clone(),
            )
    }

    /// Every cause found, ranked by the share of slow logins it explains;
    /// of equal shares, a root cause before the stage it slowed.
    pub fn causes(&self) -> Vec<Cause> {
        let intervals = &self.timeline.intervals;
        if intervals.is_empty() {
            return Vec::new();
        }
        let windows = &self.timeline.windows;
        let incident_range = windows.incident.unwrap_or((0, intervals.len()));
        let incident = self.window(incident_range);
        let baseline = windows.baseline.map(|w| self.window(w));
        let stage_causes = self.stage_causes();
        let mut causes = Vec::new();
        let attack = self.attack(&incident, baseline.as_ref(), intervals[incident_range.0].0);
        // The attackers' own traffic is no surge of demand.
        let attack_logins = attack.as_ref().map_or(0, |(_, n)| *n);
        // Both make everyone wait for the hashes and the cores.
        for root in [
            attack.map(|(cause, _)| cause),
            self.surge(&incident, baseline.as_ref(), attack_logins),
        ]
        .into_iter()
        .flatten()
        {
            causes.push(self.demand_slowed(root));
        }
        causes.extend(self.deploy(&incident, baseline.as_ref(), &stage_causes));
        causes.extend(stage_causes.into_iter().map(|(cause, _)| cause));
        // Stable: of equal shares the root cause stays first.
        causes.sort_by(|a, b| b.slow_pct.total_cmp(&a.slow_pct));
        causes
    }

    /// A deploy with the slow logins it explains: those of the stage
    /// cause of `stage` (concentrated on a group holding `key`, if given),
    /// else the share of the slow logins under that stage (in the group).
    /// The summary says so when that stage is a cause of its own.
    fn slowed(
        &self,
        mut root: Cause,
        stage: usize,
        key: &[(usize, u16)],
        stage_causes: &[(Cause, Vec<(usize, u16)>)],
    ) -> Cause {
        let explained = stage_causes.iter().find(|(c, focus)| {
            c.stage == Some(STAGES[stage]) && key.iter().all(|k| focus.contains(k))
        });
        let (slow_pct, slow_logins) = match explained {
            Some((c, _)) => (c.slow_pct, c.slow_logins),
            None if key.is_empty() => self.stage_share(stage),
            None => {
                let sampled = self.attribution.group(key).by_stage[stage];
                let share = sampled as f64 / self.scan.slow_sample.tuples.len().max(1) as f64;
                (
                    100.0 * share,
                    (share * self.scan.slow as f64).round() as u64,
                )
            }
        };
        root.slow_pct = slow_pct;
        root.slow_logins = slow_logins;
        if slow_logins > 0 {
            root.stage = Some(STAGES[stage]);
        }
        let material = stage_causes
            .iter()
            .any(|(c, _)| c.stage == Some(STAGES[stage]));
        if slow_logins > 0 && material {
            root.summary += &format!(
                " Its logins' {} stage grew: {} of slow logins.",
                STAGES[stage],
                percent(slow_pct)
            );
        }
        root
    }

    /// A demand cause (an attack, a surge) with the slow logins it
    /// explains: those under the [`DEMAND_STAGES`]. Its stage is the one
    /// that holds most of them.
    fn demand_slowed(&self, mut root: Cause) -> Cause {
        let shares: Vec<(usize, f64, u64)> = DEMAND_STAGES
            .iter()
            .map(|&stage| {
                let (pct, n) = self.stage_share(stage);
                (stage, pct, n)
            })
            .filter(|&(_, _, n)| n > 0)
            .collect();
        root.slow_pct = shares.iter().map(|s| s.1).sum();
        root.slow_logins = shares.iter().map(|s| s.2).sum();
        root.stage = shares
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|s| STAGES[s.0]);
        if !shares.is_empty() {
            let parts: Vec<String> = shares
                .iter()
                .map(|&(stage, pct, _)| format!("{} {}", STAGES[stage], percent(pct)))
                .collect();
            root.summary += &format!(
                " The demand it adds slowed {} of slow logins ({}).",
                percent(root.slow_pct),
                parts.join(", ")
            );
        }
        root
    }

    /// Percent and number of the slow logins under `stage`.
    fn stage_share(&self, stage: usize) -> (f64, u64) {
        let share = self.attribution.share(stage);
        (
            100.0 * share,
            (share * self.scan.slow as f64).round() as u64,
        )
    }

    /// A likely attack, and the failed logins of its addresses: a few heavy
    /// addresses, else a wave of many that began in the incident.
    fn attack(
        &self,
        incident: &WindowStats,
        baseline: Option<&WindowStats>,
        incident_start_ms: i64,
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
            return Some(self.wave(incident, incident_start_ms, ratio, &before));
        }
        let addresses: Vec<String> = heavy.iter().map(|(ip, _)| ip.to_string()).collect();
        let cause = Cause::new(
            "attack",
            format!(
                "Likely attack (credential stuffing): {} of logins failed{before}; {} address{} sent {} of the failed logins: {}.",
                percent(100.0 * ratio),
                heavy.len(),
                if heavy.len() == 1 { "" } else { "es" },
                percent(100.0 * share),
                addresses.join(", ")
            ),
            Some(format!(
                "Block them at the edge (ingress or WAF deny list: {}) and check that rate limiting rejects them before hashing (sesame_rate_limited_total).",
                addresses
                    .iter()
                    .map(|a| if a.contains(':') { format!("{a}/128") } else { format!("{a}/32") })
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        );
        Some((Cause { addresses, ..cause }, heavy_failures))
    }

    /// A distributed attack: each address sends too little to stand out, so
    /// the addresses are those that began failing in the incident, on
    /// several accounts, and (nearly) never succeed. Named when they sent
    /// most of the incident's failed logins.
    fn wave(
        &self,
        incident: &WindowStats,
        since_ms: i64,
        ratio: f64,
        before: &str,
    ) -> (Cause, u64) {
        let mut wave: Vec<(IpAddr, u64)> = self
            .scan
            .failing_addresses
            .by_ip
            .iter()
            .filter(|(_, r)| {
                r.first_failure_ms >= since_ms
                    && r.failures >= WAVE_MIN_FAILURES
                    && r.accounts >= WAVE_MIN_ACCOUNTS
                    && r.successes * 4 <= r.failures
            })
            .map(|(ip, r)| (*ip, u64::from(r.failures)))
            .collect();
        let failures: u64 = wave.iter().map(|(_, n)| n).sum();
        let share = (failures as f64 / incident.failures.max(1) as f64).min(1.0);
        if wave.is_empty() || share < 0.5 {
            return (
                Cause::new(
                    "attack",
                    format!(
                        "Possible distributed credential stuffing: {} of logins failed{before}, from many addresses.",
                        percent(100.0 * ratio)
                    ),
                    Some(
                        "Check the user_shape and ip rows above for what the attempts share; tighten per-account limits and block at the edge."
                            .to_owned(),
                    ),
                ),
                0,
            );
        }
        wave.sort_unstable();
        let networks: std::collections::BTreeSet<IpAddr> =
            wave.iter().map(|(ip, _)| network_of(*ip)).collect();
        let addresses: Vec<String> = wave.iter().map(|(ip, _)| ip.to_string()).collect();
        let shown = addresses[..addresses.len().min(SHOWN_ADDRESSES)].join(", ");
        let cause = Cause::new(
            "attack",
            format!(
                "Likely distributed credential stuffing: {} of logins failed{before}; {} addresses in {} networks (/24, /48), each failing on several accounts since {}, sent {} of the failed logins, none more than {}: {shown}{}.",
                percent(100.0 * ratio),
                wave.len(),
                networks.len(),
                iso(since_ms),
                percent(100.0 * share),
                wave.iter().map(|(_, n)| n).max().unwrap_or(&0),
                if wave.len() > SHOWN_ADDRESSES {
                    format!(" and {} more", wave.len() - SHOWN_ADDRESSES)
                } else {
                    String::new()
                },
            ),
            Some(
                "Each stays under the per-address limits: block them all (`sesame triage ... --deny-list FILE` writes them for `sesame serve --deny-list FILE`, or an edge deny list)."
                    .to_owned(),
            ),
        );
        (
            Cause { addresses, ..cause },
            failures.min(incident.failures),
        )
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
        let at = self.at(self.timeline.windows.incident?.0);
        Some(Cause::new(
            "surge",
            format!(
                "Traffic surge: {:.1}x the baseline rate from {} ({:.0}/s against {:.0}/s before).",
                factor,
                short_time(&at),
                rate,
                baseline.rate()
            ),
            Some(format!(
                "If the demand is real, add hash capacity (sesame plan --peak-logins N gives the replicas): kubectl scale deployment/{} --replicas=N; until then the service sheds the excess (503 overloaded).",
                self.options.deployment
            )),
        ))
    }

    fn deploy(
        &self,
        incident: &WindowStats,
        baseline: Option<&WindowStats>,
        stage_causes: &[(Cause, Vec<(usize, u16)>)],
    ) -> Option<Cause> {
        let baseline = baseline?;
        let (start, _) = self.timeline.windows.incident?;
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
        let change_ms = self.timeline.intervals[start].0;
        if (first_seen_ms - change_ms).abs() > self.timeline.width_ms * 2 {
            return None;
        }
        let names = &self.scan.dictionaries.0[dims::SERVER_VERSION];
        let previous = baseline
            .versions
            .iter()
            .filter(|(&v, _)| v != EMPTY)
            .max_by_key(|(_, &n)| n)
            .map(|(&v, _)| names.name(v).to_owned());
        let change = self
            .timeline
            .windows
            .change_point
            .map(|k| &self.timeline.change_points[k]);
        let mut cause = Cause::new(
            "deploy",
            format!(
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
            Some(format!(
                "Roll back: kubectl rollout undo deployment/{0} (then kubectl rollout status deployment/{0}){1}.",
                self.options.deployment,
                previous.map_or(String::new(), |p| format!(" to return to {p}"))
            )),
        );
        // It explains the slow logins of the stage that grew in its logins.
        let key = [(dims::SERVER_VERSION, new)];
        cause.group = vec![self.scan.dictionaries.label(dims::SERVER_VERSION, new)];
        Some(match self.attribution.group(&key).grown {
            Some((stage, _)) => self.slowed(cause, stage, &key, stage_causes),
            None => cause,
        })
    }

    /// Every stage that grew most in a material share of the slow logins,
    /// read as a cause, with the attributes of the group it is concentrated
    /// on. None for the everyday tail.
    fn stage_causes(&self) -> Vec<(Cause, Vec<(usize, u16)>)> {
        self.focus
            .iter()
            .map(|(stage, focus)| {
                let (stage, focus) = (*stage, focus.as_ref());
                let mut cause = self.stage_cause(stage, focus);
                (cause.slow_pct, cause.slow_logins) = self.stage_share(stage);
                cause.stage = Some(STAGES[stage]);
                cause.group = focus.map_or_else(Vec::new, |e| e.attributes.clone());
                (cause, focus.map_or_else(Vec::new, |e| e.key.clone()))
            })
            .collect()
    }

    /// What a stage that grew says, for the slow logins under it.
    fn stage_cause(&self, stage: usize, focus: Option<&Explanation>) -> Cause {
        let by = duration(self.attribution.grew_ms(stage));
        let share = percent(100.0 * self.attribution.share(stage));
        let focus = focus.map_or(String::new(), |e| {
            format!(", concentrated on {}", e.attributes.join(" and "))
        });
        match Stage::parse(STAGES[stage]) {
            Some(Stage::Db) => {
                let replica = self.scan.dictionaries.0[dims::DB_ROLE].id("replica");
                let replica_share = self.attribution.share_with(stage, dims::DB_ROLE, replica);
                if replica_share >= 0.5 {
                    Cause::new(
                        "replica_lag",
                        format!(
                            "Slow replica reads in {share} of slow logins: their db stage grew by {by} and {} of them read a replica{focus} (replica lag or an overloaded replica).",
                            percent(100.0 * replica_share)
                        ),
                        Some("Check replica lag (sesame_replica_lag_seconds) and take a lagging replica out of rotation; digest its slow query log with: sesame slowlog /var/log/mysql/mysql-slow.log".to_owned()),
                    )
                } else {
                    Cause::new(
                        "slow_database",
                        format!("Slow database in {share} of slow logins: their db stage grew by {by}{focus}."),
                        Some("Digest the MySQL slow query log for the queries that grew: sesame slowlog /var/log/mysql/mysql-slow.log".to_owned()),
                    )
                }
            }
            Some(Stage::Queue) => Cause::new(
                "queueing",
                format!("Queueing in {share} of slow logins: they waited {by} longer for a hash worker{focus}; arrivals exceeded hash capacity."),
                Some("Find what raised the arrivals (surge or attack above), block abusers, add replicas; keep the latency budget so excess is shed, not queued.".to_owned()),
            ),
            Some(Stage::Hash) => Cause::new(
                "slow_hash",
                format!("Hashing got slower by {by} in {share} of slow logins{focus}: raised Argon2 parameters (a config change or deploy) or starved CPUs (throttling, noisy neighbours)."),
                Some("Compare the deployed hash parameters with `sesame calibrate` on the same nodes and check CPU throttling.".to_owned()),
            ),
            Some(Stage::Session) => Cause::new(
                "slow_session_store",
                format!("The session store (Redis) got slower by {by} in {share} of slow logins{focus}."),
                Some("Check Redis latency (redis-cli --latency) and memory.".to_owned()),
            ),
            _ => Cause::new(
                "outside_stages",
                format!("{share} of slow logins spent {by} more outside the timed stages (network, parsing, scheduling){focus}."),
                None,
            ),
        }
    }
}

/// The /24 (IPv4) or /48 (IPv6) an address is in.
fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => std::net::Ipv4Addr::from(u32::from(v4) & 0xffff_ff00).into(),
        IpAddr::V6(v6) => std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1)).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_network_is_its_24_or_48() {
        let net = |s: &str| network_of(s.parse().unwrap()).to_string();
        assert_eq!(net("198.19.254.77"), "198.19.254.0");
        assert_eq!(net("2001:db8:1:2:3::9"), "2001:db8:1::");
    }

    #[test]
    fn the_stage_indexes_name_their_stages() {
        assert_eq!(
            [STAGES[QUEUE], STAGES[HASH], STAGES[OUTSIDE]],
            ["queue", "hash", "other"]
        );
    }
}
