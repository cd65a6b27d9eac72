//! An in-process cache of live sessions in front of a slower session store:
//! a session check is a hash-map lookup instead of a database read.
//! Revocations go through this cache, so within one process it never serves
//! a revoked session.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moka::sync::Cache;
use sesame_domain::{Session, SessionStore, StoreError, TokenHash};
use std::sync::Arc;
use std::time::Duration;

pub struct CachedSessions {
    inner: Arc<dyn SessionStore>,
    cache: Cache<TokenHash, Session>,
}

impl CachedSessions {
    pub fn new(inner: Arc<dyn SessionStore>, capacity: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            // Entries are dropped well before any session could outlive
            // them; expiry itself is checked on every read.
            .time_to_idle(Duration::from_secs(2 * 60))
            .support_invalidation_closures()
            .build();
        Self { inner, cache }
    }
}

#[async_trait]
impl SessionStore for CachedSessions {
    async fn create(&self, session: &Session) -> Result<(), StoreError> {
        // Cached when first checked, not here: sessions nobody checks never
        // take memory.
        self.inner.create(session).await
    }

    async fn find(
        &self,
        token_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        if let Some(s) = self.cache.get(token_hash) {
            return Ok(s.is_live(now).then_some(s));
        }
        let found = self.inner.find(token_hash, now).await?;
        if let Some(s) = &found {
            self.cache.insert(*token_hash, s.clone());
        }
        Ok(found)
    }

    // Invalidate after the store has forgotten the session: a concurrent
    // miss can then no longer bring it back into the cache.
    async fn revoke(&self, token_hash: &TokenHash) -> Result<(), StoreError> {
        self.inner.revoke(token_hash).await?;
        self.cache.invalidate(token_hash);
        Ok(())
    }

    async fn revoke_all(&self, user_id: i64) -> Result<u64, StoreError> {
        let revoked = self.inner.revoke_all(user_id).await?;
        self.cache
            .invalidate_entries_if(move |_, s| s.user_id == user_id)
            .map_err(|e| StoreError::Other(e.to_string()))?;
        Ok(revoked)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready().await
    }
}
