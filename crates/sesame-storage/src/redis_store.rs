//! Redis (`--cache redis://...`): sessions, recent-write markers and
//! rate-limit state shared by every sesame instance.
//!
//! Keys (all under a namespace, `sesame` by default):
//! - `{ns}:s:{sha256 hex}` one session, expiring with it; the token itself is
//!   never stored, only its SHA-256.
//! - `{ns}:u:{user id}` a sorted set of a user's session hashes scored by
//!   expiry, so that a password change can revoke them all.
//! - `{ns}:w:{username}` a recent-write marker (see `markers`).
//! - `{ns}:rl:{key}` GCRA state of a rate limit (see `ratelimit`).
//!
//! Every command has a deadline: when Redis is down or hung, the caller gets
//! `StoreError::Unavailable` within it (sessions fail closed: 503), and the
//! connection manager reconnects by itself when Redis returns.

use crate::markers::{RecentWrites, PENDING};
use crate::time::{from_ms, to_ms};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use sesame_domain::{Session, SessionStore, StoreError, TokenHash};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A shared, self-reconnecting Redis connection with a namespace and a
/// deadline per command.
#[derive(Clone)]
pub struct RedisConn {
    conn: ConnectionManager,
    namespace: Arc<str>,
    timeout: Duration,
}

impl RedisConn {
    /// Connects to `redis://...` (or `rediss://`). Fails if Redis cannot be
    /// reached now, so that a wrong URL is found at start.
    pub async fn connect(
        url: &str,
        namespace: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Other(format!("bad Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::Other(format!("Redis client: {e}")))?;
        let this = Self {
            conn,
            namespace: namespace.into(),
            timeout,
        };
        this.ping().await?;
        Ok(this)
    }

    pub fn key(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{id}", self.namespace)
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Runs one command (or script) against Redis within the deadline.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, f(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_unavailable(&e) => Err(StoreError::Unavailable(format!(
                "session store (Redis) unavailable: {e}"
            ))),
            Ok(Err(e)) => Err(StoreError::Other(format!("Redis: {e}"))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "session store (Redis) did not answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// Runs one Lua script, bound to its keys and arguments: one round trip.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }
}

fn is_unavailable(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            redis::ErrorKind::Io
                | redis::ErrorKind::Client
                | redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
                | redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain)
                | redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
                | redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
        )
}

/// Sessions in Redis: shared by every instance, expiring by themselves.
pub struct RedisSessions {
    redis: RedisConn,
    create: Script,
    revoke_all: Script,
}

// KEYS: session key, user set; ARGV: value, expires_at ms, token hex, now ms.
const CREATE_SESSION: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
return 1
";

// KEYS: user set; ARGV: session key prefix. Returns how many live sessions
// were deleted.
const REVOKE_ALL: &str = r"
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local n = 0
for _, h in ipairs(members) do
  n = n + redis.call('DEL', ARGV[1] .. h)
end
redis.call('DEL', KEYS[1])
return n
";

impl RedisSessions {
    pub fn new(redis: RedisConn) -> Self {
        Self {
            redis,
            create: Script::new(CREATE_SESSION),
            revoke_all: Script::new(REVOKE_ALL),
        }
    }

    fn session_key(&self, hash: &TokenHash) -> String {
        self.redis.key("s", &hash.to_hex())
    }

    fn user_key(&self, user_id: i64) -> String {
        self.redis.key("u", &user_id.to_string())
    }
}

/// `user_id|created_ms|expires_ms|username` (the username last: it is the
/// only part that could hold a separator).
fn encode(s: &Session) -> String {
    format!(
        "{}|{}|{}|{}",
        s.user_id,
        to_ms(s.created_at),
        to_ms(s.expires_at),
        s.username
    )
}

fn decode(hash: TokenHash, value: &str) -> Option<Session> {
    let mut parts = value.splitn(4, '|');
    let user_id = parts.next()?.parse().ok()?;
    let created = parts.next()?.parse().ok()?;
    let expires = parts.next()?.parse().ok()?;
    let username = parts.next()?.to_owned();
    Some(Session {
        token_hash: hash,
        user_id,
        username,
        created_at: from_ms(created),
        expires_at: from_ms(expires),
    })
}

#[async_trait]
impl SessionStore for RedisSessions {
    async fn create(&self, session: &Session) -> Result<(), StoreError> {
        let key = self.session_key(&session.token_hash);
        let user_key = self.user_key(session.user_id);
        let value = encode(session);
        let expires = to_ms(session.expires_at);
        let hex = session.token_hash.to_hex();
        let now = to_ms(Utc::now());
        let mut created = self.create.key(key);
        created
            .key(user_key)
            .arg(value)
            .arg(expires)
            .arg(hex)
            .arg(now);
        self.redis.invoke::<i64>(&created).await.map(|_| ())
    }

    async fn find(
        &self,
        token_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let key = self.session_key(token_hash);
        let value: Option<String> = self
            .redis
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        Ok(value
            .and_then(|v| decode(*token_hash, &v))
            .filter(|s| s.is_live(now)))
    }

    async fn revoke(&self, token_hash: &TokenHash) -> Result<(), StoreError> {
        let key = self.session_key(token_hash);
        self.redis
            .run(|mut c| async move { redis::cmd("DEL").arg(key).query_async::<i64>(&mut c).await })
            .await
            .map(|_| ())
    }

    async fn revoke_all(&self, user_id: i64) -> Result<u64, StoreError> {
        let user_key = self.user_key(user_id);
        let prefix = self.redis.key("s", "");
        let mut revoked = self.revoke_all.key(user_key);
        let n: i64 = self.redis.invoke(revoked.arg(prefix)).await?;
        Ok(n.max(0) as u64)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.redis.ping().await
    }
}

/// Recent-write markers in Redis, shared by every instance.
pub struct RedisWrites {
    redis: RedisConn,
    ttl: Duration,
    abort: Script,
}

// KEYS: marker; ARGV: pending value, previous value ('' for none), ttl ms.
const ABORT_MARKER: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
end
return 1
";

impl RedisWrites {
    pub fn new(redis: RedisConn, ttl: Duration) -> Self {
        Self {
            redis,
            ttl,
            abort: Script::new(ABORT_MARKER),
        }
    }

    /// Sets `user`'s marker to `value` for the marker TTL, answering the
    /// one it replaced.
    async fn set(&self, user: &str, value: i64) -> Result<Option<i64>, StoreError> {
        let key = self.redis.key("w", user);
        let ttl = self.ttl.as_millis() as u64;
        self.redis
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl)
                    .arg("GET")
                    .query_async(&mut c)
                    .await
            })
            .await
    }
}

