//! `sesame slowlog` end to end, on slow logs written by MariaDB 10.11 (a
//! varied workload, slow_query_log on, long_query_time=0) and in MySQL 8's
//! format. The expected classes, counts and statistics in tests/data were
//! printed by Debian's pt-query-digest 3.2.1 (`--output json --limit
//! 1000000`, which lists the same classes as `--limit 100%:10000` on these
//! logs: none took zero time) and MariaDB's mysqldumpslow on the same files;
//! scripts/test.d re-checks them against the live tools.

use clap::Parser;
use flate2::write::GzEncoder;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: sesame_slowlog::SlowlogArgs,
}

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn slowlog(args: &[&str]) -> (ExitCode, String) {
    let cli = Cli::try_parse_from(std::iter::once("slowlog").chain(args.iter().copied()))
        .expect("valid arguments");
    let mut out = Vec::new();
    let code = sesame_slowlog::report(&cli.args, &mut out).expect("report");
    (code, String::from_utf8(out).expect("utf-8 report"))
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out) = slowlog(&all);
    assert_eq!(code, ExitCode::SUCCESS);
    serde_json::from_str(&out).expect("JSON report")
}

fn classes(report: &Value) -> &Vec<Value> {
    report["classes"].as_array().expect("classes")
}

/// pt-query-digest prints times with 6 decimals.
fn pt_number(v: &Value) -> f64 {
    v.as_str()
        .expect("pt prints strings")
        .parse()
        .expect("number")
}

fn assert_matches_pt_query_digest(log: &str, expected: &str) {
    let report = json(&[&data(log)]);
    let expected: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(data(expected)).unwrap()).unwrap();
    let ours: BTreeMap<String, &Value> = classes(&report)
        .iter()
        .map(|c| (c["id"].as_str().unwrap()[2..].to_string(), c))
        .collect();
    assert_eq!(ours.len(), expected.len(), "number of classes");
    for want in &expected {
        let checksum = want["checksum"].as_str().unwrap();
        let got = ours
            .get(checksum)
            .unwrap_or_else(|| panic!("class 0x{checksum} {} missing", want["fingerprint"]));
        assert_eq!(got["fingerprint"], want["fingerprint"]);
        assert_eq!(got["count"], want["query_count"], "0x{checksum}");
        for (attribute, stats) in want["metrics"].as_object().unwrap() {
            for (stat, value) in stats.as_object().unwrap() {
                let ours = got["metrics"][attribute][stat].as_f64().unwrap();
                let theirs = pt_number(value);
                assert!(
                    (ours - theirs).abs() <= 1.5e-6,
                    "0x{checksum} {attribute}.{stat}: pt {theirs}, sesame {ours}"
                );
            }
        }
    }
}

#[test]
fn mariadb_log_matches_pt_query_digest() {
    assert_matches_pt_query_digest("mariadb-10.11.log", "mariadb-10.11.pt-query-digest.json");
}

#[test]
fn mariadb_log_with_plan_and_innodb_verbosity_matches_pt_query_digest() {
    assert_matches_pt_query_digest(
        "mariadb-10.11-verbose.log",
        "mariadb-10.11-verbose.pt-query-digest.json",
    );
}

#[test]
fn mysql8_log_matches_pt_query_digest() {
    // Includes log_slow_extra fields and `# administrator command: Quit;`,
    // which takes its timings from the header lines before it.
    assert_matches_pt_query_digest("mysql-8.0.log", "mysql-8.0.pt-query-digest.json");
    let report = json(&[&data("mysql-8.0.log")]);
    let quit = classes(&report)
        .iter()
        .find(|c| c["fingerprint"] == "administrator command: Quit")
        .expect("admin command class");
    assert_eq!(quit["metrics"]["Query_time"]["max"], 0.000051);
}

fn gzip(members: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for member in members {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(member).unwrap();
        out.extend(encoder.finish().unwrap());
    }
    out
}

