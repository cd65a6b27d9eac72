//! The sesame HTTP service. Handlers are thin: they parse input into domain
//! types, call the [`LoginService`](sesame_domain::LoginService), and map the
//! result through the one boundary error type, [`ApiError`].

mod app;
mod config;
mod error;
mod eventlog;
mod extract;
mod metrics;
mod openapi;
mod routes;
mod web;

pub use app::{App, AppState};
pub use config::{default_instance, ServerConfig};
pub use error::ApiError;
pub use eventlog::JsonLinesLog;
pub use openapi::ApiDoc;
