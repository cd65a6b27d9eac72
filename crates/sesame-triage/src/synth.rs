//! Synthetic event logs with a known incident: what the tests check triage
//! against and what the benchmark reads. The traffic mix is shaped like
//! production (regions, platforms, app versions, shards, replicas, a few
//! percent wrong passwords); the incident starts at a known second.

use crate::rng::Rng;
use sesame_domain::event::{LoginEvent, Outcome};
use sesame_domain::DbRole;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Incident {
    /// Nothing happens.
    None,
    /// Logins from platform=android with app_version=5.2 turn slow in the
    /// session stage.
    AndroidSlow,
    /// server_version 1.4.0 rolls out over every instance and hashes slower.
    Deploy,
    /// Credential stuffing from three addresses at three times the normal
    /// rate, 95% failing; everyone queues behind the hashes.
    Attack,
    /// The same from 300 addresses in two /24 networks, each sending an
    /// attempt every few seconds: under any per-address limit.
    DistributedAttack,
    /// Three times the normal traffic; everyone queues and some are shed.
    Surge,
    /// The replicas of shard -40 lag: their reads slow the db stage.
    ReplicaLag,
    /// Two unrelated incidents at once: the replicas of region eu-west stall
    /// reads (the db stage of a third of the logins), and every login of one
    /// mobile release, platform=ios with app_version=5.1, hashes slowly.
    ReplicaAndRelease,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub start_ms: i64,
    pub seconds: u64,
    /// Normal logins per second.
    pub rate: f64,
    pub incident: Incident,
    /// Seconds from the start when the incident begins.
    pub incident_at: u64,
    pub instances: usize,
    pub seed: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            // 2026-11-26T10:00:00Z
            start_ms: 1_795_687_200_000,
            seconds: 1200,
            rate: 50.0,
            incident: Incident::None,
            incident_at: 300,
            instances: 4,
            seed: 7,
        }
    }
}

pub const ATTACKERS: [&str; 3] = ["203.0.113.7", "198.51.100.23", "192.0.2.99"];
/// The addresses of the distributed attack: [`wave_address`] of 0 to this.
pub const WAVE_ADDRESSES: usize = 300;

/// Address `n` of the distributed attack, as `sesame load` numbers its
/// attackers: 254 to a /24, from 198.19.255.0/24 down.
pub fn wave_address(n: usize) -> String {
    format!("198.19.{}.{}", 255 - n / 254, n % 254 + 1)
}
pub const NEW_VERSION: &str = "1.4.0";
pub const OLD_VERSION: &str = "1.3.2";

const REGIONS: [(&str, f64); 5] = [
    ("eu-west", 0.35),
    ("us-east", 0.30),
    ("us-west", 0.15),
    ("ap-south", 0.12),
    ("sa-east", 0.08),
];
const PLATFORMS: [(&str, f64); 3] = [("web", 0.45), ("ios", 0.25), ("android", 0.30)];
const APP_VERSIONS: [(&str, f64); 3] = [("5.0", 0.2), ("5.1", 0.5), ("5.2", 0.3)];
const SHARDS: [&str; 4] = ["-40", "40-80", "80-c0", "c0-"];
const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "sen", "ta", "ro", "vi", "an", "el", "do", "nu", "pe", "sio", "kr", "on",
    "ja",
];

fn pick<'a>(rng: &mut Rng, weighted: &[(&'a str, f64)]) -> &'a str {
    let mut u = rng.unit();
    for &(value, weight) in weighted {
        if u < weight {
            return value;
        }
        u -= weight;
    }
    weighted[weighted.len() - 1].0
}

/// Exponentially distributed with this mean.
fn exp(rng: &mut Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.unit()).ln()
}

fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

struct Generator {
    rng: Rng,
    scenario: Scenario,
}

