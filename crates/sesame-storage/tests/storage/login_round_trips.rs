//! A login's shared state in two Redis round trips (`RedisLoginRoundTrips`):
//! what its scripts write is what the single-purpose stores read, its marks
//! are the user store's, and a Redis outage falls back as they do.

use super::{hour_session, new_user, observed, user};
use chrono::Utc;
use sesame_domain::ratelimit::{Decision, LimitSettings, Rate};
use sesame_domain::{LoginLimiter, StoreError, SystemClock, WriteMark};
use sesame_testkit::{mariadb, redis, require, PrivateRedis};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

fn limits() -> LimitSettings {
    LimitSettings {
        // Two attempts from an address, then refused.
        per_ip: Rate::per_minute(1.0, 2),
        ..LimitSettings::default()
    }
}

#[tokio::test]
async fn the_two_round_trips_write_what_the_stores_read() {
    let topology = require!(mariadb::shared());
    let redis = require!(redis::redis_url());
    let (_, stack) = require!(
        observed(
            topology,
            &[&topology.replica],
            Duration::from_secs(5),
            Some(redis)
        )
        .await
    );
    let stores = &stack.stores;
    let shared = stores.round_trips.clone().expect("Redis gives the port");
    let limiter = LoginLimiter::new(
        stores.limits.clone().unwrap(),
        Arc::new(SystemClock),
        limits(),
    );
    let ola = stores.users.create(new_user("ola", "$o")).await.unwrap();
    let ip: IpAddr = [198, 51, 100, 7].into();

    // Before the hash: the limits decided (the address's attempts counted)
    // and the user's mark, as the user store reads it.
    let checks = limiter.login_checks(&user("ola"), ip);
    let (decisions, mark) = shared.before_hash(&checks, &user("ola")).await;
    assert_eq!(decisions.unwrap(), vec![Decision::Allow; 4]);
    assert_eq!(mark, stores.users.write_mark(&user("ola")).await);
    assert!(mark.0.is_some(), "a registration leaves a marker");
    shared.before_hash(&checks, &user("ola")).await.0.unwrap();
    let third = shared.before_hash(&checks, &user("ola")).await.0.unwrap();
    assert!(matches!(third[0], Decision::Deny { .. }), "{third:?}");
    assert!(
        limiter.admit_login(&user("ola"), ip).await.is_err(),
        "the limit store sees the attempts the port counted"
    );

    // After the password: the session is the session store's, the address
    // is known to the limits, and the mark has not moved.
    let (token, session) = hour_session(ola.id, "ola");
    let known = limiter.known_address(&user("ola"), ip);
    let after = shared.after_success(&session, &known).await.unwrap();
    assert_eq!(after, mark);
    let found = stores.sessions.find(&token.hash(), Utc::now()).await;
    assert_eq!(found.unwrap().unwrap().user_id, ola.id);
    let remembered = stores.limits.as_ref().unwrap();
    assert!(remembered
        .remembers(&known.key, known.now_ms)
        .await
        .unwrap());
    assert!(stores
        .users
        .password_unchanged_between(&ola, mark, after)
        .await
        .unwrap());

    // A password change between the two: the marks differ and the store
    // finds the change.
    stores
        .users
        .set_password_hash(ola.id, None, "$o2", Utc::now())
        .await
        .unwrap();
    let (_, session) = hour_session(ola.id, "ola");
    let moved = shared.after_success(&session, &known).await.unwrap();
    assert_ne!(moved, mark);
    assert!(!stores
        .users
        .password_unchanged_between(&ola, mark, moved)
        .await
        .unwrap());
}

#[tokio::test]
async fn with_redis_down_limits_fall_back_the_lookup_reads_the_primary_and_no_session_is_made() {
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
    let shared = stores.round_trips.clone().unwrap();
    let limiter = LoginLimiter::new(
        stores.limits.clone().unwrap(),
        Arc::new(SystemClock),
        limits(),
    );
    let pia = stores.users.create(new_user("pia", "$p")).await.unwrap();
    redis.kill();
    let ip: IpAddr = [198, 51, 100, 8].into();
    let checks = limiter.login_checks(&user("pia"), ip);
    let mut last = None;
    for _ in 0..3 {
        let (decisions, mark) = shared.before_hash(&checks, &user("pia")).await;
        // Unknown whether the user was just written: the primary's mark.
        assert_eq!(mark, WriteMark(Some(sesame_storage::markers::PENDING)));
        last = Some(decisions.unwrap());
    }
    assert!(
        matches!(last.unwrap()[0], Decision::Deny { .. }),
        "the in-process limits still count"
    );
    let (_, session) = hour_session(pia.id, "pia");
    let known = limiter.known_address(&user("pia"), ip);
    assert!(matches!(
        shared.after_success(&session, &known).await,
        Err(StoreError::Unavailable(_))
    ));
}
