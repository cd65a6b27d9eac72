//! A rate limiter whose state lives in Redis, so that every sesame instance
//! counts against the same limits: GCRA (the generic cell rate algorithm,
//! as in `governor` and `redis-cell`), one atomic Lua script per check. The
//! time is the caller's (`now_ms`), so limits are testable without sleeping;
//! instances with synchronized clocks agree on every limit.
//!
//! Per key it stores one number, the theoretical arrival time, with an
//! expiry: memory is bounded by the keys active within one burst window.

use crate::redis_store::RedisConn;
use async_trait::async_trait;
use redis::Script;
use sesame_domain::ratelimit::{Decision, LimitCheck, LimitError, LimitStore, Rate};
use sesame_domain::{InMemoryLimits, StoreError};
use std::time::Duration;

/// GCRA over Redis, behind the domain's [`LimitStore`] (the caller's clock,
/// for `LoginLimiter`). Cheap to clone. Wrap it in [`SharedLimits`] for the
/// documented fallback to in-process limits while Redis is down.
#[derive(Clone)]
pub struct RedisRateLimiter {
    redis: RedisConn,
    check_script: Script,
    charge_script: Script,
}

/// The domain's `gcra` step for one key, in Lua: answers -1 when allowed
/// (and, if `consume`, counts the event), else the ms until it would be.
/// Shared by every script that checks limits.
macro_rules! gcra_check_lua {
    () => {
        r"
local function gcra_check(key, now, interval, tolerance, consume)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local allow_at = tat - tolerance
  if now < allow_at then return allow_at - now end
  if consume then
    local next = tat + interval
    redis.call('SET', key, string.format('%.0f', next), 'PX', math.max(1, next - now))
  end
  return -1
end
"
    };
}
pub(crate) use gcra_check_lua;

// LimitStore::check_all: every key at once (one round trip for all of a
// login's limits). KEYS: states; ARGV[1]: now ms, then per key: interval
// ms, tolerance ms, consume (1/0). Returns per key what `gcra_check` does.
const CHECK_ALL: &str = concat!(
    gcra_check_lua!(),
    r"
local now = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * 3
  out[i] = gcra_check(key, now, tonumber(ARGV[at]), tonumber(ARGV[at + 1]), ARGV[at + 2] == '1')
end
return out
"
);

// LimitStore::charge_all. KEYS: states; ARGV[1]: now ms, then per key its
// interval ms.
const CHARGE_ALL: &str = r"
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local next = tat + tonumber(ARGV[i + 1])
  redis.call('SET', key, string.format('%.0f', next), 'PX', math.max(1, next - now))
end
return 1
";

impl RedisRateLimiter {
    pub fn new(redis: RedisConn) -> Self {
        Self {
            redis,
            check_script: Script::new(CHECK_ALL),
            charge_script: Script::new(CHARGE_ALL),
        }
    }

    /// Connects to its own Redis (`redis://...`); keys go under `namespace`.
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, StoreError> {
        Ok(Self::new(
            RedisConn::connect(url, namespace, Duration::from_millis(500)).await?,
        ))
    }
}

pub(crate) fn limit_error(e: StoreError) -> LimitError {
    LimitError(e.to_string())
}

