//! What is sent: the operations, the mix of them, the synthetic clients they
//! come from, and the sources that turn a schedule into a stream of arrivals.

use crate::schedule::ArrivalTimes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// One kind of request, reported apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// A plain GET of `--get PATH`: for benchmarking the tool itself.
    Get,
    /// A seeded user with the right password.
    Login,
    /// A seeded user with a wrong password.
    WrongPassword,
    /// A user that does not exist.
    UnknownUser,
    /// `GET /v1/session` with a token from an earlier login.
    Session,
    /// Credential stuffing: wrong passwords for many users from a few IPs.
    Attack,
    /// `POST /v1/users` of a new user, named uniquely per run (see
    /// [`crate::client::Requests::registered_name`]).
    Register,
}

impl Op {
    pub const ALL: [Op; 7] = [
        Op::Get,
        Op::Login,
        Op::WrongPassword,
        Op::UnknownUser,
        Op::Session,
        Op::Attack,
        Op::Register,
    ];

    /// The operations `--mix` may weigh.
    const MIXABLE: [Op; 5] = [
        Op::Login,
        Op::WrongPassword,
        Op::UnknownUser,
        Op::Session,
        Op::Register,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Login => "login",
            Op::WrongPassword => "wrong-password",
            Op::UnknownUser => "unknown-user",
            Op::Session => "session",
            Op::Attack => "attack",
            Op::Register => "register",
        }
    }

    /// The answer a healthy service gives; any other status is an error.
    /// An attacker being rate limited (429) is the defence working.
    pub fn expects(self, status: u16) -> bool {
        match self {
            Op::Get => (200..300).contains(&status),
            Op::Login | Op::Session => status == 200,
            Op::WrongPassword | Op::UnknownUser => status == 401,
            Op::Attack => status == 401 || status == 429,
            Op::Register => status == 201,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Relative weights of the user-driven operations: `--mix
/// "login=80,wrong-password=10,unknown-user=5,session=5"` (and `register`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    weights: Vec<(Op, f64)>,
}

impl Mix {
    pub fn only(op: Op) -> Self {
        Self {
            weights: vec![(op, 1.0)],
        }
    }

    pub fn ops(&self) -> impl Iterator<Item = Op> + '_ {
        self.weights.iter().map(|(op, _)| *op)
    }

    fn pick(&self, rng: &mut StdRng) -> Op {
        let total: f64 = self.weights.iter().map(|(_, w)| w).sum();
        let mut point = rng.random::<f64>() * total;
        for (op, weight) in &self.weights {
            if point < *weight {
                return *op;
            }
            point -= weight;
        }
        self.weights[self.weights.len() - 1].0
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let mut weights = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not OP=WEIGHT"))?;
            let op = Op::MIXABLE
                .into_iter()
                .find(|op| op.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = Op::MIXABLE.into_iter().map(Op::name).collect();
                    format!("unknown operation {name:?}: use {}", names.join(", "))
                })?;
            let weight: f64 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| format!("weight of {name} must be a number >= 0"))?;
            if weight > 0.0 {
                weights.push((op, weight));
            }
        }
        if weights.is_empty() {
            return Err("the mix needs at least one operation with a positive weight".into());
        }
        Ok(Self { weights })
    }
}

/// Where a login claims to come from: sent as the body's `ip` and `client`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientProfile {
    pub ip: String,
    pub region: String,
    pub platform: String,
    pub app_version: String,
}

const REGIONS: [&str; 6] = [
    "eu-west",
    "eu-central",
    "us-east",
    "us-west",
    "ap-south",
    "ap-northeast",
];
const PLATFORMS: [&str; 3] = ["web", "ios", "android"];
const APP_VERSIONS: [&str; 3] = ["5.2.0", "5.3.1", "5.4.0"];

/// Synthetic clients of real users, in 198.18.0.0/15, the range set aside
/// for benchmarks (addresses are only labels in request bodies, never
/// connected to).
pub fn user_clients(count: usize, seed: u64) -> Vec<ClientProfile> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xC11E);
    (0..count)
        .map(|i| ClientProfile {
            ip: format!("198.18.{}.{}", (i / 254) % 256, i % 254 + 1),
            region: REGIONS[rng.random_range(0..REGIONS.len())].into(),
            platform: PLATFORMS[rng.random_range(0..PLATFORMS.len())].into(),
            app_version: APP_VERSIONS[rng.random_range(0..APP_VERSIONS.len())].into(),
        })
        .collect()
}

