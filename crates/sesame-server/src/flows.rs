//! The account operations as HTTP-free functions that both the JSON API
//! (`routes`) and the pages (`web`) call, so that a browser and the API tier
//! get the same parsing, rate limits, load shedding, login events and
//! metrics. Each takes plain input and returns a typed result (a login also
//! its event); turning HTTP into input and results into answers (JSON or a
//! page) is the callers' business.

use crate::client_ip::ClientAddr;
use crate::error::ApiError;
use crate::state::{AppState, SERVER_VERSION};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use sesame_domain::event::{LoginEvent, Outcome};
use sesame_domain::{
    AuthError, LoginOutcome, Password, Session, SessionToken, StageTimings, Username,
};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Who is asking (built from a request by `extract`).
#[derive(Debug, Clone)]
pub struct Caller {
    pub addr: ClientAddr,
    pub request_id: String,
}

/// A user name to look up or sign in with.
fn parse_username(raw: &str) -> Result<Username, ApiError> {
    Username::parse(raw).map_err(|e| ApiError::Unprocessable("invalid_user", e.to_string()))
}

fn parse_password(state: &AppState, raw: &str) -> Result<Password, ApiError> {
    Password::parse(raw, &state.service.settings().policy)
        .map_err(|e| ApiError::Unprocessable("invalid_password", e.to_string()))
}

/// Registers a user; answers the name in its canonical form, the one to
/// sign in with.
pub async fn register(
    state: &AppState,
    caller: &Caller,
    user: &str,
    password: &str,
) -> Result<Username, ApiError> {
    let username = Username::parse_new(user)
        .map_err(|e| ApiError::Unprocessable("invalid_user", e.to_string()))?;
    let password = parse_password(state, password)?;
    state
        .service
        .register(&username, password, Some(caller.addr.ip()))
        .await?;
    Ok(username)
}

/// Changes `user`'s password, proven by the old one; every session of the
/// user is revoked.
pub async fn change_password(
    state: &AppState,
    caller: &Caller,
    user: &str,
    old: &str,
    new: &str,
) -> Result<(), ApiError> {
    let username = parse_username(user)?;
    let old = parse_password(state, old)?;
    let new = parse_password(state, new)?;
    state
        .service
        .change_password(&username, old, new, caller.addr.ip())
        .await?;
    Ok(())
}

/// The live session `token` names, if any.
pub async fn session(state: &AppState, token: &SessionToken) -> Result<Option<Session>, ApiError> {
    Ok(state.service.session(token).await?)
}

/// Ends the session `token` names.
pub async fn logout(state: &AppState, token: &SessionToken) -> Result<(), ApiError> {
    Ok(state.service.logout(token).await?)
}

// ---- login ------------------------------------------------------------------

/// A login as a client sent it, not yet checked.
#[derive(Debug, Default)]
pub struct LoginInput {
    pub user: String,
    pub password: String,
    /// When the client saw the attempt; recorded, never trusted.
    pub timestamp: Option<String>,
    /// The end user's address as the caller names it (`127.0.0.1/32`);
    /// believed only through trusted proxies ([`crate::client_ip`]).
    pub ip: Option<String>,
    pub client: ClientLabels,
}

/// Client-reported context, recorded in events and metrics.
#[derive(Debug, Default)]
pub struct ClientLabels {
    pub region: Option<String>,
    pub platform: Option<String>,
    pub app_version: Option<String>,
}

/// A successful login.
#[derive(Debug)]
pub struct LoggedIn {
    pub token: SessionToken,
    /// The canonical user name.
    pub user: String,
    pub expires_at: DateTime<Utc>,
}

/// What came of one attempt, and the event it left (already written; the
/// handlers answer from `result`, the event is there to be inspected).
pub struct LoginAttempt {
    pub result: Result<LoggedIn, ApiError>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub event: LoginEvent,
}

/// Logs in. `input` is an error when the request could not even be read
/// (the attempt is still an event, `bad_request`). The event is written
/// before this returns; if the caller is dropped first (the client went
/// away), as `client_gone`.
pub async fn login(
    state: &AppState,
    caller: &Caller,
    input: Result<LoginInput, ApiError>,
) -> LoginAttempt {
    let mut recorder = Recorder::begin(state, caller);
    let result = attempt(state, caller, input, &mut recorder).await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status(),
    };
    let event = recorder.answered(status);
    LoginAttempt { result, event }
}

