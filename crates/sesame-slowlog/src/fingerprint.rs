//! pt-query-digest's query fingerprint and query ID, byte for byte.
//!
//! This is `QueryRewriter::fingerprint` of percona-toolkit 3.x (the one in
//! Debian's `pt-query-digest`), one hand-written pass per Perl substitution,
//! in the same order and with the same quirks (a `--` inside a number is a
//! comment, `ASC` is dropped only in the first `ORDER BY` chain, only the
//! first `LIMIT` is unified, ...). Queries are bytes: like Perl without
//! `use utf8`, only ASCII is lowercased and `\s`/`\w` are ASCII classes.
//! Regexes would be shorter but several times slower, and the digest spends
//! most of its time here.

use md5::{Digest, Md5};
use memchr::memmem::Finder;
use memchr::{memchr, memchr2};
use std::sync::LazyLock;

/// The query ID pt-query-digest 3.x prints: the MD5 of the fingerprint in
/// upper-case hex (pt-query-digest 2.x printed only the last 16 digits).
pub fn checksum(fingerprint: &[u8]) -> String {
    Md5::digest(fingerprint)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Perl's `\s` on a byte string.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Perl's `\w` on a byte string.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `\b` before position `i` of a word that starts with a word character.
fn word_starts_at(s: &[u8], i: usize) -> bool {
    i == 0 || !is_word(s[i - 1])
}

fn skip_spaces(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    i
}

/// Reusable scratch buffers, so fingerprinting allocates nothing per query.
#[derive(Default)]
pub struct Fingerprinter {
    cur: Vec<u8>,
    next: Vec<u8>,
}

/// Searchers built once: building one per call costs more than the search.
static BLOCK_OPEN: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"/*"));
static BLOCK_CLOSE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"*/"));
static NULL: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"null"));
static UNION: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"union"));
static LIMIT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"limit ?"));
static ORDER_BY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"order by "));

impl Fingerprinter {
    pub fn fingerprint(&mut self, query: &[u8]) -> &[u8] {
        self.cur.clear();
        if query.starts_with(b"SELECT /*!40001 SQL_NO_CACHE */ * FROM `") {
            self.cur.extend_from_slice(b"mysqldump");
        } else if has_toolkit_comment(query) {
            self.cur.extend_from_slice(b"percona-toolkit");
        } else if query.starts_with(b"administrator command: ") {
            self.cur.extend_from_slice(query);
        } else if let Some(call) = call_prefix(query) {
            self.cur.extend(call.iter().map(u8::to_ascii_lowercase));
        } else {
            self.cur.extend_from_slice(shorten_multi_row_insert(query));
            self.abstract_query();
        }
        &self.cur
    }

    /// Runs `step(cur) -> next`; a step returns false when it would change
    /// nothing (and then may leave `next` half written).
    fn pass(&mut self, step: impl FnOnce(&[u8], &mut Vec<u8>) -> bool) {
        self.next.clear();
        if step(&self.cur, &mut self.next) {
            std::mem::swap(&mut self.cur, &mut self.next);
        }
    }

    fn abstract_query(&mut self) {
        self.pass(strip_block_comments);
        self.pass(strip_line_comments);
        if let Some(use_db) = abstract_use(&self.cur) {
            self.cur = use_db;
            return;
        }
        self.pass(strip_escaped_quotes);
        self.pass(|s, out| replace_quoted(s, out, b'"'));
        self.pass(|s, out| replace_quoted(s, out, b'\''));
        self.pass(replace_booleans);
        self.pass(replace_numbers);
        self.pass(fold_number_prefixes);
        self.pass(squeeze_and_lowercase);
        self.pass(replace_nulls);
        self.pass(collapse_lists);
        self.pass(collapse_unions);
        self.pass(unify_first_limit);
        self.pass(drop_order_by_asc);
    }
}

