//! `sesame plan`: from a peak login rate and the cost of one hash to cores,
//! pods, autoscaler bounds, queue budget and database load, showing each step
//! so the numbers can be checked by hand and argued with.
//!
//! The model: a password login is one Argon2id hash on one core (the rest of
//! the request is small next to it), so a fleet's capacity is its cores
//! divided by the time of one hash. Everything else follows.

use serde::Serialize;
use sesame_domain::{HashParams, PasswordHasher};
use sesame_toolkit::argon2_flags::Argon2Args;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

/// CPU a login costs beyond its hash (parsing, lookup, session, event):
/// the design holds the service to >= 95% of the raw hash rate.
pub const SERVING_OVERHEAD: f64 = 0.05;
/// Never fewer replicas than this: one can be in a rollout, one can be
/// evicted, and the third still serves (and spreads over zones).
pub const MIN_REPLICAS_FLOOR: u64 = 3;
/// Memory a pod needs besides its hash buffers (runtime, caches, buffers).
pub const BASE_MEMORY_MIB: u64 = 128;

/// Capacity plan: cores, pods, autoscaler bounds, queue budget and database
/// load for a peak login rate, with the arithmetic shown.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Peak password logins per second to carry.
    #[arg(long, env = "SESAME_PLAN_PEAK_LOGINS")]
    pub peak_logins: f64,
    /// Average logins per second; sets the autoscaler's minimum (default:
    /// the floor of 3 replicas).
    #[arg(long, env = "SESAME_PLAN_AVG_LOGINS")]
    pub avg_logins: Option<f64>,
    /// Time of one hash on one production core, in ms (default: measured on
    /// this machine with the --hash-* parameters).
    #[arg(long, env = "SESAME_PLAN_HASH_MS")]
    pub hash_ms: Option<f64>,
    /// CPUs per pod (its request and limit, and its hash workers).
    #[arg(long, env = "SESAME_PLAN_POD_CPUS", default_value_t = 4)]
    pub pod_cpus: u64,
    /// CPU utilization the autoscaler keeps; the rest is surge headroom.
    #[arg(long, env = "SESAME_PLAN_TARGET_UTILIZATION", default_value_t = 0.7)]
    pub target_utilization: f64,
    /// Latency budget of a login's hash stage in ms (as `serve`'s).
    #[arg(long, env = "SESAME_LATENCY_BUDGET_MS", default_value_t = 250)]
    pub latency_budget_ms: u64,
    /// Indexed point reads per second one database replica serves.
    #[arg(long, env = "SESAME_PLAN_REPLICA_READS", default_value_t = 20_000)]
    pub replica_reads: u64,
    /// The hash to measure (as `serve`'s) and to size pod memory for.
    #[command(flatten)]
    pub hash: Argon2Args,
    /// Print the plan as JSON.
    #[arg(long, env = "SESAME_PLAN_JSON")]
    pub json: bool,
}

