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
    /// Hashes timed per candidate (the median counts).
    #[arg(long, env = "SESAME_CALIBRATE_SAMPLES", default_value_t = 5)]
    samples: usize,
}

/// Median time of one hash with these parameters.
pub fn time_hash(params: HashParams, samples: usize) -> anyhow::Result<Duration> {
    let hasher = PasswordHasher::new(params)?;
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
