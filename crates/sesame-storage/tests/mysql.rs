//! The MySQL/MariaDB + Redis adapters against real servers: a MariaDB
//! primary with replicas (binlog replication with GTID, MASTER_DELAY for
//! lag) started by `support`, and Redis. Each test has its own schema and
//! Redis namespace; the servers are shared by the tests of this binary, and
//! the tests that kill servers get their own.

mod support;

use chrono::Utc;
use sesame_domain::ratelimit::{Decision, LimitStore, Rate};
use sesame_domain::{DbRole, NewUser, Session, SessionToken, StoreError, Username};
use sesame_storage::{MySqlStore, StorageConfig, Stores};
use std::time::{Duration, Instant};
use support::{MariaDb, PrivateRedis, Topology};

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn new_user(name: &str, hash: &str) -> NewUser {
    NewUser {
        username: user(name),
        password_hash: hash.into(),
        created_at: Utc::now(),
    }
}

fn config(
    primary: &MariaDb,
    schema: &str,
    replicas: &[&MariaDb],
    max_lag: Duration,
) -> StorageConfig {
    StorageConfig {
        database_url: primary.url(schema),
        replicas: replicas.iter().map(|r| r.url(schema)).collect(),
        max_replica_lag: max_lag,
        cache_url: None,
        cache_namespace: support::namespace(),
        heartbeat_interval: Duration::from_millis(100),
        ..StorageConfig::default()
    }
}

/// A fresh schema on `topology`, migrated, and stores over it.
async fn open(
    topology: &Topology,
    replicas: &[&MariaDb],
    max_lag: Duration,
    redis: Option<String>,
) -> Result<(String, StorageConfig, Stores), String> {
    let schema = topology.schema()?;
    let mut config = config(&topology.primary, &schema, replicas, max_lag);
    config.cache_url = redis;
    sesame_storage::migrate(&config)
        .await
        .map_err(|e| e.to_string())?;
    let stores = sesame_storage::open(&config)
        .await
        .map_err(|e| e.to_string())?;
    Ok((schema, config, stores))
}

fn mysql(stores: &Stores) -> &MySqlStore {
    stores.mysql.as_ref().expect("a MySQL backend")
}

/// Polls `check` until it holds or `within` passes.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_login_lookup_is_one_point_read_on_the_unique_username_index() {
    let topology = require!(support::shared());
    let (schema, _, stores) = require!(open(topology, &[], Duration::from_secs(5), None).await);
    stores.users.create(new_user("alice", "$h1")).await.unwrap();
    stores.users.create(new_user("bob", "$h2")).await.unwrap();
    let explain = topology
        .primary
        .sql(&format!(
            "USE {schema}; EXPLAIN {}",
            sesame_storage::mysql::LOGIN_LOOKUP_SQL
                .replacen('?', "'alice'", 2)
                .replace('?', "'$decoy'")
        ))
        .unwrap();
    // id select_type table type possible_keys key key_len ref rows Extra;
    // the other rows are the decoy and the union of the two.
    let cols: Vec<&str> = explain
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|cols| cols.get(2) == Some(&"users"))
        .unwrap_or_else(|| panic!("no row reads users: {explain}"));
    assert_eq!(cols[2], "users", "{explain}");
    assert_eq!(cols[3], "const", "a unique point read: {explain}");
    assert_eq!(cols[5], "users_username", "{explain}");
    assert_eq!(cols[8], "1", "one row examined: {explain}");
    let unique = topology
        .primary
        .sql(&format!(
            "SELECT NON_UNIQUE FROM information_schema.statistics WHERE table_schema='{schema}' \
             AND table_name='users' AND index_name='users_username'"
        ))
        .unwrap();
    assert_eq!(unique.trim(), "0");
}

