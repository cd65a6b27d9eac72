use sesame_domain::{HashParams, PasswordHasher};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Wanted time per hash, in milliseconds, on one core of this machine.
    #[arg(long, env = "SESAME_CALIBRATE_TARGET_MS", default_value_t = 25)]
    target_ms: u64,
    /// Memory cost in KiB to keep (the OWASP minimum by default); passes are
    /// raised until the target is met, memory lowered only if one pass is
    /// already too slow.
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
    let mut params = HashParams {
        m_cost: args.m_cost,
        t_cost: 1,
        p_cost: args.p_cost,
    };
    let mut took = time_hash(params, args.samples)?;
    if took > target {
        // One pass is too slow: shrink memory (never below 8 KiB per lane).
        while took > target && params.m_cost / 2 >= 8 * params.p_cost {
            params.m_cost /= 2;
            took = time_hash(params, args.samples)?;
        }
    } else {
        loop {
            let next = HashParams {
                t_cost: params.t_cost + 1,
                ..params
            };
            let next_took = time_hash(next, args.samples)?;
            if next_took > target {
                break;
            }
            params = next;
            took = next_took;
        }
    }
    println!(
        "argon2id {params}: {:.1} ms per hash (median of {})",
        took.as_secs_f64() * 1e3,
        args.samples
    );
    println!(
        "  about {:.0} hashes/s per core",
        1.0 / took.as_secs_f64().max(1e-9)
    );
    println!(
        "  sesame serve --hash-m-cost {} --hash-t-cost {} --hash-p-cost {}",
        params.m_cost, params.t_cost, params.p_cost
    );
    Ok(ExitCode::SUCCESS)
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
