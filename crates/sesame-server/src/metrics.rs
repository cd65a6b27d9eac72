//! Prometheus metrics. Instrumentation uses the `metrics` facade (so the
//! storage crate can time its queries without knowing about HTTP); this
//! module installs the Prometheus recorder, bounds label values, and fills
//! in the gauges that are read off the hash pool at scrape time.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sesame_domain::event::{LoginEvent, Outcome, Stage};
use sesame_domain::PoolStats;
use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

/// Latency buckets in seconds; the SLO threshold (250 ms by default) is
/// added when it is not one of them, so "under the SLO" is an exact count.
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often pending histogram samples are folded into buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide recorder once; later calls (more apps in one
/// test process) share it.
pub fn install(slo_seconds: f64) -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let mut buckets = LATENCY_BUCKETS.to_vec();
            if !buckets.iter().any(|b| (b - slo_seconds).abs() < 1e-9) {
                buckets.push(slo_seconds);
                buckets.sort_by(f64::total_cmp);
            }
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("non-empty buckets")
                .install_recorder()
                .expect("the only metrics recorder");
            // Histogram samples wait in the recorder until they are folded
            // into their buckets, which a scrape does; without scrapes they
            // pile up (~100 bytes a login, found by the soak). Fold them
            // every few seconds whoever scrapes.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("sesame-metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                })
                .expect("spawn the metrics upkeep thread");
            describe();
            gauge!("sesame_build_info", "version" => env!("CARGO_PKG_VERSION"), "revision" => env!("SESAME_REVISION"))
                .set(1.0);
            handle
        })
        .clone()
}

fn describe() {
    describe_histogram!(
        "sesame_login_duration_seconds",
        Unit::Seconds,
        "Login attempts by outcome, region and platform: time from arrival to answer."
    );
    describe_histogram!(
        "sesame_login_stage_duration_seconds",
        Unit::Seconds,
        "Time a login spent per stage: queue (waiting for a hash worker), hash, db, session."
    );
    describe_gauge!("sesame_hash_queue_depth", "Hash jobs waiting for a worker.");
    describe_gauge!("sesame_hash_workers", "Hashing threads.");
    describe_gauge!("sesame_hash_workers_busy", "Hashing threads busy now.");
    describe_gauge!(
        "sesame_hash_estimate_seconds",
        Unit::Seconds,
        "Moving average of one hash: what admission control plans with."
    );
    describe_gauge!(
        "sesame_hash_admission_share",
        "Share of a login's time left that its predicted wait and hash may fill to be admitted (0.8 at most; lower after jobs expired in the queue)."
    );
    describe_counter!("sesame_login_shed_total", "Hash jobs refused (overloaded: at admission) or dropped (expired: deadline passed in the queue; abandoned: client gone).");
    describe_counter!(
        "sesame_rate_limited_total",
        "Requests refused by a rate limit, by scope."
    );
    describe_gauge!(
        "sesame_deny_list_entries",
        "Addresses and networks on the operator's block list (--deny-list)."
    );
    describe_histogram!(
        "sesame_db_query_duration_seconds",
        Unit::Seconds,
        "Database queries by query and by role (primary, replica, cache)."
    );
    describe_gauge!(
        "sesame_replica_lag_seconds",
        Unit::Seconds,
        "Replication lag of each read replica."
    );
    describe_counter!(
        "sesame_http_requests_total",
        "HTTP requests by route template, method and status."
    );
    describe_histogram!(
        "sesame_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by route template and method."
    );
    describe_gauge!(
        "sesame_build_info",
        "Version and source revision of the running binary."
    );
    describe_counter!(
        "sesame_event_log_dropped_total",
        "Event-log lines lost because the writer could not keep up."
    );
}

/// A label whose values are bounded: a configured set, or else the first
/// `capacity` values seen. Everything else is `other`.
pub struct BoundedLabel {
    allowed: RwLock<HashSet<String>>,
    learn: bool,
    capacity: usize,
}

impl BoundedLabel {
    pub fn new(configured: &[String], capacity: usize) -> Self {
        Self {
            allowed: RwLock::new(configured.iter().cloned().collect()),
            learn: configured.is_empty(),
            capacity,
        }
    }

    pub fn value(&self, raw: &str) -> String {
        if raw.is_empty() {
            return "none".into();
        }
        if self.allowed.read().expect("label lock").contains(raw) {
            return raw.to_owned();
        }
        if self.learn {
            let mut allowed = self.allowed.write().expect("label lock");
            if allowed.len() < self.capacity && raw.len() <= 32 {
                allowed.insert(raw.to_owned());
                return raw.to_owned();
            }
        }
        "other".into()
    }
}

/// The metric labels sesame derives from client-supplied values.
pub struct LoginLabels {
    pub region: BoundedLabel,
    pub platform: BoundedLabel,
}

impl LoginLabels {
    pub fn record(&self, event: &LoginEvent) {
        let secs = |ms: f64| ms / 1e3;
        let outcome = event.outcome.unwrap_or(Outcome::Error);
        histogram!(
            "sesame_login_duration_seconds",
            "outcome" => outcome.as_str(),
            "region" => self.region.value(&event.region),
            "platform" => self.platform.value(&event.platform),
        )
        .record(secs(event.total_ms));
        if event.db_role.is_none() {
            return; // never reached the lookup: nothing to break down
        }
        let hashed = event.hash_ms > 0.0;
        for stage in Stage::ALL {
            let timed = match stage {
                Stage::Db => true,
                Stage::Queue | Stage::Hash => hashed,
                Stage::Session => outcome == Outcome::Ok,
            };
            if timed {
                histogram!("sesame_login_stage_duration_seconds", "stage" => stage.as_str())
                    .record(secs(stage.ms(event)));
            }
        }
    }
}

/// Copies the hash pool's state into gauges and counters; run at scrape.
pub fn refresh_pool(stats: &PoolStats) {
    gauge!("sesame_hash_queue_depth").set(stats.queued as f64);
    gauge!("sesame_hash_workers").set(stats.workers as f64);
    gauge!("sesame_hash_workers_busy").set(stats.busy as f64);
    gauge!("sesame_hash_estimate_seconds").set(stats.hash_estimate.as_secs_f64());
    gauge!("sesame_hash_admission_share").set(stats.admission_share);
    counter!("sesame_login_shed_total", "reason" => "overloaded").absolute(stats.shed);
    counter!("sesame_login_shed_total", "reason" => "expired").absolute(stats.expired);
    counter!("sesame_login_shed_total", "reason" => "abandoned").absolute(stats.abandoned);
}

pub fn record_rate_limited(scope: &'static str) {
    counter!("sesame_rate_limited_total", "scope" => scope).increment(1);
}

/// Counts and times every routed request by its route template.
pub async fn track_http(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = match *request.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    histogram!("sesame_http_request_duration_seconds", "route" => route.clone(), "method" => method)
        .record(started.elapsed().as_secs_f64());
    counter!(
        "sesame_http_requests_total",
        "route" => route,
        "method" => method,
        "status" => response.status().as_u16().to_string(),
    )
    .increment(1);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded() {
        let learned = BoundedLabel::new(&[], 2);
        assert_eq!(learned.value("eu"), "eu");
        assert_eq!(learned.value("us"), "us");
        assert_eq!(learned.value("ap"), "other");
        assert_eq!(learned.value("eu"), "eu");
        assert_eq!(learned.value(""), "none");
        let fixed = BoundedLabel::new(&["ios".into(), "android".into()], 10);
        assert_eq!(fixed.value("android"), "android");
        assert_eq!(fixed.value("blackberry"), "other");
    }
}
