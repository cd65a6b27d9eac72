//! Redis behind Sentinel (`redis+sentinel://`): a master, a replica and
//! three sentinels of the test's own. The master crashes and sesame follows
//! the failover by itself; revocations wait for a replica (`WAIT`) and fail
//! closed when none acknowledges them.

use super::{hour_session, migrated, new_user, POLL};
use chrono::Utc;
use sesame_domain::StoreError;
use sesame_storage::markers::RecentWrites;
use sesame_storage::redis_store::{RedisConn, RedisWrites};
use sesame_storage::{StorageConfig, Stores};
use sesame_testkit::{eventually, mariadb, redis, require, RedisSentinels};
use std::time::{Duration, Instant};

/// The deadline of one Redis command (`StorageConfig::timeout`, capped at
/// 500 ms for Redis), and the slack a loaded test machine gets on top.
const DEADLINE: Duration = Duration::from_millis(500);
const SLACK: Duration = Duration::from_millis(700);

/// Stores on an SQLite file of their own, with the sessions behind the
/// sentinels of `redis`.
async fn open(
    redis: &RedisSentinels,
    dir: &tempfile::TempDir,
    namespace: &str,
    replica_acks: Option<u32>,
) -> Stores {
    sesame_storage::open(&StorageConfig {
        database_url: format!("sqlite:{}", dir.path().join("db").display()),
        cache_url: Some(redis.url()),
        cache_namespace: namespace.to_owned(),
        cache_replica_acks: replica_acks,
        ..StorageConfig::default()
    })
    .await
    .unwrap()
}

