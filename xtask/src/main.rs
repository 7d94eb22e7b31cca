//! `cargo xtask …`: the RCAR runner. Thin by design: every command parses its flags, calls a library
//! crate and prints what it got.

mod backend;
mod bench;
mod data;
mod demo;
mod eval;
mod experiment;
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
    /// Experiments made of many runs (the plug-in table).
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
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
            Command::Experiment(cmd) => vec![cmd.backend()],
        }
    }
}

/// Burn keeps some state on its *default* device whatever the run's device: a resumed run's optimizer
/// state is loaded there, then moved to the parameters' device at the next step. That default
/// prefers a GPU backend compiled into the binary, even where no driver exists (a CUDA build
/// resuming a CPU run would panic), so the CPU is named unless the user set `BURN_DEVICE`.
fn default_device_on_the_cpu() {
    if std::env::var_os("BURN_DEVICE").is_none() {
        // Before any thread starts: nothing else reads the environment concurrently.
        std::env::set_var("BURN_DEVICE", "flex");
    }
}

fn main() -> std::process::ExitCode {
    default_device_on_the_cpu();
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
            Command::Experiment(cmd) => experiment::run(cmd),
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
