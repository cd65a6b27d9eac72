//! Triage against generated logs with a known incident: it must find the
//! incident's start, who it hit, the stage and the cause.

use sesame_triage::synth::{self, Incident, Scenario, ATTACKERS, NEW_VERSION};
use sesame_triage::{report, Report, TriageArgs};
use std::io::Write;
use std::path::{Path, PathBuf};

/// 15 minutes at 30 logins/s, the incident from 10:05 (the fifth minute).
fn scenario(incident: Incident) -> Scenario {
    Scenario {
        seconds: 900,
        rate: 30.0,
        incident,
        incident_at: 300,
        ..Scenario::default()
    }
}

const INCIDENT_START: &str = "2026-11-26T10:05:00.000Z";

fn write_log(dir: &Path, name: &str, scenario: &Scenario) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    synth::generate(scenario, std::slice::from_mut(&mut file)).unwrap();
    file.flush().unwrap();
    path
}

fn args(paths: Vec<PathBuf>) -> TriageArgs {
    TriageArgs {
        eventlogs: paths,
        since: None,
        until: None,
        threshold_ms: 500.0,
        interval: Some(60_000),
        json: false,
        html: None,
        deny_list: None,
        min_support: 0.05,
        min_risk_ratio: 2.0,
        deployment: "sesame".to_owned(),
        marks: Vec::new(),
    }
}

fn triage(incident: Incident) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "events.log", &scenario(incident));
    report(&args(vec![path])).unwrap()
}

fn minutes(iso: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso)
        .unwrap()
        .timestamp()
        / 60
}

/// The incident is found starting within one interval of when it began.
fn assert_change_point(r: &Report) {
    let incident = r.incident.as_ref().expect("an incident window");
    let off = (minutes(&incident.from) - minutes(INCIDENT_START)).abs();
    assert!(
        off <= 1,
        "change point at {}, incident began at {INCIDENT_START}",
        incident.from
    );
    let cp = r
        .change_points
        .iter()
        .find(|c| c.at == incident.from)
        .unwrap();
    assert!(cp.p99_after_ms > 5.0 * cp.p99_before_ms, "{cp:?}");
}

fn causes(r: &Report) -> Vec<&str> {
    r.causes.iter().map(|c| c.kind).collect()
}

#[test]
fn android_on_5_2_is_the_pair_ranked_first() {
    let r = triage(Incident::AndroidSlow);
    assert_change_point(&r);
    let top = &r.affected[0];
    assert_eq!(
        top.attributes,
        ["platform=android", "app_version=5.2"],
        "{:#?}",
        r.affected
    );
    assert!(
        top.slow_pct > 80.0 && top.all_pct < 15.0,
        "{}",
        top.sentence
    );
    assert!(
        top.sentence
            .contains("of slow logins are platform=android and app_version=5.2, against"),
        "{}",
        top.sentence
    );
    assert_eq!(r.stages.dominant.as_deref(), Some("session"));
    assert!(causes(&r).contains(&"slow_session_store"), "{:?}", r.causes);
    assert!(
        !causes(&r).contains(&"deploy") && !causes(&r).contains(&"attack"),
        "{:?}",
        r.causes
    );
}

#[test]
fn a_deploy_at_the_change_point_gets_the_rollback_command() {
    let r = triage(Incident::Deploy);
    assert_change_point(&r);
    assert_eq!(
        r.affected[0].attributes,
        [format!("server_version={NEW_VERSION}")],
        "{:#?}",
        r.affected
    );
    assert_eq!(r.stages.dominant.as_deref(), Some("hash"));
    let deploy = r
        .causes
        .iter()
        .find(|c| c.kind == "deploy")
        .expect("deploy recognized");
    assert!(deploy.summary.contains(NEW_VERSION), "{}", deploy.summary);
    let action = deploy.action.as_deref().unwrap();
    assert!(
        action.contains("kubectl rollout undo deployment/sesame"),
        "{action}"
    );
    assert!(action.contains(synth::OLD_VERSION), "{action}");
    assert!(!causes(&r).contains(&"surge"), "{:?}", r.causes);
}

