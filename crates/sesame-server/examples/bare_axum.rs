//! The yardstick for the session-check benchmark: a bare axum handler
//! answering a small JSON body, on the same runtime settings as `sesame
//! serve`. `scripts/bench-login` compares `GET /v1/session` against it.
//!
//! cargo run --release -p sesame-server --example bare_axum -- 127.0.0.1:18090

use axum::routing::get;
use axum::{Json, Router};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    let app = Router::new().route(
        "/",
        get(|| async {
            Json(serde_json::json!({"user": "bench", "expires_at": "2026-11-26T18:00:00Z"}))
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
