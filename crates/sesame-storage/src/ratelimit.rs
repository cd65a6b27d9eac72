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
use sesame_domain::ratelimit::{Decision, LimitError, LimitStore, Rate};
use sesame_domain::{InMemoryLimits, StoreError};
use std::time::Duration;

/// GCRA over Redis, behind the domain's [`LimitStore`] (the caller's clock,
/// for `LoginLimiter`). Cheap to clone. Wrap it in [`SharedLimits`] for the
/// documented fallback to in-process limits while Redis is down.
#[derive(Clone)]
pub struct RedisRateLimiter {
    redis: RedisConn,
    store_check: Script,
    store_charge: Script,
}

// LimitStore::check, the domain's `gcra` step. KEYS[1]: state; ARGV:
// interval ms, tolerance ms, now ms, consume (1/0). Returns -1 when allowed,
// else the ms until it would be.
const STORE_CHECK: &str = r"
local now = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tonumber(ARGV[2])
if now < allow_at then return allow_at - now end
if ARGV[4] == '1' then
  local next = tat + tonumber(ARGV[1])
  redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.max(1, next - now))
end
return -1
";

// LimitStore::charge. KEYS[1]: state; ARGV: interval ms, now ms.
const STORE_CHARGE: &str = r"
local now = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.max(1, next - now))
return 1
";

impl RedisRateLimiter {
    pub fn new(redis: RedisConn) -> Self {
        Self {
            redis,
            store_check: Script::new(STORE_CHECK),
            store_charge: Script::new(STORE_CHARGE),
        }
    }

    /// Connects to its own Redis (`redis://...`); keys go under `namespace`.
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, StoreError> {
        Ok(Self::new(
            RedisConn::connect(url, namespace, Duration::from_millis(500)).await?,
        ))
    }
}

fn limit_error(e: StoreError) -> LimitError {
    LimitError(e.to_string())
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
        let key = self.redis.key("rl", key);
        let (interval, tolerance) = (rate.interval_ms(), rate.tolerance_ms());
        let mut check = self.store_check.key(key);
        check
            .arg(interval)
            .arg(tolerance)
            .arg(now_ms)
            .arg(i32::from(consume));
        let wait: i64 = self.redis.invoke(&check).await.map_err(limit_error)?;
        Ok(if wait < 0 {
            Decision::Allow
        } else {
            Decision::Deny {
                retry_after: Duration::from_millis(wait as u64),
            }
        })
    }

    async fn charge(&self, key: &str, rate: Rate, now_ms: i64) -> Result<(), LimitError> {
        let key = self.redis.key("rl", key);
        let interval = rate.interval_ms();
        let mut charge = self.store_charge.key(key);
        self.redis
            .invoke::<i64>(charge.arg(interval).arg(now_ms))
            .await
            .map(|_| ())
            .map_err(limit_error)
    }

    async fn remember(&self, key: &str, ttl: Duration, now_ms: i64) -> Result<(), LimitError> {
        let key = self.redis.key("rm", key);
        let ttl_ms = (ttl.as_millis() as i64).max(1);
        let until = now_ms + ttl_ms;
        self.redis
            .run(|mut c| async move {
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
        let key = self.redis.key("rm", key);
        let until: Option<i64> = self
            .redis
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
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
