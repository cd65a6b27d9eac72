//! `POST /v1/login`: the body the API tier sends, one event per attempt.

use crate::app::{AppState, SERVER_VERSION};
use crate::error::ApiError;
use crate::extract::{ApiJson, SESSION_COOKIE};
use crate::openapi::ErrorBody;
use crate::routes::REQUEST_ID;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sesame_domain::event::{LoginEvent, Outcome};
use sesame_domain::{AuthError, LoginOutcome, Password, StageTimings, Username};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
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
    /// from trusted proxies; otherwise the connection's peer address counts.
    #[serde(alias = "IP")]
    #[schema(example = "127.0.0.1/32")]
    pub ip: Option<String>,
    #[schema(example = "SioKCronin")]
    pub user: String,
    #[schema(example = "IHeartData")]
    pub password: String,
    pub client: Option<ClientInfo>,
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

/// Longest client-supplied label kept in an event.
const MAX_LABEL_CHARS: usize = 64;

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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<ApiJson<LoginRequest>, ApiError>,
) -> Response {
    let mut recorder = Recorder::begin(&state, peer.ip(), &headers);
    let result = attempt(&state, peer.ip(), body, &mut recorder).await;
    let response = match result {
        Ok(ok) => {
            let cookie = session_cookie(&state, &ok.session, state.config.login.session_ttl);
            ([(header::SET_COOKIE, cookie)], Json(ok)).into_response()
        }
        Err(e) => e.into_response(),
    };
    recorder.answered(response.status());
    response
}

async fn attempt(
    state: &AppState,
    peer: IpAddr,
    body: Result<ApiJson<LoginRequest>, ApiError>,
    recorder: &mut Recorder,
) -> Result<LoginResponse, ApiError> {
    let event = &mut recorder.event;
    let ApiJson(req) = body?;
    event.user = label(&req.user);
    let client = req.client.unwrap_or_default();
    event.region = client.region.as_deref().map(label).unwrap_or_default();
    event.platform = client.platform.as_deref().map(label).unwrap_or_default();
    event.app_version = client.app_version.as_deref().map(label).unwrap_or_default();
    if let Some(ts) = &req.timestamp {
        parse_client_timestamp(ts)?;
        event.client_ts = Some(label(ts));
    }
    let claimed = req.ip.as_deref().map(parse_ip).transpose()?;
    let client_ip = match claimed {
        Some(ip)
            if state
                .config
                .trusted_proxies
                .iter()
                .any(|net| net.contains(&peer)) =>
        {
            ip
        }
        _ => peer,
    };
    event.ip = client_ip.to_string();
    let username = Username::parse(&req.user)
        .map_err(|e| ApiError::Unprocessable("invalid_user", e.to_string()))?;
    event.user = username.to_string();
    let password = Password::parse(&req.password, &state.service.settings().policy)
        .map_err(|e| ApiError::Unprocessable("invalid_password", e.to_string()))?;
    let outcome = state
        .service
        .login(&username, password, client_ip, recorder.arrived)
        .await;
    recorder.reached_service(&outcome);
    let issued = outcome.result?;
    Ok(LoginResponse {
        session: issued.token.as_str().to_owned(),
        user: issued.session.username,
        expires_at: issued.session.expires_at,
    })
}

/// Longest cause kept in an event.
const MAX_CAUSE_CHARS: usize = 240;

/// One login attempt's event. It is written when the attempt is answered,
/// or, when the client goes away first and the handler is dropped, as
/// `client_gone` (status 499, as nginx logs it): every attempt leaves
/// exactly one event.
struct Recorder {
    state: AppState,
    event: LoginEvent,
    arrived: Instant,
    timings: StageTimings,
    /// What the login flow made of the attempt, once it got that far;
    /// before that, only malformed input can have stopped it.
    outcome: Option<Outcome>,
    written: bool,
}