impl Generator {
    fn user(&mut self) -> String {
        let n = self.rng.below(50_000);
        let mut r = Rng::new(n);
        let mut name: String = (0..2 + r.below(3))
            .map(|_| SYLLABLES[r.below(16) as usize])
            .collect();
        match n % 10 {
            0 => name.push_str("@example.com"),
            1..=3 => name.push_str(&(n % 100).to_string()),
            _ => {}
        }
        name
    }

    fn normal_ip(&mut self) -> String {
        let r = &mut self.rng;
        format!(
            "{}.{}.{}.{}",
            11 + r.below(80),
            r.below(256),
            r.below(256),
            1 + r.below(254)
        )
    }

    fn event(&mut self, ms: i64, second: u64, attacker: Option<usize>) -> LoginEvent {
        let s = self.scenario.clone();
        let during = s.incident != Incident::None && second >= s.incident_at;
        let instance_no = self.rng.below(s.instances as u64) as usize;
        let platform = pick(&mut self.rng, &PLATFORMS);
        let app_version = if platform == "web" {
            "web"
        } else {
            pick(&mut self.rng, &APP_VERSIONS)
        };
        let user = match attacker {
            Some(_) => format!("victim{}@example.com", self.rng.below(1_000_000)),
            None => self.user(),
        };
        let shard = SHARDS[(user.len() + user.as_bytes()[0] as usize) % SHARDS.len()];
        // Instance k takes the new version k*10 s into a rolling deploy.
        let deployed = during
            && s.incident == Incident::Deploy
            && second >= s.incident_at + 10 * instance_no as u64;
        let db_role = if self.rng.chance(0.05) {
            "primary"
        } else {
            "replica"
        };
        let outcome = match attacker {
            Some(_) if self.rng.chance(0.95) => "invalid_credentials",
            Some(_) => "ok",
            None => {
                let u = self.rng.unit();
                let shed_share = if during && s.incident == Incident::Surge {
                    0.10
                } else {
                    0.0
                };
                if u < shed_share {
                    "overloaded"
                } else if u < shed_share + 0.03 {
                    "invalid_credentials"
                } else if u < shed_share + 0.035 {
                    "rate_limited"
                } else if u < shed_share + 0.036 {
                    "error"
                } else {
                    "ok"
                }
            }
        };
        let status = match outcome {
            "ok" => 200,
            "invalid_credentials" => 401,
            "rate_limited" => 429,
            "overloaded" => 503,
            _ => 500,
        };
        let hashed = matches!(outcome, "ok" | "invalid_credentials");
        // The region is drawn with the other fields below, unless the
        // incident depends on it: then here (drawing it here always would
        // change every other scenario's log).
        let region =
            (s.incident == Incident::ReplicaAndRelease).then(|| pick(&mut self.rng, &REGIONS));
        let r = &mut self.rng;
        let (mut queue, mut hash, mut db, mut session) = (0.0, 0.0, 0.0, 0.0);
        if hashed {
            queue = exp(r, 1.0);
            hash = 24.0 + exp(r, 2.0);
            db = 1.5 + exp(r, 1.5);
            if outcome == "ok" {
                session = 0.3 + exp(r, 0.3);
            }
            // Production always has a few slow logins (GC, a cold cache,
            // a noisy neighbour): without them every risk ratio is infinite.
            if r.chance(0.002) {
                let spike = 600.0 + exp(r, 500.0);
                match r.below(3) {
                    0 => queue += spike,
                    1 => hash += spike,
                    _ => db += spike,
                }
            }
            if during {
                match s.incident {
                    Incident::AndroidSlow if platform == "android" && app_version == "5.2" => {
                        session += 900.0 + exp(r, 800.0)
                    }
                    Incident::Deploy if deployed => hash = hash * 30.0 + exp(r, 100.0),
                    Incident::Attack | Incident::DistributedAttack | Incident::Surge => {
                        queue += 700.0 + exp(r, 500.0)
                    }
                    Incident::ReplicaLag if db_role == "replica" && shard == "-40" => {
                        db += 1200.0 + exp(r, 600.0)
                    }
                    Incident::ReplicaAndRelease => {
                        if region == Some("eu-west") && db_role == "replica" {
                            db += 1200.0 + exp(r, 600.0);
                        }
                        if platform == "ios" && app_version == "5.1" {
                            hash += 700.0 + exp(r, 400.0);
                        }
                    }
                    _ => {}
                }
            }
        }
        let total = queue + hash + db + session + 0.4 + exp(r, 0.2);
        let ts = chrono::DateTime::from_timestamp_millis(ms)
            .expect("in range")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        LoginEvent {
            client_ts: r.chance(0.5).then(|| ts.clone()),
            ts,
            outcome: Outcome::parse(outcome),
            status,
            user,
            ip: match attacker {
                Some(a) if s.incident == Incident::DistributedAttack => wave_address(a),
                Some(a) => ATTACKERS[a].to_owned(),
                None => self.normal_ip(),
            },
            region: region
                .unwrap_or_else(|| pick(&mut self.rng, &REGIONS))
                .to_owned(),
            platform: platform.to_owned(),
            app_version: app_version.to_owned(),
            instance: format!("sesame-7d9f8-{instance_no}"),
            server_version: if deployed { NEW_VERSION } else { OLD_VERSION }.to_owned(),
            db_role: if hashed { DbRole::parse(db_role) } else { None },
            shard: hashed.then(|| shard.to_owned()),
            total_ms: round3(total),
            queue_ms: round3(queue),
            hash_ms: round3(hash),
            db_ms: round3(db),
            session_ms: round3(session),
            request_id: format!("{:016x}", self.rng.next_u64()),
            // Fields triage does not read (the schema grows).
            ..LoginEvent::default()
        }
    }
}

