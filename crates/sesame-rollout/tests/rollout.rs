//! `sesame canary` end to end on synthetic data: event logs written to temp
//! files, and a fake Prometheus on a loopback port. Seeded, so every run
//! judges the same samples; no test sleeps.

use chrono::{DateTime, Utc};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sesame_domain::event::LoginEvent;
use sesame_domain::ManualClock;
use sesame_rollout::canary::judge::{MetricResult, Verdict};
use sesame_rollout::canary::{self, CanaryArgs};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    canary: CanaryArgs,
}

fn args(extra: &[&str]) -> CanaryArgs {
    let argv = std::iter::once("canary").chain(extra.iter().copied());
    Cli::try_parse_from(argv).expect("valid arguments").canary
}

fn clock() -> ManualClock {
    ManualClock::new("2026-11-26T07:00:00Z".parse().unwrap())
}

/// A side's traffic: lognormal latency around `median_ms`, and shares of
/// 5xx and 401 answers.
struct Traffic {
    logins: usize,
    median_ms: f64,
    error_share: f64,
    auth_failure_share: f64,
}

const NORMAL: Traffic = Traffic {
    logins: 2_000,
    median_ms: 30.0,
    error_share: 0.002,
    auth_failure_share: 0.03,
};

fn standard_normal(rng: &mut StdRng) -> f64 {
    // Box-Muller: enough for test data, and no extra dependency.
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn write_log(path: &Path, traffic: &Traffic, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let start: DateTime<Utc> = "2026-11-26T06:50:00Z".parse().unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..traffic.logins {
        let roll: f64 = rng.random();
        let (outcome, status) = if roll < traffic.error_share {
            ("overloaded", 503)
        } else if roll < traffic.error_share + traffic.auth_failure_share {
            ("invalid_credentials", 401)
        } else {
            ("ok", 200)
        };
        let total_ms = if status == 503 {
            0.3
        } else {
            traffic.median_ms * (0.25 * standard_normal(&mut rng)).exp()
        };
        let event = LoginEvent {
            ts: (start + chrono::Duration::milliseconds(i as i64 * 300))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            outcome: sesame_domain::event::Outcome::parse(outcome),
            status,
            user: format!("user{}", i % 500),
            total_ms,
            hash_ms: total_ms.min(25.0),
            ..Default::default()
        };
        writeln!(out, "{}", serde_json::to_string(&event).unwrap()).unwrap();
    }
}

/// Judges a baseline with NORMAL traffic against `canary` traffic.
fn judge_logs(canary: &Traffic) -> canary::judge::Judgement {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = (
        dir.path().join("baseline.jsonl"),
        dir.path().join("canary.jsonl"),
    );
    write_log(&b, &NORMAL, 1);
    write_log(&c, canary, 2);
    let args = args(&[
        "--baseline-log",
        b.to_str().unwrap(),
        "--canary-log",
        c.to_str().unwrap(),
    ]);
    canary::evaluate(&args, &clock()).unwrap()
}

fn result_of(j: &canary::judge::Judgement, metric: &str) -> MetricResult {
    j.metrics.iter().find(|m| m.name == metric).unwrap().result
}

#[test]
fn equal_distributions_pass() {
    let j = judge_logs(&NORMAL);
    assert_eq!(j.verdict, Verdict::Pass, "{}", canary::render(&j));
    assert_eq!(j.score, 100.0);
}

#[test]
fn a_thirty_percent_latency_shift_fails() {
    let j = judge_logs(&Traffic {
        median_ms: 39.0,
        ..NORMAL
    });
    assert_eq!(j.verdict, Verdict::Fail, "{}", canary::render(&j));
    assert_eq!(result_of(&j, "latency"), MetricResult::Fail);
    assert_eq!(j.score, 50.0);
    let latency = &j.metrics[0];
    assert!(latency.p_value.unwrap() < 1e-10);
    assert!((1.25..1.35).contains(&latency.effect.unwrap()));
    assert!(latency.mann_whitney.unwrap().cles > 0.7);
}

#[test]
fn a_small_noisy_difference_is_not_a_failure() {
    // 3% slower: with 2,000 logins a side that may well be significant, but
    // it is inside the 10% allowed, which is what the effect size is for.
    let j = judge_logs(&Traffic {
        median_ms: 30.9,
        ..NORMAL
    });
    assert_eq!(j.verdict, Verdict::Pass, "{}", canary::render(&j));
}

#[test]
fn more_errors_fail_whatever_the_score() {
    let j = judge_logs(&Traffic {
        error_share: 0.05,
        ..NORMAL
    });
    assert_eq!(result_of(&j, "error_rate"), MetricResult::Fail);
    assert_eq!(j.score, 70.0, "above the marginal threshold...");
    assert_eq!(j.verdict, Verdict::Fail, "...but errors are critical");
}

#[test]
fn more_rejected_passwords_are_marginal() {
    let j = judge_logs(&Traffic {
        auth_failure_share: 0.15,
        ..NORMAL
    });
    assert_eq!(result_of(&j, "auth_failure_rate"), MetricResult::Fail);
    assert_eq!(j.score, 80.0);
    assert_eq!(j.verdict, Verdict::Marginal);
    assert_eq!(j.verdict.exit_code(), 2);
}

#[test]
fn a_canary_without_traffic_fails() {
    let j = judge_logs(&Traffic {
        logins: 5,
        ..NORMAL
    });
    assert_eq!(result_of(&j, "latency"), MetricResult::NoData);
    assert_eq!(j.verdict, Verdict::Fail);
}

#[test]
fn thresholds_are_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = (dir.path().join("b"), dir.path().join("c"));
    write_log(&b, &NORMAL, 1);
    write_log(
        &c,
        &Traffic {
            auth_failure_share: 0.15,
            ..NORMAL
        },
        2,
    );
    let (b, c) = (b.to_str().unwrap(), c.to_str().unwrap());
    let lenient = args(&[
        "--baseline-log",
        b,
        "--canary-log",
        c,
        "--pass-threshold",
        "80",
    ]);
    assert_eq!(
        canary::evaluate(&lenient, &clock()).unwrap().verdict,
        Verdict::Pass
    );
    let strict = args(&[
        "--baseline-log",
        b,
        "--canary-log",
        c,
        "--marginal-threshold",
        "90",
    ]);
    assert_eq!(
        canary::evaluate(&strict, &clock()).unwrap().verdict,
        Verdict::Fail
    );
}

