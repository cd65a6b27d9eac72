//! The cases only the production backend has: a MariaDB primary with a
//! replica (real binlog replication) and Redis for sessions and
//! recent-write markers. Read-your-writes through a replica seconds
//! behind; the primary crashing and hanging (logins go on from the
//! replica; registration and password change answer 503 `unavailable`
//! within a second; recovery without restarting sesame); Redis going away
//! and coming back.

use reqwest::StatusCode;
use serde_json::Value;
use sesame_domain::LoginSettings;
use sesame_storage::{StorageConfig, Stores};
use sesame_testkit::{
    error_code, eventually, mariadb, mysql_config, mysql_settings, redis, require, session_token,
    MySqlStack, PrivateRedis, TestServer, Topology, LAG_S,
};
use std::time::{Duration, Instant};

/// How often `eventually` checks.
const POLL: Duration = Duration::from_millis(100);

async fn migrated(config: &StorageConfig) -> Stores {
    sesame_storage::migrate(config).await.unwrap();
    sesame_storage::open(config).await.unwrap()
}

#[tokio::test]
async fn read_your_writes_through_a_replica_seconds_behind() {
    let topology = require!(mariadb::shared());
    let delayed = require!(mariadb::shared_delayed());
    let redis = require!(redis::redis_url());
    let schema = topology.schema().unwrap();
    let mut config = mysql_config(&topology.primary, &schema, &[delayed], Some(redis));
    // The replica (2-3 s behind) is within the bound: it is read from.
    config.max_replica_lag = Duration::from_millis(4500);
    sesame_storage::migrate(&config).await.unwrap();
    let MySqlStack { stores, mysql, .. } = MySqlStack::open(&config).await.unwrap();
    mariadb::wait_for_heartbeat(delayed, &schema, Duration::from_secs(15));
    eventually(
        Duration::from_secs(5),
        POLL,
        "replica measured and usable",
        || {
            let mysql = mysql.clone();
            async move { mysql.replica_status()[0].usable }
        },
    )
    .await;
    assert!(mysql.replica_status()[0].lag.unwrap() >= Duration::from_millis(1500));
    let server = TestServer::serve(stores, |_| {}).await;

    // Right after a 201 the user can log in.
    assert_eq!(
        server.register("nora", "first-secret-pw").await.0,
        StatusCode::CREATED
    );
    let (status, a) = server.login("nora", "first-secret-pw").await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let (_, b) = server.login("nora", "first-secret-pw").await;
    // Right after a 204 the old password fails and the sessions are gone.
    let (status, body) = server
        .change_password("nora", "first-secret-pw", "second-secret-pw")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        server.login("nora", "first-secret-pw").await.0,
        StatusCode::UNAUTHORIZED
    );
    for s in [&a, &b] {
        assert_eq!(
            server.session(&session_token(s)).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        server.login("nora", "second-secret-pw").await.0,
        StatusCode::OK
    );
    // ...while the replica has not seen the password change yet.
    let on_replica = delayed
        .sql(&format!(
            "SELECT COUNT(*) FROM {schema}.users WHERE username='nora' AND password_changed_at > created_at"
        ))
        .unwrap();
    assert_eq!(on_replica.trim(), "0", "the replica is behind");

    // The measured lag is exported.
    let series = format!(
        "sesame_replica_lag_seconds{{replica=\"127.0.0.1:{}\"}}",
        delayed.port
    );
    let s = &server;
    let series = &series;
    eventually(
        Duration::from_secs(5),
        POLL,
        "replica lag in /metrics",
        || async move {
            let text = s.metrics().await;
            text.lines()
                .filter_map(|l| l.strip_prefix(series.as_str()))
                .filter_map(|v| v.trim().parse::<f64>().ok())
                .any(|lag| (1.5..6.0).contains(&lag))
        },
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn primary_crash_and_hang_logins_go_on_writes_503_then_recovery() {
    // Servers of its own: this test kills them.
    let topology = require!(Topology::start());
    let redis = require!(redis::redis_url());
    let schema = topology.schema().unwrap();
    let mut config = mysql_config(
        &topology.primary,
        &schema,
        &[&topology.replica],
        Some(redis),
    );
    config.max_replica_lag = Duration::from_secs(1);
    let stores = migrated(&config).await;
    mariadb::wait_for_heartbeat(&topology.replica, &schema, Duration::from_secs(10));
    let ttl = mysql_settings(&config).marker_ttl();
    let server = TestServer::serve(stores, |_| {}).await;
    assert_eq!(
        server.register("olga", "violet-meadow-71").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        server.register("pete", "amber-harbor-52").await.0,
        StatusCode::CREATED
    );
    let (_, before) = server.login("olga", "violet-meadow-71").await;
    // Let the markers expire: logins are then served by the replica.
    tokio::time::sleep(ttl).await;

    // The primary hangs (SIGSTOP).
    topology.primary.freeze();
    let t = Instant::now();
    let (status, body) = server.register("quinn", "silent-forest-28").await;
    let took = t.elapsed();
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{body}"
    );
    assert!(
        took < Duration::from_secs(1),
        "a hung primary answered in {took:?}"
    );
    assert_eq!(
        server.login("olga", "violet-meadow-71").await.0,
        StatusCode::OK
    );
    topology.primary.thaw();

    // The primary crashes (kill -9).
    topology.primary.kill();
    for _ in 0..3 {
        let t = Instant::now();
        let (status, body) = server.login("olga", "violet-meadow-71").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(t.elapsed() < Duration::from_secs(1));
    }
    assert_eq!(
        server.login("olga", "wrong-password").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.session(&session_token(&before)).await,
        StatusCode::OK,
        "sessions live in Redis"
    );
    let t = Instant::now();
    let (status, body) = server.register("quinn", "silent-forest-28").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{body}"
    );
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    let (status, body) = server
        .change_password("pete", "amber-harbor-52", "copper-lantern-93")
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{body}"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Nothing half-done: the old password still works.
    assert_eq!(
        server.login("pete", "amber-harbor-52").await.0,
        StatusCode::OK
    );
    let ready = server.get("/readyz").await;
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "logins can be served, so still ready"
    );

    // The primary returns: everything works again, sesame untouched.
    topology.primary.restart().unwrap();
    let s = &server;
    eventually(
        Duration::from_secs(10),
        POLL,
        "registration works again",
        || async move { s.register("quinn", "silent-forest-28").await.0 == StatusCode::CREATED },
    )
    .await;
    assert_eq!(
        server.login("quinn", "silent-forest-28").await.0,
        StatusCode::OK
    );
    let (status, body) = server
        .change_password("pete", "amber-harbor-52", "copper-lantern-93")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        server.login("pete", "amber-harbor-52").await.0,
        StatusCode::UNAUTHORIZED
    );

    let events = server.stop().await;
    let roles: Vec<&str> = events
        .iter()
        .filter_map(|e| e["db_role"].as_str())
        .collect();
    assert!(roles.contains(&"replica"), "{roles:?}");
    assert!(roles.contains(&"primary"), "{roles:?}");
}

