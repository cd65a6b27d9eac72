//! The `sesame` binary as an operator runs it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHEAP: [&str; 6] = [
    "--hash-m-cost",
    "256",
    "--hash-t-cost",
    "1",
    "--hash-p-cost",
    "1",
];

fn sesame() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.env_remove("SESAME_DATABASE_URL")
        .env("SESAME_LOG", "info");
    cmd
}

fn db(dir: &Path) -> String {
    format!("sqlite:{}", dir.join("ops.db").display())
}

/// Runs `cmd` to the end, with `stdin` as its input.
fn run(cmd: &mut Command, stdin: Option<&str>) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn run_ok(cmd: &mut Command, stdin: Option<&str>) -> String {
    let out = run(cmd, stdin);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn user_management_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    assert!(run_ok(sesame().args(["migrate", "--database", &db]), None).contains("migrated"));
    let out = run_ok(
        sesame()
            .args([
                "user",
                "add",
                "Operator",
                "--password-stdin",
                "--database",
                &db,
            ])
            .args(CHEAP),
        Some("violet-harbor-88\n"),
    );
    assert_eq!(out.trim(), "created operator");
    // Passwords never go on the command line; SESAME_DATABASE_URL works too.
    run_ok(
        sesame()
            .args(["user", "add", "second", "--password-stdin"])
            .args(CHEAP)
            .env("SESAME_DATABASE_URL", &db),
        Some("amber-canyon-51\n"),
    );
    let list = run_ok(sesame().args(["user", "list", "--database", &db]), None);
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["operator", "second"]);

    let passwd = || {
        let mut cmd = sesame();
        cmd.args([
            "user",
            "passwd",
            "operator",
            "--password-stdin",
            "--database",
            &db,
        ])
        .args(CHEAP);
        cmd
    };
    let out = run(&mut passwd(), Some("password\n"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("too common"));

    run_ok(&mut passwd(), Some("silver-lantern-23\n"));
    run_ok(
        sesame().args(["user", "remove", "OPERATOR", "--database", &db]),
        None,
    );
    let list = run_ok(sesame().args(["user", "list", "--database", &db]), None);
    assert_eq!(list.lines().count(), 1);
}

#[test]
fn calibrate_prints_parameters_that_meet_the_target() {
    let out = run_ok(
        sesame().args([
            "calibrate",
            "--target-ms",
            "3",
            "--m-cost",
            "1024",
            "--samples",
            "1",
        ]),
        None,
    );
    assert!(out.contains("argon2id m="), "{out}");
    assert!(out.contains("sesame serve --hash-m-cost"), "{out}");
}

#[test]
fn a_mistyped_command_line_is_not_a_canary_verdict() {
    // 0 pass, 1 fail, 2 marginal, 3 cannot judge: a usage error is none of them.
    let out = sesame()
        .args(["canary", "--baseline-log", "a.jsonl", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let help = sesame().args(["canary", "--help"]).output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--canary-log"));
}

#[test]
fn every_flag_names_its_environment_variable() {
    for command in ["serve", "migrate", "calibrate"] {
        let help = run_ok(sesame().args([command, "--help"]), None);
        for line in help
            .lines()
            .filter(|l| l.trim_start().starts_with("--") && !l.contains("--help"))
        {
            // clap puts [env: ...] on the flag's line or the next lines.
            let flag = line.split_whitespace().next().unwrap();
            let block: String = help
                .split(flag)
                .nth(1)
                .unwrap()
                .lines()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                block.contains("[env: SESAME_"),
                "{command} {flag} has no SESAME_* variable"
            );
        }
    }
}

/// A running `sesame serve`, stopped with SIGTERM when dropped.
struct Served {
    child: std::process::Child,
    addr: String,
}

impl Served {
    fn start(extra: &[&str], dir: &Path) -> Self {
        let mut child = sesame()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                &db(dir),
                "--log-format",
                "json",
            ])
            .args(CHEAP)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let started = Instant::now();
        let mut line = String::new();
        while started.elapsed() < Duration::from_secs(20) {
            line.clear();
            if stderr.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(addr) = v["fields"]["listen"].as_str() {
                // Keep draining stderr so the server never blocks on it.
                std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
                return Self {
                    addr: addr.to_owned(),
                    child,
                };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve did not log its address");
    }

    fn signal(&self, name: &str) {
        Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.child.wait().unwrap()
    }
}

#[test]
fn serve_answers_then_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&[], dir.path());
    assert_eq!(http_status(&served.addr, "/readyz"), 200);
    assert!(
        dir.path().join("ops.db").exists(),
        "database created at start"
    );
    let status = served.stop();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn logs_reopen_on_sighup_for_logrotate() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let rotated = dir.path().join("events.jsonl.1");
    let served = Served::start(&["--event-log", events.to_str().unwrap()], dir.path());
    let login = || {
        post_json(
            &served.addr,
            "/v1/login",
            r#"{"user":"nobody","password":"whatever-pw"}"#,
        )
    };
    assert_eq!(login(), 401);
    wait_for_lines(&events, 1);
    std::fs::rename(&events, &rotated).unwrap();
    served.signal("HUP");
    // The writer reopens asynchronously; logins keep going meanwhile.
    let started = Instant::now();
    while !events.exists() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(login(), 401);
    wait_for_lines(&events, 1);
    assert!(served.stop().success());
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        1
    );
    assert_eq!(std::fs::read_to_string(&events).unwrap().lines().count(), 1);
}

