//! Redis: the one on 127.0.0.1:6379 (started when missing), shared by all
//! tests under namespaces of their own, and private servers for the tests
//! that take Redis away.

use crate::process::{free_port, run, scratch, watched};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The Redis on 127.0.0.1:6379, started when it is not running.
pub fn redis_url() -> Result<String, String> {
    static REDIS: OnceLock<Result<String, String>> = OnceLock::new();
    REDIS
        .get_or_init(|| {
            let url = "redis://127.0.0.1:6379".to_owned();
            if redis_ping(6379) {
                return Ok(url);
            }
            run(Command::new("redis-server").args([
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ]))?;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if redis_ping(6379) {
                    return Ok(url);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err("redis-server on 127.0.0.1:6379 did not start".into())
        })
        .clone()
}

fn redis_ping(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "ping"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
}

/// A Redis namespace no other test uses.
pub fn namespace() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "sesame-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private redis-server on its own port, for outage tests.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    /// Every write in the append-only file, fsynced: what survives a
    /// restart is every write Redis acknowledged, as in production.
    durable: bool,
}

impl PrivateRedis {
    pub fn start() -> Result<Self, String> {
        Self::launched(false)
    }

    /// A Redis that keeps its data across restarts (`appendfsync always`).
    pub fn start_durable() -> Result<Self, String> {
        Self::launched(true)
    }

    fn launched(durable: bool) -> Result<Self, String> {
        let this = Self {
            port: free_port(),
            dir: scratch("redis"),
            durable,
        };
        this.launch()?;
        Ok(this)
    }

    fn launch(&self) -> Result<(), String> {
        watched("redis-server", &self.dir)
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(if self.durable {
                ["--appendonly", "yes", "--appendfsync", "always"].as_slice()
            } else {
                ["--appendonly", "no"].as_slice()
            })
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .arg("--pidfile")
            .arg(self.dir.join("pid"))
            .spawn()
            .map_err(|e| format!("starting redis-server: {e}"))?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if redis_ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("redis-server on port {} did not start", self.port))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Shuts the server down without saving, and waits until it is gone.
    pub fn kill(&self) {
        let _ = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "shutdown",
                "nosave",
            ])
            .stdin(Stdio::null())
            .output();
        let started = Instant::now();
        while redis_ping(self.port) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&self) -> Result<(), String> {
        self.launch()
    }
}
