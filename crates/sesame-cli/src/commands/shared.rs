//! Flags several commands share.

use sesame_domain::HashParams;
use sesame_storage::StorageConfig;

#[derive(Debug, clap::Args)]
pub struct StorageArgs {
    /// Database URL: `sqlite:PATH` (embedded default, created if missing).
    #[arg(long, env = "SESAME_DATABASE_URL", default_value = "sqlite:sesame.db")]
    pub database: String,
}

impl StorageArgs {
    pub fn storage_config(&self) -> StorageConfig {
        StorageConfig {
            database_url: self.database.clone(),
            ..StorageConfig::default()
        }
    }
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