fn wait_for_lines(path: &Path, n: usize) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if std::fs::read_to_string(path).map_or(0, |s| s.lines().count()) >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never had {n} lines", path.display());
}

/// One HTTP/1.1 request (`Connection: close`): the status and the body.
fn request(addr: &str, head: &str, body: &str) -> (u16, String) {
    use std::io::Read;
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// POSTs a JSON body and returns the status code.
fn post_json(addr: &str, path: &str, body: &str) -> u16 {
    request(
        addr,
        &format!("POST {path} HTTP/1.1\r\nContent-Type: application/json"),
        body,
    )
    .0
}

/// The status code of a plain HTTP/1.1 GET.
fn http_status(addr: &str, path: &str) -> u16 {
    request(addr, &format!("GET {path} HTTP/1.1"), "").0
}

/// A session revoked by another process (the operator's CLI) is refused by
/// the running server at once, however warm its session cache is.
#[test]
fn a_session_revoked_from_the_command_line_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&[], dir.path());
    let addr = served.addr.clone();
    let login = |user: &str, password: &str| -> String {
        let body = format!(r#"{{"user":"{user}","password":"{password}"}}"#);
        let (status, answer) = request(
            &addr,
            "POST /v1/login HTTP/1.1\r\nContent-Type: application/json",
            &body,
        );
        assert_eq!(status, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        answer["session"].as_str().unwrap().to_owned()
    };
    let check = |token: &str| {
        request(
            &addr,
            &format!("GET /v1/session HTTP/1.1\r\nAuthorization: Bearer {token}"),
            "",
        )
        .0
    };
    for (user, password) in [("wren", "violet-harbor-88"), ("yale", "amber-canyon-51")] {
        let body = format!(r#"{{"user":"{user}","password":"{password}"}}"#);
        assert_eq!(post_json(&addr, "/v1/users", &body), 201);
    }
    let cli = |args: &[&str], stdin: Option<&str>| {
        run_ok(
            sesame()
                .args(["user"])
                .args(args)
                .args(["--database", &db(dir.path())])
                .args(CHEAP),
            stdin,
        )
    };

    let wren = login("wren", "violet-harbor-88");
    let yale = login("yale", "amber-canyon-51");
    for _ in 0..3 {
        assert_eq!(check(&wren), 200, "cached and checked");
        assert_eq!(check(&yale), 200);
    }
    cli(
        &["passwd", "wren", "--password-stdin"],
        Some("silver-lantern-23\n"),
    );
    assert_eq!(check(&wren), 401, "revoked by the password change");
    assert_eq!(check(&yale), 200, "another user's session stays");
    let wren = login("wren", "silver-lantern-23");
    assert_eq!(check(&wren), 200);

    cli(&["remove", "yale"], None);
    assert_eq!(check(&yale), 401, "revoked with its user");
    assert_eq!(check(&wren), 200);
    assert!(served.stop().success());
}

/// The `--hash-m-cost/--hash-t-cost` that `sesame calibrate` recommends.
fn recommended(calibrate_output: &str) -> (u32, u32) {
    let line = calibrate_output
        .lines()
        .find(|l| l.contains("sesame serve --hash-m-cost"))
        .unwrap_or_else(|| panic!("no recommendation in {calibrate_output}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let value = |flag: &str| -> u32 {
        let at = words.iter().position(|w| *w == flag).unwrap();
        words[at + 1].parse().unwrap()
    };
    (value("--hash-m-cost"), value("--hash-t-cost"))
}

/// OWASP's Argon2id table (p=1): memory in KiB for 1 to 5 passes.
fn owasp_safe((m_cost, t_cost): (u32, u32)) -> bool {
    let least = match t_cost {
        0 => return false,
        1 => 47_104,
        2 => 19_456,
        3 => 12_288,
        4 => 9_216,
        _ => 7_168,
    };
    m_cost >= least
}

#[test]
fn calibrate_never_recommends_less_than_owasp() {
    // One pass at the OWASP memory, timed here: a target 1.5 times that fits
    // m=19456 t=1 but not t=2, where calibrate used to answer t=1.
    let rate = run_ok(
        sesame().args([
            "calibrate",
            "--throughput-threads",
            "1",
            "--m-cost",
            "19456",
            "--t-cost",
            "1",
            "--seconds",
            "0.5",
        ]),
        None,
    );
    let per_second: f64 = rate
        .lines()
        .find(|l| l.contains("sesame hasher"))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {rate}"));
    let one_pass_ms = 1000.0 / per_second;
    let between = format!("{}", (one_pass_ms * 1.5).ceil().max(1.0));
    for target in ["1", "25", &between] {
        let out = run_ok(
            sesame().args(["calibrate", "--target-ms", target, "--samples", "3"]),
            None,
        );
        let params = recommended(&out);
        assert!(
            owasp_safe(params),
            "--target-ms {target} recommended {params:?}, below OWASP:\n{out}"
        );
    }
    // No safe configuration takes 1 ms: the minimum, and a warning saying so
    // and what the minimum costs here.
    let out = run_ok(
        sesame().args(["calibrate", "--target-ms", "1", "--samples", "1"]),
        None,
    );
    assert_eq!(recommended(&out), (19_456, 2), "{out}");
    assert!(
        out.contains("1 ms target cannot be met with a safe configuration"),
        "{out}"
    );
    assert!(out.contains("ms per hash here"), "{out}");
}

#[test]
fn user_add_and_passwd_without_a_terminal_say_what_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    for command in ["add", "passwd"] {
        // A new session has no controlling terminal, as under cron, CI or
        // `kubectl exec` without -t (where `setsid` is missing, the test
        // runner is assumed to have none either).
        let setsid = Command::new("setsid").arg("--version").output().is_ok();
        let mut cmd = if setsid {
            let mut cmd = Command::new("setsid");
            cmd.arg("--wait").arg(env!("CARGO_BIN_EXE_sesame"));
            cmd
        } else {
            Command::new(env!("CARGO_BIN_EXE_sesame"))
        };
        let out = cmd
            .env_remove("SESAME_DATABASE_URL")
            .args(["user", command, "someone", "--database", &db])
            .args(CHEAP)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "user {command}: {stderr}");
        assert!(
            stderr.contains("needs a terminal") && stderr.contains("--password-stdin"),
            "user {command}: {stderr}"
        );
        assert!(
            !dir.path().join("ops.db").exists(),
            "user {command}: a usage error opens no database"
        );
    }
}

#[test]
fn diagnostics_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        sesame().env_remove("NO_COLOR").args([
            "--log",
            "debug",
            "migrate",
            "--database",
            &db(dir.path()),
        ]),
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DEBUG"),
        "no diagnostics to check: {stderr}"
    );
    assert!(
        !stderr.contains("\x1b["),
        "colour codes in a pipe: {stderr}"
    );
}