#[async_trait]
impl RecentWrites for RedisWrites {
    async fn begin(&self, user: &str) -> Result<Option<i64>, StoreError> {
        self.set(user, PENDING).await
    }

    async fn abort(&self, user: &str, previous: Option<i64>) -> Result<(), StoreError> {
        let key = self.redis.key("w", user);
        let previous = previous.map(|v| v.to_string()).unwrap_or_default();
        let ttl = self.ttl.as_millis() as u64;
        let mut put_back = self.abort.key(key);
        put_back.arg(PENDING).arg(previous).arg(ttl);
        self.redis.invoke::<i64>(&put_back).await.map(|_| ())
    }

    async fn commit(&self, user: &str, committed_at_ms: i64) -> Result<(), StoreError> {
        self.set(user, committed_at_ms).await.map(|_| ())
    }

    async fn get(&self, user: &str) -> Result<Option<i64>, StoreError> {
        let key = self.redis.key("w", user);
        self.redis
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_round_trip_through_their_encoding() {
        let s = Session {
            token_hash: TokenHash([7; 32]),
            user_id: 42,
            username: "we|ird".into(),
            created_at: from_ms(1_700_000_000_123),
            expires_at: from_ms(1_700_000_100_456),
        };
        assert_eq!(decode(s.token_hash, &encode(&s)), Some(s));
        assert_eq!(decode(TokenHash([0; 32]), "garbage"), None);
    }
}