async fn attempt(
    state: &AppState,
    caller: &Caller,
    input: Result<LoginInput, ApiError>,
    recorder: &mut Recorder,
) -> Result<LoggedIn, ApiError> {
    let event = &mut recorder.event;
    let input = input?;
    event.user = label(&input.user);
    let client = input.client;
    event.region = client.region.as_deref().map(label).unwrap_or_default();
    event.platform = client.platform.as_deref().map(label).unwrap_or_default();
    event.app_version = client.app_version.as_deref().map(label).unwrap_or_default();
    if let Some(ts) = &input.timestamp {
        parse_client_timestamp(ts)?;
        event.client_ts = Some(label(ts));
    }
    let claimed = input.ip.as_deref().map(parse_ip).transpose()?;
    let client_ip = caller.addr.with_claim(claimed);
    event.ip = client_ip.to_string();
    let username = parse_username(&input.user)?;
    event.user = username.to_string();
    let password = parse_password(state, &input.password)?;
    let outcome = state
        .service
        .login(&username, password, client_ip, recorder.arrived)
        .await;
    recorder.reached_service(&outcome);
    let issued = outcome.result?;
    Ok(LoggedIn {
        token: issued.token,
        user: issued.session.username,
        expires_at: issued.session.expires_at,
    })
}

/// Longest client-supplied label kept in an event.
const MAX_LABEL_CHARS: usize = 64;

/// Longest cause kept in an event.
const MAX_CAUSE_CHARS: usize = 240;