#[test]
fn nonsense_thresholds_cannot_judge() {
    let a = args(&[
        "--baseline-log",
        "b",
        "--canary-log",
        "c",
        "--marginal-threshold",
        "99",
    ]);
    let err = canary::evaluate(&a, &clock()).unwrap_err();
    assert!(err.to_string().contains("--marginal-threshold"), "{err}");
    let a = args(&[
        "--baseline-log",
        "b",
        "--canary-log",
        "c",
        "--confidence",
        "1.5",
    ]);
    assert!(canary::evaluate(&a, &clock()).is_err());
}

#[test]
fn a_source_is_required() {
    assert!(Cli::try_parse_from(["canary"]).is_err());
    assert!(Cli::try_parse_from(["canary", "--baseline-log", "x"]).is_err());
    assert!(Cli::try_parse_from(["canary", "--prometheus", "http://127.0.0.1:1"]).is_err());
}

#[test]
fn unreadable_input_cannot_be_judged() {
    let a = args(&[
        "--baseline-log",
        "/nonexistent/b",
        "--canary-log",
        "/nonexistent/c",
    ]);
    let code = canary::run_with_clock(a, &clock()).unwrap();
    assert_eq!(
        code,
        std::process::ExitCode::from(canary::EXIT_CANNOT_JUDGE)
    );
}

/// The judgement as JSON: comparable, NaN p-values included.
fn judged(extra: &[&str]) -> String {
    let j = canary::evaluate(&args(extra), &clock()).unwrap();
    serde_json::to_string(&j).unwrap()
}

