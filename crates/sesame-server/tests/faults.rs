//! Faults under load, on the production topology: the real `sesame serve`
//! on a MariaDB primary with a replica (real binlog replication) and a
//! durable Redis, driven by the real `sesame load` (logins, registrations,
//! wrong passwords and session checks, open loop). Mid-run:
//!
//! 1. the primary is killed (kill -9), then restarted;
//! 2. Redis is shut down, then restarted.
//!
//! sesame is never restarted. From the load report's per-second, per-
//! operation timeline and from the databases afterwards it checks what the
//! README's "Reliability" section promises: no error before the first fault;
//! logins go on from the replica while the primary is down and writes answer
//! 503; every fault is over (no error of any kind) within 5 s of the server
//! coming back; and no registration that was acknowledged (201) is missing
//! from the primary at the end.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sesame_testkit::{free_port, require, sesame_binary, PrivateRedis, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Argon2id cheap enough for two cores shared with two MariaDBs and Redis.
const HASH: [&str; 6] = [
    "--hash-m-cost",
    "4096",
    "--hash-t-cost",
    "1",
    "--hash-p-cost",
    "1",
];
const USERS: &str = "300";
const RATE: &str = "40";
/// Seconds after the load starts: each fault, and each return.
const PRIMARY_KILLED: u64 = 8;
const PRIMARY_BACK: u64 = 16;
const REDIS_DOWN: u64 = 24;
const REDIS_BACK: u64 = 28;
const RUN_S: u64 = 38;
/// The promise: recovered this long after the server returned.
const RECOVERY: f64 = 5.0;

fn sesame(args: &[&str]) -> Command {
    let mut c = Command::new(sesame_binary());
    c.args(args);
    c
}

fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sesame serve exited: {status}");
        }
        assert!(Instant::now() < deadline, "sesame did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Seconds from the load's start to now.
fn offset(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

/// One operation's counts in one second of the run.
#[derive(Debug, Default, Clone)]
struct Second {
    ok: u64,
    errors: u64,
    /// By status (`"503"`) or kind of failure (`"timeout"`).
    statuses: BTreeMap<String, u64>,
}

/// `op -> second -> counts`, from the load report's per-operation timeline.
fn timeline(report: &Value) -> BTreeMap<String, BTreeMap<u64, Second>> {
    let mut ops: BTreeMap<String, BTreeMap<u64, Second>> = BTreeMap::new();
    for point in report["timeline"].as_array().expect("a timeline") {
        let second = point["second"].as_u64().unwrap();
        for (op, counts) in point["by_op"].as_object().expect("per-operation counts") {
            let completed = counts["completed"].as_u64().unwrap();
            let errors = counts["errors"].as_u64().unwrap();
            let statuses = counts["outcomes"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                        .collect()
                })
                .unwrap_or_default();
            ops.entry(op.clone()).or_default().insert(
                second,
                Second {
                    ok: completed - errors,
                    errors,
                    statuses,
                },
            );
        }
    }
    ops
}

fn acked(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn primary_crash_and_redis_restart_under_load_lose_nothing_and_recover_within_5s() {
    let topology = require!(Topology::start());
    let redis = require!(PrivateRedis::start_durable());
    let schema = topology.schema().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let primary_url = topology.primary.url(&schema);
    let replica_url = topology.replica.url(&schema);

    let migrated = sesame(&["migrate", "--database", &primary_url])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(migrated.success(), "sesame migrate failed");
    // The users the load logs in as, imported straight into the primary.
    let mut seed = sesame(&["load", "seed", "--users", USERS, "--database", &primary_url])
        .args(HASH)
        .arg("--no-progress")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(seed.wait().unwrap().success(), "seeding failed");

    let port = free_port();
    let stderr = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut serve = sesame(&["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database", &primary_url, "--replica", &replica_url])
        .args(["--cache", &redis.url(), "--max-replica-lag", "2s"])
        .args(HASH)
        .args(["--hash-workers", "2", "--latency-budget-ms", "1000"])
        // The load sends each request from a synthetic client address.
        .args(["--trusted-proxies", "127.0.0.1/32"])
        .args(["--ip-rate", "1000", "--ip-burst", "1000"])
        .args(["--ip-failures-per-min", "100000"])
        .args(["--account-ip-failures-per-min", "100000"])
        .args(["--account-failures-per-min", "100000"])
        .args([
            "--event-log",
            &dir.path().join("events.jsonl").display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap();
    wait_for_port(port, &mut serve);
    let serve_pid = serve.id();

    let report_path = dir.path().join("report.json");
    let acked_path = dir.path().join("acked.txt");
    let mut load = sesame(&["load", "--target", &format!("http://127.0.0.1:{port}")])
        .args(["--rate", RATE, "--arrival", "poisson"])
        .args(["--duration", &format!("{RUN_S}s"), "--users", USERS])
        .args(["--mix", "login=55,register=20,wrong-password=10,session=15"])
        .args(["--timeout", "3s", "--connections", "32", "--no-progress"])
        .args(["--json", &report_path.display().to_string()])
        .args(["--acked-registrations", &acked_path.display().to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let started_wall = Utc::now();
    let at = |s: u64| {
        let due = Duration::from_secs(s);
        if let Some(left) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(left);
        }
    };

    at(PRIMARY_KILLED);
    let acked_before_crash = acked(&acked_path).len();
    topology.primary.kill();
    let killed = offset(started);
    at(PRIMARY_BACK);
    topology.primary.restart().unwrap();
    let primary_back = offset(started);

    at(REDIS_DOWN);
    redis.kill();
    let redis_down = offset(started);
    at(REDIS_BACK);
    redis.restart().unwrap();
    let redis_back = offset(started);

    load.wait().unwrap(); // non-zero: the faults were errors
    assert!(
        serve.try_wait().unwrap().is_none(),
        "sesame serve died during the faults"
    );
    assert_eq!(serve.id(), serve_pid);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("a load report"))
            .unwrap();
    // The load's clock started a little after ours: move the fault times
    // onto its seconds.
    let load_started: DateTime<Utc> = report["started_at"].as_str().unwrap().parse().unwrap();
    let lead = (load_started - started_wall).num_milliseconds().max(0) as f64 / 1e3;
    let [killed, primary_back, redis_down, redis_back] =
        [killed, primary_back, redis_down, redis_back].map(|t| t - lead);
    let ops = timeline(&report);
    // An operation's seconds lying wholly within `from..to`.
    let during = |op: &str, from: f64, to: f64| -> Vec<Second> {
        let seconds = ops.get(op).cloned().unwrap_or_default();
        seconds
            .into_iter()
            .filter(|(s, _)| *s as f64 >= from && (*s + 1) as f64 <= to)
            .map(|(_, c)| c)
            .collect()
    };
    let summary = |op: &str, from: f64, to: f64| -> (u64, u64) {
        during(op, from, to)
            .iter()
            .fold((0, 0), |(ok, err), c| (ok + c.ok, err + c.errors))
    };
    let errors_in = |from: f64, to: f64| -> Vec<(String, u64, Second)> {
        ops.iter()
            .flat_map(|(op, secs)| {
                secs.iter()
                    .filter(|(s, c)| c.errors > 0 && (**s as f64) >= from && (**s as f64) < to)
                    .map(|(s, c)| (op.clone(), *s, c.clone()))
            })
            .collect()
    };
    let last_error_second = |from: f64, to: f64| -> Option<u64> {
        errors_in(from, to).iter().map(|(_, s, _)| *s).max()
    };

    // The per-operation story, printed for the README's figures.
    println!(
        "faults: primary killed at {killed:.1}s, back at {primary_back:.1}s; \
         redis down at {redis_down:.1}s, back at {redis_back:.1}s"
    );
    for (op, secs) in &ops {
        let line: Vec<String> = secs
            .iter()
            .map(|(s, c)| format!("{s}:{}/{}", c.ok, c.errors))
            .collect();
        println!("  {op} (second:ok/errors): {}", line.join(" "));
    }

    // 1. Healthy until the first fault.
    let early = errors_in(0.0, killed.floor());
    assert!(early.is_empty(), "errors before any fault: {early:?}");

    // 2. Primary down: logins go on from the replica, writes answer 503.
    let outage = (killed.ceil(), primary_back.floor());
    let (logins_ok, logins_failed) = summary("login", outage.0, outage.1);
    assert!(
        logins_ok > 0,
        "no login succeeded while the primary was down"
    );
    assert_eq!(logins_failed, 0, "logins failed while the replica was up");
    let register_statuses: BTreeMap<String, u64> = during("register", outage.0, outage.1)
        .into_iter()
        .flat_map(|c| c.statuses)
        .fold(BTreeMap::new(), |mut m, (k, v)| {
            *m.entry(k).or_insert(0) += v;
            m
        });
    assert!(
        register_statuses.get("503").copied().unwrap_or(0) > 0,
        "registrations during the outage: {register_statuses:?}"
    );
    assert_eq!(
        register_statuses.get("201"),
        None,
        "a registration was acknowledged with the primary down"
    );

    // 3. Recovery within 5 s of the primary's return, sesame untouched.
    let primary_recovered = last_error_second(primary_back.floor(), redis_down.floor())
        .map_or(0.0, |s| (s + 1) as f64 - primary_back);
    assert!(
        primary_recovered <= RECOVERY,
        "errors {primary_recovered:.1}s after the primary returned: {:?}",
        errors_in(primary_back.floor(), redis_down.floor())
    );
    let (registered_after, _) = summary("register", primary_back + RECOVERY, redis_down);
    assert!(
        registered_after > 0,
        "no registration after the primary returned"
    );

    // 4. Redis restarted: recovery within 5 s of its return.
    let redis_recovered = last_error_second(redis_back.floor(), RUN_S as f64 + 1.0)
        .map_or(0.0, |s| (s + 1) as f64 - redis_back);
    assert!(
        redis_recovered <= RECOVERY,
        "errors {redis_recovered:.1}s after Redis returned: {:?}",
        errors_in(redis_back.floor(), RUN_S as f64 + 1.0)
    );
    let (sessions_after, _) = summary("session", redis_back + RECOVERY, RUN_S as f64);
    assert!(sessions_after > 0, "no session check after Redis returned");

    // 5. Nothing acknowledged is lost.
    let acked = acked(&acked_path);
    assert!(
        acked_before_crash > 0 && acked.len() > acked_before_crash,
        "registrations acknowledged: {acked_before_crash} before the crash, {} in all",
        acked.len()
    );
    let stored: BTreeSet<String> = topology
        .primary
        .sql(&format!("SELECT username FROM {schema}.users"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged registrations lost: {lost:?}");
    println!(
        "faults: {} registrations acknowledged, 0 lost; recovered {primary_recovered:.1}s after \
         the primary returned, {redis_recovered:.1}s after Redis returned",
        acked.len()
    );

    // And sesame still shuts down cleanly.
    Command::new("kill")
        .args(["-TERM", &serve_pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(35);
    loop {
        if let Some(status) = serve.try_wait().unwrap() {
            assert!(status.success(), "sesame exited with {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sesame did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
