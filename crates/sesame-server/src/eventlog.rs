//! Append-only JSON-lines logs (the event log, the slow-login log) written
//! off the request path by one task, reopened on SIGHUP so logrotate works.

use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Lines buffered between requests and the writer. At 1 KB a line this is a
/// few tens of MB at most; past it lines are counted as dropped rather than
/// slowing logins down.
const BUFFERED_LINES: usize = 65_536;

/// A handle to a JSON-lines log; cheap to clone.
#[derive(Clone)]
pub struct JsonLinesLog {
    sender: mpsc::Sender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl JsonLinesLog {
    /// Opens `path` for appending (`-` is standard output) and starts the
    /// writer. The writer ends, flushing everything, once every handle is
    /// dropped; await the returned task to be sure.
    pub fn open(path: &Path) -> std::io::Result<(Self, JoinHandle<()>)> {
        let target = Target::open(path)?;
        let (sender, receiver) = mpsc::channel(BUFFERED_LINES);
        let writer = tokio::spawn(write_lines(target, path.to_owned(), receiver));
        Ok((
            Self {
                sender,
                dropped: Arc::default(),
            },
            writer,
        ))
    }

    pub fn write<T: Serialize>(&self, record: &T) {
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        if self.sender.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines lost because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

enum Target {
    Stdout,
    File(std::io::BufWriter<std::fs::File>),
}

impl Target {
    fn open(path: &Path) -> std::io::Result<Self> {
        if path == Path::new("-") {
            return Ok(Target::Stdout);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Target::File(std::io::BufWriter::with_capacity(
            64 * 1024,
            file,
        )))
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Target::Stdout => std::io::stdout().lock().write_all(bytes),
            Target::File(f) => f.write_all(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Target::Stdout => std::io::stdout().lock().flush(),
            Target::File(f) => f.flush(),
        }
    }
}

async fn write_lines(mut target: Target, path: PathBuf, mut receiver: mpsc::Receiver<Vec<u8>>) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            n = receiver.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
                for line in batch.drain(..) {
                    if let Err(e) = target.write_all(&line) {
                        tracing::error!(path = %path.display(), error = %e, "cannot write log line");
                    }
                }
                // Flush whenever the queue is empty: lines reach the file
                // promptly at low rates and in big writes at high ones.
                if receiver.is_empty() {
                    let _ = target.flush();
                }
            }
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                let _ = target.flush();
                match Target::open(&path) {
                    Ok(reopened) => {
                        target = reopened;
                        tracing::info!(path = %path.display(), "log reopened on SIGHUP");
                    }
                    Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot reopen log"),
                }
            }
        }
    }
    let _ = target.flush();
}
