//! `cargo xtask bench`: the same workload on each chosen backend; a markdown table per backend and,
//! with `--json`, every figure for scripts.

use crate::backend;
use crate::eval::positive;
use anyhow::{bail, Context, Result};
use clap::Args;
use rcar_backbones::{Host, ModelConfig};
use rcar_bench::timing::Repeats;
use rcar_bench::torch::{annotate, check_python, TorchPeer, TorchRow};
use rcar_bench::{BackendReport, BenchConfig, Measurement};
use rcar_data::atomic::write_atomic;
use rcar_train::TrainConfig;
use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct BenchArgs {
    /// Backends to measure, in turn (repeat the flag).
    #[arg(long = "backend", default_value = "flex")]
    pub backends: Vec<String>,
    /// Experiment whose sizes every row takes (SCAN's modes in both directions, SAF, SGR); its
    /// direction and mode pick the training steps and `--profile`'s model.
    #[arg(long, default_value = "experiments/f30k_t2i_rcar.json")]
    config: PathBuf,
    /// Images × captions per pair-scoring call.
    #[arg(long, default_value = "16x64")]
    grid: String,
    /// Batch sizes of the training-step rows, comma-separated (empty: none).
    #[arg(long, default_value = "32,128")]
    train_batches: String,
    /// Tokens per caption, `<start>` and `<end>` included.
    #[arg(long, default_value_t = 12, value_parser = positive())]
    words: usize,
    /// Images or captions per encoder call.
    #[arg(long, default_value_t = 128, value_parser = positive())]
    encode_batch: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed runs per figure; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = positive())]
    runs: usize,
    /// Writes every figure as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Writes the markdown tables too.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Also runs the same workloads in PyTorch (`crates/bench/reference/torch_bench.py`) on the
    /// same shapes and threads, and gives every row its ratio; torch's BLAS joins the reference.
    #[arg(long)]
    compare_torch: bool,
    /// The Python with torch, for --compare-torch.
    #[arg(long, default_value = "python3")]
    python: String,
    /// A malloc library preloaded (LD_PRELOAD) into PyTorch's process only, e.g.
    /// /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4: with glibc's malloc, PyTorch on the CPU
    /// returns each large tensor to the OS and faults its pages in again, about half its speed here.
    #[arg(long, requires = "compare_torch")]
    torch_preload: Option<PathBuf>,
    /// Instead of the bench's rows, times one scoring block of `--config` piece by piece (each
    /// attention pass, alignment pass, RCR, RAR, the two largest products) on each backend: the
    /// evaluation's first block of the grid, on one scoring thread as the evaluation runs it.
    #[arg(long, conflicts_with_all = ["compare_torch", "json", "markdown"])]
    profile: bool,
    /// Where PyTorch runs its side (`cpu`, or `cuda` to set a CUDA backend beside PyTorch on the
    /// same GPU).
    #[arg(long, default_value = "cpu", requires = "compare_torch")]
    torch_device: String,
}

fn parse_grid(text: &str) -> Result<(usize, usize)> {
    let parsed = text
        .split_once('x')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    match parsed {
        Some((a, b)) if a > 0 && b > 0 => Ok((a, b)),
        _ => bail!("--grid {text:?}: expected IMAGESxCAPTIONS, e.g. 16x64"),
    }
}

fn parse_batches(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|&b| b >= 2)
                .with_context(|| format!("--train-batches: {s:?} is not a batch size of 2 or more"))
        })
        .collect()
}

/// The CPU's model name and core count, from `/proc/cpuinfo`.
fn cpu_name() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {cores} cores")
}

/// The card's name where the backend reports one (the GPU backends), else the CPU's.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn device_name(device: &burn::tensor::Device) -> String {
    device.identity().map_or_else(cpu_name, |id| id.name)
}

#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
fn device_name(_: &burn::tensor::Device) -> String {
    cpu_name()
}

fn print_row(m: &Measurement) {
    if m.skipped {
        eprintln!("  {:<40} {}", m.name, m.note);
        return;
    }
    // The rate, not its share of the reference: that is timed again after the scoring rows and
    // the faster counts, so the table's percentages are known only at the end.
    let pct = m
        .gflops
        .map_or(String::new(), |g| format!(" ({g:.1} GFLOP/s)"));
    let peak = m.memory.map_or(String::new(), |p| {
        format!(", peak {:.0} MiB", p.bytes as f64 / 1048576.0)
    });
    eprintln!(
        "  {:<40} {:>10.1} {:<10} {:>9.3} s{pct}{peak}",
        m.name, m.value, m.unit, m.seconds
    );
}

/// The backends that run on the CPU, whose reference rate PyTorch's BLAS may raise.
fn is_cpu(backend: &str) -> bool {
    matches!(backend, "flex" | "cpu" | "ndarray")
}

/// PyTorch's figure for the row just printed, and the ratio.
fn print_torch(m: &Measurement, rate: f64, extrapolated: bool) {
    let (approx, how) = if extrapolated {
        ("≈", " (skipped for memory, extrapolated)")
    } else {
        ("", "")
    };
    // The same items as ours, at PyTorch's rate.
    let seconds = m.value * m.seconds / rate;
    eprintln!(
        "  {:<40} {approx}{rate:>10.1} {:<10} {approx}{seconds:>9.3} s{how}, ratio {approx}{:.2}×",
        "  PyTorch",
        m.unit,
        m.value / rate
    );
}

/// A whole row of PyTorch's, as the progress line shows it.
fn describe(row: &TorchRow) -> String {
    match (row.value, row.extrapolated) {
        (Some(v), _) => format!("{v:.1} {}", row.unit.as_deref().unwrap_or("")),
        (None, Some(v)) => format!("≈{v:.1}, extrapolated (skipped for memory)"),
        (None, None) => "skipped".into(),
    }
}

