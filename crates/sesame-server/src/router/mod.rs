//! The service's one router: the API, the pages, `/openapi.json`, the
//! fallbacks, and the layers around them all (body limit and lingering
//! close, request ids, tracing, HTTP metrics). Only assembly lives here.

mod fallback;
mod linger;

use crate::extract::REQUEST_ID;
use crate::routes::{health, login, session, users};
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::Request;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use linger::MAX_BODY_BYTES;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

/// The service's routes; `/metrics` among them unless it has its own listener.
pub fn router(state: AppState, with_metrics: bool) -> Router {
    let mut router = Router::new()
        .merge(crate::web::router(state.clone()))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi))
        .route("/v1/users", post(users::register))
        .route("/v1/users/{user}/password", put(users::change_password))
        .route("/v1/login", post(login::login))
        .route("/v1/session", get(session::current).delete(session::logout));
    if with_metrics {
        router = router.route("/metrics", get(health::metrics));
    }
    let track_http = axum::middleware::from_fn(crate::metrics::track_http);
    router
        // On every route registered above, so after them all.
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .route_layer(track_http.clone())
        // Counted too, with no route template: all under `unmatched`.
        .fallback(fallback::not_found.layer(track_http))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(linger::lingering_close))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    // Method and path only: query strings and bodies may hold secrets.
                    tracing::debug_span!("http", method = %req.method(), path = %req.uri().path())
                })
                // A 503 under overload is the design working, not an error to
                // log per request; real internal errors are logged by ApiError.
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// `/metrics` alone, for a separate metrics listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .with_state(state)
}

async fn openapi(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::document(state.cookie_secure()))
}