/// What the plan starts from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanInputs {
    pub peak_logins: f64,
    pub avg_logins: Option<f64>,
    pub hash_ms: f64,
    /// Where hash_ms came from: "given", or measured here (with the fastest).
    pub hash_source: String,
    pub pod_cpus: u64,
    pub target_utilization: f64,
    pub latency_budget_ms: u64,
    pub replica_reads: u64,
    pub hash_m_cost_kib: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub inputs: PlanInputs,
    /// Cores busy hashing and serving at peak.
    pub busy_cores: f64,
    /// Cores to provision so that peak runs at the target utilization.
    pub cores: f64,
    /// Logins per second one pod completes at 100% CPU.
    pub pod_capacity: f64,
    pub pod: PodResources,
    pub hpa: Autoscaling,
    /// Logins one pod may queue before the latency budget is spent; the
    /// service sheds beyond it.
    pub queue_budget_per_pod: u64,
    /// The same over the fleet at peak size.
    pub queue_budget_fleet: u64,
    /// Indexed user lookups per second at peak (one per admitted login).
    pub db_reads: f64,
    pub db_replicas: u64,
    /// Session writes per second to Redis at peak, at most one per login.
    pub session_writes: f64,
    /// The arithmetic, one line per step.
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodResources {
    pub cpu: u64,
    pub memory_mib: u64,
    pub hash_workers: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Autoscaling {
    pub min_replicas: u64,
    pub max_replicas: u64,
    pub cpu_utilization_percent: u64,
    /// Average hash queue depth per pod the autoscaler keeps.
    pub queue_depth_target: u64,
}

impl Plan {
    pub fn compute(inputs: PlanInputs) -> anyhow::Result<Self> {
        let i = &inputs;
        anyhow::ensure!(i.peak_logins > 0.0, "--peak-logins must be positive");
        anyhow::ensure!(i.hash_ms > 0.0, "--hash-ms must be positive");
        anyhow::ensure!(i.pod_cpus > 0, "--pod-cpus must be at least 1");
        anyhow::ensure!(
            i.target_utilization > 0.0 && i.target_utilization <= 1.0,
            "--target-utilization must be in (0, 1]"
        );
        anyhow::ensure!(i.replica_reads > 0, "--replica-reads must be positive");
        let mut steps = Vec::new();
        let mut step = |line: String| steps.push(line);
        let hash_s = i.hash_ms / 1e3;
        let per_login_s = hash_s * (1.0 + SERVING_OVERHEAD);
        let u = i.target_utilization;
        let c = i.pod_cpus;

        let busy_cores = i.peak_logins * per_login_s;
        step(format!(
            "busy cores at peak  = {} logins/s x {} ms x {:.2} (serving overhead) = {:.1}",
            i.peak_logins,
            i.hash_ms,
            1.0 + SERVING_OVERHEAD,
            busy_cores
        ));
        let cores = busy_cores / u;
        step(format!(
            "cores to provision  = {busy_cores:.1} / {u} target utilization = {cores:.1}"
        ));
        let pod_capacity = c as f64 / per_login_s;
        step(format!(
            "one pod's capacity  = {c} cpus / ({} ms x {:.2}) = {pod_capacity:.0} logins/s at 100% CPU",
            i.hash_ms,
            1.0 + SERVING_OVERHEAD
        ));
        let max_replicas = ceil(cores / c as f64).max(MIN_REPLICAS_FLOOR);
        step(format!(
            "HPA max replicas    = ceil({cores:.1} / {c} cpus) = {max_replicas} (carries {:.0} logins/s before shedding)",
            max_replicas as f64 * pod_capacity
        ));
        let min_replicas = match i.avg_logins {
            Some(avg) => {
                let pods = ceil(avg * per_login_s / u / c as f64);
                let min = pods.max(MIN_REPLICAS_FLOOR).min(max_replicas);
                step(format!(
                    "HPA min replicas    = max({MIN_REPLICAS_FLOOR}, ceil({avg} logins/s x {:.2} ms / {u} / {c} cpus)) = max({MIN_REPLICAS_FLOOR}, {pods}) = {min}",
                    per_login_s * 1e3
                ));
                min
            }
            None => {
                step(format!(
                    "HPA min replicas    = {MIN_REPLICAS_FLOOR} (the floor; give --avg-logins to size it to the average load)"
                ));
                MIN_REPLICAS_FLOOR
            }
        };
        let wait_ms = i.latency_budget_ms as f64 - i.hash_ms;
        // A queued login waits for the logins ahead of it, c at a time.
        let queue_budget_per_pod = if wait_ms > 0.0 {
            (c as f64 * wait_ms / i.hash_ms).floor() as u64
        } else {
            0
        };
        step(format!(
            "queue budget / pod  = floor({c} workers x ({} - {}) ms / {} ms) = {queue_budget_per_pod} logins",
            i.latency_budget_ms, i.hash_ms, i.hash_ms
        ));
        if queue_budget_per_pod == 0 {
            step("  the latency budget is not longer than one hash: every login that cannot start at once is shed".into());
        }
        let queue_budget_fleet = queue_budget_per_pod * max_replicas;
        step(format!(
            "queue budget, fleet = {queue_budget_per_pod} x {max_replicas} pods = {queue_budget_fleet} logins"
        ));
        let queue_depth_target = ceil(queue_budget_per_pod as f64 / 4.0).max(1);
        step(format!(
            "HPA queue target    = ceil({queue_budget_per_pod} / 4) = {queue_depth_target} per pod (scale out before a quarter of the budget is spent)"
        ));
        let memory_mib = round_up(
            BASE_MEMORY_MIB + ceil(c as f64 * i.hash_m_cost_kib as f64 / 1024.0),
            64,
        );
        step(format!(
            "pod memory          = {BASE_MEMORY_MIB} MiB + {c} workers x {} KiB, rounded up to 64 MiB = {memory_mib} MiB",
            i.hash_m_cost_kib
        ));
        let db_reads = i.peak_logins;
        let db_replicas = ceil(db_reads / i.replica_reads as f64);
        step(format!(
            "database reads      = {} logins/s x 1 indexed lookup = {db_reads:.0}/s; / {} per replica = {db_replicas} replica(s) (plus one spare)",
            i.peak_logins, i.replica_reads
        ));
        step(format!(
            "session writes      = up to {} /s to Redis (one per successful login)",
            i.peak_logins
        ));
        Ok(Self {
            busy_cores,
            cores,
            pod_capacity,
            pod: PodResources {
                cpu: c,
                memory_mib,
                hash_workers: c,
            },
            hpa: Autoscaling {
                min_replicas,
                max_replicas,
                cpu_utilization_percent: (u * 100.0).round() as u64,
                queue_depth_target,
            },
            queue_budget_per_pod,
            queue_budget_fleet,
            db_reads,
            db_replicas,
            session_writes: i.peak_logins,
            steps,
            inputs,
        })
    }

    pub fn render(&self) -> String {
        let i = &self.inputs;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "capacity plan: {} logins/s at peak, one hash {} ms ({}), {} cpus per pod, {:.0}% target CPU",
            i.peak_logins,
            i.hash_ms,
            i.hash_source,
            i.pod_cpus,
            i.target_utilization * 100.0
        );
        for s in &self.steps {
            let _ = writeln!(out, "  {s}");
        }
        let _ = writeln!(
            out,
            "deploy: resources cpu {c} / memory {m}Mi (requests = limits), SESAME_HASH_WORKERS={c}; \
             HPA {min}..{max} replicas at {cpu}% CPU or {q} queued hashes per pod",
            c = self.pod.cpu,
            m = self.pod.memory_mib,
            min = self.hpa.min_replicas,
            max = self.hpa.max_replicas,
            cpu = self.hpa.cpu_utilization_percent,
            q = self.hpa.queue_depth_target
        );
        out
    }
}