#[test]
fn an_attack_from_three_addresses_is_named_with_them() {
    let r = triage(Incident::Attack);
    assert_change_point(&r);
    assert_eq!(causes(&r)[0], "attack", "{:?}", r.causes);
    let attack = &r.causes[0];
    for ip in ATTACKERS {
        assert!(attack.summary.contains(ip), "{} lacks {ip}", attack.summary);
    }
    assert!(attack.summary.contains("3 addresses"), "{}", attack.summary);
    assert_eq!(r.stages.dominant.as_deref(), Some("queue"));
    assert!(
        !causes(&r).contains(&"surge"),
        "the attack is no surge of demand: {:?}",
        r.causes
    );
    assert!(r.timeline.iter().any(|i| i.failed_pct > 50.0));
}

#[test]
fn a_surge_is_told_from_an_attack() {
    let r = triage(Incident::Surge);
    assert_change_point(&r);
    let kinds = causes(&r);
    assert_eq!(kinds[0], "surge", "{:?}", r.causes);
    assert!(!kinds.contains(&"attack"), "{:?}", r.causes);
    assert!(
        r.causes[0].summary.contains("3.0x"),
        "{}",
        r.causes[0].summary
    );
    assert_eq!(r.stages.dominant.as_deref(), Some("queue"));
    assert!(
        r.affected.is_empty() || r.affected[0].risk_ratio.unwrap_or(f64::INFINITY) < 5.0,
        "{:#?}",
        r.affected
    );
    assert!(r.timeline.iter().any(|i| i.shed_pct > 5.0));
}

#[test]
fn replica_lag_on_one_shard_points_at_the_database() {
    let r = triage(Incident::ReplicaLag);
    assert_change_point(&r);
    assert!(
        r.affected[0].attributes.contains(&"shard=-40".to_owned()),
        "{:#?}",
        r.affected
    );
    assert_eq!(r.stages.dominant.as_deref(), Some("db"));
    let lag = r
        .causes
        .iter()
        .find(|c| c.kind == "replica_lag")
        .expect("replica lag recognized");
    assert!(
        lag.summary.contains("concentrated on shard=-40"),
        "{}",
        lag.summary
    );
    assert!(lag.action.as_deref().unwrap().contains("sesame slowlog"));
}

