//! `sesame load`: drives open-loop load at a login service, or replays a
//! recorded event log, and measures latency from each request's intended send
//! time so that a stall cannot hide behind the requests it delayed.
//!
//! The pieces: [`schedule`] (when requests are due), [`scenario`] (what they
//! are), [`replay`] (an event log as a schedule), [`runner`] (sending and
//! timing), [`stats`] and [`report`] (HdrHistograms to text, JSON and HTML),
//! [`seed`] (the synthetic users), [`acked`] (the registrations the service
//! acknowledged).

pub mod acked;
pub mod client;
pub mod html;
pub mod replay;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod seed;
pub mod stats;

use acked::AckedLog;
use anyhow::{bail, Context};
use clap::builder::BoolishValueParser;
use client::{Requests, Target, Tokens, Users};
use report::{Report, RunInfo};
use scenario::{ClientProfile, Drawn, Listed, Merged, Mix, Op, Source};
use schedule::{parse_rate, ArrivalProcess, ArrivalTimes, RateProfile};
use sesame_toolkit::argon2_flags::Argon2Args;
use sesame_toolkit::duration;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Load-test a sesame service (or replay recorded traffic at it), open loop:
/// requests go out on schedule whatever the target does, and latency counts
/// from when each one was due.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LoadArgs {
    #[command(subcommand)]
    pub command: Option<LoadCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum LoadCommand {
    /// Create the synthetic users the load logs in as.
    Seed(SeedArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Base URL of the service.
    #[arg(
        long,
        env = "SESAME_LOAD_TARGET",
        default_value = "http://127.0.0.1:8080"
    )]
    pub target: String,
    /// Allow a target that is not on this machine (loopback).
    #[arg(long, env = "SESAME_LOAD_ALLOW_REMOTE", value_parser = BoolishValueParser::new())]
    pub allow_remote: bool,

    /// Constant rate: requests per second (`200`, `200/s`, `12000/m`).
    #[arg(long, env = "SESAME_LOAD_RATE", value_parser = parse_rate,
          conflicts_with_all = ["stages", "replay", "max"])]
    pub rate: Option<f64>,
    /// Stages of constant rate, e.g. "50/s:30s,200/s:1m,0/s:10s".
    #[arg(long, env = "SESAME_LOAD_STAGES", conflicts_with_all = ["replay", "max"])]
    pub stages: Option<RateProfile>,
    /// How arrivals are spread at a given rate.
    #[arg(
        long,
        env = "SESAME_LOAD_ARRIVAL",
        value_enum,
        default_value = "uniform"
    )]
    pub arrival: ArrivalProcess,
    /// Replay sesame event logs (`sesame serve --event-log FILE`): their
    /// arrival times, users, IPs, regions, platforms and outcomes. Plain or
    /// gzip, several files (all instances', rotated ones; merged by time),
    /// `-` for standard input.
    #[arg(long, env = "SESAME_LOAD_REPLAY", value_name = "EVENTLOG", num_args = 1.., conflicts_with_all = ["max", "mix", "get"])]
    pub replay: Vec<PathBuf>,
    /// Replay speed: 2 replays an hour of traffic in 30 minutes.
    #[arg(
        long,
        env = "SESAME_LOAD_SPEED",
        default_value_t = 1.0,
        requires = "replay"
    )]
    pub speed: f64,
    /// Closed loop at full speed: every connection sends its next request as
    /// soon as it has an answer. Finds the throughput ceiling; its latencies
    /// are service times, not what users would see at that rate.
    #[arg(long, env = "SESAME_LOAD_MAX", value_parser = BoolishValueParser::new())]
    pub max: bool,

    /// Stop after this long (default: the stages' or the log's length; 30s
    /// for --rate and --max).
    #[arg(long, env = "SESAME_LOAD_DURATION", value_parser = duration::parse)]
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    #[arg(long, env = "SESAME_LOAD_REQUESTS")]
    pub requests: Option<u64>,

    /// Operation mix, relative weights: login, wrong-password, unknown-user,
    /// session, register (each registration creates a new user, named
    /// `PREFIXreg-RUNID-N`).
    #[arg(
        long,
        env = "SESAME_LOAD_MIX",
        default_value = "login=80,wrong-password=10,unknown-user=5,session=5"
    )]
    pub mix: Mix,
    /// Send plain GETs of this path instead of the login mix (e.g. /healthz,
    /// to measure the tool itself).
    #[arg(long, env = "SESAME_LOAD_GET", conflicts_with = "mix")]
    pub get: Option<String>,
    /// Add an attacker: credential stuffing (wrong passwords for seeded and
    /// unknown users) at this rate, on top of the schedule.
    #[arg(long, env = "SESAME_LOAD_ATTACK_RATE", value_parser = parse_rate)]
    pub attack_rate: Option<f64>,
    /// How many IP addresses the attacker sends from.
    #[arg(long, env = "SESAME_LOAD_ATTACK_IPS", default_value_t = 4)]
    pub attack_ips: u32,

    #[command(flatten)]
    pub users: UserArgs,

    /// Connections (and requests in flight) at most.
    #[arg(long, env = "SESAME_LOAD_CONNECTIONS", default_value_t = 64)]
    pub connections: usize,
    /// Threads sending (default: the available cores).
    #[arg(long, env = "SESAME_LOAD_THREADS")]
    pub threads: Option<usize>,
    /// A request not answered this long after its intended send time is a
    /// timeout error.
    #[arg(long, env = "SESAME_LOAD_TIMEOUT", value_parser = duration::parse, default_value = "10s")]
    pub timeout: Duration,
    /// Seed of the random arrivals and mix, for repeatable runs.
    #[arg(long, env = "SESAME_LOAD_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Append the name of every user whose registration was answered 201
    /// here, one a line, as each answer arrives (so the list is complete even
    /// if the tool is killed).
    #[arg(long, env = "SESAME_LOAD_ACKED_REGISTRATIONS")]
    pub acked_registrations: Option<PathBuf>,

    /// Write the report as JSON here.
    #[arg(long, env = "SESAME_LOAD_JSON")]
    pub json: Option<PathBuf>,
    /// Write the report as a self-contained HTML page here.
    #[arg(long, env = "SESAME_LOAD_HTML")]
    pub html: Option<PathBuf>,
    /// No live progress line.
    #[arg(long, env = "SESAME_LOAD_NO_PROGRESS", value_parser = BoolishValueParser::new())]
    pub no_progress: bool,
}

