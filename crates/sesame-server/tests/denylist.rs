//! The block list against the real `sesame` process: listed addresses are
//! refused as rate-limited ones, an edit of the file takes effect within a
//! few polls, a bad edit keeps the last good list, and a bad file stops the
//! start with the line it could not read.

use reqwest::Client;
use serde_json::json;
use sesame_testkit::{eventually, free_port, sesame_binary};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn serve_command(dir: &Path, port: u16, deny_list: &Path) -> Command {
    let mut command = Command::new(sesame_binary());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--database",
            &format!("sqlite:{}", dir.join("sesame.db").display()),
        ])
        .args(["--hash-m-cost", "64", "--hash-t-cost", "1"])
        // The test client is the API tier: it names the user's address.
        .args(["--trusted-proxies", "127.0.0.0/8"])
        .arg("--deny-list")
        .arg(deny_list)
        .stdout(Stdio::null());
    command
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn login(client: &Client, base: &str, ip: &str) -> (u16, Option<String>) {
    let r = client
        .post(format!("{base}/v1/login"))
        .json(&json!({"user": "denied-test", "password": "amber-harbor-52", "ip": ip}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry)
}

#[tokio::test]
async fn listed_addresses_are_refused_and_edits_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("deny.txt");
    std::fs::write(&list, "# stuffing wave\n198.19.255.7\n198.19.254.0/24\n").unwrap();
    let port = free_port();
    let _server = Running(
        serve_command(dir.path(), port, &list)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let registered = client
            .post(format!("{base}/v1/users"))
            .json(&json!({"user": "denied-test", "password": "amber-harbor-52"}))
            .send()
            .await;
        if let Ok(r) = registered {
            assert_eq!(r.status().as_u16(), 201);
            break;
        }
        assert!(Instant::now() < deadline, "sesame did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Listed: refused with the right password, told to come back later.
    let (status, retry) = login(&client, &base, "198.19.255.7").await;
    assert_eq!((status, retry.as_deref()), (429, Some("60")));
    assert_eq!(
        login(&client, &base, "198.19.254.200").await.0,
        429,
        "in a listed network"
    );
    assert_eq!(
        login(&client, &base, "198.19.255.8").await.0,
        200,
        "not listed"
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sesame_deny_list_entries 2"), "{metrics}");
    assert!(
        metrics.contains(r#"scope="deny_list""#),
        "refusals are counted by scope"
    );

    // An edit: one address off the list, another on it.
    std::fs::write(&list, "198.19.254.0/24\n198.19.255.8\n").unwrap();
    eventually(
        Duration::from_secs(5),
        Duration::from_millis(100),
        "198.19.255.7 taken off the list",
        || async { login(&client, &base, "198.19.255.7").await.0 == 200 },
    )
    .await;
    assert_eq!(login(&client, &base, "198.19.255.8").await.0, 429);

    // A bad edit keeps the last good list: nothing is unblocked.
    std::fs::write(&list, "198.19.254.0/24\n198.19.255.999\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(login(&client, &base, "198.19.255.8").await.0, 429);
    assert_eq!(login(&client, &base, "198.19.254.1").await.0, 429);
}

#[test]
fn a_bad_list_stops_the_start_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("deny.txt");
    std::fs::write(&list, "198.19.255.7\n\nnot-an-address\n").unwrap();
    let out = serve_command(dir.path(), free_port(), &list)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("not-an-address"),
        "{stderr}"
    );
}
