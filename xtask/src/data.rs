//! `cargo xtask data synth|check`.

use anyhow::Result;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rcar_data::check::{check, DatasetReport};
use rcar_data::synth::{generate, SynthConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Generate the embedded synthetic dataset (deterministic for a seed) in the SCAN layout.
    Synth(SynthArgs),
    /// Verify a dataset directory: splits, shapes, caption/row ratio, vocabulary coverage, NaN/Inf.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct SynthArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    train_images: Option<usize>,
    #[arg(long)]
    dev_images: Option<usize>,
    #[arg(long)]
    test_images: Option<usize>,
    /// Regions per image.
    #[arg(long)]
    regions: Option<usize>,
    /// Feature dimension per region.
    #[arg(long)]
    dim: Option<usize>,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Dataset directory holding `{split}_ims.npy`, `{split}_caps.txt`, `{split}_ids.txt`.
    #[arg(long)]
    data: PathBuf,
    /// Vocabulary JSON; default `DATA/vocab.json`.
    #[arg(long)]
    vocab: Option<PathBuf>,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(cmd: DataCommand) -> Result<ExitCode> {
    match cmd {
        DataCommand::Synth(args) => synth(args),
        DataCommand::Check(args) => check_cmd(args),
    }
}

fn synth(args: SynthArgs) -> Result<ExitCode> {
    let d = SynthConfig::default();
    let cfg = SynthConfig {
        seed: args.seed.unwrap_or(d.seed),
        train_images: args.train_images.unwrap_or(d.train_images),
        dev_images: args.dev_images.unwrap_or(d.dev_images),
        test_images: args.test_images.unwrap_or(d.test_images),
        regions: args.regions.unwrap_or(d.regions),
        dim: args.dim.unwrap_or(d.dim),
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:>6} [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}")?
            .progress_chars("=> "),
    );
    let start = std::time::Instant::now();
    let summary = generate(&args.out, &cfg, &mut |split, done, total| {
        bar.set_message(split.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    println!(
        "wrote {} in {:.1}s (seed {})",
        args.out.display(),
        start.elapsed().as_secs_f64(),
        cfg.seed
    );
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(ExitCode::SUCCESS)
}

fn check_cmd(args: CheckArgs) -> Result<ExitCode> {
    let vocab = args.vocab.unwrap_or_else(|| args.data.join("vocab.json"));
    let report = check(&args.data, &vocab);
    print_report(&report);
    if let Some(path) = args.json {
        rcar_data::atomic::write_atomic(&path, &serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(report: &DatasetReport) {
    if let Some(v) = report.vocab_size {
        println!("vocabulary: {v} words (<mask> included)");
    }
    println!(
        "| split   |    rows | regions |  dim | captions | im_div | images | ids    | vocab cov | tokens | NaN/Inf | range          | status |"
    );
    println!(
        "|---------|--------:|--------:|-----:|---------:|-------:|-------:|--------|----------:|-------:|--------:|----------------|--------|"
    );
    for s in &report.splits {
        println!(
            "| {:<7} | {:>7} | {:>7} | {:>4} | {:>8} | {:>6} | {:>6} | {:<6} | {:>8.2}% | {:>6.1} | {:>7} | {:>6.2}..{:<6.2} | {:<6} |",
            s.split,
            s.rows,
            s.regions,
            s.dim,
            s.captions,
            s.im_div,
            s.images,
            s.ids.map_or("-".to_string(), |n| n.to_string()),
            100.0 * s.vocab_coverage,
            s.mean_tokens,
            s.non_finite,
            s.min,
            s.max,
            if s.problems.is_empty() { "ok" } else { "FAIL" }
        );
    }
    for p in report
        .problems
        .iter()
        .chain(report.splits.iter().flat_map(|s| &s.problems))
    {
        println!("problem: {p}");
    }
    println!(
        "{}",
        if report.ok() {
            "dataset OK"
        } else {
            "dataset has problems"
        }
    );
}
