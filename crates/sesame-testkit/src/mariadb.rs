//! MariaDB primaries and replicas started from the installed server
//! binaries: temporary data directories copied from one template, loopback
//! ports, binlog replication with GTID, `MASTER_DELAY` for lag.
//!
//! The servers of [`shared`] and [`shared_delayed`] are started once per
//! test binary and shared by its tests, each in a schema of its own
//! ([`Topology::schema`]); a test that kills or freezes servers starts its
//! own [`Topology`].

use crate::process::{free_port, remove_stale_scratch, run, scratch, watched};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const MARIADBD: &str = "/usr/sbin/mariadbd";

/// A data directory made by mariadb-install-db once (per machine, reused
/// across test binaries) and copied for every server.
fn template() -> Result<PathBuf, String> {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            remove_stale_scratch();
            if !Path::new(MARIADBD).exists() {
                return Err(format!(
                    "{MARIADBD} is not installed (scripts/services up installs it)"
                ));
            }
            let version = run(Command::new(MARIADBD).arg("--version"))?;
            let tag: String = version
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(60)
                .collect();
            let dir = std::env::temp_dir().join(format!("sesame-mariadb-template-{tag}"));
            if dir.join("ready").exists() {
                return Ok(dir.join("data"));
            }
            let building = scratch("template");
            run(Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", building.join("data").display()))
                .arg("--auth-root-authentication-method=normal")
                .arg("--skip-test-db")
                .arg("--user=root")
                .args(SERVER_TUNING))?;
            std::fs::write(building.join("ready"), "").map_err(|e| format!("template: {e}"))?;
            // Another binary may have won the race; either copy is fine.
            if std::fs::rename(&building, &dir).is_err() {
                let _ = std::fs::remove_dir_all(&building);
            }
            Ok(dir.join("data"))
        })
        .clone()
}

/// Small and fast: these servers hold a few rows each.
const SERVER_TUNING: &[&str] = &[
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    "--innodb-flush-log-at-trx-commit=2",
    "--sync-binlog=0",
];

/// One mariadbd on a loopback port.
pub struct MariaDb {
    pub port: u16,
    pub server_id: u32,
    dir: PathBuf,
    pid: Mutex<Option<u32>>,
}

impl MariaDb {
    /// Starts a fresh server (a copy of the template data directory).
    pub fn start(server_id: u32) -> Result<Self, String> {
        let template = template()?;
        let dir = scratch(&format!("mariadb-{server_id}"));
        run(Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(dir.join("data")))?;
        let this = Self {
            port: free_port(),
            server_id,
            dir,
            pid: Mutex::new(None),
        };
        this.launch()?;
        Ok(this)
    }

    fn launch(&self) -> Result<(), String> {
        let d = &self.dir;
        let args = [
            "--no-defaults".to_owned(),
            format!("--datadir={}", d.join("data").display()),
            "--user=root".to_owned(),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--socket={}", d.join("sock").display()),
            format!("--pid-file={}", d.join("pid").display()),
            format!("--log-error={}", d.join("error.log").display()),
            format!("--server-id={}", self.server_id),
            "--log-bin=binlog".to_owned(),
            "--binlog-format=ROW".to_owned(),
            "--skip-name-resolve".to_owned(),
            "--max-connections=500".to_owned(),
        ];
        let _ = std::fs::remove_file(d.join("pid"));
        watched(MARIADBD, d)
            .args(args)
            .args(SERVER_TUNING)
            .spawn()
            .map_err(|e| format!("starting {MARIADBD}: {e}"))?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if self.sql("SELECT 1").is_ok() {
                let pid = std::fs::read_to_string(d.join("pid"))
                    .ok()
                    .and_then(|p| p.trim().parse().ok());
                *self.pid.lock().unwrap() = pid;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
        Err(format!(
            "mariadbd on port {} did not start: {}",
            self.port,
            log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        ))
    }

    /// Runs SQL with the mariadb client; returns tab-separated rows.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        run(Command::new("mariadb")
            .args(["--protocol=tcp", "-h127.0.0.1", "-uroot", "-N", "-B"])
            .arg(format!("-P{}", self.port))
            .arg("--connect-timeout=2")
            .arg("-e")
            .arg(sql))
    }

    pub fn url(&self, schema: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{schema}", self.port)
    }

    /// kill -9: the server dies as in a crash.
    pub fn kill(&self) {
        if let Some(pid) = self.pid.lock().unwrap().take() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            // Wait until the port is closed.
            let started = Instant::now();
            while self.sql("SELECT 1").is_ok() && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// SIGSTOP: the server hangs (connections accepted, nothing answered).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: a frozen server goes on.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(pid) = *self.pid.lock().unwrap() {
            let _ = Command::new("kill")
                .arg(signal)
                .arg(pid.to_string())
                .status();
        }
    }

    /// Starts the server again on the same data directory and port.
    pub fn restart(&self) -> Result<(), String> {
        self.launch()
    }

    /// Makes this server a replica of `primary`, `delay_s` seconds behind.
    pub fn replicate_from(&self, primary: &MariaDb, delay_s: u32) -> Result<(), String> {
        self.sql(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
             MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, \
             MASTER_DELAY={delay_s}; START SLAVE;",
            primary.port
        ))?;
        Ok(())
    }
}

