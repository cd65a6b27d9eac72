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

// --- the in-process cache in front of Redis ---------------------------------
//
// Two instances (A and B) on a private Redis, so that its command counts are
// theirs alone. B caches what it checks; A revokes.

mod session_cache {
    use super::super::{hour_session, POLL};
    use chrono::Utc;
    use sesame_domain::{SessionStore, SessionToken, StoreError};
    use sesame_storage::redis_session_cache::BOUND;
    use sesame_storage::{RedisCachedSessions, RedisConn, RedisSessions};
    use sesame_testkit::{eventually, redis, require, PrivateRedis};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// How long a poll waits for a refusal before the test fails.
    const GIVE_UP: Duration = Duration::from_secs(2);

    async fn instance(url: &str, namespace: &str) -> RedisCachedSessions {
        let conn = RedisConn::connect(url, namespace, Duration::from_millis(500))
            .await
            .unwrap();
        RedisCachedSessions::new(RedisSessions::new(conn), 1000)
    }

    /// A and B on one namespace of `redis`, both listening.
    async fn pair(redis: &PrivateRedis) -> (RedisCachedSessions, RedisCachedSessions) {
        let ns = redis::namespace();
        let a = instance(&redis.url(), &ns).await;
        let b = instance(&redis.url(), &ns).await;
        wait_listening(&b).await;
        (a, b)
    }

    async fn wait_listening(c: &RedisCachedSessions) {
        eventually(Duration::from_secs(5), POLL, "the cache listens", || {
            let listening = c.listening();
            async move { listening }
        })
        .await;
    }

