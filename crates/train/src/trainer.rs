//! The training loop (spec §3): caption-indexed batches, the B×B score grid, hinge loss with the
//! warm-up switch, global-norm clipping, AdamW, the lr step; dev evaluation, checkpoints and the
//! best model each epoch. Randomness (initialisation, batches, augmentation, dropout) is derived from
//! the seed and the position in the run, so a resumed run repeats an uninterrupted one exactly.

use crate::adam::{FusedAdam, FusedAdamW};
use crate::config::{OptimizerKind, TrainConfig};
use crate::curves;
use crate::error::TrainError;
use crate::lock::RunLock;
use crate::run::{load_checkpoint, MetricsLog, RunDir, TrainState};
use crate::step::{train_step, StepOutcome, StepSettings, Strategy};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Tensor, TensorData};
use rand::RngCore;
use rcar_backbones::Matcher;
use rcar_data::atomic::write_atomic;
use rcar_data::batch::{batches_per_epoch, derive_rng, train_epoch, Batch, LoaderConfig};
use rcar_data::split::Split;
use rcar_data::vocab::Vocab;
use rcar_data::DataError;
use rcar_eval::{evaluate, EvalOptions, Metrics, Progress};
use rcar_regulators::PairDropout;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const INIT: u64 = 10;
const DROPOUT: u64 = 11;

/// The configured optimizer with PyTorch's defaults (Burn's eps and weight decay differ): RCAR's
/// AdamW (weight decay 0.01) or SGRAF's Adam (none).
pub fn optimizer(kind: OptimizerKind) -> ModuleOptimizer {
    match kind {
        OptimizerKind::Adamw => FusedAdamW::new(0.9, 0.999, 1e-8, 0.01).into(),
        OptimizerKind::Adam => FusedAdam::new(0.9, 0.999, 1e-8).into(),
    }
}

/// The model a run with `cfg` starts from (its initialisation is derived from the run's seed).
pub fn initial_model(cfg: &TrainConfig, device: &Device) -> Matcher {
    device.seed(derive_rng(cfg.seed, &[INIT]).next_u64());
    cfg.model.build(device)
}

/// How a call to [`Trainer::run`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// All epochs done; the best dev result.
    Finished { best_rsum: f64, best_epoch: usize },
    /// Stopped at the step limit, as an interruption would: nothing saved past the last checkpoint.
    Interrupted { step: u64 },
}

pub struct Trainer {
    pub cfg: TrainConfig,
    pub run: RunDir,
    device: Device,
    model: Option<Matcher>,
    optim: ModuleOptimizer,
    pub state: TrainState,
    train: Arc<Split>,
    dev: Split,
    log: MetricsLog,
    /// The damaged checkpoints `resume` passed over for an older one, each with what is wrong
    /// (now `checkpoints/damaged-step-N/`).
    pub passed_over: Vec<String>,
    /// This process is the run directory's one writer while the trainer lives.
    _lock: RunLock,
}

/// Moves a checkpoint that does not load out of the list (kept for inspection, not deleted) and
/// says why it was passed over.
fn set_aside(checkpoint: &Path, problem: DataError) -> Result<String, DataError> {
    let name = checkpoint
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let aside = checkpoint.with_file_name(format!("damaged-{name}"));
    if aside.exists() {
        std::fs::remove_dir_all(&aside).map_err(|e| DataError::io(&aside, e))?;
    }
    std::fs::rename(checkpoint, &aside).map_err(|e| DataError::io(checkpoint, e))?;
    Ok(format!("{problem} (moved to {})", aside.display()))
}

fn refuse_existing(run: &RunDir) -> Result<(), DataError> {
    if run.config().exists() {
        return Err(DataError::invalid(
            &run.config(),
            "a run already lives here: resume it (--resume) or choose another --out",
        ));
    }
    Ok(())
}

fn open_data(cfg: &TrainConfig) -> Result<(Arc<Split>, Split), DataError> {
    let vocab = Vocab::load(&cfg.vocab)?;
    let source = format!("the model of experiment {:?}", cfg.name);
    cfg.model.check_vocab(vocab.len(), &cfg.vocab, &source)?;
    let train = Split::open(&cfg.data, "train", &vocab)?;
    let features = &train.features;
    cfg.model
        .check_features(features.regions(), features.dim(), features.path())?;
    if train.len() < cfg.batch_size {
        return Err(DataError::invalid(
            &train.caps_path,
            format!(
                "{} captions: fewer than one batch of {}",
                train.len(),
                cfg.batch_size
            ),
        ));
    }
    let dev = Split::open(&cfg.data, "dev", &vocab)?;
    dev.check_eval()?;
    Ok((Arc::new(train), dev))
}

impl Trainer {
    /// A new run in `dir`, which must not hold one already (resume it instead). `device` must be
    /// an autodiff device.
    pub fn new(cfg: TrainConfig, dir: &Path, device: &Device) -> Result<Self, TrainError> {
        let run = RunDir::new(dir);
        refuse_existing(&run)?;
        let (train, dev) = open_data(&cfg)?;
        let lock = RunLock::acquire(dir)?;
        Self::create(cfg, run, device, lock, (train, dev))
    }