/// A key such that queries with equal keys have equal fingerprints, much
/// cheaper to compute than the fingerprint: the query with each run of
/// digits replaced by 0x01 and the contents of simple single-quoted strings
/// by 0x02. Digit runs always end up inside one `?` (or one word) whatever
/// their length; a string's contents vanish with it when nothing before the
/// string pass could look inside (no `/*`, `"` or `\\` in the query; no
/// `#`, `--`, `(`, `)` or line break in the string). Only the first row of
/// a multi-row INSERT counts: the fingerprint drops the others first.
/// Returns false for queries whose fingerprint keeps digits verbatim (CALL,
/// administrator commands, toolkit comments), for `use` (a space in a
/// string matters there) and for queries that contain the marker bytes.
pub fn cache_key(query: &[u8], key: &mut Vec<u8>) -> bool {
    key.clear();
    if BLOCK_OPEN.find(query).is_some()
        || query.starts_with(b"administrator command: ")
        || starts_with_ci(query, b"use ")
        || call_prefix(query).is_some()
    {
        return false;
    }
    let query = shorten_multi_row_insert(query);
    let plain_quotes = memchr2(b'"', b'\\', query).is_none();
    let special = |b: u8| b.is_ascii_digit() || b == 1 || b == 2 || (b == b'\'' && plain_quotes);
    let mut i = 0;
    while i < query.len() {
        // Bytes that stand for themselves are copied a run at a time.
        let run = query[i..]
            .iter()
            .position(|&b| special(b))
            .unwrap_or(query.len() - i);
        key.extend_from_slice(&query[i..i + run]);
        i += run;
        match query.get(i) {
            None => break,
            Some(1 | 2) => return false,
            Some(b'\'') => {
                let Some(len) = memchr(b'\'', &query[i + 1..]) else {
                    key.extend_from_slice(&query[i..]);
                    break;
                };
                let contents = &query[i + 1..i + 1 + len];
                let vanishes = !contents
                    .iter()
                    .any(|b| matches!(b, b'#' | b'(' | b')' | b'\n' | b'\r'))
                    && !contents.windows(2).any(|w| w == b"--");
                if vanishes {
                    key.extend_from_slice(b"'\x02'");
                } else {
                    key.extend_from_slice(&query[i..i + 2 + len]);
                }
                i += len + 2;
            }
            Some(_) => {
                key.push(1);
                i += 1 + query[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
            }
        }
    }
    true
}

/// `m#/\*\w+\.\w+:[0-9]/[0-9]\*/#`: percona-toolkit's own queries.
fn has_toolkit_comment(q: &[u8]) -> bool {
    BLOCK_OPEN.find_iter(q).any(|p| {
        let word_run = |i: usize| {
            q[i.min(q.len())..]
                .iter()
                .take_while(|b| is_word(**b))
                .count()
        };
        let mut i = p + 2;
        let w = word_run(i);
        if w == 0 || q.get(i + w) != Some(&b'.') {
            return false;
        }
        i += w + 1;
        let w = word_run(i);
        if w == 0 {
            return false;
        }
        i += w;
        let rest = &q[i..];
        rest.len() >= 6
            && rest[0] == b':'
            && rest[1].is_ascii_digit()
            && rest[2] == b'/'
            && rest[3].is_ascii_digit()
            && &rest[4..6] == b"*/"
    })
}

/// `\A\s*(call\s+\S+)\(` (case-insensitive): a stored procedure call is
/// fingerprinted as `call name`.
fn call_prefix(q: &[u8]) -> Option<&[u8]> {
    let start = skip_spaces(q, 0);
    if !starts_with_ci(&q[start..], b"call") {
        return None;
    }
    let name = skip_spaces(q, start + 4);
    if name == start + 4 {
        return None;
    }
    let run_end = name + q[name..].iter().take_while(|b| !is_space(**b)).count();
    if run_end == name {
        return None;
    }
    // \S+ is greedy: the `(` is the last one of the run, after one byte at least.
    let paren = q[name + 1..run_end].iter().rposition(|&b| b == b'(')?;
    Some(&q[start..name + 1 + paren])
}

/// `\A((?:INSERT|REPLACE)(?: IGNORE)?\s+INTO.+?VALUES\s*\(.*?\))\s*,\s*\(`
/// (case-insensitive, `.` matches newlines): keep only the first row.
fn shorten_multi_row_insert(q: &[u8]) -> &[u8] {
    let verb = if starts_with_ci(q, b"INSERT") {
        6
    } else if starts_with_ci(q, b"REPLACE") {
        7
    } else {
        return q;
    };
    let into_after = |i: usize| {
        let j = skip_spaces(q, i);
        (j > i && starts_with_ci(&q[j..], b"INTO")).then_some(j + 4)
    };
    let ignore = starts_with_ci(&q[verb..], b" IGNORE")
        .then(|| into_after(verb + 7))
        .flatten();
    let Some(after_into) = ignore.or_else(|| into_after(verb)) else {
        return q;
    };
    let mut search = after_into + 1;
    while search < q.len() {
        let Some(values) = find_ci(&q[search..], b"VALUES").map(|v| v + search) else {
            return q;
        };
        let open = skip_spaces(q, values + 6);
        if q.get(open) == Some(&b'(') {
            // The first `)` followed by `,(` ends the first row. A later
            // VALUES could only offer a subset of these `)`, so stop here.
            let mut from = open + 1;
            while let Some(close) = memchr(b')', &q[from..]).map(|c| c + from) {
                let comma = skip_spaces(q, close + 1);
                if q.get(comma) == Some(&b',') && q.get(skip_spaces(q, comma + 1)) == Some(&b'(') {
                    return &q[..=close];
                }
                from = close + 1;
            }
            return q;
        }
        search = values + 1;
    }
    q
}

/// Case-insensitive search for an upper-case ASCII needle.
fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(at) = memchr2(*first, first.to_ascii_lowercase(), &haystack[from..]) {
        let at = from + at;
        if starts_with_ci(&haystack[at + 1..], rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// `s#/\*[^!].*?\*/##sg`: comments, but not `/*!version-specific */` code.
fn strip_block_comments(s: &[u8], out: &mut Vec<u8>) -> bool {
    let (mut copied, mut from) = (0, 0);
    while let Some(open) = BLOCK_OPEN.find(&s[from..]).map(|p| p + from) {
        if open + 2 < s.len() && s[open + 2] != b'!' {
            match BLOCK_CLOSE.find(&s[open + 3..]) {
                Some(close) => {
                    out.extend_from_slice(&s[copied..open]);
                    copied = open + 3 + close + 2;
                    from = copied;
                    continue;
                }
                // No later comment can be closed either.
                None => break,
            }
        }
        from = open + 1;
    }
    out.extend_from_slice(&s[copied..]);
    copied > 0
}

/// `s/(?:--|#)[^'"\r\n]*(?=[\r\n]|\Z)//g`: a one-line comment runs to the end
/// of its line, unless a quote comes first.
fn strip_line_comments(s: &[u8], out: &mut Vec<u8>) -> bool {
    let (mut copied, mut i, mut changed) = (0, 0, false);
    while let Some(found) = memchr2(b'#', b'-', &s[i..]).map(|p| p + i) {
        let marker = match s[found] {
            b'#' => 1,
            _ if s.get(found + 1) == Some(&b'-') => 2,
            _ => {
                i = found + 1;
                continue;
            }
        };
        let end = s[found + marker..]
            .iter()
            .position(|b| matches!(b, b'\'' | b'"' | b'\r' | b'\n'))
            .map_or(s.len(), |p| p + found + marker);
        if end == s.len() || matches!(s[end], b'\r' | b'\n') {
            out.extend_from_slice(&s[copied..found]);
            copied = end;
            changed = true;
        }
        // Every start before `end` ends at the same place: skip them.
        i = end;
    }
    out.extend_from_slice(&s[copied..]);
    changed
}

/// `s/\Ause \S+\Z/use ?/i`, which also ends fingerprinting.
fn abstract_use(s: &[u8]) -> Option<Vec<u8>> {
    if !starts_with_ci(s, b"use ") {
        return None;
    }
    let rest = &s[4..];
    let (db, newline) = match rest.strip_suffix(b"\n") {
        Some(db) => (db, true),
        None => (rest, false),
    };
    if db.is_empty() || db.iter().any(|b| is_space(*b)) {
        return None;
    }
    let mut out = b"use ?".to_vec();
    if newline {
        out.push(b'\n');
    }
    Some(out)
}

/// `s/\\["']//g`
fn strip_escaped_quotes(s: &[u8], out: &mut Vec<u8>) -> bool {
    let (mut copied, mut from) = (0, 0);
    while let Some(bs) = memchr(b'\\', &s[from..]).map(|p| p + from) {
        if matches!(s.get(bs + 1), Some(b'"' | b'\'')) {
            out.extend_from_slice(&s[copied..bs]);
            copied = bs + 2;
            from = bs + 2;
        } else {
            from = bs + 1;
        }
    }
    out.extend_from_slice(&s[copied..]);
    copied > 0
}

/// `s/".*?"/?/sg` and `s/'.*?'/?/sg`
fn replace_quoted(s: &[u8], out: &mut Vec<u8>, quote: u8) -> bool {
    let mut copied = 0;
    while let Some(open) = memchr(quote, &s[copied..]).map(|p| p + copied) {
        let Some(close) = memchr(quote, &s[open + 1..]).map(|p| p + open + 1) else {
            break;
        };
        out.extend_from_slice(&s[copied..open]);
        out.push(b'?');
        copied = close + 1;
    }
    out.extend_from_slice(&s[copied..]);
    copied > 0
}

/// `s/\bfalse\b|\btrue\b/?/isg`
fn replace_booleans(s: &[u8], out: &mut Vec<u8>) -> bool {
    let (mut copied, mut i) = (0, 0);
    // `| 0x20` folds T and F to t and f (and nothing else onto them).
    while let Some(at) = s[i..].iter().position(|b| matches!(b | 0x20, b't' | b'f')) {
        let at = at + i;
        let len = if s[at] | 0x20 == b't' { 4 } else { 5 };
        let word = if len == 4 { &b"true"[..] } else { b"false" };
        if word_starts_at(s, at)
            && starts_with_ci(&s[at..], word)
            && s.get(at + len).is_none_or(|b| !is_word(*b))
        {
            out.extend_from_slice(&s[copied..at]);
            out.push(b'?');
            copied = at + len;
            i = copied;
        } else {
            i = at + 1;
        }
    }
    out.extend_from_slice(&s[copied..]);
    copied > 0
}

/// `s/[0-9+-][0-9a-f.xb+-]*/?/g`
fn replace_numbers(s: &[u8], out: &mut Vec<u8>) -> bool {
    let is_start = |b: &u8| b.is_ascii_digit() || *b == b'+' || *b == b'-';
    let is_part = |b: &u8| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'.' | b'x' | b'+' | b'-');
    let (mut copied, mut i) = (0, 0);
    while let Some(at) = s[i..].iter().position(is_start) {
        let at = at + i;
        out.extend_from_slice(&s[copied..at]);
        out.push(b'?');
        copied = at + 1 + s[at + 1..].iter().take_while(|b| is_part(b)).count();
        i = copied;
    }
    out.extend_from_slice(&s[copied..]);
    copied > 0
}

/// `s/[xb.+-]\?/?/g`: each `?` swallows such a byte before it.
fn fold_number_prefixes(s: &[u8], out: &mut Vec<u8>) -> bool {
    let (mut copied, mut changed) = (0, false);
    for at in memchr::memchr_iter(b'?', s) {
        if at > copied && matches!(s[at - 1], b'x' | b'b' | b'.' | b'+' | b'-') {
            out.extend_from_slice(&s[copied..at - 1]);
            copied = at;
            changed = true;
        }
    }
    out.extend_from_slice(&s[copied..]);
    changed
}

/// `s/\A\s+//; chomp; tr[ \n\t\r\f][ ]s; lc`
fn squeeze_and_lowercase(s: &[u8], out: &mut Vec<u8>) -> bool {
    let start = skip_spaces(s, 0);
    let mut end = s.len();
    if end > start && s[end - 1] == b'\n' {
        end -= 1;
    }
    let s = &s[start..end];
    let is_squeezed = |b: u8| matches!(b, b' ' | b'\n' | b'\t' | b'\r' | 0x0c);
    let mut copied = 0;
    let mut i = 0;
    while let Some(at) = s[i..].iter().position(|&b| is_squeezed(b)) {
        let at = at + i;
        let run = s[at..].iter().take_while(|&&b| is_squeezed(b)).count();
        if run > 1 || s[at] != b' ' {
            out.extend_from_slice(&s[copied..at]);
            out.push(b' ');
            copied = at + run;
        }
        i = at + run;
    }
    out.extend_from_slice(&s[copied..]);
    out.make_ascii_lowercase();
    true
}

/// `s/\bnull\b/?/g`
fn replace_nulls(s: &[u8], out: &mut Vec<u8>) -> bool {
    let mut copied = 0;
    for at in NULL.find_iter(s) {
        if at >= copied && word_starts_at(s, at) && s.get(at + 4).is_none_or(|b| !is_word(*b)) {
            out.extend_from_slice(&s[copied..at]);
            out.push(b'?');
            copied = at + 4;
        }
    }
    out.extend_from_slice(&s[copied..]);
    copied > 0
}

/// `s/\b(in|values?)(?:[\s,]*\([\s?,]*\))+/$1(?+)/g`
fn collapse_lists(s: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr(b'(', s).is_none() {
        return false;
    }
    let (mut copied, mut i) = (0, 0);
    let mut changed = false;
    while let Some(at) = memchr2(b'i', b'v', &s[i..]).map(|p| p + i) {
        i = at + 1;
        if !word_starts_at(s, at) {
            continue;
        }
        let keyword = [&b"in"[..], b"values", b"value"]
            .into_iter()
            .find(|k| s[at..].starts_with(k));
        let Some(keyword) = keyword else { continue };
        if let Some(end) = placeholder_lists_end(s, at + keyword.len()) {
            out.extend_from_slice(&s[copied..at]);
            out.extend_from_slice(keyword);
            out.extend_from_slice(b"(?+)");
            copied = end;
            i = end;
            changed = true;
        }
    }
    out.extend_from_slice(&s[copied..]);
    changed
}

/// End of `(?:[\s,]*\([\s?,]*\))+` starting at `i`, if it matches.
fn placeholder_lists_end(s: &[u8], mut i: usize) -> Option<usize> {
    let mut end = None;
    loop {
        let mut j = i;
        while j < s.len() && (is_space(s[j]) || s[j] == b',') {
            j += 1;
        }
        if s.get(j) != Some(&b'(') {
            return end;
        }
        j += 1;
        while j < s.len() && (is_space(s[j]) || s[j] == b'?' || s[j] == b',') {
            j += 1;
        }
        if s.get(j) != Some(&b')') {
            return end;
        }
        i = j + 1;
        end = Some(i);
    }
}

/// `s/\b(select\s.*?)(?:(\sunion(?:\sall)?)\s\1)+/$1 \/*repeat$2*\//g`
fn collapse_unions(s: &[u8], out: &mut Vec<u8>) -> bool {
    if UNION.find(s).is_none() {
        return false;
    }
    let mut i = 0;
    'scan: while i < s.len() {
        if s[i..].starts_with(b"select")
            && word_starts_at(s, i)
            && s.get(i + 6).is_some_and(|b| is_space(*b))
        {
            // `.*?` is lazy: try the shortest first select, growing up to a newline.
            let limit = memchr(b'\n', &s[i + 7..]).map_or(s.len(), |p| p + i + 7);
            for end in i + 7..=limit {
                let first = &s[i..end];
                let (mut at, mut last_union) = (end, None);
                while let Some((union, next)) = repeated_select(s, at, first) {
                    last_union = Some(union);
                    at = next;
                }
                if let Some(union) = last_union {
                    out.extend_from_slice(first);
                    out.extend_from_slice(b" /*repeat");
                    out.extend_from_slice(union);
                    out.extend_from_slice(b"*/");
                    i = at;
                    continue 'scan;
                }
            }
        }
        out.push(s[i]);
        i += 1;
    }
    true
}

/// `(\sunion(?:\sall)?)\s\1` at `at`: the union text and the end of the match.
fn repeated_select<'a>(s: &'a [u8], at: usize, first: &[u8]) -> Option<(&'a [u8], usize)> {
    if !(s.get(at).is_some_and(|b| is_space(*b)) && s[at + 1..].starts_with(b"union")) {
        return None;
    }
    let union_end = at + 6;
    let followed_by_first =
        |i: usize| s.get(i).is_some_and(|b| is_space(*b)) && s[i + 1..].starts_with(first);
    let with_all =
        s.get(union_end).is_some_and(|b| is_space(*b)) && s[union_end + 1..].starts_with(b"all");
    if with_all && followed_by_first(union_end + 4) {
        return Some((&s[at..union_end + 4], union_end + 5 + first.len()));
    }
    followed_by_first(union_end).then(|| (&s[at..union_end], union_end + 1 + first.len()))
}