    fn redis_cli(port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Commands Redis has run, but the subscribers' PINGs and the
    /// counting's own INFO.
    fn commands(port: u16) -> u64 {
        redis_cli(port, &["info", "commandstats"])
            .lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter(|l| !l.starts_with("ping:") && !l.starts_with("info:"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    /// Waits until `checks` checks of `token` on `c` in a row cost Redis no
    /// command: answered from the cache. (A hit needs a PONG younger than
    /// the bound; on a loaded machine a check may fall back now and then.)
    async fn served_from_cache(c: &RedisCachedSessions, token: &SessionToken, port: u16) {
        eventually(
            Duration::from_secs(10),
            POLL,
            "session checks answered from the cache",
            || {
                let before = commands(port);
                async move {
                    for _ in 0..100 {
                        let found = c.find(&token.hash(), Utc::now()).await.unwrap();
                        assert!(found.is_some());
                    }
                    commands(port) == before
                }
            },
        )
        .await;
    }

    /// Checks `tokens` on `c` every millisecond from `acked` on, until each
    /// is refused; the longest delay after `acked` before a refusal. Fails
    /// if one is accepted again after its refusal.
    async fn refused_within(
        c: &RedisCachedSessions,
        tokens: &[&SessionToken],
        acked: Instant,
    ) -> Duration {
        let mut longest = Duration::ZERO;
        for token in tokens {
            loop {
                let started = Instant::now();
                if c.find(&token.hash(), Utc::now()).await.unwrap().is_none() {
                    longest = longest.max(started - acked);
                    break;
                }
                assert!(
                    started - acked < GIVE_UP,
                    "a revoked session still accepted {:?} after its revocation",
                    started - acked
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        for _ in 0..20 {
            for token in tokens {
                let found = c.find(&token.hash(), Utc::now()).await.unwrap();
                assert!(found.is_none(), "accepted again after its refusal");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        longest
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cached_session_check_costs_no_redis_command() {
        let redis = require!(PrivateRedis::start());
        let (a, b) = pair(&redis).await;
        let (token, session) = hour_session(1, "ada");
        a.create(&session).await.unwrap();
        let before = commands(redis.port);
        let found = b.find(&token.hash(), Utc::now()).await.unwrap();
        assert_eq!(found.map(|s| s.username), Some("ada".into()));
        let read = commands(redis.port) - before;
        assert_eq!(read, 1, "the first check reads Redis: {read} commands");
        served_from_cache(&b, &token, redis.port).await;
        // Expiry is checked on every hit, by the clock passed in.
        let later = session.expires_at + chrono::Duration::seconds(1);
        let before = commands(redis.port);
        assert!(b.find(&token.hash(), later).await.unwrap().is_none());
        assert!(commands(redis.port) - before <= 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revocation_on_one_instance_is_refused_by_anothers_cache_within_the_bound() {
        let redis = require!(PrivateRedis::start());
        let (a, b) = pair(&redis).await;
        let mut delays = Vec::new();
        // Logouts.
        for n in 0..10 {
            let (token, session) = hour_session(n, "ada");
            a.create(&session).await.unwrap();
            served_from_cache(&b, &token, redis.port).await;
            a.revoke(&token.hash()).await.unwrap();
            let acked = Instant::now();
            delays.push(refused_within(&b, &[&token], acked).await);
            // The revoking instance refuses at once.
            assert!(a.find(&token.hash(), Utc::now()).await.unwrap().is_none());
        }
        // Password changes: every session of the user.
        for n in 0..5 {
            let user = 100 + n;
            let sessions: Vec<_> = (0..3).map(|_| hour_session(user, "bob")).collect();
            for (token, session) in &sessions {
                a.create(session).await.unwrap();
                served_from_cache(&b, token, redis.port).await;
                served_from_cache(&a, token, redis.port).await;
            }
            assert_eq!(a.revoke_all(user).await.unwrap(), 3);
            let acked = Instant::now();
            let tokens: Vec<_> = sessions.iter().map(|(t, _)| t).collect();
            delays.push(refused_within(&b, &tokens, acked).await);
            for token in &tokens {
                assert!(a.find(&token.hash(), Utc::now()).await.unwrap().is_none());
            }
        }
        let longest = delays.iter().max().unwrap();
        eprintln!("revocation refused by the other instance's cache after at most {longest:?} ({delays:?})");
        assert!(*longest <= BOUND, "{longest:?} > {BOUND:?}: {delays:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_the_channel_killed_a_revoked_session_is_never_accepted_then_hits_come_back() {
        let redis = require!(PrivateRedis::start());
        let (a, b) = pair(&redis).await;
        // One session B checks while its channel is down, one it checks
        // only once subscribed again.
        let (polled, polled_session) = hour_session(1, "ada");
        let (idle, idle_session) = hour_session(1, "ada");
        for (token, session) in [(&polled, &polled_session), (&idle, &idle_session)] {
            a.create(session).await.unwrap();
            served_from_cache(&b, token, redis.port).await;
        }

        // Both subscribers lose their connection: B never hears these
        // revocations.
        let killed = redis_cli(redis.port, &["client", "kill", "type", "pubsub"]);
        assert_eq!(killed.trim(), "2", "{killed}");
        a.revoke(&polled.hash()).await.unwrap();
        a.revoke(&idle.hash()).await.unwrap();
        let acked = Instant::now();
        // A check may hit within the bound of the revocation; none after it
        // may: they read Redis, which refuses.
        while acked.elapsed() < Duration::from_millis(500) {
            let started = Instant::now();
            let found = b.find(&polled.hash(), Utc::now()).await.unwrap();
            assert!(
                found.is_none() || started - acked <= BOUND,
                "accepted {:?} after the revocation, with the channel down",
                started - acked
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        // Subscribed again: what was cached before is stale, hits are back
        // for what is cached now.
        wait_listening(&b).await;
        assert!(
            b.find(&idle.hash(), Utc::now()).await.unwrap().is_none(),
            "a session revoked while the channel was down accepted from the cache"
        );
        let (fresh, fresh_session) = hour_session(2, "bob");
        a.create(&fresh_session).await.unwrap();
        served_from_cache(&b, &fresh, redis.port).await;
        a.revoke(&fresh.hash()).await.unwrap();
        let delay = refused_within(&b, &[&fresh], Instant::now()).await;
        assert!(delay <= BOUND, "{delay:?}");
    }

    /// SIGSTOP of a Redis server, undone when dropped (on a panic too).
    struct Frozen(String);

    impl Frozen {
        fn freeze(port: u16) -> Self {
            let info = redis_cli(port, &["info", "server"]);
            let pid = info
                .lines()
                .find_map(|l| l.strip_prefix("process_id:"))
                .expect("process_id in INFO server")
                .trim()
                .to_owned();
            signal("-STOP", &pid);
            Self(pid)
        }
    }

    impl Drop for Frozen {
        fn drop(&mut self) {
            signal("-CONT", &self.0);
        }
    }

    fn signal(signal: &str, pid: &str) {
        let status = Command::new("kill").args([signal, pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_redis_frozen_a_cached_session_fails_closed_then_hits_come_back() {
        let redis = require!(PrivateRedis::start());
        let (a, b) = pair(&redis).await;
        let (token, session) = hour_session(1, "ada");
        a.create(&session).await.unwrap();
        served_from_cache(&b, &token, redis.port).await;

        // Nothing that B cannot hear about may be accepted after the bound:
        // the checks go to Redis, and time out.
        let frozen = Frozen::freeze(redis.port);
        let since = Instant::now();
        let mut unavailable = 0;
        while since.elapsed() < Duration::from_millis(1500) {
            let started = Instant::now();
            match b.find(&token.hash(), Utc::now()).await {
                Ok(Some(_)) => assert!(
                    started - since <= BOUND,
                    "accepted from the cache {:?} after Redis froze",
                    started - since
                ),
                Ok(None) => panic!("a live session refused"),
                Err(StoreError::Unavailable(_)) => unavailable += 1,
                Err(e) => panic!("{e}"),
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(unavailable > 0);
        drop(frozen);

        wait_listening(&b).await;
        served_from_cache(&b, &token, redis.port).await;
    }
}
