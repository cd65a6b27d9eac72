//! Abuse limits, checked before any hash is spent.
//!
//! Three GCRA limits (the generic cell rate algorithm: one "theoretical
//! arrival time" per key, no timers, no per-request allocation):
//!
//! * **per IP**, on every attempt: a credential-stuffing flood from a few
//!   addresses is answered 429 for microseconds instead of costing hashes,
//!   so it cannot push real users over the latency budget;
//! * **per IP, on failures** across all accounts: what stuffing looks like
//!   (many accounts, mostly wrong), cut off after a burst while an address
//!   whose users mostly get their passwords right is never held back;
//! * **per account and IP**, on failures: guessing one user's password from
//!   one address stops after a few tries;
//! * **per account**, on failures from anywhere: slows distributed guessing.
//!   This one is *not* applied to an address that has logged in to that
//!   account successfully before, so nobody can lock a real user out by
//!   failing their password on purpose.
//!
//! State lives behind [`LimitStore`]: in process by default, in Redis when
//! several instances must share it. Time comes from the injected clock.

use crate::clock::Clock;
use crate::username::Username;
use async_trait::async_trait;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A rate: `burst` events at once, refilled at one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub interval: Duration,
    pub burst: u32,
}

impl Rate {
    pub fn per_second(events: f64, burst: u32) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / events.max(1e-9)),
            burst: burst.max(1),
        }
    }

    pub fn per_minute(events: f64, burst: u32) -> Self {
        Self::per_second(events / 60.0, burst)
    }

    pub fn interval_ms(&self) -> i64 {
        self.interval.as_millis().max(1) as i64
    }

    /// How far the theoretical arrival time may run ahead of now.
    pub fn tolerance_ms(&self) -> i64 {
        self.interval_ms() * i64::from(self.burst.saturating_sub(1))
    }
}

/// What a limit said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny { retry_after: Duration },
}

/// Where limiter state lives. `now_ms` is the caller's clock, so limits are
/// testable without sleeping and agree across instances sharing a store.
#[async_trait]
pub trait LimitStore: Send + Sync + 'static {
    /// GCRA: if `consume`, counts one event when allowed; otherwise only looks.
    async fn check(
        &self,
        key: &str,
        rate: Rate,
        now_ms: i64,
        consume: bool,
    ) -> Result<Decision, LimitError>;
    /// Counts one event whether or not it is within the rate (failures
    /// happened; they must push the next allowed time further out).
    async fn charge(&self, key: &str, rate: Rate, now_ms: i64) -> Result<(), LimitError>;
    /// Remembers `key` for `ttl`.
    async fn remember(&self, key: &str, ttl: Duration, now_ms: i64) -> Result<(), LimitError>;
    async fn remembers(&self, key: &str, now_ms: i64) -> Result<bool, LimitError>;
    /// Several checks at once, each decided as `check` would, in order: a
    /// store behind a network does them in one round trip.
    async fn check_all(
        &self,
        checks: &[LimitCheck<'_>],
        now_ms: i64,
    ) -> Result<Vec<Decision>, LimitError> {
        let mut decisions = Vec::with_capacity(checks.len());
        for c in checks {
            decisions.push(self.check(c.key, c.rate, now_ms, c.consume).await?);
        }
        Ok(decisions)
    }
    /// Several charges at once (one round trip behind a network).
    async fn charge_all(&self, charges: &[(&str, Rate)], now_ms: i64) -> Result<(), LimitError> {
        for (key, rate) in charges {
            self.charge(key, *rate, now_ms).await?;
        }
        Ok(())
    }
}

/// One limit of a [`LimitStore::check_all`].
#[derive(Debug, Clone, Copy)]
pub struct LimitCheck<'a> {
    pub key: &'a str,
    pub rate: Rate,
    /// Count the event when allowed, or only look.
    pub consume: bool,
}

/// The four limits of a login, in the order [`LoginLimiter::judge_login`]
/// reads their decisions: every attempt from the address (counted), then,
/// looked at only, the address's failures, the account's from this address,
/// and the account's from anywhere.
#[derive(Debug, Clone)]
pub struct LoginChecks {
    keys: [String; 4],
    rates: [Rate; 4],
    /// The limiter's clock when the checks were made.
    pub now_ms: i64,
}