/// `--compare-torch`'s PyTorch, asked for rows as the bench reaches them; after a failure (the
/// script died: its memory, a missing library) it is asked nothing more.
struct Peer {
    torch: TorchPeer,
    failed: bool,
}

impl Peer {
    fn answer<T>(
        &mut self,
        asked: impl FnOnce(&mut TorchPeer) -> Result<Option<T>, String>,
    ) -> Option<T> {
        if self.failed {
            return None;
        }
        asked(&mut self.torch).unwrap_or_else(|why| {
            eprintln!("PyTorch: {why}; the ratios cover the rows it finished");
            self.failed = true;
            None
        })
    }
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let experiment = TrainConfig::load(&args.config)?;
    let cfg = BenchConfig {
        model: ModelConfig {
            dropout: 0.0,
            ..experiment.model
        },
        regions: 36,
        words: args.words,
        encode_batch: args.encode_batch,
        grid: parse_grid(&args.grid)?,
        train_batches: parse_batches(&args.train_batches)?,
        repeats: Repeats {
            warmup: args.warmup,
            runs: args.runs,
        },
        seed: 0,
    };
    // Every backend starts before anything is timed: a missing driver is an error at once.
    let devices = args
        .backends
        .iter()
        .map(|name| backend::device(name))
        .collect::<Result<Vec<_>>>()?;
    if args.profile {
        for (name, device) in args.backends.iter().zip(devices) {
            println!(
                "{} on {name}, {}:",
                args.config.display(),
                device_name(&device)
            );
            let pieces = rcar_bench::profile::scoring_block(&cfg, &device)
                .map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
            for piece in pieces {
                println!("  {:<52} {:>8.1} ms", piece.name, piece.seconds * 1e3);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    // The rows time SCAN's modes at the experiment's sizes (SAF and SGR have rows of their own).
    let mut cfg = cfg;
    if cfg.model.host != Host::Scan {
        eprintln!(
            "{}: its host is SGRAF's; SCAN's rows take its sizes, SAF and SGR have their own rows",
            args.config.display()
        );
        cfg.model.host = Host::Scan;
    }
    let peer = if args.compare_torch {
        check_python(&args.python).map_err(anyhow::Error::msg)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(lib) = &args.torch_preload {
            if !lib.is_file() {
                bail!("--torch-preload {}: no such file", lib.display());
            }
        }
        let torch = TorchPeer::start(
            &args.python,
            &cfg,
            threads,
            &args.torch_device,
            args.torch_preload.as_deref(),
        )
        .map_err(anyhow::Error::msg)?;
        Some(RefCell::new(Peer {
            torch,
            failed: false,
        }))
    } else {
        None
    };
    // PyTorch's training steps run first, whole, while this process holds little memory: its
    // dense batch-128 step needs almost all of a 24 GiB machine, and the bench's own rows leave
    // their freed memory with this process (`keep_freed_memory`). Beside them, PyTorch would have
    // to extrapolate that step from batches 16 and 24, off by up to 2×. A step that fits beside
    // the bench is then timed again, call by call with ours.
    let mut torch_rows: Vec<TorchRow> = Vec::new();
    if let Some(peer) = &peer {
        let whole = peer.borrow().torch.first_rows();
        for name in whole {
            if let Some(row) = peer.borrow_mut().answer(|t| t.measure(&name)) {
                eprintln!("  PyTorch first: {name}: {}", describe(&row));
                torch_rows.push(row);
            }
        }
    }
    let mut reports: Vec<BackendReport> = Vec::new();
    for (name, device) in args.backends.iter().zip(devices) {
        let label = device_name(&device);
        eprintln!("{name} on {label}:");
        let cpu = is_cpu(name);
        // PyTorch's calls alternate with ours (`rival`) where it has the row and room for it; a
        // training step it skips beside the bench keeps its whole row from before.
        let mut rival = |row: &str| {
            let peer = peer.as_ref()?;
            peer.borrow_mut().answer(|t| t.once(row))
        };
        let mut log = |m: &Measurement| {
            print_row(m);
            let rate = m.torch.map(|r| (r, false)).or_else(|| {
                let row = torch_rows.iter().find(|r| r.name == m.name)?;
                row.value
                    .map(|r| (r, false))
                    .or(row.extrapolated.map(|r| (r, true)))
            });
            if let Some((rate, extrapolated)) = rate.filter(|_| !m.skipped) {
                print_torch(m, rate, extrapolated);
            }
        };
        reports.push(rcar_bench::run(
            &cfg, name, &device, cpu, label, &mut log, &mut rival,
        ));
    }
    let torch_run = peer.map(|p| p.into_inner().torch.finish());
    let reports: Vec<BackendReport> = reports
        .into_iter()
        .map(|mut report| {
            if let Some(run) = &torch_run {
                let cpu = is_cpu(&report.backend);
                annotate(&mut report, run, &torch_rows, cpu);
            }
            println!("{}", report.markdown());
            report
        })
        .collect();
    let markdown: String = reports.iter().map(|r| r.markdown() + "\n").collect();
    if let Some(path) = &args.markdown {
        write_atomic(path, markdown.as_bytes())?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "config": args.config,
            "embed_size": cfg.model.embed_size,
            "sim_dim": cfg.model.sim_dim,
            "regions": cfg.regions,
            "words": cfg.words,
            "grid": [cfg.grid.0, cfg.grid.1],
            "warmup": args.warmup,
            "runs": args.runs,
            "backends": reports,
        });
        write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
