//! The backend fixture: the storage a test runs on, fresh for each test.

use crate::mariadb::{self, MariaDb};
use crate::redis;
use sesame_domain::StoreError;
use sesame_storage::{MySqlSettings, MySqlStore, RedisRateLimiter, StorageConfig, Stores};
use std::time::Duration;

/// A storage backend sesame runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: a SQLite file.
    Sqlite,
    /// Production: a MariaDB primary read through a replica (the shared
    /// [`mariadb::shared`] servers), with sessions, recent-write markers and
    /// rate limits in the shared Redis.
    MySql,
}

impl Backend {
    /// Whether this backend's servers run (started on first use); why not.
    pub fn available(self) -> Result<(), String> {
        match self {
            Backend::Sqlite => Ok(()),
            Backend::MySql => {
                mariadb::shared()?;
                redis::redis_url()?;
                Ok(())
            }
        }
    }

    /// A fresh, empty, migrated database of this test's own: a SQLite file
    /// in a temporary directory, or a schema on the shared primary with a
    /// Redis namespace. Panics when the servers cannot start (check
    /// [`Backend::available`] first to skip instead).
    pub async fn database(self) -> Database {
        match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let config = StorageConfig {
                    database_url: format!("sqlite:{}", dir.path().join("sesame.db").display()),
                    ..StorageConfig::default()
                };
                Database {
                    config,
                    _dir: Some(dir),
                }
            }
            Backend::MySql => {
                let topology =
                    mariadb::shared().unwrap_or_else(|e| panic!("MariaDB test servers: {e}"));
                let redis = redis::redis_url().unwrap_or_else(|e| panic!("Redis: {e}"));
                let schema = topology.schema().unwrap();
                let config = mysql_config(
                    &topology.primary,
                    &schema,
                    &[&topology.replica],
                    Some(redis),
                );
                sesame_storage::migrate(&config).await.unwrap();
                Database { config, _dir: None }
            }
        }
    }
}

/// One test's database (see [`Backend::database`]). Stores opened on it
/// again see what earlier ones wrote, as a restarted sesame does.
pub struct Database {
    config: StorageConfig,
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// Opens the stores, as `sesame serve` does.
    pub async fn stores(&self) -> Stores {
        sesame_storage::open(&self.config).await.unwrap()
    }
}

/// Storage on `schema` of `primary`, read through `replicas`, with Redis at
/// `cache_url` (a namespace of its own) and a heartbeat every 100 ms.
pub fn mysql_config(
    primary: &MariaDb,
    schema: &str,
    replicas: &[&MariaDb],
    cache_url: Option<String>,
) -> StorageConfig {
    StorageConfig {
        database_url: primary.url(schema),
        replicas: replicas.iter().map(|r| r.url(schema)).collect(),
        cache_url,
        cache_namespace: redis::namespace(),
        heartbeat_interval: Duration::from_millis(100),
        ..StorageConfig::default()
    }
}

/// The MySQL settings `sesame_storage::open` derives from `config`: what
/// the store it opens runs with (its `marker_ttl`, say).
pub fn mysql_settings(config: &StorageConfig) -> MySqlSettings {
    MySqlSettings {
        primary_url: config.database_url.clone(),
        replica_urls: config.replicas.clone(),
        max_replica_lag: config.max_replica_lag,
        timeout: config.timeout,
        heartbeat_interval: config.heartbeat_interval,
        max_connections: config.max_connections,
    }
}

/// The stores `sesame_storage::open` opens for a MySQL/MariaDB URL, with
/// the two parts [`Stores`] does not show kept in hand, for the tests that
/// watch them: the [`MySqlStore`] behind `stores.users` (the topology as
/// its heartbeat sees it: `replica_status`, `primary_up`, `settings`) and
/// the Redis rate limiter behind `stores.limits`.
pub struct MySqlStack {
    pub stores: Stores,
    pub mysql: MySqlStore,
    /// With a `cache_url`.
    pub rate_limiter: Option<RedisRateLimiter>,
}

impl MySqlStack {
    /// Opens the stores as `sesame_storage::open` does, keeping the
    /// adapters in hand; does not migrate.
    pub async fn open(config: &StorageConfig) -> Result<Self, StoreError> {
        let opened = sesame_storage::open_parts(config).await?;
        let mysql = opened
            .mysql
            .ok_or_else(|| StoreError::Other("not a MySQL configuration".into()))?;
        Ok(Self {
            stores: opened.stores,
            mysql,
            rate_limiter: opened.rate_limiter,
        })
    }
}