impl LoginChecks {
    pub fn as_checks(&self) -> [LimitCheck<'_>; 4] {
        std::array::from_fn(|i| LimitCheck {
            key: &self.keys[i],
            rate: self.rates[i],
            consume: i == 0,
        })
    }
}

/// A key a store keeps for a while ([`LimitStore::remember`]).
#[derive(Debug, Clone)]
pub struct Remember {
    pub key: String,
    pub ttl: Duration,
    pub now_ms: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("rate-limit store unavailable: {0}")]
pub struct LimitError(pub String);

/// The GCRA step, shared by every store: given the stored theoretical
/// arrival time, the decision and the new one to store (if any).
pub fn gcra(tat: Option<i64>, rate: Rate, now_ms: i64, consume: bool) -> (Decision, Option<i64>) {
    let tat = tat.unwrap_or(now_ms).max(now_ms);
    let allow_at = tat - rate.tolerance_ms();
    if now_ms < allow_at {
        let retry_after = Duration::from_millis((allow_at - now_ms) as u64);
        return (Decision::Deny { retry_after }, None);
    }
    let next = consume.then_some(tat + rate.interval_ms());
    (Decision::Allow, next)
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    Ip,
    User,
    /// The operator's block list ([`crate::denylist`]).
    DenyList,
}

impl LimitScope {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Ip => "ip",
            LimitScope::User => "user",
            LimitScope::DenyList => "deny_list",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Every attempt from one address (IPv6: its /64).
    pub per_ip: Rate,
    /// Failed logins from one address, whatever the account.
    pub per_ip_failures: Rate,
    /// Failed logins to one account from one address.
    pub per_account_ip_failures: Rate,
    /// Failed logins to one account from addresses it has never logged in from.
    pub per_account_failures: Rate,
    /// How long an address stays known to an account after a success.
    pub known_address_ttl: Duration,
    /// Logins from one address (IPv6: its /64) in flight at once in this
    /// process; more are refused before any other work. A credential
    /// stuffing burst from a few addresses then holds a few places in the
    /// hash queue, not all of it, and real users are not shed behind it.
    pub max_in_flight_per_ip: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            per_ip: Rate::per_second(5.0, 20),
            per_ip_failures: Rate::per_minute(30.0, 30),
            per_account_ip_failures: Rate::per_minute(5.0, 5),
            per_account_failures: Rate::per_minute(20.0, 50),
            known_address_ttl: Duration::from_secs(30 * 24 * 3600),
            max_in_flight_per_ip: 2,
        }
    }
}

impl LimitSettings {
    /// No limit that a test or a benchmark could reach: for suites that send
    /// thousands of attempts from one address on purpose.
    pub fn unlimited() -> Self {
        let unlimited = Rate::per_second(1e9, 1_000_000_000);
        Self {
            per_ip: unlimited,
            per_ip_failures: unlimited,
            per_account_ip_failures: unlimited,
            per_account_failures: unlimited,
            max_in_flight_per_ip: u32::MAX,
            ..Self::default()
        }
    }
}

/// The login limits, over a [`LimitStore`].
#[derive(Clone)]
pub struct LoginLimiter {
    store: Arc<dyn LimitStore>,
    clock: Arc<dyn Clock>,
    settings: LimitSettings,
}

/// A refusal: which limit and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub scope: LimitScope,
    pub retry_after: Duration,
}

