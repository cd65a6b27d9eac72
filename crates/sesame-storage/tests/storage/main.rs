//! The storage adapters against real servers: SQLite, and MySQL/MariaDB +
//! Redis, with a MariaDB primary and replicas (binlog replication with
//! GTID, MASTER_DELAY for lag) and Redis started by `sesame_testkit`. Each
//! test has its own schema and Redis namespace; the servers are shared by
//! the tests of this binary, and the tests that kill servers get their own.
//!
//! - `topology`: the MySQL store, its replicas and read-your-writes;
//! - `cache`: sessions and rate limits in Redis;
//! - `failures`: servers that crash, hang or are not there;
//! - `login_round_trips`: a login's shared state in two Redis round trips;
//! - `sentinel`: Redis behind Sentinel, its failover, and revocations
//!   acknowledged by a replica (`WAIT`);
//! - `sqlite`: the embedded store.

mod cache;
mod failures;
mod login_round_trips;
mod sentinel;
mod sqlite;
mod topology;

use chrono::Utc;
use sesame_domain::{DbRole, NewUser, Session, SessionToken, UserStore, Username};
use sesame_storage::{StorageConfig, Stores};
use sesame_testkit::{mysql_config, MariaDb, MySqlStack, Topology};
use std::sync::Arc;
use std::time::Duration;

/// How often `eventually` checks.
const POLL: Duration = Duration::from_millis(50);

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

/// A session of `username` (id `user_id`) from now for an hour, and its
/// token.
fn hour_session(user_id: i64, username: &str) -> (SessionToken, Session) {
    let token = SessionToken::generate();
    let now = Utc::now();
    let session = Session {
        token_hash: token.hash(),
        user_id,
        username: username.into(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
    };
    (token, session)
}

/// A login lookup for `name` finds it, on a replica.
async fn on_replica(users: &Arc<dyn UserStore>, name: &str) -> bool {
    matches!(
        users.find_for_login(&user(name)).await,
        Ok((Some(_), DbRole::Replica))
    )
}

fn config(
    primary: &MariaDb,
    schema: &str,
    replicas: &[&MariaDb],
    max_lag: Duration,
) -> StorageConfig {
    StorageConfig {
        max_replica_lag: max_lag,
        ..mysql_config(primary, schema, replicas, None)
    }
}

/// A fresh schema on `topology`, migrated, and its configuration.
async fn migrated(
    topology: &Topology,
    replicas: &[&MariaDb],
    max_lag: Duration,
    redis: Option<String>,
) -> Result<(String, StorageConfig), String> {
    let schema = topology.schema()?;
    let mut config = config(&topology.primary, &schema, replicas, max_lag);
    config.cache_url = redis;
    sesame_storage::migrate(&config)
        .await
        .map_err(|e| e.to_string())?;
    Ok((schema, config))
}

/// A fresh schema on `topology`, migrated, and stores over it.
async fn open(
    topology: &Topology,
    replicas: &[&MariaDb],
    max_lag: Duration,
    redis: Option<String>,
) -> Result<(String, StorageConfig, Stores), String> {
    let (schema, config) = migrated(topology, replicas, max_lag, redis).await?;
    let stores = sesame_storage::open(&config)
        .await
        .map_err(|e| e.to_string())?;
    Ok((schema, config, stores))
}

/// As [`open`], with the MySQL store (its view of the topology) and the
/// Redis rate limiter in hand.
async fn observed(
    topology: &Topology,
    replicas: &[&MariaDb],
    max_lag: Duration,
    redis: Option<String>,
) -> Result<(String, MySqlStack), String> {
    let (schema, config) = migrated(topology, replicas, max_lag, redis).await?;
    let stack = MySqlStack::open(&config).await.map_err(|e| e.to_string())?;
    Ok((schema, stack))
}
