//! MySQL 8 / MariaDB 10.11: one primary for writes, read replicas for login
//! lookups, replica lag measured by a heartbeat, read-your-writes by
//! recent-write markers. See the book, "Production storage" (docs/src/operators/storage.md), for the reasoning.
//!
//! Routing of a login lookup for user U:
//! - no recent-write marker for U: a replica that is up and at most
//!   `max_replica_lag` behind; if none answers, the primary;
//! - a marker for U (U was written within the marker TTL): the primary; if
//!   the primary cannot answer, only a replica that has provably applied the
//!   write (its heartbeat is newer than the write's commit time).
//!
//! Writes go to the primary only. A marker is set before the write and
//! stamped with the commit time after it; if the marker cannot be set (Redis
//! down) the write is refused before it starts.

//!
//! Layout: this module holds the store, its settings and the bounded calls
//! every query goes through; [`topology`] the replicas, the heartbeat and
//! where a lookup may read; [`users`] and [`sessions`] the two ports.

mod sessions;
mod topology;
mod users;

pub use topology::ReplicaStatus;
pub use users::LOGIN_LOOKUP_SQL;

use crate::markers::RecentWrites;
use crate::query_metrics::observe;
use crate::time::to_ms;
use chrono::Utc;
use moka::sync::Cache;
use sesame_domain::{DbRole, StoreError};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::MySql;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use topology::{monitor, Replica, ReplicaState};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// How to reach and use a MySQL/MariaDB topology.
#[derive(Debug, Clone)]
pub struct MySqlSettings {
    pub primary_url: String,
    pub replica_urls: Vec<String>,
    /// A replica further behind than this is not read from.
    pub max_replica_lag: Duration,
    /// The most one storage call may take before it answers `Unavailable`
    /// (connecting, waiting for a pooled connection and the query together).
    pub timeout: Duration,
    /// How often the heartbeat is written and the replicas' lag measured.
    pub heartbeat_interval: Duration,
    /// Connections per server (primary and each replica).
    pub max_connections: u32,
}

impl MySqlSettings {
    /// How long a recent-write marker must live: longer than a replica that
    /// is still used can be behind, plus how stale a lag measurement can be,
    /// plus the longest a write can take after its marker was set.
    pub fn marker_ttl(&self) -> Duration {
        self.max_replica_lag + self.heartbeat_interval * 2 + self.timeout + Duration::from_secs(1)
    }
}

struct Inner {
    primary: MySqlPool,
    primary_name: String,
    /// The primary took one of the last two heartbeat writes.
    primary_up: AtomicBool,
    /// Heartbeat writes the primary missed in a row.
    primary_misses: AtomicU32,
    replicas: Vec<Replica>,
    next_replica: AtomicUsize,
    markers: Arc<dyn RecentWrites>,
    /// user id -> username of recent logins, so that a password change or
    /// hash upgrade can mark the user without another primary read.
    names: Cache<i64, String>,
    settings: MySqlSettings,
}

/// The MySQL/MariaDB adapter. Cheap to clone.
#[derive(Clone)]
pub struct MySqlStore {
    inner: Arc<Inner>,
}

fn mysql_url(url: &str) -> String {
    match url.strip_prefix("mariadb:") {
        Some(rest) => format!("mysql:{rest}"),
        None => url.to_owned(),
    }
}

/// `host:port` of a URL, without credentials or database.
pub fn server_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:3306")
    }
}

fn pool(url: &str, settings: &MySqlSettings) -> Result<MySqlPool, StoreError> {
    let options = MySqlConnectOptions::from_str(&mysql_url(url))
        .map_err(|e| StoreError::Other(format!("bad MySQL URL for {}: {e}", server_name(url))))?
        .charset("utf8mb4");
    let statement_ms = settings.timeout.as_millis() as u64;
    Ok(MySqlPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.timeout)
        .idle_timeout(Duration::from_secs(60))
        .max_lifetime(Duration::from_secs(30 * 60))
        // A connection that died with its server is found and replaced
        // before it is handed out, so recovery needs no failed request.
        .test_before_acquire(true)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                // The server gives up on a statement the client has given up
                // on: MariaDB's max_statement_time (seconds), else MySQL's
                // max_execution_time (ms, SELECT only).
                let mariadb = sqlx::query("SET SESSION max_statement_time = ?")
                    .bind(statement_ms as f64 / 1000.0)
                    .execute(&mut *conn)
                    .await;
                if mariadb.is_err() {
                    let _ = sqlx::query("SET SESSION max_execution_time = ?")
                        .bind(statement_ms)
                        .execute(&mut *conn)
                        .await;
                }
                Ok(())
            })
        })
        .connect_lazy_with(options))
}

