//! What sesame's operator tools share, declared once so that every tool
//! reads the same flags and the same logs the same way.
//!
//! The tools (`sesame triage`, `canary`, `plan`, `load`, `slowlog`) live in
//! crates of their own; this crate is their common plumbing. It holds no web
//! or SQL framework: a tool links only what it runs.
//!
//! # Layout
//!
//! - [`duration`]: the one duration grammar of every command line flag
//!   (`90s`, `500ms`, `1h30m`, `2d`, or a bare number of seconds).
//! - [`argon2_flags`]: the Argon2id flag group (`--hash-m-cost`,
//!   `--hash-t-cost`, `--hash-p-cost`, `SESAME_HASH_*`).
//! - [`input`]: opening logs (plain or gzip, `-` for standard input, many
//!   files in order) and reading event logs in whole-line chunks.
//! - [`output`]: report output on standard output, where a closed pipe
//!   (`| head`) ends the output quietly instead of failing the command.
//! - [`html`]: escaping and the opening of the self-contained HTML reports.
//! - [`chart`]: line charts as inline SVG for those reports.
//! - `testing` (feature `testing`): helpers for the tools' tests.

pub mod argon2_flags;
pub mod chart;
pub mod duration;
pub mod html;
pub mod input;
pub mod output;
#[cfg(feature = "testing")]
pub mod testing;