/// Writes the scenario's events in time order; with several writers, each
/// instance's events go to one of them (like one log file per pod).
pub fn generate<W: Write>(scenario: &Scenario, writers: &mut [W]) -> std::io::Result<u64> {
    let mut g = Generator {
        rng: Rng::new(scenario.seed),
        scenario: scenario.clone(),
    };
    let mut written = 0;
    let mut line = Vec::with_capacity(512);
    for second in 0..scenario.seconds {
        let during = scenario.incident != Incident::None && second >= scenario.incident_at;
        let factor = if during && scenario.incident == Incident::Surge {
            3.0
        } else {
            1.0
        };
        let normal = (scenario.rate * factor).round() as u64;
        let (attackers, addresses) = match scenario.incident {
            Incident::Attack if during => ((scenario.rate * 3.0).round() as u64, ATTACKERS.len()),
            Incident::DistributedAttack if during => {
                ((scenario.rate * 3.0).round() as u64, WAVE_ADDRESSES)
            }
            _ => (0, 1),
        };
        let mut offsets: Vec<(u64, Option<usize>)> = (0..normal + attackers)
            .map(|k| {
                // The three attackers take turns; the wave's addresses are drawn.
                let attacker = (k >= normal).then(|| match scenario.incident {
                    Incident::DistributedAttack => g.rng.below(addresses as u64) as usize,
                    _ => (k % addresses as u64) as usize,
                });
                (g.rng.below(1000), attacker)
            })
            .collect();
        offsets.sort_unstable_by_key(|(ms, _)| *ms);
        for (offset, attacker) in offsets {
            let ms = scenario.start_ms + (second * 1000 + offset) as i64;
            let event = g.event(ms, second, attacker);
            line.clear();
            serde_json::to_writer(&mut line, &event)?;
            line.push(b'\n');
            let file = event
                .instance
                .as_bytes()
                .last()
                .map_or(0, |b| usize::from(b - b'0'));
            writers[file % writers.len()].write_all(&line)?;
            written += 1;
        }
    }
    Ok(written)
}
