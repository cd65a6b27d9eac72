//! MySQL 8 / MariaDB 10.11: one primary for writes, read replicas for login
//! lookups, replica lag measured by a heartbeat, read-your-writes by
//! recent-write markers. See the README, "Production storage", for the reasoning.
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

use crate::markers::{RecentWrites, PENDING};
use crate::observe;
use crate::time::{from_ms, to_ms};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moka::sync::Cache;
use sesame_domain::{
    DbRole, NewUser, Session, SessionStore, StoreError, TokenHash, UserRecord, UserStore, Username,
};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::pool::PoolConnection;
use sqlx::{MySql, Row};
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// The login lookup: one point read on the unique index `users_username`.
/// The user's row, or the decoy (id 0) when there is none: see
/// `DECOY_PASSWORD_HASH`. Binds the name twice, then the decoy hash.
pub const LOGIN_LOOKUP_SQL: &str =
    "SELECT id, username, password_hash, created_at, password_changed_at FROM users WHERE username = ? \
     UNION ALL SELECT 0, ?, ?, 0, 0 ORDER BY id DESC LIMIT 1";

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

/// What the lag monitor knows about one replica.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaStatus {
    /// `host:port`, the `replica` label of `sesame_replica_lag_seconds`.
    pub name: String,
    /// It answered the last heartbeat read.
    pub up: bool,
    /// How far behind the primary it is, as last measured.
    pub lag: Option<Duration>,
    /// Login lookups may read it now (up and within the lag bound).
    pub usable: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct ReplicaState {
    up: bool,
    /// The newest heartbeat (ms) this replica has applied.
    seen_ms: Option<i64>,
    lag_ms: Option<i64>,
}

struct Replica {
    name: String,
    pool: MySqlPool,
    state: Mutex<ReplicaState>,
}

impl Replica {
    fn state(&self) -> ReplicaState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark_down(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).up = false;
        metrics::gauge!("sesame_replica_up", "replica" => self.name.clone()).set(0.0);
    }
}

