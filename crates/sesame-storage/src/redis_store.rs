//! Redis (`--cache redis://...` or `redis+sentinel://...`): sessions,
//! recent-write markers and rate-limit state shared by every sesame
//! instance.
//!
//! Keys (all under a namespace, `sesame` by default):
//! - `{ns}:s:{sha256 hex}` one session, expiring with it; the token itself is
//!   never stored, only its SHA-256.
//! - `{ns}:u:{user id}` a sorted set of a user's session hashes scored by
//!   expiry, so that a password change can revoke them all.
//! - `{ns}:w:{username}` a recent-write marker (see `markers`).
//! - `{ns}:rl:{key}` GCRA state of a rate limit (see `ratelimit`).
//!
//! And one pub/sub channel, `{ns}:revoked`: every revocation publishes the
//! hashes it revoked (hex, space-separated) in the same round trip as the
//! deletion, for the in-process session caches of every instance (see
//! `redis_session_cache`).
//!
//! Every command has a deadline: when Redis is down or hung, the caller gets
//! `StoreError::Unavailable` within it (sessions fail closed: 503), and the
//! connection manager reconnects by itself when Redis returns. Behind
//! Sentinel the master is looked up again after a failover (see
//! `redis_sentinel`).
//!
//! With replica acknowledgements (`--cache-replica-acks N`, the default 1
//! behind Sentinel), the writes whose loss in a failover would break a
//! promise (revocations, and the recent-write marker's commit and abort) are
//! followed by `WAIT N` in the same round trip, and fail with `Unavailable`
//! unless N replicas have them.

use crate::markers::{RecentWrites, PENDING};
use crate::query_metrics::QueryTimer;
use crate::redis_sentinel::{is_sentinel_url, SentinelMaster, SentinelUrl};
use crate::time::{from_ms, to_ms};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection, PubSub,
};
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, Script, Value};
use sesame_domain::{DbRole, Session, SessionStore, StoreError, TokenHash};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A shared, self-reconnecting Redis connection with a namespace and a
/// deadline per command.
#[derive(Clone)]
pub struct RedisConn {
    backend: Backend,
    namespace: Arc<str>,
    timeout: Duration,
    replica_acks: u32,
}

#[derive(Clone)]
enum Backend {
    /// `redis://` or `rediss://`: one server (the client makes the pub/sub
    /// connections).
    Direct(ConnectionManager, redis::Client),
    /// `redis+sentinel://`: the master the sentinels name.
    Sentinel(SentinelMaster),
}

/// The connection one command runs on: to the one server, or to the
/// current master behind Sentinel.
#[derive(Clone)]
pub struct Connection(Conn);

