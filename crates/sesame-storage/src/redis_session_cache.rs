//! An in-process cache of live sessions in front of Redis (`--cache`): a
//! session check is a hash-map lookup instead of a round trip, and a
//! revocation on any instance is refused by every instance within
//! [`BOUND`].
//!
//! - Every revocation publishes the token hashes it revoked on the channel
//!   `{ns}:revoked`, in the same round trip as the deletion and before its
//!   replica acknowledgement (see `RedisSessions`).
//! - A subscriber task holds a pub/sub connection of its own to the server
//!   the commands go to (behind Sentinel, the current master: it moves with
//!   them after a failover), and drops each hash it hears from the cache.
//! - It also PINGs on that connection every [`PING_EVERY`]. Redis answers a
//!   PING only after it has sent every message published before it, so once
//!   the answer to a PING sent at P has been read, and the messages before
//!   it handled, every revocation acknowledged before P has been applied. A
//!   check at T answers from the cache only if such a P is at or after
//!   T - [`BOUND`]; otherwise (the channel down, Redis slow or paused, the
//!   task starved) it reads Redis: never a stale accept, and with Redis
//!   down the check fails closed as without the cache.
//! - Every (re)subscription starts a new generation: entries cached under an
//!   older one are misses (revocations may have been published while
//!   nobody listened).
//! - A read can find a session whose revocation message arrives before the
//!   session is cached. Each entry carries the revocation generation of its
//!   token's slot (the same [`Revocations`] as the SQLite cache), read
//!   before Redis was; every message bumps the slots of its hashes, so such
//!   an entry is a miss, however long the read took.

use crate::redis_store::{RedisSessions, REVOKED_CHANNEL};
use crate::revocations::Revocations;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::{FutureExt, StreamExt};
use moka::sync::Cache;
use redis::aio::{PubSub, PubSubSink};
use redis::{Msg, RedisResult, Value};
use sesame_domain::{Session, SessionStore, StoreError, TokenHash};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a revoked session may still be accepted from the cache of
/// another instance after its revocation was acknowledged.
pub const BOUND: Duration = Duration::from_millis(50);
/// How often the subscriber proves that the channel is live: well under
/// [`BOUND`], so that a round trip's worth of delay still leaves hits.
pub const PING_EVERY: Duration = Duration::from_millis(10);
/// The pause before subscribing again after the channel was lost.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(100);

/// Sessions in Redis, with the ones checked here cached in process.
pub struct RedisCachedSessions {
    inner: RedisSessions,
    local: Arc<Local>,
    subscriber: tokio::task::AbortHandle,
}

impl RedisCachedSessions {
    /// A cache of at most `capacity` sessions over `inner`, and its
    /// subscriber task (stopped when this is dropped). Call within a Tokio
    /// runtime.
    pub fn new(inner: RedisSessions, capacity: u64) -> Self {
        let local = Arc::new(Local::new(capacity));
        let subscriber = tokio::spawn(listen(
            Arc::clone(&local),
            inner.redis().clone(),
            inner.redis().channel(REVOKED_CHANNEL),
        ))
        .abort_handle();
        Self {
            inner,
            local,
            subscriber,
        }
    }

    /// Whether a check may answer from the cache now (the channel has been
    /// proved live within [`BOUND`]).
    pub fn listening(&self) -> bool {
        self.local.fresh(Instant::now())
    }
}

impl Drop for RedisCachedSessions {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

#[async_trait]
impl SessionStore for RedisCachedSessions {
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
        if let Some(s) = self.local.hit(token_hash, Instant::now()) {
            return Ok(s.is_live(now).then_some(s));
        }
        // Read before Redis is: a revocation heard after this makes the
        // entry a miss.
        let tags = self.local.tags(token_hash);
        let found = self.inner.find(token_hash, now).await?;
        match &found {
            Some(s) => self.local.cache.insert(*token_hash, (s.clone(), tags)),
            None => self.local.cache.invalidate(token_hash),
        }
        Ok(found)
    }

    async fn revoke(&self, token_hash: &TokenHash) -> Result<(), StoreError> {
        // Refused here at once, before this instance hears its own message;
        // and also when the revocation fails, since it may have happened.
        self.local.forget(token_hash);
        self.inner.revoke(token_hash).await
    }

