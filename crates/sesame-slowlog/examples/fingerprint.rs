//! Prints the fingerprint of each NUL-separated query on stdin, NUL-separated:
//! bench/fingerprint_fuzz.py feeds the same queries to pt-query-digest's own
//! code and compares.

use std::io::{Read, Write};

fn main() -> std::io::Result<()> {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    let mut fingerprinter = sesame_slowlog::fingerprint::Fingerprinter::default();
    let mut out = Vec::new();
    for query in input.split(|&b| b == 0).filter(|q| !q.is_empty()) {
        out.extend_from_slice(fingerprinter.fingerprint(query));
        out.push(0);
    }
    std::io::stdout().write_all(&out)
}
