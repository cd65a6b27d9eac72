//! sesame load against test servers on loopback: the schedule's statistics,
//! replay timing, coordinated omission, registrations and the acked list,
//! the per-operation timeline, and a short run against a real `sesame serve`
//! seeded by both seeding paths.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use sesame_load::report::Report;
use sesame_load::scenario::Op;
use sesame_load::schedule::{ArrivalProcess, ArrivalTimes, RateProfile};
use sesame_load::{LoadArgs, LoadCommand, RunArgs, SeedArgs};
use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    load: LoadArgs,
}

fn run_args(args: &[&str]) -> RunArgs {
    let mut argv = vec!["load", "--no-progress"];
    argv.extend_from_slice(args);
    Cli::parse_from(argv).load.run
}

fn seed_args(args: &[&str]) -> SeedArgs {
    let mut argv = vec!["load", "seed"];
    argv.extend_from_slice(args);
    match Cli::parse_from(argv).load.command {
        Some(LoadCommand::Seed(seed)) => seed,
        None => panic!("parsed as a run"),
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Counts of arrivals in consecutive windows of a Poisson process are
/// independent Poisson(lambda) variables: mean lambda, variance lambda. With
/// n windows, (n - 1) * variance / mean is chi-squared with n - 1 degrees of
/// freedom (mean n - 1, sd sqrt(2 (n - 1))); the bounds below are 5 sd, so a
/// correct generator fails them for about one seed in two million.
#[test]
fn poisson_schedule_has_the_right_mean_and_dispersion() {
    let (rate, seconds, window) = (1000.0, 100.0, 0.1);
    for seed in [1, 2, 3] {
        let profile = RateProfile::constant(rate, Duration::from_secs_f64(seconds));
        let times: Vec<f64> = ArrivalTimes::new(profile, ArrivalProcess::Poisson, seed)
            .map(|t| t.as_secs_f64())
            .collect();
        // Total ~ Poisson(100000): sd 316.
        let expected = rate * seconds;
        let sd = expected.sqrt();
        assert!(
            (times.len() as f64 - expected).abs() < 5.0 * sd,
            "seed {seed}: {} arrivals, expected {expected}",
            times.len()
        );
        let windows = (seconds / window) as usize;
        let mut counts = vec![0f64; windows];
        for t in &times {
            counts[((t / window) as usize).min(windows - 1)] += 1.0;
        }
        let n = windows as f64;
        let mean = counts.iter().sum::<f64>() / n;
        let variance = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let chi2 = (n - 1.0) * variance / mean;
        let chi2_sd = (2.0 * (n - 1.0)).sqrt();
        assert!(
            (chi2 - (n - 1.0)).abs() < 5.0 * chi2_sd,
            "seed {seed}: dispersion {:.3} (variance {variance:.1}, mean {mean:.1})",
            variance / mean
        );
        // Gaps are exponential: their coefficient of variation is 1.
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let gap_mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let gap_sd =
            (gaps.iter().map(|g| (g - gap_mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
        assert!((gap_mean * rate - 1.0).abs() < 0.02, "mean gap {gap_mean}");
        assert!(
            (gap_sd / gap_mean - 1.0).abs() < 0.02,
            "CV {}",
            gap_sd / gap_mean
        );
    }
    // The same seed gives the same schedule; uniform arrivals do not scatter.
    let first = |seed| {
        ArrivalTimes::new(
            RateProfile::constant(100.0, Duration::from_secs(1)),
            ArrivalProcess::Poisson,
            seed,
        )
        .take(10)
        .collect::<Vec<_>>()
    };
    assert_eq!(first(9), first(9));
    assert_ne!(first(9), first(10));
}

/// What the test server saw: when each request arrived and its body.
#[derive(Default)]
struct Seen(Mutex<Vec<(Instant, serde_json::Value)>>);

async fn record_login(State(seen): State<Arc<Seen>>, body: Bytes) -> axum::http::StatusCode {
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let status = if value["password"] == "Kx7-synthetic-Qm2-Pw" {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::UNAUTHORIZED
    };
    seen.0.lock().unwrap().push((Instant::now(), value));
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reproduces_recorded_timing_and_mix() {
    let seen = Arc::new(Seen::default());
    let addr = serve(
        Router::new()
            .route("/v1/login", post(record_login))
            .with_state(seen.clone()),
    )
    .await;
    // Recorded offsets in ms, replayed at speed 2.
    let recorded = [
        (0, "alice", "ok", "203.0.113.7", "eu-west", "ios"),
        (
            200,
            "bob",
            "invalid_credentials",
            "203.0.113.8",
            "us-east",
            "web",
        ),
        (300, "alice", "ok", "203.0.113.7", "eu-west", "ios"),
        (1000, "carol", "ok", "203.0.113.9", "ap-south", "android"),
        (
            1100,
            "bob",
            "invalid_credentials",
            "203.0.113.8",
            "us-east",
            "web",
        ),
        (
            2400,
            "dave",
            "rate_limited",
            "203.0.113.10",
            "eu-west",
            "web",
        ),
    ];
    let mut log = tempfile::NamedTempFile::new().unwrap();
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-26T06:00:00.000Z").unwrap();
    for (ms, user, outcome, ip, region, platform) in recorded.iter().rev() {
        let event = sesame_domain::event::LoginEvent {
            ts: (t0 + chrono::Duration::milliseconds(*ms))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            outcome: sesame_domain::event::Outcome::parse(outcome),
            user: (*user).into(),
            ip: (*ip).into(),
            region: (*region).into(),
            platform: (*platform).into(),
            app_version: "5.4.0".into(),
            ..Default::default()
        };
        writeln!(log, "{}", serde_json::to_string(&event).unwrap()).unwrap();
    }
    let target = format!("http://{addr}");
    let path = log.path().to_str().unwrap();
    let report = sesame_load::execute(&run_args(&[
        "--target", &target, "--replay", path, "--speed", "2", "--users", "10",
    ]))
    .await
    .unwrap();

    let seen = seen.0.lock().unwrap();
    assert_eq!(seen.len(), recorded.len());
    let start = seen[0].0;
    for ((at, body), (ms, user, outcome, ip, region, platform)) in seen.iter().zip(recorded) {
        let offset = at.duration_since(start).as_secs_f64() * 1000.0;
        let want = ms as f64 / 2.0;
        assert!(
            (offset - want).abs() < 40.0,
            "{user} at {offset:.1} ms, want {want} ms"
        );
        assert_eq!(body["ip"], ip);
        assert_eq!(body["client"]["region"], region);
        assert_eq!(body["client"]["platform"], platform);
        let right_password = body["password"] == "Kx7-synthetic-Qm2-Pw";
        assert_eq!(right_password, outcome != "invalid_credentials", "{user}");
    }
    // Users map onto seeded users in order of first appearance.
    let users: Vec<&str> = seen
        .iter()
        .map(|(_, b)| b["user"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        ["load-0", "load-1", "load-0", "load-2", "load-1", "load-3"]
    );
    assert_eq!(report.errors, 0, "{report:#?}");
    assert_eq!(report.operation("login").unwrap().count, 4);
    assert_eq!(report.operation("wrong-password").unwrap().count, 2);
}

/// When the first request arrived; the server stalls from 4 s to 5 s after.
static FIRST_REQUEST: OnceLock<Instant> = OnceLock::new();

async fn stalling() -> &'static str {
    let first = *FIRST_REQUEST.get_or_init(Instant::now);
    let (stall_from, stall_to) = (
        first + Duration::from_secs(4),
        first + Duration::from_secs(5),
    );
    let now = Instant::now();
    if now >= stall_from && now < stall_to {
        tokio::time::sleep_until(stall_to.into()).await;
    }
    "ok"
}

/// A server that stops answering for 1 s of a 10 s run at 100/s (a GC pause,
/// a lock, a failover): every request due in that second waits up to a second,
/// so the 99th percentile must be in the hundreds of ms. A tool that times
/// from the actual send sees only the few requests already on the wire: its
/// numbers (the service time here) hide the stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_the_high_percentiles() {
    let addr = serve(Router::new().route("/stall", get(stalling))).await;
    let target = format!("http://{addr}");
    let report: Report = sesame_load::execute(&run_args(&[
        "--target",
        &target,
        "--get",
        "/stall",
        "--rate",
        "100",
        "--duration",
        "10s",
        "--connections",
        "4",
    ]))
    .await
    .unwrap();
    let get = report.operation("get").unwrap();
    assert_eq!(report.errors, 0);
    assert_eq!(get.count, 1000);
    assert!(
        get.latency.p99 >= 500.0,
        "the stall is hidden: p99 {} ms",
        get.latency.p99
    );
    assert!(get.latency.max >= 900.0, "max {} ms", get.latency.max);
    // About a tenth of the requests were due during the stall; the median
    // request was not.
    assert!(get.latency.p50 < 50.0, "p50 {} ms", get.latency.p50);
    assert!(
        get.service_time.p99 < 100.0,
        "timed from the actual send, the stall should hide: p99 {} ms",
        get.service_time.p99
    );
    assert!(
        (report.intended.unwrap().per_second - 100.0).abs() < 1.0,
        "{:?}",
        report.intended
    );
    assert!(report.timeline.iter().any(|p| p.max_ms >= 900.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_errors_not_dropped() {
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }
    let addr = serve(Router::new().route("/slow", get(slow))).await;
    let target = format!("http://{addr}");
    let report = sesame_load::execute(&run_args(&[
        "--target",
        &target,
        "--get",
        "/slow",
        "--rate",
        "20",
        "--duration",
        "1s",
        "--timeout",
        "300ms",
        "--connections",
        "2",
    ]))
    .await
    .unwrap();
    let get = report.operation("get").unwrap();
    assert_eq!(get.count, 20, "every scheduled request is accounted for");
    assert_eq!(report.errors, 20);
    let timeouts = report.errors_by_kind.get("timeout").copied().unwrap_or(0);
    let unsent = report
        .errors_by_kind
        .get("timeout before send")
        .copied()
        .unwrap_or(0);
    assert_eq!(timeouts + unsent, 20, "{:?}", report.errors_by_kind);
    assert!(get.latency.max >= 300.0 && get.latency.max < 500.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_remote_targets_and_stops_by_itself() {
    let err = sesame_load::execute(&run_args(&[
        "--target",
        "http://192.0.2.1:8080",
        "--rate",
        "1",
    ]))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("--allow-remote"), "{err}");
    let err = sesame_load::execute(&run_args(&[])).await.unwrap_err();
    assert!(err.to_string().contains("choose a schedule"), "{err}");
    // --requests alone bounds a closed-loop run.
    let addr = serve(Router::new().route("/", get(|| async { "ok" }))).await;
    let target = format!("http://{addr}");
    let report = sesame_load::execute(&run_args(&[
        "--target",
        &target,
        "--get",
        "/",
        "--max",
        "--requests",
        "500",
    ]))
    .await
    .unwrap();
    assert_eq!(report.sent.requests, 500);
    assert_eq!(report.mode, "closed-loop");
    assert!(report.intended.is_none());
}

/// Seeds users by direct import and through the API, then runs a mix with
/// an attacker against a real sesame service, and writes both reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_real_sesame() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("sesame.db").display());
    let cheap = ["--hash-m-cost", "64", "--hash-t-cost", "1"];
    let mut args = vec!["--database", &database, "--users", "300"];
    args.extend(cheap);
    let started = Instant::now();
    let seeded = sesame_load::seed::seed(&seed_args(&args)).await.unwrap();
    assert_eq!((seeded.created, seeded.existing), (300, 0));
    assert!(started.elapsed() < Duration::from_secs(10));
    let again = sesame_load::seed::seed(&seed_args(&args)).await.unwrap();
    assert_eq!((again.created, again.existing), (0, 300));

    let open = || async {
        sesame_storage::open(&sesame_storage::StorageConfig {
            database_url: database.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
    };
    let stores = open().await;
    let config = sesame_server::ServerConfig {
        hash_params: sesame_domain::HashParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        },
        hash_workers: 2,
        // The load's `ip` fields are believed only from a trusted proxy.
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        cookie_secure: false,
        ..Default::default()
    };
    let app =
        sesame_server::App::build(config, stores, Arc::new(sesame_domain::SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app.run(listener, std::future::pending()));

    // The API path, for a few users of another prefix.
    let api = sesame_load::seed::seed(&seed_args(&[
        "--target",
        &target,
        "--users",
        "3",
        "--user-prefix",
        "api-",
        "--no-progress",
    ]))
    .await
    .unwrap();
    assert_eq!((api.created, api.existing), (3, 0));

    let json = dir.path().join("report.json");
    let html = dir.path().join("report.html");
    let acked = dir.path().join("acked.txt");
    let args = run_args(&[
        "--target",
        &target,
        "--rate",
        "100",
        "--arrival",
        "poisson",
        "--duration",
        "2s",
        "--users",
        "300",
        "--mix",
        "login=50,wrong-password=20,unknown-user=10,session=20,register=5",
        "--attack-rate",
        "30",
        "--attack-ips",
        "2",
        "--acked-registrations",
        acked.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    let report = sesame_load::execute(&args).await.unwrap();
    for op in [
        "login",
        "wrong-password",
        "unknown-user",
        "session",
        "attack",
        "register",
    ] {
        let o = report
            .operation(op)
            .unwrap_or_else(|| panic!("{op} missing: {report:#?}"));
        assert!(o.count > 0, "{op}");
        assert_eq!(o.errors, 0, "{op}: {:#?}", o.outcomes);
    }
    assert_eq!(report.errors, 0, "{:?}", report.errors_by_kind);
    // Every acknowledged registration is in the database.
    let registered = lines(&acked);
    assert_eq!(
        registered.len() as u64,
        report.operation("register").unwrap().count
    );
    let users = open().await.users;
    for name in &registered {
        let username = sesame_domain::Username::parse(name).unwrap();
        let (found, _) = users.find_for_login(&username).await.unwrap();
        assert!(found.is_some(), "{name} was acknowledged and is not stored");
    }

    sesame_load::write_outputs(&args, &report).unwrap();
    let written: Report = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(written.operations.len(), 6);
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg").count(), 3);
    assert!(!page.contains("<script") && !page.contains("src="));
}

#[test]
fn the_mix_takes_registrations() {
    let args = run_args(&["--mix", "login=70,register=10,session=20"]);
    assert_eq!(
        args.mix.ops().collect::<Vec<_>>(),
        [Op::Login, Op::Register, Op::Session]
    );
    let err = Cli::try_parse_from(["load", "--mix", "signup=1"])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("register"), "{err}");
}

/// A registration endpoint that answers 201 and 503 in turn, and remembers
/// every name and its answer.
#[derive(Default)]
struct Registrations {
    answered: Mutex<Vec<(String, u16)>>,
    /// When set, the acked file, which must already list every name
    /// answered 201 when the next registration arrives (in a sequential run).
    watch: Mutex<Option<PathBuf>>,
    /// Registrations that arrived while the file lagged behind.
    lagged: Mutex<Vec<String>>,
}

impl Registrations {
    fn acked(&self) -> Vec<String> {
        let mut acked: Vec<String> = (self.answered.lock().unwrap().iter())
            .filter(|(_, status)| *status == 201)
            .map(|(user, _)| user.clone())
            .collect();
        acked.sort();
        acked
    }
}

/// The lines of a file, sorted.
fn lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

mod operations;