fn ceil(x: f64) -> u64 {
    // Guards against 281.00000000000006 from float arithmetic.
    (x - 1e-9).ceil().max(0.0) as u64
}

fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let params = args.hash.params();
    let (hash_ms, hash_source) = match args.hash_ms {
        Some(ms) => (ms, "given".to_owned()),
        None => {
            let t = measure_hash(params, 7)?;
            let source = format!(
                "median of 7 measured here, fastest {} ms, argon2id {params}",
                t.fastest_ms
            );
            (t.median_ms, source)
        }
    };
    let plan = Plan::compute(PlanInputs {
        peak_logins: args.peak_logins,
        avg_logins: args.avg_logins,
        hash_ms,
        hash_source,
        pod_cpus: args.pod_cpus,
        target_utilization: args.target_utilization,
        latency_budget_ms: args.latency_budget_ms,
        replica_reads: args.replica_reads,
        hash_m_cost_kib: params.m_cost,
    })?;
    let report = if args.json {
        serde_json::to_string_pretty(&plan)? + "\n"
    } else {
        plan.render()
    };
    sesame_toolkit::output::emit(&report)?;
    Ok(ExitCode::SUCCESS)
}

/// Times of one hash on one core of this machine, in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HashTiming {
    pub median_ms: f64,
    pub fastest_ms: f64,
}

