//! Flags several commands share.

use sesame_domain::HashParams;
use sesame_storage::StorageConfig;
use sesame_toolkit::argon2_flags::Argon2Args;
use sesame_toolkit::duration;

#[derive(Debug, clap::Args)]
pub struct StorageArgs {
    /// Database URL: `sqlite:PATH` (embedded default, created if missing) or
    /// `mysql://USER:PASS@HOST:PORT/DB` (MySQL 8 / MariaDB 10.11; the primary).
    #[arg(long, env = "SESAME_DATABASE_URL", default_value = "sqlite:sesame.db")]
    pub database: String,
    /// Read replica of the MySQL primary (`mysql://...`) for login lookups;
    /// repeat the flag, or comma-separate in the environment variable.
    #[arg(long = "replica", env = "SESAME_REPLICA_URLS", value_delimiter = ',')]
    pub replicas: Vec<String>,
    /// Redis URL (`redis://HOST:PORT[/DB]`), or Redis behind Sentinel
    /// (`redis+sentinel://[USER:PASS@]HOST:PORT[,HOST:PORT...]/SERVICE_NAME[/DB]`,
    /// the sentinels' addresses and the monitored master's name): sessions,
    /// rate limits and recent-write markers shared by all instances.
    #[arg(long = "cache", env = "SESAME_CACHE_URL")]
    pub cache: Option<String>,
    /// How many Redis replicas must acknowledge (`WAIT`) a logout, a
    /// password change's session revocation or a recent-write marker before
    /// it is reported done; otherwise 503. Default: 1 with
    /// `redis+sentinel://`, 0 with `redis://`.
    #[arg(long, env = "SESAME_CACHE_REPLICA_ACKS")]
    pub cache_replica_acks: Option<u32>,
    /// A replica further behind the primary than this is not read from
    /// (seconds, or with a unit: `500ms`, `5s`, `1m`).
    #[arg(long, env = "SESAME_MAX_REPLICA_LAG", default_value = "5s", value_parser = duration::parse)]
    pub max_replica_lag: std::time::Duration,
}

impl StorageArgs {
    pub fn storage_config(&self) -> StorageConfig {
        StorageConfig {
            database_url: self.database.clone(),
            replicas: self.replicas.clone(),
            cache_url: self.cache.clone(),
            cache_replica_acks: self.cache_replica_acks,
            max_replica_lag: self.max_replica_lag,
            ..StorageConfig::default()
        }
    }
}

impl StorageArgs {
    /// The database URL without its password, for logs and messages.
    pub fn database_display(&self) -> String {
        sesame_storage::redact_url(&self.database)
    }

    /// The cache URL without its password, for logs and messages.
    pub fn cache_display(&self) -> Option<String> {
        self.cache.as_deref().map(sesame_storage::redact_url)
    }
}

/// The Argon2id flags (declared once, in the toolkit, for every command that
/// hashes) and the hash workers of the commands that run a hash pool.
#[derive(Debug, Clone, clap::Args)]
pub struct HashArgs {
    #[command(flatten)]
    pub cost: Argon2Args,
    /// Hashing threads (default: the available cores).
    #[arg(long, env = "SESAME_HASH_WORKERS")]
    pub hash_workers: Option<usize>,
}

impl HashArgs {
    pub fn params(&self) -> HashParams {
        self.cost.params()
    }

    pub fn workers(&self) -> usize {
        self.hash_workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }
}

pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
