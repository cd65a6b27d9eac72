//! Running the service: health, readiness and the API description,
//! shedding overload, draining on shutdown, metrics, rate limits, the slow
//! log, clients that go away. Every case runs on every backend.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sesame_domain::HashParams;
use sesame_testkit::{error_code, on_every_backend, Backend, TestServer};
use std::time::Duration;

on_every_backend!(
    health_readiness_and_openapi,
    overload_is_shed_at_once_with_retry_after,
    shutdown_turns_readiness_off_then_finishes_in_flight_requests,
    metrics_expose_the_login_pipeline,
    a_flood_from_one_address_gets_429_with_retry_after_before_any_hash,
    slow_logins_are_logged_with_their_stages,
    a_client_that_goes_away_leaves_a_client_gone_event,
);

async fn health_readiness_and_openapi(backend: Backend) {
    let server = TestServer::start(backend).await;
    let get = |path: &'static str| server.get(path);
    assert_eq!(get("/healthz").await.status(), StatusCode::OK);
    let ready: Value = get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let doc: Value = get("/openapi.json").await.json().await.unwrap();
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
    let page = get("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    server.stop().await;
}

async fn overload_is_shed_at_once_with_retry_after(backend: Backend) {
    let server = TestServer::start_with(backend, crate::overloaded).await;
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

async fn shutdown_turns_readiness_off_then_finishes_in_flight_requests(backend: Backend) {
    let mut server =
        TestServer::start_with(backend, |c| c.drain_delay = Duration::from_millis(300)).await;
    server.registered("gina", "quiet-meadow-7").await;
    server.begin_stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Draining: not ready, but still serving (the listener is open).
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = server.login("gina", "quiet-meadow-7").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

async fn metrics_expose_the_login_pipeline(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.registered("hana", "orange-kettle-5").await;
    server
        .post(
            "/v1/login",
            json!({"user":"hana","password":"orange-kettle-5","client":{"region":"eu-west","platform":"ios"}}),
        )
        .await;
    let text = server.metrics().await;
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

async fn a_flood_from_one_address_gets_429_with_retry_after_before_any_hash(backend: Backend) {
    let server = TestServer::start_with(backend, |c| {
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

async fn slow_logins_are_logged_with_their_stages(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let slow_path = dir.path().join("slow.jsonl");
    let server = TestServer::start_with(backend, |c| {
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

async fn a_client_that_goes_away_leaves_a_client_gone_event(backend: Backend) {
    // A slow hash: the login is still being verified when the client closes
    // its connection.
    let server = TestServer::start_with(backend, |c| {
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
