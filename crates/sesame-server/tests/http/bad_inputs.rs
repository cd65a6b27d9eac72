//! The catalogue of bad inputs: `tests/data/bad_inputs.json` lists each
//! hostile input with the answer it must get; this test sends every one to a
//! fresh real server and checks the answer, then checks that
//! `docs/src/bad-inputs.md` is the table generated from the same file (so the
//! document cannot drift from what is tested). `SESAME_BLESS=1` rewrites
//! the document's table instead of failing.

use chrono::{TimeZone, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use sesame_domain::{LimitSettings, ManualClock};
use sesame_testkit::{Backend, Database, TestServer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CATALOGUE: &str = "tests/data/bad_inputs.json";
const DOC: &str = "../../docs/src/bad-inputs.md";
const TABLE_START: &str =
    "<!-- catalogue: generated from crates/sesame-server/tests/data/bad_inputs.json -->";
const TABLE_END: &str = "<!-- end of catalogue -->";

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn catalogue() -> Value {
    let text = std::fs::read_to_string(manifest_path(CATALOGUE)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn cases(catalogue: &Value) -> impl Iterator<Item = (&str, &Value)> {
    catalogue["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| {
            let name = g["name"].as_str().unwrap();
            g["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |c| (name, c))
        })
}

/// "413 `payload_too_large`", "201, then 200", "404 HTML page", "405
/// `method_not_allowed`, `Allow: POST`".
fn answer(case: &Value) -> String {
    case["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let e = &s["expect"];
            let mut out = match e["code"].as_str() {
                Some(code) => format!("{} `{code}`", e["status"]),
                None if is_page(e) => format!("{} HTML page", e["status"]),
                None => e["status"].to_string(),
            };
            if let Some(allow) = e["headers"]["allow"].as_str() {
                out.push_str(&format!(", `Allow: {allow}`"));
            }
            out
        })
        .collect::<Vec<_>>()
        .join(", then ")
}

/// The step expects an HTML page rather than the JSON envelope.
fn is_page(expect: &Value) -> bool {
    expect["content_type"]
        .as_str()
        .is_some_and(|t| t.starts_with("text/html"))
}

/// The value of header `name` in `text` (the response's header lines, as
/// `send` returns them).
pub(crate) fn header_in<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn table(catalogue: &Value) -> String {
    let mut out = String::new();
    let mut group = "";
    for (name, case) in cases(catalogue) {
        if name != group {
            if !group.is_empty() {
                out.push('\n');
            }
            group = name;
            out.push_str(&format!(
                "### {name}\n\n| id | input | expected answer | why |\n|---|---|---|---|\n"
            ));
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            case["id"].as_str().unwrap(),
            cell(case["input"].as_str().unwrap()),
            answer(case),
            cell(case["why"].as_str().unwrap()),
        ));
    }
    out
}

#[test]
fn the_document_is_the_catalogue() {
    let catalogue = catalogue();
    let generated = format!("{TABLE_START}\n\n{}\n{TABLE_END}", table(&catalogue));
    let path = manifest_path(DOC);
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let (start, end) = match (doc.find(TABLE_START), doc.find(TABLE_END)) {
        (Some(s), Some(e)) => (s, e + TABLE_END.len()),
        _ => (doc.len(), doc.len()),
    };
    let current = &doc[start..end];
    if current != generated {
        if std::env::var_os("SESAME_BLESS").is_some() {
            let updated = format!("{}{generated}{}", &doc[..start], &doc[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        panic!(
            "docs/src/bad-inputs.md is not the table generated from {CATALOGUE}; \
             run `SESAME_BLESS=1 cargo test -p sesame-server --test http bad_inputs` and commit"
        );
    }
    // Ids are unique, every case has an expectation.
    let mut seen = std::collections::HashSet::new();
    for (_, case) in cases(&catalogue) {
        assert!(
            seen.insert(case["id"].as_str().unwrap().to_owned()),
            "{case}"
        );
    }
}

/// A fresh server (SQLite, a manual clock, no rate limits) with the
/// catalogue's fixtures: two users; sessions expired, logged out and live,
/// named by the placeholders `$EXPIRED`, `$LOGGED_OUT`, `$TOKEN`.
pub(crate) struct Server {
    server: TestServer,
    vars: BTreeMap<String, String>,
    _db: Database,
}

impl std::ops::Deref for Server {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

pub(crate) async fn start() -> Server {
    let db = Backend::Sqlite.database().await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 26, 6, 0, 0).unwrap(),
    ));
    let server = TestServer::serve_with_clock(db.stores().await, clock.clone(), |c| {
        c.login.latency_budget = Duration::from_secs(10);
        c.login.limits = LimitSettings::unlimited();
    })
    .await;
    let mut server = Server {
        server,
        vars: BTreeMap::new(),
        _db: db,
    };
    // Fixtures: two users; sessions expired, logged out and live.
    for (user, password) in [
        ("alice", "correct horse battery"),
        ("abc", "abc-has-a-long-password"),
    ] {
        let r = server
            .json(
                Method::POST,
                "/v1/users",
                json!({"user": user, "password": password}),
            )
            .await;
        assert_eq!(r.0, 201, "{r:?}");
    }
    let expired = server.login().await;
    clock.advance(chrono::Duration::hours(11));
    let live = server.login().await;
    let logged_out = server.login().await;
    let r = server.logout(&logged_out).await;
    assert_eq!(r.status(), 204);
    clock.advance(chrono::Duration::hours(2));
    server
        .vars
        .insert("$TOKEN_42".into(), live[..42].to_owned());
    server.vars.insert("$TOKEN".into(), live);
    server.vars.insert("$EXPIRED".into(), expired);
    server.vars.insert("$LOGGED_OUT".into(), logged_out);
    server
}

impl Server {
    /// Stops the server; the event log as written.
    pub(crate) async fn stop_raw(self) -> String {
        self.server.stop_raw().await
    }

    pub(crate) async fn json(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self) -> String {
        let (status, body) = self
            .json(
                Method::POST,
                "/v1/login",
                json!({"user": "alice", "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["session"].as_str().unwrap().to_owned()
    }

    /// Replaces the placeholders (see the catalogue's `about`).
    fn expand(&self, s: &str) -> String {
        let mut out = s.to_owned();
        // $TOKEN_42 before its prefix $TOKEN.
        for name in ["$TOKEN_42", "$TOKEN", "$EXPIRED", "$LOGGED_OUT"] {
            out = out.replace(name, &self.vars[name]);
        }
        for (prefix, unit) in [("$A_", "a"), ("$OPEN_", "["), ("$CLOSE_", "]")] {
            while let Some(at) = out.find(prefix) {
                let digits: String = out[at + prefix.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let n: usize = digits.parse().unwrap();
                out.replace_range(at..at + prefix.len() + digits.len(), &unit.repeat(n));
            }
        }
        if let Some(at) = out.find("$NESTOBJ_") {
            let digits: String = out[at + 9..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let n: usize = digits.parse().unwrap();
            let nested = format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
            out.replace_range(at..at + 9 + digits.len(), &nested);
        }
        out
    }

    fn expand_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.expand(s)),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.expand_value(v)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), self.expand_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Sends one step; returns status, the whole response as text (for
    /// `lacks`) and the body as JSON.
    async fn send(&self, step: &Value) -> (u16, String, Value) {
        if let Some(raw) = step["raw"].as_str() {
            return self.send_raw(raw).await;
        }
        let method: Method = step["method"].as_str().unwrap().parse().unwrap();
        let mut req = self.http.request(
            method,
            format!("{}{}", self.base, step["path"].as_str().unwrap()),
        );
        let content_type = match step.get("content_type") {
            None => Some("application/json"),
            Some(Value::Null) => None,
            Some(v) => v.as_str(),
        };
        let body: Option<Vec<u8>> = if let Some(j) = step.get("json") {
            Some(serde_json::to_vec(&self.expand_value(j)).unwrap())
        } else if let Some(b) = step["body"].as_str() {
            Some(self.expand(b).into_bytes())
        } else {
            step["body_hex"].as_str().map(hex)
        };
        if let Some(body) = body {
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            req = req.body(body);
        }
        if let Some(headers) = step["headers"].as_object() {
            for (name, value) in headers {
                req = req.header(name.as_str(), self.expand(value.as_str().unwrap()));
            }
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let mut text = String::new();
        for (name, value) in r.headers() {
            text.push_str(&format!(
                "{name}: {}\r\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        text.push_str("\r\n");
        let bytes = r.bytes().await.unwrap();
        text.push_str(&String::from_utf8_lossy(&bytes));
        (
            status,
            text,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn send_raw(&self, raw: &str) -> (u16, String, Value) {
        let mut bytes = Vec::new();
        let expanded = self.expand(raw);
        let mut rest = expanded.as_str();
        while let Some(at) = rest.find("<0x") {
            bytes.extend_from_slice(&rest.as_bytes()[..at]);
            bytes.push(u8::from_str_radix(&rest[at + 3..at + 5], 16).unwrap());
            rest = &rest[at + 6..];
        }
        bytes.extend_from_slice(rest.as_bytes());
        let mut conn = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        // The server may answer (413) and close before reading it all.
        let _ = conn.write_all(&bytes).await;
        let mut response = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut response))
            .await
            .expect("the server answers and closes");
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        // A chunked body, if any: the JSON is the one line that parses.
        let json = body
            .lines()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or(Value::Null);
        (status, text, json)
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `expected` is a subset of `actual`.
fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains(av, v))),
        _ => actual == expected,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_answer() {
    let catalogue = catalogue();
    let mut failures = Vec::new();
    let mut count = 0;
    for (_, case) in cases(&catalogue) {
        count += 1;
        let id = case["id"].as_str().unwrap();
        let server = start().await;
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let (status, text, body) = server.send(step).await;
            let expect = &step["expect"];
            let mut problems = Vec::new();
            if u64::from(status) != expect["status"].as_u64().unwrap() {
                problems.push(format!("status {status}, expected {}", expect["status"]));
            }
            if let Some(code) = expect["code"].as_str() {
                if body["error"]["code"] != code {
                    problems.push(format!("code {}, expected {code}", body["error"]["code"]));
                }
            }
            if let Some(want) = expect["content_type"].as_str() {
                let got = header_in(&text, "content-type").unwrap_or_default();
                if !got.starts_with(want) {
                    problems.push(format!("content-type {got:?}, expected {want}"));
                }
            }
            for (name, want) in expect["headers"].as_object().into_iter().flatten() {
                let got = header_in(&text, name);
                if got.map(str::to_ascii_lowercase) != want.as_str().map(str::to_ascii_lowercase) {
                    problems.push(format!("{name}: {got:?}, expected {want}"));
                }
            }
            for needle in expect["contains"].as_array().into_iter().flatten() {
                if !text.contains(needle.as_str().unwrap()) {
                    problems.push(format!("response lacks {needle}"));
                }
            }
            if is_page(expect) {
                // A page for a browser, not the envelope.
            } else if (status > 400 && status != 413) || expect["code"].is_string() {
                // Errors from sesame itself carry the envelope (a 400 from
                // the HTTP parser, before sesame sees the request, need not).
                if !(body["error"]["code"].is_string() && body["error"]["message"].is_string()) {
                    problems.push("no error envelope".into());
                }
            }
            if let Some(subset) = expect.get("json") {
                if !contains(&body, subset) {
                    problems.push(format!("body lacks {subset}"));
                }
            }
            for needle in expect["lacks"].as_array().into_iter().flatten() {
                if text.contains(needle.as_str().unwrap()) {
                    problems.push(format!("response contains {needle}"));
                }
            }
            if status >= 500 {
                problems.push("server error".into());
            }
            if !problems.is_empty() {
                let shown: String = text.chars().take(400).collect();
                failures.push(format!(
                    "{id} step {i}: {}\n    {shown}",
                    problems.join("; ")
                ));
            }
        }
        let events = server.stop_raw().await;
        // Whatever came in, the event log stays one JSON object per line.
        for line in events.lines() {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{id}: event log line is not JSON ({e}): {line}"));
            assert!(event["outcome"].is_string(), "{id}: {line}");
        }
    }
    assert!(count >= 50, "the catalogue shrank to {count} cases");
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
