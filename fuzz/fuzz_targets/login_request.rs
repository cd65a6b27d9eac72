//! Login request parsing and validation, through the real router: the bytes
//! become a `POST /v1/login` (or `/v1/users`, or a session check) handled by
//! the same axum app `sesame serve` runs, over a fresh SQLite database with
//! cheap Argon2 parameters. JSON body -> `LoginRequest` -> timestamp, ip,
//! `Username`, `Password` -> the login flow.
//!
//! Oracles: no panic; no 5xx but a 503 `overloaded`/`unavailable`; every
//! status is one the handler documents; every error body is the
//! `{"error":{"code","message"}}` envelope; `Username::parse` is idempotent.
//!
//! Input: the first byte picks the mode.
//!   0: the rest is the raw login body
//!   1: the rest is fields split by 0xFF (timestamp, ip, user, password,
//!      region, platform, app_version) built into a JSON login body
//!   2: fields (user, password) registered, then logged in with
//!   3: the rest is an `Authorization` / `Cookie` header for `GET /v1/session`
#![no_main]

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use sesame_domain::{
    HashParams, LimitSettings, LoginSettings, Password, PasswordPolicy, SessionToken, SystemClock,
    Username,
};
use sesame_server::{App, ServerConfig};
use sesame_storage::StorageConfig;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

struct Harness {
    rt: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig {
            hash_params: HashParams {
                m_cost: 8,
                t_cost: 1,
                p_cost: 1,
            },
            hash_workers: 1,
            login: LoginSettings {
                latency_budget: Duration::from_secs(30),
                limits: LimitSettings::unlimited(),
                ..LoginSettings::default()
            },
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            cookie_secure: false,
            instance: "fuzz".into(),
            ..ServerConfig::default()
        };
        let url = format!("sqlite:{}", dir.path().join("fuzz.db").display());
        let router = rt.block_on(async {
            let stores = sesame_storage::open(&StorageConfig {
                database_url: url,
                ..StorageConfig::default()
            })
            .await
            .unwrap();
            App::build(config, stores, Arc::new(SystemClock))
                .unwrap()
                .router()
        });
        let h = Harness {
            rt,
            router,
            _dir: dir,
        };
        // A known account, so that seeds can reach a successful login.
        let (status, _) = h.send(post(
            "/v1/users",
            json!({"user": "alice", "password": "correct horse battery"}).to_string(),
        ));
        assert_eq!(status, StatusCode::CREATED);
        h
    })
}

impl Harness {
    fn send(&self, mut req: Request<Body>) -> (StatusCode, Value) {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        self.rt.block_on(async {
            let resp = self.router.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .expect("body");
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {bytes:?}"))
            };
            (status, body)
        })
    }
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn check(what: &str, status: StatusCode, body: &Value, allowed: &[u16]) {
    assert!(
        allowed.contains(&status.as_u16()),
        "{what}: undocumented status {status}: {body}"
    );
    if status.is_success() {
        return;
    }
    if status == StatusCode::NO_CONTENT {
        return;
    }
    let code = body["error"]["code"].as_str();
    let message = body["error"]["message"].as_str();
    assert!(
        code.is_some() && message.is_some(),
        "{what}: {status} without the error envelope: {body}"
    );
    if status.is_server_error() {
        assert!(
            status == StatusCode::SERVICE_UNAVAILABLE
                && matches!(code, Some("overloaded" | "unavailable")),
            "{what}: server error {status}: {body}"
        );
    }
}

const LOGIN: &[u16] = &[200, 400, 401, 413, 415, 422, 429, 503];
const REGISTER: &[u16] = &[201, 400, 409, 413, 415, 422, 429, 503];
const SESSION: &[u16] = &[200, 401, 503];

fn fields(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0xff)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

fn domain_properties(text: &str) {
    if let Ok(user) = Username::parse(text) {
        let again = Username::parse(user.as_str()).expect("a canonical user name parses");
        assert_eq!(user, again, "Username::parse is not idempotent on {text:?}");
    }
    let _ = Password::parse(text, &PasswordPolicy::default());
    if let Some(token) = SessionToken::parse(text) {
        assert_eq!(token.as_str(), text);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let h = harness();
    if let Ok(text) = std::str::from_utf8(rest) {
        domain_properties(text);
    }
    match mode % 4 {
        0 => {
            let (status, body) = h.send(post("/v1/login", rest.to_vec()));
            check("login (raw)", status, &body, LOGIN);
        }
        1 => {
            let f = fields(rest);
            let get = |i: usize| f.get(i).cloned();
            let mut login = json!({
                "user": get(2).unwrap_or_default(),
                "password": get(3).unwrap_or_default(),
                "client": {"region": get(4), "platform": get(5), "app_version": get(6)},
            });
            if let Some(ts) = get(0).filter(|s| !s.is_empty()) {
                login["timestamp"] = json!(ts);
            }
            if let Some(ip) = get(1).filter(|s| !s.is_empty()) {
                login["ip"] = json!(ip);
            }
            let (status, body) = h.send(post("/v1/login", login.to_string()));
            check("login (fields)", status, &body, LOGIN);
        }
        2 => {
            let f = fields(rest);
            let user = f.first().cloned().unwrap_or_default();
            let password = f.get(1).cloned().unwrap_or_default();
            let creds = json!({"user": user, "password": password}).to_string();
            let (status, body) = h.send(post("/v1/users", creds.clone()));
            check("register", status, &body, REGISTER);
            let (login_status, body) = h.send(post("/v1/login", creds));
            check("login after register", login_status, &body, LOGIN);
            if status == StatusCode::CREATED {
                assert_eq!(
                    login_status,
                    StatusCode::OK,
                    "registered, cannot log in: {body}"
                );
            }
        }
        _ => {
            for (name, value) in [
                (
                    header::AUTHORIZATION,
                    [b"Bearer ".as_slice(), rest].concat(),
                ),
                (
                    header::COOKIE,
                    [b"sesame_session=".as_slice(), rest].concat(),
                ),
                (header::COOKIE, rest.to_vec()),
            ] {
                let Ok(req) = Request::builder()
                    .uri("/v1/session")
                    .header(name, value)
                    .body(Body::empty())
                else {
                    continue; // not a valid header value: never reaches a server
                };
                let (status, body) = h.send(req);
                check("session", status, &body, SESSION);
            }
        }
    }
});
