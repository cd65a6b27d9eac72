//! What sesame's tests share, so that a test file holds its cases and
//! nothing else:
//!
//! - real servers, no mocks: [`mariadb`] starts MariaDB primaries and
//!   replicas from the installed server binaries (a replica can lag by
//!   `MASTER_DELAY`); [`redis`] finds or starts the Redis on
//!   127.0.0.1:6379, or starts a private one for outage tests, or a master,
//!   a replica and three sentinels ([`RedisSentinels`]) for failover
//!   tests. A watchdog
//!   removes every server this test binary started once it exits;
//! - [`require!`]: a test whose servers cannot start is skipped with a
//!   message, or fails under `CI=true`;
//! - the backend fixture: [`Backend`], a fresh [`Database`] on it, and
//!   [`on_every_backend!`], which runs one case on SQLite and on MariaDB
//!   primary + replica + Redis; [`MySqlStack`] for the tests that watch
//!   the MySQL topology itself;
//! - [`Served`] and [`TestServer`] (feature `server`, on by default):
//!   sesame served in the test's own process on a free port, with one
//!   helper per endpoint;
//! - [`sesame_binary`] and [`free_port`], for the suites that run the real
//!   `sesame` process;
//! - [`CHEAP`]: hash parameters that keep tests fast;
//! - [`eventually`]: polls until a condition holds, within a bound.
//!
//! For dev-dependencies only: `sesame-testkit = { path = "../sesame-testkit" }`.

mod backend;
pub mod mariadb;
mod process;
pub mod redis;
#[cfg(feature = "server")]
mod served;
#[cfg(feature = "server")]
mod server;

pub use backend::{mysql_config, mysql_settings, Backend, Database, MySqlStack};
pub use mariadb::{MariaDb, Topology, LAG_S};
pub use process::{free_port, sesame_binary};
pub use redis::{PrivateRedis, RedisNode, RedisSentinels};
#[cfg(feature = "server")]
pub use served::Served;
#[cfg(feature = "server")]
pub use server::{error_code, session_token, TestServer};

use sesame_domain::HashParams;
use std::future::Future;
use std::time::{Duration, Instant};

/// Argon2id at 256 KiB, one pass, one lane: real hashing and verification,
/// cheap enough for tests that hash a lot.
pub const CHEAP: HashParams = HashParams {
    m_cost: 256,
    t_cost: 1,
    p_cost: 1,
};

/// Skips the calling test (returns) when `$e`, a `Result<T, String>` that
/// starts a test server, is an error; under `CI=true` fails it instead.
/// Otherwise evaluates to the `T`.
#[macro_export]
macro_rules! require {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(why) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("required test server could not start: {why}");
                }
                eprintln!("SKIPPED: test server unavailable: {why}");
                return;
            }
        }
    };
}

/// Runs each case, an `async fn(Backend)` in scope, on every backend: for
/// case `c` a module `c` with the tests `sqlite` and `mysql` (MariaDB
/// primary + replica + Redis; skipped as [`require!`] says when those
/// servers cannot start). `cargo test ... ::mysql` runs one backend.
#[macro_export]
macro_rules! on_every_backend {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[::tokio::test]
            async fn sqlite() {
                super::$case($crate::Backend::Sqlite).await
            }

            #[::tokio::test]
            async fn mysql() {
                $crate::require!($crate::Backend::MySql.available());
                super::$case($crate::Backend::MySql).await
            }
        }
    )+};
}

/// Calls `check` every `every` until it returns true; fails the test, naming
/// `what`, if that has not happened within `within`.
pub async fn eventually<F, Fut>(within: Duration, every: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(every).await;
    }
}
