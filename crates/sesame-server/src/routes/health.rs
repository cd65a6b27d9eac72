//! Liveness, readiness and `/metrics`.

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// Liveness: the process answers. Never depends on the database, so a
/// database outage does not restart every pod.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: this instance should get traffic (not draining, stores reachable).
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "ready"),
    (status = 503, description = "draining or a store is unreachable", body = ErrorBody, headers(("Retry-After" = String, description = "seconds to wait")))))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.is_ready() {
        return Err(ApiError::Unavailable("shutting down".into()));
    }
    state.service.ready().await?;
    let pool = state.service.pool().stats();
    Ok(Json(json!({
        "status": "ready",
        "backend": state.backend,
        "hash_workers": pool.workers,
        "hash_queue": pool.queued,
    })))
}

/// Prometheus metrics, text format.
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    crate::metrics::refresh_pool(&state.service.pool().stats());
    let dropped = state.events.as_ref().map_or(0, |l| l.dropped())
        + state.slow_logins.as_ref().map_or(0, |l| l.dropped());
    metrics::counter!("sesame_event_log_dropped_total").absolute(dropped);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