#[tokio::test]
async fn migrations_are_idempotent_and_the_store_round_trips_users() {
    let topology = require!(support::shared());
    let (_, config, stores) = require!(open(topology, &[], Duration::from_secs(5), None).await);
    sesame_storage::migrate(&config).await.unwrap();
    let users = &stores.users;

    let alice = users
        .create(new_user("Alice", "$argon2id$a"))
        .await
        .unwrap();
    assert!(matches!(
        users.create(new_user("alice", "$x")).await,
        Err(StoreError::Conflict)
    ));
    let (found, role) = users.find_for_login(&user("alice")).await.unwrap();
    assert_eq!(role, DbRole::Primary, "no replicas configured");
    let found = found.unwrap();
    assert_eq!(found.id, alice.id);
    assert_eq!(&*found.password_hash, "$argon2id$a");
    assert!(users.password_unchanged(&found).await.unwrap());

    users
        .set_password_hash(alice.id, "$argon2id$b", Utc::now())
        .await
        .unwrap();
    assert!(
        !users.password_unchanged(&found).await.unwrap(),
        "a login that read the old password sees the change"
    );
    let changed = users
        .find_for_login(&user("alice"))
        .await
        .unwrap()
        .0
        .unwrap();
    assert!(users.password_unchanged(&changed).await.unwrap());
    users
        .upgrade_hash(alice.id, "$argon2id$stale", "$argon2id$c")
        .await
        .unwrap();
    assert_eq!(
        &*users
            .find_for_login(&user("alice"))
            .await
            .unwrap()
            .0
            .unwrap()
            .password_hash,
        "$argon2id$b"
    );
    users
        .upgrade_hash(alice.id, "$argon2id$b", "$argon2id$c")
        .await
        .unwrap();
    assert!(
        users.password_unchanged(&changed).await.unwrap(),
        "a rehash is not a password change"
    );
    assert_eq!(
        &*users
            .find_for_login(&user("alice"))
            .await
            .unwrap()
            .0
            .unwrap()
            .password_hash,
        "$argon2id$c"
    );
    assert!(matches!(
        users.set_password_hash(999_999, "$x", Utc::now()).await,
        Err(StoreError::NotFound)
    ));

    let batch: Vec<NewUser> = ["carol", "alice", "dave"]
        .iter()
        .map(|n| new_user(n, "$i"))
        .collect();
    assert_eq!(
        users.import(&batch).await.unwrap(),
        2,
        "existing names are skipped"
    );
    let listed: Vec<String> = users
        .list(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|u| u.username.to_string())
        .collect();
    assert_eq!(listed, ["alice", "carol", "dave"]);
    let page: Vec<String> = users
        .list(Some(&user("alice")), 1)
        .await
        .unwrap()
        .iter()
        .map(|u| u.username.to_string())
        .collect();
    assert_eq!(page, ["carol"]);

    // Sessions on the primary when there is no Redis.
    let token = SessionToken::generate();
    let now = Utc::now();
    let session = Session {
        token_hash: token.hash(),
        user_id: alice.id,
        username: "alice".into(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
    };
    stores.sessions.create(&session).await.unwrap();
    assert_eq!(
        stores
            .sessions
            .find(&token.hash(), now)
            .await
            .unwrap()
            .unwrap()
            .user_id,
        alice.id
    );
    assert!(stores
        .sessions
        .find(&token.hash(), now + chrono::Duration::hours(2))
        .await
        .unwrap()
        .is_none());
    assert_eq!(stores.sessions.revoke_all(alice.id).await.unwrap(), 1);
    assert!(stores
        .sessions
        .find(&token.hash(), now)
        .await
        .unwrap()
        .is_none());

    users.remove(&user("dave")).await.unwrap();
    assert!(matches!(
        users.remove(&user("dave")).await,
        Err(StoreError::NotFound)
    ));
    stores.users.ready().await.unwrap();
}

#[tokio::test]
async fn login_lookups_read_a_replica_and_writes_go_to_the_primary() {
    let topology = require!(support::shared());
    let (schema, _, stores) =
        require!(open(topology, &[&topology.replica], Duration::from_secs(5), None).await);
    support::wait_for_table(
        &topology.replica,
        &schema,
        "heartbeat",
        Duration::from_secs(10),
    )
    .unwrap();
    // Imported users carry no recent-write marker: found on the replica as
    // soon as it has them.
    stores
        .users
        .import(&[new_user("erin", "$e")])
        .await
        .unwrap();
    let users = stores.users.clone();
    eventually(Duration::from_secs(5), "erin read from the replica", || {
        let users = users.clone();
        async move {
            matches!(
                users.find_for_login(&user("erin")).await,
                Ok((Some(_), DbRole::Replica))
            )
        }
    })
    .await;
    let status = mysql(&stores).replica_status();
    assert_eq!(status.len(), 1);
    assert!(status[0].up && status[0].usable, "{status:?}");
    assert!(
        status[0].lag.unwrap() < Duration::from_secs(2),
        "{status:?}"
    );
    // A write marks the user: their next lookups go to the primary.
    let erin = stores
        .users
        .find_for_login(&user("erin"))
        .await
        .unwrap()
        .0
        .unwrap();
    stores
        .users
        .set_password_hash(erin.id, "$e2", Utc::now())
        .await
        .unwrap();
    let (found, role) = stores.users.find_for_login(&user("erin")).await.unwrap();
    assert_eq!(role, DbRole::Primary);
    assert_eq!(&*found.unwrap().password_hash, "$e2");
}

#[tokio::test]
async fn read_your_writes_holds_through_a_replica_lagging_seconds_behind() {
    let topology = require!(support::shared());
    let delayed = require!(support::shared_delayed());
    let redis = require!(support::redis_url());
    // A lag bound above the replica's delay: the replica is used.
    let (schema, _, stores) = require!(
        open(
            topology,
            &[delayed],
            Duration::from_millis(4500),
            Some(redis)
        )
        .await
    );
    support::wait_for_table(
        delayed,
        &schema,
        "heartbeat",
        Duration::from_secs(support::LAG_S as u64 + 10),
    )
    .unwrap();
    let store = mysql(&stores).clone();
    eventually(
        Duration::from_secs(5),
        "the delayed replica measured",
        || {
            let store = store.clone();
            async move { store.replica_status()[0].usable }
        },
    )
    .await;
    let lag = store.replica_status()[0].lag.unwrap();
    let delay = Duration::from_secs(support::LAG_S.into());
    // MASTER_DELAY counts from whole-second event timestamps: 2-3 s.
    assert!(
        lag >= delay - Duration::from_millis(1100) && lag <= delay + Duration::from_secs(2),
        "measured lag {lag:?} for a replica {delay:?} behind"
    );

    // Imported users (no marker) are read from the replica, which does not
    // have them yet: proof that the replica is lagging and is being used.
    stores
        .users
        .import(&[new_user("frank", "$f")])
        .await
        .unwrap();
    let (found, role) = stores.users.find_for_login(&user("frank")).await.unwrap();
    assert_eq!((found.is_none(), role), (true, DbRole::Replica));

    // Registered users are found at once.
    let gina = stores.users.create(new_user("gina", "$old")).await.unwrap();
    let (found, role) = stores.users.find_for_login(&user("gina")).await.unwrap();
    assert_eq!(role, DbRole::Primary);
    assert_eq!(found.unwrap().id, gina.id);

    // Once the replica has caught up and the marker is gone, a password
    // change is seen at once, though the replica still has the old hash.
    let ttl = store.settings().marker_ttl();
    tokio::time::sleep(ttl).await;
    let (found, role) = stores.users.find_for_login(&user("gina")).await.unwrap();
    assert_eq!(
        (&*found.unwrap().password_hash, role),
        ("$old", DbRole::Replica)
    );
    stores
        .users
        .set_password_hash(gina.id, "$new", Utc::now())
        .await
        .unwrap();
    for _ in 0..5 {
        let (found, _) = stores.users.find_for_login(&user("gina")).await.unwrap();
        assert_eq!(&*found.unwrap().password_hash, "$new");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let on_replica = delayed
        .sql(&format!(
            "SELECT password_hash FROM {schema}.users WHERE username='gina'"
        ))
        .unwrap();
    assert_eq!(on_replica.trim(), "$old", "the replica is still behind");
}

#[tokio::test]
async fn a_replica_beyond_the_lag_bound_is_skipped() {
    let topology = require!(support::shared());
    let delayed = require!(support::shared_delayed());
    let (schema, _, stores) =
        require!(open(topology, &[delayed], Duration::from_secs(1), None).await);
    support::wait_for_table(
        delayed,
        &schema,
        "heartbeat",
        Duration::from_secs(support::LAG_S as u64 + 10),
    )
    .unwrap();
    let store = mysql(&stores).clone();
    eventually(
        Duration::from_secs(5),
        "the delayed replica measured",
        || {
            let store = store.clone();
            async move { store.replica_status()[0].lag.is_some() }
        },
    )
    .await;
    let status = store.replica_status();
    assert!(status[0].up && !status[0].usable, "{status:?}");
    stores
        .users
        .import(&[new_user("hank", "$h")])
        .await
        .unwrap();
    let (found, role) = stores.users.find_for_login(&user("hank")).await.unwrap();
    assert_eq!((found.is_some(), role), (true, DbRole::Primary));
}

#[tokio::test]
async fn sessions_in_redis_are_shared_hashed_expiring_and_revocable() {
    let redis = require!(support::redis_url());
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        database_url: format!("sqlite:{}", dir.path().join("db").display()),
        cache_url: Some(redis.clone()),
        cache_namespace: support::namespace(),
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
        cache_namespace: support::namespace(),
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
    let redis = require!(support::redis_url());
    let ns = support::namespace();
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
async fn redis_down_fails_closed_within_a_second_and_recovers_by_itself() {
    let topology = require!(support::shared());
    let redis = require!(PrivateRedis::start());
    let (_, _, stores) = require!(
        open(
            topology,
            &[&topology.replica],
            Duration::from_secs(5),
            Some(redis.url())
        )
        .await
    );
    let limiter = stores.rate_limiter.clone().unwrap();
    let ivy = stores.users.create(new_user("ivy", "$i")).await.unwrap();
    let token = SessionToken::generate();
    let now = Utc::now();
    let session = Session {
        token_hash: token.hash(),
        user_id: ivy.id,
        username: "ivy".into(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
    };
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
        .set_password_hash(ivy.id, "$i2", Utc::now())
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
    eventually(Duration::from_secs(5), "sessions work again", || {
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
    let redis = require!(support::redis_url());
    let (schema, _, stores) = require!(
        open(
            &topology,
            &[&topology.replica],
            Duration::from_secs(5),
            Some(redis)
        )
        .await
    );
    support::wait_for_table(
        &topology.replica,
        &schema,
        "heartbeat",
        Duration::from_secs(10),
    )
    .unwrap();
    stores
        .users
        .import(&[new_user("kim", "$k"), new_user("lee", "$l")])
        .await
        .unwrap();
    let users = stores.users.clone();
    eventually(Duration::from_secs(5), "kim on the replica", || {
        let users = users.clone();
        async move {
            matches!(
                users.find_for_login(&user("kim")).await,
                Ok((Some(_), DbRole::Replica))
            )
        }
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
        .set_password_hash(lee.id, "$l2", Utc::now())
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
    let store = mysql(&stores).clone();
    eventually(Duration::from_secs(2), "primary seen down", || {
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
    eventually(Duration::from_secs(5), "writes work again", || {
        let users = users.clone();
        async move { users.create(new_user("mia", "$m")).await.is_ok() }
    })
    .await;
    stores
        .users
        .set_password_hash(lee.id, "$l2", Utc::now())
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
    let store = mysql(&stores).clone();
    eventually(Duration::from_secs(10), "replication resumed", || {
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
    let users = stores.users.clone();
    eventually(Duration::from_secs(10), "reads back on the replica", || {
        let users = users.clone();
        async move {
            matches!(
                users.find_for_login(&user("kim")).await,
                Ok((Some(_), DbRole::Replica))
            )
        }
    })
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
async fn redis_limit_store_matches_the_domain_gcra_and_falls_back_when_redis_is_down() {
    use sesame_domain::ratelimit::{Decision, LimitStore, Rate};
    let redis = require!(PrivateRedis::start());
    let ns = support::namespace();
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
    eventually(Duration::from_secs(5), "Redis limits again", || {
        let a2 = a2.clone();
        async move { a2.check("ip:3", rate, now, true).await.is_ok() }
    })
    .await;
}