#[track_caller]
fn assert_not_acknowledged<T: std::fmt::Debug>(r: Result<T, StoreError>, started: Instant) {
    assert!(
        matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("not acknowledged by a Redis replica")),
        "{r:?}"
    );
    assert!(
        started.elapsed() < DEADLINE + SLACK,
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sessions_survive_a_master_crash_through_the_same_store() {
    let redis = require!(RedisSentinels::start());
    let dir = tempfile::tempdir().unwrap();
    let stores = open(&redis, &dir, &redis::namespace(), None).await;
    let sessions = &stores.sessions;
    let (kept, kept_session) = hour_session(1, "ada");
    let (revoked, revoked_session) = hour_session(1, "ada");
    sessions.create(&kept_session).await.unwrap();
    sessions.create(&revoked_session).await.unwrap();
    let now = Utc::now();
    assert!(sessions.find(&kept.hash(), now).await.unwrap().is_some());
    // Acknowledged by the replica (WAIT), and so, on the same connection,
    // are the sessions created before it.
    sessions.revoke(&revoked.hash()).await.unwrap();
    assert!(sessions.find(&revoked.hash(), now).await.unwrap().is_none());

    redis.master.kill();
    // While the sentinels fail over, commands fail closed within their
    // deadline; none hangs, and none finds the revoked session.
    let started = Instant::now();
    let r = sessions.find(&revoked.hash(), now).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(
        started.elapsed() < DEADLINE + SLACK,
        "{:?}",
        started.elapsed()
    );

    // The same store follows the failover by itself.
    let (fresh, fresh_session) = hour_session(2, "bob");
    let failover = Instant::now();
    eventually(
        Duration::from_secs(20),
        POLL,
        "a session stored after the failover",
        || {
            let started = Instant::now();
            let create = sessions.create(&fresh_session);
            async move {
                let r = create.await;
                assert!(
                    started.elapsed() < DEADLINE + SLACK,
                    "{:?}",
                    started.elapsed()
                );
                match r {
                    Ok(()) => true,
                    Err(StoreError::Unavailable(_)) => false,
                    Err(e) => panic!("{e}"),
                }
            }
        },
    )
    .await;
    eprintln!(
        "sessions stored again {:?} after the crash",
        failover.elapsed()
    );
    assert_eq!(redis.replica.role(), "master", "the replica was promoted");
    let now = Utc::now();
    assert!(sessions.find(&fresh.hash(), now).await.unwrap().is_some());
    assert!(sessions.find(&kept.hash(), now).await.unwrap().is_some());
    assert!(
        sessions.find(&revoked.hash(), now).await.unwrap().is_none(),
        "a session revoked before the failover is accepted after it"
    );
    stores.sessions.ready().await.unwrap();

    // The new master has no replica left (the old master is dead): a logout
    // cannot be acknowledged, so it fails closed, within its deadline.
    let started = Instant::now();
    assert_not_acknowledged(sessions.revoke(&kept.hash()).await, started);
    // The deletion itself was made on the master.
    assert!(sessions.find(&kept.hash(), now).await.unwrap().is_none());
}

#[tokio::test]
async fn revocations_fail_closed_without_a_replica_to_acknowledge_them() {
    let redis = require!(RedisSentinels::start());
    let dir = tempfile::tempdir().unwrap();
    let ns = redis::namespace();
    // Sentinel's default: one replica must acknowledge.
    let acked = open(&redis, &dir, &ns, None).await;
    let unacked = open(&redis, &dir, &ns, Some(0)).await;
    let marker_ttl = Duration::from_secs(10);
    let acked_markers = RedisWrites::new(
        RedisConn::connect(&redis.url(), &ns, DEADLINE)
            .await
            .unwrap(),
        marker_ttl,
    );
    let unacked_markers = RedisWrites::new(
        RedisConn::connect_with_acks(&redis.url(), &ns, DEADLINE, Some(0))
            .await
            .unwrap(),
        marker_ttl,
    );
    let (one, s1) = hour_session(7, "cy");
    let (_, s2) = hour_session(7, "cy");
    for s in [&s1, &s2] {
        acked.sessions.create(s).await.unwrap();
    }
    // With the replica up, acknowledged revocations succeed.
    acked.sessions.revoke(&one.hash()).await.unwrap();
    assert_eq!(acked.sessions.revoke_all(7).await.unwrap(), 1);
    acked_markers.commit("cy", 1).await.unwrap();
    assert_eq!(acked_markers.get("cy").await.unwrap(), Some(1));

    redis.replica.freeze();
    // Session creation and the marker's begin do not wait.
    let (three, s3) = hour_session(7, "cy");
    let (four, s4) = hour_session(7, "cy");
    for s in [&s3, &s4] {
        acked.sessions.create(s).await.unwrap();
    }
    assert_eq!(acked_markers.begin("cy").await.unwrap(), Some(1));
    // The writes that promise something fail closed, within the deadline.
    let started = Instant::now();
    assert_not_acknowledged(acked.sessions.revoke(&three.hash()).await, started);
    let started = Instant::now();
    assert_not_acknowledged(acked.sessions.revoke_all(7).await, started);
    let started = Instant::now();
    assert_not_acknowledged(acked_markers.commit("cy", 2).await, started);
    let started = Instant::now();
    assert_not_acknowledged(acked_markers.abort("cy", Some(2)).await, started);

    // N = 0 (`--cache-replica-acks 0`): the same writes succeed.
    acked.sessions.create(&s3).await.unwrap();
    acked.sessions.create(&s4).await.unwrap();
    unacked.sessions.revoke(&three.hash()).await.unwrap();
    let now = Utc::now();
    assert!(unacked
        .sessions
        .find(&three.hash(), now)
        .await
        .unwrap()
        .is_none());
    assert!(unacked
        .sessions
        .find(&four.hash(), now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(unacked.sessions.revoke_all(7).await.unwrap(), 1);
    assert!(unacked
        .sessions
        .find(&four.hash(), now)
        .await
        .unwrap()
        .is_none());
    unacked_markers.commit("cy", 3).await.unwrap();
    unacked_markers.abort("cy", None).await.unwrap();

    // The replica back: acknowledged again.
    redis.replica.thaw();
    eventually(
        Duration::from_secs(10),
        POLL,
        "a revocation acknowledged",
        || async { acked.sessions.revoke(&three.hash()).await.is_ok() },
    )
    .await;
    acked_markers.commit("cy", 4).await.unwrap();
}

#[tokio::test]
async fn a_password_change_whose_marker_no_replica_has_is_not_acknowledged() {
    let topology = require!(mariadb::shared());
    let redis = require!(RedisSentinels::start());
    let (_, config) = require!(
        migrated(
            topology,
            &[&topology.replica],
            Duration::from_secs(5),
            Some(redis.url())
        )
        .await
    );
    let stores = sesame_storage::open(&config).await.unwrap();
    let dee = stores.users.create(new_user("dee", "$d1")).await.unwrap();
    stores
        .users
        .set_password_hash(dee.id, None, "$d2", Utc::now())
        .await
        .unwrap();

    redis.replica.freeze();
    // The primary has the new hash, but its marker may not survive a Redis
    // failover: the change is not reported done (503).
    let r = stores
        .users
        .set_password_hash(dee.id, None, "$d3", Utc::now())
        .await;
    assert!(
        matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("not acknowledged by a Redis replica")),
        "{r:?}"
    );
    redis.replica.thaw();
    eventually(
        Duration::from_secs(10),
        POLL,
        "a password change acknowledged",
        || async {
            stores
                .users
                .set_password_hash(dee.id, None, "$d4", Utc::now())
                .await
                .is_ok()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cache_follows_the_master_through_a_failover() {
    use sesame_domain::SessionStore;
    use sesame_storage::redis_session_cache::BOUND;
    use sesame_storage::{RedisCachedSessions, RedisSessions};
    use sesame_testkit::redis::SENTINEL_SERVICE;

    let redis = require!(RedisSentinels::start());
    let ns = redis::namespace();
    // No replica acknowledgements: the old master takes seconds to resync
    // as the new one's replica, and what is tested here is the channel.
    let instance = || async {
        let conn = RedisConn::connect_with_acks(&redis.url(), &ns, DEADLINE, Some(0))
            .await
            .unwrap();
        RedisCachedSessions::new(RedisSessions::new(conn), 1000)
    };
    let (a, b) = (instance().await, instance().await);
    let subscribers = |port: u16| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "client", "list", "type", "pubsub"])
            .output()
            .unwrap();
        // Not the sentinels' own (`name=sentinel-...`).
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.contains("name=sentinel"))
            .count()
    };
    eventually(Duration::from_secs(5), POLL, "both caches listen", || {
        let listening = a.listening() && b.listening();
        async move { listening }
    })
    .await;
    assert_eq!(subscribers(redis.master.port), 2);
    let (before, before_session) = hour_session(1, "ada");
    a.create(&before_session).await.unwrap();
    assert!(b.find(&before.hash(), Utc::now()).await.unwrap().is_some());

    // A failover the sentinels are asked for: the old master lives on as a
    // replica, so only following the sentinels moves the subscribers.
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.sentinels[0].port.to_string()])
        .args(["sentinel", "failover", SENTINEL_SERVICE])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    eventually(
        Duration::from_secs(20),
        POLL,
        "both caches listen on the new master",
        || {
            let moved = redis.replica.role() == "master"
                && subscribers(redis.replica.port) == 2
                && a.listening()
                && b.listening();
            async move { moved }
        },
    )
    .await;

    // Revocations on A reach B's cache through the new master, within the
    // bound; a session cached before the failover included.
    let (after, after_session) = hour_session(2, "bob");
    eventually(Duration::from_secs(10), POLL, "sessions stored", || async {
        a.create(&after_session).await.is_ok()
    })
    .await;
    for token in [&before, &after] {
        eventually(Duration::from_secs(10), POLL, "the session cached", || {
            let (b, hash) = (&b, token.hash());
            async move { b.find(&hash, Utc::now()).await.is_ok_and(|s| s.is_some()) }
        })
        .await;
        let revoked = Instant::now();
        eventually(Duration::from_secs(10), POLL, "revoked", || async {
            a.revoke(&token.hash()).await.is_ok()
        })
        .await;
        let acked = Instant::now();
        loop {
            let started = Instant::now();
            if b.find(&token.hash(), Utc::now()).await.unwrap().is_none() {
                break;
            }
            assert!(
                started - acked <= BOUND,
                "accepted {:?} after its revocation ({:?} to acknowledge it)",
                started - acked,
                acked - revoked
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
