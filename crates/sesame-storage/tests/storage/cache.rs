//! Redis: sessions shared by instances, the GCRA rate limiter and the
//! shared limit store with its in-process fallback.

use super::POLL;
use chrono::Utc;
use sesame_domain::ratelimit::{Decision, LimitStore, Rate};
use sesame_domain::{Session, SessionToken};
use sesame_storage::StorageConfig;
use sesame_testkit::{eventually, redis, require, PrivateRedis};
use std::time::{Duration, Instant};

#[tokio::test]
async fn sessions_in_redis_are_shared_hashed_expiring_and_revocable() {
    let redis = require!(redis::redis_url());
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        database_url: format!("sqlite:{}", dir.path().join("db").display()),
        cache_url: Some(redis.clone()),
        cache_namespace: redis::namespace(),
        ..StorageConfig::default()
    };
    // Two instances over the same Redis.
    let a = sesame_storage::open(&config).await.unwrap();
    let b = sesame_storage::open(&config).await.unwrap();
    // Stored with millisecond precision.
    let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let mk = |user_id, ttl| {
        let token = SessionToken::generate();
        let s = Session {
            token_hash: token.hash(),
            user_id,
            username: format!("u{user_id}"),
            created_at: now,
            expires_at: now + ttl,
        };
        (token, s)
    };
    let (t1, s1) = mk(1, chrono::Duration::hours(1));
    let (t2, s2) = mk(1, chrono::Duration::hours(2));
    let (t3, s3) = mk(2, chrono::Duration::hours(1));
    let (t4, s4) = mk(2, chrono::Duration::milliseconds(300));
    for s in [&s1, &s2, &s3, &s4] {
        a.sessions.create(s).await.unwrap();
    }
    assert_eq!(
        b.sessions.find(&t1.hash(), now).await.unwrap(),
        Some(s1.clone())
    );
    // Only hashes are stored.
    let keys = std::process::Command::new("redis-cli")
        .args([
            "-u",
            &redis,
            "--scan",
            "--pattern",
            &format!("{}:*", config.cache_namespace),
        ])
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&keys.stdout);
    assert!(keys.contains(&s1.token_hash.to_hex()), "{keys}");
    assert!(!keys.contains(t1.as_str()));
    // Expiry: by the clock passed in, and by Redis itself.
    assert!(b
        .sessions
        .find(&t1.hash(), now + chrono::Duration::hours(3))
        .await
        .unwrap()
        .is_none());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.sessions.find(&t4.hash(), now).await.unwrap().is_none());
    // Revocation on one instance is seen by the other at once.
    b.sessions.revoke(&t3.hash()).await.unwrap();
    assert!(a.sessions.find(&t3.hash(), now).await.unwrap().is_none());
    assert_eq!(a.sessions.revoke_all(1).await.unwrap(), 2);
    assert!(b.sessions.find(&t1.hash(), now).await.unwrap().is_none());
    assert!(b.sessions.find(&t2.hash(), now).await.unwrap().is_none());
    // Another namespace sees nothing.
    let other = sesame_storage::open(&StorageConfig {
        cache_namespace: redis::namespace(),
        ..config.clone()
    })
    .await
    .unwrap();
    a.sessions.create(&s1).await.unwrap();
    assert!(other
        .sessions
        .find(&t1.hash(), now)
        .await
        .unwrap()
        .is_none());
    a.sessions.ready().await.unwrap();
}