/// The keys and arguments of `checks` for a script that starts with
/// [`CHECK_ALL`]'s: `now_ms`, then interval, tolerance and consume per key.
pub(crate) fn add_checks(
    invocation: &mut redis::ScriptInvocation<'_>,
    redis: &RedisConn,
    checks: &[LimitCheck<'_>],
    now_ms: i64,
) {
    invocation.arg(now_ms);
    for c in checks {
        invocation
            .key(redis.key("rl", c.key))
            .arg(c.rate.interval_ms())
            .arg(c.rate.tolerance_ms())
            .arg(i32::from(c.consume));
    }
}

/// The decisions of `gcra_check` answers, one per limit.
pub(crate) fn decisions(waits: Vec<i64>, limits: usize) -> Result<Vec<Decision>, LimitError> {
    if waits.len() != limits {
        return Err(LimitError(format!(
            "rate-limit script answered {} decisions for {limits} limits",
            waits.len()
        )));
    }
    Ok(waits
        .into_iter()
        .map(|wait| {
            if wait < 0 {
                Decision::Allow
            } else {
                Decision::Deny {
                    retry_after: Duration::from_millis(wait as u64),
                }
            }
        })
        .collect())
}

/// The key [`LimitStore::remember`] keeps `key` under.
pub(crate) fn remembered_key(redis: &RedisConn, key: &str) -> String {
    redis.key("rm", key)
}

#[async_trait]
impl LimitStore for RedisRateLimiter {
    async fn check(
        &self,
        key: &str,
        rate: Rate,
        now_ms: i64,
        consume: bool,
    ) -> Result<Decision, LimitError> {
        let check = LimitCheck { key, rate, consume };
        Ok(self.check_all(&[check], now_ms).await?[0])
    }

    async fn charge(&self, key: &str, rate: Rate, now_ms: i64) -> Result<(), LimitError> {
        self.charge_all(&[(key, rate)], now_ms).await
    }

    async fn check_all(
        &self,
        checks: &[LimitCheck<'_>],
        now_ms: i64,
    ) -> Result<Vec<Decision>, LimitError> {
        let mut invocation = self.check_script.prepare_invoke();
        add_checks(&mut invocation, &self.redis, checks, now_ms);
        let waits: Vec<i64> = self
            .redis
            .invoke("rate_limit_check", &invocation)
            .await
            .map_err(limit_error)?;
        decisions(waits, checks.len())
    }

    async fn charge_all(&self, charges: &[(&str, Rate)], now_ms: i64) -> Result<(), LimitError> {
        let mut invocation = self.charge_script.prepare_invoke();
        invocation.arg(now_ms);
        for (key, rate) in charges {
            invocation
                .key(self.redis.key("rl", key))
                .arg(rate.interval_ms());
        }
        self.redis
            .invoke::<i64>("rate_limit_charge", &invocation)
            .await
            .map(|_| ())
            .map_err(limit_error)
    }

    async fn remember(&self, key: &str, ttl: Duration, now_ms: i64) -> Result<(), LimitError> {
        let key = remembered_key(&self.redis, key);
        let ttl_ms = (ttl.as_millis() as i64).max(1);
        let until = now_ms + ttl_ms;
        self.redis
            .run("rate_limit_remember", |mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(until)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
            .map_err(limit_error)
    }

    async fn remembers(&self, key: &str, now_ms: i64) -> Result<bool, LimitError> {
        let key = remembered_key(&self.redis, key);
        let until: Option<i64> = self
            .redis
            .run("rate_limit_known", |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await
            .map_err(limit_error)?;
        Ok(until.is_some_and(|u| u > now_ms))
    }
}

/// Limits shared through Redis, falling back to this process's own limits
/// while Redis cannot answer (documented: a Redis outage weakens limits to
/// per-instance ones, it never turns them off or blocks logins).
pub struct SharedLimits {
    redis: RedisRateLimiter,
    local: InMemoryLimits,
}

impl SharedLimits {
    pub fn new(redis: RedisRateLimiter) -> Self {
        Self {
            redis,
            local: InMemoryLimits::default(),
        }
    }

    fn fell_back(e: &LimitError) {
        metrics::counter!("sesame_rate_limit_fallback_total").increment(1);
        tracing::warn!(error = %e, "rate-limit store unreachable; using in-process limits");
    }

    /// What `check_all` answers when Redis could not (`e`): this process's
    /// own limits.
    pub(crate) async fn check_all_locally(
        &self,
        checks: &[LimitCheck<'_>],
        now_ms: i64,
        e: &LimitError,
    ) -> Result<Vec<Decision>, LimitError> {
        Self::fell_back(e);
        self.local.check_all(checks, now_ms).await
    }

    /// The in-process half of `remember`, for a caller that remembered in
    /// Redis itself.
    pub(crate) async fn remember_locally(&self, key: &str, ttl: Duration, now_ms: i64) {
        let _ = self.local.remember(key, ttl, now_ms).await;
    }
}

#[async_trait]
impl LimitStore for SharedLimits {
    async fn check(
        &self,
        key: &str,
        rate: Rate,
        now_ms: i64,
        consume: bool,
    ) -> Result<Decision, LimitError> {
        match LimitStore::check(&self.redis, key, rate, now_ms, consume).await {
            Ok(d) => Ok(d),
            Err(e) => {
                Self::fell_back(&e);
                self.local.check(key, rate, now_ms, consume).await
            }
        }
    }

    async fn charge(&self, key: &str, rate: Rate, now_ms: i64) -> Result<(), LimitError> {
        match self.redis.charge(key, rate, now_ms).await {
            Ok(()) => Ok(()),
            Err(e) => {
                Self::fell_back(&e);
                self.local.charge(key, rate, now_ms).await
            }
        }
    }

    async fn check_all(
        &self,
        checks: &[LimitCheck<'_>],
        now_ms: i64,
    ) -> Result<Vec<Decision>, LimitError> {
        match self.redis.check_all(checks, now_ms).await {
            Ok(d) => Ok(d),
            Err(e) => {
                Self::fell_back(&e);
                self.local.check_all(checks, now_ms).await
            }
        }
    }

    async fn charge_all(&self, charges: &[(&str, Rate)], now_ms: i64) -> Result<(), LimitError> {
        match self.redis.charge_all(charges, now_ms).await {
            Ok(()) => Ok(()),
            Err(e) => {
                Self::fell_back(&e);
                self.local.charge_all(charges, now_ms).await
            }
        }
    }

    async fn remember(&self, key: &str, ttl: Duration, now_ms: i64) -> Result<(), LimitError> {
        // Remembered in both, so a Redis outage does not forget who is known.
        let local = self.local.remember(key, ttl, now_ms).await;
        match self.redis.remember(key, ttl, now_ms).await {
            Ok(()) => Ok(()),
            Err(e) => {
                Self::fell_back(&e);
                local
            }
        }
    }

    async fn remembers(&self, key: &str, now_ms: i64) -> Result<bool, LimitError> {
        match self.redis.remembers(key, now_ms).await {
            Ok(true) => Ok(true),
            Ok(false) => self.local.remembers(key, now_ms).await,
            Err(e) => {
                Self::fell_back(&e);
                self.local.remembers(key, now_ms).await
            }
        }
    }
}
