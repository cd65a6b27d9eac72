//! Building the service from configuration plus stores, and running it on a
//! bound listener until a shutdown future resolves.

use crate::config::ServerConfig;
use crate::eventlog::JsonLinesLog;
use crate::routes;
use sesame_domain::{Clock, HashPool, LoginService, PasswordHasher};
use sesame_storage::Stores;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every handler shares.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub service: LoginService,
    pub config: ServerConfig,
    pub events: Option<JsonLinesLog>,
    pub backend: &'static str,
    ready: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

/// A built, not yet running, sesame service.
pub struct App {
    state: AppState,
    log_writers: Vec<JoinHandle<()>>,
}

impl App {
    pub fn build(
        config: ServerConfig,
        stores: Stores,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let hasher = PasswordHasher::new(config.hash_params)?;
        let pool = HashPool::start(hasher, config.hash_workers);
        let service = LoginService::new(
            stores.users,
            stores.sessions,
            pool,
            clock,
            config.login.clone(),
        )?;
        let mut log_writers = Vec::new();
        let events = match &config.event_log {
            Some(path) => {
                let (log, writer) = JsonLinesLog::open(path).map_err(|e| {
                    anyhow::anyhow!("cannot open event log {}: {e}", path.display())
                })?;
                log_writers.push(writer);
                Some(log)
            }
            None => None,
        };
        let state = AppState(Arc::new(Shared {
            service,
            config,
            events,
            backend: stores.backend,
            ready: AtomicBool::new(true),
        }));
        Ok(Self { state, log_writers })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then drains: `/readyz` turns 503,
    /// after the drain delay the listener closes, in-flight requests finish
    /// (up to the grace period), and the logs are flushed.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let state = self.state.clone();
        let drain_delay = state.config.drain_delay;
        let grace = state.config.grace_period;
        let closing = Arc::new(tokio::sync::Notify::new());
        let closing_signal = closing.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: not ready, draining");
            state.set_ready(false);
            tokio::time::sleep(drain_delay).await;
            closing_signal.notify_one();
        };
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let deadline = async {
            closing.notified().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            served = server => served?,
            () = deadline => tracing::warn!("grace period over; exiting with requests in flight"),
        }
        let App { state, log_writers } = self;
        drop(state);
        // Connections cut off by the grace period may still hold the state
        // (and so the log handles); don't wait for them forever.
        for writer in log_writers {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
        }
        Ok(())
    }
}