/// Two unrelated incidents at once (eu-west's replicas stall reads, the ios
/// 5.1 release hashes slowly): both groups, each with its own stage and
/// cause, ranked by the share of slow logins each explains. Read through the
/// JSON report, which carries the causes as a list.
#[test]
fn two_incidents_at_once_are_two_causes_ranked_by_the_slow_logins_they_explain() {
    let r = triage(Incident::ReplicaAndRelease);
    assert_change_point(&r);
    let json = serde_json::to_value(&r).unwrap();
    let causes = json["causes"].as_array().unwrap();
    let find = |kind: &str| {
        causes
            .iter()
            .position(|c| c["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} among the causes: {causes:#?}"))
    };
    let (lag, hash) = (find("replica_lag"), find("slow_hash"));
    assert!(
        lag < hash,
        "the replica explains more slow logins: {causes:#?}"
    );
    let share = |c: &serde_json::Value| c["slow_pct"].as_f64().unwrap_or(-1.0);
    let shares: Vec<f64> = causes.iter().map(share).collect();
    assert!(
        shares.windows(2).all(|w| w[0] >= w[1]),
        "ranked by the share of slow logins explained: {shares:?}"
    );
    let (lag, hash) = (&causes[lag], &causes[hash]);
    // A third of all logins read eu-west's replicas, an eighth are ios 5.1.
    assert!(share(lag) > 60.0 && share(hash) > 10.0, "{causes:#?}");
    assert!(share(lag) + share(hash) > 95.0, "{causes:#?}");
    assert_eq!(lag["stage"], "db", "{lag:#}");
    assert_eq!(hash["stage"], "hash", "{hash:#}");
    let group = |c: &serde_json::Value| -> Vec<String> {
        c["group"]
            .as_array()
            .map(|g| {
                g.iter()
                    .filter_map(|a| a.as_str())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(group(lag).contains(&"region=eu-west".to_owned()), "{lag:#}");
    let release = group(hash);
    assert!(
        release.contains(&"app_version=5.1".to_owned())
            || release.contains(&"platform=ios".to_owned()),
        "{hash:#}"
    );
    assert!(
        !release.iter().any(|a| a.starts_with("region=")),
        "{hash:#}"
    );
    assert!(
        hash["summary"]
            .as_str()
            .unwrap()
            .contains("concentrated on"),
        "{hash:#}"
    );
    // Both groups are among who is affected, each with the stage that grew.
    for (attribute, stage) in [("region=eu-west", "db"), ("app_version=5.1", "hash")] {
        let e = r
            .affected
            .iter()
            .find(|e| e.attributes.iter().any(|a| a == attribute))
            .unwrap_or_else(|| panic!("{attribute} not affected: {:#?}", r.affected));
        assert_eq!(json_stage(e), stage, "{}", e.sentence);
    }
    assert!(!causes
        .iter()
        .any(|c| c["kind"] == "deploy" || c["kind"] == "attack"));
}

fn json_stage(e: &sesame_triage::analyze::Explanation) -> String {
    serde_json::to_value(e).unwrap()["stage"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_quiet_log_has_no_change_point_and_no_cause() {
    let r = triage(Incident::None);
    assert!(r.change_points.is_empty(), "{:?}", r.change_points);
    assert!(r.incident.is_none());
    assert!(r.causes.is_empty(), "{:?}", r.causes);
    assert!(r.affected.is_empty(), "{:?}", r.affected);
}

#[test]
fn gzip_and_many_files_read_like_one_plain_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(Incident::Deploy);
    let plain = report(&args(vec![write_log(dir.path(), "all.log", &s)])).unwrap();

    // One file per instance, two of them gzipped as logrotate leaves them.
    let paths: Vec<PathBuf> = (0..s.instances)
        .map(|i| dir.path().join(format!("pod{i}.log")))
        .collect();
    let mut files: Vec<Box<dyn Write>> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let f = std::fs::File::create(p).unwrap();
            if i % 2 == 0 {
                Box::new(flate2::write::GzEncoder::new(
                    f,
                    flate2::Compression::fast(),
                )) as Box<dyn Write>
            } else {
                Box::new(f)
            }
        })
        .collect();
    synth::generate(&s, &mut files).unwrap();
    drop(files);
    let split = report(&args(paths)).unwrap();

    assert_eq!(split.files.len(), 4);
    assert_eq!(split.logins, plain.logins);
    assert_eq!(split.slow_logins, plain.slow_logins);
    assert_eq!(split.bad_lines, 0);
    assert_eq!(causes(&split), causes(&plain));
    assert_eq!(split.affected[0].attributes, plain.affected[0].attributes);
    assert_eq!(split.timeline.len(), plain.timeline.len());
}

#[test]
fn a_gzipped_log_on_standard_input_reads_like_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "all.log", &scenario(Incident::Deploy));
    let plain = report(&args(vec![path.clone()])).unwrap();
    let gzipped = sesame_toolkit::testing::gzip(&std::fs::read(&path).unwrap());
    sesame_toolkit::testing::with_stdin(
        "a_gzipped_log_on_standard_input_reads_like_the_file",
        &gzipped,
        || {
            let piped = report(&args(vec!["-".into()])).unwrap();
            assert_eq!(piped.files, ["-"]);
            assert_eq!(piped.logins, plain.logins);
            assert_eq!(piped.slow_logins, plain.slow_logins);
            assert_eq!(piped.bad_lines, 0);
            assert_eq!(causes(&piped), causes(&plain));
        },
    );
}

