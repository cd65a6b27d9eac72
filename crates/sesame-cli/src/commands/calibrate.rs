use sesame_domain::{HashParams, PasswordHasher};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Wanted time per hash, in milliseconds, on one core of this machine.
    #[arg(long, env = "SESAME_CALIBRATE_TARGET_MS", default_value_t = 25)]
    target_ms: u64,
    /// Memory cost in KiB to start from (the OWASP minimum by default).
    /// Never below an OWASP configuration: passes start at the fewest OWASP
    /// allows with this memory and rise while the target allows; if those
    /// are already too slow, fewer passes are tried only with memory raised
    /// to OWASP's figure for them, and if nothing safe meets the target the
    /// minimum is recommended with a warning.
    #[arg(long, env = "SESAME_CALIBRATE_M_COST", default_value_t = 19_456)]
    m_cost: u32,
    /// Lanes.
    #[arg(long, env = "SESAME_CALIBRATE_P_COST", default_value_t = 1)]
    p_cost: u32,
    /// Instead of calibrating, measure the raw hash rate of the given
    /// parameters (--m-cost, --t-cost, --p-cost) on this many threads: the
    /// ceiling a login benchmark is compared with.
    #[arg(long, env = "SESAME_CALIBRATE_THROUGHPUT_THREADS")]
    throughput_threads: Option<usize>,
    /// Passes, for --throughput-threads.
    #[arg(long, env = "SESAME_CALIBRATE_T_COST", default_value_t = 2)]
    t_cost: u32,
    /// Seconds to measure, for --throughput-threads.
    #[arg(long, env = "SESAME_CALIBRATE_SECONDS", default_value_t = 10.0)]
    seconds: f64,
    /// Hashes timed per candidate (the median counts).
    #[arg(long, env = "SESAME_CALIBRATE_SAMPLES", default_value_t = 5)]
    samples: usize,
}

/// Median time of one hash with these parameters.
pub fn time_hash(params: HashParams, samples: usize) -> anyhow::Result<Duration> {
    let hasher = PasswordHasher::new(params)?;
    // Measured as a hash worker runs: in memory kept between hashes.
    sesame_domain::hashing::keep_memory_on_this_thread();
    hasher.hash(b"warm-up")?;
    let mut times: Vec<Duration> = (0..samples.max(1))
        .map(|i| {
            let started = Instant::now();
            let _ = hasher.hash(format!("calibration-{i}").as_bytes());
            started.elapsed()
        })
        .collect();
    times.sort();
    Ok(times[times.len() / 2])
}

pub fn run(args: CalibrateArgs) -> anyhow::Result<ExitCode> {
    if let Some(threads) = args.throughput_threads {
        let params = HashParams {
            m_cost: args.m_cost,
            t_cost: args.t_cost,
            p_cost: args.p_cost,
        };
        let window = Duration::from_secs_f64(args.seconds);
        let library = raw_rate(threads, window, library_hash(params)?)?;
        println!("raw argon2id {params}, argon2 crate one-shot: {library:.1} hashes/s on {threads} threads");
        let hasher = PasswordHasher::new(params)?;
        let ours = raw_rate(threads, window, move |pw: &[u8]| {
            sesame_domain::hashing::keep_memory_on_this_thread();
            let _ = hasher.hash(pw);
        })?;
        println!("raw argon2id {params}, sesame hasher: {ours:.1} hashes/s on {threads} threads");
        return Ok(ExitCode::SUCCESS);
    }
    let target = Duration::from_millis(args.target_ms);
    let choice = choose(args.m_cost, args.p_cost, target, |params| {
        time_hash(params, args.samples)
    })?;
    let params = choice.params;
    let took = choice.took;
    anyhow::ensure!(
        is_owasp_safe(params),
        "calibration chose {params}, below OWASP's Argon2id table: a bug, not a recommendation"
    );
    println!(
        "argon2id {params}: {:.1} ms per hash (median of {})",
        ms(took),
        args.samples
    );
    println!(
        "  about {:.0} hashes/s per core",
        1.0 / took.as_secs_f64().max(1e-9)
    );
    for note in &choice.notes {
        println!("  {note}");
    }
    println!(
        "  sesame serve --hash-m-cost {} --hash-t-cost {} --hash-p-cost {}",
        params.m_cost, params.t_cost, params.p_cost
    );
    Ok(ExitCode::SUCCESS)
}

/// OWASP's Argon2id configurations (Password Storage Cheat Sheet), all with
/// p=1: (memory in KiB, passes), equally strong, trading memory for passes.
pub const OWASP_ARGON2ID: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