/// `s/\blimit \?(?:, ?\?| offset \?)?/limit ?/`: the first one only.
fn unify_first_limit(s: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(at) = LIMIT.find_iter(s).find(|&at| word_starts_at(s, at)) else {
        return false;
    };
    let rest = &s[at + 7..];
    let extra = [&b", ?"[..], b",?", b" offset ?"]
        .iter()
        .find(|form| rest.starts_with(form))
        .map_or(0, |form| form.len());
    out.extend_from_slice(&s[..at + 7]);
    out.extend_from_slice(&rest[extra..]);
    extra > 0
}

/// `if (m/\bORDER BY /gi) { 1 while s/\G(.+?)\s+ASC/$1/gi && pos }`: from the
/// first ORDER BY, drop `ASC` as long as each one follows the previous.
fn drop_order_by_asc(s: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(at) = ORDER_BY.find_iter(s).find(|&at| word_starts_at(s, at)) else {
        return false;
    };
    let mut pos = at + 9;
    out.extend_from_slice(&s[..pos]);
    let mut changed = false;
    while let Some((kept_end, asc_end)) = next_asc(s, pos) {
        out.extend_from_slice(&s[pos..kept_end]);
        pos = asc_end;
        changed = true;
    }
    out.extend_from_slice(&s[pos..]);
    changed
}

/// `(.+?)\s+ASC` at `pos` (`.` stops at a newline).
fn next_asc(s: &[u8], pos: usize) -> Option<(usize, usize)> {
    for k in pos + 1..s.len() {
        if s[k - 1] == b'\n' {
            return None;
        }
        if is_space(s[k]) {
            let asc = skip_spaces(s, k);
            if starts_with_ci(&s[asc..], b"asc") {
                return Some((k, asc + 3));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
