//! sesame over HTTP, end to end: a real server on a free port in this
//! process (`sesame_testkit::TestServer`), real Argon2id with cheap
//! parameters, real storage. The server's suites, as one test binary:
//!
//! - `login`, `accounts`, `operations`: the JSON API. Every case runs on
//!   every backend (`on_every_backend!`): `<case>::sqlite` on a fresh SQLite
//!   file, `<case>::mysql` on a schema of its own on a MariaDB primary read
//!   through a replica, with Redis (skipped when those servers cannot
//!   start, failed under `CI=true`);
//! - `topology`: what only the production backend has (a lagging replica,
//!   the primary crashing and hanging, Redis going away), on servers of
//!   its own where a test kills them;
//! - `bad_inputs`, `oversize`: the catalogue of hostile inputs
//!   (`tests/data/bad_inputs.json`, `docs/src/bad-inputs.md`), and bodies too
//!   large, on the wire;
//! - `web`: the sign-in pages, CSRF, cookies, and what stands in front;
//! - `secrets`: no secret reaches a log, a metric or the output of a real
//!   `sesame serve`.
//!
//! Three suites are binaries of their own: what they measure breaks when
//! the tests of this binary run beside them.
//! - `timing.rs`: a KS test on login latencies; others' CPU load is noise.
//! - `sigterm.rs`: bounds when a real `sesame` exits after SIGTERM.
//! - `faults.rs`: kills MariaDB and Redis under load; recovery within 5 s.

mod accounts;
mod bad_inputs;
mod login;
mod operations;
mod oversize;
mod secrets;
mod topology;
mod web;

use sesame_domain::HashParams;
use sesame_server::ServerConfig;
use sesame_testkit::CHEAP;
use std::time::Duration;

/// One worker and a budget smaller than one hash: every login is refused
/// at once rather than queued.
fn overloaded(c: &mut ServerConfig) {
    c.hash_workers = 1;
    c.hash_params = HashParams {
        m_cost: 65_536,
        ..CHEAP
    };
    c.login.latency_budget = Duration::from_micros(1);
}