impl LoginLimiter {
    pub fn new(store: Arc<dyn LimitStore>, clock: Arc<dyn Clock>, settings: LimitSettings) -> Self {
        Self {
            store,
            clock,
            settings,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Counts an attempt from `ip` against the per-address limit.
    pub async fn admit_address(&self, ip: IpAddr) -> Result<(), Limited> {
        let decision = self
            .store
            .check(&address_key(ip), self.settings.per_ip, self.now_ms(), true)
            .await;
        refuse_if_denied(decision, LimitScope::Ip)
    }

    /// Whether `ip` may try `user`'s password now (counts the address too).
    /// Every limit is read at once: one round trip to a shared store.
    pub async fn admit_login(&self, user: &Username, ip: IpAddr) -> Result<(), Limited> {
        let checks = self.login_checks(user, ip);
        let decisions = self
            .store
            .check_all(&checks.as_checks(), self.now_ms())
            .await;
        self.judge_login(decisions, user, ip).await
    }

    /// The limits a login from `ip` to `user` must pass, for a store to
    /// decide together with whatever else the login asks it for.
    pub fn login_checks(&self, user: &Username, ip: IpAddr) -> LoginChecks {
        let s = &self.settings;
        LoginChecks {
            keys: [
                address_key(ip),
                failures_key(ip),
                pair_key(user, ip),
                account_key(user),
            ],
            rates: [
                s.per_ip,
                s.per_ip_failures,
                s.per_account_ip_failures,
                s.per_account_failures,
            ],
            now_ms: self.now_ms(),
        }
    }

    /// Admits or refuses a login on the decisions of its
    /// [`login_checks`](Self::login_checks). A store that could not answer
    /// lets it through (see [`refuse_if_denied`]).
    pub async fn judge_login(
        &self,
        decisions: Result<Vec<Decision>, LimitError>,
        user: &Username,
        ip: IpAddr,
    ) -> Result<(), Limited> {
        let decisions = match decisions {
            Ok(decisions) if decisions.len() == 4 => decisions,
            Ok(other) => {
                let e = LimitError(format!("{} decisions for 4 limits", other.len()));
                return refuse_if_denied(Err(e), LimitScope::Ip);
            }
            Err(e) => return refuse_if_denied(Err(e), LimitScope::Ip),
        };
        let scopes = [LimitScope::Ip, LimitScope::Ip, LimitScope::User];
        for (decision, scope) in decisions.iter().zip(scopes) {
            refuse_if_denied(Ok(*decision), scope)?;
        }
        if let Err(limited) = refuse_if_denied(Ok(decisions[3]), LimitScope::User) {
            // Rare: only an account under attack asks whether this address
            // is one the user logged in from before.
            let known = self
                .store
                .remembers(&known_key(user, ip), self.now_ms())
                .await
                .unwrap_or(false);
            if !known {
                return Err(limited);
            }
        }
        Ok(())
    }

    /// What a successful login remembers: its address, known to the account
    /// for a while (it then passes the account's failure limit).
    pub fn known_address(&self, user: &Username, ip: IpAddr) -> Remember {
        Remember {
            key: known_key(user, ip),
            ttl: self.settings.known_address_ttl,
            now_ms: self.now_ms(),
        }
    }

    /// The store the limits live in.
    pub fn store(&self) -> &Arc<dyn LimitStore> {
        &self.store
    }

    /// Keeps what a successful login remembers; a store that cannot is
    /// only logged (the login has succeeded).
    pub async fn remember(&self, known: &Remember) {
        if let Err(e) = self
            .store
            .remember(&known.key, known.ttl, known.now_ms)
            .await
        {
            tracing::warn!(error = %e, "could not record a login in the rate limiter");
        }
    }

    /// Records the result of a login that was admitted: one round trip.
    pub async fn record_login(&self, user: &Username, ip: IpAddr, succeeded: bool) {
        let now = self.now_ms();
        let s = &self.settings;
        let result = if succeeded {
            return self.remember(&self.known_address(user, ip)).await;
        } else {
            let (pair, account, address) =
                (pair_key(user, ip), account_key(user), failures_key(ip));
            self.store
                .charge_all(
                    &[
                        (&pair, s.per_account_ip_failures),
                        (&account, s.per_account_failures),
                        (&address, s.per_ip_failures),
                    ],
                    now,
                )
                .await
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not record a login in the rate limiter");
        }
    }
}

/// Fails open when the store is down: logins must not stop because the
/// limiter's cache did (the hash pool's admission control still bounds load).
fn refuse_if_denied(
    decision: Result<Decision, LimitError>,
    scope: LimitScope,
) -> Result<(), Limited> {
    match decision {
        Ok(Decision::Deny { retry_after }) => Err(Limited { scope, retry_after }),
        Ok(Decision::Allow) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter unavailable; allowing");
            Ok(())
        }
    }
}

/// Logins in flight per client address in this process: a check with no
/// network call, in front of the shared limits and the hash queue.
pub struct InFlight {
    cap: u32,
    shards: Vec<Mutex<HashMap<IpAddr, u32>>>,
}

/// One login's place; given back when dropped (answered, or the client
/// went away).
pub struct InFlightGuard<'a> {
    owner: &'a InFlight,
    address: IpAddr,
}

