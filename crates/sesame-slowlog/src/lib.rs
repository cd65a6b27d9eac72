//! `sesame slowlog`: digests MySQL 8 and MariaDB 10.x slow query logs.
//!
//! By default queries are grouped like pt-query-digest groups them (same
//! fingerprints, same query IDs, same 95th percentile and median); with
//! `--mysqldumpslow` like mysqldumpslow groups them, with its report. The
//! flags are mysqldumpslow's. Reading streams: memory holds per-class
//! aggregates and a few chunks of the log, whatever its size.

pub mod digest;
pub mod dumpslow;
pub mod fingerprint;
pub mod parse;
pub mod read;
pub mod report;
pub mod stats;

use anyhow::Context;
use digest::{Class, Grouping};
use regex::bytes::RegexBuilder;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

/// Digest MySQL/MariaDB slow query logs (plain or gzip): query classes with
/// count, total, min, max, avg, 95th percentile and median of Query_time,
/// Lock_time, Rows_sent and Rows_examined.
///
/// Classes are pt-query-digest's fingerprints and query IDs by default;
/// `--mysqldumpslow` groups and prints like mysqldumpslow instead. The
/// short flags are mysqldumpslow's.
#[derive(Debug, clap::Args)]
pub struct SlowlogArgs {
    /// Slow query logs, plain or gzip (detected by content); `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Rank classes by: t query time, l lock time, r rows sent, e rows
    /// examined, a rows affected (totals), c count, or the averages at, al,
    /// ar, ae, aa. Default: t (pt-query-digest's order), at with
    /// --mysqldumpslow (its default).
    #[arg(short = 's', long, env = "SESAME_SLOWLOG_SORT", value_enum)]
    pub sort: Option<SortBy>,
    /// Show only the first N classes.
    #[arg(short = 't', long, env = "SESAME_SLOWLOG_TOP", value_name = "N")]
    pub top: Option<usize>,
    /// Reverse the order (applied after -t, as mysqldumpslow does).
    #[arg(short = 'r', long, env = "SESAME_SLOWLOG_REVERSE")]
    pub reverse: bool,
    /// Only consider queries that match this regular expression
    /// (case-insensitive), as logged.
    #[arg(short = 'g', long, env = "SESAME_SLOWLOG_GREP", value_name = "PATTERN")]
    pub grep: Option<String>,
    /// Group and report like mysqldumpslow: numbers become N and strings
    /// 'S' (see -a, -n); query time excludes lock time (see -l).
    #[arg(long, env = "SESAME_SLOWLOG_MYSQLDUMPSLOW")]
    pub mysqldumpslow: bool,
    /// With --mysqldumpslow: don't abstract numbers and strings.
    #[arg(short = 'a', long, requires = "mysqldumpslow")]
    pub no_abstract: bool,
    /// With --mysqldumpslow: abstract numbers of at least N digits inside
    /// names too (log_20260101 becomes log_NNNNNNNN).
    #[arg(short = 'n', long, value_name = "N", requires = "mysqldumpslow")]
    pub abstract_digits: Option<usize>,
    /// With --mysqldumpslow: don't subtract lock time from query time.
    #[arg(short = 'l', long, requires = "mysqldumpslow")]
    pub keep_lock_time: bool,
    /// Print one JSON object instead of the text report.
    #[arg(long, env = "SESAME_SLOWLOG_JSON")]
    pub json: bool,
    /// Worker threads (default: one per core).
    #[arg(long, env = "SESAME_SLOWLOG_THREADS", value_name = "N")]
    pub threads: Option<usize>,
}

/// mysqldumpslow's `-s` orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    /// Total query time.
    T,
    /// Total lock time.
    L,
    /// Total rows sent.
    R,
    /// Total rows examined.
    E,
    /// Total rows affected.
    A,
    /// Count.
    C,
    /// Average query time.
    At,
    /// Average lock time.
    Al,
    /// Average rows sent.
    Ar,
    /// Average rows examined.
    Ae,
    /// Average rows affected.
    Aa,
}

