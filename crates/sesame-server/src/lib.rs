//! The sesame HTTP service: the JSON API and the sign-in pages, thin
//! handlers over one core. Modules are layered so that no two depend on each
//! other; each uses only those on earlier lines:
//!
//! 1. `config`, `eventlog`, `metrics`, `client_ip`, `cookies`
//! 2. `error` (the one boundary error, [`ApiError`]), `state` ([`AppState`])
//! 3. `flows`: login, registration, password change, HTTP-free
//! 4. `extract`: requests into flow input
//! 5. `routes` (JSON) and `web` (pages): parse, call a flow, answer
//! 6. `openapi`, then `router` (assembly), then `app` (build and run)

mod app;
mod client_ip;
mod config;
mod cookies;
mod denylist;
mod error;
mod eventlog;
mod extract;
mod flows;
mod metrics;
mod openapi;
mod router;
mod routes;
mod state;
mod web;

pub use app::App;
pub use config::{default_instance, ServerConfig};
pub use error::ApiError;
pub use eventlog::JsonLinesLog;
pub use openapi::ApiDoc;
pub use state::AppState;
