//! sesame over HTTP for tests: started on a backend, one helper per
//! endpoint, stopped with its event log in hand.

use crate::backend::{Backend, Database};
use crate::served::Served;
use crate::CHEAP;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use sesame_domain::{Clock, LoginSettings, SystemClock};
use sesame_server::{App, ServerConfig};
use sesame_storage::Stores;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A sesame served by the test's process on a free port, logging events to
/// a file of its own.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub addr: SocketAddr,
    /// Follows no redirects (a page's `303` is the answer) and gives up on
    /// an answer after 30 s.
    pub http: Client,
    served: Served,
    events: PathBuf,
    _dir: tempfile::TempDir,
    _db: Option<Database>,
}

impl TestServer {
    /// What tests run with unless they say otherwise: [`CHEAP`] hashing on
    /// two workers, a 5 s latency budget, plain-HTTP cookies, instance
    /// `test-1`, events in `dir/events.jsonl`.
    pub fn config(dir: &Path) -> ServerConfig {
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

    /// On a fresh database of `backend`.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// On a fresh database of `backend`, with [`TestServer::config`] as
    /// `adjust` leaves it.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let db = backend.database().await;
        let mut server = Self::start_on(&db, adjust).await;
        server._db = Some(db);
        server
    }

    /// On `db`, which outlives the server (for a test that restarts it).
    pub async fn start_on(db: &Database, adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::serve(db.stores().await, adjust).await
    }

    /// On `stores` the test opened itself.
    pub async fn serve(stores: Stores, adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::serve_with_clock(stores, Arc::new(SystemClock), adjust).await
    }

    /// On `stores`, with time from `clock`.
    pub async fn serve_with_clock(
        stores: Stores,
        clock: Arc<dyn Clock>,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Self::config(dir.path());
        adjust(&mut config);
        let events = config
            .event_log
            .clone()
            .unwrap_or_else(|| dir.path().join("events.jsonl"));
        let app = App::build(config, stores, clock).unwrap();
        let served = Served::start(app).await;
        Self {
            base: served.base(),
            addr: served.addr,
            http: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            served,
            events,
            _dir: dir,
            _db: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` (pages, `/healthz`, `/readyz`, `/openapi.json`).
    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// POST `body` as JSON; the status and the answer's JSON (`null` if none).
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        answer(
            self.http
                .post(self.url(path))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POST `body` as it is, with this `content-type`.
    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    /// `POST /v1/users`.
    pub async fn register(&self, user: &str, password: &str) -> (StatusCode, Value) {
        self.post("/v1/users", json!({"user": user, "password": password}))
            .await
    }

    /// `POST /v1/users`, which must answer 201.
    pub async fn registered(&self, user: &str, password: &str) {
        let (status, body) = self.register(user, password).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// `POST /v1/login`.
    pub async fn login(&self, user: &str, password: &str) -> (StatusCode, Value) {
        self.post("/v1/login", json!({"user": user, "password": password}))
            .await
    }

    /// `GET /v1/session` with the token as bearer.
    pub async fn session(&self, token: &str) -> StatusCode {
        self.http
            .get(self.url("/v1/session"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `DELETE /v1/session` with the token as bearer.
    pub async fn logout(&self, token: &str) -> Response {
        self.http
            .delete(self.url("/v1/session"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `PUT /v1/users/{user}/password`.
    pub async fn change_password(&self, user: &str, old: &str, new: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .put(self.url(&format!("/v1/users/{user}/password")))
            .json(&json!({"old_password": old, "new_password": new}))
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    /// `GET /metrics`: the exposition text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// The event log's lines so far.
    pub fn events(&self) -> Vec<Value> {
        parse_lines(&std::fs::read_to_string(&self.events).unwrap_or_default())
    }

    /// Begins the shutdown, as SIGTERM does (readiness off, then draining);
    /// [`TestServer::stop`] waits for its end.
    pub fn begin_stop(&mut self) {
        self.served.begin_stop();
    }

    /// Stops the server and returns the event log as written.
    pub async fn stop_raw(self) -> String {
        self.served.stop().await;
        std::fs::read_to_string(&self.events).unwrap_or_default()
    }

    /// Stops the server and returns the event log's lines.
    pub async fn stop(self) -> Vec<Value> {
        parse_lines(&self.stop_raw().await)
    }
}

async fn answer(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `error.code` of an error answer (`""` if none).
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// The `session` token of a login answer.
pub fn session_token(body: &Value) -> String {
    body["session"].as_str().unwrap().to_owned()
}
