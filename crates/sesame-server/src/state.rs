//! What every handler shares, apart from the code that builds it (`app`),
//! so that handlers need not depend on the service's assembly.

use crate::config::ServerConfig;
use crate::eventlog::JsonLinesLog;
use crate::metrics::LoginLabels;
use metrics_exporter_prometheus::PrometheusHandle;
use sesame_domain::LoginService;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every handler shares; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub service: LoginService,
    pub config: ServerConfig,
    pub events: Option<JsonLinesLog>,
    pub slow_logins: Option<JsonLinesLog>,
    pub metrics: PrometheusHandle,
    pub labels: LoginLabels,
    pub backend: &'static str,
    pub(crate) ready: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub(crate) fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether cookies are `Secure` (and so `__Host-` prefixed).
    pub fn cookie_secure(&self) -> bool {
        self.config.cookie_secure
    }
}
