//! `cargo xtask …`: the RCAR runner. Thin by design: every command parses its flags, calls a library
//! crate and prints what it got.

mod backend;
mod bench;
mod data;
mod demo;
mod eval;
mod progress;
mod rebuild;
mod train;

use clap::{Parser, Subcommand};

/// Counts live heap bytes, so `bench` reports each row's peak (and estimates what a large training
/// batch would need) from the memory in use rather than the resident set.
#[global_allocator]
static ALLOC: rcar_bench::memory::CountingAlloc = rcar_bench::memory::CountingAlloc;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "RCAR in Rust: data, training, evaluation, benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the synthetic dataset if needed, train the demo preset, evaluate it.
    Demo(demo::DemoArgs),
    /// Generate or verify datasets in the SCAN layout.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train an experiment, or resume a run.
    Train(train::TrainArgs),
    /// Evaluate checkpoints or saved similarity matrices under a protocol.
    Eval(eval::EvalArgs),
    /// Time encoders, pair scoring and training steps on each backend against the device's GEMM rate.
    Bench(bench::BenchArgs),
}

impl Command {
    /// The backends this command will run on.
    fn backends(&self) -> Vec<&str> {
        match self {
            Command::Demo(args) => vec![args.backend.as_str()],
            Command::Data(_) => Vec::new(),
            Command::Train(args) => vec![args.backend.as_str()],
            Command::Eval(args) => args.backends(),
            Command::Bench(args) => args.backends.iter().map(String::as_str).collect(),
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let missing = rebuild::missing(cli.command.backends());
    let result = if !missing.is_empty() {
        rebuild::rerun(&missing)
    } else {
        match cli.command {
            Command::Demo(args) => demo::run(args),
            Command::Data(cmd) => data::run(cmd),
            Command::Train(args) => train::run(args),
            Command::Eval(args) => eval::run(args),
            Command::Bench(args) => bench::run(args),
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
