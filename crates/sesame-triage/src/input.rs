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

/// Calls `line` for every line (without its newline); an over-long line is
/// passed as its first [`CHUNK`] bytes.
pub fn for_each_line(mut reader: impl Read, mut line: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0;
    let mut skipping_long_line = false;
    loop {
        let n = match reader.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        filled += n;
        let mut start = 0;
        for end in memchr_iter(&buf[..filled]) {
            if skipping_long_line {
                skipping_long_line = false;
            } else {
                line(&buf[start..end]);
            }
            start = end + 1;
        }
        if n == 0 {
            if start < filled && !skipping_long_line {
                line(&buf[start..filled]);
            }
            return Ok(());
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() && !skipping_long_line {
            line(&buf);
            skipping_long_line = true;
        }
        if skipping_long_line {
            filled = 0;
        }
    }
}

fn memchr_iter(haystack: &[u8]) -> impl Iterator<Item = usize> + '_ {
    memchr::memchr_iter(b'\n', haystack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_the_unterminated_last_one() {
        let mut lines = Vec::new();
        for_each_line(&b"a\nbb\n\nccc"[..], |l| lines.push(l.to_vec())).unwrap();
        assert_eq!(lines, [&b"a"[..], b"bb", b"", b"ccc"]);
    }

    #[test]
    fn an_over_long_line_is_cut_once_and_the_rest_skipped() {
        let mut input = vec![b'x'; CHUNK * 3];
        input.extend_from_slice(b"\nnext\n");
        let mut lines = Vec::new();
        for_each_line(&input[..], |l| lines.push(l.len())).unwrap();
        assert_eq!(lines, [CHUNK, 4]);
    }
}
