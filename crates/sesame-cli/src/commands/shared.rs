//! Flags several commands share.

use sesame_domain::HashParams;
use sesame_storage::StorageConfig;

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
    /// Redis URL (`redis://HOST:PORT[/DB]`): sessions, rate limits and
    /// recent-write markers shared by all instances.
    #[arg(long = "cache", env = "SESAME_CACHE_URL")]
    pub cache: Option<String>,
    /// A replica further behind the primary than this is not read from
    /// (seconds, or with a unit: `500ms`, `5s`).
    #[arg(long, env = "SESAME_MAX_REPLICA_LAG", default_value = "5s", value_parser = parse_duration)]
    pub max_replica_lag: std::time::Duration,
}

impl StorageArgs {
    pub fn storage_config(&self) -> StorageConfig {
        StorageConfig {
            database_url: self.database.clone(),
            replicas: self.replicas.clone(),
            cache_url: self.cache.clone(),
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
}

/// `5`, `2.5`, `5s`, `500ms`, `1m`.
pub fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration (like 5s or 500ms)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {raw:?} (use ms, s or m)"
            ))
        }
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|e| format!("{raw:?}: {e}"))
}

#[derive(Debug, Clone, clap::Args)]
pub struct HashArgs {
    /// Argon2id memory cost in KiB (OWASP minimum: 19456).
    #[arg(long, env = "SESAME_HASH_M_COST", default_value_t = 19_456)]
    pub hash_m_cost: u32,
    /// Argon2id passes.
    #[arg(long, env = "SESAME_HASH_T_COST", default_value_t = 2)]
    pub hash_t_cost: u32,
    /// Argon2id lanes.
    #[arg(long, env = "SESAME_HASH_P_COST", default_value_t = 1)]
    pub hash_p_cost: u32,
    /// Hashing threads (default: the available cores).
    #[arg(long, env = "SESAME_HASH_WORKERS")]
    pub hash_workers: Option<usize>,
}

impl HashArgs {
    pub fn params(&self) -> HashParams {
        HashParams {
            m_cost: self.hash_m_cost,
            t_cost: self.hash_t_cost,
            p_cost: self.hash_p_cost,
        }
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
