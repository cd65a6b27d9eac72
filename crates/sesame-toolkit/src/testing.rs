//! Helpers for the tools' own tests (feature `testing`, for
//! dev-dependencies): a gzipped log, a test run with a given standard input
//! (so that `-` is tested as operators use it, through a real pipe), and one
//! whose standard output is a pipe nobody reads any more (`| head`).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

/// `data` gzipped, as logrotate leaves a log.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip into memory");
    gz.finish().expect("gzip into memory")
}

/// Names the test that a child process runs.
const CHILD: &str = "SESAME_TOOLKIT_STDIN_TEST";

/// Runs `body` with `input` on standard input. The calling test runs again
/// in a child process (the same test binary, only the test named `test`,
/// its full path as libtest lists it, e.g. `tests::reads_stdin` in a unit
/// test module), whose standard input is a pipe fed `input`; `body` runs
/// there, and its failure fails the calling test with the child's output.
///
/// ```no_run
/// #[test]
/// fn reads_standard_input() {
///     let log = b"{\"ts\":\"2026-11-26T06:00:00Z\"}\n";
///     sesame_toolkit::testing::with_stdin("reads_standard_input", log, || {
///         // read "-" here
///     });
/// }
/// ```
pub fn with_stdin(test: &str, input: &[u8], body: impl FnOnce()) {
    if std::env::var(CHILD).is_ok_and(|running| running == test) {
        body();
        return;
    }
    let mut child = rerun(test);
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    // Fed from a thread of its own: a large input would otherwise fill the
    // pipe while the child's output fills the others.
    let feeder = std::thread::spawn(move || {
        // The child may stop reading early; that is for its test to judge.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("the child test finishes");
    feeder.join().expect("the stdin feeder");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = || {
        format!(
            "child test {test}: {}\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert!(out.status.success(), "{}", report());
    assert!(
        stdout.contains("1 passed"),
        "no test named {test} ran: {}",
        report()
    );
}

/// Runs `body` with standard output a pipe whose reader has gone, as in
/// `sesame triage ... | head` once `head` has its lines; `body` answers
/// whether the command did what it should (exited with the right code), and
/// the calling test fails if not. Runs in a child process as
/// [`with_stdin`] does, which ends as soon as `body` returns: the test
/// harness could not print its own results to that pipe.
pub fn with_stdout_closed(test: &str, body: impl FnOnce() -> bool) {
    const READY: &str = "sesame-toolkit: stdout may close now";
    if std::env::var(CHILD).is_ok_and(|running| running == test) {
        println!("{READY}");
        // Until the parent has closed our stdout's reading end (and then
        // our stdin).
        let _ = std::io::stdin().read(&mut [0]);
        let ok = body();
        let _ = std::io::stderr().flush();
        std::process::exit(if ok { 0 } else { 1 });
    }
    let mut child = rerun(test);
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    while !line.contains(READY) {
        line.clear();
        let n = stdout.read_line(&mut line).expect("the child's stdout");
        assert!(
            n > 0,
            "the child test {test} never ran (is that its full name?)"
        );
    }
    drop(stdout);
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("the child test finishes");
    assert!(
        out.status.success(),
        "child test {test} with its stdout closed: {}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// This test binary again, running only `test`, told so by [`CHILD`], its
/// standard streams piped.
fn rerun(test: &str) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary runs again")
}
