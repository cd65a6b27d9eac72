//! Request extractors that turn HTTP into domain input or an [`ApiError`],
//! shared by the API handlers and the pages.

use crate::client_ip::ClientAddr;
use crate::error::ApiError;
use crate::flows::Caller;
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use serde::de::DeserializeOwned;
use sesame_domain::SessionToken;
use std::net::SocketAddr;

/// Set on every request (a UUID unless a caller sent one), echoed in the
/// answer and recorded in login events.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A JSON body whose every failure is a clear [`ApiError`].
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonDataError(e) => {
            ApiError::Unprocessable("invalid_request", describe(&e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::BadRequest("invalid_json", describe(&e.body_text()))
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        other => ApiError::BadRequest("invalid_body", describe(&other.body_text())),
    }
}

/// axum's messages start with a generic prefix; keep the part that names the
/// problem (serde's "missing field `user` at line 1 column 20").
fn describe(text: &str) -> String {
    let detail = text.rsplit(": ").next().unwrap_or(text);
    format!("invalid request body: {detail}")
}

/// The session token from `Authorization: Bearer` or the session cookie.
pub struct PresentedToken(pub SessionToken);

impl FromRequestParts<AppState> for PresentedToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme name is case-insensitive (RFC 9110 §11.1).
            .and_then(|v| {
                v.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            })
            .map(|(_, token)| token)
            .map(str::trim);
        let cookie = || crate::cookies::session(&parts.headers, state.cookie_secure());
        bearer
            .or_else(cookie)
            .and_then(SessionToken::parse)
            .map(PresentedToken)
            .ok_or(ApiError::Unauthenticated)
    }
}

/// Who is asking: the client's address by the trusted-proxy rule
/// ([`crate::client_ip`]) and the request id.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
            .ok_or_else(|| ApiError::Internal("no peer address: serve with connect info".into()))?;
        let headers = &parts.headers;
        Ok(Caller {
            addr: ClientAddr::resolve(peer.ip(), headers, &state.config.trusted_proxies),
            request_id: headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        })
    }
}