#[tokio::test]
async fn the_redis_rate_limiter_is_gcra_shared_by_instances() {
    let redis = require!(redis::redis_url());
    let ns = redis::namespace();
    let a = sesame_storage::RedisRateLimiter::connect(&redis, &ns)
        .await
        .unwrap();
    let b = sesame_storage::RedisRateLimiter::connect(&redis, &ns)
        .await
        .unwrap();
    // 2 per second, bursts of 3, counted across both instances.
    let rate = Rate::per_second(2.0, 3);
    let t0 = Utc::now().timestamp_millis();
    let mut allowed = 0;
    for n in 0..5 {
        let limiter = if n % 2 == 0 { &a } else { &b };
        match limiter
            .check("ip:203.0.113.9", rate, t0, true)
            .await
            .unwrap()
        {
            Decision::Allow => allowed += 1,
            Decision::Deny { retry_after } => {
                assert_eq!(retry_after, Duration::from_millis(500), "one interval");
            }
        }
    }
    assert_eq!(allowed, 3);
    // Other keys are independent.
    let other = a.check("ip:198.51.100.1", rate, t0, true).await.unwrap();
    assert_eq!(other, Decision::Allow);
    // The rate refills: one more after one interval, not two.
    let later = t0 + 500;
    assert_eq!(
        b.check("ip:203.0.113.9", rate, later, true).await.unwrap(),
        Decision::Allow
    );
    assert!(matches!(
        a.check("ip:203.0.113.9", rate, later, true).await.unwrap(),
        Decision::Deny { .. }
    ));
    // A check that only looks (consume = false) never spends.
    let fresh = Rate::per_second(1.0, 1);
    for _ in 0..3 {
        assert_eq!(
            a.check("peek", fresh, t0, false).await.unwrap(),
            Decision::Allow
        );
    }
}

#[tokio::test]
async fn redis_limit_store_matches_the_domain_gcra_and_falls_back_when_redis_is_down() {
    use sesame_domain::ratelimit::{Decision, LimitStore, Rate};
    let redis = require!(PrivateRedis::start());
    let ns = redis::namespace();
    let a = sesame_storage::RedisRateLimiter::connect(&redis.url(), &ns)
        .await
        .unwrap();
    let b = sesame_storage::RedisRateLimiter::connect(&redis.url(), &ns)
        .await
        .unwrap();
    let rate = Rate::per_second(10.0, 3);
    let now = 1_000_000;
    // The caller's clock: three at once, shared by both instances, then
    // one per 100 ms.
    for store in [&a, &b, &a] {
        assert_eq!(
            store.check("ip:1", rate, now, true).await.unwrap(),
            Decision::Allow
        );
    }
    assert_eq!(
        b.check("ip:1", rate, now, true).await.unwrap(),
        Decision::Deny {
            retry_after: Duration::from_millis(100)
        }
    );
    assert_eq!(
        a.check("ip:1", rate, now + 100, false).await.unwrap(),
        Decision::Allow
    );
    assert_eq!(
        a.check("ip:1", rate, now + 100, true).await.unwrap(),
        Decision::Allow
    );
    // Charged failures push the next allowed time out.
    b.charge("user:x", rate, now).await.unwrap();
    b.charge("user:x", rate, now).await.unwrap();
    b.charge("user:x", rate, now).await.unwrap();
    assert!(matches!(
        a.check("user:x", rate, now, true).await.unwrap(),
        Decision::Deny { .. }
    ));
    a.remember("known:x|ip", Duration::from_secs(60), now)
        .await
        .unwrap();
    assert!(b.remembers("known:x|ip", now + 1000).await.unwrap());
    assert!(!b.remembers("known:x|ip", now + 61_000).await.unwrap());
    assert!(!b.remembers("known:y|ip", now).await.unwrap());

    // Redis down: the shared limits fall back to in-process ones.
    let shared = sesame_storage::SharedLimits::new(a.clone());
    redis.kill();
    assert!(a.check("ip:2", rate, now, true).await.is_err());
    let t = Instant::now();
    for _ in 0..3 {
        assert_eq!(
            shared.check("ip:2", rate, now, true).await.unwrap(),
            Decision::Allow
        );
    }
    assert!(matches!(
        shared.check("ip:2", rate, now, true).await.unwrap(),
        Decision::Deny { .. }
    ));
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    redis.restart().unwrap();
    let a2 = a.clone();
    eventually(Duration::from_secs(5), POLL, "Redis limits again", || {
        let a2 = a2.clone();
        async move { a2.check("ip:3", rate, now, true).await.is_ok() }
    })
    .await;
}
