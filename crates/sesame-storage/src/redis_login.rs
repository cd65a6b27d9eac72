//! A login's shared state in two Redis round trips: one script before the
//! hash (every limit, and the user's recent-write marker) and one after a
//! verified password (the session, the address remembered as known, and
//! the marker again). Asked of the stores one by one, the same login makes
//! five.
//!
//! The scripts reuse the limit and session scripts' Lua (`gcra_check_lua`,
//! `create_session_lua`), so each key is written exactly as the
//! single-purpose stores write it, and the stores read what these scripts
//! wrote.

use crate::markers::PENDING;
use crate::ratelimit::{
    add_checks, decisions, gcra_check_lua, limit_error, remembered_key, SharedLimits,
};
use crate::redis_store::{add_session, create_session_lua, marker_key, RedisConn};
use async_trait::async_trait;
use redis::Script;
use sesame_domain::ratelimit::{Decision, LimitError, LoginChecks, Remember};
use sesame_domain::{LoginRoundTrips, Session, StoreError, Username, WriteMark};
use std::sync::Arc;

// KEYS: the limits' states, then the marker; ARGV as `CHECK_ALL`'s. Answers
// {decisions, marker or nil}.
const BEFORE_HASH: &str = concat!(
    gcra_check_lua!(),
    r"
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS - 1 do
  local at = 2 + (i - 1) * 3
  out[i] = gcra_check(KEYS[i], now, tonumber(ARGV[at]), tonumber(ARGV[at + 1]), ARGV[at + 2] == '1')
end
return {out, redis.call('GET', KEYS[#KEYS])}
"
);

// KEYS: session, user set (as `create_session_lua`), the remembered
// address, the marker; ARGV as `create_session_lua`'s, then the address's
// value and ttl ms. Answers the marker (nil: none), read after the session
// was stored.
const AFTER_SUCCESS: &str = concat!(
    create_session_lua!(),
    r"
redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6])
return redis.call('GET', KEYS[4])
"
);

/// [`LoginRoundTrips`] over the Redis that holds the limits (through
/// `limits`, whose in-process fallback it keeps), the sessions and the
/// recent-write markers.
pub struct RedisLoginRoundTrips {
    redis: RedisConn,
    limits: Arc<SharedLimits>,
    before: Script,
    after: Script,
}

impl RedisLoginRoundTrips {
    pub fn new(redis: RedisConn, limits: Arc<SharedLimits>) -> Self {
        Self {
            redis,
            limits,
            before: Script::new(BEFORE_HASH),
            after: Script::new(AFTER_SUCCESS),
        }
    }
}

#[async_trait]
impl LoginRoundTrips for RedisLoginRoundTrips {
    /// When Redis cannot answer, the limits fall back to this process's
    /// (as `SharedLimits` does) and the mark is unknown: the lookup reads
    /// the primary.
    async fn before_hash(
        &self,
        checks: &LoginChecks,
        username: &Username,
    ) -> (Result<Vec<Decision>, LimitError>, WriteMark) {
        let limits = checks.as_checks();
        let mut invocation = self.before.prepare_invoke();
        add_checks(&mut invocation, &self.redis, &limits, checks.now_ms);
        invocation.key(marker_key(&self.redis, username.as_str()));
        let answer: Result<(Vec<i64>, Option<i64>), StoreError> =
            self.redis.invoke("login_before_hash", &invocation).await;
        match answer {
            Ok((waits, marker)) => (decisions(waits, limits.len()), WriteMark(marker)),
            Err(e) => {
                tracing::warn!(error = %e, "recent-write markers unreadable; reading the primary");
                let e = limit_error(e);
                let decisions = self
                    .limits
                    .check_all_locally(&limits, checks.now_ms, &e)
                    .await;
                (decisions, WriteMark(Some(PENDING)))
            }
        }
    }

    async fn after_success(
        &self,
        session: &Session,
        known: &Remember,
    ) -> Result<WriteMark, StoreError> {
        let ttl_ms = (known.ttl.as_millis() as i64).max(1);
        let mut invocation = self.after.prepare_invoke();
        add_session(&mut invocation, &self.redis, session);
        invocation
            .key(remembered_key(&self.redis, &known.key))
            .key(marker_key(&self.redis, &session.username))
            .arg(known.now_ms + ttl_ms)
            .arg(ttl_ms);
        // Remembered here too, as `SharedLimits::remember` does, so that a
        // Redis outage does not forget who is known.
        self.limits
            .remember_locally(&known.key, known.ttl, known.now_ms)
            .await;
        let marker: Option<i64> = self
            .redis
            .invoke("login_after_success", &invocation)
            .await?;
        Ok(WriteMark(marker))
    }
}
