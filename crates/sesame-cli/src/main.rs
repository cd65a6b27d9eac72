//! `sesame`: one binary, one subcommand per job. This file only wires.

mod commands;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = commands::Cli::parse();
    commands::init_tracing(&cli.log);
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sesame: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
