use super::shared::{runtime, HashArgs, StorageArgs};
use anyhow::Context;
use ipnet::IpNet;
use sesame_domain::{LimitSettings, LoginSettings, PasswordPolicy, Rate, SystemClock};
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
    /// Login attempts allowed per client address (IPv6: per /64), per second.
    #[arg(long, env = "SESAME_IP_RATE", default_value_t = 5.0)]
    ip_rate: f64,
    /// Attempts a client address may make at once before --ip-rate applies.
    #[arg(long, env = "SESAME_IP_BURST", default_value_t = 20)]
    ip_burst: u32,
    /// Failed logins from one client address across all accounts, per minute
    /// (burst: the same number): what credential stuffing looks like.
    #[arg(long, env = "SESAME_IP_FAILURES_PER_MIN", default_value_t = 30)]
    ip_failures_per_min: u32,
    /// Failed logins to one account from one address, per minute (burst: the same number).
    #[arg(long, env = "SESAME_ACCOUNT_IP_FAILURES_PER_MIN", default_value_t = 5)]
    account_ip_failures_per_min: u32,
    /// Failed logins to one account from addresses it never logged in from,
    /// per minute (burst: 50). Known addresses are never held back by it.
    #[arg(long, env = "SESAME_ACCOUNT_FAILURES_PER_MIN", default_value_t = 20)]
    account_failures_per_min: u32,
    /// Logins from one client address (IPv6: its /64) in flight at once in
    /// this instance; more are refused (429) before any other work.
    #[arg(long, env = "SESAME_IP_LOGINS_IN_FLIGHT", default_value_t = 2)]
    ip_logins_in_flight: u32,
    /// Block list: one address or network (CIDR) per line, `#` comments.
    /// Logins from them are refused (429, as rate-limited) before any other
    /// work. Reread within a second of a change; a bad file stops the start,
    /// a bad edit keeps the last good list.
    #[arg(long, env = "SESAME_DENY_LIST")]
    deny_list: Option<PathBuf>,
    /// Session lifetime in seconds.
    #[arg(long, env = "SESAME_SESSION_TTL", default_value_t = 12 * 3600)]
    session_ttl: i64,
    /// Sessions kept in process memory once checked, so that a check is a
    /// lookup instead of a database or Redis read. With Redis (`--cache`), a
    /// revocation on any instance is refused by every instance within 50 ms,
    /// and while the revocation channel is down every check reads Redis.
    /// 0 turns the cache off.
    #[arg(long, env = "SESAME_SESSION_CACHE_CAPACITY", default_value_t = 100_000)]
    session_cache_capacity: u64,
    /// Proxy ranges (CIDR, comma-separated) whose `ip` field is believed.
    #[arg(long, env = "SESAME_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<IpNet>,
    /// Write one JSON line per login attempt here (`-` for stdout).
    #[arg(long, env = "SESAME_EVENT_LOG")]
    event_log: Option<PathBuf>,
    /// Write each login slower than --slow-login-ms here, with its stage breakdown.
    #[arg(long, env = "SESAME_SLOW_LOGIN_LOG")]
    slow_login_log: Option<PathBuf>,
    /// Threshold of the slow-login log, in ms.
    #[arg(long, env = "SESAME_SLOW_LOGIN_MS", default_value_t = 250)]
    slow_login_ms: u64,
    /// Latency SLO threshold in ms: a histogram bucket boundary sits on it.
    #[arg(long, env = "SESAME_SLO_MS", default_value_t = 250)]
    slo_ms: u64,
    /// Serve /metrics on this address instead of the main one.
    #[arg(long, env = "SESAME_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Allowed `region` label values in metrics (comma-separated); default:
    /// the first 16 seen. Others become `other`.
    #[arg(long, env = "SESAME_METRIC_REGIONS", value_delimiter = ',')]
    metric_regions: Vec<String>,
    /// Allowed `platform` label values in metrics, as for regions.
    #[arg(long, env = "SESAME_METRIC_PLATFORMS", value_delimiter = ',')]
    metric_platforms: Vec<String>,
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
            limits: LimitSettings {
                per_ip_failures: Rate::per_minute(
                    f64::from(args.ip_failures_per_min),
                    args.ip_failures_per_min,
                ),
                per_ip: Rate::per_second(args.ip_rate, args.ip_burst),
                per_account_ip_failures: Rate::per_minute(
                    f64::from(args.account_ip_failures_per_min),
                    args.account_ip_failures_per_min,
                ),
                per_account_failures: Rate::per_minute(
                    f64::from(args.account_failures_per_min),
                    50,
                ),
                max_in_flight_per_ip: args.ip_logins_in_flight,
                ..LimitSettings::default()
            },
        },
        trusted_proxies: args.trusted_proxies,
        deny_list: args.deny_list,
        event_log: args.event_log,
        slow_login_log: args.slow_login_log,
        slow_login: Duration::from_millis(args.slow_login_ms),
        slo: Duration::from_millis(args.slo_ms),
        metric_regions: args.metric_regions,
        metric_platforms: args.metric_platforms,
        cookie_secure: args.cookie_secure,
        instance: args
            .instance
            .unwrap_or_else(sesame_server::default_instance),
        drain_delay: Duration::from_secs(args.drain_delay),
        grace_period: Duration::from_secs(args.grace_period),
    };
    runtime()?.block_on(async move {
        let storage = sesame_storage::StorageConfig {
            session_cache_capacity: args.session_cache_capacity,
            ..args.storage.storage_config()
        };
        let stores = sesame_storage::open(&storage)
            .await
            .with_context(|| format!("opening {}", args.storage.database_display()))?;
        let workers = config.hash_workers;
        let params = config.hash_params;
        let mut app = App::build(config, stores, Arc::new(SystemClock))?;
        if let Some(addr) = &args.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for metrics"))?;
            tracing::info!(metrics_listen = %listener.local_addr()?, "metrics on their own listener");
            app = app.with_metrics_listener(listener);
        }
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        tracing::info!(
            listen = %listener.local_addr()?,
            database = %args.storage.database_display(),
            cache = args.storage.cache_display(),
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