impl InFlight {
    pub fn new(cap: u32) -> Self {
        Self {
            cap,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, address: &IpAddr) -> &Mutex<HashMap<IpAddr, u32>> {
        use std::hash::{BuildHasher, RandomState};
        static HASHER: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
        let h = HASHER.get_or_init(RandomState::new).hash_one(address);
        &self.shards[(h as usize) % SHARDS]
    }

    /// A place for a login from `ip`, or None if its address has `cap` in
    /// flight already. Entries exist only while logins are in flight, so
    /// memory is bounded by the logins in flight.
    pub fn enter(&self, ip: IpAddr) -> Option<InFlightGuard<'_>> {
        let address = subscriber(ip);
        let mut shard = self
            .shard(&address)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = shard.entry(address).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(InFlightGuard {
            owner: self,
            address,
        })
    }

    /// Logins in flight from `ip`'s address.
    pub fn count(&self, ip: IpAddr) -> u32 {
        let address = subscriber(ip);
        let shard = self
            .shard(&address)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shard.get(&address).copied().unwrap_or(0)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let shard = self.owner.shard(&self.address);
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = shard.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                shard.remove(&self.address);
            }
        }
    }
}

/// The address as one subscriber holds it: IPv4 alone, IPv6 by its /64.
fn subscriber(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
    }
}

/// IPv4 addresses count alone; IPv6 by /64, which one subscriber usually holds.
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

fn failures_key(ip: IpAddr) -> String {
    format!("fail:{}", address_key(ip))
}

fn pair_key(user: &Username, ip: IpAddr) -> String {
    format!("fail:{}|{}", user, address_key(ip))
}

fn account_key(user: &Username) -> String {
    format!("fail:{user}")
}

fn known_key(user: &Username, ip: IpAddr) -> String {
    format!("known:{}|{}", user, address_key(ip))
}

/// In-process limiter state, bounded: past `capacity` keys, expired ones are
/// swept; if none are, the oldest half goes.
pub struct InMemoryLimits {
    shards: Vec<Mutex<HashMap<String, i64>>>,
    capacity_per_shard: usize,
}

const SHARDS: usize = 16;

impl InMemoryLimits {
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            capacity_per_shard: (capacity / SHARDS).max(16),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, i64>> {
        use std::hash::{BuildHasher, RandomState};
        static HASHER: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
        let h = HASHER.get_or_init(RandomState::new).hash_one(key);
        &self.shards[(h as usize) % SHARDS]
    }

    /// Stores `value` (a time in ms after which the entry means nothing).
    fn put(&self, map: &mut HashMap<String, i64>, key: &str, value: i64, now_ms: i64) {
        if map.len() >= self.capacity_per_shard && !map.contains_key(key) {
            map.retain(|_, expires| *expires > now_ms);
            if map.len() >= self.capacity_per_shard {
                let mut times: Vec<i64> = map.values().copied().collect();
                let (_, median, _) = times.select_nth_unstable(map.len() / 2);
                let median = *median;
                map.retain(|_, t| *t > median);
            }
        }
        map.insert(key.to_owned(), value);
    }
}

/// Keys held in process by default: about 80 bytes each, so ~8 MiB at most,
/// within the service's memory bound. Known addresses beyond it are
/// forgotten oldest first; with Redis (`--cache`) the state lives there.
pub const IN_MEMORY_LIMIT_KEYS: usize = 100_000;

impl Default for InMemoryLimits {
    fn default() -> Self {
        Self::new(IN_MEMORY_LIMIT_KEYS)
    }
}

