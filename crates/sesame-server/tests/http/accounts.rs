//! Accounts over the JSON API: registration and its password policy, one
//! account per name across case and width, password changes, and stored
//! hashes upgraded to the current parameters. Every case runs on every
//! backend.

use reqwest::StatusCode;
use serde_json::json;
use sesame_domain::HashParams;
use sesame_testkit::{error_code, on_every_backend, Backend, Database, TestServer, CHEAP};
use std::time::Duration;

on_every_backend!(
    usernames_are_one_account_across_case_and_width,
    registration_enforces_the_password_policy,
    password_change_revokes_sessions_and_the_old_password,
    old_hash_parameters_are_upgraded_on_login,
);

async fn usernames_are_one_account_across_case_and_width(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.registered("Admin", "tall-giraffe-9").await;
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

async fn registration_enforces_the_password_policy(backend: Backend) {
    let server = TestServer::start(backend).await;
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

async fn password_change_revokes_sessions_and_the_old_password(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.registered("dave", "first-secret-pw").await;
    let (_, a) = server.login("dave", "first-secret-pw").await;
    let (_, b) = server.login("dave", "first-secret-pw").await;
    let change = |old, new| server.change_password("dave", old, new);
    assert_eq!(
        change("wrong-old-pw", "second-secret-pw").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        change("first-secret-pw", "second-secret-pw").await.0,
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

async fn old_hash_parameters_are_upgraded_on_login(backend: Backend) {
    let db = backend.database().await;
    // Register under old parameters.
    let server = TestServer::start_on(&db, |c| {
        c.hash_params = HashParams {
            m_cost: 128,
            ..CHEAP
        }
    })
    .await;
    server.registered("frank", "blue-walrus-42").await;
    server.stop().await;
    assert!(stored_hash(&db).await.contains("m=128,"));

    // Log in under current parameters: the stored hash is upgraded.
    let server = TestServer::start_on(&db, |_| {}).await;
    assert_eq!(
        server.login("frank", "blue-walrus-42").await.0,
        StatusCode::OK
    );
    let mut upgraded = String::new();
    for _ in 0..100 {
        upgraded = stored_hash(&db).await;
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
async fn stored_hash(db: &Database) -> String {
    let users = db.stores().await.users.list(None, 10).await.unwrap();
    users[0].password_hash.to_string()
}
