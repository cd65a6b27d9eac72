//! Storage adapters behind the domain's [`UserStore`] and [`SessionStore`]
//! ports. The backend is chosen by URL: `sqlite:` (the embedded default) or
//! `mysql://` / `mariadb://` (a primary, with `replicas` for login lookups);
//! `cache_url` (`redis://`, or `redis+sentinel://` for Redis behind
//! Sentinel) moves sessions, recent-write markers and rate-limit state into
//! Redis so that many instances share them.
//! The book's "Production storage" chapter tells what each operation does when a server fails.

mod cache;
mod decoy;
pub mod markers;
pub mod mysql;
mod query_metrics;
pub mod ratelimit;
pub mod redis_login;
pub mod redis_sentinel;
pub mod redis_session_cache;
pub mod redis_store;
pub mod revocations;
mod sql;
mod sqlite;
mod time;

pub use cache::CachedSessions;
pub use mysql::{MySqlSettings, MySqlStore, ReplicaStatus};
pub use ratelimit::{RedisRateLimiter, SharedLimits};
pub use redis_login::RedisLoginRoundTrips;
pub use redis_session_cache::RedisCachedSessions;
pub use redis_store::{RedisConn, RedisSessions};
pub use sqlite::SqliteStore;

use markers::{LocalWrites, RecentWrites};
use redis_store::RedisWrites;
use sesame_domain::{LoginRoundTrips, SessionStore, StoreError, UserStore};
use std::sync::Arc;
use std::time::Duration;

/// The stores a running service uses.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    /// A short name for logs and `/readyz`: `sqlite`, `mysql`.
    pub backend: &'static str,
    /// Rate-limit state shared through Redis, falling back to in-process
    /// limits while Redis is down: hand it to `LoginLimiter::new`. `None`
    /// without Redis (use `InMemoryLimits`).
    pub limits: Option<Arc<dyn sesame_domain::LimitStore>>,
    /// A login's limits, user's write mark and session in one Redis round
    /// trip before the hash and one after: hand it to
    /// `LoginService::with_round_trips`. `None` without Redis.
    pub round_trips: Option<Arc<dyn LoginRoundTrips>>,
}

/// How to open the stores.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// `sqlite:PATH` (or a bare file path), or `mysql://user:pass@host:port/db`
    /// (`mariadb://` is accepted too): the primary.
    pub database_url: String,
    /// Read replicas of a MySQL primary (`mysql://...`), for login lookups.
    pub replicas: Vec<String>,
    /// `redis://host:port[/db]`, or
    /// `redis+sentinel://[user:pass@]host:port[,host:port...]/service[/db]`:
    /// sessions, recent-write markers and rate-limit state shared by all
    /// instances.
    pub cache_url: Option<String>,
    /// How many Redis replicas must acknowledge (`WAIT`) a session
    /// revocation or a recent-write marker's commit before it is reported
    /// done. `None`: 1 with `redis+sentinel://`, 0 with `redis://`.
    pub cache_replica_acks: Option<u32>,
    /// A replica further behind the primary than this is not read from.
    pub max_replica_lag: Duration,
    /// Live sessions kept in process memory in front of the session store:
    /// SQLite's (see `CachedSessions`), or Redis' (see
    /// `RedisCachedSessions`: a revocation is refused everywhere within its
    /// `BOUND`). 0 turns the cache off. Sessions in MySQL (no `--cache`)
    /// are never cached.
    pub session_cache_capacity: u64,
    /// Prefix of every Redis key, so several deployments can share a Redis.
    pub cache_namespace: String,
    /// The most one database or Redis call may take before the request is
    /// answered 503 `unavailable`.
    pub timeout: Duration,
    /// How often the replica-lag heartbeat is written and read.
    pub heartbeat_interval: Duration,
    /// Connections per MySQL server.
    pub max_connections: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database_url: "sqlite:sesame.db".into(),
            replicas: Vec::new(),
            cache_url: None,
            cache_replica_acks: None,
            max_replica_lag: Duration::from_secs(5),
            session_cache_capacity: 100_000,
            cache_namespace: "sesame".into(),
            timeout: Duration::from_millis(800),
            heartbeat_interval: Duration::from_millis(250),
            max_connections: 32,
        }
    }
}

impl StorageConfig {
    fn is_mysql(&self) -> bool {
        is_mysql_url(&self.database_url)
    }

    fn mysql_settings(&self) -> MySqlSettings {
        MySqlSettings {
            primary_url: self.database_url.clone(),
            replica_urls: self.replicas.clone(),
            max_replica_lag: self.max_replica_lag,
            timeout: self.timeout,
            heartbeat_interval: self.heartbeat_interval,
            max_connections: self.max_connections,
        }
    }
}

/// A database or cache URL fit for logs: any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

fn is_mysql_url(url: &str) -> bool {
    url.starts_with("mysql:") || url.starts_with("mariadb:")
}

/// Opens the stores named by the configuration. SQLite is created and
/// migrated here; a MySQL schema is migrated by [`migrate`] (`sesame
/// migrate`), and the servers may be down while this opens.
pub async fn open(config: &StorageConfig) -> Result<Stores, StoreError> {
    Ok(open_parts(config).await?.stores)
}

