//! Recent-write markers: the read-your-writes mechanism.
//!
//! Before a write to a user's row goes to the primary, a marker for that
//! user is set to [`PENDING`]; once the primary has committed, the marker is
//! set to the commit time (ms, this process's clock). A marker lives for
//! longer than a replica may lag (see `MySqlStore::marker_ttl`), so while it
//! exists the user's login lookups go to the primary, and after it is gone
//! every replica that is still within the lag bound has the write.
//!
//! With Redis (`--cache`) markers are shared by all sesame instances; without
//! it they live in this process only (fine for one instance).

use async_trait::async_trait;
use moka::sync::Cache;
use sesame_domain::StoreError;
use std::time::Duration;

/// The marker value while a write is in flight: no replica can be known to
/// have it.
pub const PENDING: i64 = i64::MAX;

#[async_trait]
pub trait RecentWrites: Send + Sync + 'static {
    /// Sets the marker before the write and returns the one it replaced.
    /// An error means the write must not be attempted (its read-your-writes
    /// could not be guaranteed).
    async fn begin(&self, user: &str) -> Result<Option<i64>, StoreError>;
    /// The write was certainly not made (no connection to the primary):
    /// puts back the marker `begin` replaced, if this one is still pending.
    async fn abort(&self, user: &str, previous: Option<i64>) -> Result<(), StoreError>;
    /// Records the commit time once the primary has the write.
    async fn commit(&self, user: &str, committed_at_ms: i64) -> Result<(), StoreError>;
    /// The marker of this user, if a write is recent: its commit time in ms,
    /// or [`PENDING`].
    async fn get(&self, user: &str) -> Result<Option<i64>, StoreError>;
    /// Whether a write whose `commit` failed must be reported failed. True
    /// when markers live in a Redis whose failover could lose a marker not
    /// yet on a replica (`--cache-replica-acks` above 0): the write is then
    /// not acknowledged, rather than leave a replica without it free to
    /// answer for the user.
    fn commit_required(&self) -> bool {
        false
    }
}

/// Markers in this process's memory.
pub struct LocalWrites {
    cache: Cache<String, i64>,
}

impl LocalWrites {
    pub fn new(ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(ttl)
                .build(),
        }
    }
}

#[async_trait]
impl RecentWrites for LocalWrites {
    async fn begin(&self, user: &str) -> Result<Option<i64>, StoreError> {
        let previous = self.cache.get(user);
        self.cache.insert(user.to_owned(), PENDING);
        Ok(previous)
    }

    async fn abort(&self, user: &str, previous: Option<i64>) -> Result<(), StoreError> {
        if self.cache.get(user) == Some(PENDING) {
            match previous {
                Some(v) => self.cache.insert(user.to_owned(), v),
                None => self.cache.invalidate(user),
            }
        }
        Ok(())
    }

    async fn commit(&self, user: &str, committed_at_ms: i64) -> Result<(), StoreError> {
        self.cache.insert(user.to_owned(), committed_at_ms);
        Ok(())
    }

    async fn get(&self, user: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.cache.get(user))
    }
}