    /// A new run in the locked, empty `run`.
    fn create(
        cfg: TrainConfig,
        run: RunDir,
        device: &Device,
        lock: RunLock,
        (train, dev): (Arc<Split>, Split),
    ) -> Result<Self, TrainError> {
        // Another writer may have started the run before the lock was ours.
        refuse_existing(&run)?;
        write_atomic(&run.config(), cfg.to_json().as_bytes())?;
        let model = initial_model(&cfg, device);
        let log = MetricsLog::open(&run.metrics(), None)?;
        Ok(Self {
            optim: optimizer(cfg.optimizer),
            cfg,
            run,
            device: device.clone(),
            model: Some(model),
            state: TrainState::new(),
            train,
            dev,
            log,
            passed_over: Vec::new(),
            _lock: lock,
        })
    }

    /// Continues the run in `dir` from its newest checkpoint (from the start if it has none).
    /// `overrides` may change what does not alter the run's course (paths, epochs).
    pub fn resume(
        dir: &Path,
        device: &Device,
        overrides: impl FnOnce(&mut TrainConfig),
    ) -> Result<Self, TrainError> {
        let run = RunDir::new(dir);
        let mut cfg = TrainConfig::load(&run.config())?;
        overrides(&mut cfg);
        let (train, dev) = open_data(&cfg)?;
        let lock = RunLock::acquire(dir)?;
        run.recover_best()?;
        let mut candidates = run.list_checkpoints()?;
        let Some(latest) = candidates.last().cloned() else {
            // Died before its first checkpoint: start over, without the lines it logged.
            for path in [run.config(), run.metrics()] {
                if path.exists() {
                    std::fs::remove_file(&path).map_err(|e| DataError::io(&path, e))?;
                }
            }
            return Self::create(cfg, run, device, lock, (train, dev));
        };
        let mut passed_over = Vec::new();
        let (model, optim, state) = loop {
            let Some(newest) = candidates.pop() else {
                return Err(DataError::invalid(
                    &latest,
                    format!(
                        "no checkpoint of this run is intact: {}",
                        passed_over.join("; ")
                    ),
                )
                .into());
            };
            match load_checkpoint(&newest, device, optimizer(cfg.optimizer)) {
                Ok(loaded) => break loaded,
                Err(e) => passed_over.push(set_aside(&newest, e)?),
            }
        };
        write_atomic(&run.config(), cfg.to_json().as_bytes())?;
        let log = MetricsLog::open(&run.metrics(), Some(state.step))?;
        Ok(Self {
            cfg,
            run,
            device: device.clone(),
            model: Some(model),
            optim,
            state,
            train,
            dev,
            log,
            passed_over,
            _lock: lock,
        })
    }

    pub fn model(&self) -> &Matcher {
        self.model.as_ref().expect("model present between steps")
    }

    /// Trains until the configured epochs are done, or until `max_steps` optimizer steps in all.
    pub fn run(
        &mut self,
        progress: &mut dyn Progress,
        max_steps: Option<u64>,
    ) -> Result<Outcome, TrainError> {
        let per_epoch = batches_per_epoch(self.train.len(), self.cfg.batch_size);
        while self.state.epoch < self.cfg.epochs {
            let epoch = self.state.epoch;
            let lr = self.cfg.lr_at(epoch);
            let loader = LoaderConfig {
                batch_size: self.cfg.batch_size,
                seed: self.cfg.seed,
                augment: self.cfg.augment,
                prefetch: 2,
            };
            progress.start(
                &format!("epoch {}/{}", epoch + 1, self.cfg.epochs),
                per_epoch as u64,
            );
            progress.advance(self.state.batch as u64);
            let started = Instant::now();
            let first = self.state.batch;
            for batch in train_epoch(self.train.clone(), loader, epoch, self.state.batch) {
                if max_steps.is_some_and(|m| self.state.step >= m) {
                    progress.finish();
                    return Ok(Outcome::Interrupted {
                        step: self.state.step,
                    });
                }
                let batch = batch?;
                let mode = self.cfg.loss_at(epoch, self.state.step);
                let (loss, grad_norm) = self.step(batch, mode, lr)?;
                self.state.step += 1;
                self.state.batch += 1;
                self.state.epoch_loss_sum += loss as f64;
                let pairs = (self.cfg.batch_size * self.cfg.batch_size) as f64;
                let rate = pairs * (self.state.batch - first) as f64
                    / started.elapsed().as_secs_f64().max(1e-9);
                progress.status(&format!("loss {loss:.4} lr {lr:.1e} {:.0} pairs/s", rate));
                progress.advance(1);
                if self.state.step.is_multiple_of(self.cfg.log_every.max(1)) {
                    self.state.loss_curve.push((self.state.step, loss as f64));
                    self.log.write(&json!({
                        "kind": "step", "step": self.state.step, "epoch": epoch,
                        "batch": self.state.batch, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                        "loss_mode": mode, "seconds": started.elapsed().as_secs_f64(),
                    }))?;
                }
                if self.cfg.checkpoint_every > 0
                    && self.state.step.is_multiple_of(self.cfg.checkpoint_every)
                    && self.state.batch < per_epoch
                {
                    self.checkpoint()?;
                }
            }
            progress.finish();
            self.end_epoch(progress, lr, started)?;
        }
        Ok(Outcome::Finished {
            best_rsum: self.state.best_rsum,
            best_epoch: self.state.best_epoch.unwrap_or(0),
        })
    }

