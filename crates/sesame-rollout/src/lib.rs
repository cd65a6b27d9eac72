//! Shipping sesame safely. [`canary`] judges a new version against the old
//! one from event logs or Prometheus (`sesame canary`); [`plan`] turns a
//! peak login rate into cores, pods and autoscaler bounds (`sesame plan`).
//! The Kubernetes manifests in deploy/k8s are sized and checked by both.

pub mod canary;
mod duration;
pub mod plan;
pub mod stats;

pub use canary::CanaryArgs;
pub use plan::PlanArgs;

use std::io::Write;

/// Writes a command's report to stdout. A closed pipe (`| head`) is the
/// reader's choice, not an error: the exit code must still be the verdict.
fn emit(text: &str) -> std::io::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