/// The synthetic users, shared by `seed` and the run.
#[derive(Debug, Clone, clap::Args)]
pub struct UserArgs {
    /// How many synthetic users (`PREFIX0` .. `PREFIX{N-1}`).
    #[arg(long = "users", env = "SESAME_LOAD_USERS", default_value_t = 1000)]
    pub count: u32,
    /// Name prefix of the synthetic users.
    #[arg(long, env = "SESAME_LOAD_USER_PREFIX", default_value = "load-")]
    pub user_prefix: String,
    /// The synthetic users' password.
    #[arg(
        long,
        env = "SESAME_LOAD_PASSWORD",
        default_value = "Kx7-synthetic-Qm2-Pw",
        hide_default_value = true
    )]
    pub password: String,
}

impl UserArgs {
    pub fn users(&self) -> Users {
        Users {
            prefix: self.user_prefix.clone(),
            count: self.count,
            password: self.password.clone(),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub users: UserArgs,
    /// Fast path: import straight into this database (`sqlite:PATH`), one
    /// precomputed hash for all users.
    #[arg(long, env = "SESAME_DATABASE_URL")]
    pub database: Option<String>,
    /// Slow path: register each user through `POST /v1/users` of this service.
    #[arg(long, env = "SESAME_LOAD_TARGET", conflicts_with = "database")]
    pub target: Option<String>,
    #[arg(long, env = "SESAME_LOAD_ALLOW_REMOTE", value_parser = BoolishValueParser::new())]
    pub allow_remote: bool,
    /// The fast path's hash: use the server's, or the first logins rehash.
    #[command(flatten)]
    pub hash: Argon2Args,
    /// Users per import transaction.
    #[arg(long, env = "SESAME_LOAD_SEED_BATCH", default_value_t = 10_000)]
    pub batch: usize,
    /// Registrations in flight (API path).
    #[arg(long, env = "SESAME_LOAD_CONNECTIONS", default_value_t = 8)]
    pub connections: usize,
    /// No progress bar.
    #[arg(long, env = "SESAME_LOAD_NO_PROGRESS", value_parser = BoolishValueParser::new())]
    pub no_progress: bool,
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs `sesame load` (or `sesame load seed`) on a runtime of its own. The
/// load itself is sent from threads of its own (see [`runner`]); this
/// runtime plans, reports and seeds.
pub fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match args.command {
            Some(LoadCommand::Seed(seed_args)) => {
                seed::seed(&seed_args).await?;
            }
            None => {
                let report = execute(&args.run).await?;
                sesame_toolkit::output::emit(&report::text(&report))?;
                write_outputs(&args.run, &report)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Writes the `--json` and `--html` files the arguments ask for.
pub fn write_outputs(args: &RunArgs, report: &Report) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(report))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The default length of an open-ended run: it always stops by itself.
const DEFAULT_DURATION: Duration = Duration::from_secs(30);

/// Plans the run the arguments describe, runs it, and returns the report.
pub async fn execute(args: &RunArgs) -> anyhow::Result<Report> {
    let target = Target::resolve(&args.target, args.allow_remote).await?;
    let users = args.users.users();
    let mix = match &args.get {
        Some(_) => Mix::only(Op::Get),
        None => args.mix.clone(),
    };
    let planned = plan_users(args, &mix, users.count)?;
    let mut clients = planned.clients;
    let mut source = planned.source;
    let mut schedule = planned.schedule;
    if let Some(rate) = args.attack_rate.filter(|r| *r > 0.0) {
        let Some(end) = planned.end.filter(|_| !args.max) else {
            bail!("--attack-rate needs an open-loop schedule (--rate, --stages or --replay)");
        };
        let first = clients.len() as u32;
        let ips = args.attack_ips.max(1);
        clients.extend(scenario::attacker_clients(ips as usize));
        let times = ArrivalTimes::new(
            RateProfile::constant(rate, end),
            args.arrival,
            args.seed.wrapping_add(2),
        );
        let attacker = Drawn::new(
            Some(times),
            Mix::only(Op::Attack),
            users.count,
            first..first + ips,
            args.seed.wrapping_add(3),
        );
        source = Box::new(Merged::new(source, Box::new(attacker)));
        schedule = format!("{schedule}; attacker {rate}/s from {ips} IPs");
    }

    let requests = Arc::new(Requests {
        target: target.clone(),
        get_path: args.get.clone().unwrap_or_default(),
        users,
        clients,
        tokens: Tokens::default(),
        run_id: client::new_run_id(),
    });
    if mix.ops().any(|op| op == Op::Register) {
        check_registered_names(&requests)?;
    }
    let acked = match &args.acked_registrations {
        Some(path) => Some(Arc::new(AckedLog::open(path)?)),
        None => None,
    };
    if args.replay.is_empty() && mix.ops().any(|op| op == Op::Session) {
        prime_sessions(&requests).await?;
    }
    let mode = if args.max { "closed-loop" } else { "open-loop" };
    let data = runner::run(
        runner::Plan {
            source,
            closed_loop: args.max,
            end: planned.end,
            max_requests: args.requests,
            connections: args.connections,
            threads: args.threads.unwrap_or_else(available_cores),
            timeout: args.timeout,
            progress: !args.no_progress,
            acked: acked.clone(),
        },
        requests,
    )
    .await;
    if let Some(acked) = acked {
        acked.check()?;
    }
    let intended_span = (!args.max).then(|| planned.end.unwrap_or(data.last_due));
    Ok(report::build(
        RunInfo {
            mode,
            schedule,
            target: target.url,
            connections: args.connections,
            intended_span,
        },
        data,
    ))
}

/// The users' side of a run (everything but the attacker).
struct UserPlan {
    source: Box<dyn Source>,
    clients: Vec<ClientProfile>,
    schedule: String,
    /// Nothing due at or after this is sent.
    end: Option<Duration>,
}

/// Synthetic users' addresses, regions and platforms to draw from.
const USER_CLIENTS: usize = 1024;

fn plan_users(args: &RunArgs, mix: &Mix, users: u32) -> anyhow::Result<UserPlan> {
    if !args.replay.is_empty() {
        let replay = replay::load(&args.replay, args.speed, users)?;
        if replay.distinct_users > users as usize {
            eprintln!(
                "note: the log has {} distinct users and {users} are seeded: several recorded users share one synthetic user",
                replay.distinct_users
            );
        }
        // Just past the last arrival, so that it is sent too.
        let span = replay.span + Duration::from_millis(1);
        let schedule = format!(
            "replay of {} ({} attempts over {} at speed {}; {} lines skipped)",
            sesame_toolkit::input::names(&args.replay),
            replay.arrivals.len(),
            humantime::format_duration(Duration::from_millis(replay.span.as_millis() as u64)),
            args.speed,
            replay.skipped
        );
        return Ok(UserPlan {
            source: Box::new(Listed::new(replay.arrivals)),
            clients: replay.clients,
            schedule,
            end: Some(args.duration.map_or(span, |d| d.min(span))),
        });
    }
    let clients = scenario::user_clients(USER_CLIENTS, args.seed);
    let client_range = 0..USER_CLIENTS as u32;
    if args.max {
        return Ok(UserPlan {
            source: Box::new(Drawn::new(
                None,
                mix.clone(),
                users,
                client_range,
                args.seed,
            )),
            clients,
            schedule: format!(
                "closed loop, as fast as answers come ({})",
                what(&args.get, mix)
            ),
            end: args
                .duration
                .or(args.requests.is_none().then_some(DEFAULT_DURATION)),
        });
    }
    let profile = match (&args.stages, args.rate) {
        (Some(stages), _) => stages.clone(),
        (None, Some(rate)) => {
            RateProfile::constant(rate, args.duration.unwrap_or(DEFAULT_DURATION))
        }
        (None, None) => bail!("choose a schedule: --rate R, --stages SPEC, --replay LOG, or --max"),
    };
    let profile = match args.duration {
        Some(limit) => profile.truncated(limit),
        None => profile,
    };
    let process = match args.arrival {
        ArrivalProcess::Uniform => "uniform",
        ArrivalProcess::Poisson => "Poisson",
    };
    Ok(UserPlan {
        schedule: format!("{profile}, {process} arrivals ({})", what(&args.get, mix)),
        end: Some(profile.total_duration()),
        source: Box::new(Drawn::new(
            Some(ArrivalTimes::new(profile, args.arrival, args.seed)),
            mix.clone(),
            users,
            client_range,
            args.seed.wrapping_add(1),
        )),
        clients,
    })
}

fn what(get: &Option<String>, mix: &Mix) -> String {
    match get {
        Some(path) => format!("GET {path}"),
        None => {
            let ops: Vec<&str> = mix.ops().map(Op::name).collect();
            ops.join(", ")
        }
    }
}

/// Registration names must be valid, and stored as sent, so that the acked
/// list names the accounts as the service has them: the longest one
/// (registration number `u32::MAX`) is checked before any is sent.
fn check_registered_names(requests: &Requests) -> anyhow::Result<()> {
    let name = requests.registered_name(u32::MAX);
    let stored = sesame_domain::Username::parse_new(&name)
        .with_context(|| format!("--user-prefix makes registration names like {name:?}"))?;
    if stored.as_str() != name {
        bail!(
            "--user-prefix makes registration names like {name:?}, which the service stores as {:?}: use a prefix in that form",
            stored.as_str()
        );
    }
    Ok(())
}

/// Session checks need live tokens before the clock starts: a few logins,
/// not measured.
async fn prime_sessions(requests: &Requests) -> anyhow::Result<()> {
    let mut connection = client::connect(&requests.target)
        .await
        .with_context(|| format!("cannot connect to {}", requests.target.url))?;
    for user in 0..requests.users.count.min(8) {
        let login = scenario::Arrival {
            at: None,
            op: Op::Login,
            user,
            client: 0,
        };
        let (status, body) =
            client::exchange(&mut connection, requests.build(&login), true).await?;
        if status == 200 {
            requests.tokens.remember(&body);
        }
    }
    if requests.tokens.is_empty() {
        bail!(
            "session checks need logged-in users, and {} could not log in: seed them first (sesame load seed), or leave session out of --mix",
            requests.users.name(0)
        );
    }
    Ok(())
}
