//! Writes a synthetic sesame event log with a known incident, for the
//! benchmark (scripts/bench-triage) and for trying `sesame triage` out:
//!
//!     cargo run --release -p sesame-triage --example gen-eventlog -- \
//!         --incident deploy --mb 300 --out /tmp/events.log

use clap::Parser;
use sesame_triage::synth::{generate, Incident, Scenario};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

/// Bytes of one generated line, about: sizes the log from --mb.
const LINE_BYTES: f64 = 380.0;

#[derive(Parser)]
struct Args {
    /// Output file; with --files N, N files named FILE.0 .. FILE.N-1.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "deploy")]
    incident: Incident,
    /// Normal logins per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Approximate size to write, in MB; sets the duration.
    #[arg(long, conflicts_with = "seconds")]
    mb: Option<f64>,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 1200)]
    seconds: u64,
    /// Files (instances' logs) to spread the events over.
    #[arg(long, default_value_t = 1)]
    files: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let seconds = match args.mb {
        Some(mb) => (mb * 1e6 / (LINE_BYTES * args.rate)).ceil().max(60.0) as u64,
        None => args.seconds,
    };
    let scenario = Scenario {
        seconds,
        rate: args.rate,
        incident: args.incident,
        incident_at: seconds / 3,
        instances: args.files.max(4),
        seed: args.seed,
        ..Scenario::default()
    };
    let mut writers: Vec<BufWriter<File>> = if args.files <= 1 {
        vec![BufWriter::new(File::create(&args.out)?)]
    } else {
        (0..args.files)
            .map(|i| File::create(format!("{}.{i}", args.out.display())).map(BufWriter::new))
            .collect::<Result<_, _>>()?
    };
    let events = generate(&scenario, &mut writers)?;
    eprintln!(
        "wrote {events} events ({seconds} s of traffic, {:?} at {} s)",
        args.incident, scenario.incident_at
    );
    Ok(())
}