fn map_err(server: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(db) => {
            let transient = db
                .try_downcast_ref::<MySqlDatabaseError>()
                .is_some_and(|m| {
                    matches!(
                        m.number(),
                        // too many connections, shutdown in progress, read
                        // only, lock wait timeout, connection killed,
                        // statement timeouts (MariaDB, MySQL)
                        1040 | 1053 | 1205 | 1290 | 1836 | 1927 | 1969 | 3024
                    )
                });
            if transient {
                StoreError::Unavailable(format!("database {server} unavailable: {e}"))
            } else {
                StoreError::Other(format!("database {server}: {e}"))
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable(format!("database {server} unavailable: {e}"))
        }
        _ => StoreError::Other(format!("database {server}: {e}")),
    }
}

fn primary_error(e: StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!(
            "primary {m}; registration and password changes are refused until it is back"
        )),
        other => other,
    }
}

/// Runs one database call with a deadline.
async fn bounded<T>(
    server: &str,
    budget: Duration,
    op: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(budget, op).await {
        Ok(r) => r.map_err(|e| map_err(server, e)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "database {server} did not answer within {budget:?}"
        ))),
    }
}

fn now_ms() -> i64 {
    to_ms(Utc::now())
}

impl MySqlStore {
    /// Creates the pools (lazily: a server that is down now is no obstacle
    /// to starting), measures the replicas once and starts the lag monitor.
    /// Does not migrate: see [`MySqlStore::migrate`].
    pub async fn open(
        settings: MySqlSettings,
        markers: Arc<dyn RecentWrites>,
    ) -> Result<Self, StoreError> {
        let primary = pool(&settings.primary_url, &settings)?;
        let mut replicas = Vec::new();
        for url in &settings.replica_urls {
            let name = server_name(url);
            if replicas.iter().any(|r: &Replica| r.name == name) {
                return Err(StoreError::Other(format!("replica {name} given twice")));
            }
            replicas.push(Replica {
                pool: pool(url, &settings)?,
                name,
                state: Mutex::new(ReplicaState::default()),
            });
        }
        let inner = Arc::new(Inner {
            primary,
            primary_name: server_name(&settings.primary_url),
            primary_up: AtomicBool::new(false),
            primary_misses: AtomicU32::new(0),
            replicas,
            next_replica: AtomicUsize::new(0),
            markers,
            names: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
            settings,
        });
        inner.tick().await;
        let weak = Arc::downgrade(&inner);
        tokio::spawn(monitor(weak));
        Ok(Self { inner })
    }

    /// Creates or upgrades the schema on the primary (replicas get it by
    /// replication).
    pub async fn migrate(primary_url: &str, timeout: Duration) -> Result<(), StoreError> {
        let settings = MySqlSettings {
            primary_url: primary_url.to_owned(),
            replica_urls: Vec::new(),
            max_replica_lag: Duration::ZERO,
            timeout,
            heartbeat_interval: Duration::from_secs(1),
            max_connections: 2,
        };
        let pool = pool(primary_url, &settings)?;
        let name = server_name(primary_url);
        // Only the first connection is bounded: a migration may take long.
        bounded(&name, timeout, pool.acquire()).await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migrating {name} failed: {e}")))?;
        pool.close().await;
        Ok(())
    }

    pub fn settings(&self) -> &MySqlSettings {
        &self.inner.settings
    }

    /// Runs a call on the primary with a deadline.
    async fn on_primary<T>(
        &self,
        op: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        let i = &self.inner;
        bounded(&i.primary_name, i.settings.timeout, op)
            .await
            .map_err(primary_error)
    }

