mod calibrate;
mod serve;
mod shared;
mod user;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// sesame: a login service (Argon2id, opaque sessions) and the operator's
/// toolkit around it. Every flag can also be set as an environment variable
/// `SESAME_*`, shown in each command's --help.
#[derive(Debug, Parser)]
#[command(name = "sesame", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Diagnostic log filter (tracing's env-filter syntax), written to stderr.
    #[arg(
        long = "log",
        env = "SESAME_LOG",
        default_value = "info",
        global = true
    )]
    pub filter: String,
    /// Diagnostic log format.
    #[arg(
        long,
        env = "SESAME_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the login service.
    Serve(serve::ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(shared::StorageArgs),
    /// Manage users from the command line.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Find Argon2id parameters that take a target time per hash on this machine.
    Calibrate(calibrate::CalibrateArgs),
    /// What happened to logins: timeline, who is affected, which stage, which
    /// cause, from the event logs (plain or gzip, many instances).
    Triage(sesame_triage::TriageArgs),
    /// Digest MySQL/MariaDB slow query logs: pt-query-digest classes, mysqldumpslow flags.
    Slowlog(sesame_slowlog::SlowlogArgs),
    /// Capacity plan: cores, pods, autoscaler bounds and database load for a peak login rate.
    Plan(sesame_rollout::PlanArgs),
    /// Judge a canary against its baseline (exit 0 pass, 1 fail, 2 marginal, 3 cannot judge).
    Canary(sesame_rollout::CanaryArgs),
    /// Open-loop load and event-log replay, latency without coordinated omission;
    /// `load seed` creates the synthetic users.
    Load(sesame_load::LoadArgs),
}

/// A command line that cannot work as given, found after parsing: exits 64
/// (EX_USAGE) like clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn init_tracing(args: &LogArgs) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(&args.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: not in files, pipes or log shippers.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Migrate(args) => shared::runtime()?.block_on(async {
            sesame_storage::migrate(&args.storage_config()).await?;
            println!("migrated {}", args.database_display());
            Ok(ExitCode::SUCCESS)
        }),
        Command::User(cmd) => user::run(cmd),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Triage(args) => sesame_triage::run(args),
        Command::Slowlog(args) => sesame_slowlog::run(args),
        Command::Plan(args) => sesame_rollout::plan::run(args),
        Command::Canary(args) => sesame_rollout::canary::run(args),
        Command::Load(args) => sesame_load::run(args),
    }
}
