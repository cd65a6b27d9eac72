//! Users on the primary, login lookups on the replicas.

use super::{bounded, map_err, MySqlStore};
use crate::decoy::DECOY_PASSWORD_HASH;
use crate::markers::PENDING;
use crate::query_metrics::observe;
use crate::sql::{changed_a_row, SET_PASSWORD_HASH};
use crate::time::{from_ms, to_ms};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sesame_domain::{DbRole, NewUser, StoreError, UserRecord, UserStore, Username, WriteMark};
use sqlx::mysql::MySqlRow;
use sqlx::Row;
use std::time::Instant;

/// The login lookup: one point read on the unique index `users_username`.
/// The user's row, or the decoy (id 0) when there is none: see
/// `DECOY_PASSWORD_HASH`. Binds the name twice, then the decoy hash.
pub const LOGIN_LOOKUP_SQL: &str =
    "SELECT id, username, password_hash, created_at, password_changed_at FROM users WHERE username = ? \
     UNION ALL SELECT 0, ?, ?, 0, 0 ORDER BY id DESC LIMIT 1";

/// A text column as a string. `utf8mb4_bin` columns are reported as
/// VARBINARY by some servers, so decode bytes.
pub(super) fn text(row: &MySqlRow, column: &str) -> Result<String, StoreError> {
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
        let mark = self.write_mark(username).await;
        self.find_for_login_marked(username, mark, deadline).await
    }

    /// The recent-write marker; unreadable, it is PENDING: unknown whether
    /// the user was just written, so only the primary is safe.
    async fn write_mark(&self, username: &Username) -> WriteMark {
        match self.inner.markers.get(username.as_str()).await {
            Ok(m) => WriteMark(m),
            Err(e) => {
                tracing::warn!(error = %e, "recent-write markers unreadable; reading the primary");
                WriteMark(Some(PENDING))
            }
        }
    }

    async fn find_for_login_marked(
        &self,
        username: &Username,
        WriteMark(marker): WriteMark,
        deadline: Instant,
    ) -> Result<(Option<UserRecord>, DbRole), StoreError> {
        let i = &self.inner;
        let deadline = deadline.min(Instant::now() + i.settings.timeout);
        let order = self.lookup_order(marker);
        let mut failures = Vec::new();
        let attempts = order.len();
        let mut out_of_time = false;
        for (n, target) in order.into_iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                out_of_time = true;
                break;
            }
            let budget = left / (attempts - n) as u32;
            let (pool, name, role) = match target {
                Some(r) => (&r.pool, r.name.as_str(), DbRole::Replica),
                None => (&i.primary, i.primary_name.as_str(), DbRole::Primary),
            };
            let started = Instant::now();
            let query = sqlx::query(LOGIN_LOOKUP_SQL)
                .bind(username.as_str())
                .bind(username.as_str())
                .bind(DECOY_PASSWORD_HASH)
                .fetch_one(pool);
            let found = tokio::time::timeout(budget, query).await;
            observe("find_for_login", role, started);
            match found {
                Ok(Ok(row)) => {
                    let user = Some(user_from_row(&row)?).filter(|u| u.id != 0);
                    if let Some(u) = &user {
                        i.names.insert(u.id, u.username.as_str().to_owned());
                    }
                    return Ok((user, role));
                }
                // Its share of this login's budget ran out: no sign that
                // the server is down (the heartbeat decides that), so the
                // next one is tried and this one stays in use.
                Err(_) => failures.push(format!("{name} did not answer within {budget:?}")),
                Ok(Err(e)) => {
                    let e = map_err(name, e);
                    if let Some(r) = target {
                        r.mark_down();
                    } else if !matches!(e, StoreError::Unavailable(_)) {
                        return Err(e);
                    }
                    failures.push(e.to_string());
                }
            }
        }
        if out_of_time && failures.is_empty() {
            return Err(StoreError::Unavailable(
                "the login's deadline passed before the lookup could start".into(),
            ));
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
        Ok(user.into_record(id))
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
        expected: Option<&str>,
        password_hash: &str,
        changed_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let user = self.username_of(user_id).await?;
        let changed = to_ms(changed_at);
        let done = self
            .write("set_password_hash", &user, |mut conn| async move {
                sqlx::query(SET_PASSWORD_HASH)
                    .bind(password_hash)
                    .bind(changed)
                    .bind(user_id)
                    .bind(expected)
                    .bind(expected)
                    .execute(&mut *conn)
                    .await
            })
            .await?;
        changed_a_row(done.rows_affected())
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
        changed_a_row(done.rows_affected())
    }

    async fn password_unchanged(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let WriteMark(now) = self.write_mark(&user.username).await;
        self.password_unchanged_at(user, now).await
    }

    /// Every write to a user's row sets its recent-write marker first (to
    /// PENDING, then to its commit stamp): the same settled marker before
    /// the lookup and after the session means nothing was written in
    /// between.
    async fn password_unchanged_between(
        &self,
        user: &UserRecord,
        WriteMark(before): WriteMark,
        WriteMark(after): WriteMark,
    ) -> Result<bool, StoreError> {
        if before.is_some() && before == after && after != Some(PENDING) {
            return Ok(true);
        }
        self.password_unchanged_at(user, after).await
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

impl MySqlStore {
    /// Whether `user`'s password is unchanged, given the user's marker now.
    /// No marker: nothing was written since the login's lookup (the marker
    /// outlives a login). Otherwise the primary decides.
    async fn password_unchanged_at(
        &self,
        user: &UserRecord,
        marker: Option<i64>,
    ) -> Result<bool, StoreError> {
        let Some(marker) = marker else {
            return Ok(true);
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
}
