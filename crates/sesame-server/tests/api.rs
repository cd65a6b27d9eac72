//! The HTTP API end to end: a real server on port 0, a fresh SQLite database
//! per test, real Argon2id (with cheap parameters so the suite stays fast).

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sesame_domain::{HashParams, LoginSettings, SystemClock};
use sesame_server::{App, ServerConfig};
use sesame_storage::StorageConfig;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The stores of the test database `db_url` names (a fresh SQLite file per
/// test). tests/api_mysql.rs includes this file as a module and defines its
/// own `test_stores` (MariaDB primary + replica + Redis), so every case here
/// runs on both backends: reach stores only through `crate::test_stores`.
#[allow(dead_code)]
async fn test_stores(db_url: String) -> sesame_storage::Stores {
    sesame_storage::open(&StorageConfig {
        database_url: db_url,
        ..StorageConfig::default()
    })
    .await
    .unwrap()
}

const CHEAP: HashParams = HashParams {
    m_cost: 256,
    t_cost: 1,
    p_cost: 1,
};

struct TestServer {
    base: String,
    http: Client,
    events: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

fn config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        hash_params: CHEAP,
        hash_workers: 2,
        login: LoginSettings {
            latency_budget: Duration::from_secs(5),
            ..LoginSettings::default()
        },
        event_log: Some(dir.join("events.jsonl")),
        cookie_secure: false,
        instance: "test-1".into(),
        ..ServerConfig::default()
    }
}