#[test]
fn gzipped_split_and_piped_logs_judge_like_plain_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    write_log(&path("baseline.jsonl"), &NORMAL, 1);
    write_log(
        &path("canary.jsonl"),
        &Traffic {
            median_ms: 40.0,
            ..NORMAL
        },
        2,
    );
    let plain = judged(&[
        "--baseline-log",
        &s(&path("baseline.jsonl")),
        "--canary-log",
        &s(&path("canary.jsonl")),
    ]);
    assert!(plain.contains("\"verdict\":\"fail\""), "{plain}");

    // The baseline rotated: its older half gzipped under a .1 name, the
    // newer half plain; both read, in order, like the one file.
    let baseline = std::fs::read(path("baseline.jsonl")).unwrap();
    let half = baseline[..baseline.len() / 2]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    let gzipped = sesame_toolkit::testing::gzip(&baseline[..half]);
    std::fs::write(path("baseline.jsonl.1"), &gzipped).unwrap();
    std::fs::write(path("baseline.jsonl.0"), &baseline[half..]).unwrap();
    let canary = std::fs::read(path("canary.jsonl")).unwrap();
    std::fs::write(
        path("canary.jsonl.gz"),
        sesame_toolkit::testing::gzip(&canary),
    )
    .unwrap();
    let rotated = judged(&[
        "--baseline-log",
        &s(&path("baseline.jsonl.1")),
        &s(&path("baseline.jsonl.0")),
        "--canary-log",
        &s(&path("canary.jsonl.gz")),
    ]);
    assert_eq!(rotated, plain);

    // `zcat ... | sesame canary --baseline-log - ...`, still gzip on stdin.
    let whole = sesame_toolkit::testing::gzip(&baseline);
    sesame_toolkit::testing::with_stdin(
        "gzipped_split_and_piped_logs_judge_like_plain_ones",
        &whole,
        || {
            let piped = judged(&[
                "--baseline-log",
                "-",
                "--canary-log",
                &s(&path("canary.jsonl.gz")),
            ]);
            assert_eq!(piped, plain);
        },
    );
}

#[test]
fn the_verdict_survives_a_reader_that_goes_away() {
    // `sesame canary ... | head -1`: the report has nowhere to go after its
    // first line, and the exit code must still be the verdict.
    sesame_toolkit::testing::with_stdout_closed(
        "the_verdict_survives_a_reader_that_goes_away",
        || {
            let dir = tempfile::tempdir().unwrap();
            let (b, c) = (dir.path().join("b.jsonl"), dir.path().join("c.jsonl"));
            write_log(&b, &NORMAL, 1);
            let slow = Traffic {
                median_ms: 40.0,
                ..NORMAL
            };
            write_log(&c, &slow, 2);
            let a = args(&[
                "--baseline-log",
                b.to_str().unwrap(),
                "--canary-log",
                c.to_str().unwrap(),
            ]);
            let code = canary::run_with_clock(a, &clock()).unwrap();
            code == std::process::ExitCode::from(Verdict::Fail.exit_code())
        },
    );
}

#[test]
fn only_one_side_can_be_standard_input() {
    let a = args(&["--baseline-log", "-", "--canary-log", "-"]);
    let e = canary::evaluate(&a, &clock()).unwrap_err();
    assert!(e.to_string().contains("standard input"), "{e:#}");
}

// ---- Prometheus ----------------------------------------------------------

/// `--prometheus https://...` needs a TLS backend in reqwest; without one,
/// every https URL fails before connecting ("invalid URL, scheme is not
/// http").
#[test]
fn an_https_prometheus_is_reached_over_tls() {
    let sides = [
        "--baseline",
        r#"track="stable""#,
        "--canary",
        r#"track="canary""#,
    ];
    let judge = |url: &str| {
        canary::evaluate(
            &args(&[&["--prometheus", url], &sides[..]].concat()),
            &clock(),
        )
        .unwrap_err()
    };

    // A closed port on loopback: refused by TCP, as an http:// one would be.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = judge(&format!("https://{closed}"));
    let refused = e
        .chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
    assert!(refused, "not a refused connection: {e:#}");

    // An open one: the first bytes the judge sends are a TLS handshake
    // record (content type 22, version 3.x), a ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let (first_bytes, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).unwrap();
        first_bytes.send(head).unwrap();
    });
    let e = judge(&url);
    let head = received
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("the judge never connected: {e:#}"));
    assert_eq!(head, [0x16, 0x03]);
}

