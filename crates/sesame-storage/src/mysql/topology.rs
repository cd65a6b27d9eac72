//! The replicas and the primary as the heartbeat sees them: lag measured
//! every `heartbeat_interval`, and the order in which a login lookup may
//! try the servers.

use super::{bounded, now_ms, Inner, MySqlStore};
use crate::markers::PENDING;
use sqlx::mysql::MySqlPool;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, Weak};
use std::time::Duration;

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

/// Heartbeats a server must miss in a row to be taken for down: one slow
/// tick on a busy machine must not take the whole topology out of use.
/// A failed login lookup still takes a replica out at once.
const MISSES_TO_DOWN: u32 = 2;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ReplicaState {
    up: bool,
    /// Heartbeat reads missed in a row.
    misses: u32,
    /// The newest heartbeat (ms) this replica has applied.
    seen_ms: Option<i64>,
    lag_ms: Option<i64>,
}

pub(super) struct Replica {
    pub(super) name: String,
    pub(super) pool: MySqlPool,
    pub(super) state: Mutex<ReplicaState>,
}

impl Replica {
    pub(super) fn state(&self) -> ReplicaState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn mark_down(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).up = false;
        metrics::gauge!("sesame_replica_up", "replica" => self.name.clone()).set(0.0);
    }
}

impl MySqlStore {
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

    /// Where a login lookup for a user with `marker` may read, in the order
    /// to try them (`None` is the primary). With a marker the primary comes
    /// first, then the replicas that have applied the write; without one,
    /// the replicas within the lag bound, then the primary. A primary the
    /// heartbeat found down is left out: trying it would spend the login's
    /// budget on a connection that cannot succeed. It is back in the order
    /// within one heartbeat of its return.
    pub(super) fn lookup_order(&self, marker: Option<i64>) -> Vec<Option<&Replica>> {
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
    pub(super) fn candidates(&self, marker: Option<i64>) -> Vec<&Replica> {
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
    pub(super) fn heartbeat(
        &self,
        beat: i64,
    ) -> impl Future<Output = Result<sqlx::mysql::MySqlQueryResult, sqlx::Error>> + '_ {
        sqlx::query("UPDATE heartbeat SET ts = GREATEST(ts, ?) WHERE id = 1")
            .bind(beat)
            .execute(&self.primary)
    }

    /// Writes the heartbeat on the primary, reads it on every replica, and
    /// derives each replica's lag.
    pub(super) async fn tick(&self) {
        let budget = self
            .settings
            .timeout
            .min(self.settings.heartbeat_interval * 4);
        let beat = now_ms();
        let wrote = bounded(&self.primary_name, budget, self.heartbeat(beat)).await;
        let misses = if wrote.is_ok() {
            self.primary_misses.store(0, Ordering::Relaxed);
            0
        } else {
            self.primary_misses.fetch_add(1, Ordering::Relaxed) + 1
        };
        let primary_up = misses < MISSES_TO_DOWN;
        if !primary_up && self.primary_up.load(Ordering::Relaxed) {
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
        // While the primary takes heartbeats, a replica is as far behind as
        // its last heartbeat is old. While it does not, nothing newer than
        // the freshest replica's heartbeat can be acknowledged (writes wait
        // for a replica), so a replica that has all of that is not behind at
        // all and stays in rotation through the outage. One that lacks some
        // of it may lack writes acknowledged just before the outage whose
        // recent-write markers expire in real time: it stays as far behind
        // as its last heartbeat is old, and leaves the rotation once that
        // passes the bound, before those markers expire.
        let now = now_ms();
        let newest = if wrote.is_ok() {
            now
        } else {
            seen.iter().flatten().copied().max().unwrap_or(now)
        };
        for (r, seen) in self.replicas.iter().zip(seen) {
            let mut state = r.state.lock().unwrap_or_else(|e| e.into_inner());
            match seen {
                Some(ts) => {
                    let lag = if ts >= newest { 0 } else { (now - ts).max(0) };
                    if !state.up {
                        tracing::info!(replica = %r.name, lag_ms = lag, "replica is answering");
                    }
                    *state = ReplicaState {
                        up: true,
                        misses: 0,
                        seen_ms: Some(ts),
                        lag_ms: Some(lag),
                    };
                    metrics::gauge!("sesame_replica_lag_seconds", "replica" => r.name.clone())
                        .set(lag as f64 / 1000.0);
                    metrics::gauge!("sesame_replica_up", "replica" => r.name.clone()).set(1.0);
                }
                None => {
                    state.misses += 1;
                    if state.misses < MISSES_TO_DOWN {
                        continue;
                    }
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
pub(super) async fn monitor(inner: Weak<Inner>) {
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
