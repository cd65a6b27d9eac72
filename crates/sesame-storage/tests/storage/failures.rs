//! Servers that fail: Redis down, the primary hung, crashed and back, the
//! replica gone, nothing there at all. Answers come fast and fail closed;
//! recovery needs no restart.

use super::{hour_session, new_user, observed, on_replica, user, POLL};
use chrono::Utc;
use sesame_domain::ratelimit::{Decision, LimitStore, Rate};
use sesame_domain::{DbRole, StoreError};
use sesame_storage::StorageConfig;
use sesame_testkit::{eventually, mariadb, redis, require, PrivateRedis, Topology};
use std::time::{Duration, Instant};

#[tokio::test]
async fn redis_down_fails_closed_within_a_second_and_recovers_by_itself() {
    let topology = require!(mariadb::shared());
    let redis = require!(PrivateRedis::start());
    let (_, stack) = require!(
        observed(
            topology,
            &[&topology.replica],
            Duration::from_secs(5),
            Some(redis.url())
        )
        .await
    );
    let stores = &stack.stores;
    let limiter = stack.rate_limiter.clone().unwrap();
    let ivy = stores.users.create(new_user("ivy", "$i")).await.unwrap();
    let (token, session) = hour_session(ivy.id, "ivy");
    let now = session.created_at;
    stores.sessions.create(&session).await.unwrap();

    redis.kill();
    let t = Instant::now();
    assert!(matches!(
        stores.sessions.find(&token.hash(), now).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        stores.sessions.create(&session).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        stores.sessions.ready().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(limiter
        .check("k", Rate::per_second(1.0, 1), 0, true)
        .await
        .is_err());
    // A write whose read-your-writes cannot be guaranteed is not made.
    assert!(matches!(
        stores.users.create(new_user("jack", "$j")).await,
        Err(StoreError::Unavailable(_))
    ));
    let r = stores
        .users
        .set_password_hash(ivy.id, None, "$i2", Utc::now())
        .await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "each call answered within its deadline"
    );
    // Lookups still work, from the primary (markers unknown).
    let (found, role) = stores.users.find_for_login(&user("ivy")).await.unwrap();
    assert_eq!(
        (&*found.unwrap().password_hash, role),
        ("$i", DbRole::Primary)
    );

    redis.restart().unwrap();
    let sessions = stores.sessions.clone();
    eventually(Duration::from_secs(5), POLL, "sessions work again", || {
        let sessions = sessions.clone();
        let session = session.clone();
        async move { sessions.create(&session).await.is_ok() }
    })
    .await;
    assert!(stores
        .sessions
        .find(&token.hash(), now)
        .await
        .unwrap()
        .is_some());
    stores.users.create(new_user("jack", "$j")).await.unwrap();
    let now_ms = Utc::now().timestamp_millis();
    assert_eq!(
        limiter
            .check("k", Rate::per_second(1.0, 1), now_ms, true)
            .await
            .unwrap(),
        Decision::Allow
    );
}

#[tokio::test]
async fn primary_failure_reads_go_on_writes_refused_fast_then_recovery() {
    // Servers of its own: this test kills them.
    let topology = require!(Topology::start());
    let redis = require!(redis::redis_url());
    let (schema, stack) = require!(
        observed(
            &topology,
            &[&topology.replica],
            Duration::from_secs(5),
            Some(redis)
        )
        .await
    );
    let stores = &stack.stores;
    mariadb::wait_for_heartbeat(&topology.replica, &schema, Duration::from_secs(10));
    stores
        .users
        .import(&[new_user("kim", "$k"), new_user("lee", "$l")])
        .await
        .unwrap();
    eventually(Duration::from_secs(5), POLL, "kim on the replica", || {
        on_replica(&stores.users, "kim")
    })
    .await;
    let lee = stores
        .users
        .find_for_login(&user("lee"))
        .await
        .unwrap()
        .0
        .unwrap();

    // A hung primary (SIGSTOP): writes answer Unavailable within a second.
    topology.primary.freeze();
    let t = Instant::now();
    let r = stores.users.create(new_user("mia", "$m")).await;
    let took = t.elapsed();
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let (found, role) = stores.users.find_for_login(&user("kim")).await.unwrap();
    assert_eq!((found.is_some(), role), (true, DbRole::Replica));
    topology.primary.thaw();

    // A crashed primary (kill -9): logins from the replica go on, writes
    // are refused at once with a clear message.
    topology.primary.kill();
    for _ in 0..10 {
        let t = Instant::now();
        let (found, role) = stores.users.find_for_login(&user("kim")).await.unwrap();
        assert_eq!((found.is_some(), role), (true, DbRole::Replica));
        assert!(t.elapsed() < Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Instant::now();
    match stores
        .users
        .set_password_hash(lee.id, None, "$l2", Utc::now())
        .await
    {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("primary"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        stores.users.create(new_user("mia", "$m")).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(t.elapsed() < Duration::from_secs(3));
    // Still ready: logins can be served.
    stores.users.ready().await.unwrap();
    let store = stack.mysql.clone();
    eventually(Duration::from_secs(2), POLL, "primary seen down", || {
        let store = store.clone();
        async move { !store.primary_up() }
    })
    .await;
    assert!(
        store.replica_status()[0].usable,
        "a caught-up replica stays usable: {:?}",
        store.replica_status()
    );

    // The primary returns: writes work again, without reopening anything.
    topology.primary.restart().unwrap();
    let users = stores.users.clone();
    eventually(Duration::from_secs(5), POLL, "writes work again", || {
        let users = users.clone();
        async move { users.create(new_user("mia", "$m")).await.is_ok() }
    })
    .await;
    stores
        .users
        .set_password_hash(lee.id, None, "$l2", Utc::now())
        .await
        .unwrap();
    assert_eq!(
        &*stores
            .users
            .find_for_login(&user("lee"))
            .await
            .unwrap()
            .0
            .unwrap()
            .password_hash,
        "$l2"
    );
    let store = stack.mysql.clone();
    eventually(Duration::from_secs(10), POLL, "replication resumed", || {
        let store = store.clone();
        async move { store.primary_up() && store.replica_status()[0].usable }
    })
    .await;

    // The replica dies: reads move to the primary; it returns: back to it.
    topology.replica.kill();
    let (found, role) = stores.users.find_for_login(&user("kim")).await.unwrap();
    assert_eq!((found.is_some(), role), (true, DbRole::Primary));
    let (_, role) = stores.users.find_for_login(&user("kim")).await.unwrap();
    assert_eq!(role, DbRole::Primary);
    topology.replica.restart().unwrap();
    eventually(
        Duration::from_secs(10),
        POLL,
        "reads back on the replica",
        || on_replica(&stores.users, "kim"),
    )
    .await;
}

#[tokio::test]
async fn everything_down_is_a_quick_unavailable_not_a_hang() {
    // Nothing listens on these ports.
    let dead = |port: u16| format!("mysql://root@127.0.0.1:{port}/nothing");
    let config = StorageConfig {
        database_url: dead(1),
        replicas: vec![dead(2)],
        ..StorageConfig::default()
    };
    let stores = sesame_storage::open(&config)
        .await
        .expect("opens with servers down");
    let t = Instant::now();
    let r = stores.users.find_for_login(&user("x")).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(matches!(
        stores.users.ready().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(matches!(
        sesame_storage::migrate(&config).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_replica_that_missed_the_last_writes_leaves_rotation_while_the_primary_is_down() {
    // Servers of its own: this test kills the primary.
    let topology = require!(Topology::start());
    let missed = require!(topology.add_delayed_replica(0));
    let (schema, stack) = require!(
        observed(
            &topology,
            &[&topology.replica, &missed],
            Duration::from_secs(1),
            None
        )
        .await
    );
    let stores = &stack.stores;
    let store = stack.mysql.clone();
    mariadb::wait_for_heartbeat(&missed, &schema, Duration::from_secs(10));
    eventually(Duration::from_secs(5), POLL, "both replicas in use", || {
        let store = store.clone();
        async move { store.replica_status().iter().all(|r| r.usable) }
    })
    .await;

    // One replica stops receiving, a user registers (the other replica has
    // her), and the primary dies at once: the replica that missed her is
    // only milliseconds behind the freshest one.
    missed.sql("STOP SLAVE").unwrap();
    stores.users.create(new_user("noa", "$n")).await.unwrap();
    topology.primary.kill();
    eventually(Duration::from_secs(3), POLL, "primary seen down", || {
        let store = store.clone();
        async move { !store.primary_up() }
    })
    .await;

    // Once her recent-write marker has expired, no lookup may reach the
    // replica that lacks her: it has left the rotation, the other serves.
    tokio::time::sleep(store.settings().marker_ttl()).await;
    for _ in 0..10 {
        let (found, role) = stores.users.find_for_login(&user("noa")).await.unwrap();
        assert_eq!((found.is_some(), role), (true, DbRole::Replica));
    }
    let status = store.replica_status();
    assert!(
        status[0].usable && !status[1].usable,
        "the caught-up replica in rotation, the one that missed writes out: {status:?}"
    );
}
