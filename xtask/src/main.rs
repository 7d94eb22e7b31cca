//! `cargo xtask …`: the RCAR runner. Thin by design: every command parses its flags, calls a library
//! crate and prints what it got.

mod backend;
mod bench;
mod data;
mod demo;
mod eval;
mod experiment;
mod index;
mod progress;
mod rebuild;
mod search;
mod train;

use clap::{Parser, Subcommand};

/// mimalloc, counting live heap bytes so that `bench` reports each row's peak (and estimates what a
/// large training batch would need) from the memory in use rather than the resident set.
///
/// Tensors of the same sizes are freed and allocated again at every block and step. glibc's malloc
/// unmaps each large one on free, and the next faults its pages in again, zeroed (a tenth of a
/// scoring profile); mimalloc keeps them, once told not to purge them ([`keep_freed_memory`]).
/// Measured side by side: `docs/benchmarks.md`, 2026-12-02.
#[global_allocator]
static ALLOC: rcar_bench::memory::CountingAlloc<mimalloc::MiMalloc> =
    rcar_bench::memory::CountingAlloc(mimalloc::MiMalloc);

/// `mi_option_purge_delay`: its place in `mi_option_e` (`mimalloc.h`), which the bindings do not
/// name; the test below checks it against the option's documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory stays with the process for the next tensor instead of going back to the OS after
/// mimalloc's purge delay (1 s; with purging, training steps were slower than with glibc).
fn keep_freed_memory() {
    // SAFETY: sets one of mimalloc's runtime options; any value is valid (-1: never purge).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

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
    /// Encode a split once into a gallery index for `search`.
    Index(index::IndexArgs),
    /// Query a gallery index with a caption (or a gallery image).
    Search(search::SearchArgs),
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
            Command::Index(args) => vec![args.backend.as_str()],
            Command::Search(args) => vec![args.backend.as_str()],
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
    keep_freed_memory();
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
            Command::Index(args) => index::run(args),
            Command::Search(args) => search::run(args),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The option's index is mimalloc's purge delay: 1,000 ms by default (`options.c`, v3), then
    /// what we set.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads and sets mimalloc's runtime options.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(before, 1000);
        keep_freed_memory();
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, -1);
    }
}
