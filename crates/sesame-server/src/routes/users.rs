//! `POST /v1/users` and `PUT /v1/users/{user}/password`.

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::openapi::ErrorBody;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use sesame_domain::{Password, Username};
use std::net::SocketAddr;
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

pub fn parse_username(raw: &str) -> Result<Username, ApiError> {
    Username::parse(raw).map_err(|e| ApiError::Unprocessable("invalid_user", e.to_string()))
}

fn parse_new_username(raw: &str) -> Result<Username, ApiError> {
    Username::parse_new(raw).map_err(|e| ApiError::Unprocessable("invalid_user", e.to_string()))
}

fn parse_password(state: &AppState, raw: &str) -> Result<Password, ApiError> {
    Password::parse(raw, &state.service.settings().policy)
        .map_err(|e| ApiError::Unprocessable("invalid_password", e.to_string()))
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let username = parse_new_username(&req.user)?;
    let password = parse_password(&state, &req.password)?;
    state
        .service
        .register(&username, password, Some(peer.ip()))
        .await?;
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(user): Path<String>,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let username = parse_username(&user)?;
    let old = parse_password(&state, &req.old_password)?;
    let new = parse_password(&state, &req.new_password)?;
    state
        .service
        .change_password(&username, old, new, peer.ip())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
