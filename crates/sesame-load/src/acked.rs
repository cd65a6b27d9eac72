//! `--acked-registrations FILE`: the names of the users whose registration
//! the service acknowledged (201), for a test that then checks none of them
//! was lost (say, across a failover of the primary database).
//!
//! Each name is written as its answer arrives, in one `write` of the whole
//! line with no buffer in this process, so the file is complete up to the
//! last answer even if the tool is killed. (Not synced to disk: that would
//! guard against the machine crashing, not the tool.) Registrations are a
//! small share of the traffic, so a lock and a syscall each cost little.

use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct AckedLog {
    path: PathBuf,
    file: Mutex<Written>,
}

struct Written {
    file: File,
    /// The first write that failed: the list is incomplete from there on,
    /// and the run must say so.
    failed: Option<std::io::Error>,
}

impl AckedLog {
    /// Opens `path` for appending (creating it), so that names acknowledged
    /// in an earlier run are never thrown away.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(Written { file, failed: None }),
        })
    }

    /// Appends `user` and a newline.
    pub fn record(&self, user: &str) {
        let line = format!("{user}\n");
        let mut written = self.file.lock().expect("acked log lock");
        if written.failed.is_none() {
            if let Err(e) = written.file.write_all(line.as_bytes()) {
                written.failed = Some(e);
            }
        }
    }

    /// Fails if any name could not be written.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.file.lock().expect("acked log lock").failed.take() {
            Some(e) => Err(anyhow::Error::new(e).context(format!(
                "writing {}: the list of acknowledged registrations is incomplete",
                self.path.display()
            ))),
            None => Ok(()),
        }
    }
}
