//! Registrations in the mix (acknowledged ones recorded as they arrive),
//! the per-operation timeline, and replays of rotated, gzipped and piped
//! event logs.

use super::*;

async fn register(State(r): State<Arc<Registrations>>, body: Bytes) -> StatusCode {
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if value["password"] != "Kx7-synthetic-Qm2-Pw" {
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    let user = value["user"].as_str().unwrap_or_default().to_owned();
    if let Some(path) = r.watch.lock().unwrap().as_deref() {
        if lines(path) != r.acked() {
            r.lagged.lock().unwrap().push(user.clone());
        }
    }
    let mut answered = r.answered.lock().unwrap();
    let status = if answered.len() % 2 == 0 {
        StatusCode::CREATED
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    answered.push((user, status.as_u16()));
    status
}

/// Every registration names a new user; the acked file lists exactly those
/// answered 201, written as each answer arrives, across runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_registrations_are_exactly_the_201s() {
    let registrations = Arc::new(Registrations::default());
    let addr = serve(
        Router::new()
            .route("/v1/users", post(register))
            .with_state(registrations.clone()),
    )
    .await;
    let target = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acked.txt");
    let file_arg = file.to_str().unwrap();
    let report = sesame_load::execute(&run_args(&[
        "--target",
        &target,
        "--mix",
        "register=1",
        "--rate",
        "50",
        "--duration",
        "1s",
        "--connections",
        "4",
        "--acked-registrations",
        file_arg,
    ]))
    .await
    .unwrap();
    let register = report.operation("register").unwrap();
    assert_eq!((register.count, register.errors), (50, 25), "{register:#?}");
    assert_eq!(report.errors_by_kind["http 503"], 25);
    assert_eq!(lines(&file), registrations.acked());

    // A second run, one request at a time: each name is in the file before
    // the next request goes out, and the file keeps the first run's names.
    *registrations.watch.lock().unwrap() = Some(file.clone());
    sesame_load::execute(&run_args(&[
        "--target",
        &target,
        "--mix",
        "register=1",
        "--max",
        "--requests",
        "10",
        "--connections",
        "1",
        "--acked-registrations",
        file_arg,
    ]))
    .await
    .unwrap();
    assert!(registrations.lagged.lock().unwrap().is_empty());
    assert_eq!(lines(&file), registrations.acked());
    assert_eq!(lines(&file).len(), 30);

    let answered = registrations.answered.lock().unwrap();
    let names: Vec<&str> = answered.iter().map(|(user, _)| user.as_str()).collect();
    assert_eq!(names.len(), 60);
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), 60, "{names:?}");
    let runs: HashSet<&str> = names
        .iter()
        .map(|name| {
            let canonical = sesame_domain::Username::parse_new(name).unwrap();
            assert_eq!(canonical.as_str(), *name);
            let run = name.strip_prefix("load-reg-").unwrap();
            run.rsplit_once('-').unwrap().0
        })
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
}

/// Per second and operation, the timeline's counts add up to the second's
/// and to the run's totals, by outcome too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_per_operation_adds_up() {
    let addr = serve(
        Router::new()
            .route("/v1/login", post(record_login))
            .with_state(Arc::new(Seen::default()))
            .merge(
                Router::new()
                    .route("/v1/users", post(register))
                    .with_state(Arc::new(Registrations::default())),
            ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let args = run_args(&[
        "--target",
        &format!("http://{addr}"),
        "--mix",
        "login=50,wrong-password=20,register=30",
        "--rate",
        "200",
        "--duration",
        "2s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let report = sesame_load::execute(&args).await.unwrap();
    sesame_load::write_outputs(&args, &report).unwrap();
    assert!(report.errors > 0 && report.errors_by_kind.len() == 1);

    for point in &report.timeline {
        let ops = point.by_op.values();
        assert_eq!(
            ops.clone().map(|o| o.completed).sum::<u64>(),
            point.completed
        );
        assert_eq!(ops.map(|o| o.errors).sum::<u64>(), point.errors);
        for op in point.by_op.values() {
            assert_eq!(op.outcomes.values().sum::<u64>(), op.completed);
        }
    }
    for op in &report.operations {
        let seconds = || report.timeline.iter().filter_map(|p| p.by_op.get(&op.name));
        assert_eq!(seconds().map(|o| o.completed).sum::<u64>(), op.count);
        assert_eq!(seconds().map(|o| o.errors).sum::<u64>(), op.errors);
        for outcome in &op.outcomes {
            let n: u64 = seconds()
                .filter_map(|o| o.outcomes.get(&outcome.outcome))
                .sum();
            assert_eq!(n, outcome.latency.count, "{} {}", op.name, outcome.outcome);
        }
    }

    // The shape a test reads from the JSON report.
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let first = &written["timeline"][0]["by_op"];
    assert!(
        first["login"]["outcomes"]["200"].as_u64().unwrap() > 0,
        "{first}"
    );
    let register = &first["register"];
    assert_eq!(
        register["errors"], register["outcomes"]["503"],
        "{register}"
    );
    assert!(register["completed"].as_u64().unwrap() > 0, "{register}");
}

/// An event log of `n` logins a tenth of a second apart, one JSON line each.
fn event_log(n: usize) -> Vec<u8> {
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-26T06:00:00.000Z").unwrap();
    let mut log = Vec::new();
    for i in 0..n {
        let event = sesame_domain::event::LoginEvent {
            ts: (t0 + chrono::Duration::milliseconds(i as i64 * 100))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            outcome: Some(if i % 3 == 0 {
                sesame_domain::event::Outcome::InvalidCredentials
            } else {
                sesame_domain::event::Outcome::Ok
            }),
            user: format!("user{}", i % 7),
            ip: format!("203.0.113.{}", i % 5),
            ..Default::default()
        };
        writeln!(log, "{}", serde_json::to_string(&event).unwrap()).unwrap();
    }
    log
}

#[test]
fn replay_reads_gzipped_rotated_and_piped_logs() {
    let log = event_log(200);
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("events.jsonl");
    std::fs::write(&plain, &log).unwrap();
    let whole = sesame_load::replay::load(&[plain], 1.0, 10).unwrap();
    assert_eq!(whole.arrivals.len(), 200);

    // Rotated: the older half gzipped (named .1, no .gz), the newer plain;
    // given newest first, as a shell glob may order them.
    let half = log[..log.len() / 2]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    let (older, newer) = (
        dir.path().join("events.jsonl.1"),
        dir.path().join("events.jsonl.0"),
    );
    std::fs::write(&older, sesame_toolkit::testing::gzip(&log[..half])).unwrap();
    std::fs::write(&newer, &log[half..]).unwrap();
    let args = run_args(&[
        "--replay",
        newer.to_str().unwrap(),
        older.to_str().unwrap(),
        "--speed",
        "1",
    ]);
    assert_eq!(args.replay, [newer, older]);
    let rotated = sesame_load::replay::load(&args.replay, args.speed, 10).unwrap();
    assert_eq!(rotated.arrivals, whole.arrivals);
    assert_eq!(rotated.clients, whole.clients);

    // `zcat events.jsonl.*.gz | sesame load --replay - ...`, gzip kept.
    let gzipped = sesame_toolkit::testing::gzip(&log);
    sesame_toolkit::testing::with_stdin(
        "operations::replay_reads_gzipped_rotated_and_piped_logs",
        &gzipped,
        || {
            let args = run_args(&["--replay", "-"]);
            let piped = sesame_load::replay::load(&args.replay, 1.0, 10).unwrap();
            assert_eq!(piped.arrivals, whole.arrivals);
            assert_eq!(piped.distinct_users, 7);
        },
    );
}