    /// Saves where the run stands (model, optimizer, state), keeping the newest few checkpoints.
    fn checkpoint(&self) -> Result<(), DataError> {
        self.run.save_checkpoint(
            self.model(),
            &self.optim,
            &self.state,
            self.cfg.keep_checkpoints,
        )
    }

    /// One optimizer step on `batch`; returns the loss and the gradient norm before clipping.
    fn step(
        &mut self,
        batch: Batch,
        mode: crate::loss::LossMode,
        lr: f64,
    ) -> Result<(f32, f64), TrainError> {
        let device = &self.device;
        // Word dropout draws from the backend's generator; RAR's dropout is keyed by pair.
        let mut rng = derive_rng(
            self.cfg.seed,
            &[DROPOUT, self.state.epoch as u64, self.state.batch as u64],
        );
        device.seed(rng.next_u64());
        let dropout = PairDropout {
            prob: self.cfg.model.dropout,
            seed: rng.next_u64(),
        };
        let b = batch.captions.len();
        let model = self.model.take().expect("model present between steps");
        let images = Tensor::from_data(
            TensorData::new(batch.images, [b, batch.regions, batch.dim]),
            device,
        );
        let settings = StepSettings {
            margin: self.cfg.margin,
            mode,
            lr,
            grad_clip: self.cfg.grad_clip,
            chunk: if self.cfg.train_chunk == 0 {
                b * b
            } else {
                self.cfg.train_chunk
            },
            dropout,
            strategy: Strategy::for_step(mode, self.cfg.model.host),
        };
        match train_step(model, &mut self.optim, images, &batch.captions, &settings) {
            StepOutcome::Done {
                model,
                loss,
                grad_norm,
                ..
            } => {
                self.model = Some(model);
                Ok((loss, grad_norm))
            }
            StepOutcome::NonFinite { model, loss } => {
                self.model = Some(model);
                Err(TrainError::NonFinite {
                    step: self.state.step + 1,
                    epoch: self.state.epoch,
                    loss,
                })
            }
        }
    }

    /// Dev evaluation, the best model, a checkpoint, the log and the curves.
    fn end_epoch(
        &mut self,
        progress: &mut dyn Progress,
        lr: f64,
        started: Instant,
    ) -> Result<(), TrainError> {
        let epoch = self.state.epoch;
        let eval_model = self.model().valid();
        let opts = EvalOptions {
            mem_budget: self.cfg.eval_mem_budget,
            ..EvalOptions::default()
        };
        let eval_device = self.device.clone().without_autodiff();
        let (report, _) = evaluate(
            std::slice::from_ref(&eval_model),
            &[],
            &self.dev,
            &opts,
            &eval_device,
            progress,
        )?;
        let dev: Metrics = report.metrics;
        let mean_loss = self.state.epoch_loss_sum / self.state.batch.max(1) as f64;
        let improved = dev.rsum > self.state.best_rsum;
        if improved {
            self.state.best_rsum = dev.rsum;
            self.state.best_epoch = Some(epoch);
            self.run.save_best(
                &eval_model,
                &json!({ "epoch": epoch, "step": self.state.step, "dev": dev }),
            )?;
        }
        self.state.rsum_curve.push((epoch, dev.rsum));
        self.log.write(&json!({
            "kind": "epoch", "step": self.state.step, "epoch": epoch, "loss_mean": mean_loss,
            "lr": lr, "dev": dev, "best": improved, "seconds": started.elapsed().as_secs_f64(),
        }))?;
        progress.line(&format!(
            "epoch {:>3}/{}  loss {:>9.4}  dev R@1 {:5.1}/{:5.1}  rsum {:6.1}{}  {:.0}s",
            epoch + 1,
            self.cfg.epochs,
            mean_loss,
            dev.i2t.r1,
            dev.t2i.r1,
            dev.rsum,
            if improved { "  best" } else { "" },
            started.elapsed().as_secs_f64()
        ));
        self.state.epoch += 1;
        self.state.batch = 0;
        self.state.epoch_loss_sum = 0.0;
        self.checkpoint()?;
        let loss: Vec<(f64, f64)> = self
            .state
            .loss_curve
            .iter()
            .map(|&(s, l)| (s as f64, l))
            .collect();
        let rsum: Vec<(f64, f64)> = self
            .state
            .rsum_curve
            .iter()
            .map(|&(e, r)| (e as f64 + 1.0, r))
            .collect();
        write_atomic(&self.run.curves(), curves::render(&loss, &rsum).as_bytes())?;
        Ok(())
    }
}