#[derive(Clone)]
enum Conn {
    Direct(ConnectionManager),
    Sentinel(MultiplexedConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Conn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Conn::Direct(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

/// How long connecting behind Sentinel may take at start: the first lookup
/// of the master goes to the sentinels, then to the master.
const SENTINEL_START: Duration = Duration::from_secs(5);

impl RedisConn {
    /// Connects to `redis://...` (or `rediss://`), or to the master named
    /// by the sentinels of `redis+sentinel://...`, with the default replica
    /// acknowledgements of that URL (see [`RedisConn::connect_with_acks`]).
    pub async fn connect(
        url: &str,
        namespace: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        Self::connect_with_acks(url, namespace, timeout, None).await
    }

    /// Connects to Redis. Fails if Redis cannot be reached now, so that a
    /// wrong URL is found at start. `replica_acks`: how many replicas must
    /// acknowledge a revocation or a marker's commit before it counts
    /// (`WAIT`); `None` is 1 behind Sentinel, 0 for a plain `redis://`.
    pub async fn connect_with_acks(
        url: &str,
        namespace: &str,
        timeout: Duration,
        replica_acks: Option<u32>,
    ) -> Result<Self, StoreError> {
        let (backend, default_acks) = if is_sentinel_url(url) {
            let parsed = SentinelUrl::parse(url).map_err(StoreError::Other)?;
            let master = SentinelMaster::start(&parsed, timeout).map_err(StoreError::Other)?;
            // The first lookup may take longer than one command's deadline.
            if tokio::time::timeout(SENTINEL_START, master.connection())
                .await
                .is_err()
            {
                return Err(StoreError::Unavailable(format!(
                    "no Redis master from the Sentinels of {} within {SENTINEL_START:?}: {}",
                    crate::redact_url(url),
                    master.unavailable_reason().unwrap_or_default()
                )));
            }
            (Backend::Sentinel(master), 1)
        } else {
            let client = redis::Client::open(url)
                .map_err(|e| StoreError::Other(format!("bad Redis URL: {e}")))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(200));
            let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
                .map_err(|e| StoreError::Other(format!("Redis client: {e}")))?;
            (Backend::Direct(conn, client), 0)
        };
        let this = Self {
            backend,
            namespace: namespace.into(),
            timeout,
            replica_acks: replica_acks.unwrap_or(default_acks),
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

    /// The name of the pub/sub channel `name` of this namespace.
    pub fn channel(&self, name: &str) -> String {
        format!("{}:{name}", self.namespace)
    }

    /// The deadline of one command.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A pub/sub connection of its own (it cannot share the commands'
    /// one), to the server the commands go to, subscribed to `channel`
    /// within the deadline; and a future that resolves once that server is
    /// no longer the one in use (behind Sentinel: a failover, or a master
    /// that failed; never for a plain `redis://`).
    pub(crate) async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<(PubSub, Pin<Box<dyn Future<Output = ()> + Send>>), String> {
        let (client, superseded): (_, Pin<Box<dyn Future<Output = ()> + Send>>) = match &self
            .backend
        {
            Backend::Direct(_, client) => (client.clone(), Box::pin(std::future::pending::<()>())),
            Backend::Sentinel(master) => {
                let (generation, client) = tokio::time::timeout(self.timeout, master.client())
                    .await
                    .map_err(|_| {
                        format!(
                            "no Redis master from the Sentinels: {}",
                            master.unavailable_reason().unwrap_or_default()
                        )
                    })?;
                (client, Box::pin(master.superseded(generation)))
            }
        };
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(self.timeout, subscribed).await {
            Ok(Ok(pubsub)) => Ok((pubsub, superseded)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("not subscribed within {:?}", self.timeout)),
        }
    }

    /// How many replicas must acknowledge a revocation or a marker's commit.
    pub fn replica_acks(&self) -> u32 {
        self.replica_acks
    }

    /// Runs one command (or script, or pipeline) against Redis within the
    /// deadline. Behind Sentinel, a failure that says the master is gone or
    /// demoted makes the next command look the master up again.
    /// `query` names the call in `sesame_db_query_duration_seconds{role="cache"}`:
    /// one observation is one round trip.
    pub async fn run<T, F, Fut>(&self, query: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let _timer = QueryTimer::start(query, DbRole::Cache);
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (conn, generation) = match &self.backend {
            Backend::Direct(c, _) => (Conn::Direct(c.clone()), None),
            Backend::Sentinel(master) => {
                match tokio::time::timeout_at(deadline, master.connection()).await {
                    Ok((generation, c)) => (Conn::Sentinel(c), Some(generation)),
                    Err(_) => {
                        return Err(StoreError::Unavailable(format!(
                            "session store (Redis, Sentinel service {}) has no master now: {}",
                            master.service(),
                            master.unavailable_reason().unwrap_or_default()
                        )))
                    }
                }
            }
        };
        let retire = |why: &str| {
            if let (Backend::Sentinel(master), Some(generation)) = (&self.backend, generation) {
                master.retire(generation, why);
            }
        };
        match tokio::time::timeout_at(deadline, f(Connection(conn))).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_unavailable(&e) => {
                retire(&e.to_string());
                Err(StoreError::Unavailable(format!(
                    "session store (Redis) unavailable: {e}"
                )))
            }
            Ok(Err(e)) => Err(StoreError::Other(format!("Redis: {e}"))),
            Err(_) => {
                retire("no answer within the deadline");
                Err(StoreError::Unavailable(format!(
                    "session store (Redis) did not answer within {:?}",
                    self.timeout
                )))
            }
        }
    }

    /// Runs one Lua script, bound to its keys and arguments: one round trip.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        query: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.run(query, |mut c| async move {
            invocation.invoke_async(&mut c).await
        })
        .await
    }

