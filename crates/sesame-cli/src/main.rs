//! `sesame`: one binary, one subcommand per job. This file only wires.

mod commands;

use clap::Parser;

/// A mistyped command line (EX_USAGE from sysexits.h). Not clap's 2, which
/// `sesame canary` answers for a marginal verdict.
const USAGE_ERROR: u8 = 64;

fn main() -> std::process::ExitCode {
    let cli = match commands::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are "errors" that go to stdout and succeed.
            let code = if e.use_stderr() { USAGE_ERROR } else { 0 };
            return std::process::ExitCode::from(code);
        }
    };
    commands::init_tracing(&cli.log);
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sesame: {e:#}");
            if e.downcast_ref::<commands::UsageError>().is_some() {
                std::process::ExitCode::from(USAGE_ERROR)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
