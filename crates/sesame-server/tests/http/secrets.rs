//! No secret is ever written anywhere an operator reads: a real `sesame
//! serve` process (debug logging, event log, slow-login log at 0 ms) is
//! driven through every endpoint, API and browser pages, with marker
//! passwords, including wrong, malformed and mistyped ones; then the event
//! log, the slow-login log, `/metrics` and the process's own stdout and
//! stderr are searched for the markers and for the session tokens issued.

use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sesame_testkit::{free_port, sesame_binary};

struct Sesame {
    child: Child,
    base: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

fn serve(dir: &Path, extra: &[&str]) -> Sesame {
    let port = free_port();
    let stdout = dir.join("stdout.log");
    let stderr = dir.join("stderr.log");
    let mut args: Vec<String> = vec![
        "--log".into(),
        "debug".into(),
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--database".into(),
        format!("sqlite:{}", dir.join("sesame.db").display()),
        "--hash-m-cost".into(),
        "256".into(),
        "--hash-t-cost".into(),
        "1".into(),
        "--ip-rate".into(),
        "1000000".into(),
        "--ip-burst".into(),
        "1000000".into(),
        "--ip-failures-per-min".into(),
        "1000000".into(),
        "--cookie-secure".into(),
        "false".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Command::new(sesame_binary())
        .args(&args)
        .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sesame did not start: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Sesame {
        child,
        base,
        stdout,
        stderr,
    }
}

impl Sesame {
    /// SIGTERM, wait, and the process's output.
    fn stop(mut self) -> (String, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "sesame exited {status}");
                break;
            }
            assert!(Instant::now() < deadline, "sesame did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        (
            std::fs::read_to_string(&self.stdout).unwrap(),
            std::fs::read_to_string(&self.stderr).unwrap(),
        )
    }
}

const MARKER: &str = "Zq7-MARKER-pw-4f1c9e";
const MARKER_NEW: &str = "Zq7-MARKER-new-8b2d0a";
const MARKER_WRONG: &str = "Zq7-MARKER-wrong-3e6f";
/// Markers sent where a number or a user name is expected: serde's
/// messages quote some wrong values, which must stay in the response.
const MARKER_DIGITS: u64 = 7_310_946_275_512;

fn set_cookies(r: &Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect()
}

fn csrf_in(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..start + 64].to_owned()
}

/// A browser without a cookie jar: keeps the cookies by hand.
struct Browser {
    http: Client,
    base: String,
    cookies: Vec<String>,
}

impl Browser {
    fn remember(&mut self, r: &Response) {
        for c in set_cookies(r) {
            let name = c.split('=').next().unwrap().to_owned();
            self.cookies
                .retain(|old| !old.starts_with(&format!("{name}=")));
            self.cookies.push(c);
        }
    }

    async fn get(&mut self, path: &str) -> String {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookies.join("; "))
            .send()
            .await
            .unwrap();
        self.remember(&r);
        r.text().await.unwrap()
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> StatusCode {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
            .collect();
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookies.join("; "))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .send()
            .await
            .unwrap();
        self.remember(&r);
        r.status()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_token_reaches_any_log_metric_or_output() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let slow = dir.path().join("slow.jsonl");
    let sesame = serve(
        dir.path(),
        &[
            "--event-log",
            events.to_str().unwrap(),
            "--slow-login-log",
            slow.to_str().unwrap(),
            "--slow-login-ms",
            "0",
        ],
    );
    let base = sesame.base.clone();
    let http = Client::new();
    let url = |p: &str| format!("{base}{p}");
    let mut tokens = Vec::new();
    let mut statuses = Vec::new();

