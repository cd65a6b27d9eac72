//! The event-log parser of `sesame triage`: arbitrary bytes as a log chunk,
//! split into lines and scanned, then analysed into a report. Must never
//! panic, whatever the log holds (bad lines are counted, not fatal).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame_domain::event::LoginEvent;
use sesame_triage::analyze::{analyze, Options};
use sesame_triage::record::{parse_ts, Record};
use sesame_triage::scan::{Scan, Settings};

fuzz_target!(|data: &[u8]| {
    let mut scan = Scan::new(Settings {
        threshold_ms: 250.0,
        since_ms: None,
        until_ms: None,
    });
    scan.start_file("fuzz.jsonl");
    let mut lines = 0u64;
    for line in sesame_triage::input::lines(data) {
        lines += 1;
        if let Ok(record) = Record::parse(line) {
            let _ = parse_ts(&record.ts);
        }
        // Triage's fast path reads what serde reads, field for field.
        if let Some(fast) = Record::parse_fast(line) {
            let slow = Record::parse_serde(line).expect("serde reads what the fast path read");
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "fast path and serde disagree");
            // And what the event schema reads of the same line.
            if let Ok(event) = serde_json::from_slice::<LoginEvent>(line) {
                assert_eq!(fast.outcome, event.outcome.map_or("", |o| o.as_str()));
                assert_eq!(fast.db_role, event.db_role.map_or("", |r| r.as_str()));
                assert_eq!((fast.user.as_ref(), fast.ip.as_ref()), (event.user.as_str(), event.ip.as_str()));
            }
        }
        scan.line(line);
    }
    assert!(scan.lines <= lines, "more lines scanned than given");
    assert!(scan.bad_lines + scan.logins + scan.outside_range <= scan.lines);
    let _report = analyze(
        &scan,
        &Options {
            interval_ms: None,
            min_support: 0.1,
            min_risk_ratio: 2.0,
            deployment: "sesame".into(),
            marks: Vec::new(),
        },
    );
    // The shared schema: whatever parses as an event survives a round trip.
    if let Ok(event) = serde_json::from_slice::<LoginEvent>(data) {
        let again: LoginEvent = serde_json::from_str(&serde_json::to_string(&event).unwrap())
            .expect("a serialized event parses");
        // NaN != NaN; compare the text instead.
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            serde_json::to_string(&again).unwrap()
        );
    }
});