#[test]
fn the_book_lists_every_serve_flag_with_its_default() {
    let chapter = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/src/operators/run.md"),
    )
    .unwrap();
    // The table of the "Run" chapter, before its first section: its
    // `| flag | default | what |` rows.
    let run = chapter
        .split("\n## ")
        .next()
        .expect("the chapter's opening");
    let rows: Vec<&str> = run.lines().filter(|l| l.starts_with("| `--")).collect();
    assert!(!rows.is_empty(), "no flag table in the Run chapter");
    let help = run_ok(sesame().args(["serve", "--help"]), None);
    let named = |row: &str, flag: &str| {
        row.match_indices(flag).any(|(at, _)| {
            let next = row[at + flag.len()..].chars().next();
            !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-')
        })
    };
    let mut missing = Vec::new();
    for (at, line) in help.lines().enumerate() {
        let Some(flag) = line
            .split_whitespace()
            .next()
            .filter(|w| w.starts_with("--") && *w != "--help")
        else {
            continue;
        };
        let Some(row) = rows.iter().find(|r| named(r, flag)) else {
            missing.push(flag.to_owned());
            continue;
        };
        // clap shows [default: X] on the flag's lines, before the next flag.
        let block: String = help
            .lines()
            .skip(at)
            .take_while(|l| *l == line || !l.trim_start().starts_with('-'))
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(default) = block
            .split("[default: ")
            .nth(1)
            .and_then(|d| d.split(']').next())
        {
            let cell = row.split('|').nth(2).unwrap_or_default();
            assert!(
                cell.contains(default),
                "the book gives {flag} the default {cell:?}; `sesame serve --help` says {default}"
            );
        }
    }
    assert!(
        missing.is_empty(),
        "flags of `sesame serve --help` missing from the book's table: {missing:?}"
    );
}