/// The attacker's addresses: a script, so no app version. 254 to a /24,
/// from 198.19.255.0/24 down, so that a wave of a few hundred addresses
/// spans several networks.
pub fn attacker_clients(count: usize) -> Vec<ClientProfile> {
    (0..count)
        .map(|i| ClientProfile {
            ip: format!("198.19.{}.{}", 255 - (i / 254) % 256, i % 254 + 1),
            region: REGIONS[i % REGIONS.len()].into(),
            platform: "web".into(),
            app_version: String::new(),
        })
        .collect()
}

/// One request of the plan: when it is due (from the run's start; `None` in
/// closed-loop mode, where it is due at once), what it is, as which seeded
/// user (or unknown-user number, or for `Register` the registration's number
/// in the run) and from which client profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    pub at: Option<Duration>,
    pub op: Op,
    pub user: u32,
    pub client: u32,
}

/// A stream of arrivals in order of `at`.
pub trait Source: Send {
    fn next_arrival(&mut self) -> Option<Arrival>;
}

/// The share of a user's requests sent from some other client than the
/// user's own (travel, a phone on another network). The rest come from one
/// home client per user, as real users' do: the service remembers the
/// addresses an account logs in from, and a load where every login pairs a
/// user with a random address would make that memory grow unrealistically.
const AWAY_SHARE: f64 = 0.1;

/// Arrivals whose operation, user and client are drawn at random.
pub struct Drawn {
    times: Option<ArrivalTimes>,
    mix: Mix,
    users: u32,
    clients: std::ops::Range<u32>,
    rng: StdRng,
    /// Registrations drawn so far: each one numbers a new user.
    registrations: u32,
}

impl Drawn {
    /// `times: None` is closed-loop: every arrival is due at once.
    pub fn new(
        times: Option<ArrivalTimes>,
        mix: Mix,
        users: u32,
        clients: std::ops::Range<u32>,
        seed: u64,
    ) -> Self {
        Self {
            times,
            mix,
            users: users.max(1),
            clients,
            rng: StdRng::seed_from_u64(seed),
            registrations: 0,
        }
    }
}

impl Drawn {
    fn home_client(&self, user: u32) -> u32 {
        let count = self.clients.end - self.clients.start;
        self.clients.start + user % count.max(1)
    }
}

impl Source for Drawn {
    fn next_arrival(&mut self) -> Option<Arrival> {
        let at = match &mut self.times {
            Some(times) => Some(times.next()?),
            None => None,
        };
        let op = self.mix.pick(&mut self.rng);
        let user = match op {
            // Unknown users are numbered far from the seeded ones.
            Op::UnknownUser => self.rng.random(),
            // An attacker's list holds some real accounts among many others.
            Op::Attack if self.rng.random_bool(0.5) => self.rng.random(),
            // Each registration is of a user no other request has named.
            Op::Register => {
                let n = self.registrations;
                self.registrations += 1;
                n
            }
            _ => self.rng.random_range(0..self.users),
        };
        let client = match op {
            Op::Login | Op::WrongPassword | Op::Session | Op::Register
                if !self.rng.random_bool(AWAY_SHARE) =>
            {
                self.home_client(user)
            }
            _ => self.rng.random_range(self.clients.clone()),
        };
        Some(Arrival {
            at,
            op,
            user,
            client,
        })
    }
}

/// Two sources merged in time order (the users' traffic and the attacker's).
pub struct Merged {
    a: Box<dyn Source>,
    b: Box<dyn Source>,
    next_a: Option<Arrival>,
    next_b: Option<Arrival>,
}

impl Merged {
    pub fn new(mut a: Box<dyn Source>, mut b: Box<dyn Source>) -> Self {
        let next_a = a.next_arrival();
        let next_b = b.next_arrival();
        Self {
            a,
            b,
            next_a,
            next_b,
        }
    }
}