impl SortBy {
    fn key(self, class: &Class) -> f64 {
        let total = |metric: usize| class.metrics[metric].sum;
        let average = |metric: usize| total(metric) / class.count as f64;
        match self {
            SortBy::T => total(0),
            SortBy::L => total(1),
            SortBy::R => total(2),
            SortBy::E => total(3),
            SortBy::A => total(4),
            SortBy::C => class.count as f64,
            SortBy::At => average(0),
            SortBy::Al => average(1),
            SortBy::Ar => average(2),
            SortBy::Ae => average(3),
            SortBy::Aa => average(4),
        }
    }
}

pub fn run(args: SlowlogArgs) -> anyhow::Result<ExitCode> {
    // `sesame slowlog ... | head`: a closed pipe ends the report quietly.
    let mut out = sesame_toolkit::output::stdout();
    let code = report(&args, &mut out)?;
    out.flush()?;
    Ok(code)
}

/// Digests the files named in `args` and writes the report to `out`.
/// Unreadable files, files that do not look like slow logs and malformed
/// entries are reported on stderr (and in the report); only an unreadable
/// file makes the exit code a failure. In fingerprint mode the classes are
/// those pt-query-digest lists (see [`report::NotListed`]).
pub fn report(args: &SlowlogArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let grep = args
        .grep
        .as_deref()
        .map(|pattern| RegexBuilder::new(pattern).case_insensitive(true).build())
        .transpose()
        .context("-g: not a valid regular expression")?;
    let grouping = if args.mysqldumpslow {
        Grouping::Mysqldumpslow {
            abstractor: Box::new(dumpslow::Abstractor::new(
                !args.no_abstract,
                args.abstract_digits,
            )),
            keep_lock_time: args.keep_lock_time,
        }
    } else {
        Grouping::Fingerprint
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if args.mysqldumpslow && !args.json {
        // mysqldumpslow announces its input on stderr.
        eprintln!(
            "\nReading mysql slow query log from {}",
            args.files.join(" ")
        );
    }

    let started = Instant::now();
    let totals = read::digest_files(&args.files, &grouping, grep.as_ref(), threads);
    let elapsed = started.elapsed();

    let default_sort = if args.mysqldumpslow {
        SortBy::At
    } else {
        SortBy::T
    };
    let sort = args.sort.unwrap_or(default_sort);
    let mut not_listed = report::NotListed::default();
    let mut classes: Vec<(&[u8], &Class)> = totals
        .digest
        .classes
        .iter()
        .map(|(key, class)| (&key[..], class))
        .filter(|(_, class)| {
            // pt-query-digest's profile ranks classes by their Query_time
            // and leaves out those that have none.
            let listed = args.mysqldumpslow || class.metrics[parse::QUERY_TIME].count > 0;
            if !listed {
                not_listed.classes_without_query_time += 1;
                not_listed.queries_without_query_time += class.count;
            }
            listed
        })
        .collect();
    classes.sort_by(|a, b| {
        sort.key(b.1)
            .total_cmp(&sort.key(a.1))
            .then_with(|| a.0.cmp(b.0))
    });
    if !args.mysqldumpslow && sort == SortBy::T {
        let listed = report::pt_limit_100_percent(&classes);
        for (_, class) in &classes[listed..] {
            not_listed.classes_zero_time += 1;
            not_listed.queries_zero_time += class.count;
        }
        classes.truncate(listed);
    }
    if let Some(top) = args.top {
        classes.truncate(top);
    }
    if args.reverse {
        classes.reverse();
    }
    let ranked = report::Ranked {
        digest: &totals.digest,
        classes,
        files: &totals.files,
        elapsed,
        not_listed,
    };

    if args.json {
        report::write_json(&ranked, !args.mysqldumpslow, out)?;
    } else if args.mysqldumpslow {
        report::write_dumpslow_text(&ranked, out)?;
    } else {
        report::write_digest_text(&ranked, out)?;
    }

    let mut failed = false;
    for file in &totals.files {
        if let Some(warning) = &file.warning {
            eprintln!("sesame slowlog: warning: {}", report::printable(warning));
        }
        if let Some(error) = &file.error {
            eprintln!("sesame slowlog: {}", report::printable(error));
            failed = true;
        }
    }
    let m = totals.digest.malformed;
    if m.total() > 0 {
        eprintln!(
            "sesame slowlog: malformed entries: {} without query text (skipped), {} without \
             Query_time (counted, no timings), {} with a non-numeric value (value left out)",
            m.no_query, m.no_query_time, m.bad_value
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
