//! Storage adapters behind the domain's [`UserStore`] and [`SessionStore`]
//! ports. The backend is chosen by URL: `sqlite:` (the embedded default).

mod cache;
mod sqlite;
mod time;

pub use cache::CachedSessions;
pub use sqlite::SqliteStore;

use sesame_domain::{SessionStore, StoreError, UserStore};
use std::sync::Arc;

/// The stores a running service uses.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    /// A short name for logs and `/readyz`: `sqlite`, `mysql`.
    pub backend: &'static str,
}

/// How to open the stores.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// `sqlite:PATH` or a bare file path.
    pub database_url: String,
    /// Live sessions kept in process memory in front of the database.
    pub session_cache_capacity: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database_url: "sqlite:sesame.db".into(),
            session_cache_capacity: 100_000,
        }
    }
}

/// Opens (and migrates) the stores named by the configuration.
pub async fn open(config: &StorageConfig) -> Result<Stores, StoreError> {
    let url = config.database_url.as_str();
    if url.starts_with("mysql:") || url.starts_with("mariadb:") {
        return Err(StoreError::Other(
            "MySQL/MariaDB support is not built yet; use sqlite:PATH".into(),
        ));
    }
    let store = Arc::new(SqliteStore::open(url).await?);
    let sessions = Arc::new(CachedSessions::new(
        store.clone(),
        config.session_cache_capacity,
    ));
    Ok(Stores {
        users: store,
        sessions,
        backend: "sqlite",
    })
}

/// Runs the migrations of the configured database without serving.
pub async fn migrate(config: &StorageConfig) -> Result<(), StoreError> {
    open(config).await.map(|_| ())
}
