use ipnet::IpNet;
use sesame_domain::{HashParams, LoginSettings};
use std::path::PathBuf;
use std::time::Duration;

/// Everything the HTTP service needs besides its stores and listener. The
/// CLI builds it from flags and `SESAME_*` variables; tests build it directly.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub hash_params: HashParams,
    pub hash_workers: usize,
    pub login: LoginSettings,
    /// Load balancers and the API tier: hops of `X-Forwarded-For` and the
    /// login's `ip` field are believed through them (`client_ip`).
    pub trusted_proxies: Vec<IpNet>,
    /// The operator's block list: logins from its addresses are refused
    /// before any other work; reread when the file changes.
    pub deny_list: Option<PathBuf>,
    /// JSON lines, one per login attempt; `-` is standard output.
    pub event_log: Option<PathBuf>,
    /// JSON lines, one per login slower than `slow_login`: sesame's own slow log.
    pub slow_login_log: Option<PathBuf>,
    pub slow_login: Duration,
    /// The latency SLO threshold; a histogram bucket boundary sits on it.
    pub slo: Duration,
    /// Allowed `region` / `platform` label values in metrics; empty means
    /// the first 16 values seen. Others are counted as `other`.
    pub metric_regions: Vec<String>,
    pub metric_platforms: Vec<String>,
    /// Cookies are `Secure` and `__Host-` prefixed (on unless serving plain
    /// HTTP to a browser).
    pub cookie_secure: bool,
    /// Name of this replica in events and metrics.
    pub instance: String,
    /// After SIGTERM, how long `/readyz` says 503 before the listener closes,
    /// so load balancers stop sending first.
    pub drain_delay: Duration,
    /// After the listener closes, how long in-flight requests get to finish.
    pub grace_period: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            hash_params: HashParams::default(),
            hash_workers: std::thread::available_parallelism().map_or(1, usize::from),
            login: LoginSettings::default(),
            trusted_proxies: Vec::new(),
            deny_list: None,
            event_log: None,
            slow_login_log: None,
            slow_login: Duration::from_millis(250),
            slo: Duration::from_millis(250),
            metric_regions: Vec::new(),
            metric_platforms: Vec::new(),
            cookie_secure: true,
            instance: default_instance(),
            drain_delay: Duration::ZERO,
            grace_period: Duration::from_secs(30),
        }
    }
}

/// The host name (the pod name on Kubernetes).
pub fn default_instance() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "sesame".into())
}