/// The stores, and the adapters behind them that the service does not use
/// but the tests (and an operator's tools) look at.
pub struct Opened {
    pub stores: Stores,
    /// The MySQL topology behind `stores.users`, as its heartbeat sees it.
    pub mysql: Option<MySqlStore>,
    /// The Redis rate limiter behind `stores.limits`.
    pub rate_limiter: Option<RedisRateLimiter>,
}

/// [`open`], keeping the adapters in hand.
pub async fn open_parts(config: &StorageConfig) -> Result<Opened, StoreError> {
    if let Some(bad) = config.replicas.iter().find(|u| !is_mysql_url(u)) {
        return Err(StoreError::Other(format!(
            "replica URL must be mysql:// or mariadb:// (got {})",
            mysql::server_name(bad)
        )));
    }
    let redis = match &config.cache_url {
        Some(url) => Some(
            RedisConn::connect_with_acks(
                url,
                &config.cache_namespace,
                config.timeout.min(Duration::from_millis(500)),
                config.cache_replica_acks,
            )
            .await
            .map_err(|e| match e {
                StoreError::Unavailable(m) => {
                    StoreError::Unavailable(format!("cannot reach the cache: {m}"))
                }
                other => other,
            })?,
        ),
        None => None,
    };
    let rate_limiter = redis.clone().map(RedisRateLimiter::new);
    let shared_limits = rate_limiter.clone().map(|r| Arc::new(SharedLimits::new(r)));
    let limits = shared_limits
        .clone()
        .map(|l| l as Arc<dyn sesame_domain::LimitStore>);
    let round_trips = redis
        .clone()
        .zip(shared_limits)
        .map(|(r, l)| Arc::new(RedisLoginRoundTrips::new(r, l)) as Arc<dyn LoginRoundTrips>);
    if config.is_mysql() {
        let settings = config.mysql_settings();
        let markers: Arc<dyn RecentWrites> = match &redis {
            Some(r) => Arc::new(RedisWrites::new(r.clone(), settings.marker_ttl())),
            None => {
                if !config.replicas.is_empty() {
                    tracing::warn!(
                        "replicas without --cache: read-your-writes holds within this instance only; \
                         run one instance or configure Redis"
                    );
                }
                Arc::new(LocalWrites::new(settings.marker_ttl()))
            }
        };
        let store = MySqlStore::open(settings, markers).await?;
        let sessions: Arc<dyn SessionStore> = match redis {
            Some(r) => redis_sessions(r, config.session_cache_capacity),
            None => Arc::new(store.clone()),
        };
        return Ok(Opened {
            stores: Stores {
                users: Arc::new(store.clone()),
                sessions,
                backend: "mysql",
                limits,
                round_trips,
            },
            mysql: Some(store),
            rate_limiter,
        });
    }
    if !config.replicas.is_empty() {
        return Err(StoreError::Other(
            "read replicas need a MySQL/MariaDB primary (--database mysql://...)".into(),
        ));
    }
    let store = Arc::new(SqliteStore::open(&config.database_url).await?);
    let sessions: Arc<dyn SessionStore> = match redis {
        Some(r) => redis_sessions(r, config.session_cache_capacity),
        None if config.session_cache_capacity == 0 => store.clone(),
        None => Arc::new(CachedSessions::new(
            store.clone(),
            store.revocations(),
            config.session_cache_capacity,
        )),
    };
    Ok(Opened {
        stores: Stores {
            users: store,
            sessions,
            backend: "sqlite",
            limits,
            round_trips,
        },
        mysql: None,
        rate_limiter,
    })
}

/// Sessions in Redis, cached in process unless `capacity` is 0.
fn redis_sessions(redis: RedisConn, capacity: u64) -> Arc<dyn SessionStore> {
    let sessions = RedisSessions::new(redis);
    if capacity == 0 {
        return Arc::new(sessions);
    }
    Arc::new(RedisCachedSessions::new(sessions, capacity))
}

/// Creates or upgrades the schema of the configured database, then returns:
/// `sesame migrate`. On MySQL the migrations run on the primary and reach
/// the replicas by replication.
pub async fn migrate(config: &StorageConfig) -> Result<(), StoreError> {
    if config.is_mysql() {
        return MySqlStore::migrate(
            &config.database_url,
            config.timeout.max(Duration::from_secs(5)),
        )
        .await;
    }
    SqliteStore::open(&config.database_url).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_in_logs_carry_no_password() {
        assert_eq!(
            redact_url("mysql://sesame:s3cret@db:3306/sesame"),
            "mysql://sesame:***@db:3306/sesame"
        );
        assert_eq!(
            redact_url("redis://:pw@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redact_url("redis+sentinel://app:s3cret@10.0.0.11:26379,10.0.0.12:26379/sesame/1"),
            "redis+sentinel://app:***@10.0.0.11:26379,10.0.0.12:26379/sesame/1"
        );
        assert_eq!(redact_url("mysql://root@db/x"), "mysql://root@db/x");
        assert_eq!(redact_url("sqlite:sesame.db"), "sqlite:sesame.db");
    }
}
