//! `cargo xtask train`: a run from an experiment file, or the continuation of an interrupted one.

use crate::backend;
use crate::progress::Bars;
use anyhow::{bail, Result};
use clap::Args;
use rcar_train::{Outcome, TrainConfig, Trainer};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Clone, Default)]
pub struct TrainArgs {
    /// Experiment file (`experiments/*.json`).
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Continue the run in this directory from its newest checkpoint.
    #[arg(long, conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Run directory (default `runs/NAME`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Stop after this many optimizer steps in all, as an interruption would (for smoke runs).
    #[arg(long)]
    pub max_steps: Option<u64>,
}

impl TrainArgs {
    /// The overrides a resumed run accepts too: they do not change its course.
    fn override_paths_and_epochs(&self, cfg: &mut TrainConfig) {
        if let Some(data) = &self.data {
            cfg.data = data.clone();
        }
        if let Some(vocab) = &self.vocab {
            cfg.vocab = vocab.clone();
        }
        cfg.epochs = self.epochs.unwrap_or(cfg.epochs);
    }
}

pub fn run(args: TrainArgs) -> Result<ExitCode> {
    let device = backend::device(&args.backend)?.autodiff();
    let mut trainer = match (&args.config, &args.resume) {
        (_, Some(dir)) => {
            if args.batch_size.is_some() || args.lr.is_some() || args.seed.is_some() {
                bail!("--batch-size, --lr and --seed would change a resumed run's course; start a new run instead");
            }
            Trainer::resume(dir, &device, |cfg| args.override_paths_and_epochs(cfg))?
        }
        (Some(path), None) => {
            let mut cfg = TrainConfig::load(path)?;
            args.override_paths_and_epochs(&mut cfg);
            cfg.batch_size = args.batch_size.unwrap_or(cfg.batch_size);
            cfg.lr = args.lr.unwrap_or(cfg.lr);
            cfg.seed = args.seed.unwrap_or(cfg.seed);
            cfg.validate(path)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
            Trainer::new(cfg, &out, &device)?
        }
        (None, None) => bail!("give --config FILE or --resume RUN_DIR"),
    };
    for problem in &trainer.passed_over {
        eprintln!("warning: resuming from an older checkpoint; passed over {problem}");
    }
    println!(
        "run {} — {} {}, E {}, batch {}, {} epochs, from epoch {} step {}",
        trainer.run.root.display(),
        trainer.cfg.name,
        trainer.model().describe(),
        trainer.cfg.model.embed_size,
        trainer.cfg.batch_size,
        trainer.cfg.epochs,
        trainer.state.epoch,
        trainer.state.step
    );
    let started = std::time::Instant::now();
    match trainer.run(&mut Bars::new(), args.max_steps)? {
        Outcome::Finished {
            best_rsum,
            best_epoch,
        } => println!(
            "done in {:.0}s: best dev rsum {best_rsum:.1} at epoch {}; model in {}, curves in {}",
            started.elapsed().as_secs_f64(),
            best_epoch + 1,
            trainer.run.best().display(),
            trainer.run.curves().display()
        ),
        Outcome::Interrupted { step } => println!(
            "stopped at step {step} (--max-steps); continue with --resume {}",
            trainer.run.root.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
