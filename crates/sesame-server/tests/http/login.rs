//! Logging in over the JSON API: the answer, the session it gives, what an
//! attacker can and cannot tell from a failure, clear errors for bad input,
//! and what the event log records. Every case runs on every backend.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sesame_testkit::{error_code, on_every_backend, Backend, TestServer};

on_every_backend!(
    the_api_tier_login_body_gets_a_session,
    session_lifecycle_bearer_and_cookie,
    unknown_user_and_wrong_password_answers_are_byte_identical,
    bad_input_gets_a_clear_json_error,
    the_ip_field_is_believed_only_from_trusted_proxies,
    optional_client_context_is_recorded_and_nothing_secret_is,
);

async fn the_api_tier_login_body_gets_a_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.registered("SioKCronin", "IHeartData").await;
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

async fn session_lifecycle_bearer_and_cookie(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.registered("alice", "correct horse battery").await;
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

    let out = server.logout(&token).await;
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

async fn unknown_user_and_wrong_password_answers_are_byte_identical(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.registered("bob", "bob-has-a-long-password").await;
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

async fn bad_input_gets_a_clear_json_error(backend: Backend) {
    let server = TestServer::start(backend).await;
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
        let (got, answer) = server.post_bytes("/v1/login", content_type, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(error_code(&answer), code, "{name}: {answer}");
        assert!(
            !answer["error"]["message"].as_str().unwrap().is_empty(),
            "{name}"
        );
    }
    let (_, answer) = server
        .post_bytes("/v1/login", json, br#"{"user":"a"}"#.to_vec())
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

async fn the_ip_field_is_believed_only_from_trusted_proxies(backend: Backend) {
    async fn recorded_ip(backend: Backend, trusted: &[&str]) -> String {
        let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|s| s.parse().unwrap()).collect();
        let server = TestServer::start_with(backend, |c| c.trusted_proxies = trusted).await;
        let (status, _) = server
            .post(
                "/v1/login",
                json!({"IP": "203.0.113.9/32", "user": "x", "password": "whatever-pw"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        server.stop().await[0]["ip"].as_str().unwrap().to_owned()
    }
    assert_eq!(recorded_ip(backend, &[]).await, "127.0.0.1");
    assert_eq!(recorded_ip(backend, &["10.0.0.0/8"]).await, "127.0.0.1");
    assert_eq!(recorded_ip(backend, &["127.0.0.0/8"]).await, "203.0.113.9");
}

async fn optional_client_context_is_recorded_and_nothing_secret_is(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.registered("erin", "marker-PW-7f3a9c").await;
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
