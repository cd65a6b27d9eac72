//! Reading: one thread reads (and gunzips, through
//! [`sesame_toolkit::input`]) files into chunks of whole entries, worker
//! threads parse and aggregate them. Memory is bounded by
//! the chunks in flight, whatever the size of the log.

use crate::digest::{Aggregator, Digest, Grouping};
use crate::parse::{for_each_entry, record_boundary};
use anyhow::Context;
use crossbeam_channel::{bounded, Receiver, Sender};
use regex::bytes::Regex;
use sesame_toolkit::input;
use std::io::Read;
use std::path::Path;

const CHUNK: usize = 1 << 20;

struct Chunk {
    data: Vec<u8>,
    file_start: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FileRead {
    pub name: String,
    /// Bytes of log text (after gunzip).
    pub bytes: u64,
    pub gzip: bool,
    /// Why reading stopped early; what was read before still counts.
    pub error: Option<String>,
    /// Set when the start of the file has none of a slow log's header
    /// lines (a binary, another kind of log): it is digested all the same.
    pub warning: Option<String>,
}

pub struct Totals {
    pub digest: Digest,
    pub files: Vec<FileRead>,
}

pub fn digest_files(
    paths: &[String],
    grouping: &Grouping,
    grep: Option<&Regex>,
    threads: usize,
) -> Totals {
    let threads = threads.max(1);
    let (chunks_tx, chunks_rx) = bounded::<Chunk>(threads * 2);
    // Room for every buffer in flight, so buffers are reused, not reallocated.
    let (spent_tx, spent_rx) = bounded::<Vec<u8>>(threads * 3 + 4);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let chunks = chunks_rx.clone();
                let spent = spent_tx.clone();
                scope.spawn(move || work(chunks, spent, grouping, grep))
            })
            .collect();
        drop(chunks_rx);
        let files = paths
            .iter()
            .map(|path| read_file(path, &chunks_tx, &spent_rx))
            .collect();
        drop(chunks_tx);
        let mut digest = Digest::default();
        for worker in workers {
            digest.merge(worker.join().expect("worker panicked"));
        }
        Totals { digest, files }
    })
}

fn work(
    chunks: Receiver<Chunk>,
    spent: Sender<Vec<u8>>,
    grouping: &Grouping,
    grep: Option<&Regex>,
) -> Digest {
    let mut aggregator = Aggregator::new(grouping, grep);
    for chunk in chunks {
        for_each_entry(&chunk.data, chunk.file_start, &mut |entry| {
            aggregator.add(entry)
        });
        // Hand the buffer back for reuse; if the pool is full, drop it.
        let _ = spent.try_send(chunk.data);
    }
    aggregator.finish()
}

fn read_file(path: &str, chunks: &Sender<Chunk>, spent: &Receiver<Vec<u8>>) -> FileRead {
    let mut read = FileRead {
        name: path.to_string(),
        bytes: 0,
        gzip: false,
        error: None,
        warning: None,
    };
    if let Err(e) = read_into_chunks(path, &mut read, chunks, spent) {
        read.error = Some(format!("{e:#}"));
    }
    read
}

fn read_into_chunks(
    path: &str,
    read: &mut FileRead,
    chunks: &Sender<Chunk>,
    spent: &Receiver<Vec<u8>>,
) -> anyhow::Result<()> {
    let opened = input::open(Path::new(path))?;
    read.gzip = opened.gzip;
    let mut input = opened.reader;
    let mut buf = spent.try_recv().unwrap_or_default();
    buf.clear();
    let mut file_start = true;
    loop {
        // `take` + `read_to_end` appends without zero-filling the buffer;
        // on an error (a cut gzip stream) what it read is in `buf` too.
        let before = buf.len();
        let result = input.by_ref().take(CHUNK as u64).read_to_end(&mut buf);
        let n = buf.len() - before;
        read.bytes += n as u64;
        if file_start && before == 0 && n > 0 && !looks_like_slow_log(&buf) {
            read.warning = Some(format!(
                "{path} does not look like a slow log (no `# Time:`, `# User@Host:` or \
                 `# Query_time:` line in its first {} bytes)",
                buf.len()
            ));
        }
        if let Err(e) = result {
            send_rest(buf, file_start, chunks);
            return Err(e).with_context(|| format!("reading {path}"));
        }
        if n < CHUNK {
            // End of input: the rest is whole entries (or a cut last one).
            send_rest(buf, file_start, chunks);
            return Ok(());
        }
        // Send whole entries; keep the partial last one for the next chunk.
        // An entry larger than the buffer just makes the buffer grow.
        if let Some(end) = record_boundary(&buf) {
            let mut next = spent.try_recv().unwrap_or_default();
            next.clear();
            next.extend_from_slice(&buf[end..]);
            buf.truncate(end);
            let full = std::mem::replace(&mut buf, next);
            let _ = chunks.send(Chunk {
                data: full,
                file_start,
            });
            file_start = false;
        }
    }
}

/// Whether the start of a file holds a line MySQL or MariaDB write in a
/// slow log: an entry's header or the server's start banner. Checked once
/// per file, on its first chunk.
fn looks_like_slow_log(head: &[u8]) -> bool {
    const MARKERS: [&[u8]; 5] = [
        b"# Query_time: ",
        b"# User@Host: ",
        b"# Time: ",
        b"# administrator command: ",
        b", Version: ",
    ];
    MARKERS
        .iter()
        .any(|marker| memchr::memmem::find(head, marker).is_some())
}

fn send_rest(buf: Vec<u8>, file_start: bool, chunks: &Sender<Chunk>) {
    if !buf.is_empty() {
        let _ = chunks.send(Chunk {
            data: buf,
            file_start,
        });
    }
}
