//! Reading logs the way operators have them: plain or gzip (recognized by
//! content, not by name, so rotated `events.jsonl.1.gz` and piped `zcat`
//! output both work; several gzip members too), a file or `-` for standard
//! input, and many files read one after the other in the order given.
//!
//! [`open`] is for any log (`sesame slowlog` chunks slow-log entries its own
//! way). For event logs (JSON lines), [`Chunks`] reads the files on a thread
//! of its own, in large chunks of whole lines, handing each on without a copy
//! per line: `sesame triage` parses them at hundreds of MB/s while the
//! reader gunzips. [`lines`] splits a chunk; [`for_each_line`] does both for
//! tools that need less speed (`sesame canary`, `sesame load --replay`).

use anyhow::Context;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::thread::JoinHandle;

/// The name that reads standard input.
pub const STDIN: &str = "-";

/// Read size of [`Chunks`], and the longest line kept whole: a longer one is
/// cut here (it then fails to parse and counts as bad) and the rest of it
/// skipped.
pub const CHUNK: usize = 4 << 20;

/// Chunks read ahead of the consumer: with the one being filled and the one
/// being parsed, memory stays at a few [`CHUNK`]s whatever the log's size.
const CHUNKS_IN_FLIGHT: usize = 2;

/// An opened log, decompressed as it is read.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    /// The file was gzip.
    pub gzip: bool,
}

/// Whether `path` names standard input.
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new(STDIN)
}

/// `path` for messages: standard input by that name.
pub fn name(path: &Path) -> String {
    if is_stdin(path) {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    }
}

/// The names of several files for messages, comma-separated.
pub fn names(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| name(p)).collect();
    names.join(", ")
}

