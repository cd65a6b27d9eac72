use super::*;

fn fp(q: &str) -> String {
    String::from_utf8(Fingerprinter::default().fingerprint(q.as_bytes()).to_vec()).unwrap()
}

// Expected values come from Debian's pt-query-digest 3.2.1, run on a
// slow log holding each query (`--output json`, field `fingerprint`).
#[test]
fn matches_pt_query_digest() {
    let cases: &[(&str, &str)] = &[
        (
            "SELECT * FROM users WHERE username = 'alice'",
            "select * from users where username = ?",
        ),
        (
            "select * from users where username = \"bob\"",
            "select * from users where username = ?",
        ),
        (
            "SELECT id FROM users WHERE id IN (1, 2, 3)",
            "select id from users where id in(?+)",
        ),
        (
            "SELECT * FROM users WHERE id = 1 LIMIT 5, 10",
            "select * from users where id = ? limit ?",
        ),
        (
            "SELECT * FROM t LIMIT 10 OFFSET 20",
            "select * from t limit ?",
        ),
        (
            "insert into users(username,hash) values ('alice','x'),('bob','y')",
            "insert into users(username,hash) values(?+)",
        ),
        (
            "INSERT IGNORE INTO s (a, b) VALUES (1, 'x'), (2, 'y')",
            "insert ignore into s (a, b) values(?+)",
        ),
        (
            "REPLACE INTO s VALUES (NOW(), 1)",
            "replace into s values (now(), ?)",
        ),
        ("SELECT /* app=login */ 1", "select ?"),
        (
            "SELECT /*!40001 SQL_NO_CACHE */ 1",
            "select /*!? sql_no_cache */ ?",
        ),
        ("SELECT a -- trailing\nFROM t", "select a from t"),
        ("SELECT a # hash comment\nFROM t", "select a from t"),
        ("select '#' from t", "select ? from t"),
        (
            "SELECT a FROM t WHERE b = TRUE AND c = false",
            "select a from t where b = ? and c = ?",
        ),
        (
            "SELECT a FROM t WHERE b IS NULL",
            "select a from t where b is ?",
        ),
        ("SELECT * FROM t1 JOIN t2", "select * from t? join t?"),
        ("SELECT 0xFF, 1.5e10, -3, b'101'", "select ?ff, ?, ?, ?"),
        (
            "select a from t order by a asc, b asc",
            "select a from t order by a, b",
        ),
        (
            "select a from t order by a desc, b asc, c asc",
            "select a from t order by a desc, b, c",
        ),
        (
            "select a from t union select a from t",
            "select a from t /*repeat union*/",
        ),
        (
            "select a from t union all select a from t union all select a from t",
            "select a from t /*repeat union all*/",
        ),
        ("CALL login_user(1, 'x')", "call login_user"),
        ("use sesame", "use ?"),
        ("administrator command: Quit", "administrator command: Quit"),
        (
            "SELECT /*!40001 SQL_NO_CACHE */ * FROM `users`",
            "mysqldump",
        ),
        ("  SELECT\n\t a,\r\n  b   FROM t  ", "select a, b from t "),
        (
            "SELECT * FROM t WHERE a IN ('x', 'y') AND b IN(1)",
            "select * from t where a in(?+) and b in(?+)",
        ),
        ("SELECT 'it\\'s'", "select ?"),
        (
            "DELETE FROM sessions WHERE token_hash = x'ABCD' AND expires_at < 1700000000",
            "delete from sessions where token_hash = ? and expires_at < ?",
        ),
    ];
    for (query, want) in cases {
        assert_eq!(fp(query), *want, "query: {query:?}");
    }
}

/// Queries with equal cache keys must have equal fingerprints: random
/// queries from tricky tokens, each with its digits and string
/// contents changed.
#[test]
fn equal_cache_keys_mean_equal_fingerprints() {
    let tokens: &[&str] = &[
        "SELECT",
        "select",
        " ",
        "\t",
        "\n",
        "IN",
        "in",
        "VALUES",
        "value",
        "LIMIT",
        "OFFSET",
        "ORDER BY",
        "ASC",
        "UNION",
        "ALL",
        "NULL",
        "true",
        "CALL",
        "INSERT INTO",
        "use",
        "(",
        ")",
        ",",
        ";",
        "'",
        "\"",
        "\\",
        "#",
        "--",
        "-",
        "/*",
        "*/",
        "?",
        ".",
        "+",
        "x",
        "b",
        "0x1F",
        "12",
        "3.5",
        "t1",
        "a",
        "b1",
        "=",
        "'a-b'",
        "'x,y'",
        "'q#'",
        "'('",
        "'1 2'",
        "select a from t union select a from t",
        "administrator command: ",
        "\u{e9}",
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let (mut f1, mut f2) = (Fingerprinter::default(), Fingerprinter::default());
    let (mut k1, mut k2) = (Vec::new(), Vec::new());
    let mut cached = 0;
    for _ in 0..100_000 {
        let query: String = (0..1 + next(20))
            .map(|_| tokens[next(tokens.len())])
            .collect();
        // Same shape: other digits (other lengths), other string contents.
        let mut variant = String::new();
        let mut in_string = false;
        for c in query.chars() {
            match c {
                '\'' => {
                    in_string = !in_string;
                    variant.push(c);
                }
                '0'..='9' => variant.push_str(["7", "42", "0"][next(3)]),
                _ if in_string => {
                    variant.push_str(["z", "a,b", "", "-", ". =@", "*", "/", "x y"][next(8)])
                }
                _ => variant.push(c),
            }
        }
        let q = (query.as_bytes(), variant.as_bytes());
        if cache_key(q.0, &mut k1) && cache_key(q.1, &mut k2) && k1 == k2 {
            cached += 1;
            assert_eq!(
                f1.fingerprint(q.0),
                f2.fingerprint(q.1),
                "{query:?} / {variant:?}"
            );
        }
    }
    assert!(cached > 20_000, "only {cached} variants had equal keys");
}

#[test]
fn checksum_is_upper_case_md5_of_the_fingerprint() {
    // pt-query-digest: "select * from users where username=?" has ID 0xD15F5731A6016D19FB053098E677CED7.
    assert_eq!(
        checksum(b"select * from users where username=?"),
        "D15F5731A6016D19FB053098E677CED7"
    );
}