    /// Runs `write` and, with replica acknowledgements configured, `WAIT`
    /// for them in the same round trip on the same connection (`WAIT`
    /// counts the writes this connection made before it). Fewer replicas
    /// than asked for within half the deadline is `Unavailable`: the write
    /// may exist on the master, but it is not acknowledged, since a
    /// failover could lose it. `what` names the write in that error.
    pub async fn run_acknowledged<T>(
        &self,
        query: &'static str,
        what: &str,
        write: Cmd,
    ) -> Result<T, StoreError>
    where
        T: FromRedisValue + Send + 'static,
    {
        let acks = self.replica_acks;
        if acks == 0 {
            return self
                .run(
                    query,
                    |mut c| async move { write.query_async(&mut c).await },
                )
                .await;
        }
        let wait_ms = (self.timeout / 2).as_millis().max(1) as u64;
        let (value, acked): (T, i64) = self
            .run(query, |mut c| async move {
                redis::pipe()
                    .add_command(write)
                    .cmd("WAIT")
                    .arg(acks)
                    .arg(wait_ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if acked < i64::from(acks) {
            return Err(StoreError::Unavailable(format!(
                "{what} not acknowledged by a Redis replica ({acked} of {acks} within {wait_ms} ms); \
                 it may be on the master only, so it is not reported done"
            )));
        }
        Ok(value)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
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

/// `EVAL` of `script` with its keys and arguments: a script that can go in
/// a pipeline (before `WAIT`), where `EVALSHA`'s fallback cannot.
fn eval(script: &str, keys: &[&str], args: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
    cmd
}

/// Sessions in Redis: shared by every instance, expiring by themselves.
pub struct RedisSessions {
    redis: RedisConn,
    create: Script,
}

/// Stores a session and adds it to its user's set (dropping the set's
/// expired members; the set lives as long as its last session). KEYS[1]:
/// session key, KEYS[2]: user set; ARGV[1]: value, ARGV[2]: expires_at ms,
/// ARGV[3]: token hex, ARGV[4]: now ms. Shared by the scripts that create
/// sessions.
macro_rules! create_session_lua {
    () => {
        r"
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
"
    };
}
pub(crate) use create_session_lua;

const CREATE_SESSION: &str = concat!(create_session_lua!(), "return 1\n");

// KEYS: session key; ARGV: revocation channel, token hex. Publishes even
// when the session is gone already: publishing is what a cache needs.
const REVOKE: &str = r"
local n = redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return n
";

// KEYS: user set; ARGV: session key prefix, revocation channel. Returns how
// many live sessions were deleted, and the hashes of all the user's
// sessions, which it publishes.
const REVOKE_ALL: &str = r"
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local n = 0
for _, h in ipairs(members) do
  n = n + redis.call('DEL', ARGV[1] .. h)
end
redis.call('DEL', KEYS[1])
if #members > 0 then
  redis.call('PUBLISH', ARGV[2], table.concat(members, ' '))
end
return {n, members}
";

/// The channel revocations are published on, under the namespace: the
/// revoked token hashes in hex, separated by spaces.
pub const REVOKED_CHANNEL: &str = "revoked";

impl RedisSessions {
    pub fn new(redis: RedisConn) -> Self {
        Self {
            redis,
            create: Script::new(CREATE_SESSION),
        }
    }

    fn session_key(&self, hash: &TokenHash) -> String {
        self.redis.key("s", &hash.to_hex())
    }

    fn user_key(&self, user_id: i64) -> String {
        self.redis.key("u", &user_id.to_string())
    }

    pub fn redis(&self) -> &RedisConn {
        &self.redis
    }

    /// [`SessionStore::revoke_all`], also answering the hashes of every
    /// session of the user it revoked (expired ones too).
    pub async fn revoke_all_listed(&self, user_id: i64) -> Result<(u64, Vec<String>), StoreError> {
        let user_key = self.user_key(user_id);
        let prefix = self.redis.key("s", "");
        let channel = self.redis.channel(REVOKED_CHANNEL);
        let script = eval(REVOKE_ALL, &[&user_key], &[&prefix, &channel]);
        let (n, hashes): (i64, Vec<String>) = self
            .redis
            .run_acknowledged(
                "session_revoke_all",
                "the revocation of the user's sessions was",
                script,
            )
            .await?;
        Ok((n.max(0) as u64, hashes))
    }
}

/// The keys and arguments of [`create_session_lua`] for `session`.
pub(crate) fn add_session(
    invocation: &mut redis::ScriptInvocation<'_>,
    redis: &RedisConn,
    session: &Session,
) {
    invocation
        .key(redis.key("s", &session.token_hash.to_hex()))
        .key(redis.key("u", &session.user_id.to_string()))
        .arg(encode(session))
        .arg(to_ms(session.expires_at))
        .arg(session.token_hash.to_hex())
        .arg(to_ms(Utc::now()));
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
        let mut created = self.create.prepare_invoke();
        add_session(&mut created, &self.redis, session);
        self.redis
            .invoke::<i64>("session_create", &created)
            .await
            .map(|_| ())
    }

    async fn find(
        &self,
        token_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let key = self.session_key(token_hash);
        let value: Option<String> = self
            .redis
            .run("session_find", |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await?;
        Ok(value
            .and_then(|v| decode(*token_hash, &v))
            .filter(|s| s.is_live(now)))
    }

    /// With replica acknowledgements, answers only once a replica has the
    /// deletion: a logout a failover could undo is not reported done. The
    /// revocation is published before the acknowledgement, so every cache
    /// listening has been sent it by then.
    async fn revoke(&self, token_hash: &TokenHash) -> Result<(), StoreError> {
        let key = self.session_key(token_hash);
        let channel = self.redis.channel(REVOKED_CHANNEL);
        let script = eval(REVOKE, &[&key], &[&channel, &token_hash.to_hex()]);
        self.redis
            .run_acknowledged::<i64>("session_revoke", "the session's revocation was", script)
            .await
            .map(|_| ())
    }

    /// Acknowledged by replicas, and published, as [`revoke`](Self::revoke) is.
    async fn revoke_all(&self, user_id: i64) -> Result<u64, StoreError> {
        self.revoke_all_listed(user_id).await.map(|(n, _)| n)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.redis.ping().await
    }
}

/// Recent-write markers in Redis, shared by every instance.
pub struct RedisWrites {
    redis: RedisConn,
    ttl: Duration,
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

/// The key of `user`'s recent-write marker.
pub(crate) fn marker_key(redis: &RedisConn, user: &str) -> String {
    redis.key("w", user)
}

impl RedisWrites {
    pub fn new(redis: RedisConn, ttl: Duration) -> Self {
        Self { redis, ttl }
    }

    /// `SET` of `user`'s marker to `value` for the marker TTL, answering the
    /// one it replaced.
    fn set(&self, user: &str, value: i64) -> Cmd {
        let mut set = redis::cmd("SET");
        set.arg(marker_key(&self.redis, user))
            .arg(value)
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .arg("GET");
        set
    }
}

#[async_trait]
impl RecentWrites for RedisWrites {
    /// Not acknowledged by replicas: a PENDING marker lost in a failover
    /// only matters if the write then succeeds, and its `commit` is.
    async fn begin(&self, user: &str) -> Result<Option<i64>, StoreError> {
        let set = self.set(user, PENDING);
        self.redis
            .run("marker_begin", |mut c| async move {
                set.query_async(&mut c).await
            })
            .await
    }

    async fn abort(&self, user: &str, previous: Option<i64>) -> Result<(), StoreError> {
        let key = marker_key(&self.redis, user);
        let previous = previous.map(|v| v.to_string()).unwrap_or_default();
        let ttl = (self.ttl.as_millis() as u64).to_string();
        let put_back = eval(
            ABORT_MARKER,
            &[&key],
            &[&PENDING.to_string(), &previous, &ttl],
        );
        self.redis
            .run_acknowledged::<i64>(
                "marker_abort",
                "putting the recent-write marker back was",
                put_back,
            )
            .await
            .map(|_| ())
    }

    async fn commit(&self, user: &str, committed_at_ms: i64) -> Result<(), StoreError> {
        self.redis
            .run_acknowledged::<Option<i64>>(
                "marker_commit",
                "the recent-write marker was",
                self.set(user, committed_at_ms),
            )
            .await
            .map(|_| ())
    }

    fn commit_required(&self) -> bool {
        self.redis.replica_acks() > 0
    }

    async fn get(&self, user: &str) -> Result<Option<i64>, StoreError> {
        let key = marker_key(&self.redis, user);
        self.redis
            .run("marker_get", |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
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