#[async_trait]
impl LimitStore for InMemoryLimits {
    async fn check(
        &self,
        key: &str,
        rate: Rate,
        now_ms: i64,
        consume: bool,
    ) -> Result<Decision, LimitError> {
        let mut map = self.shard(key).lock().expect("limiter shard");
        let (decision, next) = gcra(map.get(key).copied(), rate, now_ms, consume);
        if let Some(next) = next {
            self.put(&mut map, key, next, now_ms);
        }
        Ok(decision)
    }

    async fn charge(&self, key: &str, rate: Rate, now_ms: i64) -> Result<(), LimitError> {
        let mut map = self.shard(key).lock().expect("limiter shard");
        let tat = map.get(key).copied().unwrap_or(now_ms).max(now_ms) + rate.interval_ms();
        self.put(&mut map, key, tat, now_ms);
        Ok(())
    }

    async fn remember(&self, key: &str, ttl: Duration, now_ms: i64) -> Result<(), LimitError> {
        let mut map = self.shard(key).lock().expect("limiter shard");
        self.put(&mut map, key, now_ms + ttl.as_millis() as i64, now_ms);
        Ok(())
    }

    async fn remembers(&self, key: &str, now_ms: i64) -> Result<bool, LimitError> {
        let map = self.shard(key).lock().expect("limiter shard");
        Ok(map.get(key).is_some_and(|expires| *expires > now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::{TimeZone, Utc};

    fn limiter(settings: LimitSettings) -> (LoginLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 11, 26, 6, 0, 0).unwrap(),
        ));
        let limiter =
            LoginLimiter::new(Arc::new(InMemoryLimits::new(1024)), clock.clone(), settings);
        (limiter, clock)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let rate = Rate::per_second(10.0, 3);
        let mut tat = None;
        for _ in 0..3 {
            let (d, next) = gcra(tat, rate, 0, true);
            assert_eq!(d, Decision::Allow);
            tat = next;
        }
        let (d, _) = gcra(tat, rate, 0, true);
        assert_eq!(
            d,
            Decision::Deny {
                retry_after: Duration::from_millis(100)
            }
        );
        let (d, _) = gcra(tat, rate, 100, true);
        assert_eq!(d, Decision::Allow);
    }

    #[tokio::test]
    async fn a_flood_from_one_address_is_refused_before_hashing() {
        let (limiter, clock) = limiter(LimitSettings {
            per_ip: Rate::per_second(5.0, 10),
            ..LimitSettings::default()
        });
        let user = Username::parse("victim").unwrap();
        let attacker = ip("198.51.100.7");
        let admitted = futures_count(&limiter, &user, attacker, 100).await;
        assert_eq!(admitted, 10, "the burst, then nothing");
        // Others are unaffected.
        assert!(limiter.admit_login(&user, ip("203.0.113.1")).await.is_ok());
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(
            futures_count(&limiter, &user, attacker, 100).await,
            5,
            "refills at the rate"
        );
    }

    async fn futures_count(limiter: &LoginLimiter, user: &Username, ip: IpAddr, n: usize) -> usize {
        let mut admitted = 0;
        for _ in 0..n {
            if limiter.admit_login(user, ip).await.is_ok() {
                admitted += 1;
            }
        }
        admitted
    }

    #[tokio::test]
    async fn guessing_from_one_address_stops_after_a_few_failures() {
        let (limiter, clock) = limiter(LimitSettings::default());
        let user = Username::parse("alice").unwrap();
        let guesser = ip("198.51.100.8");
        for _ in 0..5 {
            assert!(limiter.admit_login(&user, guesser).await.is_ok());
            limiter.record_login(&user, guesser, false).await;
        }
        let refused = limiter.admit_login(&user, guesser).await.unwrap_err();
        assert_eq!(refused.scope, LimitScope::User);
        assert!(
            refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(12)
        );
        clock.advance(chrono::Duration::seconds(13));
        assert!(
            limiter.admit_login(&user, guesser).await.is_ok(),
            "one more try after the wait"
        );
    }

