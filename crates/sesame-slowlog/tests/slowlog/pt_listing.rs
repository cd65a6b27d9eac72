//! What the outside check against pt-query-digest's own sample logs found:
//! the classes pt lists, a final `;` before a blank line, header values
//! that are not numbers; and bad input (directories, binaries, cut gzip).

use super::*;

fn fingerprint_counts(report: &Value) -> BTreeMap<String, u64> {
    classes(report)
        .iter()
        .map(|c| {
            (
                c["fingerprint"].as_str().unwrap().to_string(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

// The expectations of the next four tests are pt-query-digest 3.2.1's
// (`--output json --limit 100%:10000`) on the same logs.

#[test]
fn classes_without_query_time_or_after_all_the_time_are_not_listed() {
    // Of five classes, `select ?` took 0 s and `select * from sessions ...`
    // has no Query_time: pt-query-digest lists neither.
    let log = data("no-query-time.log");
    let report = json(&[&log]);
    assert_eq!(
        fingerprint_counts(&report),
        BTreeMap::from([
            ("delete from sessions where id = ?".to_string(), 1),
            ("select id from users where username = ?".to_string(), 1),
        ])
    );
    assert_eq!(report["queries"], 5);
    assert_eq!(report["classes_total"], 4);
    assert_eq!(
        report["not_listed"],
        serde_json::json!({
            "classes_without_query_time": 1,
            "queries_without_query_time": 2,
            "classes_zero_time": 1,
            "queries_zero_time": 1,
        })
    );

    // The text report: same two classes, and says what it left out.
    let (code, text) = slowlog(&[&log]);
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(text.contains("# Query 2: ID 0x"), "{text}");
    assert!(!text.contains("# Query 3: ID 0x"), "{text}");
    assert!(!text.contains("select * from sessions"), "{text}");
    assert!(!text.contains("# Fingerprint: select ?\n"), "{text}");
    assert!(
        text.contains(
            "# Not listed: 1 class (2 queries) without Query_time, 1 class (1 query) of zero time"
        ),
        "{text}"
    );

    // Ranked otherwise, only the classes without Query_time are left out;
    // mysqldumpslow lists every statement.
    assert_eq!(classes(&json(&["-s", "c", &log])).len(), 3);
    let dumpslow = json(&["--mysqldumpslow", &log]);
    assert_eq!(classes(&dumpslow).len(), 4);
    assert_eq!(dumpslow["not_listed"]["classes_without_query_time"], 0);
}

#[test]
fn zero_time_classes_are_listed_when_the_log_took_no_time_at_all() {
    let report = json(&[&data("zero-time.log")]);
    assert_eq!(
        fingerprint_counts(&report),
        BTreeMap::from([
            ("select ?".to_string(), 1),
            ("select id from users where username = ?".to_string(), 1),
        ])
    );
    assert_eq!(report["not_listed"]["classes_without_query_time"], 1);
    assert_eq!(report["not_listed"]["classes_zero_time"], 0);

    // The running sum is compared with a total summed in the same order, so
    // rounding never decides: 0.3 + 0.2 + 0.1 is all of the time here,
    // although 0.1 + 0.2 + 0.3 (log order) is a little more. (pt-query-digest
    // compares with the sum in log order and lists `select d from t?` too.)
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rounding.log");
    let entries: String = [("0.1", "a"), ("0.2", "b"), ("0.3", "c"), ("0.0", "d")]
        .iter()
        .map(|(time, column)| {
            format!(
                "# User@Host: app[app] @ app-1 [10.0.0.1]\n\
                 # Query_time: {time}  Lock_time: 0\n\
                 SELECT {column} FROM t1;\n"
            )
        })
        .collect();
    std::fs::write(&log, entries).unwrap();
    let report = json(&[log.to_str().unwrap()]);
    assert_eq!(classes(&report).len(), 3);
    assert_eq!(report["not_listed"]["classes_zero_time"], 1);
}

#[test]
fn a_log_ending_in_a_blank_line_keeps_its_last_query_in_its_class() {
    // `select 2;\n\n` at the end of the file: pt-query-digest strips `;\n`
    // there too (Perl's `\Z` matches before a final newline).
    let report = json(&[&data("blank-line-at-end.log")]);
    assert_eq!(
        fingerprint_counts(&report),
        BTreeMap::from([("select ?".to_string(), 2)])
    );
    let class = &classes(&report)[0];
    assert_eq!(class["id"], "0x1FE1379FE2A31B8D16219655761820A2");
    let sum = class["metrics"]["Query_time"]["sum"].as_f64().unwrap();
    assert!((sum - 0.3).abs() < 1e-9, "{sum}");
    assert_eq!(class["example"], "SELECT 2");

    // Only one final newline: with two blank lines `;` stays in the query,
    // in pt-query-digest too.
    let dir = tempfile::tempdir().unwrap();
    let two = dir.path().join("two-blank-lines.log");
    let mut text = std::fs::read(data("blank-line-at-end.log")).unwrap();
    text.push(b'\n');
    std::fs::write(&two, text).unwrap();
    assert_eq!(
        fingerprint_counts(&json(&[two.to_str().unwrap()])),
        BTreeMap::from([("select ?".to_string(), 1), ("select ?; ".to_string(), 1)])
    );
}

#[test]
fn a_query_time_that_is_not_a_number_is_a_bad_value_left_out_of_the_sums() {
    // `Query_time: 1.2.3` and `Query_time: 99999999.5s` fail
    // pt-query-digest's number check (which it applies to the first value
    // only; later ones it reads by prefix: 1.2 and 99999999.5 s).
    let report = json(&[&data("query-time-not-a-number.log")]);
    assert_eq!(report["malformed"]["bad_value"], 2);
    assert_eq!(report["malformed"]["no_query_time"], 2);
    assert_eq!(
        fingerprint_counts(&report),
        BTreeMap::from([("select id from users where username = ?".to_string(), 3)])
    );
    let users = &classes(&report)[0]["metrics"]["Query_time"];
    assert!(
        (users["sum"].as_f64().unwrap() - 0.4).abs() < 1e-9,
        "{users}"
    );
    assert_eq!(users["max"], 0.3);
    assert_eq!(report["overall"]["Query_time"]["max"], 0.3);
    // The DELETE has no usable Query_time left: not listed.
    assert_eq!(report["not_listed"]["classes_without_query_time"], 1);
}

#[test]
fn a_directory_as_input_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let cli = Cli::try_parse_from(["slowlog", "--json", path]).unwrap();
    let mut out = Vec::new();
    let code = sesame_slowlog::report(&cli.args, &mut out).unwrap();
    assert_eq!(code, ExitCode::FAILURE);
    let report: Value = serde_json::from_slice(&out).unwrap();
    let error = report["files"][0]["error"].as_str().unwrap();
    assert!(error.contains(path), "{error}");
    assert!(error.contains("directory"), "{error}");

    let (code, text) = slowlog(&[path]);
    assert_eq!(code, ExitCode::FAILURE);
    let error_line = text.lines().find(|l| l.starts_with("# Error: ")).unwrap();
    assert!(error_line.contains(path), "{text}");
}

/// Terminal escape sequences (ESC [ 2 J clears the screen, OSC sets the
/// title), a C1 CSI (U+009B), bytes that are not UTF-8, a carriage return.
const NASTY: &[u8] = b"\x1b[2J\x1b]0;pwned\x07 \xc2\x9b31m \xff\xfe\r overwrite";

fn assert_escaped(text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        .collect();
    assert!(raw.is_empty(), "raw control characters: {raw:?}");
    assert!(
        text.contains(r"\x1b[2J\x1b]0;pwned\x07 \u{9b}31m \xff\xfe\r overwrite"),
        "{text}"
    );
}

#[test]
fn a_binary_file_is_printed_escaped_and_flagged_as_not_a_slow_log() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("a.out");
    let mut bytes = b"\x7fELF\x02\x01\x01\0\0\0\0\n".to_vec();
    bytes.extend_from_slice(NASTY);
    bytes.extend((0u8..=255).cycle().take(4096));
    std::fs::write(&binary, &bytes).unwrap();
    let binary = binary.to_str().unwrap();

    let warning = format!("# Warning: {binary} does not look like a slow log");
    let (code, text) = slowlog(&[binary]);
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(text.contains(&warning), "{text}");
    // Its one "query" has no Query_time, so the default report does not
    // list it; mysqldumpslow's report does, escaped.
    assert!(!text.contains("# Query 1"), "{text}");
    let (_, text) = slowlog(&["--mysqldumpslow", "-a", binary]);
    assert_escaped(&text);
    let report = json(&[binary]);
    let warning = report["files"][0]["warning"].as_str().unwrap();
    assert!(
        warning.contains("does not look like a slow log"),
        "{warning}"
    );

    // A query with such bytes in a slow log: the report escapes them too.
    let log = dir.path().join("slow.log");
    let mut text = ENTRY.as_bytes().to_vec();
    text.extend_from_slice(b"# User@Host: app[app] @ app-1 [10.0.0.1]\n");
    text.extend_from_slice(b"# Query_time: 0.5  Lock_time: 0\nSELECT '");
    text.extend_from_slice(NASTY);
    text.extend_from_slice(b"' FROM\n\tt;\n");
    std::fs::write(&log, text).unwrap();
    let (_, text) = slowlog(&[log.to_str().unwrap()]);
    assert_escaped(&text);
    // A query keeps its lines and indentation.
    assert!(text.contains(" overwrite' FROM\n\tt\\G"), "{text}");

    // Slow logs, even tiny or banner-only ones, get no warning.
    let banner = dir.path().join("banner.log");
    std::fs::write(
        &banner,
        "/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-0+deb12u1-log (Debian 12). started with:\n\
         Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\n\
         Time\t\t    Id Command\tArgument\n",
    )
    .unwrap();
    let report = json(&[
        &data("mysql-8.0.log"),
        &data("zero-time.log"),
        banner.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    for file in report["files"].as_array().unwrap() {
        assert!(file["warning"].is_null(), "{file}");
    }
}

#[test]
fn a_cut_gzip_file_reports_the_bytes_read_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("cut.gz");
    // Less than one read chunk of text, so the cut is in the first read.
    let whole = gzip(&[ENTRY.repeat(1000).as_bytes()]);
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let path = truncated.to_str().unwrap();
    let cli = Cli::try_parse_from(["slowlog", "--json", path]).unwrap();
    let mut out = Vec::new();
    let code = sesame_slowlog::report(&cli.args, &mut out).unwrap();
    assert_eq!(code, ExitCode::FAILURE);
    let report: Value = serde_json::from_slice(&out).unwrap();
    let file = &report["files"][0];
    let bytes = file["bytes"].as_u64().unwrap();
    let queries = report["queries"].as_u64().unwrap();
    assert!(queries > 10 && queries < 1000, "{queries}");
    // Every whole query counted was read; the last one may be cut.
    let entry = ENTRY.len() as u64;
    assert!(
        bytes >= (queries - 1) * entry && bytes <= queries * entry + entry,
        "{bytes} bytes for {queries} queries"
    );

    let (_, text) = slowlog(&[path]);
    assert!(
        text.contains(&format!("(read {bytes} bytes before it)")),
        "{text}"
    );
}

#[test]
fn a_reader_that_goes_away_is_not_a_failure() {
    // `sesame slowlog slow.log | head`: once head has its lines, the rest of
    // the report has nowhere to go, and that is no error (it used to fail
    // with "Broken pipe" at the final flush).
    let log = data("mysql-8.0.log");
    sesame_toolkit::testing::with_stdout_closed(
        "pt_listing::a_reader_that_goes_away_is_not_a_failure",
        || {
            let cli = Cli::try_parse_from(["slowlog", &log]).unwrap();
            matches!(sesame_slowlog::run(cli.args), Ok(code) if code == ExitCode::SUCCESS)
        },
    );
}