#[test]
fn since_and_until_bound_the_logins_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "events.log", &scenario(Incident::Deploy));
    let all = report(&args(vec![path.clone()])).unwrap();
    let mut bounded = args(vec![path]);
    bounded.since = Some(
        chrono::DateTime::parse_from_rfc3339("2026-11-26T10:07:00Z")
            .unwrap()
            .timestamp_millis(),
    );
    bounded.until = Some(
        chrono::DateTime::parse_from_rfc3339("2026-11-26T10:10:00Z")
            .unwrap()
            .timestamp_millis(),
    );
    let r = report(&bounded).unwrap();
    assert_eq!(
        r.timeline.len(),
        3,
        "{:?}",
        r.timeline.iter().map(|i| &i.start).collect::<Vec<_>>()
    );
    assert_eq!(r.timeline[0].start, "2026-11-26T10:07:00.000Z");
    assert!(r.from.as_deref().unwrap() >= "2026-11-26T10:07:00.000Z");
    assert!(r.to.as_deref().unwrap() < "2026-11-26T10:10:00.000Z");
    assert_eq!(r.logins + r.outside_range, all.logins);
    let expected: u64 = all.timeline[7..10].iter().map(|i| i.logins).sum();
    assert_eq!(r.logins, expected);
    // Wholly inside the incident: no change, no deploy to see.
    assert!(r.incident.is_none());
}

#[test]
fn bad_lines_are_counted_and_quoted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "events.log", &scenario(Incident::Deploy));
    let mut text = std::fs::read_to_string(&path).unwrap();
    let good = text.lines().count() as u64;
    text.insert_str(0, "this is not json\n{\"outcome\":\"ok\",\"total_ms\":3}\n");
    text.push_str("{\"ts\":\"yesterday\",\"total_ms\":3}\n\n{\"ts\":\"2026-11-26T10:14:00.000Z\",\"total_ms\":-1}\n{\"ts\":\"2026-11-26T10:14:00.0");
    std::fs::write(&path, text).unwrap();
    let r = report(&args(vec![path])).unwrap();
    assert_eq!(r.bad_lines, 5);
    assert_eq!(r.logins, good);
    assert_eq!(r.lines, good + 5);
    assert_eq!(r.bad_examples[0].line, 1);
    assert!(
        r.bad_examples[1].error.contains("ts"),
        "{:?}",
        r.bad_examples[1]
    );
    assert!(causes(&r).contains(&"deploy"));
}

#[test]
fn reports_render_as_json_and_self_contained_html() {
    let r = triage(Incident::Deploy);
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    let causes = json["causes"].as_array().unwrap();
    assert_eq!(causes.iter().filter(|c| c["kind"] == "deploy").count(), 1);
    for c in causes {
        assert!(c["slow_pct"].as_f64().unwrap() > 90.0, "{c:#}");
        assert!(c["slow_logins"].as_u64().unwrap() > 0, "{c:#}");
        assert_eq!(c["stage"], "hash", "{c:#}");
        assert_eq!(
            c["group"][0],
            format!("server_version={NEW_VERSION}"),
            "{c:#}"
        );
    }
    assert_eq!(json["affected"][0]["stage"], "hash");
    assert!(json["timeline"][0]["p99_ms"].as_f64().unwrap() > 0.0);
    let html = sesame_triage::html::render(&r);
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.matches("<svg").count() >= 2, "latency and rate charts");
    assert!(html.contains("kubectl rollout undo deployment/sesame"));
    for external in ["http://", "https://", "<script", "<link", "src="] {
        assert!(!html.contains(external), "external resource: {external}");
    }
}

