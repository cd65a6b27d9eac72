//! The test helpers themselves: a child test really gets the standard input
//! it is given, and really writes to a closed pipe.

use sesame_toolkit::testing::{gzip, with_stdin, with_stdout_closed};
use std::io::{Read, Write};

#[test]
fn a_child_test_reads_the_given_standard_input() {
    let input = gzip(&b"line\n".repeat(100_000));
    with_stdin(
        "a_child_test_reads_the_given_standard_input",
        &input,
        || {
            let mut read = Vec::new();
            std::io::stdin().read_to_end(&mut read).unwrap();
            assert_eq!(read, gzip(&b"line\n".repeat(100_000)));
        },
    );
}

#[test]
fn a_child_test_writes_to_a_closed_pipe() {
    with_stdout_closed("a_child_test_writes_to_a_closed_pipe", || {
        let mut raw = std::io::stdout().lock();
        let e = raw.write_all(&[b'x'; 1 << 20]).and_then(|()| raw.flush());
        let quiet = sesame_toolkit::output::emit(&"y".repeat(1 << 20));
        e.is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) && quiet.is_ok()
    });
}