/// Opens `path` (`-` is standard input), decompressing gzip transparently.
/// A directory is refused here with its name, rather than failing at the
/// first read without one.
pub fn open(path: &Path) -> anyhow::Result<Opened> {
    let mut raw: Box<dyn Read + Send> = if is_stdin(path) {
        Box::new(io::stdin())
    } else {
        let shown = path.display();
        let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            anyhow::bail!("cannot read {shown}: it is a directory, not a log");
        }
        Box::new(file)
    };
    // Gzip's magic bytes, read whole even from a pipe that delivers one
    // byte at a time, then put back in front.
    let mut magic = [0u8; 2];
    let n = read_full(&mut raw, &mut magic).with_context(|| format!("reading {}", name(path)))?;
    let reader = Cursor::new(magic[..n].to_vec()).chain(raw);
    let gzip = magic[..n] == [0x1f, 0x8b];
    Ok(Opened {
        reader: if gzip {
            Box::new(MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        },
        gzip,
    })
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads `reader` in chunks of whole lines, handing each to `emit` with the
/// buffer it came in (to be recycled through `spare`); `emit` answers whether
/// to go on. A line longer than [`CHUNK`] is handed on as its first
/// [`CHUNK`] bytes (it then fails to parse and counts as bad) and the rest
/// of it skipped.
pub fn read_chunks(
    mut reader: impl Read,
    mut spare: impl FnMut() -> Option<Vec<u8>>,
    mut emit: impl FnMut(Vec<u8>) -> bool,
) -> io::Result<()> {
    let mut fresh = || {
        let mut buf = spare().unwrap_or_default();
        buf.resize(CHUNK, 0);
        buf
    };
    let mut buf = fresh();
    let mut filled = 0;
    let mut skipping_long_line = false;
    loop {
        let n = match reader.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let start = filled;
        filled += n;
        if skipping_long_line {
            match memchr::memchr(b'\n', &buf[start..filled]) {
                Some(i) => {
                    buf.copy_within(start + i + 1..filled, 0);
                    filled -= start + i + 1;
                    skipping_long_line = false;
                }
                None => filled = 0,
            }
        }
        if n == 0 {
            if filled > 0 && !skipping_long_line {
                buf.truncate(filled);
                emit(buf);
            }
            return Ok(());
        }
        if let Some(last) = memchr::memrchr(b'\n', &buf[..filled]) {
            let mut next = fresh();
            let rest = filled - (last + 1);
            next[..rest].copy_from_slice(&buf[last + 1..filled]);
            buf.truncate(last + 1);
            if !emit(std::mem::replace(&mut buf, next)) {
                return Ok(());
            }
            filled = rest;
        } else if filled == buf.len() {
            if !emit(std::mem::replace(&mut buf, fresh())) {
                return Ok(());
            }
            filled = 0;
            skipping_long_line = true;
        }
    }
}

/// The lines of a chunk, without their newlines.
pub fn lines(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = chunk.strip_suffix(b"\n").unwrap_or(chunk);
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    let mut start = 0;
    ends.map(move |end| {
        let line = &body[start..end];
        start = end + 1;
        line
    })
    .filter(move |_| !chunk.is_empty())
}

/// Whole lines of one of the files.
#[derive(Debug)]
pub struct Chunk {
    /// Which file, by its place in the list given.
    pub file: usize,
    pub data: Vec<u8>,
}

/// The chunks of whole lines of many logs, file after file, read (and
/// gunzipped) by a thread of its own a few chunks ahead. The last item is
/// the error that stopped the reading, if one did; what was read before it
/// has been handed out. Dropping it early stops the reader at its next
/// chunk.
pub struct Chunks {
    full: Receiver<Chunk>,
    spent: Sender<Vec<u8>>,
    reader: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Chunks {
    /// Starts reading `paths` in order (`-` is standard input).
    pub fn read(paths: &[PathBuf]) -> Self {
        let paths = paths.to_vec();
        let (to_consumer, full) = sync_channel::<Chunk>(CHUNKS_IN_FLIGHT);
        let (spent, recycled) = channel::<Vec<u8>>();
        let reader = std::thread::Builder::new()
            .name("log reader".into())
            .spawn(move || -> anyhow::Result<()> {
                for (file, path) in paths.iter().enumerate() {
                    let input = open(path)?;
                    let mut consumer_gone = false;
                    read_chunks(
                        input.reader,
                        || recycled.try_recv().ok(),
                        |data| {
                            consumer_gone = to_consumer.send(Chunk { file, data }).is_err();
                            !consumer_gone
                        },
                    )
                    .with_context(|| format!("reading {}", name(path)))?;
                    if consumer_gone {
                        break;
                    }
                }
                Ok(())
            })
            .expect("cannot start the log reader thread");
        Self {
            full,
            spent,
            reader: Some(reader),
        }
    }

    /// Hands spent chunk buffers back to the reader, so that it reuses them
    /// instead of allocating (and zeroing) a fresh [`CHUNK`] each time.
    pub fn recycler(&self) -> impl Fn(Vec<u8>) + Send + 'static {
        let spent = self.spent.clone();
        move |buf| {
            // Fails only once the reader is done.
            let _ = spent.send(buf);
        }
    }
}

impl Iterator for Chunks {
    type Item = anyhow::Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Ok(chunk) = self.full.recv() {
            return Some(Ok(chunk));
        }
        // The reader is done: by the end of the input, or an error.
        match self.reader.take()?.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(Err(e)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Calls `each` with every line of `paths`, in order, without its newline.
pub fn for_each_line(paths: &[PathBuf], mut each: impl FnMut(&[u8])) -> anyhow::Result<()> {
    let chunks = Chunks::read(paths);
    let recycle = chunks.recycler();
    for chunk in chunks {
        let chunk = chunk?;
        lines(&chunk.data).for_each(&mut each);
        recycle(chunk.data);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn all_lines(input: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        read_chunks(
            input,
            || None,
            |chunk| {
                out.extend(lines(&chunk).map(<[u8]>::to_vec));
                true
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn splits_lines_and_keeps_the_unterminated_last_one() {
        assert_eq!(all_lines(b"a\nbb\n\nccc"), [&b"a"[..], b"bb", b"", b"ccc"]);
        assert_eq!(all_lines(b"a\n"), [b"a"]);
        assert!(all_lines(b"").is_empty());
    }

    #[test]
    fn lines_across_chunk_boundaries_stay_whole() {
        let line = b"0123456789abcdef0123456789abcdef0123456789\n";
        let input: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 300_000)
            .collect();
        let lines = all_lines(&input);
        assert_eq!(lines.len(), 300_000);
        assert!(lines.iter().all(|l| l == &line[..line.len() - 1]));
    }

    #[test]
    fn an_over_long_line_is_cut_once_and_the_rest_skipped() {
        let mut input = vec![b'x'; CHUNK * 3];
        input.extend_from_slice(b"\nnext\n");
        let lengths: Vec<usize> = all_lines(&input).iter().map(Vec::len).collect();
        assert_eq!(lengths, [CHUNK, 4]);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    fn read_all(paths: &[PathBuf]) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for_each_line(paths, |line| {
            out.push(String::from_utf8_lossy(line).into_owned())
        })?;
        Ok(out)
    }

    #[test]
    fn plain_gzip_and_several_members_read_alike_in_the_order_given() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("events.jsonl");
        std::fs::write(&plain, "c\nd\n").unwrap();
        // A rotated log, named without .gz: content decides.
        let rotated = dir.path().join("events.jsonl.1");
        std::fs::write(&rotated, gzip(b"a\nb\n")).unwrap();
        // Two gzip members, as `cat a.gz b.gz` or logrotate's delaycompress leave.
        let members = dir.path().join("older.gz");
        std::fs::write(&members, [gzip(b"y\n"), gzip(b"z")].concat()).unwrap();
        assert_eq!(
            read_all(&[members.clone(), rotated.clone(), plain.clone()]).unwrap(),
            ["y", "z", "a", "b", "c", "d"]
        );
        assert!(open(&rotated).unwrap().gzip);
        assert!(!open(&plain).unwrap().gzip);
    }

    #[test]
    fn files_of_a_byte_or_none_are_plain() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        let one = dir.path().join("one");
        std::fs::write(&one, "\x1f").unwrap();
        assert_eq!(read_all(&[empty, one]).unwrap(), ["\x1f"]);
    }

    #[test]
    fn errors_name_the_file_after_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "a\n").unwrap();
        let missing = dir.path().join("missing");
        let mut seen = Vec::new();
        let e = for_each_line(&[good, missing.clone()], |l| seen.push(l.to_vec()))
            .unwrap_err()
            .to_string();
        assert_eq!(seen, [b"a"]);
        assert!(e.contains("cannot open") && e.contains("missing"), "{e}");

        let e = format!("{:#}", read_all(&[dir.path().to_owned()]).unwrap_err());
        assert!(e.contains("directory"), "{e}");

        let cut = dir.path().join("cut.gz");
        let whole = gzip(&b"0123456789\n".repeat(10_000));
        std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
        let e = format!("{:#}", read_all(&[cut]).unwrap_err());
        assert!(e.contains("reading") && e.contains("cut.gz"), "{e}");
    }

    #[test]
    fn a_consumer_that_stops_early_stops_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, b"line\n".repeat(3 * CHUNK / 5)).unwrap();
        let mut chunks = Chunks::read(&[big]);
        assert!(chunks.next().unwrap().is_ok());
        drop(chunks);
    }

    #[test]
    fn standard_input_has_a_name() {
        assert_eq!(name(Path::new("-")), "standard input");
        assert_eq!(names(&["a.gz".into(), "-".into()]), "a.gz, standard input");
    }
}