    // API: register, log in (right, wrong, unknown user, malformed, mistyped).
    let post = |path: &str, body: Value| http.post(url(path)).json(&body).send();
    let r = post(
        "/v1/users",
        json!({"user": "marker-user", "password": MARKER}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = post(
        "/v1/users",
        json!({"user": "marker-user", "password": MARKER}),
    )
    .await
    .unwrap();
    statuses.push(r.status()); // 409
    let r = post("/v1/users", json!({"user": "weak", "password": "password"}))
        .await
        .unwrap();
    statuses.push(r.status()); // 422 weak
    let r = post(
        "/v1/users",
        json!({"user": "has space", "password": MARKER}),
    )
    .await
    .unwrap();
    statuses.push(r.status()); // 422 user
    let r = post(
        "/v1/login",
        json!({"timestamp": "1000-01-01 00:00:00", "ip": "127.0.0.1/32", "user": "marker-user",
               "password": MARKER, "client": {"region": "eu", "platform": "ios", "app_version": "1"}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    tokens.push(token.clone());
    for body in [
        json!({"user": "marker-user", "password": MARKER_WRONG}),
        json!({"user": "nobody-here", "password": MARKER}),
        json!({"user": "marker-user", "password": MARKER, "timestamp": "not a time"}),
        json!({"user": "marker-user", "password": MARKER, "ip": "not an ip"}),
        json!({"user": "marker user", "password": MARKER}),
        json!({"user": "marker-user", "password": MARKER_DIGITS}),
        json!({"user": "marker-user", "password": MARKER.repeat(60)}),
    ] {
        statuses.push(post("/v1/login", body).await.unwrap().status());
    }
    for raw in [
        format!("{{\"user\":\"marker-user\",\"password\":\"{MARKER}\""),
        format!("{{\"user\":\"marker-user\",\"password\":\"{MARKER}\",}}"),
    ] {
        let r = http
            .post(url("/v1/login"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    let r = http
        .post(url("/v1/login"))
        .header("content-type", "text/plain")
        .body(format!("user=marker-user&password={MARKER}"))
        .send()
        .await
        .unwrap();
    statuses.push(r.status());
    // Passwords in the query string are not logged either.
    let r = http
        .get(url(&format!("/v1/session?password={MARKER}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Cookie, password change (old and new marker), the new one logs in.
    let r = http
        .get(url("/v1/session"))
        .header("cookie", format!("sesame_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .put(url("/v1/users/marker-user/password"))
        .bearer_auth(&token)
        .json(&json!({"old_password": MARKER_WRONG, "new_password": MARKER_NEW}))
        .send()
        .await
        .unwrap();
    statuses.push(r.status());
    let r = http
        .put(url("/v1/users/marker-user/password"))
        .bearer_auth(&token)
        .json(&json!({"old_password": MARKER, "new_password": MARKER_NEW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = post(
        "/v1/login",
        json!({"user": "marker-user", "password": MARKER_NEW}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token2 = r.json::<Value>().await.unwrap()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    tokens.push(token2.clone());
    let r = http
        .delete(url("/v1/session"))
        .bearer_auth(&token2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    statuses.push(
        http.get(url("/v1/session"))
            .bearer_auth(&token2)
            .send()
            .await
            .unwrap()
            .status(),
    );

    // Browser pages: sign up, sign in (wrong, right), change password, sign out.
    let mut b = Browser {
        http: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: base.clone(),
        cookies: Vec::new(),
    };
    let csrf = csrf_in(&b.get("/signup").await);
    let s = b
        .post(
            "/signup",
            &[
                ("csrf", &csrf),
                ("user", "web-user"),
                ("password", MARKER),
                ("confirm", MARKER),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    b.cookies.retain(|c| !c.starts_with("sesame_session="));
    let csrf = csrf_in(&b.get("/").await);
    let s = b
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("user", "web-user"),
                ("password", MARKER_WRONG),
            ],
        )
        .await;
    statuses.push(s);
    let csrf = csrf_in(&b.get("/").await);
    let s = b
        .post(
            "/login",
            &[("csrf", &csrf), ("user", "web-user"), ("password", MARKER)],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    if let Some(c) = b.cookies.iter().find(|c| c.starts_with("sesame_session=")) {
        tokens.push(c["sesame_session=".len()..].to_owned());
    }
    let csrf = csrf_in(&b.get("/password").await);
    let s = b
        .post(
            "/password",
            &[
                ("csrf", &csrf),
                ("old_password", MARKER),
                ("new_password", MARKER_NEW),
                ("confirm", MARKER_NEW),
            ],
        )
        .await;
    statuses.push(s);
    let csrf = csrf_in(&b.get("/").await);
    statuses.push(b.post("/logout", &[("csrf", &csrf)]).await);
    // A form post without its CSRF token, carrying a marker.
    statuses.push(
        b.post("/login", &[("user", "web-user"), ("password", MARKER)])
            .await,
    );

    let metrics = http
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sesame_"), "{metrics}");
    let (stdout, stderr) = sesame.stop();
    let event_log = std::fs::read_to_string(&events).unwrap();
    let slow_log = std::fs::read_to_string(&slow).unwrap();

    // The search means something only if the logs were written.
    assert!(event_log.lines().count() >= 10, "{event_log}");
    assert!(slow_log.lines().count() >= 10, "{slow_log}");
    assert!(
        stderr.contains("DEBUG") || stdout.contains("DEBUG"),
        "no debug output: {stderr}"
    );
    let digits = MARKER_DIGITS.to_string();
    let mut needles: Vec<&str> = vec![MARKER, MARKER_NEW, MARKER_WRONG, &digits, "Zq7-MARKER"];
    needles.extend(tokens.iter().map(String::as_str));
    assert!(tokens.len() >= 3, "{tokens:?}");
    let mut leaks = Vec::new();
    for (name, text) in [
        ("event log", &event_log),
        ("slow-login log", &slow_log),
        ("/metrics", &metrics),
        ("stdout", &stdout),
        ("stderr", &stderr),
    ] {
        for needle in &needles {
            if let Some(at) = text.find(needle) {
                let line = text[..at].rsplit('\n').next().unwrap_or_default();
                leaks.push(format!("{name}: {needle:?} in line starting {line:?}"));
            }
        }
    }
    println!(
        "secrets: {} requests answered {:?}; searched {} event lines, {} slow lines, {} bytes of metrics, {} bytes of output",
        statuses.len() + 12,
        statuses.iter().map(|s| s.as_u16()).collect::<Vec<_>>(),
        event_log.lines().count(),
        slow_log.lines().count(),
        metrics.len(),
        stdout.len() + stderr.len()
    );
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