    async fn revoke_all(&self, user_id: i64) -> Result<u64, StoreError> {
        let (n, hashes) = self.inner.revoke_all_listed(user_id).await?;
        for hash in hashes.iter().filter_map(|h| parse_hex(h)) {
            self.local.forget(&hash);
        }
        Ok(n)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready().await
    }
}

/// What a cached session was read under: the subscription generation and
/// its token slot's revocation generation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Tags {
    subscription: u64,
    revocations: u64,
}

/// The cache and what the subscriber tells it; shared with the subscriber
/// task.
struct Local {
    cache: Cache<TokenHash, (Session, Tags)>,
    revocations: Revocations,
    /// Bumped on every (re)subscription.
    subscription: AtomicU64,
    /// When the PING last answered on the channel was sent, in nanoseconds
    /// since `epoch`, plus one; 0 when none has been answered on this
    /// subscription.
    heard_up_to: AtomicU64,
    epoch: Instant,
}

impl Local {
    fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                // Expiry itself is checked on every read.
                .time_to_idle(Duration::from_secs(2 * 60))
                .build(),
            revocations: Revocations::private().expect("an anonymous memory mapping of 32 KiB"),
            subscription: AtomicU64::new(0),
            heard_up_to: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64 + 1
    }

    /// Whether every revocation acknowledged before `at` - BOUND has been
    /// heard.
    fn fresh(&self, at: Instant) -> bool {
        let heard = self.heard_up_to.load(Ordering::Acquire);
        heard != 0 && heard + BOUND.as_nanos() as u64 >= self.since_epoch(at)
    }

    /// The cached session for a check that started at `at`, if the cache
    /// may answer it.
    fn hit(&self, token: &TokenHash, at: Instant) -> Option<Session> {
        // The channel's freshness first: the revocations it vouches for were
        // applied before it was stored, so the loads after it see them.
        if !self.fresh(at) {
            return None;
        }
        let (session, tags) = self.cache.get(token)?;
        (tags == self.tags(token)).then_some(session)
    }

    fn tags(&self, token: &TokenHash) -> Tags {
        Tags {
            subscription: self.subscription.load(Ordering::Acquire),
            revocations: self.revocations.current(token),
        }
    }

    /// A revocation of `token` was heard (or made here).
    fn forget(&self, token: &TokenHash) {
        // The bump is what a read in flight cannot miss; the invalidation
        // only frees the memory.
        self.revocations.bump(token);
        self.cache.invalidate(token);
    }

    /// The channel lost: no hits until a new subscription proves itself.
    fn deaf(&self) {
        self.heard_up_to.store(0, Ordering::Release);
    }

    /// A new subscription is confirmed: what was cached before it is stale.
    fn subscribed(&self) {
        self.deaf();
        self.subscription.fetch_add(1, Ordering::AcqRel);
    }

    /// The answer to a PING sent at `sent` has been read, and every
    /// message before it handled.
    fn heard(&self, sent: Instant) {
        self.heard_up_to
            .store(self.since_epoch(sent), Ordering::Release);
    }

    fn message(&self, msg: &Msg) {
        let Ok(payload) = msg.get_payload::<String>() else {
            return;
        };
        for hash in payload.split_ascii_whitespace().filter_map(parse_hex) {
            self.forget(&hash);
        }
    }
}

fn parse_hex(hex: &str) -> Option<TokenHash> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(TokenHash(bytes))
}

/// The subscriber: subscribes, listens until the channel is lost, and
/// subscribes again, for as long as the cache lives.
async fn listen(local: Arc<Local>, redis: crate::RedisConn, channel: String) {
    // Logged once per outage, not once per attempt.
    let mut lost: Option<String> = None;
    loop {
        match redis.subscribe(&channel).await {
            Ok((pubsub, superseded)) => {
                local.subscribed();
                metrics::gauge!("sesame_session_cache_channel_up").set(1.0);
                if lost.take().is_some() {
                    tracing::info!(%channel, "session cache: revocation channel back");
                }
                let why = serve(&local, pubsub, superseded, redis.timeout()).await;
                local.deaf();
                metrics::gauge!("sesame_session_cache_channel_up").set(0.0);
                tracing::warn!(
                    %channel,
                    error = %why,
                    "session cache: revocation channel lost; session checks read Redis until it is back"
                );
                lost = Some(why);
            }
            Err(e) => {
                if lost.is_none() {
                    metrics::gauge!("sesame_session_cache_channel_up").set(0.0);
                    tracing::warn!(
                        %channel,
                        error = %e,
                        "session cache: cannot subscribe to the revocation channel; session checks read Redis"
                    );
                    lost = Some(e);
                }
            }
        }
        tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
    }
}

