//! Slow log entries, split the way pt-query-digest's SlowLogParser splits
//! them, so that both tools see the same queries.
//!
//! MySQL and MariaDB end every logged statement with `;\n` and start every
//! header line with `#`, so `;\n#` separates entries (pt-query-digest reads
//! with exactly this record separator). In an entry, header lines (`#...`,
//! `use db;`, `SET timestamp=...;`) come first; the query is everything from
//! the first other line to the end of the entry. Both formats are covered:
//!
//! ```text
//! # Time: 2026-11-26T06:42:11.123456Z                 (MySQL 8; MariaDB: 261126  6:42:11)
//! # User@Host: app[app] @ localhost [127.0.0.1]  Id: 8
//! # Thread_id: 4  Schema: sesame  QC_hit: No          (MariaDB)
//! # Query_time: 0.000142  Lock_time: 0.000040  Rows_sent: 1  Rows_examined: 1
//! # Rows_affected: 0  Bytes_sent: 180                 (MariaDB)
//! use sesame;
//! SET timestamp=1795675331;
//! select * from users where username='alice';
//! ```

use memchr::{memchr, memmem};

pub const SEPARATOR: &[u8] = b";\n#";

/// The attributes sesame aggregates, in report order.
pub const METRICS: [&str; 5] = [
    "Query_time",
    "Lock_time",
    "Rows_sent",
    "Rows_examined",
    "Rows_affected",
];
pub const QUERY_TIME: usize = 0;
pub const LOCK_TIME: usize = 1;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Entry<'a> {
    pub query: &'a [u8],
    /// Indexed like [`METRICS`]; `None` where the header lacks it.
    pub metrics: [Option<f64>; 5],
    /// Unix seconds, from `SET timestamp=`.
    pub timestamp: Option<i64>,
    /// The `# User@Host:` line after the label.
    pub user_host: Option<&'a [u8]>,
    pub db: Option<&'a [u8]>,
    /// A header value that is not a number (the attribute is left out).
    pub bad_value: bool,
}

/// Calls `on_entry` for each entry of a chunk of whole entries (see
/// [`record_boundary`]). `file_start`: the chunk starts a file, whose first
/// entry may begin with the server's banner instead of `#`.
pub fn for_each_entry(chunk: &[u8], file_start: bool, on_entry: &mut impl FnMut(Parsed<'_>)) {
    let mut rest = chunk;
    let mut first = file_start;
    while !rest.is_empty() {
        let (record, next) = match memmem::find(rest, SEPARATOR) {
            Some(at) => (&rest[..at], &rest[at + 2..]),
            None => (
                rest.strip_suffix(b";\n").unwrap_or(rest),
                &rest[rest.len()..],
            ),
        };
        rest = next;
        // pt-query-digest prefixes `#` to a first entry that lacks it, which
        // turns its first line (the banner, or a partial entry) into a header.
        let skip_first_line = std::mem::take(&mut first) && !record.starts_with(b"#");
        if has_banner(record) {
            // A server (re)start writes a banner mid-log: drop its lines and
            // split again. (pt-query-digest does this for `mysqld` only, so
            // there a MariaDB restart merges two entries into one.)
            let cleaned: Vec<u8> = record
                .split_inclusive(|&b| b == b'\n')
                .filter(|line| !is_banner_line(line))
                .flatten()
                .copied()
                .collect();
            if cleaned.len() != record.len() {
                for_each_entry(&cleaned, skip_first_line, on_entry);
                continue;
            }
        }
        on_entry(parse_entry(record, skip_first_line));
    }
}

/// The end of the last whole entry in `buf`: just after its `;\n`.
pub fn record_boundary(buf: &[u8]) -> Option<usize> {
    memmem::rfind(buf, SEPARATOR).map(|at| at + 2)
}

pub enum Parsed<'a> {
    Entry(Entry<'a>),
    /// Header lines only: nothing to aggregate.
    NoQuery,
}

fn has_banner(record: &[u8]) -> bool {
    memmem::find(record, b"Command").is_some() && memmem::find(record, b"Id").is_some()
}

fn parse_entry(text: &[u8], skip_first_line: bool) -> Parsed<'_> {
    let mut entry = Entry::default();
    let mut pos = 0;
    if skip_first_line {
        pos = memchr(b'\n', text).map_or(text.len(), |p| p + 1);
    }
    while pos < text.len() {
        let end = memchr(b'\n', &text[pos..]).map_or(text.len(), |p| pos + p);
        let line = &text[pos..end];
        if line.starts_with(b"#") {
            header_line(line, &mut entry);
        } else if let Some(db) = line.strip_prefix(b"use ") {
            entry.db.get_or_insert(db.strip_suffix(b";").unwrap_or(db));
        } else if let Some(ts) = line.strip_prefix(b"SET timestamp") {
            if let Some(ts) = ts.strip_prefix(b"=") {
                entry.timestamp = parse_int(ts.strip_suffix(b";").unwrap_or(ts));
            }
        } else if !(line.starts_with(b"SET last_insert_id") || line.starts_with(b"SET insert_id")) {
            entry.query = &text[pos..];
            return Parsed::Entry(entry);
        }
        pos = end + 1;
    }
    if entry.query.is_empty() {
        return Parsed::NoQuery;
    }
    Parsed::Entry(entry)
}

