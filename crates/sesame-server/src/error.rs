//! The one error type at the HTTP boundary. Every failure becomes
//! `{"error":{"code","message"}}` with a fitting status; internal details
//! are logged, never echoed.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sesame_domain::AuthError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: a code and a message naming the problem.
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// Well-formed but invalid input: a code and a message naming the problem.
    #[error("{1}")]
    Unprocessable(&'static str, String),
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("no such resource")]
    NotFound,
    /// The path exists, the method does not (the answer carries `Allow`).
    #[error("method not allowed here; the Allow header lists those that are")]
    MethodNotAllowed,
    #[error("invalid user or password")]
    InvalidCredentials,
    #[error("no valid session")]
    Unauthenticated,
    #[error("user already exists")]
    UserExists,
    #[error("too many attempts; retry later")]
    RateLimited {
        retry_after: Duration,
        scope: &'static str,
    },
    #[error("too many logins in progress; retry later")]
    Overloaded { retry_after: Duration },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(..) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(..) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InvalidCredentials | ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::UserExists => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code; also the `outcome` of a login event.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(code, _) | ApiError::Unprocessable(code, _) => code,
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::UserExists => "user_exists",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// How long to wait before trying again, for `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } | ApiError::Overloaded { retry_after } => {
                Some(*retry_after)
            }
            ApiError::Unavailable(_) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after()
            .map(|after| (after.as_secs_f64().ceil() as u64).max(1))
    }

    /// What the client may be told: internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(_) => "internal error".to_owned(),
            ApiError::Unavailable(_) => "service temporarily unavailable; retry shortly".to_owned(),
            other => other.to_string(),
        }
    }

    /// What every answer with this error does besides answering (the JSON
    /// envelope here, a page in `web`): count a rate limit, log what the
    /// client is not told.
    pub fn report(&self) {
        match self {
            ApiError::RateLimited { scope, .. } => crate::metrics::record_rate_limited(scope),
            ApiError::Internal(detail) => tracing::error!(detail, "internal error"),
            ApiError::Unavailable(detail) => tracing::warn!(detail, "dependency unavailable"),
            _ => {}
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => ApiError::InvalidCredentials,
            AuthError::UserExists => ApiError::UserExists,
            AuthError::WeakPassword(p) => ApiError::Unprocessable("weak_password", p.to_string()),
            AuthError::Overloaded { retry_after } => ApiError::Overloaded { retry_after },
            AuthError::RateLimited { scope, retry_after } => ApiError::RateLimited {
                retry_after,
                scope: scope.as_str(),
            },
            AuthError::Unavailable(m) => ApiError::Unavailable(m),
            AuthError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.report();
        let body = serde_json::json!({ "error": { "code": self.code(), "message": self.public_message() } });
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Every error answer: `{"error":{"code","message"}}` (its schema in
/// `/openapi.json`; [`ApiError`] writes it).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Machine-readable: `invalid_credentials`, `rate_limited`, `overloaded`, ...
    code: String,
    message: String,
}