type Pong = Pin<Box<dyn Future<Output = RedisResult<Value>> + Send>>;

fn ping(sink: &PubSubSink) -> Pong {
    let mut sink = sink.clone();
    Box::pin(async move { sink.ping::<Value>().await })
}

/// The answer to the PING in flight; never, when there is none.
async fn answer(pong: &mut Option<Pong>) -> RedisResult<Value> {
    match pong {
        Some(pong) => pong.await,
        None => std::future::pending().await,
    }
}

/// Handles the messages of one subscription and PINGs on it, until it is
/// lost; answers why.
async fn serve(
    local: &Local,
    pubsub: PubSub,
    mut superseded: Pin<Box<dyn Future<Output = ()> + Send>>,
    timeout: Duration,
) -> String {
    let (sink, mut messages) = pubsub.split();
    let mut pong: Option<Pong> = None;
    let mut sent = Instant::now();
    let mut next = sent;
    loop {
        let wake = if pong.is_some() { sent + timeout } else { next };
        tokio::select! {
            biased;
            msg = messages.next() => match msg {
                Some(msg) => local.message(&msg),
                None => return "the connection closed".into(),
            },
            () = &mut superseded => return "the Redis master changed".into(),
            answered = answer(&mut pong) => {
                pong = None;
                if let Err(e) = answered {
                    return format!("PING failed: {e}");
                }
                // What Redis sent before the PONG is queued by now (the
                // connection's reader forwards messages in order): apply
                // it before vouching for it.
                while let Some(Some(msg)) = messages.next().now_or_never() {
                    local.message(&msg);
                }
                local.heard(sent);
                next = sent + PING_EVERY;
            }
            () = tokio::time::sleep_until(wake.into()) => {
                if pong.is_some() {
                    return format!("no answer to PING within {timeout:?}");
                }
                sent = Instant::now();
                pong = Some(ping(&sink));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(token: TokenHash) -> Session {
        let now = Utc::now();
        Session {
            token_hash: token,
            user_id: 1,
            username: "ada".into(),
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
        }
    }

    #[test]
    fn hashes_parse_back_from_hex() {
        let token = TokenHash([0xa7; 32]);
        assert_eq!(parse_hex(&token.to_hex()), Some(token));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"g".repeat(64)), None);
        assert_eq!(parse_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn hits_only_while_the_channel_is_fresh_and_on_the_same_subscription() {
        let local = Local::new(100);
        let token = TokenHash([1; 32]);
        local.subscribed();
        let tags = local.tags(&token);
        local.cache.insert(token, (session(token), tags));
        let now = Instant::now();
        assert!(local.hit(&token, now).is_none(), "no PONG yet");
        local.heard(now);
        assert!(local.hit(&token, now).is_some());
        assert!(local.hit(&token, now + BOUND).is_some());
        assert!(
            local
                .hit(&token, now + BOUND + Duration::from_millis(1))
                .is_none(),
            "the last PONG is older than the bound"
        );
        local.subscribed();
        local.heard(now);
        assert!(
            local.hit(&token, now).is_none(),
            "cached under the previous subscription"
        );
    }

    #[test]
    fn a_session_read_before_its_revocation_was_heard_is_never_a_hit() {
        let local = Local::new(100);
        let (token, other) = (TokenHash([2; 32]), TokenHash([3; 32]));
        local.subscribed();
        // A check reads Redis and finds the session; its revocation's
        // message is handled before the check caches what it read.
        let tags = local.tags(&token);
        let other_tags = local.tags(&other);
        local.forget(&token);
        local.cache.insert(token, (session(token), tags));
        local.cache.insert(other, (session(other), other_tags));
        local.heard(Instant::now());
        assert!(local.hit(&token, Instant::now()).is_none());
        assert!(local.hit(&other, Instant::now()).is_some());
    }
}