/// The least memory (KiB) OWASP accepts with `t_cost` passes: its row for
/// that many passes, or for the most passes it lists below that.
pub fn owasp_min_memory(t_cost: u32) -> Option<u32> {
    OWASP_ARGON2ID
        .iter()
        .rev()
        .find(|&&(_, t)| t <= t_cost)
        .map(|&(m, _)| m)
}

/// The fewest passes OWASP accepts with `m_cost` KiB; none below its
/// smallest memory.
pub fn owasp_min_passes(m_cost: u32) -> Option<u32> {
    OWASP_ARGON2ID
        .iter()
        .find(|&&(m, _)| m_cost >= m)
        .map(|&(_, t)| t)
}

/// At least one of OWASP's configurations: as much memory with as many
/// passes, or more. (Lanes are not weighed: OWASP's table is all p=1.)
pub fn is_owasp_safe(params: HashParams) -> bool {
    owasp_min_memory(params.t_cost).is_some_and(|m| params.m_cost >= m)
}

/// What calibration recommends, how long it takes here, and why.
#[derive(Debug)]
pub struct Choice {
    pub params: HashParams,
    pub took: Duration,
    /// Lines for the operator: why not fewer passes or less memory, and a
    /// warning when the target cannot be met safely.
    pub notes: Vec<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The strongest OWASP-safe parameters that hash within `target`, starting
/// from `m_cost` KiB; `time` measures one hash. Never less than an OWASP
/// configuration: memory is raised, never passes lowered below OWASP's
/// figure for the memory. If nothing safe meets the target, the minimum
/// at `m_cost`, with a warning saying what it costs here.
pub fn choose(
    m_cost: u32,
    p_cost: u32,
    target: Duration,
    mut time: impl FnMut(HashParams) -> anyhow::Result<Duration>,
) -> anyhow::Result<Choice> {
    let mut notes = Vec::new();
    let (smallest_m, most_t) = OWASP_ARGON2ID[OWASP_ARGON2ID.len() - 1];
    let floor = match owasp_min_passes(m_cost) {
        Some(t_cost) => HashParams {
            m_cost,
            t_cost,
            p_cost,
        },
        None => {
            notes.push(format!(
                "memory raised from {m_cost} to {smallest_m} KiB: OWASP has no Argon2id configuration with less"
            ));
            HashParams {
                m_cost: smallest_m,
                t_cost: most_t,
                p_cost,
            }
        }
    };
    // Why the recommendation does not have fewer passes.
    let why_these_passes = (floor.t_cost > 1).then(|| {
        format!(
            "not fewer than {} passes with m={}: OWASP's minimum there (one pass needs m >= {})",
            floor.t_cost, floor.m_cost, OWASP_ARGON2ID[0].0
        )
    });
    let floor_took = time(floor)?;
    if floor_took <= target {
        // Safe and within the target: more passes while they still fit.
        let (mut params, mut took) = (floor, floor_took);
        loop {
            let next = HashParams {
                t_cost: params.t_cost + 1,
                ..params
            };
            let next_took = time(next)?;
            if next_took > target {
                break;
            }
            params = next;
            took = next_took;
        }
        if params.t_cost == floor.t_cost {
            notes.extend(why_these_passes);
        }
        return Ok(Choice {
            params,
            took,
            notes,
        });
    }
    // The fewest safe passes at this memory are too slow. Fewer passes are
    // safe only with more memory: try OWASP's rows with fewer passes.
    for t in (1..floor.t_cost).rev() {
        let Some(m) = owasp_min_memory(t) else {
            continue;
        };
        let candidate = HashParams {
            m_cost: m.max(floor.m_cost),
            t_cost: t,
            p_cost,
        };
        let took = time(candidate)?;
        if took <= target {
            notes.push(format!(
                "{floor} takes {:.1} ms, over the {} ms target: passes lowered to {t} only with memory raised to {} KiB, OWASP's minimum for {t} passes",
                ms(floor_took),
                target.as_millis(),
                candidate.m_cost
            ));
            return Ok(Choice {
                params: candidate,
                took,
                notes,
            });
        }
    }
    notes.extend(why_these_passes);
    notes.push(format!(
        "WARNING: the {} ms target cannot be met with a safe configuration on this machine: \
         the OWASP minimum {floor} costs {:.1} ms per hash here. Recommending it anyway; \
         meet the latency with more cores (sesame plan), not a weaker hash.",
        target.as_millis(),
        ms(floor_took)
    ));
    Ok(Choice {
        params: floor,
        took: floor_took,
        notes,
    })
}

/// The argon2 crate's own one-shot hash (fresh working memory each time).
fn library_hash(params: HashParams) -> anyhow::Result<impl Fn(&[u8]) + Clone + Send> {
    use argon2::password_hash::PasswordHasher as _;
    let p = argon2::Params::new(params.m_cost, params.t_cost, params.p_cost, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    Ok(move |pw: &[u8]| {
        let _ = argon2.hash_password(pw);
    })
}

/// Hashes per second with `threads` threads hashing back to back: the
/// ceiling of any login path with these parameters on this machine.
pub fn raw_rate(
    threads: usize,
    window: Duration,
    hash: impl Fn(&[u8]) + Clone + Send,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let hash = hash.clone();
                scope.spawn(move || {
                    let mut done = 0u64;
                    while started.elapsed() < window {
                        hash(format!("raw-{t}-{done}").as_bytes());
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).collect()
    });
    Ok(counts.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine as the finding measured it: m=19456 t=1 in 15.5 ms,
    /// and time proportional to memory times passes.
    fn model(params: HashParams) -> anyhow::Result<Duration> {
        let work = f64::from(params.m_cost) * f64::from(params.t_cost);
        Ok(Duration::from_secs_f64(15.5e-3 * work / 19_456.0))
    }

    fn choose_ms(m_cost: u32, target_ms: u64) -> Choice {
        choose(m_cost, 1, Duration::from_millis(target_ms), model).unwrap()
    }

    fn params(m_cost: u32, t_cost: u32) -> HashParams {
        HashParams {
            m_cost,
            t_cost,
            p_cost: 1,
        }
    }

    #[test]
    fn the_owasp_table_is_the_floor() {
        for (m, t) in OWASP_ARGON2ID {
            assert!(is_owasp_safe(params(m, t)), "m={m} t={t}");
            assert!(!is_owasp_safe(params(m - 1, t)), "m={} t={t}", m - 1);
        }
        assert!(
            !is_owasp_safe(params(19_456, 1)),
            "the finding's m=19456 t=1"
        );
        assert!(is_owasp_safe(params(19_456, 3)));
        assert!(is_owasp_safe(params(7_168, 9)));
        assert!(!is_owasp_safe(params(7_000, 9)));
        assert!(!is_owasp_safe(params(1 << 20, 0)));
        assert_eq!(owasp_min_passes(32_768), Some(2));
        assert_eq!(owasp_min_passes(4_096), None);
    }

    #[test]
    fn a_target_below_the_minimum_gets_the_minimum_and_a_warning() {
        // The finding: --target-ms 25 recommended m=19456 t=1 (15.5 ms).
        let choice = choose_ms(19_456, 25);
        assert_eq!(choice.params, params(19_456, 2));
        let notes = choice.notes.join("\n");
        assert!(notes.contains("25 ms target cannot be met"), "{notes}");
        assert!(notes.contains("costs 31.0 ms per hash here"), "{notes}");
        assert!(notes.contains("one pass needs m >= 47104"), "{notes}");
    }

    #[test]
    fn passes_rise_from_the_owasp_minimum_while_the_target_allows() {
        let choice = choose_ms(19_456, 40);
        assert_eq!(choice.params, params(19_456, 2));
        assert!(!choice.notes.join("\n").contains("WARNING"));
        assert_eq!(choose_ms(19_456, 50).params, params(19_456, 3));
        assert_eq!(choose_ms(47_104, 40).params, params(47_104, 1));
    }

    #[test]
    fn fewer_passes_only_with_more_memory() {
        // m=32768 t=2 takes 52 ms; one pass is safe with 47104 KiB (37.5 ms).
        let choice = choose_ms(32_768, 40);
        assert_eq!(choice.params, params(47_104, 1));
        assert!(
            choice
                .notes
                .join("\n")
                .contains("memory raised to 47104 KiB"),
            "{:?}",
            choice.notes
        );
    }

    #[test]
    fn memory_below_every_owasp_row_is_raised() {
        let choice = choose_ms(1_024, 1);
        assert_eq!(choice.params, params(7_168, 5));
        let notes = choice.notes.join("\n");
        assert!(
            notes.contains("memory raised from 1024 to 7168 KiB"),
            "{notes}"
        );
        assert!(notes.contains("cannot be met"), "{notes}");
    }

    #[test]
    fn never_less_than_an_owasp_configuration() {
        for m_cost in [
            256, 1_024, 7_168, 8_000, 9_216, 19_456, 32_768, 47_104, 65_536,
        ] {
            for target_ms in [1, 5, 10, 15, 20, 25, 30, 40, 60, 100, 250] {
                let choice = choose_ms(m_cost, target_ms);
                assert!(
                    is_owasp_safe(choice.params),
                    "m={m_cost} target {target_ms} ms: {}",
                    choice.params
                );
                let warned = choice.notes.iter().any(|n| n.contains("cannot be met"));
                assert_eq!(
                    warned,
                    choice.took > Duration::from_millis(target_ms),
                    "m={m_cost} target {target_ms} ms: {choice:?}"
                );
            }
        }
    }
}
