//! The ports the login flow needs from storage. Adapters live in the storage
//! crate (SQLite, MySQL with replicas, Redis, in-process caches).

use crate::ratelimit::{Decision, LimitError, LoginChecks, Remember};
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

/// Where a store's read-your-writes mechanism stands for one user: an
/// opaque version that moves whenever a write to the user's row starts or
/// lands. A login reads it with its limits before the hash, hands it to the
/// lookup (which then reads a copy that has the user's last write), and
/// reads it again with its session after the hash: if it has not moved, no
/// password change landed in between. Stores without such a mechanism keep
/// the default, and answer `password_unchanged` by reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteMark(pub Option<i64>);

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
    /// The user's [`WriteMark`] now. Never fails: a store that cannot tell
    /// answers a mark that sends the lookup to the primary.
    async fn write_mark(&self, username: &Username) -> WriteMark {
        let _ = username;
        WriteMark::default()
    }
    /// [`find_for_login_by`](Self::find_for_login_by) with the mark this
    /// login read before its hash.
    async fn find_for_login_marked(
        &self,
        username: &Username,
        mark: WriteMark,
        deadline: Instant,
    ) -> Result<(Option<UserRecord>, DbRole), StoreError> {
        let _ = mark;
        self.find_for_login_by(username, deadline).await
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
    /// The same question, knowing the user's marks before the lookup and
    /// after the session was stored: a store whose marks show that nothing
    /// was written in between answers without a read.
    async fn password_unchanged_between(
        &self,
        user: &UserRecord,
        before: WriteMark,
        after: WriteMark,
    ) -> Result<bool, StoreError> {
        let _ = (before, after);
        self.password_unchanged(user).await
    }
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

/// The state a login shares with the rest of the fleet, asked for in one
/// step before the hash and one after a verified password, so that a store
/// holding all of it behind a network answers each step in one round trip
/// (Redis: one script each). Without it the login asks the limit, user and
/// session stores in turn.
#[async_trait]
pub trait LoginRoundTrips: Send + Sync + 'static {
    /// Before the hash: the decisions of the login's limits (as
    /// [`LimitStore::check_all`](crate::ratelimit::LimitStore::check_all),
    /// an error letting the login through) and the user's write mark.
    async fn before_hash(
        &self,
        checks: &LoginChecks,
        username: &Username,
    ) -> (Result<Vec<Decision>, LimitError>, WriteMark);
    /// After a verified password: stores the session, remembers the
    /// address as known to the account, and answers the user's write mark
    /// read after the session was stored. An error means the session may
    /// not exist: the login fails.
    async fn after_success(
        &self,
        session: &Session,
        known: &Remember,
    ) -> Result<WriteMark, StoreError>;
}
