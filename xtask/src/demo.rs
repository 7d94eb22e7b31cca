//! `cargo xtask demo`: the whole pipeline on the embedded default — generate the synthetic dataset
//! if absent, train the `demo` experiment (or finish an interrupted demo run), evaluate it on the
//! test split, and compare with the same model untrained.

use crate::backend;
use crate::eval::{print_report, print_table};
use crate::progress::Bars;
use anyhow::Result;
use clap::Args;
use rcar_data::split::Split;
use rcar_data::synth::{generate, SynthConfig};
use rcar_data::vocab::Vocab;
use rcar_eval::{evaluate, EvalOptions};
use rcar_train::{initial_model, TrainConfig, Trainer};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct DemoArgs {
    /// Where the synthetic dataset is (generated there if absent).
    #[arg(long, default_value = "data/synth")]
    data: PathBuf,
    /// The demo experiment.
    #[arg(long, default_value = "experiments/demo.json")]
    config: PathBuf,
    /// Run directory; an unfinished demo run there is continued.
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    #[arg(long, default_value = "flex")]
    pub backend: String,
}

/// Generates the synthetic dataset in `data` unless it is there; its vocabulary file.
pub fn ensure_synthetic(data: &Path) -> Result<PathBuf> {
    let vocab_path = data.join("vocab.json");
    if !vocab_path.exists() {
        println!("generating the synthetic dataset in {}", data.display());
        generate(data, &SynthConfig::default(), &mut |_, _, _| {})?;
    }
    Ok(vocab_path)
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let device = backend::device(&args.backend)?;
    let vocab_path = ensure_synthetic(&args.data)?;
    let mut cfg = TrainConfig::load(&args.config)?;
    cfg.data = args.data.clone();
    cfg.vocab = vocab_path.clone();
    let mut trainer = if args.out.join("config.json").exists() {
        println!("continuing the demo run in {}", args.out.display());
        Trainer::resume(&args.out, &device.clone().autodiff(), |run| {
            run.data = cfg.data.clone();
            run.vocab = cfg.vocab.clone();
        })?
    } else {
        Trainer::new(cfg.clone(), &args.out, &device.clone().autodiff())?
    };
    println!(
        "training {}: {}, E {}, {} epochs of batch {}",
        cfg.name,
        trainer.model().describe(),
        cfg.model.embed_size,
        cfg.epochs,
        cfg.batch_size
    );
    trainer.run(&mut Bars::new(), None)?;
    let train_seconds = started.elapsed().as_secs_f64();

    let vocab = Vocab::load(&vocab_path)?;
    let test = Split::open(&args.data, "test", &vocab)?;
    let opts = EvalOptions::default();
    let trained = rcar_backbones::checkpoint::load_any(&args.out, &device)?;
    let (report, _) = evaluate(
        &[trained],
        &[args.out.display().to_string()],
        &test,
        &opts,
        &device,
        &mut Bars::new(),
    )?;
    let untrained = initial_model(&cfg, &device);
    let (baseline, _) = evaluate(&[untrained], &[], &test, &opts, &device, &mut Bars::new())?;
    println!();
    println!("trained ({}):", args.out.display());
    print_report(&report);
    println!();
    println!("the same model untrained:");
    print_table(&baseline.metrics);
    println!();
    println!(
        "demo done in {:.0}s (training {:.0}s): test rsum {:.1} trained vs {:.1} untrained",
        started.elapsed().as_secs_f64(),
        train_seconds,
        report.metrics.rsum,
        baseline.metrics.rsum
    );
    Ok(ExitCode::SUCCESS)
}