impl TestServer {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite:{}", dir.path().join("sesame.db").display());
        let mut config = config(dir.path());
        adjust(&mut config);
        Self::start_in(dir, db_url, config).await
    }

    async fn start_in(dir: tempfile::TempDir, db_url: String, config: ServerConfig) -> Self {
        let events = config.event_log.clone().unwrap();
        let stores = crate::test_stores(db_url).await;
        let app = App::build(config, stores, Arc::new(SystemClock)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(app.run(listener, async {
            let _ = stopped.await;
        }));
        Self {
            base,
            http: Client::new(),
            events,
            stop: Some(stop),
            served,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn raw_post(&self, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn register(&self, user: &str, password: &str) {
        let (status, body) = self
            .post("/v1/users", json!({"user": user, "password": password}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn login(&self, user: &str, password: &str) -> (StatusCode, Value) {
        self.post("/v1/login", json!({"user": user, "password": password}))
            .await
    }

    async fn session(&self, token: &str) -> StatusCode {
        self.http
            .get(self.url("/v1/session"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Stops the server and returns the event log as written.
    async fn stop_raw(mut self) -> String {
        self.stop.take().unwrap().send(()).unwrap();
        self.served.await.unwrap().unwrap();
        std::fs::read_to_string(&self.events).unwrap_or_default()
    }

    /// Stops the server and returns the event log's lines.
    async fn stop(self) -> Vec<Value> {
        let raw = self.stop_raw().await;
        raw.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn the_api_tier_login_body_gets_a_session() {
    let server = TestServer::start().await;
    server.register("SioKCronin", "IHeartData").await;
    let (status, body) = server
        .post(
            "/v1/login",
            json!({"timestamp":"1000-01-01 00:00:00","ip":"127.0.0.1/32","user":"SioKCronin","password":"IHeartData"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], "siokcronin");
    let token = body["session"].as_str().unwrap();
    assert_eq!(token.len(), 43);
    assert!(body["expires_at"].as_str().unwrap().starts_with("20"));
    assert_eq!(server.session(token).await, StatusCode::OK);

    let events = server.stop().await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["outcome"], "ok");
    assert_eq!(e["status"], 200);
    assert_eq!(e["user"], "siokcronin");
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(e["client_ts"], "1000-01-01 00:00:00");
    assert_eq!(e["instance"], "test-1");
    assert_eq!(e["db_role"], "primary");
    for field in ["total_ms", "queue_ms", "hash_ms", "db_ms", "session_ms"] {
        assert!(e[field].as_f64().is_some(), "{field} in {e}");
    }
    assert!(e["hash_ms"].as_f64().unwrap() > 0.0);
    assert!(!e["request_id"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn session_lifecycle_bearer_and_cookie() {
    let server = TestServer::start().await;
    server.register("alice", "correct horse battery").await;
    let r = server
        .http
        .post(server.url("/v1/login"))
        .json(&json!({"user": "Alice", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("sesame_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let logged_in = r.json::<Value>().await.unwrap();
    let token = logged_in["session"].as_str().unwrap().to_owned();

    let by_cookie = server
        .http
        .get(server.url("/v1/session"))
        .header("cookie", format!("other=1; sesame_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
    let checked = by_cookie.json::<Value>().await.unwrap();
    assert_eq!(checked["user"], "alice");
    // One time format in every answer: RFC 3339, UTC, milliseconds.
    let expires = checked["expires_at"].as_str().unwrap();
    assert_eq!(logged_in["expires_at"], expires);
    assert_eq!(expires.len(), "2026-11-30T18:12:37.123Z".len(), "{expires}");
    assert!(expires.ends_with('Z'), "{expires}");

    let out = server
        .http
        .delete(server.url("/v1/session"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(server.session(&token).await, StatusCode::UNAUTHORIZED);

    // No token, a forged one and a truncated one are all just "no session".
    let none = server
        .http
        .get(server.url("/v1/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.session(&"A".repeat(43)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.session(&token[..40]).await, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn unknown_user_and_wrong_password_answers_are_byte_identical() {
    let server = TestServer::start().await;
    server.register("bob", "bob-has-a-long-password").await;
    let mut answers = Vec::new();
    for user in ["bob", "nobody-at-all"] {
        let r = server
            .http
            .post(server.url("/v1/login"))
            .json(&json!({"user": user, "password": "not-the-password"}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let mut headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        answers.push((status, headers, r.bytes().await.unwrap()));
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert_eq!(answers[0], answers[1]);
    let events = server.stop().await;
    // Both cost one hash: the unknown user is verified against a dummy hash.
    for e in &events[..] {
        assert_eq!(e["outcome"], "invalid_credentials");
        assert!(e["hash_ms"].as_f64().unwrap() > 0.0, "{e}");
    }
}

#[tokio::test]
async fn usernames_are_one_account_across_case_and_width() {
    let server = TestServer::start().await;
    server.register("Admin", "tall-giraffe-9").await;
    let (status, body) = server
        .post(
            "/v1/users",
            json!({"user": "ａｄｍｉｎ", "password": "another-password-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "user_exists");
    let (status, _) = server.login("ＡＤＭＩＮ", "tall-giraffe-9").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn registration_enforces_the_password_policy() {
    let server = TestServer::start().await;
    for (password, why) in [
        ("short", "at least 8"),
        ("password1", "too common"),
        ("12345678", "too common"),
        ("carol-carol-carol", "user name"),
    ] {
        let (status, body) = server
            .post("/v1/users", json!({"user": "carol", "password": password}))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{password}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{password}: {body}"
        );
    }
    let (status, body) = server
        .post(
            "/v1/users",
            json!({"user": "carol", "password": "x".repeat(1025)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "invalid_password");
    let (status, body) = server
        .post(
            "/v1/users",
            json!({"user": "no spaces", "password": "fine-password-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "invalid_user");
    server.stop().await;
}

#[tokio::test]
async fn password_change_revokes_sessions_and_the_old_password() {
    let server = TestServer::start().await;
    server.register("dave", "first-secret-pw").await;
    let (_, a) = server.login("dave", "first-secret-pw").await;
    let (_, b) = server.login("dave", "first-secret-pw").await;
    let change = |old: &str, new: &str| {
        server
            .http
            .put(server.url("/v1/users/dave/password"))
            .json(&json!({"old_password": old, "new_password": new}))
            .send()
    };
    assert_eq!(
        change("wrong-old-pw", "second-secret-pw")
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        change("first-secret-pw", "second-secret-pw")
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    for s in [&a, &b] {
        assert_eq!(
            server.session(s["session"].as_str().unwrap()).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        server.login("dave", "first-secret-pw").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.login("dave", "second-secret-pw").await.0,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_json_error() {
    let server = TestServer::start().await;
    let json = "application/json";
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "malformed",
            json,
            b"{\"user\":".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "not an object",
            json,
            b"[1,2]".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "wrong type",
            "text/plain",
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no type",
            "",
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "over 8 KiB",
            json,
            format!("{{\"user\":\"a\",\"password\":\"{}\"}}", "x".repeat(9000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "missing password",
            json,
            br#"{"user":"a"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "invalid utf-8",
            json,
            b"{\"user\":\"\xff\xfe\",\"password\":\"x\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "bad timestamp",
            json,
            br#"{"user":"a","password":"xxxxxxxx","timestamp":"yesterday"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_timestamp",
        ),
        (
            "bad ip",
            json,
            br#"{"user":"a","password":"xxxxxxxx","ip":"300.1.1.1/8"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_ip",
        ),
    ];
    for (name, content_type, body, status, code) in cases {
        let (got, answer) = server.raw_post("/v1/login", content_type, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(error_code(&answer), code, "{name}: {answer}");
        assert!(
            !answer["error"]["message"].as_str().unwrap().is_empty(),
            "{name}"
        );
    }
    let (_, answer) = server
        .raw_post("/v1/login", json, br#"{"user":"a"}"#.to_vec())
        .await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password"),
        "the message names the missing field: {answer}"
    );
    let events = server.stop().await;
    assert!(events.iter().all(|e| e["outcome"] == "bad_request"));
}

#[tokio::test]
async fn the_ip_field_is_believed_only_from_trusted_proxies() {
    async fn recorded_ip(trusted: &[&str]) -> String {
        let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|s| s.parse().unwrap()).collect();
        let server = TestServer::start_with(|c| c.trusted_proxies = trusted).await;
        let (status, _) = server
            .post(
                "/v1/login",
                json!({"IP": "203.0.113.9/32", "user": "x", "password": "whatever-pw"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        server.stop().await[0]["ip"].as_str().unwrap().to_owned()
    }
    assert_eq!(recorded_ip(&[]).await, "127.0.0.1");
    assert_eq!(recorded_ip(&["10.0.0.0/8"]).await, "127.0.0.1");
    assert_eq!(recorded_ip(&["127.0.0.0/8"]).await, "203.0.113.9");
}

#[tokio::test]
async fn optional_client_context_is_recorded_and_nothing_secret_is() {
    let server = TestServer::start().await;
    server.register("erin", "marker-PW-7f3a9c").await;
    let (status, login) = server
        .post(
            "/v1/login",
            json!({"timestamp":"2026-11-26T06:00:00Z","user":"erin","password":"marker-PW-7f3a9c",
                   "client":{"region":"eu-west","platform":"android","app_version":"5.2.0"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.login("erin", "marker-PW-7f3a9c-wrong").await;
    let token = login["session"].as_str().unwrap().to_owned();
    let raw = server.stop_raw().await;
    let first: Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    assert_eq!(first["region"], "eu-west");
    assert_eq!(first["platform"], "android");
    assert_eq!(first["app_version"], "5.2.0");
    assert!(
        !raw.contains("marker-PW"),
        "a password reached the event log"
    );
    assert!(
        !raw.contains(&token),
        "a session token reached the event log"
    );
}

#[tokio::test]
async fn old_hash_parameters_are_upgraded_on_login() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("sesame.db").display());
    // Register under old parameters.
    let mut old = config(dir.path());
    old.hash_params = HashParams {
        m_cost: 128,
        ..CHEAP
    };
    let server = TestServer::start_in(tempfile::tempdir().unwrap(), db_url.clone(), old).await;
    server.register("frank", "blue-walrus-42").await;
    server.stop().await;
    assert!(stored_hash(&db_url).await.contains("m=128,"));

    // Log in under current parameters: the stored hash is upgraded.
    let server = TestServer::start_in(
        tempfile::tempdir().unwrap(),
        db_url.clone(),
        config(dir.path()),
    )
    .await;
    assert_eq!(
        server.login("frank", "blue-walrus-42").await.0,
        StatusCode::OK
    );
    let mut upgraded = String::new();
    for _ in 0..100 {
        upgraded = stored_hash(&db_url).await;
        if upgraded.contains("m=256,") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(upgraded.contains("m=256,"), "{upgraded}");
    assert_eq!(
        server.login("frank", "blue-walrus-42").await.0,
        StatusCode::OK
    );
    server.stop().await;
}

/// The stored hash of the only user, read through the storage crate.
async fn stored_hash(url: &str) -> String {
    let stores = crate::test_stores(url.to_owned()).await;
    let users = stores.users.list(None, 10).await.unwrap();
    users[0].password_hash.to_string()
}

#[tokio::test]
async fn health_readiness_and_openapi() {
    let server = TestServer::start().await;
    let get = |path: &'static str| server.http.get(server.url(path)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    let ready: Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let doc: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    for path in [
        "/v1/login",
        "/v1/users",
        "/v1/session",
        "/v1/users/{user}/password",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from openapi.json"
        );
    }
    assert!(doc["components"]["schemas"]["LoginRequest"]["properties"]["client"].is_object());
    let page = get("/").await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    server.stop().await;
}

#[tokio::test]
async fn overload_is_shed_at_once_with_retry_after() {
    // One worker, a budget smaller than one hash: every login is refused
    // immediately rather than queued.
    let server = TestServer::start_with(|c| {
        c.hash_workers = 1;
        c.hash_params = HashParams {
            m_cost: 65_536,
            ..CHEAP
        };
        c.login.latency_budget = Duration::from_micros(1);
    })
    .await;
    let r = server
        .http
        .post(server.url("/v1/login"))
        .json(&json!({"user": "x", "password": "whatever-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(error_code(&r.json().await.unwrap()), "overloaded");
    let events = server.stop().await;
    assert_eq!(events[0]["outcome"], "overloaded");
    assert_eq!(events[0]["hash_ms"], 0.0);
    assert_eq!(
        events[0]["db_role"], "",
        "shed before the database lookup: {}",
        events[0]
    );
}

#[tokio::test]
async fn shutdown_turns_readiness_off_then_finishes_in_flight_requests() {
    let server = TestServer::start_with(|c| c.drain_delay = Duration::from_millis(300)).await;
    server.register("gina", "quiet-meadow-7").await;
    let TestServer {
        stop,
        served,
        http,
        base,
        ..
    } = server;
    stop.unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Draining: not ready, but still serving (the listener is open).
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let login = http
        .post(format!("{base}/v1/login"))
        .json(&json!({"user": "gina", "password": "quiet-meadow-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    served.await.unwrap().unwrap();
}

#[tokio::test]
async fn metrics_expose_the_login_pipeline() {
    let server = TestServer::start().await;
    server.register("hana", "orange-kettle-5").await;
    server
        .post(
            "/v1/login",
            json!({"user":"hana","password":"orange-kettle-5","client":{"region":"eu-west","platform":"ios"}}),
        )
        .await;
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "sesame_login_duration_seconds_bucket{outcome=\"ok\",region=\"eu-west\",platform=\"ios\",le=\"0.25\"}",
        "sesame_login_stage_duration_seconds_bucket{stage=\"hash\"",
        "sesame_login_stage_duration_seconds_bucket{stage=\"queue\"",
        "sesame_login_stage_duration_seconds_bucket{stage=\"db\"",
        "sesame_login_stage_duration_seconds_bucket{stage=\"session\"",
        "sesame_hash_queue_depth ",
        "sesame_hash_workers 2",
        "sesame_login_shed_total{reason=\"overloaded\"}",
        "sesame_http_requests_total{route=\"/v1/login\",method=\"POST\",status=\"200\"}",
        "sesame_build_info{version=\"",
        "# HELP sesame_login_duration_seconds ",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_flood_from_one_address_gets_429_with_retry_after_before_any_hash() {
    let server = TestServer::start_with(|c| {
        c.login.limits.per_ip = sesame_domain::Rate::per_second(1.0, 3);
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let r = server
            .http
            .post(server.url("/v1/login"))
            .json(&json!({"user": "target", "password": "guess-guess-1"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(error_code(&r.json().await.unwrap()), "rate_limited");
        }
    }
    assert_eq!(&statuses[..3], [401, 401, 401]);
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    let events = server.stop().await;
    let limited: Vec<_> = events
        .iter()
        .filter(|e| e["outcome"] == "rate_limited")
        .collect();
    assert_eq!(limited.len(), 3);
    assert!(
        limited.iter().all(|e| e["hash_ms"] == 0.0),
        "no hash is spent on a refused attempt"
    );
}

#[tokio::test]
async fn slow_logins_are_logged_with_their_stages() {
    let dir = tempfile::tempdir().unwrap();
    let slow_path = dir.path().join("slow.jsonl");
    let server = TestServer::start_with(|c| {
        c.slow_login_log = Some(slow_path.clone());
        c.slow_login = Duration::ZERO; // every login is "slow"
    })
    .await;
    server.login("ivan", "not-a-user-pw").await;
    server.stop().await;
    let line = std::fs::read_to_string(&slow_path).unwrap();
    let slow: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(slow["user"], "ivan");
    assert!(slow["hash_ms"].as_f64().unwrap() > 0.0);
    assert!(slow.get("queue_ms").is_some() && slow.get("db_ms").is_some());
}

#[tokio::test]
async fn a_client_that_goes_away_leaves_a_client_gone_event() {
    // A slow hash: the login is still being verified when the client closes
    // its connection.
    let server = TestServer::start_with(|c| {
        c.hash_workers = 1;
        c.hash_params = HashParams {
            m_cost: 65_536,
            t_cost: 4,
            p_cost: 1,
        };
    })
    .await;
    use tokio::io::AsyncWriteExt;
    let body = r#"{"user":"leaver","password":"whatever-pw"}"#;
    let addr = server.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/login HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(conn);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = server.stop().await;
    assert_eq!(events.len(), 1, "one event per attempt: {events:?}");
    assert_eq!(events[0]["outcome"], "client_gone", "{}", events[0]);
    assert_eq!(events[0]["status"], 499);
}
