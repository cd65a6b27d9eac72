//! An in-process cache of live sessions in front of the SQLite session
//! store: a session check is a hash-map lookup instead of a database read.
//!
//! A revocation must win over the cache whichever process made it (the
//! server's own logout, or `sesame user passwd` from the command line), so
//! every entry carries the revocation generation of its token's slot, read
//! before the database was (see [`Revocations`]); a hit whose generation has
//! moved on is a miss.

use crate::revocations::Revocations;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moka::sync::Cache;
use sesame_domain::{Session, SessionStore, StoreError, TokenHash};
use std::sync::Arc;
use std::time::Duration;

pub struct CachedSessions {
    inner: Arc<dyn SessionStore>,
    revocations: Arc<Revocations>,
    /// A session and the generation of its token's slot when it was read.
    cache: Cache<TokenHash, (Session, u64)>,
}

impl CachedSessions {
    /// A cache over `inner`, whose revocations (from any process) bump
    /// `revocations`.
    pub fn new(inner: Arc<dyn SessionStore>, revocations: Arc<Revocations>, capacity: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            // Entries are dropped well before any session could outlive
            // them; expiry itself is checked on every read.
            .time_to_idle(Duration::from_secs(2 * 60))
            .build();
        Self {
            inner,
            revocations,
            cache,
        }
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
        let generation = self.revocations.current(token_hash);
        if let Some((s, cached)) = self.cache.get(token_hash) {
            if cached == generation {
                return Ok(s.is_live(now).then_some(s));
            }
        }
        // Tagged with the generation read before the database: a revocation
        // committed after that read bumps past it, so the entry cannot
        // outlive the revocation.
        let found = self.inner.find(token_hash, now).await?;
        match &found {
            Some(s) => self.cache.insert(*token_hash, (s.clone(), generation)),
            None => self.cache.invalidate(token_hash),
        }
        Ok(found)
    }

    async fn revoke(&self, token_hash: &TokenHash) -> Result<(), StoreError> {
        self.inner.revoke(token_hash).await?;
        self.cache.invalidate(token_hash);
        Ok(())
    }

    async fn revoke_all(&self, user_id: i64) -> Result<u64, StoreError> {
        // The store bumps the slot of every session it removed: they are
        // misses from now on.
        self.inner.revoke_all(user_id).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready().await
    }
}
