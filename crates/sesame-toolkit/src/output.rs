//! A report on standard output. A reader that goes away (`sesame triage
//! ... | head`, `sesame canary ... | grep -q FAIL`) is the reader's choice,
//! not an error: the rest of the output is dropped quietly and the command
//! still exits with what it found (a canary's verdict, a digest's failure),
//! instead of an error about a broken pipe or a panic in `print!`.

use std::io::{self, BufWriter, ErrorKind, StdoutLock, Write};

/// A writer for which a closed pipe is the end of the output, not an error:
/// once a write or flush meets `EPIPE`, this and every later write succeed
/// without writing. Other errors (a full disk) are still errors.
#[derive(Debug)]
pub struct QuietPipe<W: Write> {
    inner: W,
    closed: bool,
}

impl<W: Write> QuietPipe<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            closed: false,
        }
    }

    /// Whether the reader has gone away.
    pub fn closed(&self) -> bool {
        self.closed
    }

    fn quiet<T>(&mut self, result: io::Result<T>, instead: T) -> io::Result<T> {
        match result {
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(instead)
            }
            other => other,
        }
    }
}

impl<W: Write> Write for QuietPipe<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let result = self.inner.write(buf);
        self.quiet(result, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.inner.flush();
        self.quiet(result, ())
    }
}

/// Buffered standard output, quiet about a closed pipe. Flush it at the end:
/// what is still buffered when it is dropped is written, but an error then
/// goes unseen.
pub fn stdout() -> QuietPipe<BufWriter<StdoutLock<'static>>> {
    QuietPipe::new(BufWriter::new(io::stdout().lock()))
}

/// Writes a whole report to standard output (see [`stdout`]).
pub fn emit(text: &str) -> io::Result<()> {
    let mut out = stdout();
    out.write_all(text.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// A reader that is gone: a child that exits at once, its stdin a pipe.
    fn pipe_without_reader() -> std::process::ChildStdin {
        let mut child = Command::new("true")
            .stdin(Stdio::piped())
            .spawn()
            .expect("true runs");
        let stdin = child.stdin.take().unwrap();
        child.wait().unwrap();
        stdin
    }

    #[test]
    fn a_closed_pipe_ends_the_output_quietly() {
        let mut raw = pipe_without_reader();
        let page = vec![b'x'; 1 << 20];
        let e = raw.write_all(&page).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "the test's premise");

        let mut out = QuietPipe::new(BufWriter::new(pipe_without_reader()));
        for _ in 0..4 {
            out.write_all(&page).unwrap();
        }
        out.write_all(b"more").unwrap();
        out.flush().unwrap();
        assert!(out.closed());
    }

    #[test]
    fn other_errors_are_still_errors() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(ErrorKind::StorageFull, "full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = QuietPipe::new(Full);
        assert!(out.write_all(b"x").is_err());
        assert!(!out.closed());
    }

    #[test]
    fn an_open_pipe_gets_everything() {
        let mut out = QuietPipe::new(Vec::new());
        out.write_all(b"report\n").unwrap();
        out.flush().unwrap();
        assert_eq!(out.inner, b"report\n");
    }
}
