//! The MySQL slow-log parser of `sesame slowlog`: arbitrary bytes as a log
//! chunk, split into entries, each query fingerprinted. Must never panic.
//! Also checks the fingerprint cache's promise: queries with equal
//! `cache_key`s have equal fingerprints (here: a query and the same query
//! with every digit run rewritten).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame_slowlog::fingerprint::{cache_key, Fingerprinter};
use sesame_slowlog::parse::{for_each_entry, parse_decimal, record_boundary, Parsed};

fuzz_target!(|data: &[u8]| {
    if let Some(end) = record_boundary(data) {
        assert!(
            end <= data.len(),
            "boundary {end} past the chunk ({})",
            data.len()
        );
    }
    let _ = parse_decimal(data);
    let mut fp = Fingerprinter::default();
    let mut fp2 = Fingerprinter::default();
    let (mut key, mut key2) = (Vec::new(), Vec::new());
    for file_start in [true, false] {
        for_each_entry(data, file_start, &mut |parsed| {
            let entry = match parsed {
                Parsed::Entry(e) | Parsed::NoQuery(e) => e,
            };
            let query = entry.query;
            let fingerprint = fp.fingerprint(query).to_vec();
            if cache_key(query, &mut key) {
                let rewritten = rewrite_digits(query);
                if cache_key(&rewritten, &mut key2) && key == key2 {
                    assert_eq!(
                        String::from_utf8_lossy(&fingerprint),
                        String::from_utf8_lossy(fp2.fingerprint(&rewritten)),
                        "equal cache keys, different fingerprints: {:?} vs {:?}",
                        String::from_utf8_lossy(query),
                        String::from_utf8_lossy(&rewritten),
                    );
                }
            }
        });
    }
});

/// The query with each run of ASCII digits replaced by `90210`.
fn rewrite_digits(query: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(query.len() + 8);
    let mut in_digits = false;
    for &b in query {
        if b.is_ascii_digit() {
            if !in_digits {
                out.extend_from_slice(b"90210");
            }
            in_digits = true;
        } else {
            out.push(b);
            in_digits = false;
        }
    }
    out
}
