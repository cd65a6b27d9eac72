//! `GET /v1/session` and `DELETE /v1/session`.

use crate::cookies;
use crate::error::{ApiError, ErrorBody};
use crate::extract::PresentedToken;
use crate::flows;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    pub user: String,
    /// RFC 3339, UTC, milliseconds: as `/v1/login` answers it.
    #[serde(serialize_with = "rfc3339_millis")]
    #[schema(example = "2026-11-30T18:12:37.123Z")]
    pub expires_at: DateTime<Utc>,
}

/// The one format of times in answers: RFC 3339 in UTC with milliseconds.
pub fn rfc3339_millis<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[utoipa::path(get, path = "/v1/session", tag = "sessions",
    security(("bearer" = []), ("cookie" = [])),
    responses(
    (status = 200, description = "the session is live", body = SessionResponse),
    (status = 401, description = "no token, or an unknown, expired or revoked one", body = ErrorBody),
    (status = 503, description = "the session store is unavailable", body = ErrorBody, headers(("Retry-After" = String, description = "seconds to wait")))))]
pub async fn current(
    State(state): State<AppState>,
    PresentedToken(token): PresentedToken,
) -> Result<Json<SessionResponse>, ApiError> {
    let session = flows::session(&state, &token)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    Ok(Json(SessionResponse {
        user: session.username,
        expires_at: session.expires_at,
    }))
}

#[utoipa::path(delete, path = "/v1/session", tag = "sessions",
    security(("bearer" = []), ("cookie" = [])),
    responses(
    (status = 204, description = "logged out; the cookie is cleared"),
    (status = 401, description = "no token presented", body = ErrorBody),
    (status = 503, description = "the session store is unavailable", body = ErrorBody, headers(("Retry-After" = String, description = "seconds to wait")))))]
pub async fn logout(
    State(state): State<AppState>,
    PresentedToken(token): PresentedToken,
) -> Result<Response, ApiError> {
    flows::logout(&state, &token).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    for clear in cookies::clear_session(state.cookie_secure()) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    Ok(response)
}