/// Times `samples` hashes after a warm-up (rounded to 0.1 ms so the printed
/// arithmetic stays readable). A median far above the fastest means the
/// machine was busy: plan with a quiet one, or give --hash-ms.
pub fn measure_hash(params: HashParams, samples: usize) -> anyhow::Result<HashTiming> {
    let hasher = PasswordHasher::new(params)?;
    // Measured as a hash worker runs: in memory kept between hashes.
    sesame_domain::hashing::keep_memory_on_this_thread();
    hasher.hash(b"warm-up")?;
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples.max(1) {
        let started = Instant::now();
        hasher.hash(format!("plan-{i}").as_bytes())?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let round = |ms: f64| (ms * 10.0).round() / 10.0;
    Ok(HashTiming {
        median_ms: round(times[times.len() / 2]),
        fastest_ms: round(times[0]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(peak: f64, hash_ms: f64) -> PlanInputs {
        PlanInputs {
            peak_logins: peak,
            avg_logins: None,
            hash_ms,
            hash_source: "given".into(),
            pod_cpus: 4,
            target_utilization: 0.7,
            latency_budget_ms: 250,
            replica_reads: 20_000,
            hash_m_cost_kib: 19_456,
        }
    }

    #[test]
    fn the_documented_example() {
        // The book, "Capacity": 30,000 logins/s at peak, 925/s on average, 25 ms.
        let plan = Plan::compute(PlanInputs {
            avg_logins: Some(925.0),
            ..inputs(30_000.0, 25.0)
        })
        .unwrap();
        assert!((plan.busy_cores - 787.5).abs() < 1e-9);
        assert!((plan.cores - 1125.0).abs() < 1e-9);
        assert!((plan.pod_capacity - 152.38).abs() < 0.01);
        assert_eq!(plan.hpa.max_replicas, 282); // ceil(1125 / 4) = ceil(281.25)
        assert_eq!(plan.hpa.min_replicas, 9); // ceil(925 x 0.02625 / 0.7 / 4) = ceil(8.67)
        assert_eq!(plan.hpa.cpu_utilization_percent, 70);
        assert_eq!(plan.queue_budget_per_pod, 36); // 4 x (250 - 25) / 25
        assert_eq!(plan.queue_budget_fleet, 36 * 282);
        assert_eq!(plan.hpa.queue_depth_target, 9);
        assert_eq!(plan.pod.memory_mib, 256); // 128 + 4 x 19 MiB = 204, rounded up
        assert_eq!(plan.db_replicas, 2);
        assert_eq!(plan.db_reads, 30_000.0);
        let text = plan.render();
        assert!(text.contains("= 282"), "{text}");
        assert!(text.contains("cpu 4 / memory 256Mi"), "{text}");
    }

    #[test]
    fn the_design_brief_two_core_machine() {
        // A 2-core machine with 25 ms hashes tops out near 76 logins/s.
        let plan = Plan::compute(PlanInputs {
            pod_cpus: 2,
            ..inputs(70.0, 25.0)
        })
        .unwrap();
        assert!((plan.pod_capacity - 76.19).abs() < 0.01);
        assert_eq!(plan.hpa.max_replicas, 3, "the floor holds for tiny loads");
        assert_eq!(plan.hpa.min_replicas, 3);
    }

    #[test]
    fn exact_multiples_do_not_round_up_a_pod() {
        // 8,000 x 26.25 ms / 0.7 is 300 cores, 75 pods; in floating point
        // 75.00000000000001 pods, which a bare ceil() would make 76.
        let plan = Plan::compute(inputs(8_000.0, 25.0)).unwrap();
        assert_eq!(plan.hpa.max_replicas, 75, "cores {}", plan.cores);
    }

    #[test]
    fn a_budget_shorter_than_a_hash_queues_nothing() {
        let plan = Plan::compute(PlanInputs {
            latency_budget_ms: 20,
            ..inputs(1000.0, 25.0)
        })
        .unwrap();
        assert_eq!(plan.queue_budget_per_pod, 0);
        assert_eq!(plan.hpa.queue_depth_target, 1);
        assert!(plan
            .render()
            .contains("every login that cannot start at once is shed"));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(Plan::compute(inputs(0.0, 25.0)).is_err());
        assert!(Plan::compute(inputs(100.0, 0.0)).is_err());
        assert!(Plan::compute(PlanInputs {
            target_utilization: 1.5,
            ..inputs(100.0, 25.0)
        })
        .is_err());
    }

    #[test]
    fn measures_a_cheap_hash() {
        let t = measure_hash(
            HashParams {
                m_cost: 64,
                t_cost: 1,
                p_cost: 1,
            },
            3,
        )
        .unwrap();
        assert!((0.0..1000.0).contains(&t.median_ms));
        assert!(t.fastest_ms <= t.median_ms);
    }
}
