//! `POST /v1/login`: the body the API tier sends, one event per attempt.

use crate::cookies;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::flows::{self, Caller, ClientLabels, LoggedIn, LoginInput};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Client-reported context, recorded in events and metrics.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ClientInfo {
    pub region: Option<String>,
    pub platform: Option<String>,
    pub app_version: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// When the client saw the attempt: `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339.
    /// Recorded, never trusted.
    #[schema(example = "1000-01-01 00:00:00")]
    pub timestamp: Option<String>,
    /// The end user's address, optionally with a CIDR suffix. Believed only
    /// when every hop (`X-Forwarded-For` and the connection's peer) is a
    /// trusted proxy; otherwise the nearest untrusted hop counts.
    #[serde(alias = "IP")]
    #[schema(example = "127.0.0.1/32")]
    pub ip: Option<String>,
    #[schema(example = "SioKCronin")]
    pub user: String,
    #[schema(example = "IHeartData")]
    pub password: String,
    pub client: Option<ClientInfo>,
}

impl From<LoginRequest> for LoginInput {
    fn from(req: LoginRequest) -> Self {
        let client = req.client.unwrap_or_default();
        LoginInput {
            user: req.user,
            password: req.password,
            timestamp: req.timestamp,
            ip: req.ip,
            client: ClientLabels {
                region: client.region,
                platform: client.platform,
                app_version: client.app_version,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Opaque bearer token (256 bits, base64url).
    pub session: String,
    pub user: String,
    /// RFC 3339, UTC, milliseconds: as `/v1/session` answers it.
    #[serde(serialize_with = "crate::routes::session::rfc3339_millis")]
    #[schema(example = "2026-11-30T18:12:37.123Z")]
    pub expires_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/v1/login", tag = "sessions", request_body = LoginRequest, responses(
    (status = 200, description = "logged in; also sets the session cookie", body = LoginResponse),
    (status = 400, description = "malformed JSON", body = ErrorBody),
    (status = 401, description = "unknown user or wrong password (indistinguishable)", body = ErrorBody),
    (status = 413, description = "body over 8 KiB", body = ErrorBody),
    (status = 415, description = "not JSON", body = ErrorBody),
    (status = 422, description = "a field is missing or invalid", body = ErrorBody),
    (status = 429, description = "rate limited; see Retry-After", body = ErrorBody, headers(("Retry-After" = String, description = "seconds to wait"))),
    (status = 503, description = "overloaded or storage unavailable; see Retry-After", body = ErrorBody, headers(("Retry-After" = String, description = "seconds to wait")))))]
pub async fn login(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<LoginRequest>, ApiError>,
) -> Response {
    let input = body.map(|ApiJson(req)| req.into());
    match flows::login(&state, &caller, input).await.result {
        Ok(LoggedIn {
            token,
            user,
            expires_at,
        }) => {
            let ttl = state.config.login.session_ttl;
            let cookie = cookies::set_session(token.as_str(), ttl, state.cookie_secure());
            let body = LoginResponse {
                session: token.as_str().to_owned(),
                user,
                expires_at,
            };
            ([(header::SET_COOKIE, cookie)], Json(body)).into_response()
        }
        Err(e) => e.into_response(),
    }
}