/// One login attempt's event. It is written when the attempt is answered,
/// or, when the client goes away first and the flow is dropped, as
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
    fn begin(state: &AppState, caller: &Caller) -> Self {
        let event = LoginEvent {
            ts: state
                .service
                .clock()
                .now()
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            ip: caller.addr.ip().to_string(),
            instance: state.config.instance.clone(),
            server_version: SERVER_VERSION.to_owned(),
            request_id: caller.request_id.clone(),
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
        self.event.db_role = login.db_role;
        self.outcome = Some(login.outcome());
        if let Err(AuthError::Unavailable(cause) | AuthError::Internal(cause)) = &login.result {
            self.event.cause = Some(cause.chars().take(MAX_CAUSE_CHARS).collect());
        }
    }

    /// Writes the event of an answered attempt and hands it back.
    fn answered(mut self, status: StatusCode) -> LoginEvent {
        let outcome = self.outcome.unwrap_or(if status.is_success() {
            Outcome::Ok
        } else {
            Outcome::BadRequest
        });
        self.write(status.as_u16(), outcome);
        std::mem::take(&mut self.event)
    }

    fn write(&mut self, status: u16, outcome: Outcome) {
        self.written = true;
        let (event, timings) = (&mut self.event, &self.timings);
        event.status = status;
        event.outcome = Some(outcome);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;
    use crate::eventlog::JsonLinesLog;
    use crate::metrics::{BoundedLabel, LoginLabels};
    use crate::state::Shared;
    use axum::http::{HeaderMap, HeaderValue};
    use sesame_domain::{HashParams, HashPool, LoginService, PasswordHasher, SystemClock};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// A state over a fresh SQLite database, writing events to `events`.
    async fn state(dir: &std::path::Path) -> (AppState, tokio::task::JoinHandle<()>) {
        let config = ServerConfig {
            hash_params: HashParams {
                m_cost: 256,
                t_cost: 1,
                p_cost: 1,
            },
            hash_workers: 1,
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            instance: "flows".into(),
            ..ServerConfig::default()
        };
        let stores = sesame_storage::open(&sesame_storage::StorageConfig {
            database_url: format!("sqlite:{}", dir.join("sesame.db").display()),
            ..sesame_storage::StorageConfig::default()
        })
        .await
        .unwrap();
        let pool = HashPool::start(PasswordHasher::new(config.hash_params).unwrap(), 1);
        let service = LoginService::new(
            stores.users,
            stores.sessions,
            pool,
            Arc::new(SystemClock),
            config.login.clone(),
        )
        .unwrap();
        let (events, writer) = JsonLinesLog::open(&dir.join("events.jsonl")).unwrap();
        let state = AppState::new(Shared {
            service,
            metrics: crate::metrics::install(0.25),
            labels: LoginLabels {
                region: BoundedLabel::new(&[], 4),
                platform: BoundedLabel::new(&[], 4),
            },
            config,
            events: Some(events),
            slow_logins: None,
            backend: stores.backend,
            ready: AtomicBool::new(true),
        });
        (state, writer)
    }

    /// A request from `peer` through `xff`.
    fn caller(state: &AppState, peer: &str, xff: &str) -> Caller {
        let mut headers = HeaderMap::new();
        if !xff.is_empty() {
            headers.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        }
        Caller {
            addr: ClientAddr::resolve(
                peer.parse().unwrap(),
                &headers,
                &state.config.trusted_proxies,
            ),
            request_id: "req-1".into(),
        }
    }

    fn input(user: &str, password: &str, platform: Option<&str>) -> LoginInput {
        LoginInput {
            user: user.into(),
            password: password.into(),
            ip: Some("203.0.113.9/32".into()),
            client: ClientLabels {
                platform: platform.map(Into::into),
                ..ClientLabels::default()
            },
            ..LoginInput::default()
        }
    }

    #[tokio::test]
    async fn every_attempt_leaves_one_event_whoever_asks() {
        let dir = tempfile::tempdir().unwrap();
        let (state, writer) = state(dir.path()).await;
        let through_lb = caller(&state, "10.0.0.2", "198.51.100.7");
        register(&state, &through_lb, "Erin", "correct horse battery")
            .await
            .unwrap();
        // The API tier's body and a browser's form, wrong password: the same
        // event but for the platform; the body's `ip` is not believed
        // behind an untrusted hop.
        let api = login(
            &state,
            &through_lb,
            Ok(input("ERIN", "wrong password!", None)),
        )
        .await;
        let page = login(
            &state,
            &through_lb,
            Ok(input("erin", "wrong password!", Some("web"))),
        )
        .await;
        for (attempt, platform) in [(&api, ""), (&page, "web")] {
            assert!(matches!(attempt.result, Err(ApiError::InvalidCredentials)));
            let e = &attempt.event;
            assert_eq!(
                (e.outcome, e.status),
                (Some(Outcome::InvalidCredentials), 401)
            );
            assert_eq!((e.user.as_str(), e.ip.as_str()), ("erin", "198.51.100.7"));
            assert_eq!(e.platform, platform);
            assert_eq!(
                (e.db_role, e.request_id.as_str()),
                (Some(sesame_domain::DbRole::Primary), "req-1")
            );
        }
        // Through trusted hops only, the body names the client.
        let tier = caller(&state, "10.0.0.2", "10.1.1.1");
        let ok = login(
            &state,
            &tier,
            Ok(input("erin", "correct horse battery", None)),
        )
        .await;
        let signed_in = ok.result.as_ref().unwrap();
        assert_eq!(signed_in.user, "erin");
        assert_eq!(
            (ok.event.outcome, ok.event.status),
            (Some(Outcome::Ok), 200)
        );
        assert_eq!(ok.event.ip, "203.0.113.9");
        // A request that could not be read is an attempt too.
        let bad = ApiError::BadRequest("invalid_json", "nope".into());
        let unread = login(&state, &tier, Err(bad)).await;
        assert_eq!(
            (unread.event.outcome, unread.event.status),
            (Some(Outcome::BadRequest), 400)
        );
        assert_eq!(unread.event.ip, "10.1.1.1");
        // A dropped attempt (the client went away) is `client_gone`.
        let gone = login(
            &state,
            &tier,
            Ok(input("erin", "correct horse battery", None)),
        );
        let mut gone = Box::pin(gone);
        let _ = poll_once(gone.as_mut()).await;
        drop(gone);
        drop((through_lb, tier));
        drop(state);
        writer.await.unwrap();
        let log = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        let outcomes: Vec<&str> = log
            .lines()
            .map(|l| {
                serde_json::from_str::<LoginEvent>(l)
                    .unwrap()
                    .outcome
                    .map_or("", Outcome::as_str)
            })
            .collect();
        let expected = [
            "invalid_credentials",
            "invalid_credentials",
            "ok",
            "bad_request",
            "client_gone",
        ];
        assert_eq!(outcomes, expected, "one event per attempt");
    }

    /// Polls `future` once.
    async fn poll_once<F: std::future::Future + Unpin>(mut future: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

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
