//! The embedded default: one SQLite file in WAL mode, so `sesame serve` runs
//! with nothing else installed.

use crate::decoy::DECOY_PASSWORD_HASH;
use crate::query_metrics::QueryTimer;
use crate::revocations::Revocations;
use crate::sql::{changed_a_row, FIND_SESSION, INSERT_SESSION, SET_PASSWORD_HASH};
use crate::time::{from_ms, to_ms};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sesame_domain::{
    DbRole, NewUser, Session, SessionStore, StoreError, TokenHash, UserRecord, UserStore, Username,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connections to the database file: SQLite writes one at a time, and more
/// readers than this do not help a service whose work is hashing.
const CONNECTIONS: u32 = 8;

pub struct SqliteStore {
    pool: SqlitePool,
    revocations: Arc<Revocations>,
}

impl SqliteStore {
    /// Opens `sqlite:PATH` (or a bare path), creating and migrating it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else {
            format!("sqlite:{url}")
        };
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL {url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(1))
            // Each connection caches pages up to this (KiB, negative): SQLite's
            // share of memory stays a fixed CONNECTIONS x 1 MiB however
            // large the sessions table grows; the OS caches the file.
            .pragma("cache_size", "-1024");
        let revocations = match options.get_filename() {
            path if path == Path::new(":memory:") || url.contains("mode=memory") => {
                Revocations::private()
            }
            path => Revocations::open(path),
        }
        .map_err(|e| StoreError::Other(format!("revocation generations for {url}: {e}")))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(1))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        Ok(Self {
            pool,
            revocations: Arc::new(revocations),
        })
    }

    /// Publishes committed revocations to every process's session cache.
    fn published(&self, token_hashes: &[Vec<u8>]) {
        for hash in token_hashes {
            if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                self.revocations.bump(&TokenHash(hash));
            }
        }
    }

    /// The revocation generations every process on this database bumps:
    /// what an in-process session cache checks (see [`Revocations`]).
    pub fn revocations(&self) -> Arc<Revocations> {
        self.revocations.clone()
    }
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(format!("database unavailable: {e}"))
        }
        _ => StoreError::Other(e.to_string()),
    }
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<UserRecord, StoreError> {
    let name: String = row.get("username");
    let username = Username::parse(&name)
        .map_err(|e| StoreError::Other(format!("stored username {name:?}: {e}")))?;
    Ok(record(row, username))
}

/// A user row whose name is already known: a login lookup matched it
/// exactly, so it is not parsed again. That keeps a hit as cheap as a miss
/// (an unknown user must not be told apart by timing).
fn record(row: &sqlx::sqlite::SqliteRow, username: Username) -> UserRecord {
    let hash: String = row.get("password_hash");
    UserRecord {
        id: row.get("id"),
        username,
        password_hash: hash.into(),
        created_at: from_ms(row.get("created_at")),
        password_changed_at: from_ms(row.get("password_changed_at")),
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn find_for_login(
        &self,
        username: &Username,
    ) -> Result<(Option<UserRecord>, DbRole), StoreError> {
        let _timer = QueryTimer::start("find_for_login", DbRole::Primary);
        let row = sqlx::query(
            "SELECT id, password_hash, created_at, password_changed_at FROM users WHERE username = ?1 \
             UNION ALL SELECT 0, ?2, 0, 0 ORDER BY id DESC LIMIT 1",
        )
        .bind(username.as_str())
        .bind(DECOY_PASSWORD_HASH)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let user = record(&row, username.clone());
        Ok(((user.id != 0).then_some(user), DbRole::Primary))
    }

    async fn create(&self, user: NewUser) -> Result<UserRecord, StoreError> {
        let _timer = QueryTimer::start("create_user", DbRole::Primary);
        let now = to_ms(user.created_at);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(user.username.as_str())
        .bind(&user.password_hash)
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(user.into_record(id))
    }

    async fn import(&self, users: &[NewUser]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut inserted = 0;
        for user in users {
            let now = to_ms(user.created_at);
            let done = sqlx::query(
                "INSERT OR IGNORE INTO users (username, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?)",
            )
            .bind(user.username.as_str())
            .bind(&user.password_hash)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            inserted += done.rows_affected();
        }
        tx.commit().await.map_err(map_err)?;
        Ok(inserted)
    }

    async fn set_password_hash(
        &self,
        user_id: i64,
        expected: Option<&str>,
        password_hash: &str,
        changed_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _timer = QueryTimer::start("set_password_hash", DbRole::Primary);
        let done = sqlx::query(SET_PASSWORD_HASH)
            .bind(password_hash)
            .bind(to_ms(changed_at))
            .bind(user_id)
            .bind(expected)
            .bind(expected)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        changed_a_row(done.rows_affected())
    }

    async fn upgrade_hash(
        &self,
        user_id: i64,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<(), StoreError> {
        let _timer = QueryTimer::start("upgrade_hash", DbRole::Primary);
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?")
            .bind(new_hash)
            .bind(user_id)
            .bind(old_hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn remove(&self, username: &Username) -> Result<(), StoreError> {
        let _timer = QueryTimer::start("remove_user", DbRole::Primary);
        // Its sessions go first, by name, so that their revocations can be
        // published; the user's row then takes nothing else with it.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let revoked: Vec<Vec<u8>> = sqlx::query_scalar(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?) \
             RETURNING token_hash",
        )
        .bind(username.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let done = sqlx::query("DELETE FROM users WHERE username = ?")
            .bind(username.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(map_err)?;
        self.published(&revoked);
        Ok(())
    }

    async fn list(
        &self,
        after: Option<&Username>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, username, password_hash, created_at, password_changed_at FROM users WHERE username > ? ORDER BY username LIMIT ?",
        )
        .bind(after.map_or("", Username::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn password_unchanged(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let _timer = QueryTimer::start("password_unchanged", DbRole::Primary);
        let changed_at: Option<i64> =
            sqlx::query_scalar("SELECT password_changed_at FROM users WHERE id = ?")
                .bind(user.id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(changed_at == Some(to_ms(user.password_changed_at)))
    }

    async fn ready(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create(&self, session: &Session) -> Result<(), StoreError> {
        let _timer = QueryTimer::start("create_session", DbRole::Primary);
        sqlx::query(INSERT_SESSION)
            .bind(session.token_hash.as_bytes())
            .bind(session.user_id)
            .bind(to_ms(session.created_at))
            .bind(to_ms(session.expires_at))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn find(
        &self,
        token_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let _timer = QueryTimer::start("find_session", DbRole::Primary);
        let row = sqlx::query(FIND_SESSION)
            .bind(token_hash.as_bytes())
            .bind(to_ms(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.map(|row| Session {
            token_hash: *token_hash,
            user_id: row.get("user_id"),
            username: row.get("username"),
            created_at: from_ms(row.get("created_at")),
            expires_at: from_ms(row.get("expires_at")),
        }))
    }

    async fn revoke(&self, token_hash: &TokenHash) -> Result<(), StoreError> {
        let _timer = QueryTimer::start("revoke_session", DbRole::Primary);
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash.as_bytes())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        self.revocations.bump(token_hash);
        Ok(())
    }

    async fn revoke_all(&self, user_id: i64) -> Result<u64, StoreError> {
        let _timer = QueryTimer::start("revoke_user_sessions", DbRole::Primary);
        let revoked: Vec<Vec<u8>> =
            sqlx::query_scalar("DELETE FROM sessions WHERE user_id = ? RETURNING token_hash")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        self.published(&revoked);
        Ok(revoked.len() as u64)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        UserStore::ready(self).await
    }
}
