//! The block list's file (`--deny-list`): read at start, where a bad file
//! stops the service, then watched. A Kubernetes ConfigMap volume replaces
//! its files by swapping a symlink, so the file's metadata is polled
//! rather than watched by inode.

use sesame_domain::{DenyList, SharedDenyList};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often the file is looked at: how long a newly blocked address may
/// still try after the file changed.
pub const POLL: Duration = Duration::from_secs(1);

pub fn load(path: &Path) -> anyhow::Result<DenyList> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the deny list {}: {e}", path.display()))?;
    let list =
        DenyList::parse(&text).map_err(|e| anyhow::anyhow!("deny list {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), entries = list.len(), "deny list loaded");
    Ok(list)
}

/// What tells a changed file apart.
fn version(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Rereads the file whenever it changes, for as long as the service runs.
/// A file that does not parse, or is gone, leaves the last good list in
/// force: a bad edit must not unblock an attack.
pub async fn watch(path: PathBuf, shared: SharedDenyList) {
    // Loaded before the metrics recorder was installed: counted now.
    metrics::gauge!("sesame_deny_list_entries").set(shared.current().len() as f64);
    let mut seen = version(&path);
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = version(&path);
        if now == seen {
            continue;
        }
        seen = now;
        if seen.is_none() {
            tracing::warn!(path = %path.display(), "deny list file is gone; keeping the last list");
            continue;
        }
        match load(&path) {
            Ok(list) => {
                metrics::gauge!("sesame_deny_list_entries").set(list.len() as f64);
                shared.replace(list);
            }
            Err(e) => {
                tracing::warn!(error = %e, "deny list not reloaded; keeping the last list")
            }
        }
    }
}
