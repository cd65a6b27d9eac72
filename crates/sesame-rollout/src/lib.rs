//! Shipping sesame safely. [`canary`] judges a new version against the old
//! one from event logs or Prometheus (`sesame canary`); [`plan`] turns a
//! peak login rate into cores, pods and autoscaler bounds (`sesame plan`).
//! The Kubernetes manifests in deploy/k8s are sized and checked by both.

pub mod canary;
pub mod plan;
pub mod stats;

pub use canary::CanaryArgs;
pub use plan::PlanArgs;