/// mysqld's start banner: `/usr/sbin/mysqld, Version: 8.0.36 (...). started
/// with:`, `Tcp port: 3306  Unix socket: ...`, `Time  Id Command  Argument`.
fn is_banner_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let words: Vec<&[u8]> = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    matches!(words.as_slice(), [b"Time", b"Id", b"Command", ..])
        || (line.len() > 9 && line[..9].eq_ignore_ascii_case(b"tcp port:"))
        || (memmem::find(line, b", Version: ").is_some()
            && (line.ends_with(b"started with:") || line.ends_with(b"embedded library")))
}

fn header_line<'a>(line: &'a [u8], entry: &mut Entry<'a>) {
    if let Some(user_host) = line.strip_prefix(b"# User@Host: ") {
        entry.user_host.get_or_insert(user_host);
        return;
    }
    if line.starts_with(b"# Time: ") {
        return;
    }
    if line.starts_with(b"# administrator command: ") {
        // MySQL logs commands such as Quit as a header line; pt-query-digest
        // groups them by the line itself.
        entry.query = &line[2..];
        return;
    }
    // `# Name: value  Name: value ...`
    let mut words = line[1..]
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|w| !w.is_empty())
        .peekable();
    while let Some(word) = words.next() {
        let Some(name) = word.strip_suffix(b":") else {
            continue;
        };
        let Some(index) = METRICS.iter().position(|m| m.as_bytes() == name) else {
            continue;
        };
        let Some(value) = words.peek() else {
            continue;
        };
        if value.ends_with(b":") {
            continue;
        }
        match parse_decimal(value) {
            Some(v) => entry.metrics[index] = Some(v),
            None => entry.bad_value = true,
        }
    }
}

fn parse_int(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// pt-query-digest's `s/^(\d+(?:\.\d+)?).*/$1/`, correctly rounded: digits
/// as an exact integer divided by an exact power of ten (strtod's fast path).
pub fn parse_decimal(s: &[u8]) -> Option<f64> {
    let int_len = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if int_len == 0 {
        return None;
    }
    let frac_len = match s.get(int_len) {
        Some(b'.') => s[int_len + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count(),
        _ => 0,
    };
    if int_len + frac_len <= 15 {
        let frac = if frac_len > 0 {
            &s[int_len + 1..int_len + 1 + frac_len]
        } else {
            &[]
        };
        let mut mantissa: u64 = 0;
        for &b in s[..int_len].iter().chain(frac) {
            mantissa = mantissa * 10 + u64::from(b - b'0');
        }
        const POW10: [f64; 16] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        ];
        return Some(mantissa as f64 / POW10[frac_len]);
    }
    let end = if frac_len > 0 {
        int_len + 1 + frac_len
    } else {
        int_len
    };
    std::str::from_utf8(&s[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_like_strtod() {
        for text in [
            "0.000218",
            "12.5",
            "3",
            "0.1",
            "123456.123456",
            "1234567890123.123456",
        ] {
            assert_eq!(
                parse_decimal(text.as_bytes()),
                text.parse::<f64>().ok(),
                "{text}"
            );
        }
        assert_eq!(parse_decimal(b"7abc"), Some(7.0));
        assert_eq!(parse_decimal(b"x"), None);
    }
}