fn class_counts(report: &Value) -> BTreeMap<String, u64> {
    classes(report)
        .iter()
        .map(|c| {
            let key = c.get("id").unwrap_or(&c["statement"]);
            (
                key.as_str().unwrap().to_string(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn gzip_is_detected_by_content_and_reads_like_plain() {
    let dir = tempfile::tempdir().unwrap();
    let plain = std::fs::read(data("mysql-8.0.log")).unwrap();
    let gz = dir.path().join("slow.log.1");
    std::fs::write(&gz, gzip(&[&plain])).unwrap();
    assert_eq!(
        class_counts(&json(&[gz.to_str().unwrap()])),
        class_counts(&json(&[&data("mysql-8.0.log")]))
    );

    // logrotate's compressed logs can hold several gzip members.
    let (head, tail) = plain.split_at(plain.len() / 2);
    let two = dir.path().join("two.gz");
    std::fs::write(&two, gzip(&[head, tail])).unwrap();
    let report = json(&[two.to_str().unwrap()]);
    assert_eq!(report["queries"], 240);
    assert_eq!(report["files"][0]["gzip"], true);
}

fn dumpslow_blocks(text: &str) -> BTreeMap<String, String> {
    text.split("\n\n")
        .filter(|b| b.starts_with("Count: "))
        .map(|b| {
            let (header, statement) = b.split_once('\n').unwrap();
            (statement.to_string(), header.to_string())
        })
        .collect()
}

#[test]
fn mysqldumpslow_mode_prints_what_mysqldumpslow_prints() {
    let (code, ours) = slowlog(&["--mysqldumpslow", &data("mariadb-10.11.log")]);
    assert_eq!(code, ExitCode::SUCCESS);
    let ours = dumpslow_blocks(&ours);
    let mut theirs =
        dumpslow_blocks(&std::fs::read_to_string(data("mariadb-10.11.mysqldumpslow.txt")).unwrap());
    // mysqldumpslow drops `use db;` but not ``use `db`;``, which sesame drops too.
    let quirk = theirs
        .keys()
        .find(|s| s.starts_with("  use `"))
        .cloned()
        .expect("the use quirk");
    let header = theirs.remove(&quirk).unwrap();
    let statement = quirk.split_once("SET timestamp=N;\n").unwrap().1;
    theirs.insert(statement.to_string(), header);
    assert_eq!(ours, theirs);
}

#[test]
fn mysqldumpslow_abstraction_flags() {
    let log = data("mariadb-10.11.log");
    let abstracted = json(&["--mysqldumpslow", &log]);
    let raw = json(&["--mysqldumpslow", "-a", &log]);
    assert!(classes(&raw).len() > classes(&abstracted).len());
    assert!(classes(&abstracted)
        .iter()
        .any(|c| c["statement"] == "  SELECT id, password_hash FROM users WHERE username = 'S'"));
    // -l keeps lock time in the query time.
    let with_lock = json(&["--mysqldumpslow", "-l", &log]);
    let total = |r: &Value| -> f64 {
        classes(r)
            .iter()
            .map(|c| c["metrics"]["Query_time"]["sum"].as_f64().unwrap())
            .sum()
    };
    assert!(total(&with_lock) > total(&abstracted));
    // -a, -n and -l mean nothing without --mysqldumpslow: refused, not ignored.
    assert!(Cli::try_parse_from(["slowlog", "-a", "x.log"]).is_err());
    assert!(Cli::try_parse_from(["slowlog", "-n", "4", "x.log"]).is_err());
}

fn sort_keys(report: &Value, key: impl Fn(&Value) -> f64) -> Vec<f64> {
    classes(report).iter().map(key).collect()
}

#[test]
fn sort_orders_top_reverse_and_grep() {
    let log = data("mariadb-10.11.log");
    let count = |c: &Value| c["count"].as_f64().unwrap();
    let metric = |name: &'static str, stat: &'static str| {
        move |c: &Value| c["metrics"][name][stat].as_f64().unwrap_or(0.0)
    };
    let average_of = |name: &'static str| {
        move |c: &Value| {
            c["metrics"][name]["sum"].as_f64().unwrap_or(0.0) / c["count"].as_f64().unwrap()
        }
    };
    for mode in [&[][..], &["--mysqldumpslow"][..]] {
        let with = |more: &[&str]| {
            let mut args = mode.to_vec();
            args.extend_from_slice(more);
            args.push(&log);
            json(&args)
        };
        let descending = |keys: Vec<f64>| keys.windows(2).all(|w| w[0] >= w[1]);
        assert!(descending(sort_keys(&with(&["-s", "c"]), count)));
        assert!(descending(sort_keys(
            &with(&["-s", "t"]),
            metric("Query_time", "sum")
        )));
        assert!(descending(sort_keys(
            &with(&["-s", "l"]),
            metric("Lock_time", "sum")
        )));
        assert!(descending(sort_keys(
            &with(&["-s", "r"]),
            metric("Rows_sent", "sum")
        )));
        assert!(descending(sort_keys(
            &with(&["-s", "e"]),
            metric("Rows_examined", "sum")
        )));
        assert!(descending(sort_keys(
            &with(&["-s", "a"]),
            metric("Rows_affected", "sum")
        )));
        assert!(descending(sort_keys(
            &with(&["-s", "at"]),
            average_of("Query_time")
        )));
        assert!(descending(sort_keys(
            &with(&["-s", "al"]),
            average_of("Lock_time")
        )));
        assert!(descending(sort_keys(
            &with(&["-s", "ar"]),
            average_of("Rows_sent")
        )));
        assert!(descending(sort_keys(
            &with(&["-s", "ae"]),
            average_of("Rows_examined")
        )));
        assert!(descending(sort_keys(
            &with(&["-s", "aa"]),
            average_of("Rows_affected")
        )));

        // -t then -r, as mysqldumpslow: the top 3, smallest first.
        let top = sort_keys(&with(&["-s", "c", "-t", "3"]), count);
        let mut reversed = sort_keys(&with(&["-s", "c", "-t", "3", "-r"]), count);
        reversed.reverse();
        assert_eq!(top.len(), 3);
        assert_eq!(top, reversed);

        // -g: only matching queries, case-insensitive.
        let grep = with(&["-g", "FROM SESSIONS"]);
        assert!(grep["filtered_out"].as_u64().unwrap() > 0);
        for class in classes(&grep) {
            let text = class.get("fingerprint").unwrap_or(&class["statement"]);
            assert!(
                text.as_str()
                    .unwrap()
                    .to_lowercase()
                    .contains("from sessions"),
                "{text}"
            );
        }
    }
}

const ENTRY: &str = "# User@Host: app[app] @ app-1 [10.0.0.1]\n\
    # Query_time: 0.000100  Lock_time: 0.000010  Rows_sent: 1  Rows_examined: 1\n\
    SET timestamp=1795675331;\n\
    SELECT id FROM users WHERE username = 'alice';\n";

#[test]
fn malformed_entries_are_counted_and_reported_never_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("slow.log");
    let text = [
        ENTRY,
        // No Query_time header: counted in its class, without timings.
        "# User@Host: app[app] @ app-1 [10.0.0.1]\nSELECT id FROM users WHERE username = 'bob';\n",
        // A value that is not a number.
        "# Query_time: fast  Lock_time: 0.000010  Rows_sent: x  Rows_examined: 1\nSELECT 2;\n",
        // Binary garbage in the middle of an entry.
        "# Query_time: 0.1  Lock_time: 0\n\u{1}\u{2}\u{fffd}garbage\u{0};\n",
        ENTRY,
        // Truncated at the end of the file.
        "# User@Host: app[app] @ app-1 [10.0.0.1]\n# Query_ti",
    ]
    .concat();
    std::fs::write(&log, text).unwrap();
    let (code, out) = slowlog(&[log.to_str().unwrap()]);
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        out.contains("Malformed entries: 1 without query text"),
        "{out}"
    );

    let report = json(&[log.to_str().unwrap()]);
    assert_eq!(report["malformed"]["no_query"], 1);
    // The entry with `Query_time: fast` has no query time either.
    assert_eq!(report["malformed"]["no_query_time"], 2);
    assert_eq!(report["malformed"]["bad_value"], 1);
    let users = classes(&report)
        .iter()
        .find(|c| c["fingerprint"] == "select id from users where username = ?")
        .unwrap();
    assert_eq!(users["count"], 3);
    assert_eq!(users["metrics"]["Query_time"]["sum"], 0.0002);
}

#[test]
fn unreadable_files_fail_softly() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("cut.gz");
    let whole = gzip(&[ENTRY.repeat(1000).as_bytes()]);
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let missing = dir.path().join("missing.log");
    let good = data("mysql-8.0.log");
    let cli = Cli::try_parse_from([
        "slowlog",
        "--json",
        missing.to_str().unwrap(),
        truncated.to_str().unwrap(),
        &good,
    ])
    .unwrap();
    let mut out = Vec::new();
    let code = sesame_slowlog::report(&cli.args, &mut out).unwrap();
    assert_eq!(code, ExitCode::FAILURE);
    let report: Value = serde_json::from_slice(&out).unwrap();
    let files = report["files"].as_array().unwrap();
    assert!(files[0]["error"].as_str().unwrap().contains("cannot open"));
    assert!(files[1]["error"].as_str().is_some(), "{}", files[1]);
    assert!(files[2]["error"].is_null());
    // What was read before the corruption still counts.
    let queries = report["queries"].as_u64().unwrap();
    assert!(queries > 240 && queries < 240 + 1000, "{queries}");
}

fn big_log(dir: &Path) -> PathBuf {
    // About 3 MB: several read chunks, entries cut across chunk ends.
    let mut text = String::new();
    for i in 0..12_000 {
        text.push_str(&format!(
            "# User@Host: app[app] @ app-{} [10.0.0.{}]\n\
             # Query_time: 0.{:06}  Lock_time: 0.000001  Rows_sent: {}  Rows_examined: {}\n\
             SET timestamp={};\n\
             SELECT * FROM t{} WHERE id IN ({}) AND note = 'entry {i}';\n",
            i % 7,
            i % 200,
            (i * 7919) % 1_000_000,
            i % 3,
            i % 11,
            1_795_675_331 + i / 100,
            i % 5,
            (0..i % 40 + 1)
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ));
    }
    let path = dir.join("big.log");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn results_do_not_depend_on_chunks_or_threads() {
    let dir = tempfile::tempdir().unwrap();
    let log = big_log(dir.path());
    let one = json(&["--threads", "1", log.to_str().unwrap()]);
    let four = json(&["--threads", "4", log.to_str().unwrap()]);
    assert_eq!(one["queries"], 12_000);
    assert_eq!(classes(&one).len(), 1, "t0..t4 are one class: t?");
    for stat in ["sum", "min", "max", "pct_95", "median"] {
        let a = one["classes"][0]["metrics"]["Query_time"][stat]
            .as_f64()
            .unwrap();
        let b = four["classes"][0]["metrics"]["Query_time"][stat]
            .as_f64()
            .unwrap();
        assert!((a - b).abs() < 1e-9, "{stat}: {a} vs {b}");
    }
    assert_eq!(one["classes"][0]["hosts"].as_object().unwrap().len(), 7);
    assert_eq!(one["first_seen"], "2026-11-26 06:42:11");
}

#[test]
fn header_only_entries_borrow_a_query_like_pt_query_digest() {
    // pt-query-digest 3.2.1 on this file: the entries without a query take
    // the next entry's header as their query, and that entry's query is left
    // without a header, three times over; `select 3` is untouched.
    let report = json(&[&data("header-only-entries.log")]);
    let counts: BTreeMap<&str, u64> = classes(&report)
        .iter()
        .map(|c| {
            (
                c["fingerprint"].as_str().unwrap(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        BTreeMap::from([
            ("select ?", 1),
            ("user@host: root[root] @ localhost [] set timestamp=?", 3)
        ])
    );
}

#[test]
fn a_mariadb_restart_banner_mid_log_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("restart.log");
    let banner =
        "/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-0+deb12u1-log (Debian 12). started with:\n\
        Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\n\
        Time\t\t    Id Command\tArgument\n";
    std::fs::write(&log, [banner, ENTRY, banner, ENTRY, ENTRY].concat()).unwrap();
    let report = json(&[log.to_str().unwrap()]);
    assert_eq!(class_counts(&report).values().sum::<u64>(), 3);
    assert_eq!(classes(&report).len(), 1);
}

#[test]
fn text_report_shows_the_profile_and_each_class() {
    let (code, out) = slowlog(&["-t", "2", &data("mariadb-10.11.log")]);
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(out.contains("309 queries in 31 classes"), "{out}");
    assert!(out.contains("# Query 1: ID 0x"));
    assert!(out.contains("# Query 2: ID 0x"));
    assert!(!out.contains("# Query 3: ID 0x"));
    assert!(out.contains("# Query_time"));
    assert!(out.contains("# Fingerprint: "));
}

mod pt_listing;
