//! The MySQL/MariaDB store: the login lookup, migrations and the round
//! trip, replicas for lookups, read-your-writes through a lagging replica,
//! the lag bound.

use super::{hour_session, new_user, observed, on_replica, open, user, POLL};
use chrono::Utc;
use sesame_domain::{DbRole, NewUser, StoreError};
use sesame_testkit::{eventually, mariadb, redis, require, LAG_S};
use std::time::Duration;

#[tokio::test]
async fn the_login_lookup_is_one_point_read_on_the_unique_username_index() {
    let topology = require!(mariadb::shared());
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
    let topology = require!(mariadb::shared());
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
        .set_password_hash(alice.id, None, "$argon2id$b", Utc::now())
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
    // Proved against a hash that has changed since: nothing changes.
    assert!(matches!(
        users
            .set_password_hash(alice.id, Some("$argon2id$a"), "$argon2id$late", Utc::now())
            .await,
        Err(StoreError::NotFound)
    ));
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
        users
            .set_password_hash(999_999, None, "$x", Utc::now())
            .await,
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
    let (token, session) = hour_session(alice.id, "alice");
    let now = session.created_at;
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
    let topology = require!(mariadb::shared());
    let (schema, stack) =
        require!(observed(topology, &[&topology.replica], Duration::from_secs(5), None).await);
    let stores = &stack.stores;
    mariadb::wait_for_heartbeat(&topology.replica, &schema, Duration::from_secs(10));
    // Imported users carry no recent-write marker: found on the replica as
    // soon as it has them.
    stores
        .users
        .import(&[new_user("erin", "$e")])
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        POLL,
        "erin read from the replica",
        || on_replica(&stores.users, "erin"),
    )
    .await;
    let status = stack.mysql.replica_status();
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
        .set_password_hash(erin.id, None, "$e2", Utc::now())
        .await
        .unwrap();
    let (found, role) = stores.users.find_for_login(&user("erin")).await.unwrap();
    assert_eq!(role, DbRole::Primary);
    assert_eq!(&*found.unwrap().password_hash, "$e2");
}

#[tokio::test]
async fn read_your_writes_holds_through_a_replica_lagging_seconds_behind() {
    let topology = require!(mariadb::shared());
    let delayed = require!(mariadb::shared_delayed());
    let redis = require!(redis::redis_url());
    // A lag bound above the replica's delay: the replica is used.
    let (schema, stack) = require!(
        observed(
            topology,
            &[delayed],
            Duration::from_millis(4500),
            Some(redis)
        )
        .await
    );
    let stores = &stack.stores;
    mariadb::wait_for_heartbeat(delayed, &schema, Duration::from_secs(LAG_S as u64 + 10));
    let store = stack.mysql.clone();
    eventually(
        Duration::from_secs(5),
        POLL,
        "the delayed replica measured",
        || {
            let store = store.clone();
            async move { store.replica_status()[0].usable }
        },
    )
    .await;
    let lag = store.replica_status()[0].lag.unwrap();
    let delay = Duration::from_secs(LAG_S.into());
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
        .set_password_hash(gina.id, None, "$new", Utc::now())
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
    let topology = require!(mariadb::shared());
    let delayed = require!(mariadb::shared_delayed());
    let (schema, stack) =
        require!(observed(topology, &[delayed], Duration::from_secs(1), None).await);
    let stores = &stack.stores;
    mariadb::wait_for_heartbeat(delayed, &schema, Duration::from_secs(LAG_S as u64 + 10));
    let store = stack.mysql.clone();
    eventually(
        Duration::from_secs(5),
        POLL,
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
