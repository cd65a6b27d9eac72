//! `POST /v1/users` and `PUT /v1/users/{user}/password`.

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::flows::{self, Caller};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(example = "SioKCronin")]
    pub user: String,
    #[schema(example = "IHeartData")]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// The user name in canonical form: the one to log in with.
    pub user: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub old_password: String,
    pub new_password: String,
}

#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = RegisterRequest, responses(
    (status = 201, description = "registered", body = RegisterResponse),
    (status = 400, description = "malformed JSON", body = ErrorBody),
    (status = 409, description = "user_exists", body = ErrorBody),
    (status = 413, description = "body over 8 KiB", body = ErrorBody),
    (status = 415, description = "not JSON", body = ErrorBody),
    (status = 422, description = "invalid user name, or password too short, too long or too common", body = ErrorBody),
    (status = 429, description = "rate limited (per address)", body = ErrorBody, headers(("Retry-After" = String, description = "seconds to wait"))),
    (status = 503, description = "overloaded or the primary database is unavailable", body = ErrorBody, headers(("Retry-After" = String, description = "seconds to wait")))))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let username = flows::register(&state, &caller, &req.user, &req.password).await?;
    let location = format!("/v1/users/{username}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(RegisterResponse {
            user: username.to_string(),
        }),
    ))
}

#[utoipa::path(put, path = "/v1/users/{user}/password", tag = "users", request_body = ChangePasswordRequest,
    params(("user" = String, Path, description = "the user name")),
    responses(
    (status = 204, description = "changed; every session of the user is revoked"),
    (status = 400, description = "malformed JSON", body = ErrorBody),
    (status = 401, description = "unknown user or wrong old password", body = ErrorBody),
    (status = 413, description = "body over 8 KiB", body = ErrorBody),
    (status = 415, description = "not JSON", body = ErrorBody),
    (status = 422, description = "invalid user name, or the new password is not acceptable", body = ErrorBody),
    (status = 429, description = "rate limited (per address or account)", body = ErrorBody, headers(("Retry-After" = String, description = "seconds to wait"))),
    (status = 503, description = "overloaded or the primary database is unavailable", body = ErrorBody, headers(("Retry-After" = String, description = "seconds to wait")))))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    flows::change_password(&state, &caller, &user, &req.old_password, &req.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}