#[test]
fn marked_moments_are_drawn_where_they_fall_and_listed_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "events.log", &scenario(Incident::Surge));
    let mut a = args(vec![path]);
    let at = |iso: &str| {
        chrono::DateTime::parse_from_rfc3339(iso)
            .unwrap()
            .timestamp_millis()
    };
    a.marks = vec![
        ("alert <fired>".to_owned(), at("2026-11-26T10:06:30Z")),
        ("surge injected".to_owned(), at(INCIDENT_START)),
        ("long before".to_owned(), at("2026-11-25T10:00:00Z")),
    ];
    let r = report(&a).unwrap();
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    let labels: Vec<&str> = json["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["long before", "surge injected", "alert <fired>"]);
    assert_eq!(json["marks"][1]["at"], INCIDENT_START);
    let html = sesame_triage::html::render(&r);
    // On each of the three charts, escaped; the one outside the logs' range
    // on none.
    assert_eq!(
        html.matches("<title>surge injected 2026-11-26T10:05:00.000Z</title>")
            .count(),
        3,
        "a titled line per chart"
    );
    assert_eq!(
        html.matches(">surge injected</text>").count(),
        3,
        "a label per chart"
    );
    assert!(html.contains("alert &lt;fired&gt;"));
    assert!(!html.contains("<fired>"));
    assert!(!html.contains("long before"));
}

#[test]
fn memory_is_bounded_over_a_long_span_and_many_addresses() {
    use sesame_triage::scan::{Scan, Settings};
    let mut scan = Scan::new(Settings {
        threshold_ms: 500.0,
        ..Settings::default()
    });
    scan.start_file("long.log");
    // Thirty days, one login a minute, each from a new /24.
    for minute in 0..30 * 24 * 60i64 {
        let ts = sesame_triage::analyze::iso(1_795_687_200_000 + minute * 60_000);
        let line = format!(
            r#"{{"ts":"{ts}","outcome":"ok","ip":"10.{}.{}.1","total_ms":30}}"#,
            minute / 256 % 256,
            minute % 256
        );
        scan.line(line.as_bytes());
    }
    assert_eq!(scan.logins, 30 * 24 * 60);
    assert!(
        scan.timeline.buckets.len() <= 2048,
        "{}",
        scan.timeline.buckets.len()
    );
    assert!(scan.dictionaries.0[sesame_triage::dims::IP].len() <= 8192);
}

#[test]
fn a_distributed_attack_is_named_with_every_address_and_written_as_a_block_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(
        dir.path(),
        "events.log",
        &scenario(Incident::DistributedAttack),
    );
    let deny_list = dir.path().join("deny.txt");
    let r = report(&args(vec![path])).unwrap();
    assert_change_point(&r);
    assert_eq!(causes(&r)[0], "attack", "{:?}", r.causes);
    let attack = &r.causes[0];
    assert!(
        attack.summary.contains("distributed")
            && attack.summary.contains("300 addresses in 2 networks"),
        "{}",
        attack.summary
    );
    let wave: Vec<String> = (0..synth::WAVE_ADDRESSES)
        .map(synth::wave_address)
        .collect();
    let mut named = attack.addresses.clone();
    named.sort();
    let mut expected = wave.clone();
    expected.sort();
    assert_eq!(
        named, expected,
        "every address of the wave and nothing else"
    );
    assert!(!causes(&r).contains(&"surge"), "{:?}", r.causes);

    // The block list: what `sesame serve --deny-list` reads.
    assert!(sesame_triage::write_deny_list(&deny_list, &r).unwrap());
    let text = std::fs::read_to_string(&deny_list).unwrap();
    let list = sesame_domain::DenyList::parse(&text).unwrap();
    assert_eq!(list.len(), synth::WAVE_ADDRESSES);
    for address in &wave {
        assert!(list.contains(address.parse().unwrap()), "{address}");
    }
    assert!(!list.contains("11.2.3.4".parse().unwrap()));
}

#[test]
fn no_block_list_is_written_without_an_attack() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "events.log", &scenario(Incident::Surge));
    let deny_list = dir.path().join("deny.txt");
    let r = report(&args(vec![path])).unwrap();
    assert!(!sesame_triage::write_deny_list(&deny_list, &r).unwrap());
    assert!(!deny_list.exists());
}
