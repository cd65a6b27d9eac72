//! Building the service from configuration plus stores, and running it on a
//! bound listener until a shutdown future resolves.

use crate::config::ServerConfig;
use crate::eventlog::JsonLinesLog;
use crate::metrics::{self, BoundedLabel, LoginLabels};
use crate::router;
use crate::state::{AppState, Shared};
use sesame_domain::{Clock, HashPool, LoginService, PasswordHasher, SharedDenyList};
use sesame_storage::Stores;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A built, not yet running, sesame service.
pub struct App {
    state: AppState,
    /// The block list's file and the list it fills, watched while serving.
    deny_list: Option<(std::path::PathBuf, SharedDenyList)>,
    log_writers: Vec<JoinHandle<()>>,
    metrics_listener: Option<TcpListener>,
}

/// Distinct values a learned metric label keeps before folding into `other`.
const LEARNED_LABEL_VALUES: usize = 16;

impl App {
    pub fn build(
        config: ServerConfig,
        stores: Stores,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let hasher = PasswordHasher::new(config.hash_params)?;
        let pool = HashPool::start(hasher, config.hash_workers);
        let mut service = LoginService::new(
            stores.users,
            stores.sessions,
            pool,
            clock,
            config.login.clone(),
        )?;
        // With Redis, every instance shares one set of rate limits.
        if let Some(shared) = stores.limits {
            service = service.with_limit_store(shared);
        }
        // ... and a login asks it for its shared state in two round trips.
        if let Some(shared) = stores.round_trips {
            service = service.with_round_trips(shared);
        }
        let deny_list = match &config.deny_list {
            Some(path) => {
                let list = SharedDenyList::new(crate::denylist::load(path)?);
                service = service.with_deny_list(list.clone());
                Some((path.clone(), list))
            }
            None => None,
        };
        let mut log_writers = Vec::new();
        let mut open_log = |path: &Option<std::path::PathBuf>,
                            what: &str|
         -> anyhow::Result<Option<JsonLinesLog>> {
            let Some(path) = path else { return Ok(None) };
            let (log, writer) = JsonLinesLog::open(path)
                .map_err(|e| anyhow::anyhow!("cannot open {what} {}: {e}", path.display()))?;
            log_writers.push(writer);
            Ok(Some(log))
        };
        let events = open_log(&config.event_log, "event log")?;
        let slow_logins = open_log(&config.slow_login_log, "slow-login log")?;
        let labels = LoginLabels {
            region: BoundedLabel::new(&config.metric_regions, LEARNED_LABEL_VALUES),
            platform: BoundedLabel::new(&config.metric_platforms, LEARNED_LABEL_VALUES),
        };
        let state = AppState::new(Shared {
            service,
            metrics: metrics::install(config.slo.as_secs_f64()),
            labels,
            config,
            events,
            slow_logins,
            backend: stores.backend,
            ready: AtomicBool::new(true),
        });
        Ok(Self {
            state,
            deny_list,
            log_writers,
            metrics_listener: None,
        })
    }

    /// Serves `/metrics` on its own listener (and no longer on the main one),
    /// e.g. to keep it off the public port.
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn router(&self) -> axum::Router {
        router::router(self.state.clone(), self.metrics_listener.is_none())
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
        let App {
            state,
            deny_list,
            log_writers,
            metrics_listener,
        } = self;
        let watcher =
            deny_list.map(|(path, list)| tokio::spawn(crate::denylist::watch(path, list)));
        if let Some(listener) = metrics_listener {
            let metrics_only = router::metrics_router(state.clone());
            tokio::spawn(async move { axum::serve(listener, metrics_only).await });
        }
        let shared = state.clone();
        let drain_delay = shared.config.drain_delay;
        let grace = shared.config.grace_period;
        let closing = Arc::new(tokio::sync::Notify::new());
        let closing_signal = closing.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: not ready, draining");
            shared.set_ready(false);
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
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        drop(state);
        // Connections cut off by the grace period may still hold the state
        // (and so the log handles); don't wait for them forever.
        for writer in log_writers {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
        }
        Ok(())
    }
}
