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

use memchr::memchr;
use memchr::memmem::{self, Finder};
use std::sync::LazyLock;

pub const SEPARATOR: &[u8] = b";\n#";
static SEPARATOR_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(SEPARATOR));
static SEMICOLON_NEWLINE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b";\n"));
static SCHEMA: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"Schema: "));
static COMMAND: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"Command"));

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
    /// MariaDB's `Schema:` header.
    pub schema: Option<&'a [u8]>,
    /// A header value that is not a number (the attribute is left out).
    pub bad_value: bool,
}

/// Calls `on_entry` for each entry of a chunk of whole entries (see
/// [`record_boundary`]). `file_start`: the chunk starts a file, whose first
/// entry may begin with the server's banner instead of `#`.
pub fn for_each_entry(chunk: &[u8], file_start: bool, on_entry: &mut impl FnMut(Parsed<'_>)) {
    let mut rest = chunk;
    // pt-query-digest prefixes `#` to an entry that lacks it (the first of a
    // file, or what follows a borrowed line, below), which turns its first
    // line (the banner, or a partial entry) into a header.
    let mut prefix_rule = file_start;
    while !rest.is_empty() {
        let (record, next) = split_record(rest);
        rest = next;
        let skip_first_line = std::mem::take(&mut prefix_rule) && !record.starts_with(b"#");
        let mut parsed = parse_entry(record, skip_first_line);
        if let (Parsed::NoQuery(entry), Some(after_hash)) = (&mut parsed, rest.get(1..)) {
            // Headers only, as MySQL writes `SET timestamp=...;` before
            // `# administrator command: Quit;`. pt-query-digest reads on
            // to the next `;\n` for the query, unless it looks like a header.
            if looks_like_header(after_hash) {
                entry.query = b"/* No query */";
            } else {
                let end = SEMICOLON_NEWLINE.find(after_hash);
                let borrowed = &after_hash[..end.unwrap_or(after_hash.len())];
                entry.query = borrowed.trim_ascii_start();
                rest = end.map_or(&[][..], |end| &after_hash[end + 2..]);
                prefix_rule = true;
            }
            parsed = Parsed::Entry(std::mem::take(entry));
        }
        // A server (re)start writes a banner mid-log, which ends up in a
        // query text of several lines: drop its lines and split again.
        // (pt-query-digest does this for `mysqld` only, so there a MariaDB
        // restart merges two entries into one.)
        let multi_line = matches!(&parsed, Parsed::Entry(e) if memchr(b'\n', e.query).is_some());
        if multi_line && has_banner(record) {
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
        on_entry(parsed);
    }
}

/// The first record of `rest` (without its `;\n`) and what follows it.
fn split_record(rest: &[u8]) -> (&[u8], &[u8]) {
    match SEPARATOR_FINDER.find(rest) {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (strip_last_end(rest), &rest[rest.len()..]),
    }
}

/// pt-query-digest's `s/;\n#?\Z//` on the last record of a file: Perl's
/// `\Z` also matches before a final newline, so a log ending in `;\n\n`
/// loses its `;\n` too (but `;\n\n\n` keeps it). (`;\n#` cannot end the
/// last record: it would have been split there.)
fn strip_last_end(record: &[u8]) -> &[u8] {
    let before_final_newline = record.strip_suffix(b"\n").unwrap_or(record);
    record
        .strip_suffix(b";\n")
        .or_else(|| before_final_newline.strip_suffix(b";\n"))
        .unwrap_or(record)
}

/// `/^\s*[A-Z][a-z_]+: /`
fn looks_like_header(text: &[u8]) -> bool {
    let text = text.trim_ascii_start();
    let name = text
        .iter()
        .skip(1)
        .take_while(|b| b.is_ascii_lowercase() || **b == b'_')
        .count();
    text.first().is_some_and(u8::is_ascii_uppercase)
        && name > 0
        && text[1 + name..].starts_with(b": ")
}

/// The end of the last whole entry in `buf`, just after its `;\n`, such
/// that the next chunk does not start with what an entry without a query
/// borrows its query from (see [`for_each_entry`]).
pub fn record_boundary(buf: &[u8]) -> Option<usize> {
    let mut end = buf.len();
    loop {
        let separator = memmem::rfind(&buf[..end], SEPARATOR)?;
        let start = memmem::rfind(&buf[..separator], SEPARATOR).map_or(0, |p| p + 2);
        if matches!(parse_entry(&buf[start..separator], false), Parsed::Entry(_)) {
            return Some(separator + 2);
        }
        end = separator;
    }
}

pub enum Parsed<'a> {
    Entry(Entry<'a>),
    /// Header lines only, nothing to borrow a query from: not aggregated.
    NoQuery(Entry<'a>),
}

fn has_banner(record: &[u8]) -> bool {
    COMMAND.find(record).is_some() && memmem::find(record, b"Id").is_some()
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
        return Parsed::NoQuery(entry);
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
    if let Some(thread) = line.strip_prefix(b"# Thread_id: ") {
        // MariaDB names the default database here; `use db;` (MySQL) wins.
        if let Some(at) = SCHEMA.find(thread) {
            let schema = &thread[at + 8..];
            let len = schema
                .iter()
                .take_while(|b| !b.is_ascii_whitespace())
                .count();
            if len > 0 && !schema[..len].ends_with(b":") {
                entry.schema = Some(&schema[..len]);
            }
        }
        return;
    }
    if line.starts_with(b"# administrator command: ") {
        // MySQL logs commands such as Quit as a header line; pt-query-digest
        // groups them by the line itself.
        entry.query = &line[2..];
        return;
    }
    // `# Name: value  Name: value ...`; only `# Query_time:` (MySQL, MariaDB,
    // Percona) and `# Rows_affected:` (MariaDB) lines hold what we keep.
    if !matches!(line.get(2), Some(b'Q' | b'R' | b'L')) {
        return;
    }
    let mut rest = &line[1..];
    while let Some(colon) = memchr(b':', rest) {
        let name_start = rest[..colon]
            .iter()
            .rposition(|&b| b == b' ' || b == b'\t')
            .map_or(0, |p| p + 1);
        let name = &rest[name_start..colon];
        let after = &rest[colon + 1..];
        let value_start = after
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(after.len());
        let value_len = after[value_start..]
            .iter()
            .position(|&b| b == b' ' || b == b'\t')
            .unwrap_or(after.len() - value_start);
        let value = &after[value_start..value_start + value_len];
        if let Some(index) = metric_index(name) {
            // `Schema:   QC_hit: No` (an empty value) is not `Schema: QC_hit:`.
            if !value.is_empty() && !value.ends_with(b":") {
                match parse_decimal(value) {
                    Some(v) => entry.metrics[index] = Some(v),
                    None => entry.bad_value = true,
                }
            }
        }
        rest = if value.ends_with(b":") {
            &after[value_start..]
        } else {
            &after[value_start + value_len..]
        };
    }
}

fn metric_index(name: &[u8]) -> Option<usize> {
    Some(match name {
        b"Query_time" => 0,
        b"Lock_time" => 1,
        b"Rows_sent" => 2,
        b"Rows_examined" => 3,
        b"Rows_affected" => 4,
        _ => return None,
    })
}

fn parse_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, &d| n * 10 + i64::from(d - b'0')))
}