    #[tokio::test]
    async fn stuffing_from_one_address_is_cut_off_after_a_burst_of_failures() {
        let (limiter, clock) = limiter(LimitSettings {
            per_ip: Rate::per_second(1000.0, 1000),
            ..LimitSettings::default()
        });
        let stuffer = ip("198.51.100.9");
        let mut admitted = 0;
        for i in 0..200 {
            let victim = Username::parse(&format!("user{i}")).unwrap();
            if limiter.admit_login(&victim, stuffer).await.is_ok() {
                admitted += 1;
                limiter.record_login(&victim, stuffer, false).await;
            }
        }
        assert_eq!(admitted, 30, "one burst of failures, then 429");
        // An office behind one address whose users log in fine is not affected.
        let office = ip("203.0.113.77");
        for i in 0..200 {
            let user = Username::parse(&format!("staff{i}")).unwrap();
            assert!(limiter.admit_login(&user, office).await.is_ok());
            limiter.record_login(&user, office, true).await;
            clock.advance(chrono::Duration::milliseconds(300));
        }
    }

    #[tokio::test]
    async fn distributed_guessing_cannot_lock_out_the_real_user() {
        let (limiter, _clock) = limiter(LimitSettings::default());
        let user = Username::parse("bob").unwrap();
        let home = ip("203.0.113.50");
        assert!(limiter.admit_login(&user, home).await.is_ok());
        limiter.record_login(&user, home, true).await;
        // 200 addresses each fail bob's password a few times.
        for i in 0..200u32 {
            let a = IpAddr::from([10, 9, (i / 250) as u8, (i % 250) as u8]);
            if limiter.admit_login(&user, a).await.is_ok() {
                limiter.record_login(&user, a, false).await;
            }
        }
        let stranger = ip("192.0.2.99");
        assert!(
            limiter.admit_login(&user, stranger).await.is_err(),
            "new addresses are slowed down"
        );
        assert!(
            limiter.admit_login(&user, home).await.is_ok(),
            "bob's own address still gets in"
        );
    }

    #[tokio::test]
    async fn ipv6_counts_by_64_prefix() {
        let (limiter, _) = limiter(LimitSettings {
            per_ip: Rate::per_second(1.0, 2),
            ..LimitSettings::default()
        });
        assert!(limiter.admit_address(ip("2001:db8:1:2::1")).await.is_ok());
        assert!(limiter
            .admit_address(ip("2001:db8:1:2::ffff"))
            .await
            .is_ok());
        assert!(limiter
            .admit_address(ip("2001:db8:1:2:abcd::1"))
            .await
            .is_err());
        assert!(limiter.admit_address(ip("2001:db8:1:3::1")).await.is_ok());
    }

    #[tokio::test]
    async fn memory_stays_bounded() {
        let store = InMemoryLimits::new(SHARDS * 16);
        for i in 0..10_000 {
            store
                .check(&format!("ip:{i}"), Rate::per_second(1.0, 1), 0, true)
                .await
                .unwrap();
        }
        let total: usize = store.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * 16, "{total}");
    }

    #[test]
    fn an_address_holds_at_most_its_share_of_logins_in_flight() {
        let in_flight = InFlight::new(2);
        let attacker: IpAddr = "203.0.113.9".parse().unwrap();
        let a = in_flight.enter(attacker).unwrap();
        let b = in_flight.enter(attacker).unwrap();
        assert!(in_flight.enter(attacker).is_none(), "a third is refused");
        let user: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(
            in_flight.enter(user).is_some(),
            "other addresses unaffected"
        );
        drop(a);
        let c = in_flight
            .enter(attacker)
            .expect("a place is given back when a login ends");
        drop((b, c));
        assert_eq!(in_flight.count(attacker), 0);
        assert!(
            in_flight
                .shards
                .iter()
                .all(|s| s.lock().unwrap().is_empty()),
            "no entry outlives its logins"
        );
        // One IPv6 subscriber: its /64.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let _x = in_flight.enter(v6("2001:db8:1:2::1")).unwrap();
        let _y = in_flight.enter(v6("2001:db8:1:2::ffff")).unwrap();
        assert!(in_flight.enter(v6("2001:db8:1:2:abcd::1")).is_none());
        assert!(in_flight.enter(v6("2001:db8:1:3::1")).is_some());
    }
}
