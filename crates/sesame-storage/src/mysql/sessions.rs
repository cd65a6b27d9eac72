//! Sessions on the primary, used only when no Redis is configured.

use super::users::text;
use super::MySqlStore;
use crate::sql::{FIND_SESSION, INSERT_SESSION};
use crate::time::{from_ms, to_ms};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sesame_domain::{Session, SessionStore, StoreError, TokenHash};
use sqlx::Row;

/// Sessions on the primary, used only when no Redis is configured. Always
/// read from the primary: a revoked session must not linger on a replica.
#[async_trait]
impl SessionStore for MySqlStore {
    async fn create(&self, session: &Session) -> Result<(), StoreError> {
        self.on_primary(
            sqlx::query(INSERT_SESSION)
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
                sqlx::query(FIND_SESSION)
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