impl Recorder {
    fn begin(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> Self {
        let event = LoginEvent {
            ts: state
                .service
                .clock()
                .now()
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            ip: peer.to_string(),
            instance: state.config.instance.clone(),
            server_version: SERVER_VERSION.to_owned(),
            request_id: headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            ..Default::default()
        };
        Self {
            state: state.clone(),
            event,
            arrived: Instant::now(),
            timings: StageTimings::default(),
            outcome: None,
            written: false,
        }
    }

    fn reached_service(&mut self, login: &LoginOutcome) {
        self.timings = login.timings;
        self.event.db_role = login
            .db_role
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default();
        self.outcome = Some(login.outcome());
        if let Err(AuthError::Unavailable(cause) | AuthError::Internal(cause)) = &login.result {
            self.event.cause = Some(cause.chars().take(MAX_CAUSE_CHARS).collect());
        }
    }

    fn answered(mut self, status: StatusCode) {
        let outcome = self.outcome.unwrap_or(if status.is_success() {
            Outcome::Ok
        } else {
            Outcome::BadRequest
        });
        self.write(status.as_u16(), outcome);
    }

    fn write(&mut self, status: u16, outcome: Outcome) {
        self.written = true;
        let (event, timings) = (&mut self.event, &self.timings);
        event.status = status;
        event.outcome = outcome.as_str().to_owned();
        event.total_ms = ms(self.arrived.elapsed());
        event.queue_ms = ms(timings.queue);
        event.hash_ms = ms(timings.hash);
        event.db_ms = ms(timings.db);
        event.session_ms = ms(timings.session);
        let state = &self.state;
        state.labels.record(event);
        if let Some(log) = &state.events {
            log.write(event);
        }
        if let Some(log) = &state.slow_logins {
            if event.total_ms >= state.config.slow_login.as_secs_f64() * 1e3 {
                log.write(event);
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.written {
            self.write(CLIENT_CLOSED_REQUEST, Outcome::ClientGone);
        }
    }
}

/// nginx's status for a request whose client closed the connection first.
const CLIENT_CLOSED_REQUEST: u16 = 499;

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn label(s: &str) -> String {
    s.chars().take(MAX_LABEL_CHARS).collect()
}

/// `YYYY-MM-DD HH:MM:SS` (taken as UTC) or RFC 3339.
pub fn parse_client_timestamp(ts: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(ts)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S").map(|t| t.and_utc()))
        .map_err(|_| {
            ApiError::Unprocessable(
                "invalid_timestamp",
                "timestamp must be YYYY-MM-DD HH:MM:SS or RFC 3339".into(),
            )
        })
}

/// An address with an optional CIDR suffix (`127.0.0.1/32`, `2001:db8::1/128`).
pub fn parse_ip(raw: &str) -> Result<IpAddr, ApiError> {
    let invalid = || {
        ApiError::Unprocessable(
            "invalid_ip",
            format!("ip {:?} is not an IP address", label(raw)),
        )
    };
    let (addr, prefix) = match raw.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (raw, None),
    };
    let ip: IpAddr = addr.trim().parse().map_err(|_| invalid())?;
    if let Some(prefix) = prefix {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match prefix.parse::<u8>() {
            Ok(p) if p <= max => {}
            _ => return Err(invalid()),
        }
    }
    Ok(ip)
}

pub fn session_cookie(state: &AppState, token: &str, ttl: chrono::Duration) -> HeaderValue {
    let secure = if state.config.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        ttl.num_seconds().max(0)
    );
    HeaderValue::from_str(&value).expect("token and attributes are header-safe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert!(parse_client_timestamp("1000-01-01 00:00:00").is_ok());
        assert!(parse_client_timestamp("2026-11-26T06:00:00Z").is_ok());
        assert!(parse_client_timestamp("2026-11-26T06:00:00.123+02:00").is_ok());
        for bad in [
            "",
            "yesterday",
            "2026-13-01 00:00:00",
            "2026-11-26 25:00:00",
            "1700000000",
        ] {
            assert!(parse_client_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_ip("127.0.0.1/32").unwrap().to_string(), "127.0.0.1");
        assert_eq!(parse_ip("10.1.2.3").unwrap().to_string(), "10.1.2.3");
        assert_eq!(
            parse_ip("2001:db8::1/128").unwrap().to_string(),
            "2001:db8::1"
        );
        for bad in [
            "",
            "localhost",
            "1.2.3.4/33",
            "1.2.3.4/x",
            "::1/129",
            "1.2.3",
            "' OR 1=1 --",
        ] {
            assert!(parse_ip(bad).is_err(), "{bad}");
        }
    }
}