/// A user who changed their password seconds ago (a recent-write marker)
/// logs in after the primary crashed. A replica that has applied the change
/// answers within the latency budget; one that has not yet is refused at
/// once as `unavailable`, never waited for and never called overload, and
/// never lets the old password in.
#[tokio::test]
async fn a_marked_login_during_a_primary_crash_reads_a_caught_up_replica() {
    let topology = require!(Topology::start());
    let delayed = require!(topology.add_delayed_replica(LAG_S));
    let redis = require!(redis::redis_url());
    let schema = topology.schema().unwrap();
    let mut config = mysql_config(&topology.primary, &schema, &[&delayed], Some(redis));
    // Markers then live 12 s: vic's change must be proven by the replica's
    // heartbeat, not outlived.
    config.max_replica_lag = Duration::from_secs(10);
    sesame_storage::migrate(&config).await.unwrap();
    let MySqlStack { stores, mysql, .. } = MySqlStack::open(&config).await.unwrap();
    mariadb::wait_for_heartbeat(&delayed, &schema, Duration::from_secs(15));
    assert!(mysql.settings().marker_ttl() > Duration::from_secs(11));
    let budget = LoginSettings::default().latency_budget;
    let server = TestServer::serve(stores, |c| c.login.latency_budget = budget).await;
    for user in ["uma", "vic"] {
        assert_eq!(
            server.register(user, "first-secret-pw").await.0,
            StatusCode::CREATED
        );
    }
    let change = |user: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server
                .change_password(user, "first-secret-pw", "second-secret-pw")
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        }
    };
    // uma's change has replicated by the crash (the replica is 3 s behind);
    // vic's has not. Both markers outlive the crash.
    change("uma").await;
    tokio::time::sleep(Duration::from_secs(LAG_S as u64 + 1)).await;
    change("vic").await;
    topology.primary.kill();
    let m = &mysql;
    eventually(
        Duration::from_secs(3),
        POLL,
        "the heartbeat finds the primary down",
        || async move { !m.primary_up() },
    )
    .await;

    let timed = |user: &'static str, password: &'static str| {
        let server = &server;
        async move {
            let t = Instant::now();
            let (status, body) = server.login(user, password).await;
            (status, error_code(&body).to_owned(), t.elapsed())
        }
    };
    let (status, _, took) = timed("uma", "second-secret-pw").await;
    assert_eq!(status, StatusCode::OK);
    assert!(took < budget, "answered in {took:?}");
    assert_eq!(
        timed("uma", "first-secret-pw").await.0,
        StatusCode::UNAUTHORIZED
    );
    for password in ["second-secret-pw", "first-secret-pw"] {
        let (status, code, took) = timed("vic", password).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            "the replica has not applied vic's change: refuse, never the old password"
        );
        assert!(took < budget, "refused in {took:?}");
    }
    // Once the replica has applied vic's change, the new password works
    // and the old one fails.
    let s = &server;
    // MASTER_DELAY counts whole seconds: the change applies 3-4 s after it.
    eventually(
        Duration::from_secs(LAG_S as u64 + 3),
        POLL,
        "vic logs in from the caught-up replica",
        || async move { s.login("vic", "second-secret-pw").await.0 == StatusCode::OK },
    )
    .await;
    assert_eq!(
        timed("vic", "first-secret-pw").await.0,
        StatusCode::UNAUTHORIZED
    );

    let events = server.stop().await;
    let outcomes: Vec<&str> = events
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert!(!outcomes.contains(&"overloaded"), "{outcomes:?}");
    let refused: Vec<&Value> = events
        .iter()
        .filter(|e| e["outcome"] == "unavailable")
        .collect();
    assert!(!refused.is_empty());
    for e in refused {
        assert_eq!(e["status"], 503);
        assert!(
            e["cause"].as_str().unwrap().contains("no replica"),
            "the event says why: {e}"
        );
    }
}

#[tokio::test]
async fn redis_down_sessions_fail_closed_then_recover() {
    let topology = require!(mariadb::shared());
    let redis = require!(PrivateRedis::start());
    let schema = topology.schema().unwrap();
    let config = mysql_config(
        &topology.primary,
        &schema,
        &[&topology.replica],
        Some(redis.url()),
    );
    let server = TestServer::serve(migrated(&config).await, |_| {}).await;
    assert_eq!(
        server.register("rita", "golden-valley-64").await.0,
        StatusCode::CREATED
    );
    let (_, login) = server.login("rita", "golden-valley-64").await;

    redis.kill();
    let t = Instant::now();
    let (status, body) = server.login("rita", "golden-valley-64").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{body}"
    );
    assert_eq!(
        server.session(&session_token(&login)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, _) = server.register("sam", "crimson-tide-37").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    redis.restart().unwrap();
    let s = &server;
    eventually(
        Duration::from_secs(10),
        POLL,
        "logins work again",
        || async move { s.login("rita", "golden-valley-64").await.0 == StatusCode::OK },
    )
    .await;
    assert_eq!(
        server.register("sam", "crimson-tide-37").await.0,
        StatusCode::CREATED
    );
    server.stop().await;
}