/// A header value, or `None` if it fails pt-query-digest's number check
/// (`^(?:\d+|[+-]?\d+\.\d*(?:E[+-]?\d+)?)$`, case-insensitive): `1.2.3`,
/// `0.5s` or `fast` are bad values, not their numeric prefix.
///
/// The value is pt-query-digest's `s/^(\d+(?:\.\d+)?).*/$1/` (an exponent
/// is ignored, as pt-query-digest ignores it for Query_time; a signed value
/// is read whole), correctly rounded: digits as an exact integer divided by
/// an exact power of ten (strtod's fast path).
pub fn parse_decimal(s: &[u8]) -> Option<f64> {
    let int_len = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if int_len == 0 {
        // Only `[+-]\d+\.` forms may be signed; MySQL never writes them.
        return match s.first() {
            Some(b'+' | b'-') if number_end(&s[1..], true) == Some(s.len() - 1) => {
                std::str::from_utf8(s).ok()?.parse().ok()
            }
            _ => None,
        };
    }
    let frac_len = match s.get(int_len) {
        Some(b'.') => s[int_len + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count(),
        _ => 0,
    };
    // The common case, `\d+` or `\d+\.\d+`, ends here; anything else is
    // checked in full.
    let end = if frac_len > 0 {
        int_len + 1 + frac_len
    } else {
        int_len
    };
    if end != s.len() && number_end(s, false) != Some(s.len()) {
        return None;
    }
    if int_len + frac_len <= 15 {
        let frac = if frac_len > 0 {
            &s[int_len + 1..end]
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
    std::str::from_utf8(&s[..end]).ok()?.parse().ok()
}

/// Where the number at the start of `s` ends: `\d+` (unless `need_dot`) or
/// `\d+\.\d*(?:[eE][+-]?\d+)?`.
fn number_end(s: &[u8], need_dot: bool) -> Option<usize> {
    let digits = |from: usize| s[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let int_len = digits(0);
    if int_len == 0 {
        return None;
    }
    if s.get(int_len) != Some(&b'.') {
        return (!need_dot).then_some(int_len);
    }
    let end = int_len + 1 + digits(int_len + 1);
    if !matches!(s.get(end), Some(b'e' | b'E')) {
        return Some(end);
    }
    let sign = usize::from(matches!(s.get(end + 1), Some(b'+' | b'-')));
    match digits(end + 1 + sign) {
        0 => Some(end),
        exp_len => Some(end + 1 + sign + exp_len),
    }
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
        assert_eq!(parse_decimal(b"x"), None);
    }

    #[test]
    fn values_that_fail_pt_query_digests_number_check_are_bad() {
        for bad in [
            "7abc",
            "1.2.3",
            "0.5s",
            "99999999.5s",
            "fast",
            "",
            ".5",
            "-3",
            "1e5",
            "1.5e",
            "1.5e+",
            "0x10",
            "1,5",
            "+",
            "-.5",
        ] {
            assert_eq!(parse_decimal(bad.as_bytes()), None, "{bad:?}");
        }
        // What passes is read as pt-query-digest reads Query_time.
        for (good, value) in [
            ("12", 12.0),
            ("1.", 1.0),
            ("0.000218", 0.000218),
            ("1.5e3", 1.5),
            ("2.5E-2", 2.5),
            ("-1.5", -1.5),
            ("+2.", 2.0),
            ("-1.5e1", -15.0),
            ("12345678901234567.25", 12345678901234567.25),
        ] {
            assert_eq!(parse_decimal(good.as_bytes()), Some(value), "{good:?}");
        }
    }
}
