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

/// The Sentinel service name [`RedisSentinels`] monitors.
pub const SENTINEL_SERVICE: &str = "sesame";

/// A Redis master, one replica of it (`--replicaof`) and three sentinels
/// monitoring them as [`SENTINEL_SERVICE`] (quorum 2, down after 1 s,
/// failover timeout 5 s), each on a loopback port and in a directory of its
/// own (a sentinel rewrites its configuration file). For failover tests:
/// every process is killed when this is dropped, on a panic too, and by its
/// watchdog once the test binary exits.
pub struct RedisSentinels {
    /// The master at start.
    pub master: RedisNode,
    pub replica: RedisNode,
    pub sentinels: Vec<RedisNode>,
}

/// One process of [`RedisSentinels`].
pub struct RedisNode {
    pub port: u16,
    pid: u32,
    dead: std::sync::atomic::AtomicBool,
}

impl RedisSentinels {
    /// Starts them, and waits until every sentinel knows the replica and the
    /// other sentinels (a failover needs both). Installs nothing: fails,
    /// naming the package, when `redis-server` or `redis-sentinel` is
    /// missing.
    pub fn start() -> Result<Self, String> {
        let (sentinel_bin, sentinel_flag) = if on_path("redis-sentinel") {
            ("redis-sentinel", None)
        } else if on_path("redis-server") {
            ("redis-server", Some("--sentinel"))
        } else {
            return Err("neither redis-sentinel nor redis-server is installed \
                        (Debian packages `redis-sentinel` and `redis-server`)"
                .into());
        };
        let master = RedisNode::server(&[])?;
        let master_port = master.port.to_string();
        let replica = RedisNode::server(&["--replicaof", "127.0.0.1", &master_port])?;
        let mut this = Self {
            master,
            replica,
            sentinels: Vec::new(),
        };
        let linked = Instant::now();
        while !redis_cli(this.replica.port, &["info", "replication"])
            .contains("master_link_status:up")
        {
            if linked.elapsed() > Duration::from_secs(10) {
                return Err("the Redis replica did not connect to its master".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for _ in 0..3 {
            let node = RedisNode::sentinel(sentinel_bin, sentinel_flag, this.master.port)?;
            this.sentinels.push(node);
        }
        let started = Instant::now();
        loop {
            let ready = this.sentinels.iter().all(|s| {
                let info = redis_cli(s.port, &["sentinel", "master", SENTINEL_SERVICE]);
                let field = |name: &str| {
                    let mut lines = info.lines();
                    lines.find(|l| l.trim() == name)?;
                    lines.next().map(|v| v.trim().to_owned())
                };
                field("num-slaves").as_deref() == Some("1")
                    && field("num-other-sentinels").as_deref() == Some("2")
            });
            if ready {
                return Ok(this);
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err("the sentinels did not discover the replica and each other".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/sesame`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{SENTINEL_SERVICE}", hosts.join(","))
    }
}

impl Drop for RedisSentinels {
    fn drop(&mut self) {
        for node in self.sentinels.iter().chain([&self.replica, &self.master]) {
            node.thaw();
            node.kill();
        }
    }
}

impl RedisNode {
    fn server(extra: &[&str]) -> Result<Self, String> {
        let port = free_port();
        let dir = scratch("redis-node");
        let pidfile = dir.join("pid");
        watched("redis-server", &dir)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(&dir)
            .arg("--pidfile")
            .arg(&pidfile)
            .args(extra)
            .spawn()
            .map_err(|e| format!("starting redis-server: {e}"))?;
        Self::started(port, &pidfile, "redis-server")
    }

    fn sentinel(bin: &str, flag: Option<&str>, master_port: u16) -> Result<Self, String> {
        let port = free_port();
        let dir = scratch("redis-sentinel");
        let pidfile = dir.join("pid");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\npidfile {pid}\n\
                 sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n\
                 sentinel failover-timeout {SENTINEL_SERVICE} 5000\n\
                 sentinel parallel-syncs {SENTINEL_SERVICE} 1\n",
                dir = dir.display(),
                pid = pidfile.display(),
            ),
        )
        .map_err(|e| format!("writing {}: {e}", conf.display()))?;
        watched(bin, &dir)
            .arg(&conf)
            .args(flag)
            .spawn()
            .map_err(|e| format!("starting {bin}: {e}"))?;
        Self::started(port, &pidfile, bin)
    }

    /// Waits until the process answers PING and has written its pid file.
    fn started(port: u16, pidfile: &std::path::Path, what: &str) -> Result<Self, String> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            let pid = std::fs::read_to_string(pidfile)
                .ok()
                .and_then(|p| p.trim().parse().ok());
            if let (Some(pid), true) = (pid, redis_ping(port)) {
                return Ok(Self {
                    port,
                    pid,
                    dead: Default::default(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("{what} on port {port} did not start"))
    }

    /// kill -9: the process dies as in a crash. Waits until its port is
    /// closed.
    pub fn kill(&self) {
        if self.dead.swap(true, Ordering::AcqRel) {
            return;
        }
        self.signal("-KILL");
        let started = Instant::now();
        while std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
            && started.elapsed() < Duration::from_secs(5)
        {
            // A zombie until its watchdog reaps it: gone enough once the
            // port is closed.
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its replication role as `ROLE` names it: `master`, `slave` or
    /// `sentinel` (empty if it does not answer).
    pub fn role(&self) -> String {
        redis_cli(self.port, &["role"])
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// SIGSTOP: the process hangs (connections accepted, nothing answered).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: a frozen process goes on.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if self.dead.load(Ordering::Acquire) && signal != "-KILL" {
            return;
        }
        let _ = Command::new("kill")
            .arg(signal)
            .arg(self.pid.to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `redis-cli -p PORT ARGS...`: its output, empty if it failed.
fn redis_cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