/// A primary with replicas.
pub struct Topology {
    pub primary: MariaDb,
    /// Replicating with no delay.
    pub replica: MariaDb,
}

static SERVER_IDS: AtomicU32 = AtomicU32::new(1);

impl Topology {
    /// A primary and a replica of their own, for a test that kills them.
    pub fn start() -> Result<Self, String> {
        let primary = MariaDb::start(SERVER_IDS.fetch_add(1, Ordering::Relaxed))?;
        let replica = MariaDb::start(SERVER_IDS.fetch_add(1, Ordering::Relaxed))?;
        replica.replicate_from(&primary, 0)?;
        Ok(Self { primary, replica })
    }

    /// A replica of this primary, `delay_s` seconds behind.
    pub fn add_delayed_replica(&self, delay_s: u32) -> Result<MariaDb, String> {
        let replica = MariaDb::start(SERVER_IDS.fetch_add(1, Ordering::Relaxed))?;
        replica.replicate_from(&self.primary, delay_s)?;
        Ok(replica)
    }

    /// A fresh, empty schema on the primary (replicated to the replicas).
    pub fn schema(&self) -> Result<String, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.primary.sql(&format!("CREATE DATABASE {name}"))?;
        Ok(name)
    }
}

/// The topology shared by the tests of this binary.
pub fn shared() -> Result<&'static Topology, String> {
    static SHARED: OnceLock<Result<Topology, String>> = OnceLock::new();
    SHARED
        .get_or_init(Topology::start)
        .as_ref()
        .map_err(Clone::clone)
}

/// How far behind the primary [`shared_delayed`] is, in seconds.
pub const LAG_S: u32 = 3;

/// A replica of the shared primary that is [`LAG_S`] seconds behind.
pub fn shared_delayed() -> Result<&'static MariaDb, String> {
    static DELAYED: OnceLock<Result<MariaDb, String>> = OnceLock::new();
    let topology = shared()?;
    DELAYED
        .get_or_init(|| topology.add_delayed_replica(LAG_S))
        .as_ref()
        .map_err(Clone::clone)
}

/// Waits until `server` has `schema.table` (replication has caught up with
/// its creation).
/// Waits until replication has brought `schema`'s heartbeat table to
/// `server` (the schema is migrated there); panics after `within`.
pub fn wait_for_heartbeat(server: &MariaDb, schema: &str, within: Duration) {
    wait_for_table(server, schema, "heartbeat", within).unwrap_or_else(|e| panic!("{e}"));
}

pub fn wait_for_table(
    server: &MariaDb,
    schema: &str,
    table: &str,
    within: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let found = server.sql(&format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='{schema}' AND table_name='{table}'"
        ))?;
        if found.trim() == "1" {
            return Ok(());
        }
        if started.elapsed() > within {
            return Err(format!(
                "{schema}.{table} did not reach port {}",
                server.port
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
