//! A rate limiter whose state lives in Redis, so that every sesame instance
//! counts against the same limits: GCRA (the generic cell rate algorithm,
//! as in `governor` and `redis-cell`), one atomic Lua script per check, with
//! Redis's own clock (instances' clocks never disagree about a limit).
//!
//! Per key it stores one number, the theoretical arrival time, with an
//! expiry: memory is bounded by the keys active within one burst window.

use crate::redis_store::RedisConn;
use redis::Script;
use sesame_domain::StoreError;
use std::time::Duration;

/// What a check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    pub allowed: bool,
    /// When denied: how long until one request would be allowed.
    pub retry_after: Duration,
    /// When allowed: how many more requests are allowed right now.
    pub remaining: u32,
}

/// GCRA over Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisRateLimiter {
    redis: RedisConn,
    script: Script,
}

// KEYS[1]: state key. ARGV: emission interval (µs), burst, cost.
// Returns {allowed (0/1), retry_after µs, remaining}.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if allow_at > now then
  return {0, allow_at - now, 0}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0, math.floor((now - allow_at) / interval)}
";

impl RedisRateLimiter {
    pub fn new(redis: RedisConn) -> Self {
        Self {
            redis,
            script: Script::new(GCRA),
        }
    }

    /// Connects to its own Redis (`redis://...`); keys go under `namespace`.
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, StoreError> {
        Ok(Self::new(
            RedisConn::connect(url, namespace, Duration::from_millis(500)).await?,
        ))
    }

    /// One request under `key` (e.g. `ip:203.0.113.9`, `user:alice`):
    /// allowed at a sustained `per_second`, with bursts of up to `burst`.
    /// An error (Redis down or slow) is for the caller to decide on; the
    /// documented choice is to fall back to the in-process limiter.
    pub async fn check(
        &self,
        key: &str,
        per_second: f64,
        burst: u32,
    ) -> Result<RateLimitDecision, StoreError> {
        self.check_n(key, per_second, burst, 1).await
    }

    /// Like [`check`](Self::check) for a request that costs `cost` cells.
    pub async fn check_n(
        &self,
        key: &str,
        per_second: f64,
        burst: u32,
        cost: u32,
    ) -> Result<RateLimitDecision, StoreError> {
        if !per_second.is_finite() || per_second <= 0.0 || burst == 0 {
            return Err(StoreError::Other(format!(
                "rate limit needs a positive rate and burst (got {per_second}/s, burst {burst})"
            )));
        }
        let interval_us = ((1e6 / per_second).round() as i64).max(1);
        let key = self.redis.key("rl", key);
        let script = &self.script;
        let (allowed, retry_us, remaining): (i64, i64, i64) = self
            .redis
            .run(|mut c| async move {
                script
                    .key(key)
                    .arg(interval_us)
                    .arg(burst)
                    .arg(cost)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(RateLimitDecision {
            allowed: allowed == 1,
            retry_after: Duration::from_micros(retry_us.max(0) as u64),
            remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
        })
    }
}