/// Serves `requests` answers like Prometheus' HTTP API would, the canary
/// 30% slower than the baseline; returns its URL and the request targets
/// (path and query string) it saw.
fn fake_prometheus(requests: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let target = request_line.split_whitespace().nth(1).unwrap().to_owned();
            let query = decode_param(&target, "query");
            let canary = query.contains(r#"track="canary""#);
            let body = answer(&target, &query, canary);
            seen.push(target);
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let _ = stream.read(&mut [0; 1]);
        }
        seen
    });
    (url, handle)
}

fn answer(target: &str, query: &str, canary: bool) -> String {
    if target.starts_with("/api/v1/query_range") {
        // 20 steps of p99 latency in seconds, a little noise, one empty step.
        let base = if canary { 0.052 } else { 0.040 };
        let values: Vec<String> = (0..20)
            .map(|i| {
                let v = if i == 7 {
                    "NaN".to_owned()
                } else {
                    format!("{}", base + 0.001 * ((i * 7) % 5) as f64)
                };
                format!(r#"[{}, "{v}"]"#, 1_795_000_000 + i * 30)
            })
            .collect();
        return format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[{}]}}]}}}}"#,
            values.join(",")
        );
    }
    let count = if query.contains("overloaded") {
        2.4
    } else if query.contains("invalid_credentials\"") {
        300.0
    } else {
        10_000.3
    };
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1795000600, "{count}"]}}]}}}}"#
    )
}

fn decode_param(target: &str, name: &str) -> String {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or("");
    let bytes = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(u8::from_str_radix(&raw[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn judges_from_prometheus() {
    // 2 sides x (1 range + 3 instant queries).
    let (url, server) = fake_prometheus(8);
    let a = args(&[
        "--prometheus",
        &url,
        "--baseline",
        r#"track="stable""#,
        "--canary",
        r#"{track="canary"}"#,
        "--window",
        "10m",
    ]);
    let j = canary::evaluate(&a, &clock()).unwrap();
    let queries: Vec<String> = server
        .join()
        .unwrap()
        .iter()
        .map(|t| decode_param(t, "query"))
        .collect();

    let latency = &j.metrics[0];
    assert_eq!(latency.result, MetricResult::Fail, "{}", canary::render(&j));
    assert!(
        (latency.baseline.unwrap() - 42.0).abs() < 1e-9,
        "ms, NaN step skipped"
    );
    assert_eq!(j.verdict, Verdict::Fail);
    assert_eq!(result_of(&j, "error_rate"), MetricResult::Pass);
    assert!(queries.iter().any(|q| q.starts_with(
        "histogram_quantile(0.99, sum by (le) (rate(sesame_login_duration_seconds_bucket{"
    )));
    assert!(queries.iter().any(|q| q.contains(
        r#"sesame_login_duration_seconds_count{outcome=~"overloaded|unavailable|error",track="stable"}[600s]"#
    )));
}

fn range_request(targets: &[String]) -> (String, String) {
    let t = targets
        .iter()
        .find(|t| t.starts_with("/api/v1/query_range"))
        .unwrap();
    (decode_param(t, "start"), decode_param(t, "end"))
}

#[test]
fn the_window_ends_now_unless_told() {
    let sides = ["--baseline", "a=\"1\"", "--canary", "a=\"2\""];
    let (url, server) = fake_prometheus(8);
    let a = args(&[&["--prometheus", url.as_str()], &sides[..]].concat());
    canary::evaluate(&a, &clock()).unwrap();
    // The injected clock says 07:00:00Z; the default window is 10 minutes.
    assert_eq!(
        range_request(&server.join().unwrap()),
        ("1795675800.000".to_owned(), "1795676400.000".to_owned())
    );

    let (url, server) = fake_prometheus(8);
    let explicit = ["--end", "2026-11-26T06:00:00Z", "--window", "1h"];
    let a = args(&[&["--prometheus", url.as_str()], &sides[..], &explicit[..]].concat());
    canary::evaluate(&a, &clock()).unwrap();
    assert_eq!(
        range_request(&server.join().unwrap()),
        ("1795669200.000".to_owned(), "1795672800.000".to_owned())
    );
}
