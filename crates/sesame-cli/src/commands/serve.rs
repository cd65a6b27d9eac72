use super::shared::{runtime, HashArgs, StorageArgs};
use anyhow::Context;
use ipnet::IpNet;
use sesame_domain::{LoginSettings, PasswordPolicy, SystemClock};
use sesame_server::{App, ServerConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SESAME_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    hash: HashArgs,
    /// Latency budget of a login's hash stage, in ms: a login that would wait
    /// longer is answered 503 at once instead of queueing.
    #[arg(long, env = "SESAME_LATENCY_BUDGET_MS", default_value_t = 250)]
    latency_budget_ms: u64,
    /// Session lifetime in seconds.
    #[arg(long, env = "SESAME_SESSION_TTL", default_value_t = 12 * 3600)]
    session_ttl: i64,
    /// Proxy ranges (CIDR, comma-separated) whose `ip` field is believed.
    #[arg(long, env = "SESAME_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<IpNet>,
    /// Write one JSON line per login attempt here (`-` for stdout).
    #[arg(long, env = "SESAME_EVENT_LOG")]
    event_log: Option<PathBuf>,
    /// Mark the session cookie Secure (turn off only for plain-HTTP development).
    #[arg(long, env = "SESAME_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    cookie_secure: bool,
    /// Name of this instance in events and metrics (default: host name).
    #[arg(long, env = "SESAME_INSTANCE")]
    instance: Option<String>,
    /// After SIGTERM, seconds to report not-ready before closing the listener.
    #[arg(long, env = "SESAME_DRAIN_DELAY", default_value_t = 0)]
    drain_delay: u64,
    /// Seconds in-flight requests get to finish after the listener closes.
    #[arg(long, env = "SESAME_GRACE_PERIOD", default_value_t = 30)]
    grace_period: u64,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServerConfig {
        hash_params: args.hash.params(),
        hash_workers: args.hash.workers(),
        login: LoginSettings {
            session_ttl: chrono::Duration::seconds(args.session_ttl),
            latency_budget: Duration::from_millis(args.latency_budget_ms),
            policy: PasswordPolicy::default(),
        },
        trusted_proxies: args.trusted_proxies,
        event_log: args.event_log,
        cookie_secure: args.cookie_secure,
        instance: args
            .instance
            .unwrap_or_else(sesame_server::default_instance),
        drain_delay: Duration::from_secs(args.drain_delay),
        grace_period: Duration::from_secs(args.grace_period),
    };
    runtime()?.block_on(async move {
        let stores = sesame_storage::open(&args.storage.storage_config())
            .await
            .with_context(|| format!("opening {}", args.storage.database))?;
        let workers = config.hash_workers;
        let params = config.hash_params;
        let app = App::build(config, stores, Arc::new(SystemClock))?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        tracing::info!(
            listen = %listener.local_addr()?,
            database = %args.storage.database,
            hash = %params,
            hash_workers = workers,
            "sesame is serving"
        );
        app.run(listener, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