struct Inner {
    primary: MySqlPool,
    primary_name: String,
    /// The primary took the last heartbeat write.
    primary_up: AtomicBool,
    /// The last heartbeat this process wrote to the primary (ms).
    last_heartbeat_ms: AtomicI64,
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

/// A text column as a string. `utf8mb4_bin` columns are reported as
/// VARBINARY by some servers, so decode bytes.
fn text(row: &MySqlRow, column: &str) -> Result<String, StoreError> {
    let bytes: Vec<u8> = row
        .try_get(column)
        .map_err(|e| StoreError::Other(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| StoreError::Other(format!("{column}: {e}")))
}

fn user_from_row(row: &MySqlRow) -> Result<UserRecord, StoreError> {
    let name = text(row, "username")?;
    let hash = text(row, "password_hash")?;
    Ok(UserRecord {
        id: row
            .try_get("id")
            .map_err(|e| StoreError::Other(e.to_string()))?,
        username: Username::parse(&name)
            .map_err(|e| StoreError::Other(format!("stored username {name:?}: {e}")))?,
        password_hash: hash.into(),
        created_at: from_ms(
            row.try_get("created_at")
                .map_err(|e| StoreError::Other(e.to_string()))?,
        ),
        password_changed_at: from_ms(
            row.try_get("password_changed_at")
                .map_err(|e| StoreError::Other(e.to_string()))?,
        ),
    })
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
            last_heartbeat_ms: AtomicI64::new(0),
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

    /// The replicas as the lag monitor last saw them.
    pub fn replica_status(&self) -> Vec<ReplicaStatus> {
        let max = self.inner.settings.max_replica_lag.as_millis() as i64;
        self.inner
            .replicas
            .iter()
            .map(|r| {
                let s = r.state();
                ReplicaStatus {
                    name: r.name.clone(),
                    up: s.up,
                    lag: s.lag_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
                    usable: s.up && s.lag_ms.is_some_and(|l| l <= max),
                }
            })
            .collect()
    }

    /// Whether the primary took the last heartbeat.
    pub fn primary_up(&self) -> bool {
        self.inner.primary_up.load(Ordering::Relaxed)
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
        let beat = now_ms();
        let left = deadline.saturating_duration_since(Instant::now());
        match bounded(&i.primary_name, left, i.heartbeat(beat)).await {
            Ok(_) => {
                i.last_heartbeat_ms.fetch_max(beat, Ordering::Relaxed);
                if let Err(e) = i.markers.commit(user, beat).await {
                    tracing::warn!(error = %e, "could not stamp a recent-write marker");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not stamp a write with a heartbeat"),
        }
        Ok(done)
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

    /// Where a login lookup for a user with `marker` may read, in the order
    /// to try them (`None` is the primary). With a marker the primary comes
    /// first, then the replicas that have applied the write; without one,
    /// the replicas within the lag bound, then the primary. A primary the
    /// heartbeat found down is left out: trying it would spend the login's
    /// budget on a connection that cannot succeed. It is back in the order
    /// within one heartbeat of its return.
    fn lookup_order(&self, marker: Option<i64>) -> Vec<Option<&Replica>> {
        let replicas = self.candidates(marker).into_iter().map(Some);
        let primary = self.primary_up().then_some(None);
        if marker.is_some() {
            primary.into_iter().chain(replicas).collect()
        } else {
            replicas.chain(primary).collect()
        }
    }

    /// The replicas a lookup may read, in the order to try them. With a
    /// marker, only those that have applied the write.
    fn candidates(&self, marker: Option<i64>) -> Vec<&Replica> {
        let i = &self.inner;
        let max = i.settings.max_replica_lag.as_millis() as i64;
        let usable: Vec<&Replica> = i
            .replicas
            .iter()
            .filter(|r| {
                let s = r.state();
                s.up && s.lag_ms.is_some_and(|l| l <= max)
                    && match marker {
                        None => true,
                        Some(PENDING) => false,
                        Some(written) => s.seen_ms.is_some_and(|seen| seen >= written),
                    }
            })
            .collect();
        if usable.is_empty() {
            return usable;
        }
        let start = i.next_replica.fetch_add(1, Ordering::Relaxed) % usable.len();
        usable[start..]
            .iter()
            .chain(&usable[..start])
            .copied()
            .collect()
    }
}

impl Inner {
    /// Writes heartbeat `beat` (ms) on the primary; it never goes back.
    fn heartbeat(
        &self,
        beat: i64,
    ) -> impl Future<Output = Result<sqlx::mysql::MySqlQueryResult, sqlx::Error>> + '_ {
        sqlx::query("UPDATE heartbeat SET ts = GREATEST(ts, ?) WHERE id = 1")
            .bind(beat)
            .execute(&self.primary)
    }

    /// Writes the heartbeat on the primary, reads it on every replica, and
    /// derives each replica's lag.
    async fn tick(&self) {
        let budget = self
            .settings
            .timeout
            .min(self.settings.heartbeat_interval * 4);
        let beat = now_ms();
        let wrote = bounded(&self.primary_name, budget, self.heartbeat(beat)).await;
        let primary_up = wrote.is_ok();
        if primary_up {
            self.last_heartbeat_ms.fetch_max(beat, Ordering::Relaxed);
        } else if self.primary_up.load(Ordering::Relaxed) {
            tracing::warn!(primary = %self.primary_name, "primary database is not answering");
        }
        self.primary_up.store(primary_up, Ordering::Relaxed);
        metrics::gauge!("sesame_primary_up").set(if primary_up { 1.0 } else { 0.0 });

        let mut reads = tokio::task::JoinSet::new();
        for (n, r) in self.replicas.iter().enumerate() {
            let pool = r.pool.clone();
            let name = r.name.clone();
            reads.spawn(async move {
                let seen = bounded(
                    &name,
                    budget,
                    sqlx::query_scalar::<_, i64>("SELECT ts FROM heartbeat WHERE id = 1")
                        .fetch_one(&pool),
                )
                .await;
                (n, seen)
            });
        }
        let mut seen = vec![None; self.replicas.len()];
        while let Some(Ok((n, result))) = reads.join_next().await {
            seen[n] = result.ok();
        }
        // What "now" is on the primary's timeline: the present while the
        // primary takes heartbeats; while it does not, nothing newer than
        // the last heartbeat (or the freshest replica) exists, so a replica
        // that has applied all of it is not behind at all.
        let reference = if primary_up {
            now_ms()
        } else {
            let freshest = seen.iter().flatten().copied().max().unwrap_or(0);
            self.last_heartbeat_ms.load(Ordering::Relaxed).max(freshest)
        };
        for (r, seen) in self.replicas.iter().zip(seen) {
            let mut state = r.state.lock().unwrap_or_else(|e| e.into_inner());
            match seen {
                Some(ts) => {
                    let lag = (reference - ts).max(0);
                    if !state.up {
                        tracing::info!(replica = %r.name, lag_ms = lag, "replica is answering");
                    }
                    *state = ReplicaState {
                        up: true,
                        seen_ms: Some(ts),
                        lag_ms: Some(lag),
                    };
                    metrics::gauge!("sesame_replica_lag_seconds", "replica" => r.name.clone())
                        .set(lag as f64 / 1000.0);
                    metrics::gauge!("sesame_replica_up", "replica" => r.name.clone()).set(1.0);
                }
                None => {
                    if state.up {
                        tracing::warn!(replica = %r.name, "replica is not answering");
                    }
                    state.up = false;
                    metrics::gauge!("sesame_replica_up", "replica" => r.name.clone()).set(0.0);
                }
            }
        }
    }
}

/// Runs the heartbeat until the store is dropped.
async fn monitor(inner: Weak<Inner>) {
    loop {
        let interval = match inner.upgrade() {
            Some(i) => i.settings.heartbeat_interval,
            None => return,
        };
        tokio::time::sleep(interval).await;
        match inner.upgrade() {
            Some(i) => i.tick().await,
            None => return,
        }
    }
}

#[async_trait]
impl UserStore for MySqlStore {
    async fn find_for_login(
        &self,
        username: &Username,
    ) -> Result<(Option<UserRecord>, DbRole), StoreError> {
        self.find_for_login_by(username, Instant::now() + self.inner.settings.timeout)
            .await
    }

    async fn find_for_login_by(
        &self,
        username: &Username,
        deadline: Instant,
    ) -> Result<(Option<UserRecord>, DbRole), StoreError> {
        let i = &self.inner;
        let deadline = deadline.min(Instant::now() + i.settings.timeout);
        let marker = match i.markers.get(username.as_str()).await {
            Ok(m) => m,
            Err(e) => {
                // Unknown whether the user was just written: only the
                // primary is safe.
                tracing::warn!(error = %e, "recent-write markers unreadable; reading the primary");
                Some(PENDING)
            }
        };
        let order = self.lookup_order(marker);
        let mut failures = Vec::new();
        let attempts = order.len();
        for (n, target) in order.into_iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let budget = left / (attempts - n) as u32;
            let (pool, name, role) = match target {
                Some(r) => (&r.pool, r.name.as_str(), DbRole::Replica),
                None => (&i.primary, i.primary_name.as_str(), DbRole::Primary),
            };
            let started = Instant::now();
            let found = bounded(
                name,
                budget,
                sqlx::query(LOGIN_LOOKUP_SQL)
                    .bind(username.as_str())
                    .bind(username.as_str())
                    .bind(crate::DECOY_PASSWORD_HASH)
                    .fetch_one(pool),
            )
            .await;
            observe("find_for_login", role, started);
            match found {
                Ok(row) => {
                    let user = Some(user_from_row(&row)?).filter(|u| u.id != 0);
                    if let Some(u) = &user {
                        i.names.insert(u.id, u.username.as_str().to_owned());
                    }
                    return Ok((user, role));
                }
                Err(e) => {
                    if let Some(r) = target {
                        r.mark_down();
                    } else if !matches!(e, StoreError::Unavailable(_)) {
                        return Err(e);
                    }
                    failures.push(e.to_string());
                }
            }
        }
        Err(StoreError::Unavailable(if failures.is_empty() {
            match marker {
                Some(_) => "no database may answer this lookup: the primary is down and no replica \
                            has applied this user's last write yet"
                    .into(),
                None => "no database may answer this lookup (primary down, no replica within the lag bound)"
                    .into(),
            }
        } else {
            format!("no database answered: {}", failures.join("; "))
        }))
    }

    async fn create(&self, user: NewUser) -> Result<UserRecord, StoreError> {
        let now = to_ms(user.created_at);
        let (name, hash) = (user.username.as_str(), user.password_hash.as_str());
        let id = self
            .write("create_user", name, |mut conn| async move {
                sqlx::query(
                    "INSERT INTO users (username, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?)",
                )
                .bind(name)
                .bind(hash)
                .bind(now)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map(|done| done.last_insert_id() as i64)
            })
            .await?;
        Ok(UserRecord {
            id,
            username: user.username,
            password_hash: user.password_hash.into(),
            created_at: user.created_at,
            password_changed_at: user.created_at,
        })
    }

    // Bulk seeding sets no markers: imported users become visible on the
    // replicas within the lag bound.
    async fn import(&self, users: &[NewUser]) -> Result<u64, StoreError> {
        let pool = &self.inner.primary;
        let name = &self.inner.primary_name;
        let mut tx = bounded(name, self.inner.settings.timeout, pool.begin()).await?;
        let mut inserted = 0;
        for user in users {
            let now = to_ms(user.created_at);
            let done = sqlx::query(
                "INSERT IGNORE INTO users (username, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?)",
            )
            .bind(user.username.as_str())
            .bind(&user.password_hash)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(name, e))?;
            inserted += done.rows_affected();
        }
        tx.commit().await.map_err(|e| map_err(name, e))?;
        Ok(inserted)
    }

    async fn set_password_hash(
        &self,
        user_id: i64,
        password_hash: &str,
        changed_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let user = self.username_of(user_id).await?;
        let changed = to_ms(changed_at);
        let done = self
            .write("set_password_hash", &user, |mut conn| async move {
                sqlx::query(
                    "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
                )
                .bind(password_hash)
                .bind(changed)
                .bind(user_id)
                .execute(&mut *conn)
                .await
            })
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn upgrade_hash(
        &self,
        user_id: i64,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<(), StoreError> {
        let user = self.username_of(user_id).await?;
        self.write("upgrade_hash", &user, |mut conn| async move {
            sqlx::query("UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?")
                .bind(new_hash)
                .bind(user_id)
                .bind(old_hash)
                .execute(&mut *conn)
                .await
        })
        .await?;
        Ok(())
    }

    async fn remove(&self, username: &Username) -> Result<(), StoreError> {
        let name = username.as_str();
        let done = self
            .write("remove_user", name, |mut conn| async move {
                sqlx::query("DELETE FROM users WHERE username = ?")
                    .bind(name)
                    .execute(&mut *conn)
                    .await
            })
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn password_unchanged(&self, user: &UserRecord) -> Result<bool, StoreError> {
        // Every write to a user's row sets its recent-write marker first, and
        // the marker outlives a login (seconds against a latency budget). No
        // marker: nothing was written since this login's lookup. Otherwise
        // the primary decides.
        let marker = match self.inner.markers.get(user.username.as_str()).await {
            Ok(None) => return Ok(true),
            Ok(Some(marker)) => marker,
            Err(e) => {
                tracing::warn!(error = %e, "recent-write markers unreadable; asking the primary");
                PENDING
            }
        };
        const SQL: &str = "SELECT password_changed_at FROM users WHERE id = ?";
        let started = Instant::now();
        // With the primary down no write can land, and a replica that has
        // applied the user's last marked write knows the answer (a later
        // write would have set a newer marker first).
        if !self.primary_up() {
            let Some(replica) = self.candidates(Some(marker)).into_iter().next() else {
                return Err(StoreError::Unavailable(
                    "the primary is down and no replica has applied this user's last write yet"
                        .into(),
                ));
            };
            let changed_at: Option<i64> = bounded(
                &replica.name,
                self.inner.settings.timeout,
                sqlx::query_scalar(SQL)
                    .bind(user.id)
                    .fetch_optional(&replica.pool),
            )
            .await?;
            observe("password_unchanged", DbRole::Replica, started);
            return Ok(changed_at == Some(to_ms(user.password_changed_at)));
        }
        let changed_at: Option<i64> = self
            .on_primary(
                sqlx::query_scalar(SQL)
                    .bind(user.id)
                    .fetch_optional(&self.inner.primary),
            )
            .await?;
        observe("password_unchanged", DbRole::Primary, started);
        Ok(changed_at == Some(to_ms(user.password_changed_at)))
    }

    // The operator's listing reads the primary: it is authoritative.
    async fn list(
        &self,
        after: Option<&Username>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let rows = self
            .on_primary(
                sqlx::query(
                    "SELECT id, username, password_hash, created_at, password_changed_at FROM users WHERE username > ? ORDER BY username LIMIT ?",
                )
                .bind(after.map_or("", Username::as_str))
                .bind(i64::from(limit))
                .fetch_all(&self.inner.primary),
            )
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Ready while logins can be served: the primary answers, or a replica
    /// within the lag bound does.
    async fn ready(&self) -> Result<(), StoreError> {
        let primary = self
            .on_primary(sqlx::query("SELECT 1").execute(&self.inner.primary))
            .await;
        match primary {
            Ok(_) => Ok(()),
            Err(_) if self.replica_status().iter().any(|r| r.usable) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Sessions on the primary, used only when no Redis is configured. Always
/// read from the primary: a revoked session must not linger on a replica.
#[async_trait]
impl SessionStore for MySqlStore {
    async fn create(&self, session: &Session) -> Result<(), StoreError> {
        self.on_primary(
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            )
            .bind(session.token_hash.as_bytes())
            .bind(session.user_id)
            .bind(to_ms(session.created_at))
            .bind(to_ms(session.expires_at))
            .execute(&self.inner.primary),
        )
        .await?;
        Ok(())
    }

    async fn find(
        &self,
        token_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let row = self
            .on_primary(
                sqlx::query(
                    "SELECT s.user_id, u.username, s.created_at, s.expires_at FROM sessions s \
                     JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
                )
                .bind(token_hash.as_bytes())
                .bind(to_ms(now))
                .fetch_optional(&self.inner.primary),
            )
            .await?;
        row.map(|row| {
            let get = |e: sqlx::Error| StoreError::Other(e.to_string());
            Ok(Session {
                token_hash: *token_hash,
                user_id: row.try_get("user_id").map_err(get)?,
                username: text(&row, "username")?,
                created_at: from_ms(row.try_get("created_at").map_err(get)?),
                expires_at: from_ms(row.try_get("expires_at").map_err(get)?),
            })
        })
        .transpose()
    }

    async fn revoke(&self, token_hash: &TokenHash) -> Result<(), StoreError> {
        self.on_primary(
            sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
                .bind(token_hash.as_bytes())
                .execute(&self.inner.primary),
        )
        .await?;
        Ok(())
    }

    async fn revoke_all(&self, user_id: i64) -> Result<u64, StoreError> {
        let done = self
            .on_primary(
                sqlx::query("DELETE FROM sessions WHERE user_id = ?")
                    .bind(user_id)
                    .execute(&self.inner.primary),
            )
            .await?;
        Ok(done.rows_affected())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.on_primary(sqlx::query("SELECT 1").execute(&self.inner.primary))
            .await
            .map(|_| ())
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