impl Source for Merged {
    fn next_arrival(&mut self) -> Option<Arrival> {
        let take_a = match (&self.next_a, &self.next_b) {
            (Some(a), Some(b)) => a.at <= b.at,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_a {
            std::mem::replace(&mut self.next_a, self.a.next_arrival())
        } else {
            std::mem::replace(&mut self.next_b, self.b.next_arrival())
        }
    }
}

/// A fixed list of arrivals (a replayed event log).
pub struct Listed(std::vec::IntoIter<Arrival>);

impl Listed {
    pub fn new(arrivals: Vec<Arrival>) -> Self {
        Self(arrivals.into_iter())
    }
}

impl Source for Listed {
    fn next_arrival(&mut self) -> Option<Arrival> {
        self.0.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{ArrivalProcess, RateProfile};

    #[test]
    fn a_wave_of_hundreds_of_attackers_has_as_many_addresses() {
        let clients = attacker_clients(600);
        let distinct: std::collections::HashSet<&str> =
            clients.iter().map(|c| c.ip.as_str()).collect();
        assert_eq!(distinct.len(), 600);
        assert_eq!(clients[0].ip, "198.19.255.1");
        assert_eq!(clients[254].ip, "198.19.254.1");
    }

    #[test]
    fn mix_parses_and_draws_in_proportion() {
        let mix: Mix = "login=80, wrong-password=20, session=0".parse().unwrap();
        assert_eq!(
            mix.ops().collect::<Vec<_>>(),
            [Op::Login, Op::WrongPassword]
        );
        let mut rng = StdRng::seed_from_u64(7);
        let logins = (0..10_000)
            .filter(|_| mix.pick(&mut rng) == Op::Login)
            .count();
        // Binomial(10000, 0.8): sd 40; 5 sd either side.
        assert!((7800..=8200).contains(&logins), "{logins}");
        for bad in ["", "login", "login=x", "hack=1", "login=0"] {
            assert!(bad.parse::<Mix>().is_err(), "{bad}");
        }
        let err = "get=1".parse::<Mix>().unwrap_err();
        assert!(err.ends_with("session, register"), "{err}");
    }

    #[test]
    fn registrations_are_numbered_in_order() {
        let mix: Mix = "login=1,register=1".parse().unwrap();
        let mut drawn = Drawn::new(None, mix, 10, 0..1, 3);
        let numbers: Vec<u32> = std::iter::from_fn(|| drawn.next_arrival())
            .take(200)
            .filter(|a| a.op == Op::Register)
            .map(|a| a.user)
            .collect();
        assert!(numbers.len() > 50, "{}", numbers.len());
        assert!(numbers.iter().enumerate().all(|(i, n)| *n as usize == i));
    }

    #[test]
    fn merged_sources_stay_in_time_order() {
        let times = |rate| {
            ArrivalTimes::new(
                RateProfile::constant(rate, Duration::from_secs(2)),
                ArrivalProcess::Poisson,
                rate as u64,
            )
        };
        let users = Drawn::new(Some(times(50.0)), Mix::only(Op::Login), 10, 0..10, 1);
        let attack = Drawn::new(Some(times(30.0)), Mix::only(Op::Attack), 10, 10..12, 2);
        let mut merged = Merged::new(Box::new(users), Box::new(attack));
        let all: Vec<Arrival> = std::iter::from_fn(|| merged.next_arrival()).collect();
        assert!(all.windows(2).all(|w| w[0].at <= w[1].at));
        let attacks: Vec<_> = all.iter().filter(|a| a.op == Op::Attack).collect();
        assert!(!attacks.is_empty() && attacks.len() < all.len());
        assert!(attacks.iter().all(|a| (10..12).contains(&a.client)));
    }

    #[test]
    fn synthetic_clients_are_distinct_and_attackers_separate() {
        let mut clients = user_clients(600, 1);
        clients.extend(attacker_clients(3));
        let ips: std::collections::HashSet<_> = clients.iter().map(|c| &c.ip).collect();
        assert_eq!(ips.len(), 603);
        assert!(clients[600..]
            .iter()
            .all(|c| c.ip.starts_with("198.19.255.")));
    }
}