    /// A write to `user`'s row on the primary, bracketed by the user's
    /// recent-write marker. `op` gets a connection; if none can be had the
    /// write was certainly not made, and the marker is put back.
    async fn write<T, F, Fut>(
        &self,
        query: &'static str,
        user: &str,
        op: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(PoolConnection<MySql>) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let i = &self.inner;
        // A primary the heartbeat found down is not waited for: refusing at
        // once is the same answer, sooner.
        if !self.primary_up() {
            return Err(primary_error(StoreError::Unavailable(format!(
                "database {} is not answering its heartbeat",
                i.primary_name
            ))));
        }
        let previous = i.markers.begin(user).await.map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot mark the write for read-your-writes, so it was not made: {e}"
            ))
        })?;
        let deadline = Instant::now() + i.settings.timeout;
        let conn = match bounded(&i.primary_name, i.settings.timeout, i.primary.acquire()).await {
            Ok(conn) => conn,
            Err(e) => {
                if let Err(e) = i.markers.abort(user, previous).await {
                    tracing::warn!(error = %e, "could not put a recent-write marker back");
                }
                return Err(primary_error(e));
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let started = Instant::now();
        // From here on a failure may or may not have committed: the marker
        // stays PENDING until it expires, keeping the user's reads on the
        // primary.
        let done = bounded(&i.primary_name, left, op(conn)).await;
        observe(query, DbRole::Primary, started);
        let done = done.map_err(primary_error)?;
        // A heartbeat written after the write stamps it: a replica that has
        // applied a heartbeat this new has applied the write too (binlog
        // order). Without it the newest heartbeat before a crash could
        // predate the write, and no replica could ever prove it has the
        // write. If the stamp fails, the marker stays PENDING (primary only)
        // until it expires: safe, if less available.
        //
        // With markers whose commit must reach a Redis replica
        // (`--cache-replica-acks`), a PENDING marker is not known to survive
        // a Redis failover: then a failed stamp fails the write (503; it may
        // have been made, but it is not acknowledged).
        let beat = now_ms();
        let left = deadline.saturating_duration_since(Instant::now());
        let stamped = match bounded(&i.primary_name, left, i.heartbeat(beat)).await {
            Ok(_) => i.markers.commit(user, beat).await.map_err(|e| {
                tracing::warn!(error = %e, "could not stamp a recent-write marker");
                e
            }),
            Err(e) => {
                tracing::warn!(error = %e, "could not stamp a write with a heartbeat");
                Err(e)
            }
        };
        match stamped {
            Err(e) if i.markers.commit_required() => Err(StoreError::Unavailable(format!(
                "the write's read-your-writes marker was not made durable, so the write is \
                 not acknowledged (it may have been made): {e}"
            ))),
            _ => Ok(done),
        }
    }

    async fn username_of(&self, user_id: i64) -> Result<String, StoreError> {
        if let Some(name) = self.inner.names.get(&user_id) {
            return Ok(name);
        }
        let pool = &self.inner.primary;
        let name: Option<Vec<u8>> = self
            .on_primary(
                sqlx::query_scalar("SELECT username FROM users WHERE id = ?")
                    .bind(user_id)
                    .fetch_optional(pool),
            )
            .await?;
        let name = name.ok_or(StoreError::NotFound)?;
        String::from_utf8(name).map_err(|e| StoreError::Other(format!("username: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_hide_credentials_and_databases() {
        assert_eq!(
            server_name("mysql://u:secret@db-1:3307/sesame"),
            "db-1:3307"
        );
        assert_eq!(
            server_name("mysql://db-2/sesame?ssl-mode=required"),
            "db-2:3306"
        );
        assert_eq!(
            server_name("mariadb://root@127.0.0.1:4000"),
            "127.0.0.1:4000"
        );
    }

    #[test]
    fn markers_outlive_the_lag_bound() {
        let s = MySqlSettings {
            primary_url: String::new(),
            replica_urls: vec![],
            max_replica_lag: Duration::from_secs(5),
            timeout: Duration::from_millis(900),
            heartbeat_interval: Duration::from_millis(250),
            max_connections: 1,
        };
        assert!(s.marker_ttl() > s.max_replica_lag + s.heartbeat_interval + s.timeout);
    }
}
