//! Reading event logs: plain or gzip (detected by magic bytes, not by name,
//! so rotated `events.log.1.gz` and piped input both work), line by line in
//! large chunks without a copy per line.

use anyhow::Context;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Read size, and the longest line kept whole: a longer one is cut here (it
/// then fails to parse and counts as bad) and the rest of it skipped.
const CHUNK: usize = 4 << 20;

/// Opens `path` (`-` is standard input), decompressing gzip transparently.
pub fn open(path: &Path) -> anyhow::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(File::open(path).with_context(|| format!("open {}", path.display()))?)
    };
    let mut reader = BufReader::with_capacity(1 << 16, raw);
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

/// Reads `reader` in chunks of whole lines, handing each to `emit` with
/// the buffer it came in (to be recycled through `spare`). A line longer
/// than [`CHUNK`] is handed on as its first [`CHUNK`] bytes (it then fails
/// to parse and counts as bad) and the rest of it skipped.
pub fn read_chunks(
    mut reader: impl Read,
    mut spare: impl FnMut() -> Option<Vec<u8>>,
    mut emit: impl FnMut(Vec<u8>),
) -> std::io::Result<()> {
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
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
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
            emit(std::mem::replace(&mut buf, next));
            filled = rest;
        } else if filled == buf.len() {
            emit(std::mem::replace(&mut buf, fresh()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn all_lines(input: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        read_chunks(
            input,
            || None,
            |chunk| {
                out.extend(lines(&chunk).map(<[u8]>::to_vec));
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
}
