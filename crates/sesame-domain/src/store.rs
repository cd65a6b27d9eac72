//! The ports the login flow needs from storage. Adapters live in the storage
//! crate (SQLite, MySQL with replicas, Redis, in-process caches).

use crate::session::{Session, TokenHash};
use crate::username::Username;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Instant;

/// Which copy of the data answered a read; recorded in events and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbRole {
    Primary,
    Replica,
    Cache,
}

impl DbRole {
    pub fn parse(s: &str) -> Option<DbRole> {
        [DbRole::Primary, DbRole::Replica, DbRole::Cache]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DbRole::Primary => "primary",
            DbRole::Replica => "replica",
            DbRole::Cache => "cache",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub username: Username,
    pub password_hash: Arc<str>,
    pub created_at: DateTime<Utc>,
    /// When the password was last set (not when its hash was upgraded):
    /// the version of the credential a login verified.
    pub password_changed_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: Username,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

impl NewUser {
    /// The record a store holds once it has written this user as `id`.
    pub fn into_record(self, id: i64) -> UserRecord {
        UserRecord {
            id,
            username: self.username,
            password_hash: self.password_hash.into(),
            created_at: self.created_at,
            password_changed_at: self.created_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    /// The backend cannot be reached or did not answer in time.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Other(String),
}

#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Looks a user up for a login: one indexed point read.
    async fn find_for_login(
        &self,
        username: &Username,
    ) -> Result<(Option<UserRecord>, DbRole), StoreError>;
    /// The same lookup, answered by `deadline` or given up as
    /// [`StoreError::Unavailable`]: a login's budget is not the store's to
    /// spend on a server that is down. Stores whose reads cannot hang keep
    /// the default.
    async fn find_for_login_by(
        &self,
        username: &Username,
        deadline: Instant,
    ) -> Result<(Option<UserRecord>, DbRole), StoreError> {
        let _ = deadline;
        self.find_for_login(username).await
    }
    async fn create(&self, user: NewUser) -> Result<UserRecord, StoreError>;
    /// Bulk import (load-test seeding, migrations from another system): one
    /// transaction per call; existing names are skipped. Returns how many
    /// were inserted.
    async fn import(&self, users: &[NewUser]) -> Result<u64, StoreError>;
    /// Replaces the password hash. `changed_at` marks when the old password
    /// stopped working. With `expected`, only if the hash is still that one
    /// (the one a password change proved the old password against), else
    /// `NotFound`: a concurrent change wins, and so does one that landed
    /// while a frozen instance slept on this one.
    async fn set_password_hash(
        &self,
        user_id: i64,
        expected: Option<&str>,
        password_hash: &str,
        changed_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Upgrades a hash to current parameters only if it is still `old_hash`
    /// (a concurrent password change wins).
    async fn upgrade_hash(
        &self,
        user_id: i64,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<(), StoreError>;
    /// Whether `user`'s password is still the one its record was read with
    /// (`password_changed_at` unchanged), read where the newest write shows.
    /// A login asks after creating its session: a password change that
    /// landed meanwhile may have revoked the user's sessions before this one
    /// existed. A removed user's password has changed.
    async fn password_unchanged(&self, user: &UserRecord) -> Result<bool, StoreError>;
    async fn remove(&self, username: &Username) -> Result<(), StoreError>;
    async fn list(
        &self,
        after: Option<&Username>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError>;
    async fn ready(&self) -> Result<(), StoreError>;
}

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn create(&self, session: &Session) -> Result<(), StoreError>;
    /// A live session for this token hash, if any.
    async fn find(
        &self,
        token_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;
    async fn revoke(&self, token_hash: &TokenHash) -> Result<(), StoreError>;
    async fn revoke_all(&self, user_id: i64) -> Result<u64, StoreError>;
    async fn ready(&self) -> Result<(), StoreError>;
}
